/* autodiff.c — reverse-mode differentiation of a forward graph, plus AdamW.
 *
 * Two marking sweeps decide which tensors need a gradient: forward from the
 * float parameters (a tensor depends on a parameter) and backward from the loss
 * (the loss depends on the tensor). Then the forward ops are walked in reverse;
 * each op with a gradient on one of its outputs runs its rule (grad.c), and the
 * gradients of its inputs are summed into gsum[] with `add` ops when a tensor
 * has several consumers. Finally every parameter with a gradient gets its two
 * optimizer-state tensors and one `adamw` op. New ops carry the forward op's
 * block/layer; lidx is renumbered per layer at the end so the layers of a
 * block stay structurally identical (verify.c checks it). */
#include "ir/autodiff.h"
#include <stdlib.h>
#include <string.h>

ir_adamw_cfg ir_adamw_default(void) {
  ir_adamw_cfg c = {1e-3, 0.9, 0.999, 1e-8, 0.01};
  return c;
}

static ir_ref new_tensor(ir_grad_ctx *c, ir_dtype dt, int rank, const ir_dim *shape) {
  ir_tensor t = ir_tensor_init(NULL, IR_T_ACT, dt);
  t.rank = (uint8_t)rank;
  for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
  t.block = c->fwd.block;
  t.layer = c->fwd.layer;
  t.loc = c->fwd.loc;
  ir_ref r = ir_tensor_add(c->g, &t);
  c->g->t[r].name = arena_printf(c->g->arena, "%%%d", r);
  return r;
}

static ir_ref add_op(ir_grad_ctx *c, ir_opkind k, const ir_ref *ins, int nin, const ir_attrs *at,
                     const ir_ref *outs, int nout) {
  ir_op o = ir_op_init(k);
  if (at) o.at = *at;
  o.nin = (uint8_t)nin;
  o.nout = (uint8_t)nout;
  for (int i = 0; i < nin; i++) o.in[i] = ins[i];
  for (int i = 0; i < nout; i++) o.out[i] = outs[i];
  o.block = c->fwd.block;
  o.layer = c->fwd.layer;
  o.backward = true;
  o.loc = c->fwd.loc;
  return ir_op_add(c->g, &o);
}

void ir_grad_emit(ir_grad_ctx *c, ir_opkind k, const ir_ref *ins, int nin, const ir_attrs *at,
                  const ir_ref *likes, int nout, ir_ref *outs) {
  for (int i = 0; i < nout; i++) {
    ir_tensor l = c->g->t[likes[i]];
    outs[i] = new_tensor(c, (ir_dtype)l.dtype, l.rank, l.shape);
  }
  add_op(c, k, ins, nin, at, outs, nout);
}

ir_ref ir_grad_emit_shape(ir_grad_ctx *c, ir_opkind k, const ir_ref *ins, int nin, const ir_attrs *at,
                          ir_dtype dt, int rank, const ir_dim *shape) {
  ir_ref out = new_tensor(c, dt, rank, shape);
  add_op(c, k, ins, nin, at, &out, 1);
  return out;
}

static bool is_float(const ir_tensor *t) { return t->dtype == IR_F32 || t->dtype == IR_F16 || t->dtype == IR_BF16; }

/* req[t]: t is a float tensor that depends on a float parameter */
static void mark_forward(const ir_graph *g, int nop, bool *req) {
  for (int i = 0; i < g->nt; i++) req[i] = g->t[i].kind == IR_T_PARAM && is_float(&g->t[i]);
  for (int k = 0; k < nop; k++) {
    const ir_op *o = &g->op[k];
    bool any = false;
    for (int i = 0; i < o->nin; i++) any |= req[o->in[i]];
    for (int i = 0; i < o->nout; i++) req[o->out[i]] = any && is_float(&g->t[o->out[i]]);
  }
}

/* use[t]: the loss depends on t */
static void mark_backward(const ir_graph *g, int nop, bool *use) {
  memset(use, 0, sizeof *use * (size_t)g->nt);
  use[g->loss] = true;
  for (int k = nop - 1; k >= 0; k--) {
    const ir_op *o = &g->op[k];
    bool any = false;
    for (int i = 0; i < o->nout; i++) any |= use[o->out[i]];
    if (any)
      for (int i = 0; i < o->nin; i++) use[o->in[i]] = true;
  }
}

static void accumulate(ir_grad_ctx *c, ir_ref *gsum, ir_ref t, ir_ref dx) {
  if (gsum[t] == IR_NONE) {
    gsum[t] = dx;
    return;
  }
  ir_ref ins[2] = {gsum[t], dx}, out;
  ir_grad_emit(c, IR_OP_ADD, ins, 2, NULL, &t, 1, &out);
  gsum[t] = out;
}

static bool diff_op(ir_graph *g, int k, const bool *need_t, ir_ref *gsum, diag *d) {
  ir_grad_ctx c = {g, g->op[k], d};
  ir_ref dout[IR_MAXOUT], din[IR_MAXIN];
  bool need[IR_MAXIN], any_out = false, any_in = false;
  for (int i = 0; i < c.fwd.nout; i++) {
    dout[i] = gsum[c.fwd.out[i]];
    any_out |= dout[i] != IR_NONE || c.fwd.out[i] == g->loss;
  }
  for (int i = 0; i < c.fwd.nin; i++) {
    need[i] = need_t[c.fwd.in[i]];
    any_in |= need[i];
    din[i] = IR_NONE;
  }
  if (!any_out || !any_in) return true;
  ir_grad_rule rule = ir_grad_rule_of((ir_opkind)c.fwd.kind);
  if (!rule) {
    diag_error(d, c.fwd.loc, "autodiff: op '%s' has no gradient rule", ir_ops[c.fwd.kind].name);
    return false;
  }
  if (c.fwd.kind == IR_OP_CROSS_ENTROPY && c.fwd.out[0] != g->loss) {
    diag_error(d, c.fwd.loc, "autodiff: cross_entropy is differentiated only as the loss itself");
    return false;
  }
  if (!rule(&c, dout, need, din)) return false;
  for (int i = 0; i < c.fwd.nin; i++)
    if (need[i] && din[i] != IR_NONE) accumulate(&c, gsum, c.fwd.in[i], din[i]);
  return true;
}

