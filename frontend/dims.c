/* dims.c — integer dims: constants and the symbolic batch/sequence dims.
 *
 * A dim value is c * B^b * S^s (ir_dim). Products multiply the constants
 * (checked for int64 overflow with the compiler builtins, so a huge number is
 * an error, never UB) and add the powers; sums and differences need equal
 * powers (2*S + S is 3*S; B + 1 is an error); division must be exact and by
 * a constant. Shapes are lists of positive dims; a tensor whose constant
 * element count passes FE_MAX_NUMEL, or whose B/S powers pass 4, is refused,
 * which keeps every later size computation inside int64. */
#include "frontend/lower.h"

#define MAX_POW 4

static bool sym(ir_dim d) { return d.b || d.s; }

static bool dim_sum(fe_ctx *c, char op, ir_dim a, ir_dim b, ir_dim *out, srcloc loc) {
  if (a.b != b.b || a.s != b.s) {
    diag_error(c->d, loc, "B and S can only be multiplied by constants (as in B*S or 3*S), not added to other dims");
    return false;
  }
  int64_t v;
  if (op == '+' ? __builtin_add_overflow(a.c, b.c, &v) : __builtin_sub_overflow(a.c, b.c, &v)) {
    diag_error(c->d, loc, "integer overflow in dim arithmetic");
    return false;
  }
  *out = a;
  out->c = v;
  return true;
}

static bool dim_mul(fe_ctx *c, ir_dim a, ir_dim b, ir_dim *out, srcloc loc) {
  int64_t v;
  if (__builtin_mul_overflow(a.c, b.c, &v)) {
    diag_error(c->d, loc, "integer overflow in dim arithmetic");
    return false;
  }
  if (a.b + b.b > MAX_POW || a.s + b.s > MAX_POW) {
    diag_error(c->d, loc, "too many factors of B or S (at most %d of each)", MAX_POW);
    return false;
  }
  out->c = v;
  out->b = (uint8_t)(a.b + b.b);
  out->s = (uint8_t)(a.s + b.s);
  return true;
}

static bool dim_div(fe_ctx *c, ir_dim a, ir_dim b, ir_dim *out, srcloc loc) {
  if (sym(b)) {
    diag_error(c->d, loc, "cannot divide by B or S");
    return false;
  }
  if (b.c == 0) {
    diag_error(c->d, loc, "division by zero");
    return false;
  }
  if (b.c == -1 && a.c == INT64_MIN) {
    diag_error(c->d, loc, "integer overflow in dim arithmetic");
    return false;
  }
  if (a.c % b.c) {
    diag_error(c->d, loc, "dim division is not exact: %lld / %lld", (long long)a.c, (long long)b.c);
    return false;
  }
  *out = a;
  out->c = a.c / b.c;
  return true;
}

bool fe_dim_arith(fe_ctx *c, char op, ir_dim a, ir_dim b, ir_dim *out, srcloc loc) {
  switch (op) {
  case '+':
  case '-': return dim_sum(c, op, a, b, out, loc);
  case '*': return dim_mul(c, a, b, out, loc);
  case '/': return dim_div(c, a, b, out, loc);
  }
  return false;
}

bool fe_dim_const(fe_ctx *c, const fe_val *v, const char *what, srcloc loc, int64_t *out) {
  if (v->k == V_ERR) return false;
  if (v->k != V_INT) {
    diag_error(c->d, loc, "%s must be an integer", what);
    return false;
  }
  if (sym(v->d)) {
    diag_error(c->d, loc, "%s must be a constant (B and S are bound later)", what);
    return false;
  }
  *out = v->d.c;
  return true;
}

bool fe_shape_ok(fe_ctx *c, const ir_dim *shape, int rank, srcloc loc) {
  int64_t n = 1;
  int b = 0, s = 0;
  for (int i = 0; i < rank; i++) {
    if (shape[i].c <= 0) {
      diag_error(c->d, loc, "dim %d of the shape is %lld; dims must be positive", i, (long long)shape[i].c);
      return false;
    }
    if (__builtin_mul_overflow(n, shape[i].c, &n) || n > FE_MAX_NUMEL) {
      diag_error(c->d, loc, "tensor is too large (more than 2^40 elements besides B and S)");
      return false;
    }
    b += shape[i].b;
    s += shape[i].s;
  }
  if (b > MAX_POW || s > MAX_POW) {
    diag_error(c->d, loc, "tensor has too many factors of B or S (at most %d of each)", MAX_POW);
    return false;
  }
  return true;
}

bool fe_shape(fe_ctx *c, const fe_arg *dims, bool allow_sym, ir_dim *shape, int *rank, srcloc loc) {
  int r = 0;
  bool ok = true;
  for (const fe_arg *a = dims; a; a = a->next) {
    if (r == IR_MAXRANK) {
      diag_error(c->d, a->loc, "too many dims (a tensor has at most %d)", IR_MAXRANK);
      return false;
    }
    fe_val v = fe_eval(c, a->e);
    if (v.k == V_ERR) { ok = false; continue; }
    if (v.k != V_INT) {
      diag_error(c->d, a->loc, "a shape dim must be an integer");
      ok = false;
      continue;
    }
    if (sym(v.d) && !allow_sym) {
      diag_error(c->d, a->loc, "parameter shapes cannot use B or S");
      ok = false;
      continue;
    }
    if (v.d.c <= 0) {
      diag_error(c->d, a->loc, "shape dim is %lld; dims must be positive", (long long)v.d.c);
      ok = false;
      continue;
    }
    shape[r++] = v.d;
  }
  *rank = r;
  return ok && fe_shape_ok(c, shape, r, loc);
}
