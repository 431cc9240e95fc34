#!/usr/bin/env bash
# plan_mem.sh SBPC — the planner's memory model tracks the compiled program
# (issue 16): for several fixed layouts of the tiny GPT-2 (tp, dp, pp, ZeRO-2)
# and of an imported tiny LLaMA, `sbpc plan --fix` predicts a per-rank peak
# (predicted.memory_per_device_bytes) and `sbpc compile` of that plan plans
# one (program.json's predicted_peak_bytes: arena + persistent tensors,
# lower/arena.c). Both are deterministic; they must agree within 10%.
set -u
sbpc=${1:?usage: plan_mem.sh SBPC}
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src" || exit 1
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
"$sbpc" import hf tests/data/hf/tiny-llama.json -o "$tmp/llama.sbp" >/dev/null 2>&1 || { echo "FAIL: import tiny-llama"; fail=1; }

# compare MODEL FIX: plan, compile, compare the two peaks
compare() {
  local d="$tmp/$2"
  mkdir -p "$d"
  if ! "$sbpc" plan "$1" --cluster cpu:2 --seq 32 --batch 8 --fix "$2" --json "$d/p.json" >"$d/out" 2>&1; then
    echo "FAIL: plan $1 $2: $(tail -1 "$d/out")"; fail=1; return
  fi
  if ! "$sbpc" compile "$1" --plan "$d/p.json" --seq 32 --batch 8 -o "$d/D" >"$d/out" 2>&1; then
    echo "FAIL: compile $1 $2: $(tail -1 "$d/out")"; fail=1; return
  fi
  local pred planned
  pred=$(jq .predicted.memory_per_device_bytes "$d/p.json")
  planned=$(jq .predicted_peak_bytes "$d/D/program.json")
  if ! awk -v a="$pred" -v b="$planned" 'BEGIN { d = (a - b) / b; exit !(b > 0 && d <= 0.10 && d >= -0.10) }'; then
    echo "FAIL: $1 $2: predicted $pred bytes, planned $planned (more than 10% apart)"; fail=1
  else
    echo "ok: $1 $2: predicted $pred planned $planned"
  fi
}

for fix in tp=2,dp=1,pp=1,mbs=8 tp=2,dp=1,pp=1,mbs=4 tp=1,dp=2,pp=1,mbs=4 tp=1,dp=2,pp=1,mbs=2 \
           tp=1,dp=1,pp=2,mbs=2 tp=1,dp=1,pp=2,mbs=4; do
  compare examples/tiny-gpt2.sbp "$fix,zero=0,recompute=none"
done
compare examples/tiny-gpt2.sbp tp=1,dp=2,pp=1,mbs=4,zero=2,recompute=none
[ -f "$tmp/llama.sbp" ] && for fix in tp=2,dp=1,pp=1,mbs=8 tp=1,dp=1,pp=2,mbs=2; do
  compare "$tmp/llama.sbp" "$fix,zero=0,recompute=none"
done
exit $fail
