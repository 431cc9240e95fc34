/* cuda.h — the CUDA libraries the GPU executor uses, opened with dlopen
 * (runtime/cuda.c is the only file that includes their headers): the driver
 * API (libcuda.so.1), cuBLAS (libcublas.so.13 or .12) and NCCL
 * (libnccl.so.2). One sbpc binary runs with or without them; nothing links
 * against CUDA. Types are the ABI's (handles are pointers, CUdeviceptr an
 * unsigned 64-bit integer, results ints); constants below are checked
 * against the real headers when the build has them. Prefix rt_cu. */
#ifndef SBPC_RT_CUDA_H
#define SBPC_RT_CUDA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef unsigned long long rt_dptr; /* CUdeviceptr */
typedef void *rt_hnd;               /* CUcontext, CUmodule, CUfunction, CUstream, CUevent, cublasHandle_t, ncclComm_t */

enum { RT_CU_DEVATTR_CC_MAJOR = 75, RT_CU_DEVATTR_CC_MINOR = 76, RT_CU_DEVATTR_SMS = 16 };
enum { RT_CUDA_R_32F = 0, RT_CUDA_R_16F = 2, RT_CUDA_R_16BF = 14 };
enum { RT_CUBLAS_OP_N = 0, RT_CUBLAS_OP_T = 1, RT_CUBLAS_COMPUTE_32F = 68, RT_CUBLAS_GEMM_DEFAULT = -1 };
enum { RT_NCCL_SUM = 0, RT_NCCL_MAX = 2, RT_NCCL_F16 = 6, RT_NCCL_F32 = 7, RT_NCCL_BF16 = 9, RT_NCCL_ID_BYTES = 128 };

struct rt_nccl_id {
  char internal[RT_NCCL_ID_BYTES]; /* ncclUniqueId */
};

/* The entry points, filled by rt_cu_load / rt_cublas_load / rt_nccl_load. */
typedef struct {
  /* driver */
  int (*Init)(unsigned);
  int (*DriverGetVersion)(int *);
  int (*DeviceGetCount)(int *);
  int (*DeviceGet)(int *, int);
  int (*DeviceGetName)(char *, int, int);
  int (*DeviceGetAttribute)(int *, int, int);
  int (*DevicePrimaryCtxRetain)(rt_hnd *, int);
  int (*DevicePrimaryCtxRelease)(int);
  int (*CtxSetCurrent)(rt_hnd);
  int (*ModuleLoadData)(rt_hnd *, const void *);
  int (*ModuleGetFunction)(rt_hnd *, rt_hnd, const char *);
  int (*ModuleUnload)(rt_hnd);
  int (*MemAlloc)(rt_dptr *, size_t);
  int (*MemFree)(rt_dptr);
  int (*MemGetInfo)(size_t *, size_t *);
  int (*MemcpyHtoD)(rt_dptr, const void *, size_t);
  int (*MemcpyDtoH)(void *, rt_dptr, size_t);
  int (*MemcpyHtoDAsync)(rt_dptr, const void *, size_t, rt_hnd);
  int (*MemcpyDtoHAsync)(void *, rt_dptr, size_t, rt_hnd);
  int (*MemcpyDtoDAsync)(rt_dptr, rt_dptr, size_t, rt_hnd);
  int (*MemsetD8Async)(rt_dptr, unsigned char, size_t, rt_hnd);
  int (*StreamCreate)(rt_hnd *, unsigned);
  int (*StreamDestroy)(rt_hnd);
  int (*StreamSynchronize)(rt_hnd);
  int (*StreamWaitEvent)(rt_hnd, rt_hnd, unsigned);
  int (*EventCreate)(rt_hnd *, unsigned);
  int (*EventDestroy)(rt_hnd);
  int (*EventRecord)(rt_hnd, rt_hnd);
  int (*EventSynchronize)(rt_hnd);
  int (*EventElapsedTime)(float *, rt_hnd, rt_hnd);
  int (*LaunchKernel)(rt_hnd, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, rt_hnd, void **,
                      void **);
  int (*GetErrorName)(int, const char **);
  /* cuBLAS */
  int (*blasCreate)(rt_hnd *);
  int (*blasDestroy)(rt_hnd);
  int (*blasSetStream)(rt_hnd, rt_hnd);
  int (*blasGemmStridedBatchedEx)(rt_hnd, int, int, int, int, int, const void *, const void *, int, int, long long,
                                  const void *, int, int, long long, const void *, void *, int, int, long long, int, int,
                                  int);
  int (*blasGetVersion)(rt_hnd, int *);
  /* NCCL */
  int (*ncclGetUniqueId)(void *);
  int (*ncclCommInitRank)(rt_hnd *, int, struct rt_nccl_id, int); /* the id by value */
  int (*ncclCommDestroy)(rt_hnd);
  int (*ncclAllReduce)(const void *, void *, size_t, int, int, rt_hnd, rt_hnd);
  int (*ncclGetVersion)(int *);
  const char *(*ncclGetErrorString)(int);
} rt_cuapi;

/* rt_cu: the loaded entry points (valid after the matching *_load). */
extern rt_cuapi rt_cu;

/* rt_cu_load: open the driver ($SBPC_CUDA_LIB names the library, default
 * libcuda.so.1), resolve every entry point, cuInit and count the devices.
 * False with why (the library and what failed: "cannot open ...", "cuInit
 * failed: CUDA_ERROR_NO_DEVICE", "no CUDA device") otherwise. Idempotent;
 * the answer is remembered. */
bool rt_cu_load(char *why, size_t n);
/* rt_cublas_load / rt_nccl_load: cuBLAS ($SBPC_CUBLAS_LIB; $CUDA_HOME/lib64,
 * then the default path) and NCCL ($SBPC_NCCL_LIB; libnccl.so.2); only
 * symbol resolution, no device needed. False with why. */
bool rt_cublas_load(char *why, size_t n);
bool rt_nccl_load(char *why, size_t n);
/* rt_cu_errname: "CUDA_ERROR_..." of a driver result (or its number). */
const char *rt_cu_errname(int r);
#endif
