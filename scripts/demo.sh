#!/bin/bash
# demo.sh BUILD/sbpc — what `make demo` runs: sbpc's main job on the bundled
# examples. Steps whose command is not in this build are skipped with a note.
#   1. sbpc check examples/gpt2.sbp
#   2. sbpc plan examples/gpt2.sbp --cluster dgx-a100:1
#   3. sbpc plan examples/tiny-gpt2.sbp --cluster cpu:2 --json PLAN (the layout
#      the tiny GPT-2 will train with on 2 CPU ranks)
#   4. sbpc compile examples/tiny-gpt2.sbp (kernels), when available
#   5. mpirun -np 2 sbpc run --plan PLAN: train the tiny GPT-2 on 2 ranks with
#      the planned layout for a few steps and show the losses falling
#      (data-parallel --dp 2 when no plan could be made).
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
step "sbpc plan examples/tiny-gpt2.sbp --cluster cpu:2 --fix sp=1,vpp=1 --json $OUT/plan.json"
if available plan && "$SBPC" plan examples/tiny-gpt2.sbp --cluster cpu:2 --fix sp=1,vpp=1 --json "$OUT/plan.json"; then
  LAYOUT="--plan $OUT/plan.json"
else
  echo "(no plan: training data-parallel, --dp 2)"
fi

step "sbpc compile examples/tiny-gpt2.sbp -o $OUT/tiny"
if available compile; then "$SBPC" compile examples/tiny-gpt2.sbp -o "$OUT/tiny" || echo "(compile failed; the runtime uses its CPU reference kernels)"
else echo "(skipped: 'sbpc compile' is not in this build; the runtime uses its CPU reference kernels)"; fi

step "mpirun -np 2 sbpc run examples/tiny-gpt2.sbp $LAYOUT --steps 8 (tiny GPT-2: 2 layers, h 64, 4 heads, vocab 512, seq 32)"
if ! command -v mpirun >/dev/null; then
  echo "(mpirun not found: training on 1 rank instead)"
  "$SBPC" run examples/tiny-gpt2.sbp --data tests/data/rt/tiny.bin --steps 8 --lr 3e-3
  exit $?
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np 2 "$SBPC" run examples/tiny-gpt2.sbp $LAYOUT --data tests/data/rt/tiny.bin --steps 8 --lr 3e-3
