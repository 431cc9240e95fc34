/* json.c — the plan JSON (docs/plan-format.md, version 1), written with cJSON.
 *
 * Everything comes from the plan_result of plan_search: the best layout
 * (top[0]), its per-op SBP and boxings, the model and cluster it was made
 * for, and the search statistics. Device lists of stages are computed from
 * the mesh order the same way search.c numbers ranks (row-major over
 * axis_order). The field order is fixed so that plans diff well. */
#include "planner/plan_int.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *axis_names[4] = {"pp", "dp", "sp", "tp"};

static int axsize(const plan_layout *l, int a) {
  return a == 0 ? l->pp : a == 1 ? l->dp : a == 2 ? l->sp : l->tp;
}

/* ---- model dimensions read off the graph -------------------------------------- */
typedef struct { int64_t hidden, heads, ffn, vocab, seq; } mdims;

/* cdim: dim k of tensor t (negative k from the end) when constant, else 0 */
static int64_t cdim(const ir_graph *g, ir_ref t, int k) {
  const ir_tensor *x = &g->t[t];
  if (k < 0) k += x->rank;
  if (k < 0 || k >= x->rank || x->shape[k].b || x->shape[k].s) return 0;
  return x->shape[k].c;
}

/* ffn: X with parameters [H, X] and [X, H] (X != H) in layer 0 of block 0 */
static int64_t find_ffn(const ir_graph *g, int64_t h) {
  for (int i = 0; i < g->nt; i++) {
    const ir_tensor *a = &g->t[i];
    if (a->kind != IR_T_PARAM || a->block != 0 || a->layer != 0 || a->rank != 2 || cdim(g, i, 0) != h) continue;
    int64_t x = cdim(g, i, 1);
    if (x <= 0 || x == h) continue;
    for (int j = 0; j < g->nt; j++) {
      const ir_tensor *b = &g->t[j];
      if (b->kind == IR_T_PARAM && b->block == 0 && b->layer == 0 && b->rank == 2 && cdim(g, j, 0) == x &&
          cdim(g, j, 1) == h)
        return x;
    }
  }
  return 0;
}

/* model_dims: heads and hidden from the first attention (its output's last
 * dim), vocabulary from the logits of cross-entropy (else the largest
 * embedding table), positions from the table a positions op indexes, the MLP
 * width from find_ffn; 0 where the graph does not say */
static mdims model_dims(const ir_graph *g) {
  mdims d = {0, 0, 0, 0, 0};
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->backward) continue;
    if (o->kind == IR_OP_ATTENTION && !d.heads) d.heads = o->at.heads, d.hidden = cdim(g, o->out[0], -1);
    if (o->kind == IR_OP_CROSS_ENTROPY && !d.vocab) d.vocab = cdim(g, o->in[0], -1);
    if (o->kind == IR_OP_EMBEDDING) {
      ir_ref p = g->t[o->in[0]].producer;
      int64_t rows = cdim(g, o->in[1], 0);
      if (p >= 0 && g->op[p].kind == IR_OP_POSITIONS) d.seq = rows;
      else if (rows > d.vocab && !d.hidden) d.vocab = rows; /* until cross-entropy says */
    }
  }
  if (d.hidden) d.ffn = find_ffn(g, d.hidden);
  return d;
}

/* ---- architecture read off the graph (what an external runtime must build) --- */
typedef struct {
  const char *norm, *activation, *position; /* NULL: the graph does not say */
  double norm_eps, rotary_theta, dropout;
  int64_t kv_heads;
  int bias, tied; /* linear biases in the blocks; an embedding table reused as the LM head */
} march;

static int is_param(const ir_graph *g, ir_ref t) { return g->t[t].kind == IR_T_PARAM; }

/* bias_in_block: a forward add/bias_add in layer 0 of block 0 with a rank-1
 * parameter input (norm weights go to norm ops, not adds). */
static int bias_in_block(const ir_graph *g, const ir_op *o) {
  if (o->block != 0 || o->layer != 0 || (o->kind != IR_OP_ADD && o->kind != IR_OP_BIAS_ADD)) return 0;
  for (int k = 0; k < o->nin; k++)
    if (is_param(g, o->in[k]) && g->t[o->in[k]].rank == 1) return 1;
  return 0;
}

