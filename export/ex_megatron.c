/* ex_megatron.c — a plan as a Megatron-LM launch script.
 *
 * Writes a POSIX sh script for Megatron-LM main as of 2026 (EX_MEGATRON_VERSION):
 * a comment header (target, plan, predicted figures, and a WARNING line for each
 * thing Megatron-LM cannot express), the environment Megatron's validate_args
 * requires (CUDA_DEVICE_MAX_CONNECTIONS=1 with tensor or context parallelism,
 * unset under Megatron FSDP; MASTER_ADDR and NODE_RANK from the environment on
 * several nodes), then one torchrun line running pretrain_gpt.py with one
 * argument per line. The model is described in full (sizes, norm, activation,
 * positions, biases, tied embeddings, GQA groups, dropout) so Megatron builds
 * the model sbpc planned. Mapping: tp/pp/vpp/sp to the model-parallel sizes
 * (sp to context parallelism), sequence parallelism to --sequence-parallel,
 * micro/global batch, recompute to granularity/method, ZeRO-1 to the
 * distributed optimizer and ZeRO-2/3 to Megatron FSDP sharding (with the
 * fsdp_dtensor checkpoint format it requires), uneven stages to first/last
 * stage layer counts (or a full pipeline layout when the middle stages differ
 * too). Plans Megatron would reject are refused (CPU devices, heads or GQA
 * groups not divisible by tp). Every flag written is in
 * tests/export/megatron_flags.txt with its constraints; tests/export.sh checks
 * each script against that table. Data, tokenizer and optimizer arguments are
 * the user's: the script passes its own arguments through ("$@"). */
#include "export/export.h"
#include <stdlib.h>
#include <string.h>

static void arg(ex_ctx *c, const char *flag, const char *fmt, long v) {
  fprintf(c->out, "  %s", flag);
  if (fmt) {
    fputc(' ', c->out);
    fprintf(c->out, fmt, v);
  }
  fputs(" \\\n", c->out);
}

/* sarg: a flag with a fixed word or a %g number. */
static void sarg(ex_ctx *c, const char *flag, const char *word) { fprintf(c->out, "  %s %s \\\n", flag, word); }
static void garg(ex_ctx *c, const char *flag, double v) { fprintf(c->out, "  %s %g \\\n", flag, v); }

static int fsdp(const sbpc_plan *p) { return p->zero >= 2 && p->dp > 1; }

