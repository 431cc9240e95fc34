/* actors.c — per pipeline stage: the actors, their registers, the static
 * schedule and the persistent tensors (docs/actor-plan.md).
 *
 * Actors of stage s, every rank of the stage runs them on its shards:
 *  - a compute actor per op of s (a coll actor when the op needs the tp
 *    group: a boxing collective, a vocabulary-split cross-entropy);
 *  - a recv actor per tensor s reads from another stage, a send actor per
 *    (tensor made on s, other stage reading it);
 *  - per gradient bucket made on s: with dp > 1 a reduce actor (all-reduce
 *    of the accumulated gradients after the last micro-batch; ZeRO-2: a
 *    reduce-scatter of every micro-batch's gradient into the shard, so no
 *    full-size accumulator exists), then a tp reduce actor when its
 *    gradients are partial sums over tp (sbp.c: all-reduced over tp once
 *    per step, in the accumulators), an optim actor (AdamW of the bucket),
 *    with ZeRO a gather actor (all-gather of the updated slices); a tied
 *    parameter's reduced gradient goes to its other stages (gsend/grecv,
 *    the grecv after the stage's every send: the peer's gsend comes after
 *    them), which run their own optim (and gather). ZeRO-3 holds parameters as
 *    dp slices: no gather after the update, and per micro-batch a fetch
 *    actor all-gathers a parameter into a register before the first reader
 *    of each pass (forward, backward), which the pass's readers read.
 * The optim actor also waits for every actor of s that reads one of its
 * parameters (dep), so no kernel of the step reads a parameter after its
 * update.
 *
 * Registers: every tensor an actor of s makes (or receives). regst_num: a
 * forward activation a backward op reads keeps pp - s buffers (stage s runs
 * at most pp - s forward passes ahead of their backward passes: 1F1B follows
 * from the buffer counts), a received tensor 2 (transfer and compute
 * overlap), the rest 1.
 *
 * The static schedule is the order one rank of s would run everything in:
 * the 1F1B phase order (warm-up forwards, then one backward and one forward
 * alternating, then the cool-down backwards), inside a phase the ops in graph
 * order with each recv just before its first reader and each send just after
 * its producer; a per-step actor just after the last of what it depends on.
 * The executor fires actors in any order the data allows but issues the
 * collectives of a communicator in schedule order (every rank of a group
 * agrees on it), and arena.c derives register lifetimes from it. */
#include "lower/lower.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  lw_ctx *c;
  int s;                 /* the stage */
  fmt_actor *act; int nact, capact;
  fmt_reg *reg; int nreg, capreg;
  int32_t *reg_of;       /* per tensor: register on this stage, or -1 */
  int32_t *actor_of_op;  /* per op: its actor on this stage, or -1 */
  int32_t *recv_of;      /* per tensor: its recv actor, or -1 */
  int32_t *fetch_reg;    /* ZeRO-3, per (parameter * 2 + backward): its gathered register, or -1 */
  int32_t *t_stage;      /* per tensor: the stage that makes it (-1: param/input) */
  int32_t **deps; int *ndeps, *capdeps; /* per actor, while building */
  int32_t **ins; int *nins;            /* per actor inputs (registers) */
} sb;

static int new_actor(sb *b, int kind, bool per_micro) {
  if (b->nact == b->capact) {
    b->capact = 2 * b->capact + 64;
    b->act = xrealloc(b->act, sizeof *b->act * (size_t)b->capact);
    b->deps = xrealloc(b->deps, sizeof *b->deps * (size_t)b->capact);
    b->ndeps = xrealloc(b->ndeps, sizeof(int) * (size_t)b->capact);
    b->capdeps = xrealloc(b->capdeps, sizeof(int) * (size_t)b->capact);
    b->ins = xrealloc(b->ins, sizeof *b->ins * (size_t)b->capact);
    b->nins = xrealloc(b->nins, sizeof(int) * (size_t)b->capact);
  }
  int i = b->nact++;
  fmt_actor *a = &b->act[i];
  memset(a, 0, sizeof *a);
  a->kind = (uint8_t)kind, a->per_micro = per_micro;
  a->op = a->tensor = a->peer = a->bucket = -1;
  for (int i = 0; i < FMT_MAXOUT; i++) a->acc[i] = -1;
  b->deps[i] = NULL, b->ndeps[i] = b->capdeps[i] = 0;
  b->ins[i] = xmalloc(sizeof(int32_t) * (IR_MAXIN + 1)), b->nins[i] = 0;
  return i;
}

