/* actors.c — the actor plan: what runs where, and with how many buffers.
 *
 * From the training graph and the layout (dp x pp; rank = stage*dp + i):
 * one compute actor per (op, rank of the op's stage); one send and one recv
 * actor per tensor crossing a stage boundary; one all_reduce actor per
 * parameter gradient and rank when dp > 1; one adamw actor per parameter and
 * rank holding it. Every produced tensor is a register with its producer, its
 * consumers and regst_num buffers: a forward activation of stage s that a
 * backward op consumes gets pp - s buffers (the micro-batches stage s keeps in
 * flight under 1F1B, which therefore needs no schedule of its own: an actor
 * fires when all inputs hold a buffer and an output buffer is free); other
 * registers get 1 (2 across a stage boundary, to overlap transfer and compute).
 * Per rank the plan states the predicted bytes of parameters, optimizer state
 * and registers (bytes x regst_num). Format: docs/actor-plan.md, version 1. */
#include "runtime/rt_internal.h"
#include "ir/autodiff.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  ir_graph *g;
  const rt_config *cfg;
  int *op_stage, *t_stage, pp, dp;
  cJSON *actors, *regs;
  int nact, nreg;
  int *reg_of;          /* per (tensor, rank): register id, -1 */
  int *actor_of;        /* per (op, rank): compute actor id */
  double *rank_bytes;
} plan;

static bool is_fwd_act(const plan *p, ir_ref t) {
  ir_ref pr = p->g->t[t].producer;
  return pr >= 0 && !p->g->op[pr].backward;
}

static bool used_by_backward(const plan *p, ir_ref t) {
  for (int k = 0; k < p->g->nop; k++)
    for (int i = 0; i < p->g->op[k].nin; i++)
      if (p->g->op[k].in[i] == t && p->g->op[k].backward) return true;
  return false;
}

static int regst_num(const plan *p, ir_ref t, int stage, bool cross) {
  if (is_fwd_act(p, t) && used_by_backward(p, t)) return p->pp - stage > 1 ? p->pp - stage : 1;
  return cross ? 2 : 1;
}

static int add_reg(plan *p, ir_ref t, int rank, int stage, int actor, bool cross) {
  cJSON *r = cJSON_CreateObject();
  double bytes = (double)ir_numel(p->g, t) * 4;
  int n = regst_num(p, t, stage, cross);
  cJSON_AddNumberToObject(r, "id", p->nreg);
  cJSON_AddStringToObject(r, "tensor", p->g->t[t].name ? p->g->t[t].name : "?");
  cJSON_AddNumberToObject(r, "rank", rank);
  cJSON_AddNumberToObject(r, "producer", actor);
  cJSON_AddItemToObject(r, "consumers", cJSON_CreateArray());
  cJSON_AddNumberToObject(r, "regst_num", n);
  cJSON_AddNumberToObject(r, "bytes", bytes);
  cJSON_AddItemToArray(p->regs, r);
  p->rank_bytes[rank] += bytes * n;
  p->reg_of[(int64_t)t * p->dp * p->pp + rank] = p->nreg;
  return p->nreg++;
}

static void consume(plan *p, int reg, int actor) {
  cJSON *r = cJSON_GetArrayItem(p->regs, reg);
  cJSON_AddItemToArray(cJSON_GetObjectItem(r, "consumers"), cJSON_CreateNumber(actor));
}

static cJSON *add_actor(plan *p, const char *kind, const char *op, int rank, int stage) {
  cJSON *a = cJSON_CreateObject();
  cJSON_AddNumberToObject(a, "id", p->nact++);
  cJSON_AddStringToObject(a, "kind", kind);
  cJSON_AddStringToObject(a, "op", op);
  cJSON_AddNumberToObject(a, "rank", rank);
  cJSON_AddNumberToObject(a, "stage", stage);
  cJSON_AddItemToObject(a, "inputs", cJSON_CreateArray());
  cJSON_AddItemToObject(a, "outputs", cJSON_CreateArray());
  cJSON_AddItemToArray(p->actors, a);
  return a;
}

static void link_in(plan *p, cJSON *a, int reg) {
  cJSON_AddItemToArray(cJSON_GetObjectItem(a, "inputs"), cJSON_CreateNumber(reg));
  consume(p, reg, (int)cJSON_GetObjectItem(a, "id")->valuedouble);
}

static void link_out(cJSON *a, int reg) { cJSON_AddItemToArray(cJSON_GetObjectItem(a, "outputs"), cJSON_CreateNumber(reg)); }

