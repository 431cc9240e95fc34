/* opts.c — the option parser and usage printer of every sbpc command (see
 * opts.h). Values are parsed strictly: a whole decimal number within the
 * option's bounds, a word of its list, or what its own parser accepts, so
 * `--batch 1e9` or `--mesh 2x` is a usage error rather than a silent zero.
 * An empty value counts as a missing one. Values are quoted in messages
 * through diag_printable, so a hostile argument cannot drive the terminal. */
#include "driver/opts.h"
#include "ir/ir.h"
#include "util/diag.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COL 24 /* where an option's help starts */

bool drv_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool drv_precision_parse(const char *v, void *dst) {
  int d = ir_dtype_parse(v);
  return (d == IR_F32 || d == IR_BF16 || d == IR_F16) && (*(int *)dst = d, true);
}

int drv_choice(const char *words, const char *v) {
  size_t n = strlen(v);
  int k = 0;
  for (const char *w = words; *w; k++) {
    size_t len = strcspn(w, " ");
    if (n && len == n && !strncmp(w, v, n)) return k;
    w += len;
    w += *w == ' ';
  }
  return -1;
}

static bool parse_real(const drv_option *o, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !(v >= o->flo) || (o->open && v == o->flo) || v > o->fhi) return false;
  *out = v;
  return true;
}

/* store: parse v into dst as o says; false when v is not one of its values */
static bool store(const drv_option *o, void *dst, const char *v) {
  int64_t x;
  int k;
  switch (o->kind) {
  case DRV_STR: *(const char **)dst = v; return true;
  case DRV_INT: return drv_parse_int(v, o->lo, o->hi, &x) ? (*(int *)dst = (int)x, true) : false;
  case DRV_I64: return drv_parse_int(v, o->lo, o->hi, (int64_t *)dst);
  case DRV_REAL: return parse_real(o, v, (double *)dst);
  case DRV_CHOICE: return (k = drv_choice(o->choices, v)) >= 0 ? (*(int *)dst = k, true) : false;
  case DRV_CALL: return o->parse(v, dst);
  default: return false;
  }
}

/* expect: what o takes, for a bad-value message */
static const char *expect(const drv_option *o, char *buf, size_t n) {
  if (o->kind == DRV_CALL) return o->expect;
  if (o->kind == DRV_INT || o->kind == DRV_I64) {
    if (o->lo == 1 && o->hi >= (INT64_C(1) << 31)) return "a positive integer";
    snprintf(buf, n, "an integer from %lld to %lld", (long long)o->lo, (long long)o->hi);
  } else if (o->kind == DRV_REAL) {
    if (o->open && o->flo == 0) return "a positive number";
    snprintf(buf, n, "a number from %g to %g", o->flo, o->fhi);
  } else if (o->kind == DRV_CHOICE) {
    size_t k = 0;
    for (const char *w = o->choices; *w && k + 1 < n;) {
      size_t len = strcspn(w, " ");
      const char *sep = !w[len] ? "" : strchr(w + len + 1, ' ') ? ", " : " or ";
      k += (size_t)snprintf(buf + k, n - k, "%.*s%s", (int)len, w, sep);
      w += len + (w[len] == ' ');
    }
  } else snprintf(buf, n, "a value");
  return buf;
}

int drv_usage_error(const drv_command *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sbpc_error("%s: %s", c->name, msg);
  fprintf(stderr, "usage: sbpc %s %s\n'sbpc %s --help' lists the options\n", c->name, c->synopsis, c->name);
  return EXIT_USAGE;
}

/* find: the option spelt s[0..n) and its set, or NULL */
static const drv_option *find(const drv_optset *sets, const char *s, size_t n, const drv_optset **set) {
  for (*set = sets; (*set)->opt; (*set)++)
    for (const drv_option *o = (*set)->opt; o->name; o++)
      if ((strlen(o->name) == n && !strncmp(o->name, s, n)) ||
          (o->alias && strlen(o->alias) == n && !strncmp(o->alias, s, n)))
        return o;
  return NULL;
}

/* option: argv[*i], an option; advances *i past its value. -1 when taken,
 * else EXIT_USAGE after the error. */
static int option(const drv_command *c, const drv_optset *sets, int argc, char **argv, int *i) {
  const char *s = argv[*i], *eq = strchr(s, '=');
  int n = eq ? (int)(eq - s) : (int)strlen(s);
  char pv[96], buf[160];
  const drv_optset *set;
  const drv_option *o = find(sets, s, (size_t)n, &set);
  if (!o) return drv_usage_error(c, "unknown option '%s'", diag_printable(s, pv, sizeof pv));
  void *dst = (char *)set->base + o->off;
  if (o->kind == DRV_FLAG || o->kind == DRV_SET) {
    if (eq) return drv_usage_error(c, "%.*s takes no value", n, s);
    if (o->kind == DRV_FLAG) *(bool *)dst = true;
    else *(int *)dst = (int)o->lo;
    return -1;
  }
  const char *v = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : "";
  if (!*v) return drv_usage_error(c, "%.*s needs a value", n, s);
  if (!store(o, dst, v))
    return drv_usage_error(c, "bad value '%s' for %.*s (expected %s)", diag_printable(v, pv, sizeof pv), n, s,
                           expect(o, buf, sizeof buf));
  return -1;
}

int drv_args(const drv_command *c, const drv_optset *sets, int argc, char **argv, const char **pos) {
  int npos = 0;
  bool only_pos = false;
  for (int k = 0; k < DRV_MAXPOS; k++) pos[k] = NULL;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (only_pos || s[0] != '-' || !s[1]) {
      char pv[96];
      if (npos == DRV_MAXPOS || !c->pos[npos])
        return drv_usage_error(c, "unexpected argument '%s'", diag_printable(s, pv, sizeof pv));
      pos[npos++] = s;
    } else if (!strcmp(s, "--")) only_pos = true;
    else if (!strcmp(s, "--help") || !strcmp(s, "-h")) return drv_usage(c, sets, stdout), EXIT_OK;
    else if (option(c, sets, argc, argv, &i) >= 0) return EXIT_USAGE;
  }
  for (int k = 0; k < c->min_pos; k++)
    if (!pos[k]) return drv_usage_error(c, "missing %s", c->pos[k]);
  return -1;
}

/* print_option: "  --name, --alias META" padded to HELP_COL, then the help */
static void print_option(const drv_option *o, FILE *f) {
  int n = fprintf(f, "  %s%s%s%s%s", o->name, o->alias ? ", " : "", o->alias ? o->alias : "", o->meta ? " " : "",
                  o->meta ? o->meta : "");
  if (n >= HELP_COL) fputc('\n', f), n = 0;
  fprintf(f, "%*s", HELP_COL - n, "");
  for (const char *h = o->help; *h; h++) {
    fputc(*h, f);
    if (*h == '\n') fprintf(f, "%*s", HELP_COL, "");
  }
  fputc('\n', f);
}

void drv_usage(const drv_command *c, const drv_optset *sets, FILE *f) {
  fprintf(f, "usage: sbpc %s %s\n", c->name, c->synopsis);
  if (c->about) fprintf(f, "%s\n", c->about);
  for (const drv_optset *s = sets; s->opt; s++) {
    if (s == sets || s->title) fprintf(f, "\n%s:\n", s->title ? s->title : "options");
    for (const drv_option *o = s->opt; o->name; o++) print_option(o, f);
  }
  if (c->more) c->more(f);
  if (c->tail) fprintf(f, "\n%s\n", c->tail);
}
