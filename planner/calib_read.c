/* calib_read.c — the one reader of calibration JSON (docs/calibration.md).
 *
 * `sbpc tune` writes a calibration; `sbpc plan --calibration` reads it. This
 * file checks the whole schema tune writes (its measured sections too, so a
 * file that passes is a file tune could have written or a person edited
 * within range) and, in the same walk, overlays the keys the planner models
 * onto a plan_calib. cJSON parses; each section is one short function; the
 * first offending field is named in the error ("'gemm.shapes[0].m' must be a
 * number in [1, 1.67772e+07]"). Nothing is written to the caller's
 * plan_calib unless the whole file is valid. */
#include "planner/planner.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *err;
  size_t errlen;
  bool bad;
  plan_calib *c; /* the overlay being built */
} chk;

static bool bad(chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad(chk *k, const char *fmt, ...) {
  if (!k->bad && k->err && k->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->err, k->errlen, fmt, ap);
    va_end(ap);
  }
  k->bad = true;
  return false;
}

/* num: o.key, when present (or required), is a number in [lo, hi]; stored in
 * *v when v is not NULL. */
static bool num(chk *k, const cJSON *o, const char *path, const char *key, double lo, double hi,
                bool required, double *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!x) return required ? bad(k, "missing '%s%s'", path, key) : true;
  if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi))
    return bad(k, "'%s%s' must be a number in [%g, %g]", path, key, lo, hi);
  if (v) *v = x->valuedouble;
  return true;
}

/* section: j.key is absent or an object. */
static bool section(chk *k, const cJSON *j, const char *key, const cJSON **out) {
  *out = cJSON_GetObjectItemCaseSensitive(j, key);
  if (*out && !cJSON_IsObject(*out)) return bad(k, "'%s' must be an object", key);
  return true;
}

/* shape: gemm.shapes[i] (path p); into the measured table when absolute */
static bool shape(chk *k, const cJSON *e, const char *p, bool absolute) {
  double d[3] = {0, 0, 0}, rate = 0;
  if (!cJSON_IsObject(e)) return bad(k, "'%s' must be an object", p);
  num(k, e, p, "m", 1, 1 << 24, true, &d[0]), num(k, e, p, "n", 1, 1 << 24, true, &d[1]);
  num(k, e, p, "k", 1, 1 << 24, true, &d[2]), num(k, e, p, "seconds", 0, 1e6, true, NULL);
  num(k, e, p, "seconds_backward", 0, 1e6, false, NULL), num(k, e, p, "flops_per_s", 0, 1e18, true, &rate);
  plan_calib *c = k->c;
  if (k->bad || !absolute || rate <= 0 || c->ngemm == PLAN_MAXGEMM) return !k->bad;
  for (int j = 0; j < 3; j++) c->gemm_mnk[c->ngemm][j] = (int)d[j];
  c->gemm_rate[c->ngemm++] = rate;
  return true;
}

/* gemm: the GEMM model; without eff_max (no datasheet peak given to tune) the
 * measured asymptote and shapes are absolute rates of this device */
static bool gemm(chk *k, const cJSON *g) {
  if (!g) return true;
  double fit = 0;
  bool absolute = !cJSON_GetObjectItemCaseSensitive(g, "eff_max");
  num(k, g, "gemm.", "half_dim", 0, 1e6, false, &k->c->gemm_half_dim);
  num(k, g, "gemm.", "eff_max", 0.01, 1, false, &k->c->gemm_eff_max);
  num(k, g, "gemm.", "fit_peak_flops_per_s", 0, 1e18, false, &fit);
  if (absolute && fit > 0) k->c->dev_flops = fit, k->c->gemm_eff_max = 1, k->c->ngemm = 0;
  absolute = absolute && fit > 0;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(g, "shapes"), *e;
  if (s && !cJSON_IsArray(s)) return bad(k, "'gemm.shapes' must be an array");
  int i = 0;
  cJSON_ArrayForEach(e, s) {
    char p[32];
    snprintf(p, sizeof p, "gemm.shapes[%d].", i++);
    if (!shape(k, e, p, absolute)) return false;
  }
  return !k->bad;
}

/* memory: without bandwidth_eff the elementwise kernel bandwidth (else the
 * better of copy and triad) is this device's, absolute */
