/* cuda.c — the CUDA driver API, cuBLAS and NCCL, opened with dlopen.
 *
 * This is the only file of the runtime that includes the CUDA headers, and
 * only to check, when the build found them (SBPC_HAVE_CUDA_HEADERS), that the
 * constants runtime/cuda.h declares are the real ones; the libraries are
 * never linked, so one build runs with or without a GPU (as codegen/nvrtc.c
 * does for NVRTC). Each library is opened once: $SBPC_CUDA_LIB,
 * $SBPC_CUBLAS_LIB or $SBPC_NCCL_LIB name a file to use instead of the
 * default (tests point them nowhere, or at the toolkit's stub libcuda, to see
 * the refusal). Versioned symbols are looked up by their ABI names
 * (cuMemAlloc_v2, cuEventElapsedTime_v2 with the plain name as a fallback,
 * cublasCreate_v2, ...). rt_cu_load also runs cuInit and counts the devices,
 * so "the driver is here but there is no GPU" is told apart from "no
 * driver". */
#include "runtime/cuda.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SBPC_HAVE_CUDA_HEADERS
#include <cuda.h>
#include <cublas_api.h>
#include <library_types.h>
#include <nccl.h>
_Static_assert((int)CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == (int)RT_CU_DEVATTR_CC_MAJOR, "cuda.h");
_Static_assert((int)CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == (int)RT_CU_DEVATTR_CC_MINOR, "cuda.h");
_Static_assert((int)CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT == (int)RT_CU_DEVATTR_SMS, "cuda.h");
_Static_assert((int)CUDA_R_32F == (int)RT_CUDA_R_32F && (int)CUDA_R_16F == (int)RT_CUDA_R_16F && (int)CUDA_R_16BF == (int)RT_CUDA_R_16BF, "library_types.h");
_Static_assert((int)CUBLAS_OP_N == (int)RT_CUBLAS_OP_N && (int)CUBLAS_OP_T == (int)RT_CUBLAS_OP_T, "cublas_api.h");
_Static_assert((int)CUBLAS_COMPUTE_32F == (int)RT_CUBLAS_COMPUTE_32F && (int)CUBLAS_GEMM_DEFAULT == (int)RT_CUBLAS_GEMM_DEFAULT, "cublas_api.h");
_Static_assert((int)ncclSum == (int)RT_NCCL_SUM && (int)ncclMax == (int)RT_NCCL_MAX && (int)ncclFloat32 == (int)RT_NCCL_F32, "nccl.h");
_Static_assert((int)ncclFloat16 == (int)RT_NCCL_F16 && (int)ncclBfloat16 == (int)RT_NCCL_BF16, "nccl.h");
_Static_assert(sizeof(ncclUniqueId) == sizeof(struct rt_nccl_id), "nccl.h");
_Static_assert(sizeof(CUdeviceptr) == sizeof(rt_dptr), "cuda.h");
#endif

rt_cuapi rt_cu;

typedef struct {
  void **slot;
  const char *name, *alt; /* alt: an older name of the same entry, or NULL */
} entry;

/* resolve: every entry of e[0..n) in h; false with the first missing name */
static bool resolve(void *h, const entry *e, int n, const char *lib, char *why, size_t wn) {
  for (int i = 0; i < n; i++) {
    *e[i].slot = dlsym(h, e[i].name);
    if (!*e[i].slot && e[i].alt) *e[i].slot = dlsym(h, e[i].alt);
    if (!*e[i].slot) {
      snprintf(why, wn, "%.300s has no %s", lib, e[i].name);
      return false;
    }
  }
  return true;
}

/* open: $env, else each of names in $CUDA_HOME/lib64 (when home), then on
 * the default path; the name opened into lib */
static void *open_lib(const char *env, const char *const *names, bool home, char *lib, size_t ln, char *why, size_t wn) {
  const char *force = getenv(env);
  void *h = NULL;
  if (force && *force) {
    snprintf(lib, ln, "%s", force);
    if (!(h = dlopen(force, RTLD_NOW | RTLD_LOCAL))) snprintf(why, wn, "cannot open %.300s (%s): %.150s", force, env, dlerror());
    return h;
  }
  const char *cuda = getenv("CUDA_HOME");
  for (int i = 0; home && names[i] && !h; i++) {
    snprintf(lib, ln, "%s/lib64/%s", cuda && *cuda ? cuda : "/usr/local/cuda", names[i]);
    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  }
  for (int i = 0; names[i] && !h; i++) {
    snprintf(lib, ln, "%s", names[i]);
    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  }
  if (!h) snprintf(why, wn, "cannot open %s (set %s to the library): %.200s", names[0], env, dlerror());
  return h;
}

#define E(f, n) {(void **)&rt_cu.f, n, NULL}
#define E2(f, n, a) {(void **)&rt_cu.f, n, a}

