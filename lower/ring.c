/* ring.c — sequence parallelism's ring attention (the sp pass, sp.c, calls
 * it for sp_kind "ring"), as in Ring Attention and Megatron-LM's context
 * parallelism. Every rank of the sp group keeps its S / sp tokens of q, k
 * and v; k and v travel around the group as one block kv = [k | v]
 * (a fused qkv is split first), and each rank attends its queries to each
 * block as it passes:
 *
 *   kv_0 = concat(k, v)
 *   step j = 0 .. sp-1:  kv_{j+1} = ring_shift(kv_j)            (j < sp-1)
 *                        (o_j, lse_j) = ring_attention_j(q, kv_j[, o_{j-1}, lse_{j-1}])
 *   y = o_{sp-1}
 *
 * ring_shift is a coll actor on the sp group (send to the next member,
 * receive from the previous) and reads the block the step computes on, so
 * the transfer overlaps the step. At step j rank r holds rank (r - j) mod
 * sp's block; the kernel masks by global positions, skips a block wholly in
 * the future (causal) and merges each block into the running output by its
 * log-sum-exp (runtime/kernels_ring.c). The backward pass sends kv around
 * again, with each block's gradient travelling behind it:
 *
 *   step 0:  (dq_0, c_0, st) = ring_attention_grad_0(q, kv_0, y, dy, lse)
 *            (st: lse and delta = rowsum(dy * y) per head)
 *   step j:  dkv_in = ring_shift(dkv_{j-1}); (dq_j, c_j) = ring_attention_grad_j(q, kv_j, dy, st, dq_{j-1})
 *            dkv_j = c_j + dkv_in            (dkv_0 = c_0)
 *   dkv = ring_shift(dkv_{sp-1})             (back at the block's owner)
 *   dq = dq_{sp-1}; dk, dv = split(dkv), or dqkv = concat(dq, dkv)
 *
 * Each step computes its contribution c_j without the travelling gradient,
 * so the gradient's shift overlaps the step too; the add joins them. The
 * forward tensors the backward pass reads (q, kv_0, y, lse) are recorded
 * per attention output. */
#include "lower/sp.h"
#include <stdio.h>

/* an op of the rewrite of `like` (its block, layer and pass) */
static ir_op like_op(const ir_op *like, ir_opkind kind) {
  ir_op o = ir_op_init(kind);
  o.block = like->block, o.layer = like->layer, o.lidx = -1;
  o.backward = like->backward, o.recompute = like->recompute;
  o.loc = like->loc;
  return o;
}

static void emit2(lw_spc *s, ir_op *o, int fwd, ir_ref a, ir_ref b, ir_ref y) {
  o->in[0] = a, o->in[1] = b, o->nin = 2, o->out[0] = y, o->nout = 1;
  lw_sp_emit(s, o, fwd);
}

/* y = x of the previous member of the sp group */
static ir_ref shift(lw_spc *s, const ir_op *like, ir_ref x, const char *name, int fwd) {
  ir_ref y = lw_sp_tensor(s, x, name, 0);
  ir_op o = like_op(like, IR_OP_RING_SHIFT);
  o.at.mesh_axis = 1;
  o.at.from = o.at.to = (ir_sbp){SBP_S, 1};
  o.in[0] = x, o.nin = 1, o.out[0] = y, o.nout = 1;
  lw_sp_emit(s, &o, fwd);
  return y;
}

/* a ring step of attention `like` at step j */
static ir_op step_op(const ir_op *like, ir_opkind kind, int j) {
  ir_op o = like_op(like, kind);
  o.at = like->at;
  o.at.n = j;
  return o;
}

static char *nm(char *buf, const char *what, int j) {
  snprintf(buf, 16, "%s%d", what, j);
  return buf;
}

/* q and kv = [k | v] of attention a's inputs (a fused qkv split first) */
static void q_kv(lw_spc *s, const ir_op *a, ir_ref *q, ir_ref *kv) {
  ir_ref k, v;
  if (a->nin == 1) {
    ir_graph *g = s->c->p->g;
    const ir_tensor *x = &g->t[a->in[0]];
    int64_t H = x->shape[x->rank - 1].c / 3;
    *q = lw_sp_tensor(s, a->in[0], "q", H), k = lw_sp_tensor(s, a->in[0], "k", H), v = lw_sp_tensor(s, a->in[0], "v", H);
    ir_op o = like_op(a, IR_OP_SPLIT);
    o.at.axis = -1, o.at.n = 3;
    o.in[0] = a->in[0], o.nin = 1, o.out[0] = *q, o.out[1] = k, o.out[2] = v, o.nout = 3;
    lw_sp_emit(s, &o, -1);
  } else {
    *q = a->in[0], k = a->in[1], v = a->in[2];
  }
  const ir_tensor *kt = &s->c->p->g->t[k];
  *kv = lw_sp_tensor(s, k, "kv", 2 * kt->shape[kt->rank - 1].c);
  ir_op o = like_op(a, IR_OP_CONCAT);
  o.at.axis = -1;
  emit2(s, &o, -1, k, v, *kv);
}

