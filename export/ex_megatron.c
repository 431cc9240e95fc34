/* ex_megatron.c — a plan as a Megatron-LM launch script.
 *
 * Writes a POSIX sh script: a comment header (plan, predicted figures, and a
 * WARNING line for each thing Megatron-LM cannot express), then one torchrun
 * line running pretrain_gpt.py with one argument per line. Every flag written
 * here is listed in tests/export/megatron_flags.txt, checked against
 * Megatron-LM's megatron/training/arguments.py, and tests/export.sh fails on a
 * flag that is not in that list. Mapping: tp/pp/vpp/sp to the model-parallel
 * sizes (sp to context parallelism), sequence parallelism to
 * --sequence-parallel, micro/global batch, recompute to granularity/method,
 * ZeRO-1 to the distributed optimizer and ZeRO-2/3 to Megatron FSDP sharding,
 * uneven stages to first/last stage layer counts (or a full pipeline layout
 * when the middle stages differ too). Data, tokenizer and optimizer arguments
 * are the user's: the script passes its own arguments through ("$@"). */
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

static void header(const sbpc_plan *p, ex_ctx *c) {
  char m[128], f[256];
  fprintf(c->out, "#!/bin/sh\n# Megatron-LM launch for plan '%s' (%s), written by sbpc export megatron.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, f, sizeof f));
  fprintf(c->out, "# layout: dp=%d tp=%d pp=%d sp=%d vpp=%d micro_batch=%d micro_batches=%d recompute=%s zero=%d\n",
          p->dp, p->tp, p->pp, p->sp, p->vpp, p->micro_batch, p->num_micro_batches, p->recompute, p->zero);
  if (p->predicted.step_time_s >= 0)
    fprintf(c->out, "# predicted: step %.4g s, %.4g tokens/s, MFU %.3g\n", p->predicted.step_time_s,
            p->predicted.tokens_per_s, p->predicted.mfu);
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

static void model_args(const sbpc_plan *p, ex_ctx *c) {
  arg(c, "--num-layers", "%ld", p->layers);
  if (p->hidden) arg(c, "--hidden-size", "%ld", p->hidden);
  if (p->ffn && p->ffn != 4 * p->hidden) arg(c, "--ffn-hidden-size", "%ld", p->ffn);
  if (p->heads) arg(c, "--num-attention-heads", "%ld", p->heads);
  if (p->seq) {
    arg(c, "--seq-length", "%ld", p->seq);
    arg(c, "--max-position-embeddings", "%ld", p->seq);
  }
  if (!p->hidden || !p->heads || !p->seq)
    ex_warn(c, "the plan does not give hidden size, heads and sequence length; add --hidden-size, "
               "--num-attention-heads and --seq-length yourself");
}

static void memory_args(const sbpc_plan *p, ex_ctx *c) {
  if (!strcmp(p->recompute, "full")) {
    fputs("  --recompute-granularity full \\\n  --recompute-method uniform \\\n", c->out);
    arg(c, "--recompute-num-layers", "%ld", 1);
  } else if (!strcmp(p->recompute, "selective")) {
    fputs("  --recompute-granularity selective \\\n", c->out);
  }
  if (p->zero == 1) {
    arg(c, "--use-distributed-optimizer", NULL, 0);
    arg(c, "--overlap-param-gather", NULL, 0);
  } else if (p->zero >= 2) {
    arg(c, "--use-megatron-fsdp", NULL, 0);
    fprintf(c->out, "  --data-parallel-sharding-strategy %s \\\n", p->zero == 2 ? "optim_grads" : "optim_grads_params");
  }
  if (p->dp > 1) arg(c, "--overlap-grad-reduce", NULL, 0);
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

static void launcher(const sbpc_plan *p, ex_ctx *c) {
  int per, nodes = ex_nodes(p, c, &per);
  if (per) fprintf(c->out, "torchrun --nnodes %d --nproc-per-node %d --node-rank \"${NODE_RANK:-0}\" \\\n", nodes, per);
  else
    fprintf(c->out, "torchrun --nnodes %d --nproc-per-node \"${NPROC_PER_NODE:?devices on this node}\" "
                    "--node-rank \"${NODE_RANK:-0}\" \\\n", nodes);
  fputs("  --master-addr \"${MASTER_ADDR:-localhost}\" --master-port \"${MASTER_PORT:-6000}\" \\\n", c->out);
  fputs("  pretrain_gpt.py \\\n", c->out);
}

int ex_megatron(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  header(p, c);
  ex_common_warnings(p, c);
  if (p->sp > 1)
    ex_warn(c, "sequence-parallel degree %d written as Megatron context parallelism (ring attention)", p->sp);
  if (p->zero == 2)
    ex_warn(c, "ZeRO-2 written as Megatron FSDP with optimizer+gradient sharding (optim_grads)");
  launcher(p, c);
  model_args(p, c);
  arg(c, "--tensor-model-parallel-size", "%ld", p->tp);
  pipeline(p, c);
  if (p->sp > 1) arg(c, "--context-parallel-size", "%ld", p->sp);
  if (ex_megatron_sp(p)) arg(c, "--sequence-parallel", NULL, 0);
  batch_args(p, c);
  memory_args(p, c);
  fputs("  \"$@\"\n", c->out);
  return 0;
}
