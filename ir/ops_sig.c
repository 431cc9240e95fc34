/* ops_sig.c — the op registry's SBP signatures: ir_op_sigs and ir_op_ndsigs.
 *
 * A 1-D signature says, for one mesh axis, which SBP each input slot must have
 * and which SBP each output then has. ir_op_sigs lists them for an op whose
 * shapes are inferred, in a fixed order per op family (tests and the planner
 * index it; docs/ir.md lists the orders):
 *   elementwise, row   B, S(0) .. S(r-1) (row ops: not the reduced axis), [P]
 *   matmul             S(batch axes), S(m), column, row (-> P), (P,B), (B,P), B
 *   embedding          S(ids axes), (B, S(0)) -> P vocab-parallel, (B, S(1)), B
 *   attention          B, S(batch axes), S(heads = last)
 *   cross_entropy      S(token axes) -> P, (S(last), B) -> P vocab-parallel, B
 *   comm ops           from -> to (on their mesh axis), then B, S(i), P unchanged
 *   select(_grad)      B, S(i) for i off the selected axis (renumbered past
 *                      it), P (linear); never S(selected axis)
 * B comes first where the op has no preferred parallel form, so that the
 * greedy deduction (sbp.c), which breaks ties by this order, keeps activations
 * replicated inside a tensor-parallel block rather than splitting them.
 * Broadcast operands get B where the output is split on an axis they lack.
 * ir_op_ndsigs combines the 1-D lists over the axes of a mesh and drops the
 * combinations whose splits do not divide the tensor dims or the heads. */
#include "ir/ir.h"
#include <string.h>

typedef struct {
  const ir_graph *g;
  const ir_op *o;
  ir_sig *sig;
  int n;
} sctx;

static ir_sbp S(int axis) { ir_sbp s = {SBP_S, (int8_t)axis}; return s; }
static const ir_sbp B = {SBP_B, 0};
static const ir_sbp P = {SBP_PSUM, 0};

static const ir_tensor *IN(const sctx *c, int i) { return &c->g->t[c->o->in[i]]; }
static const ir_tensor *OUT(const sctx *c, int i) { return &c->g->t[c->o->out[i]]; }
static int rank_in(const sctx *c, int i) { return IN(c, i)->rank; }

/* add: append a signature: inputs then outputs, counts from the op. */
static void add(sctx *c, const ir_sbp *in, const ir_sbp *out) {
  if (c->n >= IR_MAXSIGS) return;
  ir_sig *s = &c->sig[c->n++];
  memset(s, 0, sizeof *s);
  for (int i = 0; i < c->o->nin; i++) s->in[i] = in[i];
  for (int i = 0; i < c->o->nout; i++) s->out[i] = out[i];
}

/* uniform: every input and output gets x. */
static void uniform(sctx *c, ir_sbp x) {
  ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
  for (int i = 0; i < IR_MAXIN; i++) in[i] = x;
  for (int i = 0; i < IR_MAXOUT; i++) out[i] = x;
  add(c, in, out);
}

/* ---- elementwise families ---------------------------------------------------- */

/* sig_elem: all slots S(i) for each axis i (except skip), then B; then P if linear. */
static void sig_elem(sctx *c, int skip, bool linear) {
  int r = rank_in(c, 0);
  uniform(c, B);
  for (int i = 0; i < r; i++)
    if (i != skip) uniform(c, S(i));
  if (linear) uniform(c, P);
}

/* bcast: the SBP of an operand of rank ro for output split on axis i of rank r. */
static ir_sbp bcast(int i, int r, int ro) {
  int k = i - (r - ro);
  return k >= 0 ? S(k) : B;
}

static void sig_binary(sctx *c) {
  int ra = rank_in(c, 0), rb = rank_in(c, 1), r = OUT(c, 0)->rank;
  uniform(c, B);
  for (int i = 0; i < r; i++) {
    ir_sbp in[2] = {bcast(i, r, ra), bcast(i, r, rb)}, out[1] = {S(i)};
    add(c, in, out);
  }
  if (c->o->kind == IR_OP_MUL) {
    ir_sbp pb[2] = {P, B}, bp[2] = {B, P}, out[1] = {P};
    add(c, pb, out);
    add(c, bp, out);
  } else {
    uniform(c, P);
  }
}

