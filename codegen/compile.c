/* compile.c — the back half of `sbpc compile`: fuse, deduplicate, emit,
 * compile through the cache, write DIR/kernels/ and the manifest.
 *
 * Kernels with the same structure (cg_k_text) are one kernel: the twelve
 * layers of GPT-2 share each of theirs. Each unique kernel is named
 * k<N>_<ops> and written as NAME.cu (always), NAME.sm_80.ptx and
 * NAME.sm_90.ptx (when NVRTC is present) and NAME.ll (LLVM IR optimised for
 * this host). PTX, the optimised IR and the ptxas register/spill counts come
 * from the cache when an entry exists for the same key: FNV-1a of the
 * kernel's name and structure, the emitter version, the target and the
 * compiler versions (NVRTC, LLVM and the host CPU/features). The manifest
 * (manifest.json) lists every kernel with its fused ops, launch shape,
 * buffers, scalars, bytes, FLOPs and registers, every group of ops that
 * uses it, and every op left unfused with the reason. */
#include "codegen/cg.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Part of every cache key: bump it whenever an emitter's output changes. */
#define CG_EMIT_VERSION "sbpc-cg 3"

typedef struct {
  const cg_opts *o;
  arena *a;
  char dir[4096], cache[4096];
  bool use_cache, nvrtc, ptxas;
  bool write_failed;   /* an output file could not be written */
  int nv_major, nv_minor;
  int hits, built;
} cctx;

/* write_file: one output file; a failure (a full disk, a read-only folder)
 * is the output folder's fault, not an internal one: c->write_failed */
static bool write_file(cctx *c, const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(data, 1, len, f) == len;
  ok = f && fclose(f) == 0 && ok;
  if (!ok) {
    sbpc_error("cannot write %s: %s", path, strerror(errno));
    c->write_failed = true;
  }
  return ok;
}

static const char *kname(arena *a, int i, const char *ops) {
  char buf[48];
  size_t n = 0;
  for (const char *p = ops; *p && n + 1 < sizeof buf; p++) {
    if (*p == ' ' || *p == '(') break;
    buf[n++] = isalnum((unsigned char)*p) ? *p : '_';
  }
  buf[n] = 0;
  return arena_printf(a, "k%d_%s", i, buf);
}

static uint64_t key_of(const cg_kernel *k, const char *what) {
  char *t = cg_k_text(k);
  uint64_t h = cg_hash(CG_EMIT_VERSION, strlen(CG_EMIT_VERSION), 0);
  h = cg_hash(k->name, strlen(k->name), h);
  h = cg_hash(t ? t : "", t ? strlen(t) : 0, h);
  h = cg_hash(what, strlen(what), h);
  free(t);
  return h;
}

/* cached: payload under key/ext from the cache, or NULL. */
static char *cached(cctx *c, uint64_t key, const char *ext, size_t *len) {
  return c->use_cache ? cg_cache_get(c->cache, key, ext, len) : NULL;
}

static void store(cctx *c, uint64_t key, const char *ext, const char *data, size_t len) {
  if (c->use_cache) cg_cache_put(c->cache, key, ext, data, len);
}

/* ptx: NAME.sm_<arch>.ptx through the cache; registers into j. */
static bool ptx(cctx *c, const cg_kernel *k, const char *src, int arch, cJSON *j, bool *miss) {
  char what[128], path[4600];
  snprintf(what, sizeof what, "cuda nvrtc %d.%d sm_%d", c->nv_major, c->nv_minor, arch);
  uint64_t key = key_of(k, what);
  size_t len = 0;
  char *p = cached(c, key, "ptx", &len);
  if (!p) {
    *miss = true;
    char *log = NULL;
    p = cg_nvrtc_ptx(src, k->name, arch, &log);
    if (!p) {
      sbpc_error("internal: NVRTC failed on kernel %s for sm_%d:\n%s", k->name, arch, log ? log : "");
      free(log);
      return false;
    }
    free(log);
    len = strlen(p);
    store(c, key, "ptx", p, len);
  }
  snprintf(path, sizeof path, "%s/%s.sm_%d.ptx", c->dir, k->name, arch);
  bool ok = write_file(c, path, p, len);
  free(p);
  if (!ok || !c->ptxas) return ok;
  char *info = cached(c, key, "ptxinfo", NULL);
  int regs = 0, spills = 0;
  if (!info || sscanf(info, "%d %d", &regs, &spills) != 2) {
    *miss = true;
    char *log = NULL;
    int rc = cg_ptxas(path, arch, &regs, &spills, &log);
    if (rc > 0) {
      sbpc_error("internal: ptxas rejected %s for sm_%d:\n%s", path, arch, log ? log : "");
      free(log);
      free(info);
      return false;
    }
    free(log);
    char buf[64];
    snprintf(buf, sizeof buf, "%d %d", regs, spills);
    if (rc == 0) store(c, key, "ptxinfo", buf, strlen(buf));
  }
  free(info);
  cJSON *r = cJSON_AddObjectToObject(j, arch == 80 ? "sm_80" : "sm_90");
  cJSON_AddNumberToObject(r, "registers", regs);
  cJSON_AddNumberToObject(r, "spill_bytes", spills);
  return true;
}

