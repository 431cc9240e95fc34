# torchtitan config for plan 'llama' (tests/export/runtimes/llama-2-7b-dgx-h100-4.json), written by sbpc export torchtitan --target main.
# target: torchtitan main (Python config functions; checked at commit b5bcd76c, 2026-08-21).
# Run from a torchtitan checkout, this file importable as MODULE (its name without .py):
#   torchrun --nnodes 4 --nproc-per-node 8 --node-rank $NODE_RANK --master-addr $MASTER_ADDR --master-port 29500 -m torchtitan.train --module MODULE --config sbpc_config
# Data, tokenizer and optimizer are those of torchtitan's LLaMA recipes (c4, the Hugging Face
# tokenizer in hf_assets_path, AdamW): set yours in sbpc_config().
# WARNING: the plan's 'tp' axis keeps the weights whole and splits the sequence (attention by heads, Ulysses-style); written as tensor parallelism of degree 2 (same degree, weights sharded)

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
FLAVOR = "llama"
DIM = 4096
N_LAYERS = 32
N_HEADS = 32
N_KV_HEADS = 32
FFN_HIDDEN = 11008
VOCAB_SIZE = 32000
NORM_EPS = 1e-05
ROPE_THETA = 10000
MAX_CONTEXT = 4096
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
            num_tokens_per_train_step=1048576,
            max_context_length=MAX_CONTEXT,
            mixed_precision_param="bfloat16",
        ),
        parallelism=ParallelismConfig(
            data_parallel_replicate_degree=1,
            data_parallel_shard_degree=16,
            fsdp_reshard_after_forward="never",
            tensor_parallel_degree=2,
            enable_sequence_parallel=False,
            pipeline_parallel_degree=1,
            context_parallel_degree=1,
        ),
        activation_checkpoint=None,
    )