static void sig_bias_add(sctx *c) {
  int r = rank_in(c, 0);
  uniform(c, B);
  for (int i = 0; i < r; i++) {
    ir_sbp in[2] = {S(i), i == r - 1 ? S(0) : B}, out[1] = {S(i)};
    add(c, in, out);
  }
  uniform(c, P);
}

/* sig_rowwise: S on the non-normalised axes with vectors B, then all B. */
static void sig_rowwise(sctx *c, int nvec_from) {
  int r = rank_in(c, 0);
  uniform(c, B);
  for (int i = 0; i < r - 1; i++) {
    ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
    for (int k = 0; k < c->o->nin && k < IR_MAXIN; k++) in[k] = k >= nvec_from ? B : S(i);
    for (int k = 0; k < c->o->nout && k < IR_MAXOUT; k++) out[k] = S(i);
    add(c, in, out);
  }
}

/* ---- gemm, attention, gather ------------------------------------------------ */

static void sig_matmul(sctx *c) {
  const ir_tensor *a = IN(c, 0), *b = IN(c, 1);
  int r = a->rank;
  bool batched = b->rank > 2;
  int am = c->o->at.trans_a ? r - 1 : r - 2, ak = c->o->at.trans_a ? r - 2 : r - 1;
  int bk = c->o->at.trans_b ? b->rank - 1 : b->rank - 2, bn = c->o->at.trans_b ? b->rank - 2 : b->rank - 1;
  ir_sbp in[2], out[1];
  for (int i = 0; i < r - 2; i++) { /* data parallel on batch axes */
    in[0] = S(i), in[1] = batched ? S(i) : B, out[0] = S(i);
    add(c, in, out);
  }
  in[0] = S(am), in[1] = B, out[0] = S(r - 2); add(c, in, out);       /* split m */
  in[0] = B, in[1] = S(bn), out[0] = S(r - 1); add(c, in, out);       /* column */
  in[0] = S(ak), in[1] = S(bk), out[0] = P; add(c, in, out);          /* row */
  in[0] = P, in[1] = B, out[0] = P; add(c, in, out);
  in[0] = B, in[1] = P, out[0] = P; add(c, in, out);
  uniform(c, B);
}

static void sig_attention(sctx *c) {
  int r = rank_in(c, 0);
  uniform(c, B);
  for (int i = 0; i < r - 2; i++) uniform(c, S(i)); /* batch axes */
  uniform(c, S(r - 1));                               /* heads */
}

static void sig_embedding(sctx *c) {
  int r = rank_in(c, 0);
  ir_sbp in[2], out[1];
  for (int i = 0; i < r; i++) {
    in[0] = S(i), in[1] = B, out[0] = S(i);
    add(c, in, out);
  }
  in[0] = B, in[1] = S(0), out[0] = P; add(c, in, out);     /* vocab parallel */
  in[0] = B, in[1] = S(1), out[0] = S(r); add(c, in, out);  /* hidden split */
  uniform(c, B);
}

static void sig_positions(sctx *c) {
  uniform(c, B);
  for (int i = 0; i < OUT(c, 0)->rank; i++) uniform(c, S(i));
}

static void sig_cross_entropy(sctx *c) {
  int r = rank_in(c, 0);
  ir_sbp in[2], out[1] = {P};
  for (int i = 0; i < r - 1; i++) {
    in[0] = S(i), in[1] = S(i);
    add(c, in, out);
  }
  in[0] = S(r - 1), in[1] = B; add(c, in, out);   /* vocab-parallel (Megatron) */
  uniform(c, B);
}

/* ---- views ---------------------------------------------------------------- */

/* prefix_eq: product of x[0..i) equals product of y[0..j). */
static bool prefix_eq(const ir_tensor *x, int i, const ir_tensor *y, int j) {
  return ir_dim_eq(ir_dim_numel(x->shape, i), ir_dim_numel(y->shape, j));
}

/* split_maps: splitting x on axis i splits y on axis j (the same leading
 * elements, and one dim is the leading factor of the other). */
static bool split_maps(const ir_tensor *x, int i, const ir_tensor *y, int j) {
  if (!prefix_eq(x, i, y, j)) return false;
  for (int k = j + 1; k <= y->rank; k++)
    if (ir_dim_eq(x->shape[i], ir_dim_numel(y->shape + j, k - j))) return true;
  for (int k = i + 1; k <= x->rank; k++)
    if (ir_dim_eq(y->shape[j], ir_dim_numel(x->shape + i, k - i))) return true;
  return false;
}

