/* cg.h — sbpc code generation; also the index of the codegen/ module.
 *
 * Pipeline (one file each):
 *   fuse.c       ir_graph -> fusion groups -> kernels in the kernel IR
 *   kir.c        the kernel IR: builder with hash-consing, automatic staging,
 *                validation, the text dump (docs/kernel-ir.md)
 *   emit_cuda.c  kernel IR -> CUDA C text (warp-shuffle row reductions,
 *                float4 loads when aligned, f32/f16/bf16 buffers)
 *   attn_cuda.c  FlashAttention-style varlen attention fwd/bwd as CUDA C
 *   nvrtc.c      CUDA C -> PTX through NVRTC opened with dlopen
 *   emit_llvm.c  kernel IR -> LLVM IR with the LLVM-C builder, explicitly
 *                vectorised for the host, then O3 (new pass manager)
 *   attn_llvm.c  varlen attention fwd/bwd as LLVM IR (tiled loop nest)
 *   jit.c        ORC LLJIT: adds the optimised module, looks kernels up
 *   cache.c      on-disk kernel cache with checksummed entries
 *   compile.c    `sbpc compile`'s back half: group -> emit -> cache -> files
 *
 * Kernel ABI (CPU, what cg_jit_kernel returns):
 *   void k(void **bufs, const int64_t *dims, const float *scalars);
 * Row kernels: bufs in kernel order (cg_kernel.buf), dims[0] = rows,
 * dims[1] = cols, scalars in kernel order (cg_kernel.scalar). Attention
 * kernels: see docs/codegen.md ("Attention ABI").
 *
 * Memory: kernels and their nodes live in the arena passed to the builder;
 * emitted text is malloc'ed and returned to the caller (free it). */
#ifndef SBPC_CG_H
#define SBPC_CG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ir/ir.h"
#include "util/arena.h"

/* ---- kernel IR ------------------------------------------------------------ */
/* Node operations: X(name, text, nargs). Every value is an f32. Comparisons
 * give 1.0 or 0.0; select(c, a, b) is c != 0 ? a : b. */
#define CG_KOPS(X)                                                          \
  X(LOAD, "load", 0)       /* buffer element (buf) */                      \
  X(SCALAR, "scalar", 0)   /* scalar parameter (buf = scalar index) */     \
  X(CONST, "const", 0)     /* imm */                                       \
  X(COLIDX, "col", 0)      /* column index c */                            \
  X(ROWMOD, "rowmod", 0)   /* (row index) mod cols: query pos. for causal */ \
  X(NROWS, "nrows", 0)     /* rows as f32 */                               \
  X(NCOLS, "ncols", 0)     /* cols as f32 */                               \
  X(RAND, "rand", 1)       /* uniform [0,1) from hash(bits(a), r*cols+c) */ \
  X(NEG, "neg", 1) X(ABS, "abs", 1) X(EXP, "exp", 1) X(LOG, "log", 1)       \
  X(TANH, "tanh", 1) X(ERF, "erf", 1) X(ERFC, "erfc", 1) X(SQRT, "sqrt", 1)                    \
  X(RSQRT, "rsqrt", 1) X(SIGMOID, "sigmoid", 1)                             \
  X(ADD, "add", 2) X(SUB, "sub", 2) X(MUL, "mul", 2) X(DIV, "div", 2)       \
  X(MAX, "max", 2) X(MIN, "min", 2) X(LT, "lt", 2) X(LE, "le", 2)           \
  X(EQ, "eq", 2) X(SELECT, "select", 3)                                    \
  X(RSUM, "rsum", 1)       /* row reduction: sum over the columns */       \
  X(RMAX, "rmax", 1)       /* row reduction: max over the columns */

typedef enum {
#define X(n, s, a) CG_##n,
  CG_KOPS(X)
#undef X
  CG_NKOPS
} cg_kop;

/* Buffer shapes relative to the kernel's rows x cols iteration space. */
typedef enum {
  CG_SH_ROWS, /* [rows, cols], row-major */
  CG_SH_COLS, /* [cols], broadcast over rows */
  CG_SH_ROW1, /* [rows], one value per row */
  CG_SH_ONE   /* one value */
} cg_shape;
typedef enum { CG_IN, CG_OUT, CG_ACC } cg_role; /* CG_ACC: out[0] += (caller zeros) */

typedef struct {
  const char *name;   /* tensor name */
  uint8_t dtype;      /* ir_dtype: F32, F16, BF16 (and I32 for inputs) */
  uint8_t shape;      /* cg_shape */
  uint8_t role;       /* cg_role */
  ir_ref tensor;      /* graph tensor, or IR_NONE */
} cg_buf;

