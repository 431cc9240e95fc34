/* sp.h — adaptive sequence parallelism (FlexSP-style), the sp_ part of planner/.
 *
 * For one batch of variable-length sequences sbpc chooses a multiset of SP
 * groups (different sizes, possibly mixing device types, Ulysses or ring kind
 * per group) covering the cluster and assigns every sequence to one group so
 * that the slowest group finishes first, under a per-device token budget.
 * The files, one job each:
 *   sp_model.c      model dims from an ir_graph; cluster -> node types (sp_hw)
 *   sp_cost.c       token budget, time of a sequence on a group, group types
 *   sp_bucket.c     DP bucketing of lengths (minimum padding)
 *   sp_bound.c      the LP lower bound (per-sequence decomposition)
 *   sp_prune.c      dominated and unneeded group shapes, dropped before the MILP
 *   sp_split.c      the first micro-batch split (LP estimate of a micro-batch's time)
 *   sp_fill.c       the joint split: a micro-batch's slack takes others' sequences
 *   sp_solve.c      GLPK MILP over group counts + LP assignment, round, repair
 *   sp_assign.c     instance-level packing (LPT with memory) and repair moves
 *   sp_baselines.c  static / per-batch-best degree, greedy longest-first
 *   sp_json.c       the "sbpc-sp" JSON and the planner's `sp` section
 * The method and all formulas are in docs/sp.md; the JSON in docs/sp-format.md.
 * Memory: results live in an arena the caller passes (util/arena.h). */
#ifndef SBPC_SP_H
#define SBPC_SP_H
#include <stdbool.h>
#include <stdint.h>
#include "ir/ir.h"
#include "planner/planner.h"

/* ---- model ------------------------------------------------------------- */
typedef struct {
  const char *name;
  int layers;
  int64_t hidden, heads, kv_heads, ffn, vocab;
  double params;        /* all parameters */
  double layer_params;  /* parameters of one transformer layer (GEMM weights) */
} sp_model;

/* sp_model_gpt: a GPT-style model (fused qkv, MLP of width ffn, tied embedding). */
sp_model sp_model_gpt(const char *name, int layers, int64_t hidden, int64_t heads,
                      int64_t ffn, int64_t vocab);
/* sp_model_from_graph: derive the dims from a graph: heads from the attention
 * op, layers from the block holding it, hidden/vocab from the embedding table,
 * per-layer parameters from layer 0's params. false (with *why set) if the
 * graph has no attention block or no embedding. */
bool sp_model_from_graph(const ir_graph *g, sp_model *m, const char **why);

/* ---- hardware ------------------------------------------------------------ */
#define SP_MAXNT 4      /* node types */
#define SP_MAXBUCKET 16
typedef struct {
  const char *name;
  int ndev, count;      /* devices per node, nodes */
  double flops;         /* achievable FLOP/s per device (peak * SP_MFU) */
  double mem;           /* bytes per device */
  double link_bw, link_lat; /* intra-node, per device */
  double nic_bw, nic_lat;   /* NIC bandwidth share per device */
  double budget;        /* tokens per device (sp_hw_init) */
} sp_ntype;

typedef struct {
  int nt;
  sp_ntype t[SP_MAXNT];
  int ndev;             /* all devices */
  int first[SP_MAXNT];  /* global id of the first device of each node type */
  /* calibration (docs/calibration.md): all-to-all (Ulysses) and ring
   * send/recv bus bandwidth by group size, [PLAN_INTRA] / [PLAN_INTER];
   * cnt 0 = the link model. group_fixed < 0: the built-in 2 ms. */
  plan_colltab a2a[2], p2p[2];
  double group_fixed;
  /* set by `sbpc run --adaptive-sp` after sp_hw_init: its executor runs
   * Ulysses groups only, of sizes that divide the heads and kv heads */
  bool ulysses_divides;
} sp_hw;

/* sp_hw_init: flatten a cluster for model m at precision dt and compute each
 * device's token budget (docs/sp.md); cal (NULL: none) brings measured
 * all-to-all and send/recv bandwidth by group size and the per-group fixed
 * cost. false with a message in why (arena string or literal) if the cluster
 * has too many node types or the model's static state does not fit on some
 * device. */
