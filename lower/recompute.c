/* recompute.c — activation recomputation as a graph transform.
 *
 * Policy (the plan's parallel.recompute or --recompute): full drops every
 * activation a block layer makes except what leaves the layer (a layer keeps
 * only its input); selective drops the attention outputs (the S x S scores
 * are never stored: the attention kernels recompute them in backward in
 * every mode). A dropped tensor is one made by a forward op inside a block
 * layer, read by a backward op, and read by no op of another stage.
 *
 * The transform: before the first backward op that reads a dropped tensor,
 * a clone of its producer is inserted (and, first, clones of the producers
 * of its own dropped inputs, recursively, so a full-recompute layer is
 * redone from its kept input); every backward op then reads the clone. The
 * originals are read only by forward ops, so their registers die after the
 * forward pass and the arena reuses their memory; the clones live from the
 * start of their layer's backward to their last backward reader. Clones are
 * backward ops on the original's stage with `recompute` set; a clone of a
 * dropout keeps the original's mask key (attrs.n = the original output), so
 * recomputed values equal the first ones bit for bit. The executor needs to
 * know nothing of recompute. */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  lw_ctx *c;
  ir_op *old;        /* the op table before the transform */
  int nold;
  int32_t *old_stage, *old_chunk, *old_fwd;
  bool *drop;        /* per tensor */
  ir_ref *clone;     /* per original tensor: its current clone, or -1 */
  ir_ref *orig;      /* per tensor made here (id - nt0): the original */
  int32_t *old_prod; /* per original tensor: its producer in the old table */
  int nt0, norig;
  int32_t *stage, *chunk, *fwd; /* per new op */
  int cap;
} rc;

static bool is_fwd(const ir_op *o) { return !o->backward && o->kind != IR_OP_ADAMW; }

static bool droppable(const rc *r, int k, ir_ref t) {
  const ir_op *p = &r->old[k];
  const ir_graph *g = r->c->p->g;
  if (!is_fwd(p) || p->block < 0 || p->layer < 0 || g->t[t].kind != IR_T_ACT) return false;
  if (r->c->lay.recompute == 1 && p->kind != IR_OP_ATTENTION) return false;
  bool out = false, cross = false, bwd = false;
  for (int j = 0; j < r->nold; j++) {
    const ir_op *o = &r->old[j];
    for (int i = 0; i < o->nin; i++) {
      if (o->in[i] != t) continue;
      if (r->old_stage[j] != r->old_stage[k] || r->old_chunk[j] != r->old_chunk[k]) cross = true;
      if (o->backward) bwd = true;
      else if (o->block != p->block || o->layer != p->layer) out = true;
    }
  }
  return bwd && !cross && !(out && r->c->lay.recompute == 2);
}

/* add o, placed where old op `from` is */
static void emit(rc *r, const ir_op *o, int from, int fwd) {
  ir_graph *g = r->c->p->g;
  if (g->nop >= r->cap) {
    r->cap = 2 * r->cap + 16;
    r->stage = xrealloc(r->stage, sizeof(int32_t) * (size_t)r->cap);
    r->chunk = xrealloc(r->chunk, sizeof(int32_t) * (size_t)r->cap);
    r->fwd = xrealloc(r->fwd, sizeof(int32_t) * (size_t)r->cap);
  }
  r->stage[g->nop] = r->old_stage[from], r->chunk[g->nop] = r->old_chunk[from], r->fwd[g->nop] = fwd;
  ir_op_add(g, o);
}

/* the clone of dropped tensor t (made now, with its own dropped inputs' clones first) */
static ir_ref clone_of(rc *r, ir_ref t) {
  ir_graph *g = r->c->p->g;
  if (r->clone[t] >= 0) return r->clone[t];
  int k = r->old_prod[t];
  ir_op o = r->old[k];
  for (int i = 0; i < o.nin; i++)
    if (r->drop[o.in[i]]) o.in[i] = clone_of(r, o.in[i]);
  if (o.kind == IR_OP_DROPOUT) o.at.n = r->old[k].out[0]; /* the original's mask */
  for (int i = 0; i < o.nout; i++) {
    ir_tensor x = g->t[o.out[i]];
    x.name = arena_printf(g->arena, "%s.recompute", x.name ? x.name : "t");
    x.producer = IR_NONE;
    o.out[i] = ir_tensor_add(g, &x);
    r->clone[r->old[k].out[i]] = o.out[i];
    r->orig = xrealloc(r->orig, sizeof(ir_ref) * (size_t)(o.out[i] - r->nt0 + 1));
    r->orig[o.out[i] - r->nt0] = r->old[k].out[i];
  }
  o.backward = o.recompute = true;
  o.lidx = -1;
  emit(r, &o, k, -1);
  return r->clone[t];
}

