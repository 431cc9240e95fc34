/* empty.c — keeps a module library non-empty while it has no sources. */
typedef int sbpc_empty_unit;
