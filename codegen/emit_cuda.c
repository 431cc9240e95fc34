/* emit_cuda.c — kernel IR -> CUDA C source (for NVRTC).
 *
 * Signature of every row kernel (the runtime launches it with cuLaunchKernel):
 *   extern "C" __global__ void NAME(T0 *b0, ..., long long rows, long long cols,
 *                                   float s0, ...)
 * with T = float (f32), unsigned short (f16/bf16 bits) or int (i32).
 *
 * Two shapes of kernel:
 *  - flat (no row reductions): a grid-stride loop over rows*cols elements;
 *    when cols % 4 == 0 and every pointer is 16-byte aligned, each thread
 *    handles 4 consecutive elements with one float4 (or ushort4) load/store
 *    per buffer.
 *  - row (reductions): one block per row (grid-stride over rows); each stage
 *    is a block-strided loop over the columns (vectorised the same way); row
 *    sums and maxima are reduced with warp shuffles (__shfl_xor_sync) and one
 *    shared-memory exchange between the warps; every thread then knows the
 *    row value. Row-value stores are made by thread 0 (atomicAdd for
 *    accumulators).
 * Arithmetic is f32; f16 and bf16 are converted with cvt instructions and
 * bit operations, so no CUDA header is needed. Random numbers are the same
 * counter hash as the LLVM emitter, so CPU and GPU dropout masks agree. */
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>

/* the f32 <-> bf16/f16 helpers (cg.h; ops_cuda.c's kernels use them too),
 * then the rest of the row kernels' prelude */
const char cg_cuda_convert[] =
    "#define SB_INF __int_as_float(0x7f800000)\n"
    "static __device__ __forceinline__ float sb_bf2f(unsigned short h) { return __uint_as_float(((unsigned)h) << 16); }\n"
    "static __device__ __forceinline__ unsigned short sb_f2bf(float f) {\n"
    "  unsigned u = __float_as_uint(f); u += 0x7fffu + ((u >> 16) & 1u); return (unsigned short)(u >> 16); }\n"
    "static __device__ __forceinline__ float sb_h2f(unsigned short h) {\n"
    "  float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h)); return f; }\n"
    "static __device__ __forceinline__ unsigned short sb_f2h(float f) {\n"
    "  unsigned short h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f)); return h; }\n";
static const char *prelude =
    "static __device__ __forceinline__ float sb_rand(float seed, unsigned idx) {\n"
    "  unsigned x = (idx * 0x9E3779B9u) ^ __float_as_uint(seed);\n"
    "  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;\n"
    "  return (float)(x >> 8) * (1.0f / 16777216.0f); }\n"
    "static __device__ __forceinline__ float sb_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }\n"
    "static __device__ __forceinline__ float sb_bsum(float v, float *sh) {\n"
    "  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
    "  __syncthreads(); if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v; __syncthreads();\n"
    "  float r = 0.0f; for (int i = 0; i < (int)(blockDim.x >> 5); i++) r += sh[i]; return r; }\n"
    "static __device__ __forceinline__ float sb_bmax(float v, float *sh) {\n"
    "  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));\n"
    "  __syncthreads(); if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v; __syncthreads();\n"
    "  float r = -SB_INF; for (int i = 0; i < (int)(blockDim.x >> 5); i++) r = fmaxf(r, sh[i]); return r; }\n";

typedef struct {
  FILE *f;
  const cg_kernel *k;
  bool flat;       /* flat kernel: row values are computed per element */
  bool vec;        /* inside the 4-wide path: loads come from x<b>[j] */
  int stage;       /* pass being emitted */
  bool done[CG_MAXNODES];
} ce;

static bool is_red(const cg_node *n) { return n->op == CG_RSUM || n->op == CG_RMAX; }

static const char *ctype(ir_dtype t) {
  return t == IR_F16 || t == IR_BF16 ? "unsigned short" : t == IR_I32 ? "int" : t == IR_I64 ? "long long" : "float";
}

static void conv_in(FILE *f, ir_dtype t, const char *x) {
  if (t == IR_BF16) fprintf(f, "sb_bf2f(%s)", x);
  else if (t == IR_F16) fprintf(f, "sb_h2f(%s)", x);
  else if (t == IR_F32) fprintf(f, "%s", x);
  else fprintf(f, "(float)(%s)", x);
}

