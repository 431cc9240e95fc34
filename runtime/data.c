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
 * produces is token ids and labels of shape [B, S]; rt_data_check_inputs
 * refuses a model whose inputs are anything else before any step runs. */
#include "runtime/rt_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t le32(const unsigned char *p) {
  return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

bool rt_data_open(rt_data *d, const char *path, int64_t seq, int64_t vocab) {
  memset(d, 0, sizeof *d);
  size_t len;
  char *buf = read_file(path, (size_t)1 << 34, &len);
  if (!buf) return false;
  bool ok = false;
  if (len % 4)
    fprintf(stderr, "%s: error: data file length %zu is not a multiple of 4 (int32 tokens)\n", path, len);
  else if ((int64_t)(len / 4) < seq + 1)
    fprintf(stderr, "%s: error: data file has %zu tokens, fewer than one sample of %lld\n", path, len / 4,
            (long long)(seq + 1));
  else
    ok = true;
  d->ntok = (int64_t)(len / 4);
  if (ok) {
    d->tok = xmalloc(sizeof *d->tok * (size_t)d->ntok);
    for (int64_t i = 0; i < d->ntok && ok; i++) {
      d->tok[i] = le32((const unsigned char *)buf + 4 * i);
      if (d->tok[i] < 0 || d->tok[i] >= vocab) {
        fprintf(stderr, "%s: error: token %lld (at index %lld) is outside the vocabulary [0, %lld)\n", path,
                (long long)d->tok[i], (long long)i, (long long)vocab);
        ok = false;
      }
    }
  }
  free(buf);
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
  d->tok = xmalloc(sizeof *d->tok * (size_t)d->ntok);
  /* a learnable stream: runs of ascending ids with hashed starts */
  int64_t start = 0;
  for (int64_t i = 0; i < d->ntok; i++) {
    if (i % 16 == 0) start = (int64_t)(rt_hash64((uint64_t)i) % (uint64_t)vocab);
    d->tok[i] = (int32_t)((start + i % 16) % vocab);
  }
}

void rt_data_batch(const rt_data *d, int64_t pos, int64_t n, int32_t *ids, int32_t *labels) {
  int64_t S = d->seq;
  for (int64_t k = 0; k < n; k++) {
    const int32_t *s = d->tok + ((pos + k) % d->nsamples) * (S + 1);
    memcpy(ids + k * S, s, sizeof *ids * (size_t)S);
    memcpy(labels + k * S, s + 1, sizeof *labels * (size_t)S);
  }
}

void rt_data_free(rt_data *d) {
  free(d->tok);
  memset(d, 0, sizeof *d);
}
