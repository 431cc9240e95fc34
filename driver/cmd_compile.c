/* cmd_compile.c — `sbpc compile`. (Not in this build yet: the module that provides it
 * replaces this file.) */
#include "driver/driver.h"
#include "util/diag.h"

int cmd_compile(int argc, char **argv) {
  (void)argc;
  (void)argv;
  sbpc_error("'sbpc compile' is not available in this build");
  return EXIT_USAGE;
}
