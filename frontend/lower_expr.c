/* lower_expr.c — expressions to values and IR ops.
 *
 * fe_eval walks one expression tree (its depth is bounded by the parser) and
 * returns an fe_val. Op calls are looked up in the op registry (forward ops
 * only), positional arguments become op inputs, keyword arguments become
 * ir_attrs fields (each op accepts only the keywords listed in op_keywords).
 * Infix operators on tensors pick the IR op: `+` is add for equal shapes and
 * bias_add when one side is a vector matching the other's last dim, `-` sub,
 * `*` mul or, with a number, scale. Every op's shapes are inferred by
 * ir_op_infer as it is built, so a shape error points at the call or
 * operator that caused it. Numbers combine as dims (dims.c) or floats. */
#include "frontend/lower.h"
#include <math.h>
#include <string.h>

#define FIRST_NONFWD IR_OP_ALL_REDUCE

static fe_val verr(void) {
  fe_val v;
  memset(&v, 0, sizeof v);
  v.k = V_ERR;
  return v;
}

static fe_val vint(ir_dim d) {
  fe_val v = verr();
  v.k = V_INT;
  v.d = d;
  return v;
}

static fe_val vtensor(ir_ref t) {
  fe_val v = verr();
  v.k = V_TENSOR;
  v.t = t;
  return v;
}

static fe_val vfloat(double f) {
  fe_val v = verr();
  v.k = V_FLOAT;
  v.f = f;
  return v;
}

ir_ref fe_tensor_new(fe_ctx *c, ir_tensor *t) {
  if (c->in_block) {
    t->block = c->blk;
    t->layer = c->layer;
    t->lidx = c->t_lidx++;
  }
  return ir_tensor_add(c->g, t);
}

/* Build op kind k on inputs in[0..nin) with attributes at; infer its shapes. */
static fe_val make_op(fe_ctx *c, int k, const ir_ref *in, int nin, const ir_attrs *at, srcloc loc) {
  if (c->g->nt + IR_MAXOUT > FE_MAX_OPS) {
    if (!c->too_big) diag_error(c->d, loc, "the model has more than %d tensors", FE_MAX_OPS);
    c->too_big = true;
    return verr();
  }
  ir_op o = ir_op_init((ir_opkind)k);
  o.at = *at;
  o.nin = (uint8_t)nin;
  for (int i = 0; i < nin; i++) o.in[i] = in[i];
  o.nout = (uint8_t)ir_ops[k].nout;
  o.loc = loc;
  for (int i = 0; i < o.nout; i++) {
    ir_tensor t = ir_tensor_init(NULL, IR_T_ACT, IR_F32);
    t.loc = loc;
    o.out[i] = fe_tensor_new(c, &t);
    c->g->t[o.out[i]].name = arena_printf(c->g->arena, "%%%d", o.out[i]);
  }
  if (c->in_block) {
    o.block = c->blk;
    o.layer = c->layer;
    o.lidx = c->op_lidx++;
  }
  if (!ir_op_infer(c->g, &o, c->d)) return verr();
  for (int i = 0; i < o.nout; i++) {
    const ir_tensor *t = &c->g->t[o.out[i]];
    if (!fe_shape_ok(c, t->shape, t->rank, loc)) return verr();
  }
  ir_op_add(c->g, &o);
  return vtensor(o.out[0]);
}

/* ---- names ---- */

static bool loc_before(srcloc a, srcloc b) { return a.line < b.line || (a.line == b.line && a.col < b.col); }

static void undefined(fe_ctx *c, const char *name, srcloc loc) {
  fe_bind *f = fe_env_get(&c->first, name);
  if (f && loc_before(loc, f->loc)) {
    diag_error(c->d, loc, "'%s' is used before its definition (line %d)", name, f->loc.line);
    return;
  }
  if (c->assigning && !strcmp(c->assigning, name)) {
    diag_error(c->d, loc, "'%s' is used in its own definition", name);
    return;
  }
  const char *near = NULL;
  if (c->d->errors < DIAG_MAX_ERRORS) {
    near = c->in_block ? fe_env_closest(&c->local, name) : NULL;
    if (!near) near = fe_env_closest(&c->global, name);
  }
  if (near)
    diag_error(c->d, loc, "undefined name '%s' (did you mean '%s'?)", name, near);
  else if (f)
    diag_error(c->d, loc, "undefined name '%s' (names made inside a block are local to one layer)", name);
  else
    diag_error(c->d, loc, "undefined name '%s'", name);
}

