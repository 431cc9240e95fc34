/* exec.c — one rank's training graph: setup, the interpreter, the update.
 *
 * Setup: autodiff (ir_autodiff_map), bind B to the local micro-batch, with
 * tp > 1 lower the graph to this rank's shards (tp.c; fwd_of is carried over
 * boxing by output tensors), place every op on a pipeline stage and allocate
 * the parameters this stage holds (sharded from their logical init values).
 * Placement: a forward op inside block layer l goes to stage l*pp/L; a forward
 * op outside blocks to the latest stage among its inputs' producers (so the
 * embedding is on the first stage and the head on the last); a backward op to
 * the stage of the forward op it differentiates; adamw runs on every stage that
 * holds the parameter (a tied embedding is held by the first and last stage,
 * which apply the same update to the same values).
 *
 * The interpreter (the actor executor, executor.c, is the default for tp = 1):
 * one micro-batch is one walk over the op list, the same order on every rank.
 * An op of this stage receives the inputs produced on another stage, allocates
 * its outputs, runs its CPU kernel and frees every tensor after its last use;
 * an op of another stage makes this rank send the inputs it produced. Because
 * every rank posts its sends and receives in the one global op order, blocking
 * point-to-point cannot deadlock. The gradients adamw consumes are added into
 * per-parameter accumulators (scaled by the caller) as they are produced;
 * rt_exec_update all-reduces them over the data-parallel group, moves them to
 * the other holder stages, and runs adamw in place. */
#include "runtime/exec_priv.h"
#include "ir/autodiff.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static int64_t bytes_of(const rt_exec *e, ir_ref t) { return ir_numel(e->g, t) * 4; }

void rt_exec_count(rt_exec *e, int64_t n) {
  __atomic_add_fetch(&e->live, n, __ATOMIC_SEQ_CST);
  int64_t cur = __atomic_load_n(&e->live, __ATOMIC_SEQ_CST), pk = __atomic_load_n(&e->peak, __ATOMIC_SEQ_CST);
  while (cur > pk && !__atomic_compare_exchange_n(&e->peak, &pk, cur, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
}

/* a persistent buffer (parameter, state, accumulator, input): zeroed,
 * counted, huge pages when large */
static void *alloc_t(rt_exec *e, ir_ref t) {
  int64_t n = bytes_of(e, t) > 0 ? bytes_of(e, t) : 4;
  rt_exec_count(e, bytes_of(e, t));
  return memset(rt_huge_alloc(n), 0, (size_t)n);
}

/* an activation: from the pool, which counts what it holds */
static void *act_t(rt_exec *e, ir_ref t) { return rt_pool_get(e->pool, bytes_of(e, t)); }

static void free_t(rt_exec *e, ir_ref t) {
  if (!e->buf[t]) return;
  rt_pool_put(e->pool, e->buf[t], bytes_of(e, t));
  e->buf[t] = NULL;
}

static void count_cb(void *e, int64_t n) { rt_exec_count(e, n); }

void *rt_exec_alloc_buf(rt_exec *e, ir_ref t) { return act_t(e, t); }

void rt_exec_free_buf(rt_exec *e, ir_ref t) { free_t(e, t); }

static int rank_of(const rt_exec *e, int stage) { return (stage * e->dp + e->dpi) * e->tp + e->tpi; }

/* ---- placement ------------------------------------------------------------- */
void rt_place(const ir_graph *g, const int32_t *fwd_of, int nstages, int *op_stage, int *t_stage) {
  for (int t = 0; t < g->nt; t++) t_stage[t] = -1;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    int s = 0;
    if (o->kind == IR_OP_ADAMW) s = -1;
    else if (fwd_of && fwd_of[k] >= 0) s = op_stage[fwd_of[k]];
    else if (o->block >= 0 && o->layer >= 0 && g->blk[o->block].count > 0)
      s = (int)((int64_t)o->layer * nstages / g->blk[o->block].count);
    else
      for (int i = 0; i < o->nin; i++) s = t_stage[o->in[i]] > s ? t_stage[o->in[i]] : s;
    op_stage[k] = s;
    for (int i = 0; i < o->nout; i++) t_stage[o->out[i]] = s;
  }
}

static void place(rt_exec *e) { rt_place(e->g, e->fwd_of, e->nstages, e->op_stage, e->t_stage); }

/* which persistent tensors this stage holds: params (and their state) used here */
static void holdings(rt_exec *e) {
  ir_graph *g = e->g;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind == IR_OP_ADAMW) continue;
    for (int i = 0; i < o->nin; i++) {
      ir_ref t = o->in[i];
      if (g->t[t].kind == IR_T_PARAM) e->holders[t] |= 1ull << e->op_stage[k];
      if (g->t[t].kind == IR_T_INPUT && e->op_stage[k] == e->stage) e->hold[t] = true;
    }
  }
  for (int t = 0; t < g->nt; t++)
    if (g->t[t].kind == IR_T_PARAM) e->hold[t] = e->holders[t] >> e->stage & 1;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind != IR_OP_ADAMW) continue;
    e->final_of[o->in[1]] = o->in[0];
    if (e->hold[o->in[0]]) e->hold[o->in[2]] = e->hold[o->in[3]] = true;
  }
}

