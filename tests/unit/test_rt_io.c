/* test_rt_io.c — the runtime's file formats and helpers: the token data
 * loader (sample cutting, cyclic order, refusals), the indexed dataset and
 * packed samples (document starts, ignored labels, --eos), safetensors (round trip,
 * truncated file, a header claiming 10 GB, non-F32), layout-independent
 * initialisation, AdamW against a hand-computed PyTorch step, and a compiled
 * program (1F1B buffer counts, arena offsets never shared by live
 * instances, written and read back). */
#include "cu.h"
#include "ir/autodiff.h"
#include "lower/lower.h"
#include "runtime/rt_internal.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tpath(const char *name) {
  static char buf[8][128];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(p, 1, n, f);
  fclose(f);
}

#include <fcntl.h>
static int saved_fd = -1;
static void quiet(void) { /* expected error messages go to /dev/null */
  fflush(stderr);
  saved_fd = dup(2);
  int fd = open("/dev/null", O_WRONLY);
  dup2(fd, 2);
  close(fd);
}
static void loud(void) {
  fflush(stderr);
  dup2(saved_fd, 2);
  close(saved_fd);
}

static void test_data(void) {
  int32_t tok[23];
  for (int i = 0; i < 23; i++) tok[i] = i; /* 2 samples of S+1 = 10, 3 left over */
  write_bytes(tpath("d.bin"), tok, sizeof tok);
  rt_data d;
  CU_ASSERT_FATAL(rt_data_open(&d, tpath("d.bin"), 9, 100));
  CU_ASSERT_EQUAL(d.nsamples, 2);
  int32_t ids[27], lab[27];
  rt_data_batch(&d, 1, 3, ids, lab); /* samples 1, 0, 1 (cyclic) */
  CU_ASSERT_EQUAL(ids[0], 10);
  CU_ASSERT_EQUAL(lab[0], 11);
  CU_ASSERT_EQUAL(lab[8], 19);
  CU_ASSERT_EQUAL(ids[9], 0);
  CU_ASSERT_EQUAL(ids[18], 10);
  rt_data_free(&d);
  quiet();
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("d.bin"), 9, 20));  /* id 20, 21, 22 >= vocab */
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("d.bin"), 30, 100)); /* shorter than one sample */
  write_bytes(tpath("odd.bin"), tok, 7);
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("odd.bin"), 1, 100));
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("none.bin"), 1, 100));
  loud();
}

static void put_le(unsigned char **p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) *(*p)++ = (unsigned char)(v >> (8 * i));
}

