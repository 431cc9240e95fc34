/* mpi.c — the only file that includes mpi.h: communicators and a watchdog.
 *
 * Every blocking exchange is posted non-blocking (MPI_Isend/Irecv/Iallreduce/
 * Ibarrier) and completed by polling MPI_Test against a deadline of
 * rt_comm_timeout seconds (env SBPC_COMM_TIMEOUT, default 20). When the
 * deadline passes, this rank prints which peer (or group) did not answer and
 * calls MPI_Abort, so a dead or hung rank ends the whole job with a non-zero
 * status instead of a hang. Communicators: world, and one data-parallel
 * sub-communicator per pipeline stage (MPI_Comm_split by stage); under
 * --adaptive-sp the SP groups of every micro-batch's partition of the world,
 * made once by MPI_Comm_split over the world (every rank at the same point:
 * the first partition that holds a membership not made before) and cached
 * by membership (a bit mask of world ranks). */
#include "runtime/rt_internal.h"
#include <mpi.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

double rt_comm_timeout = 20.0;

struct rt_comm {
  int rank, size;
  bool owns;      /* this rt_comm started MPI, so it finalizes it */
  MPI_Comm dp, tp;
  int dp_size, tp_size;
  /* --adaptive-sp: every membership made so far (the same list on every
   * rank), this rank's communicators by membership, the one in use */
  uint64_t *made;
  int nmade;
  uint64_t *mine;
  MPI_Comm *mine_comm;
  int nmine;
  MPI_Comm spg;
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* after a collective timed out: tell every member of comm and see who answers
 * within 2 s; the members that stay silent are the ones named */
static void name_silent(rt_comm *c, MPI_Comm comm, char *out, size_t n) {
  int sz, me;
  MPI_Comm_size(comm, &sz);
  MPI_Comm_rank(comm, &me);
  MPI_Request *rq = xcalloc(2 * (size_t)sz, sizeof *rq);
  int *in = xcalloc((size_t)sz, sizeof *in), one = 1;
  for (int r = 0; r < sz; r++) {
    rq[2 * r] = rq[2 * r + 1] = MPI_REQUEST_NULL;
    if (r == me) continue;
    MPI_Isend(&one, 1, MPI_INT, r, 32000, comm, &rq[2 * r]);
    MPI_Irecv(&in[r], 1, MPI_INT, r, 32000, comm, &rq[2 * r + 1]);
  }
  double end = now() + 2.0;
  struct timespec nap = {0, 1000000};
  while (now() < end) {
    int all = 1;
    MPI_Testall(2 * sz, rq, &all, MPI_STATUSES_IGNORE);
    if (all) break;
    nanosleep(&nap, NULL);
  }
  MPI_Group wg, cg;
  MPI_Comm_group(MPI_COMM_WORLD, &wg);
  MPI_Comm_group(comm, &cg);
  size_t k = 0;
  out[0] = 0;
  for (int r = 0; r < sz && k + 16 < n; r++) {
    int done = r == me;
    if (!done) MPI_Test(&rq[2 * r + 1], &done, MPI_STATUS_IGNORE);
    int wr;
    MPI_Group_translate_ranks(cg, 1, &r, wg, &wr);
    if (!done) k += (size_t)snprintf(out + k, n - k, "%s%d", k ? ", " : "", wr);
  }
  MPI_Group_free(&wg);
  MPI_Group_free(&cg);
  free(rq);
  free(in);
}

/* wait_req: poll r to completion, yielding the core between tests for the
 * first 2 ms when the rank has a core of its own (rt_own_core), else 100 us,
 * then between 50 us naps; the watchdog aborts the job after
 * rt_comm_timeout. Open MPI progresses a non-blocking collective only inside
 * MPI_Test: the step's loss all-reduce between naps took 330-420 us on the
 * rank that arrived first (tiny GPT-2, dp=2, AMD EPYC 2 cores), 150-180 us
 * of them after its peer had arrived. */
static void wait_req(rt_comm *c, MPI_Request *r, const char *what, int peer, MPI_Comm comm) {
  double start = now(), end = start + rt_comm_timeout, spin = rt_own_core() ? 2e-3 : 100e-6;
  struct timespec nap = {0, 50000};
  for (;;) {
    int done = 0;
    MPI_Test(r, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (now() > end) {
      char who[256];
      if (peer >= 0) snprintf(who, sizeof who, "%d", peer);
      else name_silent(c, comm, who, sizeof who);
      sbpc_error("rank %d: rank %s did not answer (%s) within %.0f s; aborting the job", c->rank, who[0] ? who : "?",
                 what, rt_comm_timeout);
      fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, EXIT_BAD_INPUT);
      exit(EXIT_BAD_INPUT);
    }
    if (now() - start < spin) sched_yield();
    else nanosleep(&nap, NULL);
  }
}

rt_comm *rt_comm_init(int *argc, char ***argv) {
  int inited = 0, prov = 0;
  MPI_Initialized(&inited);
  if (!inited && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS) return NULL;
  const char *t = getenv("SBPC_COMM_TIMEOUT");
  if (t && atof(t) > 0) rt_comm_timeout = atof(t);
  /* this thread polls MPI between short naps (wait_req, the executor's
   * drive): a nap of 20-100 us must not wake 50 us late (the default slack) */
  prctl(PR_SET_TIMERSLACK, 1UL);
  rt_comm *c = xcalloc(1, sizeof *c);
  c->owns = !inited; /* MPI started by a caller (sbpc tune) is the caller's to finalize */
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size);
  c->dp = c->tp = c->spg = MPI_COMM_NULL;
  return c;
}

