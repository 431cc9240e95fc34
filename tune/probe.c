/* probe.c — `sbpc tune --model`: what the executor really costs, measured
 * on the model's own program.
 *
 * The micro-benchmarks of measure.c and mpi.c time OpenBLAS calls, a triad
 * and MPI collectives alone. A training step of the executor also runs the
 * model's other kernels at their real (often small) shapes, fires every
 * actor through its lock, worker wake-up and the main thread's polling, and
 * waits. So the calibration ends with a probe of reference layouts of the
 * model, pure data parallelism over the ranks tune runs on (dp=N, tp=pp=1,
 * ZeRO 0, no recompute): A with the planner's micro-batch (a child
 * `sbpc plan`, with the calibration measured so far), B with the same batch
 * in other micro-batches (one, or two when A has one; none when the rank's
 * share of the batch cannot be split). A child `sbpc compile` compiles each;
 * every rank runs it with the executor (tn_opts.run_program: rt_run in this
 * process, as the ranks of `mpirun -np N sbpc tune`) for as many steps as
 * `tune --plans` runs a layout of its predicted step (tn_run_steps: the
 * rooflines', so more rather than fewer; 3 with --quick), with a log and a
 * trace of all but the first (at most 50), in rounds (5 when the four runs
 * are predicted under 2 s, else 2; 1 with --quick), the references
 * interleaved. Each reference's step is the fastest of its rounds' median
 * logged steps, split as that round's trace's phases (tn_best_round,
 * phases.c); these
 * are fitted to the plans' (per pass,
 * R = its rooflines planned with no per-kernel cost, K = the kernels the
 * planner counts in it: what a plan with 10 us per kernel adds, over 10 us,
 * M = the micro-batches):
 *
 *   forward  = forward_scale  * R_fwd + forward_kernel_s  * K_fwd
 *   backward = backward_scale * R_bwd + backward_kernel_s * K_bwd
 *   bubble   = step_overhead_s + micro_overhead_s * M   (beyond the plan's)
 *   optimizer = optimizer_scale * R_opt + optimizer_kernel_s * its calls (A and C)
 *   dp_comm_scale   = measured exposed comm / predicted gradient all-reduce
 *
 * two equations each (A and B; the optimizer's A and C), solved exactly; a negative per-kernel or
 * per-micro term (noise) is dropped and the other refitted to both runs.
 * Under mpirun a third reference, C, is A with ZeRO-3 (a parameter
 * all-gather per parameter and pass, each waited for): coll_latency_s is
 * what its step exceeds the fitted terms' prediction of it by, per
 * collective of its trace (the waits show as exposed communication and as
 * idle time: each gather's completion hands a kernel to a worker); the
 * planner adds it to every ZeRO collective the executor waits for (tiny
 * GPT-2, dp=2: ZeRO-3 layouts were predicted 35-50 % fast without it; its
 * 47 gathers a step took 99 us each where tune's in-step latency is 21 us).
 * A fourth, D (A with ZeRO-2: a reduce-scatter per micro-batch, the update
 * on the shard and the gather after it, each handed between the rank's
 * threads), gives the same for ZeRO-1/2's collectives (zero12_latency_s):
 * with C's alone tiny GPT-2's ZeRO-1/2 layouts measured 5-15 points slower
 * against their prediction than ZeRO-0's in every cycle. D's wait is
 * measured over the planner's own prediction of D with every other fitted
 * term (zero12_wait); C's over the rooflines' plan (coll_latency says why).
 * With B missing the per-kernel and per-step terms are 0 and the rest is A's
 * ratio. The all-reduce is planned a third time with nothing of it
 * overlapped (grad_overlap 0: the planner then counts it whole; A, under
 * mpirun only). Why two layouts: one fits its own micro-batching and
 * nothing else. From A alone (1 x 4 micro-batches of tiny GPT-2, dp=2) the
 * layouts tune --plans then measured (4 x 1) were over-predicted in
 * forward by 20 % (A's per-kernel cost sat in its scale, over 4 micro-
 * batches' kernels) and under in bubble by 0.4-0.6 ms of 1.2-1.5 (A's idle
 * time all per micro-batch: it has a per-step part). All of it comes from
 * these runs on this machine; nothing is a constant of a CPU. Before the
 * fit, A's attention kernels (its trace's slices) set attention.flash_eff
 * and the references are planned again with it (attention_eff); a
 * reference whose steps spread (other work on the machine) runs again. The
 * probe's files stay in /tmp/sbpc-tune-probe-* (named on stderr): a/, b/,
 * c/ and d/. */