static void sig_reshape(sctx *c) {
  const ir_tensor *x = IN(c, 0), *y = OUT(c, 0);
  uniform(c, B);
  for (int i = 0; i < x->rank; i++)
    for (int j = 0; j < y->rank; j++)
      if (split_maps(x, i, y, j)) {
        ir_sbp in[1] = {S(i)}, out[1] = {S(j)};
        add(c, in, out);
        break;
      }
  uniform(c, P);
}

static void sig_transpose(sctx *c) {
  int r = rank_in(c, 0);
  uniform(c, B);
  for (int i = 0; i < r; i++) {
    int j = i == r - 1 ? r - 2 : i == r - 2 ? r - 1 : i;
    ir_sbp in[1] = {S(i)}, out[1] = {S(j)};
    add(c, in, out);
  }
  uniform(c, P);
}

static int axis_of(const sctx *c) {
  int r = rank_in(c, 0);
  int64_t ax = c->o->at.axis < 0 ? c->o->at.axis + r : c->o->at.axis;
  return ax >= 0 && ax < r ? (int)ax : r - 1;
}

/* sig_select: select drops axis ax of its input, select_grad puts it back in
 * its output; a split on any other axis passes through, renumbered past ax. A
 * split of ax itself is no input signature (each device holds other
 * positions): boxing converts it first, by an all_gather or, as both ops are
 * linear and P passes through them, by the free S -> P zero-padding slice. */
static void sig_select(sctx *c) {
  bool grad = c->o->kind == IR_OP_SELECT_GRAD;
  int full = grad ? OUT(c, 0)->rank : rank_in(c, 0);
  int64_t a = c->o->at.axis < 0 ? c->o->at.axis + full : c->o->at.axis;
  uniform(c, B);
  for (int i = 0; i < full; i++) {
    if (i == a) continue;
    int j = i < a ? i : i - 1; /* the axis in the reduced-rank tensor */
    ir_sbp in[1] = {S(grad ? j : i)}, out[1] = {S(grad ? i : j)};
    add(c, in, out);
  }
  uniform(c, P);
}

/* ---- backward ops ----------------------------------------------------------- */

static void sig_embedding_grad(sctx *c) {
  int r = rank_in(c, 0);
  ir_sbp in[2], out[1];
  for (int i = 0; i < r; i++) {
    in[0] = S(i), in[1] = S(i), out[0] = P;
    add(c, in, out);
  }
  in[0] = B, in[1] = S(r), out[0] = S(1); add(c, in, out);
  in[0] = B, in[1] = P, out[0] = P; add(c, in, out);
  uniform(c, B);
}

static void sig_sum_rows(sctx *c) {
  int r = rank_in(c, 0);
  ir_sbp in[1], out[1];
  for (int i = 0; i < r - 1; i++) {
    in[0] = S(i), out[0] = P;
    add(c, in, out);
  }
  in[0] = S(r - 1), out[0] = S(0); add(c, in, out);
  uniform(c, B);
  uniform(c, P);
}

/* sig_norm_grad: (x, w[, b], dy) -> (dx, dw[, db]); token splits give
 * partial weight gradients. */
static void sig_norm_grad(sctx *c) {
  int r = rank_in(c, 0), nin = c->o->nin;
  uniform(c, B);
  for (int i = 0; i < r - 1; i++) {
    ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
    for (int k = 0; k < nin && k < IR_MAXIN; k++) in[k] = (k == 0 || k == nin - 1) ? S(i) : B;
    out[0] = S(i);
    for (int k = 1; k < c->o->nout && k < IR_MAXOUT; k++) out[k] = P;
    add(c, in, out);
  }
}

static void sig_ce_grad(sctx *c) {
  int r = rank_in(c, 0);
  ir_sbp in[2], out[1];
  for (int i = 0; i < r - 1; i++) {
    in[0] = S(i), in[1] = S(i), out[0] = S(i);
    add(c, in, out);
  }
  in[0] = S(r - 1), in[1] = B, out[0] = S(r - 1); add(c, in, out);
  uniform(c, B);
}

/* sig_pass: B, S(i) per axis, P: the SBP goes through unchanged. */
static void sig_pass(sctx *c) {
  uniform(c, B);
  for (int i = 0; i < rank_in(c, 0); i++) uniform(c, S(i));
  uniform(c, P);
}

