/* bench_sp.c — adaptive sequence parallelism against static SP (issue 4).
 *
 * GPT-7B (32 layers, hidden 4096, 32 heads, ffn 16384, vocab 50257) on
 * dgx-a100:8 (64 A100 80GB, NVSwitch 300 GB/s, 8 x 200 Gb/s IB per node) and
 * on a mixed cluster (4 DGX-A100 + 4 DGX-1-V100 nodes), global batch 512,
 * lengths clipped to 192K, 20 consecutive batches of each sample file in
 * $SBPC_SHARED/data/lengths (default ../shared relative to the source root).
 * Prints, per file and cluster: predicted step time summed over the batches
 * for adaptive, static (best single degree for the run), per-batch best
 * degree and greedy; the ratios; the gap to the LP lower bound; and the
 * solver's wall time per batch (median, max), all on one core.
 * Last, the dgx-a100:8 rows again with the NIC at a quarter of its line rate
 * (all-to-all across nodes often reaches far less than line rate).
 * Solver times are this thread's CPU time (the limit counts the same).
 * Usage: bench_sp [BATCHES]. The clusters are built here with the numbers of
 * the dgx-a100 preset (frontend/presets) so the bench runs without a parser. */
#include "planner/sp.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 512
#define MAXLEN 196608

static ir_cluster *cluster(arena *a, int na, int nv) {
  ir_cluster *c = ARENA_NEW(a, ir_cluster);
  c->name = nv ? "mixed" : "dgx-a100:8";
  c->dev = ARENA_ARRAY(a, ir_devtype, 2);
  c->node = ARENA_ARRAY(a, ir_nodetype, 2);
  c->node_count = ARENA_ARRAY(a, int, 2);
  ir_devtype *d = c->dev;
  d[0].name = "a100";
  d[0].peak_flops[IR_BF16] = d[0].peak_flops[IR_F16] = 312e12;
  d[0].peak_flops[IR_F32] = 19.5e12;
  d[0].mem_bytes = 80.0 * (1 << 30);
  d[0].mem_bw = 2039e9;
  d[1].name = "v100";
  d[1].peak_flops[IR_F16] = 125e12;
  d[1].peak_flops[IR_F32] = 15.7e12;
  d[1].mem_bytes = 32.0 * (1 << 30);
  d[1].mem_bw = 900e9;
  ir_nodetype *n = c->node;
  n[0] = (ir_nodetype){"dgx-a100", 0, 8, "nvswitch", 300e9, 3e-6, "ib", 8, 25e9, 5e-6};
  n[1] = (ir_nodetype){"dgx1-v100", 1, 8, "nvlink", 150e9, 3e-6, "ib", 4, 12.5e9, 5e-6};
  c->ndev = 2;
  c->nnode = nv ? 2 : 1;
  c->node_count[0] = na;
  c->node_count[1] = nv;
  return c;
}

static plan_calib calib; /* --calibration FILE, else the built-in model */

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* run: every batch of one file on one cluster: the adaptive plan, the
 * baselines and the whole-batch bound; one summary line, and with verbose
 * one line per batch. Counts the batches where adaptive is worse than
 * greedy or than the best single degree of that batch. */
