/* print.c — the stable text form of a graph (sbpc check --dump ir).
 *
 *   model gpt2
 *   mesh 2
 *   bind B=1 S=1
 *   input ids: i32[B,S] @ B
 *   param h.0.attn.c_attn.weight: f32[64,192] @ S(1) hint
 *   block h[2]: 16 ops, 12 tensors per layer
 *   %12:f32[B,S,64] @ B = layer_norm(%11, h.0.ln_1.weight, h.0.ln_1.bias) eps=1e-05  # h.0
 *   %30:f32[B,S,64] @ B = all_reduce(%29) P(sum)->B mesh_axis=0 bytes=256  # h.0
 *   loss %57
 *
 * Inputs and params come first, in table order, then every op in table order
 * (all layers of every block: golden models are small). Tensors made by ops are
 * named %<index>, inputs and params by their full names. An op line lists its
 * outputs with dtype, shape and SBP (the SBP part is left out on one device),
 * the op name with its inputs, the attributes that differ from their defaults,
 * and the block and layer as a comment. Output is byte-for-byte deterministic:
 * numbers print with %g, comm bytes as integers when they are whole. */
#include "ir/ir.h"
#include <math.h>
#include <string.h>

static void put_ref(const ir_graph *g, ir_ref r, FILE *f) {
  const ir_tensor *t = &g->t[r];
  if (t->producer < 0 && t->name) fputs(t->name, f);
  else fprintf(f, "%%%d", r);
}

static void put_type(const ir_graph *g, ir_ref r, FILE *f) {
  const ir_tensor *t = &g->t[r];
  char buf[48];
  fprintf(f, "%s[", ir_dtype_name((ir_dtype)t->dtype));
  for (int i = 0; i < t->rank; i++) fprintf(f, "%s%s", i ? "," : "", ir_dim_str(t->shape[i], buf, sizeof buf));
  fputc(']', f);
}

static void put_sbp(const ir_graph *g, const ir_ndsbp *s, FILE *f) {
  char buf[64];
  if (g->mesh.n > 0 && s->n > 0) fprintf(f, " @ %s", ir_ndsbp_str(s, buf, sizeof buf));
}

static void put_shape_attr(const ir_attrs *a, FILE *f) {
  char buf[48];
  fputs(" shape=[", f);
  for (int i = 0; i < a->rank; i++) fprintf(f, "%s%s", i ? "," : "", ir_dim_str(a->shape[i], buf, sizeof buf));
  fputc(']', f);
}

static void put_num(FILE *f, const char *name, double v) {
  if (v != 0) fprintf(f, " %s=%g", name, v);
}

static void put_comm(const ir_op *o, FILE *f) {
  char a[16], b[16];
  fprintf(f, " %s->%s mesh_axis=%lld", ir_sbp_str(o->at.from, a, sizeof a), ir_sbp_str(o->at.to, b, sizeof b),
          (long long)o->at.mesh_axis);
  if (o->kind == IR_OP_SEND_RECV) fprintf(f, " stages=%d->%d", o->at.stage_from, o->at.stage_to);
  if (o->comm_bytes == floor(o->comm_bytes) && o->comm_bytes < 1e18) fprintf(f, " bytes=%.0f", o->comm_bytes);
  else fprintf(f, " bytes=%.3f", o->comm_bytes);
}

