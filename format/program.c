/* program.c — DIR/program.json: the one writer and the one reader of a
 * compiled program (program.h; the format is docs/actor-plan.md).
 *
 * Writing builds a cJSON tree: the graph as arrays (tensors, then ops with
 * only the attributes that are set), the layout, then per stage the actors,
 * registers, schedule and persistent tensors, and the parameters and buckets.
 *
 * Reading is the other half of one schema. Every field goes through small
 * checked getters (as in plan.c) that record the first problem with its JSON
 * path and return a harmless value, so a walk reads straight through and the
 * caller checks once. Sizes are bounded by the arrays cJSON already holds and
 * by fixed caps before anything is allocated; every index (tensor, op,
 * register, actor, stage, parameter, bucket) is range-checked, register byte
 * sizes must equal their tensor's, and every arena offset must lie inside
 * the arena, so a hostile file can make the executor refuse, never read or
 * write out of bounds. The graph is rebuilt with ir_tensor_add / ir_op_add
 * and checked with ir_verify. */
#include "format/program.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/stat.h>

#define MAX_ITEMS (1 << 24)
#define MAX_BYTES ((int64_t)1 << 46)

const char *const fmt_akind_name[FMT_NAKINDS] = {"compute", "coll",   "send",  "recv",  "reduce",
                                                 "optim",   "gather", "gsend", "grecv", "fetch", "tp_reduce"};

static cJSON *w_gpu(const fmt_prog *p);
typedef struct rd rd;
static void r_gpu(rd *r, const cJSON *j);

fmt_prog *fmt_prog_new(void) {
  arena *a = arena_new();
  fmt_prog *p = ARENA_NEW(a, fmt_prog);
  p->a = a;
  p->vpp = p->sp = 1;
  return p;
}

void fmt_prog_free(fmt_prog *p) {
  if (!p) return;
  ir_graph_free(p->g);
  arena_free(p->a);
}

const char *const fmt_spkind_name[FMT_NSPKINDS] = {"ulysses", "ring"};

int fmt_spkind_parse(const char *s) {
  for (int k = 0; s && k < FMT_NSPKINDS; k++)
    if (!strcmp(s, fmt_spkind_name[k])) return k;
  return -1;
}

void fmt_prog_rank(const fmt_prog *p, int rank, int *stage, int *dpi, int *tpi) {
  *stage = rank / (p->dp * p->sp * p->tp);
  *dpi = rank / (p->tp * p->sp) % p->dp;
  *tpi = rank % p->tp;
}

int fmt_prog_sp_index(const fmt_prog *p, int rank) { return rank / p->tp % p->sp; }

int fmt_prog_param_of(const fmt_prog *p, ir_ref t) {
  for (int i = 0; i < p->nparam; i++) {
    const fmt_param *q = &p->param[i];
    if (q->tensor == t || q->exp_avg == t || q->exp_avg_sq == t) return i;
  }
  return -1;
}

/* ---- writing ------------------------------------------------------------------ */
static cJSON *ints(const int32_t *v, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
  return a;
}

static cJSON *i64s(const int64_t *v, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
  return a;
}

static cJSON *sbp_json(ir_sbp s) {
  char b[16];
  return cJSON_CreateString(ir_sbp_str(s, b, sizeof b));
}

static int64_t dimv(const ir_graph *g, ir_dim d) { return ir_dim_eval(d, g->bind_b, g->bind_s); }

static cJSON *w_tensor(const ir_graph *g, const ir_tensor *t) {
  cJSON *j = cJSON_CreateObject();
  int64_t shape[IR_MAXRANK];
  for (int i = 0; i < t->rank; i++) shape[i] = dimv(g, t->shape[i]);
  cJSON_AddStringToObject(j, "name", t->name ? t->name : "");
  cJSON_AddNumberToObject(j, "kind", t->kind);
  cJSON_AddStringToObject(j, "dtype", ir_dtype_name((ir_dtype)t->dtype));
  cJSON_AddItemToObject(j, "shape", i64s(shape, t->rank));
  if (t->block >= 0) cJSON_AddItemToObject(j, "at", ints((int32_t[]){t->block, t->layer, t->lidx}, 3));
  if (t->sbp.n == 1) cJSON_AddItemToObject(j, "sbp", sbp_json(t->sbp.a[0]));
  if (t->grad_of >= 0) cJSON_AddNumberToObject(j, "grad_of", t->grad_of);
  return j;
}

static void put_num(cJSON *j, const char *k, double v) {
  if (v != 0) cJSON_AddNumberToObject(j, k, v);
}

static cJSON *w_attrs(const ir_graph *g, const ir_attrs *a) {
  cJSON *j = cJSON_CreateObject();
  const char *nk[] = {"heads", "kv_heads", "axis", "index", "n", "mesh_axis", "stage_from", "stage_to"};
  double nv[] = {(double)a->heads, (double)a->kv_heads, (double)a->axis, (double)a->index,
                 (double)a->n,     (double)a->mesh_axis, a->stage_from,   a->stage_to};
  for (int i = 0; i < 8; i++) put_num(j, nk[i], nv[i]);
  const char *bk[] = {"causal", "trans_a", "trans_b", "tanh", "packed"};
  bool bv[] = {a->causal, a->trans_a, a->trans_b, a->tanh, a->packed};
  for (int i = 0; i < 5; i++)
    if (bv[i]) cJSON_AddTrueToObject(j, bk[i]);
  const char *dk[] = {"eps", "scale", "p", "theta", "lr", "beta1", "beta2", "weight_decay"};
  double dv[] = {a->eps, a->scale, a->p, a->theta, a->lr, a->beta1, a->beta2, a->weight_decay};
  for (int i = 0; i < 8; i++) put_num(j, dk[i], dv[i]);
  if (a->rank) {
    int64_t sh[IR_MAXRANK];
    for (int i = 0; i < a->rank; i++) sh[i] = dimv(g, a->shape[i]);
    cJSON_AddItemToObject(j, "shape", i64s(sh, a->rank));
  }
  if (a->from.kind != SBP_S || a->to.kind != SBP_S || a->from.axis || a->to.axis) {
    cJSON_AddItemToObject(j, "from", sbp_json(a->from));
    cJSON_AddItemToObject(j, "to", sbp_json(a->to));
  }
  return j;
}

static cJSON *w_op(const ir_graph *g, const ir_op *o, int stage, int chunk, int fwd_of) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "op", ir_ops[o->kind].name);
  cJSON_AddItemToObject(j, "in", ints(o->in, o->nin));
  cJSON_AddItemToObject(j, "out", ints(o->out, o->nout));
  cJSON_AddItemToObject(j, "attrs", w_attrs(g, &o->at));
  if (o->block >= 0) cJSON_AddItemToObject(j, "at", ints((int32_t[]){o->block, o->layer, o->lidx}, 3));
  if (o->backward) cJSON_AddTrueToObject(j, "backward");
  if (o->recompute) cJSON_AddTrueToObject(j, "recompute");
  cJSON_AddNumberToObject(j, "stage", stage);
  if (chunk > 0) cJSON_AddNumberToObject(j, "chunk", chunk);
  if (fwd_of >= 0) cJSON_AddNumberToObject(j, "fwd_of", fwd_of);
  if (g->mesh.n == 1) {
    cJSON *in = cJSON_AddArrayToObject(j, "in_sbp"), *out = cJSON_AddArrayToObject(j, "out_sbp");
    for (int i = 0; i < o->nin; i++) cJSON_AddItemToArray(in, sbp_json(o->in_sbp[i].a[0]));
    for (int i = 0; i < o->nout; i++) cJSON_AddItemToArray(out, sbp_json(o->out_sbp[i].a[0]));
  }
  return j;
}

static cJSON *w_graph(const fmt_prog *p) {
  const ir_graph *g = p->g;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", g->name ? g->name : "");
  cJSON *blk = cJSON_AddArrayToObject(j, "blocks");
  for (int b = 0; b < g->nblk; b++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", g->blk[b].name);
    cJSON_AddNumberToObject(x, "count", g->blk[b].count);
    cJSON_AddItemToArray(blk, x);
  }
  cJSON_AddNumberToObject(j, "tp_mesh", g->mesh.n == 1 ? (double)g->mesh.size[0] : 0);
  cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
  for (int t = 0; t < g->nt; t++) cJSON_AddItemToArray(ts, w_tensor(g, &g->t[t]));
  cJSON *os = cJSON_AddArrayToObject(j, "ops");
  for (int k = 0; k < g->nop; k++) cJSON_AddItemToArray(os, w_op(g, &g->op[k], p->op_stage[k], p->op_chunk[k], p->fwd_of[k]));
  cJSON_AddNumberToObject(j, "loss", g->loss);
  return j;
}

static cJSON *w_kernel(const fmt_kernel *k) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", k->name);
  cJSON_AddItemToObject(j, "buffers", ints(k->buf, k->nbuf));
  cJSON *acc = cJSON_AddArrayToObject(j, "acc");
  for (int i = 0; i < k->nbuf; i++) cJSON_AddItemToArray(acc, cJSON_CreateBool(k->acc[i]));
  cJSON_AddNumberToObject(j, "rows", (double)k->rows);
  cJSON_AddNumberToObject(j, "cols", (double)k->cols);
  cJSON *sc = cJSON_AddArrayToObject(j, "scalars");
  for (int i = 0; i < k->nscalar; i++) cJSON_AddItemToArray(sc, cJSON_CreateNumber(k->scalar[i]));
  return j;
}

