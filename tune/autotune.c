/* autotune.c — `sbpc tune --plans K MODEL.sbp`: autotune layouts by
 * measurement, and check the cost model against the executor layout by
 * layout.
 *
 * Every step is a child process of this same executable (posix_spawn,
 * killed past a time limit): `sbpc plan MODEL --top K` for the planner's K
 * best layouts on the measuring cluster (default cpu:N), then for each
 * layout `sbpc plan --fix` (every knob) for its whole plan (per-op SBP,
 * per-stage forward and backward, breakdown, memory), then `[mpirun -np N]
 * sbpc run MODEL --plan LAYOUT.json --steps S --log --trace`: the executor
 * runs exactly that plan, for --steps S, else for as many steps as the
 * layout's predicted step time fits in MEASURE_S (at least STEPS_MIN, at
 * most STEPS_MAX): a 4 ms tiny-GPT-2 step measured over 9 steps varied by
 * 15 % from run to run, over 29 by a few. The measured step is the median
 * of the logged steps after the first; the phases come from the trace of
 * those steps (up to TRACED_MAX of the last, the middle half by length;
 * phases.c); the peak memory per rank from the run's "peak memory per rank"
 * line. Over rounds: the fastest round's step and phases (tn_best_round).
 *
 * Which layouts run: in the planner's order, the best first; the model's
 * error e is the largest relative error of the layouts measured so far, and
 * a layout runs only while its prediction could still be the fastest, pred
 * < best_pred (1 + e) / (1 - e) (each prediction within e of the truth);
 * --all runs all K. Layouts that differ only in what the executor does not
 * tell apart share one run. The report says how many runs that saved.
 * When the calibration has no executor probe of this model and shape (it
 * was made without --model, or for another model), tune extends it first
 * (with_probe: `sbpc tune --from CAL --model MODEL`, under mpirun) and
 * plans with that; --no-probe plans with the calibration as it is.
 * When the calibration's probe ran this model and shape, its reference
 * layout runs again before each round (drift_ref), and the predictions are
 * the calibration's scaled by its step now over its step in the probe
 * (rescale: its first round while choosing, in the report its fastest
 * round, with the rounds of a layout that is the same program: pool_ref):
 * the machine's speed moves between a calibration and the runs
 * (this VM: -14 to +26 % within minutes, a spell of another tenant's load),
 * and the model's error is what remains. The report's last line gives the
 * scale and the errors of the calibration's predictions as they were.
 * Children of mpirun under root get Open MPI's run-as-root and
 * oversubscription switches, and a communication timeout as long as the
 * child limit (a loaded machine is slow, not hung). */
#include "tune/tn_int.h"
#include "format/sbpc_plan.h"
#include "planner/planner.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXK 16

enum { NOT_RUN, MEASURED, FAILED, SKIPPED, SHARED, CANNOT };

enum { MAXROUNDS = 20 };
typedef struct {
  int dp, tp, pp, sp, vpp, mbs, m, zero, np; /* np: devices the layout uses (ranks to start) */
  char recompute[16];
  tn_step pred, meas;     /* meas: the fastest round's step and phases, the largest peak */
  double cal_s;           /* the calibration's step before the drift scaled pred (rescale) */
  int state, same;
  double round_s[MAXROUNDS]; /* each round's median step */
  double round_ph[MAXROUNDS][TN_NPHASE]; /* and its trace's phases */
  int nround;
} layout;

typedef struct {
  const tn_autotune_opts *o;
  const char *cal;        /* the calibration planned with: o->calibration, or its extension */
  char exe[4096], dir[64], extended[96];
  long batch, seq;
  char model[64];         /* the plan's model name and parameters (drift_ref matches them) */
  double params;
} ctx;

int tn_run_child(char *const argv[], const char *logpath, double limit_s) {
  /* under mpirun the MPI library may reap children itself (a SIGCHLD
   * handler): the default disposition while this child runs keeps its status */
  struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGCHLD, &dfl, &old);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid, w = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), status = 0;
  posix_spawn_file_actions_destroy(&fa);
  for (double waited = 0; !rc && (w = waitpid(pid, &status, WNOHANG)) == 0; waited += 0.01) {
    if (waited > limit_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      w = -1;
      break;
    }
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  }
  sigaction(SIGCHLD, &old, NULL);
  return !rc && w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* set_knobs: l (cleared) as the plan's layout t */