int rt_comm_rank(const rt_comm *c) { return c ? c->rank : 0; }
int rt_comm_size(const rt_comm *c) { return c ? c->size : 1; }

void rt_comm_split_dp(rt_comm *c, int color) {
  MPI_Comm_split(MPI_COMM_WORLD, color, c->rank, &c->dp);
  MPI_Comm_size(c->dp, &c->dp_size);
}

void rt_comm_allreduce_dp(rt_comm *c, float *x, int64_t n) {
  for (int64_t off = 0; off < n; off += INT_MAX / 2) {
    int cnt = (int)(n - off < INT_MAX / 2 ? n - off : INT_MAX / 2);
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, x + off, cnt, MPI_FLOAT, MPI_SUM, c->dp, &r);
    wait_req(c, &r, "data-parallel all-reduce", -1, c->dp);
  }
}

void rt_comm_split_tp(rt_comm *c, int color) {
  MPI_Comm_split(MPI_COMM_WORLD, color, c->rank, &c->tp);
  MPI_Comm_size(c->tp, &c->tp_size);
}

void rt_comm_allreduce_tp(rt_comm *c, float *x, int64_t n, bool max) {
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, max ? MPI_MAX : MPI_SUM, c->tp, &r);
  wait_req(c, &r, "tensor-parallel all-reduce", -1, c->tp);
}

void rt_comm_allgather_tp(rt_comm *c, const float *in, int64_t n, float *out) {
  MPI_Request r;
  MPI_Iallgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, c->tp, &r);
  wait_req(c, &r, "tensor-parallel all-gather", -1, c->tp);
}

void rt_comm_allgather_dp(rt_comm *c, const float *in, int64_t n, float *out) {
  MPI_Request r;
  MPI_Iallgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, c->dp, &r);
  wait_req(c, &r, "data-parallel all-gather", -1, c->dp);
}

void rt_comm_allreduce_world(rt_comm *c, double *x, int n) {
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
  wait_req(c, &r, "all-reduce", -1, MPI_COMM_WORLD);
}

void rt_comm_send(rt_comm *c, const float *x, int64_t n, int to, int tag) {
  MPI_Request r;
  MPI_Isend(x, (int)n, MPI_FLOAT, to, tag, MPI_COMM_WORLD, &r);
  wait_req(c, &r, "send", to, MPI_COMM_WORLD);
}

void rt_comm_recv(rt_comm *c, float *x, int64_t n, int from, int tag) {
  MPI_Request r;
  MPI_Irecv(x, (int)n, MPI_FLOAT, from, tag, MPI_COMM_WORLD, &r);
  wait_req(c, &r, "receive", from, MPI_COMM_WORLD);
}

struct rt_req {
  MPI_Request r[2]; /* r[1]: a ring shift's receive, else MPI_REQUEST_NULL */
  int peer;
};

