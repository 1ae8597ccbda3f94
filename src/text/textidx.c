/*
 * textidx.c - the BM25 inverted index of textidx.h.
 *
 * Data layout. Documents live in slots (a uint32 number, reused after a
 * delete through a free list); docs[slot] points at the document, whose
 * address never changes while it lives, so search hits can point at it.
 * dl[slot] mirrors each document's length in a flat array, because the
 * scoring loop reads it once per posting. Terms likewise live in term
 * slots, each with its bytes and its postings: an unsorted array of
 * (doc slot, tf). A document keeps its own (term slot, position in that
 * term's postings) pairs sorted by term slot, which is what makes
 * a delete cheap: each posting is removed by moving the term's last
 * posting into its place and fixing that other document's recorded
 * position (a binary search in its pairs), O(terms x log) in all,
 * whatever the document frequencies. A term whose last posting goes is
 * freed, so ab_textidx_terms counts live terms and churn does not leak.
 * Cost: 16 bytes per (document, distinct term) pair, 8 in the postings
 * and 8 in the document, plus the terms and ids themselves.
 *
 * Two open-addressing tables (linear probing, backward-shift deletion,
 * power-of-two sizes, at most 1/2 full) map term bytes to term slots and
 * document ids to doc slots. Their hash is FNV-1a started from a
 * per-index random seed, with a final mix: not a keyed cryptographic hash,
 * but ids crafted to collide against one index do not line up in another.
 *
 * Scoring, with N documents, average length avgdl, document frequency df
 * and term frequency tf, for each distinct query term q that occurs qtf
 * times in the analysed query:
 *
 *   idf(q)   = ln(1 + (N - df + 0.5) / (df + 0.5))     (never negative)
 *   score(d) = sum over q of qtf * idf(q) * tf * (k1 + 1)
 *                          / (tf + k1 * (1 - b + b * len(d) / avgdl))
 *
 * A search is read-only on the index: it analyses the query with its own
 * analyzer (its own stemmer), accumulates scores term at a time in a float
 * array of one entry per doc slot that it allocates itself, and keeps the
 * k best in a bounded heap built in the caller's hits array. When the
 * query's postings are few (under a quarter of the slots) it also lists
 * the slots it touched and visits only those; otherwise one pass over the
 * whole array is cheaper. A document scoring below the heap's worst is
 * dropped on that comparison alone, and the filter is only asked about a
 * document that would enter the heap. Nothing is shared between searches,
 * which is why any number of them may run at once under the caller's read
 * lock. (Measured with bench/text on 100k chunks of 150 words: about
 * 0.5 ms CPU per search at the median, 2 ms at p99, for queries scoring
 * 125k and 1M postings.)
 */
#include "textidx.h"

#include "analyze.h"
#include "common.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct posting {
	uint32_t doc;
	uint32_t tf;
};

struct term {
	char *s; /* NULL: a free slot */
	uint32_t len;
	uint32_t hash;
	struct posting *post;
	uint32_t n, cap;
};

struct dterm {
	uint32_t term;
	uint32_t pos; /* index of this document in the term's postings (its tf is there) */
};

struct ab_textdoc {
	uint32_t slot;
	uint32_t length; /* sum of the tfs */
	uint32_t nterms;
	uint32_t hash; /* of the id */
	void *value;
	struct dterm *terms; /* sorted by term slot */
	size_t id_len;
	char id[];
};

/* A set of uint32 slots, keyed by what the slots name. */
struct table {
	uint32_t *v; /* NONE = empty */
	size_t cap;  /* power of two */
	size_t n;
};

struct slots {
	uint32_t *free;
	size_t nfree, cap;
};

struct ab_textidx {
	struct ab_textidx_params p;
	uint64_t seed;

	struct term *terms;
	uint32_t nterm_slots, term_cap;
	struct slots term_free;
	struct table term_tab;
	uint64_t live_terms;

	struct ab_textdoc **docs;
	uint32_t *dl;
	uint32_t ndoc_slots, doc_cap;
	struct slots doc_free;
	struct table doc_tab;
	uint64_t ndocs;
	uint64_t total_len;

	size_t mem; /* bytes held, kept up to date by every (re)allocation */
};

/* ---- hashing and the two tables ---- */