static bool memory(chk *k, const cJSON *m) {
  if (!m) return true;
  double copy = 0, triad = 0, kern = 0;
  num(k, m, "memory.", "copy_bytes_per_s", 0, 1e15, false, &copy);
  num(k, m, "memory.", "triad_bytes_per_s", 0, 1e15, false, &triad);
  num(k, m, "memory.", "kernel_bytes_per_s", 0, 1e15, false, &kern);
  num(k, m, "memory.", "kernel_array_bytes", 0, 1e15, false, NULL);
  num(k, m, "memory.", "array_bytes", 0, 1e15, false, NULL);
  num(k, m, "memory.", "bandwidth_eff", 0.01, 1, false, &k->c->mem_eff);
  if (!cJSON_GetObjectItemCaseSensitive(m, "bandwidth_eff"))
    k->c->dev_bw = kern > 0 ? kern : copy > triad ? copy : triad;
  return !k->bad;
}

static bool attention(chk *k, const cJSON *a) {
  if (!a) return true;
  num(k, a, "attention.", "score_passes", 0, 100, false, &k->c->attn_score_passes);
  num(k, a, "attention.", "saved_bytes_per_score", 0, 100, false, &k->c->attn_saved_bytes);
  num(k, a, "attention.", "flash_eff", 0.01, 1, false, &k->c->attn_flash_eff);
  return !k->bad;
}

/* flag: o.key, when present, is true or false. */
static bool flag(chk *k, const cJSON *o, const char *key, bool *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!x) return true;
  if (!cJSON_IsBool(x)) return bad(k, "'runtime.%s' must be true or false", key);
  *v = cJSON_IsTrue(x);
  return true;
}

/* word: o.key, when present, is one of the two strings a and b (*v = is b). */
static bool word(chk *k, const cJSON *o, const char *key, const char *a, const char *b, bool *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!x) return true;
  if (!cJSON_IsString(x) || (strcmp(x->valuestring, a) && strcmp(x->valuestring, b)))
    return bad(k, "'runtime.%s' must be \"%s\" or \"%s\"", key, a, b);
  *v = !strcmp(x->valuestring, b);
  return true;
}

/* runtime: the runtime profile, by name, then field by field; then the
 * older top-level spellings "overlap" and "grad_reduce_bytes" of j. */
static bool runtime(chk *k, const cJSON *j, const cJSON *r) {
  plan_runtime *rt = &k->c->rt;
  num(k, j, "", "overlap", 0, 1, false, &rt->grad_overlap);
  num(k, j, "", "grad_reduce_bytes", 1, 8, false, &rt->grad_reduce_bytes);
  if (!r) return !k->bad;
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "profile");
  if (p && (!cJSON_IsString(p) || !plan_runtime_set(k->c, p->valuestring)))
    return bad(k, "'runtime.profile' must be one of %s", plan_runtime_names());
  bool fp32 = rt->grad_reduce_bytes >= 4;
  flag(k, r, "flash_attention", &rt->flash_attention), flag(k, r, "sequence_parallel", &rt->seq_parallel);
  flag(k, r, "distributed_optimizer", &rt->dist_optimizer), flag(k, r, "tp_comm_overlap", &rt->tp_comm_overlap);
  if (word(k, r, "grad_reduce_dtype", "bf16", "fp32", &fp32)) rt->grad_reduce_bytes = fp32 ? 4 : 2;
  num(k, r, "runtime.", "grad_overlap", 0, 1, false, &rt->grad_overlap);
  num(k, r, "runtime.", "dropout_mask_bytes", 0, 8, false, &rt->dropout_mask_bytes);
  if (!cJSON_GetObjectItemCaseSensitive(r, "grad_overlap")) num(k, j, "", "overlap", 0, 1, false, &rt->grad_overlap);
  if (!cJSON_GetObjectItemCaseSensitive(r, "grad_reduce_dtype"))
    num(k, j, "", "grad_reduce_bytes", 1, 8, false, &rt->grad_reduce_bytes);
  return !k->bad;
}

/* by_group: collectives.by_group_size, n strictly increasing integers. */
static bool by_group(chk *k, const cJSON *by) {
  if (!by) return true;
  if (!cJSON_IsArray(by) || cJSON_GetArraySize(by) > PLAN_MAXCOLL)
    return bad(k, "'collectives.by_group_size' must be an array of at most %d entries", PLAN_MAXCOLL);
  plan_calib *c = k->c;
  const cJSON *e;
  c->ncoll = 0;
  cJSON_ArrayForEach(e, by) {
    char p[48];
    int i = c->ncoll;
    double n = 0;
    snprintf(p, sizeof p, "collectives.by_group_size[%d].", i);
    if (!cJSON_IsObject(e)) return bad(k, "'%s' must be an object", p);
    if (!num(k, e, p, "n", 1, 1 << 24, true, &n) || !num(k, e, p, "bus_bw", 0, 1e15, true, &c->coll_bw[i]) ||
        !num(k, e, p, "alpha_s", 0, 1, true, &c->coll_alpha[i]) || !num(k, e, p, "bus_bw_in_step", 0, 1e15, false, NULL))
      return false;
    if (n != floor(n) || (i > 0 && n <= c->coll_n[i - 1]))
      return bad(k, "'%sn' must be an integer above the previous entry's", p);
    c->coll_n[i] = (int)n;
    c->ncoll = i + 1;
  }
  return true;
}

