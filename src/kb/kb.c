/*
 * kb.c - the knowledge base (see kb.h for the storage model and the
 * consistency argument).
 *
 * Indexing one document:
 *   1. read ab:kb:doc:<id> and ab:kb:src:<id>; status -> indexing;
 *   2. remove what an earlier attempt wrote (chunk ids below the
 *      document's `written` mark, or its previous `chunks` count);
 *   3. extract text (extract.c), render it with headings as Markdown lines
 *      and a form feed at each page, chunk (src/text/chunk.c);
 *   4. embed every chunk ("title\nheading path\ntext", the same string the
 *      BM25 index gets), in batches for the HTTP embedders;
 *   5. write batches of chunks: VADD to ab:kb:vec, AB.TEXTADD to
 *      ab:kb:text (both with the chunk's attributes as JSON, for FILTER),
 *      the chunk's text to ab:kb:chunks:<id>, and the `written` mark;
 *   6. status -> ready with the chunk count, in the last round trip.
 *
 * Search: the BM25 list (AB.TEXTSEARCH) and the vector list (VSIM with a
 * query vector: for the built-in embedder AB.TEXTQVEC makes it inside Redis
 * with the index's idf) are fused by reciprocal-rank fusion, score(c) =
 * sum over lists of w / (k + rank), with the k and weights of
 * ab_hybrid_params_default (src/text/fuse.h: the settings the engine's
 * evaluation chose once for all collections). Filters become one FILTER
 * expression over the chunk attributes, applied inside both searches.
 * Chunks of documents that are not ready are dropped when their metadata
 * is fetched.
 */
#include "kb.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "common.h"
#include "dict.h"
#include "embed.h"
#include "extract.h"
#include "fuse.h"
#include "httpc.h"
#include "keys.h"
#include "log.h"
#include "sha256.h"
#include "textidx.h"

#define WRITE_BATCH 128
#define EMBED_BATCH 32

struct ab_kb {
	struct ab_redis *r;
	char *embedder;
	char *model;
	char *url;
	char *api_key;
	int chunk_tokens, chunk_overlap;
	size_t max_bytes;
	int timeout_ms;
	struct ab_embedder *builtin; /* when embedder is builtin */
	bool builtin_flags_set;
};

const char *ab_kb_embedder(const struct ab_kb *kb) { return kb->embedder; }

int ab_kb_new(struct ab_redis *r, const struct ab_kb_opts *o, struct ab_kb **out)
{
	const char *e = o->embedder ? o->embedder : "builtin";
	if (strcmp(e, "builtin") && strcmp(e, "llm") && strcmp(e, "ollama") && strcmp(e, "openai"))
		return AB_EINVAL;
	if (strcmp(e, "builtin") && (!o->embed_url || !o->embed_url[0] || !o->embed_model ||
				     !o->embed_model[0]))
		return AB_EINVAL;
	struct ab_kb *kb = ab_xcalloc(1, sizeof(*kb));
	kb->r = r;
	kb->embedder = ab_xstrdup(e);
	kb->model = ab_xstrdup(o->embed_model ? o->embed_model : "");
	kb->url = ab_xstrdup(o->embed_url ? o->embed_url : "");
	kb->api_key = ab_xstrdup(o->embed_api_key ? o->embed_api_key : "");
	kb->chunk_tokens = o->chunk_tokens > 0 ? o->chunk_tokens : 256;
	kb->chunk_overlap = o->chunk_overlap >= 0 ? o->chunk_overlap : 32;
	kb->max_bytes = o->max_bytes ? o->max_bytes : (size_t)64 << 20;
	kb->timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 60000;
	if (!strcmp(e, "builtin")) {
		/* The module embeds queries with the defaults and the text
		 * index's stem/stopwords flags, which are the defaults too. */
		struct ab_embed_params ep;
		struct ab_textidx_params tp;
		ab_embed_params_default(&ep);
		ab_textidx_params_default(&tp);
		ep.stem = tp.stem;
		ep.stopwords = tp.stopwords;
		if (ab_embed_new(&ep, &kb->builtin) < 0) {
			ab_kb_free(kb);
			return AB_EINVAL;
		}
	}
	*out = kb;
	return 0;
}

