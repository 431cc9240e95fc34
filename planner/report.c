/* report.c — the readable report of `sbpc plan`.
 *
 * The devices used when the layout leaves some idle, the runtime profile
 * it was costed for, the chosen layout, the
 * mesh order, the stages, the step time split into
 * compute / exposed communication / bubble, memory per device split into
 * parameters / gradients / optimizer / activations / workspace with the
 * dominant part named, and why the runner-up lost (the component of the step
 * time where it is worse by the most). --explain adds each stage, every op's
 * SBP on the tp axis and the boxings. */
#include "planner/plan_int.h"
#include <string.h>

static const char *axn[4] = {"pp", "dp", "sp", "tp"};

static int axsize(const plan_layout *l, int a) {
  return a == 0 ? l->pp : a == 1 ? l->dp : a == 2 ? l->sp : l->tp;
}

static double gb(double b) { return b / 1e9; }

static void layout_line(FILE *f, const plan_layout *l) {
  fprintf(f, "dp=%d tp=%d pp=%d sp=%d vpp=%d mbs=%d (x%d micro-batches) recompute=%s zero=%d",
          l->dp, l->tp, l->pp, l->sp, l->vpp, l->mbs, l->m, plan_recompute_name(l->recompute), l->zero);
}

static void runner_up(const plan_result *r, FILE *f) {
  if (r->ntop < 2) {
    fprintf(f, "runner-up:  none (only one layout fits)\n");
    return;
  }
  const plan_layout *a = &r->top[0], *b = &r->top[1];
  for (int i = 1; i < r->ntop; i++) { /* prefer one that differs in more than the ZeRO stage */
    const plan_layout *c = &r->top[i];
    if (c->dp != a->dp || c->tp != a->tp || c->pp != a->pp || c->sp != a->sp || c->vpp != a->vpp ||
        c->mbs != a->mbs || c->recompute != a->recompute) {
      b = c;
      break;
    }
  }
  fprintf(f, "runner-up:  ");
  layout_line(f, b);
  if (b->nused != a->nused) fprintf(f, " on %d devices", b->nused);
  fprintf(f, "\n            step %.3f s (+%.1f%%): ", b->step_s, 100 * (b->step_s / a->step_s - 1));
  double d[3] = {b->compute_s - a->compute_s, b->comm_s - a->comm_s, b->bubble_s - a->bubble_s};
  const char *n[3] = {"compute", "exposed communication", "pipeline bubble"};
  int k = 0;
  for (int i = 1; i < 3; i++) if (d[i] > d[k]) k = i;
  if (d[k] <= 1e-9) fprintf(f, "the same time within rounding\n");
  else fprintf(f, "it loses %.3f s on %s\n", d[k], n[k]);
}

static void explain(const plan_result *r, const plan_layout *l, FILE *f) {
  char b1[48], b2[48];
  fprintf(f, "\nstages:\n");
  for (int s = 0; s < l->pp; s++) {
    const plan_stage *x = &l->stage[s];
    fprintf(f, "  %3d  layers %d..%d  %s  %.4f s per micro-batch  %.1f GB\n", s, x->first, x->last,
            r->c->dev[x->devtype].name, x->time_s, gb(x->mem_bytes));
  }
  fprintf(f, "\nSBP on the tp axis (layer 0 of each block; every layer the same):\n");
  for (int i = 0; i < r->nops; i++) {
    const plan_opsbp *x = &r->ops[i];
    const ir_op *o = &r->g->op[x->op];
    fprintf(f, "  %-6d %-14s %-4s out %-7s in", x->op, ir_ops[o->kind].name,
            o->block >= 0 ? r->g->blk[o->block].name : "-", ir_sbp_str(x->s.out[0], b1, sizeof b1));
    for (int k = 0; k < o->nin; k++) fprintf(f, " %s", ir_sbp_str(x->s.in[k], b2, sizeof b2));
    fprintf(f, "\n");
  }
  fprintf(f, "\nboxing per layer and micro-batch:\n");
  for (int i = 0; i < r->nbox; i++) {
    const plan_boxing *x = &r->box[i];
    if (x->coll == IR_OP_SLICE) continue;
    fprintf(f, "  op %-6d %-8s %-7s -> %-7s %-15s %10.1f MB\n", x->op, x->backward ? "backward" : "forward",
            ir_sbp_str(x->from, b1, sizeof b1), ir_sbp_str(x->to, b2, sizeof b2), plan_coll_name(x->coll),
            x->bytes / 1e6);
  }
}

