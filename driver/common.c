/* common.c — shared command-line options, model loading and binding for the
 * sbpc commands (see common.h). Option values are parsed strictly (a whole
 * decimal number within bounds), so `--batch 1e9` or `--mesh 2x` is a usage
 * error rather than a silent zero. Binding checks every tensor's element
 * count with overflow-checked arithmetic before ir_bind, so no later pass can
 * overflow an int64 computing a size. */
#include "driver/common.h"
#include "frontend/frontend.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool drv_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool drv_parse_mesh(const char *s, ir_mesh *m) {
  memset(m, 0, sizeof *m);
  char buf[64];
  if (!s || strlen(s) >= sizeof buf) return false;
  strcpy(buf, s);
  int64_t prod = 1;
  for (char *p = buf, *x; p; p = x ? x + 1 : NULL) {
    x = strchr(p, 'x');
    if (x) *x = 0;
    int64_t v;
    if (m->n == IR_MAXMESH || !drv_parse_int(p, 1, 1 << 24, &v)) return false;
    prod *= v;
    if (prod > (1 << 24)) return false;
    m->size[m->n++] = v;
  }
  return true;
}

/* The value of option `name` at argv[*i]: "--name V" or "--name=V". */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val) {
  size_t n = strlen(name);
  const char *a = argv[*i];
  if (strncmp(a, name, n)) return 0;
  if (a[n] == '=') {
    *val = a + n + 1;
    return 1;
  }
  if (a[n]) return 0;
  if (*i + 1 >= argc) {
    sbpc_error("%s needs a value", name);
    return -1;
  }
  *val = argv[++*i];
  return 1;
}

int drv_opt(int argc, char **argv, int *i, drv_opts *o) {
  static const char *names[] = {"--cluster", "--batch", "--seq", "--mesh"};
  for (int k = 0; k < 4; k++) {
    const char *v = NULL;
    int r = opt_value(argc, argv, i, names[k], &v);
    if (r <= 0) {
      if (r < 0) return -1;
      continue;
    }
    bool ok = true;
    if (k == 0) o->cluster = v;
    else if (k == 1) ok = drv_parse_int(v, 1, INT64_C(1) << 31, &o->batch);
    else if (k == 2) ok = drv_parse_int(v, 1, INT64_C(1) << 31, &o->seq);
    else ok = drv_parse_mesh(v, &o->mesh);
    if (!ok) {
      sbpc_error("bad value '%s' for %s (%s)", v, names[k],
                 k == 3 ? "expected N or NxM, e.g. 2 or 2x4" : "expected a positive integer");
      return -1;
    }
    return 1;
  }
  return 0;
}

int drv_model_load(const char *path, drv_model *m) {
  memset(m, 0, sizeof *m);
  m->src = read_file(path, FE_MAX_FILE, &m->len);
  if (!m->src) return EXIT_BAD_INPUT;
  diag_init(&m->d, path, m->src, m->len);
  if (!fe_parse(path, m->src, m->len, &m->p, &m->d)) {
    drv_model_free(m);
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}

void drv_model_free(drv_model *m) {
  fe_program_free(&m->p);
  free(m->src);
  memset(m, 0, sizeof *m);
}

ir_cluster *drv_cluster(const drv_opts *o, const ir_program *p, arena *a, const char *fallback) {
  if (o->cluster) return fe_cluster_load(o->cluster, a);
  if (p && p->cluster) return p->cluster;
  if (fallback) return fe_cluster_load(fallback, a);
  sbpc_error("no cluster: give --cluster NAME:COUNT or a cluster section");
  return NULL;
}

/* c * b^pb * s^ps <= 2^62, computed without overflow. */
static bool dim_fits(ir_dim d, int64_t b, int64_t s, int64_t *out) {
  int64_t v = d.c;
  for (int i = 0; i < d.b; i++)
    if (__builtin_mul_overflow(v, b, &v)) return false;
  for (int i = 0; i < d.s; i++)
    if (__builtin_mul_overflow(v, s, &v)) return false;
  *out = v;
  return v <= (INT64_C(1) << 62);
}

static bool tensor_fits(const ir_tensor *t, int64_t b, int64_t s) {
  int64_t n = 1, v;
  for (int i = 0; i < t->rank; i++)
    if (!dim_fits(t->shape[i], b, s, &v) || __builtin_mul_overflow(n, v, &n) || n > (INT64_C(1) << 62))
      return false;
  return true;
}

int drv_bind(const drv_opts *o, ir_program *p) {
  ir_graph *g = p->g;
  if (!g) return EXIT_OK;
  int64_t b = o->batch ? o->batch : p->train.global_batch ? p->train.global_batch : 1;
  int64_t s = o->seq ? o->seq : p->train.seq ? p->train.seq : 1;
  for (int i = 0; i < g->nt; i++)
    if (!tensor_fits(&g->t[i], b, s)) {
      sbpc_error("with B=%lld and S=%lld, tensor '%s' has more than 2^62 elements", (long long)b, (long long)s,
                 g->t[i].name ? g->t[i].name : "?");
      return EXIT_BAD_INPUT;
    }
  ir_bind(g, b, s);
  if (o->mesh.n) g->mesh = o->mesh;
  return EXIT_OK;
}

const char *drv_thousands(int64_t n, char *buf, size_t len) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%lld", (long long)(n < 0 ? -n : n));
  size_t k = 0, l = strlen(tmp);
  if (n < 0 && k + 1 < len) buf[k++] = '-';
  for (size_t i = 0; i < l && k + 1 < len; i++) {
    buf[k++] = tmp[i];
    if ((l - i - 1) % 3 == 0 && i + 1 < l && k + 1 < len) buf[k++] = ',';
  }
  buf[k] = 0;
  return buf;
}