/* coll_entry: one entry of collectives.all_to_all / send_recv into the
 * table of its placement (n strictly increasing within a placement). */
static bool coll_entry(chk *k, const cJSON *e, const char *p, plan_colltab *tab) {
  double n = 0, bw = 0, alpha = -1;
  const cJSON *pl = cJSON_GetObjectItemCaseSensitive(e, "placement");
  if (!cJSON_IsObject(e)) return bad(k, "'%s' must be an object", p);
  if (!cJSON_IsString(pl) || (strcmp(pl->valuestring, "intra") && strcmp(pl->valuestring, "inter")))
    return bad(k, "'%splacement' must be \"intra\" or \"inter\"", p);
  if (!num(k, e, p, "n", 2, 1 << 24, true, &n) || !num(k, e, p, "bus_bw", 1, 1e15, true, &bw) ||
      !num(k, e, p, "alpha_s", 0, 1, false, &alpha))
    return false;
  plan_colltab *t = &tab[strcmp(pl->valuestring, "inter") ? PLAN_INTRA : PLAN_INTER];
  if (n != floor(n) || (t->cnt > 0 && n <= t->n[t->cnt - 1]))
    return bad(k, "'%sn' must be an integer above the previous %s entry's", p, pl->valuestring);
  if (t->cnt == PLAN_MAXCOLL) return bad(k, "'%s': at most %d entries per placement", p, PLAN_MAXCOLL);
  t->n[t->cnt] = (int)n, t->bw[t->cnt] = bw, t->alpha[t->cnt++] = alpha;
  return true;
}

/* coll_kind: collectives.<key> (all_to_all or send_recv), an array of entries. */
static bool coll_kind(chk *k, const cJSON *co, const char *key, plan_colltab *tab) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(co, key), *e;
  if (!arr) return true;
  if (!cJSON_IsArray(arr)) return bad(k, "'collectives.%s' must be an array", key);
  tab[PLAN_INTRA].cnt = tab[PLAN_INTER].cnt = 0;
  int i = 0;
  cJSON_ArrayForEach(e, arr) {
    char p[64];
    snprintf(p, sizeof p, "collectives.%s[%d].", key, i++);
    if (!coll_entry(k, e, p, tab)) return false;
  }
  return true;
}

/* measured: collectives.measurements[]'s reduce-scatter and all-gather
 * entries (n strictly increasing per op; bus_bw, optional back-to-back
 * alpha_s) into c->rs and c->ag; the others (all-reduce: by_group_size;
 * all-to-all, send/recv: their own arrays) are not read. */
static bool measured(chk *k, const cJSON *arr) {
  if (!arr) return true;
  if (!cJSON_IsArray(arr)) return bad(k, "'collectives.measurements' must be an array");
  plan_calib *c = k->c;
  c->rs.cnt = c->ag.cnt = 0;
  const cJSON *e;
  int i = 0;
  cJSON_ArrayForEach(e, arr) {
    char p[64];
    snprintf(p, sizeof p, "collectives.measurements[%d].", i++);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "op");
    if (!cJSON_IsObject(e) || !cJSON_IsString(op)) return bad(k, "'%s' must be an object with a string 'op'", p);
    plan_colltab *t = !strcmp(op->valuestring, "reduce_scatter") ? &c->rs
                      : !strcmp(op->valuestring, "all_gather")   ? &c->ag : NULL;
    double n = 0, bw = 0, alpha = -1;
    if (!t) continue;
    if (!num(k, e, p, "n", 2, 1 << 24, true, &n) || !num(k, e, p, "bus_bw", 1, 1e15, true, &bw) ||
        !num(k, e, p, "alpha_s", 0, 1, false, &alpha))
      return false;
    if (n != floor(n) || (t->cnt > 0 && n <= t->n[t->cnt - 1]))
      return bad(k, "'%sn' must be an integer above the previous %s entry's", p, op->valuestring);
    if (t->cnt == PLAN_MAXCOLL) return bad(k, "'%s': at most %d %s entries", p, PLAN_MAXCOLL, op->valuestring);
    t->n[t->cnt] = (int)n, t->bw[t->cnt] = bw, t->alpha[t->cnt++] = alpha;
  }
  return true;
}

