/* mpi.c — collective bandwidth and latency by group size, for `sbpc tune`
 * run under mpirun, and the lockstep of the other measurements (every rank
 * measures at once: tn_mpi_barrier, tn_mpi_max). The only file of the tune
 * module that includes mpi.h (its job is that dependency).
 *
 * When the launcher says there is more than one rank (OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE or PMIX_SIZE above 1), MPI is initialised and, for group sizes
 * 2, 4, 8, ... and the whole world, the first n ranks time MPI_Allreduce,
 * MPI_Allgather and a reduce-scatter on a tiny message (the latency,
 * alpha) and a large one; the bus bandwidth is the bytes each rank moves
 * (2T(n-1)/n for all-reduce, T(n-1)/n for the others, as the planner's cost
 * model counts them) over the large message's time less alpha. The
 * reduce-scatter is the executor's (runtime/executor.c: ZeRO-2's, and the
 * first half of ZeRO-0/1's gradient all-reduce, whose all-gather half is the
 * same exchange without the sum; the planner prices that all-reduce by the
 * reference step's dp_comm_scale instead, measured on it): pairwise
 * exchanges of the blocks with every other member, then their sum, not
 * MPI_Reduce_scatter_block, which the executor does not call (OpenMPI 4.1's
 * non-blocking one was 25x slower for 28 MB on 2 ranks). Times are the
 * slowest rank's, the best of a few repeats. The planner's latency
 * (by_group_size alpha_s) is a collective's cost inside a step, not back to
 * back: ranks that computed arrive at different times and the executor's
 * communication thread polls as it does in a step, without sleeping for
 * 100 us and then with naps (in_step), which on a shared, oversubscribed
 * machine can cost far more than the tight loop's alpha; and
 * a large all-reduce polled so while a worker thread computes on every rank
 * may move far less than back to back (in_step_bw: by_group_size
 * bus_bw_in_step; recorded, not yet used by the planner: one busy thread
 * and the best of a few tries do not reproduce the executor's contention
 * reliably). Rank 0
 * adds "collectives" to the calibration: by_group_size (all-reduce, the
 * planner's input) and every measurement. For sequence parallelism it then times MPI_Alltoall and a
 * ring MPI_Sendrecv by group size and placement (measure_sp: the first n
 * ranks of one node, and n ranks taken one per node in turn when there are
 * several nodes), written as collectives.all_to_all and send_recv. Built
 * without mpi.h on the include path, this file reports that collectives were
 * not measured. */
#include "tune/tn_int.h"
#include "util/arena.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

/* the first launcher variable of names that is set, else dflt */
static int launcher_env(const char *const names[3], int dflt) {
  for (int i = 0; i < 3; i++) {
    const char *s = getenv(names[i]);
    if (s && *s) return atoi(s);
  }
  return dflt;
}

