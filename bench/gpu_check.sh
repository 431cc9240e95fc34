#!/usr/bin/env bash
# gpu_check.sh OUTDIR [BUILD_DIR] — the GPU check, for a machine with an NVIDIA
# GPU (compute capability 8.0 or newer), the CUDA driver (libcuda.so.1) and the
# toolkit ($CUDA_HOME, default /usr/local/cuda: NVRTC, cuBLAS; NCCL is only
# needed for dp > 1). One script, under 5 minutes on an H100; everything goes
# to OUTDIR (results.md is the summary to copy into bench/README.md).
#  1. bench_gpu (bench/bench_gpu.c): every fused CUDA kernel against the CPU
#     JIT kernel, attention fwd/bwd against the CPU, bandwidth of the fused
#     elementwise/row kernels as fractions of a copy and of the HBM peak,
#     varlen vs padded attention, cuBLAS's bf16 GEMM rate (peaks.txt);
#  2. the tiny GPT-2 and the tiny LLaMA (tests/data/hf/tiny-llama.json), fp32,
#     1 GPU, 10 steps, against the CPU executor running the same DIR
#     (--device cpu): every loss within 1e-4 relative;
#  3. GPT-2 small (examples/gpt2.sbp) in bf16 on 1 GPU, 20 steps: the loss,
#     tokens/s (median of steps 6-20), MFU against the device's dense bf16
#     peak and the fraction of the measured cuBLAS GEMM rate (model FLOPs:
#     6 x parameters + 12 x layers x hidden x seq per token);
#  4. the measured device peak (cuMemGetInfo since start-up, at least the
#     planned regions) against the program's prediction, for every run.
# Exits 0 with a message when no GPU is usable; 1 when a check fails.
set -u
out=${1:?usage: gpu_check.sh OUTDIR [BUILD_DIR]}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$src/build-gpu}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/gpu_check.log
: >"$log"
say() { echo "$*" | tee -a "$out/results.md"; }
: >"$out/results.md"
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ]; then
  echo "gpu_check: no CUDA driver (libcuda.so.1) found: nothing to check" | tee "$log"
  exit 0
fi
start=$(date +%s)
if [ ! -x "$build/sbpc" ] || [ ! -x "$build/bench/bench_gpu" ]; then
  { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release && cmake --build "$build" -j"$(nproc)" --target sbpc bench_gpu; } >"$out/build.log" 2>&1 ||
    { echo "gpu_check: build failed, see $out/build.log"; exit 1; }
fi
sbpc=$build/sbpc
export SBPC_CACHE_DIR=$out/cache OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
fail=0

# 1. kernels, bandwidth, peaks
timeout 150 "$build/bench/bench_gpu" "$out" >>"$log" 2>&1 || { echo "gpu_check: bench_gpu failed (see $log)"; fail=1; }
dev=$(sed -n 's/^device //p' "$out/peaks.txt" 2>/dev/null)
gemm=$(sed -n 's/^gemm_bf16_flops //p' "$out/peaks.txt" 2>/dev/null)
say "# sbpc GPU check: ${dev:-unknown device}, $(date -u +%Y-%m-%d)"
say ""
say "Kernel checks and bandwidths: gpu_results.md (bench_gpu; failures: $(sed -n 's/^failures: //p' "$out/gpu_results.md" 2>/dev/null))."
grep '^| k[0-9]*_\|^| copy4' "$out/gpu_results.md" 2>/dev/null | grep -i 'GB\|%' | tail -5 >>"$out/results.md"

# the losses of a JSON-lines log, one per line
losses() { sed -n 's/.*"loss": \([^,]*\),.*/\1/p' "$1"; }
peakline() { grep 'peak memory per rank' "$1" | tail -1; }
# measured vs planned MiB from a run's last line -> "measured planned error%"
mem_error() { peakline "$1" | sed -n 's/.*(MiB): \([0-9.]*\).*(planned \([0-9.]*\)).*/\1 \2/p' |
  awk '{ printf "%.1f MiB measured, %.1f MiB planned (%+.1f%%)", $1, $2, 100 * ($1 - $2) / $2 }'; }

