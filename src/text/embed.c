/*
 * embed.c - the built-in hashed-feature embedder of embed.h.
 *
 * One call analyses the text once; the analyzer's callback turns every
 * term into its features and folds them into a per-call open-addressing
 * map keyed by the feature's 64-bit hash: the number of occurrences, the
 * feature's base weight (its family's weight; for an n-gram, the word's
 * n-gram weight shared out over its n-grams so that a long word does not
 * outweigh a short one) and, for queries, its idf. Only then is each
 * feature's weight base * (1 + ln count) * idf added into its coordinate
 * with its sign, and the vector normalised. The map is the call's own, so
 * the embedder itself stays read-only.
 *
 * Hashes: FNV-1a over the bytes with a per-family seed, finished with
 * MurmurHash3's 64-bit mixer; a pair hashes its two term hashes together.
 * The coordinate is the top 32 bits scaled to dims (multiply-shift), the
 * sign the lowest bit. All seeds are constants: vectors are stored.
 */
#include "embed.h"

#include "analyze.h"
#include "common.h"
#include "textidx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define SEED_TERM 0x7465726d5f763101ull
#define SEED_PAIR 0x706169725f763101ull
#define SEED_GRAM 0x6772616d5f763101ull

struct ab_embedder {
	struct ab_embed_params p;
};

void ab_embed_params_default(struct ab_embed_params *p)
{
	memset(p, 0, sizeof(*p));
	p->dims = AB_EMBED_DIMS_DEFAULT;
	p->stem = true;
	p->stopwords = true;
	p->w_term = 1.0f;
	p->w_pair = 0.0f;
	p->w_ngram = 1.0f;
	p->ngram_min = 3;
	p->ngram_max = 5;
}

static bool weight_ok(float w)
{
	return !isnan(w) && !isinf(w) && w >= 0 && w <= 100;
}

int ab_embed_new(const struct ab_embed_params *p, struct ab_embedder **out)
{
	struct ab_embed_params def;
	if (!out)
		return AB_EINVAL;
	*out = NULL;
	if (!p) {
		ab_embed_params_default(&def);
		p = &def;
	}
	if (p->dims < 16 || p->dims > AB_EMBED_DIMS_MAX || !weight_ok(p->w_term) ||
	    !weight_ok(p->w_pair) || !weight_ok(p->w_ngram))
		return AB_EINVAL;
	if (p->w_ngram > 0 && (p->ngram_min < 3 || p->ngram_max > 8 || p->ngram_min > p->ngram_max))
		return AB_EINVAL;
	struct ab_embedder *e = ab_xcalloc(1, sizeof(*e));
	e->p = *p;
	*out = e;
	return 0;
}

void ab_embed_free(struct ab_embedder *e)
{
	free(e);
}

uint32_t ab_embed_dims(const struct ab_embedder *e)
{
	return e->p.dims;
}

void ab_embed_get_params(const struct ab_embedder *e, struct ab_embed_params *p)
{
	*p = e->p;
}

/* ---- hashing ---- */

static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_feature(uint64_t seed, const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ull;
	}
	return fmix64(h);
}

/* ---- the per-call feature map ---- */

struct feat {
	uint64_t key; /* 0 = empty (a real hash of 0 is moved to 1) */
	uint32_t count;
	float base;
	float idf;
};

struct fmap {
	struct feat *v;
	size_t cap, n;
};

static void fmap_init(struct fmap *m)
{
	m->cap = 1024;
	m->n = 0;
	m->v = ab_xcalloc(m->cap, sizeof(*m->v));
}

static void fmap_grow(struct fmap *m)
{
	struct fmap old = *m;
	m->cap *= 2;
	m->n = 0;
	m->v = ab_xcalloc(m->cap, sizeof(*m->v));
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.v[i].key)
			continue;
		size_t j = old.v[i].key & (m->cap - 1);
		while (m->v[j].key)
			j = (j + 1) & (m->cap - 1);
		m->v[j] = old.v[i];
		m->n++;
	}
	free(old.v);
}

static void fmap_put(struct fmap *m, uint64_t key, float base, float idf)
{
	if (key == 0)
		key = 1;
	size_t j = key & (m->cap - 1);
	while (m->v[j].key && m->v[j].key != key)
		j = (j + 1) & (m->cap - 1);
	struct feat *f = &m->v[j];
	if (f->key) {
		f->count++;
		if (base > f->base)
			f->base = base;
		if (idf > f->idf)
			f->idf = idf;
		return;
	}
	*f = (struct feat){key, 1, base, idf};
	if (++m->n * 2 > m->cap)
		fmap_grow(m);
}

/* ---- features of one text ---- */

struct fctx {
	const struct ab_embed_params *p;
	struct fmap map;
	ab_embed_idf_fn idf;
	void *idf_ctx;
	bool have_prev;
	uint64_t prev_hash;
	float prev_idf;
};

