/* ex_schedule.c — one predicted training step as timed slices, by simulating
 * the plan's pipeline schedule.
 *
 * Each stage runs its Megatron-LM order of forward (F) and backward (B)
 * micro-batch chunks: 1F1B (warm-up of p-s-1 forwards, then one forward one
 * backward, then the cool-down), or interleaved 1F1B over v virtual chunks
 * (warm-up (p-s-1)*2 + (v-1)*p). A list simulation starts every op as soon as
 * its stage is free and its input has arrived: F(mb, vs) needs F(mb, vs-1)'s
 * activation sent from the previous virtual stage, B(mb, vs) needs the
 * gradient from vs+1 (the last virtual stage needs its own forward). Times per
 * micro-batch come from the plan: the stage's time_fwd_s / time_bwd_s when
 * given, otherwise the predicted compute time spread over micro-batches in
 * proportion to each stage's layer count, forward:backward = 1:2. Full
 * recompute adds a recompute slice before each backward. Tensor-parallel
 * collectives (the plan's boxing ops, per layer, mirrored in backward:
 * all-gather <-> reduce-scatter) go on a collectives lane inside their
 * compute slice; pipeline sends on a p2p lane; the data-parallel gradient
 * reduction and optimizer step close the step; idle compute time is a bubble
 * slice. Slices on one (stage, lane) never overlap. */
#include "export/export.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLICES (1 << 22)

typedef struct {
  const sbpc_plan *p;
  int P, V, M;              /* stages, virtual chunks per stage, micro-batches */
  double *fwd, *bwd, *rec;  /* per stage, per micro-batch per chunk */
  double *tpc;              /* per stage: TP collective time per chunk pass */
  double p2p;               /* one pipeline send */
  double *farr, *barr;      /* arrival time of F/B output, [mb * V*P + vs], -1 */
  double *lane_free;        /* [stage * 3 + lane] */
  ex_slice *s;
  int n, cap, detail;
} sim;

/* intern: a static copy of a collective's display name (slices keep it). */
static const char *intern(const char *c) {
  static const char *const known[] = {"all-reduce", "all-gather", "reduce-scatter", "all-to-all", "slice",
                                      "send-recv"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(known[i], c)) return known[i];
  return "collective";
}

static ex_slice *add(sim *q, int stage, int lane, double t0, double t1, const char *name, const char *cat, int mb,
                     int chunk) {
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 1024;
    q->s = realloc(q->s, sizeof *q->s * (size_t)q->cap);
    if (!q->s) abort();
  }
  ex_slice *e = &q->s[q->n++];
  *e = (ex_slice){stage, lane, t0, t1, name, cat, mb, chunk};
  if (t1 > q->lane_free[stage * 3 + lane]) q->lane_free[stage * 3 + lane] = t1;
  return e;
}

static int stage_layers(const sbpc_plan *p, int s) { return p->stages[s].nlayers; }

/* times: per-stage per-chunk micro-batch times from the plan. T, the time of
 * one micro-batch's chunk, is the predicted compute (plus the exposed
 * communication when the plan does not split out TP time) shared over
 * micro-batches and chunks in proportion to the stage's layers; forward :
 * backward = 1 : 2, and full recompute repeats the forward (1 : 1 : 2). */
static void times(sim *q) {
  const sbpc_plan *p = q->p;
  const sbpc_plan_predicted *pr = &p->predicted;
  int lmax = 1;
  for (int s = 0; s < q->P; s++) lmax = stage_layers(p, s) > lmax ? stage_layers(p, s) : lmax;
  double compute = pr->compute_s > 0 ? pr->compute_s : pr->step_time_s > 0 ? 0.8 * pr->step_time_s : 1.0;
  double exposed = pr->exposed_comm_s > 0 ? pr->exposed_comm_s : 0;
  double tp_total = pr->tp_comm_s >= 0 ? pr->tp_comm_s : exposed;
  if (pr->tp_comm_s < 0) compute += exposed;
  int full = !strcmp(p->recompute, "full");
  for (int s = 0; s < q->P; s++) {
    double share = (double)stage_layers(p, s) / lmax / q->M / q->V, t = compute * share;
    double r = !full ? 0 : pr->recompute_s > 0 ? pr->recompute_s * share : t / 4;
    double f = p->stages[s].fwd_s > 0 ? p->stages[s].fwd_s / q->V : (t - r) / 3;
    double b = p->stages[s].bwd_s > 0 ? p->stages[s].bwd_s / q->V : (t - r) * 2 / 3;
    q->fwd[s] = f, q->bwd[s] = b, q->rec[s] = full && p->stages[s].fwd_s > 0 ? f : r;
    q->tpc[s] = tp_total * share / 2;
  }
  q->p2p = q->P > 1 && pr->pp_comm_s > 0 ? pr->pp_comm_s / (2.0 * q->M * q->V) : 0;
}

