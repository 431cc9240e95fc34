/* test_rt_grad.c — gradient check of every backward kernel and rule.
 *
 * Small graphs built with the builder API cover every differentiable forward
 * op; each ends in a cross_entropy. Each is compiled to a 1-rank program
 * (lower/: autodiff and the rest) and the executor computes the analytic
 * gradients (one step with lr 0: the gradients stay in the accumulators),
 * and each parameter is checked
 * at a few elements against central differences of the loss. Parameters are
 * refilled with uniform [-0.5, 0.5] values so gradients are large enough for
 * fp32 differences. The pooler model (tanh, select) runs twice: with the
 * default kernels (codegen's JIT for elementwise ops) and with the reference
 * kernels only. */
#include "cu.h"
#include "ir/autodiff.h"
#include "lower/lower.h"
#include "runtime/exec_priv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ir_dim D(int64_t c) { return ir_const(c); }
static const ir_dim DB = {1, 1, 0}, DS = {1, 0, 1};

static ir_ref ten(ir_graph *g, const char *name, ir_tkind k, ir_dtype dt, int rank, ir_dim a, ir_dim b, ir_dim c) {
  ir_tensor t = ir_tensor_init(arena_strdup(g->arena, name), k, dt);
  t.rank = (uint8_t)rank;
  t.shape[0] = a, t.shape[1] = b, t.shape[2] = c;
  return ir_tensor_add(g, &t);
}

static ir_ref act3(ir_graph *g, int64_t n) { return ten(g, "%a", IR_T_ACT, IR_F32, 3, DB, DS, D(n)); }

static ir_ref op(ir_graph *g, ir_opkind k, ir_ref a, ir_ref b, ir_ref c, const ir_attrs *at, ir_ref out) {
  ir_op o = ir_op_init(k);
  if (at) o.at = *at;
  ir_ref ins[3] = {a, b, c};
  for (int i = 0; i < 3 && ins[i] != IR_NONE; i++) o.in[o.nin++] = ins[i];
  o.out[0] = out;
  o.nout = 1;
  ir_op_add(g, &o);
  return out;
}

static ir_attrs A0(void) {
  ir_attrs a;
  memset(&a, 0, sizeof a);
  a.axis = -1;
  return a;
}

enum { V = 11 };

/* ids/labels and an embedding: x [B,S,H] */
static ir_ref front(ir_graph *g, int64_t H, ir_ref *labels, ir_ref *wte) {
  ir_ref ids = ten(g, "ids", IR_T_INPUT, IR_I32, 2, DB, DS, D(0));
  *labels = ten(g, "labels", IR_T_INPUT, IR_I32, 2, DB, DS, D(0));
  *wte = ten(g, "wte.weight", IR_T_PARAM, IR_F32, 2, D(V), D(H), D(0));
  return op(g, IR_OP_EMBEDDING, ids, *wte, IR_NONE, NULL, act3(g, H));
}

static void finish(ir_graph *g, ir_ref logits, ir_ref labels) {
  ir_ref loss = ten(g, "loss", IR_T_ACT, IR_F32, 0, D(0), D(0), D(0));
  op(g, IR_OP_CROSS_ENTROPY, logits, labels, IR_NONE, NULL, loss);
  g->loss = loss;
}