static cJSON *w_actor(const fmt_actor *a) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "kind", fmt_akind_name[a->kind]);
  if (a->per_micro) cJSON_AddTrueToObject(j, "per_micro");
  const char *k[] = {"op", "tensor", "peer", "bucket"};
  int32_t v[] = {a->op, a->tensor, a->peer, a->bucket};
  for (int i = 0; i < 4; i++)
    if (v[i] >= 0) cJSON_AddNumberToObject(j, k[i], v[i]);
  bool any = false;
  for (int i = 0; i < a->nout; i++) any |= a->acc[i] >= 0;
  if (any) cJSON_AddItemToObject(j, "acc", ints(a->acc, a->nout));
  cJSON_AddItemToObject(j, "in", ints(a->in, a->nin));
  cJSON_AddItemToObject(j, "out", ints(a->out, a->nout));
  if (a->ndep) cJSON_AddItemToObject(j, "dep", ints(a->dep, a->ndep));
  if (a->nops > 1) cJSON_AddItemToObject(j, "ops", ints(a->ops, a->nops));
  if (a->kernel) cJSON_AddItemToObject(j, "kernel", w_kernel(a->kernel));
  return j;
}

static cJSON *w_stage(const fmt_prog *p, const fmt_stage *s) {
  cJSON *j = cJSON_CreateObject();
  cJSON *as = cJSON_AddArrayToObject(j, "actors");
  for (int i = 0; i < s->nact; i++) cJSON_AddItemToArray(as, w_actor(&s->act[i]));
  cJSON *rs = cJSON_AddArrayToObject(j, "registers");
  for (int i = 0; i < s->nreg; i++) {
    const fmt_reg *r = &s->reg[i];
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "tensor", r->tensor);
    cJSON_AddNumberToObject(x, "bytes", (double)r->bytes);
    cJSON_AddNumberToObject(x, "regst_num", r->regst_num);
    cJSON_AddNumberToObject(x, "producer", r->producer);
    cJSON_AddItemToObject(x, "consumers", ints(r->cons, r->ncons));
    if (r->view >= 0) cJSON_AddNumberToObject(x, "view", r->view);
    if (r->into_acc) cJSON_AddTrueToObject(x, "into_acc");
    cJSON_AddItemToObject(x, "offsets", i64s(r->offset, p->micro));
    cJSON *w = cJSON_AddArrayToObject(x, "waits");
    for (int m = 0; m < p->micro; m++) cJSON_AddItemToArray(w, ints(r->wait[m], r->nwait[m]));
    cJSON_AddItemToArray(rs, x);
  }
  cJSON *sc = cJSON_AddArrayToObject(j, "schedule");
  for (int i = 0; i < s->nsched; i++) cJSON_AddItemToArray(sc, ints((int32_t[]){s->sched[i].actor, s->sched[i].micro}, 2));
  const char *roles[] = {"param", "grad", "exp_avg", "exp_avg_sq"};
  cJSON *ps = cJSON_AddArrayToObject(j, "persistent");
  for (int i = 0; i < s->npers; i++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "tensor", s->pers[i].tensor);
    cJSON_AddStringToObject(x, "role", roles[s->pers[i].role]);
    cJSON_AddNumberToObject(x, "bytes", (double)s->pers[i].bytes);
    cJSON_AddNumberToObject(x, "offset", (double)s->pers[i].offset);
    cJSON_AddItemToArray(ps, x);
  }
  cJSON_AddNumberToObject(j, "arena_bytes", (double)s->arena_bytes);
  cJSON_AddNumberToObject(j, "persistent_bytes", (double)s->persist_bytes);
  return j;
}

static cJSON *w_param(const fmt_param *q) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", q->name);
  cJSON_AddNumberToObject(j, "tensor", q->tensor);
  cJSON_AddItemToObject(j, "shape", i64s(q->shape, q->rank));
  cJSON_AddNumberToObject(j, "split", q->split);
  cJSON_AddNumberToObject(j, "groups", q->groups);
  int32_t st[64];
  int n = 0;
  for (int s = 0; s < 64; s++)
    if (q->stages >> s & 1) st[n++] = s;
  cJSON_AddItemToObject(j, "stages", ints(st, n));
  const char *k[] = {"exp_avg", "exp_avg_sq", "grad", "adamw", "grad_stage", "bucket"};
  int32_t v[] = {q->exp_avg, q->exp_avg_sq, q->grad, q->adamw, q->grad_stage, q->bucket};
  for (int i = 0; i < 6; i++) cJSON_AddNumberToObject(j, k[i], v[i]);
  return j;
}

static cJSON *w_prog(const fmt_prog *p) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "format", "sbpc-program");
  cJSON_AddNumberToObject(j, "version", FMT_PROG_VERSION);
  cJSON_AddStringToObject(j, "model", p->model ? p->model : "");
  char h[24];
  snprintf(h, sizeof h, "%016llx", (unsigned long long)p->model_hash);
  cJSON_AddStringToObject(j, "model_hash", h);
  cJSON *l = cJSON_AddObjectToObject(j, "layout");
  const char *lk[] = {"dp", "tp", "pp", "micro", "zero", "recompute"};
  int32_t lv[] = {p->dp, p->tp, p->pp, p->micro, p->zero, p->recompute};
  for (int i = 0; i < 6; i++) cJSON_AddNumberToObject(l, lk[i], lv[i]);
  if (p->vpp > 1) cJSON_AddNumberToObject(l, "vpp", p->vpp);
  if (p->sp > 1) cJSON_AddNumberToObject(l, "sp", p->sp), cJSON_AddStringToObject(l, "sp_kind", fmt_spkind_name[p->sp_kind]);
  if (p->packed) cJSON_AddTrueToObject(l, "packed");
  if (p->adaptive) cJSON_AddTrueToObject(l, "adaptive_sp");
  cJSON_AddNumberToObject(j, "global_batch", (double)p->global_batch);
  cJSON_AddNumberToObject(j, "seq", (double)p->seq);
  cJSON_AddNumberToObject(j, "micro_batch", (double)p->micro_batch);
  cJSON_AddNumberToObject(j, "predicted_peak_bytes", (double)p->predicted_peak);
  cJSON_AddItemToObject(j, "graph", w_graph(p));
  cJSON *ps = cJSON_AddArrayToObject(j, "params");
  for (int i = 0; i < p->nparam; i++) cJSON_AddItemToArray(ps, w_param(&p->param[i]));
  cJSON *bs = cJSON_AddArrayToObject(j, "buckets");
  for (int i = 0; i < p->nbucket; i++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "stage", p->bucket[i].stage);
    cJSON_AddItemToObject(x, "params", ints(p->bucket[i].param, p->bucket[i].nparam));
    cJSON_AddItemToArray(bs, x);
  }
  cJSON *ss = cJSON_AddArrayToObject(j, "stages");
  for (int s = 0; s < p->nstage; s++) cJSON_AddItemToArray(ss, w_stage(p, &p->stage[s]));
  if (p->gpu) cJSON_AddItemToObject(j, "gpu", w_gpu(p)); /* the GPU part (below) */
  return j;
}

bool fmt_prog_write(const fmt_prog *p, const char *path) {
  cJSON *j = w_prog(p);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = text ? fopen(tmp, "wb") : NULL;
  size_t n = text ? strlen(text) : 0;
  bool ok = f && fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
  ok = f && fclose(f) == 0 && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) {
    diag_file_error(path, "cannot write the program");
    remove(tmp);
  }
  free(text);
  return ok;
}

bool fmt_prog_write_dir(const fmt_prog *p, const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/kernels", dir);
  if ((mkdir(dir, 0755) && errno != EEXIST) || (p->cpu_ll && mkdir(path, 0755) && errno != EEXIST)) {
    diag_file_error(dir, "cannot create the directory: %s", strerror(errno));
    return false;
  }
  snprintf(path, sizeof path, "%s/program.json", dir);
  if (!fmt_prog_write(p, path)) return false;
  if (!p->cpu_ll) return true;
  snprintf(path, sizeof path, "%s/kernels/cpu.ll", dir);
  FILE *f = fopen(path, "wb");
  size_t n = strlen(p->cpu_ll);
  bool ok = f && fwrite(p->cpu_ll, 1, n, f) == n;
  ok = f && fclose(f) == 0 && ok;
  if (!ok) diag_file_error(path, "cannot write the kernels");
  return ok;
}

/* ---- reading ------------------------------------------------------------------ */
struct rd {
  char *err;
  size_t errlen;
  bool failed;
  fmt_prog *p;
};

static void fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(rd *r, const char *fmt, ...) {
  if (r->failed) return;
  r->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, r->errlen, fmt, ap);
  va_end(ap);
}

static const cJSON *item(rd *r, const cJSON *o, const char *path, const char *k, bool required) {
  const cJSON *v = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
  if (!v && required) fail(r, "missing '%s%s%s'", path, *path ? "." : "", k);
  return v;
}

