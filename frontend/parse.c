/* parse.c — fe_parse, fe_load, fe_program_free: the front end's entry points.
 *
 * fe_parse runs the parser (syntax.c) into a scratch AST arena; only if the
 * syntax is clean does it lower the sections (a skipped item would otherwise
 * show up again as "undefined name" errors). At most one section of each kind
 * is allowed. The model's graph arena also holds the cluster and train
 * strings; a file without a model keeps them in the program's own arena
 * (ir_program.own), which fe_program_free releases (see frontend.h). */
#include "frontend/lower.h"
#include <stdlib.h>
#include <string.h>

void fe_program_free(ir_program *p) {
  if (!p) return;
  ir_graph_free(p->g);
  arena_free(p->own);
  memset(p, 0, sizeof *p);
}

/* At most one section of each kind. */
static bool check_sections(diag *d, const fe_section *s) {
  static const char *kinds[] = {"model", "cluster", "train"};
  const fe_section *first[3] = {0};
  bool ok = true;
  for (; s; s = s->next) {
    if (first[s->kind]) {
      diag_error(d, s->loc, "a file has at most one %s section (the first is at line %d)", kinds[s->kind],
                 first[s->kind]->loc.line);
      ok = false;
    } else {
      first[s->kind] = s;
    }
  }
  return ok;
}

static void lower_model(diag *d, const fe_section *s, ir_program *out) {
  fe_ctx c;
  memset(&c, 0, sizeof c);
  c.d = d;
  c.g = out->g = ir_graph_new(s->name);
  fe_lower_model(&c, s);
  fe_env_free(&c.global);
  fe_env_free(&c.local);
  fe_env_free(&c.first);
  fe_env_free(&c.full);
}

static void lower_sections(diag *d, const fe_section *secs, ir_program *out) {
  for (const fe_section *s = secs; s; s = s->next)
    if (s->kind == FE_S_MODEL) lower_model(d, s, out);
  arena *a = out->g ? out->g->arena : arena_new();
  for (const fe_section *s = secs; s; s = s->next) {
    if (s->kind == FE_S_CLUSTER) out->cluster = fe_lower_cluster(d, s, a);
    if (s->kind == FE_S_TRAIN) fe_lower_train(d, s, a, &out->train);
  }
  if (!out->g) out->own = a;
}

bool fe_parse(const char *file, const char *src, size_t len, ir_program *out, diag *d) {
  memset(out, 0, sizeof *out);
  if (!d->file) {
    FILE *o = d->out;
    diag_init(d, file, src, len);
    if (o) d->out = o;
  }
  int errs = d->errors;
  out->train.precision = IR_BF16;
  out->train.optimizer = IR_OPT_ADAMW;
  if (len > FE_MAX_FILE) {
    diag_error(d, (srcloc){0, 0}, "file is larger than %u bytes", FE_MAX_FILE);
    return false;
  }
  fe_parser P;
  memset(&P, 0, sizeof P);
  P.a = arena_new();
  P.d = d;
  const fe_section *secs = fe_syntax(&P, src, len);
  if (d->errors == errs && check_sections(d, secs)) lower_sections(d, secs, out);
  arena_free(P.a);
  if (d->errors == errs) return true;
  fe_program_free(out);
  return false;
}

bool fe_load(const char *path, ir_program *out) {
  memset(out, 0, sizeof *out);
  size_t len;
  char *src = read_file(path, FE_MAX_FILE, &len);
  if (!src) return false;
  diag d;
  diag_init(&d, path, src, len);
  bool ok = fe_parse(path, src, len, out, &d);
  free(src);
  return ok;
}