#include "tune/tn_int.h"
#include "format/sbpc_plan.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROBE_KERNEL_S 1e-5 /* the per-kernel cost of the counting plan */
#define PROBE_RERUNS 2   /* a reference runs again at most this often */
#define PROBE_SPREAD 1.15 /* ... while its median step is this over its fastest */
#define PROBE_FLASH_EFF 0.5 /* the attention efficiency of the first attention-counting plan */
#define PROBE_LIMIT_S 900.0
#define PROBE_ROUNDS 5    /* rounds at most (tn_autotune's rule: 5 for short runs) */

/* one reference layout: its files in sub/, its plans and its run */
typedef struct {
  char sub[96], fix[128];
  double tokens;          /* per step */
  int micro, mbs, steps;  /* micro-batches, their size, the steps to run */
  double run_s;           /* a run's predicted seconds (its steps at the rooflines') */
  bool comm;              /* p2 planned (A under mpirun) */
  tn_step p0, p1, p2, m;  /* rooflines, with 10 us per kernel, nothing overlapped; measured */
  char model[64];         /* the plan's model name, parameters and training shape */
  double params;
  long batch, seq;
} ref;

enum { REF_A, REF_B, REF_C, REF_D, NREF }; /* the planner's micro-batch; another; A's with ZeRO-3, ZeRO-2 */
typedef struct {
  char dir[64], exe[4096];
  ref r[NREF];
  bool have[NREF];
  int rounds;             /* runs of each reference, interleaved */
} probe;

/* set_flash: calib's attention.flash_eff set to eff */
static void set_flash(cJSON *calib, double eff) {
  cJSON *at = cJSON_GetObjectItemCaseSensitive(calib, "attention");
  if (!cJSON_IsObject(at)) cJSON_DeleteItemFromObjectCaseSensitive(calib, "attention"), at = cJSON_AddObjectToObject(calib, "attention");
  cJSON_DeleteItemFromObjectCaseSensitive(at, "flash_eff");
  cJSON_AddNumberToObject(at, "flash_eff", eff);
}

/* write_calib: calib with kernel_overhead_s set to k (with no_overlap,
 * nothing of the gradient reduction overlapped; with flash > 0, for counting
 * attention: the attention kernels at that efficiency and memory at 1e15
 * B/s, so that every kernel is compute-bound), at path */
static bool write_calib(const cJSON *calib, double k, bool no_overlap, double flash, const char *path) {
  cJSON *c = cJSON_Duplicate(calib, 1);
  cJSON_DeleteItemFromObjectCaseSensitive(c, "kernel_overhead_s");
  cJSON_AddNumberToObject(c, "kernel_overhead_s", k);
  if (flash > 0) {
    set_flash(c, flash);
    cJSON_DeleteItemFromObjectCaseSensitive(c, "memory");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(c, "memory"), "kernel_bytes_per_s", 1e15);
  }
  if (no_overlap) cJSON_AddNumberToObject(cJSON_AddObjectToObject(c, "runtime"), "grad_overlap", 0);
  bool ok = !tn_write_json(c, path);
  cJSON_Delete(c);
  return ok;
}

/* plan: `sbpc plan MODEL --cluster cpu:N --fix FIX --calibration DIR/calibC.json --json SUB/planC.json` */
static bool plan(const probe *p, const ref *r, const tn_opts *o, int nranks, int cal) {
  char cl[32], cf[96], out[128], log[128];
  snprintf(cl, sizeof cl, "cpu:%d", nranks);
  snprintf(cf, sizeof cf, "%s/calib%d.json", p->dir, cal);
  snprintf(out, sizeof out, "%s/plan%d.json", r->sub, cal);
  snprintf(log, sizeof log, "%s/plan.log", r->sub);
  char *argv[24] = {(char *)p->exe, "plan", (char *)o->model, "--cluster", cl, "--fix", (char *)r->fix, "--top", "1",
                    "--calibration", cf, "--json", out};
  int a = 13;
  if (o->batch) argv[a++] = "--batch", argv[a++] = (char *)o->batch;
  if (o->seq) argv[a++] = "--seq", argv[a++] = (char *)o->seq;
  argv[a] = NULL;
  return tn_run_child(argv, log, PROBE_LIMIT_S) == 0;
}

