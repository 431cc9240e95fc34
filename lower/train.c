/* train.c — the first lowering pass: the training graph.
 *
 * ir_autodiff_map appends the backward ops and one AdamW op per parameter
 * (ir/autodiff.h) and tells, for every backward op, the forward op it
 * differentiates (placement puts it on that op's stage). Then B is bound to
 * the local micro-batch (global batch / dp / micro-batches) and S to the
 * sequence length (its 1/sp share under sequence parallelism: sp.c), so
 * every later pass sees concrete shapes. The layout is
 * checked here, before any pass depends on it. */
#include "lower/lower.h"
#include "ir/autodiff.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lw_ctx_init(lw_ctx *c, ir_graph *g, const lw_layout *lay, diag *d) {
  memset(c, 0, sizeof *c);
  c->p = fmt_prog_new();
  c->p->g = g;
  c->p->model = arena_strdup(c->p->a, g->name ? g->name : "model");
  c->lay = *lay;
  c->d = d;
  c->nfwd = g->nop;
}

void lw_ctx_done(lw_ctx *c) {
  free(c->fwd_of);
  free(c->groups);
  free(c->split);
  free(c->logical);
  free(c->group_of), free(c->gops), free(c->gnops), free(c->gkernel);
  c->fwd_of = NULL, c->groups = NULL, c->split = NULL, c->logical = NULL;
  c->group_of = NULL, c->gops = NULL, c->gnops = NULL, c->gkernel = NULL;
}

uint64_t lw_model_hash(const ir_graph *g) {
  uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
  for (int t = 0; t < g->nt; t++) {
    for (const char *s = g->t[t].name ? g->t[t].name : ""; *s; s++) MIX((unsigned char)*s);
    MIX(g->t[t].kind), MIX(g->t[t].rank);
    for (int i = 0; i < g->t[t].rank; i++) MIX(g->t[t].shape[i].c), MIX(g->t[t].shape[i].b), MIX(g->t[t].shape[i].s);
  }
  for (int k = 0; k < g->nop; k++) {
    MIX(g->op[k].kind);
    for (int i = 0; i < g->op[k].nin; i++) MIX(g->op[k].in[i]);
  }
#undef MIX
  return h;
}

/* is_bs: the dims are exactly [B, S] */
static bool is_bs(const ir_tensor *t) {
  return t->rank == 2 && t->shape[0].c == 1 && t->shape[0].b == 1 && t->shape[0].s == 0 && t->shape[1].c == 1 &&
         t->shape[1].b == 0 && t->shape[1].s == 1;
}

/* the executor feeds two inputs, token ids and labels, both i32[B, S] */
static bool check_inputs(lw_ctx *c) {
  const ir_graph *g = c->p->g;
  int n = 0;
  for (int t = 0; t < g->nt; t++) {
    const ir_tensor *x = &g->t[t];
    if (x->kind != IR_T_INPUT) continue;
    if (x->dtype == IR_I32 && is_bs(x) && ++n <= 2) continue;
    char shape[IR_MAXRANK * 50] = "", d[48];
    for (int i = 0; i < x->rank; i++) {
      strcat(shape, i ? ", " : "");
      strcat(shape, ir_dim_str(x->shape[i], d, sizeof d));
    }
    diag_error(c->d, x->loc, "input '%s' is %s[%s]; sbpc run feeds two inputs, token ids and labels, both i32[B, S]",
               x->name, ir_dtype_name(x->dtype), shape);
    return false;
  }
  return true;
}

/* an embedding of positions(S) looks up rows 0..S-1 of its table: the table
 * must have at least seq rows (a shorter one would give zero embeddings) */
static bool positions_fit(lw_ctx *c) {
  const ir_graph *g = c->p->g;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    ir_ref pr = o->kind == IR_OP_EMBEDDING ? g->t[o->in[0]].producer : -1;
    if (pr < 0 || g->op[pr].kind != IR_OP_POSITIONS) continue;
    const ir_tensor *pos = &g->t[g->op[pr].out[0]], *tab = &g->t[o->in[1]];
    int64_t n = pos->rank ? ir_dim_eval(pos->shape[pos->rank - 1], 1, c->lay.seq) : 0;
    int64_t rows = tab->rank ? ir_dim_eval(tab->shape[0], 1, c->lay.seq) : 0;
    if (n > rows) {
      diag_error(c->d, tab->loc, "sequence length %lld is longer than the position table '%s' (%lld rows)", (long long)n,
                 tab->name, (long long)rows);
      return false;
    }
  }
  return true;
}

