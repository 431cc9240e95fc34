/* attn_llvm.c — variable-length attention (forward and backward) as LLVM IR.
 *
 * Same layout and semantics as attn_cuda.c (packed tokens, cu_seqlens, GQA,
 * causal or not), as a straightforward tiled loop nest for one CPU thread.
 * Forward, per (sequence, head, query): keys are visited in tiles of 32; the
 * tile's scores go to a 32-float stack array, the running max and sum are
 * updated once per tile (online softmax) and the accumulator is rescaled;
 * out = acc / sum and lse = max + log(sum) are stored. Backward, per (sequence,
 * head, query): delta = dO . O, then for each visible key the probability is
 * recomputed from lse and dQ, dK, dV are accumulated in place (dK, dV summed
 * over the query heads of a group). No S x S matrix exists in either.
 *
 * ABI: void NAME(void **bufs, const int64_t *dims, const float *unused)
 *   forward  bufs = {q, k, v, out, lse, cu}     backward bufs = {q, k, v, out,
 *   dout, lse, dq, dk, dv, cu}; dims = {ntok, nseq, q_stride, kv_stride,
 *   o_stride}; lse is [heads, ntok]; cu is int32[nseq + 1]. f32 only. */
#include "codegen/llvm_priv.h"
#include <math.h>
#include <string.h>

#define BC 32

typedef struct {
  cg_ll e;
  const cg_attn *at;
  LLVMTypeRef f32, i64;
  LLVMValueRef buf[10], ntok, nseq, qs, kvs, os;
  LLVMBuilderRef entry; /* allocas */
} ab;

static LLVMValueRef I(ab *x, int64_t v) { return cg_ll_i64(&x->e, v); }
static LLVMValueRef F(ab *x, double v) { return cg_ll_const(&x->e, x->f32, v); }

static LLVMValueRef gep(ab *x, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildGEP2(x->e.b, t, base, &idx, 1, "");
}
static LLVMValueRef ldf(ab *x, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildLoad2(x->e.b, x->f32, gep(x, x->f32, base, idx), "");
}
static void stf(ab *x, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v) {
  LLVMBuildStore(x->e.b, v, gep(x, x->f32, base, idx));
}
static LLVMValueRef add(ab *x, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(x->e.b, a, b, ""); }
static LLVMValueRef mul(ab *x, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(x->e.b, a, b, ""); }
static LLVMValueRef fadd(ab *x, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(x->e.b, a, b, ""); }
static LLVMValueRef fmul(ab *x, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(x->e.b, a, b, ""); }
static LLVMValueRef fsub(ab *x, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(x->e.b, a, b, ""); }

static LLVMValueRef var(ab *x, LLVMTypeRef t, int n) {
  return n == 1 ? LLVMBuildAlloca(x->entry, t, "")
                : LLVMBuildArrayAlloca(x->entry, t, LLVMConstInt(LLVMInt32TypeInContext(x->e.c), (unsigned)n, 0), "");
}
static LLVMValueRef get(ab *x, LLVMValueRef p) { return LLVMBuildLoad2(x->e.b, x->f32, p, ""); }
static void set(ab *x, LLVMValueRef p, LLVMValueRef v) { LLVMBuildStore(x->e.b, v, p); }

static LLVMValueRef fmaxv(ab *x, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef args[2] = {a, b};
  return cg_ll_intr(&x->e, "llvm.maxnum", x->f32, args, 2);
}

/* row: element offset of (token, head) in a buffer with the given stride. */
static LLVMValueRef row(ab *x, LLVMValueRef tok, LLVMValueRef stride, LLVMValueRef head) {
  return add(x, mul(x, tok, stride), mul(x, head, I(x, x->at->head_dim)));
}

/* dot: sum over d of a[pa + d] * b[pb + d]. */
static LLVMValueRef dot(ab *x, LLVMValueRef a, LLVMValueRef pa, LLVMValueRef b, LLVMValueRef pb, LLVMValueRef tmp) {
  set(x, tmp, F(x, 0));
  cg_ll_loop l;
  LLVMValueRef d = cg_ll_loop_begin(&x->e, &l, I(x, 0), I(x, x->at->head_dim), I(x, 1));
  set(x, tmp, fadd(x, get(x, tmp), fmul(x, ldf(x, a, add(x, pa, d)), ldf(x, b, add(x, pb, d)))));
  cg_ll_loop_end(&x->e, &l);
  return get(x, tmp);
}

