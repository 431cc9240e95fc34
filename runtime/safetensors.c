/* safetensors.c — reading and writing the safetensors format (f32 only).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}, then the data. The header is parsed with cJSON. Every
 * entry is validated before anything is allocated for it: dtype F32, shape
 * dims non-negative with a product that fits, offsets inside the file and
 * equal to 4 x numel; so a header claiming a 10 GB tensor in a small file is
 * refused with the tensor's name (names are printed with control bytes
 * escaped). The file is mapped, not read (util/os.c): tensors point into the
 * mapping, so a 40 GB file costs page cache, not heap; a tensor at an offset
 * that is not a multiple of 4 is copied to aligned memory after a memory
 * check. Writing creates PATH as a new file (never through a link; ckpt.c
 * writes into a fresh folder that it swaps in whole) and fsyncs it. */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the format's own limit on the JSON header (huggingface/safetensors) */
#define ST_MAX_HEADER 100000000

struct rt_st {
  const char *file;      /* the whole file, mapped */
  size_t len;
  rt_st_tensor *t;
  int n;
  arena *a;
};

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* the data of entry t at [b, e) of data: in place, or copied to aligned
 * memory (after a memory check) when the offset is not a multiple of 4 */
static bool place_data(rt_st *s, rt_st_tensor *t, const char *path, const char *data, size_t b, size_t e) {
  t->data = (const float *)(data + b);
  if ((uintptr_t)t->data % _Alignof(float) == 0) return true;
  char what[200], nm[96];
  snprintf(what, sizeof what, "%s: aligning tensor '%s'", path, diag_printable(t->name, nm, sizeof nm));
  if (!os_mem_check((double)(e - b), what)) return false;
  float *copy = arena_alloc(s->a, e - b + 1);
  memcpy(copy, data + b, e - b);
  t->data = copy;
  return true;
}

/* the shape of entry e into t; its element count into *numel */
static bool parse_shape(rt_st_tensor *t, const char *path, const char *nm, cJSON *sh, double *numel) {
  *numel = 1;
  t->rank = cJSON_GetArraySize(sh);
  for (int i = 0; i < t->rank; i++) {
    cJSON *x = cJSON_GetArrayItem(sh, i);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e15 || x->valuedouble != (double)(int64_t)x->valuedouble) {
      diag_file_error(path, "tensor '%s': bad dimension %d", nm, i);
      return false;
    }
    t->shape[i] = (int64_t)x->valuedouble;
    *numel *= x->valuedouble;
  }
  return true;
}

static bool parse_entry(rt_st *s, const char *path, cJSON *e, size_t datalen, const char *data) {
  rt_st_tensor *t = &s->t[s->n];
  t->name = arena_strdup(s->a, e->string);
  char nm[96];
  diag_printable(t->name, nm, sizeof nm);
  cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32")) {
    diag_file_error(path, "tensor '%s': only F32 tensors are supported", nm);
    return false;
  }
  if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > IR_MAXRANK || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
    diag_file_error(path, "tensor '%s': bad shape or data_offsets", nm);
    return false;
  }
  double numel;
  if (!parse_shape(t, path, nm, sh, &numel)) return false;
  cJSON *o0 = cJSON_GetArrayItem(off, 0), *o1 = cJSON_GetArrayItem(off, 1);
  double b = cJSON_IsNumber(o0) ? o0->valuedouble : -1, e2 = cJSON_IsNumber(o1) ? o1->valuedouble : -1;
  if (!(b >= 0) || !(e2 >= b) || !(e2 <= 1e15) || b != (double)(int64_t)b || e2 != (double)(int64_t)e2) { /* range first: casting inf is UB */
    diag_file_error(path, "tensor '%s': bad data_offsets [%.0f, %.0f]", nm, b, e2);
    return false;
  }
  if (e2 > (double)datalen) {
    diag_file_error(path, "tensor '%s': data_offsets [%.0f, %.0f] run past the end of the data (%zu bytes)", nm, b, e2,
                    datalen);
    return false;
  }
  if (e2 - b != numel * 4) {
    diag_file_error(path, "tensor '%s': its shape needs %.0f bytes but data_offsets [%.0f, %.0f] give it %.0f", nm,
                    numel * 4, b, e2, e2 - b);
    return false;
  }
  if (!place_data(s, t, path, data, (size_t)b, (size_t)e2)) return false;
  s->n++;
  return true;
}

