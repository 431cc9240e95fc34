/* plan.c — the one plan JSON reader (format/; runtime, compile and export all read plans here) behind sbpc_plan.h (libsbpc's C API).
 *
 * cJSON parses the text; this file walks the tree into the sbpc_plan structs,
 * all carved from one arena owned by the plan. Every field access goes through
 * small checked getters that record the first problem (with the JSON path of
 * the offending field) in a context and return a harmless default, so the walk
 * reads straight through and the caller checks once at the end. Sizes are
 * bounded before anything is allocated (stages <= pp <= devices, device lists
 * <= MAX_DEVICES, ops and boxing by the array length cJSON already holds), so
 * hostile input cannot make the reader allocate more than a small multiple of
 * its own size. Semantics checked: format and version, degrees positive and
 * multiplying to the device count, stages contiguous and covering the layers,
 * device ids in range, recompute and ZeRO values known, the architecture's
 * names known and its kv heads dividing the heads. */
#include "format/sbpc_plan.h"
#include "util/arena.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEVICES (1 << 22)
#define MAX_DEGREE (1 << 22)
#define MAX_LAYERS (1 << 20)

typedef struct {
  arena *a;
  char *err;
  size_t errlen;
  int failed;
} rd;

static void fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(rd *r, const char *fmt, ...) {
  if (r->failed) return;
  r->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  if (r->err && r->errlen) vsnprintf(r->err, r->errlen, fmt, ap);
  va_end(ap);
}

/* num: the number at obj.key; def when absent; fails when present but not a
 * finite number. */
static double num(rd *r, const cJSON *obj, const char *path, const char *key, double def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return def;
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
    fail(r, "'%s.%s' must be a number", path, key);
    return def;
  }
  return v->valuedouble;
}

/* integer: an integer in [lo, hi] at obj.key; def when absent (if def is in
 * range, else the field is required). */
static int integer(rd *r, const cJSON *obj, const char *path, const char *key, int def, int lo, int hi) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) {
    if (def < lo || def > hi) fail(r, "missing '%s.%s'", path, key);
    return def;
  }
  double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
  if (!(d >= lo && d <= hi) || d != floor(d)) {
    fail(r, "'%s.%s' must be an integer in [%d, %d]", path, key, lo, hi);
    return lo;
  }
  return (int)d;
}

/* str: the string at obj.key copied into the arena; def when absent. */
static const char *str(rd *r, const cJSON *obj, const char *path, const char *key, const char *def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return def;
  if (!cJSON_IsString(v)) {
    fail(r, "'%s.%s' must be a string", path, key);
    return def;
  }
  return arena_strdup(r->a, v->valuestring);
}

static const cJSON *object(rd *r, const cJSON *obj, const char *key, int required) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    if (required) fail(r, "missing object '%s'", key);
    return NULL;
  }
  if (!cJSON_IsObject(v)) {
    fail(r, "'%s' must be an object", key);
    return NULL;
  }
  return v;
}

static const cJSON *array(rd *r, const cJSON *obj, const char *path, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return NULL;
  if (!cJSON_IsArray(v)) {
    fail(r, "'%s%s%s' must be an array", path, *path ? "." : "", key);
    return NULL;
  }
  return v;
}

/* boolean: 1/0 at obj.key, -1 when absent. */
static int boolean(rd *r, const cJSON *obj, const char *path, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return -1;
  if (!cJSON_IsBool(v)) fail(r, "'%s.%s' must be true or false", path, key);
  return cJSON_IsTrue(v);
}

/* one_of: the string at obj.key when it is one of the NULL-terminated names
 * (the arena copy of it), NULL when absent; anything else fails. */
static const char *one_of(rd *r, const cJSON *obj, const char *path, const char *key, const char *const *names) {
  const char *s = str(r, obj, path, key, NULL);
  for (int i = 0; s && names[i]; i++)
    if (!strcmp(s, names[i])) return names[i];
  if (s) fail(r, "'%s.%s' has an unknown value", path, key);
  return NULL;
}

