/* test_rt_kern.c — the CPU reference kernels' vectorized row loops
 * (runtime/kernels_cpu.c) against double-precision formulas, at sizes that
 * are not multiples of their lanes (16) or row groups (32): cross_entropy
 * and its gradient, layer_norm and its gradient (dx, dw, db), sum_rows (with
 * a tail shorter than a row). Dropout keeps about 1 - p of its elements,
 * each as x times the float 1/(1-p), and its gradient (at.n naming the
 * forward output) drops exactly the forward's elements. */
#include "cu.h"
#include "runtime/rt_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ir_ref tensor(ir_graph *g, int rank, int64_t a, int64_t b, ir_dtype dt) {
  ir_tensor t = ir_tensor_init("t", IR_T_ACT, dt);
  t.rank = rank;
  t.shape[0] = ir_const(a);
  if (rank > 1) t.shape[1] = ir_const(b);
  return ir_tensor_add(g, &t);
}

static ir_op op(ir_opkind kind, int nin, const ir_ref *in, int nout, const ir_ref *out) {
  ir_op o = ir_op_init(kind);
  o.nin = (uint8_t)nin, o.nout = (uint8_t)nout;
  memcpy(o.in, in, sizeof(ir_ref) * (size_t)nin);
  memcpy(o.out, out, sizeof(ir_ref) * (size_t)nout);
  return o;
}

static float *rnd(int64_t n, float scale, unsigned seed) {
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = scale * (float)(rand_r(&seed) % 2001 - 1000) / 1000.0f;
  return x;
}

static const rt_kctx kc = {.step = 1, .seed = 5, .tp = 1, .ce_ratio = 1.0, .sp = 1};

enum { R = 70, V = 1003, N = 100 };

static void test_cross_entropy(void) {
  ir_graph *g = ir_graph_new("ce");
  ir_ref x = tensor(g, 2, R, V, IR_F32), lab = tensor(g, 1, R, 0, IR_I32), loss = tensor(g, 1, 1, 0, IR_F32);
  ir_ref dx = tensor(g, 2, R, V, IR_F32);
  float *X = rnd(R * V, 8.0f, 1), *D = malloc(sizeof(float) * R * V), L;
  int32_t lb[R];
  for (int r = 0; r < R; r++) lb[r] = (r * 37) % V;
  ir_op f = op(IR_OP_CROSS_ENTROPY, 2, (ir_ref[]){x, lab}, 1, &loss), b = op(IR_OP_CROSS_ENTROPY_GRAD, 2, (ir_ref[]){x, lab}, 1, &dx);
  CU_ASSERT_FATAL(rt_kernel(g, &f, (void *[]){X, lb}, (void *[]){&L}, &kc));
  CU_ASSERT_FATAL(rt_kernel(g, &b, (void *[]){X, lb}, (void *[]){D}, &kc));
  double want = 0, gerr = 0;
  for (int r = 0; r < R; r++) {
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, X[r * V + j]);
    for (int j = 0; j < V; j++) s += exp(X[r * V + j] - mx);
    want += (log(s) + mx - X[r * V + lb[r]]) / R;
    for (int j = 0; j < V; j++)
      gerr = fmax(gerr, fabs(D[r * V + j] - (exp(X[r * V + j] - mx) / s - (j == lb[r])) / R));
  }
  CU_ASSERT(fabs(L - want) < 1e-6 * want);
  CU_ASSERT(gerr < 1e-8);
  free(X), free(D);
  ir_graph_free(g);
}

