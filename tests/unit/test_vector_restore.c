/*
 * test_vector_restore.c - persistence of src/vector/hnsw.h: a graph saved
 * through node_raw/node_links and restored answers exactly as the
 * original, in all three quantisations; every kind of corruption (links,
 * levels, lengths, ids, floats) is an error and never a crash, and the
 * index can then still be freed with its values (run this under ASan);
 * random damage to a saved graph either fails cleanly or restores a graph
 * that passes ab_hnsw_check.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hnsw.h"

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

/* A saved graph, as the module's RDB would hold it. */
struct saved_node {
	uint32_t id;
	int level;
	int orig_level; /* what the link arrays were made for */
	unsigned char *data;
	size_t len;
	float norm, range;
	size_t nlinks[AB_HNSW_MAX_LEVEL];
	uint32_t *links[AB_HNSW_MAX_LEVEL];
	size_t value;
};

struct saved {
	struct ab_hnsw_params p;
	size_t n;
	struct saved_node *nodes;
};

static void *val(size_t i)
{
	size_t *p = malloc(sizeof(size_t));
	*p = i;
	return p;
}

static size_t vidx(const struct ab_hnsw_node *n)
{
	return *(size_t *)ab_hnsw_node_value(n);
}

static struct ab_hnsw *build(enum ab_vq q, size_t n, size_t dim, float **vecs)
{
	struct ab_hnsw_params p = {.dim = (uint32_t)dim, .quant = q, .m = 6, .ef_construction = 50,
				   .seed = 3};
	struct ab_hnsw *h;
	cr_assert_eq(ab_hnsw_new(&p, &h), 0);
	float *v = malloc(n * dim * sizeof(float));
	uint64_t s = 17;
	for (size_t i = 0; i < n * dim; i++)
		v[i] = unit(&s);
	struct ab_hnsw_node **nodes = malloc(n * sizeof(*nodes));
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(ab_hnsw_insert(h, v + i * dim, val(i), 0, &nodes[i]), 0);
	/* a few deletes, so that ids have holes to be reused */
	for (size_t i = 0; i < n; i += 9)
		free(ab_hnsw_delete(h, nodes[i]));
	free(nodes);
	*vecs = v;
	return h;
}

static struct saved save(const struct ab_hnsw *h)
{
	struct saved s = {0};
	s.p = (struct ab_hnsw_params){.dim = ab_hnsw_dim(h), .quant = ab_hnsw_quant(h),
				      .m = ab_hnsw_m(h), .ef_construction = ab_hnsw_ef_construction(h)};
	s.n = ab_hnsw_count(h);
	s.nodes = calloc(s.n, sizeof(*s.nodes));
	size_t i = 0;
	struct ab_hnsw_node *lk[1024];
	for (struct ab_hnsw_node *x = ab_hnsw_first(h); x; x = ab_hnsw_next(h, x), i++) {
		struct saved_node *sn = &s.nodes[i];
		struct ab_hnsw_raw raw;
		ab_hnsw_node_raw(h, x, &raw);
		sn->id = ab_hnsw_node_id(x);
		sn->level = ab_hnsw_node_level(x);
		sn->orig_level = sn->level;
		sn->len = raw.len;
		sn->data = malloc(raw.len);
		memcpy(sn->data, raw.data, raw.len);
		sn->norm = raw.norm;
		sn->range = raw.range;
		sn->value = vidx(x);
		for (int l = 0; l <= sn->level; l++) {
			size_t c = ab_hnsw_node_links(h, x, l, lk, 1024);
			sn->nlinks[l] = c;
			sn->links[l] = malloc((c + 1) * sizeof(uint32_t));
			for (size_t j = 0; j < c; j++)
				sn->links[l][j] = ab_hnsw_node_id(lk[j]);
		}
	}
	return s;
}

static void saved_free(struct saved *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->nodes[i].data);
		for (int l = 0; l <= s->nodes[i].orig_level; l++)
			free(s->nodes[i].links[l]);
	}
	free(s->nodes);
}

/* Restores s into a new index; returns the first error (0 when all went
 * well) and the index in *out either way. */