static void read_arch(rd *r, sbpc_plan *p, const cJSON *m) {
  static const char *const norms[] = {"layer_norm", "rms_norm", NULL};
  static const char *const acts[] = {"gelu", "gelu_tanh", "swiglu", "silu", NULL};
  static const char *const pos[] = {"learned", "rotary", "none", NULL};
  p->kv_heads = integer(r, m, "model", "kv_heads", 0, 0, 1 << 20);
  p->norm = one_of(r, m, "model", "norm", norms);
  p->activation = one_of(r, m, "model", "activation", acts);
  p->position = one_of(r, m, "model", "position", pos);
  p->norm_eps = num(r, m, "model", "norm_eps", -1);
  p->rotary_theta = num(r, m, "model", "rotary_theta", -1);
  p->dropout = num(r, m, "model", "dropout", -1);
  if ((p->norm_eps < 0 && p->norm_eps != -1) || p->norm_eps >= 1 || (p->rotary_theta < 0 && p->rotary_theta != -1) ||
      (p->dropout < 0 && p->dropout != -1) || p->dropout >= 1)
    fail(r, "'model.norm_eps', 'model.rotary_theta' or 'model.dropout' is out of range");
  p->linear_bias = boolean(r, m, "model", "linear_bias");
  p->tied_embeddings = boolean(r, m, "model", "tied_embeddings");
  if (p->kv_heads && p->heads && p->heads % p->kv_heads)
    fail(r, "'model.kv_heads' (%d) does not divide 'model.heads' (%d)", p->kv_heads, p->heads);
}

static void read_model(rd *r, sbpc_plan *p, const cJSON *m) {
  p->model_name = str(r, m, "model", "name", "model");
  p->params = num(r, m, "model", "params", -1);
  p->layers = integer(r, m, "model", "layers", -1, 1, MAX_LAYERS);
  p->hidden = integer(r, m, "model", "hidden", 0, 0, 1 << 28);
  p->heads = integer(r, m, "model", "heads", 0, 0, 1 << 20);
  p->ffn = integer(r, m, "model", "ffn", 0, 0, 1 << 28);
  p->vocab = integer(r, m, "model", "vocab", 0, 0, 1 << 28);
  p->seq = p->positions = integer(r, m, "model", "seq", 0, 0, 1 << 28);
  read_arch(r, p, m);
}

static void read_train(rd *r, sbpc_plan *p, const cJSON *t) {
  if (!t) return;
  p->global_batch = integer(r, t, "train", "global_batch", 0, 0, 1 << 30);
  int seq = integer(r, t, "train", "seq", 0, 0, 1 << 28);
  if (seq) p->seq = seq;
  p->precision = str(r, t, "train", "precision", NULL);
  if (p->precision && !strcmp(p->precision, "f16")) p->precision = "fp16";
  if (p->precision && !strcmp(p->precision, "f32")) p->precision = "fp32";
}

/* add_type: append a device type name unless already listed. */
static void add_type(sbpc_plan *p, const char **types, const char *t) {
  for (int i = 0; i < p->ndevice_types; i++)
    if (!strcmp(types[i], t)) return;
  types[p->ndevice_types++] = t;
}

