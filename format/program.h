/* program.h — a compiled program: everything `sbpc run` needs, nothing else
 * (prefix fmt_). `sbpc compile` (lower/) builds one and writes it as
 * DIR/program.json with fmt_prog_write; the executor (runtime/) reads it with
 * fmt_prog_read, which checks the whole schema and every cross reference
 * before anything is allocated from it. The format is docs/actor-plan.md.
 *
 * What a program holds:
 *  - the training graph after every compiler pass (autodiff, the planner's
 *    SBP on the tensor-parallel axis, boxing, recompute clones), with the
 *    shapes of one tensor-parallel rank's shard and B, S bound to the local
 *    micro-batch: every rank of the program runs this graph on its shards;
 *  - the layout (dp, tp, pp, micro-batches, ZeRO stage) and the batch;
 *    under ZeRO-3 a stage holds a 1/dp slice of each parameter at rest;
 *  - per pipeline stage: the actors, the registers that connect them (bytes,
 *    regst_num, producer, consumers, and an offset in the stage's activation
 *    arena for each micro-batch), the persistent tensors at their offsets in
 *    the persistent arena, the static schedule (the order in which a rank of
 *    the stage issues its collectives and in which arena memory changes
 *    hands), and the planned peak;
 *  - per parameter: its Hugging Face name, logical shape, the axis the
 *    tensor-parallel ranks split it on (and its interleave groups), the
 *    stages that hold it, so checkpoints stay universal;
 *  - the data-parallel gradient buckets.
 * Ranks: rank = ((stage * dp + dp_index) * sp + sp_index) * tp + tp_index.
 *
 * Memory: a program and everything in it live in its arena (p->a), freed by
 * fmt_prog_free; the graph has its own (ir_graph_free). */
#ifndef SBPC_FMT_PROGRAM_H
#define SBPC_FMT_PROGRAM_H
#include <stdbool.h>
#include <stdint.h>
#include "ir/ir.h"

#define FMT_PROG_VERSION 1
#define FMT_MAXOUT 24 /* registers an actor may write (a fused kernel's stores) */

/* A fused CPU kernel of DIR/kernels/cpu.ll (codegen's ABI, codegen/cg.h:
 * void k(void **bufs, const int64_t *dims, const float *scalars)): its
 * symbol, its buffers (tensors, in the kernel's order; acc[i]: buffer i
 * accumulates, the caller zeroes it first), the rows x cols it iterates
 * over and its scalar arguments. Tensors of the group that no other actor
 * reads are not buffers: they live in registers of the kernel only. */
typedef struct fmt_kernel {
  const char *name;
  int32_t nbuf;
  ir_ref *buf;
  uint8_t *acc;
  int64_t rows, cols;
  int32_t nscalar;
  float *scalar;
} fmt_kernel;

/* Actor kinds. "comm thread" actors run on the rank's main thread (MPI is
 * used from one thread only), compute actors on worker threads. */
typedef enum {
  FMT_A_COMPUTE,  /* runs op `op`'s kernel on its registers (worker) */
  FMT_A_COLL,     /* op `op` needs the tp group (a boxing collective, or a
                     vocabulary-parallel cross-entropy): comm thread, issued
                     in the schedule's order on every rank of the group */
  FMT_A_SEND,     /* tensor `tensor` to stage `peer` (same dp and tp index) */
  FMT_A_RECV,     /* tensor `tensor` from stage `peer` */
  FMT_A_REDUCE,   /* bucket `bucket`'s gradients over the dp group: all-reduce
                     (ZeRO < 2) once after the last micro-batch, or, ZeRO-2,
                     reduce-scatter of each micro-batch's gradient into the
                     shard (comm thread) */
  FMT_A_OPTIM,    /* AdamW of the parameters of bucket `bucket` (worker) */
  FMT_A_GATHER,   /* ZeRO: all-gather bucket `bucket`'s updated slices (comm) */
  FMT_A_GSEND,    /* tied parameter `tensor`: its reduced gradient to stage `peer` */
  FMT_A_GRECV,    /* ... and received from stage `peer` */
  FMT_A_FETCH,    /* ZeRO-3: all-gather parameter `tensor`'s dp slices into its
                     register, per micro-batch, before the first reader of a
                     pass (forward or backward); freed after the last (comm) */
  FMT_A_TPREDUCE, /* bucket `bucket`'s gradients, partial sums over the tp
                     group: all-reduce once after the last micro-batch, in
                     place in the accumulators, before the dp reduce (comm) */
  FMT_NAKINDS
} fmt_akind;
extern const char *const fmt_akind_name[FMT_NAKINDS];

