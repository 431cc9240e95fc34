/* diag.h — diagnostics in the cproc form, shared by every module.
 *
 *   file:line:col: error: message
 *     the source line
 *         ^
 *
 * A diag context knows one source buffer (or none, for errors about a file as
 * a whole: "file: error: message"). Errors are counted; after DIAG_MAX_ERRORS
 * further ones are dropped with a note. Colour only when the stream is a
 * terminal and NO_COLOR is unset. Exit statuses used by the driver live here
 * too, so every module speaks the same contract. */
#ifndef SBPC_DIAG_H
#define SBPC_DIAG_H
#include <stdio.h>
#include <stdarg.h>

enum {
  EXIT_OK = 0,
  EXIT_BAD_INPUT = 1, /* malformed or inconsistent input */
  EXIT_USAGE = 2,     /* bad command line */
  EXIT_NO_PLAN = 3,   /* no layout fits */
  EXIT_INTERNAL = 4,  /* an internal failure (tool crash, solver error) */
};

#define DIAG_MAX_ERRORS 20

/* A position in a source buffer: 1-based line and column (0 = unknown). */
typedef struct {
  int line, col;
} srcloc;

typedef struct diag {
  const char *file;   /* name shown in messages */
  const char *src;    /* source text (may be NULL); not owned */
  size_t srclen;
  int errors, warnings;
  FILE *out;          /* default stderr */
  int color;          /* -1 = decide from isatty */
} diag;

/* diag_init: set up a context for `file` whose text is src[0..len). */
void diag_init(diag *d, const char *file, const char *src, size_t len);
/* diag_error / diag_warn / diag_note: print a located message; loc.line 0 means
 * the message is about the file as a whole, loc.col 0 about the whole line
 * ("file:line: error: ..."). */
void diag_error(diag *d, srcloc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warn(diag *d, srcloc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(diag *d, srcloc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_vmsg(diag *d, const char *kind, srcloc loc, const char *fmt, va_list ap);

/* sbpc_error / sbpc_warn / sbpc_note: a message about no file at all
 * ("sbpc: error: ..."), to stderr. */
void sbpc_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sbpc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sbpc_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* diag_file_error / diag_file_note: a message about the file path as a whole
 * ("path: error: ..."), to stderr, for the modules that read a file without
 * a diag context of its text (checkpoints, data, safetensors, plans). */
void diag_file_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_file_note(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* diag_printable: s for a message, with control bytes (below 0x20, and
 * 0x7f) written as \xNN so a hostile name cannot drive the terminal; cut
 * with "..." to fit buf[0..n) (n >= 8). Returns buf. */
const char *diag_printable(const char *s, char *buf, size_t n);

/* read_file: read a whole file (NUL-terminated) into malloc'ed memory; refuses
 * files over max_bytes. Returns NULL and prints "path: error: why" on failure. */
char *read_file(const char *path, size_t max_bytes, size_t *len);
#endif