static void read_node_types(rd *r, sbpc_plan *p, const cJSON *c) {
  const cJSON *nt = array(r, c, "cluster", "node_types");
  int n = nt ? cJSON_GetArraySize(nt) : 0, i = 0, dpn = -1, ranges = 1;
  const char **types = ARENA_ARRAY(r->a, const char *, n + 1);
  const char **tdev = ARENA_ARRAY(r->a, const char *, n + 1);
  int *tend = ARENA_ARRAY(r->a, int, n + 1);
  long end = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, nt) {
    char path[48];
    snprintf(path, sizeof path, "cluster.node_types[%d]", i++);
    if (!cJSON_IsObject(e)) {
      fail(r, "'%s' must be an object", path);
      return;
    }
    const char *dev = str(r, e, path, "device", NULL);
    int k = integer(r, e, path, "devices_per_node", 0, 0, MAX_DEVICES);
    int count = integer(r, e, path, "count", 0, 0, MAX_DEVICES);
    if (dev) add_type(p, types, dev);
    if (k) dpn = dpn < 0 || dpn == k ? k : 0;
    end += (long)count * k;
    ranges = ranges && dev && count && k && end <= MAX_DEVICES;
    tdev[i - 1] = dev, tend[i - 1] = (int)(ranges ? end : 0);
  }
  p->device_types = types;
  if (ranges && n > 0 && end == p->devices) p->ntype_ranges = n, p->type_rank_end = tend, p->type_device = tdev;
  if (dpn >= 0) p->devices_per_node = dpn;
}

static void read_cluster(rd *r, sbpc_plan *p, const cJSON *c) {
  p->cluster_name = str(r, c, "cluster", "name", NULL);
  p->devices = integer(r, c, "cluster", "devices", -1, 1, MAX_DEVICES);
  p->nodes = integer(r, c, "cluster", "nodes", 1, 1, MAX_DEVICES);
  p->devices_used = integer(r, c, "cluster", "devices_used", p->devices, 1, p->devices > 0 ? p->devices : 1);
  p->devices_per_node = -1;
  read_node_types(r, p, c);
  if (p->devices_per_node < 0) p->devices_per_node = p->devices % p->nodes == 0 ? p->devices / p->nodes : 0;
}

static int valid_recompute(const char *s) {
  return !strcmp(s, "none") || !strcmp(s, "selective") || !strcmp(s, "full");
}

/* read_mesh: "mesh": {"axes": [...], "shape": [...]}; default dp x tp. */
static void read_mesh(rd *r, sbpc_plan *p, const cJSON *root) {
  const cJSON *m = object(r, root, "mesh", 0);
  const cJSON *ax = m ? array(r, m, "mesh", "axes") : NULL, *sh = m ? array(r, m, "mesh", "shape") : NULL;
  int n = ax ? cJSON_GetArraySize(ax) : 0;
  if (ax && (!sh || cJSON_GetArraySize(sh) != n)) fail(r, "'mesh.shape' must have one size per axis");
  if (r->failed) return;
  const char **axes = ARENA_ARRAY(r->a, const char *, n + 2);
  int *shape = ARENA_ARRAY(r->a, int, n + 2), i = 0;
  for (i = 0; i < n; i++) {
    const cJSON *a = cJSON_GetArrayItem(ax, i), *d = cJSON_GetArrayItem(sh, i);
    if (!cJSON_IsString(a) || !cJSON_IsNumber(d) || !(d->valuedouble >= 1 && d->valuedouble <= MAX_DEVICES)) {
      fail(r, "'mesh' axis %d must be a name with a positive size", i);
      return;
    }
    axes[i] = arena_strdup(r->a, a->valuestring), shape[i] = (int)d->valuedouble;
  }
  if (!ax) { /* no mesh given: the data and tensor axes */
    axes[0] = "dp", shape[0] = p->dp;
    axes[1] = "tp", shape[1] = p->tp;
    n = 2;
  }
  p->naxes = n, p->axes = axes, p->shape = shape;
}

