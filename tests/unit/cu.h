/* cu.h — glue for the CUnit suites. Each tests/unit/test_*.c defines
 * cu_register(), which adds its suites with CU_add_suite/CU_add_test; cu_main.c
 * runs them with the basic interface and exits non-zero on any failure.
 * A suite that cannot run here (no MPI, no ptxas) calls cu_skip(why) from
 * cu_register: the executable then exits 77, CTest's skip code. */
#ifndef SBPC_CU_H
#define SBPC_CU_H
#include <CUnit/Basic.h>
void cu_register(void);
void cu_skip(const char *why);
/* cu_src: path of a file in the source tree (SBPC_SRC or the cwd). */
const char *cu_src(const char *rel);
#define CU_ADD(suite, fn) CU_add_test((suite), #fn, (fn))
#endif
