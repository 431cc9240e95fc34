/* sp_baselines.c — what the adaptive plan is compared with, on the same
 * cost model and the same packing code.
 *
 * A uniform layout cuts the devices, in order, into groups of one degree:
 * degrees that divide every node's device count stay inside nodes, larger
 * ones take whole consecutive nodes (they must divide the node count). Static
 * SP (Megatron-LM / DeepSpeed-Ulysses style) is the one degree and kind that
 * is best over a whole run; per-batch best picks again for every batch.
 * Greedy: each sequence's natural degree is the smallest uniform degree that
 * holds it and finishes it within the ideal step time (all work spread
 * evenly; else the fastest degree that holds it); devices go to degrees in proportion to their device-seconds
 * (largest degree first, aligned); sequences are placed longest first on the
 * group that finishes earliest (sp_pack without repair). */
#include "planner/sp.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int sp_degrees(const sp_hw *hw, int *deg, int max) {
  int n = 0, dmin = 1 << 30, same = 1, nodes = 0;
  for (int t = 0; t < hw->nt; t++) {
    if (hw->t[t].ndev < dmin) dmin = hw->t[t].ndev;
    if (hw->t[t].ndev != hw->t[0].ndev) same = 0;
    nodes += hw->t[t].count;
  }
  for (int k = 1; k <= dmin && n < max; k++) {
    int ok = 1;
    for (int t = 0; t < hw->nt; t++) ok &= hw->t[t].ndev % k == 0;
    if (ok) deg[n++] = k;
  }
  for (int j = 2; same && j <= nodes && n < max; j++)
    if (nodes % j == 0) deg[n++] = j * hw->t[0].ndev;
  return n;
}

int sp_layout(const sp_hw *hw, const sp_model *m, int degree, int kind, arena *a, sp_group *out) {
  int ng = 0, d0 = hw->t[0].ndev;
  if (degree <= d0 && hw->t[0].ndev % degree == 0) {
    for (int t = 0; t < hw->nt; t++)
      for (int i = 0; i < hw->t[t].ndev * hw->t[t].count; i += degree) {
        sp_group *g = &out[ng++];
        memset(g, 0, sizeof *g);
        g->g.size = degree;
        if (!sp_gtype_make(&g->g, hw, m, kind, t, NULL)) return -1;
        g->dev = ARENA_ARRAY(a, int, degree);
        for (int d = 0; d < degree; d++) g->dev[g->ndev++] = hw->first[t] + i + d;
      }
    return ng;
  }
  int j = degree / d0, node = 0, total = hw->ndev / d0;
  for (; node < total; node += j) {
    int nodes[SP_MAXNT] = {0};
    for (int q = node; q < node + j; q++) {
      int t = 0, acc = hw->t[0].count;
      while (q >= acc) acc += hw->t[++t].count;
      nodes[t]++;
    }
    sp_group *g = &out[ng++];
    memset(g, 0, sizeof *g);
    if (!sp_gtype_make(&g->g, hw, m, kind, -1, nodes)) return -1;
    g->dev = ARENA_ARRAY(a, int, degree);
    for (int d = 0; d < degree; d++) g->dev[g->ndev++] = node * d0 + d;
  }
  return ng;
}

/* pack_micro: the batch over copies of groups tmpl[0..ng), with as few
 * micro-batches as packing allows. */