int tn_launched_ranks(void) {
  static const char *const v[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
  int n = launcher_env(v, 1);
  return n > 1 ? n : 1;
}

int tn_launched_rank(void) {
  static const char *const v[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
  int r = launcher_env(v, 0);
  return r > 0 ? r : 0;
}

#if defined(__has_include)
#if __has_include(<mpi.h>)
#define SBPC_TUNE_MPI 1
#endif
#endif

#ifdef SBPC_TUNE_MPI
#include <mpi.h>

static int inited;

enum { AR, AG, RS, NCOLL, A2A = NCOLL, P2P }; /* A2A, P2P: measure_sp */
static const char *const coll_name[NCOLL] = {"all_reduce", "all_gather", "reduce_scatter"};

/* exchange_sum: the executor's ZeRO-2 reduce-scatter of count floats of s
 * over comm's n members: block r (count / n floats) to member r, the other
 * members' copies of this member's block into r, then summed into s's block */
static void exchange_sum(MPI_Comm comm, int n, int me, float *s, float *r, int count) {
  int b = count / n, nq = 0;
  MPI_Request *q = xmalloc(sizeof *q * (size_t)(2 * n));
  for (int p = 0, j = 0; p < n; p++)
    if (p != me) {
      MPI_Isend(s + (size_t)p * b, b, MPI_FLOAT, p, 3, comm, &q[nq++]);
      MPI_Irecv(r + (size_t)j++ * b, b, MPI_FLOAT, p, 3, comm, &q[nq++]);
    }
  MPI_Waitall(nq, q, MPI_STATUSES_IGNORE);
  free(q);
  for (int j = 0; j < n - 1; j++)
    for (int i = 0; i < b; i++) s[(size_t)me * b + i] += r[(size_t)j * b + i];
}

/* run: one collective of `bytes` per rank on comm; P2P is one ring step
 * (every rank sends `bytes` to the next, receives from the previous). */
static void run(int c, MPI_Comm comm, int n, char *sbuf, char *rbuf, size_t bytes) {
  int count = (int)(bytes / sizeof(float)), r;
  MPI_Comm_rank(comm, &r);
  if (c == AR) MPI_Allreduce(sbuf, rbuf, count, MPI_FLOAT, MPI_SUM, comm);
  else if (c == AG) MPI_Allgather(sbuf, count / n, MPI_FLOAT, rbuf, count / n, MPI_FLOAT, comm);
  else if (c == RS) exchange_sum(comm, n, r, (float *)sbuf, (float *)rbuf, count);
  else if (c == A2A) MPI_Alltoall(sbuf, count / n, MPI_FLOAT, rbuf, count / n, MPI_FLOAT, comm);
  else MPI_Sendrecv(sbuf, count, MPI_FLOAT, (r + 1) % n, 7, rbuf, count, MPI_FLOAT, (r + n - 1) % n, 7, comm,
                    MPI_STATUS_IGNORE);
}

/* seconds: the slowest rank's time of one collective, best of reps. */
static double seconds(int c, MPI_Comm comm, int n, char *sbuf, char *rbuf, size_t bytes, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    run(c, comm, n, sbuf, rbuf, bytes);
    double t = MPI_Wtime() - t0, worst;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (worst < best) best = worst;
  }
  return best;
}

/* measurement: one entry of collectives.measurements (placement when pl). */
static void measurement(cJSON *all, const char *op, int n, const char *pl, double bytes, double t, double a,
                        double bw) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "op", op);
  cJSON_AddNumberToObject(e, "n", n);
  if (pl) cJSON_AddStringToObject(e, "placement", pl);
  cJSON_AddNumberToObject(e, "bytes", bytes);
  cJSON_AddNumberToObject(e, "seconds", t);
  cJSON_AddNumberToObject(e, "alpha_s", a);
  cJSON_AddNumberToObject(e, "bus_bw", bw);
  cJSON_AddItemToArray(all, e);
}

/* burst: about 200 us of arithmetic (a step's compute between two collectives) */
static double burst(void) {
  volatile double x = 1;
  for (int i = 0; i < 100000; i++) x = x * 1.0000001 + 1e-9;
  return x;
}

/* polled: one small all-reduce as the executor's communication thread
 * waits for it with no kernel running (runtime/executor.c, drive): started
 * non-blocking, tested without sleeping (sched_yield) for the first 100 us,
 * then with naps of 20 us doubling to 100 us */
static void polled(MPI_Comm comm, float *buf) {
  MPI_Request r;
  int done = 0;
  long nap = 20000;
  double t0 = MPI_Wtime();
  MPI_Iallreduce(MPI_IN_PLACE, buf, 64, MPI_FLOAT, MPI_SUM, comm, &r);
  for (MPI_Test(&r, &done, MPI_STATUS_IGNORE); !done; MPI_Test(&r, &done, MPI_STATUS_IGNORE)) {
    if (MPI_Wtime() - t0 < 100e-6) {
      sched_yield();
      continue;
    }
    nanosleep(&(struct timespec){0, nap}, NULL);
    nap = nap * 2 > 100000 ? 100000 : nap * 2;
  }
}

