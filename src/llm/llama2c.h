/*
 * llama2c.h - Karpathy's llama2.c checkpoint format (model .bin plus
 * tokenizer.bin), converted to GGUF so that the rest of the engine only
 * ever reads one format.
 *
 * A checkpoint is a header of seven int32 (dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means
 * separate classifier weights follow) and then float32 weights in a
 * fixed order. The conversion produces llama-architecture metadata and
 * F32 tensors named as llama.cpp names them, with the vocabulary from the
 * tokenizer.bin as tokenizer.ggml.* keys.
 */
#ifndef AB_LLAMA2C_H
#define AB_LLAMA2C_H

#include "gguf.h"

#include <stddef.h>

/* Reads bin_path and tok_path and builds a writer holding the whole model
 * (*out; free with ab_gguf_writer_free). 0, or a negative code with a
 * message in err (size mismatch, bad header, unreadable files). */
int ab_llama2c_to_gguf(const char *bin_path, const char *tok_path, struct ab_gguf_writer **out,
		       char *err, size_t errlen);

/* The same conversion, then parsed back: *out points into *buf (which the
 * caller frees after ab_gguf_free(*out)). For loaders that want an
 * ab_gguf without a file on disk. */
int ab_llama2c_load(const char *bin_path, const char *tok_path, struct ab_gguf **out, void **buf,
		    char *err, size_t errlen);

/* Adds the tokenizer.* keys of a llama2.c tokenizer.bin to w: vocab
 * tokens, or every token in the file when vocab <= 0. Returns the number
 * of tokens, or a negative code with a message in err. */
int ab_llama2c_add_vocab(struct ab_gguf_writer *w, const char *tok_path, int vocab, char *err,
			 size_t errlen);

#endif
