/* sp_solve.c — the adaptive plan of one batch: candidate starts, GLPK MILP
 * per micro-batch, round, repair, joint split.
 *
 * The search (search()) has three candidate starts: the first split
 * (sp_split.c: the fewest k micro-batches whose tokens fit the cluster's
 * budget, more if packing fails, each micro-batch solved as below), greedy
 * longest-first and the best single degree of the batch (sp_baselines.c).
 * The best start is kept; if it is not the first split its micro-batches are
 * solved again for the sequences they hold (new groups only where faster).
 * Then the joint split (sp_fill.c) lets micro-batches take each other's
 * sequences into their slack. The plan is therefore never worse than any
 * start. The lower bound reported is the whole-batch one (sp_batch_bound).
 *
 * Solving one micro-batch:
 * 1. Per micro-batch: the LP lower bound T_lb (sp_bound.c), buckets of the
 *    lengths (sp_bucket.c), the group shapes the MILP cannot need dropped
 *    (sp_prune.c), then for T = T_lb (1 + d), d = 0.2%, 1%, 3%, 10%, ...
 *    until feasible, then two bisection steps on d (none if 0.2% held), a
 *    MILP in GLPK decides how nodes are cut into groups and how much of each
 *    bucket each group type trains:
 *      integer x_tp  nodes of type t cut by pattern p (a partition of ndev_t)
 *      integer y_s   cross-node groups of node vector s;  n_g per kind
 *      real    m_bg  sequences of bucket b on group type g
 *      sum_g m_bg = c_b;   sum_b tbar_bg m_bg <= (T - c0_g) n_g;
 *      sum_b Lbar_b m_bg <= cap_g n_g;   nodes of each type covered exactly;
 *      minimise the device-seconds sum size_g tbar_bg m_bg.
 *    Every branch and bound stops after SP_NODEWORK / (rows + cols) nodes
 *    with its best integer solution.
 * 2. Round and repair: the group multiset is kept; sequences are packed onto
 *    the concrete groups (sp_assign.c) both by the MILP's per-type shares and
 *    by plain longest-first, each repaired, and the better is kept. If the
 *    packing fails the MILP is re-solved with emptier bins (memfill); if that
 *    is infeasible the search stops (memory-bound). Small micro-batches (<=
 *    SP_INTN sequences) then run the MILP with integer counts m_bg (node cap
 *    SP_INTWORK / (rows + cols)^2) at the step that held and, if it holds, two
 *    bisection steps below it: further candidates, so never worse than the
 *    rounded LP answer. The uniform layouts are candidates too. All GLPK
 *    calls share the time limit; past it the best plan so far stands. */
#include "planner/sp.h"
#include <glpk.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SP_MAXGT 512
#define SP_MAXPAT 256
#define SP_INTN 16 /* micro-batches this small get integer sequence counts */
#define SP_NODEWORK 50000 /* B&B nodes of a MILP: at most this / (rows + cols) */
#define SP_INTWORK 1.3e8 /* integer-count MILP: at most this / (rows + cols)^2 */
#define SP_TOKSLACK 1.1 /* micro-batches hold at most 1.1x their share of tokens */

sp_opts sp_opts_default(void) {
  sp_opts o = {16, 0.5, 64, true};
  return o;
}

/* now: this thread's CPU seconds; the time limit counts the solver's own
 * work, not time lost to other processes. wall: the clock on the wall. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- node patterns: partitions of ndev into group sizes ---------------- */
typedef struct {
  int n;
  unsigned char mult[SP_MAXPAT][17]; /* mult[p][k]: groups of size k */
} patterns;

static void partitions(patterns *P, int left, int maxpart, unsigned char *cur) {
  if (P->n == SP_MAXPAT) return;
  if (left == 0) {
    memcpy(P->mult[P->n++], cur, 17);
    return;
  }
  for (int k = maxpart < left ? maxpart : left; k >= 1; k--) {
    cur[k]++;
    partitions(P, left - k, k, cur);
    cur[k]--;
  }
}

static void make_patterns(patterns *P, int d) {
  unsigned char cur[17] = {0};
  P->n = 0;
  if (d <= 16) {
    partitions(P, d, d, cur);
    return;
  }
  P->n = 1; /* wide nodes: whole node only (size d is not representable) */
  memset(P->mult[0], 0, 17);
}

