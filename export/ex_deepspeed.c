/* ex_deepspeed.c — a plan as a DeepSpeed config JSON plus its launch script.
 *
 * Targets DeepSpeed 0.19 with Megatron-DeepSpeed's pretrain_gpt.py
 * (EX_DEEPSPEED_VERSION). The JSON is built with cJSON and printed formatted;
 * it uses only keys in tests/export/deepspeed_keys.txt (checked against
 * DeepSpeed's config models). JSON has no comments, so what DeepSpeed cannot
 * express goes to stderr only. The launch (where tensor and pipeline degrees,
 * the model and the precision are given) is a sh script written with
 * --launch FILE, else printed on stderr as a "launch:" note: the deepspeed
 * launcher over a hostfile it writes from $HOSTS on several nodes, then
 * pretrain_gpt.py with the model's full description, the layout, the batch,
 * --bf16/--fp16 matching the JSON, --deepspeed-activation-checkpointing for
 * full recompute (without it the JSON block has no effect) and
 * --no-pipeline-parallel when pp = 1 (DeepSpeed's pipeline engine refuses
 * ZeRO-2/3). Mapping: micro-batch, gradient accumulation = micro-batches per
 * step, train batch = micro * accumulation * dp, ZeRO stage (with pp > 1 the
 * pipeline engine takes ZeRO 0/1 only, so 2/3 is written as 1), bf16 or
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

static cJSON *checkpointing(const sbpc_plan *p) {
  cJSON *a = cJSON_CreateObject();
  cJSON_AddBoolToObject(a, "partition_activations", p->tp > 1);
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
  if (!strcmp(p->recompute, "full")) cJSON_AddItemToObject(j, "activation_checkpointing", checkpointing(p));
  cJSON_AddBoolToObject(j, "wall_clock_breakdown", 0);
  return j;
}

/* model_args: the model as Megatron-DeepSpeed's flags. */
static void model_args(const sbpc_plan *p, FILE *f) {
  fprintf(f, " --num-layers %d", p->layers);
  if (p->hidden) fprintf(f, " --hidden-size %d", p->hidden);
  if (p->ffn) fprintf(f, " --ffn-hidden-size %d", p->ffn);
  if (p->heads) fprintf(f, " --num-attention-heads %d", p->heads);
  if (p->kv_heads && p->kv_heads != p->heads) fprintf(f, " --num-key-value-heads %d", p->kv_heads);
  if (p->seq) fprintf(f, " --seq-length %d --max-position-embeddings %d", p->seq, p->positions > p->seq ? p->positions : p->seq);
  if (p->norm && !strcmp(p->norm, "rms_norm")) fprintf(f, " --normalization rmsnorm");
  if (p->norm_eps > 0) fprintf(f, " --layernorm-epsilon %g", p->norm_eps);
  if (p->activation && !strcmp(p->activation, "swiglu")) fprintf(f, " --swiglu");
  if (p->activation && !strcmp(p->activation, "gelu_tanh")) fprintf(f, " --openai-gelu");
  if (p->position && strcmp(p->position, "learned")) fprintf(f, " --no-position-embedding");
  if (p->position && !strcmp(p->position, "rotary")) fprintf(f, " --use-rotary-position-embeddings");
  if (p->position && !strcmp(p->position, "rotary") && p->rotary_theta > 0)
    fprintf(f, " --rotary-position-embeddings-theta %ld", (long)p->rotary_theta);
  if (p->tied_embeddings == 0) fprintf(f, " --untie-embeddings-and-output-weights");
  if (p->linear_bias == 0) fprintf(f, " --disable-bias-linear");
  if (p->dropout >= 0) fprintf(f, " --hidden-dropout %g --attention-dropout 0", p->dropout);
}

/* layout_args: the parallel layout, batch, precision, recompute and ZeRO. */
static void layout_args(const sbpc_plan *p, FILE *f, int stage) {
  fprintf(f, " --tensor-model-parallel-size %d --pipeline-model-parallel-size %d", p->tp, p->pp);
  if (p->pp == 1) fprintf(f, " --no-pipeline-parallel");
  if (p->sp > 1) fprintf(f, " --ds-sequence-parallel-size %d", p->sp);
  if (ex_megatron_sp(p)) fprintf(f, " --sequence-parallel");
  fprintf(f, " --micro-batch-size %d --global-batch-size %d", p->micro_batch, p->micro_batch * p->num_micro_batches * p->dp);
  if (p->precision && !strcmp(p->precision, "bf16")) fprintf(f, " --bf16");
  if (p->precision && !strcmp(p->precision, "fp16")) fprintf(f, " --fp16");
  if (!strcmp(p->recompute, "full"))
    fprintf(f, " --recompute-granularity full --recompute-method uniform --checkpoint-activations "
               "--deepspeed-activation-checkpointing%s", p->tp > 1 ? " --partition-activations" : "");
  if (!strcmp(p->recompute, "selective")) fprintf(f, " --recompute-granularity selective");
  fprintf(f, " --zero-stage %d", stage);
}

