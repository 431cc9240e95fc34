/* cmd_plan.c — `sbpc plan`. (Not in this build yet: the module that provides it
 * replaces this file.) */
#include "driver/driver.h"
#include "util/diag.h"

int cmd_plan(int argc, char **argv) {
  (void)argc;
  (void)argv;
  sbpc_error("'sbpc plan' is not available in this build");
  return EXIT_USAGE;
}
