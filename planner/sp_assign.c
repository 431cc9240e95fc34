/* sp_assign.c — packing sequences onto concrete groups, without padding.
 *
 * Every group packs its sequences back to back (cu_seqlens, as variable-length
 * attention kernels take them), so a group's time is its constant plus the sum
 * of its sequences' times and its memory is the sum of their tokens. Packing
 * is longest-processing-time first: sequences by length, longest first, each
 * to the group that would finish earliest among those with room. Repair then
 * moves (or swaps) sequences off the slowest group while that lowers the
 * maximum. The same least-loaded rule balances data-parallel ranks by token
 * work (sp_dp_balance), not round-robin by count. */
#include "planner/sp.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  const sp_model *m;
  const int64_t *len;
  const int *idx;
  int n, ng;
  sp_group *grp;
  int *of;          /* group of position i, -1 = none */
  double *time, *tok;
  double *tt;       /* tt[i*ng+g]: time of sequence i on group g */
} packer;

static double seq_t(const packer *p, int i, int g) { return p->tt[(size_t)i * p->ng + g]; }

/* fill_times: the table of sequence times; groups of one shape share a column. */
double sp_pack_bytes(int n, int ng) { return (double)sizeof(double) * ((double)n * ng + 1); }

static void fill_times(packer *p) {
  p->tt = xmalloc((size_t)sp_pack_bytes(p->n, p->ng));
  for (int g = 0; g < p->ng; g++) {
    int same = -1;
    for (int h = 0; h < g && same < 0; h++)
      if (!memcmp(&p->grp[h].g, &p->grp[g].g, sizeof(sp_gtype))) same = h;
    for (int i = 0; i < p->n; i++)
      p->tt[(size_t)i * p->ng + g] = same >= 0 ? p->tt[(size_t)i * p->ng + same]
                                               : sp_seq_time(p->m, &p->grp[g].g, (double)p->len[p->idx[i]]);
  }
}
static double base(const packer *p, int g) { return p->time[g] > 0 ? p->time[g] : p->grp[g].g.c0; }
static bool room(const packer *p, int i, int g) {
  return p->tok[g] + (double)p->len[p->idx[i]] <= p->grp[g].g.cap;
}

static void put(packer *p, int i, int g, int sign) {
  double t = seq_t(p, i, g);
  if (sign > 0) {
    p->time[g] = base(p, g) + t;
    p->tok[g] += (double)p->len[p->idx[i]];
    p->of[i] = g;
  } else {
    p->tok[g] -= (double)p->len[p->idx[i]];
    p->time[g] = p->tok[g] > 0.5 ? p->time[g] - t : 0;
    p->of[i] = -1;
  }
}

static const int64_t *cmp_len;
static int by_len_desc(const void *a, const void *b) {
  int64_t x = cmp_len[*(const int *)a], y = cmp_len[*(const int *)b];
  return x < y ? 1 : x > y ? -1 : 0;
}

static const double *cmp_cost;
static int by_cost_desc(const void *a, const void *b) {
  double x = cmp_cost[*(const int *)a], y = cmp_cost[*(const int *)b];
  return x < y ? 1 : x > y ? -1 : 0;
}

static int slowest(const packer *p) {
  int a = 0;
  for (int g = 1; g < p->ng; g++)
    if (p->time[g] > p->time[a]) a = g;
  return a;
}

/* try_move: move one sequence off group a if that lowers the max. */
static bool try_move(packer *p, int a) {
  double ta = p->time[a], best = ta * (1 - 1e-9);
  int bi = -1, bg = -1;
  for (int i = 0; i < p->n; i++) {
    if (p->of[i] != a) continue;
    double left = p->tok[a] - (double)p->len[p->idx[i]] > 0.5 ? ta - seq_t(p, i, a) : 0;
    for (int g = 0; g < p->ng; g++) {
      if (g == a || !room(p, i, g)) continue;
      double nb = base(p, g) + seq_t(p, i, g), mx = nb > left ? nb : left;
      if (mx < best) best = mx, bi = i, bg = g;
    }
  }
  if (bi < 0) return false;
  put(p, bi, a, -1);
  put(p, bi, bg, +1);
  return true;
}

