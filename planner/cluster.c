/* cluster.c — ranks, nodes and links: what a group of devices crosses.
 *
 * Global ranks are numbered node by node in the order of the cluster's node
 * list. A group of n ranks (base, base + stride, ...) inside one node uses the
 * node's link (NVLink/NVSwitch bandwidth per device). A group that spans nodes
 * goes through the NICs: every group of the same mesh axis communicates at the
 * same time, and a node holding k members of one group carries ndev/k such
 * streams, so each stream gets nics * nic_bw * k / ndev (never more than the
 * intra-node link); between node types the slower NIC share counts, and the
 * latency is the larger one. Device rates fall back bf16 -> f16 -> f32 when a
 * device has no peak for the precision (a V100 runs "bf16" work in fp16). */
#include "planner/plan_int.h"
#include <stdlib.h>

bool plan_cl_init(plan_cl *cl, const ir_cluster *c, arena *a) {
  cl->c = c;
  cl->ndev = cl->nnodes = 0;
  for (int i = 0; i < c->nnode; i++) {
    if (c->node_count[i] < 0 || c->node[i].ndev <= 0 || c->node[i].devtype < 0 ||
        c->node[i].devtype >= c->ndev)
      return false;
    cl->nnodes += c->node_count[i];
    cl->ndev += c->node_count[i] * c->node[i].ndev;
  }
  if (cl->ndev <= 0) return false;
  cl->rank_node = ARENA_ARRAY(a, int, cl->ndev);
  cl->node_type = ARENA_ARRAY(a, int, cl->nnodes);
  cl->node_first = ARENA_ARRAY(a, int, cl->nnodes);
  int node = 0, rank = 0;
  for (int i = 0; i < c->nnode; i++)
    for (int k = 0; k < c->node_count[i]; k++, node++) {
      cl->node_type[node] = i;
      cl->node_first[node] = rank;
      for (int d = 0; d < c->node[i].ndev; d++) cl->rank_node[rank++] = node;
    }
  return true;
}

plan_dev plan_dev_of(const ir_cluster *c, int t, ir_dtype p) {
  const ir_devtype *d = &c->dev[t];
  plan_dev r = {d->peak_flops[p], d->mem_bw, d->mem_bytes};
  if (r.flops <= 0 && p == IR_BF16) r.flops = d->peak_flops[IR_F16];
  if (r.flops <= 0) r.flops = d->peak_flops[IR_F32];
  if (r.flops <= 0) r.flops = 1e12; /* a device without rates: 1 TFLOP/s */
  if (r.bw <= 0) r.bw = 1e11;
  return r;
}

static double nic_total(const ir_nodetype *nt) {
  return (nt->nics > 0 ? nt->nics : 1) * nt->nic_bw;
}

plan_link plan_group_link(const plan_cl *cl, int base, int stride, int n) {
  const ir_cluster *c = cl->c;
  int first = cl->rank_node[base], last = cl->rank_node[base + (n - 1) * stride];
  const ir_nodetype *nt0 = &c->node[cl->node_type[first]];
  plan_link l = {nt0->link_bw > 0 ? nt0->link_bw : 1e11, nt0->link_lat, PLAN_INTRA};
  if (first == last) return l;
  /* members per node: walk the group once */
  double bw = l.bw, lat = 0;
  int i = 0;
  while (i < n) {
    int node = cl->rank_node[base + i * stride], k = 0;
    while (i < n && cl->rank_node[base + i * stride] == node) i++, k++;
    const ir_nodetype *nt = &c->node[cl->node_type[node]];
    double share = nic_total(nt) * k / nt->ndev;
    if (share < bw) bw = share;
    if (nt->link_bw > 0 && nt->link_bw < bw) bw = nt->link_bw;
    if (nt->nic_lat > lat) lat = nt->nic_lat;
  }
  l.bw = bw > 0 ? bw : 1e9;
  l.lat = lat > l.lat ? lat : l.lat;
  l.inter = PLAN_INTER;
  return l;
}
