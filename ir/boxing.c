/* boxing.c — boxing insertion: make every op's inputs have the SBP its chosen
 * signature needs.
 *
 * After SBP deduction each op records the SBP it wants at each input slot
 * (o->in_sbp). Wherever that differs from the producing tensor's SBP, this pass
 * inserts communication ops, one per mesh axis that differs (ir_boxing_plan:
 * axes ending as B or P first, then S -> S and P -> S, then slices, so that
 * every intermediate layout divides the tensor), and rewires the consumer:
 *   P -> B all_reduce      P -> S reduce_scatter     S -> B all_gather
 *   S(i) -> S(j) all_to_all   B -> S, B -> P, S -> P slice (local, no traffic)
 *   P(sum) <-> P(max)      all_reduce then slice
 * That table is ir_boxing_kind, with the bytes of each collective in
 * ir_coll_bytes; it is the only copy: the planner's cost model calls both.
 * Each inserted op carries comm_bytes, the bytes moved per device from the
 * DESIGN.md table, with T the tensor's logical bytes as held by one group of
 * that mesh axis (divided by the splits on the other mesh axes) and n the
 * axis size. A conversion of one tensor to one SBP is made once and shared by
 * every consumer that needs it. The op table is rebuilt in a new order (each
 * boxing op just before its first consumer), which keeps it topological.
 * Inserted ops belong to the consumer's layer when the tensor comes from the
 * same layer, else to no block (they sit between layers); op lidx are then
 * renumbered in order inside every layer, so identical layers stay identical. */
#include "ir/ir.h"
#include <stdlib.h>
#include <string.h>

static bool is_p(ir_sbp s) { return s.kind == SBP_PSUM || s.kind == SBP_PMAX; }

/* The one boxing table (the planner's cost model reads it too): the
 * collective that turns one mesh axis from SBP f into t. */
ir_opkind ir_boxing_kind(ir_sbp f, ir_sbp t) {
  if (ir_sbp_eq(f, t)) return IR_NOPKIND;
  if (is_p(f)) return t.kind == SBP_S ? IR_OP_REDUCE_SCATTER : IR_OP_ALL_REDUCE; /* P->P: all-reduce + slice */
  if (f.kind == SBP_S && t.kind == SBP_B) return IR_OP_ALL_GATHER;
  if (f.kind == SBP_S && t.kind == SBP_S) return IR_OP_ALL_TO_ALL;
  return IR_OP_SLICE; /* B -> S, B -> P, S -> P (zero-padded locally) */
}

double ir_coll_bytes(ir_opkind k, double T, int64_t n) {
  if (k == IR_OP_SEND_RECV) return T;
  if (n <= 1) return 0;
  double f = (double)(n - 1) / (double)n;
  switch (k) {
  case IR_OP_ALL_REDUCE: return 2 * T * f;
  case IR_OP_ALL_GATHER: case IR_OP_REDUCE_SCATTER: return T * f;
  case IR_OP_ALL_TO_ALL: return T * f / (double)n;
  default: return 0; /* slice, none */
  }
}

double ir_boxing_bytes(ir_sbp f, ir_sbp t, double T, int64_t n) {
  return ir_coll_bytes(ir_boxing_kind(f, t), T, n);
}

/* ---- planning ------------------------------------------------------------- */

static double axis_T(const ir_graph *g, ir_ref r, const ir_ndsbp *cur, int a) {
  double T = ir_tensor_bytes(g, r);
  for (int k = 0; k < cur->n; k++)
    if (k != a && cur->a[k].kind == SBP_S) T /= (double)g->mesh.size[k];
  return T;
}

/* add_step: record the conversion of axis a of *cur to t and apply it. */
static void add_step(const ir_graph *g, ir_ref r, ir_ndsbp *cur, int a, ir_sbp t, ir_boxstep *st, int *n) {
  ir_boxstep *s = &st[(*n)++];
  s->axis = a, s->from = cur->a[a], s->to = t;
  s->kind = ir_boxing_kind(s->from, t);
  s->bytes = ir_boxing_bytes(s->from, t, axis_T(g, r, cur, a), g->mesh.size[a]);
  cur->a[a] = t;
}

