/*
 * test_text_textidx.c - the BM25 index of src/text/textidx.h: scores
 * against values computed by hand, ranking and ties, filters, delete and
 * replace (checked against an index rebuilt from scratch after random
 * churn), walking, the persistence round trip, restore_doc's refusal of
 * inconsistent records, and searches from several threads at once.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "common.h"
#include "textidx.h"

static struct ab_textidx *plain_index(void)
{
	struct ab_textidx_params p;
	ab_textidx_params_default(&p);
	p.stem = false;
	p.stopwords = false;
	struct ab_textidx *x;
	cr_assert_eq(ab_textidx_new(&p, &x), 0);
	return x;
}

static int add(struct ab_textidx *x, const char *id, const char *text, void *value)
{
	void *old = (void *)1;
	int rc = ab_textidx_add(x, id, strlen(id), text, strlen(text), value, &old);
	if (rc == 1)
		cr_assert_null(old);
	return rc;
}

static int search(const struct ab_textidx *x, const char *q, size_t k, struct ab_text_hit *h)
{
	return ab_textidx_search(x, q, strlen(q), k, NULL, NULL, h);
}

static const char *hit_id(const struct ab_text_hit *h)
{
	static char buf[4][64];
	static int i;
	size_t n;
	const char *id = ab_textdoc_id(h->doc, &n);
	char *b = buf[i++ % 4];
	snprintf(b, sizeof(buf[0]), "%.*s", (int)n, id);
	return b;
}

Test(textidx, params)
{
	struct ab_textidx_params p, got;
	struct ab_textidx *x;
	ab_textidx_params_default(&p);
	cr_expect_float_eq(p.k1, 1.2f, 1e-6);
	cr_expect_float_eq(p.b, 0.75f, 1e-6);
	cr_expect(p.stem);
	cr_expect(p.stopwords);

	p.k1 = 0;
	p.b = -1;
	cr_assert_eq(ab_textidx_new(&p, &x), 0);
	ab_textidx_get_params(x, &got);
	cr_expect_float_eq(got.k1, 1.2f, 1e-6, "0 means the default");
	cr_expect_float_eq(got.b, 0.75f, 1e-6, "negative means the default");
	ab_textidx_free(x, NULL);

	p.b = 0;
	cr_assert_eq(ab_textidx_new(&p, &x), 0);
	ab_textidx_get_params(x, &got);
	cr_expect_float_eq(got.b, 0.0f, 1e-9, "b = 0 is valid");
	ab_textidx_free(x, NULL);

	p.k1 = -1;
	cr_expect_eq(ab_textidx_new(&p, &x), AB_EINVAL);
	cr_expect_null(x);
	p.k1 = NAN;
	cr_expect_eq(ab_textidx_new(&p, &x), AB_EINVAL);
	p.k1 = 1.2f;
	p.b = 1.5f;
	cr_expect_eq(ab_textidx_new(&p, &x), AB_EINVAL);
	ab_textidx_free(NULL, NULL);
}

/* N = 3, avgdl = 3, k1 = 1.2, b = 0.75:
 *   d1 "apple banana apple"  (len 3)
 *   d2 "banana cherry"       (len 2)
 *   d3 "cherry cherry cherry date" (len 4)
 * idf(df=1) = ln(1 + 2.5/1.5) = 0.980829, idf(df=2) = ln(1 + 1.5/2.5) = 0.470004
 * "apple": d1 = 0.980829 * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75)) = 1.348640
 * "banana cherry":
 *   d1 = 0.470004 * 1 * 2.2 / (1 + 1.2)                          = 0.470004
 *   d2 = 2 * 0.470004 * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2/3)) = 1.088429
 *   d3 = 0.470004 * 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75 * 4/3))     = 0.689339 */
