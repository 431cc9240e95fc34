/* sigs.c — the 1-D SBP signatures of forward ops on the tp axis, as the
 * planner sees them.
 *
 * This is the planner's copy of the rule the op registry states (ir_op_sigs):
 * kept here so the planner can check divisibility by the axis size itself and
 * works on graphs whose shapes were set by hand. For each op kind it lists the
 * signatures that are valid without extra communication: splitting a batch or
 * sequence axis through elementwise and row ops, column / row / batch splits
 * of matmul (row split gives P(sum)), head splits of attention, vocabulary
 * splits of embedding and cross-entropy, and always the all-B (replicated)
 * signature. A split S(i) is offered only when axis i divides by n. */
#include "planner/plan_int.h"
#include <string.h>

int plan_tshape(const ir_graph *g, ir_ref t, int64_t b, int64_t s, int64_t *dims) {
  const ir_tensor *x = &g->t[t];
  for (int i = 0; i < x->rank; i++) dims[i] = ir_dim_eval(x->shape[i], b, s);
  return x->rank;
}

typedef struct {
  ir_sig *sigs;
  int n;
} siglist;

static ir_sbp sS(int a) { ir_sbp x = {SBP_S, (int8_t)a}; return x; }
static ir_sbp sB(void) { ir_sbp x = {SBP_B, 0}; return x; }
static ir_sbp sP(void) { ir_sbp x = {SBP_PSUM, 0}; return x; }

static void add(siglist *l, int nin, const ir_sbp *in, int nout, const ir_sbp *out) {
  if (l->n >= IR_MAXSIGS) return;
  ir_sig *s = &l->sigs[l->n++];
  memset(s, 0, sizeof *s);
  for (int i = 0; i < nin; i++) s->in[i] = in[i];
  for (int i = 0; i < nout; i++) s->out[i] = out[i];
}

/* all_same: every input and output gets x */
static void add_same(siglist *l, const ir_op *o, ir_sbp x) {
  ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
  for (int i = 0; i < o->nin; i++) in[i] = x;
  for (int i = 0; i < o->nout; i++) out[i] = x;
  add(l, o->nin, in, o->nout, out);
}

typedef struct {
  const ir_graph *g;
  int n;
  int64_t b, s;
} ctx;

static bool div_ok(const ctx *c, ir_ref t, int axis) {
  int64_t d[IR_MAXRANK];
  int r = plan_tshape(c->g, t, c->b, c->s, d);
  return axis >= 0 && axis < r && d[axis] % c->n == 0 && d[axis] >= c->n;
}

static int rank(const ctx *c, ir_ref t) { return c->g->t[t].rank; }

/* elementwise with trailing broadcast of the later inputs onto input 0 */
static void sigs_elem(const ctx *c, const ir_op *o, siglist *l, bool linear, bool last_ok) {
  int r = rank(c, o->in[0]);
  int64_t d0[IR_MAXRANK];
  plan_tshape(c->g, o->in[0], c->b, c->s, d0);
  for (int i = 0; i < r; i++) {
    if (!last_ok && i == r - 1) continue;
    if (!div_ok(c, o->in[0], i)) continue;
    ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
    for (int k = 0; k < o->nin; k++) {
      int64_t dk[IR_MAXRANK];
      int rk = plan_tshape(c->g, o->in[k], c->b, c->s, dk);
      int j = i - (r - rk);
      in[k] = (j >= 0 && dk[j] == d0[i]) ? sS(j) : sB();
    }
    for (int k = 0; k < o->nout; k++) out[k] = sS(i);
    add(l, o->nin, in, o->nout, out);
  }
  if (linear) add_same(l, o, sP());
}

static void sigs_matmul(const ctx *c, const ir_op *o, siglist *l) {
  ir_ref A = o->in[0], Bt = o->in[1];
  int ra = rank(c, A), rb = rank(c, Bt), ro = rank(c, o->out[0]);
  if (ra < 2 || rb < 2) return;
  int am = o->at.trans_a ? ra - 1 : ra - 2, ak = o->at.trans_a ? ra - 2 : ra - 1;
  int bk = o->at.trans_b ? rb - 1 : rb - 2, bn = o->at.trans_b ? rb - 2 : rb - 1;
  for (int i = 0; i < ra - 2; i++) /* batch axes */
    if (div_ok(c, A, i)) {
      int j = i - (ra - rb);
      ir_sbp in[2] = {sS(i), j >= 0 ? sS(j) : sB()}, out[1] = {sS(i)};
      add(l, 2, in, 1, out);
    }
  if (div_ok(c, A, am)) {
    ir_sbp in[2] = {sS(am), sB()}, out[1] = {sS(ro - 2)};
    add(l, 2, in, 1, out);
  }
  if (div_ok(c, Bt, bn)) {
    ir_sbp in[2] = {sB(), sS(bn)}, out[1] = {sS(ro - 1)};
    add(l, 2, in, 1, out);
  }
  if (div_ok(c, A, ak) && div_ok(c, Bt, bk)) {
    ir_sbp in[2] = {sS(ak), sS(bk)}, out[1] = {sP()};
    add(l, 2, in, 1, out);
  }
}

