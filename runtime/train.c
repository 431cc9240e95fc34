/* train.c — `sbpc run DIR`: the training loop of one rank.
 *
 * Order: MPI (only when launched by mpirun), the program (format/: every
 * rank reads DIR/program.json), the checks that the ranks agree (world size
 * equals the program's ranks; one hash of the program and the run's flags,
 * compared over the world, so ranks started with different programs or
 * flags stop before any step instead of training silently), the rank's state
 * (exec.c), the data file, then weights or a checkpoint: all refused with a
 * named culprit before any step runs. A step: data-parallel rank i takes
 * samples [i*B/dp, (i+1)*B/dp) of the step's B samples, split into the
 * program's micro-batches; the actor executor (executor.c) runs them and the
 * update; the loss printed is the mean over the micro-batches and
 * data-parallel ranks, summed over the world, as computed before the update.
 * A non-finite loss stops the run naming the step. Rank 0 prints and logs.
 * Checkpoints are in ckpt.c. */
#include "runtime/exec_priv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

rt_config rt_config_default(void) {
  rt_config c;
  memset(&c, 0, sizeof c);
  c.steps = 5;
  c.lr = c.weight_decay = -1;
  c.seed = 1234;
  c.eos = -1;
  c.kernels = RT_KERNELS_AUTO;
  c.device = RT_DEVICE_AUTO;
  return c;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  rt_config cfg;
  const char *dir;       /* the program's directory */
  const fmt_prog *p;
  rt_comm *comm;
  rt_exec *ex;
  rt_data data;
  rt_adapt *ad;          /* --adaptive-sp (adaptive.c), else NULL */
  bool bad_step;         /* a step's input was refused (the SP solver found no assignment) */
  int rank, nranks, stage, dpi, tpi;
  int64_t data_pos;
  FILE *log;
  bool trace_failed;     /* --trace could not be written */
  int64_t first_step;    /* the step the run started at (resumed runs) */
  int64_t timed;         /* steps after the first (warm-up) of this run */
  double timed_s;        /* and their seconds */
  int64_t traced;        /* steps traced so far (--trace) */
  double traced_s;       /* and their seconds */
} run;

/* the logical vocabulary: rows of the table the token ids index */
static int64_t vocab_of(const fmt_prog *p) {
  const ir_graph *g = p->g;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind != IR_OP_EMBEDDING || g->t[o->in[0]].kind != IR_T_INPUT) continue;
    int i = fmt_prog_param_of(p, o->in[1]);
    if (i >= 0) return p->param[i].shape[0];
  }
  return INT32_MAX;
}

