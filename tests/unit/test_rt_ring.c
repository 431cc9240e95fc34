/* test_rt_ring.c — ring attention's kernels (runtime/kernels_ring.c) equal
 * the whole-sequence attention kernels: for sp = 2, 3 and 4 the ranks of a
 * ring are played in one process, each running its sp forward steps (the
 * block of member (r - j) mod sp at step j) and its sp gradient steps, the
 * block gradients summed at their owners as the ring's shifts and adds
 * would. Outputs, dq, dk and dv equal attention and attention_grad on the
 * whole sequence within 2e-6, causal and not, with grouped-query heads (4
 * heads on 2 kv heads) and without; the log-sum-exp carried between steps
 * is the whole row's. */
#include "cu.h"
#include "runtime/rt_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, S = 12, HEADS = 4, D = 4, H = HEADS * D };

static ir_ref tensor(ir_graph *g, int64_t s, int64_t last) {
  ir_tensor t = ir_tensor_init("t", IR_T_ACT, IR_F32);
  t.rank = 3;
  t.shape[0] = ir_const(B), t.shape[1] = ir_const(s), t.shape[2] = ir_const(last);
  return ir_tensor_add(g, &t);
}

static ir_op op(ir_opkind kind, int kvh, bool causal, int nin, const ir_ref *in, int nout, const ir_ref *out) {
  ir_op o = ir_op_init(kind);
  o.at.heads = HEADS, o.at.kv_heads = kvh, o.at.causal = causal;
  o.nin = (uint8_t)nin, o.nout = (uint8_t)nout;
  memcpy(o.in, in, sizeof(ir_ref) * (size_t)nin);
  memcpy(o.out, out, sizeof(ir_ref) * (size_t)nout);
  return o;
}

static float *rnd(int64_t n, unsigned *seed) {
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = (float)(rand_r(seed) % 2001 - 1000) / 500.0f;
  return x;
}

/* rows [r * sl, (r + 1) * sl) of every batch of x [B, S, w], columns
 * [c0, c0 + w) of a [B, sl, ld] buffer */
static void rows(const float *x, int64_t w, int r, int64_t sl, float *y, int64_t ld, int64_t c0, bool back) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < sl; i++) {
      float *full = (float *)x + (b * S + r * sl + i) * w, *loc = y + (b * sl + i) * ld + c0;
      for (int64_t c = 0; c < w; c++) {
        if (back) full[c] += loc[c];
        else loc[c] = full[c];
      }
    }
}

static double maxdiff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

typedef struct {
  int kvh, sp;
  bool causal;
  float *q, *k, *v, *y, *dy, *dq, *dk, *dv; /* the whole sequence */
} ref;

/* attention and attention_grad on the whole sequence */
static void reference(ref *x) {
  ir_graph *g = ir_graph_new("whole");
  int64_t hk = (int64_t)x->kvh * D;
  ir_ref t[8] = {tensor(g, S, H), tensor(g, S, hk), tensor(g, S, hk), tensor(g, S, H), tensor(g, S, H),
                 tensor(g, S, H), tensor(g, S, hk), tensor(g, S, hk)};
  ir_op f = op(IR_OP_ATTENTION, x->kvh, x->causal, 3, t, 1, t + 3), bw = op(IR_OP_ATTENTION_GRAD, x->kvh, x->causal, 5, t, 3, t + 5);
  rt_kctx kc = {.step = 1, .tp = 1, .ce_ratio = 1.0, .sp = 1};
  x->y = malloc(sizeof(float) * B * S * H), x->dq = malloc(sizeof(float) * B * S * H);
  x->dk = malloc(sizeof(float) * (size_t)(B * S * hk)), x->dv = malloc(sizeof(float) * (size_t)(B * S * hk));
  CU_ASSERT(rt_kernel(g, &f, (void *[]){x->q, x->k, x->v}, (void *[]){x->y}, &kc));
  CU_ASSERT(rt_kernel(g, &bw, (void *[]){x->q, x->k, x->v, x->y, x->dy}, (void *[]){x->dq, x->dk, x->dv}, &kc));
  ir_graph_free(g);
}

/* one member r of the ring: its forward and gradient steps; its dq, and
 * the block gradients added into dk, dv at the blocks' owners */
