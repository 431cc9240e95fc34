/* probe.c — `sbpc tune --model`: what the executor really costs, measured
 * on the model's own program.
 *
 * The micro-benchmarks of measure.c and mpi.c time OpenBLAS calls, a triad
 * and MPI collectives alone. A training step of the executor also runs the
 * model's other kernels at their real (often small) shapes, fires every
 * actor through its lock, worker wake-up and the main thread's polling, and
 * waits. So the calibration ends with a probe: the planner (a child `sbpc
 * plan`, with the calibration measured so far) plans the model's reference
 * layout, pure data parallelism over the ranks tune runs on (dp=N, tp=pp=1,
 * ZeRO 0, no recompute, the planner's micro-batch); a child `sbpc compile`
 * compiles it; every rank runs it with the executor (tn_opts.run_program:
 * rt_run in this process, as the ranks of `mpirun -np N sbpc tune`) for as
 * many steps as `tune --plans` runs a layout of its predicted step
 * (tn_run_steps: the rooflines', so more rather than fewer; 3 with --quick),
 * with a log and a trace of all but the first (at most 50). The trace's
 * phases (phases.c), scaled to the median logged step, are compared with
 * the plan's predicted phases:
 *
 *   forward_scale   = measured forward  / predicted forward rooflines
 *   backward_scale  = measured backward / predicted backward rooflines
 *   optimizer_scale = measured optimizer / predicted optimizer
 *   dp_comm_scale   = measured exposed comm / predicted gradient all-reduce
 *   micro_overhead_s = (measured bubble - predicted) / micro-batches
 *
 * where the rooflines are planned with no per-kernel cost; the all-reduce
 * by a second plan with nothing of it overlapped (grad_overlap 0: the
 * planner then counts it whole; under mpirun only); and K, the kernels per
 * step the planner counts for that layout, is what a third plan with a
 * per-kernel cost of 10 us adds to forward + backward, over 10 us. (The
 * trace's bubble is time with no slice running: firing, polling; its
 * exposed communication is time with only communication running.) With these the planner predicts the reference layout's measured step,
 * and other layouts scale their rooflines and kernel counts from it.
 * The bubble is charged per micro-batch, not per kernel: on tiny GPT-2
 * (dp=2, quiet) it measured 1.8 ms with 1 micro-batch, 2.6-3.2 ms with 2
 * and 4.2 ms with 4, while the kernels per step grow with the micro-batch
 * size too; spread over the kernels it over-charged every layout with
 * more kernels than the reference's (55-76 % over-predicted when the
 * planner then chose one micro-batch). kernel_s, the per-kernel cost, is
 * left at 0: one run cannot tell it from the per-pass scales, which hold
 * it. K is still written (kernels_per_step) for the record. All
 * of it comes from this run on this machine; nothing is a constant of a CPU.
 * The probe's files stay in /tmp/sbpc-tune-probe-* (named on stderr). */
#include "tune/tn_int.h"
#include "format/sbpc_plan.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_KERNEL_S 1e-5 /* the per-kernel cost of the counting plan */
#define PROBE_LIMIT_S 900.0

typedef struct {
  char dir[64], exe[4096];
  double tokens; /* per step */
  int micro;     /* the reference's micro-batches */
  int steps;     /* to run: by the reference's roofline step (tn_run_steps) */
} probe;

/* write_calib: calib with kernel_overhead_s set to k (and, with
 * no_overlap, nothing of the gradient reduction overlapped), at path */
static bool write_calib(const cJSON *calib, double k, bool no_overlap, const char *path) {
  cJSON *c = cJSON_Duplicate(calib, 1);
  cJSON_DeleteItemFromObjectCaseSensitive(c, "kernel_overhead_s");
  cJSON_AddNumberToObject(c, "kernel_overhead_s", k);
  if (no_overlap) cJSON_AddNumberToObject(cJSON_AddObjectToObject(c, "runtime"), "grad_overlap", 0);
  char *s = cJSON_Print(c);
  FILE *f = fopen(path, "w");
  bool ok = f && fprintf(f, "%s\n", s) >= 0;
  if (f && fclose(f)) ok = false;
  free(s), cJSON_Delete(c);
  return ok;
}

