/* layer.c — per-block summaries: one SBP program per block type and setting.
 *
 * plan_model_new analyses the graph once: the forward ops of layer 0 of every
 * block (the template every layer of the block shares), the forward ops
 * outside blocks (the "pre" part before the first block and the "post" part
 * after), and the carried tensors (what layer l hands to layer l+1).
 *
 * plan_model_solve(key) builds, for each block, the program of sbp_ilp.c:
 * nodes are the template's ops (choices: their 1-D signatures on the tp axis)
 * and the tensors entering the layer (parameters, inputs, the carried layer
 * input; choices: B or a divisible S(i)). Costs, per micro-batch: a node costs
 * its forward + backward (+ recomputed forward) rooflines; an edge costs the
 * forward boxing (twice with full recompute), the boxing of the gradient on
 * the way back (plan_grad_sbp -> plan_need_sbp), and for parameters the
 * per-step gradient reduction over tp divided by the micro-batch count. The
 * carried output of a layer connects back to the layer's input node, so the
 * chosen layout is consistent across layers. The non-block ops form one more
 * program whose interfaces to the blocks are fixed to the blocks' choices.
 * From the solution come the per-layer numbers plan_lsum holds (times,
 * saved activations by recompute policy, parameters per device). Results are
 * cached per key, so a 128-layer model costs what one layer costs. */
#include "planner/plan_int.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  ir_ref *ops;
  int nops;
} region;

typedef struct {
  ir_ref in, out; /* layer-0 input tensor, the layer-0 tensor that layer 1 gets there */
} carry;

struct plan_model {
  const ir_graph *g;
  arena *a;
  int nblk, L;
  region *blk;       /* layer-0 template per block */
  carry **carries;   /* per block */
  int *ncarry;
  ir_ref **lidx_op;  /* per block: layer-0 op by lidx */
  int *nlidx;
  region rest;
  char *fused;       /* per tensor: internal to a chain of elementwise ops (never in memory) */
  char *qkv;         /* per tensor: on a fused attention's qkv path (its matmul's weight, bias_add, add) */
  ir_ref first_block_op;
  plan_sol **cache;
  int ncache, capcache;
};

static bool fwd_op(const ir_op *o) {
  if (o->backward || o->kind >= IR_NOPKIND) return false;
  int kc = ir_ops[o->kind].kclass;
  return kc != KC_COMM && kc != KC_OPT;
}

static void find_carries(plan_model *pm, int b) {
  const ir_graph *g = pm->g;
  pm->carries[b] = ARENA_ARRAY(pm->a, carry, IR_MAXIN * (pm->blk[b].nops + 1));
  if (g->blk[b].count < 2) return;
  ir_ref *l1 = ARENA_ARRAY(pm->a, ir_ref, pm->nlidx[b] + 1);
  for (int i = 0; i <= pm->nlidx[b]; i++) l1[i] = IR_NONE;
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (o->block == b && o->layer == 1 && fwd_op(o) && o->lidx >= 0 && o->lidx < pm->nlidx[b]) l1[o->lidx] = i;
  }
  for (int k = 0; k < pm->blk[b].nops; k++) {
    const ir_op *o = &g->op[pm->blk[b].ops[k]];
    if (o->lidx < 0 || o->lidx >= pm->nlidx[b] || l1[o->lidx] == IR_NONE) continue;
    const ir_op *o1 = &g->op[l1[o->lidx]];
    for (int i = 0; i < o->nin && i < o1->nin; i++) {
      ir_ref t = o->in[i], t1 = o1->in[i];
      const ir_tensor *x = &g->t[t];
      if (x->kind != IR_T_ACT || (x->producer >= 0 && g->op[x->producer].block == b)) continue;
      ir_ref p1 = g->t[t1].producer;
      if (p1 < 0 || g->op[p1].block != b || g->op[p1].layer != 0) continue;
      bool dup = false;
      for (int c = 0; c < pm->ncarry[b]; c++) dup |= pm->carries[b][c].in == t;
      if (!dup) pm->carries[b][pm->ncarry[b]++] = (carry){t, t1};
    }
  }
}

/* find_fused: tensors produced by an elementwise op and consumed only by
 * elementwise ops stay in registers: a chain such as bias-add, dropout,
 * residual add is one kernel (Megatron-LM's fused bias-GELU and
 * bias-dropout-add; sbpc's codegen fusion groups), which reads the chain's
 * inputs and writes its outputs once */
static void find_fused(plan_model *pm) {
  const ir_graph *g = pm->g;
  pm->fused = ARENA_ARRAY(pm->a, char, g->nt + 1);
  int *uses = xcalloc((size_t)g->nt + 1, sizeof(int));
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (!fwd_op(o)) continue;
    for (int k = 0; k < o->nin; k++)
      if (ir_ops[o->kind].kclass == KC_ELEM) uses[o->in[k]]++;
      else uses[o->in[k]] = -(1 << 20); /* a non-elementwise consumer: in memory */
  }
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (!fwd_op(o) || ir_ops[o->kind].kclass != KC_ELEM) continue;
    for (int k = 0; k < o->nout; k++) pm->fused[o->out[k]] = uses[o->out[k]] > 0 && o->out[k] != g->loss;
  }
  free(uses);
}

/* find_qkv: the tensors a fused attention's qkv is made from (back
 * through bias_add and add to the matmul and its weight), whose split on
 * the last axis must be by head: 3 interleave groups, which only a
 * column-split weight gives (lower/local.c) */
