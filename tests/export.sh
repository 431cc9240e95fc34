#!/usr/bin/env bash
# export.sh SBPC — golden tests of `sbpc export`: for every tests/export/NAME.json
# plan, each format's output must equal NAME.megatron / NAME.deepspeed /
# NAME.toml / NAME.py, and all four exports' stderr must equal NAME.stderr.
# Then: every Megatron flag written is in tests/export/megatron_flags.txt (the
# flags checked against Megatron-LM's arguments.py); the DeepSpeed output is
# valid JSON using only keys in deepspeed_keys.txt; the TOML parses (tomllib);
# the Python parses (ast). Finally bad input: a malformed plan exits 1 with
# "file: error:", bad usage exits 2. SBPC_UPDATE_GOLDEN=1 rewrites the goldens.
set -u
sbpc=${1:?usage: export.sh SBPC}
cd "$(dirname "$0")/.." || exit 1
dir=tests/export
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
have_py=0
command -v python3 >/dev/null 2>&1 && have_py=1

check() { # check NAME EXT FORMAT
  local plan=$dir/$1.json gold=$dir/$1.$2
  if ! "$sbpc" export "$3" "$plan" >"$tmp/$1.$2" 2>>"$tmp/$1.stderr"; then
    echo "FAIL: sbpc export $3 $plan exited non-zero"; fail=1; return
  fi
  if [ "${SBPC_UPDATE_GOLDEN:-0}" = 1 ]; then cp "$tmp/$1.$2" "$gold"; return; fi
  if ! diff -u "$gold" "$tmp/$1.$2"; then echo "FAIL: $gold differs"; fail=1; fi
}

megatron_flags() { # every --flag after pretrain_gpt.py is a known Megatron-LM flag
  local known bad=0
  known=$(grep -o '^--[a-z0-9-]*' "$dir/megatron_flags.txt")
  for f in $(sed -n '/pretrain_gpt.py/,$p' "$1" | grep -o '^  --[a-z0-9-]*'); do
    if ! grep -qx -- "$f" <<<"$known"; then echo "FAIL: $1: unknown Megatron-LM flag $f"; bad=1; fi
  done
  return $bad
}

