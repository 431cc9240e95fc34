/* ex_titan_main.c — a plan as a torchtitan config function (Python) for
 * torchtitan main after v0.2.2 (`sbpc export torchtitan --target main`).
 *
 * Since v0.2.2 torchtitan reads no TOML: a job is a Python function returning
 * a Trainer.Config, run as `-m torchtitan.train --module MODULE --config
 * sbpc_config`. The names written (Trainer.Config, TrainingConfig,
 * ParallelismConfig, the llama3 model configs and the torchtitan.models.common
 * builders) are those of EX_TORCHTITAN_MAIN_VERSION; the list
 * tests/export/check_export.py holds each call and keyword to, with types, is
 * tests/export/torchtitan_main_keys.txt. The file defines model_spec(): the
 * plan's architecture as torchtitan's llama3 decoder built from its own
 * config builders (sizes, GQA groups, vocabulary, norm epsilon, rotary base,
 * SwiGLU width, tied embeddings); a plan that is not LLaMA-shaped gets the
 * same decoder with the plan's sizes and a warning saying what differs
 * (torchtitan ships no GPT-style decoder). sbpc_config() carries the layout:
 * dp_replicate/dp_shard and the FSDP reshard policy from dp and ZeRO (shared
 * with the TOML format, ex_torchtitan.c), tp with or without sequence
 * parallelism, pp with its schedule, micro-batches and stage modules, cp, the
 * batch in tokens (micro-batch * seq per forward, global batch * seq per step),
 * mixed precision and activation checkpointing. Data, tokenizer and optimizer
 * are those of torchtitan's own LLaMA recipes, for the user to replace.
 * Every plan string reaches the file through ex_clean (inside a string or a
 * comment); numbers are written by the exporter. Warnings are comments at the
 * top of the file. */
#include "export/export.h"
#include <string.h>

/* What the file says about the model, decided before anything is written. */
typedef struct {
  int dim, layers, heads, kv_heads, ffn, vocab, seq, tie;
  double eps, theta;
} titan_model;

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* swiglu_width: the gated FFN width with the parameters of an ungated one of
 * width ffn (2/3 of it), rounded to a multiple of 256 that tp divides. */
static int swiglu_width(int ffn, int tp) {
  int m = 256 / gcd(256, tp) * tp, w = (int)((2.0 * ffn / 3.0) / m + 0.5) * m;
  return w > 0 ? w : m;
}

/* arch: say where torchtitan's llama3 decoder differs from the plan's
 * model; fill m. */
static void arch(const sbpc_plan *p, ex_ctx *c, titan_model *m) {
  char id[128];
  *m = (titan_model){p->hidden, p->layers, p->heads, p->kv_heads ? p->kv_heads : p->heads,
                     p->ffn ? p->ffn : 4 * p->hidden, p->vocab, p->seq, p->tied_embeddings == 1,
                     p->norm_eps > 0 ? p->norm_eps : 1e-5, p->rotary_theta > 0 ? p->rotary_theta : 10000.0};
  if (!ex_titan_llama_like(p)) {
    int w = p->activation && (!strcmp(p->activation, "swiglu")) ? m->ffn : swiglu_width(m->ffn, p->tp);
    ex_warn(c, "torchtitan ships no model of this architecture (norm %s, activation %s, positions %s, biases %s): "
               "model_spec() builds torchtitan's llama3 decoder with the plan's sizes (RMSNorm, SwiGLU of width %d "
               "for the plan's FFN of %d, rotary, no biases); to train '%s' itself, return a ModelSpec of your own "
               "Decoder from model_spec(), with torchtitan's module names (tok_embeddings, layers.N, norm, lm_head)",
            p->norm ? p->norm : "?", p->activation ? p->activation : "?", p->position ? p->position : "?",
            p->linear_bias == 1 ? "yes" : p->linear_bias == 0 ? "no" : "?", w, m->ffn,
            ex_clean(p->model_name, id, sizeof id));
    m->ffn = w;
  }
  if (m->tie && p->pp > 1) {
    ex_warn(c, "torchtitan cannot tie the embedding and the output projection under pipeline parallelism; "
               "written untied (one more %d x %d matrix)", m->vocab, m->dim);
    m->tie = 0;
  }
  if (p->dropout > 0)
    ex_warn(c, "torchtitan's decoder has no dropout; the plan's dropout %g is dropped", p->dropout);
}

