/* grad.c — the gradient rule of every forward and communication op.
 *
 * Each rule receives a copy of the forward op and the gradients of its outputs
 * and appends backward ops through ir_grad_emit, which shapes each new tensor
 * like an existing one (a gradient has its tensor's logical shape). Rules only
 * build graph; the arithmetic lives in the runtime kernels. Conventions:
 *  - broadcast operands (add/sub/mul with a trailing-broadcast b) get their
 *    gradient through sum_rows, which sums the leading elements down to the
 *    output's shape;
 *  - matmul gradients are matmuls with trans flags; an unbatched weight under a
 *    batched activation is reached by flattening both to 2-D with reshape;
 *  - dropout_grad finds its mask again from attr n = the forward output tensor;
 *  - tanh_grad reads the forward output y (dy * (1 - y*y)), not the input;
 *  - select_grad scatters dy into zeros of the select input's shape (attr
 *    shape, with the forward axis normalised and the same index);
 *  - communication ops are identities on logical values, so their gradient is
 *    passed through (SBP deduction re-derives the conjugate collective). */
#include "ir/autodiff.h"
#include <string.h>

static ir_attrs at0(void) {
  ir_attrs a;
  memset(&a, 0, sizeof a);
  a.axis = -1;
  return a;
}

static const ir_tensor *T(ir_grad_ctx *c, ir_ref r) { return &c->g->t[r]; }

static bool same_shape(ir_grad_ctx *c, ir_ref x, ir_ref y) {
  const ir_tensor *a = T(c, x), *b = T(c, y);
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (!ir_dim_eq(a->shape[i], b->shape[i])) return false;
  return true;
}

static ir_ref emit1(ir_grad_ctx *c, ir_opkind k, ir_ref a, ir_ref b, const ir_attrs *at, ir_ref like) {
  ir_ref ins[2] = {a, b}, out;
  ir_grad_emit(c, k, ins, b == IR_NONE ? 1 : 2, at, &like, 1, &out);
  return out;
}

static ir_dim dim_prod(const ir_dim *sh, int from, int to) {
  ir_dim m = ir_const(1);
  for (int i = from; i < to; i++) {
    m.c *= sh[i].c;
    m.b = (uint8_t)(m.b + sh[i].b);
    m.s = (uint8_t)(m.s + sh[i].s);
  }
  return m;
}

static ir_ref reshaped(ir_grad_ctx *c, ir_ref x, int rank, const ir_dim *sh) {
  ir_attrs at = at0();
  at.rank = (uint8_t)rank;
  for (int i = 0; i < rank; i++) at.shape[i] = sh[i];
  ir_ref in[1] = {x};
  return ir_grad_emit_shape(c, IR_OP_RESHAPE, in, 1, &at, (ir_dtype)T(c, x)->dtype, rank, sh);
}

/* reduce dy (shaped like the op output) to the shape of trailing-broadcast
 * operand b: sum_rows directly for a vector b, else through [M, numel b] */
static ir_ref unbroadcast(ir_grad_ctx *c, ir_ref dy, ir_ref b) {
  if (same_shape(c, dy, b)) return dy;
  if (T(c, b)->rank == 1) return emit1(c, IR_OP_SUM_ROWS, dy, IR_NONE, NULL, b);
  ir_tensor ty = *T(c, dy), tb = *T(c, b);
  ir_dim two[2] = {dim_prod(ty.shape, 0, ty.rank - tb.rank), dim_prod(tb.shape, 0, tb.rank)};
  ir_ref flat = reshaped(c, dy, 2, two);
  ir_ref in[1] = {flat};
  ir_ref sum = ir_grad_emit_shape(c, IR_OP_SUM_ROWS, in, 1, NULL, (ir_dtype)tb.dtype, 1, &two[1]);
  return reshaped(c, sum, tb.rank, tb.shape);
}

static ir_ref scaled(ir_grad_ctx *c, ir_ref x, double s) {
  ir_attrs a = at0();
  a.scale = s;
  return emit1(c, IR_OP_SCALE, x, IR_NONE, &a, x);
}

