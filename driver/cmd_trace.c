/* cmd_trace.c — `sbpc trace PLAN.json|MODEL.sbp [-o trace.json] [--svg FILE]
 * [--per-device|--per-stage] [plan options]`: a Chrome/Perfetto trace of one
 * predicted step (open it at https://ui.perfetto.dev or chrome://tracing),
 * and optionally an SVG timeline of the same schedule. A plan (a JSON object)
 * is drawn as it was predicted; a model is planned first, exactly as `sbpc
 * plan` would (driver/planning.c: --cluster, --batch, --fix, --calibration or
 * $SBPC_CALIBRATION, ...), and its best layout drawn. A plan's predictions are
 * fixed when it is planned, so the plan options with a plan are a usage error.
 * The options are tables (driver/opts.h). Exit: 0 ok, 1 bad plan or model, 2
 * bad usage, 3 no layout fits. */
#include "driver/common.h"
#include "driver/driver.h"
#include "export/export.h"
#include "util/diag.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sbpc_plan *ex_load_plan(const char *path); /* cmd_export.c */

typedef struct {
  const char *out, *svg;
  ex_trace_opts o;
} trace_args;

static const drv_command command = {
    .name = "trace", .synopsis = "PLAN.json|MODEL.sbp [options]", .pos = {"PLAN.json|MODEL.sbp"}, .min_pos = 1,
    .about = "Writes a Chrome/Perfetto trace of one predicted training step: a track per device\n"
             "(or per pipeline stage and rank group above 64 devices; --per-device is allowed up to 256)\n"
             "with forward, backward, recompute, each collective, pipeline sends and bubbles as slices.\n"
             "A model is planned first, as `sbpc plan` does (its options below), and its best layout drawn.",
    .tail = "examples:\n  sbpc trace plan.json -o trace.json   # open in https://ui.perfetto.dev\n"
            "  sbpc trace plan.json -o trace.json --svg step.svg\n"
            "  sbpc trace examples/tiny-gpt2.sbp --cluster cpu:2 --calibration calib.json -o trace.json",
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

/* is_plan: whether path holds a JSON object (a plan; a model file is the
 * DSL, which never starts with '{'). Unreadable: a plan, so that the plan
 * reader says why. */
static bool is_plan(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return true;
  int ch;
  while ((ch = fgetc(f)) != EOF && isspace(ch)) {}
  fclose(f);
  return ch == '{' || ch == EOF;
}

/* layout_line: which layout of path is drawn, and what priced it. */
static void layout_line(const char *path, const plan_layout *l, const char *calib) {
  diag_file_note(path, "planned dp=%d tp=%d pp=%d sp=%d mbs=%d x%d recompute=%s zero=%d (%s)", l->dp, l->tp, l->pp,
                 l->sp, l->mbs, l->m, plan_recompute_name(l->recompute), l->zero,
                 calib ? calib : "no calibration");
}

/* planned: model path planned under the options (driver/planning.c), as the
 * plan reader's structure; NULL after printing why (*rc: the exit status). */
static sbpc_plan *planned(const char *path, const drv_opts *o, const drv_plan_opts *k, int *rc) {
  drv_model m;
  sbpc_plan *p = NULL;
  if ((*rc = drv_model_load(path, &m))) return NULL;
  arena *ar = arena_new();
  plan_result *r;
  if (!(*rc = drv_plan(&command, o, k, &m, ar, &r))) {
    char *text = plan_json_string(r), err[512];
    p = text ? sbpc_plan_parse(text, strlen(text), path, err, sizeof err) : NULL;
    if (!p) {
      sbpc_error("trace: the plan of %s does not read back: %s", path, text ? err : "no JSON");
      *rc = EXIT_BAD_INPUT;
    } else {
      layout_line(path, &r->top[0], r->opt.calib_path);
    }
    free(text);
  }
  plan_result_free(r);
  arena_free(ar);
  drv_model_free(&m);
  return p;
}

int cmd_trace(int argc, char **argv) {
  trace_args a = {NULL, NULL, {-1, 64}};
  drv_opts mo = {0};
  drv_plan_opts k;
  drv_plan_opts_init(&k);
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, &a, NULL},
                             {drv_model_options, &mo, "planning a model"},
                             {drv_size_options, &mo, NULL},
                             {drv_plan_options, &k, NULL},
                             {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  if (rc >= 0) return rc;
  const char *path = pos[0], *out = a.out, *svgout = a.svg;
  ex_trace_opts o = a.o;
  bool given = mo.cluster || mo.batch || mo.seq || mo.mesh.n || drv_plan_opts_given(&k);
  sbpc_plan *p;
  if (is_plan(path)) {
    if (given)
      return drv_usage_error(&command, "%s is a plan, already predicted; the plan options (--cluster, --calibration, "
                             "...) go with a model: sbpc trace MODEL.sbp --calibration FILE", path);
    if (!(p = ex_load_plan(path))) return EXIT_BAD_INPUT;
  } else if (!(p = planned(path, &mo, &k, &rc))) {
    return rc;
  }
  if (o.per_device == 1 && p->devices > 256) {
    sbpc_error("trace: %d per-device tracks is too many; use --per-stage", p->devices);
    sbpc_plan_free(p);
    return EXIT_USAGE;
  }
  rc = write_to(out, ex_trace, p, &o, path);
  if (!rc && svgout) rc = write_to(svgout, svg, p, &o, path);
  sbpc_plan_free(p);
  return rc ? EXIT_BAD_INPUT : EXIT_OK;
}
