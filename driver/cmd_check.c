/* cmd_check.c — `sbpc check MODEL.sbp [--mesh 2|2x4] [--batch N] [--seq N]
 *               [--cluster SPEC] [--dump ir] [--dot]`.
 *
 * Parse and lower the file, bind B and S (flags, else the train section,
 * else 1), then run the IR passes in order: shape inference, SBP deduction,
 * boxing insertion, verify. Prints a summary: model name, exact parameter
 * count, tensor and op counts, layers per block, every parameter with its
 * shape and deduced SBP (a block's params once, for layer 0, marked "x L"),
 * and the boxing ops by collective. --dump ir prints the IR text form instead
 * and --dot the Graphviz form. A file with only a cluster or train section is
 * checked and described. The options are a table (driver/opts.h). Exit: 0
 * ok, 1 bad input, 2 bad usage. */
#include "driver/common.h"
#include "driver/driver.h"
#include "frontend/frontend.h"
#include <string.h>

typedef struct {
  const char *file;
  drv_opts o;
  int dump; /* 0: --dump ir; -1: not given */
  bool dot;
} check_args;

static const drv_command command = {
    .name = "check", .synopsis = "MODEL.sbp [options]", .pos = {"MODEL.sbp"}, .min_pos = 1,
    .about = "Parse the model, bind B and S, infer shapes, deduce SBP, insert boxing; print a summary.",
};

static const drv_option options[] = {
    {DRV_OPT("--dump", DRV_CHOICE, check_args, dump, "ir", "print the IR's text form instead"), .choices = "ir"},
    {DRV_FLAGOPT("--dot", DRV_FLAG, check_args, dot, "print the Graphviz form instead")},
    {0}};

