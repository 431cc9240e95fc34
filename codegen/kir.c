/* kir.c — the kernel IR: a builder, validation and the text dump.
 *
 * A row kernel iterates over `rows`; per row it makes `nstages` passes over the
 * `cols` columns. Nodes form a DAG of f32 values. A node is either per-element
 * (it depends on a column: a load of a [rows,cols] or [cols] buffer, the column
 * index, a random number) or per-row. Row reductions (rsum, rmax) turn an
 * element value into a row value. Staging is automatic: a node's `ready` is the
 * first pass in which it is known; a reduction over a value ready in pass t runs
 * in pass t and its result is ready in pass t + 1. Element values needed in a
 * later pass are recomputed there (loads are re-read), so any chain of
 * elementwise and row-reduction ops composes into one kernel. Builders
 * hash-cons: asking twice for the same node returns the first, which is how
 * fused cross-entropy forward and backward share their row max and sum. */
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>

const char *const cg_kop_name[CG_NKOPS] = {
#define X(n, s, a) s,
    CG_KOPS(X)
#undef X
};
const int cg_kop_nargs[CG_NKOPS] = {
#define X(n, s, a) a,
    CG_KOPS(X)
#undef X
};

cg_kernel *cg_k_new(arena *a, const char *name) {
  cg_kernel *k = ARENA_NEW(a, cg_kernel);
  k->name = arena_strdup(a, name);
  k->kind = CG_K_ROW;
  k->nstages = 1;
  k->ops = "";
  return k;
}

cg_kernel *cg_k_attn(arena *a, const char *name, cg_kkind kind, cg_attn at) {
  cg_kernel *k = cg_k_new(a, name);
  k->kind = (uint8_t)kind;
  k->attn = at;
  return k;
}

int cg_k_buf(cg_kernel *k, const char *name, ir_dtype dt, cg_shape sh, cg_role role) {
  if (k->nbuf >= CG_MAXBUF) {
    k->overflow = true;
    return -1;
  }
  cg_buf *b = &k->buf[k->nbuf];
  b->name = name;
  b->dtype = (uint8_t)dt;
  b->shape = (uint8_t)sh;
  b->role = (uint8_t)role;
  b->tensor = IR_NONE;
  return k->nbuf++;
}

/* add: hash-consed node insertion; computes level and readiness. */
static int add(cg_kernel *k, cg_node n) {
  if (k->overflow) return 0;
  for (int i = 0; i < k->nnode; i++) {
    const cg_node *m = &k->node[i];
    if (m->op == n.op && m->a == n.a && m->b == n.b && m->c == n.c && m->buf == n.buf &&
        (m->imm == n.imm || (m->imm != m->imm && n.imm != n.imm)))
      return i;
  }
  if (k->nnode >= CG_MAXNODES) {
    k->overflow = true;
    return 0;
  }
  int args[3] = {n.a, n.b, n.c};
  n.row = true;
  n.ready = 0;
  for (int i = 0; i < cg_kop_nargs[n.op]; i++) {
    if (args[i] < 0 || args[i] >= k->nnode) {
      k->overflow = true;
      return 0;
    }
    const cg_node *x = &k->node[args[i]];
    if (!x->row) n.row = false;
    if (x->ready > n.ready) n.ready = x->ready;
  }
  if (n.op == CG_LOAD && n.buf >= 0 && n.buf < CG_MAXBUF) n.row = k->buf[n.buf].shape == CG_SH_ROW1 || k->buf[n.buf].shape == CG_SH_ONE;
  if (n.op == CG_COLIDX || n.op == CG_RAND) n.row = false;
  if (n.op == CG_RSUM || n.op == CG_RMAX) {
    n.row = true;
    n.ready++;
    if (n.ready > k->nstages) k->nstages = n.ready;
  }
  k->node[k->nnode] = n;
  return k->nnode++;
}

static cg_node blank(cg_kop op) {
  cg_node n;
  memset(&n, 0, sizeof n);
  n.op = (uint8_t)op;
  n.a = n.b = n.c = -1;
  n.buf = -1;
  return n;
}

int cg_k_load(cg_kernel *k, int buf) {
  if (buf < 0 || buf >= k->nbuf) {
    k->overflow = true;
    return 0;
  }
  cg_node n = blank(CG_LOAD);
  n.buf = buf;
  return add(k, n);
}

