/* sp_cost.c — the cost model of sequence parallelism (docs/sp.md, "Cost").
 *
 * Time of one sequence of L tokens on a group of k devices (forward and
 * backward, bf16 activations, causal attention):
 *   GEMMs      6 L (layers * layer_params + H V)            FLOPs
 *   attention  6 L^2 H layers / 2  (causal: half the scores)  FLOPs
 * divided by the group's summed FLOP/s (each device takes a share of the
 * tokens proportional to its speed, so mixed groups finish together).
 * Ulysses adds 4 all-to-alls per layer forward and 4 backward (q, k, v, out);
 * a device sends (k-1)/k of its share; traffic to devices of the same node
 * goes over the link, the rest over the device's NIC share, and the slower of
 * the two sets the time. Ring attention passes KV blocks round the ring (k-1
 * steps per layer, twice the bytes backward) overlapped with the attention
 * compute: per layer max(attention, transfer). A group pays a constant per
 * micro-batch (collective latencies, launch and sync overhead). A
 * calibration (sp_hw.a2a / p2p, docs/calibration.md) replaces the link model
 * of a group's collective by the bus bandwidth measured for its kind, size
 * and placement, its latency by the measured one, and the 2 ms by the
 * measured fixed cost. The token
 * budget per device: memory * 0.9 minus ZeRO-3 sharded state (16 bytes per
 * parameter over all devices) and two gathered layers, divided by the
 * activation bytes per token: 34 H per layer (flash attention, no
 * recompute) plus 4 V for the logits. */
#include "planner/sp.h"
#include <string.h>

#define SP_GROUP_CONST 2e-3 /* seconds per group and micro-batch */
#define SP_ACT_BYTES 2.0    /* bf16 activations on the wire */

double sp_token_budget(const sp_model *m, double mem, int ndp) {
  double state = 16.0 * m->params / (ndp > 0 ? ndp : 1) + 4.0 * m->layer_params;
  double per_tok = 34.0 * (double)m->hidden * m->layers + 4.0 * (double)m->vocab;
  return (0.9 * mem - state) / per_tok;
}

/* fill_shape: devices, speed, capacity and links of a group. */
static void fill_shape(sp_gtype *g, const sp_hw *hw, int intra, const int *nodes) {
  double fmax = 0;
  g->intra = intra;
  g->bw_link = g->bw_nic = 1e30;
  g->per_node = 1 << 30;
  if (intra >= 0) {
    const sp_ntype *t = &hw->t[intra];
    g->flops = g->size * t->flops;
    g->cap = g->size * t->budget;
    g->share_max = 1.0 / g->size;
    g->bw_link = t->link_bw;
    g->per_node = g->size;
    return;
  }
  g->size = 0;
  g->flops = 0;
  for (int i = 0; i < hw->nt; i++) {
    g->nodes[i] = nodes[i];
    if (!nodes[i]) continue;
    const sp_ntype *t = &hw->t[i];
    g->size += nodes[i] * t->ndev;
    g->flops += nodes[i] * t->ndev * t->flops;
    if (t->flops > fmax) fmax = t->flops;
    if (t->link_bw < g->bw_link) g->bw_link = t->link_bw;
    if (t->nic_bw < g->bw_nic) g->bw_nic = t->nic_bw;
    if (t->ndev < g->per_node) g->per_node = t->ndev;
  }
  g->cap = 1e300;
  for (int i = 0; i < hw->nt; i++) {
    if (!nodes[i]) continue;
    double c = hw->t[i].budget * g->flops / hw->t[i].flops;
    if (c < g->cap) g->cap = c;
  }
  g->share_max = fmax / g->flops;
}

