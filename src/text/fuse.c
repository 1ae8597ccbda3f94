/*
 * fuse.c - reciprocal-rank fusion (fuse.h).
 *
 * The lists are short (a few hundred ids each), so one call builds a
 * per-call open-addressing table from id to a slot in a candidate array,
 * adds each list's contribution, and sorts the candidates.
 */
#include "fuse.h"

#include "common.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ab_hybrid_params_default(struct ab_hybrid_params *p)
{
	memset(p, 0, sizeof(*p));
	p->rrf_k = 60;
	p->w_text = 1.0;
	p->w_vector = 0.5;
	p->depth = 100;
}

struct cand {
	const char *id;
	size_t len;
	double score;
	size_t last_list; /* the last list that added to it, + 1 */
};

static uint64_t hash_id(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(x->id, y->id, n) : 0;
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

int ab_rrf_fuse(const struct ab_rrf_list *lists, size_t nlists, double k, size_t top,
		struct ab_rrf_hit *out)
{
	if ((nlists && !lists) || (top && !out) || !(k > 0) || isinf(k))
		return AB_EINVAL;
	size_t total = 0;
	for (size_t l = 0; l < nlists; l++) {
		if (lists[l].n && (!lists[l].ids || !lists[l].id_lens))
			return AB_EINVAL;
		total += lists[l].n;
	}
	if (top > INT_MAX)
		top = INT_MAX;
	if (total == 0 || top == 0)
		return 0;
	size_t cap = 16;
	while (cap < total * 2)
		cap *= 2;
	uint32_t *tab = ab_xmalloc(cap * sizeof(*tab));
	memset(tab, 0xff, cap * sizeof(*tab));
	struct cand *c = ab_xmalloc(total * sizeof(*c));
	size_t nc = 0;
	for (size_t l = 0; l < nlists; l++) {
		const struct ab_rrf_list *L = &lists[l];
		for (size_t r = 0; r < L->n; r++) {
			const char *id = L->ids[r];
			size_t len = L->id_lens[r];
			if (!id && len)
				continue;
			size_t j = hash_id(id, len) & (cap - 1);
			while (tab[j] != UINT32_MAX) {
				struct cand *e = &c[tab[j]];
				if (e->len == len && (len == 0 || memcmp(e->id, id, len) == 0))
					break;
				j = (j + 1) & (cap - 1);
			}
			struct cand *e;
			if (tab[j] == UINT32_MAX) {
				tab[j] = (uint32_t)nc;
				e = &c[nc++];
				*e = (struct cand){id, len, 0, 0};
			} else {
				e = &c[tab[j]];
			}
			if (e->last_list == l + 1)
				continue; /* repeated in this list: its best rank counted */
			e->last_list = l + 1;
			e->score += L->weight / (k + (double)(r + 1));
		}
	}
	qsort(c, nc, sizeof(*c), cmp_cand);
	size_t n = nc < top ? nc : top;
	for (size_t i = 0; i < n; i++)
		out[i] = (struct ab_rrf_hit){c[i].id, c[i].len, c[i].score};
	free(c);
	free(tab);
	return (int)n;
}
