/* cmd_run.c — `sbpc run`. (Not in this build yet: the module that provides it
 * replaces this file.) */
#include "driver/driver.h"
#include "util/diag.h"

int cmd_run(int argc, char **argv) {
  (void)argc;
  (void)argv;
  sbpc_error("'sbpc run' is not available in this build");
  return EXIT_USAGE;
}
