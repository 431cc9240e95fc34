/* diag.c — printing located diagnostics with the source line and a caret.
 *
 * The source line is found by scanning the buffer for the loc's line; tabs in
 * the prefix are kept so the caret lines up; lines longer than 200 columns are
 * shown as a window around the column so a 1 MB identifier does not flood the
 * terminal. Non-printable bytes are shown as '?'. Messages about a file as a
 * whole or about no file (sbpc_error, diag_file_error, ...) go through the
 * same printer, so every module's messages have one form. */
#include "util/diag.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void diag_init(diag *d, const char *file, const char *src, size_t len) {
  memset(d, 0, sizeof *d);
  d->file = file;
  d->src = src;
  d->srclen = len;
  d->out = stderr;
  d->color = -1;
}

static int use_color(diag *d) {
  if (d->color < 0) d->color = isatty(fileno(d->out)) && !getenv("NO_COLOR");
  return d->color;
}

static void show_line(diag *d, srcloc loc) {
  if (!d->src || loc.line <= 0) return;
  const char *p = d->src, *end = d->src + d->srclen;
  for (int l = 1; l < loc.line && p < end; p++)
    if (*p == '\n') l++;
  if (p >= end && loc.line > 1) return;
  const char *e = p;
  while (e < end && *e != '\n') e++;
  int col = loc.col > 0 ? loc.col : 1;
  long start = 0, n = e - p;
  if (n > 200) { /* window around the column */
    start = col - 100 > 0 ? col - 100 : 0;
    if (start > n) start = n;
    if (n - start > 200) n = start + 200;
  }
  fputs("  ", d->out);
  for (long i = start; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    fputc(c == '\t' || (c >= 32 && c < 127) ? c : '?', d->out);
  }
  fputs("\n  ", d->out);
  for (long i = start; i < col - 1 && i < n; i++) fputc(p[i] == '\t' ? '\t' : ' ', d->out);
  fputs(use_color(d) ? "\033[1;32m^\033[0m\n" : "^\n", d->out);
}

void diag_vmsg(diag *d, const char *kind, srcloc loc, const char *fmt, va_list ap) {
  const char *col = !use_color(d) ? "" : kind[0] == 'e' ? "\033[1;31m" : kind[0] == 'w' ? "\033[1;35m" : "\033[1;36m";
  flockfile(d->out); /* one message at a time from the runtime's threads */
  if (loc.line > 0 && loc.col > 0)
    fprintf(d->out, "%s:%d:%d: %s%s:%s ", d->file, loc.line, loc.col, col, kind, *col ? "\033[0m" : "");
  else if (loc.line > 0)
    fprintf(d->out, "%s:%d: %s%s:%s ", d->file, loc.line, col, kind, *col ? "\033[0m" : "");
  else
    fprintf(d->out, "%s: %s%s:%s ", d->file, col, kind, *col ? "\033[0m" : "");
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  show_line(d, loc);
  funlockfile(d->out);
}

void diag_error(diag *d, srcloc loc, const char *fmt, ...) {
  d->errors++;
  if (d->errors > DIAG_MAX_ERRORS) {
    if (d->errors == DIAG_MAX_ERRORS + 1)
      fprintf(d->out, "%s: note: too many errors, stopping\n", d->file);
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  diag_vmsg(d, "error", loc, fmt, ap);
  va_end(ap);
}

void diag_warn(diag *d, srcloc loc, const char *fmt, ...) {
  d->warnings++;
  va_list ap;
  va_start(ap, fmt);
  diag_vmsg(d, "warning", loc, fmt, ap);
  va_end(ap);
}

void diag_note(diag *d, srcloc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vmsg(d, "note", loc, fmt, ap);
  va_end(ap);
}

/* say: "who: kind: message" on stderr, coloured as diag_vmsg does */
static void say(const char *who, const char *kind, const char *fmt, va_list ap) {
  diag d;
  diag_init(&d, who, NULL, 0);
  diag_vmsg(&d, kind, (srcloc){0, 0}, fmt, ap);
}

#define SAY(who, kind)   \
  do {                   \
    va_list ap;          \
    va_start(ap, fmt);   \
    say(who, kind, fmt, ap); \
    va_end(ap);          \
  } while (0)

void sbpc_error(const char *fmt, ...) { SAY("sbpc", "error"); }
void sbpc_warn(const char *fmt, ...) { SAY("sbpc", "warning"); }
void sbpc_note(const char *fmt, ...) { SAY("sbpc", "note"); }
void diag_file_error(const char *path, const char *fmt, ...) { SAY(path, "error"); }
void diag_file_note(const char *path, const char *fmt, ...) { SAY(path, "note"); }

const char *diag_printable(const char *s, char *buf, size_t n) {
  size_t o = 0;
  for (; *s && o + 8 < n; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
    else buf[o++] = (char)c;
  }
  if (*s) memcpy(buf + o, "...", 3), o += 3;
  buf[o] = 0;
  return buf;
}

char *read_file(const char *path, size_t max_bytes, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    diag_file_error(path, "cannot open: %s", strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) break;
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n > max_bytes) {
      diag_file_error(path, "file is larger than %zu bytes", max_bytes);
      free(buf);
      fclose(f);
      return NULL;
    }
    if (got == 0) break;
    if (n == cap) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb;
      cap *= 2;
    }
  }
  int err = ferror(f);
  fclose(f);
  if (!buf || err) {
    diag_file_error(path, "read failed");
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}
