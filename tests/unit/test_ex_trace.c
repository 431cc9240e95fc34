/* test_ex_trace.c — `sbpc trace` output is a valid Perfetto trace: cJSON
 * parses it, every track has a name and slices, slices on one (track, lane)
 * never overlap, each stage runs every micro-batch's forward and backward
 * once per virtual chunk, and the expected slice kinds (forward, backward,
 * recompute, bubble, collectives, p2p) are present. */
#include "cu.h"
#include "export/export.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  double ts, dur;
  int pid, tid;
} ev;

static int by_track(const void *a, const void *b) {
  const ev *x = a, *y = b;
  if (x->pid != y->pid) return x->pid - y->pid;
  if (x->tid != y->tid) return x->tid - y->tid;
  return (x->ts > y->ts) - (x->ts < y->ts);
}

static cJSON *trace_of(const char *rel, int per_device, sbpc_plan **pp) {
  char err[256];
  sbpc_plan *p = sbpc_plan_read(cu_src(rel), err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ex_ctx c = {.out = f, .plan = rel};
  ex_trace_opts o = {per_device, 64};
  CU_ASSERT_EQUAL(ex_trace(p, &o, &c), 0);
  fclose(f);
  cJSON *j = cJSON_ParseWithLength(buf, len);
  free(buf);
  *pp = p;
  return j;
}

static int count_cat(const cJSON *evs, const char *cat, int pid) {
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, evs) {
    const cJSON *c = cJSON_GetObjectItem(e, "cat");
    if (c && !strcmp(c->valuestring, cat) && cJSON_GetObjectItem(e, "pid")->valueint == pid) n++;
  }
  return n;
}

/* check: the structural properties; returns the number of named tracks. */
static int check(const cJSON *j) {
  const cJSON *evs = cJSON_GetObjectItem(j, "traceEvents");
  CU_ASSERT_FATAL(cJSON_IsArray(evs));
  int n = cJSON_GetArraySize(evs), nx = 0, tracks = 0;
  ev *v = calloc((size_t)n, sizeof *v);
  const cJSON *e;
  cJSON_ArrayForEach(e, evs) {
    const char *ph = cJSON_GetObjectItem(e, "ph")->valuestring;
    if (!strcmp(ph, "M") && !strcmp(cJSON_GetObjectItem(e, "name")->valuestring, "process_name")) tracks++;
    if (strcmp(ph, "X")) continue;
    v[nx++] = (ev){cJSON_GetObjectItem(e, "ts")->valuedouble, cJSON_GetObjectItem(e, "dur")->valuedouble,
                   cJSON_GetObjectItem(e, "pid")->valueint, cJSON_GetObjectItem(e, "tid")->valueint};
    CU_ASSERT(v[nx - 1].dur >= 0);
    CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(e, "name"));
  }
  qsort(v, (size_t)nx, sizeof *v, by_track);
  int overlaps = 0;
  for (int i = 1; i < nx; i++)
    if (v[i].pid == v[i - 1].pid && v[i].tid == v[i - 1].tid && v[i].ts < v[i - 1].ts + v[i - 1].dur - 1e-3)
      overlaps++;
  CU_ASSERT_EQUAL(overlaps, 0);
  CU_ASSERT(nx > 0);
  free(v);
  return tracks;
}

static void tiny_per_device(void) {
  sbpc_plan *p;
  cJSON *j = trace_of("tests/export/gpt2-tiny-cpu8.json", -1, &p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(check(j), 8); /* 8 devices, a track each */
  const cJSON *evs = cJSON_GetObjectItem(j, "traceEvents");
  for (int d = 0; d < 8; d++) {
    CU_ASSERT_EQUAL(count_cat(evs, "forward", d), p->num_micro_batches);
    CU_ASSERT_EQUAL(count_cat(evs, "backward", d), p->num_micro_batches);
    CU_ASSERT_EQUAL(count_cat(evs, "recompute", d), p->num_micro_batches); /* full recompute */
    CU_ASSERT(count_cat(evs, "bubble", d) > 0);
    CU_ASSERT(count_cat(evs, "optimizer", d) == 0); /* the plan gives no optimizer time */
    CU_ASSERT(count_cat(evs, "all-reduce", d) > 0);
  }
  cJSON_Delete(j);
  sbpc_plan_free(p);
}

static void gpt3_per_stage_interleaved(void) {
  sbpc_plan *p;
  cJSON *j = trace_of("tests/export/gpt3-175b-dgx-a100-128.json", -1, &p);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(check(j), 8); /* 1024 devices: a track per stage */
  const cJSON *evs = cJSON_GetObjectItem(j, "traceEvents");
  for (int s = 0; s < 8; s++) {
    CU_ASSERT_EQUAL(count_cat(evs, "forward", s), p->num_micro_batches * p->vpp);
    CU_ASSERT_EQUAL(count_cat(evs, "backward", s), p->num_micro_batches * p->vpp);
    CU_ASSERT(count_cat(evs, "reduce-scatter", s) > 0);
    CU_ASSERT(count_cat(evs, "all-gather", s) > 0);
    CU_ASSERT_EQUAL(count_cat(evs, "dp-collective", s), 0); /* no dp_comm_s in the plan */
  }
  cJSON_Delete(j);
  sbpc_plan_free(p);
}

/* The simulated bubble of uniform stages matches (p-1)/(v*m) of the compute. */
static void bubble_matches_formula(void) {
  char err[256];
  const char *text =
      "{\"format\":\"sbpc-plan\",\"version\":1,\"model\":{\"name\":\"u\",\"layers\":8},"
      "\"cluster\":{\"devices\":4},\"parallel\":{\"dp\":1,\"tp\":1,\"pp\":4,\"vpp\":2,\"micro_batch\":1,"
      "\"num_micro_batches\":8},\"stages\":["
      "{\"devices\":[0],\"layers\":[0,4],\"layers_chunks\":[[0,0],[4,4]]},"
      "{\"devices\":[1],\"layers\":[1,5],\"layers_chunks\":[[1,1],[5,5]]},"
      "{\"devices\":[2],\"layers\":[2,6],\"layers_chunks\":[[2,2],[6,6]]},"
      "{\"devices\":[3],\"layers\":[3,7],\"layers_chunks\":[[3,3],[7,7]]}],"
      "\"predicted\":{\"breakdown\":{\"compute_s\":1.6,\"pp_comm_s\":0}}}";
  sbpc_plan *p = sbpc_plan_parse(text, strlen(text), "u", err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  int n;
  double step;
  ex_ctx c = {.plan = "u"};
  ex_slice *s = ex_schedule(p, &n, &step, &c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  /* interleaved 1F1B: step = compute * (1 + (p-1)/(v*m)) = 1.6 * (1 + 3/16) */
  CU_ASSERT_DOUBLE_EQUAL(step, 1.6 * (1 + 3.0 / 16), 1e-9);
  free(s);
  sbpc_plan_free(p);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("ex_trace", NULL, NULL);
  CU_ADD(s, tiny_per_device);
  CU_ADD(s, gpt3_per_stage_interleaved);
  CU_ADD(s, bubble_matches_formula);
}
