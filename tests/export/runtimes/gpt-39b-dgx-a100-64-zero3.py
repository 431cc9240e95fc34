# DTensor plan for 'gpt_39b' (tests/export/runtimes/gpt-39b-dgx-a100-64-zero3.json), written by sbpc export dtensor.
# target: PyTorch >= 2.6 (torch.distributed.tensor, fully_shard) with Hugging Face transformers.
# layout: dp=512 tp=1 pp=1 sp=1 micro_batch=1 recompute=selective zero=3
# Use: mesh = world_mesh(); parallelize(model, mesh); then train with
#      with loss_context(): loss = model(input_ids=ids, labels=labels).loss; loss.backward()
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
MESH_DIM_NAMES = ("tp", "dp_replicate", "dp_shard", "cp", "pp", )
MESH_SHAPE = (1, 1, 512, 1, 1, )
# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)
# for torch.distributed.pipelining: stage s runs on world_mesh["pp"] index s.
STAGES = [(0, 47)]
# Each op's SBP on the "tp" mesh dim as DTensor placements: inputs, outputs
# (sbpc's logical dims: for [in, out] weights Shard(1) is Shard(0) of nn.Linear.weight).
TP_PLACEMENTS = {
    "wte": ((Replicate(), Replicate()), (Replicate(),)),
    "positions": ((), (Replicate(),)),
    "wpe": ((Replicate(), Replicate()), (Replicate(),)),
    "add": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.ln_1": ((Replicate(), Replicate(), Replicate()), (Replicate(),)),
    "h.0.attn.c_attn": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.attn.c_attn.bias_add": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.attn.attention": ((Replicate(),), (Replicate(),)),
    "h.0.attn.c_proj": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.attn.c_proj.bias_add": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.attn.dropout": ((Replicate(),), (Replicate(),)),
    "h.0.attn.add": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.ln_2": ((Replicate(), Replicate(), Replicate()), (Replicate(),)),
    "h.0.mlp.c_fc": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.mlp.c_fc.bias_add": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.mlp.gelu": ((Replicate(),), (Replicate(),)),
    "h.0.mlp.c_proj": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.mlp.c_proj.bias_add": ((Replicate(), Replicate()), (Replicate(),)),
    "h.0.mlp.dropout": ((Replicate(),), (Replicate(),)),
    "h.0.mlp.add": ((Replicate(), Replicate()), (Replicate(),)),
    "ln_f": ((Replicate(), Replicate(), Replicate()), (Replicate(),)),
    "wte.matmul": ((Replicate(), Replicate()), (Replicate(),)),
    "cross_entropy": ((Replicate(), Replicate()), (Replicate(),)),
}


# Per layer of each repeated block: module path inside the layer -> ParallelStyle.
LAYER_PLANS = {
    "transformer.h": {
    },
}

# The modules outside the repeated blocks, by path from the model's root.
MODEL_PLAN = {
}
TIED = None
MODEL_CLASS = "GPT2LMHeadModel"
ZERO = 3
RESHARD = True  # reshard_after_forward: ZeRO-3 only
LOSS_PARALLEL = False


def conv1d_to_linear(conv, tp=1, qkv=False):
    """A transformers Conv1D (y = x @ W + b, W [in, out]) as nn.Linear. qkv: reorder the fused
    [q; k; v] output rows so that tensor-parallel shard r holds [q_r; k_r; v_r], its own heads."""
    w, b = conv.weight.detach().t(), conv.bias.detach()
    if qkv and tp > 1:
        h = w.shape[0] // 3
        idx = torch.arange(3 * h, device=w.device).view(3, tp, h // tp).transpose(0, 1).reshape(-1)
        w, b = w[idx], b[idx]
    lin = nn.Linear(w.shape[1], w.shape[0], device=w.device, dtype=w.dtype)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return lin


def prepare(model, tp):
    """GPT-2: Conv1D -> nn.Linear (DTensor's styles take Linear), local attention sizes."""
    for layers in LAYER_PLANS:
        for block in model.get_submodule(layers):
            a, m = block.attn, block.mlp
            a.c_attn = conv1d_to_linear(a.c_attn, tp, qkv=True)
            a.c_proj = conv1d_to_linear(a.c_proj)
            m.c_fc, m.c_proj = conv1d_to_linear(m.c_fc), conv1d_to_linear(m.c_proj)
            a.split_size //= tp
            a.num_heads //= tp
            a.embed_dim //= tp


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
