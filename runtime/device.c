/* device.c — the GPU executor: one rank's step on a CUDA GPU, exactly as the
 * program's GPU part (format/program.h, fmt_gpu; docs/gpu.md) says.
 *
 * Setup (rt_dev_new): the driver, cuBLAS (and NCCL when dp > 1) through
 * runtime/cuda.c; the rank's device (local rank modulo the devices), its
 * primary context; every module's PTX for the device (DIR/gpu/NAME.sm_90.ptx
 * on compute capability 9.x and up, sm_80 on 8.x; its first line must name
 * the module's source hash, else the source in program.json is compiled
 * with NVRTC through the kernel cache) loaded with cuModuleLoadData; one
 * allocation per region at the program's sizes: the device activation arena
 * (registers at the GPU part's offsets), the persistent arena (parameters in
 * f32, gradient accumulators, AdamW state, at the CPU plan's offsets), the
 * 16-bit working copies, attention's scratch, the step's token ids and
 * labels, the losses. Parameters come from the host's persistent arena
 * (exec.c initialised them, or --weights / --resume): rt_dev_upload copies
 * it over and casts the working copies; rt_dev_download copies it back
 * (checkpoints).
 *
 * A step (rt_dev_step) walks the stage's static schedule once and enqueues
 * every actor; the host never waits for the device until the step's losses
 * are read at its end. Compute and optim actors go to the compute stream, in
 * schedule order, which satisfies every dependency among them (the arena
 * offsets were planned for that order). A data-parallel reduce goes to the
 * communication stream: an event recorded on the compute stream at its
 * place in the schedule (after the bucket's last gradient) is waited on,
 * NCCL all-reduces the bucket's contiguous accumulators, and an event the
 * bucket's optim actor waits on is recorded; the backward kernels after it
 * keep running on the compute stream meanwhile. Per op: cuBLAS
 * (cublasGemmStridedBatchedEx, row-major operands swapped into cuBLAS's
 * column-major view, f32 accumulate), codegen's attention (the backward
 * first reruns the forward into scratch for lse), codegen's row kernels and
 * ops_cuda.c's kernels (cuLaunchKernel), byte copies, or the host (inputs
 * copied back and converted to f32, the CPU reference kernel, outputs
 * converted and copied up: correct, slow, counted). A gradient output is
 * added into its f32 accumulator (sb_acc_*), times 1 / (dp x micro-batches).
 *
 * Mixed precision is the program's: 16-bit activations, f32 master weights,
 * accumulators and AdamW state (sb_adamw writes the master and its working
 * copy). fp16 adds dynamic loss scaling: the cross-entropy gradient is
 * multiplied by the scale S (2^16 at first), accumulators get 1 / S of it,
 * the updates wait to the end of the step, where sb_finite flags an overflow
 * in any accumulator and sb_adamw then skips itself; the host reads the flag
 * with the losses, halves S on an overflow (the step is not counted by
 * AdamW's bias correction) and doubles it after 2000 good steps.
 *
 * Not here yet (refused before any step, naming the layout): tensor and
 * pipeline parallelism and ZeRO on the GPU. */
#include "runtime/exec_priv.h"
#include "runtime/cuda.h"
#include "codegen/cg.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_ACC_F32, R_ACC_BF16, R_ACC_F16, R_ADAMW, R_CAST_BF16, R_CAST_F16, R_FINITE, R_SCALE_F32, R_SCALE_BF16, R_SCALE_F16, R_N };

struct rt_dev {
  rt_exec *e;
  const fmt_gpu *G;
  const fmt_gstage *gs;
  int dev, arch;
  char name[256];
  rt_hnd ctx, s[FMT_NSTREAMS], blas, nccl_dp;
  rt_hnd *mod;
  rt_hnd **fn;                 /* per module, per entry */
  rt_dptr arena, pers, work, scratch, data, loss;
  int64_t *pers_off, *acc_off, *work_off; /* per tensor, -1: none */
  int *reduce_of;              /* per bucket: its reduce actor, or -1 */
  rt_hnd *ev;                  /* per actor: the reduce's completion */
  rt_hnd ev_grads;
  int64_t mb_elems;
  double loss_scale;
  int64_t good, skipped;
  size_t free0;
  int64_t peak, host_ops;
  bool failed;
};

/* ---- errors ------------------------------------------------------------------- */
static bool cu_ok(rt_dev *d, int r, const char *what) {
  if (!r) return true;
  if (!d->failed) sbpc_error("rank %d: %s failed: %s", d->e->rank, what, rt_cu_errname(r));
  d->failed = true;
  return false;
}
#define CU(d, call) cu_ok((d), (call), #call)

static int64_t dbytes(const rt_dev *d, ir_ref t) {
  return ir_numel(d->e->g, t) * ir_dtype_size((ir_dtype)d->G->dtype[t]);
}

/* ---- selection --------------------------------------------------------------------- */
int rt_device_choose(const fmt_prog *p, int want, char *why, size_t n) {
  char cw[512] = "";
  if (want == RT_DEVICE_CPU) {
    if (p->gpu && p->gpu->precision != IR_F32) {
      snprintf(why, n, "the program was compiled for the GPU in %s; the CPU executor runs f32 programs (recompile with "
                       "--precision f32, or without --device cuda)", ir_dtype_name((ir_dtype)p->gpu->precision));
      return -1;
    }
    return RT_DEVICE_CPU;
  }
  if (!p->gpu) {
    if (want == RT_DEVICE_AUTO) return RT_DEVICE_CPU;
    snprintf(why, n, "the program was compiled for the CPU; recompile it with `sbpc compile --device cuda` to run it on a GPU");
    return -1;
  }
  if (rt_cu_load(cw, sizeof cw)) return RT_DEVICE_CUDA;
  snprintf(why, n, "the program was compiled for the GPU but no GPU is usable here: %s%s", cw,
           want == RT_DEVICE_AUTO ? (p->gpu->precision == IR_F32 ? "; pass --device cpu to run it on the CPU" : "; it is "
                                     "a 16-bit program: recompile with --precision f32 to run it on the CPU") : "");
  return -1;
}

