/* presets.c — the built-in clusters, written in the language itself.
 *
 * A preset is .sbp text with the node count filled in, parsed by fe_parse
 * like any cluster file, so presets and files cannot drift apart. Numbers
 * (per device): dgx-a100: A100 80GB, 312 TFLOP/s bf16/f16, 19.5 f32 (not
 * the 156 of tf32), 2039 GB/s HBM, NVSwitch 300 GB/s per direction, 8 x 200
 * Gb/s HDR InfiniBand. dgx-h100: H100 SXM, 989 bf16/f16, 67 f32, 80 GB,
 * 3.35 TB/s, NVLink 4 450 GB/s, 8 x 400 Gb/s. frontier: a node is 8 MI250X
 * GCDs, 191.5 bf16/f16, 23.95 f32 (vector), 64 GB, 1.6 TB/s, Infinity Fabric
 * 50 GB/s (the low end of 50-100), 4 x 25 GB/s Slingshot. cpu:N: one node of
 * N CPU devices sharing this machine's memory (sysconf / N), placeholder
 * rates of 50 GFLOP/s (f32 only: the CPU executor trains in fp32, so a bf16
 * model is planned in fp32 there) and 10 GB/s each, shared-memory link
 * 5 GB/s; `sbpc tune` measures the real ones (docs/calibration.md), and
 * without a calibration `sbpc plan` says its predictions are uncalibrated. */
#include "frontend/lower.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char dgx_a100[] =
    "cluster dgx_a100 {\n"
    "  device a100 { peak.bf16 = 312 TFLOPS, peak.f16 = 312 TFLOPS, peak.f32 = 19.5 TFLOPS,\n"
    "                memory = 80 GiB, bandwidth = 2039 GB/s }\n"
    "  node dgx { 8 x a100, link nvswitch = 300 GB/s latency 3 us, nic ib = 8 x 200 Gb/s latency 5 us }\n"
    "  nodes { %lld x dgx }\n"
    "}\n";

static const char dgx_h100[] =
    "cluster dgx_h100 {\n"
    "  device h100 { peak.bf16 = 989 TFLOPS, peak.f16 = 989 TFLOPS, peak.f32 = 67 TFLOPS,\n"
    "                memory = 80 GiB, bandwidth = 3.35 TB/s }\n"
    "  node dgx { 8 x h100, link nvlink4 = 450 GB/s latency 3 us, nic ib = 8 x 400 Gb/s latency 5 us }\n"
    "  nodes { %lld x dgx }\n"
    "}\n";

static const char frontier[] =
    "cluster frontier {\n"
    "  device mi250x_gcd { peak.bf16 = 191.5 TFLOPS, peak.f16 = 191.5 TFLOPS, peak.f32 = 23.95 TFLOPS,\n"
    "                      memory = 64 GiB, bandwidth = 1.6 TB/s }\n"
    "  node frontier { 8 x mi250x_gcd, link infinity_fabric = 50 GB/s latency 4 us,\n"
    "                  nic slingshot = 4 x 25 GB/s latency 6 us }\n"
    "  nodes { %lld x frontier }\n"
    "}\n";

static const char cpu[] =
    "cluster cpu {\n"
    "  device cpu { peak.f32 = 50 GFLOPS, memory = %lld B, bandwidth = 10 GB/s }\n"
    "  node cpu { %lld x cpu, link shm = 5 GB/s latency 1 us }\n"
    "  nodes { 1 x cpu }\n"
    "}\n";

static long long cpu_memory(int64_t n) {
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  long long total = pages > 0 && psz > 0 ? (long long)pages * psz : (16LL << 30);
  long long per = total / (n > 0 ? n : 1);
  return per > 0 ? per : 1;
}

const char *fe_preset_text(const char *name, int64_t count, char *buf, size_t n) {
  const char *t = !strcmp(name, "dgx-a100") ? dgx_a100 : !strcmp(name, "dgx-h100") ? dgx_h100
                  : !strcmp(name, "frontier") ? frontier : NULL;
  if (t) {
    snprintf(buf, n, t, (long long)count);
    return buf;
  }
  if (!strcmp(name, "cpu")) {
    snprintf(buf, n, cpu, cpu_memory(count), (long long)count);
    return buf;
  }
  return NULL;
}

ir_cluster *fe_cluster_preset(const char *spec, arena *a, char *err, size_t errn) {
  char name[32];
  const char *colon = strchr(spec, ':');
  size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
  long long count = 1;
  if (nl >= sizeof name) nl = sizeof name - 1;
  memcpy(name, spec, nl);
  name[nl] = 0;
  if (colon) {
    char *end;
    count = strtoll(colon + 1, &end, 10);
    if (!colon[1] || *end || count < 1 || count > (!strcmp(name, "cpu") ? 4096 : 100000)) {
      snprintf(err, errn, "bad count in cluster '%s' (expected NAME:COUNT, COUNT from 1 to %d)", spec,
               !strcmp(name, "cpu") ? 4096 : 100000);
      return NULL;
    }
  }
  char text[1024];
  if (!fe_preset_text(name, count, text, sizeof text)) {
    snprintf(err, errn, "unknown cluster '%s' (presets: dgx-a100, dgx-h100, frontier, cpu; or a .sbp file)", spec);
    return NULL;
  }
  ir_program p;
  diag d;
  diag_init(&d, name, text, strlen(text));
  if (!fe_parse(name, text, strlen(text), &p, &d) || !p.cluster) {
    snprintf(err, errn, "internal error: preset '%s' does not parse", name);
    fe_program_free(&p);
    return NULL;
  }
  ir_cluster *c = fe_cluster_copy(p.cluster, a);
  c->name = arena_strdup(a, name);
  fe_program_free(&p);
  return c;
}

static bool is_path(const char *s) {
  size_t n = strlen(s);
  return strchr(s, '/') || (n > 4 && !strcmp(s + n - 4, ".sbp"));
}

ir_cluster *fe_cluster_load(const char *spec, arena *a) {
  if (!is_path(spec)) {
    char err[256];
    ir_cluster *c = fe_cluster_preset(spec, a, err, sizeof err);
    if (!c) sbpc_error("%s", err);
    return c;
  }
  ir_program p;
  if (!fe_load(spec, &p)) return NULL;
  ir_cluster *c = p.cluster ? fe_cluster_copy(p.cluster, a) : NULL;
  if (!c) diag_file_error(spec, "the file has no cluster section");
  fe_program_free(&p);
  return c;
}
