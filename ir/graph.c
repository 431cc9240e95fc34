/* graph.c — building graphs, and the small value types (dtypes, dims, SBP).
 *
 * Tables grow by doubling with xrealloc; strings live in the graph's arena.
 * Adding an op records it as the producer of its outputs. Nothing here checks
 * shapes: that is shape.c's job, and verify.c checks the invariants. */
#include "ir/ir.h"
#include <stdlib.h>
#include <string.h>

static const char *dtype_names[IR_NDTYPE] = {"f32", "f16", "bf16", "i32", "i64"};
static const int dtype_sizes[IR_NDTYPE] = {4, 2, 2, 4, 8};

const char *ir_dtype_name(ir_dtype t) { return (unsigned)t < IR_NDTYPE ? dtype_names[t] : "?"; }
int ir_dtype_size(ir_dtype t) { return (unsigned)t < IR_NDTYPE ? dtype_sizes[t] : 0; }

int ir_dtype_parse(const char *s) {
  for (int i = 0; i < IR_NDTYPE; i++)
    if (!strcmp(s, dtype_names[i])) return i;
  return -1;
}

/* mul_sat: x * y, saturating at INT64_MAX (sizes are never negative). */
static int64_t mul_sat(int64_t x, int64_t y) {
  int64_t r;
  return __builtin_mul_overflow(x, y, &r) ? INT64_MAX : r;
}

int64_t ir_dim_eval(ir_dim d, int64_t b, int64_t s) {
  int64_t v = d.c;
  for (int i = 0; i < d.b; i++) v = mul_sat(v, b);
  for (int i = 0; i < d.s; i++) v = mul_sat(v, s);
  return v;
}

bool ir_dim_eq(ir_dim x, ir_dim y) { return x.c == y.c && x.b == y.b && x.s == y.s; }

