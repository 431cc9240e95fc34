/* test_plan_cost.c — the planner's cost, memory and pipeline formulas against
 * values computed by hand from the formulas in docs/planner.md. */
#include "cu.h"
#include "planner/plan_int.h"
#include "tests/support/fixtures.h"
#include <math.h>
#include <stdlib.h>

#define NEAR(a, b) CU_ASSERT(fabs((double)(a) - (double)(b)) <= 1e-9 * fabs((double)(b)) + 1e-15)

static plan_calib cal(void) {
  plan_calib c;
  plan_calib_default(&c);
  c.gemm_eff_max = 0.8, c.gemm_half_dim = 128, c.mem_eff = 0.7, c.kernel_overhead_s = 4e-6, c.coll_eff = 0.8;
  return c;
}

static void gemm_efficiency(void) {
  plan_calib c = cal();
  NEAR(plan_gemm_eff(&c, 128, 128, 128), 0.8 * 0.125);
  NEAR(plan_gemm_eff(&c, 384, 128, 896), 0.8 * 0.75 * 0.5 * 0.875);
  CU_ASSERT(plan_gemm_eff(&c, 1e9, 1e9, 1e9) > 0.7999);
  /* symmetric: backward GEMMs of a matmul run at the forward's efficiency */
  NEAR(plan_gemm_eff(&c, 4096, 1024, 12288), plan_gemm_eff(&c, 12288, 4096, 1024));
}

static void roofline(void) {
  plan_calib c = cal();
  plan_dev d = {100e12, 1e12, 80e9};
  NEAR(plan_kernel_time(&c, &d, 1e12, 0.5, 1e9, 1, PLAN_FWD), 0.02 + 4e-6);           /* compute bound */
  NEAR(plan_kernel_time(&c, &d, 1e9, 0.5, 1e10, 2, PLAN_BWD), 1e10 / 0.7e12 + 8e-6); /* memory bound */
}

static void collectives(void) {
  plan_calib c = cal();
  plan_link l = {100e9, 5e-6, PLAN_INTRA}; /* bw 80e9 after coll_eff */
  NEAR(plan_coll_time(&c, IR_OP_ALL_REDUCE, 1e9, 8, l), 2 * 7 * 5e-6 + 2e9 * 7 / (8 * 80e9)); /* ring */
  NEAR(plan_coll_time(&c, IR_OP_ALL_REDUCE, 1e3, 8, l), 2 * 3 * 5e-6 + 2e3 / 80e9);           /* tree */
  NEAR(plan_coll_time(&c, IR_OP_ALL_GATHER, 1e9, 4, l), 3 * 5e-6 + 1e9 * 3 / (4 * 80e9));
  NEAR(plan_coll_time(&c, IR_OP_REDUCE_SCATTER, 1e9, 4, l), 3 * 5e-6 + 1e9 * 3 / (4 * 80e9));
  NEAR(plan_coll_time(&c, IR_OP_ALL_TO_ALL, 1e9, 4, l), 3 * 5e-6 + 1e9 * 3 / (16 * 80e9));
  NEAR(plan_coll_time(&c, IR_OP_SEND_RECV, 1e9, 2, l), 5e-6 + 1e9 / 80e9);
  NEAR(plan_coll_time(&c, IR_OP_ALL_REDUCE, 1e9, 1, l), 0);
  NEAR(ir_coll_bytes(IR_OP_ALL_REDUCE, 800, 8), 1400);
  NEAR(ir_coll_bytes(IR_OP_ALL_GATHER, 800, 8), 700);
  NEAR(ir_coll_bytes(IR_OP_ALL_TO_ALL, 800, 8), 87.5);
  /* a calibration table replaces the link bandwidth (never above the link) */
  c.ncoll = 2, c.coll_n[0] = 2, c.coll_n[1] = 8, c.coll_bw[0] = 40e9, c.coll_bw[1] = 60e9;
  c.coll_alpha[0] = c.coll_alpha[1] = 1e-5;
  NEAR(plan_coll_time(&c, IR_OP_ALL_GATHER, 1e9, 8, l), 7 * 1e-5 + 1e9 * 7 / (8 * 60e9));
  NEAR(plan_coll_time(&c, IR_OP_ALL_GATHER, 1e9, 4, l), 3 * 1e-5 + 1e9 * 3 / (4 * 50e9)); /* log-interpolated */
}

