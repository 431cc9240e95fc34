/* trace.c — `sbpc run --trace FILE`: the measured step as a Chrome/Perfetto
 * trace in the format of docs/trace.md, so that `sbpc trace PLAN` (the
 * prediction) and the real step open side by side.
 *
 * While a step is traced, every kernel (exec.c's rt_exec_kernel: forward,
 * backward, recompute, tensor-parallel collectives), every pipeline transfer
 * (interpreter send/recv, actor executor isend/irecv from post to completion),
 * every data-parallel gradient all-reduce, every AdamW update and each
 * traced step as a whole (lane `steps`, category step: where one step ends
 * and the next begins) is recorded as a slice with wall-clock start and end
 * (CLOCK_MONOTONIC, microseconds from the step's start; ranks start the
 * traced step after a barrier, so on one machine their clocks line up). Recording takes a mutex (the actor
 * executor's workers record concurrently).
 *
 * Writing: each rank turns its slices into Trace Event Format objects — a
 * process per rank (`rank R (stage s, dp i, tp j)`), lanes `compute`,
 * `collectives` and `pipeline p2p` as in docs/trace.md. Slices of one lane
 * that overlap in time (two actor workers, transfers in flight together) are
 * spread over extra lanes (`compute 2`, ...) by interval partitioning, so no
 * lane has overlapping slices. Rank 0 gathers every rank's JSON (MPI) and
 * writes one file with cJSON. */
#include "runtime/exec_priv.h"
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAXSUB = 16 };

typedef struct {
  double t0, t1;
  int lane, micro, op;
  const char *cat;
  char name[40];
  ir_ref tensor;
} tev;

struct rt_trace {
  pthread_mutex_t mu;
  tev *ev;
  int n, cap;
  double origin;
  bool on;
};

double rt_trace_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool rt_tracing(const rt_exec *e) { return e->trace && e->trace->on; }

void rt_trace_begin(rt_exec *e) {
  if (!e->trace) {
    e->trace = xcalloc(1, sizeof *e->trace);
    pthread_mutex_init(&e->trace->mu, NULL);
  }
  e->trace->n = 0;
  e->trace->origin = rt_trace_now();
  e->trace->on = true;
}

void rt_trace_end(rt_exec *e) {
  if (e->trace) e->trace->on = false;
}

void rt_trace_free(rt_exec *e) {
  if (!e->trace) return;
  pthread_mutex_destroy(&e->trace->mu);
  free(e->trace->ev);
  free(e->trace);
  e->trace = NULL;
}

void rt_trace_slice(rt_exec *e, int lane, const char *name, const char *cat, ir_ref t, int op, int64_t micro, double t0,
                    double t1) {
  rt_trace *tr = e->trace;
  if (!tr || !tr->on) return;
  pthread_mutex_lock(&tr->mu);
  if (tr->n == tr->cap) tr->cap = tr->cap ? 2 * tr->cap : 1024, tr->ev = xrealloc(tr->ev, sizeof(tev) * (size_t)tr->cap);
  tev *v = &tr->ev[tr->n++];
  v->t0 = t0 - tr->origin, v->t1 = t1 - tr->origin;
  v->lane = lane, v->micro = (int)micro, v->op = op, v->cat = cat, v->tensor = t;
  snprintf(v->name, sizeof v->name, "%s", name);
  pthread_mutex_unlock(&tr->mu);
}

void rt_trace_op(rt_exec *e, const ir_op *o, int64_t micro, double t0, double t1) {
  bool comm = ir_ops[o->kind].kclass == KC_COMM;
  const char *cat = comm ? "collective" : o->recompute ? "recompute" : o->backward ? "backward" : "forward";
  rt_trace_slice(e, comm ? RT_LANE_COLL : RT_LANE_COMPUTE, ir_ops[o->kind].name, cat, o->out[0], (int)(o - e->g->op),
                 micro, t0, t1);
}

static int by_start(const void *a, const void *b) {
  const tev *x = a, *y = b;
  return x->lane != y->lane ? x->lane - y->lane : (x->t0 > y->t0) - (x->t0 < y->t0);
}

/* interval partitioning: the first sub-lane of the slice's lane free at t0 */
static int sub_lane(double *busy_until, const tev *v) {
  for (int s = 0; s < MAXSUB; s++)
    if (busy_until[v->lane * MAXSUB + s] <= v->t0) {
      busy_until[v->lane * MAXSUB + s] = v->t1;
      return s;
    }
  return MAXSUB - 1;
}

static cJSON *meta(const char *name, int pid, int tid, const char *key, cJSON *val) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "ph", "M");
  cJSON_AddNumberToObject(m, "pid", pid);
  if (tid >= 0) cJSON_AddNumberToObject(m, "tid", tid);
  cJSON_AddStringToObject(m, "name", name);
  cJSON *a = cJSON_AddObjectToObject(m, "args");
  cJSON_AddItemToObject(a, key, val);
  return m;
}