/* reference: plan (rooflines first: they fix the micro-batch of the other
 * two plans) and compile the layout r->fix in r->sub */
static bool reference(const probe *p, ref *r, const tn_opts *o, int nranks, bool comm) {
  char path[128], prog[128], log[128], err[256];
  if (mkdir(r->sub, 0700) || !plan(p, r, o, nranks, 0)) return false;
  snprintf(path, sizeof path, "%s/plan0.json", r->sub);
  sbpc_plan *pl = sbpc_plan_read(path, err, sizeof err);
  if (!pl) return false;
  r->tokens = (double)pl->global_batch * (double)pl->seq;
  snprintf(r->model, sizeof r->model, "%s", pl->model_name ? pl->model_name : "");
  r->params = pl->params, r->batch = pl->global_batch, r->seq = pl->seq;
  r->micro = pl->num_micro_batches > 0 ? pl->num_micro_batches : 1;
  r->mbs = pl->micro_batch > 0 ? pl->micro_batch : 1;
  r->steps = o->quick ? 3 : tn_run_steps(pl->predicted.step_time_s);
  r->run_s = r->steps * fmax(0, pl->predicted.step_time_s);
  sbpc_plan_free(pl);
  size_t n = strlen(r->fix);
  if (!strstr(r->fix, "mbs=")) snprintf(r->fix + n, sizeof r->fix - n, ",mbs=%d", r->mbs);
  r->comm = comm;
  if (!plan(p, r, o, nranks, 1) || (comm && !plan(p, r, o, nranks, 2))) return false;
  snprintf(prog, sizeof prog, "%s/program", r->sub), snprintf(log, sizeof log, "%s/compile.log", r->sub);
  char *argv[] = {(char *)p->exe, "compile", (char *)o->model, "--plan", path, "-o", prog, NULL};
  return tn_run_child(argv, log, PROBE_LIMIT_S) == 0;
}

/* write_calibs: the three calibrations the references are planned with:
 * calib as measured so far (0), with PROBE_KERNEL_S per kernel (1), with
 * nothing of the gradient reduction overlapped (2) */
static bool write_calibs(const probe *p, const cJSON *calib) {
  char c[3][128];
  for (int i = 0; i < 3; i++) snprintf(c[i], sizeof c[i], "%s/calib%d.json", p->dir, i);
  return write_calib(calib, 0, false, 0, c[0]) && write_calib(calib, PROBE_KERNEL_S, false, 0, c[1]) &&
         write_calib(calib, 0, true, 0, c[2]);
}

/* prepare: on rank 0, the calibrations to plan with and the references:
 * A, then B when A's share of the batch can be split otherwise */
static bool prepare(probe *p, const tn_opts *o, const cJSON *calib, int nranks) {
  ssize_t n = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
  if (n <= 0 || !mkdtemp(p->dir)) return false;
  p->exe[n] = 0;
  if (!write_calibs(p, calib)) return false;
  ref *a = &p->r[REF_A], *b = &p->r[REF_B], *z = &p->r[REF_C], *z2 = &p->r[REF_D];
  snprintf(a->sub, sizeof a->sub, "%s/a", p->dir);
  snprintf(a->fix, sizeof a->fix, "dp=%d,tp=1,pp=1,sp=1,vpp=1,zero=0,recompute=none", nranks);
  if (!reference(p, a, o, nranks, nranks > 1)) return false;
  p->have[REF_A] = true;
  int share = a->mbs * a->micro, mbs = a->micro > 1 ? share : share % 2 ? 0 : share / 2;
  snprintf(b->sub, sizeof b->sub, "%s/b", p->dir);
  snprintf(b->fix, sizeof b->fix, "dp=%d,tp=1,pp=1,sp=1,vpp=1,zero=0,recompute=none,mbs=%d", nranks, mbs);
  p->have[REF_B] = mbs >= 1 && reference(p, b, o, nranks, false);
  if (mbs >= 1 && !p->have[REF_B] && o->log)
    fprintf(o->log, "tune: the second reference layout (mbs=%d) cannot be planned; no per-kernel fit\n", mbs);
  snprintf(z->sub, sizeof z->sub, "%s/c", p->dir);
  snprintf(z->fix, sizeof z->fix, "dp=%d,tp=1,pp=1,sp=1,vpp=1,zero=3,recompute=none,mbs=%d", nranks, a->mbs);
  p->have[REF_C] = nranks > 1 && reference(p, z, o, nranks, false);
  snprintf(z2->sub, sizeof z2->sub, "%s/d", p->dir);
  snprintf(z2->fix, sizeof z2->fix, "dp=%d,tp=1,pp=1,sp=1,vpp=1,zero=2,recompute=none,mbs=%d", nranks, a->mbs);
  p->have[REF_D] = nranks > 1 && reference(p, z2, o, nranks, false);
  double all = 0; /* the rounds: as tune --plans measures a layout, but 2 at least */
  for (int i = 0; i < NREF; i++) all += p->have[i] ? p->r[i].run_s : 0;
  p->rounds = o->quick ? 1 : all < 2.0 ? PROBE_ROUNDS : 2;
  return true;
}

