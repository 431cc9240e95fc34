#!/bin/bash
# rt_program.sh SBPC — one compiled program (issue 11): what `sbpc plan`
# decided is what `sbpc run` executes, from the program alone.
#  1. the tiny GPT-2 and a tiny LLaMA imported from a Hugging Face config
#     (no @ hints: every layout is the planner's) are planned and compiled for
#     1 rank, tp=2, dp=2, pp=2 (2 micro-batches) and dp=2 x tp=2; each DIR is
#     moved elsewhere and the model source deleted before `mpirun sbpc run
#     DIR`; every layout's 5 losses equal the 1-rank run's within 1e-5, and
#     the 1-rank LLaMA equals PyTorch's within 1e-4 (when torch imports);
#  2. the LLaMA under the planner's tp=2 layout: every parameter the plan
#     splits (at batch 16 x seq 32: the embedding and lm_head, vocabulary- and
#     hidden-split) is stored split in the program, and at batch 16 x seq 64
#     (where the planner splits the batch over the tp pair and keeps the
#     small weights whole) the measured peak per rank is at most 0.65 x the
#     1-rank peak (the activations halve; the weights' partial-sum gradients
#     are summed over tp once per step, whose receive buffer is half their
#     0.6 MiB bucket: 8.7 of 14.4 MiB, 8.4 before that buffer existed), and
#     the program sums them by a tp_reduce actor, none per micro-batch, its
#     planned peak the measured one;
#  3. the executor runs no compiler pass: `sbpc run DIR` works with the
#     program alone (no plan.json, no source, no actors.json).
set -u
SBPC=${1:?usage: rt_program.sh SBPC}
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 77; }
. tests/lib/rt.sh
MPIENV="env ASAN_OPTIONS=detect_leaks=0"

mkdir -p "$T/src"
"$SBPC" import hf tests/data/hf/tiny-llama.json -o "$T/src/llama.sbp" >/dev/null || bad "import of the tiny LLaMA failed"
cp $M "$T/src/gpt2.sbp"

# compile NAME MODEL N FIX BATCH SEQ: plan for cpu:N with FIX, compile into
# $T/NAME.dir, then move it to $T/moved/NAME (the source is deleted later)
compile() {
  local name=$1 model=$2 n=$3 fix=$4 batch=$5 seq=$6
  "$SBPC" plan "$model" --cluster cpu:$n --batch $batch --seq $seq --precision fp32 \
    --fix "$fix,recompute=none,zero=0" --json "$T/$name.plan.json" >/dev/null || { bad "plan $name ($fix)"; return; }
  "$SBPC" compile "$model" --plan "$T/$name.plan.json" -o "$T/$name.dir" >/dev/null || { bad "compile $name"; return; }
  mkdir -p "$T/moved" && mv "$T/$name.dir" "$T/moved/$name"
}
# run NAME N [FLAGS...]: train the moved program on N ranks, log to $T/NAME.jsonl
run() {
  local name=$1 n=$2; shift 2
  $MPIENV mpirun --oversubscribe -np $n "$SBPC" run "$T/moved/$name" --data $D --steps 5 --log "$T/$name.jsonl" "$@" \
    > "$T/$name.out" 2>&1 || { bad "run $name on $n ranks: $(why "$T/$name.out")"; return; }
}

layouts="tp2:2:tp=2,dp=1,pp=1 dp2:2:dp=2,tp=1,pp=1 pp2:2:pp=2,dp=1,tp=1,mbs=8 dp2tp2:4:dp=2,tp=2,pp=1"
for model in gpt2 llama; do
  compile $model-one "$T/src/$model.sbp" 1 dp=1,tp=1,pp=1 16 32
  for l in $layouts; do
    IFS=: read -r name n fix <<< "$l"
    compile $model-$name "$T/src/$model.sbp" $n "$fix" 16 32
  done
done
compile llama-big-one "$T/src/llama.sbp" 1 dp=1,tp=1,pp=1 16 64
compile llama-big-tp2 "$T/src/llama.sbp" 2 tp=2,dp=1,pp=1 16 64
rm -rf "$T/src" # from here on, the programs alone

for model in gpt2 llama; do
  run $model-one 1
  for l in $layouts; do
    IFS=: read -r name n fix <<< "$l"
    run $model-$name $n
    same_losses "$T/$model-one.jsonl" "$T/$model-$name.jsonl" 1 5 || bad "$model $name: losses differ from 1 rank"
  done
