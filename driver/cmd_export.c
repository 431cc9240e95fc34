/* cmd_export.c — `sbpc export FORMAT PLAN.json [-o FILE] [--launch FILE]
 * [--target VERSION]`.
 *
 * Reads the plan through the public reader (format/sbpc_plan.h), picks the
 * exporter for FORMAT and lets it write into a memory buffer; only when it
 * succeeds is the buffer written to FILE (default stdout), so a plan the
 * target would reject leaves no file behind. Warnings about what the target
 * cannot express go to stderr (and into the file as comments where the
 * format has them). --launch FILE also writes the DeepSpeed launch script.
 * --target picks the format of a target whose versions read different ones:
 * torchtitan v0.2.2 (TOML, the default: the last release) or main (a Python
 * config function).
 * The options are a table (driver/opts.h). Exit: 0 ok, 1 bad plan or a plan
 * the target cannot take, 2 bad usage. */
#include "driver/driver.h"
#include "driver/opts.h"
#include "export/export.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One format; a target with several versions has a row per --target, the
 * first of its rows the default. */
typedef struct {
  const char *name, *target;
  int (*fn)(const sbpc_plan *, ex_ctx *);
  const char *what;
} format;

static const format formats[] = {
    {"megatron", NULL, ex_megatron, "Megatron-LM launch script (torchrun pretrain_gpt.py ...)"},
    {"deepspeed", NULL, ex_deepspeed, "DeepSpeed config JSON (--launch FILE: the launch script; else a note)"},
    {"torchtitan", "v0.2.2", ex_torchtitan, "torchtitan v0.2.2 TOML job config (the default, the last release)"},
    {"torchtitan", "main", ex_torchtitan_main, "torchtitan main: a Python config function (--target main)"},
    {"dtensor", NULL, ex_dtensor, "Python: parallelize(model, world_mesh) for a Hugging Face model (DTensor)"},
};
#define NFORMATS (sizeof formats / sizeof formats[0])

static void list_formats(FILE *f) {
  fputs("\nformats:\n", f);
  for (size_t i = 0; i < NFORMATS; i++)
    if (formats[i].target) fprintf(f, "  %-11s %-15s %s\n", formats[i].name, formats[i].target, formats[i].what);
    else fprintf(f, "  %-27s %s\n", formats[i].name, formats[i].what);
}

typedef struct {
  const char *out, *launch, *target;
} export_args;

static const drv_command command = {
    .name = "export", .synopsis = "FORMAT PLAN.json [options]", .pos = {"FORMAT", "PLAN.json"}, .min_pos = 2,
    .tail = "examples:\n  sbpc export megatron plan.json -o launch.sh\n"
            "  sbpc export deepspeed plan.json -o ds_config.json --launch ds_launch.sh",
    .more = list_formats,
};

static const drv_option options[] = {
    {DRV_OPT("-o", DRV_STR, export_args, out, "FILE", "write to FILE (default: standard output)")},
    {DRV_OPT("--launch", DRV_STR, export_args, launch, "FILE", "deepspeed: also write the launch script")},
    {DRV_OPT("--target", DRV_STR, export_args, target, "VERSION", "torchtitan: v0.2.2 (TOML, default) or main (Python)")},
    {0}};

/* ex_load_plan: read a plan, printing "file: error: why" on failure. Shared
 * by export and trace through this declaration. */
sbpc_plan *ex_load_plan(const char *path);
sbpc_plan *ex_load_plan(const char *path) {
  char err[512];
  sbpc_plan *p = sbpc_plan_read(path, err, sizeof err);
  if (!p && strcmp(err, "cannot read the plan")) diag_file_error(path, "%s", err);
  return p;
}

/* find: the row of format `name` for `target` (NULL: its default row); NULL
 * when there is none. */
static const format *find(const char *name, const char *target) {
  for (size_t i = 0; i < NFORMATS; i++)
    if (!strcmp(formats[i].name, name) && (!target || (formats[i].target && !strcmp(formats[i].target, target))))
      return &formats[i];
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
  export_args a = {0};
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, &a, NULL}, {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  if (rc >= 0) return rc;
  const char *fmt = pos[0], *plan = pos[1], *out = a.out, *launch = a.launch;
  const format *f = find(fmt, NULL);
  if (!f) return drv_usage_error(&command, "unknown format '%s' (megatron, deepspeed, torchtitan, dtensor)", fmt);
  if (launch && strcmp(fmt, "deepspeed")) return drv_usage_error(&command, "--launch is for deepspeed only");
  if (a.target && !f->target) return drv_usage_error(&command, "--target is for torchtitan only");
  if (a.target && !(f = find(fmt, a.target)))
    return drv_usage_error(&command, "unknown target '%s' for %s (v0.2.2, main)", a.target, fmt);
  sbpc_plan *p = ex_load_plan(plan);
  if (!p) return EXIT_BAD_INPUT;
  ex_ctx c = {.err = stderr, .plan = plan, .launch = launch, .out_name = out, .target = f->target};
  rc = run(f, p, &c, out);
  sbpc_plan_free(p);
  return rc ? EXIT_BAD_INPUT : EXIT_OK;
}
