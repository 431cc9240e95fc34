#!/usr/bin/env bash
# safety.sh SBPC — issue 13 through the command line (the function-level side
# is tests/unit/test_safety.c). Each block is a hostile input or fault that
# once deleted a user's files, ran an unverified object, trained on garbage
# or aborted; each must now end as stated, before any step where it says so:
#   --save     refuses a folder sbpc did not write (a project, a compiled
#              program, a link at DIR or DIR.partial) and deletes nothing;
#   swap       a save killed between its two renames: --resume recovers from
#              DIR.previous, and the next save cleans up;
#   state      out-of-range numbers in state.json are refused (exit 1);
#   model      a checkpoint of another architecture is refused;
#   seq        --seq beyond the position table is refused;
#   memory     V = 1e10, --seq 65536, llama-7b, sp on 100000 nodes: exit 1
#              with the bytes and the limit; --data/--weights are mapped;
#   cache      a shared cache folder, a foreign entry, a FIFO, a link;
#   low        escaped tensor names, honest messages, HF notes, NaN loss,
#              a full disk during compile;
#   ranks      ranks started with different programs or flags stop before
#              any step (item 6); a plan whose values are not the schema's
#              ("dp": "2", zero 7) and another model's plan are refused by
#              compile and run (item 11 and "another model's plan").
set -u
SBPC=${1:?usage: safety.sh SBPC}
cd "$(dirname "$0")/.."
. tests/lib/rt.sh
export SBPC_CACHE_DIR="$T/cache"
Q="--data $D --quiet"
expect() { # expect RC PATTERN CMD...: exit status RC, PATTERN on stderr, no step line
  local want=$1 pat=$2; shift 2
  timeout 120 "$@" >"$T/out" 2>"$T/err"; local rc=$?
  [ $rc = "$want" ] || bad "'$*' exited $rc, wanted $want: $(head -3 "$T/err")"
  grep -q -- "$pat" "$T/err" || bad "'$*': no '$pat' in: $(head -3 "$T/err")"
  ! grep -q '^step ' "$T/out" || bad "'$*' ran a step"
  ! grep -qE 'Sanitizer|runtime error' "$T/err" || bad "'$*' tripped a sanitizer"
}
asan=0
if grep -qa '__asan_init\|__tsan_init' "$SBPC" 2>/dev/null; then asan=1; fi