void ab_kb_free(struct ab_kb *kb)
{
	if (!kb)
		return;
	ab_embed_free(kb->builtin);
	free(kb->embedder);
	free(kb->model);
	free(kb->url);
	free(kb->api_key);
	free(kb);
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= AB_KB_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* ---- adding ------------------------------------------------------------- */

int ab_kb_add(struct ab_kb *kb, const struct ab_kb_doc_in *in, bool queue, json_t **out,
	      char *err, size_t errlen)
{
	char idbuf[AB_KB_ID_MAX];
	if (in->id && !id_ok(in->id)) {
		snprintf(err, errlen, "invalid document id: use 1-63 letters, digits, '-', '_' or '.'");
		return AB_EINVAL;
	}
	if (!in->data || in->len == 0) {
		snprintf(err, errlen, "the document is empty");
		return AB_EINVAL;
	}
	if (in->len > kb->max_bytes) {
		snprintf(err, errlen, "the document is %zu bytes; the limit is %zu (kb.max_upload_mb)",
			 in->len, kb->max_bytes);
		return AB_ETOOBIG;
	}
	if (in->tags) {
		size_t i;
		json_t *t;
		if (!json_is_array(in->tags)) {
			snprintf(err, errlen, "tags must be an array of strings");
			return AB_EINVAL;
		}
		json_array_foreach(in->tags, i, t) {
			if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 128) {
				snprintf(err, errlen, "tags must be non-empty strings of at most 128 bytes");
				return AB_EINVAL;
			}
		}
	}
	char hex[65];
	ab_sha256_hex(in->data, in->len, hex);
	int e = 0;
	/* The same bytes already stored: a no-op. */
	redisReply *rep = ab_redis_cmd(kb->r, &e, "GET " AB_KEY_KB_HASH_PREFIX "%s", hex);
	if (!rep)
		return e;
	if (rep->type == REDIS_REPLY_STRING && (!in->id || !strcmp(in->id, rep->str))) {
		json_t *doc = NULL;
		if (ab_kb_get(kb, rep->str, &doc) == 0) {
			*out = json_pack("{s:s, s:O, s:O, s:b}", "id", rep->str, "job",
					 json_object_get(doc, "job") ? json_object_get(doc, "job") : json_null(),
					 "status", json_object_get(doc, "status"), "existing", 1);
			json_decref(doc);
			freeReplyObject(rep);
			return 0;
		}
	}
	freeReplyObject(rep);
	if (in->id) {
		ab_strlcpy(idbuf, in->id, sizeof(idbuf));
	} else {
		ab_random_hex(idbuf, 8);
	}
	char job[AB_JOB_ID_MAX];
	snprintf(job, sizeof(job), "kb-%s-%s", idbuf, hex + 48);
	const char *title = in->title ? in->title : "";
	char *tags = in->tags ? json_dumps(in->tags, JSON_COMPACT) : ab_xstrdup("[]");
	char now[32], size[32];
	snprintf(now, sizeof(now), "%lld", (long long)ab_wall_ms());
	snprintf(size, sizeof(size), "%zu", in->len);
	char *dockey = ab_xasprintf(AB_KEY_KB_DOC_PREFIX "%s", idbuf);
	char *srckey = ab_xasprintf(AB_KEY_KB_SRC_PREFIX "%s", idbuf);
	char *hashkey = ab_xasprintf(AB_KEY_KB_HASH_PREFIX "%s", hex);
	const char *hset[] = {"HSET", dockey, "id", idbuf, "title", title, "source",
			      in->source ? in->source : "", "mime", in->mime ? in->mime : "",
			      "filename", in->filename ? in->filename : "", "tags", tags, "size", size,
			      "sha256", hex, "status", "queued", "job", job, "created_ms", now,
			      "error", ""};
	const char *set_src[] = {"SET", srckey, in->data};
	size_t src_lens[] = {3, strlen(srckey), in->len};
	const char *set_hash[] = {"SET", hashkey, idbuf};
	const char *zadd[] = {"ZADD", AB_KEY_KB_DOCS, now, idbuf};
	struct ab_redis_argv cmds[] = {
		{3, set_src, src_lens},
		{(int)(sizeof(hset) / sizeof(hset[0])), hset, NULL},
		{3, set_hash, NULL},
		{4, zadd, NULL},
	};
	redisReply *reps[4] = {0};
	int rc = ab_redis_pipeline(kb->r, 4, cmds, reps);
	for (int i = 0; i < 4 && rc == 0; i++)
		if (!reps[i] || reps[i]->type == REDIS_REPLY_ERROR)
			rc = AB_EREDIS;
	for (int i = 0; i < 4; i++)
		if (reps[i])
			freeReplyObject(reps[i]);
	if (rc < 0) {
		snprintf(err, errlen, "cannot store the document: %s", ab_strerror(rc));
		goto out;
	}
	bool existed = false;
	if (queue) {
		json_t *payload = json_pack("{s:s}", "doc", idbuf);
		char jid[AB_JOB_ID_MAX];
		rc = ab_jobs_submit(kb->r, AB_KB_QUEUE, AB_KB_JOB_INGEST, job, payload, jid, &existed);
		json_decref(payload);
		if (rc < 0) {
			snprintf(err, errlen, "cannot queue the ingestion job: %s", ab_strerror(rc));
			goto out;
		}
	}
	*out = json_pack("{s:s, s:s, s:s, s:b}", "id", idbuf, "job", job, "status", "queued",
			 "existing", 0);
out:
	free(tags);
	free(dockey);
	free(srckey);
	free(hashkey);
	return rc;
}

/* ---- embedding ---------------------------------------------------------- */

/* Embeds n texts into vecs[i] (each *dims floats, allocated here; the
 * caller frees). The first call fixes *dims (0 in). */
static int embed_http(struct ab_kb *kb, const char *const *texts, size_t n, float **vecs,
		      uint32_t *dims, char *err, size_t errlen)
{
	bool openai = !strcmp(kb->embedder, "openai");
	json_t *input = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(input, json_string(texts[i]));
	json_t *body = json_pack("{s:s, s:o}", "model", kb->model, "input", input);
	char *b = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	char *url = ab_xasprintf("%s%s", kb->url, openai ? "/v1/embeddings" : "/api/embed");
	char *auth = kb->api_key[0] ? ab_xasprintf("Authorization: Bearer %s", kb->api_key) : NULL;
	const char *headers[] = {"Content-Type: application/json", auth, NULL};
	struct ab_httpc_req req = {.method = "POST", .url = url, .body = b, .body_len = strlen(b),
				   .headers = headers, .timeout_ms = kb->timeout_ms,
				   .max_response = (size_t)256 << 20};
	int rc = ab_httpc_run(&req, 1);
	json_t *resp = NULL;
	if (rc < 0 || req.status != 200) {
		snprintf(err, errlen, "embedding server %s: %s", kb->url,
			 rc < 0 ? ab_strerror(rc) : req.resp ? req.resp : "no answer");
		if (rc >= 0)
			rc = req.status >= 500 || req.status == 429 ? AB_EUNAVAIL : AB_EINVAL;
		goto out;
	}
	resp = json_loads(req.resp, 0, NULL);
	json_t *list = openai ? json_object_get(resp, "data") : json_object_get(resp, "embeddings");
	if (!json_is_array(list) || json_array_size(list) != n) {
		snprintf(err, errlen, "embedding server %s: unexpected answer", kb->url);
		rc = AB_EPROTO;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(list, i);
		if (openai)
			v = json_object_get(v, "embedding");
		size_t d = json_array_size(v);
		if (!json_is_array(v) || d == 0 || d > 65536 || (*dims && d != *dims)) {
			snprintf(err, errlen, "embedding server %s: vectors of the wrong size", kb->url);
			rc = AB_EPROTO;
			goto out;
		}
		*dims = (uint32_t)d;
		vecs[i] = ab_xmalloc(d * sizeof(float));
		for (size_t k = 0; k < d; k++)
			vecs[i][k] = (float)json_number_value(json_array_get(v, k));
	}
	rc = 0;
out:
	json_decref(resp);
	ab_httpc_req_clear(&req);
	free(b);
	free(url);
	free(auth);
	return rc;
}

