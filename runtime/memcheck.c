/* memcheck.c — `sbpc run`: refuse a run this machine cannot hold before
 * allocating anything for it.
 *
 * The estimate is a lower bound of one rank's bytes, computed on the forward
 * graph (shapes inferred, B and S still symbolic) before autodiff and
 * placement: its share of the parameters (1/(tp·pp) of them) held four
 * times (value, gradient, AdamW's two moments; with ZeRO the moments, and
 * with ZeRO-2 the gradients, divided by dp), the largest forward tensor of a
 * micro-batch (divided by tp), the attention kernels' score scratch (2·S²
 * floats, runtime/kernels_cpu.c) and the synthetic token stream. The real
 * peak is higher (activations kept for the backward pass, the buffer pool),
 * so a refusal is never wrong; what passes may still be tight. The estimate
 * is checked against util/os.c's available memory (MemAvailable, cgroup and
 * rlimits, $SBPC_MEMORY_LIMIT), and a refusal prints the number, the limit
 * and the parts. */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <stdio.h>

/* bytes of tensor t with B = mb and S = seq (the runtime keeps 4-byte
 * elements, f32 or i32, whatever the declared precision) */
static double bytes_of(const ir_tensor *t, int64_t mb, int64_t seq) {
  double n = 4;
  for (int i = 0; i < t->rank; i++) n *= (double)ir_dim_eval(t->shape[i], mb, seq);
  return n;
}

bool rt_mem_check(const ir_graph *g, const rt_config *c) {
  int dp = c->lay.dp > 0 ? c->lay.dp : 1, tp = c->lay.tp > 0 ? c->lay.tp : 1, pp = c->lay.pp > 0 ? c->lay.pp : 1;
  int64_t micro = c->lay.micro > 0 ? c->lay.micro : 1, mb = c->global_batch / dp / micro;
  if (mb < 1) mb = 1;
  double params = 0, act = 0, scratch = 0;
  for (int t = 0; t < g->nt; t++) {
    const ir_tensor *x = &g->t[t];
    double b = bytes_of(x, mb, c->seq);
    if (x->kind == IR_T_PARAM) params += b;
    else if (b > act) act = b;
  }
  for (int k = 0; k < g->nop; k++)
    if (g->op[k].kind == IR_OP_ATTENTION) scratch = 2.0 * (double)c->seq * (double)c->seq * 4;
  double share = params / tp / pp, zero = c->zero > 0 && dp > 1 ? dp : 1;
  double state = share * (1 + 2 / zero), grads = share / (c->zero >= 2 && dp > 1 ? dp : 1);
  double data = c->data ? 0 : 4.0 * (double)c->global_batch * (double)(c->seq + 1) * 4;
  double total = state + grads + act / tp + scratch + data;
  if (os_mem_check(total, "sbpc run: one rank")) return true;
  fprintf(stderr,
          "sbpc: note: at least: parameters and AdamW state %.0f, gradients %.0f, the largest activation %.0f, "
          "attention scores %.0f, token stream %.0f bytes (dp %d, tp %d, pp %d, micro-batch %lld x seq %lld)\n",
          state, grads, act / tp, scratch, data, dp, tp, pp, (long long)mb, (long long)c->seq);
  return false;
}
