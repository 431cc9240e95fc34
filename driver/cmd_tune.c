/* cmd_tune.c — `sbpc tune`: measure this machine for the planner, or
 * autotune a model's layouts by measurement (the tune module, tune/tune.h).
 *
 *   [mpirun -np N] sbpc tune [--quick] [-o calib.json] [--peak-flops F]
 *       [--peak-bw B] [--model MODEL.sbp [--batch B] [--seq S] [--from CALIB]]
 *   sbpc tune --plans K MODEL.sbp [--np N] [--steps S] [--rounds R] [--batch B]
 *       [--seq S] [--cluster C] [--calibration FILE] [--all]
 *
 * With --model, the GEMM shapes measured beside the generic set are the
 * ones the planner costs for MODEL's layouts on cpu:N (N: the ranks mpirun
 * started): the planner is run once with its shape log on (plan_calib.
 * gemm_log) and every shape it asked about is measured; --from CALIB keeps
 * CALIB's measurements and adds only the model's shapes and the executor
 * probe (what --plans runs when its calibration has no probe of the model,
 * autotune.c). The calibration of
 * --plans defaults to $SBPC_CALIBRATION (plan_calib_path). The options are
 * tables (driver/opts.h).
 * Exit: 0 ok, 1 cannot write, bad model or nothing ran, 2 bad usage. */
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include "planner/planner.h"
#include "runtime/rt.h"
#include "tune/tune.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  tn_opts m;              /* measuring this machine */
  tn_autotune_opts at;    /* --plans K MODEL.sbp */
  drv_opts d;             /* --batch --seq (both forms), --cluster (--plans) */
  const char *out;        /* -o */
} tune_args;

static const drv_command command = {
    .name = "tune", .synopsis = "[options]   or   sbpc tune --plans K MODEL.sbp [options]", .pos = {"MODEL.sbp"},
    .about =
        "Measures what the planner's cost model needs on this machine: GEMM rates over shapes (with --model,\n"
        "also the shapes MODEL's layouts produce), the bandwidth of memory-bound kernels, the per-call fixed\n"
        "cost; under mpirun (mpirun -np N sbpc tune) every rank measures at once, plus collective bandwidth\n"
        "and latency by group size. Writes the calibration JSON for `sbpc plan --calibration`\n"
        "(docs/calibration.md). --peak-flops / --peak-bw give the device's datasheet peaks so the file\n"
        "states efficiencies; without them the measured rates describe this device.\n"
        "--plans K: the planner's K best layouts of MODEL on cpu:N (default N 2); the ones predicted within\n"
        "the model's measured error of the best (all with --all) run for a few steps each with the executor\n"
        "(under mpirun when N > 1); reports predicted vs measured step time, phases and peak memory per\n"
        "layout, and the runs saved. A calibration without the executor probe of MODEL is extended with it\n"
        "first (sbpc tune --from CALIB --model MODEL: CALIB's measurements kept), unless --no-probe.",
    .tail = "examples:\n  sbpc tune --quick -o calib.json\n  mpirun -np 2 sbpc tune -o calib.json\n"
            "  sbpc tune --plans 6 examples/tiny-gpt2.sbp --np 2 --calibration calib.json",
};

static const drv_option options[] = {
    {DRV_FLAGOPT("--quick", DRV_SET, tune_args, m.quick, "a few seconds (for CI)"), .lo = 1},
    {DRV_OPT("-o", DRV_STR, tune_args, out, "FILE", "write the calibration JSON to FILE (default: standard output)")},
    {DRV_OPT("--peak-flops", DRV_REAL, tune_args, m.peak_flops, "F", "the device's datasheet peak FLOP/s"), .flo = 0,
     .fhi = 1e30, .open = true},
    {DRV_OPT("--peak-bw", DRV_REAL, tune_args, m.peak_bw, "B", "the device's datasheet peak memory bytes/s"), .flo = 0,
     .fhi = 1e30, .open = true},
    {DRV_OPT("--model", DRV_STR, tune_args, m.model, "MODEL.sbp",
             "also measure the GEMM shapes of MODEL's layouts, and probe the executor on MODEL")},
    {DRV_OPT("--from", DRV_STR, tune_args, m.from, "CALIB",
             "with --model: keep CALIB's measurements, add MODEL's shapes and probe")},
    {0}};

