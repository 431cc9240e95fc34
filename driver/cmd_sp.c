/* cmd_sp.c — `sbpc sp`: adaptive sequence parallelism for variable lengths.
 *
 *   sbpc sp MODEL.sbp --cluster SPEC --lengths FILE [--batch N] [--steps K]
 *           [--json FILE] [--calibration FILE]
 *
 * Reads the model's dims (planner/sp.h), the cluster, and K batches of N
 * sequences taken in order from the lengths file (N: --batch, else the train
 * section's global_batch, else 512; the file: --lengths, else train.lengths).
 * Every batch is planned by sp_solve; beside it the baselines on the same
 * cost model (static SP: the best single degree for the whole run; the best
 * degree for that batch; greedy longest-first) and the whole-batch lower
 * bound; --calibration brings measured all-to-all and send/recv bandwidth
 * (docs/calibration.md) into the cost model. Prints
 * one table per batch and optionally writes the "sbpc-sp" JSON
 * (docs/sp-format.md). Bad lengths are located errors (exit 1); a sequence no
 * group can hold is named by its line (exit 1). The options are a table
 * (driver/opts.h). */
#include "driver/common.h"
#include "driver/driver.h"
#include "planner/sp.h"
#include "util/os.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  drv_opts o;
  const char *model, *lengths, *json, *calib;
  int64_t steps;
} sp_args;

static const drv_command command = {
    .name = "sp", .synopsis = "MODEL.sbp --cluster SPEC --lengths FILE [options]",
    .pos = {"MODEL.sbp"}, .min_pos = 1,
    .about = "Per-batch SP groups and sequence assignment (GLPK), with static SP, the per-batch best degree,\n"
             "greedy packing and the whole-batch lower bound beside it.",
};

static const drv_option options[] = {
    {DRV_OPT("--lengths", DRV_STR, sp_args, lengths, "FILE",
             "sequence lengths, one a line (default: the train section's)")},
    {DRV_OPT("--steps", DRV_I64, sp_args, steps, "K", "plan K batches (default 1)"), .lo = 1, .hi = 100000},
    {DRV_OPT("--json", DRV_STR, sp_args, json, "FILE", "write the sbpc-sp JSON (docs/sp-format.md)")},
    {DRV_OPT("--calibration", DRV_STR, sp_args, calib, "FILE", "measured all-to-all and send/recv bandwidth")},
    {0}};

