/* ops_cost.c — the op registry's costs and gradient slot: ir_op_flops,
 * ir_op_bytes, ir_op_grad.
 *
 * FLOPs are forward FLOPs of the logical (unsharded) op with the graph's bound
 * B and S (unbound symbolic dims evaluate to 0, as in ir_numel). GEMMs count
 * 2*m*n*k multiply-adds; attention counts QK^T and AV over the FULL S x S
 * square even when causal, as Megatron-LM's 96*B*s*l*H^2*(1 + s/6H + V/16lH)
 * does (forward part 4*B*s^2*H per layer), plus 5 FLOPs per score for the
 * scale/mask/softmax; elementwise and row ops count a small fixed number of
 * FLOPs per element (table below); views, gathers and comm ops count 0 (the
 * cost model prices comm by bytes). Bytes are everything read plus written,
 * floating tensors at dtype_bytes each and integer tensors at their own size;
 * views move nothing, gathers read only the rows they pick (select reads the
 * one slice it returns; select_grad writes its whole zero-filled output). */
#include "ir/ir.h"

static double numel(const ir_graph *g, ir_ref r) { return (double)ir_numel(g, r); }
static const ir_tensor *T(const ir_graph *g, ir_ref r) { return &g->t[r]; }
static double dimv(const ir_graph *g, ir_dim d) { return (double)ir_dim_eval(d, g->bind_b, g->bind_s); }

/* per_elem: FLOPs per output element of elementwise and row ops. */
static double per_elem(ir_opkind k) {
  switch (k) {
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_SCALE: case IR_OP_BIAS_ADD: return 1;
  case IR_OP_DROPOUT: case IR_OP_DROPOUT_GRAD: return 2;
  case IR_OP_TANH_GRAD: return 3; /* dy * (1 - y*y) */
  case IR_OP_ROTARY: case IR_OP_ROTARY_GRAD: return 3;
  case IR_OP_SILU: case IR_OP_TANH: return 4;
  case IR_OP_SWIGLU: case IR_OP_SOFTMAX: case IR_OP_RMS_NORM: case IR_OP_CROSS_ENTROPY_GRAD: return 5;
  case IR_OP_SILU_GRAD: case IR_OP_SOFTMAX_GRAD: return 6;
  case IR_OP_GELU: case IR_OP_LAYER_NORM: case IR_OP_RMS_NORM_GRAD: return 8;
  case IR_OP_GELU_GRAD: case IR_OP_SWIGLU_GRAD: return 10;
  case IR_OP_LAYER_NORM_GRAD: case IR_OP_ADAMW: return 12;
  default: return 0;
  }
}

static double matmul_flops(const ir_graph *g, const ir_op *o) {
  const ir_tensor *a = T(g, o->in[0]);
  int k = o->at.trans_a ? a->rank - 2 : a->rank - 1;
  /* out = [..., m, n]: 2 * numel(out) * k */
  return 2.0 * numel(g, o->out[0]) * dimv(g, a->shape[k]);
}

/* attn_flops: 4 * batch * Sq * Sk * H (+5 per score per head) for q [.., Sq, H]. */
static double attn_flops(const ir_graph *g, const ir_op *o, int nf) {
  const ir_tensor *q = T(g, o->in[0]), *k = T(g, o->in[nf == 3 ? 1 : 0]);
  double batch = 1, h = dimv(g, q->shape[q->rank - 1]);
  for (int i = 0; i < q->rank - 2; i++) batch *= dimv(g, q->shape[i]);
  if (nf == 1) h /= 3;
  double sq = dimv(g, q->shape[q->rank - 2]), sk = dimv(g, k->shape[k->rank - 2]);
  double heads = o->at.heads > 0 ? (double)o->at.heads : 1;
  return 4.0 * batch * sq * sk * h + 5.0 * batch * heads * sq * sk;
}

double ir_op_flops(const ir_graph *g, const ir_op *o) {
  ir_opkind k = (ir_opkind)o->kind;
  switch (k) {
  case IR_OP_MATMUL: return matmul_flops(g, o);
  case IR_OP_ATTENTION: return attn_flops(g, o, o->nin);
  case IR_OP_ATTENTION_GRAD: return 2.0 * attn_flops(g, o, o->nin - 2); /* backward = 2x forward */
  case IR_OP_CROSS_ENTROPY: return 5.0 * numel(g, o->in[0]);
  case IR_OP_EMBEDDING_GRAD: return numel(g, o->in[1]);
  case IR_OP_SUM_ROWS: return numel(g, o->in[0]);
  default: return per_elem(k) * (o->nout ? numel(g, o->out[0]) : 0);
  }
}

static double tbytes(const ir_graph *g, ir_ref r, int dtype_bytes) {
  int dt = T(g, r)->dtype;
  int sz = (dt == IR_I32 || dt == IR_I64) ? ir_dtype_size((ir_dtype)dt) : dtype_bytes;
  return numel(g, r) * sz;
}

double ir_op_bytes(const ir_graph *g, const ir_op *o, int dtype_bytes) {
  ir_opkind k = (ir_opkind)o->kind;
  if (ir_ops[k].kclass == KC_VIEW) return 0;
  double b = 0;
  if (k == IR_OP_EMBEDDING) /* ids + the picked rows, written once */
    return tbytes(g, o->in[0], dtype_bytes) + 2 * tbytes(g, o->out[0], dtype_bytes);
  if (k == IR_OP_SELECT) return 2 * tbytes(g, o->out[0], dtype_bytes); /* the slice, read and written */
  for (int i = 0; i < o->nin; i++) b += tbytes(g, o->in[i], dtype_bytes);
  for (int i = 0; i < o->nout; i++) b += tbytes(g, o->out[i], dtype_bytes);
  return b;
}

double ir_tensor_bytes(const ir_graph *g, ir_ref r) {
  const ir_tensor *t = T(g, r);
  int64_t b = g->bind_b ? g->bind_b : 1, s = g->bind_s ? g->bind_s : 1;
  double n = 1;
  for (int i = 0; i < t->rank; i++) n *= (double)ir_dim_eval(t->shape[i], b, s);
  return n * ir_dtype_size((ir_dtype)t->dtype);
}

/* ---- gradient slot -------------------------------------------------------- */

static ir_grad_fn grad_rules[IR_NOPKIND];

ir_grad_fn ir_op_grad(ir_opkind k) { return (unsigned)k < IR_NOPKIND ? grad_rules[k] : NULL; }

void ir_op_set_grad(ir_opkind k, ir_grad_fn fn) {
  if ((unsigned)k < IR_NOPKIND) grad_rules[k] = fn;
}
