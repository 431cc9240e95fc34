# DTensor tensor-parallel plan for 'gpt3-175b' (tests/export/gpt3-175b-dgx-a100-128.json), written by sbpc export dtensor.
# layout: dp=16 tp=8 pp=8 sp=1 micro_batch=1 recompute=selective zero=1
# WARNING: DTensor's parallelize_plan covers tensor parallelism only; the 8 pipeline stages are listed in STAGES for torch.distributed.pipelining
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Partial, Replicate, Shard
from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                               SequenceParallel, parallelize_module)

MESH_SHAPE = (16, 1, 8)
MESH_DIM_NAMES = ("dp", "sp", "tp")
# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)
# for torch.distributed.pipelining; each stage runs on its own MESH_SHAPE sub-mesh.
STAGES = [[(0, 5), (48, 53)], [(6, 11), (54, 59)], [(12, 17), (60, 65)], [(18, 23), (66, 71)], [(24, 29), (72, 77)], [(30, 35), (78, 83)], [(36, 41), (84, 89)], [(42, 47), (90, 95)]]

# Each op's SBP on the "tp" mesh dim as DTensor placements: inputs, outputs
# (sbpc's logical dims: matmul weights are [in, out], so Shard(1) of a weight
# here is Shard(0) of nn.Linear.weight).
tp_placements = {
    "h.a": ((Shard(1), Replicate(), Replicate()), (Shard(1),)),
    "h.op%3": ((Replicate(), Shard(1)), (Shard(2),)),
    "h.op%5": ((Shard(2),), (Shard(2),)),
    "h.op%6": ((Shard(2), Shard(0)), (Partial(),)),
    "h.m": ((Shard(1), Replicate(), Replicate()), (Shard(1),)),
    "h.op%10": ((Replicate(), Shard(1)), (Shard(2),)),
    "h.f": ((Shard(2),), (Shard(2),)),
    "h.op%13": ((Shard(2), Shard(0)), (Partial(),)),
    "op%0": ((Replicate(), Shard(0)), (Partial(),)),
    "op%90": ((Shard(1), Replicate(), Replicate()), (Shard(1),)),
    "logits": ((Replicate(), Shard(0)), (Shard(2),)),
}

h_plan = {
    "ln_1": SequenceParallel(),
    "attn.c_attn": ColwiseParallel(input_layouts=Shard(1)),
    "attn.c_proj": RowwiseParallel(output_layouts=Shard(1)),
    "ln_2": SequenceParallel(),
    "mlp.c_fc": ColwiseParallel(input_layouts=Shard(1)),
    "mlp.c_proj": RowwiseParallel(output_layouts=Shard(1)),
}

model_plan = {
    "wte": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1)),
    "ln_f": SequenceParallel(),
    # "logits" reuses wte's weight (tied); rename to your module
    "logits": ColwiseParallel(),
}

parallelize_plan = model_plan

def parallelize(model, device_type="cuda"):
    """Apply the plan's tensor parallelism; returns the device mesh."""
    mesh = init_device_mesh(device_type, MESH_SHAPE, mesh_dim_names=MESH_DIM_NAMES)
    tp_mesh = mesh["tp"] if "tp" in MESH_DIM_NAMES else None
    if tp_mesh is not None and tp_mesh.size() > 1:
        for layer in getattr(model, "h"):
            parallelize_module(layer, tp_mesh, h_plan)
        parallelize_module(model, tp_mesh, model_plan)
    return mesh
