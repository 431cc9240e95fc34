/* fuse.c — fusion groups and their lowering to the kernel IR.
 *
 * Grouping walks the ops in graph (topological) order. An op is fusable when
 * its kernel class is elementwise or row reduction and lower_op below knows
 * it; it joins the group of a producer of one of its inputs, or of a sibling
 * that reads the same input, when the two have the same iteration space
 * (rows x cols, compared symbolically), both are in the same pass (forward,
 * or backward with its recompute clones) and joining cannot form a cycle:
 * every input it takes from outside the group must be made before the
 * group's first op. All AdamW updates of the graph form one kernel over flat buffers (the
 * runtime packs parameters, gradients and moments contiguously, the
 * multi-tensor apply of apex/Megatron). Attention ops become attention
 * kernels; GEMMs are library calls; everything else stays unfused with the
 * reason recorded for the manifest.
 *
 * Lowering turns each op of a group into kernel IR nodes; a tensor made
 * inside the group is just a node, one read from outside is a buffer load,
 * and a tensor used outside the group (or a graph output) is stored. */
#include "codegen/cg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  ir_dim rows, cols;
  bool ok;
} geom;

static ir_dim dmul(ir_dim a, ir_dim b) {
  ir_dim r = {a.c * b.c, (uint8_t)(a.b + b.b), (uint8_t)(a.s + b.s)};
  return r;
}

static ir_dim numel_sym(const ir_tensor *t) {
  ir_dim n = ir_const(1);
  for (int i = 0; i < t->rank; i++) n = dmul(n, t->shape[i]);
  return n;
}

/* lead: product of all but the last axis. */
static ir_dim lead(const ir_tensor *t) {
  ir_dim n = ir_const(1);
  for (int i = 0; i + 1 < t->rank; i++) n = dmul(n, t->shape[i]);
  return n;
}

/* op_geom: the rows x cols space an op iterates over (its first input's). */
static geom op_geom(const ir_graph *g, const ir_op *o) {
  geom r = {ir_const(0), ir_const(0), false};
  if (o->nin < 1 || o->in[0] < 0 || o->in[0] >= g->nt) return r;
  const ir_tensor *t = &g->t[o->in[0]];
  if (t->rank < 1) return r;
  r.cols = t->shape[t->rank - 1];
  r.rows = lead(t);
  r.ok = r.cols.c > 0;
  return r;
}

static bool geom_eq(geom a, geom b) { return a.ok && b.ok && ir_dim_eq(a.rows, b.rows) && ir_dim_eq(a.cols, b.cols); }

/* classify: buffer shape of tensor t in space ge, or -1. */
static int classify(const ir_tensor *t, geom ge) {
  if (t->rank == 0) return CG_SH_ONE;
  ir_dim n = numel_sym(t), last = t->shape[t->rank - 1];
  if (ir_dim_eq(last, ge.cols) && ir_dim_eq(n, dmul(ge.rows, ge.cols))) return CG_SH_ROWS;
  if (ir_dim_eq(n, ge.cols) && ir_dim_eq(last, ge.cols)) return CG_SH_COLS;
  if (ir_dim_eq(n, ge.rows)) return CG_SH_ROW1;
  if (n.c == 1 && n.b == 0 && n.s == 0) return CG_SH_ONE;
  return -1;
}

static bool lowerable_kind(ir_opkind k) {
  switch (k) {
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_SCALE: case IR_OP_BIAS_ADD:
  case IR_OP_GELU: case IR_OP_GELU_GRAD: case IR_OP_SILU: case IR_OP_SILU_GRAD:
  case IR_OP_SWIGLU: case IR_OP_SWIGLU_GRAD: case IR_OP_TANH: case IR_OP_TANH_GRAD:
  case IR_OP_DROPOUT: case IR_OP_DROPOUT_GRAD: case IR_OP_LAYER_NORM: case IR_OP_RMS_NORM:
  case IR_OP_SOFTMAX: case IR_OP_SOFTMAX_GRAD:
  case IR_OP_CROSS_ENTROPY: case IR_OP_CROSS_ENTROPY_GRAD:
    return true;
  default:
    return false;
  }
}

