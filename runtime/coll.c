/* coll.c — the ops that need the tensor-parallel group (or, under sequence
 * parallelism, the sp group), as non-blocking state machines on the
 * executor's main thread.
 *
 * Boxing ops (their from -> to on the tp axis, on local shards):
 *   S(i) -> B     all-gather, then the blocks put back along axis i
 *   P -> B        all-reduce (sum or max) in place
 *   P -> S(i)     all-reduce, then this rank's slice along i
 *   S(i) -> S(j)  all-gather, then the slice along j
 *   B -> S(i)     this rank's slice (local)
 *   B -> P        the value on tp rank 0, zeros elsewhere (local)
 *   S(i) -> P     this rank's slice in place, zeros (-inf for max) elsewhere
 * A vocabulary-split cross-entropy (logits S(last), Megatron's): the row
 * maxima are all-reduced (max), then the sums of exponentials and the target
 * logits (held by one rank, 0 on the others) are all-reduced (sum); the
 * loss is log(sum) + max - target, and each rank outputs its 1/tp share of
 * the mean (the loss is P(sum)). Its gradient redoes the two all-reductions
 * and writes softmax - onehot on the rank's columns.
 * Sequence parallelism (the sp group): Ulysses' all-to-alls between the
 * sequence and the head split, and ring attention's ring_shift (a block to
 * the next member, the previous member's in: one send and one receive).
 *
 * Every collective is posted non-blocking and the main thread keeps polling
 * (rt_coll_poll), so point-to-point transfers and data-parallel reductions
 * progress while a tp collective waits for the group; the executor posts
 * the tp ops of a rank in the program's order, which every rank of the
 * group shares, several in flight at once once each has posted all its
 * collectives (rt_coll_settled). Temporaries are malloc'ed, counted in the rank's peak and
 * freed when the op completes. */
#include "runtime/exec_priv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rt_coll {
  rt_exec *e;
  const ir_op *o;
  const float *in;
  const int32_t *labels;
  float *out;
  rt_req *req;
  int phase;
  float *tmp;            /* malloc'ed: gathered blocks, reduced values */
  int64_t tmp_n;
  float *red;            /* boxing P -> S: where the sum is made (tmp, or in when it is ours) */
  bool own_in;           /* the input register is read by this op alone: it may be overwritten */
  int64_t rows, cols;    /* cross-entropy: local logits */
  int64_t micro;         /* the micro-batch (--adaptive-sp: its group) */
};

static int split_of(const ir_tensor *t) {
  return t->sbp.n == 1 && t->sbp.a[0].kind == SBP_S ? t->sbp.a[0].axis : -1;
}

static float *temp(rt_coll *c, int64_t n) {
  c->tmp = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  c->tmp_n = n;
  rt_exec_count(c->e, n * 4);
  return c->tmp;
}

/* outer x chunk view of local tensor t around axis ax */
static void around(const ir_graph *g, ir_ref t, int ax, int64_t *outer, int64_t *chunk) {
  const ir_tensor *x = &g->t[t];
  *outer = 1, *chunk = 1;
  for (int i = 0; i < ax; i++) *outer *= ir_dim_eval(x->shape[i], 1, 1);
  for (int i = ax; i < x->rank; i++) *chunk *= ir_dim_eval(x->shape[i], 1, 1);
}

/* out = this rank's slice along ax of full (out is local tensor y) */
static void slice_axis(const rt_exec *e, ir_ref y, int ax, const float *full, float *out) {
  int64_t outer, chunk;
  around(e->g, y, ax, &outer, &chunk);
  for (int64_t o = 0; o < outer; o++)
    memcpy(out + o * chunk, full + (o * e->tp + e->tpi) * chunk, sizeof(float) * (size_t)chunk);
}

/* full = the tp blocks of all (gathered, rank order) put back along ax */
static void unblock_axis(const rt_exec *e, ir_ref x, int ax, const float *all, float *full) {
  int64_t outer, chunk, n = ir_numel(e->g, x);
  around(e->g, x, ax, &outer, &chunk);
  for (int r = 0; r < e->tp; r++)
    for (int64_t o = 0; o < outer; o++)
      memcpy(full + (o * e->tp + r) * chunk, all + r * n + o * chunk, sizeof(float) * (size_t)chunk);
}

