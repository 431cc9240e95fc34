/* fx_block.c — a GPT-2 block (forward and backward) built with the IR builder,
 * for tests, the CPU benchmark and the GPU check when no front end is at hand.
 *
 * Tokens are one symbolic axis (B*S rows), hidden size h, 4h MLP, `heads`
 * heads with fused qkv, causal attention, dropout 0.1, tanh GELU. The
 * backward part is the one autodiff makes for the fusable ops: dropout_grad,
 * gelu_grad, the residual adds, attention_grad; the GEMMs, bias gradients
 * (sum_rows) and layer_norm_grad are there as the boundaries they are.
 * fx_extras adds the fusion patterns a GPT-2 block lacks. */
#include "tests/support/fixtures.h"
#include <string.h>

typedef struct {
  ir_graph *g;
  ir_dim rows;
} dg;

static ir_ref t2(dg *d, const char *name, ir_tkind kind, int64_t cols) {
  ir_tensor t = ir_tensor_init(name, kind, IR_F32);
  t.rank = 2;
  t.shape[0] = d->rows;
  t.shape[1] = ir_const(cols);
  return ir_tensor_add(d->g, &t);
}

static ir_ref t1(dg *d, const char *name, ir_tkind kind, int64_t n) {
  ir_tensor t = ir_tensor_init(name, kind, IR_F32);
  t.rank = 1;
  t.shape[0] = ir_const(n);
  return ir_tensor_add(d->g, &t);
}

static ir_ref w2(dg *d, const char *name, int64_t r, int64_t c) {
  ir_tensor t = ir_tensor_init(name, IR_T_PARAM, IR_F32);
  t.rank = 2;
  t.shape[0] = ir_const(r);
  t.shape[1] = ir_const(c);
  return ir_tensor_add(d->g, &t);
}

static void op(dg *d, ir_opkind k, int nin, const ir_ref *in, int nout, const ir_ref *out, const ir_attrs *at, bool bwd) {
  ir_op o = ir_op_init(k);
  o.nin = (uint8_t)nin;
  o.nout = (uint8_t)nout;
  memcpy(o.in, in, sizeof(ir_ref) * (size_t)nin);
  memcpy(o.out, out, sizeof(ir_ref) * (size_t)nout);
  if (at) o.at = *at;
  o.backward = bwd;
  ir_op_add(d->g, &o);
}

#define OP1(k, a, out, at) op(&d, k, 1, (ir_ref[]){a}, 1, (ir_ref[]){out}, at, bwd)
#define OP2(k, a, b, out, at) op(&d, k, 2, (ir_ref[]){a, b}, 1, (ir_ref[]){out}, at, bwd)
#define OP3(k, a, b, c, out, at) op(&d, k, 3, (ir_ref[]){a, b, c}, 1, (ir_ref[]){out}, at, bwd)

