/* os.c — careful file creation, regular-file opening, mapping and the
 * available-memory query (the contracts are in os.h).
 *
 * Files sbpc writes where someone else might have planted a name are created
 * with O_CREAT | O_EXCL | O_NOFOLLOW, so a symbolic link or an existing file
 * at that name makes the creation fail instead of writing through it.
 * Inputs that may be large (token data, safetensors) are mapped rather than
 * read: a 40 GB file costs address space and page cache, not heap. Files are
 * opened with O_NONBLOCK and checked with fstat before use, so a FIFO at a
 * path is refused instead of blocking the run. Available memory is
 * /proc/meminfo's MemAvailable (sysconf's free pages elsewhere), lowered by
 * the cgroup v2 limit of this process, its address-space and data rlimits,
 * and $SBPC_MEMORY_LIMIT: the number a memory estimate is checked against
 * before anything is allocated. */
#include "util/os.h"
#include "util/diag.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

int os_create(const char *path, mode_t mode) {
  return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
}

int os_create_tmp(const char *path, mode_t mode, char *tmp, size_t tn) {
  static unsigned counter;
  for (int tries = 0; tries < 16; tries++) {
    int w = snprintf(tmp, tn, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    if (w < 0 || (size_t)w >= tn) return errno = ENAMETOOLONG, -1;
    int fd = os_create(tmp, mode);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

bool os_commit_tmp(int fd, const char *tmp, const char *path, bool sync) {
  bool ok = !sync || fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) unlink(tmp);
  return ok;
}

bool os_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w, n -= (size_t)w;
  }
  return true;
}

int os_open_regular(const char *path, bool nofollow, struct stat *st) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
  if (fd < 0) return -1;
  struct stat s;
  if (fstat(fd, &s) != 0 || !S_ISREG(s.st_mode)) {
    close(fd);
    return errno = EINVAL, -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (st) *st = s;
  return fd;
}

const void *os_map(const char *path, size_t *len) {
  struct stat st;
  int fd = os_open_regular(path, false, &st);
  if (fd < 0) {
    diag_file_error(path, "cannot open: %s", errno == EINVAL ? "not a regular file" : strerror(errno));
    return NULL;
  }
  *len = (size_t)st.st_size;
  static const char empty[1];
  void *p = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : (void *)empty;
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) {
    diag_file_error(path, "cannot map: %s", strerror(err));
    return NULL;
  }
  return p;
}

void os_unmap(const void *p, size_t len) {
  if (p && len) munmap((void *)p, len);
}

/* the number after `key` in /proc/meminfo, in bytes; -1 if absent */
static double meminfo(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  double v = -1;
  size_t kl = strlen(key);
  while (v < 0 && fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') v = 1024.0 * strtod(line + kl + 1, NULL);
  fclose(f);
  return v;
}

/* one number from a file (cgroup); -1 if missing or "max" */
static double number_in(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[64] = "";
  bool got = fgets(buf, sizeof buf, f) != NULL;
  fclose(f);
  char *end;
  double v = got ? strtod(buf, &end) : -1;
  return got && end != buf ? v : -1;
}

/* the cgroup v2 room of this process: memory.max - memory.current; -1 if none */
static double cgroup_room(void) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) return -1;
  char line[4096], path[4200];
  double room = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "0::", 3)) {
      line[strcspn(line, "\n")] = 0;
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
      double max = number_in(path);
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
      double cur = number_in(path);
      if (max >= 0) room = max - (cur > 0 ? cur : 0);
    }
  fclose(f);
  return room;
}

static double lower(double a, double b) { return b >= 0 && b < a ? b : a; }

double os_mem_available(void) {
  double avail = meminfo("MemAvailable");
  if (avail < 0) avail = (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  avail = lower(avail, cgroup_room());
  int lims[2] = {RLIMIT_AS, RLIMIT_DATA};
  for (int i = 0; i < 2; i++) {
    struct rlimit rl;
    if (getrlimit(lims[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) avail = lower(avail, (double)rl.rlim_cur);
  }
  const char *env = getenv("SBPC_MEMORY_LIMIT");
  char *end;
  double lim = env && *env ? strtod(env, &end) : -1;
  if (lim >= 0 && *end == 0) avail = lower(avail, lim);
  return avail;
}

bool os_mem_check(double bytes, const char *what) {
  double avail = os_mem_available();
  if (bytes <= avail) return true;
  sbpc_error("%s needs %.0f bytes (%.1f GiB) but only %.0f bytes (%.1f GiB) are available", what, bytes,
             bytes / 1073741824.0, avail, avail / 1073741824.0);
  return false;
}
