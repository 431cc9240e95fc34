/* ops_cuda.c — CUDA C for the ops the kernel IR does not express, and the
 * GPU executor's own kernels (docs/gpu.md).
 *
 * cg_op_cuda writes one kernel for one op of a graph whose shapes are bound
 * (B and S of the local micro-batch): gathers (embedding, positions,
 * embedding_grad, select, select_grad), layout ops (transpose, split,
 * concat), sum_rows, layer_norm_grad and rms_norm_grad (their weight
 * gradients are column sums), rotary, dropout with the CPU runtime's mask
 * (runtime/kernels_cpu.c: splitmix64 of a per-launch base plus the element
 * index, so both executors drop the same elements), and broadcasting
 * elementwise ops (b[i % numel b]), and reshapes between two float dtypes
 * (a converting copy). Shapes are baked into the source as
 * constants; each buffer gets a load or store macro for its dtype (f32, bf16,
 * f16 bits, i32), arithmetic is f32 (the reductions of the norm gradients and
 * sum_rows, like the CPU kernels, in f64). One ABI for all of them:
 *   NAME(const void *a0, ..., void *b0, ..., long long tpi, unsigned long long key)
 * the op's inputs then its outputs, the rank's tp index (a vocabulary-split
 * table's or a split position table's first row), and the dropout base
 * (the runtime computes it exactly as kernels_cpu.c does). Outputs that are
 * accumulated with atomics (embedding_grad, the norm gradients' dw/db) must be
 * zeroed before the launch: *zero_out says which.
 *
 * cg_rt_cuda is one module of fixed kernels the executor launches around the
 * ops: gradient accumulation (acc += s * x), AdamW over a flat range with the
 * CPU's exact f64 formula (optionally writing the bf16/f16 working copy and
 * skipping itself when a loss-scaling overflow flag is set), the f32 -> 16-bit
 * casts of working copies, the finite check of fp16 loss scaling and an
 * in-place scale. */
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>

/* after cg_cuda_convert (emit_cuda.c) */
static const char *prelude =
    "#define GTID (blockIdx.x * (long long)blockDim.x + threadIdx.x)\n"
    "#define GSTRIDE ((long long)gridDim.x * blockDim.x)\n"
    "static __device__ __forceinline__ unsigned long long sb_mix(unsigned long long x) {\n"
    "  x += 0x9e3779b97f4a7c15ull; x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;\n"
    "  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull; return x ^ (x >> 31); }\n"
    "static __device__ __forceinline__ double sb_dsum(double v, double *sh) {\n"
    "  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
    "  __syncthreads(); if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v; __syncthreads();\n"
    "  double r = 0.0; for (int i = 0; i < (int)(blockDim.x >> 5); i++) r += sh[i]; return r; }\n";

/* ---- per-op kernels ------------------------------------------------------- */
typedef struct {
  FILE *f;
  const ir_graph *g;
  const ir_op *o;
} oc;

static int64_t dimv(const ir_graph *g, ir_ref t, int i) {
  const ir_tensor *x = &g->t[t];
  if (i < 0) i += x->rank;
  if (i < 0 || i >= x->rank) return 1;
  return ir_dim_eval(x->shape[i], g->bind_b, g->bind_s);
}

static const char *ctype(int dt) { return dt == IR_F16 || dt == IR_BF16 ? "unsigned short" : dt == IR_I32 ? "int" : "float"; }
static const char *cin(int dt) { return dt == IR_BF16 ? "sb_bf2f" : dt == IR_F16 ? "sb_h2f" : dt == IR_I32 ? "(float)" : ""; }
static const char *cout_(int dt) { return dt == IR_BF16 ? "sb_f2bf" : dt == IR_F16 ? "sb_f2h" : dt == IR_I32 ? "(int)" : ""; }

/* buffer macros: LA<i>(x) / SB<j>(x, v) load input i / store output j as f32;
 * NA<i> / NB<j> their element counts */
static void buffers(oc *c) {
  const ir_graph *g = c->g;
  for (int i = 0; i < c->o->nin; i++) {
    int dt = g->t[c->o->in[i]].dtype;
    fprintf(c->f, "#define LA%d(x) %s(((const %s *)a%d)[x])\n#define NA%d %lldLL\n", i, cin(dt), ctype(dt), i, i,
            (long long)ir_numel(g, c->o->in[i]));
  }
  for (int j = 0; j < c->o->nout; j++) {
    int dt = g->t[c->o->out[j]].dtype;
    fprintf(c->f, "#define SB%d(x, v) (((%s *)b%d)[x] = %s(v))\n#define NB%d %lldLL\n", j, ctype(dt), j, cout_(dt), j,
            (long long)ir_numel(g, c->o->out[j]));
  }
}