static const char *conv_out(ir_dtype t) {
  return t == IR_BF16 ? "sb_f2bf" : t == IR_F16 ? "sb_f2h" : t == IR_I32 ? "(int)" : "";
}

static char vname(const ce *e, int i) { return e->k->node[i].row && !e->flat ? 'r' : 'e'; }

static void load_expr(ce *e, int bi) {
  const cg_buf *b = &e->k->buf[bi];
  char x[64];
  if (e->vec && (b->shape == CG_SH_ROWS || b->shape == CG_SH_COLS)) {
    fprintf(e->f, "x%d[j]", bi);
    return;
  }
  const char *idx = b->shape == CG_SH_ROWS ? "r * cols + c" : b->shape == CG_SH_COLS ? "c" : b->shape == CG_SH_ROW1 ? "r" : "0";
  snprintf(x, sizeof x, "b%d[%s]", bi, idx);
  conv_in(e->f, (ir_dtype)b->dtype, x);
}

/* expr: the C expression of node i (its arguments are already named). */
static void expr(ce *e, int i) {
  const cg_node *n = &e->k->node[i];
  FILE *f = e->f;
  char A[16] = "", B[16] = "", C[16] = "";
  if (n->a >= 0) snprintf(A, sizeof A, "%c%d", vname(e, n->a), n->a);
  if (n->b >= 0) snprintf(B, sizeof B, "%c%d", vname(e, n->b), n->b);
  if (n->c >= 0) snprintf(C, sizeof C, "%c%d", vname(e, n->c), n->c);
  int rb = e->flat || n->row ? -1 : cg_k_reload(e->k, i, e->stage);
  if (rb >= 0) { /* stored in an earlier pass: re-read it */
    load_expr(e, rb);
    return;
  }
  switch ((cg_kop)n->op) {
  case CG_LOAD: load_expr(e, n->buf); break;
  case CG_SCALAR: fprintf(f, "s%d", n->buf); break;
  case CG_CONST:
    if (n->imm != n->imm) fprintf(f, "__int_as_float(0x7fc00000)");
    else if (n->imm > 3e38f || n->imm < -3e38f) fprintf(f, "%sSB_INF", n->imm < 0 ? "-" : "");
    else fprintf(f, "%.9ef", (double)n->imm);
    break;
  case CG_COLIDX: fprintf(f, "(float)c"); break;
  case CG_ROWMOD: fprintf(f, "(float)(r %% cols)"); break;
  case CG_NROWS: fprintf(f, "(float)rows"); break;
  case CG_NCOLS: fprintf(f, "(float)cols"); break;
  case CG_RAND: fprintf(f, "sb_rand(%s, (unsigned)(r * cols + c))", A); break;
  case CG_NEG: fprintf(f, "-%s", A); break;
  case CG_ABS: fprintf(f, "fabsf(%s)", A); break;
  case CG_EXP: fprintf(f, "expf(%s)", A); break;
  case CG_LOG: fprintf(f, "logf(%s)", A); break;
  case CG_TANH: fprintf(f, "tanhf(%s)", A); break;
  case CG_ERF: fprintf(f, "erff(%s)", A); break;
  case CG_ERFC: fprintf(f, "erfcf(%s)", A); break;
  case CG_SQRT: fprintf(f, "sqrtf(%s)", A); break;
  case CG_RSQRT: fprintf(f, "rsqrtf(%s)", A); break;
  case CG_SIGMOID: fprintf(f, "sb_sigmoid(%s)", A); break;
  case CG_ADD: fprintf(f, "%s + %s", A, B); break;
  case CG_SUB: fprintf(f, "%s - %s", A, B); break;
  case CG_MUL: fprintf(f, "%s * %s", A, B); break;
  case CG_DIV: fprintf(f, "%s / %s", A, B); break;
  case CG_MAX: fprintf(f, "fmaxf(%s, %s)", A, B); break;
  case CG_MIN: fprintf(f, "fminf(%s, %s)", A, B); break;
  case CG_LT: fprintf(f, "(%s < %s ? 1.0f : 0.0f)", A, B); break;
  case CG_LE: fprintf(f, "(%s <= %s ? 1.0f : 0.0f)", A, B); break;
  case CG_EQ: fprintf(f, "(%s == %s ? 1.0f : 0.0f)", A, B); break;
  case CG_SELECT: fprintf(f, "(%s != 0.0f ? %s : %s)", A, B, C); break;
  case CG_RSUM: case CG_RMAX: case CG_NKOPS: break;
  }
}