static void dep(sb *b, int a, int on) {
  if (on < 0) return;
  for (int i = 0; i < b->ndeps[a]; i++)
    if (b->deps[a][i] == on) return;
  if (b->ndeps[a] == b->capdeps[a]) b->capdeps[a] = 2 * b->capdeps[a] + 4, b->deps[a] = xrealloc(b->deps[a], sizeof(int32_t) * (size_t)b->capdeps[a]);
  b->deps[a][b->ndeps[a]++] = on;
}

static bool bwd_reader(const ir_graph *g, ir_ref t) {
  for (int k = 0; k < g->nop; k++)
    for (int i = 0; i < g->op[k].nin; i++)
      if (g->op[k].in[i] == t && g->op[k].backward && g->op[k].kind != IR_OP_ADAMW) return true;
  return false;
}

static int new_reg(sb *b, ir_ref t, int producer, bool cross) {
  const ir_graph *g = b->c->p->g;
  if (b->nreg == b->capreg) b->capreg = 2 * b->capreg + 64, b->reg = xrealloc(b->reg, sizeof *b->reg * (size_t)b->capreg);
  fmt_reg *r = &b->reg[b->nreg];
  memset(r, 0, sizeof *r);
  r->tensor = t;
  r->bytes = ir_numel(g, t) * ir_dtype_size((ir_dtype)g->t[t].dtype);
  ir_ref pr = g->t[t].producer;
  bool fwd = pr >= 0 && !g->op[pr].backward;
  int n = fwd && bwd_reader(g, t) ? b->c->lay.pp - b->s : 1;
  r->regst_num = cross && n < 2 ? 2 : n < 1 ? 1 : n;
  r->producer = producer;
  r->view = -1;
  b->reg_of[t] = b->nreg;
  return b->nreg++;
}

/* does op o need the tp group? boxing collectives, vocab-split cross-entropy */
static bool needs_group(const lw_ctx *c, const ir_op *o) {
  if ((o->kind == IR_OP_ALL_TO_ALL || o->kind == IR_OP_RING_SHIFT) && o->at.mesh_axis == 1) return true; /* the sp group (sp.c, ring.c) */
  if (c->lay.tp <= 1) return false;
  if (ir_ops[o->kind].kclass == KC_COMM) return true;
  const ir_tensor *x = &c->p->g->t[o->in[0]];
  return (o->kind == IR_OP_CROSS_ENTROPY || o->kind == IR_OP_CROSS_ENTROPY_GRAD) && x->rank > 0 &&
         c->split[o->in[0]] == x->rank - 1;
}

static bool mine(const sb *b, int k) { return b->c->p->g->op[k].kind != IR_OP_ADAMW && b->c->p->op_stage[k] == b->s; }

static bool zero3(const lw_ctx *c) { return c->p->zero >= 3 && lw_dp_group(c) > 1; }

/* ZeRO-3: the register of parameter t gathered for the readers of one pass
 * (a fetch actor made on the pass's first use) */
static int fetch_reg(sb *b, ir_ref t, bool bwd) {
  int32_t *r = &b->fetch_reg[2 * t + bwd];
  if (*r >= 0) return *r;
  int a = new_actor(b, FMT_A_FETCH, true);
  b->act[a].tensor = t;
  *r = new_reg(b, t, a, false);
  b->reg_of[t] = -1; /* the parameter itself stays persistent */
  return *r;
}

/* a register op o reads as input t: made here, received (recv actor made on
 * first use) or, ZeRO-3, a parameter gathered for o's pass */