static int restore(const struct saved *s, struct ab_hnsw **out)
{
	cr_assert_eq(ab_hnsw_new(&s->p, out), 0);
	struct ab_hnsw *h = *out;
	struct ab_hnsw_node **nodes = calloc(s->n, sizeof(*nodes));
	int rc = 0;
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct saved_node *sn = &s->nodes[i];
		struct ab_hnsw_raw raw = {sn->data, sn->len, sn->norm, sn->range};
		void *v = val(sn->value);
		rc = ab_hnsw_restore_node(h, sn->id, sn->level, &raw, v, &nodes[i]);
		if (rc < 0)
			free(v); /* not taken */
	}
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const struct saved_node *sn = &s->nodes[i];
		for (int l = 0; l <= sn->level && l < AB_HNSW_MAX_LEVEL && rc == 0; l++)
			rc = ab_hnsw_restore_links(h, nodes[i], l, sn->links[l], sn->nlinks[l]);
	}
	if (rc == 0)
		rc = ab_hnsw_restore_end(h);
	free(nodes);
	return rc;
}

static void same_answers(const struct ab_hnsw *a, const struct ab_hnsw *b, const float *q,
			 size_t nq, size_t dim)
{
	struct ab_hnsw_hit x[10], y[10];
	for (size_t i = 0; i < nq; i++) {
		int na = ab_hnsw_search(a, q + i * dim, 10, 40, NULL, NULL, 0, x);
		int nb = ab_hnsw_search(b, q + i * dim, 10, 40, NULL, NULL, 0, y);
		cr_assert_eq(na, nb);
		for (int j = 0; j < na; j++) {
			cr_assert_eq(vidx(x[j].node), vidx(y[j].node), "query %zu hit %d", i, j);
			cr_assert_float_eq(x[j].score, y[j].score, 1e-6);
		}
	}
}

Test(restore, round_trip_all_quantisations)
{
	for (int q = 0; q < 3; q++) {
		float *v;
		struct ab_hnsw *h = build((enum ab_vq)q, 600, 20, &v);
		struct saved s = save(h);
		struct ab_hnsw *r;
		cr_assert_eq(restore(&s, &r), 0, "quant %d", q);
		cr_assert_eq(ab_hnsw_check(r), 0);
		cr_assert_eq(ab_hnsw_count(r), ab_hnsw_count(h));
		cr_assert_eq(ab_hnsw_max_level(r), ab_hnsw_max_level(h));
		cr_assert_eq(ab_hnsw_next_id(r), ab_hnsw_next_id(h));
		same_answers(h, r, v, 100, 20);
		/* the restored index takes inserts and deletes like any other */
		cr_assert_eq(ab_hnsw_insert(r, v, val(9999), 0, NULL), 0);
		free(ab_hnsw_delete(r, ab_hnsw_first(r)));
		cr_assert_eq(ab_hnsw_check(r), 0);
		float back[20];
		struct ab_hnsw_node *n = ab_hnsw_first(r);
		ab_hnsw_node_vector(r, n, back); /* the vector survives the trip */
		cr_assert(ab_hnsw_similarity(r, back, n) > 0.999f);
		ab_hnsw_free(r, free);
		ab_hnsw_free(h, free);
		saved_free(&s);
		free(v);
	}
}

Test(restore, empty_and_state_rules)
{
	struct ab_hnsw_params p = {.dim = 4, .quant = AB_VQ_Q8};
	struct ab_hnsw *h;
	cr_assert_eq(ab_hnsw_new(&p, &h), 0);
	cr_assert_eq(ab_hnsw_restore_end(h), 0); /* an empty set */
	cr_assert_eq(ab_hnsw_check(h), 0);
	float x[4] = {1, 2, 3, 4};
	cr_assert_eq(ab_hnsw_insert(h, x, NULL, 0, NULL), 0);
	int8_t d[4] = {1, 2, 3, 4};
	struct ab_hnsw_raw raw = {d, 4, 1, 0.5f};
	cr_assert_eq(ab_hnsw_restore_node(h, 5, 0, &raw, NULL, NULL), AB_EINVAL,
		     "restore into a used index");
	ab_hnsw_free(h, NULL);
	/* no insert while restoring, nor after a failed restore */
	cr_assert_eq(ab_hnsw_new(&p, &h), 0);
	cr_assert_eq(ab_hnsw_restore_node(h, 0, 0, &raw, NULL, NULL), 0);
	cr_assert_eq(ab_hnsw_insert(h, x, NULL, 0, NULL), AB_EINVAL);
	struct ab_hnsw_hit hit;
	cr_assert_eq(ab_hnsw_search(h, x, 1, 0, NULL, NULL, 0, &hit), 0);
	cr_assert_eq(ab_hnsw_restore_node(h, 0, 0, &raw, NULL, NULL), 0); /* a duplicate id */
	cr_assert_eq(ab_hnsw_restore_end(h), AB_EPROTO);
	cr_assert_eq(ab_hnsw_insert(h, x, NULL, 0, NULL), AB_EINVAL);
	cr_assert_eq(ab_hnsw_restore_end(h), AB_EINVAL);
	ab_hnsw_free(h, NULL);
}

