/* executor.c — the actor executor: one training step of one rank, exactly
 * as the program's stage lists it (docs/actor-plan.md).
 *
 * State: per register and micro-batch an instance (free, claimed, made,
 * released) at its planned arena offset; per actor the next micro-batch it
 * fires for (per-micro actors, in order) or whether it ran (per-step ones).
 *
 * Firing rules, all under one lock:
 *  - an instance may be claimed when the instances that held its bytes
 *    earlier in the schedule (its wait list) are released, and the
 *    instance regst_num micro-batches back is released too (the register's
 *    buffers: this is where 1F1B comes from);
 *  - compute / coll / recv actors fire when their input instances are made
 *    and their outputs can be claimed; sends when their input is made;
 *    per-step actors (reduce, tp_reduce, optim, gather, gsend, grecv) when
 *    every actor they depend on has fired for the step's last micro-batch;
 *  - the tp group's ops (coll) and the dp group's (reduce, gather) are
 *    posted in the order the schedule lists them, so every member of a
 *    group issues the same sequence (the pairwise exchanges of reduce and
 *    tp_reduce are tagged by bucket); colls that reduce gradients (outputs
 *    into accumulators: a partial sum reduce-scattered into a shard) may be
 *    in flight together, and the next coll may start beside them (when
 *    tiny GPT-2 tp=2 still all-reduced 28 gradients per micro-batch, their
 *    chain then cost about one polling round trip, not 28), but no coll starts
 *    while one that a kernel waits for (an activation's) or one that will
 *    post a later collective of its own (the vocabulary-parallel
 *    cross-entropy's second all-reduce) is in flight;
 *  - an instance is released when its last consumer has read it; a send
 *    reads it into a staging copy when it is posted, so a peer that posts
 *    its receive late (its schedule is another stage's) never holds this
 *    rank's arena bytes.
 * Because the static schedule satisfies all of these, the earliest actor of
 * the schedule that has not fired can always fire: no deadlock, and the
 * offsets are never used by two live instances.
 *
 * Threads: SBPC_WORKERS worker threads (default: 2 when the cores hold two
 * GEMMs split over all of rt_blas_threads each, else 1; made by the first
 * step and kept until rt_exec_free: rt_pool) run compute and optim
 * actors; the calling thread runs everything that talks to MPI
 * (MPI_THREAD_FUNNELED) with non-blocking calls, polls them, and is the
 * watchdog: no progress for rt_comm_timeout seconds while a transfer is
 * pending names the peer and aborts. Kernels run outside the lock. A compute
 * actor that makes a parameter's gradient also adds it, times 1/(dp * M),
 * into the parameter's accumulator (an into_acc register: its GEMM does,
 * with beta 1, and the register has no bytes; ZeRO-2: the micro-batch's
 * reduce actor does: it reduce-scatters the gradient register by pairwise
 * exchanges and adds this rank's slice and its peers' copies of it into the
 * shard-sized accumulator). ZeRO-3: a fetch actor all-gathers a parameter's
 * dp slices into a register that its pass's readers read like any other.
 * A view (a reshape's output in its input register's bytes) runs no
 * kernel and holds the instance it views until it is released itself. */
#include "runtime/exec_priv.h"
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { I_FREE, I_CLAIMED, I_MADE, I_RELEASED };
#define CG_BUFS 24 /* a fused kernel's buffers at most (codegen's CG_MAXBUF) */

/* every buffer of op o is there (a fused group's temporaries ran out) */
static bool p_ok(void *const *io, const ir_op *o) {
  for (int i = 0; i < o->nin + o->nout; i++)
    if (!io[i]) return false;
  return true;
}

/* a send in flight: its request and staging copy */
typedef struct {
  rt_req *req;
  float *buf;
  int64_t mb, n;
  double posted;
} sendq;

typedef struct {
  int64_t next;          /* per-micro: next micro-batch; per-step: 0 or 1 */
  bool busy;
  int64_t mb;            /* micro-batch in flight */
  rt_req **req; int nreq; /* requests in flight (comm thread) */
  rt_coll *coll;
  sendq *sq; int nsq;    /* send: the micro-batches in flight (any number) */
  float *rs; int64_t rs_n; /* dp reduce: the other members' copies of this rank's slices */
  int phase;             /* ZeRO-0/1 reduce: 1 reduce-scatter, 2 all-gather in flight */
  double posted;
} astate;

typedef struct {
  rt_exec *e;
  const fmt_stage *st;
  int M;
  uint8_t *ist;          /* per instance (reg * M + m): I_* */
  int32_t *left;         /* per instance: consumers (and views) still to read */
  bool *viewed;          /* per register: another register views its bytes */
  astate *as;
  fmt_step *tp_order, *dp_order, *tr_order; /* tr: the tp reduces */
  int ntp, ndp, ntr, tp_pos, dp_pos, tr_pos;
  const int32_t *ids, *labels;
  int64_t mb_elems;
  double loss;
  bool failed, loss_here;
  int64_t events;
  pthread_mutex_t mu;
  pthread_cond_t cv;      /* the workers wait on it: a main-thread move may give them work */
  pthread_cond_t cv_main; /* the main thread waits on it: a worker's event that gives it work */
} sched;

static int64_t inst(const sched *s, int r, int64_t m) { return (int64_t)r * s->M + m; }
static void *buf_of(const sched *s, int r, int64_t m) { return s->e->arena + s->st->reg[r].offset[m]; }

/* ---- instances ----------------------------------------------------------------- */
static bool can_claim(const sched *s, int r, int64_t m) {
  const fmt_reg *g = &s->st->reg[r];
  if (s->ist[inst(s, r, m)] != I_FREE) return false;
  if (m >= g->regst_num && s->ist[inst(s, r, m - g->regst_num)] != I_RELEASED) return false;
  for (int i = 0; i < g->nwait[m]; i++)
    if (s->ist[g->wait[m][i]] != I_RELEASED) return false;
  return true;
}

static void claim(sched *s, int r, int64_t m) { s->ist[inst(s, r, m)] = I_CLAIMED; }

static void read_done(sched *s, int r, int64_t m);

/* instance (r, m) is released; a view lets go of the instance it views */
static void released(sched *s, int r, int64_t m) {
  s->ist[inst(s, r, m)] = I_RELEASED;
  if (s->st->reg[r].view >= 0) read_done(s, s->st->reg[r].view, m);
}

/* a view holds its viewed instance (one more reader) until it is released */
static void made(sched *s, int r, int64_t m) {
  int64_t i = inst(s, r, m);
  if (s->st->reg[r].view >= 0) s->left[inst(s, s->st->reg[r].view, m)]++;
  s->left[i] = s->st->reg[r].ncons;
  s->ist[i] = I_MADE;
  if (s->left[i] == 0) released(s, r, m);
}

