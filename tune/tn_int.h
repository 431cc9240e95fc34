/* tn_int.h — what the tune module's files share; not a public interface
 * (use tune/tune.h). Every name still carries the tn_ prefix. */
#ifndef SBPC_TN_INT_H
#define SBPC_TN_INT_H
#include "tune/tune.h"
#include <stdbool.h>

/* ---- mpi.c ---------------------------------------------------------------- */
/* tn_mpi_start: initialise MPI when launched with more than one rank and
 * measure the collectives, adding "collectives" to calib (a cJSON *) on rank
 * 0 (calib NULL: initialise only). Returns this rank (0 without MPI), or -1 on failure; *nranks the world. */
int tn_mpi_start(void *calib_json, const tn_opts *o, int *nranks);
/* tn_mpi_barrier: every rank waits for the others (nothing without MPI). */
void tn_mpi_barrier(void);
/* tn_mpi_max: the largest x over the ranks (x without MPI). */
double tn_mpi_max(double x);
/* tn_mpi_finalize: finalize MPI if tn_mpi_start initialised it. */
void tn_mpi_finalize(void);

/* ---- phases.c --------------------------------------------------------------- */
/* The phases of one step (seconds) that the autotune report compares. */
enum { TN_FWD, TN_BWD, TN_OPT, TN_COMM, TN_BUBBLE, TN_NPHASE };
extern const char *const tn_phase_names[TN_NPHASE];
typedef struct {
  double step_s;
  double phase[TN_NPHASE];
  double mem_bytes; /* peak per rank (the largest rank) */
  double colls;     /* measured: the reported rank's collective slices per step */
  double attn_s;    /* measured: its attention and attention_grad slices' seconds per step */
  double opt_calls; /* measured: its optimizer slices (one per parameter tensor) per step */
} tn_step;
/* tn_predicted: the prediction of a plan JSON file (predicted.breakdown and
 * stages[]); false if it cannot be read. */
bool tn_predicted(const char *plan_json, tn_step *p);
/* tn_measured_trace: the phases of the step in an executor trace (docs/
 * trace.md): per rank, the time covered by forward, backward (and
 * recompute), optimizer slices; exposed communication is collective and p2p
 * time no compute covers; bubble the rest of the step; the rank with the
 * longest busy time is reported. False if the trace cannot be read. */
bool tn_measured_trace(const char *trace_json, tn_step *m);
/* tn_best_round: the round of the n (>= 1) rounds' steps s with the
 * fastest step. A layout's step is its fastest round's (each round the
 * median of its steps), split as that round's phases, in tune --plans and
 * in the probe alike: this VM slows to 1.6 times for 15-20 s at a time
 * (another tenant), and the median of 3 rounds then took a slow round in
 * 1 of 3 tiny GPT-2 cycles (measured 3.02 ms where its other round ran
 * 1.97; AMD EPYC, 2 cores), where the fastest needs one round outside such a
 * spell. A quiet machine's rounds differ by a few per cent. */
int tn_best_round(const double *s, int n);
/* tn_step_median: the median step seconds of a run's JSON-lines log
 * (`sbpc run --log`), skipping the first (warm-up) step when there are
 * more; -1 when it has none. */
double tn_step_median(const char *path, double tokens_per_step);
/* tn_step_spread: that median over the fastest of the same steps (the
 * tenth-fastest of many: 1 when all alike; a machine busy with other work
 * for part of the run shows as more); -1 when the log has no steps. */
double tn_step_spread(const char *path);
/* ---- autotune.c: child processes ------------------------------------------- */
/* tn_run_steps: the steps a run is measured for when its step is predicted
 * at pred_s seconds: as many as fit in a quarter second, 5 to 200 (5 when
 * pred_s <= 0). tn_traced_steps: of a run of `steps`, how many of the last
 * are traced for its phases: all but the first (warm-up), at most 50. */
int tn_run_steps(double pred_s);
int tn_traced_steps(int steps);
/* tn_run_child: run argv with stdout and stderr to logpath; 0 when it exits
 * 0 within limit_s seconds, else -1 (killed past the limit, or failed). */
int tn_run_child(char *const argv[], const char *logpath, double limit_s);
/* tn_child_env: the environment children of mpirun need: Open MPI's
 * run-as-root and oversubscription switches, a communication timeout of
 * limit_s (a loaded machine is slow, not hung); set only where unset. */
void tn_child_env(double limit_s);
/* tn_mpi_bcast: rank 0's n bytes at buf to every rank (nothing without MPI). */
void tn_mpi_bcast(void *buf, int n);
/* ---- measure.c ------------------------------------------------------------- */
/* tn_write_json: the cJSON *json printed to path (NULL: standard output);
 * 0 on success, else non-zero with the error said. */
int tn_write_json(const void *json, const char *path);
/* ---- probe.c ------------------------------------------------------------------ */
/* tn_probe: run the model's reference program (o->model, data parallel over
 * the nranks ranks, planned with the calibration measured so far, calib, a
 * cJSON *) through the real executor (o->run_program) on every rank, and on
 * rank 0 add the "executor" section to calib: per pass the measured time
 * over the planner's rooflines, and the executor's cost per kernel the
 * planner counts (docs/calibration.md). MPI is finalized afterwards (the
 * executor does it). A probe that cannot run is a warning, and calib is
 * left as it was. */
void tn_probe(const tn_opts *o, void *calib, int rank, int nranks);
#endif
