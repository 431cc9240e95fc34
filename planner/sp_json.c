/* sp_json.c — lengths files in, "sbpc-sp" JSON out (docs/sp-format.md).
 *
 * A lengths file has one positive integer per line; blank lines and lines
 * starting with '#' are skipped, and a '#' after a length (and a space)
 * starts a comment. Anything else is an error located at its line and at the
 * column of the first character that is not part of a length (cproc style, util/diag.h). The JSON of a plan lists its
 * micro-batches and in each its groups: size, kind, device ids, the batch
 * positions of its sequences, their cumulative lengths (cu_seqlens, for
 * variable-length attention) and predicted time. sp_json_section is the
 * planner's hook: the plan JSON gains an "sp" object when the training setup
 * names a lengths file. */
#include "planner/sp.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SP_MAX_LENGTH 1000000000000LL /* 1e12 tokens: beyond any cluster */

/* parse_line: the length on line [p, e) or an error (returns -1). */
static int64_t parse_line(diag *d, const char *src, const char *p, const char *e, int line) {
  const char *q = p;
  while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
  if (q == e || *q == '#') return 0;
  srcloc loc = {line, (int)(q - p) + 1};
  const char *t = q;
  int neg = 0;
  if (*t == '-' || *t == '+') neg = *t++ == '-';
  int64_t v = 0;
  const char *digits = t;
  while (t < e && isdigit((unsigned char)*t) && v <= SP_MAX_LENGTH) v = v * 10 + (*t++ - '0');
  const char *r = t;
  while (r < e && (*r == ' ' || *r == '\t' || *r == '\r')) r++;
  (void)src;
  bool comment = r < e && *r == '#' && r > t; /* "512  # note" */
  if (t == digits || (r != e && !comment)) {
    const char *at = t == digits ? q : r; /* the first character that is not a length */
    int w = 0;
    while (at + w < e && w < 20 && !isspace((unsigned char)at[w])) w++;
    srcloc where = {line, (int)(at - p) + 1};
    if (t == digits) diag_error(d, where, "expected a sequence length (a positive integer), found '%.*s'", w, at);
    else diag_error(d, where, "unexpected '%.*s' after the sequence length", w, at);
    return -1;
  }
  if (neg || v == 0) {
    diag_error(d, loc, "sequence length must be positive, found %s%lld", neg ? "-" : "", (long long)v);
    return -1;
  }
  if (v > SP_MAX_LENGTH) {
    diag_error(d, loc, "sequence length is too large");
    return -1;
  }
  return v;
}

int64_t *sp_read_lengths(const char *path, int *n, int **lines) {
  size_t len;
  char *src = read_file(path, (size_t)1 << 30, &len);
  *n = 0;
  *lines = NULL;
  if (!src) return NULL;
  diag d;
  diag_init(&d, path, src, len);
  size_t cap = 1024;
  int64_t *v = xmalloc(cap * sizeof *v);
  int *ln = xmalloc(cap * sizeof *ln);
  if (memchr(src, 0, len)) diag_error(&d, (srcloc){0, 0}, "binary data in a lengths file");
  int line = 1;
  for (const char *p = src; d.errors == 0 && p < src + len; line++) {
    const char *e = memchr(p, '\n', (size_t)(src + len - p));
    if (!e) e = src + len;
    int64_t x = parse_line(&d, src, p, e, line);
    if (x > 0) {
      if ((size_t)*n == cap) cap *= 2, v = xrealloc(v, cap * sizeof *v), ln = xrealloc(ln, cap * sizeof *ln);
      v[*n] = x, ln[(*n)++] = line;
    }
    p = e + 1;
  }
  if (d.errors == 0 && *n == 0) diag_error(&d, (srcloc){0, 0}, "no sequence lengths in the file");
  free(src);
  if (d.errors) {
    free(v);
    free(ln);
    *n = 0;
    return NULL;
  }
  *lines = ln;
  return v;
}

static const char *kind_name(int k) { return k == SP_RING ? "ring" : "ulysses"; }