static void signature(oc *c, const char *name) {
  fprintf(c->f, "extern \"C\" __global__ void %s(", name);
  for (int i = 0; i < c->o->nin; i++) fprintf(c->f, "const void *a%d, ", i);
  for (int j = 0; j < c->o->nout; j++) fprintf(c->f, "void *b%d, ", j);
  fprintf(c->f, "long long tpi, unsigned long long key) {\n");
}

/* the flat launch: a grid-stride loop over n elements */
static void flat(int64_t n, int64_t *grid, int *block) {
  *block = 256;
  int64_t b = (n + 255) / 256;
  *grid = b < 1 ? 1 : b > 65536 ? 65536 : b;
}

static bool split0(const ir_ndsbp *s, int axis) { return s->n == 1 && s->a[0].kind == SBP_S && s->a[0].axis == axis; }

static bool k_embedding(oc *c, int64_t *grid, int *block) {
  const ir_op *o = c->o;
  int64_t V = dimv(c->g, o->in[1], 0), H = dimv(c->g, o->in[1], -1);
  fprintf(c->f, "  const long long V = %lldLL, H = %lldLL, lo = %s;\n", (long long)V, (long long)H,
          split0(&o->in_sbp[1], 0) ? "tpi * V" : "0");
  fprintf(c->f, "  for (long long i = GTID; i < NB0; i += GSTRIDE) {\n"
                "    long long r = (long long)((const int *)a0)[i / H] - lo;\n"
                "    SB0(i, r < 0 || r >= V ? 0.0f : LA1(r * H + i %% H)); }\n");
  flat(ir_numel(c->g, o->out[0]), grid, block);
  return c->g->t[o->in[0]].dtype == IR_I32;
}

static bool k_positions(oc *c, int64_t *grid, int *block) {
  const ir_op *o = c->o;
  const ir_tensor *y = &c->g->t[o->out[0]];
  int64_t L = dimv(c->g, o->out[0], -1);
  fprintf(c->f, "  const long long L = %lldLL, lo = %s;\n", (long long)L, split0(&o->out_sbp[0], y->rank - 1) ? "tpi * L" : "0");
  fprintf(c->f, "  for (long long i = GTID; i < NB0; i += GSTRIDE) ((int *)b0)[i] = (int)(lo + i %% L);\n");
  flat(ir_numel(c->g, o->out[0]), grid, block);
  return y->dtype == IR_I32;
}

static bool k_binary(oc *c, int64_t *grid, int *block) {
  const char *op = c->o->kind == IR_OP_SUB ? "-" : c->o->kind == IR_OP_MUL ? "*" : "+";
  fprintf(c->f, "  for (long long i = GTID; i < NB0; i += GSTRIDE) SB0(i, LA0(i) %s LA1(i %% NA1));\n", op);
  flat(ir_numel(c->g, c->o->out[0]), grid, block);
  return true;
}

static bool k_scale(oc *c, int64_t *grid, int *block) {
  fprintf(c->f, "  const float s = %.9gf;\n"
                "  for (long long i = GTID; i < NB0; i += GSTRIDE) SB0(i, s == 0.0f ? 0.0f : LA0(i) * s);\n",
          c->o->at.scale);
  flat(ir_numel(c->g, c->o->out[0]), grid, block);
  return true;
}

/* embedding_grad: output zeroed by the caller, rows added with atomics (f32) */
static bool k_embedding_grad(oc *c, int64_t *grid, int *block, uint32_t *zero) {
  const ir_op *o = c->o;
  int64_t V = dimv(c->g, o->out[0], 0), H = dimv(c->g, o->out[0], -1);
  fprintf(c->f, "  const long long V = %lldLL, H = %lldLL;\n", (long long)V, (long long)H);
  fprintf(c->f, "  for (long long i = GTID; i < NA1; i += GSTRIDE) {\n"
                "    long long r = ((const int *)a0)[i / H];\n"
                "    if (r >= 0 && r < V) atomicAdd((float *)b0 + r * H + i %% H, LA1(i)); }\n");
  *zero = 1;
  flat(ir_numel(c->g, o->in[1]), grid, block);
  return c->g->t[o->out[0]].dtype == IR_F32;
}