/* ---- setup --------------------------------------------------------------------------- */
static int local_rank(void) {
  const char *v[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"};
  for (int i = 0; i < 4; i++)
    if (getenv(v[i])) return atoi(getenv(v[i]));
  return 0;
}

static bool open_device(rt_dev *d) {
  int n = 0, maj = 0, min = 0;
  if (!CU(d, rt_cu.DeviceGetCount(&n)) || !CU(d, rt_cu.DeviceGet(&d->dev, local_rank() % (n > 0 ? n : 1)))) return false;
  rt_cu.DeviceGetName(d->name, sizeof d->name, d->dev);
  rt_cu.DeviceGetAttribute(&maj, RT_CU_DEVATTR_CC_MAJOR, d->dev);
  rt_cu.DeviceGetAttribute(&min, RT_CU_DEVATTR_CC_MINOR, d->dev);
  if (maj < 8) {
    sbpc_error("%s has compute capability %d.%d; the program's PTX needs 8.0 or newer", d->name, maj, min);
    return false;
  }
  d->arch = maj >= 9 ? 90 : 80;
  if (!CU(d, rt_cu.DevicePrimaryCtxRetain(&d->ctx, d->dev)) || !CU(d, rt_cu.CtxSetCurrent(d->ctx))) return false;
  size_t total = 0;
  CU(d, rt_cu.MemGetInfo(&d->free0, &total));
  for (int i = 0; i < FMT_NSTREAMS; i++)
    if (!CU(d, rt_cu.StreamCreate(&d->s[i], 1 /* CU_STREAM_NON_BLOCKING */))) return false;
  return !d->failed;
}

/* the PTX of module m: DIR/gpu/NAME.sm_XX.ptx when it is this module's, else NVRTC */
static char *module_ptx(rt_dev *d, const fmt_gmod *m) {
  char path[4400], head[64];
  snprintf(path, sizeof path, "%s/gpu/%s.sm_%d.ptx", d->e->cfg.dir ? d->e->cfg.dir : ".", m->name, d->arch);
  snprintf(head, sizeof head, "// sbpc module %016llx\n", (unsigned long long)m->hash);
  size_t len = 0;
  char *t = read_file(path, (size_t)1 << 28, &len);
  if (t && len > strlen(head) && !strncmp(t, head, strlen(head))) return t;
  free(t);
  char *log = NULL, *ptx = cg_nvrtc_module(m->cuda, m->name, d->arch, false, &log);
  if (!ptx) sbpc_error("module %s: no PTX in DIR/gpu and NVRTC failed: %s", m->name, log ? log : "");
  free(log);
  return ptx;
}

static bool load_modules(rt_dev *d) {
  const fmt_gpu *G = d->G;
  d->mod = xcalloc((size_t)G->nmod, sizeof *d->mod);
  d->fn = xcalloc((size_t)G->nmod, sizeof *d->fn);
  for (int i = 0; i < G->nmod; i++) {
    char *ptx = module_ptx(d, &G->mod[i]);
    if (!ptx) return false;
    bool ok = CU(d, rt_cu.ModuleLoadData(&d->mod[i], ptx));
    free(ptx);
    if (!ok) return sbpc_error("module %s did not load", G->mod[i].name), false;
    d->fn[i] = xcalloc((size_t)G->mod[i].nentry + 1, sizeof **d->fn);
    for (int k = 0; k < G->mod[i].nentry; k++)
      if (!CU(d, rt_cu.ModuleGetFunction(&d->fn[i][k], d->mod[i], G->mod[i].entry[k]))) return false;
  }
  return G->nmod > 0 && G->mod[0].nentry >= R_N;
}

static rt_dptr alloc(rt_dev *d, int64_t bytes) {
  rt_dptr p = 0;
  CU(d, rt_cu.MemAlloc(&p, (size_t)(bytes > 256 ? bytes : 256)));
  return p;
}

/* where each persistent tensor and working copy lives */
static void offsets(rt_dev *d) {
  const rt_exec *e = d->e;
  int nt = e->g->nt;
  d->pers_off = xmalloc(sizeof(int64_t) * (size_t)(nt + 1));
  d->acc_off = xmalloc(sizeof(int64_t) * (size_t)(nt + 1));
  d->work_off = xmalloc(sizeof(int64_t) * (size_t)(nt + 1));
  for (int t = 0; t <= nt; t++) d->pers_off[t] = d->acc_off[t] = d->work_off[t] = -1;
  for (int i = 0; i < e->st->npers; i++) {
    const fmt_pers *q = &e->st->pers[i];
    if (q->role == FMT_P_GRAD) d->acc_off[q->tensor] = q->offset;
    else d->pers_off[q->tensor] = q->offset;
  }
  for (int i = 0; i < d->gs->nwork; i++) d->work_off[d->gs->work[i].tensor] = d->gs->work[i].offset;
  d->reduce_of = xmalloc(sizeof(int) * (size_t)(e->p->nbucket + 1));
  for (int b = 0; b <= e->p->nbucket; b++) d->reduce_of[b] = -1;
  for (int a = 0; a < e->st->nact; a++)
    if (e->st->act[a].kind == FMT_A_REDUCE) d->reduce_of[e->st->act[a].bucket] = a;
}

/* attention's cu_seqlens at the start of the scratch: sequences of S tokens */
static bool fill_cu(rt_dev *d) {
  const ir_graph *g = d->e->g;
  for (int k = 0; k < g->nop; k++) {
    const fmt_gop *q = &d->G->op[k];
    if (q->kind != FMT_G_ATTN_FWD && q->kind != FMT_G_ATTN_BWD) continue;
    int64_t n = q->arg[FMT_GT_NSEQ];
    int32_t *cu = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
    for (int64_t i = 0; i <= n; i++) cu[i] = (int32_t)(i * q->arg[FMT_GT_SEQ]);
    bool ok = CU(d, rt_cu.MemcpyHtoDAsync(d->scratch, cu, sizeof(int32_t) * (size_t)(n + 1), d->s[FMT_S_COMPUTE]));
    free(cu); /* pageable: staged before the call returns */
    return ok;
  }
  return true;
}

static bool allocate(rt_dev *d) {
  const rt_exec *e = d->e;
  int64_t need = d->G->predicted_peak, data = 2 * e->M * d->mb_elems * 4;
  if (d->free0 && (size_t)need > d->free0) {
    sbpc_error("rank %d: the program needs %.1f MiB on the device but %s has %.1f MiB free", e->rank,
            need / 1048576.0, d->name, d->free0 / 1048576.0);
    return false;
  }
  d->arena = alloc(d, d->gs->arena_bytes);
  d->pers = alloc(d, e->st->persist_bytes);
  d->work = alloc(d, d->gs->work_bytes);
  d->scratch = alloc(d, d->gs->scratch_bytes);
  d->data = alloc(d, data);
  d->loss = alloc(d, 4 * (e->M + 1) + 4);
  return !d->failed && fill_cu(d);
}

static bool setup_libs(rt_dev *d) {
  char why[512];
  if (!rt_cublas_load(why, sizeof why)) return sbpc_error("cuBLAS: %s", why), false;
  if (rt_cu.blasCreate(&d->blas) || rt_cu.blasSetStream(d->blas, d->s[FMT_S_COMPUTE]))
    return sbpc_error("cuBLAS could not be set up on %s", d->name), false;
  if (d->e->dp <= 1) return true;
  if (!rt_nccl_load(why, sizeof why)) return sbpc_error("NCCL: %s", why), false;
  struct rt_nccl_id id;
  memset(&id, 0, sizeof id);
  if (d->e->dpi == 0 && rt_cu.ncclGetUniqueId(&id)) return sbpc_error("ncclGetUniqueId failed"), false;
  rt_comm_bcast(d->e->comm, RT_DP, &id, (int)sizeof id);
  int r = rt_cu.ncclCommInitRank(&d->nccl_dp, d->e->dp, id, d->e->dpi);
  if (r) return sbpc_error("NCCL communicator (dp): %s", rt_cu.ncclGetErrorString(r)), false;
  return true;
}

static bool supported(const rt_exec *e) {
  if (e->tp == 1 && e->pp == 1 && e->sp == 1 && e->p->vpp <= 1 && (e->dp == 1 || e->p->zero == 0)) return true;
  sbpc_error("the GPU executor runs data-parallel layouts without ZeRO (this program: dp %d, tp %d, "
                  "pp %d, sp %d, vpp %d, zero %d); the other layouts run on the CPU for now (--device cpu)",
          e->dp / e->sp, e->tp, e->pp, e->sp, e->p->vpp, e->p->zero);
  return false;
}

static bool events(rt_dev *d) {
  d->ev = xcalloc((size_t)d->e->st->nact + 1, sizeof *d->ev);
  for (int a = 0; a < d->e->st->nact; a++)
    if (d->e->st->act[a].kind == FMT_A_REDUCE && !CU(d, rt_cu.EventCreate(&d->ev[a], 2 /* CU_EVENT_DISABLE_TIMING */)))
      return false;
  return CU(d, rt_cu.EventCreate(&d->ev_grads, 2));
}

rt_dev *rt_dev_new(rt_exec *e) {
  char why[512];
  if (!e->p->gpu || !supported(e)) return NULL;
  if (!rt_cu_load(why, sizeof why)) return sbpc_error("%s", why), NULL;
  rt_dev *d = xcalloc(1, sizeof *d);
  d->e = e, d->G = e->p->gpu, d->gs = &e->p->gpu->stage[e->stage];
  d->mb_elems = e->p->micro_batch * e->p->seq;
  d->loss_scale = d->G->precision == IR_F16 ? 65536.0 : 1.0;
  offsets(d);
  if (!open_device(d) || !load_modules(d) || !setup_libs(d) || !allocate(d) || !events(d) || !rt_dev_upload(e, d)) {
    rt_dev_free(d);
    return NULL;
  }
  return d;
}

void rt_dev_free(rt_dev *d) {
  if (!d) return;
  if (d->ctx) {
    rt_dptr r[] = {d->arena, d->pers, d->work, d->scratch, d->data, d->loss};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
      if (r[i]) rt_cu.MemFree(r[i]);
    for (int a = 0; d->ev && a < d->e->st->nact; a++)
      if (d->ev[a]) rt_cu.EventDestroy(d->ev[a]);
    if (d->ev_grads) rt_cu.EventDestroy(d->ev_grads);
    if (d->blas) rt_cu.blasDestroy(d->blas);
    if (d->nccl_dp) rt_cu.ncclCommDestroy(d->nccl_dp);
    for (int i = 0; d->mod && i < d->G->nmod; i++)
      if (d->mod[i]) rt_cu.ModuleUnload(d->mod[i]);
    for (int i = 0; i < FMT_NSTREAMS; i++)
      if (d->s[i]) rt_cu.StreamDestroy(d->s[i]);
    rt_cu.DevicePrimaryCtxRelease(d->dev);
  }
  for (int i = 0; d->fn && i < d->G->nmod; i++) free(d->fn[i]);
  free(d->fn), free(d->mod), free(d->ev), free(d->pers_off), free(d->acc_off), free(d->work_off), free(d->reduce_of);
  free(d);
}

/* ---- launches ----------------------------------------------------------------------- */
static bool launch(rt_dev *d, rt_hnd fn, int64_t gx, int64_t gy, int64_t gz, int block, int stream, void **args) {
  if (!fn) return cu_ok(d, 1, "a kernel without a function");
  gx = gx < 1 ? 1 : gx > 2147483647 ? 2147483647 : gx;
  return CU(d, rt_cu.LaunchKernel(fn, (unsigned)gx, (unsigned)gy, (unsigned)gz, (unsigned)block, 1, 1, 0, d->s[stream], args, NULL));
}

static int64_t flat_grid(int64_t n) {
  int64_t b = (n + 255) / 256;
  return b < 1 ? 1 : b > 65536 ? 65536 : b;
}

/* x (n elements of dtype dt) scaled in place on the compute stream */
static bool scale(rt_dev *d, rt_dptr x, int64_t n, int dt, float s) {
  long long ln = n;
  void *args[] = {&x, &ln, &s};
  int k = dt == IR_BF16 ? R_SCALE_BF16 : dt == IR_F16 ? R_SCALE_F16 : R_SCALE_F32;
  return launch(d, d->fn[0][k], flat_grid(n), 1, 1, 256, FMT_S_COMPUTE, args);
}

/* acc (f32) += s * x (n elements of dtype dt) */
static bool accumulate(rt_dev *d, rt_dptr acc, rt_dptr x, int64_t n, int dt, double s) {
  long long ln = n;
  void *args[] = {&acc, &x, &ln, &s};
  int k = dt == IR_BF16 ? R_ACC_BF16 : dt == IR_F16 ? R_ACC_F16 : R_ACC_F32;
  return launch(d, d->fn[0][k], flat_grid(n), 1, 1, 256, FMT_S_COMPUTE, args);
}

/* ---- one op ----------------------------------------------------------------------------- */
typedef struct {
  rt_dptr in[IR_MAXIN], out[IR_MAXOUT];
  const ir_op *o;
  const fmt_gop *q;
  int64_t m;
} opcall;

/* op input i of actor a for micro-batch m on the device */
static rt_dptr input_ptr(const rt_dev *d, const fmt_actor *a, const ir_op *o, int i, int64_t m, bool work) {
  const rt_exec *e = d->e;
  ir_ref t = o->in[i];
  if (i < a->nin && a->in[i] >= 0) return d->arena + (rt_dptr)d->gs->offset[a->in[i]][m];
  if (e->g->t[t].kind == IR_T_INPUT) {
    int which = 0;
    for (int j = 0; j < t; j++) which += e->g->t[j].kind == IR_T_INPUT && e->g->t[j].dtype == IR_I32;
    return d->data + (rt_dptr)(((which ? e->M : 0) + m) * d->mb_elems * 4);
  }
  if (work && d->work_off[t] >= 0) return d->work + (rt_dptr)d->work_off[t];
  return d->pers_off[t] >= 0 ? d->pers + (rt_dptr)d->pers_off[t] : 0;
}

static bool row(rt_dev *d, const opcall *c) {
  const fmt_gop *q = c->q;
  rt_dptr b[FMT_G_MAXBIND];
  long long rows = q->arg[0], cols = q->arg[1];
  float sc[FMT_G_MAXSCALAR];
  void *args[FMT_G_MAXBIND + 2 + FMT_G_MAXSCALAR];
  int n = 0;
  for (int i = 0; i < q->nbind; i++) b[i] = q->bind[i] >= 0 ? c->in[q->bind[i]] : c->out[-1 - q->bind[i]], args[n++] = &b[i];
  args[n++] = &rows, args[n++] = &cols;
  for (int i = 0; i < q->nscalar; i++) sc[i] = q->scalar[i], args[n++] = &sc[i];
  return launch(d, d->fn[q->module][0], q->grid, 1, 1, q->block, FMT_S_COMPUTE, args);
}

/* the dropout base, exactly as kernels_cpu.c computes it */
static unsigned long long dropout_key(const rt_dev *d, const ir_op *o, int64_t m) {
  const rt_exec *e = d->e;
  uint64_t key = o->kind == IR_OP_DROPOUT && !o->recompute ? (uint64_t)o->out[0] : (uint64_t)o->at.n;
  return rt_hash64(e->cfg.seed ^ rt_hash64(key * 1000003u + (uint64_t)(e->step + 1) * 7919u + (uint64_t)m));
}

static bool kernel(rt_dev *d, const opcall *c) {
  void *args[IR_MAXIN + IR_MAXOUT + 2];
  rt_dptr p[IR_MAXIN + IR_MAXOUT];
  int n = 0;
  long long tpi = d->e->tpi;
  unsigned long long key = c->q->arg[0] ? dropout_key(d, c->o, c->m) : 0;
  for (int i = 0; i < c->o->nin; i++) p[n] = c->in[i], args[n] = &p[n], n++;
  for (int j = 0; j < c->o->nout; j++) p[n] = c->out[j], args[n] = &p[n], n++;
  args[n++] = &tpi, args[n++] = &key;
  return launch(d, d->fn[c->q->module][0], c->q->grid, 1, 1, c->q->block, FMT_S_COMPUTE, args);
}

static int cuda_type(int dt) { return dt == IR_BF16 ? RT_CUDA_R_16BF : dt == IR_F16 ? RT_CUDA_R_16F : RT_CUDA_R_32F; }

/* y = op(a) op(b), row-major; cuBLAS is column-major: y^T = op(b)^T op(a)^T */
static bool gemm(rt_dev *d, const opcall *c) {
  const int64_t *v = c->q->arg;
  float one = 1.0f, zero = 0.0f;
  int r = rt_cu.blasGemmStridedBatchedEx(
      d->blas, v[FMT_GA_TB] ? RT_CUBLAS_OP_T : RT_CUBLAS_OP_N, v[FMT_GA_TA] ? RT_CUBLAS_OP_T : RT_CUBLAS_OP_N,
      (int)v[FMT_GA_N], (int)v[FMT_GA_M], (int)v[FMT_GA_K], &one, (const void *)(uintptr_t)c->in[1],
      cuda_type((int)v[FMT_GA_DTB]), (int)v[FMT_GA_LDB], v[FMT_GA_SB], (const void *)(uintptr_t)c->in[0],
      cuda_type((int)v[FMT_GA_DTA]), (int)v[FMT_GA_LDA], v[FMT_GA_SA], &zero, (void *)(uintptr_t)c->out[0],
      cuda_type((int)v[FMT_GA_DTC]), (int)v[FMT_GA_LDC], v[FMT_GA_SC], (int)v[FMT_GA_BATCH], RT_CUBLAS_COMPUTE_32F,
      RT_CUBLAS_GEMM_DEFAULT);
  if (r && !d->failed) sbpc_error("rank %d: cublasGemmStridedBatchedEx failed (status %d)", d->e->rank, r);
  d->failed |= r != 0;
  return r == 0;
}

/* scratch layout of attention: cu_seqlens, lse, delta, the forward output */
static rt_dptr al256(rt_dptr x) { return (x + 255) / 256 * 256; }

static bool attention(rt_dev *d, const opcall *c) {
  const fmt_gop *q = c->q;
  const int64_t *v = q->arg;
  bool fwd = q->kind == FMT_G_ATTN_FWD;
  int sz = ir_dtype_size((ir_dtype)d->G->dtype[c->o->in[0]]), nfwd = fwd ? c->o->nin : c->o->nin - 2;
  long long ntok = v[FMT_GT_NSEQ] * v[FMT_GT_SEQ], qs = v[FMT_GT_QS], kvs = v[FMT_GT_KVS], os = v[FMT_GT_OS];
  rt_dptr cu = d->scratch, lse = al256(cu + (rt_dptr)(v[FMT_GT_NSEQ] + 1) * 4);
  rt_dptr delta = al256(lse + (rt_dptr)(v[FMT_GT_HEADS] * ntok * 4)), o2 = al256(delta + (rt_dptr)(v[FMT_GT_HEADS] * ntok * 4));
  bool fused = v[FMT_GT_FUSED];
  rt_dptr Q = c->in[0], K = fused ? Q + (rt_dptr)(v[FMT_GT_KOFF] * sz) : c->in[1], V = fused ? Q + (rt_dptr)(v[FMT_GT_VOFF] * sz) : c->in[2];
  rt_dptr O = fwd ? c->out[0] : o2;
  unsigned tiles = (unsigned)((v[FMT_GT_SEQ] + 63) / 64);
  void *fa[] = {&Q, &K, &V, &O, &lse, &cu, &ntok, &qs, &kvs, &os};
  if (!launch(d, d->fn[v[FMT_GT_FWDMOD]][0], tiles, v[FMT_GT_HEADS], v[FMT_GT_NSEQ], 64, FMT_S_COMPUTE, fa)) return false;
  if (fwd) return true;
  rt_dptr Og = c->in[nfwd], dO = c->in[nfwd + 1], dQ = c->out[0];
  rt_dptr dK = fused ? dQ + (rt_dptr)(v[FMT_GT_KOFF] * sz) : c->out[1], dV = fused ? dQ + (rt_dptr)(v[FMT_GT_VOFF] * sz) : c->out[2];
  void *ba[] = {&Q, &K, &V, &Og, &dO, &lse, &delta, &dQ, &dK, &dV, &cu, &ntok, &qs, &kvs, &os};
  rt_hnd *f = d->fn[q->module];
  int bk = (int)v[FMT_GT_BK];
  return launch(d, f[0], (ntok + 127) / 128, v[FMT_GT_HEADS], 1, 128, FMT_S_COMPUTE, ba) &&
         launch(d, f[1], (v[FMT_GT_SEQ] + bk - 1) / bk, v[FMT_GT_KVH], v[FMT_GT_NSEQ], bk, FMT_S_COMPUTE, ba) &&
         launch(d, f[2], tiles, v[FMT_GT_HEADS], v[FMT_GT_NSEQ], 64, FMT_S_COMPUTE, ba);
}

/* ---- the host path: 16-bit <-> f32 on the host ------------------------------------ */
static float h2f(uint16_t h) {
  int e = h >> 10 & 31, m = h & 1023, s = h >> 15;
  float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
  return s ? -v : v;
}

static uint16_t f2h(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t s = u >> 16 & 0x8000, a = u & 0x7fffffff;
  if (a >= 0x7f800000) return (uint16_t)(s | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
  if (a >= 0x477ff000) return (uint16_t)(s | 0x7c00); /* rounds past the largest half */
  if (a < 0x38800000) return (uint16_t)(s | (uint32_t)lrintf(fabsf(f) * 16777216.0f)); /* subnormal */
  uint32_t r = a - 0x38000000, h = r >> 13, rem = r & 0x1fff;
  h += rem > 0x1000 || (rem == 0x1000 && (h & 1));
  return (uint16_t)(s | h);
}

static void to_f32(const void *src, int dt, float *dst, int64_t n) {
  const uint16_t *h = src;
  for (int64_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)h[i] << 16;
    if (dt == IR_BF16) memcpy(&dst[i], &u, 4);
    else dst[i] = h2f(h[i]);
  }
}

static void from_f32(const float *src, int dt, void *dst, int64_t n) {
  uint16_t *h = dst;
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    h[i] = dt == IR_BF16 ? (uint16_t)((u + 0x7fffu + (u >> 16 & 1u)) >> 16) : f2h(src[i]);
  }
}

