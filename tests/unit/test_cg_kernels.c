/* test_cg_kernels.c — every fused CPU kernel (fusion -> kernel IR -> LLVM ->
 * ORC JIT) against a plain double-precision C reference of the unfused ops,
 * on random inputs of awkward sizes: 1 row, 1 column, odd row lengths, rows
 * longer than the vector width, a vocabulary-sized row.
 *
 * Error metric: max over elements of |got - ref| / (|ref| + 1e-2): relative
 * where |ref| >= 0.01, absolute (scaled by 100) near the roots of a function,
 * where no fp32 evaluation can be relatively accurate (gelu'(x) near -0.75).
 * The limit is 1e-5 for elementwise kernels and 1e-4 for kernels with row
 * reductions. */
#include "cu.h"
#include "codegen/cg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- graph building helpers ---------------------------------------------- */
static ir_ref tens(ir_graph *g, const char *name, ir_tkind kind, int rank, ir_dim d0, ir_dim d1) {
  ir_tensor t = ir_tensor_init(name, kind, IR_F32);
  t.rank = (uint8_t)rank;
  t.shape[0] = d0;
  t.shape[1] = d1;
  if (rank == 1) t.shape[0] = d1;
  return ir_tensor_add(g, &t);
}

static ir_dim S_ = {1, 0, 1};
static ir_dim H_ = {768, 0, 0};

static ir_ref act(ir_graph *g, const char *n) { return tens(g, n, IR_T_ACT, 2, S_, H_); }
static ir_ref vec(ir_graph *g, const char *n) { return tens(g, n, IR_T_PARAM, 1, H_, H_); }

static ir_ref op(ir_graph *g, ir_opkind k, ir_ref a, ir_ref b, ir_ref c, ir_ref out, ir_attrs *at) {
  ir_op o = ir_op_init(k);
  ir_ref in[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    if (in[i] >= 0) o.in[o.nin++] = in[i];
  o.out[0] = out;
  o.nout = 1;
  if (at) o.at = *at;
  return ir_op_add(g, &o);
}

/* ---- running a kernel ------------------------------------------------------ */
typedef struct {
  const char *name;
  float *p;
} binding;

static double rnd(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return ((*s >> 8) & 0xffffff) / 16777216.0;
}

static float *randv(size_t n, unsigned *s, double lo, double hi) {
  float *v = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * rnd(s));
  return v;
}

static cg_kernel *only_kernel(cg_fusion *f) {
  CU_ASSERT_EQUAL_FATAL(f->nkernels, 1);
  for (int i = 0; i < f->n; i++)
    if (f->g[i].k) return f->g[i].k;
  return NULL;
}

/* run: JIT kernel k and call it with buffers bound by tensor name. */
static void run(cg_kernel *k, const binding *b, int nb, int64_t rows, int64_t cols, const float *scal) {
  char why[512];
  cg_jit *j = cg_jit_compile(&k, 1, why, sizeof why);
  if (!j) fprintf(stderr, "jit: %s\n", why);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  cg_kfn fn = cg_jit_kernel(j, k->name);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
  void *bufs[CG_MAXBUF] = {0};
  for (int i = 0; i < k->nbuf; i++)
    for (int x = 0; x < nb; x++)
      if (!strcmp(k->buf[i].name, b[x].name)) bufs[i] = b[x].p;
  for (int i = 0; i < k->nbuf; i++) CU_ASSERT_PTR_NOT_NULL(bufs[i]);
  int64_t dims[2] = {rows, cols};
  float sc[CG_MAXSCALAR];
  for (int i = 0; i < k->nscalar; i++) sc[i] = scal ? scal[i] : k->scalar_default[i];
  fn(bufs, dims, sc);
  cg_jit_free(j);
}

static double maxrel(const float *got, const double *ref, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - ref[i]) / (fabs(ref[i]) + 1e-2);
    if (!(e <= m)) m = e; /* NaN propagates */
  }
  return m;
}

static const int64_t sizes[][2] = {{1, 1}, {1, 7}, {3, 13}, {2, 8}, {5, 1027}, {37, 768}, {1, 50257}};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

