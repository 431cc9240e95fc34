/* ex_autotune.c — `sbpc tune --plans K MODEL.sbp`: autotune layouts by
 * measurement.
 *
 * Asks the planner (`sbpc plan MODEL --top K --json`, run as a child of this
 * same executable) for its K best layouts on the measuring cluster (default
 * cpu:N for N ranks on this machine), runs each for a few steps with the
 * executor (`[mpirun -np N] sbpc run MODEL --dp --tp --pp --micro --zero --recompute --batch
 * --seq --steps --log`), reads the step rates from the run's JSON-lines log
 * and reports measured against predicted step time per layout, the fastest
 * measured layout, and the prediction error (mean |predicted - measured| /
 * measured over the layouts) — the figure to drive down. Children are
 * started with posix_spawn and killed past a time limit; under root, Open
 * MPI's run-as-root and oversubscription switches are set for the child. */
#include "export/export.h"
#include "util/diag.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXK 16

typedef struct {
  int dp, tp, pp, sp, vpp, mbs, m;
  char recompute[16];
  int zero;
  double predicted, measured;
  int ok;
} layout;

/* run_child: argv with stdout+stderr to logpath; 0 when it exits 0 within
 * limit_s, else -1 (killed or failed). */
static int run_child(char *const argv[], const char *logpath, double limit_s) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc) return -1;
  int status = 0;
  for (double waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 0.01) {
    if (waited > limit_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int geti(const cJSON *o, const char *k, int def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valueint : def;
}

/* read_top: the planner's top layouts and the training shape from plan.json. */
static int read_top(const char *path, layout *L, int maxk, long *batch, long *seq) {
  size_t len;
  char *text = read_file(path, 64 << 20, &len);
  cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
  free(text);
  const cJSON *top = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "planner"), "top"), *e;
  const cJSON *tr = cJSON_GetObjectItemCaseSensitive(j, "train");
  *batch = geti(tr, "global_batch", 0), *seq = geti(tr, "seq", 0);
  int n = 0;
  cJSON_ArrayForEach(e, top) {
    if (n == maxk) break;
    layout *l = &L[n++];
    *l = (layout){geti(e, "dp", 1), geti(e, "tp", 1), geti(e, "pp", 1), geti(e, "sp", 1), geti(e, "vpp", 1),
                  geti(e, "micro_batch", 1), geti(e, "num_micro_batches", 1), "", geti(e, "zero", 0), -1, -1, 0};
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(e, "recompute"), *st = cJSON_GetObjectItem(e, "step_time_s");
    snprintf(l->recompute, sizeof l->recompute, "%s", cJSON_IsString(rc) ? rc->valuestring : "?");
    l->predicted = cJSON_IsNumber(st) ? st->valuedouble : -1;
  }
  cJSON_Delete(j);
  return n;
}

static int by_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* measured_step: median step seconds from a run's JSON-lines log, skipping
 * the first (warm-up) step when there are more. */
static double measured_step(const char *path, double tokens_per_step) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  double t[4096];
  int n = 0;
  char line[512];
  while (n < 4096 && fgets(line, sizeof line, f)) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "tokens_per_s");
    if (cJSON_IsNumber(r) && r->valuedouble > 0) t[n++] = tokens_per_step / r->valuedouble;
    cJSON_Delete(j);
  }
  fclose(f);
  if (n == 0) return -1;
  int skip = n > 1;
  qsort(t + skip, (size_t)(n - skip), sizeof t[0], by_double);
  return t[skip + (n - skip) / 2];
}

