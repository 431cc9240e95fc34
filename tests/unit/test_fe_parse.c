/* test_fe_parse.c — the front end: lexer, parser and lowering.
 *
 * Parses the GPT-2 example and small buffers with fe_parse, and checks the
 * graph it builds: the exact parameter count, block expansion and naming,
 * dims arithmetic with symbolic B and S, the op chosen for infix operators,
 * keyword attributes, and that errors carry the right line:col (diagnostics
 * are captured in a memory stream). */
#include "cu.h"
#include "frontend/frontend.h"
#include <stdlib.h>
#include <string.h>

/* Parse src; diagnostics go to *msgs (caller frees). */
static bool parse(const char *src, ir_program *p, char **msgs, int *nerr) {
  size_t n;
  FILE *f = open_memstream(msgs, &n);
  diag d;
  diag_init(&d, "t.sbp", src, strlen(src));
  d.out = f;
  bool ok = fe_parse("t.sbp", src, strlen(src), p, &d);
  fclose(f);
  if (nerr) *nerr = d.errors;
  return ok;
}

static ir_ref find(const ir_graph *g, const char *name) {
  for (int i = 0; i < g->nt; i++)
    if (g->t[i].name && !strcmp(g->t[i].name, name)) return i;
  return IR_NONE;
}

static void test_gpt2_count(void) {
  ir_program p;
  CU_ASSERT_FATAL(fe_load(cu_src("examples/gpt2.sbp"), &p));
  CU_ASSERT_FATAL(p.g != NULL);
  CU_ASSERT_EQUAL(ir_param_count(p.g), INT64_C(124439808));
  CU_ASSERT_STRING_EQUAL(p.g->name, "gpt2");
  CU_ASSERT(p.g->loss >= 0);
  CU_ASSERT_EQUAL(p.g->t[p.g->loss].rank, 0);
  CU_ASSERT_EQUAL(p.train.global_batch, 8);
  CU_ASSERT_EQUAL(p.train.seq, 1024);
  CU_ASSERT_EQUAL(p.train.precision, IR_BF16);
  fe_program_free(&p);
  CU_ASSERT_PTR_NULL(p.g);
}

static void test_block_naming(void) {
  ir_program p;
  CU_ASSERT_FATAL(fe_load(cu_src("examples/gpt2.sbp"), &p));
  const ir_graph *g = p.g;
  CU_ASSERT_EQUAL_FATAL(g->nblk, 1);
  CU_ASSERT_STRING_EQUAL(g->blk[0].name, "h");
  CU_ASSERT_EQUAL(g->blk[0].count, 12);
  char name[64];
  for (int l = 0; l < 12; l++) {
    snprintf(name, sizeof name, "h.%d.attn.c_attn.weight", l);
    ir_ref r = find(g, name);
    CU_ASSERT_FATAL(r >= 0);
    CU_ASSERT_EQUAL(g->t[r].kind, IR_T_PARAM);
    CU_ASSERT_EQUAL(g->t[r].block, 0);
    CU_ASSERT_EQUAL(g->t[r].layer, l);
    CU_ASSERT_EQUAL(g->t[r].rank, 2);
    CU_ASSERT_EQUAL(g->t[r].shape[1].c, 2304);
  }
  CU_ASSERT(find(g, "h.12.ln_1.weight") < 0);
  CU_ASSERT(find(g, "ln_f.weight") >= 0);
  CU_ASSERT_EQUAL(g->t[find(g, "ln_f.weight")].block, -1);
  /* every layer has layer 0's structure: same op kinds at the same lidx */
  int per = g->blk[0].ops_per_layer, seen = 0;
  CU_ASSERT(per > 0);
  int kind0[256];
  CU_ASSERT_FATAL(per <= 256);
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->block != 0) continue;
    seen++;
    CU_ASSERT(o->lidx >= 0 && o->lidx < per);
    if (o->layer == 0) kind0[o->lidx] = o->kind;
    else CU_ASSERT_EQUAL(o->kind, kind0[o->lidx]);
  }
  CU_ASSERT_EQUAL(seen, per * 12);
  fe_program_free(&p);
}

