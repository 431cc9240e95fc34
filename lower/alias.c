/* alias.c — registers that need no bytes of their own (docs/actor-plan.md,
 * "Views and direct accumulation").
 *
 * Two cases, decided here so the executor only follows the program:
 *  - a view: a reshape's output shares its input register's bytes (a
 *    reshape of a row-major tensor moves no element). The register gets
 *    view = its input register; arena.c plans the input and all its views
 *    as one lifetime (the input's start to the last end among them) at
 *    one offset, and the executor copies nothing and keeps the viewed
 *    register's instance held until every view of it is released.
 *    Refused where a member of the group is reduced in place by a ZeRO-2
 *    reduce actor (its sum would show through the other members).
 *  - into_acc: a weight gradient's GEMM (a plain 2-D matmul compute actor)
 *    whose output nobody reads, only added into its parameter's gradient
 *    accumulator (the actor's acc), writes the product straight into the
 *    accumulator (sgemm alpha = 1 / (dp x micro), beta = 1: the
 *    accumulators start each step at zero): the register gets no arena
 *    bytes and the separate accumulate pass is gone. ZeRO-2 (its reduce
 *    reads the register), a gradient that a tp collective reduces (the
 *    collective, not the matmul, feeds the accumulator) and fused groups
 *    keep the register.
 * SBPC_NO_ALIAS=1 (at compile time) marks neither: every register has
 * bytes of its own, as before (tests/rt_views.sh compares the two).
 * lw_alias_stage runs on a stage's actors and registers once their
 * consumers are linked and before the buffer counts and the arena plan,
 * which both follow a view group's whole lifetime. */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

/* the plain (unfused) compute actor of register r that runs op kind k */
static const ir_op *plain_op(const lw_ctx *c, const fmt_stage *st, int r, int kind) {
  const fmt_actor *a = &st->act[st->reg[r].producer];
  if (a->kind != FMT_A_COMPUTE || a->kernel || a->nops != 1 || a->op < 0) return NULL;
  const ir_op *o = &c->p->g->op[a->op];
  return o->kind == kind ? o : NULL;
}

static bool into_acc(const lw_ctx *c, const fmt_stage *st, int r) {
  const ir_graph *g = c->p->g;
  const fmt_actor *a = &st->act[st->reg[r].producer];
  const ir_op *o = plain_op(c, st, r, IR_OP_MATMUL);
  if (!o || st->reg[r].ncons || a->nout != 1 || a->acc[0] < 0) return false;
  return g->t[o->in[0]].rank == 2 && g->t[o->in[1]].rank == 2 && g->t[o->out[0]].rank == 2 &&
         g->t[o->out[0]].dtype == IR_F32;
}

/* the register whose bytes register r can share: the input register of
 * the plain reshape that makes it (same bytes), or -1 */
static int view_of(const lw_ctx *c, const fmt_stage *st, int r) {
  const fmt_actor *a = &st->act[st->reg[r].producer];
  if (!plain_op(c, st, r, IR_OP_RESHAPE) || a->nout != 1 || a->acc[0] >= 0 || a->nin < 1 || a->in[0] < 0 || a->in[0] >= r ||
      st->reg[r].tensor == c->p->g->loss) /* the executor reads the loss where its kernel ran */
    return -1;
  return !st->reg[a->in[0]].into_acc && st->reg[a->in[0]].bytes == st->reg[r].bytes ? a->in[0] : -1;
}

/* is register r read in place by a ZeRO-2 reduce actor? */
static bool reduced_in_place(const fmt_stage *st, int r) {
  for (int i = 0; i < st->reg[r].ncons; i++)
    if (st->act[st->reg[r].cons[i]].kind == FMT_A_REDUCE) return true;
  return false;
}

/* the register whose bytes r's group lives in */
static int root_of(const fmt_stage *st, int r) {
  while (st->reg[r].view >= 0) r = st->reg[r].view;
  return r;
}

void lw_alias_stage(const lw_ctx *c, fmt_stage *st) {
  for (int r = 0; r < st->nreg; r++) st->reg[r].view = -1, st->reg[r].into_acc = false;
  const char *off = getenv("SBPC_NO_ALIAS"); /* a program as before, to compare against */
  if (off && *off && strcmp(off, "0")) return;
  bool *inplace = xcalloc((size_t)st->nreg + 1, sizeof(bool)); /* per group root */
  for (int r = 0; r < st->nreg; r++)
    if ((st->reg[r].view = view_of(c, st, r)) < 0) st->reg[r].into_acc = into_acc(c, st, r);
  for (int r = 0; r < st->nreg; r++) inplace[root_of(st, r)] |= reduced_in_place(st, r);
  for (int r = st->nreg - 1; r >= 0; r--) /* a group reduced in place keeps its copies */
    if (st->reg[r].view >= 0 && inplace[root_of(st, r)]) st->reg[r].view = -1;
  free(inplace);
}

void lw_alias_ends(const fmt_stage *st, int M, int32_t *end) {
  for (int r = st->nreg - 1; r >= 0; r--) /* views have higher indices than what they view */
    for (int m = 0; m < M && st->reg[r].view >= 0; m++) {
      int32_t *e = &end[(int64_t)st->reg[r].view * M + m];
      *e = end[(int64_t)r * M + m] > *e ? end[(int64_t)r * M + m] : *e;
    }
}