done
grep -q '"format":"sbpc-program"' "$T/moved/llama-tp2/program.json" || bad "no program.json"
[ "$(ls "$T/moved/llama-tp2")" = "$(printf 'kernels\nprogram.json')" ] || bad "DIR holds more than the program and kernels: $(ls "$T/moved/llama-tp2")"

# 2. the planner's shards are the program's, and the memory falls with them
python3 - "$T/llama-tp2.plan.json" "$T/moved/llama-tp2/program.json" <<'PY' || bad "a parameter the plan splits is not split in the program"
import json, sys
plan, prog = (json.load(open(f)) for f in sys.argv[1:3])
split = {q["name"]: q["split"] for q in prog["params"]}
want = {}
for op in plan["ops"]:
    for name, sbp in zip(op.get("inputs", []), op["in_sbp"]):
        if name in split and sbp[0].startswith("S("):
            want.setdefault(name, set()).add(int(sbp[0][2:-1]))
assert want, "the plan splits no parameter"
for name, axes in want.items():
    if len(axes) == 1:  # every consumer wants the same split: stored that way
        assert split[name] == axes.pop(), (name, split[name])
print("%d parameters split as the plan says" % len(want))
PY
run llama-big-one 1
run llama-big-tp2 2
# the weights' gradients are partial sums over the tp pair (the batch is
# split): summed once per step by a tp_reduce of their bucket, none by a
# per-micro-batch all-reduce in front of its update; planned peak = measured
python3 - "$T/moved/llama-big-tp2/program.json" <<'PY' || bad "partial-sum gradients are not summed once per step"
import json, sys
p = json.load(open(sys.argv[1]))
ops, acts = p["graph"]["ops"], p["stages"][0]["actors"]
made = {t: o for o in ops for t in o["out"]}
summed = {q for a in acts if a["kind"] == "tp_reduce" for q in p["buckets"][a["bucket"]]["params"]}
assert summed, "no tp_reduce actor"
for o in ops:
    if o["op"] == "adamw":
        g = made.get(o["in"][1])
        assert g is None or g["op"] != "all_reduce", "a gradient all-reduced per micro-batch"
for i in summed:
    assert p["params"][i]["grad"] >= 0
print("%d partial-sum gradients summed by %d tp_reduce actors" % (len(summed), sum(a["kind"] == "tp_reduce" for a in acts)))
PY
grep -q 'peak memory per rank (MiB): \([0-9.]*\) \1 (planned \1)' "$T/llama-big-tp2.out" ||
  bad "tp=2 measured peak is not the planned one: $(grep peak "$T/llama-big-tp2.out")"
peak() { sed -n 's/^peak memory per rank (MiB): \([0-9.]*\).*/\1/p' "$1"; }
p1=$(peak "$T/llama-big-one.out") p2=$(peak "$T/llama-big-tp2.out")
echo "tiny LLaMA, batch 16 x seq 64: peak per rank 1 rank $p1 MiB, tp=2 $p2 MiB"
awk -v a="$p1" -v b="$p2" 'BEGIN { exit !(a > 0 && b > 0 && b <= 0.65 * a) }' || bad "tp=2 peak $p2 MiB is more than 0.65 x $p1 MiB"

# the 1-rank LLaMA against PyTorch (Debian's python3-torch; make test installs it)
. tests/lib/torch_python.sh
if [ -n "$PY" ]; then
  "$SBPC" run "$T/moved/llama-one" --data $D --steps 0 --save "$T/init" --quiet || bad "saving the LLaMA's initial weights"
  "$PY" tests/lib/torch_llama.py "$T/init" $D "$T/torch.jsonl" 16 32 || bad "the PyTorch LLaMA run"
  awk 'FNR == 1 { f++ }
       { match($0, /"step": *[0-9]+/); s = substr($0, RSTART + 7, RLENGTH - 7) + 0
         match($0, /"loss": *[-0-9.eE+]+/); l = substr($0, RSTART + 7, RLENGTH - 7) + 0
         if (f == 1) a[s] = l; else b[s] = l }
       END { bad = 0; for (s = 1; s <= 5; s++) { d = a[s] - b[s]; if (d < 0) d = -d
               printf "llama step %d: sbpc %.7f torch %.7f\n", s, a[s], b[s]; if (!(s in b) || d > 1e-4 * a[s]) bad = 1 }
             exit bad }' "$T/llama-one.jsonl" "$T/torch.jsonl" || bad "the tiny LLaMA's losses differ from PyTorch's"
else
  echo "note: no python3 imports torch here; the PyTorch comparison did not run"
fi
[ $fail = 0 ] && echo "rt_program: all passed"
exit $fail
