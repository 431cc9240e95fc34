/* cmd_compile.c — `sbpc compile MODEL.sbp [--plan PLAN.json] -o DIR
 *                 [--dump kernels] [--precision f32|bf16|f16] [--no-cache]
 *                 [--mesh ...] [--batch N] [--seq N]`.
 *
 * Runs the front end and the IR passes (shape inference; autodiff when the
 * model has a loss, so backward and optimizer kernels are made too; verify),
 * then codegen (codegen/cg.h: fusion, CUDA C + NVRTC, LLVM + O3, the kernel
 * cache) into DIR/kernels/, and copies the plan to DIR/plan.json. From the
 * plan (docs/plan-format.md) it takes only parallel.micro_batch (B of the
 * launch shapes), train.seq, train.precision (activation dtype) and
 * parallel.tp (attention heads per device). For a model with a loss it also
 * writes DIR/actors.json (runtime/rt.h, rt_write_actor_plan: the model's
 * absolute path, the plan's layout, global batch and seq, the actors), which
 * `sbpc run DIR` reads. Exit: 0 ok, 1 bad input, 2 bad usage, 4 internal
 * (NVRTC/LLVM failure, with the log). */
#include "codegen/cg.h"
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include "ir/autodiff.h"
#include "runtime/rt.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char usage_line[] =
    "usage: sbpc compile MODEL.sbp [--plan PLAN.json] -o DIR [--dump kernels] [--precision f32|bf16|f16]\n"
    "                    [--no-cache] [--mesh N|NxM] [--batch N] [--seq N]";

typedef struct {
  const char *file, *plan, *out;
  drv_opts o;
  bool dump, no_cache;
  int precision; /* -1: from the plan or the train section */
} compile_args;

static int bad_usage(const char *why, const char *what) {
  if (why) fprintf(stderr, "sbpc compile: %s%s%s\n", why, what ? ": " : "", what ? what : "");
  fprintf(stderr, "%s\n", usage_line);
  return EXIT_USAGE;
}

/* value: the argument of option argv[*i] ("-o DIR" or "--opt=VAL"). */
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
  a->precision = -1;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *v;
    int r = drv_opt(argc, argv, &i, &a->o);
    if (r < 0) return bad_usage(NULL, NULL);
    if (r > 0) continue;
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      printf("%s\n", usage_line);
      return EXIT_OK;
    }
    if ((v = value(argc, argv, &i, "--plan"))) a->plan = v;
    else if ((v = value(argc, argv, &i, "-o")) || (v = value(argc, argv, &i, "--out"))) a->out = v;
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
  if (a->plan && !*a->plan) return bad_usage("--plan needs a file", NULL);
  return -1;
}

typedef struct {
  char *text;
  size_t len;
  int64_t micro_batch, seq, tp, sp, vpp;
  int precision;
} plan_info;

static int64_t num(const cJSON *o, const char *sect, const char *key) {
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, sect);
  const cJSON *v = s ? cJSON_GetObjectItemCaseSensitive(s, key) : NULL;
  return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e15 ? (int64_t)v->valuedouble : 0;
}

/* read_plan: the few plan fields codegen needs. */
static int read_plan(const char *path, plan_info *p) {
  memset(p, 0, sizeof *p);
  p->precision = -1;
  p->text = read_file(path, 256u << 20, &p->len);
  if (!p->text) return EXIT_BAD_INPUT;
  cJSON *j = cJSON_ParseWithLength(p->text, p->len);
  if (!j || !cJSON_IsObject(j)) {
    fprintf(stderr, "%s: error: not a JSON plan object\n", path);
    cJSON_Delete(j);
    return EXIT_BAD_INPUT;
  }
  p->micro_batch = num(j, "parallel", "micro_batch");
  p->tp = num(j, "parallel", "tp");
  p->sp = num(j, "parallel", "sp");
  p->vpp = num(j, "parallel", "vpp");
  p->seq = num(j, "train", "seq");
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "train");
  const cJSON *pr = t ? cJSON_GetObjectItemCaseSensitive(t, "precision") : NULL;
  if (cJSON_IsString(pr)) p->precision = ir_dtype_parse(pr->valuestring);
  cJSON_Delete(j);
  return EXIT_OK;
}