/* need: mark element nodes reachable from node i (not through row values,
 * unless the kernel is flat). */
static void need(ce *e, int i, bool *mark) {
  const cg_node *n = &e->k->node[i];
  if (mark[i] || (n->row && !e->flat)) return;
  mark[i] = true;
  if (!e->flat && cg_k_reload(e->k, i, e->stage) >= 0) return; /* re-read: no arguments needed */
  int a[3] = {n->a, n->b, n->c};
  for (int j = 0; j < cg_kop_nargs[n->op]; j++) need(e, a[j], mark);
}

static void emit_nodes(ce *e, const bool *mark, const char *ind) {
  for (int i = 0; i < e->k->nnode; i++)
    if (mark[i]) {
      fprintf(e->f, "%sfloat e%d = ", ind, i);
      expr(e, i);
      fprintf(e->f, ";\n");
    }
}

/* stage_marks: element nodes stage t needs; which buffers it loads/stores. */
static void stage_marks(ce *e, int t, bool *mark, bool *ld, bool *st) {
  const cg_kernel *k = e->k;
  memset(mark, 0, sizeof(bool) * CG_MAXNODES);
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1) need(e, k->node[i].a, mark);
  for (int s = 0; s < k->nstore; s++)
    if (k->store[s].stage == t && (e->flat || !k->node[k->store[s].node].row)) {
      need(e, k->store[s].node, mark);
      st[k->store[s].buf] = true;
    }
  for (int i = 0; i < k->nnode; i++) {
    if (!mark[i]) continue;
    int rb = e->flat ? -1 : cg_k_reload(k, i, t);
    if (rb >= 0) ld[rb] = true;
    else if (k->node[i].op == CG_LOAD) {
      int sh = k->buf[k->node[i].buf].shape;
      if (sh == CG_SH_ROWS || sh == CG_SH_COLS) ld[k->node[i].buf] = true;
    }
  }
}

static void body_tail(ce *e, int t, const char *ind) {
  const cg_kernel *k = e->k;
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1)
    {
      if (k->node[i].op == CG_RMAX) fprintf(e->f, "%sa%d = fmaxf(a%d, e%d);\n", ind, i, i, k->node[i].a);
      else fprintf(e->f, "%sa%d += e%d;\n", ind, i, k->node[i].a);
    }
  for (int s = 0; s < k->nstore; s++) {
    const cg_store *st = &k->store[s];
    if (st->stage != t || (!e->flat && k->node[st->node].row)) continue;
    const cg_buf *b = &k->buf[st->buf];
    if (e->vec) fprintf(e->f, "%sy%d[j] = e%d;\n", ind, st->buf, st->node);
    else fprintf(e->f, "%sb%d[r * cols + c] = %s(e%d);\n", ind, st->buf, conv_out((ir_dtype)b->dtype), st->node);
  }
}

static const char *vtype(ir_dtype t) { return t == IR_F32 ? "float4" : "ushort4"; }

/* vec_io: the 4-wide loads before and stores after the j loop. */
static void vec_loads(ce *e, const bool *ld, const char *ind) {
  for (int b = 0; b < e->k->nbuf; b++) {
    if (!ld[b]) continue;
    ir_dtype dt = (ir_dtype)e->k->buf[b].dtype;
    const char *off = e->k->buf[b].shape == CG_SH_ROWS ? "r * cols + c0" : "c0";
    fprintf(e->f, "%s%s t%d = *(const %s *)(b%d + %s); float x%d[4];\n", ind, vtype(dt), b, vtype(dt), b, off, b);
    const char *fld[4] = {"x", "y", "z", "w"};
    for (int j = 0; j < 4; j++) {
      char src[16];
      snprintf(src, sizeof src, "t%d.%s", b, fld[j]);
      fprintf(e->f, "%sx%d[%d] = ", ind, b, j);
      conv_in(e->f, dt, src);
      fprintf(e->f, ";\n");
    }
  }
}

