/* ex_common.c — what every exporter shares: the warning channel (a comment in
 * the output plus a warning on stderr) and a few derived facts about a plan
 * (global batch, uneven stages, mixed devices, uneven TP shards, whether the
 * plan uses Megatron-style sequence parallelism). */
#include "export/export.h"
#include <stdarg.h>
#include <string.h>

static const char *rank_type(const sbpc_plan *p, int d);

/* vsay: format into msg[0..n), control characters made spaces (one line,
 * whatever the plan's names hold), and print "PLAN: KIND: msg" on err. */
static void vsay(ex_ctx *c, const char *kind, char *msg, size_t n, const char *fmt, va_list ap) {
  char plan[256];
  vsnprintf(msg, n, fmt, ap);
  for (char *q = msg; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = ' ';
  if (c->err) fprintf(c->err, "%s: %s: %s\n", c->plan ? ex_clean(c->plan, plan, sizeof plan) : "sbpc", kind, msg);
}

void ex_warn(ex_ctx *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsay(c, "warning", msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->warnings++;
  FILE *o = c->notes ? c->notes : c->out;
  if (o && c->comment) fprintf(o, "%s WARNING: %s\n", c->comment, msg);
}

int ex_refuse(ex_ctx *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsay(c, "error", msg, sizeof msg, fmt, ap);
  va_end(ap);
  return 1;
}

int ex_cpu_devices(const sbpc_plan *p) {
  for (int i = 0; i < p->nstages; i++) {
    const char *t = p->stages[i].device_type;
    for (int k = 0; !t && k < p->stages[i].ndevices; k++) t = rank_type(p, p->stages[i].devices[k]);
    if (!t && p->ndevice_types) t = p->device_types[0];
    if (!t || strncmp(t, "cpu", 3)) return 0;
  }
  return p->nstages > 0;
}

int ex_check_heads(const sbpc_plan *p, ex_ctx *c) {
  if (p->heads && p->heads % p->tp)
    return ex_refuse(c, "tp=%d does not divide the %d attention heads; no target can shard them (re-plan with "
                        "--fix tp=N, N dividing %d)", p->tp, p->heads, p->heads);
  if (p->kv_heads && p->kv_heads % p->tp)
    return ex_refuse(c, "tp=%d does not divide the %d key/value heads (GQA groups); re-plan with --fix tp=N, N "
                        "dividing %d", p->tp, p->kv_heads, p->kv_heads);
  return 0;
}

const char *ex_clean(const char *s, char *buf, size_t n) {
  size_t i = 0;
  for (; s[i] && i + 1 < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    buf[i] = ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\' || ch == '`' || ch == '$' ? '_' : (char)ch;
  }
  buf[i] = 0;
  return buf;
}

const char *ex_ident(const char *s, char *buf, size_t n) {
  size_t i = 0, o = 0;
  if (n < 2) return "";
  if (*s >= '0' && *s <= '9') buf[o++] = '_';
  for (; s[i] && o + 1 < n; i++) {
    char ch = s[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
    buf[o++] = ok ? ch : '_';
  }
  buf[o] = 0;
  return buf;
}

void ex_note(ex_ctx *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsay(c, "note", msg, sizeof msg, fmt, ap);
  va_end(ap);
}

int ex_global_batch(const sbpc_plan *p) {
  if (p->global_batch > 0) return p->global_batch;
  return p->micro_batch * p->num_micro_batches * p->dp;
}

int ex_uneven_stages(const sbpc_plan *p) {
  for (int i = 1; i < p->nstages; i++)
    if (p->stages[i].nlayers != p->stages[0].nlayers) return 1;
  return 0;
}

/* rank_type: the device type of global rank d from cluster.node_types. */
static const char *rank_type(const sbpc_plan *p, int d) {
  for (int i = 0; i < p->ntype_ranges; i++)
    if (d < p->type_rank_end[i]) return p->type_device[i];
  return NULL;
}

/* used_types_mixed: 1 when the ranks the stages run on span two device types
 * (so a plan on the A100 subset of a mixed cluster is not mixed). */
static int used_types_mixed(const sbpc_plan *p) {
  const char *first = NULL;
  for (int i = 0; i < p->nstages; i++)
    for (int k = 0; k < p->stages[i].ndevices; k++) {
      const char *t = rank_type(p, p->stages[i].devices[k]);
      if (!t || (first && strcmp(first, t))) return 1;
      first = t;
    }
  return 0;
}

int ex_mixed_devices(const sbpc_plan *p) {
  if (p->ntype_ranges && p->nstages) return used_types_mixed(p);
  if (p->ndevice_types > 1) return 1;
  const char *first = NULL;
  for (int i = 0; i < p->nstages; i++) {
    const char *t = p->stages[i].device_type;
    if (!t) continue;
    if (first && strcmp(first, t)) return 1;
    first = t;
  }
  return 0;
}

const sbpc_plan_op *ex_uneven_tp(const sbpc_plan *p) {
  for (int i = 0; i < p->nops; i++)
    if (p->ops[i].uneven) return &p->ops[i];
  return NULL;
}

int ex_axis(const sbpc_plan *p, const char *name) {
  for (int i = 0; i < p->naxes; i++)
    if (!strcmp(p->axes[i], name)) return i;
  return -1;
}

static int is_norm(const sbpc_plan_op *op) {
  return op->kind && (!strcmp(op->kind, "layer_norm") || !strcmp(op->kind, "rms_norm"));
}

int ex_megatron_sp(const sbpc_plan *p) {
  if (p->sequence_parallel >= 0) return p->sequence_parallel && p->tp > 1;
  if (p->tp <= 1 || !ex_tp_shards_weights(p)) return 0;
  for (int i = 0; i < p->nops; i++) {
    const sbpc_plan_op *op = &p->ops[i];
    if (is_norm(op) && op->nout && !strcmp(op->out_sbp[0], "S(1)")) return 1;
  }
  return 0;
}

int ex_tp_shards_weights(const sbpc_plan *p) {
  for (int i = 0; i < p->nops; i++) {
    const sbpc_plan_op *op = &p->ops[i];
    if (op->block && op->kind && !strcmp(op->kind, "matmul") && op->nin > 1 && op->in_sbp[1][0] == 'S') return 1;
  }
  return 0;
}

void ex_common_warnings(const sbpc_plan *p, ex_ctx *c) {
  if (ex_mixed_devices(p))
    ex_warn(c, "the plan mixes device types; this target assumes identical devices, so per-device "
               "speed weighting is lost (the stage partition is kept where the target allows)");
  const sbpc_plan_op *u = ex_uneven_tp(p);
  if (u)
    ex_warn(c, "op '%s'%s%s%s has uneven (speed-weighted) tensor-parallel shards; written as even shards", u->name,
            u->nin > 1 && u->in_names[1] ? " (weight " : "", u->nin > 1 && u->in_names[1] ? u->in_names[1] : "",
            u->nin > 1 && u->in_names[1] ? ")" : "");
  if (p->tp > 1 && p->nops && !ex_tp_shards_weights(p))
    ex_warn(c, "the plan's 'tp' axis keeps the weights whole and splits the sequence (attention by heads, "
               "Ulysses-style); written as tensor parallelism of degree %d (same degree, weights sharded)", p->tp);
  if (p->adaptive_sp)
    ex_warn(c, "the plan uses per-batch adaptive sequence parallelism; written as a fixed degree %d", p->sp);
}

const char *ex_collective(const char *c, char *buf, size_t n) {
  snprintf(buf, n, "%s", c);
  for (char *q = buf; *q; q++)
    if (*q == '_') *q = '-';
  return buf;
}

int ex_nodes(const sbpc_plan *p, ex_ctx *c, int *per) {
  int used = p->devices_used, dpn = p->devices_per_node;
  if (dpn > 0 && used < dpn) { /* the planner chose part of one node */
    *per = used;
    return 1;
  }
  if (dpn > 0 && used % dpn == 0) {
    *per = dpn;
    return used / dpn;
  }
  ex_warn(c, "the nodes have different device counts; give each node its own process count");
  *per = 0;
  return p->nodes;
}
