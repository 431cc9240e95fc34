/* bench_gpu.c — the GPU check (run by bench/gpu_check.sh; in `make bench` it
 * exits 0 with a message when no GPU is found).
 *
 * Uses the CUDA driver API opened with dlopen (libcuda.so.1) and the PTX that
 * sbpc makes through NVRTC for the device's compute capability:
 *  1. correctness: every fused row kernel of a GPT-2 block (f32) and of the
 *     other patterns (cross-entropy fwd+bwd, causal softmax, rms_norm, swiglu,
 *     AdamW) on random inputs, against the same kernel JIT-compiled for the
 *     CPU (which the CPU tests check against plain C references); attention
 *     forward and backward (fused qkv, GQA 8/2 heads, causal) on a packed
 *     varlen batch against the CPU attention kernels;
 *  2. bandwidth: fused layer-norm and bias+GELU in bf16 (GPT-2 widths, 32768
 *     tokens) against a float4 copy kernel;
 *  3. attention throughput: varlen (cu_seqlens) versus padded to the longest
 *     sequence, on a long-tailed batch of lengths;
 *  4. the device's peaks the GPU check divides by: HBM bandwidth from the
 *     memory clock and bus width (every bandwidth above is also given as a
 *     fraction of it) and cuBLAS's bf16 GEMM rate on 8192^3 (through the
 *     runtime's device layer, runtime/cuda.h), written to OUTDIR/peaks.txt.
 * usage: bench_gpu [OUTDIR]  — writes OUTDIR/gpu_results.md when given. */
#include "codegen/cg.h"
#include "runtime/cuda.h"
#include "tests/support/fixtures.h"
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUevent_st *CUevent;

static struct {
  CUresult (*init)(unsigned);
  CUresult (*dev_get)(CUdevice *, int);
  CUresult (*dev_count)(int *);
  CUresult (*dev_name)(char *, int, CUdevice);
  CUresult (*dev_attr)(int *, int, CUdevice);
  CUresult (*ctx_create)(CUcontext *, unsigned, CUdevice);
  CUresult (*ctx_sync)(void);
  CUresult (*mod_load)(CUmodule *, const void *);
  CUresult (*mod_fn)(CUfunction *, CUmodule, const char *);
  CUresult (*alloc)(CUdeviceptr *, size_t);
  CUresult (*free_)(CUdeviceptr);
  CUresult (*h2d)(CUdeviceptr, const void *, size_t);
  CUresult (*d2h)(void *, CUdeviceptr, size_t);
  CUresult (*memset8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **,
                     void **);
  CUresult (*ev_create)(CUevent *, unsigned);
  CUresult (*ev_record)(CUevent, void *);
  CUresult (*ev_sync)(CUevent);
  CUresult (*ev_elapsed)(float *, CUevent, CUevent);
} cu;

static FILE *out;
static int failures;
static double hbm_peak; /* bytes/s: 2 x memory clock x bus width */

