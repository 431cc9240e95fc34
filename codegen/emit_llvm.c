/* emit_llvm.c — kernel IR -> LLVM IR through the LLVM-C builder, for the host.
 *
 * A row kernel becomes `void NAME(i8** bufs, i64* dims, float* scalars)`: a
 * loop over rows; per row, one column loop per stage. Each column loop is
 * vectorised explicitly: a <W x float> loop over the first cols - cols % W
 * columns, then a scalar loop over the rest, where W is 16 on AVX-512 hosts,
 * 8 on AVX hosts and 4 otherwise (float reductions would not be vectorised
 * by LLVM without fast-math flags, which LLVM-C 14 cannot set). Reductions keep vector
 * accumulators, reduced pairwise after the vector loop. Row values are
 * computed once per row, before the first loop that needs them. exp, tanh,
 * erf(c) and sigmoid are inline polynomials (Cephes / Numerical Recipes) so
 * they vectorise; log and sqrt use LLVM intrinsics. The module targets the
 * host CPU and its features and is optimised with the new pass manager's
 * default<O3> (LLVMRunPasses). The row loop is emitted twice: a copy with
 * non-temporal stores for large, aligned calls (stream_cond), and the
 * ordinary one. */
#include "codegen/llvm_priv.h"
#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ------------------------------------------------------ */
LLVMValueRef cg_ll_i64(cg_ll *e, int64_t v) {
  return LLVMConstInt(LLVMInt64TypeInContext(e->c), (unsigned long long)v, 1);
}

static int lanes(LLVMTypeRef t) {
  return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(t) : 1;
}

static LLVMTypeRef like(LLVMTypeRef scalar, int w) { return w > 1 ? LLVMVectorType(scalar, (unsigned)w) : scalar; }

static LLVMValueRef splat_const(LLVMValueRef c, int w) {
  if (w == 1) return c;
  LLVMValueRef v[64];
  for (int i = 0; i < w; i++) v[i] = c;
  return LLVMConstVector(v, (unsigned)w);
}

LLVMValueRef cg_ll_const(cg_ll *e, LLVMTypeRef t, double v) {
  return splat_const(LLVMConstReal(LLVMFloatTypeInContext(e->c), v), lanes(t));
}

static LLVMValueRef iconst(cg_ll *e, LLVMTypeRef t, unsigned long long v) {
  return splat_const(LLVMConstInt(LLVMInt32TypeInContext(e->c), v, 0), lanes(t));
}

static LLVMValueRef splat(cg_ll *e, LLVMValueRef x, int w) {
  if (w == 1) return x;
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)w);
  LLVMValueRef v = LLVMBuildInsertElement(e->b, LLVMGetUndef(vt), x, LLVMConstInt(LLVMInt32TypeInContext(e->c), 0, 0), "");
  LLVMValueRef mask = LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(e->c), (unsigned)w));
  return LLVMBuildShuffleVector(e->b, v, LLVMGetUndef(vt), mask, "");
}

LLVMValueRef cg_ll_intr(cg_ll *e, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(e->m, id, &t, 1);
  LLVMTypeRef ft = LLVMIntrinsicGetType(e->c, id, &t, 1);
  return LLVMBuildCall2(e->b, ft, fn, args, (unsigned)n, "");
}

LLVMValueRef cg_ll_loop_begin(cg_ll *e, cg_ll_loop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step) {
  l->pre = LLVMGetInsertBlock(e->b);
  l->head = LLVMAppendBasicBlockInContext(e->c, e->fn, "head");
  l->body = LLVMAppendBasicBlockInContext(e->c, e->fn, "body");
  l->exit = LLVMAppendBasicBlockInContext(e->c, e->fn, "exit");
  l->step = step;
  LLVMBuildBr(e->b, l->head);
  LLVMPositionBuilderAtEnd(e->b, l->head);
  l->i = LLVMBuildPhi(e->b, LLVMInt64TypeInContext(e->c), "i");
  LLVMAddIncoming(l->i, &lo, &l->pre, 1);
  LLVMValueRef cond = LLVMBuildICmp(e->b, LLVMIntSLT, l->i, hi, "");
  LLVMBuildCondBr(e->b, cond, l->body, l->exit);
  LLVMPositionBuilderAtEnd(e->b, l->body);
  return l->i;
}

void cg_ll_loop_end(cg_ll *e, cg_ll_loop *l) {
  LLVMValueRef next = LLVMBuildAdd(e->b, l->i, l->step, "");
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
  LLVMBuildBr(e->b, l->head);
  LLVMAddIncoming(l->i, &next, &cur, 1);
  LLVMPositionBuilderAtEnd(e->b, l->exit);
}

