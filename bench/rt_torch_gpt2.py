"""rt_torch_gpt2.py — PyTorch eager baseline for bench/rt_train.sh (issue 6).

The same GPT-2 small as examples/gpt2.sbp (124M parameters, Conv1D weights
[in, out], tied embedding, dropout 0.1 after both projections, tanh GELU,
causal attention written out as in Hugging Face's eager GPT-2), trained with
torch.optim.AdamW on random tokens, fp32 on the CPU. Prints one JSON line per
step, {"step", "loss", "tokens_per_s"}, like `sbpc run --log`.

usage: python3 rt_torch_gpt2.py --batch B --seq S --steps K --threads T
"""
import argparse, json, math, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--seq", type=int, default=256)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--layers", type=int, default=12)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1234)
V, P, H, A, L = 50257, 1024, 768, 12, args.layers
B, S = args.batch, args.seq

def param(*shape, std=0.02, fill=None):
    t = torch.full(shape, fill) if fill is not None else torch.randn(*shape) * std
    return t.requires_grad_(True)

W = {"wte": param(V, H), "wpe": param(P, H), "lnf_w": param(H, fill=1.0), "lnf_b": param(H, fill=0.0)}
blocks = []
for _ in range(L):
    blocks.append({"ln1_w": param(H, fill=1.0), "ln1_b": param(H, fill=0.0),
                   "attn_w": param(H, 3 * H), "attn_b": param(3 * H, fill=0.0),
                   "proj_w": param(H, H), "proj_b": param(H, fill=0.0),
                   "ln2_w": param(H, fill=1.0), "ln2_b": param(H, fill=0.0),
                   "fc_w": param(H, 4 * H), "fc_b": param(4 * H, fill=0.0),
                   "fc2_w": param(4 * H, H), "fc2_b": param(H, fill=0.0)})
params = list(W.values()) + [t for b in blocks for t in b.values()]
causal = torch.ones(S, S, dtype=torch.bool).triu(1)

def forward(ids):
    x = W["wte"][ids] + W["wpe"][:S]
    for p in blocks:
        a = F.layer_norm(x, (H,), p["ln1_w"], p["ln1_b"], 1e-5)
        q, k, v = (a @ p["attn_w"] + p["attn_b"]).split(H, dim=-1)
        q, k, v = [t.view(B, S, A, H // A).transpose(1, 2) for t in (q, k, v)]
        att = ((q @ k.transpose(-2, -1)) / math.sqrt(H // A)).masked_fill(causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, H)
        x = x + F.dropout(y @ p["proj_w"] + p["proj_b"], 0.1, True)
        m = F.layer_norm(x, (H,), p["ln2_w"], p["ln2_b"], 1e-5)
        f = F.gelu(m @ p["fc_w"] + p["fc_b"], approximate="tanh")
        x = x + F.dropout(f @ p["fc2_w"] + p["fc2_b"], 0.1, True)
    return F.layer_norm(x, (H,), W["lnf_w"], W["lnf_b"], 1e-5) @ W["wte"].T

opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
for step in range(1, args.steps + 1):
    tok = torch.randint(0, V, (B, S + 1))
    t0 = time.perf_counter()
    loss = F.cross_entropy(forward(tok[:, :S]).reshape(-1, V), tok[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    dt = time.perf_counter() - t0
    print(json.dumps({"step": step, "loss": loss.item(), "tokens_per_s": B * S / dt}), flush=True)
