/*
 * bert.h - BERT-family text encoders (sentence-embedding models) from
 * GGUF files: architecture "bert" (all-MiniLM, bge, e5...: learned
 * positions, GELU) and "nomic-bert" (nomic-embed-text: rotary positions,
 * SwiGLU), with their WordPiece tokenizer (wordpiece.h). A text goes in,
 * one pooled, L2-normalised vector of n_embd floats comes out.
 *
 * ab_bert is immutable after loading and shared by any number of
 * contexts; the weight matrices stay in the mapped file. ab_bert_ctx
 * holds the scratch buffers of one encoding; one thread uses a context
 * at a time.
 */
#ifndef AB_BERT_H
#define AB_BERT_H

#include "gguf.h"
#include "wordpiece.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* <arch>.pooling_type, as llama.cpp numbers it (0 "none" and an absent
 * key are taken as mean; 4 "rank" is refused: a reranker, not an
 * embedding model). */
enum ab_bert_pooling {
	AB_BERT_POOL_MEAN = 1, /* average of every token's final state, [CLS] and [SEP] included */
	AB_BERT_POOL_CLS = 2,  /* the first token's ([CLS]) */
	AB_BERT_POOL_LAST = 3, /* the last token's */
};

struct ab_bert_hparams {
	char arch[32];         /* "bert" or "nomic-bert" */
	char name[128];        /* general.name or the file name */
	int n_vocab;           /* rows of token_embd */
	int n_embd;
	int n_layer;
	int n_head;
	int n_ff;
	int n_ctx_train;       /* longest input in tokens ([CLS] and [SEP] included) */
	int n_rot;             /* nomic-bert: rotary dimensions per head */
	float eps;             /* <arch>.attention.layer_norm_epsilon */
	float rope_freq_base;  /* nomic-bert */
	enum ab_bert_pooling pooling;
	bool rope;             /* rotary positions (nomic-bert) instead of position_embd */
	bool gated_ffn;        /* SwiGLU feed-forward (nomic-bert) instead of GELU */
	bool fused_qkv;        /* blk.N.attn_qkv instead of attn_q/k/v */
	uint32_t file_type;    /* the dominant type of the layer matrices (enum ab_type) */
};

struct ab_bert_load_opts {
	size_t mem_budget;     /* refuse if weights + one context exceed; 0 = MemAvailable */
	int n_ctx;             /* for the memory check; 0 = n_ctx_train */
};

/* true for the general.architecture values this module runs. */
bool ab_bert_arch_supported(const char *arch);
/* 1 if path is a GGUF file of a supported encoder architecture, 0 if it
 * is anything else (another GGUF architecture, a llama2.c checkpoint),
 * or a negative code if it cannot be read. */
int ab_bert_probe(const char *path);

struct ab_bert;

/*
 * Loads a GGUF encoder. Every tensor the graph uses is checked for
 * presence, shape and a type the kernels support (F32, F16, BF16, Q8_0,
 * Q4_0, Q4_K, Q6_K) before anything is allocated. Returns 0 and the model
 * in *out (the caller frees it with ab_bert_free, after every context of
 * it), or a negative code with a message in err (unsupported
 * architecture or pooling, missing tensor, shape mismatch, too big for
 * the memory budget, no WordPiece vocabulary).
 */
int ab_bert_load(const char *path, const struct ab_bert_load_opts *o, struct ab_bert **out,
		 char *err, size_t errlen);
void ab_bert_free(struct ab_bert *m);
const struct ab_bert_hparams *ab_bert_hparams(const struct ab_bert *m);
/* The model's tokenizer and file; they live as long as m. */
const struct ab_wpm *ab_bert_tok(const struct ab_bert *m);
const struct ab_gguf *ab_bert_gguf(const struct ab_bert *m);
size_t ab_bert_weight_bytes(const struct ab_bert *m);
/* Bytes of a context's scratch for inputs of up to n_ctx tokens. */
size_t ab_bert_ctx_bytes(const struct ab_bert *m, int n_ctx);

/*
 * [CLS] pieces [SEP] of len bytes of text, the pieces cut so that the
 * whole fits in max tokens (max >= 2; the end of a long text is dropped,
 * [SEP] is kept). Writes to out (max ids) and returns how many were
 * written; *n_full (may be NULL) gets the length before truncation.
 * A negative code for max < 2 or a text over the tokenizer's limit.
 */
int ab_bert_tokenize(const struct ab_bert *m, const char *text, size_t len, int32_t *out,
		     int max, int *n_full);

struct ab_bert_ctx;
/* A context for inputs of up to n_ctx tokens (<= 0 or more than the
 * model's context: n_ctx_train); n_threads <= 0 picks by model size.
 * The caller frees it with ab_bert_ctx_free, before the model. Scratch
 * is allocated as inputs need it. */
int ab_bert_ctx_new(struct ab_bert *m, int n_ctx, int n_threads, struct ab_bert_ctx **out,
		    char *err, size_t errlen);
void ab_bert_ctx_free(struct ab_bert_ctx *c);
int ab_bert_ctx_n_ctx(const struct ab_bert_ctx *c);

/*
 * Runs the encoder over n token ids (1 <= n <= n_ctx, every id below
 * n_vocab) as one batch and writes the pooled, L2-normalised embedding to
 * embd (n_embd floats; may be NULL) and, when hidden is not NULL, the
 * final hidden state of every token (n * n_embd floats, before pooling).
 * Returns 0, AB_EINVAL (bad ids or n < 1) or AB_ETOOBIG (n > n_ctx).
 */
int ab_bert_encode(struct ab_bert_ctx *c, const int32_t *tokens, int n, float *embd,
		   float *hidden);
/* Tokenises text (truncated to the context, as ab_bert_tokenize) and
 * encodes it into embd (n_embd floats). *n_tokens (may be NULL) gets the
 * number of tokens evaluated, *truncated (may be NULL) whether the text
 * was cut. Returns 0 or a negative code. */
int ab_bert_embed(struct ab_bert_ctx *c, const char *text, size_t len, float *embd,
		  int *n_tokens, bool *truncated);

#endif
