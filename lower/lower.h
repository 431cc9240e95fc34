/* lower.h — the compiler's back half (prefix lw_): from a forward graph and a
 * plan to a program (format/program.h) that the executor runs as written.
 *
 * The passes, one file each, in the order driver/passes.c (drv_lower) runs
 * them on one lw_ctx:
 *   train.c      autodiff (backward ops, AdamW per parameter), B and S bound
 *                to the local micro-batch; around autodiff, packed.c's
 *                packed variable-length batches (per-sample positions, the
 *                ops that take document boundaries marked)
 *   sbp.c        the planner's SBP of every forward op on the tp axis (from
 *                the plan's ops), the rest deduced, boxing inserted
 *   local.c      one tp rank's shard: every shape made local, head counts
 *                divided, the executable signatures checked
 *   sp.c         sequence parallelism: attention between all-to-alls
 *                (Ulysses) or as a ring (ring.c, ring attention's steps
 *                and shifts), the loss scaled per sp rank
 *   place.c      every op on a pipeline stage (and, interleaved, a chunk)
 *   recompute.c  the recompute policy as clones of forward ops in backward
 *   fuse.c       codegen's fusion groups that the CPU executor runs as one
 *                kernel each, emitted as one LLVM module
 *   params.c     parameter layouts (logical shape, split, interleave groups,
 *                holders) and data-parallel gradient buckets
 *   actors.c     per stage: actors, registers, regst_num, the static 1F1B
 *                schedule, persistent tensors; within it alias.c marks the
 *                registers that need no bytes of their own (reshape views,
 *                weight-gradient GEMMs into their accumulators)
 *   arena.c      arena offsets from the schedule's lifetimes, the peak
 *   gpu.c        the GPU part (with --device cuda): kernels, modules,
 *                streams, the device arena in the precision's bytes
 * Every pass reports problems through ctx->d and returns false. */
#ifndef SBPC_LOWER_H
#define SBPC_LOWER_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "format/program.h"
#include "format/sbpc_plan.h"
#include "ir/ir.h"

typedef struct {
  int dp, tp, pp, micro, zero, recompute; /* recompute: 0 none, 1 selective, 2 full */
  int64_t global_batch, seq;
  const sbpc_plan *plan;  /* the planner's per-op SBP; NULL: deduce from the @ hints */
  int64_t bucket_bytes;   /* data-parallel gradient bucket size (0: IR_GRAD_BUCKET_BYTES) */
  int device;             /* 0 the CPU, 1 a CUDA GPU (gpu.c adds the program's GPU part) */
  int precision;          /* device 1: ir_dtype of activations (IR_F32, IR_BF16, IR_F16) */
  int vpp;                /* model chunks per stage, interleaved 1F1B (0 or 1: none) */
  int sp;                 /* sequence-parallel degree (0 or 1: none) */
  int sp_kind;            /* fmt_spkind */
  bool packed;            /* packed variable-length batches (packed.c) */
  bool adaptive;          /* --adaptive-sp: SP groups chosen per step at run time
                             (micro: the most micro-batches a step runs; packed.c) */
} lw_layout;

typedef struct {
  fmt_prog *p;           /* being built; p->g is the graph the passes change */
  lw_layout lay;
  diag *d;
  int nfwd;              /* ops of the forward graph (plan op indices refer to these) */
  int32_t *fwd_of;       /* per op of p->g (malloc'ed): forward op it differentiates */
  int32_t *groups;       /* per tensor (malloc'ed, after local.c): tp interleave groups */
  int32_t *split;        /* per tensor (malloc'ed, after sbp.c): split axis on tp, or -1 */
  int64_t (*logical)[IR_MAXRANK]; /* per tensor (malloc'ed, after local.c): logical shape */
  int32_t *group_of;     /* per op (malloc'ed, after fuse.c): its fused group, or -1 */
  int32_t ngroup;        /* fused groups: their ops and kernel */
  int32_t **gops, *gnops;
  fmt_kernel **gkernel;
} lw_ctx;