/* zero_stage: the stage the JSON carries (see zero_section). */
static int zero_stage(const sbpc_plan *p) { return p->pp > 1 && p->zero >= 2 ? 1 : p->zero; }

/* hostfile: the sh lines that write DeepSpeed's hostfile ("HOST slots=N")
 * from $HOSTS, checking it names one host per node. */
static void hostfile(FILE *f, int nodes, int per) {
  fprintf(f, ": \"${HOSTS:?set HOSTS to the %d node host names, node 0 first}\"\n"
             "HOSTFILE=${HOSTFILE:-hostfile}\n: >\"$HOSTFILE\"\nn=0\n"
             "for h in $HOSTS; do echo \"$h slots=%d\" >>\"$HOSTFILE\"; n=$((n + 1)); done\n"
             "[ \"$n\" -eq %d ] || { echo \"HOSTS names $n hosts; the plan runs on %d nodes\" >&2; exit 1; }\n",
          nodes, per, nodes, nodes);
}

/* launch_script: the sh script run on node 0 (the launcher reaches the
 * others over ssh through the hostfile). */
static void launch_script(const sbpc_plan *p, ex_ctx *c, FILE *f, int nodes, int per) {
  char m[128], pf[256], cfg[256];
  fprintf(f, "#!/bin/sh\n# DeepSpeed launch for plan '%s' (%s), written by sbpc export deepspeed --launch.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, pf, sizeof pf));
  fprintf(f, "# target: %s\n# Run on node 0; append data, tokenizer and optimizer arguments: sh THIS.sh --data-path ...\n"
             "set -eu\n", EX_DEEPSPEED_VERSION);
  if (ex_cpu_devices(p)) fputs("export DS_ACCELERATOR=cpu\n", f);
  if (nodes > 1) hostfile(f, nodes, per);
  fputs("deepspeed", f);
  if (nodes > 1) fprintf(f, " --hostfile \"$HOSTFILE\" --num_nodes %d", nodes);
  if (per) fprintf(f, " --num_gpus %d", per);
  fputs(" --master_port \"${MASTER_PORT:-29500}\" pretrain_gpt.py", f);
  model_args(p, f);
  layout_args(p, f, zero_stage(p));
  fprintf(f, " --deepspeed --deepspeed_config \"%s\" \"$@\"\n",
          c->out_name ? ex_clean(c->out_name, cfg, sizeof cfg) : "ds_config.json");
}

/* launch: the script into --launch FILE, else its command as a note. */
static int launch(const sbpc_plan *p, ex_ctx *c) {
  int per, nodes = ex_nodes(p, c, &per);
  char *text = NULL;
  size_t n = 0;
  FILE *m = open_memstream(&text, &n);
  if (!m) return ex_refuse(c, "out of memory");
  launch_script(p, c, m, nodes, per);
  fclose(m);
  int rc = 0;
  if (c->launch) {
    FILE *f = fopen(c->launch, "w");
    if (!f || fputs(text, f) < 0) rc = ex_refuse(c, "cannot write the launch script '%s'", c->launch);
    if (f && fclose(f)) rc = ex_refuse(c, "cannot write the launch script '%s'", c->launch);
  } else if (c->err) {
    char pf[256];
    const char *cmd = strstr(text, "\ndeepspeed ");
    fprintf(c->err, "%s: note: launch (write it with --launch FILE%s): %s", ex_clean(c->plan, pf, sizeof pf),
            nodes > 1 ? ", which also writes the hostfile" : "", cmd ? cmd + 1 : text);
  }
  free(text);
  return rc;
}

int ex_deepspeed(const sbpc_plan *p, ex_ctx *c) {
  c->comment = NULL;
  if (ex_check_heads(p, c)) return 1;
  ex_common_warnings(p, c);
  if (ex_cpu_devices(p))
    ex_warn(c, "the plan runs on CPU devices: DeepSpeed runs there only through its CPU accelerator "
               "(DS_ACCELERATOR=cpu, oneCCL, set in the launch script)");
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
  return launch(p, c);
}