/* an MMIDIDX pair ix.idx / ix.bin: uint16 documents [1 2 3] [4 5] [6 7 8 9 10] */
static size_t write_indexed(unsigned code) {
  unsigned char idx[256], *p = idx;
  const uint16_t tok[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const int len[3] = {3, 2, 5};
  memcpy(p, "MMIDIDX\0\0", 9), p += 9;
  put_le(&p, 1, 8), put_le(&p, code, 1), put_le(&p, 3, 8), put_le(&p, 4, 8);
  for (int i = 0; i < 3; i++) put_le(&p, (uint64_t)len[i], 4);
  for (int i = 0, at = 0; i < 3; at += len[i++]) put_le(&p, (uint64_t)(2 * at), 8);
  for (int i = 0; i < 4; i++) put_le(&p, (uint64_t)i, 8);
  write_bytes(tpath("ix.idx"), idx, (size_t)(p - idx));
  write_bytes(tpath("ix.bin"), tok, sizeof tok); /* little-endian host */
  return (size_t)(p - idx);
}

static void test_indexed(void) {
  write_indexed(8);
  rt_data d;
  char prefix[128];
  CU_ASSERT(rt_idx_prefix(tpath("ix.bin"), prefix, sizeof prefix) && !strcmp(prefix, tpath("ix")));
  CU_ASSERT(rt_idx_prefix(tpath("ix"), prefix, sizeof prefix));
  CU_ASSERT_FALSE(rt_idx_prefix(tpath("d.bin"), prefix, sizeof prefix)); /* a flat file */
  CU_ASSERT_FATAL(rt_data_open(&d, tpath("ix.idx"), 4, 100));
  CU_ASSERT(d.idx && d.ntok == 10 && d.nsamples == 2 && rt_data_has_docs(&d));
  int32_t ids[8], lab[8], doc[8];
  rt_data_packed(&d, 0, 2, ids, lab, doc);
  const int32_t want_ids[8] = {1, 2, 3, 4, 6, 7, 8, 9}, want_lab[8] = {2, 3, -1, 5, 7, 8, 9, 10};
  const int32_t want_doc[8] = {0, 0, 0, 3, 0, 0, 0, 0};
  CU_ASSERT(!memcmp(ids, want_ids, sizeof ids) && !memcmp(lab, want_lab, sizeof lab) && !memcmp(doc, want_doc, sizeof doc));
  CU_ASSERT_EQUAL(rt_data_predicted(&d, 0, 2), 7);
  rt_data_free(&d);
  /* --eos on a flat file: 0 ends a document */
  const int32_t flat[5] = {5, 6, 0, 7, 8};
  write_bytes(tpath("e.bin"), flat, sizeof flat);
  CU_ASSERT_FATAL(rt_data_open(&d, tpath("e.bin"), 4, 100));
  CU_ASSERT_FALSE(rt_data_has_docs(&d));
  d.eos = 0;
  rt_data_packed(&d, 0, 1, ids, lab, doc);
  CU_ASSERT(lab[1] == 0 && lab[2] == -1 && lab[3] == 8 && doc[2] == 0 && doc[3] == 3);
  CU_ASSERT_EQUAL(rt_data_predicted(&d, 0, 1), 3);
  rt_data_free(&d);
  quiet();
  write_indexed(7); /* float32 */
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("ix"), 4, 100));
  write_indexed(8);
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("ix"), 4, 10)); /* id 10 >= vocab */
  CU_ASSERT_FALSE(rt_data_open(&d, tpath("ix"), 10, 100)); /* shorter than one sample */
  loud();
}

static void test_safetensors(void) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {-1, 0.5f};
  rt_st_tensor t[2] = {{"x.weight", 2, {2, 3}, a}, {"x.bias", 1, {2}, b}};
  CU_ASSERT_FATAL(rt_st_write(tpath("a.safetensors"), t, 2));
  CU_ASSERT(access(tpath("a.safetensors.tmp"), F_OK) != 0);
  rt_st *s = rt_st_read(tpath("a.safetensors"));
  CU_ASSERT_FATAL(s != NULL);
  CU_ASSERT_EQUAL(rt_st_count(s), 2);
  const rt_st_tensor *w = rt_st_find(s, "x.weight");
  CU_ASSERT_FATAL(w != NULL);
  CU_ASSERT_EQUAL(w->rank, 2);
  CU_ASSERT_EQUAL(w->shape[1], 3);
  CU_ASSERT_EQUAL(w->data[5], 6.0f);
  CU_ASSERT(rt_st_find(s, "nothing") == NULL);
  rt_st_free(s);
  /* truncated, a 10 GB claim, a non-F32 tensor: refused */
  char *f = read_file(tpath("a.safetensors"), 1 << 20, &(size_t){0});
  write_bytes(tpath("t.safetensors"), f, 40);
  free(f);
  const char *huge = "{\"w\":{\"dtype\":\"F32\",\"shape\":[50000,50000],\"data_offsets\":[0,10000000000]}}";
  const char *half = "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}      ";
  const char *hdrs[2] = {huge, half};
  for (int i = 0; i < 2; i++) {
    size_t n = strlen(hdrs[i]);
    unsigned char *buf = calloc(1, 8 + n + 64);
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)n >> (8 * k));
    memcpy(buf + 8, hdrs[i], n);
    write_bytes(tpath("h.safetensors"), buf, 8 + n + 64);
    free(buf);
    quiet();
    CU_ASSERT(rt_st_read(tpath("h.safetensors")) == NULL);
    loud();
  }
  quiet();
  CU_ASSERT(rt_st_read(tpath("t.safetensors")) == NULL);
  loud();
}