#define CK(x)                                                              \
  do {                                                                     \
    CUresult r_ = (x);                                                     \
    if (r_) {                                                              \
      fprintf(stderr, "bench_gpu: %s failed (%d) at line %d\n", #x, r_, __LINE__); \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (out) {
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
  }
}

static bool load_cuda(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  struct { void **p; const char *n; } s[] = {
      {(void **)&cu.init, "cuInit"}, {(void **)&cu.dev_get, "cuDeviceGet"},
      {(void **)&cu.dev_count, "cuDeviceGetCount"}, {(void **)&cu.dev_name, "cuDeviceGetName"},
      {(void **)&cu.dev_attr, "cuDeviceGetAttribute"}, {(void **)&cu.ctx_create, "cuCtxCreate_v2"},
      {(void **)&cu.ctx_sync, "cuCtxSynchronize"}, {(void **)&cu.mod_load, "cuModuleLoadData"},
      {(void **)&cu.mod_fn, "cuModuleGetFunction"}, {(void **)&cu.alloc, "cuMemAlloc_v2"},
      {(void **)&cu.free_, "cuMemFree_v2"}, {(void **)&cu.h2d, "cuMemcpyHtoD_v2"},
      {(void **)&cu.d2h, "cuMemcpyDtoH_v2"}, {(void **)&cu.memset8, "cuMemsetD8_v2"},
      {(void **)&cu.launch, "cuLaunchKernel"}, {(void **)&cu.ev_create, "cuEventCreate"},
      {(void **)&cu.ev_record, "cuEventRecord"}, {(void **)&cu.ev_sync, "cuEventSynchronize"},
      {(void **)&cu.ev_elapsed, "cuEventElapsedTime"}};
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
    if (!(*s[i].p = dlsym(h, s[i].n))) return false;
  int n = 0;
  return cu.init(0) == 0 && cu.dev_count(&n) == 0 && n > 0;
}

static int arch;

static CUmodule module(const char *src, const char *name) {
  char *log = NULL;
  char *ptx = cg_nvrtc_ptx(src, name, arch, &log);
  if (!ptx) {
    fprintf(stderr, "NVRTC failed on %s:\n%s\n", name, log);
    exit(1);
  }
  CUmodule m;
  CK(cu.mod_load(&m, ptx));
  free(ptx);
  free(log);
  return m;
}

static double urand(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return ((*s >> 8) & 0xffffff) / 16777216.0;
}

/* ---- 1. row kernels: GPU vs CPU JIT ------------------------------------- */
static double maxrel(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + 1e-2);
    if (!(e <= m)) m = e;
  }
  return m;
}

static size_t buf_elems(const cg_buf *b, int64_t rows, int64_t cols) {
  return b->shape == CG_SH_ROWS ? (size_t)(rows * cols) : b->shape == CG_SH_COLS ? (size_t)cols
       : b->shape == CG_SH_ROW1 ? (size_t)rows : 1;
}

/* launch_row: run row kernel fn with device buffers d on rows x cols. */
static void launch_row(const cg_kernel *k, CUfunction fn, CUdeviceptr *d, long long rows, long long cols, float *sc) {
  void *args[CG_MAXBUF + 2 + CG_MAXSCALAR];
  int n = 0;
  for (int i = 0; i < k->nbuf; i++) args[n++] = &d[i];
  args[n++] = &rows;
  args[n++] = &cols;
  for (int i = 0; i < k->nscalar; i++) args[n++] = &sc[i];
  int64_t grid;
  int block;
  cg_cuda_launch(k, rows, cols, &grid, &block);
  CK(cu.launch(fn, (unsigned)grid, 1, 1, (unsigned)block, 1, 1, 0, NULL, args, NULL));
}

static void check_row(cg_kernel *k, int64_t rows, int64_t cols) {
  char why[512];
  cg_jit *j = cg_jit_compile(&k, 1, why, sizeof why);
  if (!j) {
    say("| %s | CPU JIT failed: %s |\n", k->name, why);
    failures++;
    return;
  }
  cg_kfn cpu = cg_jit_kernel(j, k->name);
  char *src = cg_emit_cuda(k);
  CUmodule m = module(src, k->name);
  free(src);
  CUfunction fn;
  CK(cu.mod_fn(&fn, m, k->name));
  void *h[CG_MAXBUF];
  float *g[CG_MAXBUF];
  CUdeviceptr d[CG_MAXBUF];
  unsigned s = 99;
  bool adam = strstr(k->ops, "adamw") != NULL;
  for (int i = 0; i < k->nbuf; i++) {
    size_t n = buf_elems(&k->buf[i], rows, cols);
    h[i] = calloc(n, 4);
    g[i] = calloc(n, 4);
    if (k->buf[i].role == CG_IN)
      for (size_t x = 0; x < n; x++) {
        if (k->buf[i].dtype == IR_I32) ((int32_t *)h[i])[x] = (int32_t)(urand(&s) * (double)cols);
        else ((float *)h[i])[x] = (float)(adam ? 0.05 + urand(&s) : 4 * urand(&s) - 2); /* v >= 0 */
      }
    CK(cu.alloc(&d[i], n * 4));
    CK(cu.h2d(d[i], h[i], n * 4));
  }
  float sc[CG_MAXSCALAR];
  for (int i = 0; i < k->nscalar; i++) sc[i] = k->scalar_default[i] != 0 ? k->scalar_default[i] : 0.25f + i;
  launch_row(k, fn, d, rows, cols, sc);
  CK(cu.ctx_sync());
  int64_t dims[2] = {rows, cols};
  cpu(h, dims, sc);
  double worst = 0;
  for (int i = 0; i < k->nbuf; i++) {
    if (k->buf[i].role == CG_IN) continue;
    size_t n = buf_elems(&k->buf[i], rows, cols);
    CK(cu.d2h(g[i], d[i], n * 4));
    double e = maxrel(g[i], h[i], n);
    if (!(e <= worst)) worst = e;
  }
  bool ok = worst <= 1e-4;
  failures += !ok;
  say("| %s | %s | %lldx%lld | %.2e | %s |\n", k->name, k->ops, (long long)rows, (long long)cols, worst,
      ok ? "ok" : "FAIL");
  for (int i = 0; i < k->nbuf; i++) {
    free(h[i]);
    free(g[i]);
    cu.free_(d[i]);
  }
  cg_jit_free(j);
}

