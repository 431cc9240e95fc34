/* rt.h — the training runtime: the public face of runtime/ (prefix rt_).
 *
 * The runtime takes a forward graph, makes the training graph (ir_autodiff),
 * and runs it: seeded layout-independent initialisation or Hugging Face
 * safetensors weights, a token-file data loader, fp32 CPU reference kernels
 * (OpenBLAS GEMMs), AdamW with PyTorch semantics, gradient accumulation over
 * micro-batches, data parallelism (gradient all-reduce) and pipeline
 * parallelism (point-to-point between stages) over MPI, one process per rank,
 * and universal checkpoints (safetensors under logical names).
 *
 * Memory: tensor buffers are malloc'ed by the interpreter when produced and
 * freed after their last use within a micro-batch; parameters, gradient
 * accumulators and optimizer state live for the whole run. The interpreter
 * counts live bytes and reports the peak per rank. See docs/runtime.md. */
#ifndef SBPC_RT_H
#define SBPC_RT_H
#include <stdbool.h>
#include <stdint.h>
#include "ir/ir.h"

/* How the ranks share the work. ranks = dp * tp * pp. */
typedef struct {
  int dp, tp, pp;        /* degrees (1 = not used) */
  int micro;             /* micro-batches per step (gradient accumulation) */
} rt_layout;

typedef struct {
  const char *model;     /* path of the .sbp model (for actors.json and logs) */
  int64_t global_batch;  /* samples per step */
  int64_t seq;           /* tokens per sample (inputs) */
  int64_t steps;
  rt_layout lay;
  const char *data, *weights, *save, *resume, *log;
  const char *trace;     /* --trace FILE: the last step as a Chrome/Perfetto trace */
  double lr, weight_decay;
  uint64_t seed;
  bool quiet;            /* no per-step lines on stdout */
  int executor;          /* 0 auto (actors unless tp > 1), 1 actors, 2 interpreter */
  int zero;              /* ZeRO stage: >= 1 shards AdamW state over the dp group */
  int recompute;         /* rt_recompute: activations dropped in forward, redone in backward */
  int kernels;           /* RT_KERNELS_REF (kernels_cpu.c), _JIT (codegen's, jit.c) or _AUTO */
} rt_config;

/* --kernels: ref, jit (an error when the JIT cannot be set up), or auto, the
 * default: jit, falling back to ref with a one-line note. */
enum { RT_KERNELS_REF, RT_KERNELS_JIT, RT_KERNELS_AUTO };
/* Recompute policies (runtime/recompute.c). */
enum { RT_RECOMPUTE_NONE, RT_RECOMPUTE_SELECTIVE, RT_RECOMPUTE_FULL };
/* rt_recompute_parse: "none", "selective" or "full" -> policy; -1 otherwise. */
int rt_recompute_parse(const char *s);

/* rt_config_default: batch 8, seq from the model, 5 steps, lr 1e-3, weight
 * decay 0.01 (PyTorch's AdamW default), seed 1234, layout 1x1x1, 1 micro-batch. */
rt_config rt_config_default(void);

/* ---- single-process interpreter (exec.c) ------------------------------------ */
typedef struct rt_exec rt_exec;
/* rt_exec_new: run autodiff on the forward graph g (owned by the caller; it is
 * extended in place), bind B = the local micro-batch and S, and allocate the
 * parameters (seeded init). For pipeline layouts `stage`/`nstages` select the
 * ops this rank runs; comm is NULL for one process. NULL + message on error. */
rt_exec *rt_exec_new(ir_graph *g, const rt_config *cfg, diag *d);
void rt_exec_free(rt_exec *e);
/* rt_exec_fwd_bwd: run forward and backward on one local micro-batch of
 * ids/labels (B*S each); returns the loss of that micro-batch (NaN on a rank
 * that does not hold the loss) and adds the parameter gradients, scaled by
 * `gscale`, into the accumulators. */
double rt_exec_fwd_bwd(rt_exec *e, const int32_t *ids, const int32_t *labels, double gscale);
/* rt_exec_zero_grads / rt_exec_update: clear the accumulators; run AdamW. */
void rt_exec_zero_grads(rt_exec *e);
bool rt_exec_update(rt_exec *e);
/* rt_exec_param / rt_exec_grad: host data of a parameter (by tensor ref) and
 * of its accumulated gradient (NULL when it has none on this rank). */
float *rt_exec_param(rt_exec *e, ir_ref p);
float *rt_exec_grad(rt_exec *e, ir_ref p);
/* rt_exec_peak_bytes: peak live bytes of this rank so far. */
int64_t rt_exec_peak_bytes(const rt_exec *e);

/* ---- training driver (train.c) -------------------------------------------- */
/* rt_train: the whole `sbpc run`: MPI init (when launched by mpirun), checks,
 * weights/resume, steps with `step N loss X tokens/s Y` lines, --log, --save.
 * Returns an exit status (util/diag.h). argc/argv are passed to MPI_Init. */
int rt_train(ir_graph *g, const rt_config *cfg, int *argc, char ***argv);

/* ---- actor plan (actors.c) ------------------------------------------------- */
/* rt_write_actor_plan: write the actor plan of training graph g under layout
 * cfg->lay to path as JSON (docs/actor-plan.md, version 1). If g has no
 * backward ops yet, autodiff is run on it first (g is extended in place).
 * Written to a temporary file and renamed. Returns false + message on error.
 * `sbpc compile` calls this to produce DIR/actors.json; `sbpc run DIR` reads
 * the model path, layout and batch from it. */
bool rt_write_actor_plan(ir_graph *g, const rt_config *cfg, const char *path);
/* rt_read_actor_plan: read model path, layout, batch and seq from actors.json
 * into cfg (strings in cfg point into arena a). */
bool rt_read_actor_plan(const char *path, rt_config *cfg, arena *a);
/* rt_read_plan_json: the layout (dp, tp, pp, num_micro_batches) and batch/seq
 * of a planner JSON (docs/plan-format.md) into cfg; sp or vpp other than 1 is
 * refused. */
bool rt_read_plan_json(const char *path, rt_config *cfg);
#endif
