/* passes.c — the compiler's passes, in order, in one place.
 *
 *   fe_load / drv_model_load   source -> ir_graph (blocks kept)     frontend/
 *   ir_infer_shapes            shapes, symbolic in B and S           ir/shape.c
 *   ir_autodiff                + backward ops + AdamW per parameter  ir/autodiff.c  (DRV_TRAIN)
 *   ir_deduce_sbp              an SBP per tensor on g->mesh          ir/sbp.c       (DRV_SBP)
 *   ir_insert_boxing           collectives where SBP changes         ir/boxing.c    (DRV_SBP)
 *   ir_verify                  the IR's invariants                   ir/verify.c
 *
 * Then each command hands the graph to its back end: `plan` to plan_search
 * (planner/, which solves SBP per block type itself with GLPK), `compile` to
 * cg_compile (codegen/) and rt_write_actor_plan, `run` to rt_train
 * (runtime/, which re-runs SBP deduction and boxing on each rank's training
 * graph for the layout it executes: runtime/tp.c). In Debug builds every IR
 * pass also verifies its own output (ir_verify_after). */
#include "driver/common.h"
#include "ir/autodiff.h"

bool drv_passes(ir_graph *g, unsigned flags, diag *d) {
  if (!ir_infer_shapes(g, d)) return false;
  if ((flags & DRV_TRAIN) && g->loss != IR_NONE && !ir_autodiff(g, NULL, d)) return false;
  if ((flags & DRV_SBP) && !(ir_deduce_sbp(g, d) && ir_insert_boxing(g, d))) return false;
  return ir_verify(g, d);
}
