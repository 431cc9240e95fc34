/* kernels_cpu.c — fp32 reference kernels for every op of ir/ops.def.
 *
 * One function per op, dispatched by rt_kernel on the op kind. Shapes come from
 * the graph with B and S bound to the local micro-batch; everything is plain
 * row-major. GEMMs (matmul and the per-head products of attention) go to
 * rt_sgemm (blas.c: OpenBLAS, split over the cores); the rest are
 * plain loops. Row reductions go in fixed float lanes with double totals
 * (row_sum and friends, "exp over rows" below), so their bits depend on the
 * row length only; the exp- and reduction-heavy ones are also built for
 * AVX-512F (KC_SIMD). Attention computes the scores of a
 * block of queries against the keys they can see, (sample, head) pairs split
 * over the threads (see "attention" below); softmax and cross-entropy take a
 * vectorized float exp (exp_neg). Communication ops are identities on logical
 * values here: in a single process every tensor is whole. Semantics the
 * gradient rules rely on:
 *  - add/sub/mul/bias_add broadcast b over the leading elements (i % numel b);
 *  - sum_rows sums its input down to the output's element count;
 *  - matmul: a[...,m,k] (trans_a: [...,k,m]) times b[k,n] or batched b;
 *  - softmax/attention causal masks use the second-to-last axis as queries;
 *  - packed ops (attr packed, lower/packed.c) take the micro-batch's
 *    document starts (kc->doc, [B, S]): attention sees keys from the query's
 *    document start to the query, positions and rotary count from the
 *    document start, cross_entropy ignores labels < 0 and divides by the
 *    predicted tokens (kc->ce_ratio of the rows);
 *  - cross_entropy_grad is the gradient of the mean loss (no upstream dy);
 *  - tanh_grad takes the forward output y; select_grad zero-fills its output
 *    and writes dy at the selected position (shapes from the tensors, so the
 *    tp-local shapes work unchanged). */
#include "runtime/rt_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const ir_graph *g;
  const ir_op *o;
  void *const *in, *const *out;
  const rt_kctx *kc;
} K;

static int64_t dimv(const ir_graph *g, ir_ref t, int i) {
  const ir_tensor *x = &g->t[t];
  if (i < 0) i += x->rank;
  if (i < 0 || i >= x->rank) return 1;
  return ir_dim_eval(x->shape[i], g->bind_b, g->bind_s);
}
static int64_t nel(const K *k, ir_ref t) { return ir_numel(k->g, t); }
static float *fin(const K *k, int i) { return (float *)k->in[i]; }
static float *fout(const K *k, int i) { return (float *)k->out[i]; }
static int64_t last(const K *k, ir_ref t) { return dimv(k->g, t, -1); }
/* a packed op's document starts ([B, S] row-major, as the op's token rows), else NULL */
static const int32_t *docs(const K *k) { return k->o->at.packed ? k->kc->doc : NULL; }

static bool k_embedding(K *k) {
  const int32_t *ids = k->in[0];
  const float *tab = fin(k, 1);
  float *y = fout(k, 0);
  int64_t n = nel(k, k->o->in[0]), V = dimv(k->g, k->o->in[1], 0), H = last(k, k->o->in[1]);
  /* a vocabulary-split table (S(0) on the tp axis) holds rows [lo, lo + V) */
  const ir_ndsbp *ts = &k->o->in_sbp[1];
  int64_t lo = ts->n == 1 && ts->a[0].kind == SBP_S && ts->a[0].axis == 0 ? (int64_t)k->kc->tpi * V : 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t r = (int64_t)ids[i] - lo;
    if (r < 0 || r >= V) memset(y + i * H, 0, sizeof(float) * (size_t)H);
    else memcpy(y + i * H, tab + r * H, sizeof(float) * (size_t)H);
  }
  return true;
}

static bool k_embedding_grad(K *k) {
  const int32_t *ids = k->in[0];
  const float *dy = fin(k, 1);
  float *dt = fout(k, 0);
  int64_t n = nel(k, k->o->in[0]), V = dimv(k->g, k->o->out[0], 0), H = last(k, k->o->out[0]);
  memset(dt, 0, sizeof(float) * (size_t)(V * H));
  for (int64_t i = 0; i < n; i++)
    if (ids[i] >= 0 && ids[i] < V)
      for (int64_t j = 0; j < H; j++) dt[(int64_t)ids[i] * H + j] += dy[i * H + j];
  return true;
}

static bool k_positions(K *k) {
  int32_t *y = k->out[0];
  int64_t n = nel(k, k->o->out[0]), L = last(k, k->o->out[0]);
  /* split on the position axis (S(last) on the tp axis): this rank's run of positions */
  const ir_ndsbp *s = &k->o->out_sbp[0];
  int64_t lo = s->n == 1 && s->a[0].kind == SBP_S && s->a[0].axis == k->g->t[k->o->out[0]].rank - 1 ? (int64_t)k->kc->tpi * L : 0;
  const int32_t *doc = docs(k); /* packed: [B, S] positions, counted from each token's document start */
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(k->kc->pos0 + lo + i % L - (doc ? doc[i] : 0));
  return true;
}

typedef struct {
  const float *a, *b;
  float *y;
  int64_t nb;
  int kind;
} bin;

/* elements [lo, hi) in runs that share b's period (no modulo per element);
 * one thread: memory-bound, and a few ms of work does not pay for threads */
RT_VECTORIZE static void bin_range(const bin *c, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi;) {
    int64_t j = i % c->nb, m = hi - i < c->nb - j ? hi - i : c->nb - j;
    const float *a = c->a + i, *b = c->b + j;
    float *y = c->y + i;
    if (c->kind == IR_OP_SUB)
      for (int64_t t = 0; t < m; t++) y[t] = a[t] - b[t];
    else if (c->kind == IR_OP_MUL)
      for (int64_t t = 0; t < m; t++) y[t] = a[t] * b[t];
    else
      for (int64_t t = 0; t < m; t++) y[t] = a[t] + b[t];
    i += m;
  }
}

static bool k_binary(K *k) {
  bin c = {.a = fin(k, 0), .b = fin(k, 1), .y = fout(k, 0), .nb = nel(k, k->o->in[1]), .kind = k->o->kind};
  bin_range(&c, 0, nel(k, k->o->out[0]));
  return true;
}

static bool k_scale(K *k) {
  const float *x = fin(k, 0);
  float *y = fout(k, 0), s = (float)k->o->at.scale;
  int64_t n = nel(k, k->o->out[0]);
  for (int64_t i = 0; i < n; i++) y[i] = s == 0.0f ? 0.0f : x[i] * s;
  return true;
}

static bool k_copy(K *k) {
  memcpy(k->out[0], k->in[0], (size_t)nel(k, k->o->out[0]) * 4);
  return true;
}