static bool collectives(chk *k, const cJSON *co) {
  if (!co) return true;
  num(k, co, "collectives.", "link_eff", 0.01, 1, false, &k->c->coll_eff);
  num(k, co, "collectives.", "group_fixed_s", 0, 1, false, &k->c->group_fixed_s);
  return !k->bad && by_group(k, cJSON_GetObjectItemCaseSensitive(co, "by_group_size")) &&
         coll_kind(k, co, "all_to_all", k->c->a2a) && coll_kind(k, co, "send_recv", k->c->p2p) &&
         measured(k, cJSON_GetObjectItemCaseSensitive(co, "measurements"));
}

/* step: <at><key>, a step's phases in seconds (what was measured or
 * predicted on the reference program; kept for audit) */
static bool step(chk *k, const cJSON *ex, const char *at, const char *key) {
  static const char *const f[] = {"step_s", "forward_s", "backward_s", "optimizer_s", "exposed_comm_s", "bubble_s"};
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(ex, key);
  char p[64];
  if (!o) return true;
  snprintf(p, sizeof p, "%s%s.", at, key);
  if (!cJSON_IsObject(o)) return bad(k, "'%s%s' must be an object", at, key);
  for (int i = 0; i < 6; i++) num(k, o, p, f[i], 0, 1e6, false, NULL);
  return !k->bad;
}

/* record: executor.<key>, absent or another reference's record (kept for audit) */
static bool record(chk *k, const cJSON *ex, const char *key) {
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(ex, key), *r;
  char at[48];
  snprintf(at, sizeof at, "executor.%s.", key);
  if (!b) return true;
  if (!cJSON_IsObject(b)) return bad(k, "'executor.%s' must be an object", key);
  r = cJSON_GetObjectItemCaseSensitive(b, "reference");
  if (r && !cJSON_IsString(r)) return bad(k, "'%sreference' must be a string", at);
  num(k, b, at, "steps", 1, 1e9, false, NULL);
  return step(k, b, at, "measured") && step(k, b, at, "predicted");
}

/* ref: executor.fix (the reference's knobs), executor.model (what it was
 * planned for) and its measured step, into c->ref when all are there */
static bool ref(chk *k, const cJSON *ex) {
  const cJSON *fx = cJSON_GetObjectItemCaseSensitive(ex, "fix"), *m = cJSON_GetObjectItemCaseSensitive(ex, "model");
  if (fx && (!cJSON_IsString(fx) || strlen(fx->valuestring) >= sizeof k->c->ref.fix))
    return bad(k, "'executor.fix' must be a string of knobs");
  if (m && !cJSON_IsObject(m)) return bad(k, "'executor.model' must be an object");
  const cJSON *nm = m ? cJSON_GetObjectItemCaseSensitive(m, "name") : NULL;
  if (nm && (!cJSON_IsString(nm) || strlen(nm->valuestring) >= sizeof k->c->ref.model))
    return bad(k, "'executor.model.name' must be a short string");
  double v[4] = {0, 0, 0, 0}, st = 0;
  const char *f[4] = {"params", "global_batch", "seq", "devices"};
  for (int i = 0; i < 4 && m; i++) num(k, m, "executor.model.", f[i], 1, 1e15, false, &v[i]);
  const cJSON *ms = cJSON_GetObjectItemCaseSensitive(ex, "measured");
  if (cJSON_IsObject(ms)) num(k, ms, "executor.measured.", "step_s", 0, 1e6, false, &st);
  if (k->bad || !fx || !nm || v[0] <= 0 || v[1] <= 0 || v[2] <= 0 || v[3] <= 0 || st <= 0) return !k->bad;
  snprintf(k->c->ref.fix, sizeof k->c->ref.fix, "%s", fx->valuestring);
  snprintf(k->c->ref.model, sizeof k->c->ref.model, "%s", nm->valuestring);
  k->c->ref.params = v[0], k->c->ref.batch = (long)v[1], k->c->ref.seq = (long)v[2], k->c->ref.devices = (int)v[3];
  k->c->ref.step_s = st, k->c->ref.have = true;
  return true;
}

/* executor: what the executor measured on the model's reference programs:
 * per pass its time over the planner's rooflines and the cost of each
 * kernel the planner counts beyond them (replaces kernel_overhead_s), its
 * exposed data-parallel communication over the collectives' time (then
 * nothing counts as overlapped), its idle time per micro-batch and per
 * step, and its wait per ZeRO collective beyond the model */
