/* indexed.c — Megatron-LM's indexed dataset (MMIDIDX), read for `--data`.
 *
 * A dataset is two files, PREFIX.idx and PREFIX.bin, both mapped (never read
 * into the heap). The layout, checked against Megatron-LM's
 * megatron/core/datasets/indexed_dataset.py (_IndexWriter / _IndexReader) at
 * commit d98e8a64ddf34856e74b24714e3bedb2f5a39553; all little-endian:
 *
 *   offset 0   9 bytes  magic "MMIDIDX\0\0"
 *          9   u64      version, 1
 *         17   u8       dtype code: 1 uint8, 2 int8, 3 int16, 4 int32,
 *                       5 int64, 6 float64, 7 float32, 8 uint16
 *         18   u64      sequence count N
 *         26   u64      document index entries D (documents + 1)
 *         34   i32[N]   sequence lengths (tokens)
 *              i64[N]   sequence pointers (byte offsets into .bin)
 *              i64[D]   document indices: document d is sequences
 *                       [idx[d], idx[d+1]); idx[0] = 0, idx[D-1] = N
 *             (i8[N]    sequence modes, multimodal datasets only: ignored)
 *
 * PREFIX.bin holds the sequences' tokens back to back. Every field is
 * validated before use (an error names the file and the field, never a
 * crash): the magic, the version, an integer dtype (floats are not token
 * ids), counts that fit the file (checked before any multiplication can
 * overflow), the file's exact size, lengths >= 0, pointers that start at 0
 * and follow each other contiguously (the tokens are then one stream, which
 * the loader cuts into samples as it does a flat file), document indices
 * from 0 to N, never decreasing, and a .bin of exactly the tokens the index
 * describes. Documents give the packed loader its boundaries (data.c). */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rt_idx {
  const unsigned char *ix, *bin; /* the mapped files */
  size_t ixlen, binlen;
  int width;                     /* bytes per token */
  bool sgn;                      /* a signed dtype */
  uint64_t nseq, ndent;          /* sequences, document index entries */
  const unsigned char *len, *ptr, *doc; /* the three arrays inside ix */
  int64_t ntok;
  char *ixpath, *binpath;        /* for messages */
};

#define HDR 34

static uint64_t rd64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* width and signedness of dtype code c; false for floats and unknown codes */
static bool dtype_of(rt_idx *x, unsigned c) {
  static const int w[9] = {0, 1, 1, 2, 4, 8, 8, 4, 2};
  static const bool s[9] = {0, 0, 1, 1, 1, 1, 1, 1, 0};
  if (c < 1 || c > 8) return diag_file_error(x->ixpath, "unknown dtype code %u (1-8)", c), false;
  if (c == 6 || c == 7)
    return diag_file_error(x->ixpath, "dtype code %u is %s, not token ids", c, c == 6 ? "float64" : "float32"), false;
  x->width = w[c], x->sgn = s[c];
  return true;
}

static bool header(rt_idx *x) {
  const unsigned char *p = x->ix;
  if (x->ixlen < HDR)
    return diag_file_error(x->ixpath, "%zu bytes, shorter than the index header (%d)", x->ixlen, HDR), false;
  if (memcmp(p, "MMIDIDX\0\0", 9))
    return diag_file_error(x->ixpath, "not a Megatron indexed dataset index (no MMIDIDX header)"), false;
  if (rd64(p + 9) != 1) return diag_file_error(x->ixpath, "version %llu, only 1 is known", (unsigned long long)rd64(p + 9)), false;
  if (!dtype_of(x, p[17])) return false;
  x->nseq = rd64(p + 18), x->ndent = rd64(p + 26);
  uint64_t room = x->ixlen - HDR;
  if (x->nseq > room / 12 || x->ndent > (room - 12 * x->nseq) / 8)
    return diag_file_error(x->ixpath, "%llu sequences and %llu document entries do not fit in %zu bytes",
                           (unsigned long long)x->nseq, (unsigned long long)x->ndent, x->ixlen), false;
  uint64_t want = HDR + 12 * x->nseq + 8 * x->ndent;
  if (x->ixlen != want && x->ixlen != want + x->nseq)
    return diag_file_error(x->ixpath, "%zu bytes, the header describes %llu (or %llu with sequence modes)", x->ixlen,
                           (unsigned long long)want, (unsigned long long)(want + x->nseq)), false;
  x->len = p + HDR, x->ptr = x->len + 4 * x->nseq, x->doc = x->ptr + 8 * x->nseq;
  return true;
}

