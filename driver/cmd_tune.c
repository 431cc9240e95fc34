/* cmd_tune.c — `sbpc tune`: measure this machine for the planner, or
 * autotune a model's layouts by measurement (the tune module, tune/tune.h).
 *
 *   [mpirun -np N] sbpc tune [--quick] [-o calib.json] [--peak-flops F]
 *       [--peak-bw B] [--model MODEL.sbp [--batch B] [--seq S]]
 *   sbpc tune --plans K MODEL.sbp [--np N] [--steps S] [--batch B] [--seq S]
 *       [--cluster C] [--calibration FILE] [--all]
 *
 * With --model, the GEMM shapes measured beside the generic set are the
 * ones the planner costs for MODEL's layouts on cpu:N (N: the ranks mpirun
 * started): the planner is run once with its shape log on (plan_calib.
 * gemm_log) and every shape it asked about is measured. The calibration of
 * --plans defaults to $SBPC_CALIBRATION (plan_calib_path).
 * Exit: 0 ok, 1 cannot write, bad model or nothing ran, 2 bad usage. */
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include "planner/planner.h"
#include "tune/tune.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs("usage: [mpirun -np N] sbpc tune [--quick] [-o calib.json] [--peak-flops F] [--peak-bw B]\n"
        "                                [--model MODEL.sbp [--batch B] [--seq S]]\n"
        "       sbpc tune --plans K MODEL.sbp [--np N] [--steps S] [--batch B] [--seq S] [--cluster C]\n"
        "                                [--calibration FILE] [--all]\n\n"
        "Measures what the planner's cost model needs on this machine: GEMM rates over\n"
        "shapes (with --model, also the shapes MODEL's layouts produce), the bandwidth of\n"
        "memory-bound kernels, the per-call fixed cost; under mpirun every rank measures at\n"
        "once, plus collective bandwidth and latency by group size. Writes the calibration\n"
        "JSON for `sbpc plan --calibration` (docs/calibration.md). --peak-flops / --peak-bw\n"
        "give the device's datasheet peaks so the file states efficiencies; without them\n"
        "the measured rates describe this device.\n"
        "--plans K: the planner's K best layouts of MODEL on cpu:N (default N 2); the ones\n"
        "predicted within the model's measured error of the best (all with --all) run for a\n"
        "few steps each with the executor (under mpirun when N > 1); reports predicted vs\n"
        "measured step time, phases and peak memory per layout, and the runs saved.\n"
        "--calibration defaults to $SBPC_CALIBRATION.\n\n"
        "examples:\n  sbpc tune --quick -o calib.json\n  mpirun -np 2 sbpc tune -o calib.json\n"
        "  sbpc tune --plans 6 examples/tiny-gpt2.sbp --np 2 --calibration calib.json\n",
        f);
}

static int positive(const char *s, double *v) {
  char *end;
  *v = strtod(s, &end);
  return *s && !*end && *v > 0;
}

static int count(const char *s, int lo, int hi, int *v) {
  double d;
  if (!positive(s, &d) || d < lo || d > hi || d != (int)d) return 0;
  *v = (int)d;
  return 1;
}

/* autotune: the --plans form (argv[i] is K); returns an exit status */
static int autotune(int argc, char **argv, int i) {
  tn_autotune_opts a = {NULL, 0, 2, 5, 0, NULL, NULL, NULL, NULL, 900, stderr, stdout};
  if (!count(argv[i], 1, 16, &a.k)) return sbpc_error("tune: --plans needs a count 1..16"), EXIT_USAGE;
  for (i++; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--np") && v && count(v, 1, 4096, &a.np)) i++;
    else if (!strcmp(o, "--steps") && v && count(v, 1, 100000, &a.steps)) i++;
    else if (!strcmp(o, "--batch") && v) a.batch = v, i++;
    else if (!strcmp(o, "--seq") && v) a.seq = v, i++;
    else if (!strcmp(o, "--cluster") && v) a.cluster = v, i++;
    else if (!strcmp(o, "--calibration") && v) a.calibration = v, i++;
    else if (!strcmp(o, "--all")) a.all = 1;
    else if (o[0] != '-' && !a.model) a.model = o;
    else return sbpc_error("tune: bad argument '%s' (try 'sbpc tune --help')", o), EXIT_USAGE;
  }
  if (!a.model) return sbpc_error("tune: --plans needs a MODEL.sbp"), EXIT_USAGE;
  a.calibration = plan_calib_path(a.calibration);
  return tn_autotune(&a) ? EXIT_BAD_INPUT : EXIT_OK;
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

/* with_model: tn_measure with the shapes of the model at path */
static int with_model(tn_opts *o, const drv_opts *d, const char *out) {
  drv_model m;
  int rc = drv_model_load(o->model, &m);
  if (rc) return rc;
  tn_shape *sh = NULL;
  if (!(rc = drv_bind(d, &m.p)) && !m.p.g) rc = (sbpc_error("%s: the file has no model", o->model), EXIT_BAD_INPUT);
  if (!rc && !drv_passes(m.p.g, DRV_SHAPES, &m.d)) rc = EXIT_BAD_INPUT;
  if (!rc && d->batch) m.p.train.global_batch = d->batch;
  if (!rc && d->seq) m.p.train.seq = d->seq;
  if (!rc) rc = model_shapes(&m, &sh, &o->nshapes);
  drv_model_free(&m);
  o->shapes = sh;
  if (!rc) rc = tn_measure(o, out) ? EXIT_BAD_INPUT : EXIT_OK;
  free(sh);
  return rc;
}

int cmd_tune(int argc, char **argv) {
  tn_opts o = {0, isatty(2), stderr, 0, 0, NULL, 0, NULL};
  drv_opts d;
  memset(&d, 0, sizeof d);
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = drv_opt(argc, argv, &i, &d);
    if (r < 0) return EXIT_USAGE;
    if (r > 0) continue;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), EXIT_OK;
    if (!strcmp(a, "--quick")) o.quick = 1;
    else if (!strcmp(a, "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(a, "--model") && i + 1 < argc) o.model = argv[++i];
    else if (!strcmp(a, "--peak-flops") && i + 1 < argc && positive(argv[i + 1], &o.peak_flops)) i++;
    else if (!strcmp(a, "--peak-bw") && i + 1 < argc && positive(argv[i + 1], &o.peak_bw)) i++;
    else if (!strcmp(a, "--plans") && i + 1 < argc) return autotune(argc, argv, i + 1);
    else return sbpc_error("tune: bad argument '%s' (try 'sbpc tune --help')", a), EXIT_USAGE;
  }
  if (d.cluster || d.mesh.n) return sbpc_error("tune: --cluster and --mesh belong to --plans"), EXIT_USAGE;
  if ((d.batch || d.seq) && !o.model) return sbpc_error("tune: --batch and --seq need --model"), EXIT_USAGE;
  if (o.model) return with_model(&o, &d, out);
  return tn_measure(&o, out) ? EXIT_BAD_INPUT : EXIT_OK;
}