typedef struct {
  uint8_t op;         /* cg_kop */
  bool row;           /* row-level (one value per row) vs per-element */
  int8_t ready;       /* row values: first stage after which it is known */
  int32_t a, b, c;    /* argument nodes (-1 = none) */
  int32_t buf;        /* LOAD: buffer; SCALAR: scalar index */
  float imm;          /* CONST */
} cg_node;

/* A store: elementwise stores run inside stage `stage`'s column loop; row
 * values (or CG_ACC) are stored after that stage's loop. */
typedef struct {
  int32_t buf, node, stage;
} cg_store;

typedef enum { CG_K_ROW, CG_K_ATTN_FWD, CG_K_ATTN_BWD } cg_kkind;

/* Attention kernel parameters (packed varlen, cu_seqlens). */
typedef struct {
  int heads, kv_heads, head_dim;
  bool causal;
  float scale;
  int dtype;          /* ir_dtype of q, k, v, out and their gradients */
} cg_attn;

#define CG_MAXNODES 1024
#define CG_MAXBUF 24
#define CG_MAXSCALAR 16
#define CG_MAXSTORE 24

typedef struct cg_kernel {
  const char *name;
  uint8_t kind;       /* cg_kkind */
  cg_buf buf[CG_MAXBUF]; int nbuf;
  const char *scalar[CG_MAXSCALAR]; int nscalar;
  float scalar_default[CG_MAXSCALAR];
  cg_node node[CG_MAXNODES]; int nnode;
  cg_store store[CG_MAXSTORE]; int nstore;
  int nstages;        /* column passes per row */
  cg_attn attn;
  /* metadata for the manifest */
  const char *ops;    /* fused ops, "bias_add+gelu" */
  int64_t rows, cols; /* launch shape with the graph's bound B and S */
  bool overflow;      /* a table filled up; the kernel is unusable */
} cg_kernel;

extern const char *const cg_kop_name[CG_NKOPS];
extern const int cg_kop_nargs[CG_NKOPS];

/* cg_k_new: an empty row kernel named `name` (copied into a). */
cg_kernel *cg_k_new(arena *a, const char *name);
/* cg_k_buf: add a buffer; returns its index (or -1 when full). */
int cg_k_buf(cg_kernel *k, const char *name, ir_dtype dt, cg_shape sh, cg_role role);
/* cg_k_scalar: add a scalar parameter with a default; returns its node. */
int cg_k_scalar(cg_kernel *k, const char *name, float dflt);
/* Node builders; identical nodes are shared (hash-consing), so two fused ops
 * that need the same row max compute it once. Return the node index. */
int cg_k_load(cg_kernel *k, int buf);
int cg_k_const(cg_kernel *k, float v);
int cg_k_leaf(cg_kernel *k, cg_kop op);             /* COLIDX, ROWMOD, NROWS, NCOLS */
int cg_k_op(cg_kernel *k, cg_kop op, int a, int b, int c);
#define cg_k1(k, op, a) cg_k_op((k), CG_##op, (a), -1, -1)
#define cg_k2(k, op, a, b) cg_k_op((k), CG_##op, (a), (b), -1)
/* cg_k_store: store node v into buffer buf (staged automatically). */
void cg_k_store(cg_kernel *k, int buf, int v);
/* cg_k_reload: the output buffer element node `node` was stored to in a pass
 * before `stage` (so a later pass re-reads it instead of recomputing), or -1. */
int cg_k_reload(const cg_kernel *k, int node, int stage);
/* cg_k_check: validate (args in range, stages consistent, stores to outputs);
 * writes a reason into why and returns false on failure. */
bool cg_k_check(const cg_kernel *k, char *why, size_t n);
/* cg_k_dump: the text form of a kernel (see docs/kernel-ir.md). */
void cg_k_dump(const cg_kernel *k, FILE *out);
/* cg_k_text: the structure of a kernel as a malloc'ed string: the dump
 * without kernel, buffer and scalar names. Kernels with equal text are the
 * same kernel (layers share them); the cache key hashes it. */
char *cg_k_text(const cg_kernel *k);
/* cg_k_attn: an attention kernel (forward or backward). */
cg_kernel *cg_k_attn(arena *a, const char *name, cg_kkind kind, cg_attn at);
/* cg_k_bytes / cg_k_flops: estimated bytes moved and FLOPs for the manifest,
 * with `tokens`/`seqlen` used for attention. */
double cg_k_bytes(const cg_kernel *k);
double cg_k_flops(const cg_kernel *k);

/* ---- fusion (fuse.c) ------------------------------------------------------ */
typedef struct {
  int id;
  cg_kernel *k;       /* NULL for unfused ops */
  ir_ref *ops; int nops;
  const char *why;    /* unfused: why (library call, comm, cannot lower) */
  bool library;       /* GEMM: cuBLAS / OpenBLAS call */
} cg_group;