static int *regp(plan *p, ir_ref t, int rank) { return &p->reg_of[(int64_t)t * p->dp * p->pp + rank]; }

/* the register holding t on `rank`, making a send/recv pair when t comes from
 * another stage */
static int input_reg(plan *p, ir_ref t, int rank, int stage) {
  if (*regp(p, t, rank) >= 0 || p->t_stage[t] < 0) return *regp(p, t, rank);
  int from = p->t_stage[t] * p->dp + rank % p->dp;
  cJSON *s = add_actor(p, "send", "send_recv", from, p->t_stage[t]);
  link_in(p, s, *regp(p, t, from));
  cJSON *r = add_actor(p, "recv", "send_recv", rank, stage);
  int reg = add_reg(p, t, rank, stage, (int)cJSON_GetObjectItem(r, "id")->valuedouble, true);
  link_out(r, reg);
  return reg;
}

/* pass 1: the actor of op k on `rank` and its output registers */
static void compute_actor(plan *p, int k, int rank) {
  const ir_op *o = &p->g->op[k];
  int stage = p->op_stage[k];
  cJSON *a = add_actor(p, "compute", ir_ops[o->kind].name, rank, stage);
  cJSON_AddNumberToObject(a, "op_index", k);
  int id = (int)cJSON_GetObjectItem(a, "id")->valuedouble;
  p->actor_of[(int64_t)k * p->dp * p->pp + rank] = id;
  for (int i = 0; i < o->nout; i++) link_out(a, add_reg(p, o->out[i], rank, stage, id, false));
}

/* pass 2: its inputs, with send/recv pairs across stages */
static void compute_inputs(plan *p, int k, int rank) {
  const ir_op *o = &p->g->op[k];
  cJSON *a = cJSON_GetArrayItem(p->actors, p->actor_of[(int64_t)k * p->dp * p->pp + rank]);
  for (int i = 0; i < o->nin; i++) {
    int r = input_reg(p, o->in[i], rank, p->op_stage[k]);
    if (r >= 0) link_in(p, a, r);
  }
}

static void optimizer_actors(plan *p, int k, int rank, int stage, const uint64_t *holders) {
  const ir_op *o = &p->g->op[k];
  if (!(holders[o->in[0]] >> stage & 1)) return;
  int gr = input_reg(p, o->in[1], rank, stage);
  if (p->dp > 1 && p->t_stage[o->in[1]] == stage) {
    cJSON *ar = add_actor(p, "all_reduce", "all_reduce", rank, stage);
    link_in(p, ar, gr);
    gr = add_reg(p, o->in[1], rank, stage, (int)cJSON_GetObjectItem(ar, "id")->valuedouble, false);
    link_out(ar, gr);
  }
  cJSON *a = add_actor(p, "optimizer", "adamw", rank, stage);
  cJSON_AddNumberToObject(a, "op_index", k);
  cJSON_AddStringToObject(a, "param", p->g->t[o->in[0]].name);
  link_in(p, a, gr);
  p->rank_bytes[rank] += 3.0 * 4 * (double)ir_numel(p->g, o->in[0]);
}

static void build(plan *p, const uint64_t *holders) {
  int nr = p->dp * p->pp;
  for (int rank = 0; rank < nr; rank++) {
    int stage = rank / p->dp;
    for (int k = 0; k < p->g->nop; k++)
      if (p->g->op[k].kind != IR_OP_ADAMW && p->op_stage[k] == stage) compute_actor(p, k, rank);
  }
  for (int rank = 0; rank < nr; rank++)
    for (int k = 0; k < p->g->nop; k++)
      if (p->g->op[k].kind != IR_OP_ADAMW && p->op_stage[k] == rank / p->dp) compute_inputs(p, k, rank);
  for (int rank = 0; rank < nr; rank++)
    for (int k = 0; k < p->g->nop; k++)
      if (p->g->op[k].kind == IR_OP_ADAMW) optimizer_actors(p, k, rank, rank / p->dp, holders);
}

static cJSON *header(const plan *p) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "format", "sbpc-actors");
  cJSON_AddNumberToObject(j, "version", 1);
  cJSON_AddStringToObject(j, "model", p->cfg->model ? p->cfg->model : "");
  cJSON *l = cJSON_AddObjectToObject(j, "layout");
  cJSON_AddNumberToObject(l, "dp", p->dp);
  cJSON_AddNumberToObject(l, "tp", p->cfg->lay.tp);
  cJSON_AddNumberToObject(l, "pp", p->pp);
  cJSON_AddNumberToObject(l, "micro", p->cfg->lay.micro);
  cJSON_AddNumberToObject(j, "ranks", p->dp * p->pp * p->cfg->lay.tp);
  cJSON_AddNumberToObject(j, "global_batch", (double)p->cfg->global_batch);
  cJSON_AddNumberToObject(j, "seq", (double)p->cfg->seq);
  return j;
}