static void read_parallel(rd *r, sbpc_plan *p, const cJSON *par) {
  p->dp = integer(r, par, "parallel", "dp", -1, 1, MAX_DEGREE);
  p->tp = integer(r, par, "parallel", "tp", -1, 1, MAX_DEGREE);
  p->pp = integer(r, par, "parallel", "pp", -1, 1, MAX_DEGREE);
  p->sp = integer(r, par, "parallel", "sp", 1, 1, MAX_DEGREE);
  p->vpp = integer(r, par, "parallel", "vpp", 1, 1, 1024);
  p->micro_batch = integer(r, par, "parallel", "micro_batch", -1, 1, 1 << 24);
  p->num_micro_batches = integer(r, par, "parallel", "num_micro_batches", -1, 1, 1 << 24);
  p->zero = integer(r, par, "parallel", "zero", 0, 0, 3);
  p->recompute = str(r, par, "parallel", "recompute", "none");
  if (!r->failed && !valid_recompute(p->recompute))
    fail(r, "'parallel.recompute' must be none, selective or full, not '%s'", p->recompute);
  p->sp_kind = str(r, par, "parallel", "sp_kind", "ulysses");
  /* the names of format/program.h's fmt_spkind_name: this reader is also
   * the installed libsbpc, which has no program format */
  if (!r->failed && strcmp(p->sp_kind, "ulysses") && strcmp(p->sp_kind, "ring"))
    fail(r, "'parallel.sp_kind' must be ulysses or ring, not '%s'", p->sp_kind);
  const cJSON *spf = cJSON_GetObjectItemCaseSensitive(par, "sequence_parallel");
  p->sequence_parallel = !spf ? -1 : cJSON_IsTrue(spf) ? 1 : 0;
  if (spf && !cJSON_IsBool(spf)) fail(r, "'parallel.sequence_parallel' must be true or false");
  p->adaptive_sp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(par, "adaptive_sp"));
}

/* read_devices: a stage's device list, either [ids...] or {"first", "count"}. */
static void read_devices(rd *r, sbpc_plan *p, sbpc_plan_stage *s, const cJSON *d, int i) {
  char path[48];
  snprintf(path, sizeof path, "stages[%d].devices", i);
  if (cJSON_IsObject(d)) {
    int first = integer(r, d, path, "first", -1, 0, MAX_DEVICES);
    int count = integer(r, d, path, "count", -1, 1, MAX_DEVICES);
    if (r->failed) return;
    if ((long)first + count > p->devices) {
      fail(r, "'%s' names devices beyond the cluster's %d", path, p->devices);
      return;
    }
    int *ids = ARENA_ARRAY(r->a, int, count);
    for (int k = 0; k < count; k++) ids[k] = first + k;
    s->devices = ids, s->ndevices = count;
    return;
  }
  int n = cJSON_IsArray(d) ? cJSON_GetArraySize(d) : -1;
  if (n < 1 || n > p->devices) {
    fail(r, "'%s' must be a non-empty array of at most %d device ids", path, p->devices);
    return;
  }
  int *ids = ARENA_ARRAY(r->a, int, n), k = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, d) {
    double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
    if (!(v >= 0 && v < p->devices) || v != floor(v)) {
      fail(r, "'%s[%d]' is not a device id in [0, %d)", path, k, p->devices);
      return;
    }
    ids[k++] = (int)v;
  }
  s->devices = ids, s->ndevices = n;
}

/* pair: a [first, last] layer range (last = first-1 for an empty one). */
static int pair(rd *r, const cJSON *l, const char *path, int layers, int out[2]) {
  const cJSON *a = cJSON_GetArrayItem(l, 0), *b = cJSON_GetArrayItem(l, 1);
  if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) != 2 || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) ||
      a->valuedouble != floor(a->valuedouble) || b->valuedouble != floor(b->valuedouble) ||
      !(a->valuedouble >= 0 && a->valuedouble <= layers) || !(b->valuedouble >= a->valuedouble - 1 && b->valuedouble < layers)) {
    fail(r, "'%s' must be [first, last] layers of the model's %d", path, layers);
    return 0;
  }
  out[0] = (int)a->valuedouble, out[1] = (int)b->valuedouble;
  return 1;
}

