"""torch_ref.py — what the PyTorch reference models of the tests share
(tests/lib/torch_gpt2.py, tests/lib/torch_llama.py): sbpc's initial weights
read from CKPT/model.safetensors (written by `sbpc run --steps 0 --save`),
and the training loop: DATA (little-endian int32 tokens) cut into samples of
SEQ + 1 tokens, BATCH samples per step in order, 5 steps of
torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01),
the losses written to OUT as JSON lines {"step", "loss"}."""
import json, struct
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def load(ck):
    """The f32 tensors of CKPT/model.safetensors by name, each a leaf that
    requires grad."""
    raw = open(ck + "/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    P = {}
    for k, v in json.loads(raw[8:8 + n]).items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(v["shape"])
        P[k] = t.clone().requires_grad_(True)
    return P


def train(forward, P, data, out, B, S, V, steps=5):
    """Train P with forward(ids [B, S]) -> logits [B, S, V] as sbpc does and
    write each step's loss to out."""
    raw = open(data, "rb").read()
    tok = torch.tensor(struct.unpack("<%di" % (len(raw) // 4), raw))
    nsamp = len(tok) // (S + 1)
    opt = torch.optim.AdamW(list(P.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    with open(out, "w") as f:
        for step in range(1, steps + 1):
            idx = [((step - 1) * B + i) % nsamp for i in range(B)]
            batch = torch.stack([tok[i * (S + 1):(i + 1) * (S + 1)] for i in idx]).long()
            loss = F.cross_entropy(forward(batch[:, :S]).reshape(-1, V), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            f.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