typedef struct {
  cg_group *g; int n;
  int nkernels, nunfused, nlibrary;
} cg_fusion;

/* cg_fuse: group the fusable ops of g into kernels (maximal vertical chains of
 * KC_ELEM/KC_ROW ops with the same rows x cols, siblings that share an input,
 * all AdamW updates of the graph in one kernel); attention ops become
 * attention kernels; everything else is listed unfused with a reason.
 * `act` is the dtype of activation buffers (IR_F32 keeps the graph's). All
 * memory comes from a. */
cg_fusion *cg_fuse(const ir_graph *g, ir_dtype act, arena *a);
/* cg_fuse_ex: cg_fuse; with single = true every fusable op becomes its own
 * kernel (the unfused baseline of the benchmark). */
cg_fusion *cg_fuse_ex(const ir_graph *g, ir_dtype act, bool single, arena *a);

/* ---- emitters -------------------------------------------------------------- */
/* cg_emit_cuda: CUDA C source of kernel k (extern "C" __global__ NAME).
 * Returns malloc'ed text. */
char *cg_emit_cuda(const cg_kernel *k);
/* cg_cuda_convert: CUDA C of the f32 <-> bf16/f16 helpers (sb_bf2f, sb_f2bf,
 * sb_h2f, sb_f2h) every generated CUDA source starts with. */
extern const char cg_cuda_convert[];
/* cg_attn_cuda: CUDA C of an attention kernel (attn_cuda.c; cg_emit_cuda
 * calls it for attention kernels). Malloc'ed. */
char *cg_attn_cuda(const cg_kernel *k);
/* cg_attn_bk: threads (keys) per block of the attention backward's NAME_dkdv
 * kernel for head_dim d (64, or 32/16 for d > 64 / d > 128). */
int cg_attn_bk(int d);
/* cg_cuda_launch: the launch shape for the runtime: grid and block x. */
void cg_cuda_launch(const cg_kernel *k, int64_t rows, int64_t cols, int64_t *grid, int *block);

/* Device kernels of the ops the kernel IR does not express (ops_cuda.c;
 * the GPU executor's, docs/gpu.md). cg_op_cuda: CUDA C of one kernel named
 * `name` for op o of g (shapes bound), ABI NAME(const void *in..., void
 * *out..., long long tpi, unsigned long long key), with its launch (flat
 * grid and block x) and in *zero_out the outputs (bit j) to zero before the
 * launch; NULL when the op has no such kernel (malloc'ed). cg_op_cuda_has:
 * whether it has one. cg_rt_cuda: the executor's own kernels (accumulate,
 * AdamW, casts, finite check, scale), entry names in cg_rt_cuda_entries
 * (NULL-terminated); malloc'ed. */
char *cg_op_cuda(const ir_graph *g, const ir_op *o, const char *name, int64_t *grid, int *block, uint32_t *zero_out);
bool cg_op_cuda_has(const ir_graph *g, const ir_op *o);
char *cg_rt_cuda(void);
extern const char *const cg_rt_cuda_entries[];

/* NVRTC (nvrtc.c). cg_nvrtc_available: true when libnvrtc could be opened;
 * version into major/minor. */
bool cg_nvrtc_available(int *major, int *minor);
/* cg_nvrtc_ptx: compile src for sm_<arch> (80, 90); returns malloc'ed PTX or
 * NULL with a malloc'ed log in *log (always set; free it). */
char *cg_nvrtc_ptx(const char *src, const char *name, int arch, char **log);
/* cg_nvrtc_module: cg_nvrtc_ptx through the kernel cache (key: the source,
 * NVRTC's version and the arch; no_cache or SBPC_NO_KERNEL_CACHE=1 bypass
 * it): the GPU program's modules (lower/gpu.c, runtime/device.c). */
char *cg_nvrtc_module(const char *src, const char *name, int arch, bool no_cache, char **log);

/* ptxas (ptxas.c). cg_ptxas_path: the ptxas of $CUDA_HOME (default
 * /usr/local/cuda) into buf; false when absent. cg_ptxas: assemble ptx_path
 * for sm_<arch> with -v; returns 0 on success, 1 on an assembler error, -1
 * when ptxas cannot run; registers (max over entries) and spill store bytes
 * (sum) from the log; *log is malloc'ed (or NULL). */
bool cg_ptxas_path(char *buf, size_t n);
int cg_ptxas(const char *ptx_path, int arch, int *regs, int *spills, char **log);

