/*
 * text.c - the full-text index data type ("abtextidx") and its commands,
 * over the BM25 engine of src/text. Our own command names (Redis has no
 * standard for this):
 *
 *   AB.TEXTCREATE key [K1 k1] [B b] [STEM | NOSTEM] [STOPWORDS | NOSTOPWORDS]
 *   AB.TEXTADD key id text [ATTRS json]      -> 1 added, 0 replaced
 *   AB.TEXTDEL key id                        -> 1 removed, 0 absent
 *   AB.TEXTSEARCH key query [COUNT n] [WITHSCORES] [WITHATTRIBS]
 *                 [FILTER expr] [NOTHREAD]   -> like VSIM's reply
 *   AB.TEXTCARD key, AB.TEXTINFO key, AB.TEXTGETATTR key id
 *   AB.TEXTQVEC key query [DIMS n]    -> the built-in embedder's query vector
 *                                        (FP32 blob), weighted by this index's idf
 *   AB.TEXTRESTORE key id attrs length terms   (what the AOF rewrite emits)
 *
 * AB.TEXTADD on a missing key creates it with the engine's defaults. The
 * locking, reference counting and search threads are those of module.c.
 * A document's value is its attributes (struct tattr), or NULL when it has
 * none; FILTER takes the same expressions as VSIM.
 *
 * Persistence: RDB encoding version 1 holds the parameters and, for every
 * document, its id, attributes, length and analysed terms with their
 * frequencies, so loading repeats no analysis; the engine rejects an
 * inconsistent record and the load then fails cleanly. The AOF rewrite
 * emits AB.TEXTCREATE and one AB.TEXTRESTORE a document.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "filter.h"
#include "module.h"
#include "embed.h"
#include "textidx.h"

#define TEXT_ENCVER 1
#define TEXT_DEFAULT_COUNT 10
#define TEXT_MAX_COUNT 100000000LL
#define TEXT_MAX_TERMS (1u << 20) /* per document, on restore */

static RedisModuleType *text_type;

struct tattr {
	char *json;
	size_t len;
};

struct tindex {
	struct ab_textidx *x;
	pthread_rwlock_t lock;
	atomic_int refs; /* the key's + one per search in flight */
};

static void tattr_free(void *p)
{
	struct tattr *a = p;
	if (!a)
		return;
	free(a->json);
	free(a);
}

static struct tattr *tattr_new(const char *json, size_t len)
{
	if (!len)
		return NULL;
	struct tattr *a = ab_xmalloc(sizeof(*a));
	a->json = ab_xstrndup(json, len);
	a->len = len;
	return a;
}

static struct tindex *tindex_new(const struct ab_textidx_params *p)
{
	struct ab_textidx *x;
	if (ab_textidx_new(p, &x) < 0)
		return NULL;
	struct tindex *t = ab_xcalloc(1, sizeof(*t));
	t->x = x;
	pthread_rwlock_init(&t->lock, NULL);
	atomic_init(&t->refs, 1);
	return t;
}

