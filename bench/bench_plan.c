/* bench_plan.c — planning time of the full search (single thread) and the
 * effect of the speed-weighted stage partition on a mixed cluster.
 *
 * Cases (issue 3): GPT-1T (160 heads, h 25600, 128 layers) on dgx-a100:384,
 * GPT-3 175B on 1024 A100 (dgx-a100:128), and GPT 39.1B on a mixed 64-node
 * cluster (32 DGX-A100 + 32 nodes of 8 x V100 32GB on 100 Gb/s Ethernet).
 * Each search runs 3 times; the best CPU time (clock()) and wall time are
 * printed. The graphs are built in code (planner/models.c), the same
 * structure the front end makes from a GPT .sbp. Goal: < 1 s each. */
#include "planner/planner.h"
#include <stdio.h>
#include <time.h>

static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static plan_result *timed(const ir_graph *g, const ir_cluster *c, const plan_options *o, double *cpu, double *w) {
  plan_result *best = NULL;
  *cpu = *w = 1e30;
  for (int i = 0; i < 3; i++) {
    double w0 = wall();
    clock_t c0 = clock();
    plan_result *r = plan_search(g, c, o);
    double dc = (double)(clock() - c0) / CLOCKS_PER_SEC, dw = wall() - w0;
    if (dc < *cpu) *cpu = dc;
    if (dw < *w) *w = dw;
    plan_result_free(best);
    best = r;
  }
  return best;
}

static void row(const char *name, const ir_graph *g, const ir_cluster *c, int64_t batch) {
  plan_options o;
  plan_options_default(&o);
  o.global_batch = batch, o.seq = 2048;
  double cpu, w;
  plan_result *r = timed(g, c, &o, &cpu, &w);
  if (!r || r->ntop == 0) {
    printf("| %s | no plan | | | |\n", name);
    plan_result_free(r);
    return;
  }
  const plan_layout *l = &r->top[0];
  printf("| %s | %d | %.3f | %.3f | %ld / %ld | dp=%d tp=%d pp=%d vpp=%d mbs=%d rc=%s zero=%d | %.2f s, %.0f%% MFU, %.1f GB |\n",
         name, r->ndev, cpu, w, r->evaluated, r->candidates, l->dp, l->tp, l->pp, l->vpp, l->mbs,
         plan_recompute_name(l->recompute), l->zero, l->step_s,
         100 * l->model_flops / l->step_s / r->ndev / l->peak_flops, l->mem_bytes / 1e9);
  plan_result_free(r);
}

/* the same layout with the partition program and with an even split */
static void partition_ratio(const ir_graph *g, const ir_cluster *c, const char *fix) {
  plan_options o;
  plan_options_default(&o);
  o.global_batch = 1536, o.seq = 2048;
  plan_fix_parse(fix, &o);
  plan_result *a = plan_search(g, c, &o);
  o.even_partition = true;
  plan_result *b = plan_search(g, c, &o);
  if (a && b && a->ntop && b->ntop) {
    const plan_layout *la = &a->top[0], *lb = &b->top[0];
    printf("| %s | ", fix);
    for (int s = 0; s < la->pp; s++) printf("%s%d", s ? "/" : "", la->stage[s].last - la->stage[s].first + 1);
    printf(" | %.3f s | ", la->step_s);
    for (int s = 0; s < lb->pp; s++) printf("%s%d", s ? "/" : "", lb->stage[s].last - lb->stage[s].first + 1);
    printf(" | %.3f s | %.2f |\n", lb->step_s, lb->step_s / la->step_s);
  } else {
    printf("| %s | no plan (weighted %s, even %s) | | | | |\n", fix, a && a->ntop ? "ok" : "none", b && b->ntop ? "ok" : "none");
  }
  plan_result_free(a);
  plan_result_free(b);
}

int main(void) {
  arena *a = arena_new();
  ir_graph *g1t = plan_gpt_graph("gpt-1t", 128, 25600, 160, 51200, 2048);
  ir_graph *g175 = plan_gpt_graph("gpt3-175b", 96, 12288, 96, 51200, 2048);
  ir_graph *g39 = plan_gpt_graph("gpt-39b", 48, 8192, 64, 51200, 2048);
  ir_cluster *mixed = plan_cluster_mixed(a, 32, 32);
  printf("planning time, full search, single thread (best of 3)\n\n");
  printf("| case | devices | cpu s | wall s | evaluated / candidates | best layout | predicted step |\n");
  printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  row("GPT-1T on dgx-a100:384, batch 3072", g1t, plan_cluster_dgx(a, 384), 3072);
  row("GPT-3 175B on dgx-a100:128, batch 1536", g175, plan_cluster_dgx(a, 128), 1536);
  row("GPT 39.1B on 32 DGX-A100 + 32 V100x8 nodes, batch 1536", g39, mixed, 1536);
  printf("\nmixed cluster (GPT 39.1B, batch 1536): speed-weighted vs even stage partition\n\n");
  printf("| fixed | weighted layers | weighted step | even layers | even step | even / weighted |\n");
  printf("| --- | --- | --- | --- | --- | --- |\n");
  partition_ratio(g39, mixed, "pp=2,tp=8,vpp=1,devices=512");
  partition_ratio(g39, mixed, "pp=4,tp=8,vpp=1,devices=512");
  partition_ratio(g39, mixed, "pp=8,tp=8,vpp=1,devices=512");
  ir_graph_free(g1t), ir_graph_free(g175), ir_graph_free(g39);
  arena_free(a);
  return 0;
}
