/* test_rt_jitobj.c — the runtime's machine-code cache path (codegen/jit.c):
 * a kernel compiled to a host object file (cg_llvm_object) and linked into a
 * fresh LLJIT (cg_jit_from_object) computes the same bits as the same kernel
 * JIT-compiled from IR (cg_jit_compile); an object survives a round trip
 * through the on-disk cache (binary payload, checksum) in a private
 * directory; a damaged cache entry is a miss and is removed; bytes that are
 * not an object file are refused with a reason instead of crashing. */
#include "cu.h"
#include "codegen/cg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ir_ref tens(ir_graph *g, const char *name, ir_tkind kind, int rank) {
  ir_tensor t = ir_tensor_init(name, kind, IR_F32);
  ir_dim s = {1, 0, 1}, h = {96, 0, 0};
  t.rank = (uint8_t)rank;
  t.shape[0] = rank == 1 ? h : s;
  t.shape[1] = h;
  return ir_tensor_add(g, &t);
}

/* bias_add + gelu(tanh) as one kernel of a fresh graph (freed by the caller) */
static cg_kernel *bias_gelu(ir_graph **gp, arena *a) {
  ir_graph *g = *gp = ir_graph_new("t");
  ir_ref x = tens(g, "x", IR_T_ACT, 2), b = tens(g, "b", IR_T_PARAM, 1);
  ir_ref h = tens(g, "h", IR_T_ACT, 2), y = tens(g, "y", IR_T_ACT, 2);
  ir_op o = ir_op_init(IR_OP_BIAS_ADD);
  o.in[0] = x, o.in[1] = b, o.nin = 2, o.out[0] = h, o.nout = 1;
  ir_op_add(g, &o);
  o = ir_op_init(IR_OP_GELU);
  o.at.tanh = true;
  o.in[0] = h, o.nin = 1, o.out[0] = y, o.nout = 1;
  ir_op_add(g, &o);
  cg_fusion *f = cg_fuse(g, IR_F32, a);
  for (int i = 0; i < f->n; i++)
    if (f->g[i].k) return f->g[i].k;
  return NULL;
}

static char *object_of(cg_kernel *k, size_t *len) {
  char why[512];
  char *obj = NULL;
  cg_llvm *m = cg_llvm_new("t");
  bool ok = cg_llvm_add(m, k, why, sizeof why) && cg_llvm_optimize(m, why, sizeof why) &&
            cg_llvm_object(m, &obj, len, why, sizeof why);
  if (!ok) fprintf(stderr, "object: %s\n", why);
  cg_llvm_free(m);
  return ok ? obj : NULL;
}

/* run kernel `name` of j on a 3 x 96 input; the output (malloc'ed) */
static float *run(cg_jit *j, const char *name) {
  float *x = malloc(3 * 96 * 4), *b = malloc(96 * 4), *y = calloc(3 * 96, 4);
  for (int i = 0; i < 3 * 96; i++) x[i] = (float)((i * 37 % 101) - 50) / 12.5f;
  for (int i = 0; i < 96; i++) b[i] = (float)(i % 7) / 7.0f - 0.5f;
  cg_kfn fn = cg_jit_kernel(j, name);
  CU_ASSERT_PTR_NOT_NULL(fn);
  int64_t dims[2] = {3, 96};
  void *bufs[3] = {x, b, y};
  if (fn) fn(bufs, dims, NULL);
  free(x), free(b);
  return y;
}

static void object_equals_ir(void) {
  arena *a = arena_new();
  ir_graph *g;
  cg_kernel *k = bias_gelu(&g, a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  CU_ASSERT_EQUAL_FATAL(k->nbuf, 3);
  size_t len = 0;
  char *obj = object_of(k, &len), why[512];
  CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
  CU_ASSERT(len > 64 && !memcmp(obj, "\177ELF", 4));
  cg_jit *j1 = cg_jit_from_object(obj, len, why, sizeof why), *j2 = cg_jit_compile(&k, 1, why, sizeof why);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j2);
  float *y1 = run(j1, k->name), *y2 = run(j2, k->name);
  CU_ASSERT(memcmp(y1, y2, 3 * 96 * 4) == 0);
  CU_ASSERT(y1[5] != 0 || y1[100] != 0);
  cg_jit_free(j1), cg_jit_free(j2);
  free(y1), free(y2), free(obj);
  arena_free(a);
  ir_graph_free(g);
}

static void cache_round_trip(void) {
  char dir[] = "/tmp/sbpc-jitobj-XXXXXX", path[256];
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  arena *a = arena_new();
  ir_graph *g;
  cg_kernel *k = bias_gelu(&g, a);
  size_t len = 0, got = 0;
  char *obj = object_of(k, &len), why[512];
  CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
  CU_ASSERT(cg_cache_put(dir, 42, "rtjit.o", obj, len));
  char *back = cg_cache_get(dir, 42, "rtjit.o", &got);
  CU_ASSERT_PTR_NOT_NULL_FATAL(back);
  CU_ASSERT(got == len && !memcmp(back, obj, len));
  cg_jit *j = cg_jit_from_object(back, got, why, sizeof why);
  CU_ASSERT_PTR_NOT_NULL(j);
  cg_jit_free(j);
  /* damage one payload byte: a miss, and the entry is gone */
  snprintf(path, sizeof path, "%s/%016llx.rtjit.o", dir, 42ull);
  FILE *f = fopen(path, "r+b");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fseek(f, 100, SEEK_SET); /* past the header line: in the payload */
  int c = fgetc(f);
  fseek(f, 100, SEEK_SET);
  fputc(c ^ 0xff, f);
  fclose(f);
  CU_ASSERT_PTR_NULL(cg_cache_get(dir, 42, "rtjit.o", &got));
  CU_ASSERT(access(path, F_OK) != 0);
  rmdir(dir);
  free(obj), free(back);
  arena_free(a);
  ir_graph_free(g);
}

static void garbage_refused(void) {
  char why[512] = "";
  const char junk[] = "\177ELF this is not an object file at all, just bytes";
  cg_jit *j = cg_jit_from_object(junk, sizeof junk, why, sizeof why);
  CU_ASSERT_PTR_NULL(j);
  CU_ASSERT(why[0] != 0);
  cg_jit_free(j);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("rt_jitobj", NULL, NULL);
  CU_ADD(s, object_equals_ir);
  CU_ADD(s, cache_round_trip);
  CU_ADD(s, garbage_refused);
}