static void header(const sbpc_plan *p, ex_ctx *c) {
  char m[128], f[256];
  fprintf(c->out, "#!/bin/sh\n# Megatron-LM launch for plan '%s' (%s), written by sbpc export megatron.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, f, sizeof f));
  fprintf(c->out, "# target: %s, pretrain_gpt.py\n", EX_MEGATRON_VERSION);
  fprintf(c->out, "# layout: dp=%d tp=%d pp=%d sp=%d vpp=%d micro_batch=%d micro_batches=%d recompute=%s zero=%d\n",
          p->dp, p->tp, p->pp, p->sp, p->vpp, p->micro_batch, p->num_micro_batches, p->recompute, p->zero);
  if (p->predicted.step_time_s >= 0)
    fprintf(c->out, "# predicted: step %.4g s, %.4g tokens/s, MFU %.3g\n", p->predicted.step_time_s,
            p->predicted.tokens_per_s, p->predicted.mfu);
  if (p->vocab)
    fprintf(c->out, "# vocabulary: %d entries; pass a tokenizer of that size (Megatron pads it to a multiple of "
                    "128*tp).\n", p->vocab);
  fprintf(c->out, "# Append data, tokenizer and optimizer arguments: sh THIS.sh --data-path ... --lr ...\n");
}

static int stage_layers(const sbpc_plan *p, int s) { return p->stages[s].nlayers; }

/* middle_even: the stages other than the first and last hold equal counts. */
static int middle_even(const sbpc_plan *p) {
  for (int s = 2; s < p->nstages - 1; s++)
    if (stage_layers(p, s) != stage_layers(p, 1)) return 0;
  return 1;
}

/* layout: Megatron's --pipeline-model-parallel-layout, "E" embedding, "t" a
 * transformer layer, "L" the loss, "|" between stages. */
static void layout(const sbpc_plan *p, ex_ctx *c) {
  fputs("  --pipeline-model-parallel-layout \"E", c->out);
  for (int s = 0; s < p->nstages; s++) {
    if (s) fputc('|', c->out);
    for (int k = 0; k < stage_layers(p, s); k++) fputc('t', c->out);
  }
  fputs("L\" \\\n", c->out);
}

static void pipeline(const sbpc_plan *p, ex_ctx *c) {
  arg(c, "--pipeline-model-parallel-size", "%ld", p->pp);
  int uneven = ex_uneven_stages(p);
  if (uneven && p->vpp > 1)
    ex_warn(c, "Megatron-LM cannot combine uneven stages with interleaving; writing vpp=1 (plan has vpp=%d)", p->vpp);
  if (uneven) {
    if (middle_even(p)) {
      arg(c, "--decoder-first-pipeline-num-layers", "%ld", stage_layers(p, 0));
      arg(c, "--decoder-last-pipeline-num-layers", "%ld", stage_layers(p, p->nstages - 1));
    } else {
      layout(p, c);
    }
    return;
  }
  if (p->vpp > 1) {
    int per = p->stages[0].chunks[0][1] - p->stages[0].chunks[0][0] + 1, same = 1;
    for (int s = 0; s < p->nstages; s++)
      for (int k = 0; k < p->stages[s].nchunks; k++) same &= p->stages[s].chunks[k][1] - p->stages[s].chunks[k][0] + 1 == per;
    if (!same)
      ex_warn(c, "virtual stages hold different layer counts; Megatron-LM needs equal ones, writing vpp=1");
    else
      arg(c, "--num-layers-per-virtual-pipeline-stage", "%ld", per);
  }
}

static void sizes(const sbpc_plan *p, ex_ctx *c) {
  arg(c, "--num-layers", "%ld", p->layers);
  if (p->hidden) arg(c, "--hidden-size", "%ld", p->hidden);
  if (p->ffn) arg(c, "--ffn-hidden-size", "%ld", p->ffn);
  if (p->heads) arg(c, "--num-attention-heads", "%ld", p->heads);
  if (p->kv_heads && p->kv_heads != p->heads) {
    arg(c, "--group-query-attention", NULL, 0);
    arg(c, "--num-query-groups", "%ld", p->kv_heads);
  }
  if (p->seq) {
    arg(c, "--seq-length", "%ld", p->seq);
    arg(c, "--max-position-embeddings", "%ld", p->positions > p->seq ? p->positions : p->seq);
  }
  if (!p->hidden || !p->heads || !p->seq)
    ex_warn(c, "the plan does not give hidden size, heads and sequence length; add --hidden-size, "
               "--num-attention-heads and --seq-length yourself");
}

/* architecture: norm, activation, positions, biases, tying and dropout. */
static void architecture(const sbpc_plan *p, ex_ctx *c) {
  if (!p->norm || !p->activation || !p->position || p->linear_bias < 0 || p->tied_embeddings < 0)
    ex_warn(c, "the plan does not describe the architecture (norm, activation, positions, biases, tying); "
               "Megatron-LM's defaults are written for what it leaves out (LayerNorm, GELU, learned positions, "
               "biases, tied embeddings)");
  if (p->norm) sarg(c, "--normalization", !strcmp(p->norm, "rms_norm") ? "RMSNorm" : "LayerNorm");
  if (p->norm_eps > 0) garg(c, "--norm-epsilon", p->norm_eps);
  if (p->activation && !strcmp(p->activation, "swiglu")) arg(c, "--swiglu", NULL, 0);
  if (p->activation && !strcmp(p->activation, "gelu_tanh")) arg(c, "--openai-gelu", NULL, 0);
  if (p->activation && !strcmp(p->activation, "silu"))
    ex_warn(c, "an ungated SiLU MLP has no Megatron-LM flag; written as GELU");
  if (p->position) {
    const char *pos = !strcmp(p->position, "rotary") ? "rope" : !strcmp(p->position, "learned") ? "learned_absolute"
                                                                                                 : "none";
    sarg(c, "--position-embedding-type", pos);
  }
  if (p->rotary_theta > 0 && p->position && !strcmp(p->position, "rotary")) {
    long th = (long)p->rotary_theta;
    if ((double)th != p->rotary_theta) ex_warn(c, "rotary base %g is not an integer; writing %ld", p->rotary_theta, th);
    arg(c, "--rotary-base", "%ld", th);
  }
  if (p->tied_embeddings == 0) arg(c, "--untie-embeddings-and-output-weights", NULL, 0);
  if (p->linear_bias == 0) arg(c, "--disable-bias-linear", NULL, 0);
  if (p->dropout >= 0) {
    garg(c, "--hidden-dropout", p->dropout);
    garg(c, "--attention-dropout", 0);
  }
}

static void memory_args(const sbpc_plan *p, ex_ctx *c) {
  if (!strcmp(p->recompute, "full")) {
    fputs("  --recompute-granularity full \\\n  --recompute-method uniform \\\n", c->out);
    arg(c, "--recompute-num-layers", "%ld", 1);
  } else if (!strcmp(p->recompute, "selective")) {
    fputs("  --recompute-granularity selective \\\n", c->out);
  }
  if (p->zero == 1 || (p->zero >= 2 && p->dp == 1)) arg(c, "--use-distributed-optimizer", NULL, 0);
  if (fsdp(p)) {
    arg(c, "--use-megatron-fsdp", NULL, 0);
    sarg(c, "--data-parallel-sharding-strategy", p->zero == 2 ? "optim_grads" : "optim_grads_params");
    sarg(c, "--ckpt-format", "fsdp_dtensor");
  }
  if (p->dp > 1) {
    arg(c, "--overlap-grad-reduce", NULL, 0);
    if (p->zero >= 1) arg(c, "--overlap-param-gather", NULL, 0);
  }
}

static void batch_args(const sbpc_plan *p, ex_ctx *c) {
  int gb = ex_global_batch(p), want = p->micro_batch * p->num_micro_batches * p->dp;
  if (gb != want) {
    ex_warn(c, "global batch %d is not micro_batch*num_micro_batches*dp = %d; writing %d", gb, want, want);
    gb = want;
  }
  arg(c, "--micro-batch-size", "%ld", p->micro_batch);
  arg(c, "--global-batch-size", "%ld", gb);
  if (p->precision && !strcmp(p->precision, "bf16")) arg(c, "--bf16", NULL, 0);
  else if (p->precision && !strcmp(p->precision, "fp16")) arg(c, "--fp16", NULL, 0);
}

/* environment: what validate_args asserts about CUDA_DEVICE_MAX_CONNECTIONS
 * (1 with tp or cp > 1 before Blackwell, never 1 under FSDP) and the
 * rendezvous variables every node but a single one must be given. */
static void environment(const sbpc_plan *p, ex_ctx *c, int nodes) {
  fputs("set -eu\n", c->out);
  if (nodes > 1)
    fputs(": \"${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}\"\n"
          ": \"${NODE_RANK:?set NODE_RANK to the index of this node (0 on the node at MASTER_ADDR)}\"\n",
          c->out);
  if (fsdp(p))
    fputs("unset CUDA_DEVICE_MAX_CONNECTIONS  # Megatron FSDP requires it unset or > 1\n", c->out);
  else if (p->tp > 1 || p->sp > 1)
    fputs("export CUDA_DEVICE_MAX_CONNECTIONS=1  # tensor/context parallelism requires 1 before Blackwell\n", c->out);
}

static void launcher(const sbpc_plan *p, ex_ctx *c) {
  int per, nodes = ex_nodes(p, c, &per);
  environment(p, c, nodes);
  if (per) fprintf(c->out, "torchrun --nnodes %d --nproc-per-node %d --node-rank \"${NODE_RANK:-0}\" \\\n", nodes, per);
  else
    fprintf(c->out, "torchrun --nnodes %d --nproc-per-node \"${NPROC_PER_NODE:?devices on this node}\" "
                    "--node-rank \"${NODE_RANK:-0}\" \\\n", nodes);
  fputs("  --master-addr \"${MASTER_ADDR:-localhost}\" --master-port \"${MASTER_PORT:-6000}\" \\\n", c->out);
  fputs("  pretrain_gpt.py \\\n", c->out);
}

int ex_megatron(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  if (ex_cpu_devices(p)) return ex_refuse(c, "the plan runs on CPU devices; Megatron-LM trains on GPUs only");
  if (ex_check_heads(p, c)) return 1;
  header(p, c);
  ex_common_warnings(p, c);
  if (p->sp > 1)
    ex_warn(c, "sequence-parallel degree %d written as Megatron context parallelism (ring attention)", p->sp);
  if (p->zero == 2 && p->dp > 1)
    ex_warn(c, "ZeRO-2 written as Megatron FSDP with optimizer+gradient sharding (optim_grads)");
  if (p->zero >= 2 && p->dp == 1)
    ex_warn(c, "ZeRO-%d over dp=1 shards nothing; written as the distributed optimizer", p->zero);
  char *cmd = NULL;
  size_t len = 0;
  FILE *out = c->out, *body = open_memstream(&cmd, &len);
  if (!body) return ex_refuse(c, "out of memory");
  c->notes = out, c->out = body; /* warnings found while writing the command go above it */
  launcher(p, c);
  sizes(p, c);
  architecture(p, c);
  arg(c, "--tensor-model-parallel-size", "%ld", p->tp);
  pipeline(p, c);
  if (p->sp > 1) arg(c, "--context-parallel-size", "%ld", p->sp);
  if (ex_megatron_sp(p)) arg(c, "--sequence-parallel", NULL, 0);
  batch_args(p, c);
  memory_args(p, c);
  fputs("  \"$@\"\n", c->out);
  fclose(body);
  c->out = out, c->notes = NULL;
  fputs(cmd, out);
  free(cmd);
  return 0;
}