static void last_uses(rt_exec *e) {
  ir_graph *g = e->g;
  for (int t = 0; t < g->nt; t++) e->last_use[t] = -1;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind == IR_OP_ADAMW) continue;
    for (int i = 0; i < o->nout; i++)
      if (e->op_stage[k] == e->stage) e->last_use[o->out[i]] = k;
    for (int i = 0; i < o->nin; i++) {
      ir_ref t = o->in[i];
      if (e->op_stage[k] == e->stage || e->t_stage[t] == e->stage) e->last_use[t] = k;
    }
  }
}

static bool check_layout(rt_exec *e, diag *d) {
  ir_graph *g = e->g;
  if (e->nstages > 1) {
    int maxl = 0;
    for (int b = 0; b < g->nblk; b++) maxl = g->blk[b].count > maxl ? g->blk[b].count : maxl;
    if (maxl < e->nstages) {
      diag_error(d, (srcloc){0, 0}, "pipeline of %d stages needs at least %d layers, the model has %d", e->nstages,
                 e->nstages, maxl);
      return false;
    }
    if (e->nstages > 64) {
      diag_error(d, (srcloc){0, 0}, "at most 64 pipeline stages");
      return false;
    }
  }
  return true;
}

/* ZeRO: this dp rank's slice [lo, lo+cnt) of a state tensor, padded to chunk */
static int64_t zslice(const rt_exec *e, ir_ref t, int64_t *lo, int64_t *cnt) {
  int64_t n = ir_numel(e->g, t), chunk = (n + e->dp - 1) / e->dp;
  *lo = e->dpi * chunk < n ? e->dpi * chunk : n;
  *cnt = n - *lo < chunk ? n - *lo : chunk;
  return chunk > 0 ? chunk : 1;
}

static void alloc_params(rt_exec *e) {
  ir_graph *g = e->g;
  for (int t = 0; t < g->nt; t++) {
    if (!e->hold[t] || g->t[t].kind == IR_T_INPUT) continue;
    if (e->zero && g->t[t].kind == IR_T_STATE) {
      int64_t lo, cnt, chunk = zslice(e, t, &lo, &cnt);
      e->buf[t] = xcalloc((size_t)chunk, sizeof(float));
      rt_exec_count(e, chunk * 4);
      continue;
    }
    e->buf[t] = alloc_t(e, t);
    if (g->t[t].kind != IR_T_PARAM) continue;
    int64_t n = rt_tp_logical_numel(g, t, e->tp);
    float *full = e->tp > 1 ? xmalloc(sizeof(float) * (size_t)n) : e->buf[t];
    rt_init_param(g->t[t].name, g->t[t].rank, full, n, e->cfg.seed);
    if (full != e->buf[t]) rt_tp_shard(g, t, e->tp, e->tpi, rt_tp_groups(g, t), full, e->buf[t]), free(full);
  }
  for (int t = 0; t < g->nt; t++)
    if (e->final_of[t] != IR_NONE && e->t_stage[t] == e->stage) e->acc[e->final_of[t]] = alloc_t(e, t);
}

/* boxing may rebuild the op table: carry fwd_of over by the ops' first
 * output tensors, which stay the same */
