/* exec.c — one rank's state: the program's stage for this rank, its two
 * arenas, its parameters, and logical values in and out.
 *
 * Loading takes everything from the program and decides nothing: the rank's
 * stage, dp and tp index follow from its world rank; the activation arena is
 * st->arena_bytes and every register instance lives at its planned offset;
 * the persistent arena is st->persist_bytes with every parameter, state
 * slice and gradient accumulator at its planned offset. Both arenas are
 * allocated once (2 MiB aligned, transparent huge pages) and zeroed.
 * Parameters are initialised from their logical values (init.c: a function
 * of seed, name and element only), then cut to this rank's shard (shard.c),
 * so every layout starts from the same model. AdamW's lr and weight decay
 * come from the run when it sets them.
 *
 * Logical values (checkpoints, --weights): a parameter's shard is gathered
 * over the tp group and unsharded; ZeRO-sliced state (and ZeRO-3's sliced
 * parameters) is first all-gathered over the dp group. */
#include "runtime/exec_priv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_MIN ((int64_t)1 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

/* zeroed bytes, 2 MiB aligned and advised as huge pages when large */
static void *big_alloc(int64_t bytes) {
  size_t n = bytes > 0 ? (size_t)bytes : 64;
  void *q = NULL;
  if (bytes < HUGE_MIN) return xcalloc(n, 1);
  n = (n + HUGE_ALIGN - 1) / HUGE_ALIGN * HUGE_ALIGN;
  if (posix_memalign(&q, HUGE_ALIGN, n) != 0) return xcalloc(n, 1);
#ifdef MADV_HUGEPAGE
  madvise(q, n, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
  return memset(q, 0, n);
}

void rt_exec_count(rt_exec *e, int64_t n) {
  __atomic_add_fetch(&e->live, n, __ATOMIC_SEQ_CST);
  int64_t cur = __atomic_load_n(&e->live, __ATOMIC_SEQ_CST), pk = __atomic_load_n(&e->peak, __ATOMIC_SEQ_CST);
  while (cur > pk && !__atomic_compare_exchange_n(&e->peak, &pk, cur, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
}

int64_t rt_exec_slice(const rt_exec *e, int64_t n, int64_t *lo, int64_t *cnt) {
  int64_t chunk = (n + e->dp - 1) / e->dp;
  *lo = e->dpi * chunk < n ? e->dpi * chunk : n;
  *cnt = n - *lo < chunk ? n - *lo : chunk;
  return chunk > 0 ? chunk : 1;
}

static void place_persistent(rt_exec *e) {
  const fmt_stage *st = e->st;
  for (int i = 0; i < st->npers; i++) {
    const fmt_pers *q = &st->pers[i];
    void *at = e->pers + q->offset;
    if (q->role == FMT_P_GRAD) e->acc[q->tensor] = at;
    else e->buf[q->tensor] = at;
  }
}

static void init_params(rt_exec *e) {
  const fmt_prog *p = e->p;
  for (int i = 0; i < p->nparam; i++) {
    const fmt_param *q = &p->param[i];
    if (!e->buf[q->tensor]) continue;
    int64_t n = 1;
    for (int k = 0; k < q->rank; k++) n *= q->shape[k];
    float *full = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    rt_init_param(q->name, q->rank, full, n, e->cfg.seed);
    rt_exec_set_logical(e, q->tensor, full);
    free(full);
  }
}

/* the run's lr and weight decay, where it sets them, on every adamw op */
static void set_hyper(rt_exec *e) {
  for (int k = 0; k < e->g->nop; k++) {
    ir_op *o = &e->g->op[k];
    if (o->kind != IR_OP_ADAMW) continue;
    if (e->cfg.lr >= 0) o->at.lr = e->cfg.lr;
    if (e->cfg.weight_decay >= 0) o->at.weight_decay = e->cfg.weight_decay;
  }
}

/* the fused kernels' machine code, and each actor's function; without it
 * (--kernels ref, or auto when it cannot be had) the reference kernels run
 * the ops of a fused group one by one */
static bool setup_jit(rt_exec *e, const char *dir, diag *d) {
  char why[512];
  e->kfn = xcalloc((size_t)e->st->nact + 1, sizeof *e->kfn);
  if (e->cfg.device == RT_DEVICE_CUDA) return true; /* the GPU runs its own kernels */
  if (e->cfg.kernels != RT_KERNELS_REF && !(e->jit = rt_jit_new(e->p, dir, why, sizeof why))) {
    if (e->cfg.kernels == RT_KERNELS_JIT) {
      diag_error(d, (srcloc){0, 0}, "cannot JIT-compile the kernels: %s", why);
      return false;
    }
    if (e->rank == 0) sbpc_note("no JIT (%s); running the reference kernels", why);
  }
  for (int a = 0; a < e->st->nact && e->jit; a++) {
    const fmt_kernel *k = e->st->act[a].kernel;
    if (k && !(e->kfn[a] = rt_jit_kernel(e->jit, k->name))) {
      diag_error(d, (srcloc){0, 0}, "the program's kernels have no function '%s'", k->name);
      return false;
    }
  }
  return true;
}

rt_exec *rt_exec_new(const fmt_prog *p, const char *dir, const rt_config *cfg, rt_comm *comm, int rank, diag *d) {
  rt_exec *e = xcalloc(1, sizeof *e);
  e->p = p, e->g = p->g, e->cfg = *cfg, e->comm = comm, e->rank = rank;
  fmt_prog_rank(p, rank, &e->stage, &e->dpi, &e->tpi);
  e->sp = p->sp, e->spi = fmt_prog_sp_index(p, rank);
  e->dpi = e->dpi * e->sp + e->spi;
  e->dp = p->dp * p->sp, e->tp = p->tp, e->pp = p->pp, e->M = p->micro;
  e->st = &p->stage[e->stage];
  e->gscale = 1.0 / ((double)p->dp * p->micro);
  e->ce_ratio = 1.0;
  e->profile = getenv("SBPC_PROFILE") != NULL;
  e->buf = xcalloc((size_t)e->g->nt + 1, sizeof *e->buf);
  e->acc = xcalloc((size_t)e->g->nt + 1, sizeof *e->acc);
  bool gpu = cfg->device == RT_DEVICE_CUDA; /* activations live on the device then */
  e->arena = gpu ? NULL : big_alloc(e->st->arena_bytes);
  e->pers = big_alloc(e->st->persist_bytes);
  rt_exec_count(e, (gpu ? 0 : e->st->arena_bytes) + e->st->persist_bytes);
  place_persistent(e);
  init_params(e);
  set_hyper(e);
  if ((gpu && !(e->dev = rt_dev_new(e))) || !setup_jit(e, dir, d)) {
    rt_exec_free(e);
    return NULL;
  }
  return e;
}

void rt_exec_free(rt_exec *e) {
  if (!e) return;
  rt_dev_free(e->dev);
  rt_exec_pool_free(e);
  free(e->arena), free(e->pers), free(e->buf), free(e->acc), free(e->kfn);
  rt_trace_free(e);
  rt_jit_free(e->jit);
  free(e);
}

const ir_graph *rt_exec_graph(const rt_exec *e) { return e->g; }
int64_t rt_exec_step(const rt_exec *e) { return e->step; }
void rt_exec_set_step(rt_exec *e, int64_t step) { e->step = step; }
int64_t rt_exec_peak_bytes(const rt_exec *e) { return e->dev ? rt_dev_peak(e->dev) : e->peak; }
int rt_exec_rank_of(const rt_exec *e, int s, int i) { return (s * e->dp + i) * e->tp; }
uint64_t rt_exec_model_hash(const rt_exec *e) { return e->p->model_hash; }

uint64_t rt_exec_holders(const rt_exec *e, ir_ref p) {
  int i = fmt_prog_param_of(e->p, p);
  return i >= 0 ? e->p->param[i].stages : 0;
}

bool rt_exec_holds(const rt_exec *e, ir_ref t) { return t >= 0 && t < e->g->nt && e->buf[t]; }

float *rt_exec_param(rt_exec *e, ir_ref t) { return rt_exec_holds(e, t) ? e->buf[t] : NULL; }

float *rt_exec_grad(rt_exec *e, ir_ref p) { return p >= 0 && p < e->g->nt ? e->acc[p] : NULL; }

/* ---- the update (optim actors) ------------------------------------------------ */
bool rt_exec_update(rt_exec *e, int b) {
  const fmt_bucket *bk = &e->p->bucket[b];
  bool zero = e->dp > 1 && e->p->zero >= 1, zero2 = e->dp > 1 && e->p->zero >= 2, zero3 = e->dp > 1 && e->p->zero >= 3;
  for (int i = 0; i < bk->nparam; i++) {
    const fmt_param *q = &e->p->param[bk->param[i]];
    if (!e->buf[q->tensor]) continue;
    const ir_op *o = &e->g->op[q->adamw];
    float *p = e->buf[q->tensor], *g = e->acc[q->tensor];
    int64_t n = ir_numel(e->g, q->tensor), lo = 0, cnt = n;
    if (zero) rt_exec_slice(e, n, &lo, &cnt);
    double t0 = rt_trace_now();
    rt_adamw(&o->at, zero3 ? p : p + lo, zero2 ? g : g + lo, e->buf[q->exp_avg], e->buf[q->exp_avg_sq], cnt, e->step + 1);
    rt_trace_slice(e, RT_LANE_COMPUTE, "adamw", "optimizer", q->tensor, q->adamw, -1, t0, rt_trace_now());
  }
  return true;
}

/* ---- logical values --------------------------------------------------------------- */
static const fmt_param *layout_of(const rt_exec *e, ir_ref t) {
  int i = fmt_prog_param_of(e->p, t);
  return i >= 0 ? &e->p->param[i] : NULL;
}

int rt_exec_logical_shape(const rt_exec *e, ir_ref t, int64_t *shape) {
  const fmt_param *q = layout_of(e, t);
  if (!q) return 0;
  memcpy(shape, q->shape, sizeof(int64_t) * (size_t)q->rank);
  return q->rank;
}

/* held as a 1/dp slice: ZeRO's optimizer state, and ZeRO-3's parameters */
static bool sliced(const rt_exec *e, ir_ref t) {
  ir_tkind k = e->g->t[t].kind;
  return e->dp > 1 && ((e->p->zero >= 1 && k == IR_T_STATE) || (e->p->zero >= 3 && k == IR_T_PARAM));
}

/* the tp-local value of t: its buffer, or a ZeRO slice gathered over dp */
static float *local_value(rt_exec *e, ir_ref t, bool *owned) {
  *owned = sliced(e, t);
  if (!*owned) return e->buf[t];
  int64_t lo, cnt, chunk = rt_exec_slice(e, ir_numel(e->g, t), &lo, &cnt);
  float *all = xmalloc(sizeof(float) * (size_t)(chunk * e->dp));
  rt_comm_allgather_dp(e->comm, e->buf[t], chunk, all);
  return all;
}

float *rt_exec_logical(rt_exec *e, ir_ref t) {
  const fmt_param *q = layout_of(e, t);
  int64_t n = ir_numel(e->g, t), full_n = n * (q && q->split >= 0 ? e->tp : 1);
  float *full = xmalloc(sizeof(float) * (size_t)(full_n > 0 ? full_n : 1));
  bool owned;
  float *loc = local_value(e, t, &owned);
  if (!q || q->split < 0 || e->tp <= 1) {
    memcpy(full, loc, sizeof(float) * (size_t)n);
  } else {
    float *all = xmalloc(sizeof(float) * (size_t)(n * e->tp));
    rt_comm_allgather_tp(e->comm, loc, n, all);
    rt_unshard(q->shape, q->rank, q->split, e->tp, q->groups, all, full);
    free(all);
  }
  if (owned) free(loc);
  return full;
}

void rt_exec_set_logical(rt_exec *e, ir_ref t, const float *full) {
  const fmt_param *q = layout_of(e, t);
  if (!q || !e->buf[t]) return;
  bool z = sliced(e, t);
  float *dst = z ? xmalloc(sizeof(float) * (size_t)(ir_numel(e->g, t) + 1)) : e->buf[t];
  rt_shard(q->shape, q->rank, q->split, e->tp, e->tpi, q->groups, full, dst);
  if (!z) return;
  int64_t lo, cnt;
  rt_exec_slice(e, ir_numel(e->g, t), &lo, &cnt);
  memcpy(e->buf[t], dst + lo, sizeof(float) * (size_t)cnt);
  free(dst);
}

void rt_exec_set_docs(rt_exec *e, const int32_t *doc, double ce_ratio) {
  e->doc = doc;
  e->ce_ratio = ce_ratio > 0 ? ce_ratio : 1.0;
}

/* ---- kernels ---------------------------------------------------------------------- */
static int64_t op_ns[IR_NOPKIND];
static int op_calls[IR_NOPKIND], op_jit[IR_NOPKIND];

/* SBPC_PROFILE: one more call of op kind `kind` that began at t0 */
static void profile_add(const rt_exec *e, int kind, double t0, bool jit) {
  if (!e->profile) return;
  __atomic_fetch_add(&op_calls[kind], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&op_jit[kind], jit, __ATOMIC_RELAXED);
  __atomic_fetch_add(&op_ns[kind], (int64_t)((rt_trace_now() - t0) * 1e9), __ATOMIC_RELAXED);
}

bool rt_exec_kernel(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro) {
  int64_t C = e->p->seq / e->sp, mb_elems = e->p->micro_batch * C;
  const int32_t *doc = e->sp > 1 ? e->doc_sp : e->doc; /* the rank's tokens'; attention's: the whole samples' */
  rt_kctx kc = {.step = e->step + 1, .seed = e->cfg.seed, .micro = micro, .tp = e->tp, .tpi = e->tpi,
                .pos0 = (int64_t)e->spi * C, .doc = doc ? doc + micro * mb_elems : NULL,
                .doc_all = e->sp > 1 && e->doc ? e->doc + micro * e->p->micro_batch * e->p->seq : NULL,
                .ce_ratio = e->ce_ratio, .sp = e->sp, .spi = e->spi};
  if (e->ad) /* --adaptive-sp: the micro-batch's group (adaptive.c) */
    kc.pos0 = 0, kc.doc = e->ad->doc[micro], kc.doc_all = e->ad->doc_all[micro], kc.spg = e->ad->spg[micro];
  bool tr = rt_tracing(e);
  double t0 = e->profile || tr ? rt_trace_now() : 0;
  bool ok = rt_kernel(e->g, o, in, out, &kc);
  if (tr) rt_trace_op(e, o, micro, t0, rt_trace_now());
  profile_add(e, o->kind, t0, false);
  return ok;
}

bool rt_exec_fused(rt_exec *e, int actor, const ir_op *o, void *const *bufs, int64_t micro) {
  bool tr = rt_tracing(e);
  double t0 = e->profile || tr ? rt_trace_now() : 0;
  rt_jit_call(e->kfn[actor], e->st->act[actor].kernel, bufs, e->g);
  if (tr) rt_trace_op(e, o, micro, t0, rt_trace_now());
  profile_add(e, o->kind, t0, true);
  return true;
}

void rt_exec_profile_report(const rt_exec *e) {
  if (!e->profile) return;
  fprintf(stderr, "kernel time by op (rank %d; summed over threads; jit: calls on JIT kernels):\n", e->rank);
  for (int k = 0; k < IR_NOPKIND; k++)
    if (op_calls[k])
      fprintf(stderr, "  %-20s %6d calls %9.3f s  jit %d\n", ir_ops[k].name, op_calls[k], 1e-9 * (double)op_ns[k], op_jit[k]);
}

typedef struct {
  float *a;
  const float *x;
  double gscale;
} acc_job;

RT_VECTORIZE static void acc_range(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const acc_job *j = ctx;
  float *restrict a = j->a;
  const float *restrict x = j->x;
  const double gs = j->gscale;
  (void)chunk;
  for (int64_t i = lo; i < hi; i++) a[i] += (float)(gs * x[i]);
}

void rt_exec_accumulate(rt_exec *e, ir_ref p, const float *x, int64_t n) {
  acc_job j = {e->acc[p], x, e->gscale};
  if (j.a) rt_par_for(n, 1, acc_range, &j); /* elementwise: the same bits for any split */
}

/* the 2-D matmul y[m][n] = op(a) op(b) with y the accumulator: the program
 * reader checked the ranks and the shapes (format/program.c) */
bool rt_exec_gemm_acc(rt_exec *e, const ir_op *o, void *const *in, ir_ref p, int64_t micro) {
  if (!e->acc[p]) return false;
  bool tr = rt_tracing(e);
  double t0 = e->profile || tr ? rt_trace_now() : 0;
  bool ok = rt_matmul(e->g, o, in[0], in[1], (float)e->gscale, 1.0f, e->acc[p]);
  if (tr) rt_trace_op(e, o, micro, t0, rt_trace_now());
  profile_add(e, o->kind, t0, false);
  return ok;
}
