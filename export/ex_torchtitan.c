/* ex_torchtitan.c — a plan as torchtitan TOML ([training], [parallelism],
 * [activation_checkpoint]).
 *
 * Keys are torchtitan's JobConfig fields (torchtitan/config/job_config.py):
 * data_parallel_replicate_degree / data_parallel_shard_degree (ZeRO-0 is
 * replication, ZeRO-3 full sharding, ZeRO-1/2 the nearest FSDP2 setting:
 * sharded with fsdp_reshard_after_forward = "never"), tensor, pipeline and
 * context parallel degrees, the schedule (1F1B or Interleaved1F1B), the
 * pipeline micro-batch size and, when stages are uneven or interleaved, the
 * split points ("layers.N" starts a stage). Recompute maps to the activation
 * checkpoint mode. The caller writes the file; warnings are TOML comments. */
#include "export/export.h"
#include <string.h>

static void dp_degrees(const sbpc_plan *p, ex_ctx *c) {
  int rep = p->dp, shard = 1;
  const char *reshard = NULL;
  if (p->zero == 3) rep = 1, shard = p->dp;
  if (p->zero == 1 || p->zero == 2) {
    rep = 1, shard = p->dp, reshard = "never";
    if (p->zero == 1)
      ex_warn(c, "torchtitan has no optimizer-only sharding (ZeRO-1); written as FSDP2 with "
                 "reshard_after_forward=never (ZeRO-2 memory, no extra communication)");
  }
  if (p->dp == 1) rep = 1, shard = 1, reshard = NULL;
  fprintf(c->out, "data_parallel_replicate_degree = %d\ndata_parallel_shard_degree = %d\n", rep, shard);
  if (reshard) fprintf(c->out, "fsdp_reshard_after_forward = \"%s\"\n", reshard);
}

/* split_points: the first layer of every (virtual) stage but the first. */
static void split_points(const sbpc_plan *p, ex_ctx *c) {
  int uneven = ex_uneven_stages(p);
  if (p->pp == 1 || (!uneven && p->vpp == 1)) return;
  fputs("pipeline_parallel_split_points = [", c->out);
  int first = 1;
  if (uneven || p->vpp == 1) {
    for (int s = 1; s < p->nstages; s++, first = 0)
      fprintf(c->out, "%s\"layers.%d\"", first ? "" : ", ", p->stages[s].first_layer);
  } else {
    for (int v = 1; v < p->pp * p->vpp; v++, first = 0)
      fprintf(c->out, "%s\"layers.%d\"", first ? "" : ", ", p->stages[v % p->pp].chunks[v / p->pp][0]);
  }
  fputs("]\n", c->out);
}

static void pipeline(const sbpc_plan *p, ex_ctx *c) {
  fprintf(c->out, "pipeline_parallel_degree = %d\n", p->pp);
  if (p->pp == 1) return;
  int vpp = p->vpp;
  if (vpp > 1 && ex_uneven_stages(p)) {
    ex_warn(c, "uneven stages with interleaving: torchtitan needs one split per virtual stage; writing 1F1B "
               "over the plan's %d stages", p->pp);
    vpp = 1;
  }
  fprintf(c->out, "pipeline_parallel_schedule = \"%s\"\n", vpp > 1 ? "Interleaved1F1B" : "1F1B");
  fprintf(c->out, "pipeline_parallel_microbatch_size = %d\n", p->micro_batch);
  sbpc_plan q = *p;
  q.vpp = vpp;
  split_points(&q, c);
}

static void training(const sbpc_plan *p, ex_ctx *c) {
  fputs("[training]\n", c->out);
  fprintf(c->out, "local_batch_size = %d\n", p->micro_batch * p->num_micro_batches);
  fprintf(c->out, "global_batch_size = %d\n", p->micro_batch * p->num_micro_batches * p->dp);
  if (p->seq) fprintf(c->out, "seq_len = %d\n", p->seq);
  const char *prec = p->precision ? p->precision : "bf16";
  fprintf(c->out, "mixed_precision_param = \"%s\"\n",
          !strcmp(prec, "fp32") ? "float32" : !strcmp(prec, "fp16") ? "float16" : "bfloat16");
}

int ex_torchtitan(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  char m[128], f[256];
  fprintf(c->out, "# torchtitan config for plan '%s' (%s), written by sbpc export torchtitan.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, f, sizeof f));
  fprintf(c->out, "# Merge these sections into your model's train config.\n");
  ex_common_warnings(p, c);
  if (p->sp > 1) ex_warn(c, "sequence-parallel degree %d written as context parallelism", p->sp);
  if (p->tp > 1 && !ex_megatron_sp(p))
    ex_warn(c, "torchtitan's tensor parallelism always shards norms along the sequence (sequence parallel); "
               "the plan keeps them replicated");
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
