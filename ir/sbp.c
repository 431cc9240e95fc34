/* sbp.c — SBP deduction: choose a signature for every op on g->mesh.
 *
 * The algorithm is greedy, in op-table (topological) order, and is meant as a
 * sound first answer that the planner's optimal search replaces:
 *   1. Hints are checked (one SBP per mesh axis, S axis inside the rank, split
 *      dims divisible by the mesh sizes splitting them) and fixed on their
 *      tensors. Inputs and params without a hint start as B.
 *   2. For each op, every nd-signature from ir_op_ndsigs is priced by the
 *      boxing its inputs would need from their current SBP: bytes per device
 *      summed over mesh axes (DESIGN.md table), then the number of boxing ops,
 *      then signature order. One deliberate bias: leaving P for an S is priced
 *      like leaving P for B (an all-reduce), because the greedy does not model
 *      sequence parallelism — a reduce-scattered activation in a tensor-parallel
 *      block is gathered again before the next column-parallel GEMM, so its real
 *      cost is the all-reduce's. That is what makes Megatron hints come out as
 *      one all-reduce after attention and one after the MLP.
 *   3. Ops of a block take the signature that the first layer deduced chose
 *      for the op with the same lidx (layer 0 in forward, the last layer in
 *      backward, which runs the layers in reverse), so all layers stay
 *      structurally identical.
 *   A plan may fix the signature of any op on a 1-D mesh (ir_deduce_sbp_fixed:
 *   the planner's choice, which `sbpc compile` executes); such an op takes it
 *   instead of steps 2 and 3, and a fixed signature the op does not have is an
 *   error naming the op.
 *   4. Look-ahead for params without a hint: when every consumer wants the
 *      same split layout of it (no P), the param is stored that way instead of
 *      as B plus a slice.
 * The chosen signature goes to o->sig (flat nd index), o->in_sbp, o->out_sbp
 * and the outputs' sbp. A mesh with n == 0 is one device: all SBPs stay empty. */
#include "ir/ir.h"
#include <stdlib.h>
#include <string.h>

#define MAXND 4096

static ir_ndsbp all_b(int n) {
  ir_ndsbp s;
  memset(&s, 0, sizeof s);
  s.n = (uint8_t)n;
  for (int a = 0; a < n; a++) s.a[a].kind = SBP_B;
  return s;
}

/* conv_cost: priced bytes and op count of boxing r from cur to want, step by
 * step as boxing.c will do it; a reduce-scatter is priced as an all-reduce. */
static void conv_cost(const ir_graph *g, ir_ref r, ir_ndsbp cur, const ir_ndsbp *want, double *bytes, int *ops) {
  ir_boxstep st[IR_MAXBOXSTEPS];
  int n = ir_boxing_plan(g, r, &cur, want, st);
  for (int i = 0; i < n; i++) *bytes += st[i].kind == IR_OP_REDUCE_SCATTER ? 2 * st[i].bytes : st[i].bytes;
  *ops += n;
}

static bool is_p(ir_sbp s) { return s.kind == SBP_PSUM || s.kind == SBP_PMAX; }

/* ---- hints ----------------------------------------------------------------- */

static bool check_hint(const ir_graph *g, ir_ref r, diag *d) {
  const ir_tensor *t = &g->t[r];
  const ir_mesh *m = &g->mesh;
  char buf[64];
  if (t->hint.n != m->n) {
    diag_error(d, t->loc, "'%s': SBP hint %s has %d mesh axes but the mesh has %d", t->name,
               ir_ndsbp_str(&t->hint, buf, sizeof buf), t->hint.n, m->n);
    return false;
  }
  int64_t f[IR_MAXRANK] = {1, 1, 1, 1, 1, 1};
  for (int a = 0; a < m->n; a++) {
    ir_sbp s = t->hint.a[a];
    if (s.kind != SBP_S) continue;
    if (s.axis < 0 || s.axis >= t->rank) {
      diag_error(d, t->loc, "'%s': S(%d) names axis %d but the tensor has rank %d", t->name, s.axis, s.axis, t->rank);
      return false;
    }
    f[s.axis] *= m->size[a];
  }
  for (int i = 0; i < t->rank; i++) {
    int64_t v = ir_dim_eval(t->shape[i], g->bind_b ? g->bind_b : 1, g->bind_s ? g->bind_s : 1);
    bool sym_unbound = (t->shape[i].b && !g->bind_b) || (t->shape[i].s && !g->bind_s);
    if (f[i] > 1 && !sym_unbound && v % f[i]) {
      diag_error(d, t->loc, "'%s': dim %d (%s) is not divisible by the %lld devices splitting it", t->name, i,
                 ir_dim_str(t->shape[i], buf, sizeof buf), (long long)f[i]);
      return false;
    }
  }
  return true;
}