static void sigs_attention(const ctx *c, const ir_op *o, siglist *l) {
  if (div_ok(c, o->in[0], 0)) add_same(l, o, sS(0));
  int r = rank(c, o->in[0]);
  int64_t kv = o->at.kv_heads > 0 ? o->at.kv_heads : o->at.heads;
  if (o->at.heads > 0 && o->at.heads % c->n == 0 && kv % c->n == 0 && div_ok(c, o->in[0], r - 1))
    add_same(l, o, sS(r - 1));
}

static void sigs_embedding(const ctx *c, const ir_op *o, siglist *l) {
  int r = rank(c, o->in[0]);
  for (int i = 0; i < r; i++)
    if (div_ok(c, o->in[0], i)) {
      ir_sbp in[2] = {sS(i), sB()}, out[1] = {sS(i)};
      add(l, 2, in, 1, out);
    }
  if (div_ok(c, o->in[1], 1)) {
    ir_sbp in[2] = {sB(), sS(1)}, out[1] = {sS(r)};
    add(l, 2, in, 1, out);
  }
  if (div_ok(c, o->in[1], 0)) {
    ir_sbp in[2] = {sB(), sS(0)}, out[1] = {sP()};
    add(l, 2, in, 1, out);
  }
}

static void sigs_xent(const ctx *c, const ir_op *o, siglist *l) {
  int r = rank(c, o->in[0]);
  for (int i = 0; i < r - 1; i++)
    if (div_ok(c, o->in[0], i)) {
      ir_sbp in[2] = {sS(i), sS(i)}, out[1] = {sP()};
      add(l, 2, in, 1, out);
    }
  if (div_ok(c, o->in[0], r - 1)) {
    ir_sbp in[2] = {sS(r - 1), sB()}, out[1] = {sP()};
    add(l, 2, in, 1, out);
  }
}

static void sigs_transpose(const ctx *c, const ir_op *o, siglist *l) {
  int r = rank(c, o->in[0]);
  for (int i = 0; i < r; i++)
    if (div_ok(c, o->in[0], i)) {
      int j = i == r - 1 ? r - 2 : i == r - 2 ? r - 1 : i;
      ir_sbp in[1] = {sS(i)}, out[1] = {sS(j)};
      add(l, 1, in, 1, out);
    }
}

/* ops whose axis `ax` must stay whole (row ops, split, concat) */
static void sigs_keep_axis(const ctx *c, const ir_op *o, siglist *l, int ax) {
  int r = rank(c, o->in[0]);
  if (ax < 0) ax += r;
  for (int i = 0; i < r; i++) {
    if (i == ax || !div_ok(c, o->in[0], i)) continue;
    ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
    in[0] = sS(i);
    for (int k = 1; k < o->nin; k++) in[k] = rank(c, o->in[k]) == r ? sS(i) : sB();
    for (int k = 0; k < o->nout; k++) out[k] = sS(i);
    add(l, o->nin, in, o->nout, out);
  }
}

static void sigs_kind(const ctx *c, const ir_op *o, siglist *l) {
  switch (o->kind) {
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_BIAS_ADD:
    sigs_elem(c, o, l, true, true); break;
  case IR_OP_MUL:
    sigs_elem(c, o, l, false, true); break;
  case IR_OP_SCALE:
    sigs_elem(c, o, l, true, true); break;
  case IR_OP_GELU: case IR_OP_SILU: case IR_OP_DROPOUT: case IR_OP_SWIGLU: case IR_OP_ROTARY:
    sigs_elem(c, o, l, false, true); break;
  case IR_OP_LAYER_NORM: case IR_OP_RMS_NORM:
    sigs_keep_axis(c, o, l, -1); break;
  case IR_OP_SOFTMAX: case IR_OP_SPLIT: case IR_OP_CONCAT:
    sigs_keep_axis(c, o, l, o->kind == IR_OP_SOFTMAX ? -1 : (int)o->at.axis); break;
  case IR_OP_MATMUL: sigs_matmul(c, o, l); break;
  case IR_OP_ATTENTION: sigs_attention(c, o, l); break;
  case IR_OP_EMBEDDING: sigs_embedding(c, o, l); break;
  case IR_OP_CROSS_ENTROPY: sigs_xent(c, o, l); break;
  case IR_OP_TRANSPOSE: sigs_transpose(c, o, l); break;
  case IR_OP_RESHAPE:
    if (rank(c, o->out[0]) > 0 && div_ok(c, o->in[0], 0) && div_ok(c, o->out[0], 0)) add_same(l, o, sS(0));
    break;
  default: break;
  }
}

int plan_op_sigs(const ir_graph *g, const ir_op *o, int n, int64_t b, int64_t s, ir_sig *sigs) {
  siglist l = {sigs, 0};
  ctx c = {g, n, b, s};
  if (n > 1 && o->nout > 0) sigs_kind(&c, o, &l);
  add_same(&l, o, sB());
  return l.n;
}
