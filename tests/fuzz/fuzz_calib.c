/* fuzz_calib.c — libFuzzer target for the calibration JSON readers: the
 * schema check ex_calib_parse (export/ex_calib.c) and the planner's loader
 * plan_calib_load (planner/calib.c, which reads a path: the input is written
 * to a private temporary file first). Neither may crash, hang or leak, and a
 * file the schema check accepts must load in the planner. Seeds:
 * tests/fuzz/corpus/calib/ (tune outputs and broken ones). */
#include "export/export.h"
#include "planner/planner.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

static char path[64];
static int devnull = -1;

/* quiet_load: plan_calib_load with its messages sent to /dev/null (fd 2 is
 * restored at once, so libFuzzer's and the sanitizers' reports stay visible;
 * a crash inside still leaves its artifact). */
static int quiet_load(plan_calib *c) {
  int saved = dup(2);
  dup2(devnull, 2);
  int ok = plan_calib_load(path, c);
  dup2(saved, 2);
  close(saved);
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!path[0]) {
    snprintf(path, sizeof path, "/tmp/sbpc-fuzz-calib-%d.json", (int)getpid());
    devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) abort();
  }
  char err[256];
  int bad = ex_calib_parse((const char *)data, size, err, sizeof err);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fwrite(data, 1, size, f);
  fclose(f);
  plan_calib c;
  plan_calib_default(&c);
  int loaded = quiet_load(&c);
  if (!bad && !loaded) abort(); /* the schema is stricter than the planner */
  return 0;
}
