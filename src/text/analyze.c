/*
 * analyze.c - the text analyzer (analyze.h): UTF-8 clean-up, NFKC with
 * case folding through utf8proc, word splitting by Unicode category, the
 * stop list and Snowball English stemming.
 *
 * The text is cut into segments at ASCII white space, which no
 * normalisation joins across. A segment of pure ASCII (most of English
 * text) is split and lower-cased directly. Any other segment goes through
 * utf8proc: it refuses a whole string when one byte is invalid, so the
 * segment is first copied into the analyzer's scratch with every invalid
 * byte dropped; utf8proc_map then normalises the clean copy, and the words
 * are cut from its output by Unicode category. The stemmer is created on
 * the first word that needs it and lives as long as the analyzer, which
 * belongs to one thread (see analyze.h).
 */
#include "analyze.h"

#include "common.h"

#include <libstemmer.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void ab_analyzer_init(struct ab_analyzer *a, bool stem, bool stopwords)
{
	memset(a, 0, sizeof(*a));
	a->stem = stem;
	a->stopwords = stopwords;
}

void ab_analyzer_release(struct ab_analyzer *a)
{
	if (a->stemmer)
		sb_stemmer_delete(a->stemmer);
	free(a->clean);
	a->stemmer = NULL;
	a->clean = NULL;
	a->clean_cap = 0;
}

/* Copies the valid UTF-8 sequences of text into a->clean; returns the
 * length of the copy. NUL becomes a space so that it still separates. */
static size_t sanitize(struct ab_analyzer *a, const char *text, size_t len)
{
	if (a->clean_cap < len + 1) {
		free(a->clean);
		a->clean_cap = len + 1;
		a->clean = ab_xmalloc(a->clean_cap);
	}
	const uint8_t *p = (const uint8_t *)text;
	size_t i = 0, o = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			a->clean[o++] = p[i] ? (char)p[i] : ' ';
			i++;
			continue;
		}
		utf8proc_int32_t cp;
		size_t rest = len - i;
		utf8proc_ssize_t n = utf8proc_iterate(p + i, rest > 4 ? 4 : (utf8proc_ssize_t)rest, &cp);
		if (n <= 0) {
			i++; /* an invalid byte: drop it */
			continue;
		}
		memcpy(a->clean + o, p + i, (size_t)n);
		o += (size_t)n;
		i += (size_t)n;
	}
	a->clean[o] = '\0';
	return o;
}

/* Scripts written without spaces between words: each ideograph or kana is
 * a word of its own (a unigram), which is the usual fallback for search
 * without a dictionary segmenter. */
static bool is_ideograph(utf8proc_int32_t c)
{
	return (c >= 0x3040 && c <= 0x30ff) ||   /* hiragana, katakana */
	       (c >= 0x31f0 && c <= 0x31ff) ||   /* katakana extensions */
	       (c >= 0x3400 && c <= 0x4dbf) ||   /* CJK extension A */
	       (c >= 0x4e00 && c <= 0x9fff) ||   /* CJK unified ideographs */
	       (c >= 0xf900 && c <= 0xfaff) ||   /* CJK compatibility */
	       (c >= 0x20000 && c <= 0x3134f);   /* CJK extensions B-G */
}

static bool is_word_char(utf8proc_int32_t c)
{
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
	case UTF8PROC_CATEGORY_MN:
	case UTF8PROC_CATEGORY_MC:
	case UTF8PROC_CATEGORY_ME:
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return true;
	default:
		return false;
	}
}

struct emit_state {
	struct ab_analyzer *a;
	ab_term_fn fn;
	void *ctx;
	uint32_t pos;
	size_t kept;
};

