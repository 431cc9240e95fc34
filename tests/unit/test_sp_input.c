/* test_sp_input.c — bucketing DP against brute force, the model dims read
 * off a graph, lengths files (good and bad), and `sbpc sp` end to end: the
 * table, the JSON, and the bad-input exit statuses and messages. */
#include "cu.h"
#include "planner/sp.h"
#include "planner/plan_int.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned seed = 777;
static unsigned rnd(void) {
  seed = seed * 1103515245u + 12345u;
  return (seed >> 8) & 0xffffff;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* brute: least padding over every way to cut len[0..n) into <= k runs. */
static double brute(const int64_t *len, int n, int k) {
  double best = 1e300;
  for (unsigned mask = 0; mask < (1u << (n - 1)); mask++) { /* bit i: cut after i */
    if (__builtin_popcount(mask) + 1 > k) continue;
    double pad = 0;
    int s = 0;
    for (int i = 0; i < n; i++)
      if (i == n - 1 || (mask >> i & 1)) {
        for (int j = s; j <= i; j++) pad += (double)(len[i] - len[j]);
        s = i + 1;
      }
    if (pad < best) best = pad;
  }
  return best;
}

static void bucket_vs_brute(void) {
  for (int it = 0; it < 300; it++) {
    int n = 1 + (int)(rnd() % 11), k = 1 + (int)(rnd() % 5), end[16];
    int64_t len[12];
    for (int i = 0; i < n; i++) len[i] = 1 + rnd() % 5000;
    qsort(len, (size_t)n, sizeof len[0], cmp64);
    double pad;
    int nb = sp_bucket(len, n, k, end, &pad);
    CU_ASSERT(nb >= 1 && nb <= k && nb <= n);
    CU_ASSERT_DOUBLE_EQUAL(pad, brute(len, n, k), 1e-6);
    /* the reported ends reproduce the padding */
    double p2 = 0;
    for (int b = 0, s = 0; b < nb; s = end[b++]) {
      CU_ASSERT(end[b] > s);
      for (int j = s; j < end[b]; j++) p2 += (double)(len[end[b] - 1] - len[j]);
    }
    CU_ASSERT_EQUAL(end[nb - 1], n);
    CU_ASSERT_DOUBLE_EQUAL(p2, pad, 1e-6);
  }
}

/* A GPT-like graph by hand: embedding [V,H], 3 layers of one param + attention. */
static ir_graph *tiny_graph(void) {
  ir_graph *g = ir_graph_new("tiny");
  ir_tensor t = ir_tensor_init("wte", IR_T_PARAM, IR_F32);
  t.rank = 2, t.shape[0] = ir_const(1000), t.shape[1] = ir_const(64);
  ir_ref wte = ir_tensor_add(g, &t);
  ir_tensor ids = ir_tensor_init("ids", IR_T_INPUT, IR_I32);
  ids.rank = 2, ids.shape[0] = (ir_dim){1, 1, 0}, ids.shape[1] = (ir_dim){1, 0, 1};
  ir_ref rid = ir_tensor_add(g, &ids);
  ir_tensor x = ir_tensor_init("x", IR_T_ACT, IR_F32);
  ir_ref rx = ir_tensor_add(g, &x);
  ir_op em = ir_op_init(IR_OP_EMBEDDING);
  em.nin = 2, em.in[0] = rid, em.in[1] = wte, em.nout = 1, em.out[0] = rx;
  ir_op_add(g, &em);
  int blk = ir_block_add(g, "h", 3);
  for (int l = 0; l < 3; l++) {
    ir_tensor w = ir_tensor_init("w", IR_T_PARAM, IR_F32);
    w.rank = 2, w.shape[0] = ir_const(64), w.shape[1] = ir_const(192);
    w.block = blk, w.layer = l;
    ir_tensor_add(g, &w);
    ir_tensor y = ir_tensor_init("y", IR_T_ACT, IR_F32);
    y.block = blk, y.layer = l;
    ir_ref ry = ir_tensor_add(g, &y);
    ir_op at = ir_op_init(IR_OP_ATTENTION);
    at.nin = 1, at.in[0] = rx, at.nout = 1, at.out[0] = ry, at.at.heads = 4, at.block = blk, at.layer = l;
    ir_op_add(g, &at);
  }
  return g;
}

static void model_from_graph(void) {
  ir_graph *g = tiny_graph();
  sp_model m;
  const char *why = NULL;
  CU_ASSERT_FATAL(sp_model_from_graph(g, &m, &why));
  CU_ASSERT_EQUAL(m.layers, 3);
  CU_ASSERT_EQUAL(m.hidden, 64);
  CU_ASSERT_EQUAL(m.vocab, 1000);
  CU_ASSERT_EQUAL(m.heads, 4);
  CU_ASSERT_EQUAL(m.kv_heads, 4);
  CU_ASSERT_DOUBLE_EQUAL(m.layer_params, 64 * 192, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(m.params, 64000 + 3 * 64 * 192, 1e-9);
  ir_graph_free(g);
  ir_graph *e = ir_graph_new("empty");
  CU_ASSERT(!sp_model_from_graph(e, &m, &why));
  CU_ASSERT(why != NULL);
  ir_graph_free(e);
}

static char *tmp_with(const char *text) {
  static char path[4][64];
  static int k;
  char *p = path[k++ & 3];
  snprintf(p, sizeof path[0], "/tmp/sp_len_%d_%d.txt", (int)getpid(), k);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
  return p;
}

static void lengths_files(void) {
  int n, *lines;
  int64_t *v = sp_read_lengths(tmp_with("# comment\n10\n\n  20\r\n30\n"), &n, &lines);
  CU_ASSERT_FATAL(v != NULL);
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_EQUAL(v[2], 30);
  CU_ASSERT_EQUAL(lines[0], 2);
  CU_ASSERT_EQUAL(lines[1], 4);
  free(v);
  free(lines);
  const char *bad[] = {"", "\n# only a comment\n", "5\n0\n", "5\n-3\n", "abc\n", "12x\n", "1 2\n",
                       "99999999999999999999999\n"};
  fflush(stderr);
  int saved = dup(2), nul = open("/dev/null", O_WRONLY);
  dup2(nul, 2);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v = sp_read_lengths(tmp_with(bad[i]), &n, &lines);
    CU_ASSERT(v == NULL);
    CU_ASSERT_EQUAL(n, 0);
  }
  CU_ASSERT(sp_read_lengths("/nonexistent/lengths.txt", &n, &lines) == NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(nul);
}

/* run: the output (stdout and stderr) and exit status of a shell command. */
static int run(const char *cmd, char *out, size_t n) {
  char full[2048];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t k = fread(out, 1, n - 1, p);
  out[k] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void cli(void) {
  const char *sbpc = getenv("SBPC");
  static char out[1 << 16];
  char cmd[1536];
  const char *model = cu_src("examples/gpt2.sbp");
  snprintf(cmd, sizeof cmd, "%s sp %s --cluster dgx-a100:1 --lengths %s --batch 48 --steps 2 --json /tmp/sp_%d.json",
           sbpc, model, cu_src("tests/data/lengths/lognormal-2000.txt"), (int)getpid());
  CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 0);
  CU_ASSERT(strstr(out, "batch 2: 48 sequences") != NULL);
  CU_ASSERT(strstr(out, "static sp=") != NULL);
  CU_ASSERT(strstr(out, "lower bound (whole batch)") != NULL);
  char path[64];
  snprintf(path, sizeof path, "/tmp/sp_%d.json", (int)getpid());
  FILE *f = fopen(path, "r");
  CU_ASSERT_FATAL(f != NULL);
  static char js[1 << 20];
  size_t k = fread(js, 1, sizeof js - 1, f);
  js[k] = 0;
  fclose(f);
  remove(path);
  cJSON *root = cJSON_Parse(js);
  CU_ASSERT_FATAL(root != NULL);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(root, "format")->valuestring, "sbpc-sp");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(root, "version")->valueint, 1);
  cJSON *bs = cJSON_GetObjectItem(root, "batches");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(bs), 2);
  cJSON *b0 = cJSON_GetArrayItem(bs, 0);
  const char *keys[] = {"sequences", "tokens", "solve_time_s", "solve_cpu_s", "start", "lower_bound_s",
                        "adaptive", "static", "per_batch_best", "greedy"};
  for (int i = 0; i < 10; i++) CU_ASSERT(cJSON_GetObjectItem(b0, keys[i]) != NULL);
  cJSON *ad = cJSON_GetObjectItem(b0, "adaptive");
  cJSON *g0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(ad, "micro_batches"), 0),
                                                     "groups"), 0);
  const char *gk[] = {"size", "kind", "devices", "sequences", "time_s", "cu_seqlens"};
  for (int i = 0; i < 6; i++) CU_ASSERT(g0 && cJSON_GetObjectItem(g0, gk[i]) != NULL);
  CU_ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(b0, "static"), "sp") != NULL);
  int seqs = 0;
  cJSON *mb, *gr;
  cJSON_ArrayForEach(mb, cJSON_GetObjectItem(ad, "micro_batches"))
  cJSON_ArrayForEach(gr, cJSON_GetObjectItem(mb, "groups")) seqs += cJSON_GetArraySize(cJSON_GetObjectItem(gr, "sequences"));
  CU_ASSERT_EQUAL(seqs, 48);
  cJSON_Delete(root);

  /* bad inputs: located errors, exit 1 */
  struct {
    const char *text, *want;
  } bad[] = {
      {"", "no sequence lengths"},
      {"100\n0\n", ":2:1: error: sequence length must be positive"},
      {"100\n  -7\n", ":2:3: error: sequence length must be positive"},
      {"100\n200\nabc\n", ":3:1: error: expected a sequence length"},
      {"100\n200\n900000000\n", ":3: error: sequence of 900000000 tokens does not fit"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(cmd, sizeof cmd, "%s sp %s --cluster dgx-a100:1 --lengths %s", sbpc, model, tmp_with(bad[i].text));
    CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 1);
    CU_ASSERT(strstr(out, bad[i].want) != NULL);
    if (!strstr(out, bad[i].want)) printf("\n  got: %s", out);
  }
  snprintf(cmd, sizeof cmd, "%s sp %s --cluster dgx-a100:1 --steps 0 --lengths x", sbpc, model);
  CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 2);
  /* --calibration: a slow all-to-all inside the node makes the plan slower; a bad file is exit 1 */
  const char *lens = cu_src("tests/data/lengths/lognormal-2000.txt");
  double t[2];
  for (int k = 0; k < 2; k++) {
    const char *cal = tmp_with("{\"format\": \"sbpc-calibration\", \"collectives\": {\"all_to_all\": "
                               "[{\"n\": 2, \"placement\": \"intra\", \"bus_bw\": 1e8}], \"send_recv\": "
                               "[{\"n\": 2, \"placement\": \"intra\", \"bus_bw\": 1e8}]}}");
    snprintf(cmd, sizeof cmd, "%s sp %s --cluster dgx-a100:1 --lengths %s --batch 48 %s%s", sbpc, model, lens,
             k ? "--calibration " : "", k ? cal : "");
    CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 0);
    const char *at = strstr(out, "adaptive (predicted)");
    t[k] = at ? atof(at + strlen("adaptive (predicted)")) : 0;
  }
  CU_ASSERT(t[0] > 0 && t[1] > t[0]);
  snprintf(cmd, sizeof cmd, "%s sp %s --cluster dgx-a100:1 --lengths %s --calibration %s", sbpc, model, lens,
           tmp_with("{\"format\": \"sbpc-calibration\", \"collectives\": {\"all_to_all\": 3}}"));
  CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 1);
  CU_ASSERT(strstr(out, "error: 'collectives.all_to_all' must be an array") != NULL);
}