static void check_rows(ir_graph *g) {
  arena *a = arena_new();
  cg_fusion *f = cg_fuse(g, IR_F32, a);
  for (int i = 0; i < f->n; i++) {
    cg_kernel *k = f->g[i].k;
    if (!k || k->kind != CG_K_ROW) continue;
    check_row(k, 37, k->cols);
    if (k->cols % 4 == 0) check_row(k, 5, k->cols + 1); /* the non-vectorised path */
  }
  arena_free(a);
}


/* ---- 2. bandwidth ---------------------------------------------------------- */
static const char *copy_src =
    "extern \"C\" __global__ void copy4(const float4 *a, float4 *b, long long n) {\n"
    "  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)\n"
    "    b[i] = a[i]; }\n";

static double time_ms(void (*fn)(void *), void *arg, int reps) {
  CUevent e0, e1;
  CK(cu.ev_create(&e0, 0));
  CK(cu.ev_create(&e1, 0));
  fn(arg);
  CK(cu.ctx_sync());
  CK(cu.ev_record(e0, NULL));
  for (int i = 0; i < reps; i++) fn(arg);
  CK(cu.ev_record(e1, NULL));
  CK(cu.ev_sync(e1));
  float ms = 0;
  CK(cu.ev_elapsed(&ms, e0, e1));
  return ms / reps;
}

typedef struct {
  CUfunction fn;
  CUdeviceptr a, b;
  long long n;
  const cg_kernel *k;
  CUdeviceptr d[CG_MAXBUF];
  long long rows, cols;
  float sc[CG_MAXSCALAR];
} job;

