"""torch_packed.py MODEL CKPT DOCS OUT STEPS [CONFIG] — the reference for
tests/rt_packed.sh: the documents trained one at a time, as PyTorch users
train without packing. MODEL is gpt2 (examples/tiny-gpt2.sbp's sizes) or
llama (CONFIG, default tests/data/hf/tiny-llama.json; as Hugging Face's
LlamaForCausalLM computes it). Started from sbpc's initial weights
(CKPT/model.safetensors, `sbpc run --steps 0 --save`, read by tests/lib/torch_ref.py). DOCS is a JSON list of
documents (lists of token ids): every step sees all of them, each its own
row of a padded batch that starts at position 0, with a causal attention
mask and a padding mask; a document of L tokens predicts its L - 1 next
tokens, and the loss is the mean over all documents' predictions
(sum / count). torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight
decay 0.01); the losses go to OUT as JSON lines."""
import json, math, sys
import torch
import torch.nn.functional as F
import torch_ref

model, ck, docs_path, out, steps = sys.argv[1:6]
steps = int(steps)
P = torch_ref.load(ck)

docs = json.load(open(docs_path))
N, T = len(docs), max(len(d) for d in docs) - 1
ids = torch.zeros(N, T, dtype=torch.long)
labels = torch.full((N, T), -100, dtype=torch.long)
valid = torch.zeros(N, T, dtype=torch.bool)
for i, d in enumerate(docs):
    ids[i, :len(d) - 1] = torch.tensor(d[:-1])
    labels[i, :len(d) - 1] = torch.tensor(d[1:])
    valid[i, :len(d) - 1] = True
# masked: query i may not see key j when j > i (causal) or j is padding
MASK = torch.ones(T, T, dtype=torch.bool).triu(1)[None, None] | ~valid[:, None, None, :]


def attend(q, k, v, d):  # [N, heads, T, d]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    return att.masked_fill(MASK, float("-inf")).softmax(-1) @ v


def gpt2(x_ids):
    V, H, A, L = 512, 64, 4, 2
    ln = lambda x, w, b: F.layer_norm(x, (H,), w, b, 1e-5)
    x = P["wte.weight"][x_ids] + P["wpe.weight"][:T]
    for l in range(L):
        p = lambda name: P["h.%d.%s" % (l, name)]
        a = ln(x, p("ln_1.weight"), p("ln_1.bias"))
        q, k, v = (a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(H, dim=-1)
        q, k, v = [t.view(N, T, A, H // A).transpose(1, 2) for t in (q, k, v)]
        y = attend(q, k, v, H // A).transpose(1, 2).reshape(N, T, H)
        x = x + (y @ p("attn.c_proj.weight") + p("attn.c_proj.bias"))
        m = ln(x, p("ln_2.weight"), p("ln_2.bias"))
        f = F.gelu(m @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"), approximate="tanh")
        x = x + (f @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias"))
    return ln(x, P["ln_f.weight"], P["ln_f.bias"]) @ P["wte.weight"].T


def llama(x_ids):
    cfg = json.load(open(sys.argv[6] if len(sys.argv) > 6 else "tests/data/hf/tiny-llama.json"))
    H, A, KV, L, EPS = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                        cfg["num_hidden_layers"], cfg["rms_norm_eps"])
    D = H // A
    inv = cfg.get("rope_theta", 10000.0) ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    COS, SIN = torch.cat([ang.cos()] * 2, -1).float(), torch.cat([ang.sin()] * 2, -1).float()
    rms = lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w

    def rope(x, heads):
        x = x.view(N, T, heads, D).transpose(1, 2)
        return x * COS + torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1) * SIN

    x = P["model.embed_tokens.weight"][x_ids]
    for l in range(L):
        p = lambda name: P["model.layers.%d.%s" % (l, name)]
        a = rms(x, p("input_layernorm.weight"))
        q = rope(a @ p("self_attn.q_proj.weight").T, A)
        k = rope(a @ p("self_attn.k_proj.weight").T, KV).repeat_interleave(A // KV, dim=1)
        v = (a @ p("self_attn.v_proj.weight").T).view(N, T, KV, D).transpose(1, 2).repeat_interleave(A // KV, dim=1)
        x = x + attend(q, k, v, D).transpose(1, 2).reshape(N, T, H) @ p("self_attn.o_proj.weight").T
        m = rms(x, p("post_attention_layernorm.weight"))
        x = x + (F.silu(m @ p("mlp.gate_proj.weight").T) * (m @ p("mlp.up_proj.weight").T)) @ p("mlp.down_proj.weight").T
    return rms(x, P["model.norm.weight"]) @ P["lm_head.weight"].T


forward = {"gpt2": gpt2, "llama": llama}[model]
opt = torch.optim.AdamW(list(P.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
count = int(valid.sum())
with open(out, "w") as f:
    for step in range(1, steps + 1):
        logits = forward(ids)
        loss = F.cross_entropy(logits.reshape(N * T, -1), labels.reshape(-1), ignore_index=-100, reduction="sum") / count
        opt.zero_grad()
        loss.backward()
        opt.step()
        f.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
