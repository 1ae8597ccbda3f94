/*
 * textidx.h - an inverted index of short documents (knowledge-base chunks)
 * ranked with BM25. Text goes through the analyzer of src/text (Unicode
 * tokenising, NFKC + case folding, stop words, Snowball English stemming,
 * each switchable) both when added and when searched.
 *
 * The engine knows nothing of Redis: the module (src/redismod) keeps one
 * struct ab_textidx per text-index key. Each document is named by a byte
 * string id and carries the caller's opaque `value` pointer.
 *
 * Locking contract: the engine takes no locks. Any number of searches and
 * walks may run at the same time; add, del and restore need the index to
 * themselves (the caller holds a read-write lock).
 *
 * Ranking: Okapi BM25 summed over the distinct analysed query terms, each
 * counted as often as it occurs in the query:
 *   idf = ln(1 + (N - df + 0.5) / (df + 0.5))   (Lucene's, never negative)
 *   score = sum of qtf * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl))
 * where len is a document's length in analysed terms (stop words not
 * counted) and avgdl the mean over the index at search time.
 */
#ifndef AB_TEXTIDX_H
#define AB_TEXTIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ab_textidx_params {
	float k1;       /* 0 = 1.2 */
	float b;        /* < 0 = 0.75 (0 is a valid b) */
	bool stem;      /* Snowball English */
	bool stopwords; /* drop the English stop list */
};

struct ab_textidx; /* opaque */
struct ab_textdoc; /* opaque; valid until deleted or the index is freed */

struct ab_text_hit {
	const struct ab_textdoc *doc;
	double score;
};

/* Fills p with the defaults (the ones `autobot kb eval` reports with):
 * k1 1.2, b 0.75, stemming and stop words on. bench/text/run.sh measures
 * them on four IR collections. */
void ab_textidx_params_default(struct ab_textidx_params *p);
/* 0 or AB_EINVAL; the caller frees *out with ab_textidx_free. */
int ab_textidx_new(const struct ab_textidx_params *p, struct ab_textidx **out);
/* Frees everything; free_value (if not NULL) gets each document's value. */
void ab_textidx_free(struct ab_textidx *x, void (*free_value)(void *value));

/* Adds document id (id_len bytes, any bytes) with text (UTF-8; invalid bytes
 * are skipped, never an error). If id exists it is replaced and its old
 * value is stored in *old_value (else *old_value = NULL) for the caller to
 * free. Returns 1 when added, 0 when replaced; AB_EINVAL for NULL
 * pointers with lengths, AB_ETOOBIG for a text of 4 GiB or more or an
 * index of 2^32 - 2 documents (the index is then unchanged). The index
 * copies id and text; value stays the caller's. */
int ab_textidx_add(struct ab_textidx *x, const char *id, size_t id_len, const char *text,
		   size_t text_len, void *value, void **old_value);
/* Removes id and all its postings: 1 and *value = its value (for the
 * caller to free; value may be NULL), or 0 when absent. A term left with no
 * document leaves the index. */
int ab_textidx_del(struct ab_textidx *x, const char *id, size_t id_len, void **value);
/* The document named id, or NULL; it belongs to the index. */
struct ab_textdoc *ab_textidx_get(const struct ab_textidx *x, const char *id, size_t id_len);

typedef bool (*ab_text_filter_fn)(void *value, void *ctx);
/* The k best documents for query by BM25, best first (ties by id bytes),
 * only those the filter accepts (NULL = all), into hits (the caller's
 * array of k entries; the docs in it belong to the index). Returns how
 * many (0..k; only documents holding a query term score), or AB_EINVAL.
 * The filter is called from the searching thread, only for documents that
 * would enter the top k. Safe to run concurrently with other searches: it
 * allocates its own scratch (4 bytes per document slot). */
int ab_textidx_search(const struct ab_textidx *x, const char *query, size_t query_len, size_t k,
		      ab_text_filter_fn filter, void *ctx, struct ab_text_hit *hits);

/* BM25's idf of an analysed term (as the analyzer of this index's params
 * produces it, e.g. "aerodynam" with stemming): ln(1 + (N - df + 0.5) /
 * (df + 0.5)); a term absent from the index has df 0. The built-in
 * embedder weights query features with it (embed.h). Read-only, like a
 * search. */
double ab_textidx_idf(const struct ab_textidx *x, const char *term, size_t len);
/* How many documents hold the analysed term. */
uint64_t ab_textidx_df(const struct ab_textidx *x, const char *term, size_t len);

uint64_t ab_textidx_count(const struct ab_textidx *x);
uint64_t ab_textidx_terms(const struct ab_textidx *x); /* distinct terms */
size_t ab_textidx_memory(const struct ab_textidx *x);
void ab_textidx_get_params(const struct ab_textidx *x, struct ab_textidx_params *p);

const char *ab_textdoc_id(const struct ab_textdoc *d, size_t *len);
void *ab_textdoc_value(const struct ab_textdoc *d);
void ab_textdoc_set_value(struct ab_textdoc *d, void *value);
uint32_t ab_textdoc_length(const struct ab_textdoc *d); /* terms after analysis */

/* Walks every document (order unspecified, stable while unchanged). */
struct ab_textdoc *ab_textidx_first(const struct ab_textidx *x);
struct ab_textdoc *ab_textidx_next(const struct ab_textidx *x, const struct ab_textdoc *d);

/* Persistence (the module's RDB): a document is saved as its id, length and
 * analysed terms with their frequencies, so loading needs no re-analysis.
 * ab_textdoc_terms calls fn once per distinct term (order unspecified);
 * term points into the index, valid during the call. */
typedef void (*ab_textdoc_term_fn)(const char *term, size_t term_len, uint32_t tf, void *ctx);
void ab_textdoc_terms(const struct ab_textidx *x, const struct ab_textdoc *d,
		      ab_textdoc_term_fn fn, void *ctx);
/* Restores one saved document into an index made with the saved params.
 * Returns 0, or AB_EPROTO for an inconsistent record (duplicate id, zero tf,
 * empty or NULL term, a term longer than AB_TEXT_TERM_MAX (64) bytes, the
 * same term twice, tfs not summing to length, NULL arrays with nterms > 0):
 * the input comes from a file. A refused record leaves the index as it
 * was. Terms and id are copied; value stays the caller's. */
int ab_textidx_restore_doc(struct ab_textidx *x, const char *id, size_t id_len, uint32_t length,
			   const char *const *terms, const size_t *term_lens, const uint32_t *tfs,
			   size_t nterms, void *value);

#endif
