/* search.c — the layout search: enumerate, prune, cost, keep the best K.
 *
 * For every factorisation tp x sp x pp x dp of the device count (tp, sp and
 * pp dividing it, dp dividing the global batch), the axis-mapping program
 * (axismap.c) orders the mesh axes over the node hierarchy; that fixes each
 * stage's devices, their slowest type (a TP group mixing types counts its
 * mean speed: shards are uneven by speed) and the links of each axis. Then
 * for every micro-batch size, recompute policy, ZeRO stage and virtual stage
 * count: the per-layer summaries come from the SBP programs (layer.c, cached
 * per setting), the partition program (partition.c) places layers on stages,
 * the memory model checks every stage, and the pipeline formula plus the
 * exposed data-parallel reduction gives the step time.
 *
 * Pruning, cheapest first: a memory lower bound (model states with perfect
 * sharding) and a time lower bound (all FLOPs at the best GEMM efficiency
 * plus the uniform bubble) against the K-th best so far, before any program
 * is solved; and the continuous relaxation of the partition before its
 * integer program.
 *
 * Device subsets: a small batch or few layers cannot keep every device busy
 * (dp must divide the batch, every stage needs a layer), and forcing them all
 * in buys nothing but communication. So after the whole cluster the search
 * also tries prefixes of the devices ordered fastest node type first: 1, 2,
 * 4, ... devices inside one node, 1, 2, 4, ... whole nodes, and all nodes of
 * the fastest type. A subset is searched exactly like a cluster of its own
 * (its ranks renumbered 0..n-1, the mesh index; layout.used maps them back
 * to global ranks) and is skipped when its compute bound cannot beat the
 * K-th best layout. The fastest layout wins, whatever its device count. */
#include "planner/plan_int.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  plan_dev dev;
  int devtype;
  plan_link tpl, spl, ppl, dpl;
  int rank0;
} stinfo;

typedef struct {
  plan_result *r;
  const plan_options *o;
  const ir_graph *g;
  plan_cl cl;            /* the devices in use (a view of full) */
  plan_cl full;          /* the whole cluster */
  int *fast;             /* global ranks, fastest node type first */
  const int *used;       /* mesh index -> global rank of the devices in use */
  plan_model *pm;
  int L, N;
  double params, hid;
  double peak_sum, peak_max;
  /* current factorisation */
  int tp, sp, pp, dp;
  int order[4];
  stinfo *st;
  const plan_sol *cursol, **topsol; /* stage 0's SBP solution of each top layout */
  double fwd_seq, attn_seq;          /* forward FLOPs per sequence (whole model, attention) */
  int64_t heads, kv;                 /* gcd of the attention heads and KV heads (0: no attention) */
  bool fit_seen, mem_fail;           /* this setting: a layout fitted / one failed on memory */
} search;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- mesh geometry --------------------------------------------------------- */
static int axis_size(const search *s, int a) {
  return a == 0 ? s->pp : a == 1 ? s->dp : a == 2 ? s->sp : s->tp;
}

static int axis_stride(const search *s, const int *order, int a) {
  int st = 1;
  for (int i = 3; i >= 0 && order[i] != a; i--) st *= axis_size(s, order[i]);
  return st;
}

static void minlink(plan_link *w, plan_link l) {
  if (l.bw < w->bw) w->bw = l.bw;
  if (l.lat > w->lat) w->lat = l.lat;
  w->inter |= l.inter;
}

/* one pass over the ranks: per stage the slowest TP group (mean speed inside
 * a group: shards are uneven by speed) and the worst link of each axis */
static void stage_info(search *s) {
  const ir_cluster *c = s->cl.c;
  int st[4], sz[4];
  for (int a = 0; a < 4; a++) st[a] = axis_stride(s, s->order, a), sz[a] = axis_size(s, a);
  for (int p = 0; p < s->pp; p++) {
    stinfo *si = &s->st[p];
    si->dev.flops = si->dev.bw = si->dev.mem = 1e300;
    si->devtype = 0, si->rank0 = -1;
    si->tpl = si->spl = si->dpl = si->ppl = (plan_link){1e30, 0, PLAN_INTRA};
  }
  for (int r = 0; r < s->N; r++) {
    int cd[4];
    for (int a = 0; a < 4; a++) cd[a] = (r / st[a]) % sz[a];
    stinfo *si = &s->st[cd[0]];
    if (si->rank0 < 0) si->rank0 = r;
    if (cd[3] == 0) {
      double fl = 0, bw = 0, mem = 1e300, minfl = 1e300;
      int slow = 0;
      for (int i = 0; i < s->tp; i++) {
        int t = c->node[s->cl.node_type[s->cl.rank_node[r + i * st[3]]]].devtype;
        plan_dev d = plan_dev_of(c, t, s->o->precision);
        fl += d.flops / s->tp, bw += d.bw / s->tp;
        if (d.mem < mem) mem = d.mem;
        if (d.flops < minfl) minfl = d.flops, slow = t;
      }
      if (fl < si->dev.flops) si->dev.flops = fl, si->dev.bw = bw, si->devtype = slow;
      if (mem < si->dev.mem) si->dev.mem = mem;
      if (s->tp > 1) minlink(&si->tpl, plan_group_link(&s->cl, r, st[3], s->tp));
    }
    if (cd[2] == 0 && s->sp > 1) minlink(&si->spl, plan_group_link(&s->cl, r, st[2], s->sp));
    if (cd[1] == 0 && s->dp > 1) minlink(&si->dpl, plan_group_link(&s->cl, r, st[1], s->dp));
    if (cd[0] + 1 < s->pp) minlink(&si->ppl, plan_group_link(&s->cl, r, st[0], 2));
  }
}

/* axis costs for the mapping program: bytes per step each axis moves */
static void axis_order(search *s) {
  plan_axis_prob ap = {4, {{0}}};
  double tok = (double)s->o->global_batch / s->dp * s->o->seq / s->sp;
  double act = tok * s->hid * 2;
  double vol[4] = {2 * act,                                      /* pp: send/recv */
                   2 * 2 * s->params / (s->tp * s->pp),          /* dp: gradients */
                   4 * act * s->L / s->pp,                        /* sp: all-to-all */
                   8 * act * s->L / s->pp};                       /* tp: 4 all-reduces x fwd/bwd */
  int kind[4] = {IR_OP_SEND_RECV, IR_OP_ALL_REDUCE, IR_OP_ALL_TO_ALL, IR_OP_ALL_REDUCE};
  for (int a = 0; a < 4; a++)
    for (int m = 0; m < 16; m++) {
      if (m & (1 << a)) continue;
      int st = 1;
      for (int b = 0; b < 4; b++) if (m & (1 << b)) st *= axis_size(s, b);
      int n = axis_size(s, a);
      if (n <= 1) continue;
      plan_link l = plan_group_link(&s->cl, 0, st, a == 0 ? 2 : n);
      plan_link l2 = plan_group_link(&s->cl, s->N - 1 - st * ((a == 0 ? 2 : n) - 1), st, a == 0 ? 2 : n);
      if (l2.bw < l.bw) l = l2;
      ap.cost[a][m] = plan_coll_time(&s->o->calib, kind[a], vol[a], a == 0 ? 2 : n, l);
    }
  for (int a = 0; a < 4; a++) /* ties (size-1 axes) go the canonical way: pp, dp, sp, tp */
    for (int m = 0; m < 16; m++)
      for (int b = 0; b < a; b++)
        if (m & (1 << b)) ap.cost[a][m] += 1e-12;
  if (!plan_axis_solve(&ap, s->order, s->o->ilp_time_limit_s)) {
    s->r->fallback = true;
    s->r->note = "the axis-mapping program failed; used pp, dp, sp, tp";
  }
  s->r->ilp_solves++;
}

