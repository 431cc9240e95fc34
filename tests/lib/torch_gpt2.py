"""torch_gpt2.py CKPT DATA OUT — the reference for tests/rt_torch.sh: the tiny
GPT-2 (examples/tiny-gpt2.sbp: vocabulary 512, hidden 64, 4 heads, 2 layers,
seq 32, batch 8) written in PyTorch as Hugging Face's GPT2LMHeadModel computes
it (pre-norm blocks, fused c_attn, tanh GELU, tied embeddings), started from
sbpc's initial weights and trained 5 steps as tests/lib/torch_ref.py says."""
import math, sys
import torch
import torch.nn.functional as F
import torch_ref

ck, data, out = sys.argv[1:4]
P = torch_ref.load(ck)
V, H, A, L, S, B = 512, 64, 4, 2, 32, 8
CAUSAL = torch.ones(S, S, dtype=torch.bool).triu(1)

def ln(x, w, b):
    return F.layer_norm(x, (H,), w, b, 1e-5)

def forward(ids):
    x = P["wte.weight"][ids] + P["wpe.weight"][:S]
    for l in range(L):
        p = lambda name: P["h.%d.%s" % (l, name)]
        a = ln(x, p("ln_1.weight"), p("ln_1.bias"))
        q, k, v = (a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(H, dim=-1)
        q, k, v = [t.view(B, S, A, H // A).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(H // A)
        att = att.masked_fill(CAUSAL, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, H)
        x = x + (y @ p("attn.c_proj.weight") + p("attn.c_proj.bias"))
        m = ln(x, p("ln_2.weight"), p("ln_2.bias"))
        f = F.gelu(m @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"), approximate="tanh")
        x = x + (f @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias"))
    return ln(x, P["ln_f.weight"], P["ln_f.bias"]) @ P["wte.weight"].T

torch_ref.train(forward, P, data, out, B, S, V)
