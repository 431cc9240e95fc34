/* parser.y — the grammar of the sbpc language (docs/language.md, "Grammar").
 *
 * A pure LALR(1) bison parser over the tokens of lexer.l, building the AST of
 * frontend/ast.h in the parser's arena; it checks syntax only (plus SBP
 * spelling). Lists are built backwards (O(1) per element) and reversed by the
 * rule that closes them. Errors recover at item level: a bad model item,
 * cluster item or section is skipped up to the start of the next one, so one
 * run reports several errors. Bison's stack limit (YYMAXDEPTH) turns absurd
 * nesting into an error instead of a crash; expression depth is also bounded
 * by the AST constructors. Commas between dims, train, node and nodes entries
 * may be left out (not between device fields: `80 GiB` must stay one quantity). */
%define api.pure full
%define api.prefix {fe_yy}
%define parse.error verbose
%locations
%param {void *scanner}
%parse-param {fe_parser *P}

%code requires {
#include "frontend/ast.h"
}

%code {
#include <math.h>
#include <string.h>
int fe_yylex(FE_YYSTYPE *lval, FE_YYLTYPE *lloc, void *scanner);
static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, fe_parser *P, const char *msg);
#define L(n) ((srcloc){(n).first_line, (n).first_column})
#define SBP_BAD 255
}

%union {
  const char *s;
  int64_t i;
  double f;
  fe_expr *e;
  fe_arg *a;
  fe_item *it;
  fe_nitem *ni;
  fe_citem *ci;
  fe_section *sec;
  fe_sbp sbp;
  ir_sbp one;
  fe_type ty;
  fe_qty q;
}

%token <s> IDENT "name" STRING "string" BWUNIT "bandwidth unit"
%token <i> INT "integer"
%token <f> FLOAT "number"
%token MODEL "'model'" CLUSTER "'cluster'" TRAIN "'train'" DIMS "'dims'" INPUT "'input'"
%token PARAM "'param'" BLOCK "'block'" DEVICE "'device'" NODE "'node'" NODES "'nodes'"
%token LINK "'link'" NIC "'nic'" LATENCY "'latency'" TRUE "'true'" FALSE "'false'"

%type <sec> sections section
%type <it> mitems mitem
%type <a> dimdefs dimdef exprs args arg tkvs tkv
%type <e> expr primary
%type <ty> type
%type <sbp> sbpopt sbps
%type <one> sbp1
%type <ci> citems citem
%type <ni> kvs kvlist kv nitems nitem counts count
%type <q> qty
%type <s> unit

%left '+' '-'
%left '*' '/'
%precedence NEG

%%

file
  : sections                    { P->file = fe_sections_rev($1); }
  ;

sections
  : %empty                      { $$ = NULL; }
  | sections section            { $$ = $1; if ($2) { $2->next = $1; $$ = $2; } }
  | sections error              { $$ = $1; }
  ;

section
  : MODEL IDENT '{' mitems '}'  { $$ = fe_section_new(P, FE_S_MODEL, $2, L(@2)); $$->items = fe_items_rev($4); }
  | CLUSTER IDENT '{' citems '}' { $$ = fe_section_new(P, FE_S_CLUSTER, $2, L(@2)); $$->citems = fe_citems_rev($4); }
  | TRAIN '{' tkvs '}'          { $$ = fe_section_new(P, FE_S_TRAIN, "train", L(@1)); $$->kv = fe_args_rev($3); }
  ;

/* ---- model ---- */
mitems
  : %empty                      { $$ = NULL; }
  | mitems mitem                { $$ = $1; if ($2) { $2->next = $1; $$ = $2; } }
  | mitems error                { $$ = $1; }
  ;

mitem
  : DIMS '{' dimdefs '}'        { $$ = fe_item_new(P, FE_I_DIMS, "dims", L(@1)); $$->defs = fe_args_rev($3); }
  | INPUT IDENT ':' type sbpopt { $$ = fe_item_new(P, FE_I_INPUT, $2, L(@2)); $$->type = $4; $$->sbp = $5; }
  | PARAM IDENT ':' type sbpopt { $$ = fe_item_new(P, FE_I_PARAM, $2, L(@2)); $$->type = $4; $$->sbp = $5; }
  | BLOCK IDENT '[' expr ']' '{' mitems '}' {
      $$ = fe_item_new(P, FE_I_BLOCK, $2, L(@2)); $$->e = $4; $$->body = fe_items_rev($7); }
  | IDENT '=' expr              { $$ = fe_item_new(P, FE_I_ASSIGN, $1, L(@1)); $$->e = $3; }
  ;

dimdefs
  : %empty                      { $$ = NULL; }
  | dimdefs dimdef              { $$ = $2; $2->next = $1; }
  | dimdefs ','                 { $$ = $1; }
  ;