/* model 1: layer_norm, matmul, bias_add, gelu (tanh and erf), tied head */
static ir_graph *model_mlp(void) {
  ir_graph *g = ir_graph_new("mlp");
  ir_ref labels, wte, x = front(g, 6, &labels, &wte);
  ir_ref w = ten(g, "ln.weight", IR_T_PARAM, IR_F32, 1, D(6), D(0), D(0));
  ir_ref b = ten(g, "ln.bias", IR_T_PARAM, IR_F32, 1, D(6), D(0), D(0));
  ir_ref w1 = ten(g, "fc.weight", IR_T_PARAM, IR_F32, 2, D(6), D(8), D(0));
  ir_ref b1 = ten(g, "fc.bias", IR_T_PARAM, IR_F32, 1, D(8), D(0), D(0));
  ir_ref w2 = ten(g, "proj.weight", IR_T_PARAM, IR_F32, 2, D(8), D(6), D(0));
  ir_attrs ln = A0(), ge = A0();
  ln.eps = 1e-5;
  ge.tanh = true;
  ir_ref h = op(g, IR_OP_LAYER_NORM, x, w, b, &ln, act3(g, 6));
  ir_ref f = op(g, IR_OP_BIAS_ADD, op(g, IR_OP_MATMUL, h, w1, IR_NONE, NULL, act3(g, 8)), b1, IR_NONE, NULL, act3(g, 8));
  f = op(g, IR_OP_GELU, f, IR_NONE, IR_NONE, &ge, act3(g, 8));
  f = op(g, IR_OP_GELU, f, IR_NONE, IR_NONE, NULL, act3(g, 8));
  ir_ref y = op(g, IR_OP_ADD, x, op(g, IR_OP_MATMUL, f, w2, IR_NONE, NULL, act3(g, 6)), IR_NONE, NULL, act3(g, 6));
  ir_attrs tb = A0();
  tb.trans_b = true;
  finish(g, op(g, IR_OP_MATMUL, y, wte, IR_NONE, &tb, act3(g, V)), labels);
  return g;
}

/* model 2: fused-qkv causal attention, positions + broadcast add, dropout */
static ir_graph *model_attn(void) {
  ir_graph *g = ir_graph_new("attn");
  ir_ref labels, wte, x = front(g, 8, &labels, &wte);
  ir_ref wpe = ten(g, "wpe.weight", IR_T_PARAM, IR_F32, 2, D(5), D(8), D(0));
  ir_attrs pa = A0();
  pa.rank = 1;
  pa.shape[0] = DS;
  ir_ref pos = op(g, IR_OP_POSITIONS, IR_NONE, IR_NONE, IR_NONE, &pa, ten(g, "%p", IR_T_ACT, IR_I32, 1, DS, D(0), D(0)));
  ir_ref pe = op(g, IR_OP_EMBEDDING, pos, wpe, IR_NONE, NULL, ten(g, "%pe", IR_T_ACT, IR_F32, 2, DS, D(8), D(0)));
  x = op(g, IR_OP_ADD, x, pe, IR_NONE, NULL, act3(g, 8));
  ir_ref wq = ten(g, "c_attn.weight", IR_T_PARAM, IR_F32, 2, D(8), D(24), D(0));
  ir_attrs at = A0();
  at.heads = 2;
  at.causal = true;
  ir_ref y = op(g, IR_OP_ATTENTION, op(g, IR_OP_MATMUL, x, wq, IR_NONE, NULL, act3(g, 24)), IR_NONE, IR_NONE, &at,
                act3(g, 8));
  ir_attrs dr = A0();
  dr.p = 0.3;
  y = op(g, IR_OP_DROPOUT, y, IR_NONE, IR_NONE, &dr, act3(g, 8));
  ir_attrs tb = A0();
  tb.trans_b = true;
  finish(g, op(g, IR_OP_MATMUL, op(g, IR_OP_ADD, x, y, IR_NONE, NULL, act3(g, 8)), wte, IR_NONE, &tb, act3(g, V)),
         labels);
  return g;
}

