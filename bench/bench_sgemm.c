/* bench_sgemm.c — the machine's fp32 GEMM rate: what `sbpc run`'s training
 * step is measured against (bench/rt_train.sh, issue 11: the step's model
 * FLOPs over its time should reach 85 % of it). The BLAS library is set up as
 * the runtime sets it up (rt_blas_init: its AVX-512 kernels where the CPU has
 * them), and every shape is timed two ways: OpenBLAS's own threads
 * (rt_blas_threads of them: OPENBLAS_NUM_THREADS, else all cores) and the
 * runtime's rt_sgemm (the same number of single-threaded panels). Shapes:
 * square 1024, 2048 and 3072 plus GPT-2 small's at 1024 tokens (768 x 2304,
 * 768 x 3072, 3072 x 768, 768 x 50257), each the best of 5 after a warm-up.
 * Prints one line per shape and, as `sgemm: N GFLOP/s`, the best rate of
 * either way: the baseline is the fastest sgemm this machine has. */
#include "runtime/rt_internal.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* GFLOP/s of C[m, n] = A[m, k] B[k, n]: OpenBLAS's threads (pool) or rt_sgemm */
static double rate(int m, int n, int k, bool pool) {
  float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n);
  float *c = malloc(sizeof(float) * (size_t)m * n);
  for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
  for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
  openblas_set_num_threads(pool ? rt_blas_threads() : 1);
  double best = 1e30;
  for (int r = 0; r < 6; r++) {
    double t0 = now();
    if (pool) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    else rt_sgemm(false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  openblas_set_num_threads(1);
  free(a), free(b), free(c);
  return 2.0 * m * n * k / best / 1e9;
}

int main(void) {
  int shapes[][3] = {{1024, 1024, 1024}, {2048, 2048, 2048}, {3072, 3072, 3072}, {1024, 2304, 768},
                     {1024, 3072, 768},  {1024, 768, 3072},   {1024, 50257, 768}};
  double best = 0;
  rt_blas_init();
  printf("OpenBLAS %s kernels, %d threads: OpenBLAS's own threads | rt_sgemm's panels\n", openblas_get_corename(),
         rt_blas_threads());
  for (int i = 0; i < 7; i++) {
    double p = rate(shapes[i][0], shapes[i][1], shapes[i][2], true);
    double s = rate(shapes[i][0], shapes[i][1], shapes[i][2], false);
    printf("  sgemm %5d x %5d x %5d: %7.1f | %7.1f GFLOP/s\n", shapes[i][0], shapes[i][1], shapes[i][2], p, s);
    best = p > best ? p : best;
    best = s > best ? s : best;
  }
  printf("sgemm: %.1f GFLOP/s\n", best);
  return 0;
}
