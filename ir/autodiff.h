/* autodiff.h — the training graph: forward + backward + optimizer (ir_ prefix).
 *
 * ir_autodiff turns a forward graph whose g->loss is a cross_entropy into the
 * training graph by appending, in reverse topological order, the backward op of
 * every forward op (the *_grad ops, matmuls and sum_rows of ir/ops.def, see the
 * rule table in ir/grad.c), summing with `add` the gradients of tensors used
 * several times, and one `adamw` op per parameter that receives a gradient.
 *
 * Conventions the runtime and codegen rely on:
 *  - every op made here has backward = true and keeps the block/layer of the
 *    forward op it differentiates (lidx is renumbered per layer afterwards, so
 *    the layers of a block stay structurally identical);
 *  - the gradient of tensor t that is consumed by the optimizer has kind
 *    IR_T_GRAD and grad_of = t; ir_grad_ref finds it;
 *  - the optimizer state of parameter p is two IR_T_STATE tensors named
 *    "<p>.exp_avg" and "<p>.exp_avg_sq" (PyTorch's names); adamw's outputs
 *    (p', m', v') are IR_T_STATE tensors the runtime writes back in place;
 *  - cross_entropy_grad yields the gradient of the mean loss over the tokens it
 *    sees (no upstream dy: the loss is the root); scaling over micro-batches and
 *    data-parallel ranks is the runtime's job;
 *  - a tensor's gradient has the tensor's logical shape; SBP deduction runs on
 *    the training graph afterwards, so a parameter's gradient under data
 *    parallelism comes out P(sum) until it is reduced. */
#ifndef SBPC_AUTODIFF_H
#define SBPC_AUTODIFF_H
#include "ir/ir.h"

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
} ir_adamw_cfg;

/* ir_adamw_default: PyTorch's AdamW defaults (lr 1e-3, betas 0.9/0.999,
 * eps 1e-8, weight decay 0.01). */
ir_adamw_cfg ir_adamw_default(void);

/* ir_autodiff: append backward and optimizer ops to the forward graph g (shapes
 * must be known). opt NULL = ir_adamw_default(). Returns false with a
 * diagnostic when g has no loss, the loss is not a cross_entropy, or an op on
 * the path to the loss has no gradient rule. */
bool ir_autodiff(ir_graph *g, const ir_adamw_cfg *opt, diag *d);
/* ir_autodiff_map: ir_autodiff that also returns, in *fwd_of (malloc'ed, one
 * entry per op of the training graph; the caller frees it), the forward op
 * whose rule made each backward op (gradient sums included), or -1 for forward
 * and adamw ops. The runtime places backward ops on their forward op's stage. */
bool ir_autodiff_map(ir_graph *g, const ir_adamw_cfg *opt, diag *d, int32_t **fwd_of);

/* ir_grad_ref: the gradient of tensor t that feeds the optimizer, or IR_NONE. */
ir_ref ir_grad_ref(const ir_graph *g, ir_ref t);

/* ir_has_grad_rule: whether op kind k can be differentiated (forward and comm
 * ops: yes; backward and optimizer ops: no). What ir.h's ir_op_grad would
 * return non-NULL for. */
bool ir_has_grad_rule(ir_opkind k);

/* ir_grad_install: put every rule into the registry (ir_op_set_grad) in the
 * ir_grad_fn form of ir.h; ir_autodiff calls it. */
void ir_grad_install(void);

/* ---- used by the rules in grad.c ---------------------------------------- */
/* ir_grad_ctx: what a rule may use while differentiating one forward op. */
typedef struct {
  ir_graph *g;
  ir_op fwd;       /* copy of the forward op (g->op may move while emitting) */
  diag *d;
} ir_grad_ctx;
/* A gradient rule: given the gradients of the op's outputs (dout[i] may be
 * IR_NONE when output i has none), emit backward ops and set din[i] to the
 * gradient of input i, or IR_NONE when input i needs none (need[i] false). */
typedef bool (*ir_grad_rule)(ir_grad_ctx *c, const ir_ref *dout, const bool *need, ir_ref *din);
/* ir_grad_rule_of: the rule for op kind k, or NULL (grad.c). */
ir_grad_rule ir_grad_rule_of(ir_opkind k);
/* ir_grad_emit: append a backward op of kind k over ins[0..nin) with attrs at
 * (NULL = defaults); its outputs are new tensors shaped like likes[0..nout)
 * (refs to existing tensors); the new output refs are written to outs. */
void ir_grad_emit(ir_grad_ctx *c, ir_opkind k, const ir_ref *ins, int nin, const ir_attrs *at,
                  const ir_ref *likes, int nout, ir_ref *outs);
/* ir_grad_emit_shape: like ir_grad_emit with one output of an explicit shape. */
ir_ref ir_grad_emit_shape(ir_grad_ctx *c, ir_opkind k, const ir_ref *ins, int nin, const ir_attrs *at,
                          ir_dtype dt, int rank, const ir_dim *shape);
#endif
