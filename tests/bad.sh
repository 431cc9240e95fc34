#!/usr/bin/env bash
# bad.sh SBPC — the bad-input corpus: every tests/bad/NAME.sbp must fail with
# exactly the diagnostics in NAME.err (via golden.sh), and the generated
# inputs below, too big or too binary to check in, must fail with those in
# tests/bad/generated/NAME.err. Generated files are checked from inside a
# scratch folder so the file names in the messages are stable. `sbpc run` and
# `sbpc compile` load a model through the same path as `check`, so each
# checked-in NAME.sbp must fail under them too with exactly NAME.err:
# file:line:col, the source line and the caret.
set -u
sbpc=${1:?usage: bad.sh SBPC}
case $sbpc in /*) ;; *) sbpc=$PWD/$sbpc ;; esac
cd "$(dirname "$0")/.."
src=$PWD
fail=0
bash tests/golden.sh "$sbpc" tests/bad || fail=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rep() { local s=$1 n=$2 out=""; while [ "$n" -gt 0 ]; do out+=$s; n=$((n - 1)); done; printf '%s' "$out"; }
big() { local s=$1 n=$2; rep "$(rep "$s" 100)" $((n / 100)); }
gen() {
  case $1 in
    deep_parens) printf 'model m {\n  x = %s1%s\n}\n' "$(big '(' 10000)" "$(big ')' 10000)" ;;
    deep_brackets) printf 'model m {\n  x = %s\n}\n' "$(big '[' 10000)" ;;
    deep_minus) printf 'model m {\n  x = %s1\n}\n' "$(big '-' 100000)" ;;
    long_sum) printf 'model m {\n  x = 1%s\n}\n' "$(big '+1' 100000)" ;;
    ident_1mb) printf 'model m {\n  param %s : [8]\n}\n' "$(big aaaaaaaaaa 104858)" ;;
    binary_junk)
      printf 'model m {\n'
      for i in $(seq 0 255); do printf "\\x$(printf %02x $(( (i * 37 + 11) % 256 )))"; done
      printf '\n}\n' ;;
    many_errors) printf 'model m {\n'; for i in $(seq 1 200); do printf '  x%d = nosuch%d\n' "$i" "$i"; done; printf '}\n' ;;
    many_layers) printf 'model m {\n  input i : f32[B, 8]\n  x = i\n  block h[100000] { param w : [8]\n x = x + w }\n  y = x + q\n}\n' ;;
  esac
}
export NO_COLOR=1
n=0
for exp in tests/bad/generated/*.err; do
  name=$(basename "$exp" .err)
  gen "$name" >"$tmp/$name.sbp"
  (cd "$tmp" && "$sbpc" check "$name.sbp" >"$tmp/out" 2>"$tmp/err")
  rc=$?
  n=$((n + 1))
  # shellcheck disable=SC2053
  if [ -n "${GOLDEN_UPDATE:-}" ] && [[ $name == $GOLDEN_UPDATE ]]; then cp "$tmp/err" "$src/$exp"; fi
  if [ $rc != 1 ]; then echo "FAIL generated $name: exit status $rc, expected 1"; fail=1; fi
  if ! diff -u "$exp" "$tmp/err" >"$tmp/diff"; then
    echo "FAIL generated $name: stderr differs from $exp"; head -c 4000 "$tmp/diff"; fail=1
  fi
done
for sbp in tests/bad/*.sbp; do
  for cmd in "run --steps 1 --quiet" "compile -o $tmp/prog"; do
    # shellcheck disable=SC2086
    "$sbpc" $cmd "$sbp" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc != 1 ]; then echo "FAIL sbpc $cmd $sbp: exit status $rc, expected 1"; fail=1; fi
    if ! diff -u "${sbp%.sbp}.err" "$tmp/err" >"$tmp/diff"; then
      echo "FAIL sbpc $cmd $sbp: stderr differs from ${sbp%.sbp}.err"; head -40 "$tmp/diff"; fail=1
    fi
  done
done
[ -e "$tmp/prog/program.json" ] && { echo "FAIL: compile wrote a program for a bad model"; fail=1; }
echo "bad: $n generated inputs checked, and tests/bad under run and compile: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
