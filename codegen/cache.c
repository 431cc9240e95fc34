/* cache.c — the on-disk kernel cache.
 *
 * Directory: $SBPC_CACHE_DIR, else $XDG_CACHE_HOME/sbpc, else ~/.cache/sbpc,
 * created 0700. Its entries are machine code that sbpc runs, so the directory
 * must be private: it is refused (the cache is not used, with a note) when it
 * is not owned by this user or is group- or world-writable, as ccache and
 * Python's __pycache__ do. An entry is one file KEY.EXT (KEY = 16 hex digits)
 * holding a header line
 *   "sbpc-cache 2 KEY CHECKSUM LENGTH\n"
 * and LENGTH bytes of payload, CHECKSUM being the FNV-1a hash of the payload.
 * The key inside the entry must be the one asked for: an object copied or
 * renamed from another key is foreign. Only a regular file owned by this user
 * and writable by no one else is read; it is opened without following links
 * and without blocking (a FIFO at an entry path is not waited on). An entry
 * that fails any of this, or whose header, length or checksum does not
 * match, is removed with a note and reported as a miss, so the caller
 * rebuilds it; entries of the old header version are replaced silently.
 * Entries are written to a new temporary file in the same directory (created
 * with O_EXCL | O_NOFOLLOW: a planted link is never written through) and
 * renamed into place, so a reader never sees half an entry. Keys hash the
 * kernel text, the target and the compiler versions (compile.c,
 * runtime/jit.c). Payloads may be binary (the runtime's KEY.rtjit.o object
 * files); readers get them NUL-terminated all the same. docs/security.md
 * states what this guarantees. */
#include "codegen/cg.h"
#include "util/os.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAX (256u << 20)

uint64_t cg_hash(const char *s, size_t n, uint64_t h) {
  if (!h) h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static bool mkdirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    int r = mkdir(path, 0700);
    *p = '/';
    if (r && errno != EEXIST) return false;
  }
  return mkdir(path, 0700) == 0 || errno == EEXIST;
}

/* is dir private: a directory owned by this user that no one else may write? */
static bool private_dir(const char *dir) {
  struct stat st;
  static bool said;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  if (st.st_uid == geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH))) return true;
  if (!said)
    sbpc_note("kernel cache '%s' is not private (owner uid %ld, mode %04o): not used; "
              "give SBPC_CACHE_DIR a folder of your own with mode 0700",
              dir, (long)st.st_uid, (unsigned)(st.st_mode & 07777));
  said = true;
  return false;
}

bool cg_cache_dir(char *buf, size_t n) {
  const char *d = getenv("SBPC_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
  int w;
  if (d && *d) w = snprintf(buf, n, "%s", d);
  else if (x && *x) w = snprintf(buf, n, "%s/sbpc", x);
  else if (h && *h) w = snprintf(buf, n, "%s/.cache/sbpc", h);
  else return false;
  if (w < 0 || (size_t)w >= n) return false;
  return mkdirs(buf) && private_dir(buf);
}

static void entry_path(char *buf, size_t n, const char *dir, uint64_t key, const char *ext) {
  snprintf(buf, n, "%s/%016llx.%s", dir, (unsigned long long)key, ext);
}

/* drop a bad entry (never trusted, rebuilt by the caller); why NULL: quietly */
static char *reject(const char *path, const char *why, FILE *f, char *data) {
  if (f) fclose(f);
  free(data);
  unlink(path); /* the directory is private: unlink removes a link, not its target */
  if (why) sbpc_note("kernel cache entry '%s' %s; rebuilding it", path, why);
  return NULL;
}

/* the entry at path, opened if it is a regular file of ours; NULL and *why
 * (NULL when there is simply no entry) otherwise */
static FILE *open_entry(const char *path, const char **why) {
  struct stat st;
  int fd = os_open_regular(path, true, &st);
  *why = NULL;
  if (fd < 0) {
    if (errno != ENOENT) *why = "is not a regular file";
    return NULL;
  }
  FILE *f = st.st_uid == geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH)) ? fdopen(fd, "rb") : NULL;
  if (!f) {
    close(fd);
    *why = "is not owned by you or is writable by others";
  }
  return f;
}

char *cg_cache_get(const char *dir, uint64_t key, const char *ext, size_t *len) {
  char path[4096];
  entry_path(path, sizeof path, dir, key, ext);
  const char *why;
  FILE *f = open_entry(path, &why);
  if (!f) return why ? reject(path, why, NULL, NULL) : NULL;
  unsigned long long k = 0, sum = 0, n = 0;
  int ver = 0;
  if (fscanf(f, "sbpc-cache %d ", &ver) != 1 || ver != 2) return reject(path, ver == 1 ? NULL : "has no valid header", f, NULL);
  if (fscanf(f, "%llx %llx %llu", &k, &sum, &n) != 3 || fgetc(f) != '\n' || n > CACHE_MAX)
    return reject(path, "has no valid header", f, NULL);
  if (k != key) return reject(path, "belongs to another key (copied or renamed)", f, NULL);
  char *data = malloc((size_t)n + 1);
  if (!data || fread(data, 1, (size_t)n, f) != n || fgetc(f) != EOF) return reject(path, "is truncated or too long", f, data);
  data[n] = 0;
  if (cg_hash(data, (size_t)n, 0) != sum) return reject(path, "fails its checksum", f, data);
  fclose(f);
  if (len) *len = (size_t)n;
  return data;
}

bool cg_cache_put(const char *dir, uint64_t key, const char *ext, const char *data, size_t len) {
  char path[4096], tmp[4200], head[128];
  entry_path(path, sizeof path, dir, key, ext);
  int fd = os_create_tmp(path, 0600, tmp, sizeof tmp);
  if (fd < 0) return false;
  int hl = snprintf(head, sizeof head, "sbpc-cache 2 %016llx %016llx %llu\n", (unsigned long long)key,
                    (unsigned long long)cg_hash(data, len, 0), (unsigned long long)len);
  if (!os_write_all(fd, head, (size_t)hl) || !os_write_all(fd, data, len)) {
    close(fd);
    unlink(tmp);
    return false;
  }
  return os_commit_tmp(fd, tmp, path, false);
}
