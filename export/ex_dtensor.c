/* ex_dtensor.c — a plan as a PyTorch DTensor parallelize_plan (Python).
 *
 * From each op's SBP on the tensor-parallel mesh axis: a matmul whose weight
 * is S(1) (sbpc weights are [in, out]) is ColwiseParallel, one whose weight is
 * S(0) RowwiseParallel; a non-matmul op whose output is S(1) (the sequence
 * axis) is SequenceParallel; an embedding whose table is S(0) is
 * RowwiseParallel(input_layouts=Replicate()). Colwise inputs that arrive as
 * S(1) get input_layouts=Shard(1); a rowwise op whose boxing turns P into S(1)
 * (reduce-scatter) gets output_layouts=Shard(1). Ops of a block become one
 * per-block plan applied to every layer of that block. Every tensor's full
 * nd-SBP is also written as DTensor placements (Shard(d), Replicate(),
 * Partial()) over the whole mesh. Pipeline stages are listed for
 * torch.distributed.pipelining. */
#include "export/export.h"
#include <string.h>

/* jstr_py: a Python string literal. */
static void jstr_py(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s >= 0x20) fputc(*s, f);
  }
  fputc('"', f);
}

/* placement: one SBP as a DTensor placement expression. */
static void placement(FILE *f, const char *sbp) {
  int d;
  if (sscanf(sbp, "S(%d)", &d) == 1) fprintf(f, "Shard(%d)", d);
  else if (!strcmp(sbp, "B")) fputs("Replicate()", f);
  else if (!strcmp(sbp, "P(max)")) fputs("Partial(\"max\")", f);
  else if (!strncmp(sbp, "P", 1)) fputs("Partial()", f);
  else fprintf(f, "Replicate()  # unknown SBP '%s'", sbp);
}

static int is(const sbpc_plan_op *op, const char *kind) { return op->kind && !strcmp(op->kind, kind); }

static const char *in_sbp(const sbpc_plan_op *op, int i) { return i < op->nin ? op->in_sbp[i] : "B"; }
static const char *out_sbp(const sbpc_plan_op *op) { return op->nout ? op->out_sbp[0] : "B"; }

/* module: the PyTorch module name of op inside its block, from its weight
 * input's name ("h.attn.c_attn.weight" or "h.0.attn.c_attn.weight" in block
 * "h" -> "attn.c_attn"), else from the op's own name. */
static const char *module(const sbpc_plan_op *op, int w, char *buf, size_t n) {
  const char *s = w >= 0 && w < op->nin && op->in_names[w] ? op->in_names[w] : op->name;
  size_t bl = op->block ? strlen(op->block) : 0;
  if (bl && !strncmp(s, op->block, bl) && s[bl] == '.') {
    s += bl + 1;
    const char *q = s;
    while (*q >= '0' && *q <= '9') q++;
    if (q > s && *q == '.') s = q + 1;
  }
  ex_clean(s, buf, n);
  size_t l = strlen(buf);
  if (l > 7 && !strcmp(buf + l - 7, ".weight")) buf[l - 7] = 0;
  return buf;
}

static int boxed(const sbpc_plan *p, const sbpc_plan_op *op, const char *from, const char *to, const char *coll) {
  for (int i = 0; i < p->nboxing; i++) {
    const sbpc_plan_boxing *b = &p->boxing[i];
    if (!strcmp(b->op, op->name) && strstr(b->from, from) && strstr(b->to, to) && strstr(b->collective, coll))
      return 1;
  }
  return 0;
}

/* consumed_as_seq: some boxing turns this op's P output into S(1) (a
 * reduce-scatter onto the sequence axis, read by the next op). With
 * Megatron-style SP every partial output is reduce-scattered that way, which
 * the caller also assumes when the plan's tensor names do not link up. */
static int consumed_as_seq(const sbpc_plan *p, const sbpc_plan_op *op) {
  for (int i = 0; i < p->nboxing; i++) {
    const sbpc_plan_boxing *b = &p->boxing[i];
    if (b->tensor && !strcmp(b->tensor, op->name) && strstr(b->from, "P(") && strstr(b->to, "S(1)")) return 1;
  }
  return 0;
}