/* sig_comm: first the conversion the op performs (at.from -> at.to, valid on
 * its mesh axis only), then the pass-through signatures, valid on the other
 * mesh axes of an nd mesh (ir_op_ndsigs enforces both). */
static void sig_comm(sctx *c) {
  ir_sbp in[1] = {c->o->at.from}, out[1] = {c->o->at.to};
  add(c, in, out);
  sig_pass(c);
}

static void sig_adamw(sctx *c) {
  int r = rank_in(c, 0);
  uniform(c, B);
  for (int i = 0; i < r; i++) uniform(c, S(i)); /* ZeRO-style sharded update */
}

int ir_op_sigs(const ir_graph *g, const ir_op *o, ir_sig *sigs) {
  sctx c = {g, o, sigs, 0};
  switch ((ir_opkind)o->kind) {
  case IR_OP_SCALE: sig_elem(&c, -1, true); break;
  case IR_OP_GELU: case IR_OP_SILU: case IR_OP_TANH: case IR_OP_DROPOUT: case IR_OP_ROTARY:
  case IR_OP_ROTARY_GRAD: case IR_OP_DROPOUT_GRAD: case IR_OP_GELU_GRAD: case IR_OP_TANH_GRAD:
  case IR_OP_SILU_GRAD: case IR_OP_SWIGLU: case IR_OP_SWIGLU_GRAD: sig_elem(&c, -1, false); break;
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: sig_binary(&c); break;
  case IR_OP_BIAS_ADD: sig_bias_add(&c); break;
  case IR_OP_LAYER_NORM: case IR_OP_RMS_NORM: sig_rowwise(&c, 1); break;
  case IR_OP_SOFTMAX: case IR_OP_SOFTMAX_GRAD: sig_elem(&c, rank_in(&c, 0) - 1, false); break;
  case IR_OP_MATMUL: sig_matmul(&c); break;
  case IR_OP_ATTENTION: case IR_OP_ATTENTION_GRAD: sig_attention(&c); break;
  case IR_OP_EMBEDDING: sig_embedding(&c); break;
  case IR_OP_POSITIONS: sig_positions(&c); break;
  case IR_OP_CROSS_ENTROPY: sig_cross_entropy(&c); break;
  case IR_OP_RESHAPE: sig_reshape(&c); break;
  case IR_OP_TRANSPOSE: sig_transpose(&c); break;
  case IR_OP_SPLIT: case IR_OP_CONCAT: sig_elem(&c, axis_of(&c), true); break;
  case IR_OP_SELECT: case IR_OP_SELECT_GRAD: sig_select(&c); break;
  case IR_OP_ALL_REDUCE: case IR_OP_ALL_GATHER: case IR_OP_REDUCE_SCATTER:
  case IR_OP_ALL_TO_ALL: case IR_OP_SLICE: sig_comm(&c); break;
  case IR_OP_SEND_RECV: sig_pass(&c); break;
  case IR_OP_EMBEDDING_GRAD: sig_embedding_grad(&c); break;
  case IR_OP_SUM_ROWS: sig_sum_rows(&c); break;
  case IR_OP_LAYER_NORM_GRAD: case IR_OP_RMS_NORM_GRAD: sig_norm_grad(&c); break;
  case IR_OP_CROSS_ENTROPY_GRAD: sig_ce_grad(&c); break;
  case IR_OP_ADAMW: sig_adamw(&c); break;
  default: break;
  }
  return c.n;
}

/* ---- nd-SBP -------------------------------------------------------------------- */

/* dim_divisible: d divisible by k; a dim with an unbound B or S counts as
 * divisible (B and S are chosen later, and can be chosen to divide). */
static bool dim_divisible(const ir_graph *g, ir_dim d, int64_t k) {
  if (k <= 1) return true;
  if ((d.b && !g->bind_b) || (d.s && !g->bind_s)) return true;
  return ir_dim_eval(d, g->bind_b, g->bind_s) % k == 0;
}

/* slot_fits: every axis of tensor t split by the mesh axes of s divides. */
static bool slot_fits(const ir_graph *g, const ir_tensor *t, const ir_ndsbp *s, const ir_mesh *m) {
  int64_t f[IR_MAXRANK];
  for (int i = 0; i < IR_MAXRANK; i++) f[i] = 1;
  for (int a = 0; a < s->n; a++)
    if (s->a[a].kind == SBP_S) {
      if (s->a[a].axis < 0 || s->a[a].axis >= t->rank) return false;
      f[s->a[a].axis] *= m->size[a];
    }
  for (int i = 0; i < t->rank; i++)
    if (!dim_divisible(g, t->shape[i], f[i])) return false;
  return true;
}

