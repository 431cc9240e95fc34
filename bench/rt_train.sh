#!/usr/bin/env bash
# rt_train.sh BUILD_DIR — training throughput of `sbpc run` (issue 6):
# GPT-2 small (examples/gpt2.sbp, 124M parameters), seq 256, global batch 4,
# fp32 CPU reference kernels: tokens/s on 1 rank (OpenBLAS on all cores) and on
# 2 data-parallel ranks (mpirun, the cores split between them), and the peak
# memory measured per rank next to the actor plan's prediction. PyTorch eager
# is compared only when `import torch` works. Steps: STEPS (default 3); the
# first step is warm-up, the table reports the mean of the others.
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
OPENBLAS_NUM_THREADS=$cores "$SBPC" run examples/gpt2.sbp --seq 256 --batch 4 --steps "$STEPS" --log "$T/1.jsonl" > "$T/1.out" || exit 1
echo "1 rank:  $(mean_tps "$T/1.jsonl") tokens/s; $(grep peak "$T/1.out")"
if command -v mpirun >/dev/null; then
  half=$(( cores / 2 > 0 ? cores / 2 : 1 ))
  OPENBLAS_NUM_THREADS=$half mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS "$SBPC" run examples/gpt2.sbp \
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
if python3 -c 'import torch' 2>/dev/null; then
  echo "PyTorch eager: present but the comparison script is not written yet"
else
  echo "PyTorch eager: absent (python3 cannot import torch), no comparison"
fi