static void find_qkv(plan_model *pm) {
  const ir_graph *g = pm->g;
  pm->qkv = ARENA_ARRAY(pm->a, char, g->nt + 1);
  ir_ref path[64];
  for (int k = 0; k < g->nop; k++)
    for (int i = 0, n = ir_qkv_path(g, &g->op[k], path, 64); i < n; i++) pm->qkv[path[i]] = 1;
}

plan_model *plan_model_new(const ir_graph *g, arena *a) {
  plan_model *pm = ARENA_NEW(a, plan_model);
  pm->g = g, pm->a = a, pm->nblk = g->nblk;
  pm->blk = ARENA_ARRAY(a, region, g->nblk + 1);
  pm->carries = ARENA_ARRAY(a, carry *, g->nblk + 1);
  pm->ncarry = ARENA_ARRAY(a, int, g->nblk + 1);
  pm->lidx_op = ARENA_ARRAY(a, ir_ref *, g->nblk + 1);
  pm->nlidx = ARENA_ARRAY(a, int, g->nblk + 1);
  pm->rest.ops = ARENA_ARRAY(a, ir_ref, g->nop + 1);
  pm->first_block_op = g->nop;
  for (int b = 0; b < g->nblk; b++) pm->blk[b].ops = ARENA_ARRAY(a, ir_ref, g->nop + 1);
  int nfwd = 0;
  for (int i = 0; i < g->nop; i++) {
    const ir_op *o = &g->op[i];
    if (!fwd_op(o)) continue;
    nfwd++;
    if (o->block >= 0 && o->block < g->nblk) {
      if (i < pm->first_block_op) pm->first_block_op = i;
      if (o->layer == 0) {
        region *r = &pm->blk[o->block];
        r->ops[r->nops++] = i;
        if (o->lidx + 1 > pm->nlidx[o->block]) pm->nlidx[o->block] = o->lidx + 1;
      }
    } else {
      pm->rest.ops[pm->rest.nops++] = i;
    }
  }
  if (nfwd == 0) return NULL;
  find_fused(pm);
  find_qkv(pm);
  for (int b = 0; b < g->nblk; b++) {
    pm->L += g->blk[b].count;
    pm->lidx_op[b] = ARENA_ARRAY(a, ir_ref, pm->nlidx[b] + 1);
    for (int k = 0; k < pm->nlidx[b]; k++) pm->lidx_op[b][k] = IR_NONE;
    for (int k = 0; k < pm->blk[b].nops; k++) {
      ir_ref o = pm->blk[b].ops[k];
      if (g->op[o].lidx >= 0) pm->lidx_op[b][g->op[o].lidx] = o;
    }
    find_carries(pm, b);
  }
  return pm;
}

void plan_model_free(plan_model *pm) {
  if (!pm) return;
  for (int i = 0; i < pm->ncache; i++) free(pm->cache[i]->choice), free(pm->cache[i]->sig), free(pm->cache[i]->box);
  free(pm->cache);
}

int plan_model_layers(const plan_model *pm) { return pm->L; }

int plan_model_solves(const plan_model *pm) {
  int n = 0;
  for (int i = 0; i < pm->ncache; i++) n += pm->cache[i]->solves;
  return n;
}
int plan_model_nblocks(const plan_model *pm) { return pm->nblk; }
bool plan_model_op_is_pre(const plan_model *pm, ir_ref op) { return op < pm->first_block_op; }

/* ---- one solve ------------------------------------------------------------- */

typedef struct {
  plan_model *pm;
  const plan_key *k;
  const plan_calib *c;
  arena *s;              /* scratch */
  int64_t b, seq;        /* micro-batch, local sequence */
  double fwd_mult;       /* forward boxing repeats (2 with full recompute) */
  ir_sbp *tlay;          /* per tensor: layout chosen in a block program (kind 255 = none) */
  plan_sol *sol;
  double tlim;
} solver;

static int elt(const solver *sv, ir_ref t) {
  int dt = sv->pm->g->t[t].dtype;
  if (dt == IR_I32 || dt == IR_I64) return ir_dtype_size(dt);
  return ir_dtype_size(sv->k->prec);
}

static double numel_local(const solver *sv, ir_ref t, ir_sbp x) {
  int64_t d[IR_MAXRANK];
  int r = plan_tshape(sv->pm->g, t, sv->b, sv->seq, d);
  double n = 1;
  for (int i = 0; i < r; i++) n *= (double)d[i];
  if (x.kind == SBP_S && sv->k->tp > 1) n /= sv->k->tp;
  return n;
}

static double tbytes(const solver *sv, ir_ref t, ir_sbp x) { return numel_local(sv, t, x) * elt(sv, t); }

static int local_dims(const solver *sv, ir_ref t, ir_sbp x, int64_t *d) {
  int r = plan_tshape(sv->pm->g, t, sv->b, sv->seq, d);
  if (x.kind == SBP_S && x.axis < r && sv->k->tp > 1) d[x.axis] /= sv->k->tp;
  return r;
}

static bool sig_replicated(const ir_op *o, const ir_sig *s) {
  for (int i = 0; i < o->nin; i++)
    if (s->in[i].kind != SBP_B) return false;
  for (int i = 0; i < o->nout; i++)
    if (s->out[i].kind != SBP_B) return false;
  return true;
}

typedef struct {
  double fwd, bwd, flops; /* seconds; forward FLOPs on this device */
} opcost;