LLVMValueRef cg_ll_buf(cg_ll *e, LLVMValueRef bufs, int slot, LLVMTypeRef elem) {
  LLVMTypeRef i8p = LLVMPointerType(LLVMInt8TypeInContext(e->c), 0);
  LLVMValueRef idx = cg_ll_i64(e, slot);
  LLVMValueRef p = LLVMBuildGEP2(e->b, i8p, bufs, &idx, 1, "");
  LLVMValueRef raw = LLVMBuildLoad2(e->b, i8p, p, "");
  return LLVMBuildBitCast(e->b, raw, LLVMPointerType(elem, 0), "");
}

/* ---- math ---------------------------------------------------------------- */
static LLVMValueRef fmul(cg_ll *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(e->b, a, b, ""); }
static LLVMValueRef fadd(cg_ll *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(e->b, a, b, ""); }
static LLVMValueRef fsub(cg_ll *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(e->b, a, b, ""); }
static LLVMValueRef fdiv(cg_ll *e, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(e->b, a, b, ""); }
static LLVMValueRef kc(cg_ll *e, LLVMValueRef like_v, double v) { return cg_ll_const(e, LLVMTypeOf(like_v), v); }
static LLVMValueRef intr1(cg_ll *e, const char *n, LLVMValueRef x) { return cg_ll_intr(e, n, LLVMTypeOf(x), &x, 1); }
static LLVMValueRef intr2(cg_ll *e, const char *n, LLVMValueRef x, LLVMValueRef y) {
  LLVMValueRef a[2] = {x, y};
  return cg_ll_intr(e, n, LLVMTypeOf(x), a, 2);
}

/* fma: a * b + c, fused where the target has FMA (llvm.fmuladd). */
static LLVMValueRef fma3(cg_ll *e, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  LLVMValueRef args[3] = {a, b, c};
  return cg_ll_intr(e, "llvm.fmuladd", LLVMTypeOf(a), args, 3);
}

/* poly: Horner evaluation of c[0]*x^(n-1) + ... + c[n-1]. */
static LLVMValueRef poly(cg_ll *e, LLVMValueRef x, const double *c, int n) {
  LLVMValueRef y = kc(e, x, c[0]);
  for (int i = 1; i < n; i++) y = fma3(e, y, x, kc(e, x, c[i]));
  return y;
}

/* fmin/fmax as compare + select (one vminps/vmaxps; NaN handling not needed
 * for clamping). */
static LLVMValueRef fminx(cg_ll *e, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOLT, a, b, ""), a, b, "");
}
static LLVMValueRef fmaxx(cg_ll *e, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, a, b, ""), a, b, "");
}

LLVMValueRef cg_ll_exp(cg_ll *e, LLVMValueRef x) {
  static const double p[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
                             4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
  x = fminx(e, x, kc(e, x, 88.3762626647949));
  x = fmaxx(e, x, kc(e, x, -88.3762626647949));
  LLVMValueRef fx = intr1(e, "llvm.floor", fma3(e, x, kc(e, x, 1.44269504088896341), kc(e, x, 0.5)));
  x = fma3(e, fx, kc(e, x, -0.693359375), x);
  x = fma3(e, fx, kc(e, x, 2.12194440e-4), x);
  LLVMValueRef z = fmul(e, x, x);
  LLVMValueRef y = fadd(e, fma3(e, poly(e, x, p, 6), z, x), kc(e, x, 1.0));
  LLVMTypeRef it = like(LLVMInt32TypeInContext(e->c), lanes(LLVMTypeOf(x)));
  LLVMValueRef n = LLVMBuildFPToSI(e->b, fx, it, "");
  n = LLVMBuildShl(e->b, LLVMBuildAdd(e->b, n, iconst(e, it, 127), ""), iconst(e, it, 23), "");
  return fmul(e, y, LLVMBuildBitCast(e->b, n, LLVMTypeOf(x), ""));
}

static LLVMValueRef sel(cg_ll *e, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t, LLVMValueRef f) {
  return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, p, a, b, ""), t, f, "");
}

static LLVMValueRef ll_tanh(cg_ll *e, LLVMValueRef x) {
  static const double p[] = {-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
                             1.33314422036E-1, -3.33332819422E-1};
  LLVMValueRef ax = intr1(e, "llvm.fabs", x);
  LLVMValueRef z = fmul(e, x, x);
  LLVMValueRef small = fadd(e, fmul(e, fmul(e, poly(e, z, p, 5), z), x), x);
  LLVMValueRef big = fsub(e, kc(e, x, 1.0), fdiv(e, kc(e, x, 2.0), fadd(e, cg_ll_exp(e, fadd(e, ax, ax)), kc(e, x, 1.0))));
  big = intr2(e, "llvm.copysign", big, x);
  return sel(e, LLVMRealOLT, ax, kc(e, x, 0.625), small, big);
}