static void emit(struct emit_state *st, const char *w, size_t len)
{
	struct ab_analyzer *a = st->a;
	uint32_t pos = st->pos++;
	if (len == 0 || len > AB_TEXT_TERM_MAX)
		return;
	if (a->stopwords && ab_text_is_stopword(w, len))
		return;
	struct ab_term t = {.term = w, .term_len = len, .word = w, .word_len = len, .pos = pos};
	if (a->stem) {
		if (!a->stemmer) {
			a->stemmer = sb_stemmer_new("english", NULL);
			if (!a->stemmer)
				abort(); /* out of memory: the project's OOM policy */
		}
		const sb_symbol *s = sb_stemmer_stem(a->stemmer, (const sb_symbol *)w, (int)len);
		if (!s)
			abort();
		int sl = sb_stemmer_length(a->stemmer);
		if (sl <= 0)
			return; /* nothing left of the word */
		t.term = (const char *)s;
		t.term_len = (size_t)sl;
	}
	st->kept++;
	st->fn(&t, st->ctx);
}

/* Words of a segment made only of ASCII: letters and digits, lower-cased.
 * This is exactly what the Unicode path gives for ASCII (NFKC leaves it
 * alone, folding is tolower), only without utf8proc's cost. */
static void ascii_words(struct emit_state *st, const char *s, size_t n)
{
	char w[AB_TEXT_TERM_MAX + 1];
	size_t wl = 0;
	bool in_word = false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : ' ';
		bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
		if (lower || upper || (c >= '0' && c <= '9')) {
			if (wl < sizeof(w))
				w[wl] = upper ? (char)(c - 'A' + 'a') : c;
			wl++;
			in_word = true;
		} else if (in_word) {
			emit(st, w, wl); /* wl > AB_TEXT_TERM_MAX is dropped there */
			wl = 0;
			in_word = false;
		}
	}
}

/* Words of a segment with non-ASCII bytes: clean-up, NFKC + case folding
 * through utf8proc, then words by Unicode category. */
static void unicode_words(struct emit_state *st, const char *text, size_t len)
{
	struct ab_analyzer *a = st->a;
	size_t clen = sanitize(a, text, len);
	if (clen == 0)
		return;
	utf8proc_uint8_t *norm = NULL;
	utf8proc_ssize_t nlen =
		utf8proc_map((const utf8proc_uint8_t *)a->clean, (utf8proc_ssize_t)clen, &norm,
			     UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
				     UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
	if (nlen == UTF8PROC_ERROR_NOMEM)
		abort();
	if (nlen < 0 || !norm)
		return; /* cannot happen on valid UTF-8; analyse nothing */

	const char *s = (const char *)norm;
	size_t i = 0, start = 0;
	bool in_word = false;
	while (i < (size_t)nlen) {
		utf8proc_int32_t c;
		utf8proc_ssize_t n =
			utf8proc_iterate(norm + i, nlen - (utf8proc_ssize_t)i, &c);
		if (n <= 0) { /* utf8proc's own output: should not happen */
			i++;
			continue;
		}
		if (is_ideograph(c)) {
			if (in_word)
				emit(st, s + start, i - start);
			in_word = false;
			emit(st, s + i, (size_t)n);
		} else if (is_word_char(c)) {
			if (!in_word) {
				start = i;
				in_word = true;
			}
		} else if (in_word) {
			emit(st, s + start, i - start);
			in_word = false;
		}
		i += (size_t)n;
	}
	if (in_word)
		emit(st, s + start, (size_t)nlen - start);
	free(norm);
}

static bool is_ascii_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
	       c == '\0';
}

size_t ab_analyze(struct ab_analyzer *a, const char *text, size_t len, ab_term_fn fn, void *ctx)
{
	struct emit_state st = {.a = a, .fn = fn, .ctx = ctx};
	size_t i = 0;
	if (!text)
		return 0;
	/* Segments between ASCII white space are independent under NFKC and
	 * case folding (nothing composes with a space), so each is analysed
	 * on its own: the ASCII ones on the fast path. */
	while (i < len) {
		while (i < len && is_ascii_space(text[i]))
			i++;
		size_t start = i;
		bool ascii = true;
		while (i < len && !is_ascii_space(text[i])) {
			if ((uint8_t)text[i] >= 0x80)
				ascii = false;
			i++;
		}
		if (i == start)
			break;
		if (ascii)
			ascii_words(&st, text + start, i - start);
		else
			unicode_words(&st, text + start, i - start);
	}
	return st.kept;
}
