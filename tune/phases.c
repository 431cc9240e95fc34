/* phases.c — one training step split into phases, predicted and measured,
 * for `sbpc tune --plans`.
 *
 * Predicted: the plan JSON of one layout, read through the one plan reader
 * (format/sbpc_plan.h): forward and backward are the slowest stage's
 * per-micro-batch compute (stages[].time_fwd_s, time_bwd_s; full
 * recompute's repeated forward counts as backward) times the micro-batches;
 * optimizer, exposed communication and bubble are predicted.breakdown's.
 *
 * Measured: the executor's trace of its last steps (docs/trace.md; runtime/
 * trace.c writes it; `--trace-steps K`, one step's split alone moved a
 * 4 ms step's exposed communication by 0.1-0.6 ms). Per rank, every instant
 * of the traced steps is given to one
 * phase, the first that has a slice running then in the order optimizer,
 * backward (and recompute), forward, communication (collective and p2p
 * slices), else bubble: a sweep over the slices' sorted end points. So the
 * five phases add up to the step even though the executor's workers run
 * slices at once, and communication counts only where no compute hides it.
 * The rank with the most compute is reported (the planner's slowest stage),
 * each phase per step: its total over the traced steps / K. */
#include "tune/tn_int.h"
#include "format/sbpc_plan.h"
#include "util/arena.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tn_phase_names[TN_NPHASE] = {"forward", "backward", "optimizer", "exposed comm", "bubble"};

bool tn_predicted(const char *plan_json, tn_step *p) {
  char err[256];
  sbpc_plan *pl = sbpc_plan_read(plan_json, err, sizeof err);
  if (!pl) return false;
  const sbpc_plan_predicted *pr = &pl->predicted;
  int slow = 0;
  for (int s = 1; s < pl->nstages; s++)
    if (pl->stages[s].fwd_s + pl->stages[s].bwd_s > pl->stages[slow].fwd_s + pl->stages[slow].bwd_s) slow = s;
  double m = pl->num_micro_batches > 0 ? pl->num_micro_batches : 1, f = pl->nstages ? pl->stages[slow].fwd_s : -1;
  double b = pl->nstages ? pl->stages[slow].bwd_s : -1;
  memset(p, 0, sizeof *p);
  p->step_s = pr->step_time_s;
  p->mem_bytes = pr->memory_per_device_bytes;
  p->phase[TN_FWD] = f >= 0 ? m * f : -1;
  p->phase[TN_BWD] = b >= 0 ? m * (b + (pl->recompute && !strcmp(pl->recompute, "full") ? f : 0)) : -1;
  p->phase[TN_OPT] = pr->optimizer_s;
  p->phase[TN_COMM] = pr->exposed_comm_s;
  p->phase[TN_BUBBLE] = pr->bubble_s;
  sbpc_plan_free(pl);
  return true;
}

typedef struct {
  double t;
  int phase, delta; /* +1 start, -1 end */
} edge;

static int by_time(const void *a, const void *b) {
  const edge *x = a, *y = b;
  return (x->t > y->t) - (x->t < y->t);
}

static int phase_of(const char *cat) {
  if (!strcmp(cat, "optimizer")) return TN_OPT;
  if (!strcmp(cat, "backward") || !strcmp(cat, "recompute")) return TN_BWD;
  if (!strcmp(cat, "forward")) return TN_FWD;
  if (!strcmp(cat, "collective") || !strcmp(cat, "p2p")) return TN_COMM;
  return -1;
}

/* sweep: the phases of one rank's n edges over a step of step_s seconds */
static void sweep(edge *e, int n, double step_s, double *ph) {
  int open[TN_NPHASE] = {0};
  double last = 0;
  qsort(e, (size_t)n, sizeof *e, by_time);
  for (int i = 0; i < n; i++) {
    int cur = TN_BUBBLE;
    for (int k = TN_OPT; k >= 0 && cur == TN_BUBBLE; k--) /* optimizer, backward, forward */
      if (open[k] > 0) cur = k;
    if (cur == TN_BUBBLE && open[TN_COMM] > 0) cur = TN_COMM;
    ph[cur] += e[i].t - last;
    last = e[i].t;
    open[e[i].phase] += e[i].delta;
  }
  ph[TN_BUBBLE] += step_s > last ? step_s - last : 0;
}

/* is slice x of category k an attention kernel of the forward or backward
 * pass (its name's first word attention or attention_grad)? */