static bool g_add(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = dy[0];
  if (need[1]) din[1] = unbroadcast(c, dy[0], c->fwd.in[1]);
  return true;
}

static bool g_sub(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = dy[0];
  if (need[1]) din[1] = scaled(c, unbroadcast(c, dy[0], c->fwd.in[1]), -1.0);
  return true;
}

static bool g_mul(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_ref a = c->fwd.in[0], b = c->fwd.in[1];
  if (need[0]) din[0] = emit1(c, IR_OP_MUL, dy[0], b, NULL, a);
  if (need[1]) din[1] = unbroadcast(c, emit1(c, IR_OP_MUL, dy[0], a, NULL, a), b);
  return true;
}

static bool g_scale(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = scaled(c, dy[0], c->fwd.at.scale);
  return true;
}

static ir_ref mm(ir_grad_ctx *c, ir_ref a, ir_ref b, bool ta, bool tb, ir_ref like) {
  ir_attrs at = at0();
  at.trans_a = ta;
  at.trans_b = tb;
  return emit1(c, IR_OP_MATMUL, a, b, &at, like);
}

/* x[..., m, k] -> x[M, k] with M the product of the leading dims */
static ir_ref flatten2(ir_grad_ctx *c, ir_ref x) {
  ir_tensor t = *T(c, x);
  ir_dim sh[2] = {dim_prod(t.shape, 0, t.rank - 1), t.shape[t.rank - 1]};
  return reshaped(c, x, 2, sh);
}

static bool g_matmul(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_ref a = c->fwd.in[0], b = c->fwd.in[1], y = dy[0];
  bool ta = c->fwd.at.trans_a, tb = c->fwd.at.trans_b;
  int ra = T(c, a)->rank, rb = T(c, b)->rank;
  bool flat = rb == 2 && ra > 2;
  if (flat && ta) {
    diag_error(c->d, c->fwd.loc, "autodiff: matmul with trans_a on a batched input and an unbatched weight has no gradient rule");
    return false;
  }
  if (need[0]) din[0] = ta ? mm(c, b, y, tb, true, a) : mm(c, y, b, false, !tb, a);
  if (need[1]) {
    ir_ref a2 = flat ? flatten2(c, a) : a, y2 = flat ? flatten2(c, y) : y;
    if (ta) din[1] = tb ? mm(c, y2, a2, true, true, b) : mm(c, a2, y2, false, false, b);
    else din[1] = tb ? mm(c, y2, a2, true, false, b) : mm(c, a2, y2, true, false, b);
  }
  return true;
}

static bool g_bias_add(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = dy[0];
  if (need[1]) din[1] = emit1(c, IR_OP_SUM_ROWS, dy[0], IR_NONE, NULL, c->fwd.in[1]);
  return true;
}

static bool g_layer_norm(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_ref ins[4] = {c->fwd.in[0], c->fwd.in[1], c->fwd.in[2], dy[0]}, outs[3];
  ir_grad_emit(c, IR_OP_LAYER_NORM_GRAD, ins, 4, &c->fwd.at, ins, 3, outs);
  for (int i = 0; i < 3; i++) din[i] = need[i] ? outs[i] : IR_NONE;
  return true;
}

static bool g_rms_norm(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_ref ins[3] = {c->fwd.in[0], c->fwd.in[1], dy[0]}, outs[2];
  ir_grad_emit(c, IR_OP_RMS_NORM_GRAD, ins, 3, &c->fwd.at, ins, 2, outs);
  for (int i = 0; i < 2; i++) din[i] = need[i] ? outs[i] : IR_NONE;
  return true;
}

static bool g_gelu(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = emit1(c, IR_OP_GELU_GRAD, c->fwd.in[0], dy[0], &c->fwd.at, c->fwd.in[0]);
  return true;
}

static bool g_silu(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = emit1(c, IR_OP_SILU_GRAD, c->fwd.in[0], dy[0], NULL, c->fwd.in[0]);
  return true;
}

