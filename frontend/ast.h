/* ast.h — the syntax tree the parser builds and the lowering passes read
 * (private to frontend/ and grammar/).
 *
 * Every node is carved from the parser's scratch arena and carries the srcloc
 * of its first token. Lists are singly linked through `next`, in source order.
 * The parser checks only syntax and token-level facts (SBP spelling, integer
 * literal range, expression depth); names, dims, shapes and units are checked
 * by the lowering passes, which all share one fe_ctx. */
#ifndef SBPC_FE_AST_H
#define SBPC_FE_AST_H
#include <stdbool.h>
#include <stdint.h>
#include "ir/ir.h"
#include "util/arena.h"
#include "util/diag.h"

typedef enum {
  FE_E_ERR,   /* already reported; lowers to an error value silently */
  FE_E_INT, FE_E_FLOAT, FE_E_STR, FE_E_BOOL,
  FE_E_NAME,  /* s = name */
  FE_E_CALL,  /* s = op name, args */
  FE_E_BIN,   /* op in "+-*" "/", l, r */
  FE_E_NEG,   /* l */
  FE_E_LIST,  /* args (no keywords) */
} fe_ekind;

typedef struct fe_expr fe_expr;
typedef struct fe_arg fe_arg;

struct fe_arg {
  const char *kw; /* keyword, or NULL for a positional argument */
  srcloc loc;     /* of the keyword or of the expression */
  fe_expr *e;
  fe_arg *next;
};

struct fe_expr {
  fe_ekind kind;
  srcloc loc;
  int depth;      /* nesting depth (bounded by FE_MAX_DEPTH) */
  char op;
  int64_t i;
  double f;
  const char *s;
  fe_expr *l, *r;
  fe_arg *args;
};

/* An SBP annotation as written: n == 0 when absent. */
typedef struct {
  ir_ndsbp v;
  bool list;      /* written as [ ... ] */
  srcloc loc;
} fe_sbp;

typedef struct {
  int dtype;      /* ir_dtype, or -1 when not written */
  srcloc loc;
  fe_arg *dims;   /* shape expressions */
} fe_type;

typedef enum { FE_I_DIMS, FE_I_INPUT, FE_I_PARAM, FE_I_BLOCK, FE_I_ASSIGN } fe_ikind;

typedef struct fe_item fe_item;
struct fe_item {
  fe_ikind kind;
  srcloc loc;      /* of the name */
  const char *name;
  fe_type type;    /* input, param */
  fe_sbp sbp;      /* input, param */
  fe_expr *e;      /* assign: value; block: count */
  fe_arg *defs;    /* dims: kw = name, e = value */
  fe_item *body;   /* block */
  fe_item *next;
};

/* A number with an optional unit word: `300 GB/s`, `80 GiB`, `8`. */
typedef struct {
  double v;
  bool is_int;
  int64_t i;
  const char *unit; /* NULL when none */
  srcloc loc;
} fe_qty;

typedef enum { FE_N_KV, FE_N_COUNT, FE_N_LINK, FE_N_NIC } fe_nkind;
/* One entry of a device/node/nodes list. KV: name = q. COUNT: count x name.
 * LINK: link name = q [latency lat]. NIC: nic name = count x q [latency lat]. */
typedef struct fe_nitem fe_nitem;
struct fe_nitem {
  fe_nkind kind;
  srcloc loc;
  const char *name;
  int64_t count;
  fe_qty q, lat;
  bool has_lat;
  fe_nitem *next;
};

typedef enum { FE_C_DEVICE, FE_C_NODE, FE_C_NODES } fe_ckind;
typedef struct fe_citem fe_citem;
struct fe_citem {
  fe_ckind kind;
  srcloc loc;
  const char *name;
  fe_nitem *list;
  fe_citem *next;
};

typedef enum { FE_S_MODEL, FE_S_CLUSTER, FE_S_TRAIN } fe_skind;
typedef struct fe_section fe_section;
struct fe_section {
  fe_skind kind;
  srcloc loc;
  const char *name;
  fe_item *items;   /* model */
  fe_citem *citems; /* cluster */
  fe_arg *kv;       /* train: kw = key, e = value */
  fe_section *next;
};

/* The parser's state, shared with the lexer through yyextra. */
typedef struct {
  arena *a;         /* AST arena */
  diag *d;
  fe_section *file; /* result, in source order */
  int line, col;    /* lexer position of the next byte */
} fe_parser;

/* ast.c: constructors (all allocate from P->a). */
fe_expr *fe_expr_new(fe_parser *P, fe_ekind k, srcloc loc);
/* fe_expr_bin: l op r (or -l when r is NULL and op is 'n'); keeps depth
 * within FE_MAX_DEPTH, reporting "nested too deeply" once per expression. */
fe_expr *fe_expr_bin(fe_parser *P, char op, fe_expr *l, fe_expr *r, srcloc loc);
fe_expr *fe_expr_call(fe_parser *P, const char *name, fe_arg *args, srcloc loc);
fe_expr *fe_expr_list(fe_parser *P, fe_arg *elems, srcloc loc);
fe_arg *fe_arg_new(fe_parser *P, const char *kw, fe_expr *e, srcloc loc);
fe_item *fe_item_new(fe_parser *P, fe_ikind k, const char *name, srcloc loc);
fe_nitem *fe_nitem_new(fe_parser *P, fe_nkind k, const char *name, srcloc loc);
fe_citem *fe_citem_new(fe_parser *P, fe_ckind k, const char *name, fe_nitem *list, srcloc loc);
fe_section *fe_section_new(fe_parser *P, fe_skind k, const char *name, srcloc loc);
/* fe_sbp1: an SBP from its spelling (B, S(i), P(sum), P(max)); reports bad
 * ones and returns false. word2 is the parenthesised word (or NULL). */
bool fe_sbp1(fe_parser *P, const char *word, const char *word2, int64_t axis, bool has_axis,
             srcloc loc, ir_sbp *out);
/* List reversal helpers: the parser builds lists backwards. */
fe_arg *fe_args_rev(fe_arg *l);
fe_item *fe_items_rev(fe_item *l);
fe_nitem *fe_nitems_rev(fe_nitem *l);
fe_citem *fe_citems_rev(fe_citem *l);
fe_section *fe_sections_rev(fe_section *l);

/* parser.y: run the parser over src; returns the sections (NULL on none).
 * Syntax errors are reported to P->d. */
fe_section *fe_syntax(fe_parser *P, const char *src, size_t len);
#endif