/* ---- one candidate ----------------------------------------------------------- */
typedef struct {
  int mbs, m, rc, zero, vpp;
} knobs;

/* the per-layer summary averaged over blocks (weighted by layer count) */
static plan_lsum layer_avg(const search *s, const plan_sol *sol) {
  plan_lsum a = {0};
  int nb = plan_model_nblocks(s->pm);
  for (int b = 0; b < nb; b++) {
    double w = (double)s->g->blk[b].count / (s->L > 0 ? s->L : 1);
    const plan_lsum *l = &sol->blk[b];
    a.fwd_s += w * l->fwd_s, a.bwd_s += w * l->bwd_s;
    a.comm_fwd_s += w * l->comm_fwd_s, a.comm_bwd_s += w * l->comm_bwd_s;
    a.tp_sum_bytes += w * l->tp_sum_bytes, a.act_bytes += w * l->act_bytes;
    a.max_tp_sum_bytes = fmax(a.max_tp_sum_bytes, l->max_tp_sum_bytes);
    a.act_full_bytes += w * l->act_full_bytes, a.params_local += w * l->params_local;
    a.params += w * l->params, a.boundary_bytes += w * l->boundary_bytes, a.nparam += w * l->nparam;
    a.flops += w * l->flops, a.attn_flops += w * l->attn_flops, a.attn_io_bytes += w * l->attn_io_bytes;
    if (l->max_tensor_bytes > a.max_tensor_bytes) a.max_tensor_bytes = l->max_tensor_bytes;
    if (l->max_param_local > a.max_param_local) a.max_param_local = l->max_param_local;
  }
  return a;
}

typedef struct {
  double wb, gb, ob;   /* bytes per parameter on a device after ZeRO sharding */
} pbytes;

static pbytes param_bytes(const search *s, int zero) {
  bool f32 = ir_dtype_size(s->o->precision) == 4;
  double zd = (double)s->dp * s->sp;
  pbytes p = {f32 ? 4 : 2, f32 ? 4 : 2, f32 ? 8 : 12};
  if (zero >= 3) p.wb /= zd;
  if (zero >= 2) p.gb /= zd;
  if (zero >= 1) p.ob /= zd;
  return p;
}

static double lsum_time(const plan_lsum *l) { return l->fwd_s + l->bwd_s + l->comm_fwd_s + l->comm_bwd_s; }

typedef struct {
  plan_part_prob pp;
  plan_lsum *lay;
  double *params_s, *act_s, *work_s;   /* per stage fixed parts */
  double *nparam_s;                    /* per stage: parameter tensors outside the layers */
  double *maxp_s;                      /* per stage: its largest parameter tensor, elements */
  double *tpsum_s, *tpmax_s;           /* per stage outside the layers: tp partial-sum gradient
                                          bytes, and the largest (plan_lsum.tp_sum_bytes) */
  double *inflight;
  double *send_s, *sp_s;               /* per stage and micro-batch: pipeline sends, sp all-to-alls */
  double *tied_s;                      /* per stage and step: tied-embedding gradient all-reduce */
  double tgrad;                        /* one gradient of the tied parameters, per device (0: untied) */
  double head_peak;                    /* what the head's gradient adds beyond the loss's saved
                                          activations: tgrad less the logits freed before it */
} stage_model;

/* The receive buffer of the gradient reduction beside the arena (runtime
 * profile recv_copies: sbpc's CPU executor, runtime/executor.c), bytes: the
 * other zd - 1 members' copies of this rank's 1/zd slice of a bucket under
 * ZeRO 0/1 (the all-reduce's first half), zd - 2 under ZeRO 2/3 (the first
 * copy lands in the gradient register). Buckets are cut at
 * IR_GRAD_BUCKET_BYTES of whole parameters (lower/params.c), one parameter
 * at least, so the largest is the larger of the cap (at the stage's local
 * share of a parameter) and the largest parameter, at most the stage's
 * gradient; one bucket's buffer at a time (GPT-2 small, dp=2: measured +73.6
 * MiB at the peak, half the tied embedding's bucket). The tp reduce of the
 * partial-sum buckets holds tp - 1 copies of its 1/tp slice of one the same
 * way (of the shards under ZeRO-2/3), beside it. An estimate: the planner
 * sees no buckets; the compiled program counts it from its own
 * (lower/arena.c recv_bytes). */
/* stage p's gradient bytes that are partial sums over tp (x layers and its
 * pre/post parts), and the largest of them */
static double tp_sum_total(const stage_model *sm, int p, int x, double *largest) {
  if (largest) *largest = fmax(sm->lay[p].max_tp_sum_bytes, sm->tpmax_s[p]);
  return x * sm->lay[p].tp_sum_bytes + sm->tpsum_s[p];
}

static double recv_buffer(const search *s, const stage_model *sm, int p, double par, int x, knobs k) {
  const plan_calib *c = &s->o->calib;
  int zd = s->dp * s->sp, copies = k.zero <= 1 ? zd - 1 : zd - 2;
  const plan_lsum *l = &sm->lay[p];
  if (!c->rt.recv_copies) return 0;
  double share = l->params > 0 ? l->params_local / l->params : 1, gb = c->rt.grad_reduce_bytes, r = 0;
  if (copies > 0) r = fmin(par * gb, fmax(IR_GRAD_BUCKET_BYTES * share, sm->maxp_s[p] * gb)) * copies / zd;
  double tmax, tsum = tp_sum_total(sm, p, x, &tmax);
  if (s->tp > 1 && tsum > 0)
    r += fmin(tsum, fmax(IR_GRAD_BUCKET_BYTES, tmax)) / (k.zero >= 2 ? zd : 1) * (s->tp - 1) / s->tp;
  return r;
}