static const entry driver[] = {
    E(Init, "cuInit"), E(DriverGetVersion, "cuDriverGetVersion"), E(DeviceGetCount, "cuDeviceGetCount"),
    E(DeviceGet, "cuDeviceGet"), E(DeviceGetName, "cuDeviceGetName"), E(DeviceGetAttribute, "cuDeviceGetAttribute"),
    E(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    E2(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
    E(CtxSetCurrent, "cuCtxSetCurrent"), E(ModuleLoadData, "cuModuleLoadData"),
    E(ModuleGetFunction, "cuModuleGetFunction"), E(ModuleUnload, "cuModuleUnload"), E(MemAlloc, "cuMemAlloc_v2"),
    E(MemFree, "cuMemFree_v2"), E(MemGetInfo, "cuMemGetInfo_v2"), E(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    E(MemcpyDtoH, "cuMemcpyDtoH_v2"), E(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    E(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"), E(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    E(MemsetD8Async, "cuMemsetD8Async"), E(StreamCreate, "cuStreamCreate"),
    E2(StreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy"), E(StreamSynchronize, "cuStreamSynchronize"),
    E(StreamWaitEvent, "cuStreamWaitEvent"), E(EventCreate, "cuEventCreate"),
    E2(EventDestroy, "cuEventDestroy_v2", "cuEventDestroy"), E(EventRecord, "cuEventRecord"),
    E(EventSynchronize, "cuEventSynchronize"), E2(EventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime"),
    E(LaunchKernel, "cuLaunchKernel"), E(GetErrorName, "cuGetErrorName")};

static const entry blas[] = {E(blasCreate, "cublasCreate_v2"), E(blasDestroy, "cublasDestroy_v2"),
                             E(blasSetStream, "cublasSetStream_v2"),
                             E(blasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx"),
                             E(blasGetVersion, "cublasGetVersion_v2")};

static const entry nccl[] = {E(ncclGetUniqueId, "ncclGetUniqueId"), E(ncclCommInitRank, "ncclCommInitRank"),
                             E(ncclCommDestroy, "ncclCommDestroy"), E(ncclAllReduce, "ncclAllReduce"),
                             E(ncclGetVersion, "ncclGetVersion"), E(ncclGetErrorString, "ncclGetErrorString")};

#define N(a) ((int)(sizeof a / sizeof a[0]))

const char *rt_cu_errname(int r) {
  static __thread char buf[32];
  static const struct { int r; const char *s; } known[] = { /* when cuGetErrorName cannot say (the stub library) */
      {1, "CUDA_ERROR_INVALID_VALUE"}, {2, "CUDA_ERROR_OUT_OF_MEMORY"}, {3, "CUDA_ERROR_NOT_INITIALIZED"},
      {34, "CUDA_ERROR_STUB_LIBRARY"}, {35, "CUDA_ERROR_INSUFFICIENT_DRIVER"}, {100, "CUDA_ERROR_NO_DEVICE"},
      {218, "CUDA_ERROR_INVALID_PTX"}, {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"}, {999, "CUDA_ERROR_UNKNOWN"}};
  const char *s = NULL;
  if (rt_cu.GetErrorName && rt_cu.GetErrorName(r, &s) == 0 && s) return s;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (known[i].r == r) return known[i].s;
  snprintf(buf, sizeof buf, "CUDA error %d", r);
  return buf;
}

typedef struct {
  bool tried, ok;
  char why[512];
} once;

static bool remember(once *o, bool ok, char *why, size_t n) {
  o->tried = true, o->ok = ok;
  if (!ok) snprintf(why, n, "%s", o->why);
  return ok;
}

static bool replay(const once *o, char *why, size_t n) {
  if (!o->ok) snprintf(why, n, "%s", o->why);
  return o->ok;
}

bool rt_cu_load(char *why, size_t n) {
  static once o;
  if (o.tried) return replay(&o, why, n);
  static const char *const names[] = {"libcuda.so.1", "libcuda.so", NULL};
  char lib[4096];
  void *h = open_lib("SBPC_CUDA_LIB", names, false, lib, sizeof lib, o.why, sizeof o.why);
  if (!h || !resolve(h, driver, N(driver), lib, o.why, sizeof o.why)) return remember(&o, false, why, n);
  int r = rt_cu.Init(0), count = 0;
  if (r) {
    snprintf(o.why, sizeof o.why, "cuInit failed in %.300s: %s", lib, rt_cu_errname(r));
    return remember(&o, false, why, n);
  }
  if ((r = rt_cu.DeviceGetCount(&count)) || count < 1) {
    snprintf(o.why, sizeof o.why, "no CUDA device (%s)", r ? rt_cu_errname(r) : "the driver reports 0 devices");
    return remember(&o, false, why, n);
  }
  return remember(&o, true, why, n);
}

bool rt_cublas_load(char *why, size_t n) {
  static once o;
  if (o.tried) return replay(&o, why, n);
  static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", NULL};
  char lib[4096];
  void *h = open_lib("SBPC_CUBLAS_LIB", names, true, lib, sizeof lib, o.why, sizeof o.why);
  return remember(&o, h && resolve(h, blas, N(blas), lib, o.why, sizeof o.why), why, n);
}

bool rt_nccl_load(char *why, size_t n) {
  static once o;
  if (o.tried) return replay(&o, why, n);
  static const char *const names[] = {"libnccl.so.2", "libnccl.so", NULL};
  char lib[4096];
  void *h = open_lib("SBPC_NCCL_LIB", names, true, lib, sizeof lib, o.why, sizeof o.why);
  return remember(&o, h && resolve(h, nccl, N(nccl), lib, o.why, sizeof o.why), why, n);
}
