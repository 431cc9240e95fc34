# torchtitan config for plan 'gpt_39b' (tests/export/runtimes/gpt-39b-dgx-a100-64-zero1.json), written by sbpc export torchtitan --target main.
# target: torchtitan main (Python config functions; checked at commit b5bcd76c, 2026-08-21).
# Run from a torchtitan checkout, this file importable as MODULE (its name without .py):
#   torchrun --nnodes 64 --nproc-per-node 8 --node-rank $NODE_RANK --master-addr $MASTER_ADDR --master-port 29500 -m torchtitan.train --module MODULE --config sbpc_config
# Data, tokenizer and optimizer are those of torchtitan's LLaMA recipes (c4, the Hugging Face
# tokenizer in hf_assets_path, AdamW): set yours in sbpc_config().
# WARNING: torchtitan ships no model of this architecture (norm layer_norm, activation gelu_tanh, positions learned, biases yes): model_spec() builds torchtitan's llama3 decoder with the plan's sizes (RMSNorm, SwiGLU of width 21760 for the plan's FFN of 32768, rotary, no biases); to train 'gpt_39b' itself, return a ModelSpec of your own Decoder from model_spec(), with torchtitan's module names (tok_embeddings, layers.N, norm, lm_head)
# WARNING: torchtitan cannot tie the embedding and the output projection under pipeline parallelism; written untied (one more 51200 x 8192 matrix)
# WARNING: torchtitan's decoder has no dropout; the plan's dropout 0.1 is dropped
# WARNING: torchtitan has no optimizer-only sharding (ZeRO-1); written as FSDP2 with reshard_after_forward=never (ZeRO-2 memory, no extra communication)

from functools import partial

import torch.nn as nn

from torchtitan.components.data import ConcatThenSplitPackingConfig, GrainDataLoader
from torchtitan.components.loss import ChunkedLossWrapper, CrossEntropyLoss
from torchtitan.components.optimizer import default_adamw
from torchtitan.config import ParallelismConfig, TrainingConfig
from torchtitan.distributed.activation_checkpoint import FullAC, SelectiveAC
from torchtitan.distributed.pipeline_parallel import pipeline_llm
from torchtitan.hf_datasets.text_datasets import DATASETS
from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm
from torchtitan.models.common.config_utils import get_attention_config, make_ffn_config, make_gqa_config
from torchtitan.models.common.param_init import depth_scaled_std, skip_param_init
from torchtitan.models.llama3 import Llama3Model, parallelize_llama
from torchtitan.models.llama3.model import Llama3TransformerBlock
from torchtitan.models.llama3.state_dict_adapter import Llama3StateDictAdapter
from torchtitan.protocols.model_spec import ModelSpec
from torchtitan.trainer import Trainer

# The plan's model.
FLAVOR = "gpt_39b"
DIM = 8192
N_LAYERS = 48
N_HEADS = 64
N_KV_HEADS = 64
FFN_HIDDEN = 21760
VOCAB_SIZE = 51200
NORM_EPS = 1e-05
ROPE_THETA = 10000
MAX_CONTEXT = 2048
TIE_EMBEDDINGS = False


def _init(std):
    return {"weight": partial(nn.init.trunc_normal_, std=std), "bias": nn.init.zeros_}


def _layer(layer_id):
    deep = _init(depth_scaled_std(0.02, layer_id))
    return Llama3TransformerBlock.Config(
        attention_norm=RMSNorm.Config(normalized_shape=DIM, eps=NORM_EPS, param_init={"weight": nn.init.ones_}),
        ffn_norm=RMSNorm.Config(normalized_shape=DIM, eps=NORM_EPS, param_init={"weight": nn.init.ones_}),
        attention=make_gqa_config(
            dim=DIM, n_heads=N_HEADS, n_kv_heads=N_KV_HEADS, fuse_qkv=True,
            wqkv_param_init=_init(0.02), wo_param_init=deep,
            inner_attention=get_attention_config("flex"),
            rope=ComplexRoPE.Config(dim=DIM // N_HEADS, max_context_length=MAX_CONTEXT, theta=ROPE_THETA),
        ),
        feed_forward=make_ffn_config(dim=DIM, hidden_dim=FFN_HIDDEN, w1_param_init=_init(0.02), w2w3_param_init=deep),
    )


def model_spec() -> ModelSpec:
    s = DIM**-0.5
    model = Llama3Model.Config(
        dim=DIM,
        vocab_size=VOCAB_SIZE,
        enable_weight_tying=TIE_EMBEDDINGS,
        tok_embeddings=Embedding.Config(
            num_embeddings=VOCAB_SIZE, embedding_dim=DIM,
            param_init={"weight": skip_param_init if TIE_EMBEDDINGS else partial(nn.init.normal_, std=1.0)},
        ),
        norm=RMSNorm.Config(normalized_shape=DIM, eps=NORM_EPS, param_init={"weight": nn.init.ones_}),
        lm_head=Linear.Config(
            in_features=DIM, out_features=VOCAB_SIZE,
            param_init={"weight": partial(nn.init.trunc_normal_, std=s, a=-3 * s, b=3 * s), "bias": nn.init.zeros_},
        ),
        layers=[_layer(i) for i in range(N_LAYERS)],
    )
    return ModelSpec(
        name="llama3", flavor=FLAVOR, model=model, parallelize_fn=parallelize_llama, pipelining_fn=pipeline_llm,
        post_optimizer_build_fn=None, state_dict_adapter=Llama3StateDictAdapter,
    )


def sbpc_config() -> Trainer.Config:
    return Trainer.Config(
        model_spec=model_spec(),
        hf_assets_path="./assets/hf/tokenizer",
        loss=ChunkedLossWrapper.Config(loss_fn=CrossEntropyLoss.Config(global_vocab_size=VOCAB_SIZE)),
        optimizer=default_adamw(lr=3e-4),
        dataloader=GrainDataLoader.Config(dataset=ConcatThenSplitPackingConfig(dataset=DATASETS["c4"])),
        training=TrainingConfig(
            num_tokens_per_microbatch_per_dp_rank=4096,
            num_tokens_per_train_step=3145728,
            max_context_length=MAX_CONTEXT,
            mixed_precision_param="bfloat16",
            disable_cuda_graphs=True,
        ),
        parallelism=ParallelismConfig(
            data_parallel_replicate_degree=1,
            data_parallel_shard_degree=128,
            fsdp_reshard_after_forward="never",
            tensor_parallel_degree=2,
            enable_sequence_parallel=False,
            pipeline_parallel_degree=2,
            pipeline_parallel_schedule="Interleaved1F1B",
            num_pp_microbatches=6,
            module_fqns_per_model_part=[["tok_embeddings", "layers.0", "layers.1", "layers.2"], ["layers.3", "layers.4", "layers.5"], ["layers.6", "layers.7", "layers.8"], ["layers.9", "layers.10", "layers.11"], ["layers.12", "layers.13", "layers.14"], ["layers.15", "layers.16", "layers.17"], ["layers.18", "layers.19", "layers.20"], ["layers.21", "layers.22", "layers.23"], ["layers.24", "layers.25", "layers.26"], ["layers.27", "layers.28", "layers.29"], ["layers.30", "layers.31", "layers.32"], ["layers.33", "layers.34", "layers.35"], ["layers.36", "layers.37", "layers.38"], ["layers.39", "layers.40", "layers.41"], ["layers.42", "layers.43", "layers.44"], ["layers.45", "layers.46", "layers.47", "norm", "lm_head"]],
            context_parallel_degree=1,
        ),
        activation_checkpoint=SelectiveAC.Config(),
    )
