/* test_safety.c — the defences of issue 13 at the function level (the
 * command-line side is tests/safety.sh): util/os.c's file creation that
 * never follows a planted link, opening that never blocks on a FIFO, mapping
 * and the memory check; diag_printable; the kernel cache (codegen/cache.c)
 * refusing a shared directory, an entry of another key, a FIFO, a link, an
 * entry writable by others, and never writing through a planted link; the
 * checkpoint state reader's ranges (runtime/ckpt.c); and the data loader
 * keeping any position inside the data. */
#include "cu.h"
#include "codegen/cg.h"
#include "runtime/rt_internal.h"
#include "util/diag.h"
#include "util/os.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static const char *tp(const char *name) {
  static char buf[8][160];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void put_text(const char *path, const char *s) {
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(s, f);
  fclose(f);
}

/* the whole (small) file as a string, or "" */
static const char *text_of(const char *path) {
  static char buf[256];
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = 0;
  return buf;
}

static int saved = -1;
static void quiet(void) {
  fflush(stderr);
  saved = dup(2);
  int fd = open("/dev/null", O_WRONLY);
  dup2(fd, 2);
  close(fd);
}
static void loud(void) {
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
}

static void create_never_follows(void) {
  put_text(tp("victim"), "precious");
  CU_ASSERT(symlink(tp("victim"), tp("link")) == 0);
  CU_ASSERT(os_create(tp("link"), 0644) < 0);   /* a planted link */
  CU_ASSERT(os_create(tp("victim"), 0644) < 0); /* an existing file */
  CU_ASSERT_STRING_EQUAL(text_of(tp("victim")), "precious");
  int fd = os_create(tp("fresh"), 0600);
  CU_ASSERT(fd >= 0);
  CU_ASSERT(os_write_all(fd, "abc", 3));
  close(fd);
  CU_ASSERT_STRING_EQUAL(text_of(tp("fresh")), "abc");
  char tmp[256];
  fd = os_create_tmp(tp("entry"), 0600, tmp, sizeof tmp);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT(strncmp(tmp, tp("entry"), strlen(tp("entry"))) == 0);
  CU_ASSERT(os_write_all(fd, "new", 3));
  CU_ASSERT(os_commit_tmp(fd, tmp, tp("link"), true)); /* replaces the link, not its target */
  CU_ASSERT_STRING_EQUAL(text_of(tp("victim")), "precious");
  CU_ASSERT_STRING_EQUAL(text_of(tp("link")), "new");
  unlink(tp("victim")), unlink(tp("link")), unlink(tp("fresh"));
}

static void open_regular_only(void) {
  CU_ASSERT_FATAL(mkfifo(tp("fifo"), 0600) == 0);
  errno = 0;
  CU_ASSERT(os_open_regular(tp("fifo"), false, NULL) < 0); /* returns at once: no writer needed */
  CU_ASSERT(errno == EINVAL);
  CU_ASSERT(os_open_regular(dir, false, NULL) < 0);
  put_text(tp("reg"), "x");
  CU_ASSERT(symlink(tp("reg"), tp("ln")) == 0);
  int fd = os_open_regular(tp("ln"), false, NULL);
  CU_ASSERT(fd >= 0);
  if (fd >= 0) close(fd);
  CU_ASSERT(os_open_regular(tp("ln"), true, NULL) < 0);
  quiet();
  size_t len = 1;
  CU_ASSERT_PTR_NULL(os_map(tp("fifo"), &len));
  loud();
  const void *p = os_map(tp("reg"), &len);
  CU_ASSERT(p && len == 1 && *(const char *)p == 'x');
  os_unmap(p, len);
  put_text(tp("empty"), "");
  p = os_map(tp("empty"), &len);
  CU_ASSERT(p != NULL && len == 0);
  os_unmap(p, len);
  unlink(tp("fifo")), unlink(tp("reg")), unlink(tp("ln")), unlink(tp("empty"));
}

static void memory_check(void) {
  double avail = os_mem_available();
  CU_ASSERT(avail > 0);
  CU_ASSERT(os_mem_check(1024, "a kilobyte"));
  setenv("SBPC_MEMORY_LIMIT", "1000000", 1);
  CU_ASSERT(os_mem_available() <= 1000000);
  quiet();
  CU_ASSERT_FALSE(os_mem_check(2e6, "two megabytes"));
  CU_ASSERT_FALSE(os_mem_check(1e300, "an absurd estimate"));
  loud();
  unsetenv("SBPC_MEMORY_LIMIT");
  CU_ASSERT(os_mem_available() == avail || os_mem_available() > 1000000);
}

