/* plan_int.h — what the planner's files share with each other and with the
 * planner's unit tests; not a public interface (use planner.h). Every name
 * here still carries the plan_ prefix. */
#ifndef SBPC_PLAN_INT_H
#define SBPC_PLAN_INT_H
#include "planner/planner.h"

/* ---- cost.c --------------------------------------------------------------- */
/* Collectives are the IR's comm op kinds (IR_OP_ALL_REDUCE, IR_OP_ALL_GATHER,
 * IR_OP_REDUCE_SCATTER, IR_OP_ALL_TO_ALL, IR_OP_SEND_RECV, IR_OP_SLICE;
 * IR_NOPKIND for none). Which collective a boxing needs and the bytes it
 * moves come from ir/boxing.c (ir_boxing_kind, ir_coll_bytes), the one
 * table; this file has only their times. */
/* plan_coll_name: "all_reduce", ..., "none" for IR_NOPKIND. */
const char *plan_coll_name(int k);

typedef struct { double flops, bw, mem; } plan_dev;   /* one device's rates */
typedef struct { double bw, lat; int inter; } plan_link; /* per device, one direction; inter: spans nodes */

/* plan_gemm_eff: achieved fraction of peak for an m x n x k GEMM:
 * eff_max * f(m) f(n) f(k), f(x) = x / (x + half_dim); a calibrated shape's
 * measured rate / dev_flops. Records the shape in c->gemm_log when set. */
double plan_gemm_eff(const plan_calib *c, double m, double n, double k);
/* plan_kernel_time: roofline of `kernels` kernels of pass (PLAN_FWD or
 * PLAN_BWD) doing `flops` at efficiency eff and moving `bytes`:
 * max(flops/(peak*eff), bytes/(bw*mem_eff)) times the pass's measured
 * executor scale (1 uncalibrated), plus kernels x the per-kernel cost (the
 * executor's measured one for the pass, else kernel_overhead_s). */
double plan_kernel_time(const plan_calib *c, const plan_dev *d, double flops, double eff,
                        double bytes, double kernels, int pass);
/* plan_mem_time: seconds to move bytes through memory on d (the calibrated
 * kernel bandwidth when measured, else bandwidth x mem_eff). */
double plan_mem_time(const plan_calib *c, const plan_dev *d, double bytes);
/* plan_coll_time: seconds for collective k on a group of n devices over link l,
 * T = the logical tensor size in bytes (the DESIGN.md table). All-reduce is
 * the faster of ring and tree. */
double plan_coll_time(const plan_calib *c, int k, double T, int n, plan_link l);
/* plan_zero_coll_time: a ZeRO reduce-scatter (sbpc's executor: pairwise
 * exchanges) or parameter all-gather (k) of T bytes over the dp group:
 * plan_coll_time, but when the calibration measured that kind itself (its
 * reduce-scatter / all-gather table: tune times the exchange as the executor
 * runs it) not scaled by the executor section's dp_comm_scale, which is the
 * reference's gradient all-reduce's measured over predicted (OpenMPI's
 * non-blocking all-reduce and what of it stayed exposed). when: PLAN_ZERO_STEP
 * (inside the step: the in-step latency) or PLAN_ZERO_END (at the step's
 * end, the ranks together: the kind's back-to-back latency when measured),
 * with PLAN_ZERO_12 for ZeRO-1/2's (its reduce-scatters and the gather
 * after the update); plus the executor's measured wait per collective
 * (executor.coll_latency_s, from its ZeRO-3 reference; ZeRO-1/2's:
 * zero12_latency_s, from its ZeRO-2 one, when measured) */
enum { PLAN_ZERO_STEP = 1, PLAN_ZERO_END = 2, PLAN_ZERO_12 = 4 };
double plan_zero_coll_time(const plan_calib *c, int k, double T, int n, plan_link l, int when);
/* plan_waited_coll_time: a collective that a kernel waits for inside the
 * step (an activation's tp boxing; sp's all-to-alls do not use it yet):
 * plan_coll_time plus the
 * executor's measured wait per such collective (executor.coll_latency_s, 0
 * unmeasured); not the gradient syncs that are in flight together */
double plan_waited_coll_time(const plan_calib *c, int k, double T, int n, plan_link l);
/* plan_grad_sbp: SBP of the gradient an op hands back for an input it consumed
 * as `in` under a signature; replicated: the signature is all-B. */
