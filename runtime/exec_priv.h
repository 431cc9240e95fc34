/* exec_priv.h — the rank's state, shared by exec.c (loading, parameters,
 * logical values), executor.c (the actors), coll.c (collectives), jit.c and
 * trace.c. */
#ifndef SBPC_EXEC_PRIV_H
#define SBPC_EXEC_PRIV_H
#include "runtime/rt_internal.h"

typedef struct rt_trace rt_trace;
typedef struct rt_jit rt_jit;
typedef struct rt_dev rt_dev;
typedef void (*rt_kfn)(void **bufs, const int64_t *dims, const float *scalars);

struct rt_exec {
  const fmt_prog *p;
  const fmt_stage *st;  /* this rank's stage program */
  ir_graph *g;          /* the program's graph (lr and weight decay set from cfg) */
  rt_config cfg;
  rt_comm *comm;
  int rank, stage, dpi, tpi, dp, tp, pp, M;
  int sp, spi;          /* the sp group (1, 0 without); dp, dpi count dp x sp ranks:
                           the gradient group, as ZeRO shards over it */
  char *arena;          /* activations: st->arena_bytes */
  char *pers;           /* persistent tensors: st->persist_bytes */
  void **buf;           /* per tensor: its persistent buffer (param, state), or NULL */
  float **acc;          /* per parameter tensor: gradient accumulator (or ZeRO-2 slice) */
  int64_t step;
  int64_t live, peak;   /* bytes held: arenas + temporaries */
  bool profile;         /* SBPC_PROFILE: time kernels by op kind */
  rt_trace *trace;      /* --trace: slices of the traced step (trace.c) */
  rt_jit *jit;          /* the program's fused kernels (jit.c); NULL: reference kernels */
  rt_kfn *kfn;          /* per actor of the stage: its fused kernel's function, or NULL */
  double gscale;        /* 1 / (dp * micro-batches): each gradient's share */
  const int32_t *doc;   /* packed programs: this step's document starts, the
                           rank's micro-batches back to back (rt_exec_set_docs) */
  double ce_ratio;      /* packed: the step's predicted tokens / its B * S */
  rt_dev *dev;          /* --device cuda: the GPU executor (device.c); arena is then NULL */
  struct rt_pool *pool; /* the CPU executor's worker threads, made by the first step (executor.c) */
  const int32_t *doc_sp; /* packed under sp > 1: the rank's share of doc (executor.c) */
  const struct rt_adapt_mb *ad; /* --adaptive-sp: this step's micro-batches (adaptive.c), else NULL */
};

/* --adaptive-sp: what a step's micro-batches are on this rank (adaptive.c).
 * Micro-batches from nlive on are empty: the executor skips their kernels
 * and collectives (every rank skips the same ones). */
typedef struct rt_adapt_mb {
  int nlive;            /* micro-batches that run */
  int *spg;             /* per micro-batch: the size of the rank's group */
  uint64_t *mask;       /* per micro-batch: the group's members (bit r: world rank r) */
  int32_t **doc;        /* per micro-batch: the rank's tokens' starts ([S/sp], positions) */
  int32_t **doc_all;    /* per micro-batch: the group's sequence's starts ([spg * S/sp], attention) */
} rt_adapt_mb;

/* rt_exec_pool_free: stop and join e's worker threads (none: nothing). */
void rt_exec_pool_free(rt_exec *e);
/* rt_exec_count: add n bytes to what the rank holds (negative frees); thread-safe. */
void rt_exec_count(rt_exec *e, int64_t n);
/* rt_exec_kernel: run compute op o (reference or JIT kernel) on its buffers
 * for micro-batch micro; false with a message when it cannot. Thread-safe. */
bool rt_exec_kernel(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro);
/* rt_exec_fused: run actor `actor`'s fused kernel on bufs (one per kernel
 * buffer); o is its first op (for traces and profiles). Thread-safe. */
bool rt_exec_fused(rt_exec *e, int actor, const ir_op *o, void *const *bufs, int64_t micro);
/* rt_exec_accumulate: acc[p] += gscale * x (n floats), split over threads */
void rt_exec_accumulate(rt_exec *e, ir_ref p, const float *x, int64_t n);
/* rt_exec_gemm_acc: acc[p] += gscale * op(a) op(b) in one GEMM (alpha
 * gscale, beta 1), for a 2-D matmul o whose output is an into_acc register
 * (docs/actor-plan.md); in: its inputs. Traced and profiled as o. */
