/* optable.c — the op table built from ops.def, and lookup by name.
 * The per-op rules (shapes, signatures, costs, gradients) are in ops.c. */
#include "ir/ir.h"
#include <string.h>

const ir_opinfo ir_ops[IR_NOPKIND] = {
#define OP(name, str, mi, ma, no, kc, doc) {str, mi, ma, no, kc, doc},
#include "ir/ops.def"
#undef OP
};

int ir_op_lookup(const char *name) {
  for (int i = 0; i < IR_NOPKIND; i++)
    if (!strcmp(ir_ops[i].name, name)) return i;
  return -1;
}