/* ---- references ---------------------------------------------------------- */
static double gelu_tanh(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double gelu_erf(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

static uint32_t hash32(uint32_t idx, uint32_t key) {
  uint32_t x = idx * 0x9E3779B9u ^ key;
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/* ---- tests ----------------------------------------------------------------- */
static void bias_gelu_case(bool tanh_approx) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), b = vec(g, "b"), h = act(g, "h"), y = act(g, "y");
  op(g, IR_OP_BIAS_ADD, x, b, -1, h, NULL);
  ir_attrs at = {0};
  at.tanh = tanh_approx;
  op(g, IR_OP_GELU, h, -1, -1, y, &at);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  CU_ASSERT_EQUAL(k->nbuf, 3); /* h is not materialised */
  unsigned s = 7;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *xv = randv(n, &s, -6, 6), *bv = randv((size_t)C, &s, -1, 1), *yv = calloc(n, sizeof(float));
    double *ref = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
      double v = (double)xv[i] + bv[i % (size_t)C];
      ref[i] = tanh_approx ? gelu_tanh(v) : gelu_erf(v);
    }
    binding bd[] = {{"x", xv}, {"b", bv}, {"y", yv}};
    run(k, bd, 3, R, C, NULL);
    double e = maxrel(yv, ref, n);
    if (!(e <= 1e-5)) fprintf(stderr, "bias_gelu %s %ldx%ld: %g\n", tanh_approx ? "tanh" : "erf", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-5);
    free(xv), free(bv), free(yv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}
static void bias_gelu_tanh(void) { bias_gelu_case(true); }
static void bias_gelu_erf(void) { bias_gelu_case(false); }

static void bias_dropout_residual(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), b = vec(g, "b"), r = act(g, "r"), h = act(g, "h"), d = act(g, "d"), y = act(g, "y");
  op(g, IR_OP_BIAS_ADD, x, b, -1, h, NULL);
  ir_attrs at = {0};
  at.p = 0.1;
  op(g, IR_OP_DROPOUT, h, -1, -1, d, &at);
  op(g, IR_OP_ADD, r, d, -1, y, NULL);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  CU_ASSERT_EQUAL(k->nbuf, 4);
  CU_ASSERT_EQUAL(k->nscalar, 1);
  unsigned s = 11;
  float seed = 1234.5f;
  uint32_t key;
  memcpy(&key, &seed, 4);
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *xv = randv(n, &s, -3, 3), *bv = randv((size_t)C, &s, -1, 1), *rv = randv(n, &s, -2, 2);
    float *yv = calloc(n, sizeof(float));
    double *ref = malloc(n * sizeof(double));
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
      double u = (hash32((uint32_t)i, key) >> 8) / 16777216.0;
      double hv = (double)(float)((double)xv[i] + bv[i % (size_t)C]);
      ref[i] = rv[i] + (u >= 0.1 ? hv * (float)(1 / 0.9) : 0);
      kept += u >= 0.1;
    }
    if (n > 10000) CU_ASSERT(fabs((double)kept / (double)n - 0.9) < 0.01);
    binding bd[] = {{"x", xv}, {"b", bv}, {"r", rv}, {"y", yv}};
    run(k, bd, 4, R, C, &seed);
    double e = maxrel(yv, ref, n);
    if (!(e <= 1e-5)) fprintf(stderr, "dropout %ldx%ld: %g\n", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-5);
    free(xv), free(bv), free(rv), free(yv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}

static void residual_layer_norm(bool rms) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), r = act(g, "r"), w = vec(g, "w"), b = vec(g, "b"), h = act(g, "h"), y = act(g, "y");
  op(g, IR_OP_ADD, x, r, -1, h, NULL);
  ir_attrs at = {0};
  at.eps = 1e-5;
  op(g, rms ? IR_OP_RMS_NORM : IR_OP_LAYER_NORM, h, w, rms ? -1 : b, y, &at);
  op(g, IR_OP_MATMUL, h, w, -1, act(g, "z"), NULL); /* h is the residual stream */
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  CU_ASSERT_EQUAL(k->nbuf, rms ? 5 : 6); /* h (the residual stream) is stored */
  unsigned s = 5;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *xv = randv(n, &s, -2, 3), *rv = randv(n, &s, -1, 1), *wv = randv((size_t)C, &s, 0.5, 1.5);
    float *bv = randv((size_t)C, &s, -1, 1), *hv = calloc(n, 4), *yv = calloc(n, 4);
    double *ref = malloc(n * sizeof(double)), *href = malloc(n * sizeof(double));
    for (int64_t i = 0; i < R; i++) {
      double mean = 0, var = 0;
      for (int64_t c = 0; c < C; c++) {
        href[i * C + c] = (float)((double)xv[i * C + c] + rv[i * C + c]);
        mean += href[i * C + c];
      }
      mean = rms ? 0 : mean / (double)C;
      for (int64_t c = 0; c < C; c++) var += (href[i * C + c] - mean) * (href[i * C + c] - mean);
      double rstd = 1 / sqrt(var / (double)C + 1e-5);
      for (int64_t c = 0; c < C; c++)
        ref[i * C + c] = (href[i * C + c] - mean) * rstd * wv[c] + (rms ? 0 : bv[c]);
    }
    binding bd[] = {{"x", xv}, {"r", rv}, {"w", wv}, {"b", bv}, {"h", hv}, {"y", yv}};
    run(k, bd, 6, R, C, NULL);
    double e = maxrel(yv, ref, n), eh = maxrel(hv, href, n);
    if (!(e <= 1e-4)) fprintf(stderr, "%s %ldx%ld: %g\n", rms ? "rms" : "ln", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-4);
    CU_ASSERT(eh <= 1e-5);
    free(xv), free(rv), free(wv), free(bv), free(hv), free(yv), free(ref), free(href);
  }
  arena_free(a);
  ir_graph_free(g);
}
static void layer_norm(void) { residual_layer_norm(false); }
static void rms_norm(void) { residual_layer_norm(true); }