int ir_boxing_plan(const ir_graph *g, ir_ref r, const ir_ndsbp *from, const ir_ndsbp *to, ir_boxstep *steps) {
  ir_ndsbp cur = *from;
  int n = 0, m = from->n < to->n ? from->n : to->n;
  const ir_sbp B = {SBP_B, 0};
  for (int a = 0; a < m; a++) { /* 1: give up splits and sums that end as B or P */
    ir_sbp f = cur.a[a], t = to->a[a];
    if (ir_sbp_eq(f, t) || t.kind == SBP_S) continue;
    if (is_p(f) && is_p(t)) add_step(g, r, &cur, a, B, steps, &n);
    add_step(g, r, &cur, a, t, steps, &n);
  }
  for (int a = 0; a < m; a++) { /* 2: S -> S and P -> S, through B if the result would not divide */
    ir_sbp f = cur.a[a], t = to->a[a];
    if (ir_sbp_eq(f, t) || f.kind == SBP_B) continue;
    ir_ndsbp next = cur;
    next.a[a] = t;
    add_step(g, r, &cur, a, ir_ndsbp_fits(g, r, &next, &g->mesh) ? t : B, steps, &n);
  }
  for (int a = 0; a < m; a++) /* 3: slice what is still B */
    if (!ir_sbp_eq(cur.a[a], to->a[a])) add_step(g, r, &cur, a, to->a[a], steps, &n);
  return n;
}

/* ---- insertion ------------------------------------------------------------- */

typedef struct {
  ir_ref src, res;
  ir_ndsbp want;
} conv;

typedef struct {
  ir_graph *g;
  ir_op *ops; int nops, cap;   /* the new op table */
  conv *cv; int ncv, capcv;    /* conversions made so far */
  int *tnext;                  /* per block * maxlayer: next tensor lidx */
  int maxlayer;
} bctx;

static void push_op(bctx *c, const ir_op *o) {
  if (c->nops == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->ops = xrealloc(c->ops, sizeof *c->ops * (size_t)c->cap);
  }
  c->ops[c->nops++] = *o;
}

/* new_tensor: an activation like r with SBP s, placed in (block, layer). */
static ir_ref new_tensor(bctx *c, ir_ref r, const ir_ndsbp *s, const ir_op *at) {
  ir_graph *g = c->g;
  ir_tensor t = ir_tensor_init(NULL, IR_T_ACT, (ir_dtype)g->t[r].dtype);
  t.rank = g->t[r].rank;
  memcpy(t.shape, g->t[r].shape, sizeof t.shape);
  t.sbp = *s;
  t.loc = at->loc;
  t.block = at->block, t.layer = at->layer;
  if (at->block >= 0 && at->layer >= 0 && at->layer < c->maxlayer)
    t.lidx = c->tnext[at->block * c->maxlayer + at->layer]++;
  t.grad_of = IR_NONE;
  ir_ref n = ir_tensor_add(g, &t);
  g->t[n].name = arena_printf(g->arena, "%%%d", n);
  return n;
}

/* step: one comm op applying step *s to r (SBP *cur). */
static ir_ref step(bctx *c, ir_ref r, ir_ndsbp *cur, const ir_boxstep *s, const ir_op *place) {
  ir_op o = ir_op_init(s->kind);
  ir_ndsbp next = *cur;
  next.a[s->axis] = s->to;
  o.nin = o.nout = 1;
  o.in[0] = r;
  o.out[0] = new_tensor(c, r, &next, place);
  o.at.mesh_axis = s->axis;
  o.at.from = s->from, o.at.to = s->to;
  o.in_sbp[0] = *cur, o.out_sbp[0] = next;
  o.comm_bytes = s->bytes;
  o.sig = 0;
  o.loc = place->loc;
  o.block = place->block, o.layer = place->layer;
  push_op(c, &o);
  *cur = next;
  return o.out[0];
}