/* tied: some embedding table is also a matmul operand (the LM head). */
static int tied(const ir_graph *g) {
  for (int i = 0; i < g->nop; i++) {
    const ir_op *e = &g->op[i];
    if (e->backward || e->kind != IR_OP_EMBEDDING || !is_param(g, e->in[1])) continue;
    for (int j = 0; j < g->nop; j++)
      if (!g->op[j].backward && g->op[j].kind == IR_OP_MATMUL && (g->op[j].in[0] == e->in[1] || g->op[j].in[1] == e->in[1]))
        return 1;
  }
  return 0;
}

/* model_arch: the first norm, activation, dropout probability and position
 * scheme of the forward graph, the attention's kv heads, biases and tied
 * embeddings. */
static march model_arch(const ir_graph *g) {
  march a = {NULL, NULL, "none", 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->backward) continue;
    if (!a.norm && (o->kind == IR_OP_LAYER_NORM || o->kind == IR_OP_RMS_NORM))
      a.norm = o->kind == IR_OP_LAYER_NORM ? "layer_norm" : "rms_norm", a.norm_eps = o->at.eps;
    if (o->kind == IR_OP_SWIGLU) a.activation = "swiglu";
    if (!a.activation && o->kind == IR_OP_GELU) a.activation = o->at.tanh ? "gelu_tanh" : "gelu";
    if (!a.activation && o->kind == IR_OP_SILU) a.activation = "silu";
    if (o->kind == IR_OP_ROTARY) a.position = "rotary", a.rotary_theta = o->at.theta;
    if (o->kind == IR_OP_POSITIONS && strcmp(a.position, "rotary")) a.position = "learned";
    if (o->kind == IR_OP_ATTENTION && !a.kv_heads) a.kv_heads = o->at.kv_heads ? o->at.kv_heads : o->at.heads;
    if (o->kind == IR_OP_DROPOUT && a.dropout == 0) a.dropout = o->at.p;
    a.bias |= bias_in_block(g, o);
  }
  a.tied = tied(g);
  return a;
}

static void j_arch(cJSON *m, const ir_graph *g) {
  march a = model_arch(g);
  if (a.kv_heads) cJSON_AddNumberToObject(m, "kv_heads", (double)a.kv_heads);
  if (a.norm) cJSON_AddStringToObject(m, "norm", a.norm), cJSON_AddNumberToObject(m, "norm_eps", a.norm_eps);
  if (a.activation) cJSON_AddStringToObject(m, "activation", a.activation);
  cJSON_AddStringToObject(m, "position", a.position);
  if (a.rotary_theta > 0) cJSON_AddNumberToObject(m, "rotary_theta", a.rotary_theta);
  cJSON_AddNumberToObject(m, "dropout", a.dropout);
  cJSON_AddBoolToObject(m, "linear_bias", a.bias);
  cJSON_AddBoolToObject(m, "tied_embeddings", a.tied);
}

static void add_dim(cJSON *m, const char *k, int64_t v) {
  if (v > 0) cJSON_AddNumberToObject(m, k, (double)v);
}

static cJSON *j_model(const plan_result *r) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "name", r->g->name ? r->g->name : "model");
  cJSON_AddNumberToObject(m, "params", (double)r->params);
  cJSON_AddNumberToObject(m, "layers", r->layers);
  mdims d = model_dims(r->g);
  add_dim(m, "hidden", d.hidden);
  add_dim(m, "heads", d.heads);
  add_dim(m, "ffn", d.ffn);
  add_dim(m, "vocab", d.vocab);
  add_dim(m, "seq", d.seq);
  j_arch(m, r->g);
  cJSON *bl = cJSON_AddArrayToObject(m, "blocks");
  for (int b = 0; b < r->g->nblk; b++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", r->g->blk[b].name ? r->g->blk[b].name : "block");
    cJSON_AddNumberToObject(x, "count", r->g->blk[b].count);
    cJSON_AddItemToArray(bl, x);
  }
  return m;
}

/* global rank of mesh index i */
static int grank(const plan_layout *l, int i) {
  return l->used ? l->used[i] : i;
}