Test(textidx, bm25_scores_match_hand_computed_values)
{
	struct ab_textidx *x = plain_index();
	cr_assert_eq(add(x, "d1", "apple banana apple", NULL), 1);
	cr_assert_eq(add(x, "d2", "banana cherry", NULL), 1);
	cr_assert_eq(add(x, "d3", "cherry cherry cherry date", NULL), 1);
	cr_expect_eq(ab_textidx_count(x), 3);
	cr_expect_eq(ab_textidx_terms(x), 4);
	cr_expect_eq(ab_textdoc_length(ab_textidx_get(x, "d3", 2)), 4);

	struct ab_text_hit h[8];
	cr_assert_eq(search(x, "apple", 8, h), 1);
	cr_expect_str_eq(hit_id(&h[0]), "d1");
	cr_expect_float_eq(h[0].score, 1.348640, 1e-5);

	cr_assert_eq(search(x, "banana cherry", 8, h), 3);
	cr_expect_str_eq(hit_id(&h[0]), "d2");
	cr_expect_float_eq(h[0].score, 1.088429, 1e-5);
	cr_expect_str_eq(hit_id(&h[1]), "d3");
	cr_expect_float_eq(h[1].score, 0.689339, 1e-5);
	cr_expect_str_eq(hit_id(&h[2]), "d1");
	cr_expect_float_eq(h[2].score, 0.470004, 1e-5);

	/* a repeated query term counts twice; unknown terms add nothing */
	cr_assert_eq(search(x, "apple apple zebra", 8, h), 1);
	cr_expect_float_eq(h[0].score, 2 * 1.348640, 1e-5);
	cr_expect_eq(search(x, "zebra", 8, h), 0);
	cr_expect_eq(search(x, "", 8, h), 0);
	cr_expect_float_eq(ab_textidx_idf(x, "apple", 5), 0.980829, 1e-5);
	cr_expect_eq(ab_textidx_df(x, "cherry", 6), 2);
	cr_expect_eq(ab_textidx_df(x, "zebra", 5), 0);
	ab_textidx_free(x, NULL);
}

Test(textidx, k_ties_and_arguments)
{
	struct ab_textidx *x = plain_index();
	add(x, "b", "same words here", NULL);
	add(x, "a", "same words here", NULL);
	add(x, "c", "same words here", NULL);
	add(x, "z", "same", NULL);
	struct ab_text_hit h[4];
	cr_assert_eq(search(x, "words", 4, h), 3);
	cr_expect_str_eq(hit_id(&h[0]), "a", "equal scores go by id");
	cr_expect_str_eq(hit_id(&h[1]), "b");
	cr_expect_str_eq(hit_id(&h[2]), "c");
	cr_assert_eq(search(x, "words", 2, h), 2);
	cr_expect_str_eq(hit_id(&h[0]), "a");
	cr_expect_str_eq(hit_id(&h[1]), "b");
	cr_expect_eq(search(x, "words", 0, NULL), 0);
	cr_expect_eq(ab_textidx_search(x, "words", 5, 3, NULL, NULL, NULL), AB_EINVAL);
	cr_expect_eq(ab_textidx_search(NULL, "words", 5, 3, NULL, NULL, h), AB_EINVAL);
	/* shorter documents rank higher for the same tf */
	cr_assert_eq(search(x, "same", 4, h), 4);
	cr_expect_str_eq(hit_id(&h[0]), "z");
	ab_textidx_free(x, NULL);
}

static bool even_only(void *value, void *ctx)
{
	int *calls = ctx;
	(*calls)++;
	return ((uintptr_t)value % 2) == 0;
}

/* A selective query (few postings: the touched-list path) scored against
 * the formula, documents of varied length; and a filter on that path. */