fe_val fe_lookup(fe_ctx *c, const char *name, srcloc loc) {
  if (!strcmp(name, "B")) return vint((ir_dim){1, 1, 0});
  if (!strcmp(name, "S")) return vint((ir_dim){1, 0, 1});
  fe_bind *b = c->in_block ? fe_env_get(&c->local, name) : NULL;
  if (!b) b = fe_env_get(&c->global, name);
  if (b) return b->v;
  undefined(c, name, loc);
  return verr();
}

/* ---- keyword arguments ---- */

/* The keywords each op accepts, separated by ", ". */
static const char *op_keywords(int k) {
  switch (k) {
  case IR_OP_ATTENTION: return "heads, kv_heads, causal, scale";
  case IR_OP_ROTARY: return "heads, theta";
  case IR_OP_SOFTMAX: return "scale, causal, axis";
  case IR_OP_LAYER_NORM:
  case IR_OP_RMS_NORM: return "eps";
  case IR_OP_GELU: return "approximate";
  case IR_OP_DROPOUT: return "p";
  case IR_OP_MATMUL: return "trans_a, trans_b";
  case IR_OP_SCALE: return "scale";
  case IR_OP_SPLIT: return "axis, n";
  case IR_OP_CONCAT: return "axis";
  case IR_OP_SELECT: return "axis, index";
  case IR_OP_RESHAPE: return "shape";
  default: return "";
  }
}

static bool kw_allowed(const char *list, const char *kw) {
  size_t n = strlen(kw);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    size_t m = e ? (size_t)(e - p) : strlen(p);
    if (m == n && !strncmp(p, kw, n)) return true;
    p += m + (e ? 2 : 0);
  }
  return false;
}

static bool num_of(fe_ctx *c, const fe_val *v, const char *kw, srcloc loc, double *out) {
  if (v->k == V_FLOAT) return *out = v->f, true;
  if (v->k == V_INT && !v->d.b && !v->d.s) return *out = (double)v->d.c, true;
  diag_error(c->d, loc, "'%s' must be a number", kw);
  return false;
}

static bool int_kw(fe_ctx *c, const fe_val *v, const char *kw, srcloc loc, int64_t lo, int64_t hi, int64_t *out) {
  if (v->k != V_INT || v->d.b || v->d.s) {
    diag_error(c->d, loc, "'%s' must be a constant integer", kw);
    return false;
  }
  int64_t x = v->d.c;
  if (x < lo || x > hi) {
    diag_error(c->d, loc, "'%s' is %lld; it must be between %lld and %lld", kw, (long long)x, (long long)lo,
               (long long)hi);
    return false;
  }
  *out = x;
  return true;
}

static bool bool_kw(fe_ctx *c, const fe_val *v, const char *kw, srcloc loc, bool *out) {
  if (v->k != V_BOOL) {
    diag_error(c->d, loc, "'%s' must be true or false", kw);
    return false;
  }
  *out = v->b;
  return true;
}

static bool approx_kw(fe_ctx *c, const fe_val *v, srcloc loc, bool *tanh_flag) {
  if (v->k == V_STR && !strcmp(v->s, "tanh")) return *tanh_flag = true, true;
  if (v->k == V_STR && (!strcmp(v->s, "none") || !strcmp(v->s, "erf"))) return *tanh_flag = false, true;
  diag_error(c->d, loc, "'approximate' must be \"tanh\", \"none\" or \"erf\"");
  return false;
}

static bool shape_kw(fe_ctx *c, const fe_val *v, srcloc loc, ir_attrs *at) {
  if (v->k != V_LIST) {
    diag_error(c->d, loc, "a shape must be a list of dims, as in [B*S, H]");
    return false;
  }
  if (!fe_shape_ok(c, v->list, v->n, loc)) return false;
  at->rank = (uint8_t)v->n;
  if (v->n) memcpy(at->shape, v->list, sizeof(ir_dim) * (size_t)v->n);
  return true;
}

