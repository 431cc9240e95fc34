/* fuzz_lengths.c — libFuzzer target for the sequence-lengths reader
 * sp_read_lengths (planner/sp_json.c), used by `sbpc sp` and by
 * `sbpc plan --lengths`. It reads a path, so the input is written to a private
 * temporary file first. It may not crash, hang or leak; what it accepts must
 * be at least one positive length, each with a line number inside the file
 * and in increasing order. Seeds: tests/fuzz/corpus/lengths/
 * (tests/data/lengths samples and broken ones). */
#include "planner/sp.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

static char path[64];
static int devnull = -1;

/* quiet_read: the reader with its messages sent to /dev/null (fd 2 is
 * restored at once so libFuzzer's and the sanitizers' reports stay visible). */
static int64_t *quiet_read(int *n, int **lines) {
  int saved = dup(2);
  dup2(devnull, 2);
  int64_t *v = sp_read_lengths(path, n, lines);
  dup2(saved, 2);
  close(saved);
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!path[0]) {
    snprintf(path, sizeof path, "/tmp/sbpc-fuzz-lengths-%d.txt", (int)getpid());
    devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) abort();
  }
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fwrite(data, 1, size, f);
  fclose(f);
  int n = -1, *lines = NULL;
  int64_t *v = quiet_read(&n, &lines);
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
