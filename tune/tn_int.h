/* tn_int.h — what the tune module's files share; not a public interface
 * (use tune/tune.h). Every name still carries the tn_ prefix. */
#ifndef SBPC_TN_INT_H
#define SBPC_TN_INT_H
#include "tune/tune.h"
#include <stdbool.h>

/* ---- mpi.c ---------------------------------------------------------------- */
/* tn_mpi_start: initialise MPI when launched with more than one rank and
 * measure the collectives, adding "collectives" to calib (a cJSON *) on rank
 * 0. Returns this rank (0 without MPI), or -1 on failure; *nranks the world. */
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
#endif
