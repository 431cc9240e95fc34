/* ex_dtensor.c — a plan as PyTorch DTensor code for a Hugging Face model.
 *
 * Writes a Python module (EX_DTENSOR_VERSION) with world_mesh(), building the
 * plan's whole device mesh over every rank in the plan's axis order (pp,
 * dp_replicate, dp_shard, cp, tp as torchtitan names them; dp is split into
 * replicate x shard by the ZeRO stage), and parallelize(model, world_mesh),
 * which applies the plan to the Hugging Face module tree: tensor parallelism
 * per layer and on the embeddings and head on world_mesh["tp"], then FSDP2
 * (fully_shard, HSDP over dp_replicate x dp_shard) for data parallelism, and
 * loss_context() (loss_parallel when the logits stay vocab-sharded). Module
 * paths are those of GPT2LMHeadModel (transformer.h, transformer.wte, lm_head)
 * or LlamaForCausalLM (model.layers, model.embed_tokens, lm_head), found from
 * the plan's parameter names, else the plan's own names with a warning.
 * GPT-2's Conv1D layers are converted to nn.Linear first (DTensor's styles
 * take Linear and Embedding only), with the fused QKV rows reordered so that
 * tensor-parallel shard r holds [q_r; k_r; v_r] of its own heads, and the
 * attention's split size and head count made local. Styles come from each
 * op's SBP on the tp axis: a matmul or embedding whose weight is split is
 * RowwiseParallel when its output is partial, ColwiseParallel when split; a
 * norm whose output is S(1) is SequenceParallel, and then the attention and
 * MLP get PrepareModuleInput (Shard(1) -> Replicate) and rowwise outputs are
 * Shard(1) DTensors. Each op's full SBP is also listed as placements. Every
 * string from the plan reaches the file through py_str (an escaped Python
 * literal) or ex_clean (comments); unknown SBP strings are refused. Per-op
 * facts are computed once with sorted name tables, so the export is
 * O(n log n) in the plan's ops and boxings. */
#include "export/export.h"
#include <stdlib.h>
#include <string.h>

typedef enum { FAM_OWN, FAM_GPT2, FAM_LLAMA } family;

typedef struct {
  const sbpc_plan *p;
  ex_ctx *c;
  family fam;
  int sp;                         /* Megatron-style sequence parallelism */
  int canonical;                  /* styles by module role (the plan's tp keeps weights whole) */
  const char **seq_out;           /* tensors reduce-scattered P -> S(1), sorted */
  int nseq;
  const char **gathered;          /* ops whose input is all-gathered S(1) -> B, sorted */
  int ngath;
  const char **tables;            /* embedding tables, sorted (a matmul reading one is a tied head) */
  int ntab;
  const char **style;             /* per op: its ParallelStyle, or NULL */
  char (*path)[256];              /* per op: module path (in its layer, or from the root) */
} dt;

/* py_str: s as a Python string literal (quotes, backslashes and every byte
 * outside printable ASCII escaped), so no plan string can leave the literal. */
static void py_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) fprintf(f, "\\x%02x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int has(const char **set, int n, const char *s) {
  return s && n && bsearch(&s, set, (size_t)n, sizeof *set, cmp_str) != NULL;
}

static int is(const sbpc_plan_op *op, const char *kind) { return op->kind && !strcmp(op->kind, kind); }
static const char *in_sbp(const sbpc_plan_op *op, int i) { return i < op->nin ? op->in_sbp[i] : "B"; }
static const char *out_sbp(const sbpc_plan_op *op) { return op->nout ? op->out_sbp[0] : "B"; }
static const char *weight(const sbpc_plan_op *op) { return op->nin > 1 && op->in_names[1] ? op->in_names[1] : NULL; }

/* known_sbp: S(d), B, P(sum), P(max). */
static int known_sbp(const char *s) {
  int d, n = 0;
  if (sscanf(s, "S(%d)%n", &d, &n) == 1 && !s[n] && d >= 0 && d < 8) return 1;
  return !strcmp(s, "B") || !strcmp(s, "P(sum)") || !strcmp(s, "P(max)") || !strcmp(s, "P");
}