static cJSON *step_json(const tn_step *s) {
  static const char *const key[TN_NPHASE] = {"forward_s", "backward_s", "optimizer_s", "exposed_comm_s", "bubble_s"};
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "step_s", s->step_s);
  for (int i = 0; i < TN_NPHASE; i++) cJSON_AddNumberToObject(j, key[i], s->phase[i] > 0 ? s->phase[i] : 0);
  return j;
}

/* ratio: measured over predicted, within the reader's range; 1 without both */
static double ratio(double meas, double pred) {
  return meas > 0 && pred > 0 ? fmin(100, fmax(0.01, meas / pred)) : 1;
}

/* round_step: round k of r's run: *m its trace's phases scaled to its
 * median logged step (the traced steps' split of it); that step, or -1 */
static double round_step(const ref *r, int k, tn_step *m) {
  char path[128];
  snprintf(path, sizeof path, "%s/trace%d.json", r->sub, k);
  if (!tn_measured_trace(path, m)) return -1;
  snprintf(path, sizeof path, "%s/run%d.jsonl", r->sub, k);
  double med = tn_step_median(path, r->tokens), sum = 0;
  for (int i = 0; i < TN_NPHASE; i++) sum += m->phase[i];
  if (!(med > 0) || !(sum > 0)) return -1;
  for (int i = 0; i < TN_NPHASE; i++) m->phase[i] *= med / sum;
  return med;
}

/* measured: r's plans and its rounds read back: the fastest round's step,
 * split as its phases (tn_best_round: tune --plans's rule) */
static bool measured(ref *r, int rounds) {
  char path[128];
  const char *plans[3] = {"plan0", "plan1", "plan2"};
  tn_step *ps[3] = {&r->p0, &r->p1, &r->p2};
  memset(&r->p2, 0, sizeof r->p2); /* without its plan (1 rank, or B): no all-reduce */
  for (int i = 0; i < (r->comm ? 3 : 2); i++) {
    snprintf(path, sizeof path, "%s/%s.json", r->sub, plans[i]);
    if (!tn_predicted(path, ps[i])) return false;
  }
  double st[PROBE_ROUNDS];
  tn_step ms[PROBE_ROUNDS];
  int n = 0;
  for (int k = 0; k < rounds; k++)
    if ((st[n] = round_step(r, k, &ms[n])) > 0) n++;
  if (n == 0) return false;
  int b = tn_best_round(st, n);
  r->m = ms[b], r->m.step_s = st[b];
  return true;
}

/* kernels: the kernels the planner counts in pass ph of r's step */
static double kernels(const ref *r, int ph) { return fmax(0, (r->p1.phase[ph] - r->p0.phase[ph]) / PROBE_KERNEL_S); }

static double residual(int n, const double *y, const double *x, const double *z, double s, double k) {
  double r = 0;
  for (int i = 0; i < n; i++) r += (y[i] - s * x[i] - k * z[i]) * (y[i] - s * x[i] - k * z[i]);
  return r;
}

/* fit: y_i = s x_i + k z_i over the n (1 or 2) points with k >= 0 and s
 * in [lo, hi]: exact through two points when that holds, else the better
 * (least squares) of k = 0 and of s at the bound the exact fit crossed */
