/* ops.c — the op registry's shape rules: ir_op_infer for every op in ops.def.
 *
 * Each op kind has one static infer_* function that checks the inputs (count,
 * dtypes, ranks, dims) and writes dtype/rank/shape into the op's outputs.
 * Dims are symbolic (c * B^b * S^s) and are compared structurally, so "B*S"
 * and "S*B" agree while "B" and "S" never do; a mismatch is reported at the
 * op's source location as "op: what differs: x vs y" and the rule returns
 * false without touching anything else. Signatures live in ops_sig.c, costs
 * and the gradient slot in ops_cost.c. */
#include "ir/ir.h"
#include <string.h>

/* ---- dim arithmetic ------------------------------------------------------ */

ir_dim ir_dim_mul(ir_dim x, ir_dim y) {
  int64_t c;
  if (__builtin_mul_overflow(x.c, y.c, &c)) c = INT64_MAX; /* saturate: never equal to a real size */
  ir_dim d = {c, (uint8_t)(x.b + y.b), (uint8_t)(x.s + y.s)};
  return d;
}

ir_dim ir_dim_numel(const ir_dim *shape, int rank) {
  ir_dim d = ir_const(1);
  for (int i = 0; i < rank; i++) d = ir_dim_mul(d, shape[i]);
  return d;
}

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
  ir_graph *g;
  ir_op *o;
  diag *d;
} ictx;

static const char *opname(const ir_op *o) {
  return o->kind < IR_NOPKIND ? ir_ops[o->kind].name : "?";
}