static void tindex_destroy(struct tindex *t)
{
	ab_textidx_free(t->x, tattr_free);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

static void tindex_release(struct tindex *t)
{
	if (atomic_fetch_sub(&t->refs, 1) == 1)
		tindex_destroy(t);
}

static struct tindex *open_index(RedisModuleCtx *ctx, RedisModuleString *name, int mode,
				 RedisModuleKey **key, bool *wrong)
{
	*wrong = false;
	*key = RedisModule_OpenKey(ctx, name, mode);
	int t = RedisModule_KeyType(*key);
	if (t == REDISMODULE_KEYTYPE_EMPTY)
		return NULL;
	if (t != REDISMODULE_KEYTYPE_MODULE || RedisModule_ModuleTypeGetType(*key) != text_type) {
		*wrong = true;
		RedisModule_ReplyWithError(ctx,
			"WRONGTYPE Operation against a key holding the wrong kind of value");
		return NULL;
	}
	return RedisModule_ModuleTypeGetValue(*key);
}

/* ---- writes ------------------------------------------------------------- */

/* Parses the options of AB.TEXTCREATE from argv[i..]. */
static bool parse_params(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int i,
			 struct ab_textidx_params *p)
{
	ab_textidx_params_default(p);
	for (; i < argc; i++) {
		double d;
		if (ab_rm_arg_is(argv[i], "K1") && i + 1 < argc) {
			if (!ab_rm_arg_double(ctx, argv[++i], 0.0001, 100, "K1", &d))
				return false;
			p->k1 = (float)d;
		} else if (ab_rm_arg_is(argv[i], "B") && i + 1 < argc) {
			if (!ab_rm_arg_double(ctx, argv[++i], 0, 1, "B", &d))
				return false;
			p->b = (float)d;
		} else if (ab_rm_arg_is(argv[i], "STEM")) {
			p->stem = true;
		} else if (ab_rm_arg_is(argv[i], "NOSTEM")) {
			p->stem = false;
		} else if (ab_rm_arg_is(argv[i], "STOPWORDS")) {
			p->stopwords = true;
		} else if (ab_rm_arg_is(argv[i], "NOSTOPWORDS")) {
			p->stopwords = false;
		} else {
			RedisModule_ReplyWithError(ctx, "ERR syntax error in AB.TEXTCREATE options");
			return false;
		}
	}
	return true;
}

static int cmd_textcreate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc < 2)
		return RedisModule_WrongArity(ctx);
	struct ab_textidx_params p;
	if (!parse_params(ctx, argv, argc, 2, &p))
		return REDISMODULE_OK;
	RedisModuleKey *key;
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	if (wrong)
		goto out;
	if (t) {
		RedisModule_ReplyWithError(ctx, "ERR index exists");
		goto out;
	}
	t = tindex_new(&p);
	if (!t) {
		RedisModule_ReplyWithError(ctx, "ERR invalid index parameters");
		goto out;
	}
	RedisModule_ModuleTypeSetValue(key, text_type, t);
	RedisModule_ReplyWithSimpleString(ctx, "OK");
	RedisModule_ReplicateVerbatim(ctx);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

void *ab_rm_text_new(const struct ab_textidx_params *p)
{
	return tindex_new(p);
}

int ab_rm_text_add(void *value, const char *id, size_t len, const char *text, const char *attr)
{
	struct tindex *t = value;
	void *old = NULL;
	int rc = ab_textidx_add(t->x, id, len, text, strlen(text),
				tattr_new(attr, attr ? strlen(attr) : 0), &old);
	tattr_free(old);
	return rc;
}

struct ab_textidx *ab_rm_text_index(void *value)
{
	return ((struct tindex *)value)->x;
}

/* Opens key for writing, creating an index with the defaults if empty. */
static struct tindex *open_or_create(RedisModuleCtx *ctx, RedisModuleString *name,
				     RedisModuleKey **key)
{
	bool wrong;
	struct tindex *t = open_index(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE, key, &wrong);
	if (wrong || t)
		return t;
	struct ab_textidx_params p;
	ab_textidx_params_default(&p);
	t = tindex_new(&p);
	if (!t) {
		RedisModule_ReplyWithError(ctx, "ERR cannot create the index");
		return NULL;
	}
	RedisModule_ModuleTypeSetValue(*key, text_type, t);
	return t;
}