static void read_chunks(rd *r, sbpc_plan *p, sbpc_plan_stage *s, const cJSON *e, const char *path) {
  const cJSON *ch = array(r, e, path, "layers_chunks");
  int n = ch ? cJSON_GetArraySize(ch) : 1;
  if (ch && n != p->vpp) fail(r, "'%s.layers_chunks' must have vpp=%d entries", path, p->vpp);
  if (!ch && p->vpp > 1) fail(r, "'%s.layers_chunks' is required when vpp > 1", path);
  if (r->failed) return;
  int(*c)[2] = (int(*)[2])arena_alloc(r->a, sizeof(int[2]) * (size_t)n);
  if (!ch) c[0][0] = s->first_layer, c[0][1] = s->last_layer;
  for (int k = 0; ch && k < n; k++) {
    char cp[64];
    snprintf(cp, sizeof cp, "%s.layers_chunks[%d]", path, k);
    if (!pair(r, cJSON_GetArrayItem(ch, k), cp, p->layers, c[k])) return;
  }
  s->nlayers = 0;
  for (int k = 0; k < n; k++) s->nlayers += c[k][1] - c[k][0] + 1;
  s->chunks = (const int(*)[2])c, s->nchunks = n;
}

static void read_stage(rd *r, sbpc_plan *p, sbpc_plan_stage *s, const cJSON *e, int i) {
  char path[32];
  snprintf(path, sizeof path, "stages[%d]", i);
  if (!cJSON_IsObject(e)) {
    fail(r, "'%s' must be an object", path);
    return;
  }
  char lp[48];
  snprintf(lp, sizeof lp, "%s.layers", path);
  int l[2];
  if (!pair(r, cJSON_GetObjectItemCaseSensitive(e, "layers"), lp, p->layers, l)) return;
  s->first_layer = l[0], s->last_layer = l[1];
  read_chunks(r, p, s, e, path);
  read_devices(r, p, s, cJSON_GetObjectItemCaseSensitive(e, "devices"), i);
  s->device_type = str(r, e, path, "device_type", NULL);
  s->fwd_s = num(r, e, path, "time_fwd_s", -1);
  s->bwd_s = num(r, e, path, "time_bwd_s", -1);
}

/* check_cover: the virtual stages (chunk k of stage s is k*pp + s) hold the
 * layers 0..L-1 in order, each once. */
static void check_cover(rd *r, sbpc_plan *p, const sbpc_plan_stage *st) {
  int next = 0;
  for (int v = 0; v < p->vpp * p->pp && !r->failed; v++) {
    const int *c = st[v % p->pp].chunks[v / p->pp];
    if (c[0] != next)
      fail(r, "virtual stage %d starts at layer %d; stages must cover layers 0..%d in order (expected %d)", v, c[0],
           p->layers - 1, next);
    next = c[1] + 1;
  }
  if (!r->failed && next != p->layers) fail(r, "stages end at layer %d but the model has %d layers", next - 1, p->layers);
}

static void read_stages(rd *r, sbpc_plan *p, const cJSON *root) {
  const cJSON *st = array(r, root, "", "stages");
  if (r->failed) return;
  int n = st ? cJSON_GetArraySize(st) : 0;
  if (n != p->pp) {
    fail(r, "'stages' has %d entries but parallel.pp is %d", n, p->pp);
    return;
  }
  sbpc_plan_stage *s = ARENA_ARRAY(r->a, sbpc_plan_stage, n);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, st) {
    read_stage(r, p, &s[i], e, i);
    i++;
  }
  check_cover(r, p, s);
  p->stages = s, p->nstages = n;
}

/* sbp_list: an array of SBP strings (an element may itself be an array of
 * strings, one per mesh axis: its first element is taken). */