bool rt_exec_gemm_acc(rt_exec *e, const ir_op *o, void *const *in, ir_ref p, int64_t micro);
/* rt_exec_slice: this dp rank's slice [*lo, *lo + *cnt) of a tensor of n
 * elements under ZeRO (chunk = ceil(n / dp) returned; the last may be short) */
int64_t rt_exec_slice(const rt_exec *e, int64_t n, int64_t *lo, int64_t *cnt);
/* rt_exec_update: AdamW of bucket b's parameters held here (on their ZeRO
 * slices when sharded); worker thread. */
bool rt_exec_update(rt_exec *e, int b);

/* ---- coll.c: an op that needs the tp group, as a non-blocking state machine */
typedef struct rt_coll rt_coll;
/* rt_coll_start: begin op o on its buffers (posts its first collective, or
 * finishes at once for local re-layouts); own_in: no other actor reads
 * in[0], so the op may reduce in it instead of a copy; rt_coll_poll:
 * advance; true once the op is complete (the rt_coll is freed then). Main
 * thread only. */
rt_coll *rt_coll_start(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro, bool own_in);
bool rt_coll_poll(rt_coll *c);
/* rt_coll_settled: c has posted every collective it will post (the
 * executor may post the group's next op while c is in flight) */
bool rt_coll_settled(const rt_coll *c);

/* ---- jit.c ---- */
/* rt_jit_new: the machine code of program p's fused CPU kernels
 * (dir/kernels/cpu.ll), from the kernel cache or compiled for this host;
 * an empty JIT when p has none. NULL with why when they cannot be had. */
rt_jit *rt_jit_new(const fmt_prog *p, const char *dir, char *why, size_t wn);
/* rt_jit_count: the program's actors that run a fused kernel. */
int rt_jit_count(const rt_jit *J);
void rt_jit_free(rt_jit *J);
/* rt_jit_kernel: the function of kernel `name`, or NULL. */
rt_kfn rt_jit_kernel(const rt_jit *J, const char *name);
/* rt_jit_call: run kernel fn (described by k) on bufs (one per k->buf),
 * zeroing its accumulating buffers first. Thread-safe. */
void rt_jit_call(rt_kfn fn, const fmt_kernel *k, void *const *bufs, const ir_graph *g);

/* ---- device.c: the GPU executor (docs/gpu.md) ---- */
/* rt_device_choose: the device program p runs on for --device `want`
 * (RT_DEVICE_*): RT_DEVICE_CPU or RT_DEVICE_CUDA, or -1 with why (a GPU
 * program and no usable GPU, a 16-bit program on the CPU, a CPU program
 * asked to run on the GPU). */
int rt_device_choose(const fmt_prog *p, int want, char *why, size_t n);
/* rt_dev_new: the GPU state of rank e (device, modules, arenas, cuBLAS,
 * NCCL), parameters copied from e's host persistent arena; NULL after a
 * message. rt_dev_free: all of it. */
rt_dev *rt_dev_new(rt_exec *e);
void rt_dev_free(rt_dev *d);
/* rt_dev_step: rt_exec_step_run on the GPU (the schedule enqueued on the
 * streams; waits only at the end for the losses). */
double rt_dev_step(rt_exec *e, const int32_t *ids, const int32_t *labels, bool *ok);
/* rt_dev_upload: e's host persistent arena to d (working copies cast);
 * rt_dev_download: the device's back to the host (before a checkpoint). */
bool rt_dev_upload(rt_exec *e, rt_dev *d);
bool rt_dev_download(rt_exec *e);
/* rt_dev_peak: the most device bytes held: cuMemGetInfo's used bytes since
 * start-up, at least the planned regions; rt_dev_describe: one line naming
 * the device, precision and how the ops run. */
int64_t rt_dev_peak(const rt_dev *d);
void rt_dev_describe(const rt_dev *d, char *buf, size_t n);

/* ---- trace.c ---- */
enum { RT_LANE_COMPUTE, RT_LANE_COLL, RT_LANE_P2P, RT_LANE_STEP, RT_NLANES };
typedef struct {
  const char *model;
  int64_t step;       /* the last traced step */
  double step_s, loss; /* the traced steps' mean seconds; the last one's loss */
  int64_t steps;      /* how many steps the trace holds */
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