const char *sp_start_name(int s) {
  return s == SP_START_GREEDY ? "greedy" : s == SP_START_DEGREE ? "best-degree" : "split";
}

static cJSON *group_json(const sp_group *g, const int64_t *len) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "size", g->g.size);
  cJSON_AddStringToObject(o, "kind", g->g.size == 1 ? "none" : kind_name(g->g.kind));
  cJSON_AddItemToObject(o, "devices", cJSON_CreateIntArray(g->dev, g->ndev));
  cJSON_AddItemToObject(o, "sequences", cJSON_CreateIntArray(g->seq, g->nseq));
  cJSON *cu = cJSON_AddArrayToObject(o, "cu_seqlens");
  double acc = 0;
  cJSON_AddItemToArray(cu, cJSON_CreateNumber(0));
  for (int i = 0; i < g->nseq; i++) acc += (double)len[g->seq[i]], cJSON_AddItemToArray(cu, cJSON_CreateNumber(acc));
  cJSON_AddNumberToObject(o, "tokens", g->tokens);
  cJSON_AddNumberToObject(o, "time_s", g->time);
  return o;
}

cJSON *sp_plan_json(const sp_plan *p, const int64_t *len, bool with_groups) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "step_time_s", p->step_time);
  if (p->degree > 0) {
    cJSON_AddNumberToObject(o, "sp", p->degree);
    cJSON_AddStringToObject(o, "kind", kind_name(p->kind));
  }
  if (!with_groups) return o;
  cJSON *mbs = cJSON_AddArrayToObject(o, "micro_batches");
  for (int q = 0; q < p->nmb; q++) {
    cJSON *mb = cJSON_CreateObject(), *gs = cJSON_AddArrayToObject(mb, "groups");
    cJSON_AddNumberToObject(mb, "time_s", p->mb[q].time);
    for (int g = 0; g < p->mb[q].ngrp; g++) cJSON_AddItemToArray(gs, group_json(&p->mb[q].grp[g], len));
    cJSON_AddItemToArray(mbs, mb);
  }
  return o;
}

bool sp_json_section(cJSON *plan, const ir_graph *g, const ir_cluster *c,
                     const ir_train *tr, const char *lengths_path, const plan_calib *cal) {
  sp_model m;
  sp_hw hw;
  const char *why = NULL;
  int n = 0, *lines = NULL;
  arena *a = arena_new();
  int64_t *len = sp_read_lengths(lengths_path, &n, &lines);
  bool ok = len != NULL;
  if (ok && !sp_model_from_graph(g, &m, &why)) ok = false;
  if (ok && !why && !sp_hw_init(&hw, c, &m, tr->precision, cal, a, &why)) ok = false;
  if (ok) {
    int b = tr->global_batch > 0 && tr->global_batch < n ? (int)tr->global_batch : n;
    if (b > SP_MAXBATCH) b = SP_MAXBATCH; /* the first SP_MAXBATCH sequences stand for the batch */
    sp_opts o = sp_opts_default();
    sp_plan ad, st;
    ok = sp_solve(&hw, &m, len, b, &o, a, &ad, &why);
    if (ok) {
      cJSON *sp = cJSON_AddObjectToObject(plan, "sp");
      cJSON_AddStringToObject(sp, "lengths", lengths_path);
      cJSON_AddNumberToObject(sp, "sequences", b);
      cJSON_AddNumberToObject(sp, "solve_time_s", ad.solve_time);
      cJSON_AddNumberToObject(sp, "solve_cpu_s", ad.solve_cpu);
      cJSON_AddStringToObject(sp, "start", sp_start_name(ad.start));
      cJSON_AddNumberToObject(sp, "lower_bound_s", ad.lower_bound);
      cJSON_AddItemToObject(sp, "adaptive", sp_plan_json(&ad, len, true));
      if (sp_best_uniform(&hw, &m, len, b, &o, a, &st))
        cJSON_AddItemToObject(sp, "static", sp_plan_json(&st, len, false));
    }
  }
  if (why) sbpc_error("%s: %s", lengths_path, why);
  free(len);
  free(lines);
  arena_free(a);
  return ok;
}