static LLVMValueRef imin(ab *x, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(x->e.b, LLVMBuildICmp(x->e.b, LLVMIntSLT, a, b, ""), a, b, "");
}

static void prologue(cg_llvm *m, ab *x, const cg_kernel *k, int nbuf) {
  cg_ll *e = &x->e;
  e->c = m->ctx;
  e->m = m->mod;
  e->b = LLVMCreateBuilderInContext(m->ctx);
  x->entry = LLVMCreateBuilderInContext(m->ctx);
  x->f32 = LLVMFloatTypeInContext(e->c);
  x->i64 = LLVMInt64TypeInContext(e->c);
  x->at = &k->attn;
  LLVMTypeRef i8p = LLVMPointerType(LLVMInt8TypeInContext(e->c), 0);
  LLVMTypeRef ps[3] = {LLVMPointerType(i8p, 0), LLVMPointerType(x->i64, 0), LLVMPointerType(x->f32, 0)};
  e->fn = LLVMAddFunction(m->mod, k->name, LLVMFunctionType(LLVMVoidTypeInContext(e->c), ps, 3, 0));
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(e->c, e->fn, "entry");
  LLVMPositionBuilderAtEnd(x->entry, bb);
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->c, e->fn, "start");
  LLVMPositionBuilderAtEnd(e->b, body);
  LLVMValueRef bufs = LLVMGetParam(e->fn, 0), dims = LLVMGetParam(e->fn, 1);
  for (int i = 0; i < nbuf; i++)
    x->buf[i] = cg_ll_buf(e, bufs, i, i == nbuf - 1 ? LLVMInt32TypeInContext(e->c) : x->f32);
  LLVMValueRef *dv[5] = {&x->ntok, &x->nseq, &x->qs, &x->kvs, &x->os};
  for (int i = 0; i < 5; i++) *dv[i] = LLVMBuildLoad2(e->b, x->i64, gep(x, x->i64, dims, I(x, i)), "");
}

static void epilogue(ab *x) {
  LLVMBuildRetVoid(x->e.b);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(x->e.fn);
  LLVMPositionBuilderAtEnd(x->entry, entry);
  LLVMBuildBr(x->entry, LLVMGetNextBasicBlock(entry));
  LLVMDisposeBuilder(x->e.b);
  LLVMDisposeBuilder(x->entry);
}

/* seq_head_query: open loops over sequences, heads and queries; returns the
 * query index i; *start, *len, *h and *hk describe the position. */
typedef struct {
  cg_ll_loop ls, lh, li;
  LLVMValueRef start, len, h, hk, i, tok;
} shq;

