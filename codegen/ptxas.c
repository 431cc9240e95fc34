/* ptxas.c — assemble PTX with the toolkit's ptxas to check it and to read
 * registers and spills per kernel (`ptxas -v`). Optional: when ptxas is not
 * found the manifest simply has no register counts. */
#include "codegen/cg.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool cg_ptxas_path(char *buf, size_t n) {
  const char *home = getenv("CUDA_HOME");
  if (!home || !*home) home = "/usr/local/cuda";
  snprintf(buf, n, "%s/bin/ptxas", home);
  return access(buf, X_OK) == 0;
}

/* parse: sum registers (max) and spill bytes over the entries of a -v log. */
static void parse(const char *log, int *regs, int *spills) {
  *regs = 0;
  *spills = 0;
  for (const char *p = log; (p = strstr(p, "Used ")); p += 5) {
    int r = atoi(p + 5);
    if (r > *regs) *regs = r;
  }
  for (const char *p = log; (p = strstr(p, "bytes spill stores")); p++) {
    const char *q = p;
    while (q > log && q[-1] == ' ') q--;
    while (q > log && q[-1] >= '0' && q[-1] <= '9') q--;
    *spills += atoi(q);
  }
}

int cg_ptxas(const char *ptx_path, int arch, int *regs, int *spills, char **log) {
  char exe[4096], cmd[8192];
  *log = NULL;
  *regs = *spills = 0;
  if (!cg_ptxas_path(exe, sizeof exe)) return -1;
  if (strchr(ptx_path, '\'')) return -1;
  snprintf(cmd, sizeof cmd, "'%s' -v -arch=sm_%d -o /dev/null '%s' 2>&1", exe, arch, ptx_path);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  size_t got;
  while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
    len += got;
    if (cap - len < 2) out = realloc(out, cap *= 2);
  }
  out[len] = 0;
  int st = pclose(p);
  parse(out, regs, spills);
  *log = out;
  return st == 0 ? 0 : 1;
}