/* the tp reduce of stage p's partial-sum gradients (x layers), seconds per
 * step: one all-reduce per bucket of IR_GRAD_BUCKET_BYTES (lower/params.c),
 * of the dp shards under ZeRO-2/3; after the dp reduce, not hidden */
static double tp_sum_time(const search *s, const stage_model *sm, int p, int x, knobs k) {
  double bytes = tp_sum_total(sm, p, x, NULL);
  if (s->tp <= 1 || bytes <= 0) return 0;
  if (k.zero >= 2) bytes /= s->dp * s->sp;
  double nb = fmax(1, ceil(bytes / IR_GRAD_BUCKET_BYTES));
  return nb * plan_coll_time(&s->o->calib, IR_OP_ALL_REDUCE, bytes / nb, s->tp, s->st[p].tpl);
}

static void build_stages(search *s, const plan_sol **sol, knobs k, stage_model *sm) {
  const plan_calib *c = &s->o->calib;
  pbytes pb = param_bytes(s, k.zero);
  double pbt = pb.wb + pb.gb + pb.ob;
  int P = s->pp;
  sm->tgrad = sol[P - 1]->post.tied_local > 0 ? sol[P - 1]->post.tied_grad_bytes : 0;
  sm->head_peak = sm->tgrad > sol[P - 1]->post.loss_in_bytes ? sm->tgrad - sol[P - 1]->post.loss_in_bytes : 0;
  for (int p = 0; p < P; p++) {
    plan_lsum l = layer_avg(s, sol[p]);
    sm->lay[p] = l;
    double spc = 0;
    if (s->sp > 1)
      spc = (2 + (k.rc == PLAN_RC_FULL)) *
            plan_coll_time(c, IR_OP_ALL_TO_ALL, l.attn_io_bytes * s->sp, s->sp, s->st[p].spl);
    sm->pp.t[p] = lsum_time(&l) + spc;
    sm->sp_s[p] = spc;
    double inf = k.m < P - p ? k.m : P - p;
    if (k.vpp > 1) inf *= 1 + (double)(P - 1) / ((double)P * k.vpp);
    if (inf > k.m) inf = k.m; /* no more in flight than the step has */
    sm->inflight[p] = inf;
    double e = 0, par = 0, act = 0, maxt = l.max_tensor_bytes, npar = 0, maxp = l.max_param_local, tps = 0, tpm = 0;
    for (int part = 0; part < 2; part++) { /* the first stage's pre part, the last's post */
      if (part == 0 ? p != 0 : p != P - 1) continue;
      const plan_lsum *x = part == 0 ? &sol[p]->pre : &sol[p]->post;
      e += lsum_time(x), par += x->params_local + (part == 1 && P > 1 ? x->tied_local : 0), act += x->act_bytes * inf;
      npar += x->nparam, tps += x->tp_sum_bytes, tpm = fmax(tpm, x->max_tp_sum_bytes);
      maxt = fmax(maxt, x->max_tensor_bytes), maxp = fmax(maxp, x->max_param_local);
    }
    /* boundaries of the stage's virtual stages q = j * P + p (j < vpp): one
     * in for q > 0, one out for q < vpp * P - 1 (interleaved chunks also
     * cross from the last stage back to the first) */
    int nb = 2 * k.vpp - (p == 0) - (p == P - 1);
    if (nb && P > 1) {
      plan_link pl = s->st[p].ppl.bw < 1e29 ? s->st[p].ppl : s->st[p > 0 ? p - 1 : p].ppl;
      sm->send_s[p] = nb * plan_coll_time(c, IR_OP_SEND_RECV, l.boundary_bytes, 2, pl);
      e += sm->send_s[p];
    } else {
      sm->send_s[p] = 0;
    }
    /* tied embeddings (first and last stage): their gradients are summed
     * between the two stages once per step, after the backward (Megatron's
     * embedding all-reduce) */
    sm->tied_s[p] = 0;
    if (P > 1 && (p == 0 || p == P - 1))
      sm->tied_s[p] = plan_coll_time(c, IR_OP_ALL_REDUCE, sol[P - 1]->post.tied_local * c->rt.grad_reduce_bytes, 2,
                                     s->st[0].ppl);
    sm->pp.e[p] = e;
    /* ZeRO-3's gathered parameters: two layers' worth, but sbpc's measured
     * executor gathers each into an arena register, placed among the
     * activations (planned with them 1445.2 MiB for GPT-2 small dp=2 and 3.0
     * for tiny GPT-2, measured 1391.1 and 2.5-2.6) */
    double gathered = k.zero >= 3 && !c->exec_per_param ? 2 * l.params * (pb.wb * s->dp * s->sp) / s->tp : 0;
    double work = plan_workspace(c, s->st[p].dev.mem) + c->rt.transients * maxt +
                  (k.rc == PLAN_RC_FULL ? l.act_full_bytes : 0) + gathered;
    sm->params_s[p] = par, sm->act_s[p] = act, sm->work_s[p] = work, sm->nparam_s[p] = npar;
    sm->maxp_s[p] = maxp, sm->tpsum_s[p] = tps, sm->tpmax_s[p] = tpm;
    sm->pp.mem_l[p] = l.params_local * pbt + l.act_bytes * inf;
    sm->pp.mem_f[p] = par * pbt + act + work + (p == P - 1 ? sm->head_peak : 0) /* grad_peak's phase 1 */
                      + recv_buffer(s, sm, p, s->L * l.params_local + par, s->L, k); /* at most */
    sm->pp.cap[p] = s->st[p].dev.mem * c->mem_usable;
  }
}

/* the continuous relaxation of the partition: a lower bound on its optimum */
static double part_lb(const plan_part_prob *p) {
  double inv = 0, num = p->L, tmin = 1e300, esum = 0;
  for (int s = 0; s < p->p; s++) {
    double t = p->t[s] > 1e-15 ? p->t[s] : 1e-15;
    inv += 1 / t, num += p->e[s] / t, esum += p->e[s];
    if (t < tmin) tmin = t;
  }
  double T = num / inv;
  return (p->m - 1.0 / p->v) * T + (p->L * tmin + esum) / p->v;
}

static double kth_best(const search *s) {
  plan_result *r = s->r;
  return r->ntop < s->o->top_k ? 1e300 : r->top[r->ntop - 1].step_s;
}

static const char *dominant5(double pa, double gr, double op, double ac, double wo) {
  const char *n[5] = {"parameters", "gradients", "optimizer state", "activations", "workspace"};
  double v[5] = {pa, gr, op, ac, wo};
  int b = 0;
  for (int i = 1; i < 5; i++) if (v[i] > v[b]) b = i;
  return n[b];
}

