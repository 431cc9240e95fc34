/* placeholder until the frontend lands */
%define api.pure full
%code { static int yylex(void *v) { (void)v; return 0; } static void yyerror(const char *s) { (void)s; } }
%define api.prefix {sbpph_}
%%
file: %empty ;
%%
