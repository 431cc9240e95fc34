/* fuzz_plan.c — libFuzzer target for the plan JSON reader (format/plan.c,
 * libsbpc's C API) and everything that consumes a plan: the input bytes are a
 * plan; when the reader accepts it, the exporters (torchtitan in both
 * formats) and the trace (when its schedule is small enough to simulate
 * quickly) run on it into /dev/null.
 * Nothing may crash, hang or leak; a refused plan must come with a reason.
 * Seeds: tests/fuzz/corpus/plan/ (the fixture plans and some broken ones). */
#include "export/export.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *devnull;

static void consume(const sbpc_plan *p) {
  ex_ctx c = {.out = devnull, .err = devnull, .plan = "fuzz"};
  ex_megatron(p, &c);
  ex_deepspeed(p, &c);
  ex_torchtitan(p, &c);
  ex_torchtitan_main(p, &c);
  ex_dtensor(p, &c);
  long long ops = 2LL * p->num_micro_batches * p->vpp * p->pp * (p->nboxing + 1) * (p->layers / p->pp + 1);
  if (ops > 20000) return;
  ex_trace_opts o = {-1, 64};
  ex_trace(p, &o, &c);
  ex_trace_svg(p, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!devnull) devnull = fopen("/dev/null", "w");
  if (!devnull) abort();
  char err[256];
  sbpc_plan *p = sbpc_plan_parse((const char *)data, size, "fuzz", err, sizeof err);
  if (!p && !err[0]) abort(); /* a refusal always says why */
  if (p) consume(p);
  sbpc_plan_free(p);
  return 0;
}
