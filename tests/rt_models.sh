#!/bin/bash
# rt_models.sh SBPC — `sbpc run` on models other than tiny-gpt2:
#  1. a model whose inputs are not what the token loader feeds (labels i32[B],
#     tests/data/rt/labels-per-sample.sbp) is refused before any step, exit 1,
#     naming the input;
#  2. tensor parallelism on a layout tiny-gpt2 does not reach
#     (tests/data/rt/tp-batch-split.sbp: batch-split block, partial loss, an
#     S(0) -> P(sum) boxing in the backward): tp=2 gives the 1-rank losses
#     within 1e-5 relative with the JIT kernels and with the reference
#     kernels, and so does dp=2 x tp=2 (mpirun only).
set -u
SBPC=${1:?usage: rt_models.sh SBPC}
cd "$(dirname "$0")/.."
. tests/lib/rt.sh
M=tests/data/rt/tp-batch-split.sbp
MPIENV="env ASAN_OPTIONS=detect_leaks=0"
run=(--data $D --batch 4 --seq 16 --steps 3 --quiet)

"$SBPC" run tests/data/rt/labels-per-sample.sbp "${run[@]}" > "$T/lab.out" 2>&1
[ $? = 1 ] || bad "labels i32[B]: not refused with exit 1"
grep -q "input 'labels' is i32\[B\]" "$T/lab.out" || bad "labels i32[B]: message does not name the input: $(cat "$T/lab.out")"
grep -q "^step" "$T/lab.out" && bad "labels i32[B]: a step ran"
command -v mpirun >/dev/null || { echo "no mpirun: tp checks skipped"; exit $fail; }

"$SBPC" run $M "${run[@]}" --log "$T/one.jsonl" || bad "1-rank run failed"
for k in jit ref; do
  mpirun -np 2 $MPIENV "$SBPC" run $M "${run[@]}" --tp 2 --kernels $k --log "$T/tp-$k.jsonl" ||
    bad "tp=2 --kernels $k failed"
  same_losses "$T/one.jsonl" "$T/tp-$k.jsonl" 1 3 || bad "tp=2 --kernels $k: losses differ from 1 rank"
done
mpirun -np 4 $MPIENV "$SBPC" run $M "${run[@]}" --tp 2 --dp 2 --log "$T/dptp.jsonl" || bad "dp=2 x tp=2 failed"
same_losses "$T/one.jsonl" "$T/dptp.jsonl" 1 3 || bad "dp=2 x tp=2: losses differ from 1 rank"
[ $fail = 0 ] && echo "rt_models: ok"
exit $fail
