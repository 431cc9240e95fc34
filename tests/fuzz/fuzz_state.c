/* fuzz_state.c — libFuzzer target for the checkpoint state reader
 * rt_ckpt_read_state (runtime/ckpt.c), used by `sbpc run --resume DIR` on
 * DIR/state.json. It reads a path, so the input is written to a private
 * temporary file first. It may not crash, hang or leak; what it accepts must
 * be in range: step and data position whole numbers in [0, 2^53] (a step of
 * 1e300 once counted from -9.2e18, a position of 1e300 read outside the
 * token data). The accepted position is then used as rt_data_batch uses it,
 * on a small synthetic stream, so ASan sees any read outside the tokens.
 * Seeds: tests/fuzz/corpus/state/ (`sbpc run --save` outputs and broken
 * ones, the issue-13 values among them). */
#include "fuzz_file.h"
#include "runtime/rt_internal.h"
#include <stdint.h>
#include <stdlib.h>

#define MAX_COUNT 9007199254740992LL /* 2^53 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("state", "json", data, size);
  int64_t step = -1, pos = -1;
  uint64_t model = 0;
  fuzz_quiet();
  bool ok = rt_ckpt_read_state(path, &step, &pos, &model);
  fuzz_loud();
  if (!ok) return 0;
  if (step < 0 || step > MAX_COUNT || pos < 0 || pos > MAX_COUNT) abort();
  static rt_data d;
  if (!d.tok) rt_data_synthetic(&d, 3, 17, 5);
  int32_t ids[2 * 3], labels[2 * 3];
  rt_data_batch(&d, pos, 2, ids, labels);
  for (int i = 0; i < 6; i++)
    if (ids[i] < 0 || ids[i] >= 17 || labels[i] < 0 || labels[i] >= 17) abort();
  return 0;
}