static void fit(int n, const double *y, const double *x, const double *z, double lo, double hi, double *s,
                double *k) {
  double det = n == 2 ? x[0] * z[1] - x[1] * z[0] : 0, sxx = 0, sxy = 0, szz = 0, szy = 0;
  *s = lo - 1, *k = -1;
  if (fabs(det) > 1e-9 * (fabs(x[0] * z[1]) + fabs(x[1] * z[0])))
    *s = (y[0] * z[1] - y[1] * z[0]) / det, *k = (x[0] * y[1] - x[1] * y[0]) / det;
  if (*k >= 0 && *s >= lo && *s <= hi) return;
  double bound = *s > hi ? hi : lo;
  for (int i = 0; i < n; i++) sxx += x[i] * x[i], sxy += x[i] * y[i], szz += z[i] * z[i], szy += z[i] * (y[i] - bound * x[i]);
  double s0 = fmin(hi, fmax(lo, sxx > 0 && sxy > 0 ? sxy / sxx : 1)); /* k = 0 */
  double k1 = szz > 0 && szy > 0 ? szy / szz : 0;                     /* s at the bound */
  bool first = residual(n, y, x, z, s0, 0) <= residual(n, y, x, z, bound, k1);
  *s = first ? s0 : bound, *k = first ? 0 : k1;
}

static void add_ref(cJSON *ex, const char *key, const ref *r) {
  char name[128];
  snprintf(name, sizeof name, "%s", r->fix);
  for (char *c = name; *c; c++) *c = *c == ',' ? ' ' : *c;
  cJSON *s = cJSON_AddObjectToObject(ex, key);
  cJSON_AddStringToObject(s, "reference", name);
  cJSON_AddNumberToObject(s, "steps", r->steps);
  cJSON_AddItemToObject(s, "measured", step_json(&r->m));
  cJSON_AddItemToObject(s, "predicted", step_json(&r->p0));
}

/* the executor section's fitted terms */
typedef struct {
  double scale[2], kernel_s[2]; /* [TN_FWD], [TN_BWD] */
  double opt, opt_kernel_s, per_step, per_micro;
} terms;

/* coll_latency: what each data-parallel collective of the ZeRO-3
 * reference C cost beyond the model: its measured step less the step the
 * fitted terms predict for it (its rooflines scaled, A's kernel counts at
 * the per-kernel costs: the same micro-batch, idle time, its predicted
 * communication: the rooflines' plan's, one gather per micro-batch), over
 * the collective slices of its trace; 0 without it. Not against the
 * planner's own prediction of C (zero12_wait): that counts tune's in-step
 * latency once per parameter gather, and that micro-benchmark swings from
 * 20 us to over 500 us on a loaded machine; at 563 us (23:57) C's
 * prediction exceeded its measurement, the wait came out 0, and with it the
 * wait of every tp activation all-to-all: the planner then chose a
 * sequence-split tp=2 plan of tiny GPT-2 with 14 all-to-alls a pass,
 * predicted 2.33 ms and measured 5.1. */
static double coll_latency(const ref *z, const ref *a, const terms *t) {
  if (!(z->m.colls >= 1)) return 0;
  double model = t->per_step + t->per_micro * z->micro + t->opt * z->p0.phase[TN_OPT] + t->opt_kernel_s * z->m.opt_calls +
                 fmax(0, z->p0.phase[TN_COMM]);
  for (int ph = TN_FWD; ph <= TN_BWD; ph++) model += t->scale[ph] * z->p0.phase[ph] + t->kernel_s[ph] * kernels(a, ph);
  return fmin(1, fmax(0, (z->m.step_s - model) / z->m.colls));
}

/* zero12_wait: what each collective of the ZeRO-2 reference D cost beyond
 * the model: its measured step less the planner's prediction of it with
 * every other fitted term (the executor section ex, written with the
 * calibration as calib5.json: the reduce-scatter per micro-batch and the
 * gather after the update as sbpc's executor runs them), over the
 * collective slices of its trace; 0 without them. (coll_latency's
 * rooflines' plan counts ZeRO-2's reduce-scatter once a step and its
 * gather as overlapped: their time would go into the wait, and the planner
 * would count it again.) */
static double zero12_wait(const probe *p, const ref *z, const tn_opts *o, int nranks) {
  char path[128];
  tn_step q;
  snprintf(path, sizeof path, "%s/plan5.json", z->sub);
  if (!(z->m.colls >= 1) || !plan(p, z, o, nranks, 5) || !tn_predicted(path, &q)) return 0;
  return fmin(1, fmax(0, (z->m.step_s - q.step_s) / z->m.colls));
}

/* fit_optimizer: optimizer = optimizer_scale * R_opt + optimizer_kernel_s *
 * its calls (one per parameter tensor), through A and C (ZeRO-3: every call
 * on a 1/dp slice); A's ratio alone without C. One scale does not price a
 * shard: tiny GPT-2's AdamW on half of every tensor (ZeRO-1/2, dp=2) took
 * 0.82-0.95 of the whole tensors' time, where the roofline halves (in place
 * 1.3-1.7 ns an element, on hot copies of the same data 0.77: the state
 * comes from memory cold; AMD EPYC, 2 cores). */
