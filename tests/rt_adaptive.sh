#!/bin/bash
# rt_adaptive.sh SBPC — `sbpc run DIR --adaptive-sp` (issue 17): per step the
# batch's documents go to SP groups of any size, as the planner's SP solver
# (the same code as `sbpc sp`) assigns them on rank 0 and broadcasts.
# The corpus tests/data/adaptive/docs.bin is 76 documents whose lengths are
# the first lengths of a long-tailed (log-normal) distribution divided by 128
# and clipped to [2, 32] tokens, each ending with the EOS id 0. The tiny
# GPT-2 is planned for cpu:4 with sp=4 Ulysses (batch 4, seq 32: a rank holds
# 8 tokens per micro-batch, a group of g holds 8g) and compiled with
# --packed --adaptive-sp --micro 8 (at most 8 micro-batches a step):
#  - 5 steps on 4 oversubscribed ranks equal the 1-rank packed run of the
#    same batches (batch 4 x seq 32) within 1e-5, and the log's "groups"
#    show more than one group shape, and a step whose groups differ in size;
#    rank 0 holds fewer communicators than micro-batches ran (cached by
#    membership);
#  - every group of 4 (--sp-degree 4, the static baseline through the same
#    executor) equals it too;
#  - the tiny LLaMA (rotary; 2 kv heads, so groups of 1 and 2) on 2 ranks;
#  - program.json records the decision (layout.adaptive_sp, micro_batch 1);
#  - refusals, exit 1 with a message: --adaptive-sp without --packed, on a
#    plan with dp 2, with ZeRO-2, on a program compiled without it; a group
#    size that cannot hold the batch's longest document (--sp-degree 1) or
#    does not divide the heads (--sp-degree 3).
set -u
SBPC=${1:?usage: rt_adaptive.sh SBPC}
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
. tests/lib/rt.sh
MPIENV="env ASAN_OPTIONS=detect_leaks=0"
DOCS=tests/data/adaptive/docs.bin
"$SBPC" import hf tests/data/hf/tiny-llama.json -o "$T/llama.sbp" >/dev/null || bad "import of the tiny LLaMA"

# plan NAME MODEL N FIX: plan for cpu:N (batch 4 x seq 32) into $T/NAME.json
plan() {
  "$SBPC" plan "$2" --cluster cpu:$3 --batch 4 --seq 32 --precision fp32 --fix "$4,recompute=none" \
    --json "$T/$1.json" > /dev/null 2> "$T/$1.err" || bad "plan $1: $(why "$T/$1.err")"
}
# arun NAME N DIR ARGS...: 5 steps of DIR on N ranks, log to $T/NAME.jsonl
arun() {
  local name=$1 n=$2 dir=$3; shift 3
  $MPIENV mpirun --oversubscribe -np $n "$SBPC" run "$dir" --data $DOCS --eos 0 --steps 5 --quiet \
    --log "$T/$name.jsonl" "$@" > "$T/$name.out" 2>&1 || bad "run $name on $n ranks: $(why "$T/$name.out")"
}
expect() { # expect STATUS WHAT PATTERN CMD...: exit STATUS and PATTERN in the output
  local st=$1 what=$2 pat=$3; shift 3
  "$@" > "$T/x.out" 2>&1
  local rc=$?
  [ $rc = "$st" ] || bad "$what: exit $rc, expected $st ($(grep -m2 error "$T/x.out"))"
  grep -q -- "$pat" "$T/x.out" || bad "$what: no '$pat' in: $(grep -m2 error "$T/x.out")"
}

plan sp4 $M 4 sp=4,dp=1,tp=1,pp=1,zero=0
"$SBPC" compile $M --plan "$T/sp4.json" --packed --adaptive-sp --micro 8 -o "$T/ad4" > /dev/null || bad "compile ad4"
"$SBPC" run $M --batch 4 --seq 32 --steps 5 --packed --data $DOCS --eos 0 --quiet --log "$T/one.jsonl" \
  > "$T/one.out" 2>&1 || bad "the 1-rank packed run: $(why "$T/one.out")"
arun ad 4 "$T/ad4" --adaptive-sp
same_losses "$T/one.jsonl" "$T/ad.jsonl" 1 5 || bad "adaptive SP on 4 ranks differs from the 1-rank packed run"
python3 - "$T/ad.jsonl" <<'EOF' || bad "the log does not show several group shapes"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
shapes = {m for s in steps for m in s["groups"].split(",")}
sizes = lambda m: {p.split("x")[1] for p in m.split("+")}
mixed = [s["step"] for s in steps if len({z for m in s["groups"].split(",") for z in sizes(m)}) > 1]
assert len(shapes) > 1, shapes
assert mixed, "no step runs groups of different sizes: %s" % [s["groups"] for s in steps]
print("adaptive groups per step:", " ".join(s["groups"] for s in steps))
EOF
# communicators: made once per membership, not per micro-batch
$MPIENV mpirun --oversubscribe -np 4 "$SBPC" run "$T/ad4" --adaptive-sp --data $DOCS --eos 0 --steps 5 \
  > "$T/adv.out" 2>&1 || bad "adaptive run (not quiet)"
