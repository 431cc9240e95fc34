/* layout.c — the layout a program is compiled for, in one place for
 * `sbpc compile` and `sbpc run MODEL.sbp`: the plan's (read through the one
 * plan reader, format/sbpc_plan.h), then the flags, which win (--dp --tp
 * --pp --micro --zero --recompute --batch --seq), then the model's train
 * section for batch and sequence length, then 1. Interleaved stages (vpp)
 * and sequence parallelism (sp, run as Ulysses) come from the plan only. */
#include "driver/common.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"--dp", "--tp", "--pp", "--micro", "--zero"};

int drv_recompute_parse(const char *s) {
  const char *r[] = {"none", "selective", "full"};
  for (int i = 0; i < 3; i++)
    if (!strcmp(s, r[i])) return i;
  return -1;
}

static const char *value(int argc, char **argv, int *i, const char *name) {
  const char *s = argv[*i];
  size_t n = strlen(name);
  if (!strncmp(s, name, n) && s[n] == '=') return s + n + 1;
  if (strcmp(s, name)) return NULL;
  return *i + 1 < argc ? argv[++*i] : "";
}

int drv_layout_opt(int argc, char **argv, int *i, drv_layout_opts *o) {
  const char *v;
  int64_t x;
  int *dst[] = {&o->dp, &o->tp, &o->pp, &o->micro, &o->zero};
  for (int k = 0; k < 5; k++) {
    if (!(v = value(argc, argv, i, names[k]))) continue;
    if (!drv_parse_int(v, k == 4 ? 0 : 1, k == 4 ? 3 : 4096, &x)) {
      sbpc_error("bad value '%s' for %s (%s)", v, names[k], k == 4 ? "0 to 3" : "1 to 4096");
      return -1;
    }
    return *dst[k] = (int)x, 1;
  }
  if ((v = value(argc, argv, i, "--recompute"))) {
    if ((o->recompute = drv_recompute_parse(v)) < 0) {
      sbpc_error("bad value '%s' for --recompute (none, selective or full)", v);
      return -1;
    }
    return 1;
  }
  if ((v = value(argc, argv, i, "--plan"))) {
    if (!*v) return sbpc_error("--plan needs a file"), -1;
    return o->plan = v, 1;
  }
  return 0;
}

void drv_layout_opts_init(drv_layout_opts *o) {
  memset(o, 0, sizeof *o);
  o->recompute = o->zero = -1;
}

static int from_plan(const drv_layout_opts *o, sbpc_plan **plan, lw_layout *lay) {
  char err[512];
  sbpc_plan *p = sbpc_plan_read(o->plan, err, sizeof err);
  if (!p) {
    fprintf(stderr, "%s: error: %s\n", o->plan, err);
    return EXIT_BAD_INPUT;
  }
  lay->dp = p->dp, lay->tp = p->tp, lay->pp = p->pp, lay->micro = p->num_micro_batches > 0 ? p->num_micro_batches : 1;
  lay->zero = p->zero;
  lay->vpp = p->vpp;
  lay->sp = p->sp; /* Ulysses: the plan does not name the kind (lay->sp_kind 0) */
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
  if (o->batch) lay->global_batch = o->batch;
  if (o->seq) lay->seq = o->seq;
  if (!lay->global_batch) lay->global_batch = 8;
  return EXIT_OK;
}