/* LLVM (emit_llvm.c). The opaque module holds any number of kernels. */
typedef struct cg_llvm cg_llvm;
/* cg_llvm_new: a module for the host CPU. */
cg_llvm *cg_llvm_new(const char *name);
/* cg_llvm_add: emit kernel k as function k->name; false with why on failure. */
bool cg_llvm_add(cg_llvm *m, const cg_kernel *k, char *why, size_t n);
/* cg_llvm_optimize: verify and run O3 for the host; false with why. */
bool cg_llvm_optimize(cg_llvm *m, char *why, size_t n);
/* cg_llvm_text: the module as LLVM assembly (malloc'ed). */
char *cg_llvm_text(cg_llvm *m);
/* cg_llvm_free: dispose of the module (unless handed to a JIT). */
void cg_llvm_free(cg_llvm *m);
/* cg_llvm_host: "cpu +features" of the host (static buffer), for cache keys. */
const char *cg_llvm_host(void);
/* cg_llvm_version: "14.0.6". */
const char *cg_llvm_version(void);
/* cg_llvm_vector_width: the f32 lanes the emitter uses on this host. */
int cg_llvm_vector_width(void);

/* ORC JIT (jit.c). */
typedef struct cg_jit cg_jit;
typedef void (*cg_kfn)(void **bufs, const int64_t *dims, const float *scalars);
/* cg_jit_new: an LLJIT for the host; takes ownership of m (optimised or not);
 * NULL with why on failure (m is freed then too). */
cg_jit *cg_jit_new(cg_llvm *m, char *why, size_t n);
/* cg_jit_kernel: the function pointer of kernel `name`, or NULL. */
cg_kfn cg_jit_kernel(cg_jit *j, const char *name);
/* cg_jit_free: release the JIT and its code. NULL is ok. */
void cg_jit_free(cg_jit *j);
/* cg_jit_compile: convenience for tests and the runtime: emit, optimise and
 * JIT the given kernels in one module. NULL with why on failure. */
cg_jit *cg_jit_compile(cg_kernel *const *ks, int n, char *why, size_t wn);

/* cg_jit_from_ir: a JIT over LLVM IR texts (the DIR/kernels/NAME.ll files
 * of `sbpc compile`, already optimised for this host), linked into one
 * module. NULL with why on a parse or link error. */
cg_jit *cg_jit_from_ir(const char *const *texts, int n, char *why, size_t wn);

/* cg_llvm_parse: a module (for the host) from LLVM IR text, e.g. a
 * program's DIR/kernels/cpu.ll; optimise it with cg_llvm_optimize. NULL
 * with why on a parse error. */
cg_llvm *cg_llvm_parse(const char *text, char *why, size_t wn);

/* cg_llvm_object: run the backend of the host target machine on m (optimise
 * it first) and return the object file in *obj (malloc'ed, *len bytes); m
 * stays the caller's (its IR may be changed by the backend: JIT it no more).
 * False with why on failure. */
bool cg_llvm_object(cg_llvm *m, char **obj, size_t *len, char *why, size_t n);
/* cg_jit_from_object: an LLJIT over an object file cg_llvm_object made on
 * this host (same CPU, features and LLVM version: the caller keys its cache
 * on them); the bytes are copied. NULL with why when LLVM refuses it. */
cg_jit *cg_jit_from_object(const char *obj, size_t len, char *why, size_t n);

/* ---- cache (cache.c) ------------------------------------------------------- */
/* cg_cache_dir: the cache directory ($SBPC_CACHE_DIR, $XDG_CACHE_HOME/sbpc,
 * ~/.cache/sbpc) into buf; false if none can be named. */
bool cg_cache_dir(char *buf, size_t n);
/* cg_hash: 64-bit FNV-1a of s continuing from h (start with 0). */
uint64_t cg_hash(const char *s, size_t n, uint64_t h);
/* cg_cache_get: the payload stored under key (malloc'ed, NUL-terminated) or
 * NULL when absent or corrupt (a corrupt entry is removed). */
char *cg_cache_get(const char *dir, uint64_t key, const char *ext, size_t *len);
/* cg_cache_put: store payload under key atomically (temp file + rename). */
bool cg_cache_put(const char *dir, uint64_t key, const char *ext, const char *data, size_t len);

/* ---- compile (compile.c) --------------------------------------------------- */
typedef struct {
  const char *outdir;   /* DIR: kernels go to DIR/kernels */
  ir_dtype act;         /* activation dtype of the CUDA kernels */
  bool dump;            /* print the kernel IR to stdout */
  bool no_cache;
  int tp;               /* tensor-parallel degree: attention kernels get heads / tp */
  FILE *log;            /* progress lines ("kernels: 14 (14 from cache)") */
} cg_opts;

/* cg_compile: fuse g, emit every kernel as .cu (+ .ptx for sm_80/sm_90 when
 * NVRTC is present) and .ll (optimised for the host), write
 * DIR/kernels/manifest.json. Returns an exit status (util/diag.h). */
int cg_compile(const ir_graph *g, const cg_opts *o);
#endif