/* fx_gpt2_block: see fixtures.h. */
ir_graph *fx_gpt2_block(int64_t h, int heads, int64_t tokens) {
  dg d = {ir_graph_new("gpt2_block"), {1, 0, 1}};
  int64_t f = 4 * h;
  bool bwd = false;
  ir_attrs ln = {0}, drop = {0}, ge = {0}, att = {0}, none = {0};
  ln.eps = 1e-5;
  drop.p = 0.1;
  ge.tanh = true;
  att.heads = heads;
  att.causal = true;
  ir_ref x = t2(&d, "x", IR_T_ACT, h);
  ir_ref w1 = t1(&d, "ln_1.weight", IR_T_PARAM, h), b1 = t1(&d, "ln_1.bias", IR_T_PARAM, h);
  ir_ref w2_ = t1(&d, "ln_2.weight", IR_T_PARAM, h), b2 = t1(&d, "ln_2.bias", IR_T_PARAM, h);
  ir_ref a = t2(&d, "a", IR_T_ACT, h);
  OP3(IR_OP_LAYER_NORM, x, w1, b1, a, &ln);
  ir_ref qkv = t2(&d, "qkv", IR_T_ACT, 3 * h), qkvb = t2(&d, "qkvb", IR_T_ACT, 3 * h);
  OP2(IR_OP_MATMUL, a, w2(&d, "attn.c_attn.weight", h, 3 * h), qkv, &none);
  OP2(IR_OP_BIAS_ADD, qkv, t1(&d, "attn.c_attn.bias", IR_T_PARAM, 3 * h), qkvb, &none);
  ir_ref y = t2(&d, "y", IR_T_ACT, h);
  OP1(IR_OP_ATTENTION, qkvb, y, &att);
  ir_ref pj = t2(&d, "proj", IR_T_ACT, h), pjb = t2(&d, "projb", IR_T_ACT, h), d1 = t2(&d, "drop1", IR_T_ACT, h);
  OP2(IR_OP_MATMUL, y, w2(&d, "attn.c_proj.weight", h, h), pj, &none);
  OP2(IR_OP_BIAS_ADD, pj, t1(&d, "attn.c_proj.bias", IR_T_PARAM, h), pjb, &none);
  OP1(IR_OP_DROPOUT, pjb, d1, &drop);
  ir_ref x2 = t2(&d, "x2", IR_T_ACT, h), m = t2(&d, "m", IR_T_ACT, h);
  OP2(IR_OP_ADD, x, d1, x2, &none);
  OP3(IR_OP_LAYER_NORM, x2, w2_, b2, m, &ln);
  ir_ref fc = t2(&d, "fc", IR_T_ACT, f), fcb = t2(&d, "fcb", IR_T_ACT, f), gl = t2(&d, "gelu", IR_T_ACT, f);
  OP2(IR_OP_MATMUL, m, w2(&d, "mlp.c_fc.weight", h, f), fc, &none);
  OP2(IR_OP_BIAS_ADD, fc, t1(&d, "mlp.c_fc.bias", IR_T_PARAM, f), fcb, &none);
  OP1(IR_OP_GELU, fcb, gl, &ge);
  ir_ref pr = t2(&d, "mproj", IR_T_ACT, h), prb = t2(&d, "mprojb", IR_T_ACT, h), d2 = t2(&d, "drop2", IR_T_ACT, h);
  OP2(IR_OP_MATMUL, gl, w2(&d, "mlp.c_proj.weight", f, h), pr, &none);
  OP2(IR_OP_BIAS_ADD, pr, t1(&d, "mlp.c_proj.bias", IR_T_PARAM, h), prb, &none);
  OP1(IR_OP_DROPOUT, prb, d2, &drop);
  ir_ref x3 = t2(&d, "x3", IR_T_ACT, h);
  OP2(IR_OP_ADD, x2, d2, x3, &none);
  /* backward */
  bwd = true;
  ir_ref dx3 = t2(&d, "d.x3", IR_T_GRAD, h), dprb = t2(&d, "d.mprojb", IR_T_GRAD, h);
  OP1(IR_OP_DROPOUT_GRAD, dx3, dprb, &drop);
  OP1(IR_OP_SUM_ROWS, dprb, t1(&d, "d.mlp.c_proj.bias", IR_T_GRAD, h), &none);
  ir_ref dgl = t2(&d, "d.gelu", IR_T_GRAD, f), dfcb = t2(&d, "d.fcb", IR_T_GRAD, f);
  OP2(IR_OP_MATMUL, dprb, w2(&d, "mlp.c_proj.weight.T", h, f), dgl, &none);
  OP2(IR_OP_GELU_GRAD, fcb, dgl, dfcb, &ge);
  OP1(IR_OP_SUM_ROWS, dfcb, t1(&d, "d.mlp.c_fc.bias", IR_T_GRAD, f), &none);
  ir_ref dm = t2(&d, "d.m", IR_T_GRAD, h), dx2l = t2(&d, "d.x2.ln", IR_T_GRAD, h);
  OP2(IR_OP_MATMUL, dfcb, w2(&d, "mlp.c_fc.weight.T", f, h), dm, &none);
  op(&d, IR_OP_LAYER_NORM_GRAD, 4, (ir_ref[]){x2, w2_, b2, dm}, 3,
     (ir_ref[]){dx2l, t1(&d, "d.ln_2.weight", IR_T_GRAD, h), t1(&d, "d.ln_2.bias", IR_T_GRAD, h)}, &ln, true);
  ir_ref dx2 = t2(&d, "d.x2", IR_T_GRAD, h), dpjb = t2(&d, "d.projb", IR_T_GRAD, h);
  OP2(IR_OP_ADD, dx3, dx2l, dx2, &none);
  OP1(IR_OP_DROPOUT_GRAD, dx2, dpjb, &drop);
  OP1(IR_OP_SUM_ROWS, dpjb, t1(&d, "d.attn.c_proj.bias", IR_T_GRAD, h), &none);
  ir_ref dy = t2(&d, "d.y", IR_T_GRAD, h), dqkv = t2(&d, "d.qkvb", IR_T_GRAD, 3 * h);
  OP2(IR_OP_MATMUL, dpjb, w2(&d, "attn.c_proj.weight.T", h, h), dy, &none);
  OP3(IR_OP_ATTENTION_GRAD, qkvb, y, dy, dqkv, &att);
  d.g->bind_b = 1; /* the rows are B*S tokens: bind S = tokens */
  d.g->bind_s = tokens;
  return d.g;
}

