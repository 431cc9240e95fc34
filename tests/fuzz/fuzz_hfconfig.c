/* fuzz_hfconfig.c — libFuzzer target for the Hugging Face importer: the input
 * bytes are a config.json; fe_hf_import writes the model into a memory
 * stream (diagnostics go to /dev/null). It must never crash, hang or leak.
 * Seeds: tests/fuzz/corpus/hfconfig/ (the real configs and some bad ones). */
#include "frontend/hf.h"
#include "util/diag.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!devnull) devnull = fopen("/dev/null", "w");
  char *text = NULL;
  size_t tlen = 0;
  FILE *out = open_memstream(&text, &tlen);
  if (!out || !devnull) abort();
  diag d;
  diag_init(&d, "config.json", (const char *)data, size);
  d.out = devnull;
  d.color = 0;
  bool ok = fe_hf_import("config.json", (const char *)data, size, NULL, "fuzz", out, &d);
  fclose(out);
  if (ok != (d.errors == 0) || (!ok && tlen)) abort(); /* failures write nothing */
  free(text);
  return 0;
}
