/* test_ir_ops.c — the op registry: shape inference (good and bad inputs, with
 * the exact diagnostics), signature lists, nd-SBP filtering, FLOPs and bytes. */
#include "cu.h"
#include "test_ir_build.h"

static ir_attrs attrs(void) {
  ir_attrs a;
  memset(&a, 0, sizeof a);
  a.axis = -1;
  return a;
}

static const ir_tensor *T(tb *b, ir_ref r) { return &b->g->t[r]; }

/* shape_is: tensor r has the rank and dims given. */
static bool shape_is(tb *b, ir_ref r, int rank, const ir_dim *d) {
  if (r < 0 || T(b, r)->rank != rank) return false;
  for (int i = 0; i < rank; i++)
    if (!ir_dim_eq(T(b, r)->shape[i], d[i])) return false;
  return true;
}
#define SHAPE_IS(b, r, ...) \
  shape_is((b), (r), (int)(sizeof((ir_dim[]){__VA_ARGS__}) / sizeof(ir_dim)), (ir_dim[]){__VA_ARGS__})

static void matmul_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(768));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(768), K(3072));
  ir_ref wt = TB_T(&b, "wt", IR_T_PARAM, IR_F32, K(96), K(768));
  ir_ref bad = TB_T(&b, "bad", IR_T_PARAM, IR_F32, K(3072), K(768));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_MATMUL, NULL, x, w), DB, DS, K(3072)));
  ir_attrs tr = attrs();
  tr.trans_b = true;
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_MATMUL, &tr, x, wt), DB, DS, K(96)));
  ir_ref q = TB_T(&b, "q", IR_T_INPUT, IR_F32, DB, K(4), DS, K(16));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_MATMUL, &tr, q, q), DB, K(4), DS, DS));
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_MATMUL, NULL, x, bad), IR_NONE);
  CU_ASSERT_STRING_EQUAL(tb_msg(&b), "t.sbp:1:1: error: matmul: inner dims differ: 768 vs 3072\n");
  tb_free(&b);
}

static void elementwise_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(64));
  ir_ref p = TB_T(&b, "p", IR_T_INPUT, IR_F32, DS, K(64));
  ir_ref v = TB_T(&b, "v", IR_T_PARAM, IR_F32, K(64));
  ir_ref v2 = TB_T(&b, "v2", IR_T_PARAM, IR_F32, K(32));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_ADD, NULL, x, p), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_MUL, NULL, v, x), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_BIAS_ADD, NULL, x, v), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_LAYER_NORM, NULL, x, v, v), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_RMS_NORM, NULL, x, v), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_GELU, NULL, x), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SWIGLU, NULL, x, x), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SOFTMAX, NULL, x), DB, DS, K(64)));
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SUB, NULL, x, v2), IR_NONE);
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_LAYER_NORM, NULL, x, v2, v), IR_NONE);
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_ADD, NULL, x), IR_NONE);
  CU_ASSERT_STRING_EQUAL(tb_msg(&b),
                         "t.sbp:1:1: error: sub: shapes do not broadcast: [B, S, 64] vs [32]\n"
                         "t.sbp:1:1: error: layer_norm: weight length differs from the last axis: 32 vs 64\n"
                         "t.sbp:1:1: error: add: takes 2 inputs, got 1\n");
  tb_free(&b);
}

static void attention_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref qkv = TB_T(&b, "qkv", IR_T_INPUT, IR_F32, DB, DS, K(192));
  ir_ref q = TB_T(&b, "q", IR_T_INPUT, IR_F32, DB, DS, K(64));
  ir_ref kv = TB_T(&b, "kv", IR_T_INPUT, IR_F32, DB, DS, K(16));
  ir_attrs a = attrs();
  a.heads = 4, a.causal = true;
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_ATTENTION, &a, qkv), DB, DS, K(64)));
  a.heads = 8, a.kv_heads = 2; /* GQA: k,v width 2 * 64 / 8 = 16 */
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_ATTENTION, &a, q, kv, kv), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_ROTARY, &a, q), DB, DS, K(64)));
  a.kv_heads = 4;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_ATTENTION, &a, q, kv, kv), IR_NONE);
  a.heads = 5, a.kv_heads = 0;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_ATTENTION, &a, qkv), IR_NONE);
  CU_ASSERT_STRING_EQUAL(tb_msg(&b),
                         "t.sbp:1:1: error: attention: k/v last dim must be kv_heads*H/heads: 16 vs 32\n"
                         "t.sbp:1:1: error: attention: hidden size 64 is not divisible by heads=5\n");
  tb_free(&b);
}

