#!/bin/bash
# rt_layouts.sh SBPC — every layout the planner emits runs (issue 17).
# The tiny GPT-2 and the tiny LLaMA (imported from tests/data/hf), both with
# 4 layers so that pp=2 x vpp=2 has a layer per virtual stage, are planned
# with `sbpc plan --fix` and compiled for:
#   zero3   dp=2, zero=3 (parameters sharded at rest, fetched per pass)
#   vpp2    pp=2, vpp=2, 4 micro-batches (interleaved 1F1B)
#   sp2     sp=2, Ulysses (all-to-alls around attention, forward and backward)
#   sp2dp2  sp=2 x dp=2 (the gradients reduced over the 4 ranks), GPT-2 only
# and each program trained 3 steps under mpirun: the losses equal the 1-rank
# run's within 1e-5. The programs say what they run: ZeRO-3 holds parameter
# slices and fetch actors; vpp=2 puts layers 0 and 2 on stage 0 and 1 and 3
# on stage 1 and its schedule runs micro-batch 0's second chunk before
# micro-batch 2's first (Megatron's interleaved order); sp=2 records
# "ulysses", holds S/2 tokens per sample, and every attention (and its
# gradient) sits between all-to-alls on the sp group (mesh axis 1).
set -u
SBPC=${1:?usage: rt_layouts.sh SBPC}
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
. tests/lib/rt.sh
MPIENV="env ASAN_OPTIONS=detect_leaks=0"

mkdir -p "$T/src"
sed 's/L = 2 }/L = 4 }/' $M > "$T/src/gpt2.sbp"
sed 's/"num_hidden_layers": 2/"num_hidden_layers": 4/' tests/data/hf/tiny-llama.json > "$T/llama4.json"
"$SBPC" import hf "$T/llama4.json" -o "$T/src/llama.sbp" >/dev/null || bad "import of the tiny LLaMA failed"

# compile NAME MODEL N FIX: plan for cpu:N with FIX (batch 16 x seq 32), compile into $T/NAME
compile() {
  local name=$1 model=$2 n=$3 fix=$4
  "$SBPC" plan "$model" --cluster cpu:$n --batch 16 --seq 32 --precision fp32 --fix "$fix,recompute=none" \
    --json "$T/$name.plan.json" >/dev/null 2>"$T/$name.plan.err" || { bad "plan $name ($fix): $(grep error "$T/$name.plan.err")"; return; }
  "$SBPC" compile "$model" --plan "$T/$name.plan.json" -o "$T/$name" >/dev/null || bad "compile $name"
}
# run NAME N: train program NAME on N ranks, log to $T/NAME.jsonl
run() {
  local name=$1 n=$2
  $MPIENV mpirun --oversubscribe -np $n "$SBPC" run "$T/$name" --data $D --steps 3 --log "$T/$name.jsonl" --quiet \
    > "$T/$name.out" 2>&1 || bad "run $name on $n ranks: $(grep error "$T/$name.out" | head -2)"
}

layouts="zero3:2:dp=2,tp=1,pp=1,zero=3 vpp2:2:pp=2,dp=1,tp=1,vpp=2,mbs=4,zero=0 sp2:2:sp=2,dp=1,tp=1,pp=1,zero=0"
for model in gpt2 llama; do
  compile $model-one "$T/src/$model.sbp" 1 dp=1,tp=1,pp=1,zero=0
  run $model-one 1
  for l in $layouts; do
    IFS=: read -r name n fix <<< "$l"
    compile $model-$name "$T/src/$model.sbp" $n "$fix"
    run $model-$name $n
    same_losses "$T/$model-one.jsonl" "$T/$model-$name.jsonl" 1 3 || bad "$model $name: losses differ from 1 rank"
  done
done
compile gpt2-sp2dp2 "$T/src/gpt2.sbp" 4 sp=2,dp=2,tp=1,pp=1,zero=0
run gpt2-sp2dp2 4
same_losses "$T/gpt2-one.jsonl" "$T/gpt2-sp2dp2.jsonl" 1 3 || bad "gpt2 sp2dp2: losses differ from 1 rank"

python3 - "$T" <<'PY' || bad "a program does not hold the layout it was planned for"
import json, sys
T = sys.argv[1]
for model in ("gpt2", "llama"):
    z = json.load(open(T + "/%s-zero3/program.json" % model))
    assert z["layout"]["zero"] == 3
    st = z["stages"][0]
    assert any(a["kind"] == "fetch" for a in st["actors"]), "no fetch actor"
    numel = lambda t: eval("*".join(map(str, z["graph"]["tensors"][t]["shape"])) or "1")
    for q in st["persistent"]:
        if q["role"] == "param":
            assert q["bytes"] <= 4 * ((numel(q["tensor"]) + 1) // 2), q
    v = json.load(open(T + "/%s-vpp2/program.json" % model))
    assert v["layout"]["vpp"] == 2 and v["layout"]["pp"] == 2
    ops = v["graph"]["ops"]
    where = {}
    for o in ops:
        if "at" in o and not o.get("backward"):
            where.setdefault(o["at"][1], set()).add((o["stage"], o.get("chunk", 0)))
    assert where == {0: {(0, 0)}, 1: {(1, 0)}, 2: {(0, 1)}, 3: {(1, 1)}}, where
    st = v["stages"][0]
    first = {}
    for i, (a, m) in enumerate(st["schedule"]):
        act = st["actors"][a]
        if act["kind"] == "compute" and not ops[act["op"]].get("backward"):
            first.setdefault((ops[act["op"]].get("chunk", 0), m), i)
    assert first[(1, 0)] < first[(0, 2)], "stage 0 does not interleave its chunks"
    s = json.load(open(T + "/%s-sp2/program.json" % model))
    assert s["layout"]["sp"] == 2 and s["layout"]["sp_kind"] == "ulysses", s["layout"]
    ops, ts = s["graph"]["ops"], s["graph"]["tensors"]
    ids = [t for t in ts if t["name"] == "ids"][0]
    assert ids["shape"][1] * 2 == s["seq"], (ids["shape"], s["seq"])
    for k, o in enumerate(ops):
        if o["op"] in ("attention", "attention_grad"):
            for t in o["in"]:
                p = [j for j, q in enumerate(ops) if t in q["out"]][0]
                assert ops[p]["op"] == "all_to_all" or (o["op"] == "attention_grad" and ops[p]["op"] == "attention"), (o["op"], ops[p]["op"])
            for t in o["out"]:
                assert all(q["op"] == "all_to_all" for q in ops if t in q["in"] and q["op"] != "attention_grad"), o["op"]
    a2a = [o for o in ops if o["op"] == "all_to_all"]
    st = s["stages"][0]
    assert a2a and all(st["actors"][i]["kind"] == "coll" for i, a in enumerate(st["actors"]) if "op" in a and ops[a["op"]]["op"] == "all_to_all")
print("zero3, vpp2 and sp2 programs hold their layouts")
PY
[ $fail = 0 ] && echo "rt_layouts: all passed"
exit $fail
