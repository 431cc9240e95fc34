/* test_cg_attn.c — the CPU (LLVM, ORC JIT) varlen attention kernels, forward
 * and backward, against a naive reference that materialises the S x S score
 * matrix per (sequence, head), in double precision. Packed batches with
 * awkward lengths (1, 7, 33, 64, 5), fused qkv rows (strided q/k/v), grouped
 * query heads (4 query heads on 2 kv heads), causal and not. Limit 1e-4 on
 * |got - ref| / (|ref| + 1e-2). */
#include "cu.h"
#include "codegen/cg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { HQ = 4, HK = 2 };
static const int lens[] = {1, 7, 33, 64, 5};
#define NSEQ 5

static double rnd(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return ((*s >> 8) & 0xffffff) / 16777216.0 - 0.5;
}

typedef struct {
  int D, T, stride;
  int cu[NSEQ + 1];
  float *qkv, *out, *lse, *dout, *dqkv;
  double *rout, *rlse, *rdqkv;
} prob;

static int qoff(const prob *p, int t, int h) { return t * p->stride + h * p->D; }
static int koff(const prob *p, int t, int h) { return t * p->stride + HQ * p->D + h * p->D; }
static int voff(const prob *p, int t, int h) { return t * p->stride + (HQ + HK) * p->D + h * p->D; }

/* reference: naive attention with the S x S matrix, forward and backward. */
static void reference(prob *p, bool causal, float scale) {
  int D = p->D;
  memset(p->rdqkv, 0, sizeof(double) * (size_t)(p->T * p->stride));
  for (int s = 0; s < NSEQ; s++) {
    int st = p->cu[s], n = p->cu[s + 1] - st;
    double *P = calloc((size_t)(n * n), sizeof(double)), *dS = calloc((size_t)(n * n), sizeof(double));
    for (int h = 0; h < HQ; h++) {
      int hk = h / (HQ / HK);
      for (int i = 0; i < n; i++) {
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
          double v = 0;
          for (int d = 0; d < D; d++) v += (double)p->qkv[qoff(p, st + i, h) + d] * p->qkv[koff(p, st + j, hk) + d];
          P[i * n + j] = (causal && j > i) ? -INFINITY : v * scale;
          m = fmax(m, P[i * n + j]);
        }
        for (int j = 0; j < n; j++) sum += (P[i * n + j] = exp(P[i * n + j] - m));
        for (int j = 0; j < n; j++) P[i * n + j] /= sum;
        p->rlse[h * p->T + st + i] = m + log(sum);
        for (int d = 0; d < D; d++) {
          double o = 0;
          for (int j = 0; j < n; j++) o += P[i * n + j] * p->qkv[voff(p, st + j, hk) + d];
          p->rout[(st + i) * HQ * D + h * D + d] = o;
        }
      }
      for (int i = 0; i < n; i++) { /* backward */
        double delta = 0;
        for (int d = 0; d < D; d++) delta += (double)p->dout[(st + i) * HQ * D + h * D + d] * p->out[(st + i) * HQ * D + h * D + d];
        for (int j = 0; j < n; j++) {
          double dp = 0;
          for (int d = 0; d < D; d++) dp += (double)p->dout[(st + i) * HQ * D + h * D + d] * p->qkv[voff(p, st + j, hk) + d];
          dS[i * n + j] = P[i * n + j] * (dp - delta) * scale;
        }
      }
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
          for (int d = 0; d < D; d++) {
            p->rdqkv[qoff(p, st + i, h) + d] += dS[i * n + j] * p->qkv[koff(p, st + j, hk) + d];
            p->rdqkv[koff(p, st + j, hk) + d] += dS[i * n + j] * p->qkv[qoff(p, st + i, h) + d];
            p->rdqkv[voff(p, st + j, hk) + d] += P[i * n + j] * p->dout[(st + i) * HQ * D + h * D + d];
          }
    }
    free(P);
    free(dS);
  }
}

