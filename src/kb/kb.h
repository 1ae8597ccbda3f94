/*
 * kb.h - the knowledge base: documents in, passages with sources out.
 *
 * A document is stored (its bytes in ab:kb:src:<id>, its metadata in
 * ab:kb:doc:<id>), then indexed by a job on the bus (jobs.h, queue "kb"):
 * text extracted (extract.h), cut into chunks (src/text/chunk.h), each
 * chunk embedded (the built-in embedder of src/text/embed.h, the llm role,
 * or an Ollama/OpenAI server) and written to the module's vector set
 * ab:kb:vec and text index ab:kb:text under the id "<doc>#<n>". Searches
 * fuse BM25 and vector kNN by reciprocal-rank fusion.
 *
 * Consistency: chunks are written in batches while the document's status
 * is "indexing", and the status turns "ready" in the last write. Searches
 * only return chunks of ready documents, so a document is never seen half
 * indexed; an attempt cut short (a dead worker, a dead Redis) leaves the
 * job pending, and the next attempt first removes whatever an earlier one
 * wrote (the high-water mark `written` in the document's hash says how
 * far it got). Re-adding the same bytes is a no-op (sha256 of the content
 * in ab:kb:hash:<sha>); replacing a document (same id) re-indexes it.
 */
#ifndef AB_KB_H
#define AB_KB_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "jobs.h"
#include "redis.h"

#define AB_KB_QUEUE "kb"
#define AB_KB_JOB_INGEST "kb.ingest"
#define AB_KB_ID_MAX 64

struct ab_kb_opts {
	const char *embedder;      /* builtin | llm | ollama | openai */
	const char *embed_model;   /* for llm/ollama/openai */
	const char *embed_url;     /* base URL for llm/ollama/openai */
	const char *embed_api_key; /* openai bearer key, or NULL */
	int chunk_tokens;          /* 0 = 256 */
	int chunk_overlap;         /* < 0 = 32 */
	size_t max_bytes;          /* 0 = 64 MiB */
	int request_timeout_ms;    /* embedding calls; 0 = 60000 */
};

struct ab_kb;

/* r must outlive the knowledge base. Strings are copied. The caller frees
 * *out with ab_kb_free. */
int ab_kb_new(struct ab_redis *r, const struct ab_kb_opts *o, struct ab_kb **out);
void ab_kb_free(struct ab_kb *kb);
const char *ab_kb_embedder(const struct ab_kb *kb);

struct ab_kb_doc_in {
	const char *id;       /* NULL: a new id; an existing id replaces that document */
	const char *title;    /* NULL: from the document, else the file name */
	const char *source;   /* where it came from (file name, URL); may be NULL */
	const char *mime;     /* NULL: from the file name, else sniffed */
	const char *filename; /* may be NULL */
	const json_t *tags;   /* array of strings, or NULL */
	const void *data;
	size_t len;
};

/* Stores a document and, when queue is true, submits its ingestion job
 * (else the caller runs ab_kb_index itself). *out (caller decrefs):
 * {"id", "job", "status", "existing"}: existing is true when the same
 * bytes were already there (nothing new is stored or queued). Errors:
 * AB_EINVAL (bad id, empty, bad tags), AB_ETOOBIG, Redis codes; err says. */
int ab_kb_add(struct ab_kb *kb, const struct ab_kb_doc_in *in, bool queue, json_t **out,
	      char *err, size_t errlen);

typedef void (*ab_kb_progress_fn)(double fraction, const char *msg, void *ctx);
typedef bool (*ab_kb_cancel_fn)(void *ctx);

/* Indexes stored document id. 0; AB_EINVAL for a document that can never
 * be indexed (unsupported type, no text: err says, do not retry);
 * AB_ECLOSED when cancel() said stop; other codes are worth a retry. */
int ab_kb_index(struct ab_kb *kb, const char *id, ab_kb_progress_fn progress,
		ab_kb_cancel_fn cancel, void *ctx, char *err, size_t errlen);
/* The job handler of AB_KB_JOB_INGEST (ctx: the struct ab_kb). */
int ab_kb_job(struct ab_job *job, void *ctx);

/* Removes a document, its chunks from both indexes, its source. 0 or
 * AB_ENOTFOUND. */
int ab_kb_delete(struct ab_kb *kb, const char *id);
/* Metadata of one document (caller decrefs), or AB_ENOTFOUND. */
int ab_kb_get(struct ab_kb *kb, const char *id, json_t **out);
/* {"documents": [...], "total", "offset", "limit"}, newest first. */
int ab_kb_list(struct ab_kb *kb, long offset, long limit, json_t **out);
/* {"documents", "chunks", "vectors", "embedder", "dims", ...}. */
int ab_kb_stats(struct ab_kb *kb, json_t **out);

enum ab_kb_mode { AB_KB_HYBRID = 0, AB_KB_BM25 = 1, AB_KB_VECTOR = 2 };
int ab_kb_mode_parse(const char *s); /* or AB_EINVAL */

struct ab_kb_query {
	const char *text;
	int k;                  /* results wanted (1..1000) */
	enum ab_kb_mode mode;
	const json_t *filters;  /* {"tags": [..], "source": "..", "type": ".."} or NULL */
	bool per_document;      /* one result a document (its best chunk) */
	bool ids_only;          /* no chunk text, heading, page (evaluations) */
};

/* Searches. *out (caller decrefs): {"mode", "results": [{"doc_id",
 * "title", "source", "chunk", "text", "heading", "page", "score"}, ...]}. */
int ab_kb_search(struct ab_kb *kb, const struct ab_kb_query *q, json_t **out, char *err,
		 size_t errlen);

#endif
