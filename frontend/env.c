/* env.c — name tables for the lowering: open addressing with linear probing
 * on an FNV-1a hash, grown at half load, so lookups stay O(1) however many
 * names a (possibly hostile) input defines. Keys point into the AST or the
 * graph arena and are not copied. Also the edit distance used for "did you
 * mean" hints. */
#include "frontend/lower.h"
#include <stdlib.h>
#include <string.h>

static uint32_t hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

fe_bind *fe_env_get(const fe_env *e, const char *name) {
  if (!e->cap) return NULL;
  for (uint32_t i = hash(name) & (uint32_t)(e->cap - 1);; i = (i + 1) & (uint32_t)(e->cap - 1)) {
    fe_bind *b = &e->slot[i];
    if (!b->name) return NULL;
    if (!strcmp(b->name, name)) return b;
  }
}

static void grow(fe_env *e) {
  fe_env n = {xcalloc((size_t)(e->cap ? e->cap * 2 : 64), sizeof(fe_bind)), e->cap ? e->cap * 2 : 64, 0};
  for (int i = 0; i < e->cap; i++)
    if (e->slot[i].name) {
      bool fresh;
      *fe_env_put(&n, e->slot[i].name, &fresh) = e->slot[i];
    }
  free(e->slot);
  *e = n;
}

fe_bind *fe_env_put(fe_env *e, const char *name, bool *fresh) {
  if ((e->n + 1) * 2 > e->cap) grow(e);
  uint32_t i = hash(name) & (uint32_t)(e->cap - 1);
  for (; e->slot[i].name; i = (i + 1) & (uint32_t)(e->cap - 1))
    if (!strcmp(e->slot[i].name, name)) {
      *fresh = false;
      return &e->slot[i];
    }
  e->n++;
  memset(&e->slot[i], 0, sizeof e->slot[i]);
  e->slot[i].name = name;
  *fresh = true;
  return &e->slot[i];
}

void fe_env_clear(fe_env *e) {
  if (e->cap) memset(e->slot, 0, sizeof(fe_bind) * (size_t)e->cap);
  e->n = 0;
}

void fe_env_free(fe_env *e) {
  free(e->slot);
  memset(e, 0, sizeof *e);
}

int fe_edit_distance(const char *a, const char *b, int cap) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return cap + 1;
  if ((la > lb ? la - lb : lb - la) > (size_t)cap) return cap + 1;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int prev = row[0], best = row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cur = row[j];
      int v = prev + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < v) v = row[j] + 1;
      if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
      row[j] = v;
      prev = cur;
      if (v < best) best = v;
    }
    if (best > cap) return cap + 1;
  }
  return row[lb];
}

const char *fe_env_closest(const fe_env *e, const char *name) {
  const char *best = NULL;
  int bd = 3;
  for (int i = 0; i < e->cap; i++) {
    if (!e->slot[i].name) continue;
    int d = fe_edit_distance(name, e->slot[i].name, 2);
    if (d < bd) {
      bd = d;
      best = e->slot[i].name;
    }
  }
  return best;
}
