/* test_util.c — arena and diagnostics: located messages with the caret, a
 * whole line, a file as a whole and no file, all in the one form. */
#include "cu.h"
#include "util/arena.h"
#include "util/diag.h"
#include <string.h>
#include <stdlib.h>
#include <stdint.h>
#include <unistd.h>

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

/* A whole line (col 0) has no caret; a file as a whole and no file at all
 * print "who: kind: message" on stderr, captured here through a file. */
static void diag_forms(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  diag d;
  diag_init(&d, "l.txt", NULL, 0);
  d.out = f;
  diag_error(&d, (srcloc){3, 0}, "sequence of %d tokens does not fit", 9);
  fclose(f);
  CU_ASSERT_STRING_EQUAL(buf, "l.txt:3: error: sequence of 9 tokens does not fit\n");
  free(buf);

  FILE *cap = tmpfile();
  int saved = dup(2);
  fflush(stderr);
  dup2(fileno(cap), 2);
  diag_file_error("ck/state.json", "not a version-%d checkpoint state", 1);
  diag_file_note("p.json", "read");
  sbpc_error("rank %d: no answer", 3);
  sbpc_warn("w");
  sbpc_note("no JIT (%s)", "off");
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char got[512] = {0};
  rewind(cap);
  size_t n = fread(got, 1, sizeof got - 1, cap);
  fclose(cap);
  CU_ASSERT(n > 0);
  CU_ASSERT_STRING_EQUAL(got, "ck/state.json: error: not a version-1 checkpoint state\n"
                              "p.json: note: read\n"
                              "sbpc: error: rank 3: no answer\n"
                              "sbpc: warning: w\n"
                              "sbpc: note: no JIT (off)\n");
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("util", NULL, NULL);
  CU_ADD(s, arena_basic);
  CU_ADD(s, diag_caret);
  CU_ADD(s, diag_forms);
}
