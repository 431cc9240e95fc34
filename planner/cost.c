/* cost.c — the planner's cost formulas: op rooflines and alpha-beta collectives.
 *
 * An op is a roofline: max(FLOPs / (peak * efficiency), bytes / (bandwidth *
 * mem_eff)) plus a launch overhead per kernel. GEMM efficiency is a smooth
 * function of the shape, eff_max * f(m) f(n) f(k) with f(x) = x / (x + h): a
 * dimension equal to h halves the factor, large dimensions approach eff_max
 * (tile quantisation and wave effects make small GEMMs slow). The product is
 * symmetric, so the two backward GEMMs of a matmul (the same three dimensions
 * in another order) run at the forward's efficiency.
 *
 * A calibration made without the device's datasheet peak (`sbpc tune` on
 * this machine, docs/calibration.md) describes the device it ran on in
 * absolute terms: its fitted GEMM asymptote and its elementwise kernels'
 * bandwidth replace peak x efficiency (dev_flops, dev_bw), and a GEMM shape
 * it measured (forward and both backward products) runs at its measured
 * rate; other shapes follow the fitted curve.
 *
 * Collectives follow the alpha-beta model on the slowest link of the group
 * (cluster.c finds it): ring all-reduce 2(n-1)a + 2T(n-1)/(n bw), tree
 * all-reduce 2 ceil(log2 n) a + 2T/bw (the faster is used), all-gather and
 * reduce-scatter (n-1)a + T(n-1)/(n bw), all-to-all (n-1)a + T(n-1)/(n^2 bw),
 * send/recv a + T/bw. Which collective a re-layout needs, and the bytes it
 * moves, are ir/boxing.c's table (ir_boxing_kind, ir_coll_bytes); only the
 * times are here. A calibration table of measured bus bandwidth by group
 * size replaces bw (interpolated in log n) when present; all-to-all and
 * send/recv have their own tables by placement (inside a node, across). A
 * calibration's executor section scales every collective by what the
 * executor measured inside a step against this model (exec_scale[PLAN_COMM]). */
#include "planner/plan_int.h"
#include <math.h>

const char *plan_coll_name(int k) {
  return k >= 0 && k < IR_NOPKIND ? ir_ops[k].name : "none";
}

/* log_shape: record m x n x k in c->gemm_log once */
static void log_shape(const plan_calib *c, int m, int n, int k) {
  plan_shape_log *l = c->gemm_log;
  for (int i = 0; i < l->n && i < l->cap; i++)
    if (l->mnk[i][0] == m && l->mnk[i][1] == n && l->mnk[i][2] == k) return;
  if (l->n < l->cap) l->mnk[l->n][0] = m, l->mnk[l->n][1] = n, l->mnk[l->n][2] = k;
  l->n++;
}

/* measured: the measured rate of exactly this shape, or 0 */
static double measured(const plan_calib *c, int m, int n, int k) {
  for (int i = 0; i < c->ngemm; i++)
    if (c->gemm_mnk[i][0] == m && c->gemm_mnk[i][1] == n && c->gemm_mnk[i][2] == k) return c->gemm_rate[i];
  return 0;
}

double plan_gemm_eff(const plan_calib *c, double m, double n, double k) {
  double h = c->gemm_half_dim;
  if (m < 1) m = 1;
  if (n < 1) n = 1;
  if (k < 1) k = 1;
  int im = (int)fmin(m + 0.5, 1 << 30), in = (int)fmin(n + 0.5, 1 << 30), ik = (int)fmin(k + 0.5, 1 << 30);
  if (c->gemm_log) log_shape(c, im, in, ik);
  double r = c->dev_flops > 0 ? measured(c, im, in, ik) : 0;
  if (r > 0) return r / c->dev_flops;
  return c->gemm_eff_max * (m / (m + h)) * (n / (n + h)) * (k / (k + h));
}

ir_dtype plan_compute_precision(const ir_cluster *c, ir_dtype p) {
  for (int i = 0; c && i < c->ndev; i++)
    if (c->dev[i].peak_flops[p] > 0 || (p == IR_BF16 && c->dev[i].peak_flops[IR_F16] > 0)) return p;
  return c && c->ndev > 0 && p != IR_F32 ? IR_F32 : p;
}

double plan_mem_time(const plan_calib *c, const plan_dev *d, double bytes) {
  double bw = c->dev_bw > 0 ? c->dev_bw : d->bw * c->mem_eff;
  return bytes > 0 && bw > 0 ? bytes / bw : 0;
}

double plan_kernel_time(const plan_calib *c, const plan_dev *d, double flops, double eff,
                        double bytes, double kernels, int pass) {
  double peak = c->dev_flops > 0 ? c->dev_flops : d->flops;
  double tc = (flops > 0 && peak > 0 && eff > 0) ? flops / (peak * eff) : 0;
  double tm = plan_mem_time(c, d, bytes);
  double per = c->exec_kernel_s[pass] >= 0 ? c->exec_kernel_s[pass] : c->kernel_overhead_s;
  return (tc > tm ? tc : tm) * c->exec_scale[pass] + kernels * per;
}