static int parse_args(int argc, char **argv, sp_args *a) {
  memset(a, 0, sizeof *a);
  a->steps = 1;
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {
      {drv_model_options, &a->o, NULL}, {drv_size_options, &a->o, NULL}, {options, a, NULL}, {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  a->model = pos[0];
  if (rc < 0 && a->o.batch > SP_MAXBATCH)
    return drv_usage_error(&command, "--batch %lld is over the limit of %d sequences", (long long)a->o.batch,
                           SP_MAXBATCH);
  return rc;
}

/* The run: batches, plans and what they were made from. */
typedef struct {
  sp_model m;
  sp_hw hw;
  sp_opts opt;
  int64_t *len;
  int *lines, n, batch, nb;
  sp_plan *ad, *st, *pb, *gr;
  bool *pb_ok, *gr_ok, st_ok;
  arena *a;
} sp_run;

/* check_fit: every sequence of the run fits some group, else name it. */
static bool check_fit(sp_run *r, const char *file) {
  sp_gtype *gt = xmalloc(sizeof(sp_gtype) * 512);
  int ngt = sp_gtypes(&r->hw, &r->m, gt, 512);
  double cap = 0;
  for (int g = 0; g < ngt; g++) cap = cap > gt[g].cap ? cap : gt[g].cap;
  free(gt);
  for (int i = 0; i < r->nb * r->batch; i++)
    if ((double)r->len[i] > cap) {
      diag d;
      diag_init(&d, file, NULL, 0);
      diag_error(&d, (srcloc){r->lines[i], 0},
                 "sequence of %lld tokens does not fit the cluster (one group holds at most %.0f tokens)",
                 (long long)r->len[i], cap);
      return false;
    }
  return true;
}

static void solve_all(sp_run *r) {
  size_t nb = (size_t)r->nb;
  r->st = ARENA_ARRAY(r->a, sp_plan, nb);
  r->pb = ARENA_ARRAY(r->a, sp_plan, nb);
  r->gr = ARENA_ARRAY(r->a, sp_plan, nb);
  r->pb_ok = ARENA_ARRAY(r->a, bool, nb);
  r->gr_ok = ARENA_ARRAY(r->a, bool, nb);
  const int64_t **bl = ARENA_ARRAY(r->a, const int64_t *, nb);
  int *bn = ARENA_ARRAY(r->a, int, nb);
  for (int b = 0; b < r->nb; b++) {
    const int64_t *L = r->len + (size_t)b * r->batch;
    bl[b] = L, bn[b] = r->batch;
    r->pb_ok[b] = sp_best_uniform(&r->hw, &r->m, L, r->batch, &r->opt, r->a, &r->pb[b]);
    r->gr_ok[b] = sp_greedy(&r->hw, &r->m, L, r->batch, &r->opt, r->a, &r->gr[b]);
  }
  r->st_ok = sp_static(&r->hw, &r->m, bl, bn, r->nb, &r->opt, r->a, r->st);
}

static const char *kname(const sp_gtype *g) {
  return g->size == 1 ? "single" : g->kind == SP_RING ? "ring" : "ulysses";
}

/* print_micro: one line per group class (size, kind, where) of a micro-batch. */
static void print_micro(const sp_run *r, const sp_micro *mb, int q) {
  printf("  micro-batch %d: %.3f s\n", q + 1, mb->time);
  bool *done = xcalloc((size_t)mb->ngrp + 1, 1);
  for (int g = 0; g < mb->ngrp; g++) {
    if (done[g]) continue;
    const sp_gtype *G = &mb->grp[g].g;
    int cnt = 0, seqs = 0;
    double tok = 0, tmax = 0;
    for (int h = g; h < mb->ngrp; h++) {
      const sp_gtype *H = &mb->grp[h].g;
      if (done[h] || H->size != G->size || H->kind != G->kind || H->intra != G->intra ||
          memcmp(H->nodes, G->nodes, sizeof H->nodes))
        continue;
      done[h] = true, cnt++;
      seqs += mb->grp[h].nseq, tok += mb->grp[h].tokens;
      if (mb->grp[h].time > tmax) tmax = mb->grp[h].time;
    }
    char where[96];
    if (G->intra >= 0) snprintf(where, sizeof where, "in a %s node", r->hw.t[G->intra].name);
    else {
      int k = snprintf(where, sizeof where, "across");
      for (int t = 0; t < r->hw.nt; t++)
        if (G->nodes[t]) k += snprintf(where + k, sizeof where - (size_t)k, " %d %s", G->nodes[t], r->hw.t[t].name);
    }
    printf("    %3d x %-3d %-7s %-24s %5d seqs %10.0f tokens  max %.3f s\n", cnt, G->size, kname(G), where,
           seqs, tok, tmax);
  }
  free(done);
}

static void print_batch(const sp_run *r, int b) {
  const sp_plan *p = &r->ad[b];
  double tok = 0;
  int64_t mx = 0;
  for (int i = 0; i < r->batch; i++) {
    int64_t l = r->len[(size_t)b * r->batch + i];
    tok += (double)l, mx = l > mx ? l : mx;
  }
  printf("batch %d: %d sequences, %.0f tokens (longest %lld), %d micro-batch%s\n", b + 1, r->batch, tok,
         (long long)mx, p->nmb, p->nmb == 1 ? "" : "es");
  for (int q = 0; q < p->nmb; q++) print_micro(r, &p->mb[q], q);
  printf("  %-26s %9.3f s\n", "adaptive (predicted)", p->step_time);
  if (r->st_ok)
    printf("  static sp=%-3d %-12s %9.3f s  x%.2f\n", r->st[b].degree, r->st[b].kind == SP_RING ? "ring" : "ulysses",
           r->st[b].step_time, r->st[b].step_time / p->step_time);
  if (r->pb_ok[b])
    printf("  best sp=%-3d %-14s %9.3f s  x%.2f\n", r->pb[b].degree, r->pb[b].kind == SP_RING ? "ring" : "ulysses",
           r->pb[b].step_time, r->pb[b].step_time / p->step_time);
  if (r->gr_ok[b])
    printf("  %-26s %9.3f s  x%.2f\n", "greedy longest-first", r->gr[b].step_time, r->gr[b].step_time / p->step_time);
  printf("  %-26s %9.3f s  (gap %.1f%%)\n", "lower bound (whole batch)", p->lower_bound,
         100 * (p->step_time / p->lower_bound - 1));
  printf("  %-26s %9.1f ms wall, %.1f ms CPU (start: %s)\n\n", "solve time", 1e3 * p->solve_time,
         1e3 * p->solve_cpu, sp_start_name(p->start));
}

static cJSON *batch_json(const sp_run *r, int b) {
  const sp_plan *p = &r->ad[b];
  const int64_t *L = r->len + (size_t)b * r->batch;
  cJSON *o = cJSON_CreateObject();
  double tok = 0;
  for (int i = 0; i < r->batch; i++) tok += (double)L[i];
  cJSON_AddNumberToObject(o, "sequences", r->batch);
  cJSON_AddNumberToObject(o, "first_line", r->lines[(size_t)b * r->batch]);
  cJSON_AddNumberToObject(o, "tokens", tok);
  cJSON_AddNumberToObject(o, "solve_time_s", p->solve_time);
  cJSON_AddNumberToObject(o, "solve_cpu_s", p->solve_cpu);
  cJSON_AddStringToObject(o, "start", sp_start_name(p->start));
  cJSON_AddNumberToObject(o, "lower_bound_s", p->lower_bound);
  cJSON_AddItemToObject(o, "adaptive", sp_plan_json(p, L, true));
  cJSON_AddItemToObject(o, "static", r->st_ok ? sp_plan_json(&r->st[b], L, false) : cJSON_CreateNull());
  cJSON_AddItemToObject(o, "per_batch_best", r->pb_ok[b] ? sp_plan_json(&r->pb[b], L, false) : cJSON_CreateNull());
  cJSON_AddItemToObject(o, "greedy", r->gr_ok[b] ? sp_plan_json(&r->gr[b], L, false) : cJSON_CreateNull());
  return o;
}

static int write_json(const sp_run *r, const char *path, const char *lengths) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "format", "sbpc-sp");
  cJSON_AddNumberToObject(root, "version", 1);
  cJSON_AddStringToObject(root, "model", r->m.name ? r->m.name : "");
  cJSON_AddStringToObject(root, "lengths", lengths);
  cJSON_AddNumberToObject(root, "devices", r->hw.ndev);
  cJSON *bs = cJSON_AddArrayToObject(root, "batches");
  for (int b = 0; b < r->nb; b++) cJSON_AddItemToArray(bs, batch_json(r, b));
  char *txt = cJSON_Print(root);
  cJSON_Delete(root);
  FILE *f = fopen(path, "w");
  bool ok = f && txt && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
  if (f && fclose(f) != 0) ok = false;
  free(txt);
  if (!ok) {
    sbpc_error("cannot write '%s'", path);
    return EXIT_BAD_INPUT;
  }
  return EXIT_OK;
}