static void fwd_query(ab *x, shq *q, LLVMValueRef mv, LLVMValueRef lv, LLVMValueRef acc, LLVMValueRef sc,
                      LLVMValueRef tmp) {
  int D = x->at->head_dim;
  LLVMValueRef *B = x->buf;
  LLVMValueRef qrow = row(x, q->tok, x->qs, q->h);
  set(x, mv, F(x, -INFINITY));
  set(x, lv, F(x, 0));
  cg_ll_loop ld;
  LLVMValueRef d = cg_ll_loop_begin(&x->e, &ld, I(x, 0), I(x, D), I(x, 1));
  stf(x, acc, d, F(x, 0));
  cg_ll_loop_end(&x->e, &ld);
  LLVMValueRef kend = x->at->causal ? add(x, q->i, I(x, 1)) : q->len;
  cg_ll_loop lb;
  LLVMValueRef kb = cg_ll_loop_begin(&x->e, &lb, I(x, 0), kend, I(x, BC));
  LLVMValueRef n = imin(x, I(x, BC), LLVMBuildSub(x->e.b, kend, kb, ""));
  LLVMValueRef mt = var(x, x->f32, 1);
  set(x, mt, get(x, mv));
  cg_ll_loop lj;
  LLVMValueRef j = cg_ll_loop_begin(&x->e, &lj, I(x, 0), n, I(x, 1));
  LLVMValueRef krow = row(x, add(x, add(x, q->start, kb), j), x->kvs, q->hk);
  LLVMValueRef s = fmul(x, dot(x, B[0], qrow, B[1], krow, tmp), F(x, x->at->scale));
  stf(x, sc, j, s);
  set(x, mt, fmaxv(x, get(x, mt), s));
  cg_ll_loop_end(&x->e, &lj);
  LLVMValueRef mnew = get(x, mt);
  LLVMValueRef corr = cg_ll_exp(&x->e, fsub(x, get(x, mv), mnew));
  set(x, lv, fmul(x, get(x, lv), corr));
  d = cg_ll_loop_begin(&x->e, &ld, I(x, 0), I(x, D), I(x, 1));
  stf(x, acc, d, fmul(x, ldf(x, acc, d), corr));
  cg_ll_loop_end(&x->e, &ld);
  j = cg_ll_loop_begin(&x->e, &lj, I(x, 0), n, I(x, 1));
  LLVMValueRef p = cg_ll_exp(&x->e, fsub(x, ldf(x, sc, j), mnew));
  set(x, lv, fadd(x, get(x, lv), p));
  LLVMValueRef vrow = row(x, add(x, add(x, q->start, kb), j), x->kvs, q->hk);
  cg_ll_loop ld2;
  d = cg_ll_loop_begin(&x->e, &ld2, I(x, 0), I(x, D), I(x, 1));
  stf(x, acc, d, fadd(x, ldf(x, acc, d), fmul(x, p, ldf(x, B[2], add(x, vrow, d)))));
  cg_ll_loop_end(&x->e, &ld2);
  cg_ll_loop_end(&x->e, &lj);
  set(x, mv, mnew);
  cg_ll_loop_end(&x->e, &lb);
  LLVMValueRef l = get(x, lv);
  LLVMValueRef inv = LLVMBuildFDiv(x->e.b, F(x, 1), l, "");
  LLVMValueRef orow = row(x, q->tok, x->os, q->h);
  d = cg_ll_loop_begin(&x->e, &ld, I(x, 0), I(x, D), I(x, 1));
  stf(x, B[3], add(x, orow, d), fmul(x, ldf(x, acc, d), inv));
  cg_ll_loop_end(&x->e, &ld);
  LLVMValueRef lg = cg_ll_intr(&x->e, "llvm.log", x->f32, &l, 1);
  stf(x, B[4], add(x, mul(x, q->h, x->ntok), q->tok), fadd(x, get(x, mv), lg));
}

static void bwd_query(ab *x, shq *q, LLVMValueRef tmp, LLVMValueRef tmp2) {
  int D = x->at->head_dim;
  LLVMValueRef *B = x->buf; /* q k v o dout lse dq dk dv cu */
  LLVMValueRef qrow = row(x, q->tok, x->qs, q->h), orow = row(x, q->tok, x->os, q->h);
  LLVMValueRef delta = dot(x, B[4], orow, B[3], orow, tmp);
  LLVMValueRef lse = ldf(x, B[5], add(x, mul(x, q->h, x->ntok), q->tok));
  LLVMValueRef kend = x->at->causal ? add(x, q->i, I(x, 1)) : q->len;
  cg_ll_loop lj, ld;
  LLVMValueRef j = cg_ll_loop_begin(&x->e, &lj, I(x, 0), kend, I(x, 1));
  LLVMValueRef krow = row(x, add(x, q->start, j), x->kvs, q->hk);
  LLVMValueRef s = dot(x, B[0], qrow, B[1], krow, tmp);
  LLVMValueRef dp = dot(x, B[4], orow, B[2], krow, tmp2);
  LLVMValueRef p = cg_ll_exp(&x->e, fsub(x, fmul(x, s, F(x, x->at->scale)), lse));
  LLVMValueRef ds = fmul(x, fmul(x, p, fsub(x, dp, delta)), F(x, x->at->scale));
  LLVMValueRef d = cg_ll_loop_begin(&x->e, &ld, I(x, 0), I(x, D), I(x, 1));
  LLVMValueRef qi = add(x, qrow, d), kj = add(x, krow, d), oi = add(x, orow, d);
  stf(x, B[6], qi, fadd(x, ldf(x, B[6], qi), fmul(x, ds, ldf(x, B[1], kj))));
  stf(x, B[7], kj, fadd(x, ldf(x, B[7], kj), fmul(x, ds, ldf(x, B[0], qi))));
  stf(x, B[8], kj, fadd(x, ldf(x, B[8], kj), fmul(x, p, ldf(x, B[4], oi))));
  cg_ll_loop_end(&x->e, &ld);
  cg_ll_loop_end(&x->e, &lj);
}

