/* memcheck.c — `sbpc run`: refuse a run this machine cannot hold before
 * allocating anything for it.
 *
 * The program says what a rank holds: its stage's activation arena and
 * persistent arena, planned by `sbpc compile` (format/program.h). To those
 * come the attention kernels' score scratch (2·S² floats per kernel running,
 * runtime/kernels_cpu.c) and the synthetic token stream when no --data is
 * given; temporaries of collectives and sends come on top, so this is a
 * lower bound: a refusal is never wrong, and what passes may still be
 * tight. It is checked against util/os.c's available memory (MemAvailable,
 * cgroup and rlimits, $SBPC_MEMORY_LIMIT); a refusal prints the number, the
 * limit and the parts. */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <stdio.h>

bool rt_mem_check(const fmt_prog *p, int stage, const rt_config *c) {
  const fmt_stage *st = &p->stage[stage];
  double scratch = 0;
  for (int k = 0; k < p->g->nop; k++)
    if (p->g->op[k].kind == IR_OP_ATTENTION) scratch = 2.0 * (double)p->seq * (double)p->seq * 4;
    else if (p->g->op[k].kind == IR_OP_RING_ATTENTION_GRAD && scratch == 0) /* a block of seq / sp tokens */
      scratch = 2.0 * (double)(p->seq / p->sp) * (double)(p->seq / p->sp) * 4;
  double data = c->data ? 0 : 4.0 * (double)p->global_batch * (double)(p->seq + 1) * 4;
  double total = (double)st->arena_bytes + (double)st->persist_bytes + scratch + data;
  if (os_mem_check(total, "sbpc run: one rank")) return true;
  sbpc_note(
      "at least: activations %.0f and parameters, gradients and AdamW state %.0f (the program's "
      "arenas), attention scores %.0f, token stream %.0f bytes (dp %d, tp %d, pp %d, micro-batch %lld x seq %lld)",
      (double)st->arena_bytes, (double)st->persist_bytes, scratch, data, p->dp, p->tp, p->pp, (long long)p->micro_batch,
      (long long)p->seq);
  return false;
}
