/* fx_gpt.c — GPT graphs and clusters built in code, for tests and benchmarks.
 *
 * fx_gpt_graph makes the forward graph the front end produces from a GPT
 * .sbp file (examples/gpt2.sbp: embedding + learned positions, pre-LN blocks
 * with fused QKV, attention, projection, dropout, GELU MLP, a tied LM head and
 * cross-entropy), with every tensor's shape set, so the planner can be tested
 * and benchmarked at any size without parsing. The clusters are the DGX-A100
 * description of docs/language.md and a V100 node type for mixed clusters. */
#include "tests/support/fixtures.h"
#include <stdarg.h>
#include <string.h>

typedef struct {
  ir_graph *g;
  int blk, layer, lidx;
} gb;

static ir_dim dB(void) { ir_dim d = {1, 1, 0}; return d; }
static ir_dim dS(void) { ir_dim d = {1, 0, 1}; return d; }

static ir_ref tens(gb *b, const char *name, ir_tkind k, ir_dtype dt, int rank, ...) {
  ir_tensor t = ir_tensor_init(name ? arena_strdup(b->g->arena, name) : NULL, k, dt);
  va_list ap;
  va_start(ap, rank);
  t.rank = (uint8_t)rank;
  for (int i = 0; i < rank; i++) t.shape[i] = va_arg(ap, ir_dim);
  va_end(ap);
  if (k != IR_T_INPUT && b->blk >= 0) t.block = b->blk, t.layer = b->layer, t.lidx = b->lidx;
  if (!t.name) t.name = arena_printf(b->g->arena, "%%%d", b->g->nt);
  return ir_tensor_add(b->g, &t);
}

static ir_ref param(gb *b, const char *name, int rank, ir_dim d0, ir_dim d1) {
  char buf[96];
  if (b->blk >= 0) snprintf(buf, sizeof buf, "h.%d.%s", b->layer, name);
  else snprintf(buf, sizeof buf, "%s", name);
  return tens(b, buf, IR_T_PARAM, IR_F32, rank, d0, d1);
}

/* op: kind with inputs, one output of the given shape */
static ir_ref op(gb *b, ir_opkind k, int nin, const ir_ref *in, int rank, ir_dim d0, ir_dim d1, ir_dim d2) {
  ir_ref y = tens(b, NULL, IR_T_ACT, IR_F32, rank, d0, d1, d2);
  ir_op o = ir_op_init(k);
  o.nin = (uint8_t)nin, o.nout = 1, o.out[0] = y;
  for (int i = 0; i < nin; i++) o.in[i] = in[i];
  if (b->blk >= 0) o.block = b->blk, o.layer = b->layer, o.lidx = b->lidx++;
  ir_op_add(b->g, &o);
  return y;
}

static ir_ref op2(gb *b, ir_opkind k, ir_ref x, ir_ref y, ir_dim last) {
  ir_ref in[2] = {x, y};
  return op(b, k, 2, in, 3, dB(), dS(), last);
}

static ir_ref op1(gb *b, ir_opkind k, ir_ref x, ir_dim last) {
  return op(b, k, 1, &x, 3, dB(), dS(), last);
}

static ir_ref ln(gb *b, ir_ref x, const char *nm, ir_dim H) {
  char w[64], bb[64];
  snprintf(w, sizeof w, "%s.weight", nm), snprintf(bb, sizeof bb, "%s.bias", nm);
  ir_ref in[3] = {x, param(b, w, 1, H, H), param(b, bb, 1, H, H)};
  return op(b, IR_OP_LAYER_NORM, 3, in, 3, dB(), dS(), H);
}

static ir_ref linear(gb *b, ir_ref x, const char *nm, ir_dim in, ir_dim out) {
  char w[64], bb[64];
  snprintf(w, sizeof w, "%s.weight", nm), snprintf(bb, sizeof bb, "%s.bias", nm);
  ir_ref y = op2(b, IR_OP_MATMUL, x, param(b, w, 2, in, out), out);
  return op2(b, IR_OP_ADD, y, param(b, bb, 1, out, out), out);
}

static void layer(gb *b, ir_ref *x, int64_t hidden, int64_t heads) {
  ir_dim H = ir_const(hidden), H3 = ir_const(3 * hidden), F = ir_const(4 * hidden);
  ir_ref a = ln(b, *x, "ln_1", H);
  ir_ref qkv = linear(b, a, "attn.c_attn", H, H3);
  ir_ref y = op1(b, IR_OP_ATTENTION, qkv, H);
  b->g->op[b->g->nop - 1].at.heads = heads;
  b->g->op[b->g->nop - 1].at.causal = true;
  ir_ref p = op1(b, IR_OP_DROPOUT, linear(b, y, "attn.c_proj", H, H), H);
  *x = op2(b, IR_OP_ADD, *x, p, H);
  ir_ref m = ln(b, *x, "ln_2", H);
  ir_ref f = op1(b, IR_OP_GELU, linear(b, m, "mlp.c_fc", H, F), F);
  ir_ref d = op1(b, IR_OP_DROPOUT, linear(b, f, "mlp.c_proj", F, H), H);
  *x = op2(b, IR_OP_ADD, *x, d, H);
}