static int input_reg(sb *b, const ir_op *o, ir_ref t) {
  const ir_graph *g = b->c->p->g;
  if (zero3(b->c) && g->t[t].kind == IR_T_PARAM) return fetch_reg(b, t, o->backward);
  if (b->reg_of[t] >= 0) return b->reg_of[t];
  if (g->t[t].producer < 0) return -1; /* param, input, state: read directly */
  int a = new_actor(b, FMT_A_RECV, true);
  b->act[a].tensor = t, b->act[a].peer = b->t_stage[t];
  b->recv_of[t] = a;
  return new_reg(b, t, a, true);
}

static ir_ref grad_param(const lw_ctx *c, ir_ref t) {
  const fmt_prog *p = c->p;
  for (int i = 0; i < p->nparam; i++)
    if (p->param[i].grad == t) return p->param[i].tensor;
  return -1;
}

/* the actor of fused group gi (made on its first op): one entry of `in` per
 * kernel buffer it reads, a register per buffer it writes */
static int group_actor(sb *b, int gi, int32_t *made) {
  lw_ctx *c = b->c;
  if (made[gi] >= 0) return made[gi];
  const fmt_kernel *k = c->gkernel[gi];
  bool zero2 = c->p->zero >= 2 && lw_dp_group(c) > 1;
  int a = new_actor(b, FMT_A_COMPUTE, true), nout = 0;
  const ir_op *first = &c->p->g->op[c->gops[gi][0]];
  b->act[a].op = c->gops[gi][0], b->act[a].ops = c->gops[gi], b->act[a].nops = c->gnops[gi], b->act[a].kernel = k;
  b->ins[a] = xrealloc(b->ins[a], sizeof(int32_t) * (size_t)(k->nbuf + 1));
  for (int i = 0; i < k->nbuf; i++) {
    bool out = c->p->g->t[k->buf[i]].producer >= 0 && c->group_of[c->p->g->t[k->buf[i]].producer] == gi;
    if (!out) {
      b->ins[a][b->nins[a]++] = input_reg(b, first, k->buf[i]);
      continue;
    }
    new_reg(b, k->buf[i], a, false);
    if (!zero2) b->act[a].acc[nout] = grad_param(c, k->buf[i]);
    nout++;
  }
  return made[gi] = a;
}

static void op_actors(sb *b) {
  lw_ctx *c = b->c;
  const ir_graph *g = c->p->g;
  bool zero2 = c->p->zero >= 2 && lw_dp_group(c) > 1;
  int32_t *made = xmalloc(sizeof(int32_t) * (size_t)(c->ngroup + 1));
  for (int i = 0; i < c->ngroup; i++) made[i] = -1;
  for (int k = 0; k < g->nop; k++) {
    if (!mine(b, k)) continue;
    const ir_op *o = &g->op[k];
    if (c->group_of[k] >= 0) {
      b->actor_of_op[k] = group_actor(b, c->group_of[k], made);
      continue;
    }
    int a = new_actor(b, needs_group(c, o) ? FMT_A_COLL : FMT_A_COMPUTE, true);
    b->act[a].op = k;
    b->actor_of_op[k] = a;
    for (int i = 0; i < o->nin; i++) {
      int r = input_reg(b, o, o->in[i]);
      b->ins[a][b->nins[a]++] = r;
    }
    for (int i = 0; i < o->nout; i++) new_reg(b, o->out[i], a, false);
    for (int i = 0; i < o->nout && !zero2; i++) b->act[a].acc[i] = grad_param(c, o->out[i]);
    b->act[a].ops = ARENA_ARRAY(c->p->a, int32_t, 1), b->act[a].ops[0] = k, b->act[a].nops = 1;
  }
  free(made);
}

