/* measure.c — `sbpc tune`: measure this machine and write the calibration
 * JSON the planner reads (schema: docs/calibration.md; the one reader is
 * planner/calib_read.c).
 *
 * Every measurement is repeated until it has run long enough to time; the
 * best of three such batches is kept, as STREAM does (the GEMM shapes'
 * batches in three passes over all of them: gemm_passes). Under mpirun every
 * rank runs the same measurement at the same time and the slowest rank's
 * time counts (tn_mpi_barrier / tn_mpi_max): the ranks of a training run
 * share the cores and the memory bus, so a device of a `cpu:N` cluster is
 * one rank among N busy ones, and that is what is measured.
 *
 * What: OpenBLAS sgemm over a generic set of shapes plus, when given, the
 * shapes a model's layouts produce (tn_opts.shapes): each shape in the three
 * orientations a matmul runs (forward A B, input gradient dY B^T, weight
 * gradient A^T dY), fitted to the planner's GEMM model eff = eff_max *
 * m/(m+h) * n/(n+h) * k/(k+h) (grid search over h, least squares for the
 * asymptote); memory bandwidth by copy and triad over arrays much larger
 * than the caches, and of an elementwise kernel over arrays the size of
 * activations (the fused kernels' own bandwidth); the fixed cost of one
 * library call (a 1x1x1 sgemm); under mpirun, collectives (mpi.c); and
 * with a model, the executor itself on the model's program (probe.c).
 * Efficiencies relative to the device's peak are written only when the peak
 * is given (--peak-flops, --peak-bw): sbpc never guesses a datasheet.
 * Extending a calibration (--from FILE --model MODEL, what `tune --plans`
 * runs when its calibration has no probe of the model) keeps FILE's
 * measurements and generic GEMM shapes, measures MODEL's shapes, refits the
 * GEMM model over both, and probes the executor on MODEL (as quick as FILE
 * was); FILE must have been measured on as many ranks.
 * Progress is a bar on a terminal, plain lines otherwise. */
#include "tune/tn_int.h"
#include "util/diag.h"
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
  const tn_opts *o;
  int rank, step, steps;
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
  if (!f || pg->rank != 0) return;
  if (pg->o->progress) {
    int w = 30, done = pg->steps ? pg->step * w / pg->steps : w;
    if (done > w) done = w;
    fprintf(f, "\r[%.*s%*s] %3d%% %-60.60s", done, "##############################", w - done, "",
            pg->steps ? pg->step * 100 / pg->steps : 100, msg);
    if (pg->step >= pg->steps) fputc('\n', f);
  } else {
    fprintf(f, "tune: %s\n", msg);
  }
  fflush(f);
}

/* batch: seconds per call of fn(arg), repeated until secs have passed,
 * every rank starting at once (this rank's time) */
static double batch(void (*fn)(void *), void *arg, double secs) {
  long n = 0;
  tn_mpi_barrier();
  double t0 = now(), t;
  do {
    fn(arg);
    n++;
    t = now() - t0;
  } while (t < secs);
  return t / n;
}

/* timed: seconds per call of fn(arg): the best of three batches of min_s / 3,
 * the slowest rank's. */
static double timed(void (*fn)(void *), void *arg, double min_s) {
  double best = INFINITY;
  for (int rep = 0; rep < 3; rep++) best = fmin(best, batch(fn, arg, min_s / 3));
  return tn_mpi_max(best);
}

typedef struct {
  int m, n, k, ta, tb;
  float *a, *b, *c;
} gemm_arg;

static void gemm_once(void *p) {
  gemm_arg *g = p;
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, g->m, g->n, g->k,
              1.0f, g->a, g->ta ? g->m : g->k, g->b, g->tb ? g->k : g->n, 0.0f, g->c, g->n);
}

