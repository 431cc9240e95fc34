/* main.c — sbpc's entry point: the command table and `sbpc help`.
 *
 * The commands, in the order a user meets them:
 *   check    parse, infer shapes, deduce SBP, insert boxing; print a summary
 *   import   write a .sbp model from a Hugging Face config.json
 *   plan     search the parallel layout; print the report, write plan JSON
 *   sp       per-batch adaptive sequence parallelism for variable lengths
 *   compile  fuse and generate kernels, write the actor plan
 *   run      execute a compiled plan (under mpirun for several ranks)
 *   export   Megatron-LM / DeepSpeed / torchtitan / DTensor configurations
 *   trace    a Chrome/Perfetto trace of one predicted step
 *   tune     measure this machine; autotune layouts by measurement */
#include "driver/driver.h"
#include "util/diag.h"
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} command;

static const command commands[] = {
    {"check", cmd_check, "parse a model, deduce SBP, insert boxing, print a summary"},
    {"import", cmd_import, "import a Hugging Face config.json as a .sbp model"},
    {"plan", cmd_plan, "find the fastest layout that fits; report and JSON plan"},
    {"sp", cmd_sp, "adaptive sequence parallelism for variable-length batches"},
    {"compile", cmd_compile, "generate fused kernels and the actor plan"},
    {"run", cmd_run, "train with a compiled plan (mpirun -np N sbpc run DIR)"},
    {"export", cmd_export, "export a plan for Megatron-LM, DeepSpeed, torchtitan, DTensor"},
    {"trace", cmd_trace, "write a Perfetto trace of one predicted step"},
    {"tune", cmd_tune, "measure this machine; autotune layouts by measurement"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
  fprintf(f, "usage: sbpc COMMAND [ARGS]\n\ncommands:\n");
  for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n'sbpc help COMMAND' or 'sbpc COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
    if (argc >= 3 && strcmp(name, "help") == 0) {
      for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, argv[2])) {
          char *hargv[] = {argv[2], "--help", NULL};
          return commands[i].fn(2, hargv);
        }
      sbpc_error("unknown command '%s'", argv[2]);
      return EXIT_USAGE;
    }
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(name, "--version")) {
    printf("sbpc 0.1\n");
    return EXIT_OK;
  }
  for (int i = 0; i < NCOMMANDS; i++)
    if (!strcmp(commands[i].name, name)) return commands[i].fn(argc - 1, argv + 1);
  sbpc_error("unknown command '%s' (try 'sbpc --help')", name);
  return EXIT_USAGE;
}