/* zero: clear the head columns of buffer b for every token. */
static void zero(ab *x, LLVMValueRef b, LLVMValueRef stride, int heads) {
  cg_ll_loop lt, ld;
  LLVMValueRef t = cg_ll_loop_begin(&x->e, &lt, I(x, 0), x->ntok, I(x, 1));
  LLVMValueRef d = cg_ll_loop_begin(&x->e, &ld, I(x, 0), I(x, (int64_t)heads * x->at->head_dim), I(x, 1));
  stf(x, b, add(x, mul(x, t, stride), d), F(x, 0));
  cg_ll_loop_end(&x->e, &ld);
  cg_ll_loop_end(&x->e, &lt);
}

static void loops(ab *x, bool fwd, int cu_slot) {
  shq q;
  LLVMTypeRef i32 = LLVMInt32TypeInContext(x->e.c);
  LLVMValueRef tmp = var(x, x->f32, 1), tmp2 = var(x, x->f32, 1);
  LLVMValueRef mv = var(x, x->f32, 1), lv = var(x, x->f32, 1);
  LLVMValueRef acc = var(x, x->f32, x->at->head_dim), sc = var(x, x->f32, BC);
  LLVMValueRef s = cg_ll_loop_begin(&x->e, &q.ls, I(x, 0), x->nseq, I(x, 1));
  LLVMValueRef c0 = LLVMBuildLoad2(x->e.b, i32, gep(x, i32, x->buf[cu_slot], s), "");
  LLVMValueRef c1 = LLVMBuildLoad2(x->e.b, i32, gep(x, i32, x->buf[cu_slot], add(x, s, I(x, 1))), "");
  q.start = LLVMBuildSExt(x->e.b, c0, x->i64, "");
  q.len = LLVMBuildSub(x->e.b, LLVMBuildSExt(x->e.b, c1, x->i64, ""), q.start, "");
  int G = x->at->heads / (x->at->kv_heads > 0 ? x->at->kv_heads : x->at->heads);
  q.h = cg_ll_loop_begin(&x->e, &q.lh, I(x, 0), I(x, x->at->heads), I(x, 1));
  q.hk = LLVMBuildSDiv(x->e.b, q.h, I(x, G > 0 ? G : 1), "");
  q.i = cg_ll_loop_begin(&x->e, &q.li, I(x, 0), q.len, I(x, 1));
  q.tok = add(x, q.start, q.i);
  if (fwd) fwd_query(x, &q, mv, lv, acc, sc, tmp);
  else bwd_query(x, &q, tmp, tmp2);
  cg_ll_loop_end(&x->e, &q.li);
  cg_ll_loop_end(&x->e, &q.lh);
  cg_ll_loop_end(&x->e, &q.ls);
}

bool cg_attn_llvm(struct cg_llvm *m, const cg_kernel *k, char *why, size_t n) {
  const cg_attn *a = &k->attn;
  int kvh = a->kv_heads > 0 ? a->kv_heads : a->heads;
  if (a->head_dim <= 0 || a->heads <= 0 || a->heads % kvh) {
    snprintf(why, n, "attention kernel %s: bad heads/head_dim", k->name);
    return false;
  }
  ab x;
  memset(&x, 0, sizeof x);
  bool fwd = k->kind == CG_K_ATTN_FWD;
  prologue(m, &x, k, fwd ? 6 : 10);
  if (!fwd) {
    zero(&x, x.buf[6], x.qs, a->heads);
    zero(&x, x.buf[7], x.kvs, kvh);
    zero(&x, x.buf[8], x.kvs, kvh);
  }
  loops(&x, fwd, fwd ? 5 : 9);
  epilogue(&x);
  return true;
}