static opcost cost_gemm(const solver *sv, const ir_op *o, const ir_sig *s) {
  int64_t a[IR_MAXRANK], y[IR_MAXRANK];
  int ra = local_dims(sv, o->in[0], s->in[0], a), ry = local_dims(sv, o->out[0], s->out[0], y);
  double K = (double)a[o->at.trans_a ? ra - 2 : ra - 1], N = (double)y[ry - 1];
  double M = numel_local(sv, o->out[0], s->out[0]) / (N > 0 ? N : 1);
  double fl = 2 * M * N * K, eff = plan_gemm_eff(sv->c, M, N, K);
  double by = tbytes(sv, o->in[0], s->in[0]) + tbytes(sv, o->in[1], s->in[1]) + tbytes(sv, o->out[0], s->out[0]);
  opcost r = {plan_kernel_time(sv->c, &sv->k->dev, fl, eff, by, 1, PLAN_FWD),
              plan_kernel_time(sv->c, &sv->k->dev, 2 * fl, eff, 2 * by, 2, PLAN_BWD), fl};
  return r;
}

/* attention_shape: per device batch, whole sequence, local hidden, head
 * dim, local heads of attention op o under signature s (with sp > 1 the
 * sequence is whole inside attention and the heads are split: Ulysses) */
typedef struct { double b, s, hl, dh, heads; } attn_shape;

static attn_shape attention_shape(const solver *sv, const ir_op *o, const ir_sig *s) {
  int64_t q[IR_MAXRANK], qg[IR_MAXRANK];
  int r = local_dims(sv, o->in[0], s->in[0], q);
  plan_tshape(sv->pm->g, o->in[0], sv->b, sv->seq, qg);
  double div = o->nin == 1 ? 3 : 1, hl = q[r - 1] / div, hg = qg[r - 1] / div;
  double heads = o->at.heads > 0 ? (double)o->at.heads : 1, sp = sv->k->sp;
  attn_shape a = {r >= 3 ? (double)q[0] : 1, (r >= 3 ? (double)q[1] : (double)q[0]) * sp, hl / sp, hg / heads, 0};
  a.heads = a.hl / a.dh;
  return a;
}

/* attention: 4 b s^2 h FLOPs (QK^T and AV; not halved for causal, as
 * Megatron counts). Materialised (runtime without flash attention): the two
 * GEMMs at the efficiency of an s x s x d_head GEMM plus score_passes passes
 * over the b*heads*s^2 scores; backward 2x. Flash: one fused kernel at
 * attn_flash_eff that never writes the scores and skips the masked half of
 * a causal score matrix; its backward recomputes QK^T, 5 GEMMs against the
 * forward's 2 (2.5x) (Dao 2023, FlashAttention-2, section 3). */
static opcost cost_attn(const solver *sv, const ir_op *o, const ir_sig *s) {
  attn_shape a = attention_shape(sv, o, s);
  double fl = 4 * a.b * a.s * a.s * a.hl, scores = a.b * a.heads * a.s * a.s;
  double by = 0;
  for (int i = 0; i < o->nin; i++) by += tbytes(sv, o->in[i], s->in[i]);
  by += tbytes(sv, o->out[0], s->out[0]);
  const plan_dev *d = &sv->k->dev;
  if (sv->c->rt.flash_attention) {
    double work = o->at.causal ? fl / 2 : fl, e = sv->c->attn_flash_eff;
    opcost c = {plan_kernel_time(sv->c, d, work, e, by, 1, PLAN_FWD),
                plan_kernel_time(sv->c, d, 2.5 * work, e, 2 * by, 2, PLAN_BWD), fl};
    return c;
  }
  by += sv->c->attn_score_passes * scores * ir_dtype_size(sv->k->prec);
  double eff = plan_gemm_eff(sv->c, a.s, a.s, a.dh), kn = 2 + sv->c->attn_score_passes;
  opcost c = {plan_kernel_time(sv->c, d, fl, eff, by, kn, PLAN_FWD),
              plan_kernel_time(sv->c, d, 2 * fl, eff, 2 * by, 2 * kn, PLAN_BWD), fl};
  return c;
}

static opcost op_cost(const solver *sv, const ir_op *o, const ir_sig *s) {
  int kc = ir_ops[o->kind].kclass;
  if (kc == KC_GEMM) return cost_gemm(sv, o, s);
  if (kc == KC_ATTN) return cost_attn(sv, o, s);
  opcost c = {0, 0, 0};
  if (kc == KC_VIEW || kc == KC_SOURCE) return c;
  double by = 0;
  const char *fu = sv->pm->fused;
  for (int i = 0; i < o->nin; i++) by += fu[o->in[i]] ? 0 : tbytes(sv, o->in[i], s->in[i]);
  for (int i = 0; i < o->nout; i++) by += fu[o->out[i]] ? 0 : tbytes(sv, o->out[i], s->out[i]);
  if (o->kind == IR_OP_SELECT) by = 2 * tbytes(sv, o->out[0], s->out[0]); /* reads only its slice */
  if (o->kind == IR_OP_DROPOUT) by += numel_local(sv, o->out[0], s->out[0]);
  if (o->kind == IR_OP_CROSS_ENTROPY) by += 2 * 4 * numel_local(sv, o->in[0], s->in[0]);
  double bm = kc == KC_ELEM ? 1.5 : 2, kn = o->nout > 0 && fu[o->out[0]] ? 0 : 1; /* one kernel per chain */
  c.fwd = plan_kernel_time(sv->c, &sv->k->dev, 0, 1, by, kn, PLAN_FWD);
  c.bwd = plan_kernel_time(sv->c, &sv->k->dev, 0, 1, bm * by, kn, PLAN_BWD);
  return c;
}

/* inherent communication of a signature (vocabulary-parallel cross-entropy
 * all-reduces its per-token max and sum) */