/* tensor t between the device (its device dtype) and an f32/i32 host buffer */
static void *host_copy(rt_dev *d, ir_ref t, rt_dptr p, bool fetch) {
  int dt = d->G->dtype[t];
  int64_t n = ir_numel(d->e->g, t), b = dbytes(d, t);
  void *raw = xmalloc((size_t)(b > 0 ? b : 4));
  if (fetch) CU(d, rt_cu.MemcpyDtoH(raw, p, (size_t)b));
  if (dt != IR_BF16 && dt != IR_F16) return raw;
  float *f = xmalloc(sizeof(float) * (size_t)(n + 1));
  if (fetch) to_f32(raw, dt, f, n);
  free(raw);
  return f;
}

static bool host(rt_dev *d, const opcall *c) {
  rt_exec *e = d->e;
  const ir_op *o = c->o;
  void *in[IR_MAXIN], *out[IR_MAXOUT];
  if (!CU(d, rt_cu.StreamSynchronize(d->s[FMT_S_COMPUTE]))) return false;
  for (int i = 0; i < o->nin; i++) in[i] = host_copy(d, o->in[i], c->in[i], true);
  for (int j = 0; j < o->nout; j++) out[j] = host_copy(d, o->out[j], c->out[j], false);
  rt_kctx kc = {.step = e->step + 1, .seed = e->cfg.seed, .micro = c->m, .tp = e->tp, .tpi = e->tpi,
                .ce_ratio = 1.0, .sp = 1}; /* sp 1 on the GPU; packing is refused there */
  bool ok = rt_kernel(e->g, o, in, out, &kc);
  for (int j = 0; j < o->nout && ok; j++) {
    int dt = d->G->dtype[o->out[j]];
    int64_t n = ir_numel(e->g, o->out[j]), b = dbytes(d, o->out[j]);
    void *raw = out[j];
    if (dt == IR_BF16 || dt == IR_F16) raw = xmalloc((size_t)b + 2), from_f32(out[j], dt, raw, n);
    ok = CU(d, rt_cu.MemcpyHtoDAsync(c->out[j], raw, (size_t)b, d->s[FMT_S_COMPUTE])); /* in stream order */
    if (raw != out[j]) free(raw);
  }
  for (int i = 0; i < o->nin; i++) free(in[i]);
  for (int j = 0; j < o->nout; j++) free(out[j]);
  d->host_ops++;
  return ok;
}