/* index_boxing: the sorted tables behind seq_out, gathered and tables. */
static int index_boxing(dt *d) {
  const sbpc_plan *p = d->p;
  d->seq_out = calloc((size_t)p->nboxing + 1, sizeof *d->seq_out);
  d->gathered = calloc((size_t)p->nboxing + 1, sizeof *d->gathered);
  d->tables = calloc((size_t)p->nops + 1, sizeof *d->tables);
  if (!d->seq_out || !d->gathered || !d->tables) return 1;
  for (int i = 0; i < p->nops; i++)
    if (is(&p->ops[i], "embedding") && weight(&p->ops[i])) d->tables[d->ntab++] = weight(&p->ops[i]);
  qsort(d->tables, (size_t)d->ntab, sizeof *d->tables, cmp_str);
  for (int i = 0; i < p->nboxing; i++) {
    const sbpc_plan_boxing *b = &p->boxing[i];
    if (b->tensor && strstr(b->from, "P(") && strstr(b->to, "S(1)")) d->seq_out[d->nseq++] = b->tensor;
    if (strstr(b->from, "S(1)") && strstr(b->to, "B") && strstr(b->collective, "all")) d->gathered[d->ngath++] = b->op;
  }
  qsort(d->seq_out, (size_t)d->nseq, sizeof *d->seq_out, cmp_str);
  qsort(d->gathered, (size_t)d->ngath, sizeof *d->gathered, cmp_str);
  return 0;
}

/* family: GPT2LMHeadModel when the blocks are "h" with attn.c_attn weights,
 * LlamaForCausalLM when the parameters live under "model.layers". */
static family find_family(const sbpc_plan *p) {
  for (int i = 0; i < p->nops; i++) {
    const sbpc_plan_op *op = &p->ops[i];
    const char *w = weight(op);
    if (op->block && !strcmp(op->block, "h") && w && strstr(w, "attn.c_attn")) return FAM_GPT2;
    if (op->block && !strcmp(op->block, "model.layers")) return FAM_LLAMA;
  }
  return FAM_OWN;
}

/* rel_path: the op's module inside its layer from its weight's name
 * ("h.0.attn.c_attn.weight" or "h.attn.c_attn.weight" in block "h" ->
 * "attn.c_attn"), or from the root for ops outside blocks. */
static void rel_path(const sbpc_plan_op *op, char *buf, size_t n) {
  const char *s = weight(op) ? weight(op) : op->name;
  size_t bl = op->block ? strlen(op->block) : 0;
  if (bl && !strncmp(s, op->block, bl) && s[bl] == '.') {
    s += bl + 1;
    const char *q = s;
    while (*q >= '0' && *q <= '9') q++;
    if (q > s && *q == '.') s = q + 1;
  }
  snprintf(buf, n, "%s", s);
  size_t l = strlen(buf);
  if (l > 7 && !strcmp(buf + l - 7, ".weight")) buf[l - 7] = 0;
}

/* embedding_table: name is the table of some embedding op (a tied head). */
static int embedding_table(const dt *d, const char *name) { return has(d->tables, d->ntab, name); }

/* hf_path: rel_path placed in the family's module tree. */
static void hf_path(const dt *d, const sbpc_plan_op *op, int tied_head, char *buf, size_t n) {
  char rel[256];
  rel_path(op, rel, sizeof rel);
  if (op->block || d->fam != FAM_GPT2) snprintf(buf, n, "%s", tied_head && d->fam != FAM_OWN ? "lm_head" : rel);
  else snprintf(buf, n, tied_head ? "lm_head" : "transformer.%s", rel);
}

/* weight_style: matmul/embedding with a split weight: rowwise when the
 * output is partial, colwise when split; SP decides the layouts. */
