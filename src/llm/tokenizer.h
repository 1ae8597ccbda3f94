/*
 * tokenizer.h - text <-> token ids for the two vocabularies of the llama
 * family: SentencePiece-style BPE with scores ("llama": llama 1/2,
 * llama2.c's tokenizer.bin) and GPT-2 byte-level BPE with merges ("gpt2":
 * llama 3, qwen2). Special tokens (control tokens such as <s>, <|eot_id|>)
 * are recognised in text only when parse_special is set.
 */
#ifndef AB_TOKENIZER_H
#define AB_TOKENIZER_H

#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ab_tok_kind { AB_TOK_SPM = 1, AB_TOK_BPE = 2 };

/* GGUF token types (tokenizer.ggml.token_type). */
enum ab_tok_attr {
	AB_TOKT_NORMAL = 1,
	AB_TOKT_UNKNOWN = 2,
	AB_TOKT_CONTROL = 3,
	AB_TOKT_USER_DEFINED = 4,
	AB_TOKT_UNUSED = 5,
	AB_TOKT_BYTE = 6,
};

struct ab_tok;

/* From the tokenizer.* keys of a GGUF file (tokens, scores, token_type,
 * merges, bos/eos/unk ids, add_bos_token, pre). 0 or a negative code with
 * a message in err. The tokenizer copies what it needs: g may be freed. */
int ab_tok_from_gguf(const struct ab_gguf *g, struct ab_tok **out, char *err, size_t errlen);
/* From a llama2.c tokenizer.bin (max_token_length, then per token: float
 * score, int32 length, bytes) with vocab_size entries; BOS 1, EOS 2. */
int ab_tok_from_llama2c(const char *path, int vocab_size, struct ab_tok **out, char *err,
			size_t errlen);
void ab_tok_free(struct ab_tok *t);

enum ab_tok_kind ab_tok_kind(const struct ab_tok *t);
int ab_tok_n_vocab(const struct ab_tok *t);
int32_t ab_tok_bos(const struct ab_tok *t);   /* -1 if none */
int32_t ab_tok_eos(const struct ab_tok *t);
bool ab_tok_add_bos(const struct ab_tok *t);  /* as llama.cpp resolves it */
/* End of generation: EOS, EOT (<|eot_id|>, <|im_end|>, <end_of_turn>...). */
bool ab_tok_is_eog(const struct ab_tok *t, int32_t id);
/* Id of an exact token text, or -1 (for chat templates: "<|im_end|>"). */
int32_t ab_tok_lookup(const struct ab_tok *t, const char *text);

/*
 * Encodes len bytes of UTF-8 text. add_special prepends BOS when the
 * vocabulary says so (and appends EOS when it says so); parse_special
 * turns control-token texts in the input into their ids. Writes at most
 * max ids and returns how many the text needs (call again with a bigger
 * buffer if that is more than max), or a negative code.
 */
int ab_tok_encode(const struct ab_tok *t, const char *text, size_t len, bool add_special,
		  bool parse_special, int32_t *out, int max);
/* Bytes of one token as text (byte tokens <0x0A> give the byte; the SPM
 * word marker U+2581 gives a space; BPE byte-level symbols are mapped
 * back to bytes). Control tokens give their text when special is set,
 * else nothing. Returns the length written (bounded by size). */
int ab_tok_piece(const struct ab_tok *t, int32_t id, bool special, char *buf, size_t size);
/* Detokenizes n ids into buf (NUL-terminated, bounded); like
 * llama_detokenize: SPM drops the leading space of the first piece when
 * the text starts after BOS. Returns the full length. */
int ab_tok_decode(const struct ab_tok *t, const int32_t *ids, int n, char *buf, size_t size);

#endif