/* One corruption applied to a saved copy of a small graph. */
enum damage {
	D_DANGLING, D_SELF, D_LOW_LEVEL, D_OVER_CAP, D_DUP_LINK, D_DUP_ID, D_LEVEL_NEG,
	D_LEVEL_HIGH, D_SHORT_RAW, D_LONG_RAW, D_NAN_NORM, D_NEG_NORM, D_INF_RANGE, D_NAN_F32,
	D_Q8_MIN, D_BIG_ID, D_COUNT,
};

static bool apply(struct saved *s, enum damage d)
{
	/* pick a node with links at level 0, and one at the top level */
	size_t a = 0, top = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->nodes[i].nlinks[0] >= 2 && !a)
			a = i;
		if (s->nodes[i].level > s->nodes[top].level)
			top = i;
	}
	struct saved_node *n = &s->nodes[a];
	switch (d) {
	case D_DANGLING:
		n->links[0][0] = 1000000;
		return true;
	case D_SELF:
		n->links[0][0] = n->id;
		return true;
	case D_LOW_LEVEL: {
		/* a link at level 1 to a node that only lives at level 0 */
		struct saved_node *t = &s->nodes[top];
		if (t->level < 1 || t->nlinks[1] == 0)
			return false;
		for (size_t i = 0; i < s->n; i++)
			if (s->nodes[i].level == 0) {
				t->links[1][0] = s->nodes[i].id;
				return true;
			}
		return false;
	}
	case D_OVER_CAP: {
		size_t cap = 2 * s->p.m + 1;
		n->links[0] = realloc(n->links[0], cap * sizeof(uint32_t));
		for (size_t i = n->nlinks[0]; i < cap; i++)
			n->links[0][i] = n->links[0][0];
		n->nlinks[0] = cap;
		return true;
	}
	case D_DUP_LINK:
		n->links[0][1] = n->links[0][0];
		return true;
	case D_DUP_ID:
		s->nodes[1].id = s->nodes[0].id;
		return true;
	case D_LEVEL_NEG:
		n->level = -1;
		return true;
	case D_LEVEL_HIGH:
		n->level = AB_HNSW_MAX_LEVEL;
		return true;
	case D_SHORT_RAW:
		n->len--;
		return true;
	case D_LONG_RAW:
		n->data = realloc(n->data, n->len + 1);
		n->len++;
		return true;
	case D_NAN_NORM:
		n->norm = NAN;
		return true;
	case D_NEG_NORM:
		n->norm = -1;
		return true;
	case D_INF_RANGE:
		n->range = INFINITY;
		return true;
	case D_NAN_F32:
		if (s->p.quant != AB_VQ_F32)
			return false;
		((float *)(void *)n->data)[3] = NAN;
		return true;
	case D_Q8_MIN:
		if (s->p.quant != AB_VQ_Q8)
			return false;
		((int8_t *)n->data)[2] = -128;
		return true;
	case D_BIG_ID:
		n->id = 0x80000000u;
		return true;
	case D_COUNT:
		break;
	}
	return false;
}

Test(restore, every_corruption_is_an_error)
{
	for (int q = 0; q < 3; q++) {
		float *v;
		struct ab_hnsw *h = build((enum ab_vq)q, 200, 12, &v);
		for (int d = 0; d < D_COUNT; d++) {
			struct saved s = save(h);
			if (!apply(&s, (enum damage)d)) {
				saved_free(&s);
				continue;
			}
			struct ab_hnsw *r;
			int rc = restore(&s, &r);
			cr_assert(rc == AB_EPROTO || rc == AB_EINVAL, "quant %d damage %d: rc %d", q,
				  d, rc);
			/* searching a failed index is harmless, freeing it frees the values */
			struct ab_hnsw_hit hit;
			cr_assert(ab_hnsw_search(r, v, 1, 0, NULL, NULL, 0, &hit) <= 0);
			ab_hnsw_free(r, free);
			saved_free(&s);
		}
		ab_hnsw_free(h, free);
		free(v);
	}
}

Test(restore, links_at_a_level_the_node_lacks)
{
	struct ab_hnsw_params p = {.dim = 4, .quant = AB_VQ_F32, .m = 4};
	struct ab_hnsw *h;
	cr_assert_eq(ab_hnsw_new(&p, &h), 0);
	float d[4] = {1, 0, 0, 0};
	struct ab_hnsw_raw raw = {d, 16, 1, 0};
	struct ab_hnsw_node *a;
	cr_assert_eq(ab_hnsw_restore_node(h, 0, 0, &raw, NULL, &a), 0);
	uint32_t ids[1] = {1};
	cr_assert_eq(ab_hnsw_restore_links(h, a, 1, ids, 1), AB_EPROTO);
	ab_hnsw_free(h, NULL);
}