static void remap_fwd_of(rt_exec *e, const ir_ref *self_out, const ir_ref *fwd_out, int nold) {
  ir_graph *g = e->g;
  int *old_of = xmalloc(sizeof(int) * (size_t)g->nt), *prod = xmalloc(sizeof(int) * (size_t)g->nt);
  for (int t = 0; t < g->nt; t++) old_of[t] = prod[t] = -1;
  for (int k = 0; k < nold; k++) old_of[self_out[k]] = k;
  for (int k = 0; k < g->nop; k++) prod[g->op[k].out[0]] = k;
  free(e->fwd_of);
  e->fwd_of = xmalloc(sizeof(int32_t) * (size_t)(g->nop + 1));
  for (int k = 0; k < g->nop; k++) {
    int old = old_of[g->op[k].out[0]];
    e->fwd_of[k] = old >= 0 && fwd_out[old] != IR_NONE ? prod[fwd_out[old]] : -1;
  }
  free(old_of);
  free(prod);
}

static bool lower_tp(rt_exec *e, diag *d) {
  if (e->tp <= 1) return true;
  ir_graph *g = e->g;
  int nold = g->nop;
  ir_ref *self_out = xmalloc(sizeof(ir_ref) * (size_t)(nold + 1)), *fwd_out = xmalloc(sizeof(ir_ref) * (size_t)(nold + 1));
  for (int k = 0; k < nold; k++) {
    self_out[k] = g->op[k].out[0];
    fwd_out[k] = e->fwd_of[k] >= 0 ? g->op[e->fwd_of[k]].out[0] : IR_NONE;
  }
  bool ok = rt_tp_lower(g, e->tp, d);
  if (ok) remap_fwd_of(e, self_out, fwd_out, nold);
  free(self_out);
  free(fwd_out);
  return ok;
}

rt_exec *rt_exec_new_ranked(ir_graph *g, const rt_config *cfg, rt_comm *comm, int stage, int dpi, int tpi, diag *d) {
  ir_adamw_cfg opt = ir_adamw_default();
  opt.lr = cfg->lr;
  opt.weight_decay = cfg->weight_decay;
  rt_exec *e = xcalloc(1, sizeof *e);
  e->g = g, e->cfg = *cfg, e->comm = comm;
  e->stage = stage, e->nstages = cfg->lay.pp > 0 ? cfg->lay.pp : 1;
  e->dp = cfg->lay.dp > 0 ? cfg->lay.dp : 1, e->dpi = dpi;
  e->tp = cfg->lay.tp > 0 ? cfg->lay.tp : 1, e->tpi = tpi;
  int64_t mb = cfg->global_batch / e->dp / (cfg->lay.micro > 0 ? cfg->lay.micro : 1);
  bool ok = ir_autodiff_map(g, &opt, d, &e->fwd_of) && check_layout(e, d);
  ir_bind(g, mb, cfg->seq);
  if (!ok || !lower_tp(e, d)) {
    rt_exec_free(e);
    return NULL;
  }
  int nt = g->nt, nop = g->nop;
  e->op_stage = xcalloc((size_t)nop, sizeof(int));
  e->t_stage = xcalloc((size_t)nt, sizeof(int));
  e->last_use = xcalloc((size_t)nt, sizeof(int));
  e->final_of = xmalloc(sizeof(ir_ref) * (size_t)nt);
  for (int t = 0; t < nt; t++) e->final_of[t] = IR_NONE;
  e->sent = xcalloc((size_t)nt, sizeof(uint64_t));
  e->hold = xcalloc((size_t)nt, sizeof(bool));
  e->holders = xcalloc((size_t)nt, sizeof(uint64_t));
  e->buf = xcalloc((size_t)nt, sizeof(void *));
  e->acc = xcalloc((size_t)nt, sizeof(float *));
  e->profile = getenv("SBPC_PROFILE") != NULL;
  e->zero = cfg->zero > 0 && e->dp > 1 && comm;
  e->zero_grads = e->zero && cfg->zero >= 2;
  e->recompute = cfg->recompute;
  e->pool = rt_pool_new(count_cb, e);
  place(e);
  holdings(e);
  last_uses(e);
  rt_recompute_plan(e);
  char why[512];
  if (cfg->kernels != RT_KERNELS_REF && !(e->jit = rt_jit_new(g, why, sizeof why))) {
    if (cfg->kernels == RT_KERNELS_JIT) {
      diag_error(d, (srcloc){0, 0}, "cannot JIT-compile the kernels: %s", why);
      rt_exec_free(e);
      return NULL;
    }
    if (rank_of(e, e->stage) == 0) fprintf(stderr, "sbpc: note: no JIT (%s); running the reference kernels\n", why);
  }
  alloc_params(e);
  return e;
}