static double op_comm(const solver *sv, const ir_op *o, const ir_sig *s) {
  if (o->kind != IR_OP_CROSS_ENTROPY || s->in[0].kind != SBP_S) return 0;
  int r = sv->pm->g->t[o->in[0]].rank;
  if (s->in[0].axis != r - 1) return 0;
  double T = 2 * 4 * numel_local(sv, o->in[1], s->in[1]);
  double t = plan_waited_coll_time(sv->c, IR_OP_ALL_REDUCE, T, sv->k->tp, sv->k->tpl);
  return t > 0 ? t + sv->c->exec_coll_s : 0; /* two all-reduces (max, then sum), each waited for */
}

/* ---- saved activations --------------------------------------------------- */
typedef struct {
  double all, scores; /* bytes; scores: the part selective recompute drops */
  double loss_in;     /* the cross-entropy's input, of all */
} saved;

static void save_t(const solver *sv, ir_ref t, ir_sbp x, char *mark, saved *sa) {
  if (sv->pm->g->t[t].kind == IR_T_PARAM || mark[t]) return;
  mark[t] = 1;
  sa->all += tbytes(sv, t, x);
}

/* op_saved: what op o keeps for its backward under signature s. An input
 * of a matmul is kept in the layout it was produced in (src[i]): when boxing
 * all-gathered a split tensor into it (a column-parallel matmul under
 * sequence parallelism) it keeps its shard and gathers it again in backward, as
 * Megatron-LM does (Korthikanti et al. 2022, section 4.2.2; the re-gather
 * overlaps the input-gradient GEMM there and is not charged). */
static void op_saved(const solver *sv, const ir_op *o, const ir_sig *s, const ir_sbp *src, char *mark, saved *sa) {
  switch (o->kind) {
  case IR_OP_MATMUL:
    for (int i = 0; i < o->nin; i++) save_t(sv, o->in[i], src[i], mark, sa);
    break;
  case IR_OP_MUL: case IR_OP_SWIGLU:
    for (int i = 0; i < o->nin; i++) save_t(sv, o->in[i], s->in[i], mark, sa);
    break;
  case IR_OP_GELU: case IR_OP_SILU: case IR_OP_LAYER_NORM: case IR_OP_RMS_NORM: case IR_OP_EMBEDDING:
    save_t(sv, o->in[0], s->in[0], mark, sa);
    break;
  case IR_OP_SOFTMAX: case IR_OP_TANH: save_t(sv, o->out[0], s->out[0], mark, sa); break;
  case IR_OP_DROPOUT: sa->all += sv->c->rt.dropout_mask_bytes * numel_local(sv, o->out[0], s->out[0]); break;
  case IR_OP_CROSS_ENTROPY: {
    double before = sa->all;
    save_t(sv, o->in[0], s->in[0], mark, sa);
    sa->loss_in += sa->all - before;
    sa->all += 4 * numel_local(sv, o->in[0], s->in[0]);
    break;
  }
  case IR_OP_ATTENTION: {
    for (int i = 0; i < o->nin; i++) save_t(sv, o->in[i], s->in[i], mark, sa);
    save_t(sv, o->out[0], s->out[0], mark, sa);
    attn_shape a = attention_shape(sv, o, s);
    if (sv->c->rt.flash_attention) { /* the softmax statistics (fp32 log-sum-exp per row) */
      sa->all += 4 * a.b * a.heads * a.s;
      break;
    }
    double sc = sv->c->attn_saved_bytes * a.b * a.heads * a.s * a.s;
    sa->scores += sc, sa->all += sc;
    break;
  }
  default: break;
  }
}

/* ---- building one program ---------------------------------------------------- */
enum { N_OP, N_FREE, N_FIXED };
enum { E_ACT, E_PARAM, E_INPUT, E_EXT, E_CARRY };

typedef struct {
  int kind;
  ir_ref ref;        /* op or tensor */
  int nch;
  ir_sig *sig;       /* N_OP */
  ir_sbp *lay;       /* tensor nodes */
} node;

typedef struct {
  int type, u, v, uslot, vslot;
  ir_ref t;
} edge;

typedef struct {
  node *n; int nn;
  edge *e; int ne;
  int *opnode, *tnode;   /* graph op / tensor -> node, -1 */
  plan_sbp_prob P;
} prog;

static ir_sbp out_sbp(const prog *p, int u, int c, int slot) {
  const node *x = &p->n[u];
  return x->kind == N_OP ? x->sig[c].out[slot] : x->lay[c];
}

/* kept_layouts: per input of op node v (signature s), the layout a backward
 * keeps it in: the producer's split when boxing all-gathered it, else the
 * signature's (op_saved) */
static void kept_layouts(const prog *p, const int *ch, int v, const ir_sig *s, int nin, ir_sbp *src) {
  for (int i = 0; i < nin; i++) src[i] = s->in[i];
  for (int e = 0; e < p->ne; e++) {
    const edge *ed = &p->e[e];
    if (ed->v != v || (ed->type != E_ACT && ed->type != E_EXT)) continue;
    ir_sbp f = out_sbp(p, ed->u, ch[ed->u], ed->uslot);
    if (f.kind == SBP_S && s->in[ed->vslot].kind == SBP_B) src[ed->vslot] = f;
  }
}

typedef struct { double fwd, bwd, step; int coll_f, coll_b; ir_sbp from, to, gfrom, gto; } eparts;

