/* cmd_plan.c — `sbpc plan`: search the parallel layout of a model on a
 * cluster, print the report, write the JSON plan.
 *
 * Pipeline: load the model (driver/common.c), bind B and S, infer shapes,
 * pick the cluster (--cluster, or the file's own), read the options (a table,
 * driver/opts.h) and the calibration (--calibration, else $SBPC_CALIBRATION), then plan_search
 * (planner/). Exit 0 with a plan, 1 on bad
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
  const char *file, *json, *fix, *calib, *runtime;
  int top, max_sp, precision; /* precision: an ir_dtype, -1 when not given */
  bool explain;
} plan_args;

static const drv_command command = {
    .name = "plan", .synopsis = "MODEL.sbp [options]", .pos = {"MODEL.sbp"}, .min_pos = 1,
    .about = "Search the parallel layout of the model on the cluster; print the report, write the JSON plan.\n"
             "Exit 3 when no layout fits.",
};

static bool precision_value(const char *p, void *dst) {
  int *out = dst;
  if (!strcmp(p, "bf16")) return *out = IR_BF16, true;
  if (!strcmp(p, "f16") || !strcmp(p, "fp16")) return *out = IR_F16, true;
  if (!strcmp(p, "fp32") || !strcmp(p, "f32")) return *out = IR_F32, true;
  return false;
}

static const drv_option options[] = {
    {DRV_OPT("--precision", DRV_CALL, plan_args, precision, "bf16|f16|fp32",
             "the training precision (default: the train section's)"),
     .parse = precision_value, .expect = "bf16, f16 or fp32"},
    {DRV_OPT("--fix", DRV_STR, plan_args, fix, "KNOBS",
             "fix some knobs, search the rest:\ndp=4,tp=8,pp=2,sp=1,mbs=1,recompute=full,zero=1,vpp=1,devices=N")},
    {DRV_OPT("--top", DRV_INT, plan_args, top, "K", "report the K best layouts (default 3)"), .lo = 1, .hi = 64},
    {DRV_OPT("--json", DRV_STR, plan_args, json, "FILE", "write the plan JSON (- for standard output)")},
    {DRV_FLAGOPT("--explain", DRV_FLAG, plan_args, explain, "add per-op SBP and boxing to the report")},
    {DRV_OPT("--calibration", DRV_STR, plan_args, calib, "FILE",
             "measured rates (`sbpc tune`; default $SBPC_CALIBRATION)")},
    {DRV_OPT("--max-sp", DRV_INT, plan_args, max_sp, "N", "the largest sequence-parallel degree (default 1)"),
     .lo = 1, .hi = 64},
    {DRV_OPT("--runtime", DRV_STR, plan_args, runtime, "PROFILE",
             "the software that runs the plan:\nmegatron-2021, megatron-2022, stack-2024 or sbpc")},
    {0}};