/* fusable: a row/elementwise op whose operands all fit its space. */
static bool fusable(const ir_graph *g, const ir_op *o) {
  if (!lowerable_kind((ir_opkind)o->kind)) return false;
  geom ge = op_geom(g, o);
  if (!ge.ok) return false;
  for (int i = 0; i < o->nin; i++) {
    if (o->in[i] < 0 || o->in[i] >= g->nt) return false;
    int c = classify(&g->t[o->in[i]], ge);
    if (c < 0) return false;
    if (i == 0 && c != CG_SH_ROWS) return false;
  }
  for (int i = 0; i < o->nout; i++) {
    if (o->out[i] < 0 || o->out[i] >= g->nt) return false;
    int c = classify(&g->t[o->out[i]], ge);
    if (c != CG_SH_ROWS && !(o->kind == IR_OP_CROSS_ENTROPY && c == CG_SH_ONE)) return false;
  }
  return true;
}

/* ---- grouping ----------------------------------------------------------- */
typedef struct {
  int *gid;      /* per op: group index or -1 */
  int *first;    /* per group: first op */
  geom *ge;      /* per group */
  int *size;
  int n;
  int *cstart, *cons; /* consumers of tensor t: cons[cstart[t] .. cstart[t+1]) */
} groups;

/* consumers: the CSR index of the ops reading each tensor, in op order. */
static void consumers(const ir_graph *g, groups *gs, arena *a) {
  gs->cstart = ARENA_ARRAY(a, int, g->nt + 1);
  int total = 0;
  for (int i = 0; i < g->nop; i++)
    for (int j = 0; j < g->op[i].nin; j++)
      if (g->op[i].in[j] >= 0 && g->op[i].in[j] < g->nt) gs->cstart[g->op[i].in[j] + 1]++, total++;
  for (int t = 0; t < g->nt; t++) gs->cstart[t + 1] += gs->cstart[t];
  gs->cons = ARENA_ARRAY(a, int, total + 1);
  int *fill = xcalloc((size_t)g->nt + 1, sizeof(int));
  for (int i = 0; i < g->nop; i++)
    for (int j = 0; j < g->op[i].nin; j++) {
      ir_ref t = g->op[i].in[j];
      if (t >= 0 && t < g->nt) gs->cons[gs->cstart[t] + fill[t]++] = i;
    }
  free(fill);
}

static bool can_join(const ir_graph *g, const groups *gs, int grp, int op) {
  const ir_op *o = &g->op[op];
  /* one pass per kernel: a recompute clone reads its original's inputs, but
   * runs in backward; a group that mixed the passes would run as neither */
  if (gs->size[grp] >= 48 || g->op[gs->first[grp]].backward != o->backward) return false;
  for (int i = 0; i < o->nin; i++) {
    ir_ref p = g->t[o->in[i]].producer;
    if (p >= 0 && gs->gid[p] != grp && p > gs->first[grp]) return false;
  }
  return true;
}

static int pick_group(const ir_graph *g, const groups *gs, int op, geom ge) {
  const ir_op *o = &g->op[op];
  for (int i = 0; i < o->nin; i++) { /* vertical: a producer's group */
    ir_ref p = g->t[o->in[i]].producer;
    if (p >= 0 && gs->gid[p] >= 0 && geom_eq(gs->ge[gs->gid[p]], ge) && can_join(g, gs, gs->gid[p], op))
      return gs->gid[p];
  }
  for (int a = 0; a < o->nin; a++) { /* horizontal: a sibling reading the same tensor */
    ir_ref t = o->in[a];
    if (g->t[t].rank == 0) continue;
    for (int c = gs->cstart[t]; c < gs->cstart[t + 1] && gs->cons[c] < op; c++) {
      int j = gs->cons[c];
      if (gs->gid[j] >= 0 && geom_eq(gs->ge[gs->gid[j]], ge) && can_join(g, gs, gs->gid[j], op)) return gs->gid[j];
    }
  }
  return -1;
}

/* ---- lowering ------------------------------------------------------------ */
typedef struct {
  const ir_graph *g;
  cg_kernel *k;
  arena *a;
  ir_dtype act;
  int *node;     /* per tensor: node in this kernel, or -1 */
  geom ge;
} lower;

static ir_dtype buf_dtype(lower *L, const ir_tensor *t) {
  bool act = t->kind == IR_T_ACT || t->kind == IR_T_GRAD;
  if ((t->dtype == IR_F32 || t->dtype == IR_F16 || t->dtype == IR_BF16) && act && L->act != IR_F32) return L->act;
  return (ir_dtype)t->dtype;
}

