/* test_ir_passes.c — the IR passes: SBP deduction (Megatron hints, data
 * parallel, one device, bad hints), boxing insertion with the DESIGN.md byte
 * table checked by hand, verify on broken graphs, and the printers. */
#include "cu.h"
#include "test_ir_build.h"

/* pipeline: the driver's pass order on mesh `n` devices (1-D), B and S bound. */
static bool pipeline(tb *b, int n, int64_t B, int64_t S) {
  if (n > 0) b->g->mesh.n = 1, b->g->mesh.size[0] = n;
  ir_bind(b->g, B, S);
  return ir_infer_shapes(b->g, &b->d) && ir_verify(b->g, &b->d) && ir_deduce_sbp(b->g, &b->d) &&
         ir_verify(b->g, &b->d) && ir_insert_boxing(b->g, &b->d) && ir_verify(b->g, &b->d);
}

static int comm_ops(const ir_graph *g) {
  int n = 0;
  for (int i = 0; i < g->nop; i++) n += ir_ops[g->op[i].kind].kclass == KC_COMM && g->op[i].kind != IR_OP_SLICE;
  return n;
}

/* producer_kind: kind of the op making input j of op i (-1 for leaves). */
static int producer_kind(const ir_graph *g, int i, int j) {
  ir_ref p = g->t[g->op[i].in[j]].producer;
  return p < 0 ? -1 : g->op[p].kind;
}

/* after: walking back from op i through input 0, is `kind` met within 4 ops? */
static bool after(const ir_graph *g, int i, ir_opkind kind) {
  for (int k = 0; k < 4 && i >= 0; k++) {
    ir_ref p = g->t[g->op[i].in[0]].producer;
    if (p < 0) return false;
    if (g->op[p].kind == kind) return true;
    i = p;
  }
  return false;
}

static void gpt2_megatron_tp2(void) {
  tb b;
  tb_init(&b, "gpt2");
  tb_gpt2(&b, 96, 32, 64, 4, 3, true);
  CU_ASSERT_FATAL(pipeline(&b, 2, 4, 8));
  CU_ASSERT_STRING_EQUAL(tb_msg(&b), "");
  const ir_graph *g = b.g;
  for (int l = 0; l < 3; l++) {
    CU_ASSERT_EQUAL(tb_count(g, IR_OP_ALL_REDUCE, 0, l), 2);
    CU_ASSERT_EQUAL(tb_count(g, IR_OP_ALL_GATHER, 0, l), 0);
    CU_ASSERT_EQUAL(tb_count(g, IR_OP_REDUCE_SCATTER, 0, l), 0);
    CU_ASSERT_EQUAL(tb_count(g, IR_OP_ALL_TO_ALL, 0, l), 0);
  }
  CU_ASSERT_EQUAL(comm_ops(g), 6); /* nothing outside the blocks either */
  int seen = 0;
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->kind != IR_OP_ALL_REDUCE) continue;
    /* first after attention, then after the MLP's gelu; T = B*S*H*4 bytes */
    CU_ASSERT(after(g, i, seen % 2 == 0 ? IR_OP_ATTENTION : IR_OP_GELU));
    CU_ASSERT_DOUBLE_EQUAL(o->comm_bytes, 2.0 * (4 * 8 * 64 * 4) * 1 / 2, 1e-9);
    CU_ASSERT_EQUAL(o->in_sbp[0].a[0].kind, SBP_PSUM);
    CU_ASSERT_EQUAL(producer_kind(g, i, 0), IR_OP_BIAS_ADD);
    seen++;
  }
  CU_ASSERT_EQUAL(seen, 6);
  /* attention runs on heads: its input is split on the last axis */
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == IR_OP_ATTENTION) {
      CU_ASSERT_EQUAL(g->op[i].in_sbp[0].a[0].kind, SBP_S);
      CU_ASSERT_EQUAL(g->op[i].in_sbp[0].a[0].axis, 2);
    }
  CU_ASSERT_EQUAL(g->blk[0].ops_per_layer, 16 + 4); /* + 2 all-reduces, 2 bias slices */
  tb_free(&b);
}

