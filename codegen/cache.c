/* cache.c — the on-disk kernel cache.
 *
 * Directory: $SBPC_CACHE_DIR, else $XDG_CACHE_HOME/sbpc, else ~/.cache/sbpc.
 * An entry is one file KEY.EXT (KEY = 16 hex digits) holding a header line
 *   "sbpc-cache 1 CHECKSUM LENGTH\n"
 * and LENGTH bytes of payload, CHECKSUM being the FNV-1a hash of the payload.
 * Entries are written to a temporary file in the same directory and renamed
 * into place, so a reader never sees half an entry; an entry whose header,
 * length or checksum does not match is removed and reported as a miss, so the
 * caller rebuilds it. Keys hash the kernel text, the target and the compiler
 * versions (compile.c, runtime/jit.c). Payloads may be binary (the runtime's
 * KEY.rtjit.o object files); readers get them NUL-terminated all the same. */
#include "codegen/cg.h"
#include <errno.h>
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
    int r = mkdir(path, 0755);
    *p = '/';
    if (r && errno != EEXIST) return false;
  }
  return mkdir(path, 0755) == 0 || errno == EEXIST;
}

bool cg_cache_dir(char *buf, size_t n) {
  const char *d = getenv("SBPC_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
  int w;
  if (d && *d) w = snprintf(buf, n, "%s", d);
  else if (x && *x) w = snprintf(buf, n, "%s/sbpc", x);
  else if (h && *h) w = snprintf(buf, n, "%s/.cache/sbpc", h);
  else return false;
  if (w < 0 || (size_t)w >= n) return false;
  return mkdirs(buf);
}

static void entry_path(char *buf, size_t n, const char *dir, uint64_t key, const char *ext) {
  snprintf(buf, n, "%s/%016llx.%s", dir, (unsigned long long)key, ext);
}

char *cg_cache_get(const char *dir, uint64_t key, const char *ext, size_t *len) {
  char path[4096];
  entry_path(path, sizeof path, dir, key, ext);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned long long sum = 0, n = 0;
  char *data = NULL;
  bool ok = fscanf(f, "sbpc-cache 1 %llx %llu", &sum, &n) == 2 && fgetc(f) == '\n' && n <= CACHE_MAX;
  if (ok) {
    data = malloc((size_t)n + 1);
    ok = fread(data, 1, (size_t)n, f) == n && fgetc(f) == EOF;
    if (ok) {
      data[n] = 0;
      ok = cg_hash(data, (size_t)n, 0) == sum;
    }
  }
  fclose(f);
  if (!ok) {
    free(data);
    unlink(path); /* corrupt: never trusted, rebuilt by the caller */
    return NULL;
  }
  if (len) *len = (size_t)n;
  return data;
}

bool cg_cache_put(const char *dir, uint64_t key, const char *ext, const char *data, size_t len) {
  char path[4096], tmp[4200];
  entry_path(path, sizeof path, dir, key, ext);
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return false;
  fprintf(f, "sbpc-cache 1 %016llx %llu\n", (unsigned long long)cg_hash(data, len, 0), (unsigned long long)len);
  bool ok = fwrite(data, 1, len, f) == len;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return false;
  }
  return true;
}
