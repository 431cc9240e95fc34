/* pool.c — activation buffers by exact size, kept across micro-batches and
 * steps instead of malloc/free each time, shared by reshape aliases.
 *
 * A step allocates and frees the same few activation sizes over and over
 * ([B,S,H], [B,S,3H], [B,S,4H], the [B,S,V] logits, ...). Fresh large
 * allocations are new mmaps on Linux, so every step paid a page fault per
 * 4 KiB page of every activation (and the kernel's zeroing). The pool keeps a
 * free list per byte size: rt_pool_get pops a buffer of that size or makes a
 * new one, rt_pool_put pushes it back; memory goes back to the system only in
 * rt_pool_free. Buffers of 1 MiB and more are 2 MiB aligned and advised as
 * transparent huge pages (MADV_HUGEPAGE; Linux's default THP mode is
 * "madvise"), so their first touch faults once per 2 MiB.
 *
 * Contents: a buffer from rt_pool_get is NOT zeroed (kernels write their whole
 * outputs). Debug builds (no NDEBUG) fill every buffer handed out with NaN, so
 * a kernel that reads an output it did not write shows up in the loss tests.
 *
 * Accounting: the pool reports bytes it takes from and gives back to the
 * system through the caller's count function, so the executor's measured peak
 * is the memory really held for activations, idle pooled buffers included.
 * A miss first frees idle buffers (trim) until what the pool holds plus the
 * new buffer is within the peak of the live bytes so far (or nothing is
 * idle): so the held bytes never exceed the live peak and the measured peak
 * is that of the live tensors, as with malloc/free, while idle buffers below
 * that peak stay for the next step (freeing them eagerly made every step
 * fault its large buffers in again).
 *
 * Aliases: a reshape's output shares its input's buffer (the executors call
 * rt_pool_share); the buffer returns to its free list when the last owner
 * puts it.
 *
 * Threads: one mutex guards the free lists; the actor executor's worker
 * threads and its calling thread share one pool (rt_exec's). */
#include "runtime/exec_priv.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { HUGE_MIN = 1 << 20, HUGE_ALIGN = 2 << 20 };

typedef struct {
  int64_t bytes;
  void **v;
  int n, cap;
} pool_class;

typedef struct {
  void *q;
  int extra;             /* owners beyond the first */
} pool_share;

struct rt_pool {
  pthread_mutex_t mu;
  pool_class *c;
  int nc, capc;
  pool_share *sh;        /* buffers with several owners (aliases) */
  int nsh, capsh;
  int64_t held, idle, peak_live; /* bytes: taken from the system, in free lists, max of held - idle */
  void (*count)(void *ctx, int64_t delta);
  void *ctx;
};

rt_pool *rt_pool_new(void (*count)(void *ctx, int64_t delta), void *ctx) {
  rt_pool *p = xcalloc(1, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  p->count = count, p->ctx = ctx;
  return p;
}

/* the class of `bytes` (created when missing); under the lock */
static pool_class *class_of(rt_pool *p, int64_t bytes) {
  for (int i = 0; i < p->nc; i++)
    if (p->c[i].bytes == bytes) return &p->c[i];
  if (p->nc == p->capc) {
    p->capc = p->capc ? 2 * p->capc : 16;
    p->c = xrealloc(p->c, sizeof *p->c * (size_t)p->capc);
  }
  pool_class *c = &p->c[p->nc++];
  memset(c, 0, sizeof *c);
  c->bytes = bytes;
  return c;
}

void *rt_huge_alloc(int64_t bytes) {
  if (bytes < HUGE_MIN) return xmalloc((size_t)bytes);
  size_t n = ((size_t)bytes + HUGE_ALIGN - 1) / HUGE_ALIGN * HUGE_ALIGN;
  void *q = NULL;
  if (posix_memalign(&q, HUGE_ALIGN, n) != 0) return xmalloc((size_t)bytes); /* dies on failure */
#ifdef MADV_HUGEPAGE
  madvise(q, n, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
  return q;
}

static void poison(void *q, int64_t bytes) {
#ifndef NDEBUG
  float *f = q;
  for (int64_t i = 0; i < bytes / 4; i++) f[i] = NAN;
#else
  (void)q, (void)bytes;
#endif
}

/* before taking `bytes` more from the system: give idle buffers back until
 * what is held stays within the peak of the live bytes (or none is idle);
 * under the lock */
static void trim(rt_pool *p, int64_t bytes) {
  int64_t live = p->held - p->idle + bytes, need, freed = 0;
  if (live > p->peak_live) p->peak_live = live;
  need = p->held + bytes - p->peak_live;
  for (int i = 0; i < p->nc && freed < need; i++)
    while (p->c[i].n && freed < need) {
      free(p->c[i].v[--p->c[i].n]);
      freed += p->c[i].bytes;
    }
  p->held -= freed, p->idle -= freed;
  if (freed) p->count(p->ctx, -freed);
}

void *rt_pool_get(rt_pool *p, int64_t bytes) {
  if (bytes <= 0) bytes = 4;
  pthread_mutex_lock(&p->mu);
  pool_class *c = class_of(p, bytes);
  void *q = c->n ? c->v[--c->n] : NULL;
  if (q) p->idle -= bytes;
  else {
    trim(p, bytes);
    q = rt_huge_alloc(bytes);
    p->held += bytes;
    p->count(p->ctx, bytes);
  }
  pthread_mutex_unlock(&p->mu);
  poison(q, bytes);
  return q;
}

void rt_pool_share(rt_pool *p, void *q) {
  pthread_mutex_lock(&p->mu);
  int i = 0;
  while (i < p->nsh && p->sh[i].q != q) i++;
  if (i == p->nsh) {
    if (p->nsh == p->capsh) {
      p->capsh = p->capsh ? 2 * p->capsh : 16;
      p->sh = xrealloc(p->sh, sizeof *p->sh * (size_t)p->capsh);
    }
    p->sh[p->nsh++] = (pool_share){q, 0};
  }
  p->sh[i].extra++;
  pthread_mutex_unlock(&p->mu);
}

/* one owner of q lets go; true when others remain; under the lock */
static bool still_shared(rt_pool *p, void *q) {
  for (int i = 0; i < p->nsh; i++)
    if (p->sh[i].q == q) {
      if (--p->sh[i].extra == 0) p->sh[i] = p->sh[--p->nsh];
      return true;
    }
  return false;
}

void rt_pool_put(rt_pool *p, void *q, int64_t bytes) {
  if (!q) return;
  if (bytes <= 0) bytes = 4;
  pthread_mutex_lock(&p->mu);
  if (still_shared(p, q)) {
    pthread_mutex_unlock(&p->mu);
    return;
  }
  pool_class *c = class_of(p, bytes);
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 4;
    c->v = xrealloc(c->v, sizeof *c->v * (size_t)c->cap);
  }
  c->v[c->n++] = q;
  p->idle += bytes;
  pthread_mutex_unlock(&p->mu);
}

void rt_pool_free(rt_pool *p) {
  if (!p) return;
  for (int i = 0; i < p->nc; i++) {
    for (int j = 0; j < p->c[i].n; j++) free(p->c[i].v[j]);
    p->count(p->ctx, -p->c[i].bytes * p->c[i].n);
    free(p->c[i].v);
  }
  free(p->c);
  free(p->sh);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