/* One vector for a query (caller frees *vec). */
static int embed_query(struct ab_kb *kb, const char *q, float **vec, uint32_t *dims, char *err,
		       size_t errlen)
{
	if (kb->builtin) {
		int e = 0;
		redisReply *rep = ab_redis_cmd(kb->r, &e, "AB.TEXTQVEC " AB_KEY_KB_TEXT " %s DIMS %u",
					       q, ab_embed_dims(kb->builtin));
		if (!rep)
			return e;
		int rc = 0;
		if (rep->type != REDIS_REPLY_STRING || rep->len % 4 || rep->len == 0) {
			snprintf(err, errlen, "query vector: %s",
				 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
			rc = AB_EREDIS;
		} else {
			*dims = (uint32_t)(rep->len / 4);
			*vec = ab_xmalloc(rep->len);
			memcpy(*vec, rep->str, rep->len);
		}
		freeReplyObject(rep);
		return rc;
	}
	*dims = 0;
	return embed_http(kb, &q, 1, vec, dims, err, errlen);
}

/* ---- indexing ----------------------------------------------------------- */

struct chunk_rec {
	char *index_text; /* title \n heading \n text: what BM25 and the embedder see */
	const struct ab_chunk *c;
	float *vec;
};

/* Writes the doc's chunks [from, to). */
static int write_batch(struct ab_kb *kb, const char *id, const char *attrs_base,
		       struct chunk_rec *recs, size_t from, size_t to, uint32_t dims)
{
	size_t n = to - from;
	size_t ncmd = 3 * n + 1;
	struct ab_redis_argv *cmds = ab_xcalloc(ncmd, sizeof(*cmds));
	const char **argv = ab_xcalloc(ncmd * 9, sizeof(char *));
	size_t *lens = ab_xcalloc(ncmd * 9, sizeof(size_t));
	char **owned = ab_xcalloc(4 * n + 2, sizeof(char *));
	size_t no = 0, k = 0;
	char *chunkskey = ab_xasprintf(AB_KEY_KB_CHUNKS_PREFIX "%s", id);
	char *dockey = ab_xasprintf(AB_KEY_KB_DOC_PREFIX "%s", id);
	char written[32];
	snprintf(written, sizeof(written), "%zu", to);
	for (size_t i = from; i < to; i++) {
		const struct ab_chunk *c = recs[i].c;
		char *cid = owned[no++] = ab_xasprintf("%s#%zu", id, i);
		char *attrs = owned[no++] = ab_xasprintf("%s, \"chunk\": %zu, \"page\": %u}", attrs_base,
							   i, c->page);
		json_t *cj = json_pack("{s:s, s:s, s:i, s:i}", "text", c->text, "heading", c->heading,
				       "page", (int)c->page, "page_last", (int)c->page_last);
		char *cjs = owned[no++] = json_dumps(cj, JSON_COMPACT);
		json_decref(cj);
		char *field = owned[no++] = ab_xasprintf("%zu", i);
		const char **a = argv + 9 * k;
		size_t *l = lens + 9 * k;
		/* VADD key FP32 blob elem SETATTR attrs */
		a[0] = "VADD"; a[1] = AB_KEY_KB_VEC; a[2] = "FP32"; a[3] = (const char *)recs[i].vec;
		a[4] = cid; a[5] = "SETATTR"; a[6] = attrs;
		for (int x = 0; x < 7; x++)
			l[x] = x == 3 ? dims * sizeof(float) : strlen(a[x]);
		cmds[k++] = (struct ab_redis_argv){7, a, l};
		a = argv + 9 * k;
		l = lens + 9 * k;
		a[0] = "AB.TEXTADD"; a[1] = AB_KEY_KB_TEXT; a[2] = cid; a[3] = recs[i].index_text;
		a[4] = "ATTRS"; a[5] = attrs;
		for (int x = 0; x < 6; x++)
			l[x] = strlen(a[x]);
		cmds[k++] = (struct ab_redis_argv){6, a, l};
		a = argv + 9 * k;
		a[0] = "HSET"; a[1] = chunkskey; a[2] = field; a[3] = cjs;
		cmds[k++] = (struct ab_redis_argv){4, a, NULL};
	}
	const char **a = argv + 9 * k;
	a[0] = "HSET"; a[1] = dockey; a[2] = "written"; a[3] = written;
	cmds[k++] = (struct ab_redis_argv){4, a, NULL};
	redisReply **reps = ab_xcalloc(k, sizeof(*reps));
	int rc = ab_redis_pipeline(kb->r, k, cmds, reps);
	for (size_t i = 0; i < k && rc == 0; i++) {
		if (reps[i] && reps[i]->type == REDIS_REPLY_ERROR) {
			ab_log(AB_LOG_WARN, "kb: writing %s: %s", id, reps[i]->str);
			rc = strstr(reps[i]->str, "dimension mismatch") ? AB_EINVAL : AB_EREDIS;
		}
	}
	for (size_t i = 0; i < k; i++)
		if (reps[i])
			freeReplyObject(reps[i]);
	free(reps);
	for (size_t i = 0; i < no; i++)
		free(owned[i]);
	free(owned);
	free(cmds);
	free(argv);
	free(lens);
	free(chunkskey);
	free(dockey);
	return rc;
}

/* Removes chunk ids [0, n) of a document from both indexes and its chunk
 * texts. */
static int remove_chunks(struct ab_kb *kb, const char *id, size_t n)
{
	for (size_t from = 0; from < n; from += WRITE_BATCH) {
		size_t to = from + WRITE_BATCH < n ? from + WRITE_BATCH : n;
		size_t k = 0;
		struct ab_redis_argv *cmds = ab_xcalloc(2 * (to - from), sizeof(*cmds));
		const char **argv = ab_xcalloc(2 * (to - from) * 3, sizeof(char *));
		char **ids = ab_xcalloc(to - from, sizeof(char *));
		for (size_t i = from; i < to; i++) {
			ids[i - from] = ab_xasprintf("%s#%zu", id, i);
			const char **a = argv + 3 * k;
			a[0] = "VREM"; a[1] = AB_KEY_KB_VEC; a[2] = ids[i - from];
			cmds[k++] = (struct ab_redis_argv){3, a, NULL};
			a = argv + 3 * k;
			a[0] = "AB.TEXTDEL"; a[1] = AB_KEY_KB_TEXT; a[2] = ids[i - from];
			cmds[k++] = (struct ab_redis_argv){3, a, NULL};
		}
		redisReply **reps = ab_xcalloc(k, sizeof(*reps));
		int rc = ab_redis_pipeline(kb->r, k, cmds, reps);
		for (size_t i = 0; i < k; i++)
			if (reps[i])
				freeReplyObject(reps[i]);
		for (size_t i = 0; i < to - from; i++)
			free(ids[i]);
		free(ids);
		free(reps);
		free(cmds);
		free(argv);
		if (rc < 0)
			return rc;
	}
	int e = 0;
	redisReply *rep = ab_redis_cmd(kb->r, &e, "DEL " AB_KEY_KB_CHUNKS_PREFIX "%s", id);
	if (!rep)
		return e;
	freeReplyObject(rep);
	return 0;
}

static const char *hget(const redisReply *h, const char *name)
{
	for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
		if (h->element[i]->str && !strcmp(h->element[i]->str, name))
			return h->element[i + 1]->str;
	return NULL;
}

static void set_status(struct ab_kb *kb, const char *id, const char *status, const char *error)
{
	int e;
	redisReply *rep = ab_redis_cmd(kb->r, &e, "HSET " AB_KEY_KB_DOC_PREFIX "%s status %s error %s",
				       id, status, error ? error : "");
	if (rep)
		freeReplyObject(rep);
}

int ab_kb_index(struct ab_kb *kb, const char *id, ab_kb_progress_fn progress,
		ab_kb_cancel_fn cancel, void *ctx, char *err, size_t errlen)
{
	int e = 0, rc = 0;
	redisReply *doc = NULL, *src = NULL;
	struct ab_doc_text *dt = NULL;
	struct ab_chunks *chunks = NULL;
	struct chunk_rec *recs = NULL;
	char *text = NULL, *attrs_base = NULL;
	err[0] = '\0';
	if (!id_ok(id)) {
		snprintf(err, errlen, "invalid document id");
		return AB_EINVAL;
	}
	doc = ab_redis_cmd(kb->r, &e, "HGETALL " AB_KEY_KB_DOC_PREFIX "%s", id);
	if (!doc)
		return e;
	if (doc->type != REDIS_REPLY_ARRAY || doc->elements == 0) {
		snprintf(err, errlen, "document %s does not exist (deleted?)", id);
		rc = AB_EINVAL;
		goto out;
	}
	src = ab_redis_cmd(kb->r, &e, "GET " AB_KEY_KB_SRC_PREFIX "%s", id);
	if (!src) {
		rc = e;
		goto out;
	}
	if (src->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "the source of document %s is gone", id);
		rc = AB_EINVAL;
		goto out;
	}
	set_status(kb, id, "indexing", NULL);
	/* 2. what an earlier attempt or version left */
	const char *w = hget(doc, "written"), *c0 = hget(doc, "chunks");
	size_t old = 0;
	if (w)
		old = (size_t)strtoull(w, NULL, 10);
	if (c0 && (size_t)strtoull(c0, NULL, 10) > old)
		old = (size_t)strtoull(c0, NULL, 10);
	if (old && (rc = remove_chunks(kb, id, old)) < 0)
		goto out;
	/* 3. text and chunks */
	const char *mime = hget(doc, "mime");
	const char *fname = hget(doc, "filename");
	char xerr[256] = "";
	rc = ab_extract(src->str, src->len, mime && mime[0] ? mime : NULL,
			fname && fname[0] ? fname : NULL, NULL, &dt, xerr, sizeof(xerr));
	if (rc < 0) {
		snprintf(err, errlen, "%s", xerr[0] ? xerr : ab_strerror(rc));
		rc = AB_EINVAL;
		goto out;
	}
	const char *title = hget(doc, "title");
	if ((!title || !title[0]) && dt->title && dt->title[0])
		title = dt->title;
	if (!title || !title[0])
		title = fname && fname[0] ? fname : "";
	/* headings as Markdown lines, a form feed at each new page, lines the
	 * chunker could misread as headings indented (extract.c) */
	size_t tlen, npages = dt->npages;
	text = ab_doc_text_render(dt, &tlen);
	struct ab_chunk_params cp;
	ab_chunk_params_default(&cp);
	cp.target_tokens = (uint32_t)kb->chunk_tokens;
	cp.overlap_tokens = (uint32_t)kb->chunk_overlap;
	if (ab_chunk_text(text, tlen, &cp, &chunks) < 0 || chunks->n == 0) {
		snprintf(err, errlen, "no text found in the document");
		rc = AB_EINVAL;
		goto out;
	}
	/* attributes shared by every chunk (the chunk and page are added) */
	json_t *tags = json_loads(hget(doc, "tags") ? hget(doc, "tags") : "[]", 0, NULL);
	json_t *ab = json_pack("{s:s, s:s, s:s, s:s, s:o}", "doc", id, "title", title, "source",
			       hget(doc, "source") ? hget(doc, "source") : "", "type",
			       ab_doc_kind_name(dt->kind), "tags", tags ? tags : json_array());
	char *abs = json_dumps(ab, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ab);
	size_t al = strlen(abs);
	abs[al - 1] = '\0'; /* drop the closing brace: chunk and page follow */
	attrs_base = abs;
	/* 4. embed */
	size_t n = chunks->n;
	recs = ab_xcalloc(n, sizeof(*recs));
	uint32_t dims = 0;
	for (size_t i = 0; i < n; i++) {
		recs[i].c = &chunks->v[i];
		recs[i].index_text = ab_xasprintf("%s\n%s\n%s", title, chunks->v[i].heading,
						  chunks->v[i].text);
	}
	for (size_t i = 0; i < n; i += EMBED_BATCH) {
		size_t m = i + EMBED_BATCH < n ? EMBED_BATCH : n - i;
		if (cancel && cancel(ctx)) {
			rc = AB_ECLOSED;
			goto out;
		}
		if (kb->builtin) {
			dims = ab_embed_dims(kb->builtin);
			for (size_t k = i; k < i + m; k++) {
				recs[k].vec = ab_xcalloc(dims, sizeof(float));
				ab_embed_doc(kb->builtin, recs[k].index_text, strlen(recs[k].index_text),
					     recs[k].vec);
			}
		} else {
			const char **texts = ab_xcalloc(m, sizeof(char *));
			float **vecs = ab_xcalloc(m, sizeof(float *));
			for (size_t k = 0; k < m; k++)
				texts[k] = recs[i + k].index_text;
			rc = embed_http(kb, texts, m, vecs, &dims, err, errlen);
			for (size_t k = 0; k < m; k++)
				recs[i + k].vec = vecs[k];
			free(texts);
			free(vecs);
			if (rc < 0)
				goto out;
		}
		if (progress)
			progress(0.05 + 0.6 * (double)(i + m) / (double)n, "embedding", ctx);
	}
	/* 5. write */
	for (size_t i = 0; i < n; i += WRITE_BATCH) {
		size_t to = i + WRITE_BATCH < n ? i + WRITE_BATCH : n;
		if (cancel && cancel(ctx)) {
			rc = AB_ECLOSED;
			goto out;
		}
		rc = write_batch(kb, id, attrs_base, recs, i, to, dims);
		if (rc == AB_EINVAL) {
			snprintf(err, errlen, "the vector index holds vectors of another size: the "
					      "embedder changed (kb.embedder); re-create the knowledge base");
			goto out;
		}
		if (rc < 0)
			goto out;
		if (progress)
			progress(0.65 + 0.35 * (double)to / (double)n, "indexing", ctx);
	}
	/* 6. visible */
	redisReply *fin = ab_redis_cmd(kb->r, &e,
				       "HSET " AB_KEY_KB_DOC_PREFIX "%s status ready chunks %llu pages %llu "
				       "title %s type %s indexed_ms %lld error %s",
				       id, (unsigned long long)n, (unsigned long long)npages, title, ab_doc_kind_name(dt->kind),
				       (long long)ab_wall_ms(), "");
	if (!fin) {
		rc = e;
		goto out;
	}
	freeReplyObject(fin);
	rc = 0;
out:
	if (rc == AB_EINVAL)
		set_status(kb, id, "failed", err);
	for (size_t i = 0; recs && i < chunks->n; i++) {
		free(recs[i].index_text);
		free(recs[i].vec);
	}
	free(recs);
	ab_chunks_free(chunks);
	free(text);
	free(attrs_base);
	ab_doc_text_free(dt);
	if (doc)
		freeReplyObject(doc);
	if (src)
		freeReplyObject(src);
	return rc;
}

