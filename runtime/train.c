/* train.c — `sbpc run`: the training loop of one rank.
 *
 * Order: MPI (only when launched by mpirun), layout checks (rank count, batch
 * divisibility), the interpreter (exec.c), the data file, then weights or a
 * checkpoint — all refused with a named culprit before any step runs. A step:
 * for each of the rank's micro-batches, forward + backward on its share of the
 * global batch (data-parallel rank i takes samples [i*B/dp, (i+1)*B/dp) of the
 * step's B samples, split into `micro` micro-batches), gradients scaled by
 * 1/(dp*micro) so the sum is the gradient of the mean loss over all B*S
 * tokens; then the update. The loss printed is the mean over the micro-batches
 * and data-parallel ranks, summed over the world (only last-stage ranks
 * contribute), as computed before the update. Rank 0 prints and logs.
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
  c.global_batch = 8;
  c.steps = 5;
  c.lay.dp = c.lay.tp = c.lay.pp = c.lay.micro = 1;
  c.lr = 1e-3;
  c.weight_decay = 0.01;
  c.seed = 1234;
  c.kernels = RT_KERNELS_AUTO;
  return c;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t vocab_of(const ir_graph *g) {
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind == IR_OP_EMBEDDING && g->t[o->in[0]].kind == IR_T_INPUT)
      return ir_dim_eval(g->t[o->in[1]].shape[0], 1, 1);
  }
  return INT32_MAX;
}

static bool under_mpirun(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static bool check_layout(const rt_config *c, int nranks) {
  const rt_layout *l = &c->lay;
  int want = l->dp * l->tp * l->pp;
  if (want != nranks) {
    sbpc_error("the plan is for %d rank%s (dp %d x tp %d x pp %d) but %d %s started", want, want == 1 ? "" : "s", l->dp,
               l->tp, l->pp, nranks, nranks == 1 ? "process was" : "processes were");
    return false;
  }
  if (c->global_batch <= 0 || c->global_batch % (l->dp * l->micro)) {
    sbpc_error("global batch %lld does not divide into dp %d x %d micro-batches", (long long)c->global_batch, l->dp,
               l->micro);
    return false;
  }
  if (c->executor == 1 && l->tp > 1) {
    sbpc_error("the actor executor does not run tensor parallelism yet (tp = %d): use --executor interp", l->tp);
    return false;
  }
  if (c->executor == 1 && c->recompute != RT_RECOMPUTE_NONE) {
    sbpc_error("the actor executor does not recompute yet: use --executor interp (or auto) with --recompute");
    return false;
  }
  if (c->seq <= 0) {
    sbpc_error("no sequence length (train { seq = ... } or --seq)");
    return false;
  }
  return true;
}

typedef struct {
  rt_config cfg;
  rt_comm *comm;
  rt_exec *ex;
  rt_data data;
  int rank, nranks, stage, dpi, tpi;
  int64_t data_pos;
  FILE *log;
  bool trace_failed;     /* --trace could not be written */
  bool bad_loss;         /* a step's loss was not finite */
} run;

static void emit(run *r, int64_t step, double loss, double tps) {
  if (r->rank != 0) return;
  if (!r->cfg.quiet) printf("step %lld loss %.6f tokens/s %.1f\n", (long long)step, loss, tps);
  fflush(stdout);
  if (r->log) {
    fprintf(r->log, "{\"step\": %lld, \"loss\": %.9g, \"tokens_per_s\": %.1f}\n", (long long)step, loss, tps);
    fflush(r->log);
  }
}

/* fault injection for tests: SBPC_TEST_FAULT=hang:RANK:STEP or die:RANK:STEP */
static void inject_fault(const run *r) {
  const char *f = getenv("SBPC_TEST_FAULT");
  char kind[8];
  int rank, step;
  if (!f || sscanf(f, "%7[a-z]:%d:%d", kind, &rank, &step) != 3) return;
  if (rank != r->rank || step != rt_exec_step(r->ex) + 1) return;
  fprintf(stderr, "sbpc: rank %d: injected fault '%s' at step %d\n", rank, kind, step);
  fflush(stderr);
  if (!strcmp(kind, "die")) _exit(9);
  for (;;) pause();
}

