/* test_ir_training.c — SBP deduction and boxing on training graphs (forward +
 * backward + AdamW from ir/autodiff.c): Megatron tensor parallelism gives the
 * all-reduce of every column-parallel input's gradient in the backward pass
 * (two per layer, as in Megatron-LM's f/g operators), and data parallelism
 * gives exactly one gradient all-reduce per parameter and nothing else. */
#include "cu.h"
#include "test_ir_build.h"
#include "ir/autodiff.h"

/* train: GPT-2 (2 layers) -> training graph -> SBP -> boxing on mesh 2. */
static bool train(tb *b, bool megatron, bool dp) {
  tb_gpt2(b, 96, 32, 64, 4, 2, megatron);
  if (dp) {
    ir_sbp s0 = {SBP_S, 0};
    tb_hint(b, 0, s0); /* ids */
    tb_hint(b, 1, s0); /* labels */
  }
  b->g->mesh.n = 1, b->g->mesh.size[0] = 2;
  ir_bind(b->g, 2, 4);
  return ir_infer_shapes(b->g, &b->d) && ir_autodiff(b->g, NULL, &b->d) && ir_infer_shapes(b->g, &b->d) &&
         ir_deduce_sbp(b->g, &b->d) && ir_insert_boxing(b->g, &b->d) && ir_verify(b->g, &b->d);
}

static int count(const ir_graph *g, ir_opkind k, int backward) {
  int n = 0;
  for (int i = 0; i < g->nop; i++) n += g->op[i].kind == k && (backward < 0 || g->op[i].backward == backward);
  return n;
}

static int collectives(const ir_graph *g) {
  return count(g, IR_OP_ALL_REDUCE, -1) + count(g, IR_OP_ALL_GATHER, -1) + count(g, IR_OP_REDUCE_SCATTER, -1) +
         count(g, IR_OP_ALL_TO_ALL, -1);
}

/* comm ops are made by boxing, not autodiff: tell forward from backward by
 * what they feed. */
static bool feeds_backward(const ir_graph *g, int i) {
  ir_ref t = g->op[i].out[0];
  for (int k = 0; k < g->nop; k++)
    for (int j = 0; j < g->op[k].nin; j++)
      if (g->op[k].in[j] == t) return g->op[k].backward;
  return false;
}

static void megatron_training(void) {
  tb b;
  tb_init(&b, "gpt2");
  CU_ASSERT_FATAL(train(&b, true, false));
  const ir_graph *g = b.g;
  CU_ASSERT_EQUAL(collectives(g), 8);
  int fwd = 0, bwd = 0;
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == IR_OP_ALL_REDUCE) feeds_backward(g, i) ? bwd++ : fwd++;
  CU_ASSERT_EQUAL(fwd, 4);
  CU_ASSERT_EQUAL(bwd, 4);
  tb_free(&b);
}

static void data_parallel_training(void) {
  tb b;
  tb_init(&b, "gpt2");
  CU_ASSERT_FATAL(train(&b, false, true));
  const ir_graph *g = b.g;
  int params = 0;
  for (int r = 0; r < g->nt; r++) params += g->t[r].kind == IR_T_PARAM;
  CU_ASSERT_EQUAL(count(g, IR_OP_ALL_REDUCE, -1), params);
  CU_ASSERT_EQUAL(collectives(g), params);
  /* each all-reduce carries one parameter's gradient: 2T(n-1)/n = T bytes */
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == IR_OP_ALL_REDUCE)
      CU_ASSERT_DOUBLE_EQUAL(g->op[i].comm_bytes, ir_tensor_bytes(g, g->op[i].in[0]), 1e-9);
  tb_free(&b);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("ir_training", NULL, NULL);
  CU_ADD(s, megatron_training);
  CU_ADD(s, data_parallel_training);
}
