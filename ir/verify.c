/* verify.c — the IR verifier: structural invariants every pass must keep.
 *
 * Checks, in order, stopping at the first class of failure so that later
 * checks can rely on earlier ones:
 *   1. refs: every op input/output is a tensor, arities match the registry;
 *   2. producers: each tensor made by at most one op, t->producer names it,
 *      inputs and params have none, grad_of and loss refs are in range;
 *   3. order: every op reads only tensors made by earlier ops (so the table is
 *      topological and acyclic);
 *   4. shapes: re-running shape inference on a scratch copy of the tensor
 *      table gives the same dtypes and shapes;
 *   5. SBP (mesh.n > 0 and deduction ran): every tensor has one SBP per mesh
 *      axis with S axes inside its rank, ops' out_sbp equal their outputs'
 *      sbp, and after boxing every in_sbp equals the input's sbp;
 *   6. blocks: all layers of a block have the same op sequence (kind, arity,
 *      signature, lidx) as layer 0.
 * Messages go to d as errors about the file as a whole ("internal: ..."), as
 * they are compiler bugs, not user errors. Every pass ends with
 * ir_verify_after, which runs the verifier when NDEBUG is off (Debug and
 * sanitizer builds) and does nothing in release builds. */
#include "ir/ir.h"
#include <stdlib.h>
#include <string.h>

static bool bad(diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad(diag *d, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (d) diag_error(d, (srcloc){0, 0}, "internal: IR verify: %s", msg);
  return false;
}

static bool check_refs(const ir_graph *g, diag *d) {
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->kind >= IR_NOPKIND) return bad(d, "op %d has unknown kind %d", i, o->kind);
    const ir_opinfo *in = &ir_ops[o->kind];
    if (o->nin < in->min_in || o->nin > in->max_in || o->nout < 1 || o->nout > in->nout)
      return bad(d, "op %d (%s) has %d inputs and %d outputs", i, in->name, o->nin, o->nout);
    for (int j = 0; j < o->nin; j++)
      if (o->in[j] < 0 || o->in[j] >= g->nt) return bad(d, "op %d (%s) input %d is out of range", i, in->name, j);
    for (int j = 0; j < o->nout; j++)
      if (o->out[j] < 0 || o->out[j] >= g->nt) return bad(d, "op %d (%s) output %d is out of range", i, in->name, j);
  }
  return true;
}

static bool check_producers(const ir_graph *g, diag *d) {
  int *made = xmalloc(sizeof(int) * ((size_t)g->nt + 1));
  bool ok = true;
  for (int i = 0; i < g->nt; i++) made[i] = IR_NONE;
  for (int i = 0; i < g->nop && ok; i++)
    for (int j = 0; j < g->op[i].nout && ok; j++) {
      ir_ref r = g->op[i].out[j];
      if (made[r] != IR_NONE) ok = bad(d, "tensor %s is made by ops %d and %d", g->t[r].name, made[r], i);
      made[r] = i;
    }
  for (int r = 0; r < g->nt && ok; r++) {
    const ir_tensor *t = &g->t[r];
    if (t->producer != made[r]) ok = bad(d, "tensor %s says producer %d but op %d makes it", t->name, t->producer, made[r]);
    else if ((t->kind == IR_T_INPUT || t->kind == IR_T_PARAM) && made[r] != IR_NONE)
      ok = bad(d, "%s %s is made by op %d", t->kind == IR_T_INPUT ? "input" : "param", t->name, made[r]);
    else if (t->grad_of != IR_NONE && (t->grad_of < 0 || t->grad_of >= g->nt))
      ok = bad(d, "tensor %s: grad_of out of range", t->name);
  }
  if (ok && g->loss != IR_NONE && (g->loss < 0 || g->loss >= g->nt)) ok = bad(d, "loss ref out of range");
  free(made);
  return ok;
}

static bool check_order(const ir_graph *g, diag *d) {
  for (int i = 0; i < g->nop; i++)
    for (int j = 0; j < g->op[i].nin; j++) {
      ir_ref p = g->t[g->op[i].in[j]].producer;
      if (p >= i) return bad(d, "op %d (%s) reads %s before op %d makes it", i, ir_ops[g->op[i].kind].name, g->t[g->op[i].in[j]].name, p);
    }
  return true;
}

