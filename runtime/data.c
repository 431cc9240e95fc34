/* data.c — the token data loader.
 *
 * Data is a stream of token ids: a flat file of little-endian int32 ids, or
 * Megatron-LM's indexed dataset (PREFIX.idx + PREFIX.bin, indexed.c: any
 * integer dtype; `--data PREFIX`, `PREFIX.idx` or `PREFIX.bin` with the
 * .idx next to it), whose sequences are concatenated in order. The stream is
 * cut into floor(len / (S+1)) samples of S+1 tokens; sample k is tokens
 * [k(S+1), (k+1)(S+1)). Samples are consumed in order and cyclically; the
 * inputs of a sample are its first S tokens and the labels its last S. A
 * file shorter than one sample, a flat file whose length is not a multiple
 * of 4, a bad index, or an id outside [0, vocab) is refused before any step
 * runs, naming the file and the offending position. Without a file, a
 * deterministic synthetic stream (hashed ids) stands in, so a demo runs out
 * of the box. What the loader produces is token ids and labels of shape
 * [B, S] (`sbpc compile` refuses a model whose inputs are anything else, or
 * whose position table is shorter than the sequence: lower/train.c). Files
 * are mapped, not read (util/os.c), and tokens are decoded from the mapping
 * as a batch is made, so a 40 GB file costs page cache, not heap. A data
 * position from a checkpoint is taken modulo the sample count.
 *
 * Packed batches (a program compiled with --packed, lower/packed.c): a
 * document starts at each document of an indexed dataset, or, with
 * `--eos ID`, after each end-of-document token ID (which belongs to the
 * document it ends). rt_data_packed gives, per token, the index in its
 * sample of its document's first token (a sample's first token starts one,
 * whether or not a document starts there), and the label -1 (ignored) for a
 * token whose next token starts a document: no prediction across a
 * boundary. */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* token i of the stream, decoded from little-endian bytes */
static int64_t tok_at(const rt_data *d, int64_t i) {
  const unsigned char *p = d->tok + (size_t)i * (size_t)d->width;
  uint64_t v = 0;
  for (int b = d->width - 1; b >= 0; b--) v = v << 8 | p[b];
  if (d->sgn && d->width < 8 && (v >> (8 * d->width - 1) & 1)) v |= ~(uint64_t)0 << (8 * d->width);
  return (int64_t)v;
}

/* the first token outside [0, vocab), or -1 */
static int64_t first_bad(const rt_data *d, int64_t vocab) {
  for (int64_t i = 0; i < d->ntok; i++) {
    int64_t t = tok_at(d, i);
    if (t < 0 || t >= vocab) return i;
  }
  return -1;
}

static bool open_flat(rt_data *d, const char *path) {
  size_t len;
  const unsigned char *p = os_map(path, &len);
  if (!p) return false;
  d->map = p, d->maplen = len;
  d->tok = p, d->width = 4, d->sgn = true, d->ntok = (int64_t)(len / 4);
  if (len % 4) return diag_file_error(path, "data file length %zu is not a multiple of 4 (int32 tokens)", len), false;
  return true;
}

static bool open_indexed(rt_data *d, const char *prefix) {
  if (!(d->idx = rt_idx_open(prefix))) return false;
  d->tok = rt_idx_tokens(d->idx, &d->width, &d->sgn, &d->ntok);
  return true;
}