static void gather_and_loss_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref ids = TB_T(&b, "ids", IR_T_INPUT, IR_I32, DB, DS);
  ir_ref tab = TB_T(&b, "tab", IR_T_PARAM, IR_F32, K(100), K(64));
  ir_ref lg = TB_T(&b, "lg", IR_T_INPUT, IR_F32, DB, DS, K(100));
  ir_ref e = TB_OP(&b, IR_OP_EMBEDDING, NULL, ids, tab);
  CU_ASSERT(SHAPE_IS(&b, e, DB, DS, K(64)));
  ir_attrs pa = attrs();
  pa.rank = 1, pa.shape[0] = DS;
  ir_ref pos = tb_opv(&b, IR_OP_POSITIONS, &pa, 0, NULL, 1);
  CU_ASSERT(SHAPE_IS(&b, pos, DS) && T(&b, pos)->dtype == IR_I32);
  ir_ref ce = TB_OP(&b, IR_OP_CROSS_ENTROPY, NULL, lg, ids);
  CU_ASSERT(ce >= 0 && T(&b, ce)->rank == 0 && T(&b, ce)->dtype == IR_F32);
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_EMBEDDING, NULL, lg, tab), IR_NONE);
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_CROSS_ENTROPY, NULL, lg, pos), IR_NONE);
  ir_attrs eg = attrs();
  eg.rank = 2, eg.shape[0] = K(100), eg.shape[1] = K(64);
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_EMBEDDING_GRAD, &eg, ids, e), K(100), K(64)));
  CU_ASSERT_STRING_EQUAL(tb_msg(&b),
                         "t.sbp:1:1: error: embedding: ids must be an integer tensor, got f32\n"
                         "t.sbp:1:1: error: cross_entropy: labels must have the logits shape without its last axis: [S] vs [B, S, 100]\n");
  tb_free(&b);
}

static void view_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(192));
  ir_attrs r = attrs();
  r.rank = 4, r.shape[0] = DB, r.shape[1] = DS, r.shape[2] = K(12), r.shape[3] = K(16);
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_RESHAPE, &r, x), DB, DS, K(12), K(16)));
  r.rank = 2, r.shape[0] = K(-1), r.shape[1] = K(192);
  ir_dim bs = {1, 1, 1};
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_RESHAPE, &r, x), bs, K(192)));
  r.shape[0] = DB;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_RESHAPE, &r, x), IR_NONE);
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_TRANSPOSE, NULL, x), DB, K(192), DS));
  ir_attrs sp = attrs();
  sp.n = 3;
  ir_ref in[1] = {x};
  ir_ref s0 = tb_opv(&b, IR_OP_SPLIT, &sp, 1, in, 3);
  CU_ASSERT(SHAPE_IS(&b, s0, DB, DS, K(64)) && SHAPE_IS(&b, s0 + 2, DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_CONCAT, NULL, s0, s0 + 1), DB, DS, K(128)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_ALL_REDUCE, NULL, x), DB, DS, K(192)));
  CU_ASSERT_STRING_EQUAL(tb_msg(&b), "t.sbp:1:1: error: reshape: element counts differ: 192*B*S vs 192*B\n");
  tb_free(&b);
}

static void backward_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(64));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64));
  ir_ref m = TB_T(&b, "m", IR_T_STATE, IR_F32, K(64));
  ir_ref w2 = TB_T(&b, "w2", IR_T_PARAM, IR_F32, K(64), K(2));
  ir_ref in[4] = {x, w, w, x};
  ir_ref dx = tb_opv(&b, IR_OP_LAYER_NORM_GRAD, NULL, 4, in, 3);
  CU_ASSERT(SHAPE_IS(&b, dx, DB, DS, K(64)) && SHAPE_IS(&b, dx + 1, K(64)) && SHAPE_IS(&b, dx + 2, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SUM_ROWS, NULL, x), K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_GELU_GRAD, NULL, x, x), DB, DS, K(64)));
  ir_ref ad[4] = {w, w, m, m};
  ir_ref p1 = tb_opv(&b, IR_OP_ADAMW, NULL, 4, ad, 3);
  CU_ASSERT(SHAPE_IS(&b, p1, K(64)) && SHAPE_IS(&b, p1 + 2, K(64)));
  ir_ref ag[3] = {x, x, x};
  ir_attrs at = attrs();
  at.heads = 4;
  CU_ASSERT(SHAPE_IS(&b, tb_opv(&b, IR_OP_ATTENTION_GRAD, &at, 3, ag, 1), DB, DS, K(64)));
  ad[2] = w2;
  CU_ASSERT_EQUAL(tb_opv(&b, IR_OP_ADAMW, NULL, 4, ad, 3), IR_NONE);
  CU_ASSERT_STRING_EQUAL(tb_msg(&b), "t.sbp:1:1: error: adamw: param and m differ: [64] vs [64, 2]\n");
  tb_free(&b);
}

