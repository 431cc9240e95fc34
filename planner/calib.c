/* calib.c — the planner's constants, the calibration file and the options.
 *
 * plan_calib_default holds the built-in constants (their sources are in
 * docs/planner.md). plan_calib_load overlays a calibration JSON written by
 * `sbpc tune` (or by hand); it is read with cJSON, every field optional, and
 * values are range-checked so a bad file is an input error, never a crash.
 * plan_fix_parse reads the --fix list. */
#include "planner/plan_int.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *rc_names[] = {"none", "selective", "full"};

const char *plan_recompute_name(int rc) {
  return rc >= 0 && rc < PLAN_NRC ? rc_names[rc] : "?";
}

void plan_calib_default(plan_calib *c) {
  memset(c, 0, sizeof *c);
  c->gemm_eff_max = 0.80;
  c->gemm_half_dim = 128;
  c->mem_eff = 0.70;
  c->kernel_overhead_s = 4e-6;
  c->attn_score_passes = 6;
  c->attn_saved_bytes = 5;
  c->coll_eff = 0.80;
  c->overlap = 1.0;
  c->grad_reduce_bytes = 2;
  c->workspace_bytes = 2.0 * (1 << 30);
  c->mem_usable = 0.95;
}

void plan_options_default(plan_options *o) {
  memset(o, 0, sizeof *o);
  o->fix.recompute = -1;
  o->fix.zero = -1;
  o->top_k = 3;
  o->precision = IR_BF16;
  plan_calib_default(&o->calib);
  o->ilp_time_limit_s = 2.0;
  o->max_sp = 1;
}

/* num: field `k` of object o into *v when present; false if present but bad */
static bool num(const cJSON *o, const char *k, double lo, double hi, double *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!x) return true;
  if (!cJSON_IsNumber(x) || x->valuedouble < lo || x->valuedouble > hi) return false;
  *v = x->valuedouble;
  return true;
}

static bool load_coll(const cJSON *arr, plan_calib *c) {
  if (!arr) return true;
  if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > PLAN_MAXCOLL) return false;
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    double gn = 0, bw = 0, a = 0;
    if (!cJSON_IsObject(e) || !num(e, "n", 1, 1 << 24, &gn) || !num(e, "bus_bw", 0, 1e15, &bw) ||
        !num(e, "alpha_s", 0, 1, &a) || gn < 1 || (n > 0 && gn <= c->coll_n[n - 1]))
      return false;
    c->coll_n[n] = (int)gn;
    c->coll_bw[n] = bw;
    c->coll_alpha[n] = a;
    n++;
  }
  c->ncoll = n;
  return true;
}

static bool load_obj(const cJSON *j, plan_calib *c) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
  if (f && (!cJSON_IsString(f) || strcmp(f->valuestring, "sbpc-calibration"))) return false;
  const cJSON *gm = cJSON_GetObjectItemCaseSensitive(j, "gemm");
  const cJSON *mem = cJSON_GetObjectItemCaseSensitive(j, "memory");
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "attention");
  const cJSON *co = cJSON_GetObjectItemCaseSensitive(j, "collectives");
  bool ok = num(j, "kernel_overhead_s", 0, 1, &c->kernel_overhead_s) &&
            num(j, "overlap", 0, 1, &c->overlap) &&
            num(j, "grad_reduce_bytes", 1, 8, &c->grad_reduce_bytes) &&
            num(j, "workspace_bytes", 0, 1e13, &c->workspace_bytes) &&
            num(j, "memory_usable", 0.1, 1, &c->mem_usable);
  if (gm) ok = ok && cJSON_IsObject(gm) && num(gm, "eff_max", 0.01, 1, &c->gemm_eff_max) &&
               num(gm, "half_dim", 0, 1e6, &c->gemm_half_dim);
  if (mem) ok = ok && cJSON_IsObject(mem) && num(mem, "bandwidth_eff", 0.01, 1, &c->mem_eff);
  if (at) ok = ok && cJSON_IsObject(at) && num(at, "score_passes", 0, 100, &c->attn_score_passes) &&
               num(at, "saved_bytes_per_score", 0, 100, &c->attn_saved_bytes);
  if (co) ok = ok && cJSON_IsObject(co) && num(co, "link_eff", 0.01, 1, &c->coll_eff) &&
               load_coll(cJSON_GetObjectItemCaseSensitive(co, "by_group_size"), c);
  return ok;
}

bool plan_calib_load(const char *path, plan_calib *c) {
  size_t len;
  char *txt = read_file(path, 1 << 20, &len);
  if (!txt) return false;
  cJSON *j = cJSON_ParseWithLength(txt, len);
  free(txt);
  if (!j || !cJSON_IsObject(j)) {
    fprintf(stderr, "%s: error: not a JSON object\n", path);
    cJSON_Delete(j);
    return false;
  }
  plan_calib t = *c;
  bool ok = load_obj(j, &t);
  cJSON_Delete(j);
  if (!ok) {
    fprintf(stderr, "%s: error: bad calibration (see docs/planner.md for the schema)\n", path);
    return false;
  }
  t.loaded = true;
  *c = t;
  return true;
}

/* fix_one: one key=value of --fix */
static bool fix_one(const char *k, const char *v, plan_fix *f) {
  if (!strcmp(k, "recompute")) {
    for (int i = 0; i < PLAN_NRC; i++)
      if (!strcmp(v, rc_names[i])) return f->recompute = i, true;
    return false;
  }
  char *end;
  long x = strtol(v, &end, 10);
  if (*v == 0 || *end || x < 0 || x > (1 << 24)) return false;
  if (!strcmp(k, "zero")) return x <= 3 ? (f->zero = (int)x, true) : false;
  if (x < 1) return false;
  int *slot = !strcmp(k, "dp") ? &f->dp : !strcmp(k, "tp") ? &f->tp : !strcmp(k, "pp") ? &f->pp
            : !strcmp(k, "sp") ? &f->sp : !strcmp(k, "vpp") ? &f->vpp
            : !strcmp(k, "mbs") ? &f->mbs : !strcmp(k, "devices") ? &f->devices : NULL;
  if (!slot) return false;
  *slot = (int)x;
  return true;
}

bool plan_fix_parse(const char *s, plan_options *o) {
  char buf[256];
  if (strlen(s) >= sizeof buf) {
    sbpc_error("--fix: list too long");
    return false;
  }
  strcpy(buf, s);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) {
      sbpc_error("--fix: expected key=value, got '%s'", tok);
      return false;
    }
    *eq = 0;
    if (!fix_one(tok, eq + 1, &o->fix)) {
      sbpc_error("--fix: bad '%s=%s' (keys dp tp pp sp vpp mbs devices recompute=none|selective|full zero=0..3)",
                 tok, eq + 1);
      return false;
    }
  }
  return true;
}
