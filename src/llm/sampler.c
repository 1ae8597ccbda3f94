/*
 * sampler.c - choosing the next token from the logits (sampler.h).
 *
 * The chain, in order:
 *
 *   1. penalties over the last repeat_last_n accepted tokens (a ring
 *      buffer): each distinct token seen there gets the repeat penalty
 *      (logit / penalty when the logit is positive, logit * penalty
 *      otherwise, as in the CTRL paper and llama.cpp), then OpenAI's
 *      presence and frequency penalties: logit -= count * frequency +
 *      (count > 0) * presence;
 *   2. temperature 0: the argmax, lowest id on a tie, and nothing else;
 *   3. top-k: the k highest logits (ties broken by lower id) survive;
 *   4. softmax of logit / temperature over the survivors;
 *   5. top-p: the smallest prefix (by probability) whose mass reaches p;
 *   6. min-p: tokens below min_p * (top probability) go;
 *   7. one draw from the renormalised distribution with xoshiro256**,
 *      seeded through splitmix64 from params.seed (0: from the clock), so
 *      a given seed always gives the same sequence.
 *
 * Candidates are (id, logit) pairs; top-k uses a bounded min-heap
 * (O(n log k)) so that a 150k vocabulary costs no full sort, and only the
 * survivors are sorted.
 */
#include "sampler.h"
#include "quant.h"

#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cand {
	int32_t id;
	float logit;
	float p;
};

struct ab_sampler {
	struct ab_sampler_params p;
	int n_vocab;
	int32_t *last; /* ring of the last repeat_last_n accepted ids */
	int n_last, head;
	uint16_t *count; /* per-id count scratch, n_vocab */
	struct cand *cands;
	uint64_t s[4];
};

void ab_sampler_defaults(struct ab_sampler_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.9f;
	p->min_p = 0.0f;
	p->repeat_penalty = 1.1f;
	p->repeat_last_n = 64;
	p->presence_penalty = 0.0f;
	p->frequency_penalty = 0.0f;
	p->seed = 0;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(struct ab_sampler *s)
{
	uint64_t r = rotl(s->s[1] * 5, 7) * 9;
	uint64_t t = s->s[1] << 17;
	s->s[2] ^= s->s[0];
	s->s[3] ^= s->s[1];
	s->s[1] ^= s->s[2];
	s->s[0] ^= s->s[3];
	s->s[2] ^= t;
	s->s[3] = rotl(s->s[3], 45);
	return r;
}

/* Uniform in [0, 1). */
static double next_double(struct ab_sampler *s)
{
	return (double)(next_u64(s) >> 11) * 0x1.0p-53;
}

struct ab_sampler *ab_sampler_new(const struct ab_sampler_params *p, int n_vocab)
{
	if (n_vocab <= 0)
		return NULL;
	struct ab_sampler *s = ab_xcalloc(1, sizeof(*s));
	if (p)
		s->p = *p;
	else
		ab_sampler_defaults(&s->p);
	if (s->p.repeat_last_n < 0)
		s->p.repeat_last_n = 0;
	s->n_vocab = n_vocab;
	s->last = ab_xcalloc((size_t)s->p.repeat_last_n + 1, sizeof(int32_t));
	s->count = ab_xcalloc((size_t)n_vocab, sizeof(uint16_t));
	s->cands = ab_xmalloc((size_t)n_vocab * sizeof(struct cand));
	uint64_t seed = s->p.seed;
	if (seed == 0)
		seed = (uint64_t)ab_wall_ms() * 1000003ull ^ (uint64_t)ab_now_ms_f() ^
		       ((uint64_t)getpid() << 32);
	for (int i = 0; i < 4; i++)
		s->s[i] = splitmix64(&seed);
	return s;
}

void ab_sampler_free(struct ab_sampler *s)
{
	if (!s)
		return;
	free(s->last);
	free(s->count);
	free(s->cands);
	free(s);
}

void ab_sampler_accept(struct ab_sampler *s, int32_t id)
{
	if (!s || s->p.repeat_last_n <= 0)
		return;
	s->last[s->head] = id;
	s->head = (s->head + 1) % s->p.repeat_last_n;
	if (s->n_last < s->p.repeat_last_n)
		s->n_last++;
}

static void apply_penalties(struct ab_sampler *s, float *logits)
{
	const struct ab_sampler_params *p = &s->p;
	if (s->n_last == 0 ||
	    (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f &&
	     p->frequency_penalty == 0.0f))
		return;
	for (int i = 0; i < s->n_last; i++) {
		int32_t id = s->last[i];
		if (id >= 0 && id < s->n_vocab && s->count[id] < UINT16_MAX)
			s->count[id]++;
	}
	for (int i = 0; i < s->n_last; i++) {
		int32_t id = s->last[i];
		if (id < 0 || id >= s->n_vocab || s->count[id] == 0)
			continue; /* out of range, or already done */
		float c = s->count[id];
		float l = logits[id];
		if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0)
			l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
		l -= c * p->frequency_penalty + p->presence_penalty;
		logits[id] = l;
		s->count[id] = 0;
	}
}

