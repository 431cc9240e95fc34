#!/bin/bash
# rt_torch.sh SBPC — the 1-rank losses of the tiny GPT-2 against PyTorch
# (issue 6): the same model written in PyTorch (tests/lib/torch_gpt2.py),
# started from the same weights
# (sbpc's initial parameters saved with --steps 0 --save), the same data and
# torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01)
# must give the same 5 losses within 1e-4 relative, with the reference
# kernels and with --kernels jit. Skipped (77) when
# no python interpreter can `import torch` (Debian's python3-torch lives in
# /usr/bin/python3, which may not be the first python3 on PATH).
set -u
SBPC=${1:?usage: rt_torch.sh SBPC}
cd "$(dirname "$0")/.."
. tests/lib/torch_python.sh
[ -n "$PY" ] || { echo "skip: no python3 can import torch"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M=examples/tiny-gpt2.sbp
D=tests/data/rt/tiny.bin
"$SBPC" run $M --data $D --steps 0 --save "$T/init" --quiet || { echo "FAIL: saving the initial weights"; exit 1; }
"$SBPC" run $M --data $D --steps 5 --quiet --log "$T/sbpc.jsonl" || { echo "FAIL: sbpc run"; exit 1; }
"$SBPC" run $M --data $D --steps 5 --quiet --kernels jit --log "$T/jit.jsonl" || { echo "FAIL: sbpc run --kernels jit"; exit 1; }
"$PY" tests/lib/torch_gpt2.py "$T/init" "$D" "$T/torch.jsonl" || { echo "FAIL: the PyTorch run"; exit 1; }
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
