/* replay.c — runs a fuzz target's corpus without libFuzzer, so the plain and
 * the ASan+UBSan CTest suites replay every checked-in input (and every past
 * finding, which is added to the corpus as regress-*) through the same
 * LLVMFuzzerTestOneInput the fuzzer calls.
 *
 * Usage: replay_NAME DIR|FILE ...  Each argument is a file, or a folder whose
 * regular files are replayed in name order. Exit 0 when every input returned
 * (a crash, a sanitizer report or a leak ends the process with its own
 * status), 1 when an argument cannot be read or holds no input at all. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return -1; }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;)
    if ((n += got) == cap) buf = realloc(buf, cap *= 2);
  fclose(f);
  if (!buf) { fprintf(stderr, "replay: out of memory on %s\n", path); return -1; }
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 1;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) { fprintf(stderr, "replay: cannot open %s\n", dir); return -1; }
  char **names = NULL;
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    names = realloc(names, sizeof *names * (n + 1));
    names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
    sprintf(names[n++], "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, by_name);
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (count >= 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
      int r = replay_file(names[i]);
      count = r < 0 ? -1 : count + r;
    }
    free(names[i]);
  }
  free(names);
  return count;
}

int main(int argc, char **argv) {
  int total = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    int r = stat(argv[i], &st) != 0 ? -1 : S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
    if (r < 0) return 1;
    total += r;
  }
  if (total == 0) { fprintf(stderr, "replay: no inputs\n"); return 1; }
  printf("replay: %d inputs, no finding\n", total);
  return 0;
}
