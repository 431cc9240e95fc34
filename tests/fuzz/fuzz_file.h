/* fuzz_file.h — what the fuzz targets of path-reading readers share: the
 * input is written to one private temporary file per process (removed at
 * exit), and the reader's messages can be silenced around the call while
 * fd 2 is restored at once, so libFuzzer's and the sanitizers' reports stay
 * visible. Header-only (each target is its own executable). */
#ifndef SBPC_FUZZ_FILE_H
#define SBPC_FUZZ_FILE_H
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_path_buf[96];
static int fuzz_devnull = -1, fuzz_saved_fd = -1;

static void fuzz_file_remove(void) { unlink(fuzz_path_buf); }

/* fuzz_file: write data to this process's temp file (/tmp/sbpc-fuzz-NAME-PID.EXT)
 * and return its path. */
static inline const char *fuzz_file(const char *name, const char *ext, const uint8_t *data, size_t size) {
  if (!fuzz_path_buf[0]) {
    snprintf(fuzz_path_buf, sizeof fuzz_path_buf, "/tmp/sbpc-fuzz-%s-%d.%s", name, (int)getpid(), ext);
    fuzz_devnull = open("/dev/null", O_WRONLY);
    if (fuzz_devnull < 0) abort();
    atexit(fuzz_file_remove);
  }
  FILE *f = fopen(fuzz_path_buf, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  if (fclose(f) != 0) abort();
  return fuzz_path_buf;
}

/* fuzz_quiet / fuzz_loud: send stderr to /dev/null around a reader call. */
static inline void fuzz_quiet(void) {
  fuzz_saved_fd = dup(2);
  dup2(fuzz_devnull, 2);
}

static inline void fuzz_loud(void) {
  dup2(fuzz_saved_fd, 2);
  close(fuzz_saved_fd);
}
#endif