Test(textidx, selective_query_matches_formula)
{
	struct ab_textidx *x = plain_index();
	char id[16], text[512];
	uint64_t total_len = 0;
	for (int i = 0; i < 400; i++) {
		int len = 0, words = 3 + i % 17;
		for (int w = 0; w < words; w++)
			len += snprintf(text + len, sizeof(text) - (size_t)len, "%s ",
					(i % 80 == 0 && w < 1 + i / 80) ? "rare" : "filler");
		snprintf(id, sizeof(id), "s%03d", i);
		add(x, id, text, (void *)(uintptr_t)i);
		total_len += (uint64_t)words;
	}
	double avgdl = (double)total_len / 400, idf = log(1 + (400 - 5 + 0.5) / (5 + 0.5));
	struct ab_text_hit h[10];
	int n = search(x, "rare", 10, h);
	cr_assert_eq(n, 5);
	for (int r = 0; r < n; r++) {
		int i = (int)(uintptr_t)ab_textdoc_value(h[r].doc);
		double tf = 1 + i / 80, len = 3 + i % 17;
		double want = idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / avgdl));
		cr_expect_float_eq(h[r].score, want, 1e-5, "doc %d", i);
		if (r)
			cr_expect_geq(h[r - 1].score, h[r].score);
	}
	int calls = 0;
	n = ab_textidx_search(x, "rare", 4, 10, even_only, &calls, h);
	cr_expect_eq(n, 5, "0, 80, 160, 240, 320 are all even");
	ab_textidx_free(x, NULL);
}

Test(textidx, filter)
{
	struct ab_textidx *x = plain_index();
	char id[16];
	for (uintptr_t i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "doc%02u", (unsigned)i);
		add(x, id, i < 25 ? "common rare" : "common", (void *)i);
	}
	struct ab_text_hit h[50];
	int calls = 0;
	int n = ab_textidx_search(x, "common", 6, 50, even_only, &calls, h);
	cr_assert_eq(n, 25);
	for (int i = 0; i < n; i++)
		cr_expect_eq((uintptr_t)ab_textdoc_value(h[i].doc) % 2, 0);
	cr_expect_eq(calls, 50);
	calls = 0;
	n = ab_textidx_search(x, "rare", 4, 5, even_only, &calls, h);
	cr_assert_eq(n, 5);
	cr_expect_leq(calls, 25);
	ab_textidx_free(x, NULL);
}

Test(textidx, delete_removes_postings)
{
	struct ab_textidx *x = plain_index();
	add(x, "d1", "apple banana apple", (void *)1);
	add(x, "d2", "banana cherry", (void *)2);
	add(x, "d3", "cherry cherry cherry date", (void *)3);
	size_t mem_full = ab_textidx_memory(x);
	void *v = NULL;
	cr_assert_eq(ab_textidx_del(x, "d1", 2, &v), 1);
	cr_expect_eq((uintptr_t)v, 1);
	cr_expect_eq(ab_textidx_del(x, "d1", 2, &v), 0, "already gone");
	cr_expect_null(v);
	cr_expect_null(ab_textidx_get(x, "d1", 2));
	cr_expect_eq(ab_textidx_count(x), 2);
	cr_expect_eq(ab_textidx_terms(x), 3, "apple had no other document");
	struct ab_text_hit h[4];
	cr_expect_eq(search(x, "apple", 4, h), 0);
	/* the scores are those of an index that never held d1:
	 * N = 2, avgdl = 3; banana df 1: idf = ln(1 + 1.5/1.5) = ln 2;
	 * d2 = ln2 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2/3)) = 0.802675 */
	cr_assert_eq(search(x, "banana", 4, h), 1);
	cr_expect_str_eq(hit_id(&h[0]), "d2");
	cr_expect_float_eq(h[0].score, log(2.0) * 2.2 / 1.9, 1e-5);
	cr_assert_eq(ab_textidx_del(x, "d2", 2, NULL), 1);
	cr_assert_eq(ab_textidx_del(x, "d3", 2, NULL), 1);
	cr_expect_eq(ab_textidx_count(x), 0);
	cr_expect_eq(ab_textidx_terms(x), 0);
	cr_expect_eq(search(x, "cherry", 4, h), 0);
	cr_expect_null(ab_textidx_first(x));
	cr_expect_lt(ab_textidx_memory(x), mem_full);
	ab_textidx_free(x, NULL);
}