static int val(lower *L, ir_ref t) {
  if (L->node[t] >= 0) return L->node[t];
  const ir_tensor *tt = &L->g->t[t];
  int b = cg_k_buf(L->k, tt->name, buf_dtype(L, tt), (cg_shape)classify(tt, L->ge), CG_IN);
  if (b < 0) return 0;
  L->k->buf[b].tensor = t;
  L->node[t] = cg_k_load(L->k, b);
  return L->node[t];
}

#define K1(op, a) cg_k1(k, op, a)
#define K2(op, a, b) cg_k2(k, op, a, b)
#define C(v) cg_k_const(k, (float)(v))

static int gelu(cg_kernel *k, int x, bool tanh_approx) {
  if (tanh_approx) { /* 0.5 x (1 + tanh u) == x * sigmoid(2u) */
    int u = K2(MUL, C(2 * 0.7978845608028654), K2(ADD, x, K2(MUL, C(0.044715), K2(MUL, x, K2(MUL, x, x)))));
    return K2(MUL, x, K1(SIGMOID, u));
  }
  return K2(MUL, K2(MUL, C(0.5), x), K1(ERFC, K2(MUL, x, C(-0.70710678118654752))));
}

static int gelu_grad(cg_kernel *k, int x, int dy, bool tanh_approx) {
  if (tanh_approx) {
    int x2 = K2(MUL, x, x);
    int u2 = K2(MUL, C(2 * 0.7978845608028654), K2(ADD, x, K2(MUL, C(0.044715), K2(MUL, x, x2))));
    int s = K1(SIGMOID, u2);
    int du2 = K2(MUL, C(2 * 0.7978845608028654), K2(ADD, C(1), K2(MUL, C(3 * 0.044715), x2)));
    int d = K2(ADD, s, K2(MUL, K2(MUL, x, du2), K2(MUL, s, K2(SUB, C(1), s))));
    return K2(MUL, dy, d);
  }
  int cdf = K2(MUL, C(0.5), K1(ERFC, K2(MUL, x, C(-0.70710678118654752))));
  int pdf = K2(MUL, C(0.3989422804014327), K1(EXP, K2(MUL, C(-0.5), K2(MUL, x, x))));
  return K2(MUL, dy, K2(ADD, cdf, K2(MUL, x, pdf)));
}

static int silu_d(cg_kernel *k, int x) { /* d/dx x*s(x) = s (1 + x (1 - s)) */
  int s = K1(SIGMOID, x);
  return K2(MUL, s, K2(ADD, C(1), K2(MUL, x, K2(SUB, C(1), s))));
}

static int dropout(lower *L, const ir_op *o, int x) {
  cg_kernel *k = L->k;
  double p = o->at.p;
  const char *nm = arena_printf(L->a, "seed:%s", L->g->t[o->out[0]].name);
  int seed = cg_k_scalar(k, nm, 0);
  int keep = K2(LE, C(p), K1(RAND, seed));
  return cg_k_op(k, CG_SELECT, keep, K2(MUL, x, C(p < 1 ? 1.0 / (1.0 - p) : 0)), C(0));
}

/* ce_parts: row max, sum of exp(x - max), and the exp node. */
static void ce_parts(cg_kernel *k, int x, int *m, int *s, int *e) {
  *m = K1(RMAX, x);
  *e = K1(EXP, K2(SUB, x, *m));
  *s = K1(RSUM, *e);
}

static int softmax(cg_kernel *k, const ir_op *o, int x) {
  double sc = o->at.scale != 0 ? o->at.scale : 1.0;
  int z = sc != 1.0 ? K2(MUL, x, C(sc)) : x;
  if (o->at.causal)
    z = cg_k_op(k, CG_SELECT, K2(LE, cg_k_leaf(k, CG_COLIDX), cg_k_leaf(k, CG_ROWMOD)), z, C(-INFINITY));
  int m, s, e;
  ce_parts(k, z, &m, &s, &e);
  return K2(DIV, e, s);
}

static int norm(cg_kernel *k, const ir_op *o, int x, int w, int b) {
  float eps = o->at.eps > 0 ? (float)o->at.eps : 1e-5f;
  int inv_n = K2(DIV, C(1), cg_k_leaf(k, CG_NCOLS));
  if (b < 0) { /* rms_norm */
    int ms = K2(MUL, K1(RSUM, K2(MUL, x, x)), inv_n);
    return K2(MUL, K2(MUL, x, K1(RSQRT, K2(ADD, ms, C(eps)))), w);
  }
  int mean = K2(MUL, K1(RSUM, x), inv_n);
  int d = K2(SUB, x, mean);
  int var = K2(MUL, K1(RSUM, K2(MUL, d, d)), inv_n);
  return K2(ADD, K2(MUL, K2(MUL, d, K1(RSQRT, K2(ADD, var, C(eps)))), w), b);
}