/* S(ax) -> P: this rank's block in place in the full tensor, fill elsewhere */
static void embed_axis(const rt_exec *e, ir_ref x, int ax, const float *local, float *full, float fill) {
  int64_t outer, chunk, n = ir_numel(e->g, x);
  around(e->g, x, ax, &outer, &chunk);
  for (int64_t i = 0; i < n * e->tp; i++) full[i] = fill;
  for (int64_t o = 0; o < outer; o++)
    memcpy(full + (o * e->tp + e->tpi) * chunk, local + o * chunk, sizeof(float) * (size_t)chunk);
}

/* ---- boxing ------------------------------------------------------------------ */
static bool is_p(ir_sbp s) { return s.kind == SBP_PSUM || s.kind == SBP_PMAX; }

/* phase 0: start; returns true when done at once */
static bool box_start(rt_coll *c) {
  rt_exec *e = c->e;
  const ir_op *o = c->o;
  ir_sbp from = o->at.from, to = o->at.to;
  ir_ref x = o->in[0], y = o->out[0];
  int64_t nin = ir_numel(e->g, x);
  if (from.kind == SBP_S && (to.kind == SBP_B || to.kind == SBP_S)) {
    c->req = rt_comm_iallgather(e->comm, RT_TP, c->in, nin, temp(c, nin * e->tp));
  } else if (is_p(from) && to.kind == SBP_B) {
    memcpy(c->out, c->in, sizeof(float) * (size_t)nin);
    c->req = rt_comm_iallreduce(e->comm, RT_TP, c->out, nin, from.kind == SBP_PMAX);
  } else if (is_p(from) && to.kind == SBP_S) { /* in place when the input is ours: no whole-size temporary */
    c->red = c->own_in ? (float *)c->in : memcpy(temp(c, nin), c->in, sizeof(float) * (size_t)nin);
    c->req = rt_comm_iallreduce(e->comm, RT_TP, c->red, nin, from.kind == SBP_PMAX);
  } else if (from.kind == SBP_B && to.kind == SBP_S) {
    slice_axis(e, y, to.axis, c->in, c->out);
  } else if (from.kind == SBP_B && is_p(to)) {
    if (e->tpi == 0) memcpy(c->out, c->in, sizeof(float) * (size_t)nin);
    else memset(c->out, 0, sizeof(float) * (size_t)nin);
  } else if (from.kind == SBP_S && is_p(to)) {
    embed_axis(e, x, from.axis, c->in, c->out, to.kind == SBP_PMAX ? -INFINITY : 0.0f);
  } else {
    memcpy(c->out, c->in, sizeof(float) * (size_t)nin);
  }
  return c->req == NULL;
}

/* after the collective: the local re-layout */
static void box_finish(rt_coll *c) {
  rt_exec *e = c->e;
  const ir_op *o = c->o;
  ir_sbp from = o->at.from, to = o->at.to;
  ir_ref x = o->in[0], y = o->out[0];
  if (from.kind == SBP_S && to.kind == SBP_B) {
    unblock_axis(e, x, from.axis, c->tmp, c->out);
  } else if (from.kind == SBP_S && to.kind == SBP_S) {
    float *full = xmalloc(sizeof(float) * (size_t)(ir_numel(e->g, x) * e->tp));
    unblock_axis(e, x, from.axis, c->tmp, full);
    slice_axis(e, y, to.axis, full, c->out);
    free(full);
  } else if (is_p(from) && to.kind == SBP_S) {
    slice_axis(e, y, to.axis, c->red, c->out);
  }
}

/* ---- vocabulary-parallel cross-entropy ------------------------------------------ */
/* tmp layout: [max (rows) | sum exp (rows) | target logit (rows)] */
static void ce_max(rt_coll *c) {
  float *mx = temp(c, 3 * c->rows);
  for (int64_t r = 0; r < c->rows; r++) {
    const float *x = c->in + r * c->cols;
    float m = -INFINITY;
    for (int64_t j = 0; j < c->cols; j++) m = x[j] > m ? x[j] : m;
    mx[r] = m;
  }
  c->req = rt_comm_iallreduce(c->e->comm, RT_TP, mx, c->rows, true);
}