static void read_done(sched *s, int r, int64_t m) {
  int64_t i = inst(s, r, m);
  if (--s->left[i] <= 0) released(s, r, m);
}

/* is register r's memory shared with another register (a view, or viewed)? */
static bool shared(const sched *s, int r) { return s->st->reg[r].view >= 0 || s->viewed[r]; }

static bool inputs_made(const sched *s, const fmt_actor *a, int64_t m) {
  for (int i = 0; i < a->nin; i++)
    if (a->in[i] >= 0 && s->ist[inst(s, a->in[i], m)] != I_MADE) return false;
  return true;
}

static bool outputs_free(const sched *s, const fmt_actor *a, int64_t m) {
  for (int i = 0; i < a->nout; i++)
    if (!can_claim(s, a->out[i], m)) return false;
  return true;
}

static bool deps_done(const sched *s, const fmt_actor *a) {
  for (int i = 0; i < a->ndep; i++) {
    const fmt_actor *d = &s->st->act[a->dep[i]];
    const astate *x = &s->as[a->dep[i]];
    if (x->busy || x->next < (d->per_micro ? s->M : 1)) return false;
  }
  return true;
}

/* ---- compute actors (worker threads) ------------------------------------------- */
static bool is_worker(const fmt_actor *a) { return a->kind == FMT_A_COMPUTE || a->kind == FMT_A_OPTIM; }

static bool can_fire_worker(const sched *s, int k) {
  const fmt_actor *a = &s->st->act[k];
  const astate *x = &s->as[k];
  if (x->busy) return false;
  if (a->kind == FMT_A_OPTIM) return x->next == 0 && deps_done(s, a);
  return x->next < s->M && inputs_made(s, a, x->next) && outputs_free(s, a, x->next);
}

/* tensor t that no register of the actor holds: a data slice or a
 * persistent buffer */
static void *outside_ptr(const sched *s, ir_ref t, int64_t m) {
  const rt_exec *e = s->e;
  if (e->g->t[t].kind == IR_T_INPUT) {
    int which = 0;
    for (int j = 0; j < t; j++) which += e->g->t[j].kind == IR_T_INPUT && e->g->t[j].dtype == IR_I32;
    return (void *)((which ? s->labels : s->ids) + m * s->mb_elems);
  }
  return e->buf[t];
}

/* op input i of actor a for micro-batch m: its instance, a data slice or a
 * persistent buffer */
static void *input_ptr(const sched *s, const fmt_actor *a, int i, int64_t m) {
  if (i < a->nin && a->in[i] >= 0) return buf_of(s, a->in[i], m);
  return outside_ptr(s, s->e->g->op[a->op].in[i], m);
}

static void op_buffers(const sched *s, const fmt_actor *a, int64_t m, void **in, void **out) {
  const ir_op *o = &s->e->g->op[a->op];
  for (int i = 0; i < o->nin; i++) in[i] = input_ptr(s, a, i, m);
  for (int i = 0; i < o->nout; i++) out[i] = buf_of(s, a->out[i], m);
}

/* a fused actor's buffers: kernel buffer i is an output register, an input
 * register (in the kernel's order) or a tensor held elsewhere */
static void kernel_buffers(const sched *s, const fmt_actor *a, int64_t m, void **bufs) {
  const fmt_kernel *k = a->kernel;
  int ii = 0;
  for (int i = 0; i < k->nbuf; i++) {
    int r = -1;
    for (int j = 0; j < a->nout && r < 0; j++)
      if (s->st->reg[a->out[j]].tensor == k->buf[i]) r = a->out[j];
    if (r >= 0) bufs[i] = buf_of(s, r, m);
    else bufs[i] = ii < a->nin && a->in[ii] >= 0 ? buf_of(s, a->in[ii++], m) : (ii++, outside_ptr(s, k->buf[i], m));
  }
}

/* a fused group without its kernel (--kernels ref): its ops one by one on
 * the reference kernels; tensors only the group reads get temporaries */
static bool run_group_ref(sched *s, const fmt_actor *a, int64_t m, void *const *bufs) {
  rt_exec *e = s->e;
  const fmt_kernel *k = a->kernel;
  int nt = 0;
  ir_ref tt[256];
  void *tp[256];
  bool ok = true;
  for (int q = 0; q < a->nops && ok; q++) {
    const ir_op *o = &e->g->op[a->ops[q]];
    void *io[IR_MAXIN + IR_MAXOUT];
    for (int i = 0; i < o->nin + o->nout; i++) {
      ir_ref t = i < o->nin ? o->in[i] : o->out[i - o->nin];
      void *p = NULL;
      for (int b = 0; b < k->nbuf && !p; b++) p = k->buf[b] == t ? bufs[b] : NULL;
      for (int b = 0; b < nt && !p; b++) p = tt[b] == t ? tp[b] : NULL;
      if (!p && i < o->nin && e->g->t[t].producer < 0) p = outside_ptr(s, t, m);
      if (!p && nt < 256) {
        int64_t bytes = ir_numel(e->g, t) * 4 + 4;
        tt[nt] = t, p = tp[nt++] = xmalloc((size_t)bytes);
        rt_exec_count(e, bytes);
      }
      io[i] = p;
    }
    ok = p_ok(io, o) && rt_exec_kernel(e, o, io, io + o->nin, m);
  }
  for (int b = 0; b < nt; b++) rt_exec_count(e, -(ir_numel(e->g, tt[b]) * 4 + 4)), free(tp[b]);
  return ok;
}

static bool run_compute(sched *s, int k, const fmt_actor *a, int64_t m) {
  rt_exec *e = s->e;
  const ir_op *o = &e->g->op[a->op];
  void *in[CG_BUFS], *out[FMT_MAXOUT];
  if (e->ad && m >= e->ad->nlive) return true; /* --adaptive-sp: an empty micro-batch */
  if (a->kernel) {
    kernel_buffers(s, a, m, in);
    if (!(e->kfn[k] ? rt_exec_fused(e, k, o, in, m) : run_group_ref(s, a, m, in))) return false;
  } else {
    op_buffers(s, a, m, in, out);
    if (!rt_exec_kernel(e, o, in, out, m)) return false;
  }
  for (int i = 0; i < a->nout; i++) {
    float *y = buf_of(s, a->out[i], m);
    ir_ref t = s->st->reg[a->out[i]].tensor;
    if (a->acc[i] >= 0 && !s->st->reg[a->out[i]].into_acc) rt_exec_accumulate(e, a->acc[i], y, ir_numel(e->g, t));
    if (t == e->g->loss && s->loss_here) s->loss += y[0];
  }
  return true;
}

