#!/bin/bash
# rt_jit.sh SBPC — `sbpc run --kernels jit` (issues 6, 7, 11): the program's
# fused kernels (codegen's fusion groups of elementwise and row ops, compiled
# into DIR/kernels/cpu.ll by `sbpc compile`, made machine code for this host
# by runtime/jit.c) run as one actor each, and the 5 losses of the tiny GPT-2
# equal those of the reference kernels (each group's ops one by one) within
# 1e-5 relative,
# on 1 rank and (with mpirun) under tp=2 and pp=2 (4 micro-batches) with full
# recompute; a bad --kernels value is a usage error. jit is the default: a
# run without --kernels uses it, and falls back to ref with a note when the
# JIT cannot be set up (SBPC_TEST_FAULT=nojit), while --kernels jit is then an
# error. The machine-code cache (an object file per kernel set, in a private
# SBPC_CACHE_DIR here): the first run writes it, the next loads it, a corrupt
# entry is rebuilt (by two ranks at once, with mpirun) and never trusted.
set -u
SBPC=${1:?usage: rt_jit.sh SBPC}
cd "$(dirname "$0")/.."
. tests/lib/rt.sh
"$SBPC" run $M --data $D --steps 5 --kernels ref --quiet --log "$T/ref.jsonl" || bad "reference run failed"
"$SBPC" run $M --data $D --steps 5 --kernels jit --log "$T/jit.jsonl" > "$T/jit.out" || bad "jit run failed"
n=$(sed -n "s/^kernels: \([0-9]*\) actors run the program's fused kernels.*/\1/p" "$T/jit.out")
[ "${n:-0}" -ge 10 ] || bad "too few actors on fused kernels: '${n:-none}'"
# the program holds them: fused actors (several ops, one kernel) and the module
"$SBPC" compile $M -o "$T/prog" >/dev/null || bad "compile failed"
grep -q 'define void @sbpc_k0' "$T/prog/kernels/cpu.ll" || bad "no fused kernels in DIR/kernels/cpu.ll"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); a=[x for s in p["stages"] for x in s["actors"] if "kernel" in x]; assert a and any(len(x.get("ops",[]))>1 for x in a)' "$T/prog/program.json" || bad "no actor runs a fused group of several ops"
same_losses "$T/ref.jsonl" "$T/jit.jsonl" 1 5 || bad "jit losses differ from the reference kernels"
"$SBPC" run $M --data $D --kernels fast 2>/dev/null; [ $? = 2 ] || bad "bad --kernels value not a usage error"
# the default is jit (here on an empty private cache: a miss that writes an
# object file); without a JIT it falls back to ref with a note
export SBPC_CACHE_DIR="$T/cache" SBPC_JIT_TIMES=1
"$SBPC" run $M --data $D --steps 5 --log "$T/def.jsonl" > "$T/def.out" 2> "$T/c.err" || bad "default run failed"
grep -q "^kernels: .* fused kernels" "$T/def.out" || bad "the default run does not use the fused kernels"
same_losses "$T/ref.jsonl" "$T/def.jsonl" 1 5 || bad "default (jit) losses differ from the reference kernels"
grep -q "cache miss" "$T/c.err" || bad "empty cache: no miss reported"
obj=$(ls "$T"/cache/*.rtjit.o 2>/dev/null | head -1)
[ -s "$obj" ] || bad "no object file in the cache"
SBPC_TEST_FAULT=nojit "$SBPC" run $M --data $D --steps 5 --log "$T/nojit.jsonl" > "$T/nojit.out" 2> "$T/nojit.err" ||
  bad "no-JIT fallback run failed"
grep -q "note: no JIT" "$T/nojit.err" || bad "no note on the fallback to the reference kernels"
! grep -q "^kernels: " "$T/nojit.out" || bad "fallback run claims JIT kernels"
same_losses "$T/ref.jsonl" "$T/nojit.jsonl" 1 5 || bad "fallback losses differ"
SBPC_TEST_FAULT=nojit "$SBPC" run $M --data $D --steps 1 --kernels jit >/dev/null 2>&1
[ $? = 1 ] || bad "--kernels jit without a JIT is not an error"
# the machine-code cache: loaded, a corrupt entry rebuilt (by 2 ranks at once
# when mpirun is there: both rebuild and write it, neither fails)
jrun() { "$SBPC" run $M --data $D --steps 5 --quiet --log "$T/c.jsonl" 2> "$T/c.err"; }
jrun || bad "jit run from the cache failed"
grep -q "cache hit" "$T/c.err" || bad "second run did not load the cached object"
same_losses "$T/ref.jsonl" "$T/c.jsonl" 1 5 || bad "losses from the cached object differ"
if [ -s "$obj" ]; then
  printf 'XXXX' | dd of="$obj" bs=1 seek=200 conv=notrunc 2>/dev/null
  if command -v mpirun >/dev/null; then
    env ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -np 2 -x SBPC_CACHE_DIR -x SBPC_JIT_TIMES "$SBPC" run $M \
      --data $D --steps 5 --dp 2 --quiet --log "$T/c.jsonl" 2> "$T/c.err" || bad "2 ranks on a corrupt entry failed"
    [ "$(grep -c "cache miss" "$T/c.err")" = 2 ] || bad "a corrupt entry was trusted (2 ranks)"
  else
    jrun || bad "run with a corrupt cache entry failed"
    grep -q "cache miss" "$T/c.err" || bad "a corrupt entry was trusted"
  fi
  same_losses "$T/ref.jsonl" "$T/c.jsonl" 1 5 || bad "losses after rebuilding a corrupt entry differ"
  ! ls "$T"/cache/*.tmp* >/dev/null 2>&1 || bad "temporary cache files left behind"
  jrun && grep -q "cache hit" "$T/c.err" || bad "the rebuilt entry is not loaded"
fi
unset SBPC_CACHE_DIR SBPC_JIT_TIMES
if command -v mpirun >/dev/null; then
  for lay in "--tp 2" "--pp 2 --micro 4 --recompute full"; do
    env ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -np 2 "$SBPC" run $M --data $D --steps 5 --kernels jit \
      $lay --quiet --log "$T/lay.jsonl" || bad "jit with $lay failed"
    same_losses "$T/ref.jsonl" "$T/lay.jsonl" 1 5 || bad "jit with $lay: losses differ"
  done
fi
[ $fail = 0 ] && echo "rt_jit: ${n:-?} ops on JIT kernels, losses equal the reference kernels'"
exit $fail