/* order: the k-th op of stage s: *isf, *mb, *chunk (Megatron's order). */
static void order(const sim *q, int s, int k, int *isf, int *mb, int *chunk) {
  int P = q->P, V = q->V, total = q->M * V;
  int warm = V == 1 ? q->M < P - s - 1 ? q->M : P - s - 1 : (P - s - 1) * 2 + (V - 1) * P;
  if (warm > total) warm = total;
  int fk, bk;
  if (k < warm) *isf = 1, fk = k, bk = 0;
  else if (k < warm + 2 * (total - warm)) {
    int i = (k - warm) / 2;
    *isf = (k - warm) % 2 == 0;
    fk = warm + i, bk = i;
  } else *isf = 0, fk = 0, bk = k - warm - (total - warm);
  int j = *isf ? fk : bk, g = P * V;
  *mb = (j / g) * P + j % P;
  *chunk = (j % g) / P;
  if (V == 1) *mb = j, *chunk = 0;
  if (!*isf) *chunk = V - 1 - *chunk;
}

/* collectives: the plan's boxing ops of one chunk pass, per layer, inside
 * [t0, t1]. A boxing op with a pass is drawn in that pass (forward also in
 * recompute); one without is mirrored (all-gather <-> reduce-scatter). */
static void collectives(sim *q, int s, double t0, double t1, int fwd, int mb, int chunk) {
  const sbpc_plan *p = q->p;
  if (q->tpc[s] <= 0 || p->nboxing == 0) return;
  int layers = (stage_layers(p, s) + q->V - 1) / q->V, per = q->detail ? layers : 1, nb = 0;
  double bytes = 0;
  for (int i = 0; i < p->nboxing; i++)
    if (p->boxing[i].pass < 0 || p->boxing[i].pass == !fwd) bytes += p->boxing[i].bytes > 0 ? p->boxing[i].bytes : 1, nb++;
  if (!nb || layers == 0) return;
  double span = (t1 - t0) / per, slot = span / nb;
  for (int l = 0; l < per; l++)
    for (int i = 0, k = 0; i < p->nboxing; i++) {
      const sbpc_plan_boxing *b = &p->boxing[i];
      if (b->pass >= 0 && b->pass != !fwd) continue;
      double d = q->tpc[s] / per * (b->bytes > 0 ? b->bytes : 1) / bytes;
      double a = t0 + l * span + k++ * slot;
      char buf[32];
      const char *c = ex_collective(b->collective, buf, sizeof buf);
      if (b->pass < 0 && !fwd && !strcmp(c, "all-gather")) c = "reduce-scatter";
      else if (b->pass < 0 && !fwd && !strcmp(c, "reduce-scatter")) c = "all-gather";
      add(q, s, 1, a, a + (d < slot ? d : slot), b->op, intern(c), mb, chunk);
    }
}

static double *arr(sim *q, double *a, int mb, int vs) { return &a[(size_t)mb * q->V * q->P + vs]; }

/* ready: when op (isf, mb, vs) on stage s may start, or -1 if not yet known. */
static double ready(sim *q, int isf, int mb, int vs) {
  int last = q->V * q->P - 1;
  if (isf) return vs == 0 ? 0 : *arr(q, q->farr, mb, vs - 1);
  return vs == last ? *arr(q, q->farr, mb, vs) : *arr(q, q->barr, mb, vs + 1);
}

/* send: record the output's arrival at the consumer, with a p2p slice when
 * the consumer is on another stage. */
static void send(sim *q, int s, int isf, int mb, int vs, double end) {
  int to = isf ? vs + 1 : vs - 1, last = q->V * q->P - 1;
  double at = end;
  if (to >= 0 && to <= last && to % q->P != s && q->p2p > 0) {
    double t0 = fmax(end, q->lane_free[s * 3 + 2]);
    add(q, s, 2, t0, t0 + q->p2p, isf ? "send activations" : "send gradients", "p2p", mb, vs / q->P);
    at = t0 + q->p2p;
  }
  *arr(q, isf ? q->farr : q->barr, mb, vs) = at;
}

static void run_op(sim *q, int s, int isf, int mb, int chunk, double t) {
  int vs = chunk * q->P + s;
  if (isf) {
    add(q, s, 0, t, t + q->fwd[s], "forward", "forward", mb, chunk);
    collectives(q, s, t, t + q->fwd[s], 1, mb, chunk);
    send(q, s, 1, mb, vs, t + q->fwd[s]);
    return;
  }
  if (q->rec[s] > 0) {
    add(q, s, 0, t, t + q->rec[s], "recompute", "recompute", mb, chunk);
    collectives(q, s, t, t + q->rec[s], 1, mb, chunk);
    t += q->rec[s];
  }
  add(q, s, 0, t, t + q->bwd[s], "backward", "backward", mb, chunk);
  collectives(q, s, t, t + q->bwd[s], 0, mb, chunk);
  send(q, s, 0, mb, vs, t + q->bwd[s]);
}

