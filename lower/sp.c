/* sp.c — sequence parallelism: every rank of an sp group holds S / sp
 * consecutive tokens of each sample (train.c bound S to that share), so
 * every op but attention runs unchanged on its tokens. Attention needs the
 * whole sequence, and the program's sp_kind says how it gets it: as a ring
 * (ring.c: k and v blocks passed around the group) or, here, as Ulysses
 * (DeepSpeed-Ulysses), which gives it to each rank for 1/sp of the heads:
 *
 *   q, k, v [B, S/sp, X]  --all_to_all S(1)->S(2)-->  [B, S, X/sp]
 *   attention on heads/sp (kv_heads/sp) heads, the whole sequence (causal as is)
 *   y [B, S, X/sp]        --all_to_all S(2)->S(1)-->  [B, S/sp, X]
 *
 * and in backward the gradient's all-to-alls: attention_grad reads the
 * head-split q, k, v and output made in forward and the head-split dy (an
 * all-to-all of dy), and its head-split input gradients go back to the
 * sequence split by all-to-alls. A fused qkv [.., 3H] moves in 3 groups
 * (attrs n = 3: each rank receives the q, k and v columns of its heads).
 * The all_to_all ops run on mesh axis 1 (the sp group) as coll actors.
 *
 * The loss: each rank's cross-entropy is the mean over its tokens, so it is
 * scaled by 1/sp (the step's loss and gradients are then sums over the
 * group; the gradients are reduced over dp x sp, lw_dp_group). Positions
 * and rotary embeddings start at the rank's first token (the executor
 * passes it to the kernels). The program records the kind (train.c). The
 * op table is rebuilt with the new ops next to the attention they serve,
 * so it stays in topological order. */
#include "lower/sp.h"
#include <stdlib.h>
#include <string.h>

typedef lw_spc spc;

void lw_sp_emit(spc *s, const ir_op *o, int fwd) {
  ir_graph *g = s->c->p->g;
  if (g->nop >= s->cap) s->cap = 2 * s->cap + 16, s->fwd = xrealloc(s->fwd, sizeof(int32_t) * (size_t)s->cap);
  s->fwd[g->nop] = fwd;
  ir_op_add(g, o);
}

ir_ref lw_sp_tensor(spc *s, ir_ref like, const char *suffix, int64_t last) {
  ir_graph *g = s->c->p->g;
  ir_tensor t = g->t[like];
  t.name = arena_printf(g->arena, "%s.%s", t.name ? t.name : "t", suffix);
  t.producer = IR_NONE;
  t.kind = IR_T_ACT;
  t.grad_of = IR_NONE;
  if (last > 0) t.shape[t.rank - 1] = ir_const(last);
  return ir_tensor_add(g, &t);
}

/* a new tensor like x with axis 1 times mul/div and axis 2 divided/multiplied */
static ir_ref reshaped(spc *s, ir_ref x, bool to_heads) {
  ir_graph *g = s->c->p->g;
  int64_t a = g->t[x].shape[1].c, b = g->t[x].shape[2].c;
  ir_ref y = lw_sp_tensor(s, x, to_heads ? "heads" : "seq", to_heads ? b / s->sp : b * s->sp);
  g->t[y].shape[1] = ir_const(to_heads ? a * s->sp : a / s->sp);
  return y;
}

/* all_to_all from x to y: S(1) -> S(2) (to_heads) or back, in `groups` */
static void a2a(spc *s, const ir_op *like, ir_ref x, ir_ref y, bool to_heads, int groups, int fwd) {
  ir_op o = ir_op_init(IR_OP_ALL_TO_ALL);
  o.in[0] = x, o.out[0] = y, o.nin = o.nout = 1;
  o.at.mesh_axis = 1;
  o.at.n = groups;
  o.at.from = (ir_sbp){SBP_S, to_heads ? 1 : 2};
  o.at.to = (ir_sbp){SBP_S, to_heads ? 2 : 1};
  o.block = like->block, o.layer = like->layer, o.lidx = -1;
  o.backward = like->backward, o.recompute = like->recompute;
  o.loc = like->loc;
  lw_sp_emit(s, &o, fwd);
}

/* the head-split copy of x, made now on first use */
static ir_ref to_heads(spc *s, const ir_op *like, ir_ref x, int groups, int fwd) {
  if (s->head[x] >= 0) return s->head[x];
  ir_ref h = reshaped(s, x, true);
  a2a(s, like, x, h, true, groups, fwd);
  return s->head[x] = h;
}

static bool heads_divide(spc *s, const ir_op *o) {
  if (o->at.heads % s->sp == 0 && o->at.kv_heads % s->sp == 0) return true;
  diag_error(s->c->d, o->loc, "sequence parallelism: %lld heads (%lld kv) do not divide by sp %d", (long long)o->at.heads,
             (long long)o->at.kv_heads, s->sp);
  return false;
}

