/* test_util.c — arena and diagnostics. */
#include "cu.h"
#include "util/arena.h"
#include "util/diag.h"
#include <string.h>
#include <stdlib.h>
#include <stdint.h>

static void arena_basic(void) {
  arena *a = arena_new();
  char *s = arena_strdup(a, "hello");
  CU_ASSERT_STRING_EQUAL(s, "hello");
  int *big = ARENA_ARRAY(a, int, 100000);
  CU_ASSERT_EQUAL(big[99999], 0);
  CU_ASSERT_EQUAL(((uintptr_t)big) % 16, 0);
  CU_ASSERT_STRING_EQUAL(arena_printf(a, "%d-%s", 7, "x"), "7-x");
  CU_ASSERT(arena_used(a) >= 400000);
  arena_free(a);
}

static void diag_caret(void) {
  const char *src = "model m {\n  param w : [H]\n}\n";
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  diag d;
  diag_init(&d, "t.sbp", src, strlen(src));
  d.out = f;
  d.color = 0;
  diag_error(&d, (srcloc){2, 14}, "unknown dim '%s'", "H");
  fclose(f);
  CU_ASSERT_STRING_EQUAL(buf, "t.sbp:2:14: error: unknown dim 'H'\n    param w : [H]\n               ^\n");
  CU_ASSERT_EQUAL(d.errors, 1);
  free(buf);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("util", NULL, NULL);
  CU_ADD(s, arena_basic);
  CU_ADD(s, diag_caret);
}
