#!/bin/bash
# rt_layouts.sh SBPC — every layout the planner emits runs (issue 17).
# The tiny GPT-2 and the tiny LLaMA (imported from tests/data/hf), both with
# 4 layers so that pp=2 x vpp=2 has a layer per virtual stage, are planned
# with `sbpc plan --fix` and compiled for:
#   zero3   dp=2, zero=3 (parameters sharded at rest, fetched per pass)
#   vpp2    pp=2, vpp=2, 4 micro-batches (interleaved 1F1B)
#   sp2     sp=2, Ulysses (all-to-alls around attention, forward and backward)
#   sp2ring sp=2, ring attention (`sbpc compile --sp-kind ring`)
#   sp2dp2  sp=2 x dp=2 (the gradients reduced over the 4 ranks), GPT-2 only,
#           Ulysses and ring
#   sp4ring sp=4 ring, LLaMA only (4 members on its 2 kv heads)
# and each program trained 3 steps under mpirun: the losses equal the 1-rank
# run's within 1e-5. The programs say what they run: ZeRO-3 holds parameter
# slices and fetch actors; vpp=2 puts layers 0 and 2 on stage 0 and 1 and 3
# on stage 1 and its schedule runs micro-batch 0's second chunk before
# micro-batch 2's first (Megatron's interleaved order); sp=2 records
# "ulysses", holds S/2 tokens per sample, and every attention (and its
# gradient) sits between all-to-alls on the sp group (mesh axis 1); the
# ring program records "ring", has no attention and no all-to-all, and per
# layer runs 2 ring_attention steps (the second on the block the first
# step's ring_shift brings, the shift and the step reading the same block,
# so they overlap) and 2 gradient steps, the shifts as coll actors. A plan's
# parallel.sp_kind "ring" compiles to a ring program too, a bad one is
# refused (exit 1), a bad --sp-kind is a usage error (exit 2), and so is
# --sp-kind with a compiled DIR.
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

# compile NAME MODEL N FIX [FLAGS]: plan for cpu:N with FIX (batch 16 x seq 32), compile into $T/NAME
compile() {
  local name=$1 model=$2 n=$3 fix=$4 flags=${5:-}
  "$SBPC" plan "$model" --cluster cpu:$n --batch 16 --seq 32 --precision fp32 --fix "$fix,recompute=none" \
    --json "$T/$name.plan.json" >/dev/null 2>"$T/$name.plan.err" || { bad "plan $name ($fix): $(why "$T/$name.plan.err")"; return; }
  "$SBPC" compile "$model" --plan "$T/$name.plan.json" $flags -o "$T/$name" >/dev/null || bad "compile $name"
}
# run NAME N: train program NAME on N ranks, log to $T/NAME.jsonl
run() {
  local name=$1 n=$2
  $MPIENV mpirun --oversubscribe -np $n "$SBPC" run "$T/$name" --data $D --steps 3 --log "$T/$name.jsonl" --quiet \
    > "$T/$name.out" 2>&1 || bad "run $name on $n ranks: $(why "$T/$name.out")"
}

layouts="zero3:2:dp=2,tp=1,pp=1,zero=3 vpp2:2:pp=2,dp=1,tp=1,vpp=2,mbs=4,zero=0 sp2:2:sp=2,dp=1,tp=1,pp=1,zero=0
  sp2ring:2:sp=2,dp=1,tp=1,pp=1,zero=0:--sp-kind=ring"
for model in gpt2 llama; do
  compile $model-one "$T/src/$model.sbp" 1 dp=1,tp=1,pp=1,zero=0
  run $model-one 1
  for l in $layouts; do
    IFS=: read -r name n fix flags <<< "$l"
    compile $model-$name "$T/src/$model.sbp" $n "$fix" "$flags"
    run $model-$name $n
    same_losses "$T/$model-one.jsonl" "$T/$model-$name.jsonl" 1 3 || bad "$model $name: losses differ from 1 rank"
  done