static void job_progress(double f, const char *msg, void *ctx)
{
	ab_job_progress(ctx, f, "%s", msg);
}

static bool job_cancel(void *ctx)
{
	return ab_job_cancelled(ctx);
}

int ab_kb_job(struct ab_job *job, void *ctx)
{
	struct ab_kb *kb = ctx;
	const char *id = json_string_value(json_object_get(ab_job_payload(job), "doc"));
	if (!id) {
		ab_job_set_error(job, "the job names no document");
		return AB_JOB_FAILED;
	}
	char err[512];
	ab_job_progress(job, 0.01, "extracting");
	int rc = ab_kb_index(kb, id, job_progress, job_cancel, job, err, sizeof(err));
	if (rc == 0) {
		json_t *doc = NULL;
		ab_kb_get(kb, id, &doc);
		ab_job_set_result(job, json_pack("{s:s, s:O}", "doc", id, "chunks",
						 json_object_get(doc, "chunks") ? json_object_get(doc, "chunks")
										 : json_integer(0)));
		json_decref(doc);
		return AB_JOB_DONE;
	}
	if (rc == AB_ECLOSED) {
		set_status(kb, id, "cancelled", NULL);
		return AB_JOB_CANCELLED;
	}
	ab_job_set_error(job, "%s", err[0] ? err : ab_strerror(rc));
	return rc == AB_EINVAL ? AB_JOB_FAILED : rc;
}

