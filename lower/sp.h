/* sp.h — what the sequence-parallel pass (sp.c) shares with its ring
 * attention rewrite (ring.c); nothing else includes it. */
#ifndef SBPC_LOWER_SP_H
#define SBPC_LOWER_SP_H
#include "lower/lower.h"

typedef struct {
  lw_ctx *c;
  int sp;
  int nt0;           /* tensors before the pass (the old graph's) */
  ir_ref *head;      /* Ulysses: per tensor its head-split copy, or -1 */
  ir_ref (*ring)[3]; /* ring: per old forward attention output its q, kv and lse, or -1 */
  int32_t *fwd;      /* per new op: the (new) forward op it differentiates */
  int32_t *newidx;   /* per old op: its new index */
  int cap;
} lw_spc;

/* lw_sp_emit: append op o to the new op table, differentiating new op fwd
 * (-1: a forward op). */
void lw_sp_emit(lw_spc *s, const ir_op *o, int fwd);
/* lw_sp_tensor: a new activation shaped like tensor `like` with its last
 * axis `last` (0: like's), named like's name + "." + suffix. */
ir_ref lw_sp_tensor(lw_spc *s, ir_ref like, const char *suffix, int64_t last);
/* lw_ring_forward / lw_ring_backward (ring.c): attention o (attention_grad
 * o, differentiating new op fwd) as ring attention steps on the sp group;
 * the new index of the op that stands for o (its forward's last step), or
 * -1 after an error. */
int lw_ring_forward(lw_spc *s, const ir_op *o);
int lw_ring_backward(lw_spc *s, const ir_op *o, int fwd);
#endif
