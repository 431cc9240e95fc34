/* ast.c — constructors for the syntax tree (ast.h).
 *
 * Nodes come zeroed from the parser's arena, so a constructor only fills what
 * it is given. Expression depth is tracked here rather than in the lowering
 * passes: a node deeper than FE_MAX_DEPTH is replaced by an error node, so
 * every later recursive walk is bounded (a million `+`s in a row cannot blow
 * the stack of the lowering). SBP spellings are checked here, at the
 * annotation, since they need no other context. */
#include "frontend/ast.h"
#include "frontend/frontend.h"
#include <string.h>

fe_expr *fe_expr_new(fe_parser *P, fe_ekind k, srcloc loc) {
  fe_expr *e = ARENA_NEW(P->a, fe_expr);
  e->kind = k;
  e->loc = loc;
  e->depth = 1;
  return e;
}

/* An error node that swallows the rest of the expression without new errors. */
static fe_expr *too_deep(fe_parser *P, fe_expr *e, srcloc loc) {
  if (e && e->kind == FE_E_ERR) return e;
  diag_error(P->d, loc, "expression is nested too deeply (more than %d levels)", FE_MAX_DEPTH);
  fe_expr *x = fe_expr_new(P, FE_E_ERR, loc);
  x->depth = FE_MAX_DEPTH + 1;
  return x;
}

static int depth_of(const fe_expr *e) { return e ? e->depth : 0; }

fe_expr *fe_expr_bin(fe_parser *P, char op, fe_expr *l, fe_expr *r, srcloc loc) {
  if (l && l->kind == FE_E_ERR && l->depth > FE_MAX_DEPTH) return l;
  if (r && r->kind == FE_E_ERR && r->depth > FE_MAX_DEPTH) return r;
  int dl = depth_of(l), dr = depth_of(r);
  int dep = 1 + (dl > dr ? dl : dr);
  if (dep > FE_MAX_DEPTH) return too_deep(P, NULL, loc);
  fe_expr *e = fe_expr_new(P, r ? FE_E_BIN : FE_E_NEG, loc);
  e->op = op;
  e->l = l;
  e->r = r;
  e->depth = dep;
  return e;
}

static int args_depth(const fe_arg *a) {
  int d = 0;
  for (; a; a = a->next) {
    if (a->e && a->e->kind == FE_E_ERR && a->e->depth > FE_MAX_DEPTH) return FE_MAX_DEPTH + 1;
    if (depth_of(a->e) > d) d = depth_of(a->e);
  }
  return d;
}

static fe_expr *with_args(fe_parser *P, fe_ekind k, const char *name, fe_arg *args, srcloc loc) {
  int dep = 1 + args_depth(args);
  if (dep > FE_MAX_DEPTH) {
    for (fe_arg *a = args; a; a = a->next)
      if (a->e && a->e->kind == FE_E_ERR && a->e->depth > FE_MAX_DEPTH) return a->e;
    return too_deep(P, NULL, loc);
  }
  fe_expr *e = fe_expr_new(P, k, loc);
  e->s = name;
  e->args = args;
  e->depth = dep;
  return e;
}

fe_expr *fe_expr_call(fe_parser *P, const char *name, fe_arg *args, srcloc loc) {
  return with_args(P, FE_E_CALL, name, args, loc);
}

fe_expr *fe_expr_list(fe_parser *P, fe_arg *elems, srcloc loc) {
  return with_args(P, FE_E_LIST, NULL, elems, loc);
}

fe_arg *fe_arg_new(fe_parser *P, const char *kw, fe_expr *e, srcloc loc) {
  fe_arg *a = ARENA_NEW(P->a, fe_arg);
  a->kw = kw;
  a->e = e;
  a->loc = loc;
  return a;
}

fe_item *fe_item_new(fe_parser *P, fe_ikind k, const char *name, srcloc loc) {
  fe_item *it = ARENA_NEW(P->a, fe_item);
  it->kind = k;
  it->name = name;
  it->loc = loc;
  it->type.dtype = -1;
  return it;
}

fe_nitem *fe_nitem_new(fe_parser *P, fe_nkind k, const char *name, srcloc loc) {
  fe_nitem *n = ARENA_NEW(P->a, fe_nitem);
  n->kind = k;
  n->name = name;
  n->loc = loc;
  return n;
}

fe_citem *fe_citem_new(fe_parser *P, fe_ckind k, const char *name, fe_nitem *list, srcloc loc) {
  fe_citem *c = ARENA_NEW(P->a, fe_citem);
  c->kind = k;
  c->name = name;
  c->list = list;
  c->loc = loc;
  return c;
}

fe_section *fe_section_new(fe_parser *P, fe_skind k, const char *name, srcloc loc) {
  fe_section *s = ARENA_NEW(P->a, fe_section);
  s->kind = k;
  s->name = name;
  s->loc = loc;
  return s;
}

bool fe_sbp1(fe_parser *P, const char *word, const char *word2, int64_t axis, bool has_axis,
             srcloc loc, ir_sbp *out) {
  out->axis = 0;
  if (!strcmp(word, "B") && !word2 && !has_axis) {
    out->kind = SBP_B;
    return true;
  }
  if (!strcmp(word, "S") && has_axis) {
    if (axis < 0 || axis >= IR_MAXRANK) {
      diag_error(P->d, loc, "S(%lld): axis out of range (a tensor has at most %d axes)", (long long)axis,
                 IR_MAXRANK);
      return false;
    }
    out->kind = SBP_S;
    out->axis = (int8_t)axis;
    return true;
  }
  if (!strcmp(word, "P") && word2 && (!strcmp(word2, "sum") || !strcmp(word2, "max"))) {
    out->kind = !strcmp(word2, "sum") ? SBP_PSUM : SBP_PMAX;
    return true;
  }
  diag_error(P->d, loc, "bad SBP annotation: expected B, S(axis), P(sum) or P(max)");
  return false;
}

#define REV(T, name)                    \
  T *name(T *l) {                       \
    T *r = NULL;                        \
    while (l) {                         \
      T *n = l->next;                   \
      l->next = r;                      \
      r = l;                            \
      l = n;                            \
    }                                   \
    return r;                           \
  }
REV(fe_arg, fe_args_rev)
REV(fe_item, fe_items_rev)
REV(fe_nitem, fe_nitems_rev)
REV(fe_citem, fe_citems_rev)
REV(fe_section, fe_sections_rev)