static bool use_actors(const rt_config *c) {
  return c->executor == 1 || (c->executor == 0 && c->lay.tp <= 1 && c->recompute == RT_RECOMPUTE_NONE);
}

/* the rank's micro-batches of this step, one by one (interpreter) or all at
 * once (actor executor); returns the sum of the losses held here */
static double micro_batches(run *r, int32_t *ids, int32_t *lab, bool *ok) {
  const rt_config *c = &r->cfg;
  int64_t share = c->global_batch / c->lay.dp, mb = share / c->lay.micro, S = c->seq;
  double lsum = 0, gs = 1.0 / (c->lay.dp * c->lay.micro);
  for (int m = 0; m < c->lay.micro; m++)
    rt_data_batch(&r->data, r->data_pos + r->dpi * share + m * mb, mb, ids + m * mb * S, lab + m * mb * S);
  if (use_actors(c)) return rt_exec_actors(r->ex, ids, lab, c->lay.micro, gs, ok);
  for (int m = 0; m < c->lay.micro && *ok; m++) {
    double l = rt_exec_fwd_bwd(r->ex, ids + m * mb * S, lab + m * mb * S, gs);
    if (!isnan(l)) lsum += l;
    else if (r->stage == c->lay.pp - 1) *ok = false;
  }
  return lsum;
}

/* --trace: the last step is traced; the ranks start it together */
static bool trace_this(const run *r) { return r->cfg.trace && rt_exec_step(r->ex) + 1 == r->cfg.steps; }

static bool finish_trace(run *r, double secs, double loss) {
  rt_trace_end(r->ex);
  rt_trace_info info = {r->cfg.model, rt_exec_step(r->ex), secs, loss};
  return rt_trace_write(r->ex, r->comm, r->cfg.trace, &info);
}

/* a NaN or infinite loss stops the run before its update, naming the step */
static bool nonfinite(run *r, double loss) {
  if (r->rank == 0)
    sbpc_error("step %lld: the loss is %s; stopping before the update (check the weights, the data and the "
               "learning rate)", (long long)rt_exec_step(r->ex) + 1, isnan(loss) ? "NaN" : "infinite");
  r->bad_loss = true;
  return false;
}

static bool one_step(run *r) {
  const rt_config *c = &r->cfg;
  inject_fault(r);
  int64_t n = c->global_batch / c->lay.dp * c->seq;
  int32_t *ids = xmalloc(sizeof *ids * (size_t)n), *lab = xmalloc(sizeof *lab * (size_t)n);
  bool traced = trace_this(r);
  if (traced && r->comm) rt_comm_barrier(r->comm);
  if (traced) rt_trace_begin(r->ex);
  double t0 = wall();
  bool ok = true;
  rt_exec_zero_grads(r->ex);
  double t1 = wall();
  double loss[1] = {micro_batches(r, ids, lab, &ok) / (c->lay.dp * c->lay.micro)};
  free(ids);
  free(lab);
  double t2 = wall();
  if (r->comm) rt_comm_allreduce_world(r->comm, loss, 1);
  if (ok && !isfinite(loss[0])) return nonfinite(r, loss[0]);
  ok = ok && rt_exec_update(r->ex);
  r->data_pos += c->global_batch;
  double dt = wall() - t0;
  if (getenv("SBPC_PROFILE") && !c->quiet)
    fprintf(stderr, "rank %d step %lld: zero grads %.3f s, forward+backward %.3f s, update %.3f s\n", r->rank,
            (long long)rt_exec_step(r->ex), t1 - t0, t2 - t1, t0 + dt - t2);
  if (ok) emit(r, rt_exec_step(r->ex), loss[0], (double)(c->global_batch * c->seq) / dt);
  if (traced && !finish_trace(r, dt, loss[0])) r->trace_failed = true;
  return ok;
}

static bool open_data(run *r) {
  const ir_graph *g = rt_exec_graph(r->ex);
  if (r->cfg.data) return rt_data_open(&r->data, r->cfg.data, r->cfg.seq, vocab_of(g));
  int64_t v = vocab_of(g);
  rt_data_synthetic(&r->data, r->cfg.seq, v == INT32_MAX ? 256 : v, 4 * r->cfg.global_batch);
  return true;
}