static bool parse_header(rt_st *s, const char *path, const char *hdr, size_t hlen, size_t datalen, const char *data) {
  cJSON *j = cJSON_ParseWithLength(hdr, hlen);
  if (!cJSON_IsObject(j)) {
    diag_file_error(path, "the safetensors header is not a JSON object");
    cJSON_Delete(j);
    return false;
  }
  s->t = ARENA_ARRAY(s->a, rt_st_tensor, cJSON_GetArraySize(j) + 1);
  bool ok = true;
  for (cJSON *e = j->child; e && ok; e = e->next) {
    if (!strcmp(e->string, "__metadata__")) continue;
    char nm[96];
    if (!(ok = cJSON_IsObject(e)))
      diag_file_error(path, "malformed safetensors header (entry '%s')", diag_printable(e->string, nm, sizeof nm));
    else ok = parse_entry(s, path, e, datalen, data);
  }
  cJSON_Delete(j);
  return ok;
}

rt_st *rt_st_read(const char *path) {
  size_t len;
  const char *f = os_map(path, &len);
  if (!f) return NULL;
  rt_st *s = xcalloc(1, sizeof *s);
  s->file = f, s->len = len;
  s->a = arena_new();
  uint64_t hl = len >= 8 ? le64((const unsigned char *)f) : 0;
  if (len >= 8 && hl <= len - 8 && hl > ST_MAX_HEADER) {
    diag_file_error(path, "safetensors header of %llu bytes (at most %d)", (unsigned long long)hl, ST_MAX_HEADER);
    rt_st_free(s);
    return NULL;
  }
  if (len < 8 || hl > len - 8) {
    diag_file_error(path, "truncated safetensors file (header of %llu bytes, file of %zu)", (unsigned long long)hl,
                    len);
    rt_st_free(s);
    return NULL;
  }
  if (!parse_header(s, path, f + 8, (size_t)hl, len - 8 - (size_t)hl, f + 8 + hl)) {
    rt_st_free(s);
    return NULL;
  }
  return s;
}

const rt_st_tensor *rt_st_find(const rt_st *s, const char *name) {
  for (int i = 0; i < s->n; i++) {
    const char *n = s->t[i].name;
    if (!strncmp(n, "transformer.", 12)) n += 12;
    if (!strcmp(n, name)) return &s->t[i];
  }
  return NULL;
}

int rt_st_count(const rt_st *s) { return s->n; }
const rt_st_tensor *rt_st_at(const rt_st *s, int i) { return &s->t[i]; }

void rt_st_free(rt_st *s) {
  if (!s) return;
  os_unmap(s->file, s->len);
  arena_free(s->a);
  free(s);
}

static char *header_json(const rt_st_tensor *t, int n, size_t *hlen) {
  cJSON *j = cJSON_CreateObject();
  double off = 0;
  for (int i = 0; i < n; i++) {
    cJSON *e = cJSON_AddObjectToObject(j, t[i].name);
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON *sh = cJSON_AddArrayToObject(e, "shape");
    double numel = 1;
    for (int k = 0; k < t[i].rank; k++) {
      cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[k]));
      numel *= (double)t[i].shape[k];
    }
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber(off));
    cJSON_AddItemToArray(o, cJSON_CreateNumber(off + 4 * numel));
    off += 4 * numel;
  }
  char *txt = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  /* pad the header with spaces to a multiple of 8 (data stays aligned) */
  size_t l = strlen(txt), pad = (8 - l % 8) % 8;
  char *h = xmalloc(l + pad + 1);
  memcpy(h, txt, l);
  memset(h + l, ' ', pad);
  h[l + pad] = 0;
  free(txt);
  *hlen = l + pad;
  return h;
}

bool rt_st_write(const char *path, const rt_st_tensor *t, int n) {
  size_t hlen;
  char *h = header_json(t, n, &hlen);
  int fd = os_create(path, 0644);
  bool ok = fd >= 0;
  unsigned char l8[8];
  for (int i = 0; i < 8; i++) l8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  ok = ok && os_write_all(fd, l8, 8) && os_write_all(fd, h, hlen);
  for (int i = 0; i < n && ok; i++) {
    size_t numel = 1;
    for (int k = 0; k < t[i].rank; k++) numel *= (size_t)t[i].shape[k];
    ok = os_write_all(fd, t[i].data, numel * 4);
  }
  ok = ok && fsync(fd) == 0;
  if (fd >= 0) ok = close(fd) == 0 && ok;
  if (!ok) {
    diag_file_error(path, "cannot write the safetensors file: %s", strerror(errno));
    if (fd >= 0) unlink(path);
  }
  free(h);
  return ok;
}
