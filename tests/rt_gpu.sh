#!/usr/bin/env bash
# rt_gpu.sh SBPC — the GPU backend's parts that need no GPU (docs/gpu.md):
#  1. the program's GPU part as golden text (`sbpc compile --device cuda
#     --dump gpu`: per actor its kernel, launch, stream and device arena
#     offsets) for the tiny GPT-2 in f32 and bf16 and tests/data/gpu/ops.sbp
#     (every op kind) in bf16: tests/data/gpu/*.gpu (GPU_GOLDEN_UPDATE=1
#     rewrites them; review the diff);
#  2. sbpc's NVRTC path: the tiny GPT-2 compiled with NVRTC has PTX for every
#     module (when NVRTC is present; the golden programs are compiled
#     without it, which changes nothing in their GPU part; tests/rt_ptx.sh
#     assembles every module kind with ptxas);
#  3. the program reader refuses a GPU part naming a module that does not
#     exist;
#  4. selection: a GPU program with no usable GPU is refused by default with
#     the reason (no libcuda.so.1; SBPC_CUDA_LIB pointing nowhere; the
#     toolkit's stub libcuda, whose cuInit fails; a driver that reports no
#     device), --device cpu runs an f32 GPU program on the CPU with the CPU
#     program's losses, a bf16 program is refused there, and a CPU program
#     is refused by --device cuda.
# Skips (77) on a machine where a GPU is usable: bench/gpu_check.sh is the
# check there.
set -u
SBPC=${1:?usage: rt_gpu.sh SBPC}
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export SBPC_CACHE_DIR=$T/cache OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fail=0
bad() { echo "FAIL: $*"; fail=1; }

if [ -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ] || ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  if "$SBPC" run examples/tiny-gpt2.sbp --steps 0 --quiet --device cuda 2>/dev/null; then
    echo "a GPU is usable here: run bench/gpu_check.sh"; exit 77
  fi
fi

# 1. golden GPU parts
golden() { # NAME MODEL PRECISION
  SBPC_NVRTC=none "$SBPC" compile "$2" --device cuda --precision "$3" -o "$T/$1" --dump gpu >"$T/$1.gpu" 2>"$T/$1.err" ||
    { bad "compile $2 --device cuda --precision $3"; cat "$T/$1.err"; return; }
  if [ -n "${GPU_GOLDEN_UPDATE:-}" ]; then cp "$T/$1.gpu" "tests/data/gpu/$1.gpu"; fi
  diff -u "tests/data/gpu/$1.gpu" "$T/$1.gpu" >"$T/diff" || { bad "the GPU part of $1 differs from tests/data/gpu/$1.gpu"; head -40 "$T/diff"; }
  grep -q '"gpu":{' "$T/$1/program.json" || bad "$1/program.json has no gpu part"
  for m in $(grep -o '"name":"m[0-9]*_[a-z_0-9]*"\|"name":"sbpc_rt"' "$T/$1/program.json" | cut -d'"' -f4); do
    [ -s "$T/$1/gpu/$m.cu" ] || bad "$1/gpu/$m.cu is missing"
  done
}
golden tiny-gpt2-f32 examples/tiny-gpt2.sbp f32
golden tiny-gpt2-bf16 examples/tiny-gpt2.sbp bf16
golden ops-bf16 tests/data/gpu/ops.sbp bf16
grep -q ' host ' "$T/tiny-gpt2-bf16.gpu" "$T/ops-bf16.gpu" && bad "an op of the tiny GPT-2 or ops.sbp runs on the host"

