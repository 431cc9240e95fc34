/* ex_torchtitan.c — a plan as a torchtitan v0.2.2 TOML job config ([model],
 * [training], [parallelism], [activation_checkpoint]).
 *
 * Keys are torchtitan v0.2.2's JobConfig fields (torchtitan/config/job_config.py
 * at EX_TORCHTITAN_VERSION; the list tests/export.sh checks, with each key's
 * type, is tests/export/torchtitan_keys.txt). v0.2.2 is the last release that
 * reads TOML; later torchtitan configures jobs with Python functions.
 * [model] names torchtitan's llama3 when the plan's architecture is LLaMA's
 * (RMSNorm, SwiGLU, rotary, no biases, untied output), with a flavor the user
 * registers from the TransformerModelArgs written in a comment; torchtitan
 * ships no GPT-2/GPT-3-style model, so for those the section names a model the
 * user registers, and a warning says how. Data parallelism: ZeRO-0 is
 * replication, ZeRO-3 full sharding, ZeRO-1/2 the nearest FSDP2 setting
 * (sharded, fsdp_reshard_after_forward = "never"). Without pipeline
 * parallelism local_batch_size is the plan's micro-batch and torchtitan
 * accumulates gradients over global / (local * dp) = the plan's micro-batches;
 * with it, local_batch_size is the micro-batches of one step and
 * pipeline_parallel_microbatch_size the micro-batch. Stages (uneven or
 * interleaved) are module_fqns_per_model_part, one list per (virtual) stage
 * in torchtitan's module names (tok_embeddings, layers.N, norm, output).
 * Recompute maps to the activation checkpoint mode. Warnings are comments.
 * The decisions both torchtitan formats share (the ex_titan_* functions of
 * export.h: refusals, dp degrees, LLaMA shape, stage parts, precision) live
 * here; ex_titan_main.c writes main's Python config from them. */
#include "export/export.h"
#include <string.h>

ex_titan_dp ex_titan_dp_degrees(const sbpc_plan *p, ex_ctx *c) {
  ex_titan_dp d = {p->dp, 1, NULL};
  if (p->zero == 3) d.replicate = 1, d.shard = p->dp;
  if (p->zero == 1 || p->zero == 2) {
    d.replicate = 1, d.shard = p->dp, d.reshard = "never";
    if (p->zero == 1 && p->dp > 1)
      ex_warn(c, "torchtitan has no optimizer-only sharding (ZeRO-1); written as FSDP2 with "
                 "reshard_after_forward=never (ZeRO-2 memory, no extra communication)");
  }
  if (p->dp == 1) d.replicate = 1, d.shard = 1, d.reshard = NULL;
  return d;
}

static void dp_degrees(const sbpc_plan *p, ex_ctx *c) {
  ex_titan_dp d = ex_titan_dp_degrees(p, c);
  fprintf(c->out, "data_parallel_replicate_degree = %d\ndata_parallel_shard_degree = %d\n", d.replicate, d.shard);
  if (d.reshard) fprintf(c->out, "fsdp_reshard_after_forward = \"%s\"\n", d.reshard);
}

/* part: the module names of virtual stage v (layers [first, last]). */
static void part(ex_ctx *c, int first, int last, int v, int nparts, const char *head) {
  fputs(v ? ", [" : "[", c->out);
  if (v == 0) fputs("\"tok_embeddings\", ", c->out);
  for (int l = first; l <= last; l++) fprintf(c->out, "%s\"layers.%d\"", l > first ? ", " : "", l);
  if (v == nparts - 1) fprintf(c->out, ", \"norm\", \"%s\"", head);
  fputc(']', c->out);
}

/* Virtual stage k*pp + s is chunk k of stage s (schedule order). With vpp 1
 * stage s holds its layer count contiguously after the stages before it (an
 * interleaved plan written as 1F1B keeps each stage's count). */
void ex_titan_parts(const sbpc_plan *p, ex_ctx *c, int vpp, const char *head) {
  int n = p->pp * vpp, next = 0;
  fputc('[', c->out);
  for (int v = 0; v < n; v++) {
    const sbpc_plan_stage *st = &p->stages[v % p->pp];
    if (vpp > 1) part(c, st->chunks[v / p->pp][0], st->chunks[v / p->pp][1], v, n, head);
    else part(c, next, next + st->nlayers - 1, v, n, head);
    next += st->nlayers;
  }
  fputc(']', c->out);
}

int ex_titan_vpp(const sbpc_plan *p, ex_ctx *c) {
  if (p->vpp > 1 && p->stages[0].nchunks != p->vpp) {
    ex_warn(c, "the plan's interleaved chunks are not listed; writing 1F1B over the plan's %d stages", p->pp);
    return 1;
  }
  return p->vpp > 1 ? p->vpp : 1;
}

static void pipeline(const sbpc_plan *p, ex_ctx *c) {
  fprintf(c->out, "pipeline_parallel_degree = %d\n", p->pp);
  if (p->pp == 1) return;
  int vpp = ex_titan_vpp(p, c);
  fprintf(c->out, "pipeline_parallel_schedule = \"%s\"\n", vpp > 1 ? "Interleaved1F1B" : "1F1B");
  fprintf(c->out, "pipeline_parallel_microbatch_size = %d\n", p->micro_batch);
  fputs("module_fqns_per_model_part = ", c->out);
  ex_titan_parts(p, c, vpp, "output");
  fputc('\n', c->out);
}