/* style: the ParallelStyle for op (weight = input 1 of matmul/embedding):
 * weight sharded and output partial -> Rowwise; weight sharded and output
 * split -> Colwise; a norm with output S(1) -> SequenceParallel. NULL when
 * the op stays replicated. */
static const char *style(const sbpc_plan *p, const sbpc_plan_op *op) {
  if (is(op, "layer_norm") || is(op, "rms_norm")) return !strcmp(out_sbp(op), "S(1)") ? "SequenceParallel()" : NULL;
  if (!is(op, "matmul") && !is(op, "embedding")) return NULL;
  const char *w = in_sbp(op, 1), *o = out_sbp(op);
  if (w[0] != 'S') return NULL;
  int seq_out = consumed_as_seq(p, op) || ex_megatron_sp(p);
  if (o[0] == 'P') {
    if (is(op, "embedding"))
      return seq_out ? "RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1))"
                     : "RowwiseParallel(input_layouts=Replicate())";
    return seq_out ? "RowwiseParallel(output_layouts=Shard(1))" : "RowwiseParallel()";
  }
  int seq_in = !strcmp(in_sbp(op, 0), "S(1)") || boxed(p, op, "S(1)", "B", "all");
  return seq_in ? "ColwiseParallel(input_layouts=Shard(1))" : "ColwiseParallel()";
}

/* used_before: an earlier op of the same block maps to module `name`. */
static int used_before(const sbpc_plan *p, const char *block, int i, const char *name) {
  for (int k = 0; k < i; k++) {
    const sbpc_plan_op *op = &p->ops[k];
    if ((block == NULL) != (op->block == NULL) || (block && strcmp(block, op->block)) || !style(p, op)) continue;
    char other[256];
    if (!strcmp(module(op, 1, other, sizeof other), name)) return 1;
  }
  return 0;
}

static void block_plan(const sbpc_plan *p, const char *block, FILE *f) {
  char id[128], on[256];
  fprintf(f, "%s_plan = {\n", block ? ex_ident(block, id, sizeof id) : "model");
  for (int i = 0; i < p->nops; i++) {
    const sbpc_plan_op *op = &p->ops[i];
    if ((block == NULL) != (op->block == NULL) || (block && strcmp(block, op->block))) continue;
    const char *st = style(p, op);
    char name[256];
    if (!st) continue;
    module(op, 1, name, sizeof name);
    if (used_before(p, block, i, name)) { /* a tied weight: key by the op's own name */
      fprintf(f, "    # \"%s\" reuses %s's weight (tied); rename to your module\n", ex_clean(op->name, on, sizeof on),
              name);
      ex_clean(op->name, name, sizeof name);
    }
    fprintf(f, "    \"%s\": %s,\n", name, st);
  }
  fputs("}\n\n", f);
}

static void tuple(FILE *f, int n, const char *const *v) {
  fputc('(', f);
  for (int k = 0; k < n; k++) {
    if (k) fputs(", ", f);
    placement(f, v[k]);
  }
  fputs(n == 1 ? ",)" : ")", f);
}

static void placements(const sbpc_plan *p, FILE *f) {
  fputs("# Each op's SBP on the \"tp\" mesh dim as DTensor placements: inputs, outputs\n"
        "# (sbpc's logical dims: matmul weights are [in, out], so Shard(1) of a weight\n"
        "# here is Shard(0) of nn.Linear.weight).\n",
        f);
  fputs("tp_placements = {\n", f);
  for (int i = 0; i < p->nops; i++) {
    const sbpc_plan_op *op = &p->ops[i];
    fputs("    ", f);
    jstr_py(f, op->name);
    fputs(": (", f);
    tuple(f, op->nin, op->in_sbp);
    fputs(", ", f);
    tuple(f, op->nout, op->out_sbp);
    fputs("),\n", f);
  }
  fputs("}\n\n", f);
}

static void header(const sbpc_plan *p, ex_ctx *c) {
  FILE *f = c->out;
  char m[128], pf[256];
  fprintf(f, "# DTensor tensor-parallel plan for '%s' (%s), written by sbpc export dtensor.\n",
          ex_clean(p->model_name, m, sizeof m), ex_clean(c->plan, pf, sizeof pf));
  fprintf(f, "# layout: dp=%d tp=%d pp=%d sp=%d micro_batch=%d recompute=%s zero=%d\n", p->dp, p->tp, p->pp, p->sp,
          p->micro_batch, p->recompute, p->zero);
}

