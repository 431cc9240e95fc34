/* adaptive.c — `sbpc run DIR --adaptive-sp`: per step, SP groups of any size.
 *
 * The program (compiled with --packed --adaptive-sp on a Ulysses plan of sp
 * = the world, dp 1, pp 1) holds per rank and micro-batch one packed row of
 * C = S / sp tokens, up to `micro` micro-batches. Its head-split tensors
 * [1, sp * C, X / sp] have the bytes of [1, g * C, X / g] for every group
 * size g, so one arena plan serves every size: the all-to-alls take the
 * micro-batch's group (its cached communicator and g) and attention reads
 * g * C tokens and heads * sp / g heads (rt_kctx.spg).
 *
 * A step reads the program's global_batch samples of S tokens exactly as a
 * packed program does (runtime/data.c), so it trains the same documents as
 * a 1-rank packed run with that batch and sequence length: its documents
 * are the runs of one document inside a sample (a document cut by a sample
 * boundary is two). Their lengths go to the solver the driver handed the
 * runtime (rt_sp_solver: the planner's sp_solve, the same code as `sbpc
 * sp`), on rank 0 only, because the solver stops at a CPU-time limit and is
 * not deterministic across ranks; rank 0 broadcasts the compact assignment
 * (per micro-batch each rank's group; per document its micro-batch and
 * group). Rank 0 solves batch k + 1 on a thread while batch k trains; only
 * the first batch is solved before its step (SBPC_SP_SOLVE=inline solves
 * the next batch before the step instead, outside its measured time: the
 * bench's view of the executed assignment alone).
 *
 * A group of g ranks packs its documents, in index order, into g * C tokens
 * (the tail is padding: each pad token a document of its own, its label
 * ignored); member i (in rank order) holds tokens [i * C, (i + 1) * C).
 * Attention gets the document starts of the group's whole sequence,
 * positions and rotary those of the rank's tokens. The loss is the mean over
 * the step's predicted tokens: each rank's cross-entropy (scaled 1 / sp by
 * the compiler) divides by sp * C * micro * ce_ratio, with ce_ratio =
 * predicted / (sp * C * micro), and the train loop divides the world's sum
 * by micro, the gradients by micro (exec.c), so every group's share is its
 * tokens over the step's: the 1-rank packed run's loss and gradients.
 * Micro-batches past the assignment's are empty: the executor skips their
 * kernels and collectives on every rank.
 *
 * Communicators: per micro-batch the groups partition the world; the first
 * partition that holds a membership not made before makes them all with one
 * MPI_Comm_split over the world (every rank at the same point, since every
 * rank has the same assignments), cached by membership (mpi.c). */
#include "runtime/exec_priv.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a batch's documents: the runs of one document inside a sample */
typedef struct {
  int n;
  int64_t *len, *off;   /* tokens, and the first one's index in the batch arrays */
  int32_t *ids, *lab, *doc; /* the batch, [global_batch * S] */
} batch;

struct rt_adapt {
  const fmt_prog *p;
  rt_comm *comm;
  const rt_sp_solver *sv;
  int rank, ranks, M;
  int64_t C, GB, S;
  batch cur;            /* this step's */
  /* rank 0: the next batch, solved on a thread while this step trains */
  batch next;
  int64_t next_pos;
  bool pending, threaded, next_ok; /* pending: next_out holds the batch at next_pos (threaded: once joined) */
  pthread_t th;
  rt_sp_assign next_out;
  char next_why[512];
  /* this step on this rank */
  int32_t *lids, *llab, *ldoc, *ldoc_all; /* [M * C], [M * C], [M * C], [M * sp * C] */
  rt_adapt_mb mb;
  double predicted_s, solve_s;
  bool inline_solve;    /* SBPC_SP_SOLVE=inline: the next batch is solved before the step, not beside it */
  char groups[512];
  int64_t ran;          /* micro-batches run so far */
};

static void batch_free(batch *b) {
  free(b->len), free(b->off), free(b->ids), free(b->lab), free(b->doc);
  memset(b, 0, sizeof *b);
}