ir_sbp plan_grad_sbp(ir_sbp in, bool replicated);
/* plan_need_sbp: the SBP a producer needs its output gradient in. */
ir_sbp plan_need_sbp(ir_sbp out);

/* ---- sigs.c ---------------------------------------------------------------- */
/* plan_tshape: tensor t's shape with B = b, S = s; returns the rank. */
int plan_tshape(const ir_graph *g, ir_ref t, int64_t b, int64_t s, int64_t *dims);
/* plan_op_sigs: the 1-D signatures of forward op o on a tp axis of n devices
 * (splits only where the axis divides by n, and of token axes only when tok:
 * sequence parallelism; n == 1 gives the one all-B signature). Returns the
 * count (>= 1). */
int plan_op_sigs(const ir_graph *g, const ir_op *o, int n, int64_t b, int64_t s, bool tok, ir_sig *sigs);
/* plan_token_axis: axis of tensor t is a token axis (its size involves B or S). */
bool plan_token_axis(const ir_graph *g, ir_ref t, int axis);

/* ---- sbp_ilp.c: the per-block SBP program ------------------------------------ */
/* An edge cost at or above PLAN_FORBID marks a pair of choices the program
 * must not take (a collective the runtime does not run). */
#define PLAN_FORBID 1e9
typedef struct {
  int nnode;
  int *nch;          /* choices per node */
  double **ncost;    /* [node][choice] seconds */
  int nedge;
  int *eu, *ev;      /* edge u -> v */
  double **ecost;    /* [edge][cu * nch[v] + cv] seconds */
} plan_sbp_prob;
/* plan_sbp_solve: choose one choice per node minimising node + edge costs with
 * glp_intopt (time limit tlim seconds). Writes choice[], *obj; returns true if
 * GLPK proved optimality, false if it fell back (greedy choices then). */
bool plan_sbp_solve(const plan_sbp_prob *p, int *choice, double *obj, double tlim);
/* plan_sbp_eval: the objective of a given choice vector. */
double plan_sbp_eval(const plan_sbp_prob *p, const int *choice);

/* ---- layer.c: per-block summaries --------------------------------------------- */
typedef struct {
  int devtype;
  plan_dev dev;
  int prec;             /* ir_dtype of compute */
  int64_t seq;          /* full sequence length */
  int tp, sp, mbs, rc;
  plan_link tpl, spl;   /* tp and sp axis links */
  int m;                /* micro-batches (weights per-step costs) */
  double memw;          /* seconds the SBP program charges per byte kept (0: time only) */
} plan_key;

typedef struct {       /* one layer of a block (or the pre/post parts) */
  double fwd_s, bwd_s;       /* compute per micro-batch; bwd includes recompute */
  double comm_fwd_s, comm_bwd_s; /* tp/sp boxing per micro-batch (bwd incl. recompute) */
  double tp_sum_bytes;       /* gradients that are partial sums over tp, summed once per
                                step in buckets (lower/sbp.c defers them; search.c prices) */
  double max_tp_sum_bytes;   /* the largest of them (a bucket holds one at least) */
  double act_bytes;          /* saved per micro-batch under the recompute policy */
  double act_full_bytes;     /* saved with no recompute (peak of the recomputed layer) */
  double params_local;       /* parameter elements per device */
  double params;             /* parameter elements in total */
  double nparam;             /* parameter tensors (one collective each in sbpc's executor) */
  double max_param_local;    /* the largest parameter tensor's elements per device */
  double max_tensor_bytes;   /* largest single activation per device */
  double boundary_bytes;     /* the activation a pipeline edge sends (per micro-batch) */
  double flops;              /* forward model FLOPs per micro-batch, whole tp group */
  double attn_flops;         /* the attention part of flops */
  double tied_local;         /* post only: parameters already counted in pre (tied) */
  double tied_grad_bytes;    /* post only: one gradient of the tied parameters, whole: the
                                lowering's backward makes both uses' gradients partial sums
                                (P, whole shape) under tp and reduce-scatters their sum */
  double attn_io_bytes;      /* attention inputs + outputs per device (sp all-to-alls) */
  double loss_in_bytes;      /* post only: the loss's saved input (the logits), freed by
                                the loss's backward before the head's gradients exist */
} plan_lsum;