Test(textidx, replace_returns_old_value)
{
	struct ab_textidx *x = plain_index();
	cr_assert_eq(add(x, "k", "old words", (void *)7), 1);
	add(x, "other", "words", NULL);
	void *old = NULL;
	int rc = ab_textidx_add(x, "k", 1, "brand new text", 14, (void *)8, &old);
	cr_assert_eq(rc, 0);
	cr_expect_eq((uintptr_t)old, 7);
	cr_expect_eq(ab_textidx_count(x), 2);
	struct ab_text_hit h[4];
	cr_expect_eq(search(x, "old", 4, h), 0);
	cr_assert_eq(search(x, "words", 4, h), 1);
	cr_expect_str_eq(hit_id(&h[0]), "other");
	cr_assert_eq(search(x, "brand", 4, h), 1);
	cr_expect_eq((uintptr_t)ab_textdoc_value(h[0].doc), 8);
	cr_expect_eq(ab_textdoc_length(h[0].doc), 3);
	ab_textdoc_set_value(ab_textidx_get(x, "k", 1), (void *)9);
	cr_expect_eq((uintptr_t)ab_textdoc_value(ab_textidx_get(x, "k", 1)), 9);
	ab_textidx_free(x, NULL);
}

Test(textidx, binary_ids_and_invalid_text)
{
	struct ab_textidx *x = plain_index();
	const char id1[] = {'a', 0, 'b'};
	const char id2[] = {'a', 0, 'c'};
	void *old;
	cr_assert_eq(ab_textidx_add(x, id1, 3, "one\xff two", 8, NULL, &old), 1);
	cr_assert_eq(ab_textidx_add(x, id2, 3, "two", 3, NULL, &old), 1);
	cr_assert_eq(ab_textidx_add(x, "", 0, "empty id", 8, NULL, &old), 1);
	cr_assert_eq(ab_textidx_add(x, "nothing", 7, NULL, 0, NULL, &old), 1);
	cr_expect_eq(ab_textdoc_length(ab_textidx_get(x, "nothing", 7)), 0);
	cr_expect_eq(ab_textidx_count(x), 4);
	cr_expect_not_null(ab_textidx_get(x, id1, 3));
	cr_expect_null(ab_textidx_get(x, "a", 1));
	struct ab_text_hit h[4];
	cr_expect_eq(search(x, "one", 4, h), 1);
	cr_expect_eq(search(x, "two", 4, h), 2);
	cr_expect_eq(ab_textidx_add(NULL, "x", 1, "t", 1, NULL, &old), AB_EINVAL);
	cr_expect_eq(ab_textidx_add(x, NULL, 3, "t", 1, NULL, &old), AB_EINVAL);
	ab_textidx_free(x, NULL);
}

static int freed;
static void count_free(void *v)
{
	freed += (int)(uintptr_t)v;
}

Test(textidx, walk_and_free_values)
{
	struct ab_textidx *x = plain_index();
	char id[16];
	for (int i = 1; i <= 20; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		add(x, id, "walk", (void *)(uintptr_t)i);
	}
	ab_textidx_del(x, "w5", 2, NULL);
	ab_textidx_del(x, "w6", 2, NULL);
	int seen = 0, sum = 0;
	for (struct ab_textdoc *d = ab_textidx_first(x); d; d = ab_textidx_next(x, d)) {
		seen++;
		sum += (int)(uintptr_t)ab_textdoc_value(d);
	}
	cr_expect_eq(seen, 18);
	cr_expect_eq(sum, 210 - 11);
	freed = 0;
	ab_textidx_free(x, count_free);
	cr_expect_eq(freed, 210 - 11);
}

/* ---- random churn against a rebuilt index ---- */

static const char *const vocab[] = {
	"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
	"lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon",
};

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void random_text(char *buf, size_t cap)
{
	size_t words = 1 + rnd(12), len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < words; i++) {
		/* skewed: low indexes are common */
		uint32_t w = rnd(1 + rnd((uint32_t)AB_ARRAY_LEN(vocab)));
		len += (size_t)snprintf(buf + len, cap - len, "%s ", vocab[w]);
	}
}

