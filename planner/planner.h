/* planner.h — the sbpc planner: cost and memory models and the layout search
 * (prefix plan_). Also the index of planner/ (except sp*.c, see sp.h).
 *
 * Given a forward model graph (shapes set), a cluster and a training setup,
 * plan_search enumerates layouts dp x tp x pp x sp = devices (the whole cluster,
 * or a fastest-first subset when that is faster: plan_layout.used), micro-batch size,
 * recompute policy, ZeRO stage and virtual stages; costs each with the models
 * below and keeps the K fastest that fit in memory. Inside, three GLPK
 * programs decide what enumeration cannot: the SBP signature of every op of a
 * block on the tp axis (sbp_ilp.c, solved once per block type and setting and
 * reused for every layer), the layers per pipeline stage (partition.c, faster
 * devices get more layers), and the order of the mesh axes over the cluster
 * hierarchy (axismap.c). docs/planner.md explains the models and their
 * constants; docs/plan-format.md the JSON written by plan_write_json.
 *
 *   cost.c      roofline op costs, GEMM efficiency, alpha-beta collectives
 *   sigs.c      the registry's 1-D signatures (ir_op_sigs) that fit an axis size
 *   layer.c     per-block analysis: tensors, saved activations, op costs
 *   sbp_ilp.c   GLPK: per-block SBP choice with boxing cost on edges
 *   memory.c    parameters / gradients / optimizer / activations / workspace
 *   partition.c GLPK: layers per pipeline stage
 *   axismap.c   GLPK: mesh axes onto the node hierarchy
 *   cluster.c   groups of ranks, the links they cross, device speeds
 *   search.c    enumeration, pruning, pipeline time, top K
 *   calib.c     default constants, options, --fix
 *   calib_read.c the calibration JSON (cJSON), the one reader of it
 *   json.c      the plan JSON (cJSON)
 *   report.c    the human-readable report
 * (GPT graphs and clusters built in code for the tests and benchmarks are
 * in tests/support/fixtures.h, not in the library.) */
#ifndef SBPC_PLANNER_H
#define SBPC_PLANNER_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ir/ir.h"

typedef enum { PLAN_RC_NONE, PLAN_RC_SELECTIVE, PLAN_RC_FULL, PLAN_NRC } plan_recompute;
/* plan_recompute_name: "none", "selective", "full". */
const char *plan_recompute_name(int rc);

/* What software runs the plan: a named runtime profile (calib.c holds the
 * table; docs/planner.md, "Runtime profiles", gives the defaults per preset).
 * The plan JSON carries it ("runtime") so exports can set the same flags. */
typedef struct {
  const char *name;         /* "megatron-2021", "megatron-2022", "stack-2024", "sbpc", "sbpc-cpu" */
  bool flash_attention;     /* fused attention: no score matrix, causal blocks skipped */
  bool seq_parallel;        /* tp may split activations by token (Megatron --sequence-parallel) */
  bool dist_optimizer;      /* optimizer state sharded over dp (ZeRO 1 and up searched) */
  bool tp_comm_overlap;     /* tp all-gather / reduce-scatter hidden behind the layer's GEMMs */
  double grad_reduce_bytes; /* bytes per gradient element in the DP reduction (4 fp32, 2 bf16) */
  double grad_overlap;      /* fraction of the DP reduction that can hide in backward */
  double workspace_bytes;   /* the runtime's fixed reserve per device (CUDA context,
                               cuBLAS and NCCL buffers; 0 for sbpc's CPU executor,
                               which allocates only its planned arenas) */
  double transients;        /* the largest tensors a step holds beside its saved
                               activations, counted this many times (2 for the GPU
                               stacks' gradient and output buffers; 0 for sbpc's CPU
                               executor, whose arena plan holds them with the
                               activations) */
  double dropout_mask_bytes; /* bytes per element a dropout keeps for its backward
                               (1: the GPU stacks' boolean mask; 0: sbpc, whose
                               kernels regenerate the mask from a counter hash) */
  bool recv_copies;         /* the data-parallel gradient reduction receives the other
                               members' copies of this rank's slice of a bucket into a
                               buffer beside the arena (sbpc's CPU executor,
                               runtime/executor.c: ZeRO 0/1 dp-1 slices, ZeRO 2/3
                               dp-2); false: reduced in place (NCCL) */
} plan_runtime;