static void softmax_case(bool causal) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), y = act(g, "y");
  ir_attrs at = {0};
  at.scale = 0.125;
  at.causal = causal;
  op(g, IR_OP_SOFTMAX, x, -1, -1, y, &at);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  unsigned s = 3;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *xv = randv(n, &s, -40, 40), *yv = calloc(n, 4);
    double *ref = malloc(n * sizeof(double));
    for (int64_t i = 0; i < R; i++) {
      int64_t q = i % C;
      double m = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; c++)
        if (!causal || c <= q) m = fmax(m, xv[i * C + c] * 0.125);
      for (int64_t c = 0; c < C; c++) sum += (!causal || c <= q) ? exp(xv[i * C + c] * 0.125 - m) : 0;
      for (int64_t c = 0; c < C; c++) ref[i * C + c] = (!causal || c <= q) ? exp(xv[i * C + c] * 0.125 - m) / sum : 0;
    }
    binding bd[] = {{"x", xv}, {"y", yv}};
    run(k, bd, 2, R, C, NULL);
    double e = maxrel(yv, ref, n);
    if (!(e <= 1e-4)) fprintf(stderr, "softmax %ldx%ld: %g\n", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-4);
    free(xv), free(yv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}
static void softmax_plain(void) { softmax_case(false); }
static void softmax_causal(void) { softmax_case(true); }

/* cross-entropy forward and backward fuse into one kernel sharing max/sum. */
static void cross_entropy(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "logits");
  ir_tensor lt = ir_tensor_init("labels", IR_T_INPUT, IR_I32);
  lt.rank = 1;
  lt.shape[0] = S_;
  ir_ref lab = ir_tensor_add(g, &lt);
  ir_tensor st = ir_tensor_init("loss", IR_T_ACT, IR_F32);
  ir_ref loss = ir_tensor_add(g, &st);
  ir_ref dx = act(g, "dlogits");
  op(g, IR_OP_CROSS_ENTROPY, x, lab, -1, loss, NULL);
  op(g, IR_OP_CROSS_ENTROPY_GRAD, x, lab, -1, dx, NULL);
  g->loss = loss;
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  int nred = 0;
  for (int i = 0; i < k->nnode; i++) nred += k->node[i].op == CG_RMAX || k->node[i].op == CG_RSUM;
  CU_ASSERT_EQUAL(nred, 3); /* max, sum exp, picked logit: shared by fwd and bwd */
  unsigned s = 9;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *xv = randv(n, &s, -8, 8), *dv = calloc(n, 4), lossv = 0;
    int32_t *lv = malloc(sizeof(int32_t) * (size_t)R);
    double *ref = malloc(n * sizeof(double)), lref = 0;
    for (int64_t i = 0; i < R; i++) {
      lv[i] = (int32_t)(rnd(&s) * (double)C);
      double m = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; c++) m = fmax(m, xv[i * C + c]);
      for (int64_t c = 0; c < C; c++) sum += exp(xv[i * C + c] - m);
      lref += (m + log(sum) - xv[i * C + lv[i]]) / (double)R;
      for (int64_t c = 0; c < C; c++) ref[i * C + c] = (exp(xv[i * C + c] - m) / sum - (c == lv[i])) / (double)R;
    }
    binding bd[] = {{"logits", xv}, {"labels", (float *)lv}, {"loss", &lossv}, {"dlogits", dv}};
    run(k, bd, 4, R, C, NULL);
    double e = maxrel(dv, ref, n), el = fabs(lossv - lref) / (fabs(lref) + 1e-3);
    if (!(e <= 1e-4 && el <= 1e-4)) fprintf(stderr, "ce %ldx%ld: %g loss %g\n", (long)R, (long)C, e, el);
    CU_ASSERT(e <= 1e-4);
    CU_ASSERT(el <= 1e-4);
    free(xv), free(dv), free(lv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}

