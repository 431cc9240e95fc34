/* layout.c — the layout a program is compiled for, in one place for
 * `sbpc compile` and `sbpc run MODEL.sbp`: the plan's (read through the one
 * plan reader, format/sbpc_plan.h), then the flags, which win (--dp --tp
 * --pp --micro --zero --recompute --packed --batch --seq), then the model's train
 * section for batch and sequence length, then 1. Interleaved stages (vpp)
 * and the sequence-parallel degree (sp) come from the plan only; how the sp
 * group runs attention from --sp-kind, else the plan's sp_kind, else
 * Ulysses.
 * The flags' table is drv_layout_options (driver/opts.h). */
#include "driver/common.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECOMPUTE "none selective full" /* lw_layout.recompute 0, 1, 2 */

int drv_recompute_parse(const char *s) { return drv_choice(RECOMPUTE, s); }

static bool spkind_parse(const char *v, void *dst) { return (*(int *)dst = fmt_spkind_parse(v)) >= 0; }

const drv_option drv_layout_options[] = {
    {DRV_OPT("--plan", DRV_STR, drv_layout_opts, plan, "PLAN.json",
             "the layout, batch and seq of a `sbpc plan --json` file (the flags win)")},
    {DRV_OPT("--dp", DRV_INT, drv_layout_opts, dp, "N", "data-parallel ranks"), .lo = 1, .hi = 4096},
    {DRV_OPT("--tp", DRV_INT, drv_layout_opts, tp, "N", "tensor-parallel ranks"), .lo = 1, .hi = 4096},
    {DRV_OPT("--pp", DRV_INT, drv_layout_opts, pp, "N", "pipeline stages"), .lo = 1, .hi = 4096},
    {DRV_OPT("--micro", DRV_INT, drv_layout_opts, micro, "M", "micro-batches per step"), .lo = 1, .hi = 4096},
    {DRV_OPT("--zero", DRV_INT, drv_layout_opts, zero, "Z", "ZeRO stage (3 shards the parameters at rest)"), .lo = 0, .hi = 3},
    {DRV_OPT("--recompute", DRV_CHOICE, drv_layout_opts, recompute, "none|selective|full",
             "the activations the backward pass recomputes"),
     .choices = RECOMPUTE},
    {DRV_FLAGOPT("--packed", DRV_FLAG, drv_layout_opts, packed,
                 "packed variable-length batches: attention within each document, positions\n"
                 "restarting at each document, no loss across a boundary (docs/runtime.md)")},
    {DRV_FLAGOPT("--adaptive-sp", DRV_FLAG, drv_layout_opts, adaptive,
                 "with --packed on a Ulysses plan of sp = the world: per step the documents go to\n"
                 "SP groups of any size, as `sbpc sp` solves them (docs/runtime.md)")},
    {DRV_OPT("--sp-kind", DRV_CALL, drv_layout_opts, sp_kind, "ulysses|ring",
             "how a sequence-parallel group (the plan's sp) runs attention: all-to-alls\n"
             "around it (DeepSpeed-Ulysses, the default) or k/v blocks passed around a ring"),
     .parse = spkind_parse, .expect = "ulysses or ring"},
    {0}};

void drv_layout_opts_init(drv_layout_opts *o) {
  memset(o, 0, sizeof *o);
  o->recompute = o->zero = o->sp_kind = -1;
}

static int from_plan(const drv_layout_opts *o, sbpc_plan **plan, lw_layout *lay) {
  char err[512];
  sbpc_plan *p = sbpc_plan_read(o->plan, err, sizeof err);
  if (!p) {
    diag_file_error(o->plan, "%s", err);
    return EXIT_BAD_INPUT;
  }
  lay->dp = p->dp, lay->tp = p->tp, lay->pp = p->pp, lay->micro = p->num_micro_batches > 0 ? p->num_micro_batches : 1;
  lay->zero = p->zero;
  lay->vpp = p->vpp;
  lay->sp = p->sp;
  lay->sp_kind = fmt_spkind_parse(p->sp_kind); /* the plan reader checked the name */
  lay->recompute = p->recompute ? drv_recompute_parse(p->recompute) : 0;
  if (lay->recompute < 0) lay->recompute = 0;
  lay->global_batch = p->global_batch;
  lay->seq = p->seq;
  lay->plan = p;
  *plan = p;
  return EXIT_OK;
}

int drv_layout(const drv_layout_opts *o, const ir_program *prog, sbpc_plan **plan, lw_layout *lay) {
  memset(lay, 0, sizeof *lay);
  *plan = NULL;
  lay->dp = lay->tp = lay->pp = lay->micro = 1;
  int rc = o->plan ? from_plan(o, plan, lay) : EXIT_OK;
  if (rc) return rc;
  if (!lay->global_batch) lay->global_batch = prog->train.global_batch;
  if (!lay->seq) lay->seq = prog->train.seq;
  if (o->dp) lay->dp = o->dp;
  if (o->tp) lay->tp = o->tp;
  if (o->pp) lay->pp = o->pp;
  if (o->micro) lay->micro = o->micro;
  if (o->zero >= 0) lay->zero = o->zero;
  if (o->recompute >= 0) lay->recompute = o->recompute;
  lay->packed = o->packed;
  lay->adaptive = o->adaptive;
  if (o->sp_kind >= 0) lay->sp_kind = o->sp_kind;
  if (o->batch) lay->global_batch = o->batch;
  if (o->seq) lay->seq = o->seq;
  if (!lay->global_batch) lay->global_batch = 8;
  return EXIT_OK;
}