static uint32_t hash_bytes(uint64_t seed, const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

enum tab_kind { TAB_TERMS, TAB_DOCS };

static uint32_t slot_hash(const struct ab_textidx *x, enum tab_kind k, uint32_t slot)
{
	return k == TAB_TERMS ? x->terms[slot].hash : x->docs[slot]->hash;
}

static bool slot_eq(const struct ab_textidx *x, enum tab_kind k, uint32_t slot, const char *s,
		    size_t n)
{
	if (k == TAB_TERMS) {
		const struct term *t = &x->terms[slot];
		return t->len == n && memcmp(t->s, s, n) == 0;
	}
	const struct ab_textdoc *d = x->docs[slot];
	return d->id_len == n && (n == 0 || memcmp(d->id, s, n) == 0);
}

static struct table *tab_of(struct ab_textidx *x, enum tab_kind k)
{
	return k == TAB_TERMS ? &x->term_tab : &x->doc_tab;
}

static const struct table *ctab_of(const struct ab_textidx *x, enum tab_kind k)
{
	return k == TAB_TERMS ? &x->term_tab : &x->doc_tab;
}

/* The slot named by (s, n), or NONE; *at gets the table index where it is
 * or where it would go. */
static uint32_t tab_find(const struct ab_textidx *x, enum tab_kind k, const char *s, size_t n,
			 uint32_t h, size_t *at)
{
	const struct table *t = ctab_of(x, k);
	size_t mask = t->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		uint32_t v = t->v[i];
		if (v == NONE) {
			if (at)
				*at = i;
			return NONE;
		}
		if (slot_hash(x, k, v) == h && slot_eq(x, k, v, s, n)) {
			if (at)
				*at = i;
			return v;
		}
	}
}

static void tab_alloc(struct ab_textidx *x, struct table *t, size_t cap)
{
	t->v = ab_xmalloc(cap * sizeof(*t->v));
	memset(t->v, 0xff, cap * sizeof(*t->v));
	t->cap = cap;
	x->mem += cap * sizeof(*t->v);
}

static void tab_grow(struct ab_textidx *x, enum tab_kind k)
{
	struct table *t = tab_of(x, k);
	struct table old = *t;
	tab_alloc(x, t, old.cap * 2);
	size_t mask = t->cap - 1;
	for (size_t i = 0; i < old.cap; i++) {
		uint32_t v = old.v[i];
		if (v == NONE)
			continue;
		size_t j = slot_hash(x, k, v) & mask;
		while (t->v[j] != NONE)
			j = (j + 1) & mask;
		t->v[j] = v;
	}
	x->mem -= old.cap * sizeof(*old.v);
	free(old.v);
}

/* Inserts slot at table index `at` (from a failed tab_find). */
static void tab_insert_at(struct ab_textidx *x, enum tab_kind k, size_t at, uint32_t slot)
{
	struct table *t = tab_of(x, k);
	t->v[at] = slot;
	t->n++;
	if (t->n * 2 > t->cap)
		tab_grow(x, k);
}

/* Removes the entry at table index i, shifting later members of its probe
 * run back so that lookups need no tombstones. */
static void tab_remove_at(struct ab_textidx *x, enum tab_kind k, size_t i)
{
	struct table *t = tab_of(x, k);
	size_t mask = t->cap - 1;
	size_t hole = i;
	t->v[hole] = NONE;
	t->n--;
	for (size_t j = (hole + 1) & mask; t->v[j] != NONE; j = (j + 1) & mask) {
		size_t home = slot_hash(x, k, t->v[j]) & mask;
		/* v[j] may move into the hole when its home is not in (hole, j] */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (stays)
			continue;
		t->v[hole] = t->v[j];
		t->v[j] = NONE;
		hole = j;
	}
}

/* ---- slot free lists ---- */

/* The next capacity of a slot array: doubling, at most NONE - 1 slots. */
static uint32_t grow_cap(uint32_t cap)
{
	if (cap == 0)
		return 256;
	return cap >= (NONE - 1) / 2 ? NONE - 1 : cap * 2;
}

static void slots_push(struct ab_textidx *x, struct slots *s, uint32_t slot)
{
	if (s->nfree == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		s->free = ab_xrealloc(s->free, nc * sizeof(*s->free));
		x->mem += (nc - s->cap) * sizeof(*s->free);
		s->cap = nc;
	}
	s->free[s->nfree++] = slot;
}

/* ---- params, new, free ---- */

void ab_textidx_params_default(struct ab_textidx_params *p)
{
	memset(p, 0, sizeof(*p));
	p->k1 = 1.2f;
	p->b = 0.75f;
	p->stem = true;
	p->stopwords = true;
}

