/* rt_internal.h — what the runtime's files share and nobody else needs:
 * the CPU kernels, the MPI wrapper (mpi.c is the only file with mpi.h), the
 * data loader, seeded initialisation, safetensors and the rank's state. */
#ifndef SBPC_RT_INTERNAL_H
#define SBPC_RT_INTERNAL_H
#include "runtime/rt.h"
#include "format/program.h"
#include "ir/ir.h"
#include <stdint.h>

/* ---- kernels_cpu.c ----------------------------------------------------- */
typedef struct {
  int64_t step;      /* optimizer step, 1-based (adamw bias correction) */
  uint64_t seed;     /* dropout masks */
  int64_t micro;     /* micro-batch index (dropout masks) */
  int tp, tpi;       /* the tp group: a vocabulary-split table's rows are tpi's */
  int64_t pos0;      /* sequence parallelism: the first position of this rank's tokens */
  const int32_t *doc; /* packed ops: the micro-batch's document starts ([B, S]: the
                         index in its sample of each token's document's first
                         token; data.c), else NULL */
  double ce_ratio;   /* packed cross_entropy: the step's predicted tokens / its B*S */
  int sp, spi;       /* the sp group's size and this rank's index (ring attention's blocks) */
  const int32_t *doc_all; /* packed attention under Ulysses: the document starts of
                         the whole sequence it sees ([B, sp * S/sp]), else NULL (doc) */
  int spg;           /* --adaptive-sp: the size of this rank's group in this
                        micro-batch (attention on spg * S/sp tokens, heads * sp / spg);
                        0: the program's sp */
} rt_kctx;
/* rt_kernel: run op o of g (B and S bound to the local micro-batch) on host
 * buffers: in[i] / out[i] hold the op's tensors (f32, or i32 for ids). Returns
 * false with a message on stderr for an op it cannot run. */
bool rt_kernel(const ir_graph *g, const ir_op *o, void *const *in, void *const *out, const rt_kctx *kc);
/* rt_matmul: Y = alpha op(A) op(B) + beta Y for matmul op o (its trans_a /
 * trans_b, batched over leading dims, B shared when rank 2), through
 * rt_sgemm; false for an operand below rank 2. k_matmul is alpha 1, beta 0;
 * the executor's direct accumulation (into_acc) is alpha gscale, beta 1. */
bool rt_matmul(const ir_graph *g, const ir_op *o, const float *A, const float *Bm, float alpha, float beta, float *Y);
/* rt_ring_kernel (kernels_ring.c): a ring_attention or ring_attention_grad
 * step (ir/ops.def) on host buffers, its kv block the one of sp member
 * (kc->spi - step) mod kc->sp; false for a step that cannot run. */
bool rt_ring_kernel(const ir_graph *g, const ir_op *o, void *const *in, void *const *out, const rt_kctx *kc);
/* rt_adamw: PyTorch's AdamW on n elements in place (attrs lr, betas, eps,
 * weight_decay; step 1-based). */
void rt_adamw(const ir_attrs *a, float *p, const float *g, float *m, float *v, int64_t n, int64_t step);
/* rt_kernel_flops: an estimate of the op's FLOPs (for tokens/s reports). */
double rt_kernel_flops(const ir_graph *g, const ir_op *o);
/* rt_model_flops: the op's model FLOPs: a GEMM's 2MNK, attention's score and
 * value products (forward 4, backward 8 x S^2 d per head); 0 for the rest. */
double rt_model_flops(const ir_graph *g, const ir_op *o);

/* ---- par.c ---------------------------------------------------------------- */
/* rt_par_fn: one chunk [lo, hi) of a split loop; chunk: its index. */
typedef void (*rt_par_fn)(void *ctx, int chunk, int64_t lo, int64_t hi);
/* rt_cores: the CPUs this rank may run on (its affinity mask when mpirun
 * bound it, else its share of the machine's among the job's ranks on it).
 * rt_own_core: no more ranks here than cores (a rank that waits may poll
 * without taking a peer's core). rt_threads: threads for split loops (SBPC_THREADS, default
 * rt_cores(), at most 8). rt_par_chunks: how many chunks rt_par_for cuts n items of
 * `grain` elements each into (1 for small loops): size per-chunk partials by
 * it. rt_par_for: run fn on each chunk, the calling thread on chunk 0, others
 * on threads, all joined before it returns; chunk bounds depend only on n and
 * the thread count, so a reduction combining per-chunk partials in chunk
 * order is deterministic. Callable from several threads at once. */