/* AB.TEXTADD key id text [ATTRS json] */
static int cmd_textadd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 4 && argc != 6)
		return RedisModule_WrongArity(ctx);
	const char *attr = NULL;
	size_t alen = 0;
	if (argc == 6) {
		if (!ab_rm_arg_is(argv[4], "ATTRS"))
			return RedisModule_ReplyWithError(ctx, "ERR syntax error: expected ATTRS");
		attr = RedisModule_StringPtrLen(argv[5], &alen);
		if (alen && !ab_rm_json_object_ok(attr, alen))
			return RedisModule_ReplyWithError(ctx,
				"ERR invalid JSON attribute: expected a JSON object");
	}
	RedisModuleKey *key;
	struct tindex *t = open_or_create(ctx, argv[1], &key);
	if (!t)
		goto out;
	size_t idlen, tlen;
	const char *id = RedisModule_StringPtrLen(argv[2], &idlen);
	const char *text = RedisModule_StringPtrLen(argv[3], &tlen);
	void *old = NULL;
	pthread_rwlock_wrlock(&t->lock);
	int added = ab_textidx_add(t->x, id, idlen, text, tlen, tattr_new(attr, alen), &old);
	pthread_rwlock_unlock(&t->lock);
	tattr_free(old);
	if (added < 0) {
		RedisModule_ReplyWithError(ctx, "ERR cannot index the document");
		goto out;
	}
	RedisModule_ReplyWithLongLong(ctx, added);
	RedisModule_ReplicateVerbatim(ctx);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_textdel(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	if (wrong)
		goto out;
	int removed = 0;
	if (t) {
		size_t idlen;
		const char *id = RedisModule_StringPtrLen(argv[2], &idlen);
		void *value = NULL;
		pthread_rwlock_wrlock(&t->lock);
		removed = ab_textidx_del(t->x, id, idlen, &value);
		pthread_rwlock_unlock(&t->lock);
		if (removed > 0)
			tattr_free(value);
		if (ab_textidx_count(t->x) == 0)
			RedisModule_DeleteKey(key);
	}
	RedisModule_ReplyWithLongLong(ctx, removed > 0 ? 1 : 0);
	if (removed > 0)
		RedisModule_ReplicateVerbatim(ctx);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* Decodes a document's terms: records of [u32 length][bytes][u32 tf],
 * little-endian. Pointers point into blob. false on any inconsistency. */
static bool decode_terms(const unsigned char *blob, size_t len, const char ***terms,
			 size_t **lens, uint32_t **tfs, size_t *n)
{
	size_t cap = 0, k = 0, off = 0;
	*terms = NULL;
	*lens = NULL;
	*tfs = NULL;
	while (off < len) {
		uint32_t tl, tf;
		if (len - off < 4)
			goto bad;
		memcpy(&tl, blob + off, 4);
		off += 4;
		if (tl == 0 || len - off < (size_t)tl + 4)
			goto bad;
		if (k == cap) {
			if (cap >= TEXT_MAX_TERMS)
				goto bad;
			cap = cap ? cap * 2 : 16;
			*terms = ab_xrealloc(*terms, cap * sizeof(**terms));
			*lens = ab_xrealloc(*lens, cap * sizeof(**lens));
			*tfs = ab_xrealloc(*tfs, cap * sizeof(**tfs));
		}
		(*terms)[k] = (const char *)blob + off;
		(*lens)[k] = tl;
		off += tl;
		memcpy(&tf, blob + off, 4);
		off += 4;
		(*tfs)[k++] = tf;
	}
	*n = k;
	return true;
bad:
	free(*terms);
	free(*lens);
	free(*tfs);
	*terms = NULL;
	*lens = NULL;
	*tfs = NULL;
	return false;
}

/* AB.TEXTRESTORE key id attrs length terms-blob: a document from its
 * analysed form (what the AOF rewrite emits). */
static int cmd_textrestore(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 6)
		return RedisModule_WrongArity(ctx);
	long long length;
	if (!ab_rm_arg_ll(ctx, argv[4], 0, UINT32_MAX, "length", &length))
		return REDISMODULE_OK;
	size_t idlen, alen, blen, n = 0;
	const char *id = RedisModule_StringPtrLen(argv[2], &idlen);
	const char *attr = RedisModule_StringPtrLen(argv[3], &alen);
	const unsigned char *blob = (const unsigned char *)RedisModule_StringPtrLen(argv[5], &blen);
	const char **terms = NULL;
	size_t *lens = NULL;
	uint32_t *tfs = NULL;
	RedisModuleKey *key = NULL;
	if (!decode_terms(blob, blen, &terms, &lens, &tfs, &n)) {
		RedisModule_ReplyWithError(ctx, "ERR inconsistent document record");
		goto out;
	}
	if (alen && !ab_rm_json_object_ok(attr, alen)) {
		RedisModule_ReplyWithError(ctx, "ERR invalid JSON attribute: expected a JSON object");
		goto out;
	}
	struct tindex *t = open_or_create(ctx, argv[1], &key);
	if (!t)
		goto out;
	struct tattr *a = tattr_new(attr, alen);
	pthread_rwlock_wrlock(&t->lock);
	int rc = ab_textidx_get(t->x, id, idlen)
			 ? AB_EEXIST
			 : ab_textidx_restore_doc(t->x, id, idlen, (uint32_t)length, terms, lens, tfs, n, a);
	pthread_rwlock_unlock(&t->lock);
	if (rc < 0) {
		tattr_free(a);
		RedisModule_ReplyWithError(ctx, "ERR inconsistent document record");
		if (ab_textidx_count(t->x) == 0)
			RedisModule_DeleteKey(key);
		goto out;
	}
	RedisModule_ReplyWithLongLong(ctx, 1);
	RedisModule_ReplicateVerbatim(ctx);
out:
	if (key)
		RedisModule_CloseKey(key);
	free(terms);
	free(lens);
	free(tfs);
	return REDISMODULE_OK;
}

