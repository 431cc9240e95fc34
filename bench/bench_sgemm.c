/* bench_sgemm.c — the machine's fp32 GEMM rate: what `sbpc run`'s training
 * step is measured against (bench/rt_train.sh, issue 11: the step's model
 * FLOPs over its time should reach 85 % of it). OpenBLAS cblas_sgemm with its
 * default threads (all cores, or OPENBLAS_NUM_THREADS), square sizes 1024,
 * 2048 and 3072 plus GPT-2 small's shapes at 1024 tokens (768 x 2304, 768 x
 * 3072, 3072 x 768, 768 x 50257), each the best of 5 after a warm-up; prints
 * one line per shape and the best rate as `sgemm: N GFLOP/s`. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rate(int m, int n, int k) {
  float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n);
  float *c = malloc(sizeof(float) * (size_t)m * n);
  for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
  for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
  double best = 1e30;
  for (int r = 0; r < 6; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  free(a), free(b), free(c);
  return 2.0 * m * n * k / best / 1e9;
}

int main(void) {
  int shapes[][3] = {{1024, 1024, 1024}, {2048, 2048, 2048}, {3072, 3072, 3072}, {1024, 2304, 768},
                     {1024, 3072, 768},  {1024, 768, 3072},   {1024, 50257, 768}};
  double best = 0;
  printf("OpenBLAS %d threads\n", openblas_get_num_threads());
  for (int i = 0; i < 7; i++) {
    double g = rate(shapes[i][0], shapes[i][1], shapes[i][2]);
    printf("  sgemm %5d x %5d x %5d: %7.1f GFLOP/s\n", shapes[i][0], shapes[i][1], shapes[i][2], g);
    best = g > best ? g : best;
  }
  printf("sgemm: %.1f GFLOP/s\n", best);
  return 0;
}