int rt_cores(void);
bool rt_own_core(void);
int rt_threads(void);
/* RT_VECTORIZE: on a memory-bound elementwise loop function, let GCC
 * vectorize it (the build is -O2 without -march; SSE2 lanes give the same
 * IEEE results as scalar code). Loops calling sqrt stay scalar (errno),
 * except in kernels_cpu.c, compiled with -fno-math-errno (CMakeLists.txt). */
#if defined(__GNUC__) && !defined(__clang__)
#define RT_VECTORIZE __attribute__((optimize("O3")))
#else
#define RT_VECTORIZE
#endif
/* RT_CLONES(targets...): also build the function for these targets, picked
 * at load time (GCC's target_clones, an ifunc). Not under ThreadSanitizer:
 * the resolvers run before its runtime is up and the binary crashes at
 * start. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define RT_CLONES(...) __attribute__((target_clones(__VA_ARGS__)))
#else
#define RT_CLONES(...)
#endif
int rt_par_chunks(int64_t n, int64_t grain);
void rt_par_for(int64_t n, int64_t grain, rt_par_fn fn, void *ctx);
/* rt_par_items: run fn over n coarse items (each a few sgemms, which stay
 * single-threaded: rt_par_nested), one contiguous chunk per thread (at most
 * n chunks, chunk 0 on the calling thread). Items must write disjoint
 * outputs; their results do not depend on the split. Callable from several
 * threads at once: it changes no process-wide setting. */
void rt_par_items(int64_t n, rt_par_fn fn, void *ctx);
/* rt_par_split: fn over T (1-64) chunks of [0, n), chunk c = [c * step,
 * (c + 1) * step) clipped to n, the last to n; chunk 0 on the calling thread,
 * all joined before it returns. rt_par_nested: is this thread running a
 * chunk of a split of more than one chunk? (A GEMM there stays on it.) */
void rt_par_split(int64_t n, int T, int64_t step, rt_par_fn fn, void *ctx);
bool rt_par_nested(void);

/* ---- blas.c: the BLAS library's threads --------------------------------------- */
/* rt_blas_init: once per process, before the first GEMM (rt_sgemm and
 * rt_blas_threads call it): OpenBLAS set to one thread (rt_sgemm splits).
 * rt_blas_threads: the threads one GEMM is split over (the count OpenBLAS
 * came up with: OPENBLAS_NUM_THREADS, else all cores; 1-64). */
void rt_blas_init(void);
int rt_blas_threads(void);
/* rt_sgemm: cblas_sgemm, row-major: C = alpha op(A) op(B) + beta C, op(A)
 * [m, k], op(B) [k, n]. A large GEMM outside a par.c chunk is cut into
 * rt_blas_threads() panels of C's columns (m <= n) or rows, each a
 * single-threaded sgemm on its own thread; the bounds depend only on the
 * shape and thread count. Every sgemm of the runtime goes through it. */
void rt_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* ---- init.c -------------------------------------------------------------- */
/* rt_init_param: fill a parameter from a hash of (seed, its logical name,
 * element index): independent of how it is sharded. LayerNorm/RMSNorm weights
 * ("...weight" of rank 1) are 1, biases 0, others N(0, 0.02) (Box-Muller). */
void rt_init_param(const char *name, int rank, float *x, int64_t n, uint64_t seed);
/* rt_hash64: splitmix64 of a combination (inline: dropout calls it per
 * element); rt_hash_str: FNV-1a of a string. */
static inline uint64_t rt_hash64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t rt_hash_str(const char *s);

/* ---- indexed.c: Megatron-LM's indexed dataset (MMIDIDX) ---------------------- */
typedef struct rt_idx rt_idx;
/* rt_idx_open: map PREFIX.idx and PREFIX.bin and validate every field; NULL
 * after "file: error: ..." on anything wrong. */
rt_idx *rt_idx_open(const char *prefix);
/* rt_idx_prefix: does --data `path` name an indexed dataset (PREFIX, or
 * PREFIX.idx / PREFIX.bin with PREFIX.idx present)? Its prefix into
 * prefix[n]. A flat file's path (no PREFIX.idx) gives false. */
bool rt_idx_prefix(const char *path, char *prefix, size_t n);
/* rt_idx_tokens: the token stream (the mapped .bin): bytes per token,
 * signedness and count. */