deepspeed_json() {
  python3 - "$1" "$dir/deepspeed_keys.txt" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
known = {l.strip() for l in open(sys.argv[2]) if l.strip() and not l.startswith('#')}
def walk(o, pre):
    for k, v in o.items():
        path = pre + k
        if path not in known: sys.exit(f"FAIL: {sys.argv[1]}: unknown DeepSpeed key {path}")
        if isinstance(v, dict): walk(v, path + '.')
walk(cfg, '')
assert cfg['train_batch_size'] == cfg['train_micro_batch_size_per_gpu'] * cfg['gradient_accumulation_steps'] * (cfg['train_batch_size'] // (cfg['train_micro_batch_size_per_gpu'] * cfg['gradient_accumulation_steps']))
PY
}

for plan in "$dir"/*.json; do
  name=$(basename "$plan" .json)
  : >"$tmp/$name.stderr"
  check "$name" megatron megatron
  check "$name" deepspeed deepspeed
  check "$name" toml torchtitan
  check "$name" py dtensor
  if [ "${SBPC_UPDATE_GOLDEN:-0}" = 1 ]; then cp "$tmp/$name.stderr" "$dir/$name.stderr"
  elif ! diff -u "$dir/$name.stderr" "$tmp/$name.stderr"; then echo "FAIL: $dir/$name.stderr differs"; fail=1; fi
  megatron_flags "$tmp/$name.megatron" || fail=1
  grep -q '^torchrun .*--nproc-per-node' "$tmp/$name.megatron" || { echo "FAIL: no launch line in $name.megatron"; fail=1; }
  if [ $have_py = 1 ]; then
    deepspeed_json "$tmp/$name.deepspeed" || fail=1
    python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$tmp/$name.toml" || { echo "FAIL: $name.toml is not TOML"; fail=1; }
    python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$tmp/$name.py" || { echo "FAIL: $name.py is not Python"; fail=1; }
  fi
done

# A live plan from the planner (when `sbpc plan` is in this build): GPT-3 175B
# on dgx-a100:128 exports to all four formats, each valid for its target (no
# golden: the planner's choices may change).
if "$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-a100:128 --json "$tmp/live.json" >/dev/null 2>"$tmp/live.err"; then
  for f in megatron deepspeed torchtitan dtensor; do
    "$sbpc" export $f "$tmp/live.json" >"$tmp/live.$f" 2>>"$tmp/live.err" || { echo "FAIL: live export $f"; fail=1; }
  done
  megatron_flags "$tmp/live.megatron" || fail=1
  grep -q -- '--tensor-model-parallel-size' "$tmp/live.megatron" || { echo "FAIL: live megatron has no TP flag"; fail=1; }
  if [ $have_py = 1 ]; then
    deepspeed_json "$tmp/live.deepspeed" || fail=1
    python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$tmp/live.torchtitan" || { echo "FAIL: live TOML"; fail=1; }
    python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$tmp/live.dtensor" || { echo "FAIL: live Python"; fail=1; }
    python3 - "$tmp/live.json" "$tmp/live.megatron" "$tmp/live.torchtitan" <<'PY' || { echo "FAIL: live exports disagree with the plan"; fail=1; }
import json, re, sys
p = json.load(open(sys.argv[1]))["parallel"]
m, t = open(sys.argv[2]).read(), open(sys.argv[3]).read()
assert f"--tensor-model-parallel-size {p['tp']} " in m and f"--pipeline-model-parallel-size {p['pp']} " in m
assert f"--micro-batch-size {p['micro_batch']} " in m
assert f"tensor_parallel_degree = {p['tp']}\n" in t and f"pipeline_parallel_degree = {p['pp']}\n" in t
PY
  fi
else
  echo "note: sbpc plan unavailable here ($(head -1 "$tmp/live.err")); live export not checked"
fi

# The mixed-devices warning follows the devices the plan runs on: on the A100
# subset of the mixed A100/V100 cluster (ranks 0..63, all A100) it is not
# given; the goldens check it is given when both types are used.
if "$sbpc" plan examples/gpt3-175b.sbp --cluster examples/mixed-cluster.sbp --fix devices=64 \
     --json "$tmp/subset.json" >/dev/null 2>&1; then
  "$sbpc" export megatron "$tmp/subset.json" >/dev/null 2>"$tmp/subset.err" || { echo "FAIL: subset export"; fail=1; }
  if grep -q "mixes device types" "$tmp/subset.err"; then echo "FAIL: A100-only subset warned as mixed"; fail=1; fi
  jq '.cluster.ranks_used |= map(. + 32) | .stages[].devices |= map(. + 32)' "$tmp/subset.json" >"$tmp/shifted.json"
  "$sbpc" export megatron "$tmp/shifted.json" >/dev/null 2>"$tmp/shifted.err"
  grep -q "mixes device types" "$tmp/shifted.err" || { echo "FAIL: ranks 32..95 (A100 and V100) not warned as mixed"; fail=1; }
fi

# Hostile names (quotes, newlines, '$') stay inside strings and comments.
if [ $have_py = 1 ]; then
  python3 - "$dir/gpt2-tiny-cpu8.json" "$tmp/evil.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
evil = 'x"\nimport os; os.system("echo pwned") #$(id)`id`\\'
p["model"]["name"] = evil
for op in p["ops"]:
    op["name"] = evil + op["name"]
    if op["block"]: op["block"] = evil
    op["inputs"] = [evil + (i or "") for i in op.get("inputs", [])]
p["mesh"]["axes"] = [evil + a if a != "tp" else a for a in p["mesh"]["axes"]]
json.dump(p, open(sys.argv[2], "w"))
PY
  "$sbpc" export megatron "$tmp/evil.json" >"$tmp/evil.sh" 2>/dev/null &&
    bash -n "$tmp/evil.sh" && [ "$(grep -v '^#' "$tmp/evil.sh" | grep -c '^[a-z]')" = 1 ] || { echo "FAIL: hostile names escape the Megatron script"; fail=1; }
  "$sbpc" export dtensor "$tmp/evil.json" >"$tmp/evil.py" 2>/dev/null &&
    python3 -c 'import ast, sys; t = ast.parse(open(sys.argv[1]).read()); assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(a.name == "os" for a in n.names) for n in ast.walk(t))' "$tmp/evil.py" || { echo "FAIL: hostile names escape the DTensor file"; fail=1; }
  "$sbpc" export torchtitan "$tmp/evil.json" >"$tmp/evil.toml" 2>/dev/null &&
    python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$tmp/evil.toml" || { echo "FAIL: hostile names break the TOML"; fail=1; }
fi

# Bad input and bad usage.
printf '{"format": "sbpc-plan", "version": 1, "model": {"layers": 4}, ' >"$tmp/bad.json"
printf '"cluster": {"devices": 8}, "parallel": {"dp": 2, "tp": 2, "pp": 1, "micro_batch": 1, "num_micro_batches": 1}}' >>"$tmp/bad.json"
"$sbpc" export megatron "$tmp/bad.json" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad.json: error: dp\*tp\*pp\*sp" "$tmp/err" || { echo "FAIL: inconsistent plan: rc=$rc $(cat "$tmp/err")"; fail=1; }
printf '{"format": "sbpc-plan",\n "version": 1,,}' >"$tmp/syntax.json"
"$sbpc" export megatron "$tmp/syntax.json" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "syntax.json: error: 2:1[56]: invalid JSON" "$tmp/err" || { echo "FAIL: syntax error: rc=$rc $(cat "$tmp/err")"; fail=1; }
"$sbpc" export megatron "$tmp/missing.json" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] || { echo "FAIL: missing file: rc=$rc"; fail=1; }
"$sbpc" export nosuch "$dir/gpt2-tiny-cpu8.json" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || { echo "FAIL: unknown format: rc=$rc"; fail=1; }
"$sbpc" export >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || { echo "FAIL: no arguments: rc=$rc"; fail=1; }
"$sbpc" export megatron "$dir/gpt2-tiny-cpu8.json" -o "$tmp/out.sh" 2>/dev/null && cmp -s "$tmp/out.sh" "$dir/gpt2-tiny-cpu8.megatron" || { echo "FAIL: -o FILE"; fail=1; }
# The installed C API: `cmake --install` the build, then compile and run an
# external reader with pkg-config (only when the build has libsbpc, i.e. the
# top CMakeLists includes cmake/install.cmake).
build=${SBPC_BUILD:-$(dirname "$sbpc")}
if grep -qE '^SBPC_(SANITIZE|FUZZ):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "note: sanitizer build; the installed-library consumer is checked in the plain build"
elif [ -e "$build/libsbpc.so" ] && command -v pkg-config >/dev/null 2>&1; then
  if cmake --install "$build" --prefix "$tmp/inst" >/dev/null &&
     pc=$(find "$tmp/inst" -name sbpc.pc | head -1) && [ -n "$pc" ] &&
     cc tests/export/consumer.c $(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs sbpc) -o "$tmp/consumer" &&
     LD_LIBRARY_PATH=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=libdir sbpc) "$tmp/consumer" "$dir/gpt2-tiny-cpu8.json" >"$tmp/consumer.out" &&
     grep -q '^stage 3: layers 8-11 (4) on 2 devices$' "$tmp/consumer.out" &&
     [ -e "$tmp/inst/bin/sbpc" ] && [ -n "$(find "$tmp/inst" -name sbpc.1)" ]; then :
  else echo "FAIL: install + pkg-config consumer"; fail=1; fi
else
  echo "note: no libsbpc in $build (cmake/install.cmake not included); install not checked"
fi
[ $fail = 0 ] && echo "export: all passed"
exit $fail