static bool set_kw(fe_ctx *c, int k, ir_attrs *at, const fe_arg *a) {
  const char *kw = a->kw, *list = op_keywords(k);
  if (!kw_allowed(list, kw)) {
    if (*list)
      diag_error(c->d, a->loc, "unknown keyword '%s' for '%s' (it takes: %s)", kw, ir_ops[k].name, list);
    else
      diag_error(c->d, a->loc, "unknown keyword '%s': '%s' takes no keywords", kw, ir_ops[k].name);
    return false;
  }
  fe_val v = fe_eval(c, a->e);
  if (v.k == V_ERR) return false;
  srcloc l = a->e->loc;
  if (!strcmp(kw, "heads")) return int_kw(c, &v, kw, l, 1, 1 << 20, &at->heads);
  if (!strcmp(kw, "kv_heads")) return int_kw(c, &v, kw, l, 1, 1 << 20, &at->kv_heads);
  if (!strcmp(kw, "axis")) return int_kw(c, &v, kw, l, -IR_MAXRANK, IR_MAXRANK - 1, &at->axis);
  if (!strcmp(kw, "n")) return int_kw(c, &v, kw, l, 1, IR_MAXOUT, &at->n);
  if (!strcmp(kw, "index")) return int_kw(c, &v, kw, l, 0, INT32_MAX, &at->index);
  if (!strcmp(kw, "causal")) return bool_kw(c, &v, kw, l, &at->causal);
  if (!strcmp(kw, "trans_a")) return bool_kw(c, &v, kw, l, &at->trans_a);
  if (!strcmp(kw, "trans_b")) return bool_kw(c, &v, kw, l, &at->trans_b);
  if (!strcmp(kw, "approximate")) return approx_kw(c, &v, l, &at->tanh);
  if (!strcmp(kw, "shape")) return shape_kw(c, &v, l, at);
  double x;
  if (!num_of(c, &v, kw, l, &x)) return false;
  if (!strcmp(kw, "p") && !(x >= 0 && x < 1)) {
    diag_error(c->d, l, "'p' must be in [0, 1)");
    return false;
  }
  if (!strcmp(kw, "eps") && !(x > 0)) {
    diag_error(c->d, l, "'eps' must be positive");
    return false;
  }
  if (!strcmp(kw, "eps")) at->eps = x;
  else if (!strcmp(kw, "scale")) at->scale = x;
  else if (!strcmp(kw, "p")) at->p = x;
  else at->theta = x;
  return true;
}

static void op_defaults(int k, ir_attrs *at) {
  if (k == IR_OP_LAYER_NORM) at->eps = 1e-5;
  if (k == IR_OP_RMS_NORM) at->eps = 1e-6;
  if (k == IR_OP_ROTARY) at->theta = 10000.0;
  if (k == IR_OP_SOFTMAX || k == IR_OP_SCALE) at->scale = 1.0;
}

/* ---- op calls ---- */

static void unknown_op(fe_ctx *c, const char *name, srcloc loc) {
  int k = ir_op_lookup(name);
  if (k >= FIRST_NONFWD) {
    diag_error(c->d, loc, "'%s' is made by the compiler and cannot be called", name);
    return;
  }
  const char *best = NULL;
  int bd = 3;
  for (int i = 0; i < FIRST_NONFWD; i++) {
    int d = fe_edit_distance(name, ir_ops[i].name, 2);
    if (d < bd) bd = d, best = ir_ops[i].name;
  }
  if (best)
    diag_error(c->d, loc, "unknown op '%s' (did you mean '%s'?)", name, best);
  else
    diag_error(c->d, loc, "unknown op '%s'", name);
}

/* A positional argument that is not a tensor: positions' length, reshape's shape. */
static bool special_arg(fe_ctx *c, int k, const fe_val *v, const fe_arg *a, ir_attrs *at) {
  if (k == IR_OP_POSITIONS && v->k == V_INT) {
    if (at->rank) {
      diag_error(c->d, a->loc, "positions takes one length");
      return false;
    }
    if (v->d.c <= 0) {
      diag_error(c->d, a->loc, "positions needs a positive length");
      return false;
    }
    at->rank = 1;
    at->shape[0] = v->d;
    return true;
  }
  if (k == IR_OP_RESHAPE && v->k == V_LIST) return shape_kw(c, v, a->loc, at);
  diag_error(c->d, a->loc, "argument of '%s' must be a tensor", ir_ops[k].name);
  return false;
}

