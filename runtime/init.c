/* init.c — seeded, layout-independent parameter initialisation.
 *
 * Element i of parameter NAME gets a value computed from hash(seed, NAME, i)
 * alone, so whichever rank holds whichever slice of NAME, the values are those
 * of the single-device run. Rank-1 tensors named "*weight" (norm scales) are 1,
 * "*bias" are 0, everything else is normal with std 0.02 (GPT-2's choice)
 * through Box-Muller on two hashed uniforms. */
#include "runtime/rt_internal.h"
#include <math.h>
#include <string.h>

uint64_t rt_hash_str(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

static bool ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && !strcmp(s + n - m, suf);
}

typedef struct {
  float *x;
  uint64_t base;
} normal_job;

/* elements [lo, hi) of a normal(0, 0.02) parameter */
static void normal_range(void *ctx, int chunk, int64_t lo, int64_t hi) {
  const normal_job *j = ctx;
  (void)chunk;
  for (int64_t i = lo; i < hi; i++) {
    uint64_t h1 = rt_hash64(j->base + 2 * (uint64_t)i), h2 = rt_hash64(j->base + 2 * (uint64_t)i + 1);
    double u1 = ((double)(h1 >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(h2 >> 11) / 9007199254740992.0;
    j->x[i] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
  }
}

/* split over threads (par.c): every element depends on its index alone */
void rt_init_param(const char *name, int rank, float *x, int64_t n, uint64_t seed) {
  bool bias = ends_with(name, "bias"), scale = rank == 1 && ends_with(name, "weight");
  if (bias || scale) {
    for (int64_t i = 0; i < n; i++) x[i] = bias ? 0.0f : 1.0f;
    return;
  }
  normal_job j = {x, rt_hash64(seed ^ rt_hash_str(name))};
  rt_par_for(n, 8, normal_range, &j);
}
