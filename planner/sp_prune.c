/* sp_prune.c — drop the group shapes a micro-batch's MILP cannot need.
 *
 * The MILP (sp_solve.c) has, per group shape, an integer group count, one
 * column per bucket and a time and a memory row; on the mixed cluster about
 * 120 shapes (intra-node sizes and node vectors, two kinds each) make the
 * branch and bound slow. Two kinds of shape are removed before it is built,
 * both without changing the MILP's optimum:
 *  - dominated: another kept shape h uses no more devices of any node type,
 *    has no larger constant c0, no smaller token capacity, fits every bucket
 *    g fits, and is no slower on any of them (mean and longest sequence of
 *    the bucket). Any solution using g becomes one using h with the freed
 *    devices cut into idle single-device groups, with no larger time, memory
 *    or objective (device-seconds) in any row.
 *  - unneeded: no bucket of the micro-batch fits g (every sequence column of
 *    g is fixed at 0), so g can only sit idle, which single devices do as
 *    well. Single-device shapes are therefore always kept.
 * Both arguments need the single-device cut of every node (a partition
 * pattern), which exists for nodes of at most 16 devices; with wider nodes
 * everything is kept. O(ngt^2 nb). */
#include "planner/sp.h"

/* devices of node type t in shape g */
static int devs(const sp_hw *hw, const sp_gtype *g, int t) {
  if (g->intra >= 0) return g->intra == t ? g->size : 0;
  return g->nodes[t] * hw->t[t].ndev;
}

/* dominates: h can stand in for g on every bucket g fits (see above). */
static bool dominates(const sp_hw *hw, const sp_gtype *gt, int ngt, int nb, const double *tbar,
                      const double *tmax, int h, int g) {
  const sp_gtype *a = &gt[g], *b = &gt[h];
  if (b->c0 > a->c0 || b->cap < a->cap) return false;
  for (int t = 0; t < hw->nt; t++)
    if (devs(hw, b, t) > devs(hw, a, t)) return false;
  for (int k = 0; k < nb; k++) {
    int ig = k * ngt + g, ih = k * ngt + h;
    if (tbar[ig] < 0) continue;
    if (tbar[ih] < 0 || tbar[ih] > tbar[ig] || tmax[ih] > tmax[ig]) return false;
  }
  return true;
}

static bool fits_some(const double *tbar, int ngt, int nb, int g) {
  for (int k = 0; k < nb; k++)
    if (tbar[k * ngt + g] >= 0) return true;
  return false;
}

int sp_prune(const sp_hw *hw, const sp_gtype *gt, int ngt, int nb, const double *tbar,
             const double *tmax, bool *keep) {
  bool narrow = true;
  for (int t = 0; t < hw->nt; t++) narrow &= hw->t[t].ndev <= 16;
  for (int g = 0; g < ngt; g++) keep[g] = true;
  if (!narrow) return ngt;
  int kept = ngt;
  for (int g = 0; g < ngt; g++) {
    if (gt[g].size > 1 && !fits_some(tbar, ngt, nb, g)) keep[g] = false;
    /* ties (mutual dominance) keep the later shape: h > g is still kept
     * when g is tested, and h then finds no kept dominator in g */
    for (int h = 0; h < ngt && keep[g]; h++)
      if (h != g && keep[h] && dominates(hw, gt, ngt, nb, tbar, tmax, h, g)) keep[g] = false;
    kept -= !keep[g];
  }
  return kept;
}