ir_graph *fx_gpt_graph(const char *name, int layers, int64_t hidden, int64_t heads,
                         int64_t vocab, int64_t maxpos) {
  ir_graph *g = ir_graph_new(name);
  gb b = {g, -1, -1, 0};
  ir_dim H = ir_const(hidden), V = ir_const(vocab), P = ir_const(maxpos);
  ir_ref ids = tens(&b, "ids", IR_T_INPUT, IR_I32, 2, dB(), dS());
  ir_ref labels = tens(&b, "labels", IR_T_INPUT, IR_I32, 2, dB(), dS());
  ir_ref wte = param(&b, "wte.weight", 2, V, H), wpe = param(&b, "wpe.weight", 2, P, H);
  ir_ref e1 = op2(&b, IR_OP_EMBEDDING, ids, wte, H);
  ir_ref pos = op(&b, IR_OP_POSITIONS, 0, NULL, 1, dS(), dS(), dS());
  g->t[pos].dtype = IR_I32;
  ir_ref pin[2] = {pos, wpe};
  ir_ref e2 = op(&b, IR_OP_EMBEDDING, 2, pin, 2, dS(), H, H);
  ir_ref x = op2(&b, IR_OP_ADD, e1, e2, H);
  b.blk = ir_block_add(g, "h", layers);
  for (int l = 0; l < layers; l++) {
    b.layer = l, b.lidx = 0;
    layer(&b, &x, hidden, heads);
  }
  b.blk = -1;
  ir_ref xf = ln(&b, x, "ln_f", H);
  ir_ref logits = op2(&b, IR_OP_MATMUL, xf, wte, V);
  g->op[g->nop - 1].at.trans_b = true;
  ir_ref lin[2] = {logits, labels};
  g->loss = op(&b, IR_OP_CROSS_ENTROPY, 2, lin, 0, H, H, H);
  return g;
}

static void a100(ir_devtype *d) {
  d->name = "a100";
  d->peak_flops[IR_BF16] = d->peak_flops[IR_F16] = 312e12;
  d->peak_flops[IR_F32] = 19.5e12;
  d->mem_bytes = 80.0 * (1 << 30);
  d->mem_bw = 2039e9;
}

static void dgx(ir_nodetype *n, int devtype) {
  n->name = "dgx", n->devtype = devtype, n->ndev = 8;
  n->link_name = "nvswitch", n->link_bw = 300e9, n->link_lat = 3e-6;
  n->nic_name = "ib", n->nics = 8, n->nic_bw = 25e9, n->nic_lat = 5e-6;
}

ir_cluster *fx_cluster_dgx(arena *a, int nodes) {
  ir_cluster *c = ARENA_NEW(a, ir_cluster);
  c->name = "dgx-a100";
  c->dev = ARENA_NEW(a, ir_devtype), c->ndev = 1;
  a100(&c->dev[0]);
  c->node = ARENA_NEW(a, ir_nodetype), c->nnode = 1;
  dgx(&c->node[0], 0);
  c->node_count = ARENA_NEW(a, int);
  c->node_count[0] = nodes;
  return c;
}

ir_cluster *fx_cluster_mixed(arena *a, int na, int nv) {
  ir_cluster *c = ARENA_NEW(a, ir_cluster);
  c->name = "mixed";
  c->dev = ARENA_ARRAY(a, ir_devtype, 2), c->ndev = 2;
  a100(&c->dev[0]);
  ir_devtype *v = &c->dev[1];
  v->name = "v100", v->peak_flops[IR_F16] = 125e12, v->peak_flops[IR_F32] = 15.7e12;
  v->mem_bytes = 32.0 * (1 << 30), v->mem_bw = 900e9;
  c->node = ARENA_ARRAY(a, ir_nodetype, 2), c->nnode = 2;
  dgx(&c->node[0], 0);
  ir_nodetype *n = &c->node[1];
  n->name = "v100x8", n->devtype = 1, n->ndev = 8;
  n->link_name = "nvlink", n->link_bw = 150e9, n->link_lat = 3e-6;
  n->nic_name = "eth", n->nics = 1, n->nic_bw = 12.5e9, n->nic_lat = 10e-6;
  c->node_count = ARENA_ARRAY(a, int, 2);
  c->node_count[0] = na, c->node_count[1] = nv;
  return c;
}