static void fit_optimizer(const probe *p, terms *t) {
  const ref *a = &p->r[REF_A], *c = &p->r[REF_C];
  t->opt = ratio(a->m.phase[TN_OPT], a->p0.phase[TN_OPT]), t->opt_kernel_s = 0;
  if (!p->have[REF_C] || !(a->p0.phase[TN_OPT] > 0) || !(c->p0.phase[TN_OPT] > 0)) return;
  double y[2] = {a->m.phase[TN_OPT], c->m.phase[TN_OPT]}, x[2] = {a->p0.phase[TN_OPT], c->p0.phase[TN_OPT]};
  double z[2] = {a->m.opt_calls, c->m.opt_calls};
  fit(2, y, x, z, 0.01, 100, &t->opt, &t->opt_kernel_s);
  t->opt_kernel_s = fmin(1, t->opt_kernel_s);
}

/* fit_terms: per pass over A and B (B when measured), idle time, optimizer */
static void fit_terms(const probe *p, terms *t) {
  const ref *a = &p->r[REF_A];
  int n = p->have[REF_B] ? 2 : 1;
  double y[2], x[2], z[2], one[2] = {1, 1};
  for (int ph = TN_FWD; ph <= TN_BWD; ph++) {
    for (int i = 0; i < n; i++) y[i] = p->r[i].m.phase[ph], x[i] = p->r[i].p0.phase[ph], z[i] = kernels(&p->r[i], ph);
    fit(n, y, x, z, 0.01, 100, &t->scale[ph], &t->kernel_s[ph]);
    t->kernel_s[ph] = fmin(1, t->kernel_s[ph]);
  }
  for (int i = 0; i < n; i++) /* idle = per_step * 1 + per_micro * M */
    y[i] = fmax(0, p->r[i].m.phase[TN_BUBBLE] - fmax(0, p->r[i].p0.phase[TN_BUBBLE])), z[i] = p->r[i].micro;
  fit(n, y, one, z, 0, 3600, &t->per_step, &t->per_micro);
  if (n == 1) t->per_micro = y[0] / a->micro, t->per_step = 0; /* one point: all of it per micro-batch, as before */
  fit_optimizer(p, t);
}

/* attention_eff: the attention efficiency (attention.flash_eff) at which
 * the planner prices A's attention kernels as A's trace measured them. A is
 * planned at PROBE_FLASH_EFF and at half of it, with memory so fast that
 * every kernel is compute-bound (a loaded machine's measured bandwidth made
 * attention memory-bound at both efficiencies); the planner's attention time
 * then goes as 1 / efficiency, so the difference is its compute time at
 * PROBE_FLASH_EFF. 0 when the plans agree (a runtime whose attention is not
 * priced so) or the trace has no attention kernels. (Tiny GPT-2 on the CPU
 * executor: 65 us a forward call where the default 0.6 priced about 9, so
 * selective recompute was planned at a fifth of what it measured.) */
static double attention_eff(const probe *p, const tn_opts *o, const cJSON *calib, int nranks) {
  const ref *a = &p->r[REF_A];
  char c[128], path[128];
  tn_step q[2];
  for (int i = 0; i < 2; i++) {
    snprintf(c, sizeof c, "%s/calib%d.json", p->dir, 3 + i);
    snprintf(path, sizeof path, "%s/plan%d.json", a->sub, 3 + i);
    if (!write_calib(calib, 0, false, PROBE_FLASH_EFF / (1 + i), c) || !plan(p, a, o, nranks, 3 + i) ||
        !tn_predicted(path, &q[i]))
      return 0;
  }
  double t = q[1].phase[TN_FWD] + q[1].phase[TN_BWD] - q[0].phase[TN_FWD] - q[0].phase[TN_BWD];
  if (!(t > 0) || !(a->m.attn_s > 0)) return 0;
  return fmin(1, fmax(0.01, PROBE_FLASH_EFF * t / a->m.attn_s));
}

/* replan: the references' plans again, with calib's attention efficiency */
static bool replan(probe *p, const tn_opts *o, const cJSON *calib, int nranks) {
  if (!write_calibs(p, calib)) return false;
  for (int i = 0; i < NREF; i++) {
    const ref *r = &p->r[i];
    if (p->have[i] && !(plan(p, r, o, nranks, 0) && plan(p, r, o, nranks, 1) && (!r->comm || plan(p, r, o, nranks, 2)))) {
      if (i == REF_A) return false;
      p->have[i] = false;
    }
  }
  return true;
}

