#!/usr/bin/env bash
# rt_train.sh BUILD_DIR — training throughput of `sbpc run` (issue 6):
# GPT-2 small (examples/gpt2.sbp, 124M parameters), seq 256, global batch 4,
# fp32 CPU reference kernels: tokens/s on 1 rank (OpenBLAS and the runtime's
# split loops, SBPC_THREADS, on all cores; also with --kernels jit, codegen's
# JIT row kernels) and on 2 data-parallel ranks (mpirun, the cores split
# between them), and the peak memory measured per
# rank next to the planner's prediction. PyTorch eager (bench/rt_torch_gpt2.py:
# the same model, batch, seq and thread count) is compared when an interpreter
# can import torch. Steps: STEPS (default 3); the first step is warm-up, the
# table reports the mean of the others.
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
SBPC=$build/sbpc
STEPS=${STEPS:-3}
cores=$(nproc)
[ -x "$SBPC" ] || { echo "rt_train: no $SBPC"; exit 1; }
cd "$src"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mean_tps() { awk 'NR > 1 { match($0, /"tokens_per_s": *[0-9.]+/); s += substr($0, RSTART + 16, RLENGTH - 16); n++ }
                  END { if (n) printf "%.0f", s / n; else print "n/a" }' "$1"; }
echo "GPT-2 small, seq 256, global batch 4, $STEPS steps (first is warm-up), $cores cores"
OPENBLAS_NUM_THREADS=$cores SBPC_THREADS=$cores "$SBPC" run examples/gpt2.sbp --seq 256 --batch 4 --steps "$STEPS" --kernels ref \
  --log "$T/1.jsonl" > "$T/1.out" || exit 1
echo "1 rank, --kernels ref:  $(mean_tps "$T/1.jsonl") tokens/s; $(grep peak "$T/1.out")"
OPENBLAS_NUM_THREADS=$cores SBPC_THREADS=$cores "$SBPC" run examples/gpt2.sbp --seq 256 --batch 4 --steps "$STEPS" --kernels jit \
  --log "$T/1j.jsonl" > "$T/1j.out" || exit 1
echo "1 rank, --kernels jit:  $(mean_tps "$T/1j.jsonl") tokens/s; $(grep peak "$T/1j.out")"
if command -v mpirun >/dev/null; then
  half=$(( cores / 2 > 0 ? cores / 2 : 1 ))
  OPENBLAS_NUM_THREADS=$half SBPC_THREADS=$half mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x SBPC_THREADS "$SBPC" run examples/gpt2.sbp \
    --seq 256 --batch 4 --dp 2 --steps "$STEPS" --log "$T/2.jsonl" > "$T/2.out" || exit 1
  echo "2 ranks (dp=2): $(mean_tps "$T/2.jsonl") tokens/s; $(grep peak "$T/2.out")"
fi
# the planner's prediction for the same layouts (when `sbpc plan` is built)
for lay in "cpu:1 dp=1,tp=1,pp=1,mbs=4" "cpu:2 dp=2,tp=1,pp=1,mbs=2"; do
  set -- $lay
  line=$("$SBPC" plan examples/gpt2.sbp --cluster "$1" --batch 4 --seq 256 --precision fp32 \
           --fix "$2,recompute=none,zero=0" 2>/dev/null | grep '^memory:')
  echo "planner prediction ($2): ${line:-n/a (no 'sbpc plan' in this build)}"
done
# PyTorch eager on the same model, batch, sequence and thread count
# (bench/rt_torch_gpt2.py; Debian's python3-torch lives in /usr/bin/python3)
PY=
for p in "${SBPC_TORCH_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$p" ] && "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }
done
if [ -n "$PY" ]; then
  "$PY" bench/rt_torch_gpt2.py --batch 4 --seq 256 --steps "$STEPS" --threads "$cores" > "$T/torch.jsonl" || exit 1
  echo "PyTorch eager $("$PY" -c 'import torch; print(torch.__version__)') (1 process, $cores threads): $(mean_tps "$T/torch.jsonl") tokens/s"
else
  echo "PyTorch eager: absent (no python3 can import torch), no comparison"
fi