/* nf: the forward attention's inputs */
static bool inputs_ok(lw_spc *s, const ir_op *a, int nf) {
  if (nf == 1 || nf == 3) return true;
  diag_error(s->c->d, a->loc, "ring attention: attention takes a fused qkv or q, k, v");
  return false;
}

int lw_ring_forward(lw_spc *s, const ir_op *a) {
  if (!inputs_ok(s, a, a->nin)) return -1;
  ir_ref q, kv, y = a->out[0], o = -1, l = -1;
  q_kv(s, a, &q, &kv);
  ir_ref cur = kv, lse0 = lw_sp_tensor(s, q, "lse", a->at.heads);
  char buf[16];
  int last = -1;
  for (int j = 0; j < s->sp; j++) {
    ir_ref next = j < s->sp - 1 ? shift(s, a, cur, nm(buf, "kv", j + 1), -1) : -1;
    ir_op st = step_op(a, IR_OP_RING_ATTENTION, j);
    st.in[0] = q, st.in[1] = cur, st.in[2] = o, st.in[3] = l, st.nin = j ? 4 : 2;
    st.out[0] = j == s->sp - 1 ? y : lw_sp_tensor(s, y, nm(buf, "o", j), 0);
    st.out[1] = j == 0 ? lse0 : lw_sp_tensor(s, lse0, nm(buf, "", j), 0);
    st.nout = 2;
    last = s->c->p->g->nop;
    lw_sp_emit(s, &st, -1);
    o = st.out[0], l = st.out[1], cur = next;
  }
  s->ring[y][0] = q, s->ring[y][1] = kv, s->ring[y][2] = l;
  return last;
}

/* dx: the attention's input gradients from dq and the home block's dkv */
static void input_grads(lw_spc *s, const ir_op *ag, ir_ref dq, ir_ref dkv, int fwd) {
  ir_op o = like_op(ag, ag->nout == 1 ? IR_OP_CONCAT : IR_OP_SPLIT);
  o.at.axis = -1;
  if (ag->nout == 1) {
    emit2(s, &o, fwd, dq, dkv, ag->out[0]);
    return;
  }
  o.at.n = 2;
  o.in[0] = dkv, o.nin = 1, o.out[0] = ag->out[1], o.out[1] = ag->out[2], o.nout = 2;
  lw_sp_emit(s, &o, fwd);
}

/* step j's gradient op: (dq_j, c_j[, st]) */
static void grad_step(lw_spc *s, const ir_op *ag, const ir_ref *r, ir_ref kvj, ir_ref *dq, ir_ref *c, ir_ref *st, int j,
                      int fwd) {
  char buf[16];
  ir_ref y = ag->in[ag->nin - 2], dy = ag->in[ag->nin - 1];
  ir_op o = step_op(ag, IR_OP_RING_ATTENTION_GRAD, j);
  o.in[0] = r[0], o.in[1] = kvj, o.nin = 5;
  if (j == 0) o.in[2] = y, o.in[3] = dy, o.in[4] = r[2];
  else o.in[2] = dy, o.in[3] = *st, o.in[4] = *dq;
  bool last_q = j == s->sp - 1 && ag->nout == 3; /* the separate dq is the original's */
  o.out[0] = last_q ? ag->out[0] : lw_sp_tensor(s, r[0], nm(buf, "dq", j), 0);
  o.out[1] = *c = lw_sp_tensor(s, r[1], nm(buf, "dkv", j), 0);
  o.nout = 2;
  if (j == 0) o.out[2] = *st = lw_sp_tensor(s, r[2], "st", 2 * ag->at.heads), o.nout = 3;
  lw_sp_emit(s, &o, fwd);
  *dq = o.out[0];
}

int lw_ring_backward(lw_spc *s, const ir_op *ag, int fwd) {
  if (!inputs_ok(s, ag, ag->nin - 2)) return -1;
  ir_ref y = ag->in[ag->nin - 2];
  if (y >= s->nt0 || s->ring[y][0] < 0) {
    diag_error(s->c->d, ag->loc, "ring attention: attention_grad reads an output no ring attention made");
    return -1;
  }
  const ir_ref *r = s->ring[y];
  ir_ref cur = r[1], dq = -1, dkv = -1, st = -1, c;
  char buf[16];
  int first = s->c->p->g->nop;
  for (int j = 0; j < s->sp; j++) {
    ir_ref next = j < s->sp - 1 ? shift(s, ag, cur, nm(buf, "kvb", j + 1), fwd) : -1;
    ir_ref in = j ? shift(s, ag, dkv, nm(buf, "dkvin", j), fwd) : -1;
    grad_step(s, ag, r, cur, &dq, &c, &st, j, fwd);
    if (j) {
      ir_op add = like_op(ag, IR_OP_ADD);
      dkv = lw_sp_tensor(s, c, "acc", 0);
      emit2(s, &add, fwd, c, in, dkv);
    } else {
      dkv = c;
    }
    cur = next;
  }
  input_grads(s, ag, dq, shift(s, ag, dkv, "home", fwd), fwd);
  return first;
}
