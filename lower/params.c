/* params.c — parameter layouts and data-parallel gradient buckets.
 *
 * Every parameter gets its layout: Hugging Face name, logical shape, the axis
 * the tp ranks split it on (with its interleave groups), the stages that hold
 * it (those running an op that reads it), its AdamW op and state, the
 * gradient the update reads and the stage that makes it. That is what
 * checkpoints and --weights need to stay universal.
 *
 * Buckets: per stage, the parameters whose gradients that stage makes, in the
 * order the backward pass finishes them (the op that makes the gradient),
 * cut every lw_layout.bucket_bytes (IR_GRAD_BUCKET_BYTES, 25 MiB, by default:
 * PyTorch DDP's) of gradient, counted at the parameters' whole sizes. A bucket's reduction fires as soon as its last gradient of the
 * step's last micro-batch exists, so reduction overlaps the rest of the
 * backward pass (as in DDP and Megatron). A parameter held by more than one
 * stage (a tied embedding) gets a bucket of its own, so its reduced gradient
 * can go to the other stages alone. A bucket's gradients are all partial
 * sums over tp (lw_grad_tp_sum: one tp reduce of the bucket's span sums
 * them) or none are: the two kinds fill buckets of their own side by side. */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

static int adamw_of(const ir_graph *g, ir_ref t) {
  for (int k = 0; k < g->nop; k++)
    if (g->op[k].kind == IR_OP_ADAMW && g->op[k].in[0] == t) return k;
  return -1;
}

static void layout(lw_ctx *c, fmt_param *q, ir_ref t) {
  fmt_prog *p = c->p;
  const ir_graph *g = p->g;
  q->tensor = t;
  q->name = arena_strdup(p->a, g->t[t].name);
  q->rank = g->t[t].rank;
  memcpy(q->shape, c->logical[t], sizeof q->shape);
  q->split = c->lay.tp > 1 ? c->split[t] : -1;
  q->groups = q->split >= 0 ? c->groups[t] : 1;
  for (int k = 0; k < g->nop; k++)
    for (int i = 0; i < g->op[k].nin && g->op[k].kind != IR_OP_ADAMW; i++)
      if (g->op[k].in[i] == t) q->stages |= 1ull << p->op_stage[k];
  q->adamw = adamw_of(g, t);
  q->exp_avg = q->exp_avg_sq = q->grad = -1;
  q->grad_stage = -1;
  q->bucket = -1;
  if (q->adamw < 0) return;
  const ir_op *o = &g->op[q->adamw];
  q->grad = o->in[1], q->exp_avg = o->in[2], q->exp_avg_sq = o->in[3];
  q->grad_stage = p->op_stage[q->adamw];
}

/* made[i]: the op index that finishes param i's gradient (for ordering) */
static int made_at(const ir_graph *g, const fmt_param *q) { return q->grad >= 0 ? g->t[q->grad].producer : -1; }

/* buckets: per stage, two open buckets, one for gradients that are partial
 * sums over tp and one for the rest, each closed when the next gradient
 * would take it past cap; a tied parameter's bucket is its own */
static void buckets(lw_ctx *c, int *order, int n) {
  fmt_prog *p = c->p;
  int64_t cap = c->lay.bucket_bytes > 0 ? c->lay.bucket_bytes : IR_GRAD_BUCKET_BYTES;
  p->bucket = ARENA_ARRAY(p->a, fmt_bucket, p->nparam + 1);
  for (int s = 0; s < p->pp; s++) {
    int cur[2] = {-1, -1};
    int64_t bytes[2] = {0, 0};
    for (int i = 0; i < n; i++) {
      fmt_param *q = &p->param[order[i]];
      if (q->grad_stage != s) continue;
      bool tied = (q->stages & ~(1ull << s)) != 0;
      int k = lw_grad_tp_sum(p, q);
      int64_t b = ir_numel(p->g, q->tensor) * 4;
      if (cur[k] < 0 || tied || bytes[k] + b > cap) {
        cur[k] = p->nbucket++;
        p->bucket[cur[k]].stage = s;
        p->bucket[cur[k]].param = ARENA_ARRAY(p->a, int32_t, n + 1);
        bytes[k] = 0;
      }
      p->bucket[cur[k]].param[p->bucket[cur[k]].nparam++] = order[i];
      q->bucket = cur[k];
      bytes[k] += b;
      if (tied) cur[k] = -1;
    }
  }
}

bool lw_params(lw_ctx *c) {
  fmt_prog *p = c->p;
  const ir_graph *g = p->g;
  p->param = ARENA_ARRAY(p->a, fmt_param, g->nt + 1);
  for (int t = 0; t < g->nt; t++)
    if (g->t[t].kind == IR_T_PARAM) layout(c, &p->param[p->nparam++], t);
  /* backward order: the latest-made gradient last (insertion sort: few params) */
  int *order = xmalloc(sizeof(int) * (size_t)(p->nparam + 1)), n = 0;
  for (int i = 0; i < p->nparam; i++) {
    if (p->param[i].adamw < 0) continue;
    int j = n++;
    while (j > 0 && made_at(g, &p->param[order[j - 1]]) > made_at(g, &p->param[i])) order[j] = order[j - 1], j--;
    order[j] = i;
  }
  buckets(c, order, n);
  free(order);
  return true;
}