const char *ex_titan_precision(const sbpc_plan *p, ex_ctx *c) {
  const char *prec = p->precision ? p->precision : "bf16";
  if (!strcmp(prec, "fp16"))
    ex_warn(c, "torchtitan's mixed precision is bfloat16 or float32; the plan's fp16 is written as float32");
  return !strcmp(prec, "bf16") ? "bfloat16" : "float32";
}

static void training(const sbpc_plan *p, ex_ctx *c) {
  fputs("\n[training]\n", c->out);
  fprintf(c->out, "local_batch_size = %d\n", p->pp > 1 ? p->micro_batch * p->num_micro_batches : p->micro_batch);
  fprintf(c->out, "global_batch_size = %d\n", p->micro_batch * p->num_micro_batches * p->dp);
  if (p->seq) fprintf(c->out, "seq_len = %d\n", p->seq);
  fprintf(c->out, "mixed_precision_param = \"%s\"\n", ex_titan_precision(p, c));
}

int ex_titan_llama_like(const sbpc_plan *p) {
  return p->norm && !strcmp(p->norm, "rms_norm") && p->activation && !strcmp(p->activation, "swiglu") &&
         p->position && !strcmp(p->position, "rotary") && p->linear_bias == 0 && p->tied_embeddings == 0;
}

/* flavor_args: llama3's TransformerModelArgs for the plan's sizes; the FFN
 * width X comes out exactly with multiple_of = X when int(8*dim/3) <= X. */
static void flavor_args(const sbpc_plan *p, ex_ctx *c, const char *flavor) {
  int base = (int)(8.0 * p->hidden / 3.0);
  fprintf(c->out, "# Register the flavor in torchtitan/models/llama3/__init__.py (llama3_args):\n"
                  "#   \"%s\": TransformerModelArgs(dim=%d, n_layers=%d, n_heads=%d, n_kv_heads=%d, vocab_size=%d,\n"
                  "#       multiple_of=%d",
          flavor, p->hidden, p->layers, p->heads, p->kv_heads ? p->kv_heads : p->heads, p->vocab, p->ffn);
  if (base > p->ffn) fprintf(c->out, ", ffn_dim_multiplier=%.9g", (double)p->ffn / base);
  fprintf(c->out, ", norm_eps=%g, rope_theta=%g),  # FFN width %d\n", p->norm_eps > 0 ? p->norm_eps : 1e-5,
          p->rotary_theta > 0 ? p->rotary_theta : 10000.0, p->ffn);
}

static void model(const sbpc_plan *p, ex_ctx *c) {
  char id[96];
  ex_ident(p->model_name, id, sizeof id);
  fputs("[model]\n", c->out);
  if (ex_titan_llama_like(p) && p->hidden && p->heads && p->ffn) {
    flavor_args(p, c, id);
    fprintf(c->out, "name = \"llama3\"\nflavor = \"%s\"\n", id);
    return;
  }
  ex_warn(c, "torchtitan ships no model of this architecture (norm %s, activation %s, positions %s): implement it "
             "with torchtitan's module names (tok_embeddings, layers.N, norm, output), register it with "
             "torchtitan.protocols.train_spec.register_train_spec as '%s' with a flavor '%s', and keep this [model]",
          p->norm ? p->norm : "?", p->activation ? p->activation : "?", p->position ? p->position : "?", id, id);
  fprintf(c->out, "name = \"%s\"\nflavor = \"%s\"\n", id, id);
}

int ex_titan_refuse(const sbpc_plan *p, ex_ctx *c) {
  if (ex_cpu_devices(p)) return ex_refuse(c, "the plan runs on CPU devices; torchtitan trains on GPUs only");
  return ex_check_heads(p, c);
}

int ex_torchtitan(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  if (ex_titan_refuse(p, c)) return 1;
  char m[128], f[256];
  fprintf(c->out, "# torchtitan job config for plan '%s' (%s), written by sbpc export torchtitan.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, f, sizeof f));
  fprintf(c->out, "# target: %s. Run: torchrun --nnodes N --nproc-per-node G -m torchtitan.train "
                  "--job.config_file THIS.toml\n", EX_TORCHTITAN_VERSION);
  ex_common_warnings(p, c);
  if (p->sp > 1) ex_warn(c, "sequence-parallel degree %d written as context parallelism", p->sp);
  if (p->tp > 1 && !ex_megatron_sp(p))
    ex_warn(c, "torchtitan's tensor parallelism always shards norms along the sequence (sequence parallel); "
               "the plan keeps them replicated");
  model(p, c);
  training(p, c);
  fputs("\n[parallelism]\n", c->out);
  dp_degrees(p, c);
  fprintf(c->out, "tensor_parallel_degree = %d\n", p->tp);
  pipeline(p, c);
  fprintf(c->out, "context_parallel_degree = %d\n", p->sp);
  fputs("\n[activation_checkpoint]\n", c->out);
  fprintf(c->out, "mode = \"%s\"\n", p->recompute);
  if (!strcmp(p->recompute, "selective")) fputs("selective_ac_option = \"op\"\n", c->out);
  return 0;
}