static bool pack_micro(const sp_model *m, const sp_group *tmpl, int ng, const int64_t *len, int n,
                       const sp_opts *o, bool rep, arena *a, sp_plan *out) {
  double cap = 0, cmax = 0, tok = 0;
  int64_t lmax = 0;
  for (int g = 0; g < ng; g++) cap += tmpl[g].g.cap, cmax = fmax(cmax, tmpl[g].g.cap);
  for (int i = 0; i < n; i++) tok += (double)len[i], lmax = len[i] > lmax ? len[i] : lmax;
  if ((double)lmax > cmax) return false;
  int *all = xmalloc(sizeof(int) * (size_t)n), *mb = xmalloc(sizeof(int) * (size_t)n);
  int *idx = xmalloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) all[i] = i;
  sp_gtype *gt = xmalloc(sizeof(sp_gtype) * (size_t)ng);
  double *w = xmalloc(sizeof(double) * (size_t)n), *lo = xmalloc(sizeof(double) * (size_t)n);
  int ndev = 0;
  for (int g = 0; g < ng; g++) gt[g] = tmpl[g].g, ndev += tmpl[g].g.size;
  sp_work(m, gt, ng, ndev, len, all, n, w, lo);
  bool ok = false;
  double tokcap = 0.9 * cap;
  for (int k0 = 1, tries = 0; tries < 40 && !ok; tries++, tokcap *= 0.93) {
    int k = (int)fmax(k0, ceil(tok / tokcap));
    if (k > o->max_micro || k > n) break;
    k0 = k;
    sp_split_micro(len, all, n, k, w, lo, fmin(tokcap, 1.1 * tok / k), mb);
    out->mb = ARENA_ARRAY(a, sp_micro, k);
    out->nmb = k;
    out->step_time = 0;
    ok = true;
    for (int q = 0; q < k && ok; q++) {
      int c = 0;
      for (int i = 0; i < n; i++)
        if (mb[i] == q) idx[c++] = i;
      sp_micro *mi = &out->mb[q];
      mi->grp = ARENA_ARRAY(a, sp_group, ng);
      mi->ngrp = ng;
      memcpy(mi->grp, tmpl, sizeof(sp_group) * (size_t)ng);
      ok = sp_pack(m, len, idx, c, mi->grp, ng, rep, a);
      mi->time = 0;
      for (int g = 0; g < ng && ok; g++) mi->time = fmax(mi->time, mi->grp[g].time);
      out->step_time += mi->time;
    }
  }
  free(all);
  free(mb);
  free(idx);
  free(gt);
  free(w);
  free(lo);
  return ok;
}

bool sp_uniform(const sp_hw *hw, const sp_model *m, int degree, int kind,
                const int64_t *len, int n, const sp_opts *o, arena *a, sp_plan *out) {
  memset(out, 0, sizeof *out);
  out->degree = degree;
  out->kind = kind;
  sp_group *tmpl = xmalloc(sizeof(sp_group) * (size_t)hw->ndev);
  int ng = sp_layout(hw, m, degree, kind, a, tmpl);
  bool ok = ng > 0 && pack_micro(m, tmpl, ng, len, n, o, true, a, out);
  free(tmpl);
  return ok;
}

bool sp_best_uniform(const sp_hw *hw, const sp_model *m, const int64_t *len, int n,
                     const sp_opts *o, arena *a, sp_plan *out) {
  int deg[64], nd = sp_degrees(hw, deg, 64);
  bool found = false;
  for (int i = 0; i < nd; i++)
    for (int kind = SP_ULYSSES; kind <= SP_RING; kind++) {
      sp_plan p;
      if (sp_uniform(hw, m, deg[i], kind, len, n, o, a, &p) && (!found || p.step_time < out->step_time))
        *out = p, found = true;
    }
  return found;
}

bool sp_static(const sp_hw *hw, const sp_model *m, const int64_t *const *len, const int *n,
               int nb, const sp_opts *o, arena *a, sp_plan *plans) {
  int deg[64], nd = sp_degrees(hw, deg, 64), bd = -1, bk = 0;
  double best = 1e300;
  sp_plan *p = xmalloc(sizeof(sp_plan) * (size_t)(nb > 0 ? nb : 1));
  for (int i = 0; i < nd; i++)
    for (int kind = SP_ULYSSES; kind <= SP_RING; kind++) {
      double sum = 0;
      for (int b = 0; b < nb && sum < 1e300; b++)
        sum = sp_uniform(hw, m, deg[i], kind, len[b], n[b], o, a, &p[b]) ? sum + p[b].step_time : 1e300;
      if (sum < best) best = sum, bd = deg[i], bk = kind;
    }
  for (int b = 0; b < nb && bd > 0; b++) sp_uniform(hw, m, bd, bk, len[b], n[b], o, a, &plans[b]);
  free(p);
  return bd > 0;
}

