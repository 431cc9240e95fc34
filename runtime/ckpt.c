/* ckpt.c — universal checkpoints and Hugging Face weights.
 *
 * A checkpoint is a directory: model.safetensors (every parameter under its
 * logical name, consolidated whatever the layout), optimizer.safetensors
 * (NAME.exp_avg and NAME.exp_avg_sq), state.json ({"version": 1, "step",
 * "data_position", "seed", "model"}: the architecture's hash) and the marker
 * file sbpc-checkpoint. Saving gathers each tensor on rank 0 from the first
 * rank that holds it (the first pipeline stage holding it, data-parallel
 * index 0), writes the files as new files into DIR.partial, fsyncs them and
 * the folder, then exchanges it with DIR in one rename (RENAME_EXCHANGE; two
 * renames through DIR.previous where the file system cannot): an interrupted
 * save leaves a whole checkpoint at DIR, or at DIR.previous, from which
 * --resume DIR then resumes with a note. sbpc writes only into a new or
 * empty folder or one of its own checkpoints (the marker, and nothing but
 * its four files), never follows a link there, and deletes only those four
 * names from a marked folder (docs/security.md). Loading works for any
 * layout because every rank reads the consolidated files and takes the
 * tensors it holds; state.json's numbers are range-checked, a checkpoint of
 * another architecture is refused, and every tensor is checked by name and
 * shape, a missing, extra or mis-shaped one being an error naming it, before
 * any step runs. --weights reads Hugging Face safetensors the same way (an
 * optional "transformer." prefix is accepted; the attention-mask buffers
 * "*.attn.bias"/"*.attn.masked_bias" of old GPT-2 files are ignored). */
#define _GNU_SOURCE /* renameat2 */
#include "runtime/rt_internal.h"
#include "util/os.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* ---- the checkpoint folder ------------------------------------------------ */
/* The files sbpc writes in a checkpoint folder, the marker last: the only
 * names it ever removes, and only from a folder that holds the marker. */
#define MARKER "sbpc-checkpoint"
static const char *const own_files[] = {"model.safetensors", "optimizer.safetensors", "state.json", MARKER};
enum { NOWN = sizeof own_files / sizeof *own_files };

/* checkpoint paths: a folder name of at most CK_MAXDIR bytes (dir_ok), with
 * a suffix or a file name, fits CK_PATH */
enum { CK_MAXDIR = 4000, CK_PATH = 4200 };

static bool dir_ok(const char *dir) {
  if (strlen(dir) <= CK_MAXDIR) return true;
  sbpc_error("a checkpoint folder name of %zu bytes is too long (at most %d)", strlen(dir), CK_MAXDIR);
  return false;
}

/* buf[CK_PATH] = a + b; the callers keep a within CK_MAXDIR (dir_ok) */
static char *cat(char *buf, const char *a, const char *b) {
  if (snprintf(buf, CK_PATH, "%s%s", a, b) >= CK_PATH) abort();
  return buf;
}

static bool is_own(const char *name) {
  for (int i = 0; i < NOWN; i++)
    if (!strcmp(name, own_files[i])) return true;
  return false;
}

/* may sbpc write a checkpoint at path (or clear it)? Yes when nothing is
 * there, or a real folder (not a link) that is empty or holds sbpc's marker
 * and only sbpc's files; else an error naming what is in the way. */
static bool target_ok(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT;
  const char *why = "sbpc writes a checkpoint only into a new folder or one of its own checkpoints";
  int fd = S_ISDIR(st.st_mode) ? open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    diag_file_error(path, "is %s; %s", S_ISLNK(st.st_mode) ? "a symbolic link" : "not a folder", why);
    return false;
  }
  bool marked = false, ok = true, any = false;
  struct dirent *de;
  while (ok && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    any = true;
    marked |= !strcmp(de->d_name, MARKER);
    if (!(ok = is_own(de->d_name))) {
      char nm[96];
      diag_file_error(path, "holds '%s', which sbpc did not write; %s", diag_printable(de->d_name, nm, sizeof nm), why);
    }
  }
  closedir(d);
  if (ok && any && !marked) diag_file_error(path, "is not an sbpc checkpoint (no '%s' file); %s", MARKER, why);
  return ok && (marked || !any);
}

/* remove a checkpoint folder sbpc wrote: its own files (only when its marker
 * is there), then the folder if that left it empty; links are never
 * followed. True when nothing is left at path. */
static bool remove_own(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  struct stat st;
  if (fstatat(fd, MARKER, &st, AT_SYMLINK_NOFOLLOW) == 0)
    for (int i = 0; i < NOWN; i++) unlinkat(fd, own_files[i], 0);
  close(fd);
  return rmdir(path) == 0 || errno == ENOENT;
}

