/* attn_cuda.c — FlashAttention-style attention over packed variable-length
 * sequences, as CUDA C.
 *
 * Layout: tokens of all sequences are packed back to back (no padding);
 * cu[s] .. cu[s+1] are the tokens of sequence s. q is [T, heads*D] with row
 * stride q_stride elements, k and v are [T, kv_heads*D] with stride kv_stride
 * (a fused qkv buffer passes q = qkv, k = qkv + H, v = qkv + H + Hkv*D and the
 * same stride), out/dout have stride o_stride. Grouped-query attention: query
 * head h reads kv head h / (heads / kv_heads). lse is [heads, T] in f32.
 *
 * Forward (NAME): grid (ceil(maxlen/64), heads, nseq), 64 threads, one query
 * row per thread; K/V tiles of 16 rows are staged in shared memory and the
 * softmax is computed online (running max and sum, exp2 of pre-scaled
 * scores), so no S x S matrix exists. Causal blocks stop at their last row.
 * Backward (FlashAttention-2 split): NAME_pre computes delta = rowsum(dO * O);
 * NAME_dkdv (grid over key tiles of cg_attn_bk(D), kv heads, sequences) keeps dK, dV of
 * one key per thread in registers and streams query tiles of the whole
 * query-head group; NAME_dq (like the forward) streams key tiles and keeps
 * dQ of one query per thread. P is recomputed from lse; nothing is S x S.
 * All arithmetic is f32 FMA (no tensor cores); dtype f32, f16 or bf16. */
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>

static const char *common =
    "#define SB_INF __int_as_float(0x7f800000)\n"
    "static __device__ __forceinline__ float sb_ld(const unsigned short *p, long long i) {\n"
    "#if SB_DT == 2\n  return __uint_as_float(((unsigned)p[i]) << 16);\n"
    "#else\n  float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(p[i])); return f;\n#endif\n}\n"
    "static __device__ __forceinline__ float sb_ld(const float *p, long long i) { return p[i]; }\n"
    "static __device__ __forceinline__ void sb_st(float *p, long long i, float v) { p[i] = v; }\n"
    "static __device__ __forceinline__ void sb_st(unsigned short *p, long long i, float v) {\n"
    "#if SB_DT == 2\n  unsigned u = __float_as_uint(v); u += 0x7fffu + ((u >> 16) & 1u); p[i] = (unsigned short)(u >> 16);\n"
    "#else\n  unsigned short h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(v)); p[i] = h;\n#endif\n}\n"
    "#define ARGS const T *q, const T *k, const T *v, T *o, float *lse, const int *cu, long long ntok, \\\n"
    "  long long q_stride, long long kv_stride, long long o_stride\n"
    "#define BARGS const T *q, const T *k, const T *v, const T *o, const T *dout, const float *lse, float *delta, \\\n"
    "  T *dq, T *dk, T *dv, const int *cu, long long ntok, long long q_stride, long long kv_stride, long long o_stride\n";

static const char *fwd =
    "extern \"C\" __global__ void __launch_bounds__(BR) NAME(ARGS) {\n"
    "  const int s = blockIdx.z, h = blockIdx.y, hk = h / (HEADS / KVH);\n"
    "  const int start = cu[s], len = cu[s + 1] - start, q0 = blockIdx.x * BR;\n"
    "  if (q0 >= len) return;\n"
    "  const int qi = q0 + threadIdx.x;\n"
    "  const bool active = qi < len;\n"
    "  __shared__ float ks[BC][D], vs[BC][D];\n"
    "  float qr[D], acc[D], m = -SB_INF, l = 0.0f;\n"
    "  const float qs = SCALE * 1.4426950408889634f; /* scores in log2 units */\n"
    "#pragma unroll\n  for (int d = 0; d < D; d++) {\n"
    "    qr[d] = active ? sb_ld(q, (long long)(start + qi) * q_stride + h * D + d) * qs : 0.0f; acc[d] = 0.0f; }\n"
    "  const int kend = CAUSAL ? min(len, q0 + BR) : len;\n"
    "  for (int kb = 0; kb < kend; kb += BC) {\n"
    "    for (int x = threadIdx.x; x < BC * D; x += BR) {\n"
    "      int j = x / D, d = x % D, kj = kb + j;\n"
    "      long long off = (long long)(start + kj) * kv_stride + hk * D + d;\n"
    "      ks[j][d] = kj < len ? sb_ld(k, off) : 0.0f; vs[j][d] = kj < len ? sb_ld(v, off) : 0.0f; }\n"
    "    __syncthreads();\n"
    "    if (active) {\n"
    "      float sc[BC], mt = m;\n"
    "#pragma unroll\n      for (int j = 0; j < BC; j++) {\n"
    "        float dot = 0.0f;\n#pragma unroll\n        for (int d = 0; d < D; d++) dot = fmaf(qr[d], ks[j][d], dot);\n"
    "        int kj = kb + j; bool ok = kj < len && (!CAUSAL || kj <= qi);\n"
    "        sc[j] = ok ? dot : -SB_INF; mt = fmaxf(mt, sc[j]); }\n"
    "      if (mt > -SB_INF) {\n"
    "        float corr = exp2f(m - mt); l *= corr;\n"
    "#pragma unroll\n        for (int d = 0; d < D; d++) acc[d] *= corr;\n"
    "        for (int j = 0; j < BC; j++) {\n"
    "          float p = exp2f(sc[j] - mt); l += p;\n"
    "#pragma unroll\n          for (int d = 0; d < D; d++) acc[d] = fmaf(p, vs[j][d], acc[d]); }\n"
    "        m = mt; }\n"
    "    }\n"
    "    __syncthreads();\n"
    "  }\n"
    "  if (!active) return;\n"
    "  float inv = l > 0.0f ? 1.0f / l : 0.0f;\n"
    "#pragma unroll\n  for (int d = 0; d < D; d++) sb_st(o, (long long)(start + qi) * o_stride + h * D + d, acc[d] * inv);\n"
    "  lse[(long long)h * ntok + start + qi] = (m + log2f(l)) * 0.6931471805599453f;\n"
    "}\n";