bool rt_matmul(const ir_graph *g, const ir_op *o, const float *A, const float *Bm, float alpha, float beta, float *Y) {
  ir_ref a = o->in[0], b = o->in[1], y = o->out[0];
  bool ta = o->at.trans_a, tb = o->at.trans_b;
  int ra = g->t[a].rank, rb = g->t[b].rank;
  int64_t m = dimv(g, y, -2), n = dimv(g, y, -1);
  int64_t ka = ta ? dimv(g, a, -2) : dimv(g, a, -1);
  if (ra < 2 || rb < 2) return false;
  int64_t batch = ir_numel(g, y) / (m * n);
  int64_t lda = dimv(g, a, -1), ldb = dimv(g, b, -1);
  if (rb == 2 && !ta) {
    rt_sgemm(ta, tb, batch * m, n, ka, alpha, A, lda, Bm, ldb, beta, Y, n);
    return true;
  }
  int64_t sa = m * ka, sb = rb == 2 ? 0 : ka * n;
  for (int64_t i = 0; i < batch; i++)
    rt_sgemm(ta, tb, m, n, ka, alpha, A + i * sa, lda, Bm + i * sb, ldb, beta, Y + i * m * n, n);
  return true;
}

static bool k_matmul(K *k) { return rt_matmul(k->g, k->o, fin(k, 0), fin(k, 1), 1.0f, 0.0f, fout(k, 0)); }

/* sum_rows: x as rows of m (the output's count) summed down; rows in groups
 * of SUM_ROWS, each group's sums in float partials, the partials added in
 * group order in double, groups split over the threads (par.c): the bits
 * do not depend on the thread count. A tail shorter than m (x's count not a
 * multiple of m) adds on at the end in order. */
enum { SUM_ROWS = 32 };

typedef struct {
  const float *x;
  float *part;   /* per group, m floats */
  int64_t m, rows;
} sum_job;

RT_VECTORIZE static void sum_groups(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const sum_job *j = ctx;
  int64_t m = j->m;
  for (int64_t gi = lo; gi < hi; gi++) {
    float *restrict acc = j->part + gi * m;
    memset(acc, 0, sizeof(float) * (size_t)m);
    for (int64_t r = gi * SUM_ROWS; r < (gi + 1) * SUM_ROWS && r < j->rows; r++) {
      const float *restrict x = j->x + r * m;
      for (int64_t c = 0; c < m; c++) acc[c] += x[c];
    }
  }
}

static bool k_sum_rows(K *k) {
  sum_job j = {.x = fin(k, 0), .m = nel(k, k->o->out[0])};
  int64_t n = nel(k, k->o->in[0]), m = j.m;
  j.rows = n / m;
  int64_t ng = (j.rows + SUM_ROWS - 1) / SUM_ROWS;
  j.part = xmalloc(sizeof(float) * (size_t)(ng * m + 1));
  int T = rt_par_chunks(j.rows, m);
  T = T > ng ? (int)ng : T;
  if (ng > 0) rt_par_split(ng, T, (ng + T - 1) / T, sum_groups, &j);
  double *acc = xcalloc((size_t)m, sizeof *acc);
  for (int64_t gi = 0; gi < ng; gi++)
    for (int64_t c = 0; c < m; c++) acc[c] += j.part[gi * m + c];
  for (int64_t i = j.rows * m; i < n; i++) acc[i % m] += j.x[i];
  float *y = fout(k, 0);
  for (int64_t c = 0; c < m; c++) y[c] = (float)acc[c];
  free(acc), free(j.part);
  return true;
}

/* layer_norm and its gradient: after the row helpers below */

static bool k_rms_norm(K *k) {
  const float *x = fin(k, 0), *w = fin(k, 1);
  float *y = fout(k, 0);
  int64_t n = last(k, k->o->in[0]), rows = nel(k, k->o->in[0]) / n;
  for (int64_t r = 0; r < rows; r++) {
    double ss = 0;
    for (int64_t j = 0; j < n; j++) ss += (double)x[r * n + j] * x[r * n + j];
    double rs = 1.0 / sqrt(ss / (double)n + k->o->at.eps);
    for (int64_t j = 0; j < n; j++) y[r * n + j] = (float)(x[r * n + j] * rs) * w[j];
  }
  return true;
}

static bool k_rms_norm_grad(K *k) {
  const float *x = fin(k, 0), *w = fin(k, 1), *dy = fin(k, 2);
  float *dx = fout(k, 0), *dw = fout(k, 1);
  int64_t n = last(k, k->o->in[0]), rows = nel(k, k->o->in[0]) / n;
  double *aw = xcalloc((size_t)n, sizeof *aw);
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n, *g = dy + r * n;
    double ss = 0, s = 0;
    for (int64_t j = 0; j < n; j++) ss += (double)xr[j] * xr[j];
    double rs = 1.0 / sqrt(ss / (double)n + k->o->at.eps);
    for (int64_t j = 0; j < n; j++) s += (double)g[j] * w[j] * xr[j], aw[j] += g[j] * xr[j] * rs;
    s /= (double)n;
    for (int64_t j = 0; j < n; j++) dx[r * n + j] = (float)(rs * g[j] * w[j] - xr[j] * rs * rs * rs * s);
  }
  for (int64_t j = 0; j < n; j++) dw[j] = (float)aw[j];
  free(aw);
  return true;
}

#define GELU_C 0.7978845608028654 /* sqrt(2/pi) */