static rt_req *post(const float *x, int64_t n, int peer, int tag, bool send) {
  rt_req *q = xmalloc(sizeof *q);
  q->peer = peer, q->r[1] = MPI_REQUEST_NULL;
  if (send) MPI_Isend(x, (int)n, MPI_FLOAT, peer, tag, MPI_COMM_WORLD, &q->r[0]);
  else MPI_Irecv((float *)x, (int)n, MPI_FLOAT, peer, tag, MPI_COMM_WORLD, &q->r[0]);
  return q;
}

rt_req *rt_comm_isend(rt_comm *c, const float *x, int64_t n, int to, int tag) { return post(x, n, to, tag, true); }
rt_req *rt_comm_irecv(rt_comm *c, float *x, int64_t n, int from, int tag) { return post(x, n, from, tag, false); }

bool rt_comm_test(rt_req *q) {
  int done = 0;
  MPI_Testall(2, q->r, &done, MPI_STATUSES_IGNORE);
  if (done) free(q);
  return done;
}

int rt_comm_req_peer(const rt_req *q) { return q->peer; }

static MPI_Comm group(const rt_comm *c, rt_group g) { return g == RT_TP ? c->tp : g == RT_SPG ? c->spg : c->dp; }

static bool has(const uint64_t *set, int n, uint64_t m) {
  for (int i = 0; i < n; i++)
    if (set[i] == m) return true;
  return false;
}

void rt_comm_sp_groups(rt_comm *c, const uint64_t *masks, int n) {
  bool fresh = false;
  for (int i = 0; i < n; i++) fresh |= !has(c->made, c->nmade, masks[i]);
  if (!fresh) return;
  int color = 0;
  for (int i = 0; i < n; i++)
    if (masks[i] >> c->rank & 1) color = i;
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, color, c->rank, &comm);
  if (has(c->mine, c->nmine, masks[color])) MPI_Comm_free(&comm); /* already cached */
  else {
    c->mine = xrealloc(c->mine, sizeof *c->mine * (size_t)(c->nmine + 1));
    c->mine_comm = xrealloc(c->mine_comm, sizeof *c->mine_comm * (size_t)(c->nmine + 1));
    c->mine[c->nmine] = masks[color], c->mine_comm[c->nmine++] = comm;
  }
  for (int i = 0; i < n; i++)
    if (!has(c->made, c->nmade, masks[i])) {
      c->made = xrealloc(c->made, sizeof *c->made * (size_t)(c->nmade + 1));
      c->made[c->nmade++] = masks[i];
    }
}

bool rt_comm_sp_use(rt_comm *c, uint64_t mask) {
  for (int i = 0; i < c->nmine; i++)
    if (c->mine[i] == mask) return c->spg = c->mine_comm[i], true;
  return false;
}

int rt_comm_sp_count(const rt_comm *c) { return c ? c->nmine : 0; }

static rt_req *req_new(void) {
  rt_req *q = xmalloc(sizeof *q);
  q->peer = -1, q->r[1] = MPI_REQUEST_NULL;
  return q;
}

rt_req *rt_comm_iallreduce(rt_comm *c, rt_group g, float *x, int64_t n, bool max) {
  rt_req *q = req_new();
  MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, max ? MPI_MAX : MPI_SUM, group(c, g), &q->r[0]);
  return q;
}

rt_req *rt_comm_iallgather(rt_comm *c, rt_group g, const float *in, int64_t n, float *out) {
  rt_req *q = req_new();
  MPI_Iallgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, group(c, g), &q->r[0]);
  return q;
}

rt_req *rt_comm_iallgatherv(rt_comm *c, rt_group g, float *buf, const int *counts, const int *displs) {
  rt_req *q = req_new();
  MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, group(c, g), &q->r[0]);
  return q;
}

rt_req *rt_comm_ialltoall(rt_comm *c, rt_group g, const float *in, int64_t n, float *out) {
  rt_req *q = req_new();
  MPI_Ialltoall(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, group(c, g), &q->r[0]);
  return q;
}

rt_req *rt_comm_ishift(rt_comm *c, rt_group g, const float *in, int64_t n, float *out) {
  rt_req *q = req_new();
  int me, size;
  MPI_Comm_rank(group(c, g), &me);
  MPI_Comm_size(group(c, g), &size);
  MPI_Isend(in, (int)n, MPI_FLOAT, (me + 1) % size, 0, group(c, g), &q->r[0]);
  MPI_Irecv(out, (int)n, MPI_FLOAT, (me + size - 1) % size, 0, group(c, g), &q->r[1]);
  return q;
}

