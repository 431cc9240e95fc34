/* bench_cg.c — CPU codegen benchmark: the fused elementwise and row-reduction
 * work of one GPT-2 small block (forward and backward: layer norms, bias adds,
 * GELU and its gradient, dropout and its gradient, residual adds) as the
 * fused kernels sbpc generates, versus the same ops unfused (every op its own
 * JIT kernel, every intermediate written to and read back from memory), and
 * the achieved bandwidth of the fused kernels versus a plain memory-copy loop
 * on the same machine. GEMMs, attention and the column reductions are not
 * part of either side. One thread; minimum over 15 interleaved repetitions.
 *
 * usage: bench_cg [TOKENS [-v]] (default 4096: two sequences of 2048; -v: per
 * kernel times) */
#include "codegen/cg.h"
#include "tests/support/fixtures.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
  cg_jit *jit;
  cg_kfn fn[256];
  void **bufs[256];
  cg_kernel *k[256];
  int n;
  double bytes;
} set;

/* prepare: JIT the row kernels of fusion f; bind buffers per tensor. */
static bool prepare(set *s, const ir_graph *g, cg_fusion *f, float **tb) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < f->n && s->n < 256; i++)
    if (f->g[i].k && f->g[i].k->kind == CG_K_ROW) s->k[s->n++] = f->g[i].k;
  char why[512];
  s->jit = cg_jit_compile(s->k, s->n, why, sizeof why);
  if (!s->jit) {
    fprintf(stderr, "bench_cg: %s\n", why);
    return false;
  }
  for (int i = 0; i < s->n; i++) {
    cg_kernel *k = s->k[i];
    s->fn[i] = cg_jit_kernel(s->jit, k->name);
    s->bufs[i] = calloc((size_t)k->nbuf, sizeof(void *));
    for (int b = 0; b < k->nbuf; b++) {
      ir_ref t = k->buf[b].tensor;
      if (!tb[t]) {
        size_t n = (size_t)ir_numel(g, t);
        tb[t] = aligned_alloc(64, (sizeof(float) * (n ? n : 1) + 63) / 64 * 64); /* as the runtime's arenas */
        for (size_t x = 0; x < n; x++) tb[t][x] = (float)((x * 2654435761u) % 1000) / 1000.0f - 0.5f;
      }
      s->bufs[i][b] = tb[t];
    }
    s->bytes += cg_k_bytes(k);
  }
  return true;
}

static double run(set *s, int reps) {
  double best = 1e30;
  float sc[CG_MAXSCALAR];
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int i = 0; i < s->n; i++) {
      cg_kernel *k = s->k[i];
      int64_t dims[2] = {k->rows, k->cols};
      for (int j = 0; j < k->nscalar; j++) sc[j] = k->scalar_default[j] ? k->scalar_default[j] : 0.5f;
      s->fn[i](s->bufs[i], dims, sc);
    }
    double t = now() - t0;
    if (t < best) best = t;
  }
  return best;
}

/* detail: per-kernel times (with -v). */
static void detail(set *s, const char *what) {
  float sc[CG_MAXSCALAR] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  for (int i = 0; i < s->n; i++) {
    cg_kernel *k = s->k[i];
    int64_t dims[2] = {k->rows, k->cols};
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
      double t0 = now();
      s->fn[i](s->bufs[i], dims, sc);
      if (now() - t0 < best) best = now() - t0;
    }
    printf("    %-8s %-40s %8.2f ms %8.2f GB/s\n", what, k->ops, best * 1e3, cg_k_bytes(k) / best / 1e9);
  }
}

static void release(set *s) {
  for (int i = 0; i < s->n; i++) free(s->bufs[i]);
  cg_jit_free(s->jit);
}

/* copy_time: seconds of one plain copy loop over n floats. gcc -O2 turns
 * this loop into a call to memcpy (loop-distribute-patterns), and glibc's
 * memcpy uses non-temporal stores for copies this large. */
static double copy_time(const float *a, float *b, size_t n) {
  double t0 = now();
  for (size_t i = 0; i < n; i++) b[i] = a[i];
  __asm__ volatile("" ::"r"(b) : "memory");
  return now() - t0;
}

