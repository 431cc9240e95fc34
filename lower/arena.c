/* arena.c — register offsets in each stage's activation arena.
 *
 * Registers without bytes of their own (alias.c) are not placed: a view
 * (a reshape's output) takes its viewed register's offsets, and that
 * register's lifetime covers its views'; an into_acc register (a weight
 * gradient written straight into its accumulator) takes none (offset 0).
 *
 * An instance is one register for one micro-batch. Its lifetime, in
 * positions of the stage's static schedule (actors.c), runs from its
 * producer's firing to the last of its consumers' (an instance nobody reads
 * lives for its producer's firing only). Two placements are computed and
 * the smaller arena kept:
 *  - online best fit: walk the schedule once, as an allocator would see it:
 *    at each position the instances whose lifetime ended are freed, then
 *    those that start are placed best fit in the free list (blocks
 *    coalesce; the arena grows at the top only when no block holds one);
 *  - greedy by size (Pisarchyk and Lee 2020, "Efficient memory management
 *    for deep neural net inference"): every lifetime is known in advance,
 *    so the instances are placed largest first, each in the smallest gap
 *    between the already placed instances that live at the same time as
 *    it. Online best fit leaves holes that a large late tensor (a tied
 *    embedding's gradient) cannot use; this placement packs those first;
 *  - greedy by peaks: the schedule position with the most bytes still to
 *    place, its instances longest-lived first, each in the lowest gap that
 *    holds it; then the next such position. Where the arena's peak and a
 *    second near-peak share long-lived activations (a pipeline stage's
 *    forward and its tied-gradient sum), this keeps those low for both.
 * The greedy placements are quadratic in the instances, so stages with
 * more than GREEDY_MAX instances keep the online placement alone.
 * The arena's size is the planned peak of activations; with the persistent
 * tensors and the CPU executor's receive buffer of a gradient reduction
 * (recv_bytes) it is what the program predicts per rank.
 *
 * The offsets are only valid in the order the schedule implies; the
 * executor keeps them valid under any firing order by letting an instance
 * take its bytes only after every instance that held them earlier in the
 * schedule has been released (runtime/executor.c). */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

#define ALIGN 64
#define GREEDY_MAX 20000 /* instances of a stage the greedy placements take on */

typedef struct {
  int64_t off, size;
} blk;

typedef struct {
  blk *v;
  int n, cap;
  int64_t top;
} freelist;

