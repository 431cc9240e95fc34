/* shard.c — a tensor-parallel rank's part of a logical tensor, and back.
 *
 * A tensor split on axis ax into tp parts is viewed as outer x (groups x tp
 * x chunk): outer is the product of the dims before ax, chunk the rank's
 * contiguous run from ax on. groups > 1 interleaves: a parameter feeding a
 * fused qkv is cut in 3 groups (q, k, v) and each rank holds its part of
 * every group (lower/local.c). These are what make checkpoints and
 * --weights universal: values go in and out under logical shapes. */
#include "runtime/rt_internal.h"
#include <string.h>

typedef struct {
  int64_t outer, chunk, groups;
} view;

static view view_of(const int64_t *shape, int rank, int ax, int tp, int groups) {
  view v = {1, 1, groups};
  for (int i = 0; i < ax; i++) v.outer *= shape[i];
  for (int i = ax; i < rank; i++) v.chunk *= shape[i];
  v.chunk /= (int64_t)tp * groups;
  return v;
}

static int64_t numel(const int64_t *shape, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

void rt_shard(const int64_t *shape, int rank, int split, int tp, int tpi, int groups, const float *full, float *local) {
  if (split < 0 || tp <= 1) {
    memcpy(local, full, sizeof(float) * (size_t)numel(shape, rank));
    return;
  }
  view v = view_of(shape, rank, split, tp, groups);
  for (int64_t o = 0; o < v.outer; o++)
    for (int64_t gi = 0; gi < v.groups; gi++)
      memcpy(local + (o * v.groups + gi) * v.chunk, full + ((o * v.groups + gi) * tp + tpi) * v.chunk,
             sizeof(float) * (size_t)v.chunk);
}

void rt_unshard(const int64_t *shape, int rank, int split, int tp, int groups, const float *all, float *full) {
  int64_t n = numel(shape, rank);
  if (split < 0 || tp <= 1) {
    memcpy(full, all, sizeof(float) * (size_t)n);
    return;
  }
  view v = view_of(shape, rank, split, tp, groups);
  int64_t local = n / tp;
  for (int r = 0; r < tp; r++)
    for (int64_t o = 0; o < v.outer; o++)
      for (int64_t gi = 0; gi < v.groups; gi++)
        memcpy(full + ((o * v.groups + gi) * tp + r) * v.chunk, all + r * local + (o * v.groups + gi) * v.chunk,
               sizeof(float) * (size_t)v.chunk);
}