/* lengths >= 0 and pointers contiguous from 0; the .bin holds exactly those tokens */
static bool sequences(rt_idx *x) {
  const char *binpath = x->binpath;
  uint64_t off = 0, cap = x->binlen / (size_t)x->width;
  for (uint64_t i = 0; i < x->nseq; i++) {
    int32_t l = (int32_t)rd32(x->len + 4 * i);
    if (l < 0) return diag_file_error(x->ixpath, "sequence %llu has length %d", (unsigned long long)i, l), false;
    if (rd64(x->ptr + 8 * i) != off * (uint64_t)x->width)
      return diag_file_error(x->ixpath, "sequence %llu starts at byte %llu, not %llu: sequences must follow each other",
                             (unsigned long long)i, (unsigned long long)rd64(x->ptr + 8 * i),
                             (unsigned long long)(off * (uint64_t)x->width)), false;
    if ((uint64_t)l > cap - off)
      return diag_file_error(binpath, "holds %llu tokens; sequence %llu ends past them", (unsigned long long)cap,
                             (unsigned long long)i), false;
    off += (uint64_t)l;
  }
  if (off * (uint64_t)x->width != x->binlen)
    return diag_file_error(binpath, "%zu bytes; the index describes %llu tokens of %d bytes", x->binlen,
                           (unsigned long long)off, x->width), false;
  x->ntok = (int64_t)off;
  return true;
}

/* document indices: from 0 to the sequence count, never decreasing */
static bool documents(rt_idx *x) {
  if (x->ndent < 1 || rd64(x->doc) != 0 || rd64(x->doc + 8 * (x->ndent - 1)) != x->nseq)
    return diag_file_error(x->ixpath, "the document indices must run from 0 to the sequence count %llu",
                           (unsigned long long)x->nseq), false;
  for (uint64_t d = 1; d < x->ndent; d++)
    if (rd64(x->doc + 8 * d) < rd64(x->doc + 8 * (d - 1)))
      return diag_file_error(x->ixpath, "document index %llu decreases", (unsigned long long)d), false;
  return true;
}

static char *with_ext(const char *prefix, const char *ext) {
  size_t n = strlen(prefix) + strlen(ext) + 1;
  char *s = xmalloc(n);
  snprintf(s, n, "%s%s", prefix, ext);
  return s;
}

rt_idx *rt_idx_open(const char *prefix) {
  rt_idx *x = xcalloc(1, sizeof *x);
  x->ixpath = with_ext(prefix, ".idx");
  x->binpath = with_ext(prefix, ".bin");
  x->ix = os_map(x->ixpath, &x->ixlen);
  x->bin = x->ix ? os_map(x->binpath, &x->binlen) : NULL;
  bool ok = x->bin && header(x) && sequences(x) && documents(x);
  if (!ok) rt_idx_free(x);
  return ok ? x : NULL;
}

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool rt_idx_prefix(const char *path, char *prefix, size_t n) {
  size_t l = strlen(path);
  bool ext = l > 4 && (!strcmp(path + l - 4, ".idx") || !strcmp(path + l - 4, ".bin"));
  if (l + 5 > n) return false;
  memcpy(prefix, path, l + 1);
  if (ext) prefix[l - 4] = 0;
  char *ix = with_ext(prefix, ".idx");
  bool there = is_file(ix);
  free(ix);
  return there && (ext || !is_file(path));
}

const unsigned char *rt_idx_tokens(const rt_idx *x, int *width, bool *sgn, int64_t *ntok) {
  *width = x->width, *sgn = x->sgn, *ntok = x->ntok;
  return x->bin;
}

int64_t rt_idx_ndocs(const rt_idx *x) { return (int64_t)x->ndent - 1; }

int64_t rt_idx_doc_start(const rt_idx *x, int64_t d) {
  uint64_t s = rd64(x->doc + 8 * (uint64_t)d);
  return s >= x->nseq ? x->ntok : (int64_t)(rd64(x->ptr + 8 * s) / (uint64_t)x->width);
}

const char *rt_idx_path(const rt_idx *x, bool bin) { return bin ? x->binpath : x->ixpath; }

void rt_idx_free(rt_idx *x) {
  if (!x) return;
  os_unmap(x->ix, x->ixlen);
  os_unmap(x->bin, x->binlen);
  free(x->ixpath);
  free(x->binpath);
  free(x);
}
