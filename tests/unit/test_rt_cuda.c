/* test_rt_cuda.c — the device layer's loading (runtime/cuda.c), which needs no
 * GPU: SBPC_CUDA_LIB pointing nowhere is refused naming the path and
 * remembered; where the toolkit's libraries are (CUDA_HOME or
 * /usr/local/cuda), every cuBLAS and NCCL entry point the GPU executor calls
 * resolves in the real libcublas and libnccl (their names are ABI names,
 * e.g. cublasCreate_v2), and the f16/bf16 ids of runtime/cuda.h are the
 * headers' (checked at compile time in cuda.c when the headers are there).
 * Each loader remembers its first answer, so each case runs in a child. */
#include "cu.h"
#include "runtime/cuda.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* run fn in a child (the loaders keep their first answer); its exit status */
static int in_child(int (*fn)(void)) {
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) _exit(fn());
  int st = 0;
  waitpid(p, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static int nowhere(void) {
  char why[512];
  setenv("SBPC_CUDA_LIB", "/nonexistent/dir/libcuda.so.1", 1);
  if (rt_cu_load(why, sizeof why)) return 1;
  if (!strstr(why, "cannot open /nonexistent/dir/libcuda.so.1 (SBPC_CUDA_LIB)")) return fprintf(stderr, "%s\n", why), 2;
  char again[512] = "";
  return rt_cu_load(again, sizeof again) || strcmp(why, again) ? 3 : 0; /* remembered */
}

static void test_nowhere(void) { CU_ASSERT_EQUAL(in_child(nowhere), 0); }

static bool toolkit(const char *lib) {
  const char *h = getenv("CUDA_HOME");
  char path[4096];
  snprintf(path, sizeof path, "%s/lib64/%s", h && *h ? h : "/usr/local/cuda", lib);
  return access(path, R_OK) == 0;
}

static int blas(void) {
  char why[512];
  if (!rt_cublas_load(why, sizeof why)) return fprintf(stderr, "%s\n", why), 1;
  return rt_cu.blasCreate && rt_cu.blasGemmStridedBatchedEx && rt_cu.blasSetStream && rt_cu.blasGetVersion ? 0 : 2;
}

static int nccl(void) {
  char why[512];
  if (!rt_nccl_load(why, sizeof why)) return fprintf(stderr, "%s\n", why), 1;
  int v = 0;
  if (rt_cu.ncclGetVersion(&v) || v < 20000) return 2; /* answers without a device */
  return rt_cu.ncclCommInitRank && rt_cu.ncclAllReduce && rt_cu.ncclGetUniqueId ? 0 : 3;
}

static int blas_nowhere(void) {
  char why[512];
  setenv("SBPC_CUBLAS_LIB", "/nonexistent/libcublas.so", 1);
  return !rt_cublas_load(why, sizeof why) && strstr(why, "/nonexistent/libcublas.so") ? 0 : 1;
}

static void test_cublas(void) {
  CU_ASSERT_EQUAL(in_child(blas_nowhere), 0);
  if (toolkit("libcublas.so.13") || toolkit("libcublas.so.12")) {
    CU_ASSERT_EQUAL(in_child(blas), 0);
  } else {
    printf("(no libcublas in the toolkit: symbols not checked) ");
  }
}

static void test_nccl(void) {
  if (toolkit("libnccl.so.2")) {
    CU_ASSERT_EQUAL(in_child(nccl), 0);
  } else {
    printf("(no libnccl: symbols not checked) ");
  }
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_cuda", NULL, NULL);
  CU_ADD(s, test_nowhere);
  CU_ADD(s, test_cublas);
  CU_ADD(s, test_nccl);
}