/* in_step: seconds a small collective adds inside a step: reps bursts each
 * followed by one polled all-reduce, against the bursts alone (the ranks
 * arrive at different times, the waiting one naps: skew and wake-up count,
 * as they do between the executor's actors); the slowest rank's */
static double in_step(MPI_Comm comm, int reps) {
  float buf[64] = {0};
  double t[2];
  for (int with = 0; with < 2; with++) {
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    for (int i = 0; i < reps; i++) {
      burst();
      if (with) polled(comm, buf);
    }
    t[with] = MPI_Wtime() - t0;
  }
  double a = (t[1] - t[0]) / reps, worst;
  MPI_Allreduce(&a, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
  return worst > 0 ? worst : 0;
}

static double moved(int c, double T, int n) { return (c == AR ? 2.0 : 1.0) * T * (n - 1) / n; }

static atomic_int busy_stop;

/* busy: a worker computing beside the communication thread until told */
static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load(&busy_stop)) burst();
  return NULL;
}

/* in_step_bw: the bus bandwidth of a large all-reduce inside a step: started
 * non-blocking and tested with 100 us naps (the executor's longest) while a
 * worker thread computes on every rank, as the executor's collectives run
 * beside its kernels (on a machine whose cores the workers fill, the
 * communication progresses only when the polling thread gets a core);
 * best of reps, the slowest rank's */
static double in_step_bw(MPI_Comm comm, int n, char *buf, size_t bytes, int reps) {
  pthread_t th;
  atomic_store(&busy_stop, 0);
  bool thread = pthread_create(&th, NULL, busy, NULL) == 0;
  double best = INFINITY;
  for (int r = 0; r < reps; r++) {
    MPI_Request q;
    int done = 0;
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)(bytes / sizeof(float)), MPI_FLOAT, MPI_SUM, comm, &q);
    for (MPI_Test(&q, &done, MPI_STATUS_IGNORE); !done; MPI_Test(&q, &done, MPI_STATUS_IGNORE))
      nanosleep(&(struct timespec){0, 100000}, NULL);
    double t = MPI_Wtime() - t0;
    if (t < best) best = t;
  }
  atomic_store(&busy_stop, 1);
  if (thread) pthread_join(th, NULL);
  double worst;
  MPI_Allreduce(&best, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
  return moved(AR, (double)bytes, n) / fmax(worst, 1e-9); /* its latency included: a skewed alpha is no floor */
}

static void measure_group(MPI_Comm comm, int n, const tn_opts *o, cJSON *by, cJSON *all) {
  size_t big = (o->quick ? 1u : 16u) << 20, small = 64 * sizeof(float) * (size_t)n;
  big -= big % (sizeof(float) * (size_t)n);
  char *sbuf = calloc(1, big), *rbuf = calloc(1, big);
  int reps = o->quick ? 3 : 10;
  for (int c = 0; c < NCOLL; c++) {
    double a = seconds(c, comm, n, sbuf, rbuf, small, reps), t = seconds(c, comm, n, sbuf, rbuf, big, reps);
    double bw = moved(c, (double)big, n) / (t - a > 1e-9 ? t - a : t);
    if (all) {
      measurement(all, coll_name[c], n, NULL, (double)big, t, a, bw);
      if (o->log) fprintf(o->log, "tune: %s over %d ranks: %.3g GB/s bus, %.3g us latency\n", coll_name[c], n,
                          bw / 1e9, a * 1e6);
    }
    if (c == AR) { /* every rank: in_step is collective */
      double st = in_step(comm, o->quick ? 30 : 200);
      size_t mid = big < ((size_t)4 << 20) ? big : (size_t)4 << 20; /* an activation's size */
      double sbw = in_step_bw(comm, n, sbuf, mid, reps);
      if (o->log && all)
        fprintf(o->log, "tune: a collective inside a step over %d ranks: %.3g us, %.3g GB/s bus\n", n, st * 1e6,
                sbw / 1e9);
      if (!all) continue;
      cJSON *g = cJSON_CreateObject();
      cJSON_AddNumberToObject(g, "n", n);
      cJSON_AddNumberToObject(g, "bus_bw", bw);
      cJSON_AddNumberToObject(g, "alpha_s", fmin(fmax(a, st), 1));
      cJSON_AddNumberToObject(g, "alpha_tight_s", a);
      cJSON_AddNumberToObject(g, "bus_bw_in_step", fmin(sbw, bw));
      cJSON_AddItemToArray(by, g);
    }
  }
  free(sbuf), free(rbuf);
}

