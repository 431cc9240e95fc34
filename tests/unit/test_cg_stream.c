/* test_cg_stream.c — the non-temporal store path of the LLVM row kernels
 * (emit_llvm.c): a kernel whose f32 outputs are >= 16 MiB and aligned takes
 * a second copy of the row loop with streaming stores. The same kernel is
 * run on outputs large and aligned (streaming copy), large but misaligned
 * by one float, and with an odd row length (both: the cached copy), and
 * each result must equal a C reference computed with the same fp32
 * operations (add and mul round identically, so the match is exact). */
#include "cu.h"
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>

/* kernel: y = a + b[col] (stored), z = y * y (stored). */
static cg_kernel *make(arena *ar) {
  cg_kernel *k = cg_k_new(ar, "stream_test");
  int a = cg_k_load(k, cg_k_buf(k, "a", IR_F32, CG_SH_ROWS, CG_IN));
  int b = cg_k_load(k, cg_k_buf(k, "b", IR_F32, CG_SH_COLS, CG_IN));
  int y = cg_k2(k, ADD, a, b);
  cg_k_store(k, cg_k_buf(k, "y", IR_F32, CG_SH_ROWS, CG_OUT), y);
  cg_k_store(k, cg_k_buf(k, "z", IR_F32, CG_SH_ROWS, CG_OUT), cg_k2(k, MUL, y, y));
  return k;
}

/* check: run fn on rows x cols with outputs at offset off floats; 0 = ok. */
static int check(cg_kfn fn, int64_t rows, int64_t cols, int off) {
  size_t n = (size_t)(rows * cols);
  float *a = aligned_alloc(64, (n * 4 + 63) / 64 * 64), *b = aligned_alloc(64, ((size_t)cols * 4 + 63) / 64 * 64);
  float *yb = aligned_alloc(64, ((n + 16) * 4 + 63) / 64 * 64), *zb = aligned_alloc(64, ((n + 16) * 4 + 63) / 64 * 64);
  float *y = yb + off, *z = zb + off;
  for (size_t i = 0; i < n; i++) a[i] = (float)((i * 2654435761u) % 1000) / 997.0f - 0.5f;
  for (int64_t c = 0; c < cols; c++) b[c] = (float)c / (float)cols;
  void *bufs[4] = {a, b, y, z};
  int64_t dims[2] = {rows, cols};
  fn(bufs, dims, NULL);
  int bad = 0;
  for (size_t i = 0; i < n && !bad; i++) {
    float r = a[i] + b[i % (size_t)cols];
    bad = y[i] != r || z[i] != r * r;
  }
  free(a), free(b), free(yb), free(zb);
  return bad;
}

static void test_stream_paths(void) {
  arena *ar = arena_new();
  cg_kernel *k = make(ar);
  k->rows = 1, k->cols = 1;
  char why[512];
  cg_jit *j = cg_jit_compile(&k, 1, why, sizeof why);
  if (!j) fprintf(stderr, "jit: %s\n", why);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  cg_kfn fn = cg_jit_kernel(j, k->name);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
  CU_ASSERT_EQUAL(check(fn, 1100, 4096, 0), 0); /* 17.2 MiB, aligned: streaming */
  CU_ASSERT_EQUAL(check(fn, 1100, 4096, 1), 0); /* misaligned: cached */
  CU_ASSERT_EQUAL(check(fn, 1100, 4099, 0), 0); /* odd rows: cached */
  CU_ASSERT_EQUAL(check(fn, 3, 5, 0), 0);       /* small */
  cg_jit_free(j);
  arena_free(ar);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("cg_stream", NULL, NULL);
  CU_ADD(s, test_stream_paths);
}