typedef struct {
  uint8_t kind;       /* fmt_akind */
  bool per_micro;     /* fires once per micro-batch (else once per step) */
  int32_t op;         /* COMPUTE, COLL: op index; else -1 */
  ir_ref tensor;      /* SEND, RECV, GSEND, GRECV, FETCH: the tensor; else -1 */
  int32_t peer;       /* SEND, RECV, GSEND, GRECV: the other stage; else -1 */
  int32_t bucket;     /* REDUCE, TPREDUCE, OPTIM, GATHER: bucket index; else -1 */
  int32_t nin, nout, ndep;
  int32_t *in, *out;  /* registers read / written (per micro-batch) */
  int32_t *dep;       /* actors whose last firing of the step must be done first */
  ir_ref acc[FMT_MAXOUT]; /* COMPUTE, COLL: per output, the parameter whose
                         gradient accumulator it is also added into (-1: none) */
  int32_t nops, *ops;  /* COMPUTE: the ops it runs, in order (ops[0] == op);
                          more than one for a fused kernel group */
  const fmt_kernel *kernel; /* COMPUTE: its fused CPU kernel, or NULL */
} fmt_actor;

typedef struct {
  ir_ref tensor;
  int64_t bytes;
  int32_t regst_num;  /* buffers: micro-batches in flight at once */
  int32_t producer;   /* actor */
  int32_t ncons, *cons;
  int64_t *offset;    /* per micro-batch: byte offset in the stage's arena */
  int32_t *nwait;     /* per micro-batch: how many instances it waits for */
  int32_t **wait;     /* per micro-batch: the instances (register * micro + m)
                         that held its bytes last, earlier in the schedule:
                         they must be released before it takes the bytes */
  int32_t view;       /* -1, or a register of the stage (lower index) whose
                         bytes this one shares: its producer is a reshape
                         that copies nothing; same offsets, no waits, and the
                         register it views stays held until it is released */
  bool into_acc;      /* its producer, a matmul whose output's only use is its
                         parameter's gradient accumulator (acc), writes the
                         product straight into that accumulator (scaled by
                         1 / (dp x micro), added): no arena bytes (offsets 0) */
} fmt_reg;

/* Sequence parallelism: every rank of an sp group holds S / sp consecutive
 * tokens of each sample; attention runs as Ulysses (all-to-alls to a head
 * split and back, ops all_to_all on mesh axis 1) or as a ring. */
typedef enum { FMT_SP_ULYSSES, FMT_SP_RING, FMT_NSPKINDS } fmt_spkind;
extern const char *const fmt_spkind_name[FMT_NSPKINDS];
/* fmt_spkind_parse: the fmt_spkind named s (fmt_spkind_name), or -1. */
int fmt_spkind_parse(const char *s);

/* One step of the static schedule: actor `actor` for micro-batch `micro`. */
typedef struct {
  int32_t actor, micro;
} fmt_step;

typedef enum { FMT_P_PARAM, FMT_P_GRAD, FMT_P_EXP_AVG, FMT_P_EXP_AVG_SQ } fmt_prole;

/* A tensor that lives for the whole run: a parameter, its gradient
 * accumulator (or, under ZeRO-2, its reduced slice) or AdamW state (a slice
 * under ZeRO >= 1). bytes is what this rank holds. */
typedef struct {
  ir_ref tensor;      /* the parameter or state tensor (for GRAD: the parameter) */
  uint8_t role;       /* fmt_prole */
  int64_t bytes, offset;
} fmt_pers;

typedef struct {
  int32_t nact, nreg, nsched, npers;
  fmt_actor *act;
  fmt_reg *reg;
  fmt_step *sched;
  fmt_pers *pers;
  int64_t arena_bytes;    /* activation arena: max over the schedule */
  int64_t persist_bytes;  /* persistent arena */
} fmt_stage;

/* A parameter's layout, for checkpoints and --weights. */
typedef struct {
  ir_ref tensor;
  const char *name;   /* Hugging Face name */
  int32_t rank;
  int64_t shape[IR_MAXRANK]; /* logical */
  int32_t split;      /* axis the tp ranks split it on, or -1 (replicated) */
  int32_t groups;     /* interleave groups of the split (3: fused q, k, v) */
  uint64_t stages;    /* bit s: stage s holds it */
  ir_ref exp_avg, exp_avg_sq, grad; /* its optimizer state and the gradient adamw reads */
  int32_t adamw;      /* its adamw op */
  int32_t grad_stage; /* the stage that makes its gradient */
  int32_t bucket;
} fmt_param;

/* A data-parallel gradient bucket: parameters whose gradients are reduced
 * (and updated) together, in the order the backward pass finishes them. */
typedef struct {
  int32_t stage, nparam;
  int32_t *param;     /* indices into fmt_prog.param */
} fmt_bucket;

