/* cmd_export.c — `sbpc export`. (Not in this build yet: the module that provides it
 * replaces this file.) */
#include "driver/driver.h"
#include "util/diag.h"

int cmd_export(int argc, char **argv) {
  (void)argc;
  (void)argv;
  sbpc_error("'sbpc export' is not available in this build");
  return EXIT_USAGE;
}
