/* cmd_run.c — `sbpc run`: train a model with a compiled plan.
 *
 *   [mpirun -np N] sbpc run DIR|MODEL.sbp [--steps K] [--data TOKENS.bin]
 *       [--weights IN.safetensors] [--lr X] [--weight-decay X] [--save CKPT]
 *       [--resume CKPT] [--log FILE.jsonl] [--seed N] [--quiet]
 *       [--dp N] [--tp N] [--pp N] [--micro M] [--batch B] [--seq S]
 *       [--executor actors|interp|auto] [--write-actors FILE] [--plan PLAN.json]
 *       [--zero N] [--recompute none|selective|full] [--trace FILE]
 *
 * DIR is what `sbpc compile` wrote: DIR/actors.json names the model file and
 * records the layout, batch and sequence length; DIR/plan.json, when there,
 * adds the ZeRO stage and recompute policy. A .sbp file may be run
 * directly with the layout given by flags; flags override the plan. The model
 * goes through the front end and shape inference, then the runtime (rt_train)
 * does autodiff, placement and the training loop. */
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

/* The most tokens one training step may hold (batch x seq), as the plan readers allow. */
#define MAX_TOKENS ((int64_t)1 << 28)

static void usage(FILE *f) {
  fprintf(f, "usage: [mpirun -np N] sbpc run DIR|MODEL.sbp [options]\n"
             "  --steps K            train until step K (default 5; counts resumed steps)\n"
             "  --data FILE          little-endian int32 tokens (default: a synthetic stream)\n"
             "  --weights FILE       Hugging Face safetensors to start from\n"
             "  --lr X               AdamW learning rate (default 1e-3)\n"
             "  --weight-decay X     AdamW decoupled weight decay (default 0.01)\n"
             "  --save DIR           write a universal checkpoint after the last step\n"
             "  --resume DIR         start from a checkpoint (any layout)\n"
             "  --log FILE           JSON lines {\"step\", \"loss\", \"tokens_per_s\"}\n"
             "  --seed N             initialisation seed (default 1234)\n"
             "  --zero N             1: shard AdamW state over the data-parallel group;\n"
             "                       2: also reduce-scatter the gradients (3 runs as 2)\n"
             "  --plan PLAN.json     take the layout, batch and seq from a `sbpc plan --json` file\n"
             "  --dp N --tp N --pp N --micro M   layout (overrides the plan)\n"
             "  --batch B --seq S    global batch (samples) and sequence length\n"
             "  --executor E         actors (threaded actor executor; default unless tp > 1),\n"
             "                       interp (sequential interpreter), auto\n"
             "  --recompute P        none, selective (attention outputs) or full (a layer keeps\n"
             "                       its input); runs with the interpreter\n"
             "  --kernels K          jit (codegen's JIT-compiled row kernels for elementwise\n"
             "                       and row ops; the default, falling back to ref with a note\n"
             "                       when the JIT cannot be set up) or ref (the fp32 reference\n"
             "                       kernels); SBPC_KERNELS=ref|jit sets the default\n"
             "  --trace FILE         write the last step as a Chrome/Perfetto trace (docs/trace.md)\n"
             "  --quiet              no per-step lines\n"
             "  --write-actors FILE  write the actor plan of this layout (actors.json) and exit\n");
}

static bool num(const char *s, double lo, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (*s == 0 || *end || !(v >= lo) || v > 1e15) return false;
  *out = v;
  return true;
}

static const char *write_actors; /* --write-actors FILE */
static const char *plan_json;    /* --plan PLAN.json */

