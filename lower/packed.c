/* packed.c — packed variable-length batches (`--packed`), part of lw_train.
 *
 * Documents of mixed length are packed into the fixed [B, S] batch. The
 * compiler decides what that means for the graph; the executor only supplies,
 * per micro-batch, where each token's document starts (runtime/data.c: from
 * an indexed dataset's document index or an end-of-document token id) and
 * marks the labels that would predict across a boundary as ignored (-1).
 * Before autodiff, every positions op becomes per sample ([S] -> [B, S]),
 * since positions restart at each document (the position embedding it feeds
 * becomes [B, S, H]; autodiff then makes the right gradients) and the forward
 * shapes are inferred again. After autodiff, every op that needs the
 * boundaries gets attr `packed`, recorded in program.json: attention and its
 * gradient (causal within a document, nothing across documents: FlashAttention's
 * cu_seqlens as a block-diagonal mask), positions and rotary and its gradient
 * (positions counted from the document's start), cross_entropy and its
 * gradient (ignored labels: the loss is the mean over the step's predicted
 * tokens). lower/fuse.c keeps packed ops out of the fused kernels, which take
 * no boundaries. Under Ulysses sequence parallelism the executor gives
 * attention (on the whole sequence after the all-to-all) the document starts
 * of the whole sample and the other packed ops those of the rank's tokens.
 * Refused: attention that is not causal, softmax with a causal mask (a
 * hand-written attention, which cannot take boundaries), ring attention,
 * tensor parallelism and the GPU (not done: their kernels take no
 * boundaries), and --adaptive-sp without --packed (lw_packed_adaptive). */
#include "lower/lower.h"
#include <string.h>

static bool refuse(lw_ctx *c, const char *why) {
  diag_error(c->d, (srcloc){0, 0}, "packed batches (--packed) %s", why);
  return false;
}

static bool supported(lw_ctx *c) {
  const ir_graph *g = c->p->g;
  if (c->lay.sp > 1 && c->lay.sp_kind == FMT_SP_RING)
    return refuse(c, "are not done under ring attention (--sp-kind ring); Ulysses runs them");
  if (c->lay.tp > 1) return refuse(c, "are not done under tensor parallelism (tp > 1)");
  if (c->lay.device == 1) return refuse(c, "run on the CPU executor only (not --device cuda)");
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind == IR_OP_ATTENTION && !o->at.causal)
      return diag_error(c->d, o->loc, "packed batches (--packed) need causal attention"), false;
    if (o->kind == IR_OP_SOFTMAX && o->at.causal)
      return diag_error(c->d, o->loc, "packed batches (--packed) need the attention op; a causal softmax cannot "
                                      "take document boundaries"), false;
  }
  return true;
}

bool lw_packed_forward(lw_ctx *c) {
  ir_graph *g = c->p->g;
  if (!supported(c)) return false;
  for (int k = 0; k < g->nop; k++) {
    ir_attrs *a = &g->op[k].at;
    if (g->op[k].kind != IR_OP_POSITIONS || a->rank != 1) continue;
    a->shape[1] = a->shape[0];
    a->shape[0] = (ir_dim){.c = 1, .b = 1, .s = 0}; /* B */
    a->rank = 2;
  }
  return ir_infer_shapes(g, c->d);
}

void lw_packed_mark(lw_ctx *c) {
  ir_graph *g = c->p->g;
  for (int k = 0; k < g->nop; k++)
    switch ((ir_opkind)g->op[k].kind) {
    case IR_OP_ATTENTION: case IR_OP_ATTENTION_GRAD: case IR_OP_POSITIONS: case IR_OP_ROTARY:
    case IR_OP_ROTARY_GRAD: case IR_OP_CROSS_ENTROPY: case IR_OP_CROSS_ENTROPY_GRAD: g->op[k].at.packed = true; break;
    default: break;
    }
}

bool lw_packed_adaptive(lw_ctx *c) {
  const lw_layout *l = &c->lay;
  if (!l->adaptive) return true;
  if (!l->packed)
    return diag_error(c->d, (srcloc){0, 0}, "--adaptive-sp needs --packed (the groups run documents, not samples)"),
           false;
  if (l->zero >= 2)
    return diag_error(c->d, (srcloc){0, 0}, "--adaptive-sp runs ZeRO 0 or 1 (a step's empty micro-batches make no "
                                            "gradient to reduce-scatter)"), false;
  if (l->sp < 2 || l->sp_kind != FMT_SP_ULYSSES || l->dp != 1 || l->pp != 1 || l->tp != 1)
    return diag_error(c->d, (srcloc){0, 0},
                      "--adaptive-sp needs a Ulysses plan whose sp is the world: sp > 1, dp, pp and tp 1 (this "
                      "layout: sp %d, dp %d, pp %d, tp %d; e.g. sbpc plan --fix sp=4,dp=1,tp=1,pp=1)",
                      l->sp, l->dp, l->pp, l->tp),
           false;
  return true;
}
