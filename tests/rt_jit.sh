#!/bin/bash
# rt_jit.sh SBPC — `sbpc run --kernels jit` (issue 6/7): the elementwise and
# row ops of the tiny GPT-2 run codegen's JIT-compiled kernels (runtime/jit.c)
# and the 5 losses equal those of the reference kernels within 1e-5 relative,
# on 1 rank and (with mpirun) under tp=2 and pp=2 (4 micro-batches) with full
# recompute; a bad --kernels value is a usage error.
set -u
SBPC=${1:?usage: rt_jit.sh SBPC}
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M=examples/tiny-gpt2.sbp
D=tests/data/rt/tiny.bin
fail=0
bad() { echo "FAIL: $*"; fail=1; }
same_losses() {
  awk 'FNR == 1 { f++ }
    { match($0, /"step": *[0-9]+/); s = substr($0, RSTART + 7, RLENGTH - 7) + 0
      match($0, /"loss": *[-0-9.eE+]+/); l = substr($0, RSTART + 7, RLENGTH - 7) + 0
      if (f == 1) a[s] = l; else { b[s] = l; n++ } }
    END { if (n != 5) { print n " steps compared"; exit 1 }
          for (s in b) { if (!(s in a)) { print "step " s " missing"; exit 1 }
            d = a[s] - b[s]; if (d < 0) d = -d; r = a[s] < 0 ? -a[s] : a[s]
            if (d > 1e-5 * r) { printf "step %d: %.9g vs %.9g\n", s, a[s], b[s]; exit 1 } } }' "$1" "$2"
}
"$SBPC" run $M --data $D --steps 5 --kernels ref --quiet --log "$T/ref.jsonl" || bad "reference run failed"
"$SBPC" run $M --data $D --steps 5 --kernels jit --log "$T/jit.jsonl" > "$T/jit.out" || bad "jit run failed"
n=$(sed -n "s/^kernels: \([0-9]*\) ops run codegen's JIT-compiled kernels.*/\1/p" "$T/jit.out")
[ "${n:-0}" -ge 10 ] || bad "too few ops on JIT kernels: '${n:-none}'"
same_losses "$T/ref.jsonl" "$T/jit.jsonl" || bad "jit losses differ from the reference kernels"
"$SBPC" run $M --data $D --kernels fast 2>/dev/null; [ $? = 2 ] || bad "bad --kernels value not a usage error"
if command -v mpirun >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  for lay in "--tp 2" "--pp 2 --micro 4 --recompute full"; do
    env ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -np 2 "$SBPC" run $M --data $D --steps 5 --kernels jit \
      $lay --quiet --log "$T/lay.jsonl" || bad "jit with $lay failed"
    same_losses "$T/ref.jsonl" "$T/lay.jsonl" || bad "jit with $lay: losses differ"
  done
fi
[ $fail = 0 ] && echo "rt_jit: ${n:-?} ops on JIT kernels, losses equal the reference kernels'"
exit $fail