static int resolve_params(const struct ab_textidx_params *in, struct ab_textidx_params *out)
{
	*out = *in;
	if (isnan(in->k1) || isnan(in->b) || isinf(in->k1) || in->k1 < 0 || in->k1 > 1000 ||
	    in->b > 1)
		return AB_EINVAL;
	if (in->k1 == 0)
		out->k1 = 1.2f;
	if (in->b < 0)
		out->b = 0.75f;
	return 0;
}

int ab_textidx_new(const struct ab_textidx_params *p, struct ab_textidx **out)
{
	struct ab_textidx_params def, rp;
	if (!out)
		return AB_EINVAL;
	*out = NULL;
	if (!p) {
		ab_textidx_params_default(&def);
		p = &def;
	}
	if (resolve_params(p, &rp) < 0)
		return AB_EINVAL;
	struct ab_textidx *x = ab_xcalloc(1, sizeof(*x));
	x->p = rp;
	if (ab_random_bytes(&x->seed, sizeof(x->seed)) < 0)
		x->seed = (uint64_t)ab_now_ms() * 0x9e3779b97f4a7c15ull ^ (uintptr_t)x;
	x->mem = sizeof(*x);
	tab_alloc(x, &x->term_tab, 64);
	tab_alloc(x, &x->doc_tab, 64);
	*out = x;
	return 0;
}

static void free_doc(struct ab_textdoc *d)
{
	if (!d)
		return;
	free(d->terms);
	free(d);
}

void ab_textidx_free(struct ab_textidx *x, void (*free_value)(void *value))
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->ndoc_slots; i++) {
		struct ab_textdoc *d = x->docs[i];
		if (!d)
			continue;
		if (free_value)
			free_value(d->value);
		free_doc(d);
	}
	for (uint32_t i = 0; i < x->nterm_slots; i++) {
		free(x->terms[i].s);
		free(x->terms[i].post);
	}
	free(x->terms);
	free(x->term_free.free);
	free(x->term_tab.v);
	free(x->docs);
	free(x->dl);
	free(x->doc_free.free);
	free(x->doc_tab.v);
	free(x);
}

/* ---- terms ---- */

/* The slot of term (s, n), created (with no postings) when absent. */
static uint32_t term_intern(struct ab_textidx *x, const char *s, size_t n)
{
	uint32_t h = hash_bytes(x->seed, s, n);
	size_t at;
	uint32_t slot = tab_find(x, TAB_TERMS, s, n, h, &at);
	if (slot != NONE)
		return slot;
	if (x->term_free.nfree > 0) {
		slot = x->term_free.free[--x->term_free.nfree];
	} else {
		if (x->nterm_slots == x->term_cap) {
			if (x->term_cap == NONE - 1)
				abort(); /* 4 billion distinct terms: memory ran out long before */
			uint32_t nc = grow_cap(x->term_cap);
			x->terms = ab_xrealloc(x->terms, (size_t)nc * sizeof(*x->terms));
			x->mem += (size_t)(nc - x->term_cap) * sizeof(*x->terms);
			x->term_cap = nc;
		}
		slot = x->nterm_slots++;
	}
	struct term *t = &x->terms[slot];
	memset(t, 0, sizeof(*t));
	t->s = ab_xmalloc(n + 1); /* restored terms may hold any byte */
	memcpy(t->s, s, n);
	t->s[n] = '\0';
	t->len = (uint32_t)n;
	t->hash = h;
	x->mem += n + 1;
	x->live_terms++;
	tab_insert_at(x, TAB_TERMS, at, slot);
	return slot;
}

static void term_release(struct ab_textidx *x, uint32_t slot)
{
	struct term *t = &x->terms[slot];
	size_t at;
	uint32_t found = tab_find(x, TAB_TERMS, t->s, t->len, t->hash, &at);
	if (found == slot)
		tab_remove_at(x, TAB_TERMS, at);
	x->mem -= t->len + 1 + (size_t)t->cap * sizeof(*t->post);
	free(t->s);
	free(t->post);
	memset(t, 0, sizeof(*t));
	x->live_terms--;
	slots_push(x, &x->term_free, slot);
}