static double gelu(double x, bool tanh_approx) {
  if (tanh_approx) return 0.5 * x * (1.0 + tanh(GELU_C * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
}

static double gelu_d(double x, bool tanh_approx) {
  if (tanh_approx) {
    double t = tanh(GELU_C * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
  }
  return 0.5 * (1.0 + erf(x * 0.7071067811865476)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

static bool k_unary(K *k) {
  const float *x = fin(k, 0);
  float *y = fout(k, 0);
  int64_t n = nel(k, k->o->out[0]);
  bool th = k->o->at.tanh;
  for (int64_t i = 0; i < n; i++)
    y[i] = (float)(k->o->kind == IR_OP_GELU ? gelu(x[i], th) : x[i] * sigm(x[i]));
  return true;
}

static bool k_unary_grad(K *k) {
  const float *x = fin(k, 0), *dy = fin(k, 1);
  float *dx = fout(k, 0);
  int64_t n = nel(k, k->o->out[0]);
  bool th = k->o->at.tanh;
  for (int64_t i = 0; i < n; i++) {
    double s = sigm(x[i]);
    double d = k->o->kind == IR_OP_GELU_GRAD ? gelu_d(x[i], th) : s * (1.0 + x[i] * (1.0 - s));
    dx[i] = (float)(dy[i] * d);
  }
  return true;
}

static bool k_tanh(K *k) {
  const float *x = fin(k, 0);
  float *y = fout(k, 0);
  int64_t n = nel(k, k->o->out[0]);
  for (int64_t i = 0; i < n; i++) y[i] = (float)tanh((double)x[i]);
  return true;
}

static bool k_tanh_grad(K *k) {
  const float *y = fin(k, 0), *dy = fin(k, 1);
  float *dx = fout(k, 0);
  int64_t n = nel(k, k->o->out[0]);
  for (int64_t i = 0; i < n; i++) dx[i] = (float)(dy[i] * (1.0 - (double)y[i] * y[i]));
  return true;
}

static bool k_swiglu(K *k) {
  const float *g = fin(k, 0), *u = fin(k, 1);
  float *y = fout(k, 0);
  int64_t n = nel(k, k->o->out[0]);
  for (int64_t i = 0; i < n; i++) y[i] = (float)(g[i] * sigm(g[i]) * u[i]);
  return true;
}

static bool k_swiglu_grad(K *k) {
  const float *g = fin(k, 0), *u = fin(k, 1), *dy = fin(k, 2);
  float *dg = fout(k, 0), *du = fout(k, 1);
  int64_t n = nel(k, k->o->in[0]);
  for (int64_t i = 0; i < n; i++) {
    double s = sigm(g[i]);
    dg[i] = (float)(dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s)));
    du[i] = (float)(dy[i] * g[i] * s);
  }
  return true;
}

/* softmax of one row of n scores in place; entries j < lo or j > lim are masked */
static void softmax_row(float *p, int64_t n, int64_t lo, int64_t lim) {
  float mx = -INFINITY;
  for (int64_t j = lo; j <= lim && j < n; j++) mx = p[j] > mx ? p[j] : mx;
  double s = 0;
  for (int64_t j = 0; j < n; j++) {
    double e = j >= lo && j <= lim ? exp((double)p[j] - mx) : 0.0;
    p[j] = (float)e;
    s += e;
  }
  for (int64_t j = 0; j < n; j++) p[j] = (float)(p[j] / s);
}

static bool k_softmax(K *k) {
  const float *x = fin(k, 0);
  float *y = fout(k, 0);
  ir_ref t = k->o->in[0];
  int64_t n = last(k, t), rows = nel(k, t) / n, q = k->g->t[t].rank >= 2 ? dimv(k->g, t, -2) : 1;
  double sc = k->o->at.scale != 0 ? k->o->at.scale : 1.0;
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t j = 0; j < n; j++) y[r * n + j] = (float)(x[r * n + j] * sc);
    softmax_row(y + r * n, n, 0, k->o->at.causal ? r % q : n);
  }
  return true;
}

static bool k_softmax_grad(K *k) {
  const float *y = fin(k, 0), *dy = fin(k, 1);
  float *dx = fout(k, 0);
  int64_t n = last(k, k->o->in[0]), rows = nel(k, k->o->in[0]) / n;
  double sc = k->o->at.scale != 0 ? k->o->at.scale : 1.0;
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)y[r * n + j] * dy[r * n + j];
    for (int64_t j = 0; j < n; j++) dx[r * n + j] = (float)(sc * y[r * n + j] * (dy[r * n + j] - s));
  }
  return true;
}

/* ---- exp over rows ---------------------------------------------------------- */
/* e^x for x <= 0 in plain float arithmetic that GCC vectorizes (Cephes expf:
 * about 1 ulp; 0 below -86, where e^x < 5e-38 adds nothing to a softmax
 * sum of at least 1) */
__attribute__((always_inline)) static inline float exp_neg(float x) {
  const float shift = 12582912.0f; /* 1.5 * 2^23: t's low bits are round(x / ln 2) */
  float t = x * 1.44269504f + shift, n = t - shift;
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t ti, pi;
  memcpy(&ti, &t, 4);
  memcpy(&pi, &p, 4);
  pi += (int32_t)((uint32_t)(ti - 0x4B400000) << 23); /* times 2^n */
  pi &= -(int32_t)(x >= -86.0f);
  memcpy(&p, &pi, 4);
  return p;
}

/* Row reductions go in LANES float lanes (so they vectorize) over blocks of
 * at most RED_BLOCK elements, each block's lanes summed into a double: the
 * order of the additions depends only on n, not on the vector width or the
 * thread split. */
enum { LANES = 16, RED_BLOCK = 1024 };

/* KC_SIMD: an exp- or reduction-heavy row loop, also built for AVX-512F
 * (picked at load time where the CPU has it: 16 float lanes instead of SSE's
 * 4). The clones give the same bits: float adds and multiplies in the same
 * lanes, no FMA (the build does not contract; AVX-512F does not imply FMA). */
#define KC_SIMD RT_VECTORIZE RT_CLONES("avx512f", "default")