/* try_swap: swap a sequence of a with one of another group if that lowers
 * the larger of the two below a's time (memory permitting). */
static bool try_swap(packer *p, int a) {
  double ta = p->time[a];
  for (int i = 0; i < p->n; i++) {
    if (p->of[i] != a) continue;
    double ti = seq_t(p, i, a);
    for (int j = 0; j < p->n; j++) {
      int b = p->of[j];
      if (b < 0 || b == a) continue;
      double d = (double)(p->len[p->idx[i]] - p->len[p->idx[j]]);
      if (p->tok[b] + d > p->grp[b].g.cap || p->tok[a] - d > p->grp[a].g.cap) continue;
      double na = ta - ti + seq_t(p, j, a);
      if (na >= ta * (1 - 1e-9)) continue;
      double nb = p->time[b] - seq_t(p, j, b) + seq_t(p, i, b);
      if (nb < ta * (1 - 1e-9)) {
        put(p, i, a, -1), put(p, j, b, -1);
        put(p, i, b, +1), put(p, j, a, +1);
        return true;
      }
    }
  }
  return false;
}

static void repair(packer *p) {
  for (int it = 0; it < 4 * p->n + 16; it++) {
    int a = slowest(p);
    if (!try_move(p, a) && !try_swap(p, a)) break;
  }
}

static void materialize(packer *p, arena *ar) {
  for (int g = 0; g < p->ng; g++) {
    sp_group *gr = &p->grp[g];
    int c = 0;
    for (int i = 0; i < p->n; i++) c += p->of[i] == g;
    gr->seq = ARENA_ARRAY(ar, int, c > 0 ? c : 1);
    gr->nseq = 0;
    for (int i = 0; i < p->n; i++)
      if (p->of[i] == g) gr->seq[gr->nseq++] = p->idx[i];
    gr->tokens = p->tok[g];
    gr->time = sp_group_time(p->m, &gr->g, p->len, gr->seq, gr->nseq);
  }
}

static void packer_free(packer *p) {
  free(p->tt);
  free(p->of);
  free(p->time);
  free(p->tok);
}

bool sp_pack(const sp_model *m, const int64_t *len, const int *idx, int n,
             sp_group *grp, int ng, bool rep, arena *a) {
  packer p = {m, len, NULL, n, ng, grp, xcalloc((size_t)n + 1, sizeof(int)),
              xcalloc((size_t)ng + 1, sizeof(double)), xcalloc((size_t)ng + 1, sizeof(double)), NULL};
  int *ord = xmalloc(sizeof(int) * ((size_t)n + 1));
  for (int i = 0; i < n; i++) ord[i] = idx[i];
  cmp_len = len;
  qsort(ord, (size_t)n, sizeof(int), by_len_desc);
  p.idx = ord;
  fill_times(&p);
  bool ok = true;
  for (int i = 0; i < n && ok; i++) {
    int bg = -1;
    double best = 1e300;
    for (int g = 0; g < ng; g++) {
      if (!room(&p, i, g)) continue;
      double f = base(&p, g) + seq_t(&p, i, g);
      if (f < best) best = f, bg = g;
    }
    if (bg < 0) ok = false;
    else put(&p, i, bg, +1);
  }
  if (ok) {
    if (rep) repair(&p);
    materialize(&p, a);
  }
  packer_free(&p);
  free(ord);
  return ok;
}

void sp_repair(const sp_model *m, const int64_t *len, sp_group *grp, int ng, arena *a) {
  int n = 0;
  for (int g = 0; g < ng; g++) n += grp[g].nseq;
  int *idx = xmalloc(sizeof(int) * ((size_t)n + 1));
  packer p = {m, len, idx, n, ng, grp, xcalloc((size_t)n + 1, sizeof(int)),
              xcalloc((size_t)ng + 1, sizeof(double)), xcalloc((size_t)ng + 1, sizeof(double)), NULL};
  n = 0;
  for (int g = 0; g < ng; g++)
    for (int s = 0; s < grp[g].nseq; s++) idx[n++] = grp[g].seq[s];
  fill_times(&p);
  n = 0;
  for (int g = 0; g < ng; g++)
    for (int s = 0; s < grp[g].nseq; s++) put(&p, n++, g, +1);
  repair(&p);
  materialize(&p, a);
  packer_free(&p);
  free(idx);
}

