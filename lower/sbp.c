/* sbp.c — the planner's SBP on the tensor-parallel axis, then boxing.
 *
 * With tp > 1 the training graph is put on a 1-D mesh of tp devices. Every
 * forward op the plan lists (its "ops": layer 0 of each block and the ops
 * outside blocks, by their index in the forward graph) gets the signature
 * the planner chose; the other layers of a block take layer 0's (ir/sbp.c
 * keeps layers identical); a parameter whose forward consumers all want one
 * split layout is stored that way (as if hinted), so the planner's sharding
 * is the storage, and a parameter's update (adamw) takes the layout its
 * forward consumers agree on (its gradient is boxed into it). Backward ops, which the planner does not
 * list, are deduced greedily from there; the model's own @ hints give way
 * to the plan. A plan made for another model (an
 * op index out of range, an op kind that differs, another parameter count)
 * is refused. Without a plan the model's @ hints drive the same deduction.
 * Then adamw's parameter and state must need no boxing (they are updated in
 * place), and ir_insert_boxing adds the collectives. Boxing rebuilds the op
 * table, so fwd_of is carried over by the ops' first outputs, which stay. */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

static bool parse_list(const char *const *s, int n, ir_sbp *out) {
  for (int i = 0; i < n; i++)
    if (!ir_sbp_parse(s[i], &out[i])) return false;
  return true;
}

/* fixed_from_plan: fixed[k] for every forward op the plan lists */
static bool fixed_from_plan(lw_ctx *c, ir_sig *fixed, bool *has) {
  const sbpc_plan *pl = c->lay.plan;
  for (int i = 0; i < pl->nops; i++) {
    const sbpc_plan_op *po = &pl->ops[i];
    if (po->index < 0) continue; /* an old plan without indices: deduce */
    if (!parse_list(po->in_sbp, po->nin, fixed[po->index].in) || !parse_list(po->out_sbp, po->nout, fixed[po->index].out)) {
      diag_error(c->d, (srcloc){0, 0}, "the plan's op %d has an SBP the executor does not know", i);
      return false;
    }
    has[po->index] = true;
  }
  return true;
}

/* spread: the plan lists layer 0 of each block; every layer takes layer 0's
 * signatures (the layers of a block are identical) */
static void spread(lw_ctx *c, ir_sig *fixed, bool *has) {
  const ir_graph *g = c->p->g;
  for (int k = 0; k < c->nfwd; k++) {
    const ir_op *o = &g->op[k];
    if (has[k] || o->block < 0 || o->layer <= 0) continue;
    for (int j = 0; j < c->nfwd; j++) {
      const ir_op *z = &g->op[j];
      if (has[j] && z->block == o->block && z->layer == 0 && z->lidx == o->lidx && z->kind == o->kind) {
        fixed[k] = fixed[j], has[k] = true;
        break;
      }
    }
  }
}

/* agreed: whether every forward consumer of parameter t wants it in one
 * layout (*want), as the plan fixes them (a consumer the plan does not fix
 * wants it whole) */
static bool agreed(const lw_ctx *c, const ir_sig *fixed, const bool *has, ir_ref t, ir_sbp *want) {
  const ir_graph *g = c->p->g;
  bool seen = false;
  *want = (ir_sbp){SBP_B, 0};
  for (int k = 0; k < c->nfwd; k++)
    for (int i = 0; i < g->op[k].nin; i++) {
      if (g->op[k].in[i] != t) continue;
      ir_sbp s = has[k] ? fixed[k].in[i] : (ir_sbp){SBP_B, 0};
      if (seen && !ir_sbp_eq(s, *want)) return false;
      seen = true, *want = s;
    }
  return seen;
}