static void gpt2_data_parallel(void) {
  tb b;
  tb_init(&b, "gpt2");
  tb_gpt2(&b, 96, 32, 64, 4, 2, false);
  ir_sbp s0 = {SBP_S, 0};
  tb_hint(&b, 0, s0); /* ids */
  tb_hint(&b, 1, s0); /* labels */
  CU_ASSERT_FATAL(pipeline(&b, 4, 8, 16));
  const ir_graph *g = b.g;
  CU_ASSERT_EQUAL(comm_ops(g), 0);
  CU_ASSERT_EQUAL(g->t[g->loss].sbp.a[0].kind, SBP_PSUM);
  for (int r = 0; r < g->nt; r++)
    if (g->t[r].kind == IR_T_PARAM) CU_ASSERT_EQUAL(g->t[r].sbp.a[0].kind, SBP_B);
  tb_free(&b);
}

static void one_device(void) {
  tb b;
  tb_init(&b, "gpt2");
  tb_gpt2(&b, 96, 32, 64, 4, 2, true);
  CU_ASSERT_FATAL(pipeline(&b, 0, 1, 1));
  CU_ASSERT_EQUAL(comm_ops(b.g), 0);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ir_print(b.g, f);
  fclose(f);
  CU_ASSERT_PTR_NULL(strstr(buf, " @ "));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "= attention(%"));
  free(buf);
  tb_free(&b);
}

static void bad_hints(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64), K(6));
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, DB, K(64));
  TB_OP(&b, IR_OP_MATMUL, NULL, x, w);
  ir_sbp s2 = {SBP_S, 2}, s1 = {SBP_S, 1};
  tb_hint(&b, w, s2);
  b.g->mesh.n = 1, b.g->mesh.size[0] = 4;
  CU_ASSERT_FALSE(ir_deduce_sbp(b.g, &b.d));
  tb_hint(&b, w, s1);
  CU_ASSERT_FALSE(ir_deduce_sbp(b.g, &b.d));
  CU_ASSERT_STRING_EQUAL(tb_msg(&b),
                         "t.sbp: error: 'w': S(2) names axis 2 but the tensor has rank 2\n"
                         "t.sbp: error: 'w': dim 1 (6) is not divisible by the 4 devices splitting it\n");
  tb_free(&b);
}

static void boxing_table(void) {
  ir_sbp B = {SBP_B, 0}, P = {SBP_PSUM, 0}, S0 = {SBP_S, 0}, S1 = {SBP_S, 1};
  /* T = 1000 bytes on n = 4: DESIGN.md's table by hand */
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(P, B, 1000, 4), 2 * 1000 * 3 / 4.0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(P, S0, 1000, 4), 1000 * 3 / 4.0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(S1, B, 1000, 4), 1000 * 3 / 4.0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(S0, S1, 1000, 4), 1000 * 3 / 16.0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(B, S0, 1000, 4), 0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(B, P, 1000, 4), 0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(ir_boxing_bytes(S0, S0, 1000, 4), 0, 1e-9);
}

/* x[8,64] @ S(0) times w[64,32] @ S(0): the cheapest plan is the row-parallel
 * signature after an all-to-all of x, 2048 bytes * (2-1)/2^2 = 512 per device. */
static void boxing_all_to_all(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, K(8), K(64));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64), K(32));
  ir_sbp s0 = {SBP_S, 0};
  tb_hint(&b, x, s0), tb_hint(&b, w, s0);
  ir_ref y = TB_OP(&b, IR_OP_MATMUL, NULL, x, w);
  CU_ASSERT_FATAL(pipeline(&b, 2, 1, 1));
  const ir_graph *g = b.g;
  CU_ASSERT_EQUAL(g->nop, 2);
  CU_ASSERT_EQUAL(g->op[0].kind, IR_OP_ALL_TO_ALL);
  CU_ASSERT_DOUBLE_EQUAL(g->op[0].comm_bytes, 512, 1e-9);
  CU_ASSERT_EQUAL(g->op[0].at.to.axis, 1);
  CU_ASSERT_EQUAL(g->op[1].in[0], g->op[0].out[0]);
  CU_ASSERT_EQUAL(g->t[y].sbp.a[0].kind, SBP_PSUM);
  tb_free(&b);
}

/* 2-D mesh: x[8,64] @ [S(0), S(1)] into layer_norm, which cannot split the
 * last axis: mesh axis 1 goes S(1) -> S(0) by all-to-all on the group's share,
 * T = 2048 / 2 (axis 0's split) = 1024 bytes, so 1024 * (2-1)/4 = 256. */
