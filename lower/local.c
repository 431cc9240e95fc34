/* local.c — one tensor-parallel rank's shard of the training graph.
 *
 * After SBP and boxing every rank of a tp group runs the same graph on its
 * shards, so the graph is made local once, here: every shape is evaluated
 * with the bound B and S, and the axis a tensor is split on, S(i), is
 * divided by tp (the logical shapes are kept for checkpoints). Kernels run
 * unchanged on local shapes (a matmul of a column shard is a matmul); the
 * attrs that count heads are divided where attention or rotary sees a
 * head-split input, and cross_entropy on batch-split logits is scaled by
 * local/logical tokens (its value is then a partial sum, P(sum)).
 *
 * Signatures that need the rank's place in the group are kept on the op
 * (in_sbp, out_sbp) for the executor: a vocabulary-split embedding table
 * (rows outside the rank's range give zeros: P(sum)), split positions (the
 * rank's run of positions) and a vocabulary-split
 * cross-entropy (Megatron's: the row max and sum of exponentials are
 * all-reduced over the group; a collective actor). What no kernel can run
 * (a split normalised axis) is refused here.
 *
 * Fused qkv: attention's qkv[..., 3H] split on its last axis must give each
 * rank the q, k and v columns of its heads, so a parameter feeding a fused
 * qkv is sharded in 3 interleaved groups: rank r holds columns
 * [g*H + r*H/tp, g*H + (r+1)*H/tp) for g = 0, 1, 2 (ctx->groups). */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

static bool refuse(lw_ctx *c, const ir_op *o, const char *why) {
  diag_error(c->d, o->loc, "tensor parallelism: %s '%s' %s", o->backward ? "backward op" : "op", ir_ops[o->kind].name, why);
  return false;
}

static int split_of(const ir_tensor *t) {
  return t->sbp.n == 1 && t->sbp.a[0].kind == SBP_S ? t->sbp.a[0].axis : -1;
}

static bool check_op(lw_ctx *c, const ir_op *o) {
  const ir_graph *g = c->p->g;
  const ir_tensor *x = &g->t[o->in[0]];
  switch (o->kind) {
  case IR_OP_EMBEDDING_GRAD:
    if (split_of(&g->t[o->out[0]]) == 0) return refuse(c, o, "with a vocabulary-split table gradient is not supported");
    break;
  case IR_OP_LAYER_NORM: case IR_OP_LAYER_NORM_GRAD: case IR_OP_RMS_NORM: case IR_OP_RMS_NORM_GRAD:
  case IR_OP_SOFTMAX: case IR_OP_SOFTMAX_GRAD:
    if (split_of(x) == x->rank - 1) return refuse(c, o, "with its reduced (last) axis split is not supported");
    break;
  case IR_OP_SEND_RECV: return refuse(c, o, "is not supported");
  default: break;
  }
  return true;
}

/* tokens seen by a cross_entropy: local over logical */
static double ce_fraction(const ir_graph *g, const ir_op *o, int tp) {
  int ax = split_of(&g->t[o->in[0]]);
  return ax >= 0 && ax < g->t[o->in[0]].rank - 1 ? 1.0 / tp : 1.0;
}

/* 3 when p feeds the qkv input of a fused attention (through matmul columns,
 * bias_add and add), else 1 */
static int qkv_groups(const ir_graph *g, ir_ref p) {
  ir_ref path[64];
  for (int k = 0; k < g->nop; k++)
    for (int i = 0, n = ir_qkv_path(g, &g->op[k], path, 64); i < n; i++)
      if (path[i] == p) return 3;
  return 1;
}

/* a fused attention's qkv split by heads must come from column-split
 * weights (3 interleave groups, qkv_groups): a collective that splits a
 * tensor of its path on the last axis (boxing S -> S(last) or B -> S(last),
 * a weight sliced at use) hands each rank a contiguous block, which mixes
 * q, k and v */
static bool qkv_by_collective(const ir_graph *g, const ir_op *a) {
  ir_ref path[64];
  for (int i = 0, n = ir_qkv_path(g, a, path, 64); i < n; i++) {
    const ir_tensor *x = &g->t[path[i]];
    if (x->producer >= 0 && split_of(x) == x->rank - 1 && ir_ops[g->op[x->producer].kind].kclass == KC_COMM) return true;
  }
  return false;
}

static bool local_attrs(lw_ctx *c, ir_op *o) {
  ir_graph *g = c->p->g;
  int tp = c->lay.tp;
  if (!check_op(c, o)) return false;
  if (o->kind == IR_OP_CROSS_ENTROPY || o->kind == IR_OP_CROSS_ENTROPY_GRAD) o->at.scale = ce_fraction(g, o, tp);
  bool heads = o->kind == IR_OP_ATTENTION || o->kind == IR_OP_ATTENTION_GRAD || o->kind == IR_OP_ROTARY ||
               o->kind == IR_OP_ROTARY_GRAD;
  const ir_tensor *x = &g->t[o->in[0]];
  if (heads && split_of(x) == x->rank - 1) {
    if (o->at.heads % tp || (o->at.kv_heads && o->at.kv_heads % tp)) return refuse(c, o, "heads do not divide by tp");
    if (o->kind == IR_OP_ATTENTION && o->nin == 1 && qkv_by_collective(g, o))
      return refuse(c, o, "gets its fused qkv split by heads from a collective, which would mix q, k and v: only "
                          "column-split qkv weights split it by head (the plan chose a layout the executor cannot run)");
    o->at.heads /= tp;
    o->at.kv_heads /= tp;
  }
  for (int i = 0; i < o->at.rank; i++) o->at.shape[i] = ir_const(ir_dim_eval(o->at.shape[i], g->bind_b, g->bind_s));
  return true;
}

bool lw_local(lw_ctx *c) {
  ir_graph *g = c->p->g;
  int tp = c->lay.tp;
  c->logical = xmalloc(sizeof *c->logical * (size_t)(g->nt + 1));
  c->groups = xmalloc(sizeof(int32_t) * (size_t)(g->nt + 1));
  for (int t = 0; t < g->nt; t++) {
    ir_tensor *x = &g->t[t];
    for (int i = 0; i < x->rank; i++) c->logical[t][i] = ir_dim_eval(x->shape[i], g->bind_b, g->bind_s);
    c->groups[t] = tp > 1 && x->kind == IR_T_PARAM && c->split[t] >= 0 ? qkv_groups(g, t) : 1;
  }
  for (int k = 0; k < g->nop; k++)
    if (!local_attrs(c, &g->op[k])) return false;
  for (int t = 0; t < g->nt; t++) {
    ir_tensor *x = &g->t[t];
    for (int i = 0; i < x->rank; i++) x->shape[i] = ir_const(c->logical[t][i]);
    int ax = c->split[t];
    if (ax < 0 || tp <= 1) continue;
    if (ax >= x->rank || x->shape[ax].c % ((int64_t)tp * c->groups[t])) {
      diag_error(c->d, x->loc, "tensor parallelism: '%s' axis %d does not split into %d parts", x->name, ax, tp);
      return false;
    }
    x->shape[ax].c /= tp;
  }
  /* a target shape (reshape, positions, select_grad) is its output's, local */
  for (int k = 0; k < g->nop; k++) {
    ir_op *o = &g->op[k];
    const ir_tensor *y = &g->t[o->out[0]];
    if (o->at.rank && o->at.rank == y->rank) memcpy(o->at.shape, y->shape, sizeof(ir_dim) * y->rank);
  }
  return true;
}