static void put_attrs(const ir_op *o, FILE *f) {
  const ir_attrs *a = &o->at;
  ir_opkind k = (ir_opkind)o->kind;
  if (ir_ops[k].kclass == KC_COMM) return put_comm(o, f);
  if (a->heads) fprintf(f, " heads=%lld", (long long)a->heads);
  if (a->kv_heads && a->kv_heads != a->heads) fprintf(f, " kv_heads=%lld", (long long)a->kv_heads);
  if ((k == IR_OP_SOFTMAX || k == IR_OP_SPLIT || k == IR_OP_CONCAT) && a->axis != -1) fprintf(f, " axis=%lld", (long long)a->axis);
  if (k == IR_OP_SPLIT && a->n) fprintf(f, " n=%lld", (long long)a->n);
  if (k == IR_OP_SELECT || k == IR_OP_SELECT_GRAD) fprintf(f, " axis=%lld index=%lld", (long long)a->axis, (long long)a->index);
  if (a->causal) fputs(" causal", f);
  if (a->packed) fputs(" packed", f);
  if (a->trans_a) fputs(" trans_a", f);
  if (a->trans_b) fputs(" trans_b", f);
  if (k == IR_OP_GELU || k == IR_OP_GELU_GRAD) fputs(a->tanh ? " approximate=tanh" : " approximate=erf", f);
  put_num(f, "eps", a->eps);
  put_num(f, "scale", a->scale);
  put_num(f, "p", a->p);
  put_num(f, "theta", a->theta);
  put_num(f, "lr", a->lr);
  put_num(f, "beta1", a->beta1);
  put_num(f, "beta2", a->beta2);
  put_num(f, "weight_decay", a->weight_decay);
  if (a->rank) put_shape_attr(a, f);
}

static void put_op(const ir_graph *g, const ir_op *o, FILE *f) {
  for (int j = 0; j < o->nout; j++) {
    if (j) fputs(", ", f);
    put_ref(g, o->out[j], f);
    fputc(':', f);
    put_type(g, o->out[j], f);
    put_sbp(g, &g->t[o->out[j]].sbp, f);
  }
  fprintf(f, " = %s(", ir_ops[o->kind].name);
  for (int j = 0; j < o->nin; j++) {
    if (j) fputs(", ", f);
    put_ref(g, o->in[j], f);
  }
  fputc(')', f);
  put_attrs(o, f);
  if (o->backward) fputs(" backward", f);
  if (o->recompute) fputs(" recompute", f);
  if (o->block >= 0 && o->block < g->nblk) fprintf(f, "  # %s.%d", g->blk[o->block].name, o->layer);
  fputc('\n', f);
}

static void put_header(const ir_graph *g, FILE *f) {
  fprintf(f, "model %s\n", g->name);
  if (g->mesh.n > 0) {
    fputs("mesh ", f);
    for (int a = 0; a < g->mesh.n; a++) fprintf(f, "%s%lld", a ? "x" : "", (long long)g->mesh.size[a]);
    fputc('\n', f);
  }
  if (g->bind_b || g->bind_s) fprintf(f, "bind B=%lld S=%lld\n", (long long)g->bind_b, (long long)g->bind_s);
}

static void put_leaves(const ir_graph *g, FILE *f) {
  static const char *kinds[] = {"input", "param", "act", "grad", "state"};
  for (int r = 0; r < g->nt; r++) {
    const ir_tensor *t = &g->t[r];
    if (t->producer >= 0) continue;
    fprintf(f, "%s ", t->kind <= IR_T_STATE ? kinds[t->kind] : "?");
    put_ref(g, r, f);
    fputs(": ", f);
    put_type(g, r, f);
    put_sbp(g, &t->sbp, f);
    if (t->has_hint && g->mesh.n > 0) fputs(" hint", f);
    fputc('\n', f);
  }
}

void ir_print(const ir_graph *g, FILE *out) {
  put_header(g, out);
  put_leaves(g, out);
  for (int b = 0; b < g->nblk; b++)
    fprintf(out, "block %s[%d]: %d ops, %d tensors per layer\n", g->blk[b].name, g->blk[b].count,
            g->blk[b].ops_per_layer, g->blk[b].tensors_per_layer);
  for (int i = 0; i < g->nop; i++) put_op(g, &g->op[i], out);
  if (g->loss != IR_NONE) {
    fputs("loss ", out);
    put_ref(g, g->loss, out);
    fputc('\n', out);
  }
}
