/* hf.h — Hugging Face import: a config.json becomes a model in the sbpc
 * language (docs/language.md), for the GPT-2, LLaMA and BERT families.
 *
 * Import is two steps: fe_hf_read checks the JSON (with cJSON) and fills an
 * fe_hf_config of plain numbers; fe_hf_write prints that config as .sbp text
 * whose parameter names are exactly those of the family's checkpoints
 * (h.0.attn.c_attn.weight, model.layers.0.self_attn.q_proj.weight,
 * encoder.layer.0.attention.self.query.weight, ...). fe_hf_param_count is the
 * same model counted by arithmetic, an independent check of what the front
 * end finds when it parses the written text. Nothing here allocates anything
 * that outlives a call. */
#ifndef SBPC_FE_HF_H
#define SBPC_FE_HF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "util/diag.h"

typedef enum { FE_HF_GPT2, FE_HF_LLAMA, FE_HF_BERT } fe_hf_family;

/* Limits on what a config may ask for; larger values are input errors. */
#define FE_HF_MAX_SIZE (INT64_C(1) << 24)  /* vocab, hidden, ffn, positions */
#define FE_HF_MAX_LAYERS 100000
#define FE_HF_MAX_HEADS 65536

/* One imported model, in the terms of the sbpc language. */
typedef struct {
  fe_hf_family family;
  char model_type[32];    /* as written in the config ("gpt2", "llama", ...) */
  int64_t vocab;          /* V */
  int64_t hidden;         /* H */
  int64_t ffn;            /* F: MLP inner size */
  int64_t layers;         /* L */
  int64_t heads;          /* A */
  int64_t kv_heads;       /* KV (LLaMA; = heads elsewhere) */
  int64_t head_dim;       /* D (LLaMA: explicit "head_dim", else H/A) */
  bool explicit_head_dim; /* head_dim came from the config */
  int64_t positions;      /* P: context length (learned positions for GPT-2/BERT) */
  int64_t type_vocab;     /* T: BERT token types */
  double eps;             /* layer/RMS norm epsilon */
  double rope_theta;      /* LLaMA */
  bool rope_scaled;       /* LLaMA: rope_scaling given (not modelled) */
  int64_t sliding_window; /* Mistral: attention window (not modelled), 0 = none */
  double dropout;         /* residual/hidden dropout */
  double embd_dropout;    /* GPT-2 embedding dropout */
  bool gelu_tanh;         /* GPT-2/BERT: tanh approximation, else erf */
  bool tie;               /* LM head is the (transposed) token embedding */
  bool attn_bias;         /* LLaMA attention_bias */
  bool mlp_bias;          /* LLaMA mlp_bias */
} fe_hf_config;

/* fe_hf_read: check the config.json text src[0..len) (named `file` in
 * messages) and fill *cfg. On bad input (invalid JSON, unknown model_type, a
 * missing key, a value of the wrong type or out of range, inconsistent sizes)
 * prints errors naming the key to d ("file: error: missing key \"n_embd\"")
 * and returns false. */
bool fe_hf_read(const char *file, const char *src, size_t len, fe_hf_config *cfg, diag *d);

/* fe_hf_param_count: the exact number of parameters of the model *cfg
 * describes, by arithmetic on the config; -1 if it overflows 64 bits. */
int64_t fe_hf_param_count(const fe_hf_config *cfg);

/* fe_hf_write: print *cfg as an sbpc `model NAME { ... }` plus a train section.
 * name must be an identifier ([A-Za-z_][A-Za-z0-9_]*); origin (may be NULL)
 * is shown in the header comment as the command that made the file. */
void fe_hf_write(const fe_hf_config *cfg, const char *name, const char *origin, FILE *out);

/* fe_hf_import: fe_hf_read then fe_hf_write; name NULL means the model_type.
 * Writes nothing on failure. */
bool fe_hf_import(const char *file, const char *src, size_t len, const char *name,
                  const char *origin, FILE *out, diag *d);

/* fe_hf_valid_name: whether s can name a model (an identifier, at most 64 bytes). */
bool fe_hf_valid_name(const char *s);
#endif
