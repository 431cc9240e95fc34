/* gpu.c — the program's GPU part (format/program.h, fmt_gpu; docs/gpu.md):
 * how a GPU runs each op, the CUDA modules, streams, working copies, scratch.
 * Runs only when the layout is compiled for the GPU (lay.device = 1).
 *
 * One pass and two helpers of the driver:
 *  - lw_gpu (after arena.c): device dtypes (under bf16 or f16 every
 *    activation and activation-gradient tensor takes that dtype; parameters,
 *    parameter gradients, which are accumulated in f32, optimizer state and
 *    the loss stay f32); the device arena, arena.c's plan run again with
 *    the registers in device bytes (the graph keeps its logical dtypes and
 *    the CPU plan, so the CPU executor runs the same program); then per op
 *    one of: a GEMM through cuBLAS (the
 *    row-major operands, leading dimensions, batch strides and dtypes of the
 *    CPU kernel's call), codegen's varlen attention forward/backward (packed
 *    sequences of equal length S), codegen's row kernel of the op alone
 *    (cg_fuse_ex with one kernel per op, as runtime/jit.c, its buffers bound
 *    to the op's slots), an ops_cuda.c kernel (gathers, layout ops, norm
 *    gradients, the CPU's dropout mask, broadcasts), a byte copy (reshape,
 *    one-rank collectives), or the host (the CPU kernel on copies: always
 *    correct, slow, reported). Kernels with the same source are one module;
 *    module 0 holds the executor's own kernels (cg_rt_cuda). A parameter that
 *    a GEMM reads under bf16/f16 gets a 16-bit working copy after the
 *    persistent arena (AdamW writes it); attention gets a scratch region
 *    (cu_seqlens, lse, delta, the forward output again). Compute and optim
 *    actors use the compute stream, every other actor the communication
 *    stream.
 *  - lw_gpu_write: DIR/gpu/NAME.cu and, when NVRTC is present, NAME.sm_80.ptx
 *    and NAME.sm_90.ptx (first line: the module's source hash), through the
 *    kernel cache.
 *  - lw_gpu_dump: the GPU part as text (`sbpc compile --dump gpu`; golden
 *    tests): per actor its kernel, launch, stream and its registers' arena
 *    offsets. */
#include "lower/lower.h"
#include "codegen/cg.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int64_t dimv(const ir_graph *g, ir_ref t, int i) {
  const ir_tensor *x = &g->t[t];
  if (i < 0) i += x->rank;
  if (i < 0 || i >= x->rank) return 1;
  return ir_dim_eval(x->shape[i], g->bind_b, g->bind_s);
}

static bool on(const lw_ctx *c) { return c->lay.device == 1; }
static ir_dtype prec(const lw_ctx *c) { return c->lay.precision == IR_BF16 || c->lay.precision == IR_F16 ? (ir_dtype)c->lay.precision : IR_F32; }

/* ---- device dtypes ----------------------------------------------------------- */
static bool param_grad(const ir_graph *g, const ir_tensor *t) {
  return t->kind == IR_T_GRAD && t->grad_of >= 0 && t->grad_of < g->nt && g->t[t->grad_of].kind == IR_T_PARAM;
}

/* the gradient an AdamW update reads */
static bool feeds_adamw(const ir_graph *g, ir_ref t) {
  for (int k = 0; k < g->nop; k++)
    if (g->op[k].kind == IR_OP_ADAMW && g->op[k].in[1] == t) return true;
  return false;
}

/* tensors whose values are summed into a parameter gradient stay f32: the
 * outputs of scatter-adds and column sums (embedding_grad, sum_rows, the
 * norm gradients' dw, db) and the terms of gradient sums (adds) */