const unsigned char *rt_idx_tokens(const rt_idx *x, int *width, bool *sgn, int64_t *ntok);
/* rt_idx_ndocs: documents; rt_idx_doc_start: the stream index of document
 * d's first token (d in [0, ndocs]; d = ndocs gives the token count). */
int64_t rt_idx_ndocs(const rt_idx *x);
int64_t rt_idx_doc_start(const rt_idx *x, int64_t d);
/* rt_idx_path: the .idx file's path, or with bin the .bin's (for messages). */
const char *rt_idx_path(const rt_idx *x, bool bin);
void rt_idx_free(rt_idx *x);

/* ---- data.c ---------------------------------------------------------------- */
typedef struct {
  const unsigned char *tok; /* the stream: ntok little-endian ids of `width` bytes */
  int width;
  bool sgn;              /* signed ids */
  int64_t ntok, nsamples, seq;
  int64_t eos;           /* packed: a document ends after this id (-1: none; set by the caller) */
  rt_idx *idx;           /* an indexed dataset (tok is its .bin), or NULL */
  const void *map;       /* the mapped flat token file (tok points into it), or NULL */
  size_t maplen;
  void *own;             /* the synthetic stream, or NULL */
} rt_data;
/* rt_data_open: open a flat token file (little-endian int32) or an indexed
 * dataset (indexed.c) and validate it against the sequence length and
 * vocabulary; prints "path: error: ..." and returns false on a bad file. */
bool rt_data_open(rt_data *d, const char *path, int64_t seq, int64_t vocab);
/* rt_data_synthetic: a deterministic token stream (no --data given). */
void rt_data_synthetic(rt_data *d, int64_t seq, int64_t vocab, int64_t nsamples);
/* rt_data_batch: samples [pos, pos+n) (cyclic) as ids/labels of n*seq each. */
void rt_data_batch(const rt_data *d, int64_t pos, int64_t n, int32_t *ids, int32_t *labels);
/* rt_data_has_docs: the stream has document boundaries (an indexed dataset,
 * or eos set). */
bool rt_data_has_docs(const rt_data *d);
/* rt_data_packed: rt_data_batch for a packed program: also doc (n*seq): per
 * token the index in its sample of its document's first token; labels that
 * would cross into the next document are -1 (ignored). */
void rt_data_packed(const rt_data *d, int64_t pos, int64_t n, int32_t *ids, int32_t *labels, int32_t *doc);
/* rt_data_predicted: the labels of samples [pos, pos+n) that rt_data_packed
 * does not ignore. */
int64_t rt_data_predicted(const rt_data *d, int64_t pos, int64_t n);
void rt_data_free(rt_data *d);

/* ---- safetensors.c ------------------------------------------------------------ */
typedef struct {
  const char *name;
  int rank;
  int64_t shape[IR_MAXRANK];
  const float *data;     /* f32 elements */
} rt_st_tensor;
typedef struct rt_st rt_st;
/* rt_st_read: parse a safetensors file (f32 tensors only), mapped rather than
 * read (tensors point into the mapping); shapes are checked against the file
 * size before anything is allocated. NULL + message on error. */
rt_st *rt_st_read(const char *path);
/* rt_st_find: tensor by name (also tried with a "transformer." prefix). */
const rt_st_tensor *rt_st_find(const rt_st *s, const char *name);
int rt_st_count(const rt_st *s);
const rt_st_tensor *rt_st_at(const rt_st *s, int i);
void rt_st_free(rt_st *s);
/* rt_st_write: write n tensors (f32) to path, a new file (an existing file or
 * link there is an error, never followed), and fsync it. Returns false +
 * message on error. */
bool rt_st_write(const char *path, const rt_st_tensor *t, int n);

/* ---- mpi.c ---------------------------------------------------------------------- */
/* One communicator per use: world, the data-parallel group of this rank (same
 * pipeline stage), the pipeline neighbours through world ranks. Every blocking
 * operation polls with MPI_Test against a deadline (rt_comm_timeout seconds) and
 * aborts the job naming the peer that did not answer. */
typedef struct rt_comm rt_comm;
/* rt_comm_init: MPI_Init (threads: funneled), and the calling thread's timer
 * slack set to 1 ns (its polling naps); NULL when MPI is not usable. */