/* sum_rows: one thread per output element, rows in order, f64 (as the CPU) */
static bool k_sum_rows(oc *c, int64_t *grid, int *block) {
  fprintf(c->f, "  for (long long j = GTID; j < NB0; j += GSTRIDE) {\n"
                "    double s = 0.0;\n"
                "    for (long long r = 0; r + NB0 <= NA0; r += NB0) s += LA0(r + j);\n"
                "    for (long long i = NA0 / NB0 * NB0 + j; i < NA0; i += NB0) s += LA0(i);\n"
                "    SB0(j, (float)s); }\n");
  flat(ir_numel(c->g, c->o->out[0]), grid, block);
  return true;
}

/* the norm gradients: a block of 256 threads per RPB rows; per row the
 * statistics by block reductions, dx, and per-thread partial column sums of
 * dw (and db) added with atomics at the end (outputs 1, 2 zeroed first) */
static bool k_norm_grad(oc *c, int64_t *grid, int *block, uint32_t *zero) {
  const ir_op *o = c->o;
  bool ln = o->kind == IR_OP_LAYER_NORM_GRAD;
  int64_t n = dimv(c->g, o->in[0], -1), rows = ir_numel(c->g, o->in[0]) / n, rpb = 16;
  int dy = ln ? 3 : 2;
  fprintf(c->f, "  const long long N = %lldLL, ROWS = %lldLL, RPB = %lldLL, PER = (N + 255) / 256;\n"
                "  const double eps = %.17g;\n"
                "  __shared__ double sh[32];\n"
                "  float pw[PER], pb[PER];\n"
                "  for (int q = 0; q < PER; q++) pw[q] = pb[q] = 0.0f;\n"
                "  for (long long r = blockIdx.x * RPB; r < ROWS && r < (blockIdx.x + 1) * RPB; r++) {\n"
                "    const long long base = r * N;\n",
          (long long)n, (long long)rows, (long long)rpb, o->at.eps);
  if (ln)
    fprintf(c->f, "    double mu = 0.0; for (long long j = threadIdx.x; j < N; j += 256) mu += LA0(base + j);\n"
                  "    mu = sb_dsum(mu, sh) / (double)N;\n"
                  "    double var = 0.0; for (long long j = threadIdx.x; j < N; j += 256) { double d = LA0(base + j) - mu; var += d * d; }\n"
                  "    const double rs = 1.0 / sqrt(sb_dsum(var, sh) / (double)N + eps);\n"
                  "    double s1 = 0.0, s2 = 0.0;\n"
                  "    for (long long j = threadIdx.x, q = 0; j < N; j += 256, q++) {\n"
                  "      float g = LA%d(base + j); double xh = (LA0(base + j) - mu) * rs, gx = (double)g * LA1(j);\n"
                  "      s1 += gx; s2 += gx * xh; pw[q] += (float)(g * xh); pb[q] += g; }\n"
                  "    s1 = sb_dsum(s1, sh) / (double)N; s2 = sb_dsum(s2, sh) / (double)N;\n"
                  "    for (long long j = threadIdx.x; j < N; j += 256) {\n"
                  "      double xh = (LA0(base + j) - mu) * rs;\n"
                  "      SB0(base + j, (float)(rs * ((double)LA%d(base + j) * LA1(j) - s1 - xh * s2))); }\n",
            dy, dy);
  else
    fprintf(c->f, "    double ss = 0.0; for (long long j = threadIdx.x; j < N; j += 256) { double x = LA0(base + j); ss += x * x; }\n"
                  "    const double rs = 1.0 / sqrt(sb_dsum(ss, sh) / (double)N + eps);\n"
                  "    double s = 0.0;\n"
                  "    for (long long j = threadIdx.x, q = 0; j < N; j += 256, q++) {\n"
                  "      float g = LA%d(base + j); double x = LA0(base + j);\n"
                  "      s += (double)g * LA1(j) * x; pw[q] += (float)(g * x * rs); }\n"
                  "    s = sb_dsum(s, sh) / (double)N;\n"
                  "    for (long long j = threadIdx.x; j < N; j += 256) {\n"
                  "      double x = LA0(base + j);\n"
                  "      SB0(base + j, (float)(rs * LA%d(base + j) * LA1(j) - x * rs * rs * rs * s)); }\n",
            dy, dy);
  fprintf(c->f, "  }\n  for (long long j = threadIdx.x, q = 0; j < N; j += 256, q++) {\n"
                "    atomicAdd((float *)b1 + j, pw[q]);%s }\n",
          ln ? " atomicAdd((float *)b2 + j, pb[q]);" : "");
  *zero = ln ? 6 : 2;
  *block = 256;
  *grid = (rows + rpb - 1) / rpb;
  for (int j = 1; j < o->nout; j++)
    if (c->g->t[o->out[j]].dtype != IR_F32) return false;
  return n <= 256 * 64;
}