static void vec_stores(ce *e, const bool *st, const char *ind) {
  for (int b = 0; b < e->k->nbuf; b++) {
    if (!st[b]) continue;
    ir_dtype dt = (ir_dtype)e->k->buf[b].dtype;
    const char *cv = conv_out(dt);
    fprintf(e->f, "%s{ %s t; t.x = %s(y%d[0]); t.y = %s(y%d[1]); t.z = %s(y%d[2]); t.w = %s(y%d[3]);", ind,
            vtype(dt), cv, b, cv, b, cv, b, cv, b);
    fprintf(e->f, " *(%s *)(b%d + r * cols + c0) = t; }\n", vtype(dt), b);
  }
}

/* loop: one pass over the columns (row kernels) or elements (flat). */
static void loop(ce *e, int t) {
  bool mark[CG_MAXNODES], ld[CG_MAXBUF] = {0}, st[CG_MAXBUF] = {0};
  FILE *f = e->f;
  e->stage = t;
  stage_marks(e, t, mark, ld, st);
  const char *start = e->flat ? "blockIdx.x * (long long)blockDim.x + threadIdx.x" : "threadIdx.x";
  const char *stride = e->flat ? "(long long)gridDim.x * blockDim.x" : "blockDim.x";
  const char *n = e->flat ? "rows * cols" : "cols";
  const char *rc = e->flat ? "long long r = i / cols; " : "";
  fprintf(f, "    if (vec) {\n      for (long long i = %s; i < %s / 4; i += %s) {\n", start, n, stride);
  fprintf(f, "        long long c0 = i * 4%s; %s\n", e->flat ? " % cols" : "", e->flat ? "long long r = i * 4 / cols;" : "");
  e->vec = true;
  vec_loads(e, ld, "        ");
  for (int b = 0; b < e->k->nbuf; b++)
    if (st[b]) fprintf(f, "        float y%d[4];\n", b);
  fprintf(f, "#pragma unroll\n        for (int j = 0; j < 4; j++) {\n          long long c = c0 + j; (void)c;\n");
  emit_nodes(e, mark, "          ");
  body_tail(e, t, "          ");
  fprintf(f, "        }\n");
  vec_stores(e, st, "        ");
  fprintf(f, "      }\n    } else {\n      for (long long i = %s; i < %s; i += %s) {\n", start, n, stride);
  fprintf(f, "        %slong long c = %s; (void)c;\n", rc, e->flat ? "i - r * cols" : "i");
  e->vec = false;
  emit_nodes(e, mark, "        ");
  body_tail(e, t, "        ");
  fprintf(f, "      }\n    }\n");
}

static void row_values(ce *e, int ready) {
  for (int i = 0; i < e->k->nnode; i++) {
    const cg_node *n = &e->k->node[i];
    if (!n->row || is_red(n) || n->ready != ready) continue;
    fprintf(e->f, "    float r%d = ", i);
    expr(e, i);
    fprintf(e->f, ";\n");
  }
}

static void row_body(ce *e) {
  const cg_kernel *k = e->k;
  FILE *f = e->f;
  fprintf(f, "  __shared__ float sh[32];\n");
  fprintf(f, "  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {\n");
  row_values(e, 0);
  for (int t = 0; t < k->nstages; t++) {
    for (int i = 0; i < k->nnode; i++)
      if (is_red(&k->node[i]) && k->node[i].ready == t + 1)
        fprintf(f, "    float a%d = %s;\n", i, k->node[i].op == CG_RMAX ? "-SB_INF" : "0.0f");
    loop(e, t);
    for (int i = 0; i < k->nnode; i++)
      if (is_red(&k->node[i]) && k->node[i].ready == t + 1)
        fprintf(f, "    float r%d = sb_b%s(a%d, sh);\n", i, k->node[i].op == CG_RMAX ? "max" : "sum", i);
    row_values(e, t + 1);
    for (int s = 0; s < k->nstore; s++) {
      const cg_store *st = &k->store[s];
      if (st->stage != t || !k->node[st->node].row) continue;
      const cg_buf *b = &k->buf[st->buf];
      if (b->role == CG_ACC) fprintf(f, "    if (threadIdx.x == 0) atomicAdd(&b%d[0], r%d);\n", st->buf, st->node);
      else fprintf(f, "    if (threadIdx.x == 0) b%d[%s] = %s(r%d);\n", st->buf, b->shape == CG_SH_ROW1 ? "r" : "0",
                   conv_out((ir_dtype)b->dtype), st->node);
    }
  }
  fprintf(f, "  }\n");
}