/* ---- actors ----------------------------------------------------------------------------- */
static bool run_op(rt_dev *d, const fmt_actor *a, int64_t m) {
  rt_exec *e = d->e;
  opcall c = {{0}, {0}, &e->g->op[a->op], &d->G->op[a->op], m};
  const ir_op *o = c.o;
  for (int i = 0; i < o->nin; i++) c.in[i] = input_ptr(d, a, o, i, m, c.q->work >> i & 1);
  for (int j = 0; j < o->nout; j++) c.out[j] = d->arena + (rt_dptr)d->gs->offset[a->out[j]][m];
  for (int j = 0; j < o->nout; j++)
    if (c.q->zero >> j & 1) CU(d, rt_cu.MemsetD8Async(c.out[j], 0, (size_t)dbytes(d, o->out[j]), d->s[FMT_S_COMPUTE]));
  bool ok;
  switch (c.q->kind) {
  case FMT_G_ROW: ok = row(d, &c); break;
  case FMT_G_KERNEL: ok = kernel(d, &c); break;
  case FMT_G_GEMM: ok = gemm(d, &c); break;
  case FMT_G_ATTN_FWD: case FMT_G_ATTN_BWD: ok = attention(d, &c); break;
  case FMT_G_COPY: ok = CU(d, rt_cu.MemcpyDtoDAsync(c.out[0], c.in[0], (size_t)dbytes(d, o->out[0]), d->s[FMT_S_COMPUTE])); break;
  case FMT_G_HOST: ok = host(d, &c); break;
  default: ok = cu_ok(d, 1, "an op the GPU part does not run");
  }
  if (ok && c.q->loss_scale) ok = scale(d, c.out[0], ir_numel(e->g, o->out[0]), d->G->dtype[o->out[0]], (float)d->loss_scale);
  for (int j = 0; j < o->nout && ok; j++)
    if (a->acc[j] >= 0 && d->acc_off[a->acc[j]] >= 0)
      ok = accumulate(d, d->pers + (rt_dptr)d->acc_off[a->acc[j]], c.out[j], ir_numel(e->g, o->out[j]), d->G->dtype[o->out[j]],
                      e->gscale / d->loss_scale);
  bool here = e->tpi == 0 || (e->g->t[e->g->loss].sbp.n == 1 && e->g->t[e->g->loss].sbp.a[0].kind == SBP_PSUM);
  if (ok && o->out[0] == e->g->loss && here)
    ok = CU(d, rt_cu.MemcpyDtoDAsync(d->loss + (rt_dptr)(4 * m), c.out[0], 4, d->s[FMT_S_COMPUTE]));
  return ok;
}