done
compile gpt2-sp2dp2 "$T/src/gpt2.sbp" 4 sp=2,dp=2,tp=1,pp=1,zero=0
run gpt2-sp2dp2 4
same_losses "$T/gpt2-one.jsonl" "$T/gpt2-sp2dp2.jsonl" 1 3 || bad "gpt2 sp2dp2: losses differ from 1 rank"
compile gpt2-sp2dp2ring "$T/src/gpt2.sbp" 4 sp=2,dp=2,tp=1,pp=1,zero=0 --sp-kind=ring
run gpt2-sp2dp2ring 4
same_losses "$T/gpt2-one.jsonl" "$T/gpt2-sp2dp2ring.jsonl" 1 3 || bad "gpt2 sp2dp2ring: losses differ from 1 rank"
# a ring of 4 on the LLaMA's 2 kv heads (Ulysses needs sp to divide them)
compile llama-sp4ring "$T/src/llama.sbp" 4 sp=4,dp=1,tp=1,pp=1,zero=0 --sp-kind=ring
run llama-sp4ring 4
same_losses "$T/llama-one.jsonl" "$T/llama-sp4ring.jsonl" 1 3 || bad "llama sp4ring: losses differ from 1 rank"

# the plan's sp_kind: "ring" compiles to a ring program, anything else is refused
python3 - "$T" <<'PY'
import json, sys
T = sys.argv[1]
p = json.load(open(T + "/llama-sp2.plan.json"))
for kind in ("ring", "zigzag"):
    p["parallel"]["sp_kind"] = kind
    json.dump(p, open(T + "/llama-%s.plan.json" % kind, "w"))
PY
"$SBPC" compile "$T/src/llama.sbp" --plan "$T/llama-ring.plan.json" -o "$T/llama-planring" >/dev/null || bad "compile a plan with sp_kind ring"
grep -q '"sp_kind": *"ring"' "$T/llama-planring/program.json" || bad "the plan's sp_kind ring is not the program's"
"$SBPC" compile "$T/src/llama.sbp" --plan "$T/llama-zigzag.plan.json" -o "$T/llama-zigzag" >/dev/null 2>"$T/zigzag.err"
[ $? = 1 ] && grep -q "sp_kind" "$T/zigzag.err" || bad "a plan with sp_kind zigzag is not refused: $(cat "$T/zigzag.err")"
"$SBPC" compile "$T/src/llama.sbp" --plan "$T/llama-sp2.plan.json" --sp-kind zigzag -o "$T/x" >/dev/null 2>&1
[ $? = 2 ] || bad "--sp-kind zigzag is not a usage error"
"$SBPC" run "$T/llama-sp2ring" --sp-kind ring --steps 1 >/dev/null 2>&1
[ $? = 2 ] || bad "--sp-kind with a compiled DIR is not a usage error"

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
    r = json.load(open(T + "/%s-sp2ring/program.json" % model))
    assert r["layout"]["sp"] == 2 and r["layout"]["sp_kind"] == "ring", r["layout"]
    ops, ts = r["graph"]["ops"], r["graph"]["tensors"]
    ids = [t for t in ts if t["name"] == "ids"][0]
    assert ids["shape"][1] * 2 == r["seq"], (ids["shape"], r["seq"])
    kinds = [o["op"] for o in ops]
    assert "all_to_all" not in kinds and "attention" not in kinds and "attention_grad" not in kinds, set(kinds)
    assert kinds.count("ring_attention") == 8 and kinds.count("ring_attention_grad") == 8, kinds
    prod = {t: k for k, o in enumerate(ops) for t in o["out"]}
    for k, o in enumerate(ops):
        if o["op"] != "ring_attention":
            continue
        step = o["attrs"].get("n", 0)
        kv = ops[prod[o["in"][1]]]
        assert kv["op"] == ("ring_shift" if step else "concat"), (step, kv["op"])
        if step == 0:  # the shift that brings step 1's block reads this step's block
            assert any(q["op"] == "ring_shift" and q["in"] == [o["in"][1]] for q in ops), "no shift of block 0"
    st = r["stages"][0]
    shifts = [i for i, a in enumerate(st["actors"]) if "op" in a and ops[a["op"]]["op"] == "ring_shift"]
    assert len(shifts) == 16 and all(st["actors"][i]["kind"] == "coll" for i in shifts), len(shifts)
    assert all(ops[st["actors"][i]["op"]]["attrs"]["mesh_axis"] == 1 for i in shifts)
print("zero3, vpp2, sp2 and sp2ring programs hold their layouts")
PY
[ $fail = 0 ] && echo "rt_layouts: all passed"
exit $fail