static bool k_transpose(oc *c, int64_t *grid, int *block) {
  ir_ref t = c->o->in[0];
  int64_t r = dimv(c->g, t, -2), cc = dimv(c->g, t, -1);
  fprintf(c->f, "  const long long R = %lldLL, C = %lldLL;\n"
                "  for (long long e = GTID; e < NB0; e += GSTRIDE) {\n"
                "    long long b = e / (R * C), k = e %% (R * C), j = k / R, i = k %% R;\n"
                "    SB0(e, LA0(b * R * C + i * C + j)); }\n",
          (long long)r, (long long)cc);
  flat(ir_numel(c->g, c->o->out[0]), grid, block);
  return true;
}

static int64_t inner(const ir_graph *g, ir_ref t, int64_t ax) {
  int64_t n = 1;
  for (int i = (int)ax; i < g->t[t].rank; i++) n *= dimv(g, t, i);
  return n;
}

/* split / concat: one loop per part over its elements */
static bool k_split_concat(oc *c, int64_t *grid, int *block) {
  const ir_op *o = c->o;
  bool split = o->kind == IR_OP_SPLIT;
  ir_ref whole = split ? o->in[0] : o->out[0];
  int nparts = split ? o->nout : o->nin;
  int64_t ax = o->at.axis < 0 ? o->at.axis + c->g->t[whole].rank : o->at.axis, wi = inner(c->g, whole, ax), off = 0;
  for (int p = 0; p < nparts; p++) {
    ir_ref part = split ? o->out[p] : o->in[p];
    int64_t pi = inner(c->g, part, ax);
    fprintf(c->f, "  for (long long e = GTID; e < %lldLL; e += GSTRIDE) {\n"
                  "    long long w = e / %lldLL * %lldLL + %lldLL + e %% %lldLL;\n",
            (long long)ir_numel(c->g, part), (long long)pi, (long long)wi, (long long)off, (long long)pi);
    if (split) fprintf(c->f, "    SB%d(e, LA0(w)); }\n", p);
    else fprintf(c->f, "    SB0(w, LA%d(e)); }\n", p);
    off += pi;
  }
  flat(ir_numel(c->g, whole), grid, block);
  return true;
}

/* select: the slice at index; select_grad writes every element of the whole
 * (the slice, zeros elsewhere), so nothing needs zeroing */
static bool k_select(oc *c, int64_t *grid, int *block) {
  const ir_op *o = c->o;
  bool grad = o->kind == IR_OP_SELECT_GRAD;
  ir_ref whole = grad ? o->out[0] : o->in[0];
  int64_t ax = o->at.axis < 0 ? o->at.axis + c->g->t[whole].rank : o->at.axis;
  int64_t span = inner(c->g, whole, ax), size = dimv(c->g, whole, (int)ax), rest = span / size;
  fprintf(c->f, "  const long long SPAN = %lldLL, REST = %lldLL, AT = %lldLL;\n", (long long)span, (long long)rest,
          (long long)o->at.index);
  if (grad)
    fprintf(c->f, "  for (long long e = GTID; e < NB0; e += GSTRIDE) {\n"
                  "    long long ob = e / SPAN, k = e %% SPAN;\n"
                  "    SB0(e, k / REST == AT ? LA0(ob * REST + k %% REST) : 0.0f); }\n");
  else
    fprintf(c->f, "  for (long long e = GTID; e < NB0; e += GSTRIDE) SB0(e, LA0(e / REST * SPAN + AT * REST + e %% REST));\n");
  flat(ir_numel(c->g, whole), grid, block);
  return o->at.index >= 0 && o->at.index < size;
}