/* erfc for x >= 0 (Numerical Recipes erfcc, fractional error < 1.2e-7). */
static LLVMValueRef erfc_pos(cg_ll *e, LLVMValueRef z) {
  static const double p[] = {0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
                             -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223};
  LLVMValueRef t = fdiv(e, kc(e, z, 1.0), fadd(e, kc(e, z, 1.0), fmul(e, kc(e, z, 0.5), z)));
  LLVMValueRef arg = fadd(e, LLVMBuildFNeg(e->b, fmul(e, z, z), ""), poly(e, t, p, 10));
  return fmul(e, t, cg_ll_exp(e, arg));
}

static LLVMValueRef ll_erfc(cg_ll *e, LLVMValueRef x) {
  LLVMValueRef r = erfc_pos(e, intr1(e, "llvm.fabs", x));
  return sel(e, LLVMRealOLT, x, kc(e, x, 0.0), fsub(e, kc(e, x, 2.0), r), r);
}

static LLVMValueRef ll_erf(cg_ll *e, LLVMValueRef x) {
  static const double p[] = {7.853861353153693E-5, -8.010193625184903E-4, 5.188327685732524E-3,
                             -2.685381193529856E-2, 1.128358514861418E-1, -3.761262582423300E-1,
                             1.128379165726710E+0};
  LLVMValueRef ax = intr1(e, "llvm.fabs", x);
  LLVMValueRef small = fmul(e, x, poly(e, fmul(e, x, x), p, 7));
  LLVMValueRef big = intr2(e, "llvm.copysign", fsub(e, kc(e, x, 1.0), erfc_pos(e, ax)), x);
  return sel(e, LLVMRealOLT, ax, kc(e, x, 1.0), small, big);
}

static LLVMValueRef b2f(cg_ll *e, LLVMValueRef c) { return LLVMBuildUIToFP(e->b, c, like(LLVMFloatTypeInContext(e->c), lanes(LLVMTypeOf(c))), ""); }

/* hash32: lowbias32 of (idx * 0x9E3779B9) ^ key; identical in emit_cuda.c. */
static LLVMValueRef ll_rand(cg_ll *e, LLVMValueRef idx32, LLVMValueRef key) {
  LLVMTypeRef it = LLVMTypeOf(idx32);
  LLVMValueRef x = LLVMBuildXor(e->b, LLVMBuildMul(e->b, idx32, iconst(e, it, 0x9E3779B9u), ""), key, "");
  x = LLVMBuildXor(e->b, x, LLVMBuildLShr(e->b, x, iconst(e, it, 16), ""), "");
  x = LLVMBuildMul(e->b, x, iconst(e, it, 0x7feb352du), "");
  x = LLVMBuildXor(e->b, x, LLVMBuildLShr(e->b, x, iconst(e, it, 15), ""), "");
  x = LLVMBuildMul(e->b, x, iconst(e, it, 0x846ca68bu), "");
  x = LLVMBuildXor(e->b, x, LLVMBuildLShr(e->b, x, iconst(e, it, 16), ""), "");
  LLVMValueRef u = LLVMBuildUIToFP(e->b, LLVMBuildLShr(e->b, x, iconst(e, it, 8), ""),
                                   like(LLVMFloatTypeInContext(e->c), lanes(it)), "");
  return fmul(e, u, kc(e, u, 1.0 / 16777216.0));
}

/* ---- the row-kernel emitter --------------------------------------------- */
typedef struct {
  cg_ll e;
  const cg_kernel *k;
  LLVMValueRef base[CG_MAXBUF], scal, rows, cols, r, rowbase;
  LLVMValueRef rowv[CG_MAXNODES];
  LLVMValueRef memo[CG_MAXNODES];
  LLVMValueRef c; /* current column (i64) */
  int w;          /* lanes of the loop being emitted */
  int stage;      /* pass being emitted */
  bool nt;        /* this copy of the row loop streams large f32 outputs */
} rk;

static LLVMTypeRef f32(rk *x) { return LLVMFloatTypeInContext(x->e.c); }

static LLVMTypeRef storage(rk *x, ir_dtype dt) {
  switch (dt) {
  case IR_F16: case IR_BF16: return LLVMInt16TypeInContext(x->e.c);
  case IR_I32: return LLVMInt32TypeInContext(x->e.c);
  default: return f32(x);
  }
}

/* elem_ptr: address of buffer b at the current (r, c) as a <w x T>* or T*. */
static LLVMValueRef elem_ptr(rk *x, int b, bool row) {
  const cg_buf *bf = &x->k->buf[b];
  LLVMValueRef idx = bf->shape == CG_SH_ROWS ? LLVMBuildAdd(x->e.b, x->rowbase, x->c, "")
                   : bf->shape == CG_SH_COLS ? x->c : bf->shape == CG_SH_ROW1 ? x->r : cg_ll_i64(&x->e, 0);
  LLVMTypeRef st = storage(x, (ir_dtype)bf->dtype);
  LLVMValueRef p = LLVMBuildGEP2(x->e.b, st, x->base[b], &idx, 1, "");
  int w = row ? 1 : x->w;
  if (w > 1) p = LLVMBuildBitCast(x->e.b, p, LLVMPointerType(LLVMVectorType(st, (unsigned)w), 0), "");
  return p;
}

