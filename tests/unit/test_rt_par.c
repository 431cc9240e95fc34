/* test_rt_par.c — the runtime's split loops (runtime/par.c): rt_par_for
 * covers [0, n) once in contiguous chunks in chunk order, also called from
 * two threads at once; the split AdamW equals the one-thread formula bit for
 * bit. */
#include "cu.h"
#include "runtime/exec_priv.h"
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
  double bc1 = 1.0 - pow(0.9, 3), sq2 = sqrt(1.0 - pow(0.999, 3)), ss = a.lr / bc1;
  int bad = 0;
  for (int i = 0; i < N; i++) {
    double pi = p2[i] * (1.0 - a.lr * a.weight_decay);
    m2[i] = (float)(0.9 * m2[i] + (1.0 - 0.9) * g[i]);
    v2[i] = (float)(0.999 * v2[i] + (1.0 - 0.999) * (double)g[i] * g[i]);
    p2[i] = (float)(pi - ss * m2[i] / (sqrt((double)v2[i]) / sq2 + a.eps));
    bad += memcmp(&p[i], &p2[i], 4) || memcmp(&m[i], &m2[i], 4) || memcmp(&v[i], &v2[i], 4);
  }
  CU_ASSERT_EQUAL(bad, 0);
  free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_par", NULL, NULL);
  CU_ADD(s, test_par_cover);
  CU_ADD(s, test_par_adamw);
}
