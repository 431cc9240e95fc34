/* fuzz_indexed.c — libFuzzer target for the Megatron indexed dataset reader
 * (runtime/indexed.c) behind `sbpc run --data PREFIX`, through the data
 * loader (runtime/data.c). An input is both files: a little-endian u32 n,
 * then n bytes of PREFIX.idx, then the rest as PREFIX.bin (n is clamped to
 * what follows). They are written to private temporary files first. The
 * reader may not crash, hang, leak or read outside the files. A dataset it
 * accepts is then cut into samples of 4 tokens (seq 3) and every sample is
 * made plain and packed, checking: ids and labels inside the vocabulary
 * (labels -1 only when packed), each token's document start at or before
 * it and never going back, and rt_data_predicted equal to the labels kept.
 * Seeds: tests/fuzz/corpus/indexed/ (scripts/make_indexed.py outputs, and
 * broken ones: magic, version, dtype, counts, pointers, document indices). */
#include "fuzz_file.h"
#include "runtime/rt_internal.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ 3
#define VOCAB 1000

static char bin_path[160];
static void bin_remove(void) { unlink(bin_path); }

/* write both files; the prefix (the .idx path without ".idx") into prefix */
static void write_pair(const uint8_t *data, size_t size, char *prefix, size_t pn) {
  uint32_t n = size >= 4 ? (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24 : 0;
  size_t rest = size >= 4 ? size - 4 : 0, ni = n < rest ? n : rest;
  const char *ix = fuzz_file("indexed", "idx", data + (size >= 4 ? 4 : size), ni);
  snprintf(prefix, pn, "%.*s", (int)(strlen(ix) - 4), ix);
  if (!bin_path[0]) {
    snprintf(bin_path, sizeof bin_path, "%s.bin", prefix);
    atexit(bin_remove);
  }
  FILE *f = fopen(bin_path, "wb");
  if (!f) abort();
  if (rest > ni && fwrite(data + 4 + ni, 1, rest - ni, f) != rest - ni) abort();
  if (fclose(f) != 0) abort();
}

/* one sample, plain and packed: the invariants above; returns the labels kept */
static int64_t check_sample(const rt_data *d, int64_t k) {
  int32_t ids[SEQ], lab[SEQ], pids[SEQ], plab[SEQ], doc[SEQ];
  rt_data_batch(d, k, 1, ids, lab);
  rt_data_packed(d, k, 1, pids, plab, doc);
  int64_t kept = 0;
  for (int t = 0; t < SEQ; t++) {
    if (ids[t] < 0 || ids[t] >= VOCAB || lab[t] < 0 || lab[t] >= VOCAB || pids[t] != ids[t]) abort();
    if (plab[t] != lab[t] && plab[t] != -1) abort();
    if (doc[t] < 0 || doc[t] > t || (t > 0 && doc[t] < doc[t - 1])) abort();
    kept += plab[t] >= 0;
  }
  return kept;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char prefix[128];
  write_pair(data, size, prefix, sizeof prefix);
  rt_data d;
  fuzz_quiet();
  bool ok = rt_data_open(&d, prefix, SEQ, VOCAB);
  fuzz_loud();
  if (!ok) return 0;
  if (!d.idx || d.nsamples < 1 || d.nsamples > d.ntok) abort();
  int64_t kept = 0;
  for (int64_t k = 0; k < d.nsamples; k++) kept += check_sample(&d, k);
  if (kept != rt_data_predicted(&d, 0, d.nsamples)) abort();
  rt_data_free(&d);
  return 0;
}