/* convert: r boxed to `want`, reusing an earlier conversion. */
static ir_ref convert(bctx *c, ir_ref r, const ir_ndsbp *want, const ir_op *consumer) {
  for (int i = 0; i < c->ncv; i++)
    if (c->cv[i].src == r && ir_ndsbp_eq(&c->cv[i].want, want)) return c->cv[i].res;
  ir_op place = *consumer;
  const ir_tensor *src = &c->g->t[r];
  if (src->block != consumer->block || src->layer != consumer->layer) place.block = place.layer = -1;
  ir_ndsbp cur = src->sbp;
  ir_boxstep st[IR_MAXBOXSTEPS];
  int n = ir_boxing_plan(c->g, r, &cur, want, st);
  ir_ref x = r;
  for (int i = 0; i < n; i++) x = step(c, x, &cur, &st[i], &place);
  if (c->ncv == c->capcv) {
    c->capcv = c->capcv ? c->capcv * 2 : 64;
    c->cv = xrealloc(c->cv, sizeof *c->cv * (size_t)c->capcv);
  }
  c->cv[c->ncv++] = (conv){r, x, *want};
  return x;
}

/* ---- layer bookkeeping --------------------------------------------------------- */

static int max_layer(const ir_graph *g) {
  int m = 0;
  for (int i = 0; i < g->nt; i++)
    if (g->t[i].layer + 1 > m) m = g->t[i].layer + 1;
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].layer + 1 > m) m = g->op[i].layer + 1;
  return m;
}

static void init_tnext(bctx *c) {
  const ir_graph *g = c->g;
  size_t n = (size_t)(g->nblk > 0 ? g->nblk : 1) * (size_t)(c->maxlayer > 0 ? c->maxlayer : 1);
  c->tnext = xcalloc(n, sizeof *c->tnext);
  for (int i = 0; i < g->nt; i++) {
    const ir_tensor *t = &g->t[i];
    if (t->block < 0 || t->block >= g->nblk || t->layer < 0) continue;
    int *k = &c->tnext[t->block * c->maxlayer + t->layer];
    if (t->lidx + 1 > *k) *k = t->lidx + 1;
  }
}

/* renumber: op lidx in order inside each layer; block sizes from layer 0. */
static void renumber(ir_graph *g, int maxlayer) {
  size_t n = (size_t)(g->nblk > 0 ? g->nblk : 1) * (size_t)(maxlayer > 0 ? maxlayer : 1);
  int *next = xcalloc(n, sizeof *next);
  for (int i = 0; i < g->nop; i++) {
    ir_op *o = &g->op[i];
    if (o->block < 0 || o->block >= g->nblk || o->layer < 0) continue;
    o->lidx = next[o->block * maxlayer + o->layer]++;
  }
  for (int b = 0; b < g->nblk; b++) {
    g->blk[b].ops_per_layer = next[b * maxlayer];
    int nt = 0;
    for (int i = 0; i < g->nt; i++) nt += g->t[i].block == b && g->t[i].layer == 0;
    g->blk[b].tensors_per_layer = nt;
  }
  free(next);
}

bool ir_insert_boxing(ir_graph *g, diag *d) {
  if (g->mesh.n <= 0) return g->boxed = true, ir_verify_after(g, d, "boxing insertion");
  bctx c = {g, NULL, 0, 0, NULL, 0, 0, NULL, max_layer(g)};
  init_tnext(&c);
  for (int i = 0; i < g->nop; i++) {
    ir_op o = g->op[i];
    for (int j = 0; j < o.nin; j++)
      if (!ir_ndsbp_eq(&g->t[o.in[j]].sbp, &o.in_sbp[j])) o.in[j] = convert(&c, o.in[j], &o.in_sbp[j], &o);
    push_op(&c, &o);
  }
  free(g->op);
  g->op = c.ops, g->nop = c.nops, g->capop = c.cap;
  for (int i = 0; i < g->nt; i++) g->t[i].producer = IR_NONE;
  for (int i = 0; i < g->nop; i++)
    for (int k = 0; k < g->op[i].nout; k++) g->t[g->op[i].out[k]].producer = i;
  renumber(g, c.maxlayer);
  free(c.cv);
  free(c.tnext);
  g->boxed = true;
  return ir_verify_after(g, d, "boxing insertion");
}