/* simulate: run every stage's op list; 0 on success, -1 on a deadlock. */
static int simulate(sim *q) {
  int *pos = calloc((size_t)q->P, sizeof *pos), total = 2 * q->M * q->V, done = 0, progress = 1;
  while (progress) {
    progress = 0;
    for (int s = 0; s < q->P; s++)
      while (pos[s] < total) {
        int isf, mb, chunk;
        order(q, s, pos[s], &isf, &mb, &chunk);
        double r = ready(q, isf, mb, chunk * q->P + s);
        if (r < 0) break;
        run_op(q, s, isf, mb, chunk, fmax(r, q->lane_free[s * 3]));
        pos[s]++, done++, progress = 1;
      }
  }
  free(pos);
  return done == total * q->P ? 0 : -1;
}

/* finish: data-parallel gradient sync and optimizer step per stage. */
static double finish(sim *q) {
  const sbpc_plan_predicted *pr = &q->p->predicted;
  double end = 0;
  for (int s = 0; s < q->P; s++) {
    double t = q->lane_free[s * 3];
    if (q->p->dp > 1 && pr->dp_comm_s > 0) {
      const char *what = q->p->zero >= 1 ? "reduce-scatter gradients" : "all-reduce gradients";
      add(q, s, 1, fmax(t, q->lane_free[s * 3 + 1]), fmax(t, q->lane_free[s * 3 + 1]) + pr->dp_comm_s, what,
          "dp-collective", -1, -1);
      t = q->lane_free[s * 3 + 1];
    }
    if (pr->optimizer_s > 0) add(q, s, 0, t, t + pr->optimizer_s, "optimizer step", "optimizer", -1, -1);
    for (int l = 0; l < 3; l++) end = fmax(end, q->lane_free[s * 3 + l]);
  }
  return end;
}

static int by_start(const void *a, const void *b) {
  const ex_slice *x = a, *y = b;
  if (x->stage != y->stage) return x->stage - y->stage;
  if (x->lane != y->lane) return x->lane - y->lane;
  return (x->t0 > y->t0) - (x->t0 < y->t0);
}

/* bubbles: fill the idle gaps of each compute lane up to the step's end. */
static void bubbles(sim *q, double end) {
  qsort(q->s, (size_t)q->n, sizeof *q->s, by_start);
  int n = q->n;
  for (int s = 0; s < q->P; s++) {
    double t = 0;
    for (int i = 0; i < n; i++) {
      if (q->s[i].stage != s || q->s[i].lane != 0) continue;
      if (q->s[i].t0 > t + 1e-12) add(q, s, 0, t, q->s[i].t0, "bubble", "bubble", -1, -1);
      t = q->s[i].t1;
    }
    if (end > t + 1e-12) add(q, s, 0, t, end, "bubble", "bubble", -1, -1);
  }
  qsort(q->s, (size_t)q->n, sizeof *q->s, by_start);
}

static int effective_vpp(const sbpc_plan *p, ex_ctx *c) {
  int v = p->vpp;
  if (v > 1 && (p->pp == 1 || p->num_micro_batches % p->pp)) {
    ex_warn(c, "interleaved 1F1B needs micro-batches divisible by pp (%d %% %d); tracing plain 1F1B",
            p->num_micro_batches, p->pp);
    v = 1;
  }
  return v;
}

ex_slice *ex_schedule(const sbpc_plan *p, int *n, double *step_s, ex_ctx *c) {
  sim q = {.p = p, .P = p->nstages, .V = effective_vpp(p, c), .M = p->num_micro_batches};
  long long ops = 2LL * q.M * q.V * q.P;
  if (ops > MAX_SLICES) {
    ex_warn(c, "%lld pipeline ops is too many to trace", ops);
    return NULL;
  }
  long long per_stage = 2LL * q.M * (p->layers / q.P + 1) * (p->nboxing + 1);
  q.detail = per_stage * q.P < 400000;
  size_t nv = (size_t)q.M * q.V * q.P;
  double *buf = calloc((size_t)q.P * 7 + 2 * nv, sizeof(double));
  q.fwd = buf, q.bwd = buf + q.P, q.rec = buf + 2 * q.P, q.tpc = buf + 3 * q.P, q.lane_free = buf + 4 * q.P;
  q.farr = buf + 7 * q.P, q.barr = q.farr + nv;
  for (size_t i = 0; i < 2 * nv; i++) q.farr[i] = -1;
  times(&q);
  int rc = simulate(&q);
  if (rc == 0) {
    *step_s = finish(&q);
    bubbles(&q, *step_s);
  }
  free(buf);
  if (rc) {
    free(q.s);
    ex_warn(c, "the pipeline schedule deadlocked (internal error)");
    return NULL;
  }
  *n = q.n;
  return q.s;
}
