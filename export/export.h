/* export.h — sbpc's exports of a plan to the tools people already run, and
 * the pictures of a plan.
 *
 * Each exporter takes a plan read through sbpc_plan.h and writes one target's
 * configuration to an ex_ctx: Megatron-LM command-line arguments (ex_megatron),
 * a DeepSpeed config JSON plus its launch line (ex_deepspeed), a torchtitan
 * v0.2.2 TOML (ex_torchtitan) or a config function for torchtitan main
 * (ex_torchtitan_main, Python), a DTensor parallelize_plan in Python
 * (ex_dtensor).
 * Where a target cannot express part of the plan (uneven TP shards, mixed
 * device types, adaptive SP, ...) the exporter calls ex_warn, which writes the
 * reason as a comment into the output (when the format has comments) and as a
 * warning on stderr, and then writes the nearest faithful layout.
 * ex_trace writes a Chrome/Perfetto trace of one predicted step; ex_trace_svg
 * a small SVG timeline drawn from the same schedule. (Measuring the machine,
 * `sbpc tune`, is its own module: tune/tune.h.) */
#ifndef SBPC_EXPORT_H
#define SBPC_EXPORT_H
#include "format/sbpc_plan.h"
#include <stdio.h>

typedef struct ex_ctx {
  FILE *out;           /* the exported file */
  FILE *err;           /* warnings and notes (stderr) */
  const char *plan;    /* plan file name, for messages */
  const char *comment; /* comment leader of the output format, NULL = none */
  int warnings;
  FILE *notes;         /* where WARNING comments go; NULL = out (set while out is a buffer of a command line) */
  const char *launch;  /* --launch FILE (deepspeed): the launch script's path, else NULL */
  const char *out_name; /* -o FILE as given, else NULL (the launch script names the config by it) */
  const char *target;  /* --target VERSION as given (torchtitan: v0.2.2 or main), else NULL */
} ex_ctx;

/* The versions each exporter writes for, named in every file written and in
 * docs/export.md; the commits are the upstream snapshots the formats were
 * checked against. */
#define EX_MEGATRON_VERSION "Megatron-LM main as of 2026-08 (after core_v0.19.0; checked at commit d98e8a64)"
#define EX_DEEPSPEED_VERSION "DeepSpeed 0.19 (checked at v0.19.5+, commit edaa7221) with Megatron-DeepSpeed (commit 4efb479d)"
#define EX_TORCHTITAN_VERSION "torchtitan v0.2.2 (TOML job config; commit 73a0e697)"
#define EX_TORCHTITAN_MAIN_VERSION "torchtitan main (Python config functions; checked at commit b5bcd76c, 2026-08-21)"
#define EX_DTENSOR_VERSION "PyTorch >= 2.6 (torch.distributed.tensor, fully_shard) with Hugging Face transformers"

/* ex_warn: report something the target cannot express: "COMMENT WARNING: msg"
 * into out (when the format has comments), "plan: warning: msg" on err. */
