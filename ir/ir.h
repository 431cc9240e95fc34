/* ir.h — the sbpc intermediate representation; also the index of the ir/ module.
 *
 * A model is a graph of tensors and ops held in one ir_graph. References are
 * small integer indices (ir_ref) into the graph's tables, never pointers, so
 * passes may grow the tables freely. Repeated layers stay visible: every op and
 * tensor made inside `block h[L] { ... }` carries (block, layer, lidx), where
 * lidx is its index inside one layer; all layers of a block have the same
 * structure, so a pass can solve layer 0 and copy the answer to the others.
 *
 * Shapes are symbolic in the batch (B) and sequence (S) dimensions: a dim is
 * c * B^b * S^s. ir_bind() fixes B and S once the training setup is known.
 *
 * SBP: every tensor has one SBP per mesh axis (nd-SBP). Ops declare their valid
 * signatures through the op registry (ops.def + ops.c). Passes, in the order the
 * driver runs them: shape inference -> SBP deduction -> boxing -> verify; the
 * training graph adds autodiff before SBP deduction.
 *
 * Memory: strings and small objects come from g->arena; the tensor/op/block
 * tables are realloc'ed arrays freed by ir_graph_free (see util/arena.h). */
#ifndef SBPC_IR_H
#define SBPC_IR_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "util/arena.h"
#include "util/diag.h"

typedef int32_t ir_ref; /* index into a graph table; -1 = none */
#define IR_NONE (-1)

/* ---- dtypes ---------------------------------------------------------- */
typedef enum { IR_F32, IR_F16, IR_BF16, IR_I32, IR_I64, IR_NDTYPE } ir_dtype;
/* ir_dtype_name: "f32", ...; ir_dtype_size: bytes per element. */
const char *ir_dtype_name(ir_dtype t);
int ir_dtype_size(ir_dtype t);
/* ir_dtype_parse: name -> dtype, or -1. */
int ir_dtype_parse(const char *s);

/* ---- symbolic dims --------------------------------------------------- */
typedef struct {
  int64_t c;     /* constant factor */
  uint8_t b, s;  /* powers of the symbolic batch and sequence dims */
} ir_dim;
#define IR_MAXRANK 6
static inline ir_dim ir_const(int64_t c) { ir_dim d = {c, 0, 0}; return d; }
/* ir_dim_eval: the value of d with B = b and S = s. */
int64_t ir_dim_eval(ir_dim d, int64_t b, int64_t s);
/* ir_dim_eq: structural equality. */
bool ir_dim_eq(ir_dim x, ir_dim y);
/* ir_dim_str: "768", "B", "S", "B*S", "3*S" into buf (at least 48 bytes). */
const char *ir_dim_str(ir_dim d, char *buf, size_t n);

/* ---- SBP ------------------------------------------------------------- */
typedef enum { SBP_S, SBP_B, SBP_PSUM, SBP_PMAX } ir_sbp_kind;
typedef struct {
  uint8_t kind; /* ir_sbp_kind */
  int8_t axis;  /* for SBP_S: the split tensor axis */
} ir_sbp;
#define IR_MAXMESH 4
/* The data-parallel gradient bucket cap (PyTorch DDP's 25 MiB): the
 * lowering cuts buckets at it (lower/params.c), and the planner sizes the
 * CPU executor's all-reduce receive buffer from it (planner/search.c). */
#define IR_GRAD_BUCKET_BYTES (25 << 20)
typedef struct {
  uint8_t n;               /* mesh rank (number of mesh axes) */
  ir_sbp a[IR_MAXMESH];
} ir_ndsbp;
/* ir_sbp_str: "S(1)", "B", "P(sum)", "P(max)"; ir_ndsbp_str: "[S(0), B]" or,
 * for n == 1, the single SBP without brackets. */
const char *ir_sbp_str(ir_sbp s, char *buf, size_t n);
const char *ir_ndsbp_str(const ir_ndsbp *s, char *buf, size_t n);
bool ir_sbp_eq(ir_sbp x, ir_sbp y);
/* ir_sbp_parse: "S(i)" (0 <= i < IR_MAXRANK), "B", "P(sum)" / "P", "P(max)"
 * into *out; false for anything else. */
bool ir_sbp_parse(const char *s, ir_sbp *out);
bool ir_ndsbp_eq(const ir_ndsbp *x, const ir_ndsbp *y);