static int sbp_list(rd *r, const cJSON *o, const char *path, const char *key, const char *const **out) {
  const cJSON *a = array(r, o, path, key);
  int n = a ? cJSON_GetArraySize(a) : 0, k = 0;
  const char **v = ARENA_ARRAY(r->a, const char *, n + 1);
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    const cJSON *x = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0) : e;
    if (!cJSON_IsString(x)) {
      fail(r, "'%s.%s[%d]' must be an SBP string", path, key, k);
      return 0;
    }
    v[k++] = arena_strdup(r->a, x->valuestring);
  }
  *out = v;
  return n;
}

/* uneven_shares: tp_shares present and not all equal. */
static int uneven_shares(rd *r, const cJSON *o, const char *path) {
  const cJSON *a = array(r, o, path, "tp_shares");
  double first = -1;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    if (!cJSON_IsNumber(e)) return fail(r, "'%s.tp_shares' must hold numbers", path), 0;
    if (first < 0) first = e->valuedouble;
    else if (fabs(e->valuedouble - first) > 1e-9) return 1;
  }
  return 0;
}

static void read_op(rd *r, sbpc_plan_op *op, const cJSON *e, int i) {
  char path[32];
  snprintf(path, sizeof path, "ops[%d]", i);
  if (!cJSON_IsObject(e)) {
    fail(r, "'%s' must be an object", path);
    return;
  }
  op->name = str(r, e, path, "name", NULL);
  if (!op->name) fail(r, "missing '%s.name'", path);
  op->block = str(r, e, path, "block", NULL);
  op->kind = str(r, e, path, "op", NULL);
  op->uneven = uneven_shares(r, e, path);
  op->index = integer(r, e, path, "index", -1, -1, 1 << 30);
  op->lidx = integer(r, e, path, "lidx", -1, -1, 1 << 30);
  op->nout = sbp_list(r, e, path, "sbp", &op->out_sbp);
  op->nin = sbp_list(r, e, path, "in_sbp", &op->in_sbp);
  const char **names = ARENA_ARRAY(r->a, const char *, op->nin + 1);
  const cJSON *in = array(r, e, path, "inputs");
  for (int k = 0; k < op->nin && in; k++) {
    const cJSON *x = cJSON_GetArrayItem(in, k);
    names[k] = cJSON_IsString(x) ? arena_strdup(r->a, x->valuestring) : NULL;
  }
  op->in_names = names;
}

static void read_ops(rd *r, sbpc_plan *p, const cJSON *root) {
  const cJSON *ops = array(r, root, "", "ops");
  int n = ops ? cJSON_GetArraySize(ops) : 0, i = 0;
  sbpc_plan_op *o = ARENA_ARRAY(r->a, sbpc_plan_op, n);
  const cJSON *e;
  cJSON_ArrayForEach(e, ops) {
    read_op(r, &o[i], e, i);
    i++;
  }
  p->ops = o, p->nops = n;
}

static int pass_of(rd *r, const cJSON *e, const char *path) {
  const char *s = str(r, e, path, "pass", NULL);
  if (!s) return -1;
  if (!strcmp(s, "forward")) return 0;
  if (!strcmp(s, "backward")) return 1;
  fail(r, "'%s.pass' must be forward or backward", path);
  return -1;
}

static void read_boxing(rd *r, sbpc_plan *p, const cJSON *root) {
  const cJSON *bx = array(r, root, "", "boxing");
  int n = bx ? cJSON_GetArraySize(bx) : 0, i = 0;
  sbpc_plan_boxing *b = ARENA_ARRAY(r->a, sbpc_plan_boxing, n);
  const cJSON *e;
  cJSON_ArrayForEach(e, bx) {
    char path[32];
    snprintf(path, sizeof path, "boxing[%d]", i);
    if (!cJSON_IsObject(e)) {
      fail(r, "'%s' must be an object", path);
      break;
    }
    b[i].op = str(r, e, path, "op", "");
    b[i].tensor = str(r, e, path, "tensor", NULL);
    b[i].block = str(r, e, path, "block", NULL);
    b[i].axis = str(r, e, path, "axis", NULL);
    b[i].from = str(r, e, path, "from", "");
    b[i].to = str(r, e, path, "to", "");
    b[i].collective = str(r, e, path, "collective", "");
    b[i].input = integer(r, e, path, "input", 0, 0, 1 << 20);
    b[i].pass = pass_of(r, e, path);
    b[i].bytes = num(r, e, path, "bytes", 0);
    b[i].time_s = num(r, e, path, "time_s", -1);
    i++;
  }
  p->boxing = b, p->nboxing = i;
}

