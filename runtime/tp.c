/* tp.c — tensor parallelism: running the SBP-lowered training graph.
 *
 * With tp > 1 the training graph is put on a 1-D mesh of tp devices and goes
 * through the IR's SBP deduction and boxing (ir/sbp.c, ir/boxing.c): the
 * compiler decides every layout, the runtime only executes. Then each rank's
 * copy of the graph is made local: every shape is evaluated with the bound B
 * and S and the axis a tensor is split on, S(i), is divided by tp. The CPU
 * kernels run unchanged on local shapes (a matmul of a column shard is a
 * matmul); the attrs that count heads are divided by tp where attention or
 * rotary sees a head-split input, and cross_entropy on batch-split logits is
 * scaled by local/logical tokens (its value is then a partial sum, P(sum)).
 * Communication ops become MPI collectives on the tp group (rt_tp_comm).
 *
 * Fused qkv: attention's qkv[..., 3H] split on its last axis must give each
 * rank the q, k and v columns of its heads, so a parameter feeding a fused
 * qkv (c_attn weight and bias) is sharded in 3 interleaved groups: rank r
 * holds columns [g*H + r*H/tp, g*H + (r+1)*H/tp) for g = 0, 1, 2. Parameters
 * and optimizer state are sliced from / gathered to their logical values
 * (rt_tp_shard / rt_tp_unshard), which is what makes checkpoints universal.
 * Unsupported layouts (vocab-parallel embedding or cross-entropy, a split
 * normalised axis, adamw state that would need boxing) are refused. */
#include "runtime/rt_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int split_axis(const ir_tensor *t) {
  return t->sbp.n == 1 && t->sbp.a[0].kind == SBP_S ? t->sbp.a[0].axis : -1;
}

static bool refuse(diag *d, const ir_op *o, const char *why) {
  diag_error(d, o->loc, "tensor parallelism: %s '%s' %s", o->backward ? "backward op" : "op", ir_ops[o->kind].name, why);
  return false;
}

/* adamw updates param and state in place: they must need no boxing */
static bool fix_states(ir_graph *g, diag *d) {
  for (int k = 0; k < g->nop; k++) {
    ir_op *o = &g->op[k];
    if (o->kind != IR_OP_ADAMW) continue;
    if (!ir_ndsbp_eq(&g->t[o->in[0]].sbp, &o->in_sbp[0])) return refuse(d, o, "needs its parameter re-laid out");
    g->t[o->in[2]].sbp = o->in_sbp[2];
    g->t[o->in[3]].sbp = o->in_sbp[3];
  }
  return true;
}

static bool check_op(const ir_graph *g, const ir_op *o, diag *d) {
  const ir_tensor *x = &g->t[o->in[0]];
  switch (o->kind) {
  case IR_OP_EMBEDDING: case IR_OP_EMBEDDING_GRAD:
    if (split_axis(&g->t[o->kind == IR_OP_EMBEDDING ? o->in[1] : o->out[0]]) == 0)
      return refuse(d, o, "with a vocabulary-split table is not supported");
    break;
  case IR_OP_CROSS_ENTROPY: case IR_OP_CROSS_ENTROPY_GRAD:
  case IR_OP_LAYER_NORM: case IR_OP_LAYER_NORM_GRAD: case IR_OP_RMS_NORM: case IR_OP_RMS_NORM_GRAD:
  case IR_OP_SOFTMAX: case IR_OP_SOFTMAX_GRAD:
    if (split_axis(x) == x->rank - 1) return refuse(d, o, "with its reduced (last) axis split is not supported");
    break;
  case IR_OP_POSITIONS:
    if (split_axis(&g->t[o->out[0]]) >= 0) return refuse(d, o, "split is not supported");
    break;
  case IR_OP_ALL_TO_ALL: case IR_OP_ALL_REDUCE: case IR_OP_ALL_GATHER: case IR_OP_REDUCE_SCATTER: case IR_OP_SLICE:
    if (o->at.mesh_axis != 0) return refuse(d, o, "on a second mesh axis is not supported");
    break;
  case IR_OP_SEND_RECV: return refuse(d, o, "is not supported");
  default: break;
  }
  return true;
}

/* tokens seen by a cross_entropy: local over logical */
static double ce_fraction(const ir_graph *g, const ir_op *o, int tp) {
  return split_axis(&g->t[o->in[0]]) >= 0 ? 1.0 / tp : 1.0;
}