static void printable(void) {
  char b[64];
  CU_ASSERT_STRING_EQUAL(diag_printable("h.0.attn", b, sizeof b), "h.0.attn");
  CU_ASSERT_STRING_EQUAL(diag_printable("\x1b]0;x\x07y", b, sizeof b), "\\x1b]0;x\\x07y");
  diag_printable("\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b\x1b", b, 24);
  CU_ASSERT(strlen(b) < 24 && strstr(b, "...") != NULL && strchr(b, 0x1b) == NULL);
}

/* ---- the kernel cache -------------------------------------------------------- */
static char cdir[160];

static const char *entry(uint64_t key) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%016llx.rtjit.o", cdir, (unsigned long long)key);
  return p;
}

static void cache_dir_private(void) {
  snprintf(cdir, sizeof cdir, "%s/cache", dir);
  char buf[256];
  setenv("SBPC_CACHE_DIR", cdir, 1);
  CU_ASSERT(cg_cache_dir(buf, sizeof buf));
  struct stat st;
  CU_ASSERT(stat(cdir, &st) == 0 && (st.st_mode & 077) == 0); /* created 0700 */
  chmod(cdir, 0777);
  quiet();
  CU_ASSERT_FALSE(cg_cache_dir(buf, sizeof buf)); /* world-writable: refused */
  chmod(cdir, 0770);
  CU_ASSERT_FALSE(cg_cache_dir(buf, sizeof buf)); /* group-writable: refused */
  loud();
  chmod(cdir, 0755);
  CU_ASSERT(cg_cache_dir(buf, sizeof buf));
  if (geteuid() == 0) { /* owned by someone else: refused (only root can make one here) */
    CU_ASSERT(chown(cdir, 65534, 65534) == 0);
    quiet();
    CU_ASSERT_FALSE(cg_cache_dir(buf, sizeof buf));
    loud();
    CU_ASSERT(chown(cdir, 0, 0) == 0);
  }
  chmod(cdir, 0700);
  unsetenv("SBPC_CACHE_DIR");
}

static void cache_foreign_entries(void) {
  size_t len = 0;
  CU_ASSERT_FATAL(cg_cache_put(cdir, 7, "rtjit.o", "payload-7", 9));
  char *got = cg_cache_get(cdir, 7, "rtjit.o", &len);
  CU_ASSERT(got && len == 9 && !memcmp(got, "payload-7", 9));
  free(got);
  /* a valid entry of key 7 renamed to key 8: foreign, removed, a miss */
  CU_ASSERT(rename(entry(7), entry(8)) == 0);
  quiet();
  CU_ASSERT_PTR_NULL(cg_cache_get(cdir, 8, "rtjit.o", &len));
  loud();
  CU_ASSERT(access(entry(8), F_OK) != 0);
  /* an entry others may write: not trusted */
  CU_ASSERT_FATAL(cg_cache_put(cdir, 9, "rtjit.o", "payload-9", 9));
  chmod(entry(9), 0666);
  quiet();
  CU_ASSERT_PTR_NULL(cg_cache_get(cdir, 9, "rtjit.o", &len));
  loud();
  /* the old header version: a quiet miss */
  put_text(entry(10), "sbpc-cache 1 0 0\n");
  CU_ASSERT_PTR_NULL(cg_cache_get(cdir, 10, "rtjit.o", &len));
  CU_ASSERT(access(entry(10), F_OK) != 0);
}