static void member(const ref *x, int r, float *dk, float *dv, double *err) {
  int64_t sl = S / x->sp, hk = (int64_t)x->kvh * D, nq = B * sl * H, nkv = B * sl * 2 * hk, nl = B * sl * HEADS;
  ir_graph *g = ir_graph_new("ring");
  ir_ref q = tensor(g, sl, H), kv = tensor(g, sl, 2 * hk), o0 = tensor(g, sl, H), l0 = tensor(g, sl, HEADS);
  ir_ref o1 = tensor(g, sl, H), l1 = tensor(g, sl, HEADS), dO = tensor(g, sl, H), st = tensor(g, sl, 2 * HEADS);
  ir_ref dq0 = tensor(g, sl, H), dq1 = tensor(g, sl, H), dkv = tensor(g, sl, 2 * hk);
  float *qb = malloc(sizeof(float) * (size_t)nq), *kvb = malloc(sizeof(float) * (size_t)nkv), *gb = malloc(sizeof(float) * (size_t)nq);
  float *o[2] = {malloc(sizeof(float) * (size_t)nq), malloc(sizeof(float) * (size_t)nq)};
  float *l[2] = {malloc(sizeof(float) * (size_t)nl), malloc(sizeof(float) * (size_t)nl)}, *stb = malloc(sizeof(float) * (size_t)(2 * nl));
  float *dq[2] = {malloc(sizeof(float) * (size_t)nq), malloc(sizeof(float) * (size_t)nq)}, *dkvb = malloc(sizeof(float) * (size_t)nkv);
  rows(x->q, H, r, sl, qb, H, 0, false);
  rows(x->dy, H, r, sl, gb, H, 0, false);
  rt_kctx kc = {.step = 1, .tp = 1, .pos0 = r * sl, .ce_ratio = 1.0, .sp = x->sp, .spi = r};
  int cur = 0;
  for (int j = 0; j < x->sp; j++, cur ^= 1) { /* forward: (o, l)[cur] from (o, l)[cur ^ 1] */
    int src = ((r - j) % x->sp + x->sp) % x->sp;
    rows(x->k, hk, src, sl, kvb, 2 * hk, 0, false), rows(x->v, hk, src, sl, kvb, 2 * hk, hk, false);
    ir_op f = op(IR_OP_RING_ATTENTION, x->kvh, x->causal, j ? 4 : 2, (ir_ref[]){q, kv, o0, l0}, 2, (ir_ref[]){o1, l1});
    f.at.n = j;
    CU_ASSERT(rt_kernel(g, &f, (void *[]){qb, kvb, o[cur ^ 1], l[cur ^ 1]}, (void *[]){o[cur], l[cur]}, &kc));
  }
  float *yb = malloc(sizeof(float) * (size_t)nq);
  rows(x->y, H, r, sl, yb, H, 0, false);
  err[0] = fmax(err[0], maxdiff(o[cur ^ 1], yb, nq));
  int fin = cur ^ 1;
  for (int j = 0; j < x->sp; j++, cur ^= 1) { /* backward: dq[cur] from dq[cur ^ 1] */
    int src = ((r - j) % x->sp + x->sp) % x->sp;
    rows(x->k, hk, src, sl, kvb, 2 * hk, 0, false), rows(x->v, hk, src, sl, kvb, 2 * hk, hk, false);
    ir_op b = j ? op(IR_OP_RING_ATTENTION_GRAD, x->kvh, x->causal, 5, (ir_ref[]){q, kv, dO, st, dq0}, 2, (ir_ref[]){dq1, dkv})
                : op(IR_OP_RING_ATTENTION_GRAD, x->kvh, x->causal, 5, (ir_ref[]){q, kv, o0, dO, l0}, 3, (ir_ref[]){dq1, dkv, st});
    b.at.n = j;
    void *in0[] = {qb, kvb, o[fin], gb, l[fin]}, *inj[] = {qb, kvb, gb, stb, dq[cur ^ 1]};
    CU_ASSERT(rt_kernel(g, &b, j ? inj : in0, (void *[]){dq[cur], dkvb, stb}, &kc));
    rows(dk, hk, src, sl, dkvb, 2 * hk, 0, true), rows(dv, hk, src, sl, dkvb, 2 * hk, hk, true);
  }
  rows(x->dq, H, r, sl, yb, H, 0, false);
  err[1] = fmax(err[1], maxdiff(dq[cur ^ 1], yb, nq));
  free(qb), free(kvb), free(gb), free(o[0]), free(o[1]), free(l[0]), free(l[1]), free(stb);
  free(dq[0]), free(dq[1]), free(dkvb), free(yb);
  ir_graph_free(g);
}

static void check(int sp, int kvh, bool causal) {
  unsigned seed = (unsigned)(sp * 100 + kvh * 10 + causal);
  int64_t hk = (int64_t)kvh * D;
  ref x = {kvh, sp, causal, rnd(B * S * H, &seed), rnd(B * S * hk, &seed), rnd(B * S * hk, &seed), NULL,
           rnd(B * S * H, &seed), NULL, NULL, NULL};
  reference(&x);
  float *dk = calloc((size_t)(B * S * hk), sizeof(float)), *dv = calloc((size_t)(B * S * hk), sizeof(float));
  double err[2] = {0, 0};
  for (int r = 0; r < sp; r++) member(&x, r, dk, dv, err);
  double ek = maxdiff(dk, x.dk, B * S * hk), ev = maxdiff(dv, x.dv, B * S * hk);
  if (err[0] > 2e-6 || err[1] > 2e-6 || ek > 2e-6 || ev > 2e-6)
    printf("\nsp %d kv_heads %d causal %d: |o| %g |dq| %g |dk| %g |dv| %g\n", sp, kvh, causal, err[0], err[1], ek, ev);
  CU_ASSERT(err[0] <= 2e-6 && err[1] <= 2e-6 && ek <= 2e-6 && ev <= 2e-6);
  free(x.q), free(x.k), free(x.v), free(x.y), free(x.dy), free(x.dq), free(x.dk), free(x.dv), free(dk), free(dv);
}

static void test_ring_causal(void) {
  for (int sp = 2; sp <= 4; sp++) check(sp, 2, true), check(sp, HEADS, true);
}

static void test_ring_full(void) {
  for (int sp = 2; sp <= 4; sp++) check(sp, 2, false);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_ring", NULL, NULL);
  CU_ADD(s, test_ring_causal);
  CU_ADD(s, test_ring_full);
}
