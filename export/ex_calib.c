/* ex_calib.c — validation of a calibration JSON (docs/calibration.md).
 *
 * The planner loads calibration files with its own reader (planner/calib.c)
 * and uses only the keys it models; this checker states the whole schema
 * `sbpc tune` writes, with the same ranges, so a file that passes here loads
 * there. cJSON parses; each section is checked by a short function that names
 * the first offending field. Used by the tune test and the calibration fuzz
 * target. */
#include "export/export.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  char *err;
  size_t errlen;
  int bad;
} chk;

static int bad(chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(chk *c, const char *fmt, ...) {
  if (!c->bad && c->err && c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  c->bad = 1;
  return 0;
}

/* range: obj.key, when present (or required), is a number in [lo, hi]. */
static int range(chk *c, const cJSON *o, const char *path, const char *key, double lo, double hi, int required) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return required ? bad(c, "missing '%s%s'", path, key) : 1;
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
    return bad(c, "'%s%s' must be a number in [%g, %g]", path, key, lo, hi);
  return 1;
}

static int section(chk *c, const cJSON *j, const char *key, const cJSON **out) {
  *out = cJSON_GetObjectItemCaseSensitive(j, key);
  if (*out && !cJSON_IsObject(*out)) return bad(c, "'%s' must be an object", key);
  return 1;
}

static int gemm(chk *c, const cJSON *g) {
  if (!g) return 1;
  range(c, g, "gemm.", "half_dim", 0, 1e6, 0);
  range(c, g, "gemm.", "eff_max", 0.01, 1, 0);
  range(c, g, "gemm.", "fit_peak_flops_per_s", 0, 1e18, 0);
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(g, "shapes"), *e;
  if (s && !cJSON_IsArray(s)) return bad(c, "'gemm.shapes' must be an array");
  int i = 0;
  cJSON_ArrayForEach(e, s) {
    char p[32];
    snprintf(p, sizeof p, "gemm.shapes[%d].", i++);
    if (!cJSON_IsObject(e)) return bad(c, "'%s' must be an object", p);
    range(c, e, p, "m", 1, 1 << 24, 1), range(c, e, p, "n", 1, 1 << 24, 1), range(c, e, p, "k", 1, 1 << 24, 1);
    range(c, e, p, "seconds", 0, 1e6, 1), range(c, e, p, "flops_per_s", 0, 1e18, 1);
  }
  return !c->bad;
}

static int memory(chk *c, const cJSON *m) {
  if (!m) return 1;
  range(c, m, "memory.", "copy_bytes_per_s", 0, 1e15, 0);
  range(c, m, "memory.", "triad_bytes_per_s", 0, 1e15, 0);
  range(c, m, "memory.", "bandwidth_eff", 0.01, 1, 0);
  return !c->bad;
}

/* attention: the planner's optional attention constants (planner/calib.c). */
static int attention(chk *c, const cJSON *a) {
  if (!a) return 1;
  range(c, a, "attention.", "score_passes", 0, 100, 0);
  range(c, a, "attention.", "saved_bytes_per_score", 0, 100, 0);
  return !c->bad;
}

static int collectives(chk *c, const cJSON *co) {
  if (!co) return 1;
  range(c, co, "collectives.", "link_eff", 0.01, 1, 0);
  const cJSON *by = cJSON_GetObjectItemCaseSensitive(co, "by_group_size"), *e;
  if (by && (!cJSON_IsArray(by) || cJSON_GetArraySize(by) > 16))
    return bad(c, "'collectives.by_group_size' must be an array of at most 16 entries");
  double last = 0;
  int i = 0;
  cJSON_ArrayForEach(e, by) {
    char p[48];
    snprintf(p, sizeof p, "collectives.by_group_size[%d].", i++);
    if (!cJSON_IsObject(e)) return bad(c, "'%s' must be an object", p);
    if (!range(c, e, p, "n", 1, 1 << 24, 1) || !range(c, e, p, "bus_bw", 0, 1e15, 1) ||
        !range(c, e, p, "alpha_s", 0, 1, 1))
      return 0;
    double n = cJSON_GetObjectItemCaseSensitive(e, "n")->valuedouble;
    if (n <= last || n != floor(n)) return bad(c, "'%sn' must be an integer above the previous entry's", p);
    last = n;
  }
  return 1;
}

int ex_calib_parse(const char *text, size_t len, char *err, size_t errlen) {
  chk c = {err, errlen, 0};
  if (err && errlen) err[0] = 0;
  cJSON *j = cJSON_ParseWithLength(text, len);
  const cJSON *g = NULL, *m = NULL, *co = NULL;
  if (!j || !cJSON_IsObject(j)) bad(&c, "a calibration must be a JSON object");
  else {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "sbpc-calibration"))
      bad(&c, "not a calibration (format must be \"sbpc-calibration\")");
    range(&c, j, "", "version", 1, 1, 0);
    range(&c, j, "", "kernel_overhead_s", 0, 1, 0);
    range(&c, j, "", "overlap", 0, 1, 0);
    range(&c, j, "", "memory_usable", 0.1, 1, 0);
    range(&c, j, "", "grad_reduce_bytes", 1, 8, 0);
    range(&c, j, "", "workspace_bytes", 0, 1e13, 0);
    const cJSON *a = NULL;
    if (section(&c, j, "gemm", &g) && section(&c, j, "memory", &m) && section(&c, j, "collectives", &co) &&
        section(&c, j, "attention", &a) && gemm(&c, g) && memory(&c, m) && attention(&c, a))
      collectives(&c, co);
  }
  cJSON_Delete(j);
  return c.bad;
}
