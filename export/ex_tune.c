/* ex_tune.c — `sbpc tune`: measure this machine and write the calibration
 * JSON the planner reads (schema: docs/calibration.md, keys as planner/calib.c
 * loads them).
 *
 * Measurements, each repeated until it has run long enough to time (the best
 * of the repeats is kept, as STREAM does): OpenBLAS sgemm throughput over a
 * set of shapes, fitted to the planner's GEMM efficiency model
 * eff = eff_max * m/(m+h) * n/(n+h) * k/(k+h) (grid search over h, least
 * squares for the asymptote); memory bandwidth by copy and triad over arrays
 * much larger than the caches; the fixed cost of one library kernel call
 * (a 1x1x1 sgemm); and, under mpirun, collective bus bandwidth and latency by
 * group size (tune_mpi.c). Efficiencies relative to the device's peak are
 * written only when the peak is given (--peak-flops, --peak-bw): sbpc never
 * guesses a datasheet. Progress is a bar on a terminal, plain lines otherwise. */
#include "export/export.h"
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
  const ex_tune_opts *o;
  int step, steps;
} progress;

static void report(progress *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(progress *pg, const char *fmt, ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  FILE *f = pg->o->log;
  pg->step++;
  if (!f) return;
  if (pg->o->progress) {
    int w = 30, done = pg->steps ? pg->step * w / pg->steps : w;
    fprintf(f, "\r[%.*s%*s] %3d%% %-60.60s", done, "##############################", w - done, "",
            pg->steps ? pg->step * 100 / pg->steps : 100, msg);
    if (pg->step >= pg->steps) fputc('\n', f);
  } else {
    fprintf(f, "tune: %s\n", msg);
  }
  fflush(f);
}

/* timed: seconds per call of fn(arg), repeated until min_s has passed; the
 * best of three such batches. */
static double timed(void (*fn)(void *), void *arg, double min_s) {
  double best = INFINITY;
  for (int rep = 0; rep < 3; rep++) {
    long n = 0;
    double t0 = now(), t;
    do {
      fn(arg);
      n++;
      t = now() - t0;
    } while (t < min_s / 3);
    if (t / n < best) best = t / n;
  }
  return best;
}

typedef struct {
  int m, n, k;
  float *a, *b, *c;
} gemm_arg;

static void gemm_once(void *p) {
  gemm_arg *g = p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c,
              g->n);
}

static double gemm_rate(int m, int n, int k, double min_s, double *secs) {
  gemm_arg g = {m, n, k, malloc(sizeof(float) * (size_t)m * k), malloc(sizeof(float) * (size_t)k * n),
                malloc(sizeof(float) * (size_t)m * n)};
  for (size_t i = 0; i < (size_t)m * k; i++) g.a[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < (size_t)k * n; i++) g.b[i] = (float)(i % 5) * 0.1f;
  *secs = timed(gemm_once, &g, min_s);
  free(g.a), free(g.b), free(g.c);
  return 2.0 * m * n * k / *secs;
}

/* fit_gemm: h and the asymptotic rate of rate = peak * f(m,h) f(n,h) f(k,h),
 * minimising the relative squared error. */
static void fit_gemm(int ns, const int (*shape)[3], const double *rate, double *h_out, double *peak_out) {
  double best = INFINITY;
  for (double h = 0; h <= 4096; h = h < 1 ? 1 : h * 1.05) {
    double sfr = 0, sff = 0, err = 0;
    double f[64];
    for (int i = 0; i < ns; i++) {
      f[i] = shape[i][0] / (shape[i][0] + h) * shape[i][1] / (shape[i][1] + h) * shape[i][2] / (shape[i][2] + h);
      sfr += f[i] / rate[i], sff += f[i] * f[i] / (rate[i] * rate[i]);
    }
    double peak = sfr / sff;
    for (int i = 0; i < ns; i++) err += pow((peak * f[i] - rate[i]) / rate[i], 2);
    if (err < best) best = err, *h_out = h, *peak_out = peak;
  }
}

static cJSON *measure_gemm(progress *pg, double min_s, double peak_flops) {
  static const int full[][3] = {{64, 64, 64},      {128, 128, 128},   {256, 256, 256},  {512, 512, 512},
                                {1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 1024, 1024}, {1024, 4096, 256},
                                {256, 1024, 4096}, {32, 4096, 1024}};
  static const int quick[][3] = {{64, 64, 64}, {128, 128, 128}, {256, 256, 256}, {512, 512, 512}, {64, 512, 256}};
  const int(*sh)[3] = pg->o->quick ? quick : full;
  int ns = pg->o->quick ? 5 : 10;
  double rate[16];
  cJSON *g = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(g, "shapes");
  for (int i = 0; i < ns; i++) {
    double secs;
    rate[i] = gemm_rate(sh[i][0], sh[i][1], sh[i][2], min_s, &secs);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "m", sh[i][0]);
    cJSON_AddNumberToObject(e, "n", sh[i][1]);
    cJSON_AddNumberToObject(e, "k", sh[i][2]);
    cJSON_AddNumberToObject(e, "seconds", secs);
    cJSON_AddNumberToObject(e, "flops_per_s", rate[i]);
    cJSON_AddItemToArray(arr, e);
    report(pg, "gemm %dx%dx%d: %.2f GFLOP/s", sh[i][0], sh[i][1], sh[i][2], rate[i] / 1e9);
  }
  double h = 0, peak = 0;
  fit_gemm(ns, sh, rate, &h, &peak);
  cJSON_AddStringToObject(g, "dtype", "f32");
  cJSON_AddNumberToObject(g, "half_dim", round(h * 10) / 10);
  cJSON_AddNumberToObject(g, "fit_peak_flops_per_s", peak);
  if (peak_flops > 0) cJSON_AddNumberToObject(g, "eff_max", fmin(1.0, fmax(0.01, peak / peak_flops)));
  return g;
}

