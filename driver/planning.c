/* planning.c — the planner on the command line, shared by `sbpc plan` and
 * `sbpc trace MODEL.sbp`: the planner's knobs (the table drv_plan_options:
 * --precision --fix --calibration --max-sp --runtime), the planner's options
 * built from them and the model's train section, and the search itself, with
 * the "no layout fits" diagnosis. One place, so that a model traced and the
 * same model planned are planned alike (the calibration included). */
#include "driver/common.h"
#include "planner/planner.h"
#include "util/diag.h"
#include <string.h>

static bool precision_value(const char *p, void *dst) {
  int *out = dst;
  if (!strcmp(p, "bf16")) return *out = IR_BF16, true;
  if (!strcmp(p, "f16") || !strcmp(p, "fp16")) return *out = IR_F16, true;
  if (!strcmp(p, "fp32") || !strcmp(p, "f32")) return *out = IR_F32, true;
  return false;
}

const drv_option drv_plan_options[] = {
    {DRV_OPT("--precision", DRV_CALL, drv_plan_opts, precision, "bf16|f16|fp32",
             "the training precision (default: the train section's)"),
     .parse = precision_value, .expect = "bf16, f16 or fp32"},
    {DRV_OPT("--fix", DRV_STR, drv_plan_opts, fix, "KNOBS",
             "fix some knobs, search the rest:\ndp=4,tp=8,pp=2,sp=1,mbs=1,recompute=full,zero=1,vpp=1,devices=N")},
    {DRV_OPT("--calibration", DRV_STR, drv_plan_opts, calib, "FILE",
             "measured rates (`sbpc tune`; default $SBPC_CALIBRATION)")},
    {DRV_OPT("--max-sp", DRV_INT, drv_plan_opts, max_sp, "N", "the largest sequence-parallel degree (default 1)"),
     .lo = 1, .hi = 64},
    {DRV_OPT("--runtime", DRV_STR, drv_plan_opts, runtime, "PROFILE",
             "the software that runs the plan:\nmegatron-2021, megatron-2022, stack-2024 or sbpc")},
    {0}};

void drv_plan_opts_init(drv_plan_opts *k) {
  memset(k, 0, sizeof *k);
  k->top = 3, k->max_sp = 1, k->precision = -1;
}

bool drv_plan_opts_given(const drv_plan_opts *k) {
  return k->fix || k->calib || k->runtime || k->max_sp != 1 || k->precision >= 0;
}

/* calib_notes: what the cpu preset's predictions rest on, said once. */
static void calib_notes(const ir_cluster *c, const char *calib, const plan_options *po) {
  if (!c->name || strcmp(c->name, "cpu")) return;
  if (calib && !po->calib.exec_per_param) /* no "executor" section */
    sbpc_note("%s has no executor probe, so sbpc's executor is priced by its rooflines alone (`[mpirun -np N] "
              "sbpc tune --from %s --model MODEL.sbp -o out.json` adds it; `sbpc tune --plans` does it itself)",
              calib, calib);
  else if (!calib)
    sbpc_note("the cpu preset's rates are placeholders, so these predictions are uncalibrated (measure this machine "
              "with `[mpirun -np N] sbpc tune --model MODEL.sbp -o calib.json`, then --calibration calib.json or "
              "SBPC_CALIBRATION=calib.json)");
}

/* planner_options: the planner's options. The runtime profile is the
 * cluster's default (plan_runtime_default), then the calibration file's,
 * then --runtime. */
static int planner_options(const drv_command *cmd, const drv_plan_opts *k, const drv_opts *o, const ir_program *p,
                           const ir_cluster *c, plan_options *po) {
  plan_options_default(po);
  po->top_k = k->top, po->max_sp = k->max_sp;
  po->global_batch = o->batch ? o->batch : p->train.global_batch;
  po->seq = o->seq ? o->seq : p->train.seq;
  if (p->train.set && p->train.precision != IR_I32 && p->train.precision != IR_I64) po->precision = p->train.precision;
  if (k->precision >= 0) po->precision = (ir_dtype)k->precision;
  if (k->fix && !plan_fix_parse(k->fix, po)) return EXIT_USAGE;
  plan_runtime_set(&po->calib, plan_runtime_default(c));
  const char *calib = plan_calib_path(k->calib);
  if (calib) {
    if (!plan_calib_load(calib, &po->calib)) return EXIT_BAD_INPUT;
    po->calib_path = calib;
  }
  calib_notes(c, calib, po);
  ir_dtype cp = plan_compute_precision(c, po->precision);
  if (cp != po->precision)
    sbpc_note("the cluster's devices compute in %s only; planned in %s", ir_dtype_name(cp), ir_dtype_name(cp));
  po->precision = cp;
  if (k->runtime && !plan_runtime_set(&po->calib, k->runtime))
    return drv_usage_error(cmd, "unknown runtime profile '%s' (one of %s)", k->runtime, plan_runtime_names());
  if (po->global_batch <= 0 || po->seq <= 0) {
    sbpc_error("%s: no batch or sequence length (give --batch and --seq, or a train section)", cmd->name);
    return EXIT_USAGE;
  }
  return EXIT_OK;
}

/* no_plan: why nothing fits, as an error; exit 3. */
static int no_plan(const char *cmd, const plan_result *r) {
  const plan_layout *l = &r->min_mem_layout;
  if (r->why) {
    sbpc_error("%s: no layout: %s", cmd, r->why);
    return EXIT_NO_PLAN;
  }
  if (r->min_mem_bytes >= 1e299) {
    sbpc_error("%s: no layout fits: no candidate layout exists for %d devices and batch %lld (dp must divide "
               "the batch, tp the attention heads, every stage needs a layer; check --fix)", cmd, r->ndev,
               (long long)r->opt.global_batch);
    return EXIT_NO_PLAN;
  }
  sbpc_error("%s: no layout fits in device memory: the smallest any candidate needs is %.1f GB per device "
             "(mostly %s), with dp=%d tp=%d pp=%d mbs=%d recompute=%s zero=%d", cmd,
             r->min_mem_bytes / 1e9, r->min_mem_dominant ? r->min_mem_dominant : "parameters", l->dp, l->tp,
             l->pp, l->mbs, plan_recompute_name(l->recompute), l->zero);
  return EXIT_NO_PLAN;
}

int drv_plan(const drv_command *cmd, const drv_opts *o, const drv_plan_opts *k, drv_model *m, arena *ar,
             plan_result **out) {
  *out = NULL;
  int rc = drv_bind(o, &m->p);
  if (rc) return rc;
  if (!drv_model_graph(m) || !drv_passes(m->p.g, DRV_SHAPES, &m->d)) return EXIT_BAD_INPUT;
  const ir_cluster *c = drv_cluster(o, &m->p, ar, NULL); /* says why not */
  if (!c) return EXIT_BAD_INPUT;
  plan_options po;
  if ((rc = planner_options(cmd, k, o, &m->p, c, &po))) return rc;
  plan_result *r = plan_search(m->p.g, c, &po);
  if (!r) return EXIT_BAD_INPUT;
  if (r->ntop == 0) {
    rc = no_plan(cmd->name, r);
    plan_result_free(r);
    return rc;
  }
  *out = r;
  return EXIT_OK;
}