bool sp_hw_init(sp_hw *hw, const ir_cluster *c, const sp_model *m, ir_dtype dt, const plan_calib *cal,
                arena *a, const char **why);
/* sp_token_budget: tokens of activations one device of memory `mem` holds
 * when the model's state is sharded (ZeRO-3) over `ndp` devices; may be <= 0. */
double sp_token_budget(const sp_model *m, double mem, int ndp);

/* ---- groups and cost -------------------------------------------------------- */
typedef enum { SP_ULYSSES, SP_RING } sp_kind;

/* A group shape: which devices (by node type), its kind, and its cost data. */
typedef struct {
  int kind;             /* sp_kind */
  int size;             /* devices */
  int intra;            /* node type of an intra-node group, or -1 */
  int nodes[SP_MAXNT];  /* cross-node group: whole nodes per node type */
  double flops;         /* sum of device FLOP/s (shares are by speed) */
  double cap;           /* tokens per micro-batch (min budget_i / share_i) */
  double share_max;     /* largest device share of the sequence */
  double bw_link, bw_nic; /* slowest intra-node link, slowest NIC share */
  double cbw;           /* calibrated bus bandwidth of its collective (0: link model) */
  int per_node;         /* devices per node inside the group (min) */
  double c0;            /* constant time per micro-batch (latencies) */
} sp_gtype;

/* sp_gtype_make: a group of `size` devices of node type t inside one node
 * (nodes == NULL) or of whole nodes nodes[t] per type; false if the kind
 * cannot run there (Ulysses needs size <= heads; ring needs size >= 2). */
bool sp_gtype_make(sp_gtype *g, const sp_hw *hw, const sp_model *m, int kind,
                   int intra, const int *nodes);
/* sp_seq_time: seconds for one sequence of `len` tokens (forward + backward)
 * on group g, excluding g->c0. */
double sp_seq_time(const sp_model *m, const sp_gtype *g, double len);
/* sp_gtypes: every group shape of the cluster (intra-node sizes 1..ndev, whole
 * node combinations across nodes), both kinds where valid. Returns how many
 * (at most max). */
int sp_gtypes(const sp_hw *hw, const sp_model *m, sp_gtype *out, int max);

/* ---- bucketing ---------------------------------------------------------------- */
/* sp_bucket: split sorted (ascending) lengths len[0..n) into at most k
 * contiguous buckets minimising the padding sum(max_b - len_i); writes the
 * end index (exclusive) of each bucket to end[] and returns the bucket count.
 * *pad gets the padding. O(k n^2). */
int sp_bucket(const int64_t *len, int n, int k, int *end, double *pad);

/* ---- plans -------------------------------------------------------------------- */
typedef struct {
  sp_gtype g;
  int *dev;  int ndev;    /* global device ids */
  int *seq;  int nseq;    /* indices into the batch */
  double tokens, time;    /* assigned tokens; time including c0 (0 if idle) */
} sp_group;

typedef struct {
  sp_group *grp; int ngrp;
  double time;           /* slowest group */
} sp_micro;

typedef struct {
  sp_micro *mb; int nmb;
  double step_time;      /* sum over micro-batches */
  double lower_bound;    /* whole-batch lower bound (sp_batch_bound) */
  double solve_time;     /* wall seconds of sp_solve */
  double solve_cpu;      /* CPU seconds of the solving thread */
  int degree, kind;      /* uniform layouts: the degree and kind; else 0/-1 */
  int start;             /* adaptive plans: the candidate start it grew from (sp_start) */
} sp_plan;

/* The candidate starts of the adaptive search (docs/sp.md, Solver). */
typedef enum { SP_START_SPLIT, SP_START_GREEDY, SP_START_DEGREE } sp_start;

/* Solver options; sp_opts_default gives the documented defaults. */
typedef struct {
  int buckets;           /* most buckets for the MILP (default 16, at most SP_MAXBUCKET) */
  double time_limit;     /* CPU seconds for the search of one batch (0.5); past it
                            the best plan so far stands */
  int max_micro;         /* most micro-batches tried (64) */
  bool prune;            /* drop group shapes the MILP cannot need (true) */
} sp_opts;
sp_opts sp_opts_default(void);

