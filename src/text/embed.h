/*
 * embed.h - the built-in embedder: a fixed-size, L2-normalised vector for
 * a text, with no model file, for the vector half of hybrid search when no
 * neural embedding model is configured.
 *
 * A vector is a hashed bag of features ("feature hashing"): the analysed
 * terms of the text (the analyzer of analyze.h: NFKC, case folding, stop
 * words, Snowball stems), pairs of neighbouring terms, and the character
 * n-grams of each word (its folded form before stemming, with boundary
 * marks, so "aerofoil" and "airfoils" share "foil" while their stems
 * differ). Each feature is hashed with a fixed seed to one of `dims`
 * coordinates and a sign, so the same text gives the same vector in every
 * process and on every machine, and collisions cancel out on average.
 *
 * Weights follow the classic "lnc.ltc" scheme of the SMART system:
 *   - document vectors (ab_embed_doc): sublinear term frequency
 *     (1 + ln tf), no collection statistics, cosine-normalised;
 *   - query vectors (ab_embed_query): 1 + ln tf times the term's idf,
 *     taken at query time from a callback (ab_embed_textidx_idf reads it
 *     from the BM25 index of the same knowledge base); a character n-gram
 *     inherits the idf of the word it comes from, a pair the mean of its
 *     two terms'.
 * Putting all corpus statistics on the query side is the answer to the
 * question of documents arriving one at a time: a stored document vector
 * never depends on what else was indexed, so it never goes stale and
 * never needs re-embedding when the corpus grows or shrinks, while every
 * query is weighted by the statistics of the moment. Without a callback
 * (NULL) queries are weighted like documents, which still works, only a
 * little less well on long questions.
 *
 * Defaults (ab_embed_params_default, measured by bench/text/run.sh):
 * 1024 dimensions, terms weight 1, character 3- to 5-grams weight 1 per
 * word, no term pairs (they made every collection slightly worse). The
 * dimension is a trade: hashing collisions are noise, and at 512 the
 * vector half of hybrid search lost to BM25 alone on Medline while 1024
 * helped on all four collections (4 KiB a vector in float32, 1 KiB with
 * the vector index's int8 quantisation).
 *
 * Changing the features, the hashing or the defaults changes every vector:
 * AB_EMBED_MODEL names this scheme, so a store can tell vectors made by
 * another version (and re-embed them) from its own.
 *
 * An embedder is immutable after ab_embed_new, so any number of threads
 * may use one at the same time.
 */
#ifndef AB_TEXT_EMBED_H
#define AB_TEXT_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AB_EMBED_MODEL "autobot-hash-v1"
#define AB_EMBED_DIMS_DEFAULT 1024
#define AB_EMBED_DIMS_MAX 8192

struct ab_embed_params {
	uint32_t dims;     /* 16..AB_EMBED_DIMS_MAX */
	bool stem;         /* must match the text index whose idf queries use */
	bool stopwords;
	float w_term;      /* weight of a term feature */
	float w_pair;      /* of a pair of consecutive terms, stop words skipped (0: none) */
	float w_ngram;     /* of all the n-grams of one word together (0: none) */
	uint32_t ngram_min; /* character n-gram sizes, in code points (3..8) */
	uint32_t ngram_max;
};

/* The defaults, which `autobot kb eval` reports with. */
void ab_embed_params_default(struct ab_embed_params *p);

struct ab_embedder; /* opaque, immutable */

/* 0 or AB_EINVAL (a field out of range); p NULL = the defaults. The caller
 * frees *out with ab_embed_free. */
int ab_embed_new(const struct ab_embed_params *p, struct ab_embedder **out);
void ab_embed_free(struct ab_embedder *e); /* NULL is ignored */
uint32_t ab_embed_dims(const struct ab_embedder *e);
void ab_embed_get_params(const struct ab_embedder *e, struct ab_embed_params *p);

/* Writes the document vector of text (len bytes, any bytes) into out
 * (ab_embed_dims floats, the caller's). Returns the number of distinct
 * features, or AB_EINVAL; 0 means the text has no words left after
 * analysis and out is all zeros: do not index such a vector. */
int ab_embed_doc(const struct ab_embedder *e, const char *text, size_t len, float *out);

/* idf of an analysed term (as the analyzer with the embedder's stem and
 * stopwords settings produces it); called during ab_embed_query only. */
typedef double (*ab_embed_idf_fn)(const char *term, size_t len, void *ctx);

/* Writes the query vector of text into out, weighting each feature by
 * idf(term, ctx) when idf is not NULL. Same returns as ab_embed_doc. */
int ab_embed_query(const struct ab_embedder *e, const char *text, size_t len,
		   ab_embed_idf_fn idf, void *ctx, float *out);

/* An ab_embed_idf_fn reading ab_textidx_idf of the struct ab_textidx in
 * ctx, which the caller holds under its read lock during the call. */
double ab_embed_textidx_idf(const char *term, size_t len, void *ctx);

/* The cosine similarity of two vectors of n floats (their dot product when
 * both are normalised, as the embedder's are). */
float ab_embed_cosine(const float *a, const float *b, uint32_t n);

#endif
