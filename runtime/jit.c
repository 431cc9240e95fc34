/* jit.c — `sbpc run --kernels jit`: elementwise and row ops through codegen's
 * JIT-compiled CPU kernels (codegen/cg.h, ABI in docs/codegen.md) instead of
 * the fp32 reference kernels of kernels_cpu.c.
 *
 * The rank's graph (B bound to the local micro-batch, tp already lowered) goes
 * through cg_fuse_ex with one kernel per op (single = true), so every kernel
 * reads and writes exactly its op's tensors and the runtime's buffers,
 * placement, recompute and actor registers stay as they are. A kernel is used
 * for an op when it is a row kernel (KC_ELEM / KC_ROW ops: bias_add, gelu,
 * layer_norm, softmax, cross_entropy, their gradients, ...), f32, complete
 * (every input and output of the op bound to a kernel buffer) and has no
 * random node: codegen's dropout hash differs from the runtime's masks, so
 * dropout stays on the reference kernels. All chosen kernels are emitted,
 * optimised at O3 and JIT-compiled as one LLVM module when the run starts.
 * Everything else (GEMMs, attention, embedding, collectives, adamw) keeps its
 * reference kernel. A kernel accumulating into a one-value output (CG_ACC:
 * the mean loss) gets that output zeroed first. Kernels run single-threaded
 * on the whole row range.
 *
 * The machine code is kept in codegen's kernel cache (cg_cache_*): on a miss
 * the module is optimised and compiled to a host object file once
 * (cg_llvm_object), stored as KEY.rtjit.o and linked into the LLJIT
 * (cg_jit_from_object); on a hit the object is linked directly, skipping O3
 * and the backend (about 2 s -> under 1 ms for the tiny GPT-2). KEY hashes
 * the kernels' text and names, the unoptimised LLVM IR (a changed emitter
 * gets a new key), the host CPU and features and the LLVM version. A corrupt
 * entry (checksum) or one LLVM refuses is rebuilt; SBPC_NO_KERNEL_CACHE=1
 * turns the cache off, SBPC_JIT_TIMES=1 prints the time of each phase. */
#include "runtime/exec_priv.h"
#include "codegen/cg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rt_jit {
  arena *a;
  cg_jit *j;
  cg_kernel **kof;   /* per op: its kernel, or NULL */
  cg_kfn *fn;        /* per op */
  int nkernels;
};

static bool has_rand(const cg_kernel *k) {
  for (int i = 0; i < k->nnode; i++)
    if (k->node[i].op == CG_RAND) return true;
  return false;
}

/* slot of tensor t among the op's inputs (>= 0) or outputs (-1 - i); -1000 if neither */
static int slot_of(const ir_op *o, ir_ref t) {
  for (int i = 0; i < o->nin; i++)
    if (o->in[i] == t) return i;
  for (int i = 0; i < o->nout; i++)
    if (o->out[i] == t) return -1 - i;
  return -1000;
}

static bool usable(const ir_graph *g, const ir_op *o, const cg_kernel *k) {
  if (!k || k->kind != CG_K_ROW || k->overflow || has_rand(k)) return false;
  bool out_bound[IR_MAXOUT] = {0};
  for (int i = 0; i < k->nbuf; i++) {
    const cg_buf *b = &k->buf[i];
    if (b->tensor < 0 || (b->dtype != IR_F32 && b->dtype != IR_I32)) return false;
    if (b->dtype != g->t[b->tensor].dtype) return false;
    int s = slot_of(o, b->tensor);
    if (s == -1000) return false;
    if (s < 0) out_bound[-1 - s] = true;
  }
  for (int i = 0; i < o->nout; i++)
    if (!out_bound[i]) return false;
  return true;
}

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

/* the cache key of the machine code for kernels ks: the kernels' text and
 * names, the host CPU and features, the LLVM version, and the emitter's LLVM
 * IR (ir, unoptimised) so a changed emitter never meets a stale object */
static uint64_t cache_key(cg_kernel *const *ks, int n, const char *ir) {
  uint64_t h = cg_hash("rt-jit-obj-2", 12, 0);
  for (int i = 0; i < n; i++) {
    char *t = cg_k_text(ks[i]);
    h = cg_hash(t, strlen(t), cg_hash(ks[i]->name, strlen(ks[i]->name) + 1, h));
    free(t);
  }
  const char *host = cg_llvm_host(), *ver = cg_llvm_version();
  h = cg_hash(ir, strlen(ir), h);
  return cg_hash(ver, strlen(ver), cg_hash(host, strlen(host), h));
}