static void boxing_2d(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, K(8), K(64));
  ir_ref w = TB_T(&b, "w", IR_T_PARAM, IR_F32, K(64));
  b.g->t[x].has_hint = true;
  b.g->t[x].hint = (ir_ndsbp){2, {{SBP_S, 0}, {SBP_S, 1}}};
  ir_attrs ln = {0};
  ln.axis = -1, ln.eps = 1e-5;
  TB_OP(&b, IR_OP_RMS_NORM, &ln, x, w);
  b.g->mesh = (ir_mesh){2, {2, 2}, {"dp", "tp"}};
  CU_ASSERT_FATAL(ir_infer_shapes(b.g, &b.d) && ir_deduce_sbp(b.g, &b.d) && ir_insert_boxing(b.g, &b.d) && ir_verify(b.g, &b.d));
  const ir_graph *g = b.g;
  CU_ASSERT_EQUAL(g->nop, 2);
  CU_ASSERT_EQUAL(g->op[0].kind, IR_OP_ALL_TO_ALL);
  CU_ASSERT_EQUAL(g->op[0].at.mesh_axis, 1);
  CU_ASSERT_DOUBLE_EQUAL(g->op[0].comm_bytes, 256, 1e-9);
  char buf[64];
  CU_ASSERT_STRING_EQUAL(ir_ndsbp_str(&g->t[g->op[1].out[0]].sbp, buf, sizeof buf), "[S(0), S(0)]");
  /* the boxing op passes mesh axis 0 through: [S(0), S(1)] -> [S(0), S(0)] */
  CU_ASSERT_STRING_EQUAL(ir_ndsbp_str(&g->op[0].in_sbp[0], buf, sizeof buf), "[S(0), S(1)]");
  /* deducing again on the boxed graph changes nothing and boxes nothing */
  CU_ASSERT_FATAL(ir_deduce_sbp(b.g, &b.d) && ir_insert_boxing(b.g, &b.d));
  CU_ASSERT_EQUAL(b.g->nop, 2);
  CU_ASSERT_STRING_EQUAL(ir_ndsbp_str(&b.g->t[b.g->op[1].out[0]].sbp, buf, sizeof buf), "[S(0), S(0)]");
  tb_free(&b);
}

/* ir_boxing_plan orders the steps so every intermediate layout divides. */
static void boxing_plan_order(void) {
  tb b;
  tb_init(&b, "m");
  ir_ref x = TB_T(&b, "x", IR_T_INPUT, IR_F32, K(4), K(64));
  ir_ref y = TB_T(&b, "y", IR_T_INPUT, IR_F32, K(4), K(2));
  b.g->mesh = (ir_mesh){2, {4, 2}, {NULL, NULL}};
  ir_boxstep st[IR_MAXBOXSTEPS];
  /* [S(1), S(0)] -> [S(0), B]: gather mesh axis 1 first (T = 1024/4 bytes:
   * 128 moved), then all-to-all on axis 0 (T = 1024: 1024*3/16 = 192);
   * the other order would pass through [S(0), S(0)], 8 shards of 4 rows */
  ir_ndsbp f = {2, {{SBP_S, 1}, {SBP_S, 0}}}, t = {2, {{SBP_S, 0}, {SBP_B, 0}}};
  CU_ASSERT_EQUAL_FATAL(ir_boxing_plan(b.g, x, &f, &t, st), 2);
  CU_ASSERT(st[0].kind == IR_OP_ALL_GATHER && st[0].axis == 1);
  CU_ASSERT_DOUBLE_EQUAL(st[0].bytes, 128, 1e-9);
  CU_ASSERT(st[1].kind == IR_OP_ALL_TO_ALL && st[1].axis == 0);
  CU_ASSERT_DOUBLE_EQUAL(st[1].bytes, 192, 1e-9);
  /* y[4,2] on a 2x2 mesh: [S(0), S(1)] -> [S(1), S(0)] directly would pass
   * through [S(1), S(1)] (2 columns in 4 shards): gather, all-to-all, slice */
  b.g->mesh = (ir_mesh){2, {2, 2}, {NULL, NULL}};
  ir_ndsbp f2 = {2, {{SBP_S, 0}, {SBP_S, 1}}}, t2 = {2, {{SBP_S, 1}, {SBP_S, 0}}};
  CU_ASSERT_EQUAL_FATAL(ir_boxing_plan(b.g, y, &f2, &t2, st), 3);
  CU_ASSERT(st[0].kind == IR_OP_ALL_GATHER && st[0].axis == 0);
  CU_ASSERT(st[1].kind == IR_OP_ALL_TO_ALL && st[1].axis == 1);
  CU_ASSERT(st[2].kind == IR_OP_SLICE && st[2].axis == 0 && st[2].to.axis == 1);
  /* P(sum) -> P(max): all-reduce then slice */
  b.g->mesh = (ir_mesh){1, {2}, {NULL}};
  ir_ndsbp f3 = {1, {{SBP_PSUM, 0}}}, t3 = {1, {{SBP_PMAX, 0}}};
  CU_ASSERT_EQUAL(ir_boxing_plan(b.g, x, &f3, &t3, st), 2);
  CU_ASSERT(st[0].kind == IR_OP_ALL_REDUCE && st[1].kind == IR_OP_SLICE);
  tb_free(&b);
}