static void ce_sums(rt_coll *c) {
  float *mx = c->tmp, *se = c->tmp + c->rows, *tg = c->tmp + 2 * c->rows;
  int64_t lo = (int64_t)c->e->tpi * c->cols;
  for (int64_t r = 0; r < c->rows; r++) {
    const float *x = c->in + r * c->cols;
    double s = 0;
    for (int64_t j = 0; j < c->cols; j++) s += exp((double)x[j] - mx[r]);
    se[r] = (float)s;
    int64_t l = (int64_t)c->labels[r] - lo;
    tg[r] = l >= 0 && l < c->cols ? x[l] : 0.0f;
  }
  c->req = rt_comm_iallreduce(c->e->comm, RT_TP, se, 2 * c->rows, false);
}

static void ce_finish(rt_coll *c) {
  const float *mx = c->tmp, *se = c->tmp + c->rows, *tg = c->tmp + 2 * c->rows;
  double sc = c->o->at.scale != 0 ? c->o->at.scale : 1.0;
  if (c->o->kind == IR_OP_CROSS_ENTROPY) {
    double loss = 0;
    for (int64_t r = 0; r < c->rows; r++) loss += log((double)se[r]) + mx[r] - tg[r];
    c->out[0] = (float)(sc * loss / (double)c->rows / c->e->tp);
    return;
  }
  int64_t lo = (int64_t)c->e->tpi * c->cols;
  for (int64_t r = 0; r < c->rows; r++) {
    const float *x = c->in + r * c->cols;
    float *g = c->out + r * c->cols;
    for (int64_t j = 0; j < c->cols; j++) g[j] = (float)(sc * exp((double)x[j] - mx[r]) / se[r] / (double)c->rows);
    int64_t l = (int64_t)c->labels[r] - lo;
    if (l >= 0 && l < c->cols) g[l] -= (float)(sc / (double)c->rows);
  }
}

/* ---- sequence parallelism: Ulysses' all-to-all on the sp group ------------------ */
/* A seq-split tensor [B, S/n, X] and its head-split form [B, S, X/n]: member
 * r's block of the exchange is [B, S/n, X/n], the seq rows of the sequence
 * holder and the columns of r (in `groups` interleaved groups: a fused qkv's
 * q, k and v columns of r's heads). tmp = [send blocks | received blocks]. */
typedef struct {
  int64_t B, Sl, X, n, groups;
} a2a_dims;

static a2a_dims a2a_of(const rt_coll *c) {
  const ir_graph *g = c->e->g;
  ir_ref seq = c->o->at.to.axis == 2 ? c->o->in[0] : c->o->out[0];
  a2a_dims d = {ir_dim_eval(g->t[seq].shape[0], 1, 1), ir_dim_eval(g->t[seq].shape[1], 1, 1),
                ir_dim_eval(g->t[seq].shape[2], 1, 1), c->e->sp, c->o->at.n > 0 ? c->o->at.n : 1};
  if (c->e->ad) d.n = c->e->ad->spg[c->micro]; /* --adaptive-sp: the micro-batch's group */
  return d;
}

/* copy member r's columns between a full row (X) and a block row (X/n) */
static void a2a_row(const a2a_dims *d, int64_t r, float *full, float *blk, bool to_blk) {
  int64_t xg = d->X / d->groups, cg = xg / d->n;
  for (int64_t g = 0; g < d->groups; g++) {
    float *f = full + g * xg + r * cg, *b = blk + g * cg;
    memcpy(to_blk ? b : f, to_blk ? f : b, sizeof(float) * (size_t)cg);
  }
}

static void a2a_start(rt_coll *c) {
  a2a_dims d = a2a_of(c);
  int64_t w = d.X / d.n, blk = d.B * d.Sl * w, S = d.Sl * d.n;
  float *send = temp(c, 2 * d.n * blk);
  bool to_heads = c->o->at.to.axis == 2;
  for (int64_t r = 0; r < d.n; r++)
    for (int64_t b = 0; b < d.B; b++)
      for (int64_t s = 0; s < d.Sl; s++) {
        float *row = send + r * blk + (b * d.Sl + s) * w;
        if (to_heads) a2a_row(&d, r, (float *)c->in + (b * d.Sl + s) * d.X, row, true);
        else memcpy(row, c->in + (b * S + r * d.Sl + s) * w, sizeof(float) * (size_t)w);
      }
  if (!c->e->ad) {
    c->req = rt_comm_ialltoall(c->e->comm, RT_TP, send, blk, send + d.n * blk);
  } else if (d.n == 1) { /* a group of one: the exchange is a copy */
    memcpy(send + blk, send, sizeof(float) * (size_t)blk);
  } else {
    if (!rt_comm_sp_use(c->e->comm, c->e->ad->mask[c->micro])) rt_comm_abort(c->e->comm, EXIT_INTERNAL);
    c->req = rt_comm_ialltoall(c->e->comm, RT_SPG, send, blk, send + d.n * blk);
  }
}