/* ---- one micro-batch problem ------------------------------------------- */
typedef struct {
  const sp_hw *hw;
  const sp_model *m;
  const sp_gtype *gt;
  int ngt;
  const int64_t *len;
  int *idx, n;          /* the micro-batch, sorted ascending by length */
  int nb, end[SP_MAXBUCKET];
  double cnt[SP_MAXBUCKET], lmax[SP_MAXBUCKET], lbar[SP_MAXBUCKET];
  double *tbar;         /* tbar[b*ngt+g], < 0 if bucket b does not fit g */
  double *tmax;         /* tmax[b*ngt+g]: time of bucket b's longest sequence */
  bool prune;           /* drop shapes the MILP cannot need (sp_prune) */
  sp_gtype *own;        /* the group types left after pruning (M->gt) */
  double memfill;       /* fraction of a type's capacity the MILP may fill */
  bool int_m;           /* sequences per bucket and type integer too */
  bool membound;        /* emptier bins made a feasible T infeasible */
  int maxb;             /* most buckets (sp_opts.buckets) */
  patterns pat[SP_MAXNT];
  int nxs;              /* distinct cross node vectors */
  int xs_of[SP_MAXGT];  /* gtype -> cross structure index, -1 for intra */
  int xs_rep[SP_MAXGT]; /* cross structure -> a representative gtype */
} micro;

static const int64_t *sort_len;
static int by_len_asc(const void *a, const void *b) {
  int64_t x = sort_len[*(const int *)a], y = sort_len[*(const int *)b];
  return x < y ? -1 : x > y;
}

/* compact: keep the columns g of a[b*ngt+g] with keep[g], packed
 * per row (in place: every entry moves to a lower index, in order). */
static void compact(double *a, int nb, int ngt, const bool *keep) {
  for (int b = 0, j = 0; b < nb; b++)
    for (int g = 0; g < ngt; g++)
      if (keep[g]) a[j++] = a[b * ngt + g];
}

/* prune: keep the shapes sp_prune says the MILP may need (all if the
 * option is off); gt, tbar and tmax become the kept ones (M->own). */
static void prune(micro *M) {
  bool *keep = xmalloc((size_t)M->ngt);
  int k = M->ngt;
  if (M->prune) k = sp_prune(M->hw, M->gt, M->ngt, M->nb, M->tbar, M->tmax, keep);
  else memset(keep, 1, (size_t)M->ngt);
  M->own = xmalloc(sizeof(sp_gtype) * (size_t)M->ngt);
  for (int g = 0, j = 0; g < M->ngt; g++)
    if (keep[g]) M->own[j++] = M->gt[g];
  compact(M->tbar, M->nb, M->ngt, keep);
  compact(M->tmax, M->nb, M->ngt, keep);
  M->gt = M->own;
  M->ngt = k;
  free(keep);
}

static void micro_init(micro *M) {
  sort_len = M->len;
  qsort(M->idx, (size_t)M->n, sizeof(int), by_len_asc);
  int64_t *l = xmalloc(sizeof(int64_t) * (size_t)M->n);
  for (int i = 0; i < M->n; i++) l[i] = M->len[M->idx[i]];
  double pad;
  M->nb = sp_bucket(l, M->n, M->maxb, M->end, &pad);
  free(l);
  M->tbar = xmalloc(sizeof(double) * (size_t)M->nb * (size_t)M->ngt);
  M->tmax = xmalloc(sizeof(double) * (size_t)M->nb * (size_t)M->ngt);
  for (int b = 0, s = 0; b < M->nb; s = M->end[b++]) {
    M->cnt[b] = M->end[b] - s;
    M->lmax[b] = (double)M->len[M->idx[M->end[b] - 1]];
    double tok = 0;
    for (int i = s; i < M->end[b]; i++) tok += (double)M->len[M->idx[i]];
    M->lbar[b] = tok / M->cnt[b];
    for (int g = 0; g < M->ngt; g++) {
      double t = 0;
      if (M->lmax[b] <= M->gt[g].cap)
        for (int i = s; i < M->end[b]; i++) t += sp_seq_time(M->m, &M->gt[g], (double)M->len[M->idx[i]]);
      M->tbar[b * M->ngt + g] = M->lmax[b] <= M->gt[g].cap ? t / M->cnt[b] : -1;
      M->tmax[b * M->ngt + g] = sp_seq_time(M->m, &M->gt[g], M->lmax[b]);
    }
  }
  prune(M);
  for (int t = 0; t < M->hw->nt; t++) make_patterns(&M->pat[t], M->hw->t[t].ndev);
  M->nxs = 0;
  for (int g = 0; g < M->ngt; g++) {
    M->xs_of[g] = -1;
    if (M->gt[g].intra >= 0) continue;
    for (int s = 0; s < M->nxs && M->xs_of[g] < 0; s++)
      if (!memcmp(M->gt[M->xs_rep[s]].nodes, M->gt[g].nodes, sizeof M->gt[g].nodes)) M->xs_of[g] = s;
    if (M->xs_of[g] < 0) M->xs_rep[M->nxs] = g, M->xs_of[g] = M->nxs++;
  }
}