static void send_actors(sb *b) {
  const lw_ctx *c = b->c;
  const ir_graph *g = c->p->g;
  for (int t = 0; t < g->nt; t++) {
    if (b->t_stage[t] != b->s || b->reg_of[t] < 0) continue;
    uint64_t to = 0;
    for (int k = 0; k < g->nop; k++)
      for (int i = 0; i < g->op[k].nin; i++)
        if (g->op[k].in[i] == t && g->op[k].kind != IR_OP_ADAMW && c->p->op_stage[k] != b->s) to |= 1ull << c->p->op_stage[k];
    for (int s2 = 0; s2 < c->lay.pp; s2++)
      if (to >> s2 & 1) {
        int a = new_actor(b, FMT_A_SEND, true);
        b->act[a].tensor = t, b->act[a].peer = s2;
        b->ins[a][b->nins[a]++] = b->reg_of[t];
      }
  }
}

/* actors of this stage that read parameter t (its update must wait for them) */
static void dep_readers(sb *b, int a, ir_ref t) {
  const ir_graph *g = b->c->p->g;
  for (int k = 0; k < g->nop; k++) {
    if (!mine(b, k)) continue;
    for (int i = 0; i < g->op[k].nin; i++)
      if (g->op[k].in[i] == t) dep(b, a, b->actor_of_op[k]);
  }
}

/* the actor that makes param q's gradient on its grad stage */
static int grad_actor(const sb *b, const fmt_param *q) {
  ir_ref pr = b->c->p->g->t[q->grad].producer;
  return pr >= 0 ? b->actor_of_op[pr] : -1;
}

/* bucket bi's tp reduce: once per step, after every gradient of the bucket
 * (sbp.c deferred their sums over tp; the bucket holds only such) and
 * after its dp reduce `red` (-1: none), whose last firing under ZeRO-2/3
 * leaves the shard it sums */
static int tp_reduce(sb *b, int bi, int red) {
  const fmt_bucket *bk = &b->c->p->bucket[bi];
  int a = new_actor(b, FMT_A_TPREDUCE, false);
  b->act[a].bucket = bi;
  dep(b, a, red);
  for (int i = 0; i < bk->nparam; i++) dep(b, a, grad_actor(b, &b->c->p->param[bk->param[i]]));
  return a;
}

static void bucket_actors(sb *b) {
  lw_ctx *c = b->c;
  fmt_prog *p = c->p;
  bool dp = lw_dp_group(c) > 1, zero = dp && p->zero >= 1 && p->zero < 3, zero2 = dp && p->zero >= 2;
  for (int bi = 0; bi < p->nbucket; bi++) {
    const fmt_bucket *bk = &p->bucket[bi];
    const fmt_param *q0 = &p->param[bk->param[0]];
    bool here = bk->stage == b->s, holder = (q0->stages >> b->s & 1) != 0;
    if (!here && !holder) continue;
    int last = -1;
    if (here) {
      if (dp) {
        last = new_actor(b, FMT_A_REDUCE, zero2);
        b->act[last].bucket = bi;
        b->ins[last] = xrealloc(b->ins[last], sizeof(int32_t) * (size_t)(bk->nparam + 1));
        for (int i = 0; i < bk->nparam; i++) {
          int ga = grad_actor(b, &p->param[bk->param[i]]);
          dep(b, last, ga);
          if (zero2) b->ins[last][b->nins[last]++] = b->reg_of[p->param[bk->param[i]].grad];
        }
      }
      if (lw_grad_tp_sum(p, q0)) last = tp_reduce(b, bi, last);
      for (int s2 = 0; s2 < c->lay.pp; s2++) {
        if (s2 == b->s || !(q0->stages >> s2 & 1)) continue;
        int g = new_actor(b, FMT_A_GSEND, false);
        b->act[g].tensor = q0->tensor, b->act[g].peer = s2;
        dep(b, g, last >= 0 ? last : grad_actor(b, q0));
      }
    } else {
      last = new_actor(b, FMT_A_GRECV, false);
      b->act[last].tensor = q0->tensor, b->act[last].peer = bk->stage;
      /* the peer sends the reduced gradient after its last backward, which
       * needs every send of this stage for the last micro-batch: scheduled
       * before them, the grecv's optim (and the dp gather after it) would
       * stand in the dp group's order ahead of reduces that this stage's
       * later sends wait on through the arena (a cycle across ranks) */
      for (int a = 0; a < b->nact; a++)
        if (b->act[a].kind == FMT_A_SEND) dep(b, last, a);
    }
    int o = new_actor(b, FMT_A_OPTIM, false);
    b->act[o].bucket = bi;
    dep(b, o, last);
    for (int i = 0; i < bk->nparam; i++) {
      dep_readers(b, o, p->param[bk->param[i]].tensor);
      if (last < 0) dep(b, o, grad_actor(b, &p->param[bk->param[i]]));
    }
    if (zero) {
      int g = new_actor(b, FMT_A_GATHER, false);
      b->act[g].bucket = bi;
      dep(b, g, o);
    }
  }
}

