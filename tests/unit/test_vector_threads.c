/*
 * test_vector_threads.c - concurrent readers of src/vector/hnsw.h: many
 * threads search one index at once (more threads than the scratch pool
 * has slots, so the private-scratch fallback runs too), with and without
 * filters, exact scans and similarity calls mixed in, and every answer
 * must equal the one a single thread got before. Meant to run under the
 * ASan build as well (and TSan, where available) to catch any shared
 * mutable state.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hnsw.h"

#define NT 24 /* more than the 16 pooled scratch slots */
#define NQ 200
#define K 10

static uint64_t rng_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float unit(uint64_t *x)
{
	return (float)((double)(rng_next(x) >> 11) / 4503599627370496.0 - 1.0);
}

struct shared {
	const struct ab_hnsw *h;
	const float *q;
	size_t dim;
	uint32_t want[NQ][K];     /* plain search, single-threaded */
	uint32_t want_f[NQ][K];   /* filtered */
	uint32_t want_x[NQ][K];   /* exact */
	int nwant[NQ], nwant_f[NQ], nwant_x[NQ];
	pthread_barrier_t start;
};

struct worker {
	struct shared *sh;
	int tid;
	int mismatches;
	size_t searches;
};

static uint32_t vid(const struct ab_hnsw_node *n)
{
	return (uint32_t)(uintptr_t)ab_hnsw_node_value(n);
}

static bool odd_values(void *value, void *ctx)
{
	(void)ctx;
	return ((uintptr_t)value & 1) != 0;
}

static void *reader(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	struct ab_hnsw_hit hits[K];
	pthread_barrier_wait(&sh->start);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < NQ; i++) {
			int qi = (i * 7 + w->tid * 13) % NQ;
			const float *q = sh->q + (size_t)qi * sh->dim;
			int kind = (qi + w->tid + round) % 4;
			int n;
			if (kind == 0 || kind == 3) {
				n = ab_hnsw_search(sh->h, q, K, 50, NULL, NULL, 0, hits);
				if (n != sh->nwant[qi])
					w->mismatches++;
				for (int j = 0; j < n && j < K; j++)
					w->mismatches += vid(hits[j].node) != sh->want[qi][j];
			} else if (kind == 1) {
				n = ab_hnsw_search(sh->h, q, K, 50, odd_values, NULL, 5000, hits);
				if (n != sh->nwant_f[qi])
					w->mismatches++;
				for (int j = 0; j < n && j < K; j++)
					w->mismatches += vid(hits[j].node) != sh->want_f[qi][j];
			} else {
				n = ab_hnsw_search_exact(sh->h, q, K, NULL, NULL, hits);
				if (n != sh->nwant_x[qi])
					w->mismatches++;
				for (int j = 0; j < n && j < K; j++) {
					w->mismatches += vid(hits[j].node) != sh->want_x[qi][j];
					float s = ab_hnsw_similarity(sh->h, q, hits[j].node);
					w->mismatches += fabsf(s - hits[j].score) > 1e-6f;
				}
			}
			w->searches++;
		}
	}
	return NULL;
}

static void run(enum ab_vq quant)
{
	const size_t n = 3000, dim = 48;
	struct ab_hnsw_params p = {.dim = dim, .quant = quant, .m = 8, .ef_construction = 60,
				   .seed = 1};
	struct ab_hnsw *h;
	cr_assert_eq(ab_hnsw_new(&p, &h), 0);
	uint64_t s = 5;
	float *v = malloc((n + NQ) * dim * sizeof(float));
	for (size_t i = 0; i < (n + NQ) * dim; i++)
		v[i] = unit(&s);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(ab_hnsw_insert(h, v + i * dim, (void *)(uintptr_t)(i + 1), 0, NULL), 0);
	struct shared *sh = calloc(1, sizeof(*sh));
	sh->h = h;
	sh->q = v + n * dim;
	sh->dim = dim;
	struct ab_hnsw_hit hits[K];
	for (int i = 0; i < NQ; i++) {
		const float *q = sh->q + (size_t)i * dim;
		sh->nwant[i] = ab_hnsw_search(h, q, K, 50, NULL, NULL, 0, hits);
		for (int j = 0; j < sh->nwant[i]; j++)
			sh->want[i][j] = vid(hits[j].node);
		sh->nwant_f[i] = ab_hnsw_search(h, q, K, 50, odd_values, NULL, 5000, hits);
		for (int j = 0; j < sh->nwant_f[i]; j++) {
			sh->want_f[i][j] = vid(hits[j].node);
			cr_assert(sh->want_f[i][j] & 1);
		}
		sh->nwant_x[i] = ab_hnsw_search_exact(h, q, K, NULL, NULL, hits);
		for (int j = 0; j < sh->nwant_x[i]; j++)
			sh->want_x[i][j] = vid(hits[j].node);
		cr_assert_eq(sh->nwant[i], K);
	}
	pthread_barrier_init(&sh->start, NULL, NT);
	pthread_t th[NT];
	struct worker w[NT];
	for (int t = 0; t < NT; t++) {
		w[t] = (struct worker){sh, t, 0, 0};
		cr_assert_eq(pthread_create(&th[t], NULL, reader, &w[t]), 0);
	}
	size_t total = 0;
	int bad = 0;
	for (int t = 0; t < NT; t++) {
		pthread_join(th[t], NULL);
		total += w[t].searches;
		bad += w[t].mismatches;
	}
	cr_assert_eq(bad, 0, "%d answers differ from the single-threaded ones", bad);
	cr_assert_eq(total, (size_t)NT * NQ * 3);
	/* the pool's scratch shows in the memory figure and stays bounded */
	size_t mem = ab_hnsw_memory(h);
	cr_assert(mem > 0);
	pthread_barrier_destroy(&sh->start);
	free(sh);
	free(v);
	ab_hnsw_free(h, NULL);
}

Test(threads, concurrent_searches_q8)
{
	run(AB_VQ_Q8);
}

Test(threads, concurrent_searches_f32)
{
	run(AB_VQ_F32);
}

Test(threads, concurrent_searches_bin)
{
	run(AB_VQ_BIN);
}