/* a compute actor whose one output needs no kernel of its own: a view
 * (its bytes are its input's already) or into_acc (the GEMM adds into the
 * accumulator); false: not such an actor */
static bool run_alias(sched *s, const fmt_actor *a, int64_t m, bool *ok) {
  if (a->kernel || a->nout != 1) return false;
  const fmt_reg *g = &s->st->reg[a->out[0]];
  if (g->view >= 0) return *ok = true;
  if (!g->into_acc) return false;
  if (s->e->ad && m >= s->e->ad->nlive) return *ok = true; /* --adaptive-sp: an empty micro-batch */
  void *in[IR_MAXIN], *out[IR_MAXOUT];
  op_buffers(s, a, m, in, out);
  *ok = rt_exec_gemm_acc(s->e, &s->e->g->op[a->op], in, a->acc[0], m);
  return true;
}

static int pick(const sched *s) {
  int best = -1;
  for (int k = 0; k < s->st->nact; k++)
    if (is_worker(&s->st->act[k]) && can_fire_worker(s, k) && (best < 0 || s->as[k].next < s->as[best].next)) best = k;
  return best;
}

static bool all_done(const sched *s) {
  for (int k = 0; k < s->st->nact; k++)
    if (s->as[k].busy || s->as[k].next < (s->st->act[k].per_micro ? s->M : 1)) return false;
  return true;
}

static void finish_outputs(sched *s, const fmt_actor *a, int64_t m) {
  for (int i = 0; i < a->nout; i++) made(s, a->out[i], m);
  for (int i = 0; i < a->nin; i++)
    if (a->in[i] >= 0) read_done(s, a->in[i], m);
}

static bool ready_main(const sched *s, int k, int64_t *m);

/* wake the main thread only when it has something to do: a main actor can
 * start, or the step is over. Waking it on every kernel (tiny GPT-2, 2
 * ranks on 2 cores) put its comm round between two kernels of the worker it
 * shares a core with: 20 us gaps, about 1 ms of a 5 ms step. */
static void wake_main(sched *s) {
  int64_t m;
  bool go = s->failed || all_done(s);
  for (int k = 0; k < s->st->nact && !go; k++) go = !is_worker(&s->st->act[k]) && ready_main(s, k, &m);
  if (go) pthread_cond_signal(&s->cv_main);
}