/* the largest of n floats */
KC_SIMD static float row_max(const float *x, int64_t n) {
  float m[LANES];
  for (int l = 0; l < LANES; l++) m[l] = -INFINITY;
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  for (; j < n; j++) m[0] = x[j] > m[0] ? x[j] : m[0];
  for (int l = 1; l < LANES; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
  return m[0];
}

/* the lanes' total, in a fixed tree */
static double lanes_total(const float *acc) {
  double s = 0;
  for (int l = 0; l < LANES; l += 4) s += ((double)acc[l] + acc[l + 1]) + ((double)acc[l + 2] + acc[l + 3]);
  return s;
}

/* e[j] = exp(x[j] - mx) for j < n (e may be x; NULL: not kept); returns
 * the sum of the exps. A block's last partial group of lanes goes through a
 * padded copy (exp(-inf) = 0), so short rows stay vectorized. */
KC_SIMD static double exp_sum(const float *x, float *e, int64_t n, float mx) {
  double s = 0;
  float tmp[RED_BLOCK];
  for (int64_t b = 0; b < n; b += RED_BLOCK) {
    int64_t m = b + RED_BLOCK < n ? RED_BLOCK : n - b, j = 0, r;
    const float *xb = x + b;
    float *eb = e ? e + b : tmp, acc[LANES] = {0}, pad[LANES], pe[LANES];
    for (; j + LANES <= m; j += LANES)
      for (int l = 0; l < LANES; l++) {
        float v = exp_neg(xb[j + l] - mx);
        eb[j + l] = v;
        acc[l] += v;
      }
    if ((r = m - j) > 0) {
      for (int l = 0; l < LANES; l++) pad[l] = l < r ? xb[j + l] : -INFINITY;
      for (int l = 0; l < LANES; l++) pe[l] = exp_neg(pad[l] - mx), acc[l] += pe[l];
      memcpy(eb + j, pe, sizeof(float) * (size_t)r);
    }
    s += lanes_total(acc);
  }
  return s;
}

/* sum of x[j] y[j] over j < n */
KC_SIMD static double row_dot(const float *x, const float *y, int64_t n) {
  double s = 0;
  for (int64_t b = 0; b < n; b += RED_BLOCK) {
    int64_t end = b + RED_BLOCK < n ? b + RED_BLOCK : n, j = b;
    float acc[LANES] = {0};
    for (; j + LANES <= end; j += LANES)
      for (int l = 0; l < LANES; l++) acc[l] += x[j + l] * y[j + l];
    for (; j < end; j++) acc[0] += x[j] * y[j];
    s += lanes_total(acc);
  }
  return s;
}

/* sum of x[j] over j < n */
KC_SIMD static double row_sum(const float *x, int64_t n) {
  double s = 0;
  for (int64_t b = 0; b < n; b += RED_BLOCK) {
    int64_t end = b + RED_BLOCK < n ? b + RED_BLOCK : n, j = b;
    float acc[LANES] = {0};
    for (; j + LANES <= end; j += LANES)
      for (int l = 0; l < LANES; l++) acc[l] += x[j + l];
    for (; j < end; j++) acc[0] += x[j];
    s += lanes_total(acc);
  }
  return s;
}

/* sum of (x[j] - mu)^2 over j < n */
KC_SIMD static double row_sqdev(const float *x, int64_t n, float mu) {
  double s = 0;
  for (int64_t b = 0; b < n; b += RED_BLOCK) {
    int64_t end = b + RED_BLOCK < n ? b + RED_BLOCK : n, j = b;
    float acc[LANES] = {0};
    for (; j + LANES <= end; j += LANES)
      for (int l = 0; l < LANES; l++) acc[l] += (x[j + l] - mu) * (x[j + l] - mu);
    for (; j < end; j++) acc[0] += (x[j] - mu) * (x[j] - mu);
    s += lanes_total(acc);
  }
  return s;
}

KC_SIMD static void row_scale(float *x, int64_t n, float f) {
  for (int64_t j = 0; j < n; j++) x[j] *= f;
}

/* ---- layer norm ------------------------------------------------------------ */
/* Rows are independent but for the gradient's dw, db (sums over rows): rows
 * go in groups of LN_ROWS, each group's sums in its own float partials, the
 * partials added in group order in double; groups split over the threads
 * (par.c), so the bits do not depend on the thread count. Row statistics
 * in float lanes (row_sum, row_dot), totals in double. */
enum { LN_ROWS = 32 };

typedef struct {
  const float *x, *w, *b, *dy;
  float *y, *dx, *pw; /* pw: per group, dw then db partials (2n floats) */
  int64_t n, rows;
  double eps;
} ln_job;

/* row x's mean and 1/sqrt(var + eps) */
static void ln_stats(const ln_job *j, const float *x, float *mu, float *rs) {
  double m = row_sum(x, j->n) / (double)j->n;
  *mu = (float)m;
  *rs = (float)(1.0 / sqrt(row_sqdev(x, j->n, *mu) / (double)j->n + j->eps));
}

KC_SIMD static void ln_fwd_rows(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const ln_job *j = ctx;
  int64_t n = j->n;
  const float *restrict w = j->w, *restrict b = j->b;
  for (int64_t r = lo; r < hi; r++) {
    const float *restrict x = j->x + r * n;
    float *restrict y = j->y + r * n, mu, rs;
    ln_stats(j, x, &mu, &rs);
    for (int64_t c = 0; c < n; c++) y[c] = (x[c] - mu) * rs * w[c] + b[c];
  }
}

/* one gradient row: xh = x normalized, gx = g w; the row's share of dw, db */
__attribute__((always_inline)) static inline void ln_grad_xh(const float *restrict x, const float *restrict g,
                                                             const float *restrict w, float *restrict xh,
                                                             float *restrict gx, float *restrict aw,
                                                             float *restrict ab, int64_t n, float mu, float rs) {
  for (int64_t c = 0; c < n; c++) {
    float h = (x[c] - mu) * rs;
    xh[c] = h, gx[c] = g[c] * w[c];
    aw[c] += g[c] * h, ab[c] += g[c];
  }
}

__attribute__((always_inline)) static inline void ln_grad_dx(const float *restrict xh, const float *restrict gx,
                                                             float *restrict dx, int64_t n, float rs, float s1,
                                                             float s2) {
  for (int64_t c = 0; c < n; c++) dx[c] = rs * (gx[c] - s1 - xh[c] * s2);
}

/* groups [lo, hi): dx of their rows, their dw, db partials */
KC_SIMD static void ln_grad_groups(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const ln_job *j = ctx;
  int64_t n = j->n;
  const float *w = j->w;
  float *xh = xmalloc(sizeof(float) * (size_t)(2 * n)), *gx = xh + n;
  for (int64_t gi = lo; gi < hi; gi++) {
    float *aw = j->pw + gi * 2 * n, *ab = aw + n;
    memset(aw, 0, sizeof(float) * (size_t)(2 * n));
    for (int64_t r = gi * LN_ROWS; r < (gi + 1) * LN_ROWS && r < j->rows; r++) {
      float mu, rs;
      const float *x = j->x + r * n, *g = j->dy + r * n;
      ln_stats(j, x, &mu, &rs);
      ln_grad_xh(x, g, w, xh, gx, aw, ab, n, mu, rs);
      float s1 = (float)(row_sum(gx, n) / (double)n), s2 = (float)(row_dot(gx, xh, n) / (double)n);
      ln_grad_dx(xh, gx, j->dx + r * n, n, rs, s1, s2);
    }
  }
  free(xh);
}

/* groups of `unit` rows each split over the threads, as rt_par_for would
 * split the rows */
static void ln_split(int64_t rows, int64_t n, int64_t unit, rt_par_fn fn, void *ctx) {
  int64_t ng = (rows + unit - 1) / unit;
  int T = rt_par_chunks(rows, n);
  T = T > ng ? (int)ng : T;
  rt_par_split(ng, T, (ng + T - 1) / T, fn, ctx);
}

static void ln_fwd_groups(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const ln_job *j = ctx;
  ln_fwd_rows(ctx, chunk, lo * LN_ROWS, hi * LN_ROWS < j->rows ? hi * LN_ROWS : j->rows);
}

static bool k_layer_norm(K *k) {
  ln_job j = {.x = fin(k, 0), .w = fin(k, 1), .b = fin(k, 2), .y = fout(k, 0), .n = last(k, k->o->in[0]),
              .eps = k->o->at.eps};
  j.rows = nel(k, k->o->in[0]) / j.n;
  ln_split(j.rows, j.n, LN_ROWS, ln_fwd_groups, &j);
  return true;
}

static bool k_layer_norm_grad(K *k) {
  ln_job j = {.x = fin(k, 0), .w = fin(k, 1), .dy = fin(k, 3), .dx = fout(k, 0), .n = last(k, k->o->in[0]),
              .eps = k->o->at.eps};
  j.rows = nel(k, k->o->in[0]) / j.n;
  int64_t ng = (j.rows + LN_ROWS - 1) / LN_ROWS, n = j.n;
  j.pw = xmalloc(sizeof(float) * (size_t)(ng * 2 * n));
  ln_split(j.rows, n, LN_ROWS, ln_grad_groups, &j);
  float *dw = fout(k, 1), *db = fout(k, 2);
  double *acc = xcalloc((size_t)(2 * n), sizeof *acc);
  for (int64_t gi = 0; gi < ng; gi++)
    for (int64_t c = 0; c < 2 * n; c++) acc[c] += j.pw[gi * 2 * n + c];
  for (int64_t c = 0; c < n; c++) dw[c] = (float)acc[c], db[c] = (float)acc[n + c];
  free(acc), free(j.pw);
  return true;
}

/* ---- attention ----------------------------------------------------------- */
typedef struct {
  int64_t bt, S, H, Hkv, heads, kvh, d, ldq, ldk;
  float sc;
  bool causal;
  const int32_t *doc;       /* packed: document starts [bt, S], else NULL */
  const float *q, *k, *v;
  float *dq, *dk, *dv;
} attn;

static void attn_setup(K *k, attn *a) {
  const ir_op *o = k->o;
  ir_ref x = o->in[0];
  /* --adaptive-sp: a group of spg runs the program's sp-split head tensors (runtime/adaptive.c) */
  int64_t f = k->kc->spg > 0 ? k->kc->sp : 1, dv = k->kc->spg > 0 ? k->kc->spg : 1, X = last(k, x) * f / dv;
  a->S = dimv(k->g, x, -2) / f * dv;
  a->heads = (o->at.heads > 0 ? o->at.heads : 1) * f / dv;
  bool fused = o->kind == IR_OP_ATTENTION ? o->nin == 1 : o->nin == 3;
  a->H = fused ? X / 3 : X;
  a->kvh = fused || o->at.kv_heads <= 0 ? a->heads : o->at.kv_heads * f / dv;
  a->d = a->H / a->heads;
  a->Hkv = a->kvh * a->d;
  a->bt = nel(k, x) / (a->S * X);
  a->sc = (float)(o->at.scale != 0 ? o->at.scale : 1.0 / sqrt((double)a->d));
  a->causal = o->at.causal;
  a->doc = docs(k) && k->kc->doc_all ? k->kc->doc_all : docs(k); /* Ulysses: the whole sequence's */
  a->q = fin(k, 0);
  a->ldq = fused ? 3 * a->H : a->H;
  a->ldk = fused ? 3 * a->H : a->Hkv;
  a->k = fused ? a->q + a->H : fin(k, 1);
  a->v = fused ? a->q + 2 * a->H : fin(k, 2);
}

/* Causal and packed attention touch only some keys: queries go in blocks of
 * ATT_BQ rows, and a block's scores span just the keys its rows can see
 * ([lo, hi): from the block's earliest document start to its last query when
 * causal), so the masked upper triangle is mostly never computed. Work items
 * are (sample, head) pairs for the forward and (sample, kv head) groups for
 * the gradient (q heads sharing a kv head accumulate into the same dK, dV),
 * split over the threads with single-threaded sgemms (par.c, rt_par_items);
 * each item's result does not depend on the split. */
enum { ATT_BQ = 64 };

/* the keys query rows [i0, i1) of sample b can see: [*lo, *hi) */
static void attn_keys(const attn *a, int64_t b, int64_t i0, int64_t i1, int64_t *lo, int64_t *hi) {
  const int32_t *doc = a->doc ? a->doc + b * a->S : NULL;
  int64_t l = doc ? a->S : 0;
  for (int64_t i = i0; doc && i < i1; i++) l = doc[i] < l ? doc[i] : l;
  *lo = l;
  *hi = a->causal ? i1 : a->S;
}

/* softmax of one row of n scores in place (entries j < lo or j > lim masked):
 * as softmax_row, with a float exp */
static void attn_softmax(float *p, int64_t n, int64_t lo, int64_t lim) {
  if (lim > n - 1) lim = n - 1;
  int64_t m = lim - lo + 1;
  if (m <= 0) return (void)memset(p, 0, sizeof(float) * (size_t)n);
  row_scale(p + lo, m, (float)(1.0 / exp_sum(p + lo, p + lo, m, row_max(p + lo, m))));
  memset(p, 0, sizeof(float) * (size_t)lo);
  memset(p + lim + 1, 0, sizeof(float) * (size_t)(n - lim - 1));
}

/* the probabilities of query rows [i0, i1) of sample b's head (Q, Kp) over
 * keys [lo, hi) into P (row stride hi - lo) */
static void attn_probs(const attn *a, int64_t b, int64_t i0, int64_t i1, int64_t lo, int64_t hi, const float *Q,
                       const float *Kp, float *P) {
  int64_t L = hi - lo;
  const int32_t *doc = a->doc ? a->doc + b * a->S : NULL;
  rt_sgemm(false, true, i1 - i0, L, a->d, a->sc, Q + i0 * a->ldq, a->ldq, Kp + lo * a->ldk, a->ldk, 0.0f, P, L);
  for (int64_t i = i0; i < i1; i++)
    attn_softmax(P + (i - i0) * L, L, (doc ? doc[i] : 0) - lo, (a->causal ? i : a->S) - lo);
}

typedef struct {
  const attn *a;
  const float *dO;
  float *out;
} attn_job;

static void attn_fwd_items(void *ctx, int chunk, int64_t lo_item, int64_t hi_item) {
  const attn_job *j = ctx;
  const attn *a = j->a;
  float *P = xmalloc(sizeof(float) * (size_t)(ATT_BQ * a->S));
  for (int64_t it = lo_item; it < hi_item; it++) {
    int64_t b = it / a->heads, h = it % a->heads, kh = h / (a->heads / a->kvh);
    const float *Q = a->q + b * a->S * a->ldq + h * a->d, *Kp = a->k + b * a->S * a->ldk + kh * a->d;
    const float *V = a->v + b * a->S * a->ldk + kh * a->d;
    float *O = j->out + b * a->S * a->H + h * a->d;
    for (int64_t i0 = 0; i0 < a->S; i0 += ATT_BQ) {
      int64_t i1 = i0 + ATT_BQ < a->S ? i0 + ATT_BQ : a->S, lo, hi;
      attn_keys(a, b, i0, i1, &lo, &hi);
      attn_probs(a, b, i0, i1, lo, hi, Q, Kp, P);
      rt_sgemm(false, false, i1 - i0, a->d, hi - lo, 1.0f, P, hi - lo, V + lo * a->ldk, a->ldk, 0.0f, O + i0 * a->H,
               a->H);
    }
  }
  free(P);
}

static bool k_attention(K *k) {
  attn a;
  attn_setup(k, &a);
  attn_job j = {.a = &a, .out = fout(k, 0)};
  rt_par_items(a.bt * a.heads, attn_fwd_items, &j);
  return true;
}

/* dS = P * (dP - rowsum(P * dP)) in place of dP, rows of L */
RT_VECTORIZE static void attn_dscores(const float *P, float *dP, int64_t rows, int64_t L) {
  for (int64_t i = 0; i < rows; i++) {
    const float *restrict p = P + i * L;
    float *restrict dp = dP + i * L, s = (float)row_dot(p, dp, L);
    for (int64_t j = 0; j < L; j++) dp[j] = p[j] * (dp[j] - s);
  }
}

/* the gradient of query rows [i0, i1) of sample b's head h: into dQ, and
 * accumulated into the kv head's dK, dV over the keys those rows see */
static void attn_grad_block(const attn *a, const float *dO, int64_t b, int64_t h, int64_t i0, int64_t i1, float *P,
                            float *dP) {
  int d = (int)a->d, ldq = (int)a->ldq, ldk = (int)a->ldk, m = (int)(i1 - i0);
  int64_t kh = h / (a->heads / a->kvh), lo, hi;
  attn_keys(a, b, i0, i1, &lo, &hi);
  int L = (int)(hi - lo);
  const float *Q = a->q + b * a->S * a->ldq + h * a->d, *Kp = a->k + (b * a->S + lo) * a->ldk + kh * a->d;
  const float *V = a->v + (b * a->S + lo) * a->ldk + kh * a->d, *G = dO + (b * a->S + i0) * a->H + h * a->d;
  float *dQ = a->dq + (b * a->S + i0) * a->ldq + h * a->d, *dK = a->dk + (b * a->S + lo) * a->ldk + kh * a->d;
  float *dV = a->dv + (b * a->S + lo) * a->ldk + kh * a->d;
  attn_probs(a, b, i0, i1, lo, hi, Q, a->k + b * a->S * a->ldk + kh * a->d, P);
  rt_sgemm(true, false, L, d, m, 1.0f, P, L, G, a->H, 1.0f, dV, ldk);
  rt_sgemm(false, true, m, L, d, 1.0f, G, a->H, V, ldk, 0.0f, dP, L);
  attn_dscores(P, dP, m, L);
  rt_sgemm(false, false, m, d, L, a->sc, dP, L, Kp, ldk, 1.0f, dQ, ldq);
  rt_sgemm(true, false, L, d, m, a->sc, dP, L, Q + i0 * a->ldq, ldq, 1.0f, dK, ldk);
}

/* items: (sample, kv head) groups, so no two threads add into one dK, dV */
static void attn_grad_items(void *ctx, int chunk, int64_t lo_item, int64_t hi_item) {
  const attn_job *j = ctx;
  const attn *a = j->a;
  int64_t grp = a->heads / a->kvh;
  float *P = xmalloc(sizeof(float) * (size_t)(2 * ATT_BQ * a->S));
  for (int64_t it = lo_item; it < hi_item; it++)
    for (int64_t h = it % a->kvh * grp; h < (it % a->kvh + 1) * grp; h++)
      for (int64_t i0 = 0; i0 < a->S; i0 += ATT_BQ)
        attn_grad_block(a, j->dO, it / a->kvh, h, i0, i0 + ATT_BQ < a->S ? i0 + ATT_BQ : a->S, P, P + ATT_BQ * a->S);
  free(P);
}

static bool k_attention_grad(K *k) {
  attn a;
  attn_setup(k, &a);
  int nfwd = k->o->nin - 2;
  attn_job j = {.a = &a, .dO = fin(k, nfwd + 1)};
  for (int i = 0; i < k->o->nout; i++) memset(k->out[i], 0, (size_t)nel(k, k->o->out[i]) * 4);
  a.dq = fout(k, 0);
  a.dk = nfwd == 1 ? a.dq + a.H : fout(k, 1);
  a.dv = nfwd == 1 ? a.dq + 2 * a.H : fout(k, 2);
  rt_par_items(a.bt * a.kvh, attn_grad_items, &j);
  return true;
}

/* ---- rotary, dropout ------------------------------------------------------ */
static bool k_rotary(K *k) {
  const float *x = fin(k, 0);
  float *y = fout(k, 0);
  ir_ref t = k->o->in[0];
  int64_t n = last(k, t), rows = nel(k, t) / n, S = dimv(k->g, t, -2);
  int64_t heads = k->o->at.heads > 0 ? k->o->at.heads : 1, d = n / heads, h2 = d / 2;
  double theta = k->o->at.theta > 0 ? k->o->at.theta : 10000.0, sgn = k->o->kind == IR_OP_ROTARY_GRAD ? -1.0 : 1.0;
  const int32_t *doc = docs(k); /* packed: rows are [B, S] tokens, counted from their document start */
  for (int64_t r = 0; r < rows; r++)
    for (int64_t h = 0; h < heads; h++)
      for (int64_t j = 0; j < h2; j++) {
        double ang = (double)(k->kc->pos0 + r % S - (doc ? doc[r] : 0)) * pow(theta, -2.0 * (double)j / (double)d);
        double c = cos(ang), s = sgn * sin(ang);
        const float *xp = x + r * n + h * d;
        float *yp = y + r * n + h * d;
        double x1 = xp[j], x2 = xp[j + h2];
        yp[j] = (float)(x1 * c - x2 * s);
        yp[j + h2] = (float)(x2 * c + x1 * s);
      }
  return true;
}

typedef struct {
  const float *x;
  float *y;
  float sc;      /* 1 / (1 - p) */
  uint64_t thr;  /* element i is dropped where its hash's top 53 bits < thr */
  uint64_t base;
} drop;

/* y = x / (1 - p) where kept, else 0 (torch: x times the mask times 1/(1-p), in
 * float); integer hash and compare, so the masks vectorize (the clone for
 * x86-64-v4, AVX-512DQ, multiplies 64-bit lanes) */
RT_CLONES("arch=x86-64-v4", "default")
RT_VECTORIZE static void drop_range(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const drop *d = ctx;
  const float *restrict x = d->x, sc = d->sc;
  float *restrict y = d->y;
  const uint64_t thr = d->thr, base = d->base;
  for (int64_t i = lo; i < hi; i++) y[i] = rt_hash64(base + (uint64_t)i) >> 11 >= thr ? x[i] * sc : 0.0f;
}

/* the mask of element i: a hash of (seed, key, step, micro-batch, i), so
 * split over threads it is the same */
static bool k_dropout(K *k) {
  double p = k->o->at.p > 0 ? k->o->at.p : 0;
  /* u = (hash >> 11) / 2^53 < p exactly where hash >> 11 < ceil(p 2^53) */
  drop d = {.x = fin(k, 0), .y = fout(k, 0), .sc = p < 1 ? (float)(1.0 / (1.0 - p)) : 0.0f,
            .thr = p < 1 ? (uint64_t)ceil(p * 9007199254740992.0) : UINT64_MAX};
  int64_t n = nel(k, k->o->out[0]);
  /* the mask's key: the forward output (a recompute clone's at.n names the original's) */
  uint64_t key = k->o->kind == IR_OP_DROPOUT && !k->o->recompute ? (uint64_t)k->o->out[0] : (uint64_t)k->o->at.n;
  d.base = rt_hash64(k->kc->seed ^ rt_hash64(key * 1000003u + (uint64_t)k->kc->step * 7919u + (uint64_t)k->kc->micro));
  rt_par_for(n, 1, drop_range, &d);
  return true;
}

/* ---- loss ----------------------------------------------------------------- */
typedef struct {
  const float *x;
  const int32_t *lab;
  float *g;                 /* gradient out, or NULL */
  int64_t V;
  double N;                 /* the divisor: rows, or packed the predicted share of them */
  bool ignore;              /* packed: labels < 0 are ignored */
  double sc, part[64];      /* per-chunk loss partials */
} xent;

static void xent_rows(void *ctx, int chunk, int64_t lo, int64_t hi) {
  xent *c = ctx;
  int64_t V = c->V;
  double loss = 0;
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = c->x + r * V;
    float *er = c->g ? c->g + r * V : NULL; /* forward: the exps are not kept */
    if (c->ignore && c->lab[r] < 0) {
      if (c->g) memset(er, 0, sizeof(float) * (size_t)V);
      continue;
    }
    float mx = row_max(xr, V);
    double s = exp_sum(xr, er, V, mx);
    int64_t l = c->lab[r] >= 0 && c->lab[r] < V ? c->lab[r] : 0;
    loss += log(s) + mx - xr[l];
    if (c->g) {
      row_scale(er, V, (float)(c->sc / s / c->N)); /* softmax - onehot, scaled */
      er[l] -= (float)(c->sc / c->N);
    }
  }
  c->part[chunk] = loss;
}