static const char *bwd =
    "extern \"C\" __global__ void NAME_pre(BARGS) {\n"
    "  long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; int h = blockIdx.y;\n"
    "  if (t >= ntok) return;\n"
    "  float s = 0.0f;\n"
    "  for (int d = 0; d < D; d++) s += sb_ld(dout, t * o_stride + h * D + d) * sb_ld(o, t * o_stride + h * D + d);\n"
    "  delta[(long long)h * ntok + t] = s;\n"
    "}\n"
        "extern \"C\" __global__ void __launch_bounds__(BK) NAME_dkdv(BARGS) {\n"
    "  const int s = blockIdx.z, hk = blockIdx.y, G = HEADS / KVH;\n"
    "  const int start = cu[s], len = cu[s + 1] - start, k0 = blockIdx.x * BK;\n"
    "  if (k0 >= len) return;\n"
    "  const int kj = k0 + threadIdx.x; const bool active = kj < len;\n"
    "  __shared__ float kS[BK][D + 1], vS[BK][D + 1], qS[BQ][D], dS[BQ][D], lS[BQ], deS[BQ];\n"
    "  float dkr[D], dvr[D];\n"
    "  for (int d = 0; d < D; d++) {\n"
    "    long long off = (long long)(start + kj) * kv_stride + hk * D + d;\n"
    "    kS[threadIdx.x][d] = active ? sb_ld(k, off) : 0.0f; vS[threadIdx.x][d] = active ? sb_ld(v, off) : 0.0f;\n"
    "    dkr[d] = 0.0f; dvr[d] = 0.0f; }\n"
    "  for (int g = 0; g < G; g++) {\n"
    "    const int h = hk * G + g;\n"
    "    for (int qb = CAUSAL ? k0 / BQ * BQ : 0; qb < len; qb += BQ) {\n"
    "      __syncthreads();\n"
    "      for (int x = threadIdx.x; x < BQ * D; x += BK) {\n"
    "        int i = x / D, d = x % D, qi = qb + i;\n"
    "        qS[i][d] = qi < len ? sb_ld(q, (long long)(start + qi) * q_stride + h * D + d) : 0.0f;\n"
    "        dS[i][d] = qi < len ? sb_ld(dout, (long long)(start + qi) * o_stride + h * D + d) : 0.0f; }\n"
    "      if (threadIdx.x < BQ) { int qi = qb + threadIdx.x;\n"
    "        lS[threadIdx.x] = qi < len ? lse[(long long)h * ntok + start + qi] : 0.0f;\n"
    "        deS[threadIdx.x] = qi < len ? delta[(long long)h * ntok + start + qi] : 0.0f; }\n"
    "      __syncthreads();\n"
    "      if (!active) continue;\n"
    "      for (int i = 0; i < BQ; i++) {\n"
    "        int qi = qb + i;\n"
    "        if (qi >= len || (CAUSAL && kj > qi)) continue;\n"
    "        float sdot = 0.0f, dp = 0.0f;\n"
    "#pragma unroll\n        for (int d = 0; d < D; d++) { sdot = fmaf(qS[i][d], kS[threadIdx.x][d], sdot); dp = fmaf(dS[i][d], vS[threadIdx.x][d], dp); }\n"
    "        float p = expf(sdot * SCALE - lS[i]);\n"
    "        float ds = p * (dp - deS[i]) * SCALE;\n"
    "#pragma unroll\n        for (int d = 0; d < D; d++) { dvr[d] = fmaf(p, dS[i][d], dvr[d]); dkr[d] = fmaf(ds, qS[i][d], dkr[d]); }\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "  if (!active) return;\n"
    "  for (int d = 0; d < D; d++) {\n"
    "    long long off = (long long)(start + kj) * kv_stride + hk * D + d;\n"
    "    sb_st(dk, off, dkr[d]); sb_st(dv, off, dvr[d]); }\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(BR) NAME_dq(BARGS) {\n"
    "  const int s = blockIdx.z, h = blockIdx.y, hk = h / (HEADS / KVH);\n"
    "  const int start = cu[s], len = cu[s + 1] - start, q0 = blockIdx.x * BR;\n"
    "  if (q0 >= len) return;\n"
    "  const int qi = q0 + threadIdx.x; const bool active = qi < len;\n"
    "  __shared__ float ks[BC][D], vs[BC][D];\n"
    "  float qr[D], dor[D], dqr[D], lq = 0.0f, de = 0.0f;\n"
    "  for (int d = 0; d < D; d++) {\n"
    "    qr[d] = active ? sb_ld(q, (long long)(start + qi) * q_stride + h * D + d) : 0.0f;\n"
    "    dor[d] = active ? sb_ld(dout, (long long)(start + qi) * o_stride + h * D + d) : 0.0f; dqr[d] = 0.0f; }\n"
    "  if (active) { lq = lse[(long long)h * ntok + start + qi]; de = delta[(long long)h * ntok + start + qi]; }\n"
    "  const int kend = CAUSAL ? min(len, q0 + BR) : len;\n"
    "  for (int kb = 0; kb < kend; kb += BC) {\n"
    "    for (int x = threadIdx.x; x < BC * D; x += BR) {\n"
    "      int j = x / D, d = x % D, kj = kb + j;\n"
    "      long long off = (long long)(start + kj) * kv_stride + hk * D + d;\n"
    "      ks[j][d] = kj < len ? sb_ld(k, off) : 0.0f; vs[j][d] = kj < len ? sb_ld(v, off) : 0.0f; }\n"
    "    __syncthreads();\n"
    "    if (active)\n"
    "      for (int j = 0; j < BC; j++) {\n"
    "        int kj = kb + j; if (kj >= len || (CAUSAL && kj > qi)) continue;\n"
    "        float sdot = 0.0f, dp = 0.0f;\n"
    "#pragma unroll\n        for (int d = 0; d < D; d++) { sdot = fmaf(qr[d], ks[j][d], sdot); dp = fmaf(dor[d], vs[j][d], dp); }\n"
    "        float p = expf(sdot * SCALE - lq), ds = p * (dp - de) * SCALE;\n"
    "#pragma unroll\n        for (int d = 0; d < D; d++) dqr[d] = fmaf(ds, ks[j][d], dqr[d]); }\n"
    "    __syncthreads();\n"
    "  }\n"
    "  if (!active) return;\n"
    "  for (int d = 0; d < D; d++) sb_st(dq, (long long)(start + qi) * q_stride + h * D + d, dqr[d]);\n"
    "}\n";