/* gemm_secs: seconds of one m x n x k sgemm with the given transposes */
static double gemm_secs(int m, int n, int k, int ta, int tb, double min_s) {
  size_t na = (size_t)m * k, nb = (size_t)k * n; /* op(A) is m x k, op(B) k x n */
  gemm_arg g = {m, n, k, ta, tb, malloc(sizeof(float) * na), malloc(sizeof(float) * nb),
                malloc(sizeof(float) * (size_t)m * n)};
  for (size_t i = 0; i < na; i++) g.a[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < nb; i++) g.b[i] = (float)(i % 5) * 0.1f;
  double s = timed(gemm_once, &g, min_s);
  free(g.a), free(g.b), free(g.c);
  return s;
}

/* fit_gemm: h and the asymptotic rate of rate = peak * f(m,h) f(n,h) f(k,h),
 * minimising the relative squared error. */
static void fit_gemm(int ns, const tn_shape *sh, const double *rate, double *h_out, double *peak_out) {
  double best = INFINITY;
  for (double h = 0; h <= 4096; h = h < 1 ? 1 : h * 1.05) {
    double sfr = 0, sff = 0, err = 0;
    for (int i = 0; i < ns; i++) {
      double f = sh[i].m / (sh[i].m + h) * sh[i].n / (sh[i].n + h) * sh[i].k / (sh[i].k + h);
      sfr += f / rate[i], sff += f * f / (rate[i] * rate[i]);
    }
    double peak = sfr / sff;
    for (int i = 0; i < ns; i++) {
      double f = sh[i].m / (sh[i].m + h) * sh[i].n / (sh[i].n + h) * sh[i].k / (sh[i].k + h);
      err += pow((peak * f - rate[i]) / rate[i], 2);
    }
    if (err < best) best = err, *h_out = h, *peak_out = peak;
  }
}

static const tn_shape generic_full[] = {{64, 64, 64},     {128, 128, 128},  {256, 256, 256},   {512, 512, 512},
                                        {1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 1024, 1024}, {1024, 4096, 256},
                                        {256, 1024, 4096}, {32, 4096, 1024}};
static const tn_shape generic_quick[] = {{64, 64, 64}, {128, 128, 128}, {256, 256, 256}, {512, 512, 512}, {64, 512, 256}};
#define NGENERIC(q) ((q) ? 5 : 10)

/* shape_entry: one shape's entry from its three orientations' seconds t */
static double shape_entry(progress *pg, const tn_shape *s, const char *from, const double *t, cJSON *arr) {
  double rate = 6.0 * s->m * s->n * s->k / (t[0] + t[1] + t[2]);
  cJSON *e = cJSON_CreateObject();
  cJSON_AddNumberToObject(e, "m", s->m);
  cJSON_AddNumberToObject(e, "n", s->n);
  cJSON_AddNumberToObject(e, "k", s->k);
  cJSON_AddNumberToObject(e, "seconds", t[0]);
  cJSON_AddNumberToObject(e, "seconds_backward", t[1] + t[2]);
  cJSON_AddNumberToObject(e, "flops_per_s", rate);
  cJSON_AddStringToObject(e, "from", from);
  cJSON_AddItemToArray(arr, e);
  report(pg, "gemm %dx%dx%d (%s): %.2f GFLOP/s", s->m, s->n, s->k, from, rate / 1e9);
  return rate;
}

/* gemm_passes: the seconds of shapes sh[0..n) in their three orientations
 * (forward m x n x k, input gradient m x k x n with B^T, weight gradient
 * k x n x m with A^T) into t[3 i ..]: GEMM_PASSES passes over all of them,
 * a batch of min_s / GEMM_PASSES per orientation and pass, the best of a
 * shape's batches, the slowest rank's. One pass after another rather than
 * one shape's batches back to back: a shared machine slows down for tens of
 * seconds at a time (one calibration measured 25 shapes in a row at half
 * the rate of their neighbours, and the planner then priced tiny GPT-2's
 * micro-batch of 2 a fifth under what its neighbours measured; AMD EPYC, 2
 * cores), and such a spell now meets one of a shape's batches, not all. */
