/* train.c — a train section to an ir_train.
 *
 * Keys: global_batch, seq, micro_batch (positive integers, written as
 * literals or integer arithmetic such as 2*1024), precision (f32, f16, bf16),
 * optimizer (adamw, sgd) and lengths (a string: the path of a file of
 * sequence lengths, taken relative to the .sbp file's folder). The train
 * section has no access to the model's dims, so it can be read alone. */
#include "frontend/lower.h"
#include <string.h>

#define MAX_TRAIN_INT (INT64_C(1) << 31)

/* A constant integer expression (literals and + - * /), overflow-checked. */
static bool const_int(diag *d, const fe_expr *e, int64_t *out) {
  int64_t a, b;
  switch (e->kind) {
  case FE_E_ERR: return false;
  case FE_E_INT: *out = e->i; return true;
  case FE_E_NEG:
    if (!const_int(d, e->l, &a)) return false;
    *out = -a;
    return true;
  case FE_E_BIN:
    if (!const_int(d, e->l, &a) || !const_int(d, e->r, &b)) return false;
    if ((e->op == '+' && __builtin_add_overflow(a, b, out)) || (e->op == '-' && __builtin_sub_overflow(a, b, out)) ||
        (e->op == '*' && __builtin_mul_overflow(a, b, out))) {
      diag_error(d, e->loc, "integer overflow");
      return false;
    }
    if (e->op == '/') {
      if (b == 0 || (a == INT64_MIN && b == -1) || a % b) {
        diag_error(d, e->loc, "division must be exact and not by zero");
        return false;
      }
      *out = a / b;
    }
    return true;
  default: diag_error(d, e->loc, "expected an integer"); return false;
  }
}

static bool train_int(diag *d, const fe_arg *kv, int64_t *out) {
  int64_t v;
  if (!const_int(d, kv->e, &v)) return false;
  if (v < 1 || v > MAX_TRAIN_INT) {
    diag_error(d, kv->e->loc, "'%s' must be between 1 and %lld", kv->kw, (long long)MAX_TRAIN_INT);
    return false;
  }
  *out = v;
  return true;
}

static const char *word(const fe_expr *e) {
  return e->kind == FE_E_NAME || e->kind == FE_E_STR ? e->s : NULL;
}

static bool train_kv(diag *d, const fe_arg *kv, arena *a, ir_train *t) {
  const char *w = word(kv->e);
  if (!strcmp(kv->kw, "global_batch")) return train_int(d, kv, &t->global_batch);
  if (!strcmp(kv->kw, "seq")) return train_int(d, kv, &t->seq);
  if (!strcmp(kv->kw, "micro_batch")) return train_int(d, kv, &t->micro_batch);
  if (!strcmp(kv->kw, "precision")) {
    int dt = w ? ir_dtype_parse(w) : -1;
    if (dt != IR_F32 && dt != IR_F16 && dt != IR_BF16) {
      diag_error(d, kv->e->loc, "precision must be f32, f16 or bf16");
      return false;
    }
    t->precision = (ir_dtype)dt;
    return true;
  }
  if (!strcmp(kv->kw, "optimizer")) {
    if (w && !strcmp(w, "adamw")) return t->optimizer = IR_OPT_ADAMW, true;
    if (w && !strcmp(w, "sgd")) return t->optimizer = IR_OPT_SGD, true;
    diag_error(d, kv->e->loc, "optimizer must be adamw or sgd");
    return false;
  }
  if (!strcmp(kv->kw, "lengths")) {
    if (kv->e->kind != FE_E_STR || !*kv->e->s) {
      diag_error(d, kv->e->loc, "lengths must be a file name in quotes");
      return false;
    }
    const char *slash = d->file ? strrchr(d->file, '/') : NULL;
    if (kv->e->s[0] == '/' || !slash)
      t->lengths = arena_strdup(a, kv->e->s);
    else
      t->lengths = arena_printf(a, "%.*s/%s", (int)(slash - d->file), d->file, kv->e->s);
    return true;
  }
  diag_error(d, kv->loc,
             "unknown train field '%s' (expected global_batch, seq, micro_batch, precision, optimizer, lengths)",
             kv->kw);
  return false;
}

bool fe_lower_train(diag *d, const fe_section *s, arena *a, ir_train *out) {
  bool ok = true;
  out->set = true;
  for (const fe_arg *kv = s->kv; kv; kv = kv->next) {
    for (const fe_arg *p = s->kv; p != kv; p = p->next)
      if (!strcmp(p->kw, kv->kw)) {
        diag_error(d, kv->loc, "'%s' is already set (line %d)", kv->kw, p->loc.line);
        ok = false;
      }
    ok &= train_kv(d, kv, a, out);
  }
  if (ok && out->micro_batch && out->global_batch && out->global_batch % out->micro_batch) {
    diag_error(d, s->loc, "global_batch (%lld) is not a multiple of micro_batch (%lld)",
               (long long)out->global_batch, (long long)out->micro_batch);
    ok = false;
  }
  return ok;
}