/* model 3: q,k,v GQA attention with rotary, rms_norm, swiglu, silu, sub, mul */
static ir_graph *model_llama(void) {
  ir_graph *g = ir_graph_new("llama");
  ir_ref labels, wte, x = front(g, 8, &labels, &wte);
  ir_ref nw = ten(g, "norm.weight", IR_T_PARAM, IR_F32, 1, D(8), D(0), D(0));
  ir_attrs rn = A0();
  rn.eps = 1e-6;
  ir_ref h = op(g, IR_OP_RMS_NORM, x, nw, IR_NONE, &rn, act3(g, 8));
  ir_ref wq = ten(g, "q.weight", IR_T_PARAM, IR_F32, 2, D(8), D(8), D(0));
  ir_ref wk = ten(g, "k.weight", IR_T_PARAM, IR_F32, 2, D(8), D(4), D(0));
  ir_ref wv = ten(g, "v.weight", IR_T_PARAM, IR_F32, 2, D(8), D(4), D(0));
  ir_attrs r4 = A0(), r2 = A0(), at = A0();
  r4.heads = 4, r2.heads = 2, r4.theta = r2.theta = 100.0;
  at.heads = 4, at.kv_heads = 2, at.causal = true;
  ir_ref q = op(g, IR_OP_ROTARY, op(g, IR_OP_MATMUL, h, wq, IR_NONE, NULL, act3(g, 8)), IR_NONE, IR_NONE, &r4, act3(g, 8));
  ir_ref k = op(g, IR_OP_ROTARY, op(g, IR_OP_MATMUL, h, wk, IR_NONE, NULL, act3(g, 4)), IR_NONE, IR_NONE, &r2, act3(g, 4));
  ir_ref v = op(g, IR_OP_MATMUL, h, wv, IR_NONE, NULL, act3(g, 4));
  ir_ref a = op(g, IR_OP_ATTENTION, q, k, v, &at, act3(g, 8));
  ir_ref wg = ten(g, "gate.weight", IR_T_PARAM, IR_F32, 2, D(8), D(6), D(0));
  ir_ref wu = ten(g, "up.weight", IR_T_PARAM, IR_F32, 2, D(8), D(6), D(0));
  ir_ref gt = op(g, IR_OP_MATMUL, a, wg, IR_NONE, NULL, act3(g, 6)), up = op(g, IR_OP_MATMUL, a, wu, IR_NONE, NULL, act3(g, 6));
  ir_ref sw = op(g, IR_OP_SWIGLU, gt, up, IR_NONE, NULL, act3(g, 6));
  ir_ref s2 = op(g, IR_OP_MUL, op(g, IR_OP_SILU, up, IR_NONE, IR_NONE, NULL, act3(g, 6)), sw, IR_NONE, NULL, act3(g, 6));
  ir_ref mb = ten(g, "m.bias", IR_T_PARAM, IR_F32, 1, D(6), D(0), D(0));
  s2 = op(g, IR_OP_SUB, op(g, IR_OP_MUL, s2, mb, IR_NONE, NULL, act3(g, 6)), mb, IR_NONE, NULL, act3(g, 6));
  ir_ref wo = ten(g, "head.weight", IR_T_PARAM, IR_F32, 2, D(6), D(V), D(0));
  finish(g, op(g, IR_OP_MATMUL, s2, wo, IR_NONE, NULL, act3(g, V)), labels);
  return g;
}

/* model 4: softmax (scale, causal), transpose, batched matmul, reshape,
 * split/concat, scale */