/* A calibration with all-to-all and send/recv by group size and placement:
 * read (good and bad), the SP cost of a group follows it (bus bandwidth of
 * its kind, size and placement, interpolated in log n; latency; the fixed
 * cost), and the planner's all-to-all and send/recv use the table of the
 * link's placement. */
static void calibration(void) {
  const char *good = "{\"format\": \"sbpc-calibration\", \"version\": 1, \"collectives\": {"
                     "\"group_fixed_s\": 0.004,"
                     "\"all_to_all\": [{\"n\": 16, \"placement\": \"inter\", \"bus_bw\": 4e9, \"alpha_s\": 1e-5},"
                     "                 {\"n\": 64, \"placement\": \"inter\", \"bus_bw\": 1e9, \"alpha_s\": 4e-5},"
                     "                 {\"n\": 8, \"placement\": \"intra\", \"bus_bw\": 1e11}],"
                     "\"send_recv\": [{\"n\": 16, \"placement\": \"inter\", \"bus_bw\": 2e9}]}}";
  plan_calib c;
  plan_calib_default(&c);
  char err[256];
  CU_ASSERT_FATAL(plan_calib_parse(good, strlen(good), &c, err, sizeof err));
  CU_ASSERT_EQUAL(c.a2a[PLAN_INTER].cnt, 2);
  CU_ASSERT_EQUAL(c.a2a[PLAN_INTRA].cnt, 1);
  CU_ASSERT_EQUAL(c.p2p[PLAN_INTER].cnt, 1);
  CU_ASSERT_DOUBLE_EQUAL(c.group_fixed_s, 0.004, 1e-15);
  double bw, al;
  CU_ASSERT(plan_coll_interp(c.a2a[1].n, c.a2a[1].bw, c.a2a[1].alpha, 2, 32, &bw, &al));
  CU_ASSERT_DOUBLE_EQUAL(bw, 2.5e9, 1); /* halfway in log n */
  CU_ASSERT_DOUBLE_EQUAL(al, 2.5e-5, 1e-12);
  CU_ASSERT(plan_coll_interp(c.a2a[0].n, c.a2a[0].bw, c.a2a[0].alpha, 1, 4, &bw, &al) && al < 0);

  /* SP: a 16-device Ulysses group across nodes at the measured 4 GB/s */
  sp_model m = sp_model_gpt("g", 32, 4096, 32, 16384, 50257);
  ir_devtype d = {0};
  d.name = "a100";
  d.peak_flops[IR_BF16] = 312e12;
  d.mem_bytes = 80.0 * (1 << 30);
  ir_nodetype nt = {"dgx", 0, 8, "nvswitch", 300e9, 3e-6, "ib", 8, 25e9, 5e-6};
  int cnt = 8;
  ir_cluster cl = {"c", &d, 1, &nt, 1, &cnt, {0, 0}};
  arena *a = arena_new();
  sp_hw h0, h1;
  const char *why;
  CU_ASSERT_FATAL(sp_hw_init(&h0, &cl, &m, IR_BF16, NULL, a, &why));
  CU_ASSERT_FATAL(sp_hw_init(&h1, &cl, &m, IR_BF16, &c, a, &why));
  int two[SP_MAXNT] = {2};
  sp_gtype u0, u1, r1, i1;
  u0.size = u1.size = r1.size = 0, i1.size = 8;
  CU_ASSERT(sp_gtype_make(&u0, &h0, &m, SP_ULYSSES, -1, two) && sp_gtype_make(&u1, &h1, &m, SP_ULYSSES, -1, two));
  CU_ASSERT(sp_gtype_make(&r1, &h1, &m, SP_RING, -1, two) && sp_gtype_make(&i1, &h1, &m, SP_ULYSSES, 0, NULL));
  CU_ASSERT_DOUBLE_EQUAL(u1.cbw, 4e9, 1);
  CU_ASSERT_DOUBLE_EQUAL(r1.cbw, 2e9, 1);
  CU_ASSERT_DOUBLE_EQUAL(i1.cbw, 1e11, 1);
  CU_ASSERT_DOUBLE_EQUAL(u1.c0, 0.004 + 32 * 8 * 1e-5, 1e-12);
  double L = 32768, share = L / 16, bytes = share * (2 * 4096 + 2 * 4096) * 2;
  double a2a = bytes * 15 / 16 / 4e9; /* one all-to-all: T(n-1)/n at the bus bandwidth */
  CU_ASSERT_DOUBLE_EQUAL(sp_seq_time(&m, &u1, L) - sp_seq_time(&m, &u0, L),
                         2 * 32 * (a2a - bytes * 15 / 16 * 8 / 15 / 25e9), 1e-9);

  /* the planner: all-to-all across nodes from the inter table, inside from intra */
  plan_link in = {300e9, 3e-6, PLAN_INTRA}, across = {25e9, 5e-6, PLAN_INTER};
  CU_ASSERT_DOUBLE_EQUAL(plan_coll_time(&c, IR_OP_ALL_TO_ALL, 64e6, 16, across), 15 * 1e-5 + 64e6 * 15 / 256 / 4e9,
                         1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_coll_time(&c, IR_OP_ALL_TO_ALL, 64e6, 8, in), 7 * 3e-6 + 64e6 * 7 / 64 / 1e11, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_coll_time(&c, IR_OP_SEND_RECV, 1e6, 2, across), 5e-6 + 1e6 / 2e9, 1e-12);

  const char *bad[][2] = {
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"all_to_all\":[{\"n\":8,\"placement\":\"node\",\"bus_bw\":1e9}]}}",
       "placement"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"all_to_all\":[{\"n\":8,\"placement\":\"intra\",\"bus_bw\":1e9},"
       "{\"n\":8,\"placement\":\"intra\",\"bus_bw\":1e9}]}}",
       "collectives.all_to_all[1].n"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"send_recv\":[{\"n\":1,\"placement\":\"intra\",\"bus_bw\":1e9}]}}",
       "collectives.send_recv[0].n"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"send_recv\":[{\"n\":4,\"placement\":\"inter\"}]}}",
       "bus_bw"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"all_to_all\":{}}}", "must be an array"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"group_fixed_s\":-1}}", "group_fixed_s"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    plan_calib t = c;
    CU_ASSERT(!plan_calib_parse(bad[i][0], strlen(bad[i][0]), &t, err, sizeof err));
    CU_ASSERT(strstr(err, bad[i][1]) != NULL);
    if (!strstr(err, bad[i][1])) printf("\n  got: %s", err);
    CU_ASSERT(!memcmp(&t, &c, sizeof c)); /* untouched */
  }
  arena_free(a);
}