static const drv_option plans_options[] = {
    {DRV_OPT("--plans", DRV_INT, tune_args, at.k, "K", "autotune the planner's K best layouts of MODEL.sbp"), .lo = 1,
     .hi = 16},
    {DRV_OPT("--cluster", DRV_STR, tune_args, d.cluster, "SPEC", "the planner's cluster (default cpu:N)")},
    {DRV_OPT("--np", DRV_INT, tune_args, at.np, "N", "ranks to run each layout on (default 2)"), .lo = 1, .hi = 4096},
    {DRV_OPT("--steps", DRV_INT, tune_args, at.steps, "S", "steps per layout (default: as many as its predicted step fits in 0.25 s, 5 to 200)"), .lo = 1, .hi = 100000},
    {DRV_OPT("--rounds", DRV_INT, tune_args, at.rounds, "R",
             "runs per measured layout, the layouts interleaved; its step is the median\n"
             "(default: 3 when a run is predicted under 2 s, 2 under a minute, else 1)"), .lo = 1, .hi = 20},
    {DRV_OPT("--calibration", DRV_STR, tune_args, at.calibration, "FILE",
             "the planner's calibration (default $SBPC_CALIBRATION)")},
    {DRV_FLAGOPT("--all", DRV_SET, tune_args, at.all, "run all K layouts, not only those within the error"), .lo = 1},
    {DRV_FLAGOPT("--no-probe", DRV_SET, tune_args, at.no_probe,
                 "plan with the calibration as it is (else one without a probe of MODEL\n"
                 "is extended with it first: sbpc tune --from CALIB --model MODEL)"), .lo = 1},
    {0}};

/* autotune: the --plans form; returns an exit status */
static int autotune(tune_args *t, const char *model) {
  tn_autotune_opts *a = &t->at;
  char batch[24], seq[24];
  if (!model) return drv_usage_error(&command, "--plans needs a MODEL.sbp");
  if (t->m.quick || t->out || t->m.peak_flops > 0 || t->m.peak_bw > 0 || t->m.model || t->m.from)
    return drv_usage_error(&command, "--quick, -o, --peak-flops, --peak-bw, --model and --from do not go with --plans");
  a->model = model;
  if (!a->np) a->np = 2;
  if (t->d.batch) snprintf(batch, sizeof batch, "%lld", (long long)t->d.batch), a->batch = batch;
  if (t->d.seq) snprintf(seq, sizeof seq, "%lld", (long long)t->d.seq), a->seq = seq;
  a->cluster = t->d.cluster;
  a->calibration = plan_calib_path(a->calibration);
  return tn_autotune(a) ? EXIT_BAD_INPUT : EXIT_OK;
}

/* model_shapes: the GEMM shapes the planner costs for the layouts of the
 * model in m (bound, shapes inferred) on cpu:N, into *out (malloc'ed) */
static int model_shapes(drv_model *m, tn_shape **out, int *n) {
  char spec[32], err[256];
  snprintf(spec, sizeof spec, "cpu:%d", tn_launched_ranks());
  arena *a = arena_new();
  ir_cluster *c = fe_cluster_preset(spec, a, err, sizeof err);
  plan_options po;
  plan_options_default(&po);
  int mnk[PLAN_MAXGEMM][3];
  plan_shape_log log = {0, PLAN_MAXGEMM, mnk};
  po.global_batch = m->p.train.global_batch, po.seq = m->p.train.seq, po.top_k = 16;
  po.precision = plan_compute_precision(c, m->p.train.set ? m->p.train.precision : IR_F32);
  po.calib.gemm_log = &log;
  plan_result *r = c ? plan_search(m->p.g, c, &po) : NULL;
  plan_result_free(r);
  arena_free(a);
  if (!r) return sbpc_error("tune: the planner cannot plan the model on %s", spec), EXIT_BAD_INPUT;
  *n = log.n < log.cap ? log.n : log.cap;
  *out = malloc(sizeof **out * (size_t)(*n ? *n : 1));
  for (int i = 0; i < *n; i++) (*out)[i] = (tn_shape){mnk[i][0], mnk[i][1], mnk[i][2]};
  return EXIT_OK;
}

