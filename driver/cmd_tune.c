/* cmd_tune.c — `sbpc tune [--quick] [-o calib.json] [--peak-flops F]
 * [--peak-bw B]`: measure this machine (under mpirun: this group of ranks)
 * and write the calibration JSON that `sbpc plan --calibration` reads
 * (docs/calibration.md). A progress bar on a terminal, plain lines otherwise.
 * `sbpc tune --plans K MODEL.sbp [--np N] [--steps S] [--batch B] [--seq S]
 * [--cluster C]` autotunes by measurement (export/ex_autotune.c).
 * Exit: 0 ok, 1 cannot write or nothing ran, 2 bad usage. */
#include "driver/driver.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs("usage: sbpc tune [--quick] [-o calib.json] [--peak-flops F] [--peak-bw B]\n"
        "       sbpc tune --plans K MODEL.sbp [--np N] [--steps S] [--batch B] [--seq S] [--cluster C]\n\n"
        "Measures GEMM throughput over shapes (OpenBLAS), memory bandwidth and the\n"
        "per-kernel call overhead; under mpirun also collective bandwidth and latency\n"
        "by group size. Writes the calibration JSON for `sbpc plan --calibration`.\n"
        "--peak-flops / --peak-bw give the device's datasheet peaks (FLOP/s, bytes/s)\n"
        "so the file can state efficiencies; without them only measured rates are written.\n"
        "--plans K runs the planner's K best layouts of MODEL for a few steps each with the\n"
        "executor (under mpirun when N > 1; default N 2, cluster cpu:N, 5 steps) and reports\n"
        "measured vs predicted step time, the fastest layout and the prediction error.\n\n"
        "examples:\n  sbpc tune --quick -o calib.json\n  mpirun -np 8 sbpc tune -o calib.json\n"
        "  sbpc tune --plans 3 examples/tiny-gpt2.sbp --np 2\n",
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

/* autotune_args: the --plans form; returns an exit status, or -1 to go on. */
static int autotune(int argc, char **argv, int i) {
  ex_autotune_opts a = {NULL, 0, 2, 5, NULL, NULL, NULL, 600, stderr, stdout};
  if (!count(argv[i], 1, 16, &a.k)) return sbpc_error("tune: --plans needs a count 1..16"), EXIT_USAGE;
  for (i++; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--np") && v && count(v, 1, 4096, &a.np)) i++;
    else if (!strcmp(o, "--steps") && v && count(v, 1, 100000, &a.steps)) i++;
    else if (!strcmp(o, "--batch") && v) a.batch = v, i++;
    else if (!strcmp(o, "--seq") && v) a.seq = v, i++;
    else if (!strcmp(o, "--cluster") && v) a.cluster = v, i++;
    else if (o[0] != '-' && !a.model) a.model = o;
    else return sbpc_error("tune: bad argument '%s' (try 'sbpc tune --help')", o), EXIT_USAGE;
  }
  if (!a.model) return sbpc_error("tune: --plans needs a MODEL.sbp"), EXIT_USAGE;
  return ex_autotune(&a) ? EXIT_BAD_INPUT : EXIT_OK;
}

int cmd_tune(int argc, char **argv) {
  ex_tune_opts o = {0, isatty(2), stderr, 0, 0};
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), EXIT_OK;
    if (!strcmp(a, "--quick")) o.quick = 1;
    else if (!strcmp(a, "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(a, "--peak-flops") && i + 1 < argc && positive(argv[i + 1], &o.peak_flops)) i++;
    else if (!strcmp(a, "--peak-bw") && i + 1 < argc && positive(argv[i + 1], &o.peak_bw)) i++;
    else if (!strcmp(a, "--plans") && i + 1 < argc) return autotune(argc, argv, i + 1);
    else return sbpc_error("tune: bad argument '%s' (try 'sbpc tune --help')", a), EXIT_USAGE;
  }
  return ex_tune(&o, out) ? EXIT_BAD_INPUT : EXIT_OK;
}
