#!/bin/bash
# demo.sh BUILD/sbpc — what `make demo` runs: sbpc's main job on the bundled
# examples. Steps whose command is not in this build are skipped with a note.
#   1. sbpc check examples/gpt2.sbp
#   2. sbpc plan examples/gpt2.sbp --cluster dgx-a100:1
#   3. sbpc compile examples/tiny-gpt2.sbp -o DIR (kernels + actors.json)
#   4. mpirun -np 2 sbpc run: train the tiny GPT-2 data-parallel on 2 ranks
#      for a few steps and show the losses falling.
set -u
SBPC=${1:-build/sbpc}
cd "$(dirname "$0")/.."
[ -x "$SBPC" ] || { echo "demo: no sbpc binary at $SBPC (run 'make build')"; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

available() { # a command exists unless it says it is not in this build
  "$SBPC" "$1" --help >/dev/null 2>"$OUT/help.err"
  ! grep -q "not available in this build" "$OUT/help.err"
}

step() { echo; echo "==> $*"; }

step "sbpc check examples/gpt2.sbp"
if available check; then "$SBPC" check examples/gpt2.sbp; else echo "(skipped: 'sbpc check' is not in this build)"; fi

step "sbpc plan examples/gpt2.sbp --cluster dgx-a100:1"
if available plan; then "$SBPC" plan examples/gpt2.sbp --cluster dgx-a100:1
else echo "(skipped: 'sbpc plan' is not in this build)"; fi

RUN_TARGET=examples/tiny-gpt2.sbp
step "sbpc compile examples/tiny-gpt2.sbp -o $OUT/tiny (2 ranks, data parallel)"
if available compile && "$SBPC" compile examples/tiny-gpt2.sbp -o "$OUT/tiny" --mesh 2 && [ -f "$OUT/tiny/actors.json" ]; then
  RUN_TARGET=$OUT/tiny
else
  echo "(no compiled plan directory with actors.json: running the model file directly with --dp 2)"
fi

step "mpirun -np 2 sbpc run $RUN_TARGET --dp 2 --steps 8 (tiny GPT-2: 2 layers, h 64, 4 heads, vocab 512, seq 32)"
if ! command -v mpirun >/dev/null; then
  echo "(mpirun not found: training on 1 rank instead)"
  "$SBPC" run "$RUN_TARGET" --data tests/data/rt/tiny.bin --steps 8 --lr 3e-3
  exit $?
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np 2 "$SBPC" run "$RUN_TARGET" --dp 2 --data tests/data/rt/tiny.bin --steps 8 --lr 3e-3
