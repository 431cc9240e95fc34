/* jit.c — the program's fused CPU kernels (DIR/kernels/cpu.ll) made into
 * machine code for this host, and run.
 *
 * `sbpc compile` emitted the fused kernels of the program as one LLVM module,
 * not optimised (lower/fuse.c); each compute actor that runs one names its
 * symbol and binds its buffers (format/program.h, fmt_kernel). Here the
 * module is parsed, optimised at O3 for this host's CPU and compiled to an
 * object file once, stored in codegen's kernel cache as KEY.rtjit.o and
 * linked into an LLJIT (cg_jit_from_object); a later run with the same
 * program on the same host links the cached object directly (under a
 * millisecond instead of seconds). KEY hashes the module's text, the host
 * CPU and features and the LLVM version. A corrupt or foreign entry is
 * rebuilt (codegen/cache.c); SBPC_NO_KERNEL_CACHE=1 turns the cache off and
 * SBPC_JIT_TIMES=1 prints the time of each phase. Kernel ABI (codegen/cg.h):
 * void k(void **bufs, const int64_t *dims, const float *scalars), dims =
 * {rows, cols}; a buffer that accumulates (CG_ACC: a mean loss) is zeroed
 * first. */
#include "runtime/exec_priv.h"
#include "codegen/cg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rt_jit {
  cg_jit *j;
  int nkernels;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* SBPC_JIT_TIMES=1: one line per phase on stderr */
static void phase(const char *what, double *t) {
  const char *on = getenv("SBPC_JIT_TIMES");
  double t1 = now_s();
  if (on && *on && strcmp(on, "0")) fprintf(stderr, "jit: %-28s %8.1f ms\n", what, 1e3 * (t1 - *t));
  *t = t1;
}

static uint64_t cache_key(const char *text) {
  uint64_t h = cg_hash("rt-program-obj-1", 16, 0);
  const char *host = cg_llvm_host(), *ver = cg_llvm_version();
  h = cg_hash(text, strlen(text), h);
  return cg_hash(ver, strlen(ver), cg_hash(host, strlen(host), h));
}

static bool cache_off(void) {
  const char *off = getenv("SBPC_NO_KERNEL_CACHE");
  return off && *off && strcmp(off, "0");
}

/* the machine code of module text: from the cache, or optimised, compiled,
 * cached and loaded */
static cg_jit *machine_code(const char *text, char *why, size_t wn) {
  double t = now_s();
  char dir[4096];
  bool cached = !cache_off() && cg_cache_dir(dir, sizeof dir);
  uint64_t key = cache_key(text);
  size_t len = 0;
  char *obj = cached ? cg_cache_get(dir, key, "rtjit.o", &len) : NULL;
  phase(obj ? "key + cache hit" : "key + cache miss", &t);
  if (obj) {
    cg_jit *j = cg_jit_from_object(obj, len, why, wn);
    free(obj);
    phase("load object into LLJIT", &t);
    if (j) return j;
    /* LLVM refused the entry: rebuild it below */
  }
  cg_llvm *m = cg_llvm_parse(text, why, wn);
  if (!m) return NULL;
  phase("parse LLVM IR", &t);
  if (!cg_llvm_optimize(m, why, wn)) return cg_llvm_free(m), NULL;
  phase("O3 passes", &t);
  bool ok = cg_llvm_object(m, &obj, &len, why, wn);
  cg_llvm_free(m);
  phase("backend (object file)", &t);
  if (!ok) return NULL;
  if (cached) cg_cache_put(dir, key, "rtjit.o", obj, len); /* best effort */
  cg_jit *j = cg_jit_from_object(obj, len, why, wn);
  free(obj);
  phase("cache put + load object", &t);
  return j;
}

rt_jit *rt_jit_new(const fmt_prog *p, const char *dir, char *why, size_t wn) {
  const char *fault = getenv("SBPC_TEST_FAULT");
  if (fault && !strcmp(fault, "nojit")) { /* tests: the fallback to the reference kernels */
    snprintf(why, wn, "JIT disabled by SBPC_TEST_FAULT=nojit");
    return NULL;
  }
  rt_jit *J = xcalloc(1, sizeof *J);
  for (int s = 0; s < p->nstage; s++)
    for (int a = 0; a < p->stage[s].nact; a++) J->nkernels += p->stage[s].act[a].kernel != NULL;
  if (!J->nkernels) return J;
  char path[4200];
  snprintf(path, sizeof path, "%s/kernels/cpu.ll", dir);
  size_t len;
  char *text = read_file(path, (size_t)1 << 30, &len);
  if (!text) {
    snprintf(why, wn, "the program's kernels %s cannot be read", path);
    return free(J), NULL;
  }
  J->j = machine_code(text, why, wn);
  free(text);
  if (!J->j) return free(J), NULL;
  return J;
}

int rt_jit_count(const rt_jit *J) { return J ? J->nkernels : 0; }

void rt_jit_free(rt_jit *J) {
  if (!J) return;
  cg_jit_free(J->j);
  free(J);
}

rt_kfn rt_jit_kernel(const rt_jit *J, const char *name) { return J && J->j ? (rt_kfn)cg_jit_kernel(J->j, name) : NULL; }

void rt_jit_call(rt_kfn fn, const fmt_kernel *k, void *const *bufs, const ir_graph *g) {
  for (int i = 0; i < k->nbuf; i++)
    if (k->acc[i]) memset(bufs[i], 0, (size_t)ir_numel(g, k->buf[i]) * 4);
  int64_t dims[2] = {k->rows, k->cols};
  fn((void **)bufs, dims, k->scalar);
}
