#!/usr/bin/env bash
# ex_tools.sh BUILD_DIR — time sbpc's exports, trace and tune on this machine:
# the four exports and the trace of the GPT-3 175B fixture plan (1,024 A100s,
# tests/export/), then `sbpc tune --quick` and a full `sbpc tune`, printing
# their measured rates. Wall times from /usr/bin/time when present, else bash.
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
sbpc=$build/sbpc
plan=$src/tests/export/gpt3-175b-dgx-a100-128.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
t() { # t LABEL CMD...: wall seconds and max RSS
  local label=$1; shift
  if [ -x /usr/bin/time ]; then /usr/bin/time -f "$label: %e s wall, %M KB max RSS" "$@" >/dev/null 2>"$tmp/time" ; tail -1 "$tmp/time"
  else local s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$label: $(echo "$(date +%s.%N) - $s" | bc) s wall"; fi
}
echo "| step | result |"
for f in megatron deepspeed torchtitan dtensor; do t "export $f (gpt3-175b, 1024 devices)" "$sbpc" export $f "$plan"; done
t "trace per stage (gpt3-175b, 8 tracks)" "$sbpc" trace "$plan" -o "$tmp/trace.json"
echo "trace size: $(wc -c <"$tmp/trace.json") bytes"
t "tune --quick" "$sbpc" tune --quick -o "$tmp/q.json"
t "tune (full)" "$sbpc" tune -o "$tmp/f.json"
python3 - "$tmp/f.json" <<'PY' 2>/dev/null || true
import json, sys
c = json.load(open(sys.argv[1]))
print("full tune: kernel call %.3g us, copy %.3g GB/s, triad %.3g GB/s, GEMM fit peak %.3g GFLOP/s, half_dim %g" % (
    c["kernel_overhead_s"] * 1e6, c["memory"]["copy_bytes_per_s"] / 1e9, c["memory"]["triad_bytes_per_s"] / 1e9,
    c["gemm"]["fit_peak_flops_per_s"] / 1e9, c["gemm"]["half_dim"]))
for s in c["gemm"]["shapes"]:
    print("  sgemm %dx%dx%d: %.3g GFLOP/s" % (s["m"], s["n"], s["k"], s["flops_per_s"] / 1e9))
PY
