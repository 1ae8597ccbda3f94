/*
 * test_redismod.c - the module's own parts outside redis-server: the
 * dictionary, and the RDB save/load of both types through the stand-in IO
 * of tests/fuzz/rm_fakeio.c (round trips, and every truncation of a saved
 * value refused cleanly). With AB_WRITE_CORPUS=DIR it also writes the
 * saved values there as seeds for the RDB fuzzer.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "hnsw.h"
#include "module.h"
#include "rm_fakeio.h"
#include "textidx.h"

Test(dict, set_get_delete_and_shrink)
{
	struct ab_dict *d = ab_dict_new();
	enum { N = 20000 };
	char **keys = calloc(N, sizeof(*keys));
	for (int i = 0; i < N; i++) {
		keys[i] = ab_xasprintf("key-%d", i);
		cr_assert_null(ab_dict_set(d, keys[i], strlen(keys[i]), keys[i]));
	}
	cr_assert_eq(ab_dict_count(d), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(ab_dict_get(d, keys[i], strlen(keys[i])), keys[i]);
	cr_assert_null(ab_dict_get(d, "key-x", 5));
	size_t big = ab_dict_memory(d);
	for (int i = 0; i < N; i += 2)
		cr_assert_eq(ab_dict_del(d, keys[i], strlen(keys[i])), keys[i]);
	cr_assert_null(ab_dict_del(d, keys[0], strlen(keys[0])));
	for (int i = 1; i < N; i += 2)
		cr_assert_eq(ab_dict_get(d, keys[i], strlen(keys[i])), keys[i], "lost %s", keys[i]);
	for (int i = 1; i < N - 2; i += 2)
		ab_dict_del(d, keys[i], strlen(keys[i]));
	cr_assert_eq(ab_dict_count(d), 1);
	cr_assert_lt(ab_dict_memory(d), big / 100, "the table shrinks with its count");
	uint64_t rng = 1;
	for (int k = 0; k < 10; k++)
		cr_assert_eq(ab_dict_random(d, &rng), keys[N - 1]);
	size_t pos = 0, n = 0;
	const char *key;
	size_t len;
	while (ab_dict_next(d, &pos, &key, &len))
		n++;
	cr_assert_eq(n, 1);
	ab_dict_free(d, NULL);
	for (int i = 0; i < N; i++)
		free(keys[i]);
	free(keys);
}

static void write_seed(const char *name, const void *data, size_t len, uint8_t kind)
{
	const char *dir = getenv("AB_WRITE_CORPUS");
	if (!dir)
		return;
	char *path = ab_xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(&kind, 1, 1, f);
		fwrite(data, 1, len, f);
		fclose(f);
	}
	free(path);
}

static struct ab_buf save(void *v, bool text)
{
	struct ab_fakeio io = {0};
	ab_buf_init(&io.out);
	if (text)
		ab_rm_text_rdb_save((RedisModuleIO *)(void *)&io, v);
	else
		ab_rm_vset_rdb_save((RedisModuleIO *)(void *)&io, v);
	return io.out;
}

static void *load(const struct ab_buf *b, size_t len, bool text)
{
	struct ab_fakeio io = {.in = (const uint8_t *)b->data, .len = len};
	return text ? ab_rm_text_rdb_load((RedisModuleIO *)(void *)&io, 1)
		    : ab_rm_vset_rdb_load((RedisModuleIO *)(void *)&io, 1);
}

static void *make_vset(int quant, int n, uint32_t dim)
{
	void *vs = ab_rm_vset_new(dim, quant, 8);
	cr_assert_not_null(vs);
	uint64_t rng = 42;
	float *v = malloc(dim * sizeof(float));
	for (int i = 0; i < n; i++) {
		for (uint32_t k = 0; k < dim; k++)
			v[k] = (float)((double)(ab_rng_next(&rng) >> 11) / 9007199254740992.0 - 0.5);
		char name[32];
		snprintf(name, sizeof(name), "e%d", i);
		const char *attr = i % 3 == 0 ? "{\"i\": 1}" : NULL;
		cr_assert_eq(ab_rm_vset_put(vs, name, strlen(name), v, attr, attr ? strlen(attr) : 0), 1);
	}
	free(v);
	return vs;
}

Test(rdb, vector_sets_round_trip_and_truncations)
{
	ab_fakeio_install();
	const int quants[] = {AB_VQ_F32, AB_VQ_Q8, AB_VQ_BIN};
	for (int qi = 0; qi < 3; qi++) {
		void *vs = make_vset(quants[qi], 60, 12);
		struct ab_buf a = save(vs, false);
		char seed[32];
		snprintf(seed, sizeof(seed), "vset-q%d", quants[qi]);
		write_seed(seed, a.data, a.len, 0);
		void *back = load(&a, a.len, false);
		cr_assert_not_null(back, "a saved set loads");
		struct ab_buf b = save(back, false);
		cr_assert_eq(a.len, b.len);
		cr_assert(memcmp(a.data, b.data, a.len) == 0, "save(load(save(x))) == save(x)");
		for (size_t cut = 0; cut < a.len; cut += (cut < 200 ? 1 : 7)) {
			void *t = load(&a, cut, false);
			cr_assert_null(t, "a set cut at %zu of %zu bytes is refused", cut, a.len);
		}
		/* Flip bytes: either refused or a consistent value. */
		for (size_t at = 0; at < a.len; at += 13) {
			a.data[at] ^= 0x5a;
			void *t = load(&a, a.len, false);
			if (t)
				ab_rm_vset_free(t);
			a.data[at] ^= 0x5a;
		}
		ab_buf_free(&a);
		ab_buf_free(&b);
		ab_rm_vset_free(back);
		ab_rm_vset_free(vs);
	}
}

Test(rdb, text_index_round_trip_and_truncations)
{
	ab_fakeio_install();
	struct ab_textidx_params p;
	ab_textidx_params_default(&p);
	void *t = ab_rm_text_new(&p);
	cr_assert_not_null(t);
	const char *texts[] = {"The quick brown fox jumps over the lazy dog",
			       "Vector search with HNSW graphs and quantised vectors",
			       "BM25 ranking: term frequency, document length, k1 and b",
			       "Über naïve café résumé — Unicode text, folded"};
	for (int i = 0; i < 4; i++) {
		char id[16];
		snprintf(id, sizeof(id), "doc-%d", i);
		cr_assert_eq(ab_rm_text_add(t, id, strlen(id), texts[i], i == 2 ? "{\"p\": 3}" : NULL), 1);
	}
	struct ab_buf a = save(t, true);
	write_seed("text-1", a.data, a.len, 1);
	void *back = load(&a, a.len, true);
	cr_assert_not_null(back);
	struct ab_text_hit hits[4];
	int n = ab_textidx_search(ab_rm_text_index(back), "quick fox", 9, 4, NULL, NULL, hits);
	cr_assert_geq(n, 1);
	size_t idlen;
	const char *best = ab_textdoc_id(hits[0].doc, &idlen);
	cr_assert(idlen == 5 && memcmp(best, "doc-0", 5) == 0, "best hit %.*s", (int)idlen, best);
	struct ab_buf b = save(back, true);
	cr_assert_eq(a.len, b.len);
	for (size_t cut = 0; cut < a.len; cut++)
		cr_assert_null(load(&a, cut, true), "an index cut at %zu is refused", cut);
	ab_buf_free(&a);
	ab_buf_free(&b);
	ab_rm_text_free(back);
	ab_rm_text_free(t);
}