/* num: a number in [lo, hi] (integral when whole) at o.k; def when absent and
 * not required */
static double num(rd *r, const cJSON *o, const char *path, const char *k, double lo, double hi, bool whole,
                  bool required, double def) {
  const cJSON *v = item(r, o, path, k, required);
  if (!v) return def;
  double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
  if (!(d >= lo && d <= hi) || (whole && d != floor(d))) {
    fail(r, "'%s%s%s' must be %s in [%g, %g]", path, *path ? "." : "", k, whole ? "an integer" : "a number", lo, hi);
    return lo;
  }
  return d;
}

static int64_t inum(rd *r, const cJSON *o, const char *path, const char *k, int64_t lo, int64_t hi) {
  return (int64_t)num(r, o, path, k, (double)lo, (double)hi, true, true, 0);
}

static int64_t opt_inum(rd *r, const cJSON *o, const char *path, const char *k, int64_t lo, int64_t hi, int64_t def) {
  return (int64_t)num(r, o, path, k, (double)lo, (double)hi, true, false, (double)def);
}

static const char *str(rd *r, const cJSON *o, const char *path, const char *k) {
  const cJSON *v = item(r, o, path, k, true);
  if (v && !cJSON_IsString(v)) fail(r, "'%s.%s' must be a string", path, k);
  return v && cJSON_IsString(v) ? arena_strdup(r->p->a, v->valuestring) : "";
}

static const cJSON *arr(rd *r, const cJSON *o, const char *path, const char *k, int maxn, bool required) {
  const cJSON *v = item(r, o, path, k, required);
  if (!v) return NULL;
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > maxn) {
    fail(r, "'%s%s%s' must be an array of at most %d items", path, *path ? "." : "", k, maxn);
    return NULL;
  }
  return v;
}

/* int_list: the integers in [lo, hi] of array o.k into an arena array */
static int32_t *int_list(rd *r, const cJSON *o, const char *path, const char *k, int maxn, int64_t lo, int64_t hi,
                         int32_t *n) {
  const cJSON *a = arr(r, o, path, k, maxn, false);
  *n = a ? cJSON_GetArraySize(a) : 0;
  int32_t *v = ARENA_ARRAY(r->p->a, int32_t, *n + 1);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) fail(r, "'%s.%s[%d]' must be an integer in [%lld, %lld]", path, k, i, (long long)lo, (long long)hi);
    else v[i] = (int32_t)d;
    i++;
  }
  return v;
}

static ir_sbp sbp_of(rd *r, const cJSON *v, const char *path) {
  ir_sbp s = {SBP_B, 0};
  if (!cJSON_IsString(v) || !ir_sbp_parse(v->valuestring, &s)) fail(r, "'%s' must be an SBP (\"S(i)\", \"B\", \"P(sum)\", \"P(max)\")", path);
  return s;
}

static void r_shape(rd *r, const cJSON *o, const char *path, int *rank, ir_dim *shape) {
  int32_t n;
  const cJSON *a = arr(r, o, path, "shape", IR_MAXRANK, true);
  *rank = 0;
  (void)n;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    if (!(d >= 0 && d <= 1e15) || d != floor(d)) fail(r, "'%s.shape' must hold integers in [0, 1e15]", path);
    else shape[*rank] = ir_const((int64_t)d);
    (*rank)++;
  }
}

static void r_tensor(rd *r, ir_graph *g, const cJSON *j, int i) {
  char path[48];
  snprintf(path, sizeof path, "graph.tensors[%d]", i);
  ir_tensor t = ir_tensor_init(arena_strdup(g->arena, str(r, j, path, "name")), (ir_tkind)inum(r, j, path, "kind", 0, IR_T_STATE), IR_F32);
  const cJSON *dt = item(r, j, path, "dtype", true);
  int d = cJSON_IsString(dt) ? ir_dtype_parse(dt->valuestring) : -1;
  if (d < 0) fail(r, "'%s.dtype' must be a dtype name", path);
  t.dtype = (uint8_t)(d < 0 ? 0 : d);
  int rank = 0;
  r_shape(r, j, path, &rank, t.shape);
  t.rank = (uint8_t)rank;
  if (t.name[0] == 0) t.name = arena_printf(g->arena, "%%%d", i);
  int32_t n;
  int32_t *at = int_list(r, j, path, "at", 3, -1, 1 << 30, &n);
  if (n == 3) t.block = at[0], t.layer = at[1], t.lidx = at[2];
  const cJSON *s = item(r, j, path, "sbp", false);
  if (s) t.sbp.n = 1, t.sbp.a[0] = sbp_of(r, s, path);
  t.grad_of = (ir_ref)opt_inum(r, j, path, "grad_of", -1, MAX_ITEMS, -1);
  ir_tensor_add(g, &t);
}

static void r_attrs(rd *r, const cJSON *j, const char *path, ir_attrs *a) {
  const cJSON *x = item(r, j, path, "attrs", true);
  if (x && !cJSON_IsObject(x)) return fail(r, "'%s.attrs' must be an object", path);
  char p[64];
  snprintf(p, sizeof p, "%s.attrs", path);
  const char *nk[] = {"heads", "kv_heads", "axis", "index", "n", "mesh_axis", "stage_from", "stage_to"};
  int64_t v[8];
  for (int i = 0; i < 8; i++) v[i] = opt_inum(r, x, p, nk[i], -(1 << 30), (int64_t)1 << 40, 0);
  a->heads = v[0], a->kv_heads = v[1], a->axis = v[2], a->index = v[3], a->n = v[4], a->mesh_axis = v[5];
  a->stage_from = (int32_t)v[6], a->stage_to = (int32_t)v[7];
  const char *bk[] = {"causal", "trans_a", "trans_b", "tanh", "packed"};
  bool *bv[] = {&a->causal, &a->trans_a, &a->trans_b, &a->tanh, &a->packed};
  for (int i = 0; i < 5; i++) *bv[i] = cJSON_IsTrue(item(r, x, p, bk[i], false));
  const char *dk[] = {"eps", "scale", "p", "theta", "lr", "beta1", "beta2", "weight_decay"};
  double *dv[] = {&a->eps, &a->scale, &a->p, &a->theta, &a->lr, &a->beta1, &a->beta2, &a->weight_decay};
  for (int i = 0; i < 8; i++) *dv[i] = num(r, x, p, dk[i], -1e30, 1e30, false, false, 0);
  if (item(r, x, p, "shape", false)) {
    int rank = 0;
    r_shape(r, x, p, &rank, a->shape);
    a->rank = (uint8_t)rank;
  }
  const cJSON *f = item(r, x, p, "from", false), *t = item(r, x, p, "to", false);
  if (f) a->from = sbp_of(r, f, p);
  if (t) a->to = sbp_of(r, t, p);
}

static void r_sbps(rd *r, const cJSON *j, const char *path, const char *k, int n, ir_ndsbp *out) {
  const cJSON *a = arr(r, j, path, k, IR_MAXIN, r->p->g->mesh.n == 1);
  if (!a) return;
  if (cJSON_GetArraySize(a) != n) return fail(r, "'%s.%s' must have %d entries", path, k, n);
  for (int i = 0; i < n; i++) out[i].n = 1, out[i].a[0] = sbp_of(r, cJSON_GetArrayItem(a, i), path);
}

static void r_op(rd *r, ir_graph *g, const cJSON *j, int k) {
  char path[48];
  snprintf(path, sizeof path, "graph.ops[%d]", k);
  const cJSON *kn = item(r, j, path, "op", true);
  int kind = cJSON_IsString(kn) ? ir_op_lookup(kn->valuestring) : -1;
  if (kind < 0) return fail(r, "'%s.op' must name an op", path);
  ir_op o = ir_op_init((ir_opkind)kind);
  int32_t nin, nout;
  int32_t *in = int_list(r, j, path, "in", IR_MAXIN, 0, g->nt - 1, &nin);
  int32_t *out = int_list(r, j, path, "out", IR_MAXOUT, 0, g->nt - 1, &nout);
  if (nin < ir_ops[kind].min_in || nin > ir_ops[kind].max_in || nout < 1 || nout > ir_ops[kind].nout)
    return fail(r, "'%s': %s takes %d-%d inputs and 1-%d outputs", path, ir_ops[kind].name, ir_ops[kind].min_in,
                ir_ops[kind].max_in, ir_ops[kind].nout);
  o.nin = (uint8_t)nin, o.nout = (uint8_t)nout;
  memcpy(o.in, in, sizeof(int32_t) * (size_t)nin);
  memcpy(o.out, out, sizeof(int32_t) * (size_t)nout);
  for (int i = 0; i < nout; i++)
    if (g->t[out[i]].producer >= 0 || g->t[out[i]].kind == IR_T_INPUT || g->t[out[i]].kind == IR_T_PARAM)
      return fail(r, "'%s.out[%d]': tensor %d is not an op's output or is made twice", path, i, out[i]);
  r_attrs(r, j, path, &o.at);
  int32_t n;
  int32_t *at = int_list(r, j, path, "at", 3, -1, 1 << 30, &n);
  if (n == 3) o.block = at[0], o.layer = at[1], o.lidx = at[2];
  o.backward = cJSON_IsTrue(item(r, j, path, "backward", false));
  o.recompute = cJSON_IsTrue(item(r, j, path, "recompute", false));
  r_sbps(r, j, path, "in_sbp", nin, o.in_sbp);
  r_sbps(r, j, path, "out_sbp", nout, o.out_sbp);
  if (r->failed) return;
  ir_op_add(g, &o);
  r->p->op_stage[k] = (int32_t)inum(r, j, path, "stage", 0, r->p->pp - 1);
  r->p->fwd_of[k] = (int32_t)opt_inum(r, j, path, "fwd_of", -1, k, -1);
  r->p->op_chunk[k] = (int32_t)opt_inum(r, j, path, "chunk", 0, r->p->vpp - 1, 0);
}

