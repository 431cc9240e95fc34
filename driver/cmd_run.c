/* cmd_run.c — `sbpc run`: train a compiled program.
 *
 *   [mpirun -np N] sbpc run DIR [--steps K] [--data TOKENS.bin]
 *       [--weights IN.safetensors] [--lr X] [--weight-decay X] [--save CKPT]
 *       [--resume CKPT] [--log FILE.jsonl] [--seed N] [--quiet]
 *       [--trace FILE] [--kernels jit|ref]
 *   [mpirun -np N] sbpc run MODEL.sbp [the same] [--plan PLAN.json]
 *       [--dp N --tp N --pp N --micro M --zero Z --recompute R --batch B --seq S]
 *
 * DIR is what `sbpc compile` wrote; the runtime (runtime/rt.h) runs its
 * program.json as written. A .sbp file is a convenience: it is compiled
 * first, exactly as `sbpc compile MODEL --plan PLAN -o DIR` would (the same
 * front end, so errors keep file:line:col, and the same lowering passes),
 * into a temporary directory that is removed after the run. */
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

static void usage(FILE *f) {
  fprintf(f, "usage: [mpirun -np N] sbpc run DIR|MODEL.sbp [options]\n"
             "  --steps K            train until step K (default 5; counts resumed steps)\n"
             "  --data FILE          little-endian int32 tokens (default: a synthetic stream)\n"
             "  --weights FILE       Hugging Face safetensors to start from\n"
             "  --lr X               AdamW learning rate (default: the program's, 1e-3)\n"
             "  --weight-decay X     AdamW decoupled weight decay (default: the program's, 0.01)\n"
             "  --save DIR           write a universal checkpoint after the last step\n"
             "  --resume DIR         start from a checkpoint (any layout)\n"
             "  --log FILE           JSON lines {\"step\", \"loss\", \"tokens_per_s\"}\n"
             "  --seed N             initialisation seed (default 1234)\n"
             "  --kernels K          jit (codegen's JIT-compiled row kernels; the default, falling\n"
             "                       back to ref with a note) or ref (the fp32 reference kernels);\n"
             "                       SBPC_KERNELS=ref|jit sets the default\n"
             "  --trace FILE         write the last step as a Chrome/Perfetto trace (docs/trace.md)\n"
             "  --quiet              no per-step lines\n"
             "with MODEL.sbp, compiled first into a temporary DIR, as `sbpc compile` would:\n"
             "  --plan PLAN.json     the layout, batch and seq of a `sbpc plan --json` file\n"
             "  --dp N --tp N --pp N --micro M --zero Z --recompute none|selective|full\n"
             "  --batch B --seq S    (flags win over the plan)\n");
}

static bool num(const char *s, double lo, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (*s == 0 || *end || !(v >= lo) || v > 1e15) return false;
  *out = v;
  return true;
}

/* one run option: 0 taken, 1 not a run option, 2 bad value */
static int option(rt_config *c, const char *k, const char *v) {
  const char *sopts[] = {"--data", "--weights", "--save", "--resume", "--log", "--trace"};
  const char **sdst[] = {&c->data, &c->weights, &c->save, &c->resume, &c->log, &c->trace};
  for (int i = 0; i < 6; i++)
    if (!strcmp(k, sopts[i])) return *v ? (*sdst[i] = v, 0) : 2;
  if (!strcmp(k, "--kernels"))
    return !strcmp(v, "ref") || !strcmp(v, "jit") ? (c->kernels = !strcmp(v, "jit") ? RT_KERNELS_JIT : RT_KERNELS_REF, 0) : 2;
  double x;
  if (!strcmp(k, "--lr")) return num(v, 0, &x) ? (c->lr = x, 0) : 2;
  if (!strcmp(k, "--weight-decay")) return num(v, 0, &x) ? (c->weight_decay = x, 0) : 2;
  bool whole = num(v, 0, &x) && x == (double)(int64_t)x;
  if (!strcmp(k, "--steps")) return whole ? (c->steps = (int64_t)x, 0) : 2;
  if (!strcmp(k, "--seed")) return whole ? (c->seed = (uint64_t)x, 0) : 2;
  return 1;
}

typedef struct {
  rt_config c;
  drv_opts o;
  drv_layout_opts lo;
  const char *target;
} run_args;

static int parse(int argc, char **argv, run_args *a) {
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) return usage(stdout), -1;
    if (!strcmp(s, "--quiet")) {
      a->c.quiet = true;
      continue;
    }
    int r = drv_opt(argc, argv, &i, &a->o);
    if (r == 0) r = drv_layout_opt(argc, argv, &i, &a->lo);
    if (r < 0) return EXIT_USAGE;
    if (r > 0) continue;
    if (!strncmp(s, "--", 2)) {
      if (i + 1 >= argc) {
        sbpc_error("run: %s needs a value", s);
        return EXIT_USAGE;
      }
      int o = option(&a->c, s, argv[i + 1]);
      if (o) {
        sbpc_error(o == 2 ? "run: bad value '%s' for %s" : "run: unknown option '%s'%s", o == 2 ? argv[i + 1] : s,
                   o == 2 ? s : "");
        return EXIT_USAGE;
      }
      i++;
    } else if (!a->target) {
      a->target = s;
    } else {
      sbpc_error("run: more than one program given ('%s')", s);
      return EXIT_USAGE;
    }
  }
  if (!a->target) return usage(stderr), EXIT_USAGE;
  a->lo.batch = a->o.batch, a->lo.seq = a->o.seq;
  return 0;
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
  if (!m.p.g) rc = (sbpc_error("%s: the file has no model", a->target), EXIT_BAD_INPUT);
  else if (!drv_passes(m.p.g, DRV_SHAPES, &m.d)) rc = EXIT_BAD_INPUT;
  else rc = drv_layout(&a->lo, &m.p, &plan, &lay);
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

int cmd_run(int argc, char **argv) {
  run_args a;
  memset(&a, 0, sizeof a);
  a.c = rt_config_default();
  drv_layout_opts_init(&a.lo);
  const char *kern = getenv("SBPC_KERNELS"); /* the default of --kernels */
  if (kern && !strcmp(kern, "jit")) a.c.kernels = RT_KERNELS_JIT;
  if (kern && !strcmp(kern, "ref")) a.c.kernels = RT_KERNELS_REF;
  int st = parse(argc, argv, &a);
  if (st) return st < 0 ? EXIT_OK : st;
  if (is_dir(a.target)) {
    if (a.lo.plan || a.lo.dp || a.lo.tp || a.lo.pp || a.lo.micro || a.lo.zero >= 0 || a.lo.recompute >= 0 || a.o.batch || a.o.seq) {
      sbpc_error("run: %s is a compiled program; its layout was fixed by `sbpc compile` (recompile to change it)", a.target);
      return EXIT_USAGE;
    }
    return rt_run(a.target, &a.c, &argc, &argv);
  }
  char dir[] = "/tmp/sbpc-run-XXXXXX";
  if (!mkdtemp(dir)) {
    sbpc_error("run: cannot make a temporary directory");
    return EXIT_INTERNAL;
  }
  st = compile_to(&a, dir);
  if (st == EXIT_OK) st = rt_run(dir, &a.c, &argc, &argv);
  remove_tmp(dir);
  return st;
}