static bool fail(ictx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(ictx *c, const char *fmt, ...) {
  if (!c->d) return false;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  diag_error(c->d, c->o->loc, "%s: %s", opname(c->o), msg);
  return false;
}

static ir_tensor *IN(ictx *c, int i) { return &c->g->t[c->o->in[i]]; }
static ir_tensor *OUT(ictx *c, int i) { return &c->g->t[c->o->out[i]]; }

/* ds: a dim as text in one of four rotating buffers (several per message). */
static const char *ds(ir_dim d) {
  static char buf[4][48];
  static int k;
  k = (k + 1) & 3;
  return ir_dim_str(d, buf[k], sizeof buf[k]);
}

/* shs: a shape as text "[B, S, 768]" in one of two rotating buffers. */
static const char *shs(const ir_tensor *t) {
  static char buf[2][256];
  static int k;
  k = (k + 1) & 1;
  size_t n = 0;
  char one[48];
  n += (size_t)snprintf(buf[k] + n, sizeof buf[k] - n, "[");
  for (int i = 0; i < t->rank && n < sizeof buf[k]; i++)
    n += (size_t)snprintf(buf[k] + n, sizeof buf[k] - n, "%s%s", i ? ", " : "",
                          ir_dim_str(t->shape[i], one, sizeof one));
  if (n < sizeof buf[k]) snprintf(buf[k] + n, sizeof buf[k] - n, "]");
  return buf[k];
}

static bool same_shape(const ir_tensor *a, const ir_tensor *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (!ir_dim_eq(a->shape[i], b->shape[i])) return false;
  return true;
}

static bool is_float(int dt) { return dt == IR_F32 || dt == IR_F16 || dt == IR_BF16; }
static bool is_int(int dt) { return dt == IR_I32 || dt == IR_I64; }

static void set_out(ictx *c, int i, int dtype, int rank, const ir_dim *shape) {
  ir_tensor *t = OUT(c, i);
  t->dtype = (uint8_t)dtype;
  t->rank = (uint8_t)rank;
  for (int k = 0; k < rank; k++) t->shape[k] = shape[k];
}

static void copy_out(ictx *c, int i, const ir_tensor *like) {
  set_out(c, i, like->dtype, like->rank, like->shape);
}

static ir_dim last(const ir_tensor *t) { return t->shape[t->rank - 1]; }

static bool need_rank(ictx *c, int i, int minr, const char *what) {
  if (IN(c, i)->rank < minr)
    return fail(c, "%s must have rank >= %d, got %s", what, minr, shs(IN(c, i)));
  return true;
}

static bool need_float(ictx *c, int i, const char *what) {
  if (!is_float(IN(c, i)->dtype))
    return fail(c, "%s must be floating point, got %s", what, ir_dtype_name(IN(c, i)->dtype));
  return true;
}

static bool need_same(ictx *c, int i, int j, const char *a, const char *b) {
  if (!same_shape(IN(c, i), IN(c, j)))
    return fail(c, "%s and %s differ: %s vs %s", a, b, shs(IN(c, i)), shs(IN(c, j)));
  if (IN(c, i)->dtype != IN(c, j)->dtype)
    return fail(c, "%s and %s have different dtypes: %s vs %s", a, b,
                ir_dtype_name(IN(c, i)->dtype), ir_dtype_name(IN(c, j)->dtype));
  return true;
}

/* need_vec: input i is rank 1 of length n (a weight or bias of the last axis). */
static bool need_vec(ictx *c, int i, ir_dim n, const char *what) {
  ir_tensor *t = IN(c, i);
  if (t->rank != 1) return fail(c, "%s must have rank 1, got %s", what, shs(t));
  if (!ir_dim_eq(t->shape[0], n))
    return fail(c, "%s length differs from the last axis: %s vs %s", what, ds(t->shape[0]), ds(n));
  return true;
}

/* ---- forward ops ---------------------------------------------------------- */

static bool infer_unary(ictx *c) {
  if (!need_float(c, 0, "input")) return false;
  copy_out(c, 0, IN(c, 0));
  return true;
}

static bool infer_embedding(ictx *c) {
  ir_tensor *ids = IN(c, 0), *tab = IN(c, 1);
  if (!is_int(ids->dtype)) return fail(c, "ids must be an integer tensor, got %s", ir_dtype_name(ids->dtype));
  if (tab->rank != 2) return fail(c, "table must have rank 2 [V, H], got %s", shs(tab));
  if (ids->rank + 1 > IR_MAXRANK) return fail(c, "ids rank %d too large", ids->rank);
  ir_dim sh[IR_MAXRANK];
  for (int i = 0; i < ids->rank; i++) sh[i] = ids->shape[i];
  sh[ids->rank] = tab->shape[1];
  set_out(c, 0, tab->dtype, ids->rank + 1, sh);
  return true;
}

static bool infer_positions(ictx *c) {
  const ir_attrs *a = &c->o->at;
  if (a->rank < 1 || a->rank > IR_MAXRANK) return fail(c, "needs a shape of rank 1..%d", IR_MAXRANK);
  for (int i = 0; i < a->rank; i++)
    if (a->shape[i].c <= 0) return fail(c, "dim %d must be positive, got %s", i, ds(a->shape[i]));
  set_out(c, 0, IR_I32, a->rank, a->shape);
  return true;
}

/* is_trailing: small's shape equals the trailing dims of big's. */
static bool is_trailing(const ir_tensor *big, const ir_tensor *small) {
  if (small->rank > big->rank) return false;
  int off = big->rank - small->rank;
  for (int i = 0; i < small->rank; i++)
    if (!ir_dim_eq(big->shape[off + i], small->shape[i])) return false;
  return true;
}

static bool infer_binary(ictx *c) {
  ir_tensor *a = IN(c, 0), *b = IN(c, 1);
  if (!need_float(c, 0, "lhs") || !need_float(c, 1, "rhs")) return false;
  if (a->dtype != b->dtype)
    return fail(c, "operands have different dtypes: %s vs %s", ir_dtype_name(a->dtype), ir_dtype_name(b->dtype));
  if (is_trailing(a, b)) return copy_out(c, 0, a), true;
  if (is_trailing(b, a)) return copy_out(c, 0, b), true;
  return fail(c, "shapes do not broadcast: %s vs %s", shs(a), shs(b));
}

/* mm_dims: the m and k axes of a (or k and n of b) after the trans attribute. */
static void mm_axes(const ir_tensor *t, bool trans, int *row, int *col) {
  *row = trans ? t->rank - 1 : t->rank - 2;
  *col = trans ? t->rank - 2 : t->rank - 1;
}

static bool infer_matmul(ictx *c) {
  ir_tensor *a = IN(c, 0), *b = IN(c, 1);
  if (!need_float(c, 0, "lhs") || !need_float(c, 1, "rhs")) return false;
  if (!need_rank(c, 0, 2, "lhs") || !need_rank(c, 1, 2, "rhs")) return false;
  if (a->dtype != b->dtype)
    return fail(c, "operands have different dtypes: %s vs %s", ir_dtype_name(a->dtype), ir_dtype_name(b->dtype));
  int am, ak, bk, bn;
  mm_axes(a, c->o->at.trans_a, &am, &ak);
  mm_axes(b, c->o->at.trans_b, &bk, &bn);
  if (!ir_dim_eq(a->shape[ak], b->shape[bk]))
    return fail(c, "inner dims differ: %s vs %s", ds(a->shape[ak]), ds(b->shape[bk]));
  if (b->rank > 2) {
    if (b->rank != a->rank) return fail(c, "batched rhs must have the lhs rank: %s vs %s", shs(a), shs(b));
    for (int i = 0; i < a->rank - 2; i++)
      if (!ir_dim_eq(a->shape[i], b->shape[i]))
        return fail(c, "batch dim %d differs: %s vs %s", i, ds(a->shape[i]), ds(b->shape[i]));
  }
  ir_dim sh[IR_MAXRANK];
  for (int i = 0; i < a->rank - 2; i++) sh[i] = a->shape[i];
  sh[a->rank - 2] = a->shape[am];
  sh[a->rank - 1] = b->shape[bn];
  set_out(c, 0, a->dtype, a->rank, sh);
  return true;
}

static bool infer_bias_add(ictx *c) {
  if (!need_float(c, 0, "x") || !need_rank(c, 0, 1, "x")) return false;
  if (!need_vec(c, 1, last(IN(c, 0)), "bias")) return false;
  copy_out(c, 0, IN(c, 0));
  return true;
}

static bool infer_norm(ictx *c) {
  if (!need_float(c, 0, "x") || !need_rank(c, 0, 1, "x")) return false;
  for (int i = 1; i < c->o->nin; i++)
    if (!need_vec(c, i, last(IN(c, 0)), i == 1 ? "weight" : "bias")) return false;
  copy_out(c, 0, IN(c, 0));
  return true;
}

static bool infer_swiglu(ictx *c) {
  if (!need_float(c, 0, "gate") || !need_same(c, 0, 1, "gate", "up")) return false;
  copy_out(c, 0, IN(c, 0));
  return true;
}

static bool infer_softmax(ictx *c) {
  if (!need_float(c, 0, "x") || !need_rank(c, 0, 1, "x")) return false;
  int64_t ax = c->o->at.axis;
  if (ax != -1 && ax != IN(c, 0)->rank - 1)
    return fail(c, "only the last axis is supported, got axis %lld", (long long)ax);
  copy_out(c, 0, IN(c, 0));
  return true;
}

/* heads_ok: the attention/rotary head attributes against hidden size h. */
static bool heads_ok(ictx *c, ir_dim h) {
  int64_t heads = c->o->at.heads;
  if (heads <= 0) return fail(c, "needs heads > 0");
  if (h.b || h.s || h.c % heads) return fail(c, "hidden size %s is not divisible by heads=%lld", ds(h), (long long)heads);
  return true;
}

static bool infer_attention_fused(ictx *c) {
  ir_tensor *x = IN(c, 0);
  ir_dim h3 = last(x);
  if (h3.b || h3.s || h3.c % 3) return fail(c, "fused qkv last dim %s is not a multiple of 3", ds(h3));
  ir_dim h = ir_const(h3.c / 3);
  if (!heads_ok(c, h)) return false;
  if (c->o->at.kv_heads && c->o->at.kv_heads != c->o->at.heads)
    return fail(c, "fused qkv needs kv_heads == heads (use separate q, k, v for grouped-query attention)");
  ir_dim sh[IR_MAXRANK];
  memcpy(sh, x->shape, sizeof sh);
  sh[x->rank - 1] = h;
  set_out(c, 0, x->dtype, x->rank, sh);
  return true;
}

static bool infer_attention_qkv(ictx *c) {
  ir_tensor *q = IN(c, 0), *k = IN(c, 1);
  if (!need_same(c, 1, 2, "k", "v")) return false;
  if (q->rank != k->rank || q->dtype != k->dtype)
    return fail(c, "q and k differ in rank or dtype: %s vs %s", shs(q), shs(k));
  for (int i = 0; i < q->rank - 2; i++)
    if (!ir_dim_eq(q->shape[i], k->shape[i]))
      return fail(c, "q and k batch dim %d differs: %s vs %s", i, ds(q->shape[i]), ds(k->shape[i]));
  if (!heads_ok(c, last(q))) return false;
  int64_t heads = c->o->at.heads, kvh = c->o->at.kv_heads ? c->o->at.kv_heads : heads;
  if (kvh <= 0 || heads % kvh) return fail(c, "heads=%lld is not a multiple of kv_heads=%lld", (long long)heads, (long long)kvh);
  ir_dim want = ir_const(last(q).c / heads * kvh);
  if (!ir_dim_eq(last(k), want))
    return fail(c, "k/v last dim must be kv_heads*H/heads: %s vs %s", ds(last(k)), ds(want));
  copy_out(c, 0, q);
  return true;
}

static bool infer_attention(ictx *c) {
  for (int i = 0; i < c->o->nin; i++)
    if (!need_float(c, i, "input") || !need_rank(c, i, 2, "input")) return false;
  if (c->o->nin == 1) return infer_attention_fused(c);
  if (c->o->nin == 3) return infer_attention_qkv(c);
  return fail(c, "takes a fused qkv or q, k, v (1 or 3 inputs), got %d", c->o->nin);
}

static bool infer_rotary(ictx *c) {
  if (!need_float(c, 0, "x") || !need_rank(c, 0, 2, "x")) return false;
  if (!heads_ok(c, last(IN(c, 0)))) return false;
  if ((last(IN(c, 0)).c / c->o->at.heads) % 2) return fail(c, "head size must be even");
  copy_out(c, 0, IN(c, 0));
  return true;
}

static bool infer_cross_entropy(ictx *c) {
  ir_tensor *lg = IN(c, 0), *lb = IN(c, 1);
  if (!need_float(c, 0, "logits") || !need_rank(c, 0, 1, "logits")) return false;
  if (!is_int(lb->dtype)) return fail(c, "labels must be an integer tensor, got %s", ir_dtype_name(lb->dtype));
  bool ok = lb->rank == lg->rank - 1;
  for (int i = 0; ok && i < lb->rank; i++) ok = ir_dim_eq(lb->shape[i], lg->shape[i]);
  if (!ok) return fail(c, "labels must have the logits shape without its last axis: %s vs %s", shs(lb), shs(lg));
  set_out(c, 0, IR_F32, 0, NULL);
  return true;
}

/* reshape_target: the attr shape with at most one -1 dim resolved. */
static bool reshape_target(ictx *c, ir_dim *sh) {
  const ir_attrs *a = &c->o->at;
  ir_dim have = ir_dim_numel(IN(c, 0)->shape, IN(c, 0)->rank), rest = ir_const(1);
  int hole = -1;
  if (a->rank < 1 || a->rank > IR_MAXRANK) return fail(c, "needs a shape of rank 1..%d", IR_MAXRANK);
  for (int i = 0; i < a->rank; i++) {
    sh[i] = a->shape[i];
    if (sh[i].c == -1 && !sh[i].b && !sh[i].s && hole < 0) hole = i;
    else if (sh[i].c <= 0) return fail(c, "dim %d must be positive, got %s", i, ds(sh[i]));
    else rest = ir_dim_mul(rest, sh[i]);
  }
  if (hole >= 0) {
    if (have.b < rest.b || have.s < rest.s || rest.c == 0 || have.c % rest.c)
      return fail(c, "cannot infer the -1 dim: %s elements into %s", ds(have), ds(rest));
    ir_dim h = {have.c / rest.c, (uint8_t)(have.b - rest.b), (uint8_t)(have.s - rest.s)};
    sh[hole] = h;
    rest = have;
  }
  if (!ir_dim_eq(have, rest)) return fail(c, "element counts differ: %s vs %s", ds(have), ds(rest));
  return true;
}

static bool infer_reshape(ictx *c) {
  ir_dim sh[IR_MAXRANK];
  if (!reshape_target(c, sh)) return false;
  set_out(c, 0, IN(c, 0)->dtype, c->o->at.rank, sh);
  return true;
}

static bool infer_transpose(ictx *c) {
  if (!need_rank(c, 0, 2, "x")) return false;
  ir_tensor *x = IN(c, 0);
  ir_dim sh[IR_MAXRANK];
  memcpy(sh, x->shape, sizeof sh);
  sh[x->rank - 2] = x->shape[x->rank - 1];
  sh[x->rank - 1] = x->shape[x->rank - 2];
  set_out(c, 0, x->dtype, x->rank, sh);
  return true;
}

/* norm_axis: attr axis (-1 = last) as an index into rank r, or -1. */
static int norm_axis(int64_t ax, int r) {
  if (ax < 0) ax += r;
  return ax >= 0 && ax < r ? (int)ax : -1;
}

static bool infer_split(ictx *c) {
  ir_tensor *x = IN(c, 0);
  if (!need_rank(c, 0, 1, "x")) return false;
  int ax = norm_axis(c->o->at.axis, x->rank);
  int64_t n = c->o->at.n ? c->o->at.n : c->o->nout;
  if (ax < 0) return fail(c, "axis %lld out of range for %s", (long long)c->o->at.axis, shs(x));
  if (n != c->o->nout) return fail(c, "n=%lld parts but %d outputs", (long long)n, c->o->nout);
  ir_dim d = x->shape[ax];
  if (d.c % n) return fail(c, "axis %d of size %s does not split into %lld parts", ax, ds(d), (long long)n);
  ir_dim sh[IR_MAXRANK];
  memcpy(sh, x->shape, sizeof sh);
  sh[ax].c = d.c / n;
  for (int i = 0; i < c->o->nout; i++) set_out(c, i, x->dtype, x->rank, sh);
  return true;
}

static bool infer_concat(ictx *c) {
  ir_tensor *x = IN(c, 0);
  int ax = norm_axis(c->o->at.axis, x->rank);
  if (ax < 0) return fail(c, "axis %lld out of range for %s", (long long)c->o->at.axis, shs(x));
  ir_dim sh[IR_MAXRANK];
  memcpy(sh, x->shape, sizeof sh);
  for (int i = 1; i < c->o->nin; i++) {
    ir_tensor *y = IN(c, i);
    bool ok = y->rank == x->rank && y->dtype == x->dtype;
    for (int k = 0; ok && k < x->rank; k++) ok = k == ax || ir_dim_eq(x->shape[k], y->shape[k]);
    if (!ok) return fail(c, "input %d does not match input 0 off axis %d: %s vs %s", i, ax, shs(y), shs(x));
    if (y->shape[ax].b != sh[ax].b || y->shape[ax].s != sh[ax].s)
      return fail(c, "cannot add dims %s and %s along axis %d", ds(sh[ax]), ds(y->shape[ax]), ax);
    sh[ax].c += y->shape[ax].c;
  }
  set_out(c, 0, x->dtype, x->rank, sh);
  return true;
}

/* index_ok: attr index picks a position of axis ax, of size d. A symbolic
 * dim c*B^b*S^s is at least c (B, S >= 1), so an index below c is valid for
 * every binding; a larger one may not be and is refused. */
static bool index_ok(ictx *c, int ax, ir_dim d) {
  long long i = (long long)c->o->at.index;
  if (i < 0) return fail(c, "index %lld must not be negative", i);
  if (i < d.c) return true;
  if (d.b || d.s)
    return fail(c, "index %lld may be out of range for axis %d of size %s (it must be below %lld, the size when B = S = 1)",
                i, ax, ds(d), (long long)d.c);
  return fail(c, "index %lld out of range for axis %d of size %s", i, ax, ds(d));
}

/* drop_axis: shape sh[0..r) without axis ax into out. */
static void drop_axis(const ir_dim *sh, int r, int ax, ir_dim *out) {
  for (int i = 0, k = 0; i < r; i++)
    if (i != ax) out[k++] = sh[i];
}

static bool infer_select(ictx *c) {
  ir_tensor *x = IN(c, 0);
  if (!need_float(c, 0, "input") || !need_rank(c, 0, 1, "input")) return false;
  int ax = norm_axis(c->o->at.axis, x->rank);
  if (ax < 0) return fail(c, "axis %lld out of range for %s", (long long)c->o->at.axis, shs(x));
  if (!index_ok(c, ax, x->shape[ax])) return false;
  ir_dim sh[IR_MAXRANK];
  drop_axis(x->shape, x->rank, ax, sh);
  set_out(c, 0, x->dtype, x->rank - 1, sh);
  return true;
}

static bool infer_same(ictx *c) {
  copy_out(c, 0, IN(c, 0));
  return true;
}

/* ---- backward and optimizer ops ------------------------------------------- */

static bool infer_embedding_grad(ictx *c) {
  ir_tensor *ids = IN(c, 0), *dy = IN(c, 1);
  const ir_attrs *a = &c->o->at;
  if (!is_int(ids->dtype)) return fail(c, "ids must be an integer tensor, got %s", ir_dtype_name(ids->dtype));
  bool ok = dy->rank == ids->rank + 1;
  for (int i = 0; ok && i < ids->rank; i++) ok = ir_dim_eq(ids->shape[i], dy->shape[i]);
  if (!ok) return fail(c, "dy must be ids' shape plus one axis: %s vs %s", shs(dy), shs(ids));
  ir_dim sh[2];
  if (a->rank == 2) sh[0] = a->shape[0], sh[1] = a->shape[1];
  else if (OUT(c, 0)->rank == 2) sh[0] = OUT(c, 0)->shape[0], sh[1] = OUT(c, 0)->shape[1];
  else return fail(c, "needs the table shape [V, H] (attr shape)");
  if (!ir_dim_eq(sh[1], last(dy))) return fail(c, "table width differs from dy: %s vs %s", ds(sh[1]), ds(last(dy)));
  set_out(c, 0, dy->dtype, 2, sh);
  return true;
}

/* select_grad: dy is the attr shape (the select input) without attr axis. */
static bool infer_select_grad(ictx *c) {
  ir_tensor *dy = IN(c, 0);
  const ir_attrs *a = &c->o->at;
  if (!need_float(c, 0, "dy")) return false;
  if (a->rank < 1 || a->rank > IR_MAXRANK) return fail(c, "needs the input shape (attr shape) of rank 1..%d", IR_MAXRANK);
  int ax = norm_axis(a->axis, a->rank);
  if (ax < 0) return fail(c, "axis %lld out of range for rank %d", (long long)a->axis, a->rank);
  ir_dim sh[IR_MAXRANK];
  drop_axis(a->shape, a->rank, ax, sh);
  bool ok = dy->rank == a->rank - 1;
  for (int i = 0; ok && i < dy->rank; i++) ok = ir_dim_eq(dy->shape[i], sh[i]);
  if (!ok) return fail(c, "dy must be the input shape without axis %d: %s", ax, shs(dy));
  if (!index_ok(c, ax, a->shape[ax])) return false;
  set_out(c, 0, dy->dtype, a->rank, a->shape);
  return true;
}

static bool infer_sum_rows(ictx *c) {
  if (!need_rank(c, 0, 1, "x")) return false;
  ir_dim n = last(IN(c, 0));
  set_out(c, 0, IN(c, 0)->dtype, 1, &n);
  return true;
}

/* infer_grad_like: outputs i take the shapes of inputs map[i]; inputs (0, dy)
 * must match for the elementwise part. */
static bool infer_grad_like(ictx *c, int x, int dy, const int *map) {
  if (!need_same(c, x, dy, "x", "dy")) return false;
  for (int i = 0; i < c->o->nout; i++) copy_out(c, i, IN(c, map[i]));
  return true;
}

static bool infer_norm_grad(ictx *c) {
  int nw = c->o->nin - 2; /* weight (+ bias) */
  static const int map[3] = {0, 1, 2};
  for (int i = 1; i <= nw; i++)
    if (!need_vec(c, i, last(IN(c, 0)), i == 1 ? "weight" : "bias")) return false;
  return infer_grad_like(c, 0, c->o->nin - 1, map);
}

static bool infer_elem_grad(ictx *c) {
  static const int map[3] = {0, 1, 2};
  if (c->o->kind == IR_OP_SWIGLU_GRAD && !need_same(c, 0, 1, "gate", "up")) return false;
  return infer_grad_like(c, 0, c->o->nin - 1, map);
}

static bool infer_attention_grad(ictx *c) {
  int nf = c->o->nin - 2;
  if (nf != 1 && nf != 3) return fail(c, "takes (qkv, out, dout) or (q, k, v, out, dout), got %d inputs", c->o->nin);
  if (c->o->nout != nf) return fail(c, "needs %d outputs, got %d", nf, c->o->nout);
  if (!need_same(c, nf, nf + 1, "out", "dout")) return false;
  for (int i = 0; i < nf; i++) copy_out(c, i, IN(c, i));
  return true;
}

/* ---- ring attention (lower/ring.c) ------------------------------------------ */

/* the per-row statistics of q: [..., S, k * heads] (lse, or lse and delta) */
static void stats_out(ictx *c, int i, const ir_tensor *q, int64_t k) {
  ir_dim sh[IR_MAXRANK];
  memcpy(sh, q->shape, sizeof sh);
  sh[q->rank - 1] = ir_const(k * c->o->at.heads);
  set_out(c, i, q->dtype, q->rank, sh);
}

/* q [.., H] and kv [.., 2 * kv_heads * H / heads] of one ring step */
static bool ring_qkv_ok(ictx *c) {
  if (!need_float(c, 0, "q") || !need_rank(c, 0, 2, "q") || !need_float(c, 1, "kv")) return false;
  ir_tensor *q = IN(c, 0), *kv = IN(c, 1);
  if (!heads_ok(c, last(q))) return false;
  int64_t heads = c->o->at.heads, kvh = c->o->at.kv_heads ? c->o->at.kv_heads : heads;
  if (kvh <= 0 || heads % kvh) return fail(c, "heads=%lld is not a multiple of kv_heads=%lld", (long long)heads, (long long)kvh);
  if (kv->rank != q->rank || !ir_dim_eq(last(kv), ir_const(2 * (last(q).c / heads) * kvh)))
    return fail(c, "kv must be q's shape with 2*kv_heads heads: %s vs %s", shs(kv), shs(q));
  return true;
}

static bool infer_ring_attention(ictx *c) {
  if (!ring_qkv_ok(c)) return false;
  if (c->o->nin == 4 && !need_same(c, 0, 2, "q", "o")) return false;
  if (c->o->nin == 3) return fail(c, "takes (q, kv) or (q, kv, o, lse), got 3 inputs");
  copy_out(c, 0, IN(c, 0));
  stats_out(c, 1, IN(c, 0), 1);
  return true;
}

static bool infer_ring_attention_grad(ictx *c) {
  if (!ring_qkv_ok(c)) return false;
  bool first = c->o->at.n == 0;
  if (c->o->nout != (first ? 3 : 2)) return fail(c, "needs %d outputs at step %lld, got %d", first ? 3 : 2, (long long)c->o->at.n, c->o->nout);
  if (!(first ? need_same(c, 2, 3, "out", "dout") : need_same(c, 0, 4, "q", "dq"))) return false;
  copy_out(c, 0, IN(c, 0));
  copy_out(c, 1, IN(c, 1));
  if (first) stats_out(c, 2, IN(c, 0), 2);
  return true;
}

static bool infer_ce_grad(ictx *c) {
  if (!need_float(c, 0, "logits") || !need_rank(c, 0, 1, "logits")) return false;
  if (!is_int(IN(c, 1)->dtype)) return fail(c, "labels must be an integer tensor");
  copy_out(c, 0, IN(c, 0));
  return true;
}

static bool infer_adamw(ictx *c) {
  static const char *nm[4] = {"param", "grad", "m", "v"};
  for (int i = 1; i < 4; i++)
    if (!same_shape(IN(c, 0), IN(c, i)))
      return fail(c, "%s and %s differ: %s vs %s", nm[0], nm[i], shs(IN(c, 0)), shs(IN(c, i)));
  copy_out(c, 0, IN(c, 0));
  copy_out(c, 1, IN(c, 2));
  copy_out(c, 2, IN(c, 3));
  return true;
}

/* ---- dispatch ------------------------------------------------------------ */

typedef bool (*infer_fn)(ictx *c);

static infer_fn infer_rule(ir_opkind k) {
  switch (k) {
  case IR_OP_EMBEDDING: return infer_embedding;
  case IR_OP_POSITIONS: return infer_positions;
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: return infer_binary;
  case IR_OP_SCALE: case IR_OP_GELU: case IR_OP_SILU: case IR_OP_TANH: case IR_OP_DROPOUT:
  case IR_OP_ROTARY_GRAD: case IR_OP_DROPOUT_GRAD: return infer_unary;
  case IR_OP_MATMUL: return infer_matmul;
  case IR_OP_BIAS_ADD: return infer_bias_add;
  case IR_OP_LAYER_NORM: case IR_OP_RMS_NORM: return infer_norm;
  case IR_OP_SWIGLU: return infer_swiglu;
  case IR_OP_SOFTMAX: return infer_softmax;
  case IR_OP_ATTENTION: return infer_attention;
  case IR_OP_ROTARY: return infer_rotary;
  case IR_OP_CROSS_ENTROPY: return infer_cross_entropy;
  case IR_OP_RESHAPE: return infer_reshape;
  case IR_OP_TRANSPOSE: return infer_transpose;
  case IR_OP_SPLIT: return infer_split;
  case IR_OP_CONCAT: return infer_concat;
  case IR_OP_SELECT: return infer_select;
  case IR_OP_ALL_REDUCE: case IR_OP_ALL_GATHER: case IR_OP_REDUCE_SCATTER:
  case IR_OP_ALL_TO_ALL: case IR_OP_SEND_RECV: case IR_OP_SLICE: return infer_same;
  case IR_OP_EMBEDDING_GRAD: return infer_embedding_grad;
  case IR_OP_SUM_ROWS: return infer_sum_rows;
  case IR_OP_SELECT_GRAD: return infer_select_grad;
  case IR_OP_LAYER_NORM_GRAD: case IR_OP_RMS_NORM_GRAD: return infer_norm_grad;
  case IR_OP_GELU_GRAD: case IR_OP_SILU_GRAD: case IR_OP_SWIGLU_GRAD: case IR_OP_TANH_GRAD:
  case IR_OP_SOFTMAX_GRAD: return infer_elem_grad;
  case IR_OP_ATTENTION_GRAD: return infer_attention_grad;
  case IR_OP_CROSS_ENTROPY_GRAD: return infer_ce_grad;
  case IR_OP_ADAMW: return infer_adamw;
  case IR_OP_RING_SHIFT: return infer_same;
  case IR_OP_RING_ATTENTION: return infer_ring_attention;
  case IR_OP_RING_ATTENTION_GRAD: return infer_ring_attention_grad;
  default: return NULL;
  }
}

/* arity_ok: input/output counts and refs in range. */
static bool arity_ok(ictx *c) {
  const ir_op *o = c->o;
  const ir_opinfo *in = &ir_ops[o->kind];
  if (o->nin < in->min_in || o->nin > in->max_in) {
    if (in->min_in == in->max_in) return fail(c, "takes %d inputs, got %d", in->min_in, o->nin);
    return fail(c, "takes %d to %d inputs, got %d", in->min_in, in->max_in, o->nin);
  }
  bool varout = o->kind == IR_OP_SPLIT || o->kind == IR_OP_ATTENTION_GRAD || o->kind == IR_OP_RING_ATTENTION_GRAD;
  if (o->nout < 1 || o->nout > in->nout || (!varout && o->nout != in->nout))
    return fail(c, "has %d outputs, expected %d", o->nout, in->nout);
  for (int i = 0; i < o->nin; i++)
    if (o->in[i] < 0 || o->in[i] >= c->g->nt) return fail(c, "input %d is not a tensor", i);
  for (int i = 0; i < o->nout; i++)
    if (o->out[i] < 0 || o->out[i] >= c->g->nt) return fail(c, "output %d is not a tensor", i);
  return true;
}

bool ir_op_infer(ir_graph *g, ir_op *o, diag *d) {
  ictx c = {g, o, d};
  if (o->kind >= IR_NOPKIND) return fail(&c, "unknown op kind %d", o->kind);
  if (!arity_ok(&c)) return false;
  infer_fn f = infer_rule((ir_opkind)o->kind);
  return f ? f(&c) : fail(&c, "no shape rule");
}
