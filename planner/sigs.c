/* sigs.c — the 1-D SBP signatures the planner considers on the tp axis.
 *
 * The signatures are the op registry's (ir_op_sigs: batch / sequence splits
 * through elementwise and row ops, column / row / batch splits of matmul,
 * head splits of attention, vocabulary splits of embedding and
 * cross-entropy, the partial forms, and all-B). The planner keeps those whose
 * every split divides its tensor axis by the axis size n at the micro-batch
 * and sequence length being costed (and, for attention and rotary, whose
 * head split divides the heads and kv_heads). Without sequence parallelism
 * in the runtime (Megatron-LM before 2022) a split of a token axis (one
 * whose size involves the batch B or the sequence S) is dropped too: every
 * rank of a tp group then holds all of the group's tokens. On a 1-device
 * axis only the all-B signature is kept: every choice is the same there. */
#include "planner/plan_int.h"
#include <string.h>

int plan_tshape(const ir_graph *g, ir_ref t, int64_t b, int64_t s, int64_t *dims) {
  const ir_tensor *x = &g->t[t];
  for (int i = 0; i < x->rank; i++) dims[i] = ir_dim_eval(x->shape[i], b, s);
  return x->rank;
}

typedef struct {
  const ir_graph *g;
  int n;
  int64_t b, s;
  bool tok;   /* token axes may be split */
} ctx;

bool plan_token_axis(const ir_graph *g, ir_ref t, int axis) {
  const ir_tensor *x = &g->t[t];
  return axis >= 0 && axis < x->rank && (x->shape[axis].b || x->shape[axis].s);
}

static bool div_ok(const ctx *c, ir_ref t, int axis) {
  int64_t d[IR_MAXRANK];
  int r = plan_tshape(c->g, t, c->b, c->s, d);
  return axis >= 0 && axis < r && d[axis] % c->n == 0 && d[axis] >= c->n;
}

/* fits: every split of signature s divides its axis by n (and the heads) */
static bool fits(const ctx *c, const ir_op *o, const ir_sig *s) {
  bool head_split = false;
  for (int i = 0; i < o->nin + o->nout; i++) {
    ir_sbp x = i < o->nin ? s->in[i] : s->out[i - o->nin];
    ir_ref t = i < o->nin ? o->in[i] : o->out[i - o->nin];
    if (x.kind != SBP_S) continue;
    if (!div_ok(c, t, x.axis) || (!c->tok && plan_token_axis(c->g, t, x.axis))) return false;
    head_split |= x.axis == c->g->t[t].rank - 1;
  }
  if (head_split && (o->kind == IR_OP_ATTENTION || o->kind == IR_OP_ROTARY)) {
    int64_t kv = o->at.kv_heads > 0 ? o->at.kv_heads : o->at.heads;
    if (o->at.heads <= 0 || o->at.heads % c->n || kv % c->n) return false;
  }
  return true;
}

static bool replicated(const ir_op *o, const ir_sig *s) {
  for (int j = 0; j < o->nin; j++)
    if (s->in[j].kind != SBP_B) return false;
  for (int j = 0; j < o->nout; j++)
    if (s->out[j].kind != SBP_B) return false;
  return true;
}

int plan_op_sigs(const ir_graph *g, const ir_op *o, int n, int64_t b, int64_t s, bool tok, ir_sig *sigs) {
  ctx c = {g, n, b, s, tok};
  ir_sig all[IR_MAXSIGS];
  int k = ir_op_sigs(g, o, all), w = 0;
  for (int i = 0; i < k; i++)
    if (n == 1 ? replicated(o, &all[i]) && w == 0 : fits(&c, o, &all[i])) sigs[w++] = all[i];
  if (w == 0) { /* the registry lists all-B for every forward op; stay safe anyway */
    memset(&sigs[0], 0, sizeof sigs[0]);
    for (int j = 0; j < o->nin; j++) sigs[0].in[j].kind = SBP_B;
    for (int j = 0; j < o->nout; j++) sigs[0].out[j].kind = SBP_B;
    w = 1;
  }
  return w;
}