static void same_results(const struct ab_textidx *a, const struct ab_textidx *b)
{
	struct ab_text_hit ha[300], hb[300];
	for (size_t i = 0; i < AB_ARRAY_LEN(vocab); i++) {
		char q[64];
		snprintf(q, sizeof(q), "%s %s", vocab[i], vocab[(i * 7) % AB_ARRAY_LEN(vocab)]);
		int na = search(a, q, 300, ha), nb = search(b, q, 300, hb);
		cr_assert_eq(na, nb, "query %s", q);
		for (int j = 0; j < na; j++) {
			cr_assert_str_eq(hit_id(&ha[j]), hit_id(&hb[j]), "query %s rank %d", q, j);
			cr_assert_float_eq(ha[j].score, hb[j].score, 1e-4);
		}
	}
}

Test(textidx, random_churn_equals_rebuild)
{
	struct ab_textidx *x = plain_index();
	enum { IDS = 150 };
	char text[IDS][256];
	bool live[IDS] = {0};
	for (int op = 0; op < 4000; op++) {
		uint32_t i = rnd(IDS);
		char id[16];
		snprintf(id, sizeof(id), "id%u", i);
		if (rnd(3) == 0) {
			int rc = ab_textidx_del(x, id, strlen(id), NULL);
			cr_assert_eq(rc, live[i] ? 1 : 0);
			live[i] = false;
		} else {
			random_text(text[i], sizeof(text[i]));
			int rc = add(x, id, text[i], (void *)(uintptr_t)i);
			cr_assert_eq(rc, live[i] ? 0 : 1);
			live[i] = true;
		}
	}
	struct ab_textidx *fresh = plain_index();
	uint64_t n = 0;
	for (int i = 0; i < IDS; i++) {
		if (!live[i])
			continue;
		char id[16];
		snprintf(id, sizeof(id), "id%d", i);
		add(fresh, id, text[i], NULL);
		n++;
	}
	cr_expect_eq(ab_textidx_count(x), n);
	cr_expect_eq(ab_textidx_terms(x), ab_textidx_terms(fresh));
	same_results(x, fresh);
	ab_textidx_free(x, NULL);
	ab_textidx_free(fresh, NULL);
}

/* ---- persistence ---- */

struct saved_doc {
	char id[32];
	size_t id_len;
	uint32_t length;
	char *terms[64];
	size_t lens[64];
	uint32_t tfs[64];
	size_t n;
};

static void save_term(const char *term, size_t len, uint32_t tf, void *ctx)
{
	struct saved_doc *s = ctx;
	cr_assert_lt(s->n, 64);
	s->terms[s->n] = ab_xstrndup(term, len);
	s->lens[s->n] = len;
	s->tfs[s->n] = tf;
	s->n++;
}

