"""torch_llama.py CKPT DATA OUT BATCH SEQ [CONFIG] — the reference for
tests/rt_program.sh: a LLaMA written in PyTorch as Hugging Face's
LlamaForCausalLM computes it (RMSNorm, rotary embeddings with rotate_half,
grouped-query causal attention, SwiGLU MLP, untied lm_head), started from
sbpc's initial weights (CKPT/model.safetensors, written by `sbpc run
--steps 0 --save`), trained 5 steps on DATA (little-endian int32 tokens cut
into samples of SEQ + 1, BATCH per step, in order) with torch.optim.AdamW
(lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01; tests/lib/torch_ref.py);
writes the losses as JSON lines to OUT. The sizes come from CONFIG (default
tests/data/hf/tiny-llama.json)."""
import json, math, sys
import torch
import torch.nn.functional as F
import torch_ref

ck, data, out = sys.argv[1:4]
B, S = int(sys.argv[4]), int(sys.argv[5])
cfg = json.load(open(sys.argv[6] if len(sys.argv) > 6 else "tests/data/hf/tiny-llama.json"))
V, H, A = cfg["vocab_size"], cfg["hidden_size"], cfg["num_attention_heads"]
KV, L, EPS = cfg["num_key_value_heads"], cfg["num_hidden_layers"], cfg["rms_norm_eps"]
THETA, D = cfg.get("rope_theta", 10000.0), H // A

P = torch_ref.load(ck)

def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w

inv = THETA ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
ang = torch.arange(S, dtype=torch.float64)[:, None] * inv[None, :]
COS, SIN = torch.cat([ang.cos()] * 2, -1).float(), torch.cat([ang.sin()] * 2, -1).float()

def rope(x, heads):  # x [B, S, heads * D]
    x = x.view(B, S, heads, D).transpose(1, 2)
    rot = torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1)
    return x * COS + rot * SIN

def forward(ids):
    x = P["model.embed_tokens.weight"][ids]
    for l in range(L):
        p = lambda name: P["model.layers.%d.%s" % (l, name)]
        a = rms(x, p("input_layernorm.weight"))
        q = rope(a @ p("self_attn.q_proj.weight").T, A)
        k = rope(a @ p("self_attn.k_proj.weight").T, KV).repeat_interleave(A // KV, dim=1)
        v = (a @ p("self_attn.v_proj.weight").T).view(B, S, KV, D).transpose(1, 2).repeat_interleave(A // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        att = att.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, H)
        x = x + y @ p("self_attn.o_proj.weight").T
        m = rms(x, p("post_attention_layernorm.weight"))
        x = x + (F.silu(m @ p("mlp.gate_proj.weight").T) * (m @ p("mlp.up_proj.weight").T)) @ p("mlp.down_proj.weight").T
    return rms(x, P["model.norm.weight"]) @ P["lm_head.weight"].T

torch_ref.train(forward, P, data, out, B, S, V)
