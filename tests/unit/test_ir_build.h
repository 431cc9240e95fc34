/* test_ir_build.h — small graph-building helpers shared by the test_ir_*.c
 * suites (header only, static functions): tensors and ops through the builder
 * API with shape inference run on each op, diagnostics captured in memory,
 * and a GPT-2 builder (the examples/gpt2.sbp model at small sizes, optionally
 * with Megatron hints) used by the SBP and boxing tests. */
#ifndef TEST_IR_BUILD_H
#define TEST_IR_BUILD_H
#include "ir/ir.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DB ((ir_dim){1, 1, 0})
#define DS ((ir_dim){1, 0, 1})
#define K(x) ir_const(x)

typedef struct {
  ir_graph *g;
  diag d;
  char *msg;   /* captured diagnostics */
  size_t len;
  FILE *f;
  int block, layer, lidx, tlidx; /* current placement for new tensors/ops */
} tb;

__attribute__((unused)) static void tb_init(tb *b, const char *name) {
  memset(b, 0, sizeof *b);
  b->g = ir_graph_new(name);
  b->f = open_memstream(&b->msg, &b->len);
  diag_init(&b->d, "t.sbp", NULL, 0);
  b->d.out = b->f;
  b->d.color = 0;
  b->block = b->layer = -1;
}

/* tb_msg: the diagnostics so far (flushed). */
__attribute__((unused)) static const char *tb_msg(tb *b) {
  fflush(b->f);
  return b->msg ? b->msg : "";
}

__attribute__((unused)) static void tb_free(tb *b) {
  fclose(b->f);
  free(b->msg);
  ir_graph_free(b->g);
}

/* tb_tensor: a tensor of the given kind with shape dims[0..rank). */
__attribute__((unused)) static ir_ref tb_tensor(tb *b, const char *name, ir_tkind k, ir_dtype dt, int rank, const ir_dim *dims) {
  ir_tensor t = ir_tensor_init(name ? arena_strdup(b->g->arena, name) : NULL, k, dt);
  t.rank = (uint8_t)rank;
  for (int i = 0; i < rank; i++) t.shape[i] = dims[i];
  t.block = b->block, t.layer = b->layer;
  if (b->block >= 0) t.lidx = b->tlidx++;
  ir_ref r = ir_tensor_add(b->g, &t);
  if (!name) b->g->t[r].name = arena_printf(b->g->arena, "%%%d", r);
  return r;
}

#define TB_T(b, name, kind, dt, ...) \
  tb_tensor((b), (name), (kind), (dt), (int)(sizeof((ir_dim[]){__VA_ARGS__}) / sizeof(ir_dim)), (ir_dim[]){__VA_ARGS__})

/* tb_param_hint: set a 1-D hint on a tensor. */
__attribute__((unused)) static void tb_hint(tb *b, ir_ref r, ir_sbp s) {
  b->g->t[r].has_hint = true;
  b->g->t[r].hint.n = 1;
  b->g->t[r].hint.a[0] = s;
}

/* tb_opv: add op k with inputs in[0..nin), nout outputs; runs ir_op_infer.
 * Returns the first output, or IR_NONE if inference failed (op not added). */
__attribute__((unused)) static ir_ref tb_opv(tb *b, ir_opkind k, const ir_attrs *at, int nin, const ir_ref *in, int nout) {
  ir_op o = ir_op_init(k);
  if (at) o.at = *at;
  o.nin = (uint8_t)nin;
  o.nout = (uint8_t)nout;
  for (int i = 0; i < nin; i++) o.in[i] = in[i];
  for (int i = 0; i < nout; i++) o.out[i] = tb_tensor(b, NULL, IR_T_ACT, IR_F32, 0, NULL);
  o.block = b->block, o.layer = b->layer;
  if (b->block >= 0) o.lidx = b->lidx++;
  o.loc = (srcloc){1, 1};
  if (!ir_op_infer(b->g, &o, &b->d)) return IR_NONE;
  ir_op_add(b->g, &o);
  return o.out[0];
}

#define TB_OP(b, k, at, ...) \
  tb_opv((b), (k), (at), (int)(sizeof((ir_ref[]){__VA_ARGS__}) / sizeof(ir_ref)), (ir_ref[]){__VA_ARGS__}, 1)

/* tb_gpt2: GPT-2 (as examples/gpt2.sbp; `+ bias` is bias_add, as the front end lowers it) with V, P, H, heads, L layers.
 * megatron: c_attn/c_fc weights S(1), their biases S(0), c_proj weights S(0). */