/* MILP column layout. */
typedef struct {
  int cm, cn, cx[SP_MAXNT], cy, ncol;
} layout;

static void add_row(glp_prob *lp, int type, double lo, double hi, int nz, int *ind, double *val) {
  int r = glp_add_rows(lp, 1);
  glp_set_row_bnds(lp, r, type, lo, hi);
  glp_set_mat_row(lp, r, nz, ind, val);
}

static glp_prob *build_milp(const micro *M, double T, layout *L) {
  int nb = M->nb, ng = M->ngt;
  glp_prob *lp = glp_create_prob();
  L->cm = 1;
  L->cn = L->cm + nb * ng;
  int c = L->cn + ng;
  for (int t = 0; t < M->hw->nt; t++) L->cx[t] = c, c += M->pat[t].n;
  L->cy = c;
  L->ncol = c + M->nxs - 1;
  glp_add_cols(lp, L->ncol);
  for (int b = 0; b < nb; b++)
    for (int g = 0; g < ng; g++) {
      double tb = M->tbar[b * ng + g];
      bool ok = tb >= 0 && M->tmax[b * ng + g] <= T - M->gt[g].c0;
      int col = L->cm + b * ng + g;
      if (ok) glp_set_col_bnds(lp, col, GLP_DB, 0, M->cnt[b]);
      else glp_set_col_bnds(lp, col, GLP_FX, 0, 0);
      if (ok && M->int_m) glp_set_col_kind(lp, col, GLP_IV);
      glp_set_obj_coef(lp, col, ok ? tb * M->gt[g].size : 0);
    }
  for (int j = L->cn; j <= L->ncol; j++) {
    glp_set_col_kind(lp, j, GLP_IV);
    glp_set_col_bnds(lp, j, GLP_LO, 0, 0);
  }
  int *ind = xmalloc(sizeof(int) * (size_t)(L->ncol + 2));
  double *val = xmalloc(sizeof(double) * (size_t)(L->ncol + 2));
  for (int b = 0; b < nb; b++) {
    for (int g = 0; g < ng; g++) ind[g + 1] = L->cm + b * ng + g, val[g + 1] = 1;
    add_row(lp, GLP_FX, M->cnt[b], M->cnt[b], ng, ind, val);
  }
  for (int g = 0; g < ng; g++) {
    int k = 0;
    for (int b = 0; b < nb; b++) ind[++k] = L->cm + b * ng + g, val[k] = fmax(M->tbar[b * ng + g], 0);
    ind[++k] = L->cn + g, val[k] = -(T - M->gt[g].c0);
    add_row(lp, GLP_UP, 0, 0, k, ind, val);
    k = 0;
    for (int b = 0; b < nb; b++) ind[++k] = L->cm + b * ng + g, val[k] = M->lbar[b];
    ind[++k] = L->cn + g, val[k] = -M->gt[g].cap * M->memfill;
    add_row(lp, GLP_UP, 0, 0, k, ind, val);
  }
  for (int t = 0; t < M->hw->nt; t++) { /* nodes of type t covered */
    int k = 0;
    for (int p = 0; p < M->pat[t].n; p++) ind[++k] = L->cx[t] + p, val[k] = 1;
    for (int s = 0; s < M->nxs; s++)
      if (M->gt[M->xs_rep[s]].nodes[t]) ind[++k] = L->cy + s, val[k] = M->gt[M->xs_rep[s]].nodes[t];
    add_row(lp, GLP_FX, M->hw->t[t].count, M->hw->t[t].count, k, ind, val);
    for (int sz = 1; sz <= M->hw->t[t].ndev && sz <= 16; sz++) { /* groups of size sz */
      k = 0;
      for (int g = 0; g < ng; g++)
        if (M->gt[g].intra == t && M->gt[g].size == sz) ind[++k] = L->cn + g, val[k] = 1;
      for (int p = 0; p < M->pat[t].n; p++)
        if (M->pat[t].mult[p][sz]) ind[++k] = L->cx[t] + p, val[k] = -M->pat[t].mult[p][sz];
      if (k) add_row(lp, GLP_FX, 0, 0, k, ind, val);
    }
  }
  for (int s = 0; s < M->nxs; s++) {
    int k = 0;
    for (int g = 0; g < ng; g++)
      if (M->xs_of[g] == s) ind[++k] = L->cn + g, val[k] = 1;
    ind[++k] = L->cy + s, val[k] = -1;
    add_row(lp, GLP_FX, 0, 0, k, ind, val);
  }
  free(ind);
  free(val);
  return lp;
}