static void verify_catches(void) {
  tb b;
  tb_init(&b, "gpt2");
  tb_gpt2(&b, 96, 32, 64, 4, 2, true);
  CU_ASSERT_FATAL(ir_infer_shapes(b.g, &b.d) && ir_verify(b.g, &b.d));
  ir_graph *g = b.g;
  /* a stale shape */
  ir_ref r = g->op[3].out[0];
  g->t[r].shape[2] = K(65);
  CU_ASSERT_FALSE(ir_verify(g, &b.d));
  g->t[r].shape[2] = K(64);
  /* ops out of order */
  ir_op tmp = g->op[4];
  g->op[4] = g->op[5], g->op[5] = tmp;
  CU_ASSERT_FALSE(ir_verify(g, &b.d)); /* producers now disagree */
  g->t[g->op[4].out[0]].producer = 4, g->t[g->op[5].out[0]].producer = 5;
  CU_ASSERT_FALSE(ir_verify(g, &b.d)); /* op 4 reads op 5's output */
  g->op[5] = g->op[4], g->op[4] = tmp;
  g->t[g->op[4].out[0]].producer = 4, g->t[g->op[5].out[0]].producer = 5;
  /* layers that differ */
  int l1 = -1;
  for (int i = 0; i < g->nop && l1 < 0; i++)
    if (g->op[i].block == 0 && g->op[i].layer == 1 && g->op[i].kind == IR_OP_GELU) l1 = i;
  g->op[l1].kind = IR_OP_SILU;
  CU_ASSERT_FALSE(ir_verify(g, &b.d));
  g->op[l1].kind = IR_OP_GELU;
  CU_ASSERT_TRUE(ir_verify(g, &b.d));
  /* SBP wanted but no boxing */
  g->mesh.n = 1, g->mesh.size[0] = 2;
  CU_ASSERT_FATAL(ir_deduce_sbp(g, &b.d));
  CU_ASSERT_TRUE(ir_verify(g, &b.d));
  g->boxed = true;
  CU_ASSERT_FALSE(ir_verify(g, &b.d));
  const char *m = tb_msg(&b);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "has a stale shape"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "says producer"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "before op"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "differs from layer 0's (gelu)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "(missing boxing)"));
  tb_free(&b);
}

static char *print_str(const ir_graph *g, int dot) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (dot) ir_print_dot(g, dot - 1, f);
  else ir_print(g, f);
  fclose(f);
  return buf;
}

static void printers(void) {
  tb b;
  tb_init(&b, "gpt2");
  tb_gpt2(&b, 96, 32, 64, 4, 2, true);
  CU_ASSERT_FATAL(pipeline(&b, 2, 1, 1));
  char *p1 = print_str(b.g, 0), *p2 = print_str(b.g, 0), *d = print_str(b.g, 1);
  CU_ASSERT_STRING_EQUAL(p1, p2);
  CU_ASSERT_PTR_NOT_NULL(strstr(p1, "param h.0.attn.c_attn.weight: f32[64,192] @ S(1) hint\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(p1, "@ P(sum) = matmul(%23, h.0.attn.c_proj.weight)  # h.0\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(p1, "@ B = all_reduce(%25) P(sum)->B mesh_axis=0 bytes=256  # h.0\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(d, "digraph"));
  CU_ASSERT_PTR_NOT_NULL(strstr(d, "all_reduce\\nf32[B,S,64]\\n256 bytes\", style=filled, fillcolor=red"));
  CU_ASSERT_PTR_NULL(strstr(d, "h.1.")); /* layer 0 only */
  free(p1), free(p2), free(d);
  tb_free(&b);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("ir_passes", NULL, NULL);
  CU_ADD(s, gpt2_megatron_tp2);
  CU_ADD(s, gpt2_data_parallel);
  CU_ADD(s, one_device);
  CU_ADD(s, bad_hints);
  CU_ADD(s, boxing_table);
  CU_ADD(s, boxing_all_to_all);
  CU_ADD(s, boxing_2d);
  CU_ADD(s, boxing_plan_order);
  CU_ADD(s, verify_catches);
  CU_ADD(s, printers);
}