/* ---- sequence-parallel collectives: all-to-all and ring send/recv by group
 * size and placement (docs/calibration.md, "collectives.all_to_all") ---- */

/* node_of: for every world rank, the lowest world rank on its node. */
static void node_of(int rank, int size, int *node) {
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
  int first = rank;
  MPI_Bcast(&first, 1, MPI_INT, 0, local);
  MPI_Comm_free(&local);
  MPI_Allgather(&first, 1, MPI_INT, node, 1, MPI_INT, MPI_COMM_WORLD);
  (void)size;
}

/* sp_group: time both operations on comm (n ranks, placement pl); rank 0 of
 * the world adds the entries. Bus bandwidth as NCCL-tests counts it:
 * all-to-all T(n-1)/n per rank, send/recv T, over the time less alpha. */
static void sp_group(MPI_Comm comm, int n, const char *pl, const tn_opts *o, cJSON *a2a, cJSON *p2p,
                     cJSON *all) {
  size_t big = (o->quick ? 1u : 16u) << 20, small = 64 * sizeof(float) * (size_t)n;
  big -= big % (sizeof(float) * (size_t)n);
  char *sbuf = calloc(1, big), *rbuf = calloc(1, big);
  int reps = o->quick ? 3 : 10;
  for (int op = 0; op < 2; op++) {
    int c = op == 0 ? A2A : P2P;
    double a = seconds(c, comm, n, sbuf, rbuf, small, reps), t = seconds(c, comm, n, sbuf, rbuf, big, reps);
    double moved = op == 0 ? (double)big * (n - 1) / n : (double)big;
    double bw = moved / (t - a > 1e-9 ? t - a : t);
    if (!all) continue;
    const char *name = op == 0 ? "all_to_all" : "send_recv";
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "n", n);
    cJSON_AddStringToObject(e, "placement", pl);
    cJSON_AddNumberToObject(e, "bus_bw", bw < 1 ? 1 : bw);
    cJSON_AddNumberToObject(e, "alpha_s", a < 1 ? a : 1);
    cJSON_AddItemToArray(op == 0 ? a2a : p2p, e);
    measurement(all, name, n, pl, (double)big, t, a, bw);
    if (o->log) fprintf(o->log, "tune: %s over %d ranks (%s): %.3g GB/s bus, %.3g us latency\n", name, n, pl, bw / 1e9,
                        a * 1e6);
  }
  free(sbuf), free(rbuf);
}

/* measure_sp: for n = 2, 4, ... (and the whole world): an intra-node group
 * (the first n ranks of the first node, while it has n) and an inter-node
 * group (ranks taken one per node in turn, while there are two nodes or
 * more). Entries go to collectives.all_to_all / send_recv on rank 0. */