/* ZeRO 0: the bucket's contiguous accumulators all-reduced over dp on the
 * communication stream once its last gradient was enqueued */
static bool reduce(rt_dev *d, int k) {
  const rt_exec *e = d->e;
  const fmt_bucket *b = &e->p->bucket[e->st->act[k].bucket];
  int64_t lo = -1, hi = -1;
  for (int i = 0; i < b->nparam; i++) {
    const fmt_param *q = &e->p->param[b->param[i]];
    int64_t off = d->acc_off[q->tensor], end = off + ir_numel(e->g, q->tensor) * 4;
    if (off < 0) continue;
    lo = lo < 0 || off < lo ? off : lo;
    hi = end > hi ? end : hi;
  }
  if (lo < 0) return true;
  if (!CU(d, rt_cu.EventRecord(d->ev_grads, d->s[FMT_S_COMPUTE])) || !CU(d, rt_cu.StreamWaitEvent(d->s[FMT_S_COMM], d->ev_grads, 0)))
    return false;
  rt_dptr p = d->pers + (rt_dptr)lo;
  int r = rt_cu.ncclAllReduce((void *)(uintptr_t)p, (void *)(uintptr_t)p, (size_t)(hi - lo) / 4, RT_NCCL_F32, RT_NCCL_SUM,
                              d->nccl_dp, d->s[FMT_S_COMM]);
  if (r) return sbpc_error("ncclAllReduce: %s", rt_cu.ncclGetErrorString(r)), d->failed = true, false;
  return CU(d, rt_cu.EventRecord(d->ev[k], d->s[FMT_S_COMM]));
}