static bool localise(ir_graph *g, int tp, diag *d) {
  for (int k = 0; k < g->nop; k++) {
    ir_op *o = &g->op[k];
    if (!check_op(g, o, d)) return false;
    if (o->kind == IR_OP_CROSS_ENTROPY || o->kind == IR_OP_CROSS_ENTROPY_GRAD) o->at.scale = ce_fraction(g, o, tp);
    bool heads = o->kind == IR_OP_ATTENTION || o->kind == IR_OP_ATTENTION_GRAD || o->kind == IR_OP_ROTARY ||
                 o->kind == IR_OP_ROTARY_GRAD;
    const ir_tensor *x = &g->t[o->in[0]];
    if (heads && split_axis(x) == x->rank - 1) {
      if (o->at.heads % tp || (o->at.kv_heads && o->at.kv_heads % tp)) return refuse(d, o, "heads do not divide by tp");
      o->at.heads /= tp;
      o->at.kv_heads /= tp;
    }
  }
  for (int t = 0; t < g->nt; t++) {
    ir_tensor *x = &g->t[t];
    for (int i = 0; i < x->rank; i++) x->shape[i] = ir_const(ir_dim_eval(x->shape[i], g->bind_b, g->bind_s));
    int ax = split_axis(x);
    if (ax < 0) continue;
    if (ax >= x->rank || x->shape[ax].c % tp) {
      diag_error(d, x->loc, "tensor parallelism: '%s' axis %d does not split into %d parts", x->name, ax, tp);
      return false;
    }
    x->shape[ax].c /= tp;
  }
  return true;
}

bool rt_tp_lower(ir_graph *g, int tp, diag *d) {
  g->mesh.n = 1;
  g->mesh.size[0] = tp;
  g->mesh.axis_name[0] = "tp";
  return ir_deduce_sbp(g, d) && fix_states(g, d) && ir_insert_boxing(g, d) && localise(g, tp, d);
}

/* ---- parameter sharding ---------------------------------------------------- */
/* 3 when p feeds the qkv input of a fused attention (through matmul columns,
 * bias_add and add), else 1 */
int rt_tp_groups(const ir_graph *g, ir_ref p) {
  for (int k = 0; k < g->nop; k++) {
    const ir_op *a = &g->op[k];
    if (a->kind != IR_OP_ATTENTION || a->nin != 1) continue;
    ir_ref stack[16];
    int n = 0;
    stack[n++] = a->in[0];
    while (n > 0) {
      ir_ref t = stack[--n];
      if (t == p) return 3;
      ir_ref pr = g->t[t].producer;
      if (pr < 0) continue;
      const ir_op *o = &g->op[pr];
      if (o->kind == IR_OP_MATMUL && n < 16) stack[n++] = o->in[1];
      if ((o->kind == IR_OP_BIAS_ADD || o->kind == IR_OP_ADD) && n < 15) stack[n++] = o->in[0], stack[n++] = o->in[1];
    }
  }
  return 1;
}

/* outer x (groups x tp x chunk) view of a tensor split on axis ax */
typedef struct {
  int64_t outer, chunk, groups;
} view;

static view view_of(const ir_graph *g, ir_ref t, int tp, int groups) {
  const ir_tensor *x = &g->t[t];
  int ax = split_axis(x);
  view v = {1, 1, groups};
  for (int i = 0; i < ax; i++) v.outer *= x->shape[i].c;
  for (int i = ax; i < x->rank; i++) v.chunk *= x->shape[i].c; /* local, from the split axis on */
  v.chunk /= groups;
  return v;
}

void rt_tp_shard(const ir_graph *g, ir_ref t, int tp, int tpi, int groups, const float *full, float *local) {
  if (split_axis(&g->t[t]) < 0) {
    memcpy(local, full, sizeof(float) * (size_t)ir_numel(g, t));
    return;
  }
  view v = view_of(g, t, tp, groups);
  for (int64_t o = 0; o < v.outer; o++)
    for (int64_t gi = 0; gi < v.groups; gi++)
      memcpy(local + (o * v.groups + gi) * v.chunk, full + ((o * v.groups + gi) * tp + tpi) * v.chunk,
             sizeof(float) * (size_t)v.chunk);
}

void rt_tp_unshard(const ir_graph *g, ir_ref t, int tp, int groups, const float *all, float *full) {
  int64_t n = ir_numel(g, t);
  if (split_axis(&g->t[t]) < 0) {
    memcpy(full, all, sizeof(float) * (size_t)n);
    return;
  }
  view v = view_of(g, t, tp, groups);
  for (int r = 0; r < tp; r++)
    for (int64_t o = 0; o < v.outer; o++)
      for (int64_t gi = 0; gi < v.groups; gi++)
        memcpy(full + ((o * v.groups + gi) * tp + r) * v.chunk, all + r * n + (o * v.groups + gi) * v.chunk,
               sizeof(float) * (size_t)v.chunk);
}

int64_t rt_tp_logical_numel(const ir_graph *g, ir_ref t, int tp) {
  return ir_numel(g, t) * (split_axis(&g->t[t]) >= 0 ? tp : 1);
}

/* ---- communication ops ------------------------------------------------------ */
static void slice_axis(const ir_graph *g, ir_ref local_t, int ax, int tp, int tpi, const float *full, float *out) {
  const ir_tensor *x = &g->t[local_t];
  int64_t outer = 1, chunk = 1;
  for (int i = 0; i < ax; i++) outer *= x->shape[i].c;
  for (int i = ax; i < x->rank; i++) chunk *= x->shape[i].c;
  for (int64_t o = 0; o < outer; o++) memcpy(out + o * chunk, full + (o * tp + tpi) * chunk, sizeof(float) * (size_t)chunk);
}