typedef struct {
  size_t n;
  double *a, *b, *c;
  int triad;
} stream_arg;

static void stream_once(void *p) {
  stream_arg *s = p;
  if (s->triad)
    for (size_t i = 0; i < s->n; i++) s->a[i] = s->b[i] + 3.0 * s->c[i];
  else
    memcpy(s->a, s->b, s->n * sizeof(double));
}

static cJSON *measure_memory(progress *pg, double min_s, double peak_bw) {
  size_t n = (pg->o->quick ? 4u : 8u) << 20; /* doubles per array: 32 MiB / 64 MiB */
  stream_arg s = {n, malloc(n * sizeof(double)), malloc(n * sizeof(double)), malloc(n * sizeof(double)), 0};
  for (size_t i = 0; i < n; i++) s.a[i] = 0, s.b[i] = 1.0, s.c[i] = 2.0;
  double copy = 2.0 * n * sizeof(double) / timed(stream_once, &s, min_s);
  report(pg, "memory copy: %.2f GB/s", copy / 1e9);
  s.triad = 1;
  double triad = 3.0 * n * sizeof(double) / timed(stream_once, &s, min_s);
  report(pg, "memory triad: %.2f GB/s", triad / 1e9);
  free(s.a), free(s.b), free(s.c);
  cJSON *m = cJSON_CreateObject();
  cJSON_AddNumberToObject(m, "copy_bytes_per_s", copy);
  cJSON_AddNumberToObject(m, "triad_bytes_per_s", triad);
  cJSON_AddNumberToObject(m, "array_bytes", (double)(n * sizeof(double)));
  if (peak_bw > 0) cJSON_AddNumberToObject(m, "bandwidth_eff", fmin(1.0, fmax(0.01, fmax(copy, triad) / peak_bw)));
  return m;
}

static double measure_overhead(progress *pg, double min_s) {
  double secs;
  gemm_rate(1, 1, 1, min_s, &secs);
  report(pg, "kernel call overhead: %.2f us", secs * 1e6);
  return secs;
}

static cJSON *host(void) {
  cJSON *h = cJSON_CreateObject();
  char name[256] = "unknown";
  gethostname(name, sizeof name - 1);
  cJSON_AddStringToObject(h, "hostname", name);
  cJSON_AddNumberToObject(h, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
  cJSON_AddNumberToObject(h, "blas_threads", openblas_get_num_threads());
  cJSON_AddStringToObject(h, "device", "cpu");
  return h;
}

int ex_tune(const ex_tune_opts *o, const char *path) {
  progress pg = {o, 0, o->quick ? 8 : 13};
  double min_s = o->quick ? 0.03 : 0.3;
  cJSON *j = cJSON_CreateObject();
  int nranks = 1;
  int rank = ex_tune_mpi(j, o, &nranks); /* collectives first: every rank takes part */
  if (rank != 0) {
    cJSON_Delete(j);
    ex_tune_mpi_finalize();
    return rank < 0;
  }
  cJSON_AddStringToObject(j, "format", "sbpc-calibration");
  cJSON_AddNumberToObject(j, "version", 1);
  cJSON_AddStringToObject(j, "tool", o->quick ? "sbpc tune --quick" : "sbpc tune");
  cJSON_AddItemToObject(j, "host", host());
  cJSON_AddNumberToObject(j, "ranks", nranks);
  cJSON_AddNumberToObject(j, "kernel_overhead_s", measure_overhead(&pg, min_s));
  cJSON_AddItemToObject(j, "gemm", measure_gemm(&pg, min_s, o->peak_flops));
  cJSON_AddItemToObject(j, "memory", measure_memory(&pg, min_s, o->peak_bw));
  pg.step = pg.steps - 1;
  report(&pg, "done");
  char *s = cJSON_Print(j);
  FILE *out = path ? fopen(path, "w") : stdout;
  int rc = !out || fprintf(out, "%s\n", s) < 0;
  if (!out) fprintf(stderr, "sbpc: error: cannot write '%s'\n", path);
  if (out && path && fclose(out)) rc = 1;
  free(s);
  cJSON_Delete(j);
  ex_tune_mpi_finalize();
  return rc;
}
