/* kernels_ring.c — the fp32 kernels of ring attention's steps (lower/ring.c).
 *
 * A ring step sees this rank's S queries q [B, S, H] and one block of S keys
 * and values kv [B, S, 2*Hkv] (k columns, then v): at step n the block of
 * sp member (spi - n) mod sp, so its first position is that member's
 * S * index; the causal mask compares global positions (key <= query).
 * A block wholly in the future (a later member's, under the causal mask)
 * is skipped: the step copies its accumulators through.
 *
 * Forward (ring_attention): per batch and head the block's scores
 * (rt_sgemm, as the 1-rank kernel), a softmax over the visible keys giving
 * the block's output o_b and log-sum-exp l_b per row, merged into the
 * running (o, l) of the earlier steps in double:
 *   l = max + log(exp(l_a - max) + exp(l_b - max)),
 *   o = exp(l_a - l) * o_a + exp(l_b - l) * o_b,
 * so after the last step o is the softmax over every visible key and l its
 * log-sum-exp (kept for the backward pass).
 * Backward (ring_attention_grad): step 0 computes delta = rowsum(dO * O)
 * per head and stores st = [lse | delta]; every step recomputes the block's
 * probabilities P = exp(scores - lse), then dV += P^T dO, dS = P * (dO V^T
 * - delta), dQ += scale dS K, dK += scale dS^T Q: dq accumulates here
 * (step n > 0 reads the earlier steps' dq), dk and dv are this step's
 * contribution to the block's gradient (the ring adds it to the gradient
 * that travels with the block, so that its shift overlaps this step). */
#include "runtime/rt_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t bt, S, H, heads, kvh, d, Hkv;
  int64_t qpos0, kpos0; /* global first positions of the queries and of the block */
  float sc;
  bool causal;
  const float *q, *kv;
} ring;

static int64_t dim(const ir_graph *g, ir_ref t, int i) {
  const ir_tensor *x = &g->t[t];
  return ir_dim_eval(x->shape[i < 0 ? i + x->rank : i], g->bind_b, g->bind_s);
}

static void setup(const ir_graph *g, const ir_op *o, void *const *in, const rt_kctx *kc, ring *r) {
  ir_ref q = o->in[0];
  r->S = dim(g, q, -2), r->H = dim(g, q, -1);
  r->heads = o->at.heads > 0 ? o->at.heads : 1;
  r->kvh = o->at.kv_heads > 0 ? o->at.kv_heads : r->heads;
  r->d = r->H / r->heads, r->Hkv = r->kvh * r->d;
  r->bt = ir_numel(g, q) / (r->S * r->H);
  r->sc = (float)(o->at.scale != 0 ? o->at.scale : 1.0 / sqrt((double)r->d));
  r->causal = o->at.causal;
  int64_t sp = kc->sp > 0 ? kc->sp : 1, src = ((kc->spi - o->at.n) % sp + sp) % sp;
  r->qpos0 = kc->pos0, r->kpos0 = src * r->S;
  r->q = in[0], r->kv = in[1];
}

/* keys of the block that query row i sees */
static int64_t visible(const ring *r, int64_t i) {
  if (!r->causal) return r->S;
  int64_t n = r->qpos0 + i - r->kpos0 + 1;
  return n < 0 ? 0 : n > r->S ? r->S : n;
}

static bool skipped(const ring *r) { return visible(r, r->S - 1) == 0; }

/* P = scale * Q K^T of batch b, head h (S x S) */
static void scores(const ring *r, int64_t b, int64_t h, float *P) {
  int64_t kh = h / (r->heads / r->kvh);
  const float *Q = r->q + b * r->S * r->H + h * r->d, *K = r->kv + b * r->S * 2 * r->Hkv + kh * r->d;
  rt_sgemm(false, true, r->S, r->S, r->d, r->sc, Q, r->H, K, 2 * r->Hkv, 0.0f, P, r->S);
}

