/* bench_plan.c — planning time of the full search (single thread) and the
 * effect of the speed-weighted stage partition on a mixed cluster.
 *
 * Cases (issue 3): GPT-1T (160 heads, h 25600, 128 layers) on dgx-a100:384,
 * GPT-3 175B on 1024 A100 (dgx-a100:128), and GPT 39.1B on a mixed 64-node
 * cluster (32 DGX-A100 + 32 nodes of 8 x V100 32GB on 100 Gb/s Ethernet).
 * Each search runs 3 times; the best CPU time (clock()) and wall time are
 * printed. The graphs are built in code (planner/models.c), the same
 * structure the front end makes from a GPT .sbp. Goal: < 1 s each. */
#include "frontend/frontend.h"
#include "planner/planner.h"
#include "tests/support/fixtures.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- published runs, each predicted with its published layout fixed ------ */
typedef struct {
  const char *name;
  int L;
  int64_t h, heads, kv, ffn, vocab; /* kv, ffn > 0: a Llama (SwiGLU, GQA, RMSNorm) */
  int64_t seq, batch;
  const char *cluster, *fix, *runtime;
  double pub;       /* published TFLOP/s per GPU */
  const char *what; /* "hw": hardware FLOPs (recompute counted), "model" */
} run;

/* llama: examples/llama-7b.sbp's structure with other dims (parsed and shaped) */
static ir_program *llama(const run *r) {
  size_t len;
  const char *src = getenv("SBPC_SRC");
  char path[512];
  snprintf(path, sizeof path, "%s/examples/llama-7b.sbp", src ? src : ".");
  char *t = read_file(path, 1 << 20, &len);
  if (!t) return NULL;
  char *d0 = strstr(t, "dims {"), *d1 = d0 ? strchr(d0, '}') : NULL;
  if (!d1) return free(t), NULL;
  char *txt = malloc(len + 512);
  int n = snprintf(txt, 512, "%.*sdims { V = %lld, P = %lld, H = %lld, F = %lld, A = %lld, KV = %lld, D = H/A, L = %d ",
                   (int)(d0 - t), t, (long long)r->vocab, (long long)r->seq, (long long)r->h, (long long)r->ffn,
                   (long long)r->heads, (long long)r->kv, r->L);
  strcpy(txt + n, d1);
  free(t);
  ir_program *p = calloc(1, sizeof *p);
  diag d;
  diag_init(&d, "llama", txt, strlen(txt));
  bool ok = fe_parse("llama", txt, strlen(txt), p, &d) && p->g && ir_infer_shapes(p->g, &d);
  free(txt);
  if (!ok) return fe_program_free(p), free(p), NULL;
  return p;
}

static void published(const run *r) {
  arena *a = arena_new();
  char err[256];
  ir_cluster *c = fe_cluster_preset(r->cluster, a, err, sizeof err);
  ir_program *lp = r->kv ? llama(r) : NULL;
  ir_graph *g = r->kv ? (lp ? lp->g : NULL) : fx_gpt_graph(r->name, r->L, r->h, r->heads, r->vocab, r->seq);
  plan_options o;
  plan_options_default(&o);
  o.global_batch = r->batch, o.seq = r->seq;
  plan_result *res = NULL;
  if (c && g && plan_runtime_set(&o.calib, r->runtime) && plan_fix_parse(r->fix, &o)) res = plan_search(g, c, &o);
  if (res && res->ntop) {
    const plan_layout *l = &res->top[0];
    double f = (!strcmp(r->what, "hw") ? l->hw_flops : l->model_flops) / l->step_s / l->nused / 1e12;
    printf("| %s | %s | %s | %.0f | %.1f | %+.1f %% | dp=%d mbs=%d vpp=%d zero=%d | %.1f GB |\n", r->name, r->fix,
           r->runtime, r->pub, f, 100 * (f / r->pub - 1), l->dp, l->mbs, l->vpp, l->zero, l->mem_bytes / 1e9);
  } else {
    printf("| %s | %s | %s | %.0f | no plan%s%s | | | |\n", r->name, r->fix, r->runtime, r->pub,
           res && res->why ? ": " : "", res && res->why ? res->why : "");
  }
  plan_result_free(res);
  if (lp) fe_program_free(lp), free(lp);
  else if (g) ir_graph_free(g);
  arena_free(a);
}

/* Narayanan et al., SC'21, Table 1 (A100 80GB, vocab 51200, seq 2048, full
 * recompute, Megatron-LM of 2021); hardware TFLOP/s per GPU */
