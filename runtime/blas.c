/* blas.c — the BLAS library's threads as the runtime uses them.
 *
 * The runtime has one kind of thread: par.c's. OpenBLAS runs at one
 * thread; rt_sgemm cuts a large GEMM into column (or row) panels, one per
 * GEMM thread, each a single-threaded sgemm on its own par.c thread. GEMM
 * threads: the count OpenBLAS came up with (OPENBLAS_NUM_THREADS, else all
 * cores). So nothing toggles a process-wide BLAS setting while another actor
 * worker is inside a GEMM, and no idle OpenBLAS pool thread spins for the
 * core after each GEMM while the runtime's own split loops want it. Inside a
 * par.c chunk (attention's items) a GEMM stays on its thread. Every element
 * of C is one single-threaded sgemm's, and the panel bounds depend only on
 * the shape and the thread count: a run's results do not depend on timing. */
#include "runtime/rt_internal.h"
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

/* below this many multiply-adds (tens of microseconds of work) a thread
 * start costs about what splitting the GEMM saves */
enum { GEMM_SPLIT_MIN = 1 << 22, GEMM_ALIGN = 16, GEMM_THREADS_MAX = 64 };

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int blas_threads = 1;

static void blas_init_once(void) {
  int n = openblas_get_num_threads();
  blas_threads = n < 1 ? 1 : n > GEMM_THREADS_MAX ? GEMM_THREADS_MAX : n;
  openblas_set_num_threads(1);
}

void rt_blas_init(void) { pthread_once(&blas_once, blas_init_once); }

int rt_blas_threads(void) {
  rt_blas_init();
  return blas_threads;
}

typedef struct {
  bool ta, tb, cols; /* cols: panels of C's columns (else of its rows) */
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
} gemm;

static void gemm_run(const gemm *g, int64_t m, int64_t n, const float *a, const float *b, float *c) {
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)g->k, g->alpha, a, (int)g->lda, b, (int)g->ldb, g->beta, c, (int)g->ldc);
}

/* panel [lo, hi) of C's columns or rows */
static void gemm_panel(void *ctx, int chunk, int64_t lo, int64_t hi) {
  (void)chunk;
  const gemm *g = ctx;
  if (hi <= lo) return;
  if (g->cols)
    gemm_run(g, g->m, hi - lo, g->a, g->tb ? g->b + lo * g->ldb : g->b + lo, g->c + lo);
  else
    gemm_run(g, hi - lo, g->n, g->ta ? g->a + lo : g->a + lo * g->lda, g->b, g->c + lo * g->ldc);
}

void rt_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  rt_blas_init();
  /* each panel repacks the operand it shares with the others: share the smaller one */
  gemm g = {ta, tb, m <= n, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
  int64_t len = g.cols ? n : m, most = len / GEMM_ALIGN;
  int T = rt_par_nested() || m * n * k < GEMM_SPLIT_MIN ? 1 : blas_threads;
  if (T > most) T = most > 1 ? (int)most : 1;
  if (T == 1) {
    gemm_run(&g, m, n, a, b, c);
    return;
  }
  int64_t step = (len / T + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
  rt_par_split(len, T, step, gemm_panel, &g);
}