bool ir_ndsbp_fits(const ir_graph *g, ir_ref r, const ir_ndsbp *s, const ir_mesh *m) {
  return slot_fits(g, &g->t[r], s, m);
}

/* heads_fit: attention/rotary head splits divide heads and kv_heads. */
static bool heads_fit(const ir_graph *g, const ir_op *o, const ir_ndsig *s, const ir_mesh *m) {
  ir_opkind k = (ir_opkind)o->kind;
  if (k != IR_OP_ATTENTION && k != IR_OP_ATTENTION_GRAD && k != IR_OP_ROTARY && k != IR_OP_ROTARY_GRAD) return true;
  int last = g->t[o->in[0]].rank - 1;
  int64_t f = 1;
  for (int a = 0; a < m->n; a++)
    if (s->in[0].a[a].kind == SBP_S && s->in[0].a[a].axis == last) f *= m->size[a];
  if (f == 1) return true;
  int64_t h = o->at.heads, kv = o->at.kv_heads ? o->at.kv_heads : h;
  return h > 0 && h % f == 0 && kv % f == 0;
}

/* comm_fits: a boxing op converts on its own mesh axis (signature 0) and
 * passes the SBP of the other mesh axes through (signatures 1..). */
static bool comm_fits(const ir_op *o, const ir_ndsig *s, const ir_mesh *m) {
  if (ir_ops[o->kind].kclass != KC_COMM || o->kind == IR_OP_SEND_RECV) return true;
  for (int a = 0; a < m->n; a++)
    if ((a == o->at.mesh_axis) != (s->idx[a] == 0)) return false;
  return true;
}

static bool ndsig_fits(const ir_graph *g, const ir_op *o, const ir_ndsig *s, const ir_mesh *m) {
  if (!comm_fits(o, s, m)) return false;
  for (int i = 0; i < o->nin; i++)
    if (!slot_fits(g, &g->t[o->in[i]], &s->in[i], m)) return false;
  for (int i = 0; i < o->nout; i++)
    if (!slot_fits(g, &g->t[o->out[i]], &s->out[i], m)) return false;
  return heads_fit(g, o, s, m);
}

static void ndsig_make(const ir_op *o, const ir_sig *sigs, int nsig, const int *idx, int n, ir_ndsig *s) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < IR_MAXIN; i++) s->in[i].n = (uint8_t)n;
  for (int i = 0; i < IR_MAXOUT; i++) s->out[i].n = (uint8_t)n;
  for (int a = 0; a < n; a++) {
    s->idx[a] = (int16_t)idx[a];
    s->flat = s->flat * nsig + idx[a];
    for (int i = 0; i < o->nin; i++) s->in[i].a[a] = sigs[idx[a]].in[i];
    for (int i = 0; i < o->nout; i++) s->out[i].a[a] = sigs[idx[a]].out[i];
  }
}

int ir_op_ndsigs(const ir_graph *g, const ir_op *o, const ir_mesh *mesh, ir_ndsig *out, int max) {
  ir_sig sigs[IR_MAXSIGS];
  int nsig = ir_op_sigs(g, o, sigs), n = mesh->n, cnt = 0;
  int idx[IR_MAXMESH] = {0};
  if (max <= 0) return 0;
  if (n <= 0) { /* one device: a single signature with empty nd-SBPs */
    ndsig_make(o, sigs, 1, idx, 0, out);
    return 1;
  }
  if (nsig == 0) return 0;
  for (;;) {
    ir_ndsig s;
    ndsig_make(o, sigs, nsig, idx, n, &s);
    if (ndsig_fits(g, o, &s, mesh)) {
      if (cnt == max) break;
      out[cnt++] = s;
    }
    int a = n - 1; /* odometer, mesh axis 0 slowest */
    while (a >= 0 && ++idx[a] == nsig) idx[a--] = 0;
    if (a < 0) break;
  }
  return cnt;
}

ir_kclass ir_op_kclass(ir_opkind k) { return (unsigned)k < IR_NOPKIND ? ir_ops[k].kclass : KC_ELEM; }