static bool under_mpirun(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static void emit(run *r, int64_t step, double loss, double tps, double secs) {
  if (r->rank != 0) return;
  const char *gr = r->ad ? rt_adapt_groups(r->ad) : NULL;
  if (!r->cfg.quiet && gr)
    printf("step %lld loss %.6f tokens/s %.1f groups %s (predicted %.4f s, measured %.4f s)\n", (long long)step, loss,
           tps, gr, rt_adapt_predicted(r->ad), secs);
  else if (!r->cfg.quiet) printf("step %lld loss %.6f tokens/s %.1f\n", (long long)step, loss, tps);
  fflush(stdout);
  if (r->log && gr)
    fprintf(r->log,
            "{\"step\": %lld, \"loss\": %.9g, \"tokens_per_s\": %.1f, \"groups\": \"%s\", \"predicted_s\": %.6g, "
            "\"step_s\": %.6g, \"solve_s\": %.6g}\n",
            (long long)step, loss, tps, gr, rt_adapt_predicted(r->ad), secs, rt_adapt_solve_s(r->ad));
  else if (r->log)
    fprintf(r->log, "{\"step\": %lld, \"loss\": %.9g, \"tokens_per_s\": %.1f}\n", (long long)step, loss, tps);
  if (r->log) fflush(r->log);
}

/* fault injection for tests: SBPC_TEST_FAULT=hang:RANK:STEP or die:RANK:STEP */
static void inject_fault(const run *r) {
  const char *f = getenv("SBPC_TEST_FAULT");
  char kind[8];
  int rank, step;
  if (!f || sscanf(f, "%7[a-z]:%d:%d", kind, &rank, &step) != 3) return;
  if (rank != r->rank || step != rt_exec_step(r->ex) + 1) return;
  sbpc_note("rank %d: injected fault '%s' at step %d", rank, kind, step);
  fflush(stderr);
  if (!strcmp(kind, "die")) _exit(9);
  for (;;) pause();
}

/* --trace: the last --trace-steps steps (default 1) are traced, the first
 * of them (or the run's first) starting with the ranks together */
static bool trace_this(const run *r) {
  int64_t k = r->cfg.trace_steps > 0 ? r->cfg.trace_steps : 1;
  return r->cfg.trace && rt_exec_step(r->ex) + 1 > r->cfg.steps - k;
}

static bool trace_first(const run *r) {
  int64_t k = r->cfg.trace_steps > 0 ? r->cfg.trace_steps : 1, s = rt_exec_step(r->ex) + 1;
  return trace_this(r) && (s == r->cfg.steps - k + 1 || s == r->first_step + 1);
}

/* after a traced step of secs seconds from t0: its slice on the steps lane;
 * the last writes the trace */
static bool trace_step(run *r, double t0, double secs, double loss) {
  char nm[32];
  snprintf(nm, sizeof nm, "step %lld", (long long)rt_exec_step(r->ex));
  rt_trace_slice(r->ex, RT_LANE_STEP, nm, "step", -1, -1, -1, t0, t0 + secs);
  r->traced++, r->traced_s += secs;
  if (rt_exec_step(r->ex) < r->cfg.steps) return true;
  rt_trace_end(r->ex);
  rt_trace_info info = {r->p->model, rt_exec_step(r->ex), r->traced_s / (double)r->traced, loss, r->traced};
  return rt_trace_write(r->ex, r->comm, r->cfg.trace, &info);
}

/* one step; *loss is the step's loss; false when a kernel failed */
/* --adaptive-sp: the step's micro-batches as its groups run them; false: refused */
static bool adaptive_step(run *r, double *loss, double *dt) {
  const fmt_prog *p = r->p;
  const int32_t *ids, *lab;
  bool more = rt_exec_step(r->ex) + 1 < r->cfg.steps;
  if (!rt_adapt_step(r->ad, r->ex, &r->data, r->data_pos, more, &ids, &lab)) return r->bad_step = true, false;
  double t0 = wall();
  bool ok = true;
  double l[1] = {rt_exec_step_run(r->ex, ids, lab, &ok) / (double)p->micro};
  r->ex->ad = NULL;
  rt_exec_set_docs(r->ex, NULL, 1.0);
  rt_comm_allreduce_world(r->comm, l, 1);
  *dt = wall() - t0;
  *loss = l[0];
  return ok;
}

static bool one_step(run *r, double *loss) {
  const fmt_prog *p = r->p;
  inject_fault(r);
  if (r->ad) {
    double dt = 0;
    if (!adaptive_step(r, loss, &dt)) return false;
    rt_exec_set_step(r->ex, rt_exec_step(r->ex) + 1);
    r->data_pos += p->global_batch;
    if (rt_exec_step(r->ex) > r->first_step + 1) r->timed++, r->timed_s += dt;
    if (isfinite(*loss)) emit(r, rt_exec_step(r->ex), *loss, (double)(p->global_batch * p->seq) / dt, dt);
    return true;
  }
  int64_t mb = p->micro_batch, S = p->seq, share = p->global_batch / p->dp, n = share * S;
  int32_t *ids = xmalloc(sizeof *ids * (size_t)n), *lab = xmalloc(sizeof *lab * (size_t)n);
  int32_t *doc = p->packed ? xmalloc(sizeof *doc * (size_t)n) : NULL;
  for (int m = 0; m < p->micro; m++) {
    int64_t at = r->data_pos + r->dpi * share + m * mb, o = m * mb * S;
    if (doc) rt_data_packed(&r->data, at, mb, ids + o, lab + o, doc + o);
    else rt_data_batch(&r->data, at, mb, ids + o, lab + o);
  }
  if (doc) /* the loss is the mean over the step's predicted tokens, on every rank */
    rt_exec_set_docs(r->ex, doc, (double)rt_data_predicted(&r->data, r->data_pos, p->global_batch) /
                                     ((double)p->global_batch * (double)S));
  bool traced = trace_this(r);
  if (trace_first(r) && r->comm) rt_comm_barrier(r->comm);
  if (trace_first(r)) rt_trace_begin(r->ex);
  double t0 = wall();
  bool ok = true;
  double l[1] = {rt_exec_step_run(r->ex, ids, lab, &ok) / ((double)p->dp * p->micro)};
  free(ids);
  free(lab);
  free(doc);
  rt_exec_set_docs(r->ex, NULL, 1.0);
  if (r->comm) rt_comm_allreduce_world(r->comm, l, 1);
  rt_exec_set_step(r->ex, rt_exec_step(r->ex) + 1);
  r->data_pos += p->global_batch;
  double dt = wall() - t0;
  if (rt_exec_step(r->ex) > r->first_step + 1) r->timed++, r->timed_s += dt;
  *loss = l[0];
  if (ok && isfinite(l[0])) emit(r, rt_exec_step(r->ex), l[0], (double)(p->global_batch * S) / dt, dt);
  if (traced && !trace_step(r, t0, dt, l[0])) r->trace_failed = true;
  return ok;
}

/* a packed program needs document boundaries (an indexed dataset or --eos),
 * and --eos a packed program and a flat file */
static bool docs_fit(run *r) {
  int64_t eos = r->cfg.eos;
  if (eos >= 0 && !r->p->packed)
    return sbpc_error("--eos needs a program compiled with --packed (packed variable-length batches)"), false;
  if (eos >= 0 && r->data.idx)
    return sbpc_error("--eos: the indexed dataset %s has its own documents", rt_idx_path(r->data.idx, false)), false;
  if (eos >= vocab_of(r->p))
    return sbpc_error("--eos %lld is outside the vocabulary [0, %lld)", (long long)eos, (long long)vocab_of(r->p)), false;
  r->data.eos = eos;
  if (r->p->packed && !rt_data_has_docs(&r->data))
    return sbpc_error("the program packs documents (compiled with --packed) but the data has no boundaries: give "
                      "an indexed dataset (--data PREFIX) or --eos ID"), false;
  return true;
}

static bool open_data(run *r) {
  int64_t v = vocab_of(r->p);
  if (r->cfg.data && !rt_data_open(&r->data, r->cfg.data, r->p->seq, v)) return false;
  if (!r->cfg.data) rt_data_synthetic(&r->data, r->p->seq, v == INT32_MAX ? 256 : v, 4 * r->p->global_batch);
  return docs_fit(r);
}

/* the step's model FLOPs (GEMMs and attention products) over all ranks */
static double step_flops(const run *r) {
  const fmt_stage *st = &r->p->stage[r->stage];
  double f[1] = {0};
  for (int a = 0; a < st->nact; a++)
    for (int q = 0; q < st->act[a].nops; q++) f[0] += rt_model_flops(r->p->g, &r->p->g->op[st->act[a].ops[q]]);
  f[0] *= r->p->micro;
  if (r->comm) rt_comm_allreduce_world(r->comm, f, 1);
  return f[0];
}

static void report_speed(run *r) {
  double f = step_flops(r);
  if (r->rank == 0 && !r->cfg.quiet && r->timed > 0)
    printf("model FLOPs per step: %.3f GFLOP; %.2f GFLOP/s over steps 2-%lld (GEMMs and attention products)\n", f / 1e9,
           f * (double)r->timed / r->timed_s / 1e9, (long long)rt_exec_step(r->ex));
}

static void report_memory(run *r) {
  double *peak = xcalloc((size_t)r->nranks, sizeof *peak);
  peak[r->rank] = (double)rt_exec_peak_bytes(r->ex);
  if (r->comm) rt_comm_allreduce_world(r->comm, peak, r->nranks);
  if (r->rank == 0 && !r->cfg.quiet) {
    printf("peak memory per rank (MiB):");
    for (int i = 0; i < r->nranks; i++) printf(" %.1f", peak[i] / 1048576.0);
    if (r->ex->dev) printf(" on the device (planned %.1f)\n", (double)r->p->gpu->predicted_peak / 1048576.0);
    else printf(" (planned %.1f)\n", (double)r->p->predicted_peak / 1048576.0);
  }
  free(peak);
}

static int train_loop(run *r) {
  r->first_step = rt_exec_step(r->ex);
  for (int64_t s = rt_exec_step(r->ex); s < r->cfg.steps; s++) {
    double loss = 0;
    if (!one_step(r, &loss)) {
      if (r->bad_step) return EXIT_BAD_INPUT;
      sbpc_error("rank %d: a kernel failed at step %lld", r->rank, (long long)s + 1);
      return EXIT_INTERNAL;
    }
    if (!isfinite(loss)) {
      if (r->rank == 0)
        sbpc_error("step %lld: the loss is %s; stopping (check the weights, the data and the learning rate)",
                   (long long)s + 1, isnan(loss) ? "NaN" : "infinite");
      return EXIT_BAD_INPUT;
    }
  }
  report_memory(r);
  report_speed(r);
  if (r->ad && !r->cfg.quiet) rt_adapt_report(r->ad);
  rt_exec_profile_report(r->ex);
  if (r->trace_failed) return EXIT_BAD_INPUT;
  if (r->cfg.save && !rt_dev_download(r->ex)) return EXIT_INTERNAL; /* GPU: the trained values to the host */
  if (r->cfg.save && !rt_ckpt_save(r->ex, r->comm, r->cfg.save, r->data_pos, r->cfg.seed)) return EXIT_BAD_INPUT;
  return EXIT_OK;
}

static int setup(run *r) {
  diag d;
  diag_init(&d, r->p->model, NULL, 0);
  bool gpu = r->cfg.device == RT_DEVICE_CUDA; /* the GPU executor checks the device's memory itself */
  if (!gpu && !rt_mem_check(r->p, r->stage, &r->cfg)) return EXIT_BAD_INPUT;
  if (r->rank == 0 && r->cfg.save && !rt_ckpt_save_ok(r->cfg.save)) return EXIT_BAD_INPUT;
  r->ex = rt_exec_new(r->p, r->dir, &r->cfg, r->comm, r->rank, &d);
  if (!r->ex || !open_data(r)) return EXIT_BAD_INPUT;
  bool bad = false;
  if (!(r->ad = rt_adapt_new(r->p, r->comm, r->rank, r->nranks, &r->cfg, &bad)) && bad) return EXIT_BAD_INPUT;
  if (r->rank == 0 && !r->cfg.quiet && r->ex->jit)
    printf("kernels: %d actors run the program's fused kernels, the rest the reference kernels\n", rt_jit_count(r->ex->jit));
  if (r->cfg.weights && !rt_load_weights(r->ex, r->cfg.weights)) return EXIT_BAD_INPUT;
  if (r->cfg.resume && !rt_ckpt_load(r->ex, r->cfg.resume, &r->data_pos)) return EXIT_BAD_INPUT;
  if ((r->cfg.weights || r->cfg.resume) && !rt_dev_upload(r->ex, r->ex->dev)) return EXIT_INTERNAL; /* GPU: the loaded values */
  if (gpu && r->rank == 0 && !r->cfg.quiet) {
    char line[512];
    rt_dev_describe(r->ex->dev, line, sizeof line);
    printf("%s\n", line);
  }
  if (r->rank == 0 && r->cfg.log && !(r->log = fopen(r->cfg.log, "w"))) {
    sbpc_error("cannot open the log file '%s'", r->cfg.log);
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}

/* every rank agrees on a status: the worst one */
static int agree(run *r, int st) {
  if (!r->comm) return st;
  double v[1] = {st != EXIT_OK};
  rt_comm_allreduce_world(r->comm, v, 1);
  return st != EXIT_OK ? st : v[0] > 0 ? EXIT_BAD_INPUT : EXIT_OK;
}

static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* the program and the flags that change what a step computes, hashed */
static uint64_t run_hash(const run *r) {
  const fmt_prog *p = r->p;
  uint64_t h = mix(1469598103934665603ull, &p->model_hash, sizeof p->model_hash);
  int32_t lay[9] = {p->dp, p->tp, p->pp, p->micro, p->zero, p->recompute, p->packed, p->adaptive, r->cfg.sp_degree};
  int64_t sz[3] = {p->global_batch, p->seq, (int64_t)p->predicted_peak};
  h = mix(mix(h, lay, sizeof lay), sz, sizeof sz);
  const rt_config *c = &r->cfg;
  double hyper[2] = {c->lr, c->weight_decay};
  h = mix(mix(mix(h, &c->seed, sizeof c->seed), hyper, sizeof hyper), &c->steps, sizeof c->steps);
  h = mix(h, &c->eos, sizeof c->eos);
  const char *s[3] = {c->data ? c->data : "", c->weights ? c->weights : "", c->resume ? c->resume : ""};
  for (int i = 0; i < 3; i++) h = mix(h, s[i], strlen(s[i]) + 1);
  return h;
}

/* the ranks run one program with one set of flags: each of the hash's four
 * 16-bit parts has zero variance over the world */
static bool same_everywhere(run *r) {
  if (!r->comm) return true;
  uint64_t h = run_hash(r);
  double s[8];
  for (int i = 0; i < 4; i++) s[i] = (double)(h >> (16 * i) & 0xffff), s[4 + i] = s[i] * s[i];
  rt_comm_allreduce_world(r->comm, s, 8); /* sums of x and x^2: exact in doubles */
  bool same = true;
  for (int i = 0; i < 4; i++) same &= s[4 + i] * r->nranks == s[i] * s[i]; /* zero variance */
  if (!same && r->rank == 0)
    sbpc_error("the ranks were not started with the same program and flags (model, layout, seed, steps, lr, data, "
               "weights or resume differ); every rank must run the same `sbpc run DIR ...`");
  return same;
}

static int start(run *r, const char *dir) {
  fmt_prog *p = fmt_prog_read(dir);
  if (agree(r, p ? EXIT_OK : EXIT_BAD_INPUT) != EXIT_OK) return fmt_prog_free(p), EXIT_BAD_INPUT;
  r->p = p;
  int want = p->dp * p->tp * p->pp * p->sp;
  if (want != r->nranks) {
    if (r->rank == 0)
      sbpc_error("the program is for %d rank%s (dp %d x tp %d x pp %d) but %d %s started", want, want == 1 ? "" : "s",
                 p->dp, p->tp, p->pp, r->nranks, r->nranks == 1 ? "process was" : "processes were");
    return EXIT_BAD_INPUT;
  }
  if (!same_everywhere(r)) return EXIT_BAD_INPUT;
  char why[600];
  int dev = rt_device_choose(p, r->cfg.device, why, sizeof why); /* --device: docs/gpu.md */
  if (dev < 0) return sbpc_error("%s: %s", r->cfg.dir, why), EXIT_BAD_INPUT;
  r->cfg.device = dev;
  fmt_prog_rank(p, r->rank, &r->stage, &r->dpi, &r->tpi);
  if (r->comm) rt_comm_split_dp(r->comm, r->stage * p->tp + r->tpi);
  if (r->comm) rt_comm_split_tp(r->comm, r->rank / (p->tp * p->sp)); /* tp 1 under sp: the sp group */
  return setup(r);
}

int rt_run(const char *dir, const rt_config *cfg, int *argc, char ***argv) {
  run r;
  memset(&r, 0, sizeof r);
  r.cfg = *cfg;
  r.cfg.dir = dir;
  r.dir = dir;
  r.nranks = 1;
  if (under_mpirun()) {
    if (!(r.comm = rt_comm_init(argc, argv))) {
      sbpc_error("MPI could not be initialised");
      return EXIT_INTERNAL;
    }
    r.rank = rt_comm_rank(r.comm), r.nranks = rt_comm_size(r.comm);
  }
  /* start-up waits on the other ranks' work (reading the program, JIT
   * compiling kernels on a cold cache), not on a hang: a longer deadline */
  double deadline = rt_comm_timeout;
  rt_comm_timeout = deadline * 10 > 300 ? deadline * 10 : 300;
  int st = agree(&r, start(&r, dir));
  rt_comm_timeout = deadline;
  if (st == EXIT_OK) st = agree(&r, train_loop(&r));
  if (r.log) fclose(r.log);
  rt_adapt_free(r.ad);
  rt_exec_free(r.ex);
  rt_data_free(&r.data);
  fmt_prog_free((fmt_prog *)r.p);
  rt_comm_finalize(r.comm);
  return st;
}