static ir_sbp S(int a) { ir_sbp x = {SBP_S, (int8_t)a}; return x; }
static ir_sbp B(void) { ir_sbp x = {SBP_B, 0}; return x; }
static ir_sbp P(void) { ir_sbp x = {SBP_PSUM, 0}; return x; }

static void boxing_rules(void) {
  CU_ASSERT_EQUAL(ir_boxing_kind(P(), B()), IR_OP_ALL_REDUCE);
  CU_ASSERT_EQUAL(ir_boxing_kind(P(), S(1)), IR_OP_REDUCE_SCATTER);
  CU_ASSERT_EQUAL(ir_boxing_kind(S(0), B()), IR_OP_ALL_GATHER);
  CU_ASSERT_EQUAL(ir_boxing_kind(S(0), S(2)), IR_OP_ALL_TO_ALL);
  CU_ASSERT_EQUAL(ir_boxing_kind(B(), S(1)), IR_OP_SLICE);
  CU_ASSERT_EQUAL(ir_boxing_kind(S(1), S(1)), IR_NOPKIND);
  ir_sbp pm = {SBP_PMAX, 0};
  CU_ASSERT_EQUAL(ir_boxing_kind(P(), pm), IR_OP_ALL_REDUCE); /* then a local slice: boxing.c inserts both */
  NEAR(ir_boxing_bytes(P(), pm, 800, 8), 1400);
  /* Megatron's f and g: the gradient of a B input of a split op is partial */
  CU_ASSERT_EQUAL(plan_grad_sbp(B(), false).kind, SBP_PSUM);
  CU_ASSERT_EQUAL(plan_grad_sbp(B(), true).kind, SBP_B);
  CU_ASSERT(ir_sbp_eq(plan_grad_sbp(S(1), false), S(1)));
  CU_ASSERT_EQUAL(plan_grad_sbp(P(), false).kind, SBP_B);
  CU_ASSERT_EQUAL(plan_need_sbp(P()).kind, SBP_B);
  CU_ASSERT(ir_sbp_eq(plan_need_sbp(S(2)), S(2)));
}

static void links(void) {
  arena *a = arena_new();
  plan_cl cl;
  CU_ASSERT(plan_cl_init(&cl, fx_cluster_dgx(a, 2), a));
  CU_ASSERT_EQUAL(cl.ndev, 16);
  plan_link l = plan_group_link(&cl, 0, 1, 8); /* inside a node */
  NEAR(l.bw, 300e9);
  NEAR(l.lat, 3e-6);
  l = plan_group_link(&cl, 0, 8, 2); /* one device per node: 1/8 of 8 x 25 GB/s */
  NEAR(l.bw, 25e9);
  NEAR(l.lat, 5e-6);
  l = plan_group_link(&cl, 0, 1, 16); /* 8 members per node: the whole NIC share */
  NEAR(l.bw, 200e9);
  l = plan_group_link(&cl, 0, 4, 4); /* 2 members per node */
  NEAR(l.bw, 50e9);
  CU_ASSERT(plan_cl_init(&cl, fx_cluster_mixed(a, 1, 1), a));
  l = plan_group_link(&cl, 0, 8, 2); /* A100 node to V100 node: the slower NIC */
  NEAR(l.bw, 12.5e9 / 8);
  NEAR(l.lat, 10e-6);
  plan_dev v = plan_dev_of(cl.c, 1, IR_BF16); /* V100 has no bf16: fp16 rate */
  NEAR(v.flops, 125e12);
  arena_free(a);
}

static void pipeline(void) {
  double t[4] = {1, 1, 1, 1}, e[4] = {0}, z[4] = {0}, cap[4] = {1, 1, 1, 1};
  plan_part_prob p = {4, 8, 1, 8, t, e, z, z, cap};
  int x[4] = {2, 2, 2, 2};
  NEAR(plan_part_objective(&p, x), (8 + 4 - 1) * 2.0); /* (m + p - 1) T */
  p.v = 2;
  NEAR(plan_part_objective(&p, x), (8 + 3.0 / 2) * 2.0); /* (m + (p-1)/v) T */
  double t2[4] = {1, 2, 1, 1};
  p.t = t2, p.v = 1;
  NEAR(plan_part_objective(&p, x), 8 * 4.0 + (2 + 2 + 2)); /* the slowest stage sets the pace */
}