/* copy_time_plain: the same loop kept a loop (ordinary stores, which read
 * every destination line first: write-allocate). */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static double copy_time_plain(const float *a, float *b,
                                                                                             size_t n) {
  double t0 = now();
  for (size_t i = 0; i < n; i++) b[i] = a[i];
  __asm__ volatile("" ::"r"(b) : "memory");
  return now() - t0;
}

int main(int argc, char **argv) {
  int64_t tokens = argc > 1 ? atoll(argv[1]) : 4096;
  if (tokens < 1 || tokens > (1 << 20)) {
    fprintf(stderr, "usage: bench_cg [TOKENS]\n");
    return 2;
  }
  ir_graph *g = fx_gpt2_block(768, 12, tokens);
  arena *a = arena_new();
  cg_fusion *ff = cg_fuse(g, IR_F32, a), *fu = cg_fuse_ex(g, IR_F32, true, a);
  float **tb = calloc((size_t)g->nt, sizeof(float *));
  set fused, unfused;
  if (!prepare(&fused, g, ff, tb) || !prepare(&unfused, g, fu, tb)) return 4;
  int reps = 15;
  size_t cn = (size_t)64 << 20 >> 2;
  float *ca = calloc(cn, sizeof(float)), *cb = calloc(cn, sizeof(float));
  double tf = 1e30, tu = 1e30, tc = 1e30, tp = 1e30; /* interleaved: all see the same machine load */
  run(&fused, 1);
  run(&unfused, 1);
  copy_time(ca, cb, cn);
  for (int r = 0; r < reps; r++) {
    double a1 = run(&fused, 1), a2 = run(&unfused, 1), a3 = copy_time(ca, cb, cn), a4 = copy_time_plain(ca, cb, cn);
    if (a4 < tp) tp = a4;
    if (a1 < tf) tf = a1;
    if (a2 < tu) tu = a2;
    if (a3 < tc) tc = a3;
  }
  double bw = 2.0 * (double)cn * sizeof(float) / tc, bwp = 2.0 * (double)cn * sizeof(float) / tp;
  free(ca);
  free(cb);
  printf("GPT-2 small block (H=768, %lld tokens), fwd+bwd elementwise/row work, f32, 1 thread, LLVM %s, %d lanes\n",
         (long long)tokens, cg_llvm_version(), cg_llvm_vector_width());
  printf("  %-34s %10s %10s %10s %12s\n", "", "kernels", "MB moved", "time ms", "GB/s");
  printf("  %-34s %10d %10.1f %10.2f %12.2f\n", "fused (sbpc)", fused.n, fused.bytes / 1e6, tf * 1e3,
         fused.bytes / tf / 1e9);
  printf("  %-34s %10d %10.1f %10.2f %12.2f\n", "unfused (one kernel per op)", unfused.n, unfused.bytes / 1e6, tu * 1e3,
         unfused.bytes / tu / 1e9);
  printf("  %-34s %10s %10s %12.2f\n", "copy loop (64 MiB, memcpy)", "", "", bw / 1e9);
  printf("  %-34s %10s %10s %12.2f\n", "copy loop (64 MiB, plain stores)", "", "", bwp / 1e9);
  printf("  speedup fused/unfused: %.2fx (goal >= 2x; bytes ratio unfused/fused %.2fx)\n", tu / tf,
         unfused.bytes / fused.bytes);
  printf("  fused bandwidth / copy bandwidth: %.0f%% (goal >= 60%%; vs plain-store loop %.0f%%)\n",
         100.0 * fused.bytes / tf / bw, 100.0 * fused.bytes / tf / bwp);
  if (argc > 2 && !strcmp(argv[2], "-v")) {
    detail(&fused, "fused");
    detail(&unfused, "unfused");
  }
  release(&fused);
  release(&unfused);
  for (int i = 0; i < g->nt; i++) free(tb[i]);
  free(tb);
  arena_free(a);
  ir_graph_free(g);
  return 0;
}