# 2. sbpc's NVRTC path (ptxas over every module kind is tests/rt_ptx.sh):
# the tiny GPT-2 compiled by NVRTC has a PTX file per module and arch
if "$SBPC" compile examples/tiny-gpt2.sbp --device cuda -o "$T/nvrtc" >/dev/null 2>"$T/nvrtc.err"; then
  if ls "$T"/nvrtc/gpu/*.ptx >/dev/null 2>&1; then
    for c in "$T"/nvrtc/gpu/*.cu; do
      ls "${c%.cu}".sm_*.ptx >/dev/null 2>&1 || bad "NVRTC wrote no PTX for $c"
    done
  else
    echo "note: no NVRTC here; the PTX was not compiled"
  fi
else
  bad "compile the tiny GPT-2 with NVRTC"; cat "$T/nvrtc.err"
fi

# 3. a hostile GPU part
cp -r "$T/tiny-gpt2-f32" "$T/hostile"
sed -i 's/"kind":"gemm"/"kind":"row","module":99999/' "$T/hostile/program.json"
"$SBPC" run "$T/hostile" --device cpu >"$T/out" 2>&1 && bad "a GPU part with a module out of range was accepted"
grep -q "gpu.ops\[[0-9]*\].module" "$T/out" || { bad "the refusal does not name gpu.ops[...].module"; cat "$T/out"; }

# 4. selection
D=$T/tiny-gpt2-f32
"$SBPC" run "$D" --steps 1 >"$T/out" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "compiled for the GPU but no GPU is usable here" "$T/out" && grep -q -- "--device cpu" "$T/out" ||
  { bad "a GPU program without a GPU: exit $rc"; cat "$T/out"; }
SBPC_CUDA_LIB=$T/nowhere/libcuda.so "$SBPC" run "$D" --device cuda >"$T/out" 2>&1
grep -q "cannot open $T/nowhere/libcuda.so (SBPC_CUDA_LIB)" "$T/out" || { bad "SBPC_CUDA_LIB pointing nowhere"; cat "$T/out"; }
stub=${CUDA_HOME:-/usr/local/cuda}/lib64/stubs/libcuda.so
if [ -e "$stub" ]; then
  SBPC_CUDA_LIB=$stub "$SBPC" run "$D" --device cuda >"$T/out" 2>&1
  grep -q "cuInit failed in $stub" "$T/out" || { bad "the stub libcuda"; cat "$T/out"; }
fi
if command -v cc >/dev/null; then # a driver with every entry point that reports no device
  syms="cuInit cuDriverGetVersion cuDeviceGet cuDeviceGetName cuDeviceGetAttribute cuDevicePrimaryCtxRetain
    cuDevicePrimaryCtxRelease_v2 cuCtxSetCurrent cuModuleLoadData cuModuleGetFunction cuModuleUnload cuMemAlloc_v2
    cuMemFree_v2 cuMemGetInfo_v2 cuMemcpyHtoD_v2 cuMemcpyDtoH_v2 cuMemcpyHtoDAsync_v2 cuMemcpyDtoHAsync_v2
    cuMemcpyDtoDAsync_v2 cuMemsetD8Async cuStreamCreate cuStreamDestroy_v2 cuStreamSynchronize cuStreamWaitEvent
    cuEventCreate cuEventDestroy_v2 cuEventRecord cuEventSynchronize cuEventElapsedTime_v2 cuLaunchKernel cuGetErrorName"
  { for s in $syms; do echo "int $s(void) { return 0; }"; done; echo "int cuDeviceGetCount(int *n) { *n = 0; return 0; }"; } >"$T/fake.c"
  if cc -shared -fPIC -o "$T/libcuda-fake.so" "$T/fake.c" 2>/dev/null; then
    SBPC_CUDA_LIB=$T/libcuda-fake.so "$SBPC" run "$D" --device cuda >"$T/out" 2>&1
    grep -q "no CUDA device (the driver reports 0 devices)" "$T/out" || { bad "a driver without devices"; cat "$T/out"; }
  fi
fi
"$SBPC" compile examples/tiny-gpt2.sbp -o "$T/cpu" >/dev/null 2>&1 || bad "compile for the CPU"
# the reference kernels on both sides (a GPU program carries no CPU kernels
# to JIT; the JIT's cross-entropy differs from the reference in the last bits)
"$SBPC" run "$T/cpu" --kernels ref --steps 3 --quiet --log "$T/cpu.jsonl" >/dev/null 2>&1 || bad "the CPU program"
"$SBPC" run "$D" --device cpu --steps 3 --quiet --log "$T/gpu-on-cpu.jsonl" >/dev/null 2>&1 || bad "--device cpu on an f32 GPU program"
losses() { sed 's/, "tokens_per_s".*//' "$1"; }
[ "$(losses "$T/cpu.jsonl")" = "$(losses "$T/gpu-on-cpu.jsonl")" ] || { bad "--device cpu on the GPU program gives other losses"; cat "$T/cpu.jsonl" "$T/gpu-on-cpu.jsonl"; }
"$SBPC" run "$T/tiny-gpt2-bf16" --device cpu >"$T/out" 2>&1
grep -q "compiled for the GPU in bf16; the CPU executor runs f32 programs" "$T/out" || { bad "bf16 on the CPU"; cat "$T/out"; }
"$SBPC" run "$T/cpu" --device cuda >"$T/out" 2>&1
grep -q "compiled for the CPU; recompile it with \`sbpc compile --device cuda\`" "$T/out" || { bad "a CPU program on --device cuda"; cat "$T/out"; }

[ $fail = 0 ] && echo "rt_gpu: ok"
exit $fail