/* setup: model dims, hardware, lengths and batch count; an exit status. */
static int setup(sp_run *r, const sp_args *a, drv_model *dm, const char **lengths) {
  const char *why = NULL;
  ir_cluster *c = drv_cluster(&a->o, &dm->p, r->a, NULL);
  if (!c) return EXIT_BAD_INPUT;
  if (!dm->p.g || !sp_model_from_graph(dm->p.g, &r->m, &why)) {
    diag_file_error(a->model, "%s", why ? why : "the file has no model");
    return EXIT_BAD_INPUT;
  }
  ir_dtype dt = dm->p.train.set ? dm->p.train.precision : IR_BF16;
  plan_calib cal;
  plan_calib_default(&cal);
  const char *calib = plan_calib_path(a->calib); /* --calibration, else $SBPC_CALIBRATION */
  if (calib && !plan_calib_load(calib, &cal)) return EXIT_BAD_INPUT;
  if (!sp_hw_init(&r->hw, c, &r->m, dt, &cal, r->a, &why)) {
    sbpc_error("%s", why);
    return EXIT_NO_PLAN;
  }
  *lengths = a->lengths ? a->lengths : dm->p.train.lengths;
  if (!*lengths) {
    sbpc_error("no lengths file (give --lengths FILE or train { lengths = \"...\" })");
    return EXIT_USAGE;
  }
  r->len = sp_read_lengths(*lengths, &r->n, &r->lines);
  if (!r->len) return EXIT_BAD_INPUT;
  int64_t want = a->o.batch ? a->o.batch : dm->p.train.global_batch > 0 ? dm->p.train.global_batch : 512;
  if (want > SP_MAXBATCH) {
    sbpc_note("batches of %lld sequences are planned as batches of %d", (long long)want, SP_MAXBATCH);
    want = SP_MAXBATCH;
  }
  r->batch = (int)want;
  if (r->batch > r->n) r->batch = r->n;
  if (!os_mem_check(sp_pack_bytes(r->batch, r->hw.ndev), "sbpc sp: packing a batch on every device"))
    return EXIT_BAD_INPUT;
  r->nb = (int)(a->steps < r->n / r->batch ? a->steps : r->n / r->batch);
  if (r->nb < a->steps)
    sbpc_note("%s holds %d sequences: %d batch%s of %d", *lengths, r->n, r->nb, r->nb == 1 ? "" : "es", r->batch);
  return check_fit(r, *lengths) ? EXIT_OK : EXIT_BAD_INPUT;
}