/* ---- the GPU part (written by lower/gpu.c; docs/gpu.md) ----------------------
 * Present when the program was compiled for the GPU (`sbpc compile --device
 * cuda`): per tensor its device dtype, per graph op how a GPU runs it, the
 * CUDA modules (source; the PTX for sm_80 and sm_90 is in DIR/gpu/), per
 * stage the device arena plan (the registers' offsets in device bytes), each
 * actor's stream, the parameters' 16-bit working copies and the scratch.
 * Under bf16 or f16, activation and activation-gradient tensors take that
 * dtype on the device; parameters, their gradients, AdamW state and the loss
 * stay f32. The graph keeps its logical (f32) dtypes: the CPU executor runs
 * the same program. */
typedef enum {
  FMT_G_HOST,     /* no device kernel: inputs copied to the host, the CPU kernel, outputs back */
  FMT_G_ROW,      /* codegen's row kernel: buffers bound to op slots (bind), scalars */
  FMT_G_KERNEL,   /* codegen/ops_cuda.c: NAME(inputs..., outputs..., tpi, key) */
  FMT_G_ATTN_FWD, /* codegen's varlen attention forward */
  FMT_G_ATTN_BWD, /* its backward (NAME_pre, NAME_dkdv, NAME_dq), after the forward again for lse */
  FMT_G_GEMM,     /* cuBLAS, bf16/f16/f32 inputs, f32 accumulate */
  FMT_G_COPY,     /* output 0 = input 0, bytes copied (reshape; one-rank collectives) */
  FMT_G_NONE,     /* not a compute op (communication actors, AdamW run by optim actors) */
  FMT_NGKINDS
} fmt_gkind;
extern const char *const fmt_gkind_name[FMT_NGKINDS];
enum { FMT_S_COMPUTE, FMT_S_COMM, FMT_NSTREAMS }; /* the streams of a rank */
#define FMT_G_MAXBIND 24
#define FMT_G_MAXSCALAR 16
#define FMT_G_NARG 16
/* GEMM args, row-major as the op states it (y[batch][m][n] = op(a) op(b)):
 * trans_a, trans_b, m, n, k, lda, ldb, ldc, batch, stride_a, stride_b,
 * stride_c, then the dtypes of a, b, y. Attention args: nseq, seq, q_stride,
 * kv_stride, o_stride, k_off, v_off (elements from q when fused), fused,
 * heads, kv_heads, head_dim, bk (threads of NAME_dkdv), the forward's module
 * (ATTN_BWD), scratch offset of lse. ROW args: rows, cols. KERNEL args:
 * [0] 1 when the launch needs the dropout key. */
enum { FMT_GA_TA, FMT_GA_TB, FMT_GA_M, FMT_GA_N, FMT_GA_K, FMT_GA_LDA, FMT_GA_LDB, FMT_GA_LDC, FMT_GA_BATCH,
       FMT_GA_SA, FMT_GA_SB, FMT_GA_SC, FMT_GA_DTA, FMT_GA_DTB, FMT_GA_DTC };
enum { FMT_GT_NSEQ, FMT_GT_SEQ, FMT_GT_QS, FMT_GT_KVS, FMT_GT_OS, FMT_GT_KOFF, FMT_GT_VOFF, FMT_GT_FUSED,
       FMT_GT_HEADS, FMT_GT_KVH, FMT_GT_D, FMT_GT_BK, FMT_GT_FWDMOD };
typedef struct {
  uint8_t kind;           /* fmt_gkind */
  int32_t module;         /* ROW, KERNEL, ATTN_*: index into fmt_gpu.mod; else -1 */
  int64_t grid;           /* ROW, KERNEL: blocks (x) */
  int32_t block;          /* threads per block */
  int32_t nbind;          /* ROW: per kernel buffer, op input i (>= 0) or output -1 - j */
  int8_t bind[FMT_G_MAXBIND];
  int32_t nscalar;        /* ROW: scalar values, in the kernel's order */
  float scalar[FMT_G_MAXSCALAR];
  int64_t arg[FMT_G_NARG];
  uint32_t zero;          /* bit j: output j is zeroed before the launch */
  uint32_t work;          /* bit i: input i (a parameter) is read through its working copy */
  bool loss_scale;        /* f16: the output seeds the backward pass: scaled by the loss scale */
} fmt_gop;

typedef struct {
  const char *name;       /* the module; its PTX: DIR/gpu/NAME.sm_80.ptx, NAME.sm_90.ptx */
  const char *cuda;       /* its CUDA C source */
  uint64_t hash;          /* FNV-1a of the source (the PTX files' first line names it) */
  int32_t nentry;
  const char **entry;     /* its __global__ functions */
} fmt_gmod;

typedef struct {
  ir_ref tensor;          /* a parameter whose 16-bit working copy GEMMs read */
  int64_t offset, bytes;  /* in the working-copy region after the persistent arena */
} fmt_gwork;