static bool cache_off(void) {
  const char *off = getenv("SBPC_NO_KERNEL_CACHE");
  return off && *off && strcmp(off, "0");
}

/* the JIT of kernels ks: the host object file from the cache (key above), or
 * emitted, optimised at O3, compiled to an object once, cached and loaded */
static cg_jit *compile(cg_kernel *const *ks, int n, char *why, size_t wn) {
  double t = now_s();
  char dir[4096];
  bool cached = !cache_off() && cg_cache_dir(dir, sizeof dir);
  cg_llvm *m = cg_llvm_new("sbpc_rt_kernels");
  for (int i = 0; i < n; i++)
    if (!cg_llvm_add(m, ks[i], why, wn)) return cg_llvm_free(m), NULL;
  phase("emit LLVM IR", &t);
  char *ir = cached ? cg_llvm_text(m) : NULL;
  uint64_t key = ir ? cache_key(ks, n, ir) : 0;
  cached = ir != NULL;
  free(ir);
  size_t len = 0;
  char *obj = cached ? cg_cache_get(dir, key, "rtjit.o", &len) : NULL;
  phase(obj ? "key + cache hit" : "key + cache miss", &t);
  if (obj) {
    cg_jit *j = cg_jit_from_object(obj, len, why, wn);
    free(obj);
    obj = NULL;
    phase("load object into LLJIT", &t);
    if (j) return cg_llvm_free(m), j;
    /* LLVM refused the entry: rebuild it below */
  }
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

rt_jit *rt_jit_new(const ir_graph *g, char *why, size_t wn) {
  const char *fault = getenv("SBPC_TEST_FAULT");
  if (fault && !strcmp(fault, "nojit")) { /* tests: the fallback to the reference kernels */
    snprintf(why, wn, "JIT disabled by SBPC_TEST_FAULT=nojit");
    return NULL;
  }
  rt_jit *J = xcalloc(1, sizeof *J);
  J->a = arena_new();
  J->kof = xcalloc((size_t)g->nop + 1, sizeof *J->kof);
  J->fn = xcalloc((size_t)g->nop + 1, sizeof *J->fn);
  cg_fusion *f = cg_fuse_ex(g, IR_F32, true, J->a);
  cg_kernel **ks = xmalloc(sizeof *ks * (size_t)(f->n + 1));
  for (int i = 0; i < f->n; i++) {
    const cg_group *gr = &f->g[i];
    if (gr->nops != 1 || g->op[gr->ops[0]].kind == IR_OP_ADAMW || !usable(g, &g->op[gr->ops[0]], gr->k)) continue;
    J->kof[gr->ops[0]] = gr->k;
    ks[J->nkernels++] = gr->k;
  }
  if (J->nkernels) J->j = compile(ks, J->nkernels, why, wn);
  free(ks);
  if (J->nkernels && !J->j) {
    rt_jit_free(J);
    return NULL;
  }
  for (int k = 0; k < g->nop; k++)
    if (J->kof[k] && !(J->fn[k] = cg_jit_kernel(J->j, J->kof[k]->name))) J->kof[k] = NULL;
  return J;
}

int rt_jit_count(const rt_jit *J) { return J ? J->nkernels : 0; }

void rt_jit_free(rt_jit *J) {
  if (!J) return;
  cg_jit_free(J->j);
  arena_free(J->a);
  free(J->kof);
  free(J->fn);
  free(J);
}

bool rt_jit_run(const rt_jit *J, const ir_graph *g, const ir_op *o, void *const *in, void *const *out) {
  int k = (int)(o - g->op);
  const cg_kernel *K = J ? J->kof[k] : NULL;
  if (!K) return false;
  void *bufs[CG_MAXBUF];
  for (int i = 0; i < K->nbuf; i++) {
    int s = slot_of(o, K->buf[i].tensor);
    bufs[i] = s >= 0 ? in[s] : out[-1 - s];
    if (K->buf[i].role == CG_ACC) memset(bufs[i], 0, (size_t)ir_numel(g, K->buf[i].tensor) * 4);
  }
  int64_t dims[2] = {K->rows, K->cols};
  J->fn[k](bufs, dims, K->scalar_default);
  return true;
}
