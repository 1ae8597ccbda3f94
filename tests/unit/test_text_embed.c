/*
 * test_text_embed.c - the built-in embedder of src/text/embed.h:
 * determinism (across embedder objects and threads), normalisation,
 * similar texts closer than unrelated ones, character n-grams linking
 * word variants, idf weighting of queries, and parameter checks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "embed.h"
#include "textidx.h"

static struct ab_embedder *embedder(void)
{
	struct ab_embedder *e;
	cr_assert_eq(ab_embed_new(NULL, &e), 0);
	return e;
}

static float *vec(const struct ab_embedder *e, const char *text)
{
	float *v = ab_xmalloc(ab_embed_dims(e) * sizeof(float));
	cr_assert_gt(ab_embed_doc(e, text, strlen(text), v), 0, "%s", text);
	return v;
}

static double norm(const float *v, uint32_t n)
{
	double s = 0;
	for (uint32_t i = 0; i < n; i++)
		s += (double)v[i] * v[i];
	return sqrt(s);
}

Test(embed, defaults_and_params)
{
	struct ab_embed_params p;
	ab_embed_params_default(&p);
	cr_expect_eq(p.dims, AB_EMBED_DIMS_DEFAULT);
	cr_expect(p.stem);
	cr_expect(p.stopwords);
	struct ab_embedder *e;
	struct ab_embed_params bad = p;
	bad.dims = 8;
	cr_expect_eq(ab_embed_new(&bad, &e), AB_EINVAL);
	cr_expect_null(e);
	bad = p;
	bad.dims = AB_EMBED_DIMS_MAX + 1;
	cr_expect_eq(ab_embed_new(&bad, &e), AB_EINVAL);
	bad = p;
	bad.w_term = NAN;
	cr_expect_eq(ab_embed_new(&bad, &e), AB_EINVAL);
	bad = p;
	bad.w_ngram = 1;
	bad.ngram_min = 5;
	bad.ngram_max = 4;
	cr_expect_eq(ab_embed_new(&bad, &e), AB_EINVAL);
	bad = p;
	bad.dims = 64;
	cr_assert_eq(ab_embed_new(&bad, &e), 0);
	cr_expect_eq(ab_embed_dims(e), 64);
	struct ab_embed_params got;
	ab_embed_get_params(e, &got);
	cr_expect_eq(got.dims, 64);
	ab_embed_free(e);
	ab_embed_free(NULL);
}

Test(embed, deterministic_and_normalised)
{
	struct ab_embedder *a = embedder(), *b = embedder();
	const char *t = "Experimental investigation of the aerodynamics of a wing in a slipstream.";
	float *va = vec(a, t), *vb = vec(b, t);
	uint32_t n = ab_embed_dims(a);
	cr_expect_eq(memcmp(va, vb, n * sizeof(float)), 0, "same text, same vector");
	cr_expect_float_eq(norm(va, n), 1.0, 1e-5);
	float *vc = vec(a, "A completely different sentence about cooking pasta.");
	cr_expect_float_eq(norm(vc, n), 1.0, 1e-5);
	cr_expect_neq(memcmp(va, vc, n * sizeof(float)), 0);
	/* a fixed value guards against silent changes of the scheme: vectors
	 * are stored, so changing it needs a new AB_EMBED_MODEL */
	float *vd = vec(a, "aircraft");
	int nonzero = 0;
	for (uint32_t i = 0; i < n; i++)
		nonzero += vd[i] != 0;
	cr_expect_gt(nonzero, 5, "the word and its n-grams spread over coordinates");
	free(va);
	free(vb);
	free(vc);
	free(vd);
	ab_embed_free(a);
	ab_embed_free(b);
}

Test(embed, similar_texts_are_closer)
{
	struct ab_embedder *e = embedder();
	uint32_t n = ab_embed_dims(e);
	float *wing = vec(e, "The lift of a wing in a propeller slipstream was measured.");
	float *wing2 = vec(e, "Measurements of wing lift inside propeller slipstreams.");
	float *med = vec(e, "The patient was treated with insulin for diabetes mellitus.");
	float *med2 = vec(e, "Insulin treatment of diabetic patients.");
	float s_ww = ab_embed_cosine(wing, wing2, n), s_wm = ab_embed_cosine(wing, med, n);
	float s_mm = ab_embed_cosine(med, med2, n), s_mw = ab_embed_cosine(med2, wing2, n);
	cr_expect_gt(s_ww, 0.3f, "%f", s_ww);
	cr_expect_gt(s_mm, 0.3f, "%f", s_mm);
	cr_expect_gt(s_ww, s_wm + 0.2f, "%f vs %f", s_ww, s_wm);
	cr_expect_gt(s_mm, s_mw + 0.2f, "%f vs %f", s_mm, s_mw);
	cr_expect_float_eq(ab_embed_cosine(wing, wing, n), 1.0f, 1e-5);
	free(wing);
	free(wing2);
	free(med);
	free(med2);
	ab_embed_free(e);
}

Test(embed, ngrams_link_word_variants)
{
	struct ab_embed_params p;
	ab_embed_params_default(&p);
	struct ab_embedder *with, *without;
	cr_assert_eq(ab_embed_new(&p, &with), 0);
	p.w_ngram = 0;
	cr_assert_eq(ab_embed_new(&p, &without), 0);
	uint32_t n = p.dims;
	float *a1 = vec(with, "analyse"), *b1 = vec(with, "analyze");
	float *a0 = vec(without, "analyse"), *b0 = vec(without, "analyze");
	float s1 = ab_embed_cosine(a1, b1, n), s0 = ab_embed_cosine(a0, b0, n);
	cr_expect_gt(s1, 0.2f, "they share <an, anal, naly, ...: %f", s1);
	cr_expect_lt(fabsf(s0), 0.1f, "different stems alone: %f", s0);
	free(a1);
	free(b1);
	free(a0);
	free(b0);
	ab_embed_free(with);
	ab_embed_free(without);
}

