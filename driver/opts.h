/* opts.h — the driver's one option parser and usage printer.
 *
 * A command describes its command line as data: a drv_command (its name,
 * synopsis, positional arguments and help text) and tables of drv_option
 * (name, value kind, where the value goes, help). drv_args parses argv from
 * the tables (`--opt VAL` and `--opt=VAL`, flags, positionals, `--` ending
 * the options, `--help`) and reports every usage error the same way, with
 * exit status 2:
 *
 *   sbpc: error: run: unknown option '--x'
 *   sbpc: error: run: --steps needs a value
 *   sbpc: error: run: bad value 'x' for --steps (expected ...)
 *   usage: sbpc run DIR|MODEL.sbp [options]
 *
 * drv_usage prints `sbpc CMD --help` from the same tables, so what a command
 * accepts and what its help says cannot drift apart. A table's entries say
 * where the value goes as an offset into a struct; the struct is supplied
 * when parsing (drv_optset), so tables are static const and shared between
 * commands (drv_model_options: --cluster --mesh; drv_size_options: --batch
 * --seq; drv_layout_options: --plan --dp --tp --pp --micro --zero
 * --recompute). */
#ifndef SBPC_DRIVER_OPTS_H
#define SBPC_DRIVER_OPTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
  DRV_FLAG,   /* no value: bool at off = true */
  DRV_SET,    /* no value: int at off = lo */
  DRV_STR,    /* a non-empty string: const char * at off */
  DRV_INT,    /* a decimal integer in [lo, hi]: int at off */
  DRV_I64,    /* a decimal integer in [lo, hi]: int64_t at off */
  DRV_REAL,   /* a number in [flo, fhi] (flo excluded when open): double at off */
  DRV_CHOICE, /* one of the space-separated words of choices: its index, int at off */
  DRV_CALL,   /* parse(value, &field at off) decides; expect says what it takes */
} drv_kind;

typedef struct {
  const char *name;  /* "--batch" or "-o"; NULL ends a table */
  const char *alias; /* another spelling ("--out"), or NULL */
  drv_kind kind;
  size_t off;        /* offsetof the destination in the set's struct */
  const char *meta;  /* the value's name in the help ("N", "FILE"); NULL for flags */
  const char *help;  /* one line; '\n' starts another, indented */
  int64_t lo, hi;    /* DRV_INT, DRV_I64: the range; DRV_SET: the value */
  double flo, fhi;   /* DRV_REAL: the range */
  bool open;         /* DRV_REAL: flo itself is refused (a positive number) */
  const char *choices;                       /* DRV_CHOICE: "none selective full" */
  bool (*parse)(const char *v, void *dst);   /* DRV_CALL */
  const char *expect;                        /* DRV_CALL: "N or NxM, e.g. 2 or 2x4" */
  bool required;     /* an error when not given */
} drv_option;

/* DRV_OPT: the fields every entry has; add .lo/.hi, .alias, ... after it:
 *   {DRV_OPT("--steps", DRV_I64, sp_args, steps, "K", "batches to plan"), .lo = 1, .hi = 100000} */
#define DRV_OPT(nm, kd, type, field, mt, hp) \
  .name = (nm), .kind = (kd), .off = offsetof(type, field), .meta = (mt), .help = (hp)
/* DRV_FLAGOPT: a flag (DRV_FLAG or DRV_SET), which has no value name. */
#define DRV_FLAGOPT(nm, kd, type, field, hp) DRV_OPT(nm, kd, type, field, NULL, hp)

/* One table and the struct its offsets point into; title (may be NULL)
 * heads its part of the help. An array of sets ends with opt == NULL. */
typedef struct {
  const drv_option *opt;
  void *base;
  const char *title;
} drv_optset;

#define DRV_MAXPOS 4
typedef struct {
  const char *name;     /* "check" */
  const char *synopsis; /* after "usage: sbpc CMD ": "MODEL.sbp [options]" */
  const char *pos[DRV_MAXPOS]; /* the positionals' names, in order ("MODEL.sbp") */
  int min_pos;          /* how many of them are required */
  const char *about;    /* text after the usage line, or NULL */
  void (*more)(FILE *f); /* prints more after the options (a list built from a table), or NULL */
  const char *tail;     /* text at the end (examples), or NULL */
} drv_command;

/* The shared tables: drv_model_options and drv_size_options into a
 * drv_opts, drv_layout_options into a drv_layout_opts (driver/common.h). */
extern const drv_option drv_model_options[];
extern const drv_option drv_size_options[];
extern const drv_option drv_layout_options[];

/* drv_args: parse argv[1..argc) of command c: every option into its set's
 * struct, the positionals into pos[0..DRV_MAXPOS) (unset ones NULL).
 * Returns -1 when the command should go on, EXIT_OK after printing the help
 * (--help, -h) on stdout, EXIT_USAGE after printing the error and the usage
 * line on stderr. */
int drv_args(const drv_command *c, const drv_optset *sets, int argc, char **argv, const char **pos);

/* drv_usage: the command's help from its tables: usage line, about, each
 * set's options (under its title), more, tail. */
void drv_usage(const drv_command *c, const drv_optset *sets, FILE *f);

/* drv_parse_int: a decimal integer in [lo, hi] (the whole string), or false. */
bool drv_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* drv_choice: the index of v among the space-separated words, or -1. */
int drv_choice(const char *words, const char *v);
/* drv_precision_parse: a DRV_CALL parser for an activation dtype (f32, bf16
 * or f16) into the int (an ir_dtype) at dst; false for anything else. */
bool drv_precision_parse(const char *v, void *dst);

/* drv_usage_error: "sbpc: error: CMD: <message>" and the usage line on
 * stderr, for the checks a command makes after drv_args. Returns EXIT_USAGE. */
int drv_usage_error(const drv_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