static void set_knobs(layout *l, const sbpc_plan_top *t) {
  memset(l, 0, sizeof *l);
  l->dp = t->dp, l->tp = t->tp, l->pp = t->pp, l->sp = t->sp, l->vpp = t->vpp;
  l->mbs = t->micro_batch, l->m = t->num_micro_batches, l->zero = t->zero, l->same = -1, l->np = t->devices_used;
  snprintf(l->recompute, sizeof l->recompute, "%s", t->recompute);
}

/* read_top: the planner's top layouts and the training shape, through the
 * one plan reader (format/sbpc_plan.h) */
static int read_top(const char *path, layout *L, int maxk, ctx *c) {
  char err[512];
  sbpc_plan *p = sbpc_plan_read(path, err, sizeof err);
  if (!p) return 0;
  c->batch = p->global_batch, c->seq = p->seq, c->params = p->params;
  snprintf(c->model, sizeof c->model, "%s", p->model_name ? p->model_name : "");
  int n = 0;
  for (int i = 0; i < p->ntop && n < maxk; i++) set_knobs(&L[n++], &p->top[i]);
  sbpc_plan_free(p);
  return n;
}

/* knobs_of: l's knobs from the plan at path (its best layout); false when
 * it does not read */
static bool knobs_of(const char *path, layout *l) {
  char err[512];
  sbpc_plan *p = sbpc_plan_read(path, err, sizeof err);
  bool ok = p && p->ntop > 0;
  if (ok) set_knobs(l, &p->top[0]);
  sbpc_plan_free(p);
  return ok;
}