static const char *weight_style(const dt *d, const sbpc_plan_op *op) {
  const char *o = out_sbp(op);
  int seq = d->sp || has(d->seq_out, d->nseq, op->name);
  if (is(op, "embedding"))
    return o[0] == 'P' ? (seq ? "RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1), use_local_output=False)"
                              : "RowwiseParallel(input_layouts=Replicate())")
                       : (seq ? "ColwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1), use_local_output=False)"
                              : "ColwiseParallel(input_layouts=Replicate(), output_layouts=Replicate())");
  if (o[0] == 'P' && !op->block && d->sp) /* the head reads the sequence-sharded final norm */
    return "RowwiseParallel(input_layouts=Shard(1), output_layouts=Shard(1), use_local_output=False)";
  if (o[0] == 'P') return seq ? "RowwiseParallel(output_layouts=Shard(1), use_local_output=False)" : "RowwiseParallel()";
  if (!op->block) /* the head: logits stay vocab-sharded for loss_parallel */
    return d->sp ? "ColwiseParallel(input_layouts=Shard(1), output_layouts=Shard(-1), use_local_output=False)"
                 : "ColwiseParallel(output_layouts=Shard(-1), use_local_output=False)";
  int seq_in = d->fam == FAM_OWN && (!strcmp(in_sbp(op, 0), "S(1)") || has(d->gathered, d->ngath, op->name));
  return seq_in ? "ColwiseParallel(input_layouts=Shard(1))" : "ColwiseParallel()";
}

/* ends: the module path ends with one of the names. */
static int ends(const char *path, const char *const *names) {
  const char *last = strrchr(path, '.');
  last = last ? last + 1 : path;
  for (int i = 0; names[i]; i++)
    if (!strcmp(last, names[i])) return 1;
  return 0;
}

/* canonical_style: Megatron-style tensor parallelism by module role, for a
 * known family whose plan keeps the weights whole on the tp axis (the other
 * exporters write the same degree as tensor parallelism). */
static const char *canonical_style(const dt *d, const sbpc_plan_op *op, const char *path) {
  static const char *const col[] = {"c_attn", "c_fc", "q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", NULL};
  static const char *const row[] = {"c_proj", "o_proj", "down_proj", NULL};
  static const char *const emb[] = {"wte", "embed_tokens", NULL};
  if (is(op, "embedding")) return ends(path, emb) ? "RowwiseParallel(input_layouts=Replicate())" : NULL;
  if (!is(op, "matmul")) return NULL;
  if (!op->block) return !strcmp(path, "lm_head") ? "ColwiseParallel(output_layouts=Shard(-1), use_local_output=False)" : NULL;
  (void)d;
  return ends(path, col) ? "ColwiseParallel()" : ends(path, row) ? "RowwiseParallel()" : NULL;
}

/* op_style: the ParallelStyle for one op, or NULL (replicated). */
static const char *op_style(const dt *d, const sbpc_plan_op *op, const char *path) {
  if (d->canonical) return canonical_style(d, op, path);
  if (is(op, "layer_norm") || is(op, "rms_norm")) return !strcmp(out_sbp(op), "S(1)") ? "SequenceParallel()" : NULL;
  if (!is(op, "matmul") && !is(op, "embedding")) return NULL;
  if (in_sbp(op, 1)[0] != 'S') return NULL;
  return weight_style(d, op);
}