void ex_warn(ex_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ex_clean: s made safe inside a quoted string or a comment of any output
 * format (control characters, quotes, backslashes, backquotes, '$' become
 * '_'), in buf[0..n). */
const char *ex_clean(const char *s, char *buf, size_t n);
/* ex_ident: s as a Python identifier (other characters become '_'). */
const char *ex_ident(const char *s, char *buf, size_t n);
/* ex_refuse: report why the target cannot take this plan at all
 * ("plan: error: msg" on err); nothing is written. Returns 1. */
int ex_refuse(ex_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ex_cpu_devices: 1 when every device the plan runs on is a CPU (a device
 * type named "cpu..."). */
int ex_cpu_devices(const sbpc_plan *p);
/* ex_check_heads: refuse (1) a plan whose tp does not divide the attention
 * heads or the GQA groups (kv heads): no target can shard them; else 0. */
int ex_check_heads(const sbpc_plan *p, ex_ctx *c);
/* ex_note: an informational line on err ("plan: note: msg"). */
void ex_note(ex_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shared facts about a plan the exporters all need. */
/* ex_global_batch: the global batch in samples (train.global_batch, or
 * micro_batch * num_micro_batches * dp when the plan omits it). */
int ex_global_batch(const sbpc_plan *p);
/* ex_uneven_stages: 1 when stages hold different layer counts. */
int ex_uneven_stages(const sbpc_plan *p);
/* ex_mixed_devices: 1 when the devices the plan runs on are of more than one
 * type (by cluster.node_types where it gives counts, else by the stages'
 * device_type and the cluster's type list). */
int ex_mixed_devices(const sbpc_plan *p);
/* ex_uneven_tp: the first op with uneven (speed-weighted) shards, or NULL. */
const sbpc_plan_op *ex_uneven_tp(const sbpc_plan *p);
/* ex_axis: index of the mesh axis named `name` in p->axes, or -1. */
int ex_axis(const sbpc_plan *p, const char *name);
/* ex_collective: a collective's display name ("all_reduce" -> "all-reduce"),
 * in a static buffer of the caller's (at least 32 bytes). */
const char *ex_collective(const char *c, char *buf, size_t n);
/* ex_megatron_sp: 1 when the plan uses Megatron-style sequence parallelism
 * (parallel.sequence_parallel, else inferred: tp shards weights and a norm's
 * output is S(1), the sequence axis, on the tp axis). */
int ex_megatron_sp(const sbpc_plan *p);
/* ex_tp_shards_weights: 1 when some matmul of a block has its weight split
 * on the tp axis (Megatron-style tensor parallelism); 0 when the tp axis only
 * splits activations (sequence/heads, Ulysses-style). */
int ex_tp_shards_weights(const sbpc_plan *p);
/* ex_nodes: the node count for a launcher and, in *per, the processes per
 * node (0, with a warning, when node types differ in device count). */
int ex_nodes(const sbpc_plan *p, ex_ctx *c, int *per);
/* ex_common_warnings: the warnings every target shares (mixed device types,
 * uneven TP shards, adaptive SP). */
void ex_common_warnings(const sbpc_plan *p, ex_ctx *c);

/* What both torchtitan formats (v0.2.2 TOML, main's Python) take from a plan
 * the same way; defined in ex_torchtitan.c. */
typedef struct ex_titan_dp {
  int replicate, shard; /* data_parallel_replicate_degree, data_parallel_shard_degree */
  const char *reshard;  /* fsdp_reshard_after_forward, NULL = torchtitan's default */
} ex_titan_dp;
/* ex_titan_refuse: refuse (1) a plan torchtitan cannot take at all (CPU
 * devices, tp not dividing the heads); else 0. */
int ex_titan_refuse(const sbpc_plan *p, ex_ctx *c);
/* ex_titan_dp_degrees: the plan's dp and ZeRO stage as torchtitan's degrees:
 * ZeRO-0 replicates, ZeRO-3 shards, ZeRO-1/2 shard without resharding after
 * forward (warns for ZeRO-1). */
ex_titan_dp ex_titan_dp_degrees(const sbpc_plan *p, ex_ctx *c);
/* ex_titan_llama_like: 1 when the plan's architecture is LLaMA's (RMSNorm,
 * SwiGLU, rotary, no biases, untied output), which torchtitan's llama3 is. */
int ex_titan_llama_like(const sbpc_plan *p);
/* ex_titan_vpp: the virtual stages per rank torchtitan is given: the plan's
 * vpp, or 1 (with a warning) when the plan does not list its chunks. */
int ex_titan_vpp(const sbpc_plan *p, ex_ctx *c);
/* ex_titan_parts: write module_fqns_per_model_part's value, one list per
 * (virtual) stage in schedule order, torchtitan's module names with `head`
 * the output projection ("output" in v0.2.2, "lm_head" on main). */
void ex_titan_parts(const sbpc_plan *p, ex_ctx *c, int vpp, const char *head);
/* ex_titan_precision: mixed_precision_param for the plan's precision
 * ("bfloat16" or "float32"; fp16 is written as float32 with a warning). */
const char *ex_titan_precision(const sbpc_plan *p, ex_ctx *c);

/* The exporters: 0 on success. */
int ex_megatron(const sbpc_plan *p, ex_ctx *c);
int ex_deepspeed(const sbpc_plan *p, ex_ctx *c);
int ex_torchtitan(const sbpc_plan *p, ex_ctx *c);
int ex_torchtitan_main(const sbpc_plan *p, ex_ctx *c);
int ex_dtensor(const sbpc_plan *p, ex_ctx *c);

/* Trace of one predicted step. */
typedef struct ex_trace_opts {
  int per_device;    /* 1: a track per device; 0: per stage (rank group); -1: auto */
  int max_devices;   /* auto: per device up to this many devices (default 64) */
} ex_trace_opts;

/* One scheduled slice of the predicted step (times in seconds). */
typedef struct ex_slice {
  int stage, lane;  /* lane 0 = compute, 1 = communication */
  double t0, t1;
  const char *name, *cat;
  int mb, chunk;    /* micro-batch and virtual chunk, -1 when n/a */
} ex_slice;

/* ex_schedule: simulate one step of (interleaved) 1F1B from the plan's stages
 * and predicted times; returns the slices (malloc'ed, *n of them, sorted per
 * stage and lane by start) or NULL with a reason in err. The caller frees. */
ex_slice *ex_schedule(const sbpc_plan *p, int *n, double *step_s, ex_ctx *c);
/* ex_trace: write the Chrome/Perfetto trace JSON of one predicted step. */
int ex_trace(const sbpc_plan *p, const ex_trace_opts *o, ex_ctx *c);
/* ex_trace_svg: write a small SVG timeline (one row per stage). */
int ex_trace_svg(const sbpc_plan *p, ex_ctx *c);

#endif