void tn_child_env(double limit_s) {
  if (geteuid() == 0) { /* Open MPI refuses root unless told; the machine may have fewer cores than ranks */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  char t[32];
  snprintf(t, sizeof t, "%g", limit_s);
  setenv("SBPC_COMM_TIMEOUT", t, 0);
}

/* plan: `sbpc plan MODEL [common options] extra... --json json`, log to log */
static int plan(const ctx *c, const char *json, const char *log, char *const *extra) {
  const tn_autotune_opts *o = c->o;
  char cl[64];
  snprintf(cl, sizeof cl, "cpu:%d", o->np);
  char *argv[32] = {(char *)c->exe, "plan", (char *)o->model, "--cluster", o->cluster ? (char *)o->cluster : cl,
                    "--json", (char *)json};
  int a = 7;
  if (o->batch) argv[a++] = "--batch", argv[a++] = (char *)o->batch;
  if (o->seq) argv[a++] = "--seq", argv[a++] = (char *)o->seq;
  if (c->cal) argv[a++] = "--calibration", argv[a++] = (char *)c->cal;
  for (int i = 0; extra[i]; i++) argv[a++] = extra[i];
  argv[a] = NULL;
  return tn_run_child(argv, log, o->limit_s);
}

static int plan_top(ctx *c, layout *L) {
  char k[16], json[128], log[128];
  snprintf(k, sizeof k, "%d", c->o->k);
  snprintf(json, sizeof json, "%s/plan.json", c->dir);
  snprintf(log, sizeof log, "%s/plan.log", c->dir);
  if (plan(c, json, log, (char *[]){"--top", k, NULL})) {
    sbpc_error("tune: the planner failed (see %s)", log);
    return 0;
  }
  return read_top(json, L, c->o->k < MAXK ? c->o->k : MAXK, c);
}

/* plan_knobs: layout i's own plan under the knobs fix; l (cleared) as that
 * plan's layout, with its prediction */
static bool plan_knobs(const ctx *c, layout *l, int i, const char *fix) {
  char json[128], log[128];
  snprintf(json, sizeof json, "%s/layout%d.json", c->dir, i);
  snprintf(log, sizeof log, "%s/layout%d.log", c->dir, i);
  return !plan(c, json, log, (char *[]){"--fix", (char *)fix, "--top", "1", NULL}) && knobs_of(json, l) &&
         tn_predicted(json, &l->pred);
}

/* plan_one: layout i's own plan (every knob fixed) and its prediction */
static bool plan_one(const ctx *c, layout *l, int i) {
  char fix[160];
  snprintf(fix, sizeof fix, "dp=%d,tp=%d,pp=%d,sp=%d,vpp=%d,mbs=%d,recompute=%s,zero=%d", l->dp, l->tp, l->pp, l->sp,
           l->vpp, l->mbs, l->recompute, l->zero);
  return plan_knobs(c, l, i, fix);
}

/* probed: whether the calibration (loaded into *cal) has the executor
 * probe of this model and training shape, on at most the ranks we run */
static bool probed(const ctx *c, plan_calib *cal) {
  memset(cal, 0, sizeof *cal);
  if (!c->cal || !plan_calib_load(c->cal, cal) || !cal->ref.have) return false;
  return !strcmp(cal->ref.model, c->model) && cal->ref.params == c->params && cal->ref.batch == c->batch &&
         cal->ref.seq == c->seq && cal->ref.devices <= c->o->np;
}

/* with_probe: when the calibration has no executor probe of this model
 * and shape (made without --model, or for another model), extend it:
 * `[mpirun -np N] sbpc tune --from CAL --model MODEL` into the work folder
 * (its measurements kept; the model's GEMM shapes and the probe added),
 * and plan the top layouts again with that. Returns the layouts planned. */
static int with_probe(ctx *c, layout *L, int k) {
  plan_calib cal;
  const tn_autotune_opts *o = c->o;
  if (!c->cal || o->no_probe || probed(c, &cal)) return k;
  char log[128], np[16];
  snprintf(c->extended, sizeof c->extended, "%s/calibration.json", c->dir);
  snprintf(log, sizeof log, "%s/probe.log", c->dir);
  snprintf(np, sizeof np, "%d", o->np);
  fprintf(o->log, "tune: %s has no executor probe of this model (batch %ld, seq %ld, %d ranks): probing it (%s)\n",
          c->cal, c->batch, c->seq, o->np, log);
  char *argv[24] = {"mpirun", "-np", np, (char *)c->exe, "tune", "--from", (char *)c->cal, "--model", (char *)o->model,
                    "-o", c->extended};
  int a = 11;
  if (o->batch) argv[a++] = "--batch", argv[a++] = (char *)o->batch;
  if (o->seq) argv[a++] = "--seq", argv[a++] = (char *)o->seq;
  argv[a] = NULL;
  if (tn_run_child(o->np > 1 ? argv : argv + 3, log, 2 * o->limit_s)) {
    sbpc_warn("tune: the executor probe failed (see %s); the layouts are planned with %s as it is", log, c->cal);
    return k;
  }
  c->cal = c->extended;
  fprintf(o->log, "tune: planning with %s (pass it as --calibration to skip the probe next time)\n", c->cal);
  return plan_top(c, L);
}

/* drift_ref: when the calibration's probe ran this model and shape, its
 * reference layout as L[k] (planned, to run in every round beside the
 * layouts); false otherwise. Its step then against the one the probe
 * measured tells how far the machine's speed moved since the calibration
 * (this VM: 10-25 % within minutes at times), apart from the model's error. */
static bool drift_ref(const ctx *c, layout *L, int k, plan_calib *cal) {
  if (k < 1 || k > MAXK || !probed(c, cal)) return false;
  return plan_knobs(c, &L[k], k, cal->ref.fix); /* its knobs too: pool_ref finds its program among the layouts */
}

/* peak_mib: the largest rank's peak from "peak memory per rank (MiB): a b ... (planned x)" */
static double peak_mib(const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096];
  double mx = -1;
  while (f && fgets(line, sizeof line, f)) {
    const char *p = strstr(line, "peak memory per rank (MiB):");
    if (!p) continue;
    p += strlen("peak memory per rank (MiB):");
    char *end;
    for (double v = strtod(p, &end); end != p; p = end, v = strtod(p, &end)) mx = v > mx ? v : mx;
  }
  if (f) fclose(f);
  return mx;
}

enum { STEPS_MIN = 5, STEPS_MAX = 200, TRACED_MAX = 50 };
#define MEASURE_S 0.25 /* seconds of steps a layout is measured for, by its prediction */

int tn_run_steps(double pred_s) {
  double n = pred_s > 0 ? ceil(MEASURE_S / pred_s) : STEPS_MIN;
  return n < STEPS_MIN ? STEPS_MIN : n > STEPS_MAX ? STEPS_MAX : (int)n;
}

int tn_traced_steps(int steps) { return steps <= 1 ? 1 : steps - 1 > TRACED_MAX ? TRACED_MAX : steps - 1; }

