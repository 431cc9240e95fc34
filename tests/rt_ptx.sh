#!/usr/bin/env bash
# rt_ptx.sh SBPC — ptxas on every GPU module kind (docs/gpu.md): every
# module of tests/data/gpu/ops.sbp (every op kind) in f32 and bf16 and of
# the tiny LLaMA in f16 (every activation dtype), compiled by NVRTC inside
# `sbpc compile --device cuda`, each distinct PTX file assembled once by
# ptxas for its arch. Skips (77) where NVRTC or ptxas is missing.
#
# Label "noasan": ptxas judges NVRTC's PTX, which does not depend on how
# sbpc was built, so the ASan stage leaves this sweep (about 3 CPU minutes)
# to the plain one; sbpc's own NVRTC path still runs sanitized in
# tests/rt_gpu.sh (one NVRTC compile of the tiny GPT-2) and test_cg_ptx.
set -u
SBPC=${1:?usage: rt_ptx.sh SBPC}
cd "$(dirname "$0")/.."
. tests/lib/rt.sh
export SBPC_CACHE_DIR=$T/cache OPENBLAS_NUM_THREADS=1
ptxas=${CUDA_HOME:-/usr/local/cuda}/bin/ptxas
[ -x "$ptxas" ] || { echo "skip: no ptxas at $ptxas"; exit 77; }

"$SBPC" import hf tests/data/hf/tiny-llama.json -o "$T/llama.sbp" >/dev/null || bad "import of the tiny LLaMA"
"$SBPC" compile "$T/llama.sbp" --device cuda --precision f16 -o "$T/px-llama-f16" >/dev/null 2>&1 || bad "compile the tiny LLaMA f16"
for p in f32 bf16; do
  "$SBPC" compile tests/data/gpu/ops.sbp --device cuda --precision $p -o "$T/px-ops-$p" >/dev/null 2>&1 || bad "compile ops.sbp $p"
done
ls "$T"/px-*/gpu/*.ptx >/dev/null 2>&1 || { echo "skip: no NVRTC here, so no PTX to assemble"; exit 77; }
n=0
for f in $(md5sum "$T"/px-*/gpu/*.ptx | sort -u -k1,1 | awk '{print $2}'); do
  a=${f##*.sm_}; a=${a%.ptx}; n=$((n + 1))
  "$ptxas" -arch=sm_$a -o /dev/null "$f" 2>"$T/ptxas.log" || { bad "ptxas rejects $f"; head -5 "$T/ptxas.log"; }
done
echo "ptxas: $n distinct PTX files assembled"
[ $fail = 0 ] && echo "rt_ptx: ok"
exit $fail