static ir_ref state_like(ir_graph *g, ir_ref p, const char *suffix) {
  ir_tensor t = g->t[p];
  t.name = arena_printf(g->arena, "%s.%s", g->t[p].name, suffix);
  t.kind = IR_T_STATE;
  t.producer = IR_NONE;
  t.has_hint = false;
  t.sbp.n = 0;
  return ir_tensor_add(g, &t);
}

static void add_adamw(ir_graph *g, ir_ref p, ir_ref grad, const ir_adamw_cfg *cfg) {
  g->t[grad].kind = IR_T_GRAD;
  g->t[grad].grad_of = p;
  ir_ref m = state_like(g, p, "exp_avg"), v = state_like(g, p, "exp_avg_sq");
  ir_ref outs[3] = {state_like(g, p, "next"), state_like(g, m, "next"), state_like(g, v, "next")};
  ir_op o = ir_op_init(IR_OP_ADAMW);
  o.nin = 4;
  o.nout = 3;
  o.in[0] = p, o.in[1] = grad, o.in[2] = m, o.in[3] = v;
  for (int i = 0; i < 3; i++) o.out[i] = outs[i];
  o.at.lr = cfg->lr, o.at.beta1 = cfg->beta1, o.at.beta2 = cfg->beta2;
  o.at.eps = cfg->eps, o.at.weight_decay = cfg->weight_decay;
  o.block = g->t[p].block, o.layer = g->t[p].layer;
  o.backward = true;
  o.loc = g->t[p].loc;
  ir_op_add(g, &o);
}

/* renumber lidx per (block, layer) in table order, and the per-layer counts */
static void renumber(ir_graph *g) {
  for (int b = 0; b < g->nblk; b++) {
    int cnt = g->blk[b].count > 0 ? g->blk[b].count : 1;
    int *no = xcalloc((size_t)cnt, sizeof *no), *nt = xcalloc((size_t)cnt, sizeof *nt);
    for (int k = 0; k < g->nop; k++)
      if (g->op[k].block == b && g->op[k].layer >= 0 && g->op[k].layer < cnt) g->op[k].lidx = no[g->op[k].layer]++;
    for (int k = 0; k < g->nt; k++)
      if (g->t[k].block == b && g->t[k].layer >= 0 && g->t[k].layer < cnt) g->t[k].lidx = nt[g->t[k].layer]++;
    g->blk[b].ops_per_layer = no[0];
    g->blk[b].tensors_per_layer = nt[0];
    free(no);
    free(nt);
  }
}

bool ir_autodiff(ir_graph *g, const ir_adamw_cfg *opt, diag *d) { return ir_autodiff_map(g, opt, d, NULL); }

static void record(int32_t **map, int *cap, int from, int to, int32_t val) {
  if (!map) return;
  if (to > *cap) {
    int n = *cap;
    *cap = to * 2;
    *map = xrealloc(*map, sizeof **map * (size_t)*cap);
    for (int i = n; i < *cap; i++) (*map)[i] = -1;
  }
  for (int i = from; i < to; i++) (*map)[i] = val;
}

bool ir_autodiff_map(ir_graph *g, const ir_adamw_cfg *opt, diag *d, int32_t **fwd_of) {
  int cap = 0;
  ir_grad_install();
  if (fwd_of) *fwd_of = NULL;
  record(fwd_of, &cap, 0, g->nop, -1);
  ir_adamw_cfg cfg = opt ? *opt : ir_adamw_default();
  if (g->loss == IR_NONE || g->loss >= g->nt) {
    diag_error(d, (srcloc){0, 0}, "autodiff: model '%s' has no loss", g->name);
    return false;
  }
  ir_ref lp = g->t[g->loss].producer;
  if (lp == IR_NONE || g->op[lp].kind != IR_OP_CROSS_ENTROPY) {
    diag_error(d, g->t[g->loss].loc, "autodiff: the loss must be a cross_entropy");
    return false;
  }
  int nop = g->nop, nt = g->nt;
  bool *req = xcalloc((size_t)nt, sizeof *req), *use = xcalloc((size_t)nt, sizeof *use);
  ir_ref *gsum = xmalloc(sizeof *gsum * (size_t)nt);
  mark_forward(g, nop, req);
  mark_backward(g, nop, use);
  for (int i = 0; i < nt; i++) {
    req[i] = req[i] && use[i];
    gsum[i] = IR_NONE;
  }
  bool ok = true;
  for (int k = nop - 1; k >= 0 && ok; k--) {
    int before = g->nop;
    ok = diff_op(g, k, req, gsum, d);
    record(fwd_of, &cap, before, g->nop, k);
  }
  int before = g->nop;
  for (int p = 0; p < nt && ok; p++)
    if (g->t[p].kind == IR_T_PARAM && gsum[p] != IR_NONE) add_adamw(g, p, gsum[p], &cfg);
  record(fwd_of, &cap, before, g->nop, -1);
  if (ok) renumber(g);
  free(req);
  free(use);
  free(gsum);
  return ok;
}

ir_ref ir_grad_ref(const ir_graph *g, ir_ref t) {
  for (int i = 0; i < g->nt; i++)
    if (g->t[i].kind == IR_T_GRAD && g->t[i].grad_of == t) return i;
  return IR_NONE;
}