double sp_group_time(const sp_model *m, const sp_gtype *g, const int64_t *len,
                     const int *seq, int nseq) {
  if (nseq == 0) return 0;
  double t = g->c0;
  for (int i = 0; i < nseq; i++) t += sp_seq_time(m, g, (double)len[seq[i]]);
  return t;
}

void sp_split_micro(const int64_t *len, const int *idx, int n, int k, const double *w,
                    const double *lo, double tokcap, int *mb_of) {
  int *ord = xmalloc(sizeof(int) * ((size_t)n + 1));
  double *load = xcalloc((size_t)k, sizeof(double)), *floor_ = xcalloc((size_t)k, sizeof(double));
  double *tok = xcalloc((size_t)k, sizeof(double));
  for (int i = 0; i < n; i++) ord[i] = i;
  cmp_cost = w;
  qsort(ord, (size_t)n, sizeof(int), by_cost_desc);
  for (int j = 0; j < n; j++) {
    int i = ord[j], b = -1;
    double L = (double)len[idx[i]], best = 1e300;
    for (int pass = 0; pass < 2 && b < 0; pass++)
      for (int q = 0; q < k; q++) {
        if (pass == 0 && tok[q] + L > tokcap) continue;
        double lq = floor_[q] > lo[i] ? floor_[q] : lo[i];
        double est = (load[q] + w[i] > lq ? load[q] + w[i] : lq) - (load[q] > floor_[q] ? load[q] : floor_[q]);
        double key = pass == 0 ? est : tok[q];
        if (key < best - 1e-12) best = key, b = q;
      }
    mb_of[i] = b;
    load[b] += w[i];
    tok[b] += L;
    if (lo[i] > floor_[b]) floor_[b] = lo[i];
  }
  free(ord);
  free(load);
  free(floor_);
  free(tok);
}


double sp_dp_balance(const double *cost, int n, int ranks, int *rank_of) {
  int *ord = xmalloc(sizeof(int) * ((size_t)n + 1));
  double *load = xcalloc((size_t)ranks + 1, sizeof(double)), mx = 0;
  for (int i = 0; i < n; i++) ord[i] = i;
  cmp_cost = cost;
  qsort(ord, (size_t)n, sizeof(int), by_cost_desc);
  for (int j = 0; j < n; j++) {
    int r = 0;
    for (int q = 1; q < ranks; q++)
      if (load[q] < load[r]) r = q;
    rank_of[ord[j]] = r;
    load[r] += cost[ord[j]];
    if (load[r] > mx) mx = load[r];
  }
  free(ord);
  free(load);
  return mx;
}

int64_t *sp_cu_seqlens(const sp_group *gr, const int64_t *len, arena *a) {
  int64_t *cu = ARENA_ARRAY(a, int64_t, gr->nseq + 1);
  for (int i = 0; i < gr->nseq; i++) cu[i + 1] = cu[i] + len[gr->seq[i]];
  return cu;
}

void sp_work(const sp_model *m, const sp_gtype *gt, int ngt, int ndev, const int64_t *len,
             const int *idx, int n, double *w, double *lo) {
  for (int i = 0; i < n; i++) {
    double L = (double)len[idx[i]];
    w[i] = lo[i] = 1e300;
    for (int g = 0; g < ngt; g++) {
      if (L > gt[g].cap) continue;
      double t = sp_seq_time(m, &gt[g], L);
      if (gt[g].size * t / ndev < w[i]) w[i] = gt[g].size * t / ndev;
      if (t + gt[g].c0 < lo[i]) lo[i] = t + gt[g].c0;
    }
  }
}