/* lower_op: nodes for op o's outputs into out[]; false if unknown. */
static bool lower_op(lower *L, const ir_op *o, int *out) {
  cg_kernel *k = L->k;
  int x[IR_MAXIN];
  for (int i = 0; i < o->nin; i++) x[i] = val(L, o->in[i]);
  switch ((ir_opkind)o->kind) {
  case IR_OP_ADD: case IR_OP_BIAS_ADD: out[0] = K2(ADD, x[0], x[1]); break;
  case IR_OP_SUB: out[0] = K2(SUB, x[0], x[1]); break;
  case IR_OP_MUL: out[0] = K2(MUL, x[0], x[1]); break;
  case IR_OP_SCALE: out[0] = K2(MUL, x[0], C(o->at.scale)); break;
  case IR_OP_GELU: out[0] = gelu(k, x[0], o->at.tanh); break;
  case IR_OP_GELU_GRAD: out[0] = gelu_grad(k, x[0], x[1], o->at.tanh); break;
  case IR_OP_SILU: out[0] = K2(MUL, x[0], K1(SIGMOID, x[0])); break;
  case IR_OP_SILU_GRAD: out[0] = K2(MUL, x[1], silu_d(k, x[0])); break;
  case IR_OP_SWIGLU: out[0] = K2(MUL, K2(MUL, x[0], K1(SIGMOID, x[0])), x[1]); break;
  case IR_OP_SWIGLU_GRAD:
    out[0] = K2(MUL, K2(MUL, x[2], x[1]), silu_d(k, x[0]));
    out[1] = K2(MUL, x[2], K2(MUL, x[0], K1(SIGMOID, x[0])));
    break;
  case IR_OP_TANH: out[0] = K1(TANH, x[0]); break;
  case IR_OP_TANH_GRAD: out[0] = K2(MUL, x[1], K2(SUB, C(1), K2(MUL, x[0], x[0]))); break; /* (y, dy) */
  case IR_OP_DROPOUT: case IR_OP_DROPOUT_GRAD: out[0] = dropout(L, o, x[0]); break;
  case IR_OP_LAYER_NORM: out[0] = norm(k, o, x[0], x[1], x[2]); break;
  case IR_OP_RMS_NORM: out[0] = norm(k, o, x[0], x[1], -1); break;
  case IR_OP_SOFTMAX: out[0] = softmax(k, o, x[0]); break;
  case IR_OP_SOFTMAX_GRAD: {
    double sc = o->at.scale != 0 ? o->at.scale : 1.0;
    int dot = K1(RSUM, K2(MUL, x[0], x[1]));
    out[0] = K2(MUL, K2(MUL, x[0], K2(SUB, x[1], dot)), C(sc));
    break;
  }
  case IR_OP_CROSS_ENTROPY: case IR_OP_CROSS_ENTROPY_GRAD: {
    int m, s, e;
    ce_parts(k, x[0], &m, &s, &e);
    int hit = K2(EQ, cg_k_leaf(k, CG_COLIDX), x[1]);
    /* at.scale: this rank's share of the tokens when tp splits the batch
     * (runtime/tp.c), so the loss is a partial sum; 0 means 1 */
    double sc = o->at.scale != 0 ? o->at.scale : 1.0;
    int inv_rows = K2(DIV, C(sc), cg_k_leaf(k, CG_NROWS));
    if (o->kind == IR_OP_CROSS_ENTROPY) {
      int xl = K1(RSUM, cg_k_op(k, CG_SELECT, hit, x[0], C(0)));
      out[0] = K2(MUL, K2(SUB, K2(ADD, m, K1(LOG, s)), xl), inv_rows);
    } else {
      out[0] = K2(MUL, K2(SUB, K2(DIV, e, s), hit), inv_rows);
    }
    break;
  }
  default: return false;
  }
  return true;
}

/* used_outside: tensor t is read by an op outside group grp, or is a graph
 * output (no consumer, the loss, or a parameter/state update). */