rt_comm *rt_comm_init(int *argc, char ***argv);
int rt_comm_rank(const rt_comm *c);
int rt_comm_size(const rt_comm *c);
/* rt_comm_split_dp: make the data-parallel group: ranks with the same color. */
void rt_comm_split_dp(rt_comm *c, int color);
/* rt_comm_allgather_dp: out = the n floats of every dp rank, in rank order. */
void rt_comm_allgather_dp(rt_comm *c, const float *in, int64_t n, float *out);
/* rt_comm_allreduce_dp / _world: in-place float sum over the group. */
void rt_comm_allreduce_dp(rt_comm *c, float *x, int64_t n);
void rt_comm_allreduce_world(rt_comm *c, double *x, int n);
/* rt_comm_send / rt_comm_recv: float point-to-point with a world rank. */
void rt_comm_send(rt_comm *c, const float *x, int64_t n, int to, int tag);
void rt_comm_recv(rt_comm *c, float *x, int64_t n, int from, int tag);
/* rt_comm_split_tp: make the tensor-parallel group: ranks with the same color. */
void rt_comm_split_tp(rt_comm *c, int color);
/* rt_comm_allreduce_tp: in-place sum (or max) over the tp group. */
void rt_comm_allreduce_tp(rt_comm *c, float *x, int64_t n, bool max);
/* rt_comm_allgather_tp: out = the n floats of every tp rank, in rank order. */
void rt_comm_allgather_tp(rt_comm *c, const float *in, int64_t n, float *out);
/* Non-blocking point-to-point for the actor executor (main thread only):
 * rt_comm_test returns true (and frees the request) once it completed. */
typedef struct rt_req rt_req;
rt_req *rt_comm_isend(rt_comm *c, const float *x, int64_t n, int to, int tag);
rt_req *rt_comm_irecv(rt_comm *c, float *x, int64_t n, int from, int tag);
bool rt_comm_test(rt_req *q);
int rt_comm_req_peer(const rt_req *q);
int rt_comm_tag_ub(void);
/* Non-blocking collectives on a group (the tp or dp communicator: the tp
 * one holds the tp x sp ranks of a stage's dp index, the sp group when sp > 1,
 * as sp needs tp 1; the dp one every rank of the stage with the same tp
 * index, dp x sp ranks), for the
 * executor's main thread; complete them with rt_comm_test. A group's
 * collectives must be posted in the same order on every member.
 * iallreduce: x in place (sum, or max); iallgather: out = every member's n
 * floats in member order; ireduce_scatter: out = the sum over the group of
 * member i's block of in (counts[i] floats each, in member order);
 * iallgatherv: buf holds counts[i] floats of member i at displs[i], this
 * member's in place, the others' filled in. */
typedef enum { RT_TP, RT_DP, RT_SPG } rt_group; /* RT_SPG: the adaptive SP group in use (rt_comm_sp_use) */
/* rt_comm_sp_groups (--adaptive-sp): every group of masks[0..n), a partition
 * of the world (bit r: world rank r), has a communicator: collective over
 * the world, every rank passing the same partition; a membership is made
 * once (MPI_Comm_split when the partition holds one not made before) and
 * this rank's are cached by membership. rt_comm_sp_use: make this rank's
 * cached group of membership mask the RT_SPG group; false if not made.
 * rt_comm_sp_count: communicators this rank holds in the cache. */
void rt_comm_sp_groups(rt_comm *c, const uint64_t *masks, int n);
bool rt_comm_sp_use(rt_comm *c, uint64_t mask);
int rt_comm_sp_count(const rt_comm *c);
/* rt_comm_bcast_world: n bytes from world rank 0 to every rank */
void rt_comm_bcast_world(rt_comm *c, void *buf, int64_t n);
rt_req *rt_comm_iallreduce(rt_comm *c, rt_group g, float *x, int64_t n, bool max);
rt_req *rt_comm_iallgather(rt_comm *c, rt_group g, const float *in, int64_t n, float *out);
rt_req *rt_comm_iallgatherv(rt_comm *c, rt_group g, float *buf, const int *counts, const int *displs);
/* ialltoall: block i of in (n floats) goes to member i, block i of out comes from it */
rt_req *rt_comm_ialltoall(rt_comm *c, rt_group g, const float *in, int64_t n, float *out);
/* ishift: the group as a ring in member order: in (n floats) goes to the
 * next member, out comes from the previous one (ring attention's blocks) */
rt_req *rt_comm_ishift(rt_comm *c, rt_group g, const float *in, int64_t n, float *out);
/* iexchange: a send of out (nout floats) to member `member` of group g and a
 * receive of nin floats from it into in, with `tag` (0 .. rt_comm_tag_ub())
 * on the group's communicator: two exchanges of one tag with one member
 * match in the order both post them; the executor's dp reductions (ZeRO-2's
 * reduce-scatter, ZeRO-0/1's all-reduce) are one per other member */