static void *worker(void *arg) {
  sched *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->failed && !all_done(s)) {
    int k = pick(s);
    if (k < 0) {
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    const fmt_actor *a = &s->st->act[k];
    astate *x = &s->as[k];
    int64_t m = x->next;
    x->busy = true;
    for (int i = 0; i < a->nout; i++) claim(s, a->out[i], m);
    pthread_mutex_unlock(&s->mu);
    bool ok = true;
    if (a->kind == FMT_A_OPTIM) ok = rt_exec_update(s->e, a->bucket);
    else if (!run_alias(s, a, m, &ok)) ok = run_compute(s, k, a, m);
    pthread_mutex_lock(&s->mu);
    if (a->kind != FMT_A_OPTIM) finish_outputs(s, a, m);
    x->busy = false;
    x->next++;
    s->events++;
    s->failed |= !ok;
    pthread_cond_broadcast(&s->cv);
    wake_main(s);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* The worker threads live as long as the rt_exec: made by its first step,
 * each step hands them its schedule (gen counts the steps) and waits until
 * all have left worker(). A thread made and joined per step cost 45 us to
 * create and up to 70 to join, of a 2.4-2.7 ms tiny GPT-2 step (dp=2, AMD
 * EPYC, 2 cores). */
typedef struct rt_pool {
  pthread_t th[64];
  int n, running;       /* threads; those still in this step's worker() */
  pthread_mutex_t mu;
  pthread_cond_t go, idle;
  sched *job;           /* the step's schedule */
  uint64_t gen;         /* steps handed out */
  bool quit;
} rt_pool;

static void *pool_thread(void *arg) {
  rt_pool *p = arg;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    sched *s = p->job;
    pthread_mutex_unlock(&p->mu);
    worker(s);
    pthread_mutex_lock(&p->mu);
    if (--p->running == 0) pthread_cond_signal(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* pool_start: e's threads (n of them, made now if e has none; as many as
 * start) on schedule s; false with a message when none can start */
static bool pool_start(rt_exec *e, sched *s, int n) {
  rt_pool *p = e->pool;
  if (!p) {
    p = e->pool = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL), pthread_cond_init(&p->go, NULL), pthread_cond_init(&p->idle, NULL);
    for (p->n = 0; p->n < n && !pthread_create(&p->th[p->n], NULL, pool_thread, p); p->n++) {}
    if (p->n == 0) {
      rt_exec_pool_free(e);
      return sbpc_error("rank %d: cannot start a worker thread", e->rank), false;
    }
  }
  pthread_mutex_lock(&p->mu);
  p->job = s, p->running = p->n, p->gen++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  return true;
}

/* pool_wait: until every thread has left the step's worker() */
static void pool_wait(rt_exec *e) {
  rt_pool *p = e->pool;
  pthread_mutex_lock(&p->mu);
  while (p->running > 0) pthread_cond_wait(&p->idle, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void rt_exec_pool_free(rt_exec *e) {
  rt_pool *p = e->pool;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->quit = true;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n; i++) pthread_join(p->th[i], NULL);
  pthread_mutex_destroy(&p->mu), pthread_cond_destroy(&p->go), pthread_cond_destroy(&p->idle);
  free(p), e->pool = NULL;
}

/* ---- actors of the main thread ------------------------------------------------------ */
/* collectives of the dp group: posted in the schedule's order */
static bool is_dp(const fmt_actor *a) {
  return a->kind == FMT_A_REDUCE || a->kind == FMT_A_GATHER || a->kind == FMT_A_FETCH;
}

static int peer_rank(const rt_exec *e, int stage) { return (stage * e->dp + e->dpi) * e->tp + e->tpi; }
static int tag_of(ir_ref t, int64_t mb, bool grad) { return (int)(((int64_t)t * 65 + (grad ? 64 : mb % 64)) % INT_MAX); }

static void add_req(astate *x, rt_req *q) {
  x->req = xrealloc(x->req, sizeof *x->req * (size_t)(x->nreq + 1));
  x->req[x->nreq++] = q;
}

static bool reqs_done(astate *x) {
  int n = 0;
  for (int i = 0; i < x->nreq; i++)
    if (!rt_comm_test(x->req[i])) x->req[n++] = x->req[i];
  x->nreq = n;
  return n == 0;
}

static int64_t pnumel(const rt_exec *e, const fmt_param *q) { return ir_numel(e->g, q->tensor); }

static int64_t grad_len(const rt_exec *e, ir_ref p) {
  int64_t n = ir_numel(e->g, p), lo, cnt;
  if (e->dp > 1 && e->p->zero >= 2) rt_exec_slice(e, n, &lo, &cnt), n = cnt;
  return n;
}

/* a bucket's accumulators (shards under ZeRO-2/3) are contiguous in the
 * persistent arena: [*lo, *lo + n) */
static int64_t bucket_span(const rt_exec *e, const fmt_bucket *b, float **lo) {
  float *hi = NULL;
  *lo = NULL;
  for (int i = 0; i < b->nparam; i++) {
    const fmt_param *q = &e->p->param[b->param[i]];
    float *g = e->acc[q->tensor], *end = g + grad_len(e, q->tensor);
    *lo = !*lo || g < *lo ? g : *lo;
    hi = !hi || end > hi ? end : hi;
  }
  return hi - *lo;
}

/* the group a reduce actor sums over: its members and this rank's index */
typedef struct { rt_group g; int n, me; } group;
static group group_of(const rt_exec *e, const fmt_actor *a) {
  return a->kind == FMT_A_TPREDUCE ? (group){RT_TP, e->tp, e->tpi} : (group){RT_DP, e->dp, e->dpi};
}

/* member r's slice of a span of n floats over n_members (ceil each, the last short) */
static void span_slice(int64_t n, int members, int r, int64_t *lo, int64_t *cnt) {
  int64_t chunk = (n + members - 1) / members;
  *lo = r * chunk < n ? r * chunk : n;
  *cnt = n - *lo < chunk ? n - *lo : chunk;
}

/* post exchanges with member r of group gr: send nout floats of out,
 * receive nin into in, in pieces under INT_MAX / 2 floats (both sides cut
 * them alike) */
static void exchange(rt_exec *e, astate *x, rt_group gr, int r, const float *out, int64_t nout, float *in, int64_t nin, int tag) {
  const int64_t piece = INT_MAX / 2;
  for (int64_t p = 0; p < nout || p < nin; p += piece) {
    int64_t no = nout - p, ni = nin - p;
    no = no < 0 ? 0 : no < piece ? no : piece, ni = ni < 0 ? 0 : ni < piece ? ni : piece;
    add_req(x, rt_comm_iexchange(e->comm, gr, r, out + p, no, in + p, ni, tag));
  }
}

/* A bucket's gradient all-reduce, in place in its accumulator span, over
 * the dp group (a reduce actor, ZeRO-0/1) or the tp group (a tp reduce:
 * partial sums deferred by the lowering), as a reduce-scatter and an
 * all-gather by pairwise exchanges (phase 1 and 2; finish_reduce_all moves
 * from one to the other). Phase 1: every other member r is sent its slice
 * of the span, and its copy of this rank's slice is received into x->rs
 * ((n - 1) slices, malloc'ed and counted); then this rank's slice is the
 * sum of the n copies in member order, whichever rank computes it: the
 * result does not depend on timing, and the one owner of each slice hands
 * every rank the same bits. Phase 2: the summed slice is sent to every
 * other member, whose summed slices arrive in place. Each rank sends and
 * receives 2 (n-1)/n of the bucket, an all-reduce's bytes. Not
 * MPI_Iallreduce: OpenMPI 4.1's libnbc took 16.4 ms for 28 MB and 400 ms
 * for 112 MB on 2 ranks where the exchange and the sum took 5.2 / 19 ms
 * (AMD EPYC, 2 cores, load 4.6; docs/runtime.md). The exchanges of a
 * bucket use their own tag (2 + the bucket) on their group's communicator:
 * a rank posts phase 2 when its phase 1 completed, which may come before
 * or after its next bucket's phase 1, but with one peer the messages of
 * one tag match in the order both post them. */
static int reduce_tag(int bucket) { return 2 + bucket % (rt_comm_tag_ub() - 2); }

static void start_reduce_all(sched *s, const fmt_actor *a, astate *x) {
  rt_exec *e = s->e;
  group gr = group_of(e, a);
  float *g;
  int64_t n = bucket_span(e, &e->p->bucket[a->bucket], &g), lo, cnt;
  span_slice(n, gr.n, gr.me, &lo, &cnt);
  x->rs_n = (gr.n - 1) * cnt, x->phase = 1;
  x->rs = x->rs_n > 0 ? xmalloc(sizeof(float) * (size_t)x->rs_n) : NULL;
  rt_exec_count(e, x->rs_n * 4);
  for (int r = 0, j = 0; r < gr.n; r++) {
    if (r == gr.me) continue;
    int64_t rlo, rcnt;
    span_slice(n, gr.n, r, &rlo, &rcnt);
    exchange(e, x, gr.g, r, g + rlo, rcnt, x->rs + (int64_t)j++ * cnt, cnt, reduce_tag(a->bucket));
  }
}

/* phase 1 done: sum this rank's slice, free the copies, post phase 2 (the
 * all-gather); phase 2 done: true, the all-reduce finished. */
static bool finish_reduce_all(sched *s, const fmt_actor *a, astate *x) {
  rt_exec *e = s->e;
  group gr = group_of(e, a);
  float *g;
  int64_t n = bucket_span(e, &e->p->bucket[a->bucket], &g), lo, cnt;
  span_slice(n, gr.n, gr.me, &lo, &cnt);
  if (x->phase == 2) return x->phase = 0, true;
  const float **copy = xmalloc(sizeof *copy * (size_t)gr.n);
  for (int r = 0, j = 0; r < gr.n; r++) copy[r] = r == gr.me ? g + lo : x->rs + (int64_t)j++ * cnt;
  for (int64_t i = 0; i < cnt; i++) {
    float t = copy[0][i];
    for (int r = 1; r < gr.n; r++) t += copy[r][i];
    g[lo + i] = t;
  }
  free(copy);
  rt_exec_count(e, -x->rs_n * 4); /* phase 2 lands in place: the copies go now */
  free(x->rs), x->rs = NULL, x->rs_n = 0;
  x->phase = 2;
  for (int r = 0; r < gr.n; r++) {
    if (r == gr.me) continue;
    int64_t rlo, rcnt;
    span_slice(n, gr.n, r, &rlo, &rcnt);
    exchange(e, x, gr.g, r, g + lo, cnt, g + rlo, rcnt, reduce_tag(a->bucket));
  }
  return false;
}

static int *slice_counts(const rt_exec *e, int64_t n, int *displs) {
  int *c = xmalloc(sizeof(int) * (size_t)e->dp);
  int64_t chunk = (n + e->dp - 1) / e->dp;
  for (int r = 0; r < e->dp; r++) {
    int64_t lo = r * chunk < n ? r * chunk : n, cnt = n - lo < chunk ? n - lo : chunk;
    c[r] = (int)cnt;
    if (displs) displs[r] = (int)lo;
  }
  return c;
}

/* ZeRO-2: each gradient of micro-batch m reduce-scattered over the
 * data-parallel group by pairwise exchanges. This rank's slice of the
 * register is added into its shard first, so its bytes are free: the first
 * other member's copy of the slice is received there, the others' (dp > 2)
 * into x->rs (dp - 2 slices of the bucket, malloc'ed and counted); every
 * other member is sent its slice of the register. Finish adds the received
 * copies into the shard. Each rank sends and receives (dp-1)/dp of the
 * gradient, half an all-reduce's bytes, and at dp=2 holds no buffer beyond
 * the register. Not MPI_Ireduce_scatter(_block) nor the Iallreduce this
 * replaces: OpenMPI 4.1's libnbc took 133 ms (reduce-scatter) and 16 ms
 * (all-reduce) for 28 MB on 2 ranks where the exchange and the sum took
 * 5 ms, and 500 / 400 ms against 19 ms for 112 MB (AMD EPYC, 2 cores, load
 * 4.6; docs/runtime.md). The register is this actor's alone until it
 * finishes. */
static void start_reduce_scatter(sched *s, const fmt_actor *a, astate *x, int64_t m) {
  rt_exec *e = s->e;
  const fmt_bucket *b = &e->p->bucket[a->bucket];
  int64_t need = 0, lo, cnt;
  for (int i = 0; i < b->nparam; i++)
    rt_exec_slice(e, pnumel(e, &e->p->param[b->param[i]]), &lo, &cnt), need += (e->dp > 2 ? e->dp - 2 : 0) * cnt;
  x->rs = need > 0 ? xmalloc(sizeof(float) * (size_t)need) : NULL, x->rs_n = need;
  rt_exec_count(e, need * 4);
  float *spare = x->rs;
  for (int i = 0; i < b->nparam; i++) {
    const fmt_param *q = &e->p->param[b->param[i]];
    float *g = buf_of(s, a->in[i], m);
    int *displs = xmalloc(sizeof(int) * (size_t)e->dp), *counts = slice_counts(e, pnumel(e, q), displs);
    int64_t mine = counts[e->dpi];
    rt_exec_accumulate(e, q->tensor, g + displs[e->dpi], mine);
    for (int r = 0, j = 0; r < e->dp; r++) {
      if (r == e->dpi) continue;
      float *in = j++ == 0 ? g + displs[e->dpi] : spare + (j - 2) * mine;
      exchange(e, x, RT_DP, r, g + displs[r], counts[r], in, mine, 1);
    }
    if (e->dp > 2) spare += (e->dp - 2) * mine;
    free(counts), free(displs);
  }
}

static void finish_reduce_scatter(sched *s, const fmt_actor *a, astate *x) {
  rt_exec *e = s->e;
  const fmt_bucket *b = &e->p->bucket[a->bucket];
  const float *spare = x->rs;
  for (int i = 0; i < b->nparam; i++) {
    const fmt_param *q = &e->p->param[b->param[i]];
    int64_t lo, cnt;
    rt_exec_slice(e, pnumel(e, q), &lo, &cnt);
    rt_exec_accumulate(e, q->tensor, (float *)buf_of(s, a->in[i], x->mb) + lo, cnt);
    for (int r = 2; r < e->dp; r++, spare += cnt) rt_exec_accumulate(e, q->tensor, spare, cnt);
  }
  rt_exec_count(e, -x->rs_n * 4);
  free(x->rs), x->rs = NULL, x->rs_n = 0;
}

/* ZeRO-3: parameter a->tensor's slices gathered into its register for m */
static void start_fetch(sched *s, const fmt_actor *a, astate *x, int64_t m) {
  rt_exec *e = s->e;
  int64_t n = ir_numel(e->g, a->tensor), lo, cnt;
  rt_exec_slice(e, n, &lo, &cnt);
  float *full = buf_of(s, a->out[0], m);
  claim(s, a->out[0], m);
  memcpy(full + lo, e->buf[a->tensor], sizeof(float) * (size_t)cnt);
  int *displs = xmalloc(sizeof(int) * (size_t)e->dp), *counts = slice_counts(e, n, displs);
  add_req(x, rt_comm_iallgatherv(e->comm, RT_DP, full, counts, displs));
  free(counts), free(displs);
}

static void start_gather(sched *s, const fmt_actor *a, astate *x) {
  rt_exec *e = s->e;
  const fmt_bucket *b = &e->p->bucket[a->bucket];
  for (int i = 0; i < b->nparam; i++) {
    const fmt_param *q = &e->p->param[b->param[i]];
    if (!e->buf[q->tensor]) continue;
    int *displs = xmalloc(sizeof(int) * (size_t)e->dp), *counts = slice_counts(e, pnumel(e, q), displs);
    add_req(x, rt_comm_iallgatherv(e->comm, RT_DP, e->buf[q->tensor], counts, displs));
    free(counts), free(displs);
  }
}

/* a tied parameter's reduced gradient (its slice under ZeRO-2) */
/* a send from a staging copy: the register's bytes are free at once, and
 * the next micro-batch may be sent before the peer took this one */
static void start_send(sched *s, const fmt_actor *a, astate *x, int64_t m) {
  rt_exec *e = s->e;
  int64_t n = ir_numel(e->g, a->tensor);
  float *buf = xmalloc(sizeof(float) * (size_t)(n + 1));
  rt_exec_count(e, (n + 1) * 4);
  memcpy(buf, buf_of(s, a->in[0], m), sizeof(float) * (size_t)n);
  read_done(s, a->in[0], m);
  x->sq = xrealloc(x->sq, sizeof *x->sq * (size_t)(x->nsq + 1));
  x->sq[x->nsq++] = (sendq){rt_comm_isend(e->comm, buf, n, peer_rank(e, a->peer), tag_of(a->tensor, m, false)), buf, m, n, rt_trace_now()};
  x->busy = true;
  x->next++;
}

/* the sends of actor a that completed; true when any did */
static bool finish_sends(sched *s, const fmt_actor *a, astate *x) {
  int n = 0;
  for (int i = 0; i < x->nsq; i++) {
    sendq *q = &x->sq[i];
    if (!rt_comm_test(q->req)) {
      x->sq[n++] = *q;
      continue;
    }
    rt_trace_slice(s->e, RT_LANE_P2P, "send", "p2p", a->tensor, a->op, q->mb, q->posted, rt_trace_now());
    rt_exec_count(s->e, -(q->n + 1) * 4);
    free(q->buf);
  }
  bool moved = n < x->nsq;
  x->nsq = n, x->busy = n > 0;
  return moved;
}

/* start actor k for micro-batch m on the main thread; false: not now */
static bool start_main(sched *s, int k, int64_t m) {
  rt_exec *e = s->e;
  const fmt_actor *a = &s->st->act[k];
  astate *x = &s->as[k];
  switch (a->kind) {
  case FMT_A_SEND: start_send(s, a, x, m); return true;
  case FMT_A_RECV:
    claim(s, a->out[0], m);
    add_req(x, rt_comm_irecv(e->comm, buf_of(s, a->out[0], m), ir_numel(e->g, a->tensor), peer_rank(e, a->peer), tag_of(a->tensor, m, false)));
    break;
  case FMT_A_COLL: {
    void *in[IR_MAXIN], *out[IR_MAXOUT];
    for (int i = 0; i < a->nout; i++) claim(s, a->out[i], m);
    op_buffers(s, a, m, in, out);
    bool own = a->nin > 0 && a->in[0] >= 0 && s->st->reg[a->in[0]].ncons == 1 && !shared(s, a->in[0]);
    x->coll = rt_coll_start(e, &e->g->op[a->op], in, out, m, own);
    break;
  }
  case FMT_A_REDUCE:
    if (a->per_micro) start_reduce_scatter(s, a, x, m);
    else start_reduce_all(s, a, x);
    break;
  case FMT_A_TPREDUCE: start_reduce_all(s, a, x); break;
  case FMT_A_GATHER: start_gather(s, a, x); break;
  case FMT_A_FETCH: start_fetch(s, a, x, m); break;
  case FMT_A_GSEND: add_req(x, rt_comm_isend(e->comm, e->acc[a->tensor], grad_len(e, a->tensor), peer_rank(e, a->peer), tag_of(a->tensor, 0, true))); break;
  case FMT_A_GRECV: add_req(x, rt_comm_irecv(e->comm, e->acc[a->tensor], grad_len(e, a->tensor), peer_rank(e, a->peer), tag_of(a->tensor, 0, true))); break;
  default: return false;
  }
  x->busy = true, x->mb = m, x->posted = rt_trace_now();
  return true;
}

static const char *lane_name(const fmt_actor *a) {
  switch (a->kind) {
  case FMT_A_REDUCE: return a->per_micro ? "reduce_scatter (dp)" : "all_reduce (dp)";
  case FMT_A_TPREDUCE: return "all_reduce (tp)";
  case FMT_A_GATHER: return "all_gather (dp)";
  case FMT_A_FETCH: return "all_gather param (dp)";
  case FMT_A_GSEND: return "send (tied gradient)";
  case FMT_A_GRECV: return "recv (tied gradient)";
  default: return fmt_akind_name[a->kind];
  }
}

/* finish actor k when its requests completed; true when it did */
static bool finish_main(sched *s, int k) {
  const fmt_actor *a = &s->st->act[k];
  astate *x = &s->as[k];
  rt_exec *e = s->e;
  if (a->kind == FMT_A_SEND) return finish_sends(s, a, x);
  if (x->coll ? !rt_coll_poll(x->coll) : !reqs_done(x)) return false;
  if (x->coll) x->coll = NULL;
  if (((a->kind == FMT_A_REDUCE && !a->per_micro) || a->kind == FMT_A_TPREDUCE) && !finish_reduce_all(s, a, x)) return false;
  if (a->kind == FMT_A_COLL) {
    const ir_op *o = &e->g->op[a->op];
    for (int i = 0; i < o->nout; i++)
      if (a->acc[i] >= 0) rt_exec_accumulate(e, a->acc[i], buf_of(s, a->out[i], x->mb), ir_numel(e->g, o->out[i]));
    if (o->out[0] == e->g->loss && s->loss_here) s->loss += ((float *)buf_of(s, a->out[0], x->mb))[0];
    rt_trace_op(e, o, x->mb, x->posted, rt_trace_now());
  } else {
    int lane = a->kind == FMT_A_SEND || a->kind == FMT_A_RECV || a->kind == FMT_A_GSEND || a->kind == FMT_A_GRECV ? RT_LANE_P2P : RT_LANE_COLL;
    rt_trace_slice(e, lane, lane_name(a), lane == RT_LANE_P2P ? "p2p" : "collective", a->tensor, a->op, a->per_micro ? x->mb : -1, x->posted, rt_trace_now());
  }
  if (a->kind == FMT_A_REDUCE && a->per_micro) finish_reduce_scatter(s, a, x);
  if (a->per_micro) {
    finish_outputs(s, a, x->mb);
  }
  x->busy = false;
  x->next++;
  return true;
}

/* a gradient's reduction: a coll whose outputs go to parameters'
 * accumulators (no kernel waits for it) */
static bool is_grad_coll(const fmt_actor *a) {
  for (int i = 0; i < a->nout; i++)
    if (a->acc[i] < 0) return false;
  return a->nout > 0;
}

/* may no tp op start now? One in flight will still post a collective
 * (nothing may be posted on the group before it, or the members' sequences
 * could differ), or one in flight is not a gradient's reduction (a kernel
 * waits for it: a later collective would share its bandwidth) */
static bool tp_held(const sched *s) {
  for (int k = 0; k < s->st->nact; k++)
    if (s->as[k].busy && s->as[k].coll && (!rt_coll_settled(s->as[k].coll) || !is_grad_coll(&s->st->act[k])))
      return true;
  return false;
}

/* is a bucket all-reduce of this kind (a per-step reduce: the dp group; a
 * tp reduce) in its phase 1, holding its received copies? One at a time per
 * group, in schedule order: the receive buffer the program plans is one
 * bucket's (lower/arena.c recv_bytes). Without the limit a rank whose peer
 * lagged could post every ready bucket's phase 1 at once: one run of GPT-2
 * small dp=2 ZeRO-0 of four peaked at 2577.9 MiB on one rank, planned
 * 2414.1, about wte's 73.6 MiB and seven 12.5 MiB buffers more. */
static bool receiving(const sched *s, int kind) {
  for (int k = 0; k < s->st->nact; k++)
    if (s->as[k].busy && s->as[k].phase == 1 && s->st->act[k].kind == kind && !s->st->act[k].per_micro) return true;
  return false;
}

/* may actor k start now on the main thread? (inputs, outputs, deps, group order) */
static bool ready_main(const sched *s, int k, int64_t *m) {
  const fmt_actor *a = &s->st->act[k];
  const astate *x = &s->as[k];
  *m = x->next;
  if ((x->busy && a->kind != FMT_A_SEND) || x->next >= (a->per_micro ? s->M : 1)) return false;
  switch (a->kind) {
  case FMT_A_SEND: return inputs_made(s, a, *m);
  case FMT_A_RECV: return outputs_free(s, a, *m);
  case FMT_A_COLL:
    return s->tp_pos < s->ntp && s->tp_order[s->tp_pos].actor == k && s->tp_order[s->tp_pos].micro == *m &&
           inputs_made(s, a, *m) && outputs_free(s, a, *m) && !tp_held(s);
  case FMT_A_REDUCE: case FMT_A_GATHER: case FMT_A_FETCH:
    if (!(s->dp_pos < s->ndp && s->dp_order[s->dp_pos].actor == k && s->dp_order[s->dp_pos].micro == *m)) return false;
    return a->per_micro ? inputs_made(s, a, *m) && outputs_free(s, a, *m) : !receiving(s, a->kind) && deps_done(s, a);
  case FMT_A_TPREDUCE:
    return s->tr_pos < s->ntr && s->tr_order[s->tr_pos].actor == k && !receiving(s, a->kind) && deps_done(s, a);
  case FMT_A_GSEND: case FMT_A_GRECV: return deps_done(s, a);
  default: return false;
  }
}

/* post what can start, complete what finished; under the lock */
static bool comm_round(sched *s) {
  bool moved = false;
  for (int k = 0; k < s->st->nact; k++) {
    const fmt_actor *a = &s->st->act[k];
    if (is_worker(a)) continue;
    if (s->as[k].busy && finish_main(s, k)) moved = true;
    int64_t m;
    if (ready_main(s, k, &m) && start_main(s, k, m)) {
      if (is_dp(a)) s->dp_pos++;
      if (a->kind == FMT_A_TPREDUCE) s->tr_pos++;
      if (a->kind == FMT_A_COLL) s->tp_pos++;
      moved = true;
      if (s->as[k].busy && a->kind == FMT_A_COLL && finish_main(s, k)) moved = true; /* local re-layouts */
    }
  }
  if (moved) s->events++, pthread_cond_broadcast(&s->cv);
  return moved;
}

/* ---- the step ----------------------------------------------------------------------- */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* SBPC_DEBUG_STALL: what every unfinished actor waits on, to stderr */
static void dump_stall(const sched *s) {
  if (!getenv("SBPC_DEBUG_STALL")) return;
  for (int k = 0; k < s->st->nact; k++) {
    const fmt_actor *a = &s->st->act[k];
    const astate *x = &s->as[k];
    if (x->next >= (a->per_micro ? s->M : 1)) continue;
    fprintf(stderr, "rank %d actor %d %s op %d tensor %d peer %d next %lld busy %d\n", s->e->rank, k,
            fmt_akind_name[a->kind], a->op, a->tensor, a->peer, (long long)x->next, x->busy);
    for (int i = 0; i < a->nout && !x->busy && x->next < s->M; i++) {
      const fmt_reg *g = &s->st->reg[a->out[i]];
      for (int w = 0; w < g->nwait[x->next]; w++)
        if (s->ist[g->wait[x->next][w]] != I_RELEASED)
          fprintf(stderr, "  waits for register %d (tensor %d) micro %d: state %d\n", g->wait[x->next][w] / s->M,
                  s->st->reg[g->wait[x->next][w] / s->M].tensor, g->wait[x->next][w] % s->M, s->ist[g->wait[x->next][w]]);
    }
  }
}

static void watchdog(sched *s) {
  dump_stall(s);
  for (int k = 0; k < s->st->nact; k++) {
    const fmt_actor *a = &s->st->act[k];
    if (!s->as[k].busy || is_worker(a)) continue;
    if (a->kind == FMT_A_SEND || a->kind == FMT_A_RECV || a->kind == FMT_A_GSEND || a->kind == FMT_A_GRECV)
      rt_comm_timeout_abort(s->e->comm, peer_rank(s->e, a->peer), a->kind == FMT_A_SEND || a->kind == FMT_A_GSEND ? "send" : "receive");
    bool tp = a->kind == FMT_A_COLL || a->kind == FMT_A_TPREDUCE;
    rt_comm_group_timeout_abort(s->e->comm, tp ? RT_TP : RT_DP, tp ? "tensor-parallel collective" : "data-parallel collective");
  }
  sbpc_error("rank %d: no actor could fire for %.0f s (internal deadlock)", s->e->rank, rt_comm_timeout);
  if (s->e->comm) rt_comm_abort(s->e->comm, EXIT_INTERNAL);
  s->failed = true;
}

static bool computing(const sched *s) {
  for (int k = 0; k < s->st->nact; k++)
    if (s->as[k].busy && is_worker(&s->st->act[k])) return true;
  return false;
}

static bool main_busy(const sched *s) {
  for (int k = 0; k < s->st->nact; k++)
    if (s->as[k].busy && !is_worker(&s->st->act[k])) return true;
  return false;
}

/* the main thread: post and complete MPI work, and watch for hangs. Right
 * after a round that moved something, while its own transfers are in
 * flight and no worker computes (the rank waits for its peers), it polls
 * without sleeping (sched_yield between rounds) for as long as its longest
 * nap: a collective whose members arrive together completes in
 * microseconds, not in a nap's wake-up each round (tiny GPT-2 tp=2's chain
 * of 28 gradient all-reduces took 12 ms with naps alone; polling without
 * a bound steals the cores from the peers' kernels on an oversubscribed
 * machine). A rank with a core of its own (rt_own_core: no more ranks than
 * cores) polls so for as long as it waits: no worker and no peer wants that
 * core, and Open MPI moves a large message's fragments only inside its
 * tests (tiny GPT-2 dp=2 ZeRO-2: the step-end reduce-scatter took 369 us on
 * one rank against 78 on the other; 3.1-3.3 -> 2.8-3.0 ms a step; GPT-2
 * small ZeRO-2: 4.6-4.9 -> 4.5-4.6 s, AMD EPYC 2 cores). Otherwise it
 * naps, twice as long after each round that moved nothing (NAP_MIN to
 * NAP_MAX: longer naps cost small models most of their step in waits for
 * peers; tiny GPT-2 tp=2 ran 3.6 GFLOP/s with 1 ms, 10.4
 * with 100 us). When nothing of its own is in flight and a worker computes
 * or has an actor to take, it sleeps on the condition variable the workers
 * signal (untimed but for a 1 s watchdog tick): a nap there lasted until
 * the worker's actor ended on the core they share, and longer (66-95 us
 * from tiny GPT-2 ZeRO-2's optimizer to its all-gather; 15-35 on the
 * condition variable; dp=2, AMD EPYC, 2 cores). Polling thus does not take
 * the cores from the kernels: waking every
 * nap while a worker computed cost GPT-2 small's 1-rank GEMMs 20 % of their
 * rate (285 -> 349 GFLOP/s, AMD EPYC, 2 cores). A nap is its length:
 * rt_comm_init set this thread's timer slack to 1 ns (Linux's default 50 us
 * doubled a 50 us nap; tiny GPT-2 dp=2 ZeRO-2 5.0-5.3 -> 4.6-4.9 ms). */
#define NAP_MIN 20000L  /* ns */
#define NAP_MAX 100000L /* ns; also the spin after a move */
static void drive(sched *s) {
  double last = now(), moved_at = last;
  int64_t seen = -1;
  long nap = NAP_MIN;
  pthread_mutex_lock(&s->mu);
  while (!s->failed && !all_done(s)) {
    bool moved = comm_round(s);
    nap = moved ? NAP_MIN : nap * 2 > NAP_MAX ? NAP_MAX : nap * 2;
    if (moved) moved_at = now();
    if (s->events != seen || computing(s)) seen = s->events, last = now();
    else if (now() - last > rt_comm_timeout) watchdog(s);
    bool busy = main_busy(s), comp = computing(s);
    if (!busy && (comp || pick(s) >= 0)) { /* only a worker's event can give it work: they signal */
      if (moved) continue;                  /* the round may have readied an actor it had passed */
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 1;
      pthread_cond_timedwait(&s->cv_main, &s->mu, &until);
      continue;
    }
    bool spin = busy && !comp && (rt_own_core() || now() - moved_at < 1e-9 * NAP_MAX);
    pthread_mutex_unlock(&s->mu);
    if (spin) sched_yield();
    else nanosleep(&(struct timespec){0, nap}, NULL);
    pthread_mutex_lock(&s->mu);
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* workers: SBPC_WORKERS, else as many as the rank's cores (rt_cores: its
 * affinity) hold next to a GEMM's own threads (1 or 2): two GEMMs at once,
 * each split over all of rt_blas_threads, oversubscribe the cores; two
 * workers on a rank that mpirun bound to one core took turns on it. */
static int workers(void) {
  const char *w = getenv("SBPC_WORKERS");
  if (w && atoi(w) > 0 && atoi(w) <= 64) return atoi(w);
  return rt_cores() >= 2 * rt_blas_threads() ? 2 : 1;
}

/* the tp and dp groups' orders: their actors as the schedule lists them */
static void orders(sched *s) {
  const fmt_stage *st = s->st;
  s->tp_order = xmalloc(sizeof(fmt_step) * (size_t)(st->nsched + 1));
  s->dp_order = xmalloc(sizeof(fmt_step) * (size_t)(st->nsched + 1));
  s->tr_order = xmalloc(sizeof(fmt_step) * (size_t)(st->nsched + 1));
  for (int i = 0; i < st->nsched; i++) {
    int kind = st->act[st->sched[i].actor].kind;
    if (kind == FMT_A_COLL) s->tp_order[s->ntp++] = st->sched[i];
    if (kind == FMT_A_TPREDUCE) s->tr_order[s->ntr++] = st->sched[i];
    if (is_dp(&st->act[st->sched[i].actor])) s->dp_order[s->ndp++] = st->sched[i];
  }
}

static bool loss_partial(const rt_exec *e) {
  const ir_tensor *l = &e->g->t[e->g->loss];
  return l->sbp.n == 1 && l->sbp.a[0].kind == SBP_PSUM;
}

/* sequence parallelism: this rank's S / sp tokens of every sample of x
 * ([samples, S]; malloc'ed) */
static int32_t *sp_share(const rt_exec *e, const int32_t *x) {
  int64_t S = e->p->seq, n = S / e->sp, rows = (int64_t)e->M * e->p->micro_batch;
  int32_t *y = xmalloc(sizeof(int32_t) * (size_t)(rows * n + 1));
  for (int64_t r = 0; r < rows; r++) memcpy(y + r * n, x + r * S + (int64_t)e->spi * n, sizeof(int32_t) * (size_t)n);
  return y;
}

double rt_exec_step_run(rt_exec *e, const int32_t *ids, const int32_t *labels, bool *ok) {
  if (e->dev) return rt_dev_step(e, ids, labels, ok); /* --device cuda: the GPU executor (device.c) */
  sched s;
  memset(&s, 0, sizeof s);
  bool share = e->sp > 1 && !e->ad; /* --adaptive-sp: ids and labels are the rank's already */
  int32_t *ids_sp = share ? sp_share(e, ids) : NULL, *labels_sp = share ? sp_share(e, labels) : NULL;
  int32_t *doc_sp = share && e->doc ? sp_share(e, e->doc) : NULL;
  e->doc_sp = doc_sp;
  s.e = e, s.st = e->st, s.M = e->M, s.ids = ids_sp ? ids_sp : ids, s.labels = labels_sp ? labels_sp : labels;
  s.mb_elems = e->p->micro_batch * e->p->seq / e->sp;
  s.loss_here = e->tpi == 0 || loss_partial(e);
  int64_t ninst = (int64_t)s.st->nreg * s.M + 1;
  s.ist = xcalloc((size_t)ninst, 1);
  s.left = xcalloc((size_t)ninst, sizeof(int32_t));
  s.as = xcalloc((size_t)s.st->nact + 1, sizeof *s.as);
  s.viewed = xcalloc((size_t)s.st->nreg + 1, sizeof(bool));
  for (int r = 0; r < s.st->nreg; r++)
    if (s.st->reg[r].view >= 0) s.viewed[s.st->reg[r].view] = true;
  orders(&s);
  for (int i = 0; i < s.st->npers; i++) /* the accumulators start the step at zero */
    if (s.st->pers[i].role == FMT_P_GRAD) memset(e->pers + s.st->pers[i].offset, 0, (size_t)s.st->pers[i].bytes);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  pthread_cond_init(&s.cv_main, NULL);
  if (pool_start(e, &s, workers())) {
    drive(&s);
    pool_wait(e);
  } else {
    s.failed = true;
  }
  *ok = !s.failed;
  for (int k = 0; k < s.st->nact; k++) free(s.as[k].req), free(s.as[k].sq);
  free(s.ist), free(s.left), free(s.as), free(s.viewed), free(s.tp_order), free(s.dp_order), free(s.tr_order), free(ids_sp), free(labels_sp), free(doc_sp);
  e->doc_sp = NULL;
  pthread_mutex_destroy(&s.mu);
  pthread_cond_destroy(&s.cv);
  pthread_cond_destroy(&s.cv_main);
  return s.loss;
}