/* ---- reading and deleting ---------------------------------------------- */

static json_t *doc_json(const redisReply *h)
{
	json_t *o = json_object();
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const char *k = h->element[i]->str, *v = h->element[i + 1]->str;
		if (!k || !v || !strcmp(k, "written"))
			continue;
		if (!strcmp(k, "tags")) {
			json_t *t = json_loads(v, 0, NULL);
			json_object_set_new(o, k, t ? t : json_array());
		} else if (!strcmp(k, "size") || !strcmp(k, "chunks") || !strcmp(k, "pages") ||
			   !strcmp(k, "created_ms") || !strcmp(k, "indexed_ms")) {
			json_object_set_new(o, k, json_integer(atoll(v)));
		} else if (!strcmp(k, "error") && !v[0]) {
			continue;
		} else {
			json_object_set_new(o, k, json_string(v));
		}
	}
	return o;
}

int ab_kb_get(struct ab_kb *kb, const char *id, json_t **out)
{
	if (!id_ok(id))
		return AB_ENOTFOUND;
	int e;
	redisReply *h = ab_redis_cmd(kb->r, &e, "HGETALL " AB_KEY_KB_DOC_PREFIX "%s", id);
	if (!h)
		return e;
	int rc = 0;
	if (h->type != REDIS_REPLY_ARRAY || h->elements == 0)
		rc = AB_ENOTFOUND;
	else
		*out = doc_json(h);
	freeReplyObject(h);
	return rc;
}