static bool g_tanh(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = emit1(c, IR_OP_TANH_GRAD, c->fwd.out[0], dy[0], NULL, c->fwd.in[0]);
  return true;
}

static bool g_select(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  const ir_tensor *x = T(c, c->fwd.in[0]);
  ir_attrs at = at0();
  at.axis = c->fwd.at.axis < 0 ? c->fwd.at.axis + x->rank : c->fwd.at.axis;
  at.index = c->fwd.at.index;
  at.rank = x->rank;
  memcpy(at.shape, x->shape, sizeof at.shape);
  if (need[0]) din[0] = emit1(c, IR_OP_SELECT_GRAD, dy[0], IR_NONE, &at, c->fwd.in[0]);
  return true;
}

static bool g_swiglu(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_ref ins[3] = {c->fwd.in[0], c->fwd.in[1], dy[0]}, outs[2];
  ir_grad_emit(c, IR_OP_SWIGLU_GRAD, ins, 3, NULL, ins, 2, outs);
  for (int i = 0; i < 2; i++) din[i] = need[i] ? outs[i] : IR_NONE;
  return true;
}

static bool g_softmax(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = emit1(c, IR_OP_SOFTMAX_GRAD, c->fwd.out[0], dy[0], &c->fwd.at, c->fwd.in[0]);
  return true;
}

static bool g_attention(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  int n = c->fwd.nin;
  ir_ref ins[IR_MAXIN], outs[3];
  for (int i = 0; i < n; i++) ins[i] = c->fwd.in[i];
  ins[n] = c->fwd.out[0];
  ins[n + 1] = dy[0];
  ir_grad_emit(c, IR_OP_ATTENTION_GRAD, ins, n + 2, &c->fwd.at, c->fwd.in, n, outs);
  for (int i = 0; i < n; i++) din[i] = need[i] ? outs[i] : IR_NONE;
  return true;
}

static bool g_same(ir_grad_ctx *c, ir_opkind k, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = emit1(c, k, dy[0], IR_NONE, &c->fwd.at, c->fwd.in[0]);
  return true;
}

static bool g_rotary(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  return g_same(c, IR_OP_ROTARY_GRAD, dy, need, din);
}

static bool g_transpose(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  return g_same(c, IR_OP_TRANSPOSE, dy, need, din);
}

static bool g_dropout(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_attrs at = c->fwd.at;
  at.n = c->fwd.out[0]; /* the mask is keyed by the forward output tensor */
  if (need[0]) din[0] = emit1(c, IR_OP_DROPOUT_GRAD, dy[0], IR_NONE, &at, c->fwd.in[0]);
  return true;
}

static bool g_cross_entropy(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = emit1(c, IR_OP_CROSS_ENTROPY_GRAD, c->fwd.in[0], c->fwd.in[1], NULL, c->fwd.in[0]);
  return true;
}

static bool g_reshape(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  const ir_tensor *x = T(c, c->fwd.in[0]);
  ir_attrs at = at0();
  at.rank = x->rank;
  memcpy(at.shape, x->shape, sizeof at.shape);
  if (need[0]) din[0] = emit1(c, IR_OP_RESHAPE, dy[0], IR_NONE, &at, c->fwd.in[0]);
  return true;
}

static bool g_split(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  ir_ref parts[IR_MAXOUT];
  for (int i = 0; i < c->fwd.nout; i++)
    parts[i] = dy[i] != IR_NONE ? dy[i] : scaled(c, c->fwd.out[i], 0.0);
  ir_ref out;
  ir_attrs at = at0();
  at.axis = c->fwd.at.axis;
  ir_grad_emit(c, IR_OP_CONCAT, parts, c->fwd.nout, &at, c->fwd.in, 1, &out);
  if (need[0]) din[0] = out;
  return true;
}