static void test_init(void) {
  float x[1000], y[1000];
  rt_init_param("h.0.attn.c_attn.weight", 2, x, 1000, 7);
  rt_init_param("h.0.attn.c_attn.weight", 2, y, 1000, 7);
  CU_ASSERT(memcmp(x, y, sizeof x) == 0);
  double m = 0, v = 0;
  for (int i = 0; i < 1000; i++) m += x[i], v += (double)x[i] * x[i];
  m /= 1000, v = v / 1000 - m * m;
  CU_ASSERT(fabs(m) < 0.005);
  CU_ASSERT(fabs(sqrt(v) - 0.02) < 0.003);
  rt_init_param("h.0.ln_1.weight", 1, x, 10, 7);
  CU_ASSERT_EQUAL(x[3], 1.0f);
  rt_init_param("h.0.ln_1.bias", 1, x, 10, 7);
  CU_ASSERT_EQUAL(x[3], 0.0f);
}

/* one AdamW step vs the formula of torch.optim.AdamW (step 1 and 2) */
static void test_adamw(void) {
  ir_graph *g = ir_graph_new("a");
  ir_tensor t = ir_tensor_init("p", IR_T_PARAM, IR_F32);
  t.rank = 1;
  t.shape[0] = ir_const(2);
  ir_ref r[7];
  for (int i = 0; i < 7; i++) r[i] = ir_tensor_add(g, &t);
  ir_op o = ir_op_init(IR_OP_ADAMW);
  o.nin = 4, o.nout = 3;
  for (int i = 0; i < 4; i++) o.in[i] = r[i];
  for (int i = 0; i < 3; i++) o.out[i] = r[4 + i];
  o.at.lr = 0.1, o.at.beta1 = 0.9, o.at.beta2 = 0.999, o.at.eps = 1e-8, o.at.weight_decay = 0.01;
  float p[2] = {1.0f, -2.0f}, gr[2] = {0.5f, -0.25f}, m[2] = {0, 0}, v[2] = {0, 0};
  void *in[4] = {p, gr, m, v}, *out[3] = {p, m, v};
  rt_kctx kc = {.step = 1, .tp = 1, .ce_ratio = 1.0, .sp = 1};
  CU_ASSERT(rt_kernel(g, &o, in, out, &kc));
  /* step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2: p -= lr*wd*p + lr*g/(|g|+eps) */
  CU_ASSERT(fabs(p[0] - (1.0 * (1 - 0.001) - 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-6);
  CU_ASSERT(fabs(p[1] - (-2.0 * (1 - 0.001) + 0.1)) < 1e-6);
  double p0 = p[0], m0 = m[0], v0 = v[0];
  kc.step = 2;
  CU_ASSERT(rt_kernel(g, &o, in, out, &kc));
  double m1 = 0.9 * m0 + 0.1 * 0.5, v1 = 0.999 * v0 + 0.001 * 0.25;
  double want = p0 * (1 - 0.001) - 0.1 / (1 - 0.81) * m1 / (sqrt(v1) / sqrt(1 - 0.999 * 0.999) + 1e-8);
  CU_ASSERT(fabs(p[0] - want) < 1e-6);
  ir_graph_free(g);
}

/* check_arena: no two register instances of a stage share a byte while both
 * live (their lifetimes in schedule positions overlap), and each instance
 * waits for every earlier instance that held one of its bytes. A view
 * (a reshape's output) lives in the bytes of the register it views, whose
 * lifetime covers the view's; an into_acc register has no bytes. */
static void check_arena(const fmt_stage *st, int M) {
  int n = st->nreg * M, bad = 0;
  int *pos = malloc(sizeof(int) * (size_t)(st->nact * M + 1)), *s0 = malloc(sizeof(int) * (size_t)n), *s1 = malloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < st->nsched; i++) pos[st->sched[i].actor * M + st->sched[i].micro] = i;
  for (int r = 0; r < st->nreg; r++)
    for (int m = 0; m < M; m++) {
      int a = pos[st->reg[r].producer * M + m], b = a;
      for (int c = 0; c < st->reg[r].ncons; c++) b = pos[st->reg[r].cons[c] * M + m] > b ? pos[st->reg[r].cons[c] * M + m] : b;
      s0[r * M + m] = a, s1[r * M + m] = b;
    }
  for (int r = st->nreg - 1; r >= 0; r--) /* views: higher indices than what they view */
    for (int m = 0; m < M && st->reg[r].view >= 0; m++) {
      int v = st->reg[r].view * M + m;
      CU_ASSERT(st->reg[r].view < r && st->reg[r].offset[m] == st->reg[st->reg[r].view].offset[m]);
      CU_ASSERT(s0[v] <= s0[r * M + m]);
      s1[v] = s1[v] > s1[r * M + m] ? s1[v] : s1[r * M + m];
    }
  for (int x = 0; x < n; x++)
    for (int y = 0; y < n; y++) {
      if (x == y || st->reg[x / M].view >= 0 || st->reg[y / M].view >= 0 || st->reg[x / M].into_acc || st->reg[y / M].into_acc) continue;
      const fmt_reg *rx = &st->reg[x / M], *ry = &st->reg[y / M];
      int64_t ox = rx->offset[x % M], oy = ry->offset[y % M];
      bool mem = ox < oy + ry->bytes && oy < ox + rx->bytes && rx->bytes && ry->bytes;
      bool time = s0[x] <= s1[y] && s0[y] <= s1[x];
      bad += mem && time;
      if (mem && s1[y] < s0[x]) { /* y held the bytes earlier: x waits for y or a later holder */
        bool waits = false;
        for (int w = 0; w < rx->nwait[x % M]; w++) waits |= s0[rx->wait[x % M][w]] >= s0[y];
        bad += !waits;
      }
      CU_ASSERT(ox + rx->bytes <= st->arena_bytes);
    }
  CU_ASSERT_EQUAL(bad, 0);
  free(pos), free(s0), free(s1);
}

/* a 4-layer toy model compiled for pp = 2 with 4 micro-batches: stage 0
 * keeps 2 buffers of its forward activations, the arena never gives one
 * byte to two live instances, and the program survives a write and read */
static void test_actor_plan(void) {
  ir_graph *g = ir_graph_new("toy");
  ir_tensor ids = ir_tensor_init("ids", IR_T_INPUT, IR_I32), lab = ir_tensor_init("labels", IR_T_INPUT, IR_I32);
  ids.rank = lab.rank = 2;
  ids.shape[0] = lab.shape[0] = (ir_dim){1, 1, 0};
  ids.shape[1] = lab.shape[1] = (ir_dim){1, 0, 1};
  ir_ref ri = ir_tensor_add(g, &ids), rl = ir_tensor_add(g, &lab);
  ir_tensor w = ir_tensor_init("wte.weight", IR_T_PARAM, IR_F32);
  w.rank = 2, w.shape[0] = ir_const(16), w.shape[1] = ir_const(8);
  ir_ref rw = ir_tensor_add(g, &w);
  int blk = ir_block_add(g, "h", 4);
  ir_tensor a = ir_tensor_init("%x", IR_T_ACT, IR_F32);
  a.rank = 3, a.shape[0] = ids.shape[0], a.shape[1] = ids.shape[1], a.shape[2] = ir_const(8);
  ir_ref x = ir_tensor_add(g, &a);
  ir_op e = ir_op_init(IR_OP_EMBEDDING);
  e.nin = 2, e.in[0] = ri, e.in[1] = rw, e.nout = 1, e.out[0] = x;
  ir_op_add(g, &e);
  for (int l = 0; l < 4; l++) {
    char nm[32];
    snprintf(nm, sizeof nm, "h.%d.w", l);
    ir_tensor p = ir_tensor_init(arena_strdup(g->arena, nm), IR_T_PARAM, IR_F32);
    p.rank = 2, p.shape[0] = p.shape[1] = ir_const(8), p.block = blk, p.layer = l;
    ir_ref rp = ir_tensor_add(g, &p);
    ir_tensor y = a;
    y.block = blk, y.layer = l;
    ir_ref ry = ir_tensor_add(g, &y);
    ir_op m = ir_op_init(IR_OP_MATMUL);
    m.nin = 2, m.in[0] = x, m.in[1] = rp, m.nout = 1, m.out[0] = ry, m.block = blk, m.layer = l;
    ir_op_add(g, &m);
    x = ry;
  }
  ir_tensor lg = a;
  lg.shape[2] = ir_const(16);
  ir_ref rlg = ir_tensor_add(g, &lg);
  ir_op h = ir_op_init(IR_OP_MATMUL);
  h.nin = 2, h.in[0] = x, h.in[1] = rw, h.at.trans_b = true, h.nout = 1, h.out[0] = rlg;
  ir_op_add(g, &h);
  ir_tensor ls = ir_tensor_init("loss", IR_T_ACT, IR_F32);
  g->loss = ir_tensor_add(g, &ls);
  ir_op ce = ir_op_init(IR_OP_CROSS_ENTROPY);
  ce.nin = 2, ce.in[0] = rlg, ce.in[1] = rl, ce.nout = 1, ce.out[0] = g->loss;
  ir_op_add(g, &ce);
  lw_layout lay = {1, 1, 2, 4, 0, 0, 8, 4, NULL, 0, 0, 0, 1, 1, 0, false, false};
  diag d;
  diag_init(&d, "toy", NULL, 0);
  fmt_prog *p = lw_compile(g, &lay, &d);
  CU_ASSERT_FATAL(p != NULL);
  CU_ASSERT_EQUAL(p->nstage, 2);
  int two = 0, sends = 0;
  for (int r = 0; r < p->stage[0].nreg; r++) two += p->stage[0].reg[r].regst_num == 2;
  for (int i = 0; i < p->stage[0].nact; i++) sends += p->stage[0].act[i].kind == FMT_A_SEND;
  for (int i = 0; i < p->stage[1].nact; i++) sends += p->stage[1].act[i].kind == FMT_A_SEND;
  CU_ASSERT(two > 0);    /* stage 0 of 2 keeps 2 micro-batches of activations */
  CU_ASSERT(sends >= 2); /* activations forward, gradients back */
  for (int s = 0; s < 2; s++) check_arena(&p->stage[s], p->micro);
  /* written and read back: the same program */
  CU_ASSERT_FATAL(fmt_prog_write(p, tpath("program.json")));
  fmt_prog *q = fmt_prog_read(tmpdir);
  CU_ASSERT_FATAL(q != NULL);
  CU_ASSERT_EQUAL(q->pp, 2);
  CU_ASSERT_EQUAL(q->micro, 4);
  CU_ASSERT_EQUAL(q->seq, 4);
  CU_ASSERT_EQUAL(q->g->nop, p->g->nop);
  CU_ASSERT_EQUAL(q->predicted_peak, p->predicted_peak);
  for (int s = 0; s < 2; s++) {
    CU_ASSERT_EQUAL(q->stage[s].nact, p->stage[s].nact);
    CU_ASSERT_EQUAL(q->stage[s].nreg, p->stage[s].nreg);
    CU_ASSERT_EQUAL(q->stage[s].nsched, p->stage[s].nsched);
    for (int r = 0; r < p->stage[s].nreg; r++)
      CU_ASSERT(!memcmp(q->stage[s].reg[r].offset, p->stage[s].reg[r].offset, sizeof(int64_t) * 4));
  }
  fmt_prog_free(q);
  fmt_prog_free(p);
}

static int setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/sbpc_rt_io_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : 1;
}

static int cleanup(void) {
  const char *names[] = {"d.bin",         "odd.bin",      "a.safetensors", "t.safetensors", "h.safetensors",
                         "program.json", "ix.idx", "ix.bin", "e.bin"};
  for (int i = 0; i < 9; i++) unlink(tpath(names[i]));
  rmdir(tmpdir);
  return 0;
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_io", setup, cleanup);
  CU_ADD(s, test_data);
  CU_ADD(s, test_indexed);
  CU_ADD(s, test_safetensors);
  CU_ADD(s, test_init);
  CU_ADD(s, test_adamw);
  CU_ADD(s, test_actor_plan);
}