static void measure_sp(int rank, int size, const tn_opts *o, cJSON *co, cJSON *all) {
  int *node = calloc((size_t)size, sizeof(int)), *order = calloc((size_t)size, sizeof(int));
  node_of(rank, size, node);
  int on0 = 0, nodes = 0, k = 0;
  for (int r = 0; r < size; r++) on0 += node[r] == node[0], nodes += node[r] == r;
  for (int lvl = 0; k < size; lvl++) /* one rank per node in turn: the lvl-th rank of each node */
    for (int r = 0, seen; r < size; r++) {
      seen = 0;
      for (int q = 0; q < r; q++) seen += node[q] == node[r];
      if (seen == lvl) order[k++] = r;
    }
  cJSON *a2a = rank == 0 ? cJSON_AddArrayToObject(co, "all_to_all") : NULL;
  cJSON *p2p = rank == 0 ? cJSON_AddArrayToObject(co, "send_recv") : NULL;
  for (int n = 2; n <= size; n = n * 2 > size && n < size ? size : n * 2) {
    for (int inter = 0; inter < 2; inter++) {
      if (inter ? nodes < 2 : n > on0) continue;
      int pos = -1; /* this rank's place in the group, or -1 */
      for (int j = 0; j < n; j++)
        if ((inter ? order[j] : j) == rank) pos = j;
      MPI_Comm comm;
      MPI_Comm_split(MPI_COMM_WORLD, pos >= 0 ? 0 : MPI_UNDEFINED, pos, &comm);
      if (comm != MPI_COMM_NULL) {
        sp_group(comm, n, inter ? "inter" : "intra", o, a2a, p2p, rank == 0 ? all : NULL);
        MPI_Comm_free(&comm);
      }
      MPI_Barrier(MPI_COMM_WORLD);
    }
    if (n == size) break;
  }
  free(node), free(order);
}

void tn_mpi_barrier(void) {
  if (inited) MPI_Barrier(MPI_COMM_WORLD);
}

double tn_mpi_max(double x) {
  double m = x;
  if (inited) MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

int tn_mpi_start(void *calib_json, const tn_opts *o, int *nranks) {
  *nranks = 1;
  if (tn_launched_ranks() <= 1) return 0;
  int prov; /* the executor (the probe) runs worker threads beside MPI calls on this one */
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS) return -1;
  inited = 1;
  prctl(PR_SET_TIMERSLACK, 1UL); /* the polled waits nap as the executor's (rt_comm_init) */
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  *nranks = size;
  if (!calib_json) return rank; /* extending a calibration: its collectives are measured */
  cJSON *co = rank == 0 ? cJSON_CreateObject() : NULL;
  cJSON *by = rank == 0 ? cJSON_AddArrayToObject(co, "by_group_size") : NULL;
  cJSON *all = rank == 0 ? cJSON_AddArrayToObject(co, "measurements") : NULL;
  for (int n = 2; n <= size; n = n * 2 > size && n < size ? size : n * 2) {
    MPI_Comm comm;
    MPI_Comm_split(MPI_COMM_WORLD, rank < n ? 0 : MPI_UNDEFINED, rank, &comm);
    if (comm != MPI_COMM_NULL) {
      measure_group(comm, n, o, by, all);
      MPI_Comm_free(&comm);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (n == size) break;
  }
  measure_sp(rank, size, o, co, all);
  if (rank == 0) cJSON_AddItemToObject((cJSON *)calib_json, "collectives", co);
  return rank;
}

void tn_mpi_bcast(void *buf, int n) {
  if (inited) MPI_Bcast(buf, n, MPI_BYTE, 0, MPI_COMM_WORLD);
}

void tn_mpi_finalize(void) {
  int done = 0;
  MPI_Finalized(&done); /* the probe's executor finalizes MPI itself */
  if (inited && !done) MPI_Finalize();
  inited = 0;
}

#else /* no mpi.h on this module's include path */

void tn_mpi_barrier(void) {}

double tn_mpi_max(double x) { return x; }

int tn_mpi_start(void *calib_json, const tn_opts *o, int *nranks) {
  (void)calib_json;
  *nranks = 1;
  if (tn_launched_ranks() > 1 && o->log)
    sbpc_warn("tune: this sbpc was built without MPI for tune; collectives not measured");
  return 0;
}

void tn_mpi_bcast(void *buf, int n) { (void)buf, (void)n; }

void tn_mpi_finalize(void) {}
#endif
