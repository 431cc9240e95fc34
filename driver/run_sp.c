/* run_sp.c — the SP solver `sbpc run --adaptive-sp` hands the runtime
 * (runtime/rt.h, rt_sp_solver): the planner's sp_solve, the same code as
 * `sbpc sp`, behind the runtime's small interface, so runtime/ includes no
 * planner header.
 *
 * init: the model's dims from the program's graph (sp_model_from_graph; the
 * program's attention holds heads / sp, so heads are multiplied back), the
 * cluster (--cluster, else the preset cpu:N for N ranks), whose devices
 * must be the ranks, and each device's token budget set to the tokens a rank
 * holds per micro-batch (S / sp), so no group of g receives more than
 * g * S / sp tokens. The executor runs every group as Ulysses (packed
 * batches under ring attention are not done) and splits the heads evenly,
 * so the solver gets only Ulysses groups whose size divides the heads and kv
 * heads (sp_hw.ulysses_divides). The calibration (--calibration, else
 * $SBPC_CALIBRATION) brings the measured all-to-all and kernel rates, as
 * for `sbpc sp`. solve: sp_solve (adaptive) or
 * sp_uniform (--sp-degree G, the static baseline), converted to the
 * runtime's compact assignment (rt_sp_assign). */
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include "planner/sp.h"
#include "runtime/rt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *cluster;  /* --cluster, or NULL: cpu:N */
  int degree;           /* --sp-degree, 0: adaptive */
  int ranks, max_micro;
  sp_model m;
  sp_hw hw;
  sp_opts opt;
  plan_calib cal;       /* --calibration (else $SBPC_CALIBRATION), else the built-in rates */
  arena *a;             /* the cluster and hardware's strings */
} drv_sp;

static bool sp_init(void *ctx, const ir_graph *g, int sp, int ranks, int64_t cap, int max_micro, char *why,
                    size_t nwhy) {
  drv_sp *s = ctx;
  const char *w = NULL;
  if (!sp_model_from_graph(g, &s->m, &w)) return snprintf(why, nwhy, "%s", w), false;
  s->m.heads *= sp, s->m.kv_heads *= sp;
  char preset[32];
  snprintf(preset, sizeof preset, "cpu:%d", ranks);
  ir_cluster *c = fe_cluster_load(s->cluster ? s->cluster : preset, s->a);
  if (!c) return snprintf(why, nwhy, "the cluster '%s' cannot be loaded", s->cluster ? s->cluster : preset), false;
  if (!sp_hw_init(&s->hw, c, &s->m, IR_F32, &s->cal, s->a, &w)) return snprintf(why, nwhy, "%s", w), false;
  if (s->hw.ndev != ranks)
    return snprintf(why, nwhy, "the cluster has %d devices but %d ranks run", s->hw.ndev, ranks), false;
  for (int t = 0; t < s->hw.nt; t++) s->hw.t[t].budget = (double)cap;
  s->hw.ulysses_divides = true; /* the executor's groups: Ulysses, sizes dividing the heads */
  if (s->degree && (ranks % s->degree || s->m.heads % s->degree || s->m.kv_heads % s->degree))
    return snprintf(why, nwhy, "--sp-degree %d does not tile %d ranks of %lld heads", s->degree, ranks,
                    (long long)s->m.heads), false;
  s->ranks = ranks, s->max_micro = max_micro;
  s->opt.max_micro = max_micro;
  return true;
}

/* the plan as the runtime's assignment */
static void convert(const drv_sp *s, const sp_plan *p, int n, rt_sp_assign *out) {
  out->nmb = p->nmb;
  out->predicted_s = p->step_time;
  out->solve_s = p->solve_cpu;
  out->group = xmalloc(sizeof(int32_t) * (size_t)(p->nmb * s->ranks + 1));
  out->doc_mb = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
  out->doc_group = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
  for (int i = 0; i < p->nmb * s->ranks; i++) out->group[i] = -1;
  for (int q = 0; q < p->nmb; q++)
    for (int gi = 0; gi < p->mb[q].ngrp; gi++) {
      const sp_group *gr = &p->mb[q].grp[gi];
      for (int d = 0; d < gr->ndev; d++) out->group[q * s->ranks + gr->dev[d]] = gi;
      for (int i = 0; i < gr->nseq; i++) out->doc_mb[gr->seq[i]] = q, out->doc_group[gr->seq[i]] = gi;
    }
}

static bool sp_solve_cb(void *ctx, const int64_t *len, int n, rt_sp_assign *out, char *why, size_t nwhy) {
  drv_sp *s = ctx;
  int64_t longest = 0, cap = (int64_t)s->hw.t[0].budget * (s->degree ? s->degree : s->ranks);
  for (int i = 0; i < n; i++) longest = len[i] > longest ? len[i] : longest;
  if (longest > cap)
    return snprintf(why, nwhy, "a document of %lld tokens does not fit a group of %d rank%s (%lld tokens per rank and "
                    "micro-batch)", (long long)longest, s->degree ? s->degree : s->ranks,
                    (s->degree ? s->degree : s->ranks) == 1 ? "" : "s", (long long)s->hw.t[0].budget), false;
  arena *a = arena_new();
  sp_plan p;
  const char *w = "no SP layout holds the batch";
  bool ok = s->degree ? sp_uniform(&s->hw, &s->m, s->degree, SP_ULYSSES, len, n, &s->opt, a, &p)
                      : sp_solve(&s->hw, &s->m, len, n, &s->opt, a, &p, &w);
  if (ok && p.nmb > s->max_micro) {
    w = "the batch needs more micro-batches than the program holds (compile with a larger --micro)";
    ok = false;
  }
  if (ok) convert(s, &p, n, out);
  else snprintf(why, nwhy, "%s", w);
  arena_free(a);
  return ok;
}

rt_sp_solver *drv_sp_solver_new(const char *cluster, int degree, const char *calib) {
  drv_sp *s = xcalloc(1, sizeof *s);
  plan_calib_default(&s->cal);
  calib = plan_calib_path(calib);
  if (calib && !plan_calib_load(calib, &s->cal)) return free(s), NULL;
  s->cluster = cluster, s->degree = degree, s->a = arena_new(), s->opt = sp_opts_default();
  rt_sp_solver *v = xcalloc(1, sizeof *v);
  v->init = sp_init, v->solve = sp_solve_cb, v->ctx = s;
  return v;
}

void drv_sp_solver_free(rt_sp_solver *v) {
  if (!v) return;
  drv_sp *s = v->ctx;
  arena_free(s->a);
  free(s);
  free(v);
}