/* The GEMM shapes plan_gemm_eff was asked about (sbpc tune --model measures
 * them): at most cap, each once; n counts them. */
typedef struct {
  int n, cap;
  int (*mnk)[3];
} plan_shape_log;

/* Model constants; calib.c sets the defaults, a calibration file replaces them.
 * docs/planner.md gives the meaning and source of each. */
#define PLAN_MAXCOLL 16
/* A measured collective by group size (docs/calibration.md): bus bandwidth
 * (bytes each rank sends to others, per second) and latency (< 0: not
 * given, the link's is used); cnt = 0: none. */
typedef struct {
  int cnt;
  int n[PLAN_MAXCOLL];
  double bw[PLAN_MAXCOLL], alpha[PLAN_MAXCOLL];
} plan_colltab;
enum { PLAN_INTRA, PLAN_INTER }; /* placement of a group: inside one node, across nodes */
#define PLAN_MAXGEMM 256
enum { PLAN_FWD, PLAN_BWD, PLAN_OPT, PLAN_COMM, PLAN_NPASS }; /* a step's passes, its collectives (exec_scale) */
typedef struct {
  double gemm_eff_max;      /* GEMM efficiency of an infinitely large GEMM */
  double gemm_half_dim;     /* a GEMM dimension of this size halves its factor */
  double mem_eff;           /* achieved fraction of peak memory bandwidth */
  double kernel_overhead_s; /* per kernel launch */
  double attn_score_passes; /* passes over the b*a*s*s score matrix (materialised attention) */
  double attn_saved_bytes;  /* bytes per score element kept for backward (materialised) */
  double attn_flash_eff;    /* fraction of peak a flash attention kernel reaches */
  double coll_eff;          /* achieved fraction of link bandwidth */
  double workspace_bytes;   /* fixed per-device runtime reserve (context, cuBLAS) */
  double mem_usable;        /* fraction of device memory a plan may fill */
  plan_runtime rt;          /* the software stack (plan_runtime_set) */
  /* measured collective bus bandwidth by group size (sbpc tune); 0 = none */
  int ncoll;
  int coll_n[PLAN_MAXCOLL];
  double coll_bw[PLAN_MAXCOLL], coll_alpha[PLAN_MAXCOLL];
  /* all-to-all and ring send/recv by group size, [PLAN_INTRA] and [PLAN_INTER] */
  plan_colltab a2a[2], p2p[2];
  /* reduce-scatter and all-gather bus bandwidth and back-to-back latency
   * by group size (collectives.measurements[]; alpha < 0: not given) */
  plan_colltab rs, ag;
  double group_fixed_s;     /* SP: fixed cost of a group per micro-batch (< 0: built-in) */
  /* measured rates of the device the calibration was made on (sbpc tune
   * without --peak-flops / --peak-bw): they replace the cluster's peak x
   * efficiency; 0 = not measured */
  double dev_flops;         /* the fitted GEMM asymptote, FLOP/s */
  double dev_bw;            /* an elementwise kernel's bandwidth, bytes/s */
  int ngemm;                /* measured GEMM shapes (forward + backward rate) */
  int gemm_mnk[PLAN_MAXGEMM][3];
  double gemm_rate[PLAN_MAXGEMM];
  plan_shape_log *gemm_log; /* when set, every GEMM shape costed is recorded */
  /* the executor measured on the model's reference program (sbpc tune
   * --model, the calibration's "executor" section): its kernels' time over
   * the rooflines above, per pass (plan_kernel_time, the optimizer step),
   * and its exposed gradient all-reduce over the collective's modelled
   * time, applied to every collective (plan_coll_time); 1 when not measured */
  double exec_scale[PLAN_NPASS];
  double exec_kernel_s[PLAN_NPASS]; /* that executor's cost per kernel the planner counts in a
                               pass, beyond the scaled rooflines (executor.forward_kernel_s,
                               backward_kernel_s; optimizer_kernel_s: per parameter tensor);
                               < 0: not measured, kernel_overhead_s (the optimizer: 0) */
  double micro_overhead_s;  /* that executor's idle time per micro-batch that no kernel or
                               transfer explains (executor.micro_overhead_s; 0 when not measured) */
  double step_overhead_s;   /* and per step (executor.step_overhead_s; 0 when not measured) */
  double exec_coll_s;       /* its wait per ZeRO collective beyond the model (executor.coll_latency_s) */
  double exec_coll12_s;     /* the same for ZeRO-1/2's (executor.zero12_latency_s); < 0: exec_coll_s */
  bool exec_per_param;      /* that executor is sbpc's: one collective per parameter (ZeRO-3
                               gathers), the ZeRO-1/2 all-gather inside the step */
  struct {                  /* the probe's reference run (executor.fix, .model, .measured):
                               what `tune --plans` runs again to see the machine's drift */
    char fix[128], model[64];
    double params, step_s;
    long batch, seq;
    int devices;
    bool have;              /* all of it given */
  } ref;
  bool loaded;
} plan_calib;

