/* fuzz_dsl.c — libFuzzer target for the sbpc language front end.
 *
 * Every input is parsed and lowered by fe_parse as a .sbp buffer (arbitrary
 * bytes: binary junk, truncation, deep nesting). Diagnostics go to /dev/null
 * (opened once). The program is freed after each run, so leaks show up under
 * the fuzzer's LeakSanitizer; crashes, hangs and UB are findings. When the
 * input has a model of at most 5,000 ops (the IR passes' own cost is not
 * what this target measures), B and S are bound to small values and the IR
 * passes of driver/passes.c run on it in their order: shape inference,
 * autodiff when there is a loss, SBP deduction on a 2-way mesh unless the
 * source gave one, boxing and verify. Debug builds verify after every pass. */
#include "frontend/frontend.h"
#include "ir/autodiff.h"
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
  if (fe_parse("fuzz.sbp", (const char *)data, size, &p, &d) && p.g && p.g->nop <= 5000) {
    ir_graph *g = p.g;
    ir_bind(g, 2, 3);
    if (g->mesh.n == 0) g->mesh = (ir_mesh){.n = 1, .size = {2}};
    if (ir_infer_shapes(g, &d) && (g->loss == IR_NONE || ir_autodiff(g, NULL, &d)) &&
        ir_deduce_sbp(g, &d) && ir_insert_boxing(g, &d))
      ir_verify(g, &d);
  }
  fe_program_free(&p);
  return 0;
}