const char *plan_dominant(const plan_layout *l) {
  return dominant5(l->mem_params, l->mem_grads, l->mem_opt, l->mem_act, l->mem_work);
}

/* The tied parameters' gradients in the activation arena (lower/arena.c),
 * beyond the saved activations act of the stage (inflight micro-batches):
 * the head's backward (last stage) produces one gradient G of the tied
 * weight, held until the embedding's backward (first stage, where the
 * pipeline sends it) produces the second and their sum. The loss's
 * backward has freed the logits by then (its saved input, counted in act),
 * so the last stage peaks at act + max(0, G - logits) as its backward
 * starts (head_peak), and the first stage at 3 G plus
 * the other in-flight micro-batches' activations as its backward ends (the
 * micro-batch's own are freed by then). Returns what the larger phase adds
 * to act. Both phases are what the lowering's schedule holds; the arena's
 * fragmentation is not modelled. */
static double grad_peak(const stage_model *sm, int p, int P, double act) {
  double G = sm->tgrad, inf = sm->inflight[p], peak = act;
  if (G <= 0) return 0;
  if (p == P - 1) peak = act + sm->head_peak;
  if (p == 0 && act * (inf - 1) / inf + 3 * G > peak) peak = act * (inf - 1) / inf + 3 * G;
  return peak - act;
}

/* memory of stage p under partition x; fills the breakdown into l */
static double stage_mem(const search *s, const stage_model *sm, int p, int x, knobs k, plan_layout *l) {
  pbytes pb = param_bytes(s, k.zero);
  double par = x * sm->lay[p].params_local + sm->params_s[p];
  double act = x * sm->lay[p].act_bytes * sm->inflight[p] + sm->act_s[p];
  double work = sm->work_s[p] + grad_peak(sm, p, s->pp, act) + recv_buffer(s, sm, p, par, x, k);
  if (l) {
    l->mem_params = par * pb.wb, l->mem_grads = par * pb.gb, l->mem_opt = par * pb.ob;
    l->mem_act = act, l->mem_work = work;
  }
  return par * (pb.wb + pb.gb + pb.ob) + act + work;
}

/* step-end costs of stage p, exposed: the data-parallel gradient reduction
 * and ZeRO gathers (*dp), the tied-embedding gradient all-reduce between the
 * first and the last stage (*pp), the optimizer step (*opt); returns the
 * communication (dp + pp + the per-step tp gradient sync).
 *
 * The gradient reduction (all-reduce; reduce-scatter from ZeRO 1; on sbpc's
 * measured executor what it runs, docs/runtime.md: one all-reduce per step
 * for ZeRO 0 and 1, one reduce-scatter per micro-batch from ZeRO 2) can start
 * as layers finish the last micro-batch's backward, so it hides behind that
 * backward up to `overlap`. From ZeRO 1 the updated parameters are
 * all-gathered after the optimizer step: that half cannot hide in the
 * backward, only in the next step's first forward on the stage. ZeRO 3
 * instead gathers every layer's parameters for each micro-batch, forward
 * (exposed) and backward (hidden like the reduction). */
static double stage_tail(const search *s, const stage_model *sm, int p, int x, knobs k, double *opt, double *dp,
                         double *pp) {
  const plan_calib *c = &s->o->calib;
  const plan_lsum *l = &sm->lay[p];
  pbytes pb = param_bytes(s, 0);
  double par = x * l->params_local + sm->params_s[p];
  int zd = s->dp * s->sp;
  plan_link dl = s->st[p].dpl;
  double g = par * c->rt.grad_reduce_bytes, bwin = x * (l->bwd_s + l->comm_bwd_s), fwin = x * (l->fwd_s + l->comm_fwd_s);
  double red, after = 0, gather = 0;
  if (k.zero == 0) red = plan_coll_time(c, IR_OP_ALL_REDUCE, g, zd, dl);
  else if (c->exec_per_param && k.zero == 1) /* sbpc's executor all-reduces, the update keeps its slice */
    red = plan_coll_time(c, IR_OP_ALL_REDUCE, g, zd, dl);
  else if (c->exec_per_param) /* ZeRO-2/3: each micro-batch's gradient reduce-scattered into the shard */
    red = k.m * plan_zero_coll_time(c, IR_OP_REDUCE_SCATTER, g, zd, dl, PLAN_ZERO_STEP | (k.zero < 3 ? PLAN_ZERO_12 : 0));
  else red = plan_coll_time(c, IR_OP_REDUCE_SCATTER, g, zd, dl);
  if (k.zero == 1 || k.zero == 2) /* after the optimizer step: the ranks arrive together */
    after = plan_zero_coll_time(c, IR_OP_ALL_GATHER, par * pb.wb, zd, dl, PLAN_ZERO_END | PLAN_ZERO_12);
  if (k.zero >= 3) { /* with a measured executor: one gather per parameter, each waited for by its pass */
    double n = c->exec_per_param ? fmax(1, x * l->nparam + sm->nparam_s[p]) : 1;
    gather = k.m * n * plan_zero_coll_time(c, IR_OP_ALL_GATHER, par * pb.wb / n, zd, dl, PLAN_ZERO_STEP);
  }
  double exposed = red + gather - c->rt.grad_overlap * bwin; /* ZeRO-3's backward re-gathers hide likewise */
  if (exposed < 0) exposed = 0;
  /* sbpc's executor (measured: exec_per_param) gathers the updated
   * parameters before the step ends: nothing of the next forward hides it */
  double ag = after - (c->exec_per_param ? 0 : c->rt.grad_overlap * fwin);
  exposed += gather + (ag > 0 ? ag : 0);
  *opt = plan_mem_time(c, &s->st[p].dev, par / (k.zero >= 1 ? zd : 1) * 32) * c->exec_scale[PLAN_OPT] +
         fmax(0, c->exec_kernel_s[PLAN_OPT]) * (x * l->nparam + sm->nparam_s[p]); /* per parameter tensor */
  *dp = zd > 1 ? exposed : 0;
  *pp = sm->tied_s[p];
  return *dp + *pp + tp_sum_time(s, sm, p, x, k);
}

/* better: faster, or as fast (within 1e-9 s) with less memory */
static bool better(const plan_layout *a, const plan_layout *b) {
  if (a->step_s < b->step_s - 1e-9) return true;
  return a->step_s <= b->step_s + 1e-9 && a->mem_bytes < b->mem_bytes;
}

static void insert_top(search *s, const plan_layout *l) {
  plan_result *r = s->r;
  int K = s->o->top_k, i = r->ntop < K ? r->ntop : K - 1;
  if (r->ntop == K && !better(l, &r->top[K - 1])) return;
  while (i > 0 && better(l, &r->top[i - 1])) {
    r->top[i] = r->top[i - 1];
    s->topsol[i] = s->topsol[i - 1];
    i--;
  }
  r->top[i] = *l;
  s->topsol[i] = s->cursol;
  r->top[i].stage = ARENA_ARRAY(r->a, plan_stage, s->pp);
  memcpy(r->top[i].stage, l->stage, sizeof(plan_stage) * (size_t)s->pp);
  if (r->ntop < K) r->ntop++;
}