/* mesh: the plan's mesh without the pp axis (each stage has its own). */
static void mesh(const sbpc_plan *p, FILE *f) {
  int n = 0;
  fputs("MESH_SHAPE = (", f);
  for (int a = 0; a < p->naxes; a++)
    if (strcmp(p->axes[a], "pp")) fprintf(f, "%s%d", n++ ? ", " : "", p->shape[a]);
  fputs(n == 1 ? ",)\nMESH_DIM_NAMES = (" : ")\nMESH_DIM_NAMES = (", f);
  n = 0;
  for (int a = 0; a < p->naxes; a++)
    if (strcmp(p->axes[a], "pp")) {
      char ax[64];
      fprintf(f, "%s\"%s\"", n++ ? ", " : "", ex_clean(p->axes[a], ax, sizeof ax));
    }
  fputs(n == 1 ? ",)\n" : ")\n", f);
  fputs("# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)\n"
        "# for torch.distributed.pipelining; each stage runs on its own MESH_SHAPE sub-mesh.\nSTAGES = [", f);
  for (int s = 0; s < p->nstages; s++) {
    const sbpc_plan_stage *st = &p->stages[s];
    fputs(s ? ", " : "", f);
    if (st->nchunks > 1) fputc('[', f);
    for (int k = 0; k < st->nchunks; k++) fprintf(f, "%s(%d, %d)", k ? ", " : "", st->chunks[k][0], st->chunks[k][1]);
    if (st->nchunks > 1) fputc(']', f);
  }
  fputs("]\n\n", f);
}

/* blocks: the distinct block names in op order (at most 64). */
static int blocks(const sbpc_plan *p, const char **names) {
  int n = 0;
  for (int i = 0; i < p->nops && n < 64; i++) {
    const char *b = p->ops[i].block;
    int seen = !b;
    for (int k = 0; k < n && !seen; k++) seen = !strcmp(names[k], b);
    if (!seen) names[n++] = b;
  }
  return n;
}

static void parallelize_fn(int nb, const char **names, FILE *f) {
  fputs("def parallelize(model, device_type=\"cuda\"):\n"
        "    \"\"\"Apply the plan's tensor parallelism; returns the device mesh.\"\"\"\n"
        "    mesh = init_device_mesh(device_type, MESH_SHAPE, mesh_dim_names=MESH_DIM_NAMES)\n"
        "    tp_mesh = mesh[\"tp\"] if \"tp\" in MESH_DIM_NAMES else None\n"
        "    if tp_mesh is not None and tp_mesh.size() > 1:\n",
        f);
  for (int b = 0; b < nb; b++) {
    char q[128], id[128];
    fprintf(f, "        for layer in getattr(model, \"%s\"):\n            parallelize_module(layer, tp_mesh, %s_plan)\n",
            ex_clean(names[b], q, sizeof q), ex_ident(names[b], id, sizeof id));
  }
  fputs("        parallelize_module(model, tp_mesh, model_plan)\n    return mesh\n", f);
}

int ex_dtensor(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  header(p, c);
  ex_common_warnings(p, c);
  if (p->pp > 1) ex_warn(c, "DTensor's parallelize_plan covers tensor parallelism only; the %d pipeline stages "
                            "are listed in STAGES for torch.distributed.pipelining", p->pp);
  FILE *f = c->out;
  fputs("from torch.distributed.device_mesh import init_device_mesh\n"
        "from torch.distributed.tensor import Partial, Replicate, Shard\n"
        "from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,\n"
        "                                               SequenceParallel, parallelize_module)\n\n",
        f);
  mesh(p, f);
  placements(p, f);
  const char *names[64];
  int nb = blocks(p, names);
  for (int b = 0; b < nb; b++) block_plan(p, names[b], f);
  block_plan(p, NULL, f);
  fputs("parallelize_plan = model_plan\n\n", f);
  parallelize_fn(nb, names, f);
  return 0;
}
