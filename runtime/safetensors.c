/* safetensors.c — reading and writing the safetensors format (f32 only).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}, then the data. The header is parsed with cJSON. Every
 * entry is validated before anything is allocated for it: dtype F32, shape
 * dims non-negative with a product that fits, offsets inside the file and
 * equal to 4 x numel; so a header claiming a 10 GB tensor in a small file is
 * refused with the tensor's name. Writing goes to PATH.tmp, is fsynced, then
 * renamed over PATH. */
#include "runtime/rt_internal.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rt_st {
  char *file;            /* the whole file */
  rt_st_tensor *t;
  int n;
  arena *a;
};

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static bool parse_entry(rt_st *s, const char *path, cJSON *e, size_t datalen, const char *data) {
  rt_st_tensor *t = &s->t[s->n];
  t->name = arena_strdup(s->a, e->string);
  cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32")) {
    fprintf(stderr, "%s: error: tensor '%s': only F32 tensors are supported\n", path, t->name);
    return false;
  }
  if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > IR_MAXRANK || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
    fprintf(stderr, "%s: error: tensor '%s': bad shape or data_offsets\n", path, t->name);
    return false;
  }
  double numel = 1;
  t->rank = cJSON_GetArraySize(sh);
  for (int i = 0; i < t->rank; i++) {
    cJSON *x = cJSON_GetArrayItem(sh, i);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e15 || x->valuedouble != (double)(int64_t)x->valuedouble) {
      fprintf(stderr, "%s: error: tensor '%s': bad dimension %d\n", path, t->name, i);
      return false;
    }
    t->shape[i] = (int64_t)x->valuedouble;
    numel *= x->valuedouble;
  }
  cJSON *o0 = cJSON_GetArrayItem(off, 0), *o1 = cJSON_GetArrayItem(off, 1);
  double b = cJSON_IsNumber(o0) ? o0->valuedouble : -1, e2 = cJSON_IsNumber(o1) ? o1->valuedouble : -1;
  if (numel * 4 > (double)datalen || b < 0 || e2 < b || e2 > (double)datalen || e2 - b != numel * 4 ||
      b != (double)(int64_t)b) {
    fprintf(stderr, "%s: error: tensor '%s': shape needs %.0f bytes but the file holds %.0f for it (of %zu)\n", path,
            t->name, numel * 4, e2 - b, datalen);
    return false;
  }
  t->data = (const float *)(data + (size_t)b);
  if ((uintptr_t)t->data % _Alignof(float)) { /* an offset not a multiple of 4: copy to aligned memory */
    float *copy = arena_alloc(s->a, (size_t)(e2 - b) + 1);
    memcpy(copy, data + (size_t)b, (size_t)(e2 - b));
    t->data = copy;
  }
  s->n++;
  return true;
}

static bool parse_header(rt_st *s, const char *path, const char *hdr, size_t hlen, size_t datalen, const char *data) {
  cJSON *j = cJSON_ParseWithLength(hdr, hlen);
  if (!cJSON_IsObject(j)) {
    fprintf(stderr, "%s: error: the safetensors header is not a JSON object\n", path);
    cJSON_Delete(j);
    return false;
  }
  s->t = ARENA_ARRAY(s->a, rt_st_tensor, cJSON_GetArraySize(j) + 1);
  bool ok = true;
  for (cJSON *e = j->child; e && ok; e = e->next) {
    if (!strcmp(e->string, "__metadata__")) continue;
    if (!(ok = cJSON_IsObject(e))) fprintf(stderr, "%s: error: malformed safetensors header (entry '%s')\n", path, e->string);
    else ok = parse_entry(s, path, e, datalen, data);
  }
  cJSON_Delete(j);
  return ok;
}

rt_st *rt_st_read(const char *path) {
  size_t len;
  char *f = read_file(path, (size_t)1 << 36, &len);
  if (!f) return NULL;
  rt_st *s = xcalloc(1, sizeof *s);
  s->file = f;
  s->a = arena_new();
  uint64_t hl = len >= 8 ? le64((const unsigned char *)f) : 0;
  if (len < 8 || hl > len - 8) {
    fprintf(stderr, "%s: error: truncated safetensors file (header of %llu bytes, file of %zu)\n", path,
            (unsigned long long)hl, len);
    rt_st_free(s);
    return NULL;
  }
  /* tensor data must be 4-byte aligned for float access: copy if it is not */
  size_t dlen = len - 8 - (size_t)hl;
  const char *data = f + 8 + hl;
  if ((uintptr_t)data % 4) {
    char *copy = arena_alloc(s->a, dlen + 1);
    memcpy(copy, data, dlen);
    data = copy;
  }
  if (!parse_header(s, path, f + 8, (size_t)hl, dlen, data)) {
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
  free(s->file);
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

static bool write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) return false;
    c += w, n -= (size_t)w;
  }
  return true;
}

bool rt_st_write(const char *path, const rt_st_tensor *t, int n) {
  size_t hlen;
  char *h = header_json(t, n, &hlen);
  char tmp[8300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  bool ok = fd >= 0;
  unsigned char l8[8];
  for (int i = 0; i < 8; i++) l8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  ok = ok && write_all(fd, l8, 8) && write_all(fd, h, hlen);
  for (int i = 0; i < n && ok; i++) {
    size_t numel = 1;
    for (int k = 0; k < t[i].rank; k++) numel *= (size_t)t[i].shape[k];
    ok = write_all(fd, t[i].data, numel * 4);
  }
  ok = ok && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  ok = ok && rename(tmp, path) == 0;
  if (!ok) {
    fprintf(stderr, "%s: error: cannot write the safetensors file\n", path);
    unlink(tmp);
  }
  free(h);
  return ok;
}