typedef struct {
  const char *key;
  int idx;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* dedup: an op mapping to a module an earlier op of the same block already
 * styles (a tied weight) is keyed by its own name instead. Sorting the
 * (block, path) keys finds them in O(n log n). */
static int dedup(dt *d) {
  const sbpc_plan *p = d->p;
  keyed *k = calloc((size_t)p->nops + 1, sizeof *k);
  char (*keys)[300] = calloc((size_t)p->nops + 1, sizeof *keys);
  if (!k || !keys) return free(k), free(keys), 1;
  int n = 0;
  for (int i = 0; i < p->nops; i++) {
    if (!d->style[i]) continue;
    snprintf(keys[i], sizeof keys[i], "%s\x01%s", p->ops[i].block ? p->ops[i].block : "", d->path[i]);
    k[n++] = (keyed){keys[i], i};
  }
  qsort(k, (size_t)n, sizeof *k, cmp_keyed);
  for (int j = 1; j < n; j++)
    if (!strcmp(k[j].key, k[j - 1].key)) snprintf(d->path[k[j].idx], sizeof d->path[0], "%s", d->p->ops[k[j].idx].name);
  free(k);
  free(keys);
  return 0;
}

/* analyse: style and module path of every op, computed once. */
static int analyse(dt *d) {
  const sbpc_plan *p = d->p;
  d->style = calloc((size_t)p->nops + 1, sizeof *d->style);
  d->path = calloc((size_t)p->nops + 1, sizeof *d->path);
  if (!d->style || !d->path || index_boxing(d)) return 1;
  for (int i = 0; i < p->nops; i++) {
    const sbpc_plan_op *op = &p->ops[i];
    hf_path(d, op, !op->block && is(op, "matmul") && embedding_table(d, weight(op)), d->path[i], sizeof d->path[i]);
    d->style[i] = op_style(d, op, d->path[i]);
  }
  return dedup(d);
}

/* placement: one SBP as a DTensor placement (checked by known_sbp). */
static void placement(FILE *f, const char *sbp) {
  int d;
  if (sscanf(sbp, "S(%d)", &d) == 1) fprintf(f, "Shard(%d)", d);
  else if (!strcmp(sbp, "B")) fputs("Replicate()", f);
  else if (!strcmp(sbp, "P(max)")) fputs("Partial(\"max\")", f);
  else fputs("Partial()", f);
}

static void tuple(FILE *f, int n, const char *const *v) {
  fputc('(', f);
  for (int k = 0; k < n; k++) {
    if (k) fputs(", ", f);
    placement(f, v[k]);
  }
  fputs(n == 1 ? ",)" : ")", f);
}

/* check_sbp: refuse a plan with an SBP string DTensor has no placement for. */
static int check_sbp(const dt *d) {
  for (int i = 0; i < d->p->nops; i++) {
    const sbpc_plan_op *op = &d->p->ops[i];
    for (int k = 0; k < op->nin + op->nout; k++) {
      const char *s = k < op->nin ? op->in_sbp[k] : op->out_sbp[k - op->nin];
      char buf[64];
      if (!known_sbp(s))
        return ex_refuse(d->c, "op '%s' has an unknown SBP '%s' (S(d), B, P(sum) or P(max))",
                         ex_clean(op->name, buf, sizeof buf), ex_clean(s, buf + 32, 32));
    }
  }
  return 0;
}

static void placements(const dt *d, FILE *f) {
  fputs("# Each op's SBP on the \"tp\" mesh dim as DTensor placements: inputs, outputs\n"
        "# (sbpc's logical dims: for [in, out] weights Shard(1) is Shard(0) of nn.Linear.weight).\n"
        "TP_PLACEMENTS = {\n",
        f);
  for (int i = 0; i < d->p->nops; i++) {
    const sbpc_plan_op *op = &d->p->ops[i];
    fputs("    ", f);
    py_str(f, op->name);
    fputs(": (", f);
    tuple(f, op->nin, op->in_sbp);
    fputs(", ", f);
    tuple(f, op->nout, op->out_sbp);
    fputs("),\n", f);
  }
  fputs("}\n\n", f);
}

static void header(const dt *d) {
  const sbpc_plan *p = d->p;
  FILE *f = d->c->out;
  char m[128], pf[256];
  fprintf(f, "# DTensor plan for '%s' (%s), written by sbpc export dtensor.\n", ex_clean(p->model_name, m, sizeof m),
          ex_clean(d->c->plan, pf, sizeof pf));
  fprintf(f, "# target: %s.\n# layout: dp=%d tp=%d pp=%d sp=%d micro_batch=%d recompute=%s zero=%d\n", EX_DTENSOR_VERSION,
          p->dp, p->tp, p->pp, p->sp, p->micro_batch, p->recompute, p->zero);
  fputs("# Use: mesh = world_mesh(); parallelize(model, mesh); then train with\n"
        "#      with loss_context(): loss = model(input_ids=ids, labels=labels).loss; loss.backward()\n",
        f);
}

static void imports(FILE *f) {
  fputs("import contextlib\n\nimport torch\nfrom torch import nn\n"
        "from torch.distributed.device_mesh import init_device_mesh\n"
        "from torch.distributed.fsdp import fully_shard\n"
        "from torch.distributed.tensor import Partial, Replicate, Shard\n"
        "from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, PrepareModuleOutput,\n"
        "                                               RowwiseParallel, SequenceParallel, loss_parallel,\n"
        "                                               parallelize_module)\n\n",
        f);
}

/* mesh: the whole world mesh in the plan's axis order; dp becomes
 * dp_replicate x dp_shard (ZeRO-0: all replicate, else all shard). */
static int mesh(const dt *d, FILE *f) {
  const sbpc_plan *p = d->p;
  char names[512] = "", shape[256] = "";
  size_t nn = 0, ns = 0;
  for (int a = 0; a < p->naxes; a++) {
    const char *ax = p->axes[a];
    int v = p->shape[a];
    if (!strcmp(ax, "dp"))
      nn += (size_t)snprintf(names + nn, sizeof names - nn, "\"dp_replicate\", \"dp_shard\", "),
          ns += (size_t)snprintf(shape + ns, sizeof shape - ns, "%d, %d, ", p->zero ? 1 : v, p->zero ? v : 1);
    else if (!strcmp(ax, "pp") || !strcmp(ax, "sp") || !strcmp(ax, "tp"))
      nn += (size_t)snprintf(names + nn, sizeof names - nn, "\"%s\", ", !strcmp(ax, "sp") ? "cp" : ax),
          ns += (size_t)snprintf(shape + ns, sizeof shape - ns, "%d, ", v);
    else
      return ex_refuse(d->c, "mesh axis %d is not pp, dp, sp or tp", a);
    if (nn >= sizeof names - 32 || ns >= sizeof shape - 32) return ex_refuse(d->c, "the mesh has too many axes");
  }
  fprintf(f, "# The whole world mesh (every rank), outermost dim first, as the plan numbers ranks.\n"
             "MESH_DIM_NAMES = (%s)\nMESH_SHAPE = (%s)\n", names, shape);
  fputs("# Pipeline stages (first, last layer; a list of chunks per stage when interleaved)\n"
        "# for torch.distributed.pipelining: stage s runs on world_mesh[\"pp\"] index s.\nSTAGES = [", f);
  for (int s = 0; s < p->nstages; s++) {
    const sbpc_plan_stage *st = &p->stages[s];
    fputs(s ? ", " : "", f);
    if (st->nchunks > 1) fputc('[', f);
    for (int k = 0; k < st->nchunks; k++) fprintf(f, "%s(%d, %d)", k ? ", " : "", st->chunks[k][0], st->chunks[k][1]);
    if (st->nchunks > 1) fputc(']', f);
  }
  fputs("]\n", f);
  return 0;
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

static void entry(FILE *f, const char *indent, const char *path, const char *style) {
  fputs(indent, f);
  py_str(f, path);
  fprintf(f, ": %s,\n", style);
}

/* prepare_inputs: with SP, the attention and MLP take the sequence-sharded
 * input whole (the Hugging Face call forms: GPT-2 passes hidden_states by
 * position, LLaMA's attention by keyword). */
static void prepare_inputs(const dt *d, FILE *f) {
  if (!d->sp || d->fam == FAM_OWN) return;
  const char *pos = "PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),))";
  if (d->fam == FAM_GPT2) entry(f, "        ", "attn", pos);
  else
    entry(f, "        ", "self_attn", "PrepareModuleInput(input_kwarg_layouts={\"hidden_states\": Shard(1)}, "
                          "desired_input_kwarg_layouts={\"hidden_states\": Replicate()})");
  entry(f, "        ", "mlp", pos);
}

static void layer_plans(const dt *d, FILE *f, int nb, const char **names) {
  fputs("\n# Per layer of each repeated block: module path inside the layer -> ParallelStyle.\nLAYER_PLANS = {\n", f);
  for (int b = 0; b < nb; b++) {
    char path[300];
    snprintf(path, sizeof path, "%s%s", d->fam == FAM_GPT2 ? "transformer." : "", names[b]);
    fputs("    ", f);
    py_str(f, path);
    fputs(": {\n", f);
    prepare_inputs(d, f);
    for (int i = 0; i < d->p->nops; i++)
      if (d->style[i] && d->p->ops[i].block && !strcmp(d->p->ops[i].block, names[b])) {
        entry(f, "        ", d->path[i], d->style[i]);
      }
    fputs("    },\n", f);
  }
  fputs("}\n", f);
}

/* top_plan: the ops outside blocks (embeddings, final norm, head); with SP
 * an unsharded embedding's output is sequence-sharded to match the sharded
 * one it is added to, and an unsharded head gathers its input. Returns 1
 * when the logits stay vocab-sharded (loss_parallel). */
static int top_plan(const dt *d, FILE *f) {
  int lossp = 0;
  fputs("\n# The modules outside the repeated blocks, by path from the model's root.\nMODEL_PLAN = {\n", f);
  for (int i = 0; i < d->p->nops; i++) {
    const sbpc_plan_op *op = &d->p->ops[i];
    if (op->block) continue;
    if (d->style[i]) {
      entry(f, "    ", d->path[i], d->style[i]);
      lossp |= is(op, "matmul") && !strncmp(d->style[i], "Colwise", 7);
    } else if (d->sp && is(op, "embedding")) {
      entry(f, "    ", d->path[i], "PrepareModuleOutput(output_layouts=Replicate(), desired_output_layouts=Shard(1), "
                           "use_local_output=False)");
    } else if (d->sp && is(op, "matmul")) {
      entry(f, "    ", d->path[i], "PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),))");
    }
  }
  fputs("}\n", f);
  return lossp;
}

/* tied: the head and embedding paths to tie again after sharding (both
 * Shard(0) of the [V, H] table), or a warning when their layouts differ. */
static void tied(const dt *d, FILE *f) {
  const sbpc_plan *p = d->p;
  int e = -1, h = -1;
  for (int i = 0; i < p->nops && h < 0; i++)
    if (!p->ops[i].block && is(&p->ops[i], "matmul") && embedding_table(d, weight(&p->ops[i]))) h = i;
  for (int i = 0; h >= 0 && i < p->nops && e < 0; i++)
    if (is(&p->ops[i], "embedding") && weight(&p->ops[i]) && !strcmp(weight(&p->ops[i]), weight(&p->ops[h]))) e = i;
  /* the [V, H] table: Shard(0) under rowwise embedding / colwise head, Shard(1) under the other pair */
  int same = e >= 0 && d->style[e] && d->style[h] && !strncmp(d->style[e], "Row", 3) == !strncmp(d->style[h], "Col", 3);
  if (e >= 0 && (d->style[e] || d->style[h]) && !same)
    ex_warn(d->c, "the tied embedding and head have different tensor-parallel layouts; the tie is broken (two "
                  "parameters)");
  fputs("TIED = ", f);
  if (same) {
    fputc('(', f);
    py_str(f, d->path[h]);
    fputs(", ", f);
    py_str(f, d->path[e]);
    fputs(")\n", f);
  } else {
    fputs("None\n", f);
  }
}

static void gpt2_fns(FILE *f) {
  fputs("\n\ndef conv1d_to_linear(conv, tp=1, qkv=False):\n"
        "    \"\"\"A transformers Conv1D (y = x @ W + b, W [in, out]) as nn.Linear. qkv: reorder the fused\n"
        "    [q; k; v] output rows so that tensor-parallel shard r holds [q_r; k_r; v_r], its own heads.\"\"\"\n"
        "    w, b = conv.weight.detach().t(), conv.bias.detach()\n"
        "    if qkv and tp > 1:\n"
        "        h = w.shape[0] // 3\n"
        "        idx = torch.arange(3 * h, device=w.device).view(3, tp, h // tp).transpose(0, 1).reshape(-1)\n"
        "        w, b = w[idx], b[idx]\n"
        "    lin = nn.Linear(w.shape[1], w.shape[0], device=w.device, dtype=w.dtype)\n"
        "    with torch.no_grad():\n"
        "        lin.weight.copy_(w)\n"
        "        lin.bias.copy_(b)\n"
        "    return lin\n\n\n"
        "def prepare(model, tp):\n"
        "    \"\"\"GPT-2: Conv1D -> nn.Linear (DTensor's styles take Linear), local attention sizes.\"\"\"\n"
        "    for layers in LAYER_PLANS:\n"
        "        for block in model.get_submodule(layers):\n"
        "            a, m = block.attn, block.mlp\n"
        "            a.c_attn = conv1d_to_linear(a.c_attn, tp, qkv=True)\n"
        "            a.c_proj = conv1d_to_linear(a.c_proj)\n"
        "            m.c_fc, m.c_proj = conv1d_to_linear(m.c_fc), conv1d_to_linear(m.c_proj)\n"
        "            a.split_size //= tp\n"
        "            a.num_heads //= tp\n"
        "            a.embed_dim //= tp\n",
        f);
}

static void llama_fns(FILE *f) {
  fputs("\n\ndef prepare(model, tp):\n"
        "    \"\"\"LLaMA: local head counts on the attention modules (recent transformers infer them).\"\"\"\n"
        "    for layers in LAYER_PLANS:\n"
        "        for block in model.get_submodule(layers):\n"
        "            for k in (\"num_heads\", \"num_key_value_heads\", \"hidden_size\"):\n"
        "                if hasattr(block.self_attn, k):\n"
        "                    setattr(block.self_attn, k, getattr(block.self_attn, k) // tp)\n",
        f);
}

static void own_fns(FILE *f) {
  fputs("\n\ndef prepare(model, tp):\n"
        "    \"\"\"The plan's own module names: nothing to convert (they must be nn.Linear / nn.Embedding).\"\"\"\n",
        f);
}

static void main_fns(FILE *f) {
  fputs("\n\ndef world_mesh(device_type=\"cuda\"):\n"
        "    \"\"\"The plan's whole device mesh over every rank.\"\"\"\n"
        "    return init_device_mesh(device_type, MESH_SHAPE, mesh_dim_names=MESH_DIM_NAMES)\n\n\n"
        "def parallelize(model, world_mesh):\n"
        "    \"\"\"Tensor parallelism on world_mesh[\"tp\"] (per layer, then the rest), then FSDP2 over\n"
        "    dp_replicate x dp_shard; returns the model. Pipeline stages are not split here (STAGES).\"\"\"\n"
        "    tp_mesh = world_mesh[\"tp\"]\n"
        "    if tp_mesh.size() > 1:\n"
        "        prepare(model, tp_mesh.size())\n"
        "        for layers, plan in LAYER_PLANS.items():\n"
        "            for block in model.get_submodule(layers):\n"
        "                parallelize_module(block, tp_mesh, plan)\n"
        "        parallelize_module(model, tp_mesh, MODEL_PLAN)\n"
        "        if TIED:\n"
        "            head, table = (model.get_submodule(p) for p in TIED)\n"
        "            head.weight = table.weight\n"
        "    dp_mesh = world_mesh[\"dp_replicate\", \"dp_shard\"]\n"
        "    if dp_mesh.size() > 1:\n"
        "        for layers in LAYER_PLANS:\n"
        "            for block in model.get_submodule(layers):\n"
        "                fully_shard(block, mesh=dp_mesh, reshard_after_forward=RESHARD)\n"
        "        fully_shard(model, mesh=dp_mesh, reshard_after_forward=RESHARD)\n"
        "    return model\n\n\n"
        "def loss_context():\n"
        "    \"\"\"Wrap forward and backward: the loss over vocabulary-sharded logits (loss_parallel).\"\"\"\n"
        "    return loss_parallel() if LOSS_PARALLEL else contextlib.nullcontext()\n",
        f);
}

static void constants(const dt *d, FILE *f, int lossp) {
  static const char *const cls[] = {"None  # the plan's own module names", "\"GPT2LMHeadModel\"",
                                    "\"LlamaForCausalLM\""};
  fprintf(f, "MODEL_CLASS = %s\nZERO = %d\nRESHARD = %s  # reshard_after_forward: ZeRO-3 only\n"
             "LOSS_PARALLEL = %s\n",
          cls[d->fam], d->p->zero, d->p->zero == 3 ? "True" : "False", lossp ? "True" : "False");
}

/* mixed_tp: some matmuls of the blocks split their weight on tp and others
 * do not (the tp axis then also splits activations by batch or sequence
 * between them, which no DTensor style expresses). */
static int mixed_tp(const sbpc_plan *p) {
  int split = 0, whole = 0;
  for (int i = 0; i < p->nops; i++)
    if (p->ops[i].block && is(&p->ops[i], "matmul")) {
      if (in_sbp(&p->ops[i], 1)[0] == 'S') split = 1;
      else whole = 1;
    }
  return split && whole;
}

static void warnings(const dt *d) {
  const sbpc_plan *p = d->p;
  if (d->fam == FAM_OWN)
    ex_warn(d->c, "the parameter names match neither GPT2LMHeadModel nor LlamaForCausalLM; the module paths are "
                  "the plan's own names: check them against your model");
  if (d->canonical)
    ex_warn(d->c, "DTensor has no style for the plan's use of the tp axis (%s); written as Megatron-style tensor "
                  "parallelism by module role", ex_tp_shards_weights(d->p) ? "some layer weights whole, activations "
                  "split between them" : "whole weights, split sequence");
  else if (d->fam == FAM_OWN && d->p->tp > 1 && mixed_tp(d->p))
    ex_warn(d->c, "some layer weights stay whole on the tp axis while others are split; DTensor's styles cannot "
                  "express the re-layout between them: check the plan");
  if (p->pp > 1)
    ex_warn(d->c, "parallelize() does not split pipeline stages; the %d stages are listed in STAGES for "
                  "torch.distributed.pipelining", p->pp);
  if (p->sp > 1)
    ex_warn(d->c, "context parallelism (sp=%d) is not applied by parallelize(): wrap the step in "
                  "torch.distributed.tensor.experimental.context_parallel(world_mesh[\"cp\"], ...) and shard FSDP "
                  "over dp_shard x cp", p->sp);
  if (p->zero == 1 && p->dp > 1)
    ex_warn(d->c, "FSDP2 has no optimizer-only sharding (ZeRO-1); written as fully_shard with "
                  "reshard_after_forward=False (ZeRO-2 memory)");
}

static int write_all(dt *d) {
  FILE *f = d->c->out;
  const char *names[64];
  int nb = blocks(d->p, names);
  header(d);
  ex_common_warnings(d->p, d->c);
  warnings(d);
  imports(f);
  if (mesh(d, f)) return 1;
  placements(d, f);
  layer_plans(d, f, nb, names);
  int lossp = top_plan(d, f);
  tied(d, f);
  constants(d, f, lossp);
  if (d->fam == FAM_GPT2) gpt2_fns(f);
  else if (d->fam == FAM_LLAMA) llama_fns(f);
  else own_fns(f);
  main_fns(f);
  return 0;
}

int ex_dtensor(const sbpc_plan *p, ex_ctx *c) {
  c->comment = "#";
  if (ex_check_heads(p, c)) return 1;
  dt d = {.p = p, .c = c, .fam = find_family(p), .sp = ex_megatron_sp(p)};
  d.canonical = p->tp > 1 && d.fam != FAM_OWN && p->nops && (!ex_tp_shards_weights(p) || mixed_tp(p));
  if (d.canonical) d.sp = 0;
  int rc = check_sbp(&d);
  if (!rc && analyse(&d)) rc = ex_refuse(c, "out of memory");
  if (!rc) rc = write_all(&d);
  free(d.seq_out);
  free(d.gathered);
  free(d.style);
  free(d.path);
  free(d.tables);
  return rc;
}