/* consumers of every register, from the actors' inputs */
static void link_consumers(sb *b) {
  int *n = xcalloc((size_t)b->nreg + 1, sizeof(int));
  for (int a = 0; a < b->nact; a++)
    for (int i = 0; i < b->nins[a]; i++)
      if (b->ins[a][i] >= 0) n[b->ins[a][i]]++;
  arena *ar = b->c->p->a;
  for (int r = 0; r < b->nreg; r++) b->reg[r].cons = ARENA_ARRAY(ar, int32_t, n[r] + 1), b->reg[r].ncons = 0;
  for (int a = 0; a < b->nact; a++)
    for (int i = 0; i < b->nins[a]; i++)
      if (b->ins[a][i] >= 0) {
        fmt_reg *r = &b->reg[b->ins[a][i]];
        bool dup = false;
        for (int j = 0; j < r->ncons; j++) dup |= r->cons[j] == a;
        if (!dup) r->cons[r->ncons++] = a;
      }
  free(n);
}

/* ---- the static schedule ---------------------------------------------------- */
typedef struct {
  fmt_step *v;
  int n, cap;
  int32_t *pos;          /* per (actor * M + micro): position, or -1 */
  int M;
  int32_t *pm_reduce; int npm; /* the per-micro reduce actors (ZeRO-2) */
} sched;

static void put(sched *s, int a, int m) {
  if (s->pos[(int64_t)a * s->M + m] >= 0) return;
  if (s->n == s->cap) s->cap = 2 * s->cap + 256, s->v = xrealloc(s->v, sizeof *s->v * (size_t)s->cap);
  s->pos[(int64_t)a * s->M + m] = s->n;
  s->v[s->n++] = (fmt_step){a, m};
}

/* placed: every input register of actor a is made for micro-batch m */
static bool inputs_placed(const sb *b, const sched *s, int a, int m) {
  for (int i = 0; i < b->nins[a]; i++) {
    int r = b->ins[a][i];
    if (r >= 0 && s->pos[(int64_t)b->reg[r].producer * s->M + m] < 0) return false;
  }
  return true;
}

/* one phase (forward or backward of micro-batch m): ops in graph order, recvs
 * and fetches before their first reader, sends after their producer, a per-micro reduce
 * (ZeRO-2) as soon as its gradients exist */
static void phase(sb *b, sched *s, const int32_t *send_head, const int32_t *send_next, int m, int chunk, bool bwd) {
  const ir_graph *g = b->c->p->g;
  for (int k = 0; k < g->nop; k++) {
    int a = b->actor_of_op[k];
    if (a < 0 || g->op[k].backward != bwd || b->c->p->op_chunk[k] != chunk) continue;
    for (int i = 0; i < b->nins[a]; i++) {
      int r = b->ins[a][i];
      int k = r >= 0 ? b->act[b->reg[r].producer].kind : -1;
      if (k == FMT_A_RECV || k == FMT_A_FETCH) put(s, b->reg[r].producer, m);
    }
    put(s, a, m);
    for (int x = send_head[a]; x >= 0; x = send_next[x]) put(s, x, m);
    for (int i = 0; bwd && i < s->npm; i++)
      if (inputs_placed(b, s, s->pm_reduce[i], m)) put(s, s->pm_reduce[i], m);
  }
}

