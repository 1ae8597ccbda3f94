/*
 * bench_kb.c - the knowledge base end to end against a real redis-server
 * with autobot.so: ingestion throughput (documents/s, chunks/s through
 * ab_kb_add + ab_kb_index, the code the ingestion jobs run) and search
 * latency (p50/p99 of ab_kb_search, k = 10, per mode) once the index holds
 * the requested number of chunks.
 *
 * Documents are synthetic but made of real text: sentences drawn at random
 * (fixed seed) from the corpora of the IR collections given on the command
 * line, about 150 words each, one chunk each at the default chunk size;
 * queries are those collections' queries.
 *
 * Usage: bench_kb PORT CHUNKS QUERIES_PER_MODE DIR... (prints one JSON line)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kb.h"
#include "redis.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void load_lines(const char *path, const char *field, char ***out, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *j = json_loadb(line, (size_t)len, 0, NULL);
		const char *t = json_string_value(json_object_get(j, field));
		if (t && strlen(t) > 20) {
			*out = ab_xrealloc(*out, (*n + 1) * sizeof(char *));
			(*out)[(*n)++] = ab_xstrdup(t);
		}
		json_decref(j);
	}
	free(line);
	fclose(f);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_kb PORT CHUNKS QUERIES_PER_MODE DIR...\n");
		return 2;
	}
	int port = atoi(argv[1]);
	long chunks = atol(argv[2]);
	long nq = atol(argv[3]);
	char **texts = NULL, **queries = NULL;
	size_t ntexts = 0, nqueries = 0;
	for (int i = 4; i < argc; i++) {
		char *p = ab_xasprintf("%s/corpus.jsonl", argv[i]);
		load_lines(p, "text", &texts, &ntexts);
		free(p);
		p = ab_xasprintf("%s/queries.jsonl", argv[i]);
		load_lines(p, "text", &queries, &nqueries);
		free(p);
	}
	if (!ntexts || !nqueries) {
		fprintf(stderr, "bench_kb: no corpus or queries\n");
		return 1;
	}
	struct ab_redis_opts ro = {.host = "127.0.0.1", .port = port, .command_timeout_ms = 30000,
				   .pool_size = 2};
	struct ab_redis *r;
	struct ab_kb *kb;
	if (ab_redis_new(&ro, &r) < 0)
		return 1;
	for (int i = 0; i < 100 && !ab_redis_is_up(r); i++)
		ab_sleep_ms(50);
	struct ab_kb_opts ko = {.embedder = "builtin"};
	if (ab_kb_new(r, &ko, &kb) < 0)
		return 1;
	/* ingest */
	double t0 = ab_now_ms_f();
	long made = 0, docs = 0;
	char err[256];
	struct ab_buf doc;
	ab_buf_init(&doc);
	while (made < chunks) {
		ab_buf_reset(&doc);
		while (doc.len < 900) { /* ~150 words */
			const char *t = texts[next() % ntexts];
			size_t l = strlen(t), off = next() % l, take = 200 < l - off ? 200 : l - off;
			ab_buf_append(&doc, t + off, take);
			ab_buf_puts(&doc, ". ");
		}
		char id[32];
		snprintf(id, sizeof(id), "b%ld", docs);
		struct ab_kb_doc_in in = {.id = id, .title = id, .mime = "text/plain", .data = doc.data,
					  .len = doc.len};
		json_t *out = NULL;
		if (ab_kb_add(kb, &in, false, &out, err, sizeof(err)) < 0 ||
		    ab_kb_index(kb, id, NULL, NULL, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_kb: %s\n", err);
			return 1;
		}
		json_decref(out);
		json_t *d = NULL;
		ab_kb_get(kb, id, &d);
		made += (long)json_integer_value(json_object_get(d, "chunks"));
		json_decref(d);
		docs++;
	}
	double ingest_ms = ab_now_ms_f() - t0;
	/* search */
	static const char *const names[] = {"hybrid", "bm25", "vector"};
	json_t *res = json_object();
	double *lat = ab_xmalloc((size_t)nq * sizeof(double));
	for (int m = 0; m < 3; m++) {
		for (long q = 0; q < nq; q++) {
			struct ab_kb_query kq = {.text = queries[q % nqueries], .k = 10,
						 .mode = (enum ab_kb_mode)m};
			json_t *out = NULL;
			double s = ab_now_ms_f();
			if (ab_kb_search(kb, &kq, &out, err, sizeof(err)) < 0) {
				fprintf(stderr, "bench_kb: search: %s\n", err);
				return 1;
			}
			lat[q] = ab_now_ms_f() - s;
			json_decref(out);
		}
		qsort(lat, (size_t)nq, sizeof(double), cmp_double);
		json_object_set_new(res, names[m],
				    json_pack("{s:f, s:f, s:f}", "p50_ms", lat[nq / 2], "p99_ms",
					      lat[(nq * 99) / 100], "max_ms", lat[nq - 1]));
	}
	json_t *o = json_pack("{s:I, s:I, s:f, s:f, s:f, s:o}", "docs", (json_int_t)docs, "chunks",
			      (json_int_t)made, "ingest_s", ingest_ms / 1000, "docs_per_s",
			      docs / (ingest_ms / 1000), "chunks_per_s", made / (ingest_ms / 1000),
			      "search", res);
	char *s = json_dumps(o, JSON_PRESERVE_ORDER);
	puts(s);
	free(s);
	json_decref(o);
	free(lat);
	ab_buf_free(&doc);
	ab_kb_free(kb);
	ab_redis_free(r);
	return 0;
}