Test(textidx, save_and_restore_round_trip)
{
	struct ab_textidx_params p;
	ab_textidx_params_default(&p);
	struct ab_textidx *x, *y;
	cr_assert_eq(ab_textidx_new(&p, &x), 0);
	cr_assert_eq(ab_textidx_new(&p, &y), 0);
	add(x, "a", "Experimental investigation of wings in a slipstream", NULL);
	add(x, "b", "The slipstream of propellers and the lift of wings", NULL);
	add(x, "c", "Boundary layers in compressible flow; flows over plates", NULL);
	add(x, "d", "the of and", NULL); /* stop words only: length 0 */
	struct saved_doc s[8];
	int nd = 0;
	for (struct ab_textdoc *d = ab_textidx_first(x); d; d = ab_textidx_next(x, d)) {
		struct saved_doc *sd = &s[nd++];
		memset(sd, 0, sizeof(*sd));
		const char *id = ab_textdoc_id(d, &sd->id_len);
		memcpy(sd->id, id, sd->id_len);
		sd->length = ab_textdoc_length(d);
		ab_textdoc_terms(x, d, save_term, sd);
	}
	cr_assert_eq(nd, 4);
	for (int i = 0; i < nd; i++) {
		int rc = ab_textidx_restore_doc(y, s[i].id, s[i].id_len, s[i].length,
						(const char *const *)s[i].terms, s[i].lens, s[i].tfs,
						s[i].n, NULL);
		cr_assert_eq(rc, 0);
	}
	cr_expect_eq(ab_textidx_count(y), 4);
	cr_expect_eq(ab_textidx_terms(y), ab_textidx_terms(x));
	struct ab_text_hit ha[8], hb[8];
	const char *queries[] = {"slipstream wings", "flow", "plates investigation lift"};
	for (size_t q = 0; q < AB_ARRAY_LEN(queries); q++) {
		int na = search(x, queries[q], 8, ha), nb = search(y, queries[q], 8, hb);
		cr_assert_eq(na, nb);
		cr_assert_gt(na, 0);
		for (int j = 0; j < na; j++) {
			cr_expect_str_eq(hit_id(&ha[j]), hit_id(&hb[j]));
			cr_expect_float_eq(ha[j].score, hb[j].score, 1e-6);
		}
	}
	for (int i = 0; i < nd; i++)
		for (size_t j = 0; j < s[i].n; j++)
			free(s[i].terms[j]);
	ab_textidx_free(x, NULL);
	ab_textidx_free(y, NULL);
}

Test(textidx, restore_rejects_inconsistent_records)
{
	struct ab_textidx *x = plain_index();
	const char *t2[] = {"alpha", "beta"};
	size_t l2[] = {5, 4};
	uint32_t tf2[] = {2, 1};
	cr_assert_eq(ab_textidx_restore_doc(x, "ok", 2, 3, t2, l2, tf2, 2, NULL), 0);
	uint64_t terms = ab_textidx_terms(x);
	size_t mem = ab_textidx_memory(x);

	/* a duplicate id */
	cr_expect_eq(ab_textidx_restore_doc(x, "ok", 2, 3, t2, l2, tf2, 2, NULL), AB_EPROTO);
	/* tfs not summing to the length, either way */
	cr_expect_eq(ab_textidx_restore_doc(x, "n1", 2, 4, t2, l2, tf2, 2, NULL), AB_EPROTO);
	cr_expect_eq(ab_textidx_restore_doc(x, "n2", 2, 2, t2, l2, tf2, 2, NULL), AB_EPROTO);
	/* a zero tf */
	uint32_t tf0[] = {3, 0};
	cr_expect_eq(ab_textidx_restore_doc(x, "n3", 2, 3, t2, l2, tf0, 2, NULL), AB_EPROTO);
	/* an empty term, a NULL term, an overlong term */
	size_t l0[] = {5, 0};
	cr_expect_eq(ab_textidx_restore_doc(x, "n4", 2, 3, t2, l0, tf2, 2, NULL), AB_EPROTO);
	const char *tn[] = {"alpha", NULL};
	cr_expect_eq(ab_textidx_restore_doc(x, "n5", 2, 3, tn, l2, tf2, 2, NULL), AB_EPROTO);
	char longterm[AB_TEXT_TERM_MAX + 2];
	memset(longterm, 'x', sizeof(longterm));
	const char *tl[] = {longterm};
	size_t ll[] = {sizeof(longterm)};
	uint32_t tf1[] = {1};
	cr_expect_eq(ab_textidx_restore_doc(x, "n6", 2, 1, tl, ll, tf1, 1, NULL), AB_EPROTO);
	/* the same term twice */
	const char *td[] = {"alpha", "alpha"};
	size_t ld[] = {5, 5};
	cr_expect_eq(ab_textidx_restore_doc(x, "n7", 2, 3, td, ld, tf2, 2, NULL), AB_EPROTO);
	/* missing arrays; more terms than the length allows */
	cr_expect_eq(ab_textidx_restore_doc(x, "n8", 2, 3, NULL, l2, tf2, 2, NULL), AB_EPROTO);
	cr_expect_eq(ab_textidx_restore_doc(x, "n9", 2, 1, t2, l2, tf2, 2, NULL), AB_EPROTO);
	/* a tf sum that would overflow 32 bits */
	uint32_t tfbig[] = {UINT32_MAX, 3}; /* wraps to 2 in 32 bits */
	cr_expect_eq(ab_textidx_restore_doc(x, "nA", 2, 2, t2, l2, tfbig, 2, NULL), AB_EPROTO);
	cr_expect_eq(ab_textidx_restore_doc(NULL, "nB", 2, 3, t2, l2, tf2, 2, NULL), AB_EINVAL);

	/* nothing of the refused records stayed behind */
	cr_expect_eq(ab_textidx_count(x), 1);
	cr_expect_eq(ab_textidx_terms(x), terms);
	cr_expect_eq(ab_textidx_memory(x), mem);
	/* an empty document is consistent */
	cr_expect_eq(ab_textidx_restore_doc(x, "empty", 5, 0, NULL, NULL, NULL, 0, NULL), 0);
	/* terms may hold any byte, NUL included */
	const char nul[] = {'a', 0, 'b'};
	const char *tz[] = {nul};
	size_t lz[] = {3};
	cr_expect_eq(ab_textidx_restore_doc(x, "nul", 3, 1, tz, lz, tf1, 1, NULL), 0);
	cr_expect_eq(ab_textidx_df(x, nul, 3), 1);
	cr_expect_eq(ab_textidx_df(x, "a", 1), 0);
	ab_textidx_free(x, NULL);
}

