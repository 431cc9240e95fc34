/* os.h — the operating-system calls sbpc makes carefully, in one place:
 * creating files without following links or replacing what is there,
 * opening only regular files, mapping large inputs instead of reading them
 * whole, and checking a memory estimate against what the machine has before
 * allocating it. Errors print "path: error: why" (or "sbpc: error: ...") and
 * return a failure value; nothing here exits. */
#ifndef SBPC_OS_H
#define SBPC_OS_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* os_create: create path as a new regular file for writing (O_CREAT | O_EXCL
 * | O_NOFOLLOW: an existing file or a symbolic link there is never opened or
 * replaced); mode before the umask. Returns the fd, or -1 with errno set. */
int os_create(const char *path, mode_t mode);

/* os_create_tmp: a new temporary file next to path ("PATH.tmp.PID.N", made
 * with os_create, so a planted file or link at that name is never followed);
 * its name goes to tmp[0..tn). Returns the fd or -1. os_commit_tmp: fsync
 * (when sync), close and rename tmp over path; on any failure the temporary
 * file is removed and false returned. */
int os_create_tmp(const char *path, mode_t mode, char *tmp, size_t tn);
bool os_commit_tmp(int fd, const char *tmp, const char *path, bool sync);

/* os_write_all: write p[0..n) to fd, through short writes and EINTR. */
bool os_write_all(int fd, const void *p, size_t n);

/* os_open_regular: open path read-only if it is a regular file (a FIFO, a
 * device or a directory is refused without blocking; with nofollow a
 * symbolic link is refused too). *st gets its fstat (st may be NULL).
 * Returns the fd, or -1 with errno set (EINVAL: not a regular file). */
int os_open_regular(const char *path, bool nofollow, struct stat *st);

/* os_map: a regular file mapped read-only (private), for inputs that may be
 * larger than memory (the page cache holds them, not the heap); *len gets its
 * size. An empty file maps to a non-NULL pointer of length 0. Returns NULL
 * after "path: error: ..." when the file cannot be opened, is not a regular
 * file or cannot be mapped. os_unmap releases it (NULL is ok). */
const void *os_map(const char *path, size_t *len);
void os_unmap(const void *p, size_t len);

/* os_mem_available: bytes this process may still allocate: the machine's
 * MemAvailable, lowered by a cgroup memory limit, RLIMIT_AS/RLIMIT_DATA and
 * $SBPC_MEMORY_LIMIT (bytes) when they are smaller. */
double os_mem_available(void);

/* os_mem_check: true when `bytes` fits os_mem_available(); else prints
 * "sbpc: error: WHAT needs N bytes (X GiB) but only M bytes (Y GiB) are
 * available" and returns false. */
bool os_mem_check(double bytes, const char *what);
#endif