const char *ir_dim_str(ir_dim d, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  if (d.c != 1 || (!d.b && !d.s)) k += (size_t)snprintf(buf + k, n - k, "%lld", (long long)d.c);
  for (int i = 0; i < d.b && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%sB", k ? "*" : "");
  for (int i = 0; i < d.s && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%sS", k ? "*" : "");
  return buf;
}

const char *ir_sbp_str(ir_sbp s, char *buf, size_t n) {
  switch (s.kind) {
  case SBP_S: snprintf(buf, n, "S(%d)", s.axis); break;
  case SBP_B: snprintf(buf, n, "B"); break;
  case SBP_PSUM: snprintf(buf, n, "P(sum)"); break;
  case SBP_PMAX: snprintf(buf, n, "P(max)"); break;
  default: snprintf(buf, n, "?"); break;
  }
  return buf;
}

const char *ir_ndsbp_str(const ir_ndsbp *s, char *buf, size_t n) {
  char one[16];
  if (s->n == 0) return snprintf(buf, n, "-"), buf;
  if (s->n == 1) return ir_sbp_str(s->a[0], buf, n);
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < s->n && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", ir_sbp_str(s->a[i], one, sizeof one));
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

bool ir_sbp_parse(const char *s, ir_sbp *out) {
  int ax, n = 0;
  out->axis = 0;
  if (!strcmp(s, "B")) return out->kind = SBP_B, true;
  if (!strcmp(s, "P(sum)") || !strcmp(s, "P")) return out->kind = SBP_PSUM, true;
  if (!strcmp(s, "P(max)")) return out->kind = SBP_PMAX, true;
  if (sscanf(s, "S(%d)%n", &ax, &n) == 1 && s[n] == 0 && ax >= 0 && ax < IR_MAXRANK && s[2] >= '0' && s[2] <= '9')
    return out->kind = SBP_S, out->axis = (int8_t)ax, true;
  return false;
}

bool ir_sbp_eq(ir_sbp x, ir_sbp y) {
  return x.kind == y.kind && (x.kind != SBP_S || x.axis == y.axis);
}

bool ir_ndsbp_eq(const ir_ndsbp *x, const ir_ndsbp *y) {
  if (x->n != y->n) return false;
  for (int i = 0; i < x->n; i++)
    if (!ir_sbp_eq(x->a[i], y->a[i])) return false;
  return true;
}

ir_graph *ir_graph_new(const char *name) {
  ir_graph *g = xcalloc(1, sizeof *g);
  g->arena = arena_new();
  g->name = arena_strdup(g->arena, name ? name : "model");
  g->loss = IR_NONE;
  return g;
}

void ir_graph_free(ir_graph *g) {
  if (!g) return;
  free(g->t);
  free(g->op);
  free(g->blk);
  free(g->dim);
  arena_free(g->arena);
  free(g);
}

#define GROW(arr, n, cap)                                        \
  do {                                                           \
    if ((n) == (cap)) {                                          \
      (cap) = (cap) ? (cap) * 2 : 64;                            \
      (arr) = xrealloc((arr), sizeof *(arr) * (size_t)(cap));    \
    }                                                            \
  } while (0)

ir_ref ir_tensor_add(ir_graph *g, const ir_tensor *t) {
  GROW(g->t, g->nt, g->capt);
  g->t[g->nt] = *t;
  return g->nt++;
}

ir_ref ir_op_add(ir_graph *g, const ir_op *op) {
  GROW(g->op, g->nop, g->capop);
  g->op[g->nop] = *op;
  for (int i = 0; i < op->nout; i++)
    if (op->out[i] >= 0 && op->out[i] < g->nt) g->t[op->out[i]].producer = g->nop;
  return g->nop++;
}

int ir_block_add(ir_graph *g, const char *name, int count) {
  GROW(g->blk, g->nblk, g->capblk);
  ir_block *b = &g->blk[g->nblk];
  memset(b, 0, sizeof *b);
  b->name = arena_strdup(g->arena, name);
  b->count = count;
  return g->nblk++;
}

void ir_dim_add(ir_graph *g, const char *name, int64_t value) {
  GROW(g->dim, g->ndim, g->capdim);
  g->dim[g->ndim].name = arena_strdup(g->arena, name);
  g->dim[g->ndim].value = value;
  g->ndim++;
}

ir_op ir_op_init(ir_opkind k) {
  ir_op o;
  memset(&o, 0, sizeof o);
  o.kind = (uint16_t)k;
  o.sig = -1;
  o.block = o.layer = o.lidx = -1;
  for (int i = 0; i < IR_MAXIN; i++) o.in[i] = IR_NONE;
  for (int i = 0; i < IR_MAXOUT; i++) o.out[i] = IR_NONE;
  o.at.axis = -1;
  return o;
}

ir_tensor ir_tensor_init(const char *name, ir_tkind kind, ir_dtype dt) {
  ir_tensor t;
  memset(&t, 0, sizeof t);
  t.name = name;
  t.kind = (uint8_t)kind;
  t.dtype = (uint8_t)dt;
  t.producer = t.grad_of = IR_NONE;
  t.block = t.layer = t.lidx = -1;
  return t;
}

int64_t ir_numel(const ir_graph *g, ir_ref r) {
  const ir_tensor *t = &g->t[r];
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n = mul_sat(n, ir_dim_eval(t->shape[i], g->bind_b, g->bind_s));
  return n;
}

int64_t ir_param_count(const ir_graph *g) {
  int64_t n = 0;
  for (int i = 0; i < g->nt; i++)
    if (g->t[i].kind == IR_T_PARAM && __builtin_add_overflow(n, ir_numel(g, i), &n)) return INT64_MAX;
  return n;
}

int ir_qkv_path(const ir_graph *g, const ir_op *a, ir_ref *out, int max) {
  ir_ref stack[16];
  int n = 0, k = 0;
  if (a->kind != IR_OP_ATTENTION || a->nin != 1) return 0;
  stack[n++] = a->in[0];
  while (n > 0 && k < max) {
    ir_ref t = stack[--n];
    out[k++] = t;
    const ir_op *o = g->t[t].producer >= 0 ? &g->op[g->t[t].producer] : NULL;
    if (o && o->kind == IR_OP_MATMUL && n < 16) stack[n++] = o->in[1];
    if (o && (o->kind == IR_OP_BIAS_ADD || o->kind == IR_OP_ADD) && n < 15) stack[n++] = o->in[0], stack[n++] = o->in[1];
  }
  return k;
}