/* backward chain: gelu_grad then softmax_grad-free elementwise; and
 * softmax_grad alone (a reduction). */
static void gelu_grad(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), dy = act(g, "dy"), dx = act(g, "dx");
  ir_attrs at = {0};
  at.tanh = true;
  op(g, IR_OP_GELU_GRAD, x, dy, -1, dx, &at);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  unsigned s = 13;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *xv = randv(n, &s, -5, 5), *dyv = randv(n, &s, -1, 1), *dxv = calloc(n, 4);
    double *ref = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
      double v = xv[i], u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
      double t = tanh(u), du = 0.7978845608028654 * (1 + 3 * 0.044715 * v * v);
      ref[i] = dyv[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du);
    }
    binding bd[] = {{"x", xv}, {"dy", dyv}, {"dx", dxv}};
    run(k, bd, 3, R, C, NULL);
    double e = maxrel(dxv, ref, n);
    if (!(e <= 1e-5)) fprintf(stderr, "gelu_grad %ldx%ld: %g\n", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-5);
    free(xv), free(dyv), free(dxv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}

/* elem2_check: kernel k over buffers (a, b) -> y on every size against
 * ref(a, b) per element; a is uniform in [lo, hi], b in [-1, 1] and, when
 * bvec, one value per column (a bias). */
static void elem2_check(cg_kernel *k, const char *what, const char *const nm[3], bool bvec, double lo, double hi,
                        double (*ref)(double, double), unsigned s) {
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C), nb = bvec ? (size_t)C : n;
    float *av = randv(n, &s, lo, hi), *bv = randv(nb, &s, -1, 1), *yv = calloc(n, sizeof(float));
    double *want = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) want[i] = ref(av[i], bv[i % nb]);
    binding bd[] = {{nm[0], av}, {nm[1], bv}, {nm[2], yv}};
    run(k, bd, 3, R, C, NULL);
    double e = maxrel(yv, want, n);
    if (!(e <= 1e-5)) fprintf(stderr, "%s %ldx%ld: %g\n", what, (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-5);
    free(av), free(bv), free(yv), free(want);
  }
}

static double ref_bias_tanh(double x, double b) { return tanh(x + b); }
static double ref_tanh_grad(double y, double dy) { return dy * (1.0 - y * y); }

/* bias_add + tanh fuse into one kernel; x covers both branches of the
 * emitter's tanh (|x| < 0.625: polynomial, else through exp) and saturation */
static void bias_tanh(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), b = vec(g, "b"), h = act(g, "h"), y = act(g, "y");
  op(g, IR_OP_BIAS_ADD, x, b, -1, h, NULL);
  op(g, IR_OP_TANH, h, -1, -1, y, NULL);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  CU_ASSERT_EQUAL(k->nbuf, 3); /* h is not materialised */
  static const char *const nm[3] = {"x", "b", "y"};
  elem2_check(k, "bias_tanh", nm, true, -6, 6, ref_bias_tanh, 17);
  arena_free(a);
  ir_graph_free(g);
}

/* tanh_grad(y, dy) = dy * (1 - y*y), y a tanh output in (-1, 1) */
static void tanh_grad(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref y = act(g, "y"), dy = act(g, "dy"), dx = act(g, "dx");
  op(g, IR_OP_TANH_GRAD, y, dy, -1, dx, NULL);
  arena *a = arena_new();
  static const char *const nm[3] = {"y", "dy", "dx"};
  elem2_check(only_kernel(cg_fuse(g, IR_F32, a)), "tanh_grad", nm, false, -1, 1, ref_tanh_grad, 19);
  arena_free(a);
  ir_graph_free(g);
}

