/*
 * bench_search.c - speed of the BM25 index (src/text/textidx.h) at
 * knowledge-base scale.
 *
 *   bench_search [--docs N] [--words W] [--threads T] DIR...
 *
 * The word stream of the collections' corpora (BEIR layout, as for
 * eval_engine) gives the vocabulary and its real frequencies; N synthetic
 * chunks of W words (default 100000 x 150) are drawn from that unigram
 * distribution, so posting lists have the skew of real text. The
 * collections' real queries (short Cranfield questions to long CISI
 * paragraphs) are then searched: latency percentiles for k = 10 and
 * k = 100 on one thread, then T threads searching the same index at once
 * (searches are read-only), reporting per-search latency and throughput.
 * Single-thread searches report wall time and thread CPU time: on a busy
 * machine the second is the one that measures the code.
 * Also printed: build time, index memory, distinct terms, and the time to
 * embed a query with the built-in embedder (the other per-query cost of a
 * hybrid search besides the vector index itself).
 */
#include "analyze.h"
#include "common.h"
#include "embed.h"
#include "textidx.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct strs {
	char **v;
	size_t n, cap;
};

static void push(struct strs *s, char *p)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = ab_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = p;
}

static void read_jsonl(const char *path, const char *const *fields, size_t nf, struct strs *out)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "bench_search: cannot open %s\n", path);
		exit(1);
	}
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		json_t *o = json_loads(line, 0, NULL);
		if (!o)
			continue;
		struct ab_buf b = {0};
		for (size_t i = 0; i < nf; i++) {
			const char *s = json_string_value(json_object_get(o, fields[i]));
			if (s) {
				ab_buf_puts(&b, s);
				ab_buf_putc(&b, '\n');
			}
		}
		if (b.len)
			push(out, ab_buf_steal(&b));
		else
			ab_buf_free(&b);
		json_decref(o);
	}
	free(line);
	fclose(f);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Thread CPU time: on a shared machine the wall clock also counts the
 * time other processes held the core, which is not the search's cost. */
static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct df_sum {
	const struct ab_textidx *x;
	uint64_t postings;
};