static uint32_t posting_append(struct ab_textidx *x, struct term *t, uint32_t doc, uint32_t tf)
{
	if (t->n == t->cap) {
		/* n < number of doc slots < 2^32 - 1, so saturating is enough */
		uint32_t nc = t->cap == 0 ? 4 : t->cap >= UINT32_MAX / 2 ? UINT32_MAX : t->cap * 2;
		t->post = ab_xrealloc(t->post, (size_t)nc * sizeof(*t->post));
		x->mem += (size_t)(nc - t->cap) * sizeof(*t->post);
		t->cap = nc;
	}
	t->post[t->n] = (struct posting){doc, tf};
	return t->n++;
}

static struct dterm *dterm_find(struct ab_textdoc *d, uint32_t term)
{
	size_t lo = 0, hi = d->nterms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->terms[mid].term == term)
			return &d->terms[mid];
		if (d->terms[mid].term < term)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- documents ---- */

static size_t doc_bytes(const struct ab_textdoc *d)
{
	return sizeof(*d) + d->id_len + (size_t)d->nterms * sizeof(*d->terms);
}

static int cmp_dterm(const void *a, const void *b)
{
	uint32_t x = ((const struct dterm *)a)->term, y = ((const struct dterm *)b)->term;
	return x < y ? -1 : x > y;
}

/* A distinct term of a restored document: its bytes and tf. */
struct pterm {
	const char *s;
	size_t len;
	uint32_t tf;
};

/* Links a new document into the index: n distinct terms (their term slots
 * and tfs) summing to length. The caller checked that id is absent (tab_at
 * is where the doc table wants it) and that a doc slot is available. */
static struct ab_textdoc *doc_insert(struct ab_textidx *x, const char *id, size_t id_len,
				     uint32_t id_hash, size_t tab_at, uint32_t length,
				     const uint32_t *tslots, const uint32_t *tfs, size_t n,
				     void *value)
{
	uint32_t slot;
	if (x->doc_free.nfree > 0) {
		slot = x->doc_free.free[--x->doc_free.nfree];
	} else {
		if (x->ndoc_slots == x->doc_cap) {
			uint32_t nc = grow_cap(x->doc_cap); /* slot_available() checked room */
			x->docs = ab_xrealloc(x->docs, (size_t)nc * sizeof(*x->docs));
			x->dl = ab_xrealloc(x->dl, (size_t)nc * sizeof(*x->dl));
			x->mem += (size_t)(nc - x->doc_cap) * (sizeof(*x->docs) + sizeof(*x->dl));
			x->doc_cap = nc;
		}
		slot = x->ndoc_slots++;
	}
	struct ab_textdoc *d = ab_xmalloc(sizeof(*d) + id_len);
	d->slot = slot;
	d->length = length;
	d->nterms = (uint32_t)n;
	d->hash = id_hash;
	d->value = value;
	d->terms = n ? ab_xmalloc(n * sizeof(*d->terms)) : NULL;
	d->id_len = id_len;
	if (id_len)
		memcpy(d->id, id, id_len);
	for (size_t i = 0; i < n; i++) {
		uint32_t pos = posting_append(x, &x->terms[tslots[i]], slot, tfs[i]);
		d->terms[i] = (struct dterm){tslots[i], pos};
	}
	if (n > 1)
		qsort(d->terms, n, sizeof(*d->terms), cmp_dterm);
	x->docs[slot] = d;
	x->dl[slot] = length;
	x->ndocs++;
	x->total_len += length;
	x->mem += doc_bytes(d);
	tab_insert_at(x, TAB_DOCS, tab_at, slot);
	return d;
}

/* Unlinks document slot (found at doc table index tab_at) and frees it;
 * returns its value. */
static void *doc_remove(struct ab_textidx *x, uint32_t slot, size_t tab_at)
{
	struct ab_textdoc *d = x->docs[slot];
	for (uint32_t i = 0; i < d->nterms; i++) {
		struct dterm *dt = &d->terms[i];
		struct term *t = &x->terms[dt->term];
		uint32_t last = t->n - 1;
		if (dt->pos != last) {
			struct posting mv = t->post[last];
			t->post[dt->pos] = mv;
			struct dterm *other = dterm_find(x->docs[mv.doc], dt->term);
			if (other)
				other->pos = dt->pos;
		}
		t->n--;
		if (t->n == 0) {
			term_release(x, dt->term);
		} else if (t->cap >= 16 && t->n < t->cap / 4) {
			uint32_t nc = t->cap / 2;
			t->post = ab_xrealloc(t->post, (size_t)nc * sizeof(*t->post));
			x->mem -= (size_t)(t->cap - nc) * sizeof(*t->post);
			t->cap = nc;
		}
	}
	tab_remove_at(x, TAB_DOCS, tab_at);
	x->ndocs--;
	x->total_len -= d->length;
	x->mem -= doc_bytes(d);
	x->docs[slot] = NULL;
	x->dl[slot] = 0;
	slots_push(x, &x->doc_free, slot);
	void *value = d->value;
	free_doc(d);
	return value;
}

