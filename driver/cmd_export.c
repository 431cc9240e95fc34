/* cmd_export.c — `sbpc export FORMAT PLAN.json [-o FILE]`.
 *
 * Reads the plan through the public reader (format/sbpc_plan.h), picks the
 * exporter for FORMAT and writes to FILE (default stdout). Warnings about
 * what the target cannot express go to stderr (and into the file as comments
 * where the format has them). Exit: 0 ok, 1 bad plan, 2 bad usage. */
#include "driver/driver.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *name;
  int (*fn)(const sbpc_plan *, ex_ctx *);
  const char *what;
} format;

static const format formats[] = {
    {"megatron", ex_megatron, "Megatron-LM launch script (torchrun pretrain_gpt.py ...)"},
    {"deepspeed", ex_deepspeed, "DeepSpeed config JSON (launch line on stderr)"},
    {"torchtitan", ex_torchtitan, "torchtitan TOML: [training], [parallelism], [activation_checkpoint]"},
    {"dtensor", ex_dtensor, "Python: DTensor parallelize_plan and placements"},
};

static void usage(FILE *f) {
  fputs("usage: sbpc export FORMAT PLAN.json [-o FILE]\n\nformats:\n", f);
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    fprintf(f, "  %-11s %s\n", formats[i].name, formats[i].what);
  fputs("\nexamples:\n  sbpc export megatron plan.json -o launch.sh\n"
        "  sbpc export deepspeed plan.json -o ds_config.json\n",
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

int cmd_export(int argc, char **argv) {
  const char *fmt = NULL, *plan = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), EXIT_OK;
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (argv[i][0] == '-' && argv[i][1]) return sbpc_error("export: unknown option '%s'", argv[i]), EXIT_USAGE;
    else if (!fmt) fmt = argv[i];
    else if (!plan) plan = argv[i];
    else return sbpc_error("export: unexpected argument '%s'", argv[i]), EXIT_USAGE;
  }
  if (!fmt || !plan) return usage(stderr), EXIT_USAGE;
  const format *f = find(fmt);
  if (!f) return sbpc_error("export: unknown format '%s' (megatron, deepspeed, torchtitan, dtensor)", fmt), EXIT_USAGE;
  sbpc_plan *p = ex_load_plan(plan);
  if (!p) return EXIT_BAD_INPUT;
  FILE *o = out ? fopen(out, "w") : stdout;
  if (!o) {
    sbpc_error("cannot write '%s'", out);
    sbpc_plan_free(p);
    return EXIT_BAD_INPUT;
  }
  ex_ctx c = {o, stderr, plan, NULL, 0};
  int rc = f->fn(p, &c);
  if (out && fclose(o)) rc = 1;
  sbpc_plan_free(p);
  return rc ? EXIT_BAD_INPUT : EXIT_OK;
}
