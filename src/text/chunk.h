/*
 * chunk.h - cutting a document's text into sentences and into overlapping
 * chunks of about a target size, for the knowledge base: each chunk is
 * what gets indexed (BM25 and a vector) and later quoted to the LLM.
 *
 * Tokens here are words as a reader counts them: maximal runs of
 * non-space characters, except that each Han or kana character counts as
 * one token (those scripts have no spaces). An LLM tokenizer typically
 * makes 1.2 to 1.5 of its tokens per such word in English, so pick the
 * target size with that margin.
 *
 * Input: UTF-8 text of any bytes (invalid bytes never fail; they are left
 * out of chunk texts), optionally with
 *   - page boundaries: either form feeds ('\f', what pdftotext writes
 *     between pages) or an explicit list of page start offsets;
 *   - Markdown headings: ATX ("## Setup", in up to 3 spaces of indent,
 *     outside ``` or ~~~ fences) and setext (a one-line paragraph
 *     underlined with === or ---).
 *
 * Output rules:
 *   - a heading starts a new section; chunks never cross a section, and
 *     each carries its heading path ("Guide > Install > Linux"); the
 *     heading lines themselves are not part of any chunk text, so index
 *     "heading path + text" when the heading should be searchable;
 *   - chunks are whole sentences packed up to target_tokens; a sentence
 *     longer than the target alone is cut between words into pieces;
 *   - each chunk after the first of a section begins with the last whole
 *     sentences of the previous chunk that fit in overlap_tokens; when not
 *     even its last sentence fits, it begins with the previous chunk's last
 *     overlap_tokens words instead (then mid-sentence); the overlap is never
 *     more than overlap_tokens, and is cut so that the chunk stays within
 *     target_tokens (nothing is repeated when the next sentence alone
 *     fills the target);
 *   - a chunk's page is the page of its first byte, page_last that of its
 *     last (pages count from 1; a text without page breaks is all page 1).
 */
#ifndef AB_TEXT_CHUNK_H
#define AB_TEXT_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte range [start, end) of the input text. */
struct ab_text_span {
	size_t start;
	size_t end;
};

/* Splits text into sentences: spans with no leading or trailing white
 * space, in order, covering every non-space byte of the text. A sentence
 * ends at . ! ? or an ellipsis (plus closing quotes and brackets) followed
 * by white space, unless the full stop ends a known abbreviation ("Dr.",
 * "e.g.", "Fig. 3") or an initial ("J. Smith") or the next word starts in
 * lower case; at a CJK full stop; at a blank line; and before a line that
 * starts a Markdown list item or table row. Returns the count and sets
 * *out to an array the caller frees with free() (NULL when 0). */
size_t ab_text_sentences(const char *text, size_t len, struct ab_text_span **out);

/* The number of tokens (as defined above) in text. */
size_t ab_text_count_tokens(const char *text, size_t len);

struct ab_chunk_params {
	uint32_t target_tokens;  /* 0 = 200 */
	uint32_t overlap_tokens; /* 0 = none; more than target/2 is cut to it */
	/* Explicit pages: page_starts[i] is the byte offset where page i + 1
	 * begins, ascending (page_starts[0] is normally 0; bytes before it
	 * count as page 1). NULL: form feeds separate the pages. */
	const size_t *page_starts;
	size_t npage_starts;
	bool no_headings; /* plain text: do not look for Markdown headings */
};

/* target 200, overlap 40, form feeds, headings on. */
void ab_chunk_params_default(struct ab_chunk_params *p);

struct ab_chunk {
	char *text;        /* the chunk's bytes, NUL-terminated, valid UTF-8 (form
			      feeds become newlines, invalid bytes are left out) */
	size_t len;        /* strlen(text) */
	size_t start, end; /* the byte range of the input it was copied from */
	char *heading;     /* heading path, levels joined by " > "; "" if none */
	uint32_t depth;    /* number of levels in heading */
	uint32_t page;     /* page of the first byte, from 1 */
	uint32_t page_last;
	uint32_t tokens;   /* overlap included */
	uint32_t overlap;  /* tokens at its start repeated from the previous chunk */
};

struct ab_chunks {
	struct ab_chunk *v;
	size_t n;
};

/* Chunks text (len bytes) with params p (NULL: the defaults). Returns 0
 * and sets *out, which the caller frees with ab_chunks_free (that frees
 * every text and heading in it too); AB_EINVAL for NULL arguments or page
 * starts that are not ascending. Text with no words gives zero chunks. */
int ab_chunk_text(const char *text, size_t len, const struct ab_chunk_params *p,
		  struct ab_chunks **out);
/* NULL is ignored. */
void ab_chunks_free(struct ab_chunks *c);

#endif
