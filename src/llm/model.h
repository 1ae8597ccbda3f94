/*
 * model.h - a loaded llama-family model and the forward pass over it.
 *
 * ab_llm_model is immutable after loading and shared by any number of
 * contexts; the weights stay in the mapped file (no copy). ab_llm_ctx
 * holds one sequence's KV cache (float32, sized for n_ctx tokens) and
 * scratch buffers; one thread uses a context at a time.
 */
#ifndef AB_MODEL_H
#define AB_MODEL_H

#include "gguf.h"
#include "quant.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ab_llm_hparams {
	char arch[32];        /* "llama", "mistral", "qwen2" */
	char name[128];       /* general.name or the file name */
	int n_vocab;
	int n_embd;
	int n_layer;
	int n_head;
	int n_head_kv;
	int n_ff;
	int n_ctx_train;
	int n_rot;            /* rope dimensions (head_dim unless set) */
	float rope_freq_base;
	float rope_freq_scale; /* 1 / linear scaling factor */
	float rms_eps;
	bool tied_output;     /* no output.weight: logits use token_embd */
	bool qkv_bias;        /* qwen2 */
	uint32_t file_type;   /* the dominant weight type (enum ab_type) */
};

struct ab_llm_model;

struct ab_llm_load_opts {
	const char *tokenizer_path;  /* llama2.c models: tokenizer.bin; NULL = next to it */
	size_t mem_budget;           /* refuse if weights + one context of n_ctx exceed; 0 = MemAvailable */
	int n_ctx;                   /* for the memory check; 0 = min(n_ctx_train, 4096) */
};

/* Loads a .gguf file or a llama2.c checkpoint (.bin). Returns 0, or a
 * negative code with a message in err (unsupported architecture or tensor
 * type, missing tensor, shape mismatch, "needs 5.1 GiB, 3.2 GiB available"). */
int ab_llm_model_load(const char *path, const struct ab_llm_load_opts *o,
		      struct ab_llm_model **out, char *err, size_t errlen);
void ab_llm_model_free(struct ab_llm_model *m);
const struct ab_llm_hparams *ab_llm_model_hparams(const struct ab_llm_model *m);
const struct ab_tok *ab_llm_model_tok(const struct ab_llm_model *m);
/* The GGUF the model came from (NULL for llama2.c checkpoints). */
const struct ab_gguf *ab_llm_model_gguf(const struct ab_llm_model *m);
/* Contexts created after this call keep the attention keys and values as
 * F16 (on) or float32 (off, the default): half the cache's memory and the
 * attention's memory traffic, llama.cpp's default; logits move by float16
 * rounding of K and V (the engine's reference tests run with float32).
 * ab_llm_kv_f16_default() is what the CLI and the llm role use: F16
 * unless the weights are F32. */
void ab_llm_model_set_kv_f16(struct ab_llm_model *m, bool on);
bool ab_llm_kv_f16_default(const struct ab_llm_model *m);
/* On (the default), head sizes 8..128 take the fused attention kernels;
 * off, every head size takes the plain row-at-a-time path. Both give the
 * same bits (the tests check it); off exists to check that. */
void ab_llm_model_set_fused_attention(struct ab_llm_model *m, bool on);
/* Bytes of weights, and of one context of n_ctx tokens (KV + scratch). */
size_t ab_llm_model_weight_bytes(const struct ab_llm_model *m);
size_t ab_llm_ctx_bytes(const struct ab_llm_model *m, int n_ctx, int n_batch);

struct ab_llm_ctx;
/* n_ctx <= 0 means min(n_ctx_train, 4096). n_threads <= 0 picks by model size. */
int ab_llm_ctx_new(struct ab_llm_model *m, int n_ctx, int n_threads, struct ab_llm_ctx **out,
		   char *err, size_t errlen);
void ab_llm_ctx_free(struct ab_llm_ctx *c);
int ab_llm_ctx_n_ctx(const struct ab_llm_ctx *c);
/* Prompts are evaluated in chunks of at most n tokens (1 .. the default,
 * 128 or n_ctx if smaller: the scratch buffers are sized at creation);
 * AB_EINVAL otherwise. Results do not depend on it (tests use it to
 * check exactly that). */
int ab_llm_ctx_set_n_batch(struct ab_llm_ctx *c, int n);
/* Tokens in the KV cache (the next position). */
int ab_llm_ctx_pos(const struct ab_llm_ctx *c);
/* Drops cached tokens from position pos on (0 = all). */
void ab_llm_ctx_truncate(struct ab_llm_ctx *c, int pos);

/*
 * Runs n tokens at positions pos..pos+n-1 (pos must equal the context's
 * current position) as one batch and appends them to the KV cache.
 * Writes the logits of the last token to logits (n_vocab floats) and, if
 * all_logits is not NULL, of every token (n * n_vocab). Returns 0, or
 * AB_ETOOBIG (with nothing changed) when pos + n exceeds n_ctx.
 */
int ab_llm_eval(struct ab_llm_ctx *c, const int32_t *tokens, int n, float *logits,
		float *all_logits);

/* Debug hook for tests: when set, called with the named hidden states of
 * llama.cpp (attn_norm-<il>, kqv_out-<il>, ffn_inp-<il>, ffn_norm-<il>,
 * l_out-<il>, result_norm) as [n_tokens x n_embd] float arrays. */
typedef void (*ab_llm_hidden_cb)(void *ud, const char *name, const float *data, int n_tokens,
				 int n_embd);
void ab_llm_ctx_set_hidden_cb(struct ab_llm_ctx *c, ab_llm_hidden_cb cb, void *ud);

#endif
