/* tune.h — `sbpc tune` (prefix tn_): measure this machine for the planner's
 * cost model, and autotune layouts by measurement.
 *
 *   measure.c   the calibration: GEMM rates over shapes (a generic set, or
 *               the shapes a model's layouts produce), memory-bound kernel
 *               bandwidth, the per-op fixed cost, fitted to the planner's
 *               model; written as docs/calibration.md says
 *   mpi.c       under mpirun: collectives by group size and kind, and the
 *               lockstep that makes every rank measure at once (the only
 *               file of the module that includes mpi.h)
 *   probe.c     with a model: its reference program run by the executor,
 *               per-pass scales over the rooflines and the cost per kernel
 *   autotune.c  `sbpc tune --plans K MODEL`: plan, run, compare per layout
 *   phases.c    a layout's predicted phases (plan JSON) and measured phases
 *               (the executor's trace, docs/trace.md)
 *
 * The planner's plan_calib_parse (planner/calib_read.c) is the one reader of
 * a calibration; this module only writes them. */
#ifndef SBPC_TUNE_H
#define SBPC_TUNE_H
#include <stdio.h>

/* One GEMM shape to measure (row-major C[m,n] = A[m,k] B[k,n]). */
typedef struct {
  int m, n, k;
} tn_shape;

typedef struct tn_opts {
  int quick;           /* a few seconds, for CI */
  int progress;        /* 1: progress bar (a terminal), 0: plain lines */
  FILE *log;           /* progress output (stderr); NULL: silent */
  double peak_flops;   /* the device's peak FLOP/s for the GEMM dtype; 0 = unknown */
  double peak_bw;      /* the device's peak memory bandwidth, bytes/s; 0 = unknown */
  const tn_shape *shapes; /* extra GEMM shapes (a model's), or NULL */
  int nshapes;
  const char *model;   /* the model the extra shapes come from (written as gemm.model) */
  const char *batch, *seq; /* the model's global batch and sequence (strings; NULL: the model's) */
  /* a calibration to extend (--from: checked by the planner's reader
   * first): its measurements are kept and only the model's GEMM shapes and
   * the executor probe are measured; NULL: measure everything */
  const char *from;
  /* runs the compiled program in dir for steps steps on every rank (the
   * executor: rt_run), with its JSON-lines log and the trace of its last
   * trace_steps steps; an exit status. NULL: no executor probe
   * (docs/calibration.md) */
  int (*run_program)(const char *dir, int steps, const char *log, const char *trace, int trace_steps);
} tn_opts;

/* tn_measure: measure and write the calibration JSON to path (NULL: stdout).
 * Under mpirun every rank measures at the same time (as the ranks of a run
 * share the machine) and rank 0 writes. 0 on success. */
int tn_measure(const tn_opts *o, const char *path);

/* tn_launched_ranks: the rank count the launcher (mpirun) says this process
 * is one of; 1 when not launched by one. */
int tn_launched_ranks(void);
/* tn_launched_rank: this process's rank as the launcher says; 0 when not
 * launched by one */
int tn_launched_rank(void);

/* Autotune by measurement (sbpc tune --plans K MODEL.sbp). */
typedef struct tn_autotune_opts {
  const char *model;            /* MODEL.sbp */
  int k;                        /* layouts the planner proposes (<= 16) */
  int np;                       /* ranks (mpirun -np) */
  int steps;                    /* steps per layout; 0: by each layout's predicted step (autotune.c) */
  int all;                      /* measure all K, not only those within the error */
  int rounds;                   /* runs per measured layout, interleaved; 0: by its predicted run (autotune.c) */
  const char *batch, *seq;      /* passed to sbpc plan when given */
  const char *cluster;          /* planner cluster; NULL: cpu:np */
  const char *calibration;      /* passed to sbpc plan; NULL: none */
  int no_probe;                 /* plan with the calibration as it is, even without a probe of the model */
  double limit_s;               /* per child process */
  FILE *log, *out;              /* progress; the report */
} tn_autotune_opts;

/* tn_autotune: plan the top K layouts, run those whose predictions lie
 * within the model's error of the best with the executor, and report
 * predicted against measured step time, phases and peak memory per layout;
 * 0 when at least one layout ran. */
int tn_autotune(const tn_autotune_opts *o);
#endif