/* ---- ops --------------------------------------------------------------- */
typedef enum {
  KC_ELEM, KC_ROW, KC_GEMM, KC_ATTN, KC_GATHER, KC_COMM, KC_VIEW, KC_SOURCE, KC_OPT
} ir_kclass;

typedef enum {
#define OP(name, str, mi, ma, no, kc, doc) IR_OP_##name,
#include "ir/ops.def"
#undef OP
  IR_NOPKIND
} ir_opkind;

#define IR_MAXIN 6
#define IR_MAXOUT 3

/* Attributes of an op; each op reads the fields it documents in ops.def. */
typedef struct {
  int64_t heads, kv_heads; /* attention, rotary */
  int64_t axis;            /* softmax, split, concat, select (-1 = last) */
  int64_t index;           /* select, select_grad: the position along axis */
  int64_t n;               /* split parts */
  int64_t mesh_axis;       /* comm ops: which mesh axis they run over */
  bool causal, trans_a, trans_b;
  bool tanh;               /* gelu: tanh approximation (else erf) */
  bool packed;             /* attention, positions, rotary, cross_entropy and their
                              gradients: a packed batch's documents (lower/packed.c) */
  double eps, scale, p, theta;
  double lr, beta1, beta2, weight_decay; /* adamw */
  uint8_t rank;            /* reshape / positions / select_grad: target shape */
  ir_dim shape[IR_MAXRANK];
  ir_sbp from, to;         /* comm ops: the boxing they perform on mesh_axis */
  int32_t stage_from, stage_to; /* send_recv: pipeline stages */
} ir_attrs;

/* ---- tensors ------------------------------------------------------------ */
typedef enum { IR_T_INPUT, IR_T_PARAM, IR_T_ACT, IR_T_GRAD, IR_T_STATE } ir_tkind;

typedef struct {
  const char *name;   /* full name, e.g. "h.0.attn.c_attn.weight" or "%12" */
  uint8_t kind;       /* ir_tkind */
  uint8_t dtype;      /* ir_dtype (logical; precision applies later) */
  uint8_t rank;
  ir_dim shape[IR_MAXRANK];
  ir_ref producer;    /* op, or IR_NONE for inputs and params */
  int32_t block, layer, lidx; /* -1 outside blocks */
  bool has_hint;
  ir_ndsbp hint;      /* user annotation (@ S(1)) */
  ir_ndsbp sbp;       /* deduced; n == 0 until SBP deduction ran */
  ir_ref grad_of;     /* IR_T_GRAD: the tensor this is the gradient of */
  srcloc loc;
} ir_tensor;

typedef struct {
  uint16_t kind;      /* ir_opkind */
  uint8_t nin, nout;
  ir_ref in[IR_MAXIN], out[IR_MAXOUT];
  ir_attrs at;
  int32_t block, layer, lidx; /* -1 outside blocks */
  bool backward;      /* made by autodiff */
  bool recompute;     /* planned for recompute */
  int32_t sig;        /* chosen SBP signature index (registry order), -1 */
  ir_ndsbp in_sbp[IR_MAXIN], out_sbp[IR_MAXOUT]; /* chosen SBP at each slot */
  double comm_bytes;  /* comm ops: bytes moved per device */
  srcloc loc;
} ir_op;

typedef struct {
  const char *name;   /* "h" */
  int32_t count;      /* number of layers */
  int32_t ops_per_layer, tensors_per_layer;
} ir_block;

typedef struct {
  const char *name;
  int64_t value;
} ir_dimdef;

/* Device mesh the SBP of a graph refers to: mesh[0] x mesh[1] x ... devices. */
typedef struct {
  int n;
  int64_t size[IR_MAXMESH];
  const char *axis_name[IR_MAXMESH]; /* "dp", "tp", ... (may be NULL) */
} ir_mesh;

typedef struct ir_graph {
  arena *arena;
  const char *name;
  ir_tensor *t; int nt, capt;
  ir_op *op;    int nop, capop;
  ir_block *blk; int nblk, capblk;
  ir_dimdef *dim; int ndim, capdim;   /* named dims, for printing and import */
  ir_ref loss;        /* scalar training objective, or IR_NONE */
  ir_mesh mesh;       /* n == 0: a single device */
  int64_t bind_b, bind_s; /* 0 until ir_bind */
  bool boxed;         /* ir_insert_boxing ran: every op's in_sbp is its inputs' sbp */
} ir_graph;

