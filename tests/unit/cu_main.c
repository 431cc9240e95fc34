/* cu_main.c — the shared main of every CUnit suite (see cu.h). */
#include "cu.h"
#include <stdio.h>
#include <stdlib.h>

static const char *skip_why;

void cu_skip(const char *why) { skip_why = why; }

const char *cu_src(const char *rel) {
  static char buf[4][4096];
  static int k;
  const char *root = getenv("SBPC_SRC");
  char *b = buf[k++ & 3];
  snprintf(b, sizeof buf[0], "%s/%s", root ? root : ".", rel);
  return b;
}

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  cu_register();
  if (skip_why) {
    printf("skipped: %s\n", skip_why);
    CU_cleanup_registry();
    return 77;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  fails += CU_get_run_summary()->nSuitesFailed;
  CU_cleanup_registry();
  return fails ? 1 : 0;
}
