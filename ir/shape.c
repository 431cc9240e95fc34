/* shape.c — the shape inference pass and binding of the symbolic dims.
 *
 * ir_infer_shapes walks the op table in order (the table is topologically
 * sorted: an op only reads tensors made earlier) and re-runs each op's registry
 * rule, so shapes stay right after passes that add or rewire ops. Errors are
 * reported at each failing op and the pass goes on to report the rest, but an
 * op whose inputs came from a failed op is skipped so one mistake gives one
 * message. ir_bind only records B and S: dims stay symbolic in the graph and
 * every size query evaluates them with the bound values. */
#include "ir/ir.h"
#include <stdlib.h>

void ir_bind(ir_graph *g, int64_t b, int64_t s) {
  g->bind_b = b;
  g->bind_s = s;
}

/* tainted: some input of o was produced by a failed op. */
static bool tainted(const ir_graph *g, const ir_op *o, const bool *bad) {
  for (int i = 0; i < o->nin; i++) {
    ir_ref r = o->in[i];
    if (r >= 0 && r < g->nt && g->t[r].producer >= 0 && g->t[r].producer < g->nop && bad[g->t[r].producer])
      return true;
  }
  return false;
}

bool ir_infer_shapes(ir_graph *g, diag *d) {
  bool ok = true;
  bool *bad = xcalloc((size_t)g->nop + 1, sizeof *bad);
  for (int i = 0; i < g->nop; i++) {
    ir_op *o = &g->op[i];
    if (tainted(g, o, bad) || !ir_op_infer(g, o, d)) {
      bad[i] = true;
      ok = false;
    }
  }
  free(bad);
  return ok && ir_verify_after(g, d, "shape inference");
}
