/* fuzz_lengths.c — libFuzzer target for the sequence-lengths reader
 * sp_read_lengths (planner/sp_json.c), used by `sbpc sp` and by
 * `sbpc plan --lengths`. It reads a path, so the input is written to a private
 * temporary file first. It may not crash, hang or leak; what it accepts must
 * be at least one positive length, each with a line number inside the file
 * and in increasing order. Seeds: tests/fuzz/corpus/lengths/
 * (tests/data/lengths samples and broken ones). */
#include "fuzz_file.h"
#include "planner/sp.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* quiet_read: the reader on path with its messages silenced. */
static int64_t *quiet_read(const char *path, int *n, int **lines) {
  fuzz_quiet();
  int64_t *v = sp_read_lengths(path, n, lines);
  fuzz_loud();
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("lengths", "txt", data, size);
  int n = -1, *lines = NULL;
  int64_t *v = quiet_read(path, &n, &lines);
  if (!v) {
    if (n != 0 || lines) abort(); /* failure leaves nothing behind */
    return 0;
  }
  size_t nl = 1;
  for (size_t i = 0; i < size; i++) nl += data[i] == '\n';
  if (n < 1 || !lines) abort();
  for (int i = 0; i < n; i++)
    if (v[i] < 1 || lines[i] < 1 || (size_t)lines[i] > nl || (i > 0 && lines[i] <= lines[i - 1])) abort();
  free(v);
  free(lines);
  return 0;
}
