/* rt.h — the thin executor: the public face of runtime/ (prefix rt_).
 *
 * The runtime runs a compiled program (format/program.h: the DIR that
 * `sbpc compile` wrote) and nothing else: it loads DIR/program.json, takes
 * the rank's stage, shards and actors from it, allocates the rank's two
 * arenas (persistent tensors and activations, at the offsets the compiler
 * planned), initialises or loads the parameters, and fires actors: compute
 * kernels on worker threads (codegen's JIT-compiled kernels, or the fp32
 * reference kernels), MPI point-to-point and collectives on the main thread
 * in the order the program fixes. It runs no front end, no autodiff, no SBP
 * deduction and no planning; no file of runtime/ includes a header of frontend/,
 * planner/ or lower/ (tests/layering.sh checks it).
 *
 * Memory: activations live in the rank's activation arena at the program's
 * offsets (an instance takes its bytes only once every earlier holder of
 * them let go: executor.c); parameters, their gradient accumulators (or
 * ZeRO-2 slices) and AdamW state in the persistent arena, for the whole run.
 * Anything else a kernel or a collective needs is malloc'ed and freed around
 * it. The measured peak is both arenas plus those temporaries at their
 * highest. See docs/runtime.md. */
#ifndef SBPC_RT_H
#define SBPC_RT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ir_graph;

/* --kernels: ref, jit (an error when the JIT cannot be set up), or auto, the
 * default: jit, falling back to ref with a one-line note. */
enum { RT_KERNELS_REF, RT_KERNELS_JIT, RT_KERNELS_AUTO };
/* --device: cpu, cuda (the GPU executor, runtime/device.c; docs/gpu.md) or
 * auto, the default: cuda for a program compiled for the GPU (an error when
 * no GPU is usable), else cpu. */
enum { RT_DEVICE_AUTO, RT_DEVICE_CPU, RT_DEVICE_CUDA };

/* --adaptive-sp (runtime/adaptive.c): per step the batch's documents are
 * assigned to micro-batches and SP groups by a solver the caller hands the
 * runtime (the driver: the planner's, the same code as `sbpc sp`; the
 * runtime includes no planner header). An assignment of n documents on
 * `ranks` ranks: nmb micro-batches; group[q * ranks + r] is rank r's group in
 * micro-batch q (an id >= 0; the ranks of one id form the group, in rank
 * order; -1: idle, a group of its own), doc_mb[i] and doc_group[i] where
 * document i runs (its group's documents in index order). The arrays are
 * malloc'ed by the solver and freed by the runtime. */
typedef struct {
  int nmb;
  int32_t *group, *doc_mb, *doc_group;
  double predicted_s;   /* the solver's predicted step time (seconds) */
  double solve_s;       /* the solver's CPU seconds for this batch */
} rt_sp_assign;

typedef struct rt_sp_solver {
  /* init: once, before the first solve, with the program's graph (heads
   * divided by the program's sp), the world size, the tokens one rank holds
   * per micro-batch and the most micro-batches; false with why */
  bool (*init)(void *ctx, const struct ir_graph *g, int sp, int ranks, int64_t cap, int max_micro, char *why,
               size_t nwhy);
  /* solve: the assignment of documents len[0..n); false with why. Called
   * on rank 0 only, from a thread of its own (one solve at a time). */
  bool (*solve)(void *ctx, const int64_t *len, int n, rt_sp_assign *out, char *why, size_t nwhy);
  void *ctx;
} rt_sp_solver;

/* What a run adds to the program: its length, data, I/O and optimizer
 * settings. Nothing here changes what the program computes per step except
 * lr and weight decay (AdamW's hyper-parameters, applied at run time). */
typedef struct {
  int64_t steps;
  const char *data, *weights, *save, *resume, *log;
  const char *trace;     /* --trace FILE: the last step as a Chrome/Perfetto trace */
  int64_t trace_steps;   /* --trace-steps K: the last K steps instead (0: 1) */
  double lr, weight_decay; /* < 0: the program's */
  uint64_t seed;
  int64_t eos;           /* --eos ID: packed programs' end-of-document token (-1: none) */
  bool quiet;            /* no per-step lines on stdout */
  int kernels;           /* RT_KERNELS_* */
  int device;            /* RT_DEVICE_* (rt_run resolves auto) */
  const char *dir;       /* the program's directory (set by rt_run: DIR/gpu holds the PTX) */
  bool adaptive_sp;      /* --adaptive-sp: the program must be compiled with it */
  int sp_degree;         /* --sp-degree G: every group of G ranks (the static baseline); 0: adaptive */
  const rt_sp_solver *sp_solver; /* the solver of an adaptive program (NULL: refused) */
} rt_config;

/* rt_config_default: 5 steps, seed 1234, the program's lr and weight decay,
 * kernels auto. */
rt_config rt_config_default(void);

/* rt_cuda_usable: a CUDA driver and a device are here; else false with why
 * (`sbpc run MODEL.sbp` compiles for the GPU when one is usable). */
bool rt_cuda_usable(char *why, size_t n);

/* rt_run: train the program in directory dir: MPI init (when launched by
 * mpirun; the world size must be the program's rank count), weights or a
 * checkpoint, steps with `step N loss X tokens/s Y` lines, --log, --save.
 * Returns an exit status (util/diag.h). argc/argv are passed to MPI_Init. */
int rt_run(const char *dir, const rt_config *cfg, int *argc, char ***argv);
#endif