bool sp_gtype_make(sp_gtype *g, const sp_hw *hw, const sp_model *m, int kind,
                   int intra, const int *nodes) {
  int size = g->size;
  memset(g, 0, sizeof *g);
  g->kind = kind;
  g->size = size;
  fill_shape(g, hw, intra, nodes);
  if (g->size < 1) return false;
  if (kind == SP_ULYSSES && g->size > m->heads) return false;
  if (kind == SP_RING && g->size < 2) return false;
  if (hw->ulysses_divides && (kind != SP_ULYSSES || m->heads % g->size || m->kv_heads % g->size)) return false;
  double lat = 0, bw, alpha;
  for (int i = 0; i < hw->nt; i++) {
    double l = intra >= 0 ? (i == intra ? hw->t[i].link_lat : 0) : (nodes[i] ? hw->t[i].nic_lat : 0);
    if (l > lat) lat = l;
  }
  int k = g->size;
  const plan_colltab *t = &(kind == SP_ULYSSES ? hw->a2a : hw->p2p)[intra >= 0 ? PLAN_INTRA : PLAN_INTER];
  if (k > 1 && plan_coll_interp(t->n, t->bw, t->alpha, t->cnt, k, &bw, &alpha)) { /* measured */
    g->cbw = bw;
    if (alpha >= 0) lat = alpha;
  }
  double colls = k == 1 ? 0 : kind == SP_ULYSSES ? 8.0 : 3.0 * (k - 1);
  g->c0 = (hw->group_fixed >= 0 ? hw->group_fixed : SP_GROUP_CONST) + m->layers * colls * lat;
  return true;
}

/* a2a_time: seconds of one all-to-all in which each device holds `bytes`. */
static double a2a_time(const sp_gtype *g, double bytes) {
  int k = g->size, p = g->per_node;
  if (k <= 1) return 0;
  double sent = bytes * (k - 1) / k;
  if (g->cbw > 0) return sent / g->cbw;
  double in = sent * (p - 1) / (k - 1) / g->bw_link;
  double out = g->intra >= 0 ? 0 : sent * (k - p) / (k - 1) / g->bw_nic;
  return in > out ? in : out;
}

double sp_seq_time(const sp_model *m, const sp_gtype *g, double len) {
  double h = (double)m->hidden, hkv = h * m->kv_heads / m->heads;
  double gemm = 6.0 * len * (m->layers * m->layer_params + h * m->vocab);
  double attn_fwd_layer = 2.0 * len * len * h; /* causal: half of 4 L^2 H */
  double share = len * g->share_max;           /* tokens on the busiest device */
  if (g->kind == SP_RING && g->size > 1) {
    double bw = g->cbw > 0 ? g->cbw : g->intra >= 0 ? g->bw_link : (g->bw_nic < g->bw_link ? g->bw_nic : g->bw_link);
    double kv = share * 2.0 * hkv * SP_ACT_BYTES;
    double comm = (g->size - 1) * kv / bw;
    double comp = attn_fwd_layer / g->flops;
    double layer = 3.0 * (comp > comm ? comp : comm);
    return gemm / g->flops + m->layers * layer;
  }
  double t = (gemm + 3.0 * attn_fwd_layer * m->layers) / g->flops;
  if (g->size > 1) {
    double bytes = share * (2.0 * h + 2.0 * hkv) * SP_ACT_BYTES;
    t += 2.0 * m->layers * a2a_time(g, bytes);
  }
  return t;
}

/* allowed_total: node counts of cross-node groups: 2..8, then powers of two. */
static bool allowed_total(int n) { return n >= 2 && (n <= 8 || (n & (n - 1)) == 0); }

static int add_both(sp_gtype *out, int n, int max, const sp_hw *hw, const sp_model *m,
                    int size, int intra, const int *nodes) {
  for (int kind = SP_ULYSSES; kind <= SP_RING && n < max; kind++) {
    out[n].size = size;
    if (sp_gtype_make(&out[n], hw, m, kind, intra, nodes)) n++;
  }
  return n;
}

int sp_gtypes(const sp_hw *hw, const sp_model *m, sp_gtype *out, int max) {
  int n = 0;
  for (int t = 0; t < hw->nt; t++)
    for (int k = 1; k <= hw->t[t].ndev; k++) n = add_both(out, n, max, hw, m, k, t, NULL);
  int cnt[SP_MAXNT] = {0};
  for (;;) { /* every vector of node counts, odometer order */
    int i = 0;
    while (i < hw->nt && ++cnt[i] > hw->t[i].count) cnt[i++] = 0;
    if (i == hw->nt) break;
    int tot = 0;
    for (int j = 0; j < hw->nt; j++) tot += cnt[j];
    if (allowed_total(tot)) n = add_both(out, n, max, hw, m, 0, -1, cnt);
  }
  return n;
}