static bool slot_available(const struct ab_textidx *x)
{
	return x->doc_free.nfree > 0 || x->ndoc_slots < NONE - 1;
}

/* ---- analysing a text into term slots ---- */

/* The distinct terms of one analysed text: term slot -> tf, in a per-call
 * open-addressing table, with the slots also listed in first-seen order. */
struct tfmap {
	uint32_t *key; /* term slot, NONE = empty */
	uint32_t *tf;  /* parallel to key */
	uint32_t *order;
	uint32_t *order_tf;
	size_t cap, n;
	uint64_t total; /* terms kept, repeats included */
};

static void tfmap_init(struct tfmap *m)
{
	memset(m, 0, sizeof(*m));
	m->cap = 256;
	m->key = ab_xmalloc(m->cap * sizeof(*m->key));
	memset(m->key, 0xff, m->cap * sizeof(*m->key));
	m->tf = ab_xmalloc(m->cap * sizeof(*m->tf));
	m->order = ab_xmalloc(m->cap / 2 * sizeof(*m->order));
}

static void tfmap_free(struct tfmap *m)
{
	free(m->key);
	free(m->tf);
	free(m->order);
	free(m->order_tf);
}

static size_t tfmap_probe(const struct tfmap *m, uint32_t key)
{
	size_t mask = m->cap - 1;
	size_t i = ((uint64_t)key * 0x9e3779b97f4a7c15ull >> 32) & mask;
	while (m->key[i] != NONE && m->key[i] != key)
		i = (i + 1) & mask;
	return i;
}

static void tfmap_add(struct tfmap *m, uint32_t key)
{
	m->total++;
	size_t i = tfmap_probe(m, key);
	if (m->key[i] == key) {
		m->tf[i]++;
		return;
	}
	m->key[i] = key;
	m->tf[i] = 1;
	m->order[m->n++] = key;
	if (m->n * 2 < m->cap)
		return;
	struct tfmap old = *m; /* grow: re-insert by order */
	m->cap *= 2;
	m->key = ab_xmalloc(m->cap * sizeof(*m->key));
	memset(m->key, 0xff, m->cap * sizeof(*m->key));
	m->tf = ab_xmalloc(m->cap * sizeof(*m->tf));
	m->order = ab_xmalloc(m->cap / 2 * sizeof(*m->order));
	memcpy(m->order, old.order, old.n * sizeof(*m->order));
	for (size_t j = 0; j < old.cap; j++) {
		if (old.key[j] == NONE)
			continue;
		size_t k = tfmap_probe(m, old.key[j]);
		m->key[k] = old.key[j];
		m->tf[k] = old.tf[j];
	}
	free(old.key);
	free(old.tf);
	free(old.order);
}

/* Fills order_tf (parallel to order) from the table. */
static void tfmap_finish(struct tfmap *m)
{
	m->order_tf = ab_xmalloc((m->n + 1) * sizeof(*m->order_tf));
	for (size_t i = 0; i < m->n; i++)
		m->order_tf[i] = m->tf[tfmap_probe(m, m->order[i])];
}

struct analysis {
	struct ab_textidx *x;       /* adding: terms are interned */
	const struct ab_textidx *cx; /* searching: unknown terms are skipped */
	struct tfmap map;
};

static void on_term(const struct ab_term *t, void *ctx)
{
	struct analysis *an = ctx;
	uint32_t slot;
	if (an->x) {
		slot = term_intern(an->x, t->term, t->term_len);
	} else {
		const struct ab_textidx *x = an->cx;
		slot = tab_find(x, TAB_TERMS, t->term, t->term_len,
				hash_bytes(x->seed, t->term, t->term_len), NULL);
		if (slot == NONE) {
			an->map.total++;
			return;
		}
	}
	tfmap_add(&an->map, slot);
}

/* Analyses text with the index's params into an->map (tfmap_finish done;
 * the caller frees it). */