/* check: refuse what torchtitan main would reject at start-up. */
static int check(const sbpc_plan *p, ex_ctx *c, int sp_on) {
  if (ex_titan_refuse(p, c)) return 1;
  if (!p->hidden || !p->heads || !p->vocab || !p->seq)
    return ex_refuse(c, "the plan does not give the model's hidden size, heads, vocabulary and sequence length; "
                        "torchtitan's model config and token-counted batch need them");
  if ((double)p->micro_batch * p->num_micro_batches * p->dp * p->seq > 9e18)
    return ex_refuse(c, "the step's %g tokens do not fit torchtitan's token counts",
                     (double)p->micro_batch * p->num_micro_batches * p->dp * p->seq);
  long long div = (sp_on ? p->tp : 1) * (p->sp > 1 ? 2LL * p->sp : 1), tokens = (long long)p->micro_batch * p->seq;
  if (tokens % div)
    return ex_refuse(c, "torchtitan needs the %lld tokens of a micro-batch divisible by %lld (tp with sequence "
                        "parallelism times 2*cp)", tokens, div);
  return 0;
}

static void header(const sbpc_plan *p, ex_ctx *c) {
  char m[128], f[256], per_s[16] = "G";
  fprintf(c->out, "# torchtitan config for plan '%s' (%s), written by sbpc export torchtitan --target main.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, f, sizeof f));
  fprintf(c->out, "# target: %s.\n", EX_TORCHTITAN_MAIN_VERSION);
  int per, nodes = ex_nodes(p, c, &per);
  if (per) snprintf(per_s, sizeof per_s, "%d", per);
  fputs("# Run from a torchtitan checkout, this file importable as MODULE (its name without .py):\n", c->out);
  fprintf(c->out, "#   torchrun --nnodes %d --nproc-per-node %s%s -m torchtitan.train --module MODULE --config sbpc_config\n",
          nodes, per_s, nodes > 1 ? " --node-rank $NODE_RANK --master-addr $MASTER_ADDR --master-port 29500" : "");
  fputs("# Data, tokenizer and optimizer are those of torchtitan's LLaMA recipes (c4, the Hugging Face\n"
        "# tokenizer in hf_assets_path, AdamW): set yours in sbpc_config().\n", c->out);
}

static const char *const imports =
    "from functools import partial\n\n"
    "import torch.nn as nn\n\n"
    "from torchtitan.components.data import ConcatThenSplitPackingConfig, GrainDataLoader\n"
    "from torchtitan.components.loss import ChunkedLossWrapper, CrossEntropyLoss\n"
    "from torchtitan.components.optimizer import default_adamw\n"
    "from torchtitan.config import ParallelismConfig, TrainingConfig\n"
    "from torchtitan.distributed.activation_checkpoint import FullAC, SelectiveAC\n"
    "from torchtitan.distributed.pipeline_parallel import pipeline_llm\n"
    "from torchtitan.hf_datasets.text_datasets import DATASETS\n"
    "from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm\n"
    "from torchtitan.models.common.config_utils import get_attention_config, make_ffn_config, make_gqa_config\n"
    "from torchtitan.models.common.param_init import depth_scaled_std, skip_param_init\n"
    "from torchtitan.models.llama3 import Llama3Model, parallelize_llama\n"
    "from torchtitan.models.llama3.model import Llama3TransformerBlock\n"
    "from torchtitan.models.llama3.state_dict_adapter import Llama3StateDictAdapter\n"
    "from torchtitan.protocols.model_spec import ModelSpec\n"
    "from torchtitan.trainer import Trainer\n";

static void constants(const sbpc_plan *p, ex_ctx *c, const titan_model *m) {
  char id[128];
  fputs("\n# The plan's model.\n", c->out);
  fprintf(c->out, "FLAVOR = \"%s\"\n", ex_clean(p->model_name, id, sizeof id));
  fprintf(c->out, "DIM = %d\nN_LAYERS = %d\nN_HEADS = %d\nN_KV_HEADS = %d\nFFN_HIDDEN = %d\nVOCAB_SIZE = %d\n", m->dim,
          m->layers, m->heads, m->kv_heads, m->ffn, m->vocab);
  fprintf(c->out, "NORM_EPS = %.9g\nROPE_THETA = %.9g\nMAX_CONTEXT = %d\nTIE_EMBEDDINGS = %s\n", m->eps, m->theta,
          m->seq, m->tie ? "True" : "False");
}

/* The model, built the way torchtitan's llama3 registry builds its flavors. */
static const char *const model_code =
    "\n\ndef _init(std):\n"
    "    return {\"weight\": partial(nn.init.trunc_normal_, std=std), \"bias\": nn.init.zeros_}\n"
    "\n\ndef _layer(layer_id):\n"
    "    deep = _init(depth_scaled_std(0.02, layer_id))\n"
    "    return Llama3TransformerBlock.Config(\n"
    "        attention_norm=RMSNorm.Config(normalized_shape=DIM, eps=NORM_EPS, param_init={\"weight\": nn.init.ones_}),\n"
    "        ffn_norm=RMSNorm.Config(normalized_shape=DIM, eps=NORM_EPS, param_init={\"weight\": nn.init.ones_}),\n"
    "        attention=make_gqa_config(\n"
    "            dim=DIM, n_heads=N_HEADS, n_kv_heads=N_KV_HEADS, fuse_qkv=True,\n"
    "            wqkv_param_init=_init(0.02), wo_param_init=deep,\n"
    "            inner_attention=get_attention_config(\"flex\"),\n"
    "            rope=ComplexRoPE.Config(dim=DIM // N_HEADS, max_context_length=MAX_CONTEXT, theta=ROPE_THETA),\n"
    "        ),\n"
    "        feed_forward=make_ffn_config(dim=DIM, hidden_dim=FFN_HIDDEN, w1_param_init=_init(0.02), w2w3_param_init=deep),\n"
    "    )\n"
    "\n\ndef model_spec() -> ModelSpec:\n"
    "    s = DIM**-0.5\n"
    "    model = Llama3Model.Config(\n"
    "        dim=DIM,\n"
    "        vocab_size=VOCAB_SIZE,\n"
    "        enable_weight_tying=TIE_EMBEDDINGS,\n"
    "        tok_embeddings=Embedding.Config(\n"
    "            num_embeddings=VOCAB_SIZE, embedding_dim=DIM,\n"
    "            param_init={\"weight\": skip_param_init if TIE_EMBEDDINGS else partial(nn.init.normal_, std=1.0)},\n"
    "        ),\n"
    "        norm=RMSNorm.Config(normalized_shape=DIM, eps=NORM_EPS, param_init={\"weight\": nn.init.ones_}),\n"
    "        lm_head=Linear.Config(\n"
    "            in_features=DIM, out_features=VOCAB_SIZE,\n"
    "            param_init={\"weight\": partial(nn.init.trunc_normal_, std=s, a=-3 * s, b=3 * s), \"bias\": nn.init.zeros_},\n"
    "        ),\n"
    "        layers=[_layer(i) for i in range(N_LAYERS)],\n"
    "    )\n"
    "    return ModelSpec(\n"
    "        name=\"llama3\", flavor=FLAVOR, model=model, parallelize_fn=parallelize_llama, pipelining_fn=pipeline_llm,\n"
    "        post_optimizer_build_fn=None, state_dict_adapter=Llama3StateDictAdapter,\n"
    "    )\n";

static void training(const sbpc_plan *p, ex_ctx *c, const char *prec) {
  fputs("        training=TrainingConfig(\n", c->out);
  fprintf(c->out, "            num_tokens_per_microbatch_per_dp_rank=%lld,\n", (long long)p->micro_batch * p->seq);
  fprintf(c->out, "            num_tokens_per_train_step=%lld,\n",
          (long long)p->micro_batch * p->num_micro_batches * p->dp * p->seq);
  fprintf(c->out, "            max_context_length=MAX_CONTEXT,\n            mixed_precision_param=\"%s\",\n", prec);
  if (p->pp > 1) fputs("            disable_cuda_graphs=True,\n", c->out);
  fputs("        ),\n", c->out);
}

static void parallelism(const sbpc_plan *p, ex_ctx *c, const ex_titan_dp *d, int vpp, int sp_on) {
  fputs("        parallelism=ParallelismConfig(\n", c->out);
  fprintf(c->out, "            data_parallel_replicate_degree=%d,\n            data_parallel_shard_degree=%d,\n",
          d->replicate, d->shard);
  if (d->reshard) fprintf(c->out, "            fsdp_reshard_after_forward=\"%s\",\n", d->reshard);
  fprintf(c->out, "            tensor_parallel_degree=%d,\n", p->tp);
  if (p->tp > 1) fprintf(c->out, "            enable_sequence_parallel=%s,\n", sp_on ? "True" : "False");
  fprintf(c->out, "            pipeline_parallel_degree=%d,\n", p->pp);
  if (p->pp > 1) {
    fprintf(c->out, "            pipeline_parallel_schedule=\"%s\",\n", vpp > 1 ? "Interleaved1F1B" : "1F1B");
    fprintf(c->out, "            num_pp_microbatches=%d,\n            module_fqns_per_model_part=", p->num_micro_batches);
    ex_titan_parts(p, c, vpp, "lm_head");
    fputs(",\n", c->out);
  }
  fprintf(c->out, "            context_parallel_degree=%d,\n        ),\n", p->sp);
}

/* schedule_vpp: the virtual stages written; PyTorch's Interleaved1F1B runs
 * max(1, micro-batches / pp) rounds and needs them to divide the micro-batches
 * (torch.distributed.pipelining.schedules), else 1F1B is written. */
static int schedule_vpp(const sbpc_plan *p, ex_ctx *c) {
  int vpp = ex_titan_vpp(p, c), rounds = p->num_micro_batches / p->pp;
  if (vpp > 1 && p->num_micro_batches % (rounds > 1 ? rounds : 1)) {
    ex_warn(c, "PyTorch's Interleaved1F1B runs %d micro-batches in max(1, %d/pp) rounds, which must divide them; "
               "writing 1F1B over the plan's %d stages (vpp=%d dropped)", p->num_micro_batches,
            p->num_micro_batches, p->pp, vpp);
    return 1;
  }
  return vpp;
}

static const char *ac_config(const sbpc_plan *p) {
  if (!strcmp(p->recompute, "full")) return "FullAC.Config()";
  return !strcmp(p->recompute, "selective") ? "SelectiveAC.Config()" : "None";
}

int ex_torchtitan_main(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  int sp_on = p->tp > 1 && ex_megatron_sp(p);
  if (check(p, c, sp_on)) return 1;
  titan_model m;
  header(p, c);
  ex_common_warnings(p, c);
  if (p->sp > 1) ex_warn(c, "sequence-parallel degree %d written as context parallelism", p->sp);
  arch(p, c, &m);
  ex_titan_dp d = ex_titan_dp_degrees(p, c);
  int vpp = p->pp > 1 ? schedule_vpp(p, c) : 1;
  const char *prec = ex_titan_precision(p, c);
  fputc('\n', c->out);
  fputs(imports, c->out);
  constants(p, c, &m);
  fputs(model_code, c->out);
  fputs("\n\ndef sbpc_config() -> Trainer.Config:\n    return Trainer.Config(\n        model_spec=model_spec(),\n",
        c->out);
  fputs("        hf_assets_path=\"./assets/hf/tokenizer\",\n"
        "        loss=ChunkedLossWrapper.Config(loss_fn=CrossEntropyLoss.Config(global_vocab_size=VOCAB_SIZE)),\n"
        "        optimizer=default_adamw(lr=3e-4),\n"
        "        dataloader=GrainDataLoader.Config(dataset=ConcatThenSplitPackingConfig(dataset=DATASETS[\"c4\"])),\n",
        c->out);
  training(p, c, prec);
  parallelism(p, c, &d, vpp, sp_on);
  fprintf(c->out, "        activation_checkpoint=%s,\n    )\n", ac_config(p));
  return 0;
}