static bool attention_slice(const cJSON *x, int k) {
  const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
  if ((k != TN_FWD && k != TN_BWD) || !cJSON_IsString(nm)) return false;
  size_t n = strcspn(nm->valuestring, " ");
  return (n == 9 && !strncmp(nm->valuestring, "attention", 9)) || (n == 14 && !strncmp(nm->valuestring, "attention_grad", 14));
}

/* one rank's slice: [t0, t1] seconds, its phase, and what it counts as */
typedef struct {
  double t0, t1;
  int phase;
  bool coll, attn, opt;
} slice;

/* one traced step of a rank: its window and what it measured per step */
typedef struct {
  double t0, t1, ph[TN_NPHASE], coll, attn, opt;
} window;

static int by_start(const void *a, const void *b) {
  const slice *x = a, *y = b;
  return (x->t0 > y->t0) - (x->t0 < y->t0);
}

static int by_length(const void *a, const void *b) {
  const window *x = a, *y = b;
  double u = x->t1 - x->t0, v = y->t1 - y->t0;
  return (u > v) - (u < v);
}

/* rank_slices: rank pid's phase slices into *s and its step slices into *w
 * (each array malloc'ed); their counts in *ns, *nw */
static void rank_slices(const cJSON *events, int pid, slice **s, int *ns, window **w, int *nw) {
  int cs = 256, cw = 16;
  *s = xmalloc(sizeof **s * (size_t)cs), *w = xmalloc(sizeof **w * (size_t)cw), *ns = *nw = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, events) {
    const cJSON *ph_ = cJSON_GetObjectItemCaseSensitive(x, "ph"), *cat = cJSON_GetObjectItemCaseSensitive(x, "cat");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "pid");
    if (!cJSON_IsString(ph_) || strcmp(ph_->valuestring, "X") || !cJSON_IsString(cat) || !cJSON_IsNumber(p) ||
        p->valueint != pid)
      continue;
    int k = phase_of(cat->valuestring);
    double ts = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "ts")) * 1e-6;
    double dur = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "dur")) * 1e-6;
    if (!(dur >= 0) || !isfinite(ts) || !isfinite(dur)) continue;
    if (!strcmp(cat->valuestring, "step")) {
      if (*nw == cw) cw *= 2, *w = xrealloc(*w, sizeof **w * (size_t)cw);
      (*w)[(*nw)++] = (window){.t0 = ts, .t1 = ts + dur};
    }
    if (k < 0) continue;
    if (*ns == cs) cs *= 2, *s = xrealloc(*s, sizeof **s * (size_t)cs);
    bool attn = attention_slice(x, k) && !strcmp(cat->valuestring, k == TN_FWD ? "forward" : "backward");
    (*s)[(*ns)++] = (slice){ts, ts + dur, k, !strcmp(cat->valuestring, "collective"), attn, k == TN_OPT};
  }
}

/* window_phases: w's phases from the n slices s (sorted by start) that
 * start inside it, each cut at its end */
static void window_phases(const slice *s, int n, window *w) {
  edge *e = xmalloc(sizeof *e * (size_t)(2 * n + 1));
  int m = 0;
  for (int i = 0; i < n && s[i].t0 < w->t1; i++) {
    if (s[i].t0 < w->t0) continue;
    double end = s[i].t1 < w->t1 ? s[i].t1 : w->t1;
    e[m++] = (edge){s[i].t0 - w->t0, s[i].phase, 1}, e[m++] = (edge){end - w->t0, s[i].phase, -1};
    w->coll += s[i].coll, w->opt += s[i].opt, w->attn += s[i].attn ? s[i].t1 - s[i].t0 : 0;
  }
  memset(w->ph, 0, sizeof w->ph);
  sweep(e, m, w->t1 - w->t0, w->ph);
  free(e);
}

/* rank_phases: rank pid's phases per step into ph, c[0]: its collective
 * slices, c[1]: its attention kernels' seconds, c[2]: its optimizer slices.
 * With the executor's step slices: each step swept alone, and the mean over
 * the middle half of the steps by length (the interquartile mean: one round
 * of tiny GPT-2's reference ran a quarter of its 50 traced steps at 8-18 ms
 * against 2 for the rest, and the whole trace's mean made its exposed
 * communication 0.36 ms a step where its typical steps had 0.15-0.16 ms of
 * collective slices). Without them (an older trace): the whole trace as k
 * steps of step_s. */