/* Adds the character n-grams of word (folded UTF-8) with boundary marks. */
static void add_ngrams(struct fctx *c, const char *word, size_t len, float idf)
{
	/* code point starts of "<word>", at most AB_TEXT_TERM_MAX + 2 of them */
	char buf[AB_TEXT_TERM_MAX + 2];
	size_t starts[AB_TEXT_TERM_MAX + 3];
	size_t ncp = 0, blen = 0;
	if (len > AB_TEXT_TERM_MAX)
		return;
	buf[blen] = '<';
	starts[ncp++] = blen++;
	for (size_t i = 0; i < len;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)word + i,
						      (utf8proc_ssize_t)(len - i), &cp);
		if (n <= 0)
			n = 1;
		starts[ncp++] = blen;
		memcpy(buf + blen, word + i, (size_t)n);
		blen += (size_t)n;
		i += (size_t)n;
	}
	buf[blen] = '>';
	starts[ncp++] = blen++;
	starts[ncp] = blen; /* the end */

	size_t total = 0;
	for (uint32_t g = c->p->ngram_min; g <= c->p->ngram_max; g++)
		if (ncp >= g)
			total += ncp - g + 1;
	if (total == 0)
		return;
	float base = c->p->w_ngram / sqrtf((float)total);
	for (uint32_t g = c->p->ngram_min; g <= c->p->ngram_max; g++) {
		for (size_t s = 0; s + g <= ncp; s++) {
			size_t from = starts[s], to = starts[s + g];
			uint64_t h = hash_feature(SEED_GRAM + g, buf + from, to - from);
			fmap_put(&c->map, h, base, idf);
		}
	}
}

static void on_term(const struct ab_term *t, void *ctx)
{
	struct fctx *c = ctx;
	const struct ab_embed_params *p = c->p;
	float idf = 1.0f;
	if (c->idf) {
		double v = c->idf(t->term, t->term_len, c->idf_ctx);
		idf = (isnan(v) || v < 0) ? 0.0f : (float)v;
	}
	uint64_t h = hash_feature(SEED_TERM, t->term, t->term_len);
	if (p->w_term > 0)
		fmap_put(&c->map, h, p->w_term, idf);
	if (p->w_pair > 0 && c->have_prev)
		fmap_put(&c->map, fmix64(c->prev_hash * 31 + h + SEED_PAIR), p->w_pair,
			 0.5f * (idf + c->prev_idf));
	if (p->w_ngram > 0)
		add_ngrams(c, t->word, t->word_len, idf);
	c->have_prev = true;
	c->prev_hash = h;
	c->prev_idf = idf;
}

static int embed(const struct ab_embedder *e, const char *text, size_t len, ab_embed_idf_fn idf,
		 void *idf_ctx, float *out)
{
	if (!e || !out || (!text && len))
		return AB_EINVAL;
	uint32_t dims = e->p.dims;
	struct fctx c = {.p = &e->p, .idf = idf, .idf_ctx = idf_ctx};
	struct ab_analyzer a;
	double *acc = ab_xcalloc(dims, sizeof(*acc));
	fmap_init(&c.map);
	ab_analyzer_init(&a, e->p.stem, e->p.stopwords);
	ab_analyze(&a, text, len, on_term, &c);
	ab_analyzer_release(&a);

	int nfeat = 0;
	for (size_t i = 0; i < c.map.cap; i++) {
		const struct feat *f = &c.map.v[i];
		if (!f->key)
			continue;
		nfeat++;
		double w = f->base * (1.0 + log((double)f->count)) * f->idf;
		uint32_t at = (uint32_t)(((f->key >> 32) * (uint64_t)dims) >> 32);
		acc[at] += (f->key & 1) ? -w : w;
	}
	double norm = 0;
	for (uint32_t i = 0; i < dims; i++)
		norm += acc[i] * acc[i];
	norm = sqrt(norm);
	for (uint32_t i = 0; i < dims; i++)
		out[i] = norm > 0 ? (float)(acc[i] / norm) : 0.0f;
	if (norm == 0)
		nfeat = 0;
	free(acc);
	free(c.map.v);
	return nfeat;
}

int ab_embed_doc(const struct ab_embedder *e, const char *text, size_t len, float *out)
{
	return embed(e, text, len, NULL, NULL, out);
}

int ab_embed_query(const struct ab_embedder *e, const char *text, size_t len,
		   ab_embed_idf_fn idf, void *ctx, float *out)
{
	return embed(e, text, len, idf, ctx, out);
}

double ab_embed_textidx_idf(const char *term, size_t len, void *ctx)
{
	return ab_textidx_idf(ctx, term, len);
}

float ab_embed_cosine(const float *a, const float *b, uint32_t n)
{
	double dot = 0, na = 0, nb = 0;
	for (uint32_t i = 0; i < n; i++) {
		dot += (double)a[i] * b[i];
		na += (double)a[i] * a[i];
		nb += (double)b[i] * b[i];
	}
	if (na == 0 || nb == 0)
		return 0;
	return (float)(dot / sqrt(na * nb));
}
