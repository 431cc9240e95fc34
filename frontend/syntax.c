/* syntax.c — runs the flex scanner and bison parser over one buffer.
 *
 * The scanner copies the buffer (yy_scan_bytes), so the source needs no
 * terminating NUL and may contain any bytes. Parser and scanner state are
 * local to the call; the AST goes to P->a. */
#include "frontend/ast.h"
#include "parser.h"
#include "lexer.h"

int fe_yyparse(void *scanner, fe_parser *P);

fe_section *fe_syntax(fe_parser *P, const char *src, size_t len) {
  yyscan_t sc;
  P->file = NULL;
  P->line = 1;
  P->col = 1;
  if (fe_yylex_init_extra(P, &sc)) {
    diag_error(P->d, (srcloc){0, 0}, "cannot start the scanner");
    return NULL;
  }
  YY_BUFFER_STATE buf = fe_yy_scan_bytes(src, (int)len, sc);
  fe_yyparse(sc, P);
  fe_yy_delete_buffer(buf, sc);
  fe_yylex_destroy(sc);
  return P->file;
}
