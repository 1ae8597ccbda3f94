/*
 * eval_engine.c - retrieval quality of the text engine (src/text), in
 * process, on IR test collections in the BEIR layout: corpus.jsonl (_id,
 * title, text), queries.jsonl (_id, text) and qrels/test.tsv (a header
 * line, then query-id, corpus-id, score; score > 0 is relevant).
 *
 *   eval_engine [options] DIR...
 *
 * Each document is indexed as title + "\n" + text, in a struct ab_textidx
 * and as a document vector of the built-in embedder. Each query is run
 * three ways:
 *   bm25    ab_textidx_search, top 1000;
 *   vector  the query vector (ab_embed_query with the index's idf) against
 *           every document vector, exact cosine, top 1000;
 *   hybrid  both retrievers asked for max(depth, 1000) hits each (as
 *           fuse.h says a hybrid search should), fused by ab_rrf_fuse
 *           with the fusion settings of fuse.h, top 1000.
 * Settings are the engine's defaults (ab_textidx_params_default,
 * ab_embed_params_default, ab_hybrid_params_default) unless an option
 * overrides one, so a run without options measures what ships.
 *
 * Metrics, averaged over the queries that have at least one relevant
 * document: nDCG@10 with binary gains and the log2(rank + 1) discount
 * (ideal DCG from the number of relevant documents), MAP over the top
 * 1000 (average precision: the sum of precision at each relevant hit,
 * divided by the number of relevant documents), Recall@100.
 *
 * Options: --k1 F --b F --no-stem --no-stop (BM25 and embedder analysis),
 * --dims N --w-pair F --w-ngram F --ngram MIN:MAX --no-query-idf
 * (embedder), --rrf-k F --w-text F --w-vec F --depth N (fusion),
 * --threads N (BM25 searches run from N threads at once, and the hit
 * lists are checked against the single-threaded ones), --tsv (one
 * machine-readable line per collection and mode).
 *
 * The reference BM25 figures of ../shared/README.md are printed beside
 * ours for the four collections it names.
 */
#include "common.h"
#include "embed.h"
#include "fuse.h"
#include "textidx.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP 1000

struct ref {
	const char *name;
	double ndcg, map, recall;
};

static const struct ref refs[] = {
	{"cran", 0.3726, 0.2890, 0.7132},
	{"cisi", 0.2903, 0.1502, 0.3995},
	{"med", 0.6890, 0.5076, 0.7974},
	{"adi", 0.4255, 0.3532, 0.8092},
};

struct doc {
	char *id;
	float *vec;
};

struct query {
	char *id;
	char *text;
	char **rel; /* relevant doc ids */
	size_t nrel;
};

struct coll {
	const char *name;
	struct doc *docs;
	size_t ndocs;
	struct query *q;
	size_t nq;
};

struct opts {
	struct ab_textidx_params tp;
	struct ab_embed_params ep;
	struct ab_hybrid_params hp;
	bool query_idf;
	int threads;
	bool tsv;
};

static char *read_line(FILE *f, struct ab_buf *b)
{
	int c;
	ab_buf_reset(b);
	while ((c = fgetc(f)) != EOF && c != '\n')
		ab_buf_putc(b, (char)c);
	if (c == EOF && b->len == 0)
		return NULL;
	if (!b->data)
		ab_buf_puts(b, "");
	return b->data;
}

