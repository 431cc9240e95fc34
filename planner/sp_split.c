/* sp_split.c — the first micro-batch split of the adaptive plan.
 *
 * A batch that does not fit the cluster's memory at once runs as k
 * micro-batches one after another, so the step time is the sum of their
 * slowest groups. The split decides which sequences share a micro-batch
 * before any group is chosen, so it needs an estimate of a micro-batch's time
 * from its sequences alone. The estimate is the LP relaxation of sp_bound.c
 * without memory rows: the least T with
 *   D(T) = sum_i d_i(T) <= devices,   d_i(T) = min_g size_g t_ig / (T - c0_g)
 * over the shapes g that hold sequence i and finish it within T, where a
 * sequence also takes at least the devices its tokens fill,
 * size_g / floor(0.95 cap_g / L_i) (a group holds that many copies of it):
 * a micro-batch of long sequences is bounded by memory before time, and a
 * sequence that fills most of a group leaves no room for a second long one
 * beside it. Unlike
 * "max(longest sequence's own time, work / devices)" it knows that the shape
 * giving a long sequence its least time takes the whole cluster: two such
 * sequences in one micro-batch cost the time of two half-size groups, not of
 * one whole-cluster group. d_i is tabulated on a geometric grid of T (ratio
 * SP_GRID, at most SP_GRIDN points) over only the shapes no other shape
 * beats on both device-seconds and own time; D of a micro-batch is the sum of
 * its rows, and its estimate the least grid T (interpolated) where D fits.
 * Sequences go in decreasing device-seconds, each to the micro-batch whose
 * estimate grows least among those under the token cap (else to the one with
 * the fewest tokens). */
#include "planner/sp.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SP_GRID 1.04  /* ratio of successive grid times */
#define SP_GRIDN 400  /* most grid points */
#define SP_FILL 0.95  /* fraction of a group's token capacity counted usable */

typedef struct {
  int n, G;
  double ndev;
  double *T;      /* grid times, ascending */
  float *d;       /* d[i*G+j]: devices sequence i needs to finish in T[j] (inf: cannot) */
  double *w;      /* device-seconds of sequence i at its cheapest shape */
} grid;

/* row: sequence i's d on the grid over its useful shapes. */
static void row(grid *gr, const sp_model *m, const sp_gtype *gt, int ngt, double L, int i) {
  double a[512], c[512], need[512], mem[512];
  int np = 0;
  gr->w[i] = 1e300;
  for (int g = 0; g < ngt && g < 512; g++) {
    if (L > gt[g].cap) continue;
    double t = sp_seq_time(m, &gt[g], L), ag = gt[g].size * t, ng = t + gt[g].c0;
    bool dominated = false;
    double mg = gt[g].size / fmax(1, floor(SP_FILL * gt[g].cap / L));
    for (int q = 0; q < np && !dominated; q++)
      dominated = a[q] <= ag && need[q] <= ng && c[q] <= gt[g].c0 && mem[q] <= mg;
    if (dominated) continue;
    a[np] = ag, c[np] = gt[g].c0, need[np] = ng, mem[np++] = mg;
    if (ag < gr->w[i]) gr->w[i] = ag;
  }
  for (int j = 0; j < gr->G; j++) {
    double best = INFINITY;
    for (int q = 0; q < np; q++)
      if (need[q] <= gr->T[j]) best = fmin(best, fmax(a[q] / (gr->T[j] - c[q]), mem[q]));
    gr->d[(size_t)i * gr->G + j] = (float)best;
  }
}

