/* dot.c — Graphviz form of a graph (sbpc check --dot).
 *
 * One node per op (box, labelled with the op name and its output shape),
 * one ellipse per input or param or per tensor coming from outside the shown
 * part, and one edge per op input labelled with the tensor's SBP. Boxing ops
 * (kernel class KC_COMM) are filled red and show their bytes per device.
 * With blk >= 0 only layer 0 of that block is drawn (every layer is the same);
 * with blk < 0 the whole graph. Output is deterministic. */
#include "ir/ir.h"
#include <stdlib.h>

static bool shown(const ir_graph *g, int blk, ir_ref op) {
  return op >= 0 && (blk < 0 || (g->op[op].block == blk && g->op[op].layer == 0));
}

static void put_label_shape(const ir_graph *g, ir_ref r, FILE *f) {
  const ir_tensor *t = &g->t[r];
  char buf[48];
  fprintf(f, "%s[", ir_dtype_name((ir_dtype)t->dtype));
  for (int i = 0; i < t->rank; i++) fprintf(f, "%s%s", i ? "," : "", ir_dim_str(t->shape[i], buf, sizeof buf));
  fputc(']', f);
}

static void put_node(const ir_graph *g, int i, FILE *f) {
  const ir_op *o = &g->op[i];
  bool comm = ir_ops[o->kind].kclass == KC_COMM;
  fprintf(f, "  op%d [shape=box, label=\"%s\\n", i, ir_ops[o->kind].name);
  put_label_shape(g, o->out[0], f);
  if (comm) fprintf(f, "\\n%.0f bytes", o->comm_bytes);
  fprintf(f, "\"%s];\n", comm ? ", style=filled, fillcolor=red, fontcolor=white" : "");
}

static void put_edge(const ir_graph *g, int blk, int i, int j, bool *drawn, FILE *f) {
  ir_ref r = g->op[i].in[j];
  const ir_tensor *t = &g->t[r];
  char sbp[64] = "";
  if (g->mesh.n > 0) ir_ndsbp_str(&t->sbp, sbp, sizeof sbp);
  if (shown(g, blk, t->producer)) {
    fprintf(f, "  op%d -> op%d [label=\"%s\"];\n", t->producer, i, sbp);
    return;
  }
  if (!drawn[r]) {
    fprintf(f, "  t%d [shape=ellipse, label=\"", r);
    if (t->producer < 0 && t->name) fputs(t->name, f);
    else fprintf(f, "%%%d", r);
    fputs("\"];\n", f);
    drawn[r] = true;
  }
  fprintf(f, "  t%d -> op%d [label=\"%s\"];\n", r, i, sbp);
}

void ir_print_dot(const ir_graph *g, int blk, FILE *out) {
  fprintf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n", g->name);
  for (int i = 0; i < g->nop; i++)
    if (shown(g, blk, i)) put_node(g, i, out);
  bool *drawn = xcalloc((size_t)g->nt + 1, sizeof *drawn); /* leaf nodes emitted */
  for (int i = 0; i < g->nop; i++)
    if (shown(g, blk, i))
      for (int j = 0; j < g->op[i].nin; j++) put_edge(g, blk, i, j, drawn, out);
  free(drawn);
  fputs("}\n", out);
}
