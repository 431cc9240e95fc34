# DTensor tensor-parallel plan for 'gpt2-xl' (tests/export/gpt2xl-mixed-a100-v100.json), written by sbpc export dtensor.
# layout: dp=1 tp=4 pp=4 sp=2 micro_batch=2 recompute=full zero=2
# WARNING: the plan mixes device types; this target assumes identical devices, so per-device speed weighting is lost (the stage partition is kept where the target allows)
# WARNING: op 'h.op%3' (weight h.attn.c_attn.weight) has uneven (speed-weighted) tensor-parallel shards; written as even shards
# WARNING: the plan uses per-batch adaptive sequence parallelism; written as a fixed degree 2
# WARNING: DTensor's parallelize_plan covers tensor parallelism only; the 4 pipeline stages are listed in STAGES for torch.distributed.pipelining
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Partial, Replicate, Shard
from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                               SequenceParallel, parallelize_module)

MESH_SHAPE = (1, 2, 4)
MESH_DIM_NAMES = ("dp", "sp", "tp")
# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)
# for torch.distributed.pipelining; each stage runs on its own MESH_SHAPE sub-mesh.
STAGES = [(0, 15), (16, 31), (32, 39), (40, 47)]

# Each op's SBP on the "tp" mesh dim as DTensor placements: inputs, outputs
# (sbpc's logical dims: matmul weights are [in, out], so Shard(1) of a weight
# here is Shard(0) of nn.Linear.weight).
tp_placements = {
    "h.a": ((Replicate(), Replicate(), Replicate()), (Replicate(),)),
    "h.op%3": ((Replicate(), Shard(1)), (Shard(2),)),
    "h.op%5": ((Shard(2),), (Shard(2),)),
    "h.op%6": ((Shard(2), Shard(0)), (Partial(),)),
    "h.m": ((Replicate(), Replicate(), Replicate()), (Replicate(),)),
    "h.op%10": ((Replicate(), Shard(1)), (Shard(2),)),
    "h.f": ((Shard(2),), (Shard(2),)),
    "h.op%13": ((Shard(2), Shard(0)), (Partial(),)),
    "op%0": ((Replicate(), Shard(0)), (Partial(),)),
    "op%90": ((Replicate(), Replicate(), Replicate()), (Replicate(),)),
    "logits": ((Replicate(), Shard(0)), (Shard(2),)),
}

h_plan = {
    "attn.c_attn": ColwiseParallel(),
    "attn.c_proj": RowwiseParallel(),
    "mlp.c_fc": ColwiseParallel(),
    "mlp.c_proj": RowwiseParallel(),
}

model_plan = {
    "wte": RowwiseParallel(input_layouts=Replicate()),
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