static void test_dims(void) {
  const char *src =
      "model d {\n"
      "  dims { H = 2*3*4, A = H/6, F = (H + 8) * 2 - 16, K = -(-F)/A }\n"
      "  input x : f32[B, S, H]\n"
      "  param w : [H, F]\n"
      "  y = reshape(matmul(x, w), [B*S, 2*F/K/2, K])\n"
      "  p = positions(S)\n"
      "}\n";
  ir_program p;
  char *msgs = NULL;
  bool ok = parse(src, &p, &msgs, NULL);
  CU_ASSERT(ok);
  if (!ok) printf("%s", msgs);
  free(msgs);
  if (!ok) return;
  const ir_graph *g = p.g;
  CU_ASSERT_EQUAL_FATAL(g->ndim, 4);
  CU_ASSERT_EQUAL(g->dim[0].value, 24);
  CU_ASSERT_EQUAL(g->dim[1].value, 4);
  CU_ASSERT_EQUAL(g->dim[2].value, 48);
  CU_ASSERT_EQUAL(g->dim[3].value, 12);
  ir_ref x = find(g, "x");
  CU_ASSERT_FATAL(x >= 0);
  CU_ASSERT(ir_dim_eq(g->t[x].shape[0], (ir_dim){1, 1, 0}));
  CU_ASSERT(ir_dim_eq(g->t[x].shape[1], (ir_dim){1, 0, 1}));
  const ir_op *rs = NULL, *pos = NULL;
  for (int i = 0; i < g->nop; i++) {
    if (g->op[i].kind == IR_OP_RESHAPE) rs = &g->op[i];
    if (g->op[i].kind == IR_OP_POSITIONS) pos = &g->op[i];
  }
  CU_ASSERT_FATAL(rs && pos);
  CU_ASSERT_EQUAL(rs->at.rank, 3);
  CU_ASSERT(ir_dim_eq(rs->at.shape[0], (ir_dim){1, 1, 1}));
  CU_ASSERT(ir_dim_eq(rs->at.shape[1], ir_const(4)));
  CU_ASSERT(ir_dim_eq(rs->at.shape[2], ir_const(12)));
  CU_ASSERT_EQUAL(pos->at.rank, 1);
  CU_ASSERT(ir_dim_eq(pos->at.shape[0], (ir_dim){1, 0, 1}));
  fe_program_free(&p);
}

static const ir_op *op_of(const ir_graph *g, const char *value_name_unused, int kind) {
  (void)value_name_unused;
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == kind) return &g->op[i];
  return NULL;
}

