/* ckpt.c — universal checkpoints and Hugging Face weights.
 *
 * A checkpoint is a directory: model.safetensors (every parameter under its
 * logical name, consolidated whatever the layout), optimizer.safetensors
 * (NAME.exp_avg and NAME.exp_avg_sq) and state.json ({"version": 1, "step",
 * "data_position", "seed"}). Saving gathers each tensor on rank 0 from the
 * first rank that holds it (the first pipeline stage holding it, data-parallel
 * index 0), writes the files into DIR.partial (each via temp file + fsync +
 * rename), then swaps the directory in: an interrupted save leaves the
 * previous checkpoint whole (as DIR, or as DIR.previous during the swap).
 * Loading works for any layout because every rank reads the consolidated
 * files and takes the tensors it holds; every tensor is checked by name and
 * shape, and a missing, extra or mis-shaped one is an error naming it, before
 * any step runs. --weights reads Hugging Face safetensors the same way (an
 * optional "transformer." prefix is accepted; the attention-mask buffers
 * "*.attn.bias"/"*.attn.masked_bias" of old GPT-2 files are ignored). */
#include "runtime/rt_internal.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  ir_ref t[3]; /* param, exp_avg, exp_avg_sq (IR_NONE when no optimizer) */
} pstate;

/* the params in table order with their optimizer state */
static int list_params(const ir_graph *g, pstate *ps) {
  int n = 0;
  for (int t = 0; t < g->nt; t++) {
    if (g->t[t].kind != IR_T_PARAM) continue;
    ps[n].t[0] = t, ps[n].t[1] = ps[n].t[2] = IR_NONE;
    for (int k = 0; k < g->nop; k++)
      if (g->op[k].kind == IR_OP_ADAMW && g->op[k].in[0] == t) ps[n].t[1] = g->op[k].in[2], ps[n].t[2] = g->op[k].in[3];
    n++;
  }
  return n;
}

static rt_st_tensor st_of(const rt_exec *e, ir_ref t, const float *data) {
  rt_st_tensor s;
  memset(&s, 0, sizeof s);
  s.name = rt_exec_graph(e)->t[t].name;
  s.rank = rt_exec_logical_shape(e, t, s.shape);
  s.data = data;
  return s;
}

static int lowest(uint64_t m) {
  for (int s = 0; s < 64; s++)
    if (m >> s & 1) return s;
  return 0;
}

/* rank 0 gets a copy of tensor t (owned by the caller); other ranks send */
static float *gather(rt_exec *e, rt_comm *c, ir_ref p, ir_ref t) {
  int64_t shape[IR_MAXRANK], n = 1;
  int rank = rt_exec_logical_shape(e, t, shape);
  for (int i = 0; i < rank; i++) n *= shape[i];
  int src = rt_exec_rank_of(e, lowest(rt_exec_holders(e, p)), 0), me = rt_comm_rank(c);
  float *mine = rt_exec_holds(e, t) ? rt_exec_logical(e, t) : NULL, *buf = NULL;
  if (me == 0 && src == 0) return mine;
  if (me == 0) {
    buf = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    rt_comm_recv(c, buf, n, src, t % 30000);
  } else if (me == src) {
    rt_comm_send(c, mine, n, 0, t % 30000);
  }
  free(mine);
  return buf;
}

static bool write_state(const char *dir, int64_t step, int64_t pos, uint64_t seed) {
  char path[8192], tmp[8300];
  snprintf(path, sizeof path, "%s/state.json", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return false;
  fprintf(f, "{\"version\": 1, \"step\": %lld, \"data_position\": %lld, \"seed\": %llu}\n", (long long)step,
          (long long)pos, (unsigned long long)seed);
  bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  return ok && rename(tmp, path) == 0;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  char p[8500];
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(dir);
}

static bool write_files(const rt_exec *e, const char *dir, const pstate *ps, int n, float **data, int64_t step,
                        int64_t pos, uint64_t seed) {
  rt_st_tensor *pt = xcalloc((size_t)n + 1, sizeof *pt), *ot = xcalloc(2 * (size_t)n + 1, sizeof *ot);
  int no = 0;
  for (int i = 0; i < n; i++) {
    pt[i] = st_of(e, ps[i].t[0], data[3 * i]);
    for (int j = 1; j < 3; j++)
      if (ps[i].t[j] != IR_NONE) ot[no++] = st_of(e, ps[i].t[j], data[3 * i + j]);
  }
  char a[8192], b[8192];
  snprintf(a, sizeof a, "%s/model.safetensors", dir);
  snprintf(b, sizeof b, "%s/optimizer.safetensors", dir);
  bool ok = rt_st_write(a, pt, n) && rt_st_write(b, ot, no) && write_state(dir, step, pos, seed);
  free(pt);
  free(ot);
  return ok;
}

static bool swap_in(const char *dir, const char *part) {
  char prev[8192];
  snprintf(prev, sizeof prev, "%s.previous", dir);
  struct stat st;
  remove_dir(prev);
  if (stat(dir, &st) == 0 && rename(dir, prev) != 0) return false;
  if (rename(part, dir) != 0) return false;
  remove_dir(prev);
  return true;
}

bool rt_ckpt_save(rt_exec *e, rt_comm *c, const char *dir, int64_t pos, uint64_t seed) {
  const ir_graph *g = rt_exec_graph(e);
  pstate *ps = xcalloc((size_t)g->nt, sizeof *ps);
  int n = list_params(g, ps);
  float **data = xcalloc(3 * (size_t)n + 1, sizeof *data);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < 3; j++)
      if (ps[i].t[j] != IR_NONE) data[3 * i + j] = c ? gather(e, c, ps[i].t[0], ps[i].t[j]) : rt_exec_param(e, ps[i].t[j]);
  bool ok = true;
  if (rt_comm_rank(c) == 0) {
    char part[4096];
    snprintf(part, sizeof part, "%s.partial", dir);
    remove_dir(part);
    ok = mkdir(part, 0755) == 0 && write_files(e, part, ps, n, data, rt_exec_step(e), pos, seed) && swap_in(dir, part);
    if (!ok) sbpc_error("cannot write the checkpoint '%s'", dir);
  }
  if (c)
    for (int i = 0; i < 3 * n; i++) free(data[i]);
  free(data);
  free(ps);
  return ok;
}

