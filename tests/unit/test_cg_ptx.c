/* test_cg_ptx.c — every CUDA kernel sbpc generates for a GPT-2 block (forward
 * and backward, attention included) and for the other fusion patterns
 * (cross-entropy fwd+bwd, causal softmax, rms_norm, swiglu, AdamW), in f32,
 * bf16 and f16, compiles with NVRTC and assembles with ptxas for sm_80 and
 * sm_90 (the f16 block for sm_80 only: NVRTC needs seconds per attention
 * kernel on this machine; head_dim 128 compiles too, with register spills,
 * but takes ~10 s, so it is not in the test). Skipped (77) when NVRTC or ptxas is absent. Prints registers and
 * spill bytes per kernel. */
#include "cu.h"
#include "codegen/cg.h"
#include "tests/support/fixtures.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int nchecked;

static void check_graph(ir_graph *g, ir_dtype act, int maxarch) {
  arena *a = arena_new();
  cg_fusion *f = cg_fuse(g, act, a);
  CU_ASSERT(f->nkernels > 0);
  char dir[] = "/tmp/sbpc_ptx_XXXXXX";
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  for (int i = 0; i < f->n; i++) {
    cg_kernel *k = f->g[i].k;
    if (!k) continue;
    char *src = cg_emit_cuda(k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    for (int arch = 80; arch <= maxarch; arch += 10) {
      char *log = NULL;
      char *ptx = cg_nvrtc_ptx(src, k->name, arch, &log);
      if (!ptx) fprintf(stderr, "%s (%s) sm_%d NVRTC failed:\n%s\n%s\n", k->name, ir_dtype_name(act), arch, log, src);
      CU_ASSERT_PTR_NOT_NULL(ptx);
      free(log);
      if (!ptx) continue;
      char path[256];
      snprintf(path, sizeof path, "%s/%s_%d.ptx", dir, k->name, arch);
      FILE *fp = fopen(path, "w");
      CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
      fputs(ptx, fp);
      fclose(fp);
      int regs, spills;
      int rc = cg_ptxas(path, arch, &regs, &spills, &log);
      if (rc != 0) fprintf(stderr, "%s sm_%d ptxas failed:\n%s\n", k->name, arch, log ? log : "");
      CU_ASSERT_EQUAL(rc, 0);
      printf("  %-22s %-4s sm_%d  %3d registers  %5d spill bytes  (%s)\n", k->name, ir_dtype_name(act), arch, regs,
             spills, k->ops);
      nchecked++;
      free(log);
      free(ptx);
      unlink(path);
    }
    free(src);
  }
  rmdir(dir);
  arena_free(a);
}

static void ptx_block(void) {
  ir_graph *g = fx_gpt2_block(768, 12, 1024);
  check_graph(g, IR_F32, 90);
  check_graph(g, IR_BF16, 90);
  ir_graph_free(g);
  ir_graph *h = fx_gpt2_block(1024, 16, 512); /* other widths, f16: sm_80 only, to keep the test short */
  check_graph(h, IR_F16, 80);
  ir_graph_free(h);
}

static void ptx_extras(void) {
  ir_graph *g = fx_extras(4096);
  check_graph(g, IR_F32, 90);
  check_graph(g, IR_BF16, 90);
  check_graph(g, IR_F16, 90);
  ir_graph_free(g);
  CU_ASSERT(nchecked >= 20);
}

void cu_register(void) {
  char p[4096];
  int ma = 0, mi = 0;
  if (!cg_ptxas_path(p, sizeof p)) {
    cu_skip("ptxas not found ($CUDA_HOME/bin/ptxas)");
    return;
  }
  if (!cg_nvrtc_available(&ma, &mi)) {
    cu_skip("NVRTC not found");
    return;
  }
  printf("NVRTC %d.%d, %s\n", ma, mi, p);
  CU_pSuite s = CU_add_suite("cg_ptx", NULL, NULL);
  CU_ADD(s, ptx_block);
  CU_ADD(s, ptx_extras);
}
