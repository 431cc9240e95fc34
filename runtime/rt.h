/* rt.h — the thin executor: the public face of runtime/ (prefix rt_).
 *
 * The runtime runs a compiled program (format/program.h: the DIR that
 * `sbpc compile` wrote) and nothing else: it loads DIR/program.json, takes
 * the rank's stage, shards and actors from it, allocates the rank's two
 * arenas (persistent tensors and activations, at the offsets the compiler
 * planned), initialises or loads the parameters, and fires actors: compute
 * kernels on worker threads (codegen's JIT-compiled kernels, or the fp32
 * reference kernels), MPI point-to-point and collectives on the main thread
 * in the order the program fixes. It runs no front end, no autodiff, no SBP
 * deduction and no planning; no file of runtime/ includes a header of frontend/,
 * planner/ or lower/ (tests/layering.sh checks it).
 *
 * Memory: activations live in the rank's activation arena at the program's
 * offsets (an instance takes its bytes only once every earlier holder of
 * them let go: executor.c); parameters, their gradient accumulators (or
 * ZeRO-2 slices) and AdamW state in the persistent arena, for the whole run.
 * Anything else a kernel or a collective needs is malloc'ed and freed around
 * it. The measured peak is both arenas plus those temporaries at their
 * highest. See docs/runtime.md. */
#ifndef SBPC_RT_H
#define SBPC_RT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --kernels: ref, jit (an error when the JIT cannot be set up), or auto, the
 * default: jit, falling back to ref with a one-line note. */
enum { RT_KERNELS_REF, RT_KERNELS_JIT, RT_KERNELS_AUTO };
/* --device: cpu, cuda (the GPU executor, runtime/device.c; docs/gpu.md) or
 * auto, the default: cuda for a program compiled for the GPU (an error when
 * no GPU is usable), else cpu. */
enum { RT_DEVICE_AUTO, RT_DEVICE_CPU, RT_DEVICE_CUDA };

/* What a run adds to the program: its length, data, I/O and optimizer
 * settings. Nothing here changes what the program computes per step except
 * lr and weight decay (AdamW's hyper-parameters, applied at run time). */
typedef struct {
  int64_t steps;
  const char *data, *weights, *save, *resume, *log;
  const char *trace;     /* --trace FILE: the last step as a Chrome/Perfetto trace */
  double lr, weight_decay; /* < 0: the program's */
  uint64_t seed;
  int64_t eos;           /* --eos ID: packed programs' end-of-document token (-1: none) */
  bool quiet;            /* no per-step lines on stdout */
  int kernels;           /* RT_KERNELS_* */
  int device;            /* RT_DEVICE_* (rt_run resolves auto) */
  const char *dir;       /* the program's directory (set by rt_run: DIR/gpu holds the PTX) */
} rt_config;

/* rt_config_default: 5 steps, seed 1234, the program's lr and weight decay,
 * kernels auto. */
rt_config rt_config_default(void);

/* rt_cuda_usable: a CUDA driver and a device are here; else false with why
 * (`sbpc run MODEL.sbp` compiles for the GPU when one is usable). */
bool rt_cuda_usable(char *why, size_t n);

/* rt_run: train the program in directory dir: MPI init (when launched by
 * mpirun; the world size must be the program's rank count), weights or a
 * checkpoint, steps with `step N loss X tokens/s Y` lines, --log, --save.
 * Returns an exit status (util/diag.h). argc/argv are passed to MPI_Init. */
int rt_run(const char *dir, const rt_config *cfg, int *argc, char ***argv);
#endif