rt_exec *rt_exec_new(ir_graph *g, const rt_config *cfg, diag *d) {
  rt_config c = *cfg;
  c.lay.dp = c.lay.pp = c.lay.tp = 1;
  return rt_exec_new_ranked(g, &c, NULL, 0, 0, 0, d);
}

void rt_exec_free(rt_exec *e) {
  if (!e) return;
  if (e->buf)
    for (int t = 0; t < e->g->nt; t++) {
      if (e->hold[t]) free(e->buf[t]);
      else free_t(e, t);
    }
  rt_pool_free(e->pool);
  if (e->acc)
    for (int t = 0; t < e->g->nt; t++) free(e->acc[t]);
  free(e->buf), free(e->acc), free(e->fwd_of), free(e->op_stage), free(e->t_stage);
  free(e->last_use), free(e->final_of), free(e->sent), free(e->hold), free(e->holders);
  free(e->drop), free(e->fwd_last);
  rt_trace_free(e);
  rt_jit_free(e->jit);
  free(e);
}

static ir_ref param_of_state(const rt_exec *e, ir_ref t) {
  for (int k = 0; k < e->g->nop; k++) {
    const ir_op *o = &e->g->op[k];
    if (o->kind == IR_OP_ADAMW && (o->in[2] == t || o->in[3] == t)) return o->in[0];
  }
  return t;
}

/* ---- one micro-batch ----------------------------------------------------- */
static void release(rt_exec *e, const ir_op *o, int k) {
  for (int i = 0; i < o->nin; i++)
    if (e->last_use[o->in[i]] == k && !e->hold[o->in[i]]) free_t(e, o->in[i]);
  for (int i = 0; i < o->nout; i++)
    if (e->last_use[o->out[i]] == k && !e->hold[o->out[i]]) free_t(e, o->out[i]);
}

static void send_inputs(rt_exec *e, const ir_op *o, int k) {
  int to = e->op_stage[k];
  for (int i = 0; i < o->nin; i++) {
    ir_ref t = o->in[i];
    if (e->t_stage[t] != e->stage || (e->sent[t] >> to & 1) || !e->buf[t]) continue;
    double t0 = rt_trace_now();
    rt_comm_send(e->comm, e->buf[t], ir_numel(e->g, t), rank_of(e, to), t % 30000);
    rt_trace_slice(e, RT_LANE_P2P, "send", "p2p", t, k, e->micro, t0, rt_trace_now());
    e->sent[t] |= 1ull << to;
  }
}

