#!/bin/bash
# rt_torch.sh SBPC — the 1-rank losses of the tiny GPT-2 against PyTorch
# (issue 6): the same model written in PyTorch, started from the same weights
# (sbpc's initial parameters saved with --steps 0 --save), the same data and
# torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01)
# must give the same 5 losses within 1e-4 relative, with the reference
# kernels and with --kernels jit. Skipped (77) when
# no python interpreter can `import torch` (Debian's python3-torch lives in
# /usr/bin/python3, which may not be the first python3 on PATH).
set -u
SBPC=${1:?usage: rt_torch.sh SBPC}
cd "$(dirname "$0")/.."
PY=
for p in "${SBPC_TORCH_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$p" ] && "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }
done
[ -n "$PY" ] || { echo "skip: no python3 can import torch"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M=examples/tiny-gpt2.sbp
D=tests/data/rt/tiny.bin
"$SBPC" run $M --data $D --steps 0 --save "$T/init" --quiet || { echo "FAIL: saving the initial weights"; exit 1; }
"$SBPC" run $M --data $D --steps 5 --quiet --log "$T/sbpc.jsonl" || { echo "FAIL: sbpc run"; exit 1; }
"$SBPC" run $M --data $D --steps 5 --quiet --kernels jit --log "$T/jit.jsonl" || { echo "FAIL: sbpc run --kernels jit"; exit 1; }
"$PY" - "$T/init" "$D" "$T/torch.jsonl" <<'EOF' || { echo "FAIL: the PyTorch run"; exit 1; }
import json, math, struct, sys
import torch
import torch.nn.functional as F
ck, data, out = sys.argv[1:4]
raw = open(ck + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
P = {}
for k, v in hdr.items():
    if k == "__metadata__":
        continue
    a, b = v["data_offsets"]
    t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(v["shape"])
    P[k] = t.clone().requires_grad_(True)
V, H, A, L, S, B = 512, 64, 4, 2, 32, 8
CAUSAL = torch.ones(S, S, dtype=torch.bool).triu(1)
torch.set_num_threads(1)

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

raw = open(data, "rb").read()
tok = torch.tensor(struct.unpack("<%di" % (len(raw) // 4), raw))
nsamp = len(tok) // (S + 1)
opt = torch.optim.AdamW(list(P.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
with open(out, "w") as f:
    for step in range(1, 6):
        idx = [((step - 1) * B + i) % nsamp for i in range(B)]
        batch = torch.stack([tok[i * (S + 1):(i + 1) * (S + 1)] for i in idx]).long()
        loss = F.cross_entropy(forward(batch[:, :S]).reshape(-1, V), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        f.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
EOF
compare() { # SBPC_LOG TORCH_LOG
awk 'FNR == 1 { f++ }
     { match($0, /"step": *[0-9]+/); s = substr($0, RSTART + 7, RLENGTH - 7) + 0
       match($0, /"loss": *[-0-9.eE+]+/); l = substr($0, RSTART + 7, RLENGTH - 7) + 0
       if (f == 1) a[s] = l; else b[s] = l }
     END { bad = 0; for (s = 1; s <= 5; s++) { d = a[s] - b[s]; if (d < 0) d = -d
             printf "step %d: sbpc %.7f torch %.7f\n", s, a[s], b[s]; if (!(s in b) || d > 1e-4 * a[s]) bad = 1 }
           exit bad }' "$1" "$2"
}
compare "$T/sbpc.jsonl" "$T/torch.jsonl" || { echo "FAIL: losses differ from PyTorch"; exit 1; }
echo "with --kernels jit:"
compare "$T/jit.jsonl" "$T/torch.jsonl" || { echo "FAIL: --kernels jit losses differ from PyTorch"; exit 1; }
echo "rt_torch: 5 losses equal PyTorch's within 1e-4 (reference and JIT kernels)"