/* plan_runtime_set: replace c->rt by the named profile, and the workspace
 * reserve by the profile's (a calibration file read afterwards may set it);
 * false if unknown. */
bool plan_runtime_set(plan_calib *c, const char *name);
/* plan_runtime_default: the profile name a cluster defaults to (its preset:
 * dgx-h100 "stack-2024", dgx-a100 "megatron-2022", cpu "sbpc-cpu", anything
 * else "sbpc"). */
const char *plan_runtime_default(const ir_cluster *c);
/* plan_runtime_names: the profile names, comma-separated (for messages). */
const char *plan_runtime_names(void);
/* plan_workspace: the fixed workspace reserve on a device of mem bytes:
 * workspace_bytes, at most 5 % of the device (small devices). */
double plan_workspace(const plan_calib *c, double mem);

/* plan_coll_interp: bandwidth and latency at group size `at` from a table of
 * cnt measured sizes n[] (increasing): interpolated in log n, the end values
 * outside the measured range; a latency < 0 (not measured) stays < 0. False
 * (nothing written) when cnt is 0. */
bool plan_coll_interp(const int *n, const double *bw, const double *alpha, int cnt, int at, double *bw_at,
                      double *alpha_at);

/* plan_calib_default: the built-in constants. */
void plan_calib_default(plan_calib *c);
/* plan_calib_parse: check text[0..len) against the calibration schema
 * (docs/calibration.md) and overlay the keys the planner models onto *c.
 * False on bad input, with *c untouched and the first offending field named
 * in err (one line, no file name). */
bool plan_calib_parse(const char *text, size_t len, plan_calib *c, char *err, size_t errlen);
/* plan_calib_path: the calibration file to use: given, else the
 * environment's SBPC_CALIBRATION (when set and not empty), else NULL. */
const char *plan_calib_path(const char *given);
/* plan_compute_precision: the precision cluster c computes precision p in:
 * p when a device type has a peak for it (bf16 also on an f16 peak), else
 * f32 (the CPU preset, whose executor trains in fp32), and the memory model
 * counts its bytes. */
ir_dtype plan_compute_precision(const ir_cluster *c, ir_dtype p);
/* plan_calib_load: plan_calib_parse on the file at path. Prints
 * "path: error: ..." and returns false on bad input. */
bool plan_calib_load(const char *path, plan_calib *c);

/* Knobs fixed by --fix (0 or -1 = searched). */
typedef struct {
  int dp, tp, pp, sp, vpp, mbs;
  int devices;   /* devices the layout uses (the fastest first); 0 = searched */
  int recompute; /* -1 = search, else plan_recompute */
  int zero;      /* -1 = search */
} plan_fix;

typedef struct {
  plan_fix fix;
  int top_k;               /* layouts kept (>= 1) */
  ir_dtype precision;      /* compute precision (bf16 default) */
  int64_t global_batch;    /* sequences per step */
  int64_t seq;             /* tokens per sequence */
  plan_calib calib;
  const char *calib_path;  /* for the report, or NULL */
  double ilp_time_limit_s; /* per GLPK program */
  bool even_partition;     /* disable the partition program (benchmark baseline) */
  int max_sp;              /* largest sp tried by the search (1 = off) */
} plan_options;

/* plan_options_default: batch 0 (caller sets), bf16, top 3, nothing fixed. */
void plan_options_default(plan_options *o);
/* plan_fix_parse: "dp=4,tp=8,recompute=full,..." into o->fix; prints an error
 * and returns false on an unknown key or a bad value. */
bool plan_fix_parse(const char *s, plan_options *o);

