/* cmd_plan.c — `sbpc plan`: search the parallel layout of a model on a
 * cluster, print the report, write the JSON plan.
 *
 * Pipeline: load the model (driver/common.c), bind B and S, infer shapes,
 * pick the cluster (--cluster, or the file's own), read the options (tables,
 * driver/opts.h) and the calibration (--calibration, else $SBPC_CALIBRATION), then plan_search
 * (planner/); driver/planning.c does all but the report and the JSON. Exit 0 with a plan, 1 on bad
 * input, 2 on bad usage, 3 when no layout fits (with the smallest memory any
 * candidate needs and what dominates it). */
#include "driver/common.h"
#include "driver/driver.h"
#include "planner/planner.h"
#include "planner/sp.h"
#include <cjson/cJSON.h>
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  drv_opts o;
  drv_plan_opts k;
  const char *file, *json;
  bool explain;
} plan_args;

static const drv_command command = {
    .name = "plan", .synopsis = "MODEL.sbp [options]", .pos = {"MODEL.sbp"}, .min_pos = 1,
    .about = "Search the parallel layout of the model on the cluster; print the report, write the JSON plan.\n"
             "Exit 3 when no layout fits.",
};

static const drv_option options[] = {
    {DRV_OPT("--top", DRV_INT, plan_args, k.top, "K", "report the K best layouts (default 3)"), .lo = 1, .hi = 64},
    {DRV_OPT("--json", DRV_STR, plan_args, json, "FILE", "write the plan JSON (- for standard output)")},
    {DRV_FLAGOPT("--explain", DRV_FLAG, plan_args, explain, "add per-op SBP and boxing to the report")},
    {0}};

static int parse_args(int argc, char **argv, plan_args *a) {
  memset(a, 0, sizeof *a);
  drv_plan_opts_init(&a->k);
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{drv_model_options, &a->o, NULL},
                             {drv_size_options, &a->o, NULL},
                             {drv_plan_options, &a->k, NULL},
                             {options, a, NULL},
                             {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  a->file = pos[0];
  return rc;
}

/* write_json: the plan JSON, with an "sp" section when the training setup
 * names a lengths file (planner/sp.h). The section is built before the file
 * is opened, so bad lengths leave no half-written plan behind. */
static int write_json(const plan_result *r, const drv_model *m, const ir_cluster *c, const char *path) {
  cJSON *j = plan_json(r);
  if (!j) return EXIT_BAD_INPUT;
  if (m->p.train.lengths && !sp_json_section(j, m->p.g, c, &m->p.train, m->p.train.lengths, &r->opt.calib)) {
    cJSON_Delete(j);
    return EXIT_BAD_INPUT;
  }
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
  if (!f) {
    sbpc_error("plan: cannot write '%s'", path);
    free(s);
    return EXIT_BAD_INPUT;
  }
  bool ok = s && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
  free(s);
  if (f != stdout) ok = (fclose(f) == 0) && ok;
  if (!ok) sbpc_error("plan: writing '%s' failed", path);
  return ok ? EXIT_OK : EXIT_BAD_INPUT;
}

static int plan_model(const plan_args *a, drv_model *m) {
  arena *ar = arena_new();
  plan_result *r;
  int rc = drv_plan(&command, &a->o, &a->k, m, ar, &r);
  if (!rc) {
    plan_print_report(r, stdout, a->explain);
    if (a->json) rc = write_json(r, m, r->c, a->json);
  }
  plan_result_free(r);
  arena_free(ar);
  return rc;
}

int cmd_plan(int argc, char **argv) {
  plan_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  drv_model m;
  if ((rc = drv_model_load(a.file, &m))) return rc;
  rc = plan_model(&a, &m);
  drv_model_free(&m);
  return rc;
}