/* embed_axis: the full tensor with this rank's slice (local) in place along
 * axis ax and `fill` everywhere else (S(ax) -> P: 0 for a sum, -inf for max). */
static void embed_axis(const ir_graph *g, ir_ref local_t, int ax, int tp, int tpi, const float *local, float *full,
                       float fill) {
  const ir_tensor *x = &g->t[local_t];
  int64_t n = ir_numel(g, local_t), outer = 1, chunk = 1;
  for (int i = 0; i < ax; i++) outer *= x->shape[i].c;
  for (int i = ax; i < x->rank; i++) chunk *= x->shape[i].c;
  for (int64_t i = 0; i < n * tp; i++) full[i] = fill;
  for (int64_t o = 0; o < outer; o++) memcpy(full + (o * tp + tpi) * chunk, local + o * chunk, sizeof(float) * (size_t)chunk);
}

static void gather_axis(rt_comm *c, const ir_graph *g, ir_ref local_t, int ax, int tp, const float *in, float *full) {
  const ir_tensor *x = &g->t[local_t];
  int64_t n = ir_numel(g, local_t), outer = 1, chunk = 1;
  for (int i = 0; i < ax; i++) outer *= x->shape[i].c;
  for (int i = ax; i < x->rank; i++) chunk *= x->shape[i].c;
  float *all = xmalloc(sizeof(float) * (size_t)(n * tp));
  rt_comm_allgather_tp(c, in, n, all);
  for (int r = 0; r < tp; r++)
    for (int64_t o = 0; o < outer; o++)
      memcpy(full + (o * tp + r) * chunk, all + r * n + o * chunk, sizeof(float) * (size_t)chunk);
  free(all);
}

bool rt_tp_comm(rt_comm *c, const ir_graph *g, const ir_op *o, const float *in, float *out, int tp, int tpi) {
  ir_sbp from = o->at.from, to = o->at.to;
  ir_ref x = o->in[0], y = o->out[0];
  int64_t nin = ir_numel(g, x), nout = ir_numel(g, y);
  if (from.kind == SBP_S && to.kind == SBP_B) {
    gather_axis(c, g, x, from.axis, tp, in, out);
  } else if ((from.kind == SBP_PSUM || from.kind == SBP_PMAX) && to.kind == SBP_B) {
    memcpy(out, in, sizeof(float) * (size_t)nin);
    rt_comm_allreduce_tp(c, out, nout, from.kind == SBP_PMAX);
  } else if ((from.kind == SBP_PSUM || from.kind == SBP_PMAX) && to.kind == SBP_S) {
    float *full = xmalloc(sizeof(float) * (size_t)nin);
    memcpy(full, in, sizeof(float) * (size_t)nin);
    rt_comm_allreduce_tp(c, full, nin, from.kind == SBP_PMAX);
    slice_axis(g, y, to.axis, tp, tpi, full, out);
    free(full);
  } else if (from.kind == SBP_B && to.kind == SBP_S) {
    slice_axis(g, y, to.axis, tp, tpi, in, out);
  } else if (from.kind == SBP_B && (to.kind == SBP_PSUM || to.kind == SBP_PMAX)) {
    if (tpi == 0) memcpy(out, in, sizeof(float) * (size_t)nin);
    else memset(out, 0, sizeof(float) * (size_t)nin);
  } else if (from.kind == SBP_S && (to.kind == SBP_PSUM || to.kind == SBP_PMAX)) {
    embed_axis(g, x, from.axis, tp, tpi, in, out, to.kind == SBP_PMAX ? -INFINITY : 0.0f);
  } else if (from.kind == SBP_S && to.kind == SBP_S) {
    float *full = xmalloc(sizeof(float) * (size_t)(nin * tp));
    gather_axis(c, g, x, from.axis, tp, in, full);
    slice_axis(g, y, to.axis, tp, tpi, full, out);
    free(full);
  } else if (ir_sbp_eq(from, to)) {
    memcpy(out, in, sizeof(float) * (size_t)nin);
  } else {
    char a[16], b[16];
    fprintf(stderr, "sbpc: error: no runtime boxing from %s to %s\n", ir_sbp_str(from, a, sizeof a), ir_sbp_str(to, b, sizeof b));
    return false;
  }
  return true;
}

int rt_tp_logical_shape(const ir_graph *g, ir_ref t, int tp, int64_t *shape) {
  const ir_tensor *x = &g->t[t];
  int ax = tp > 1 ? split_axis(x) : -1;
  for (int i = 0; i < x->rank; i++) shape[i] = ir_dim_eval(x->shape[i], g->bind_b, g->bind_s) * (i == ax ? tp : 1);
  return x->rank;
}

bool rt_tp_loss_partial(const ir_graph *g) {
  const ir_tensor *l = &g->t[g->loss];
  return l->sbp.n == 1 && l->sbp.a[0].kind == SBP_PSUM;
}