static bool write_json(cJSON *j, const char *path) {
  char *txt = cJSON_Print(j), tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  bool ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
  if (f) ok = fclose(f) == 0 && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) fprintf(stderr, "%s: error: cannot write the actor plan\n", path);
  free(txt);
  return ok;
}

static bool has_backward(const ir_graph *g) {
  for (int k = 0; k < g->nop; k++)
    if (g->op[k].backward) return true;
  return false;
}

bool rt_write_actor_plan(ir_graph *g, const rt_config *cfg, const char *path) {
  int32_t *fwd_of = NULL;
  diag d;
  diag_init(&d, cfg->model ? cfg->model : "model", NULL, 0);
  if (!has_backward(g) && !ir_autodiff_map(g, NULL, &d, &fwd_of)) {
    free(fwd_of);
    return false;
  }
  plan p;
  memset(&p, 0, sizeof p);
  p.g = g, p.cfg = cfg, p.pp = cfg->lay.pp > 0 ? cfg->lay.pp : 1, p.dp = cfg->lay.dp > 0 ? cfg->lay.dp : 1;
  int64_t mb = cfg->global_batch / p.dp / (cfg->lay.micro > 0 ? cfg->lay.micro : 1);
  ir_bind(g, mb > 0 ? mb : 1, cfg->seq > 0 ? cfg->seq : 1);
  int nr = p.dp * p.pp;
  p.op_stage = xcalloc((size_t)g->nop + 1, sizeof(int));
  p.t_stage = xcalloc((size_t)g->nt + 1, sizeof(int));
  p.reg_of = xmalloc(sizeof(int) * (size_t)g->nt * (size_t)nr);
  for (int64_t i = 0; i < (int64_t)g->nt * nr; i++) p.reg_of[i] = -1;
  p.rank_bytes = xcalloc((size_t)nr, sizeof(double));
  p.actor_of = xcalloc((size_t)g->nop * (size_t)nr + 1, sizeof(int));
  uint64_t *holders = xcalloc((size_t)g->nt + 1, sizeof *holders);
  rt_place(g, fwd_of, p.pp, p.op_stage, p.t_stage);
  for (int k = 0; k < g->nop; k++)
    for (int i = 0; i < g->op[k].nin && g->op[k].kind != IR_OP_ADAMW; i++)
      if (g->t[g->op[k].in[i]].kind == IR_T_PARAM) holders[g->op[k].in[i]] |= 1ull << p.op_stage[k];
  cJSON *j = header(&p);
  p.actors = cJSON_AddArrayToObject(j, "actors");
  p.regs = cJSON_AddArrayToObject(j, "registers");
  build(&p, holders);
  cJSON *mem = cJSON_AddArrayToObject(j, "predicted_bytes_per_rank");
  for (int r = 0; r < nr; r++) cJSON_AddItemToArray(mem, cJSON_CreateNumber(p.rank_bytes[r]));
  bool ok = write_json(j, path);
  cJSON_Delete(j);
  free(p.op_stage), free(p.t_stage), free(p.reg_of), free(p.rank_bytes), free(p.actor_of), free(holders), free(fwd_of);
  return ok;
}

/* get_int: integer field k of o, dflt when absent, -1 when it is not an
 * integer within +-INT32_MAX (so no cast below can overflow). */
static int64_t get_int(cJSON *o, const char *k, int64_t dflt) {
  cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!cJSON_IsNumber(x)) return dflt;
  double v = x->valuedouble;
  return v >= -INT32_MAX && v <= INT32_MAX && v == (double)(int64_t)v ? (int64_t)v : -1;
}

/* batch_ok: batch and sequence length a run can hold: at least one sample,
 * seq 0 (from the model) or more, at most 2^28 tokens a step. */
static bool batch_ok(const rt_config *c) {
  return c->global_batch >= 1 && c->seq >= 0 && c->global_batch * c->seq <= ((int64_t)1 << 28);
}

