/* fuzz_dsl.c — libFuzzer target for the sbpc language front end.
 *
 * Every input is parsed and lowered by fe_parse as a .sbp buffer (arbitrary
 * bytes: binary junk, truncation, deep nesting). Diagnostics go to /dev/null
 * (opened once). The program is freed after each run, so leaks show up under
 * the fuzzer's LeakSanitizer; crashes, hangs and UB are findings. When the
 * input has a small model (the IR passes' own cost is not what this target
 * measures), B and S are bound to small values and shape inference is rerun,
 * exercising the IR on whatever graph the front end accepted. */
#include "frontend/frontend.h"
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *devnull;
  if (!devnull) devnull = fopen("/dev/null", "w");
  diag d;
  diag_init(&d, "fuzz.sbp", (const char *)data, size);
  d.out = devnull ? devnull : stderr;
  d.color = 0;
  ir_program p;
  if (fe_parse("fuzz.sbp", (const char *)data, size, &p, &d) && p.g && p.g->nop <= 2000) {
    ir_bind(p.g, 2, 3);
    ir_infer_shapes(p.g, &d);
  }
  fe_program_free(&p);
  return 0;
}