bool rt_data_open(rt_data *d, const char *path, int64_t seq, int64_t vocab) {
  memset(d, 0, sizeof *d);
  d->eos = -1;
  char prefix[4096];
  bool indexed = rt_idx_prefix(path, prefix, sizeof prefix);
  bool ok = indexed ? open_indexed(d, prefix) : open_flat(d, path);
  const char *name = d->idx ? rt_idx_path(d->idx, true) : path;
  if (ok && d->ntok < seq + 1) {
    diag_file_error(name, "data file has %lld tokens, fewer than one sample of %lld", (long long)d->ntok, (long long)(seq + 1));
    ok = false;
  }
  int64_t bad = ok ? first_bad(d, vocab) : -1;
  if (bad >= 0) {
    diag_file_error(name, "token %lld (at index %lld) is outside the vocabulary [0, %lld)", (long long)tok_at(d, bad),
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
  d->eos = -1;
  d->seq = seq;
  d->nsamples = nsamples;
  d->ntok = nsamples * (seq + 1);
  int32_t *tok = xmalloc(sizeof *tok * (size_t)d->ntok);
  /* a learnable stream: runs of ascending ids with hashed starts */
  int64_t start = 0;
  for (int64_t i = 0; i < d->ntok; i++) {
    if (i % 16 == 0) start = (int64_t)(rt_hash64((uint64_t)i) % (uint64_t)vocab);
    uint32_t v = (uint32_t)((start + i % 16) % vocab);
    unsigned char *b = (unsigned char *)tok + 4 * i; /* little-endian, as files are decoded */
    for (int j = 0; j < 4; j++) b[j] = (unsigned char)(v >> (8 * j));
  }
  d->own = tok;
  d->tok = (const unsigned char *)tok, d->width = 4, d->sgn = true;
}

/* the first token of sample `at` (cyclic) */
static int64_t sample_start(const rt_data *d, int64_t pos, int64_t k) {
  uint64_t ns = (uint64_t)d->nsamples, at = pos < 0 ? 0 : (uint64_t)pos % ns; /* pos >= 0 (ckpt.c) */
  return (int64_t)((at + (uint64_t)k) % ns * (uint64_t)(d->seq + 1));
}

void rt_data_batch(const rt_data *d, int64_t pos, int64_t n, int32_t *ids, int32_t *labels) {
  int64_t S = d->seq;
  for (int64_t k = 0; k < n; k++) {
    int64_t a = sample_start(d, pos, k);
    for (int64_t t = 0; t < S; t++) {
      ids[k * S + t] = (int32_t)tok_at(d, a + t);
      labels[k * S + t] = (int32_t)tok_at(d, a + t + 1);
    }
  }
}

bool rt_data_has_docs(const rt_data *d) { return d->idx || d->eos >= 0; }

/* the first document of the index starting after token a (binary search) */
static int64_t doc_after(const rt_data *d, int64_t a) {
  int64_t lo = 0, hi = rt_idx_ndocs(d->idx) + 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (rt_idx_doc_start(d->idx, mid) > a) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/* starts[t] (t in 1..S): a document starts at token t of the sample at a */
static void doc_marks(const rt_data *d, int64_t a, unsigned char *starts) {
  int64_t S = d->seq;
  memset(starts, 0, (size_t)S + 1);
  if (d->idx) {
    int64_t nd = rt_idx_ndocs(d->idx);
    for (int64_t i = doc_after(d, a); i <= nd && rt_idx_doc_start(d->idx, i) <= a + S; i++)
      starts[rt_idx_doc_start(d->idx, i) - a] = 1;
  } else if (d->eos >= 0) {
    for (int64_t t = 1; t <= S; t++) starts[t] = tok_at(d, a + t - 1) == d->eos;
  }
}

void rt_data_packed(const rt_data *d, int64_t pos, int64_t n, int32_t *ids, int32_t *labels, int32_t *doc) {
  int64_t S = d->seq;
  unsigned char *starts = xmalloc((size_t)S + 1);
  rt_data_batch(d, pos, n, ids, labels);
  for (int64_t k = 0; k < n; k++) {
    doc_marks(d, sample_start(d, pos, k), starts);
    int32_t cur = 0;
    for (int64_t t = 0; t < S; t++) {
      if (starts[t]) cur = (int32_t)t;
      doc[k * S + t] = cur;
      if (starts[t + 1]) labels[k * S + t] = -1;
    }
  }
  free(starts);
}

int64_t rt_data_predicted(const rt_data *d, int64_t pos, int64_t n) {
  int64_t S = d->seq, count = 0;
  unsigned char *starts = xmalloc((size_t)S + 1);
  for (int64_t k = 0; k < n; k++) {
    doc_marks(d, sample_start(d, pos, k), starts);
    for (int64_t t = 1; t <= S; t++) count += !starts[t];
  }
  free(starts);
  return count;
}

void rt_data_free(rt_data *d) {
  free(d->own);
  os_unmap(d->map, d->maplen);
  rt_idx_free(d->idx);
  memset(d, 0, sizeof *d);
}