static bool f32_grad(const ir_graph *g, const uint8_t *keep, ir_ref t) {
  const ir_op *o = g->t[t].producer >= 0 ? &g->op[g->t[t].producer] : NULL;
  if (!o) return false;
  if (o->kind == IR_OP_EMBEDDING_GRAD || o->kind == IR_OP_SUM_ROWS) return true;
  if ((o->kind == IR_OP_LAYER_NORM_GRAD || o->kind == IR_OP_RMS_NORM_GRAD) && o->out[0] != t) return true;
  for (int k = 0; k < g->nop; k++) /* an add that makes a kept gradient */
    if (g->op[k].kind == IR_OP_ADD && keep[g->op[k].out[0]] && (g->op[k].in[0] == t || g->op[k].in[1] == t)) return true;
  return false;
}

/* per tensor its device dtype: the precision for activations and their
 * gradients; parameters, parameter gradients (and what sums into them),
 * state and the loss f32 */
static uint8_t *device_dtypes(lw_ctx *c) {
  const ir_graph *g = c->p->g;
  uint8_t *d = ARENA_ARRAY(c->p->a, uint8_t, g->nt + 1), *keep = xcalloc((size_t)g->nt + 1, 1);
  for (int i = 0; i < g->nt; i++) keep[i] = param_grad(g, &g->t[i]) || feeds_adamw(g, i);
  for (int i = g->nt - 1; i >= 0; i--) /* gradient sums are made after their terms: walk back */
    keep[i] |= f32_grad(g, keep, i);
  for (int i = 0; i < g->nt; i++) {
    const ir_tensor *t = &g->t[i];
    bool act = t->dtype == IR_F32 && i != g->loss && (t->kind == IR_T_ACT || t->kind == IR_T_GRAD);
    d[i] = act && !keep[i] ? (uint8_t)prec(c) : t->dtype;
  }
  free(keep);
  return d;
}

/* swap the graph's dtypes with d (the device view while the pass runs, and
 * back to the logical ones after it) */
static void swap_dtypes(ir_graph *g, uint8_t *d) {
  for (int i = 0; i < g->nt; i++) {
    uint8_t t = g->t[i].dtype;
    g->t[i].dtype = d[i], d[i] = t;
  }
}

/* the device arena: arena.c's plan again with registers in device bytes, its
 * offsets kept in the GPU part and the CPU plan restored */
static void device_arena(lw_ctx *c) {
  fmt_prog *p = c->p;
  int64_t peak = p->predicted_peak;
  typedef struct { int64_t bytes, *off; int32_t *nwait, **wait; } saved;
  saved **sv = xcalloc((size_t)p->nstage, sizeof *sv);
  int64_t *ab = xcalloc((size_t)p->nstage, sizeof *ab);
  for (int s = 0; s < p->nstage; s++) {
    fmt_stage *st = &p->stage[s];
    sv[s] = xcalloc((size_t)st->nreg + 1, sizeof **sv);
    ab[s] = st->arena_bytes;
    for (int r = 0; r < st->nreg; r++) {
      fmt_reg *g = &st->reg[r];
      sv[s][r] = (saved){g->bytes, g->offset, g->nwait, g->wait};
      g->bytes = ir_numel(p->g, g->tensor) * ir_dtype_size((ir_dtype)p->g->t[g->tensor].dtype);
    }
  }
  lw_arena_plan(c, false); /* the device executor copies reshapes and accumulates itself */
  for (int s = 0; s < p->nstage; s++) {
    fmt_stage *st = &p->stage[s];
    fmt_gstage *gs = &p->gpu->stage[s];
    gs->arena_bytes = st->arena_bytes;
    gs->offset = ARENA_ARRAY(p->a, int64_t *, st->nreg + 1);
    for (int r = 0; r < st->nreg; r++) {
      fmt_reg *g = &st->reg[r];
      gs->offset[r] = g->offset;
      g->bytes = sv[s][r].bytes, g->offset = sv[s][r].off, g->nwait = sv[s][r].nwait, g->wait = sv[s][r].wait;
    }
    st->arena_bytes = ab[s];
    free(sv[s]);
  }
  free(sv), free(ab);
  p->predicted_peak = peak;
}

/* ---- modules ---------------------------------------------------------------- */
typedef struct {
  lw_ctx *c;
  fmt_gpu *G;
  arena *ka;     /* codegen's kernels */
  int cap;
} gctx;