static void test_layer_norm(void) {
  ir_graph *g = ir_graph_new("ln");
  ir_ref x = tensor(g, 2, R, N, IR_F32), w = tensor(g, 1, N, 0, IR_F32), bb = tensor(g, 1, N, 0, IR_F32);
  ir_ref y = tensor(g, 2, R, N, IR_F32), dy = tensor(g, 2, R, N, IR_F32), dx = tensor(g, 2, R, N, IR_F32);
  ir_ref dw = tensor(g, 1, N, 0, IR_F32), db = tensor(g, 1, N, 0, IR_F32);
  float *X = rnd(R * N, 3.0f, 2), *W = rnd(N, 1.0f, 3), *B = rnd(N, 1.0f, 4), *G = rnd(R * N, 1.0f, 5);
  float *Y = malloc(sizeof(float) * R * N), *DX = malloc(sizeof(float) * R * N), DW[N], DB[N];
  for (int i = 0; i < R * N; i++) X[i] += 2.0f; /* a mean away from 0 */
  ir_op f = op(IR_OP_LAYER_NORM, 3, (ir_ref[]){x, w, bb}, 1, &y);
  ir_op b = op(IR_OP_LAYER_NORM_GRAD, 4, (ir_ref[]){x, w, bb, dy}, 3, (ir_ref[]){dx, dw, db});
  f.at.eps = b.at.eps = 1e-5;
  CU_ASSERT_FATAL(rt_kernel(g, &f, (void *[]){X, W, B}, (void *[]){Y}, &kc));
  CU_ASSERT_FATAL(rt_kernel(g, &b, (void *[]){X, W, B, G}, (void *[]){DX, DW, DB}, &kc));
  double ey = 0, edx = 0, edw = 0, edb = 0, aw[N] = {0}, ab[N] = {0};
  for (int r = 0; r < R; r++) {
    const float *xr = X + r * N, *gr = G + r * N;
    double mu = 0, var = 0, s1 = 0, s2 = 0, xh[N];
    for (int j = 0; j < N; j++) mu += xr[j] / (double)N;
    for (int j = 0; j < N; j++) var += (xr[j] - mu) * (xr[j] - mu) / N;
    double rs = 1.0 / sqrt(var + 1e-5);
    for (int j = 0; j < N; j++) {
      xh[j] = (xr[j] - mu) * rs;
      ey = fmax(ey, fabs(Y[r * N + j] - (xh[j] * W[j] + B[j])));
      s1 += gr[j] * (double)W[j] / N, s2 += gr[j] * (double)W[j] * xh[j] / N;
      aw[j] += gr[j] * xh[j], ab[j] += gr[j];
    }
    for (int j = 0; j < N; j++) edx = fmax(edx, fabs(DX[r * N + j] - rs * (gr[j] * (double)W[j] - s1 - xh[j] * s2)));
  }
  for (int j = 0; j < N; j++) edw = fmax(edw, fabs(DW[j] - aw[j])), edb = fmax(edb, fabs(DB[j] - ab[j]));
  CU_ASSERT(ey < 1e-5);
  CU_ASSERT(edx < 1e-6);
  CU_ASSERT(edw < 2e-5);
  CU_ASSERT(edb < 2e-5);
  free(X), free(W), free(B), free(G), free(Y), free(DX);
  ir_graph_free(g);
}

static void test_sum_rows(void) {
  enum { M = 33, NX = R * M + 5 }; /* 70 rows of 33 and a tail of 5 */
  ir_graph *g = ir_graph_new("sum");
  ir_ref x = tensor(g, 1, NX, 0, IR_F32), y = tensor(g, 1, M, 0, IR_F32);
  float *X = rnd(NX, 1.0f, 6), Y[M];
  ir_op o = op(IR_OP_SUM_ROWS, 1, &x, 1, &y);
  CU_ASSERT_FATAL(rt_kernel(g, &o, (void *[]){X}, (void *[]){Y}, &kc));
  double want[M] = {0}, err = 0;
  for (int i = 0; i < NX; i++) want[i % M] += X[i];
  for (int j = 0; j < M; j++) err = fmax(err, fabs(Y[j] - want[j]));
  CU_ASSERT(err < 1e-5);
  free(X);
  ir_graph_free(g);
}

static void test_dropout(void) {
  enum { ND = 100003 };
  ir_graph *g = ir_graph_new("drop");
  ir_ref x = tensor(g, 1, ND, 0, IR_F32), y = tensor(g, 1, ND, 0, IR_F32), dy = tensor(g, 1, ND, 0, IR_F32);
  ir_ref dx = tensor(g, 1, ND, 0, IR_F32);
  float *X = rnd(ND, 1.0f, 7), *Y = malloc(sizeof(float) * ND), *G = rnd(ND, 1.0f, 8), *DX = malloc(sizeof(float) * ND);
  for (int i = 0; i < ND; i++) X[i] += 2.0f, G[i] += 2.0f; /* never 0 */
  ir_op f = op(IR_OP_DROPOUT, 1, &x, 1, &y), b = op(IR_OP_DROPOUT_GRAD, 1, &dy, 1, &dx);
  f.at.p = b.at.p = 0.3, b.at.n = y;
  CU_ASSERT_FATAL(rt_kernel(g, &f, (void *[]){X}, (void *[]){Y}, &kc));
  CU_ASSERT_FATAL(rt_kernel(g, &b, (void *[]){G}, (void *[]){DX}, &kc));
  float sc = (float)(1.0 / 0.7);
  int dropped = 0, bad = 0;
  for (int i = 0; i < ND; i++) {
    dropped += Y[i] == 0.0f;
    bad += Y[i] != 0.0f && Y[i] != X[i] * sc;
    bad += (DX[i] == 0.0f) != (Y[i] == 0.0f) || (DX[i] != 0.0f && DX[i] != G[i] * sc);
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT(fabs(dropped / (double)ND - 0.3) < 0.01);
  free(X), free(Y), free(G), free(DX);
  ir_graph_free(g);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_kern", NULL, NULL);
  CU_ADD(s, test_cross_entropy);
  CU_ADD(s, test_layer_norm);
  CU_ADD(s, test_sum_rows);
  CU_ADD(s, test_dropout);
}