static FILE *open_in(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		fprintf(stderr, "eval_engine: cannot open %s\n", path);
	return f;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static int find_query(const struct coll *c, const char *id)
{
	for (size_t i = 0; i < c->nq; i++)
		if (strcmp(c->q[i].id, id) == 0)
			return (int)i;
	return -1;
}

static int load(const char *dir, struct coll *c, struct ab_textidx *x,
		const struct ab_embedder *e)
{
	struct ab_buf line = {0}, text = {0};
	FILE *f = open_in(dir, "corpus.jsonl");
	size_t cap = 0;
	if (!f)
		return -1;
	uint32_t dims = ab_embed_dims(e);
	while (read_line(f, &line)) {
		if (line.len == 0)
			continue;
		json_t *o = json_loads(line.data, 0, NULL);
		if (!o)
			continue;
		if (c->ndocs == cap) {
			cap = cap ? cap * 2 : 1024;
			c->docs = ab_xrealloc(c->docs, cap * sizeof(*c->docs));
		}
		struct doc *d = &c->docs[c->ndocs++];
		d->id = ab_xstrdup(jstr(o, "_id"));
		ab_buf_reset(&text);
		ab_buf_puts(&text, jstr(o, "title"));
		ab_buf_putc(&text, '\n');
		ab_buf_puts(&text, jstr(o, "text"));
		d->vec = ab_xmalloc(dims * sizeof(float));
		ab_embed_doc(e, text.data, text.len, d->vec);
		void *old;
		/* the value is the document's index: c->docs moves as it grows */
		ab_textidx_add(x, d->id, strlen(d->id), text.data, text.len,
			       (void *)(uintptr_t)(c->ndocs - 1), &old);
		json_decref(o);
	}
	fclose(f);

	f = open_in(dir, "queries.jsonl");
	if (!f)
		return -1;
	cap = 0;
	while (read_line(f, &line)) {
		json_t *o = line.len ? json_loads(line.data, 0, NULL) : NULL;
		if (!o)
			continue;
		if (c->nq == cap) {
			cap = cap ? cap * 2 : 256;
			c->q = ab_xrealloc(c->q, cap * sizeof(*c->q));
		}
		struct query *q = &c->q[c->nq++];
		memset(q, 0, sizeof(*q));
		q->id = ab_xstrdup(jstr(o, "_id"));
		q->text = ab_xstrdup(jstr(o, "text"));
		json_decref(o);
	}
	fclose(f);

	f = open_in(dir, "qrels/test.tsv");
	if (!f)
		return -1;
	bool header = true;
	while (read_line(f, &line)) {
		if (header) {
			header = false;
			continue;
		}
		char qid[256], did[256];
		int score;
		if (sscanf(line.data, "%255s %255s %d", qid, did, &score) != 3 || score <= 0)
			continue;
		int qi = find_query(c, qid);
		if (qi < 0)
			continue;
		struct query *q = &c->q[qi];
		q->rel = ab_xrealloc(q->rel, (q->nrel + 1) * sizeof(*q->rel));
		q->rel[q->nrel++] = ab_xstrdup(did);
	}
	fclose(f);
	ab_buf_free(&line);
	ab_buf_free(&text);
	return 0;
}

/* ---- metrics ---- */

static bool is_rel(const struct query *q, const char *id)
{
	for (size_t i = 0; i < q->nrel; i++)
		if (strcmp(q->rel[i], id) == 0)
			return true;
	return false;
}

struct metrics {
	double ndcg, map, recall;
};

static struct metrics score_run(const struct query *q, const char *const *ranked, size_t n)
{
	struct metrics m = {0};
	double dcg = 0, idcg = 0, ap = 0;
	size_t hits = 0, hits100 = 0;
	for (size_t i = 0; i < n && i < TOP; i++) {
		if (!is_rel(q, ranked[i]))
			continue;
		hits++;
		if (i < 10)
			dcg += 1.0 / log2((double)i + 2);
		if (i < 100)
			hits100++;
		ap += (double)hits / (double)(i + 1);
	}
	for (size_t i = 0; i < q->nrel && i < 10; i++)
		idcg += 1.0 / log2((double)i + 2);
	m.ndcg = idcg > 0 ? dcg / idcg : 0;
	m.map = ap / (double)q->nrel;
	m.recall = (double)hits100 / (double)q->nrel;
	return m;
}

/* ---- retrieval ---- */

static size_t run_bm25(const struct coll *c, const struct ab_textidx *x, const struct query *q,
		       size_t k, const char **out, struct ab_text_hit *hits)
{
	int n = ab_textidx_search(x, q->text, strlen(q->text), k, NULL, NULL, hits);
	for (int i = 0; i < n; i++)
		out[i] = c->docs[(uintptr_t)ab_textdoc_value(hits[i].doc)].id;
	return n > 0 ? (size_t)n : 0;
}

struct vhit {
	float sim;
	size_t doc;
};

static int cmp_vhit(const void *a, const void *b)
{
	const struct vhit *x = a, *y = b;
	if (x->sim != y->sim)
		return x->sim > y->sim ? -1 : 1;
	return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static size_t run_vector(const struct coll *c, const struct ab_embedder *e,
			 const struct ab_textidx *x, const struct opts *o, const struct query *q,
			 size_t k, const char **out, struct vhit *scratch)
{
	uint32_t dims = ab_embed_dims(e);
	float *qv = ab_xmalloc(dims * sizeof(float));
	int nf = ab_embed_query(e, q->text, strlen(q->text),
				o->query_idf ? ab_embed_textidx_idf : NULL, (void *)x, qv);
	size_t n = 0;
	if (nf > 0) {
		for (size_t i = 0; i < c->ndocs; i++) {
			float s = 0;
			const float *dv = c->docs[i].vec;
			for (uint32_t j = 0; j < dims; j++)
				s += qv[j] * dv[j];
			scratch[i] = (struct vhit){s, i};
		}
		qsort(scratch, c->ndocs, sizeof(*scratch), cmp_vhit);
		n = c->ndocs < k ? c->ndocs : k;
		for (size_t i = 0; i < n; i++)
			out[i] = c->docs[scratch[i].doc].id;
	}
	free(qv);
	return n;
}

static size_t run_hybrid(const struct coll *c, const struct ab_embedder *e,
			 const struct ab_textidx *x, const struct opts *o, const struct query *q,
			 const char **out, struct vhit *scratch)
{
	/* each retriever is asked for max(depth, k) hits, as fuse.h says */
	size_t depth = o->hp.depth > TOP ? o->hp.depth : TOP;
	const char **a = ab_xmalloc(depth * sizeof(*a));
	const char **b = ab_xmalloc(depth * sizeof(*b));
	struct ab_text_hit *hits = ab_xmalloc(depth * sizeof(*hits));
	size_t na = run_bm25(c, x, q, depth, a, hits);
	size_t nb = run_vector(c, e, x, o, q, depth, b, scratch);
	size_t *la = ab_xmalloc((na + 1) * sizeof(*la)), *lb = ab_xmalloc((nb + 1) * sizeof(*lb));
	for (size_t i = 0; i < na; i++)
		la[i] = strlen(a[i]);
	for (size_t i = 0; i < nb; i++)
		lb[i] = strlen(b[i]);
	struct ab_rrf_list lists[2] = {
		{a, la, na, o->hp.w_text},
		{b, lb, nb, o->hp.w_vector},
	};
	struct ab_rrf_hit *fh = ab_xmalloc(TOP * sizeof(*fh));
	int n = ab_rrf_fuse(lists, 2, o->hp.rrf_k, TOP, fh);
	for (int i = 0; i < n; i++)
		out[i] = fh[i].id; /* points at a doc's id string */
	free(fh);
	free(hits);
	free(la);
	free(lb);
	free(a);
	free(b);
	return n > 0 ? (size_t)n : 0;
}

/* ---- concurrent BM25 check ---- */

struct thr {
	const struct coll *c;
	const struct ab_textidx *x;
	size_t from, step;
	const char ***expect; /* per query, the single-threaded ranking */
	size_t *nexpect;
	size_t mismatches;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct ab_text_hit *hits = ab_xmalloc(TOP * sizeof(*hits));
	const char **got = ab_xmalloc(TOP * sizeof(*got));
	for (int round = 0; round < 3; round++) {
		for (size_t i = t->from; i < t->c->nq; i += t->step) {
			size_t n = run_bm25(t->c, t->x, &t->c->q[i], TOP, got, hits);
			if (n != t->nexpect[i]) {
				t->mismatches++;
				continue;
			}
			for (size_t j = 0; j < n; j++)
				if (got[j] != t->expect[i][j]) {
					t->mismatches++;
					break;
				}
		}
	}
	free(hits);
	free(got);
	return NULL;
}

static size_t check_threads(const struct coll *c, const struct ab_textidx *x, int threads,
			    const char ***expect, size_t *nexpect)
{
	pthread_t *tid = ab_xcalloc((size_t)threads, sizeof(*tid));
	struct thr *t = ab_xcalloc((size_t)threads, sizeof(*t));
	size_t bad = 0;
	for (int i = 0; i < threads; i++) {
		t[i] = (struct thr){c, x, (size_t)i, (size_t)threads, expect, nexpect, 0};
		pthread_create(&tid[i], NULL, thr_main, &t[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		bad += t[i].mismatches;
	}
	free(tid);
	free(t);
	return bad;
}

/* ---- main ---- */

static const struct ref *ref_of(const char *dir)
{
	const char *base = strrchr(dir, '/');
	base = base && base[1] ? base + 1 : dir;
	for (size_t i = 0; i < AB_ARRAY_LEN(refs); i++)
		if (strncmp(base, refs[i].name, strlen(refs[i].name)) == 0 &&
		    base[strlen(refs[i].name)] == '\0')
			return &refs[i];
	return NULL;
}

static void print_row(const struct opts *o, const char *name, const char *mode,
		      struct metrics m, const struct ref *r)
{
	if (o->tsv) {
		printf("%s\t%s\t%.4f\t%.4f\t%.4f\n", name, mode, m.ndcg, m.map, m.recall);
		return;
	}
	if (r)
		printf("%-6s %-7s nDCG@10 %.4f (%+.4f)  MAP %.4f (%+.4f)  R@100 %.4f (%+.4f)\n",
		       name, mode, m.ndcg, m.ndcg - r->ndcg, m.map, m.map - r->map, m.recall,
		       m.recall - r->recall);
	else
		printf("%-6s %-7s nDCG@10 %.4f  MAP %.4f  R@100 %.4f\n", name, mode, m.ndcg, m.map,
		       m.recall);
}

static int eval_dir(const char *dir, const struct opts *o)
{
	struct coll c = {0};
	struct ab_textidx *x = NULL;
	struct ab_embedder *e = NULL;
	const char *name = strrchr(dir, '/');
	name = name && name[1] ? name + 1 : dir;
	c.name = name;
	if (ab_textidx_new(&o->tp, &x) < 0 || ab_embed_new(&o->ep, &e) < 0) {
		fprintf(stderr, "eval_engine: bad settings\n");
		return -1;
	}
	double t0 = ab_now_ms_f();
	if (load(dir, &c, x, e) < 0)
		return -1;
	double t_load = ab_now_ms_f() - t0;

	struct ab_text_hit *hits = ab_xmalloc(TOP * sizeof(*hits));
	const char **ranked = ab_xmalloc(TOP * sizeof(*ranked));
	struct vhit *scratch = ab_xmalloc((c.ndocs + 1) * sizeof(*scratch));
	const char ***expect = ab_xcalloc(c.nq, sizeof(*expect));
	size_t *nexpect = ab_xcalloc(c.nq, sizeof(*nexpect));
	struct metrics sum[3] = {{0}};
	size_t nq = 0;
	double t_bm25 = 0, t_vec = 0;
	for (size_t i = 0; i < c.nq; i++) {
		const struct query *q = &c.q[i];
		double t1 = ab_now_ms_f();
		size_t n = run_bm25(&c, x, q, TOP, ranked, hits);
		t_bm25 += ab_now_ms_f() - t1;
		expect[i] = ab_xmalloc((n + 1) * sizeof(**expect));
		memcpy(expect[i], ranked, n * sizeof(*ranked));
		nexpect[i] = n;
		if (q->nrel == 0)
			continue;
		nq++;
		struct metrics m = score_run(q, ranked, n);
		sum[0].ndcg += m.ndcg, sum[0].map += m.map, sum[0].recall += m.recall;
		t1 = ab_now_ms_f();
		n = run_vector(&c, e, x, o, q, TOP, ranked, scratch);
		t_vec += ab_now_ms_f() - t1;
		m = score_run(q, ranked, n);
		sum[1].ndcg += m.ndcg, sum[1].map += m.map, sum[1].recall += m.recall;
		n = run_hybrid(&c, e, x, o, q, ranked, scratch);
		m = score_run(q, ranked, n);
		sum[2].ndcg += m.ndcg, sum[2].map += m.map, sum[2].recall += m.recall;
	}
	const struct ref *r = ref_of(dir);
	const char *modes[3] = {"bm25", "vector", "hybrid"};
	if (!o->tsv)
		printf("%s: %zu docs, %zu judged queries, %" PRIu64 " terms, index %.1f MiB; "
		       "load+index+embed %.0f ms; bm25 %.3f ms/query, exact vector %.3f ms/query\n",
		       name, c.ndocs, nq, ab_textidx_terms(x),
		       (double)ab_textidx_memory(x) / (1024.0 * 1024.0), t_load,
		       c.nq ? t_bm25 / (double)c.nq : 0, nq ? t_vec / (double)nq : 0);
	if (r && !o->tsv)
		printf("%-6s %-7s nDCG@10 %.4f            MAP %.4f            R@100 %.4f\n", name,
		       "ref", r->ndcg, r->map, r->recall);
	for (int k = 0; k < 3; k++) {
		struct metrics m = {sum[k].ndcg / (double)nq, sum[k].map / (double)nq,
				    sum[k].recall / (double)nq};
		print_row(o, name, modes[k], m, r);
	}
	if (o->threads > 1) {
		size_t bad = check_threads(&c, x, o->threads, expect, nexpect);
		printf("%s: %d threads x 3 rounds of BM25 searches: %zu rankings differ from the "
		       "single-threaded ones\n", name, o->threads, bad);
	}
	for (size_t i = 0; i < c.nq; i++) {
		free(expect[i]);
		free(c.q[i].id);
		free(c.q[i].text);
		for (size_t j = 0; j < c.q[i].nrel; j++)
			free(c.q[i].rel[j]);
		free(c.q[i].rel);
	}
	free(expect);
	free(nexpect);
	free(c.q);
	ab_textidx_free(x, NULL);
	for (size_t i = 0; i < c.ndocs; i++) {
		free(c.docs[i].id);
		free(c.docs[i].vec);
	}
	free(c.docs);
	free(hits);
	free(ranked);
	free(scratch);
	ab_embed_free(e);
	return 0;
}

static double num(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end) {
		fprintf(stderr, "eval_engine: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {.query_idf = true, .threads = 0};
	ab_textidx_params_default(&o.tp);
	ab_embed_params_default(&o.ep);
	ab_hybrid_params_default(&o.hp);
	int ndirs = 0, rc = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (!strcmp(a, "--k1") && more)
			o.tp.k1 = (float)num(argv[++i]);
		else if (!strcmp(a, "--b") && more)
			o.tp.b = (float)num(argv[++i]);
		else if (!strcmp(a, "--no-stem"))
			o.tp.stem = o.ep.stem = false;
		else if (!strcmp(a, "--no-stop"))
			o.tp.stopwords = o.ep.stopwords = false;
		else if (!strcmp(a, "--dims") && more)
			o.ep.dims = (uint32_t)num(argv[++i]);
		else if (!strcmp(a, "--w-pair") && more)
			o.ep.w_pair = (float)num(argv[++i]);
		else if (!strcmp(a, "--w-ngram") && more)
			o.ep.w_ngram = (float)num(argv[++i]);
		else if (!strcmp(a, "--ngram") && more) {
			unsigned lo, hi;
			if (sscanf(argv[++i], "%u:%u", &lo, &hi) != 2)
				return 2;
			o.ep.ngram_min = lo;
			o.ep.ngram_max = hi;
		} else if (!strcmp(a, "--no-query-idf"))
			o.query_idf = false;
		else if (!strcmp(a, "--rrf-k") && more)
			o.hp.rrf_k = num(argv[++i]);
		else if (!strcmp(a, "--w-text") && more)
			o.hp.w_text = num(argv[++i]);
		else if (!strcmp(a, "--w-vec") && more)
			o.hp.w_vector = num(argv[++i]);
		else if (!strcmp(a, "--depth") && more)
			o.hp.depth = (uint32_t)num(argv[++i]);
		else if (!strcmp(a, "--threads") && more)
			o.threads = (int)num(argv[++i]);
		else if (!strcmp(a, "--tsv"))
			o.tsv = true;
		else if (a[0] == '-') {
			fprintf(stderr, "eval_engine: unknown option %s\n", a);
			return 2;
		} else
			ndirs++;
	}
	if (ndirs == 0) {
		fprintf(stderr, "usage: eval_engine [options] DIR...\n");
		return 2;
	}
	if (!o.tsv)
		printf("settings: k1 %.2f b %.2f stem %s stopwords %s | embedder %s dims %u "
		       "pair %.2f ngram %.2f (%u-%u) query idf %s | rrf k %.0f w_text %.2f "
		       "w_vector %.2f depth %u\n",
		       o.tp.k1, o.tp.b, o.tp.stem ? "on" : "off", o.tp.stopwords ? "on" : "off",
		       AB_EMBED_MODEL, o.ep.dims, o.ep.w_pair, o.ep.w_ngram, o.ep.ngram_min,
		       o.ep.ngram_max, o.query_idf ? "on" : "off", o.hp.rrf_k, o.hp.w_text,
		       o.hp.w_vector, o.hp.depth);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == '-') {
			if (strcmp(a, "--no-stem") && strcmp(a, "--no-stop") &&
			    strcmp(a, "--no-query-idf") && strcmp(a, "--tsv"))
				i++;
			continue;
		}
		if (eval_dir(a, &o) < 0)
			rc = 1;
	}
	return rc;
}