/* rows split over threads (par.c); the loss partials summed in chunk order */
static bool k_cross_entropy(K *k, bool grad) {
  xent c = {.x = fin(k, 0), .lab = k->in[1], .g = grad ? fout(k, 0) : NULL, .V = last(k, k->o->in[0])};
  int64_t rows = nel(k, k->o->in[0]) / c.V;
  c.ignore = k->o->at.packed;
  c.N = (double)rows * (c.ignore ? k->kc->ce_ratio : 1.0);
  c.sc = k->o->at.scale != 0 ? k->o->at.scale : 1.0; /* sc: tp share of the tokens */
  rt_par_for(rows, c.V, xent_rows, &c);
  double loss = 0;
  for (int i = 0; i < rt_par_chunks(rows, c.V); i++) loss += c.part[i];
  if (!grad) fout(k, 0)[0] = (float)(c.sc * loss / c.N);
  return true;
}

/* ---- layout ops ------------------------------------------------------------ */
static bool k_transpose(K *k) {
  const float *x = fin(k, 0);
  float *y = fout(k, 0);
  ir_ref t = k->o->in[0];
  int64_t r = dimv(k->g, t, -2), c = dimv(k->g, t, -1), nb = nel(k, t) / (r * c);
  for (int64_t b = 0; b < nb; b++)
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < c; j++) y[b * r * c + j * r + i] = x[b * r * c + i * c + j];
  return true;
}