static double maxrel(const float *got, const double *ref, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - ref[i]) / (fabs(ref[i]) + 1e-2);
    if (!(e <= m)) m = e;
  }
  return m;
}

static void attn_case(int D, bool causal) {
  prob p;
  memset(&p, 0, sizeof p);
  p.D = D;
  for (int s = 0; s < NSEQ; s++) p.cu[s + 1] = p.cu[s] + lens[s];
  p.T = p.cu[NSEQ];
  p.stride = (HQ + 2 * HK) * D;
  size_t nq = (size_t)(p.T * p.stride), no = (size_t)(p.T * HQ * D);
  unsigned seed = 42u + (unsigned)D;
  p.qkv = malloc(nq * 4), p.dqkv = calloc(nq, 4), p.out = calloc(no, 4), p.dout = malloc(no * 4);
  p.lse = calloc((size_t)(HQ * p.T), 4);
  p.rout = calloc(no, 8), p.rlse = calloc((size_t)(HQ * p.T), 8), p.rdqkv = calloc(nq, 8);
  for (size_t i = 0; i < nq; i++) p.qkv[i] = (float)(4 * rnd(&seed));
  for (size_t i = 0; i < no; i++) p.dout[i] = (float)rnd(&seed);
  cg_attn at = {HQ, HK, D, causal, (float)(1 / sqrt(D)), IR_F32};
  arena *a = arena_new();
  cg_kernel *ks[2] = {cg_k_attn(a, "attn_fwd", CG_K_ATTN_FWD, at), cg_k_attn(a, "attn_bwd", CG_K_ATTN_BWD, at)};
  char why[512];
  cg_jit *j = cg_jit_compile(ks, 2, why, sizeof why);
  if (!j) fprintf(stderr, "%s\n", why);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  cg_kfn fwd = cg_jit_kernel(j, "attn_fwd"), bwd = cg_jit_kernel(j, "attn_bwd");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fwd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(bwd);
  int64_t dims[5] = {p.T, NSEQ, p.stride, p.stride, HQ * D};
  void *fb[6] = {p.qkv, p.qkv + HQ * D, p.qkv + (HQ + HK) * D, p.out, p.lse, p.cu};
  fwd(fb, dims, NULL);
  reference(&p, causal, at.scale);
  double eo = maxrel(p.out, p.rout, no), el = maxrel(p.lse, p.rlse, (size_t)(HQ * p.T));
  memset(p.dqkv, 0xff, nq * 4); /* the kernel must clear what it accumulates into */
  void *bb[10] = {p.qkv, p.qkv + HQ * D, p.qkv + (HQ + HK) * D, p.out, p.dout, p.lse,
                  p.dqkv, p.dqkv + HQ * D, p.dqkv + (HQ + HK) * D, p.cu};
  bwd(bb, dims, NULL);
  double eg = maxrel(p.dqkv, p.rdqkv, nq);
  if (!(eo <= 1e-4 && el <= 1e-4 && eg <= 1e-4))
    fprintf(stderr, "attn D=%d causal=%d: out %g lse %g grad %g\n", D, causal, eo, el, eg);
  CU_ASSERT(eo <= 1e-4);
  CU_ASSERT(el <= 1e-4);
  CU_ASSERT(eg <= 1e-4);
  cg_jit_free(j);
  arena_free(a);
  free(p.qkv), free(p.dqkv), free(p.out), free(p.dout), free(p.lse), free(p.rout), free(p.rlse), free(p.rdqkv);
}

static void attn_causal_d16(void) { attn_case(16, true); }
static void attn_full_d64(void) { attn_case(64, false); }
static void attn_causal_d64(void) { attn_case(64, true); }

void cu_register(void) {
  CU_pSuite s = CU_add_suite("cg_attn", NULL, NULL);
  CU_ADD(s, attn_causal_d16);
  CU_ADD(s, attn_full_d64);
  CU_ADD(s, attn_causal_d64);
}
