/* par.c — the memory-bound CPU loops (AdamW over a parameter, gradient
 * accumulation, cross-entropy over the vocabulary) split over threads.
 *
 * rt_par_for cuts [0, n) into rt_threads() contiguous chunks whose bounds
 * depend only on n and the thread count (multiples of 16 elements, the last
 * chunk takes the rest), runs chunk 0 on the calling thread and the others on
 * short-lived pthreads, and joins them all before returning. Each chunk
 * writes only its own elements, so elementwise loops give the same bits for
 * any thread count; a reduction keeps one partial per chunk and the caller
 * combines the partials in chunk order (fixed for a given thread count).
 * Loops below PAR_MIN elements (items times their grain) run inline: a
 * thread start costs more.
 *
 * rt_par_items splits a few coarse items (attention's (sample, head) pairs)
 * one chunk per thread, with no 16-item minimum: each chunk calls its own
 * single-threaded sgemms instead of all of them sharing the cores one small
 * GEMM at a time. While a thread runs a chunk of a split (of more than one
 * chunk), rt_par_nested is true on it, and rt_sgemm (blas.c) does not split
 * its GEMM again. rt_par_split is the primitive under all three (and under
 * rt_sgemm's panels).
 *
 * Thread count: SBPC_THREADS (1-64), default rt_cores() (at most 8). The
 * actor executor's workers may call it concurrently: nothing is shared between
 * calls. rt_cores counts the CPUs this rank may run on, not the machine's:
 * mpirun binds each of 2 ranks on 2 cores to one core, where two threads of
 * a split (or two actor workers) only take turns on it; with more ranks than
 * cores it binds none, and each rank gets its share of the cores. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "runtime/rt_internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

enum { PAR_MIN = 1 << 16, PAR_MAX = 64 };

/* the ranks of this job on this machine (Open MPI's or MPICH's launcher), else 1 */
static long local_ranks(void) {
  const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!v) v = getenv("MPI_LOCALNRANKS");
  long n = v ? atol(v) : 1;
  return n < 1 ? 1 : n;
}

static long online(void) {
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c < 1 ? 1 : c;
}

static int cores(void) {
  cpu_set_t set;
  long c = online(), n = local_ranks();
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
    if (CPU_COUNT(&set) < c) return CPU_COUNT(&set); /* bound by the launcher */
  }
  c = c / n < 1 ? 1 : c / n; /* unbound (mpirun does not bind more ranks than cores): a share */
  return c > INT32_MAX ? INT32_MAX : (int)c;
}

/* rt_cores and rt_own_core: found once (sysconf reads /sys on each call,
 * and drive's polling loop asks on every round) */
int rt_cores(void) {
  static int n;
  int v = __atomic_load_n(&n, __ATOMIC_RELAXED);
  if (!v) v = cores(), __atomic_store_n(&n, v, __ATOMIC_RELAXED);
  return v;
}

bool rt_own_core(void) {
  static int own; /* 0: not yet known, 1: yes, 2: no */
  int v = __atomic_load_n(&own, __ATOMIC_RELAXED);
  if (!v) v = local_ranks() <= online() ? 1 : 2, __atomic_store_n(&own, v, __ATOMIC_RELAXED);
  return v == 1;
}

int rt_threads(void) {
  static int n;
  int v = __atomic_load_n(&n, __ATOMIC_RELAXED);
  if (v) return v;
  const char *s = getenv("SBPC_THREADS");
  long c = s && atoi(s) > 0 ? atoi(s) : rt_cores();
  if (!(s && atoi(s) > 0) && c > 8) c = 8;
  v = c < 1 ? 1 : c > PAR_MAX ? PAR_MAX : (int)c;
  __atomic_store_n(&n, v, __ATOMIC_RELAXED);
  return v;
}

int rt_par_chunks(int64_t n, int64_t grain) {
  int T = n * grain < PAR_MIN ? 1 : rt_threads();
  return n / 16 < T ? (int)(n / 16 > 1 ? n / 16 : 1) : T; /* every chunk but the last at least 16 items */
}

typedef struct {
  rt_par_fn fn;
  void *ctx;
  int64_t lo, hi;
  int chunk;
} par_job;

static _Thread_local int par_depth; /* this thread runs a chunk of a split */

bool rt_par_nested(void) { return par_depth > 0; }

static void *par_run(void *arg) {
  par_job *j = arg;
  par_depth++;
  j->fn(j->ctx, j->chunk, j->lo, j->hi);
  par_depth--;
  return NULL;
}

void rt_par_split(int64_t n, int T, int64_t step, rt_par_fn fn, void *ctx) {
  T = T < 1 ? 1 : T > PAR_MAX ? PAR_MAX : T;
  if (T == 1) { /* one chunk: not nested, its GEMMs may split */
    fn(ctx, 0, 0, n);
    return;
  }
  par_job job[PAR_MAX];
  pthread_t th[PAR_MAX];
  bool started[PAR_MAX] = {0};
  for (int c = 0; c < T; c++) {
    int64_t lo = c * step < n ? c * step : n, hi = c == T - 1 ? n : (lo + step < n ? lo + step : n);
    job[c] = (par_job){fn, ctx, lo, hi, c};
    if (c > 0) started[c] = pthread_create(&th[c], NULL, par_run, &job[c]) == 0;
  }
  par_run(&job[0]);
  for (int c = 1; c < T; c++) {
    if (started[c]) pthread_join(th[c], NULL);
    else par_run(&job[c]); /* no thread to be had: run it here */
  }
}

void rt_par_for(int64_t n, int64_t grain, rt_par_fn fn, void *ctx) {
  int T = rt_par_chunks(n, grain);
  rt_par_split(n, T, (n / T + 15) / 16 * 16, fn, ctx);
}

void rt_par_items(int64_t n, rt_par_fn fn, void *ctx) {
  int T = n < rt_threads() ? (int)(n > 1 ? n : 1) : rt_threads();
  rt_par_split(n, T, (n + T - 1) / T, fn, ctx);
}