int cg_k_const(cg_kernel *k, float v) {
  cg_node n = blank(CG_CONST);
  n.imm = v;
  return add(k, n);
}

int cg_k_leaf(cg_kernel *k, cg_kop op) { return add(k, blank(op)); }

int cg_k_scalar(cg_kernel *k, const char *name, float dflt) {
  for (int i = 0; i < k->nscalar; i++)
    if (!strcmp(k->scalar[i], name)) {
      cg_node n = blank(CG_SCALAR);
      n.buf = i;
      return add(k, n);
    }
  if (k->nscalar >= CG_MAXSCALAR) {
    k->overflow = true;
    return 0;
  }
  k->scalar[k->nscalar] = name;
  k->scalar_default[k->nscalar] = dflt;
  cg_node n = blank(CG_SCALAR);
  n.buf = k->nscalar++;
  return add(k, n);
}

int cg_k_op(cg_kernel *k, cg_kop op, int a, int b, int c) {
  cg_node n = blank(op);
  n.a = a;
  n.b = b;
  n.c = c;
  return add(k, n);
}

void cg_k_store(cg_kernel *k, int buf, int v) {
  if (k->overflow) return;
  if (k->nstore >= CG_MAXSTORE || buf < 0 || buf >= k->nbuf || v < 0 || v >= k->nnode) {
    k->overflow = true;
    return;
  }
  const cg_node *n = &k->node[v];
  int stage = n->row ? (n->ready > 0 ? n->ready - 1 : 0) : n->ready;
  k->store[k->nstore++] = (cg_store){buf, v, stage};
  if (stage + 1 > k->nstages) k->nstages = stage + 1;
}

int cg_k_reload(const cg_kernel *k, int node, int stage) {
  for (int i = 0; i < k->nstore; i++) {
    const cg_store *s = &k->store[i];
    if (s->node == node && s->stage < stage && k->buf[s->buf].role == CG_OUT && k->buf[s->buf].shape == CG_SH_ROWS)
      return s->buf;
  }
  return -1;
}

static bool fail(char *why, size_t n, const char *msg, int at) {
  snprintf(why, n, "%s (at %d)", msg, at);
  return false;
}

bool cg_k_check(const cg_kernel *k, char *why, size_t n) {
  if (k->overflow) return fail(why, n, "kernel too large for the kernel IR tables", k->nnode);
  if (k->kind != CG_K_ROW) return true;
  for (int i = 0; i < k->nnode; i++) {
    const cg_node *x = &k->node[i];
    int args[3] = {x->a, x->b, x->c};
    for (int j = 0; j < cg_kop_nargs[x->op]; j++)
      if (args[j] < 0 || args[j] >= i) return fail(why, n, "argument out of order", i);
    if (x->op == CG_LOAD && (x->buf < 0 || x->buf >= k->nbuf || k->buf[x->buf].role != CG_IN))
      return fail(why, n, "load from a non-input buffer", i);
    if (x->op == CG_SCALAR && (x->buf < 0 || x->buf >= k->nscalar))
      return fail(why, n, "scalar out of range", i);
    if ((x->op == CG_RSUM || x->op == CG_RMAX) && k->node[x->a].row)
      return fail(why, n, "reduction of a row value", i);
  }
  for (int i = 0; i < k->nstore; i++) {
    const cg_store *s = &k->store[i];
    const cg_buf *b = &k->buf[s->buf];
    if (b->role == CG_IN) return fail(why, n, "store to an input buffer", i);
    bool row = k->node[s->node].row;
    if (row != (b->shape == CG_SH_ROW1 || b->shape == CG_SH_ONE))
      return fail(why, n, "store shape does not match the value", i);
    if (b->shape == CG_SH_COLS) return fail(why, n, "store to a broadcast buffer", i);
  }
  return true;
}

static const char *shape_name[] = {"rows", "cols", "row1", "one"};
static const char *role_name[] = {"in", "out", "acc"};