static eparts edge_parts(const solver *sv, const prog *p, const edge *e, int cu, int cv) {
  const ir_graph *g = sv->pm->g;
  const node *v = &p->n[e->v];
  ir_sbp from = out_sbp(p, e->u, cu, e->uslot);
  ir_sbp to = v->kind == N_OP ? v->sig[cv].in[e->vslot] : v->lay[cv];
  bool repl = v->kind == N_OP && sig_replicated(&g->op[v->ref], &v->sig[cv]);
  ir_sbp none = {SBP_B, 0};
  double T = numel_local(sv, e->t, none) * elt(sv, e->t);
  int n = sv->k->tp;
  eparts r = {0, 0, 0, ir_boxing_kind(from, to), IR_NOPKIND, from, to, from, from};
  r.fwd = plan_waited_coll_time(sv->c, r.coll_f, T, n, sv->k->tpl);
  if (e->type == E_INPUT) return r;
  if (e->type == E_PARAM) {
    r.bwd = r.fwd; /* regather for backward */
    ir_sbp gs = plan_grad_sbp(to, repl);
    int gk = ir_boxing_kind(gs, from);
    double t = plan_coll_time(sv->c, gk, T, n, sv->k->tpl);
    /* a partial sum the update wants whole waits for the step's end (the
     * lowering's tp reduce); any other re-layout is boxed per micro-batch */
    if (gk == IR_OP_ALL_REDUCE) r.step = t;
    else r.bwd += t;
    return r;
  }
  r.gfrom = v->kind == N_OP ? plan_grad_sbp(to, repl) : plan_need_sbp(to);
  r.gto = plan_need_sbp(from);
  r.coll_b = ir_boxing_kind(r.gfrom, r.gto);
  r.bwd = plan_waited_coll_time(sv->c, r.coll_b, T, n, sv->k->tpl);
  return r;
}

static int add_node(prog *p, int kind, ir_ref ref) {
  node *x = &p->n[p->nn];
  x->kind = kind, x->ref = ref;
  return p->nn++;
}

static void add_edge(prog *p, int type, int u, int v, int uslot, int vslot, ir_ref t) {
  p->e[p->ne++] = (edge){type, u, v, uslot, vslot, t};
}

/* tensor layouts: B, then every S(i) the axis size divides */
static void free_layouts(solver *sv, node *x) {
  int64_t d[IR_MAXRANK];
  int r = plan_tshape(sv->pm->g, x->ref, sv->b, sv->seq, d);
  x->lay = ARENA_ARRAY(sv->s, ir_sbp, r + 1);
  x->lay[0] = (ir_sbp){SBP_B, 0};
  x->nch = 1;
  for (int i = 0; i < r && sv->k->tp > 1; i++)
    if (d[i] % sv->k->tp == 0 && d[i] >= sv->k->tp && (sv->c->rt.seq_parallel || !plan_token_axis(sv->pm->g, x->ref, i)))
      x->lay[x->nch++] = (ir_sbp){SBP_S, (int8_t)i};
}

static void fixed_layout(solver *sv, node *x, ir_sbp l) {
  x->lay = ARENA_NEW(sv->s, ir_sbp);
  x->lay[0] = l;
  x->nch = 1;
}

/* the layout a block op's output has in the solved template (for rest ops
 * consuming the last layer's output) */
static bool block_out_layout(const solver *sv, ir_ref t, ir_sbp *l) {
  const ir_graph *g = sv->pm->g;
  ir_ref p = g->t[t].producer;
  if (p < 0) return false;
  const ir_op *o = &g->op[p];
  int b = o->block;
  if (b < 0 || o->lidx < 0 || o->lidx >= sv->pm->nlidx[b]) return false;
  ir_ref tpl = sv->pm->lidx_op[b][o->lidx];
  if (tpl == IR_NONE || sv->sol->choice[tpl] < 0) return false;
  for (int j = 0; j < o->nout; j++)
    if (o->out[j] == t) return *l = sv->sol->sig[tpl].out[j], true;
  return false;
}

static void op_nodes(solver *sv, prog *p, const region *r) {
  const ir_graph *g = sv->pm->g;
  for (int k = 0; k < r->nops; k++) {
    const ir_op *o = &g->op[r->ops[k]];
    int u = add_node(p, N_OP, r->ops[k]);
    node *x = &p->n[u];
    x->sig = ARENA_ARRAY(sv->s, ir_sig, IR_MAXSIGS);
    x->nch = plan_op_sigs(g, o, sv->k->tp, sv->b, sv->seq, sv->c->rt.seq_parallel, x->sig);
    p->opnode[r->ops[k]] = u;
  }
}

static void input_edges(solver *sv, prog *p, const region *r, bool rest) {
  const ir_graph *g = sv->pm->g;
  for (int k = 0; k < r->nops; k++) {
    const ir_op *o = &g->op[r->ops[k]];
    int v = p->opnode[r->ops[k]];
    for (int i = 0; i < o->nin; i++) {
      ir_ref t = o->in[i], pr = g->t[t].producer;
      if (pr >= 0 && p->opnode[pr] >= 0) {
        int slot = 0;
        for (int j = 0; j < g->op[pr].nout; j++) if (g->op[pr].out[j] == t) slot = j;
        add_edge(p, E_ACT, p->opnode[pr], v, slot, i, t);
        continue;
      }
      int kind = g->t[t].kind;
      int type = kind == IR_T_PARAM ? E_PARAM : kind == IR_T_INPUT ? E_INPUT : E_EXT;
      if (p->tnode[t] < 0) {
        ir_sbp l;
        if (rest && type == E_EXT && block_out_layout(sv, t, &l)) {
          p->tnode[t] = add_node(p, N_FIXED, t);
          fixed_layout(sv, &p->n[p->tnode[t]], l);
        } else {
          p->tnode[t] = add_node(p, N_FREE, t);
          free_layouts(sv, &p->n[p->tnode[t]]);
        }
      }
      add_edge(p, type, p->tnode[t], v, 0, i, t);
    }
  }
}

