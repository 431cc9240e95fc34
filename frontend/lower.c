/* lower.c — a model section to an ir_graph.
 *
 * Items are lowered in source order. A prescan first records where every
 * name is first defined, so a use before its definition (and so any cyclic
 * definition) gets a precise message instead of "undefined". dims become
 * named constants; input/param declarations become IR_T_INPUT/IR_T_PARAM
 * tensors with their SBP hints (checked against the rank); assignments bind
 * values. `block NAME[L] { ... }` is expanded here: the body is lowered L
 * times with a fresh layer scope, params named NAME.<i>.<local>, and
 * block/layer/lidx set on every tensor and op, so all layers have the same
 * structure. An error in layer 0 stops the expansion (it would repeat L
 * times). The value bound to `loss` at the end becomes g->loss. */
#include "frontend/lower.h"
#include <string.h>

static void prescan(fe_ctx *c, const fe_item *it) {
  for (; it; it = it->next) {
    bool fresh;
    if (it->kind == FE_I_DIMS) {
      for (const fe_arg *a = it->defs; a; a = a->next) {
        fe_bind *b = fe_env_put(&c->first, a->kw, &fresh);
        if (fresh) b->loc = a->loc;
      }
    } else if (it->kind == FE_I_BLOCK) {
      prescan(c, it->body);
    } else {
      fe_bind *b = fe_env_put(&c->first, it->name, &fresh);
      if (fresh) b->loc = it->loc;
    }
  }
}

static fe_env *scope(fe_ctx *c) { return c->in_block ? &c->local : &c->global; }

/* Define a new name in the current scope; duplicates are errors. */
static fe_bind *define(fe_ctx *c, const char *name, fe_bkind kind, srcloc loc) {
  if (!strcmp(name, "B") || !strcmp(name, "S")) {
    diag_error(c->d, loc, "'%s' is reserved for the %s dim", name, name[0] == 'B' ? "batch" : "sequence");
    return NULL;
  }
  fe_bind *outer = c->in_block ? fe_env_get(&c->global, name) : NULL;
  bool fresh;
  fe_bind *b = fe_env_put(scope(c), name, &fresh);
  if (!fresh || (outer && outer->kind != BK_VALUE)) {
    fe_bind *prev = fresh ? outer : b;
    diag_error(c->d, loc, "'%s' is already defined (line %d)", name, prev->loc.line);
    return NULL;
  }
  b->kind = kind;
  b->loc = loc;
  b->v.k = V_ERR;
  return b;
}

static void lower_dims(fe_ctx *c, const fe_item *it) {
  if (c->in_block) {
    diag_error(c->d, it->loc, "dims must be defined outside blocks");
    return;
  }
  for (const fe_arg *a = it->defs; a; a = a->next) {
    fe_val v = fe_eval(c, a->e);
    int64_t x;
    bool ok = fe_dim_const(c, &v, "a dim", a->e->loc, &x);
    fe_bind *b = define(c, a->kw, BK_DIM, a->loc);
    if (!b || !ok) continue;
    b->v = v;
    ir_dim_add(c->g, a->kw, x);
  }
}

static bool check_hint(fe_ctx *c, const fe_sbp *h, int rank) {
  for (int i = 0; i < h->v.n; i++)
    if (h->v.a[i].kind == SBP_S && h->v.a[i].axis >= rank) {
      diag_error(c->d, h->loc, "S(%d) on a rank-%d tensor (axes are 0 to %d)", h->v.a[i].axis, rank, rank - 1);
      return false;
    }
  return true;
}

static void lower_decl(fe_ctx *c, const fe_item *it) {
  bool param = it->kind == FE_I_PARAM;
  if (!param && c->in_block) {
    diag_error(c->d, it->loc, "inputs must be declared outside blocks");
    return;
  }
  ir_dim shape[IR_MAXRANK];
  int rank = 0;
  bool ok = fe_shape(c, it->type.dims, !param, shape, &rank, it->type.loc);
  ok &= check_hint(c, &it->sbp, rank);
  fe_bind *b = define(c, it->name, param ? BK_PARAM : BK_INPUT, it->loc);
  if (!b || !ok) return;
  const char *full = c->in_block ? arena_printf(c->g->arena, "%s.%d.%s", c->bname, c->layer, it->name)
                                 : arena_strdup(c->g->arena, it->name);
  bool fresh;
  fe_bind *fb = fe_env_put(&c->full, full, &fresh);
  if (!fresh) {
    diag_error(c->d, it->loc, "'%s' is already defined (line %d)", full, fb->loc.line);
    return;
  }
  fb->loc = it->loc;
  ir_tensor t = ir_tensor_init(full, param ? IR_T_PARAM : IR_T_INPUT,
                               it->type.dtype >= 0 ? (ir_dtype)it->type.dtype : IR_F32);
  t.rank = (uint8_t)rank;
  if (rank) memcpy(t.shape, shape, sizeof(ir_dim) * (size_t)rank);
  t.loc = it->loc;
  t.has_hint = it->sbp.v.n > 0;
  t.hint = it->sbp.v;
  if (param) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= shape[i].c; /* bounded by fe_shape_ok */
    c->nparams += n;
    if (c->nparams > FE_MAX_PARAMS) {
      diag_error(c->d, it->loc, "the model has more than 2^50 parameters");
      return;
    }
  }
  b->v.k = V_TENSOR;
  b->v.t = fe_tensor_new(c, &t);
}