static void r_graph(rd *r, const cJSON *j) {
  fmt_prog *p = r->p;
  const cJSON *ts = arr(r, j, "graph", "tensors", MAX_ITEMS, true), *os = arr(r, j, "graph", "ops", MAX_ITEMS, true);
  const cJSON *bs = arr(r, j, "graph", "blocks", 4096, true);
  if (r->failed) return;
  const cJSON *nm = item(r, j, "graph", "name", true);
  p->g = ir_graph_new(cJSON_IsString(nm) ? nm->valuestring : "model");
  ir_graph *g = p->g;
  int tpm = (int)opt_inum(r, j, "graph", "tp_mesh", 0, 1 << 20, 0);
  if (tpm > 0) g->mesh.n = 1, g->mesh.size[0] = tpm, g->mesh.axis_name[0] = "tp";
  const cJSON *e;
  int i = 0;
  cJSON_ArrayForEach(e, bs) {
    char path[40];
    snprintf(path, sizeof path, "graph.blocks[%d]", i++);
    const char *name = str(r, e, path, "name");
    ir_block_add(g, arena_strdup(g->arena, name), (int)inum(r, e, path, "count", 0, 1 << 20));
  }
  i = 0;
  cJSON_ArrayForEach(e, ts) if (!r->failed) r_tensor(r, g, e, i++);
  int nop = cJSON_GetArraySize(os);
  p->op_stage = ARENA_ARRAY(p->a, int32_t, nop + 1);
  p->fwd_of = ARENA_ARRAY(p->a, int32_t, nop + 1);
  p->op_chunk = ARENA_ARRAY(p->a, int32_t, nop + 1);
  i = 0;
  cJSON_ArrayForEach(e, os) if (!r->failed) r_op(r, g, e, i++);
  g->loss = (ir_ref)inum(r, j, "graph", "loss", 0, g->nt - 1);
  for (int t = 0; t < g->nt && !r->failed; t++) {
    ir_tensor *x = &g->t[t];
    if (x->block >= g->nblk || (x->grad_of >= g->nt)) fail(r, "'graph.tensors[%d]': block or grad_of out of range", t);
    if (x->kind != IR_T_INPUT && x->kind != IR_T_PARAM && x->kind != IR_T_STATE && x->producer < 0)
      fail(r, "'graph.tensors[%d]' ('%s') is made by no op", t, x->name);
  }
  for (int k = 0; k < g->nop && !r->failed; k++)
    if (g->op[k].block >= g->nblk) fail(r, "'graph.ops[%d].at': block out of range", k);
}