/* Returns -1 when the arguments are fine, else an exit status. */
static int parse_args(int argc, char **argv, check_args *a) {
  memset(a, 0, sizeof *a);
  a->dump = -1;
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {
      {options, a, NULL}, {drv_model_options, &a->o, NULL}, {drv_size_options, &a->o, NULL}, {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  a->file = pos[0];
  return rc;
}

static void print_device(const ir_devtype *d) {
  printf("%s (", d->name);
  for (int t = 0, first = 1; t < IR_NDTYPE; t++)
    if (d->peak_flops[t] > 0) printf("%s%s %.4g", first ? "" : ", ", ir_dtype_name((ir_dtype)t), d->peak_flops[t] / 1e12), first = 0;
  printf(" TFLOP/s, %.4g GiB, %.4g GB/s)", d->mem_bytes / 1073741824.0, d->mem_bw / 1e9);
}

static void print_cluster(const ir_cluster *c) {
  printf("cluster %s: %lld devices\n", c->name, (long long)fe_cluster_devices(c));
  for (int i = 0; i < c->nnode; i++) {
    const ir_nodetype *n = &c->node[i];
    printf("  %d x node %s: %d x ", c->node_count[i], n->name, n->ndev);
    print_device(&c->dev[n->devtype]);
    if (n->link_name) printf(", link %s %.4g GB/s %.3g us", n->link_name, n->link_bw / 1e9, n->link_lat * 1e6);
    if (n->nic_name) printf(", nic %s %d x %.4g GB/s %.3g us", n->nic_name, n->nics, n->nic_bw / 1e9, n->nic_lat * 1e6);
    printf("\n");
  }
}

static void print_train(const ir_train *t) {
  static const char *opt[] = {"adamw", "sgd"};
  printf("train:");
  if (t->global_batch) printf(" global_batch %lld,", (long long)t->global_batch);
  if (t->seq) printf(" seq %lld,", (long long)t->seq);
  if (t->micro_batch) printf(" micro_batch %lld,", (long long)t->micro_batch);
  printf(" precision %s, optimizer %s", ir_dtype_name(t->precision), opt[t->optimizer == IR_OPT_SGD]);
  if (t->lengths) printf(", lengths %s", t->lengths);
  printf("\n");
}

static const char *shape_str(const ir_tensor *t, char *buf, size_t n) {
  char dim[48];
  size_t k = (size_t)snprintf(buf, n, "%s[", ir_dtype_name((ir_dtype)t->dtype));
  for (int j = 0; j < t->rank && k < n; j++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s", j ? ", " : "", ir_dim_str(t->shape[j], dim, sizeof dim));
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

static void print_param(const ir_graph *g, int i, int wname, int wshape) {
  const ir_tensor *t = &g->t[i];
  char shape[200], sbp[64];
  const char *s = g->mesh.n ? ir_ndsbp_str(&t->sbp, sbp, sizeof sbp) : "B";
  printf("  %-*s  %-*s  %s%s", wname, t->name, wshape, shape_str(t, shape, sizeof shape), s,
         t->has_hint ? " (hint)" : "");
  if (t->block >= 0) printf("  x %d layers", g->blk[t->block].count);
  printf("\n");
}

static void print_params(const ir_graph *g) {
  int wname = 0, wshape = 0;
  char shape[200];
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < g->nt; i++) {
      const ir_tensor *t = &g->t[i];
      if (t->kind != IR_T_PARAM || t->layer > 0) continue;
      if (pass) {
        print_param(g, i, wname, wshape);
        continue;
      }
      int n = (int)strlen(t->name), m = (int)strlen(shape_str(t, shape, sizeof shape));
      wname = n > wname ? n : wname;
      wshape = m > wshape ? m : wshape;
    }
}

static void print_boxing(const ir_graph *g) {
  int count[IR_NOPKIND] = {0}, total = 0;
  for (int i = 0; i < g->nop; i++)
    if (ir_ops[g->op[i].kind].kclass == KC_COMM) count[g->op[i].kind]++, total++;
  printf("boxing ops: ");
  if (!total) printf("none");
  for (int k = 0, first = 1; k < IR_NOPKIND; k++)
    if (count[k]) printf("%s%d %s", first ? "" : ", ", count[k], ir_ops[k].name), first = 0;
  printf("\n");
}

static void print_summary(const ir_program *p) {
  const ir_graph *g = p->g;
  char buf[40];
  printf("model %s\n", g->name);
  printf("parameters: %s\n", drv_thousands(ir_param_count(g), buf, sizeof buf));
  printf("tensors: %d\nops: %d\n", g->nt, g->nop);
  for (int b = 0; b < g->nblk; b++) printf("block %s: %d layers\n", g->blk[b].name, g->blk[b].count);
  printf("bound: B=%lld S=%lld", (long long)g->bind_b, (long long)g->bind_s);
  if (g->mesh.n) {
    printf(", mesh ");
    for (int i = 0; i < g->mesh.n; i++) printf("%s%lld", i ? "x" : "", (long long)g->mesh.size[i]);
  }
  printf("\nparams (shape, deduced SBP):\n");
  print_params(g);
  print_boxing(g);
}

static int check_model(const check_args *a, drv_model *m) {
  int rc = drv_bind(&a->o, &m->p);
  if (rc) return rc;
  if (!drv_passes(m->p.g, DRV_SBP, &m->d)) return EXIT_BAD_INPUT;
  if (a->dump == 0) ir_print(m->p.g, stdout);
  if (a->dot) ir_print_dot(m->p.g, -1, stdout);
  if (a->dump == 0 || a->dot) return EXIT_OK;
  print_summary(&m->p);
  return EXIT_OK;
}

int cmd_check(int argc, char **argv) {
  check_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  drv_model m;
  if ((rc = drv_model_load(a.file, &m))) return rc;
  arena *ar = arena_new();
  const ir_cluster *cl = a.o.cluster ? drv_cluster(&a.o, &m.p, ar, NULL) : m.p.cluster;
  if (a.o.cluster && !cl) rc = EXIT_BAD_INPUT;
  else if ((a.dump == 0 || a.dot) && !drv_model_graph(&m)) rc = EXIT_BAD_INPUT;
  else if (m.p.g) rc = check_model(&a, &m);
  if (!rc && a.dump != 0 && !a.dot) {
    if (cl) print_cluster(cl);
    if (m.p.train.set) print_train(&m.p.train);
    if (!m.p.g && !cl && !m.p.train.set) printf("%s: empty (no model, cluster or train section)\n", a.file);
  }
  arena_free(ar);
  drv_model_free(&m);
  return rc;
}
