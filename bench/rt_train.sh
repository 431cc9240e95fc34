#!/usr/bin/env bash
# rt_train.sh BUILD_DIR — training throughput of `sbpc run` (issues 6, 11):
# GPT-2 small (examples/gpt2.sbp, 124M parameters), seq 256, global batch 4,
# fp32 CPU reference kernels: tokens/s on 1 rank (OpenBLAS and the runtime's
# split loops, SBPC_THREADS, on all cores; also with --kernels jit, codegen's
# JIT row kernels) and on 2 data-parallel ranks (mpirun, the cores split
# between them), and the peak memory measured per
# rank next to the planner's prediction. PyTorch eager (bench/rt_torch_gpt2.py:
# the same model, batch, seq and thread count) is compared when an interpreter
# can import torch. Steps: STEPS (default 3); the first step is warm-up, the
# table reports the mean of the others. In the same run, bench_sgemm measures
# the machine's fp32 GEMM rate (the faster of an inherited OPENBLAS_CORETYPE
# and the library's own kernel choice, which every run then uses), and the
# 1-rank run's model FLOPs per second
# (GEMMs and attention products, as `sbpc run` reports them) are given as a
# fraction of it (issue 11's goal: 85 %), and sbpc's tokens/s as a ratio to
# PyTorch eager's (goal: 1.1).
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
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
# The baseline is the fastest fp32 sgemm this machine has, and every run below
# uses the BLAS setting that gave it. OpenBLAS picks its kernel set from the
# CPU unless OPENBLAS_CORETYPE forces one (an environment may force an older
# set: this VM's sets Haswell, AVX2, on an AVX-512 CPU), so with
# OPENBLAS_CORETYPE set bench_sgemm runs twice, with it and with the
# library's own choice, and the faster setting is kept.
sgemm() { env "$@" "$build/bench/bench_sgemm" 2>/dev/null | sed -n '1s/^OpenBLAS \([^ ]*\) kernels.*/\1/p; s/^sgemm: \([0-9.]*\) GFLOP\/s/\1/p' | tr '\n' ' '; }
set -- $(sgemm)
core=${1:-n/a} sg=${2:-}
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  set -- $(sgemm -u OPENBLAS_CORETYPE)
  echo "fp32 sgemm, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE: ${sg:-n/a} GFLOP/s; the library's own choice ($1): ${2:-n/a} GFLOP/s"
  if [ -n "${2:-}" ] && [ -z "$sg" -o "$(echo "${2:-0} > ${sg:-0}" | bc)" = 1 ]; then unset OPENBLAS_CORETYPE; core=$1 sg=$2; fi
fi
echo "fp32 sgemm (OpenBLAS $core kernels, $cores threads, best shape and threading): ${sg:-n/a} GFLOP/s"
echo "every run below: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset, the library picks $core}"
OPENBLAS_NUM_THREADS=$cores SBPC_THREADS=$cores "$SBPC" run examples/gpt2.sbp --seq 256 --batch 4 --steps "$STEPS" --kernels ref \
  --log "$T/1.jsonl" > "$T/1.out" || exit 1
echo "1 rank, --kernels ref:  $(mean_tps "$T/1.jsonl") tokens/s; $(grep peak "$T/1.out")"
OPENBLAS_NUM_THREADS=$cores SBPC_THREADS=$cores "$SBPC" run examples/gpt2.sbp --seq 256 --batch 4 --steps "$STEPS" --kernels jit \
  --log "$T/1j.jsonl" > "$T/1j.out" || exit 1
echo "1 rank, --kernels jit:  $(mean_tps "$T/1j.jsonl") tokens/s; $(grep peak "$T/1j.out")"
gf=$(sed -n 's/^model FLOPs per step: .*; \([0-9.]*\) GFLOP\/s.*/\1/p' "$T/1j.out")
[ -n "$sg" ] && [ -n "$gf" ] && echo "1 rank, --kernels jit:  $gf GFLOP/s = $(echo "scale=3; $gf / $sg" | bc) of sgemm"
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
# (bench/rt_torch_gpt2.py; Debian's python3-torch lives in /usr/bin/python3;
# it runs under the same OPENBLAS_CORETYPE as sbpc)
. "$src/tests/lib/torch_python.sh"
if [ -n "$PY" ]; then
  "$PY" bench/rt_torch_gpt2.py --batch 4 --seq 256 --steps "$STEPS" --threads "$cores" > "$T/torch.jsonl" || exit 1
  echo "PyTorch eager $("$PY" -c 'import torch; print(torch.__version__)') (1 process, $cores threads): $(mean_tps "$T/torch.jsonl") tokens/s"
  echo "sbpc (1 rank, jit) / PyTorch eager: $(echo "scale=3; $(mean_tps "$T/1j.jsonl") / $(mean_tps "$T/torch.jsonl")" | bc)"
else
  echo "PyTorch eager: absent (no python3 can import torch), no comparison"
fi