static const fmt_kernel *r_kernel(rd *r, const cJSON *j, const char *actor) {
  char path[128];
  snprintf(path, sizeof path, "%s.kernel", actor);
  fmt_prog *p = r->p;
  fmt_kernel *k = ARENA_NEW(p->a, fmt_kernel);
  k->name = str(r, j, path, "name");
  for (const char *c = k->name; *c; c++)
    if (!(*c == '_' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
      fail(r, "'%s.name' must be a C identifier", path);
  k->buf = int_list(r, j, path, "buffers", 24, 0, p->g->nt - 1, &k->nbuf);
  const cJSON *acc = arr(r, j, path, "acc", 24, true);
  k->acc = ARENA_ARRAY(p->a, uint8_t, k->nbuf + 1);
  if (!r->failed && cJSON_GetArraySize(acc) != k->nbuf) fail(r, "'%s.acc' must have one entry per buffer", path);
  for (int i = 0; i < k->nbuf && !r->failed; i++) k->acc[i] = cJSON_IsTrue(cJSON_GetArrayItem(acc, i));
  k->rows = inum(r, j, path, "rows", 1, (int64_t)1 << 40);
  k->cols = inum(r, j, path, "cols", 1, (int64_t)1 << 40);
  const cJSON *sc = arr(r, j, path, "scalars", 16, true);
  k->nscalar = sc ? cJSON_GetArraySize(sc) : 0;
  k->scalar = ARENA_ARRAY(p->a, float, k->nscalar + 1);
  for (int i = 0; i < k->nscalar && !r->failed; i++) {
    const cJSON *v = cJSON_GetArrayItem(sc, i);
    if (!cJSON_IsNumber(v)) fail(r, "'%s.scalars[%d]' must be a number", path, i);
    else k->scalar[i] = (float)v->valuedouble;
  }
  /* a kernel reads and writes rows x cols at most per buffer: every buffer
   * must hold a whole number of rows, one row, or one value */
  for (int i = 0; i < k->nbuf && !r->failed; i++) {
    int64_t n = ir_numel(p->g, k->buf[i]);
    if (n != k->rows * k->cols && n != k->cols && n != k->rows && n != 1) fail(r, "'%s.buffers[%d]' does not fit %lld x %lld", path, i, (long long)k->rows, (long long)k->cols);
  }
  return k;
}

static void r_actor(rd *r, const cJSON *j, const char *path, fmt_actor *a, int nreg, int nact) {
  const cJSON *kn = item(r, j, path, "kind", true);
  a->kind = FMT_NAKINDS;
  for (int i = 0; i < FMT_NAKINDS && cJSON_IsString(kn); i++)
    if (!strcmp(kn->valuestring, fmt_akind_name[i])) a->kind = (uint8_t)i;
  if (a->kind == FMT_NAKINDS) return fail(r, "'%s.kind' must name an actor kind", path);
  const fmt_prog *p = r->p;
  a->per_micro = cJSON_IsTrue(item(r, j, path, "per_micro", false));
  a->op = (int32_t)opt_inum(r, j, path, "op", -1, p->g->nop - 1, -1);
  a->tensor = (ir_ref)opt_inum(r, j, path, "tensor", -1, p->g->nt - 1, -1);
  a->peer = (int32_t)opt_inum(r, j, path, "peer", -1, p->pp - 1, -1);
  a->bucket = (int32_t)opt_inum(r, j, path, "bucket", -1, p->nbucket - 1, -1);
  a->in = int_list(r, j, path, "in", IR_MAXIN + 256, -1, nreg - 1, &a->nin);
  a->out = int_list(r, j, path, "out", FMT_MAXOUT, 0, nreg - 1, &a->nout);
  int32_t nacc;
  int32_t *acc = int_list(r, j, path, "acc", FMT_MAXOUT, -1, p->g->nt - 1, &nacc);
  for (int i = 0; i < FMT_MAXOUT; i++) a->acc[i] = i < nacc ? acc[i] : -1;
  if (nacc && nacc != a->nout) fail(r, "'%s.acc' must have one entry per output", path);
  for (int i = 0; i < nacc && !r->failed; i++)
    if (acc[i] >= 0 && p->g->t[acc[i]].kind != IR_T_PARAM) fail(r, "'%s.acc[%d]' must be a parameter", path, i);
  a->dep = int_list(r, j, path, "dep", 1 << 20, 0, nact - 1, &a->ndep);
  a->ops = int_list(r, j, path, "ops", 1 << 16, 0, p->g->nop - 1, &a->nops);
  if (a->nops == 0 && a->op >= 0) a->ops = ARENA_ARRAY(p->a, int32_t, 1), a->ops[0] = a->op, a->nops = 1;
  if (a->nops > 1 && a->ops[0] != a->op) fail(r, "'%s.ops[0]' must be its op", path);
  const cJSON *k = item(r, j, path, "kernel", false);
  if (k) a->kernel = r_kernel(r, k, path);
  bool needs_op = a->kind == FMT_A_COMPUTE || a->kind == FMT_A_COLL;
  bool needs_t = a->kind == FMT_A_SEND || a->kind == FMT_A_RECV || a->kind == FMT_A_GSEND || a->kind == FMT_A_GRECV;
  bool fetch = a->kind == FMT_A_FETCH;
  if ((needs_op && a->op < 0) || (needs_t && (a->tensor < 0 || a->peer < 0)) ||
      (!needs_op && !needs_t && !fetch && a->bucket < 0))
    fail(r, "'%s': a %s actor needs its %s", path, fmt_akind_name[a->kind], needs_op ? "op" : needs_t ? "tensor and peer" : "bucket");
  if (a->kind == FMT_A_TPREDUCE && !r->failed && (a->per_micro || p->tp < 2))
    fail(r, "'%s': a tp_reduce actor runs once per step, with tp > 1", path);
  if (fetch && !r->failed && (a->tensor < 0 || p->g->t[a->tensor].kind != IR_T_PARAM || a->nout != 1 || !a->per_micro))
    fail(r, "'%s': a fetch actor gathers one parameter into one register per micro-batch", path);
}

static void r_reg(rd *r, const cJSON *j, const char *path, fmt_reg *g, int nact, int nreg_total, int64_t arena_bytes) {
  const fmt_prog *p = r->p;
  g->tensor = (ir_ref)inum(r, j, path, "tensor", 0, p->g->nt - 1);
  g->bytes = inum(r, j, path, "bytes", 0, MAX_BYTES);
  g->regst_num = (int32_t)inum(r, j, path, "regst_num", 1, 1 << 16);
  g->producer = (int32_t)inum(r, j, path, "producer", 0, nact - 1);
  g->cons = int_list(r, j, path, "consumers", 1 << 20, 0, nact - 1, &g->ncons);
  g->view = (int32_t)opt_inum(r, j, path, "view", -1, nreg_total - 1, -1);
  g->into_acc = cJSON_IsTrue(item(r, j, path, "into_acc", false));
  const cJSON *o = arr(r, j, path, "offsets", p->micro, true);
  if (r->failed) return;
  if (g->bytes != ir_numel(p->g, g->tensor) * ir_dtype_size((ir_dtype)p->g->t[g->tensor].dtype))
    return fail(r, "'%s.bytes' is not the size of tensor %d", path, g->tensor);
  if (cJSON_GetArraySize(o) != p->micro) return fail(r, "'%s.offsets' must have one offset per micro-batch", path);
  g->offset = ARENA_ARRAY(p->a, int64_t, p->micro);
  for (int m = 0; m < p->micro; m++) {
    const cJSON *e = cJSON_GetArrayItem(o, m);
    double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    if (g->into_acc && d != 0) return fail(r, "'%s.offsets[%d]' must be 0: the register has no arena bytes (into_acc)", path, m);
    if (!g->into_acc && (!(d >= 0 && d + (double)g->bytes <= (double)arena_bytes) || d != floor(d)))
      return fail(r, "'%s.offsets[%d]' must lie inside the arena", path, m);
    g->offset[m] = (int64_t)d;
  }
  const cJSON *w = arr(r, j, path, "waits", p->micro, true);
  if (r->failed) return;
  if (cJSON_GetArraySize(w) != p->micro) return fail(r, "'%s.waits' must have one list per micro-batch", path);
  g->nwait = ARENA_ARRAY(p->a, int32_t, p->micro);
  g->wait = ARENA_ARRAY(p->a, int32_t *, p->micro);
  for (int m = 0; m < p->micro && !r->failed; m++) {
    const cJSON *e = cJSON_GetArrayItem(w, m);
    if (!cJSON_IsArray(e)) return fail(r, "'%s.waits[%d]' must be an array", path, m);
    int n = cJSON_GetArraySize(e), i = 0;
    g->nwait[m] = n;
    g->wait[m] = ARENA_ARRAY(p->a, int32_t, n + 1);
    const cJSON *x;
    cJSON_ArrayForEach(x, e) {
      double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
      if (!(d >= 0 && d < (double)nreg_total * p->micro) || d != floor(d)) return fail(r, "'%s.waits[%d]' holds an instance out of range", path, m);
      g->wait[m][i++] = (int32_t)d;
    }
  }
}

/* the bytes a rank needs for persistent tensor q: a 1/dp slice when ZeRO
 * shards its role (state from stage 1, gradients from 2, parameters at 3) */
static int64_t pers_need(const fmt_prog *p, const fmt_pers *q) {
  int64_t dp = (int64_t)p->dp * p->sp, n = ir_numel(p->g, q->tensor), chunk = (n + dp - 1) / dp;
  int from = q->role == FMT_P_PARAM ? 3 : q->role == FMT_P_GRAD ? 2 : 1;
  return 4 * (dp > 1 && p->zero >= from ? chunk : n);
}

static void r_pers(rd *r, const cJSON *j, const char *path, fmt_pers *q, int64_t total) {
  q->tensor = (ir_ref)inum(r, j, path, "tensor", 0, r->p->g->nt - 1);
  const cJSON *ro = item(r, j, path, "role", true);
  const char *roles[] = {"param", "grad", "exp_avg", "exp_avg_sq"};
  q->role = 255;
  for (int i = 0; i < 4 && cJSON_IsString(ro); i++)
    if (!strcmp(ro->valuestring, roles[i])) q->role = (uint8_t)i;
  if (q->role == 255) fail(r, "'%s.role' must be param, grad, exp_avg or exp_avg_sq", path);
  q->bytes = inum(r, j, path, "bytes", 0, MAX_BYTES);
  q->offset = inum(r, j, path, "offset", 0, MAX_BYTES);
  if (!r->failed && q->offset + q->bytes > total) fail(r, "'%s' lies outside the persistent arena", path);
  if (!r->failed && q->bytes > ir_numel(r->p->g, q->tensor) * 4 + 64) fail(r, "'%s.bytes' exceeds its tensor", path);
  if (!r->failed && q->bytes < pers_need(r->p, q)) fail(r, "'%s.bytes' is less than the layout holds", path);
}

/* register i's view: a reshape's output sharing its input register's
 * bytes (a lower index, so no cycle; the same size and offsets; nothing
 * to wait for) */
static void r_view(rd *r, const fmt_stage *st, int i, const char *path) {
  const fmt_reg *g = &st->reg[i], *v = &st->reg[g->view];
  const fmt_actor *a = &st->act[g->producer];
  const ir_graph *G = r->p->g;
  if (g->view >= i) return fail(r, "'%s.view' must name an earlier register", path);
  if (v->into_acc || v->bytes != g->bytes) return fail(r, "'%s.view' must name a register of its size in the arena", path);
  if (a->kind != FMT_A_COMPUTE || a->kernel || a->nops != 1 || G->op[a->op].kind != IR_OP_RESHAPE || a->nin < 1 ||
      a->in[0] != g->view || a->nout != 1 || a->out[0] != i || a->acc[0] >= 0)
    return fail(r, "'%s.view': its producer must be a reshape of that register", path);
  for (int m = 0; m < r->p->micro; m++) {
    if (g->offset[m] != v->offset[m]) return fail(r, "'%s.offsets[%d]' must be its view's", path, m);
    if (g->nwait[m]) return fail(r, "'%s.waits[%d]' must be empty: a view takes no bytes", path, m);
  }
}

/* register i written into its producer's accumulator: a plain matmul of
 * 2-D tensors, nobody reads the register, and the stage holds the whole
 * accumulator of the parameter the actor's acc names for it */
static void r_into_acc(rd *r, const fmt_stage *st, int i, const char *path) {
  const fmt_reg *g = &st->reg[i];
  const fmt_actor *a = &st->act[g->producer];
  const ir_graph *G = r->p->g;
  int j = 0;
  while (j < a->nout && a->out[j] != i) j++;
  const ir_op *o = a->kind == FMT_A_COMPUTE && a->op >= 0 ? &G->op[a->op] : NULL;
  if (!o || a->kernel || a->nops != 1 || o->kind != IR_OP_MATMUL || j >= a->nout || a->acc[j] < 0 || g->ncons ||
      G->t[o->in[0]].rank != 2 || G->t[o->in[1]].rank != 2 || G->t[o->out[0]].rank != 2 || G->t[o->out[0]].dtype != IR_F32)
    return fail(r, "'%s.into_acc': its producer must be a 2-D matmul whose output only goes to its accumulator", path);
  int64_t A[2], B[2], Y[2];
  for (int d = 0; d < 2; d++)
    A[d] = ir_dim_eval(G->t[o->in[0]].shape[d], G->bind_b, G->bind_s), B[d] = ir_dim_eval(G->t[o->in[1]].shape[d], G->bind_b, G->bind_s),
    Y[d] = ir_dim_eval(G->t[o->out[0]].shape[d], G->bind_b, G->bind_s);
  bool ta = o->at.trans_a, tb = o->at.trans_b;
  if (A[ta ? 1 : 0] != Y[0] || B[tb ? 0 : 1] != Y[1] || A[ta ? 0 : 1] != B[tb ? 1 : 0])
    return fail(r, "'%s.into_acc': its matmul's shapes do not agree", path);
  for (int k = 0; k < st->npers; k++)
    if (st->pers[k].role == FMT_P_GRAD && st->pers[k].tensor == a->acc[j] && st->pers[k].bytes >= g->bytes) return;
  fail(r, "'%s.into_acc': the stage holds no whole accumulator of parameter %d", path, a->acc[j]);
}

static void r_alias(rd *r, const fmt_stage *st, int i, const char *path) {
  if (st->reg[i].view >= 0 && st->reg[i].into_acc) return fail(r, "'%s': a view cannot be into_acc", path);
  if (st->reg[i].view >= 0) r_view(r, st, i, path);
  if (st->reg[i].into_acc) r_into_acc(r, st, i, path);
}

static void r_stage(rd *r, const cJSON *j, int s, fmt_stage *st) {
  char path[64];
  snprintf(path, sizeof path, "stages[%d]", s);
  fmt_prog *p = r->p;
  const cJSON *as = arr(r, j, path, "actors", MAX_ITEMS, true), *rs = arr(r, j, path, "registers", MAX_ITEMS, true);
  const cJSON *sc = arr(r, j, path, "schedule", MAX_ITEMS, true), *ps = arr(r, j, path, "persistent", MAX_ITEMS, true);
  st->arena_bytes = inum(r, j, path, "arena_bytes", 0, MAX_BYTES);
  st->persist_bytes = inum(r, j, path, "persistent_bytes", 0, MAX_BYTES);
  if (r->failed) return;
  st->nact = cJSON_GetArraySize(as), st->nreg = cJSON_GetArraySize(rs);
  st->nsched = cJSON_GetArraySize(sc), st->npers = cJSON_GetArraySize(ps);
  st->act = ARENA_ARRAY(p->a, fmt_actor, st->nact + 1);
  st->reg = ARENA_ARRAY(p->a, fmt_reg, st->nreg + 1);
  st->sched = ARENA_ARRAY(p->a, fmt_step, st->nsched + 1);
  st->pers = ARENA_ARRAY(p->a, fmt_pers, st->npers + 1);
  char ip[96];
  for (int i = 0; i < st->nact && !r->failed; i++)
    snprintf(ip, sizeof ip, "%s.actors[%d]", path, i), r_actor(r, cJSON_GetArrayItem(as, i), ip, &st->act[i], st->nreg, st->nact);
  for (int i = 0; i < st->nreg && !r->failed; i++)
    snprintf(ip, sizeof ip, "%s.registers[%d]", path, i), r_reg(r, cJSON_GetArrayItem(rs, i), ip, &st->reg[i], st->nact, st->nreg, st->arena_bytes);
  for (int i = 0; i < st->nact && !r->failed; i++)
    if (st->act[i].kind == FMT_A_FETCH && st->reg[st->act[i].out[0]].tensor != st->act[i].tensor)
      fail(r, "'%s.actors[%d]': a fetch actor's register must hold its parameter", path, i);
  for (int i = 0; i < st->npers && !r->failed; i++)
    snprintf(ip, sizeof ip, "%s.persistent[%d]", path, i), r_pers(r, cJSON_GetArrayItem(ps, i), ip, &st->pers[i], st->persist_bytes);
  for (int i = 0; i < st->nreg && !r->failed; i++) snprintf(ip, sizeof ip, "%s.registers[%d]", path, i), r_alias(r, st, i, ip);
  for (int i = 0; i < st->nsched && !r->failed; i++) {
    const cJSON *e = cJSON_GetArrayItem(sc, i);
    const cJSON *a = cJSON_GetArrayItem(e, 0), *m = cJSON_GetArrayItem(e, 1);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(a) || !cJSON_IsNumber(m) ||
        !(a->valuedouble >= 0 && a->valuedouble < st->nact) || !(m->valuedouble >= 0 && m->valuedouble < p->micro))
      fail(r, "'%s.schedule[%d]' must be [actor, micro-batch] in range", path, i);
    else st->sched[i].actor = (int32_t)a->valuedouble, st->sched[i].micro = (int32_t)m->valuedouble;
  }
}

static void r_param(rd *r, const cJSON *j, int i, fmt_param *q) {
  char path[48];
  snprintf(path, sizeof path, "params[%d]", i);
  const fmt_prog *p = r->p;
  q->name = str(r, j, path, "name");
  q->tensor = (ir_ref)inum(r, j, path, "tensor", 0, p->g->nt - 1);
  const cJSON *sh = arr(r, j, path, "shape", IR_MAXRANK, true);
  q->rank = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, sh) q->shape[q->rank++] = cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 1e15 ? (int64_t)e->valuedouble : -1;
  q->split = (int32_t)inum(r, j, path, "split", -1, IR_MAXRANK - 1);
  q->groups = (int32_t)inum(r, j, path, "groups", 1, 64);
  int32_t n;
  int32_t *st = int_list(r, j, path, "stages", 64, 0, p->pp - 1, &n);
  for (int k = 0; k < n; k++) q->stages |= 1ull << st[k];
  q->exp_avg = (ir_ref)inum(r, j, path, "exp_avg", -1, p->g->nt - 1);
  q->exp_avg_sq = (ir_ref)inum(r, j, path, "exp_avg_sq", -1, p->g->nt - 1);
  q->grad = (ir_ref)inum(r, j, path, "grad", -1, p->g->nt - 1);
  q->adamw = (int32_t)inum(r, j, path, "adamw", -1, p->g->nop - 1);
  q->grad_stage = (int32_t)inum(r, j, path, "grad_stage", -1, p->pp - 1);
  q->bucket = (int32_t)inum(r, j, path, "bucket", -1, MAX_ITEMS);
  if (r->failed) return;
  const ir_tensor *t = &p->g->t[q->tensor];
  int64_t logical = 1, local = ir_numel(p->g, q->tensor);
  for (int k = 0; k < q->rank; k++) logical *= q->shape[k] < 0 ? 0 : q->shape[k];
  if (t->kind != IR_T_PARAM || q->rank != t->rank || logical != local * (q->split >= 0 ? p->tp : 1) ||
      (q->split >= 0 && q->split >= t->rank))
    fail(r, "'%s': the layout does not match parameter tensor %d", path, q->tensor);
}