static LLVMValueRef to_f32(rk *x, LLVMValueRef v, ir_dtype dt, int w) {
  cg_ll *e = &x->e;
  LLVMTypeRef ft = like(f32(x), w);
  switch (dt) {
  case IR_BF16: {
    LLVMTypeRef it = like(LLVMInt32TypeInContext(e->c), w);
    LLVMValueRef z = LLVMBuildShl(e->b, LLVMBuildZExt(e->b, v, it, ""), iconst(e, it, 16), "");
    return LLVMBuildBitCast(e->b, z, ft, "");
  }
  case IR_F16:
    return LLVMBuildFPExt(e->b, LLVMBuildBitCast(e->b, v, like(LLVMHalfTypeInContext(e->c), w), ""), ft, "");
  case IR_I32: case IR_I64: return LLVMBuildSIToFP(e->b, v, ft, "");
  default: return v;
  }
}

static LLVMValueRef from_f32(rk *x, LLVMValueRef v, ir_dtype dt, int w) {
  cg_ll *e = &x->e;
  switch (dt) {
  case IR_BF16: { /* round to nearest even */
    LLVMTypeRef it = like(LLVMInt32TypeInContext(e->c), w);
    LLVMValueRef bits = LLVMBuildBitCast(e->b, v, it, "");
    LLVMValueRef lsb = LLVMBuildAnd(e->b, LLVMBuildLShr(e->b, bits, iconst(e, it, 16), ""), iconst(e, it, 1), "");
    bits = LLVMBuildAdd(e->b, bits, LLVMBuildAdd(e->b, lsb, iconst(e, it, 0x7fff), ""), "");
    bits = LLVMBuildLShr(e->b, bits, iconst(e, it, 16), "");
    return LLVMBuildTrunc(e->b, bits, like(LLVMInt16TypeInContext(e->c), w), "");
  }
  case IR_F16:
    return LLVMBuildBitCast(e->b, LLVMBuildFPTrunc(e->b, v, like(LLVMHalfTypeInContext(e->c), w), ""),
                            like(LLVMInt16TypeInContext(e->c), w), "");
  case IR_I32: return LLVMBuildFPToSI(e->b, v, like(LLVMInt32TypeInContext(e->c), w), "");
  default: return v;
  }
}

static LLVMValueRef load(rk *x, int b, bool row) {
  int w = row ? 1 : x->w;
  ir_dtype dt = (ir_dtype)x->k->buf[b].dtype;
  LLVMTypeRef st = like(storage(x, dt), w);
  LLVMValueRef v = LLVMBuildLoad2(x->e.b, st, elem_ptr(x, b, row), "");
  LLVMSetAlignment(v, (unsigned)LLVMABISizeOfType(LLVMGetModuleDataLayout(x->e.m), storage(x, dt)));
  return to_f32(x, v, dt, w);
}

/* streamable: output b may take non-temporal vector stores: a full-size
 * f32 output written in the last pass (one written in an earlier pass is
 * re-read by the later passes, cg_k_reload, and must stay in cache). */
static bool streamable(const cg_kernel *k, int b) {
  const cg_buf *bf = &k->buf[b];
  if (bf->role != CG_OUT || bf->shape != CG_SH_ROWS || (bf->dtype != IR_F32 && bf->dtype != IR_I32)) return false;
  for (int s = 0; s < k->nstore; s++)
    if (k->store[s].buf == b && k->store[s].stage != k->nstages - 1) return false;
  return true;
}

static void store(rk *x, int b, LLVMValueRef v, bool row) {
  int w = row ? 1 : x->w;
  ir_dtype dt = (ir_dtype)x->k->buf[b].dtype;
  LLVMValueRef p = elem_ptr(x, b, row);
  if (x->k->buf[b].role == CG_ACC) {
    LLVMValueRef old = LLVMBuildLoad2(x->e.b, f32(x), p, "");
    v = fadd(&x->e, old, v);
  }
  LLVMValueRef s = LLVMBuildStore(x->e.b, from_f32(x, v, dt, w), p);
  LLVMSetAlignment(s, (unsigned)LLVMABISizeOfType(LLVMGetModuleDataLayout(x->e.m), storage(x, dt)));
  if (x->nt && w > 1 && streamable(x->k, b)) { /* aligned: checked at entry */
    LLVMValueRef one = LLVMConstInt(LLVMInt32TypeInContext(x->e.c), 1, 0);
    LLVMSetMetadata(s, LLVMGetMDKindIDInContext(x->e.c, "nontemporal", 11), LLVMMDNodeInContext(x->e.c, &one, 1));
    LLVMSetAlignment(s, (unsigned)(4 * w));
  }
}

