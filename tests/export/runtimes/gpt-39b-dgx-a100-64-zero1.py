# DTensor plan for 'gpt_39b' (tests/export/runtimes/gpt-39b-dgx-a100-64-zero1.json), written by sbpc export dtensor.
# target: PyTorch >= 2.6 (torch.distributed.tensor, fully_shard) with Hugging Face transformers.
# layout: dp=128 tp=2 pp=2 sp=1 micro_batch=2 recompute=selective zero=1
# Use: mesh = world_mesh(); parallelize(model, mesh); then train with
#      with loss_context(): loss = model(input_ids=ids, labels=labels).loss; loss.backward()
# WARNING: DTensor has no style for the plan's use of the tp axis (some layer weights whole, activations split between them); written as Megatron-style tensor parallelism by module role
# WARNING: parallelize() does not split pipeline stages; the 2 stages are listed in STAGES for torch.distributed.pipelining
# WARNING: FSDP2 has no optimizer-only sharding (ZeRO-1); written as fully_shard with reshard_after_forward=False (ZeRO-2 memory)
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
MESH_SHAPE = (2, 1, 1, 128, 2, )
# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)
# for torch.distributed.pipelining: stage s runs on world_mesh["pp"] index s.
STAGES = [[(0, 2), (6, 8), (12, 14), (18, 20), (24, 26), (30, 32), (36, 38), (42, 44)], [(3, 5), (9, 11), (15, 17), (21, 23), (27, 29), (33, 35), (39, 41), (45, 47)]]
# Each op's SBP on the "tp" mesh dim as DTensor placements: inputs, outputs
# (sbpc's logical dims: for [in, out] weights Shard(1) is Shard(0) of nn.Linear.weight).
TP_PLACEMENTS = {
    "wte": ((Replicate(), Shard(0)), (Partial(),)),
    "positions": ((), (Shard(0),)),
    "wpe": ((Replicate(), Shard(1)), (Shard(1),)),
    "add": ((Shard(2), Shard(1)), (Shard(2),)),
    "h.0.ln_1": ((Shard(0), Replicate(), Replicate()), (Shard(0),)),
    "h.0.attn.c_attn": ((Replicate(), Shard(1)), (Shard(2),)),
    "h.0.attn.c_attn.bias_add": ((Shard(2), Shard(0)), (Shard(2),)),
    "h.0.attn.attention": ((Shard(2),), (Shard(2),)),
    "h.0.attn.c_proj": ((Shard(0), Replicate()), (Shard(0),)),
    "h.0.attn.c_proj.bias_add": ((Shard(0), Replicate()), (Shard(0),)),
    "h.0.attn.dropout": ((Shard(0),), (Shard(0),)),
    "h.0.attn.add": ((Shard(0), Shard(0)), (Shard(0),)),
    "h.0.ln_2": ((Shard(0), Replicate(), Replicate()), (Shard(0),)),
    "h.0.mlp.c_fc": ((Replicate(), Shard(1)), (Shard(2),)),
    "h.0.mlp.c_fc.bias_add": ((Shard(2), Shard(0)), (Shard(2),)),
    "h.0.mlp.gelu": ((Shard(2),), (Shard(2),)),
    "h.0.mlp.c_proj": ((Shard(2), Shard(0)), (Partial(),)),
    "h.0.mlp.c_proj.bias_add": ((Shard(0), Replicate()), (Shard(0),)),
    "h.0.mlp.dropout": ((Shard(0),), (Shard(0),)),
    "h.0.mlp.add": ((Shard(0), Shard(0)), (Shard(0),)),
    "ln_f": ((Shard(0), Replicate(), Replicate()), (Shard(0),)),
    "wte.matmul": ((Replicate(), Shard(0)), (Shard(2),)),
    "cross_entropy": ((Shard(2), Replicate()), (Partial(),)),
}


# Per layer of each repeated block: module path inside the layer -> ParallelStyle.
LAYER_PLANS = {
    "transformer.h": {
        "attn.c_attn": ColwiseParallel(),
        "attn.c_proj": RowwiseParallel(),
        "mlp.c_fc": ColwiseParallel(),
        "mlp.c_proj": RowwiseParallel(),
    },
}

# The modules outside the repeated blocks, by path from the model's root.
MODEL_PLAN = {
    "transformer.wte": RowwiseParallel(input_layouts=Replicate()),
    "lm_head": ColwiseParallel(output_layouts=Shard(-1), use_local_output=False),
}
TIED = ("lm_head", "transformer.wte")
MODEL_CLASS = "GPT2LMHeadModel"
ZERO = 1
RESHARD = False  # reshard_after_forward: ZeRO-3 only
LOSS_PARALLEL = True


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