/* The extras graph: the fusion patterns the GPT-2 block does not have
 * (cross-entropy forward and backward, causal softmax, rms_norm, swiglu,
 * AdamW), over one symbolic token axis. */

static ir_ref ex_tens(ir_graph *g, const char *name, ir_tkind kind, ir_dtype dt, int rank, int64_t cols) {
  ir_tensor t = ir_tensor_init(name, kind, dt);
  t.rank = (uint8_t)rank;
  if (rank == 2) t.shape[0] = (ir_dim){1, 0, 1}, t.shape[1] = ir_const(cols);
  if (rank == 1) t.shape[0] = kind == IR_T_INPUT ? (ir_dim){1, 0, 1} : ir_const(cols);
  return ir_tensor_add(g, &t);
}

ir_graph *fx_extras(int64_t tokens) {
  ir_graph *g = ir_graph_new("extras");
  dg d = {g, {1, 0, 1}};
  ir_attrs none = {0}, sm = {0}, ad = {0};
  sm.causal = true, sm.scale = 0.125;
  ir_ref lg = ex_tens(g, "logits", IR_T_ACT, IR_F32, 2, 50257), lab = ex_tens(g, "labels", IR_T_INPUT, IR_I32, 1, 0);
  ir_ref loss = ex_tens(g, "loss", IR_T_ACT, IR_F32, 0, 0), dl = ex_tens(g, "dlogits", IR_T_GRAD, IR_F32, 2, 50257);
  op(&d, IR_OP_CROSS_ENTROPY, 2, (ir_ref[]){lg, lab}, 1, &loss, &none, false);
  op(&d, IR_OP_CROSS_ENTROPY_GRAD, 2, (ir_ref[]){lg, lab}, 1, &dl, &none, false);
  g->loss = loss;
  ir_ref sc = ex_tens(g, "scores", IR_T_ACT, IR_F32, 2, 1024), pr = ex_tens(g, "probs", IR_T_ACT, IR_F32, 2, 1024);
  op(&d, IR_OP_SOFTMAX, 1, &sc, 1, &pr, &sm, false);
  ir_ref x = ex_tens(g, "h", IR_T_ACT, IR_F32, 2, 4096), w = ex_tens(g, "norm.weight", IR_T_PARAM, IR_F32, 1, 4096);
  ir_ref y = ex_tens(g, "hn", IR_T_ACT, IR_F32, 2, 4096);
  op(&d, IR_OP_RMS_NORM, 2, (ir_ref[]){x, w}, 1, &y, &none, false);
  ir_ref ga = ex_tens(g, "gate", IR_T_ACT, IR_F32, 2, 11008), up = ex_tens(g, "up", IR_T_ACT, IR_F32, 2, 11008);
  ir_ref sw = ex_tens(g, "swiglu", IR_T_ACT, IR_F32, 2, 11008);
  op(&d, IR_OP_SWIGLU, 2, (ir_ref[]){ga, up}, 1, &sw, &none, false);
  ir_ref p[4];
  for (int i = 0; i < 4; i++) p[i] = ex_tens(g, arena_printf(g->arena, "adam%d", i), IR_T_PARAM, IR_F32, 1, 4096);
  ad.lr = 1e-4, ad.beta1 = 0.9, ad.beta2 = 0.95, ad.eps = 1e-8, ad.weight_decay = 0.1;
  op(&d, IR_OP_ADAMW, 4, p, 3, p, &ad, false);
  g->bind_b = 1, g->bind_s = tokens;
  return g;
}
