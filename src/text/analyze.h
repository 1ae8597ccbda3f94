/*
 * analyze.h - the text analyzer shared by the BM25 index (textidx.h) and
 * the built-in embedder (embed.h): UTF-8 text in, a stream of terms out.
 *
 * Steps, in order:
 *   1. invalid UTF-8 bytes and NULs are dropped (never an error);
 *   2. Unicode NFKC with case folding (utf8proc): full-width letters,
 *      ligatures, superscripts and the like become their plain forms and
 *      "Straße" folds to "strasse";
 *   3. words are maximal runs of letters, digits and combining marks;
 *      every other code point separates words, except that each Han, kana
 *      or other spaceless-script ideograph is a word of its own; a word
 *      longer than AB_TEXT_TERM_MAX bytes is dropped (hashes, base64);
 *   4. stop words (the English list in stopwords.c) are dropped when
 *      asked for;
 *   5. Snowball English stemming (libstemmer) when asked for.
 *
 * An analyzer is a small per-call object: it holds its own Snowball
 * stemmer (libstemmer's objects are not thread-safe, and making one costs
 * about a microsecond) and scratch buffers, so two threads never share
 * one. Put one on the stack, ab_analyzer_init, use it for any number of
 * texts, ab_analyzer_release.
 */
#ifndef AB_TEXT_ANALYZE_H
#define AB_TEXT_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest term kept, in bytes of folded UTF-8. */
#define AB_TEXT_TERM_MAX 64

struct sb_stemmer;

struct ab_analyzer {
	bool stem;
	bool stopwords;
	struct sb_stemmer *stemmer; /* made on first use */
	char *clean;                /* scratch: the text with invalid bytes dropped */
	size_t clean_cap;
};

/* One term handed to the callback. `term` is what is indexed (folded,
 * stemmed when stemming is on); `word` is the folded word before stemming.
 * Both point into the analyzer's scratch and are valid during the call
 * only. `pos` counts the words of the text from 0, stop words included,
 * so that two terms are adjacent in the text when their pos differ by 1. */
struct ab_term {
	const char *term;
	size_t term_len;
	const char *word;
	size_t word_len;
	uint32_t pos;
};

typedef void (*ab_term_fn)(const struct ab_term *t, void *ctx);

void ab_analyzer_init(struct ab_analyzer *a, bool stem, bool stopwords);
/* Frees the stemmer and the scratch; a may be reused after another init. */
void ab_analyzer_release(struct ab_analyzer *a);

/* Runs text (len bytes, any bytes) through the steps above and calls fn
 * for every term kept, in text order. Returns the number of terms kept. */
size_t ab_analyze(struct ab_analyzer *a, const char *text, size_t len, ab_term_fn fn,
		  void *ctx);

/* Whether word (folded, unstemmed) is on the English stop list. */
bool ab_text_is_stopword(const char *word, size_t len);
/* Entry i of the stop list (sorted bytewise), or NULL past its end: for
 * tests and documentation. */
const char *ab_text_stopword(size_t i);

#endif