/* llvm: NAME.ll, optimised for the host, through the cache. */
static bool llvm(cctx *c, cg_kernel *k, bool *miss) {
  char what[1200], path[4600], why[1024];
  snprintf(what, sizeof what, "llvm %s %s", cg_llvm_version(), cg_llvm_host());
  uint64_t key = key_of(k, what);
  size_t len = 0;
  char *t = cached(c, key, "ll", &len);
  if (!t) {
    *miss = true;
    cg_llvm *m = cg_llvm_new(k->name);
    if (!cg_llvm_add(m, k, why, sizeof why) || !cg_llvm_optimize(m, why, sizeof why)) {
      sbpc_error("internal: LLVM failed on kernel %s: %s", k->name, why);
      cg_llvm_free(m);
      return false;
    }
    t = cg_llvm_text(m);
    cg_llvm_free(m);
    len = strlen(t);
    store(c, key, "ll", t, len);
  }
  snprintf(path, sizeof path, "%s/%s.ll", c->dir, k->name);
  bool ok = write_file(c, path, t, len);
  free(t);
  return ok;
}

static const char *shape_names[] = {"rows", "cols", "row1", "one"};
static const char *role_names[] = {"in", "out", "acc"};

static cJSON *kernel_json(const cg_kernel *k) {
  static const char *kinds[] = {"row", "attention_forward", "attention_backward"};
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", k->name);
  cJSON_AddStringToObject(j, "kind", kinds[k->kind]);
  cJSON_AddStringToObject(j, "fused_ops", k->ops);
  int64_t grid;
  int block;
  cg_cuda_launch(k, k->rows, k->cols, &grid, &block);
  cJSON *l = cJSON_AddObjectToObject(j, "launch");
  cJSON_AddNumberToObject(l, "rows", (double)k->rows);
  cJSON_AddNumberToObject(l, "cols", (double)k->cols);
  cJSON_AddNumberToObject(l, "grid", (double)grid);
  cJSON_AddNumberToObject(l, "block", block);
  cJSON_AddNumberToObject(j, "bytes", cg_k_bytes(k));
  cJSON_AddNumberToObject(j, "flops", cg_k_flops(k));
  if (k->kind == CG_K_ROW) {
    cJSON *b = cJSON_AddArrayToObject(j, "buffers");
    for (int i = 0; i < k->nbuf; i++) {
      cJSON *x = cJSON_CreateObject();
      cJSON_AddStringToObject(x, "dtype", ir_dtype_name((ir_dtype)k->buf[i].dtype));
      cJSON_AddStringToObject(x, "shape", shape_names[k->buf[i].shape]);
      cJSON_AddStringToObject(x, "role", role_names[k->buf[i].role]);
      cJSON_AddItemToArray(b, x);
    }
    cJSON *s = cJSON_AddArrayToObject(j, "scalars");
    for (int i = 0; i < k->nscalar; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber(k->scalar_default[i]));
  } else {
    cJSON *a = cJSON_AddObjectToObject(j, "attention");
    cJSON_AddNumberToObject(a, "heads", k->attn.heads);
    cJSON_AddNumberToObject(a, "kv_heads", k->attn.kv_heads);
    cJSON_AddNumberToObject(a, "head_dim", k->attn.head_dim);
    cJSON_AddBoolToObject(a, "causal", k->attn.causal);
    cJSON_AddNumberToObject(a, "scale", k->attn.scale);
    cJSON_AddStringToObject(a, "dtype", ir_dtype_name((ir_dtype)k->attn.dtype));
    cJSON *e = cJSON_AddArrayToObject(j, "cuda_entries");
    const char *sfx[] = {"", "_pre", "_dkdv", "_dq"};
    for (int i = k->kind == CG_K_ATTN_FWD ? 0 : 1; i < (k->kind == CG_K_ATTN_FWD ? 1 : 4); i++) {
      char nm[256];
      snprintf(nm, sizeof nm, "%s%s", k->name, sfx[i]);
      cJSON_AddItemToArray(e, cJSON_CreateString(nm));
    }
  }
  return j;
}

