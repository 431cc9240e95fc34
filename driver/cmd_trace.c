/* cmd_trace.c — `sbpc trace PLAN.json [-o trace.json] [--svg FILE]
 * [--per-device|--per-stage]`: a Chrome/Perfetto trace of one predicted step
 * (open it at https://ui.perfetto.dev or chrome://tracing), and optionally an
 * SVG timeline of the same schedule. The options are a table (driver/opts.h).
 * Exit: 0 ok, 1 bad plan, 2 bad usage. */
#include "driver/driver.h"
#include "driver/opts.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <string.h>

sbpc_plan *ex_load_plan(const char *path); /* cmd_export.c */

typedef struct {
  const char *out, *svg;
  ex_trace_opts o;
} trace_args;

static const drv_command command = {
    .name = "trace", .synopsis = "PLAN.json [options]", .pos = {"PLAN.json"}, .min_pos = 1,
    .about = "Writes a Chrome/Perfetto trace of one predicted training step: a track per device\n"
             "(or per pipeline stage and rank group above 64 devices; --per-device is allowed up to 256)\n"
             "with forward, backward, recompute, each collective, pipeline sends and bubbles as slices.",
    .tail = "examples:\n  sbpc trace plan.json -o trace.json   # open in https://ui.perfetto.dev\n"
            "  sbpc trace plan.json -o trace.json --svg step.svg",
};

static const drv_option options[] = {
    {DRV_OPT("-o", DRV_STR, trace_args, out, "FILE", "write the trace to FILE (default: standard output)")},
    {DRV_OPT("--svg", DRV_STR, trace_args, svg, "FILE", "also write an SVG timeline of the same schedule")},
    {DRV_FLAGOPT("--per-device", DRV_SET, trace_args, o.per_device, "a track per device"), .lo = 1},
    {DRV_FLAGOPT("--per-stage", DRV_SET, trace_args, o.per_device, "a track per stage and rank group"), .lo = 0},
    {0}};

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
  trace_args a = {NULL, NULL, {-1, 64}};
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, &a, NULL}, {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  if (rc >= 0) return rc;
  const char *plan = pos[0], *out = a.out, *svgout = a.svg;
  ex_trace_opts o = a.o;
  sbpc_plan *p = ex_load_plan(plan);
  if (!p) return EXIT_BAD_INPUT;
  if (o.per_device == 1 && p->devices > 256) {
    sbpc_error("trace: %d per-device tracks is too many; use --per-stage", p->devices);
    sbpc_plan_free(p);
    return EXIT_USAGE;
  }
  rc = write_to(out, ex_trace, p, &o, plan);
  if (!rc && svgout) rc = write_to(svgout, svg, p, &o, plan);
  sbpc_plan_free(p);
  return rc ? EXIT_BAD_INPUT : EXIT_OK;
}