/* outer = product of dims before axis, inner(t) = product from axis on */
static int64_t axis_of(const K *k, ir_ref t) {
  int64_t ax = k->o->at.axis;
  return ax < 0 ? ax + k->g->t[t].rank : ax;
}
static int64_t inner(const K *k, ir_ref t, int64_t ax) {
  int64_t n = 1;
  for (int i = (int)ax; i < k->g->t[t].rank; i++) n *= dimv(k->g, t, i);
  return n;
}

static bool k_split_concat(K *k, bool split) {
  ir_ref whole = split ? k->o->in[0] : k->o->out[0];
  int nparts = split ? k->o->nout : k->o->nin;
  int64_t ax = axis_of(k, whole), wi = inner(k, whole, ax), outer = nel(k, whole) / wi, off = 0;
  for (int p = 0; p < nparts; p++) {
    ir_ref part = split ? k->o->out[p] : k->o->in[p];
    int64_t pi = inner(k, part, ax);
    float *w = split ? fin(k, 0) : fout(k, 0), *q = split ? fout(k, p) : fin(k, p);
    for (int64_t o = 0; o < outer; o++) {
      if (split) memcpy(q + o * pi, w + o * wi + off, (size_t)pi * 4);
      else memcpy(w + o * wi + off, q + o * pi, (size_t)pi * 4);
    }
    off += pi;
  }
  return true;
}