static void a2a_finish(rt_coll *c) {
  a2a_dims d = a2a_of(c);
  int64_t w = d.X / d.n, blk = d.B * d.Sl * w, S = d.Sl * d.n;
  const float *recv = c->tmp + d.n * blk;
  bool to_heads = c->o->at.to.axis == 2;
  for (int64_t r = 0; r < d.n; r++)
    for (int64_t b = 0; b < d.B; b++)
      for (int64_t s = 0; s < d.Sl; s++) {
        float *row = (float *)recv + r * blk + (b * d.Sl + s) * w;
        if (to_heads) memcpy(c->out + (b * S + r * d.Sl + s) * w, row, sizeof(float) * (size_t)w);
        else a2a_row(&d, r, c->out + (b * d.Sl + s) * d.X, row, false);
      }
}

static bool is_sp(const ir_op *o) { return o->kind == IR_OP_ALL_TO_ALL && o->at.mesh_axis == 1; }

/* ---- sequence parallelism: ring attention's shift on the sp group ---------------- */
/* the block goes to the next member and the previous member's comes in,
 * straight between the registers (the input stays claimed until the shift
 * completes, while the ring step that reads it computes) */
static void shift_start(rt_coll *c) {
  c->req = rt_comm_ishift(c->e->comm, RT_TP, c->in, ir_numel(c->e->g, c->o->in[0]), c->out);
}

/* ---- the state machine ------------------------------------------------------------ */
static bool is_ce(const ir_op *o) { return o->kind == IR_OP_CROSS_ENTROPY || o->kind == IR_OP_CROSS_ENTROPY_GRAD; }

rt_coll *rt_coll_start(rt_exec *e, const ir_op *o, void *const *in, void *const *out, int64_t micro, bool own_in) {
  rt_coll *c = xcalloc(1, sizeof *c);
  c->e = e, c->o = o, c->in = in[0], c->out = out[0], c->micro = micro, c->own_in = own_in;
  if (e->ad && micro >= e->ad->nlive) { /* --adaptive-sp: an empty micro-batch, skipped by every rank */
    c->phase = 9;
  } else if (is_ce(o)) {
    const ir_tensor *x = &e->g->t[o->in[0]];
    c->labels = in[1];
    c->cols = ir_dim_eval(x->shape[x->rank - 1], 1, 1);
    c->rows = ir_numel(e->g, o->in[0]) / (c->cols > 0 ? c->cols : 1);
    (void)split_of;
    ce_max(c);
  } else if (is_sp(o)) {
    a2a_start(c);
  } else if (o->kind == IR_OP_RING_SHIFT) {
    shift_start(c);
  } else if (box_start(c)) {
    c->phase = 9;
  }
  return c;
}

static void done(rt_coll *c) {
  if (c->tmp) rt_exec_count(c->e, -c->tmp_n * 4);
  free(c->tmp);
  free(c);
}

bool rt_coll_settled(const rt_coll *c) { return !is_ce(c->o) || c->phase > 0; }

bool rt_coll_poll(rt_coll *c) {
  if (c->phase == 9) return done(c), true;
  if (c->req && !rt_comm_test(c->req)) return false;
  c->req = NULL;
  if (is_sp(c->o)) {
    a2a_finish(c);
    return done(c), true;
  }
  if (c->o->kind == IR_OP_RING_SHIFT) return done(c), true;
  if (!is_ce(c->o)) {
    box_finish(c);
    return done(c), true;
  }
  if (c->phase++ == 0) {
    ce_sums(c);
    return false;
  }
  ce_finish(c);
  return done(c), true;
}