static void run_copy(void *p) {
  job *j = p;
  void *args[3] = {&j->a, &j->b, &j->n};
  CK(cu.launch(j->fn, 132 * 16, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
}

static void run_kernel(void *p) {
  job *j = p;
  launch_row(j->k, j->fn, j->d, j->rows, j->cols, j->sc);
}

static double copy_bw(void) {
  job j = {0};
  CUmodule m = module(copy_src, "copy4");
  CK(cu.mod_fn(&j.fn, m, "copy4"));
  size_t bytes = (size_t)1 << 30;
  j.n = (long long)(bytes / 16);
  CK(cu.alloc(&j.a, bytes));
  CK(cu.alloc(&j.b, bytes));
  CK(cu.memset8(j.a, 0, bytes));
  double ms = time_ms(run_copy, &j, 20);
  cu.free_(j.a);
  cu.free_(j.b);
  return 2.0 * (double)bytes / (ms * 1e-3);
}

static void bandwidth(void) {
  double cbw = copy_bw();
  say("\n## Bandwidth (bf16 activations, 32768 tokens; HBM peak %.0f GB/s from the memory clock and bus width)\n\n"
      "| kernel | ops | GB/s | of copy | of HBM peak |\n|---|---|---|---|---|\n", hbm_peak / 1e9);
  say("| copy4 | float4 copy, 1 GiB | %.0f | 100%% | %.0f%% |\n", cbw / 1e9, 100 * cbw / hbm_peak);
  ir_graph *g = fx_gpt2_block(768, 12, 32768);
  arena *a = arena_new();
  cg_fusion *f = cg_fuse(g, IR_BF16, a);
  for (int i = 0; i < f->n; i++) {
    cg_kernel *k = f->g[i].k;
    if (!k || k->kind != CG_K_ROW) continue;
    if (strcmp(k->ops, "layer_norm") && strcmp(k->ops, "bias_add+gelu") &&
        strcmp(k->ops, "bias_add+dropout+add+layer_norm"))
      continue;
    job j = {0};
    j.k = k;
    j.rows = k->rows, j.cols = k->cols;
    char *src = cg_emit_cuda(k);
    CUmodule m = module(src, k->name);
    free(src);
    CK(cu.mod_fn(&j.fn, m, k->name));
    for (int b = 0; b < k->nbuf; b++) {
      size_t n = buf_elems(&k->buf[b], j.rows, j.cols) * (size_t)ir_dtype_size((ir_dtype)k->buf[b].dtype);
      CK(cu.alloc(&j.d[b], n));
      CK(cu.memset8(j.d[b], 0x3c, n));
    }
    for (int s = 0; s < k->nscalar; s++) j.sc[s] = 0.5f;
    double ms = time_ms(run_kernel, &j, 20);
    double bw = cg_k_bytes(k) / (ms * 1e-3);
    say("| %s | %s | %.0f | %.0f%% | %.0f%% |\n", k->name, k->ops, bw / 1e9, 100 * bw / cbw, 100 * bw / hbm_peak);
    for (int b = 0; b < k->nbuf; b++) cu.free_(j.d[b]);
  }
  arena_free(a);
  ir_graph_free(g);
}

/* ---- 3. attention ------------------------------------------------------------ */
enum { AH = 8, AKV = 2, AD = 64 };

typedef struct {
  CUfunction f[4];
  CUdeviceptr qkv, o, lse, cu, dout, delta, dqkv;
  long long ntok, qs, os;
  int nseq, maxlen;
  const cg_kernel *kf;
} attn_job;

static void run_attn_fwd(void *p) {
  attn_job *j = p;
  CUdeviceptr q = j->qkv, k = j->qkv + AH * AD * 4, v = j->qkv + (AH + AKV) * AD * 4;
  void *args[] = {&q, &k, &v, &j->o, &j->lse, &j->cu, &j->ntok, &j->qs, &j->qs, &j->os};
  CK(cu.launch(j->f[0], (unsigned)((j->maxlen + 63) / 64), AH, (unsigned)j->nseq, 64, 1, 1, 0, NULL, args, NULL));
}

static void run_attn_bwd(void *p) {
  attn_job *j = p;
  CUdeviceptr q = j->qkv, k = j->qkv + AH * AD * 4, v = j->qkv + (AH + AKV) * AD * 4;
  CUdeviceptr dq = j->dqkv, dk = j->dqkv + AH * AD * 4, dv = j->dqkv + (AH + AKV) * AD * 4;
  void *args[] = {&q, &k, &v, &j->o, &j->dout, &j->lse, &j->delta, &dq, &dk, &dv, &j->cu, &j->ntok, &j->qs, &j->qs, &j->os};
  unsigned tiles = (unsigned)((j->maxlen + 63) / 64), bk = (unsigned)cg_attn_bk(AD);
  CK(cu.launch(j->f[1], (unsigned)((j->ntok + 127) / 128), AH, 1, 128, 1, 1, 0, NULL, args, NULL));
  CK(cu.launch(j->f[2], (unsigned)(j->maxlen + bk - 1) / bk, AKV, (unsigned)j->nseq, bk, 1, 1, 0, NULL, args, NULL));
  CK(cu.launch(j->f[3], tiles, AH, (unsigned)j->nseq, 64, 1, 1, 0, NULL, args, NULL));
}

/* attn_setup: device buffers for a batch with the given cu_seqlens. */
static void attn_setup(attn_job *j, const int *cuv, int nseq, int maxlen, const float *qkv, const float *dout) {
  j->nseq = nseq, j->maxlen = maxlen, j->ntok = cuv[nseq];
  j->qs = (AH + 2 * AKV) * AD, j->os = AH * AD;
  size_t nq = (size_t)(j->ntok * j->qs), no = (size_t)(j->ntok * j->os);
  CK(cu.alloc(&j->qkv, nq * 4));
  CK(cu.alloc(&j->dqkv, nq * 4));
  CK(cu.alloc(&j->o, no * 4));
  CK(cu.alloc(&j->dout, no * 4));
  CK(cu.alloc(&j->lse, (size_t)(AH * j->ntok) * 4));
  CK(cu.alloc(&j->delta, (size_t)(AH * j->ntok) * 4));
  CK(cu.alloc(&j->cu, (size_t)(nseq + 1) * 4));
  CK(cu.h2d(j->cu, cuv, (size_t)(nseq + 1) * 4));
  if (qkv) CK(cu.h2d(j->qkv, qkv, nq * 4));
  else CK(cu.memset8(j->qkv, 0x3c, nq * 4));
  if (dout) CK(cu.h2d(j->dout, dout, no * 4));
  else CK(cu.memset8(j->dout, 0x3c, no * 4));
}

static void attn_free(attn_job *j) {
  CUdeviceptr *p[] = {&j->qkv, &j->dqkv, &j->o, &j->dout, &j->lse, &j->delta, &j->cu};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cu.free_(*p[i]);
}

static void attn_functions(attn_job *j, cg_kernel *kf, cg_kernel *kb) {
  char *s = cg_emit_cuda(kf);
  CUmodule mf = module(s, kf->name);
  free(s);
  s = cg_emit_cuda(kb);
  CUmodule mb = module(s, kb->name);
  free(s);
  char nm[256];
  CK(cu.mod_fn(&j->f[0], mf, kf->name));
  const char *sfx[] = {"_pre", "_dkdv", "_dq"};
  for (int i = 0; i < 3; i++) {
    snprintf(nm, sizeof nm, "%s%s", kb->name, sfx[i]);
    CK(cu.mod_fn(&j->f[i + 1], mb, nm));
  }
}

static void attn_correct(cg_kernel *kf, cg_kernel *kb) {
  static const int lens[] = {1, 17, 64, 130, 3, 300};
  int nseq = 6, cuv[7] = {0}, maxlen = 300;
  for (int i = 0; i < nseq; i++) cuv[i + 1] = cuv[i] + lens[i];
  int T = cuv[nseq];
  size_t nq = (size_t)T * (AH + 2 * AKV) * AD, no = (size_t)T * AH * AD;
  float *qkv = malloc(nq * 4), *dout = malloc(no * 4), *o = calloc(no, 4), *lse = calloc((size_t)(AH * T), 4);
  float *dqkv = calloc(nq, 4), *go = calloc(no, 4), *gl = calloc((size_t)(AH * T), 4), *gd = calloc(nq, 4);
  unsigned s = 5;
  for (size_t i = 0; i < nq; i++) qkv[i] = (float)(2 * urand(&s) - 1);
  for (size_t i = 0; i < no; i++) dout[i] = (float)(urand(&s) - 0.5);
  cg_kernel *ks[2] = {kf, kb};
  char why[512];
  cg_jit *jit = cg_jit_compile(ks, 2, why, sizeof why);
  if (!jit) {
    say("attention: CPU JIT failed: %s\n", why);
    failures++;
    return;
  }
  int64_t dims[5] = {T, nseq, (AH + 2 * AKV) * AD, (AH + 2 * AKV) * AD, AH * AD};
  void *fb[6] = {qkv, qkv + AH * AD, qkv + (AH + AKV) * AD, o, lse, cuv};
  cg_jit_kernel(jit, kf->name)(fb, dims, NULL);
  void *bb[10] = {qkv, qkv + AH * AD, qkv + (AH + AKV) * AD, o, dout, lse, dqkv, dqkv + AH * AD, dqkv + (AH + AKV) * AD, cuv};
  cg_jit_kernel(jit, kb->name)(bb, dims, NULL);
  attn_job j = {0};
  attn_functions(&j, kf, kb);
  attn_setup(&j, cuv, nseq, maxlen, qkv, dout);
  run_attn_fwd(&j);
  run_attn_bwd(&j);
  CK(cu.ctx_sync());
  CK(cu.d2h(go, j.o, no * 4));
  CK(cu.d2h(gl, j.lse, (size_t)(AH * T) * 4));
  CK(cu.d2h(gd, j.dqkv, nq * 4));
  double e[3] = {0, 0, 0};
  for (size_t i = 0; i < no; i++) e[0] = fmax(e[0], fabs(go[i] - o[i]) / (fabs(o[i]) + 1e-2));
  for (int i = 0; i < AH * T; i++) e[1] = fmax(e[1], fabs(gl[i] - lse[i]) / (fabs(lse[i]) + 1e-2));
  for (size_t i = 0; i < nq; i++) e[2] = fmax(e[2], fabs(gd[i] - dqkv[i]) / (fabs(dqkv[i]) + 1e-2));
  bool ok = e[0] <= 1e-4 && e[1] <= 1e-4 && e[2] <= 1e-4;
  failures += !ok;
  say("| attention fwd+bwd (8 q / 2 kv heads, d 64, causal, lengths 1..300) | out %.1e, lse %.1e, dqkv %.1e | %s |\n",
      e[0], e[1], e[2], ok ? "ok" : "FAIL");
  attn_free(&j);
  cg_jit_free(jit);
  free(qkv), free(dout), free(o), free(lse), free(dqkv), free(go), free(gl), free(gd);
}

/* attn_speed: long-tailed lengths (Pareto-like), varlen vs padded. */
static void attn_speed(cg_kernel *kf, cg_kernel *kb) {
  enum { N = 48 };
  int lens[N], cuv[N + 1] = {0}, cup[N + 1] = {0}, maxlen = 0;
  unsigned s = 11;
  for (int i = 0; i < N; i++) {
    double u = urand(&s);
    lens[i] = (int)fmin(4096, 128 / pow(1 - u * 0.999, 0.8));
    if (lens[i] > maxlen) maxlen = lens[i];
    cuv[i + 1] = cuv[i] + lens[i];
  }
  for (int i = 0; i < N; i++) cup[i + 1] = cup[i] + maxlen;
  attn_job v = {0}, p = {0};
  attn_functions(&v, kf, kb);
  memcpy(p.f, v.f, sizeof v.f);
  attn_setup(&v, cuv, N, maxlen, NULL, NULL);
  attn_setup(&p, cup, N, maxlen, NULL, NULL);
  double vf = time_ms(run_attn_fwd, &v, 5), pf = time_ms(run_attn_fwd, &p, 5);
  double vb = time_ms(run_attn_bwd, &v, 3), pb = time_ms(run_attn_bwd, &p, 3);
  say("\n## Attention: varlen vs padded (48 sequences, %d tokens, longest %d, padded %d tokens; 8 q / 2 kv heads, d 64, causal, f32)\n\n",
      cuv[N], maxlen, cup[N]);
  say("| | varlen ms | padded ms | speedup |\n|---|---|---|---|\n");
  say("| forward | %.2f | %.2f | %.2fx |\n| backward | %.2f | %.2f | %.2fx |\n", vf, pf, pf / vf, vb, pb, pb / vb);
  attn_free(&v);
  attn_free(&p);
}

static void attention(void) {
  arena *a = arena_new();
  cg_attn at = {AH, AKV, AD, true, 0.125f, IR_F32};
  cg_kernel *kf = cg_k_attn(a, "attn_f", CG_K_ATTN_FWD, at), *kb = cg_k_attn(a, "attn_b", CG_K_ATTN_BWD, at);
  say("\n## Attention correctness (GPU vs CPU kernels)\n\n| case | max rel err | |\n|---|---|---|\n");
  attn_correct(kf, kb);
  attn_speed(kf, kb);
  arena_free(a);
}

/* ---- 4. cuBLAS's bf16 GEMM rate --------------------------------------------- */
static rt_hnd blas_h;

static void run_gemm(void *p) {
  CUdeviceptr *b = p;
  float one = 1.0f, zero = 0.0f;
  int n = 8192;
  int r = rt_cu.blasGemmStridedBatchedEx(blas_h, RT_CUBLAS_OP_N, RT_CUBLAS_OP_N, n, n, n, &one,
                                         (void *)(uintptr_t)b[0], RT_CUDA_R_16BF, n, 0, (void *)(uintptr_t)b[1],
                                         RT_CUDA_R_16BF, n, 0, &zero, (void *)(uintptr_t)b[2], RT_CUDA_R_16BF, n, 0, 1,
                                         RT_CUBLAS_COMPUTE_32F, RT_CUBLAS_GEMM_DEFAULT);
  if (r) fprintf(stderr, "bench_gpu: cuBLAS GEMM failed (%d)\n", r), exit(1);
}

static double gemm_peak(void) {
  char why[512];
  if (!rt_cu_load(why, sizeof why) || !rt_cublas_load(why, sizeof why)) {
    say("\nGEMM peak: not measured (%s)\n", why);
    return 0;
  }
  CUdeviceptr b[3] = {0};
  size_t bytes = (size_t)8192 * 8192 * 2;
  for (int i = 0; i < 3; i++) {
    CK(cu.alloc(&b[i], bytes));
    CK(cu.memset8(b[i], 0x3c, bytes));
  }
  if (rt_cu.blasCreate(&blas_h)) return say("\nGEMM peak: cublasCreate failed\n"), 0;
  double ms = time_ms(run_gemm, b, 10), rate = 2.0 * 8192.0 * 8192.0 * 8192.0 / (ms * 1e-3);
  say("\n## cuBLAS bf16 GEMM 8192^3 (f32 accumulate)\n\n%.1f TFLOP/s (%.2f ms)\n", rate / 1e12, ms);
  rt_cu.blasDestroy(blas_h);
  for (int i = 0; i < 3; i++) cu.free_(b[i]);
  return rate;
}

int main(int argc, char **argv) {
  if (!load_cuda()) {
    printf("bench_gpu: no GPU found (libcuda.so.1 / cuInit / devices): skipped\n");
    return 0;
  }
  int ma = 0, mi = 0;
  if (!cg_nvrtc_available(&ma, &mi)) {
    printf("bench_gpu: NVRTC not found: skipped\n");
    return 0;
  }
  CUdevice dev;
  CUcontext ctx;
  char name[256];
  int cmaj = 0, cmin = 0;
  CK(cu.dev_get(&dev, 0));
  CK(cu.dev_name(name, sizeof name, dev));
  CK(cu.dev_attr(&cmaj, 75, dev)); /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
  CK(cu.dev_attr(&cmin, 76, dev));
  CK(cu.ctx_create(&ctx, 0, dev));
  arch = cmaj * 10 + cmin;
  int mclk = 0, bus = 0;
  cu.dev_attr(&mclk, 36, dev); /* CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, kHz */
  cu.dev_attr(&bus, 37, dev);  /* CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, bits */
  hbm_peak = 2.0 * mclk * 1e3 * bus / 8.0;
  if (hbm_peak <= 0) hbm_peak = 1;
  if (arch > 90) arch = 90;
  if (argc > 1) {
    char path[4096];
    snprintf(path, sizeof path, "%s/gpu_results.md", argv[1]);
    out = fopen(path, "w");
  }
  say("# sbpc GPU check: %s (sm_%d%d), NVRTC %d.%d, PTX for compute_%d\n\n", name, cmaj, cmin, ma, mi, arch);
  say("## Row kernels (GPU vs CPU JIT, f32)\n\n| kernel | ops | shape | max rel err | |\n|---|---|---|---|---|\n");
  ir_graph *g = fx_gpt2_block(768, 12, 64);
  check_rows(g);
  ir_graph_free(g);
  g = fx_extras(64);
  check_rows(g);
  ir_graph_free(g);
  attention();
  bandwidth();
  double gp = gemm_peak();
  if (argc > 1) {
    char path[4096];
    snprintf(path, sizeof path, "%s/peaks.txt", argv[1]);
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "hbm_bytes_per_s %.6g\ngemm_bf16_flops %.6g\ndevice %s\n", hbm_peak, gp, name), fclose(f);
  }
  say("\nfailures: %d\n", failures);
  if (out) fclose(out);
  return failures ? 1 : 0;
}

