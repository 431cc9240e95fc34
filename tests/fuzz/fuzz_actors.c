/* fuzz_actors.c — libFuzzer target for the actor-plan reader
 * rt_read_actor_plan (runtime/actors.c), which `sbpc run DIR` uses on
 * DIR/actors.json (docs/actor-plan.md). The reader takes a path, so the input
 * is written to a private temporary file first. It may not crash, hang or
 * leak, and what it accepts must be a usable configuration: a model path and
 * a layout inside the runtime's limits. Seeds: tests/fuzz/corpus/actors/
 * (`sbpc compile` and `sbpc run --write-actors` outputs, and broken ones). */
#include "fuzz_file.h"
#include "runtime/rt.h"
#include "util/arena.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* quiet_read: the reader on path with its messages silenced. */
static bool quiet_read(const char *path, rt_config *c, arena *a) {
  fuzz_quiet();
  bool ok = rt_read_actor_plan(path, c, a);
  fuzz_loud();
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("actors", "json", data, size);
  rt_config c = rt_config_default();
  arena *a = arena_new();
  if (quiet_read(path, &c, a)) {
    const rt_layout *l = &c.lay;
    if (!c.model || l->dp < 1 || l->tp < 1 || l->pp < 1 || l->micro < 1 || l->dp > 4096 || l->tp > 4096 ||
        l->pp > 64 || l->micro > 4096 || c.global_batch < 1 || c.seq < 0)
      abort(); /* accepted a plan the runtime cannot run */
  }
  arena_free(a);
  return 0;
}