#define SP_MAXBATCH 4096 /* sequences per batch sp_solve accepts */
/* sp_solve: the adaptive plan for batch len[0..n) (1 <= n <= SP_MAXBATCH,
 * every len >= 1). Returns false with *why (arena string) if n is out of
 * range, some sequence fits no group, or the batch cannot be split to fit
 * within opts->max_micro micro-batches. */
bool sp_solve(const sp_hw *hw, const sp_model *m, const int64_t *len, int n,
              const sp_opts *o, arena *a, sp_plan *out, const char **why);
/* sp_lower_bound: LP lower bound on the slowest-group time for one micro-batch
 * len[idx[0..n)] over the group types gt[0..ngt) and hw->ndev devices. */
double sp_lower_bound(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt,
                      const int64_t *len, const int *idx, int n);

/* sp_batch_bound: lower bound on the step time of every valid plan of the
 * whole batch len[0..n), whatever its micro-batch split: the least T with
 * sum_i min_g size_g t_ig / (T - c0_g) <= devices (time rows and node-type
 * weights, no memory rows). Proof in docs/sp.md ("Lower bound"). */
double sp_batch_bound(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt,
                      const int64_t *len, int n);

/* sp_prune: which of the shapes gt[0..ngt) a micro-batch's MILP may need.
 * Bucket b's sequences take on shape g tbar[b*ngt+g] seconds on average and
 * tmax[b*ngt+g] for its longest (tbar < 0: b does not fit g). g is dropped
 * (keep[g] = false) when a kept shape uses no more devices of any node type
 * and has no larger c0, no smaller capacity, and no larger tbar or tmax on
 * every bucket g fits; or when g has more than one device and fits no
 * bucket. Either way the MILP's optimum is unchanged (docs/sp.md). Keeps
 * everything when a node type has more than 16 devices. Returns the count kept. */
int sp_prune(const sp_hw *hw, const sp_gtype *gt, int ngt, int nb, const double *tbar,
             const double *tmax, bool *keep);

/* ---- instance packing (sp_assign.c) ---------------------------------------------- */
/* sp_pack_bytes: the bytes sp_pack allocates for its table of the times of n
 * sequences on ng groups (the largest allocation of a solve: ng is up to the
 * device count), so callers can check them against the machine first. */
double sp_pack_bytes(int n, int ng);
/* sp_pack: assign sequences idx[0..n) (any order) to the groups grp[0..ng)
 * longest-time first, each to the group that finishes earliest among those
 * with room for it, then repair by moving sequences off the slowest group.
 * Fills each group's seq/tokens/time (arena). false if some sequence fits in
 * no group's remaining capacity. repair = false: plain longest-first. */
bool sp_pack(const sp_model *m, const int64_t *len, const int *idx, int n,
             sp_group *grp, int ng, bool repair, arena *a);
/* sp_repair: move sequences off the slowest group while that lowers the max. */
void sp_repair(const sp_model *m, const int64_t *len, sp_group *grp, int ng, arena *a);
/* sp_group_time: time of a group holding seq[0..nseq) (c0 + sum of sequences). */
double sp_group_time(const sp_model *m, const sp_gtype *g, const int64_t *len,
                     const int *seq, int nseq);
/* sp_split_micro: split idx[0..n) into k micro-batches: sequences by work w[i]
 * (seconds if spread over the cluster) descending, each to the micro-batch
 * whose estimated time max(max lo, sum w) grows least, among those with
 * fewer than tokcap tokens (else the one with fewest tokens). lo[i] is the
 * sequence's own least time. Writes mb_of[i] for each position i. */
void sp_split_micro(const int64_t *len, const int *idx, int n, int k, const double *w,
                    const double *lo, double tokcap, int *mb_of);
/* sp_split: the adaptive plan's first split of len[0..n) into k
 * micro-batches (sp_split.c): sequences by device-seconds descending, each to
 * the micro-batch whose LP time estimate (the least T with sum_i min_g
 * size_g t_ig / (T - c0_g) <= devices over shapes gt[0..ngt)) grows least,
 * among those under tokcap tokens. Writes mb_of[i]. */
void sp_split(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt, const int64_t *len,
              int n, int k, double tokcap, int *mb_of);
/* sp_work: w[i] and lo[i] of sequences idx[0..n) over group types gt[0..ngt)
 * on ndev devices (see sp_split_micro); a sequence no type holds gets 1e300. */
