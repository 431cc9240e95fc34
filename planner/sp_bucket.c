/* sp_bucket.c — bucketing of sequence lengths by dynamic programming.
 *
 * The MILP sees buckets, not sequences. A bucket is a contiguous run of the
 * sorted lengths; its padding is what it would cost to pad every member to
 * the bucket's longest. pad[b][j] = min over i of pad[b-1][i] + cost(i, j),
 * cost(i, j) = (j - i) * len[j-1] - sum(len[i..j)), in O(k n^2) with prefix
 * sums; the argmin table gives the bucket ends. */
#include "planner/sp.h"
#include <stdlib.h>

int sp_bucket(const int64_t *len, int n, int k, int *end, double *pad) {
  if (n <= 0 || k <= 0) {
    *pad = 0;
    return 0;
  }
  if (k > n) k = n;
  double *pre = xcalloc((size_t)n + 1, sizeof *pre);
  for (int i = 0; i < n; i++) pre[i + 1] = pre[i] + (double)len[i];
  size_t w = (size_t)n + 1;
  double *dp = xmalloc(sizeof *dp * w * (size_t)(k + 1));
  int *arg = xmalloc(sizeof *arg * w * (size_t)(k + 1));
  for (size_t j = 0; j < w * (size_t)(k + 1); j++) dp[j] = 1e300, arg[j] = 0;
  dp[0] = 0;
  for (int b = 1; b <= k; b++)
    for (int j = b; j <= n; j++) {
      double best = 1e300;
      int bi = b - 1;
      for (int i = b - 1; i < j; i++) {
        double prev = dp[(size_t)(b - 1) * w + (size_t)i];
        if (prev >= 1e300) continue;
        double c = prev + (double)(j - i) * (double)len[j - 1] - (pre[j] - pre[i]);
        if (c < best) best = c, bi = i;
      }
      dp[(size_t)b * w + (size_t)j] = best;
      arg[(size_t)b * w + (size_t)j] = bi;
    }
  *pad = dp[(size_t)k * w + (size_t)n];
  for (int b = k, j = n; b >= 1; b--) {
    end[b - 1] = j;
    j = arg[(size_t)b * w + (size_t)j];
  }
  free(pre);
  free(dp);
  free(arg);
  return k;
}
