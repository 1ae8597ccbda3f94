/*
 * wordpiece.h - the WordPiece tokenizer of BERT-family encoders
 * (tokenizer.ggml.model = "bert" in GGUF files: all-MiniLM, bge,
 * nomic-embed-text). Text -> ids only: embedding models never decode.
 */
#ifndef AB_WORDPIECE_H
#define AB_WORDPIECE_H

#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest word (in code points) that is split into pieces; a longer one
 * is a single [UNK], as in Hugging Face's WordPiece. */
#define AB_WPM_MAX_WORD_CHARS 100

struct ab_wpm;

/*
 * From the tokenizer.* keys of a GGUF file: tokenizer.ggml.model must be
 * "bert"; tokens (llama.cpp's "phantom space" form, or Hugging Face's
 * "##" form), token_type, and the ids of [CLS] (cls_token_id, else
 * bos_token_id, else the token "[CLS]"), [SEP] (seperator_token_id, else
 * eos_token_id, else "[SEP]") and [UNK] (unknown_token_id, else "[UNK]").
 * 0 or a negative code with a message in err. The tokenizer copies what
 * it needs: g may be freed afterwards. Free with ab_wpm_free().
 */
int ab_wpm_from_gguf(const struct ab_gguf *g, struct ab_wpm **out, char *err, size_t errlen);
void ab_wpm_free(struct ab_wpm *t);

int ab_wpm_n_vocab(const struct ab_wpm *t);
int32_t ab_wpm_cls(const struct ab_wpm *t);
int32_t ab_wpm_sep(const struct ab_wpm *t);
int32_t ab_wpm_unk(const struct ab_wpm *t);
/* true when the vocabulary has no upper-case letters: text is then
 * lower-cased and stripped of accents before splitting. */
bool ab_wpm_uncased(const struct ab_wpm *t);
/* The token's text as stored in the file (not NUL-terminated: *len
 * bytes; the pointer lives as long as t), or NULL if id is out of range. */
const char *ab_wpm_token(const struct ab_wpm *t, int32_t id, size_t *len);

/*
 * Encodes len bytes of UTF-8 text (invalid bytes are dropped): Bert
 * normalisation (control characters removed, white space unified, CJK
 * ideographs made words of their own, and for an uncased vocabulary
 * lower-casing and accent stripping), splitting at white space and
 * punctuation, then greedy longest-match pieces per word ("##"
 * continuations); a word that cannot be covered is one [UNK]. With
 * add_special the ids are [CLS] ... [SEP]. Writes at most max ids and
 * returns how many the text needs (the first max of them are written:
 * call again with a bigger buffer if that is more), or AB_ETOOBIG for a
 * text over 256 MiB.
 */
int ab_wpm_encode(const struct ab_wpm *t, const char *text, size_t len, bool add_special,
		  int32_t *out, int max);

#endif