/* cb_nodes: stop the branch and bound after *(int *)info nodes; the best
 * integer solution found so far stands (glp_intopt returns GLP_ESTOP). */
static void cb_nodes(glp_tree *tree, void *info) {
  int active, live, total;
  glp_ios_tree_size(tree, &active, &live, &total);
  if (glp_ios_reason(tree) == GLP_ISELECT && total > *(const int *)info) glp_ios_terminate(tree);
}

/* solve_milp: true and fills n[] (groups per type) and share[b*ngt+g]. */
static bool solve_milp(const micro *M, double T, double tlim, int *n, double *share,
                       int (*xp)[SP_MAXPAT], int *ys) {
  layout L;
  glp_prob *lp = build_milp(M, T, &L);
  glp_iocp cp;
  glp_init_iocp(&cp);
  cp.presolve = GLP_ON;
  cp.msg_lev = GLP_MSG_OFF;
  cp.tm_lim = (int)(4000 * tlim) > 20 ? (int)(4000 * tlim) : 20; /* GLPK counts wall time */
  double size = glp_get_num_rows(lp) + glp_get_num_cols(lp);
  int cap = (int)(M->int_m ? SP_INTWORK / (size * size) : SP_NODEWORK / size);
  cp.cb_func = cb_nodes;
  cp.cb_info = &cap;
  int rc = glp_intopt(lp, &cp);
  int st = glp_mip_status(lp);
  bool ok = rc == 0 || rc == GLP_ETMLIM || rc == GLP_ESTOP;
  ok = ok && (st == GLP_OPT || st == GLP_FEAS);
  if (ok) {
    for (int g = 0; g < M->ngt; g++) n[g] = (int)lround(glp_mip_col_val(lp, L.cn + g));
    for (int i = 0; i < M->nb * M->ngt; i++) share[i] = glp_mip_col_val(lp, L.cm + i);
    for (int t = 0; t < M->hw->nt; t++)
      for (int p = 0; p < M->pat[t].n; p++) xp[t][p] = (int)lround(glp_mip_col_val(lp, L.cx[t] + p));
    for (int s = 0; s < M->nxs; s++) ys[s] = (int)lround(glp_mip_col_val(lp, L.cy + s));
  }
  glp_delete_prob(lp);
  return ok;
}

/* ---- concrete groups from a MILP answer -------------------------------- */
static int take_kind(int *left, const micro *M, int want_intra, int t, int size, int xs) {
  for (int g = 0; g < M->ngt; g++) {
    if (!left[g]) continue;
    if (want_intra ? (M->gt[g].intra == t && M->gt[g].size == size) : M->xs_of[g] == xs) {
      left[g]--;
      return g;
    }
  }
  return -1;
}