/* the samples at pos and their documents */
static void batch_read(const rt_adapt *a, const rt_data *d, int64_t pos, batch *b) {
  batch_free(b);
  int64_t n = a->GB * a->S;
  b->ids = xmalloc(sizeof(int32_t) * (size_t)n), b->lab = xmalloc(sizeof(int32_t) * (size_t)n);
  b->doc = xmalloc(sizeof(int32_t) * (size_t)n);
  rt_data_packed(d, pos, a->GB, b->ids, b->lab, b->doc);
  b->len = xmalloc(sizeof(int64_t) * (size_t)n), b->off = xmalloc(sizeof(int64_t) * (size_t)n);
  for (int64_t k = 0; k < a->GB; k++)
    for (int64_t t = 0; t < a->S; t++) {
      int64_t i = k * a->S + t;
      if (t == 0 || b->doc[i] != b->doc[i - 1]) b->off[b->n] = i, b->len[b->n++] = 0;
      b->len[b->n - 1]++;
    }
}

static void *solve_main(void *arg) {
  rt_adapt *a = arg;
  memset(&a->next_out, 0, sizeof a->next_out);
  a->next_ok = a->sv->solve(a->sv->ctx, a->next.len, a->next.n, &a->next_out, a->next_why, sizeof a->next_why);
  return NULL;
}

rt_adapt *rt_adapt_new(const fmt_prog *p, rt_comm *comm, int rank, int ranks, const rt_config *cfg, bool *bad) {
  *bad = true;
  if (!p->adaptive) {
    *bad = cfg->adaptive_sp || cfg->sp_degree;
    if (cfg->adaptive_sp && rank == 0)
      sbpc_error("--adaptive-sp: %s was not compiled with --adaptive-sp (sbpc compile MODEL --packed --adaptive-sp "
                 "--plan PLAN with sp = the world)", cfg->dir);
    if (cfg->sp_degree && rank == 0) sbpc_error("--sp-degree needs a program compiled with --adaptive-sp");
    return NULL;
  }
  if (ranks > 64 || !comm) {
    if (rank == 0) sbpc_error("--adaptive-sp runs on 2 to 64 ranks under mpirun");
    return NULL;
  }
  if (cfg->trace) {
    if (rank == 0) sbpc_error("--trace is not done under --adaptive-sp (its steps are not traced yet)");
    return NULL;
  }
  rt_adapt *a = xcalloc(1, sizeof *a);
  a->p = p, a->comm = comm, a->sv = cfg->sp_solver, a->rank = rank, a->ranks = ranks, a->M = p->micro;
  a->S = p->seq, a->GB = p->global_batch, a->C = p->seq / p->sp;
  const char *sv = getenv("SBPC_SP_SOLVE");
  a->inline_solve = sv && !strcmp(sv, "inline");
  char why[512] = "";
  if (rank == 0 && (!a->sv || !a->sv->init(a->sv->ctx, p->g, p->sp, ranks, a->C, a->M, why, sizeof why))) {
    sbpc_error("--adaptive-sp: the SP solver: %s", a->sv ? why : "none was given");
    free(a);
    return NULL;
  }
  size_t mc = (size_t)(a->M * a->C);
  a->lids = xmalloc(sizeof(int32_t) * mc), a->llab = xmalloc(sizeof(int32_t) * mc);
  a->ldoc = xmalloc(sizeof(int32_t) * mc), a->ldoc_all = xmalloc(sizeof(int32_t) * mc * (size_t)p->sp);
  a->mb.spg = xmalloc(sizeof(int) * (size_t)a->M), a->mb.mask = xmalloc(sizeof(uint64_t) * (size_t)a->M);
  a->mb.doc = xmalloc(sizeof(int32_t *) * (size_t)a->M), a->mb.doc_all = xmalloc(sizeof(int32_t *) * (size_t)a->M);
  return a;
}

/* the solve ahead, finished */
static void join(rt_adapt *a) {
  if (a->pending && a->threaded) pthread_join(a->th, NULL);
  a->threaded = false;
}

