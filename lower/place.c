/* place.c — every op on a pipeline stage and, interleaved, a model chunk.
 *
 * There are V = pp * vpp virtual stages; virtual stage v runs on stage
 * v % pp as its chunk v / pp (Megatron's round-robin interleaving: with
 * vpp 1 the virtual stages are the stages). A forward op inside block layer
 * l of L goes to the virtual stage whose chunk of the plan holds l (the
 * plan's stages[].chunks, when it gives one per virtual stage), else to
 * l * V / L; a forward op outside blocks to the latest virtual stage among
 * its inputs' producers (so the embedding is on the first stage and the
 * head and loss on the last chunk of the last stage); a backward op to the
 * virtual stage of the forward op it differentiates; an adamw op to the
 * stage that makes its gradient (the other stages holding the parameter, a
 * tied embedding's, receive the reduced gradient: actors.c). */
#include "lower/lower.h"
#include <stdlib.h>

/* the plan's virtual stage of layer l (chunk k of stage s: k * pp + s), or -1 */
static int plan_vstage(const lw_ctx *c, int l) {
  const sbpc_plan *pl = c->lay.plan;
  int pp = c->lay.pp;
  if (!pl || pl->nstages != pp) return -1;
  for (int s = 0; s < pp; s++) {
    if (pl->stages[s].nchunks != c->p->vpp) return -1;
    for (int k = 0; k < pl->stages[s].nchunks; k++)
      if (l >= pl->stages[s].chunks[k][0] && l <= pl->stages[s].chunks[k][1]) return k * pp + s;
  }
  return -1;
}

/* the virtual stage of block op o */
static int layer_vstage(const lw_ctx *c, const ir_op *o, int count) {
  int V = c->lay.pp * c->p->vpp, v = c->p->vpp > 1 ? plan_vstage(c, o->layer) : -1;
  return v >= 0 ? v : (int)((int64_t)o->layer * V / count);
}

bool lw_place(lw_ctx *c) {
  ir_graph *g = c->p->g;
  fmt_prog *p = c->p;
  int pp = c->lay.pp;
  p->op_stage = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  p->op_chunk = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  p->fwd_of = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  int *t_v = xmalloc(sizeof(int) * (size_t)(g->nt + 1)), *op_v = xmalloc(sizeof(int) * (size_t)(g->nop + 1));
  for (int t = 0; t < g->nt; t++) t_v[t] = 0;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    int v = 0;
    p->fwd_of[k] = c->fwd_of[k];
    if (o->kind == IR_OP_ADAMW) v = t_v[o->in[1]] % pp;
    else if (c->fwd_of[k] >= 0) v = op_v[c->fwd_of[k]];
    else if (o->block >= 0 && o->layer >= 0 && g->blk[o->block].count > 0)
      v = layer_vstage(c, o, g->blk[o->block].count);
    else
      for (int i = 0; i < o->nin; i++) v = g->t[o->in[i]].producer >= 0 && t_v[o->in[i]] > v ? t_v[o->in[i]] : v;
    op_v[k] = v;
    p->op_stage[k] = v % pp, p->op_chunk[k] = v / pp;
    for (int i = 0; i < o->nout; i++) t_v[o->out[i]] = v;
  }
  free(t_v), free(op_v);
  return true;
}
