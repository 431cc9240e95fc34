#!/bin/bash
# rt_packed.sh SBPC — packed variable-length batches (`--packed`) and the
# Megatron indexed dataset (issue 17). A corpus of mixed-length documents
# (each ending with the EOS id 0), packed 1-4 to a sample of S+1 = 33
# tokens, 8 samples (the whole corpus every step), tiny GPT-2 and tiny LLaMA:
#  - the same documents packed differently (their order inside each sample
#    reversed, the samples rotated) give the same losses: nothing crosses a
#    document (attention, positions, rotary, labels) and the loss is the
#    mean over predicted tokens wherever a document sits;
#  - packed = the documents trained one at a time in PyTorch with attention
#    masks (tests/lib/torch_packed.py), within 1e-5 (skipped with a note
#    when no python3 imports torch; the rest still runs);
#  - a corpus of one document per sample trains the same packed and not;
#  - dp=2 x 2 micro-batches, pp=2 x 4 micro-batches and sp=2 (Ulysses:
#    attention sees the whole sample's documents) equal 1 rank, and
#    full recompute on the reference kernels equals the default, and a
#    run resumed at step 2 continues with the same losses;
#  - the corpus written by scripts/make_indexed.py (uint16 and int32) trains
#    the same as the flat file: unpacked, and packed with the boundaries
#    from the index instead of --eos;
#  - the program records the decision (layout.packed, attr packed on the
#    ops); refusals: --eos without --packed, --packed without boundaries,
#    --packed with tp=2 or ring attention, and broken indexes (exit 1, a
#    message, no crash).
set -u
SBPC=${1:?usage: rt_packed.sh SBPC}
cd "$(dirname "$0")/.."
. tests/lib/rt.sh
MPIENV="env ASAN_OPTIONS=detect_leaks=0"
"$SBPC" import hf tests/data/hf/tiny-llama.json -o "$T/llama.sbp" >/dev/null || bad "import of the tiny LLaMA"

python3 - "$T" <<'EOF' || bad "making the corpus"
import json, random, struct, sys
T = sys.argv[1]
random.seed(17)
samples = []
for s in range(8):  # a partition of 33 tokens into 1-4 documents of >= 2 tokens
    cuts = sorted(random.sample(range(2, 32), random.randint(0, 3)))
    cuts = [c for i, c in enumerate(cuts) if c - ([0] + cuts)[i] >= 2 and 33 - c >= 2]
    lens = [b - a for a, b in zip([0] + cuts, cuts + [33])]
    samples.append([[random.randint(1, 511) for _ in range(l - 1)] + [0] for l in lens])
def put(name, ss):
    toks = [t for s in ss for d in s for t in d]
    open(T + "/" + name, "wb").write(struct.pack("<%di" % len(toks), *toks))
put("a.bin", samples)
put("b.bin", [list(reversed(s)) for s in samples[3:] + samples[:3]])
json.dump([d for s in samples for d in s], open(T + "/docs.json", "w"))
one = [[[random.randint(1, 511) for _ in range(32)] + [0]] for _ in range(8)]
put("one.bin", one)
print("corpus: %d documents of %s tokens" % (sum(map(len, samples)), sorted({len(d) for s in samples for d in s})))
EOF

# train NAME MODEL ARGS...: 4 steps, log to $T/NAME.jsonl
train() {
  local name=$1 model=$2; shift 2
  "$SBPC" run "$model" --batch 8 --seq 32 --steps 4 --quiet --log "$T/$name.jsonl" "$@" > "$T/$name.out" 2>&1 ||
    bad "run $name: $(why "$T/$name.out")"
}
mtrain() { # mtrain NAME N MODEL ARGS...: the same under mpirun -np N
  local name=$1 n=$2 model=$3; shift 3
  $MPIENV mpirun --oversubscribe -np $n "$SBPC" run "$model" --batch 8 --seq 32 --steps 4 --quiet --log "$T/$name.jsonl" \
    "$@" > "$T/$name.out" 2>&1 || bad "run $name on $n ranks: $(why "$T/$name.out")"
}
check() { # check WHAT A B
  same_losses "$T/$2.jsonl" "$T/$3.jsonl" 1 4 || bad "$1 ($2 vs $3)"
}
differ() { # differ WHAT A B: the first losses must not be equal
  cmp -s <(head -1 "$T/$2.jsonl" | sed 's/"tokens_per_s.*//') <(head -1 "$T/$3.jsonl" | sed 's/"tokens_per_s.*//') &&
    bad "$1: $2 and $3 have the same first loss"
}