static LLVMValueRef value(rk *x, int i, bool row);

/* arith: the ops shared by row and element values. */
static LLVMValueRef arith(rk *x, const cg_node *n, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  cg_ll *e = &x->e;
  switch ((cg_kop)n->op) {
  case CG_NEG: return LLVMBuildFNeg(e->b, a, "");
  case CG_ABS: return intr1(e, "llvm.fabs", a);
  case CG_EXP: return cg_ll_exp(e, a);
  case CG_LOG: return intr1(e, "llvm.log", a);
  case CG_TANH: return ll_tanh(e, a);
  case CG_ERF: return ll_erf(e, a);
  case CG_ERFC: return ll_erfc(e, a);
  case CG_SQRT: return intr1(e, "llvm.sqrt", a);
  case CG_RSQRT: return fdiv(e, kc(e, a, 1.0), intr1(e, "llvm.sqrt", a));
  case CG_SIGMOID: return fdiv(e, kc(e, a, 1.0), fadd(e, kc(e, a, 1.0), cg_ll_exp(e, LLVMBuildFNeg(e->b, a, ""))));
  case CG_ADD: return fadd(e, a, b);
  case CG_SUB: return fsub(e, a, b);
  case CG_MUL: return fmul(e, a, b);
  case CG_DIV: return fdiv(e, a, b);
  case CG_MAX: return intr2(e, "llvm.maxnum", a, b);
  case CG_MIN: return intr2(e, "llvm.minnum", a, b);
  case CG_LT: return b2f(e, LLVMBuildFCmp(e->b, LLVMRealOLT, a, b, ""));
  case CG_LE: return b2f(e, LLVMBuildFCmp(e->b, LLVMRealOLE, a, b, ""));
  case CG_EQ: return b2f(e, LLVMBuildFCmp(e->b, LLVMRealOEQ, a, b, ""));
  case CG_SELECT: return sel(e, LLVMRealUNE, a, kc(e, a, 0.0), b, c);
  default: return NULL;
  }
}

static LLVMValueRef leaf(rk *x, const cg_node *n, bool row) {
  cg_ll *e = &x->e;
  int w = row ? 1 : x->w;
  LLVMTypeRef ft = like(f32(x), w);
  switch ((cg_kop)n->op) {
  case CG_CONST: return cg_ll_const(e, ft, n->imm);
  case CG_SCALAR: {
    LLVMValueRef idx = cg_ll_i64(e, n->buf);
    return LLVMBuildLoad2(e->b, f32(x), LLVMBuildGEP2(e->b, f32(x), x->scal, &idx, 1, ""), "");
  }
  case CG_NROWS: return LLVMBuildSIToFP(e->b, x->rows, f32(x), "");
  case CG_NCOLS: return LLVMBuildSIToFP(e->b, x->cols, f32(x), "");
  case CG_ROWMOD: return LLVMBuildSIToFP(e->b, LLVMBuildSRem(e->b, x->r, x->cols, ""), f32(x), "");
  case CG_LOAD: return load(x, n->buf, row);
  default: return NULL;
  }
}

/* lane_index: (i64 base) + <0, 1, ..., w-1> as <w x i64> (or i64). */
static LLVMValueRef lane_index(rk *x, LLVMValueRef base) {
  if (x->w == 1) return base;
  LLVMValueRef v[64];
  for (int i = 0; i < x->w; i++) v[i] = cg_ll_i64(&x->e, i);
  return LLVMBuildAdd(x->e.b, splat(&x->e, base, x->w), LLVMConstVector(v, (unsigned)x->w), "");
}

static LLVMValueRef elem_special(rk *x, const cg_node *n) {
  cg_ll *e = &x->e;
  LLVMTypeRef ft = like(f32(x), x->w);
  if (n->op == CG_COLIDX) return LLVMBuildSIToFP(e->b, lane_index(x, x->c), ft, "");
  /* CG_RAND */
  LLVMTypeRef it = like(LLVMInt32TypeInContext(e->c), x->w);
  LLVMValueRef idx = LLVMBuildTrunc(e->b, lane_index(x, LLVMBuildAdd(e->b, x->rowbase, x->c, "")), it, "");
  LLVMValueRef key = LLVMBuildBitCast(e->b, x->rowv[n->a], LLVMInt32TypeInContext(e->c), "");
  return ll_rand(e, idx, splat(e, key, x->w));
}

