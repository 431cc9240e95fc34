/* cmd_run.c — `sbpc run`: train a compiled program.
 *
 *   [mpirun -np N] sbpc run DIR [--steps K] [--data TOKENS.bin|PREFIX] [--eos ID]
 *       [--weights IN.safetensors] [--lr X] [--weight-decay X] [--save CKPT]
 *       [--resume CKPT] [--log FILE.jsonl] [--seed N] [--quiet]
 *       [--trace FILE] [--kernels jit|ref] [--device cpu|cuda]
 *   [mpirun -np N] sbpc run MODEL.sbp [the same] [--plan PLAN.json] [--precision f32|bf16|f16]
 *       [--dp N --tp N --pp N --micro M --zero Z --recompute R --batch B --seq S]
 *       [--packed --adaptive-sp [--sp-degree G] [--cluster SPEC] [--calibration FILE]]
 *
 * DIR is what `sbpc compile` wrote; the runtime (runtime/rt.h) runs its
 * program.json as written. A .sbp file is a convenience: it is compiled
 * first, exactly as `sbpc compile MODEL --plan PLAN -o DIR` would (the same
 * front end, so errors keep file:line:col, and the same lowering passes),
 * into a temporary directory that is removed after the run. An adaptive
 * program (--adaptive-sp) gets the planner's SP solver through runtime/rt.h
 * (driver/run_sp.c). The options are tables (driver/opts.h). */
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include "runtime/rt.h"
#include "util/diag.h"
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const drv_command command = {
    .name = "run", .synopsis = "DIR|MODEL.sbp [options]", .pos = {"DIR|MODEL.sbp"}, .min_pos = 1,
    .about = "Train the program `sbpc compile` wrote into DIR, as written; under mpirun for several ranks\n"
             "([mpirun -np N] sbpc run DIR). MODEL.sbp is compiled first into a temporary DIR.",
};

/* --kernels: the words in the order of RT_KERNELS_REF, RT_KERNELS_JIT */
static const drv_option options[] = {
    {DRV_OPT("--steps", DRV_I64, rt_config, steps, "K", "train until step K (default 5; counts resumed steps)"),
     .lo = 0, .hi = INT64_C(1000000000000000)},
    {DRV_OPT("--data", DRV_STR, rt_config, data, "FILE|PREFIX",
             "little-endian int32 tokens, or a Megatron indexed dataset PREFIX(.idx/.bin)\n"
             "(default: a synthetic stream)")},
    {DRV_OPT("--eos", DRV_I64, rt_config, eos, "ID",
             "a packed program's documents end with token ID (with a flat --data file;\n"
             "an indexed dataset's documents are its own)"),
     .lo = 0, .hi = INT32_MAX},
    {DRV_OPT("--weights", DRV_STR, rt_config, weights, "FILE", "Hugging Face safetensors to start from")},
    {DRV_OPT("--lr", DRV_REAL, rt_config, lr, "X", "AdamW learning rate (default: the program's, 1e-3)"),
     .flo = 0, .fhi = 1e15},
    {DRV_OPT("--weight-decay", DRV_REAL, rt_config, weight_decay, "X",
             "AdamW decoupled weight decay (default: the program's, 0.01)"),
     .flo = 0, .fhi = 1e15},
    {DRV_OPT("--save", DRV_STR, rt_config, save, "DIR", "write a universal checkpoint after the last step")},
    {DRV_OPT("--resume", DRV_STR, rt_config, resume, "DIR", "start from a checkpoint (any layout)")},
    {DRV_OPT("--log", DRV_STR, rt_config, log, "FILE", "JSON lines {\"step\", \"loss\", \"tokens_per_s\"}")},
    {DRV_OPT("--seed", DRV_I64, rt_config, seed, "N", "initialisation seed (default 1234)"), .lo = 0,
     .hi = INT64_C(1000000000000000)},
    {DRV_OPT("--kernels", DRV_CHOICE, rt_config, kernels, "jit|ref",
             "jit (codegen's JIT-compiled kernels; the default, falling back to ref\n"
             "with a note) or ref (the fp32 reference kernels); SBPC_KERNELS sets the default"),
     .choices = "ref jit"},
    {DRV_OPT("--trace", DRV_STR, rt_config, trace, "FILE",
             "write the last step as a Chrome/Perfetto trace (docs/trace.md)")},
    {DRV_OPT("--trace-steps", DRV_I64, rt_config, trace_steps, "K",
             "with --trace: the last K steps in one trace (default 1)"), .lo = 1, .hi = 1000000},
    {DRV_OPT("--device", DRV_CHOICE, rt_config, device, "cpu|cuda",
             "cuda: the GPU executor (docs/gpu.md); default: cuda for a program compiled with\n"
             "--device cuda (an error without a usable GPU), else cpu"),
     .choices = "auto cpu cuda"}, /* the order of RT_DEVICE_* */
    {DRV_FLAGOPT("--quiet", DRV_FLAG, rt_config, quiet, "no per-step lines")},
    {0}};

typedef struct {
  rt_config c;
  const char *cluster;  /* --cluster: the devices the SP solver plans for */
  const char *calib;    /* --calibration: the SP solver's measured rates */
  drv_opts o;
  drv_layout_opts lo;
  const char *target;
  int precision;        /* --precision (MODEL.sbp on the GPU), -1: the train section's */
} run_args;