static int cmp_int(const void *a, const void *b) {
  return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static cJSON *j_cluster(const plan_result *r, const plan_layout *l) {
  const ir_cluster *c = r->c;
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "name", c->name ? c->name : "cluster");
  cJSON_AddNumberToObject(m, "devices", r->ndev);
  cJSON_AddNumberToObject(m, "nodes", r->nnodes);
  cJSON_AddNumberToObject(m, "devices_used", l->nused);
  cJSON *u = cJSON_AddArrayToObject(m, "ranks_used");
  for (int i = 0; i < l->nused; i++) cJSON_AddItemToArray(u, cJSON_CreateNumber(grank(l, i)));
  cJSON *nt = cJSON_AddArrayToObject(m, "node_types");
  for (int i = 0; i < c->nnode; i++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", c->node[i].name ? c->node[i].name : "node");
    cJSON_AddStringToObject(x, "device", c->dev[c->node[i].devtype].name ? c->dev[c->node[i].devtype].name : "device");
    cJSON_AddNumberToObject(x, "count", c->node_count[i]);
    cJSON_AddNumberToObject(x, "devices_per_node", c->node[i].ndev);
    cJSON_AddItemToArray(nt, x);
  }
  return m;
}

/* layers of stage s (all its chunks) */
static int stage_layers(const plan_layout *l, int s) {
  return l->stage ? l->stage[s].last - l->stage[s].first + 1 : 0;
}

/* chunk_range: the layers of chunk k of stage s. Virtual stage q = k pp + s
 * holds x_s / vpp layers, and the layers go to the virtual stages in order
 * (Megatron-LM's interleaved assignment, stages of any size) */
static void chunk_range(const plan_layout *l, int s, int k, int out[2]) {
  int start = 0, q = k * l->pp + s;
  for (int i = 0; i < q; i++) start += stage_layers(l, i % l->pp) / l->vpp;
  out[0] = start, out[1] = start + stage_layers(l, s) / l->vpp - 1;
}

static cJSON *j_parallel(const plan_layout *l) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddNumberToObject(p, "dp", l->dp);
  cJSON_AddNumberToObject(p, "tp", l->tp);
  cJSON_AddNumberToObject(p, "pp", l->pp);
  cJSON_AddNumberToObject(p, "sp", l->sp);
  cJSON_AddNumberToObject(p, "vpp", l->vpp);
  cJSON_AddNumberToObject(p, "micro_batch", l->mbs);
  cJSON_AddNumberToObject(p, "num_micro_batches", l->m);
  cJSON_AddStringToObject(p, "recompute", plan_recompute_name(l->recompute));
  cJSON_AddNumberToObject(p, "zero", l->zero);
  cJSON_AddStringToObject(p, "schedule", l->vpp > 1 ? "interleaved" : "1f1b");
  if (!l->stage) return p;
  cJSON *ls = cJSON_AddArrayToObject(p, "layers_per_stage");
  for (int s = 0; s < l->pp; s++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(stage_layers(l, s)));
  return p;
}

/* the runtime profile the plan was costed for (docs/plan-format.md) */
static cJSON *j_runtime(const plan_calib *c) {
  const plan_runtime *rt = &c->rt;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "profile", rt->name ? rt->name : "custom");
  cJSON_AddStringToObject(r, "attention", rt->flash_attention ? "flash" : "materialised");
  cJSON_AddBoolToObject(r, "sequence_parallel", rt->seq_parallel);
  cJSON_AddStringToObject(r, "grad_reduce_dtype", rt->grad_reduce_bytes >= 4 ? "fp32" : "bf16");
  cJSON_AddNumberToObject(r, "grad_overlap", rt->grad_overlap);
  cJSON_AddBoolToObject(r, "distributed_optimizer", rt->dist_optimizer);
  cJSON_AddBoolToObject(r, "tp_comm_overlap", rt->tp_comm_overlap);
  return r;
}

/* global ranks of stage s, sorted: every mesh index whose pp coordinate is s */
static cJSON *stage_devices(const plan_layout *l, int s) {
  int st = 1, n = 0;
  for (int i = 3; i >= 0 && l->axis_order[i] != 0; i--) st *= axsize(l, l->axis_order[i]);
  int *g = xcalloc((size_t)l->nused, sizeof(int));
  for (int r = 0; r < l->nused; r++)
    if ((r / st) % l->pp == s) g[n++] = grank(l, r);
  qsort(g, (size_t)n, sizeof(int), cmp_int);
  cJSON *d = cJSON_CreateIntArray(g, n);
  free(g);
  return d;
}

