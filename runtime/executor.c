/* executor.c — the actor executor: one step's micro-batches on one rank.
 *
 * Actors (docs/actor-plan.md): a compute actor per op of this stage, a recv
 * actor per tensor this stage reads from another one, a send actor per
 * (tensor made here, other stage reading it). Registers: every tensor made on
 * this rank has regst_num buffers (a ring; micro-batch i uses slot i % n) and
 * a count of consumers still to read each slot. A forward activation that a
 * backward op reads keeps pp - stage buffers, a received tensor 2, the rest 1.
 * Slot buffers come from the rank's pool (pool.c) and go back to it when no
 * consumer is left; a reshape's slot aliases its input's buffer.
 *
 * An actor handles micro-batches in order, one at a time. It fires for
 * micro-batch i when every input register holds i ("ready") and every output
 * register's slot for i is free; when done it marks its outputs ready and
 * gives its input slots back ("free"). Nothing else orders the work, so the
 * 1F1B pipeline schedule comes from the buffer counts alone: stage s can run
 * at most pp - s forward passes ahead of their backward passes.
 *
 * Threads: SBPC_WORKERS worker threads (default: 2 when the cores hold two
 * GEMMs with all of OpenBLAS's threads each, else 1) run compute actors; the
 * calling thread runs send/recv actors with non-blocking MPI (MPI stays on one
 * thread: MPI_THREAD_FUNNELED), polls them, and is the watchdog: no progress
 * for rt_comm_timeout seconds while a transfer is pending names the peer and
 * aborts. One mutex and one condition variable guard all actor state; kernels
 * run outside the lock. Tensor parallelism (collectives inside compute
 * actors) is left to the sequential interpreter (exec.c). */
#include "runtime/exec_priv.h"
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { A_COMPUTE, A_SEND, A_RECV };

typedef struct {
  ir_ref t;
  int n, ncons;          /* slots, consumers on this rank */
  int64_t made;          /* micro-batches produced so far */
  int *slot_mb, *left;   /* per slot: micro-batch held (-1), consumers still to read */
  float **buf;
  int64_t bytes;
} reg;

typedef struct {
  int kind, op;          /* op index (compute), or -1 */
  ir_ref t;              /* send/recv: the tensor */
  int peer;              /* send/recv: world rank */
  int nin, nout;
  int in[IR_MAXIN], out[1]; /* register ids (-1: param or input, read directly) */
  int64_t next;          /* next micro-batch */
  bool busy;
  rt_req *req;
  double posted;         /* when req was posted (--trace) */
} actor;

typedef struct {
  rt_exec *e;
  reg *reg;
  actor *act;
  int nreg, nact, M;
  int *reg_of;           /* per tensor: register id or -1 */
  const int32_t *ids, *labels;
  int64_t mb_elems;
  double gscale, loss;
  bool failed;
  int tag_ub;
  int64_t events;        /* actors started or finished: progress for the watchdog */
  pthread_mutex_t mu;
  pthread_cond_t cv;
} sched;

static int regst_num(const rt_exec *e, ir_ref t, bool cross) {
  const ir_graph *g = e->g;
  ir_ref p = g->t[t].producer;
  bool fwd = p >= 0 && !g->op[p].backward, bwd_use = false;
  for (int k = 0; k < g->nop && fwd && !bwd_use; k++)
    for (int i = 0; i < g->op[k].nin; i++) bwd_use |= g->op[k].in[i] == t && g->op[k].backward;
  int n = fwd && bwd_use ? e->nstages - e->stage : 1;
  if (cross && n < 2) n = 2;
  return n;
}

static int new_reg(sched *s, ir_ref t, bool cross) {
  reg *r = &s->reg[s->nreg];
  memset(r, 0, sizeof *r);
  r->t = t;
  r->n = regst_num(s->e, t, cross);
  r->slot_mb = xmalloc(sizeof(int) * (size_t)r->n);
  r->left = xcalloc((size_t)r->n, sizeof(int));
  r->buf = xcalloc((size_t)r->n, sizeof(float *));
  for (int i = 0; i < r->n; i++) r->slot_mb[i] = -1;
  r->bytes = ir_numel(s->e->g, t) * 4;
  s->reg_of[t] = s->nreg;
  return s->nreg++;
}

static actor *new_actor(sched *s, int kind, int op, ir_ref t, int peer) {
  actor *a = &s->act[s->nact++];
  memset(a, 0, sizeof *a);
  a->kind = kind, a->op = op, a->t = t, a->peer = peer;
  for (int i = 0; i < IR_MAXIN; i++) a->in[i] = -1;
  a->out[0] = -1;
  return a;
}