read -r ran held <<< "$(sed -n 's/^adaptive SP: \([0-9]*\) micro-batches ran; rank 0 holds \([0-9]*\) .*/\1 \2/p' "$T/adv.out")"
[ -n "${held:-}" ] && [ "$held" -ge 1 ] && [ "$held" -lt "$ran" ] ||
  bad "communicators: ${held:-?} held for ${ran:-?} micro-batches ($(grep 'adaptive SP' "$T/adv.out"))"
arun st4 4 "$T/ad4" --sp-degree 4
same_losses "$T/one.jsonl" "$T/st4.jsonl" 1 5 || bad "--sp-degree 4 differs from the 1-rank packed run"
grep -q '"groups": "1x4' "$T/st4.jsonl" || bad "--sp-degree 4 ran other groups: $(head -1 "$T/st4.jsonl")"
# a calibration (here a checked-in one) changes the solver's costs, not the losses
arun adc 4 "$T/ad4" --adaptive-sp --calibration bench/calib/a100-slow-a2a.json
same_losses "$T/one.jsonl" "$T/adc.jsonl" 1 5 || bad "adaptive SP with --calibration differs from the 1-rank packed run"

# the tiny LLaMA on 2 ranks (2 kv heads: groups of 1 and 2)
plan lsp2 "$T/llama.sbp" 2 sp=2,dp=1,tp=1,pp=1,zero=0
"$SBPC" compile "$T/llama.sbp" --plan "$T/lsp2.json" --packed --adaptive-sp --micro 8 -o "$T/lad2" > /dev/null ||
  bad "compile lad2"
"$SBPC" run "$T/llama.sbp" --batch 4 --seq 32 --steps 5 --packed --data $DOCS --eos 0 --quiet --log "$T/lone.jsonl" \
  > "$T/lone.out" 2>&1 || bad "the 1-rank LLaMA run: $(why "$T/lone.out")"
arun lad 2 "$T/lad2" --adaptive-sp
same_losses "$T/lone.jsonl" "$T/lad.jsonl" 1 5 || bad "LLaMA adaptive SP on 2 ranks differs from 1 rank"

python3 - "$T/ad4/program.json" <<'EOF' || bad "program.json does not record --adaptive-sp"
import json, sys
p = json.load(open(sys.argv[1]))
l = p["layout"]
assert l.get("adaptive_sp") is True and l.get("packed") is True and l["sp"] == 4 and l["sp_kind"] == "ulysses", l
assert l["micro"] == 8 and p["micro_batch"] == 1 and p["global_batch"] == 4, (l, p["micro_batch"])
EOF

# refusals
expect 1 "--adaptive-sp without --packed" "needs --packed" "$SBPC" compile $M --plan "$T/sp4.json" --adaptive-sp -o "$T/x1"
plan sp2dp2 $M 4 sp=2,dp=2,tp=1,pp=1,zero=0
expect 1 "--adaptive-sp with dp 2" "whose sp is the world" "$SBPC" compile $M --plan "$T/sp2dp2.json" --packed \
  --adaptive-sp -o "$T/x2"
expect 1 "--adaptive-sp with ZeRO-2" "ZeRO 0 or 1" "$SBPC" compile $M --plan "$T/sp4.json" --packed --adaptive-sp \
  --zero 2 -o "$T/x3"
"$SBPC" compile $M --plan "$T/sp4.json" --packed --micro 4 -o "$T/plain4" > /dev/null || bad "compile plain4"
expect 1 "--adaptive-sp on a program without it" "not compiled with --adaptive-sp" $MPIENV mpirun --oversubscribe \
  -np 4 "$SBPC" run "$T/plain4" --adaptive-sp --data $DOCS --eos 0 --steps 1
expect 1 "a document longer than a group of 1 holds" "does not fit a group of 1" $MPIENV mpirun --oversubscribe \
  -np 4 "$SBPC" run "$T/ad4" --sp-degree 1 --data $DOCS --eos 0 --steps 1
expect 1 "--sp-degree 3 on 4 heads" "does not tile" $MPIENV mpirun --oversubscribe -np 4 "$SBPC" run "$T/ad4" \
  --sp-degree 3 --data $DOCS --eos 0 --steps 1
echo '{"format": "sbpc-calibration", "version": 99}' > "$T/bad-calib.json"
expect 1 "a bad calibration" "bad-calib.json" $MPIENV mpirun --oversubscribe -np 4 "$SBPC" run "$T/ad4" \
  --adaptive-sp --calibration "$T/bad-calib.json" --data $DOCS --eos 0 --steps 1
[ $fail = 0 ] && echo "rt_adaptive: all checks passed"
exit $fail