/* ---- forward ------------------------------------------------------------- */
/* the block's softmax of row p (n visible keys) in place; its log-sum-exp */
static double block_softmax(float *p, int64_t S, int64_t n) {
  if (n == 0) {
    memset(p, 0, sizeof(float) * (size_t)S);
    return -INFINITY;
  }
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; j++) mx = p[j] > mx ? p[j] : mx;
  double s = 0;
  for (int64_t j = 0; j < S; j++) {
    double e = j < n ? exp((double)p[j] - mx) : 0.0;
    p[j] = (float)e;
    s += e;
  }
  for (int64_t j = 0; j < n; j++) p[j] = (float)(p[j] / s);
  return mx + log(s);
}

/* row i of head h: (o, l) = merge((oa, la), (ob, lb)); d values each */
static void merge(const float *oa, double la, const float *ob, double lb, int64_t d, float *o, float *l) {
  if (lb == -INFINITY || la == -INFINITY) {
    const float *src = lb == -INFINITY ? oa : ob;
    if (o != src) memcpy(o, src, sizeof(float) * (size_t)d);
    *l = (float)(lb == -INFINITY ? la : lb);
    return;
  }
  double mx = la > lb ? la : lb, lse = mx + log(exp(la - mx) + exp(lb - mx));
  double wa = exp(la - lse), wb = exp(lb - lse);
  for (int64_t c = 0; c < d; c++) o[c] = (float)(wa * oa[c] + wb * ob[c]);
  *l = (float)lse;
}

/* batch b, head h: the block's output and its merge into out/lse */
static void forward_head(const ring *r, int64_t b, int64_t h, const float *po, const float *pl, float *out, float *lse,
                         float *P, float *Ob, double *lb) {
  int64_t S = r->S, d = r->d, kh = h / (r->heads / r->kvh);
  scores(r, b, h, P);
  for (int64_t i = 0; i < S; i++) lb[i] = block_softmax(P + i * S, S, visible(r, i));
  const float *V = r->kv + b * S * 2 * r->Hkv + r->Hkv + kh * d;
  rt_sgemm(false, false, S, d, S, 1.0f, P, S, V, 2 * r->Hkv, 0.0f, Ob, d);
  for (int64_t i = 0; i < S; i++) {
    int64_t row = b * S + i;
    float *o = out + row * r->H + h * d, *l = lse + row * r->heads + h;
    if (po) merge(po + row * r->H + h * d, pl[row * r->heads + h], Ob + i * d, lb[i], d, o, l);
    else merge(Ob + i * d, -INFINITY, Ob + i * d, lb[i], d, o, l);
  }
}

static bool ring_forward(const ir_graph *g, const ir_op *o, void *const *in, void *const *out, const rt_kctx *kc) {
  ring r;
  setup(g, o, in, kc, &r);
  const float *po = o->nin == 4 ? in[2] : NULL, *pl = o->nin == 4 ? in[3] : NULL;
  int64_t rows = r.bt * r.S;
  if (skipped(&r)) {
    if (!po) return false; /* step 0 is the diagonal block: never skipped */
    memcpy(out[0], po, sizeof(float) * (size_t)(rows * r.H));
    memcpy(out[1], pl, sizeof(float) * (size_t)(rows * r.heads));
    return true;
  }
  float *P = xmalloc(sizeof(float) * (size_t)(r.S * r.S + r.S * r.d));
  double *lb = xmalloc(sizeof(double) * (size_t)r.S);
  for (int64_t b = 0; b < r.bt; b++)
    for (int64_t h = 0; h < r.heads; h++) forward_head(&r, b, h, po, pl, out[0], out[1], P, P + r.S * r.S, lb);
  free(P), free(lb);
  return true;
}

/* ---- backward ------------------------------------------------------------ */
typedef struct {
  const float *dO, *st; /* st: per row [lse (heads) | delta (heads)] */
  float *dq, *dkv;
} grads;

