/* fuzz_calib.c — libFuzzer target for the calibration JSON reader
 * (planner/calib_read.c), both ways in: plan_calib_parse on the bytes and
 * plan_calib_load on the same bytes written to a private temporary file.
 * Neither may crash, hang or leak; both must give the same verdict and the
 * same constants; a refused input leaves the constants untouched. Seeds:
 * tests/fuzz/corpus/calib/ (tune outputs and broken ones). */
#include "fuzz_file.h"
#include "planner/planner.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* quiet_load: plan_calib_load on path with its messages silenced. */
static bool quiet_load(const char *path, plan_calib *c) {
  fuzz_quiet();
  bool ok = plan_calib_load(path, c);
  fuzz_loud();
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  plan_calib def, a, b;
  plan_calib_default(&def);
  a = b = def;
  bool parsed = plan_calib_parse((const char *)data, size, &a, err, sizeof err);
  if (!parsed && (!err[0] || memcmp(&a, &def, sizeof a))) abort(); /* no reason, or touched */
  const char *path = fuzz_file("calib", "json", data, size);
  bool loaded = quiet_load(path, &b);
  if (parsed != loaded || memcmp(&a, &b, sizeof a)) abort(); /* the two ways in disagree */
  return 0;
}