for m in gpt2 llama; do
  model=$M
  [ $m = llama ] && model=$T/llama.sbp
  train $m-a "$model" --packed --data "$T/a.bin" --eos 0
  train $m-b "$model" --packed --data "$T/b.bin" --eos 0
  check "$m: packing the documents differently changes the losses" $m-a $m-b
  train $m-b-unpacked "$model" --data "$T/b.bin"
  differ "$m: packing is not in effect" $m-b $m-b-unpacked
  train $m-one "$model" --packed --data "$T/one.bin" --eos 0
  train $m-one-unpacked "$model" --data "$T/one.bin"
  check "$m: one document per sample, packed vs not" $m-one $m-one-unpacked
  "$SBPC" run "$model" --batch 8 --seq 32 --steps 0 --save "$T/$m-init" --quiet > /dev/null 2>&1 || bad "$m: saving the initial weights"
done

train gpt2-rc $M --packed --data "$T/a.bin" --eos 0 --recompute full --kernels ref
check "gpt2: packed with full recompute on the reference kernels vs the default" gpt2-a gpt2-rc
"$SBPC" run $M --batch 8 --seq 32 --steps 2 --quiet --packed --data "$T/a.bin" --eos 0 --save "$T/ck2" > /dev/null 2>&1 ||
  bad "packed: saving at step 2"
train gpt2-resumed $M --packed --data "$T/a.bin" --eos 0 --resume "$T/ck2"
same_losses "$T/gpt2-a.jsonl" "$T/gpt2-resumed.jsonl" 3 2 || bad "packed: resumed at step 2 differs"
mtrain gpt2-dp2 2 $M --packed --data "$T/a.bin" --eos 0 --dp 2 --micro 2
check "gpt2: packed dp=2 x 2 micro-batches vs 1 rank" gpt2-a gpt2-dp2
mtrain llama-pp2 2 "$T/llama.sbp" --packed --data "$T/a.bin" --eos 0 --pp 2 --micro 4
check "llama: packed pp=2 x 4 micro-batches vs 1 rank" llama-a llama-pp2
# Ulysses sp=2: attention (after the all-to-all) sees the whole sample's
# documents, positions and rotary the rank's half with its offset
for m in gpt2 llama; do
  model=$M
  [ $m = llama ] && model=$T/llama.sbp
  "$SBPC" plan "$model" --cluster cpu:2 --batch 8 --seq 32 --precision fp32 --json "$T/$m-sp2.plan.json" \
    --fix sp=2,dp=1,tp=1,pp=1,zero=0,recompute=none > /dev/null 2>&1 || bad "$m: plan sp=2"
  mtrain $m-sp2 2 "$model" --plan "$T/$m-sp2.plan.json" --packed --data "$T/a.bin" --eos 0
  check "$m: packed sp=2 (Ulysses) vs 1 rank" $m-a $m-sp2
done

# the indexed dataset: the same documents, from scripts/make_indexed.py
python3 scripts/make_indexed.py "$T/ix16" --int32 "$T/a.bin" --eos 0 > /dev/null || bad "make_indexed.py (uint16)"
python3 scripts/make_indexed.py "$T/ix32" --int32 "$T/a.bin" --eos 0 --dtype int32 > /dev/null || bad "make_indexed.py (int32)"
od -An -tu1 -j17 -N1 "$T/ix16.idx" | grep -qw 8 || bad "make_indexed.py: ix16 is not uint16 (dtype code 8)"
train gpt2-flat $M --data "$T/a.bin"
train gpt2-ix16 $M --data "$T/ix16"
train gpt2-ix32 $M --data "$T/ix32.idx"
check "indexed (uint16) vs flat, unpacked" gpt2-flat gpt2-ix16
check "indexed (int32) vs flat, unpacked" gpt2-flat gpt2-ix32
train gpt2-ix-packed $M --packed --data "$T/ix16.bin"
check "packed: the index's documents vs --eos" gpt2-a gpt2-ix-packed
train llama-ix-packed "$T/llama.sbp" --packed --data "$T/ix32"
check "llama packed: the index's documents vs --eos" llama-a llama-ix-packed

