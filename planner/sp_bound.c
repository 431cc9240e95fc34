/* sp_bound.c — the LP lower bound on the slowest group's time.
 *
 * Relax the problem: group counts n_g and the assignment x_ig become
 * continuous, node boundaries and memory sums are dropped (each sequence must
 * still fit its group and finish within T on it). For a fixed T the LP
 *   min sum_g size_g n_g  s.t.  sum_g x_ig = 1,
 *   sum_i x_ig t_ig <= (T - c_g) n_g,  x_ig = 0 unless L_i <= cap_g and
 *   t_ig <= T - c_g
 * decomposes per sequence: n_g is set by its row, so the optimum is
 *   D(T) = sum_i min_g size_g t_ig / (T - c_g).
 * D is decreasing in T; the bound is the least T with D(T) <= devices, found
 * by bisection (a test checks D against glp_simplex on the explicit LP).
 * Memory rows and per-node-type device rows are brought in by Lagrangian
 * weights (feasible()), which keeps the bound valid and per-sequence. */
#include "planner/sp.h"
#include <math.h>
#include <stdlib.h>

typedef struct {
  const sp_gtype *gt;
  int ngt, n;
  double *t;       /* t[i*ngt+g], < 0 when the sequence does not fit */
  double *ws;      /* ws[p*ngt+g]: weighted device count of g under weights p */
  double cap[8];   /* weighted device count of the cluster under weights p */
  int np;
  int mu_steps;    /* memory weights mu = k/3, k = 0..mu_steps (0: time rows only) */
} table;

/* devices_mu: sum_i min_g ws_g ((1-mu) t_ig / (T - c_g) + mu L_i / cap_g). */
static double devices_mu(const table *tb, const int64_t *len, const int *idx, double T, double mu,
                         int p) {
  double sum = 0, a[512], b[512];
  const double *ws = tb->ws + (size_t)p * tb->ngt;
  for (int g = 0; g < tb->ngt && g < 512; g++) {
    double room = T - tb->gt[g].c0;
    a[g] = room > 0 ? ws[g] * (1 - mu) / room : 0;
    b[g] = ws[g] * mu / tb->gt[g].cap;
  }
  for (int i = 0; i < tb->n; i++) {
    double best = 1e300, L = (double)len[idx[i]];
    const double *ti = tb->t + (size_t)i * tb->ngt;
    for (int g = 0; g < tb->ngt && g < 512; g++) {
      double t = ti[g];
      if (t < 0 || t > T - tb->gt[g].c0) continue;
      double d = a[g] * t + b[g] * L;
      if (d < best) best = d;
    }
    if (best >= 1e300) return 1e300;
    sum += best;
  }
  return sum;
}

/* feasible: false if some relaxed LP (weights p, memory weight mu) proves
 * that T is too short. The memory rows enter by a Lagrangian weight mu
 * (n_g >= (1-mu) time/room + mu tokens/cap for any mu in [0,1]); the device
 * rows of the node types by weights p (devices of type t weigh flops_t^beta). */
static bool feasible(const table *tb, const int64_t *len, const int *idx, double T) {
  for (int p = 0; p < tb->np; p++)
    for (int k = 0; k <= tb->mu_steps; k++)
      if (devices_mu(tb, len, idx, T, k / 3.0, p) > tb->cap[p] * (1 + 1e-12)) return false;
  return true;
}

static void weights(table *tb, const sp_hw *hw) {
  static const double beta[] = {0, 0.5, 1, 1.5, 2, 3};
  tb->np = hw->nt > 1 ? 6 : 1;
  tb->ws = xmalloc(sizeof(double) * (size_t)tb->np * (size_t)tb->ngt);
  for (int p = 0; p < tb->np; p++) {
    double pi[SP_MAXNT];
    tb->cap[p] = 0;
    for (int t = 0; t < hw->nt; t++) {
      pi[t] = pow(hw->t[t].flops / hw->t[0].flops, beta[p]);
      tb->cap[p] += pi[t] * hw->t[t].ndev * hw->t[t].count;
    }
    for (int g = 0; g < tb->ngt; g++) {
      const sp_gtype *G = &tb->gt[g];
      double w = 0;
      for (int t = 0; t < hw->nt; t++)
        w += pi[t] * (G->intra >= 0 ? (G->intra == t ? G->size : 0) : G->nodes[t] * hw->t[t].ndev);
      tb->ws[(size_t)p * tb->ngt + g] = w;
    }
  }
}

/* bound: the least T no weighting refutes, over sequences len[idx[0..n)];
 * mu_steps = 3 adds the memory rows (one micro-batch), 0 leaves them out. */
static double bound(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt,
                    const int64_t *len, const int *idx, int n, int mu_steps) {
  table tb = {gt, ngt, n, xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1) * (size_t)ngt), NULL, {0}, 0,
              mu_steps};
  weights(&tb, hw);
  double lo = 0;
  for (int i = 0; i < n; i++) {
    double L = (double)len[idx[i]], best = 1e300;
    for (int g = 0; g < ngt; g++) {
      double t = L <= gt[g].cap ? sp_seq_time(m, &gt[g], L) : -1;
      tb.t[(size_t)i * ngt + g] = t;
      if (t >= 0 && t + gt[g].c0 < best) best = t + gt[g].c0;
    }
    if (best > lo) lo = best;
  }
  if (lo >= 1e300) {
    free(tb.t);
    free(tb.ws);
    return 1e300;
  }
  double hi = lo > 0 ? lo : 1e-6;
  while (!feasible(&tb, len, idx, hi)) hi *= 2;
  if (feasible(&tb, len, idx, lo)) hi = lo;
  for (int it = 0; it < 40 && hi - lo > 1e-5 * hi; it++) {
    double mid = 0.5 * (lo + hi);
    if (feasible(&tb, len, idx, mid)) hi = mid;
    else lo = mid;
  }
  free(tb.t);
  free(tb.ws);
  return lo; /* refuted (or the per-sequence bound): a valid bound, within 1e-5 of the least */
}

double sp_lower_bound(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt,
                      const int64_t *len, const int *idx, int n) {
  return bound(hw, m, gt, ngt, len, idx, n, 3);
}

double sp_batch_bound(const sp_hw *hw, const sp_model *m, const sp_gtype *gt, int ngt,
                      const int64_t *len, int n) {
  int *idx = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
  for (int i = 0; i < n; i++) idx[i] = i;
  double b = bound(hw, m, gt, ngt, len, idx, n, 0);
  free(idx);
  return b;
}
