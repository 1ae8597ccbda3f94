/*
 * test_text_analyze.c - the analyzer of src/text/analyze.h: Unicode word
 * splitting, NFKC and case folding, invalid bytes, the stop list, Snowball
 * stemming, and analyzers used from several threads at once.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "analyze.h"
#include "common.h"

/* Runs the analyzer and returns its terms joined by '|' (caller frees). */
struct joined {
	struct ab_buf b;
	uint32_t pos[64];
	size_t n;
};

static void join_term(const struct ab_term *t, void *ctx)
{
	struct joined *j = ctx;
	if (j->b.len)
		ab_buf_putc(&j->b, '|');
	ab_buf_append(&j->b, t->term, t->term_len);
	if (j->n < AB_ARRAY_LEN(j->pos))
		j->pos[j->n] = t->pos;
	j->n++;
}

static char *analyze(const char *text, size_t len, bool stem, bool stop, struct joined *j)
{
	struct ab_analyzer a;
	memset(j, 0, sizeof(*j));
	ab_buf_puts(&j->b, "");
	ab_analyzer_init(&a, stem, stop);
	size_t n = ab_analyze(&a, text, len, join_term, j);
	ab_analyzer_release(&a);
	cr_assert_eq(n, j->n);
	return j->b.data;
}

static void expect(const char *text, bool stem, bool stop, const char *want)
{
	struct joined j;
	char *got = analyze(text, strlen(text), stem, stop, &j);
	cr_expect_str_eq(got, want, "analyze(\"%s\", stem=%d, stop=%d)", text, stem, stop);
	ab_buf_free(&j.b);
}

Test(analyze, splits_on_punctuation_and_folds_case)
{
	expect("Hello, World! It's 42-fold.", false, false, "hello|world|it|s|42|fold");
	expect("  \t\n ", false, false, "");
	expect("", false, false, "");
	expect("snake_case CamelCase", false, false, "snake|case|camelcase");
	/* the ASCII fast path and the Unicode path agree: a no-break space
	 * sends the same words through utf8proc */
	expect("Foo-Bar_baz9 X.", false, false, "foo|bar|baz9|x");
	expect("Foo-Bar_baz9\xc2\xa0X.", false, false, "foo|bar|baz9|x");
}

Test(analyze, unicode_case_folding)
{
	expect("Straße STRASSE", false, false, "strasse|strasse");
	expect("ΚΑΛΗΜΈΡΑ καλημέρα", false, false, "καλημέρα|καλημέρα");
	/* capital dotted I folds to i + combining dot above */
	expect("\xc4\xb0stanbul \xc3\x89" "COLE", false, false, "i\xcc\x87stanbul|\xc3\xa9" "cole");
}

Test(analyze, nfkc_full_width_ligatures_compatibility)
{
	/* full-width Latin letters and digits */
	expect("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3\xef\xbc\x91\xef\xbc\x92", false, false, "abc12");
	/* the fi and ffl ligatures */
	expect("\xef\xac\x81nance ba\xef\xac\x84" "e", false, false, "finance|baffle");
	/* superscript two, and the circled digit one */
	expect("x\xc2\xb2 \xe2\x91\xa0", false, false, "x2|1");
	/* e + combining acute composes to the same term as precomposed é */
	expect("cafe\xcc\x81 caf\xc3\xa9", false, false, "caf\xc3\xa9|caf\xc3\xa9");
}

Test(analyze, invalid_bytes_are_dropped_not_fatal)
{
	const char t[] = "ab\xff" "cd caf\xc3 bar \xc0\xaf z\x00y";
	struct joined j;
	char *got = analyze(t, sizeof(t) - 1, false, false, &j);
	/* the lone bytes go (joining their neighbours), NUL separates */
	cr_expect_str_eq(got, "abcd|caf|bar|z|y");
	ab_buf_free(&j.b);
}

Test(analyze, ideographs_are_single_terms)
{
	expect("東京タワー is tall", false, false, "東|京|タ|ワ|ー|is|tall");
}

Test(analyze, overlong_words_are_dropped_but_counted)
{
	char t[200];
	memset(t, 'x', 100);
	snprintf(t + 100, sizeof(t) - 100, " keep me");
	struct joined j;
	char *got = analyze(t, strlen(t), false, false, &j);
	cr_expect_str_eq(got, "keep|me");
	cr_expect_eq(j.pos[0], 1);
	cr_expect_eq(j.pos[1], 2);
	ab_buf_free(&j.b);
}

Test(analyze, stop_words)
{
	expect("The quick brown fox is over the lazy dog", false, true, "quick|brown|fox|lazy|dog");
	expect("The quick brown fox", false, false, "the|quick|brown|fox");
	/* stop words are matched after folding */
	expect("THE Quick", false, true, "quick");
	struct joined j;
	analyze("the quick brown fox", 19, false, true, &j);
	cr_expect_eq(j.n, 3);
	cr_expect_eq(j.pos[0], 1, "positions count the dropped words");
	cr_expect_eq(j.pos[2], 3);
	ab_buf_free(&j.b);
}

