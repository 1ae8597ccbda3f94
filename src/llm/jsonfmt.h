/*
 * jsonfmt.h - constrained generation of JSON (Ollama's "format": "json",
 * OpenAI's response_format json_object): an incremental validator that
 * says whether some bytes keep a text a valid prefix of a JSON document
 * (RFC 8259), and a per-vocabulary table of token bytes with which the
 * logits of the tokens that would break the document are masked before
 * the sampler picks one. Nothing here knows about a model or HTTP: only
 * bytes, token ids and logits.
 */
#ifndef AB_JSONFMT_H
#define AB_JSONFMT_H

#include "tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Containers open at once, at most. */
#define AB_JSONFMT_MAX_DEPTH 64
/* Consecutive white-space bytes between tokens of the document (outside
 * strings), at most: room for "\n" plus a small indent, not for a model
 * that pads forever. */
#define AB_JSONFMT_MAX_WS 4
/* Bytes of one number, at most (a sign, digits, fraction and exponent). */
#define AB_JSONFMT_MAX_NUMBER 32
/* Digits of an exponent, at most (1e99: every number fits a double). */
#define AB_JSONFMT_MAX_EXP_DIGITS 2

/* Flags of ab_jsonfmt_init. */
enum {
	/* Any JSON value at the top level ("1", "[]", "\"x\""); without it
	 * the document must be an object, which is what format json means
	 * to its users. */
	AB_JSONFMT_ANY_VALUE = 1,
};

/*
 * The validator's state: small and plain, so that a copy is an
 * assignment (the masking tries every candidate token on a copy). Treat
 * the fields as private.
 */
struct ab_jsonfmt {
	uint64_t stack;   /* bit d: the container at depth d+1 is an object */
	uint64_t n;       /* bytes accepted so far */
	uint32_t cp;      /* \u escape being read; a pending high surrogate */
	uint8_t depth;    /* containers open */
	uint8_t state;    /* where in the grammar (jsonfmt.c) */
	uint8_t aux;      /* literal position, hex digits, UTF-8 bytes left, number length */
	uint8_t lo, hi;   /* range of the next UTF-8 continuation byte */
	uint8_t ws;       /* white space run */
	uint8_t lit;      /* which literal (true, false, null); exponent digits */
	uint8_t flags;    /* bit 0: ANY_VALUE; bit 1: in a key; bit 2: a low surrogate is due */
};

void ab_jsonfmt_init(struct ab_jsonfmt *j, unsigned flags);
/* Feeds len bytes. 0 when the text so far is still a prefix of a valid
 * document; AB_EJSON when a byte breaks it (or it is too deep, or white
 * space or a number is too long): then the state is dead, every later
 * feed fails, and ab_jsonfmt_offset says which byte it was. */
int ab_jsonfmt_feed(struct ab_jsonfmt *j, const void *bytes, size_t len);
/* The text so far is a whole document (possibly with trailing white
 * space). A top-level number is complete once it could end. */
bool ab_jsonfmt_complete(const struct ab_jsonfmt *j);
/* Bytes accepted; after a failure, the offset of the byte that failed. */
uint64_t ab_jsonfmt_offset(const struct ab_jsonfmt *j);
/* The fewest bytes that would complete the document from here (0 when
 * complete, -1 when dead). */
int ab_jsonfmt_remaining(const struct ab_jsonfmt *j);
/* Whether bytes would be accepted after the text so far (j unchanged). */
bool ab_jsonfmt_accepts(const struct ab_jsonfmt *j, const void *bytes, size_t len);

/*
 * The bytes of every token of a vocabulary, computed once per loaded
 * model (ab_tok_piece without control texts). Tokens that give no bytes
 * (control, unknown, unused) are never allowed; end-of-generation tokens
 * only once the document is complete.
 */
struct ab_jsonfmt_vocab;
struct ab_jsonfmt_vocab *ab_jsonfmt_vocab_new(const struct ab_tok *t);
void ab_jsonfmt_vocab_free(struct ab_jsonfmt_vocab *v);
int ab_jsonfmt_vocab_size(const struct ab_jsonfmt_vocab *v);
/* Whether token id may come next after the text of j. */
bool ab_jsonfmt_token_ok(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, int32_t id);

/*
 * Masks logits (ab_jsonfmt_vocab_size of them) for the next token: the
 * window tokens with the highest logits are tried, and the valid ones
 * among them keep their logits while every other token gets -INFINITY;
 * when none of them is valid the whole vocabulary is scanned instead. budget (> 0) is how many tokens may still be
 * generated, this one included: then only tokens after which the
 * document can be completed within the rest are kept, if there are any
 * (INT32_MAX or <= 0: no budget). Returns how many tokens kept their
 * logits (0: no token can continue the document; logits are unchanged).
 */
int ab_jsonfmt_mask(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, float *logits,
		    int window, int budget);

#endif