static void note_mem(search *s, const plan_layout *l) {
  plan_result *r = s->r;
  if (l->mem_bytes < r->min_mem_bytes) {
    r->min_mem_bytes = l->mem_bytes;
    r->min_mem_dominant = plan_dominant(l);
    r->min_mem_layout = *l;
    r->min_mem_layout.stage = NULL;
  }
}

static void fill_layout(const search *s, knobs k, plan_layout *l) {
  memset(l, 0, sizeof *l);
  l->dp = s->dp, l->tp = s->tp, l->pp = s->pp, l->sp = s->sp;
  l->vpp = k.vpp, l->mbs = k.mbs, l->m = k.m, l->recompute = k.rc, l->zero = k.zero;
  l->nused = s->N, l->used = s->used;
  memcpy(l->axis_order, s->order, sizeof l->axis_order);
}

static int partition(search *s, stage_model *sm, int *x) {
  plan_part_prob *pp = &sm->pp;
  if (s->pp == 1) return x[0] = s->L, 1;
  if (s->o->even_partition) return plan_part_even(pp, x), 1;
  if (part_lb(pp) >= kth_best(s)) return 2; /* pruned */
  s->r->ilp_solves++;
  int rc = plan_part_solve(pp, x, s->o->ilp_time_limit_s);
  if (rc < 0) {
    s->r->fallback = true;
    s->r->note = "the partition program failed or timed out; kept its best (or an even) partition";
  }
  return rc < 0 ? 1 : rc;
}

/* stage_compute: stage p's forward and backward compute per micro-batch (x layers) */
static void stage_compute(const plan_sol **sol, const stage_model *sm, int p, int P, int x, plan_stage *st) {
  st->fwd_s = x * sm->lay[p].fwd_s, st->bwd_s = x * sm->lay[p].bwd_s;
  if (p == 0) st->fwd_s += sol[0]->pre.fwd_s, st->bwd_s += sol[0]->pre.bwd_s;
  if (p == P - 1) st->fwd_s += sol[p]->post.fwd_s, st->bwd_s += sol[p]->post.bwd_s;
}

static void evaluate(search *s, const plan_sol **sol, knobs k, stage_model *sm, int *x,
                     plan_stage *stg) {
  sm->pp.p = s->pp, sm->pp.L = s->L, sm->pp.v = k.vpp, sm->pp.m = k.m;
  build_stages(s, sol, k, sm);
  plan_layout l;
  fill_layout(s, k, &l);
  l.stage = stg;
  int pr = partition(s, sm, x);
  if (pr == 2) return;
  if (pr == 0) plan_part_even(&sm->pp, x);
  s->r->evaluated++;
  double mx = 0, T = 0, tail = 0, opt = 0, tdp = 0, tpp = 0, pe;
  int first = 0, pmax = 0, pslow = 0;
  for (int p = 0; p < s->pp; p++) {
    double m = stage_mem(s, sm, p, x[p], k, NULL), o, d, ts = x[p] * sm->pp.t[p] + sm->pp.e[p];
    double tl = stage_tail(s, sm, p, x[p], k, &o, &d, &pe);
    if (tl + o > tail + opt) tail = tl, opt = o, tdp = d, tpp = pe;
    if (m > mx) mx = m, pmax = p;
    if (ts > T) T = ts, pslow = p;
    stg[p] = (plan_stage){.first = first, .last = first + x[p] - 1, .devtype = s->st[p].devtype,
                          .rank0 = s->st[p].rank0, .time_s = ts, .mem_bytes = m};
    stage_compute(sol, sm, p, s->pp, x[p], &stg[p]);
    first += x[p];
    l.fits = true;
  }
  stage_mem(s, sm, pmax, x[pmax], k, &l);
  l.mem_bytes = mx;
  for (int p = 0; p < s->pp; p++) l.fits &= stg[p].mem_bytes <= sm->pp.cap[p];
  note_mem(s, &l);
  s->fit_seen |= l.fits, s->mem_fail |= !l.fits;
  if (!l.fits) return;
  const plan_calib *c = &s->o->calib; /* the executor's idle time per micro-batch and step: in bubble_s */
  l.step_s = plan_part_objective(&sm->pp, x) + tail + opt + k.m * c->micro_overhead_s + c->step_overhead_s;
  const plan_lsum *ls = &sm->lay[pslow];
  double comp = x[pslow] * (ls->fwd_s + ls->bwd_s);
  if (pslow == 0) comp += sol[0]->pre.fwd_s + sol[0]->pre.bwd_s;
  if (pslow == s->pp - 1) comp += sol[pslow]->post.fwd_s + sol[pslow]->post.bwd_s;
  l.compute_s = k.m * comp + opt;
  l.comm_s = k.m * (T - comp) + tail;
  l.opt_s = opt, l.dp_comm_s = tdp;
  l.pp_comm_s = k.m * sm->send_s[pslow] + tpp;
  l.sp_comm_s = k.m * x[pslow] * sm->sp_s[pslow];
  l.tp_comm_s = l.comm_s - l.dp_comm_s - l.pp_comm_s - l.sp_comm_s;
  if (l.tp_comm_s < 0) l.tp_comm_s = 0;
  l.bubble_s = l.step_s - l.compute_s - l.comm_s;
  if (l.bubble_s < 0) l.bubble_s = 0;
  double fwd = 0;
  const plan_sol *s0 = sol[0];
  for (int b = 0; b < plan_model_nblocks(s->pm); b++) fwd += s->g->blk[b].count * s0->blk[b].flops;
  double extra = k.rc == PLAN_RC_FULL ? fwd : 0;
  if (k.rc == PLAN_RC_SELECTIVE)
    for (int b = 0; b < plan_model_nblocks(s->pm); b++) extra += s->g->blk[b].count * s0->blk[b].attn_flops;
  fwd += s0->pre.flops + s0->post.flops;
  double reps = (double)k.m * s->dp * s->sp;
  l.model_flops = 3 * fwd * reps, l.hw_flops = (3 * fwd + extra) * reps;
  l.peak_flops = s->peak_sum / s->N;
  insert_top(s, &l);
}