static bool mine(const rt_exec *e, int k) { return e->g->op[k].kind != IR_OP_ADAMW && e->op_stage[k] == e->stage; }

/* registers for everything made here, recv actors for what comes from elsewhere */
static void build_regs(sched *s) {
  rt_exec *e = s->e;
  const ir_graph *g = e->g;
  for (int k = 0; k < g->nop; k++) {
    if (!mine(e, k)) continue;
    for (int i = 0; i < g->op[k].nout; i++) new_reg(s, g->op[k].out[i], false);
    for (int i = 0; i < g->op[k].nin; i++) {
      ir_ref t = g->op[k].in[i];
      if (e->t_stage[t] < 0 || e->t_stage[t] == e->stage || s->reg_of[t] >= 0) continue;
      actor *a = new_actor(s, A_RECV, -1, t, (e->t_stage[t] * e->dp + e->dpi) * e->tp + e->tpi);
      a->nout = 1;
      a->out[0] = new_reg(s, t, true);
    }
  }
}

static void consume(sched *s, actor *a, ir_ref t) {
  int r = s->reg_of[t];
  if (r < 0) return;
  a->in[a->nin++] = r;
  s->reg[r].ncons++;
}

static void build_actors(sched *s) {
  rt_exec *e = s->e;
  const ir_graph *g = e->g;
  uint64_t *sent = xcalloc((size_t)g->nt, sizeof *sent);
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind == IR_OP_ADAMW) continue;
    if (mine(e, k)) {
      actor *a = new_actor(s, A_COMPUTE, k, IR_NONE, -1);
      for (int i = 0; i < o->nin; i++) {
        int r = s->reg_of[o->in[i]];
        a->in[a->nin++] = r;
        if (r >= 0) s->reg[r].ncons++;
      }
      continue;
    }
    int to = e->op_stage[k];
    for (int i = 0; i < o->nin; i++) {
      ir_ref t = o->in[i];
      if (e->t_stage[t] != e->stage || (sent[t] >> to & 1)) continue;
      sent[t] |= 1ull << to;
      consume(s, new_actor(s, A_SEND, -1, t, (to * e->dp + e->dpi) * e->tp + e->tpi), t);
    }
  }
  free(sent);
}

/* ---- firing rules (under the lock) ---------------------------------------- */
static bool ready_in(const sched *s, const actor *a, int64_t mb) {
  for (int i = 0; i < a->nin; i++)
    if (a->in[i] >= 0 && s->reg[a->in[i]].made <= mb) return false;
  return true;
}

static bool free_out(const sched *s, int r, int64_t mb) {
  const reg *g = &s->reg[r];
  int sl = (int)(mb % g->n);
  return g->slot_mb[sl] < 0 || g->left[sl] == 0;
}

static bool can_fire(const sched *s, const actor *a) {
  if (a->busy || a->next >= s->M || !ready_in(s, a, a->next)) return false;
  if (a->kind == A_COMPUTE) {
    const ir_op *o = &s->e->g->op[a->op];
    for (int i = 0; i < o->nout; i++)
      if (!free_out(s, s->reg_of[o->out[i]], a->next)) return false;
    return true;
  }
  return a->kind == A_SEND || free_out(s, a->out[0], a->next);
}

/* mark register r's slot for micro-batch mb taken; returns the slot */
static int take_slot(sched *s, int r, int64_t mb) {
  reg *g = &s->reg[r];
  int sl = (int)(mb % g->n);
  g->slot_mb[sl] = (int)mb;
  g->left[sl] = g->ncons;
  return sl;
}

static float *claim(sched *s, int r, int64_t mb) {
  reg *g = &s->reg[r];
  int sl = take_slot(s, r, mb);
  if (!g->buf[sl]) g->buf[sl] = rt_pool_get(s->e->pool, g->bytes);
  return g->buf[sl];
}

static float *slot(const sched *s, int r, int64_t mb) { return s->reg[r].buf[mb % s->reg[r].n]; }

/* a slot nobody will read again gives its buffer back to the pool (claim takes one) */
static void release(sched *s, int r, int sl) {
  reg *g = &s->reg[r];
  if (g->left[sl] > 0 || !g->buf[sl]) return;
  rt_pool_put(s->e->pool, g->buf[sl], g->bytes);
  g->buf[sl] = NULL;
}