/* init_leaves: hinted tensors get their hint, other leaves B. */
static bool init_leaves(ir_graph *g, diag *d) {
  bool ok = true;
  for (int i = 0; i < g->nt; i++) {
    ir_tensor *t = &g->t[i];
    if (t->has_hint && !check_hint(g, i, d)) ok = false;
    if (t->producer < 0) t->sbp = t->has_hint && t->hint.n == g->mesh.n ? t->hint : all_b(g->mesh.n);
  }
  return ok;
}

/* ---- choosing ---------------------------------------------------------------- */

typedef struct {
  ir_ndsig *buf;
  int *layer0;   /* per block * maxl: op index of the first layer deduced with that lidx, or -1 */
  int maxl;
  const ir_sig *fixed;  /* per op, 1-D mesh: the signature a plan fixed (NULL: none) */
  const bool *has;      /* per op: fixed[i] is set */
} sctx;

static void apply(ir_graph *g, ir_op *o, const ir_ndsig *s) {
  o->sig = s->flat;
  for (int j = 0; j < o->nin; j++) o->in_sbp[j] = s->in[j];
  for (int k = 0; k < o->nout; k++) {
    o->out_sbp[k] = s->out[k];
    g->t[o->out[k]].sbp = s->out[k];
  }
}

/* pick: the cheapest of the n signatures (bytes, boxing ops, order). */
static int pick(const ir_graph *g, const ir_op *o, const ir_ndsig *sigs, int n) {
  int best = -1, bops = 0;
  double bbytes = 0;
  for (int i = 0; i < n; i++) {
    double bytes = 0;
    int ops = 0;
    for (int j = 0; j < o->nin; j++) conv_cost(g, o->in[j], g->t[o->in[j]].sbp, &sigs[i].in[j], &bytes, &ops);
    if (best < 0 || bytes < bbytes || (bytes == bbytes && ops < bops)) best = i, bbytes = bytes, bops = ops;
  }
  return best;
}

/* from_layer0: the index in sigs of the signature the first-deduced twin
 * chose (the same lidx in another layer of the block), or -1. */
static int from_layer0(const ir_graph *g, const sctx *c, const ir_op *o, const ir_ndsig *sigs, int n) {
  if (o->block < 0 || o->block >= g->nblk || o->layer < 0 || o->lidx < 0 || o->lidx >= c->maxl) return -1;
  int twin = c->layer0[o->block * c->maxl + o->lidx];
  if (twin < 0 || g->op[twin].layer == o->layer || g->op[twin].kind != o->kind) return -1;
  for (int i = 0; i < n; i++)
    if (sigs[i].flat == g->op[twin].sig) return i;
  return -1;
}

/* from_fixed: the index in sigs of the signature the plan fixed for op i
 * (1-D mesh), -1 when none is fixed, -2 when the fixed one is not valid here */
static int from_fixed(const ir_graph *g, const sctx *c, int i, const ir_ndsig *sigs, int n) {
  if (!c->has || !c->has[i] || g->mesh.n != 1) return -1;
  const ir_op *o = &g->op[i];
  for (int k = 0; k < n; k++) {
    bool same = true;
    for (int j = 0; j < o->nin; j++) same &= ir_sbp_eq(sigs[k].in[j].a[0], c->fixed[i].in[j]);
    for (int j = 0; j < o->nout; j++) same &= ir_sbp_eq(sigs[k].out[j].a[0], c->fixed[i].out[j]);
    if (same) return k;
  }
  return -2;
}