static void r_layout(rd *r, const cJSON *root) {
  fmt_prog *p = r->p;
  const cJSON *l = item(r, root, "", "layout", true);
  p->dp = (int32_t)inum(r, l, "layout", "dp", 1, 1 << 16);
  p->tp = (int32_t)inum(r, l, "layout", "tp", 1, 1 << 16);
  p->pp = (int32_t)inum(r, l, "layout", "pp", 1, 64);
  p->micro = (int32_t)inum(r, l, "layout", "micro", 1, 1 << 16);
  p->zero = (int32_t)inum(r, l, "layout", "zero", 0, 3);
  p->recompute = (int32_t)inum(r, l, "layout", "recompute", 0, 2);
  p->vpp = (int32_t)opt_inum(r, l, "layout", "vpp", 1, 64, 1);
  p->sp = (int32_t)opt_inum(r, l, "layout", "sp", 1, 1 << 10, 1);
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(l, "sp_kind");
  int kind = k ? fmt_spkind_parse(cJSON_IsString(k) ? k->valuestring : NULL) : FMT_SP_ULYSSES;
  if (!r->failed && kind < 0) fail(r, "'layout.sp_kind' must be \"ulysses\" or \"ring\"");
  p->sp_kind = (uint8_t)(kind < 0 ? FMT_SP_ULYSSES : kind);
  if (!r->failed && p->sp > 1 && p->tp > 1) fail(r, "'layout': sequence parallelism needs tp 1");
  const cJSON *pk = cJSON_GetObjectItemCaseSensitive(l, "packed");
  if (!r->failed && pk && !cJSON_IsBool(pk)) fail(r, "'layout.packed' must be true or false");
  p->packed = cJSON_IsTrue(pk);
  const cJSON *ad = cJSON_GetObjectItemCaseSensitive(l, "adaptive_sp");
  if (!r->failed && ad && !cJSON_IsBool(ad)) fail(r, "'layout.adaptive_sp' must be true or false");
  p->adaptive = cJSON_IsTrue(ad);
  if (!r->failed && p->adaptive && (!p->packed || p->sp < 2 || p->sp_kind != FMT_SP_ULYSSES || p->dp != 1 || p->pp != 1 ||
                                p->zero > 1))
    fail(r, "'layout.adaptive_sp' needs a packed Ulysses program with sp > 1, dp 1, pp 1 and zero 0 or 1");
  p->global_batch = inum(r, root, "", "global_batch", 1, (int64_t)1 << 28);
  p->seq = inum(r, root, "", "seq", 1, (int64_t)1 << 28);
  p->micro_batch = inum(r, root, "", "micro_batch", 1, (int64_t)1 << 28);
  p->predicted_peak = inum(r, root, "", "predicted_peak_bytes", 0, MAX_BYTES);
  if (!r->failed && !p->adaptive && p->micro_batch * p->micro * p->dp != p->global_batch)
    fail(r, "'micro_batch' x 'layout.micro' x 'layout.dp' must equal 'global_batch'");
  if (!r->failed && p->adaptive && p->micro_batch != 1) fail(r, "'micro_batch' must be 1 under 'layout.adaptive_sp'");
  if (!r->failed && (int64_t)p->dp * p->tp * p->pp * p->sp > (1 << 20)) fail(r, "'layout': too many ranks");
}

static void r_buckets(rd *r, const cJSON *root) {
  fmt_prog *p = r->p;
  const cJSON *bs = arr(r, root, "", "buckets", MAX_ITEMS, true);
  p->nbucket = bs ? cJSON_GetArraySize(bs) : 0;
  p->bucket = ARENA_ARRAY(p->a, fmt_bucket, p->nbucket + 1);
  for (int i = 0; i < p->nbucket && !r->failed; i++) {
    char path[40];
    snprintf(path, sizeof path, "buckets[%d]", i);
    const cJSON *e = cJSON_GetArrayItem(bs, i);
    p->bucket[i].stage = (int32_t)inum(r, e, path, "stage", 0, p->pp - 1);
    p->bucket[i].param = int_list(r, e, path, "params", MAX_ITEMS, 0, p->nparam - 1, &p->bucket[i].nparam);
  }
}

