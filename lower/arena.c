/* arena.c — register offsets in each stage's activation arena.
 *
 * An instance is one register for one micro-batch. Its lifetime, in
 * positions of the stage's static schedule (actors.c), runs from its
 * producer's firing to the last of its consumers' (an instance nobody reads
 * lives for its producer's firing only). The arena is planned by walking
 * the schedule once, as an allocator would see it: at each position the
 * instances whose lifetime ended are freed, then those that start are
 * placed, best fit in the free list (blocks coalesce; the arena grows at
 * the top only when no free block holds the instance). The arena's size is
 * the planned peak of activations; with the persistent tensors it is what
 * the program predicts per rank.
 *
 * The offsets are only valid in the order the schedule implies; the
 * executor keeps them valid under any firing order by letting an instance
 * take its bytes only after every instance that held them earlier in the
 * schedule has been released (runtime/executor.c). */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

#define ALIGN 64

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

/* lifetimes of every (register, micro-batch) of stage st */
static inst *lifetimes(const fmt_stage *st, int M, int *n) {
  int32_t *pos = xmalloc(sizeof(int32_t) * ((size_t)st->nact * (size_t)M + 1));
  for (int64_t i = 0; i < (int64_t)st->nact * M; i++) pos[i] = -1;
  for (int i = 0; i < st->nsched; i++) pos[(int64_t)st->sched[i].actor * M + st->sched[i].micro] = i;
  inst *v = xmalloc(sizeof *v * ((size_t)st->nreg * (size_t)M + 1));
  *n = 0;
  for (int r = 0; r < st->nreg; r++)
    for (int m = 0; m < M; m++) {
      const fmt_reg *g = &st->reg[r];
      int s = pos[(int64_t)g->producer * M + m], e = s;
      for (int c = 0; c < g->ncons; c++) {
        int p = pos[(int64_t)g->cons[c] * M + m];
        e = p > e ? p : e;
      }
      v[(*n)++] = (inst){r, m, s, e};
    }
  free(pos);
  return v;
}

static void plan_stage(fmt_prog *p, fmt_stage *st) {
  int M = p->micro, n;
  inst *v = lifetimes(st, M, &n);
  for (int r = 0; r < st->nreg; r++) {
    st->reg[r].offset = ARENA_ARRAY(p->a, int64_t, M);
    st->reg[r].wait = ARENA_ARRAY(p->a, int32_t *, M);
    st->reg[r].nwait = ARENA_ARRAY(p->a, int32_t, M);
  }
  owners own = {0};
  inst *ends = xmalloc(sizeof *ends * ((size_t)n + 1));
  memcpy(ends, v, sizeof *v * (size_t)n);
  qsort(ends, (size_t)n, sizeof *ends, by_end);
  int32_t **start_at = xcalloc((size_t)st->nsched + 1, sizeof *start_at);
  int *nstart = xcalloc((size_t)st->nsched + 1, sizeof(int));
  for (int i = 0; i < n; i++) nstart[v[i].start]++;
  for (int i = 0; i <= st->nsched; i++) start_at[i] = xmalloc(sizeof(int32_t) * (size_t)(nstart[i] + 1)), nstart[i] = 0;
  for (int i = 0; i < n; i++) start_at[v[i].start][nstart[v[i].start]++] = i;
  freelist f = {0};
  int e = 0;
  for (int t = 0; t < st->nsched; t++) {
    for (; e < n && ends[e].end < t; e++)
      fl_free(&f, st->reg[ends[e].reg].offset[ends[e].micro], al(st->reg[ends[e].reg].bytes));
    for (int i = 0; i < nstart[t]; i++) {
      const inst *x = &v[start_at[t][i]];
      fmt_reg *g = &st->reg[x->reg];
      g->offset[x->micro] = fl_alloc(&f, al(g->bytes));
      take(&own, g->offset[x->micro], al(g->bytes), x->reg * M + x->micro, &g->wait[x->micro], &g->nwait[x->micro], p->a);
    }
  }
  st->arena_bytes = f.top;
  for (int i = 0; i <= st->nsched; i++) free(start_at[i]);
  free(start_at), free(nstart), free(ends), free(v), free(f.v), free(own.v);
}

bool lw_arena(lw_ctx *c) {
  fmt_prog *p = c->p;
  p->predicted_peak = 0;
  for (int s = 0; s < p->nstage; s++) {
    plan_stage(p, &p->stage[s]);
    int64_t total = p->stage[s].arena_bytes + p->stage[s].persist_bytes;
    p->predicted_peak = total > p->predicted_peak ? total : p->predicted_peak;
  }
  return true;
}