static bool used_outside(const ir_graph *g, const groups *gs, int grp, ir_ref t) {
  if (t == g->loss || gs->cstart[t] == gs->cstart[t + 1]) return true;
  for (int c = gs->cstart[t]; c < gs->cstart[t + 1]; c++)
    if (gs->gid[gs->cons[c]] != grp) return true;
  return false;
}

static const char *op_list(arena *a, const ir_graph *g, const ir_ref *ops, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(ir_ops[g->op[ops[i]].kind].name) + 1;
  char *s = arena_alloc(a, len);
  for (int i = 0; i < n; i++) {
    if (i) strcat(s, "+");
    strcat(s, ir_ops[g->op[ops[i]].kind].name);
  }
  return s;
}

/* lower_group: the kernel of group grp (ops[0..n)); node is a per-tensor
 * scratch map, all -1 on entry and on return. */
static cg_kernel *lower_group(const ir_graph *g, const groups *gs, int grp, const ir_ref *ops, int n, ir_dtype act,
                              arena *a, int id, int *node, geom ge) {
  lower L = {g, NULL, a, act, node, ge};
  const char *first = ir_ops[g->op[ops[0]].kind].name;
  L.k = cg_k_new(a, arena_printf(a, "k%d_%s", id, first));
  for (int i = 0; i < n; i++) {
    const ir_op *o = &g->op[ops[i]];
    int out[IR_MAXOUT] = {0};
    lower_op(&L, o, out);
    for (int j = 0; j < o->nout; j++) L.node[o->out[j]] = out[j];
  }
  for (int i = 0; i < n; i++) {
    const ir_op *o = &g->op[ops[i]];
    for (int j = 0; j < o->nout; j++) {
      ir_ref t = o->out[j];
      if (!used_outside(g, gs, grp, t)) continue;
      int sh = classify(&g->t[t], ge);
      cg_role role = sh == CG_SH_ONE ? CG_ACC : CG_OUT;
      int b = cg_k_buf(L.k, g->t[t].name, sh == CG_SH_ONE ? IR_F32 : buf_dtype(&L, &g->t[t]), (cg_shape)sh, role);
      if (b < 0) continue;
      L.k->buf[b].tensor = t;
      cg_k_store(L.k, b, L.node[t]);
    }
  }
  for (int i = 0; i < n; i++) { /* reset the scratch map */
    const ir_op *o = &g->op[ops[i]];
    for (int j = 0; j < o->nin; j++) node[o->in[j]] = -1;
    for (int j = 0; j < o->nout; j++) node[o->out[j]] = -1;
  }
  L.k->ops = op_list(a, g, ops, n);
  int64_t bb = g->bind_b ? g->bind_b : 1, ss = g->bind_s ? g->bind_s : 1;
  L.k->rows = ir_dim_eval(ge.rows, bb, ss);
  L.k->cols = ir_dim_eval(ge.cols, bb, ss);
  return L.k;
}

/* adamw_kernel: one update over flat packed buffers (rows = 1). */
static cg_kernel *adamw_kernel(const ir_graph *g, const ir_op *o, arena *a, int id, int64_t total) {
  cg_kernel *k = cg_k_new(a, arena_printf(a, "k%d_adamw", id));
  int p = cg_k_load(k, cg_k_buf(k, "params", (ir_dtype)g->t[o->in[0]].dtype, CG_SH_ROWS, CG_IN));
  int gr = cg_k_load(k, cg_k_buf(k, "grads", (ir_dtype)g->t[o->in[1]].dtype, CG_SH_ROWS, CG_IN));
  int m = cg_k_load(k, cg_k_buf(k, "exp_avg", IR_F32, CG_SH_ROWS, CG_IN));
  int v = cg_k_load(k, cg_k_buf(k, "exp_avg_sq", IR_F32, CG_SH_ROWS, CG_IN));
  int lr = cg_k_scalar(k, "lr", (float)(o->at.lr ? o->at.lr : 1e-3));
  int b1 = cg_k_scalar(k, "beta1", (float)(o->at.beta1 ? o->at.beta1 : 0.9));
  int b2 = cg_k_scalar(k, "beta2", (float)(o->at.beta2 ? o->at.beta2 : 0.999));
  int eps = cg_k_scalar(k, "eps", (float)(o->at.eps ? o->at.eps : 1e-8));
  int wd = cg_k_scalar(k, "weight_decay", (float)o->at.weight_decay);
  int bc1 = cg_k_scalar(k, "bias_correction1", 1), bc2 = cg_k_scalar(k, "bias_correction2", 1);
  int m2 = K2(ADD, K2(MUL, b1, m), K2(MUL, K2(SUB, C(1), b1), gr));
  int v2 = K2(ADD, K2(MUL, b2, v), K2(MUL, K2(SUB, C(1), b2), K2(MUL, gr, gr)));
  int upd = K2(DIV, K2(DIV, m2, bc1), K2(ADD, K1(SQRT, K2(DIV, v2, bc2)), eps));
  int p2 = K2(SUB, p, K2(MUL, lr, K2(ADD, upd, K2(MUL, wd, p))));
  cg_k_store(k, cg_k_buf(k, "params_out", (ir_dtype)g->t[o->in[0]].dtype, CG_SH_ROWS, CG_OUT), p2);
  cg_k_store(k, cg_k_buf(k, "exp_avg_out", IR_F32, CG_SH_ROWS, CG_OUT), m2);
  cg_k_store(k, cg_k_buf(k, "exp_avg_sq_out", IR_F32, CG_SH_ROWS, CG_OUT), v2);
  k->rows = 1;
  k->cols = total;
  return k;
}