static int parse_args(int argc, char **argv, plan_args *a) {
  memset(a, 0, sizeof *a);
  a->top = 3, a->max_sp = 1, a->precision = -1;
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {
      {drv_model_options, &a->o, NULL}, {drv_size_options, &a->o, NULL}, {options, a, NULL}, {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  a->file = pos[0];
  return rc;
}

/* planner_options: the planner's options. The runtime profile is the cluster's
 * default (plan_runtime_default), then the calibration file's, then
 * --runtime. */
static int planner_options(const plan_args *a, const ir_program *p, const ir_cluster *c, plan_options *po) {
  plan_options_default(po);
  po->top_k = a->top, po->max_sp = a->max_sp;
  po->global_batch = a->o.batch ? a->o.batch : p->train.global_batch;
  po->seq = a->o.seq ? a->o.seq : p->train.seq;
  if (p->train.set && p->train.precision != IR_I32 && p->train.precision != IR_I64) po->precision = p->train.precision;
  if (a->precision >= 0) po->precision = (ir_dtype)a->precision;
  if (a->fix && !plan_fix_parse(a->fix, po)) return EXIT_USAGE;
  plan_runtime_set(&po->calib, plan_runtime_default(c));
  const char *calib = plan_calib_path(a->calib);
  if (calib) {
    if (!plan_calib_load(calib, &po->calib)) return EXIT_BAD_INPUT;
    po->calib_path = calib;
    if (c->name && !strcmp(c->name, "cpu") && !po->calib.exec_per_param) /* no "executor" section */
      sbpc_note("%s has no executor probe, so sbpc's executor is priced by its rooflines alone (`[mpirun -np N] "
                "sbpc tune --from %s --model MODEL.sbp -o out.json` adds it; `sbpc tune --plans` does it itself)",
                calib, calib);
  } else if (c->name && !strcmp(c->name, "cpu")) {
    sbpc_note("the cpu preset's rates are placeholders, so these predictions are uncalibrated (measure this machine "
              "with `[mpirun -np N] sbpc tune --model MODEL.sbp -o calib.json`, then --calibration calib.json or "
              "SBPC_CALIBRATION=calib.json)");
  }
  ir_dtype cp = plan_compute_precision(c, po->precision);
  if (cp != po->precision)
    sbpc_note("the cluster's devices compute in %s only; planned in %s", ir_dtype_name(cp), ir_dtype_name(cp));
  po->precision = cp;
  if (a->runtime && !plan_runtime_set(&po->calib, a->runtime))
    return drv_usage_error(&command, "unknown runtime profile '%s' (one of %s)", a->runtime, plan_runtime_names());
  if (po->global_batch <= 0 || po->seq <= 0) {
    sbpc_error("plan: no batch or sequence length (give --batch and --seq, or a train section)");
    return EXIT_USAGE;
  }
  return EXIT_OK;
}

static int no_plan(const plan_result *r) {
  const plan_layout *l = &r->min_mem_layout;
  if (r->why) {
    sbpc_error("plan: no layout: %s", r->why);
    return EXIT_NO_PLAN;
  }
  if (r->min_mem_bytes >= 1e299) {
    sbpc_error("plan: no layout fits: no candidate layout exists for %d devices and batch %lld (dp must divide "
               "the batch, tp the attention heads, every stage needs a layer; check --fix)", r->ndev,
               (long long)r->opt.global_batch);
    return EXIT_NO_PLAN;
  }
  sbpc_error("plan: no layout fits in device memory: the smallest any candidate needs is %.1f GB per device "
             "(mostly %s), with dp=%d tp=%d pp=%d mbs=%d recompute=%s zero=%d",
             r->min_mem_bytes / 1e9, r->min_mem_dominant ? r->min_mem_dominant : "parameters", l->dp, l->tp,
             l->pp, l->mbs, plan_recompute_name(l->recompute), l->zero);
  return EXIT_NO_PLAN;
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
  int rc = drv_bind(&a->o, &m->p);
  if (rc) return rc;
  if (!drv_model_graph(m) || !drv_passes(m->p.g, DRV_SHAPES, &m->d)) return EXIT_BAD_INPUT;
  arena *ar = arena_new();
  const ir_cluster *c = drv_cluster(&a->o, &m->p, ar, NULL);
  if (!c) {
    if (!a->o.cluster && !m->p.cluster) sbpc_error("plan: no cluster (give --cluster PRESET:NODES or a cluster section)");
    arena_free(ar);
    return EXIT_BAD_INPUT;
  }
  plan_options po;
  if ((rc = planner_options(a, &m->p, c, &po))) {
    arena_free(ar);
    return rc;
  }
  plan_result *r = plan_search(m->p.g, c, &po);
  if (!r) rc = EXIT_BAD_INPUT;
  else if (r->ntop == 0) rc = no_plan(r);
  else {
    plan_print_report(r, stdout, a->explain);
    if (a->json) rc = write_json(r, m, c, a->json);
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