/* ---- cluster and training setup ---------------------------------------- */
typedef struct {
  const char *name;
  double peak_flops[IR_NDTYPE]; /* FLOP/s per dtype (0 = unsupported) */
  double mem_bytes;             /* device memory */
  double mem_bw;                /* bytes/s */
} ir_devtype;

typedef struct {
  const char *name;
  int devtype;        /* index into cluster devtypes */
  int ndev;           /* devices per node */
  const char *link_name;
  double link_bw, link_lat;     /* intra-node, bytes/s per device, seconds */
  const char *nic_name;
  int nics;
  double nic_bw, nic_lat;       /* per NIC, bytes/s; seconds */
} ir_nodetype;

typedef struct {
  const char *name;
  ir_devtype *dev;  int ndev;
  ir_nodetype *node; int nnode;
  int *node_count;  /* per node type: how many nodes */
  srcloc loc;
} ir_cluster;

typedef enum { IR_OPT_ADAMW, IR_OPT_SGD } ir_optimizer;

typedef struct {
  int64_t global_batch;  /* sequences per step (0 = unset) */
  int64_t seq;           /* sequence length (0 = unset) */
  int64_t micro_batch;   /* 0 = let the planner choose */
  ir_dtype precision;    /* compute precision, default bf16 */
  ir_optimizer optimizer;
  const char *lengths;   /* path of a sequence-lengths file, or NULL */
  bool set;              /* a train section was given */
} ir_train;

/* What one source file (or import) describes. Any part may be missing. */
typedef struct {
  ir_graph *g;           /* NULL if the file has no model */
  ir_cluster *cluster;   /* NULL if the file has no cluster */
  ir_train train;
  arena *own;            /* holds cluster/train strings when there is no model
                            (g->arena holds them otherwise); freed with the program */
} ir_program;

/* ---- graph building ------------------------------------------------------ */
/* ir_graph_new: an empty graph with its own arena. */
ir_graph *ir_graph_new(const char *name);
/* ir_graph_free: free the tables and the arena; NULL is ok. */
void ir_graph_free(ir_graph *g);
/* ir_tensor_add: append a tensor (copied) and return its ref. */
ir_ref ir_tensor_add(ir_graph *g, const ir_tensor *t);
/* ir_op_add: append an op (copied); sets producer of its outputs. */
ir_ref ir_op_add(ir_graph *g, const ir_op *op);
/* ir_block_add: append a block description and return its index. */
int ir_block_add(ir_graph *g, const char *name, int count);
/* ir_dim_add: record a named dim. */
void ir_dim_add(ir_graph *g, const char *name, int64_t value);
/* ir_op_init: a zeroed op of the given kind with sig -1 and block -1. */
ir_op ir_op_init(ir_opkind k);
/* ir_tensor_init: a zeroed tensor with producer/block/grad_of = -1. */
ir_tensor ir_tensor_init(const char *name, ir_tkind kind, ir_dtype dt);

/* ---- op registry (ops.c) ----------------------------------------------------- */
typedef struct {
  const char *name;
  int min_in, max_in, nout;
  ir_kclass kclass;
  const char *doc;
} ir_opinfo;
extern const ir_opinfo ir_ops[IR_NOPKIND];
/* ir_op_lookup: op kind by its text name, or -1. */
int ir_op_lookup(const char *name);

/* One SBP signature of an op on one mesh axis: SBP of each input and output. */
typedef struct {
  ir_sbp in[IR_MAXIN], out[IR_MAXOUT];
} ir_sig;
#define IR_MAXSIGS 32
/* ir_op_sigs: the valid 1-D signatures of op `o` (shapes must be inferred);
 * writes up to IR_MAXSIGS into sigs and returns how many. */
int ir_op_sigs(const ir_graph *g, const ir_op *o, ir_sig *sigs);
/* ir_op_infer: infer the output shapes/dtypes of op `o` from its inputs; on a
 * mismatch prints a diagnostic at o->loc and returns false. */
bool ir_op_infer(ir_graph *g, ir_op *o, diag *d);
/* ir_op_flops: forward FLOPs of op `o` with the graph's bound B and S. */
double ir_op_flops(const ir_graph *g, const ir_op *o);
/* ir_op_bytes: bytes read + written by op `o` (elements times dtype_bytes). */
double ir_op_bytes(const ir_graph *g, const ir_op *o, int dtype_bytes);