/* one matmul in a one-layer block: fwd = roofline of 2*b*s*H*F FLOPs */
static void matmul_layer(void) {
  ir_graph *g = ir_graph_new("mm");
  ir_dim Bd = {1, 1, 0}, Sd = {1, 0, 1};
  ir_tensor x = ir_tensor_init("x", IR_T_INPUT, IR_F32);
  x.rank = 3, x.shape[0] = Bd, x.shape[1] = Sd, x.shape[2] = ir_const(1024);
  ir_ref xr = ir_tensor_add(g, &x);
  int b = ir_block_add(g, "h", 1);
  ir_tensor w = ir_tensor_init("h.0.w", IR_T_PARAM, IR_F32);
  w.rank = 2, w.shape[0] = ir_const(1024), w.shape[1] = ir_const(4096), w.block = b, w.layer = 0;
  ir_ref wr = ir_tensor_add(g, &w);
  ir_tensor y = ir_tensor_init("y", IR_T_ACT, IR_F32);
  y.rank = 3, y.shape[0] = Bd, y.shape[1] = Sd, y.shape[2] = ir_const(4096), y.block = b, y.layer = 0;
  ir_ref yr = ir_tensor_add(g, &y);
  ir_op o = ir_op_init(IR_OP_MATMUL);
  o.nin = 2, o.nout = 1, o.in[0] = xr, o.in[1] = wr, o.out[0] = yr, o.block = b, o.layer = 0, o.lidx = 0;
  ir_op_add(g, &o);
  arena *a = arena_new();
  plan_model *pm = plan_model_new(g, a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pm);
  plan_calib c = cal();
  plan_key k = {0};
  k.dev = (plan_dev){100e12, 1e12, 80e9}, k.prec = IR_BF16, k.seq = 512;
  k.tp = k.sp = k.m = 1, k.mbs = 4;
  const plan_sol *s = plan_model_solve(pm, &k, &c, 1);
  double M = 4 * 512, fl = 2 * M * 4096 * 1024, eff = plan_gemm_eff(&c, M, 4096, 1024);
  double by = (M * 1024 + 1024 * 4096 + M * 4096) * 2;
  NEAR(s->blk[0].fwd_s, plan_kernel_time(&c, &k.dev, fl, eff, by, 1, PLAN_FWD));
  NEAR(s->blk[0].bwd_s, plan_kernel_time(&c, &k.dev, 2 * fl, eff, 2 * by, 2, PLAN_BWD));
  NEAR(s->blk[0].params_local, 1024 * 4096);
  NEAR(s->blk[0].act_bytes, M * 1024 * 2); /* the matmul keeps its input */
  NEAR(s->blk[0].flops, fl);
  plan_model_free(pm);
  arena_free(a);
  ir_graph_free(g);
}

/* GPT layer activations without tp: s b h (34 + 5 a s / h) bytes (Korthikanti
 * et al. 2022); selective recompute drops the 5 a s^2 b score terms, full
 * keeps the 2 s b h layer input */
static void gpt_activations(void) {
  ir_graph *g = fx_gpt_graph("gpt", 2, 256, 4, 1000, 128);
  arena *a = arena_new();
  plan_model *pm = plan_model_new(g, a);
  plan_calib c = cal();
  c.attn_saved_bytes = 5;
  c.rt.dropout_mask_bytes = 1; /* the paper's runtime keeps 1-byte dropout masks */
  double s = 128, b = 2, h = 256, heads = 4;
  for (int rc = 0; rc < PLAN_NRC; rc++) {
    plan_key k = {0};
    k.dev = (plan_dev){100e12, 1e12, 80e9}, k.prec = IR_BF16, k.seq = 128;
    k.tp = k.sp = k.m = 1, k.mbs = 2, k.rc = rc;
    const plan_sol *sol = plan_model_solve(pm, &k, &c, 1);
    double want = rc == PLAN_RC_NONE ? s * b * h * 34 + 5 * heads * s * s * b
                : rc == PLAN_RC_SELECTIVE ? s * b * h * 34 : 2 * s * b * h;
    NEAR(sol->blk[0].act_bytes, want);
    NEAR(sol->blk[0].act_full_bytes, s * b * h * 34 + 5 * heads * s * s * b);
    NEAR(sol->blk[0].params, 12 * h * h + 13 * h);
    /* forward FLOPs: 24 b s h^2 + 4 b s^2 h */
    NEAR(sol->blk[0].flops, 24 * b * s * h * h + 4 * b * s * s * h);
  }
  plan_model_free(pm);
  arena_free(a);
  ir_graph_free(g);
}