/* rest ops whose outputs a block's layer 0 consumes: sink to that layout */
static void sink_edges(solver *sv, prog *p, const region *r) {
  const ir_graph *g = sv->pm->g;
  for (int k = 0; k < r->nops; k++) {
    const ir_op *o = &g->op[r->ops[k]];
    for (int j = 0; j < o->nout; j++) {
      ir_ref t = o->out[j];
      if (sv->tlay[t].kind == 255 || p->tnode[t] >= 0) continue;
      p->tnode[t] = add_node(p, N_FIXED, t);
      fixed_layout(sv, &p->n[p->tnode[t]], sv->tlay[t]);
      add_edge(p, E_CARRY, p->opnode[r->ops[k]], p->tnode[t], j, 0, t);
    }
  }
}

static void carry_edges(solver *sv, prog *p, int b) {
  const ir_graph *g = sv->pm->g;
  for (int c = 0; c < sv->pm->ncarry[b]; c++) {
    carry cr = sv->pm->carries[b][c];
    ir_ref pr = g->t[cr.out].producer;
    if (p->tnode[cr.in] < 0 || pr < 0 || p->opnode[pr] < 0) continue;
    int slot = 0;
    for (int j = 0; j < g->op[pr].nout; j++) if (g->op[pr].out[j] == cr.out) slot = j;
    add_edge(p, E_CARRY, p->opnode[pr], p->tnode[cr.in], slot, 0, cr.out);
  }
}

static double rc_extra(const solver *sv, const ir_op *o, opcost c) {
  if (sv->k->rc == PLAN_RC_FULL) return c.fwd;
  if (sv->k->rc == PLAN_RC_SELECTIVE && ir_ops[o->kind].kclass == KC_ATTN) return c.fwd;
  return 0;
}

/* The memory term (plan_key.memw > 0, when the time-only layout does not
 * fit): a parameter costs its model states, 16 bytes per element in mixed
 * precision (weight, gradient, fp32 master, m, v: no ZeRO assumed), an op
 * what it keeps for backward under the recompute policy */
#define STATE_BYTES 16.0

static double kept_bytes(const solver *sv, const ir_op *o, const ir_sig *s) {
  if (sv->k->memw <= 0 || sv->k->rc == PLAN_RC_FULL) return 0;
  char *mark = ARENA_ARRAY(sv->s, char, sv->pm->g->nt);
  saved sa = {0, 0, 0};
  op_saved(sv, o, s, s->in, mark, &sa);
  return sa.all - (sv->k->rc == PLAN_RC_SELECTIVE ? sa.scores : 0);
}

/* qkv_by_boxing: a collective that splits a tensor of the qkv path on its
 * last axis hands each rank a contiguous block of q|k|v columns, not its
 * heads' q, k and v: forbidden (the lowering refuses it too) */
static double qkv_by_boxing(const solver *sv, const edge *e, const eparts *r) {
  const ir_tensor *x = &sv->pm->g->t[e->t];
  return sv->pm->qkv[e->t] && r->coll_f != IR_NOPKIND && r->to.kind == SBP_S && r->to.axis == x->rank - 1 ? PLAN_FORBID : 0;
}

/* no_seq_split: a runtime without sequence parallelism keeps every tensor
 * between the column- and row-parallel regions whole on the tp axis: it
 * all-reduces partial activations (never a reduce-scatter) and never slices
 * a whole activation into shards. Such an edge is forbidden. */
static double no_seq_split(const solver *sv, const edge *e, const eparts *r) {
  if (sv->c->rt.seq_parallel || e->type == E_PARAM || e->type == E_INPUT) return 0;
  bool rs = r->coll_f == IR_OP_REDUCE_SCATTER || r->coll_b == IR_OP_REDUCE_SCATTER;
  bool slice = r->coll_f == IR_OP_SLICE && r->to.kind == SBP_S;
  return rs || slice ? PLAN_FORBID : 0;
}

static void fill_costs(solver *sv, prog *p, bool rest) {
  const ir_graph *g = sv->pm->g;
  plan_sbp_prob *P = &p->P;
  P->nnode = p->nn, P->nedge = p->ne;
  P->nch = ARENA_ARRAY(sv->s, int, p->nn + 1);
  P->ncost = ARENA_ARRAY(sv->s, double *, p->nn + 1);
  P->eu = ARENA_ARRAY(sv->s, int, p->ne + 1);
  P->ev = ARENA_ARRAY(sv->s, int, p->ne + 1);
  P->ecost = ARENA_ARRAY(sv->s, double *, p->ne + 1);
  double fm = rest ? 1 : sv->fwd_mult, inv_m = 1.0 / (sv->k->m > 0 ? sv->k->m : 1);
  for (int v = 0; v < p->nn; v++) {
    node *x = &p->n[v];
    P->nch[v] = x->nch;
    P->ncost[v] = ARENA_ARRAY(sv->s, double, x->nch);
    if (x->kind == N_FREE && g->t[x->ref].kind == IR_T_PARAM && sv->k->memw > 0)
      for (int c = 0; c < x->nch; c++) P->ncost[v][c] = sv->k->memw * STATE_BYTES * numel_local(sv, x->ref, x->lay[c]);
    if (x->kind != N_OP) continue;
    const ir_op *o = &g->op[x->ref];
    for (int c = 0; c < x->nch; c++) {
      opcost oc = op_cost(sv, o, &x->sig[c]);
      P->ncost[v][c] = oc.fwd + oc.bwd + (rest ? 0 : rc_extra(sv, o, oc)) + (fm + 1) * op_comm(sv, o, &x->sig[c]) +
                       sv->k->memw * kept_bytes(sv, o, &x->sig[c]);
    }
  }
  for (int e = 0; e < p->ne; e++) {
    edge *ed = &p->e[e];
    int nu = p->n[ed->u].nch, nv = p->n[ed->v].nch;
    P->eu[e] = ed->u, P->ev[e] = ed->v;
    P->ecost[e] = ARENA_ARRAY(sv->s, double, nu * nv);
    for (int i = 0; i < nu; i++)
      for (int j = 0; j < nv; j++) {
        eparts r = edge_parts(sv, p, ed, i, j);
        P->ecost[e][i * nv + j] = fm * r.fwd + r.bwd + r.step * inv_m + no_seq_split(sv, ed, &r) + qkv_by_boxing(sv, ed, &r);
      }
  }
}