/* the module holding src (made by mk(name) for a fresh name), deduplicated */
static int module(gctx *x, const char *probe_src, char *(*mk)(void *, const char *), void *arg, const char *tag,
                  const char *const *entries, int nentry) {
  fmt_prog *p = x->c->p;
  fmt_gpu *G = x->G;
  /* probe_src was made with the name "sbk": equal probes are one kernel */
  uint64_t h = cg_hash(probe_src, strlen(probe_src), 0);
  for (int i = 1; i < G->nmod; i++)
    if (G->mod[i].hash == h) return i;
  if (G->nmod == x->cap) {
    x->cap = 2 * x->cap + 16;
    fmt_gmod *m = ARENA_ARRAY(p->a, fmt_gmod, x->cap);
    if (G->nmod) memcpy(m, G->mod, sizeof *m * (size_t)G->nmod);
    G->mod = m;
  }
  fmt_gmod *m = &G->mod[G->nmod];
  char name[64];
  snprintf(name, sizeof name, "m%d_%s", G->nmod, tag);
  for (char *q = name; *q; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9'))) *q = '_';
  char *src = mk(arg, name);
  if (!src) return -1;
  m->name = arena_strdup(p->a, name);
  m->cuda = arena_strdup(p->a, src);
  free(src);
  m->hash = h; /* the probe's: equal kernels meet here whatever their name */
  m->nentry = nentry;
  m->entry = ARENA_ARRAY(p->a, const char *, nentry + 1);
  for (int i = 0; i < nentry; i++) m->entry[i] = arena_printf(p->a, "%s%s", name, entries[i]);
  return G->nmod++;
}

/* ---- GEMM -------------------------------------------------------------------- */
static bool gemm(gctx *x, const ir_op *o, fmt_gop *q) {
  const ir_graph *g = x->c->p->g;
  ir_ref a = o->in[0], b = o->in[1], y = o->out[0];
  int ra = g->t[a].rank, rb = g->t[b].rank;
  if (ra < 2 || rb < 2) return false;
  bool ta = o->at.trans_a, tb = o->at.trans_b;
  int64_t m = dimv(g, y, -2), n = dimv(g, y, -1), k = ta ? dimv(g, a, -2) : dimv(g, a, -1);
  int64_t batch = ir_numel(g, y) / (m * n), *v = q->arg;
  v[FMT_GA_TA] = ta, v[FMT_GA_TB] = tb, v[FMT_GA_N] = n, v[FMT_GA_K] = k;
  v[FMT_GA_LDA] = dimv(g, a, -1), v[FMT_GA_LDB] = dimv(g, b, -1), v[FMT_GA_LDC] = n;
  if (rb == 2 && !ta) {
    v[FMT_GA_M] = batch * m, v[FMT_GA_BATCH] = 1;
  } else {
    v[FMT_GA_M] = m, v[FMT_GA_BATCH] = batch;
    v[FMT_GA_SA] = m * k, v[FMT_GA_SB] = rb == 2 ? 0 : k * n, v[FMT_GA_SC] = m * n;
  }
  for (int i = 0; i < 2; i++)
    if (g->t[o->in[i]].kind == IR_T_PARAM && prec(x->c) != IR_F32) q->work |= 1u << i;
  v[FMT_GA_DTA] = q->work & 1 ? prec(x->c) : g->t[a].dtype;
  v[FMT_GA_DTB] = q->work & 2 ? prec(x->c) : g->t[b].dtype;
  v[FMT_GA_DTC] = g->t[y].dtype;
  q->kind = FMT_G_GEMM;
  return v[FMT_GA_DTA] == v[FMT_GA_DTB] && v[FMT_GA_DTA] != IR_I32 && v[FMT_GA_DTC] != IR_I32;
}

/* ---- attention ----------------------------------------------------------------- */
typedef struct {
  arena *a;
  cg_kkind kind;
  cg_attn at;
} attn_mk;

static char *mk_attn(void *arg, const char *name) {
  attn_mk *m = arg;
  return cg_emit_cuda(cg_k_attn(m->a, name, m->kind, m->at));
}

static int attn_module(gctx *x, cg_kkind kind, cg_attn at) {
  attn_mk m = {x->ka, kind, at};
  char *probe = mk_attn(&m, "sbk");
  static const char *const fe[] = {""}, *const be[] = {"_pre", "_dkdv", "_dq"};
  int r = module(x, probe, mk_attn, &m, kind == CG_K_ATTN_FWD ? "attn_fwd" : "attn_bwd", kind == CG_K_ATTN_FWD ? fe : be,
                 kind == CG_K_ATTN_FWD ? 1 : 3);
  free(probe);
  return r;
}

static int64_t attention(gctx *x, const ir_op *o, fmt_gop *q) {
  const ir_graph *g = x->c->p->g;
  ir_ref t = o->in[0];
  int64_t S = dimv(g, t, -2), L = dimv(g, t, -1), heads = o->at.heads > 0 ? o->at.heads : 1;
  bool fwd = o->kind == IR_OP_ATTENTION, fused = fwd ? o->nin == 1 : o->nin == 3;
  int64_t H = fused ? L / 3 : L, kvh = fused || o->at.kv_heads <= 0 ? heads : o->at.kv_heads, d = H / heads;
  int64_t *v = q->arg, nseq = ir_numel(g, t) / (S * L);
  v[FMT_GT_NSEQ] = nseq, v[FMT_GT_SEQ] = S, v[FMT_GT_QS] = fused ? 3 * H : H;
  v[FMT_GT_KVS] = fused ? 3 * H : kvh * d, v[FMT_GT_OS] = H, v[FMT_GT_KOFF] = fused ? H : 0;
  v[FMT_GT_VOFF] = fused ? 2 * H : 0, v[FMT_GT_FUSED] = fused, v[FMT_GT_HEADS] = heads, v[FMT_GT_KVH] = kvh;
  v[FMT_GT_D] = d, v[FMT_GT_BK] = cg_attn_bk((int)d);
  int dt = g->t[t].dtype;
  for (int i = 0; i < o->nin; i++)
    if (g->t[o->in[i]].dtype != dt) return -1;
  if (d * heads != H || heads % kvh || d > 256 || (dt != IR_F32 && dt != IR_BF16 && dt != IR_F16)) return -1;
  cg_attn at = {(int)heads, (int)kvh, (int)d, o->at.causal, (float)(o->at.scale != 0 ? o->at.scale : 1.0 / sqrt((double)d)), dt};
  int fm = attn_module(x, CG_K_ATTN_FWD, at);
  q->kind = fwd ? FMT_G_ATTN_FWD : FMT_G_ATTN_BWD;
  q->module = fwd ? fm : attn_module(x, CG_K_ATTN_BWD, at);
  v[FMT_GT_FWDMOD] = fm;
  if (fm < 0 || q->module < 0) return -1;
  /* scratch: cu_seqlens, lse, delta, the forward output again */
  int64_t T = nseq * S, sz = ir_dtype_size((ir_dtype)dt);
  return 256 + (nseq + 1) * 4 + 2 * heads * T * 4 + T * H * sz + 3 * 256;
}

/* ---- row kernels and ops_cuda kernels ------------------------------------------------ */
static int slot_of(const ir_op *o, ir_ref t) {
  for (int i = 0; i < o->nin; i++)
    if (o->in[i] == t) return i;
  for (int i = 0; i < o->nout; i++)
    if (o->out[i] == t) return -1 - i;
  return -1000;
}

static bool has_rand(const cg_kernel *k) {
  for (int i = 0; i < k->nnode; i++)
    if (k->node[i].op == CG_RAND) return true;
  return false;
}

static char *mk_row(void *arg, const char *name) {
  cg_kernel *k = arg;
  k->name = name;
  return cg_emit_cuda(k);
}

static bool row(gctx *x, const ir_op *o, cg_kernel *k, fmt_gop *q) {
  const ir_graph *g = x->c->p->g;
  if (!k || k->kind != CG_K_ROW || k->overflow || has_rand(k) || k->nbuf > FMT_G_MAXBIND || k->nscalar > FMT_G_MAXSCALAR) return false;
  bool bound[IR_MAXOUT] = {0};
  for (int i = 0; i < k->nbuf; i++) {
    const cg_buf *b = &k->buf[i];
    int s = b->tensor >= 0 ? slot_of(o, b->tensor) : -1000;
    if (s == -1000 || b->dtype != g->t[b->tensor].dtype) return false;
    if (s < 0) bound[-1 - s] = true;
    if (b->role == CG_ACC) q->zero |= 1u << (-1 - s);
    q->bind[i] = (int8_t)s;
  }
  for (int i = 0; i < o->nout; i++)
    if (!bound[i]) return false;
  const char *saved = k->name;
  char *probe = mk_row(k, "sbk");
  q->module = module(x, probe, mk_row, k, k->ops ? k->ops : "row", (const char *const[]){""}, 1);
  free(probe);
  k->name = saved;
  if (q->module < 0) return false;
  q->kind = FMT_G_ROW, q->nbind = k->nbuf, q->nscalar = k->nscalar;
  if (k->nscalar) memcpy(q->scalar, k->scalar_default, sizeof(float) * (size_t)k->nscalar);
  q->arg[0] = k->rows, q->arg[1] = k->cols;
  int blk;
  cg_cuda_launch(k, k->rows, k->cols, &q->grid, &blk);
  q->block = blk;
  return true;
}

typedef struct {
  const ir_graph *g;
  const ir_op *o;
  int64_t grid;
  int block;
  uint32_t zero;
} op_mk;

static char *mk_op(void *arg, const char *name) {
  op_mk *m = arg;
  return cg_op_cuda(m->g, m->o, name, &m->grid, &m->block, &m->zero);
}

static bool op_kernel(gctx *x, const ir_op *o, fmt_gop *q) {
  op_mk m = {x->c->p->g, o, 0, 0, 0};
  char *probe = mk_op(&m, "sbk");
  if (!probe) return false;
  q->module = module(x, probe, mk_op, &m, ir_ops[o->kind].name, (const char *const[]){""}, 1);
  free(probe);
  if (q->module < 0) return false;
  q->kind = FMT_G_KERNEL, q->grid = m.grid, q->block = m.block, q->zero = m.zero;
  q->arg[0] = o->kind == IR_OP_DROPOUT || o->kind == IR_OP_DROPOUT_GRAD;
  return true;
}

/* ---- per op ---------------------------------------------------------------------- */
static bool comm_op(int kind) {
  return kind == IR_OP_ALL_REDUCE || kind == IR_OP_ALL_GATHER || kind == IR_OP_REDUCE_SCATTER ||
         kind == IR_OP_ALL_TO_ALL || kind == IR_OP_SEND_RECV || kind == IR_OP_SLICE;
}

static void host(fmt_gop *q) {
  memset(q, 0, sizeof *q);
  q->module = -1, q->kind = FMT_G_HOST;
}

/* the kernel of op k (rk: its codegen row kernel, or NULL); returns the
 * scratch bytes it needs */
static int64_t choose(gctx *x, int k, cg_kernel *rk) {
  const fmt_prog *p = x->c->p;
  const ir_op *o = &p->g->op[k];
  fmt_gop *q = &x->G->op[k];
  int kind = o->kind;
  int64_t scratch = 0;
  bool same = o->nin >= 1 && o->nout >= 1 && p->g->t[o->in[0]].dtype == p->g->t[o->out[0]].dtype &&
              ir_numel(p->g, o->in[0]) == ir_numel(p->g, o->out[0]);
  host(q);
  if (kind == IR_OP_ADAMW || (comm_op(kind) && p->tp > 1)) {
    q->kind = FMT_G_NONE; /* optim and coll actors */
  } else if (kind == IR_OP_MATMUL) {
    if (!gemm(x, o, q)) host(q);
  } else if (kind == IR_OP_ATTENTION || kind == IR_OP_ATTENTION_GRAD) {
    if ((scratch = attention(x, o, q)) < 0) host(q), scratch = 0;
  } else if ((kind == IR_OP_RESHAPE || comm_op(kind)) && same) {
    q->kind = FMT_G_COPY;
  } else if (kind == IR_OP_DROPOUT || kind == IR_OP_DROPOUT_GRAD || !row(x, o, rk, q)) {
    host(q); /* row() may have filled part of it */
    if (!op_kernel(x, o, q)) host(q);
  }
  if (kind == IR_OP_CROSS_ENTROPY_GRAD && prec(x->c) == IR_F16) q->loss_scale = true;
  return scratch;
}

/* the 16-bit working copies of parameters GEMMs read, per stage */
static void working_copies(gctx *x) {
  fmt_prog *p = x->c->p;
  const ir_graph *g = p->g;
  bool *need = xcalloc((size_t)g->nt + 1, 1);
  for (int k = 0; k < g->nop; k++)
    for (int i = 0; i < g->op[k].nin; i++)
      if (x->G->op[k].work >> i & 1) need[g->op[k].in[i]] = true;
  for (int s = 0; s < p->nstage; s++) {
    const fmt_stage *st = &p->stage[s];
    fmt_gstage *gs = &x->G->stage[s];
    gs->work = ARENA_ARRAY(p->a, fmt_gwork, st->npers + 1);
    for (int i = 0; i < st->npers; i++) {
      const fmt_pers *q = &st->pers[i];
      if (q->role != FMT_P_PARAM || !need[q->tensor]) continue;
      int64_t b = ir_numel(g, q->tensor) * 2;
      gs->work[gs->nwork++] = (fmt_gwork){q->tensor, gs->work_bytes, b};
      gs->work_bytes += (b + 255) / 256 * 256;
    }
  }
  free(need);
}

static char *mk_rt(void *arg, const char *name) {
  (void)arg, (void)name;
  return cg_rt_cuda();
}

/* streams, scratch and the predicted device peak of every stage */
static void stages(gctx *x, int64_t scratch) {
  fmt_prog *p = x->c->p;
  fmt_gpu *G = x->G;
  for (int s = 0; s < p->nstage; s++) {
    const fmt_stage *st = &p->stage[s];
    fmt_gstage *gs = &G->stage[s];
    gs->stream = ARENA_ARRAY(p->a, uint8_t, st->nact + 1);
    for (int a = 0; a < st->nact; a++)
      gs->stream[a] = st->act[a].kind == FMT_A_COMPUTE || st->act[a].kind == FMT_A_OPTIM ? FMT_S_COMPUTE : FMT_S_COMM;
    gs->scratch_bytes = scratch;
    int64_t peak = gs->arena_bytes + st->persist_bytes + gs->work_bytes + scratch;
    G->predicted_peak = peak > G->predicted_peak ? peak : G->predicted_peak;
  }
}

/* module 0: the executor's own kernels */
static void rt_module(gctx *x) {
  int n = 0;
  while (cg_rt_cuda_entries[n]) n++;
  char *rt = cg_rt_cuda();
  module(x, rt, mk_rt, NULL, "rt", cg_rt_cuda_entries, n);
  x->G->mod[0].name = "sbpc_rt";
  for (int i = 0; i < n; i++) x->G->mod[0].entry[i] = cg_rt_cuda_entries[i];
  free(rt);
}

bool lw_gpu(lw_ctx *c) {
  if (!on(c)) return true;
  fmt_prog *p = c->p;
  fmt_gpu *G = p->gpu = ARENA_NEW(p->a, fmt_gpu);
  gctx x = {c, G, arena_new(), 0};
  G->precision = (uint8_t)prec(c);
  G->op = ARENA_ARRAY(p->a, fmt_gop, p->g->nop + 1);
  G->stage = ARENA_ARRAY(p->a, fmt_gstage, p->nstage);
  uint8_t *dt = device_dtypes(c);
  swap_dtypes(p->g, dt); /* the device view: dt holds the logical dtypes now */
  device_arena(c);
  rt_module(&x);
  cg_fusion *f = cg_fuse_ex(p->g, IR_F32, true, x.ka);
  cg_kernel **rk = xcalloc((size_t)p->g->nop + 1, sizeof *rk);
  for (int i = 0; i < f->n; i++)
    if (f->g[i].nops == 1 && f->g[i].k) rk[f->g[i].ops[0]] = f->g[i].k;
  int64_t scratch = 0;
  for (int k = 0; k < p->g->nop; k++) {
    int64_t s = choose(&x, k, rk[k]);
    scratch = s > scratch ? s : scratch;
  }
  free(rk);
  working_copies(&x);
  stages(&x, scratch);
  swap_dtypes(p->g, dt); /* logical again; dt the device dtypes */
  G->dtype = dt;
  arena_free(x.ka);
  return true;
}

/* ---- PTX files --------------------------------------------------------------------- */
static bool write_text(const char *path, const char *a, const char *b) {
  FILE *f = fopen(path, "wb");
  bool ok = f && fputs(a, f) >= 0 && (!b || fputs(b, f) >= 0);
  ok = f && fclose(f) == 0 && ok;
  if (!ok) sbpc_error("cannot write %s: %s", path, strerror(errno));
  return ok;
}

int lw_gpu_write(const fmt_prog *p, const char *dir, bool no_cache, FILE *log) {
  if (!p->gpu) return EXIT_OK;
  char path[4400];
  snprintf(path, sizeof path, "%s/gpu", dir);
  if (mkdir(path, 0755) && errno != EEXIST) return sbpc_error("cannot create %s: %s", path, strerror(errno)), EXIT_BAD_INPUT;
  int maj = 0, min = 0;
  bool nv = cg_nvrtc_available(&maj, &min);
  const int arch[2] = {80, 90};
  for (int i = 0; i < p->gpu->nmod; i++) {
    const fmt_gmod *m = &p->gpu->mod[i];
    snprintf(path, sizeof path, "%s/gpu/%s.cu", dir, m->name);
    if (!write_text(path, m->cuda, NULL)) return EXIT_BAD_INPUT;
    for (int a = 0; a < 2 && nv; a++) {
      char *lg = NULL, *ptx = cg_nvrtc_module(m->cuda, m->name, arch[a], no_cache, &lg);
      if (!ptx) {
        sbpc_error("internal: NVRTC failed on module %s for sm_%d:\n%s", m->name, arch[a], lg ? lg : "");
        free(lg);
        return EXIT_INTERNAL;
      }
      char head[64];
      snprintf(head, sizeof head, "// sbpc module %016llx\n", (unsigned long long)m->hash);
      snprintf(path, sizeof path, "%s/gpu/%s.sm_%d.ptx", dir, m->name, arch[a]);
      bool ok = write_text(path, head, ptx);
      free(ptx), free(lg);
      if (!ok) return EXIT_BAD_INPUT;
    }
  }
  if (log)
    fprintf(log, "gpu: %d modules (%s), precision %s, predicted device peak %.1f MiB per rank\n", p->gpu->nmod,
            nv ? "PTX for sm_80 and sm_90" : "no NVRTC: CUDA C only, compiled when the run starts",
            ir_dtype_name((ir_dtype)p->gpu->precision), (double)p->gpu->predicted_peak / 1048576.0);
  return EXIT_OK;
}

/* ---- the dump ---------------------------------------------------------------------- */
/* registers r with their device offset (micro-batch 0) */
static void dump_regs(FILE *f, const fmt_gstage *gs, const char *what, const int32_t *r, int n) {
  for (int i = 0; i < n; i++) {
    if (r[i] < 0) {
      fprintf(f, " %s -", what);
      continue;
    }
    fprintf(f, " %s r%d@%lld", what, r[i], (long long)gs->offset[r[i]][0]);
  }
}

static void dump_op(FILE *f, const fmt_prog *p, const fmt_gop *q) {
  const fmt_gpu *G = p->gpu;
  fprintf(f, " %s", fmt_gkind_name[q->kind]);
  if (q->module >= 0) fprintf(f, " %s", G->mod[q->module].name);
  if (q->grid) fprintf(f, " grid %lld block %d", (long long)q->grid, q->block);
  if (q->kind == FMT_G_GEMM)
    fprintf(f, " m %lld n %lld k %lld batch %lld%s%s %s,%s->%s", (long long)q->arg[FMT_GA_M], (long long)q->arg[FMT_GA_N],
            (long long)q->arg[FMT_GA_K], (long long)q->arg[FMT_GA_BATCH], q->arg[FMT_GA_TA] ? " ta" : "",
            q->arg[FMT_GA_TB] ? " tb" : "", ir_dtype_name((ir_dtype)q->arg[FMT_GA_DTA]),
            ir_dtype_name((ir_dtype)q->arg[FMT_GA_DTB]), ir_dtype_name((ir_dtype)q->arg[FMT_GA_DTC]));
  if (q->kind == FMT_G_ATTN_FWD || q->kind == FMT_G_ATTN_BWD)
    fprintf(f, " seqs %lld x %lld heads %lld/%lld d %lld%s", (long long)q->arg[FMT_GT_NSEQ], (long long)q->arg[FMT_GT_SEQ],
            (long long)q->arg[FMT_GT_HEADS], (long long)q->arg[FMT_GT_KVH], (long long)q->arg[FMT_GT_D],
            q->arg[FMT_GT_FUSED] ? " fused" : "");
  if (q->nbind) {
    fprintf(f, " bind");
    for (int i = 0; i < q->nbind; i++) fprintf(f, "%s%d", i ? "," : " ", q->bind[i]);
  }
  if (q->zero) fprintf(f, " zero %u", q->zero);
  if (q->work) fprintf(f, " work %u", q->work);
  if (q->loss_scale) fprintf(f, " loss_scale");
}

void lw_gpu_dump(const fmt_prog *p, FILE *f) {
  const fmt_gpu *G = p->gpu;
  if (!G) {
    fprintf(f, "gpu: none (compiled for the CPU)\n");
    return;
  }
  int nk[FMT_NGKINDS] = {0};
  for (int k = 0; k < p->g->nop; k++) nk[G->op[k].kind]++;
  fprintf(f, "gpu: precision %s, %d modules, predicted peak %lld bytes; ops:", ir_dtype_name((ir_dtype)G->precision),
          G->nmod, (long long)G->predicted_peak);
  for (int i = 0; i < FMT_NGKINDS; i++)
    if (nk[i]) fprintf(f, " %s %d", fmt_gkind_name[i], nk[i]);
  fprintf(f, "\n");
  for (int s = 0; s < p->nstage; s++) {
    const fmt_stage *st = &p->stage[s];
    const fmt_gstage *gs = &G->stage[s];
    fprintf(f, "stage %d: arena %lld (cpu %lld) persistent %lld work %lld scratch %lld\n", s, (long long)gs->arena_bytes,
            (long long)st->arena_bytes,
            (long long)st->persist_bytes, (long long)gs->work_bytes, (long long)gs->scratch_bytes);
    for (int i = 0; i < gs->nwork; i++)
      fprintf(f, "  work %s @%lld (%lld bytes)\n", p->g->t[gs->work[i].tensor].name, (long long)gs->work[i].offset,
              (long long)gs->work[i].bytes);
    for (int a = 0; a < st->nact; a++) {
      const fmt_actor *x = &st->act[a];
      fprintf(f, "  a%d %s %s", a, fmt_akind_name[x->kind], gs->stream[a] == FMT_S_COMPUTE ? "compute" : "comm");
      if (x->op >= 0) fprintf(f, " op%d %s", x->op, ir_ops[p->g->op[x->op].kind].name);
      if (x->bucket >= 0) fprintf(f, " bucket %d", x->bucket);
      if (x->kind == FMT_A_COMPUTE) dump_op(f, p, &G->op[x->op]);
      dump_regs(f, gs, "in", x->in, x->nin);
      dump_regs(f, gs, "out", x->out, x->nout);
      fprintf(f, "\n");
    }
  }
}