/* run_steps: --steps, else by layout l's predicted step time (the calibration's) */
static int run_steps(const tn_autotune_opts *o, const layout *l) {
  return o->steps > 0 ? o->steps : tn_run_steps(l->cal_s);
}

/* rounds: --rounds, else 5 when layout l's run is predicted under 2 s, 2
 * under a minute (one GPT-2 small round of 5 steps is ~30 s here: a single
 * round missed by 16-23 % in 2 of 3 cycles), else 1. Five, not three: a
 * launch of tiny GPT-2 on this VM runs its kernels 20-25 % slow now and
 * then (forward GEMMs 12.4-13.4 us against 10.4-10.9, AMD EPYC, 2 cores),
 * and one cycle's reference drew such launches in all of its three rounds;
 * the fastest of five needs one good launch of five. */
static int rounds(const tn_autotune_opts *o, const layout *l) {
  if (o->rounds > 0) return o->rounds < MAXROUNDS ? o->rounds : MAXROUNDS;
  double run_s = run_steps(o, l) * l->cal_s;
  return run_s < 2.0 ? 5 : run_s < 60.0 ? 2 : 1;
}

/* measure: round r of layout i: its median step, trace phases and peak
 * memory into l (the first round sets them, later ones add to them) */
static void measure(const ctx *c, layout *l, int i, int r) {
  const tn_autotune_opts *o = c->o;
  char json[128], jl[128], lg[128], tr[128], np[16], steps[16], traced[16], rs[16] = "";
  if (r > 0) snprintf(rs, sizeof rs, "-r%d", r + 1);
  snprintf(json, sizeof json, "%s/layout%d.json", c->dir, i);
  snprintf(jl, sizeof jl, "%s/run%d%s.jsonl", c->dir, i, rs);
  snprintf(lg, sizeof lg, "%s/run%d%s.log", c->dir, i, rs);
  snprintf(tr, sizeof tr, "%s/trace%d%s.json", c->dir, i, rs);
  snprintf(np, sizeof np, "%d", l->np);
  snprintf(steps, sizeof steps, "%d", run_steps(o, l));
  snprintf(traced, sizeof traced, "%d", tn_traced_steps(run_steps(o, l)));
  char *run[] = {(char *)c->exe, "run", (char *)o->model, "--plan", json, "--steps", steps, "--log", jl,
                 "--trace", tr, "--trace-steps", traced, NULL};
  char *mpi[24] = {"mpirun", "-np", np};
  for (int k = 0; run[k]; k++) mpi[3 + k] = run[k];
  int rc = tn_run_child(l->np > 1 ? mpi : run, lg, o->limit_s);
  double st = rc ? -1 : tn_step_median(jl, (double)c->batch * c->seq);
  tn_step m;
  if (!(st > 0) || !tn_measured_trace(tr, &m)) {
    if (r == 0) l->state = FAILED;
    fprintf(o->log, "tune: layout %d did not run (see %s)\n", i + 1, lg);
    return;
  }
  if (r == 0) l->state = MEASURED, l->nround = 0, memset(&l->meas, 0, sizeof l->meas);
  memcpy(l->round_ph[l->nround], m.phase, sizeof m.phase);
  l->meas.mem_bytes = fmax(l->meas.mem_bytes, peak_mib(lg) * 1048576.0);
  l->round_s[l->nround++] = st;
}

/* finish: each measured layout's step and phases its fastest round's */
static void finish(layout *L, int k) {
  for (int i = 0; i < k; i++) {
    layout *l = &L[i];
    if (l->state != MEASURED || l->same >= 0 || l->nround < 1) continue;
    int b = tn_best_round(l->round_s, l->nround);
    l->meas.step_s = l->round_s[b];
    memcpy(l->meas.phase, l->round_ph[b], sizeof l->meas.phase);
  }
  for (int i = 0; i < k; i++)
    if (L[i].state == MEASURED && L[i].same >= 0) L[i].meas = L[L[i].same].meas, L[i].nround = L[L[i].same].nround;
}

/* more_rounds: the measured layouts' further rounds, interleaved (round 2
 * of every layout, then round 3, ...), so a machine whose speed drifts
 * over a minute slows them alike */