static void child_env(void) {
  if (geteuid() == 0) { /* Open MPI refuses root unless told; the machine may have fewer cores than ranks */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
}

static int plan_top(const ex_autotune_opts *o, const char *exe, const char *dir, layout *L, long *b, long *s) {
  char k[16], json[512], log[512], cl[64];
  snprintf(k, sizeof k, "%d", o->k);
  snprintf(json, sizeof json, "%s/plan.json", dir);
  snprintf(log, sizeof log, "%s/plan.log", dir);
  snprintf(cl, sizeof cl, "cpu:%d", o->np);
  char *argv[16] = {(char *)exe, "plan", (char *)o->model, "--cluster", o->cluster ? (char *)o->cluster : cl,
                    "--top", k, "--json", json};
  int a = 9;
  if (o->batch) argv[a++] = "--batch", argv[a++] = (char *)o->batch;
  if (o->seq) argv[a++] = "--seq", argv[a++] = (char *)o->seq;
  argv[a] = NULL;
  if (run_child(argv, log, o->limit_s)) {
    fprintf(o->log, "tune: error: the planner failed (see %s)\n", log);
    return 0;
  }
  return read_top(json, L, o->k < MAXK ? o->k : MAXK, b, s);
}

static void measure(const ex_autotune_opts *o, const char *exe, const char *dir, layout *l, int i, long b, long s) {
  char v[6][24], jl[512], lg[512], np[16];
  snprintf(v[0], 24, "%d", l->dp), snprintf(v[1], 24, "%d", l->tp), snprintf(v[2], 24, "%d", l->pp);
  snprintf(v[3], 24, "%d", l->m), snprintf(v[4], 24, "%ld", b), snprintf(v[5], 24, "%ld", s);
  snprintf(jl, sizeof jl, "%s/run%d.jsonl", dir, i);
  snprintf(lg, sizeof lg, "%s/run%d.log", dir, i);
  snprintf(np, sizeof np, "%d", o->np);
  char steps[16];
  snprintf(steps, sizeof steps, "%d", o->steps);
  char zero[8];
  snprintf(zero, sizeof zero, "%d", l->zero);
  const char *rc_policy = strcmp(l->recompute, "?") ? l->recompute : "none";
  char *run[] = {(char *)exe, "run", (char *)o->model, "--dp", v[0], "--tp", v[1], "--pp", v[2], "--micro", v[3],
                 "--batch", v[4], "--seq", v[5], "--zero", zero, "--recompute", (char *)rc_policy,
                 "--steps", steps, "--log", jl, "--quiet", NULL};
  char *mpi[40] = {"mpirun", "-np", np};
  for (int k = 0; run[k]; k++) mpi[3 + k] = run[k];
  int rc = run_child(o->np > 1 ? mpi : run, lg, o->limit_s);
  l->measured = rc ? -1 : measured_step(jl, (double)b * s);
  l->ok = l->measured > 0;
  if (!l->ok) fprintf(o->log, "tune: layout %d did not run (see %s)\n", i + 1, lg);
}

static void report(const ex_autotune_opts *o, layout *L, int n) {
  FILE *f = o->out;
  int best = -1;
  double err = 0;
  int nerr = 0;
  fprintf(f, "%-3s %-44s %12s %12s %8s\n", "#", "layout", "predicted s", "measured s", "error");
  for (int i = 0; i < n; i++) {
    layout *l = &L[i];
    char d[96];
    snprintf(d, sizeof d, "dp=%d tp=%d pp=%d sp=%d vpp=%d mbs=%d x%d %s z%d", l->dp, l->tp, l->pp, l->sp, l->vpp,
             l->mbs, l->m, l->recompute, l->zero);
    if (l->ok) {
      double e = (l->predicted - l->measured) / l->measured;
      err += fabs(e), nerr++;
      if (best < 0 || l->measured < L[best].measured) best = i;
      fprintf(f, "%-3d %-44s %12.4g %12.4g %+7.1f%%\n", i + 1, d, l->predicted, l->measured, 100 * e);
    } else {
      fprintf(f, "%-3d %-44s %12.4g %12s %8s\n", i + 1, d, l->predicted, "failed", "");
    }
  }
  if (best >= 0)
    fprintf(f, "fastest measured: #%d (%.4g s/step, planner's rank %d); prediction error %.1f%% (mean |pred-meas|/meas "
               "over %d layouts)\n",
            best + 1, L[best].measured, best + 1, 100 * err / nerr, nerr);
}

/* cleanup: remove the work folder's files and the folder. */
static void cleanup(const char *dir, int k) {
  char p[600];
  const char *fixed[] = {"plan.json", "plan.log"};
  for (int i = 0; i < 2; i++) snprintf(p, sizeof p, "%s/%s", dir, fixed[i]), unlink(p);
  for (int i = 0; i < k; i++) {
    snprintf(p, sizeof p, "%s/run%d.jsonl", dir, i), unlink(p);
    snprintf(p, sizeof p, "%s/run%d.log", dir, i), unlink(p);
  }
  rmdir(dir);
}

/* same_run: an earlier layout that runs with the same executor flags, or -1. */
static int same_run(const layout *L, int i) {
  for (int j = 0; j < i; j++)
    if (L[j].dp == L[i].dp && L[j].tp == L[i].tp && L[j].pp == L[i].pp && L[j].m == L[i].m &&
        L[j].zero == L[i].zero && !strcmp(L[j].recompute, L[i].recompute))
      return j;
  return -1;
}

int ex_autotune(const ex_autotune_opts *o) {
  char exe[4096], dir[] = "/tmp/sbpc-autotune-XXXXXX";
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0 || !mkdtemp(dir)) return fprintf(o->log, "tune: error: cannot find sbpc or make a work folder\n"), 1;
  exe[n] = 0;
  child_env();
  layout L[MAXK];
  long b = 0, s = 0;
  int k = plan_top(o, exe, dir, L, &b, &s);
  if (k == 0 || b <= 0 || s <= 0) return fprintf(o->log, "tune: error: no layouts to measure (work folder %s)\n", dir), 1;
  for (int i = 0; i < k; i++) {
    int same = same_run(L, i);
    if (same >= 0) { /* the same executor flags: one run serves both */
      L[i].measured = L[same].measured, L[i].ok = L[same].ok;
      fprintf(o->log, "tune: layout %d runs as layout %d (same executor flags)\n", i + 1, same + 1);
      continue;
    }
    fprintf(o->log, "tune: measuring layout %d of %d\n", i + 1, k);
    measure(o, exe, dir, &L[i], i, b, s);
  }
  report(o, L, k);
  int ok = 0, all = 1;
  for (int i = 0; i < k; i++) ok |= L[i].ok, all &= L[i].ok;
  if (all) cleanup(dir, k);
  else fprintf(o->log, "tune: logs in %s\n", dir);
  return !ok;
}
