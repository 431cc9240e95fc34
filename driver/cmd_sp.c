/* cmd_sp.c — `sbpc sp`. (Not in this build yet: the module that provides it
 * replaces this file.) */
#include "driver/driver.h"
#include "util/diag.h"

int cmd_sp(int argc, char **argv) {
  (void)argc;
  (void)argv;
  sbpc_error("'sbpc sp' is not available in this build");
  return EXIT_USAGE;
}