static bool same_tensor_shape(const ir_tensor *a, const ir_tensor *b) {
  if (a->rank != b->rank || a->dtype != b->dtype) return false;
  for (int i = 0; i < a->rank; i++)
    if (!ir_dim_eq(a->shape[i], b->shape[i])) return false;
  return true;
}

/* local_comm_ok: a comm op on one rank's shards: its output is its input
 * with the split axes rescaled by the group size n */
static bool local_comm_ok(const ir_graph *g, const ir_op *o, int64_t n) {
  const ir_tensor *x = &g->t[o->in[0]], *y = &g->t[o->out[0]];
  if (x->rank != y->rank || x->dtype != y->dtype) return false;
  ir_sbp f = o->at.from, t = o->at.to;
  for (int i = 0; i < x->rank; i++) {
    int64_t a = ir_dim_eval(x->shape[i], g->bind_b, g->bind_s), b = ir_dim_eval(y->shape[i], g->bind_b, g->bind_s);
    if (f.kind == SBP_S && f.axis == i) a *= n;
    if (t.kind == SBP_S && t.axis == i) b *= n;
    if (a != b) return false;
  }
  return true;
}

/* check_shapes: re-running shape inference on a scratch copy of the tensor
 * table gives every op's outputs; with n > 0 the graph is one rank's shards
 * of a group of n, and a comm op is checked by its re-layout instead
 * (local_comm_ok) */
static bool check_shapes(const ir_graph *g, int64_t n, diag *d) {
  ir_graph s = *g; /* scratch: same ops, private tensor table */
  s.t = xmalloc(sizeof *s.t * ((size_t)g->nt + 1));
  if (g->nt) memcpy(s.t, g->t, sizeof *s.t * (size_t)g->nt);
  bool ok = true;
  for (int i = 0; i < g->nop && ok; i++) {
    ir_op o = g->op[i];
    if (n > 0 && ir_ops[o.kind].kclass == KC_COMM) {
      if (!local_comm_ok(g, &o, n)) ok = bad(d, "op %d (%s) does not re-lay out its input's shape", i, ir_ops[o.kind].name);
      continue;
    }
    if (!ir_op_infer(&s, &o, NULL)) { ok = bad(d, "op %d (%s) no longer passes shape inference", i, ir_ops[o.kind].name); break; }
    for (int j = 0; j < o.nout && ok; j++)
      if (!same_tensor_shape(&s.t[o.out[j]], &g->t[o.out[j]]))
        ok = bad(d, "op %d (%s) output %s has a stale shape", i, ir_ops[o.kind].name, g->t[o.out[j]].name);
  }
  free(s.t);
  return ok;
}

static bool sbp_valid(const ir_graph *g, const ir_tensor *t) {
  if (t->sbp.n != g->mesh.n) return false;
  for (int a = 0; a < t->sbp.n; a++) {
    ir_sbp s = t->sbp.a[a];
    if (s.kind > SBP_PMAX || (s.kind == SBP_S && (s.axis < 0 || s.axis >= t->rank))) return false;
  }
  return true;
}

static bool check_sbp(const ir_graph *g, diag *d) {
  if (g->mesh.n <= 0) return true;
  bool deduced = false;
  for (int i = 0; i < g->nop; i++) deduced |= g->op[i].out_sbp[0].n != 0;
  if (!deduced && !g->boxed) return true; /* before SBP deduction */
  char buf[64], buf2[64];
  for (int r = 0; r < g->nt; r++)
    if (!sbp_valid(g, &g->t[r])) return bad(d, "tensor %s has SBP %s on a %d-axis mesh", g->t[r].name, ir_ndsbp_str(&g->t[r].sbp, buf, sizeof buf), g->mesh.n);
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    for (int j = 0; j < o->nout; j++)
      if (!ir_ndsbp_eq(&o->out_sbp[j], &g->t[o->out[j]].sbp))
        return bad(d, "op %d (%s) output %d is %s but the tensor is %s", i, ir_ops[o->kind].name, j,
                   ir_ndsbp_str(&o->out_sbp[j], buf, sizeof buf), ir_ndsbp_str(&g->t[o->out[j]].sbp, buf2, sizeof buf2));
    for (int j = 0; g->boxed && j < o->nin; j++)
      if (!ir_ndsbp_eq(&o->in_sbp[j], &g->t[o->in[j]].sbp))
        return bad(d, "op %d (%s) wants input %d as %s but it is %s (missing boxing)", i, ir_ops[o->kind].name, j,
                   ir_ndsbp_str(&o->in_sbp[j], buf, sizeof buf), ir_ndsbp_str(&g->t[o->in[j]].sbp, buf2, sizeof buf2));
  }
  return true;
}

