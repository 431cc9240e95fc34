/* test_sp_input.c — bucketing DP against brute force, the model dims read
 * off a graph, lengths files (good and bad), and `sbpc sp` end to end: the
 * table, the JSON, and the bad-input exit statuses and messages. */
#include "cu.h"
#include "planner/sp.h"
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
  if (getenv("SBPC")) CU_ADD(s, cli);
}