enum { GEMM_PASSES = 3 };
static void gemm_passes(progress *pg, const tn_shape *sh, int n, double min_s, double *t) {
  size_t most = 1;
  for (int i = 0; i < n; i++)
    most = fmax(most, fmax((double)sh[i].m * sh[i].k, fmax((double)sh[i].k * sh[i].n, (double)sh[i].m * sh[i].n)));
  gemm_arg g = {0, 0, 0, 0, 0, malloc(sizeof(float) * most), malloc(sizeof(float) * most),
                malloc(sizeof(float) * most)};
  for (size_t i = 0; i < most; i++) g.a[i] = (float)(i % 7) * 0.1f, g.b[i] = (float)(i % 5) * 0.1f;
  for (int i = 0; i < 3 * n; i++) t[i] = INFINITY;
  for (int p = 0; p < GEMM_PASSES; p++) {
    if (p < GEMM_PASSES - 1) report(pg, "gemm: pass %d of %d over %d shapes", p + 1, GEMM_PASSES, n);
    for (int i = 0; i < n; i++) {
      const tn_shape *s = &sh[i];
      const int o[3][5] = {{s->m, s->n, s->k, 0, 0}, {s->m, s->k, s->n, 0, 1}, {s->k, s->n, s->m, 1, 0}};
      for (int j = 0; j < 3; j++) {
        g.m = o[j][0], g.n = o[j][1], g.k = o[j][2], g.ta = o[j][3], g.tb = o[j][4];
        t[3 * i + j] = fmin(t[3 * i + j], batch(gemm_once, &g, min_s / GEMM_PASSES));
      }
    }
  }
  for (int i = 0; i < 3 * n; i++) t[i] = tn_mpi_max(t[i]);
  free(g.a), free(g.b), free(g.c);
}

/* kept_shapes: base's generic shapes (a calibration's gemm object being
 * extended, --from) copied into arr, with their rates; their count. A
 * model's shapes are measured again (they are that model's). */
static int kept_shapes(const cJSON *base, tn_shape *sh, double *rate, cJSON *arr) {
  const cJSON *e, *all = cJSON_GetObjectItemCaseSensitive(base, "shapes");
  int n = 0;
  cJSON_ArrayForEach(e, all) {
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(e, "from");
    if (!cJSON_IsString(from) || strcmp(from->valuestring, "generic")) continue;
    sh[n] = (tn_shape){cJSON_GetObjectItemCaseSensitive(e, "m")->valueint,
                       cJSON_GetObjectItemCaseSensitive(e, "n")->valueint,
                       cJSON_GetObjectItemCaseSensitive(e, "k")->valueint};
    rate[n++] = cJSON_GetObjectItemCaseSensitive(e, "flops_per_s")->valuedouble;
    cJSON_AddItemToArray(arr, cJSON_Duplicate(e, true));
  }
  return n;
}

/* measure_gemm: the gemm object: the generic shapes (measured, or kept
 * from base, a calibration's gemm object, when not NULL) and the model's
 * (o->shapes, measured), with the planner's model fitted over them all */
static cJSON *measure_gemm(progress *pg, double min_s, const cJSON *base) {
  const tn_opts *o = pg->o;
  int ng = base ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(base, "shapes")) : NGENERIC(o->quick);
  tn_shape *sh = malloc(sizeof *sh * (size_t)(ng + o->nshapes + 1));
  double *rate = malloc(sizeof *rate * (size_t)(ng + o->nshapes + 1));
  cJSON *g = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(g, "shapes");
  if (base) ng = kept_shapes(base, sh, rate, arr);
  else memcpy(sh, o->quick ? generic_quick : generic_full, sizeof *sh * (size_t)ng);
  if (o->nshapes) memcpy(sh + ng, o->shapes, sizeof *sh * (size_t)o->nshapes);
  int ns = ng + o->nshapes, first = base ? ng : 0;
  double *t = malloc(sizeof *t * 3 * (size_t)(ns - first + 1));
  gemm_passes(pg, sh + first, ns - first, min_s, t);
  for (int i = first; i < ns; i++) rate[i] = shape_entry(pg, &sh[i], i < ng ? "generic" : "model", t + 3 * (i - first), arr);
  free(t);
  double h = 0, peak = 0;
  fit_gemm(ns, sh, rate, &h, &peak);
  cJSON_AddStringToObject(g, "dtype", "f32");
  if (o->model) cJSON_AddStringToObject(g, "model", o->model);
  cJSON_AddNumberToObject(g, "half_dim", round(h * 10) / 10);
  cJSON_AddNumberToObject(g, "fit_peak_flops_per_s", peak);
  double dev = o->peak_flops; /* the device's peak; a relative base's: its asymptote over its eff_max */
  const cJSON *em = base ? cJSON_GetObjectItemCaseSensitive(base, "eff_max") : NULL,
              *fp = base ? cJSON_GetObjectItemCaseSensitive(base, "fit_peak_flops_per_s") : NULL;
  if (cJSON_IsNumber(em) && cJSON_IsNumber(fp) && em->valuedouble > 0) dev = fp->valuedouble / em->valuedouble;
  if (dev > 0) cJSON_AddNumberToObject(g, "eff_max", fmin(1.0, fmax(0.01, peak / dev)));
  free(sh), free(rate);
  return g;
}

