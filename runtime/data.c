/* data.c — the token data loader.
 *
 * A data file is little-endian int32 token ids. It is cut into
 * floor(len / (S+1)) samples of S+1 tokens; sample k is tokens
 * [k(S+1), (k+1)(S+1)). Samples are consumed in order and cyclically; the
 * inputs of a sample are its first S tokens and the labels its last S. A file
 * shorter than one sample, with a length that is not a multiple of 4, or with
 * an id outside [0, vocab) is refused before any step runs, naming the file
 * and the offending position. Without a file, a deterministic synthetic stream
 * (hashed ids) stands in, so a demo runs out of the box. What the loader
 * produces is token ids and labels of shape [B, S] (`sbpc compile` refuses
 * a model whose inputs are anything else, or whose position table is
 * shorter than the sequence: lower/train.c). The file is mapped, not read (util/os.c): on a
 * little-endian host the tokens are used in place, so a 40 GB file costs
 * page cache, not heap. A data position from a checkpoint is taken modulo
 * the sample count. */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t le32(const unsigned char *p) {
  return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static bool little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

/* the first token outside [0, vocab), or -1 */
static int64_t first_bad(const int32_t *tok, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; i++)
    if (tok[i] < 0 || tok[i] >= vocab) return i;
  return -1;
}

/* tokens of the mapped file p[0..len): in place on a little-endian host, else
 * converted into memory (after a memory check) */
static bool take_tokens(rt_data *d, const char *path, const unsigned char *p, size_t len) {
  d->ntok = (int64_t)(len / 4);
  if (little_endian()) {
    d->tok = (const int32_t *)p;
    return true;
  }
  if (!os_mem_check((double)len, path)) return false;
  int32_t *t = xmalloc(len + 4);
  for (int64_t i = 0; i < d->ntok; i++) t[i] = le32(p + 4 * i);
  d->tok = t;
  return true;
}

bool rt_data_open(rt_data *d, const char *path, int64_t seq, int64_t vocab) {
  memset(d, 0, sizeof *d);
  size_t len;
  const unsigned char *p = os_map(path, &len);
  if (!p) return false;
  d->map = p, d->maplen = len;
  bool ok = false;
  if (len % 4)
    diag_file_error(path, "data file length %zu is not a multiple of 4 (int32 tokens)", len);
  else if ((int64_t)(len / 4) < seq + 1)
    diag_file_error(path, "data file has %zu tokens, fewer than one sample of %lld", len / 4, (long long)(seq + 1));
  else
    ok = take_tokens(d, path, p, len);
  int64_t bad = ok ? first_bad(d->tok, d->ntok, vocab) : -1;
  if (bad >= 0) {
    diag_file_error(path, "token %lld (at index %lld) is outside the vocabulary [0, %lld)", (long long)d->tok[bad],
                    (long long)bad, (long long)vocab);
    ok = false;
  }
  if (!ok) {
    rt_data_free(d);
    return false;
  }
  d->seq = seq;
  d->nsamples = d->ntok / (seq + 1);
  return true;
}

void rt_data_synthetic(rt_data *d, int64_t seq, int64_t vocab, int64_t nsamples) {
  memset(d, 0, sizeof *d);
  d->seq = seq;
  d->nsamples = nsamples;
  d->ntok = nsamples * (seq + 1);
  int32_t *tok = xmalloc(sizeof *tok * (size_t)d->ntok);
  /* a learnable stream: runs of ascending ids with hashed starts */
  int64_t start = 0;
  for (int64_t i = 0; i < d->ntok; i++) {
    if (i % 16 == 0) start = (int64_t)(rt_hash64((uint64_t)i) % (uint64_t)vocab);
    tok[i] = (int32_t)((start + i % 16) % vocab);
  }
  d->tok = tok;
}

void rt_data_batch(const rt_data *d, int64_t pos, int64_t n, int32_t *ids, int32_t *labels) {
  int64_t S = d->seq;
  uint64_t ns = (uint64_t)d->nsamples, at = pos < 0 ? 0 : (uint64_t)pos % ns; /* pos >= 0 (ckpt.c) */
  for (int64_t k = 0; k < n; k++) {
    const int32_t *s = d->tok + (at + (uint64_t)k) % ns * (uint64_t)(S + 1);
    memcpy(ids + k * S, s, sizeof *ids * (size_t)S);
    memcpy(labels + k * S, s + 1, sizeof *labels * (size_t)S);
  }
}

void rt_data_free(rt_data *d) {
  if ((const void *)d->tok != d->map) free((void *)d->tok);
  os_unmap(d->map, d->maplen);
  memset(d, 0, sizeof *d);
}
