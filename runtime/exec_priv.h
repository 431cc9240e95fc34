/* exec_priv.h — the interpreter's state, shared by exec.c (placement, the
 * sequential walk, the update) and executor.c (the actor executor). */
#ifndef SBPC_EXEC_PRIV_H
#define SBPC_EXEC_PRIV_H
#include "runtime/rt_internal.h"

typedef struct rt_trace rt_trace;
typedef struct rt_jit rt_jit;
typedef struct rt_pool rt_pool;

struct rt_exec {
  ir_graph *g;
  rt_config cfg;
  rt_comm *comm;
  int stage, nstages, dp, dpi, tp, tpi;
  int32_t *fwd_of;
  int *op_stage, *t_stage, *last_use;
  ir_ref *final_of;     /* per tensor: the param whose optimizer consumes it */
  uint64_t *sent;       /* per tensor: stages it was sent to (this micro-batch) */
  bool *hold;           /* per tensor: persistent here (param, state, input) */
  uint64_t *holders;    /* per param: the stages that hold it */
  void **buf;
  float **acc;          /* per param: accumulated gradient (on the grad's stage) */
  int64_t live, peak, step, micro;
  bool profile;         /* SBPC_PROFILE set: time kernels by op kind */
  bool zero;            /* AdamW state sharded over the dp group (ZeRO >= 1) */
  bool zero_grads;      /* gradients reduce-scattered, not all-reduced (ZeRO >= 2) */
  int recompute;        /* RT_RECOMPUTE_* (recompute.c) */
  bool *drop;           /* per tensor: freed after its last forward reader, redone in backward */
  int *fwd_last;        /* per tensor: its last forward reader (op index) */
  bool recomputing;     /* kernels now run are recomputation (trace category) */
  rt_trace *trace;      /* --trace: slices of the traced step (trace.c) */
  rt_jit *jit;          /* --kernels jit: codegen's kernels per op (jit.c) */
  rt_pool *pool;        /* activation buffers by size (pool.c); its own lock */
};

/* rt_exec_run_op: run op k of this stage on the given buffers, accumulating
 * gradients the optimizer consumes (gscale) into e->acc. */
bool rt_exec_kernel(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro);
void rt_exec_accumulate(rt_exec *e, const ir_op *o, void *const *out, double gscale);
/* rt_exec_count: add n bytes to the live count (negative frees); thread-safe. */
void rt_exec_count(rt_exec *e, int64_t n);
/* rt_exec_alloc_buf / rt_exec_free_buf: an activation buffer for tensor t from
 * the pool (not zeroed; counted when the pool grows) / give e->buf[t] back to
 * the pool and clear it. */
void *rt_exec_alloc_buf(rt_exec *e, ir_ref t);
void rt_exec_free_buf(rt_exec *e, ir_ref t);

/* ---- recompute.c ---- */
/* rt_recompute_plan: after placement and last uses: choose the dropped
 * tensors of this stage (e->drop) and extend the last uses recompute needs. */
void rt_recompute_plan(rt_exec *e);
/* rt_recompute_release: after forward op k ran: free dropped tensors whose
 * last forward reader it was. */
void rt_recompute_release(rt_exec *e, const ir_op *o, int k);
/* rt_recompute_run: run op k with run(e, k, gscale), first regenerating the
 * dropped inputs of a backward op; frees what was regenerated only for it. */
bool rt_recompute_run(rt_exec *e, int k, bool (*run)(rt_exec *, int, double), double gscale);
/* ---- pool.c ---- */
/* rt_pool_new: an empty pool; count(ctx, +-bytes) is told what it takes from
 * and gives back to the system. rt_pool_get: a buffer of exactly `bytes`
 * (contents undefined; NaN in debug builds); rt_pool_put: give it back (same
 * size); rt_pool_share: q gets one more owner (an alias), each owner puts
 * it once, the last put returns it; rt_pool_free: release every pooled
 * buffer. Get, put and share are thread-safe (one mutex). */
rt_pool *rt_pool_new(void (*count)(void *ctx, int64_t delta), void *ctx);
void *rt_pool_get(rt_pool *p, int64_t bytes);
void rt_pool_put(rt_pool *p, void *q, int64_t bytes);
void rt_pool_share(rt_pool *p, void *q);
void rt_pool_free(rt_pool *p);
/* rt_huge_alloc: malloc (dies on failure; free() releases it); 1 MiB and
 * more are 2 MiB aligned and advised as transparent huge pages. */
void *rt_huge_alloc(int64_t bytes);
/* ---- jit.c ---- */
/* rt_jit_new: JIT-compile codegen's row kernels for the ops of g that have a
 * usable one (B, S bound; tp lowered). NULL with why when LLVM fails. */
rt_jit *rt_jit_new(const ir_graph *g, char *why, size_t wn);
/* rt_jit_count: ops that run a JIT kernel. */
int rt_jit_count(const rt_jit *J);
void rt_jit_free(rt_jit *J);
/* rt_jit_run: run op o's JIT kernel on the op's buffers; false (nothing done)
 * when the op has none. Thread-safe. */
bool rt_jit_run(const rt_jit *J, const ir_graph *g, const ir_op *o, void *const *in, void *const *out);

/* ---- trace.c ---- */
enum { RT_LANE_COMPUTE, RT_LANE_COLL, RT_LANE_P2P, RT_NLANES };
typedef struct {
  const char *model;
  int64_t step;
  double step_s, loss;
} rt_trace_info;
double rt_trace_now(void);
/* rt_tracing: a step is being traced (cheap; call before timing). */
bool rt_tracing(const rt_exec *e);
/* rt_trace_begin / rt_trace_end: start recording (clears) / stop. */
void rt_trace_begin(rt_exec *e);
void rt_trace_end(rt_exec *e);
void rt_trace_free(rt_exec *e);
/* rt_trace_slice: record [t0, t1] (rt_trace_now seconds) on a lane; t, op,
 * micro: the tensor, op index and micro-batch (-1: none). Thread-safe. */
void rt_trace_slice(rt_exec *e, int lane, const char *name, const char *cat, ir_ref t, int op, int64_t micro, double t0,
                    double t1);
/* rt_trace_op: a kernel of op o (category forward/backward/recompute/collective). */
void rt_trace_op(rt_exec *e, const ir_op *o, int64_t micro, double t0, double t1);
/* rt_trace_write: collective over the world: rank 0 writes the trace of
 * every rank to path (docs/trace.md format, a process per rank). */
bool rt_trace_write(rt_exec *e, rt_comm *c, const char *path, const rt_trace_info *info);
/* rt_exec_profile_report: with SBPC_PROFILE, kernel seconds per op kind to stderr */
void rt_exec_profile_report(const rt_exec *e);
#endif