static void json_section(void) {
  ir_graph *g = tiny_graph();
  ir_devtype d = {0};
  d.name = "gpu";
  d.peak_flops[IR_BF16] = 100e12;
  d.mem_bytes = 4e9;
  ir_nodetype nt = {"node", 0, 8, "link", 100e9, 3e-6, "nic", 1, 25e9, 5e-6};
  int cnt = 2;
  ir_cluster c = {"c", &d, 1, &nt, 1, &cnt, {0, 0}};
  ir_train tr = {0};
  tr.global_batch = 40;
  tr.precision = IR_BF16;
  cJSON *plan = cJSON_CreateObject();
  CU_ASSERT(sp_json_section(plan, g, &c, &tr, cu_src("tests/data/lengths/bimodal-2000.txt"), NULL));
  cJSON *sp = cJSON_GetObjectItem(plan, "sp");
  CU_ASSERT_FATAL(sp != NULL);
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(sp, "sequences")->valueint, 40);
  cJSON *ad = cJSON_GetObjectItem(sp, "adaptive");
  CU_ASSERT(ad && cJSON_GetObjectItem(ad, "step_time_s")->valuedouble >= cJSON_GetObjectItem(sp, "lower_bound_s")->valuedouble);
  cJSON_Delete(plan);
  ir_graph_free(g);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("sp_input", NULL, NULL);
  CU_ADD(s, bucket_vs_brute);
  CU_ADD(s, model_from_graph);
  CU_ADD(s, lengths_files);
  CU_ADD(s, json_section);
  CU_ADD(s, calibration);
  if (getenv("SBPC")) CU_ADD(s, cli);
}