/* group_json: one fusion group: its kernel and ops with their tensors. */
static cJSON *group_json(const ir_graph *g, const cg_group *gr, const char *kernel) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "kernel", kernel);
  cJSON *ops = cJSON_AddArrayToObject(j, "ops");
  for (int i = 0; i < gr->nops; i++) cJSON_AddItemToArray(ops, cJSON_CreateNumber(gr->ops[i]));
  cJSON *b = cJSON_AddArrayToObject(j, "buffers");
  if (gr->k)
    for (int i = 0; i < gr->k->nbuf; i++) cJSON_AddItemToArray(b, cJSON_CreateString(gr->k->buf[i].name));
  cJSON *s = cJSON_AddArrayToObject(j, "scalars");
  if (gr->k)
    for (int i = 0; i < gr->k->nscalar; i++) cJSON_AddItemToArray(s, cJSON_CreateString(gr->k->scalar[i]));
  (void)g;
  return j;
}

static bool emit_kernel(cctx *c, cg_kernel *k, cJSON *kj) {
  char path[4600];
  bool miss = false;
  char *src = cg_emit_cuda(k);
  if (!src) return false;
  snprintf(path, sizeof path, "%s/%s.cu", c->dir, k->name);
  bool ok = write_file(c, path, src, strlen(src));
  cJSON *pj = cJSON_AddObjectToObject(kj, "ptxas");
  if (ok && c->nvrtc) ok = ptx(c, k, src, 80, pj, &miss) && ptx(c, k, src, 90, pj, &miss);
  free(src);
  if (ok) ok = llvm(c, k, &miss);
  if (miss) c->built++;
  else c->hits++;
  return ok;
}

static void unfused_json(const ir_graph *g, const cg_fusion *f, cJSON *root) {
  cJSON *u = cJSON_AddArrayToObject(root, "unfused");
  for (int i = 0; i < f->n; i++) {
    const cg_group *gr = &f->g[i];
    if (gr->k) continue;
    const ir_op *o = &g->op[gr->ops[0]];
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "op", gr->ops[0]);
    cJSON_AddStringToObject(x, "kind", ir_ops[o->kind].name);
    cJSON_AddStringToObject(x, "output", o->nout ? g->t[o->out[0]].name : "");
    cJSON_AddBoolToObject(x, "library_call", gr->library);
    cJSON_AddStringToObject(x, "why", gr->why);
    cJSON_AddItemToArray(u, x);
  }
}

static int finish(cctx *c, const ir_graph *g, cJSON *root, int nuniq, const cg_fusion *f) {
  char path[4600];
  cJSON_AddNumberToObject(root, "cache_hits", c->hits);
  unfused_json(g, f, root);
  char *txt = cJSON_Print(root);
  snprintf(path, sizeof path, "%s/manifest.json", c->dir);
  bool ok = txt && write_file(c, path, txt, strlen(txt));
  free(txt);
  cJSON_Delete(root);
  if (!ok) return EXIT_BAD_INPUT;
  if (c->o->log) {
    fprintf(c->o->log, "kernels: %d (%d from cache), fusion groups %d, library calls %d, unfused ops %d\n", nuniq,
            c->hits, f->nkernels, f->nlibrary, f->nunfused);
    if (c->nvrtc) fprintf(c->o->log, "ptx: sm_80, sm_90 (NVRTC %d.%d)%s\n", c->nv_major, c->nv_minor,
                          c->ptxas ? "" : "; ptxas not found: no register counts");
    else fprintf(c->o->log, "ptx: skipped (NVRTC not found; set CUDA_HOME); wrote the .cu files\n");
    fprintf(c->o->log, "wrote %s\n", c->dir);
  }
  return EXIT_OK;
}