static void lower_assign(fe_ctx *c, const fe_item *it) {
  c->assigning = it->name;
  fe_val v = fe_eval(c, it->e);
  c->assigning = NULL;
  if (!strcmp(it->name, "B") || !strcmp(it->name, "S")) {
    define(c, it->name, BK_VALUE, it->loc);
    return;
  }
  fe_bind *b = c->in_block ? fe_env_get(&c->local, it->name) : NULL;
  if (!b) b = fe_env_get(&c->global, it->name);
  if (b && b->kind != BK_VALUE) {
    diag_error(c->d, it->loc, "cannot assign to %s '%s' (defined at line %d)",
               b->kind == BK_DIM ? "dim" : b->kind == BK_PARAM ? "parameter" : "input", it->name, b->loc.line);
    return;
  }
  if (!b) {
    bool fresh;
    b = fe_env_put(scope(c), it->name, &fresh);
    b->kind = BK_VALUE;
    b->loc = it->loc;
  }
  b->v = v;
}

static void lower_items(fe_ctx *c, const fe_item *it);

static void lower_block(fe_ctx *c, const fe_item *it) {
  fe_val v = fe_eval(c, it->e);
  int64_t n;
  if (!fe_dim_const(c, &v, "a block count", it->e->loc, &n)) return;
  if (c->in_block) {
    diag_error(c->d, it->loc, "blocks do not nest");
    return;
  }
  if (n < 1 || n > FE_MAX_LAYERS) {
    diag_error(c->d, it->e->loc, "block count is %lld; it must be between 1 and %d", (long long)n, FE_MAX_LAYERS);
    return;
  }
  int errs = c->d->errors;
  c->blk = ir_block_add(c->g, it->name, (int)n);
  c->bname = c->g->blk[c->blk].name;
  c->in_block = true;
  for (int l = 0; l < n && c->d->errors == errs; l++) {
    c->layer = l;
    c->op_lidx = c->t_lidx = 0;
    fe_env_clear(&c->local);
    lower_items(c, it->body);
    if (l == 0) {
      c->g->blk[c->blk].ops_per_layer = c->op_lidx;
      c->g->blk[c->blk].tensors_per_layer = c->t_lidx;
      if ((int64_t)c->t_lidx * n + c->g->nt > FE_MAX_OPS) {
        diag_error(c->d, it->loc, "block '%s' makes %lld tensors; a model may have at most %d", it->name,
                   (long long)c->t_lidx * n, FE_MAX_OPS);
        break;
      }
    }
  }
  c->in_block = false;
  fe_env_clear(&c->local);
}

static void lower_items(fe_ctx *c, const fe_item *it) {
  for (; it; it = it->next) {
    switch (it->kind) {
    case FE_I_DIMS: lower_dims(c, it); break;
    case FE_I_INPUT:
    case FE_I_PARAM: lower_decl(c, it); break;
    case FE_I_ASSIGN: lower_assign(c, it); break;
    case FE_I_BLOCK: lower_block(c, it); break;
    }
  }
}

bool fe_lower_model(fe_ctx *c, const fe_section *s) {
  int errs = c->d->errors;
  prescan(c, s->items);
  lower_items(c, s->items);
  fe_bind *loss = fe_env_get(&c->global, "loss");
  if (loss && loss->kind == BK_VALUE && loss->v.k == V_TENSOR) {
    c->g->loss = loss->v.t;
  } else if (loss && loss->v.k != V_ERR) {
    diag_error(c->d, loss->loc, "'loss' must be a tensor");
  }
  return c->d->errors == errs;
}
