#!/usr/bin/env bash
# rt_planned.sh SBPC — tensor-parallel layouts a calibrated planner chooses
# run with the 1-rank losses, or are never chosen:
#  1. with tests/data/calib/tiny-gpt2-epyc2.json (written by `sbpc tune
#     --model examples/tiny-gpt2.sbp` on a 2-core AMD EPYC, 2026-12-07) the
#     tiny GPT-2 at batch 32 x seq 32, tp=2 gets a layout in which a
#     replicated weight's gradient is a partial sum over a token split: its
#     update runs where the weight lies (the gradient is all-reduced into it;
#     the lowering refused this layout before, "needs its parameter re-laid
#     out"); 3 steps on 2 ranks equal the 1-rank run within 1e-5;
#  2. at batch 16 the same calibration once chose a fused qkv split by heads
#     through a collective (tests/data/plans/tiny-gpt2-tp2-qkv-boxed.json: a
#     contiguous block of q|k|v columns per rank, which ran with wrong
#     losses once the update was fixed): the lowering refuses that plan
#     (exit 1, naming the attention), and the planner no longer chooses it:
#     its tp=2 plan at batch 16 compiles (the lowering would refuse the
#     boxed one) and equals the 1-rank run within 1e-5.
set -u
SBPC=${1:?usage: rt_planned.sh SBPC}
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
. tests/lib/rt.sh
CAL=tests/data/calib/tiny-gpt2-epyc2.json

# case NAME BATCH: plan tp=2 with the calibration, compile, 3 steps on 2
# ranks against 1 rank with the same micro-batches
case_tp2() {
  local name=$1 batch=$2
  "$SBPC" plan $M --cluster cpu:2 --batch $batch --seq 32 --precision fp32 --calibration $CAL \
    --fix tp=2,dp=1,pp=1,recompute=none,zero=0 --json "$T/$name.json" >"$T/$name.out" 2>&1 || { bad "plan $name: $(why "$T/$name.out")"; return; }
  "$SBPC" compile $M --plan "$T/$name.json" -o "$T/$name" >"$T/$name.out" 2>&1 || { bad "compile $name: $(why "$T/$name.out")"; return; }
  local micro
  micro=$(grep -o '"micro": *[0-9]*' "$T/$name/program.json" | head -1 | grep -o '[0-9]*$')
  env ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -np 2 "$SBPC" run "$T/$name" --data $D --steps 3 --quiet \
    --log "$T/$name.jsonl" >"$T/$name.out" 2>&1 || { bad "run $name on 2 ranks: $(why "$T/$name.out")"; return; }
  "$SBPC" run $M --data $D --batch $batch --seq 32 --micro "$micro" --steps 3 --quiet --log "$T/$name.one.jsonl" \
    >"$T/$name.out" 2>&1 || { bad "1-rank run $name: $(why "$T/$name.out")"; return; }
  same_losses "$T/$name.one.jsonl" "$T/$name.jsonl" 1 3 || bad "$name: tp=2 losses differ from 1 rank"
}
case_tp2 partial-grad 32
case_tp2 batch16 16

"$SBPC" compile $M --plan tests/data/plans/tiny-gpt2-tp2-qkv-boxed.json -o "$T/boxed" >"$T/boxed.out" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "attention.*mix q, k and v" "$T/boxed.out" ||
  bad "a plan splitting qkv by a collective: exit $rc, $(why "$T/boxed.out")"
[ $fail = 0 ] && echo "rt_planned: ok"
exit $fail
