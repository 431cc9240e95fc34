/* test_fe_cluster.c — cluster sections and the built-in presets.
 *
 * The presets' numbers are checked against the values issue 2 states (in
 * base units: FLOP/s, bytes, bytes/s), the example cluster files are loaded
 * through fe_cluster_load, and bad specs are refused with a message. */
#include "cu.h"
#include "frontend/frontend.h"
#include <string.h>
#include <unistd.h>

#define GIB 1073741824.0
#define NEAR(x, y) CU_ASSERT_DOUBLE_EQUAL((x), (y), 1e-9 * (y))

static void test_dgx_a100(void) {
  arena *a = arena_new();
  char err[256];
  ir_cluster *c = fe_cluster_preset("dgx-a100:128", a, err, sizeof err);
  CU_ASSERT_FATAL(c != NULL);
  CU_ASSERT_STRING_EQUAL(c->name, "dgx-a100");
  CU_ASSERT_EQUAL_FATAL(c->ndev, 1);
  CU_ASSERT_EQUAL_FATAL(c->nnode, 1);
  CU_ASSERT_EQUAL(c->node_count[0], 128);
  CU_ASSERT_EQUAL(fe_cluster_devices(c), 1024);
  const ir_devtype *d = &c->dev[0];
  NEAR(d->peak_flops[IR_BF16], 312e12);
  NEAR(d->peak_flops[IR_F16], 312e12);
  NEAR(d->peak_flops[IR_F32], 19.5e12); /* not the 156 of tf32 */
  NEAR(d->mem_bytes, 80 * GIB);
  NEAR(d->mem_bw, 2039e9);
  const ir_nodetype *n = &c->node[0];
  CU_ASSERT_EQUAL(n->ndev, 8);
  NEAR(n->link_bw, 300e9);
  CU_ASSERT_EQUAL(n->nics, 8);
  NEAR(n->nic_bw, 200e9 / 8); /* 200 Gb/s HDR */
  arena_free(a);
}

static void test_dgx_h100_frontier(void) {
  arena *a = arena_new();
  char err[256];
  ir_cluster *h = fe_cluster_preset("dgx-h100:4", a, err, sizeof err);
  CU_ASSERT_FATAL(h != NULL);
  NEAR(h->dev[0].peak_flops[IR_BF16], 989e12);
  NEAR(h->dev[0].peak_flops[IR_F32], 67e12);
  NEAR(h->dev[0].mem_bytes, 80 * GIB);
  NEAR(h->dev[0].mem_bw, 3.35e12);
  NEAR(h->node[0].link_bw, 450e9);
  CU_ASSERT_EQUAL(h->node[0].nics, 8);
  NEAR(h->node[0].nic_bw, 400e9 / 8);
  CU_ASSERT_EQUAL(fe_cluster_devices(h), 32);
  ir_cluster *f = fe_cluster_preset("frontier", a, err, sizeof err);
  CU_ASSERT_FATAL(f != NULL);
  CU_ASSERT_EQUAL(f->node[0].ndev, 8);
  CU_ASSERT_EQUAL(f->node_count[0], 1);
  NEAR(f->dev[0].peak_flops[IR_BF16], 191.5e12);
  NEAR(f->dev[0].mem_bytes, 64 * GIB);
  NEAR(f->dev[0].mem_bw, 1.6e12);
  CU_ASSERT_EQUAL(f->node[0].nics, 4);
  NEAR(f->node[0].nic_bw, 25e9);
  CU_ASSERT(f->node[0].link_bw >= 50e9 && f->node[0].link_bw <= 100e9);
  arena_free(a);
}

static void test_cpu(void) {
  arena *a = arena_new();
  char err[256];
  ir_cluster *c = fe_cluster_preset("cpu:4", a, err, sizeof err);
  CU_ASSERT_FATAL(c != NULL);
  CU_ASSERT_STRING_EQUAL(c->name, "cpu");
  CU_ASSERT_EQUAL(c->nnode, 1);
  CU_ASSERT_EQUAL(c->node_count[0], 1);
  CU_ASSERT_EQUAL(c->node[0].ndev, 4);
  CU_ASSERT_STRING_EQUAL(c->node[0].name, "cpu");
  double total = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  CU_ASSERT_DOUBLE_EQUAL(c->dev[0].mem_bytes, total / 4, 1.0);
  CU_ASSERT(c->dev[0].peak_flops[IR_F32] > 0);
  CU_ASSERT(c->node[0].link_bw > 0);
  arena_free(a);
}

