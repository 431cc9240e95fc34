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
 * (planner/, which solves SBP per block type itself with GLPK); `compile`
 * (and `run MODEL.sbp`, which compiles first) to the lowering passes below,
 * which turn the forward graph and the plan into the program the executor
 * runs as written (runtime/ runs no pass), then cg_compile (codegen/) on the
 * program's graph. In Debug builds every IR pass also verifies its own
 * output (ir_verify_after). The lowering passes (lower/lower.c, lw_compile):
 *
 *   lw_train      autodiff, B and S bound to the micro-batch   lower/train.c
 *   lw_sbp        the plan's SBP on the tp axis, boxing         lower/sbp.c
 *   lw_local      one tp rank's shard of every shape            lower/local.c
 *   lw_sp         sequence parallelism (Ulysses all-to-alls)    lower/sp.c
 *   lw_place      ops on pipeline stages                        lower/place.c
 *   lw_recompute  recompute as clones in backward               lower/recompute.c
 *   lw_fuse       fused CPU kernels (codegen's groups) as actors lower/fuse.c
 *   lw_params     parameter layouts, gradient buckets           lower/params.c
 *   lw_actors     actors, registers, the static schedule        lower/actors.c
 *   lw_arena      arena offsets and the planned peak            lower/arena.c */
#include "driver/common.h"
#include "ir/autodiff.h"

bool drv_passes(ir_graph *g, unsigned flags, diag *d) {
  if (!ir_infer_shapes(g, d)) return false;
  if ((flags & DRV_TRAIN) && g->loss != IR_NONE && !ir_autodiff(g, NULL, d)) return false;
  if ((flags & DRV_SBP) && !(ir_deduce_sbp(g, d) && ir_insert_boxing(g, d))) return false;
  return ir_verify(g, d);
}

fmt_prog *drv_lower(ir_graph *g, const lw_layout *lay, diag *d) { return lw_compile(g, lay, d); }