static int copy_plan(const compile_args *a, const plan_info *p) {
  char path[4096];
  snprintf(path, sizeof path, "%s/plan.json", a->out);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p->text, 1, p->len, f) != p->len || fclose(f) != 0) {
    sbpc_error("cannot write %s", path);
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}

/* write_actors: DIR/actors.json for `sbpc run DIR`. The layout, global batch
 * and seq come from the plan when there is one, else 1 device with --batch /
 * --seq or the train section. Rebinds B and S of the graph (after codegen).
 * Plans the runtime cannot run (sp or vpp > 1) get a note and no file. */
static int write_actors(const compile_args *a, drv_model *m, const plan_info *p) {
  if (p->sp > 1 || p->vpp > 1) {
    printf("note: no actors.json: the runtime does not run sequence parallelism or interleaved stages (sp %lld, vpp %lld)\n",
           (long long)p->sp, (long long)p->vpp);
    return EXIT_OK;
  }
  rt_config c = rt_config_default();
  if (a->plan && !rt_read_plan_json(a->plan, &c)) return EXIT_BAD_INPUT;
  if (!a->plan) {
    c.global_batch = a->o.batch ? a->o.batch : m->p.train.global_batch ? m->p.train.global_batch : 1;
    c.seq = a->o.seq ? a->o.seq : m->p.train.seq;
  }
  if (a->o.seq) c.seq = a->o.seq;
  char *abs = realpath(a->file, NULL), path[4096];
  c.model = abs ? abs : a->file;
  snprintf(path, sizeof path, "%s/actors.json", a->out);
  bool ok = rt_write_actor_plan(m->p.g, &c, path);
  free(abs);
  if (ok) fprintf(a->dump ? stderr : stdout, "wrote %s\n", path);
  return ok ? EXIT_OK : EXIT_BAD_INPUT;
}

static int compile_model(compile_args *a, drv_model *m, const plan_info *p) {
  if (!m->p.g) {
    fprintf(stderr, "%s: error: the file has no model section\n", a->file);
    return EXIT_BAD_INPUT;
  }
  if (!a->o.batch && p->micro_batch) a->o.batch = p->micro_batch;
  if (!a->o.seq && p->seq) a->o.seq = p->seq;
  int rc = drv_bind(&a->o, &m->p);
  if (rc) return rc;
  if (!drv_passes(m->p.g, DRV_TRAIN, &m->d)) return EXIT_BAD_INPUT;
  cg_opts o = {0};
  o.outdir = a->out;
  o.act = a->precision >= 0 ? (ir_dtype)a->precision
        : p->precision >= 0 ? (ir_dtype)p->precision
        : m->p.train.set ? m->p.train.precision : IR_BF16;
  o.dump = a->dump;
  o.no_cache = a->no_cache;
  o.tp = (int)(p->tp > 0 ? p->tp : 1);
  o.log = a->dump ? stderr : stdout;
  rc = cg_compile(m->p.g, &o);
  if (!rc && p->text) rc = copy_plan(a, p);
  if (!rc && m->p.g->loss != IR_NONE) rc = write_actors(a, m, p);
  return rc;
}

int cmd_compile(int argc, char **argv) {
  compile_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  plan_info p;
  memset(&p, 0, sizeof p);
  p.precision = -1;
  if (a.plan && (rc = read_plan(a.plan, &p))) {
    free(p.text);
    return rc;
  }
  drv_model m;
  if (!(rc = drv_model_load(a.file, &m))) {
    rc = compile_model(&a, &m, &p);
    drv_model_free(&m);
  }
  free(p.text);
  return rc;
}