/* tanh, tanh_grad, select, select_grad: shapes and the exact diagnostics */
static void tanh_select_shapes(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(64));
  ir_ref h = TB_T(&b, "h", IR_T_INPUT, IR_F32, DB, K(4), DS, K(8));
  ir_ref s2 = TB_T(&b, "s2", IR_T_INPUT, IR_F32, DB, (ir_dim){2, 0, 1}, K(8));
  ir_ref ids = TB_T(&b, "ids", IR_T_INPUT, IR_I32, DB, DS);
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_TANH, NULL, x), DB, DS, K(64)));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_TANH_GRAD, NULL, x, x), DB, DS, K(64)));
  ir_attrs a = attrs();
  a.axis = 1, a.index = 0;
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SELECT, &a, x), DB, K(64)));    /* the BERT pooler's token 0 */
  a.axis = -3, a.index = 3;
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SELECT, &a, h), DB, DS, K(8))); /* axis 1 of size 4 */
  a.axis = -1, a.index = 7;
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SELECT, &a, h), DB, K(4), DS));
  a.axis = 1, a.index = 1; /* 2*S is at least 2 */
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SELECT, &a, s2), DB, K(8)));
  ir_attrs g = attrs();
  g.axis = 1, g.index = 0, g.rank = 3, g.shape[0] = DB, g.shape[1] = DS, g.shape[2] = K(64);
  ir_ref first = TB_T(&b, "first", IR_T_INPUT, IR_F32, DB, K(64));
  CU_ASSERT(SHAPE_IS(&b, TB_OP(&b, IR_OP_SELECT_GRAD, &g, first), DB, DS, K(64)));
  /* bad inputs, one diagnostic each */
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_TANH_GRAD, NULL, x, first), IR_NONE);
  a.axis = 3, a.index = 0;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT, &a, x), IR_NONE);
  a.axis = 1, a.index = 4;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT, &a, h), IR_NONE);
  a.axis = 1, a.index = 1;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT, &a, x), IR_NONE);
  a.axis = 0, a.index = -1;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT, &a, x), IR_NONE);
  a.index = 0;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT, &a, ids), IR_NONE);
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT_GRAD, &g, x), IR_NONE);
  g.index = 2;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT_GRAD, &g, first), IR_NONE);
  g.rank = 0;
  CU_ASSERT_EQUAL(TB_OP(&b, IR_OP_SELECT_GRAD, &g, first), IR_NONE);
  CU_ASSERT_STRING_EQUAL(tb_msg(&b),
                         "t.sbp:1:1: error: tanh_grad: x and dy differ: [B, S, 64] vs [B, 64]\n"
                         "t.sbp:1:1: error: select: axis 3 out of range for [B, S, 64]\n"
                         "t.sbp:1:1: error: select: index 4 out of range for axis 1 of size 4\n"
                         "t.sbp:1:1: error: select: index 1 may be out of range for axis 1 of size S (it must be below 1, the size when B = S = 1)\n"
                         "t.sbp:1:1: error: select: index -1 must not be negative\n"
                         "t.sbp:1:1: error: select: input must be floating point, got i32\n"
                         "t.sbp:1:1: error: select_grad: dy must be the input shape without axis 1: [B, S, 64]\n"
                         "t.sbp:1:1: error: select_grad: index 2 may be out of range for axis 1 of size S (it must be below 1, the size when B = S = 1)\n"
                         "t.sbp:1:1: error: select_grad: needs the input shape (attr shape) of rank 1..6\n");
  tb_free(&b);
}

