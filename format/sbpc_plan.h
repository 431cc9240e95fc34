/* sbpc_plan.h — the small public C API for reading an sbpc plan JSON.
 *
 * An external runtime (or sbpc's own exporters) links libsbpc and calls
 * sbpc_plan_read() to get the plan as plain C structs: the parallel degrees,
 * the pipeline stages with their devices and layers, the ops with their SBP
 * signatures, the boxing collectives and the predicted figures. The reader
 * validates the document (format "sbpc-plan", version 1, degrees consistent
 * with the device count, stages covering the layers) and refuses it with a
 * one-line message otherwise; it never aborts on input. Everything a plan
 * owns is freed by one sbpc_plan_free(). The schema is docs/plan-format.md;
 * the optional fields this reader also understands are listed in
 * docs/export.md. This header depends on nothing but the C library. */
#ifndef SBPC_PLAN_H
#define SBPC_PLAN_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SBPC_PLAN_VERSION 1

/* One pipeline stage: layers [first_layer, last_layer] (with vpp > 1 the span
 * of its chunks) on ndevices devices. nlayers counts the layers it holds;
 * chunks[k] = {first, last} of virtual stage k*pp + s (nchunks = vpp, or 1).
 * fwd_s / bwd_s are the predicted seconds of one micro-batch's forward and
 * backward on this stage when the plan gives them (else -1). */
typedef struct sbpc_plan_stage {
  int first_layer, last_layer, nlayers;
  int nchunks;
  const int (*chunks)[2];
  int ndevices;
  const int *devices;
  const char *device_type; /* NULL when the plan does not say */
  double fwd_s, bwd_s;
} sbpc_plan_stage;

/* One op (layer 0 of a block, or an op outside blocks): name (its first
 * output's name), kind ("matmul", ...), block (NULL outside blocks), the SBP
 * on the tp mesh axis of each input (in_sbp) and output (out_sbp), the input
 * tensor names when the plan gives them (in_names[i] may be NULL), and
 * uneven: the op's tp shares differ by device (a TP group mixing device
 * types). */
typedef struct sbpc_plan_op {
  const char *name, *block, *kind;
  int nin, nout;
  const char *const *in_sbp;
  const char *const *in_names;
  const char *const *out_sbp;
  int uneven;
  int index;  /* the op's index in the forward graph the plan was made from (-1: not given) */
  int lidx;   /* its index inside one block layer (-1 outside blocks or not given) */
} sbpc_plan_op;

/* One boxing (re-layout) collective per layer: the consuming op, its input
 * slot and tensor, the mesh axis, from/to SBP, the collective ("all_reduce",
 * "all_gather", "reduce_scatter", "all_to_all", "slice"), bytes per device per
 * micro-batch, the pass (0 forward, 1 backward, -1 unknown) and its time when
 * the plan gives one (else -1). */
typedef struct sbpc_plan_boxing {
  const char *op, *tensor, *block, *axis, *from, *to, *collective;
  int input, pass;
  double bytes, time_s;
} sbpc_plan_boxing;

/* The predicted step. Any figure the plan omits is -1. compute_s +
 * exposed_comm_s + bubble_s = step_time_s. The *_comm_s, recompute_s and
 * optimizer_s splits are optional extensions (see docs/export.md). */
typedef struct sbpc_plan_predicted {
  double step_time_s, tokens_per_s, model_tflops_per_device, hardware_tflops_per_device, mfu;
  double memory_per_device_bytes;
  double compute_s, exposed_comm_s, bubble_s, recompute_s;
  double tp_comm_s, dp_comm_s, pp_comm_s, optimizer_s;
} sbpc_plan_predicted;

/* One of the planner's best layouts (planner.top): its degrees, micro-batch
 * and count, ZeRO stage, recompute policy, devices used and predicted step. */
typedef struct sbpc_plan_top {
  int dp, tp, pp, sp, vpp, micro_batch, num_micro_batches, zero, devices_used;
  const char *recompute;
  double step_time_s;
} sbpc_plan_top;

typedef struct sbpc_plan {
  int version;
  /* model */
  const char *model_name;
  double params;
  int layers, hidden, heads, ffn, vocab, seq; /* 0 = not given; seq: train.seq, else model.seq */
  /* architecture (optional model fields, docs/plan-format.md): positions is
   * the position table's rows (model.seq, 0 without one); norm "layer_norm"
   * or "rms_norm", activation "gelu", "gelu_tanh", "swiglu" or "silu",
   * position "learned", "rotary" or "none" (NULL = not given); kv_heads 0 =
   * not given; linear_bias, tied_embeddings 1/0, -1 not given; norm_eps,
   * rotary_theta, dropout -1 not given. */
  int positions, kv_heads, linear_bias, tied_embeddings;
  const char *norm, *activation, *position;
  double norm_eps, rotary_theta, dropout;
  /* training setup (0 / NULL = not given); precision "bf16", "fp16", "fp32" */
  int global_batch;
  const char *precision;
  /* cluster */
  const char *cluster_name;
  int devices, nodes, devices_per_node; /* devices_per_node 0: differs by node type */
  int devices_used; /* devices the layout runs on (cluster.devices_used; == devices unless the planner chose a subset) */
  int ndevice_types;
  const char *const *device_types;
  /* cluster.node_types in order: node type i holds global ranks
   * [type_rank_end[i-1], type_rank_end[i]) (0 for i == 0) of device type
   * type_device[i]; ntype_ranges == 0 when the plan does not give counts. */
  int ntype_ranges;
  const int *type_rank_end;
  const char *const *type_device;
  /* parallel layout */
  int dp, tp, pp, sp, vpp, micro_batch, num_micro_batches, zero;
  const char *recompute;       /* "none", "selective" or "full" */
  const char *sp_kind;         /* "ulysses" or "ring": how the sp group runs attention (default ulysses) */
  int sequence_parallel;       /* Megatron-style SP alongside TP: 1, 0, or -1 unknown */
  int adaptive_sp;             /* per-batch adaptive SP groups (FlexSP-style) */
  int naxes;                   /* the device mesh, outermost axis first */
  const char *const *axes;
  const int *shape;
  int nstages;
  const sbpc_plan_stage *stages;
  int nops;
  const sbpc_plan_op *ops;
  int nboxing;
  const sbpc_plan_boxing *boxing;
  sbpc_plan_predicted predicted;
  int planner_candidates;
  double planner_solve_time_s;
  int ntop;                    /* the planner's best layouts, best first (planner.top) */
  const struct sbpc_plan_top *top;
  void *priv; /* owned storage */
} sbpc_plan;

/* sbpc_plan_parse: read a plan from text[0..len) (need not be NUL-terminated).
 * name is used in messages. Returns a plan, or NULL with a one-line reason in
 * err[0..errlen) ("line:col: ..." for JSON syntax errors). */
sbpc_plan *sbpc_plan_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* sbpc_plan_read: sbpc_plan_parse on the contents of the file at path
 * (refused above 256 MiB). */
sbpc_plan *sbpc_plan_read(const char *path, char *err, size_t errlen);
/* sbpc_plan_free: release a plan and everything it owns; NULL is ok. */
void sbpc_plan_free(sbpc_plan *p);
/* sbpc_plan_stage_of_layer: the index of the stage holding layer l, or -1. */
int sbpc_plan_stage_of_layer(const sbpc_plan *p, int l);

#ifdef __cplusplus
}
#endif
#endif
