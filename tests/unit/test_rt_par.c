/* test_rt_par.c — the runtime's split loops (runtime/par.c): rt_par_for
 * covers [0, n) once in contiguous chunks in chunk order, also called from
 * two threads at once; the split AdamW equals the one-thread formula bit for
 * bit. The runtime's GEMM (runtime/blas.c): rt_sgemm, split into panels over
 * rt_blas_threads (all cores here), equals a double-precision product for
 * every transpose, alpha and beta, with the panels over C's columns and over
 * its rows, inside rt_par_items too, gives the same bits when repeated, and
 * leaves OpenBLAS at one thread. */
#include "cu.h"
#include "runtime/exec_priv.h"
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int *owner;       /* per item: the chunk that ran it (-1: none) */
  int64_t lo[64], hi[64];
} cover;

static void mark(void *ctx, int chunk, int64_t lo, int64_t hi) {
  cover *c = ctx;
  c->lo[chunk] = lo, c->hi[chunk] = hi;
  for (int64_t i = lo; i < hi; i++) c->owner[i] = c->owner[i] == -1 ? chunk : -2; /* -2: ran twice */
}

static bool covers(int64_t n, int64_t grain) {
  cover c;
  c.owner = xmalloc(sizeof(int) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++) c.owner[i] = -1;
  rt_par_for(n, grain, mark, &c);
  bool ok = true;
  int T = rt_par_chunks(n, grain);
  for (int64_t i = 0; i < n; i++) ok &= c.owner[i] >= 0 && (i == 0 || c.owner[i] >= c.owner[i - 1]);
  for (int k = 0; k + 1 < T; k++) ok &= c.hi[k] == c.lo[k + 1]; /* contiguous, in chunk order */
  if (T > 0) ok &= c.lo[0] == 0 && c.hi[T - 1] == n;
  free(c.owner);
  return ok;
}

static void *covers_thread(void *arg) {
  *(bool *)arg = covers(300001, 1);
  return NULL;
}

static void test_par_cover(void) {
  CU_ASSERT(rt_threads() >= 1);
  CU_ASSERT_EQUAL(rt_par_chunks(10, 1), 1); /* small loops run inline */
  CU_ASSERT(covers(0, 1));
  CU_ASSERT(covers(1, 1));
  CU_ASSERT(covers(17, 100000));
  CU_ASSERT(covers(65536 * 3 + 5, 1));
  bool a = false, b = false;
  pthread_t t;
  CU_ASSERT_FATAL(pthread_create(&t, NULL, covers_thread, &a) == 0);
  b = covers(200003, 1);
  pthread_join(t, NULL);
  CU_ASSERT(a && b);
}

/* rt_adamw (split over threads) vs the same formula on one thread */
static void test_par_adamw(void) {
  enum { N = 300007 };
  float *p = xmalloc(sizeof(float) * N), *g = xmalloc(sizeof(float) * N), *m = xmalloc(sizeof(float) * N);
  float *v = xmalloc(sizeof(float) * N), *p2 = xmalloc(sizeof(float) * N), *m2 = xmalloc(sizeof(float) * N);
  float *v2 = xmalloc(sizeof(float) * N);
  for (int i = 0; i < N; i++) {
    p[i] = p2[i] = sinf((float)i), g[i] = cosf((float)i * 0.37f);
    m[i] = m2[i] = 0.01f * g[i], v[i] = v2[i] = 0.001f * g[i] * g[i];
  }
  ir_attrs a;
  memset(&a, 0, sizeof a);
  a.lr = 1e-3, a.beta1 = 0.9, a.beta2 = 0.999, a.eps = 1e-8, a.weight_decay = 0.01;
  rt_adamw(&a, p, g, m, v, N, 3);
  double bc1 = 1.0 - pow(0.9, 3), bc2 = 1.0 - pow(0.999, 3);
  float decay = (float)(1.0 - a.lr * a.weight_decay), w1 = (float)(1.0 - 0.9), w2 = (float)(1.0 - 0.999);
  float b2 = 0.999f, ss = (float)(a.lr / bc1), sq2 = (float)sqrt(bc2), eps = 1e-8f;
  int bad = 0;
  for (int i = 0; i < N; i++) { /* fp32, as torch.optim.AdamW on float tensors */
    float mf = m2[i] + w1 * (g[i] - m2[i]), vf = b2 * v2[i] + w2 * (g[i] * g[i]);
    float den = sqrtf(vf) / sq2 + eps, q = mf / den, pd = p2[i] * decay;
    m2[i] = mf, v2[i] = vf, p2[i] = pd - ss * q;
    bad += memcmp(&p[i], &p2[i], 4) || memcmp(&m[i], &m2[i], 4) || memcmp(&v[i], &v2[i], 4);
  }
  CU_ASSERT_EQUAL(bad, 0);
  free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
}