/* with --adaptive-sp */
static const drv_option sp_options[] = {
    {DRV_OPT("--sp-degree", DRV_INT, run_args, c.sp_degree, "G",
             "with --adaptive-sp: every SP group of G ranks (the static baseline), not the\n"
             "solver's per-batch groups"),
     .lo = 1, .hi = 1024},
    {DRV_OPT("--cluster", DRV_STR, run_args, cluster, "SPEC",
             "with --adaptive-sp: the cluster the SP solver plans for (default cpu:N for N ranks)")},
    {DRV_OPT("--calibration", DRV_STR, run_args, calib, "FILE",
             "with --adaptive-sp: the SP solver's measured rates (`sbpc tune`; default $SBPC_CALIBRATION)")},
    {0}};

/* with MODEL.sbp only */
static const drv_option model_options[] = {
    {DRV_OPT("--precision", DRV_CALL, run_args, precision, "f32|bf16|f16",
             "the activations' dtype on the GPU (default: the train section's, else bf16)"),
     .parse = drv_precision_parse, .expect = "f32, bf16 or f16"},
    {0}};

static int parse(int argc, char **argv, run_args *a) {
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, &a->c, NULL},
                             {drv_size_options, &a->o, "with MODEL.sbp, compiled first as `sbpc compile` would"},
                             {model_options, a, NULL},
                             {sp_options, a, NULL},
                             {drv_layout_options, &a->lo, NULL},
                             {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  a->target = pos[0];
  a->lo.batch = a->o.batch, a->lo.seq = a->o.seq;
  return rc;
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* compile MODEL.sbp for the layout into the new directory dir */
static int compile_to(const run_args *a, const char *dir) {
  drv_model m;
  int rc = drv_model_load(a->target, &m);
  if (rc) return rc;
  sbpc_plan *plan = NULL;
  lw_layout lay;
  fmt_prog *p = NULL;
  if (!drv_model_graph(&m) || !drv_passes(m.p.g, DRV_SHAPES, &m.d)) rc = EXIT_BAD_INPUT;
  else rc = drv_layout(&a->lo, &m.p, &plan, &lay);
  lay.device = a->c.device == RT_DEVICE_CUDA; /* a GPU program (lower/gpu.c; its PTX is made when the run starts) */
  lay.precision = a->precision >= 0 ? a->precision : m.p.train.set ? (int)m.p.train.precision : IR_BF16;
  if (!rc && !(p = drv_lower(m.p.g, &lay, &m.d))) rc = EXIT_BAD_INPUT;
  if (p) m.p.g = NULL;
  if (!rc && !fmt_prog_write_dir(p, dir)) rc = EXIT_BAD_INPUT;
  fmt_prog_free(p);
  sbpc_plan_free(plan);
  drv_model_free(&m);
  return rc;
}

static void remove_tmp(const char *dir) {
  const char *names[] = {"program.json", "kernels/cpu.ll", "kernels", ""};
  char path[4200];
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    if (unlink(path) != 0) rmdir(path);
  }
}

/* rt_run with the SP solver (used by adaptive programs only) */
static int run_with_solver(run_args *a, const char *dir, int *argc, char ***argv) {
  rt_sp_solver *sv = drv_sp_solver_new(a->cluster, a->c.sp_degree, a->calib);
  if (!sv) return EXIT_BAD_INPUT; /* the calibration said why */
  a->c.sp_solver = sv;
  a->c.adaptive_sp = a->lo.adaptive;
  int st = rt_run(dir, &a->c, argc, argv);
  drv_sp_solver_free(sv);
  return st;
}

int cmd_run(int argc, char **argv) {
  run_args a;
  memset(&a, 0, sizeof a);
  a.c = rt_config_default();
  a.precision = -1;
  drv_layout_opts_init(&a.lo);
  const char *kern = getenv("SBPC_KERNELS"); /* the default of --kernels */
  if (kern && !strcmp(kern, "jit")) a.c.kernels = RT_KERNELS_JIT;
  if (kern && !strcmp(kern, "ref")) a.c.kernels = RT_KERNELS_REF;
  int st = parse(argc, argv, &a);
  if (st >= 0) return st;
  if (a.c.trace_steps && !a.c.trace) return drv_usage_error(&command, "--trace-steps needs --trace FILE");
  if (is_dir(a.target)) {
    if (a.precision >= 0)
      return drv_usage_error(&command, "%s is a compiled program; its precision was fixed by `sbpc compile`", a.target);
    if (a.lo.plan || a.lo.dp || a.lo.tp || a.lo.pp || a.lo.micro || a.lo.zero >= 0 || a.lo.recompute >= 0 ||
        a.lo.packed || a.lo.sp_kind >= 0 || a.o.batch || a.o.seq)
      return drv_usage_error(&command,
                             "%s is a compiled program; its layout was fixed by `sbpc compile` (recompile to change it)",
                             a.target);
    return run_with_solver(&a, a.target, &argc, &argv);
  }
  char why[512];
  if (a.c.device == RT_DEVICE_AUTO)
    a.c.device = !a.lo.adaptive && rt_cuda_usable(why, sizeof why) ? RT_DEVICE_CUDA : RT_DEVICE_CPU;
  char dir[] = "/tmp/sbpc-run-XXXXXX";
  if (!mkdtemp(dir)) {
    sbpc_error("run: cannot make a temporary directory");
    return EXIT_INTERNAL;
  }
  st = compile_to(&a, dir);
  if (st == EXIT_OK) st = run_with_solver(&a, dir, &argc, &argv);
  remove_tmp(dir);
  return st;
}
