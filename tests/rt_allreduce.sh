#!/bin/bash
# rt_allreduce.sh SBPC — ZeRO-0 and ZeRO-1's data-parallel gradient
# all-reduce in `sbpc run` (docs/runtime.md): each bucket is reduce-scattered
# and all-gathered by pairwise exchanges in place in its accumulators, each
# slice summed by its one owner in member order, so the losses are 1 rank's
# (1e-5 relative) under dp=2, dp=3 (slices of unequal length), dp=4 (three
# peers per exchange, oversubscribed) and dp=2 x pp=2 (several buckets: the
# tied embedding's own, whose phases interleave with the others'), for
# ZeRO-0 and ZeRO-1 alike; the trace shows the dp all-reduce and no
# reduce-scatter. Needs mpirun (skipped, exit 77, without it).
set -u
SBPC=${1:?usage: rt_allreduce.sh SBPC}
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "no mpirun: skipped"; exit 77; }
. tests/lib/rt.sh

"$SBPC" run $M --data $D --steps 4 --quiet --log "$T/one.jsonl" || bad "1-rank run failed"
"$SBPC" run $M --data $D --steps 4 --batch 6 --quiet --log "$T/one6.jsonl" || bad "1-rank batch 6 run failed"
for z in 0 1; do
  runn 2 --steps 4 --dp 2 --zero $z --log "$T/dp2_$z.jsonl" --trace "$T/trace$z.json" || bad "dp=2 ZeRO-$z failed"
  same_losses "$T/one.jsonl" "$T/dp2_$z.jsonl" 1 4 || bad "dp=2 ZeRO-$z: losses differ from 1 rank"
  grep -q '"all_reduce (dp)"' "$T/trace$z.json" || bad "ZeRO-$z trace has no dp all-reduce"
  grep -q '"reduce_scatter (dp)"' "$T/trace$z.json" && bad "ZeRO-$z trace reduce-scatters per micro-batch"
  runn 3 --steps 4 --batch 6 --micro 2 --dp 3 --zero $z --log "$T/dp3_$z.jsonl" || bad "dp=3 ZeRO-$z failed"
  same_losses "$T/one6.jsonl" "$T/dp3_$z.jsonl" 1 4 || bad "dp=3 ZeRO-$z (unequal slices): losses differ from 1 rank"
  runn 4 --steps 4 --dp 4 --zero $z --log "$T/dp4_$z.jsonl" || bad "dp=4 ZeRO-$z failed"
  same_losses "$T/one.jsonl" "$T/dp4_$z.jsonl" 1 4 || bad "dp=4 ZeRO-$z: losses differ from 1 rank"
  runn 4 --steps 4 --dp 2 --pp 2 --micro 2 --zero $z --log "$T/pp_$z.jsonl" || bad "dp=2 x pp=2 ZeRO-$z failed"
  same_losses "$T/one.jsonl" "$T/pp_$z.jsonl" 1 4 || bad "dp=2 x pp=2 ZeRO-$z: losses differ from 1 rank"
done
[ $fail = 0 ] && echo "rt_allreduce: ok"
exit $fail