static bool check_call(fe_ctx *c, int k, int nin, const ir_attrs *at, srcloc loc) {
  const ir_opinfo *in = &ir_ops[k];
  if (nin < in->min_in || nin > in->max_in) {
    if (in->min_in == in->max_in)
      diag_error(c->d, loc, "'%s' takes %d tensor argument%s, not %d", in->name, in->min_in,
                 in->min_in == 1 ? "" : "s", nin);
    else
      diag_error(c->d, loc, "'%s' takes %d to %d tensor arguments, not %d", in->name, in->min_in, in->max_in, nin);
    return false;
  }
  if (k == IR_OP_SPLIT) {
    diag_error(c->d, loc, "'split' has several results, which the language cannot bind yet");
    return false;
  }
  if ((k == IR_OP_POSITIONS || k == IR_OP_RESHAPE) && !at->rank) {
    diag_error(c->d, loc, k == IR_OP_POSITIONS ? "positions needs a length, as in positions(S)"
                                               : "reshape needs a shape, as in reshape(x, [B*S, H])");
    return false;
  }
  if ((k == IR_OP_ATTENTION || k == IR_OP_ROTARY) && !at->heads) {
    diag_error(c->d, loc, "'%s' needs heads=", in->name);
    return false;
  }
  return true;
}

/* A keyword given twice (checked among the first 64 arguments: calls are short). */
static bool repeated_kw(fe_ctx *c, const fe_arg *args, const fe_arg *a, int idx) {
  if (idx >= 64) return false;
  for (const fe_arg *p = args; p != a; p = p->next)
    if (p->kw && !strcmp(p->kw, a->kw)) {
      diag_error(c->d, a->loc, "keyword '%s' is given twice", a->kw);
      return true;
    }
  return false;
}

static fe_val eval_call(fe_ctx *c, const fe_expr *e) {
  int k = ir_op_lookup(e->s);
  if (k < 0 || k >= FIRST_NONFWD) {
    unknown_op(c, e->s, e->loc);
    return verr();
  }
  ir_attrs at = ir_op_init((ir_opkind)k).at;
  op_defaults(k, &at);
  ir_ref in[IR_MAXIN];
  int nin = 0;
  bool ok = true;
  int idx = 0;
  for (const fe_arg *a = e->args; a; a = a->next, idx++) {
    if (a->kw) {
      ok &= !repeated_kw(c, e->args, a, idx) && set_kw(c, k, &at, a);
      continue;
    }
    fe_val v = fe_eval(c, a->e);
    if (v.k == V_ERR) ok = false;
    else if (v.k != V_TENSOR) ok &= special_arg(c, k, &v, a, &at);
    else if (nin < IR_MAXIN) in[nin++] = v.t;
    else nin++;
  }
  if (!ok) return verr();
  if (!check_call(c, k, nin, &at, e->loc)) return verr();
  if (k == IR_OP_ATTENTION && !at.kv_heads) at.kv_heads = at.heads;
  return make_op(c, k, in, nin, &at, e->loc);
}

/* ---- operators ---- */

static fe_val op2(fe_ctx *c, int k, ir_ref a, ir_ref b, srcloc loc) {
  ir_attrs at = ir_op_init((ir_opkind)k).at;
  ir_ref in[2] = {a, b};
  return make_op(c, k, in, 2, &at, loc);
}

static fe_val scale_op(fe_ctx *c, ir_ref t, double s, srcloc loc) {
  ir_attrs at = ir_op_init(IR_OP_SCALE).at;
  at.scale = s;
  return make_op(c, IR_OP_SCALE, &t, 1, &at, loc);
}

/* a + b: add, or bias_add when one side is a vector of the other's last dim. */
static fe_val add_op(fe_ctx *c, ir_ref a, ir_ref b, srcloc loc) {
  const ir_tensor *ta = &c->g->t[a], *tb = &c->g->t[b];
  if (tb->rank == 1 && ta->rank >= 2 && ir_dim_eq(tb->shape[0], ta->shape[ta->rank - 1]))
    return op2(c, IR_OP_BIAS_ADD, a, b, loc);
  if (ta->rank == 1 && tb->rank >= 2 && ir_dim_eq(ta->shape[0], tb->shape[tb->rank - 1]))
    return op2(c, IR_OP_BIAS_ADD, b, a, loc);
  return op2(c, IR_OP_ADD, a, b, loc);
}

static bool is_num(const fe_val *v) { return v->k == V_FLOAT || (v->k == V_INT && !v->d.b && !v->d.s); }

static double num(const fe_val *v) { return v->k == V_FLOAT ? v->f : (double)v->d.c; }