static void r_root(rd *r, const cJSON *root) {
  fmt_prog *p = r->p;
  const cJSON *f = item(r, root, "", "format", true);
  if (!cJSON_IsString(f) || strcmp(f->valuestring, "sbpc-program")) return fail(r, "'format' must be \"sbpc-program\"");
  if (inum(r, root, "", "version", 0, 1 << 20) != FMT_PROG_VERSION && !r->failed)
    return fail(r, "'version' must be %d (this sbpc reads version %d only)", FMT_PROG_VERSION, FMT_PROG_VERSION);
  p->model = str(r, root, "", "model");
  const cJSON *h = item(r, root, "", "model_hash", true);
  if (cJSON_IsString(h)) p->model_hash = strtoull(h->valuestring, NULL, 16);
  r_layout(r, root);
  if (r->failed) return;
  r_graph(r, item(r, root, "", "graph", true));
  if (r->failed) return;
  const cJSON *ps = arr(r, root, "", "params", MAX_ITEMS, true);
  p->nparam = ps ? cJSON_GetArraySize(ps) : 0;
  p->param = ARENA_ARRAY(p->a, fmt_param, p->nparam + 1);
  for (int i = 0; i < p->nparam && !r->failed; i++) r_param(r, cJSON_GetArrayItem(ps, i), i, &p->param[i]);
  r_buckets(r, root);
  const cJSON *ss = arr(r, root, "", "stages", 64, true);
  if (!r->failed && cJSON_GetArraySize(ss) != p->pp) fail(r, "'stages' must have one entry per pipeline stage");
  if (r->failed) return;
  p->nstage = p->pp;
  p->stage = ARENA_ARRAY(p->a, fmt_stage, p->nstage);
  for (int s = 0; s < p->nstage && !r->failed; s++) r_stage(r, cJSON_GetArrayItem(ss, s), s, &p->stage[s]);
  const cJSON *gj = item(r, root, "", "gpu", false);
  if (gj && !r->failed) r_gpu(r, gj); /* the GPU part (below) */
}

fmt_prog *fmt_prog_parse(const char *text, size_t len, char *err, size_t errlen) {
  rd r = {err, errlen, false, fmt_prog_new()};
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (!root || !cJSON_IsObject(root)) fail(&r, "not a JSON object");
  else r_root(&r, root);
  cJSON_Delete(root);
  diag d;
  diag_init(&d, "program", NULL, 0);
  d.out = NULL;
  if (!r.failed) {
    FILE *null = getenv("SBPC_DEBUG_VERIFY") ? NULL : fopen("/dev/null", "w");
    d.out = null ? null : stderr;
    if (!ir_verify_local(r.p->g, (int64_t)r.p->tp * r.p->sp, &d))
      fail(&r, "the graph is not well formed (an op reads a tensor no earlier op makes, a tensor is made twice, or an "
               "op's shapes do not fit its inputs)");
    if (null) fclose(null);
  }
  if (r.failed) {
    fmt_prog_free(r.p);
    return NULL;
  }
  return r.p;
}

fmt_prog *fmt_prog_read(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/program.json", dir);
  size_t len;
  char *text = read_file(path, (size_t)1 << 31, &len);
  if (!text) return NULL;
  char err[512];
  fmt_prog *p = fmt_prog_parse(text, len, err, sizeof err);
  free(text);
  if (!p) diag_file_error(path, "%s", err);
  return p;
}

/* ---- the GPU part (fmt_gpu; written by lower/gpu.c, docs/gpu.md) ----------------
 * Additive: a program without "gpu" is a CPU program. The reader checks every
 * index (module, entry, op slot, stream, parameter tensor) and that the
 * working copies lie inside their region, so a hostile file cannot make the
 * device executor bind a buffer that does not exist. */
const char *const fmt_gkind_name[FMT_NGKINDS] = {"host", "row", "kernel", "attn_fwd", "attn_bwd", "gemm", "copy", "none"};

static cJSON *w_gop(const fmt_gop *o) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "kind", fmt_gkind_name[o->kind]);
  if (o->module >= 0) cJSON_AddNumberToObject(j, "module", o->module);
  if (o->grid) cJSON_AddNumberToObject(j, "grid", (double)o->grid), cJSON_AddNumberToObject(j, "block", o->block);
  if (o->nbind) {
    int32_t b[FMT_G_MAXBIND];
    for (int i = 0; i < o->nbind; i++) b[i] = o->bind[i];
    cJSON_AddItemToObject(j, "bind", ints(b, o->nbind));
  }
  if (o->nscalar) {
    cJSON *a = cJSON_AddArrayToObject(j, "scalars");
    for (int i = 0; i < o->nscalar; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(o->scalar[i]));
  }
  int n = FMT_G_NARG;
  while (n > 0 && o->arg[n - 1] == 0) n--;
  if (n) cJSON_AddItemToObject(j, "args", i64s(o->arg, n));
  if (o->zero) cJSON_AddNumberToObject(j, "zero", o->zero);
  if (o->work) cJSON_AddNumberToObject(j, "work", o->work);
  if (o->loss_scale) cJSON_AddTrueToObject(j, "loss_scale");
  return j;
}

static cJSON *w_gstage(const fmt_prog *p, const fmt_stage *st, const fmt_gstage *g) {
  cJSON *j = cJSON_CreateObject(), *s = cJSON_AddArrayToObject(j, "streams"), *w = cJSON_AddArrayToObject(j, "work");
  cJSON *o = cJSON_AddArrayToObject(j, "offsets");
  for (int r = 0; r < st->nreg; r++) cJSON_AddItemToArray(o, i64s(g->offset[r], p->micro));
  cJSON_AddNumberToObject(j, "arena_bytes", (double)g->arena_bytes);
  for (int a = 0; a < st->nact; a++) cJSON_AddItemToArray(s, cJSON_CreateNumber(g->stream[a]));
  for (int i = 0; i < g->nwork; i++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "tensor", g->work[i].tensor);
    cJSON_AddNumberToObject(x, "offset", (double)g->work[i].offset);
    cJSON_AddNumberToObject(x, "bytes", (double)g->work[i].bytes);
    cJSON_AddItemToArray(w, x);
  }
  cJSON_AddNumberToObject(j, "work_bytes", (double)g->work_bytes);
  cJSON_AddNumberToObject(j, "scratch_bytes", (double)g->scratch_bytes);
  return j;
}

static cJSON *w_gpu(const fmt_prog *p) {
  const fmt_gpu *G = p->gpu;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "precision", ir_dtype_name((ir_dtype)G->precision));
  cJSON_AddNumberToObject(j, "predicted_peak_bytes", (double)G->predicted_peak);
  cJSON *ms = cJSON_AddArrayToObject(j, "modules");
  for (int i = 0; i < G->nmod; i++) {
    cJSON *m = cJSON_CreateObject(), *e = cJSON_AddArrayToObject(m, "entries");
    char h[24];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)G->mod[i].hash);
    cJSON_AddStringToObject(m, "name", G->mod[i].name);
    cJSON_AddStringToObject(m, "hash", h);
    for (int k = 0; k < G->mod[i].nentry; k++) cJSON_AddItemToArray(e, cJSON_CreateString(G->mod[i].entry[k]));
    cJSON_AddStringToObject(m, "cuda", G->mod[i].cuda);
    cJSON_AddItemToArray(ms, m);
  }
  cJSON *os = cJSON_AddArrayToObject(j, "ops");
  for (int k = 0; k < p->g->nop; k++) cJSON_AddItemToArray(os, w_gop(&G->op[k]));
  cJSON *ss = cJSON_AddArrayToObject(j, "stages");
  for (int s = 0; s < p->nstage; s++) cJSON_AddItemToArray(ss, w_gstage(p, &p->stage[s], &G->stage[s]));
  cJSON *dt = cJSON_AddArrayToObject(j, "dtypes");
  for (int t = 0; t < p->g->nt; t++) cJSON_AddItemToArray(dt, cJSON_CreateString(ir_dtype_name((ir_dtype)G->dtype[t])));
  return j;
}