/* a ranks before b: higher logit, then lower id. */
static bool better(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;
	if (better(a, b))
		return -1;
	if (better(b, a))
		return 1;
	return 0;
}

/* Keeps the k best of n candidates in c[0..k) with a min-heap (root =
 * worst kept). */
static void select_top_k(struct cand *c, int n, int k)
{
	for (int i = 0; i < n; i++) {
		struct cand x = c[i];
		int pos;
		if (i < k) {
			pos = i; /* sift up */
			while (pos > 0) {
				int par = (pos - 1) / 2;
				if (!better(&c[par], &x))
					break;
				c[pos] = c[par];
				pos = par;
			}
			c[pos] = x;
			continue;
		}
		if (!better(&x, &c[0]))
			continue;
		pos = 0; /* replace the root, sift down */
		for (;;) {
			int l = 2 * pos + 1, r = l + 1, w = pos;
			const struct cand *wc = &x;
			if (l < k && better(wc, &c[l])) {
				w = l;
				wc = &c[l];
			}
			if (r < k && better(wc, &c[r]))
				w = r;
			if (w == pos)
				break;
			c[pos] = c[w];
			pos = w;
		}
		c[pos] = x;
	}
}

int32_t ab_sampler_sample(struct ab_sampler *s, float *logits)
{
	const struct ab_sampler_params *p = &s->p;
	int n = s->n_vocab;
	apply_penalties(s, logits);

	if (!(p->temperature > 0))
		return (int32_t)ab_argmax_f32(logits, n);

	struct cand *c = s->cands;
	for (int i = 0; i < n; i++)
		c[i] = (struct cand){.id = i, .logit = logits[i]};
	if (p->top_k > 0 && p->top_k < n) {
		select_top_k(c, n, p->top_k);
		n = p->top_k;
	}
	qsort(c, (size_t)n, sizeof(*c), cmp_cand);

	/* softmax with temperature */
	float mx = c[0].logit;
	double sum = 0;
	for (int i = 0; i < n; i++) {
		c[i].p = expf((c[i].logit - mx) / p->temperature);
		sum += c[i].p;
	}
	for (int i = 0; i < n; i++)
		c[i].p = (float)(c[i].p / sum);

	if (p->top_p > 0 && p->top_p < 1.0f) {
		double cum = 0;
		for (int i = 0; i < n; i++) {
			cum += c[i].p;
			if (cum >= p->top_p) {
				n = i + 1;
				break;
			}
		}
	}
	if (p->min_p > 0) {
		float cut = p->min_p * c[0].p;
		int keep = 1;
		while (keep < n && c[keep].p >= cut)
			keep++;
		n = keep;
	}

	double total = 0;
	for (int i = 0; i < n; i++)
		total += c[i].p;
	double r = next_double(s) * total;
	double cum = 0;
	for (int i = 0; i < n; i++) {
		cum += c[i].p;
		if (r < cum)
			return c[i].id;
	}
	return c[n - 1].id;
}