/* a new layer's backward starts: its clones are made again when first needed */
static void forget_clones(rc *r, const ir_op *o, int *layer_seen) {
  if (o->block < 0) return;
  int key = o->block * 1000000 + o->layer;
  if (*layer_seen == key) return;
  *layer_seen = key;
  for (int t = 0; t < r->nt0; t++) r->clone[t] = -1;
}

static void transform(rc *r) {
  ir_graph *g = r->c->p->g;
  g->nop = 0;
  int layer_seen = -1;
  for (int k = 0; k < r->nold; k++) {
    ir_op o = r->old[k];
    for (int i = 0; i < o.nout; i++) g->t[o.out[i]].producer = IR_NONE;
    if (o.backward && o.kind != IR_OP_ADAMW) {
      forget_clones(r, &o, &layer_seen);
      for (int i = 0; i < o.nin; i++)
        if (r->drop[o.in[i]]) o.in[i] = clone_of(r, o.in[i]);
    }
    emit(r, &o, k, r->old_fwd[k]);
  }
}

bool lw_recompute(lw_ctx *c) {
  if (c->lay.recompute == 0) return true;
  ir_graph *g = c->p->g;
  fmt_prog *p = c->p;
  rc r;
  memset(&r, 0, sizeof r);
  r.c = c, r.old = xmalloc(sizeof(ir_op) * (size_t)(g->nop + 1)), r.nold = g->nop, r.old_stage = p->op_stage, r.old_fwd = p->fwd_of;
  r.old_chunk = p->op_chunk;
  memcpy(r.old, g->op, sizeof(ir_op) * (size_t)g->nop);
  int nt0 = g->nt;
  r.nt0 = nt0;
  r.drop = xcalloc((size_t)nt0 + 1, sizeof(bool));
  for (int k = 0; k < r.nold; k++)
    for (int i = 0; i < r.old[k].nout; i++) r.drop[r.old[k].out[i]] = droppable(&r, k, r.old[k].out[i]);
  r.old_prod = xmalloc(sizeof(int32_t) * (size_t)(nt0 + 1));
  for (int t = 0; t < nt0; t++) r.old_prod[t] = g->t[t].producer;
  r.clone = xmalloc(sizeof(ir_ref) * (size_t)(nt0 + 1));
  for (int t = 0; t < nt0; t++) r.clone[t] = -1;
  transform(&r);
  p->op_stage = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  p->fwd_of = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  p->op_chunk = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  memcpy(p->op_stage, r.stage, sizeof(int32_t) * (size_t)g->nop);
  memcpy(p->op_chunk, r.chunk, sizeof(int32_t) * (size_t)g->nop);
  memcpy(p->fwd_of, r.fwd, sizeof(int32_t) * (size_t)g->nop);
  /* new tensors (clones) inherit their original's tp split and groups */
  c->split = xrealloc(c->split, sizeof(int32_t) * (size_t)(g->nt + 1));
  c->groups = xrealloc(c->groups, sizeof(int32_t) * (size_t)(g->nt + 1));
  c->logical = xrealloc(c->logical, sizeof *c->logical * (size_t)(g->nt + 1));
  for (int t = nt0; t < g->nt; t++) {
    ir_ref o = r.orig[t - nt0];
    c->split[t] = c->split[o], c->groups[t] = c->groups[o];
    memcpy(c->logical[t], c->logical[o], sizeof c->logical[t]);
  }
  free(r.old), free(r.drop), free(r.clone), free(r.orig), free(r.old_prod), free(r.stage), free(r.chunk), free(r.fwd);
  return true;
}