static int build_groups(const micro *M, const int *n, int (*xp)[SP_MAXPAT], const int *ys,
                        arena *a, sp_group *out, int *type_of) {
  int left[SP_MAXGT], used[SP_MAXNT] = {0}, ng = 0;
  memcpy(left, n, sizeof(int) * (size_t)M->ngt);
  for (int s = 0; s < M->nxs; s++)
    for (int y = 0; y < ys[s]; y++) {
      int g = take_kind(left, M, 0, -1, 0, s);
      if (g < 0) continue;
      sp_group *gr = &out[ng];
      memset(gr, 0, sizeof *gr);
      gr->g = M->gt[g];
      gr->dev = ARENA_ARRAY(a, int, gr->g.size);
      for (int t = 0; t < M->hw->nt; t++)
        for (int j = 0; j < gr->g.nodes[t]; j++, used[t]++)
          for (int d = 0; d < M->hw->t[t].ndev; d++)
            gr->dev[gr->ndev++] = M->hw->first[t] + used[t] * M->hw->t[t].ndev + d;
      type_of[ng++] = g;
    }
  for (int t = 0; t < M->hw->nt; t++)
    for (int p = 0; p < M->pat[t].n; p++)
      for (int x = 0; x < xp[t][p]; x++, used[t]++) {
        int local = 0;
        for (int sz = 16; sz >= 1; sz--)
          for (int r = 0; r < M->pat[t].mult[p][sz]; r++) {
            int g = take_kind(left, M, 1, t, sz, -1);
            if (g < 0) continue;
            sp_group *gr = &out[ng];
            memset(gr, 0, sizeof *gr);
            gr->g = M->gt[g];
            gr->dev = ARENA_ARRAY(a, int, sz);
            for (int d = 0; d < sz; d++)
              gr->dev[gr->ndev++] = M->hw->first[t] + used[t] * M->hw->t[t].ndev + local + d;
            local += sz;
            type_of[ng++] = g;
          }
      }
  return ng;
}

static double micro_time(const sp_group *g, int ng) {
  double t = 0;
  for (int i = 0; i < ng; i++)
    if (g[i].time > t) t = g[i].time;
  return t;
}

/* pack_by_share: sequences of each bucket to group types in the MILP's
 * proportions (longest to the largest groups), packed per type, repaired. */
static bool pack_by_share(const micro *M, const double *share, sp_group *grp, int ng,
                          const int *type_of, arena *a) {
  int *want = xcalloc((size_t)M->ngt, sizeof(int)), *pos = xmalloc(sizeof(int) * (size_t)M->n);
  int *gsel = xmalloc(sizeof(int) * (size_t)(ng + 1));
  int *ty = xmalloc(sizeof(int) * (size_t)M->n);
  for (int b = 0, s = 0; b < M->nb; s = M->end[b++]) {
    int left = (int)M->cnt[b];
    for (int g = 0; g < M->ngt; g++) want[g] = (int)floor(share[b * M->ngt + g] + 1e-6), left -= want[g];
    while (left > 0) { /* largest remainders */
      int bg = 0;
      double br = -1;
      for (int g = 0; g < M->ngt; g++) {
        double r = share[b * M->ngt + g] - want[g];
        if (r > br) br = r, bg = g;
      }
      want[bg]++, left--;
    }
    for (int i = M->end[b] - 1; i >= s; i--) { /* longest to the largest type */
      int bg = -1;
      for (int g = 0; g < M->ngt; g++)
        if (want[g] > 0 && (bg < 0 || M->gt[g].size > M->gt[bg].size)) bg = g;
      ty[i] = bg;
      if (bg >= 0) want[bg]--;
    }
  }
  bool ok = true;
  sp_group *tmp = xmalloc(sizeof(sp_group) * (size_t)(ng + 1));
  for (int g = 0; g < M->ngt && ok; g++) {
    int k = 0, q = 0;
    for (int i = 0; i < M->n; i++)
      if (ty[i] == g) pos[k++] = M->idx[i];
    for (int j = 0; j < ng; j++)
      if (type_of[j] == g) tmp[q] = grp[j], gsel[q++] = j;
    if (k == 0) continue;
    ok = q > 0 && sp_pack(M->m, M->len, pos, k, tmp, q, true, a);
    for (int j = 0; j < q && ok; j++) grp[gsel[j]] = tmp[j];
  }
  if (ok) sp_repair(M->m, M->len, grp, ng, a);
  free(tmp);
  free(want);
  free(pos);
  free(gsel);
  free(ty);
  return ok;
}

