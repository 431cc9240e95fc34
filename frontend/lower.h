/* lower.h — the state shared by the lowering passes (private to frontend/).
 *
 * Lowering walks the AST once, in source order, evaluating every expression to
 * an fe_val: a tensor of the graph being built, an integer dim (c*B^b*S^s),
 * a float, a bool, a string or a short list of dims. An error value (V_ERR)
 * means "already reported": every operation on it yields V_ERR silently, so
 * one mistake gives one message. Names live in two hash tables: the model's
 * (dims, inputs, params and values outside blocks) and the current layer's
 * (reset for every layer of a block). */
#ifndef SBPC_FE_LOWER_H
#define SBPC_FE_LOWER_H
#include "frontend/ast.h"
#include "frontend/frontend.h"

typedef enum { V_ERR, V_TENSOR, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST } fe_vkind;

typedef struct {
  fe_vkind k;
  ir_ref t;           /* V_TENSOR */
  ir_dim d;           /* V_INT */
  double f;           /* V_FLOAT */
  bool b;             /* V_BOOL */
  const char *s;      /* V_STR */
  int n;              /* V_LIST */
  ir_dim list[IR_MAXRANK];
} fe_val;

typedef enum { BK_DIM, BK_INPUT, BK_PARAM, BK_VALUE } fe_bkind;

typedef struct {
  const char *name;   /* NULL: empty slot */
  fe_bkind kind;
  fe_val v;
  srcloc loc;         /* where it was defined */
} fe_bind;

typedef struct {
  fe_bind *slot;
  int cap, n;
} fe_env;

typedef struct {
  diag *d;
  ir_graph *g;
  fe_env global, local, first; /* first: every name's first definition (prescan) */
  fe_env full;                 /* full tensor names (h.0.ln_1.weight) */
  bool in_block;
  int blk, layer;
  const char *bname;
  int op_lidx, t_lidx;
  const char *assigning;       /* name being assigned (for self-reference errors) */
  int64_t nparams;
  bool too_big;                /* FE_MAX_OPS reached (reported once) */
} fe_ctx;

/* env.c: string-keyed open-addressing tables (keys are not copied). */
fe_bind *fe_env_get(const fe_env *e, const char *name);
/* fe_env_put: the slot for name, made empty-valued when new (*fresh = true). */
fe_bind *fe_env_put(fe_env *e, const char *name, bool *fresh);
void fe_env_clear(fe_env *e);
void fe_env_free(fe_env *e);
/* fe_env_closest: the key nearest to name by edit distance (<= 2), or NULL. */
const char *fe_env_closest(const fe_env *e, const char *name);
/* fe_edit_distance: Levenshtein distance, capped at cap+1. */
int fe_edit_distance(const char *a, const char *b, int cap);

/* dims.c: integer dims with overflow checks; errors reported at loc. */
bool fe_dim_arith(fe_ctx *c, char op, ir_dim a, ir_dim b, ir_dim *out, srcloc loc);
/* fe_dim_const: v must be a constant integer (no B or S); what = context. */
bool fe_dim_const(fe_ctx *c, const fe_val *v, const char *what, srcloc loc, int64_t *out);
/* fe_shape: evaluate a shape list into dims (positive; B/S only if allow_sym). */
bool fe_shape(fe_ctx *c, const fe_arg *dims, bool allow_sym, ir_dim *shape, int *rank, srcloc loc);
/* fe_shape_ok: the tensor is not absurdly large (FE_MAX_NUMEL, B/S powers). */
bool fe_shape_ok(fe_ctx *c, const ir_dim *shape, int rank, srcloc loc);

/* lower_expr.c */
fe_val fe_eval(fe_ctx *c, const fe_expr *e);
/* fe_lookup: the value of a name, or V_ERR after reporting it undefined. */
fe_val fe_lookup(fe_ctx *c, const char *name, srcloc loc);
/* fe_tensor_new: append a tensor, tagged with the current block/layer. */
ir_ref fe_tensor_new(fe_ctx *c, ir_tensor *t);

/* lower.c */
bool fe_lower_model(fe_ctx *c, const fe_section *s);

/* cluster.c / train.c: lower a section into arena a. */
ir_cluster *fe_lower_cluster(diag *d, const fe_section *s, arena *a);
bool fe_lower_train(diag *d, const fe_section *s, arena *a, ir_train *out);

/* presets.c */
const char *fe_preset_text(const char *name, int64_t count, char *buf, size_t n);
#endif
