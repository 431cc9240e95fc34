#!/usr/bin/env bash
# cli.sh SBPC — every command's command line comes from one option table
# (driver/opts.h): its --help lists the options, and each option listed is
# parsed the same way. For every command: `--help` and `sbpc help CMD` print
# the usage (exit 0); an unknown option, an option listed with a value but
# given none, and a flag given a value are usage errors (exit 2) with one
# message form naming the command; `--opt=VAL` equals `--opt VAL`; a bad
# value says what the option expects, with control bytes escaped.
set -u
sbpc=${1:?usage: cli.sh SBPC}
case $sbpc in /*) ;; *) sbpc=$PWD/$sbpc ;; esac
cd "$(dirname "$0")/.."
export NO_COLOR=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
# expect RC PATTERN CMD...: exit status RC and PATTERN (grep -e) on stderr
expect() {
  local want=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ $rc = "$want" ] || bad "'$*': exit status $rc, expected $want"
  grep -q -e "$pat" "$tmp/err" || bad "'$*': no '$pat' in: $(head -3 "$tmp/err")"
}

cmds="check import plan sp compile run export trace tune"
nopt=0
for c in $cmds; do
  "$sbpc" "$c" --help >"$tmp/help" 2>&1 || bad "$c --help: exit status $?"
  head -1 "$tmp/help" | grep -q "^usage: sbpc $c " || bad "$c --help: no usage line"
  "$sbpc" help "$c" | cmp -s - "$tmp/help" || bad "'sbpc help $c' differs from '$c --help'"
  expect 2 "^sbpc: error: $c: unknown option '--bogus'$" "$sbpc" "$c" --bogus
  grep -q "^usage: sbpc $c " "$tmp/err" || bad "$c --bogus: no usage line on stderr"
  # every option the help lists: "  --name META", "  -o, --out META" or a flag
  grep -E '^  -' "$tmp/help" | sed -E 's/^  //; s/  +.*//' >"$tmp/opts"
  [ -s "$tmp/opts" ] || bad "$c --help lists no options"
  while read -r spelling meta; do
    for name in ${spelling//,/ }; do
      nopt=$((nopt + 1))
      if [ -n "$meta" ]; then
        expect 2 "^sbpc: error: $c: $name needs a value$" "$sbpc" "$c" "$name"
        expect 2 "^sbpc: error: $c: $name needs a value$" "$sbpc" "$c" "$name="
      else
        expect 2 "^sbpc: error: $c: $name takes no value$" "$sbpc" "$c" "$name=1"
      fi
    done
  done <"$tmp/opts"
done

# --opt=VAL is --opt VAL
m=examples/tiny-gpt2.sbp
"$sbpc" check $m --batch 4 --seq 8 --mesh 2 >"$tmp/a" || bad "check with --opt VAL"
"$sbpc" check $m --batch=4 --seq=8 --mesh=2 >"$tmp/b" || bad "check with --opt=VAL"
cmp -s "$tmp/a" "$tmp/b" || bad "--opt=VAL and --opt VAL differ"
grep -q "bound: B=4 S=8, mesh 2" "$tmp/b" || bad "--batch=4 --seq=8 --mesh=2 not applied: $(grep bound "$tmp/b")"
# `--` ends the options
cp $m "$tmp/-m.sbp"
(cd "$tmp" && "$sbpc" check -- -m.sbp >/dev/null) || bad "'check -- -m.sbp' did not take -m.sbp as the model"

# bad values say what is expected; positionals are counted
expect 2 "run: bad value 'x' for --steps (expected an integer from 0 to" "$sbpc" run $m --steps x
expect 2 "check: bad value '1e9' for --batch (expected a positive integer)" "$sbpc" check $m --batch 1e9
expect 2 "compile: bad value 'full2' for --recompute (expected none, selective or full)" \
  "$sbpc" compile $m -o "$tmp/p" --recompute full2
expect 2 "plan: bad value '65' for --top (expected an integer from 1 to 64)" "$sbpc" plan $m --top=65
expect 2 "tune: bad value '-1' for --peak-flops (expected a positive number)" "$sbpc" tune --peak-flops -1
expect 2 "run: bad value 'gpu' for --kernels (expected ref or jit)" "$sbpc" run $m --kernels gpu
expect 2 "bad value 'a\\\\x1b\\[2Jb' for --steps" "$sbpc" sp $m --steps "$(printf 'a\033[2Jb')"
expect 2 "check: unexpected argument 'b.sbp'" "$sbpc" check $m b.sbp
expect 2 "check: missing MODEL.sbp" "$sbpc" check
expect 2 "export: missing PLAN.json" "$sbpc" export megatron
expect 2 "compile: missing -o DIR" "$sbpc" compile $m
expect 2 "import: unknown format 'onnx'" "$sbpc" import onnx x.json
expect 2 "tune: --plans needs a MODEL.sbp" "$sbpc" tune --plans 2
expect 2 "tune: --quick, -o, --peak-flops, --peak-bw, --model and --from do not go with --plans" \
  "$sbpc" tune --plans 2 $m --quick
expect 2 "tune: --np, --steps, --rounds, --all, --calibration, --no-probe and --cluster belong to --plans" "$sbpc" tune --np 2

echo "cli: $nopt option spellings of $(echo $cmds | wc -w) commands checked: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
