/* fuzz_calib.c — libFuzzer target for the calibration JSON readers: the
 * schema check ex_calib_parse (export/ex_calib.c) and the planner's loader
 * plan_calib_load (planner/calib.c, which reads a path: the input is written
 * to a private temporary file first). Neither may crash, hang or leak, and a
 * file the schema check accepts must load in the planner. Seeds:
 * tests/fuzz/corpus/calib/ (tune outputs and broken ones). */
#include "fuzz_file.h"
#include "export/export.h"
#include "planner/planner.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* quiet_load: plan_calib_load on path with its messages silenced. */
static int quiet_load(const char *path, plan_calib *c) {
  fuzz_quiet();
  int ok = plan_calib_load(path, c);
  fuzz_loud();
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  int bad = ex_calib_parse((const char *)data, size, err, sizeof err);
  const char *path = fuzz_file("calib", "json", data, size);
  plan_calib c;
  plan_calib_default(&c);
  int loaded = quiet_load(path, &c);
  if (!bad && !loaded) abort(); /* the schema is stricter than the planner */
  return 0;
}
