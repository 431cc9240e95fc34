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
 * 4 internal (NVRTC/LLVM failure, with the log). */
#include "codegen/cg.h"
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_line[] =
    "usage: sbpc compile MODEL.sbp [--plan PLAN.json] -o DIR [--dp N] [--tp N] [--pp N] [--micro M]\n"
    "                    [--zero 0-3] [--recompute none|selective|full] [--batch N] [--seq N]\n"
    "                    [--dump kernels] [--precision f32|bf16|f16] [--no-cache]";

typedef struct {
  const char *file, *out;
  drv_opts o;
  drv_layout_opts lo;
  bool dump, no_cache;
  int precision; /* -1: from the plan or the train section */
} compile_args;

static int bad_usage(const char *why, const char *what) {
  if (why) fprintf(stderr, "sbpc compile: %s%s%s\n", why, what ? ": " : "", what ? what : "");
  fprintf(stderr, "%s\n", usage_line);
  return EXIT_USAGE;
}

static const char *value(int argc, char **argv, int *i, const char *name) {
  const char *s = argv[*i];
  size_t n = strlen(name);
  if (!strncmp(s, name, n) && s[n] == '=') return s + n + 1;
  if (strcmp(s, name)) return NULL;
  if (*i + 1 >= argc) return "";
  return argv[++*i];
}

static int parse_args(int argc, char **argv, compile_args *a) {
  memset(a, 0, sizeof *a);
  drv_layout_opts_init(&a->lo);
  a->precision = -1;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *v;
    int r = drv_opt(argc, argv, &i, &a->o);
    if (r == 0) r = drv_layout_opt(argc, argv, &i, &a->lo);
    if (r < 0) return bad_usage(NULL, NULL);
    if (r > 0) continue;
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      printf("%s\n", usage_line);
      return EXIT_OK;
    }
    if ((v = value(argc, argv, &i, "-o")) || (v = value(argc, argv, &i, "--out"))) a->out = v;
    else if ((v = value(argc, argv, &i, "--dump"))) {
      if (strcmp(v, "kernels")) return bad_usage("--dump takes 'kernels'", NULL);
      a->dump = true;
    } else if ((v = value(argc, argv, &i, "--precision"))) {
      a->precision = ir_dtype_parse(v);
      if (a->precision != IR_F32 && a->precision != IR_BF16 && a->precision != IR_F16)
        return bad_usage("--precision takes f32, bf16 or f16", v);
    } else if (!strcmp(s, "--no-cache")) a->no_cache = true;
    else if (s[0] == '-' && s[1]) return bad_usage("unknown option", s);
    else if (a->file) return bad_usage("more than one model file", s);
    else a->file = s;
  }
  if (!a->file) return bad_usage("missing the model file", NULL);
  if (!a->out || !*a->out) return bad_usage("missing -o DIR", NULL);
  a->lo.batch = a->o.batch, a->lo.seq = a->o.seq;
  return -1;
}

/* the program for the model's layout, written to DIR/program.json; takes g */
static int write_program(const compile_args *a, drv_model *m, fmt_prog **out) {
  sbpc_plan *plan = NULL;
  lw_layout lay;
  int rc = drv_layout(&a->lo, &m->p, &plan, &lay);
  if (rc) return rc;
  fmt_prog *p = drv_lower(m->p.g, &lay, &m->d);
  sbpc_plan_free(plan);
  if (!p) return EXIT_BAD_INPUT;
  m->p.g = NULL; /* the program owns the graph now */
  if (!fmt_prog_write_dir(p, a->out)) return fmt_prog_free(p), EXIT_BAD_INPUT;
  char path[4200];
  snprintf(path, sizeof path, "%s/program.json", a->out);
  int nact = 0;
  for (int s = 0; s < p->nstage; s++) nact += p->stage[s].nact;
  fprintf(a->dump ? stderr : stdout, "wrote %s: %d ranks (dp %d x tp %d x pp %d), %d actors, planned peak %.1f MiB per rank\n",
          path, p->dp * p->tp * p->pp, p->dp, p->tp, p->pp, nact, (double)p->predicted_peak / 1048576.0);
  *out = p;
  return EXIT_OK;
}

static int compile_model(compile_args *a, drv_model *m) {
  if (!m->p.g) {
    fprintf(stderr, "%s: error: the file has no model section\n", a->file);
    return EXIT_BAD_INPUT;
  }
  if (!drv_passes(m->p.g, DRV_SHAPES, &m->d)) return EXIT_BAD_INPUT;
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
  o.dump = a->dump;
  o.no_cache = a->no_cache;
  o.tp = 1; /* the program's graph is already one tp rank's shard */
  o.log = a->dump ? stderr : stdout;
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