/* value: node i as a row value (row) or an element of the current loop. */
static LLVMValueRef value(rk *x, int i, bool row) {
  const cg_node *n = &x->k->node[i];
  if (n->row && !row) {
    if (!x->memo[i]) x->memo[i] = splat(&x->e, x->rowv[i], x->w);
    return x->memo[i];
  }
  if (row && x->rowv[i]) return x->rowv[i];
  if (!row && x->memo[i]) return x->memo[i];
  LLVMValueRef v;
  int rb = row ? -1 : cg_k_reload(x->k, i, x->stage);
  if (rb >= 0) v = load(x, rb, false); /* stored in an earlier pass: re-read, not recompute */
  else if (n->op == CG_COLIDX || n->op == CG_RAND) v = elem_special(x, n);
  else if (cg_kop_nargs[n->op] == 0) v = leaf(x, n, row);
  else {
    LLVMValueRef a = value(x, n->a, row);
    LLVMValueRef b = n->b >= 0 ? value(x, n->b, row) : NULL;
    LLVMValueRef c = n->c >= 0 ? value(x, n->c, row) : NULL;
    v = arith(x, n, a, b, c);
  }
  if (row) x->rowv[i] = v;
  else x->memo[i] = v;
  return v;
}

static bool is_red(const cg_node *n) { return n->op == CG_RSUM || n->op == CG_RMAX; }

/* hreduce: combine the lanes of vector v pairwise. */
static LLVMValueRef hreduce(rk *x, LLVMValueRef v, bool max) {
  cg_ll *e = &x->e;
  int w = lanes(LLVMTypeOf(v));
  LLVMValueRef s[64];
  for (int i = 0; i < w; i++) s[i] = LLVMBuildExtractElement(e->b, v, LLVMConstInt(LLVMInt32TypeInContext(e->c), (unsigned)i, 0), "");
  for (; w > 1; w /= 2)
    for (int i = 0; i < w / 2; i++) s[i] = max ? intr2(e, "llvm.maxnum", s[i], s[i + w / 2]) : fadd(e, s[i], s[i + w / 2]);
  return s[0];
}

/* column_loop: one pass of stage t over [lo, hi) with w lanes; reductions
 * start from init[] and their final values are written back to init[]. */
static void column_loop(rk *x, int t, LLVMValueRef lo, LLVMValueRef hi, int w, LLVMValueRef *init) {
  cg_ll *e = &x->e;
  const cg_kernel *k = x->k;
  cg_ll_loop l;
  LLVMValueRef acc[CG_MAXNODES];
  x->w = w;
  l.pre = LLVMGetInsertBlock(e->b);
  l.head = LLVMAppendBasicBlockInContext(e->c, e->fn, "col");
  l.body = LLVMAppendBasicBlockInContext(e->c, e->fn, "colbody");
  l.exit = LLVMAppendBasicBlockInContext(e->c, e->fn, "colexit");
  LLVMBuildBr(e->b, l.head);
  LLVMPositionBuilderAtEnd(e->b, l.head);
  l.i = LLVMBuildPhi(e->b, LLVMInt64TypeInContext(e->c), "c");
  LLVMAddIncoming(l.i, &lo, &l.pre, 1);
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1) {
      acc[i] = LLVMBuildPhi(e->b, LLVMTypeOf(init[i]), "acc");
      LLVMAddIncoming(acc[i], &init[i], &l.pre, 1);
    }
  LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, l.i, hi, ""), l.body, l.exit);
  LLVMPositionBuilderAtEnd(e->b, l.body);
  x->c = l.i;
  memset(x->memo, 0, sizeof x->memo);
  LLVMValueRef next[CG_MAXNODES];
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1) {
      LLVMValueRef v = value(x, k->node[i].a, false);
      next[i] = k->node[i].op == CG_RMAX ? intr2(e, "llvm.maxnum", acc[i], v) : fadd(e, acc[i], v);
    }
  for (int s = 0; s < k->nstore; s++)
    if (k->store[s].stage == t && !k->node[k->store[s].node].row)
      store(x, k->store[s].buf, value(x, k->store[s].node, false), false);
  LLVMValueRef stepv = cg_ll_i64(e, w);
  LLVMValueRef c1 = LLVMBuildAdd(e->b, l.i, stepv, "");
  LLVMBasicBlockRef end = LLVMGetInsertBlock(e->b);
  LLVMBuildBr(e->b, l.head);
  LLVMAddIncoming(l.i, &c1, &end, 1);
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1) {
      LLVMAddIncoming(acc[i], &next[i], &end, 1);
      init[i] = acc[i];
    }
  LLVMPositionBuilderAtEnd(e->b, l.exit);
}

/* emit_row_values: row nodes that become known after pass `ready` - 1. */
static void emit_row_values(rk *x, int ready) {
  for (int i = 0; i < x->k->nnode; i++) {
    const cg_node *n = &x->k->node[i];
    if (n->row && !is_red(n) && n->ready == ready) value(x, i, true);
  }
}

