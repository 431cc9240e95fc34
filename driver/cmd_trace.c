/* cmd_trace.c — `sbpc trace PLAN.json [-o trace.json] [--svg FILE]
 * [--per-device|--per-stage]`: a Chrome/Perfetto trace of one predicted step
 * (open it at https://ui.perfetto.dev or chrome://tracing), and optionally an
 * SVG timeline of the same schedule. Exit: 0 ok, 1 bad plan, 2 bad usage. */
#include "driver/driver.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <string.h>

sbpc_plan *ex_load_plan(const char *path); /* cmd_export.c */

static void usage(FILE *f) {
  fputs("usage: sbpc trace PLAN.json [-o trace.json] [--svg FILE] [--per-device | --per-stage]\n\n"
        "Writes a Chrome/Perfetto trace of one predicted training step: a track per device\n"
        "(or per pipeline stage and rank group above 64 devices;\n"
        "--per-device is allowed up to 256) with forward, backward,\n"
        "recompute, each collective, pipeline sends and bubbles as slices.\n\n"
        "examples:\n  sbpc trace plan.json -o trace.json   # open in https://ui.perfetto.dev\n"
        "  sbpc trace plan.json -o trace.json --svg step.svg\n",
        f);
}

static int write_to(const char *path, int (*fn)(const sbpc_plan *, const ex_trace_opts *, ex_ctx *),
                    const sbpc_plan *p, const ex_trace_opts *o, const char *plan) {
  FILE *f = path ? fopen(path, "w") : stdout;
  if (!f) return sbpc_error("cannot write '%s'", path), 1;
  ex_ctx c = {.out = f, .err = stderr, .plan = plan};
  int rc = fn(p, o, &c);
  if (path && fclose(f)) rc = 1;
  return rc;
}

static int svg(const sbpc_plan *p, const ex_trace_opts *o, ex_ctx *c) {
  (void)o;
  return ex_trace_svg(p, c);
}

int cmd_trace(int argc, char **argv) {
  const char *plan = NULL, *out = NULL, *svgout = NULL;
  ex_trace_opts o = {-1, 64};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), EXIT_OK;
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--svg") && i + 1 < argc) svgout = argv[++i];
    else if (!strcmp(argv[i], "--per-device")) o.per_device = 1;
    else if (!strcmp(argv[i], "--per-stage")) o.per_device = 0;
    else if (argv[i][0] == '-' && argv[i][1]) return sbpc_error("trace: unknown option '%s'", argv[i]), EXIT_USAGE;
    else if (!plan) plan = argv[i];
    else return sbpc_error("trace: unexpected argument '%s'", argv[i]), EXIT_USAGE;
  }
  if (!plan) return usage(stderr), EXIT_USAGE;
  sbpc_plan *p = ex_load_plan(plan);
  if (!p) return EXIT_BAD_INPUT;
  if (o.per_device == 1 && p->devices > 256) {
    sbpc_error("trace: %d per-device tracks is too many; use --per-stage", p->devices);
    sbpc_plan_free(p);
    return EXIT_USAGE;
  }
  int rc = write_to(out, ex_trace, p, &o, plan);
  if (!rc && svgout) rc = write_to(svgout, svg, p, &o, plan);
  sbpc_plan_free(p);
  return rc ? EXIT_BAD_INPUT : EXIT_OK;
}