/* cg_attn_bk: keys per block (= threads) of the backward dK/dV kernel, so
 * its shared tiles stay under 48 KiB: 64 up to head_dim 64, then 32, 16. */
int cg_attn_bk(int head_dim) { return head_dim <= 64 ? 64 : head_dim <= 128 ? 32 : 16; }

/* subst: copy s replacing every "NAME" with name. */
static void subst(FILE *f, const char *s, const char *name) {
  for (const char *p; (p = strstr(s, "NAME")); s = p + 4) {
    fwrite(s, 1, (size_t)(p - s), f);
    fputs(name, f);
  }
  fputs(s, f);
}

char *cg_attn_cuda(const cg_kernel *k) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  const cg_attn *a = &k->attn;
  int dt = a->dtype == IR_BF16 ? 2 : a->dtype == IR_F16 ? 1 : 0;
  fprintf(f, "// %s: %s, varlen FlashAttention-style (generated by sbpc)\n", k->name, k->ops);
  fprintf(f, "#define D %d\n#define HEADS %d\n#define KVH %d\n#define CAUSAL %d\n#define SCALE %.9gf\n",
          a->head_dim, a->heads, a->kv_heads > 0 ? a->kv_heads : a->heads, a->causal ? 1 : 0, (double)a->scale);
  fprintf(f, "#define BR 64\n#define BC 16\n#define SB_DT %d\ntypedef %s T;\n", dt, dt ? "unsigned short" : "float");
  fprintf(f, "#define BK %d\n#define BQ %d\n", cg_attn_bk(a->head_dim), a->head_dim <= 64 ? 16 : a->head_dim <= 128 ? 8 : 4);
  fputs(common, f);
  subst(f, k->kind == CG_K_ATTN_FWD ? fwd : bwd, k->name);
  fclose(f);
  return buf;
}