int ab_kb_delete(struct ab_kb *kb, const char *id)
{
	if (!id_ok(id))
		return AB_ENOTFOUND;
	int e;
	redisReply *h = ab_redis_cmd(kb->r, &e, "HMGET " AB_KEY_KB_DOC_PREFIX "%s chunks written sha256 job",
				     id);
	if (!h)
		return e;
	if (h->type != REDIS_REPLY_ARRAY || h->elements != 4 || !h->element[2]->str) {
		freeReplyObject(h);
		return AB_ENOTFOUND;
	}
	size_t n = h->element[0]->str ? (size_t)strtoull(h->element[0]->str, NULL, 10) : 0;
	size_t w = h->element[1]->str ? (size_t)strtoull(h->element[1]->str, NULL, 10) : 0;
	char *sha = ab_xstrdup(h->element[2]->str);
	char *job = h->element[3]->str ? ab_xstrdup(h->element[3]->str) : NULL;
	freeReplyObject(h);
	if (job)
		ab_jobs_cancel(kb->r, job);
	/* The document disappears first (searches skip its chunks at once),
	 * then its chunks go. */
	const char *del[] = {"DEL", NULL, NULL};
	char *dockey = ab_xasprintf(AB_KEY_KB_DOC_PREFIX "%s", id);
	char *srckey = ab_xasprintf(AB_KEY_KB_SRC_PREFIX "%s", id);
	del[1] = dockey;
	del[2] = srckey;
	const char *zrem[] = {"ZREM", AB_KEY_KB_DOCS, id};
	char *hashkey = ab_xasprintf(AB_KEY_KB_HASH_PREFIX "%s", sha);
	const char *hdel[] = {"DEL", hashkey};
	struct ab_redis_argv cmds[] = {{3, del, NULL}, {3, zrem, NULL}, {2, hdel, NULL}};
	redisReply *reps[3] = {0};
	int rc = ab_redis_pipeline(kb->r, 3, cmds, reps);
	for (int i = 0; i < 3; i++)
		if (reps[i])
			freeReplyObject(reps[i]);
	if (rc == 0)
		rc = remove_chunks(kb, id, n > w ? n : w);
	free(dockey);
	free(srckey);
	free(hashkey);
	free(sha);
	free(job);
	return rc;
}

int ab_kb_list(struct ab_kb *kb, long offset, long limit, json_t **out)
{
	int e;
	redisReply *ids = ab_redis_cmd(kb->r, &e, "ZREVRANGE " AB_KEY_KB_DOCS " %ld %ld", offset,
				       offset + limit - 1);
	if (!ids)
		return e;
	redisReply *total = ab_redis_cmd(kb->r, &e, "ZCARD " AB_KEY_KB_DOCS);
	if (!total) {
		freeReplyObject(ids);
		return e;
	}
	json_t *docs = json_array();
	for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
		json_t *d = NULL;
		if (ids->element[i]->str && ab_kb_get(kb, ids->element[i]->str, &d) == 0)
			json_array_append_new(docs, d);
	}
	*out = json_pack("{s:o, s:I, s:i, s:i}", "documents", docs, "total",
			 (json_int_t)(total->type == REDIS_REPLY_INTEGER ? total->integer : 0), "offset",
			 (int)offset, "limit", (int)limit);
	freeReplyObject(ids);
	freeReplyObject(total);
	return 0;
}

/* An integer answer of "CMD KEY", or -1. */
static long long int_reply(struct ab_kb *kb, const char *cmd, const char *key)
{
	int e;
	const char *argv[] = {cmd, key};
	redisReply *rep = ab_redis_cmdargv(kb->r, &e, 2, argv, NULL);
	long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
	if (rep)
		freeReplyObject(rep);
	return v;
}

int ab_kb_stats(struct ab_kb *kb, json_t **out)
{
	if (!ab_redis_is_up(kb->r))
		return AB_EUNAVAIL;
	long long docs = int_reply(kb, "ZCARD", AB_KEY_KB_DOCS);
	long long chunks = int_reply(kb, "AB.TEXTCARD", AB_KEY_KB_TEXT);
	long long vecs = int_reply(kb, "VCARD", AB_KEY_KB_VEC);
	int e;
	redisReply *dim = ab_redis_cmd(kb->r, &e, "VDIM " AB_KEY_KB_VEC);
	json_t *o = json_pack("{s:I, s:I, s:I, s:s, s:s, s:b}", "documents", (json_int_t)docs,
			      "chunks", (json_int_t)chunks, "vectors", (json_int_t)vecs, "embedder",
			      kb->embedder, "model", kb->builtin ? AB_EMBED_MODEL : kb->model,
			      "module", chunks >= 0);
	if (dim && dim->type == REDIS_REPLY_INTEGER)
		json_object_set_new(o, "dims", json_integer(dim->integer));
	if (dim)
		freeReplyObject(dim);
	*out = o;
	return 0;
}

/* ---- search ------------------------------------------------------------- */

int ab_kb_mode_parse(const char *s)
{
	if (!s || !strcmp(s, "hybrid"))
		return AB_KB_HYBRID;
	if (!strcmp(s, "bm25"))
		return AB_KB_BM25;
	if (!strcmp(s, "vector"))
		return AB_KB_VECTOR;
	return AB_EINVAL;
}

/* A filter-language string literal. */
static void quote(struct ab_buf *b, const char *s)
{
	ab_buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			ab_buf_putc(b, '\\');
		ab_buf_putc(b, *s);
	}
	ab_buf_putc(b, '"');
}

/* Builds the FILTER expression for {"tags": [...], "source": "..",
 * "type": "..", "doc": ".."}; NULL when there is nothing to filter. */
static char *filter_expr(const json_t *f, char *err, size_t errlen, int *rc)
{
	*rc = 0;
	if (!f || json_is_null(f))
		return NULL;
	if (!json_is_object(f)) {
		snprintf(err, errlen, "filters must be an object");
		*rc = AB_EINVAL;
		return NULL;
	}
	struct ab_buf b;
	ab_buf_init(&b);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)f, k, v) {
		if (!strcmp(k, "tags")) {
			if (!json_is_array(v) || json_array_size(v) == 0)
				goto bad;
			ab_buf_puts(&b, b.len ? " and (" : "(");
			size_t i;
			json_t *t;
			json_array_foreach(v, i, t) {
				if (!json_is_string(t))
					goto bad;
				if (i)
					ab_buf_puts(&b, " or ");
				quote(&b, json_string_value(t));
				ab_buf_puts(&b, " in .tags");
			}
			ab_buf_putc(&b, ')');
		} else if (!strcmp(k, "source") || !strcmp(k, "type") || !strcmp(k, "doc")) {
			if (!json_is_string(v))
				goto bad;
			ab_buf_printf(&b, "%s.%s == ", b.len ? " and " : "", k);
			quote(&b, json_string_value(v));
		} else {
			goto bad;
		}
	}
	if (!b.len) {
		ab_buf_free(&b);
		return NULL;
	}
	ab_buf_putc(&b, '\0');
	return ab_buf_steal(&b);
bad:
	ab_buf_free(&b);
	snprintf(err, errlen, "filters: expected tags (array of strings), source, type or doc "
			      "(strings)");
	*rc = AB_EINVAL;
	return NULL;
}