static bool executor(chk *k, const cJSON *ex) {
  if (!ex) return true;
  plan_calib *c = k->c;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(ex, "reference");
  if (r && !cJSON_IsString(r)) return bad(k, "'executor.reference' must be a string");
  num(k, ex, "executor.", "forward_scale", 0.01, 100, false, &c->exec_scale[PLAN_FWD]);
  num(k, ex, "executor.", "backward_scale", 0.01, 100, false, &c->exec_scale[PLAN_BWD]);
  num(k, ex, "executor.", "optimizer_scale", 0.01, 100, false, &c->exec_scale[PLAN_OPT]);
  if (num(k, ex, "executor.", "dp_comm_scale", 0.01, 1000, false, &c->exec_scale[PLAN_COMM]) &&
      cJSON_GetObjectItemCaseSensitive(ex, "dp_comm_scale"))
    c->rt.grad_overlap = 0; /* the scale is what the executor left exposed */
  num(k, ex, "executor.", "kernel_s", 0, 1, false, &c->kernel_overhead_s); /* before the per-pass costs */
  num(k, ex, "executor.", "forward_kernel_s", 0, 1, false, &c->exec_kernel_s[PLAN_FWD]);
  num(k, ex, "executor.", "backward_kernel_s", 0, 1, false, &c->exec_kernel_s[PLAN_BWD]);
  num(k, ex, "executor.", "optimizer_kernel_s", 0, 1, false, &c->exec_kernel_s[PLAN_OPT]);
  num(k, ex, "executor.", "micro_overhead_s", 0, 3600, false, &c->micro_overhead_s);
  num(k, ex, "executor.", "step_overhead_s", 0, 3600, false, &c->step_overhead_s);
  num(k, ex, "executor.", "coll_latency_s", 0, 1, false, &c->exec_coll_s);
  num(k, ex, "executor.", "zero12_latency_s", 0, 1, false, &c->exec_coll12_s);
  num(k, ex, "executor.", "kernels_per_step", 0, 1e12, false, NULL);
  num(k, ex, "executor.", "steps", 1, 1e9, false, NULL);
  c->exec_per_param = true; /* sbpc's executor: one collective per parameter tensor */
  return step(k, ex, "executor.", "measured") && step(k, ex, "executor.", "predicted") &&
         record(k, ex, "second") && record(k, ex, "zero3") &&
         record(k, ex, "zero2") && ref(k, ex);
}

/* top: the format and the top-level scalars. */
static bool top(chk *k, const cJSON *j) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
  if (!cJSON_IsString(f) || strcmp(f->valuestring, "sbpc-calibration"))
    return bad(k, "not a calibration (format must be \"sbpc-calibration\")");
  plan_calib *c = k->c;
  num(k, j, "", "version", 1, 1, false, NULL);
  num(k, j, "", "kernel_overhead_s", 0, 1, false, &c->kernel_overhead_s);
  num(k, j, "", "memory_usable", 0.1, 1, false, &c->mem_usable);
  num(k, j, "", "workspace_bytes", 0, 1e13, false, &c->workspace_bytes);
  return !k->bad;
}

bool plan_calib_parse(const char *text, size_t len, plan_calib *c, char *err, size_t errlen) {
  plan_calib t = *c;
  chk k = {err, errlen, false, &t};
  if (err && errlen) err[0] = 0;
  cJSON *j = cJSON_ParseWithLength(text, len);
  const cJSON *g, *m, *a, *co, *rt, *ex;
  if (!j || !cJSON_IsObject(j)) bad(&k, "a calibration must be a JSON object");
  else if (top(&k, j) && section(&k, j, "gemm", &g) && section(&k, j, "memory", &m) &&
           section(&k, j, "collectives", &co) && section(&k, j, "attention", &a) &&
           section(&k, j, "runtime", &rt) && section(&k, j, "executor", &ex) && runtime(&k, j, rt) && gemm(&k, g) &&
           memory(&k, m) && attention(&k, a) && collectives(&k, co))
    executor(&k, ex);
  cJSON_Delete(j);
  if (k.bad) return false;
  t.loaded = true;
  *c = t;
  return true;
}

const char *plan_calib_path(const char *given) {
  const char *e = getenv("SBPC_CALIBRATION");
  return given ? given : e && *e ? e : NULL;
}

bool plan_calib_load(const char *path, plan_calib *c) {
  size_t len;
  char *txt = read_file(path, 1 << 20, &len);
  if (!txt) return false;
  char err[256];
  bool ok = plan_calib_parse(txt, len, c, err, sizeof err);
  free(txt);
  if (!ok) diag_file_error(path, "%s (docs/calibration.md has the schema)", err);
  return ok;
}