static void recv_inputs(rt_exec *e, const ir_op *o) {
  for (int i = 0; i < o->nin; i++) {
    ir_ref t = o->in[i];
    if (e->buf[t] || e->t_stage[t] < 0 || e->t_stage[t] == e->stage) continue;
    e->buf[t] = act_t(e, t);
    double t0 = rt_trace_now();
    rt_comm_recv(e->comm, e->buf[t], ir_numel(e->g, t), rank_of(e, e->t_stage[t]), t % 30000);
    rt_trace_slice(e, RT_LANE_P2P, "recv", "p2p", t, -1, e->micro, t0, rt_trace_now());
  }
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

void rt_exec_accumulate(rt_exec *e, const ir_op *o, void *const *out, double gscale) {
  for (int i = 0; i < o->nout; i++) {
    ir_ref t = o->out[i], p = e->final_of[t];
    if (p == IR_NONE) continue;
    acc_job j = {e->acc[p], out[i], gscale};
    rt_par_for(ir_numel(e->g, t), 1, acc_range, &j); /* elementwise: the same bits for any split */
  }
}

/* a reshape of an activation aliases its input's buffer (same bytes, same
 * layout; nothing writes an op's input) instead of copying it */
static bool alias_reshape(rt_exec *e, const ir_op *o) {
  ir_ref x = o->in[0], y = o->out[0];
  if (o->kind != IR_OP_RESHAPE || e->hold[x] || !e->buf[x] || e->buf[y]) return false;
  rt_pool_share(e->pool, e->buf[x]);
  e->buf[y] = e->buf[x];
  return true;
}

static bool run_op(rt_exec *e, int k, double gscale) {
  const ir_op *o = &e->g->op[k];
  void *in[IR_MAXIN], *out[IR_MAXOUT];
  recv_inputs(e, o);
  if (alias_reshape(e, o)) {
    rt_exec_accumulate(e, o, &e->buf[o->out[0]], gscale);
    return true;
  }
  for (int i = 0; i < o->nin; i++) in[i] = e->buf[o->in[i]];
  for (int i = 0; i < o->nout; i++) {
    if (!e->buf[o->out[i]]) e->buf[o->out[i]] = act_t(e, o->out[i]);
    out[i] = e->buf[o->out[i]];
  }
  if (!rt_exec_kernel(e, o, in, out, e->micro)) return false;
  rt_exec_accumulate(e, o, out, gscale);
  return true;
}

static int64_t op_ns[IR_NOPKIND];
static int op_calls[IR_NOPKIND], op_jit[IR_NOPKIND];

static double secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* SBPC_PROFILE: one more call of op kind `kind` that began at t0 */
static void profile_add(const rt_exec *e, int kind, double t0, bool jit) {
  if (!e->profile) return;
  __atomic_fetch_add(&op_calls[kind], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&op_jit[kind], jit, __ATOMIC_RELAXED);
  __atomic_fetch_add(&op_ns[kind], (int64_t)((secs() - t0) * 1e9), __ATOMIC_RELAXED);
}

bool rt_exec_kernel(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro) {
  rt_kctx kc = {e->step + 1, e->cfg.seed, micro};
  bool tr = rt_tracing(e), jit = false;
  double t0 = e->profile || tr ? secs() : 0;
  bool ok = e->tp > 1 && ir_ops[o->kind].kclass == KC_COMM ? rt_tp_comm(e->comm, e->g, o, in[0], out[0], e->tp, e->tpi)
             : (jit = rt_jit_run(e->jit, e->g, o, in, out)) || rt_kernel(e->g, o, in, out, &kc);
  if (tr) rt_trace_op(e, o, micro, t0, secs());
  profile_add(e, o->kind, t0, jit);
  return ok;
}

void rt_exec_profile_report(const rt_exec *e) {
  if (!e->profile) return;
  fprintf(stderr, "kernel time by op (rank %d; summed over threads; jit: calls on JIT kernels):\n",
          rt_exec_rank_of(e, e->stage, e->dpi) + e->tpi);
  for (int k = 0; k < IR_NOPKIND; k++)
    if (op_calls[k])
      fprintf(stderr, "  %-20s %6d calls %9.3f s  jit %d\n", ir_ops[k].name, op_calls[k], 1e-9 * (double)op_ns[k], op_jit[k]);
}

double rt_exec_fwd_bwd(rt_exec *e, const int32_t *ids, const int32_t *labels, double gscale) {
  ir_graph *g = e->g;
  const int32_t *src[2] = {ids, labels};
  int nin = 0;
  for (int t = 0; t < g->nt; t++)
    if (g->t[t].kind == IR_T_INPUT && g->t[t].dtype == IR_I32 && nin < 2) {
      if (!e->buf[t]) e->buf[t] = alloc_t(e, t);
      memcpy(e->buf[t], src[nin++], (size_t)ir_numel(g, t) * 4);
    }
  memset(e->sent, 0, sizeof *e->sent * (size_t)g->nt);
  double loss = NAN;
  for (int k = 0; k < g->nop; k++) {
    const ir_op *o = &g->op[k];
    if (o->kind == IR_OP_ADAMW) continue;
    if (e->op_stage[k] != e->stage) {
      send_inputs(e, o, k);
    } else {
      if (!rt_recompute_run(e, k, run_op, gscale)) return NAN;
      if (o->out[0] == g->loss) loss = ((float *)e->buf[g->loss])[0];
      if (o->out[0] == g->loss && e->tp > 1 && e->tpi != 0 && !rt_tp_loss_partial(g)) loss = 0; /* counted once */
    }
    release(e, o, k);
    rt_recompute_release(e, o, k);
  }
  e->micro++;
  return loss;
}

void rt_exec_zero_grads(rt_exec *e) {
  for (int t = 0; t < e->g->nt; t++)
    if (e->acc[t]) memset(e->acc[t], 0, (size_t)bytes_of(e, t));
  e->micro = 0;
}

/* the gradient of p: accumulated here, or received from its stage */
static float *grad_for(rt_exec *e, const ir_op *o, bool *owned) {
  ir_ref p = o->in[0], gt = o->in[1];
  int gs = e->t_stage[gt];
  *owned = false;
  if (gs == e->stage) {
    for (int s = 0; s < e->nstages; s++)
      if (s != e->stage && (e->holders[p] >> s & 1)) rt_comm_send(e->comm, e->acc[p], ir_numel(e->g, p), rank_of(e, s), p % 30000);
    return e->acc[p];
  }
  if (!e->hold[p]) return NULL;
  float *gbuf = xmalloc((size_t)bytes_of(e, p));
  rt_comm_recv(e->comm, gbuf, ir_numel(e->g, p), rank_of(e, gs), p % 30000);
  *owned = true;
  return gbuf;
}

/* grad_shard (ZeRO >= 2): this dp rank's chunk of p's gradient summed over
 * the dp group, by reduce-scatter on the grad's stage (and sent from there to
 * the other stages that hold p, a tied embedding), or received; NULL when p
 * is not held here. Malloc'ed, chunk floats. */
static float *grad_shard(rt_exec *e, const ir_op *o) {
  ir_ref p = o->in[0], gt = o->in[1];
  int gs = e->t_stage[gt];
  int64_t lo, cnt, chunk = zslice(e, o->in[2], &lo, &cnt), n = ir_numel(e->g, p);
  float *mine = xmalloc(sizeof(float) * (size_t)chunk);
  if (gs == e->stage) {
    float *all = xcalloc((size_t)(chunk * e->dp), sizeof(float));
    memcpy(all, e->acc[p], sizeof(float) * (size_t)n);
    double t0 = rt_trace_now();
    rt_comm_reduce_scatter_dp(e->comm, all, chunk, mine);
    rt_trace_slice(e, RT_LANE_COLL, "reduce_scatter (dp)", "collective", p, -1, -1, t0, rt_trace_now());
    free(all);
    for (int s = 0; s < e->nstages; s++)
      if (s != e->stage && (e->holders[p] >> s & 1)) rt_comm_send(e->comm, mine, chunk, rank_of(e, s), p % 30000);
    if (e->hold[p]) return mine;
  } else if (e->hold[p]) {
    rt_comm_recv(e->comm, mine, chunk, rank_of(e, gs), p % 30000);
    return mine;
  }
  free(mine);
  return NULL;
}

/* ZeRO: AdamW on this dp rank's slice of p, then the dp group all-gathers p;
 * grad is p's whole reduced gradient (ZeRO-1) or the slice's (ZeRO-2) */
static void zero_adamw(rt_exec *e, const ir_op *o, const float *grad) {
  ir_ref p = o->in[0];
  int64_t lo, cnt, chunk = zslice(e, o->in[2], &lo, &cnt), n = ir_numel(e->g, p);
  float *pp = e->buf[p], *mine = xcalloc((size_t)chunk, sizeof(float)), *all = xmalloc(sizeof(float) * (size_t)(chunk * e->dp));
  rt_adamw(&o->at, pp + lo, e->zero_grads ? grad : grad + lo, e->buf[o->in[2]], e->buf[o->in[3]], cnt, e->step);
  memcpy(mine, pp + lo, sizeof(float) * (size_t)cnt);
  rt_comm_allgather_dp(e->comm, mine, chunk, all);
  memcpy(pp, all, sizeof(float) * (size_t)n);
  free(mine);
  free(all);
}

/* the dp all-reduce of every accumulated gradient (not under ZeRO >= 2) */
static void allreduce_grads(rt_exec *e) {
  ir_graph *g = e->g;
  if (!e->comm || e->dp <= 1 || e->zero_grads) return;
  for (int t = 0; t < g->nt; t++)
    if (e->acc[t]) {
      double t0 = rt_trace_now();
      rt_comm_allreduce_dp(e->comm, e->acc[t], ir_numel(g, t));
      rt_trace_slice(e, RT_LANE_COLL, "all_reduce (dp)", "collective", t, -1, -1, t0, rt_trace_now());
    }
}

/* adamw_one: the update of one parameter (o: its adamw op, index k) */
static bool adamw_one(rt_exec *e, const ir_op *o, int k, const rt_kctx *kc) {
  bool owned = true, ok = true;
  float *grad = e->zero_grads ? grad_shard(e, o) : grad_for(e, o, &owned);
  if (!grad || !e->hold[o->in[0]]) return true;
  void *in[4] = {e->buf[o->in[0]], grad, e->buf[o->in[2]], e->buf[o->in[3]]};
  void *out[3] = {in[0], in[2], in[3]};
  double t0 = rt_trace_now(), p0 = e->profile ? secs() : 0;
  if (e->zero) zero_adamw(e, o, grad);
  else ok = rt_kernel(e->g, o, in, out, kc);
  profile_add(e, IR_OP_ADAMW, p0, false);
  rt_trace_slice(e, RT_LANE_COMPUTE, "adamw", "optimizer", o->in[0], k, -1, t0, rt_trace_now());
  if (owned) free(grad);
  return ok;
}

bool rt_exec_update(rt_exec *e) {
  ir_graph *g = e->g;
  allreduce_grads(e);
  e->step++;
  rt_kctx kc = {e->step, e->cfg.seed, 0};
  for (int k = 0; k < g->nop; k++)
    if (g->op[k].kind == IR_OP_ADAMW && !adamw_one(e, &g->op[k], k, &kc)) return false;
  return true;
}

float *rt_exec_param(rt_exec *e, ir_ref p) { return p >= 0 && p < e->g->nt && e->hold[p] ? e->buf[p] : NULL; }

float *rt_exec_grad(rt_exec *e, ir_ref p) { return p >= 0 && p < e->g->nt ? e->acc[p] : NULL; }

int64_t rt_exec_peak_bytes(const rt_exec *e) { return e->peak; }

int rt_exec_stage(const rt_exec *e) { return e->stage; }

bool rt_exec_holds(const rt_exec *e, ir_ref t) { return t >= 0 && t < e->g->nt && e->hold[t] && e->buf[t]; }

uint64_t rt_exec_holders(const rt_exec *e, ir_ref p) { return e->holders[p]; }

int64_t rt_exec_step(const rt_exec *e) { return e->step; }

void rt_exec_set_step(rt_exec *e, int64_t step) { e->step = step; }

const ir_graph *rt_exec_graph(const rt_exec *e) { return e->g; }

int rt_exec_rank_of(const rt_exec *e, int s, int i) { return (s * e->dp + i) * e->tp; }

/* the tp-local value of t: its buffer, or for a ZeRO-sharded state the dp
 * group's slices gathered (malloc'ed; *owned set) */
static float *local_value(rt_exec *e, ir_ref t, bool *owned) {
  *owned = e->zero && e->g->t[t].kind == IR_T_STATE;
  if (!*owned) return e->buf[t];
  int64_t lo, cnt, chunk = zslice(e, t, &lo, &cnt);
  float *all = xmalloc(sizeof(float) * (size_t)(chunk * e->dp));
  rt_comm_allgather_dp(e->comm, e->buf[t], chunk, all);
  return all;
}

float *rt_exec_logical(rt_exec *e, ir_ref t) {
  int64_t n = ir_numel(e->g, t), full_n = rt_tp_logical_numel(e->g, t, e->tp);
  float *full = xmalloc(sizeof(float) * (size_t)(full_n > 0 ? full_n : 1));
  bool owned;
  float *loc = local_value(e, t, &owned);
  if (e->tp <= 1 || full_n == n) {
    memcpy(full, loc, sizeof(float) * (size_t)n);
    if (owned) free(loc);
    return full;
  }
  float *all = xmalloc(sizeof(float) * (size_t)(n * e->tp));
  rt_comm_allgather_tp(e->comm, loc, n, all);
  if (owned) free(loc);
  ir_ref p = e->g->t[t].kind == IR_T_STATE ? param_of_state(e, t) : t;
  rt_tp_unshard(e->g, t, e->tp, rt_tp_groups(e->g, p), all, full);
  free(all);
  return full;
}

void rt_exec_set_logical(rt_exec *e, ir_ref t, const float *full) {
  ir_ref p = e->g->t[t].kind == IR_T_STATE ? param_of_state(e, t) : t;
  bool z = e->zero && e->g->t[t].kind == IR_T_STATE;
  float *dst = z ? xmalloc(sizeof(float) * (size_t)(ir_numel(e->g, t) + 1)) : e->buf[t];
  rt_tp_shard(e->g, t, e->tp, e->tpi, e->tp > 1 ? rt_tp_groups(e->g, p) : 1, full, dst);
  if (!z) return;
  int64_t lo, cnt;
  zslice(e, t, &lo, &cnt);
  memcpy(e->buf[t], dst + lo, sizeof(float) * (size_t)cnt);
  free(dst);
}

int rt_exec_logical_shape(const rt_exec *e, ir_ref t, int64_t *shape) {
  return rt_tp_logical_shape(e->g, t, e->tp, shape);
}
