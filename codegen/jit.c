/* jit.c — ORC LLJIT for the CPU kernels.
 *
 * cg_jit_new hands an (optimised) module to a fresh LLJIT built from the same
 * host target machine the emitter used, with a process symbol generator so the
 * few libm calls left in the code (logf for row values) resolve. Kernels are
 * looked up by name; the code lives until cg_jit_free. cg_jit_from_ir loads
 * the optimised .ll files `sbpc compile` wrote instead of regenerating them.
 * cg_llvm_object runs the backend once on an optimised module and returns the
 * host object file; cg_jit_from_object links such an object into a fresh
 * LLJIT (RuntimeDyld relocates it, no LLVM IR, no O3, no instruction
 * selection), which is what the runtime's machine-code cache loads. The
 * object is emitted with the very target machine the JIT would use (host
 * CPU and features, JIT code model), so the code is the same either way. */
#include "codegen/llvm_priv.h"
#include <llvm-c/IRReader.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Linker.h>
#include <stdlib.h>
#include <string.h>

struct cg_jit {
  LLVMOrcLLJITRef j;
};

static bool err_out(LLVMErrorRef err, const char *what, char *why, size_t n) {
  if (!err) return false;
  char *s = LLVMGetErrorMessage(err);
  snprintf(why, n, "%s: %s", what, s);
  LLVMDisposeErrorMessage(s);
  return true;
}

static void dispose_module_parts(cg_llvm *m) {
  if (m->mod) LLVMDisposeModule(m->mod);
  if (m->tm) LLVMDisposeTargetMachine(m->tm);
  if (m->tsc) LLVMOrcDisposeThreadSafeContext(m->tsc);
  free(m);
}

/* a fresh LLJIT with the process symbol generator on its main dylib; takes
 * the target machine builder (NULL: detect the host) */
static cg_jit *lljit_new(LLVMOrcJITTargetMachineBuilderRef jtmb, char *why, size_t n) {
  LLVMOrcLLJITBuilderRef bld = LLVMOrcCreateLLJITBuilder();
  if (jtmb) LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(bld, jtmb);
  cg_jit *j = calloc(1, sizeof *j);
  if (err_out(LLVMOrcCreateLLJIT(&j->j, bld), "LLJIT", why, n)) {
    free(j);
    return NULL;
  }
  LLVMOrcDefinitionGeneratorRef gen = NULL;
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->j);
  if (!err_out(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->j), NULL, NULL),
               "symbol generator", why, n))
    LLVMOrcJITDylibAddGenerator(jd, gen);
  return j;
}

cg_jit *cg_jit_new(cg_llvm *m, char *why, size_t n) {
  if (!m->tm) {
    snprintf(why, n, "no LLVM target for this host");
    dispose_module_parts(m);
    return NULL;
  }
  LLVMOrcJITTargetMachineBuilderRef jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(m->tm);
  m->tm = NULL; /* owned by the builder now */
  cg_jit *j = lljit_new(jtmb, why, n);
  if (!j) {
    dispose_module_parts(m);
    return NULL;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m->mod, m->tsc);
  m->mod = NULL;
  LLVMOrcDisposeThreadSafeContext(m->tsc);
  m->tsc = NULL;
  free(m);
  if (err_out(LLVMOrcLLJITAddLLVMIRModule(j->j, LLVMOrcLLJITGetMainJITDylib(j->j), tsm), "adding module", why, n)) {
    cg_jit_free(j);
    return NULL;
  }
  return j;
}

cg_kfn cg_jit_kernel(cg_jit *j, const char *name) {
  LLVMOrcExecutorAddress a = 0;
  LLVMErrorRef err = LLVMOrcLLJITLookup(j->j, &a, name);
  if (err) {
    LLVMConsumeError(err);
    return NULL;
  }
  cg_kfn f;
  uintptr_t p = (uintptr_t)a;
  memcpy(&f, &p, sizeof f);
  return f;
}

void cg_jit_free(cg_jit *j) {
  if (!j) return;
  LLVMErrorRef err = LLVMOrcDisposeLLJIT(j->j);
  if (err) LLVMConsumeError(err);
  free(j);
}

cg_jit *cg_jit_compile(cg_kernel *const *ks, int n, char *why, size_t wn) {
  cg_llvm *m = cg_llvm_new("sbpc_kernels");
  for (int i = 0; i < n; i++)
    if (!cg_llvm_add(m, ks[i], why, wn)) {
      cg_llvm_free(m);
      return NULL;
    }
  if (!cg_llvm_optimize(m, why, wn)) {
    cg_llvm_free(m);
    return NULL;
  }
  return cg_jit_new(m, why, wn);
}

cg_llvm *cg_llvm_parse(const char *text, char *why, size_t wn) {
  cg_llvm *m = cg_llvm_new("sbpc_parsed");
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(text, strlen(text), "kernels.ll");
  LLVMModuleRef mod = NULL;
  char *msg = NULL;
  if (LLVMParseIRInContext(m->ctx, buf, &mod, &msg)) { /* takes buf */
    snprintf(why, wn, "LLVM IR: %s", msg ? msg : "parse error");
    LLVMDisposeMessage(msg);
    cg_llvm_free(m);
    return NULL;
  }
  if (LLVMLinkModules2(m->mod, mod)) { /* destroys mod */
    snprintf(why, wn, "LLVM IR: cannot link");
    cg_llvm_free(m);
    return NULL;
  }
  return m;
}

cg_jit *cg_jit_from_ir(const char *const *texts, int n, char *why, size_t wn) {
  cg_llvm *m = cg_llvm_new("sbpc_loaded");
  for (int i = 0; i < n; i++) {
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(texts[i], strlen(texts[i]), "kernel.ll");
    LLVMModuleRef mod = NULL;
    char *msg = NULL;
    if (LLVMParseIRInContext(m->ctx, buf, &mod, &msg)) { /* takes buf */
      snprintf(why, wn, "LLVM IR %d: %s", i, msg ? msg : "parse error");
      LLVMDisposeMessage(msg);
      cg_llvm_free(m);
      return NULL;
    }
    if (LLVMLinkModules2(m->mod, mod)) { /* destroys mod */
      snprintf(why, wn, "LLVM IR %d: cannot link (duplicate kernel?)", i);
      cg_llvm_free(m);
      return NULL;
    }
  }
  return cg_jit_new(m, why, wn);
}

bool cg_llvm_object(cg_llvm *m, char **obj, size_t *len, char *why, size_t n) {
  if (!m->tm) {
    snprintf(why, n, "no LLVM target for this host");
    return false;
  }
  char *msg = NULL;
  LLVMMemoryBufferRef buf = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(m->tm, m->mod, LLVMObjectFile, &msg, &buf)) {
    snprintf(why, n, "LLVM object emission: %s", msg ? msg : "?");
    LLVMDisposeMessage(msg);
    return false;
  }
  *len = LLVMGetBufferSize(buf);
  *obj = malloc(*len + 1);
  memcpy(*obj, LLVMGetBufferStart(buf), *len);
  (*obj)[*len] = 0;
  LLVMDisposeMemoryBuffer(buf);
  return true;
}

cg_jit *cg_jit_from_object(const char *obj, size_t len, char *why, size_t n) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  cg_jit *j = lljit_new(NULL, why, n);
  if (!j) return NULL;
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, len, "sbpc_kernels.o");
  if (err_out(LLVMOrcLLJITAddObjectFile(j->j, LLVMOrcLLJITGetMainJITDylib(j->j), buf), "adding object", why, n)) {
    cg_jit_free(j); /* buf is consumed either way */
    return NULL;
  }
  return j;
}
