/* bench_sgemm.c — the machine's fp32 GEMM rate: what `sbpc run`'s training
 * step is measured against (bench/rt_train.sh, issue 11: the step's model
 * FLOPs over its time should reach 85 % of it). The BLAS library is set up as
 * the runtime sets it up (rt_blas_init: its AVX-512 kernels where the CPU has
 * them), and every shape is timed two ways, alternating in one loop:
 * OpenBLAS's own threads (rt_blas_threads of them: OPENBLAS_NUM_THREADS, else
 * all cores) and the runtime's rt_sgemm (the same number of single-threaded
 * panels). Shapes: square 1024, 2048 and 3072, then GPT-2 small's at 1024
 * tokens as its training step runs them, (M, N, K, trans_a, trans_b): the
 * forward's C = A B and C = A B^T, the weight gradients' C = A^T B. Operands
 * are cold, as in a run (they come from memory): a buffer larger than the
 * last-level cache is written between calls. Each rate is the best of 5
 * after a warm-up. Prints one line per shape and, as `sgemm: N GFLOP/s`, the
 * best rate of either way: the baseline is the fastest sgemm this machine
 * has. */
#include "runtime/rt_internal.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { REPS = 6, FLUSH_BYTES = 128 << 20 };

typedef struct {
  int m, n, k;
  bool ta, tb;
} shape;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* evict the operands from the caches: write a buffer larger than them */
static void flush(unsigned char *buf) {
  for (size_t i = 0; i < FLUSH_BYTES; i += 64) buf[i]++;
}

/* seconds of one C[m, n] = op(A) op(B): OpenBLAS's threads (pool) or rt_sgemm */
static double timed(const shape *s, bool pool, const float *a, const float *b, float *c) {
  int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  openblas_set_num_threads(pool ? rt_blas_threads() : 1);
  double t0 = now();
  if (pool)
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k,
                1.0f, a, lda, b, ldb, 0.0f, c, s->n);
  else
    rt_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
  double t = now() - t0;
  openblas_set_num_threads(1);
  return t;
}

/* GFLOP/s of the shape, OpenBLAS's threads in rate[0], rt_sgemm in rate[1] */
static void rates(const shape *s, unsigned char *buf, double rate[2]) {
  size_t m = (size_t)s->m, n = (size_t)s->n, k = (size_t)s->k;
  float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
  for (size_t i = 0; i < m * k; i++) a[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < k * n; i++) b[i] = (float)(i % 5) * 0.1f;
  double best[2] = {1e30, 1e30};
  for (int r = 0; r < REPS; r++)
    for (int way = 0; way < 2; way++) {
      flush(buf);
      double t = timed(s, way == 0, a, b, c);
      if (r > 0 && t < best[way]) best[way] = t;
    }
  for (int way = 0; way < 2; way++) rate[way] = 2.0 * (double)m * (double)n * (double)k / best[way] / 1e9;
  free(a), free(b), free(c);
}

int main(void) {
  static const shape shapes[] = {
      {1024, 1024, 1024, 0, 0}, {2048, 2048, 2048, 0, 0}, {3072, 3072, 3072, 0, 0}, {1024, 2304, 768, 0, 0},
      {1024, 768, 2304, 0, 1},  {768, 2304, 1024, 1, 0},  {1024, 768, 768, 0, 0},   {1024, 768, 768, 0, 1},
      {768, 768, 1024, 1, 0},   {1024, 3072, 768, 0, 0},  {1024, 3072, 768, 0, 1},  {3072, 768, 1024, 1, 0},
      {1024, 768, 3072, 0, 0},  {1024, 768, 3072, 0, 1},  {768, 3072, 1024, 1, 0},  {1024, 50257, 768, 0, 1},
      {1024, 768, 50257, 0, 0}, {50257, 768, 1024, 1, 0}};
  unsigned char *buf = calloc(FLUSH_BYTES, 1);
  double best = 0;
  rt_blas_init();
  printf("OpenBLAS %s kernels, %d threads: OpenBLAS's own threads | rt_sgemm's panels (cold operands)\n",
         openblas_get_corename(), rt_blas_threads());
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const shape *s = &shapes[i];
    double r[2];
    rates(s, buf, r);
    printf("  sgemm %5d x %5d x %5d %c%c: %7.1f | %7.1f GFLOP/s\n", s->m, s->n, s->k, s->ta ? 'T' : 'N',
           s->tb ? 'T' : 'N', r[0], r[1]);
    best = r[0] > best ? r[0] : best;
    best = r[1] > best ? r[1] : best;
  }
  printf("sgemm: %.1f GFLOP/s\n", best);
  free(buf);
  return 0;
}