/* rotary: (row, head, j < d/2) pairs, angles in f64 as the CPU */
static bool k_rotary(oc *c, int64_t *grid, int *block) {
  const ir_op *o = c->o;
  ir_ref t = o->in[0];
  int64_t n = dimv(c->g, t, -1), rows = ir_numel(c->g, t) / n, S = dimv(c->g, t, -2);
  int64_t heads = o->at.heads > 0 ? o->at.heads : 1, d = n / heads;
  double theta = o->at.theta > 0 ? o->at.theta : 10000.0;
  fprintf(c->f, "  const long long N = %lldLL, S = %lldLL, D = %lldLL, H2 = D / 2, HEADS = %lldLL;\n"
                "  const double theta = %.17g, sgn = %s;\n"
                "  for (long long e = GTID; e < %lldLL; e += GSTRIDE) {\n"
                "    long long r = e / (HEADS * H2), h = e / H2 %% HEADS, j = e %% H2;\n"
                "    double ang = (double)(r %% S) * pow(theta, -2.0 * (double)j / (double)D), cs = cos(ang), sn = sgn * sin(ang);\n"
                "    long long p = r * N + h * D + j;\n"
                "    double x1 = LA0(p), x2 = LA0(p + H2);\n"
                "    SB0(p, (float)(x1 * cs - x2 * sn)); SB0(p + H2, (float)(x2 * cs + x1 * sn)); }\n",
          (long long)n, (long long)S, (long long)d, (long long)heads, theta,
          o->kind == IR_OP_ROTARY_GRAD ? "-1.0" : "1.0", (long long)(rows * heads * (d / 2)));
  flat(rows * heads * (d / 2), grid, block);
  return d % 2 == 0;
}

/* dropout and its gradient: the CPU runtime's mask (key: the per-launch base) */
static bool k_dropout(oc *c, int64_t *grid, int *block) {
  fprintf(c->f, "  const double p = %.17g;\n"
                "  for (long long i = GTID; i < NB0; i += GSTRIDE) {\n"
                "    double u = (double)(sb_mix(key + (unsigned long long)i) >> 11) / 9007199254740992.0;\n"
                "    float x = LA0(i);\n"
                "    SB0(i, p <= 0.0 ? x : u < p ? 0.0f : (float)((double)x / (1.0 - p))); }\n",
          c->o->at.p);
  flat(ir_numel(c->g, c->o->out[0]), grid, block);
  return true;
}

/* reshape or a one-rank collective between two float dtypes: a converting copy */
static bool k_convert(oc *c, int64_t *grid, int *block) {
  fprintf(c->f, "  for (long long i = GTID; i < NB0; i += GSTRIDE) SB0(i, LA0(i));\n");
  flat(ir_numel(c->g, c->o->out[0]), grid, block);
  int a = c->g->t[c->o->in[0]].dtype, b = c->g->t[c->o->out[0]].dtype;
  return a != IR_I32 && b != IR_I32 && ir_numel(c->g, c->o->in[0]) == ir_numel(c->g, c->o->out[0]);
}

static bool body(oc *c, int64_t *grid, int *block, uint32_t *zero) {
  switch ((ir_opkind)c->o->kind) {
  case IR_OP_RESHAPE: case IR_OP_ALL_REDUCE: case IR_OP_ALL_GATHER: case IR_OP_REDUCE_SCATTER:
  case IR_OP_ALL_TO_ALL: case IR_OP_SEND_RECV: case IR_OP_SLICE: return c->o->nin == 1 && c->o->nout == 1 && k_convert(c, grid, block);
  case IR_OP_EMBEDDING: return k_embedding(c, grid, block);
  case IR_OP_POSITIONS: return k_positions(c, grid, block);
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_BIAS_ADD: return k_binary(c, grid, block);
  case IR_OP_SCALE: return k_scale(c, grid, block);
  case IR_OP_EMBEDDING_GRAD: return k_embedding_grad(c, grid, block, zero);
  case IR_OP_SUM_ROWS: return k_sum_rows(c, grid, block);
  case IR_OP_LAYER_NORM_GRAD: case IR_OP_RMS_NORM_GRAD: return k_norm_grad(c, grid, block, zero);
  case IR_OP_TRANSPOSE: return k_transpose(c, grid, block);
  case IR_OP_SPLIT: case IR_OP_CONCAT: return k_split_concat(c, grid, block);
  case IR_OP_SELECT: case IR_OP_SELECT_GRAD: return k_select(c, grid, block);
  case IR_OP_ROTARY: case IR_OP_ROTARY_GRAD: return k_rotary(c, grid, block);
  case IR_OP_DROPOUT: case IR_OP_DROPOUT_GRAD: return k_dropout(c, grid, block);
  default: return false;
  }
}