/* ---- concurrent searches ---- */

enum { CQ = 40, CK = 50 };

struct cshared {
	const struct ab_textidx *x;
	char queries[CQ][64];
	char expect[CQ][CK][16];
	double score[CQ][CK];
	int n[CQ];
};

static void *search_thread(void *arg)
{
	struct cshared *s = arg;
	struct ab_text_hit h[CK];
	for (int round = 0; round < 20; round++) {
		for (int q = 0; q < CQ; q++) {
			int n = search(s->x, s->queries[q], CK, h);
			if (n != s->n[q])
				return (void *)1;
			for (int j = 0; j < n; j++) {
				size_t len;
				const char *id = ab_textdoc_id(h[j].doc, &len);
				if (len != strlen(s->expect[q][j]) ||
				    memcmp(id, s->expect[q][j], len) != 0 ||
				    h[j].score != s->score[q][j])
					return (void *)1;
			}
		}
	}
	return NULL;
}

Test(textidx, concurrent_searches_agree)
{
	struct ab_textidx_params p;
	ab_textidx_params_default(&p); /* stemming on: each search has its own stemmer */
	struct ab_textidx *x;
	cr_assert_eq(ab_textidx_new(&p, &x), 0);
	char id[16], text[256];
	for (int i = 0; i < 3000; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		random_text(text, sizeof(text));
		add(x, id, text, NULL);
	}
	struct cshared *s = ab_xcalloc(1, sizeof(*s));
	s->x = x;
	for (int q = 0; q < CQ; q++) {
		snprintf(s->queries[q], sizeof(s->queries[q]), "%s %ss", vocab[q % 20],
			 vocab[(q * 3 + 1) % 20]);
		struct ab_text_hit h[CK];
		s->n[q] = search(x, s->queries[q], CK, h);
		cr_assert_gt(s->n[q], 0);
		for (int j = 0; j < s->n[q]; j++) {
			snprintf(s->expect[q][j], sizeof(s->expect[q][j]), "%s", hit_id(&h[j]));
			s->score[q][j] = h[j].score;
		}
	}
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, search_thread, s), 0);
	for (int i = 0; i < 8; i++) {
		void *r;
		pthread_join(t[i], &r);
		cr_expect_null(r, "thread %d got a different result", i);
	}
	free(s);
	ab_textidx_free(x, NULL);
}