/* ---- enumeration ----------------------------------------------------------------- */
static plan_key stage_key(const search *s, int p, knobs k, double memw) {
  plan_key key;
  memset(&key, 0, sizeof key);
  key.devtype = s->st[p].devtype, key.dev = s->st[p].dev, key.prec = s->o->precision;
  key.seq = s->o->seq, key.tp = s->tp, key.sp = s->sp, key.mbs = k.mbs, key.rc = k.rc;
  key.tpl = s->tp > 1 ? s->st[p].tpl : (plan_link){0, 0, PLAN_INTRA};
  key.spl = s->st[p].spl;
  key.m = 8; /* per-step costs weigh 1/8 inside the SBP program (docs/planner.md) */
  key.memw = memw;
  return key;
}

static bool fixed_ok(int fix, int v) { return fix <= 0 || fix == v; }

/* vpp_ok: v virtual stages per device: v chunks of equal size on every
 * stage (so v divides every stage's layer count: L % v == 0 and a chunk per
 * stage at least), and Megatron's interleaved schedule needs m % pp == 0 */
static bool vpp_ok(const search *s, int v, int m) {
  if (v == 1) return true;
  return s->pp > 1 && m % s->pp == 0 && s->L % v == 0 && s->L / v >= s->pp;
}

/* vpp_max: the largest vpp searched, 8 (any with --fix vpp=) */
static int vpp_max(const search *s) {
  int f = s->o->fix.vpp;
  if (f > 0) return f;
  int v = s->L / (s->pp > 0 ? s->pp : 1);
  return v < 8 ? v : 8;
}

static void knob_loop(search *s, knobs k, const plan_sol **sol, stage_model *sm, int *x, plan_stage *stg) {
  const plan_fix *f = &s->o->fix;
  const plan_calib *c = &s->o->calib;
  for (int z = 0; z <= 3; z++) {
    if (!fixed_ok(f->zero < 0 ? 0 : f->zero + 1, z + 1) || (z == 3 && s->pp > 1)) continue;
    if (z > 0 && (s->dp * s->sp == 1 || !c->rt.dist_optimizer)) continue;
    k.zero = z;
    pbytes pb = param_bytes(s, z);
    double maxmem = 0;
    for (int p = 0; p < s->pp; p++) if (s->st[p].dev.mem > maxmem) maxmem = s->st[p].dev.mem;
    /* the same workspace the memory model charges (issue 13 item 8: a full
     * 2 GiB here pruned every layout on small devices) */
    double lb = s->params / ((double)s->tp * s->pp) * (pb.wb + pb.gb + pb.ob) + plan_workspace(c, maxmem);
    for (int v = 1; v <= vpp_max(s); v++) {
      if (!fixed_ok(f->vpp, v) || !vpp_ok(s, v, k.m)) continue;
      k.vpp = v;
      s->r->candidates++;
      if (lb > maxmem * c->mem_usable) {
        plan_layout l;
        fill_layout(s, k, &l);
        l.mem_bytes = lb, l.mem_params = lb; /* states dominate a bound made of states */
        note_mem(s, &l);
        continue;
      }
      evaluate(s, sol, k, sm, x, stg);
    }
  }
}

/* Memory inside the per-block SBP program: when no layout of a setting fits
 * with the time-only program, it is solved again charging memw seconds per
 * byte a choice keeps (parameters' model states, saved activations): first
 * at a weight where memory dominates time (if even that layout does not
 * fit, none does: stop), then at smaller weights that trade less time for
 * memory; the fastest layout that fits wins. So a layout that fits is found
 * when one exists (a 22B model at mbs=4 no longer replicates every weight),
 * at one extra solve for settings that cannot fit at all. */
static const double memw_levels[] = {0, 1e-6, 1e-13, 1e-11, 1e-9};
#define NMEMW (int)(sizeof memw_levels / sizeof memw_levels[0])

static void factorisation(search *s) {
  const plan_fix *f = &s->o->fix;
  const plan_calib *c = &s->o->calib;
  axis_order(s);
  s->st = xcalloc((size_t)s->pp, sizeof(stinfo));
  stage_info(s);
  const plan_sol **sol = xcalloc((size_t)s->pp, sizeof *sol);
  stage_model sm;
  int P = s->pp;
  double *buf = xcalloc((size_t)P * 16, sizeof(double));
  sm.pp.t = buf, sm.pp.e = buf + P, sm.pp.mem_l = buf + 2 * P, sm.pp.mem_f = buf + 3 * P;
  sm.pp.cap = buf + 4 * P, sm.params_s = buf + 5 * P, sm.act_s = buf + 6 * P, sm.work_s = buf + 7 * P;
  sm.inflight = buf + 8 * P, sm.send_s = buf + 9 * P, sm.sp_s = buf + 10 * P, sm.tied_s = buf + 11 * P;
  sm.nparam_s = buf + 12 * P, sm.maxp_s = buf + 13 * P, sm.tpsum_s = buf + 14 * P, sm.tpmax_s = buf + 15 * P;
  sm.lay = xcalloc((size_t)P, sizeof(plan_lsum));
  int *x = xcalloc((size_t)P, sizeof(int));
  plan_stage *stg = xcalloc((size_t)P, sizeof(plan_stage));
  int64_t per = s->o->global_batch / s->dp;
  for (int mbs = 1; mbs <= per && mbs <= 64; mbs *= 2) {
    if (per % mbs || !fixed_ok(f->mbs, mbs) || per / mbs > (1 << 30)) continue;
    knobs k = {mbs, (int)(per / mbs), 0, 0, 1};
    for (int rc = 0; rc < PLAN_NRC; rc++) {
      if (f->recompute >= 0 && f->recompute != rc) continue;
      k.rc = rc;
      double hw = (3 * s->fwd_seq + (rc == PLAN_RC_FULL ? s->fwd_seq : rc ? s->attn_seq : 0)) * s->o->global_batch;
      if (hw / (s->peak_sum * c->gemm_eff_max) >= kth_best(s)) continue;
      for (int w = 0; w < NMEMW; w++) { /* time only; then ever more weight on memory until one fits */
        s->fit_seen = s->mem_fail = false;
        for (int p = 0; p < P; p++) {
          plan_key key = stage_key(s, p, k, memw_levels[w]);
          sol[p] = plan_model_solve(s->pm, &key, c, s->o->ilp_time_limit_s);
          if (!sol[p]->optimal && !s->r->fallback) {
            s->r->fallback = true;
            s->r->note = "an SBP program did not prove optimality in its time limit; kept its best solution";
          }
        }
        s->cursol = sol[0];
        knob_loop(s, k, sol, &sm, x, stg);
        if (w == 0 ? s->fit_seen || !s->mem_fail : w == 1 && !s->fit_seen) break;
      }
    }
  }
  free(sol), free(buf), free(sm.lay), free(x), free(stg), free(s->st);
  s->st = NULL;
}

/* heads_ok: what every runtime asks of tp and sp (Megatron-LM's
 * TransformerConfig): tp divides the attention heads, and the KV heads (or
 * tp is a multiple of them: KV heads replicated); Ulysses sp divides the
 * heads a tp rank holds */
