/* hf_import.c — Hugging Face config.json -> sbpc model text (see hf.h).
 *
 * Approach: cJSON parses the file; small typed getters (get_int, get_num,
 * get_bool, get_str) fetch each key with its default and range, and report
 * a missing key, a wrong type ("must be an integer, not a string"), a
 * fraction, or an absurd value by naming the key. One reader per family
 * (read_gpt2, read_llama, read_bert) fills an fe_hf_config; the checks that
 * relate keys (heads divide the hidden size, kv heads divide heads) follow.
 * Keys that are read but whose effect is not modelled (GPT-2's
 * scale_attn_weights = false and scale_attn_by_inverse_layer_idx, LLaMA's
 * rope_scaling, Mistral's sliding_window) get a note on stderr when they
 * differ from the default, so nothing changes the model silently.
 * The writers (write_gpt2, write_llama, write_bert) print the model in the
 * style of examples/gpt2.sbp: dims first, then params in checkpoint order,
 * then the computation. fe_hf_param_count counts the same params with
 * overflow-checked arithmetic, so tests can compare it with what the front
 * end finds in the written text. */
#include "frontend/hf.h"
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading --------------------------------------------------------------- */

typedef struct {
  const cJSON *root;
  diag *d;
} reader;

static bool fail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(reader *r, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  diag_error(r->d, (srcloc){0, 0}, "%s", msg);
  return false;
}

/* what: how a JSON value reads in a message ("a string", "null", ...). */
static const char *what(const cJSON *v) {
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "a number";
}

/* fmt_num: the shortest text that reads back as v ("1e-05", "10000", "0.1"). */
static const char *fmt_num(double v, char *buf, size_t n) {
  if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, n, "%.0f", v);
    return buf;
  }
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, n, "%.*g", p, v);
    if (strtod(buf, NULL) == v) break;
  }
  char *e = strchr(buf, 'e'); /* "1e-05" -> "1e-5", "1e+30" -> "1e30" */
  if (e) {
    char *d = e + 1, *s = e + 1;
    if (*s == '-') d++, s++;
    else if (*s == '+') s++;
    while (*s == '0' && s[1]) s++;
    memmove(d, s, strlen(s) + 1);
  }
  return buf;
}

/* get: the value of key, or NULL when absent or (if null_is_absent) null. */
static const cJSON *get(reader *r, const char *key, bool null_is_absent) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
  if (v && null_is_absent && cJSON_IsNull(v)) return NULL;
  return v;
}

/* get_int: key's integer value in [lo, hi] into *out. Absent (or null) takes
 * *def when def is not NULL, else it is a "missing key" error. */
static bool get_int(reader *r, const char *key, int64_t lo, int64_t hi, const int64_t *def,
                    int64_t *out) {
  const cJSON *v = get(r, key, def != NULL);
  char b[40];
  if (!v) {
    if (!def) return fail(r, "missing key \"%s\"", key);
    *out = *def;
    return true;
  }
  if (!cJSON_IsNumber(v)) return fail(r, "key \"%s\" must be an integer, not %s", key, what(v));
  double x = v->valuedouble;
  if (!isfinite(x) || x != floor(x))
    return fail(r, "key \"%s\" must be an integer, not %s", key, fmt_num(x, b, sizeof b));
  if (x < (double)lo || x > (double)hi)
    return fail(r, "key \"%s\" is %s, out of range [%" PRId64 ", %" PRId64 "]", key,
                fmt_num(x, b, sizeof b), lo, hi);
  *out = (int64_t)x;
  return true;
}

/* get_num: key's number in (lo, hi] (or [lo, hi] when lo_closed) into *out;
 * absent or null takes def. */
static bool get_num(reader *r, const char *key, double lo, bool lo_closed, double hi, double def,
                    double *out) {
  const cJSON *v = get(r, key, true);
  char b1[40], b2[40], b3[40];
  if (!v) {
    *out = def;
    return true;
  }
  if (!cJSON_IsNumber(v)) return fail(r, "key \"%s\" must be a number, not %s", key, what(v));
  double x = v->valuedouble;
  if (!isfinite(x) || x > hi || x < lo || (!lo_closed && x == lo))
    return fail(r, "key \"%s\" is %s, out of range %c%s, %s]", key, fmt_num(x, b1, sizeof b1),
                lo_closed ? '[' : '(', fmt_num(lo, b2, sizeof b2), fmt_num(hi, b3, sizeof b3));
  *out = x;
  return true;
}

