/* cmd_tune.c — `sbpc tune [--quick] [-o calib.json] [--peak-flops F]
 * [--peak-bw B]`: measure this machine (under mpirun: this group of ranks)
 * and write the calibration JSON that `sbpc plan --calibration` reads
 * (docs/calibration.md). A progress bar on a terminal, plain lines otherwise.
 * `--plans K` (autotune by measurement) needs the executor's `sbpc run` and
 * is refused until that exists. Exit: 0 ok, 1 cannot write, 2 bad usage. */
#include "driver/driver.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fputs("usage: sbpc tune [--quick] [-o calib.json] [--peak-flops F] [--peak-bw B]\n\n"
        "Measures GEMM throughput over shapes (OpenBLAS), memory bandwidth and the\n"
        "per-kernel call overhead; under mpirun also collective bandwidth and latency\n"
        "by group size. Writes the calibration JSON for `sbpc plan --calibration`.\n"
        "--peak-flops / --peak-bw give the device's datasheet peaks (FLOP/s, bytes/s)\n"
        "so the file can state efficiencies; without them only measured rates are written.\n\n"
        "examples:\n  sbpc tune --quick -o calib.json\n  mpirun -np 8 sbpc tune -o calib.json\n",
        f);
}

static int positive(const char *s, double *v) {
  char *end;
  *v = strtod(s, &end);
  return *s && !*end && *v > 0;
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
    else if (!strcmp(a, "--plans"))
      return sbpc_error("tune: --plans (autotune by measurement) needs `sbpc run`, which this build lacks"),
             EXIT_USAGE;
    else return sbpc_error("tune: bad argument '%s' (try 'sbpc tune --help')", a), EXIT_USAGE;
  }
  return ex_tune(&o, out) ? EXIT_BAD_INPUT : EXIT_OK;
}
