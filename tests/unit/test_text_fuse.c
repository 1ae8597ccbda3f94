/*
 * test_text_fuse.c - reciprocal-rank fusion (src/text/fuse.h): scores
 * against hand-computed values, weights, repeated ids, ties, limits.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common.h"
#include "fuse.h"

static struct ab_rrf_list list(const char *const *ids, size_t *lens, size_t n, double w)
{
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(ids[i]);
	return (struct ab_rrf_list){ids, lens, n, w};
}

static int hit_is(const struct ab_rrf_hit *h, const char *id)
{
	return h->id_len == strlen(id) && memcmp(h->id, id, h->id_len) == 0;
}

Test(fuse, defaults)
{
	struct ab_hybrid_params p;
	ab_hybrid_params_default(&p);
	cr_expect_float_eq(p.rrf_k, 60.0, 1e-9);
	cr_expect_gt(p.w_text, 0);
	cr_expect_gt(p.w_vector, 0);
	cr_expect_gt(p.depth, 0);
}

/* k = 60: a = 1/61 + 1/62 = 0.032522, c = 1/63 + 1/61 = 0.032266,
 * b = 1/62 = 0.016129 */
Test(fuse, hand_computed_scores)
{
	const char *l1[] = {"a", "b", "c"}, *l2[] = {"c", "a"};
	size_t n1[3], n2[2];
	struct ab_rrf_list lists[2] = {list(l1, n1, 3, 1.0), list(l2, n2, 2, 1.0)};
	struct ab_rrf_hit h[5];
	cr_assert_eq(ab_rrf_fuse(lists, 2, 60, 5, h), 3);
	cr_expect(hit_is(&h[0], "a"));
	cr_expect_float_eq(h[0].score, 0.032522, 1e-6);
	cr_expect(hit_is(&h[1], "c"));
	cr_expect_float_eq(h[1].score, 0.032266, 1e-6);
	cr_expect(hit_is(&h[2], "b"));
	cr_expect_float_eq(h[2].score, 0.016129, 1e-6);
	cr_expect(h[0].id == l1[0], "ids point into the lists");

	/* weights: the second list twice as strong puts c first */
	lists[1].weight = 2.0;
	cr_assert_eq(ab_rrf_fuse(lists, 2, 60, 1, h), 1);
	cr_expect(hit_is(&h[0], "c"));
	cr_expect_float_eq(h[0].score, 2.0 / 61 + 1.0 / 63, 1e-9);
}

Test(fuse, repeated_ids_ties_and_arguments)
{
	const char *l1[] = {"x", "x", "y"}, *l2[] = {"y", "x"};
	size_t n1[3], n2[2];
	struct ab_rrf_list lists[2] = {list(l1, n1, 3, 1.0), list(l2, n2, 2, 1.0)};
	struct ab_rrf_hit h[4];
	cr_assert_eq(ab_rrf_fuse(lists, 2, 10, 4, h), 2);
	/* x: 1/11 (its repeat ignored) + 1/12; y: 1/13 + 1/11 */
	cr_expect(hit_is(&h[0], "x"));
	cr_expect_float_eq(h[0].score, 1.0 / 11 + 1.0 / 12, 1e-9);
	cr_expect_float_eq(h[1].score, 1.0 / 13 + 1.0 / 11, 1e-9);

	const char *t1[] = {"q", "p"}, *t2[] = {"p", "q"};
	size_t m1[2], m2[2];
	struct ab_rrf_list tie[2] = {list(t1, m1, 2, 1.0), list(t2, m2, 2, 1.0)};
	cr_assert_eq(ab_rrf_fuse(tie, 2, 60, 4, h), 2);
	cr_expect(hit_is(&h[0], "p"), "equal scores go by id");

	cr_expect_eq(ab_rrf_fuse(lists, 2, 0, 4, h), AB_EINVAL);
	cr_expect_eq(ab_rrf_fuse(lists, 2, 60, 4, NULL), AB_EINVAL);
	cr_expect_eq(ab_rrf_fuse(NULL, 2, 60, 4, h), AB_EINVAL);
	cr_expect_eq(ab_rrf_fuse(lists, 0, 60, 4, h), 0);
	cr_expect_eq(ab_rrf_fuse(lists, 2, 60, 0, NULL), 0);
}