/* AdamW of bucket b's parameters on the compute stream (after its reduce) */
static bool optim(rt_dev *d, int b) {
  rt_exec *e = d->e;
  const fmt_bucket *bk = &e->p->bucket[b];
  int rk = d->reduce_of[b];
  if (e->dp > 1 && rk >= 0 && !CU(d, rt_cu.StreamWaitEvent(d->s[FMT_S_COMPUTE], d->ev[rk], 0))) return false;
  rt_dptr skip = d->G->precision == IR_F16 ? d->loss + (rt_dptr)(4 * (e->M + 1)) : 0;
  for (int i = 0; i < bk->nparam; i++) {
    const fmt_param *q = &e->p->param[bk->param[i]];
    if (d->pers_off[q->tensor] < 0 || d->acc_off[q->tensor] < 0) continue;
    const ir_attrs *at = &e->g->op[q->adamw].at;
    double t = (double)(e->step + 1 - d->skipped), bc1 = 1.0 - pow(at->beta1, t), bc2 = 1.0 - pow(at->beta2, t);
    double decay = 1.0 - at->lr * at->weight_decay, b1 = at->beta1, b2 = at->beta2, eps = at->eps, ss = at->lr / bc1, sq2 = sqrt(bc2);
    rt_dptr p = d->pers + (rt_dptr)d->pers_off[q->tensor], g = d->pers + (rt_dptr)d->acc_off[q->tensor];
    rt_dptr m = d->pers + (rt_dptr)d->pers_off[q->exp_avg], v = d->pers + (rt_dptr)d->pers_off[q->exp_avg_sq];
    rt_dptr w = d->work_off[q->tensor] >= 0 ? d->work + (rt_dptr)d->work_off[q->tensor] : 0;
    long long n = ir_numel(e->g, q->tensor);
    int wdt = d->G->precision == IR_BF16 ? 2 : 1;
    void *args[] = {&p, &g, &m, &v, &n, &decay, &b1, &b2, &eps, &ss, &sq2, &w, &wdt, &skip};
    if (!launch(d, d->fn[0][R_ADAMW], flat_grid(n), 1, 1, 256, FMT_S_COMPUTE, args)) return false;
  }
  return true;
}

