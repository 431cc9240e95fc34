/* fuzz_program.c — libFuzzer target for the program reader fmt_prog_parse
 * (format/program.c), which `sbpc run DIR` uses on DIR/program.json
 * (docs/actor-plan.md). It may not crash, hang or leak, and what it accepts
 * must be safe to execute: every register instance inside its stage's
 * arena (an into_acc register has none: offset 0; a view lies in an earlier
 * register's bytes), every persistent tensor inside the persistent arena, every actor's
 * registers, dependencies and waits in range (the reader's checks), which
 * this target re-checks independently. Seeds: tests/fuzz/corpus/program/
 * (`sbpc compile` outputs for 1 rank, dp, tp and pp, and broken ones). */
#include "format/program.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void check(const fmt_prog *p) {
  for (int s = 0; s < p->nstage; s++) {
    const fmt_stage *st = &p->stage[s];
    for (int r = 0; r < st->nreg; r++) {
      const fmt_reg *g = &st->reg[r];
      if (g->view >= r || (g->view >= 0 && g->into_acc)) abort();
      for (int m = 0; m < p->micro; m++)
        if (g->into_acc ? g->offset[m] != 0 : g->offset[m] < 0 || g->offset[m] + g->bytes > st->arena_bytes) abort();
    }
    for (int i = 0; i < st->npers; i++)
      if (st->pers[i].offset + st->pers[i].bytes > st->persist_bytes) abort();
    for (int a = 0; a < st->nact; a++)
      for (int i = 0; i < st->act[a].nin; i++)
        if (st->act[a].in[i] >= st->nreg) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  fmt_prog *p = fmt_prog_parse((const char *)data, size, err, sizeof err);
  if (p) check(p);
  fmt_prog_free(p);
  return 0;
}
