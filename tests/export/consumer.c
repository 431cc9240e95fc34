/* consumer.c — an external program reading a plan through the installed C
 * API (include/sbpc/sbpc_plan.h, -lsbpc via pkg-config sbpc). tests/export.sh
 * builds it against a `cmake --install` tree when libsbpc is built. Prints
 * one line per stage; exits 1 with the reader's reason on a bad plan. */
#include <sbpc_plan.h>
#include <stdio.h>

int main(int argc, char **argv) {
  char err[256];
  sbpc_plan *p = argc > 1 ? sbpc_plan_read(argv[1], err, sizeof err) : NULL;
  if (!p) {
    fprintf(stderr, "%s: error: %s\n", argc > 1 ? argv[1] : "consumer", argc > 1 ? err : "no plan");
    return 1;
  }
  printf("%s: dp=%d tp=%d pp=%d on %d devices\n", p->model_name, p->dp, p->tp, p->pp, p->devices);
  for (int s = 0; s < p->nstages; s++)
    printf("stage %d: layers %d-%d (%d) on %d devices\n", s, p->stages[s].first_layer, p->stages[s].last_layer,
           p->stages[s].nlayers, p->stages[s].ndevices);
  sbpc_plan_free(p);
  return 0;
}