static void more_rounds(const ctx *c, layout *L, int k, bool ref) {
  int most = 1;
  for (int i = 0; i < k; i++) most = L[i].state == MEASURED && rounds(c->o, &L[i]) > most ? rounds(c->o, &L[i]) : most;
  for (int r = 1; r < most; r++) {
    if (ref && L[k].state == MEASURED) measure(c, &L[k], k, r); /* the drift reference, before each round */
    for (int i = 0; i < k; i++)
      if (L[i].state == MEASURED && L[i].same < 0 && r < rounds(c->o, &L[i])) {
        fprintf(c->o->log, "tune: measuring layout %d of %d, round %d of %d\n", i + 1, k, r + 1, rounds(c->o, &L[i]));
        measure(c, &L[i], i, r);
      }
  }
}

/* same_prog: whether the executor runs layouts a and b identically */
static bool same_prog(const layout *a, const layout *b) {
  return a->np == b->np && a->dp == b->dp && a->tp == b->tp && a->pp == b->pp && a->sp == b->sp &&
         a->vpp == b->vpp && a->m == b->m && a->zero == b->zero && !strcmp(a->recompute, b->recompute);
}

/* same_run: an earlier measured layout the executor runs identically, or -1 */
static int same_run(const layout *L, int i) {
  for (int j = 0; j < i; j++)
    if (L[j].state == MEASURED && same_prog(&L[j], &L[i])) return j;
  return -1;
}

/* pool_ref: when one of the k layouts is the reference L[k]'s program, its
 * rounds are more rounds of the reference: the reference's step now is the
 * fastest of them all. A GPT-2 small run spreads +-5 % step to step, and
 * the reference's own two rounds ran 5.3 % slower than the same program's
 * as layout 4 a minute later (cycle g1 of 2026-12-08 04:26, AMD EPYC):
 * the drift read +10.6 % where the pooled rounds read +5.1 %. */
static void pool_ref(layout *L, int k) {
  for (int i = 0; i < k && L[k].same < 0; i++)
    if (L[i].state == MEASURED && same_prog(&L[i], &L[k])) {
      L[k].same = i; /* the drift line names it */
      L[k].meas.step_s = fmin(L[k].meas.step_s, L[i].meas.step_s);
    }
}

static double rel(double pred, double meas) { return meas > 0 && pred >= 0 ? (pred - meas) / meas : NAN; }

/* model_error: the largest |relative step error| of the measured layouts */
static double model_error(const layout *L, int n) {
  double e = 0;
  for (int i = 0; i < n; i++)
    if (L[i].state == MEASURED) e = fmax(e, fabs(rel(L[i].pred.step_s, L[i].meas.step_s)));
  return e;
}

/* may_win: layout i's prediction could still be the fastest given error e */
static bool may_win(const layout *L, int i, double best_pred, double e) {
  return e >= 1 || L[i].pred.step_s < best_pred * (1 + e) / (1 - e);
}

static void describe(const layout *l, char *d, size_t n) {
  snprintf(d, n, "dp=%d tp=%d pp=%d sp=%d vpp=%d mbs=%d x%d %s z%d", l->dp, l->tp, l->pp, l->sp, l->vpp, l->mbs,
           l->m, l->recompute, l->zero);
}

static void report_rows(FILE *f, const layout *L, int n) {
  fprintf(f, "%-3s %-44s %11s %11s %8s %10s %10s %8s\n", "#", "layout", "predicted s", "measured s", "error",
          "pred MiB", "meas MiB", "error");
  for (int i = 0; i < n; i++) {
    const layout *l = &L[i];
    char d[96];
    describe(l, d, sizeof d);
    fprintf(f, "%-3d %-44s %11.4g", i + 1, d, l->pred.step_s);
    if (l->state != MEASURED) {
      static const char *why[] = {"not run", "", "failed", "skipped", "", "cannot run"};
      fprintf(f, " %11s %8s %10.1f\n", why[l->state], "", l->pred.mem_bytes / 1048576.0);
      continue;
    }
    fprintf(f, " %11.4g %+7.1f%% %10.1f %10.1f %+7.1f%%\n", l->meas.step_s, 100 * rel(l->pred.step_s, l->meas.step_s),
            l->pred.mem_bytes / 1048576.0, l->meas.mem_bytes / 1048576.0,
            100 * rel(l->pred.mem_bytes, l->meas.mem_bytes));
  }
}