static ir_graph *model_misc(void) {
  ir_graph *g = ir_graph_new("misc");
  ir_ref labels, wte, x = front(g, 6, &labels, &wte);
  ir_ref w = ten(g, "w.weight", IR_T_PARAM, IR_F32, 2, D(6), D(12), D(0));
  ir_ref u = op(g, IR_OP_MATMUL, x, w, IR_NONE, NULL, act3(g, 12));
  ir_attrs sp = A0();
  sp.n = 2;
  ir_op o = ir_op_init(IR_OP_SPLIT);
  o.at = sp;
  o.nin = 1, o.in[0] = u, o.nout = 2, o.out[0] = act3(g, 6), o.out[1] = act3(g, 6);
  ir_ref p0 = o.out[0], p1 = o.out[1];
  ir_op_add(g, &o);
  ir_ref kt = ten(g, "%kt", IR_T_ACT, IR_F32, 3, DB, D(6), DS);
  op(g, IR_OP_TRANSPOSE, p1, IR_NONE, IR_NONE, NULL, kt);
  ir_ref sc = ten(g, "%sc", IR_T_ACT, IR_F32, 3, DB, DS, DS);
  op(g, IR_OP_MATMUL, p0, kt, IR_NONE, NULL, sc);
  ir_attrs sm = A0();
  sm.scale = 0.7, sm.causal = true;
  ir_ref pr = ten(g, "%pr", IR_T_ACT, IR_F32, 3, DB, DS, DS);
  op(g, IR_OP_SOFTMAX, sc, IR_NONE, IR_NONE, &sm, pr);
  ir_ref ctx = op(g, IR_OP_MATMUL, pr, p1, IR_NONE, NULL, act3(g, 6));
  ir_attrs cc = A0();
  ir_ref cat = op(g, IR_OP_CONCAT, ctx, p0, IR_NONE, &cc, act3(g, 12));
  ir_attrs rs = A0();
  rs.rank = 2, rs.shape[0] = (ir_dim){1, 1, 1}, rs.shape[1] = D(12);
  ir_ref flat = ten(g, "%flat", IR_T_ACT, IR_F32, 2, (ir_dim){1, 1, 1}, D(12), D(0));
  op(g, IR_OP_RESHAPE, cat, IR_NONE, IR_NONE, &rs, flat);
  ir_attrs s3 = A0();
  s3.scale = 1.5;
  ir_ref fl2 = ten(g, "%fl2", IR_T_ACT, IR_F32, 2, (ir_dim){1, 1, 1}, D(12), D(0));
  op(g, IR_OP_SCALE, flat, IR_NONE, IR_NONE, &s3, fl2);
  ir_ref wo = ten(g, "o.weight", IR_T_PARAM, IR_F32, 2, D(12), D(V), D(0));
  ir_ref lg = ten(g, "%lg", IR_T_ACT, IR_F32, 2, (ir_dim){1, 1, 1}, D(V), D(0));
  op(g, IR_OP_MATMUL, fl2, wo, IR_NONE, NULL, lg);
  ir_ref l2 = ten(g, "%l2", IR_T_INPUT, IR_I32, 1, (ir_dim){1, 1, 1}, D(0), D(0));
  (void)labels;
  /* labels flattened the same way: use a reshape of the labels input */
  ir_attrs rl = A0();
  rl.rank = 1, rl.shape[0] = (ir_dim){1, 1, 1};
  g->t[l2].kind = IR_T_ACT;
  op(g, IR_OP_RESHAPE, labels, IR_NONE, IR_NONE, &rl, l2);
  finish(g, lg, l2);
  return g;
}

/* model 5: a BERT-like pooler, tanh(select(x, axis=1, index=0) @ w), fed
 * back into every token's logits through a batched matmul (pre-activation
 * scaled by 4 so tanh is far from linear), and a select at
 * index 1 of a constant axis (given as -2) of a reshape, through tanh */