/* attn_kernel: attention or attention_grad as a varlen attention kernel. */
static cg_kernel *attn_kernel(const ir_graph *g, const ir_op *o, arena *a, int id, ir_dtype act) {
  cg_attn at = {0};
  const ir_tensor *q = &g->t[o->in[0]];
  at.dtype = act != IR_F32 ? act : (ir_dtype)q->dtype;
  int64_t last = q->rank ? ir_dim_eval(q->shape[q->rank - 1], 1, 1) : 0;
  at.heads = (int)(o->at.heads > 0 ? o->at.heads : 1);
  at.kv_heads = (int)(o->at.kv_heads > 0 ? o->at.kv_heads : at.heads);
  bool fused = o->kind == IR_OP_ATTENTION ? o->nin == 1 : o->nin <= 3;
  at.head_dim = (int)(fused ? last / (at.heads + 2 * at.kv_heads) : last / at.heads);
  at.causal = o->at.causal;
  at.scale = (float)(o->at.scale != 0 ? o->at.scale : 1.0 / sqrt(at.head_dim > 0 ? at.head_dim : 1));
  bool fwd = o->kind == IR_OP_ATTENTION;
  cg_kernel *k = cg_k_attn(a, arena_printf(a, "k%d_%s", id, fwd ? "attn_fwd" : "attn_bwd"),
                           fwd ? CG_K_ATTN_FWD : CG_K_ATTN_BWD, at);
  k->ops = ir_ops[o->kind].name;
  int64_t bb = g->bind_b ? g->bind_b : 1, ss = g->bind_s ? g->bind_s : 1;
  k->rows = bb * ss;
  k->cols = ss;
  return k;
}

static void add_group(cg_fusion *f, arena *a, int cap, cg_kernel *k, const ir_ref *ops, int n, const char *why,
                      bool lib) {
  if (f->n >= cap) return;
  cg_group *gr = &f->g[f->n];
  gr->id = f->n++;
  gr->k = k;
  gr->ops = ARENA_ARRAY(a, ir_ref, n > 0 ? n : 1);
  memcpy(gr->ops, ops, sizeof(ir_ref) * (size_t)n);
  gr->nops = n;
  gr->why = why;
  gr->library = lib;
  if (k) f->nkernels++;
  else if (lib) f->nlibrary++;
  else f->nunfused++;
}

static const char *unfused_reason(const ir_graph *g, const ir_op *o) {
  switch (ir_ops[o->kind].kclass) {
  case KC_GEMM: return "library call (cuBLAS on GPU, OpenBLAS on CPU)";
  case KC_COMM: return "communication (NCCL / MPI)";
  case KC_VIEW: return "view (no data movement)";
  case KC_GATHER: return "gather/scatter (runtime)";
  case KC_SOURCE: return "source (runtime)";
  default: break;
  }
  (void)g;
  if (o->kind == IR_OP_RING_ATTENTION || o->kind == IR_OP_RING_ATTENTION_GRAD)
    return "ring attention step (runtime: one kv block, the log-sum-exp merge)";
  if (o->kind == IR_OP_SUM_ROWS || o->kind == IR_OP_LAYER_NORM_GRAD || o->kind == IR_OP_RMS_NORM_GRAD)
    return "column reduction not expressible in the row kernel IR (runtime)";
  return "cannot lower to the kernel IR (runtime)";
}