Test(restore, sparse_ids_are_renumbered)
{
	/* two nodes saved as ids 7 and 2^31 - 1 that link to each other */
	struct ab_hnsw_params p = {.dim = 4, .quant = AB_VQ_F32, .m = 4};
	struct ab_hnsw *h;
	cr_assert_eq(ab_hnsw_new(&p, &h), 0);
	float d1[4] = {1, 0, 0, 0}, d2[4] = {0, 1, 0, 0};
	struct ab_hnsw_raw r1 = {d1, 16, 2, 0}, r2 = {d2, 16, 3, 0};
	struct ab_hnsw_node *a, *b;
	cr_assert_eq(ab_hnsw_restore_node(h, 7, 1, &r1, NULL, &a), 0);
	cr_assert_eq(ab_hnsw_restore_node(h, 0x7fffffffu, 0, &r2, NULL, &b), 0);
	uint32_t to_b = 0x7fffffffu, to_a = 7;
	cr_assert_eq(ab_hnsw_restore_links(h, a, 0, &to_b, 1), 0);
	cr_assert_eq(ab_hnsw_restore_links(h, b, 0, &to_a, 1), 0);
	cr_assert_eq(ab_hnsw_restore_end(h), 0);
	cr_assert_eq(ab_hnsw_check(h), 0);
	cr_assert_eq(ab_hnsw_next_id(h), 2);
	cr_assert_eq(ab_hnsw_node_id(a), 0);
	cr_assert_eq(ab_hnsw_node_id(b), 1);
	struct ab_hnsw_node *lk[4];
	cr_assert_eq(ab_hnsw_node_links(h, a, 0, lk, 4), 1);
	cr_assert_eq(lk[0], b);
	cr_assert_eq(ab_hnsw_max_level(h), 1);
	float q[4] = {0, 5, 0, 0}, out[4];
	struct ab_hnsw_hit hit;
	cr_assert_eq(ab_hnsw_search(h, q, 1, 0, NULL, NULL, 0, &hit), 1);
	cr_assert_eq(hit.node, b);
	ab_hnsw_node_vector(h, b, out);
	cr_assert_float_eq(out[1], 3, 1e-6);
	ab_hnsw_free(h, NULL);
}

Test(restore, random_damage_never_crashes)
{
	float *v;
	struct ab_hnsw *h = build(AB_VQ_Q8, 150, 8, &v);
	uint64_t s = 4242;
	int ok = 0, failed = 0;
	for (int iter = 0; iter < 300; iter++) {
		struct saved sv = save(h);
		int nd = 1 + (int)(rng_next(&s) % 3);
		for (int k = 0; k < nd; k++) {
			struct saved_node *n = &sv.nodes[rng_next(&s) % sv.n];
			int l = (int)(rng_next(&s) % (size_t)(n->level + 1));
			switch (rng_next(&s) % 5) {
			case 0: /* a link to a random id, maybe dangling */
				if (n->nlinks[l])
					n->links[l][rng_next(&s) % n->nlinks[l]] =
						(uint32_t)(rng_next(&s) % 200);
				break;
			case 1: /* a shorter list: still a valid graph */
				if (n->nlinks[l])
					n->nlinks[l]--;
				break;
			case 2: /* a random id */
				n->id = (uint32_t)(rng_next(&s) % 200);
				break;
			case 3: /* a random bit flipped in a link id */
				if (n->nlinks[l])
					n->links[l][0] ^= 1u << (rng_next(&s) % 32);
				break;
			default: /* garbage codes */
				((uint8_t *)n->data)[rng_next(&s) % n->len] = (uint8_t)rng_next(&s);
				break;
			}
		}
		struct ab_hnsw *r;
		int rc = restore(&sv, &r);
		if (rc == 0) {
			ok++;
			cr_assert_eq(ab_hnsw_check(r), 0);
			struct ab_hnsw_hit hits[5];
			cr_assert(ab_hnsw_search(r, v, 5, 20, NULL, NULL, 0, hits) >= 1);
		} else {
			failed++;
			cr_assert(rc == AB_EPROTO || rc == AB_EINVAL, "rc %d", rc);
		}
		ab_hnsw_free(r, free);
		saved_free(&sv);
	}
	cr_log_info("random damage: %d restored, %d rejected", ok, failed);
	cr_assert(ok > 0 && failed > 0);
	ab_hnsw_free(h, free);
	free(v);
}