/* ---- reads -------------------------------------------------------------- */

static int cmd_textcard(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 2)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ, &key, &wrong);
	if (!wrong)
		RedisModule_ReplyWithLongLong(ctx, t ? (long long)ab_textidx_count(t->x) : 0);
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_textgetattr(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ, &key, &wrong);
	if (!wrong) {
		size_t idlen;
		const char *id = RedisModule_StringPtrLen(argv[2], &idlen);
		struct ab_textdoc *d = t ? ab_textidx_get(t->x, id, idlen) : NULL;
		struct tattr *a = d ? ab_textdoc_value(d) : NULL;
		if (a)
			RedisModule_ReplyWithStringBuffer(ctx, a->json, a->len);
		else
			RedisModule_ReplyWithNull(ctx);
	}
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_textinfo(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 2)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ, &key, &wrong);
	if (wrong)
		goto out;
	if (!t) {
		RedisModule_ReplyWithNull(ctx);
		goto out;
	}
	struct ab_textidx_params p;
	ab_textidx_get_params(t->x, &p);
	RedisModule_ReplyWithMap(ctx, 7);
	RedisModule_ReplyWithSimpleString(ctx, "docs");
	RedisModule_ReplyWithLongLong(ctx, (long long)ab_textidx_count(t->x));
	RedisModule_ReplyWithSimpleString(ctx, "terms");
	RedisModule_ReplyWithLongLong(ctx, (long long)ab_textidx_terms(t->x));
	RedisModule_ReplyWithSimpleString(ctx, "k1");
	RedisModule_ReplyWithDouble(ctx, p.k1);
	RedisModule_ReplyWithSimpleString(ctx, "b");
	RedisModule_ReplyWithDouble(ctx, p.b);
	RedisModule_ReplyWithSimpleString(ctx, "stem");
	RedisModule_ReplyWithLongLong(ctx, p.stem);
	RedisModule_ReplyWithSimpleString(ctx, "stopwords");
	RedisModule_ReplyWithLongLong(ctx, p.stopwords);
	RedisModule_ReplyWithSimpleString(ctx, "memory");
	RedisModule_ReplyWithLongLong(ctx, (long long)ab_textidx_memory(t->x));
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* AB.TEXTQVEC key query [DIMS n]: documents embedded by src/text's built-in
 * embedder (no corpus statistics) are searched with a query vector weighted
 * by the idf of the index that holds the same documents: computed here,
 * next to those statistics. A missing key gives the unweighted vector. */
static int cmd_textqvec(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3 && argc != 5)
		return RedisModule_WrongArity(ctx);
	struct ab_embed_params ep;
	ab_embed_params_default(&ep);
	if (argc == 5) {
		long long d;
		if (!ab_rm_arg_is(argv[3], "DIMS"))
			return RedisModule_ReplyWithError(ctx, "ERR syntax error: expected DIMS");
		if (!ab_rm_arg_ll(ctx, argv[4], 16, AB_EMBED_DIMS_MAX, "DIMS", &d))
			return REDISMODULE_OK;
		ep.dims = (uint32_t)d;
	}
	RedisModuleKey *key;
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ, &key, &wrong);
	if (wrong)
		goto out;
	if (t) {
		struct ab_textidx_params p;
		ab_textidx_get_params(t->x, &p);
		ep.stem = p.stem;
		ep.stopwords = p.stopwords;
	}
	struct ab_embedder *e;
	if (ab_embed_new(&ep, &e) < 0) {
		RedisModule_ReplyWithError(ctx, "ERR invalid embedder parameters");
		goto out;
	}
	size_t qlen;
	const char *q = RedisModule_StringPtrLen(argv[2], &qlen);
	float *v = ab_xcalloc(ep.dims, sizeof(float));
	/* main thread: no writer can run, no lock needed */
	int n = ab_embed_query(e, q, qlen, t ? ab_embed_textidx_idf : NULL, t ? t->x : NULL, v);
	if (n < 0)
		RedisModule_ReplyWithError(ctx, "ERR cannot embed the query");
	else
		RedisModule_ReplyWithStringBuffer(ctx, (const char *)v, ep.dims * sizeof(float));
	free(v);
	ab_embed_free(e);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