static void stage(rk *x, int t) {
  cg_ll *e = &x->e;
  const cg_kernel *k = x->k;
  LLVMValueRef init[CG_MAXNODES];
  int W = x->w;
  x->stage = t;
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1)
      init[i] = cg_ll_const(e, like(f32(x), W), k->node[i].op == CG_RMAX ? -(double)INFINITY : 0.0);
  LLVMValueRef nvec = LLVMBuildSub(e->b, x->cols, LLVMBuildSRem(e->b, x->cols, cg_ll_i64(e, W), ""), "");
  column_loop(x, t, cg_ll_i64(e, 0), nvec, W, init);
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1) init[i] = hreduce(x, init[i], k->node[i].op == CG_RMAX);
  column_loop(x, t, nvec, x->cols, 1, init);
  x->w = W;
  for (int i = 0; i < k->nnode; i++)
    if (is_red(&k->node[i]) && k->node[i].ready == t + 1) x->rowv[i] = init[i];
  emit_row_values(x, t + 1);
  for (int s = 0; s < k->nstore; s++)
    if (k->store[s].stage == t && k->node[k->store[s].node].row)
      store(x, k->store[s].buf, value(x, k->store[s].node, true), true);
}

/* row_loop: the loop over rows (one copy; nt selects streaming stores). */
static void row_loop(rk *x, int width, bool nt) {
  cg_ll *e = &x->e;
  cg_ll_loop rl;
  x->nt = nt;
  x->r = cg_ll_loop_begin(e, &rl, cg_ll_i64(e, 0), x->rows, cg_ll_i64(e, 1));
  x->rowbase = LLVMBuildMul(e->b, x->r, x->cols, "");
  memset(x->rowv, 0, sizeof x->rowv);
  memset(x->memo, 0, sizeof x->memo);
  x->w = width;
  emit_row_values(x, 0);
  for (int t = 0; t < x->k->nstages; t++) stage(x, t);
  cg_ll_loop_end(e, &rl);
}

/* stream_cond: i1, true when the kernel's f32 outputs are large enough
 * (CG_NT_BYTES each: they cannot stay in cache for their consumer, so a
 * normal store would first read every line for nothing) and every such
 * output and its rows are aligned to the vector size, so the vector loop
 * covers whole rows with aligned non-temporal stores. */
#define CG_NT_BYTES ((int64_t)16 << 20)
static LLVMValueRef stream_cond(rk *x, int width) {
  cg_ll *e = &x->e;
  LLVMTypeRef i64 = LLVMInt64TypeInContext(e->c);
  LLVMValueRef zero = cg_ll_i64(e, 0), bytes = LLVMBuildMul(e->b, LLVMBuildMul(e->b, x->rows, x->cols, ""), cg_ll_i64(e, 4), "");
  LLVMValueRef ok = LLVMBuildICmp(e->b, LLVMIntSGE, bytes, cg_ll_i64(e, CG_NT_BYTES), "");
  ok = LLVMBuildAnd(e->b, ok, LLVMBuildICmp(e->b, LLVMIntEQ, LLVMBuildSRem(e->b, x->cols, cg_ll_i64(e, width), ""), zero, ""), "");
  bool any = false;
  for (int i = 0; i < x->k->nbuf; i++) {
    if (!streamable(x->k, i)) continue;
    any = true;
    LLVMValueRef mis = LLVMBuildAnd(e->b, LLVMBuildPtrToInt(e->b, x->base[i], i64, ""), cg_ll_i64(e, 4 * width - 1), "");
    ok = LLVMBuildAnd(e->b, ok, LLVMBuildICmp(e->b, LLVMIntEQ, mis, zero, ""), "");
  }
  return any && width > 1 ? ok : NULL;
}