static bool check_layout(lw_ctx *c) {
  const lw_layout *l = &c->lay;
  const ir_graph *g = c->p->g;
  if (l->dp < 1 || l->tp < 1 || l->pp < 1 || l->micro < 1 || l->pp > 64) {
    diag_error(c->d, (srcloc){0, 0}, "layout dp %d tp %d pp %d micro %d: degrees must be >= 1 (pp <= 64)", l->dp, l->tp, l->pp, l->micro);
    return false;
  }
  if (l->global_batch <= 0 || (!l->adaptive && l->global_batch % ((int64_t)l->dp * l->micro))) {
    diag_error(c->d, (srcloc){0, 0}, "global batch %lld does not divide into dp %d x %d micro-batches", (long long)l->global_batch, l->dp, l->micro);
    return false;
  }
  if (l->seq <= 0) {
    diag_error(c->d, (srcloc){0, 0}, "no sequence length (train { seq = ... } or --seq)");
    return false;
  }
  int maxl = 0;
  for (int b = 0; b < g->nblk; b++) maxl = g->blk[b].count > maxl ? g->blk[b].count : maxl;
  int vpp = l->vpp > 1 ? l->vpp : 1;
  if (l->pp > 1 && maxl < l->pp * vpp) {
    diag_error(c->d, (srcloc){0, 0}, "pipeline of %d stages x %d chunks needs at least %d layers, the model has %d", l->pp,
               vpp, l->pp * vpp, maxl);
    return false;
  }
  int sp = l->sp > 1 ? l->sp : 1;
  if (sp > 1 && (l->tp > 1 || l->seq % sp || l->sp_kind < 0 || l->sp_kind >= FMT_NSPKINDS)) {
    diag_error(c->d, (srcloc){0, 0}, "sequence parallelism (sp %d) needs tp 1 and a sequence length (%lld) that divides by sp", sp,
               (long long)l->seq);
    return false;
  }
  if (vpp > 1 && (l->pp < 2 || vpp > 64 || l->micro % l->pp)) {
    diag_error(c->d, (srcloc){0, 0}, "interleaved pipeline (vpp %d) needs pp >= 2 and micro-batches (%d) a multiple of pp (%d)",
               vpp, l->micro, l->pp);
    return false;
  }
  if (g->loss == IR_NONE) {
    diag_error(c->d, (srcloc){0, 0}, "the model has no loss to train");
    return false;
  }
  return true;
}

static bool refuse_plan(lw_ctx *c, const char *why, int i) {
  diag_error(c->d, (srcloc){0, 0}, "the plan was made for another model: %s%s", why, i >= 0 ? "" : "");
  if (i >= 0) diag_note(c->d, (srcloc){0, 0}, "at the plan's op %d", i);
  return false;
}

/* the plan is this model's: its parameter count, and every op it lists (by
 * index in the forward graph) of the same kind and arity */
static bool plan_fits(lw_ctx *c) {
  const sbpc_plan *pl = c->lay.plan;
  const ir_graph *g = c->p->g;
  if (!pl) return true;
  if (pl->params > 0 && (int64_t)pl->params != ir_param_count(g)) {
    char why[128];
    snprintf(why, sizeof why, "%.0f parameters, the model has %lld", pl->params, (long long)ir_param_count(g));
    return refuse_plan(c, why, -1);
  }
  for (int i = 0; i < pl->nops; i++) {
    const sbpc_plan_op *po = &pl->ops[i];
    if (po->index < 0) continue;
    if (po->index >= c->nfwd) return refuse_plan(c, "an op index out of range", i);
    const ir_op *o = &g->op[po->index];
    if (!po->kind || strcmp(po->kind, ir_ops[o->kind].name)) return refuse_plan(c, "an op of another kind", i);
    if (po->nin != o->nin || po->nout != o->nout) return refuse_plan(c, "an op of another arity", i);
  }
  return true;
}

bool lw_train(lw_ctx *c) {
  ir_graph *g = c->p->g;
  fmt_prog *p = c->p;
  if (!check_layout(c) || !lw_packed_adaptive(c) || !check_inputs(c) || !positions_fit(c) || !plan_fits(c))
    return false;
  p->model_hash = lw_model_hash(g);
  p->dp = c->lay.dp, p->tp = c->lay.tp, p->pp = c->lay.pp, p->micro = c->lay.micro;
  p->zero = lw_dp_group(c) > 1 ? c->lay.zero : 0;
  p->vpp = c->lay.vpp > 1 ? c->lay.vpp : 1;
  p->sp = c->lay.sp > 1 ? c->lay.sp : 1;
  p->sp_kind = (uint8_t)c->lay.sp_kind;
  p->recompute = c->lay.recompute;
  p->global_batch = c->lay.global_batch, p->seq = c->lay.seq;
  /* --adaptive-sp: one packed row of S / sp tokens per rank and micro-batch, up to micro of them */
  p->micro_batch = c->lay.adaptive ? 1 : c->lay.global_batch / c->lay.dp / c->lay.micro;
  p->packed = c->lay.packed;
  p->adaptive = c->lay.adaptive;
  if (c->lay.packed && !lw_packed_forward(c)) return false;
  if (!ir_autodiff_map(g, NULL, c->d, &c->fwd_of)) return false;
  if (c->lay.packed) lw_packed_mark(c);
  ir_bind(g, p->micro_batch, p->seq / p->sp); /* sp: each rank holds S / sp tokens of a sample */
  return true;
}