static bool same_op(const ir_op *x, const ir_op *y) {
  return x->kind == y->kind && x->nin == y->nin && x->nout == y->nout && x->sig == y->sig && x->lidx == y->lidx;
}

/* block_layers: bucket block b's ops by layer in one pass (counting sort):
 * ops of layer l are idx[start[l] .. start[l+1]). Returns false on an op whose
 * layer is outside the block. Linear in the op count, so verify stays cheap
 * after every pass even for 100K-op graphs. */
static bool block_layers(const ir_graph *g, int b, int *start, int *idx, diag *d) {
  int L = g->blk[b].count;
  for (int l = 0; l <= L; l++) start[l] = 0;
  for (int i = 0; i < g->nop; i++) {
    if (g->op[i].block != b) continue;
    if (g->op[i].layer < 0 || g->op[i].layer >= L)
      return bad(d, "block %s: op %d has layer %d of %d", g->blk[b].name, i, g->op[i].layer, L);
    start[g->op[i].layer + 1]++;
  }
  for (int l = 0; l < L; l++) start[l + 1] += start[l];
  int *pos = xmalloc(sizeof(int) * ((size_t)L + 1));
  for (int l = 0; l <= L; l++) pos[l] = start[l];
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].block == b) idx[pos[g->op[i].layer]++] = i;
  free(pos);
  return true;
}

/* check_layers: every layer of block b has layer 0's op structure. */
static bool check_layers(const ir_graph *g, int b, const int *start, const int *idx, diag *d) {
  int n0 = start[1] - start[0];
  for (int l = 1; l < g->blk[b].count; l++) {
    int nk = start[l + 1] - start[l];
    if (nk != n0) return bad(d, "block %s: layer %d has %d ops, layer 0 has %d", g->blk[b].name, l, nk, n0);
    for (int k = 0; k < n0; k++) {
      const ir_op *o0 = &g->op[idx[start[0] + k]], *ok = &g->op[idx[start[l] + k]];
      if (!same_op(o0, ok))
        return bad(d, "block %s: op %d of layer %d (%s) differs from layer 0's (%s)", g->blk[b].name, k, l,
                   ir_ops[ok->kind].name, ir_ops[o0->kind].name);
    }
  }
  return true;
}

static bool check_blocks(const ir_graph *g, diag *d) {
  int *idx = xmalloc(sizeof(int) * ((size_t)g->nop + 1));
  bool ok = true;
  for (int b = 0; b < g->nblk && ok; b++) {
    if (g->blk[b].count <= 0) continue;
    int *start = xmalloc(sizeof(int) * ((size_t)g->blk[b].count + 1));
    ok = block_layers(g, b, start, idx, d) && check_layers(g, b, start, idx, d);
    free(start);
  }
  free(idx);
  return ok;
}

bool ir_verify_structure(const ir_graph *g, diag *d) {
  return check_refs(g, d) && check_producers(g, d) && check_order(g, d);
}

bool ir_verify_local(const ir_graph *g, int64_t n, diag *d) {
  return ir_verify_structure(g, d) && check_shapes(g, n, d);
}

bool ir_verify(const ir_graph *g, diag *d) {
  return check_refs(g, d) && check_producers(g, d) && check_order(g, d) && check_shapes(g, 0, d) &&
         check_sbp(g, d) && check_blocks(g, d);
}

bool ir_verify_after(const ir_graph *g, diag *d, const char *pass) {
#ifdef NDEBUG
  (void)g, (void)d, (void)pass;
  return true;
#else
  if (ir_verify(g, d)) return true;
  if (d) diag_note(d, (srcloc){0, 0}, "the IR was left broken by %s", pass);
  return false;
#endif
}
