/* cmd_import.c — `sbpc import hf CONFIG.json [-o MODEL.sbp] [--name NAME]`.
 *
 * Reads a Hugging Face config.json and writes the model in the sbpc language
 * (frontend/hf.h does the work). The text is built in a memory stream first,
 * so a bad config leaves no half-written output file. Exit 1 for a bad
 * config (or an output file that cannot be written), 2 for bad usage. The
 * options are a table (driver/opts.h). */
#include "driver/driver.h"
#include "driver/opts.h"
#include "frontend/hf.h"
#include "util/arena.h"
#include "util/diag.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES (16u << 20)

typedef struct {
  const char *config, *out, *name;
} import_args;

static const drv_command command = {
    .name = "import", .synopsis = "hf CONFIG.json|DIR [options]",
    .pos = {"hf", "CONFIG.json|DIR"}, .min_pos = 2,
    .about = "Write a Hugging Face config.json (gpt2, llama, mistral, bert) as an sbpc model;\n"
             "a directory means its config.json.",
};

static const drv_option options[] = {
    {DRV_OPT("-o", DRV_STR, import_args, out, "FILE", "write to FILE instead of standard output")},
    {DRV_OPT("--name", DRV_STR, import_args, name, "NAME", "the model's name (default: the config's model_type)")},
    {0}};

/* parse_args: fill *a from argv (argv[0] = "import"); -1 to go on, else the
 * exit status to return. */
static int parse_args(int argc, char **argv, import_args *a) {
  memset(a, 0, sizeof *a);
  const char *pos[DRV_MAXPOS];
  const drv_optset sets[] = {{options, a, NULL}, {0}};
  int rc = drv_args(&command, sets, argc, argv, pos);
  if (rc >= 0) return rc;
  if (strcmp(pos[0], "hf")) return drv_usage_error(&command, "unknown format '%s' (only 'hf' is supported)", pos[0]);
  a->config = pos[1];
  if (a->name && !fe_hf_valid_name(a->name))
    return drv_usage_error(&command, "'%s' cannot name a model (an identifier of at most 64 bytes, not a keyword)",
                           a->name);
  return -1;
}

/* origin: the command line, for the header comment of the written model. */
static char *origin(int argc, char **argv) {
  size_t n = 8;
  for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
  char *s = xmalloc(n);
  strcpy(s, "sbpc");
  for (int i = 0; i < argc; i++) strcat(strcat(s, " "), argv[i]);
  for (char *p = s; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  return s;
}

/* emit: write len bytes of text to path (or stdout when path is NULL). */
static int emit(const char *path, const char *text, size_t len) {
  FILE *f = path ? fopen(path, "w") : stdout;
  if (!f) {
    sbpc_error("cannot write '%s'", path);
    return EXIT_BAD_INPUT;
  }
  bool ok = fwrite(text, 1, len, f) == len;
  ok = (path ? fclose(f) : fflush(f)) == 0 && ok;
  if (!ok) sbpc_error("error writing '%s'", path ? path : "standard output");
  return ok ? EXIT_OK : EXIT_BAD_INPUT;
}

/* config_path: the config file; a directory (a downloaded checkpoint) means
 * its config.json. Returns malloc'ed memory. */
static char *config_path(const char *arg) {
  struct stat st;
  bool dir = stat(arg, &st) == 0 && S_ISDIR(st.st_mode);
  char *p = xmalloc(strlen(arg) + sizeof "/config.json");
  strcpy(p, arg);
  if (dir) strcat(p, "/config.json");
  return p;
}

int cmd_import(int argc, char **argv) {
  import_args a;
  int st = parse_args(argc, argv, &a);
  if (st >= 0) return st;
  size_t len;
  char *path = config_path(a.config);
  char *src = read_file(path, CONFIG_MAX_BYTES, &len);
  if (!src) {
    free(path);
    return EXIT_BAD_INPUT;
  }
  diag d;
  diag_init(&d, path, src, len);
  char *text = NULL, *from = origin(argc, argv);
  size_t tlen = 0;
  FILE *mem = open_memstream(&text, &tlen);
  if (!mem) {
    sbpc_error("out of memory");
    free(src), free(from), free(path);
    return EXIT_INTERNAL;
  }
  bool ok = fe_hf_import(path, src, len, a.name, from, mem, &d);
  fclose(mem);
  st = ok ? emit(a.out, text, tlen) : EXIT_BAD_INPUT;
  free(text), free(src), free(from), free(path);
  return st;
}
