/* cluster.c — a cluster section to an ir_cluster, and cluster utilities.
 *
 * Device, node and nodes entries may come in any order: devices are read
 * first, then nodes (which name a device type), then the node counts. Every
 * quantity must carry a unit of the right kind (FLOP rate, size, bandwidth,
 * time); values are stored in base units (FLOP/s, bytes, bytes/s, seconds).
 * Link bandwidth is per device and direction; a NIC entry is count x
 * bandwidth per NIC. Latencies default to 2 us (link) and 5 us (NIC). */
#include "frontend/lower.h"
#include <string.h>

typedef struct {
  const char *name;
  double scale;
} unitdef;

static const unitdef flops_units[] = {{"FLOPS", 1}, {"GFLOPS", 1e9}, {"TFLOPS", 1e12}, {"PFLOPS", 1e15}, {0, 0}};
static const unitdef size_units[] = {{"B", 1},     {"KB", 1e3},   {"MB", 1e6},          {"GB", 1e9},
                                     {"TB", 1e12}, {"KiB", 1024}, {"MiB", 1048576.0},   {"GiB", 1073741824.0},
                                     {"TiB", 1099511627776.0},    {0, 0}};
static const unitdef bw_units[] = {{"KB/s", 1e3},  {"MB/s", 1e6},          {"GB/s", 1e9},           {"TB/s", 1e12},
                                   {"PB/s", 1e15}, {"Kb/s", 1e3 / 8},      {"Mb/s", 1e6 / 8},       {"Gb/s", 1e9 / 8},
                                   {"Tb/s", 1e12 / 8}, {"KiB/s", 1024.0},  {"MiB/s", 1048576.0},    {"GiB/s", 1073741824.0},
                                   {0, 0}};