dimdef
  : IDENT '=' expr              { $$ = fe_arg_new(P, $1, $3, L(@1)); }
  ;

type
  : '[' exprs ']'               { $$.dtype = -1; $$.loc = L(@1); $$.dims = fe_args_rev($2); }
  | IDENT '[' exprs ']'         {
      $$.dtype = ir_dtype_parse($1); $$.loc = L(@1); $$.dims = fe_args_rev($3);
      if ($$.dtype < 0) diag_error(P->d, L(@1), "unknown dtype '%s' (expected f32, f16, bf16, i32 or i64)", $1); }
  ;

sbpopt
  : %empty                      { memset(&$$, 0, sizeof $$); }
  | '@' sbp1                    { memset(&$$, 0, sizeof $$); $$.loc = L(@2); if ($2.kind != SBP_BAD) { $$.v.n = 1; $$.v.a[0] = $2; } }
  | '@' '[' sbps ']'            { $$ = $3; $$.loc = L(@2); $$.list = true; }
  ;

sbps
  : sbp1                        { memset(&$$, 0, sizeof $$); if ($1.kind == SBP_BAD) $$.v.n = IR_MAXMESH + 1; else { $$.v.n = 1; $$.v.a[0] = $1; } }
  | sbps ',' sbp1               {
      $$ = $1;
      if ($$.v.n > IR_MAXMESH) ;
      else if ($3.kind == SBP_BAD) $$.v.n = IR_MAXMESH + 1;
      else if ($$.v.n == IR_MAXMESH) { diag_error(P->d, L(@3), "too many SBP entries (a mesh has at most %d axes)", IR_MAXMESH); $$.v.n = IR_MAXMESH + 1; }
      else $$.v.a[$$.v.n++] = $3; }
  ;

sbp1
  : IDENT                       { if (!fe_sbp1(P, $1, NULL, 0, false, L(@1), &$$)) $$.kind = SBP_BAD; }
  | IDENT '(' INT ')'           { if ($3 == INT64_MIN || !fe_sbp1(P, $1, NULL, $3, true, L(@1), &$$)) $$.kind = SBP_BAD; }
  | IDENT '(' IDENT ')'         { if (!fe_sbp1(P, $1, $3, 0, false, L(@1), &$$)) $$.kind = SBP_BAD; }
  ;

/* ---- expressions ---- */
expr
  : expr '+' expr               { $$ = fe_expr_bin(P, '+', $1, $3, L(@2)); }
  | expr '-' expr               { $$ = fe_expr_bin(P, '-', $1, $3, L(@2)); }
  | expr '*' expr               { $$ = fe_expr_bin(P, '*', $1, $3, L(@2)); }
  | expr '/' expr               { $$ = fe_expr_bin(P, '/', $1, $3, L(@2)); }
  | '-' expr %prec NEG          { $$ = fe_expr_bin(P, 'n', $2, NULL, L(@1)); }
  | primary
  ;

primary
  : INT                         {
      if ($1 == INT64_MIN) $$ = fe_expr_new(P, FE_E_ERR, L(@1));
      else { $$ = fe_expr_new(P, FE_E_INT, L(@1)); $$->i = $1; } }
  | FLOAT                       {
      if (isnan($1)) $$ = fe_expr_new(P, FE_E_ERR, L(@1));
      else { $$ = fe_expr_new(P, FE_E_FLOAT, L(@1)); $$->f = $1; } }
  | STRING                      { $$ = fe_expr_new(P, FE_E_STR, L(@1)); $$->s = $1; }
  | TRUE                        { $$ = fe_expr_new(P, FE_E_BOOL, L(@1)); $$->i = 1; }
  | FALSE                       { $$ = fe_expr_new(P, FE_E_BOOL, L(@1)); $$->i = 0; }
  | IDENT                       { $$ = fe_expr_new(P, FE_E_NAME, L(@1)); $$->s = $1; }
  | IDENT '(' ')'               { $$ = fe_expr_call(P, $1, NULL, L(@1)); }
  | IDENT '(' args ')'          { $$ = fe_expr_call(P, $1, fe_args_rev($3), L(@1)); }
  | '(' expr ')'                { $$ = $2; }
  | '[' ']'                     { $$ = fe_expr_list(P, NULL, L(@1)); }
  | '[' exprs ']'               { $$ = fe_expr_list(P, fe_args_rev($2), L(@1)); }
  ;

exprs
  : expr                        { $$ = fe_arg_new(P, NULL, $1, $1->loc); }
  | exprs ',' expr              { $$ = fe_arg_new(P, NULL, $3, $3->loc); $$->next = $1; }
  ;