struct tsearch_job {
	struct ab_rm_search s; /* first: the shared search job (module.c) */
	struct tindex *t;      /* one reference held */
	char *query;
	size_t query_len;
	size_t count;
};

static void tsearch_free(struct ab_rm_search *s)
{
	struct tsearch_job *j = (struct tsearch_job *)s;
	free(j->query);
	free(j);
}

static void tsearch_release(struct ab_rm_search *s)
{
	struct tsearch_job *j = (struct tsearch_job *)s;
	struct tindex *t = j->t;
	j->t = NULL;
	tindex_release(t);
}

static bool filter_accept(void *value, void *ctx)
{
	const struct tattr *a = value;
	return a && ab_filter_match(ctx, a->json, a->len);
}

static void tsearch_run(struct ab_rm_search *s)
{
	struct tsearch_job *j = (struct tsearch_job *)s;
	struct tindex *t = j->t;
	pthread_rwlock_rdlock(&t->lock);
	size_t n = ab_textidx_count(t->x);
	size_t k = j->count < n ? j->count : n;
	struct ab_text_hit *hits = k ? ab_xmalloc(k * sizeof(*hits)) : NULL;
	int got = 0;
	if (k)
		got = ab_textidx_search(t->x, j->query, j->query_len, k,
					j->s.filter ? filter_accept : NULL, j->s.filter, hits);
	if (got < 0) {
		j->s.error = "ERR search failed";
		got = 0;
	}
	j->s.hits = got ? ab_xcalloc((size_t)got, sizeof(*j->s.hits)) : NULL;
	for (int x = 0; x < got; x++) {
		struct ab_rm_hit *h = &j->s.hits[j->s.nhits++];
		size_t idlen;
		const char *id = ab_textdoc_id(hits[x].doc, &idlen);
		h->name = ab_xstrndup(id, idlen);
		h->name_len = idlen;
		h->score = hits[x].score;
		const struct tattr *a = ab_textdoc_value(hits[x].doc);
		if (j->s.withattribs && a) {
			h->attr = ab_xstrndup(a->json, a->len);
			h->attr_len = a->len;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	free(hits);
}

static int cmd_textsearch(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc < 3)
		return RedisModule_WrongArity(ctx);
	struct tsearch_job *j = ab_xcalloc(1, sizeof(*j));
	j->s.run = tsearch_run;
	j->s.release = tsearch_release;
	j->s.free = tsearch_free;
	j->count = TEXT_DEFAULT_COUNT;
	bool nothread = false;
	RedisModuleKey *key = NULL;
	const char *q = RedisModule_StringPtrLen(argv[2], &j->query_len);
	j->query = ab_xstrndup(q, j->query_len);
	for (int i = 3; i < argc; i++) {
		if (ab_rm_arg_is(argv[i], "WITHSCORES")) {
			j->s.withscores = true;
		} else if (ab_rm_arg_is(argv[i], "WITHATTRIBS")) {
			j->s.withattribs = true;
		} else if (ab_rm_arg_is(argv[i], "NOTHREAD")) {
			nothread = true;
		} else if (ab_rm_arg_is(argv[i], "COUNT") && i + 1 < argc) {
			long long c;
			if (!ab_rm_arg_ll(ctx, argv[++i], 1, TEXT_MAX_COUNT, "COUNT", &c))
				goto fail;
			j->count = (size_t)c;
		} else if (ab_rm_arg_is(argv[i], "FILTER") && i + 1 < argc) {
			if (!ab_rm_arg_filter(ctx, argv[++i], &j->s.filter))
				goto fail;
		} else {
			RedisModule_ReplyWithError(ctx, "ERR syntax error in AB.TEXTSEARCH command");
			goto fail;
		}
	}
	j->s.resp3 = ab_rm_resp3(ctx);
	bool wrong;
	struct tindex *t = open_index(ctx, argv[1], REDISMODULE_READ, &key, &wrong);
	if (wrong)
		goto fail;
	if (!t) {
		RedisModule_ReplyWithArray(ctx, 0);
		goto fail;
	}
	j->t = t;
	atomic_fetch_add(&t->refs, 1);
	RedisModule_CloseKey(key);
	ab_rm_search_start(ctx, &j->s, nothread);
	return REDISMODULE_OK;
fail:
	if (key)
		RedisModule_CloseKey(key);
	ab_filter_free(j->s.filter);
	tsearch_free(&j->s);
	return REDISMODULE_OK;
}

/* ---- persistence -------------------------------------------------------- */

struct term_out {
	RedisModuleIO *io;
	uint64_t n;
};

static void save_term(const char *term, size_t len, uint32_t tf, void *ctx)
{
	struct term_out *o = ctx;
	RedisModule_SaveStringBuffer(o->io, term, len);
	RedisModule_SaveUnsigned(o->io, tf);
}

static void count_term(const char *term, size_t len, uint32_t tf, void *ctx)
{
	(void)term;
	(void)len;
	(void)tf;
	((struct term_out *)ctx)->n++;
}

void ab_rm_text_rdb_save(RedisModuleIO *io, void *value)
{
	struct tindex *t = value;
	struct ab_textidx_params p;
	ab_textidx_get_params(t->x, &p);
	RedisModule_SaveDouble(io, p.k1);
	RedisModule_SaveDouble(io, p.b);
	RedisModule_SaveUnsigned(io, (p.stem ? 1u : 0u) | (p.stopwords ? 2u : 0u));
	RedisModule_SaveUnsigned(io, ab_textidx_count(t->x));
	for (struct ab_textdoc *d = ab_textidx_first(t->x); d; d = ab_textidx_next(t->x, d)) {
		size_t idlen;
		const char *id = ab_textdoc_id(d, &idlen);
		const struct tattr *a = ab_textdoc_value(d);
		RedisModule_SaveStringBuffer(io, id, idlen);
		RedisModule_SaveStringBuffer(io, a ? a->json : "", a ? a->len : 0);
		RedisModule_SaveUnsigned(io, ab_textdoc_length(d));
		struct term_out o = {.io = io};
		ab_textdoc_terms(t->x, d, count_term, &o);
		RedisModule_SaveUnsigned(io, o.n);
		ab_textdoc_terms(t->x, d, save_term, &o);
	}
}

void *ab_rm_text_rdb_load(RedisModuleIO *io, int encver)
{
	if (encver != TEXT_ENCVER) {
		RedisModule_LogIOError(io, "warning", "autobot: unknown text index encoding %d", encver);
		return NULL;
	}
	struct ab_textidx_params p;
	ab_textidx_params_default(&p);
	double k1 = RedisModule_LoadDouble(io);
	double b = RedisModule_LoadDouble(io);
	uint64_t flags = RedisModule_LoadUnsigned(io);
	uint64_t count = RedisModule_LoadUnsigned(io);
	struct tindex *t = NULL;
	char **terms = NULL;
	size_t *lens = NULL;
	uint32_t *tfs = NULL;
	uint64_t nterms = 0;
	bool ok = false;
	if (RedisModule_IsIOError(io) || !(k1 > 0 && k1 <= 100) || !(b >= 0 && b <= 1) || flags > 3)
		goto out;
	p.k1 = (float)k1;
	p.b = (float)b;
	p.stem = flags & 1;
	p.stopwords = (flags & 2) != 0;
	t = tindex_new(&p);
	if (!t)
		goto out;
	for (uint64_t c = 0; c < count; c++) {
		size_t idlen, alen;
		char *id = RedisModule_LoadStringBuffer(io, &idlen);
		char *attr = RedisModule_LoadStringBuffer(io, &alen);
		uint64_t length = RedisModule_LoadUnsigned(io);
		nterms = RedisModule_LoadUnsigned(io);
		bool good = !RedisModule_IsIOError(io) && id && attr && length <= UINT32_MAX &&
			    nterms <= TEXT_MAX_TERMS;
		if (good) {
			terms = ab_xcalloc(nterms ? nterms : 1, sizeof(*terms));
			lens = ab_xcalloc(nterms ? nterms : 1, sizeof(*lens));
			tfs = ab_xcalloc(nterms ? nterms : 1, sizeof(*tfs));
			for (uint64_t k = 0; k < nterms && good; k++) {
				terms[k] = RedisModule_LoadStringBuffer(io, &lens[k]);
				uint64_t tf = RedisModule_LoadUnsigned(io);
				good = !RedisModule_IsIOError(io) && terms[k] && tf <= UINT32_MAX;
				tfs[k] = (uint32_t)tf;
			}
		}
		if (good) {
			struct tattr *a = tattr_new(attr, alen);
			if (ab_textidx_get(t->x, id, idlen) ||
			    ab_textidx_restore_doc(t->x, id, idlen, (uint32_t)length,
						   (const char *const *)terms, lens, tfs, nterms, a) < 0) {
				tattr_free(a);
				good = false;
			}
		}
		if (id)
			RedisModule_Free(id);
		if (attr)
			RedisModule_Free(attr);
		for (uint64_t k = 0; terms && k < nterms; k++)
			if (terms[k])
				RedisModule_Free(terms[k]);
		free(terms);
		free(lens);
		free(tfs);
		terms = NULL;
		lens = NULL;
		tfs = NULL;
		if (!good)
			goto out;
	}
	ok = true;
out:
	if (!ok) {
		RedisModule_LogIOError(io, "warning", "autobot: corrupt text index in RDB, not loaded");
		if (t)
			tindex_destroy(t);
		return NULL;
	}
	return t;
}

static void encode_term(const char *term, size_t len, uint32_t tf, void *ctx)
{
	struct ab_buf *b = ctx;
	uint32_t tl = (uint32_t)len;
	ab_buf_append(b, &tl, 4);
	ab_buf_append(b, term, len);
	ab_buf_append(b, &tf, 4);
}

static void text_aof_rewrite(RedisModuleIO *aof, RedisModuleString *key, void *value)
{
	struct tindex *t = value;
	struct ab_textidx_params p;
	ab_textidx_get_params(t->x, &p);
	char k1[32], b[32];
	snprintf(k1, sizeof(k1), "%.9g", p.k1);
	snprintf(b, sizeof(b), "%.9g", p.b);
	RedisModule_EmitAOF(aof, "AB.TEXTCREATE", "scccccc", key, "K1", k1, "B", b,
			    p.stem ? "STEM" : "NOSTEM", p.stopwords ? "STOPWORDS" : "NOSTOPWORDS");
	struct ab_buf blob;
	ab_buf_init(&blob);
	for (struct ab_textdoc *d = ab_textidx_first(t->x); d; d = ab_textidx_next(t->x, d)) {
		ab_buf_reset(&blob);
		ab_textdoc_terms(t->x, d, encode_term, &blob);
		size_t idlen;
		const char *id = ab_textdoc_id(d, &idlen);
		const struct tattr *a = ab_textdoc_value(d);
		RedisModule_EmitAOF(aof, "AB.TEXTRESTORE", "sbblb", key, id, idlen, a ? a->json : "",
				    a ? a->len : (size_t)0, (long long)ab_textdoc_length(d),
				    blob.data ? blob.data : "", blob.len);
	}
	ab_buf_free(&blob);
}

static size_t text_mem_usage(const void *value)
{
	const struct tindex *t = value;
	return sizeof(*t) + ab_textidx_memory(t->x);
}

void ab_rm_text_free(void *value)
{
	tindex_release(value);
}

int ab_rm_text_register(RedisModuleCtx *ctx)
{
	static struct ab_rm_type_methods tm = {
		.version = 1,
		.rdb_load = ab_rm_text_rdb_load,
		.rdb_save = ab_rm_text_rdb_save,
		.aof_rewrite = text_aof_rewrite,
		.mem_usage = text_mem_usage,
		.free = ab_rm_text_free,
	};
	text_type = RedisModule_CreateDataType(ctx, "abtextidx", TEXT_ENCVER, &tm);
	if (!text_type)
		return REDISMODULE_ERR;
	static const struct {
		const char *name;
		RedisModuleCmdFunc fn;
		const char *flags;
	} cmds[] = {
		{"AB.TEXTCREATE", cmd_textcreate, "write deny-oom"},
		{"AB.TEXTADD", cmd_textadd, "write deny-oom"},
		{"AB.TEXTDEL", cmd_textdel, "write"},
		{"AB.TEXTRESTORE", cmd_textrestore, "write deny-oom"},
		{"AB.TEXTSEARCH", cmd_textsearch, "readonly"},
		{"AB.TEXTCARD", cmd_textcard, "readonly fast"},
		{"AB.TEXTINFO", cmd_textinfo, "readonly fast"},
		{"AB.TEXTGETATTR", cmd_textgetattr, "readonly fast"},
		{"AB.TEXTQVEC", cmd_textqvec, "readonly"},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (RedisModule_CreateCommand(ctx, cmds[i].name, cmds[i].fn, cmds[i].flags, 1, 1, 1) ==
		    REDISMODULE_ERR)
			return REDISMODULE_ERR;
	return REDISMODULE_OK;
}