static void softmax_grad(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref y = act(g, "y"), dy = act(g, "dy"), dx = act(g, "dx");
  op(g, IR_OP_SOFTMAX_GRAD, y, dy, -1, dx, NULL);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  unsigned s = 17;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *yv = randv(n, &s, 0, 1), *dyv = randv(n, &s, -1, 1), *dxv = calloc(n, 4);
    double *ref = malloc(n * sizeof(double));
    for (int64_t i = 0; i < R; i++) { /* y is a softmax output: rows sum to 1 */
      double sum = 0;
      for (int64_t c = 0; c < C; c++) sum += yv[i * C + c];
      for (int64_t c = 0; c < C; c++) yv[i * C + c] = (float)(yv[i * C + c] / sum);
    }
    for (int64_t i = 0; i < R; i++) {
      double dot = 0;
      for (int64_t c = 0; c < C; c++) dot += (double)yv[i * C + c] * dyv[i * C + c];
      for (int64_t c = 0; c < C; c++) ref[i * C + c] = yv[i * C + c] * (dyv[i * C + c] - dot);
    }
    binding bd[] = {{"y", yv}, {"dy", dyv}, {"dx", dxv}};
    run(k, bd, 3, R, C, NULL);
    double e = maxrel(dxv, ref, n);
    if (!(e <= 1e-4)) fprintf(stderr, "softmax_grad %ldx%ld: %g\n", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-4);
    free(yv), free(dyv), free(dxv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}

static void swiglu(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref ga = act(g, "gate"), up = act(g, "up"), y = act(g, "y");
  op(g, IR_OP_SWIGLU, ga, up, -1, y, NULL);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  unsigned s = 19;
  for (int z = 0; z < NSIZES; z++) {
    int64_t R = sizes[z][0], C = sizes[z][1];
    size_t n = (size_t)(R * C);
    float *gv = randv(n, &s, -8, 8), *uv = randv(n, &s, -1, 1), *yv = calloc(n, 4);
    double *ref = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) ref[i] = gv[i] / (1 + exp(-(double)gv[i])) * uv[i];
    binding bd[] = {{"gate", gv}, {"up", uv}, {"y", yv}};
    run(k, bd, 3, R, C, NULL);
    double e = maxrel(yv, ref, n);
    if (!(e <= 1e-5)) fprintf(stderr, "swiglu %ldx%ld: %g\n", (long)R, (long)C, e);
    CU_ASSERT(e <= 1e-5);
    free(gv), free(uv), free(yv), free(ref);
  }
  arena_free(a);
  ir_graph_free(g);
}

/* AdamW over several parameters: one kernel over packed buffers. */
static void adamw(void) {
  ir_graph *g = ir_graph_new("t");
  for (int p = 0; p < 3; p++) {
    char nm[4][16];
    const char *pre[4] = {"p", "g", "m", "v"};
    ir_ref in[4];
    for (int j = 0; j < 4; j++) {
      snprintf(nm[j], sizeof nm[j], "%s%d", pre[j], p);
      in[j] = vec(g, arena_strdup(g->arena, nm[j]));
    }
    ir_op o = ir_op_init(IR_OP_ADAMW);
    o.nin = 4;
    memcpy(o.in, in, sizeof in);
    o.nout = 3;
    for (int j = 0; j < 3; j++) o.out[j] = vec(g, arena_printf(g->arena, "out%d_%d", p, j));
    o.at.lr = 1e-3, o.at.beta1 = 0.9, o.at.beta2 = 0.95, o.at.eps = 1e-8, o.at.weight_decay = 0.1;
    ir_op_add(g, &o);
  }
  arena *a = arena_new();
  cg_fusion *f = cg_fuse(g, IR_F32, a);
  cg_kernel *k = only_kernel(f);
  CU_ASSERT_EQUAL(f->g[0].nops, 3);
  CU_ASSERT_EQUAL(k->cols, 3 * 768);
  unsigned s = 23;
  size_t n = 3 * 768 + 5;
  float *p = randv(n, &s, -1, 1), *gr = randv(n, &s, -1, 1), *m = randv(n, &s, -0.1, 0.1), *v = randv(n, &s, 0, 0.01);
  float *po = calloc(n, 4), *mo = calloc(n, 4), *vo = calloc(n, 4);
  float sc[7] = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1 - 0.9f * 0.9f, 1 - 0.95f * 0.95f};
  double *ref = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) {
    double m2 = 0.9 * m[i] + 0.1 * gr[i], v2 = 0.95 * v[i] + 0.05 * (double)gr[i] * gr[i];
    double upd = (m2 / sc[5]) / (sqrt(v2 / sc[6]) + 1e-8);
    ref[i] = p[i] - 1e-3 * (upd + 0.1 * p[i]);
  }
  binding bd[] = {{"params", p}, {"grads", gr}, {"exp_avg", m}, {"exp_avg_sq", v},
                  {"params_out", po}, {"exp_avg_out", mo}, {"exp_avg_sq_out", vo}};
  run(k, bd, 7, 1, (int64_t)n, sc);
  double e = maxrel(po, ref, n);
  CU_ASSERT(e <= 1e-5);
  free(p), free(gr), free(m), free(v), free(po), free(mo), free(vo), free(ref);
  arena_free(a);
  ir_graph_free(g);
}