args
  : arg                         { $$ = $1; }
  | args ',' arg                { $$ = $3; $3->next = $1; }
  ;

arg
  : expr                        { $$ = fe_arg_new(P, NULL, $1, $1->loc); }
  | IDENT '=' expr              { $$ = fe_arg_new(P, $1, $3, L(@1)); }
  ;

/* ---- cluster ---- */
citems
  : %empty                      { $$ = NULL; }
  | citems citem                { $$ = $1; if ($2) { $2->next = $1; $$ = $2; } }
  | citems error                { $$ = $1; }
  ;

citem
  : DEVICE IDENT '{' kvs '}'    { $$ = fe_citem_new(P, FE_C_DEVICE, $2, fe_nitems_rev($4), L(@2)); }
  | NODE IDENT '{' nitems '}'   { $$ = fe_citem_new(P, FE_C_NODE, $2, fe_nitems_rev($4), L(@2)); }
  | NODES '{' counts '}'        { $$ = fe_citem_new(P, FE_C_NODES, "nodes", fe_nitems_rev($3), L(@1)); }
  ;

kvs
  : %empty                      { $$ = NULL; }
  | kvlist                      { $$ = $1; }
  | kvlist ','                  { $$ = $1; }
  ;

kvlist
  : kv                          { $$ = $1; }
  | kvlist ',' kv               { $$ = $3; $3->next = $1; }
  ;

kv
  : IDENT '=' qty               { $$ = fe_nitem_new(P, FE_N_KV, $1, L(@1)); $$->q = $3; }
  ;

nitems
  : %empty                      { $$ = NULL; }
  | nitems nitem                { $$ = $2; $2->next = $1; }
  | nitems ','                  { $$ = $1; }
  ;

nitem
  : count                       { $$ = $1; }
  | LINK IDENT '=' qty          { $$ = fe_nitem_new(P, FE_N_LINK, $2, L(@1)); $$->q = $4; }
  | LINK IDENT '=' qty LATENCY qty {
      $$ = fe_nitem_new(P, FE_N_LINK, $2, L(@1)); $$->q = $4; $$->lat = $6; $$->has_lat = true; }
  | NIC IDENT '=' INT IDENT qty {
      $$ = fe_nitem_new(P, FE_N_NIC, $2, L(@1)); $$->count = $4; $$->q = $6;
      if (strcmp($5, "x")) diag_error(P->d, L(@5), "expected 'x' in 'COUNT x BANDWIDTH'"); }
  | NIC IDENT '=' INT IDENT qty LATENCY qty {
      $$ = fe_nitem_new(P, FE_N_NIC, $2, L(@1)); $$->count = $4; $$->q = $6; $$->lat = $8; $$->has_lat = true;
      if (strcmp($5, "x")) diag_error(P->d, L(@5), "expected 'x' in 'COUNT x BANDWIDTH'"); }
  ;

counts
  : %empty                      { $$ = NULL; }
  | counts count                { $$ = $2; $2->next = $1; }
  | counts ','                  { $$ = $1; }
  ;

count
  : INT IDENT IDENT             {
      $$ = fe_nitem_new(P, FE_N_COUNT, $3, L(@1)); $$->count = $1;
      if (strcmp($2, "x")) diag_error(P->d, L(@2), "expected 'x' in 'COUNT x NAME'"); }
  ;

qty
  : INT                         { memset(&$$, 0, sizeof $$); $$.is_int = true; $$.i = $1; $$.v = (double)$1; $$.loc = L(@1); }
  | FLOAT                       { memset(&$$, 0, sizeof $$); $$.v = $1; $$.loc = L(@1); }
  | INT unit                    { memset(&$$, 0, sizeof $$); $$.is_int = true; $$.i = $1; $$.v = (double)$1; $$.unit = $2; $$.loc = L(@1); }
  | FLOAT unit                  { memset(&$$, 0, sizeof $$); $$.v = $1; $$.unit = $2; $$.loc = L(@1); }
  ;

unit
  : IDENT                       { $$ = $1; }
  | BWUNIT                      { $$ = $1; }
  ;

/* ---- train ---- */
tkvs
  : %empty                      { $$ = NULL; }
  | tkvs tkv                    { $$ = $2; $2->next = $1; }
  | tkvs ','                    { $$ = $1; }
  ;

tkv
  : IDENT '=' expr              { $$ = fe_arg_new(P, $1, $3, L(@1)); }
  ;

%%

static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, fe_parser *P, const char *msg) {
  (void)scanner;
  srcloc l = {loc->first_line, loc->first_column};
  if (!strcmp(msg, "memory exhausted"))
    diag_error(P->d, l, "input is nested too deeply");
  else
    diag_error(P->d, l, "%s", msg);
}