/* dump: the text form; without names (the structure only) when !names. */
static void dump(const cg_kernel *k, FILE *out, bool names) {
  static const char *kinds[] = {"row", "attn_fwd", "attn_bwd"};
  fprintf(out, "kernel %s %s stages=%d", names ? k->name : "_", kinds[k->kind], k->nstages);
  if (names) fprintf(out, "  # %s", k->ops);
  fputc('\n', out);
  if (k->kind != CG_K_ROW) {
    fprintf(out, "  heads=%d kv_heads=%d head_dim=%d causal=%d scale=%.9g dtype=%s\n", k->attn.heads,
            k->attn.kv_heads, k->attn.head_dim, (int)k->attn.causal, (double)k->attn.scale,
            ir_dtype_name((ir_dtype)k->attn.dtype));
    return;
  }
  for (int i = 0; i < k->nbuf; i++)
    fprintf(out, "  buf %d %s %s %s %s\n", i, role_name[k->buf[i].role],
            ir_dtype_name((ir_dtype)k->buf[i].dtype), shape_name[k->buf[i].shape], names ? k->buf[i].name : "");
  for (int i = 0; i < k->nscalar; i++)
    fprintf(out, "  scalar %d %s = %.9g\n", i, names ? k->scalar[i] : "", (double)k->scalar_default[i]);
  for (int i = 0; i < k->nnode; i++) {
    const cg_node *x = &k->node[i];
    fprintf(out, "  %%%d %s.%d = %s", i, x->row ? "row" : "elem", x->ready, cg_kop_name[x->op]);
    if (x->op == CG_LOAD || x->op == CG_SCALAR) fprintf(out, " #%d", x->buf);
    if (x->op == CG_CONST) fprintf(out, " %.9g", (double)x->imm);
    int args[3] = {x->a, x->b, x->c};
    for (int j = 0; j < cg_kop_nargs[x->op]; j++) fprintf(out, " %%%d", args[j]);
    fputc('\n', out);
  }
  for (int i = 0; i < k->nstore; i++)
    fprintf(out, "  store.%d #%d %%%d\n", k->store[i].stage, k->store[i].buf, k->store[i].node);
}

void cg_k_dump(const cg_kernel *k, FILE *out) { dump(k, out, true); }

char *cg_k_text(const cg_kernel *k) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  dump(k, f, false);
  fclose(f);
  return buf;
}

/* flops per element of a node, for the manifest's estimate. */
static double node_flops(cg_kop op) {
  switch (op) {
  case CG_LOAD: case CG_SCALAR: case CG_CONST: case CG_COLIDX: case CG_ROWMOD:
  case CG_NROWS: case CG_NCOLS: return 0;
  case CG_EXP: case CG_LOG: case CG_TANH: case CG_ERF: case CG_SIGMOID: return 8;
  case CG_RAND: return 6;
  default: return 1;
  }
}

double cg_k_bytes(const cg_kernel *k) {
  if (k->kind != CG_K_ROW) {
    double t = (double)k->rows, d = k->attn.head_dim;
    double io = t * d * (2.0 * k->attn.heads + 2.0 * k->attn.kv_heads) * 2;
    return k->kind == CG_K_ATTN_FWD ? io : 2.5 * io;
  }
  double bytes = 0, r = (double)k->rows, c = (double)k->cols;
  for (int i = 0; i < k->nbuf; i++) {
    double n = k->buf[i].shape == CG_SH_ROWS ? r * c : k->buf[i].shape == CG_SH_COLS ? c
             : k->buf[i].shape == CG_SH_ROW1 ? r : 1;
    bytes += n * ir_dtype_size((ir_dtype)k->buf[i].dtype);
  }
  return bytes;
}

double cg_k_flops(const cg_kernel *k) {
  if (k->kind != CG_K_ROW) {
    /* rows = tokens, cols = mean sequence length */
    double f = 4.0 * (double)k->rows * (double)k->cols * k->attn.head_dim * k->attn.heads;
    if (k->attn.causal) f /= 2;
    return k->kind == CG_K_ATTN_FWD ? f : 2.5 * f;
  }
  double per = 0;
  for (int i = 0; i < k->nnode; i++)
    if (!k->node[i].row || k->node[i].op == CG_RSUM || k->node[i].op == CG_RMAX)
      per += node_flops((cg_kop)k->node[i].op);
  return per * (double)k->rows * (double)k->cols;
}
