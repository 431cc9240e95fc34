/* test_ir_random.c — property test of the IR passes on random graphs.
 *
 * A fixed-seed generator builds a few hundred small graphs from random
 * forward ops over random inputs (symbolic and constant dims, random valid
 * hints), keeping the ops that pass shape inference. On random 1-D and 2-D
 * meshes, SBP deduction must succeed (all-B always fits), boxing must leave a
 * graph the verifier accepts, every op input must then have exactly the SBP
 * its signature wants, and running deduction + boxing again must add nothing.
 * Under the sanitizer build this doubles as a crash/UB check of the registry
 * rules on odd shapes. */
#include "cu.h"
#include "test_ir_build.h"

static uint64_t seed;
static int rnd(int n) {
  seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return (int)((seed >> 33) % (uint64_t)n);
}

static ir_dim rdim(void) {
  static const int64_t c[] = {2, 4, 6, 8, 12, 16};
  int k = rnd(8);
  return k == 6 ? DB : k == 7 ? DS : K(c[k]);
}

static ir_ref rinput(tb *b, int id) {
  ir_dim d[4];
  int r = 1 + rnd(4);
  for (int i = 0; i < r; i++) d[i] = rdim();
  char nm[16];
  snprintf(nm, sizeof nm, "x%d", id);
  return tb_tensor(b, nm, rnd(3) ? IR_T_INPUT : IR_T_PARAM, rnd(6) ? IR_F32 : IR_I32, r, d);
}

/* rhint: a random 1-D or 2-D hint that names a real axis. */
static void rhint(tb *b, ir_ref r, int meshn) {
  ir_tensor *t = &b->g->t[r];
  if (!meshn || !t->rank || rnd(3)) return;
  t->has_hint = true;
  t->hint.n = (uint8_t)meshn;
  for (int a = 0; a < meshn; a++) {
    int k = rnd(3);
    t->hint.a[a] = k == 0 ? (ir_sbp){SBP_S, (int8_t)rnd(t->rank)} : (ir_sbp){k == 1 ? SBP_B : SBP_PSUM, 0};
  }
}

static void rop(tb *b, ir_ref *pool, int *np) {
  static const ir_opkind kinds[] = {IR_OP_ADD, IR_OP_MUL, IR_OP_MATMUL, IR_OP_BIAS_ADD, IR_OP_LAYER_NORM,
                                    IR_OP_RMS_NORM, IR_OP_GELU, IR_OP_SOFTMAX, IR_OP_ATTENTION, IR_OP_EMBEDDING,
                                    IR_OP_CROSS_ENTROPY, IR_OP_TRANSPOSE, IR_OP_DROPOUT, IR_OP_SCALE, IR_OP_SWIGLU,
                                    IR_OP_SUM_ROWS, IR_OP_ROTARY, IR_OP_CONCAT, IR_OP_TANH, IR_OP_SELECT};
  ir_opkind k = kinds[rnd((int)(sizeof kinds / sizeof kinds[0]))];
  ir_attrs at;
  memset(&at, 0, sizeof at);
  at.axis = -1, at.heads = 1 + rnd(4), at.trans_b = rnd(4) == 0;
  if (k == IR_OP_SELECT) at.axis = rnd(3) - 1; /* index 0: valid on any axis, split ones need boxing */
  int nin = ir_ops[k].min_in + rnd(ir_ops[k].max_in - ir_ops[k].min_in + 1);
  ir_ref in[IR_MAXIN];
  for (int i = 0; i < nin; i++) in[i] = pool[rnd(*np)];
  ir_ref r = tb_opv(b, k, &at, nin, in, 1);
  if (r != IR_NONE && *np < 64) pool[(*np)++] = r;
}

/* consistent: after boxing every op input has the SBP its signature wants. */
static bool consistent(const ir_graph *g) {
  for (int i = 0; i < g->nop; i++)
    for (int j = 0; j < g->op[i].nin; j++)
      if (!ir_ndsbp_eq(&g->op[i].in_sbp[j], &g->t[g->op[i].in[j]].sbp)) return false;
  return true;
}

static void random_graphs(void) {
  int graphs = 0, ops = 0, boxed = 0;
  for (int it = 0; it < 300; it++) {
    seed = 0x5bd1e995u + (uint64_t)it * 7919;
    tb b;
    tb_init(&b, "r");
    int meshn = rnd(3);
    b.g->mesh.n = meshn;
    for (int a = 0; a < meshn; a++) b.g->mesh.size[a] = 2 + rnd(3);
    ir_ref pool[64];
    int np = 0;
    for (int i = 0; i < 4; i++) pool[np++] = rinput(&b, i);
    for (int i = 0; i < 40; i++) rop(&b, pool, &np);
    for (int i = 0; i < b.g->nt; i++)
      if (b.g->t[i].producer < 0) rhint(&b, i, meshn);
    ir_bind(b.g, 4, 8);
    fflush(b.f);
    size_t mark = b.len; /* the build's shape errors come before this */
    b.d.errors = 0;
    bool hints_ok = ir_deduce_sbp(b.g, &b.d); /* a random hint may not divide: then an error, no crash */
    if (hints_ok) {
      CU_ASSERT(ir_insert_boxing(b.g, &b.d));
      CU_ASSERT(ir_verify(b.g, &b.d));
      CU_ASSERT(consistent(b.g));
      int n = b.g->nop;
      CU_ASSERT(ir_deduce_sbp(b.g, &b.d) && ir_insert_boxing(b.g, &b.d));
      CU_ASSERT_EQUAL(b.g->nop, n);
      CU_ASSERT(consistent(b.g));
      graphs++, ops += b.g->nop;
      for (int i = 0; i < b.g->nop; i++) boxed += ir_ops[b.g->op[i].kind].kclass == KC_COMM;
      char *buf = NULL;
      size_t len = 0;
      FILE *f = open_memstream(&buf, &len);
      ir_print(b.g, f);
      ir_print_dot(b.g, -1, f);
      fclose(f);
      CU_ASSERT(len > 0);
      free(buf);
    } else {
      /* the only legitimate failure: a random hint that does not divide */
      CU_ASSERT_PTR_NOT_NULL(strstr(tb_msg(&b) + mark, "devices splitting it"));
      CU_ASSERT_PTR_NULL(strstr(tb_msg(&b) + mark, "internal"));
    }
    tb_free(&b);
  }
  CU_ASSERT(graphs > 150);
  CU_ASSERT(boxed > 50); /* the generator does exercise boxing */
  printf("\n  %d graphs, %d ops, %d boxing ops\n", graphs, ops, boxed);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("ir_random", NULL, NULL);
  CU_ADD(s, random_graphs);
}