static void report_phases(FILE *f, const layout *L, int n) {
  fprintf(f, "phases of one step, seconds, predicted / measured (the fastest round's traced steps):\n%-3s", "#");
  for (int k = 0; k < TN_NPHASE; k++) fprintf(f, " %21s", tn_phase_names[k]);
  fputc('\n', f);
  for (int i = 0; i < n; i++) {
    if (L[i].state != MEASURED) continue;
    fprintf(f, "%-3d", i + 1);
    for (int k = 0; k < TN_NPHASE; k++) fprintf(f, "  %9.4g / %-9.4g", L[i].pred.phase[k], L[i].meas.phase[k]);
    fputc('\n', f);
  }
}

static void report_summary(FILE *f, const layout *L, int n, int runs) {
  int best = -1, nm = 0;
  double es = 0, em = 0, ms = 0, mm = 0;
  for (int i = 0; i < n; i++) {
    if (L[i].state != MEASURED) continue;
    double e = fabs(rel(L[i].pred.step_s, L[i].meas.step_s)), m = fabs(rel(L[i].pred.mem_bytes, L[i].meas.mem_bytes));
    es += e, em = fmax(em, e), nm++;
    if (!isnan(m)) ms += m, mm = fmax(mm, m);
    if (best < 0 || L[i].meas.step_s < L[best].meas.step_s) best = i;
  }
  if (best < 0) return;
  fprintf(f, "fastest measured: #%d (%.4g s/step, planner's rank %d)", best + 1, L[best].meas.step_s, best + 1);
  if (best > 0 && L[0].state == MEASURED)
    fprintf(f, "; the planner's first is %+.1f%% slower, %s its stated error", 100 * rel(L[0].meas.step_s, L[best].meas.step_s),
            L[0].meas.step_s <= L[best].meas.step_s * (1 + em) ? "within" : "outside");
  else if (best > 0)
    fprintf(f, "; the planner's first was not measured");
  fprintf(f, "\nprediction error over %d layouts: step time mean %.1f%%, max %.1f%%; peak memory mean %.1f%%, max %.1f%%\n",
          nm, 100 * es / nm, 100 * em, 100 * ms / nm, 100 * mm);
  int lo = MAXROUNDS, hi = 0;
  for (int i = 0; i < n; i++)
    if (L[i].state == MEASURED && L[i].same < 0) lo = L[i].nround < lo ? L[i].nround : lo, hi = L[i].nround > hi ? L[i].nround : hi;
  fprintf(f, "runs: %d of %d layouts run with the executor (%d saved)", runs, n, n - runs);
  if (hi > 1 && lo == hi) fprintf(f, ", %d rounds each, interleaved: the fastest round", hi);
  else if (hi > 1) fprintf(f, ", %d to %d rounds each, interleaved: the fastest round", lo, hi);
  fputc('\n', f);
}

/* report_drift: the calibration's reference now against when calibrated
 * (the scale of the predictions above), and the layouts' errors with the
 * calibration's predictions as they were */
static void report_drift(FILE *f, const layout *L, int k, const plan_calib *cal) {
  const layout *r = &L[k];
  if (r->state != MEASURED || !(r->meas.step_s > 0)) return;
  double d = r->meas.step_s / cal->ref.step_s, es = 0, em = 0;
  int n = 0;
  for (int i = 0; i < k; i++)
    if (L[i].state == MEASURED) {
      double e = fabs(rel(L[i].cal_s, L[i].meas.step_s));
      es += e, em = fmax(em, e), n++;
    }
  fprintf(f, "machine drift: the calibration's reference (%s) ran %.4g s a step when calibrated, %.4g s now",
          cal->ref.fix, cal->ref.step_s, r->meas.step_s);
  if (r->same >= 0) fprintf(f, " (its rounds and those of #%d, the same program)", r->same + 1);
  fprintf(f, " (%+.1f%%): the predictions above are the calibration's scaled by it", 100 * (d - 1));
  if (n) fprintf(f, "; unscaled, the step error is mean %.1f%%, max %.1f%%", 100 * es / n, 100 * em);
  fputc('\n', f);
}

/* rescale: every prediction's time (step and phases) to the calibration's
 * times `by` (the reference's step now over its step when calibrated) */