rt_req *rt_comm_iexchange(rt_comm *c, rt_group g, int member, const float *out, int64_t nout, float *in, int64_t nin,
                          int tag);
/* rt_comm_group_timeout_abort: a collective of group g did not complete in
 * time: ping the group's members for 2 s, name those that stay silent, end
 * the job */
void rt_comm_group_timeout_abort(rt_comm *c, rt_group g, const char *what);
/* rt_comm_timeout_abort: report that `peer` did not answer and end the job */
void rt_comm_timeout_abort(rt_comm *c, int peer, const char *what);
/* rt_comm_gather_str: rank 0 gets every rank's string (malloc'ed copies, an
 * array of size ranks, the caller frees all); others get NULL. c NULL: one
 * process, the array holds a copy of s. */
char **rt_comm_gather_str(rt_comm *c, const char *s);
/* rt_comm_bcast: n bytes of buf from member 0 of group g to every member
 * (the GPU executor's NCCL ids); with the watchdog. */
void rt_comm_bcast(rt_comm *c, rt_group g, void *buf, int n);
/* rt_comm_barrier: a barrier with the same watchdog. */
void rt_comm_barrier(rt_comm *c);
/* rt_comm_abort: end every rank with status code. */
void rt_comm_abort(rt_comm *c, int code);
void rt_comm_finalize(rt_comm *c);
extern double rt_comm_timeout;

/* ---- exec.c: the rank's state ---------------------------------------------------- */
typedef struct rt_exec rt_exec;
/* rt_exec_new: the state of world rank `rank` of program p (p stays the
 * caller's; dir holds its kernels): both arenas, parameters initialised from
 * the seed, the fused kernels' machine code. comm is NULL for one process.
 * NULL + message on error. */
rt_exec *rt_exec_new(const fmt_prog *p, const char *dir, const rt_config *cfg, rt_comm *comm, int rank, diag *d);
void rt_exec_free(rt_exec *e);
const ir_graph *rt_exec_graph(const rt_exec *e);
/* rt_exec_step / rt_exec_set_step: optimizer steps done */
int64_t rt_exec_step(const rt_exec *e);
void rt_exec_set_step(rt_exec *e, int64_t step);
/* rt_exec_peak_bytes: the most bytes this rank held so far (arenas and
 * temporaries) */
int64_t rt_exec_peak_bytes(const rt_exec *e);
/* rt_exec_rank_of: the world rank of stage s, dp index i, tp index 0 */
int rt_exec_rank_of(const rt_exec *e, int s, int i);
/* rt_exec_model_hash: the program's hash of its model's forward graph (the
 * same for every layout: checkpoints record it to refuse another model's) */
uint64_t rt_exec_model_hash(const rt_exec *e);
/* rt_exec_holders: bit s set when stage s holds parameter p */
uint64_t rt_exec_holders(const rt_exec *e, ir_ref p);
/* rt_exec_holds: tensor t (parameter or optimizer state) is held here */
bool rt_exec_holds(const rt_exec *e, ir_ref t);
/* rt_exec_param: this rank's buffer of a held parameter or state (its tp
 * shard; under ZeRO its dp slice for state), else NULL */
float *rt_exec_param(rt_exec *e, ir_ref t);
/* rt_exec_grad: the gradient accumulator of parameter p after a step (its
 * ZeRO-2 slice when sliced), or NULL when this rank has none */
float *rt_exec_grad(rt_exec *e, ir_ref p);
/* rt_exec_logical: a malloc'ed copy of tensor t's logical value (collective
 * over the tp group, and over the dp group for ZeRO-sliced state: every
 * rank holding t calls it); rt_exec_set_logical: take this rank's part of a
 * logical value; rt_exec_logical_shape: the logical shape, returns rank. */
float *rt_exec_logical(rt_exec *e, ir_ref t);
void rt_exec_set_logical(rt_exec *e, ir_ref t, const float *full);
int rt_exec_logical_shape(const rt_exec *e, ir_ref t, int64_t *shape);
/* rt_exec_step_run: one training step of the rank's micro-batches (ids and
 * labels: M local micro-batches back to back) by the actor executor
 * (executor.c), the update included. Returns the sum of the M losses held
 * here (0 where the loss is not); *ok false when a kernel failed. */