/* hint_params: a parameter every fixed forward consumer wants in one split
 * layout is stored in it; any other is stored as the deduction settles it.
 * The plan decides: the model's own @ hints give way to it. Then each
 * parameter whose consumers agree on a layout, split or whole, is updated
 * where it lies: its adamw takes that layout for the parameter, its
 * gradient and its states, and boxing brings the gradient into it (a
 * reduce-scatter or an all-reduce of a partial sum, a slice of a whole
 * one). Left to the greedy deduction, the update followed the gradient
 * instead (a sharded update of a replicated weight whose gradient is a
 * partial sum over a token split), which cannot run in place. */
static void hint_params(lw_ctx *c, ir_sig *fixed, bool *has) {
  ir_graph *g = c->p->g;
  for (int t = 0; t < g->nt; t++) {
    ir_tensor *x = &g->t[t];
    if (x->kind != IR_T_PARAM) continue;
    x->has_hint = false;
    ir_sbp want;
    if (!agreed(c, fixed, has, t, &want)) continue;
    if (want.kind == SBP_S) x->has_hint = true, x->hint.n = 1, x->hint.a[0] = want;
    for (int k = c->nfwd; k < g->nop; k++) {
      const ir_op *o = &g->op[k];
      if (o->kind != IR_OP_ADAMW || o->in[0] != t || has[k]) continue;
      for (int i = 0; i < o->nin && i < IR_MAXIN; i++) fixed[k].in[i] = want;
      for (int i = 0; i < o->nout && i < IR_MAXOUT; i++) fixed[k].out[i] = want;
      has[k] = true;
    }
  }
}

/* adamw updates param and state in place: they must need no boxing */
static bool fix_states(lw_ctx *c) {
  ir_graph *g = c->p->g;
  for (int k = 0; k < g->nop; k++) {
    ir_op *o = &g->op[k];
    if (o->kind != IR_OP_ADAMW) continue;
    if (!ir_ndsbp_eq(&g->t[o->in[0]].sbp, &o->in_sbp[0])) {
      diag_error(c->d, o->loc, "tensor parallelism: the update of '%s' needs its parameter re-laid out", g->t[o->in[0]].name);
      return false;
    }
    g->t[o->in[2]].sbp = o->in_sbp[2];
    g->t[o->in[3]].sbp = o->in_sbp[3];
  }
  return true;
}

/* defer_grad_sums: a parameter's gradient that is a partial sum over tp
 * (its consumers split the batch or the tokens) while its update wants it
 * whole is not all-reduced per micro-batch: the partial sums accumulate,
 * and the bucket's tp reduce actor (actors.c) sums them over tp once per
 * step, after the last micro-batch, as the planner prices it (layer.c,
 * edge_parts: r.step) and as Megatron reduces its sequence-parallel
 * layernorm gradients. The update takes the gradient as it lies (P), so
 * boxing adds nothing before it. Under ZeRO-2/3 the dp reduce-scatter of
 * each micro-batch sums the partial sums' slices over dp and the tp reduce
 * then sums the shards over tp (the tp ranks hold the same dp slice). A
 * gradient whose update wants it split (P to S, a reduce-scatter) stays
 * boxed per micro-batch: its accumulator is the shard. */
static bool tp_psum(const ir_ndsbp *s) { return s->n == 1 && s->a[0].kind == SBP_PSUM; }

static void defer_grad_sums(lw_ctx *c) {
  ir_graph *g = c->p->g;
  for (int k = 0; k < g->nop; k++) {
    ir_op *o = &g->op[k];
    if (o->kind != IR_OP_ADAMW) continue;
    const ir_ndsbp *gs = &g->t[o->in[1]].sbp;
    if (tp_psum(gs) && o->in_sbp[1].n == 1 && o->in_sbp[1].a[0].kind == SBP_B) o->in_sbp[1] = *gs;
  }
}

bool lw_grad_tp_sum(const fmt_prog *p, const fmt_param *q) {
  return q->grad >= 0 && p->tp > 1 && tp_psum(&p->g->t[q->grad].sbp);
}

