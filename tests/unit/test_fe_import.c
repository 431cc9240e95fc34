/* test_fe_import.c — Hugging Face import (frontend/hf.h, `sbpc import hf`).
 *
 * The real configs in tests/data/hf/ must give the exact parameter counts of
 * their checkpoints, checked three ways: by the importer's own config
 * arithmetic, by parsing the written .sbp text with fe_parse and counting the
 * IR's params (the check that matters), and end to end through
 * `sbpc import hf` + `sbpc check` (when the sbpc in $SBPC has `check`). The
 * bad configs must fail with an error naming the key, and no prefix of a good
 * config may crash the reader. */
#include "cu.h"
#include "frontend/frontend.h"
#include "frontend/hf.h"
#include "ir/ir.h"
#include "util/diag.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


typedef struct {
  const char *file;
  int64_t params;
  const char *names[3]; /* full parameter names that must exist */
  const char *block;    /* the one block's name */
  int layers;
} good_case;

static const good_case goods[] = {
    {"tests/data/hf/gpt2.json", INT64_C(124439808),
     {"h.0.attn.c_attn.weight", "h.11.mlp.c_proj.bias", "wpe.weight"},
     "h", 12},
    {"tests/data/hf/llama-2-7b.json", INT64_C(6738415616),
     {"model.layers.0.self_attn.q_proj.weight", "model.layers.31.mlp.down_proj.weight",
      "lm_head.weight"},
     "model.layers", 32},
    {"tests/data/hf/bert-large-uncased.json", INT64_C(335141888),
     {"encoder.layer.0.attention.self.query.weight", "encoder.layer.23.output.LayerNorm.bias",
      "pooler.dense.weight"},
     "encoder.layer", 24},
    {"tests/data/hf/tinyllama-1.1b.json", INT64_C(1100048384),
     {"model.layers.21.self_attn.k_proj.weight", "model.norm.weight", "lm_head.weight"},
     "model.layers", 22},
    {"tests/data/hf/mistral-7b-v0.1.json", INT64_C(7241732096),
     {"model.embed_tokens.weight", "model.layers.31.post_attention_layernorm.weight",
      "lm_head.weight"},
     "model.layers", 32},
    {"tests/data/hf/llama-3-8b.json", INT64_C(8030261248),
     {"model.layers.0.self_attn.v_proj.weight", "model.layers.31.input_layernorm.weight",
      "lm_head.weight"},
     "model.layers", 32},
};
#define NGOOD (int)(sizeof goods / sizeof goods[0])

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *rel, size_t *len) {
  char *s = read_file(cu_src(rel), 1 << 20, len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  return s;
}

/* import_text: import src; returns the .sbp text (malloc'ed) or NULL, with
 * the diagnostics in *msgs (malloc'ed). */
static char *import_text(const char *src, size_t len, const char *name, char **msgs) {
  char *text = NULL, *m = NULL;
  size_t tlen = 0, mlen = 0;
  FILE *out = open_memstream(&text, &tlen), *err = open_memstream(&m, &mlen);
  diag d;
  diag_init(&d, "config.json", src, len);
  d.out = err;
  d.color = 0;
  bool ok = fe_hf_import("config.json", src, len, name, NULL, out, &d);
  fclose(out);
  fclose(err);
  CU_ASSERT_EQUAL(ok, d.errors == 0);
  if (msgs) *msgs = m;
  else free(m);
  if (!ok) CU_ASSERT_EQUAL(tlen, 0);
  if (ok) return text;
  free(text);
  return NULL;
}

static int64_t count_of(const char *json) {
  fe_hf_config c;
  diag d;
  FILE *null = fopen("/dev/null", "w");
  diag_init(&d, "inline.json", json, strlen(json));
  d.out = null ? null : stderr;
  d.color = 0;
  bool ok = fe_hf_read("inline.json", json, strlen(json), &c, &d);
  if (null) fclose(null);
  return ok ? fe_hf_param_count(&c) : -1;
}

/* ---- counts by config arithmetic ----------------------------------------- */

static void counts_exact(void) {
  for (int i = 0; i < NGOOD; i++) {
    size_t len;
    char *src = slurp(goods[i].file, &len);
    fe_hf_config c;
    diag d;
    diag_init(&d, goods[i].file, src, len);
    CU_ASSERT_TRUE(fe_hf_read(goods[i].file, src, len, &c, &d));
    CU_ASSERT_EQUAL(fe_hf_param_count(&c), goods[i].params);
    if (fe_hf_param_count(&c) != goods[i].params)
      printf("\n  %s: %" PRId64 " params, expected %" PRId64 "\n", goods[i].file,
             fe_hf_param_count(&c), goods[i].params);
    free(src);
  }
}

static void config_fields(void) {
  size_t len;
  fe_hf_config c;
  diag d;
  char *src = slurp("tests/data/hf/gpt2.json", &len);
  diag_init(&d, "gpt2.json", src, len);
  CU_ASSERT_TRUE_FATAL(fe_hf_read("gpt2.json", src, len, &c, &d));
  CU_ASSERT_EQUAL(c.family, FE_HF_GPT2);
  CU_ASSERT_EQUAL(c.ffn, 3072); /* n_inner absent -> 4 * n_embd */
  CU_ASSERT_TRUE(c.gelu_tanh);  /* gelu_new */
  CU_ASSERT_TRUE(c.tie);
  CU_ASSERT_DOUBLE_EQUAL(c.eps, 1e-5, 1e-12);
  free(src);
  src = slurp("tests/data/hf/tinyllama-1.1b.json", &len);
  CU_ASSERT_TRUE_FATAL(fe_hf_read("t.json", src, len, &c, &d));
  CU_ASSERT_EQUAL(c.family, FE_HF_LLAMA);
  CU_ASSERT_EQUAL(c.kv_heads, 4);
  CU_ASSERT_EQUAL(c.head_dim, 64);
  CU_ASSERT_FALSE(c.tie);
  free(src);
  src = slurp("tests/data/hf/bert-large-uncased.json", &len);
  CU_ASSERT_TRUE_FATAL(fe_hf_read("b.json", src, len, &c, &d));
  CU_ASSERT_EQUAL(c.family, FE_HF_BERT);
  CU_ASSERT_FALSE(c.gelu_tanh); /* gelu = erf form */
  CU_ASSERT_EQUAL(c.type_vocab, 2);
  CU_ASSERT_DOUBLE_EQUAL(c.eps, 1e-12, 1e-20);
  free(src);
}

/* Variants written inline: defaults, untied heads, biases, explicit head_dim. */
static void variants(void) {
  /* GPT-2 with n_inner given and an untied head: + V*H, F = 1024. */
  CU_ASSERT_EQUAL(count_of("{\"model_type\":\"gpt2\",\"vocab_size\":100,\"n_positions\":16,"
                           "\"n_embd\":8,\"n_layer\":2,\"n_head\":2,\"n_inner\":null,"
                           "\"tie_word_embeddings\":false}"),
                  100 * 8 * 2 + 16 * 8 + 2 * 8 +
                      2 * (2 * 8 + 8 * 24 + 24 + 8 * 8 + 8 + 2 * 8 + 8 * 32 + 32 + 32 * 8 + 8));
  CU_ASSERT_EQUAL(count_of("{\"model_type\":\"gpt2\",\"vocab_size\":100,\"n_positions\":16,"
                           "\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"n_inner\":10}"),
                  100 * 8 + 16 * 8 + 2 * 8 +
                      (2 * 8 + 8 * 24 + 24 + 8 * 8 + 8 + 2 * 8 + 8 * 10 + 10 + 10 * 8 + 8));
  /* LLaMA, tied, with attention and MLP biases, GQA and head_dim 4. */
  CU_ASSERT_EQUAL(
      count_of("{\"model_type\":\"llama\",\"vocab_size\":50,\"hidden_size\":8,"
               "\"intermediate_size\":12,\"num_hidden_layers\":3,\"num_attention_heads\":4,"
               "\"num_key_value_heads\":2,\"head_dim\":4,\"max_position_embeddings\":64,"
               "\"tie_word_embeddings\":true,\"attention_bias\":true,\"mlp_bias\":true}"),
      50 * 8 + 8 + 3 * (16 * 9 + 2 * 8 * 9 + 8 * 17 + 2 * 12 * 9 + 8 * 13 + 2 * 8));
  /* rotary embeddings need an even head size */
  CU_ASSERT(count_of("{\"model_type\":\"llama\",\"vocab_size\":5,\"hidden_size\":9,"
                     "\"intermediate_size\":7,\"num_hidden_layers\":1,\"num_attention_heads\":3,"
                     "\"max_position_embeddings\":8}") < 0);
  /* A head count that does not divide the hidden size is fine with head_dim. */
  CU_ASSERT(count_of("{\"model_type\":\"llama\",\"vocab_size\":5,\"hidden_size\":10,"
                     "\"intermediate_size\":7,\"num_hidden_layers\":1,\"num_attention_heads\":3,"
                     "\"head_dim\":4,\"max_position_embeddings\":8}") > 0);
  CU_ASSERT(count_of("{\"model_type\":\"llama\",\"vocab_size\":5,\"hidden_size\":10,"
                     "\"intermediate_size\":7,\"num_hidden_layers\":1,\"num_attention_heads\":3,"
                     "\"max_position_embeddings\":8}") < 0);
}

/* ---- the written text ------------------------------------------------------ */

static void has(const char *text, const char *what) {
  bool found = text && strstr(text, what);
  CU_ASSERT_TRUE(found);
  if (!found) printf("\n  missing in the written model: %s\n", what);
}

static void text_shape(void) {
  static const char *want[][8] = {
      {"model gpt2 {", "F = 4*H", "block h[L] {", "param attn.c_attn.weight : [H, 3*H]",
       "approximate=\"tanh\"", "wte.weight, trans_b=true", "causal=true", "eps=1e-5"},
      {"model llama {", "block model.layers[L] {", "param self_attn.q_proj.weight : [A*D, H]",
       "param lm_head.weight : [V, H]", "kv_heads=KV", "rms_norm(x, input_layernorm.weight",
       "swiglu(", "theta=10000"},
      {"model bert {", "block encoder.layer[L] {", "param attention.output.LayerNorm.bias : [H]",
       "causal=false", "approximate=\"none\"", "pooled = tanh(matmul(select(x, axis=1, index=0), pooler.dense.weight", "eps=1e-12",
       "embeddings.word_embeddings.weight, trans_b=true"},
  };
  for (int i = 0; i < 3; i++) {
    size_t len;
    char *src = slurp(goods[i].file, &len);
    char *text = import_text(src, len, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(text);
    for (int j = 0; j < 8; j++) has(text, want[i][j]);
    if (i == 0) CU_ASSERT_PTR_NULL(text ? strstr(text, "lm_head") : "x");
    free(text);
    free(src);
  }
}

static void names(void) {
  CU_ASSERT_TRUE(fe_hf_valid_name("llama_7b"));
  CU_ASSERT_TRUE(fe_hf_valid_name("_x9"));
  CU_ASSERT_FALSE(fe_hf_valid_name("model"));
  CU_ASSERT_FALSE(fe_hf_valid_name("7b"));
  CU_ASSERT_FALSE(fe_hf_valid_name("a-b"));
  CU_ASSERT_FALSE(fe_hf_valid_name(""));
  size_t len;
  char *src = slurp("tests/data/hf/gpt2.json", &len);
  char *text = import_text(src, len, "gpt2_small", NULL);
  has(text, "model gpt2_small {");
  free(text);
  free(src);
}

static ir_ref find_tensor(const ir_graph *g, const char *name) {
  for (int i = 0; i < g->nt; i++)
    if (g->t[i].name && !strcmp(g->t[i].name, name)) return i;
  return IR_NONE;
}

/* parsed_counts: the written text parsed by the front end, counted by the IR. */
static void parsed_counts(void) {
  for (int i = 0; i < NGOOD; i++) {
    size_t len;
    char *src = slurp(goods[i].file, &len);
    char *text = import_text(src, len, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    ir_program p;
    memset(&p, 0, sizeof p);
    diag d;
    diag_init(&d, goods[i].file, text, strlen(text));
    bool ok = fe_parse(goods[i].file, text, strlen(text), &p, &d);
    CU_ASSERT_TRUE(ok);
    if (ok && p.g) {
      CU_ASSERT_EQUAL(ir_param_count(p.g), goods[i].params);
      CU_ASSERT_NOT_EQUAL(p.g->loss, IR_NONE);
      CU_ASSERT_EQUAL(p.g->nblk, 1);
      if (p.g->nblk == 1) {
        CU_ASSERT_STRING_EQUAL(p.g->blk[0].name, goods[i].block);
        CU_ASSERT_EQUAL(p.g->blk[0].count, goods[i].layers);
      }
      for (int j = 0; j < 3; j++) {
        CU_ASSERT_NOT_EQUAL(find_tensor(p.g, goods[i].names[j]), IR_NONE);
        if (find_tensor(p.g, goods[i].names[j]) == IR_NONE)
          printf("\n  %s: no param %s\n", goods[i].file, goods[i].names[j]);
      }
    }
    fe_program_free(&p);
    free(text);
    free(src);
  }
}

/* ---- bad configs ------------------------------------------------------------ */

static const char *bads[][2] = {
    {"bad-missing-n_embd.json", "error: missing key \"n_embd\""},
    {"bad-missing-num_hidden_layers.json", "error: missing key \"num_hidden_layers\""},
    {"bad-missing-model_type.json", "error: missing key \"model_type\""},
    {"bad-model_type.json", "unsupported model type \"t5\""},
    {"bad-model_type-number.json", "key \"model_type\" must be a string, not a number"},
    {"bad-negative-layers.json", "key \"n_layer\" is -12, out of range [1, 100000]"},
    {"bad-huge-layers.json", "key \"num_hidden_layers\" is 1e30, out of range"},
    {"bad-fraction.json", "key \"n_embd\" must be an integer, not 768.5"},
    {"bad-string-heads.json", "key \"n_head\" must be an integer, not a string"},
    {"bad-heads-divide.json", "key \"num_attention_heads\" (31) does not divide key \"hidden_size\""},
    {"bad-kv-heads.json", "key \"num_key_value_heads\" (5) does not divide"},
    {"bad-activation.json", "key \"activation_function\": unsupported activation \"relu\""},
    {"bad-position-type.json", "key \"position_embedding_type\""},
    {"bad-eps.json", "key \"layer_norm_eps\" is -1, out of range"},
    {"bad-null-vocab.json", "key \"vocab_size\" must be an integer, not null"},
    {"bad-truncated.json", "config.json:10:21: error: invalid JSON: unexpected end of file"},
    {"bad-syntax.json", "config.json:3:18: error: invalid JSON"},
    {"bad-not-object.json", "must hold a JSON object, not an array"},
    {"bad-overflow.json", "parameter count overflows"},
    {"bad-trailing.json", "config.json:2:1: error: invalid JSON: text after the end of the value"},
};

static void bad_configs(void) {
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    char rel[256], *msgs = NULL;
    snprintf(rel, sizeof rel, "tests/data/hf/%s", bads[i][0]);
    size_t len;
    char *src = slurp(rel, &len);
    char *text = import_text(src, len, NULL, &msgs);
    CU_ASSERT_PTR_NULL(text);
    bool found = msgs && strstr(msgs, bads[i][1]);
    CU_ASSERT_TRUE(found);
    if (!found) printf("\n  %s: got '%s', expected '%s'\n", bads[i][0], msgs, bads[i][1]);
    free(text);
    free(msgs);
    free(src);
  }
}

/* many_errors: one run names every bad key, not just the first. */
static void many_errors(void) {
  size_t len;
  char *msgs = NULL, *src = slurp("tests/data/hf/bad-many.json", &len);
  char *text = import_text(src, len, NULL, &msgs);
  CU_ASSERT_PTR_NULL(text);
  int n = 0;
  for (const char *p = msgs; p && (p = strstr(p, ": error: ")); p++) n++;
  CU_ASSERT_EQUAL(n, 7);
  static const char *keys[] = {"\"vocab_size\"", "\"hidden_size\"", "\"intermediate_size\"",
                               "\"num_hidden_layers\"", "\"rms_norm_eps\"",
                               "\"tie_word_embeddings\"", "\"hidden_act\""};
  for (int i = 0; i < 7; i++) has(msgs, keys[i]);
  free(text), free(msgs), free(src);
}

/* prefixes: every prefix of a real config is read without a crash or leak. */
static void prefixes(void) {
  size_t len;
  char *src = slurp("tests/data/hf/llama-2-7b.json", &len);
  int ok = 0;
  for (size_t n = 0; n <= len; n++) {
    char *text = import_text(src, n, NULL, NULL);
    ok += text != NULL;
    free(text);
  }
  CU_ASSERT_EQUAL(ok, 2); /* the whole file, and it without its final newline */
  free(src);
}

/* examples_in_sync: examples/llama-7b.sbp and bert-large.sbp are exactly what
 * the importer writes today (their header says the command that made them). */
static void examples_in_sync(void) {
  static const char *ex[][3] = {
      {"tests/data/hf/llama-2-7b.json", "llama_7b", "examples/llama-7b.sbp"},
      {"tests/data/hf/bert-large-uncased.json", "bert_large", "examples/bert-large.sbp"},
  };
  for (int i = 0; i < 2; i++) {
    char origin[512], *text = NULL;
    size_t len, tlen = 0, elen;
    snprintf(origin, sizeof origin, "sbpc import hf %s --name %s -o %s", ex[i][0], ex[i][1],
             ex[i][2]);
    char *src = slurp(ex[i][0], &len), *want = slurp(ex[i][2], &elen);
    FILE *out = open_memstream(&text, &tlen);
    diag d;
    diag_init(&d, ex[i][0], src, len);
    CU_ASSERT_TRUE(fe_hf_import(ex[i][0], src, len, ex[i][1], origin, out, &d));
    fclose(out);
    CU_ASSERT_STRING_EQUAL(text, want);
    if (strcmp(text, want))
      printf("\n  %s is stale: regenerate it with the command in its header\n", ex[i][2]);
    free(text), free(src), free(want);
  }
}

/* ---- the command ------------------------------------------------------------- */

static int run(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void command(void) {
  const char *sbpc = getenv("SBPC");
  if (!sbpc) return;
  char dir[] = "/tmp/sbpc-hf-XXXXXX", cmd[2048];
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  snprintf(cmd, sizeof cmd, "'%s' import hf '%s' --name llama_7b -o %s/m.sbp", sbpc,
           cu_src("tests/data/hf/llama-2-7b.json"), dir);
  CU_ASSERT_EQUAL(run(cmd), 0);
  size_t len;
  snprintf(cmd, sizeof cmd, "%s/m.sbp", dir);
  char *text = read_file(cmd, 1 << 20, &len);
  has(text, "# Made by: sbpc import hf ");
  has(text, "model llama_7b {");
  has(text, "# 6,738,415,616 parameters");
  free(text);
  /* sbpc check on the written model, when this build has it */
  snprintf(cmd, sizeof cmd, "'%s' check %s/m.sbp > %s/check.out 2>&1", sbpc, dir, dir);
  int st = run(cmd);
  snprintf(cmd, sizeof cmd, "%s/check.out", dir);
  char *out = read_file(cmd, 1 << 20, &len);
  if (out && !strstr(out, "not available in this build")) {
    CU_ASSERT_EQUAL(st, 0);
    has(out, "6,738,415,616");
  }
  free(out);
  /* the checked-in examples made by the importer */
  static const char *ex[][2] = {{"examples/llama-7b.sbp", "parameters: 6,738,415,616"},
                                {"examples/bert-large.sbp", "parameters: 335,141,888"}};
  for (int i = 0; i < 2 && st == 0; i++) {
    snprintf(cmd, sizeof cmd, "'%s' check '%s' > %s/check.out 2>&1", sbpc, cu_src(ex[i][0]), dir);
    CU_ASSERT_EQUAL(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/check.out", dir);
    out = read_file(cmd, 1 << 20, &len);
    has(out, ex[i][1]);
    free(out);
  }
  /* a bad config: exit 1, and no output file */
  snprintf(cmd, sizeof cmd, "'%s' import hf '%s' -o %s/bad.sbp 2>/dev/null", sbpc,
           cu_src("tests/data/hf/bad-missing-n_embd.json"), dir);
  CU_ASSERT_EQUAL(run(cmd), 1);
  snprintf(cmd, sizeof cmd, "%s/bad.sbp", dir);
  CU_ASSERT_NOT_EQUAL(access(cmd, F_OK), 0);
  /* bad usage: exit 2 */
  static const char *usages[] = {"import", "import hf", "import onnx x.json", "import hf a b",
                                 "import hf x.json --bogus", "import hf x.json --name 7b"};
  for (size_t i = 0; i < sizeof usages / sizeof *usages; i++) {
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", sbpc, usages[i]);
    CU_ASSERT_EQUAL(run(cmd), 2);
  }
  snprintf(cmd, sizeof cmd, "'%s' import hf %s/missing.json 2>/dev/null", sbpc, dir);
  CU_ASSERT_EQUAL(run(cmd), 1);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CU_ASSERT_EQUAL(run(cmd), 0);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("fe_import", NULL, NULL);
  CU_ADD(s, counts_exact);
  CU_ADD(s, config_fields);
  CU_ADD(s, variants);
  CU_ADD(s, text_shape);
  CU_ADD(s, names);
  CU_ADD(s, parsed_counts);
  CU_ADD(s, bad_configs);
  CU_ADD(s, many_errors);
  CU_ADD(s, prefixes);
  CU_ADD(s, examples_in_sync);
  CU_ADD(s, command);
}