/* step 0: st = [lse | rowsum(dO * O) per head] */
static void stats(const ring *r, const float *O, const float *dO, const float *lse, float *st) {
  for (int64_t row = 0; row < r->bt * r->S; row++)
    for (int64_t h = 0; h < r->heads; h++) {
      double s = 0;
      for (int64_t c = 0; c < r->d; c++) s += (double)dO[row * r->H + h * r->d + c] * O[row * r->H + h * r->d + c];
      st[row * 2 * r->heads + h] = lse[row * r->heads + h];
      st[row * 2 * r->heads + r->heads + h] = (float)s;
    }
}

static void backward_head(const ring *r, const grads *x, int64_t b, int64_t h, float *P, float *dP) {
  int S = (int)r->S, d = (int)r->d, ldk = (int)(2 * r->Hkv), H = (int)r->H;
  int64_t kh = h / (r->heads / r->kvh), base = b * r->S;
  const float *Q = r->q + base * r->H + h * r->d, *K = r->kv + base * ldk + kh * r->d, *V = K + r->Hkv;
  const float *G = x->dO + base * r->H + h * r->d;
  float *dQ = x->dq + base * r->H + h * r->d, *dK = x->dkv + base * ldk + kh * r->d, *dV = dK + r->Hkv;
  scores(r, b, h, P);
  for (int64_t i = 0; i < S; i++) {
    int64_t n = visible(r, i);
    double l = x->st[(base + i) * 2 * r->heads + h];
    for (int64_t j = 0; j < S; j++) P[i * S + j] = j < n ? (float)exp((double)P[i * S + j] - l) : 0.0f;
  }
  rt_sgemm(true, false, S, d, S, 1.0f, P, S, G, H, 1.0f, dV, ldk);
  rt_sgemm(false, true, S, S, d, 1.0f, G, H, V, ldk, 0.0f, dP, S);
  for (int64_t i = 0; i < S; i++) {
    double delta = x->st[(base + i) * 2 * r->heads + r->heads + h];
    for (int64_t j = 0; j < S; j++) dP[i * S + j] = (float)(P[i * S + j] * ((double)dP[i * S + j] - delta));
  }
  rt_sgemm(false, false, S, d, S, r->sc, dP, S, K, ldk, 1.0f, dQ, H);
  rt_sgemm(true, false, S, d, S, r->sc, dP, S, Q, H, 1.0f, dK, ldk);
}

static bool ring_backward(const ir_graph *g, const ir_op *o, void *const *in, void *const *out, const rt_kctx *kc) {
  ring r;
  setup(g, o, in, kc, &r);
  bool first = o->at.n == 0;
  int64_t nq = ir_numel(g, o->in[0]), nkv = ir_numel(g, o->in[1]);
  grads x = {first ? in[3] : in[2], first ? out[2] : in[3], out[0], out[1]};
  memset(x.dkv, 0, sizeof(float) * (size_t)nkv);
  if (first) {
    memset(x.dq, 0, sizeof(float) * (size_t)nq);
    stats(&r, in[2], x.dO, in[4], out[2]);
  } else {
    memcpy(x.dq, in[4], sizeof(float) * (size_t)nq);
  }
  if (skipped(&r)) return true;
  float *P = xmalloc(sizeof(float) * (size_t)(2 * r.S * r.S));
  for (int64_t b = 0; b < r.bt; b++)
    for (int64_t h = 0; h < r.heads; h++) backward_head(&r, &x, b, h, P, P + r.S * r.S);
  free(P);
  return true;
}

bool rt_ring_kernel(const ir_graph *g, const ir_op *o, void *const *in, void *const *out, const rt_kctx *kc) {
  return o->kind == IR_OP_RING_ATTENTION ? ring_forward(g, o, in, out, kc) : ring_backward(g, o, in, out, kc);
}
