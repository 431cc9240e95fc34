/* ex_deepspeed.c — a plan as a DeepSpeed config JSON plus its launch line.
 *
 * The JSON is built with cJSON and printed formatted; it uses only keys from
 * DeepSpeed's config (deepspeed/runtime/constants.py and the ZeRO and
 * activation-checkpointing sections; the list tests/export.sh checks is
 * tests/export/deepspeed_keys.txt). JSON has no comments, so what DeepSpeed
 * cannot express goes to stderr only, and the launch line (Megatron-DeepSpeed's
 * pretrain_gpt.py under the deepspeed launcher, which is where tensor and
 * pipeline degrees are given) is written to stderr as a "launch:" note.
 * Mapping: micro-batch, gradient accumulation = micro-batches per step, train
 * batch = micro * accumulation * dp, ZeRO stage (pipeline parallelism in
 * DeepSpeed supports ZeRO 0/1 only, so 2/3 with pp>1 is written as 1), bf16 or
 * fp16, activation checkpointing for full recompute. */
#include "export/export.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static cJSON *zero_section(const sbpc_plan *p, ex_ctx *c) {
  int stage = p->zero;
  if (p->pp > 1 && stage >= 2) {
    ex_warn(c, "DeepSpeed's pipeline engine supports ZeRO stage 0 or 1 only; writing stage 1 (plan has ZeRO-%d)",
            stage);
    stage = 1;
  }
  cJSON *z = cJSON_CreateObject();
  cJSON_AddNumberToObject(z, "stage", stage);
  cJSON_AddBoolToObject(z, "overlap_comm", p->dp > 1);
  cJSON_AddBoolToObject(z, "contiguous_gradients", 1);
  cJSON_AddBoolToObject(z, "reduce_scatter", 1);
  return z;
}

static cJSON *checkpointing(const sbpc_plan *p, ex_ctx *c) {
  if (!strcmp(p->recompute, "selective"))
    ex_warn(c, "selective (attention) recompute is not a DeepSpeed config setting; pass "
               "--recompute-granularity selective to Megatron-DeepSpeed (see the launch line)");
  cJSON *a = cJSON_CreateObject();
  cJSON_AddBoolToObject(a, "partition_activations", p->tp > 1 && !strcmp(p->recompute, "full"));
  cJSON_AddBoolToObject(a, "contiguous_memory_optimization", 0);
  cJSON_AddBoolToObject(a, "cpu_checkpointing", 0);
  cJSON_AddNumberToObject(a, "number_checkpoints", p->stages[0].nlayers);
  cJSON_AddBoolToObject(a, "synchronize_checkpoint_boundary", 0);
  cJSON_AddBoolToObject(a, "profile", 0);
  return a;
}

static cJSON *config(const sbpc_plan *p, ex_ctx *c) {
  cJSON *j = cJSON_CreateObject();
  int want = p->micro_batch * p->num_micro_batches * p->dp;
  if (ex_global_batch(p) != want)
    ex_warn(c, "global batch %d is not micro_batch*num_micro_batches*dp = %d; writing %d", ex_global_batch(p), want,
            want);
  cJSON_AddNumberToObject(j, "train_batch_size", want);
  cJSON_AddNumberToObject(j, "train_micro_batch_size_per_gpu", p->micro_batch);
  cJSON_AddNumberToObject(j, "gradient_accumulation_steps", p->num_micro_batches);
  cJSON_AddNumberToObject(j, "steps_per_print", 10);
  cJSON_AddNumberToObject(j, "gradient_clipping", 1.0);
  cJSON_AddItemToObject(j, "zero_optimization", zero_section(p, c));
  const char *prec = p->precision ? p->precision : "bf16";
  if (!strcmp(prec, "bf16") || !strcmp(prec, "fp16")) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddBoolToObject(e, "enabled", 1);
    cJSON_AddItemToObject(j, prec, e);
  }
  if (strcmp(p->recompute, "none")) cJSON_AddItemToObject(j, "activation_checkpointing", checkpointing(p, c));
  cJSON_AddBoolToObject(j, "wall_clock_breakdown", 0);
  return j;
}

static void launch_line(const sbpc_plan *p, ex_ctx *c) {
  if (!c->err) return;
  int per, nodes = ex_nodes(p, c, &per);
  char f[256];
  fprintf(c->err, "%s: note: launch: deepspeed --num_nodes %d", ex_clean(c->plan, f, sizeof f), nodes);
  if (per) fprintf(c->err, " --num_gpus %d", per);
  fprintf(c->err, " pretrain_gpt.py");
  fprintf(c->err, " --tensor-model-parallel-size %d --pipeline-model-parallel-size %d", p->tp, p->pp);
  if (p->sp > 1) fprintf(c->err, " --ds-sequence-parallel-size %d", p->sp);
  if (!strcmp(p->recompute, "full")) fprintf(c->err, " --checkpoint-activations");
  if (!strcmp(p->recompute, "selective")) fprintf(c->err, " --recompute-granularity selective");
  if (ex_megatron_sp(p)) fprintf(c->err, " --sequence-parallel");
  fprintf(c->err, " --micro-batch-size %d --global-batch-size %d --deepspeed --deepspeed_config ds_config.json\n",
          p->micro_batch, p->micro_batch * p->num_micro_batches * p->dp);
}

int ex_deepspeed(const sbpc_plan *p, ex_ctx *c) {
  c->comment = NULL;
  ex_common_warnings(p, c);
  if (ex_uneven_stages(p)) {
    char counts[256] = "";
    for (int s = 0, n = 0; s < p->nstages && n < (int)sizeof counts - 12; s++)
      n += snprintf(counts + n, sizeof counts - (size_t)n, "%s%d", s ? "," : "", p->stages[s].nlayers);
    ex_warn(c, "uneven pipeline stages (layers per stage %s): the config cannot carry them; split the "
               "PipelineModule's layers that way yourself", counts);
  }
  if (p->vpp > 1) ex_warn(c, "DeepSpeed's pipeline engine has no interleaved schedule; vpp=%d dropped", p->vpp);
  cJSON *j = config(p, c);
  char *s = cJSON_Print(j);
  fprintf(c->out, "%s\n", s);
  free(s);
  cJSON_Delete(j);
  launch_line(p, c);
  return 0;
}
