/* driver.h — the `sbpc` command line. main.c holds the command table; each
 * command lives in its own cmd_*.c and returns an exit status (util/diag.h).
 * common.c has what several commands share: loading a model and a cluster,
 * binding the training setup. */
#ifndef SBPC_DRIVER_H
#define SBPC_DRIVER_H

int cmd_check(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_sp(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_tune(int argc, char **argv);
#endif