static int64_t al(int64_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

static void fl_insert(freelist *f, int i, blk b) {
  if (f->n == f->cap) f->cap = 2 * f->cap + 64, f->v = xrealloc(f->v, sizeof *f->v * (size_t)f->cap);
  memmove(&f->v[i + 1], &f->v[i], sizeof *f->v * (size_t)(f->n - i));
  f->v[i] = b;
  f->n++;
}

static void fl_remove(freelist *f, int i) {
  memmove(&f->v[i], &f->v[i + 1], sizeof *f->v * (size_t)(f->n - i - 1));
  f->n--;
}

static int64_t fl_alloc(freelist *f, int64_t size) {
  int best = -1;
  for (int i = 0; i < f->n; i++)
    if (f->v[i].size >= size && (best < 0 || f->v[i].size < f->v[best].size)) best = i;
  if (best >= 0) {
    int64_t off = f->v[best].off;
    f->v[best].off += size, f->v[best].size -= size;
    if (f->v[best].size == 0) fl_remove(f, best);
    return off;
  }
  if (f->n > 0 && f->v[f->n - 1].off + f->v[f->n - 1].size == f->top) { /* grow the last free block */
    int64_t off = f->v[f->n - 1].off;
    f->top = off + size;
    fl_remove(f, f->n - 1);
    return off;
  }
  int64_t off = f->top;
  f->top += size;
  return off;
}

static void fl_free(freelist *f, int64_t off, int64_t size) {
  int i = 0;
  while (i < f->n && f->v[i].off < off) i++;
  fl_insert(f, i, (blk){off, size});
  if (i + 1 < f->n && f->v[i].off + f->v[i].size == f->v[i + 1].off) f->v[i].size += f->v[i + 1].size, fl_remove(f, i + 1);
  if (i > 0 && f->v[i - 1].off + f->v[i - 1].size == f->v[i].off) f->v[i - 1].size += f->v[i].size, fl_remove(f, i);
}

typedef struct {
  int32_t reg, micro, start, end;
} inst;

/* who held which bytes last: segments [off, end) -> instance id, sorted */
typedef struct {
  int64_t off, end;
  int32_t who;
} seg;

typedef struct {
  seg *v;
  int n, cap;
} owners;

/* instance x takes [off, off + size): the instances that held parts of it
 * last go to its wait list, then x owns the range */
static void take(owners *o, int64_t off, int64_t size, int32_t x, int32_t **wait, int32_t *nwait, arena *a) {
  int64_t end = off + size;
  int32_t tmp[4096];
  int nt = 0;
  seg *nv = xmalloc(sizeof *nv * (size_t)(o->n + 3));
  int nn = 0;
  for (int i = 0; i < o->n; i++) {
    seg s = o->v[i];
    if (s.end <= off || s.off >= end) {
      nv[nn++] = s;
      continue;
    }
    bool dup = false;
    for (int k = 0; k < nt; k++) dup |= tmp[k] == s.who;
    if (!dup && nt < 4096) tmp[nt++] = s.who;
    if (s.off < off) nv[nn++] = (seg){s.off, off, s.who};
    if (s.end > end) nv[nn++] = (seg){end, s.end, s.who};
  }
  nv[nn++] = (seg){off, end, x};
  for (int i = nn - 1; i > 0 && nv[i].off < nv[i - 1].off; i--) { /* keep sorted */
    seg t = nv[i];
    nv[i] = nv[i - 1], nv[i - 1] = t;
  }
  free(o->v);
  o->v = nv, o->n = nn;
  *wait = ARENA_ARRAY(a, int32_t, nt + 1);
  memcpy(*wait, tmp, sizeof(int32_t) * (size_t)nt);
  *nwait = nt;
}

static int by_end(const void *a, const void *b) {
  const inst *x = a, *y = b;
  return x->end != y->end ? (x->end > y->end) - (x->end < y->end) : (x->start > y->start) - (x->start < y->start);
}

/* does register r take bytes of its own? (alias: views and into_acc
 * registers do not, alias.c) */
static bool placed(const fmt_reg *g, bool alias) { return !alias || (g->view < 0 && !g->into_acc); }

/* lifetimes of every (register, micro-batch) of stage st that takes bytes
 * of its own; with alias a viewed register's covers its views' */
static inst *lifetimes(const fmt_stage *st, int M, bool alias, int *n) {
  int32_t *pos = xmalloc(sizeof(int32_t) * ((size_t)st->nact * (size_t)M + 1));
  int32_t *end = xmalloc(sizeof(int32_t) * ((size_t)st->nreg * (size_t)M + 1));
  for (int64_t i = 0; i < (int64_t)st->nact * M; i++) pos[i] = -1;
  for (int i = 0; i < st->nsched; i++) pos[(int64_t)st->sched[i].actor * M + st->sched[i].micro] = i;
  for (int r = 0; r < st->nreg; r++)
    for (int m = 0; m < M; m++) {
      const fmt_reg *g = &st->reg[r];
      int e = pos[(int64_t)g->producer * M + m];
      for (int c = 0; c < g->ncons; c++) {
        int p = pos[(int64_t)g->cons[c] * M + m];
        e = p > e ? p : e;
      }
      end[(int64_t)r * M + m] = e;
    }
  if (alias) lw_alias_ends(st, M, end);
  inst *v = xmalloc(sizeof *v * ((size_t)st->nreg * (size_t)M + 1));
  *n = 0;
  for (int r = 0; r < st->nreg; r++)
    for (int m = 0; m < M && placed(&st->reg[r], alias); m++)
      v[(*n)++] = (inst){r, m, pos[(int64_t)st->reg[r].producer * M + m], end[(int64_t)r * M + m]};
  free(pos), free(end);
  return v;
}

/* the registers without bytes of their own: a view at its viewed
 * register's offsets (planned before it: a lower index), an into_acc
 * register at 0; neither waits for anything */
static void place_aliases(fmt_prog *p, fmt_stage *st, bool alias) {
  for (int r = 0; r < st->nreg; r++) {
    fmt_reg *g = &st->reg[r];
    for (int m = 0; m < p->micro && !placed(g, alias); m++) {
      g->offset[m] = g->view >= 0 ? st->reg[g->view].offset[m] : 0;
      g->nwait[m] = 0, g->wait[m] = ARENA_ARRAY(p->a, int32_t, 1);
    }
  }
}

/* online best fit in schedule order (see the top): off[i] for instance i;
 * returns the arena's size */
static int64_t place_online(const fmt_stage *st, const inst *v, int n, int32_t *const *start_at, const int *nstart,
                            int64_t *off) {
  inst *ends = xmalloc(sizeof *ends * ((size_t)n + 1));
  int32_t *idx = xmalloc(sizeof(int32_t) * ((size_t)n + 1));
  memcpy(ends, v, sizeof *v * (size_t)n);
  for (int i = 0; i < n; i++) ends[i].micro = i; /* the copy carries the instance's index */
  qsort(ends, (size_t)n, sizeof *ends, by_end);
  for (int i = 0; i < n; i++) idx[i] = ends[i].micro;
  freelist f = {0};
  int e = 0;
  for (int t = 0; t < st->nsched; t++) {
    for (; e < n && ends[e].end < t; e++) fl_free(&f, off[idx[e]], al(st->reg[v[idx[e]].reg].bytes));
    for (int i = 0; i < nstart[t]; i++) off[start_at[t][i]] = fl_alloc(&f, al(st->reg[v[start_at[t][i]].reg].bytes));
  }
  free(ends), free(idx), free(f.v);
  return f.top;
}

typedef struct {
  int64_t size;
  int32_t i;
} bysize;

static int larger_first(const void *a, const void *b) {
  const bysize *x = a, *y = b;
  return x->size != y->size ? (x->size < y->size) - (x->size > y->size) : (x->i > y->i) - (x->i < y->i);
}

static int by_off(const void *a, const void *b) {
  const blk *x = a, *y = b;
  return (x->off > y->off) - (x->off < y->off);
}

/* the smallest gap (first: the lowest) of at least size between the
 * blocks b[0..nb), or the top of the highest */
static int64_t find_gap(blk *b, int nb, int64_t size, bool first) {
  qsort(b, (size_t)nb, sizeof *b, by_off);
  int64_t at = 0, best = -1, bestsz = 0;
  for (int k = 0; k < nb; k++) {
    if (b[k].off - at >= size && (best < 0 || b[k].off - at < bestsz)) {
      best = at, bestsz = b[k].off - at;
      if (first) break;
    }
    if (b[k].off + b[k].size > at) at = b[k].off + b[k].size;
  }
  return best >= 0 ? best : at;
}

/* place the instances in order o[0..n) (o[k].i), each in a gap among the
 * placed ones that overlap it in time: off[i]; returns the arena's size */
static int64_t place_in_order(const inst *v, int n, const bysize *o, bool first, int64_t *off) {
  blk *live = xmalloc(sizeof *live * ((size_t)n + 1));
  int64_t top = 0;
  for (int k = 0; k < n; k++) {
    const inst *x = &v[o[k].i];
    int nb = 0;
    for (int j = 0; j < k; j++) {
      const inst *y = &v[o[j].i];
      if (o[j].size > 0 && y->start <= x->end && x->start <= y->end) live[nb++] = (blk){off[o[j].i], o[j].size};
    }
    off[o[k].i] = o[k].size > 0 ? find_gap(live, nb, o[k].size, first) : 0;
    if (off[o[k].i] + o[k].size > top) top = off[o[k].i] + o[k].size;
  }
  free(live);
  return top;
}

static const inst *peak_v; /* the instances, for longer_first */

static int longer_first(const void *a, const void *b) {
  const bysize *x = a, *y = b;
  int32_t lx = peak_v[x->i].end - peak_v[x->i].start, ly = peak_v[y->i].end - peak_v[y->i].start;
  return lx != ly ? (lx < ly) - (lx > ly) : larger_first(a, b);
}

/* the greedy-by-peaks order (see the top) of the n instances into o */
static void order_peaks(const inst *v, int n, int T, const bysize *sz, bysize *o) {
  bool *done = xcalloc((size_t)n + 1, sizeof(bool));
  int64_t *lv = xmalloc(sizeof(int64_t) * ((size_t)T + 2));
  peak_v = v;
  for (int k = 0; k < n;) {
    memset(lv, 0, sizeof(int64_t) * ((size_t)T + 2));
    for (int i = 0; i < n; i++)
      if (!done[i]) lv[v[i].start] += sz[i].size, lv[v[i].end + 1] -= sz[i].size;
    int t = 0;
    for (int u = 1; u <= T; u++) lv[u] += lv[u - 1];
    for (int u = 1; u < T; u++) t = lv[u] > lv[t] ? u : t;
    int k0 = k;
    for (int i = 0; i < n; i++)
      if (!done[i] && (lv[t] == 0 || (v[i].start <= t && t <= v[i].end))) o[k++] = sz[i], done[i] = true;
    qsort(o + k0, (size_t)(k - k0), sizeof *o, longer_first);
  }
  free(done), free(lv);
}

/* the best of the two greedy placements (see the top): off[i] for
 * instance i; returns the arena's size */
static int64_t place_greedy(const fmt_stage *st, const inst *v, int n, int64_t *off) {
  bysize *sz = xmalloc(sizeof *sz * ((size_t)n + 1)), *o = xmalloc(sizeof *o * ((size_t)n + 1));
  int64_t *off2 = xmalloc(sizeof(int64_t) * ((size_t)n + 1));
  for (int i = 0; i < n; i++) sz[i] = (bysize){al(st->reg[v[i].reg].bytes), i};
  memcpy(o, sz, sizeof *o * (size_t)n);
  qsort(o, (size_t)n, sizeof *o, larger_first);
  int64_t top = place_in_order(v, n, o, false, off);
  order_peaks(v, n, st->nsched, sz, o);
  int64_t top2 = place_in_order(v, n, o, true, off2);
  if (top2 < top) top = top2, memcpy(off, off2, sizeof(int64_t) * (size_t)n);
  free(sz), free(o), free(off2);
  return top;
}

static void plan_stage(fmt_prog *p, fmt_stage *st, bool alias) {
  int M = p->micro, n;
  inst *v = lifetimes(st, M, alias, &n);
  for (int r = 0; r < st->nreg; r++) {
    st->reg[r].offset = ARENA_ARRAY(p->a, int64_t, M);
    st->reg[r].wait = ARENA_ARRAY(p->a, int32_t *, M);
    st->reg[r].nwait = ARENA_ARRAY(p->a, int32_t, M);
  }
  int32_t **start_at = xcalloc((size_t)st->nsched + 1, sizeof *start_at);
  int *nstart = xcalloc((size_t)st->nsched + 1, sizeof(int));
  for (int i = 0; i < n; i++) nstart[v[i].start]++;
  for (int i = 0; i <= st->nsched; i++) start_at[i] = xmalloc(sizeof(int32_t) * (size_t)(nstart[i] + 1)), nstart[i] = 0;
  for (int i = 0; i < n; i++) start_at[v[i].start][nstart[v[i].start]++] = i;
  int64_t *off = xmalloc(sizeof(int64_t) * ((size_t)n + 1)), *off2 = xmalloc(sizeof(int64_t) * ((size_t)n + 1));
  int64_t top = place_online(st, v, n, start_at, nstart, off);
  if (n <= GREEDY_MAX) {
    int64_t top2 = place_greedy(st, v, n, off2);
    if (top2 < top) top = top2, memcpy(off, off2, sizeof(int64_t) * (size_t)n);
  }
  /* the wait lists, in schedule order: who held the bytes last */
  owners own = {0};
  for (int t = 0; t < st->nsched; t++)
    for (int i = 0; i < nstart[t]; i++) {
      const inst *x = &v[start_at[t][i]];
      fmt_reg *g = &st->reg[x->reg];
      g->offset[x->micro] = off[start_at[t][i]];
      take(&own, g->offset[x->micro], al(g->bytes), x->reg * M + x->micro, &g->wait[x->micro], &g->nwait[x->micro], p->a);
    }
  place_aliases(p, st, alias);
  st->arena_bytes = top;
  for (int i = 0; i <= st->nsched; i++) free(start_at[i]);
  free(start_at), free(nstart), free(v), free(off), free(off2), free(own.v);
}

/* the floats of bucket b each of its parameters' accumulator holds: whole,
 * or its dp slice (ceil(k / shard)) when shard > 1 (ZeRO-2/3) */
static int64_t bucket_floats(const fmt_prog *p, const fmt_bucket *b, int64_t shard) {
  int64_t span = 0;
  for (int i = 0; i < b->nparam; i++) {
    int64_t k = ir_numel(p->g, p->param[b->param[i]].tensor);
    span += shard > 1 ? (k + shard - 1) / shard : k;
  }
  return span;
}

/* recv_bytes: what the CPU executor mallocs beside stage s's arenas while
 * a bucket's gradient reduction flies (runtime/executor.c): under ZeRO 0/1
 * the other N - 1 members' copies of this rank's slice of the bucket's span
 * (start_reduce_all), under ZeRO 2/3 N - 2 copies of each parameter's slice
 * (start_reduce_scatter; at N = 2 the first copy lands in the register); the
 * largest bucket's (N: dp x sp, the gradient group). A bucket of partial
 * sums over tp (a tp reduce actor) has tp - 1 copies of its slice of the
 * accumulators' span (the shards under ZeRO-2/3) in flight the same way;
 * the two groups' largest are added, as a tp reduce may fly beside another
 * bucket's dp reduce. The planner estimates the same
 * buffers without buckets (planner/search.c recv_buffer). */
static int64_t recv_bytes(const fmt_prog *p, int s) {
  int64_t n = (int64_t)p->dp * p->sp, t = p->tp, dp = 0, tp = 0;
  for (int b = 0; b < p->nbucket; b++) {
    const fmt_bucket *bk = &p->bucket[b];
    if (bk->stage != s) continue;
    int64_t d = 0, r = 0;
    if (n > 1) d = p->zero <= 1 ? (n - 1) * ((bucket_floats(p, bk, 1) + n - 1) / n) : (n - 2) * bucket_floats(p, bk, n);
    if (lw_grad_tp_sum(p, &p->param[bk->param[0]])) r = (t - 1) * ((bucket_floats(p, bk, p->zero >= 2 ? n : 1) + t - 1) / t);
    dp = 4 * d > dp ? 4 * d : dp, tp = 4 * r > tp ? 4 * r : tp;
  }
  return dp + tp;
}

/* the CPU plan: the arenas, and the peak with the receive buffer beside them */
bool lw_arena(lw_ctx *c) {
  fmt_prog *p = c->p;
  lw_arena_plan(c, true);
  for (int s = 0; s < p->nstage; s++) {
    int64_t total = p->stage[s].arena_bytes + p->stage[s].persist_bytes + recv_bytes(p, s);
    p->predicted_peak = total > p->predicted_peak ? total : p->predicted_peak;
  }
  return true;
}

bool lw_arena_plan(lw_ctx *c, bool alias) {
  fmt_prog *p = c->p;
  p->predicted_peak = 0;
  for (int s = 0; s < p->nstage; s++) {
    plan_stage(p, &p->stage[s], alias);
    int64_t total = p->stage[s].arena_bytes + p->stage[s].persist_bytes;
    p->predicted_peak = total > p->predicted_peak ? total : p->predicted_peak;
  }
  return true;
}