static void cache_fifo_and_links(void) {
  size_t len = 0;
  CU_ASSERT_FATAL(mkfifo(entry(11), 0600) == 0);
  quiet();
  CU_ASSERT_PTR_NULL(cg_cache_get(cdir, 11, "rtjit.o", &len)); /* no hang */
  loud();
  CU_ASSERT(access(entry(11), F_OK) != 0);
  /* a link at the entry path: never read through, never written through */
  put_text(tp("victim"), "precious");
  CU_ASSERT(symlink(tp("victim"), entry(12)) == 0);
  quiet();
  CU_ASSERT_PTR_NULL(cg_cache_get(cdir, 12, "rtjit.o", &len));
  loud();
  CU_ASSERT(symlink(tp("victim"), entry(12)) == 0);
  CU_ASSERT(cg_cache_put(cdir, 12, "rtjit.o", "payload-12", 10));
  CU_ASSERT_STRING_EQUAL(text_of(tp("victim")), "precious");
  struct stat st;
  CU_ASSERT(lstat(entry(12), &st) == 0 && S_ISREG(st.st_mode));
  /* links planted at every temporary name the writer would try */
  char tmp[300];
  for (unsigned i = 0; i < 64; i++) {
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", entry(13), (long)getpid(), i);
    CU_ASSERT(symlink(tp("victim"), tmp) == 0);
  }
  cg_cache_put(cdir, 13, "rtjit.o", "payload-13", 10); /* may fail; must not write the victim */
  CU_ASSERT_STRING_EQUAL(text_of(tp("victim")), "precious");
  for (unsigned i = 0; i < 64; i++) {
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", entry(13), (long)getpid(), i);
    unlink(tmp);
  }
  unlink(tp("victim"));
}

/* ---- checkpoint state and data positions ---------------------------------------- */
static bool state(const char *json, int64_t *step, int64_t *pos) {
  put_text(tp("state.json"), json);
  uint64_t model = 1;
  quiet();
  bool ok = rt_ckpt_read_state(tp("state.json"), step, pos, &model);
  loud();
  return ok;
}

static void state_ranges(void) {
  int64_t s = -1, p = -1;
  CU_ASSERT(state("{\"version\": 1, \"step\": 3, \"data_position\": 24, \"seed\": 1}", &s, &p));
  CU_ASSERT(s == 3 && p == 24);
  CU_ASSERT(state("{\"version\": 1, \"step\": 9007199254740992, \"data_position\": 0}", &s, &p));
  const char *bad[] = {
      "{\"version\": 1, \"step\": 1e300, \"data_position\": 0}",
      "{\"version\": 1, \"step\": 0, \"data_position\": 1e300}",
      "{\"version\": 1, \"step\": -1, \"data_position\": 0}",
      "{\"version\": 1, \"step\": 0, \"data_position\": -8}",
      "{\"version\": 1, \"step\": 1.5, \"data_position\": 0}",
      "{\"version\": 1, \"step\": 9007199254740994, \"data_position\": 0}",
      "{\"version\": 1, \"step\": \"3\", \"data_position\": 0}",
      "{\"version\": 1.5, \"step\": 0, \"data_position\": 0}",
      "{\"version\": 2, \"step\": 0, \"data_position\": 0}",
      "{\"version\": 1, \"step\": 0, \"data_position\": 0, \"model\": \"xyz\"}",
      "{\"version\": 1, \"step\": 0, \"data_position\": 0, \"model\": 5}",
      "[1, 2]",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CU_ASSERT_FALSE(state(bad[i], &s, &p));
  unlink(tp("state.json"));
}

static void data_positions(void) {
  rt_data d;
  rt_data_synthetic(&d, 4, 50, 3);
  int32_t ids[8], lab[8];
  int64_t far[] = {0, 2, 3, 1000000007, (int64_t)1 << 53, INT64_MAX - 1};
  for (size_t i = 0; i < sizeof far / sizeof *far; i++) {
    rt_data_batch(&d, far[i], 2, ids, lab); /* ASan: never outside the tokens */
    int64_t k = (int64_t)((uint64_t)far[i] % 3);
    const int32_t *tok = d.own; /* the synthetic stream (little-endian int32) */
    CU_ASSERT(ids[0] == tok[k * 5] && lab[3] == tok[k * 5 + 4]);
  }
  rt_data_free(&d);
}

static int setup(void) {
  snprintf(dir, sizeof dir, "/tmp/sbpc-safety-XXXXXX");
  return mkdtemp(dir) ? 0 : 1;
}

static int teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("safety", setup, teardown);
  CU_ADD(s, create_never_follows);
  CU_ADD(s, open_regular_only);
  CU_ADD(s, memory_check);
  CU_ADD(s, printable);
  CU_ADD(s, cache_dir_private);
  CU_ADD(s, cache_foreign_entries);
  CU_ADD(s, cache_fifo_and_links);
  CU_ADD(s, state_ranges);
  CU_ADD(s, data_positions);
}
