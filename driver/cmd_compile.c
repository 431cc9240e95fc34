/* cmd_compile.c — `sbpc compile MODEL.sbp [--plan PLAN.json] -o DIR
 *                 [--dp N --tp N --pp N --micro M --zero Z --recompute R]
 *                 [--batch N --seq N] [--dump kernels] [--precision f32|bf16|f16]
 *                 [--no-cache]`.
 *
 * The front end and shape inference, then, for a model with a loss, the
 * lowering passes (driver/passes.c, drv_lower) for the plan's layout
 * (driver/layout.c: the plan, then the flags) into a program, written to
 * DIR/program.json (format/program.h): everything `sbpc run DIR` needs, with
 * no path to the source, so DIR can be moved or copied and the source
 * deleted. Then codegen (codegen/cg.h: fusion, CUDA C + NVRTC, LLVM + O3,
 * the kernel cache) on the program's graph into DIR/kernels/. A model
 * without a loss gets kernels only. Exit: 0 ok, 1 bad input, 2 bad usage,
 * 4 internal (NVRTC/LLVM failure, with the log). The options are tables
 * (driver/opts.h). */
#include "codegen/cg.h"
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  const char *file, *out;
  drv_opts o;
  drv_layout_opts lo;
  int dump;      /* 0: --dump kernels, 1: --dump gpu; -1: not given */
  bool no_cache;
  int precision; /* -1: from the plan or the train section */
  int device;    /* 0 the CPU, 1 CUDA: the program gets its GPU part (lower/gpu.c) */
} compile_args;

static const drv_command command = {
    .name = "compile", .synopsis = "MODEL.sbp -o DIR [options]", .pos = {"MODEL.sbp"}, .min_pos = 1,
    .about = "Lower the model for a layout into DIR/program.json and generate its kernels into DIR/kernels/.",
};

static const drv_option options[] = {
    {DRV_OPT("-o", DRV_STR, compile_args, out, "DIR", "where the program and kernels go"), .alias = "--out"},
    {DRV_OPT("--dump", DRV_CHOICE, compile_args, dump, "kernels|gpu",
             "print every kernel's IR (docs/kernel-ir.md), or the GPU part per actor (docs/gpu.md)"),
     .choices = "kernels gpu"},
    {DRV_OPT("--device", DRV_CHOICE, compile_args, device, "cpu|cuda",
             "cuda: add the GPU part (kernels, device arena; docs/gpu.md)"),
     .choices = "cpu cuda"},
    {DRV_OPT("--precision", DRV_CALL, compile_args, precision, "f32|bf16|f16",
             "the activations' dtype (default: the train section's, else bf16)"),
     .parse = drv_precision_parse, .expect = "f32, bf16 or f16"},
    {DRV_FLAGOPT("--no-cache", DRV_FLAG, compile_args, no_cache, "do not use the kernel cache")},
    {0}};

static int parse_args(int argc, char **argv, compile_args *a) {
  memset(a, 0, sizeof *a);
  drv_layout_opts_init(&a->lo);
  a->precision = a->dump = -1;
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, a, NULL},
                             {drv_model_options, &a->o, NULL},
                             {drv_size_options, &a->o, NULL},
                             {drv_layout_options, &a->lo, NULL},
                             {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  a->file = pos[0];
  if (rc < 0 && !a->out) return drv_usage_error(&command, "missing -o DIR");
  a->lo.batch = a->o.batch, a->lo.seq = a->o.seq;
  return rc;
}

/* the activation precision: --precision, the plan's, the train section's, bf16 */
static int precision_of(const compile_args *a, const sbpc_plan *plan, const ir_program *prog) {
  if (a->precision >= 0) return a->precision;
  const char *pp = plan ? plan->precision : NULL;
  if (pp) return !strcmp(pp, "fp32") || !strcmp(pp, "f32") ? IR_F32 : !strcmp(pp, "fp16") || !strcmp(pp, "f16") ? IR_F16 : IR_BF16;
  return prog->train.set ? prog->train.precision : IR_BF16;
}

/* the program for the model's layout, written to DIR/program.json (with the
 * GPU part's DIR/gpu/ under --device cuda); takes g */
static int write_program(const compile_args *a, drv_model *m, fmt_prog **out) {
  sbpc_plan *plan = NULL;
  lw_layout lay;
  int rc = drv_layout(&a->lo, &m->p, &plan, &lay);
  if (rc) return rc;
  lay.device = a->device;
  lay.precision = precision_of(a, plan, &m->p);
  fmt_prog *p = drv_lower(m->p.g, &lay, &m->d);
  sbpc_plan_free(plan);
  if (!p) return EXIT_BAD_INPUT;
  m->p.g = NULL; /* the program owns the graph now */
  if (!fmt_prog_write_dir(p, a->out)) return fmt_prog_free(p), EXIT_BAD_INPUT;
  char path[4200];
  snprintf(path, sizeof path, "%s/program.json", a->out);
  if ((rc = lw_gpu_write(p, a->out, a->no_cache, a->dump >= 0 ? stderr : stdout))) return fmt_prog_free(p), rc;
  if (a->dump == 1) lw_gpu_dump(p, stdout);
  int nact = 0;
  for (int s = 0; s < p->nstage; s++) nact += p->stage[s].nact;
  fprintf(a->dump >= 0 ? stderr : stdout, "wrote %s: %d ranks (dp %d x tp %d x pp %d), %d actors, planned peak %.1f MiB per rank\n",
          path, p->dp * p->tp * p->pp, p->dp, p->tp, p->pp, nact, (double)p->predicted_peak / 1048576.0);
  *out = p;
  return EXIT_OK;
}

static int compile_model(compile_args *a, drv_model *m) {
  if (!drv_model_graph(m) || !drv_passes(m->p.g, DRV_SHAPES, &m->d)) return EXIT_BAD_INPUT;
  fmt_prog *p = NULL;
  const ir_graph *g = m->p.g;
  if (g->loss != IR_NONE) {
    int rc = write_program(a, m, &p);
    if (rc) return rc;
    g = p->g;
  } else {
    int rc = drv_bind(&a->o, &m->p);
    if (rc) return rc;
  }
  cg_opts o = {0};
  o.outdir = a->out;
  o.act = a->precision >= 0 ? (ir_dtype)a->precision : m->p.train.set ? m->p.train.precision : IR_BF16;
  o.dump = a->dump == 0;
  o.no_cache = a->no_cache;
  o.tp = 1; /* the program's graph is already one tp rank's shard */
  o.log = a->dump >= 0 ? stderr : stdout;
  int rc = cg_compile(g, &o);
  fmt_prog_free(p);
  return rc;
}

int cmd_compile(int argc, char **argv) {
  compile_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  drv_model m;
  if (!(rc = drv_model_load(a.file, &m))) {
    rc = compile_model(&a, &m);
    drv_model_free(&m);
  }
  return rc;
}