static bool is_flat(const cg_kernel *k) {
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i])) return false;
  for (int s = 0; s < k->nstore; s++)
    if (k->node[k->store[s].node].row) return false;
  return true;
}

static void signature(ce *e) {
  const cg_kernel *k = e->k;
  fprintf(e->f, "extern \"C\" __global__ void %s(", k->name);
  for (int i = 0; i < k->nbuf; i++)
    fprintf(e->f, "%s%s%s *b%d", i ? ", " : "", k->buf[i].role == CG_IN ? "const " : "", ctype((ir_dtype)k->buf[i].dtype), i);
  fprintf(e->f, "%slong long rows, long long cols", k->nbuf ? ", " : "");
  for (int i = 0; i < k->nscalar; i++) fprintf(e->f, ", float s%d", i);
  fprintf(e->f, ") {\n");
  /* the 4-wide path: cols % 4 == 0 and every row/col buffer 16-byte aligned */
  fprintf(e->f, "  bool vec = (cols %% 4) == 0");
  for (int i = 0; i < k->nbuf; i++)
    if (k->buf[i].shape == CG_SH_ROWS || k->buf[i].shape == CG_SH_COLS)
      fprintf(e->f, " && ((unsigned long long)b%d %% %d) == 0", i, k->buf[i].dtype == IR_F32 ? 16 : 8);
  fprintf(e->f, ";\n");
}

char *cg_emit_cuda(const cg_kernel *k) {
  if (k->kind != CG_K_ROW) return cg_attn_cuda(k);
  char *buf = NULL;
  size_t len = 0;
  ce e;
  memset(&e, 0, sizeof e);
  e.f = open_memstream(&buf, &len);
  if (!e.f) return NULL;
  e.k = k;
  e.flat = is_flat(k);
  fprintf(e.f, "// %s: %s (generated by sbpc)\n%s%s\n", k->name, k->ops, cg_cuda_convert, prelude);
  for (int i = 0; i < k->nbuf; i++)
    if (k->buf[i].dtype != IR_F32 && k->buf[i].dtype != IR_F16 && k->buf[i].dtype != IR_BF16 &&
        (k->buf[i].shape == CG_SH_ROWS || k->buf[i].shape == CG_SH_COLS))
      fprintf(e.f, "#error \"buffer %d: integer [rows,cols] buffers are not vectorisable\"\n", i);
  signature(&e);
  if (e.flat) {
    fprintf(e.f, "  {\n");
    loop(&e, 0);
    fprintf(e.f, "  }\n");
  } else {
    row_body(&e);
  }
  fprintf(e.f, "}\n");
  fclose(e.f);
  return buf;
}

void cg_cuda_launch(const cg_kernel *k, int64_t rows, int64_t cols, int64_t *grid, int *block) {
  if (k->kind != CG_K_ROW) { /* attention: see attn_cuda.c */
    *block = 64;
    *grid = rows > 0 ? rows : 1;
    return;
  }
  if (is_flat(k)) {
    int64_t n = rows * cols / 4 + 1;
    *block = 256;
    *grid = n / 256 + 1 < 65536 * 8 ? n / 256 + 1 : 65536 * 8;
    return;
  }
  int64_t per = (cols / 4 + 31) / 32 * 32;
  *block = per < 32 ? 32 : per > 1024 ? 1024 : (int)per;
  *grid = rows < (1 << 30) ? (rows > 0 ? rows : 1) : (1 << 30);
}