/* try_T: one MILP at T; on success a packed candidate in best if better. */
static void try_T(const micro *M, double T, double tlim, arena *a, sp_micro *best, bool *feas,
                  bool *packfail) {
  *packfail = false;
  int n[SP_MAXGT], ys[SP_MAXGT], (*xp)[SP_MAXPAT] = xmalloc(sizeof(int[SP_MAXNT][SP_MAXPAT]));
  double *share = xmalloc(sizeof(double) * (size_t)M->nb * (size_t)M->ngt);
  *feas = solve_milp(M, T, tlim, n, share, xp, ys);
  if (*feas) {
    int cnt = 0;
    for (int g = 0; g < M->ngt; g++) cnt += n[g];
    sp_group *g1 = ARENA_ARRAY(a, sp_group, cnt + 1), *g2 = ARENA_ARRAY(a, sp_group, cnt + 1);
    int *type_of = xmalloc(sizeof(int) * (size_t)(cnt + 1));
    int ng = build_groups(M, n, xp, ys, a, g1, type_of);
    memcpy(g2, g1, sizeof(sp_group) * (size_t)ng);
    bool p1 = pack_by_share(M, share, g1, ng, type_of, a);
    bool p2 = sp_pack(M->m, M->len, M->idx, M->n, g2, ng, true, a);
    if (p1 && (!best->grp || micro_time(g1, ng) < best->time))
      best->grp = g1, best->ngrp = ng, best->time = micro_time(g1, ng);
    if (p2 && (!best->grp || micro_time(g2, ng) < best->time))
      best->grp = g2, best->ngrp = ng, best->time = micro_time(g2, ng);
    if (!p1 && !p2) *packfail = true;
    free(type_of);
  }
  free(share);
  free(xp);
}

/* try_uniform: the uniform layouts (every group one degree and kind) as
 * further candidates for the micro-batch; the MILP's buckets can miss them. */
static void try_uniform(const micro *M, arena *a, sp_micro *best) {
  int deg[64], nd = sp_degrees(M->hw, deg, 64);
  sp_group *tmpl = xmalloc(sizeof(sp_group) * (size_t)M->hw->ndev);
  for (int i = 0; i < nd; i++)
    for (int kind = SP_ULYSSES; kind <= SP_RING; kind++) {
      int ng = sp_layout(M->hw, M->m, deg[i], kind, a, tmpl);
      if (ng <= 0) continue;
      sp_group *g = ARENA_ARRAY(a, sp_group, ng);
      memcpy(g, tmpl, sizeof(sp_group) * (size_t)ng);
      if (sp_pack(M->m, M->len, M->idx, M->n, g, ng, true, a) && (!best->grp || micro_time(g, ng) < best->time))
        best->grp = g, best->ngrp = ng, best->time = micro_time(g, ng);
    }
  free(tmpl);
}

/* attempt: try_T at lb (1 + d), again with emptier bins while packing fails;
 * true if the MILP was feasible and packed. When emptier bins make the same
 * T infeasible, the micro-batch is memory-bound (M->membound): a larger T
 * does not give it room, so the search stops there. */
static bool attempt(micro *M, double lb, double d, double deadline, arena *a, sp_micro *out) {
  for (bool cut = false;; cut = true) {
    double left = deadline - now();
    bool feas, packfail;
    try_T(M, lb * (1 + d), left > 0.01 ? left / 3 : 0.01, a, out, &feas, &packfail);
    if (cut && !feas) M->membound = true;
    if (packfail && M->memfill > 0.5) { /* bins too full: same T, emptier bins */
      M->memfill *= 0.9;
      continue;
    }
    return feas && !packfail;
  }
}

/* bisect: two bisection steps on d between lo (failed) and hi (held), each
 * an attempt; candidates go to out. */
static void bisect(micro *M, double lb, double lo, double hi, double deadline, arena *a, sp_micro *out) {
  for (int it = 0; it < 2 && now() < deadline; it++) {
    if (out->grp && out->time <= lb * (1 + lo)) break;
    double mid = 0.5 * (lo + hi);
    if (attempt(M, lb, mid, deadline, a, out)) hi = mid;
    else lo = mid;
  }
}

/* search_T: the MILP at T = lb (1 + d) for growing d until it is feasible and
 * packs, then bisect (not when the first step, 0.2% over the bound, holds).
 * Returns the step that held, or -1; *lo gets the one below it (or 0). */