static const run sc21[] = {
    {"1.7B", 24, 2304, 24, 0, 0, 51200, 2048, 512, "dgx-a100:4", "tp=1,pp=1,recompute=full", "megatron-2021", 137, "hw"},
    {"3.6B", 30, 3072, 32, 0, 0, 51200, 2048, 512, "dgx-a100:8", "tp=2,pp=1,recompute=full", "megatron-2021", 138, "hw"},
    {"7.5B", 36, 4096, 32, 0, 0, 51200, 2048, 512, "dgx-a100:16", "tp=4,pp=1,recompute=full", "megatron-2021", 142, "hw"},
    {"18.4B", 40, 6144, 48, 0, 0, 51200, 2048, 1024, "dgx-a100:32", "tp=8,pp=1,recompute=full", "megatron-2021", 135, "hw"},
    {"39.1B", 48, 8192, 64, 0, 0, 51200, 2048, 1536, "dgx-a100:64", "tp=8,pp=2,recompute=full", "megatron-2021", 138, "hw"},
    {"76.1B", 60, 10240, 80, 0, 0, 51200, 2048, 1792, "dgx-a100:128", "tp=8,pp=4,recompute=full", "megatron-2021", 140, "hw"},
    {"145.6B", 80, 12288, 96, 0, 0, 51200, 2048, 2304, "dgx-a100:192", "tp=8,pp=8,recompute=full", "megatron-2021", 148, "hw"},
    {"310.1B", 96, 16384, 128, 0, 0, 51200, 2048, 2160, "dgx-a100:240", "tp=8,pp=16,recompute=full", "megatron-2021", 155, "hw"},
    {"529.6B", 105, 20480, 128, 0, 0, 51200, 2048, 2520, "dgx-a100:315", "tp=8,pp=35,recompute=full", "megatron-2021", 163, "hw"},
    {"1008.0B", 128, 25600, 160, 0, 0, 51200, 2048, 3072, "dgx-a100:384", "tp=8,pp=64,recompute=full", "megatron-2021", 163, "hw"},
};

/* other published runs (sources in bench/README.md); model or hardware
 * TFLOP/s per GPU as each source reports it */
static const run others[] = {
    {"22B (Korthikanti 2022)", 48, 6144, 64, 0, 0, 51200, 2048, 4, "dgx-a100:1", "tp=8,pp=1,mbs=4,recompute=selective",
     "megatron-2022", 0.415 * 312, "model"},
    {"175B (Korthikanti 2022)", 96, 12288, 96, 0, 0, 51200, 2048, 64, "dgx-a100:8",
     "tp=8,pp=8,mbs=1,vpp=3,recompute=selective", "megatron-2022", 0.514 * 312, "model"},
    {"530B (Korthikanti 2022)", 105, 20480, 128, 0, 0, 51200, 2048, 280, "dgx-a100:35",
     "tp=8,pp=35,mbs=1,vpp=3,recompute=selective", "megatron-2022", 0.560 * 312, "model"},
    {"530B, 2240 A100 (Korthikanti 2022, abstract)", 105, 20480, 128, 0, 0, 51200, 2048, 1920, "dgx-a100:280",
     "tp=8,pp=35,mbs=1,recompute=selective", "megatron-2022", 0.542 * 312, "model"},
    {"530B, 2240 A100, full recompute (same)", 105, 20480, 128, 0, 0, 51200, 2048, 1920, "dgx-a100:280",
     "tp=8,pp=35,mbs=1,recompute=full", "megatron-2022", 0.421 * 312, "model"},
    {"1T (Korthikanti 2022)", 128, 25600, 160, 0, 0, 51200, 2048, 512, "dgx-a100:64", "tp=8,pp=64,mbs=1,recompute=selective",
     "megatron-2022", 0.563 * 312, "model"},
    {"MT-NLG 530B, 280 nodes", 105, 20480, 128, 0, 0, 51200, 2048, 1920, "dgx-a100:280", "tp=8,pp=35,recompute=full",
     "megatron-2021", 126, "hw"},
    {"BLOOM 176B", 70, 14336, 112, 0, 0, 250880, 2048, 2048, "dgx-a100:48", "tp=4,pp=12,mbs=2,recompute=full",
     "megatron-2021", 150, "hw"},
    {"Llama 3 405B, 8192 H100", 126, 16384, 128, 8, 53248, 128256, 8192, 2048, "dgx-h100:1024", "tp=8,pp=16",
     "stack-2024", 430, "model"},
    {"Llama 3 405B, 16384 H100", 126, 16384, 128, 8, 53248, 128256, 8192, 2048, "dgx-h100:2048", "tp=8,pp=16",
     "stack-2024", 400, "model"},
};

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "published")) {
    printf("| model | fixed | runtime | published | predicted | error | searched | memory |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof sc21 / sizeof sc21[0]; i++) published(&sc21[i]);
    printf("\n| run | fixed | runtime | published | predicted | error | searched | memory |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) published(&others[i]);
    return 0;
  }
  arena *a = arena_new();
  ir_graph *g1t = fx_gpt_graph("gpt-1t", 128, 25600, 160, 51200, 2048);
  ir_graph *g175 = fx_gpt_graph("gpt3-175b", 96, 12288, 96, 51200, 2048);
  ir_graph *g39 = fx_gpt_graph("gpt-39b", 48, 8192, 64, 51200, 2048);
  ir_cluster *mixed = fx_cluster_mixed(a, 32, 32);
  printf("planning time, full search, single thread (best of 3)\n\n");
  printf("| case | devices | cpu s | wall s | evaluated / candidates | best layout | predicted step |\n");
  printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  row("GPT-1T on dgx-a100:384, batch 3072", g1t, fx_cluster_dgx(a, 384), 3072);
  row("GPT-3 175B on dgx-a100:128, batch 1536", g175, fx_cluster_dgx(a, 128), 1536);
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