/* sig_str: "in,in->out" of a 1-D signature. */
static const char *sig_str(const ir_op *o, const ir_sig *s) {
  static char buf[128];
  char one[16];
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < o->nin; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", ir_sbp_str(s->in[i], one, sizeof one));
  n += (size_t)snprintf(buf + n, sizeof buf - n, "->");
  for (int i = 0; i < o->nout; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", ir_sbp_str(s->out[i], one, sizeof one));
  return buf;
}

/* sigs_str: all signatures of the last op, separated by spaces. */
static const char *sigs_str(tb *b) {
  static char all[1024];
  ir_sig s[IR_MAXSIGS];
  const ir_op *o = &b->g->op[b->g->nop - 1];
  int n = ir_op_sigs(b->g, o, s);
  size_t k = 0;
  all[0] = 0;
  for (int i = 0; i < n; i++) k += (size_t)snprintf(all + k, sizeof all - k, "%s%s", i ? " " : "", sig_str(o, &s[i]));
  return all;
}

static void signatures(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(64));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64), K(192));
  ir_ref ids = TB_T(&b, "ids", IR_T_INPUT, IR_I32, DB, DS);
  ir_ref tab = TB_T(&b, "tab", IR_T_PARAM, IR_F32, K(100), K(64));
  ir_ref qkv = TB_OP(&b, IR_OP_MATMUL, NULL, x, w);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "S(0),B->S(0) S(1),B->S(1) B,S(1)->S(2) S(2),S(0)->P(sum) P(sum),B->P(sum) B,P(sum)->P(sum) B,B->B");
  ir_attrs a = attrs();
  a.heads = 4;
  TB_OP(&b, IR_OP_ATTENTION, &a, qkv);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B->B S(0)->S(0) S(2)->S(2)");
  TB_OP(&b, IR_OP_EMBEDDING, NULL, ids, tab);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "S(0),B->S(0) S(1),B->S(1) B,S(0)->P(sum) B,S(1)->S(2) B,B->B");
  ir_ref lg = TB_T(&b, "lg", IR_T_INPUT, IR_F32, DB, DS, K(100));
  TB_OP(&b, IR_OP_CROSS_ENTROPY, NULL, lg, ids);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "S(0),S(0)->P(sum) S(1),S(1)->P(sum) S(2),B->P(sum) B,B->B");
  ir_ref v = TB_T(&b, "v", IR_T_PARAM, IR_F32, K(64));
  TB_OP(&b, IR_OP_ADD, NULL, x, v);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B,B->B S(0),B->S(0) S(1),B->S(1) S(2),S(0)->S(2) P(sum),P(sum)->P(sum)");
  TB_OP(&b, IR_OP_LAYER_NORM, NULL, x, v, v);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B,B,B->B S(0),B,B->S(0) S(1),B,B->S(1)");
  TB_OP(&b, IR_OP_TANH, NULL, x); /* elementwise, not linear: no P */
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B->B S(0)->S(0) S(1)->S(1) S(2)->S(2)");
  TB_OP(&b, IR_OP_TANH_GRAD, NULL, x, x);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B,B->B S(0),S(0)->S(0) S(1),S(1)->S(1) S(2),S(2)->S(2)");
  ir_attrs se = attrs();
  se.axis = 1, se.index = 0; /* S(1) is no input signature: boxing gathers it first */
  ir_ref first = TB_OP(&b, IR_OP_SELECT, &se, x);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B->B S(0)->S(0) S(2)->S(1) P(sum)->P(sum)");
  ir_attrs sg = se;
  sg.rank = 3, sg.shape[0] = DB, sg.shape[1] = DS, sg.shape[2] = K(64);
  TB_OP(&b, IR_OP_SELECT_GRAD, &sg, first);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B->B S(0)->S(0) S(1)->S(2) P(sum)->P(sum)");
  se.axis = -1; /* the last axis: every other split keeps its number */
  TB_OP(&b, IR_OP_SELECT, &se, x);
  CU_ASSERT_STRING_EQUAL(sigs_str(&b), "B->B S(0)->S(0) S(1)->S(1) P(sum)->P(sum)");
  tb_free(&b);
}