static void read_predicted(rd *r, sbpc_plan *p, const cJSON *pr) {
  sbpc_plan_predicted *q = &p->predicted;
  q->step_time_s = num(r, pr, "predicted", "step_time_s", -1);
  q->tokens_per_s = num(r, pr, "predicted", "tokens_per_s", -1);
  q->model_tflops_per_device = num(r, pr, "predicted", "model_tflops_per_device", -1);
  q->hardware_tflops_per_device = num(r, pr, "predicted", "hardware_tflops_per_device", -1);
  q->mfu = num(r, pr, "predicted", "mfu", -1);
  q->memory_per_device_bytes = num(r, pr, "predicted", "memory_per_device_bytes", -1);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(pr, "breakdown");
  if (b && !cJSON_IsObject(b)) fail(r, "'predicted.breakdown' must be an object");
  if (!cJSON_IsObject(b)) b = NULL;
  q->compute_s = num(r, b, "predicted.breakdown", "compute_s", -1);
  q->exposed_comm_s = num(r, b, "predicted.breakdown", "exposed_comm_s", -1);
  q->bubble_s = num(r, b, "predicted.breakdown", "bubble_s", -1);
  q->recompute_s = num(r, b, "predicted.breakdown", "recompute_s", -1);
  q->tp_comm_s = num(r, b, "predicted.breakdown", "tp_comm_s", -1);
  q->dp_comm_s = num(r, b, "predicted.breakdown", "dp_comm_s", -1);
  q->pp_comm_s = num(r, b, "predicted.breakdown", "pp_comm_s", -1);
  q->optimizer_s = num(r, b, "predicted.breakdown", "optimizer_s", -1);
}

static void check_layout(rd *r, sbpc_plan *p) {
  if (r->failed) return;
  long long prod = (long long)p->dp * p->tp * p->pp * p->sp;
  if (prod != p->devices_used)
    fail(r, "dp*tp*pp*sp = %d*%d*%d*%d = %lld, but the plan uses %d devices", p->dp, p->tp, p->pp, p->sp, prod,
         p->devices_used);
}

/* planner.top: the planner's best layouts (optional) */
static void read_top(rd *r, sbpc_plan *p, const cJSON *pl) {
  const cJSON *top = pl ? array(r, pl, "planner", "top") : NULL;
  int n = top ? cJSON_GetArraySize(top) : 0, i = 0;
  sbpc_plan_top *t = ARENA_ARRAY(r->a, sbpc_plan_top, n + 1);
  const cJSON *e;
  cJSON_ArrayForEach(e, top) {
    char path[40];
    snprintf(path, sizeof path, "planner.top[%d]", i);
    sbpc_plan_top *x = &t[i++];
    x->dp = integer(r, e, path, "dp", 1, 1, MAX_DEGREE), x->tp = integer(r, e, path, "tp", 1, 1, MAX_DEGREE);
    x->pp = integer(r, e, path, "pp", 1, 1, MAX_DEGREE), x->sp = integer(r, e, path, "sp", 1, 1, MAX_DEGREE);
    x->vpp = integer(r, e, path, "vpp", 1, 1, MAX_LAYERS);
    x->micro_batch = integer(r, e, path, "micro_batch", 1, 1, 1 << 30);
    x->num_micro_batches = integer(r, e, path, "num_micro_batches", 1, 1, 1 << 30);
    x->zero = integer(r, e, path, "zero", 0, 0, 3);
    x->devices_used = integer(r, e, path, "devices_used", x->dp * x->tp * x->pp * x->sp, 1, MAX_DEVICES);
    x->recompute = str(r, e, path, "recompute", "none");
    if (!valid_recompute(x->recompute)) fail(r, "'%s.recompute' must be none, selective or full", path);
    x->step_time_s = num(r, e, path, "step_time_s", -1);
  }
  p->top = t, p->ntop = n;
}

