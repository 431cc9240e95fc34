/* sp_fill.c — the joint micro-batch split: one micro-batch's slack takes
 * sequences of the others.
 *
 * Micro-batches run one after another, so a micro-batch lasts as long as its
 * slowest group and every other group of it idles for the difference (the
 * slack). A micro-batch that holds a very long sequence has a lot of it: the
 * group training that sequence takes seconds while the rest of the cluster,
 * cut into small groups, finishes early. The first split (sp_split.c) cannot
 * see this, as it does not know the groups yet. This pass sees the concrete
 * plan: micro-batches in decreasing time are hosts; every sequence of another
 * micro-batch (longest first) moves into a host group where it still finishes
 * within the host's time and fits its token capacity (the group where it
 * costs the fewest device-seconds), so the host's time does not change and
 * the donor loses work. After each host the donors are repaired (sp_repair:
 * moves and swaps off their slowest group while that lowers it), so their
 * times fall; a donor left empty disappears. The step time never grows.
 * Passes repeat while one lowers it (at most SP_FILLPASS). */
#include "planner/sp.h"
#include <stdlib.h>

#define SP_FILLPASS 3

typedef struct {
  const sp_model *m;
  const int64_t *len;
  sp_plan *p;
  int n;
  int *mb_of, *g_of; /* where each sequence is */
  bool *changed;     /* per micro-batch: lost sequences */
} filler;

static const int64_t *cmp_len;
static int by_len_desc(const void *a, const void *b) {
  int64_t x = cmp_len[*(const int *)a], y = cmp_len[*(const int *)b];
  return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* locate: mb_of / g_of from the groups' sequence lists. */
static void locate(filler *f) {
  for (int q = 0; q < f->p->nmb; q++)
    for (int g = 0; g < f->p->mb[q].ngrp; g++)
      for (int s = 0; s < f->p->mb[q].grp[g].nseq; s++) {
        int i = f->p->mb[q].grp[g].seq[s];
        f->mb_of[i] = q, f->g_of[i] = g;
      }
}

/* host_group: the group of micro-batch h where sequence i finishes within
 * the host's time and fits, costing the fewest device-seconds; -1 if none. */
static int host_group(const filler *f, int h, int i, double *ti) {
  const sp_micro *mb = &f->p->mb[h];
  double L = (double)f->len[i], best = 1e300;
  int bg = -1;
  for (int g = 0; g < mb->ngrp; g++) {
    const sp_group *gr = &mb->grp[g];
    if (gr->tokens + L > gr->g.cap) continue;
    double base = gr->nseq > 0 || gr->tokens > 0.5 ? gr->time : gr->g.c0;
    double t = sp_seq_time(f->m, &gr->g, L);
    if (base + t > mb->time * (1 - 1e-12)) continue;
    double cost = gr->g.size * t;
    if (cost < best) best = cost, bg = g, *ti = t;
  }
  return bg;
}

/* move: sequence i from its group to group g of micro-batch h (time ti
 * there); the sequence lists are rebuilt by rebuild(). */
static void move(filler *f, int i, int h, int g, double ti) {
  sp_group *from = &f->p->mb[f->mb_of[i]].grp[f->g_of[i]], *to = &f->p->mb[h].grp[g];
  double L = (double)f->len[i];
  from->tokens -= L;
  from->time = from->tokens > 0.5 ? from->time - sp_seq_time(f->m, &from->g, L) : 0;
  from->nseq--;
  to->time = (to->nseq > 0 ? to->time : to->g.c0) + ti;
  to->tokens += L;
  to->nseq++;
  f->changed[f->mb_of[i]] = true;
  f->mb_of[i] = h, f->g_of[i] = g;
}

/* rebuild: every group's sequence list from mb_of / g_of (arena). */
static void rebuild(filler *f, arena *a) {
  for (int q = 0; q < f->p->nmb; q++)
    for (int g = 0; g < f->p->mb[q].ngrp; g++) {
      sp_group *gr = &f->p->mb[q].grp[g];
      gr->seq = ARENA_ARRAY(a, int, gr->nseq > 0 ? gr->nseq : 1);
      gr->nseq = 0;
    }
  for (int i = 0; i < f->n; i++) {
    sp_group *gr = &f->p->mb[f->mb_of[i]].grp[f->g_of[i]];
    gr->seq[gr->nseq++] = i;
  }
}

/* settle: repair the changed micro-batches, recompute every time from the
 * groups, drop empty micro-batches; returns the step time. */
static double settle(filler *f, arena *a) {
  int k = 0;
  f->p->step_time = 0;
  for (int q = 0; q < f->p->nmb; q++) {
    sp_micro *mb = &f->p->mb[q];
    if (f->changed[q]) sp_repair(f->m, f->len, mb->grp, mb->ngrp, a);
    mb->time = 0;
    int seqs = 0;
    for (int g = 0; g < mb->ngrp; g++) {
      sp_group *gr = &mb->grp[g];
      gr->time = sp_group_time(f->m, &gr->g, f->len, gr->seq, gr->nseq);
      if (gr->time > mb->time) mb->time = gr->time;
      seqs += gr->nseq;
    }
    if (seqs == 0) continue;
    f->changed[k] = f->changed[q];
    f->p->mb[k++] = *mb;
    f->p->step_time += mb->time;
  }
  f->p->nmb = k;
  locate(f);
  return f->p->step_time;
}

/* fill_host: move sequences of the other micro-batches into h's slack. */
static bool fill_host(filler *f, int h, const int *ord) {
  bool moved = false;
  for (int j = 0; j < f->n; j++) {
    int i = ord[j], g;
    double ti;
    if (f->mb_of[i] == h || (g = host_group(f, h, i, &ti)) < 0) continue;
    move(f, i, h, g, ti);
    moved = true;
  }
  return moved;
}

/* by_time: micro-batch indices in decreasing time. */
static void by_time(const sp_plan *p, int *ord) {
  for (int q = 0; q < p->nmb; q++) ord[q] = q;
  for (int q = 1; q < p->nmb; q++)
    for (int r = q; r > 0 && p->mb[ord[r]].time > p->mb[ord[r - 1]].time; r--) {
      int t = ord[r];
      ord[r] = ord[r - 1], ord[r - 1] = t;
    }
}

bool sp_fill(const sp_model *m, const int64_t *len, int n, sp_plan *p, arena *a) {
  bool *changed = xcalloc((size_t)p->nmb + 1, sizeof(bool));
  filler f = {m, len, p, n, xmalloc(sizeof(int) * (size_t)n), xmalloc(sizeof(int) * (size_t)n), changed};
  int *ord = xmalloc(sizeof(int) * (size_t)n), *hosts = xmalloc(sizeof(int) * (size_t)(p->nmb + 1));
  for (int i = 0; i < n; i++) ord[i] = i;
  cmp_len = len;
  qsort(ord, (size_t)n, sizeof(int), by_len_desc);
  locate(&f);
  double before = p->step_time, cur = before;
  for (int pass = 0; pass < SP_FILLPASS && p->nmb > 1; pass++) {
    double start = cur;
    by_time(p, hosts);
    int nh = p->nmb;
    for (int k = 0; k < nh && k < p->nmb; k++) {
      int h = hosts[k];
      if (h >= p->nmb || !fill_host(&f, h, ord)) continue;
      rebuild(&f, a);
      cur = settle(&f, a);
      by_time(p, hosts); /* micro-batches may have gone: order again, go on from the next */
    }
    if (cur >= start * (1 - 1e-9)) break;
  }
  free(f.mb_of), free(f.g_of), free(ord), free(hosts), free(changed);
  return cur < before * (1 - 1e-12);
}