typedef struct {
  size_t n;
  float *a, *b, *c;
  int triad;
} stream_arg;

static void stream_once(void *p) {
  stream_arg *s = p;
  if (s->triad)
    for (size_t i = 0; i < s->n; i++) s->a[i] = s->b[i] + 3.0f * s->c[i];
  else
    memcpy(s->a, s->b, s->n * sizeof(float));
}

/* stream: bytes per second of copy (triad 0) or triad over arrays of n floats */
static double stream(size_t n, int triad, double min_s) {
  stream_arg s = {n, malloc(n * sizeof(float)), malloc(n * sizeof(float)), malloc(n * sizeof(float)), triad};
  for (size_t i = 0; i < n; i++) s.a[i] = 0, s.b[i] = 1.0f, s.c[i] = 2.0f;
  double bw = (triad ? 3.0 : 2.0) * n * sizeof(float) / timed(stream_once, &s, min_s);
  free(s.a), free(s.b), free(s.c);
  return bw;
}

static cJSON *measure_memory(progress *pg, double min_s) {
  size_t n = (pg->o->quick ? 8u : 16u) << 20, kn = 1u << 20; /* floats: 32/64 MiB arrays; 4 MiB */
  double copy = stream(n, 0, min_s);
  report(pg, "memory copy: %.2f GB/s", copy / 1e9);
  double triad = stream(n, 1, min_s);
  report(pg, "memory triad: %.2f GB/s", triad / 1e9);
  double kern = stream(kn, 1, min_s);
  report(pg, "elementwise kernel (4 MiB arrays): %.2f GB/s", kern / 1e9);
  cJSON *m = cJSON_CreateObject();
  cJSON_AddNumberToObject(m, "copy_bytes_per_s", copy);
  cJSON_AddNumberToObject(m, "triad_bytes_per_s", triad);
  cJSON_AddNumberToObject(m, "array_bytes", (double)(n * sizeof(float)));
  cJSON_AddNumberToObject(m, "kernel_bytes_per_s", kern);
  cJSON_AddNumberToObject(m, "kernel_array_bytes", (double)(kn * sizeof(float)));
  if (pg->o->peak_bw > 0)
    cJSON_AddNumberToObject(m, "bandwidth_eff", fmin(1.0, fmax(0.01, fmax(copy, triad) / pg->o->peak_bw)));
  return m;
}