static int dep_pos(const sb *b, const sched *s, int a) {
  int last = -1;
  for (int i = 0; i < b->ndeps[a]; i++) {
    int d = b->deps[a][i], p = s->pos[(int64_t)d * s->M + (b->act[d].per_micro ? s->M - 1 : 0)];
    last = p > last ? p : last;
  }
  return last;
}

/* per-step actors: each right after the last of what it depends on (a stable
 * insertion by position, in actor order) */
static void per_step(sb *b, sched *s) {
  bool placed_any = true;
  while (placed_any) {
    placed_any = false;
    for (int a = 0; a < b->nact; a++) {
      if (b->act[a].per_micro || s->pos[(int64_t)a * s->M] >= 0) continue;
      bool ready = true;
      for (int i = 0; i < b->ndeps[a]; i++) {
        int d = b->deps[a][i];
        ready &= s->pos[(int64_t)d * s->M + (b->act[d].per_micro ? s->M - 1 : 0)] >= 0;
      }
      if (!ready) continue;
      int at = dep_pos(b, s, a) + 1;
      put(s, a, 0);
      fmt_step st = s->v[s->n - 1];
      memmove(&s->v[at + 1], &s->v[at], sizeof *s->v * (size_t)(s->n - 1 - at));
      s->v[at] = st;
      for (int i = at; i < s->n; i++) s->pos[(int64_t)s->v[i].actor * s->M + s->v[i].micro] = i;
      placed_any = true;
    }
  }
}

/* Megatron's interleaved order: the i-th forward (backward) pass of a stage
 * runs micro-batch vmicro of chunk vchunk, groups of pp micro-batches going
 * through the chunks in turn (backward: the chunks in reverse); with vpp 1,
 * micro-batch i of the one chunk */
static int vmicro(int pp, int vpp, int i) { return vpp > 1 ? i / (pp * vpp) * pp + i % pp : i; }
static int vchunk(int pp, int vpp, int i, bool bwd) {
  int k = vpp > 1 ? i / pp % vpp : 0;
  return bwd ? vpp - 1 - k : k;
}

/* buffers: at least as many as the schedule keeps alive at once (interleaving
 * keeps more forward activations in flight than 1F1B's pp - s) */
static void regst_from_schedule(fmt_stage *st, int M) {
  int32_t *pos = xcalloc((size_t)st->nact * (size_t)M + 1, sizeof(int32_t));
  int32_t *end = xcalloc((size_t)st->nreg * (size_t)M + 1, sizeof(int32_t));
  for (int i = 0; i < st->nsched; i++) pos[(int64_t)st->sched[i].actor * M + st->sched[i].micro] = i;
  for (int r = 0; r < st->nreg; r++)
    for (int m = 0; m < M; m++) {
      const fmt_reg *g = &st->reg[r];
      int32_t e = pos[(int64_t)g->producer * M + m];
      for (int c = 0; c < g->ncons; c++) e = pos[(int64_t)g->cons[c] * M + m] > e ? pos[(int64_t)g->cons[c] * M + m] : e;
      end[(int64_t)r * M + m] = e;
    }
  lw_alias_ends(st, M, end); /* a viewed register lives as long as its views */
  for (int r = 0; r < st->nreg; r++) {
    fmt_reg *g = &st->reg[r];
    for (int m = 0; m < M; m++) {
      int live = 1;
      for (int m2 = m + 1; m2 < M && pos[(int64_t)g->producer * M + m2] < end[(int64_t)r * M + m]; m2++) live++;
      g->regst_num = live > g->regst_num ? live : g->regst_num;
    }
  }
  free(pos), free(end);
}