static fe_val tensor_bin(fe_ctx *c, char op, fe_val a, fe_val b, srcloc loc) {
  if (a.k == V_TENSOR && b.k == V_TENSOR) {
    if (op == '+') return add_op(c, a.t, b.t, loc);
    if (op == '-') return op2(c, IR_OP_SUB, a.t, b.t, loc);
    if (op == '*') return op2(c, IR_OP_MUL, a.t, b.t, loc);
    diag_error(c->d, loc, "cannot divide a tensor by a tensor");
    return verr();
  }
  const fe_val *t = a.k == V_TENSOR ? &a : &b, *n = a.k == V_TENSOR ? &b : &a;
  if (!is_num(n)) {
    diag_error(c->d, loc, "'%c' needs a tensor and a number, or two tensors", op);
    return verr();
  }
  if (op == '*') return scale_op(c, t->t, num(n), loc);
  if (op == '/' && t == &a) {
    if (num(n) == 0) {
      diag_error(c->d, loc, "division by zero");
      return verr();
    }
    return scale_op(c, t->t, 1.0 / num(n), loc);
  }
  diag_error(c->d, loc, op == '/' ? "cannot divide a number by a tensor" : "cannot %s a number and a tensor (only * and /)",
             op == '+' ? "add" : "subtract");
  return verr();
}

static fe_val float_bin(fe_ctx *c, char op, double x, double y, srcloc loc) {
  double r = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : y != 0 ? x / y : NAN;
  if (op == '/' && y == 0) {
    diag_error(c->d, loc, "division by zero");
    return verr();
  }
  if (!isfinite(r)) {
    diag_error(c->d, loc, "number is too large");
    return verr();
  }
  return vfloat(r);
}

static fe_val eval_bin(fe_ctx *c, const fe_expr *e) {
  fe_val a = fe_eval(c, e->l), b = fe_eval(c, e->r);
  if (a.k == V_ERR || b.k == V_ERR) return verr();
  if (a.k == V_TENSOR || b.k == V_TENSOR) return tensor_bin(c, e->op, a, b, e->loc);
  if (a.k == V_INT && b.k == V_INT) {
    ir_dim d;
    return fe_dim_arith(c, e->op, a.d, b.d, &d, e->loc) ? vint(d) : verr();
  }
  if (is_num(&a) && is_num(&b)) return float_bin(c, e->op, num(&a), num(&b), e->loc);
  diag_error(c->d, e->loc, "'%c' needs numbers or tensors", e->op);
  return verr();
}

static fe_val eval_neg(fe_ctx *c, const fe_expr *e) {
  fe_val a = fe_eval(c, e->l);
  switch (a.k) {
  case V_ERR: return a;
  case V_TENSOR: return scale_op(c, a.t, -1.0, e->loc);
  case V_FLOAT: return vfloat(-a.f);
  case V_INT:
    if (a.d.c == INT64_MIN) break;
    a.d.c = -a.d.c;
    return a;
  default: break;
  }
  diag_error(c->d, e->loc, "'-' needs a number or a tensor");
  return verr();
}

static fe_val eval_list(fe_ctx *c, const fe_expr *e) {
  fe_val v = verr();
  v.k = V_LIST;
  bool ok = true;
  for (const fe_arg *a = e->args; a; a = a->next) {
    fe_val x = fe_eval(c, a->e);
    if (x.k == V_ERR) { ok = false; continue; }
    if (x.k != V_INT) {
      diag_error(c->d, a->loc, "list elements must be integer dims");
      ok = false;
    } else if (v.n == IR_MAXRANK) {
      diag_error(c->d, a->loc, "too many dims (a tensor has at most %d)", IR_MAXRANK);
      return verr();
    } else {
      v.list[v.n++] = x.d;
    }
  }
  return ok ? v : verr();
}

fe_val fe_eval(fe_ctx *c, const fe_expr *e) {
  fe_val v = verr();
  switch (e->kind) {
  case FE_E_ERR: return v;
  case FE_E_INT: return vint(ir_const(e->i));
  case FE_E_FLOAT: return vfloat(e->f);
  case FE_E_STR: v.k = V_STR, v.s = e->s; return v;
  case FE_E_BOOL: v.k = V_BOOL, v.b = e->i != 0; return v;
  case FE_E_NAME: return fe_lookup(c, e->s, e->loc);
  case FE_E_CALL: return eval_call(c, e);
  case FE_E_BIN: return eval_bin(c, e);
  case FE_E_NEG: return eval_neg(c, e);
  case FE_E_LIST: return eval_list(c, e);
  }
  return v;
}