void sp_work(const sp_model *m, const sp_gtype *gt, int ngt, int ndev, const int64_t *len,
             const int *idx, int n, double *w, double *lo);
/* sp_dp_balance: balance sequences over `ranks` data-parallel ranks by cost
 * (cost[i], sorted descending, each to the least loaded rank); writes rank_of[i]
 * and returns the largest rank load. */
double sp_dp_balance(const double *cost, int n, int ranks, int *rank_of);
/* sp_cu_seqlens: cumulative lengths of group gr (nseq + 1 entries, arena). */
int64_t *sp_cu_seqlens(const sp_group *gr, const int64_t *len, arena *a);

/* sp_fill: the joint split over the concrete plan p of a batch of n
 * sequences: micro-batches in decreasing time take sequences of the others
 * into their slack (finishing within their own time, within capacity), the
 * donors are repaired, empty micro-batches dropped. The step time never
 * grows; true if it fell. */
bool sp_fill(const sp_model *m, const int64_t *len, int n, sp_plan *p, arena *a);

/* ---- baselines (sp_baselines.c) ---------------------------------------------------- */
/* sp_uniform: every group of `degree` devices of one kind, sequences packed
 * longest first (micro-batches as memory needs). false if the degree does not
 * tile the cluster or a sequence does not fit. */
bool sp_uniform(const sp_hw *hw, const sp_model *m, int degree, int kind,
                const int64_t *len, int n, const sp_opts *o, arena *a, sp_plan *out);
/* sp_layout: the groups of a uniform layout of `degree` devices of one kind,
 * in device order (out needs hw->ndev entries, devices from a); returns the
 * group count, or -1 if the kind cannot run at that degree. */
int sp_layout(const sp_hw *hw, const sp_model *m, int degree, int kind, arena *a, sp_group *out);
/* sp_degrees: the degrees that tile the cluster (ascending); returns count. */
int sp_degrees(const sp_hw *hw, int *deg, int max);
/* sp_best_uniform: the best degree and kind for this batch alone. */
bool sp_best_uniform(const sp_hw *hw, const sp_model *m, const int64_t *len, int n,
                     const sp_opts *o, arena *a, sp_plan *out);
/* sp_static: the best single (degree, kind) for a whole run of nb batches
 * (batch b is len[b][0..n[b])); fills plans[b] with that layout. false if no
 * degree fits every batch. */
bool sp_static(const sp_hw *hw, const sp_model *m, const int64_t *const *len, const int *n,
               int nb, const sp_opts *o, arena *a, sp_plan *plans);
/* sp_greedy: greedy longest-first: each sequence's natural group is the
 * smallest that holds it and finishes it within the ideal step; devices go to group sizes by their share of the
 * work; sequences are placed longest first on the earliest-finishing group. */
bool sp_greedy(const sp_hw *hw, const sp_model *m, const int64_t *len, int n,
               const sp_opts *o, arena *a, sp_plan *out);

/* ---- lengths files and JSON (sp_json.c) ------------------------------------------------ */
/* sp_read_lengths: parse a lengths file (one positive integer per line; blank
 * lines and '#' comments skipped). Errors print "file:line:col: error: ..." and
 * return NULL. *n gets the count; *lines the line number of each (malloc'ed,
 * caller frees both). */
int64_t *sp_read_lengths(const char *path, int *n, int **lines);
/* sp_start_name: "split", "greedy" or "best-degree" (sp_start), as printed. */
const char *sp_start_name(int start);
struct cJSON;
/* sp_plan_json: the JSON object of one plan ("step_time_s", "micro_batches"). */
struct cJSON *sp_plan_json(const sp_plan *p, const int64_t *len, bool with_groups);
/* sp_json_section: for the planner: when the training setup names a lengths
 * file, add an "sp" object to `plan` describing the first batch of
 * tr->global_batch sequences (adaptive, static, lower bound). lengths_path is
 * the resolved path; cal (NULL: none) the plan's calibration. Returns false
 * (message printed) on bad input. */
bool sp_json_section(struct cJSON *plan, const ir_graph *g, const ir_cluster *c,
                     const ir_train *tr, const char *lengths_path, const plan_calib *cal);
#endif