static double search_T(micro *M, double lb, double deadline, arena *a, sp_micro *out, double *lo) {
  static const double steps[] = {0.002, 0.01, 0.03, 0.1, 0.3, 1, 3};
  double hi = -1;
  *lo = 0;
  M->membound = false;
  for (int s = 0; s < (int)(sizeof steps / sizeof steps[0]) && hi < 0 && !M->membound; s++) {
    if (now() > deadline && out->grp) break;
    if (attempt(M, lb, steps[s], deadline, a, out)) hi = steps[s];
    else *lo = steps[s];
  }
  if (hi > steps[0]) bisect(M, lb, *lo, hi, deadline, a, out);
  return hi;
}

static bool solve_micro(micro *M, double deadline, arena *a, sp_micro *out, double *lb) {
  *lb = sp_lower_bound(M->hw, M->m, M->gt, M->ngt, M->len, M->idx, M->n);
  micro_init(M);
  M->memfill = 0.95;
  M->int_m = false;
  memset(out, 0, sizeof *out);
  double lo, hi = search_T(M, *lb, deadline, a, out, &lo);
  if (M->n <= SP_INTN && hi > 0) { /* integer counts (capped) from the step that held */
    M->int_m = true;
    if (now() < deadline && attempt(M, *lb, hi, deadline, a, out)) bisect(M, *lb, lo, hi, deadline, a, out);
    M->int_m = false;
  }
  try_uniform(M, a, out);
  bool feas, packfail;
  for (double f = 10; !out->grp && f <= 1e6; f *= 100) { /* last resort */
    M->memfill = 0.6;
    try_T(M, *lb * f, 0.1, a, out, &feas, &packfail);
  }
  free(M->tbar);
  free(M->tmax);
  free(M->own);
  return out->grp != NULL;
}

static double total_budget(const sp_hw *hw) {
  double b = 0;
  for (int t = 0; t < hw->nt; t++) b += hw->t[t].budget * hw->t[t].ndev * hw->t[t].count;
  return b;
}

/* The batch being solved: what every micro-batch solve needs. */
typedef struct {
  const sp_hw *hw;
  const sp_model *m;
  const sp_gtype *gt;
  int ngt;
  const int64_t *len;
  int n, maxb;
  const sp_opts *o;
  arena *a;
  double deadline;       /* CPU seconds (now()) */
} batch;

/* solve_set: the adaptive plan of one micro-batch idx[0..c) (idx reordered). */
static bool solve_set(const batch *B, int *idx, int c, double deadline, sp_micro *out) {
  micro M = {.hw = B->hw, .m = B->m, .gt = B->gt, .ngt = B->ngt, .len = B->len, .idx = idx, .n = c,
             .maxb = B->maxb, .prune = B->o->prune};
  double lb;
  return c > 0 && solve_micro(&M, deadline, B->a, out, &lb);
}

/* solve_k: the batch as k micro-batches of at most tokcap tokens each;
 * false if some micro-batch fails. */
static bool solve_k(const batch *B, int k, double tokcap, sp_plan *out) {
  int n = B->n, *all = xmalloc(sizeof(int) * (size_t)n), *mb = xmalloc(sizeof(int) * (size_t)n);
  double tok = 0;
  for (int i = 0; i < n; i++) tok += (double)B->len[i];
  sp_split(B->hw, B->m, B->gt, B->ngt, B->len, n, k, fmin(tokcap, SP_TOKSLACK * tok / k), mb);
  out->mb = ARENA_ARRAY(B->a, sp_micro, k);
  out->nmb = k;
  out->step_time = 0;
  bool ok = true;
  for (int q = 0; q < k && ok; q++) {
    int c = 0;
    for (int i = 0; i < n; i++)
      if (mb[i] == q) all[c++] = i;
    ok = solve_set(B, all, c, now() + (B->deadline - now()) / (k - q), &out->mb[q]);
    out->step_time += out->mb[q].time;
  }
  free(all);
  free(mb);
  return ok;
}

/* resolve: re-plan the groups of every micro-batch of p for the sequences
 * it holds; a new plan replaces the old only where it is faster, so the
 * step time never grows. */