/* used_line: when the layout leaves devices idle, which it uses and why */
static void used_line(const plan_result *r, const plan_layout *l, FILE *f) {
  if (l->nused >= r->ndev || !l->used) return;
  int lo = l->used[0], hi = l->used[0];
  for (int i = 1; i < l->nused; i++) {
    if (l->used[i] < lo) lo = l->used[i];
    if (l->used[i] > hi) hi = l->used[i];
  }
  fprintf(f, "devices:    %d of %d used (global ranks %d..%d%s); the others stay idle: with batch %lld "
             "and %d layers no layout on more devices is faster\n", l->nused, r->ndev, lo, hi,
          hi - lo + 1 == l->nused ? "" : ", not contiguous", (long long)r->opt.global_batch, r->layers);
}

void plan_print_report(const plan_result *r, FILE *f, bool expl) {
  const plan_layout *l = &r->top[0];
  if (r->ntop == 0) return;
  double tok = (double)r->opt.global_batch * r->opt.seq;
  fprintf(f, "model:      %s, %.3g B parameters, %d layers\n", r->g->name ? r->g->name : "model",
          r->params / 1e9, r->layers);
  fprintf(f, "cluster:    %s, %d devices in %d nodes; batch %lld x seq %lld, %s\n", r->c->name, r->ndev,
          r->nnodes, (long long)r->opt.global_batch, (long long)r->opt.seq, ir_dtype_name(r->opt.precision));
  used_line(r, l, f);
  const plan_runtime *rt = &r->opt.calib.rt;
  fprintf(f, "runtime:    %s (%s attention, %ssequence parallel, %s gradients%s, %sdistributed optimizer%s)\n",
          rt->name ? rt->name : "custom", rt->flash_attention ? "flash" : "materialised", rt->seq_parallel ? "" : "no ",
          rt->grad_reduce_bytes >= 4 ? "fp32" : "bf16", rt->grad_overlap > 0 ? " overlapped" : " after the backward",
          rt->dist_optimizer ? "" : "no ", rt->tp_comm_overlap ? ", tp comm overlapped" : "");
  fprintf(f, "layout:     ");
  layout_line(f, l);
  fprintf(f, "\nmesh:       ");
  for (int i = 0; i < 4; i++) fprintf(f, "%s%s=%d", i ? " > " : "", axn[l->axis_order[i]], axsize(l, l->axis_order[i]));
  fprintf(f, " (outermost first; the innermost axis is consecutive ranks)\n");
  fprintf(f, "stages:     %d (", l->pp);
  for (int s = 0; s < l->pp && s < 16; s++) fprintf(f, "%s%s", s ? " " : "", r->c->dev[l->stage[s].devtype].name);
  fprintf(f, "%s), layers per stage:", l->pp > 16 ? " ..." : "");
  for (int s = 0; s < l->pp && s < 16; s++) fprintf(f, " %d", l->stage[s].last - l->stage[s].first + 1);
  fprintf(f, "%s\n", l->pp > 16 ? " ..." : "");
  fprintf(f, "step:       %.3f s = compute %.3f + exposed comm %.3f + bubble %.3f\n", l->step_s, l->compute_s,
          l->comm_s, l->bubble_s);
  fprintf(f, "throughput: %.0f tokens/s, %.1f model / %.1f hardware TFLOP/s per device, MFU %.1f%%\n",
          tok / l->step_s, l->model_flops / l->step_s / l->nused / 1e12, l->hw_flops / l->step_s / l->nused / 1e12,
          100 * l->model_flops / l->step_s / l->nused / l->peak_flops);
  fprintf(f, "memory:     %.1f GB per device = params %.1f + grads %.1f + optimizer %.1f + activations %.1f"
             " + workspace %.1f (largest: %s)\n", gb(l->mem_bytes), gb(l->mem_params), gb(l->mem_grads),
          gb(l->mem_opt), gb(l->mem_act), gb(l->mem_work), plan_dominant(l));
  runner_up(r, f);
  fprintf(f, "search:     %ld candidates, %ld evaluated, %ld GLPK programs, %.3f s%s%s\n", r->candidates,
          r->evaluated, r->ilp_solves, r->solve_time_s, r->fallback ? "; fallback: " : "", r->fallback ? r->note : "");
  if (expl) explain(r, l, f);
}