/* get_bool: key's true/false into *out; absent or null takes def. */
static bool get_bool(reader *r, const char *key, bool def, bool *out) {
  const cJSON *v = get(r, key, true);
  if (!v) {
    *out = def;
    return true;
  }
  if (!cJSON_IsBool(v)) return fail(r, "key \"%s\" must be true or false, not %s", key, what(v));
  *out = cJSON_IsTrue(v);
  return true;
}

/* get_str: key's string (owned by the JSON tree) into *out; absent or null
 * takes def (which may be NULL). */
static bool get_str(reader *r, const char *key, const char *def, const char **out) {
  const cJSON *v = get(r, key, true);
  if (!v) {
    *out = def;
    return true;
  }
  if (!cJSON_IsString(v)) return fail(r, "key \"%s\" must be a string, not %s", key, what(v));
  *out = v->valuestring;
  return true;
}

/* shown: s made safe to print in a message: at most 40 bytes, printable. */
static const char *shown(const char *s, char *buf, size_t n) {
  size_t i = 0;
  for (; s[i] && i + 4 < n && i < 40; i++) buf[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
  if (s[i]) buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
  buf[i] = 0;
  return buf;
}

/* get_act: key's activation name as a gelu form (tanh or erf). */
static bool get_act(reader *r, const char *key, const char *def, bool *gelu_tanh) {
  const char *s = def;
  char b[64];
  if (!get_str(r, key, def, &s)) return false;
  static const char *tanh_forms[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"};
  for (size_t i = 0; i < sizeof tanh_forms / sizeof *tanh_forms; i++)
    if (!strcmp(s, tanh_forms[i])) {
      *gelu_tanh = true;
      return true;
    }
  if (!strcmp(s, "gelu")) {
    *gelu_tanh = false;
    return true;
  }
  return fail(r, "key \"%s\": unsupported activation \"%s\" (supported: gelu, gelu_new, "
              "gelu_pytorch_tanh, gelu_fast)", key, shown(s, b, sizeof b));
}

/* refuse: an error if key is present and true (a feature not modelled). */
static bool refuse(reader *r, const char *key, const char *why) {
  bool on;
  if (!get_bool(r, key, false, &on)) return false;
  return on ? fail(r, "key \"%s\": %s is not supported", key, why) : true;
}

/* unmodelled: a note that key's value (not its default) is imported without
 * its effect, when `differs`; the model still trains, but not as the
 * original computes */
static bool unmodelled(reader *r, bool differs, const char *key, const char *effect) {
  if (differs) diag_note(r->d, (srcloc){0, 0}, "key \"%s\" is not modelled: %s", key, effect);
  return true;
}

#define SIZE(key, out) get_int(r, key, 1, FE_HF_MAX_SIZE, NULL, out)
#define LAYERS(key, out) get_int(r, key, 1, FE_HF_MAX_LAYERS, NULL, out)
#define HEADS(key, out) get_int(r, key, 1, FE_HF_MAX_HEADS, NULL, out)

/* read_gpt2 / read_llama / read_bert: the family's keys into *c, with the
 * defaults transformers uses for the optional ones. Every key is checked, so
 * one run reports every bad key; false after any error. */
static bool read_gpt2(reader *r, fe_hf_config *c) {
  bool ok = SIZE("vocab_size", &c->vocab);
  ok &= SIZE("n_positions", &c->positions);
  ok &= SIZE("n_embd", &c->hidden);
  ok &= LAYERS("n_layer", &c->layers);
  ok &= HEADS("n_head", &c->heads);
  int64_t four_h = 4 * c->hidden;
  ok &= get_int(r, "n_inner", 1, FE_HF_MAX_SIZE, &four_h, &c->ffn);
  ok &= get_act(r, "activation_function", "gelu_new", &c->gelu_tanh);
  ok &= get_num(r, "layer_norm_epsilon", 0, false, 1, 1e-5, &c->eps);
  ok &= get_num(r, "resid_pdrop", 0, true, 0.99, 0.1, &c->dropout);
  ok &= get_num(r, "embd_pdrop", 0, true, 0.99, 0.1, &c->embd_dropout);
  ok &= get_bool(r, "tie_word_embeddings", true, &c->tie);
  ok &= refuse(r, "add_cross_attention", "cross-attention");
  bool scale = true, inv = false;
  ok &= get_bool(r, "scale_attn_weights", true, &scale) &&
        unmodelled(r, !scale, "scale_attn_weights", "false, but the scores are scaled by 1/sqrt(head size)");
  ok &= get_bool(r, "scale_attn_by_inverse_layer_idx", false, &inv) &&
        unmodelled(r, inv, "scale_attn_by_inverse_layer_idx", "the scores are not divided by the layer number");
  c->kv_heads = c->heads;
  return ok;
}

static bool read_llama(reader *r, fe_hf_config *c) {
  const char *act = "silu";
  char b[64];
  int64_t none = 0;
  bool ok = SIZE("vocab_size", &c->vocab);
  ok &= SIZE("hidden_size", &c->hidden);
  ok &= SIZE("intermediate_size", &c->ffn);
  ok &= LAYERS("num_hidden_layers", &c->layers);
  ok &= HEADS("num_attention_heads", &c->heads);
  ok &= SIZE("max_position_embeddings", &c->positions);
  ok &= get_int(r, "num_key_value_heads", 1, FE_HF_MAX_HEADS, &c->heads, &c->kv_heads);
  ok &= get_num(r, "rms_norm_eps", 0, false, 1, 1e-6, &c->eps);
  ok &= get_num(r, "rope_theta", 0, false, 1e12, 10000, &c->rope_theta);
  ok &= get_bool(r, "tie_word_embeddings", false, &c->tie);
  ok &= get_bool(r, "attention_bias", false, &c->attn_bias);
  ok &= get_bool(r, "mlp_bias", false, &c->mlp_bias);
  ok &= get_int(r, "sliding_window", 1, INT64_C(1) << 40, &none, &c->sliding_window);
  c->explicit_head_dim = get(r, "head_dim", true) != NULL;
  if (c->explicit_head_dim) ok &= get_int(r, "head_dim", 1, FE_HF_MAX_SIZE, NULL, &c->head_dim);
  c->rope_scaled = get(r, "rope_scaling", true) != NULL;
  unmodelled(r, c->rope_scaled, "rope_scaling", "plain rotary embedding");
  unmodelled(r, c->sliding_window != 0, "sliding_window", "full causal attention");
  if (!get_str(r, "hidden_act", "silu", &act))
    ok = false;
  else if (strcmp(act, "silu"))
    ok = fail(r, "key \"hidden_act\": unsupported activation \"%s\" (LLaMA needs silu)",
              shown(act, b, sizeof b));
  return ok;
}

static bool read_bert(reader *r, fe_hf_config *c) {
  const char *pos = "absolute";
  char b[64];
  int64_t two = 2;
  bool ok = SIZE("vocab_size", &c->vocab);
  ok &= SIZE("hidden_size", &c->hidden);
  ok &= SIZE("intermediate_size", &c->ffn);
  ok &= LAYERS("num_hidden_layers", &c->layers);
  ok &= HEADS("num_attention_heads", &c->heads);
  ok &= SIZE("max_position_embeddings", &c->positions);
  ok &= get_int(r, "type_vocab_size", 1, FE_HF_MAX_SIZE, &two, &c->type_vocab);
  ok &= get_act(r, "hidden_act", "gelu", &c->gelu_tanh);
  ok &= get_num(r, "layer_norm_eps", 0, false, 1, 1e-12, &c->eps);
  ok &= get_num(r, "hidden_dropout_prob", 0, true, 0.99, 0.1, &c->dropout);
  ok &= refuse(r, "is_decoder", "a BERT decoder");
  ok &= refuse(r, "add_cross_attention", "cross-attention");
  if (!get_str(r, "position_embedding_type", "absolute", &pos))
    ok = false;
  else if (strcmp(pos, "absolute"))
    ok = fail(r, "key \"position_embedding_type\": \"%s\" is not supported (only absolute)",
              shown(pos, b, sizeof b));
  c->kv_heads = c->heads;
  c->tie = true;
  return ok;
}

/* check_heads: the relations between sizes that every family needs. */
static bool check_heads(reader *r, fe_hf_config *c, const char *hkey, const char *akey,
                        const char *kvkey) {
  if (!c->explicit_head_dim) {
    if (c->hidden % c->heads)
      return fail(r, "key \"%s\" (%" PRId64 ") does not divide key \"%s\" (%" PRId64 ")", akey,
                  c->heads, hkey, c->hidden);
    c->head_dim = c->hidden / c->heads;
  }
  if (c->heads % c->kv_heads)
    return fail(r, "key \"%s\" (%" PRId64 ") does not divide key \"%s\" (%" PRId64 ")", kvkey,
                c->kv_heads, akey, c->heads);
  if (c->family == FE_HF_LLAMA && c->head_dim % 2)
    return fail(r, "the head size %" PRId64 " (key \"%s\") is odd: rotary embeddings need an "
                "even one", c->head_dim, c->explicit_head_dim ? "head_dim" : akey);
  if (c->heads * c->head_dim > FE_HF_MAX_SIZE)
    return fail(r, "key \"%s\" times the head size is %" PRId64 ", more than %" PRId64, akey,
                c->heads * c->head_dim, FE_HF_MAX_SIZE);
  return true;
}

/* family_of: the family of a model_type, or -1. */
static int family_of(const char *t) {
  if (!strcmp(t, "gpt2")) return FE_HF_GPT2;
  if (!strcmp(t, "llama") || !strcmp(t, "mistral")) return FE_HF_LLAMA;
  if (!strcmp(t, "bert")) return FE_HF_BERT;
  return -1;
}

/* read_root: model_type, then the family's keys and checks. */
static bool read_root(reader *r, fe_hf_config *c) {
  const char *type = NULL;
  char b[64];
  if (!cJSON_IsObject(r->root))
    return fail(r, "a config.json must hold a JSON object, not %s", what(r->root));
  if (!get_str(r, "model_type", NULL, &type)) return false;
  if (!type) return fail(r, "missing key \"model_type\"");
  int fam = family_of(type);
  if (fam < 0)
    return fail(r, "key \"model_type\": unsupported model type \"%s\" (supported: gpt2, llama, "
                "mistral, bert)", shown(type, b, sizeof b));
  c->family = (fe_hf_family)fam;
  snprintf(c->model_type, sizeof c->model_type, "%s", type);
  switch (c->family) {
  case FE_HF_GPT2: return read_gpt2(r, c) && check_heads(r, c, "n_embd", "n_head", "n_head");
  case FE_HF_LLAMA:
    return read_llama(r, c) &&
           check_heads(r, c, "hidden_size", "num_attention_heads", "num_key_value_heads");
  case FE_HF_BERT:
    return read_bert(r, c) &&
           check_heads(r, c, "hidden_size", "num_attention_heads", "num_attention_heads");
  }
  return false;
}

/* blanks: p advanced over JSON white space, at most to end. */
static const char *blanks(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

/* locate: the line and column of p in src. */
static srcloc locate(const char *src, const char *p) {
  srcloc loc = {1, 1};
  for (const char *q = src; q < p; q++) {
    if (*q == '\n') loc.line++, loc.col = 1;
    else loc.col++;
  }
  return loc;
}

/* syntax_error: report where cJSON stopped, with the line and a caret. */
static void syntax_error(diag *d, const char *src, size_t len, const char *end) {
  if (!end || end < src || end > src + len) end = src + len;
  const char *rest = blanks(end < src + len ? end + 1 : end, src + len);
  if (rest == src + len) diag_error(d, locate(src, end), "invalid JSON: unexpected end of file");
  else diag_error(d, locate(src, end), "invalid JSON");
}

/* parse: the JSON value in src[0..len), alone but for white space; NULL after
 * an error. */
static cJSON *parse(const char *src, size_t len, diag *d) {
  if (memchr(src, 0, len)) {
    diag_error(d, (srcloc){0, 0}, "not a JSON text: it contains a NUL byte");
    return NULL;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(src, len, &end, false);
  if (!root) {
    syntax_error(d, src, len, end);
    return NULL;
  }
  const char *rest = blanks(end, src + len);
  if (rest < src + len) {
    diag_error(d, locate(src, rest), "invalid JSON: text after the end of the value");
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

bool fe_hf_read(const char *file, const char *src, size_t len, fe_hf_config *cfg, diag *d) {
  (void)file;
  memset(cfg, 0, sizeof *cfg);
  cJSON *root = parse(src, len, d);
  if (!root) return false;
  reader r = {root, d};
  bool ok = read_root(&r, cfg);
  cJSON_Delete(root);
  if (ok && fe_hf_param_count(cfg) < 0) {
    diag_error(d, (srcloc){0, 0}, "the model is too large: its parameter count overflows 64 bits");
    ok = false;
  }
  if (!ok) memset(cfg, 0, sizeof *cfg);
  return ok;
}

/* ---- counting -------------------------------------------------------------- */

/* acc: *sum += a * b (* c), false on overflow. */
static bool acc(int64_t *sum, int64_t a, int64_t b, int64_t c) {
  int64_t p;
  return !__builtin_mul_overflow(a, b, &p) && !__builtin_mul_overflow(p, c, &p) &&
         !__builtin_add_overflow(*sum, p, sum);
}

/* layer_params: parameters in one layer of the family's block. */
static bool layer_params(const fe_hf_config *c, int64_t *n) {
  int64_t h = c->hidden, f = c->ffn, q = c->heads * c->head_dim, kv = c->kv_heads * c->head_dim;
  switch (c->family) {
  case FE_HF_GPT2: /* ln_1, c_attn, c_proj, ln_2, c_fc, c_proj */
    return acc(n, 2, h, 1) && acc(n, h + 1, 3 * h, 1) && acc(n, h + 1, h, 1) && acc(n, 2, h, 1) &&
           acc(n, h + 1, f, 1) && acc(n, f + 1, h, 1);
  case FE_HF_LLAMA: /* q k v o, gate up down, two norms */
    return acc(n, q, h + c->attn_bias, 1) && acc(n, 2 * kv, h + c->attn_bias, 1) &&
           acc(n, h, q + c->attn_bias, 1) && acc(n, 2 * f, h + c->mlp_bias, 1) &&
           acc(n, h, f + c->mlp_bias, 1) && acc(n, 2, h, 1);
  case FE_HF_BERT: /* q k v, output dense + norm, intermediate, output + norm */
    return acc(n, 3, h + 1, h) && acc(n, h + 1, h, 1) && acc(n, 2, h, 1) &&
           acc(n, h + 1, f, 1) && acc(n, f + 1, h, 1) && acc(n, 2, h, 1);
  }
  return false;
}

int64_t fe_hf_param_count(const fe_hf_config *c) {
  int64_t layer = 0, n = 0, v = c->vocab, h = c->hidden;
  if (!layer_params(c, &layer) || !acc(&n, layer, c->layers, 1)) return -1;
  bool ok = acc(&n, v, h, c->tie ? 1 : 2);
  switch (c->family) {
  case FE_HF_GPT2: ok = ok && acc(&n, c->positions, h, 1) && acc(&n, 2, h, 1); break;
  case FE_HF_LLAMA: ok = ok && acc(&n, 1, h, 1); break;
  case FE_HF_BERT: /* positions, token types, embedding norm, pooler */
    ok = ok && acc(&n, c->positions + c->type_vocab + 2, h, 1) && acc(&n, h + 1, h, 1);
    break;
  }
  return ok ? n : -1;
}

/* ---- writing --------------------------------------------------------------- */

/* group: n with thousands separators ("124,439,808"). */
static const char *group(int64_t n, char *buf, size_t size) {
  char raw[32];
  int len = snprintf(raw, sizeof raw, "%" PRId64, n), j = 0;
  for (int i = 0; i < len && (size_t)j + 2 < size; i++) {
    if (i > 0 && raw[i - 1] != '-' && (len - i) % 3 == 0) buf[j++] = ',';
    buf[j++] = raw[i];
  }
  buf[j] = 0;
  return buf;
}

static void header(const fe_hf_config *c, const char *family, const char *origin, FILE *out) {
  char b[40];
  fprintf(out, "# %s imported from a Hugging Face config.json (model_type \"%s\").\n", family,
          c->model_type);
  if (origin) fprintf(out, "# Made by: %s\n", origin);
  fprintf(out, "# %s parameters, named exactly as in the checkpoint.\n",
          group(fe_hf_param_count(c), b, sizeof b));
}

/* P: a number as DSL text (uses a rotating static buffer, 4 live at once). */
static const char *P(double v) {
  static char buf[4][40];
  static int k;
  return fmt_num(v, buf[k++ & 3], sizeof buf[0]);
}

static void param(FILE *out, const char *ind, const char *name, const char *shape) {
  fprintf(out, "%sparam %s : [%s]\n", ind, name, shape);
}

/* dropout_open / dropout_close: wrap an expression in dropout when p > 0. */
static const char *dropout_open(double p) { return p > 0 ? "dropout(" : ""; }
static void dropout_close(FILE *out, double p) {
  if (p > 0) fprintf(out, ", p=%s)", P(p));
}

static void write_train(const fe_hf_config *c, FILE *out) {
  fprintf(out, "\n# global_batch is not in a config.json: set it here or on the command line.\n");
  fprintf(out, "train { seq = %" PRId64 ", precision = bf16, optimizer = adamw }\n", c->positions);
}

static void gpt2_block(const fe_hf_config *c, FILE *out) {
  const char *in = "    ", *tanh_or_erf = c->gelu_tanh ? "tanh" : "none";
  fprintf(out, "  block h[L] {\n");
  param(out, in, "ln_1.weight", "H"), param(out, in, "ln_1.bias", "H");
  param(out, in, "attn.c_attn.weight", "H, 3*H"), param(out, in, "attn.c_attn.bias", "3*H");
  param(out, in, "attn.c_proj.weight", "H, H"), param(out, in, "attn.c_proj.bias", "H");
  param(out, in, "ln_2.weight", "H"), param(out, in, "ln_2.bias", "H");
  param(out, in, "mlp.c_fc.weight", "H, F"), param(out, in, "mlp.c_fc.bias", "F");
  param(out, in, "mlp.c_proj.weight", "F, H"), param(out, in, "mlp.c_proj.bias", "H");
  fprintf(out, "    a = layer_norm(x, ln_1.weight, ln_1.bias, eps=%s)\n", P(c->eps));
  fprintf(out, "    y = attention(matmul(a, attn.c_attn.weight) + attn.c_attn.bias, heads=A, "
               "causal=true)\n");
  fprintf(out, "    x = x + %smatmul(y, attn.c_proj.weight) + attn.c_proj.bias",
          dropout_open(c->dropout));
  dropout_close(out, c->dropout);
  fprintf(out, "\n    m = layer_norm(x, ln_2.weight, ln_2.bias, eps=%s)\n", P(c->eps));
  fprintf(out, "    f = gelu(matmul(m, mlp.c_fc.weight) + mlp.c_fc.bias, approximate=\"%s\")\n",
          tanh_or_erf);
  fprintf(out, "    x = x + %smatmul(f, mlp.c_proj.weight) + mlp.c_proj.bias",
          dropout_open(c->dropout));
  dropout_close(out, c->dropout);
  fprintf(out, "\n  }\n");
}

static void write_gpt2(const fe_hf_config *c, const char *name, const char *origin, FILE *out) {
  header(c, "GPT-2", origin, out);
  fprintf(out, "# Conv1D weights are stored [in, out], so each matmul uses the weight as "
               "written.\nmodel %s {\n", name);
  fprintf(out, "  dims { V = %" PRId64 ", P = %" PRId64 ", H = %" PRId64 ", F = ", c->vocab,
          c->positions, c->hidden);
  if (c->ffn == 4 * c->hidden) fprintf(out, "4*H");
  else fprintf(out, "%" PRId64, c->ffn);
  fprintf(out, ", A = %" PRId64 ", L = %" PRId64 " }\n", c->heads, c->layers);
  fprintf(out, "  input ids : i32[B, S]\n  input labels : i32[B, S]\n");
  param(out, "  ", "wte.weight", "V, H"), param(out, "  ", "wpe.weight", "P, H");
  fprintf(out, "  x = %sembedding(ids, wte.weight) + embedding(positions(S), wpe.weight)",
          dropout_open(c->embd_dropout));
  dropout_close(out, c->embd_dropout);
  fprintf(out, "\n");
  gpt2_block(c, out);
  param(out, "  ", "ln_f.weight", "H"), param(out, "  ", "ln_f.bias", "H");
  if (!c->tie) param(out, "  ", "lm_head.weight", "V, H");
  fprintf(out, "  logits = matmul(layer_norm(x, ln_f.weight, ln_f.bias, eps=%s), %s, "
               "trans_b=true)\n", P(c->eps), c->tie ? "wte.weight" : "lm_head.weight");
  fprintf(out, "  loss = cross_entropy(logits, labels)\n}\n");
  write_train(c, out);
}

/* linear: `param PREFIX.weight : [OUT, IN]` (+ bias [OUT]) as nn.Linear stores it. */
static void linear(FILE *out, const char *ind, const char *prefix, const char *o, const char *i,
                   bool bias) {
  fprintf(out, "%sparam %s.weight : [%s, %s]\n", ind, prefix, o, i);
  if (bias) fprintf(out, "%sparam %s.bias : [%s]\n", ind, prefix, o);
}

/* norm: `param PREFIX.weight : [H]` and `param PREFIX.bias : [H]` (LayerNorm). */
static void norm(FILE *out, const char *ind, const char *prefix) {
  fprintf(out, "%sparam %s.weight : [H]\n%sparam %s.bias : [H]\n", ind, prefix, ind, prefix);
}

/* proj: "matmul(X, PREFIX.weight, trans_b=true)" (+ " + PREFIX.bias"). */
static void proj(FILE *out, const char *x, const char *prefix, bool bias) {
  fprintf(out, "matmul(%s, %s.weight, trans_b=true)", x, prefix);
  if (bias) fprintf(out, " + %s.bias", prefix);
}

static void llama_block(const fe_hf_config *c, FILE *out) {
  const char *in = "    ";
  bool ab = c->attn_bias, mb = c->mlp_bias;
  fprintf(out, "  block model.layers[L] {\n");
  linear(out, in, "self_attn.q_proj", "A*D", "H", ab);
  linear(out, in, "self_attn.k_proj", "KV*D", "H", ab);
  linear(out, in, "self_attn.v_proj", "KV*D", "H", ab);
  linear(out, in, "self_attn.o_proj", "H", "A*D", ab);
  linear(out, in, "mlp.gate_proj", "F", "H", mb);
  linear(out, in, "mlp.up_proj", "F", "H", mb);
  linear(out, in, "mlp.down_proj", "H", "F", mb);
  param(out, in, "input_layernorm.weight", "H");
  param(out, in, "post_attention_layernorm.weight", "H");
  fprintf(out, "    a = rms_norm(x, input_layernorm.weight, eps=%s)\n    q = rotary(", P(c->eps));
  proj(out, "a", "self_attn.q_proj", ab);
  fprintf(out, ", heads=A, theta=%s)\n    k = rotary(", P(c->rope_theta));
  proj(out, "a", "self_attn.k_proj", ab);
  fprintf(out, ", heads=KV, theta=%s)\n    v = ", P(c->rope_theta));
  proj(out, "a", "self_attn.v_proj", ab);
  fprintf(out, "\n    y = attention(q, k, v, heads=A, kv_heads=KV, causal=true)\n    x = x + ");
  proj(out, "y", "self_attn.o_proj", ab);
  fprintf(out, "\n    m = rms_norm(x, post_attention_layernorm.weight, eps=%s)\n    g = swiglu(",
          P(c->eps));
  proj(out, "m", "mlp.gate_proj", mb);
  fprintf(out, ", ");
  proj(out, "m", "mlp.up_proj", mb);
  fprintf(out, ")\n    x = x + ");
  proj(out, "g", "mlp.down_proj", mb);
  fprintf(out, "\n  }\n");
}

static void write_llama(const fe_hf_config *c, const char *name, const char *origin, FILE *out) {
  header(c, "LLaMA-family model", origin, out);
  fprintf(out, "# nn.Linear weights are stored [out, in], so projections use trans_b=true.\n");
  if (c->rope_scaled) fprintf(out, "# rope_scaling is not modelled: plain rotary embedding.\n");
  if (c->sliding_window)
    fprintf(out, "# sliding_window %" PRId64 " is not modelled: full causal attention.\n",
            c->sliding_window);
  fprintf(out, "model %s {\n  dims { V = %" PRId64 ", P = %" PRId64 ", H = %" PRId64
               ", F = %" PRId64 ", A = %" PRId64 ", KV = %" PRId64 ", D = ",
          name, c->vocab, c->positions, c->hidden, c->ffn, c->heads, c->kv_heads);
  if (c->explicit_head_dim) fprintf(out, "%" PRId64, c->head_dim);
  else fprintf(out, "H/A");
  fprintf(out, ", L = %" PRId64 " }\n", c->layers);
  fprintf(out, "  input ids : i32[B, S]\n  input labels : i32[B, S]\n");
  param(out, "  ", "model.embed_tokens.weight", "V, H");
  fprintf(out, "  x = embedding(ids, model.embed_tokens.weight)\n");
  llama_block(c, out);
  param(out, "  ", "model.norm.weight", "H");
  if (!c->tie) param(out, "  ", "lm_head.weight", "V, H");
  fprintf(out, "  logits = matmul(rms_norm(x, model.norm.weight, eps=%s), %s, trans_b=true)\n",
          P(c->eps), c->tie ? "model.embed_tokens.weight" : "lm_head.weight");
  fprintf(out, "  loss = cross_entropy(logits, labels)\n}\n");
  write_train(c, out);
}

/* bert_residual: "x = layer_norm(x + dropout(proj(IN, DENSE)), NORM..., eps)". */
static void bert_residual(const fe_hf_config *c, FILE *out, const char *in, const char *dense,
                          const char *norm) {
  fprintf(out, "    x = layer_norm(x + %s", dropout_open(c->dropout));
  proj(out, in, dense, true);
  dropout_close(out, c->dropout);
  fprintf(out, ", %s.weight, %s.bias, eps=%s)\n", norm, norm, P(c->eps));
}

static void bert_block(const fe_hf_config *c, FILE *out) {
  const char *in = "    ";
  fprintf(out, "  block encoder.layer[L] {\n");
  linear(out, in, "attention.self.query", "H", "H", true);
  linear(out, in, "attention.self.key", "H", "H", true);
  linear(out, in, "attention.self.value", "H", "H", true);
  linear(out, in, "attention.output.dense", "H", "H", true);
  norm(out, in, "attention.output.LayerNorm");
  linear(out, in, "intermediate.dense", "F", "H", true);
  linear(out, in, "output.dense", "H", "F", true);
  norm(out, in, "output.LayerNorm");
  static const char *qkv[3][2] = {{"q", "attention.self.query"}, {"k", "attention.self.key"},
                                  {"v", "attention.self.value"}};
  for (int i = 0; i < 3; i++) {
    fprintf(out, "    %s = ", qkv[i][0]);
    proj(out, "x", qkv[i][1], true);
    fprintf(out, "\n");
  }
  fprintf(out, "    y = attention(q, k, v, heads=A, causal=false)\n");
  bert_residual(c, out, "y", "attention.output.dense", "attention.output.LayerNorm");
  fprintf(out, "    f = gelu(");
  proj(out, "x", "intermediate.dense", true);
  fprintf(out, ", approximate=\"%s\")\n", c->gelu_tanh ? "tanh" : "none");
  bert_residual(c, out, "f", "output.dense", "output.LayerNorm");
  fprintf(out, "  }\n");
}

static void write_bert(const fe_hf_config *c, const char *name, const char *origin, FILE *out) {
  header(c, "BERT encoder with pooler", origin, out);
  fprintf(out, "# (BertModel names; a BertForPreTraining file prefixes them with \"bert.\").\n"
               "# nn.Linear weights are stored [out, in], so projections use trans_b=true.\n"
               "# The masked-LM loss decodes with the tied word embeddings (no extra params).\n");
  fprintf(out, "model %s {\n  dims { V = %" PRId64 ", P = %" PRId64 ", T = %" PRId64
               ", H = %" PRId64 ", F = %" PRId64 ", A = %" PRId64 ", L = %" PRId64 " }\n",
          name, c->vocab, c->positions, c->type_vocab, c->hidden, c->ffn, c->heads, c->layers);
  fprintf(out, "  input ids : i32[B, S]\n  input token_type_ids : i32[B, S]\n"
               "  input labels : i32[B, S]\n");
  param(out, "  ", "embeddings.word_embeddings.weight", "V, H");
  param(out, "  ", "embeddings.position_embeddings.weight", "P, H");
  param(out, "  ", "embeddings.token_type_embeddings.weight", "T, H");
  norm(out, "  ", "embeddings.LayerNorm");
  fprintf(out, "  e = embedding(ids, embeddings.word_embeddings.weight) + embedding(token_type_ids, "
               "embeddings.token_type_embeddings.weight) + embedding(positions(S), "
               "embeddings.position_embeddings.weight)\n");
  fprintf(out, "  x = %slayer_norm(e, embeddings.LayerNorm.weight, embeddings.LayerNorm.bias, "
               "eps=%s)", dropout_open(c->dropout), P(c->eps));
  dropout_close(out, c->dropout);
  fprintf(out, "\n");
  bert_block(c, out);
  linear(out, "  ", "pooler.dense", "H", "H", true);
  fprintf(out, "  # the pooler, kept as a value: HF's BertPooler, tanh(dense(x[:, 0]))\n  pooled = tanh(");
  proj(out, "select(x, axis=1, index=0)", "pooler.dense", true);
  fprintf(out, ")\n  logits = matmul(x, embeddings.word_embeddings.weight, trans_b=true)\n"
               "  loss = cross_entropy(logits, labels)\n}\n");
  write_train(c, out);
}

void fe_hf_write(const fe_hf_config *c, const char *name, const char *origin, FILE *out) {
  switch (c->family) {
  case FE_HF_GPT2: write_gpt2(c, name, origin, out); break;
  case FE_HF_LLAMA: write_llama(c, name, origin, out); break;
  case FE_HF_BERT: write_bert(c, name, origin, out); break;
  }
}

bool fe_hf_valid_name(const char *s) {
  static const char *reserved[] = {"model", "dims", "input", "param", "block", "cluster",
                                   "device", "node", "nodes", "link", "nic", "latency",
                                   "train", "true", "false", "x", "B", "S", "P", "f32",
                                   "f16", "bf16", "i32", "i64", "sum", "max"};
  size_t n = strlen(s);
  if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9')) return false;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9')))
      return false;
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(s, reserved[i])) return false;
  return true;
}

bool fe_hf_import(const char *file, const char *src, size_t len, const char *name,
                  const char *origin, FILE *out, diag *d) {
  fe_hf_config c;
  if (!fe_hf_read(file, src, len, &c, d)) return false;
  fe_hf_write(&c, name ? name : c.model_type, origin, out);
  return true;
}