static void row_kernel(cg_llvm *m, const cg_kernel *k) {
  rk *x = calloc(1, sizeof *x);
  cg_ll *e = &x->e;
  e->c = m->ctx;
  e->m = m->mod;
  e->b = LLVMCreateBuilderInContext(m->ctx);
  LLVMTypeRef i8p = LLVMPointerType(LLVMInt8TypeInContext(e->c), 0);
  LLVMTypeRef i64 = LLVMInt64TypeInContext(e->c);
  LLVMTypeRef ps[3] = {LLVMPointerType(i8p, 0), LLVMPointerType(i64, 0), LLVMPointerType(LLVMFloatTypeInContext(e->c), 0)};
  e->fn = LLVMAddFunction(m->mod, k->name, LLVMFunctionType(LLVMVoidTypeInContext(e->c), ps, 3, 0));
  x->k = k;
  LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->c, e->fn, "entry"));
  LLVMValueRef bufs = LLVMGetParam(e->fn, 0), dims = LLVMGetParam(e->fn, 1);
  x->scal = LLVMGetParam(e->fn, 2);
  for (int i = 0; i < k->nbuf; i++) x->base[i] = cg_ll_buf(e, bufs, i, storage(x, (ir_dtype)k->buf[i].dtype));
  LLVMValueRef one = cg_ll_i64(e, 1);
  x->rows = LLVMBuildLoad2(e->b, i64, dims, "rows");
  x->cols = LLVMBuildLoad2(e->b, i64, LLVMBuildGEP2(e->b, i64, dims, &one, 1, ""), "cols");
  LLVMValueRef nt = stream_cond(x, m->width);
  if (nt) {
    LLVMBasicBlockRef bs = LLVMAppendBasicBlockInContext(e->c, e->fn, "stream");
    LLVMBasicBlockRef bn = LLVMAppendBasicBlockInContext(e->c, e->fn, "cached");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(e->c, e->fn, "done");
    LLVMBuildCondBr(e->b, nt, bs, bn);
    LLVMPositionBuilderAtEnd(e->b, bs);
    row_loop(x, m->width, true);
    LLVMBuildFence(e->b, LLVMAtomicOrderingSequentiallyConsistent, 0, ""); /* order the streaming stores */
    LLVMBuildBr(e->b, done);
    LLVMPositionBuilderAtEnd(e->b, bn);
    row_loop(x, m->width, false);
    LLVMBuildBr(e->b, done);
    LLVMPositionBuilderAtEnd(e->b, done);
  } else {
    row_loop(x, m->width, false);
  }
  LLVMBuildRetVoid(e->b);
  LLVMDisposeBuilder(e->b);
  free(x);
}

/* ---- module ------------------------------------------------------------- */
static char host_desc[1024];

const char *cg_llvm_host(void) {
  if (!host_desc[0]) {
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    snprintf(host_desc, sizeof host_desc, "%s %s", cpu, feat);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
  }
  return host_desc;
}

const char *cg_llvm_version(void) { return LLVM_VERSION_STRING; }

int cg_llvm_vector_width(void) {
  const char *h = cg_llvm_host();
  if (strstr(h, "+avx512f")) return 16;
  return strstr(h, "+avx,") || strstr(h, "+avx2") ? 8 : 4;
}

cg_llvm *cg_llvm_new(const char *name) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  cg_llvm *m = calloc(1, sizeof *m);
  m->tsc = LLVMOrcCreateNewThreadSafeContext();
  m->ctx = LLVMOrcThreadSafeContextGetContext(m->tsc);
  m->mod = LLVMModuleCreateWithNameInContext(name, m->ctx);
  char *triple = LLVMGetDefaultTargetTriple();
  LLVMTargetRef t = NULL;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &err) == 0) {
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    m->tm = LLVMCreateTargetMachine(t, triple, cpu, feat, LLVMCodeGenLevelAggressive, LLVMRelocDefault,
                                    LLVMCodeModelJITDefault);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(m->tm);
    LLVMSetModuleDataLayout(m->mod, td);
    LLVMDisposeTargetData(td);
  }
  if (err) LLVMDisposeMessage(err);
  LLVMSetTarget(m->mod, triple);
  LLVMDisposeMessage(triple);
  m->width = cg_llvm_vector_width();
  return m;
}

bool cg_llvm_add(cg_llvm *m, const cg_kernel *k, char *why, size_t n) {
  if (!cg_k_check(k, why, n)) return false;
  if (LLVMGetNamedFunction(m->mod, k->name)) {
    snprintf(why, n, "duplicate kernel name %s", k->name);
    return false;
  }
  if (k->kind != CG_K_ROW) return cg_attn_llvm(m, k, why, n);
  row_kernel(m, k);
  return true;
}

bool cg_llvm_optimize(cg_llvm *m, char *why, size_t n) {
  char *msg = NULL;
  if (LLVMVerifyModule(m->mod, LLVMReturnStatusAction, &msg)) {
    snprintf(why, n, "LLVM verifier: %s", msg ? msg : "?");
    LLVMDisposeMessage(msg);
    return false;
  }
  LLVMDisposeMessage(msg);
  LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(o, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(o, 1);
  LLVMErrorRef err = LLVMRunPasses(m->mod, "default<O3>", m->tm, o);
  LLVMDisposePassBuilderOptions(o);
  if (err) {
    char *s = LLVMGetErrorMessage(err);
    snprintf(why, n, "LLVM O3: %s", s);
    LLVMDisposeErrorMessage(s);
    return false;
  }
  return true;
}

char *cg_llvm_text(cg_llvm *m) {
  char *s = LLVMPrintModuleToString(m->mod);
  char *r = strdup(s);
  LLVMDisposeMessage(s);
  return r;
}

void cg_llvm_free(cg_llvm *m) {
  if (!m) return;
  if (m->mod) LLVMDisposeModule(m->mod);
  if (m->tm) LLVMDisposeTargetMachine(m->tm);
  if (m->tsc) LLVMOrcDisposeThreadSafeContext(m->tsc);
  free(m);
}