bool cg_op_cuda_has(const ir_graph *g, const ir_op *o) {
  int64_t grid;
  int block;
  uint32_t zero;
  char *s = cg_op_cuda(g, o, "probe", &grid, &block, &zero);
  free(s);
  return s != NULL;
}

char *cg_op_cuda(const ir_graph *g, const ir_op *o, const char *name, int64_t *grid, int *block, uint32_t *zero_out) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  oc c = {f, g, o};
  *zero_out = 0;
  fprintf(f, "// %s: %s (generated by sbpc, codegen/ops_cuda.c)\n%s%s", name, ir_ops[o->kind].name, cg_cuda_convert, prelude);
  buffers(&c);
  signature(&c, name);
  bool ok = body(&c, grid, block, zero_out);
  fprintf(f, "}\n");
  fclose(f);
  if (!ok) free(buf);
  return ok ? buf : NULL;
}

/* ---- the executor's kernels ------------------------------------------------ */
static const char *rt_src =
    "extern \"C\" __global__ void sb_acc_f32(float *acc, const float *x, long long n, double s) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) acc[i] += (float)(s * x[i]); }\n"
    "extern \"C\" __global__ void sb_acc_bf16(float *acc, const unsigned short *x, long long n, double s) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) acc[i] += (float)(s * sb_bf2f(x[i])); }\n"
    "extern \"C\" __global__ void sb_acc_f16(float *acc, const unsigned short *x, long long n, double s) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) acc[i] += (float)(s * sb_h2f(x[i])); }\n"
    /* PyTorch's AdamW as rt_adamw computes it (fp32, as torch.optim.AdamW on float
     * tensors); work: the 16-bit working copy
     * (wdt 1 f16, 2 bf16) or NULL; skip: the overflow flag of fp16 loss
     * scaling, or NULL */
    "extern \"C\" __global__ void sb_adamw(float *p, const float *g, float *m, float *v, long long n, double decay,\n"
    "    double b1, double b2, double eps, double ss, double sq2, unsigned short *work, int wdt, const int *skip) {\n"
    "  if (skip && *skip) return;\n"
    "  const float d = (float)decay, w1 = (float)(1.0 - b1), fb2 = (float)b2, w2 = (float)(1.0 - b2);\n"
    "  const float fs = (float)ss, fq = (float)sq2, fe = (float)eps;\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) {\n"
    "    float gi = g[i], mf = m[i] + w1 * (gi - m[i]), vf = fb2 * v[i] + w2 * (gi * gi);\n"
    "    m[i] = mf; v[i] = vf;\n"
    "    float pf = p[i] * d - fs * (mf / (sqrtf(vf) / fq + fe)); p[i] = pf;\n"
    "    if (work) work[i] = wdt == 2 ? sb_f2bf(pf) : sb_f2h(pf); } }\n"
    "extern \"C\" __global__ void sb_cast_bf16(const float *x, unsigned short *y, long long n) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) y[i] = sb_f2bf(x[i]); }\n"
    "extern \"C\" __global__ void sb_cast_f16(const float *x, unsigned short *y, long long n) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) y[i] = sb_f2h(x[i]); }\n"
    "extern \"C\" __global__ void sb_finite(const float *x, long long n, int *found) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) if (!(fabsf(x[i]) <= 3.402823466e38f)) *found = 1; }\n"
    "extern \"C\" __global__ void sb_scale_f32(float *x, long long n, float s) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) x[i] *= s; }\n"
    "extern \"C\" __global__ void sb_scale_bf16(unsigned short *x, long long n, float s) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) x[i] = sb_f2bf(sb_bf2f(x[i]) * s); }\n"
    "extern \"C\" __global__ void sb_scale_f16(unsigned short *x, long long n, float s) {\n"
    "  for (long long i = GTID; i < n; i += GSTRIDE) x[i] = sb_f2h(sb_h2f(x[i]) * s); }\n";

const char *const cg_rt_cuda_entries[] = {"sb_acc_f32", "sb_acc_bf16", "sb_acc_f16", "sb_adamw", "sb_cast_bf16",
                                          "sb_cast_f16", "sb_finite", "sb_scale_f32", "sb_scale_bf16", "sb_scale_f16", NULL};

char *cg_rt_cuda(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  fprintf(f, "// sbpc executor kernels (codegen/ops_cuda.c)\n%s%s%s", cg_cuda_convert, prelude, rt_src);
  fclose(f);
  return buf;
}