static void analyse(const struct ab_textidx_params *p, struct analysis *an, const char *text,
		    size_t len)
{
	struct ab_analyzer a;
	tfmap_init(&an->map);
	ab_analyzer_init(&a, p->stem, p->stopwords);
	ab_analyze(&a, text, len, on_term, an);
	ab_analyzer_release(&a);
	tfmap_finish(&an->map);
}

static int cmp_pterm(const void *a, const void *b)
{
	const struct pterm *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* ---- add, del, get ---- */

int ab_textidx_add(struct ab_textidx *x, const char *id, size_t id_len, const char *text,
		   size_t text_len, void *value, void **old_value)
{
	if (old_value)
		*old_value = NULL;
	if (!x || (!id && id_len) || (!text && text_len))
		return AB_EINVAL;
	if (text_len >= UINT32_MAX)
		return AB_ETOOBIG; /* so that a length in terms fits in 32 bits */
	uint32_t h = hash_bytes(x->seed, id, id_len);
	size_t at;
	uint32_t slot = tab_find(x, TAB_DOCS, id, id_len, h, &at);
	int rc = 1;
	if (slot != NONE) {
		/* the old document goes first, so that its terms' statistics
		 * and postings are gone before the new text is interned */
		void *old = doc_remove(x, slot, at);
		if (old_value)
			*old_value = old;
		rc = 0;
		tab_find(x, TAB_DOCS, id, id_len, h, &at); /* the removal moved entries */
	} else if (!slot_available(x)) {
		return AB_ETOOBIG;
	}
	struct analysis an = {.x = x};
	analyse(&x->p, &an, text, text_len);
	doc_insert(x, id, id_len, h, at, (uint32_t)an.map.total, an.map.order, an.map.order_tf,
		   an.map.n, value);
	tfmap_free(&an.map);
	return rc;
}

int ab_textidx_del(struct ab_textidx *x, const char *id, size_t id_len, void **value)
{
	if (value)
		*value = NULL;
	if (!x || (!id && id_len))
		return 0;
	size_t at;
	uint32_t slot = tab_find(x, TAB_DOCS, id, id_len, hash_bytes(x->seed, id, id_len), &at);
	if (slot == NONE)
		return 0;
	void *v = doc_remove(x, slot, at);
	if (value)
		*value = v;
	return 1;
}

struct ab_textdoc *ab_textidx_get(const struct ab_textidx *x, const char *id, size_t id_len)
{
	if (!x || (!id && id_len))
		return NULL;
	uint32_t slot = tab_find(x, TAB_DOCS, id, id_len, hash_bytes(x->seed, id, id_len), NULL);
	return slot == NONE ? NULL : x->docs[slot];
}

/* ---- search ---- */

static int cmp_id(const struct ab_textdoc *a, const struct ab_textdoc *b)
{
	size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
	int c = n ? memcmp(a->id, b->id, n) : 0;
	if (c)
		return c;
	return a->id_len < b->id_len ? -1 : a->id_len > b->id_len;
}

/* Whether hit a ranks below hit b: lower score, or equal score and a
 * larger id. */
static bool ranks_below(const struct ab_text_hit *a, const struct ab_text_hit *b)
{
	if (a->score != b->score)
		return a->score < b->score;
	return cmp_id(a->doc, b->doc) > 0;
}

/* Min-heap on ranks_below: h[0] is the worst hit kept. */
static void heap_down(struct ab_text_hit *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && ranks_below(&h[l], &h[m]))
			m = l;
		if (r < n && ranks_below(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		struct ab_text_hit t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void heap_up(struct ab_text_hit *h, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!ranks_below(&h[i], &h[parent]))
			return;
		struct ab_text_hit t = h[i];
		h[i] = h[parent];
		h[parent] = t;
		i = parent;
	}
}

static int cmp_hit_best_first(const void *a, const void *b)
{
	const struct ab_text_hit *x = a, *y = b;
	if (ranks_below(x, y))
		return 1;
	if (ranks_below(y, x))
		return -1;
	return 0;
}

/* The bounded heap of a search's k best hits, in the caller's array. */
struct topk {
	struct ab_text_hit *h;
	size_t k, n;
	ab_text_filter_fn filter;
	void *ctx;
};

/* Offers a document; returns the score below which nothing can enter any
 * more (0 until the heap is full). */
static float offer(struct topk *t, const struct ab_textdoc *doc, float score)
{
	struct ab_text_hit cand = {doc, score};
	if (t->n == t->k && !ranks_below(&t->h[0], &cand))
		return (float)t->h[0].score;
	if (t->filter && !t->filter(doc->value, t->ctx))
		return t->n == t->k ? (float)t->h[0].score : 0;
	if (t->n < t->k) {
		t->h[t->n] = cand;
		heap_up(t->h, t->n++);
	} else {
		t->h[0] = cand;
		heap_down(t->h, t->n, 0);
	}
	return t->n == t->k ? (float)t->h[0].score : 0;
}

static double idf_of(uint64_t n_docs, uint64_t df)
{
	double N = (double)n_docs, f = (double)df;
	return log(1.0 + (N - f + 0.5) / (f + 0.5));
}

int ab_textidx_search(const struct ab_textidx *x, const char *query, size_t query_len, size_t k,
		      ab_text_filter_fn filter, void *ctx, struct ab_text_hit *hits)
{
	if (!x || (!query && query_len) || (k > 0 && !hits))
		return AB_EINVAL;
	if (k > INT_MAX)
		k = INT_MAX;
	if (k == 0 || x->ndocs == 0)
		return 0;
	float *score = NULL;
	uint32_t *touched = NULL;
	size_t ntouched = 0, nheap = 0;
	struct analysis an = {.cx = x};
	analyse(&x->p, &an, query, query_len);
	if (an.map.n == 0)
		goto out;

	double k1 = x->p.k1, b = x->p.b;
	double avgdl = (double)x->total_len / (double)x->ndocs;
	if (avgdl <= 0)
		avgdl = 1;
	float norm_a = (float)(k1 * (1 - b)), norm_b = (float)(k1 * b / avgdl);
	const uint32_t *dl = x->dl;
	/* Few postings: remember the documents touched and visit only those.
	 * Many: the final pass over every slot is cheaper than the list. */
	uint64_t total = 0;
	for (size_t i = 0; i < an.map.n; i++)
		total += x->terms[an.map.order[i]].n;
	bool sparse = total < x->ndoc_slots / 4;
	score = ab_xcalloc(x->ndoc_slots, sizeof(*score));
	if (sparse)
		touched = ab_xmalloc(total * sizeof(*touched));
	for (size_t i = 0; i < an.map.n; i++) {
		const struct term *t = &x->terms[an.map.order[i]];
		float w = (float)(an.map.order_tf[i] * idf_of(x->ndocs, t->n) * (k1 + 1));
		const struct posting *p = t->post;
		if (sparse) {
			for (uint32_t j = 0; j < t->n; j++) {
				uint32_t d = p[j].doc;
				float tf = (float)p[j].tf;
				if (score[d] == 0)
					touched[ntouched++] = d;
				score[d] += w * tf / (tf + norm_a + norm_b * (float)dl[d]);
			}
		} else {
			for (uint32_t j = 0; j < t->n; j++) {
				uint32_t d = p[j].doc;
				float tf = (float)p[j].tf;
				score[d] += w * tf / (tf + norm_a + norm_b * (float)dl[d]);
			}
		}
	}
	/* Top k: a document below the heap's worst score is skipped on its
	 * score alone (thr, kept in a register); the rest go to offer(). */
	struct topk top = {hits, k, 0, filter, ctx};
	float thr = 0;
	if (sparse) {
		for (size_t i = 0; i < ntouched; i++) {
			uint32_t d = touched[i];
			if (score[d] >= thr)
				thr = offer(&top, x->docs[d], score[d]);
		}
	} else {
		uint32_t n = x->ndoc_slots;
		for (uint32_t d = 0; d < n; d++) {
			float sc = score[d];
			if (sc >= thr && sc > 0) /* 0: holds no query term */
				thr = offer(&top, x->docs[d], sc);
		}
	}
	nheap = top.n;
	qsort(hits, nheap, sizeof(*hits), cmp_hit_best_first);
out:
	free(score);
	free(touched);
	tfmap_free(&an.map);
	return (int)nheap;
}

double ab_textidx_idf(const struct ab_textidx *x, const char *term, size_t len)
{
	if (!x || (!term && len))
		return 0;
	uint32_t ts = tab_find(x, TAB_TERMS, term, len, hash_bytes(x->seed, term, len), NULL);
	return idf_of(x->ndocs, ts == NONE ? 0 : x->terms[ts].n);
}

uint64_t ab_textidx_df(const struct ab_textidx *x, const char *term, size_t len)
{
	if (!x || (!term && len))
		return 0;
	uint32_t ts = tab_find(x, TAB_TERMS, term, len, hash_bytes(x->seed, term, len), NULL);
	return ts == NONE ? 0 : x->terms[ts].n;
}

/* ---- counts and accessors ---- */

uint64_t ab_textidx_count(const struct ab_textidx *x)
{
	return x ? x->ndocs : 0;
}

uint64_t ab_textidx_terms(const struct ab_textidx *x)
{
	return x ? x->live_terms : 0;
}

size_t ab_textidx_memory(const struct ab_textidx *x)
{
	return x ? x->mem : 0;
}

void ab_textidx_get_params(const struct ab_textidx *x, struct ab_textidx_params *p)
{
	*p = x->p;
}

const char *ab_textdoc_id(const struct ab_textdoc *d, size_t *len)
{
	if (len)
		*len = d->id_len;
	return d->id;
}

void *ab_textdoc_value(const struct ab_textdoc *d)
{
	return d->value;
}

void ab_textdoc_set_value(struct ab_textdoc *d, void *value)
{
	d->value = value;
}

uint32_t ab_textdoc_length(const struct ab_textdoc *d)
{
	return d->length;
}

static struct ab_textdoc *first_from(const struct ab_textidx *x, uint32_t slot)
{
	for (uint32_t i = slot; i < x->ndoc_slots; i++)
		if (x->docs[i])
			return x->docs[i];
	return NULL;
}

struct ab_textdoc *ab_textidx_first(const struct ab_textidx *x)
{
	return x ? first_from(x, 0) : NULL;
}

struct ab_textdoc *ab_textidx_next(const struct ab_textidx *x, const struct ab_textdoc *d)
{
	return x && d ? first_from(x, d->slot + 1) : NULL;
}

/* ---- persistence ---- */

void ab_textdoc_terms(const struct ab_textidx *x, const struct ab_textdoc *d,
		      ab_textdoc_term_fn fn, void *ctx)
{
	for (uint32_t i = 0; i < d->nterms; i++) {
		const struct term *t = &x->terms[d->terms[i].term];
		fn(t->s, t->len, t->post[d->terms[i].pos].tf, ctx);
	}
}

int ab_textidx_restore_doc(struct ab_textidx *x, const char *id, size_t id_len, uint32_t length,
			   const char *const *terms, const size_t *term_lens, const uint32_t *tfs,
			   size_t nterms, void *value)
{
	if (!x || (!id && id_len))
		return AB_EINVAL;
	if (nterms > 0 && (!terms || !term_lens || !tfs))
		return AB_EPROTO;
	if (nterms > length)
		return AB_EPROTO; /* every term has tf >= 1 */
	uint32_t h = hash_bytes(x->seed, id, id_len);
	size_t at;
	if (tab_find(x, TAB_DOCS, id, id_len, h, &at) != NONE)
		return AB_EPROTO;
	if (!slot_available(x))
		return AB_ETOOBIG;
	uint64_t sum = 0;
	for (size_t i = 0; i < nterms; i++) {
		if (!terms[i] || term_lens[i] == 0 || term_lens[i] > AB_TEXT_TERM_MAX || tfs[i] == 0)
			return AB_EPROTO;
		sum += tfs[i];
	}
	if (sum != length)
		return AB_EPROTO;
	struct pterm *pt = nterms ? ab_xmalloc(nterms * sizeof(*pt)) : NULL;
	for (size_t i = 0; i < nterms; i++)
		pt[i] = (struct pterm){terms[i], term_lens[i], tfs[i]};
	if (nterms > 1)
		qsort(pt, nterms, sizeof(*pt), cmp_pterm);
	for (size_t i = 1; i < nterms; i++) {
		if (cmp_pterm(&pt[i - 1], &pt[i]) == 0) {
			free(pt);
			return AB_EPROTO; /* the same term twice */
		}
	}
	uint32_t *ts = nterms ? ab_xmalloc(nterms * sizeof(*ts)) : NULL;
	uint32_t *tfs2 = nterms ? ab_xmalloc(nterms * sizeof(*tfs2)) : NULL;
	for (size_t i = 0; i < nterms; i++) {
		ts[i] = term_intern(x, pt[i].s, pt[i].len);
		tfs2[i] = pt[i].tf;
	}
	doc_insert(x, id, id_len, h, at, length, ts, tfs2, nterms, value);
	free(ts);
	free(tfs2);
	free(pt);
	return 0;
}