static cJSON *root_json(cctx *c, const ir_graph *g) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddNumberToObject(root, "version", 1);
  cJSON_AddStringToObject(root, "model", g->name ? g->name : "");
  cJSON_AddStringToObject(root, "activation_dtype", ir_dtype_name(c->o->act));
  cJSON_AddStringToObject(root, "abi_cpu", "void k(void **bufs, const int64_t *dims, const float *scalars)");
  cJSON_AddStringToObject(root, "abi_cuda", "k(T *b0, ..., long long rows, long long cols, float s0, ...)");
  cJSON_AddStringToObject(root, "llvm", cg_llvm_version());
  cJSON_AddStringToObject(root, "host", cg_llvm_host());
  if (c->nvrtc) {
    char v[32];
    snprintf(v, sizeof v, "%d.%d", c->nv_major, c->nv_minor);
    cJSON_AddStringToObject(root, "nvrtc", v);
  } else {
    cJSON_AddNullToObject(root, "nvrtc");
  }
  cJSON_AddBoolToObject(root, "ptx_skipped", !c->nvrtc);
  return root;
}

int cg_compile(const ir_graph *g, const cg_opts *o) {
  cctx c;
  memset(&c, 0, sizeof c);
  c.o = o;
  c.a = arena_new();
  snprintf(c.dir, sizeof c.dir, "%s/kernels", o->outdir);
  if ((mkdir(o->outdir, 0755) && errno != EEXIST) || (mkdir(c.dir, 0755) && errno != EEXIST)) {
    sbpc_error("cannot create %s: %s", c.dir, strerror(errno));
    arena_free(c.a);
    return EXIT_BAD_INPUT;
  }
  c.use_cache = !o->no_cache && cg_cache_dir(c.cache, sizeof c.cache);
  c.nvrtc = cg_nvrtc_available(&c.nv_major, &c.nv_minor);
  char px[4096];
  c.ptxas = cg_ptxas_path(px, sizeof px);
  cg_fusion *f = cg_fuse(g, o->act, c.a);
  for (int i = 0; i < f->n && o->tp > 1; i++) { /* heads per device under tensor parallelism */
    cg_kernel *k = f->g[i].k;
    if (k && k->kind != CG_K_ROW && k->attn.heads % o->tp == 0 && k->attn.kv_heads % o->tp == 0) {
      k->attn.heads /= o->tp;
      k->attn.kv_heads /= o->tp;
    }
  }
  cg_kernel **uniq = ARENA_ARRAY(c.a, cg_kernel *, f->n + 1);
  char **texts = ARENA_ARRAY(c.a, char *, f->n + 1);
  const char **gk = ARENA_ARRAY(c.a, const char *, f->n + 1);
  int nu = 0, rc = EXIT_OK;
  for (int i = 0; i < f->n; i++) {
    cg_kernel *k = f->g[i].k;
    if (!k) continue;
    char *t = cg_k_text(k);
    int u = 0;
    while (u < nu && strcmp(texts[u], t)) u++;
    if (u == nu) {
      texts[nu] = arena_strdup(c.a, t);
      uniq[nu] = k;
      k->name = kname(c.a, nu, k->ops);
      nu++;
    }
    gk[i] = uniq[u]->name;
    free(t);
  }
  cJSON *root = root_json(&c, g);
  cJSON *ks = cJSON_AddArrayToObject(root, "kernels");
  for (int u = 0; u < nu && rc == EXIT_OK; u++) {
    if (o->dump) cg_k_dump(uniq[u], stdout);
    cJSON *kj = kernel_json(uniq[u]);
    cJSON_AddItemToArray(ks, kj);
    if (!emit_kernel(&c, uniq[u], kj)) rc = c.write_failed ? EXIT_BAD_INPUT : EXIT_INTERNAL;
  }
  cJSON *gs = cJSON_AddArrayToObject(root, "groups");
  for (int i = 0; i < f->n; i++)
    if (f->g[i].k) cJSON_AddItemToArray(gs, group_json(g, &f->g[i], gk[i]));
  if (rc == EXIT_OK) rc = finish(&c, g, root, nu, f);
  else cJSON_Delete(root);
  arena_free(c.a);
  return rc;
}