/* calibrated bus bandwidth and latency of collective k for a group of n, or
 * the link's: all-to-all and send/recv from their own tables by placement
 * when measured, else the all-reduce table; a ZeRO reduce-scatter or
 * all-gather (zero: Z_STEP, Z_END), their own measured bandwidth when the
 * calibration has it (tp boxing keeps the all-reduce table: the executor's
 * P -> S is an all-reduce, and its in-step latency: tiny GPT-2's tp=2
 * layouts were predicted 4.2 ms against 18 ms measured with the
 * back-to-back one) */
static void coll_link(const plan_calib *c, int k, int n, plan_link l, int zero, double *bw, double *a) {
  *bw = l.bw * c->coll_eff;
  *a = l.lat;
  const plan_colltab *t = k == IR_OP_ALL_TO_ALL ? &c->a2a[l.inter] : k == IR_OP_SEND_RECV ? &c->p2p[l.inter] : NULL;
  double cbw, ca;
  if (t && t->cnt > 0) {
    plan_coll_interp(t->n, t->bw, t->alpha, t->cnt, n, &cbw, &ca);
    *bw = cbw; /* measured on this kind of group: replaces the link model */
    if (ca >= 0) *a = ca;
    return;
  }
  if (!plan_coll_interp(c->coll_n, c->coll_bw, c->coll_alpha, c->ncoll, n, &cbw, &ca)) return;
  /* a ZeRO reduce-scatter or all-gather measured as such: its own
   * bandwidth; inside the step the all-reduce table's in-step latency (the
   * back-to-back one under-charged ZeRO-3's per-parameter gathers by 42-58 %
   * on tiny GPT-2), at the step's end, where the ranks arrive together, its
   * own back-to-back one (the in-step 772 us over-charged ZeRO-1 by 19-21 %
   * there: its exposed communication measured 0.1-0.3 ms beyond ZeRO-0's) */
  const plan_colltab *kt = !zero ? NULL : k == IR_OP_REDUCE_SCATTER ? &c->rs : k == IR_OP_ALL_GATHER ? &c->ag : NULL;
  double kbw, ka;
  if (kt && plan_coll_interp(kt->n, kt->bw, kt->alpha, kt->cnt, n, &kbw, &ka)) {
    cbw = kbw;
    if (zero == PLAN_ZERO_END && ka > 0 && ka < ca) ca = ka;
  }
  /* the calibration was measured on some link; never exceed this link */
  if (cbw > 0 && cbw < *bw) *bw = cbw;
  if (ca > 0) *a = ca;
}

/* coll_time: the alpha-beta time of collective k */
static double coll_time(const plan_calib *c, int k, double T, int n, plan_link l, int zero) {
  double bw, a;
  coll_link(c, k, n, l, zero, &bw, &a);
  if (bw <= 0) return 1e9;
  switch (k) {
  case IR_OP_ALL_REDUCE: {
    double ring = 2 * (n - 1) * a + 2 * T * (n - 1) / (n * bw);
    double tree = 2 * ceil(log2((double)n)) * a + 2 * T / bw;
    return ring < tree ? ring : tree;
  }
  case IR_OP_ALL_GATHER:
  case IR_OP_REDUCE_SCATTER: return (n - 1) * a + T * (n - 1) / (n * bw);
  case IR_OP_ALL_TO_ALL: return (n - 1) * a + T * (n - 1) / ((double)n * n * bw);
  case IR_OP_SEND_RECV: return a + T / bw;
  default: return 0;
  }
}

double plan_coll_time(const plan_calib *c, int k, double T, int n, plan_link l) {
  if (k == IR_NOPKIND || k == IR_OP_SLICE || T <= 0) return 0;
  if (n <= 1 && k != IR_OP_SEND_RECV) return 0;
  return coll_time(c, k, T, n, l, 0) * c->exec_scale[PLAN_COMM]; /* measured: how the executor's run inside a step */
}

double plan_waited_coll_time(const plan_calib *c, int k, double T, int n, plan_link l) {
  double t = plan_coll_time(c, k, T, n, l);
  return t > 0 ? t + c->exec_coll_s : 0;
}

double plan_zero_coll_time(const plan_calib *c, int k, double T, int n, plan_link l, int when) {
  const plan_colltab *t = k == IR_OP_REDUCE_SCATTER ? &c->rs : k == IR_OP_ALL_GATHER ? &c->ag : NULL;
  if (T <= 0 || n <= 1) return 0;
  /* the executor's measured wait per collective (0 unmeasured) */
  double wait = when & PLAN_ZERO_12 && c->exec_coll12_s >= 0 ? c->exec_coll12_s : c->exec_coll_s;
  if (!t || t->cnt == 0) return plan_coll_time(c, k, T, n, l) + wait;
  return coll_time(c, k, T, n, l, when & ~PLAN_ZERO_12) + wait;
}

ir_sbp plan_grad_sbp(ir_sbp in, bool replicated) {
  ir_sbp g = in;
  if (replicated) {
    g.kind = SBP_B;
    g.axis = 0;
  } else if (in.kind == SBP_B) {
    g.kind = SBP_PSUM;
    g.axis = 0;
  } else if (in.kind != SBP_S) {
    g.kind = SBP_B;
    g.axis = 0;
  }
  return g;
}

ir_sbp plan_need_sbp(ir_sbp out) {
  ir_sbp n = out;
  if (out.kind != SBP_S) {
    n.kind = SBP_B;
    n.axis = 0;
  }
  return n;
}
