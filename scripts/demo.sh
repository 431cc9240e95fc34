#!/bin/bash
# demo.sh BUILD/sbpc — what `make demo` runs: sbpc's main job on the bundled
# examples. Steps whose command is not in this build are skipped with a note.
#   1. sbpc check examples/gpt2.sbp
#   2. sbpc plan examples/gpt2.sbp --cluster dgx-a100:1
#   3. sbpc plan examples/tiny-gpt2.sbp --cluster cpu:2 --json PLAN (the layout
#      the tiny GPT-2 will train with on 2 CPU ranks)
#   4. sbpc compile examples/tiny-gpt2.sbp --plan PLAN -o DIR: kernels,
#      DIR/plan.json and DIR/actors.json (the actor plan of the layout)
#   5. mpirun -np N sbpc run DIR: train the tiny GPT-2 on the planned ranks
#      for a few steps and show the losses falling. Without a plan the layout
#      is data-parallel (--dp 2); without `sbpc compile` the model file is run
#      directly with the same layout.
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

LAYOUT="--dp 2"
PLAN=
step "sbpc plan examples/tiny-gpt2.sbp --cluster cpu:2 --fix sp=1,vpp=1 --json $OUT/plan.json"
if available plan && "$SBPC" plan examples/tiny-gpt2.sbp --cluster cpu:2 --fix sp=1,vpp=1 --json "$OUT/plan.json"; then
  LAYOUT= PLAN="--plan $OUT/plan.json"
else
  echo "(no plan: training data-parallel, --dp 2)"
fi

TARGET=examples/tiny-gpt2.sbp
step "sbpc compile examples/tiny-gpt2.sbp $PLAN -o $OUT/tiny"
if ! available compile; then
  echo "(skipped: 'sbpc compile' is not in this build; running the model file)"
  LAYOUT="$LAYOUT $PLAN"
elif "$SBPC" compile examples/tiny-gpt2.sbp $PLAN -o "$OUT/tiny"; then
  TARGET=$OUT/tiny
else
  echo "(compile failed; running the model file)"
  LAYOUT="$LAYOUT $PLAN"
fi

# the number of ranks: the compiled actor plan's, else the layout's
NP=2
if [ -f "$TARGET/actors.json" ]; then
  NP=$(sed -n 's/^[[:space:]]*"ranks":[[:space:]]*\([0-9]*\).*/\1/p' "$TARGET/actors.json" | head -1)
  echo "actor plan: $TARGET/actors.json ($NP ranks, $(grep -c '"kind"' "$TARGET/actors.json") actors)"
fi
step "mpirun -np $NP sbpc run $TARGET $LAYOUT --steps 8 (tiny GPT-2: 2 layers, h 64, 4 heads, vocab 512, seq 32)"
if ! command -v mpirun >/dev/null; then
  echo "(mpirun not found: training on 1 rank instead)"
  "$SBPC" run examples/tiny-gpt2.sbp --data tests/data/rt/tiny.bin --steps 8 --lr 3e-3
  exit $?
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np "$NP" "$SBPC" run "$TARGET" $LAYOUT --data tests/data/rt/tiny.bin --steps 8 --lr 3e-3