/* ---- summaries ------------------------------------------------------------------ */
static plan_lsum *part_of(solver *sv, int b, ir_ref op) {
  if (b >= 0) return &sv->sol->blk[b];
  return plan_model_op_is_pre(sv->pm, op) ? &sv->sol->pre : &sv->sol->post;
}

static void add_box(plan_sol *s, ir_ref op, int slot, ir_ref t, ir_sbp from, ir_sbp to, int coll,
                    double bytes, bool bwd) {
  if (coll == IR_NOPKIND) return;
  s->box = xrealloc(s->box, sizeof(plan_boxing) * (size_t)(s->nbox + 1));
  s->box[s->nbox++] = (plan_boxing){op, slot, t, from, to, coll, bytes, bwd};
}

static void sum_ops(solver *sv, const prog *p, const int *ch, int b, char *mark, double *gemm) {
  const ir_graph *g = sv->pm->g;
  for (int v = 0; v < p->nn; v++) {
    const node *x = &p->n[v];
    if (x->kind != N_OP) continue;
    const ir_op *o = &g->op[x->ref];
    const ir_sig *s = &x->sig[ch[v]];
    plan_lsum *l = part_of(sv, b, x->ref);
    opcost oc = op_cost(sv, o, s);
    double cm = op_comm(sv, o, s), fm = b >= 0 ? sv->fwd_mult : 1;
    bool repl = sig_replicated(o, s);
    l->fwd_s += oc.fwd;
    l->bwd_s += oc.bwd + (b >= 0 ? rc_extra(sv, o, oc) : 0);
    l->comm_fwd_s += cm, l->comm_bwd_s += cm * fm;
    if (ir_ops[o->kind].kclass == KC_GEMM) gemm[0] += oc.fwd, gemm[1] += oc.bwd + (b >= 0 ? rc_extra(sv, o, oc) : 0);
    double fl = oc.flops * (repl ? 1 : sv->k->tp);
    l->flops += fl;
    if (ir_ops[o->kind].kclass == KC_ATTN) {
      l->attn_flops += fl;
      for (int i = 0; i < o->nin; i++) l->attn_io_bytes += tbytes(sv, o->in[i], s->in[i]);
      l->attn_io_bytes += tbytes(sv, o->out[0], s->out[0]);
    }
    for (int j = 0; j < o->nout; j++) {
      double by = tbytes(sv, o->out[j], s->out[j]);
      if (by > l->max_tensor_bytes) l->max_tensor_bytes = by;
    }
    saved sa = {0, 0, 0};
    ir_sbp src[IR_MAXIN];
    kept_layouts(p, ch, v, s, o->nin, src);
    op_saved(sv, o, s, src, mark + (size_t)(l == &sv->sol->post) * g->nt, &sa);
    l->act_full_bytes += sa.all, l->loss_in_bytes += sa.loss_in;
    l->act_bytes += sa.all - (sv->k->rc == PLAN_RC_SELECTIVE && b >= 0 ? sa.scores : 0);
    sv->sol->choice[x->ref] = ch[v];
    sv->sol->sig[x->ref] = *s;
  }
}

static void sum_edges(solver *sv, const prog *p, const int *ch, int b, char *seen) {
  ir_sbp none = {SBP_B, 0};
  double fm = b >= 0 ? sv->fwd_mult : 1;
  for (int e = 0; e < p->ne; e++) {
    const edge *ed = &p->e[e];
    const node *u = &p->n[ed->u], *v = &p->n[ed->v];
    ir_ref op = v->kind == N_OP ? v->ref : u->ref;
    plan_lsum *l = part_of(sv, b, op);
    eparts r = edge_parts(sv, p, ed, ch[ed->u], ch[ed->v]);
    l->comm_fwd_s += r.fwd, l->comm_bwd_s += r.bwd + r.fwd * (fm - 1);
    double T = numel_local(sv, ed->t, none) * elt(sv, ed->t);
    add_box(sv->sol, op, ed->vslot, ed->t, r.from, r.to, r.coll_f, ir_coll_bytes(r.coll_f, T, sv->k->tp), false);
    add_box(sv->sol, op, ed->vslot, ed->t, r.gfrom, r.gto, r.coll_b, ir_coll_bytes(r.coll_b, T, sv->k->tp), true);
    if (ed->type == E_PARAM) { /* count each parameter once per part; tied copies apart */
      int part = b >= 0 ? 0 : (l == &sv->sol->post ? 2 : 1);
      char *f = &seen[ed->t];
      if (*f & (1 << part)) continue;
      double loc = numel_local(sv, ed->t, u->lay[ch[ed->u]]);
      bool tied = part == 2 && (*f & 2);
      if (tied) l->tied_local += loc, l->tied_grad_bytes += tbytes(sv, ed->t, none);
      else l->params_local += loc, l->params += numel_local(sv, ed->t, none), l->nparam += 1;
      if (loc > l->max_param_local) l->max_param_local = loc;
      if (r.step > 0 && !tied) { /* a deferred partial sum: the whole gradient, summed over tp */
        double gb = numel_local(sv, ed->t, none) * sv->c->rt.grad_reduce_bytes;
        l->tp_sum_bytes += gb, l->max_tp_sum_bytes = fmax(l->max_tp_sum_bytes, gb);
      }
      *f |= (char)(1 << part);
    } else if (ed->type == E_EXT && b >= 0) { /* the layer input: kept under full recompute */
      char *f = &seen[ed->t];
      if (*f & 8) continue;
      *f |= 8;
      double by = tbytes(sv, ed->t, u->lay[ch[ed->u]]);
      l->boundary_bytes += by;
      if (sv->k->rc == PLAN_RC_FULL) l->act_bytes += by;
    }
  }
}

