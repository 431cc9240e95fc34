#!/usr/bin/env bash
# golden.sh SBPC [DIR...] — golden tests in the cproc manner.
#
# For every DIR/NAME.sbp (DIR defaults to tests/golden; run from the source
# root so paths in messages are the stable relative ones): an optional first
# line `# args: ...` gives extra `sbpc check` arguments. Then
#   NAME.err exists: stderr must equal it and the exit status must be 1
#                    (or the number on a `# exit: N` line of the .sbp);
#   NAME.ir / NAME.out exists: stdout must equal it (and exit 0 unless .err);
#   none exists: `sbpc check` must simply succeed.
# Prints a diff for every mismatch; exits 1 if any, 0 otherwise.
# GOLDEN_UPDATE='GLOB' rewrites the expected files of the NAMEs matching GLOB
# (e.g. 'fe_*') instead of comparing them; review the diff before committing.
set -u
sbpc=${1:?usage: golden.sh SBPC [DIR...]}
shift
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- tests/golden
export NO_COLOR=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0

check_one() {
  local sbp=$1 base=${1%.sbp} args="" want_rc=0
  args=$(sed -n '1s/^# args: *//p' "$sbp")
  local ex; ex=$(sed -n 's/^# exit: *\([0-9]*\).*/\1/p' "$sbp" | head -1)
  [ -f "$base.err" ] && want_rc=1
  [ -n "$ex" ] && want_rc=$ex
  # shellcheck disable=SC2086
  "$sbpc" check "$sbp" $args >"$tmp/out" 2>"$tmp/err"
  local rc=$? ok=1
  # shellcheck disable=SC2053
  if [ -n "${GOLDEN_UPDATE:-}" ] && [[ $(basename "$base") == $GOLDEN_UPDATE ]]; then
    [ -f "$base.err" ] && cp "$tmp/err" "$base.err"
    [ -f "$base.ir" ] && cp "$tmp/out" "$base.ir"
    [ -f "$base.out" ] && cp "$tmp/out" "$base.out"
  fi
  if [ "$rc" != "$want_rc" ]; then
    echo "FAIL $sbp: exit status $rc, expected $want_rc"; ok=0
    [ -f "$base.err" ] || head -20 "$tmp/err"
  fi
  if [ -f "$base.err" ] && ! diff -u "$base.err" "$tmp/err" >"$tmp/diff"; then
    echo "FAIL $sbp: stderr differs from $base.err"; head -60 "$tmp/diff"; ok=0
  fi
  for ext in ir out; do
    if [ -f "$base.$ext" ] && ! diff -u "$base.$ext" "$tmp/out" >"$tmp/diff"; then
      echo "FAIL $sbp: stdout differs from $base.$ext"; head -60 "$tmp/diff"; ok=0
    fi
  done
  [ $ok = 1 ] || fail=1
}

for dir in "$@"; do
  for sbp in "$dir"/*.sbp; do
    [ -f "$sbp" ] || continue
    n=$((n + 1))
    check_one "$sbp"
  done
done
echo "golden: $n files checked in $*: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