/* carry fwd_of over boxing, which rebuilds the op table, by the ops' first
 * output tensors (nold ops before; self_out / fwd_out: their first outputs
 * and those of the forward ops they differentiate) */
static void remap_fwd_of(lw_ctx *c, const ir_ref *self_out, const ir_ref *fwd_out, int nold) {
  ir_graph *g = c->p->g;
  int *old_of = xmalloc(sizeof(int) * (size_t)g->nt), *prod = xmalloc(sizeof(int) * (size_t)g->nt);
  for (int t = 0; t < g->nt; t++) old_of[t] = prod[t] = -1;
  for (int k = 0; k < nold; k++) old_of[self_out[k]] = k;
  for (int k = 0; k < g->nop; k++) prod[g->op[k].out[0]] = k;
  free(c->fwd_of);
  c->fwd_of = xmalloc(sizeof(int32_t) * (size_t)(g->nop + 1));
  for (int k = 0; k < g->nop; k++) {
    int old = old_of[g->op[k].out[0]];
    c->fwd_of[k] = old >= 0 && fwd_out[old] != IR_NONE ? prod[fwd_out[old]] : -1;
  }
  free(old_of);
  free(prod);
}

static bool box(lw_ctx *c) {
  ir_graph *g = c->p->g;
  int nold = g->nop;
  ir_ref *self_out = xmalloc(sizeof(ir_ref) * (size_t)(nold + 1)), *fwd_out = xmalloc(sizeof(ir_ref) * (size_t)(nold + 1));
  for (int k = 0; k < nold; k++) {
    self_out[k] = g->op[k].out[0];
    fwd_out[k] = c->fwd_of[k] >= 0 ? g->op[c->fwd_of[k]].out[0] : IR_NONE;
  }
  bool ok = ir_insert_boxing(g, c->d);
  if (ok) remap_fwd_of(c, self_out, fwd_out, nold);
  free(self_out);
  free(fwd_out);
  return ok;
}

/* a boxing op inserted before a backward op's input is part of the backward
 * pass (its phase and stage are the consumer's): mark it so */
static void mark_backward(lw_ctx *c) {
  ir_graph *g = c->p->g;
  for (int k = 0; k < g->nop; k++) {
    ir_op *o = &g->op[k];
    if (o->backward || ir_ops[o->kind].kclass != KC_COMM) continue;
    ir_ref pr = g->t[o->in[0]].producer;
    if (pr < 0 || !g->op[pr].backward) continue;
    o->backward = true;
    c->fwd_of[k] = c->fwd_of[pr];
  }
}

bool lw_sbp(lw_ctx *c) {
  ir_graph *g = c->p->g;
  c->split = xmalloc(sizeof(int32_t) * (size_t)(g->nt + 1));
  if (c->lay.tp <= 1) {
    for (int t = 0; t < g->nt; t++) c->split[t] = -1;
    return true;
  }
  g->mesh.n = 1;
  g->mesh.size[0] = c->lay.tp;
  g->mesh.axis_name[0] = "tp";
  ir_sig *fixed = xcalloc((size_t)g->nop + 1, sizeof *fixed);
  bool *has = xcalloc((size_t)g->nop + 1, sizeof *has);
  bool ok = !c->lay.plan || fixed_from_plan(c, fixed, has);
  if (ok && c->lay.plan) spread(c, fixed, has), hint_params(c, fixed, has);
  ok = ok && ir_deduce_sbp_fixed(g, fixed, has, c->d) && fix_states(c);
  if (ok) defer_grad_sums(c);
  ok = ok && box(c);
  free(fixed);
  free(has);
  if (!ok) return false;
  mark_backward(c);
  c->split = xrealloc(c->split, sizeof(int32_t) * (size_t)(g->nt + 1));
  for (int t = 0; t < g->nt; t++) c->split[t] = g->t[t].sbp.n == 1 && g->t[t].sbp.a[0].kind == SBP_S ? g->t[t].sbp.a[0].axis : -1;
  return true;
}