static void read_root(rd *r, sbpc_plan *p, const cJSON *root) {
  if (!cJSON_IsObject(root)) {
    fail(r, "a plan must be a JSON object");
    return;
  }
  const char *fmt = str(r, root, "", "format", NULL);
  if (!r->failed && (!fmt || strcmp(fmt, "sbpc-plan"))) fail(r, "not an sbpc plan (format must be \"sbpc-plan\")");
  p->version = integer(r, root, "", "version", -1, 1, 1 << 20);
  if (!r->failed && p->version > SBPC_PLAN_VERSION)
    fail(r, "plan version %d is newer than this sbpc reads (%d)", p->version, SBPC_PLAN_VERSION);
  const cJSON *m = object(r, root, "model", 1), *c = object(r, root, "cluster", 1);
  const cJSON *par = object(r, root, "parallel", 1);
  if (r->failed) return;
  read_model(r, p, m);
  read_train(r, p, object(r, root, "train", 0));
  read_cluster(r, p, c);
  read_parallel(r, p, par);
  check_layout(r, p);
  read_mesh(r, p, root);
  read_stages(r, p, root);
  read_ops(r, p, root);
  read_boxing(r, p, root);
  read_predicted(r, p, object(r, root, "predicted", 0));
  const cJSON *pl = object(r, root, "planner", 0);
  p->planner_candidates = integer(r, pl, "planner", "candidates", 0, 0, 1 << 30);
  p->planner_solve_time_s = num(r, pl, "planner", "solve_time_s", -1);
  read_top(r, p, pl);
}

/* syntax_error: "line:col: invalid JSON" for the parse error at pos. */
static void syntax_error(rd *r, const char *text, size_t len, const char *pos) {
  int line = 1, col = 1;
  size_t off = pos && pos >= text && pos <= text + len ? (size_t)(pos - text) : len;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') line++, col = 1;
    else col++;
  }
  fail(r, "%d:%d: invalid JSON", line, col);
}

sbpc_plan *sbpc_plan_parse(const char *text, size_t len, const char *name, char *err, size_t errlen) {
  (void)name;
  rd r = {arena_new(), err, errlen, 0};
  if (err && errlen) err[0] = 0;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  sbpc_plan *p = ARENA_NEW(r.a, sbpc_plan);
  p->priv = r.a;
  if (!root) syntax_error(&r, text, len, end);
  else read_root(&r, p, root);
  cJSON_Delete(root);
  if (r.failed) {
    arena_free(r.a);
    return NULL;
  }
  return p;
}

sbpc_plan *sbpc_plan_read(const char *path, char *err, size_t errlen) {
  size_t len = 0;
  char *text = read_file(path, (size_t)256 << 20, &len);
  if (!text) {
    if (err && errlen) snprintf(err, errlen, "cannot read the plan");
    return NULL;
  }
  sbpc_plan *p = sbpc_plan_parse(text, len, path, err, errlen);
  free(text);
  return p;
}

void sbpc_plan_free(sbpc_plan *p) {
  if (p) arena_free(p->priv);
}

int sbpc_plan_stage_of_layer(const sbpc_plan *p, int l) {
  for (int i = 0; i < p->nstages; i++)
    for (int k = 0; k < p->stages[i].nchunks; k++)
      if (l >= p->stages[i].chunks[k][0] && l <= p->stages[i].chunks[k][1]) return i;
  return -1;
}