/* forward attention o; its new index, or -1 */
static int forward(spc *s, ir_op o) {
  int groups = o.nin == 1 ? 3 : 1;
  if (!heads_divide(s, &o)) return -1;
  for (int i = 0; i < o.nin; i++) o.in[i] = to_heads(s, &o, o.in[i], groups, -1);
  ir_ref y = o.out[0], yh = reshaped(s, y, true);
  o.out[0] = yh, o.at.heads /= s->sp, o.at.kv_heads /= s->sp;
  int k = s->c->p->g->nop;
  lw_sp_emit(s, &o, -1);
  s->head[y] = yh;
  a2a(s, &o, yh, y, false, 1, -1);
  return k;
}

/* attention_grad o: (inputs..., out, dout) -> input gradients; its new
 * index, or -1 */
static int backward(spc *s, ir_op o, int fwd) {
  int groups = o.nin == 3 ? 3 : 1;
  if (!heads_divide(s, &o)) return -1;
  for (int i = 0; i < o.nin - 1; i++)
    if ((o.in[i] = s->head[o.in[i]]) < 0) {
      diag_error(s->c->d, o.loc, "sequence parallelism: attention_grad reads a tensor its attention did not");
      return -1;
    }
  o.in[o.nin - 1] = to_heads(s, &o, o.in[o.nin - 1], 1, fwd);
  ir_ref dx[IR_MAXOUT];
  for (int i = 0; i < o.nout; i++) dx[i] = o.out[i], o.out[i] = reshaped(s, dx[i], true);
  o.at.heads /= s->sp, o.at.kv_heads /= s->sp;
  int k = s->c->p->g->nop;
  lw_sp_emit(s, &o, fwd);
  for (int i = 0; i < o.nout; i++) a2a(s, &o, o.out[i], dx[i], false, groups, fwd);
  return k;
}

/* the per-tensor tables of the context, for the tensors made here */
static void grow_tables(lw_ctx *c, int nt0) {
  ir_graph *g = c->p->g;
  c->split = xrealloc(c->split, sizeof(int32_t) * (size_t)(g->nt + 1));
  c->groups = xrealloc(c->groups, sizeof(int32_t) * (size_t)(g->nt + 1));
  c->logical = xrealloc(c->logical, sizeof *c->logical * (size_t)(g->nt + 1));
  for (int t = nt0; t < g->nt; t++) {
    c->split[t] = -1, c->groups[t] = 1;
    for (int i = 0; i < g->t[t].rank; i++) c->logical[t][i] = g->t[t].shape[i].c;
  }
}

static bool rebuild(spc *s) {
  lw_ctx *c = s->c;
  ir_graph *g = c->p->g;
  int nold = g->nop;
  ir_op *old = xmalloc(sizeof(ir_op) * (size_t)(nold + 1));
  memcpy(old, g->op, sizeof(ir_op) * (size_t)nold);
  g->nop = 0;
  bool ok = true;
  bool ring = c->lay.sp_kind == FMT_SP_RING;
  for (int k = 0; k < nold && ok; k++) {
    ir_op o = old[k];
    int fwd = c->fwd_of[k] >= 0 ? s->newidx[c->fwd_of[k]] : -1;
    if (o.kind == IR_OP_ATTENTION && !o.backward) {
      ok = (s->newidx[k] = ring ? lw_ring_forward(s, &o) : forward(s, o)) >= 0;
    } else if (o.kind == IR_OP_ATTENTION_GRAD) {
      ok = (s->newidx[k] = ring ? lw_ring_backward(s, &o, fwd) : backward(s, o, fwd)) >= 0;
    } else {
      s->newidx[k] = g->nop;
      lw_sp_emit(s, &o, fwd);
    }
  }
  free(old);
  return ok;
}

bool lw_sp(lw_ctx *c) {
  if (c->lay.sp <= 1) return true;
  ir_graph *g = c->p->g;
  spc s = {c, c->lay.sp, g->nt, NULL, NULL, NULL, NULL, 0};
  for (int k = 0; k < g->nop; k++) /* each rank's mean over its tokens: 1/sp of the group's */
    if (g->op[k].kind == IR_OP_CROSS_ENTROPY || g->op[k].kind == IR_OP_CROSS_ENTROPY_GRAD)
      g->op[k].at.scale = (g->op[k].at.scale != 0 ? g->op[k].at.scale : 1.0) / s.sp;
  int nt0 = g->nt;
  s.head = xmalloc(sizeof(ir_ref) * (size_t)(4 * g->nt + 16));
  for (int t = 0; t < 4 * g->nt + 16; t++) s.head[t] = -1;
  s.ring = xmalloc(sizeof *s.ring * (size_t)(g->nt + 1));
  for (int t = 0; t < g->nt; t++) s.ring[t][0] = s.ring[t][1] = s.ring[t][2] = -1;
  s.newidx = xmalloc(sizeof(int32_t) * (size_t)(g->nop + 1));
  bool ok = rebuild(&s);
  if (ok) {
    free(c->fwd_of);
    c->fwd_of = xmalloc(sizeof(int32_t) * (size_t)(g->nop + 1));
    memcpy(c->fwd_of, s.fwd, sizeof(int32_t) * (size_t)g->nop);
    grow_tables(c, nt0);
  }
  free(s.head), free(s.ring), free(s.newidx), free(s.fwd);
  return ok;
}