rt_req *rt_comm_iexchange(rt_comm *c, rt_group g, int member, const float *out, int64_t nout, float *in, int64_t nin,
                          int tag) {
  rt_req *q = req_new();
  MPI_Isend(out, (int)nout, MPI_FLOAT, member, tag, group(c, g), &q->r[0]);
  MPI_Irecv(in, (int)nin, MPI_FLOAT, member, tag, group(c, g), &q->r[1]);
  return q;
}

int rt_comm_tag_ub(void) {
  int *ub, flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
  return flag ? *ub : 32767;
}

void rt_comm_timeout_abort(rt_comm *c, int peer, const char *what) {
  sbpc_error("rank %d: rank %d did not answer (%s) within %.0f s; aborting the job", c->rank, peer, what,
             rt_comm_timeout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, EXIT_BAD_INPUT);
  exit(EXIT_BAD_INPUT);
}

void rt_comm_group_timeout_abort(rt_comm *c, rt_group g, const char *what) {
  char who[256];
  name_silent(c, group(c, g), who, sizeof who);
  sbpc_error("rank %d: rank %s did not answer (%s) within %.0f s; aborting the job", c->rank, who[0] ? who : "?", what,
             rt_comm_timeout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, EXIT_BAD_INPUT);
  exit(EXIT_BAD_INPUT);
}

char **rt_comm_gather_str(rt_comm *c, const char *s) {
  int n = (int)strlen(s) + 1, size = c ? c->size : 1, rank = c ? c->rank : 0;
  if (!c) {
    char **one = xmalloc(sizeof(char *));
    one[0] = xmalloc((size_t)n);
    memcpy(one[0], s, (size_t)n);
    return one;
  }
  int *len = rank == 0 ? xcalloc((size_t)size, sizeof(int)) : NULL, *off = NULL;
  MPI_Request r;
  MPI_Igather(&n, 1, MPI_INT, len, 1, MPI_INT, 0, MPI_COMM_WORLD, &r);
  wait_req(c, &r, "gather", -1, MPI_COMM_WORLD);
  char *all = NULL;
  if (rank == 0) {
    off = xcalloc((size_t)size, sizeof(int));
    for (int i = 1; i < size; i++) off[i] = off[i - 1] + len[i - 1];
    all = xmalloc((size_t)off[size - 1] + (size_t)len[size - 1]);
  }
  MPI_Igatherv(s, n, MPI_CHAR, all, len, off, MPI_CHAR, 0, MPI_COMM_WORLD, &r);
  wait_req(c, &r, "gather", -1, MPI_COMM_WORLD);
  char **out = NULL;
  if (rank == 0) {
    out = xmalloc(sizeof(char *) * (size_t)size);
    for (int i = 0; i < size; i++) {
      out[i] = xmalloc((size_t)len[i]);
      memcpy(out[i], all + off[i], (size_t)len[i]);
    }
  }
  free(len), free(off), free(all);
  return out;
}

void rt_comm_barrier(rt_comm *c) {
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  wait_req(c, &r, "barrier", -1, MPI_COMM_WORLD);
}

void rt_comm_abort(rt_comm *c, int code) {
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

void rt_comm_finalize(rt_comm *c) {
  if (!c) return;
  if (c->dp != MPI_COMM_NULL) MPI_Comm_free(&c->dp);
  if (c->tp != MPI_COMM_NULL) MPI_Comm_free(&c->tp);
  for (int i = 0; i < c->nmine; i++) MPI_Comm_free(&c->mine_comm[i]);
  free(c->mine), free(c->mine_comm), free(c->made);
  if (c->owns) MPI_Finalize();
  free(c);
}

/* ---- the GPU executor (device.c): NCCL's unique id, from member 0 of a group */
void rt_comm_bcast(rt_comm *c, rt_group g, void *buf, int n) {
  MPI_Request r;
  MPI_Ibcast(buf, n, MPI_BYTE, 0, group(c, g), &r);
  wait_req(c, &r, "broadcast", -1, group(c, g));
}

void rt_comm_bcast_world(rt_comm *c, void *buf, int64_t n) {
  MPI_Request r;
  MPI_Ibcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
  wait_req(c, &r, "broadcast of the SP assignment", 0, MPI_COMM_WORLD);
}
