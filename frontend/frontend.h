/* frontend.h — the sbpc language front end: .sbp text -> ir_program.
 *
 * A .sbp file (docs/language.md) holds up to one model, one cluster and one
 * train section. fe_parse runs the flex lexer and bison parser
 * (grammar/lexer.l, grammar/parser.y) into an AST (frontend/ast.h), then
 * lowers it: dims are evaluated with overflow checks (dims.c), the model
 * becomes an ir_graph with blocks expanded layer by layer (lower.c,
 * lower_expr.c), the cluster an ir_cluster (cluster.c) and the train section
 * an ir_train (train.c). Built-in clusters (presets.c) are .sbp text parsed by
 * the same code.
 *
 * Memory: the AST lives in a scratch arena freed before fe_parse returns. The
 * program's graph owns its arena (ir_graph_new); the program's cluster and
 * train.lengths are allocated in that same graph arena, so fe_program_free is
 * ir_graph_free (so with a model, p->cluster and p->train may be overwritten
 * freely). A file without a model keeps its cluster and lengths in the
 * program's own arena (ir_program.own), which fe_program_free also frees.
 * fe_cluster_preset and fe_cluster_load copy the cluster into the caller's
 * arena. */
#ifndef SBPC_FRONTEND_H
#define SBPC_FRONTEND_H
#include <stdbool.h>
#include <stddef.h>
#include "ir/ir.h"
#include "util/arena.h"
#include "util/diag.h"

/* Limits; going over one is an input error, never a crash. */
#define FE_MAX_FILE (64u << 20)   /* bytes of one .sbp file */
#define FE_MAX_IDENT 256          /* characters of one identifier */
#define FE_MAX_LAYERS 100000      /* count of one block */
#define FE_MAX_DEPTH 1000         /* nesting depth of one expression */
#define FE_MAX_NUMEL (INT64_C(1) << 40) /* constant elements of one tensor */
#define FE_MAX_PARAMS (INT64_C(1) << 50) /* parameters of one model */
#define FE_MAX_OPS (1 << 18)      /* tensors (so ops) of one graph, blocks expanded */

/* fe_parse: parse and lower src[0..len) (named `file` in messages) into *out.
 * d is the diagnostic context; if d->file is NULL it is initialised here
 * (keeping d->out when set). Reports as many errors as it can recover from.
 * Returns true on success; on failure d->errors > 0 and *out is freed and
 * zeroed (out->g == NULL, out->cluster == NULL). */
bool fe_parse(const char *file, const char *src, size_t len, ir_program *out, diag *d);

/* fe_load: read `path` (at most FE_MAX_FILE bytes) and fe_parse it, printing
 * diagnostics to stderr. Returns false (and a zeroed *out) on failure. */
bool fe_load(const char *path, ir_program *out);

/* fe_program_free: free everything fe_parse/fe_load made; zeroes *p. A zeroed
 * or NULL program is fine. */
void fe_program_free(ir_program *p);

/* fe_cluster_preset: a built-in cluster from "NAME[:COUNT]": dgx-a100, dgx-h100,
 * frontier (COUNT = nodes, default 1) or cpu (COUNT = CPU devices, default 1),
 * allocated in `a`. On a bad spec returns NULL with a message in err. */
ir_cluster *fe_cluster_preset(const char *spec, arena *a, char *err, size_t errn);

/* fe_cluster_load: a preset spec, or the path of a .sbp file with a cluster
 * section (anything containing '/' or ending in ".sbp" is a path), copied
 * into `a`. Prints errors to stderr and returns NULL on failure. */
ir_cluster *fe_cluster_load(const char *spec_or_path, arena *a);

/* fe_cluster_copy: a deep copy of cluster c in arena a. */
ir_cluster *fe_cluster_copy(const ir_cluster *c, arena *a);

/* fe_cluster_devices: total device count of a cluster. */
int64_t fe_cluster_devices(const ir_cluster *c);
#endif