int cmd_sp(int argc, char **argv) {
  sp_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  drv_model dm;
  if ((rc = drv_model_load(a.model, &dm)) != EXIT_OK) return rc;
  sp_run r;
  memset(&r, 0, sizeof r);
  r.a = arena_new();
  r.opt = sp_opts_default();
  const char *lengths = NULL;
  rc = setup(&r, &a, &dm, &lengths);
  if (rc == EXIT_OK) r.ad = ARENA_ARRAY(r.a, sp_plan, r.nb);
  for (int b = 0; b < r.nb && rc == EXIT_OK; b++) {
    const char *why = NULL;
    if (!sp_solve(&r.hw, &r.m, r.len + (size_t)b * r.batch, r.batch, &r.opt, r.a, &r.ad[b], &why)) {
      sbpc_error("batch %d: %s", b + 1, why);
      rc = EXIT_NO_PLAN;
    }
  }
  if (rc == EXIT_OK) {
    solve_all(&r);
    printf("sbpc sp: %s on %d devices, %d batch%s of %d from %s\n\n", r.m.name ? r.m.name : "model", r.hw.ndev,
           r.nb, r.nb == 1 ? "" : "es", r.batch, lengths);
    for (int b = 0; b < r.nb; b++) print_batch(&r, b);
    if (a.json) rc = write_json(&r, a.json, lengths);
  }
  free(r.len);
  free(r.lines);
  arena_free(r.a);
  drv_model_free(&dm);
  return rc;
}