static void schedule(sb *b, fmt_stage *st) {
  int M = b->c->lay.micro, pp = b->c->lay.pp;
  sched s = {NULL, 0, 0, xmalloc(sizeof(int32_t) * ((size_t)b->nact * (size_t)M + 1)), M, NULL, 0};
  s.pm_reduce = xmalloc(sizeof(int32_t) * (size_t)(b->nact + 1));
  for (int a = 0; a < b->nact; a++)
    if (b->act[a].kind == FMT_A_REDUCE && b->act[a].per_micro) s.pm_reduce[s.npm++] = a;
  for (int64_t i = 0; i < (int64_t)b->nact * M; i++) s.pos[i] = -1;
  int32_t *head = xmalloc(sizeof(int32_t) * (size_t)(b->nact + 1)), *next = xmalloc(sizeof(int32_t) * (size_t)(b->nact + 1));
  for (int a = 0; a < b->nact; a++) head[a] = next[a] = -1;
  for (int a = b->nact - 1; a >= 0; a--)
    if (b->act[a].kind == FMT_A_SEND) {
      int pr = b->reg[b->ins[a][0]].producer;
      next[a] = head[pr], head[pr] = a;
    }
  int vpp = b->c->p->vpp, n = M * vpp, warm = vpp > 1 ? (pp - b->s - 1) * 2 + (vpp - 1) * pp : pp - b->s - 1;
  warm = warm < n ? warm : n;
  for (int i = 0; i < warm; i++) phase(b, &s, head, next, vmicro(pp, vpp, i), vchunk(pp, vpp, i, false), false);
  for (int i = 0; i < n; i++) {
    if (warm + i < n) phase(b, &s, head, next, vmicro(pp, vpp, warm + i), vchunk(pp, vpp, warm + i, false), false);
    phase(b, &s, head, next, vmicro(pp, vpp, i), vchunk(pp, vpp, i, true), true);
  }
  free(head), free(next);
  for (int a = 0; a < b->nact; a++) /* anything left (a recv no op reads) */
    for (int m = 0; b->act[a].per_micro && m < M; m++) put(&s, a, m);
  per_step(b, &s);
  st->nsched = s.n;
  st->sched = ARENA_ARRAY(b->c->p->a, fmt_step, s.n + 1);
  memcpy(st->sched, s.v, sizeof *s.v * (size_t)s.n);
  free(s.v), free(s.pos), free(s.pm_reduce);
}

/* ---- persistent tensors ------------------------------------------------------- */
static void add_pers(fmt_stage *st, fmt_pers *v, int *n, ir_ref t, int role, int64_t bytes) {
  int64_t off = st->persist_bytes;
  v[(*n)++] = (fmt_pers){t, (uint8_t)role, bytes, off};
  st->persist_bytes = off + ((bytes + 63) & ~(int64_t)63);
}

/* held here: params (with state) used on this stage; the gradient
 * accumulators of the buckets this stage reduces or receives, bucket by
 * bucket so a bucket's accumulators are contiguous */
static void persistent(sb *b, fmt_stage *st) {
  fmt_prog *p = b->c->p;
  int dp = lw_dp_group(b->c);
  bool zero = dp > 1 && p->zero >= 1, zero2 = dp > 1 && p->zero >= 2;
  fmt_pers *v = ARENA_ARRAY(p->a, fmt_pers, 4 * p->nparam + 1);
  int n = 0;
  for (int i = 0; i < p->nparam; i++) {
    const fmt_param *q = &p->param[i];
    if (!(q->stages >> b->s & 1)) continue;
    int64_t bytes = ir_numel(p->g, q->tensor) * 4, slice = ((ir_numel(p->g, q->tensor) + dp - 1) / dp) * 4;
    add_pers(st, v, &n, q->tensor, FMT_P_PARAM, zero3(b->c) ? slice : bytes);
    if (q->adamw < 0) continue;
    add_pers(st, v, &n, q->exp_avg, FMT_P_EXP_AVG, zero ? slice : bytes);
    add_pers(st, v, &n, q->exp_avg_sq, FMT_P_EXP_AVG_SQ, zero ? slice : bytes);
  }
  for (int bi = 0; bi < p->nbucket; bi++)
    for (int j = 0; j < p->bucket[bi].nparam; j++) {
      const fmt_param *q = &p->param[p->bucket[bi].param[j]];
      if (!(q->stages >> b->s & 1) && q->grad_stage != b->s) continue;
      int64_t bytes = ir_numel(p->g, q->tensor) * 4, slice = ((ir_numel(p->g, q->tensor) + dp - 1) / dp) * 4;
      add_pers(st, v, &n, q->tensor, FMT_P_GRAD, zero2 ? slice : bytes);
    }
  st->npers = n, st->pers = v;
}