/* split_group: a group too large for the kernel IR tables becomes one kernel
 * per op (each op gets a group id of its own, -2 - op). */
static void split_group(cg_fusion *f, const ir_graph *g, groups *gs, const ir_ref *ops, int n, ir_dtype act, arena *a,
                        int cap, int *node, geom ge) {
  for (int x = 0; x < n; x++) gs->gid[ops[x]] = -2 - ops[x];
  for (int x = 0; x < n; x++) {
    cg_kernel *k = lower_group(g, gs, -2 - ops[x], &ops[x], 1, act, a, f->nkernels, node, ge);
    add_group(f, a, cap, k, &ops[x], 1, NULL, false);
  }
}

cg_fusion *cg_fuse(const ir_graph *g, ir_dtype act, arena *a) { return cg_fuse_ex(g, act, false, a); }

cg_fusion *cg_fuse_ex(const ir_graph *g, ir_dtype act, bool single, arena *a) {
  cg_fusion *f = ARENA_NEW(a, cg_fusion);
  int cap = g->nop + 2;
  f->g = ARENA_ARRAY(a, cg_group, cap);
  groups gs = {ARENA_ARRAY(a, int, g->nop + 1), ARENA_ARRAY(a, int, g->nop + 1), ARENA_ARRAY(a, geom, g->nop + 1),
               ARENA_ARRAY(a, int, g->nop + 1), 0, NULL, NULL};
  consumers(g, &gs, a);
  int *next = ARENA_ARRAY(a, int, g->nop + 1), *last = ARENA_ARRAY(a, int, g->nop + 1);
  for (int i = 0; i < g->nop; i++) {
    gs.gid[i] = -1;
    if (!fusable(g, &g->op[i])) continue;
    geom ge = op_geom(g, &g->op[i]);
    int grp = single ? -1 : pick_group(g, &gs, i, ge);
    if (grp < 0) {
      grp = gs.n++;
      gs.first[grp] = i;
      gs.ge[grp] = ge;
    } else {
      next[last[grp]] = i;
    }
    next[i] = -1;
    last[grp] = i;
    gs.gid[i] = grp;
    gs.size[grp]++;
  }
  int *node = xmalloc(sizeof(int) * ((size_t)g->nt + 1));
  for (int t = 0; t <= g->nt; t++) node[t] = -1;
  ir_ref *ops = ARENA_ARRAY(a, ir_ref, g->nop + 1);
  bool *done = ARENA_ARRAY(a, bool, gs.n + 1);
  ir_ref *adam = ARENA_ARRAY(a, ir_ref, g->nop + 1);
  int nadam = 0;
  int64_t adam_total = 0;
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->kind == IR_OP_ADAMW) {
      adam[nadam++] = i;
      adam_total += ir_numel(g, o->in[0]);
      continue;
    }
    int grp = gs.gid[i];
    if (grp <= -2) continue; /* made by split_group */
    if (grp >= 0) {
      if (done[grp]) continue;
      done[grp] = true;
      int n = 0;
      for (int j = i; j >= 0; j = next[j]) ops[n++] = j;
      cg_kernel *k = lower_group(g, &gs, grp, ops, n, act, a, f->nkernels, node, gs.ge[grp]);
      if (k->overflow && n > 1) split_group(f, g, &gs, ops, n, act, a, cap, node, gs.ge[grp]);
      else add_group(f, a, cap, k, ops, n, NULL, false);
    } else if (o->kind == IR_OP_ATTENTION || o->kind == IR_OP_ATTENTION_GRAD) {
      ops[0] = i;
      add_group(f, a, cap, attn_kernel(g, o, a, f->nkernels, act), ops, 1, NULL, false);
    } else {
      ops[0] = i;
      bool lib = ir_ops[o->kind].kclass == KC_GEMM;
      add_group(f, a, cap, NULL, ops, 1, unfused_reason(g, o), lib);
    }
  }
  if (nadam) {
    cg_kernel *k = adamw_kernel(g, &g->op[adam[0]], a, f->nkernels, adam_total);
    k->ops = arena_printf(a, "adamw x%d (all parameters, packed)", nadam);
    add_group(f, a, cap, k, adam, nadam, NULL, false);
  }
  free(node);
  return f;
}
