#!/usr/bin/env bash
# cg_compile.sh SBPC — `sbpc compile` end to end on examples/gpt2.sbp with a
# plan from `sbpc plan`: the program, kernels, PTX and manifest are written; a second run is served from the
# cache; a corrupted cache entry is detected and rebuilt; every generated
# .ptx assembles with ptxas for its architecture (skipped without ptxas);
# without NVRTC (SBPC_NVRTC=none) the .cu files are still written.
set -u
sbpc=${1:?usage: cg_compile.sh SBPC}
src=${SBPC_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export SBPC_CACHE_DIR="$tmp/cache"
fail() { echo "FAIL: $*"; exit 1; }

# a real plan: 1 CPU device, batch 8 of 256 tokens in micro-batches of 2
"$sbpc" plan "$src/examples/gpt2.sbp" --cluster cpu:1 --batch 8 --seq 256 --fix mbs=2 --json "$tmp/plan.json" > /dev/null \
  || fail "sbpc plan"
"$sbpc" compile "$src/examples/gpt2.sbp" --plan "$tmp/plan.json" -o "$tmp/out" > "$tmp/log1" 2>&1 \
  || { cat "$tmp/log1"; fail "first compile"; }
cat "$tmp/log1"
k=$(sed -n 's/^kernels: \([0-9]*\) .*/\1/p' "$tmp/log1")
[ -n "$k" ] && [ "$k" -ge 8 ] || fail "expected at least 8 kernels"
grep -q "kernels: $k (0 from cache)" "$tmp/log1" || fail "first run should build every kernel"
[ -f "$tmp/out/kernels/manifest.json" ] || fail "no manifest"
[ -f "$tmp/out/program.json" ] || fail "no program.json"
grep -q '"micro":4' "$tmp/out/program.json" || fail "the program is not the plan's 4 micro-batches"
[ "$(ls "$tmp/out/kernels"/*.cu | wc -l)" -eq "$k" ] || fail ".cu count"
[ -f "$tmp/out/kernels/cpu.ll" ] || fail "no kernels/cpu.ll (the program's fused CPU kernels)"
[ "$(ls "$tmp/out/kernels"/*.ll | grep -vc '/cpu\.ll$')" -eq "$k" ] || fail ".ll count"
grep -q '"fused_ops":[[:space:]]*"bias_add+gelu"' "$tmp/out/kernels/manifest.json" || fail "no bias+gelu kernel"
grep -q '"launch"' "$tmp/out/kernels/manifest.json" || fail "no launch shapes"

"$sbpc" compile "$src/examples/gpt2.sbp" --plan "$tmp/plan.json" -o "$tmp/out2" > "$tmp/log2" 2>&1 || fail "second compile"
grep -q "kernels: $k ($k from cache)" "$tmp/log2" || { cat "$tmp/log2"; fail "second run not from cache"; }
cmp -s "$tmp/out/kernels/manifest.json" "$tmp/out2/kernels/manifest.json" || true

# corrupt one entry: it must be rebuilt, never trusted
victim=$(ls "$tmp/cache"/*.ll | head -1)
printf 'garbage' >> "$victim"
"$sbpc" compile "$src/examples/gpt2.sbp" --plan "$tmp/plan.json" -o "$tmp/out3" > "$tmp/log3" 2>&1 || fail "third compile"
grep -q "kernels: $k ($((k - 1)) from cache)" "$tmp/log3" || { cat "$tmp/log3"; fail "corrupt entry not rebuilt"; }
head -c 20 "$victim" | grep -q '^sbpc-cache 2' || fail "entry not rewritten"

# bad input and usage
"$sbpc" compile "$src/examples/gpt2.sbp" > /dev/null 2>&1; [ $? -eq 2 ] || fail "missing -o should be exit 2"
echo '{not json' > "$tmp/bad.json"
"$sbpc" compile "$src/examples/gpt2.sbp" --plan "$tmp/bad.json" -o "$tmp/o4" > /dev/null 2>&1; [ $? -eq 1 ] || fail "bad plan should be exit 1"

# without NVRTC: the .cu files are written and PTX is said to be skipped
SBPC_NVRTC=none "$sbpc" compile "$src/examples/gpt2.sbp" --plan "$tmp/plan.json" -o "$tmp/o5" > "$tmp/log5" 2>&1 \
  || { cat "$tmp/log5"; fail "compile without NVRTC"; }
grep -q "ptx: skipped" "$tmp/log5" || fail "missing NVRTC not reported"
[ "$(ls "$tmp/o5/kernels"/*.cu | wc -l)" -eq "$k" ] || fail ".cu files without NVRTC"
! ls "$tmp/o5/kernels"/*.ptx > /dev/null 2>&1 || fail "PTX written without NVRTC"

ptxas=${CUDA_HOME:-/usr/local/cuda}/bin/ptxas
if ls "$tmp/out/kernels"/*.ptx > /dev/null 2>&1 && [ -x "$ptxas" ]; then
  n=0
  for p in "$tmp/out/kernels"/*.ptx; do
    arch=$(echo "$p" | sed -n 's/.*\.\(sm_[0-9]*\)\.ptx$/\1/p')
    "$ptxas" -arch="$arch" -o /dev/null "$p" || fail "ptxas $arch $p"
    n=$((n + 1))
  done
  echo "ptxas: $n PTX files assemble (sm_80, sm_90)"
else
  echo "ptxas or NVRTC absent: PTX not checked"
fi
echo "ok"
