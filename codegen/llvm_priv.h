/* llvm_priv.h — what the LLVM files of codegen share (emit_llvm.c, attn_llvm.c,
 * jit.c); not part of the public interface. Only these files include llvm-c. */
#ifndef SBPC_CG_LLVM_PRIV_H
#define SBPC_CG_LLVM_PRIV_H
#include "codegen/cg.h"
#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

struct cg_llvm {
  LLVMOrcThreadSafeContextRef tsc;
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMTargetMachineRef tm;
  int width; /* f32 lanes of the explicit vector loops */
};

/* Small builder helpers shared by the emitters (emit_llvm.c). */
typedef struct {
  LLVMContextRef c;
  LLVMModuleRef m;
  LLVMBuilderRef b;
  LLVMValueRef fn;
} cg_ll;

/* cg_ll_loop_begin/end: a counted loop `for (i = lo; i < hi; i += step)` over
 * i64; begin leaves the builder in the body and returns i; end closes it. */
typedef struct {
  LLVMBasicBlockRef head, body, exit, pre;
  LLVMValueRef i, step;
} cg_ll_loop;
LLVMValueRef cg_ll_loop_begin(cg_ll *e, cg_ll_loop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step);
void cg_ll_loop_end(cg_ll *e, cg_ll_loop *l);
/* cg_ll_intr: call intrinsic `name` overloaded on type t with n args. */
LLVMValueRef cg_ll_intr(cg_ll *e, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n);
/* cg_ll_exp: a vectorisable expf (Cephes polynomial) on f32 or <N x f32>. */
LLVMValueRef cg_ll_exp(cg_ll *e, LLVMValueRef x);
/* cg_ll_const: an f32 constant (splat when t is a vector type). */
LLVMValueRef cg_ll_const(cg_ll *e, LLVMTypeRef t, double v);
LLVMValueRef cg_ll_i64(cg_ll *e, int64_t v);
/* cg_ll_ptr: element pointer base[idx] where base is an i8* from bufs[slot]. */
LLVMValueRef cg_ll_buf(cg_ll *e, LLVMValueRef bufs, int slot, LLVMTypeRef elem);
/* cg_attn_llvm: emit an attention kernel (attn_llvm.c). */
bool cg_attn_llvm(struct cg_llvm *m, const cg_kernel *k, char *why, size_t n);
#endif