/* fp16: flag an overflow in any accumulator (after every reduce) */
static bool finite_check(rt_dev *d) {
  const rt_exec *e = d->e;
  rt_dptr flag = d->loss + (rt_dptr)(4 * (e->M + 1));
  for (int a = 0; a < e->st->nact; a++)
    if (d->ev[a] && e->dp > 1 && !CU(d, rt_cu.StreamWaitEvent(d->s[FMT_S_COMPUTE], d->ev[a], 0))) return false;
  for (int i = 0; i < e->st->npers; i++) {
    const fmt_pers *q = &e->st->pers[i];
    if (q->role != FMT_P_GRAD) continue;
    rt_dptr x = d->pers + (rt_dptr)q->offset;
    long long n = q->bytes / 4;
    void *args[] = {&x, &n, &flag};
    if (!launch(d, d->fn[0][R_FINITE], flat_grid(n), 1, 1, 256, FMT_S_COMPUTE, args)) return false;
  }
  return true;
}

/* the step's start: accumulators zeroed, data up, losses and flag cleared */
static bool begin(rt_dev *d, const int32_t *ids, const int32_t *labels) {
  const rt_exec *e = d->e;
  rt_hnd s = d->s[FMT_S_COMPUTE];
  size_t n = (size_t)(e->M * d->mb_elems) * 4;
  for (int i = 0; i < e->st->npers; i++)
    if (e->st->pers[i].role == FMT_P_GRAD) CU(d, rt_cu.MemsetD8Async(d->pers + (rt_dptr)e->st->pers[i].offset, 0, (size_t)e->st->pers[i].bytes, s));
  return CU(d, rt_cu.MemcpyHtoDAsync(d->data, ids, n, s)) && CU(d, rt_cu.MemcpyHtoDAsync(d->data + n, labels, n, s)) &&
         CU(d, rt_cu.MemsetD8Async(d->loss, 0, (size_t)(4 * (e->M + 2)), s));
}