static void finish(sb *b, fmt_stage *st) {
  arena *ar = b->c->p->a;
  st->nact = b->nact, st->nreg = b->nreg;
  st->act = ARENA_ARRAY(ar, fmt_actor, b->nact + 1);
  memcpy(st->act, b->act, sizeof *b->act * (size_t)b->nact);
  for (int a = 0; a < b->nact; a++) {
    fmt_actor *x = &st->act[a];
    x->nin = b->nins[a], x->in = ARENA_ARRAY(ar, int32_t, b->nins[a] + 1);
    memcpy(x->in, b->ins[a], sizeof(int32_t) * (size_t)b->nins[a]);
    x->ndep = b->ndeps[a], x->dep = ARENA_ARRAY(ar, int32_t, b->ndeps[a] + 1);
    if (b->ndeps[a]) memcpy(x->dep, b->deps[a], sizeof(int32_t) * (size_t)b->ndeps[a]);
    x->nout = 0, x->out = ARENA_ARRAY(ar, int32_t, FMT_MAXOUT);
  }
  for (int r = 0; r < b->nreg; r++) {
    fmt_actor *x = &st->act[b->reg[r].producer];
    x->out[x->nout++] = r;
  }
  st->reg = ARENA_ARRAY(ar, fmt_reg, b->nreg + 1);
  memcpy(st->reg, b->reg, sizeof *b->reg * (size_t)b->nreg);
}

static void stage(lw_ctx *c, int s, int32_t *t_stage) {
  const ir_graph *g = c->p->g;
  sb b;
  memset(&b, 0, sizeof b);
  b.c = c, b.s = s, b.t_stage = t_stage;
  b.reg_of = xmalloc(sizeof(int32_t) * (size_t)(g->nt + 1));
  b.recv_of = xmalloc(sizeof(int32_t) * (size_t)(g->nt + 1));
  b.actor_of_op = xmalloc(sizeof(int32_t) * (size_t)(g->nop + 1));
  b.fetch_reg = xmalloc(sizeof(int32_t) * (size_t)(2 * g->nt + 1));
  for (int t = 0; t < g->nt; t++) b.reg_of[t] = b.recv_of[t] = b.fetch_reg[2 * t] = b.fetch_reg[2 * t + 1] = -1;
  for (int k = 0; k < g->nop; k++) b.actor_of_op[k] = -1;
  op_actors(&b);
  send_actors(&b);
  bucket_actors(&b);
  link_consumers(&b);
  fmt_stage *st = &c->p->stage[s];
  finish(&b, st);
  schedule(&b, st);
  lw_alias_stage(c, st);
  regst_from_schedule(st, c->lay.micro);
  persistent(&b, st);
  for (int a = 0; a < b.nact; a++) free(b.deps[a]), free(b.ins[a]);
  free(b.act), free(b.reg), free(b.reg_of), free(b.recv_of), free(b.fetch_reg), free(b.actor_of_op);
  free(b.deps), free(b.ndeps), free(b.capdeps), free(b.ins), free(b.nins);
}

bool lw_actors(lw_ctx *c) {
  fmt_prog *p = c->p;
  const ir_graph *g = p->g;
  int32_t *t_stage = xmalloc(sizeof(int32_t) * (size_t)(g->nt + 1));
  for (int t = 0; t < g->nt; t++) t_stage[t] = g->t[t].producer >= 0 ? p->op_stage[g->t[t].producer] : -1;
  p->nstage = c->lay.pp;
  p->stage = ARENA_ARRAY(p->a, fmt_stage, p->nstage);
  for (int s = 0; s < p->nstage; s++) stage(c, s, t_stage);
  free(t_stage);
  return true;
}