/* tp_overlap: a runtime that overlaps tp communication with GEMMs
 * (Megatron-Core's --tp-comm-overlap, Transformer Engine's userbuffers:
 * the all-gather or reduce-scatter of chunk i runs while chunk i-1
 * multiplies) exposes only what the layer's GEMMs of the same pass cannot
 * cover */
static void tp_overlap(plan_lsum *l, const double *gemm) {
  l->comm_fwd_s = l->comm_fwd_s > gemm[0] ? l->comm_fwd_s - gemm[0] : 0;
  l->comm_bwd_s = l->comm_bwd_s > gemm[1] ? l->comm_bwd_s - gemm[1] : 0;
}

static bool solve_region(solver *sv, const region *r, int b) {
  const ir_graph *g = sv->pm->g;
  if (r->nops == 0) return true;
  bool rest = b < 0;
  prog p = {0};
  int maxn = r->nops * (1 + IR_MAXIN + IR_MAXOUT) + 8;
  p.n = ARENA_ARRAY(sv->s, node, maxn);
  p.e = ARENA_ARRAY(sv->s, edge, maxn * 2);
  p.opnode = ARENA_ARRAY(sv->s, int, g->nop);
  p.tnode = ARENA_ARRAY(sv->s, int, g->nt);
  for (int i = 0; i < g->nop; i++) p.opnode[i] = -1;
  for (int i = 0; i < g->nt; i++) p.tnode[i] = -1;
  op_nodes(sv, &p, r);
  input_edges(sv, &p, r, rest);
  if (rest) sink_edges(sv, &p, r);
  else carry_edges(sv, &p, b);
  fill_costs(sv, &p, rest);
  int *ch = ARENA_ARRAY(sv->s, int, p.nn + 1);
  double obj;
  bool opt = plan_sbp_solve(&p.P, ch, &obj, sv->tlim);
  sv->sol->solves++;
  char *mark = ARENA_ARRAY(sv->s, char, 2 * (size_t)g->nt);
  char *seen = ARENA_ARRAY(sv->s, char, g->nt);
  double gemm[2] = {0, 0};
  sum_ops(sv, &p, ch, b, mark, gemm);
  if (!rest && sv->k->rc == PLAN_RC_FULL) sv->sol->blk[b].act_bytes = 0;
  sum_edges(sv, &p, ch, b, seen);
  if (!rest && sv->c->rt.tp_comm_overlap) tp_overlap(&sv->sol->blk[b], gemm);
  if (!rest)
    for (int v = 0; v < p.nn; v++)
      if (p.n[v].kind == N_FREE) sv->tlay[p.n[v].ref] = p.n[v].lay[ch[v]];
  return opt;
}

static bool key_eq(const plan_key *a, const plan_key *b) {
  return a->devtype == b->devtype && a->dev.flops == b->dev.flops && a->dev.bw == b->dev.bw &&
         a->prec == b->prec && a->seq == b->seq && a->tp == b->tp && a->sp == b->sp &&
         a->mbs == b->mbs && a->rc == b->rc && a->tpl.bw == b->tpl.bw && a->tpl.lat == b->tpl.lat &&
         a->m == b->m && a->memw == b->memw;
}

const plan_sol *plan_model_solve(plan_model *pm, const plan_key *k, const plan_calib *c, double tlim) {
  for (int i = 0; i < pm->ncache; i++)
    if (key_eq(&pm->cache[i]->key, k)) return pm->cache[i];
  const ir_graph *g = pm->g;
  plan_sol *sol = ARENA_NEW(pm->a, plan_sol);
  sol->key = *k;
  sol->blk = ARENA_ARRAY(pm->a, plan_lsum, pm->nblk + 1);
  sol->choice = xmalloc(sizeof(int) * (size_t)(g->nop + 1));
  sol->sig = xcalloc((size_t)g->nop + 1, sizeof(ir_sig));
  for (int i = 0; i < g->nop; i++) sol->choice[i] = -1;
  solver sv = {pm, k, c, arena_new(), k->mbs, k->seq / (k->sp > 0 ? k->sp : 1),
               k->rc == PLAN_RC_FULL ? 2 : 1, NULL, sol, tlim};
  sv.tlay = ARENA_ARRAY(sv.s, ir_sbp, g->nt + 1);
  for (int i = 0; i < g->nt; i++) sv.tlay[i].kind = 255;
  sol->optimal = true;
  for (int b = 0; b < pm->nblk; b++) sol->optimal &= solve_region(&sv, &pm->blk[b], b);
  sol->optimal &= solve_region(&sv, &pm->rest, -1);
  arena_free(sv.s);
  if (pm->ncache == pm->capcache) {
    pm->capcache = pm->capcache ? 2 * pm->capcache : 64;
    pm->cache = xrealloc(pm->cache, sizeof(plan_sol *) * (size_t)pm->capcache);
  }
  pm->cache[pm->ncache++] = sol;
  return sol;
}