typedef struct {
  plan_key key;
  plan_lsum *blk;     /* per block */
  plan_lsum pre, post;
  int *choice;        /* per graph op: chosen signature, -1 if not a costed op */
  ir_sig *sig;        /* per graph op: the signature itself */
  plan_boxing *box;   /* per-layer boxings of every region (malloc'ed) */
  int nbox;
  bool optimal;
  int solves;
} plan_sol;

typedef struct plan_model plan_model;
/* plan_model_new: analyse g once (regions, ops per layer, params); NULL and an
 * error if g has no ops. */
plan_model *plan_model_new(const ir_graph *g, arena *a);
/* plan_model_solve: solve (or fetch from the cache) the SBP programs of every
 * block and of the non-block ops for key k; the result lives in the model. */
const plan_sol *plan_model_solve(plan_model *pm, const plan_key *k, const plan_calib *c,
                                 double tlim);
/* plan_model_layers: repeated layers over all blocks. */
int plan_model_layers(const plan_model *pm);
/* plan_model_solves: SBP programs solved so far. */
int plan_model_solves(const plan_model *pm);
/* plan_model_nblocks: the graph's block count. */
int plan_model_nblocks(const plan_model *pm);
/* plan_model_op_is_pre: op lies before the first block op (the first stage's part). */
bool plan_model_op_is_pre(const plan_model *pm, ir_ref op);
/* plan_model_free: free the solution cache (the model itself lives in its arena). */
void plan_model_free(plan_model *pm);

/* ---- partition.c ----------------------------------------------------------------- */
typedef struct {
  int p, L, v, m;
  double *t;       /* per stage: seconds per layer per micro-batch */
  double *e;       /* per stage: fixed seconds per micro-batch */
  double *mem_l;   /* per stage: bytes per layer */
  double *mem_f;   /* per stage: fixed bytes */
  double *cap;     /* per stage: memory capacity */
} plan_part_prob;
/* plan_part_objective: pipeline step time of a partition x (layers per stage):
 * m*T + (sum_s stage_s - T)/v with T the slowest stage. */
double plan_part_objective(const plan_part_prob *p, const int *x);
/* plan_part_solve: layers per stage (multiples of v, at least v, summing to L, within
 * memory) minimising (m - 1/v) T + (1/v) sum_s (x_s t_s + e_s) with glp_intopt.
 * Returns 1 optimal, 0 infeasible, -1 solver failure (x then holds the even
 * split). */
int plan_part_solve(const plan_part_prob *p, int *x, double tlim);
/* plan_part_even: the even split (remainder to the first stages). */
void plan_part_even(const plan_part_prob *p, int *x);

/* ---- axismap.c ---------------------------------------------------------------------- */
/* Axes: 0 pp, 1 dp, 2 sp, 3 tp. cost[a][mask] = seconds axis a costs when the
 * axes in bitmask `mask` are inside it (its stride is their product). */
typedef struct {
  int n;                 /* 4 */
  double cost[4][16];
} plan_axis_prob;
/* plan_axis_solve: an order of the axes (outermost first) minimising the sum
 * of the axes' costs, with glp_intopt; returns false on solver failure (order
 * then pp, dp, sp, tp). */
bool plan_axis_solve(const plan_axis_prob *p, int *order, double tlim);
/* plan_axis_eval: the cost of an order. */
double plan_axis_eval(const plan_axis_prob *p, const int *order);

/* ---- cluster.c ---------------------------------------------------------------------- */
typedef struct {
  const ir_cluster *c;
  int ndev, nnodes;
  int *rank_node;     /* per rank */
  int *node_type;     /* per node */
  int *node_first;    /* first rank of each node */
} plan_cl;
/* plan_cl_init: flatten c into ranks and nodes (arena a); false if empty. */
bool plan_cl_init(plan_cl *cl, const ir_cluster *c, arena *a);
/* plan_dev_of: device rates of device type t at precision p. */
plan_dev plan_dev_of(const ir_cluster *c, int t, ir_dtype p);
/* plan_group_link: the link a group of n ranks base, base+stride, ... crosses. */
plan_link plan_group_link(const plan_cl *cl, int base, int stride, int n);
#endif