/* set one option; returns 0 ok, 1 not an option we know, 2 bad value */
static int option(rt_config *c, const char *k, const char *v) {
  const char *sopts[] = {"--data", "--weights", "--save", "--resume", "--log", "--write-actors", "--plan", "--trace"};
  const char **sdst[] = {&c->data, &c->weights, &c->save, &c->resume, &c->log, &write_actors, &plan_json, &c->trace};
  for (int i = 0; i < 8; i++)
    if (!strcmp(k, sopts[i])) return *sdst[i] = v, 0;
  if (!strcmp(k, "--kernels"))
    return !strcmp(v, "ref") || !strcmp(v, "jit") ? (c->kernels = !strcmp(v, "jit") ? RT_KERNELS_JIT : RT_KERNELS_REF, 0) : 2;
  if (!strcmp(k, "--recompute")) return rt_recompute_parse(v) >= 0 ? (c->recompute = rt_recompute_parse(v), 0) : 2;
  if (!strcmp(k, "--executor")) {
    const char *names[] = {"auto", "actors", "interp"};
    for (int i = 0; i < 3; i++)
      if (!strcmp(v, names[i])) return c->executor = i, 0;
    return 2;
  }
  double x;
  if (!strcmp(k, "--lr")) return num(v, 0, &x) ? (c->lr = x, 0) : 2;
  if (!strcmp(k, "--weight-decay")) return num(v, 0, &x) ? (c->weight_decay = x, 0) : 2;
  if (!num(v, 0, &x) || x != (double)(int64_t)x) return !strncmp(k, "--", 2) ? 2 : 1;
  if (!strcmp(k, "--steps")) return c->steps = (int64_t)x, 0;
  if (!strcmp(k, "--seed")) return c->seed = (uint64_t)x, 0;
  if (!strcmp(k, "--zero")) return x <= 3 ? (c->zero = (int)x, 0) : 2;
  if (!strcmp(k, "--batch")) return x >= 1 && x <= MAX_TOKENS ? (c->global_batch = (int64_t)x, 0) : 2;
  if (!strcmp(k, "--seq")) return x >= 1 && x <= MAX_TOKENS ? (c->seq = (int64_t)x, 0) : 2;
  int *lay[] = {&c->lay.dp, &c->lay.tp, &c->lay.pp, &c->lay.micro};
  const char *lopts[] = {"--dp", "--tp", "--pp", "--micro"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(k, lopts[i])) return x >= 1 && x <= 4096 ? (*lay[i] = (int)x, 0) : 2;
  return 1;
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* the plan directory or model file gives the defaults; flags come after */
static int parse(int argc, char **argv, rt_config *c, arena *a, const char **target) {
  *target = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), -1;
    if (!strcmp(argv[i], "--quiet")) {
      c->quiet = true;
    } else if (!strncmp(argv[i], "--", 2)) {
      rt_config probe = *c; /* the last word: is it an option (that lacks its value)? */
      int r = i + 1 < argc ? option(c, argv[i], argv[i + 1]) : option(&probe, argv[i], "1") == 1 ? 1 : 3;
      if (r == 3) sbpc_error("run: %s needs a value", argv[i]);
      else if (r)
        sbpc_error(r == 2 ? "run: bad value '%s' for %s" : "run: unknown option '%s'%s", r == 2 ? argv[i + 1] : argv[i],
                   r == 2 ? argv[i] : "");
      if (r) return EXIT_USAGE;
      i++;
    } else if (!*target) {
      *target = argv[i];
    } else {
      sbpc_error("run: more than one plan given ('%s')", argv[i]);
      return EXIT_USAGE;
    }
  }
  if (!*target) {
    usage(stderr);
    return EXIT_USAGE;
  }
  return 0;
}

static int load_plan(const char *target, rt_config *c, arena *a) {
  if (plan_json && !rt_read_plan_json(plan_json, c)) return EXIT_BAD_INPUT;
  if (!is_dir(target)) {
    c->model = target;
    return 0;
  }
  /* a compiled directory: its plan.json (ZeRO stage, recompute) when `sbpc
   * compile --plan` copied one, then actors.json (model, layout, batch, seq) */
  char *pj = arena_printf(a, "%s/plan.json", target);
  struct stat st;
  if (!plan_json && stat(pj, &st) == 0 && !rt_read_plan_json(pj, c)) return EXIT_BAD_INPUT;
  char *p = arena_printf(a, "%s/actors.json", target);
  return rt_read_actor_plan(p, c, a) ? 0 : EXIT_BAD_INPUT;
}

int cmd_run(int argc, char **argv) {
  rt_config c = rt_config_default();
  const char *kern = getenv("SBPC_KERNELS"); /* the default of --kernels */
  if (kern && !strcmp(kern, "jit")) c.kernels = RT_KERNELS_JIT;
  if (kern && !strcmp(kern, "ref")) c.kernels = RT_KERNELS_REF;
  arena *a = arena_new();
  const char *target;
  int st = parse(argc, argv, &c, a, &target);
  if (st == 0) {
    st = load_plan(target, &c, a);
    /* flags win over the plan: re-apply them */
    if (st == 0) st = parse(argc, argv, &c, a, &target);
  }
  ir_program prog;
  memset(&prog, 0, sizeof prog);
  if (st == 0 && !fe_load(c.model, &prog)) st = EXIT_BAD_INPUT;
  if (st == 0 && !prog.g) {
    sbpc_error("%s: the file has no model", c.model);
    st = EXIT_BAD_INPUT;
  }
  if (st == 0) {
    if (!c.seq && prog.train.seq) c.seq = prog.train.seq;
    bool batch_flag = false;
    for (int i = 1; i < argc; i++) batch_flag |= !strcmp(argv[i], "--batch");
    if (!batch_flag && prog.train.global_batch && !is_dir(target) && !plan_json) c.global_batch = prog.train.global_batch;
    diag d;
    diag_init(&d, c.model, NULL, 0);
    if (!drv_passes(prog.g, DRV_SHAPES, &d)) st = EXIT_BAD_INPUT;
  }
  if (st == 0 && write_actors) {
    /* the plan names the model by absolute path so `sbpc run DIR` finds it */
    char *abs = realpath(c.model, NULL);
    if (abs) c.model = abs;
    st = rt_write_actor_plan(prog.g, &c, write_actors) ? EXIT_OK : EXIT_BAD_INPUT;
    free(abs);
    write_actors = NULL;
  } else if (st == 0 && c.global_batch * c.seq > MAX_TOKENS) {
    sbpc_error("run: a step of %lld sequences of %lld tokens is more than the %lld tokens a step may hold",
               (long long)c.global_batch, (long long)c.seq, (long long)MAX_TOKENS);
    st = EXIT_BAD_INPUT;
  } else if (st == 0) {
    st = rt_train(prog.g, &c, &argc, &argv);
  }
  fe_program_free(&prog);
  arena_free(a);
  return st < 0 ? EXIT_OK : st;
}