/* plan: `sbpc plan MODEL --cluster cpu:N --fix REF --calibration CAL --json OUT` */
static bool plan(const probe *p, const tn_opts *o, int nranks, const char *cal, const char *out) {
  char cl[32], fix[96], log[128];
  snprintf(cl, sizeof cl, "cpu:%d", nranks);
  snprintf(fix, sizeof fix, "dp=%d,tp=1,pp=1,sp=1,vpp=1,zero=0,recompute=none", nranks);
  snprintf(log, sizeof log, "%s/plan.log", p->dir);
  char *argv[24] = {(char *)p->exe, "plan", (char *)o->model, "--cluster", cl, "--fix", fix, "--top", "1",
                    "--calibration", (char *)cal, "--json", (char *)out};
  int a = 13;
  if (o->batch) argv[a++] = "--batch", argv[a++] = (char *)o->batch;
  if (o->seq) argv[a++] = "--seq", argv[a++] = (char *)o->seq;
  argv[a] = NULL;
  return tn_run_child(argv, log, PROBE_LIMIT_S) == 0;
}

/* prepare: on rank 0, the three plans and the compiled reference program */
static bool prepare(probe *p, const tn_opts *o, const cJSON *calib, int nranks) {
  char c0[128], c1[128], c2[128], p0[128], p1[128], p2[128], prog[128], log[128];
  ssize_t n = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
  if (n <= 0 || !mkdtemp(p->dir)) return false;
  p->exe[n] = 0;
  snprintf(c0, sizeof c0, "%s/calib0.json", p->dir), snprintf(c1, sizeof c1, "%s/calib1.json", p->dir);
  snprintf(p0, sizeof p0, "%s/plan0.json", p->dir), snprintf(p1, sizeof p1, "%s/plan1.json", p->dir);
  snprintf(c2, sizeof c2, "%s/calib2.json", p->dir), snprintf(p2, sizeof p2, "%s/plan2.json", p->dir);
  snprintf(prog, sizeof prog, "%s/program", p->dir), snprintf(log, sizeof log, "%s/compile.log", p->dir);
  if (!write_calib(calib, 0, false, c0) || !write_calib(calib, PROBE_KERNEL_S, false, c1) ||
      !write_calib(calib, 0, true, c2))
    return false;
  if (!plan(p, o, nranks, c0, p0) || !plan(p, o, nranks, c1, p1) || !plan(p, o, nranks, c2, p2)) return false;
  char *argv[] = {p->exe, "compile", (char *)o->model, "--plan", p0, "-o", prog, NULL};
  char err[256];
  sbpc_plan *pl = sbpc_plan_read(p0, err, sizeof err);
  if (!pl) return false;
  p->tokens = (double)pl->global_batch * (double)pl->seq;
  p->micro = pl->num_micro_batches > 0 ? pl->num_micro_batches : 1;
  p->steps = o->quick ? 3 : tn_run_steps(pl->predicted.step_time_s);
  sbpc_plan_free(pl);
  return tn_run_child(argv, log, PROBE_LIMIT_S) == 0;
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

/* derive: the executor section from the three predictions and the measured run */
static bool derive(const probe *p, int steps, cJSON *calib, int nranks) {
  char path[128];
  tn_step p0, p1, p2, m;
  snprintf(path, sizeof path, "%s/plan0.json", p->dir);
  if (!tn_predicted(path, &p0)) return false;
  snprintf(path, sizeof path, "%s/plan1.json", p->dir);
  if (!tn_predicted(path, &p1)) return false;
  snprintf(path, sizeof path, "%s/plan2.json", p->dir);
  if (!tn_predicted(path, &p2)) return false;
  snprintf(path, sizeof path, "%s/trace.json", p->dir);
  if (!tn_measured_trace(path, &m)) return false;
  snprintf(path, sizeof path, "%s/run.jsonl", p->dir);
  double med = tn_step_median(path, p->tokens), sum = 0;
  for (int i = 0; i < TN_NPHASE; i++) sum += m.phase[i];
  if (!(med > 0) || !(sum > 0)) return false;
  for (int i = 0; i < TN_NPHASE; i++) m.phase[i] *= med / sum; /* the traced steps' split of the median step */
  m.step_s = med;
  double K = (p1.phase[TN_FWD] + p1.phase[TN_BWD] - p0.phase[TN_FWD] - p0.phase[TN_BWD]) / PROBE_KERNEL_S;
  double idle = m.phase[TN_BUBBLE] - fmax(0, p0.phase[TN_BUBBLE]);
  cJSON *ex = cJSON_CreateObject();
  char ref[96];
  snprintf(ref, sizeof ref, "dp=%d tp=1 pp=1 zero=0 recompute=none", nranks);
  cJSON_AddStringToObject(ex, "reference", ref);
  cJSON_AddNumberToObject(ex, "steps", steps);
  cJSON_AddNumberToObject(ex, "forward_scale", ratio(m.phase[TN_FWD], p0.phase[TN_FWD]));
  cJSON_AddNumberToObject(ex, "backward_scale", ratio(m.phase[TN_BWD], p0.phase[TN_BWD]));
  cJSON_AddNumberToObject(ex, "optimizer_scale", ratio(m.phase[TN_OPT], p0.phase[TN_OPT]));
  if (nranks > 1 && p2.phase[TN_COMM] > 0) /* the gradient all-reduce alone, nothing overlapped */
    cJSON_AddNumberToObject(ex, "dp_comm_scale", fmin(1000, fmax(0.01, m.phase[TN_COMM] / p2.phase[TN_COMM])));
  cJSON_AddNumberToObject(ex, "kernels_per_step", K > 0 ? K : 0);
  cJSON_AddNumberToObject(ex, "kernel_s", 0);
  cJSON_AddNumberToObject(ex, "micro_overhead_s", fmin(3600, fmax(0, idle) / p->micro));
  cJSON_AddItemToObject(ex, "measured", step_json(&m));
  cJSON_AddItemToObject(ex, "predicted", step_json(&p0));
  cJSON_AddItemToObject(calib, "executor", ex);
  return true;
}

void tn_probe(const tn_opts *o, void *calib, int rank, int nranks) {
  probe p = {"/tmp/sbpc-tune-probe-XXXXXX", "", 0, 1, 3};
  char ok = rank == 0 ? prepare(&p, o, calib, nranks) : 0;
  if (rank == 0 && o->log) fprintf(o->log, "tune: executor probe in %s\n", p.dir);
  tn_mpi_bcast(&ok, 1);
  tn_mpi_bcast(p.dir, sizeof p.dir);
  tn_mpi_bcast(&p.steps, sizeof p.steps);
  if (!ok) {
    if (rank == 0) sbpc_warn("tune: the model's reference program could not be planned or compiled (see %s); "
                             "no executor section", p.dir);
    tn_mpi_finalize();
    return;
  }
  int steps = p.steps;
  char prog[128], log[128], trace[128];
  snprintf(prog, sizeof prog, "%s/program", p.dir), snprintf(log, sizeof log, "%s/run.jsonl", p.dir);
  snprintf(trace, sizeof trace, "%s/trace.json", p.dir);
  tn_child_env(PROBE_LIMIT_S);
  int rc = o->run_program(prog, steps, log, trace, tn_traced_steps(steps));
  tn_mpi_finalize();
  if (rank != 0) return;
  if (rc || !derive(&p, steps, calib, nranks))
    sbpc_warn("tune: the executor probe failed (see %s); no executor section", p.dir);
}