static void resolve(const batch *B, sp_plan *p) {
  int *idx = xmalloc(sizeof(int) * (size_t)B->n);
  p->step_time = 0;
  for (int q = 0; q < p->nmb; q++) {
    sp_micro *mb = &p->mb[q], alt;
    int c = 0;
    for (int g = 0; g < mb->ngrp; g++)
      for (int s = 0; s < mb->grp[g].nseq; s++) idx[c++] = mb->grp[g].seq[s];
    double left = B->deadline - now();
    if (left > 0 && solve_set(B, idx, c, now() + left / (p->nmb - q), &alt) &&
        alt.time < mb->time * (1 - 1e-12))
      *mb = alt;
    p->step_time += mb->time;
  }
  free(idx);
}

/* split_start: the plan from the first split (sp_split) with the fewest
 * micro-batches that packs; each failure lowers the token cap. */
static bool split_start(const batch *B, sp_plan *out) {
  double tok = 0, tokcap = 0.9 * total_budget(B->hw);
  for (int i = 0; i < B->n; i++) tok += (double)B->len[i];
  for (int k0 = 1, tries = 0; tries < 40; tries++, tokcap *= 0.93) {
    int k = (int)fmax(k0, ceil(tok / tokcap));
    if (k > B->o->max_micro || k > B->n) break;
    if (solve_k(B, k, tokcap, out)) return true;
    k0 = k;
  }
  return false;
}

/* search: the candidate starts (the first split, greedy longest-first, the
 * best single degree of this batch), the best of them, its micro-batches
 * planned again by the MILP when it is not the split's, then the joint split
 * (sp_fill). */
static bool search(const batch *B, sp_plan *out) {
  sp_plan s[3];
  bool ok[3];
  ok[SP_START_SPLIT] = split_start(B, &s[SP_START_SPLIT]);
  ok[SP_START_GREEDY] = sp_greedy(B->hw, B->m, B->len, B->n, B->o, B->a, &s[SP_START_GREEDY]);
  ok[SP_START_DEGREE] = sp_best_uniform(B->hw, B->m, B->len, B->n, B->o, B->a, &s[SP_START_DEGREE]);
  int b = -1;
  for (int i = 0; i < 3; i++)
    if (ok[i] && (b < 0 || s[i].step_time < s[b].step_time)) b = i;
  if (b < 0) return false;
  *out = s[b];
  out->start = b;
  out->degree = 0, out->kind = -1;
  if (b != SP_START_SPLIT) resolve(B, out);
  sp_fill(B->m, B->len, B->n, out, B->a);
  return true;
}

bool sp_solve(const sp_hw *hw, const sp_model *m, const int64_t *len, int n,
              const sp_opts *o, arena *a, sp_plan *out, const char **why) {
  double t0 = now(), w0 = wall();
  memset(out, 0, sizeof *out);
  out->kind = -1;
  sp_gtype *gt = xmalloc(sizeof(sp_gtype) * SP_MAXGT);
  int ngt = sp_gtypes(hw, m, gt, SP_MAXGT);
  double cap = 0;
  int64_t lmax = 0;
  for (int g = 0; g < ngt; g++) cap = fmax(cap, gt[g].cap);
  for (int i = 0; i < n; i++) lmax = len[i] > lmax ? len[i] : lmax;
  bool ok = false;
  if (n < 1 || n > SP_MAXBATCH) {
    *why = arena_printf(a, "a batch must hold 1 to %d sequences, not %d", SP_MAXBATCH, n);
  } else if ((double)lmax > cap) {
    *why = arena_printf(a, "a sequence of %lld tokens does not fit the cluster (at most %.0f)",
                        (long long)lmax, cap);
  } else {
    int maxb = o->buckets < 1 ? 1 : o->buckets > SP_MAXBUCKET ? SP_MAXBUCKET : o->buckets;
    batch B = {hw, m, gt, ngt, len, n, maxb, o, a, t0 + o->time_limit};
    ok = search(&B, out);
    if (!ok) *why = "the batch does not fit within the micro-batch limit";
  }
  if (ok) out->lower_bound = sp_batch_bound(hw, m, gt, ngt, len, n);
  free(gt);
  out->solve_cpu = now() - t0;
  out->solve_time = wall() - w0;
  return ok;
}