/* select moves one position of an axis: the whole tensor is outer x size x
 * inner elements (size = the axis), the slice outer x inner */
static bool k_select(K *k, bool grad) {
  ir_ref whole = grad ? k->o->out[0] : k->o->in[0];
  int64_t ax = axis_of(k, whole), span = inner(k, whole, ax), size = dimv(k->g, whole, (int)ax);
  int64_t rest = span / size, outer = nel(k, whole) / span, at = k->o->at.index;
  if (at < 0 || at >= size) return false;
  float *w = grad ? fout(k, 0) : fin(k, 0), *part = grad ? fin(k, 0) : fout(k, 0);
  if (grad) memset(w, 0, (size_t)nel(k, whole) * 4);
  for (int64_t o = 0; o < outer; o++) {
    float *wp = w + o * span + at * rest, *pp = part + o * rest;
    if (grad) memcpy(wp, pp, (size_t)rest * 4);
    else memcpy(pp, wp, (size_t)rest * 4);
  }
  return true;
}

/* ---- optimizer ----------------------------------------------------------------- */
/* PyTorch's AdamW in fp32 (as torch.optim.AdamW computes it on float
 * tensors): the step's constants in double, rounded once to float, then per
 * element p *= 1 - lr wd; m = m + (1 - b1)(g - m) (lerp); v = b2 v + (1 - b2) g g;
 * p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). Float lanes, no FMA
 * (-O2 without -march): the same bits on any split and any x86-64. */
typedef struct {
  float *p, *m, *v;
  const float *g;
  float decay, w1, b2, w2, ss, sq2, eps;
} adamw_job;

RT_VECTORIZE static void adamw_range(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const adamw_job *j = ctx;
  float *restrict po = j->p, *restrict mo = j->m, *restrict vo = j->v;
  const float *restrict g = j->g;
  const float decay = j->decay, w1 = j->w1, b2 = j->b2, w2 = j->w2, ss = j->ss, sq2 = j->sq2, eps = j->eps;
  (void)chunk;
  for (int64_t i = lo; i < hi; i++) {
    float gi = g[i], mf = mo[i] + w1 * (gi - mo[i]), vf = b2 * vo[i] + w2 * (gi * gi);
    mo[i] = mf, vo[i] = vf;
    po[i] = po[i] * decay - ss * (mf / (sqrtf(vf) / sq2 + eps));
  }
}

