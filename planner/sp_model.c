/* sp_model.c — what sequence parallelism needs to know about the model and
 * the cluster.
 *
 * The model is reduced to a handful of dims (layers, hidden, heads, vocab,
 * parameters per layer), read off an ir_graph: heads from the attention op,
 * layers from the block that holds it, hidden and vocab from the embedding
 * table, per-layer parameters from layer 0's params (each weight is used once
 * per token by a GEMM, so 2 * layer_params is the GEMM FLOPs per token). The
 * cluster is flattened into node types with per-device numbers (achievable
 * FLOP/s, the NIC share of one device, the token budget). */
#include "planner/sp.h"
#include <string.h>

#define SP_MFU 0.5 /* achieved fraction of peak FLOP/s (docs/sp.md) */

sp_model sp_model_gpt(const char *name, int layers, int64_t hidden, int64_t heads,
                      int64_t ffn, int64_t vocab) {
  sp_model m;
  memset(&m, 0, sizeof m);
  m.name = name;
  m.layers = layers;
  m.hidden = hidden;
  m.heads = m.kv_heads = heads;
  m.ffn = ffn;
  m.vocab = vocab;
  m.layer_params = 4.0 * hidden * hidden + 2.0 * hidden * ffn;
  m.params = layers * m.layer_params + (double)vocab * hidden;
  return m;
}

/* const_numel: element count of a tensor whose shape has no B or S, else -1. */
static double const_numel(const ir_tensor *t) {
  double n = 1;
  for (int i = 0; i < t->rank; i++) {
    if (t->shape[i].b || t->shape[i].s) return -1;
    n *= (double)t->shape[i].c;
  }
  return n;
}

static const ir_op *find_op(const ir_graph *g, int kind, bool in_block) {
  for (int i = 0; i < g->nop; i++)
    if (g->op[i].kind == kind && !g->op[i].backward && (!in_block || g->op[i].block >= 0))
      return &g->op[i];
  return NULL;
}

bool sp_model_from_graph(const ir_graph *g, sp_model *m, const char **why) {
  memset(m, 0, sizeof *m);
  m->name = g->name;
  const ir_op *at = find_op(g, IR_OP_ATTENTION, true);
  if (!at || at->block >= g->nblk) {
    *why = "the model has no attention op inside a block";
    return false;
  }
  const ir_op *em = find_op(g, IR_OP_EMBEDDING, false);
  const ir_tensor *tab = em && em->nin >= 2 ? &g->t[em->in[1]] : NULL;
  if (!tab || tab->rank != 2 || const_numel(tab) <= 0) {
    *why = "the model has no embedding table [V, H]";
    return false;
  }
  m->vocab = tab->shape[0].c;
  m->hidden = tab->shape[1].c;
  m->heads = at->at.heads > 0 ? at->at.heads : 1;
  m->kv_heads = at->at.kv_heads > 0 ? at->at.kv_heads : m->heads;
  m->layers = g->blk[at->block].count;
  for (int i = 0; i < g->nt; i++) {
    const ir_tensor *t = &g->t[i];
    if (t->kind != IR_T_PARAM) continue;
    double n = const_numel(t);
    if (n < 0) continue;
    m->params += n;
    if (t->block == at->block && t->layer == 0) m->layer_params += n;
  }
  double h = (double)m->hidden;
  m->ffn = m->layer_params > 4 * h * h ? (int64_t)((m->layer_params - 4 * h * h) / (2 * h)) : 0;
  if (m->layers <= 0 || m->layer_params <= 0) {
    *why = "the attention block has no layers or no parameters";
    return false;
  }
  return true;
}

/* peak: FLOP/s of a device type at dt, falling back bf16 -> f16 -> f32. */
static double peak(const ir_devtype *d, ir_dtype dt) {
  if (d->peak_flops[dt] > 0) return d->peak_flops[dt];
  if (dt == IR_BF16 && d->peak_flops[IR_F16] > 0) return d->peak_flops[IR_F16];
  return d->peak_flops[IR_F32];
}

bool sp_hw_init(sp_hw *hw, const ir_cluster *c, const sp_model *m, ir_dtype dt, const plan_calib *cal,
                arena *a, const char **why) {
  memset(hw, 0, sizeof *hw);
  hw->group_fixed = cal ? cal->group_fixed_s : -1;
  if (cal) memcpy(hw->a2a, cal->a2a, sizeof hw->a2a), memcpy(hw->p2p, cal->p2p, sizeof hw->p2p);
  for (int i = 0; i < c->nnode; i++) {
    const ir_nodetype *nt = &c->node[i];
    if (c->node_count[i] <= 0 || nt->ndev <= 0) continue;
    if (hw->nt == SP_MAXNT) {
      *why = "sbpc sp handles at most 4 node types";
      return false;
    }
    const ir_devtype *d = &c->dev[nt->devtype];
    sp_ntype *t = &hw->t[hw->nt];
    t->name = nt->name;
    t->ndev = nt->ndev;
    t->count = c->node_count[i];
    t->flops = peak(d, dt) * SP_MFU;
    t->mem = d->mem_bytes;
    t->link_bw = nt->link_bw > 0 ? nt->link_bw : 1e9;
    t->link_lat = nt->link_lat > 0 ? nt->link_lat : 3e-6;
    double nic = nt->nics > 0 && nt->nic_bw > 0 ? nt->nics * nt->nic_bw / nt->ndev : 1e9;
    t->nic_bw = nic < t->link_bw ? nic : t->link_bw;
    t->nic_lat = nt->nic_lat > 0 ? nt->nic_lat : 5e-6;
    if (t->flops <= 0) {
      *why = arena_printf(a, "device type '%s' has no FLOP rate", d->name);
      return false;
    }
    hw->first[hw->nt] = hw->ndev;
    hw->ndev += t->ndev * t->count;
    hw->nt++;
  }
  if (hw->ndev == 0) {
    *why = "the cluster has no devices";
    return false;
  }
  for (int i = 0; i < hw->nt; i++) {
    hw->t[i].budget = sp_token_budget(m, hw->t[i].mem, hw->ndev);
    if (hw->t[i].budget < 1) {
      *why = arena_printf(a, "model state does not fit on %s devices (%.1f GiB)", hw->t[i].name,
                          hw->t[i].mem / (1 << 30));
      return false;
    }
  }
  return true;
}