double rt_exec_step_run(rt_exec *e, const int32_t *ids, const int32_t *labels, bool *ok);
/* rt_exec_set_docs: for a packed program, the next step's document starts
 * (the rank's micro-batches back to back, as ids; the caller keeps them
 * until the step ran) and the fraction of the step's B * S labels that are
 * predicted (not ignored): the loss is the mean over those. */
void rt_exec_set_docs(rt_exec *e, const int32_t *doc, double ce_ratio);

/* ---- adaptive.c: --adaptive-sp ----------------------------------------------------- */
typedef struct rt_adapt rt_adapt;
/* rt_adapt_new: the adaptive SP state of an adaptive program (rank 0 sets up
 * cfg->sp_solver); NULL when p is not adaptive or on error (a message when
 * --adaptive-sp or --sp-degree was given for a program without it, or the
 * solver cannot be set up: then *bad is true). */
rt_adapt *rt_adapt_new(const fmt_prog *p, rt_comm *comm, int rank, int ranks, const rt_config *cfg, bool *bad);
void rt_adapt_free(rt_adapt *a);
/* rt_adapt_step: the step's batch at data position pos: solved (rank 0, or
 * taken from the solve ahead), broadcast, this rank's micro-batches packed
 * into *ids and *labels (micro x S / sp each, valid until the next call) and
 * handed to e (e->ad, the loss divisor); with more, rank 0 starts solving
 * the next batch. Collective over the world; false (message printed) when
 * the solver finds no assignment. The caller clears e->ad after the step. */
bool rt_adapt_step(rt_adapt *a, struct rt_exec *e, const rt_data *d, int64_t pos, bool more, const int32_t **ids,
                   const int32_t **labels);
/* rt_adapt_groups: the last step's group shapes, "COUNTxSIZE+..." per
 * micro-batch, micro-batches separated by ','; rt_adapt_predicted: the
 * solver's predicted step time (rank 0; seconds). */
const char *rt_adapt_groups(const rt_adapt *a);
/* rt_adapt_report: rank 0 prints the micro-batches run and the communicators it holds */
void rt_adapt_report(const rt_adapt *a);
double rt_adapt_predicted(const rt_adapt *a);
/* rt_adapt_solve_s: the solver's CPU seconds for the last step's batch (rank 0) */
double rt_adapt_solve_s(const rt_adapt *a);

/* ---- shard.c: tp shards of logical values ---------------------------------------- */
/* rt_shard: this rank's part of a logical tensor split on axis `split` into
 * tp parts (groups interleaved groups each; split < 0: the whole); local has
 * n_local floats. rt_unshard: the logical tensor from all ranks' parts
 * (all = tp blocks of n_local, in rank order). */
void rt_shard(const int64_t *shape, int rank, int split, int tp, int tpi, int groups, const float *full, float *local);
void rt_unshard(const int64_t *shape, int rank, int split, int tp, int groups, const float *all, float *full);

/* ---- memcheck.c ------------------------------------------------------------------ */
/* rt_mem_check: before anything is allocated for the run, what the rank of
 * stage `stage` of program p will hold (its two planned arenas, the token
 * stream, the attention kernels' score scratch) against this machine's
 * available memory (util/os.h); false with the number, the limit and the
 * parts printed when it does not fit. */
bool rt_mem_check(const fmt_prog *p, int stage, const rt_config *c);

/* ---- ckpt.c ------------------------------------------------------------------------ */
/* rt_ckpt_save: gather parameters and optimizer state on rank 0 and write the
 * checkpoint directory (comm NULL = one process). All ranks must call it. */
bool rt_ckpt_save(rt_exec *e, rt_comm *c, const char *dir, int64_t data_pos, uint64_t seed);
/* rt_ckpt_load: load a checkpoint into any layout; sets the step and *data_pos. */
bool rt_ckpt_load(rt_exec *e, const char *dir, int64_t *data_pos);
/* rt_ckpt_save_ok: may --save write a checkpoint at dir? (dir, dir.partial
 * and dir.previous each absent, or a real folder that is empty or an sbpc
 * checkpoint holding only its own files); else false + message. */
bool rt_ckpt_save_ok(const char *dir);
/* rt_ckpt_read_state: parse a checkpoint's state.json: version 1, step and
 * data position whole numbers in [0, 2^53], *model the architecture hash (0
 * when not recorded). False + message on anything else. */
bool rt_ckpt_read_state(const char *path, int64_t *step, int64_t *pos, uint64_t *model);
/* rt_load_weights: Hugging Face safetensors into the parameters. */
bool rt_load_weights(rt_exec *e, const char *path);
#endif