static ir_graph *model_pooler(void) {
  ir_graph *g = ir_graph_new("pooler");
  ir_ref labels, wte, x = front(g, 6, &labels, &wte);
  ir_ref wp = ten(g, "pooler.weight", IR_T_PARAM, IR_F32, 2, D(6), D(6), D(0));
  ir_attrs se = A0(), tb = A0();
  se.axis = 1, se.index = 0, tb.trans_b = true;
  ir_ref first = op(g, IR_OP_SELECT, x, IR_NONE, IR_NONE, &se, ten(g, "%f", IR_T_ACT, IR_F32, 2, DB, D(6), D(0)));
  ir_ref pd = op(g, IR_OP_MATMUL, first, wp, IR_NONE, NULL, ten(g, "%pd", IR_T_ACT, IR_F32, 2, DB, D(6), D(0)));
  ir_attrs x4s = A0();
  x4s.scale = 4.0; /* into tanh's curved range, so 1 - y*y matters */
  pd = op(g, IR_OP_SCALE, pd, IR_NONE, IR_NONE, &x4s, ten(g, "%ps", IR_T_ACT, IR_F32, 2, DB, D(6), D(0)));
  ir_ref pooled = op(g, IR_OP_TANH, pd, IR_NONE, IR_NONE, NULL, ten(g, "%po", IR_T_ACT, IR_F32, 2, DB, D(6), D(0)));
  ir_attrs rs = A0();
  rs.rank = 3, rs.shape[0] = DB, rs.shape[1] = D(6), rs.shape[2] = D(1);
  ir_ref col = op(g, IR_OP_RESHAPE, pooled, IR_NONE, IR_NONE, &rs, ten(g, "%col", IR_T_ACT, IR_F32, 3, DB, D(6), D(1)));
  ir_ref sc = op(g, IR_OP_MATMUL, x, col, IR_NONE, NULL, act3(g, 1));
  ir_ref wr = ten(g, "row.weight", IR_T_PARAM, IR_F32, 2, D(1), D(V), D(0));
  ir_ref l1 = op(g, IR_OP_MATMUL, sc, wr, IR_NONE, NULL, act3(g, V));
  ir_attrs r4 = A0();
  r4.rank = 4, r4.shape[0] = DB, r4.shape[1] = DS, r4.shape[2] = D(2), r4.shape[3] = D(3);
  ir_ref x4 = ten(g, "%x4", IR_T_ACT, IR_F32, 4, DB, DS, D(2));
  g->t[x4].shape[3] = D(3);
  op(g, IR_OP_RESHAPE, x, IR_NONE, IR_NONE, &r4, x4);
  ir_attrs s2 = A0();
  s2.axis = -2, s2.index = 1;
  ir_ref half = op(g, IR_OP_TANH, op(g, IR_OP_SELECT, x4, IR_NONE, IR_NONE, &s2, act3(g, 3)), IR_NONE, IR_NONE, NULL,
                   act3(g, 3));
  ir_ref wh = ten(g, "half.weight", IR_T_PARAM, IR_F32, 2, D(3), D(V), D(0));
  ir_ref l2 = op(g, IR_OP_MATMUL, half, wh, IR_NONE, NULL, act3(g, V));
  ir_ref lg = op(g, IR_OP_ADD, op(g, IR_OP_MATMUL, x, wte, IR_NONE, &tb, act3(g, V)), l1, IR_NONE, NULL, act3(g, V));
  finish(g, op(g, IR_OP_ADD, lg, l2, IR_NONE, NULL, act3(g, V)), labels);
  return g;
}

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

/* check_model: gradient check of g with the given kernels (RT_KERNELS_AUTO:
 * codegen's JIT kernels for the elementwise and row ops where LLVM is there,
 * RT_KERNELS_REF: the reference kernels of kernels_cpu.c only). */
/* step: one step of the program (lr and weight decay 0, so the parameters
 * stay); returns the loss, the gradients stay in the accumulators */
static double step(rt_exec *e, const int32_t *ids, const int32_t *lab) {
  bool ok = true;
  double l = rt_exec_step_run(e, ids, lab, &ok);
  CU_ASSERT(ok);
  return l;
}