static bool choose(ir_graph *g, sctx *c, int i, diag *d) {
  ir_op *o = &g->op[i];
  int n = ir_op_ndsigs(g, o, &g->mesh, c->buf, MAXND);
  if (n == 0) {
    diag_error(d, o->loc, "%s: no SBP signature fits the mesh", ir_ops[o->kind].name);
    return false;
  }
  int k = from_fixed(g, c, i, c->buf, n);
  if (k == -2) {
    char b[16];
    diag_error(d, o->loc, "%s (op %d): the plan's signature (output %s) is not valid for this op on a mesh of %lld",
               ir_ops[o->kind].name, i, ir_sbp_str(c->fixed[i].out[0], b, sizeof b), (long long)g->mesh.size[0]);
    return false;
  }
  if (k < 0) k = from_layer0(g, c, o, c->buf, n);
  if (k < 0) k = pick(g, o, c->buf, n);
  apply(g, o, &c->buf[k]);
  if (o->block >= 0 && o->block < g->nblk && o->layer >= 0 && o->lidx >= 0 && o->lidx < c->maxl &&
      c->layer0[o->block * c->maxl + o->lidx] < 0)
    c->layer0[o->block * c->maxl + o->lidx] = i; /* the first layer deduced: the last one in backward */
  return true;
}

/* ---- look-ahead for params without a hint ------------------------------------ */

static void settle_params(ir_graph *g) {
  ir_ndsbp *want = xcalloc((size_t)g->nt + 1, sizeof *want);
  char *state = xcalloc((size_t)g->nt + 1, 1); /* 0 unseen, 1 one layout, 2 mixed */
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    for (int j = 0; j < o->nin; j++) {
      ir_ref r = o->in[j];
      if (state[r] == 0) want[r] = o->in_sbp[j], state[r] = 1;
      else if (state[r] == 1 && !ir_ndsbp_eq(&want[r], &o->in_sbp[j])) state[r] = 2;
    }
  }
  for (int r = 0; r < g->nt; r++) {
    ir_tensor *t = &g->t[r];
    if (t->kind != IR_T_PARAM || t->has_hint || t->producer >= 0 || state[r] != 1) continue;
    bool has_p = false;
    for (int a = 0; a < want[r].n; a++) has_p |= is_p(want[r].a[a]);
    if (!has_p) t->sbp = want[r];
  }
  free(want);
  free(state);
}

static int max_lidx(const ir_graph *g) {
  int m = 0;
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].lidx + 1 > m) m = g->op[i].lidx + 1;
  return m;
}

bool ir_deduce_sbp(ir_graph *g, diag *d) { return ir_deduce_sbp_fixed(g, NULL, NULL, d); }

bool ir_deduce_sbp_fixed(ir_graph *g, const ir_sig *fixed, const bool *has, diag *d) {
  g->boxed = false; /* a new deduction invalidates earlier boxing */
  if (g->mesh.n <= 0) { /* one device */
    for (int i = 0; i < g->nt; i++) memset(&g->t[i].sbp, 0, sizeof g->t[i].sbp);
    for (int i = 0; i < g->nop; i++) g->op[i].sig = 0;
    return ir_verify_after(g, d, "SBP deduction");
  }
  if (!init_leaves(g, d)) return false;
  sctx c = {xmalloc(sizeof(ir_ndsig) * MAXND), NULL, max_lidx(g), fixed, has};
  size_t nl = (size_t)(g->nblk > 0 ? g->nblk : 1) * (size_t)(c.maxl > 0 ? c.maxl : 1);
  c.layer0 = xmalloc(sizeof(int) * nl);
  for (size_t i = 0; i < nl; i++) c.layer0[i] = -1;
  bool ok = true;
  for (int i = 0; i < g->nop && ok; i++) ok = choose(g, &c, i, d);
  free(c.buf);
  free(c.layer0);
  if (ok) settle_params(g);
  return ok && ir_verify_after(g, d, "SBP deduction");
}
