/* fuzz_safetensors.c — libFuzzer target for the safetensors reader
 * rt_st_read (runtime/safetensors.c), used for `sbpc run --weights` and for
 * checkpoints (--resume). It reads a path, so the input is written to a
 * private temporary file first. It may not crash, hang, leak or allocate by a
 * header's word (a 10 GB shape in a small file is refused). Every tensor it
 * accepts is read whole: shape and data must agree, inside the file. Seeds:
 * tests/fuzz/corpus/safetensors/ (`sbpc run --save` outputs and broken ones). */
#include "fuzz_file.h"
#include "runtime/rt_internal.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* quiet_read: the reader on path with its messages silenced. */
static rt_st *quiet_read(const char *path) {
  fuzz_quiet();
  rt_st *s = rt_st_read(path);
  fuzz_loud();
  return s;
}

/* touch: read every element of t (ASan catches data outside the file). */
static void touch(const rt_st_tensor *t, size_t file_size) {
  if (t->rank < 0 || t->rank > IR_MAXRANK || !t->name) abort();
  size_t numel = 1;
  for (int i = 0; i < t->rank; i++)
    if (t->shape[i] < 0) abort();
  for (int i = 0; i < t->rank; i++) numel = t->shape[i] ? numel : 0;
  for (int i = 0; i < t->rank && numel; i++) {
    numel *= (size_t)t->shape[i];
    if (numel > file_size / 4) abort(); /* more data than the file holds */
  }
  volatile float sum = 0;
  for (size_t i = 0; i < numel; i++) sum += t->data[i];
  (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rt_st *s = quiet_read(fuzz_file("st", "safetensors", data, size));
  if (!s) return 0;
  for (int i = 0; i < rt_st_count(s); i++) {
    const rt_st_tensor *t = rt_st_at(s, i);
    touch(t, size);
    if (rt_st_find(s, t->name) == NULL && strncmp(t->name, "transformer.", 12)) abort();
  }
  rt_st_free(s);
  return 0;
}