static void done_reading(sched *s, const actor *a, int64_t mb) {
  for (int i = 0; i < a->nin; i++)
    if (a->in[i] >= 0) {
      int sl = (int)(mb % s->reg[a->in[i]].n);
      s->reg[a->in[i]].left[sl]--;
      release(s, a->in[i], sl);
    }
}

/* ---- compute actors (worker threads) ---------------------------------------- */
static void *input_ptr(sched *s, ir_ref t, int r, int64_t mb) {
  rt_exec *e = s->e;
  if (r >= 0) return slot(s, r, mb);
  if (e->g->t[t].kind == IR_T_INPUT) {
    int which = 0;
    for (int i = 0; i < t; i++) which += e->g->t[i].kind == IR_T_INPUT && e->g->t[i].dtype == IR_I32;
    return (void *)((which ? s->labels : s->ids) + mb * s->mb_elems);
  }
  return e->buf[t];
}

/* a reshape aliases its input's slot buffer (same bytes, same layout;
 * nothing writes an op's input) instead of copying it: the pool keeps the
 * buffer until both slots let go; under the lock */
static bool alias_reshape(sched *s, const actor *a, const ir_op *o, int64_t mb, void **out) {
  if (o->kind != IR_OP_RESHAPE || a->in[0] < 0) return false;
  float *b = slot(s, a->in[0], mb);
  reg *ro = &s->reg[s->reg_of[o->out[0]]];
  int so = take_slot(s, s->reg_of[o->out[0]], mb);
  if (ro->buf[so]) rt_pool_put(s->e->pool, ro->buf[so], ro->bytes);
  rt_pool_share(s->e->pool, b);
  ro->buf[so] = b;
  out[0] = b;
  return true;
}

static bool fire_compute(sched *s, actor *a, int64_t mb, void **out, bool aliased) {
  rt_exec *e = s->e;
  const ir_op *o = &e->g->op[a->op];
  void *in[IR_MAXIN];
  for (int i = 0; i < o->nin; i++) in[i] = input_ptr(s, o->in[i], a->in[i], mb);
  if (!aliased && !rt_exec_kernel(e, o, in, out, mb)) return false;
  rt_exec_accumulate(e, o, out, s->gscale);
  if (o->out[0] == e->g->loss) s->loss += ((float *)out[0])[0];
  return true;
}

static actor *pick(sched *s) {
  actor *best = NULL;
  for (int i = 0; i < s->nact; i++) {
    actor *a = &s->act[i];
    if (a->kind == A_COMPUTE && can_fire(s, a) && (!best || a->next < best->next)) best = a;
  }
  return best;
}

static bool all_done(const sched *s) {
  for (int i = 0; i < s->nact; i++)
    if (s->act[i].next < s->M || s->act[i].busy) return false;
  return true;
}

/* workers: SBPC_WORKERS, else as many as the cores hold next to OpenBLAS's
 * own threads (1 or 2): two GEMMs at once, each with all of OpenBLAS's
 * threads, oversubscribe the cores (GPT-2 small on 2 cores, 2 BLAS threads:
 * 129/140 tokens/s with 1 worker vs 110/115 with 2, bench/README.md). */
static int workers(void) {
  const char *w = getenv("SBPC_WORKERS");
  if (w && atoi(w) > 0 && atoi(w) <= 64) return atoi(w);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int blas = openblas_get_num_threads();
  return cpus >= 2L * (blas > 0 ? blas : 1) ? 2 : 1;
}

