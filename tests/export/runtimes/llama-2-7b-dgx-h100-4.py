# DTensor plan for 'llama' (tests/export/runtimes/llama-2-7b-dgx-h100-4.json), written by sbpc export dtensor.
# target: PyTorch >= 2.6 (torch.distributed.tensor, fully_shard) with Hugging Face transformers.
# layout: dp=16 tp=2 pp=1 sp=1 micro_batch=1 recompute=none zero=2
# Use: mesh = world_mesh(); parallelize(model, mesh); then train with
#      with loss_context(): loss = model(input_ids=ids, labels=labels).loss; loss.backward()
# WARNING: the plan's 'tp' axis keeps the weights whole and splits the sequence (attention by heads, Ulysses-style); written as tensor parallelism of degree 2 (same degree, weights sharded)
# WARNING: DTensor has no style for the plan's use of the tp axis (whole weights, split sequence); written as Megatron-style tensor parallelism by module role
import contextlib

import torch
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Partial, Replicate, Shard
from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, PrepareModuleOutput,
                                               RowwiseParallel, SequenceParallel, loss_parallel,
                                               parallelize_module)

# The whole world mesh (every rank), outermost dim first, as the plan numbers ranks.
MESH_DIM_NAMES = ("pp", "cp", "dp_replicate", "dp_shard", "tp", )
MESH_SHAPE = (1, 1, 1, 16, 2, )
# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)
# for torch.distributed.pipelining: stage s runs on world_mesh["pp"] index s.
STAGES = [(0, 31)]
# Each op's SBP on the "tp" mesh dim as DTensor placements: inputs, outputs
# (sbpc's logical dims: for [in, out] weights Shard(1) is Shard(0) of nn.Linear.weight).
TP_PLACEMENTS = {
    "model.embed_tokens": ((Replicate(), Shard(1)), (Shard(2),)),
    "model.layers.0.input_layernorm": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.self_attn.q_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.self_attn.rotary": ((Shard(2),), (Shard(2),)),
    "model.layers.0.self_attn.k_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.self_attn.rotary.rotary": ((Shard(2),), (Shard(2),)),
    "model.layers.0.self_attn.v_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.self_attn.attention": ((Shard(2), Shard(2), Shard(2)), (Shard(2),)),
    "model.layers.0.self_attn.o_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.self_attn.add": ((Shard(1), Shard(1)), (Shard(1),)),
    "model.layers.0.post_attention_layernorm": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.mlp.gate_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.mlp.up_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.mlp.swiglu": ((Shard(1), Shard(1)), (Shard(1),)),
    "model.layers.0.mlp.down_proj": ((Shard(1), Replicate()), (Shard(1),)),
    "model.layers.0.mlp.add": ((Shard(1), Shard(1)), (Shard(1),)),
    "model.norm": ((Shard(1), Replicate()), (Shard(1),)),
    "lm_head": ((Replicate(), Shard(0)), (Shard(2),)),
    "cross_entropy": ((Shard(2), Replicate()), (Partial(),)),
}


# Per layer of each repeated block: module path inside the layer -> ParallelStyle.
LAYER_PLANS = {
    "model.layers": {
        "self_attn.q_proj": ColwiseParallel(),
        "self_attn.k_proj": ColwiseParallel(),
        "self_attn.v_proj": ColwiseParallel(),
        "self_attn.o_proj": RowwiseParallel(),
        "mlp.gate_proj": ColwiseParallel(),
        "mlp.up_proj": ColwiseParallel(),
        "mlp.down_proj": RowwiseParallel(),
    },
}

# The modules outside the repeated blocks, by path from the model's root.
MODEL_PLAN = {
    "model.embed_tokens": RowwiseParallel(input_layouts=Replicate()),
    "lm_head": ColwiseParallel(output_layouts=Shard(-1), use_local_output=False),
}
TIED = None
MODEL_CLASS = "LlamaForCausalLM"
ZERO = 2
RESHARD = False  # reshard_after_forward: ZeRO-3 only
LOSS_PARALLEL = True


def prepare(model, tp):
    """LLaMA: local head counts on the attention modules (recent transformers infer them)."""
    for layers in LAYER_PLANS:
        for block in model.get_submodule(layers):
            for k in ("num_heads", "num_key_value_heads", "hidden_size"):
                if hasattr(block.self_attn, k):
                    setattr(block.self_attn, k, getattr(block.self_attn, k) // tp)


def world_mesh(device_type="cuda"):
    """The plan's whole device mesh over every rank."""
    return init_device_mesh(device_type, MESH_SHAPE, mesh_dim_names=MESH_DIM_NAMES)


def parallelize(model, world_mesh):
    """Tensor parallelism on world_mesh["tp"] (per layer, then the rest), then FSDP2 over
    dp_replicate x dp_shard; returns the model. Pipeline stages are not split here (STAGES)."""
    tp_mesh = world_mesh["tp"]
    if tp_mesh.size() > 1:
        prepare(model, tp_mesh.size())
        for layers, plan in LAYER_PLANS.items():
            for block in model.get_submodule(layers):
                parallelize_module(block, tp_mesh, plan)
        parallelize_module(model, tp_mesh, MODEL_PLAN)
        if TIED:
            head, table = (model.get_submodule(p) for p in TIED)
            head.weight = table.weight
    dp_mesh = world_mesh["dp_replicate", "dp_shard"]
    if dp_mesh.size() > 1:
        for layers in LAYER_PLANS:
            for block in model.get_submodule(layers):
                fully_shard(block, mesh=dp_mesh, reshard_after_forward=RESHARD)
        fully_shard(model, mesh=dp_mesh, reshard_after_forward=RESHARD)
    return model


def loss_context():
    """Wrap forward and backward: the loss over vocabulary-sharded logits (loss_parallel)."""
    return loss_parallel() if LOSS_PARALLEL else contextlib.nullcontext()