static void report_memory(run *r) {
  double *peak = xcalloc((size_t)r->nranks, sizeof *peak);
  peak[r->rank] = (double)rt_exec_peak_bytes(r->ex);
  if (r->comm) rt_comm_allreduce_world(r->comm, peak, r->nranks);
  if (r->rank == 0 && !r->cfg.quiet) {
    printf("peak memory per rank (MiB):");
    for (int i = 0; i < r->nranks; i++) printf(" %.1f", peak[i] / 1048576.0);
    printf("\n");
  }
  free(peak);
}

static int train_loop(run *r) {
  for (int64_t s = rt_exec_step(r->ex); s < r->cfg.steps; s++)
    if (!one_step(r)) {
      if (r->bad_loss) return EXIT_BAD_INPUT;
      sbpc_error("rank %d: a kernel failed at step %lld", r->rank, (long long)s + 1);
      return EXIT_INTERNAL;
    }
  report_memory(r);
  rt_exec_profile_report(r->ex);
  if (r->trace_failed) return EXIT_BAD_INPUT;
  if (r->cfg.save && !rt_ckpt_save(r->ex, r->comm, r->cfg.save, r->data_pos, r->cfg.seed)) return EXIT_BAD_INPUT;
  return EXIT_OK;
}

static int setup(run *r, ir_graph *g) {
  diag d;
  diag_init(&d, r->cfg.model ? r->cfg.model : "model", NULL, 0);
  if (!rt_data_check_inputs(g, r->cfg.seq, r->cfg.model ? r->cfg.model : "model")) return EXIT_BAD_INPUT;
  if (!rt_mem_check(g, &r->cfg)) return EXIT_BAD_INPUT;
  if (r->rank == 0 && r->cfg.save && !rt_ckpt_save_ok(r->cfg.save)) return EXIT_BAD_INPUT;
  r->ex = rt_exec_new_ranked(g, &r->cfg, r->comm, r->stage, r->dpi, r->tpi, &d);
  if (!r->ex || !open_data(r)) return EXIT_BAD_INPUT;
  if (r->rank == 0 && !r->cfg.quiet && r->ex->jit)
    printf("kernels: %d ops run codegen's JIT-compiled kernels, the rest the reference kernels\n", rt_jit_count(r->ex->jit));
  if (r->cfg.weights && !rt_load_weights(r->ex, r->cfg.weights)) return EXIT_BAD_INPUT;
  if (r->cfg.resume && !rt_ckpt_load(r->ex, r->cfg.resume, &r->data_pos)) return EXIT_BAD_INPUT;
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

int rt_train(ir_graph *g, const rt_config *cfg, int *argc, char ***argv) {
  run r;
  memset(&r, 0, sizeof r);
  r.cfg = *cfg;
  r.nranks = 1;
  if (under_mpirun()) {
    if (!(r.comm = rt_comm_init(argc, argv))) {
      sbpc_error("MPI could not be initialised");
      return EXIT_INTERNAL;
    }
    r.rank = rt_comm_rank(r.comm), r.nranks = rt_comm_size(r.comm);
  }
  int st = check_layout(&r.cfg, r.nranks) ? EXIT_OK : EXIT_BAD_INPUT;
  if (st == EXIT_OK) {
    int dp = r.cfg.lay.dp, tp = r.cfg.lay.tp; /* rank = (stage * dp + dpi) * tp + tpi */
    r.stage = r.rank / (dp * tp), r.dpi = r.rank / tp % dp, r.tpi = r.rank % tp;
    if (r.comm) rt_comm_split_dp(r.comm, r.stage * tp + r.tpi);
    if (r.comm) rt_comm_split_tp(r.comm, r.rank / tp);
    st = agree(&r, setup(&r, g));
  }
  if (st == EXIT_OK) st = agree(&r, train_loop(&r));
  if (r.log) fclose(r.log);
  rt_exec_free(r.ex);
  rt_data_free(&r.data);
  rt_comm_finalize(r.comm);
  return st;
}