static void *worker(void *arg) {
  sched *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->failed && !all_done(s)) {
    actor *a = pick(s);
    if (!a) {
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    const ir_op *o = &s->e->g->op[a->op];
    int64_t mb = a->next;
    void *out[IR_MAXOUT];
    a->busy = true;
    bool aliased = alias_reshape(s, a, o, mb, out);
    for (int i = 0; i < o->nout && !aliased; i++) out[i] = claim(s, s->reg_of[o->out[i]], mb);
    pthread_mutex_unlock(&s->mu);
    bool ok = fire_compute(s, a, mb, out, aliased);
    pthread_mutex_lock(&s->mu);
    done_reading(s, a, mb);
    for (int i = 0; i < o->nout; i++) {
      int r = s->reg_of[o->out[i]];
      s->reg[r].made = mb + 1;
      release(s, r, (int)(mb % s->reg[r].n)); /* no consumer here */
    }
    a->busy = false;
    a->next++;
    s->events++;
    s->failed |= !ok;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---- send/recv actors (the calling thread) ------------------------------------ */
static int tag_of(const sched *s, ir_ref t, int64_t mb) { return (int)((t * 64 + mb % 64) % s->tag_ub); }

/* post what can start, complete what finished; returns whether anything moved */
static bool comm_round(sched *s) {
  bool moved = false;
  int64_t n = 0;
  for (int i = 0; i < s->nact; i++) {
    actor *a = &s->act[i];
    if (a->kind == A_COMPUTE) continue;
    if (a->busy && rt_comm_test(a->req)) {
      rt_trace_slice(s->e, RT_LANE_P2P, a->kind == A_SEND ? "send" : "recv", "p2p", a->t, -1, a->next, a->posted,
                     rt_trace_now());
      if (a->kind == A_SEND) done_reading(s, a, a->next);
      else s->reg[a->out[0]].made = a->next + 1;
      a->busy = false, a->req = NULL, a->next++, moved = true;
    }
    if (!can_fire(s, a)) continue;
    n = ir_numel(s->e->g, a->t);
    if (a->kind == A_SEND) a->req = rt_comm_isend(s->e->comm, slot(s, s->reg_of[a->t], a->next), n, a->peer, tag_of(s, a->t, a->next));
    else a->req = rt_comm_irecv(s->e->comm, claim(s, a->out[0], a->next), n, a->peer, tag_of(s, a->t, a->next));
    a->busy = true, moved = true, a->posted = rt_trace_now();
  }
  if (moved) s->events++, pthread_cond_broadcast(&s->cv);
  return moved;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void watchdog(sched *s) {
  for (int i = 0; i < s->nact; i++)
    if (s->act[i].kind != A_COMPUTE && s->act[i].busy)
      rt_comm_timeout_abort(s->e->comm, s->act[i].peer, s->act[i].kind == A_SEND ? "send" : "receive");
  fprintf(stderr, "sbpc: error: rank %d: no actor could fire for %.0f s (internal deadlock)\n", rt_comm_rank(s->e->comm),
          rt_comm_timeout);
  if (s->e->comm) rt_comm_abort(s->e->comm, EXIT_INTERNAL);
  s->failed = true;
}

static bool computing(const sched *s) {
  for (int i = 0; i < s->nact; i++)
    if (s->act[i].kind == A_COMPUTE && s->act[i].busy) return true;
  return false;
}

static void drive(sched *s) {
  double last = now();
  int64_t seen = -1;
  struct timespec nap = {0, 50000};
  pthread_mutex_lock(&s->mu);
  while (!s->failed && !all_done(s)) {
    if (s->e->comm) comm_round(s);
    if (s->events != seen || computing(s)) seen = s->events, last = now();
    else if (now() - last > rt_comm_timeout) watchdog(s);
    pthread_mutex_unlock(&s->mu);
    nanosleep(&nap, NULL);
    pthread_mutex_lock(&s->mu);
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void free_sched(sched *s) {
  for (int i = 0; i < s->nreg; i++) {
    for (int j = 0; j < s->reg[i].n; j++)
      rt_pool_put(s->e->pool, s->reg[i].buf[j], s->reg[i].bytes);
    free(s->reg[i].slot_mb), free(s->reg[i].left), free(s->reg[i].buf);
  }
  free(s->reg), free(s->act), free(s->reg_of);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

double rt_exec_actors(rt_exec *e, const int32_t *ids, const int32_t *labels, int M, double gscale, bool *ok) {
  const ir_graph *g = e->g;
  sched s;
  memset(&s, 0, sizeof s);
  s.e = e, s.M = M, s.ids = ids, s.labels = labels, s.gscale = gscale;
  s.mb_elems = g->bind_b * g->bind_s;
  s.tag_ub = e->comm ? rt_comm_tag_ub() : 32767;
  s.reg = xcalloc(2 * (size_t)g->nt + 1, sizeof *s.reg);
  s.act = xcalloc(2 * (size_t)g->nop + (size_t)g->nt + 1, sizeof *s.act);
  s.reg_of = xmalloc(sizeof(int) * (size_t)g->nt);
  for (int t = 0; t < g->nt; t++) s.reg_of[t] = -1;
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  build_regs(&s);
  build_actors(&s);
  int nw = workers();
  pthread_t th[64];
  for (int i = 0; i < nw; i++) pthread_create(&th[i], NULL, worker, &s);
  drive(&s);
  for (int i = 0; i < nw; i++) pthread_join(th[i], NULL);
  *ok = !s.failed;
  double loss = s.loss;
  e->micro += M;
  free_sched(&s);
  return loss;
}