void rt_adapt_free(rt_adapt *a) {
  if (!a) return;
  join(a);
  free(a->next_out.group), free(a->next_out.doc_mb), free(a->next_out.doc_group);
  batch_free(&a->cur), batch_free(&a->next);
  free(a->lids), free(a->llab), free(a->ldoc), free(a->ldoc_all);
  free(a->mb.spg), free(a->mb.mask), free(a->mb.doc), free(a->mb.doc_all);
  free(a);
}

/* rank 0: the assignment of the batch at pos as [ok, nmb, group[M * ranks],
 * doc_mb[n], doc_group[n]]; solves the next one on the thread */
static void solve(rt_adapt *a, const rt_data *d, int64_t pos, bool more, int32_t *buf) {
  bool ahead = a->pending && a->next_pos == pos;
  join(a);
  a->pending = false;
  rt_sp_assign *o = &a->next_out;
  if (!ahead) { /* the first batch (or a resumed run's): solved before its step */
    free(o->group), free(o->doc_mb), free(o->doc_group);
    batch_read(a, d, pos, &a->next);
    solve_main(a);
  }
  int n = a->next.n;
  buf[0] = a->next_ok, buf[1] = a->next_ok ? o->nmb : 0;
  if (!a->next_ok) sbpc_error("--adaptive-sp: the SP solver found no assignment: %s", a->next_why);
  for (int i = 0; a->next_ok && i < o->nmb * a->ranks; i++) buf[2 + i] = o->group[i];
  for (int i = 0; a->next_ok && i < n; i++)
    buf[2 + a->M * a->ranks + i] = o->doc_mb[i], buf[2 + a->M * a->ranks + n + i] = o->doc_group[i];
  a->predicted_s = a->next_ok ? o->predicted_s : 0;
  a->solve_s = a->next_ok ? o->solve_s : 0;
  free(o->group), free(o->doc_mb), free(o->doc_group);
  memset(o, 0, sizeof *o);
  if (!more || !a->next_ok) return;
  a->next_pos = pos + a->GB;
  batch_read(a, d, a->next_pos, &a->next);
  a->pending = true;
  a->threaded = !a->inline_solve && pthread_create(&a->th, NULL, solve_main, a) == 0;
  if (!a->threaded) solve_main(a); /* in line (no thread, or asked for) */
}

/* the members of rank r's group in micro-batch q (a group of its own when idle) */
static uint64_t members(const rt_adapt *a, const int32_t *grp, int q, int r) {
  int32_t id = grp[q * a->ranks + r];
  if (id < 0) return 1ull << r;
  uint64_t m = 0;
  for (int s = 0; s < a->ranks; s++) m |= (uint64_t)(grp[q * a->ranks + s] == id) << s;
  return m;
}

/* micro-batch q's partition: communicators made (every rank), shapes logged */
static void partition(rt_adapt *a, const int32_t *grp, int q) {
  uint64_t masks[64];
  int n = 0, count[65] = {0};
  for (int r = 0; r < a->ranks; r++) {
    uint64_t m = members(a, grp, q, r);
    bool seen = false;
    for (int i = 0; i < n; i++) seen |= masks[i] == m;
    if (!seen) masks[n++] = m, count[__builtin_popcountll(m)]++;
  }
  rt_comm_sp_groups(a->comm, masks, n);
  size_t k = strlen(a->groups);
  if (k && k + 2 < sizeof a->groups) a->groups[k++] = ',', a->groups[k] = 0;
  for (int g = 1; g <= a->ranks; g++)
    if (count[g] && k + 16 < sizeof a->groups)
      k += (size_t)snprintf(a->groups + k, sizeof a->groups - k, "%s%dx%d", k && a->groups[k - 1] != ',' ? "+" : "",
                            count[g], g);
}

/* this rank's tokens of micro-batch q: its group's documents packed into
 * g * C tokens, the rest padding; false if they do not fit */