/* elementwise, split over threads (par.c): the same bits for any split */
void rt_adamw(const ir_attrs *a, float *po, const float *g, float *mo, float *vo, int64_t n, int64_t step) {
  double t = (double)step, bc1 = 1.0 - pow(a->beta1, t), bc2 = 1.0 - pow(a->beta2, t);
  adamw_job j = {po, mo, vo, g, (float)(1.0 - a->lr * a->weight_decay), (float)(1.0 - a->beta1), (float)a->beta2,
                 (float)(1.0 - a->beta2), (float)(a->lr / bc1), (float)sqrt(bc2), (float)a->eps};
  rt_par_for(n, 1, adamw_range, &j);
}

/* in place: the executor passes out[i] == the matching input */
static bool k_adamw(K *k) {
  int64_t n = nel(k, k->o->in[0]);
  float *p = fout(k, 0), *m = fout(k, 1), *v = fout(k, 2);
  if (p != fin(k, 0)) memcpy(p, fin(k, 0), sizeof(float) * (size_t)n);
  if (m != fin(k, 2)) memcpy(m, fin(k, 2), sizeof(float) * (size_t)n);
  if (v != fin(k, 3)) memcpy(v, fin(k, 3), sizeof(float) * (size_t)n);
  rt_adamw(&k->o->at, p, fin(k, 1), m, v, n, k->kc->step);
  return true;
}

bool rt_kernel(const ir_graph *g, const ir_op *o, void *const *in, void *const *out, const rt_kctx *kc) {
  K k = {g, o, in, out, kc};
  switch ((ir_opkind)o->kind) {
  case IR_OP_EMBEDDING: return k_embedding(&k);
  case IR_OP_POSITIONS: return k_positions(&k);
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_BIAS_ADD: return k_binary(&k);
  case IR_OP_SCALE: return k_scale(&k);
  case IR_OP_MATMUL: return k_matmul(&k);
  case IR_OP_LAYER_NORM: return k_layer_norm(&k);
  case IR_OP_RMS_NORM: return k_rms_norm(&k);
  case IR_OP_GELU: case IR_OP_SILU: return k_unary(&k);
  case IR_OP_SWIGLU: return k_swiglu(&k);
  case IR_OP_TANH: return k_tanh(&k);
  case IR_OP_SOFTMAX: return k_softmax(&k);
  case IR_OP_ATTENTION: return k_attention(&k);
  case IR_OP_ROTARY: case IR_OP_ROTARY_GRAD: return k_rotary(&k);
  case IR_OP_DROPOUT: case IR_OP_DROPOUT_GRAD: return k_dropout(&k);
  case IR_OP_CROSS_ENTROPY: return k_cross_entropy(&k, false);
  case IR_OP_RESHAPE: return k_copy(&k);
  case IR_OP_TRANSPOSE: return k_transpose(&k);
  case IR_OP_SPLIT: return k_split_concat(&k, true);
  case IR_OP_CONCAT: return k_split_concat(&k, false);
  case IR_OP_SELECT: return k_select(&k, false);
  case IR_OP_ALL_REDUCE: case IR_OP_ALL_GATHER: case IR_OP_REDUCE_SCATTER:
  case IR_OP_ALL_TO_ALL: case IR_OP_SEND_RECV: case IR_OP_SLICE: return k_copy(&k);
  case IR_OP_EMBEDDING_GRAD: return k_embedding_grad(&k);
  case IR_OP_SUM_ROWS: return k_sum_rows(&k);
  case IR_OP_LAYER_NORM_GRAD: return k_layer_norm_grad(&k);
  case IR_OP_RMS_NORM_GRAD: return k_rms_norm_grad(&k);
  case IR_OP_GELU_GRAD: case IR_OP_SILU_GRAD: return k_unary_grad(&k);
  case IR_OP_SWIGLU_GRAD: return k_swiglu_grad(&k);
  case IR_OP_TANH_GRAD: return k_tanh_grad(&k);
  case IR_OP_SELECT_GRAD: return k_select(&k, true);
  case IR_OP_SOFTMAX_GRAD: return k_softmax_grad(&k);
  case IR_OP_ATTENTION_GRAD: return k_attention_grad(&k);
  case IR_OP_CROSS_ENTROPY_GRAD: return k_cross_entropy(&k, true);
  case IR_OP_ADAMW: return k_adamw(&k);
  case IR_OP_RING_ATTENTION: case IR_OP_RING_ATTENTION_GRAD: return rt_ring_kernel(g, o, in, out, kc);
  default: break;
  }
  sbpc_error("no CPU kernel for op '%s'", o->kind < IR_NOPKIND ? ir_ops[o->kind].name : "?");
  return false;
}

double rt_kernel_flops(const ir_graph *g, const ir_op *o) {
  if (o->kind == IR_OP_MATMUL) {
    ir_ref a = o->in[0], y = o->out[0];
    int64_t ka = o->at.trans_a ? dimv(g, a, -2) : dimv(g, a, -1);
    return 2.0 * (double)ir_numel(g, y) * (double)ka;
  }
  return o->nout > 0 ? 4.0 * (double)ir_numel(g, o->out[0]) : 0.0;
}

double rt_model_flops(const ir_graph *g, const ir_op *o) {
  if (o->kind == IR_OP_MATMUL) return rt_kernel_flops(g, o);
  if (o->kind == IR_OP_RING_ATTENTION || o->kind == IR_OP_RING_ATTENTION_GRAD) { /* one S/sp x S/sp block per step */
    int64_t H = dimv(g, o->in[0], -1), S = dimv(g, o->in[0], -2), rows = ir_numel(g, o->in[0]) / H;
    return (o->kind == IR_OP_RING_ATTENTION ? 4.0 : 8.0) * (double)rows * (double)S * (double)H;
  }
  if (o->kind != IR_OP_ATTENTION && o->kind != IR_OP_ATTENTION_GRAD) return 0;
  /* per head: S x S scores of head_dim d; forward QK^T and PV, backward
   * dV, dP, dQ and dK (the recomputed scores are not the model's) */
  const ir_tensor *q = &g->t[o->in[0]];
  int64_t S = ir_dim_eval(q->shape[q->rank - 2], g->bind_b, g->bind_s), rows = ir_numel(g, o->in[0]) / ir_dim_eval(q->shape[q->rank - 1], g->bind_b, g->bind_s);
  int64_t heads = o->at.heads > 0 ? o->at.heads : 1, hd = ir_numel(g, o->out[0]) / rows / heads;
  if (o->kind == IR_OP_ATTENTION_GRAD) hd = ir_numel(g, o->in[0]) / rows / (o->nin == 1 ? 3 * heads : heads);
  double per = 2.0 * (double)rows * (double)S * (double)hd * (double)heads; /* one S x S x d product per head */
  return (o->kind == IR_OP_ATTENTION ? 2 : 4) * per;
}