static void test_infix_and_attrs(void) {
  const char *src =
      "model m {\n"
      "  dims { H = 24 }\n"
      "  input x : f32[B, S, H]\n"
      "  param b : [H]\n"
      "  param w : [H, 3*H]\n"
      "  y = b + x\n"
      "  z = x + y\n"
      "  s = 0.5 * z\n"
      "  d = z - s\n"
      "  q = attention(matmul(d, w), heads=4, causal=true)\n"
      "  g = gelu(q, approximate=\"tanh\")\n"
      "  e = gelu(q, approximate=\"none\")\n"
      "  n = layer_norm(g, b, b)\n"
      "  t = matmul(n, w, trans_b=false)\n"
      "}\n";
  ir_program p;
  char *msgs = NULL;
  bool ok = parse(src, &p, &msgs, NULL);
  CU_ASSERT(ok);
  if (!ok) printf("%s", msgs);
  free(msgs);
  if (!ok) return;
  const ir_graph *g = p.g;
  const ir_op *ba = op_of(g, "y", IR_OP_BIAS_ADD);
  CU_ASSERT_FATAL(ba != NULL);
  CU_ASSERT_EQUAL(ba->in[0], find(g, "x")); /* swapped: the vector goes second */
  CU_ASSERT_EQUAL(ba->in[1], find(g, "b"));
  CU_ASSERT_PTR_NOT_NULL(op_of(g, "z", IR_OP_ADD));
  const ir_op *sc = op_of(g, "s", IR_OP_SCALE);
  CU_ASSERT_FATAL(sc != NULL);
  CU_ASSERT_DOUBLE_EQUAL(sc->at.scale, 0.5, 1e-12);
  CU_ASSERT_PTR_NOT_NULL(op_of(g, "d", IR_OP_SUB));
  const ir_op *at = op_of(g, "q", IR_OP_ATTENTION);
  CU_ASSERT_FATAL(at != NULL);
  CU_ASSERT_EQUAL(at->at.heads, 4);
  CU_ASSERT_EQUAL(at->at.kv_heads, 4);
  CU_ASSERT(at->at.causal);
  int gelus = 0;
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == IR_OP_GELU) CU_ASSERT_EQUAL(g->op[i].at.tanh, gelus++ == 0);
  CU_ASSERT_EQUAL(gelus, 2);
  const ir_op *ln = op_of(g, "n", IR_OP_LAYER_NORM);
  CU_ASSERT_FATAL(ln != NULL);
  CU_ASSERT_DOUBLE_EQUAL(ln->at.eps, 1e-5, 1e-12);
  CU_ASSERT_EQUAL(g->loss, IR_NONE);
  fe_program_free(&p);
}

/* Each bad source gives exactly this first error (file:line:col: message). */
static void expect_error(const char *src, const char *want) {
  ir_program p;
  char *msgs = NULL;
  int nerr = 0;
  bool ok = parse(src, &p, &msgs, &nerr);
  CU_ASSERT(!ok);
  CU_ASSERT(nerr > 0);
  CU_ASSERT_PTR_NULL(p.g);
  CU_ASSERT_PTR_NULL(p.cluster);
  bool found = msgs && strstr(msgs, want) != NULL;
  CU_ASSERT(found);
  if (!found) printf("\nwanted: %s\ngot: %s\n", want, msgs ? msgs : "(nothing)");
  free(msgs);
}

static void test_error_locations(void) {
  expect_error("model m {\n  input x : f32[B, 8]\n  y = gelu(z)\n}\n", "t.sbp:3:12: error: undefined name 'z'");
  expect_error("model m {\n  param w : [8, 8] @ S(2)\n}\n", "t.sbp:2:22: error: S(2) on a rank-2 tensor");
  expect_error("model m {\n  input x : f32[B, 8]\n  y = atention(x)\n}\n",
               "t.sbp:3:7: error: unknown op 'atention' (did you mean 'attention'?)");
  expect_error("model m {\n  input x : f32[B, 8]\n  y = gelu(x, heads=2)\n}\n",
               "t.sbp:3:15: error: unknown keyword 'heads'");
  expect_error("model m {\n  dims { H = 99999999999999999999 }\n}\n", "t.sbp:2:14: error: integer literal is too large");
  expect_error("model m {\n  param w : [8]\n  param w : [8]\n}\n", "t.sbp:3:9: error: 'w' is already defined (line 2)");
  expect_error("model m {\n  input x : f32[B, 8]\n  y = x + q\n  q = x\n}\n",
               "t.sbp:3:11: error: 'q' is used before its definition (line 4)");
  expect_error("model m {\n  param w : [8\n", "t.sbp:3:1: error: syntax error, unexpected end of file");
  expect_error("model m {\n  input x : f32[B, 768]\n  param w : [3072, 768]\n  y = matmul(x, w)\n}\n",
               "t.sbp:4:7: error: matmul: inner dims differ");
  expect_error("cluster c {\n  device a { peak.bf16 = 1 TFLOPS, memory = 8 GB/s, bandwidth = 1 GB/s }\n"
               "  node n { 1 x a }\n  nodes { 1 x n }\n}\n",
               "t.sbp:2:45: error: memory: 'GB/s' is not a size unit");
  expect_error("model m {\n  block h[1000001] { param w : [8] }\n}\n", "t.sbp:2:11: error: block count is 1000001");
  expect_error("\x01\x02model", "t.sbp:1:1: error: unexpected byte 0x01");
}