static bool place(rt_adapt *a, const int32_t *grp, const int32_t *dmb, const int32_t *dgr, int q) {
  const batch *b = &a->cur;
  int64_t C = a->C;
  uint64_t m = members(a, grp, q, a->rank);
  int g = __builtin_popcountll(m), idx = __builtin_popcountll(m & ((1ull << a->rank) - 1));
  int32_t id = grp[q * a->ranks + a->rank], *all = a->ldoc_all + (int64_t)q * a->p->sp * C;
  int32_t *ids = a->lids + q * C, *lab = a->llab + q * C;
  int64_t cur = 0, lo = idx * C, hi = lo + C;
  for (int i = 0; i < b->n && id >= 0; i++) {
    if (dmb[i] != q || dgr[i] != id) continue;
    if (cur + b->len[i] > g * C) return false;
    for (int64_t t = 0; t < b->len[i]; t++, cur++) {
      all[cur] = (int32_t)(cur - t);
      if (cur >= lo && cur < hi) ids[cur - lo] = b->ids[b->off[i] + t], lab[cur - lo] = b->lab[b->off[i] + t];
    }
  }
  for (; cur < g * C; cur++) all[cur] = (int32_t)cur; /* padding: a document per token, its label ignored */
  for (int64_t t = 0; t < C; t++) a->ldoc[q * C + t] = all[lo + t] - (int32_t)lo;
  a->mb.spg[q] = g, a->mb.mask[q] = m, a->mb.doc[q] = a->ldoc + q * C, a->mb.doc_all[q] = all;
  return true;
}

bool rt_adapt_step(rt_adapt *a, rt_exec *e, const rt_data *d, int64_t pos, bool more, const int32_t **ids,
                   const int32_t **labels) {
  batch_read(a, d, pos, &a->cur);
  int n = a->cur.n;
  int64_t nbuf = 2 + (int64_t)a->M * a->ranks + 2 * (int64_t)n;
  int32_t *buf = xcalloc((size_t)nbuf, sizeof *buf);
  if (a->rank == 0) solve(a, d, pos, more, buf);
  rt_comm_bcast_world(a->comm, buf, nbuf * (int64_t)sizeof *buf);
  bool ok = buf[0] && buf[1] >= 1 && buf[1] <= a->M;
  int nmb = ok ? buf[1] : 0;
  const int32_t *grp = buf + 2, *dmb = grp + a->M * a->ranks, *dgr = dmb + n;
  for (int64_t i = 0; i < a->M * a->C; i++) a->lids[i] = 0, a->llab[i] = -1, a->ldoc[i] = 0;
  for (int q = 0; q < a->M; q++)
    a->mb.spg[q] = 1, a->mb.mask[q] = 1ull << a->rank, a->mb.doc[q] = a->ldoc + q * a->C, a->mb.doc_all[q] = a->ldoc;
  a->groups[0] = 0;
  for (int q = 0; q < nmb && ok; q++) {
    partition(a, grp, q);
    ok = place(a, grp, dmb, dgr, q);
    if (!ok) sbpc_error("--adaptive-sp: the assignment gives a group more tokens than it holds");
  }
  free(buf);
  if (!ok) return false;
  int64_t pred = 0;
  for (int64_t i = 0; i < a->GB * a->S; i++) pred += a->cur.lab[i] >= 0;
  a->mb.nlive = nmb;
  a->ran += nmb;
  e->ad = &a->mb;
  rt_exec_set_docs(e, NULL, (double)pred / ((double)a->p->sp * (double)a->C * a->M));
  *ids = a->lids, *labels = a->llab;
  return true;
}

const char *rt_adapt_groups(const rt_adapt *a) { return a->groups; }
double rt_adapt_predicted(const rt_adapt *a) { return a->predicted_s; }
double rt_adapt_solve_s(const rt_adapt *a) { return a->solve_s; }

void rt_adapt_report(const rt_adapt *a) {
  if (a->rank == 0)
    printf("adaptive SP: %lld micro-batches ran; rank 0 holds %d group communicators (made once, cached by "
           "membership)\n", (long long)a->ran, rt_comm_sp_count(a->comm));
}