/* ---- loading -------------------------------------------------------------- */
static bool shape_ok(const rt_exec *e, ir_ref t, const rt_st_tensor *s, const char *file) {
  rt_st_tensor want = st_of(e, t, NULL);
  bool ok = want.rank == s->rank;
  for (int i = 0; ok && i < s->rank; i++) ok = want.shape[i] == s->shape[i];
  if (!ok) {
    char a[128] = "", b[128] = "";
    for (int i = 0; i < want.rank; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", i ? ", " : "", (long long)want.shape[i]);
    for (int i = 0; i < s->rank; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? ", " : "", (long long)s->shape[i]);
    fprintf(stderr, "%s: error: tensor '%s' has shape [%s] but the model needs [%s]\n", file, s->name, b, a);
  }
  return ok;
}

static bool ignorable(const char *name) {
  size_t n = strlen(name);
  return (n > 9 && !strcmp(name + n - 9, ".attn.bias")) || strstr(name, ".attn.masked_bias") != NULL;
}

/* load every tensor in refs[0..n) held here from file s; refuse missing,
 * mis-shaped and (unless ignorable) extra tensors */
static bool load_set(rt_exec *e, const rt_st *s, const char *file, const ir_ref *refs, int n, bool hf) {
  const ir_graph *g = rt_exec_graph(e);
  bool ok = true;
  for (int i = 0; i < n && ok; i++) {
    const rt_st_tensor *x = rt_st_find(s, g->t[refs[i]].name);
    if (!x) {
      fprintf(stderr, "%s: error: tensor '%s' is missing\n", file, g->t[refs[i]].name);
      ok = false;
    } else if ((ok = shape_ok(e, refs[i], x, file)) && rt_exec_holds(e, refs[i])) {
      rt_exec_set_logical(e, refs[i], x->data);
    }
  }
  for (int j = 0; j < rt_st_count(s) && ok; j++) {
    const char *nm = rt_st_at(s, j)->name;
    if (!strncmp(nm, "transformer.", 12)) nm += 12;
    bool known = hf && ignorable(nm);
    for (int i = 0; i < n && !known; i++) known = !strcmp(g->t[refs[i]].name, nm);
    if (!known) {
      fprintf(stderr, "%s: error: tensor '%s' is not a parameter of the model\n", file, rt_st_at(s, j)->name);
      ok = false;
    }
  }
  return ok;
}

static bool load_file(rt_exec *e, const char *path, const ir_ref *refs, int n, bool hf) {
  rt_st *s = rt_st_read(path);
  if (!s) return false;
  bool ok = load_set(e, s, path, refs, n, hf);
  rt_st_free(s);
  return ok;
}

bool rt_load_weights(rt_exec *e, const char *path) {
  const ir_graph *g = rt_exec_graph(e);
  pstate *ps = xcalloc((size_t)g->nt, sizeof *ps);
  ir_ref *r = xcalloc((size_t)g->nt, sizeof *r);
  int n = list_params(g, ps);
  for (int i = 0; i < n; i++) r[i] = ps[i].t[0];
  bool ok = load_file(e, path, r, n, true);
  free(ps);
  free(r);
  return ok;
}

static bool read_state(const char *dir, int64_t *step, int64_t *pos) {
  char path[8192];
  snprintf(path, sizeof path, "%s/state.json", dir);
  size_t len;
  char *txt = read_file(path, 1 << 20, &len);
  if (!txt) return false;
  cJSON *j = cJSON_ParseWithLength(txt, len);
  cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step"), *p = cJSON_GetObjectItemCaseSensitive(j, "data_position");
  cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
  bool ok = cJSON_IsNumber(s) && cJSON_IsNumber(p) && cJSON_IsNumber(v) && v->valueint == 1 && s->valuedouble >= 0 &&
            p->valuedouble >= 0;
  if (ok) *step = (int64_t)s->valuedouble, *pos = (int64_t)p->valuedouble;
  else fprintf(stderr, "%s: error: not a version-1 checkpoint state (step, data_position)\n", path);
  cJSON_Delete(j);
  free(txt);
  return ok;
}

bool rt_ckpt_load(rt_exec *e, const char *dir, int64_t *pos) {
  const ir_graph *g = rt_exec_graph(e);
  pstate *ps = xcalloc((size_t)g->nt, sizeof *ps);
  ir_ref *r = xcalloc(2 * (size_t)g->nt, sizeof *r);
  int n = list_params(g, ps), no = 0;
  int64_t step = 0;
  char path[8192];
  bool ok = read_state(dir, &step, pos);
  for (int i = 0; i < n; i++) r[i] = ps[i].t[0];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  ok = ok && load_file(e, path, r, n, false);
  for (int i = 0; i < n; i++)
    for (int j = 1; j < 3; j++)
      if (ps[i].t[j] != IR_NONE) r[no++] = ps[i].t[j];
  snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
  ok = ok && load_file(e, path, r, no, false);
  if (ok) rt_exec_set_step(e, step);
  free(ps);
  free(r);
  return ok;
}