/* lw_ctx_init: a context taking ownership of forward graph g (shapes
 * inferred, a loss set); lw_ctx_done: frees the context's tables (not the
 * program, which the caller takes from ctx->p). */
void lw_ctx_init(lw_ctx *c, ir_graph *g, const lw_layout *lay, diag *d);
void lw_ctx_done(lw_ctx *c);

/* The passes, in order (see above). */
bool lw_train(lw_ctx *c);
/* lw_packed_forward (before autodiff) and lw_packed_mark (after it), called
 * by lw_train when lay.packed: positions become per sample ([B, S]) and the
 * ops that take document boundaries get attr `packed` (packed.c). */
bool lw_packed_forward(lw_ctx *c);
void lw_packed_mark(lw_ctx *c);
/* lw_packed_adaptive: --adaptive-sp needs --packed and a Ulysses sp > 1 on
 * dp 1, pp 1 (the SP groups span the world); false with an error. */
bool lw_packed_adaptive(lw_ctx *c);
bool lw_sbp(lw_ctx *c);
/* lw_grad_tp_sum: whether param q's gradient is a partial sum over tp that
 * its bucket's tp reduce actor sums once per step (sbp.c defers it) */
bool lw_grad_tp_sum(const fmt_prog *p, const fmt_param *q);
bool lw_local(lw_ctx *c);
bool lw_sp(lw_ctx *c);
bool lw_place(lw_ctx *c);
bool lw_recompute(lw_ctx *c);
bool lw_fuse(lw_ctx *c);
bool lw_params(lw_ctx *c);
bool lw_actors(lw_ctx *c);
bool lw_arena(lw_ctx *c);
/* lw_arena_plan: lw_arena; alias false plans every register on bytes of
 * its own, views and into_acc registers too (the GPU's device arena: its
 * executor copies reshapes and accumulates itself). */
bool lw_arena_plan(lw_ctx *c, bool alias);
/* lw_alias_stage (alias.c, from lw_actors once a stage's consumers are
 * linked): marks the stage's registers that are views (a reshape sharing
 * its input register's bytes) or into_acc (a weight gradient's GEMM
 * writing straight into its accumulator). lw_alias_ends: end[r * M + m]
 * (the last schedule position of each instance) extended, for a viewed
 * register, over its views' ends: the group's lifetime. */
void lw_alias_stage(const lw_ctx *c, fmt_stage *st);
void lw_alias_ends(const fmt_stage *st, int M, int32_t *end);
/* lw_gpu (gpu.c; only when lay.device is 1, after lw_arena): the GPU part
 * (format/program.h, fmt_gpu): device dtypes, the device arena plan, a
 * kernel per op, modules, streams, working copies. */
bool lw_gpu(lw_ctx *c);
/* lw_gpu_write: DIR/gpu/NAME.cu of every module and, when NVRTC is present,
 * NAME.sm_80.ptx and NAME.sm_90.ptx (through the kernel cache unless
 * no_cache); a line to log. Returns an exit status (util/diag.h). */
int lw_gpu_write(const fmt_prog *p, const char *dir, bool no_cache, FILE *log);
/* lw_gpu_dump: the GPU part as text: per actor its kernel, launch, stream
 * and registers' arena offsets (`sbpc compile --dump gpu`). */
void lw_gpu_dump(const fmt_prog *p, FILE *f);

/* lw_compile: every pass above, in order, on forward graph g (shapes
 * inferred). On success the program owns g; on failure (errors in d) NULL,
 * and g is still the caller's (changed by the passes that ran). */
fmt_prog *lw_compile(ir_graph *g, const lw_layout *lay, diag *d);

/* lw_dp_group: the ranks a stage's gradients are reduced over (and ZeRO
 * shards over): dp x sp, as Megatron-LM folds context parallelism into its
 * data-parallel gradient group. */
int lw_dp_group(const lw_ctx *c);

/* lw_model_hash: a hash of forward graph g's structure (tensor names, kinds,
 * shapes, ops): what a program and a plan record to tell their model. */
uint64_t lw_model_hash(const ir_graph *g);
#endif