Test(embed, empty_text_gives_zero_vector)
{
	struct ab_embedder *e = embedder();
	uint32_t n = ab_embed_dims(e);
	float *v = ab_xmalloc(n * sizeof(float));
	v[0] = 5;
	cr_expect_eq(ab_embed_doc(e, "", 0, v), 0);
	cr_expect_float_eq(norm(v, n), 0.0, 1e-9);
	cr_expect_eq(ab_embed_doc(e, "the of and ... !!", 17, v), 0, "stop words only");
	cr_expect_eq(ab_embed_doc(e, NULL, 0, v), 0);
	cr_expect_eq(ab_embed_doc(e, NULL, 4, v), AB_EINVAL);
	cr_expect_eq(ab_embed_doc(NULL, "x", 1, v), AB_EINVAL);
	cr_expect_eq(ab_embed_doc(e, "x", 1, NULL), AB_EINVAL);
	const char bad[] = "wing\xff\xfe lift";
	cr_expect_gt(ab_embed_doc(e, bad, sizeof(bad) - 1, v), 0);
	cr_expect_float_eq(norm(v, n), 1.0, 1e-5);
	free(v);
	ab_embed_free(e);
}

static double fake_idf(const char *term, size_t len, void *ctx)
{
	(void)ctx;
	return len == 4 && memcmp(term, "rare", 4) == 0 ? 5.0 : 0.1;
}

Test(embed, query_idf_weights_rare_terms)
{
	struct ab_embedder *e = embedder();
	uint32_t n = ab_embed_dims(e);
	float *rare = vec(e, "rare");
	float *common = vec(e, "common");
	float *q = ab_xmalloc(n * sizeof(float));
	cr_assert_gt(ab_embed_query(e, "rare common", 11, fake_idf, NULL, q), 0);
	cr_expect_float_eq(norm(q, n), 1.0, 1e-5);
	float sr = ab_embed_cosine(q, rare, n), sc = ab_embed_cosine(q, common, n);
	cr_expect_gt(sr, 3 * sc, "idf-weighted query leans to the rare term: %f vs %f", sr, sc);
	/* without idf, the query is the document vector */
	float *d = vec(e, "rare common");
	cr_assert_gt(ab_embed_query(e, "rare common", 11, NULL, NULL, q), 0);
	cr_expect_eq(memcmp(q, d, n * sizeof(float)), 0);
	free(rare);
	free(common);
	free(q);
	free(d);
	ab_embed_free(e);
}

Test(embed, idf_from_a_text_index)
{
	struct ab_textidx *x;
	cr_assert_eq(ab_textidx_new(NULL, &x), 0);
	void *old;
	ab_textidx_add(x, "1", 1, "wing lift", 9, NULL, &old);
	ab_textidx_add(x, "2", 1, "wing drag", 9, NULL, &old);
	ab_textidx_add(x, "3", 1, "wing flutter", 12, NULL, &old);
	/* terms are analysed the same way: "wings" -> "wing" */
	cr_expect_float_eq(ab_embed_textidx_idf("wing", 4, x), ab_textidx_idf(x, "wing", 4), 1e-12);
	cr_expect_gt(ab_embed_textidx_idf("flutter", 7, x), ab_embed_textidx_idf("wing", 4, x));
	struct ab_embedder *e = embedder();
	uint32_t n = ab_embed_dims(e);
	float *q = ab_xmalloc(n * sizeof(float));
	cr_assert_gt(ab_embed_query(e, "wings flutter", 13, ab_embed_textidx_idf, x, q), 0);
	float *d1 = vec(e, "wing lift"), *d3 = vec(e, "wing flutter");
	cr_expect_gt(ab_embed_cosine(q, d3, n), ab_embed_cosine(q, d1, n) + 0.3f);
	free(q);
	free(d1);
	free(d3);
	ab_embed_free(e);
	ab_textidx_free(x, NULL);
}

/* ---- threads ---- */

struct tshare {
	const struct ab_embedder *e;
	const float *want;
};

static const char *const thread_text = "Compressible boundary layers over flat plates at high Mach";

static void *thread_main(void *arg)
{
	const struct tshare *s = arg;
	uint32_t n = ab_embed_dims(s->e);
	float *v = ab_xmalloc(n * sizeof(float));
	void *bad = NULL;
	for (int i = 0; i < 200 && !bad; i++) {
		ab_embed_doc(s->e, thread_text, strlen(thread_text), v);
		if (memcmp(v, s->want, n * sizeof(float)) != 0)
			bad = (void *)1;
	}
	free(v);
	return bad;
}

Test(embed, shared_embedder_across_threads)
{
	struct ab_embedder *e = embedder();
	float *want = vec(e, thread_text);
	struct tshare s = {e, want};
	pthread_t t[6];
	for (int i = 0; i < 6; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, thread_main, &s), 0);
	for (int i = 0; i < 6; i++) {
		void *r;
		pthread_join(t[i], &r);
		cr_expect_null(r, "thread %d", i);
	}
	free(want);
	ab_embed_free(e);
}