static void rescale(layout *L, int k, double by) {
  for (int i = 0; i < k && by > 0 && isfinite(by); i++) {
    if (!(L[i].cal_s > 0) || !(L[i].pred.step_s > 0)) continue;
    double was = L[i].pred.step_s / L[i].cal_s;
    L[i].pred.step_s = L[i].cal_s * by;
    for (int p = 0; p < TN_NPHASE; p++) L[i].pred.phase[p] *= by / was;
  }
}

/* choose_and_run: measure layouts in the planner's order while they may win */
static int choose_and_run(const ctx *c, layout *L, int k) {
  int runs = 0;
  for (int i = 0; i < k; i++) {
    if (L[i].state == CANNOT) continue;
    double e = model_error(L, i);
    if (!c->o->all && runs > 0 && !may_win(L, i, L[0].pred.step_s, e)) {
      L[i].state = SKIPPED;
      fprintf(c->o->log, "tune: layout %d skipped: predicted %.4g s is outside the model's error (%.1f%%) of the best\n",
              i + 1, L[i].pred.step_s, 100 * e);
      continue;
    }
    int same = same_run(L, i);
    if (same >= 0) { /* the same executor run: share it */
      L[i].meas = L[same].meas, L[i].state = MEASURED, L[i].same = same;
      fprintf(c->o->log, "tune: layout %d runs as layout %d (the executor does not tell them apart)\n", i + 1, same + 1);
      continue;
    }
    fprintf(c->o->log, "tune: measuring layout %d of %d (%d steps)\n", i + 1, k, run_steps(c->o, &L[i]));
    measure(c, &L[i], i, 0);
    L[i].meas.step_s = L[i].nround ? L[i].round_s[0] : -1; /* the model's error so far: first rounds */
    runs++;
  }
  return runs;
}

int tn_autotune(const tn_autotune_opts *o) {
  ctx c = {o, o->calibration, "", "/tmp/sbpc-autotune-XXXXXX", "", 0, 0, "", 0};
  ssize_t n = readlink("/proc/self/exe", c.exe, sizeof c.exe - 1);
  if (n <= 0 || !mkdtemp(c.dir)) {
    sbpc_error("tune: cannot find sbpc or make a work folder");
    return 1;
  }
  c.exe[n] = 0;
  tn_child_env(o->limit_s);
  layout L[MAXK + 1]; /* + the drift reference */
  char launch[32] = ""; /* how the calibration would be measured on --np ranks */
  if (o->np > 1) snprintf(launch, sizeof launch, "mpirun -np %d ", o->np);
  if (!c.cal)
    fprintf(o->log, "tune: no calibration: the predictions are the cluster preset's rates, not this machine's "
                    "(`%ssbpc tune -o calib.json`, then --calibration calib.json)\n", launch);
  int k = plan_top(&c, L);
  if (k > 0) k = with_probe(&c, L, k);
  if (k == 0 || c.batch <= 0 || c.seq <= 0) {
    sbpc_error("tune: no layouts to measure (work folder %s)", c.dir);
    return 1;
  }
  for (int i = 0; i < k; i++)
    if (!plan_one(&c, &L[i], i)) {
      L[i].state = CANNOT;
      fprintf(o->log, "tune: layout %d has no plan of its own (see %s/layout%d.log)\n", i + 1, c.dir, i);
    }
  plan_calib cal;
  bool ref = drift_ref(&c, L, k, &cal);
  for (int i = 0; i < k + ref; i++) L[i].cal_s = L[i].pred.step_s;
  if (ref) fprintf(o->log, "tune: measuring the calibration's reference layout (machine drift)\n"), measure(&c, &L[k], k, 0);
  if (ref && L[k].nround) rescale(L, k, L[k].round_s[0] / cal.ref.step_s); /* for choosing: its first round */
  int runs = choose_and_run(&c, L, k);
  more_rounds(&c, L, k, ref);
  finish(L, k + ref);
  if (ref && L[k].state == MEASURED) pool_ref(L, k);
  if (ref && L[k].state == MEASURED) rescale(L, k, L[k].meas.step_s / cal.ref.step_s);
  report_rows(o->out, L, k);
  report_phases(o->out, L, k);
  report_summary(o->out, L, k, runs);
  if (ref) report_drift(o->out, L, k, &cal);
  int ok = 0;
  for (int i = 0; i < k; i++) ok |= L[i].state == MEASURED;
  fprintf(o->log, "tune: plans, logs and traces in %s\n", c.dir);
  return !ok;
}
