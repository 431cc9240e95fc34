/* common.h — what several sbpc commands share: the options every command
 * that reads a model understands (--cluster, --batch, --seq, --mesh; their
 * tables are drv_model_options and drv_size_options, driver/opts.h), loading
 * a model file with its source kept for located diagnostics, choosing the
 * cluster, and binding B and S. Functions print their own errors and return
 * exit statuses (util/diag.h) or NULL/false. Prefix: drv_. */
#ifndef SBPC_DRIVER_COMMON_H
#define SBPC_DRIVER_COMMON_H
#include <stdbool.h>
#include <stdint.h>
#include "ir/ir.h"
#include "driver/opts.h"
#include "lower/lower.h"
#include "planner/planner.h"

/* The shared options (the tables drv_model_options and drv_size_options);
 * zero = not given. */
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

/* drv_parse_mesh: "4" or "2x4" (at most IR_MAXMESH axes, each >= 1,
 * product <= 2^24) into m, or false. */
bool drv_parse_mesh(const char *s, ir_mesh *m);

/* drv_model_load: read and parse path into m. Returns EXIT_OK, or
 * EXIT_BAD_INPUT after printing the errors (m is then already freed). */
int drv_model_load(const char *path, drv_model *m);
/* drv_model_graph: true when the file has a model section, else false after
 * "FILE: error: the file has no model section". */
bool drv_model_graph(const drv_model *m);
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

/* drv_lower: the lowering passes (lower/lower.h), in order, on forward graph
 * g (shapes inferred) for layout lay. On success the program owns g; on
 * failure (errors in d) NULL and g is still the caller's. */
fmt_prog *drv_lower(ir_graph *g, const lw_layout *lay, diag *d);

/* The layout options of compile and run (the table drv_layout_options,
 * driver/layout.c); 0 / -1 = not given. */
typedef struct {
  const char *plan;          /* --plan PLAN.json */
  int dp, tp, pp, micro;     /* --dp --tp --pp --micro */
  int zero, recompute;       /* --zero, --recompute (-1: not given) */
  bool packed;               /* --packed: packed variable-length batches */
  bool adaptive;             /* --adaptive-sp: SP groups chosen per step (runtime/adaptive.c) */
  int sp_kind;               /* --sp-kind: a fmt_spkind (-1: not given) */
  int64_t batch, seq;        /* --batch, --seq (from drv_opts) */
} drv_layout_opts;
/* drv_layout_opts_init: nothing given. */
void drv_layout_opts_init(drv_layout_opts *o);
/* drv_layout: the layout from the plan (read into *plan, which the caller
 * frees with sbpc_plan_free), the flags (which win) and the train section.
 * Returns an exit status after printing the error. */
int drv_layout(const drv_layout_opts *o, const ir_program *prog, sbpc_plan **plan, lw_layout *lay);
/* drv_recompute_parse: "none", "selective", "full" -> 0, 1, 2; else -1. */
int drv_recompute_parse(const char *s);

/* The planner's knobs (the table drv_plan_options: --precision --fix
 * --calibration --max-sp --runtime; driver/planning.c), shared by plan and
 * trace. top is plan's --top. */
typedef struct {
  const char *fix, *calib, *runtime;
  int top, max_sp, precision; /* precision: an ir_dtype, -1 when not given */
} drv_plan_opts;
extern const drv_option drv_plan_options[];
/* drv_plan_opts_init: nothing given (top 3, max_sp 1). */
void drv_plan_opts_init(drv_plan_opts *k);
/* drv_plan_opts_given: whether any knob of the table was given. */
bool drv_plan_opts_given(const drv_plan_opts *k);
/* drv_plan: bind and shape model m (loaded), pick its cluster (into ar,
 * which must outlive the result) and search its layouts under o and k, the
 * calibration (--calibration, else $SBPC_CALIBRATION) included; errors and
 * notes name cmd. Returns EXIT_OK with *out set (free with
 * plan_result_free), or an exit status after printing why: 1 bad input, 2 bad
 * usage, 3 no layout fits (with the smallest memory any candidate needs). */
int drv_plan(const drv_command *cmd, const drv_opts *o, const drv_plan_opts *k, drv_model *m, arena *ar,
             plan_result **out);

/* drv_thousands: n with thousands separators ("124,439,808") in buf. */
const char *drv_thousands(int64_t n, char *buf, size_t len);
/* run_sp.c: the SP solver of `sbpc run --adaptive-sp` (runtime/rt.h's
 * rt_sp_solver): sp_solve, or with degree > 0 every group of `degree` ranks
 * (sp_uniform), on cluster (NULL: cpu:N for N ranks). Free with
 * drv_sp_solver_free. */
struct rt_sp_solver;
struct rt_sp_solver *drv_sp_solver_new(const char *cluster, int degree, const char *calib);
void drv_sp_solver_free(struct rt_sp_solver *v);
#endif