static void r_gmod(rd *r, const cJSON *j, const char *path, fmt_gmod *m) {
  m->name = str(r, j, path, "name");
  m->cuda = str(r, j, path, "cuda");
  const cJSON *h = item(r, j, path, "hash", true);
  if (cJSON_IsString(h)) m->hash = strtoull(h->valuestring, NULL, 16);
  const cJSON *es = arr(r, j, path, "entries", 16, true);
  m->nentry = es ? cJSON_GetArraySize(es) : 0;
  m->entry = ARENA_ARRAY(r->p->a, const char *, m->nentry + 1);
  for (int k = 0; k < m->nentry && !r->failed; k++) {
    const cJSON *e = cJSON_GetArrayItem(es, k);
    if (!cJSON_IsString(e) || !*e->valuestring) fail(r, "'%s.entries[%d]' must be a name", path, k);
    else m->entry[k] = arena_strdup(r->p->a, e->valuestring);
  }
  for (const char *c = m->name; *c && !r->failed; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
      fail(r, "'%s.name' must be a plain identifier (it names files in DIR/gpu)", path);
}

static void r_gop(rd *r, const cJSON *j, const char *path, fmt_gop *o, const ir_op *op) {
  const cJSON *k = item(r, j, path, "kind", true);
  o->kind = 255;
  for (int i = 0; i < FMT_NGKINDS && cJSON_IsString(k); i++)
    if (!strcmp(k->valuestring, fmt_gkind_name[i])) o->kind = (uint8_t)i;
  if (o->kind == 255) return fail(r, "'%s.kind' must be a GPU kernel kind", path);
  o->module = (int32_t)opt_inum(r, j, path, "module", 0, r->p->gpu->nmod - 1, -1);
  o->grid = opt_inum(r, j, path, "grid", 0, (int64_t)1 << 31, 0);
  o->block = (int32_t)opt_inum(r, j, path, "block", 0, 1024, 0);
  int32_t n = 0, *b = int_list(r, j, path, "bind", FMT_G_MAXBIND, -op->nout, op->nin - 1, &n);
  o->nbind = n;
  for (int i = 0; i < n; i++) o->bind[i] = (int8_t)b[i];
  const cJSON *sc = arr(r, j, path, "scalars", FMT_G_MAXSCALAR, false);
  const cJSON *e;
  cJSON_ArrayForEach(e, sc) o->scalar[o->nscalar++] = cJSON_IsNumber(e) ? (float)e->valuedouble : 0.0f;
  const cJSON *as = arr(r, j, path, "args", FMT_G_NARG, false);
  int i = 0;
  cJSON_ArrayForEach(e, as) o->arg[i++] = cJSON_IsNumber(e) && fabs(e->valuedouble) < 1e15 ? (int64_t)e->valuedouble : 0;
  o->zero = (uint32_t)opt_inum(r, j, path, "zero", 0, (1 << IR_MAXOUT) - 1, 0);
  o->work = (uint32_t)opt_inum(r, j, path, "work", 0, (1 << IR_MAXIN) - 1, 0);
  const cJSON *ls = item(r, j, path, "loss_scale", false);
  o->loss_scale = cJSON_IsTrue(ls);
  bool needs_mod = o->kind == FMT_G_ROW || o->kind == FMT_G_KERNEL || o->kind == FMT_G_ATTN_FWD || o->kind == FMT_G_ATTN_BWD;
  if (!r->failed && needs_mod && o->module < 0) fail(r, "'%s' needs a module", path);
}

static void r_gstage(rd *r, const cJSON *j, const char *path, const fmt_stage *st, fmt_gstage *g) {
  int32_t n = 0;
  int32_t *s = int_list(r, j, path, "streams", MAX_ITEMS, 0, FMT_NSTREAMS - 1, &n);
  if (!r->failed && n != st->nact) return fail(r, "'%s.streams' must have one entry per actor", path);
  g->stream = ARENA_ARRAY(r->p->a, uint8_t, n + 1);
  for (int a = 0; a < n; a++) g->stream[a] = (uint8_t)s[a];
  g->work_bytes = inum(r, j, path, "work_bytes", 0, MAX_BYTES);
  g->scratch_bytes = inum(r, j, path, "scratch_bytes", 0, MAX_BYTES);
  g->arena_bytes = inum(r, j, path, "arena_bytes", 0, MAX_BYTES);
  const cJSON *os = arr(r, j, path, "offsets", MAX_ITEMS, true);
  if (!r->failed && cJSON_GetArraySize(os) != st->nreg) return fail(r, "'%s.offsets' must have one entry per register", path);
  g->offset = ARENA_ARRAY(r->p->a, int64_t *, st->nreg + 1);
  for (int i = 0; i < st->nreg && !r->failed; i++) {
    const cJSON *e = cJSON_GetArrayItem(os, i), *x;
    const fmt_reg *rg = &st->reg[i];
    int64_t bytes = ir_numel(r->p->g, rg->tensor) * ir_dtype_size((ir_dtype)r->p->gpu->dtype[rg->tensor]);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != r->p->micro) return fail(r, "'%s.offsets[%d]' must have one offset per micro-batch", path, i);
    g->offset[i] = ARENA_ARRAY(r->p->a, int64_t, r->p->micro);
    int m = 0;
    cJSON_ArrayForEach(x, e) {
      double d = cJSON_IsNumber(x) ? x->valuedouble : -1;
      if (!(d >= 0 && d + (double)bytes <= (double)g->arena_bytes) || d != floor(d))
        return fail(r, "'%s.offsets[%d][%d]' must lie inside the device arena", path, i, m);
      g->offset[i][m++] = (int64_t)d;
    }
  }
  const cJSON *ws = arr(r, j, path, "work", MAX_ITEMS, true);
  g->nwork = ws ? cJSON_GetArraySize(ws) : 0;
  g->work = ARENA_ARRAY(r->p->a, fmt_gwork, g->nwork + 1);
  for (int i = 0; i < g->nwork && !r->failed; i++) {
    char wp[96];
    snprintf(wp, sizeof wp, "%s.work[%d]", path, i);
    const cJSON *w = cJSON_GetArrayItem(ws, i);
    fmt_gwork *q = &g->work[i];
    q->tensor = (ir_ref)inum(r, w, wp, "tensor", 0, r->p->g->nt - 1);
    q->offset = inum(r, w, wp, "offset", 0, MAX_BYTES);
    q->bytes = inum(r, w, wp, "bytes", 0, MAX_BYTES);
    if (r->failed) return;
    if (r->p->g->t[q->tensor].kind != IR_T_PARAM || q->bytes != ir_numel(r->p->g, q->tensor) * 2 ||
        q->offset + q->bytes > g->work_bytes)
      fail(r, "'%s' is not a parameter's 16-bit copy inside the working-copy region", wp);
  }
}

static void r_gpu(rd *r, const cJSON *j) {
  fmt_prog *p = r->p;
  fmt_gpu *G = p->gpu = ARENA_NEW(p->a, fmt_gpu);
  const cJSON *pr = item(r, j, "gpu", "precision", true);
  int d = cJSON_IsString(pr) ? ir_dtype_parse(pr->valuestring) : -1;
  if (d != IR_F32 && d != IR_BF16 && d != IR_F16) return fail(r, "'gpu.precision' must be f32, bf16 or f16");
  G->precision = (uint8_t)d;
  G->predicted_peak = inum(r, j, "gpu", "predicted_peak_bytes", 0, MAX_BYTES);
  const cJSON *ms = arr(r, j, "gpu", "modules", MAX_ITEMS, true), *os = arr(r, j, "gpu", "ops", MAX_ITEMS, true);
  const cJSON *ss = arr(r, j, "gpu", "stages", 64, true);
  if (r->failed) return;
  if (cJSON_GetArraySize(os) != p->g->nop || cJSON_GetArraySize(ss) != p->nstage || cJSON_GetArraySize(ms) < 1)
    return fail(r, "'gpu' must have one op per graph op, one stage per stage and the executor's module");
  G->nmod = cJSON_GetArraySize(ms);
  G->mod = ARENA_ARRAY(p->a, fmt_gmod, G->nmod);
  G->op = ARENA_ARRAY(p->a, fmt_gop, p->g->nop + 1);
  G->stage = ARENA_ARRAY(p->a, fmt_gstage, p->nstage);
  G->dtype = ARENA_ARRAY(p->a, uint8_t, p->g->nt + 1);
  const cJSON *ds = arr(r, j, "gpu", "dtypes", MAX_ITEMS, true), *e;
  if (!r->failed && cJSON_GetArraySize(ds) != p->g->nt) return fail(r, "'gpu.dtypes' must have one dtype per tensor");
  int t = 0;
  cJSON_ArrayForEach(e, ds) {
    int d = cJSON_IsString(e) ? ir_dtype_parse(e->valuestring) : -1;
    bool same_kind = d >= 0 && (d == p->g->t[t].dtype || (p->g->t[t].dtype == IR_F32 && (d == IR_BF16 || d == IR_F16)));
    if (!same_kind) return fail(r, "'gpu.dtypes[%d]' must be the tensor's dtype or its 16-bit form", t);
    G->dtype[t++] = (uint8_t)d;
  }
  char path[64];
  for (int i = 0; i < G->nmod && !r->failed; i++)
    snprintf(path, sizeof path, "gpu.modules[%d]", i), r_gmod(r, cJSON_GetArrayItem(ms, i), path, &G->mod[i]);
  for (int k = 0; k < p->g->nop && !r->failed; k++)
    snprintf(path, sizeof path, "gpu.ops[%d]", k), r_gop(r, cJSON_GetArrayItem(os, k), path, &G->op[k], &p->g->op[k]);
  for (int s = 0; s < p->nstage && !r->failed; s++)
    snprintf(path, sizeof path, "gpu.stages[%d]", s), r_gstage(r, cJSON_GetArrayItem(ss, s), path, &p->stage[s], &G->stage[s]);
}