# 2. tiny models, fp32, GPU vs CPU
"$sbpc" import hf "$src/tests/data/hf/tiny-llama.json" -o "$out/tiny-llama.sbp" >>"$log" 2>&1
say ""
say "## Tiny models, fp32, 1 GPU vs the CPU executor, 10 steps (limit 1e-4 relative)"
say ""
say "| model | max rel. loss difference | step-10 loss GPU / CPU | device memory | |"
say "|---|---|---|---|---|"
for m in "$src/examples/tiny-gpt2.sbp" "$out/tiny-llama.sbp"; do
  n=$(basename "$m" .sbp)
  d=$out/$n-f32
  "$sbpc" compile "$m" --device cuda --precision f32 -o "$d" >>"$log" 2>&1 || { say "| $n | compile failed | | | FAIL |"; fail=1; continue; }
  timeout 60 "$sbpc" run "$d" --device cuda --steps 10 --log "$out/$n-gpu.jsonl" >"$out/$n-gpu.out" 2>&1
  timeout 120 "$sbpc" run "$d" --device cpu --steps 10 --log "$out/$n-cpu.jsonl" >"$out/$n-cpu.out" 2>&1
  r=$(paste <(losses "$out/$n-gpu.jsonl") <(losses "$out/$n-cpu.jsonl") |
    awk 'NF == 2 { e = ($1 - $2) / ($2 < 0 ? -$2 : $2); e = e < 0 ? -e : e; if (e > m) m = e; n++; a = $1; b = $2 }
         END { if (n != 10) print "missing"; else printf "%.2e %s %s", m, a, b }')
  ok=$(echo "$r" | awk '$1 != "missing" && $1 + 0 <= 1e-4 { print "ok" }')
  [ "$ok" = ok ] || fail=1
  say "| $n | ${r%% *} | $(echo "$r" | cut -s -d' ' -f2-3 | tr ' ' /) | $(mem_error "$out/$n-gpu.out") | ${ok:-FAIL} |"
done

# 3. GPT-2 small, bf16
d=$out/gpt2-bf16
say ""
say "## GPT-2 small, bf16, 1 GPU, batch 8 x 1024 tokens, 20 steps"
say ""
if "$sbpc" compile "$src/examples/gpt2.sbp" --device cuda --precision bf16 -o "$d" >>"$log" 2>&1 &&
  timeout 150 "$sbpc" run "$d" --device cuda --steps 20 --log "$out/gpt2-gpu.jsonl" >"$out/gpt2-gpu.out" 2>&1; then
  tps=$(sed -n 's/.*"tokens_per_s": \([0-9.]*\).*/\1/p' "$out/gpt2-gpu.jsonl" | tail -n +6 | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  params=$(python3 -c "import json,sys,math; p=json.load(open('$d/program.json')); print(sum(math.prod(q['shape']) for q in p['params']))" 2>/dev/null || echo 124439808)
  flops_tok=$(awk -v p="$params" 'BEGIN { printf "%.6g", 6 * p + 12 * 12 * 768 * 1024 }')
  case "$dev" in *H100*PCIe*) peak=756e12 ;; *H100*|*H200*|*H800*|*GH200*) peak=989e12 ;; *A100*) peak=312e12 ;; *) peak=0 ;; esac
  mfu=$(awk -v t="$tps" -v f="$flops_tok" -v p="$peak" 'BEGIN { if (p > 0) printf "%.1f%%", 100 * t * f / p; else print "n/a" }')
  ofg=$(awk -v t="$tps" -v f="$flops_tok" -v g="${gemm:-0}" 'BEGIN { if (g > 0) printf "%.1f%%", 100 * t * f / g; else print "n/a" }')
  say "| first loss | loss at step 20 | tokens/s (median, steps 6-20) | MFU (dense bf16 peak $peak) | of cuBLAS GEMM rate | device memory |"
  say "|---|---|---|---|---|---|"
  say "| $(losses "$out/gpt2-gpu.jsonl" | head -1) | $(losses "$out/gpt2-gpu.jsonl" | tail -1) | $tps | $mfu | $ofg | $(mem_error "$out/gpt2-gpu.out") |"
  grep '^device:' "$out/gpt2-gpu.out" >>"$out/results.md"
else
  say "GPT-2 small bf16: FAILED (see $out/gpt2-gpu.out)"
  fail=1
fi
say ""
say "Wall time of the check: $(($(date +%s) - start)) s."
echo "gpu_check: exit $fail; results in $out/results.md and $out/gpu_results.md"
exit $fail