/* a TP group mixing device types splits in proportion to speed: its shares */
static void tp_shares(const plan_result *r, const plan_layout *l, const plan_cl *cl, int rank0, cJSON *o) {
  int st = 1;
  for (int i = 3; i >= 0 && l->axis_order[i] != 3; i--) st *= axsize(l, l->axis_order[i]);
  double sp[64], sum = 0;
  bool mixed = false;
  int t0 = cl->c->node[cl->node_type[cl->rank_node[grank(l, rank0)]]].devtype;
  for (int i = 0; i < l->tp && i < 64; i++) {
    int t = cl->c->node[cl->node_type[cl->rank_node[grank(l, rank0 + i * st)]]].devtype;
    mixed |= t != t0;
    sp[i] = plan_dev_of(cl->c, t, r->opt.precision).flops;
    sum += sp[i];
  }
  if (!mixed) return;
  cJSON *a = cJSON_AddArrayToObject(o, "tp_shares");
  for (int i = 0; i < l->tp && i < 64; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(sp[i] / sum));
}

static cJSON *j_stages(const plan_result *r, const plan_layout *l) {
  cJSON *a = cJSON_CreateArray();
  plan_cl cl;
  bool have_cl = plan_cl_init(&cl, r->c, r->a);
  for (int s = 0; s < l->pp; s++) {
    const plan_stage *x = &l->stage[s];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", s);
    cJSON_AddItemToObject(o, "devices", stage_devices(l, s));
    int lr[2] = {x->first, x->last}, c2[2];
    if (l->vpp > 1) chunk_range(l, s, 0, lr), chunk_range(l, s, l->vpp - 1, c2), lr[1] = c2[1];
    cJSON_AddItemToObject(o, "layers", cJSON_CreateIntArray(lr, 2));
    cJSON_AddNumberToObject(o, "num_layers", stage_layers(l, s));
    if (l->vpp > 1) {
      cJSON *ch = cJSON_AddArrayToObject(o, "layers_chunks");
      for (int k = 0; k < l->vpp; k++) {
        chunk_range(l, s, k, c2);
        cJSON_AddItemToArray(ch, cJSON_CreateIntArray(c2, 2));
      }
    }
    cJSON_AddStringToObject(o, "device_type", r->c->dev[x->devtype].name ? r->c->dev[x->devtype].name : "device");
    cJSON *ex = cJSON_AddArrayToObject(o, "extra");
    if (s == 0) cJSON_AddItemToArray(ex, cJSON_CreateString("embedding"));
    if (s == l->pp - 1) cJSON_AddItemToArray(ex, cJSON_CreateString("head"));
    if (have_cl && x->rank0 >= 0 && x->rank0 < l->nused) tp_shares(r, l, &cl, x->rank0, o);
    cJSON_AddNumberToObject(o, "time_per_micro_batch_s", x->time_s);
    cJSON_AddNumberToObject(o, "time_fwd_s", x->fwd_s); /* compute only; full recompute's forward apart */
    cJSON_AddNumberToObject(o, "time_bwd_s", x->bwd_s - (l->recompute == PLAN_RC_FULL ? x->fwd_s : 0));
    cJSON_AddNumberToObject(o, "memory_bytes", x->mem_bytes);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

/* ---- op names ---------------------------------------------------------------
 * Every forward op gets a unique, readable name (computed once per JSON, in
 * graph order):
 *   1. its first output's name when the model named it;
 *   2. an op consuming a parameter X.weight (or any parameter X that is not
 *      X.bias) is named X: the module ("h.0.attn.c_attn" for the matmul with
 *      h.0.attn.c_attn.weight, "h.0.ln_1" for its layer norm); an op that only
 *      consumes X.bias is X.<kind> ("h.0.attn.c_attn.bias_add");
 *   3. any other op is <scope>.<kind>, the scope being that of its latest
 *      producer among its inputs (the module path without its last part:
 *      "h.0.attn.attention", "h.0.mlp.gelu"), or <kind> alone at top level;
 *   4. a name already taken gets ".<kind>" appended, then "op<index>". */
typedef struct {
  char **name;   /* per op (forward ops only), malloc'ed */
  char **scope;  /* per op: module scope ("" at top level) */
  int n;
} opnames;

static bool taken(const opnames *on, int upto, const char *s) {
  for (int i = 0; i < upto; i++)
    if (on->name[i] && !strcmp(on->name[i], s)) return true;
  return false;
}

static char *dup_n(const char *s, size_t n) {
  char *d = xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

/* param_module: the module of op o's parameter inputs: X for X.weight (or a
 * non-bias parameter X), *bias_only when only X.bias was found */
static const char *param_module(const ir_graph *g, const ir_op *o, size_t *len, bool *bias_only) {
  const char *bias = NULL;
  size_t blen = 0;
  for (int i = 0; i < o->nin; i++) {
    const ir_tensor *x = &g->t[o->in[i]];
    if (x->kind != IR_T_PARAM || !x->name) continue;
    const char *dot = strrchr(x->name, '.');
    if (dot && !strcmp(dot, ".bias")) {
      if (!bias) bias = x->name, blen = (size_t)(dot - x->name);
      continue;
    }
    *len = dot && !strcmp(dot, ".weight") ? (size_t)(dot - x->name) : strlen(x->name);
    *bias_only = false;
    return x->name;
  }
  *len = blen, *bias_only = bias != NULL;
  return bias;
}

static void name_op(const ir_graph *g, opnames *on, int i) {
  const ir_op *o = &g->op[i];
  const char *kind = ir_ops[o->kind].name;
  const char *t = o->nout > 0 ? g->t[o->out[0]].name : NULL;
  char buf[512];
  size_t len = 0;
  bool bias_only = false;
  const char *pm = param_module(g, o, &len, &bias_only);
  if (pm && len < 400) {
    size_t sl = len;
    while (sl > 0 && pm[sl - 1] != '.') sl--; /* scope: X without its last part */
    on->scope[i] = dup_n(pm, sl > 0 ? sl - 1 : 0);
    if (bias_only) snprintf(buf, sizeof buf, "%.*s.%s", (int)len, pm, kind);
    else snprintf(buf, sizeof buf, "%.*s", (int)len, pm);
  } else {
    int best = -1;
    for (int k = 0; k < o->nin; k++) {
      ir_ref p = g->t[o->in[k]].producer;
      if (p >= 0 && p < i && on->scope[p] && p > best) best = p;
    }
    const char *sc = best >= 0 ? on->scope[best] : "";
    on->scope[i] = dup_n(sc, strlen(sc) < 400 ? strlen(sc) : 400);
    snprintf(buf, sizeof buf, "%s%s%s", on->scope[i], on->scope[i][0] ? "." : "", kind);
  }
  if (t && t[0] != '%') snprintf(buf, sizeof buf, "%s", t);
  if (taken(on, i, buf)) {
    size_t l = strlen(buf);
    snprintf(buf + l, sizeof buf - l, ".%s", kind);
  }
  if (taken(on, i, buf)) snprintf(buf, sizeof buf, "op%d", i);
  on->name[i] = dup_n(buf, strlen(buf));
}

static void opnames_init(const plan_result *r, opnames *on) {
  const ir_graph *g = r->g;
  on->n = g->nop;
  on->name = xcalloc((size_t)g->nop + 1, sizeof(char *));
  on->scope = xcalloc((size_t)g->nop + 1, sizeof(char *));
  for (int i = 0; i < g->nop; i++)
    if (!g->op[i].backward) name_op(g, on, i);
}

static void opnames_free(opnames *on) {
  for (int i = 0; i < on->n; i++) free(on->name[i]), free(on->scope[i]);
  free(on->name), free(on->scope);
}

static const char *op_name(const opnames *on, ir_ref op) {
  return op >= 0 && op < on->n && on->name[op] ? on->name[op] : "?";
}

static cJSON *j_ops(const plan_result *r, const opnames *on) {
  cJSON *a = cJSON_CreateArray();
  char buf[48];
  for (int i = 0; i < r->nops; i++) {
    const plan_opsbp *x = &r->ops[i];
    const ir_op *o = &r->g->op[x->op];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", op_name(on, x->op));
    cJSON_AddStringToObject(j, "op", ir_ops[o->kind].name);
    if (o->block >= 0) cJSON_AddStringToObject(j, "block", r->g->blk[o->block].name);
    else cJSON_AddNullToObject(j, "block");
    cJSON_AddNumberToObject(j, "lidx", o->block >= 0 ? o->lidx : -1);
    cJSON_AddNumberToObject(j, "index", x->op);
    cJSON_AddNumberToObject(j, "stage", x->stage);
    cJSON *s = cJSON_AddArrayToObject(j, "sbp");
    for (int k = 0; k < o->nout; k++) cJSON_AddItemToArray(s, cJSON_CreateString(ir_sbp_str(x->s.out[k], buf, sizeof buf)));
    cJSON *in = cJSON_AddArrayToObject(j, "in_sbp");
    for (int k = 0; k < o->nin; k++) {
      cJSON *e = cJSON_CreateArray();
      cJSON_AddItemToArray(e, cJSON_CreateString(ir_sbp_str(x->s.in[k], buf, sizeof buf)));
      cJSON_AddItemToArray(in, e);
    }
    cJSON *nm = cJSON_AddArrayToObject(j, "inputs");
    for (int k = 0; k < o->nin; k++) {
      const char *t = r->g->t[o->in[k]].name;
      cJSON_AddItemToArray(nm, t ? cJSON_CreateString(t) : cJSON_CreateNull());
    }
    cJSON_AddStringToObject(j, "devices", "stage");
    cJSON_AddItemToArray(a, j);
  }
  return a;
}

static cJSON *j_boxing(const plan_result *r, const opnames *on) {
  cJSON *a = cJSON_CreateArray();
  char b1[48], b2[48];
  for (int i = 0; i < r->nbox; i++) {
    const plan_boxing *x = &r->box[i];
    const ir_op *o = &r->g->op[x->op];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "op", op_name(on, x->op));
    cJSON_AddNumberToObject(j, "input", x->input);
    cJSON_AddStringToObject(j, "tensor", r->g->t[x->tensor].name ? r->g->t[x->tensor].name : "?");
    if (o->block >= 0) cJSON_AddStringToObject(j, "block", r->g->blk[o->block].name);
    else cJSON_AddNullToObject(j, "block");
    cJSON_AddStringToObject(j, "axis", "tp");
    cJSON_AddStringToObject(j, "from", ir_sbp_str(x->from, b1, sizeof b1));
    cJSON_AddStringToObject(j, "to", ir_sbp_str(x->to, b2, sizeof b2));
    cJSON_AddStringToObject(j, "collective", plan_coll_name(x->coll));
    cJSON_AddNumberToObject(j, "bytes", x->bytes);
    cJSON_AddStringToObject(j, "pass", x->backward ? "backward" : "forward");
    cJSON_AddItemToArray(a, j);
  }
  return a;
}

static cJSON *j_predicted(const plan_result *r, const plan_layout *l) {
  cJSON *p = cJSON_CreateObject();
  double tok = (double)r->opt.global_batch * r->opt.seq;
  cJSON_AddNumberToObject(p, "step_time_s", l->step_s);
  cJSON_AddNumberToObject(p, "tokens_per_s", tok / l->step_s);
  cJSON_AddNumberToObject(p, "model_tflops_per_device", l->model_flops / l->step_s / l->nused / 1e12);
  cJSON_AddNumberToObject(p, "hardware_tflops_per_device", l->hw_flops / l->step_s / l->nused / 1e12);
  cJSON_AddNumberToObject(p, "mfu", l->model_flops / l->step_s / l->nused / l->peak_flops);
  cJSON_AddNumberToObject(p, "memory_per_device_bytes", l->mem_bytes);
  cJSON *b = cJSON_AddObjectToObject(p, "breakdown");
  cJSON_AddNumberToObject(b, "compute_s", l->compute_s);
  cJSON_AddNumberToObject(b, "exposed_comm_s", l->comm_s);
  cJSON_AddNumberToObject(b, "bubble_s", l->bubble_s);
  cJSON_AddNumberToObject(b, "tp_comm_s", l->tp_comm_s);
  cJSON_AddNumberToObject(b, "sp_comm_s", l->sp_comm_s);
  cJSON_AddNumberToObject(b, "pp_comm_s", l->pp_comm_s);
  cJSON_AddNumberToObject(b, "dp_comm_s", l->dp_comm_s);
  cJSON_AddNumberToObject(b, "optimizer_s", l->opt_s);
  cJSON_AddNumberToObject(b, "params_bytes", l->mem_params);
  cJSON_AddNumberToObject(b, "grads_bytes", l->mem_grads);
  cJSON_AddNumberToObject(b, "optimizer_bytes", l->mem_opt);
  cJSON_AddNumberToObject(b, "activations_bytes", l->mem_act);
  cJSON_AddNumberToObject(b, "workspace_bytes", l->mem_work);
  cJSON_AddStringToObject(b, "dominant", plan_dominant(l));
  return p;
}

static cJSON *j_planner(const plan_result *r) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddNumberToObject(p, "candidates", (double)r->candidates);
  cJSON_AddNumberToObject(p, "evaluated", (double)r->evaluated);
  cJSON_AddNumberToObject(p, "solve_time_s", r->solve_time_s);
  cJSON_AddStringToObject(p, "status", r->fallback ? "fallback" : "optimal");
  if (r->note) cJSON_AddStringToObject(p, "note", r->note);
  cJSON_AddNumberToObject(p, "ilp_solves", (double)r->ilp_solves);
  if (r->opt.calib_path) cJSON_AddStringToObject(p, "calibration", r->opt.calib_path);
  else cJSON_AddNullToObject(p, "calibration");
  cJSON *t = cJSON_AddArrayToObject(p, "top");
  for (int i = 0; i < r->ntop; i++) {
    cJSON *x = j_parallel(&r->top[i]);
    cJSON_AddNumberToObject(x, "devices_used", r->top[i].nused);
    cJSON_AddNumberToObject(x, "step_time_s", r->top[i].step_s);
    cJSON_AddNumberToObject(x, "memory_per_device_bytes", r->top[i].mem_bytes);
    cJSON_AddItemToArray(t, x);
  }
  return p;
}

static cJSON *build(const plan_result *r) {
  const plan_layout *l = &r->top[0];
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "format", "sbpc-plan");
  cJSON_AddNumberToObject(j, "version", 1);
  cJSON_AddItemToObject(j, "model", j_model(r));
  cJSON_AddItemToObject(j, "cluster", j_cluster(r, l));
  cJSON *tr = cJSON_AddObjectToObject(j, "train");
  cJSON_AddNumberToObject(tr, "global_batch", (double)r->opt.global_batch);
  cJSON_AddNumberToObject(tr, "seq", (double)r->opt.seq);
  cJSON_AddStringToObject(tr, "precision", ir_dtype_name(r->opt.precision));
  cJSON_AddItemToObject(j, "parallel", j_parallel(l));
  cJSON_AddItemToObject(j, "runtime", j_runtime(&r->opt.calib));
  cJSON *mesh = cJSON_AddObjectToObject(j, "mesh");
  cJSON *ax = cJSON_AddArrayToObject(mesh, "axes"), *sh = cJSON_AddArrayToObject(mesh, "shape");
  for (int i = 0; i < 4; i++) {
    cJSON_AddItemToArray(ax, cJSON_CreateString(axis_names[l->axis_order[i]]));
    cJSON_AddItemToArray(sh, cJSON_CreateNumber(axsize(l, l->axis_order[i])));
  }
  cJSON_AddItemToObject(j, "stages", j_stages(r, l));
  opnames on;
  opnames_init(r, &on);
  cJSON_AddItemToObject(j, "ops", j_ops(r, &on));
  cJSON_AddItemToObject(j, "boxing", j_boxing(r, &on));
  opnames_free(&on);
  cJSON_AddItemToObject(j, "predicted", j_predicted(r, l));
  cJSON_AddItemToObject(j, "planner", j_planner(r));
  return j;
}

cJSON *plan_json(const plan_result *r) {
  return r && r->ntop > 0 ? build(r) : NULL;
}

char *plan_json_string(const plan_result *r) {
  if (!r || r->ntop == 0) return NULL;
  cJSON *j = build(r);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  return s;
}

bool plan_write_json(const plan_result *r, FILE *f) {
  char *s = plan_json_string(r);
  if (!s) return false;
  bool ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
  free(s);
  return ok;
}