/* estimate: least T where D + d_i fits the devices (d_i NULL: D alone). */
static double estimate(const grid *gr, const double *D, const float *di) {
  int lo = 0, hi = gr->G - 1;
#define AT(j) (D[j] + (di ? (double)di[j] : 0))
  if (AT(hi) > gr->ndev) return gr->T[hi] * AT(hi) / gr->ndev; /* beyond the grid: linear */
  if (AT(0) <= gr->ndev) return gr->T[0];
  while (hi - lo > 1) { /* AT(lo) > ndev >= AT(hi); D is non-increasing in T */
    int mid = (lo + hi) / 2;
    if (AT(mid) > gr->ndev) lo = mid;
    else hi = mid;
  }
  double a = AT(lo), b = AT(hi);
  if (!isfinite(a)) return gr->T[hi];
  return gr->T[lo] + (gr->T[hi] - gr->T[lo]) * (a - gr->ndev) / (a - b);
#undef AT
}

static const double *cmp_w;
static int by_w_desc(const void *x, const void *y) {
  double a = cmp_w[*(const int *)x], b = cmp_w[*(const int *)y];
  return a < b ? 1 : a > b ? -1 : *(const int *)x - *(const int *)y;
}

/* grid_init: the grid's time range from the batch's least and largest needs. */
static void grid_init(grid *gr, const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt,
                      const int64_t *len, int n) {
  double tmin = 1e300, tmax = 0, work = 0;
  for (int i = 0; i < n; i++) {
    double best = 1e300, wi = 1e300;
    for (int g = 0; g < ngt; g++) {
      if ((double)len[i] > gt[g].cap) continue;
      double t = sp_seq_time(m, &gt[g], (double)len[i]);
      best = fmin(best, t + gt[g].c0), wi = fmin(wi, gt[g].size * t);
    }
    tmin = fmin(tmin, best), tmax = fmax(tmax, best), work += wi;
  }
  gr->n = n;
  gr->ndev = hw->ndev;
  double hi = 2 * (tmax + work / hw->ndev);
  gr->G = (int)fmin(SP_GRIDN, ceil(log(hi / tmin) / log(SP_GRID)) + 2);
  double r = gr->G > 1 ? pow(hi / tmin, 1.0 / (gr->G - 1)) : 1;
  gr->T = xmalloc(sizeof(double) * (size_t)gr->G);
  for (int j = 0; j < gr->G; j++) gr->T[j] = tmin * pow(r, j);
  gr->d = xmalloc(sizeof(float) * (size_t)n * (size_t)gr->G);
  gr->w = xmalloc(sizeof(double) * (size_t)n);
  for (int i = 0; i < n; i++) row(gr, m, gt, ngt, (double)len[i], i);
}

void sp_split(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt, const int64_t *len,
              int n, int k, double tokcap, int *mb_of) {
  grid gr;
  grid_init(&gr, hw, m, gt, ngt, len, n);
  double *D = xcalloc((size_t)k * (size_t)gr.G, sizeof(double)), *est = xcalloc((size_t)k, sizeof(double));
  double *tok = xcalloc((size_t)k, sizeof(double));
  int *ord = xmalloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) ord[i] = i;
  cmp_w = gr.w;
  qsort(ord, (size_t)n, sizeof(int), by_w_desc);
  for (int j = 0; j < n; j++) {
    int i = ord[j], b = -1;
    double L = (double)len[i], best = 1e300;
    const float *di = gr.d + (size_t)i * gr.G;
    for (int q = 0; q < k; q++) {
      if (tok[q] + L > tokcap) continue;
      double grow = estimate(&gr, D + (size_t)q * gr.G, di) - est[q];
      if (grow < best - 1e-12) best = grow, b = q;
    }
    if (b < 0) { /* no room under the cap: the emptiest */
      b = 0;
      for (int q = 1; q < k; q++)
        if (tok[q] < tok[b]) b = q;
    }
    mb_of[i] = b;
    tok[b] += L;
    double *Db = D + (size_t)b * gr.G;
    for (int t = 0; t < gr.G; t++) Db[t] += di[t];
    est[b] = estimate(&gr, Db, NULL);
  }
  free(D), free(est), free(tok), free(ord);
  free(gr.T), free(gr.d), free(gr.w);
}