static bool heads_ok(const search *s, int tp, int sp) {
  if (s->heads <= 0) return true;
  if (s->heads % tp || (s->kv % tp && tp % s->kv)) return false;
  return (s->heads / tp) % sp == 0;
}

static void enumerate(search *s) {
  const plan_fix *f = &s->o->fix;
  int N = s->N;
  for (int tp = 1; tp <= N && tp <= 64; tp++) {
    if (N % tp || !fixed_ok(f->tp, tp)) continue;
    for (int sp = 1; sp <= N / tp; sp++) {
      if ((N / tp) % sp || !fixed_ok(f->sp, sp) || (sp > s->o->max_sp && f->sp != sp)) continue;
      if (s->o->seq % sp || !heads_ok(s, tp, sp)) continue;
      for (int pp = 1; pp <= N / (tp * sp); pp++) {
        if ((N / (tp * sp)) % pp || !fixed_ok(f->pp, pp) || (pp > 1 && pp > s->L)) continue;
        int dp = N / (tp * sp * pp);
        if (!fixed_ok(f->dp, dp) || s->o->global_batch % dp) continue;
        s->tp = tp, s->sp = sp, s->pp = pp, s->dp = dp;
        factorisation(s);
      }
    }
  }
}

/* ---- device subsets ------------------------------------------------------------ */
static double node_flops(const search *s, int node) {
  const ir_cluster *c = s->full.c;
  return plan_dev_of(c, c->node[s->full.node_type[node]].devtype, s->o->precision).flops;
}

/* s->fast: every global rank, nodes ordered by device speed (fastest first,
 * ties in cluster order), ranks inside a node in order */
static void order_fast(search *s) {
  int nn = s->full.nnodes, k = 0;
  int *nodes = xcalloc((size_t)nn, sizeof(int));
  for (int i = 0; i < nn; i++) {
    int j = i;
    for (; j > 0 && node_flops(s, nodes[j - 1]) < node_flops(s, i); j--) nodes[j] = nodes[j - 1];
    nodes[j] = i;
  }
  s->fast = ARENA_ARRAY(s->r->a, int, s->full.ndev);
  for (int i = 0; i < nn; i++)
    for (int r = s->full.node_first[nodes[i]]; r < s->full.ndev && s->full.rank_node[r] == nodes[i]; r++)
      s->fast[k++] = r;
  free(nodes);
}

/* use_devices: search the n devices `ranks` (mesh index -> global rank) as
 * a cluster of their own */
static void use_devices(search *s, const int *ranks, int n) {
  s->cl = s->full;
  s->cl.ndev = n;
  int *rn = ARENA_ARRAY(s->r->a, int, n);
  for (int i = 0; i < n; i++) rn[i] = s->full.rank_node[ranks[i]];
  s->cl.rank_node = rn;
  s->used = ranks, s->N = n;
  s->peak_sum = s->peak_max = 0;
  for (int i = 0; i < n; i++) {
    double f = node_flops(s, rn[i]);
    s->peak_sum += f;
    if (f > s->peak_max) s->peak_max = f;
  }
}

/* subset sizes after the whole cluster: 1, 2, 4, ... devices of the first
 * node, 1, 2, 4, ... whole nodes, all nodes of the fastest type */
static int subset_sizes(const search *s, int *n) {
  int k = 0, total = s->full.ndev, nn = s->full.nnodes;
  int *pre = xcalloc((size_t)nn + 1, sizeof(int)); /* devices in the first i nodes */
  int nfast = 0;
  double f0 = node_flops(s, s->full.rank_node[s->fast[0]]);
  for (int i = 0, r = 0; i < nn; i++) {
    int node = s->full.rank_node[s->fast[r]], c = 0;
    while (r < total && s->full.rank_node[s->fast[r]] == node) r++, c++;
    pre[i + 1] = pre[i] + c;
    if (node_flops(s, node) >= f0) nfast = i + 1;
  }
  for (int d = 1; d < pre[1]; d *= 2) n[k++] = d;
  for (int i = 1; i < nn; i *= 2) n[k++] = pre[i];
  if (nfast < nn) n[k++] = pre[nfast];
  free(pre);
  for (int i = 1; i < k; i++) /* descending, no repeats */
    for (int j = i; j > 0 && n[j] > n[j - 1]; j--) { int t = n[j]; n[j] = n[j - 1]; n[j - 1] = t; }
  int m = 0;
  for (int i = 0; i < k; i++) if (n[i] < total && (m == 0 || n[m - 1] != n[i])) n[m++] = n[i];
  return m;
}

/* subsets: the whole cluster (ranks as numbered), then the faster subsets */
static void subsets(search *s) {
  int total = s->full.ndev, fixn = s->o->fix.devices;
  int *id = ARENA_ARRAY(s->r->a, int, total);
  for (int i = 0; i < total; i++) id[i] = i;
  order_fast(s);
  if (fixn <= 0 || fixn == total) {
    use_devices(s, id, total);
    enumerate(s);
  }
  int n[80];
  int k = fixn > 0 && fixn < total ? (n[0] = fixn, 1) : fixn > 0 ? 0 : subset_sizes(s, n);
  const plan_calib *c = &s->o->calib;
  for (int i = 0; i < k; i++) {
    use_devices(s, s->fast, n[i]);
    double hw = 3 * s->fwd_seq * s->o->global_batch;
    if (fixn <= 0 && hw / (s->peak_sum * c->gemm_eff_max) >= kth_best(s)) continue;
    enumerate(s);
  }
}

/* copy the best layout's per-op SBP and boxings into the result */
static void best_ops(search *s) {
  plan_result *r = s->r;
  const plan_sol *sol = s->topsol[0];
  if (!sol) return;
  r->ops = ARENA_ARRAY(r->a, plan_opsbp, s->g->nop + 1);
  for (int i = 0; i < s->g->nop; i++) {
    if (sol->choice[i] < 0) continue;
    const ir_op *o = &s->g->op[i];
    int stage = o->block >= 0 ? -1 : plan_model_op_is_pre(s->pm, i) ? 0 : r->top[0].pp - 1;
    r->ops[r->nops++] = (plan_opsbp){i, sol->choice[i], sol->sig[i], stage};
  }
  r->box = ARENA_ARRAY(r->a, plan_boxing, sol->nbox + 1);
  if (sol->nbox) memcpy(r->box, sol->box, sizeof(plan_boxing) * (size_t)sol->nbox);
  r->nbox = sol->nbox;
}

static int64_t gcd64(int64_t a, int64_t b) { return b ? gcd64(b, a % b) : a; }

