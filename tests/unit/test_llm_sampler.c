/*
 * test_llm_sampler.c - the sampler chain of sampler.h: greedy ties,
 * seeded determinism, top-k/top-p/min-p cuts and the three penalties.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "sampler.h"

static struct ab_sampler_params plain(void)
{
	struct ab_sampler_params p;
	ab_sampler_defaults(&p);
	p.repeat_penalty = 1.0f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	p.seed = 42;
	return p;
}

Test(sampler, defaults_are_ollamas)
{
	struct ab_sampler_params p;
	ab_sampler_defaults(&p);
	cr_assert_float_eq(p.temperature, 0.8f, 1e-6);
	cr_assert_eq(p.top_k, 40);
	cr_assert_float_eq(p.top_p, 0.9f, 1e-6);
	cr_assert_float_eq(p.repeat_penalty, 1.1f, 1e-6);
	cr_assert_eq(p.repeat_last_n, 64);
}

Test(sampler, greedy_tie_takes_lowest_id)
{
	struct ab_sampler_params p = plain();
	p.temperature = 0;
	struct ab_sampler *s = ab_sampler_new(&p, 6);
	float l[6] = {1, 3, 2, 3, 3, -1};
	cr_assert_eq(ab_sampler_sample(s, l), 1);
	float l2[6] = {-5, -4, -3, -2, -1, -1};
	cr_assert_eq(ab_sampler_sample(s, l2), 4);
	ab_sampler_free(s);
	ab_sampler_free(NULL);
}

static void draw(uint64_t seed, int32_t *out, int n)
{
	struct ab_sampler_params p = plain();
	p.seed = seed;
	p.temperature = 1.0f;
	struct ab_sampler *s = ab_sampler_new(&p, 100);
	for (int i = 0; i < n; i++) {
		float l[100];
		for (int j = 0; j < 100; j++)
			l[j] = (float)((j * 37) % 11) * 0.3f;
		out[i] = ab_sampler_sample(s, l);
		ab_sampler_accept(s, out[i]);
	}
	ab_sampler_free(s);
}

Test(sampler, same_seed_same_sequence)
{
	int32_t a[64], b[64], c[64];
	draw(7, a, 64);
	draw(7, b, 64);
	draw(8, c, 64);
	cr_assert_arr_eq(a, b, sizeof(a));
	cr_assert(memcmp(a, c, sizeof(a)) != 0, "another seed gives another sequence");
	/* and the draws are spread: more than a few distinct ids */
	int distinct = 0;
	bool seen[100] = {0};
	for (int i = 0; i < 64; i++)
		if (!seen[a[i]]) {
			seen[a[i]] = true;
			distinct++;
		}
	cr_assert_gt(distinct, 5);
}

Test(sampler, top_k_1_is_greedy)
{
	struct ab_sampler_params p = plain();
	p.temperature = 5.0f;
	p.top_k = 1;
	struct ab_sampler *s = ab_sampler_new(&p, 50);
	for (int round = 0; round < 50; round++) {
		float l[50];
		for (int j = 0; j < 50; j++)
			l[j] = (float)((j * 13 + round * 7) % 50);
		int best = 0;
		for (int j = 1; j < 50; j++)
			if (l[j] > l[best])
				best = j;
		cr_assert_eq(ab_sampler_sample(s, l), best);
	}
	ab_sampler_free(s);
}

/* Frequencies of n draws from logits l (k tokens). */
static void histogram(struct ab_sampler_params p, const float *l, int k, int n, int *h)
{
	struct ab_sampler *s = ab_sampler_new(&p, k);
	memset(h, 0, sizeof(int) * (size_t)k);
	for (int i = 0; i < n; i++) {
		float c[16];
		memcpy(c, l, sizeof(float) * (size_t)k);
		int32_t id = ab_sampler_sample(s, c);
		cr_assert(id >= 0 && id < k);
		h[id]++;
	}
	ab_sampler_free(s);
}