/* One pipeline stage of a layout. */
typedef struct {
  int first, last;       /* global layer range, inclusive; last < first if empty */
  int devtype;           /* slowest device type in the stage */
  int rank0;             /* lowest mesh index in the stage (global rank: used[rank0]) */
  double time_s;         /* one micro-batch forward + backward on this stage */
  double fwd_s, bwd_s;   /* of which compute: forward, backward (recompute included) */
  double mem_bytes;      /* predicted peak memory per device */
} plan_stage;

/* A costed layout. */
typedef struct {
  int dp, tp, pp, sp, vpp, mbs, m, recompute, zero;
  int axis_order[4];       /* mesh axes outermost first: 0 pp, 1 dp, 2 sp, 3 tp */
  int nused;               /* devices used: dp * tp * pp * sp (<= the cluster's) */
  const int *used;         /* mesh index -> global rank, nused entries (in the result's arena) */
  plan_stage *stage;       /* pp entries */
  double step_s, compute_s, comm_s, bubble_s;
  /* exposed communication split by axis (tp + sp + pp + dp = comm_s) and the
   * optimizer step (part of compute_s), on the stages that set them */
  double tp_comm_s, sp_comm_s, pp_comm_s, dp_comm_s, opt_s;
  double mem_bytes;        /* max over devices */
  double mem_params, mem_grads, mem_opt, mem_act, mem_work; /* on the fullest device */
  double model_flops, hw_flops; /* per step, whole model */
  double peak_flops;       /* per device, for MFU */
  bool fits;
} plan_layout;

/* The chosen SBP of one forward op on the tp axis. */
typedef struct {
  ir_ref op;
  int32_t sig;             /* index into the planner's signature list */
  ir_sig s;
  int stage;               /* stage for ops outside blocks, -1 inside */
} plan_opsbp;

/* One boxing (re-layout) the best layout needs. */
typedef struct {
  ir_ref op;               /* consumer */
  int input;
  ir_ref tensor;
  ir_sbp from, to;
  int coll;                /* ir_opkind of the collective (ir_boxing_kind) */
  double bytes;            /* per device per micro-batch */
  bool backward;
} plan_boxing;

typedef struct {
  arena *a;                /* everything below lives here */
  const ir_graph *g;
  const ir_cluster *c;
  plan_options opt;
  int ndev, nnodes;
  plan_layout *top; int ntop;  /* best first; ntop == 0: nothing fits */
  plan_opsbp *ops; int nops;   /* SBP of the best layout */
  plan_boxing *box; int nbox;
  /* when nothing fits: the smallest memory any candidate needs */
  double min_mem_bytes;
  const char *min_mem_dominant;
  plan_layout min_mem_layout;
  /* when a knob fixed by --fix rules out every layout: which and why */
  const char *why;
  long candidates, evaluated, ilp_solves;
  double solve_time_s;
  bool fallback;           /* a GLPK program failed or timed out */
  const char *note;        /* why, when fallback */
  int64_t params;          /* model parameter count */
  int layers;              /* total layers */
} plan_result;

/* plan_search: the fastest layouts of forward graph g (shapes set, forward ops
 * only are costed; backward ops, if present, are ignored) on cluster c under
 * options o. Returns NULL (with an error on stderr) only on unusable input (no
 * batch/seq, no devices, batch not divisible); "nothing fits" is a result with
 * ntop == 0. Free with plan_result_free. */
plan_result *plan_search(const ir_graph *g, const ir_cluster *c, const plan_options *o);
/* plan_result_free: NULL is ok. */
void plan_result_free(plan_result *r);

/* plan_write_json: the plan JSON (docs/plan-format.md) of r->top[0]; false if
 * r has no layout or the file cannot be written. */
bool plan_write_json(const plan_result *r, FILE *f);
/* plan_json: the same as a cJSON tree the caller owns (cJSON_Delete), so a
 * caller can add sections (sbpc plan adds "sp"); NULL without a plan. */
struct cJSON *plan_json(const plan_result *r);
/* plan_json_string: the same as a malloc'ed string (caller frees), or NULL. */
char *plan_json_string(const plan_result *r);
/* plan_print_report: the readable report; explain adds per-op SBP and boxing. */
void plan_print_report(const plan_result *r, FILE *f, bool explain);

/* plan_dominant: name of the largest memory part of a layout. */
const char *plan_dominant(const plan_layout *l);
#endif