static bool g_concat(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  for (int i = 1; i < c->fwd.nin; i++)
    if (!same_shape(c, c->fwd.in[0], c->fwd.in[i])) {
      diag_error(c->d, c->fwd.loc, "autodiff: concat of unequal parts has no gradient rule");
      return false;
    }
  ir_ref outs[IR_MAXOUT];
  ir_attrs at = at0();
  at.axis = c->fwd.at.axis;
  at.n = c->fwd.nin;
  ir_grad_emit(c, IR_OP_SPLIT, dy, 1, &at, c->fwd.in, c->fwd.nin, outs);
  for (int i = 0; i < c->fwd.nin; i++) din[i] = need[i] ? outs[i] : IR_NONE;
  return true;
}

static bool g_embedding(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[1]) din[1] = emit1(c, IR_OP_EMBEDDING_GRAD, c->fwd.in[0], dy[0], NULL, c->fwd.in[1]);
  return true;
}

static bool g_none(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) { return true; }

static bool g_identity(ir_grad_ctx *c, const ir_ref *dy, const bool *need, ir_ref *din) {
  if (need[0]) din[0] = dy[0];
  return true;
}

static const ir_grad_rule rules[IR_NOPKIND] = {
    [IR_OP_EMBEDDING] = g_embedding,   [IR_OP_POSITIONS] = g_none,
    [IR_OP_ADD] = g_add,               [IR_OP_SUB] = g_sub,
    [IR_OP_MUL] = g_mul,               [IR_OP_SCALE] = g_scale,
    [IR_OP_MATMUL] = g_matmul,         [IR_OP_BIAS_ADD] = g_bias_add,
    [IR_OP_LAYER_NORM] = g_layer_norm, [IR_OP_RMS_NORM] = g_rms_norm,
    [IR_OP_GELU] = g_gelu,             [IR_OP_SILU] = g_silu,
    [IR_OP_SWIGLU] = g_swiglu,         [IR_OP_SOFTMAX] = g_softmax,
    [IR_OP_ATTENTION] = g_attention,   [IR_OP_ROTARY] = g_rotary,
    [IR_OP_DROPOUT] = g_dropout,       [IR_OP_CROSS_ENTROPY] = g_cross_entropy,
    [IR_OP_RESHAPE] = g_reshape,       [IR_OP_TRANSPOSE] = g_transpose,
    [IR_OP_SPLIT] = g_split,           [IR_OP_CONCAT] = g_concat,
    [IR_OP_TANH] = g_tanh,             [IR_OP_SELECT] = g_select,
    [IR_OP_ALL_REDUCE] = g_identity,   [IR_OP_ALL_GATHER] = g_identity,
    [IR_OP_REDUCE_SCATTER] = g_identity, [IR_OP_ALL_TO_ALL] = g_identity,
    [IR_OP_SEND_RECV] = g_identity,    [IR_OP_SLICE] = g_identity,
};

ir_grad_rule ir_grad_rule_of(ir_opkind k) { return (unsigned)k < IR_NOPKIND ? rules[k] : NULL; }

bool ir_has_grad_rule(ir_opkind k) { return ir_grad_rule_of(k) != NULL; }

/* the registry's ir_grad_fn form of every rule: inputs of float dtype need a
 * gradient; diagnostics go to stderr */
static bool registry_rule(ir_graph *g, ir_ref op, const ir_ref *dout, ir_ref *din) {
  diag d;
  diag_init(&d, g->name, NULL, 0);
  ir_grad_ctx c = {g, g->op[op], &d};
  bool need[IR_MAXIN];
  for (int i = 0; i < c.fwd.nin; i++) {
    int dt = g->t[c.fwd.in[i]].dtype;
    need[i] = dt == IR_F32 || dt == IR_F16 || dt == IR_BF16;
    din[i] = IR_NONE;
  }
  ir_grad_rule r = ir_grad_rule_of((ir_opkind)c.fwd.kind);
  return r && r(&c, dout, need, din);
}

void ir_grad_install(void) {
  for (int k = 0; k < IR_NOPKIND; k++)
    if (rules[k] && !ir_op_grad((ir_opkind)k)) ir_op_set_grad((ir_opkind)k, registry_rule);
}