/* model_heads: the gcd of every attention op's heads and KV heads */
static void model_heads(search *s) {
  for (int i = 0; i < s->g->nop; i++) {
    const ir_op *o = &s->g->op[i];
    if (o->kind != IR_OP_ATTENTION || o->backward || o->at.heads <= 0) continue;
    s->heads = gcd64(s->heads, o->at.heads);
    s->kv = gcd64(s->kv, o->at.kv_heads > 0 ? o->at.kv_heads : o->at.heads);
  }
}

static bool setup(search *s, const ir_graph *g, const ir_cluster *c, const plan_options *o) {
  if (o->global_batch <= 0 || o->seq <= 0) {
    sbpc_error("plan: the global batch and the sequence length must be set (--batch, --seq or a train section)");
    return false;
  }
  if (!c || !plan_cl_init(&s->cl, c, s->r->a)) {
    sbpc_error("plan: the cluster has no devices");
    return false;
  }
  s->pm = plan_model_new(g, s->r->a);
  if (!s->pm) {
    sbpc_error("plan: the model has no forward ops");
    return false;
  }
  s->full = s->cl;
  s->N = s->cl.ndev, s->L = plan_model_layers(s->pm);
  s->params = (double)ir_param_count(g);
  if (o->fix.devices > s->N) {
    sbpc_error("plan: --fix devices=%d, but the cluster has %d devices", o->fix.devices, s->N);
    return false;
  }
  plan_key k = {0};
  k.dev = plan_dev_of(c, 0, o->precision), k.prec = o->precision, k.seq = o->seq;
  k.tp = k.sp = k.mbs = k.m = 1;
  const plan_sol *one = plan_model_solve(s->pm, &k, &o->calib, o->ilp_time_limit_s);
  s->fwd_seq = one->pre.flops + one->post.flops;
  double blk_params = 0;
  for (int b = 0; b < plan_model_nblocks(s->pm); b++) {
    s->fwd_seq += g->blk[b].count * one->blk[b].flops;
    s->attn_seq += g->blk[b].count * one->blk[b].attn_flops;
    blk_params += one->blk[b].params;
  }
  int nb = plan_model_nblocks(s->pm);
  s->hid = sqrt((nb ? blk_params / nb : s->params) / 12);
  model_heads(s);
  return true;
}

/* fix_conflict: why the knobs fixed by --fix rule out every layout (each
 * checked against the constraints the search obeys), or NULL */
static const char *fix_conflict(const search *s) {
  const plan_fix *f = &s->o->fix;
  arena *a = s->r->a;
  int64_t B = s->o->global_batch;
  const char *prof = s->o->calib.rt.name;
  if (f->tp > 0 && s->heads > 0 && s->heads % f->tp)
    return arena_printf(a, "--fix tp=%d: tp must divide the %lld attention heads (each rank holds whole heads)", f->tp,
                        (long long)s->heads);
  if (f->tp > 0 && s->heads > 0 && s->kv % f->tp && f->tp % s->kv)
    return arena_printf(a, "--fix tp=%d: tp must divide the %lld KV heads or be a multiple of them", f->tp,
                        (long long)s->kv);
  if (f->tp > 64) return arena_printf(a, "--fix tp=%d: tp is at most 64", f->tp);
  if (f->pp > 1 && f->pp > s->L)
    return arena_printf(a, "--fix pp=%d: every pipeline stage needs a layer and the model has %d", f->pp, s->L);
  if (f->dp > 0 && B % f->dp)
    return arena_printf(a, "--fix dp=%d: dp must divide the global batch %lld", f->dp, (long long)B);
  if (f->sp > 0 && s->o->seq % f->sp)
    return arena_printf(a, "--fix sp=%d: sp must divide the sequence length %lld", f->sp, (long long)s->o->seq);
  if (f->mbs > 0 && B % ((int64_t)f->mbs * (f->dp > 0 ? f->dp : 1)))
    return arena_printf(a, "--fix mbs=%d: the micro-batch must divide the batch of a replica (%lld / dp)", f->mbs,
                        (long long)B);
  if (f->zero > 0 && !s->o->calib.rt.dist_optimizer)
    return arena_printf(a, "--fix zero=%d: the runtime profile %s has no distributed optimizer (pick another with "
                        "--runtime)", f->zero, prof);
  if (f->zero == 3 && f->pp > 1) return arena_printf(a, "--fix zero=3 with pp=%d: ZeRO-3 is searched without pipelining", f->pp);
  if (f->vpp > 1 && f->pp == 1) return arena_printf(a, "--fix vpp=%d: interleaving needs pp > 1", f->vpp);
  if (f->vpp > 1 && s->L % f->vpp)
    return arena_printf(a, "--fix vpp=%d: vpp must divide the layers of every stage, so the model's %d layers", f->vpp,
                        s->L);
  if (f->vpp > 1 && f->pp > 1 && s->L / f->vpp < f->pp)
    return arena_printf(a, "--fix vpp=%d,pp=%d: %d layers make only %d chunks of %d for %d stages", f->vpp, f->pp, s->L,
                        s->L / f->vpp, f->vpp, f->pp);
  if (f->vpp > 1 && f->pp > 1 && f->dp > 0 && f->mbs > 0 && (B / f->dp / f->mbs) % f->pp)
    return arena_printf(a, "--fix vpp=%d: the interleaved schedule needs the %lld micro-batches to be a multiple of pp=%d",
                        f->vpp, (long long)(B / f->dp / f->mbs), f->pp);
  return NULL;
}

plan_result *plan_search(const ir_graph *g, const ir_cluster *c, const plan_options *o) {
  double t0 = now();
  arena *a = arena_new();
  plan_result *r = ARENA_NEW(a, plan_result);
  r->a = a, r->g = g, r->c = c, r->opt = *o;
  if (r->opt.top_k < 1) r->opt.top_k = 1;
  r->min_mem_bytes = 1e300;
  search s;
  memset(&s, 0, sizeof s);
  s.r = r, s.o = &r->opt, s.g = g;
  r->top = ARENA_ARRAY(a, plan_layout, r->opt.top_k);
  s.topsol = ARENA_ARRAY(a, const plan_sol *, r->opt.top_k);
  if (!setup(&s, g, c, &r->opt)) {
    plan_model_free(s.pm);
    arena_free(a);
    return NULL;
  }
  r->ndev = s.N, r->nnodes = s.cl.nnodes, r->layers = s.L, r->params = (int64_t)s.params;
  r->why = fix_conflict(&s);
  if (!r->why) subsets(&s);
  best_ops(&s);
  r->ilp_solves += plan_model_solves(s.pm);
  plan_model_free(s.pm);
  r->solve_time_s = now() - t0;
  return r;
}

void plan_result_free(plan_result *r) {
  if (r) arena_free(r->a);
}
