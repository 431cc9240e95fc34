/* common.h — what several sbpc commands share: the options every command
 * that reads a model understands (--cluster, --batch, --seq, --mesh), loading
 * a model file with its source kept for located diagnostics, choosing the
 * cluster, and binding B and S. Functions print their own errors and return
 * exit statuses (util/diag.h) or NULL/false. Prefix: drv_. */
#ifndef SBPC_DRIVER_COMMON_H
#define SBPC_DRIVER_COMMON_H
#include <stdbool.h>
#include <stdint.h>
#include "ir/ir.h"

/* The shared options; zero = not given. */
typedef struct {
  const char *cluster; /* --cluster NAME:COUNT or FILE.sbp */
  int64_t batch, seq;  /* --batch N, --seq N */
  ir_mesh mesh;        /* --mesh 2 or 2x4 (n == 0: not given) */
} drv_opts;

/* A loaded model file: the program, and its source text kept so that the IR
 * passes can print the source line of an error (d is set up for it). */
typedef struct {
  ir_program p;
  char *src;
  size_t len;
  diag d;
} drv_model;

/* drv_opt: if argv[*i] is a shared option (`--mesh 2` or `--mesh=2`, ...),
 * store it in o, advance *i past its value and return 1; return 0 if it is
 * not one; return -1 after printing an error for a bad or missing value. */
int drv_opt(int argc, char **argv, int *i, drv_opts *o);

/* drv_parse_int: a decimal integer in [lo, hi] (whole string), or false. */
bool drv_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* drv_parse_mesh: "4" or "2x4" (at most IR_MAXMESH axes, each >= 1,
 * product <= 2^24) into m, or false. */
bool drv_parse_mesh(const char *s, ir_mesh *m);

/* drv_model_load: read and parse path into m. Returns EXIT_OK, or
 * EXIT_BAD_INPUT after printing the errors (m is then already freed). */
int drv_model_load(const char *path, drv_model *m);
/* drv_model_free: free what drv_model_load made; zeroes m. */
void drv_model_free(drv_model *m);

/* drv_cluster: the cluster a command uses: --cluster when given (copied into
 * a), else the file's own cluster section, else the preset `fallback`
 * (e.g. "dgx-a100:1"; NULL: none). Prints an error and returns NULL when the
 * cluster cannot be had. */
ir_cluster *drv_cluster(const drv_opts *o, const ir_program *p, arena *a, const char *fallback);

/* drv_bind: bind the model's B and S (--batch/--seq, else the train
 * section's global_batch/seq, else 1) and set g->mesh from --mesh. Refuses
 * values for which a tensor would pass 2^62 elements. Returns an exit status. */
int drv_bind(const drv_opts *o, ir_program *p);

/* Which optional passes drv_passes runs (driver/passes.c lists them all). */
enum { DRV_SHAPES = 0, DRV_TRAIN = 1, DRV_SBP = 2 };
/* drv_passes: run the IR passes on g in the compiler's order: shapes, then
 * autodiff (DRV_TRAIN, when g has a loss), then SBP deduction and boxing
 * (DRV_SBP), then verify. Errors go to d; returns false on the first failure. */
bool drv_passes(ir_graph *g, unsigned flags, diag *d);

/* drv_thousands: n with thousands separators ("124,439,808") in buf. */
const char *drv_thousands(int64_t n, char *buf, size_t len);
#endif
