#!/usr/bin/env bash
# hardened.sh SBPC — the malformed seeds of the program, safetensors and
# lengths fuzz corpora (tests/fuzz/corpus/{program,safetensors,lengths}/bad-*)
# through the command line: each must end with exit status 1 and an
# "error:" line naming the file, never a crash, hang or sanitizer report.
#   program:     sbpc run DIR            (DIR/program.json is the seed)
#   safetensors: sbpc run MODEL --weights SEED
#   lengths:     sbpc sp MODEL --cluster dgx-a100:1 --lengths SEED
set -u
sbpc=${1:?usage: hardened.sh SBPC}
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=tests/fuzz/corpus
fail=0
expect1() { # expect1 NAME-IN-MESSAGE CMD...
  local name=$1; shift
  timeout 60 "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc != 1 ]; then echo "FAIL: '$*' exited $rc, wanted 1"; head -5 "$T/err"; fail=1; return; fi
  grep -q "error:" "$T/err" && grep -q -- "$name" "$T/err" || { echo "FAIL: '$*': no error naming $name"; head -3 "$T/err"; fail=1; }
  ! grep -qE "Sanitizer|runtime error|^step " "$T/err" "$T/out" || { echo "FAIL: '$*' ran a step or tripped a sanitizer"; fail=1; }
}
n=0
for f in $C/program/bad-*; do
  mkdir -p "$T/plan" && cp "$f" "$T/plan/program.json"
  expect1 "program.json" "$sbpc" run "$T/plan" --steps 1 --quiet; n=$((n + 1))
done
for f in $C/safetensors/bad-*; do
  expect1 "$(basename "$f")" "$sbpc" run examples/tiny-gpt2.sbp --data tests/data/rt/tiny.bin --steps 1 --quiet --weights "$f"
  n=$((n + 1))
done
for f in $C/lengths/bad-*; do
  expect1 "$(basename "$f")" "$sbpc" sp examples/gpt2.sbp --cluster dgx-a100:1 --lengths "$f"; n=$((n + 1))
done
[ $fail = 0 ] && echo "hardened: $n malformed inputs refused with exit 1"
exit $fail