struct hit {
	char *cid;
	double score;
	double bm25, vec; /* raw scores, 0 when absent */
};

/* Adds a ranked list [name, score, name, score...] with weight w; index
 * maps a chunk id to its position in *hits, plus one. */
static void fuse(struct hit **hits, size_t *n, struct ab_dict *index, const redisReply *list,
		 double rrf_k, double w, bool is_bm25)
{
	for (size_t i = 0; list && i + 1 < list->elements; i += 2) {
		const char *cid = list->element[i]->str;
		const char *sc = list->element[i + 1]->str;
		if (!cid)
			continue;
		size_t at = (size_t)(uintptr_t)ab_dict_get(index, cid, strlen(cid));
		if (at == 0) {
			*hits = ab_xrealloc(*hits, (*n + 1) * sizeof(**hits));
			(*hits)[*n] = (struct hit){.cid = ab_xstrdup(cid)};
			at = ++(*n);
			ab_dict_set(index, (*hits)[at - 1].cid, strlen(cid), (void *)(uintptr_t)at);
		}
		at--;
		double rank = (double)(i / 2 + 1);
		(*hits)[at].score += w / (rrf_k + rank);
		double raw = sc ? atof(sc) : 0;
		if (is_bm25)
			(*hits)[at].bm25 = raw;
		else
			(*hits)[at].vec = raw;
	}
}

static int cmp_hit(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->cid, y->cid);
}

/* The document id of a chunk id "<doc>#<n>" into out (AB_KB_ID_MAX). */
static void doc_of(const char *cid, char *out, long *chunk)
{
	const char *hash = strrchr(cid, '#');
	size_t dl = hash ? (size_t)(hash - cid) : strlen(cid);
	if (dl >= AB_KB_ID_MAX)
		dl = AB_KB_ID_MAX - 1;
	memcpy(out, cid, dl);
	out[dl] = '\0';
	*chunk = hash ? atol(hash + 1) : 0;
}

#define PICK_ROUND 256

static int pick_results(struct ab_kb *kb, const struct ab_kb_query *q, const struct hit *hits,
			size_t nh, json_t *results)
{
	struct ab_dict *docs = ab_dict_new(); /* doc id -> json {status, title} */
	struct ab_dict *taken = ab_dict_new(); /* per_document: docs already in results */
	const struct hit **keep = ab_xcalloc((size_t)q->k, sizeof(*keep));
	size_t nkeep = 0, next = 0;
	int rc = 0;
	char (*ids)[AB_KB_ID_MAX] = ab_xcalloc(PICK_ROUND, AB_KB_ID_MAX);
	while (rc == 0 && nkeep < (size_t)q->k && next < nh) {
		/* the next round of distinct documents not looked up yet */
		size_t m = 0, scan = next;
		char **keys = ab_xcalloc(PICK_ROUND, sizeof(char *));
		struct ab_redis_argv cmds[PICK_ROUND];
		const char *argv[PICK_ROUND][4];
		struct ab_dict *round = ab_dict_new();
		for (; scan < nh && m < PICK_ROUND; scan++) {
			long ch;
			doc_of(hits[scan].cid, ids[m], &ch);
			if (ab_dict_get(docs, ids[m], strlen(ids[m])) ||
			    ab_dict_get(round, ids[m], strlen(ids[m])))
				continue;
			ab_dict_set(round, ids[m], strlen(ids[m]), (void *)1);
			keys[m] = ab_xasprintf(AB_KEY_KB_DOC_PREFIX "%s", ids[m]);
			argv[m][0] = "HMGET"; argv[m][1] = keys[m]; argv[m][2] = "status"; argv[m][3] = "title";
			cmds[m] = (struct ab_redis_argv){4, argv[m], NULL};
			m++;
		}
		redisReply **reps = ab_xcalloc(m ? m : 1, sizeof(*reps));
		rc = m ? ab_redis_pipeline(kb->r, m, cmds, reps) : 0;
		for (size_t j = 0; j < m; j++) {
			const redisReply *r = reps[j];
			bool ready = rc == 0 && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
				     r->element[0]->str && !strcmp(r->element[0]->str, "ready");
			json_t *d = ready ? json_pack("{s:s}", "title",
						      r->element[1]->str ? r->element[1]->str : "")
					  : json_null();
			char *k = ab_xstrdup(ids[j]);
			ab_dict_set(docs, k, strlen(k), d);
			if (reps[j])
				freeReplyObject(reps[j]);
			free(keys[j]);
		}
		free(reps);
		free(keys);
		ab_dict_free(round, NULL);
		/* walk the hits whose documents are all known now */
		for (; next < scan && nkeep < (size_t)q->k; next++) {
			char did[AB_KB_ID_MAX];
			long ch;
			doc_of(hits[next].cid, did, &ch);
			json_t *d = ab_dict_get(docs, did, strlen(did));
			if (!d || json_is_null(d))
				continue;
			if (q->per_document) {
				if (ab_dict_get(taken, did, strlen(did)))
					continue;
				char *k = ab_xstrdup(did);
				ab_dict_set(taken, k, strlen(k), k);
			}
			keep[nkeep++] = &hits[next];
		}
	}
	/* the chunk texts of what was kept */
	for (size_t i = 0; rc == 0 && i < nkeep; i += PICK_ROUND) {
		size_t m = i + PICK_ROUND < nkeep ? PICK_ROUND : nkeep - i;
		struct ab_redis_argv cmds[PICK_ROUND];
		const char *argv[PICK_ROUND][3];
		char **keys = ab_xcalloc(m, sizeof(char *));
		char **fields = ab_xcalloc(m, sizeof(char *));
		for (size_t j = 0; j < m; j++) {
			char did[AB_KB_ID_MAX];
			long ch;
			doc_of(keep[i + j]->cid, did, &ch);
			keys[j] = ab_xasprintf(AB_KEY_KB_CHUNKS_PREFIX "%s", did);
			fields[j] = ab_xasprintf("%ld", ch);
			argv[j][0] = "HGET"; argv[j][1] = keys[j]; argv[j][2] = fields[j];
			cmds[j] = (struct ab_redis_argv){3, argv[j], NULL};
		}
		redisReply **reps = ab_xcalloc(m, sizeof(*reps));
		rc = q->ids_only ? 0 : ab_redis_pipeline(kb->r, m, cmds, reps);
		for (size_t j = 0; j < m; j++) {
			const struct hit *h = keep[i + j];
			char did[AB_KB_ID_MAX];
			long ch;
			doc_of(h->cid, did, &ch);
			json_t *d = ab_dict_get(docs, did, strlen(did));
			json_t *r = json_pack("{s:s, s:O, s:I, s:f}", "doc_id", did, "title",
					      json_object_get(d, "title"), "chunk", (json_int_t)ch, "score",
					      h->score);
			json_t *cj = rc == 0 && reps[j] && reps[j]->type == REDIS_REPLY_STRING
					     ? json_loads(reps[j]->str, 0, NULL) : NULL;
			if (cj) {
				json_object_set(r, "text", json_object_get(cj, "text"));
				json_object_set(r, "heading", json_object_get(cj, "heading"));
				json_object_set(r, "page", json_object_get(cj, "page"));
				json_object_set(r, "page_last", json_object_get(cj, "page_last"));
				json_decref(cj);
			}
			if (h->bm25 > 0)
				json_object_set_new(r, "bm25", json_real(h->bm25));
			if (h->vec > 0)
				json_object_set_new(r, "similarity", json_real(h->vec));
			json_array_append_new(results, r);
			if (reps[j])
				freeReplyObject(reps[j]);
			free(keys[j]);
			free(fields[j]);
		}
		free(reps);
		free(keys);
		free(fields);
	}
	/* free the lookups: keys are owned copies, values JSON */
	size_t pos = 0;
	const char *k;
	size_t kl;
	json_t *v;
	while ((v = ab_dict_next(docs, &pos, &k, &kl))) {
		json_decref(v);
		free((char *)k);
	}
	/* json null is a static singleton: decref is a no-op for it */
	ab_dict_free(docs, NULL);
	ab_dict_free(taken, free);
	free(ids);
	free(keep);
	return rc;
}

