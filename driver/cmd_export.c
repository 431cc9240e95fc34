/* cmd_export.c — `sbpc export FORMAT PLAN.json [-o FILE] [--launch FILE]`.
 *
 * Reads the plan through the public reader (format/sbpc_plan.h), picks the
 * exporter for FORMAT and lets it write into a memory buffer; only when it
 * succeeds is the buffer written to FILE (default stdout), so a plan the
 * target would reject leaves no file behind. Warnings about what the target
 * cannot express go to stderr (and into the file as comments where the
 * format has them). --launch FILE also writes the DeepSpeed launch script.
 * Exit: 0 ok, 1 bad plan or a plan the target cannot take, 2 bad usage. */
#include "driver/driver.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  int (*fn)(const sbpc_plan *, ex_ctx *);
  const char *what;
} format;

static const format formats[] = {
    {"megatron", ex_megatron, "Megatron-LM launch script (torchrun pretrain_gpt.py ...)"},
    {"deepspeed", ex_deepspeed, "DeepSpeed config JSON (--launch FILE: the launch script; else a note)"},
    {"torchtitan", ex_torchtitan, "torchtitan v0.2.2 TOML job config: [model], [training], [parallelism], ..."},
    {"dtensor", ex_dtensor, "Python: parallelize(model, world_mesh) for a Hugging Face model (DTensor)"},
};

static void usage(FILE *f) {
  fputs("usage: sbpc export FORMAT PLAN.json [-o FILE] [--launch FILE]\n\nformats:\n", f);
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    fprintf(f, "  %-11s %s\n", formats[i].name, formats[i].what);
  fputs("\nexamples:\n  sbpc export megatron plan.json -o launch.sh\n"
        "  sbpc export deepspeed plan.json -o ds_config.json --launch ds_launch.sh\n",
        f);
}

/* ex_load_plan: read a plan, printing "file: error: why" on failure. Shared
 * by export and trace through this declaration. */
sbpc_plan *ex_load_plan(const char *path);
sbpc_plan *ex_load_plan(const char *path) {
  char err[512];
  sbpc_plan *p = sbpc_plan_read(path, err, sizeof err);
  if (!p && strcmp(err, "cannot read the plan")) fprintf(stderr, "%s: error: %s\n", path, err);
  return p;
}

static const format *find(const char *name) {
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (!strcmp(formats[i].name, name)) return &formats[i];
  return NULL;
}

/* write_file: text[0..n) to path (stdout when NULL); 0 on success. */
static int write_file(const char *path, const char *text, size_t n) {
  FILE *o = path ? fopen(path, "w") : stdout;
  if (!o) return sbpc_error("cannot write '%s'", path), 1;
  int bad = fwrite(text, 1, n, o) != n;
  if (path) bad |= fclose(o) != 0;
  else bad |= fflush(o) != 0;
  if (bad) sbpc_error("cannot write '%s'", path ? path : "standard output");
  return bad;
}

/* run: the exporter into a buffer, then FILE. */
static int run(const format *f, const sbpc_plan *p, ex_ctx *c, const char *out) {
  char *text = NULL;
  size_t n = 0;
  c->out = open_memstream(&text, &n);
  if (!c->out) return sbpc_error("out of memory"), 1;
  int rc = f->fn(p, c);
  fclose(c->out);
  if (!rc) rc = write_file(out, text, n);
  free(text);
  return rc;
}

int cmd_export(int argc, char **argv) {
  const char *fmt = NULL, *plan = NULL, *out = NULL, *launch = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), EXIT_OK;
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--launch") && i + 1 < argc) launch = argv[++i];
    else if (argv[i][0] == '-' && argv[i][1]) return sbpc_error("export: unknown option '%s'", argv[i]), EXIT_USAGE;
    else if (!fmt) fmt = argv[i];
    else if (!plan) plan = argv[i];
    else return sbpc_error("export: unexpected argument '%s'", argv[i]), EXIT_USAGE;
  }
  if (!fmt || !plan) return usage(stderr), EXIT_USAGE;
  const format *f = find(fmt);
  if (!f) return sbpc_error("export: unknown format '%s' (megatron, deepspeed, torchtitan, dtensor)", fmt), EXIT_USAGE;
  if (launch && strcmp(fmt, "deepspeed")) return sbpc_error("export: --launch is for deepspeed only"), EXIT_USAGE;
  sbpc_plan *p = ex_load_plan(plan);
  if (!p) return EXIT_BAD_INPUT;
  ex_ctx c = {.err = stderr, .plan = plan, .launch = launch, .out_name = out};
  int rc = run(f, p, &c, out);
  sbpc_plan_free(p);
  return rc ? EXIT_BAD_INPUT : EXIT_OK;
}