__attribute__((unused)) static void tb_gpt2(tb *b, int64_t V, int64_t P, int64_t H, int64_t A, int L, bool megatron) {
  ir_graph *g = b->g;
  ir_ref ids = TB_T(b, "ids", IR_T_INPUT, IR_I32, DB, DS);
  ir_ref labels = TB_T(b, "labels", IR_T_INPUT, IR_I32, DB, DS);
  ir_ref wte = TB_T(b, "wte.weight", IR_T_PARAM, IR_F32, K(V), K(H));
  ir_ref wpe = TB_T(b, "wpe.weight", IR_T_PARAM, IR_F32, K(P), K(H));
  ir_attrs pa = {0};
  pa.rank = 1, pa.shape[0] = DS, pa.axis = -1;
  ir_ref pos = tb_opv(b, IR_OP_POSITIONS, &pa, 0, NULL, 1);
  ir_ref x = TB_OP(b, IR_OP_ADD, NULL, TB_OP(b, IR_OP_EMBEDDING, NULL, ids, wte), TB_OP(b, IR_OP_EMBEDDING, NULL, pos, wpe));
  int blk = ir_block_add(g, "h", L);
  ir_attrs ln = {0}, at = {0}, dr = {0}, ge = {0};
  ln.eps = 1e-5, ln.axis = -1;
  at.heads = A, at.causal = true, at.axis = -1;
  dr.p = 0.1, dr.axis = -1;
  ge.tanh = true, ge.axis = -1;
  for (int l = 0; l < L; l++) {
    char nm[12][64];
    static const char *pn[12] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                 "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                 "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    for (int i = 0; i < 12; i++) snprintf(nm[i], sizeof nm[i], "h.%d.%s", l, pn[i]);
    b->block = blk, b->layer = l, b->lidx = 0, b->tlidx = 0;
    ir_ref p[12];
    p[0] = TB_T(b, nm[0], IR_T_PARAM, IR_F32, K(H));
    p[1] = TB_T(b, nm[1], IR_T_PARAM, IR_F32, K(H));
    p[2] = TB_T(b, nm[2], IR_T_PARAM, IR_F32, K(H), K(3 * H));
    p[3] = TB_T(b, nm[3], IR_T_PARAM, IR_F32, K(3 * H));
    p[4] = TB_T(b, nm[4], IR_T_PARAM, IR_F32, K(H), K(H));
    p[5] = TB_T(b, nm[5], IR_T_PARAM, IR_F32, K(H));
    p[6] = TB_T(b, nm[6], IR_T_PARAM, IR_F32, K(H));
    p[7] = TB_T(b, nm[7], IR_T_PARAM, IR_F32, K(H));
    p[8] = TB_T(b, nm[8], IR_T_PARAM, IR_F32, K(H), K(4 * H));
    p[9] = TB_T(b, nm[9], IR_T_PARAM, IR_F32, K(4 * H));
    p[10] = TB_T(b, nm[10], IR_T_PARAM, IR_F32, K(4 * H), K(H));
    p[11] = TB_T(b, nm[11], IR_T_PARAM, IR_F32, K(H));
    if (megatron) {
      ir_sbp s0 = {SBP_S, 0}, s1 = {SBP_S, 1};
      tb_hint(b, p[2], s1), tb_hint(b, p[3], s0), tb_hint(b, p[4], s0);
      tb_hint(b, p[8], s1), tb_hint(b, p[9], s0), tb_hint(b, p[10], s0);
    }
    ir_ref a = TB_OP(b, IR_OP_LAYER_NORM, &ln, x, p[0], p[1]);
    ir_ref qkv = TB_OP(b, IR_OP_BIAS_ADD, NULL, TB_OP(b, IR_OP_MATMUL, NULL, a, p[2]), p[3]);
    ir_ref y = TB_OP(b, IR_OP_ATTENTION, &at, qkv);
    ir_ref o = TB_OP(b, IR_OP_BIAS_ADD, NULL, TB_OP(b, IR_OP_MATMUL, NULL, y, p[4]), p[5]);
    x = TB_OP(b, IR_OP_ADD, NULL, x, TB_OP(b, IR_OP_DROPOUT, &dr, o));
    ir_ref m = TB_OP(b, IR_OP_LAYER_NORM, &ln, x, p[6], p[7]);
    ir_ref f = TB_OP(b, IR_OP_GELU, &ge, TB_OP(b, IR_OP_BIAS_ADD, NULL, TB_OP(b, IR_OP_MATMUL, NULL, m, p[8]), p[9]));
    ir_ref o2 = TB_OP(b, IR_OP_BIAS_ADD, NULL, TB_OP(b, IR_OP_MATMUL, NULL, f, p[10]), p[11]);
    x = TB_OP(b, IR_OP_ADD, NULL, x, TB_OP(b, IR_OP_DROPOUT, &dr, o2));
    if (l == 0) g->blk[blk].ops_per_layer = b->lidx, g->blk[blk].tensors_per_layer = b->tlidx;
  }
  b->block = b->layer = -1;
  ir_ref lw = TB_T(b, "ln_f.weight", IR_T_PARAM, IR_F32, K(H));
  ir_ref lb = TB_T(b, "ln_f.bias", IR_T_PARAM, IR_F32, K(H));
  ir_attrs mt = {0};
  mt.trans_b = true, mt.axis = -1;
  ir_ref logits = TB_OP(b, IR_OP_MATMUL, &mt, TB_OP(b, IR_OP_LAYER_NORM, &ln, x, lw, lb), wte);
  g->loss = TB_OP(b, IR_OP_CROSS_ENTROPY, NULL, logits, labels);
}

/* tb_count: ops of kind k (in block blk's layer `layer` when blk >= 0, or
 * anywhere when blk < 0). */
__attribute__((unused)) static int tb_count(const ir_graph *g, ir_opkind k, int blk, int layer) {
  int n = 0;
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == k && (blk < 0 || (g->op[i].block == blk && g->op[i].layer == layer))) n++;
  return n;
}
#endif