/* the step's end: wait, sum the losses, loss scaling, the measured peak */
static double finish(rt_dev *d) {
  const rt_exec *e = d->e;
  float *l = xcalloc((size_t)e->M + 2, sizeof *l);
  for (int i = 0; i < FMT_NSTREAMS; i++) CU(d, rt_cu.StreamSynchronize(d->s[i]));
  CU(d, rt_cu.MemcpyDtoH(l, d->loss, (size_t)(4 * (e->M + 2))));
  double sum = 0;
  for (int m = 0; m < e->M; m++) sum += l[m];
  int overflow;
  memcpy(&overflow, &l[e->M + 1], 4);
  if (d->G->precision == IR_F16 && overflow) d->loss_scale /= 2, d->skipped++, d->good = 0;
  else if (d->G->precision == IR_F16 && ++d->good % 2000 == 0) d->loss_scale *= 2;
  free(l);
  size_t fr = 0, total = 0;
  if (!rt_cu.MemGetInfo(&fr, &total) && d->free0 > fr && (int64_t)(d->free0 - fr) > d->peak) d->peak = (int64_t)(d->free0 - fr);
  return sum;
}

double rt_dev_step(rt_exec *e, const int32_t *ids, const int32_t *labels, bool *ok) {
  rt_dev *d = e->dev;
  const fmt_stage *st = e->st;
  bool f16 = d->G->precision == IR_F16;
  d->failed = !CU(d, rt_cu.CtxSetCurrent(d->ctx)) || !begin(d, ids, labels);
  for (int i = 0; i < st->nsched && !d->failed; i++) {
    const fmt_actor *a = &st->act[st->sched[i].actor];
    if (a->kind == FMT_A_COMPUTE) run_op(d, a, st->sched[i].micro);
    else if (a->kind == FMT_A_REDUCE && e->dp > 1) reduce(d, st->sched[i].actor);
    else if (a->kind == FMT_A_OPTIM && !f16) optim(d, a->bucket);
  }
  if (f16 && !d->failed && finite_check(d)) /* fp16: every update after the overflow check */
    for (int b = 0; b < e->p->nbucket && !d->failed; b++)
      if (e->p->bucket[b].stage == e->stage) optim(d, b);
  double loss = finish(d);
  *ok = !d->failed;
  return loss;
}

/* ---- parameters in and out ------------------------------------------------------------- */
bool rt_dev_upload(rt_exec *e, rt_dev *d) {
  if (!d) return true;
  /* copies go in the compute stream's order: a synchronous copy runs on the
   * legacy stream, which the non-blocking streams do not wait for */
  if (!CU(d, rt_cu.MemcpyHtoDAsync(d->pers, e->pers, (size_t)e->st->persist_bytes, d->s[FMT_S_COMPUTE]))) return false;
  for (int i = 0; i < d->gs->nwork; i++) {
    const fmt_gwork *w = &d->gs->work[i];
    rt_dptr x = d->pers + (rt_dptr)d->pers_off[w->tensor], y = d->work + (rt_dptr)w->offset;
    long long n = w->bytes / 2;
    void *args[] = {&x, &y, &n};
    if (!launch(d, d->fn[0][d->G->precision == IR_F16 ? R_CAST_F16 : R_CAST_BF16], flat_grid(n), 1, 1, 256, FMT_S_COMPUTE, args))
      return false;
  }
  return CU(d, rt_cu.StreamSynchronize(d->s[FMT_S_COMPUTE]));
}

bool rt_dev_download(rt_exec *e) {
  rt_dev *d = e->dev;
  return !d || (CU(d, rt_cu.StreamSynchronize(d->s[FMT_S_COMPUTE])) && CU(d, rt_cu.StreamSynchronize(d->s[FMT_S_COMM])) &&
                CU(d, rt_cu.MemcpyDtoH(e->pers, d->pers, (size_t)e->st->persist_bytes)));
}

int64_t rt_dev_peak(const rt_dev *d) {
  int64_t arenas = d->gs->arena_bytes + d->e->st->persist_bytes + d->gs->work_bytes + d->gs->scratch_bytes;
  return d->peak > arenas ? d->peak : arenas;
}

void rt_dev_describe(const rt_dev *d, char *buf, size_t n) {
  int nk[FMT_NGKINDS] = {0};
  for (int k = 0; k < d->e->g->nop; k++) nk[d->G->op[k].kind]++;
  snprintf(buf, n, "device: %s (sm_%d PTX), %s; %d GEMMs on cuBLAS, %d generated kernels, %d attention, %d ops on the host",
           d->name, d->arch, ir_dtype_name((ir_dtype)d->G->precision), nk[FMT_G_GEMM], nk[FMT_G_ROW] + nk[FMT_G_KERNEL],
           nk[FMT_G_ATTN_FWD] + nk[FMT_G_ATTN_BWD], nk[FMT_G_HOST]);
}

bool rt_cuda_usable(char *why, size_t n) { return rt_cu_load(why, n); }