# ---- --save ----------------------------------------------------------------
mkdir -p "$T/proj" && echo notes >"$T/proj/notes.txt" && echo code >"$T/proj/train.py"
expect 1 "notes.txt\|train.py" "$SBPC" run $M $Q --steps 1 --save "$T/proj"
[ "$(cat "$T/proj/notes.txt" "$T/proj/train.py")" = "notes
code" ] || bad "--save into a project touched its files"
"$SBPC" compile $M -o "$T/prog" >/dev/null 2>&1 || bad "compile for the --save test"
expect 1 "program.json\|kernels" "$SBPC" run $M $Q --steps 1 --save "$T/prog"
[ -s "$T/prog/program.json" ] && [ -d "$T/prog/kernels" ] || bad "--save into a compiled program deleted its files"
mkdir -p "$T/victim" && echo v >"$T/victim/a" && ln -s "$T/victim" "$T/ckl.partial"
expect 1 "ckl.partial.*symbolic link" "$SBPC" run $M $Q --steps 1 --save "$T/ckl"
[ -f "$T/victim/a" ] || bad "a link at DIR.partial made sbpc delete the target's files"
ln -s "$T/victim" "$T/ck-link"
expect 1 "ck-link.*symbolic link" "$SBPC" run $M $Q --steps 1 --save "$T/ck-link"
[ -f "$T/victim/a" ] || bad "a link at DIR made sbpc delete the target's files"
mkdir -p "$T/empty"
"$SBPC" run $M $Q --steps 2 --save "$T/empty" || bad "--save into an empty folder failed"
[ -f "$T/empty/sbpc-checkpoint" ] || bad "a checkpoint has no marker"
"$SBPC" run $M $Q --steps 3 --resume "$T/empty" --save "$T/empty" || bad "re-saving over an sbpc checkpoint failed"
grep -q '"step": 3' "$T/empty/state.json" || bad "the re-saved checkpoint is not at step 3"
"$SBPC" run $M $Q --steps 1 --save "$T/sl/" && "$SBPC" run $M $Q --steps 2 --resume "$T/sl/" --save "$T/sl//" ||
  bad "--save DIR/ (a trailing slash) failed"
[ -f "$T/sl/state.json" ] && [ ! -e "$T/sl/.partial" ] || bad "--save DIR/ nested its files"
echo mine >"$T/empty/mine.txt"
expect 1 "mine.txt" "$SBPC" run $M $Q --steps 4 --resume "$T/empty" --save "$T/empty"
[ -f "$T/empty/mine.txt" ] || bad "a user's file in a checkpoint was deleted"

# ---- a save killed between its renames ----------------------------------------
"$SBPC" run $M $Q --steps 2 --save "$T/ck" || bad "save failed"
"$SBPC" run $M $Q --steps 5 --log "$T/base.jsonl" || bad "base run failed"
SBPC_TEST_FAULT=swap "$SBPC" run $M $Q --steps 3 --resume "$T/ck" --save "$T/ck" >/dev/null 2>&1
[ ! -e "$T/ck" ] && [ -d "$T/ck.previous" ] || bad "the injected kill did not leave DIR.previous alone"
"$SBPC" run $M $Q --steps 5 --resume "$T/ck" --log "$T/rec.jsonl" 2>"$T/err" || bad "resume after a killed swap failed: $(head -2 "$T/err")"
grep -q "ck.previous" "$T/err" || bad "resume did not say it used DIR.previous"
same_losses "$T/base.jsonl" "$T/rec.jsonl" 3 || bad "losses after recovering from DIR.previous differ"
"$SBPC" run $M $Q --steps 3 --resume "$T/ck" --save "$T/ck" 2>/dev/null || bad "saving after a killed swap failed"
[ -d "$T/ck" ] && [ ! -e "$T/ck.previous" ] && [ ! -e "$T/ck.partial" ] || bad "leftovers after the next save: $(ls "$T")"
expect 1 "no such checkpoint" "$SBPC" run $M $Q --resume "$T/nothing-here"

# ---- state.json numbers --------------------------------------------------------
for bad_state in '"step": 1e300, "data_position": 0' '"step": 0, "data_position": 1e300' \
                 '"step": -1, "data_position": 0' '"step": 1.5, "data_position": 0' '"step": 2, "data_position": "8"'; do
  rm -rf "$T/cs" && cp -r "$T/ck" "$T/cs"
  echo "{\"version\": 1, $bad_state}" >"$T/cs/state.json"
  expect 1 "cs/state.json" "$SBPC" run $M $Q --steps 5 --resume "$T/cs"
done

# ---- a checkpoint of another architecture with the same tensors ----------------
sed 's/f = gelu(\(.*\), approximate="tanh")/f = silu(\1)/' $M >"$T/silu.sbp"
grep -q 'silu(' "$T/silu.sbp" || bad "could not make the silu variant"
expect 1 "another model" "$SBPC" run "$T/silu.sbp" $Q --steps 3 --resume "$T/ck"
"$SBPC" run "$T/silu.sbp" $Q --steps 1 --weights "$T/ck/model.safetensors" || bad "--weights from another model's checkpoint failed"

# ---- --seq beyond the position table -------------------------------------------
expect 1 "sequence length 33.*wpe.weight.*32 rows" "$SBPC" run $M $Q --seq 33 --steps 1
expect 1 "sequence length 1000.*wpe.weight" "$SBPC" run $M --quiet --seq 1000 --batch 2 --steps 1

# ---- memory: estimate before allocating ---------------------------------------
sed 's/V = 512/V = 10000000000/' $M >"$T/v.sbp"
expect 1 "needs [0-9]* bytes.*available" "$SBPC" run "$T/v.sbp" --quiet --steps 1
sed 's/P = 32/P = 65536/' $M >"$T/p.sbp"
expect 1 "needs [0-9]* bytes.*available" "$SBPC" run "$T/p.sbp" --quiet --seq 65536 --steps 1
expect 1 "needs [0-9]* bytes.*available" "$SBPC" run examples/llama-7b.sbp --quiet --steps 1
SBPC_MEMORY_LIMIT=1000000 expect 1 "needs [0-9]* bytes.*1000000 bytes" "$SBPC" run $M $Q --steps 1
SBPC_MEMORY_LIMIT=1000000000 expect 1 "sbpc sp.*needs [0-9]* bytes" "$SBPC" sp examples/gpt3-175b.sbp \
  --cluster dgx-a100:100000 --lengths tests/fuzz/corpus/lengths/bimodal-2000.txt
if [ $asan = 0 ]; then # mapped, not read: a 1 GB input under a 300 MB data limit
  truncate -s 1G "$T/big.bin"
  cp "$T/ck/model.safetensors" "$T/big.safetensors" && truncate -s 1G "$T/big.safetensors"
  (ulimit -d 300000; "$SBPC" run $M --quiet --steps 1 --data "$T/big.bin") >/dev/null 2>"$T/err" || bad "a 1 GB --data file: $(head -2 "$T/err")"
  (ulimit -d 300000; "$SBPC" run $M $Q --steps 1 --weights "$T/big.safetensors") >/dev/null 2>"$T/err" || bad "a 1 GB --weights file: $(head -2 "$T/err")"
  rm -f "$T/big.bin" "$T/big.safetensors"
fi

# ---- the kernel cache ---------------------------------------------------------------
if SBPC_NO_KERNEL_CACHE=1 "$SBPC" run $M $Q --steps 2 --kernels jit --log "$T/nc.jsonl" 2>/dev/null; then
  C=$T/cache
  rm -rf "$C"
  sed 's/eps=1e-5/eps=10/g' $M >"$T/eps.sbp" # the same kernels by name, other code
  "$SBPC" run "$T/eps.sbp" $Q --steps 1 --kernels jit >/dev/null 2>&1 || bad "eps=10 run failed"
  other=$(ls "$C"/*.rtjit.o)
  "$SBPC" run $M $Q --steps 1 --kernels jit >/dev/null 2>&1
  mine=$(ls "$C"/*.rtjit.o | grep -v "$other")
  [ -f "$mine" ] && [ -f "$other" ] || bad "no cache entries: '$mine' '$other'"
  cp "$other" "$mine" # another model's valid object under this model's key
  SBPC_JIT_TIMES=1 "$SBPC" run $M $Q --steps 2 --kernels jit --log "$T/fo.jsonl" 2>"$T/err" || bad "run over a foreign entry failed"
  grep -q "another key" "$T/err" || bad "a foreign cache entry was not reported: $(head -2 "$T/err")"
  same_losses "$T/nc.jsonl" "$T/fo.jsonl" 1 || bad "a foreign cache entry changed the losses"
  rm -f "$mine" && mkfifo "$mine"
  timeout 60 "$SBPC" run $M $Q --steps 1 --kernels jit >/dev/null 2>"$T/err" || bad "a FIFO in the cache: exit $?"
  [ -f "$mine" ] || bad "the FIFO entry was not replaced"
  echo precious >"$T/precious" && rm -f "$mine" && ln -s "$T/precious" "$mine"
  "$SBPC" run $M $Q --steps 1 --kernels jit >/dev/null 2>&1 || bad "a link in the cache failed the run"
  [ "$(cat "$T/precious")" = precious ] || bad "the cache wrote through a planted link"
  rm -rf "$T/shared" && mkdir "$T/shared" && chmod 0777 "$T/shared" && cp "$other" "$T/shared/$(basename "$mine")"
  SBPC_CACHE_DIR="$T/shared" "$SBPC" run $M $Q --steps 2 --kernels jit --log "$T/sh.jsonl" 2>"$T/err" || bad "shared cache run failed"
  grep -q "not private" "$T/err" || bad "a world-writable cache was used: $(head -2 "$T/err")"
  same_losses "$T/nc.jsonl" "$T/sh.jsonl" 1 || bad "a planted entry in a shared cache was loaded"
  [ "$(ls "$T/shared" | wc -l)" = 1 ] || bad "sbpc wrote into a shared cache"
fi

# ---- low: names, messages, notes, NaN, full disk ------------------------------------
python3 - "$T" <<'EOF' 2>/dev/null
import json, struct, sys
t = sys.argv[1]
def st(path, hdr, data):
    h = json.dumps(hdr).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
st(t + '/esc.safetensors', {"\x1b]0;pwned\x07wte": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}, b'\0' * 4)
st(t + '/past.safetensors', {"wte.weight": {"dtype": "F32", "shape": [32768], "data_offsets": [0, 131072]}}, b'\0' * 64)
raw = bytearray(open(t + '/ck/model.safetensors', 'rb').read())
n = struct.unpack('<Q', raw[:8])[0]; o = json.loads(raw[8:8 + n])['ln_f.weight']['data_offsets'][0] + 8 + n
raw[o:o + 4] = struct.pack('<f', float('nan')); open(t + '/nan.safetensors', 'wb').write(raw)
EOF
if [ -f "$T/nan.safetensors" ]; then
  expect 1 'x1b]0;pwned' "$SBPC" run $M $Q --weights "$T/esc.safetensors"
  ! grep -q $'\x1b' "$T/err" || bad "a raw escape byte from a tensor name reached the terminal"
  expect 1 "run past the end of the data (64 bytes)" "$SBPC" run $M $Q --weights "$T/past.safetensors"
  expect 1 "step 1: the loss is NaN" "$SBPC" run $M $Q --steps 3 --weights "$T/nan.safetensors"
fi
expect 2 "run: --steps needs a value" "$SBPC" run $M --steps
printf '512  # a comment\n100\n' >"$T/l1.txt" && printf '512 abc\n' >"$T/l2.txt"
"$SBPC" sp examples/gpt2.sbp --cluster dgx-a100:1 --lengths "$T/l1.txt" >/dev/null 2>&1 || bad "a trailing lengths comment was refused"
expect 1 "l2.txt:1:5: error: unexpected 'abc'" "$SBPC" sp examples/gpt2.sbp --cluster dgx-a100:1 --lengths "$T/l2.txt"
python3 -c "import json; d = json.load(open('tests/data/hf/gpt2.json')); d['scale_attn_weights'] = False
d['scale_attn_by_inverse_layer_idx'] = True; json.dump(d, open('$T/g.json', 'w'))"
"$SBPC" import hf "$T/g.json" -o "$T/g.sbp" 2>"$T/err" || bad "import of gpt2 with unmodelled keys failed"
grep -q 'note: key "scale_attn_weights" is not modelled' "$T/err" && grep -q 'scale_attn_by_inverse_layer_idx" is not modelled' "$T/err" ||
  bad "unmodelled GPT-2 keys imported silently: $(head -2 "$T/err")"
"$SBPC" import hf tests/data/hf/mistral-7b-v0.1.json -o "$T/m.sbp" 2>"$T/err" || bad "mistral import failed"
grep -q 'note: key "sliding_window" is not modelled' "$T/err" || bad "sliding_window imported silently"
(trap '' XFSZ; ulimit -f 8; "$SBPC" compile $M -o "$T/full" >/dev/null 2>"$T/err"); rc=$?
[ $rc = 1 ] || bad "a full disk during compile -o exited $rc, wanted 1: $(head -2 "$T/err")"

# ---- ranks, plans -----------------------------------------------------------------
if command -v mpirun >/dev/null; then
  "$SBPC" compile $M -o "$T/one" >/dev/null 2>&1 || bad "compile for the rank check"
  # two ranks of one dp=2 program, each with another seed: refused, naming the flags
  "$SBPC" compile $M --dp 2 -o "$T/two" >/dev/null 2>&1 || bad "compile --dp 2 for the rank check"
  expect 1 "not started with the same program and flags" env ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe \
    -np 1 "$SBPC" run "$T/two" $Q --steps 1 --seed 1 : -np 1 "$SBPC" run "$T/two" $Q --steps 1 --seed 2
  # the same with another learning rate on one rank
  expect 1 "not started with the same program and flags" env ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe \
    -np 1 "$SBPC" run "$T/two" $Q --steps 1 : -np 1 "$SBPC" run "$T/two" $Q --steps 1 --lr 0.5
fi
"$SBPC" plan $M --cluster cpu:2 --precision fp32 --fix dp=2,tp=1,pp=1 --json "$T/p.json" >/dev/null 2>&1 || bad "plan for the plan checks"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); p["parallel"]["dp"]="2"; json.dump(p,open(sys.argv[2],"w"))' "$T/p.json" "$T/p-str.json"
expect 1 "dp" "$SBPC" compile $M --plan "$T/p-str.json" -o "$T/x1"
expect 1 "dp" "$SBPC" run $M $Q --plan "$T/p-str.json" --steps 1
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); p["parallel"]["zero"]=7; json.dump(p,open(sys.argv[2],"w"))' "$T/p.json" "$T/p-zero.json"
expect 1 "zero" "$SBPC" compile $M --plan "$T/p-zero.json" -o "$T/x2"
"$SBPC" import hf tests/data/hf/tiny-llama.json -o "$T/llama.sbp" >/dev/null 2>&1 || bad "import for the plan checks"
expect 1 "another model" "$SBPC" compile "$T/llama.sbp" --plan "$T/p.json" -o "$T/x3"
expect 1 "another model" "$SBPC" run "$T/llama.sbp" $Q --plan "$T/p.json" --steps 1 --dp 1

[ $fail = 0 ] && echo "safety: all passed"
exit $fail