static const unitdef time_units[] = {{"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}, {0, 0}};

/* The value of q in base units; what names the quantity in messages. */
static bool qty(diag *d, const fe_qty *q, const unitdef *u, const char *kind, const char *what, double *out) {
  if (!(q->v > 0) || (q->is_int && q->i == INT64_MIN)) {
    diag_error(d, q->loc, "%s must be positive", what);
    return false;
  }
  for (const unitdef *x = u; q->unit && x->name; x++)
    if (!strcmp(x->name, q->unit)) {
      *out = q->v * x->scale;
      return true;
    }
  char list[160] = "";
  for (const unitdef *x = u; x->name; x++) {
    strcat(list, x == u ? "" : " ");
    strcat(list, x->name);
  }
  if (q->unit)
    diag_error(d, q->loc, "%s: '%s' is not a %s unit (expected one of: %s)", what, q->unit, kind, list);
  else
    diag_error(d, q->loc, "%s needs a %s unit (one of: %s)", what, kind, list);
  return false;
}

static bool device_kv(diag *d, ir_devtype *dv, const fe_nitem *kv, unsigned *seen) {
  if (!strncmp(kv->name, "peak.", 5)) {
    int t = ir_dtype_parse(kv->name + 5);
    if (t < 0) {
      diag_error(d, kv->loc, "unknown dtype in '%s' (expected peak.f32, peak.f16, peak.bf16, ...)", kv->name);
      return false;
    }
    *seen |= 1;
    return qty(d, &kv->q, flops_units, "FLOP rate", kv->name, &dv->peak_flops[t]);
  }
  if (!strcmp(kv->name, "memory")) return *seen |= 2, qty(d, &kv->q, size_units, "size", "memory", &dv->mem_bytes);
  if (!strcmp(kv->name, "bandwidth"))
    return *seen |= 4, qty(d, &kv->q, bw_units, "bandwidth", "bandwidth", &dv->mem_bw);
  diag_error(d, kv->loc, "unknown device field '%s' (expected peak.DTYPE, memory, bandwidth)", kv->name);
  return false;
}

static bool lower_device(diag *d, const fe_citem *ci, ir_devtype *dv, arena *a) {
  unsigned seen = 0;
  bool ok = true;
  dv->name = arena_strdup(a, ci->name);
  for (const fe_nitem *kv = ci->list; kv; kv = kv->next) ok &= device_kv(d, dv, kv, &seen);
  static const char *need[] = {"peak FLOP rate (peak.bf16 = ...)", "memory", "bandwidth"};
  for (int i = 0; i < 3 && ok; i++)
    if (!(seen & (1u << i))) {
      diag_error(d, ci->loc, "device '%s' has no %s", ci->name, need[i]);
      ok = false;
    }
  return ok;
}

static int find_dev(const ir_cluster *c, const char *name) {
  for (int i = 0; i < c->ndev; i++)
    if (!strcmp(c->dev[i].name, name)) return i;
  return -1;
}

static int find_node(const ir_cluster *c, const char *name) {
  for (int i = 0; i < c->nnode; i++)
    if (!strcmp(c->node[i].name, name)) return i;
  return -1;
}

static bool node_entry(diag *d, const ir_cluster *c, ir_nodetype *nt, const fe_nitem *e, arena *a) {
  if (e->kind == FE_N_COUNT) {
    if (nt->ndev) return diag_error(d, e->loc, "a node has one device entry (COUNT x DEVICE)"), false;
    nt->devtype = find_dev(c, e->name);
    if (nt->devtype < 0) return diag_error(d, e->loc, "unknown device type '%s'", e->name), false;
    if (e->count < 1 || e->count > 65536)
      return diag_error(d, e->loc, "a node has 1 to 65536 devices, not %lld", (long long)e->count), false;
    nt->ndev = (int)e->count;
    return true;
  }
  bool link = e->kind == FE_N_LINK;
  if (link ? nt->link_name != NULL : nt->nic_name != NULL)
    return diag_error(d, e->loc, "a node has one %s entry", link ? "link" : "nic"), false;
  if (!link && (e->count < 1 || e->count > 1024))
    return diag_error(d, e->loc, "a node has 1 to 1024 NICs, not %lld", (long long)e->count), false;
  double bw, lat = link ? 2e-6 : 5e-6;
  if (!qty(d, &e->q, bw_units, "bandwidth", link ? "link bandwidth" : "NIC bandwidth", &bw)) return false;
  if (e->has_lat && !qty(d, &e->lat, time_units, "time", "latency", &lat)) return false;
  if (link) {
    nt->link_name = arena_strdup(a, e->name);
    nt->link_bw = bw, nt->link_lat = lat;
  } else {
    nt->nic_name = arena_strdup(a, e->name);
    nt->nics = (int)e->count, nt->nic_bw = bw, nt->nic_lat = lat;
  }
  return true;
}

static bool lower_node(diag *d, ir_cluster *c, const fe_citem *ci, ir_nodetype *nt, arena *a) {
  bool ok = true;
  nt->name = arena_strdup(a, ci->name);
  nt->devtype = -1;
  for (const fe_nitem *e = ci->list; e; e = e->next) ok &= node_entry(d, c, nt, e, a);
  if (ok && !nt->ndev) {
    diag_error(d, ci->loc, "node '%s' has no devices (write COUNT x DEVICE)", ci->name);
    ok = false;
  }
  if (ok && nt->ndev > 1 && !nt->link_name) {
    diag_error(d, ci->loc, "node '%s' has %d devices but no link (link NAME = BANDWIDTH)", ci->name, nt->ndev);
    ok = false;
  }
  return ok;
}

static bool lower_counts(diag *d, ir_cluster *c, const fe_citem *ci) {
  bool ok = true;
  for (const fe_nitem *e = ci->list; e; e = e->next) {
    int k = find_node(c, e->name);
    if (k < 0) {
      diag_error(d, e->loc, "unknown node type '%s'", e->name);
      ok = false;
    } else if (e->count < 1 || e->count > 1000000) {
      diag_error(d, e->loc, "node count must be between 1 and 1000000, not %lld", (long long)e->count);
      ok = false;
    } else if (c->node_count[k]) {
      diag_error(d, e->loc, "node type '%s' is counted twice", e->name);
      ok = false;
    } else {
      c->node_count[k] = (int)e->count;
    }
  }
  return ok;
}

/* Count the entries of one kind, reporting duplicate names. */
static int count_kind(diag *d, const fe_section *s, fe_ckind k, bool *ok) {
  int n = 0;
  for (const fe_citem *ci = s->citems; ci; ci = ci->next) {
    if (ci->kind != k) continue;
    n++;
    for (const fe_citem *p = s->citems; p != ci; p = p->next)
      if (p->kind == k && k != FE_C_NODES && !strcmp(p->name, ci->name)) {
        diag_error(d, ci->loc, "'%s' is already defined (line %d)", ci->name, p->loc.line);
        *ok = false;
        break;
      }
  }
  return n;
}

ir_cluster *fe_lower_cluster(diag *d, const fe_section *s, arena *a) {
  bool ok = true;
  int nd = count_kind(d, s, FE_C_DEVICE, &ok), nn = count_kind(d, s, FE_C_NODE, &ok);
  int ncount = count_kind(d, s, FE_C_NODES, &ok);
  if (ncount != 1 || !ok) {
    if (ok) diag_error(d, s->loc, "cluster '%s' needs one nodes { COUNT x NODE, ... } entry", s->name);
    return NULL;
  }
  ir_cluster *c = ARENA_NEW(a, ir_cluster);
  c->name = arena_strdup(a, s->name);
  c->loc = s->loc;
  c->dev = ARENA_ARRAY(a, ir_devtype, nd ? nd : 1);
  c->node = ARENA_ARRAY(a, ir_nodetype, nn ? nn : 1);
  c->node_count = ARENA_ARRAY(a, int, nn ? nn : 1);
  for (const fe_citem *ci = s->citems; ci; ci = ci->next)
    if (ci->kind == FE_C_DEVICE) ok &= lower_device(d, ci, &c->dev[c->ndev++], a);
  for (const fe_citem *ci = s->citems; ci; ci = ci->next)
    if (ci->kind == FE_C_NODE) ok &= lower_node(d, c, ci, &c->node[c->nnode++], a);
  for (const fe_citem *ci = s->citems; ci; ci = ci->next)
    if (ci->kind == FE_C_NODES) ok &= lower_counts(d, c, ci);
  if (ok && fe_cluster_devices(c) > (INT64_C(1) << 24)) {
    diag_error(d, s->loc, "cluster '%s' has more than 2^24 devices", s->name);
    ok = false;
  }
  return ok ? c : NULL;
}

int64_t fe_cluster_devices(const ir_cluster *c) {
  int64_t n = 0;
  for (int i = 0; c && i < c->nnode; i++) n += (int64_t)c->node[i].ndev * c->node_count[i];
  return n;
}

ir_cluster *fe_cluster_copy(const ir_cluster *c, arena *a) {
  ir_cluster *r = ARENA_NEW(a, ir_cluster);
  *r = *c;
  r->name = arena_strdup(a, c->name);
  r->dev = ARENA_ARRAY(a, ir_devtype, c->ndev ? c->ndev : 1);
  r->node = ARENA_ARRAY(a, ir_nodetype, c->nnode ? c->nnode : 1);
  r->node_count = ARENA_ARRAY(a, int, c->nnode ? c->nnode : 1);
  for (int i = 0; i < c->ndev; i++) {
    r->dev[i] = c->dev[i];
    r->dev[i].name = arena_strdup(a, c->dev[i].name);
  }
  for (int i = 0; i < c->nnode; i++) {
    r->node[i] = c->node[i];
    r->node[i].name = arena_strdup(a, c->node[i].name);
    r->node[i].link_name = c->node[i].link_name ? arena_strdup(a, c->node[i].link_name) : NULL;
    r->node[i].nic_name = c->node[i].nic_name ? arena_strdup(a, c->node[i].nic_name) : NULL;
    r->node_count[i] = c->node_count[i];
  }
  return r;
}
