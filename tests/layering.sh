#!/bin/bash
# layering.sh SBPC — the thin executor stays thin (issue 11): runtime/
# includes no header of frontend/, planner/ or lower/, and its library
# (libsbpc_runtime.a) calls no compiler pass: no front end (fe_), planner
# (plan_, sp_), lowering (lw_) or IR pass (autodiff, shape inference, SBP
# deduction, boxing) is among its undefined symbols. The program it runs
# was decided by `sbpc compile`.
set -u
cd "$(dirname "$0")/.."
fail=0
bad() { echo "FAIL: $*"; fail=1; }
inc=$(grep -nE '#include "(frontend|planner|lower)/' runtime/*.c runtime/*.h)
[ -z "$inc" ] || bad "runtime includes a compiler header: $inc"
lib=${SBPC_BUILD:-build}/libsbpc_runtime.a
if [ -f "$lib" ] && command -v nm >/dev/null; then
  calls=$(nm -u "$lib" | awk '{print $2}' |
    grep -E '^(fe_|plan_|sp_|lw_|ir_autodiff|ir_infer_shapes|ir_deduce_sbp|ir_insert_boxing|ir_grad_|drv_)' | sort -u)
  [ -z "$calls" ] || bad "the runtime library calls compiler passes: $(echo $calls)"
  n=$(nm -u "$lib" | wc -l)
  [ "$n" -gt 10 ] || bad "nm found almost no symbols in $lib ($n): the check would prove nothing"
else
  bad "no $lib to check (set SBPC_BUILD)"
fi
[ $fail = 0 ] && echo "layering: runtime/ includes no compiler header and calls no compiler pass"
exit $fail