static void test_multiple_errors(void) {
  const char *src = "model m {\n  y = gelu(a)\n  z = gelu(b)\n  w = frob(y)\n}\n";
  ir_program p;
  char *msgs = NULL;
  int nerr = 0;
  CU_ASSERT(!parse(src, &p, &msgs, &nerr));
  CU_ASSERT_EQUAL(nerr, 3);
  CU_ASSERT_PTR_NOT_NULL(strstr(msgs, "t.sbp:2:12:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(msgs, "t.sbp:3:12:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(msgs, "t.sbp:4:7: error: unknown op 'frob'"));
  free(msgs);
}

static void test_sbp_hints(void) {
  const char *src = "model m {\n  param a : [8, 8] @ S(1)\n  param b : [8] @ P(sum)\n"
                    "  param c : [8, 8] @ [S(0), B]\n  param d : [8] @ B\n  param e : [8]\n}\n";
  ir_program p;
  char *msgs = NULL;
  bool ok = parse(src, &p, &msgs, NULL);
  free(msgs);
  CU_ASSERT_FATAL(ok);
  const ir_graph *g = p.g;
  const ir_tensor *a = &g->t[find(g, "a")], *b = &g->t[find(g, "b")], *c = &g->t[find(g, "c")];
  CU_ASSERT(a->has_hint && a->hint.n == 1 && a->hint.a[0].kind == SBP_S && a->hint.a[0].axis == 1);
  CU_ASSERT(b->has_hint && b->hint.n == 1 && b->hint.a[0].kind == SBP_PSUM);
  CU_ASSERT(c->has_hint && c->hint.n == 2 && c->hint.a[0].kind == SBP_S && c->hint.a[1].kind == SBP_B);
  CU_ASSERT(g->t[find(g, "d")].has_hint);
  CU_ASSERT(!g->t[find(g, "e")].has_hint);
  fe_program_free(&p);
}

static void test_train_and_empty(void) {
  const char *src = "train { global_batch = 2*256, seq = 4096 micro_batch = 4, precision = f32,\n"
                    "  optimizer = sgd, lengths = \"l.txt\" }\n";
  ir_program p;
  char *msgs = NULL;
  CU_ASSERT_FATAL(parse(src, &p, &msgs, NULL));
  free(msgs);
  CU_ASSERT_PTR_NULL(p.g);
  CU_ASSERT(p.train.set);
  CU_ASSERT_EQUAL(p.train.global_batch, 512);
  CU_ASSERT_EQUAL(p.train.seq, 4096);
  CU_ASSERT_EQUAL(p.train.micro_batch, 4);
  CU_ASSERT_EQUAL(p.train.precision, IR_F32);
  CU_ASSERT_EQUAL(p.train.optimizer, IR_OPT_SGD);
  CU_ASSERT_STRING_EQUAL(p.train.lengths, "l.txt");
  fe_program_free(&p); /* must free the private arena (ASan checks) */
  CU_ASSERT_FATAL(parse("# nothing here\n", &p, &msgs, NULL));
  free(msgs);
  CU_ASSERT_PTR_NULL(p.g);
  CU_ASSERT(!p.train.set);
  fe_program_free(&p);
  fe_program_free(NULL);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("fe_parse", NULL, NULL);
  CU_ADD(s, test_gpt2_count);
  CU_ADD(s, test_block_naming);
  CU_ADD(s, test_dims);
  CU_ADD(s, test_infix_and_attrs);
  CU_ADD(s, test_error_locations);
  CU_ADD(s, test_multiple_errors);
  CU_ADD(s, test_sbp_hints);
  CU_ADD(s, test_train_and_empty);
}