/* nd-SBP signature: one 1-D signature per mesh axis, already combined.
 * idx[a] is the index of the 1-D signature used on mesh axis a (ir_op_sigs
 * order); flat = the mixed-radix index sum idx[a] * nsig^(n-1-a), which is what
 * sbp.c stores in ir_op.sig. */
typedef struct {
  ir_ndsbp in[IR_MAXIN], out[IR_MAXOUT];
  int16_t idx[IR_MAXMESH];
  int32_t flat;
} ir_ndsig;
/* ir_op_ndsigs: the nd-SBP signatures of `o` on `mesh` (product of the 1-D
 * signatures over the mesh axes, in lexicographic order with mesh axis 0 the
 * slowest), keeping only those where every split tensor dim is divisible by the
 * product of the mesh sizes splitting it (symbolic dims not yet bound count as
 * divisible when their constant factor is) and, for attention/rotary, heads
 * and kv_heads are divisible by the head split. A mesh with n == 0 gets one
 * signature with all slots B (n = 0). Writes up to max; returns how many. */
int ir_op_ndsigs(const ir_graph *g, const ir_op *o, const ir_mesh *mesh, ir_ndsig *out, int max);
/* ir_op_kclass: the kernel class of an op kind (ir_ops[k].kclass). */
ir_kclass ir_op_kclass(ir_opkind k);

/* Gradient rules. A rule appends the backward ops of forward op `op` to g:
 * dout[i] is the gradient of op's output i (IR_NONE if it has none); it writes
 * din[i] for every input i (IR_NONE where the input gets no gradient) and
 * returns false on failure. The rules live in ir/grad*.c (runtime helper); the
 * registry keeps one slot per op kind, filled with ir_op_set_grad. */
typedef bool (*ir_grad_fn)(ir_graph *g, ir_ref op, const ir_ref *dout, ir_ref *din);
/* ir_op_grad: the gradient rule of kind k, or NULL where none is provided. */
ir_grad_fn ir_op_grad(ir_opkind k);
/* ir_op_set_grad: install the gradient rule of kind k (autodiff calls this
 * once before differentiating; not thread-safe). */
void ir_op_set_grad(ir_opkind k, ir_grad_fn fn);

/* Dim arithmetic (ops.c): ir_dim_mul multiplies constants (saturating at
 * INT64_MAX) and adds the B and S powers. */
ir_dim ir_dim_mul(ir_dim x, ir_dim y);
/* ir_dim_numel: the symbolic element count of a shape. */
ir_dim ir_dim_numel(const ir_dim *shape, int rank);
/* ir_tensor_bytes: bytes of tensor r with B and S bound (unbound count as 1). */
double ir_tensor_bytes(const ir_graph *g, ir_ref r);

/* ---- queries ------------------------------------------------------------------ */
/* ir_numel: element count of tensor t with the graph's bound B and S. */
int64_t ir_numel(const ir_graph *g, ir_ref t);
/* ir_param_count: total elements over all IR_T_PARAM tensors. */
int64_t ir_param_count(const ir_graph *g);
/* ir_qkv_path: the tensors a fused attention's qkv (op a, one input) is
 * made from: its input, back through bias_add and add, and a matmul's
 * weight (at most max, in out); returns how many. A split of these on the
 * last axis is by head only when it comes from column-split weights. */
int ir_qkv_path(const ir_graph *g, const ir_op *a, ir_ref *out, int max);

/* ---- passes (one file each) ---------------------------------------------------- */
/* ir_bind: fix the symbolic B and S (shape.c). */
void ir_bind(ir_graph *g, int64_t b, int64_t s);
/* ir_infer_shapes: run shape inference over every op (shape.c). */
bool ir_infer_shapes(ir_graph *g, diag *d);
/* ir_deduce_sbp: choose an SBP for every tensor on g->mesh from the hints,
 * greedily minimising boxing bytes; checks hints against shapes (sbp.c). */
bool ir_deduce_sbp(ir_graph *g, diag *d);
/* ir_deduce_sbp_fixed: ir_deduce_sbp where, on a 1-D mesh, op i takes
 * signature fixed[i] whenever has[i] (the planner's choice); an error when
 * that is not one of the op's signatures (sbp.c). */
bool ir_deduce_sbp_fixed(ir_graph *g, const ir_sig *fixed, const bool *has, diag *d);
/* ir_insert_boxing: insert comm ops where a producer's SBP differs from what a
 * consumer's signature needs, with bytes per device on each (boxing.c). */
