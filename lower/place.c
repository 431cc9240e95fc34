/* place.c — every op on a pipeline stage.
 *
 * A forward op inside block layer l of L goes to stage l * pp / L; a forward
 * op outside blocks to the latest stage among its inputs' producers (so the
 * embedding is on the first stage and the head and loss on the last); a
 * backward op to the stage of the forward op it differentiates; an adamw op
 * to the stage that makes its gradient (the other stages holding the
 * parameter, a tied embedding's, receive the reduced gradient: actors.c). */
#include "lower/lower.h"
#include <stdlib.h>

bool lw_place(lw_ctx *c) {
  ir_graph *g = c->p->g;
  fmt_prog *p = c->p;
  int pp = c->lay.pp;
  p->op_stage = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  p->fwd_of = ARENA_ARRAY(p->a, int32_t, g->nop + 1);
  int *t_stage = xmalloc(sizeof(int) * (size_t)(g->nt + 1));
  for (int t = 0; t < g->nt; t++) t_stage[t] = 0;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    int s = 0;
    p->fwd_of[k] = c->fwd_of[k];
    if (o->kind == IR_OP_ADAMW) s = t_stage[o->in[1]];
    else if (c->fwd_of[k] >= 0) s = p->op_stage[c->fwd_of[k]];
    else if (o->block >= 0 && o->layer >= 0 && g->blk[o->block].count > 0)
      s = (int)((int64_t)o->layer * pp / g->blk[o->block].count);
    else
      for (int i = 0; i < o->nin; i++) s = g->t[o->in[i]].producer >= 0 && t_stage[o->in[i]] > s ? t_stage[o->in[i]] : s;
    p->op_stage[k] = s;
    for (int i = 0; i < o->nout; i++) t_stage[o->out[i]] = s;
  }
  free(t_stage);
  return true;
}