static void add_df(const struct ab_term *t, void *ctx)
{
	struct df_sum *s = ctx;
	s->postings += ab_textidx_df(s->x, t->term, t->term_len);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, size_t n)
{
	qsort(ms, n, sizeof(*ms), cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += ms[i];
	printf("%-34s n %5zu  mean %7.3f  p50 %7.3f  p90 %7.3f  p99 %7.3f  max %7.3f ms\n", what,
	       n, sum / (double)n, ms[n / 2], ms[n * 90 / 100], ms[n * 99 / 100], ms[n - 1]);
}

struct thr {
	const struct ab_textidx *x;
	const struct strs *q;
	size_t from, step, k;
	double *ms;
	size_t n;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct ab_text_hit *hits = ab_xmalloc(t->k * sizeof(*hits));
	for (size_t i = t->from; i < t->q->n; i += t->step) {
		double t0 = ab_now_ms_f();
		ab_textidx_search(t->x, t->q->v[i], strlen(t->q->v[i]), t->k, NULL, NULL, hits);
		t->ms[t->n++] = ab_now_ms_f() - t0;
	}
	free(hits);
	return NULL;
}

int main(int argc, char **argv)
{
	size_t ndocs = 100000, nwords = 150;
	int threads = 2;
	struct strs corpus = {0}, queries = {0}, vocab = {0};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--docs") && i + 1 < argc)
			ndocs = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--words") && i + 1 < argc)
			nwords = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else {
			char path[4096];
			const char *cf[] = {"title", "text"}, *qf[] = {"text"};
			snprintf(path, sizeof(path), "%s/corpus.jsonl", argv[i]);
			read_jsonl(path, cf, 2, &corpus);
			snprintf(path, sizeof(path), "%s/queries.jsonl", argv[i]);
			read_jsonl(path, qf, 1, &queries);
		}
	}
	if (corpus.n == 0 || queries.n == 0 || threads < 1) {
		fprintf(stderr, "usage: bench_search [--docs N] [--words W] [--threads T] DIR...\n");
		return 2;
	}
	/* the word stream: every whitespace-separated word of the corpora */
	for (size_t i = 0; i < corpus.n; i++) {
		char *save = NULL;
		for (char *w = strtok_r(corpus.v[i], " \t\n", &save); w;
		     w = strtok_r(NULL, " \t\n", &save))
			push(&vocab, w);
	}
	printf("word stream: %zu words from %zu documents; %zu queries\n", vocab.n, corpus.n,
	       queries.n);

	struct ab_textidx *x;
	if (ab_textidx_new(NULL, &x) < 0)
		return 1;
	struct ab_buf text = {0};
	double t0 = ab_now_ms_f();
	for (size_t d = 0; d < ndocs; d++) {
		ab_buf_reset(&text);
		for (size_t w = 0; w < nwords; w++) {
			ab_buf_puts(&text, vocab.v[next_rand() % vocab.n]);
			ab_buf_putc(&text, ' ');
		}
		char id[32];
		int idn = snprintf(id, sizeof(id), "chunk:%zu", d);
		void *old;
		ab_textidx_add(x, id, (size_t)idn, text.data, text.len, NULL, &old);
	}
	double build = ab_now_ms_f() - t0;
	printf("index: %zu chunks x %zu words in %.0f ms (%.1f us/chunk); %" PRIu64
	       " terms; %.1f MiB\n",
	       ndocs, nwords, build, build * 1000 / (double)ndocs, ab_textidx_terms(x),
	       (double)ab_textidx_memory(x) / (1024.0 * 1024.0));

	/* the work a search does: the postings of its terms (a repeated query
	 * term is scored once, so this is an upper bound) */
	double *ms = ab_xmalloc(queries.n * sizeof(*ms));
	struct ab_textidx_params tp;
	ab_textidx_get_params(x, &tp);
	for (size_t i = 0; i < queries.n; i++) {
		struct ab_analyzer an;
		struct df_sum sum = {x, 0};
		ab_analyzer_init(&an, tp.stem, tp.stopwords);
		ab_analyze(&an, queries.v[i], strlen(queries.v[i]), add_df, &sum);
		ab_analyzer_release(&an);
		ms[i] = (double)sum.postings / 1000.0;
	}
	qsort(ms, queries.n, sizeof(*ms), cmp_double);
	printf("postings per query (thousands, repeats counted): p50 %.0f  p90 %.0f  p99 %.0f  "
	       "max %.0f\n",
	       ms[queries.n / 2], ms[queries.n * 90 / 100], ms[queries.n * 99 / 100],
	       ms[queries.n - 1]);
	size_t ks[] = {10, 100};
	for (size_t ki = 0; ki < AB_ARRAY_LEN(ks); ki++) {
		struct ab_text_hit *hits = ab_xmalloc(ks[ki] * sizeof(*hits));
		double *cpu = ab_xmalloc(queries.n * sizeof(*cpu));
		for (size_t i = 0; i < queries.n; i++) {
			double q0 = ab_now_ms_f(), c0 = cpu_ms();
			ab_textidx_search(x, queries.v[i], strlen(queries.v[i]), ks[ki], NULL, NULL,
					  hits);
			ms[i] = ab_now_ms_f() - q0;
			cpu[i] = cpu_ms() - c0;
		}
		char what[64];
		snprintf(what, sizeof(what), "bm25 k=%zu, 1 thread, wall", ks[ki]);
		report(what, ms, queries.n);
		snprintf(what, sizeof(what), "bm25 k=%zu, 1 thread, cpu", ks[ki]);
		report(what, cpu, queries.n);
		free(cpu);
		free(hits);
	}

	struct thr *t = ab_xcalloc((size_t)threads, sizeof(*t));
	pthread_t *tid = ab_xcalloc((size_t)threads, sizeof(*tid));
	double *all = ab_xmalloc(queries.n * sizeof(*all));
	double w0 = ab_now_ms_f();
	for (int i = 0; i < threads; i++) {
		t[i] = (struct thr){x, &queries, (size_t)i, (size_t)threads, 10,
				    ab_xmalloc(queries.n * sizeof(double)), 0};
		pthread_create(&tid[i], NULL, thr_main, &t[i]);
	}
	size_t nall = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		memcpy(all + nall, t[i].ms, t[i].n * sizeof(double));
		nall += t[i].n;
		free(t[i].ms);
	}
	double wall = ab_now_ms_f() - w0;
	char what[64];
	snprintf(what, sizeof(what), "bm25 k=10, %d threads at once", threads);
	report(what, all, nall);
	printf("%-34s %.0f searches/s\n", "  throughput", (double)nall * 1000 / wall);

	struct ab_embedder *e;
	if (ab_embed_new(NULL, &e) == 0) {
		float *v = ab_xmalloc(ab_embed_dims(e) * sizeof(float));
		for (size_t i = 0; i < queries.n; i++) {
			double q0 = ab_now_ms_f();
			ab_embed_query(e, queries.v[i], strlen(queries.v[i]), ab_embed_textidx_idf, x,
				       v);
			ms[i] = ab_now_ms_f() - q0;
		}
		report("embed query (built-in, idf)", ms, queries.n);
		free(v);
		ab_embed_free(e);
	}

	free(all);
	free(t);
	free(tid);
	free(ms);
	ab_buf_free(&text);
	ab_textidx_free(x, NULL);
	for (size_t i = 0; i < corpus.n; i++)
		free(corpus.v[i]);
	for (size_t i = 0; i < queries.n; i++)
		free(queries.v[i]);
	free(corpus.v);
	free(queries.v);
	free(vocab.v);
	return 0;
}