static void check_model_with(ir_graph *g, int kernels) {
  rt_config cfg = rt_config_default();
  cfg.kernels = kernels;
  cfg.lr = 0, cfg.weight_decay = 0;
  lw_layout lay = {1, 1, 1, 1, 0, 0, 2, 5, NULL, 0, 0, 0, 1, 1, 0, false, false};
  diag d;
  diag_init(&d, "test", NULL, 0);
  fmt_prog *p = lw_compile(g, &lay, &d);
  CU_ASSERT_FATAL(p != NULL);
  g = p->g;
  char dir[] = "/tmp/sbpc_rt_grad_XXXXXX";
  CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
  CU_ASSERT_FATAL(fmt_prog_write_dir(p, dir)); /* the program's fused kernels go to dir/kernels */
  rt_exec *e = rt_exec_new(p, dir, &cfg, NULL, 0, &d);
  CU_ASSERT_FATAL(e != NULL);
  int32_t ids[10], lab[10];
  for (int i = 0; i < 10; i++) ids[i] = (int32_t)(urand() * V), lab[i] = (int32_t)(urand() * V);
  for (int t = 0; t < g->nt; t++)
    if (g->t[t].kind == IR_T_PARAM) {
      float *q = rt_exec_param(e, t);
      for (int64_t i = 0; i < ir_numel(g, t); i++) q[i] = (float)(urand() - 0.5);
    }
  double l0 = step(e, ids, lab);
  CU_ASSERT(isfinite(l0));
  int checked = 0, bad = 0;
  float **saved = calloc((size_t)g->nt, sizeof *saved);
  for (int t = 0; t < g->nt; t++)
    if (g->t[t].kind == IR_T_PARAM && rt_exec_grad(e, t)) {
      saved[t] = malloc(sizeof(float) * (size_t)ir_numel(g, t));
      memcpy(saved[t], rt_exec_grad(e, t), sizeof(float) * (size_t)ir_numel(g, t));
    }
  for (int t = 0; t < g->nt; t++) {
    if (g->t[t].kind != IR_T_PARAM) continue;
    float *q = rt_exec_param(e, t), *gr = saved[t];
    CU_ASSERT_PTR_NOT_NULL(gr);
    if (!gr) continue;
    int64_t n = ir_numel(g, t);
    for (int s = 0; s < 5; s++) {
      int64_t i = (int64_t)(urand() * (double)n);
      float keep = q[i];
      double h = 1e-2;
      q[i] = (float)(keep + h);
      double lp = step(e, ids, lab);
      q[i] = (float)(keep - h);
      double lm = step(e, ids, lab);
      q[i] = keep;
      double num = (lp - lm) / (2 * h), ana = gr[i];
      checked++;
      if (getenv("GRAD_VERBOSE")) fprintf(stderr, "%s[%lld] %g %g\n", g->t[t].name, (long long)i, ana, num);
      if (fabs(num - ana) > 3e-5 + 1e-2 * fabs(num)) {
        bad++;
        fprintf(stderr, "%s: grad %s[%lld]: analytic %.6g numeric %.6g\n", g->name, g->t[t].name, (long long)i, ana,
                num);
      }
    }
  }
  for (int t = 0; t < g->nt; t++) free(saved[t]);
  free(saved);
  CU_ASSERT(checked > 10);
  CU_ASSERT_EQUAL(bad, 0);
  rt_exec_free(e);
  fmt_prog_free(p);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CU_ASSERT(system(cmd) == 0);
}

static void check_model(ir_graph *g) { check_model_with(g, RT_KERNELS_AUTO); }

static void test_mlp(void) { check_model(model_mlp()); }
static void test_attn(void) { check_model(model_attn()); }
static void test_llama(void) { check_model(model_llama()); }
static void test_misc(void) { check_model(model_misc()); }
static void test_pooler(void) { check_model(model_pooler()); }
static void test_pooler_ref(void) { check_model_with(model_pooler(), RT_KERNELS_REF); }

static void test_adamw_struct(void) {
  ir_graph *g = model_mlp();
  diag d;
  diag_init(&d, "test", NULL, 0);
  CU_ASSERT_FATAL(ir_autodiff(g, NULL, &d));
  int nadam = 0, nparam = 0;
  for (int k = 0; k < g->nop; k++) nadam += g->op[k].kind == IR_OP_ADAMW;
  for (int t = 0; t < g->nt; t++)
    if (g->t[t].kind == IR_T_PARAM) {
      nparam++;
      ir_ref gr = ir_grad_ref(g, t);
      CU_ASSERT(gr != IR_NONE);
      if (gr != IR_NONE) CU_ASSERT(g->t[gr].rank == g->t[t].rank);
    }
  CU_ASSERT_EQUAL(nadam, nparam);
  ir_graph_free(g);
}

static void test_no_loss(void) {
  ir_graph *g = ir_graph_new("noloss");
  diag d;
  diag_init(&d, "test", NULL, 0);
  d.out = fopen("/dev/null", "w");
  CU_ASSERT_FALSE(ir_autodiff(g, NULL, &d));
  CU_ASSERT(d.errors > 0);
  fclose(d.out);
  ir_graph_free(g);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_grad", NULL, NULL);
  CU_ADD(s, test_mlp);
  CU_ADD(s, test_attn);
  CU_ADD(s, test_llama);
  CU_ADD(s, test_misc);
  CU_ADD(s, test_pooler);
  CU_ADD(s, test_pooler_ref);
  CU_ADD(s, test_adamw_struct);
  CU_ADD(s, test_no_loss);
}
