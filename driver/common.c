/* common.c — the shared command-line options (a table for driver/opts.c),
 * model loading and binding for the sbpc commands (see common.h). Binding checks every tensor's element
 * count with overflow-checked arithmetic before ir_bind, so no later pass can
 * overflow an int64 computing a size. */
#include "driver/common.h"
#include "frontend/frontend.h"
#include <stdlib.h>
#include <string.h>

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

static bool mesh_value(const char *v, void *dst) { return drv_parse_mesh(v, dst); }

const drv_option drv_model_options[] = {
    {DRV_OPT("--cluster", DRV_STR, drv_opts, cluster, "SPEC",
             "the cluster: PRESET:NODES (dgx-a100:2, cpu:4) or CLUSTER.sbp\n(default: the file's cluster section)")},
    {DRV_OPT("--mesh", DRV_CALL, drv_opts, mesh, "N|NxM", "the device mesh SBP is deduced on"), .parse = mesh_value,
     .expect = "N or NxM, e.g. 2 or 2x4"},
    {0}};

const drv_option drv_size_options[] = {
    {DRV_OPT("--batch", DRV_I64, drv_opts, batch, "N", "the global batch (default: the train section's)"), .lo = 1,
     .hi = INT64_C(1) << 31},
    {DRV_OPT("--seq", DRV_I64, drv_opts, seq, "N", "the sequence length (default: the train section's)"), .lo = 1,
     .hi = INT64_C(1) << 31},
    {0}};

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

bool drv_model_graph(const drv_model *m) {
  if (!m->p.g) diag_file_error(m->d.file, "the file has no model section");
  return m->p.g != NULL;
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