/* the optimised IR text reloads into a JIT and computes the same bits. */
static void reload_ir(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x"), b = vec(g, "b"), h = act(g, "h"), y = act(g, "y");
  op(g, IR_OP_BIAS_ADD, x, b, -1, h, NULL);
  ir_attrs at = {0};
  at.tanh = true;
  op(g, IR_OP_GELU, h, -1, -1, y, &at);
  arena *a = arena_new();
  cg_kernel *k = only_kernel(cg_fuse(g, IR_F32, a));
  char why[512];
  cg_llvm *m = cg_llvm_new("t");
  CU_ASSERT_FATAL(cg_llvm_add(m, k, why, sizeof why) && cg_llvm_optimize(m, why, sizeof why));
  char *text = cg_llvm_text(m);
  cg_llvm_free(m);
  const char *texts[1] = {text};
  cg_jit *j1 = cg_jit_from_ir(texts, 1, why, sizeof why), *j2 = cg_jit_compile(&k, 1, why, sizeof why);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j2);
  unsigned s = 3;
  float *xv = randv(3 * 101, &s, -4, 4), *bv = randv(101, &s, -1, 1), *y1 = calloc(303, 4), *y2 = calloc(303, 4);
  int64_t dims[2] = {3, 101};
  void *b1[3] = {xv, bv, y1}, *b2[3] = {xv, bv, y2};
  cg_jit_kernel(j1, k->name)(b1, dims, NULL);
  cg_jit_kernel(j2, k->name)(b2, dims, NULL);
  CU_ASSERT(memcmp(y1, y2, 303 * 4) == 0);
  const char *bad[1] = {"this is not LLVM IR"};
  CU_ASSERT_PTR_NULL(cg_jit_from_ir(bad, 1, why, sizeof why));
  cg_jit_free(j1), cg_jit_free(j2);
  free(text), free(xv), free(bv), free(y1), free(y2);
  arena_free(a);
  ir_graph_free(g);
}

/* a chain with more external inputs than a kernel has buffer slots is split
 * into one kernel per op instead of failing. */
static void too_large(void) {
  ir_graph *g = ir_graph_new("t");
  ir_ref x = act(g, "x0");
  for (int i = 0; i < 40; i++) {
    ir_ref y = act(g, arena_printf(g->arena, "y%d", i));
    op(g, IR_OP_ADD, x, act(g, arena_printf(g->arena, "in%d", i)), -1, y, NULL);
    x = y;
  }
  arena *a = arena_new();
  cg_fusion *f = cg_fuse(g, IR_F32, a);
  CU_ASSERT_EQUAL(f->nkernels, 40);
  char why[256];
  for (int i = 0; i < f->n; i++) CU_ASSERT(f->g[i].k && cg_k_check(f->g[i].k, why, sizeof why));
  arena_free(a);
  ir_graph_free(g);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("cg_kernels", NULL, NULL);
  CU_ADD(s, bias_gelu_tanh);
  CU_ADD(s, bias_gelu_erf);
  CU_ADD(s, bias_dropout_residual);
  CU_ADD(s, layer_norm);
  CU_ADD(s, rms_norm);
  CU_ADD(s, softmax_plain);
  CU_ADD(s, softmax_causal);
  CU_ADD(s, cross_entropy);
  CU_ADD(s, gelu_grad);
  CU_ADD(s, bias_tanh);
  CU_ADD(s, tanh_grad);
  CU_ADD(s, softmax_grad);
  CU_ADD(s, swiglu);
  CU_ADD(s, adamw);
  CU_ADD(s, reload_ir);
  CU_ADD(s, too_large);
}