Test(analyze, stop_list_is_sorted_and_plausible)
{
	const char *w[400];
	size_t n = 0;
	while (n < AB_ARRAY_LEN(w) && (w[n] = ab_text_stopword(n)) != NULL)
		n++;
	cr_assert_gt(n, 100);
	cr_assert_lt(n, AB_ARRAY_LEN(w));
	for (size_t i = 1; i < n; i++)
		cr_expect_lt(strcmp(w[i - 1], w[i]), 0, "%s before %s", w[i - 1], w[i]);
	for (size_t i = 0; i < n; i++)
		cr_expect(ab_text_is_stopword(w[i], strlen(w[i])), "%s", w[i]);
	cr_expect(ab_text_is_stopword("the", 3));
	cr_expect(ab_text_is_stopword("which", 5));
	cr_expect_not(ab_text_is_stopword("aircraft", 8));
	cr_expect_not(ab_text_is_stopword("th", 2));
	cr_expect_not(ab_text_is_stopword("thee", 4));
	cr_expect_not(ab_text_is_stopword("", 0));
}

Test(analyze, snowball_english_stemming)
{
	expect("running runs connected connections generalizations ponies", true, false,
	       "run|run|connect|connect|general|poni");
	/* stems are taken after folding, so case does not matter */
	expect("RUNNING Running", true, false, "run|run");
	/* numbers pass through */
	expect("1990 runs", true, true, "1990|run");
}

static void check_word(const struct ab_term *t, void *ctx)
{
	int *ok = ctx;
	*ok = t->word_len == 15 && memcmp(t->word, "generalizations", 15) == 0 &&
	      t->term_len == 7 && memcmp(t->term, "general", 7) == 0;
}

Test(analyze, term_carries_folded_word)
{
	struct ab_analyzer a;
	int ok = 0;
	ab_analyzer_init(&a, true, false);
	ab_analyze(&a, "GENERALIZATIONS", 15, check_word, &ok);
	ab_analyzer_release(&a);
	cr_expect(ok);
}

Test(analyze, analyzer_reuse_and_release)
{
	struct ab_analyzer a;
	ab_analyzer_init(&a, true, true);
	for (int i = 0; i < 3; i++) {
		struct joined j;
		memset(&j, 0, sizeof(j));
		ab_buf_puts(&j.b, "");
		ab_analyze(&a, "Flows over flat plates", 22, join_term, &j);
		cr_expect_str_eq(j.b.data, "flow|flat|plate");
		ab_buf_free(&j.b);
	}
	ab_analyzer_release(&a);
	ab_analyzer_release(&a); /* twice is harmless */
}

static void check_term(const struct ab_term *t, void *ctx)
{
	int *bad = ctx;
	if (t->term_len == 0 || t->term_len > AB_TEXT_TERM_MAX || t->word_len > AB_TEXT_TERM_MAX)
		(*bad)++;
	/* every term is valid UTF-8 */
	for (size_t i = 0; i < t->term_len;) {
		unsigned char c = (unsigned char)t->term[i];
		size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
		if (n == 0 || i + n > t->term_len) {
			(*bad)++;
			return;
		}
		for (size_t j = 1; j < n; j++)
			if (((unsigned char)t->term[i + j] & 0xc0) != 0x80)
				(*bad)++;
		i += n;
	}
}

Test(analyze, arbitrary_bytes_give_valid_terms)
{
	char buf[600];
	uint64_t s = 4242;
	struct ab_analyzer a;
	ab_analyzer_init(&a, true, true);
	for (int round = 0; round < 3000; round++) {
		size_t n = (size_t)(round % 600);
		for (size_t i = 0; i < n; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			buf[i] = (char)(s >> 56);
		}
		int bad = 0;
		ab_analyze(&a, buf, n, check_term, &bad);
		cr_assert_eq(bad, 0, "round %d", round);
	}
	ab_analyzer_release(&a);
}

/* ---- several threads, each with its own analyzer ---- */

static const char *const thread_texts[] = {
	"Experimental investigation of the aerodynamics of a wing in a slipstream",
	"Generalizations of the boundary-layer equations for compressible flows",
	"ＦＵＬＬ-ｗｉｄｔｈ ﬁnancial reports from Straße",
	"東京タワー and the running connections",
};

static void *thread_main(void *arg)
{
	const char *const *want = arg;
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < AB_ARRAY_LEN(thread_texts); i++) {
			struct joined j;
			char *got = analyze(thread_texts[i], strlen(thread_texts[i]), true, true, &j);
			bool same = strcmp(got, want[i]) == 0;
			ab_buf_free(&j.b);
			if (!same)
				return (void *)1;
		}
	}
	return NULL;
}

Test(analyze, concurrent_analyzers_agree)
{
	char *want[AB_ARRAY_LEN(thread_texts)];
	for (size_t i = 0; i < AB_ARRAY_LEN(thread_texts); i++) {
		struct joined j;
		analyze(thread_texts[i], strlen(thread_texts[i]), true, true, &j);
		want[i] = ab_buf_steal(&j.b);
	}
	cr_expect_str_eq(want[2], "full|width|financi|report|strass");
	pthread_t t[6];
	for (int i = 0; i < 6; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, thread_main, want), 0);
	for (int i = 0; i < 6; i++) {
		void *r;
		pthread_join(t[i], &r);
		cr_expect_null(r, "thread %d saw a different analysis", i);
	}
	for (size_t i = 0; i < AB_ARRAY_LEN(thread_texts); i++)
		free(want[i]);
}