Test(sampler, top_k_keeps_the_k_best)
{
	struct ab_sampler_params p = plain();
	p.temperature = 1.0f;
	p.top_k = 3;
	float l[8] = {0.5f, 2, 0.1f, 1.9f, 1.8f, 0, 1.7f, -1};
	int h[8];
	histogram(p, l, 8, 3000, h);
	cr_assert(h[1] > 0 && h[3] > 0 && h[4] > 0);
	cr_assert_eq(h[0] + h[2] + h[5] + h[6] + h[7], 0);
}

Test(sampler, top_p_cuts_the_tail)
{
	/* probabilities 0.5, 0.25, 0.125, 0.0625, ... at temperature 1 */
	float l[6];
	for (int i = 0; i < 6; i++)
		l[i] = -(float)i * logf(2.0f);
	struct ab_sampler_params p = plain();
	p.temperature = 1.0f;
	p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.75: ids 0 and 1 */
	int h[6];
	histogram(p, l, 6, 3000, h);
	cr_assert(h[0] > 0 && h[1] > 0);
	cr_assert_eq(h[2] + h[3] + h[4] + h[5], 0);
	cr_assert(h[0] > h[1], "renormalised 2:1");
	p.top_p = 0.8f; /* now id 2 as well */
	histogram(p, l, 6, 3000, h);
	cr_assert(h[2] > 0);
	cr_assert_eq(h[3] + h[4] + h[5], 0);
}

Test(sampler, min_p_is_relative_to_the_top)
{
	float l[6];
	for (int i = 0; i < 6; i++)
		l[i] = -(float)i * logf(2.0f); /* p_i / p_0 = 2^-i */
	struct ab_sampler_params p = plain();
	p.temperature = 1.0f;
	p.min_p = 0.2f; /* keeps 1, 1/2, 1/4; drops 1/8 */
	int h[6];
	histogram(p, l, 6, 4000, h);
	cr_assert(h[0] > 0 && h[1] > 0 && h[2] > 0);
	cr_assert_eq(h[3] + h[4] + h[5], 0);
}

Test(sampler, penalties_change_the_right_logits)
{
	struct ab_sampler_params p = plain();
	p.temperature = 0;
	p.repeat_penalty = 2.0f;
	p.repeat_last_n = 3;
	struct ab_sampler *s = ab_sampler_new(&p, 6);
	ab_sampler_accept(s, 5); /* falls out of the window of 3 */
	ab_sampler_accept(s, 1);
	ab_sampler_accept(s, 2);
	ab_sampler_accept(s, 1);
	float l[6] = {1, 4, -2, 3, 0.5f, 6};
	ab_sampler_sample(s, l);
	cr_assert_float_eq(l[0], 1.0f, 1e-6);
	cr_assert_float_eq(l[1], 2.0f, 1e-6, "positive: divided (once, though seen twice)");
	cr_assert_float_eq(l[2], -4.0f, 1e-6, "negative: multiplied");
	cr_assert_float_eq(l[3], 3.0f, 1e-6);
	cr_assert_float_eq(l[5], 6.0f, 1e-6, "outside the window: untouched");
	ab_sampler_free(s);

	p.repeat_penalty = 1.0f;
	p.presence_penalty = 0.5f;
	p.frequency_penalty = 0.25f;
	s = ab_sampler_new(&p, 6);
	ab_sampler_accept(s, 1);
	ab_sampler_accept(s, 2);
	ab_sampler_accept(s, 1);
	float m[6] = {1, 4, -2, 3, 0.5f, 6};
	ab_sampler_sample(s, m);
	cr_assert_float_eq(m[1], 4.0f - 0.5f - 2 * 0.25f, 1e-6);
	cr_assert_float_eq(m[2], -2.0f - 0.5f - 0.25f, 1e-6);
	cr_assert_float_eq(m[0], 1.0f, 1e-6);
	cr_assert_float_eq(m[3], 3.0f, 1e-6);
	ab_sampler_free(s);
}

Test(sampler, penalty_can_change_the_greedy_choice)
{
	struct ab_sampler_params p = plain();
	p.temperature = 0;
	p.repeat_penalty = 1.5f;
	struct ab_sampler *s = ab_sampler_new(&p, 3);
	ab_sampler_accept(s, 0);
	float l[3] = {3, 2.5f, 1};
	cr_assert_eq(ab_sampler_sample(s, l), 1);
	ab_sampler_free(s);
}