# the program carries the decision
"$SBPC" compile $M --packed -o "$T/prog" > /dev/null || bad "compile --packed"
python3 - "$T/prog/program.json" <<'EOF' || bad "program.json does not record the packing"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["layout"].get("packed") is True
ops = p["graph"]["ops"]
packed = {o["op"] for o in ops if o.get("attrs", {}).get("packed")}
want = {"positions", "attention", "attention_grad", "cross_entropy", "cross_entropy_grad"}
assert want <= packed, packed
t = p["graph"]["tensors"][next(o for o in ops if o["op"] == "positions")["out"][0]]
assert len(t["shape"]) == 2, t  # per sample: [B, S]
EOF

# refusals
expect() { # expect STATUS WHAT PATTERN CMD...: exit STATUS and PATTERN on stderr
  local st=$1 what=$2 pat=$3; shift 3
  "$@" > "$T/x.out" 2>&1
  local rc=$?
  [ $rc = "$st" ] || bad "$what: exit $rc, expected $st ($(head -2 "$T/x.out"))"
  grep -q "$pat" "$T/x.out" || bad "$what: no '$pat' in: $(head -2 "$T/x.out")"
}
expect 1 "--eos without --packed" "needs a program compiled with --packed" "$SBPC" run $M --data "$T/a.bin" --eos 0 --steps 1
expect 1 "--packed without boundaries" "no boundaries" "$SBPC" run $M --packed --data "$T/a.bin" --steps 1
expect 1 "--packed with tp=2" "tensor parallelism" "$SBPC" compile $M --packed --tp 2 -o "$T/tp2"
expect 1 "--packed with ring attention" "ring attention" "$SBPC" compile $M --packed --plan "$T/gpt2-sp2.plan.json" \
  --sp-kind ring -o "$T/ring2"
expect 1 "--eos with an indexed dataset" "has its own documents" "$SBPC" run $M --packed --data "$T/ix16" --eos 0 --steps 1
expect 1 "--eos outside the vocabulary" "outside the vocabulary" "$SBPC" run $M --packed --data "$T/a.bin" --eos 512 --steps 1
python3 - "$T" <<'EOF' || bad "making broken indexes"
import shutil, struct, sys
T = sys.argv[1]
idx, b = open(T + "/ix16.idx", "rb").read(), open(T + "/ix16.bin", "rb").read()
n = struct.unpack("<Q", idx[18:26])[0]
def put(name, i, bb=b):
    open(T + "/" + name + ".idx", "wb").write(i)
    open(T + "/" + name + ".bin", "wb").write(bb)
put("magic", b"MMIDIDY" + idx[7:])
put("version", idx[:9] + struct.pack("<Q", 2) + idx[17:])
put("float", idx[:17] + bytes([7]) + idx[18:])
put("code", idx[:17] + bytes([9]) + idx[18:])
put("count", idx[:18] + struct.pack("<Q", 1 << 60) + idx[26:])
put("short", idx[:-3])
put("tiny", idx[:20])
put("long", idx + b"\0" * 5)
put("pointer", idx[:34 + 4 * n + 8] + struct.pack("<q", 7) + idx[34 + 4 * n + 16:])
put("length", idx[:34] + struct.pack("<i", -5) + idx[38:])
put("docs", idx[:-8] + struct.pack("<q", n + 1))
put("bin", idx, b[:-2])
put("binlong", idx, b + b"\0\0")
EOF
for x in magic:MMIDIDX version:version float:float32 code:"dtype code 9" count:"do not fit" short:"do not fit" long:"the header describes" tiny:"shorter than the index header" \
         pointer:"follow each other" length:"length -5" docs:"document indices" bin:"ends past them" binlong:"the index describes"; do
  expect 1 "broken index ${x%%:*}" "${x#*:}" "$SBPC" run $M --data "$T/${x%%:*}" --steps 1
done

# packed vs the documents one at a time in PyTorch
. tests/lib/torch_python.sh
if [ -n "$PY" ]; then
  for m in gpt2 llama; do
    "$PY" tests/lib/torch_packed.py $m "$T/$m-init" "$T/docs.json" "$T/$m-torch.jsonl" 4 || bad "$m: the PyTorch run"
    same_losses "$T/$m-a.jsonl" "$T/$m-torch.jsonl" 1 4 || bad "$m: packed differs from one document at a time (PyTorch)"
    paste -d' ' <(sed 's/, "tokens_per_s.*//' "$T/$m-a.jsonl") <(sed 's/.*"loss": //' "$T/$m-torch.jsonl") | sed "s/^/$m packed vs torch: /"
  done
else
  echo "note: no python3 imports torch here; the PyTorch comparison did not run"
fi
[ $fail = 0 ] && echo "rt_packed: all checks passed"
exit $fail
