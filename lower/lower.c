/* lower.c — the lowering passes in order, in one place (lower.h lists what
 * each does). driver/passes.c (drv_lower) and the tests that build programs
 * call this. */
#include "lower/lower.h"

int lw_dp_group(const lw_ctx *c) { return c->lay.dp * (c->lay.sp > 1 ? c->lay.sp : 1); }

fmt_prog *lw_compile(ir_graph *g, const lw_layout *lay, diag *d) {
  lw_ctx c;
  lw_ctx_init(&c, g, lay, d);
  bool ok = lw_train(&c) && lw_sbp(&c) && lw_local(&c) && lw_sp(&c) && lw_place(&c) && lw_recompute(&c) && lw_fuse(&c) && lw_params(&c) &&
            lw_actors(&c) && lw_arena(&c) && lw_gpu(&c); /* lw_fuse, lw_gpu: each a no-op on the other device */
  lw_ctx_done(&c);
  if (ok) return c.p;
  c.p->g = NULL; /* the caller still owns g */
  fmt_prog_free(c.p);
  return NULL;
}