typedef struct {
  int64_t arena_bytes;    /* the device activation arena (registers in device bytes) */
  int64_t **offset;       /* per register, per micro-batch: its offset there */
  uint8_t *stream;        /* per actor: FMT_S_COMPUTE or FMT_S_COMM */
  int32_t nwork;
  fmt_gwork *work;
  int64_t work_bytes;     /* the working copies */
  int64_t scratch_bytes;  /* attention's lse, delta and forward output again, cu_seqlens */
} fmt_gstage;

typedef struct {
  uint8_t precision;      /* ir_dtype of activations: IR_F32, IR_BF16, IR_F16 */
  uint8_t *dtype;         /* per tensor: its dtype on the device (the graph's are logical) */
  int32_t nmod;
  fmt_gmod *mod;          /* mod[0] is the executor's own kernels (cg_rt_cuda) */
  fmt_gop *op;            /* per graph op */
  fmt_gstage *stage;      /* per pipeline stage */
  int64_t predicted_peak; /* max over stages: activation arena + persistent + working copies + scratch */
} fmt_gpu;

typedef struct {
  arena *a;
  ir_graph *g;        /* the local training graph */
  const char *model;  /* the model's name */
  uint64_t model_hash;/* hash of the forward graph the program was made from */
  int32_t dp, tp, pp, micro, zero, recompute;
  int32_t vpp;        /* model chunks per stage (interleaved 1F1B; 1: none) */
  int32_t sp;         /* sequence-parallel degree (1: none; > 1 needs tp 1) */
  uint8_t sp_kind;    /* fmt_spkind: how the sp group runs attention */
  uint8_t packed;     /* packed variable-length batches: the executor supplies
                         each micro-batch's document starts (lower/packed.c) */
  uint8_t adaptive;   /* --adaptive-sp: per step the executor assigns the batch's
                         documents to SP groups of any size (runtime/adaptive.c);
                         micro is then the most micro-batches a step may run,
                         micro_batch 1 and global_batch the samples a step reads */
  int64_t global_batch, seq, micro_batch;
  int32_t *op_stage;  /* per op: pipeline stage (adamw: the grad's stage) */
  int32_t *op_chunk;  /* per op: its model chunk on the stage (virtual stage
                         chunk * pp + stage); 0 when vpp is 1 */
  int32_t *fwd_of;    /* per op: the forward op a backward op differentiates, or -1 */
  int32_t nstage, nparam, nbucket;
  fmt_stage *stage;
  fmt_param *param;
  fmt_bucket *bucket;
  int64_t predicted_peak;    /* max over stages: persistent + arena + the gradient
                                reduction's receive buffer (lower/arena.c) */
  fmt_gpu *gpu;              /* the GPU part, or NULL (a CPU program) */
  const char *cpu_ll;        /* the fused CPU kernels as LLVM IR (not optimised:
                                the host that runs them does that), written to
                                DIR/kernels/cpu.ll, not into program.json; NULL: none */
} fmt_prog;

/* fmt_prog_new: an empty program with its own arena. */
fmt_prog *fmt_prog_new(void);
/* fmt_prog_free: the program, its arena and its graph. NULL is ok. */
void fmt_prog_free(fmt_prog *p);
/* fmt_prog_write: write p as JSON to path (a temporary file renamed into
 * place). False with a message on stderr when it cannot be written. */
bool fmt_prog_write(const fmt_prog *p, const char *path);
/* fmt_prog_parse: a program from text[0..len): the JSON is checked against
 * the schema (types, ranges, every index in range, shapes consistent with
 * the byte sizes, arena offsets inside the arena) before the graph is built.
 * NULL with a one-line reason (naming the field) in err on bad input. */
fmt_prog *fmt_prog_parse(const char *text, size_t len, char *err, size_t errlen);
/* fmt_prog_read: fmt_prog_parse of DIR/program.json; prints
 * "DIR/program.json: error: ..." and returns NULL on failure. */
fmt_prog *fmt_prog_read(const char *dir);
/* fmt_prog_write_dir: DIR/program.json and, when p has fused kernels,
 * DIR/kernels/cpu.ll (DIR and DIR/kernels are created). False with a
 * message on stderr. */
bool fmt_prog_write_dir(const fmt_prog *p, const char *dir);
/* fmt_prog_rank: the stage, dp and tp index of a world rank;
 * fmt_prog_sp_index: its index in its sp group (0 without sp). */
void fmt_prog_rank(const fmt_prog *p, int rank, int *stage, int *dpi, int *tpi);
int fmt_prog_sp_index(const fmt_prog *p, int rank);
/* fmt_prog_param_of: the fmt_prog.param index of tensor t (a parameter or
 * its state), or -1. */
int fmt_prog_param_of(const fmt_prog *p, ir_ref t);
#endif