/* natural: index into deg of the smallest degree whose groups hold L and
 * finish it within `target` seconds; else the fastest degree that holds it. */
static int natural(const sp_model *m, const sp_group *lay, const int *first, int nd, int64_t L,
                   double target) {
  int fast = -1;
  double tf = 1e300;
  for (int i = 0; i < nd; i++) {
    if (first[i] < 0 || (double)L > lay[i].g.cap) continue;
    double t = lay[i].g.c0 + sp_seq_time(m, &lay[i].g, (double)L);
    if (t <= target) return i;
    if (t < tf) tf = t, fast = i;
  }
  return fast;
}

bool sp_greedy(const sp_hw *hw, const sp_model *m, const int64_t *len, int n,
               const sp_opts *o, arena *a, sp_plan *out) {
  int deg[64], nd = sp_degrees(hw, deg, 64), first[64], kind[64];
  memset(out, 0, sizeof *out);
  out->kind = -1;
  sp_group *lay = xmalloc(sizeof(sp_group) * (size_t)hw->ndev * 2), *tmpl = lay + hw->ndev;
  double dem[64] = {0};
  if (nd > 1 && deg[nd - 1] == hw->ndev) nd--; /* leave room for more than one group */
  for (int i = 0; i < nd; i++) { /* one group of each degree, the kind faster on this batch */
    first[i] = -1;
    double best = 1e300;
    for (int k = SP_ULYSSES; k <= SP_RING; k++) {
      sp_group *tmp = xmalloc(sizeof(sp_group) * (size_t)hw->ndev);
      if (sp_layout(hw, m, deg[i], k, a, tmp) > 0) {
        double t = 0;
        for (int s = 0; s < n; s++) t += sp_seq_time(m, &tmp[0].g, (double)len[s]);
        if (t < best) best = t, lay[i] = tmp[0], first[i] = i, kind[i] = k;
      }
      free(tmp);
    }
  }
  bool ok = true;
  double target = 0; /* ideal step: every sequence at its cheapest degree, spread evenly */
  for (int s = 0; s < n; s++) {
    double best = 1e300;
    for (int i = 0; i < nd; i++)
      if (first[i] >= 0 && (double)len[s] <= lay[i].g.cap)
        best = fmin(best, deg[i] * sp_seq_time(m, &lay[i].g, (double)len[s]));
    target += best < 1e300 ? best / hw->ndev : 0;
  }
  for (int s = 0; s < n && ok; s++) {
    int d = natural(m, lay, first, nd, len[s], target);
    if (d < 0) ok = false;
    else dem[d] += deg[d] * sp_seq_time(m, &lay[d].g, (double)len[s]);
  }
  double tot = 0;
  for (int i = 0; i < nd; i++) tot += dem[i];
  int ng = 0;
  char *taken = xcalloc((size_t)hw->ndev, 1);
  for (int i = nd - 1; i >= 0 && ok; i--) { /* largest degree first, free devices */
    if (dem[i] <= 0 && i > 0) continue;
    int want = i == 0 ? hw->ndev : (int)fmax(1, round(dem[i] / tot * hw->ndev / deg[i]));
    sp_group *all = xmalloc(sizeof(sp_group) * (size_t)hw->ndev);
    int cnt = sp_layout(hw, m, deg[i], kind[i], a, all);
    for (int g = 0; g < cnt && want > 0; g++) {
      int busy = 0;
      for (int d = 0; d < all[g].ndev; d++) busy |= taken[all[g].dev[d]];
      if (busy) continue;
      for (int d = 0; d < all[g].ndev; d++) taken[all[g].dev[d]] = 1;
      tmpl[ng++] = all[g], want--;
    }
    free(all);
  }
  free(taken);
  ok = ok && ng > 0 && pack_micro(m, tmpl, ng, len, n, o, false, a, out);
  free(lay);
  return ok;
}