/* run_program: the executor probe's run (tn_opts.run_program): the program
 * in dir on every rank, quiet, with its log and its last steps' trace */
static int run_program(const char *dir, int steps, const char *log, const char *trace, int trace_steps) {
  rt_config cfg = rt_config_default();
  cfg.steps = steps, cfg.log = log, cfg.trace = trace, cfg.trace_steps = trace_steps, cfg.quiet = true;
  int argc = 1;
  char *args[] = {"sbpc", NULL}, **argv = args;
  return rt_run(dir, &cfg, &argc, &argv);
}

/* with_model: tn_measure with the shapes of the model at path, and the
 * executor probe of its reference program */
static int with_model(tn_opts *o, const drv_opts *d, const char *out) {
  plan_calib base;
  plan_calib_default(&base);
  if (o->from && !plan_calib_load(o->from, &base)) return EXIT_BAD_INPUT; /* the one reader checks it */
  drv_model m;
  int rc = drv_model_load(o->model, &m);
  if (rc) return rc;
  tn_shape *sh = NULL;
  if (!(rc = drv_bind(d, &m.p)) && !drv_model_graph(&m)) rc = EXIT_BAD_INPUT;
  if (!rc && !drv_passes(m.p.g, DRV_SHAPES, &m.d)) rc = EXIT_BAD_INPUT;
  if (!rc && d->batch) m.p.train.global_batch = d->batch;
  if (!rc && d->seq) m.p.train.seq = d->seq;
  if (!rc) rc = model_shapes(&m, &sh, &o->nshapes);
  char batch[24], seq[24];
  if (d->batch) snprintf(batch, sizeof batch, "%lld", (long long)d->batch), o->batch = batch;
  if (d->seq) snprintf(seq, sizeof seq, "%lld", (long long)d->seq), o->seq = seq;
  o->run_program = run_program;
  drv_model_free(&m);
  o->shapes = sh;
  if (!rc) rc = tn_measure(o, out) ? EXIT_BAD_INPUT : EXIT_OK;
  free(sh);
  return rc;
}

int cmd_tune(int argc, char **argv) {
  tune_args t;
  memset(&t, 0, sizeof t);
  t.m = (tn_opts){.progress = isatty(2), .log = stderr};
  t.at = (tn_autotune_opts){.limit_s = 900, .log = stderr, .out = stdout};
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, &t, NULL},
                             {drv_size_options, &t.d, NULL},
                             {plans_options, &t, "tune --plans K MODEL.sbp"},
                             {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  if (rc >= 0) return rc;
  if (t.at.k) return autotune(&t, pos[0]);
  if (pos[0])
    return drv_usage_error(&command, "unexpected argument '%s' (a model goes with --plans or --model)", pos[0]);
  if (t.at.np || t.at.steps || t.at.rounds || t.at.all || t.at.calibration || t.at.no_probe || t.d.cluster)
    return drv_usage_error(&command, "--np, --steps, --rounds, --all, --calibration, --no-probe and --cluster belong "
                                     "to --plans");
  if ((t.d.batch || t.d.seq) && !t.m.model)
    return drv_usage_error(&command, "--batch and --seq need --model or --plans");
  if (t.m.from && (!t.m.model || t.m.peak_flops > 0 || t.m.peak_bw > 0))
    return drv_usage_error(&command, "--from needs --model, and keeps the calibration's peaks");
  if (t.m.model) return with_model(&t.m, &t.d, t.out);
  int r = tn_measure(&t.m, t.out) ? EXIT_BAD_INPUT : EXIT_OK;
  if (r == EXIT_OK && !t.m.quick && tn_launched_rank() == 0) /* once, from rank 0 */
    sbpc_note("tune: no --model, so no executor probe: `sbpc plan` prices sbpc's executor by its rooflines "
              "alone (tiny GPT-2 layouts predicted 14-42 %% fast on a 2-core EPYC VM); `tune --plans K MODEL` "
              "adds the model's probe itself, and `tune --model MODEL.sbp` (or `--from FILE --model`) writes it");
  return r;
}