bool rt_read_actor_plan(const char *path, rt_config *cfg, arena *a) {
  size_t len;
  char *txt = read_file(path, (size_t)1 << 30, &len);
  if (!txt) return false;
  cJSON *j = cJSON_ParseWithLength(txt, len);
  free(txt);
  cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model"), *l = cJSON_GetObjectItemCaseSensitive(j, "layout");
  bool ok = cJSON_IsObject(j) && get_int(j, "version", 0) == 1 && cJSON_IsString(m) && cJSON_IsObject(l);
  if (!ok) {
    fprintf(stderr, "%s: error: not a version-1 sbpc actor plan (needs version, model, layout)\n", path);
  } else {
    cfg->model = arena_strdup(a, m->valuestring);
    cfg->lay.dp = (int)get_int(l, "dp", 1), cfg->lay.tp = (int)get_int(l, "tp", 1);
    cfg->lay.pp = (int)get_int(l, "pp", 1), cfg->lay.micro = (int)get_int(l, "micro", 1);
    cfg->global_batch = get_int(j, "global_batch", cfg->global_batch);
    cfg->seq = get_int(j, "seq", cfg->seq);
    ok = cfg->lay.dp >= 1 && cfg->lay.tp >= 1 && cfg->lay.pp >= 1 && cfg->lay.micro >= 1 && cfg->lay.dp <= 4096 &&
         cfg->lay.pp <= 64 && cfg->lay.tp <= 4096 && cfg->lay.micro <= 4096;
    if (!ok) fprintf(stderr, "%s: error: bad layout in the actor plan\n", path);
    else if (!(ok = batch_ok(cfg)))
      fprintf(stderr, "%s: error: bad global_batch or seq in the actor plan (%lld x %lld)\n", path,
              (long long)cfg->global_batch, (long long)cfg->seq);
  }
  cJSON_Delete(j);
  return ok;
}

bool rt_read_plan_json(const char *path, rt_config *cfg) {
  size_t len;
  char *txt = read_file(path, (size_t)1 << 30, &len);
  if (!txt) return false;
  cJSON *j = cJSON_ParseWithLength(txt, len);
  free(txt);
  cJSON *par = cJSON_GetObjectItemCaseSensitive(j, "parallel"), *tr = cJSON_GetObjectItemCaseSensitive(j, "train");
  bool ok = cJSON_IsObject(par) && get_int(j, "version", 0) == 1;
  if (!ok) {
    fprintf(stderr, "%s: error: not a version-1 sbpc plan (needs version and parallel)\n", path);
  } else {
    cfg->lay.dp = (int)get_int(par, "dp", 1), cfg->lay.tp = (int)get_int(par, "tp", 1);
    cfg->lay.pp = (int)get_int(par, "pp", 1), cfg->lay.micro = (int)get_int(par, "num_micro_batches", 1);
    if (cJSON_IsObject(tr)) {
      cfg->global_batch = get_int(tr, "global_batch", cfg->global_batch);
      cfg->seq = get_int(tr, "seq", cfg->seq);
    }
    int64_t sp = get_int(par, "sp", 1), vpp = get_int(par, "vpp", 1), zero = get_int(par, "zero", 0);
    cJSON *rc = cJSON_GetObjectItemCaseSensitive(par, "recompute");
    cfg->zero = (int)zero;
    if (zero > 2)
      fprintf(stderr, "%s: note: ZeRO stage %lld runs as stage 2 (gradients and optimizer state sharded)\n", path,
              (long long)zero);
    if (cJSON_IsString(rc) && rt_recompute_parse(rc->valuestring) >= 0) cfg->recompute = rt_recompute_parse(rc->valuestring);
    else if (cJSON_IsString(rc))
      fprintf(stderr, "%s: note: unknown recompute policy '%s'; training without recompute\n", path, rc->valuestring);
    ok = cfg->lay.dp >= 1 && cfg->lay.tp >= 1 && cfg->lay.pp >= 1 && cfg->lay.micro >= 1 && cfg->lay.dp <= 4096 &&
         cfg->lay.tp <= 4096 && cfg->lay.pp <= 64 && cfg->lay.micro <= 4096;
    if (!ok) fprintf(stderr, "%s: error: bad parallel layout in the plan\n", path);
    else if (!(ok = batch_ok(cfg)))
      fprintf(stderr, "%s: error: bad global_batch or seq in the plan (%lld x %lld)\n", path,
              (long long)cfg->global_batch, (long long)cfg->seq);
    else if (sp != 1 || vpp != 1) {
      fprintf(stderr, "%s: error: the runtime does not run sequence parallelism or interleaved stages (sp %lld, vpp %lld)\n",
              path, (long long)sp, (long long)vpp);
      ok = false;
    }
  }
  cJSON_Delete(j);
  return ok;
}
