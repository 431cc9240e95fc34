/* exec_priv.h — the interpreter's state, shared by exec.c (placement, the
 * sequential walk, the update) and executor.c (the actor executor). */
#ifndef SBPC_EXEC_PRIV_H
#define SBPC_EXEC_PRIV_H
#include "runtime/rt_internal.h"

struct rt_exec {
  ir_graph *g;
  rt_config cfg;
  rt_comm *comm;
  int stage, nstages, dp, dpi, tp, tpi;
  int32_t *fwd_of;
  int *op_stage, *t_stage, *last_use;
  ir_ref *final_of;     /* per tensor: the param whose optimizer consumes it */
  uint64_t *sent;       /* per tensor: stages it was sent to (this micro-batch) */
  bool *hold;           /* per tensor: persistent here (param, state, input) */
  uint64_t *holders;    /* per param: the stages that hold it */
  void **buf;
  float **acc;          /* per param: accumulated gradient (on the grad's stage) */
  int64_t live, peak, step, micro;
  bool profile;         /* SBPC_PROFILE set: time kernels by op kind */
  bool zero;            /* AdamW state sharded over the dp group (ZeRO-1) */
};

/* rt_exec_run_op: run op k of this stage on the given buffers, accumulating
 * gradients the optimizer consumes (gscale) into e->acc. */
bool rt_exec_kernel(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro);
void rt_exec_accumulate(rt_exec *e, const ir_op *o, void *const *out, double gscale);
/* rt_exec_count: add n bytes to the live count (negative frees); thread-safe. */
void rt_exec_count(rt_exec *e, int64_t n);
/* rt_exec_profile_report: with SBPC_PROFILE, kernel seconds per op kind to stderr */
void rt_exec_profile_report(const rt_exec *e);
#endif