/* latencies: ex's waits per ZeRO collective: coll_latency_s from C, then
 * zero12_latency_s from D against the plan with the rest of ex */
static void latencies(const probe *p, const tn_opts *o, const cJSON *calib, cJSON *ex, const terms *t, int nranks) {
  char path[128];
  if (p->have[REF_C]) cJSON_AddNumberToObject(ex, "coll_latency_s", coll_latency(&p->r[REF_C], &p->r[REF_A], t));
  snprintf(path, sizeof path, "%s/calib5.json", p->dir);
  cJSON *c = cJSON_Duplicate(calib, 1), *e = cJSON_Duplicate(ex, 1);
  cJSON_AddNumberToObject(e, "zero12_latency_s", 0); /* D planned without a ZeRO-1/2 wait, not with C's */
  cJSON_AddItemToObject(c, "executor", e);
  bool ok = !tn_write_json(c, path);
  cJSON_Delete(c);
  if (ok && p->have[REF_D]) cJSON_AddNumberToObject(ex, "zero12_latency_s", zero12_wait(p, &p->r[REF_D], o, nranks));
}

/* derive: the executor section (and attention.flash_eff) from the
 * references' plans and runs */
static bool derive(probe *p, const tn_opts *o, cJSON *calib, int nranks) {
  if (!measured(&p->r[REF_A], p->rounds)) return false;
  double eff = attention_eff(p, o, calib, nranks);
  if (eff > 0) { /* price attention as measured, then fit the rest */
    set_flash(calib, eff);
    if (o->log) fprintf(o->log, "tune: executor probe: attention at %.3g of the GEMM rate\n", eff);
    if (!replan(p, o, calib, nranks)) return false;
  }
  for (int i = 0; i < NREF; i++)
    if (p->have[i] && !measured(&p->r[i], p->rounds)) {
      if (i == REF_A) return false;
      p->have[i] = false; /* B, C, D: their terms stay out */
    }
  const ref *a = &p->r[REF_A];
  terms t;
  fit_terms(p, &t);
  cJSON *ex = cJSON_CreateObject();
  char name[96];
  snprintf(name, sizeof name, "dp=%d tp=1 pp=1 zero=0 recompute=none mbs=%d x%d", nranks, a->mbs, a->micro);
  cJSON_AddStringToObject(ex, "reference", name);
  cJSON_AddStringToObject(ex, "fix", a->fix);
  cJSON *m = cJSON_AddObjectToObject(ex, "model"); /* what tune --plans re-runs it for (autotune.c drift) */
  cJSON_AddStringToObject(m, "name", a->model);
  cJSON_AddNumberToObject(m, "params", a->params);
  cJSON_AddNumberToObject(m, "global_batch", (double)a->batch);
  cJSON_AddNumberToObject(m, "seq", (double)a->seq);
  cJSON_AddNumberToObject(m, "devices", nranks);
  cJSON_AddNumberToObject(ex, "steps", a->steps);
  cJSON_AddNumberToObject(ex, "forward_scale", t.scale[TN_FWD]);
  cJSON_AddNumberToObject(ex, "backward_scale", t.scale[TN_BWD]);
  cJSON_AddNumberToObject(ex, "optimizer_scale", t.opt);
  cJSON_AddNumberToObject(ex, "optimizer_kernel_s", t.opt_kernel_s);
  if (nranks > 1 && a->p2.phase[TN_COMM] > 0) /* the gradient all-reduce alone, nothing overlapped */
    cJSON_AddNumberToObject(ex, "dp_comm_scale", fmin(1000, fmax(0.01, a->m.phase[TN_COMM] / a->p2.phase[TN_COMM])));
  cJSON_AddNumberToObject(ex, "forward_kernel_s", t.kernel_s[TN_FWD]);
  cJSON_AddNumberToObject(ex, "backward_kernel_s", t.kernel_s[TN_BWD]);
  cJSON_AddNumberToObject(ex, "kernels_per_step", kernels(a, TN_FWD) + kernels(a, TN_BWD));
  cJSON_AddNumberToObject(ex, "micro_overhead_s", fmin(3600, fmax(0, t.per_micro)));
  cJSON_AddNumberToObject(ex, "step_overhead_s", fmin(3600, fmax(0, t.per_step)));
  latencies(p, o, calib, ex, &t, nranks);
  cJSON_AddItemToObject(ex, "measured", step_json(&a->m));
  cJSON_AddItemToObject(ex, "predicted", step_json(&a->p0));
  if (p->have[REF_B]) add_ref(ex, "second", &p->r[REF_B]);
  if (p->have[REF_C]) add_ref(ex, "zero3", &p->r[REF_C]);
  if (p->have[REF_D]) add_ref(ex, "zero2", &p->r[REF_D]);
  cJSON_AddItemToObject(calib, "executor", ex);
  return true;
}