static void rank_phases(const cJSON *events, int pid, double step_s, double k, double *ph, double *c) {
  slice *s;
  window *w;
  int ns, nw;
  rank_slices(events, pid, &s, &ns, &w, &nw);
  if (ns) qsort(s, (size_t)ns, sizeof *s, by_start);
  double div = nw ? 0 : k, end = k * step_s;
  for (int i = 0; !nw && i < ns; i++) end = fmax(end, s[i].t1);
  if (!nw) w[nw++] = (window){.t0 = ns ? fmin(0, s[0].t0) : 0, .t1 = end};
  for (int i = 0; i < nw; i++) window_phases(s, ns, &w[i]);
  qsort(w, (size_t)nw, sizeof *w, by_length);
  int lo = nw >= 4 ? nw / 4 : 0, hi = nw >= 4 ? nw - nw / 4 : nw;
  memset(ph, 0, sizeof(double) * TN_NPHASE), c[0] = c[1] = c[2] = 0;
  for (int i = lo; i < hi; i++) {
    for (int p = 0; p < TN_NPHASE; p++) ph[p] += w[i].ph[p];
    c[0] += w[i].coll, c[1] += w[i].attn, c[2] += w[i].opt;
  }
  if (!div) div = hi - lo;
  for (int p = 0; p < TN_NPHASE; p++) ph[p] /= div;
  for (int i = 0; i < 3; i++) c[i] /= div;
  free(s), free(w);
}

bool tn_measured_trace(const char *trace_json, tn_step *m) {
  size_t len;
  char *text = read_file(trace_json, 1 << 30, &len);
  cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
  free(text);
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "traceEvents"), *x;
  const cJSON *od = cJSON_GetObjectItemCaseSensitive(j, "otherData");
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(od, "measured_step_s");
  const cJSON *ks = cJSON_GetObjectItemCaseSensitive(od, "traced_steps");
  double k = cJSON_IsNumber(ks) && ks->valuedouble >= 1 && ks->valuedouble <= 1e6 ? floor(ks->valuedouble) : 1;
  if (!cJSON_IsArray(ev) || !cJSON_IsNumber(st)) return cJSON_Delete(j), false;
  double best = -1;
  int maxpid = -1;
  cJSON_ArrayForEach(x, ev) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "pid");
    if (cJSON_IsNumber(p) && p->valueint > maxpid && p->valueint < 65536) maxpid = p->valueint;
  }
  for (int pid = 0; pid <= maxpid; pid++) {
    double ph[TN_NPHASE], c[3];
    rank_phases(ev, pid, st->valuedouble, k, ph, c);
    double busy = ph[TN_FWD] + ph[TN_BWD] + ph[TN_OPT];
    if (busy > best) best = busy, memcpy(m->phase, ph, sizeof ph), m->colls = c[0], m->attn_s = c[1], m->opt_calls = c[2];
  }
  m->step_s = st->valuedouble;
  cJSON_Delete(j);
  return best >= 0;
}

/* read_steps: the step seconds of a run's JSON-lines log into t (at most
 * cap), sorted but the first (warm-up, when there are more); their count,
 * -1 when the log cannot be read */
static int read_steps(const char *path, double tokens_per_step, double *t, int cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = 0;
  char line[512];
  while (n < cap && fgets(line, sizeof line, f)) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "tokens_per_s");
    if (cJSON_IsNumber(r) && r->valuedouble > 0) t[n++] = tokens_per_step / r->valuedouble;
    cJSON_Delete(j);
  }
  fclose(f);
  for (int i = n > 1; i < n; i++) /* insertion sort: a few steps */
    for (int j = i; j > (n > 1) && t[j] < t[j - 1]; j--) {
      double x = t[j];
      t[j] = t[j - 1], t[j - 1] = x;
    }
  return n;
}

int tn_best_round(const double *s, int n) {
  int b = 0;
  for (int r = 1; r < n; r++) b = s[r] < s[b] ? r : b;
  return b;
}

double tn_step_median(const char *path, double tokens_per_step) {
  double t[4096];
  int n = read_steps(path, tokens_per_step, t, 4096), skip = n > 1;
  return n > 0 ? t[skip + (n - skip) / 2] : -1;
}

double tn_step_spread(const char *path) {
  double t[4096];
  int n = read_steps(path, 1, t, 4096), skip = n > 1;
  return n > 0 ? t[skip + (n - skip) / 2] / t[skip + (n - skip) / 10] : -1; /* over the tenth-fastest */
}