static cJSON *slice_json(const rt_exec *e, const tev *v, int pid, int tid) {
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "ph", "X");
  cJSON_AddNumberToObject(s, "pid", pid);
  cJSON_AddNumberToObject(s, "tid", tid);
  cJSON_AddNumberToObject(s, "ts", v->t0 * 1e6);
  cJSON_AddNumberToObject(s, "dur", (v->t1 - v->t0) * 1e6);
  cJSON_AddStringToObject(s, "name", v->name);
  cJSON_AddStringToObject(s, "cat", v->cat);
  cJSON *a = cJSON_AddObjectToObject(s, "args");
  if (v->micro >= 0) cJSON_AddNumberToObject(a, "microbatch", v->micro);
  if (v->op >= 0) {
    const ir_op *o = &e->g->op[v->op];
    cJSON_AddNumberToObject(a, "op", v->op);
    if (o->block >= 0 && o->layer >= 0)
      cJSON_AddItemToObject(a, "layer", cJSON_CreateString(e->g->blk[o->block].name)),
          cJSON_AddNumberToObject(a, "layer_index", o->layer);
  }
  if (v->tensor >= 0 && e->g->t[v->tensor].name) cJSON_AddStringToObject(a, "tensor", e->g->t[v->tensor].name);
  return s;
}

/* this rank's events (metadata + slices) as a JSON array */
static cJSON *rank_events(const rt_exec *e, int rank) {
  static const char *lanes[RT_NLANES] = {"compute", "collectives", "pipeline p2p", "steps"};
  rt_trace *tr = e->trace;
  cJSON *arr = cJSON_CreateArray();
  char nm[96];
  snprintf(nm, sizeof nm, "rank %d (stage %d, dp %d, tp %d)", rank, e->stage, e->dpi, e->tpi);
  cJSON_AddItemToArray(arr, meta("process_name", rank, -1, "name", cJSON_CreateString(nm)));
  cJSON_AddItemToArray(arr, meta("process_sort_index", rank, -1, "sort_index", cJSON_CreateNumber(rank)));
  int n = tr ? tr->n : 0, used[RT_NLANES * MAXSUB] = {0};
  double busy[RT_NLANES * MAXSUB] = {0};
  if (n) qsort(tr->ev, (size_t)n, sizeof(tev), by_start);
  for (int i = 0; i < n; i++) {
    int tid = tr->ev[i].lane * MAXSUB + sub_lane(busy, &tr->ev[i]);
    used[tid] = 1;
    cJSON_AddItemToArray(arr, slice_json(e, &tr->ev[i], rank, tid));
  }
  for (int l = 0; l < RT_NLANES; l++)
    for (int s = 0; s < MAXSUB; s++) {
      if (!used[l * MAXSUB + s] && s > 0) continue;
      if (s) snprintf(nm, sizeof nm, "%s %d", lanes[l], s + 1);
      else snprintf(nm, sizeof nm, "%s", lanes[l]);
      cJSON_AddItemToArray(arr, meta("thread_name", rank, l * MAXSUB + s, "name", cJSON_CreateString(nm)));
      cJSON_AddItemToArray(arr, meta("thread_sort_index", rank, l * MAXSUB + s, "sort_index",
                                     cJSON_CreateNumber(l * MAXSUB + s)));
    }
  return arr;
}

static bool write_file(const char *path, cJSON *root) {
  char *txt = cJSON_PrintUnformatted(root), tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = txt ? fopen(tmp, "w") : NULL;
  bool ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
  if (f) ok = fclose(f) == 0 && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) sbpc_error("cannot write the trace '%s'", path);
  free(txt);
  return ok;
}

/* rank 0: the gathered per-rank arrays into one trace object */
static cJSON *merge(char **parts, int nranks, const rt_trace_info *info) {
  cJSON *root = cJSON_CreateObject(), *ev = cJSON_CreateArray();
  cJSON_AddStringToObject(root, "displayTimeUnit", "ms");
  cJSON *od = cJSON_AddObjectToObject(root, "otherData");
  cJSON_AddStringToObject(od, "source", "sbpc run (measured)");
  cJSON_AddStringToObject(od, "model", info->model ? info->model : "");
  cJSON_AddNumberToObject(od, "step", (double)info->step);
  cJSON_AddNumberToObject(od, "measured_step_s", info->step_s);
  cJSON_AddNumberToObject(od, "traced_steps", (double)info->steps);
  cJSON_AddNumberToObject(od, "loss", info->loss);
  cJSON_AddStringToObject(od, "tracks", "per rank");
  for (int r = 0; r < nranks; r++) {
    cJSON *a = parts[r] ? cJSON_Parse(parts[r]) : NULL, *x;
    while (a && (x = cJSON_DetachItemFromArray(a, 0))) cJSON_AddItemToArray(ev, x);
    cJSON_Delete(a);
  }
  cJSON_AddItemToObject(root, "traceEvents", ev);
  return root;
}

bool rt_trace_write(rt_exec *e, rt_comm *c, const char *path, const rt_trace_info *info) {
  int rank = rt_comm_rank(c), nranks = rt_comm_size(c);
  cJSON *mine = rank_events(e, rank);
  char *txt = cJSON_PrintUnformatted(mine);
  cJSON_Delete(mine);
  char **parts = rt_comm_gather_str(c, txt);
  bool ok = true;
  if (rank == 0) {
    cJSON *root = merge(parts, nranks, info);
    ok = write_file(path, root);
    cJSON_Delete(root);
    for (int r = 0; r < nranks; r++) free(parts[r]);
  }
  free(parts);
  free(txt);
  return ok;
}