static void nd_filtering(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, K(8), K(64));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64), K(6));
  TB_OP(&b, IR_OP_MATMUL, NULL, x, w);
  ir_mesh m = {2, {2, 4}, {"dp", "tp"}};
  ir_ndsig s[64];
  ir_sig one[IR_MAXSIGS];
  const ir_op *o = &b.g->op[0];
  int n1 = ir_op_sigs(b.g, o, one), n = ir_op_ndsigs(b.g, o, &m, s, 64);
  CU_ASSERT_EQUAL(n1, 6); /* S(m), column, row, (P,B), (B,P), B */
  /* column splits n = 6: allowed on the 2-way axis only, never on the 4-way one */
  CU_ASSERT_EQUAL(n, 36 - 6);
  for (int i = 0; i < n; i++) {
    CU_ASSERT(s[i].idx[1] != 1);
    CU_ASSERT_EQUAL(s[i].flat, s[i].idx[0] * n1 + s[i].idx[1]);
  }
  CU_ASSERT_EQUAL(s[n - 1].out[0].n, 2);
  ir_mesh one_dev = {0, {0}, {NULL}};
  CU_ASSERT_EQUAL(ir_op_ndsigs(b.g, o, &one_dev, s, 64), 1);
  /* attention heads: 4 heads may be split 2 or 4 ways but not 8 */
  ir_ref q = TB_T(&b, "q", IR_T_INPUT, IR_F32, K(8), K(4), K(192));
  ir_attrs a = attrs();
  a.heads = 4;
  TB_OP(&b, IR_OP_ATTENTION, &a, q);
  o = &b.g->op[1];
  n = ir_op_ndsigs(b.g, o, &m, s, 64);
  int heads_both = 0;
  for (int i = 0; i < n; i++) heads_both += s[i].idx[0] == 2 && s[i].idx[1] == 2;
  CU_ASSERT_EQUAL(heads_both, 0);
  CU_ASSERT_EQUAL(n, 3 * 3 - 1); /* only (heads, heads) is dropped: 4 heads over 8 devices */
  /* a boxing op converts on its own mesh axis and passes the other through */
  ir_attrs ar = attrs();
  ar.mesh_axis = 1, ar.from = (ir_sbp){SBP_PSUM, 0}, ar.to = (ir_sbp){SBP_B, 0};
  TB_OP(&b, IR_OP_ALL_REDUCE, &ar, x);
  o = &b.g->op[2];
  n = ir_op_ndsigs(b.g, o, &m, s, 64);
  CU_ASSERT_EQUAL(n, 4); /* mesh axis 0: B, S(0), S(1), P */
  char buf[64];
  CU_ASSERT_STRING_EQUAL(ir_ndsbp_str(&s[1].in[0], buf, sizeof buf), "[S(0), P(sum)]");
  CU_ASSERT_STRING_EQUAL(ir_ndsbp_str(&s[1].out[0], buf, sizeof buf), "[S(0), B]");
  tb_free(&b);
}

static void costs(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, DS, K(64));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64), K(192));
  ir_ref y = TB_OP(&b, IR_OP_MATMUL, NULL, x, w);
  ir_attrs a = attrs();
  a.heads = 4, a.causal = true;
  TB_OP(&b, IR_OP_ATTENTION, &a, y);
  ir_bind(b.g, 2, 8);
  const ir_op *mm = &b.g->op[0], *at = &b.g->op[1];
  CU_ASSERT_DOUBLE_EQUAL(ir_op_flops(b.g, mm), 2.0 * 16 * 192 * 64, 0.5);
  /* 4 * B * S^2 * H (full square) + 5 * B * heads * S^2 */
  CU_ASSERT_DOUBLE_EQUAL(ir_op_flops(b.g, at), 4.0 * 2 * 64 * 64 + 5.0 * 2 * 4 * 64, 0.5);
  CU_ASSERT_DOUBLE_EQUAL(ir_op_bytes(b.g, mm, 2), 2.0 * (16 * 64 + 64 * 192 + 16 * 192), 0.5);
  CU_ASSERT_DOUBLE_EQUAL(ir_op_bytes(b.g, at, 4), 4.0 * (16 * 192 + 16 * 64), 0.5);
  /* select reads only the slice it returns; tanh is 4 FLOPs an element */
  ir_attrs se = attrs();
  se.axis = 1, se.index = 0;
  TB_OP(&b, IR_OP_TANH, NULL, TB_OP(&b, IR_OP_SELECT, &se, x));
  const ir_op *sel = &b.g->op[2], *th = &b.g->op[3];
  CU_ASSERT_DOUBLE_EQUAL(ir_op_bytes(b.g, sel, 2), 2.0 * 2 * (2 * 64), 0.5);
  CU_ASSERT_DOUBLE_EQUAL(ir_op_flops(b.g, sel), 0, 0.5);
  CU_ASSERT_DOUBLE_EQUAL(ir_op_flops(b.g, th), 4.0 * 2 * 64, 0.5);
  CU_ASSERT_EQUAL(ir_op_kclass(IR_OP_SELECT), KC_GATHER);
  CU_ASSERT_EQUAL(ir_op_kclass(IR_OP_TANH), KC_ELEM);
  CU_ASSERT_PTR_NULL(ir_op_grad(IR_OP_ALL_REDUCE));
  CU_ASSERT_EQUAL(ir_op_kclass(IR_OP_MATMUL), KC_GEMM);
  tb_free(&b);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("ir_ops", NULL, NULL);
  CU_ADD(s, matmul_shapes);
  CU_ADD(s, elementwise_shapes);
  CU_ADD(s, attention_shapes);
  CU_ADD(s, gather_and_loss_shapes);
  CU_ADD(s, view_shapes);
  CU_ADD(s, backward_shapes);
  CU_ADD(s, tanh_select_shapes);
  CU_ADD(s, signatures);
  CU_ADD(s, nd_filtering);
  CU_ADD(s, costs);
}