/* max |C - C_ref| / (|alpha| sum_k |a||b| + |beta c|) over C[m, n] = alpha op(A) op(B) + beta C0 */
static double gemm_err(bool ta, bool tb, int m, int n, int k, float alpha, float beta, bool twice) {
  float *a = xmalloc(sizeof(float) * (size_t)m * k), *b = xmalloc(sizeof(float) * (size_t)k * n);
  float *c = xmalloc(sizeof(float) * (size_t)m * n), *c0 = xmalloc(sizeof(float) * (size_t)m * n);
  for (int i = 0; i < m * k; i++) a[i] = sinf((float)i * 0.7f);
  for (int i = 0; i < k * n; i++) b[i] = cosf((float)i * 0.3f);
  for (int i = 0; i < m * n; i++) c[i] = c0[i] = 0.5f - (float)(i % 3);
  int lda = ta ? m : k, ldb = tb ? k : n;
  rt_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
  double worst = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0, mag = 0;
      for (int l = 0; l < k; l++) {
        double x = ta ? a[l * lda + i] : a[i * lda + l], y = tb ? b[j * ldb + l] : b[l * ldb + j];
        s += x * y, mag += fabs(x * y);
      }
      double want = alpha * s + beta * c0[i * n + j], e = fabs(c[i * n + j] - want) / (fabs(alpha) * mag + fabs(beta * c0[i * n + j]) + 1e-30);
      worst = e > worst ? e : worst;
    }
  if (twice) { /* the same call again: the same bits */
    float *c2 = xmalloc(sizeof(float) * (size_t)m * n);
    memcpy(c2, c0, sizeof(float) * (size_t)m * n);
    rt_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, n);
    if (memcmp(c, c2, sizeof(float) * (size_t)m * n)) worst = 1;
    free(c2);
  }
  free(a), free(b), free(c), free(c0);
  return worst;
}

static void test_par_sgemm(void) {
  CU_ASSERT(rt_blas_threads() >= 1);
  CU_ASSERT_EQUAL(openblas_get_num_threads(), 1); /* rt_sgemm's panels are the threads */
  for (int v = 0; v < 4; v++) {
    bool ta = v & 1, tb = v >> 1;
    CU_ASSERT(gemm_err(ta, tb, 97, 1003, 130, 1.0f, 0.0f, true) < 1e-5);  /* panels of columns */
    CU_ASSERT(gemm_err(ta, tb, 1003, 97, 130, 0.5f, 1.0f, false) < 1e-5); /* panels of rows, beta = 1 */
    CU_ASSERT(gemm_err(ta, tb, 5, 7, 3, -2.0f, 0.25f, false) < 1e-5);     /* too small to split */
  }
}

/* rt_sgemm inside rt_par_items (attention's pattern): each item its own GEMM */
static void sgemm_items(void *ctx, int chunk, int64_t lo, int64_t hi) {
  (void)chunk;
  double *err = ctx;
  for (int64_t i = lo; i < hi; i++) err[i] = gemm_err(i & 1, false, 300, 200 + (int)i, 100, 1.0f, 0.0f, false);
}

static void test_par_sgemm_nested(void) {
  double err[6];
  rt_par_items(6, sgemm_items, err);
  for (int i = 0; i < 6; i++) CU_ASSERT(err[i] < 1e-5);
  CU_ASSERT_EQUAL(openblas_get_num_threads(), 1);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_par", NULL, NULL);
  CU_ADD(s, test_par_cover);
  CU_ADD(s, test_par_adamw);
  CU_ADD(s, test_par_sgemm);
  CU_ADD(s, test_par_sgemm_nested);
}