static void test_bad_specs(void) {
  arena *a = arena_new();
  char err[256];
  const char *bad[] = {"dgx-a100:0", "dgx-a100:", "dgx-a100:x", "nosuch:2", "cpu:99999", "dgx-a100:-3", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    CU_ASSERT_PTR_NULL(fe_cluster_preset(bad[i], a, err, sizeof err));
    CU_ASSERT(err[0] != 0);
  }
  arena_free(a);
}

static void test_cluster_files(void) {
  arena *a = arena_new();
  ir_cluster *pod = fe_cluster_load(cu_src("examples/dgx-a100-pod.sbp"), a);
  CU_ASSERT_FATAL(pod != NULL);
  CU_ASSERT_EQUAL(fe_cluster_devices(pod), 128);
  char err[256];
  ir_cluster *pre = fe_cluster_preset("dgx-a100:16", a, err, sizeof err);
  CU_ASSERT_FATAL(pre != NULL);
  /* the pod file and the preset describe the same machines */
  NEAR(pod->dev[0].peak_flops[IR_BF16], pre->dev[0].peak_flops[IR_BF16]);
  NEAR(pod->dev[0].mem_bytes, pre->dev[0].mem_bytes);
  NEAR(pod->node[0].nic_bw, pre->node[0].nic_bw);
  ir_cluster *mix = fe_cluster_load(cu_src("examples/mixed-cluster.sbp"), a);
  CU_ASSERT_FATAL(mix != NULL);
  CU_ASSERT_EQUAL_FATAL(mix->nnode, 2);
  CU_ASSERT_EQUAL(mix->ndev, 2);
  CU_ASSERT_STRING_EQUAL(mix->dev[mix->node[1].devtype].name, "v100");
  NEAR(mix->dev[mix->node[1].devtype].mem_bytes, 32 * GIB);
  CU_ASSERT_EQUAL(mix->node[1].nics, 1);
  NEAR(mix->node[1].nic_bw, 100e9 / 8);
  NEAR(mix->node[0].nic_bw, 200e9 / 8);
  CU_ASSERT_EQUAL(mix->node_count[0] * mix->node[0].ndev + mix->node_count[1] * mix->node[1].ndev,
                  fe_cluster_devices(mix));
  CU_ASSERT_PTR_NULL(fe_cluster_load(cu_src("examples/gpt2.sbp"), a)); /* no cluster section */
  arena_free(a);
}

static void test_units(void) {
  const char *src = "cluster u {\n"
                    "  device d { peak.f32 = 500 GFLOPS, peak.bf16 = 1.5 PFLOPS, memory = 512 MiB, bandwidth = 8 Gb/s }\n"
                    "  node n { 2 x d, link l = 1 TB/s latency 250 ns, nic e = 2 x 10 Gb/s latency 1.5 ms }\n"
                    "  nodes { 3 x n }\n}\n";
  ir_program p;
  diag d;
  diag_init(&d, "u.sbp", src, strlen(src));
  CU_ASSERT_FATAL(fe_parse("u.sbp", src, strlen(src), &p, &d));
  const ir_cluster *c = p.cluster;
  CU_ASSERT_FATAL(c != NULL);
  NEAR(c->dev[0].peak_flops[IR_F32], 500e9);
  NEAR(c->dev[0].peak_flops[IR_BF16], 1.5e15);
  NEAR(c->dev[0].mem_bytes, 512.0 * 1048576);
  NEAR(c->dev[0].mem_bw, 1e9);
  NEAR(c->node[0].link_bw, 1e12);
  NEAR(c->node[0].link_lat, 250e-9);
  NEAR(c->node[0].nic_lat, 1.5e-3);
  NEAR(c->node[0].nic_bw, 10e9 / 8);
  CU_ASSERT_EQUAL(fe_cluster_devices(c), 6);
  fe_program_free(&p); /* a cluster-only file: its private arena is freed */
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("fe_cluster", NULL, NULL);
  CU_ADD(s, test_dgx_a100);
  CU_ADD(s, test_dgx_h100_frontier);
  CU_ADD(s, test_cpu);
  CU_ADD(s, test_bad_specs);
  CU_ADD(s, test_cluster_files);
  CU_ADD(s, test_units);
}