static double measure_overhead(progress *pg, double min_s) {
  double secs = gemm_secs(1, 1, 1, 0, 0, min_s);
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

int tn_write_json(const void *json, const char *path) {
  const cJSON *j = json;
  char *s = cJSON_Print(j);
  FILE *out = path ? fopen(path, "w") : stdout;
  int rc = !out || fprintf(out, "%s\n", s) < 0;
  if (!out) sbpc_error("cannot write '%s'", path);
  if (out && path && fclose(out)) rc = 1;
  free(s);
  return rc;
}

/* extended: the calibration at path (checked by the one reader already),
 * less what extending it measures again: its gemm object (moved to *gemm:
 * its generic shapes are kept), the executor section and the attention
 * efficiency the probe measured (another model's); NULL if unreadable */
static cJSON *extended(const char *path, cJSON **gemm, int *quick) {
  size_t len;
  char *txt = read_file(path, 1 << 20, &len);
  cJSON *j = txt ? cJSON_ParseWithLength(txt, len) : NULL;
  free(txt);
  const cJSON *rk = cJSON_GetObjectItemCaseSensitive(j, "ranks"), *tool = cJSON_GetObjectItemCaseSensitive(j, "tool");
  int ranks = cJSON_IsNumber(rk) ? rk->valueint : 1;
  if (!cJSON_IsObject(j) || ranks != tn_launched_ranks()) {
    if (cJSON_IsObject(j)) sbpc_error("tune: '%s' was measured on %d rank(s) and this tune runs on %d: extend it on as many "
                      "(mpirun -np %d sbpc tune --from ...)", path, ranks, tn_launched_ranks(), ranks);
    else sbpc_error("tune: cannot read the calibration '%s'", path);
    cJSON_Delete(j);
    return NULL;
  }
  *quick |= cJSON_IsString(tool) && !strcmp(tool->valuestring, "sbpc tune --quick"); /* the probe as quick */
  *gemm = cJSON_DetachItemFromObjectCaseSensitive(j, "gemm");
  cJSON_DeleteItemFromObjectCaseSensitive(j, "executor");
  cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "attention");
  if (cJSON_IsObject(at)) cJSON_DeleteItemFromObjectCaseSensitive(at, "flash_eff");
  return j;
}

/* header: what a calibration says of itself, and the per-call cost */
static void header(cJSON *j, progress *pg, int nranks, double min_s) {
  const tn_opts *o = pg->o;
  cJSON_AddStringToObject(j, "format", "sbpc-calibration");
  cJSON_AddNumberToObject(j, "version", 1);
  cJSON_AddStringToObject(j, "tool", o->quick ? "sbpc tune --quick" : "sbpc tune");
  cJSON_AddItemToObject(j, "host", host());
  cJSON_AddNumberToObject(j, "ranks", nranks);
  /* the CPU executor's fixed reserve: none; it allocates the compiled
   * program's arenas and nothing else (docs/runtime.md) */
  cJSON_AddNumberToObject(j, "workspace_bytes", 0);
  cJSON_AddNumberToObject(j, "kernel_overhead_s", measure_overhead(pg, min_s));
}

int tn_measure(const tn_opts *opts, const char *path) {
  tn_opts oo = *opts, *o = &oo;
  cJSON *base_gemm = NULL, *j = o->from ? extended(o->from, &base_gemm, &o->quick) : cJSON_CreateObject();
  bool probe = o->model && o->run_program;
  /* overhead, gemm passes, gemms, memory (3), probe, done; extending: the model's gemms, probe, done */
  progress pg = {o, 0, 0, (o->from ? 0 : 1 + NGENERIC(o->quick) + 3) + GEMM_PASSES - 1 + o->nshapes + probe + 1};
  double min_s = o->quick ? 0.03 : 0.3;
  int nranks = 1;
  pg.rank = j ? tn_mpi_start(o->from ? NULL : j, o, &nranks) : -1; /* collectives first */
  if (pg.rank < 0) {
    cJSON_Delete(j), cJSON_Delete(base_gemm);
    return 1;
  }
  if (!o->from) header(j, &pg, nranks, min_s);
  cJSON_AddItemToObject(j, "gemm", measure_gemm(&pg, min_s, base_gemm));
  cJSON_Delete(base_gemm);
  if (!o->from) cJSON_AddItemToObject(j, "memory", measure_memory(&pg, min_s));
  if (probe) {
    report(&pg, "executor probe: the model's reference program");
    tn_probe(o, j, pg.rank, nranks); /* last: the executor finalizes MPI */
  }
  pg.step = pg.steps - 1;
  report(&pg, "done");
  int rc = pg.rank == 0 ? tn_write_json(j, path) : 0;
  cJSON_Delete(j);
  tn_mpi_finalize();
  return rc;
}
