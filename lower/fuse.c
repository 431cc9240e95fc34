/* fuse.c — the fused CPU kernels of the program.
 *
 * codegen's fusion (cg_fuse, codegen/fuse.c) groups the elementwise and row
 * ops of the program's graph (one tp rank's shard, shapes bound) into
 * kernels in the kernel IR, f32 buffers. A group becomes one compute actor
 * when its kernel can run on the CPU executor: a row kernel that fits its
 * tables, every buffer f32 (or i32 labels), no random node (codegen's
 * dropout hash is not the runtime's mask, so dropout keeps its reference
 * kernel), all its ops on one stage and in one pass (forward or backward),
 * and no op that needs the tp group. The tensors a group makes and nothing
 * outside it reads live in the kernel only: they get no register and no
 * arena bytes. Kernels with the same structure (every layer's) are one
 * function; each actor passes its own buffers and scalars.
 *
 * The kernels are emitted as one LLVM module through the LLVM-C API, not
 * optimised: the machine that runs the program optimises and compiles it
 * for its own CPU (runtime/jit.c, with its machine-code cache). The module's
 * text goes with the program (DIR/kernels/cpu.ll). */
#include "lower/lower.h"
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>

static bool has_rand(const cg_kernel *k) {
  for (int i = 0; i < k->nnode; i++)
    if (k->node[i].op == CG_RAND) return true;
  return false;
}

static bool needs_group(const lw_ctx *c, const ir_op *o) {
  const ir_tensor *x = &c->p->g->t[o->in[0]];
  return c->lay.tp > 1 && (o->kind == IR_OP_CROSS_ENTROPY || o->kind == IR_OP_CROSS_ENTROPY_GRAD) && x->rank > 0 &&
         c->split[o->in[0]] == x->rank - 1;
}

static bool usable(const lw_ctx *c, const cg_group *gr) {
  const cg_kernel *k = gr->k;
  const ir_graph *g = c->p->g;
  if (!k || k->kind != CG_K_ROW || k->overflow || has_rand(k) || gr->nops < 1) return false;
  for (int i = 0; i < k->nbuf; i++) {
    const cg_buf *b = &k->buf[i];
    if (b->tensor < 0 || (b->dtype != IR_F32 && b->dtype != IR_I32) || b->dtype != g->t[b->tensor].dtype) return false;
  }
  const ir_op *o0 = &g->op[gr->ops[0]];
  for (int i = 0; i < gr->nops; i++) {
    const ir_op *o = &g->op[gr->ops[i]];
    if (o->kind == IR_OP_ADAMW || needs_group(c, o) || c->p->op_stage[gr->ops[i]] != c->p->op_stage[gr->ops[0]] ||
        o->backward != o0->backward)
      return false;
    /* under sequence parallelism rotary starts at the rank's first position,
     * which codegen's kernel cannot take (the reference kernel does) */
    if (c->lay.sp > 1 && (o->kind == IR_OP_ROTARY || o->kind == IR_OP_ROTARY_GRAD)) return false;
    /* nor the document boundaries of a packed batch (lower/packed.c) */
    if (o->at.packed) return false;
  }
  return true;
}

/* the kernel's description for the program (buffers, scalars, shape) */
static fmt_kernel *describe(fmt_prog *p, const cg_kernel *k, const char *name) {
  fmt_kernel *d = ARENA_NEW(p->a, fmt_kernel);
  d->name = arena_strdup(p->a, name);
  d->nbuf = k->nbuf;
  d->buf = ARENA_ARRAY(p->a, ir_ref, k->nbuf + 1);
  d->acc = ARENA_ARRAY(p->a, uint8_t, k->nbuf + 1);
  for (int i = 0; i < k->nbuf; i++) d->buf[i] = k->buf[i].tensor, d->acc[i] = k->buf[i].role == CG_ACC;
  d->rows = k->rows, d->cols = k->cols;
  d->nscalar = k->nscalar;
  d->scalar = ARENA_ARRAY(p->a, float, k->nscalar + 1);
  memcpy(d->scalar, k->scalar_default, sizeof(float) * (size_t)k->nscalar);
  return d;
}

typedef struct {
  char **text;           /* per unique kernel: its structure */
  const char **name;
  int n;
} uniq;

/* the function of kernel k: an existing one with the same structure, or k
 * renamed and added to the module */
static const char *function_of(uniq *u, cg_llvm *m, cg_kernel *k, arena *a, bool *ok, char *why, size_t wn) {
  char *t = cg_k_text(k);
  for (int i = 0; i < u->n; i++)
    if (!strcmp(u->text[i], t)) return free(t), u->name[i];
  k->name = arena_printf(a, "sbpc_k%d", u->n);
  u->text = xrealloc(u->text, sizeof(char *) * (size_t)(u->n + 1));
  u->name = xrealloc(u->name, sizeof(char *) * (size_t)(u->n + 1));
  u->text[u->n] = t, u->name[u->n] = k->name;
  u->n++;
  if (!cg_llvm_add(m, k, why, wn)) *ok = false;
  return k->name;
}

bool lw_fuse(lw_ctx *c) {
  fmt_prog *p = c->p;
  ir_graph *g = p->g;
  c->group_of = xmalloc(sizeof(int32_t) * (size_t)(g->nop + 1));
  for (int k = 0; k < g->nop; k++) c->group_of[k] = -1;
  if (c->lay.device == 1) return true; /* the GPU part runs a kernel per op (lower/gpu.c) */
  arena *a = arena_new();
  cg_fusion *f = cg_fuse(g, IR_F32, a);
  cg_llvm *m = cg_llvm_new("sbpc_program_cpu");
  uniq u = {0};
  bool ok = true;
  char why[512] = "";
  c->ngroup = 0;
  c->gops = xcalloc((size_t)f->n + 1, sizeof *c->gops);
  c->gnops = xcalloc((size_t)f->n + 1, sizeof *c->gnops);
  c->gkernel = xcalloc((size_t)f->n + 1, sizeof *c->gkernel);
  for (int i = 0; i < f->n && ok; i++) {
    cg_group *gr = &f->g[i];
    if (!usable(c, gr)) continue;
    int gi = c->ngroup++;
    c->gkernel[gi] = describe(p, gr->k, function_of(&u, m, gr->k, a, &ok, why, sizeof why));
    c->gops[gi] = ARENA_ARRAY(p->a, int32_t, gr->nops);
    c->gnops[gi] = gr->nops;
    for (int j = 0; j < gr->nops; j++) c->gops[gi][j] = gr->ops[j], c->group_of[gr->ops[j]] = gi;
  }
  if (ok && u.n) {
    char *text = cg_llvm_text(m);
    p->cpu_ll = arena_strdup(p->a, text);
    free(text);
  }
  if (!ok) diag_error(c->d, (srcloc){0, 0}, "cannot emit the fused CPU kernels: %s", why);
  cg_llvm_free(m);
  for (int i = 0; i < u.n; i++) free(u.text[i]);
  free(u.text), free(u.name);
  arena_free(a);
  return ok;
}