bool ir_insert_boxing(ir_graph *g, diag *d);
/* ir_boxing_bytes: bytes moved per device to turn a tensor of logical size T
 * (bytes, as seen by one group of n devices on one mesh axis) from SBP `from`
 * into `to` (DESIGN.md table: P->B 2T(n-1)/n, P->S and S->B T(n-1)/n,
 * S(i)->S(j) T(n-1)/n^2, B->S, B->P and S->P 0) (boxing.c). */
double ir_boxing_bytes(ir_sbp from, ir_sbp to, double T, int64_t n);
/* ir_boxing_kind: the one SBP-to-collective table (boxing.c): the comm op that
 * turns one mesh axis from `from` into `to` (IR_OP_ALL_REDUCE for P -> B and
 * P -> P, IR_OP_REDUCE_SCATTER for P -> S, IR_OP_ALL_GATHER for S -> B,
 * IR_OP_ALL_TO_ALL for S(i) -> S(j), IR_OP_SLICE for the local B -> S,
 * B -> P, S -> P); IR_NOPKIND when they are equal. The planner costs with it. */
ir_opkind ir_boxing_kind(ir_sbp from, ir_sbp to);
/* ir_coll_bytes: bytes moved per device by comm op k on a group of n for a
 * tensor of logical size T (the DESIGN.md table; IR_OP_SEND_RECV moves T,
 * IR_OP_SLICE and IR_NOPKIND nothing) (boxing.c). */
double ir_coll_bytes(ir_opkind k, double T, int64_t n);
/* One comm op of a boxing: convert mesh axis `axis` from `from` to `to`. */
typedef struct {
  ir_opkind kind;     /* IR_OP_ALL_REDUCE, ..., IR_OP_SLICE */
  int axis;
  ir_sbp from, to;
  double bytes;       /* per device, ir_boxing_bytes on this axis's share */
} ir_boxstep;
#define IR_MAXBOXSTEPS (3 * IR_MAXMESH)
/* ir_boxing_plan: the comm ops that turn tensor r from nd-SBP *from into *to
 * on g->mesh (boxing.c), in the order boxing inserts them: first the axes
 * whose target is B or P, then S(i) -> S(j) and P -> S (through B when that
 * layout would not divide the tensor), then B -> S slices. Every intermediate layout
 * divides the tensor when *from and *to do. Returns the number of steps. */
int ir_boxing_plan(const ir_graph *g, ir_ref r, const ir_ndsbp *from, const ir_ndsbp *to, ir_boxstep *steps);
/* ir_ndsbp_fits: every dim of tensor r split by nd-SBP *s on mesh *m is
 * divisible by the product of the mesh sizes splitting it (ops_sig.c). */
bool ir_ndsbp_fits(const ir_graph *g, ir_ref r, const ir_ndsbp *s, const ir_mesh *m);
/* ir_verify: structural checks (refs in range, producers, shapes, acyclic, SBP
 * consistent); prints what is wrong (verify.c). */
bool ir_verify(const ir_graph *g, diag *d);
/* ir_verify_structure: checks 1-3 of ir_verify only (refs, producers, a
 * topological op table): what a graph whose shapes are one rank's shards
 * (a compiled program's) must still satisfy (verify.c). */
bool ir_verify_structure(const ir_graph *g, diag *d);
/* ir_verify_local: ir_verify_structure plus shapes, for a graph of one rank
 * of a group of n (a compiled program's): every op but a comm op passes
 * shape inference with the shapes it has, and a comm op's output is its
 * input with the split axes of its from / to rescaled by n (verify.c). */
bool ir_verify_local(const ir_graph *g, int64_t n, diag *d);

/* ir_verify_after: in builds without NDEBUG, ir_verify plus a note naming the
 * pass that broke the graph; with NDEBUG, true. The passes call it last. */
bool ir_verify_after(const ir_graph *g, diag *d, const char *pass);

/* ---- printers ------------------------------------------------------------------- */
/* ir_print: the stable text form (print.c). */
void ir_print(const ir_graph *g, FILE *out);
/* ir_print_dot: Graphviz of block `blk`'s layer 0 (or the whole graph if blk < 0),
 * SBP on edges, boxing ops highlighted (dot.c). */
void ir_print_dot(const ir_graph *g, int blk, FILE *out);
#endif
