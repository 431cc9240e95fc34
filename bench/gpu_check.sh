#!/usr/bin/env bash
# gpu_check.sh OUTDIR [BUILD_DIR] — the codegen GPU check, for a machine with
# an NVIDIA GPU, the CUDA driver (libcuda.so.1) and the toolkit's NVRTC
# ($CUDA_HOME, default /usr/local/cuda). Builds bench/bench_gpu.c (CMake
# target bench_gpu; BUILD_DIR defaults to build-gpu next to the sources) and
# runs it: every fused CUDA kernel against the CPU (LLVM JIT) kernel on random
# inputs, attention forward/backward on a packed varlen batch against the CPU
# attention, achieved bandwidth of fused layer-norm and bias+GELU (bf16) vs a
# float4 copy kernel, and varlen vs padded attention on a long-tailed batch.
# Writes OUTDIR/gpu_results.md and OUTDIR/gpu_check.log. About 1-2 minutes on
# an H100 (limit 5). Exits 0 with a message when no GPU is found.
set -u
out=${1:?usage: gpu_check.sh OUTDIR [BUILD_DIR]}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$src/build-gpu}
mkdir -p "$out"
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ]; then
  echo "gpu_check: no CUDA driver (libcuda.so.1) found: nothing to check" | tee "$out/gpu_check.log"
  exit 0
fi
if [ ! -x "$build/bench/bench_gpu" ]; then
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$out/build.log" 2>&1 &&
    cmake --build "$build" -j"$(nproc)" --target bench_gpu >> "$out/build.log" 2>&1 ||
    { echo "gpu_check: build failed, see $out/build.log"; exit 1; }
fi
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
timeout 300 "$build/bench/bench_gpu" "$out" 2>&1 | tee "$out/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "gpu_check: exit $rc; results in $out/gpu_results.md"
exit "$rc"