static bool sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool ok = fd >= 0 && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* a new file dir/name holding txt, fsynced */
static bool write_new(const char *dir, const char *name, const char *txt) {
  char path[CK_PATH], sub[CK_PATH];
  FILE *f = NULL;
  int fd = os_create(cat(path, dir, cat(sub, "/", name)), 0644);
  if (fd >= 0 && !(f = fdopen(fd, "w"))) close(fd);
  if (!f) return false;
  bool ok = fputs(txt, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
  return fclose(f) == 0 && ok;
}

static bool write_state(const char *dir, int64_t step, int64_t pos, uint64_t seed, uint64_t model) {
  char txt[256];
  snprintf(txt, sizeof txt, "{\"version\": 1, \"step\": %lld, \"data_position\": %lld, \"seed\": %llu, \"model\": \"%016llx\"}\n",
           (long long)step, (long long)pos, (unsigned long long)seed, (unsigned long long)model);
  return write_new(dir, "state.json", txt);
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
  char a[CK_PATH], b[CK_PATH];
  cat(a, dir, "/model.safetensors"), cat(b, dir, "/optimizer.safetensors");
  bool ok = write_new(dir, MARKER, "sbpc checkpoint (written by sbpc run --save; see state.json)\n") &&
            rt_st_write(a, pt, n) && rt_st_write(b, ot, no) &&
            write_state(dir, step, pos, seed, rt_exec_model_hash(e)) && sync_dir(dir);
  free(pt);
  free(ot);
  return ok;
}

/* tests: SBPC_TEST_FAULT=swap swaps by two renames and dies between them */
static bool swap_fault(void) {
  const char *f = getenv("SBPC_TEST_FAULT");
  return f && !strcmp(f, "swap");
}

/* put the finished part at dir. An existing dir is exchanged with part in
 * one atomic rename (RENAME_EXCHANGE), then removed; where the file system
 * cannot exchange, dir is renamed to dir.previous first, so that a crash
 * between the two renames leaves the old checkpoint whole there (--resume
 * finds it). An old dir.previous is removed only once dir is whole again. */
/* the old checkpoint at old is superseded: remove it, or say why not */
static bool drop_old(const char *old) {
  if (!remove_own(old)) sbpc_note("could not remove the old checkpoint '%s': %s", old, strerror(errno));
  return true;
}

static bool swap_in(const char *dir, const char *part) {
  char prev[CK_PATH];
  cat(prev, dir, ".previous");
  struct stat st;
  if (lstat(dir, &st) != 0) return rename(part, dir) == 0 && drop_old(prev);
  if (!swap_fault() && renameat2(AT_FDCWD, part, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) return drop_old(part);
  if (!swap_fault() && errno != EINVAL && errno != ENOSYS) return false;
  if (!remove_own(prev) || rename(dir, prev) != 0) return false;
  if (swap_fault()) _exit(9);
  return rename(part, dir) == 0 && drop_old(prev);
}

/* dir without trailing slashes ("ck/" would put ck/.partial inside ck) */
static const char *trimmed(const char *dir, char *buf) {
  if (!dir_ok(dir)) return NULL;
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  memcpy(buf, dir, n);
  buf[n] = 0;
  return buf;
}

bool rt_ckpt_save_ok(const char *dir) {
  char d[CK_PATH], p[CK_PATH], q[CK_PATH];
  return (dir = trimmed(dir, d)) && target_ok(dir) && target_ok(cat(p, dir, ".partial")) &&
         target_ok(cat(q, dir, ".previous"));
}

static bool save_files(rt_exec *e, const char *dir, const pstate *ps, int n, float **data, int64_t pos, uint64_t seed) {
  char d[CK_PATH], part[CK_PATH];
  if (!rt_ckpt_save_ok(dir)) return false;
  dir = trimmed(dir, d);
  cat(part, dir, ".partial");
  if (!remove_own(part)) {
    diag_file_error(part, "cannot remove the unfinished checkpoint: %s", strerror(errno));
    return false;
  }
  bool ok = mkdir(part, 0755) == 0 && write_files(e, part, ps, n, data, rt_exec_step(e), pos, seed) && swap_in(dir, part);
  if (!ok) sbpc_error("cannot write the checkpoint '%s': %s", dir, strerror(errno));
  return ok;
}

bool rt_ckpt_save(rt_exec *e, rt_comm *c, const char *dir, int64_t pos, uint64_t seed) {
  const ir_graph *g = rt_exec_graph(e);
  pstate *ps = xcalloc((size_t)g->nt, sizeof *ps);
  int n = list_params(g, ps);
  float **data = xcalloc(3 * (size_t)n + 1, sizeof *data);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < 3; j++)
      if (ps[i].t[j] != IR_NONE) data[3 * i + j] = c ? gather(e, c, ps[i].t[0], ps[i].t[j]) : rt_exec_param(e, ps[i].t[j]);
  bool ok = rt_comm_rank(c) != 0 || save_files(e, dir, ps, n, data, pos, seed);
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
    char nm[96];
    diag_file_error(file, "tensor '%s' has shape [%s] but the model needs [%s]", diag_printable(s->name, nm, sizeof nm),
                    b, a);
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
      diag_file_error(file, "tensor '%s' is missing", g->t[refs[i]].name);
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
      char nm[96];
      diag_file_error(file, "tensor '%s' is not a parameter of the model",
                      diag_printable(rt_st_at(s, j)->name, nm, sizeof nm));
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

/* a whole number in [0, 2^53] (exact in a double) */
static bool count_ok(const cJSON *x) {
  return cJSON_IsNumber(x) && x->valuedouble >= 0 && x->valuedouble <= 9007199254740992.0 &&
         x->valuedouble == (double)(int64_t)x->valuedouble;
}

bool rt_ckpt_read_state(const char *path, int64_t *step, int64_t *pos, uint64_t *model) {
  size_t len;
  char *txt = read_file(path, 1 << 20, &len);
  if (!txt) return false;
  cJSON *j = cJSON_ParseWithLength(txt, len);
  cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step"), *p = cJSON_GetObjectItemCaseSensitive(j, "data_position");
  cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version"), *m = cJSON_GetObjectItemCaseSensitive(j, "model");
  const char *hex = cJSON_IsString(m) ? m->valuestring : NULL;
  char *end = NULL;
  unsigned long long mh = hex ? strtoull(hex, &end, 16) : 0;
  bool model_ok = !m || (hex && strlen(hex) == 16 && strspn(hex, "0123456789abcdef") == 16 && *end == 0);
  bool ok = cJSON_IsObject(j) && cJSON_IsNumber(v) && v->valuedouble == 1 && count_ok(s) && count_ok(p) && model_ok;
  if (ok) *step = (int64_t)s->valuedouble, *pos = (int64_t)p->valuedouble, *model = mh;
  else
    diag_file_error(path,
                    "not a version-1 checkpoint state: \"step\" and \"data_position\" must be whole "
                    "numbers from 0 to 2^53%s",
                    model_ok ? "" : ", \"model\" 16 hex digits");
  cJSON_Delete(j);
  free(txt);
  return ok;
}

/* the folder to resume from, in prev[CK_PATH]: dir without trailing
 * slashes, or dir.previous (with a note) when a save was killed between its
 * two renames; NULL after an error naming both */
static const char *resume_dir(const char *dir, char *prev) {
  struct stat st;
  if (!(dir = trimmed(dir, prev))) return NULL;
  if (stat(dir, &st) == 0 || errno != ENOENT) return dir;
  char d[CK_PATH];
  dir = strcpy(d, dir);
  if (stat(cat(prev, dir, ".previous/state.json"), &st) != 0) {
    diag_file_error(dir, "no such checkpoint (nor a '%s.previous' left by an interrupted save)", dir);
    return NULL;
  }
  cat(prev, dir, ".previous");
  sbpc_note("'%s' is missing but '%s' is whole (a save was interrupted); resuming from it", dir, prev);
  return prev;
}

/* state.json of dir: step, position, and the model it was saved from */
static bool read_state(const rt_exec *e, const char *dir, int64_t *step, int64_t *pos) {
  char path[CK_PATH];
  cat(path, dir, "/state.json");
  uint64_t saved = 0, mine = rt_exec_model_hash(e);
  if (!rt_ckpt_read_state(path, step, pos, &saved)) return false;
  if (saved && saved != mine) {
    diag_file_error(path,
                    "the checkpoint was saved from another model (architecture %016llx, this model's "
                    "%016llx); to start from its weights anyway, use --weights %s/model.safetensors",
                    (unsigned long long)saved, (unsigned long long)mine, dir);
    return false;
  }
  return true;
}

bool rt_ckpt_load(rt_exec *e, const char *dir, int64_t *pos) {
  const ir_graph *g = rt_exec_graph(e);
  pstate *ps = xcalloc((size_t)g->nt, sizeof *ps);
  ir_ref *r = xcalloc(2 * (size_t)g->nt, sizeof *r);
  int n = list_params(g, ps), no = 0;
  int64_t step = 0;
  char path[CK_PATH], prev[CK_PATH];
  bool ok = (dir = resume_dir(dir, prev)) && read_state(e, dir, &step, pos);
  for (int i = 0; i < n; i++) r[i] = ps[i].t[0];
  ok = ok && load_file(e, cat(path, dir, "/model.safetensors"), r, n, false);
  for (int i = 0; i < n; i++)
    for (int j = 1; j < 3; j++)
      if (ps[i].t[j] != IR_NONE) r[no++] = ps[i].t[j];
  ok = ok && load_file(e, cat(path, dir, "/optimizer.safetensors"), r, no, false);
  if (ok) rt_exec_set_step(e, step);
  free(ps);
  free(r);
  return ok;
}