int ab_kb_search(struct ab_kb *kb, const struct ab_kb_query *q, json_t **out, char *err,
		 size_t errlen)
{
	err[0] = '\0';
	if (!q->text || !q->text[0]) {
		snprintf(err, errlen, "query is empty");
		return AB_EINVAL;
	}
	if (q->k < 1 || q->k > 1000) {
		snprintf(err, errlen, "k must be from 1 to 1000");
		return AB_EINVAL;
	}
	int rc = 0;
	char *filter = filter_expr(q->filters, err, errlen, &rc);
	if (rc < 0)
		return rc;
	/* fetch deeper than k: fusion, documents not ready, per-document */
	struct ab_hybrid_params hp;
	ab_hybrid_params_default(&hp);
	int depth = q->k * (q->per_document ? 2 : 1) + 20;
	if (depth < (int)hp.depth)
		depth = (int)hp.depth;
	if (depth > 2000)
		depth = 2000;
	char depth_s[16];
	snprintf(depth_s, sizeof(depth_s), "%d", depth);
	struct hit *hits = NULL;
	size_t nh = 0;
	struct ab_dict *index = ab_dict_new();
	float *qv = NULL;
	json_t *results = json_array();
	redisReply *bm = NULL, *vs = NULL;
	int e = 0;
	if (q->mode != AB_KB_VECTOR) {
		const char *argv[] = {"AB.TEXTSEARCH", AB_KEY_KB_TEXT, q->text, "COUNT", depth_s,
				      "WITHSCORES", "FILTER", filter};
		bm = ab_redis_cmdargv(kb->r, &e, filter ? 8 : 6, argv, NULL);
		if (!bm) {
			rc = e;
			goto out;
		}
		if (bm->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "%s", strstr(bm->str, "unknown command")
							    ? "the knowledge base is unavailable: the Redis "
							      "module autobot.so is not loaded"
							    : bm->str);
			rc = strstr(bm->str, "unknown command") ? AB_EUNAVAIL : AB_EREDIS;
			goto out;
		}
		fuse(&hits, &nh, index, bm, hp.rrf_k, q->mode == AB_KB_HYBRID ? hp.w_text : 1.0, true);
	}
	if (q->mode != AB_KB_BM25) {
		uint32_t dims = 0;
		rc = embed_query(kb, q->text, &qv, &dims, err, errlen);
		if (rc < 0)
			goto out;
		const char *argv[] = {"VSIM", AB_KEY_KB_VEC, "FP32", (const char *)qv, "COUNT", depth_s,
				      "WITHSCORES", "EF", depth_s, "FILTER", filter};
		size_t lens[11];
		for (int i = 0; i < 11; i++)
			lens[i] = i == 3 ? dims * sizeof(float) : argv[i] ? strlen(argv[i]) : 0;
		vs = ab_redis_cmdargv(kb->r, &e, filter ? 11 : 9, argv, lens);
		if (!vs) {
			rc = e;
			goto out;
		}
		if (vs->type == REDIS_REPLY_ERROR && !strstr(vs->str, "not exist")) {
			snprintf(err, errlen, "%s", vs->str);
			rc = strstr(vs->str, "unknown command") ? AB_EUNAVAIL : AB_EREDIS;
			goto out;
		}
		if (vs->type == REDIS_REPLY_ARRAY)
			fuse(&hits, &nh, index, vs, hp.rrf_k, q->mode == AB_KB_HYBRID ? hp.w_vector : 1.0, false);
	}
	qsort(hits, nh, sizeof(*hits), cmp_hit);
	/* Pick the results: walk the fused list, keep chunks of documents that
	 * are ready (one HMGET per distinct document, pipelined in rounds),
	 * then fetch the kept chunks' texts in one more round trip. */
	rc = pick_results(kb, q, hits, nh, results);
	if (rc == 0) {
		static const char *const names[] = {"hybrid", "bm25", "vector"};
		*out = json_pack("{s:s, s:O}", "mode", names[q->mode], "results", results);
	}
out:
	ab_dict_free(index, NULL);
	for (size_t i = 0; i < nh; i++)
		free(hits[i].cid);
	free(hits);
	free(qv);
	free(filter);
	json_decref(results);
	if (bm)
		freeReplyObject(bm);
	if (vs)
		freeReplyObject(vs);
	return rc;
}
