/* fixtures.h — graphs and clusters built in code, for the tests and the
 * benchmarks only (the sbpc_fixtures library; nothing in sbpc links it).
 *
 *   fx_gpt.c    a GPT forward graph as the front end makes it from a .sbp,
 *               and the DGX-A100 and mixed A100/V100 clusters
 *   fx_block.c  one GPT-2 block, forward and backward, and the fusion
 *               patterns a block lacks, for the codegen tests, the CPU
 *               benchmark and the GPU check
 *
 * Prefix: fx_. */
#ifndef SBPC_TESTS_FIXTURES_H
#define SBPC_TESTS_FIXTURES_H
#include "ir/ir.h"
#include "util/arena.h"

/* fx_gpt_graph: a GPT forward graph as the front end makes it from a .sbp
 * (embedding + positions, L blocks of pre-LN attention and GELU MLP with
 * biases and dropout, final layer norm, tied LM head, cross-entropy), every
 * shape set, symbolic in B and S. */
ir_graph *fx_gpt_graph(const char *name, int layers, int64_t hidden, int64_t heads, int64_t vocab,
                       int64_t maxpos);
/* fx_cluster_dgx: n DGX-A100 nodes (8 x A100 80GB, NVSwitch 300 GB/s, 8 x
 * 25 GB/s InfiniBand), allocated from arena a. */
ir_cluster *fx_cluster_dgx(arena *a, int nodes);
/* fx_cluster_mixed: na DGX-A100 nodes + nv nodes of 8 x V100 32GB (NVLink
 * 150 GB/s, one 100 Gb/s Ethernet NIC), allocated from arena a. */
ir_cluster *fx_cluster_mixed(arena *a, int na, int nv);

/* fx_gpt2_block: one GPT-2 block, forward and backward, hidden size h,
 * `heads` heads, with `tokens` rows bound. */
ir_graph *fx_gpt2_block(int64_t h, int heads, int64_t tokens);
/* fx_extras: cross-entropy fwd+bwd (vocab 50257), causal softmax, rms_norm,
 * swiglu and AdamW, with `tokens` rows bound. */
ir_graph *fx_extras(int64_t tokens);
#endif