/* run_once: every rank runs r's program with a log and a trace (round k's) */
static int run_once(const tn_opts *o, const ref *r, int k) {
  char prog[128], log[128], trace[128];
  snprintf(prog, sizeof prog, "%s/program", r->sub), snprintf(log, sizeof log, "%s/run%d.jsonl", r->sub, k);
  snprintf(trace, sizeof trace, "%s/trace%d.json", r->sub, k);
  return o->run_program(prog, r->steps, log, trace, tn_traced_steps(r->steps));
}

/* run: run_once, and again (PROBE_RERUNS times at most) while its median
 * step is more than PROBE_SPREAD over its fastest (tn_step_spread): a
 * reference measured while other work took the machine fits every term to
 * that work (GPT-2 small's A, 5 steps, two of them at 0.6 and 0.35 of the
 * others' speed: forward_kernel_s 3.5 ms, every layout then predicted
 * 45-54 % slow) */
static int run(const tn_opts *o, const ref *r, int rank, int k) {
  int rc = run_once(o, r, k);
  for (int t = 0; t < PROBE_RERUNS && !rc; t++) {
    char path[128], again = 0;
    snprintf(path, sizeof path, "%s/run%d.jsonl", r->sub, k);
    double sp = rank == 0 ? tn_step_spread(path) : 0;
    again = sp > PROBE_SPREAD;
    tn_mpi_bcast(&again, 1);
    if (!again) break;
    if (rank == 0 && o->log)
      fprintf(o->log, "tune: executor probe: its median step %.0f %% over its fastest; again\n", 100 * (sp - 1));
    rc = run_once(o, r, k);
  }
  return rc;
}

/* runs: every reference p->rounds times, interleaved, every other round in
 * reverse (A B C D D C B A ...): the machine's drift over the probe (GPT-2
 * small's A, run first, measured 5.55 s a step and C, run last, 4.55: ZeRO-3
 * faster than ZeRO-0) falls on each reference alike. Non-zero when A could
 * not run; a reference that fails is dropped. */
static int runs(const tn_opts *o, probe *p, int rank) {
  for (int k = 0; k < p->rounds; k++)
    for (int j = 0; j < NREF; j++) {
      int i = k % 2 ? NREF - 1 - j : j;
      if (!p->have[i]) continue;
      if (rank == 0 && o->log)
        fprintf(o->log, "tune: executor probe: %s (%d steps, round %d of %d)\n", p->r[i].fix, p->r[i].steps, k + 1,
                p->rounds);
      if (run(o, &p->r[i], rank, k) == 0) continue;
      if (i == REF_A) return 1;
      p->have[i] = false; /* its terms stay out */
    }
  return 0;
}

void tn_probe(const tn_opts *o, void *calib, int rank, int nranks) {
  probe p;
  memset(&p, 0, sizeof p);
  snprintf(p.dir, sizeof p.dir, "/tmp/sbpc-tune-probe-XXXXXX");
  char ok = rank == 0 ? prepare(&p, o, calib, nranks) : 0;
  if (rank == 0 && o->log) fprintf(o->log, "tune: executor probe in %s\n", p.dir);
  tn_mpi_bcast(&ok, 1);
  if (!ok) {
    if (rank == 0) sbpc_warn("tune: the model's reference program could not be planned or compiled (see %s); "
                             "no executor section", p.dir);
    tn_mpi_finalize();
    return;
  }
  tn_mpi_bcast(&p, sizeof p); /* the references' directories and steps */
  tn_child_env(PROBE_LIMIT_S);
  int rc = runs(o, &p, rank);
  tn_mpi_finalize();
  if (rank != 0) return;
  if (rc || !derive(&p, o, calib, nranks))
    sbpc_warn("tune: the executor probe failed (see %s); no executor section", p.dir);
}
