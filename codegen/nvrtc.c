/* nvrtc.c — CUDA C -> PTX through NVRTC, opened with dlopen at run time.
 *
 * The library is searched in $CUDA_HOME/lib64 (default /usr/local/cuda), then
 * on the default search path (libnvrtc.so, .so.13, .so.12); $SBPC_NVRTC, when
 * set, names the library to use instead ("none": behave as if absent). sbpc never links
 * against CUDA: one binary runs with or without the toolkit. This is the only
 * file that includes nvrtc.h (when the build found the headers, SBPC_CUDA_HOME
 * is defined, and the header is on the include path); otherwise the few types
 * are declared here. A failed compile
 * returns NULL with NVRTC's log; nothing here aborts. */
#include "codegen/cg.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#if defined(SBPC_CUDA_HOME) && defined(__has_include)
#if __has_include(<nvrtc.h>)
#include <nvrtc.h>
#define SBPC_HAVE_NVRTC_H 1
#endif
#endif
#ifndef SBPC_HAVE_NVRTC_H
typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;
#define NVRTC_SUCCESS 0
#endif

typedef struct {
  void *h;
  bool tried;
  nvrtcResult (*version)(int *, int *);
  nvrtcResult (*create)(nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
  nvrtcResult (*compile)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*ptx_size)(nvrtcProgram, size_t *);
  nvrtcResult (*ptx)(nvrtcProgram, char *);
  nvrtcResult (*log_size)(nvrtcProgram, size_t *);
  nvrtcResult (*log)(nvrtcProgram, char *);
  nvrtcResult (*destroy)(nvrtcProgram *);
  const char *(*errstr)(nvrtcResult);
} nvrtc_api;

static nvrtc_api api;

static void *sym(const char *name, bool *ok) {
  void *p = dlsym(api.h, name);
  if (!p) *ok = false;
  return p;
}

static bool resolve(void);

static bool load(void) {
  if (api.tried) return api.h != NULL;
  api.tried = true;
  const char *force = getenv("SBPC_NVRTC"); /* a library path, or "none" */
  if (force && *force) {
    api.h = strcmp(force, "none") ? dlopen(force, RTLD_NOW | RTLD_LOCAL) : NULL;
    return resolve();
  }
  const char *home = getenv("CUDA_HOME");
  if (!home || !*home) home = "/usr/local/cuda";
  char path[4096];
  const char *names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"};
  for (int i = 0; i < 3 && !api.h; i++) {
    snprintf(path, sizeof path, "%s/lib64/%s", home, names[i]);
    api.h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  }
  for (int i = 0; i < 3 && !api.h; i++) api.h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  return resolve();
}

/* resolve: the entry points of the opened library; false (and closed) when
 * one is missing. */
static bool resolve(void) {
  if (!api.h) return false;
  bool ok = true;
  *(void **)&api.version = sym("nvrtcVersion", &ok);
  *(void **)&api.create = sym("nvrtcCreateProgram", &ok);
  *(void **)&api.compile = sym("nvrtcCompileProgram", &ok);
  *(void **)&api.ptx_size = sym("nvrtcGetPTXSize", &ok);
  *(void **)&api.ptx = sym("nvrtcGetPTX", &ok);
  *(void **)&api.log_size = sym("nvrtcGetProgramLogSize", &ok);
  *(void **)&api.log = sym("nvrtcGetProgramLog", &ok);
  *(void **)&api.destroy = sym("nvrtcDestroyProgram", &ok);
  *(void **)&api.errstr = sym("nvrtcGetErrorString", &ok);
  if (!ok) {
    dlclose(api.h);
    api.h = NULL;
  }
  return api.h != NULL;
}

bool cg_nvrtc_available(int *major, int *minor) {
  if (!load()) return false;
  int a = 0, b = 0;
  if (api.version(&a, &b) != NVRTC_SUCCESS) return false;
  if (major) *major = a;
  if (minor) *minor = b;
  return true;
}

static char *dupmsg(const char *m) {
  char *s = malloc(strlen(m) + 1);
  strcpy(s, m);
  return s;
}

static char *prog_log(nvrtcProgram p) {
  size_t n = 0;
  if (api.log_size(p, &n) != NVRTC_SUCCESS || n == 0) return dupmsg("");
  char *s = malloc(n + 1);
  if (api.log(p, s) != NVRTC_SUCCESS) s[0] = 0;
  s[n] = 0;
  return s;
}

char *cg_nvrtc_ptx(const char *src, const char *name, int arch, char **log) {
  *log = NULL;
  if (!load()) {
    *log = dupmsg("NVRTC not found (set CUDA_HOME)");
    return NULL;
  }
  nvrtcProgram p = NULL;
  nvrtcResult r = api.create(&p, src, name, 0, NULL, NULL);
  if (r != NVRTC_SUCCESS) {
    *log = dupmsg(api.errstr(r));
    return NULL;
  }
  char archopt[64];
  snprintf(archopt, sizeof archopt, "--gpu-architecture=compute_%d", arch);
  const char *opts[] = {archopt, "--std=c++17", "--fmad=true"};
  r = api.compile(p, 3, opts);
  *log = prog_log(p);
  char *ptx = NULL;
  size_t n = 0;
  if (r == NVRTC_SUCCESS && api.ptx_size(p, &n) == NVRTC_SUCCESS && n > 0) {
    ptx = malloc(n + 1);
    if (api.ptx(p, ptx) != NVRTC_SUCCESS) {
      free(ptx);
      ptx = NULL;
    } else {
      ptx[n] = 0;
    }
  }
  api.destroy(&p);
  return ptx;
}

/* ---- the GPU program's modules (lower/gpu.c writes them, runtime/device.c
 * compiles them when DIR/gpu has no PTX): through the kernel cache */
char *cg_nvrtc_module(const char *src, const char *name, int arch, bool no_cache, char **log) {
  int maj = 0, min = 0;
  char what[96], dir[4096];
  *log = NULL;
  if (!cg_nvrtc_available(&maj, &min)) {
    *log = dupmsg("NVRTC not found (set CUDA_HOME)");
    return NULL;
  }
  const char *off = getenv("SBPC_NO_KERNEL_CACHE");
  bool cached = !no_cache && !(off && *off && strcmp(off, "0")) && cg_cache_dir(dir, sizeof dir);
  snprintf(what, sizeof what, "sbpc-gpu-module 1 nvrtc %d.%d sm_%d", maj, min, arch);
  uint64_t key = cg_hash(src, strlen(src), cg_hash(what, strlen(what), 0));
  size_t len;
  char *p = cached ? cg_cache_get(dir, key, "ptx", &len) : NULL;
  if (p) return p;
  p = cg_nvrtc_ptx(src, name, arch, log);
  if (p && cached) cg_cache_put(dir, key, "ptx", p, strlen(p));
  return p;
}