static void run(const char *file, const char *label, ir_cluster *c, int nbatch, bool verbose) {
  int n, *lines;
  int64_t *len = sp_read_lengths(file, &n, &lines);
  if (!len) return;
  for (int i = 0; i < n; i++) len[i] = len[i] > MAXLEN ? MAXLEN : len[i];
  if (n < nbatch * BATCH) nbatch = n / BATCH;
  sp_model m = sp_model_gpt("gpt-7b", 32, 4096, 32, 16384, 50257);
  sp_hw hw;
  arena *a = arena_new();
  const char *why;
  if (!sp_hw_init(&hw, c, &m, IR_BF16, &calib, a, &why)) {
    printf("%s: %s\n", label, why);
    return;
  }
  sp_opts o = sp_opts_default();
  double ad = 0, pb = 0, gr = 0, st = 0, lb = 0, gapmax = 0, cpu[64], wal[64];
  double adb[64], pbb[64], grb[64], lbb[64];
  const int64_t *bl[64];
  int bn[64], grfail = 0, worse_gr = 0, worse_pb = 0, worse_st = 0;
  sp_plan *sp = xmalloc(sizeof(sp_plan) * (size_t)nbatch);
  for (int b = 0; b < nbatch; b++) {
    const int64_t *L = len + (size_t)b * BATCH;
    bl[b] = L, bn[b] = BATCH;
    sp_plan p, q;
    if (!sp_solve(&hw, &m, L, BATCH, &o, a, &p, &why)) {
      printf("%s batch %d: %s\n", label, b, why);
      return;
    }
    adb[b] = p.step_time, lbb[b] = p.lower_bound;
    ad += p.step_time, lb += p.lower_bound, cpu[b] = p.solve_cpu, wal[b] = p.solve_time;
    gapmax = fmax(gapmax, p.step_time / p.lower_bound - 1);
    pbb[b] = sp_best_uniform(&hw, &m, L, BATCH, &o, a, &q) ? q.step_time : 1e300;
    pb += pbb[b];
    worse_pb += p.step_time > pbb[b] * (1 + 1e-12);
    grb[b] = sp_greedy(&hw, &m, L, BATCH, &o, a, &q) ? q.step_time : 1e300;
    if (grb[b] < 1e300) gr += grb[b];
    else grfail++;
    worse_gr += p.step_time > grb[b] * (1 + 1e-12);
  }
  bool sok = sp_static(&hw, &m, bl, bn, nbatch, &o, a, sp);
  for (int b = 0; b < nbatch && sok; b++) st += sp[b].step_time, worse_st += adb[b] > sp[b].step_time * (1 + 1e-12);
  const char *fname = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
  if (verbose)
    for (int b = 0; b < nbatch; b++)
      printf("  %s %s batch %2d: adaptive %7.3f  greedy %7.3f  best-degree %7.3f  static %7.3f  bound %7.3f"
             "  gap %5.1f%%  solve %5.1f ms cpu %5.1f ms wall\n", label, fname, b + 1, adb[b], grb[b], pbb[b],
             sok ? sp[b].step_time : 0, lbb[b], 100 * (adb[b] / lbb[b] - 1), 1e3 * cpu[b], 1e3 * wal[b]);
  qsort(cpu, (size_t)nbatch, sizeof(double), cmpd);
  qsort(wal, (size_t)nbatch, sizeof(double), cmpd);
  printf("%-11s %-9s %3d | adaptive %8.2f s | static sp=%-2d %-7s %8.2f s  x%.2f | per-batch %8.2f s x%.2f"
         " | greedy %8.2f s x%.2f%s | bound gap %.1f%% (max %.1f%%) | worse than greedy/degree/static on %d/%d/%d"
         " | solve median %.0f ms cpu %.0f ms wall, max %.0f ms cpu %.0f ms wall\n",
         label, fname, nbatch, ad, sok ? sp[0].degree : 0,
         sok ? (sp[0].kind == SP_RING ? "ring" : "ulysses") : "-", st, st / ad, pb, pb / ad, gr, gr / ad,
         grfail ? "(fails)" : "", 100 * (ad / lb - 1), 100 * gapmax, worse_gr, worse_pb, worse_st,
         1e3 * cpu[nbatch / 2], 1e3 * wal[nbatch / 2], 1e3 * cpu[nbatch - 1], 1e3 * wal[nbatch - 1]);
  free(sp);
  free(len);
  free(lines);
  arena_free(a);
}

int main(int argc, char **argv) {
  int nbatch = 20, nfile = 0;
  bool verbose = false;
  const char *files[8];
  plan_calib_default(&calib);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-v")) verbose = true;
    else if (!strcmp(argv[i], "--calibration") && i + 1 < argc) {
      if (!plan_calib_load(argv[++i], &calib)) return 1;
      printf("bench_sp: calibration %s\n", argv[i]);
    }
    else if (!strcmp(argv[i], "--file") && i + 1 < argc && nfile < 8) files[nfile++] = argv[++i];
    else nbatch = atoi(argv[i]);
  }
  if (nbatch < 1 || nbatch > 64) nbatch = 20;
  arena *a = arena_new();
  ir_cluster *homo = cluster(a, 8, 0), *mixed = cluster(a, 4, 4);
  if (nfile) { /* files named on the command line: dgx-a100:8 only */
    for (int f = 0; f < nfile; f++) run(files[f], "dgx-a100:8", homo, nbatch, verbose);
    arena_free(a);
    return 0;
  }
  const char *sh = getenv("SBPC_SHARED"), *src = getenv("SBPC_SRC");
  char dir[4096];
  if (sh) snprintf(dir, sizeof dir, "%s/data/lengths", sh);
  else snprintf(dir, sizeof dir, "%s/../shared/data/lengths", src ? src : ".");
  char f1[4200], f2[4200];
  snprintf(f1, sizeof f1, "%s/synthetic-bimodal.txt", dir);
  snprintf(f2, sizeof f2, "%s/synthetic-lognormal.txt", dir);
  FILE *t = fopen(f1, "r");
  if (!t) {
    printf("bench_sp: %s not found; the sample data is absent, nothing measured\n", f1);
    arena_free(a);
    return 0;
  }
  fclose(t);
  printf("bench_sp: data from %s; GPT-7B, batch %d, max length %d, %d batches\n", dir, BATCH, MAXLEN, nbatch);
  run(f1, "dgx-a100:8", homo, nbatch, verbose);
  run(f2, "dgx-a100:8", homo, nbatch, verbose);
  run(f1, "4a100+4v100", mixed, nbatch, verbose);
  run(f2, "4a100+4v100", mixed, nbatch, verbose);
  homo->node[0].nic_bw *= 0.25; /* sensitivity: all-to-all at a quarter of IB line rate */
  run(f1, "a100:8,ib/4", homo, nbatch, verbose);
  run(f2, "a100:8,ib/4", homo, nbatch, verbose);
  arena_free(a);
  return 0;
}
