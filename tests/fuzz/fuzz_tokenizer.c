/*
 * fuzz_tokenizer.c - any bytes through both tokenizer kinds: encode with
 * and without special tokens, then pieces and detokenisation of the ids.
 * The vocabularies are small ones built in memory at the first call (a
 * SentencePiece-style one with byte tokens, and a GPT-2 byte-level BPE one
 * with merges), so the fuzzer needs no files.
 */
#include "common.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ab_tok *spm, *bpe;

/* The GPT-2 alphabet: printable bytes map to themselves, the rest to
 * U+0100 onwards (in order). Writes the UTF-8 of byte b into out. */
static void gpt2_char(int b, char *out)
{
	static int map[256];
	static int ready;
	if (!ready) {
		int n = 0;
		for (int i = 0; i < 256; i++) {
			bool keep = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE);
			map[i] = keep ? i : 256 + n++;
		}
		ready = 1;
	}
	int cp = map[b];
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		out[2] = 0;
	}
}

static struct ab_tok *build(bool gpt2)
{
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	const char *toks[400];
	char store[400][16];
	float scores[400];
	int32_t types[400];
	int n = 0;
	if (!gpt2) {
		const char *base[] = {"<unk>", "<s>", "</s>"};
		for (int i = 0; i < 3; i++) {
			toks[n] = base[i];
			types[n] = i == 0 ? 2 : 3;
			scores[n++] = 0;
		}
		for (int b = 0; b < 256; b++) {
			snprintf(store[n], sizeof(store[n]), "<0x%02X>", b);
			toks[n] = store[n];
			types[n] = 6;
			scores[n++] = 0;
		}
		const char *words[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "c"};
		for (size_t i = 0; i < AB_ARRAY_LEN(words); i++) {
			toks[n] = words[i];
			types[n] = 1;
			scores[n++] = -(float)i;
		}
		ab_gguf_set_str(w, "tokenizer.ggml.model", "llama");
		ab_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
	} else {
		for (int b = 0; b < 256; b++) {
			gpt2_char(b, store[n]);
			toks[n] = store[n];
			types[n++] = 1;
		}
		toks[n] = "\xc4\xa0" "a"; /* " a" */
		types[n++] = 1;
		toks[n] = "<|endoftext|>";
		types[n++] = 3;
		const char *merges[] = {"\xc4\xa0 a"};
		ab_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
		ab_gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
		ab_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
		ab_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 1));
	}
	ab_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
	ab_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
	void *buf = NULL;
	size_t len = 0;
	struct ab_gguf *g = NULL;
	struct ab_tok *t = NULL;
	char err[256];
	if (ab_gguf_write_mem(w, &buf, &len) == 0 && ab_gguf_parse(buf, len, &g, err, sizeof(err)) == 0 &&
	    ab_tok_from_gguf(g, &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_tokenizer: vocab: %s\n", err);
		abort();
	}
	ab_gguf_free(g);
	free(buf);
	ab_gguf_writer_free(w);
	return t;
}

static void one(const struct ab_tok *t, const uint8_t *data, size_t size, bool special)
{
	int32_t ids[4096];
	int n = ab_tok_encode(t, (const char *)data, size, special, special, ids, 4096);
	if (n < 0)
		return;
	if (n > 4096)
		n = 4096;
	char buf[8192];
	for (int i = 0; i < n; i++)
		ab_tok_piece(t, ids[i], special, buf, sizeof(buf));
	ab_tok_decode(t, ids, n, buf, sizeof(buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!spm) {
		spm = build(false);
		bpe = build(true);
	}
	if (size > 8192)
		size = 8192;
	for (int k = 0; k < 2; k++) {
		one(spm, data, size, k);
		one(bpe, data, size, k);
	}
	return 0;
}
