/* calib.c — the planner's constants, the calibration file and the options.
 *
 * plan_calib_default holds the built-in constants (their sources are in
 * docs/planner.md); a calibration file overlays them (calib_read.c, the one
 * reader of that format). The runtime profiles (what software runs the
 * plan) are one table here, with the preset each is the default of.
 * plan_coll_interp reads a measured table by group size (the one
 * interpolation of them). plan_fix_parse reads the --fix list. */
#include "planner/plan_int.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *rc_names[] = {"none", "selective", "full"};

const char *plan_recompute_name(int rc) {
  return rc >= 0 && rc < PLAN_NRC ? rc_names[rc] : "?";
}

/* The runtime profiles (docs/planner.md, "Runtime profiles"):
 *   megatron-2021  Megatron-LM of SC'21: materialised attention, no sequence
 *                  parallelism, fp32 gradients all-reduced after the backward,
 *                  no distributed optimizer, no tp overlap;
 *   megatron-2022  Korthikanti et al. 2022: adds sequence parallelism (and the
 *                  distributed optimizer); still fp32 gradients, not overlapped;
 *   stack-2024     Megatron-Core / NeMo / torchtitan of 2024: flash attention,
 *                  bf16 gradients reduced during the backward, distributed
 *                  optimizer, tp communication overlapped with GEMMs;
 *   sbpc           sbpc's own executor: materialised attention, gradients in
 *                  the compute precision reduced during the backward, ZeRO;
 *   sbpc-cpu       sbpc's executor on CPUs: fp32 (4-byte gradients), and its
 *                  attention is blocked like flash attention (no score
 *                  matrix kept, causal blocks skipped, the gradient
 *                  recomputes the scores: runtime/kernels_cpu.c); no
 *                  workspace and no extra transients: a rank allocates its
 *                  planned arenas, and the arena holds a step's largest
 *                  tensors with its activations (docs/runtime.md); beside
 *                  them only the gradient reduction's receive buffer (the
 *                  other members' copies of this rank's slice of a bucket,
 *                  malloc'ed while they fly: recv_copies).
 * The GPU stacks keep a dropout's boolean mask (1 byte per element); sbpc's
 * kernels, CPU and GPU, regenerate it from a counter hash and keep nothing.
 * The GPU stacks reserve 2 GiB per device (CUDA context, cuBLAS and NCCL
 * buffers), at most 5 % of a small device (plan_workspace). */
#define GIB (1024.0 * 1024.0 * 1024.0)
static const plan_runtime profiles[] = {
    {"megatron-2021", false, false, false, false, 4, 0, 2 * GIB, 2, 1, false},
    {"megatron-2022", false, true, true, false, 4, 0, 2 * GIB, 2, 1, false},
    {"stack-2024", true, true, true, true, 2, 1, 2 * GIB, 2, 1, false},
    {"sbpc", false, true, true, false, 2, 1, 2 * GIB, 2, 0, false},
    {"sbpc-cpu", true, true, true, false, 4, 1, 0, 0, 0, true},
};
#define NPROFILES (int)(sizeof profiles / sizeof profiles[0])

bool plan_runtime_set(plan_calib *c, const char *name) {
  for (int i = 0; i < NPROFILES; i++)
    if (name && !strcmp(name, profiles[i].name)) return c->rt = profiles[i], c->workspace_bytes = profiles[i].workspace_bytes, true;
  return false;
}

const char *plan_runtime_default(const ir_cluster *c) {
  const char *n = c && c->name ? c->name : "";
  if (!strcmp(n, "dgx-h100")) return "stack-2024";
  if (!strcmp(n, "dgx-a100")) return "megatron-2022";
  if (!strcmp(n, "cpu")) return "sbpc-cpu";
  return "sbpc";
}

const char *plan_runtime_names(void) { return "megatron-2021, megatron-2022, stack-2024, sbpc, sbpc-cpu"; }

double plan_workspace(const plan_calib *c, double mem) {
  return c->workspace_bytes < 0.05 * mem ? c->workspace_bytes : 0.05 * mem;
}

void plan_calib_default(plan_calib *c) {
  memset(c, 0, sizeof *c);
  c->gemm_eff_max = 0.80;
  c->gemm_half_dim = 128;
  c->mem_eff = 0.70;
  c->kernel_overhead_s = 4e-6;
  c->attn_score_passes = 6;
  c->attn_saved_bytes = 5;
  c->attn_flash_eff = 0.6;
  c->coll_eff = 0.80;
  c->workspace_bytes = 2.0 * (1 << 30);
  c->mem_usable = 0.95;
  plan_runtime_set(c, "sbpc");
  c->group_fixed_s = -1;
  for (int i = 0; i < PLAN_NPASS; i++) c->exec_scale[i] = 1, c->exec_kernel_s[i] = -1;
  c->exec_coll12_s = -1;
}

bool plan_coll_interp(const int *n, const double *bw, const double *alpha, int cnt, int at, double *bw_at,
                      double *alpha_at) {
  if (cnt <= 0) return false;
  int i = 0;
  while (i + 1 < cnt && n[i + 1] <= at) i++;
  double b = bw[i], a = alpha[i];
  if (i + 1 < cnt && at > n[i]) {
    double f = (log((double)at) - log((double)n[i])) / (log((double)n[i + 1]) - log((double)n[i]));
    b += f * (bw[i + 1] - b);
    a = a < 0 || alpha[i + 1] < 0 ? -1 : a + f * (alpha[i + 1] - a);
  }
  *bw_at = b, *alpha_at = a;
  return true;
}

void plan_options_default(plan_options *o) {
  memset(o, 0, sizeof *o);
  o->fix.recompute = -1;
  o->fix.zero = -1;
  o->top_k = 3;
  o->precision = IR_BF16;
  plan_calib_default(&o->calib);
  o->ilp_time_limit_s = 2.0;
  o->max_sp = 1;
}

/* fix_one: one key=value of --fix */
static bool fix_one(const char *k, const char *v, plan_fix *f) {
  if (!strcmp(k, "recompute")) {
    for (int i = 0; i < PLAN_NRC; i++)
      if (!strcmp(v, rc_names[i])) return f->recompute = i, true;
    return false;
  }
  char *end;
  long x = strtol(v, &end, 10);
  if (*v == 0 || *end || x < 0 || x > (1 << 24)) return false;
  if (!strcmp(k, "zero")) return x <= 3 ? (f->zero = (int)x, true) : false;
  if (x < 1) return false;
  int *slot = !strcmp(k, "dp") ? &f->dp : !strcmp(k, "tp") ? &f->tp : !strcmp(k, "pp") ? &f->pp
            : !strcmp(k, "sp") ? &f->sp : !strcmp(k, "vpp") ? &f->vpp
            : !strcmp(k, "mbs") ? &f->mbs : !strcmp(k, "devices") ? &f->devices : NULL;
  if (!slot) return false;
  *slot = (int)x;
  return true;
}

bool plan_fix_parse(const char *s, plan_options *o) {
  char buf[256];
  if (strlen(s) >= sizeof buf) {
    sbpc_error("--fix: list too long");
    return false;
  }
  strcpy(buf, s);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) {
      sbpc_error("--fix: expected key=value, got '%s'", tok);
      return false;
    }
    *eq = 0;
    if (!fix_one(tok, eq + 1, &o->fix)) {
      sbpc_error("--fix: bad '%s=%s' (keys dp tp pp sp vpp mbs devices recompute=none|selective|full zero=0..3)",
                 tok, eq + 1);
      return false;
    }
  }
  return true;
}
