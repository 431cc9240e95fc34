/* cmd_import.c — `sbpc import hf CONFIG.json [-o MODEL.sbp] [--name NAME]`.
 *
 * Reads a Hugging Face config.json and writes the model in the sbpc language
 * (frontend/hf.h does the work). The text is built in a memory stream first,
 * so a bad config leaves no half-written output file. Exit 1 for a bad
 * config (or an output file that cannot be written), 2 for bad usage. */
#include "driver/driver.h"
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

static int usage(FILE *f, int status) {
  fprintf(f, "usage: sbpc import hf CONFIG.json|DIR [-o MODEL.sbp] [--name NAME]\n"
             "  Write a Hugging Face config.json (gpt2, llama, mistral, bert) as an sbpc model;\n"
             "  a directory means its config.json.\n"
             "  -o FILE      write to FILE instead of standard output\n"
             "  --name NAME  the model's name (default: the config's model_type)\n");
  return status;
}

/* parse_args: fill *a from argv (argv[0] = "import"); 0 on success, -1 after
 * printing the help, else the exit status to return. */
static int parse_args(int argc, char **argv, import_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      usage(stdout, EXIT_OK);
      return -1;
    }
    if ((!strcmp(s, "-o") || !strcmp(s, "--name")) && i + 1 < argc) {
      *(s[1] == 'o' ? &a->out : &a->name) = argv[++i];
    } else if (i == 1 && !strcmp(s, "hf")) {
      continue;
    } else if (s[0] == '-' && s[1]) {
      sbpc_error("import: unknown or incomplete option '%s'", s);
      return usage(stderr, EXIT_USAGE);
    } else if (i == 1) {
      sbpc_error("import: unknown format '%s' (only 'hf' is supported)", s);
      return usage(stderr, EXIT_USAGE);
    } else if (a->config) {
      sbpc_error("import: more than one config file");
      return usage(stderr, EXIT_USAGE);
    } else {
      a->config = s;
    }
  }
  if (argc < 2 || strcmp(argv[1], "hf") || !a->config) return usage(stderr, EXIT_USAGE);
  if (a->name && !fe_hf_valid_name(a->name)) {
    sbpc_error("import: '%s' cannot name a model (an identifier of at most 64 bytes, not a "
               "keyword)", a->name);
    return EXIT_USAGE;
  }
  return 0;
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
  if (st) return st < 0 ? EXIT_OK : st;
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