/* one GPT layer's saved activations on a tp group of t, by hand from
 * Korthikanti et al. 2022 (Reducing Activation Recomputation in Large
 * Transformer Models, section 4, 2-byte activations, a = heads):
 *   no sequence parallelism (megatron-2021): s b h (10 + 24/t + 5 a s/(h t)),
 *     selective recompute s b h (10 + 24/t), full 2 s b h (the layer input);
 *   sequence parallelism (megatron-2022): s b h (34/t + 5 a s/(h t)),
 *     selective 34 s b h / t, full 2 s b h / t;
 *   flash attention (stack-2024): no score terms, the fp32 log-sum-exp
 *     4 b (a/t) s instead: 34 s b h / t + 4 b a s / t with or without
 *     selective recompute, full 2 s b h / t. */
static double layer_act(plan_model *pm, const plan_calib *c, int t, int rc) {
  plan_key k = {0};
  k.dev = (plan_dev){312e12, 2e12, 80e9}, k.prec = IR_BF16, k.seq = 1024;
  k.tp = t, k.sp = 1, k.m = 8, k.mbs = 2, k.rc = rc;
  k.tpl = (plan_link){300e9, 3e-6, PLAN_INTRA};
  return plan_model_solve(pm, &k, c, 2)->blk[0].act_bytes;
}

static void korthikanti_activations(void) {
  double s = 1024, b = 2, h = 4096, a = 32;
  ir_graph *g = fx_gpt_graph("gpt", 2, (int64_t)h, (int64_t)a, 51200, 1024);
  const char *prof[3] = {"megatron-2021", "megatron-2022", "stack-2024"};
  for (int i = 0; i < 3; i++)
    for (int t = 1; t <= 8; t *= 2) {
      arena *ar = arena_new();
      plan_model *pm = plan_model_new(g, ar);
      plan_calib c = cal();
      c.attn_saved_bytes = 5;
      CU_ASSERT_FATAL(plan_runtime_set(&c, prof[i]));
      double sbh = s * b * h, score = 5 * a * s * s * b / t, want[3];
      if (i == 0) want[0] = sbh * (10 + 24.0 / t) + score, want[1] = sbh * (10 + 24.0 / t), want[2] = 2 * sbh;
      else if (i == 1) want[0] = 34 * sbh / t + score, want[1] = 34 * sbh / t, want[2] = 2 * sbh / t;
      else want[0] = want[1] = 34 * sbh / t + 4 * b * a * s / t, want[2] = 2 * sbh / t;
      if (t == 1) want[2] = 2 * sbh; /* nothing to split */
      for (int rc = 0; rc < PLAN_NRC; rc++) {
        double got = layer_act(pm, &c, t, rc);
        if (fabs(got - want[rc]) > 1e-9 * want[rc])
          printf("\n  %s t=%d rc=%d: %.6g, want %.6g (%.3f sbh)", prof[i], t, rc, got, want[rc], got / sbh);
        NEAR(got, want[rc]);
      }
      plan_model_free(pm);
      arena_free(ar);
    }
  ir_graph_free(g);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("plan_cost", NULL, NULL);
  CU_ADD(s, gemm_efficiency);
  CU_ADD(s, roofline);
  CU_ADD(s, collectives);
  CU_ADD(s, boxing_rules);
  CU_ADD(s, links);
  CU_ADD(s, pipeline);
  CU_ADD(s, matmul_layer);
  CU_ADD(s, gpt_activations);
  CU_ADD(s, korthikanti_activations);
}
