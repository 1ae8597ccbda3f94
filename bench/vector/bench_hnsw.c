/*
 * bench_hnsw.c - the C side of bench/vector/run.sh: builds an HNSW index
 * (src/vector) from a raw float32 file, then answers a query file with
 * several threads at each ef asked for, and prints one JSON object with
 * inserts/s, queries/s (per wall second and per CPU second of the
 * process: the second moves less when the machine is shared), recall@k
 * against the given ground truth, the
 * recall of the engine's exact scan (the quantisation ceiling), and the
 * memory per vector (self-reported and as resident-set growth).
 *
 *   bench_hnsw --dim D --base F --query F --gt F [--k 10] [--quant q8|f32|bin]
 *              [--m 16] [--efc 200] [--ef 50,100,200] [--threads 1]
 *              [--min-secs 1.0] [--exact 200] [--delete 0.3]
 *
 * Files are raw little-endian arrays: base n x D float32, query q x D
 * float32, gt q x k int32 (row indices into base, best first). Searches
 * run while no insert does (the module's read lock, here by construction).
 * With --delete f, a fraction f of the base (every other row from the
 * start, deterministic) is deleted after the timings, and recall is
 * measured again against ground truth recomputed by the exact scan of
 * the remaining nodes (so it measures the graph repair, not quantisation).
 */
#include "common.h"
#include "hnsw.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
	const struct ab_hnsw *h;
	const float *q;
	size_t nq, dim, k;
	uint32_t ef;
	int tid, nthreads;
	uint32_t *out; /* nq x k row indices */
	int reps;
};

static float *load(const char *path, size_t *bytes)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "bench_hnsw: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	float *p = ab_xmalloc(sz > 0 ? (size_t)sz : 1);
	if (sz > 0 && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
		fprintf(stderr, "bench_hnsw: short read on %s\n", path);
		exit(2);
	}
	fclose(f);
	*bytes = (size_t)sz;
	return p;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = 0;
	fclose(f);
	return res * sysconf(_SC_PAGESIZE);
}

static void *run_queries(void *arg)
{
	struct job *j = arg;
	struct ab_hnsw_hit *hits = ab_xmalloc(j->k * sizeof(*hits));
	for (int r = 0; r < j->reps; r++) {
		for (size_t i = (size_t)j->tid; i < j->nq; i += (size_t)j->nthreads) {
			int n = ab_hnsw_search(j->h, j->q + i * j->dim, j->k, j->ef, NULL, NULL, 0,
					       hits);
			for (int t = 0; t < (int)j->k; t++)
				j->out[i * j->k + (size_t)t] =
					t < n ? (uint32_t)((uintptr_t)ab_hnsw_node_value(hits[t].node) - 1)
					      : UINT32_MAX;
		}
	}
	free(hits);
	return NULL;
}

static double recall(const uint32_t *got, const int32_t *gt, size_t nq, size_t k)
{
	size_t ok = 0;
	for (size_t i = 0; i < nq; i++)
		for (size_t a = 0; a < k; a++)
			for (size_t b = 0; b < k; b++)
				if (got[i * k + a] == (uint32_t)gt[i * k + b]) {
					ok++;
					break;
				}
	return (double)ok / (double)(nq * k);
}

/* Runs all queries reps times over nthreads; returns the wall seconds
 * taken and the CPU seconds in *cpu. */
static double timed_queries(const struct ab_hnsw *h, const float *q, size_t nq, size_t dim,
			    size_t k, uint32_t ef, int nthreads, int reps, uint32_t *out, double *cpu)
{
	pthread_t th[64];
	struct job jobs[64];
	double c0 = cpu_s();
	double t0 = ab_now_ms_f();
	for (int t = 0; t < nthreads; t++) {
		jobs[t] = (struct job){h, q, nq, dim, k, ef, t, nthreads, out, reps};
		if (pthread_create(&th[t], NULL, run_queries, &jobs[t]) != 0) {
			fprintf(stderr, "bench_hnsw: pthread_create failed\n");
			exit(2);
		}
	}
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	*cpu = cpu_s() - c0;
	return (ab_now_ms_f() - t0) / 1000.0;
}

static enum ab_vq parse_quant(const char *s)
{
	if (!strcmp(s, "f32") || !strcmp(s, "fp32") || !strcmp(s, "noquant"))
		return AB_VQ_F32;
	if (!strcmp(s, "bin"))
		return AB_VQ_BIN;
	return AB_VQ_Q8;
}

static const char *quant_name(enum ab_vq q)
{
	return q == AB_VQ_F32 ? "f32" : q == AB_VQ_BIN ? "bin" : "q8";
}

int main(int argc, char **argv)
{
	size_t dim = 0, k = 10, nexact = 200;
	const char *base_p = NULL, *query_p = NULL, *gt_p = NULL, *efs = "100";
	struct ab_hnsw_params prm = {.quant = AB_VQ_Q8, .m = 16, .ef_construction = 200, .seed = 1};
	int nthreads = 1;
	double min_secs = 1.0, del_frac = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "--dim"))
			dim = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--base"))
			base_p = v;
		else if (!strcmp(a, "--query"))
			query_p = v;
		else if (!strcmp(a, "--gt"))
			gt_p = v;
		else if (!strcmp(a, "--k"))
			k = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--quant"))
			prm.quant = parse_quant(v);
		else if (!strcmp(a, "--m"))
			prm.m = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--efc"))
			prm.ef_construction = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--ef"))
			efs = v;
		else if (!strcmp(a, "--threads"))
			nthreads = atoi(v);
		else if (!strcmp(a, "--min-secs"))
			min_secs = atof(v);
		else if (!strcmp(a, "--exact"))
			nexact = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--delete"))
			del_frac = atof(v);
		else {
			fprintf(stderr, "bench_hnsw: unknown option %s\n", a);
			return 2;
		}
	}
	if (!dim || !base_p || !query_p || !gt_p || nthreads < 1 || nthreads > 64 || k == 0) {
		fprintf(stderr, "usage: bench_hnsw --dim D --base F --query F --gt F [options]\n");
		return 2;
	}
	size_t bb, qb, gb;
	float *base = load(base_p, &bb);
	float *qv = load(query_p, &qb);
	int32_t *gt = (int32_t *)(void *)load(gt_p, &gb);
	size_t n = bb / (dim * 4), nq = qb / (dim * 4);
	if (gb != nq * k * 4) {
		fprintf(stderr, "bench_hnsw: ground truth is not %zu x %zu int32\n", nq, k);
		return 2;
	}
	prm.dim = (uint32_t)dim;
	struct ab_hnsw *h;
	if (ab_hnsw_new(&prm, &h) < 0) {
		fprintf(stderr, "bench_hnsw: bad parameters\n");
		return 2;
	}
	struct ab_hnsw_node **nodes = ab_xmalloc(n * sizeof(*nodes));
	long rss0 = rss_bytes();
	double c0 = cpu_s();
	double t0 = ab_now_ms_f();
	for (size_t i = 0; i < n; i++)
		if (ab_hnsw_insert(h, base + i * dim, (void *)(uintptr_t)(i + 1), 0, &nodes[i]) < 0) {
			fprintf(stderr, "bench_hnsw: insert %zu failed\n", i);
			return 1;
		}
	double build_s = (ab_now_ms_f() - t0) / 1000.0;
	double build_cpu = cpu_s() - c0;
	long rss1 = rss_bytes();
	if (ab_hnsw_check(h) != 0) {
		fprintf(stderr, "bench_hnsw: graph check failed after build\n");
		return 1;
	}
	printf("{\"engine\":\"autobot\",\"quant\":\"%s\",\"kernels\":\"%s\",\"n\":%zu,\"dim\":%zu,"
	       "\"m\":%u,\"efc\":%u,\"threads\":%d,\"build_s\":%.3f,\"inserts_per_s\":%.1f,"
	       "\"inserts_per_cpu_s\":%.1f,"
	       "\"mem_bytes_per_vec\":%.1f,\"rss_bytes_per_vec\":%.1f,\"results\":[",
	       quant_name(prm.quant), ab_hnsw_kernels(), n, dim, ab_hnsw_m(h),
	       ab_hnsw_ef_construction(h), nthreads, build_s, (double)n / build_s,
	       (double)n / build_cpu,
	       (double)ab_hnsw_memory(h) / (double)n, (double)(rss1 - rss0) / (double)n);
	uint32_t *got = ab_xmalloc(nq * k * sizeof(uint32_t));
	char *efl = ab_xstrdup(efs), *save = NULL;
	bool first = true;
	for (char *tok = strtok_r(efl, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint32_t ef = (uint32_t)strtoul(tok, NULL, 10);
		/* warm up once, then repeat until min_secs */
		double cpu;
		double s = timed_queries(h, qv, nq, dim, k, ef, nthreads, 1, got, &cpu);
		double rec = recall(got, gt, nq, k);
		int reps = s > 0 ? (int)(min_secs / s) + 1 : 1;
		if (reps > 1000)
			reps = 1000;
		s = timed_queries(h, qv, nq, dim, k, ef, nthreads, reps, got, &cpu);
		printf("%s{\"ef\":%u,\"qps\":%.1f,\"qps_cpu\":%.1f,\"recall\":%.4f}",
		       first ? "" : ",", ef, (double)nq * reps / s, (double)nq * reps / cpu, rec);
		first = false;
	}
	free(efl);
	printf("]");
	/* the exact scan's recall: what quantisation alone allows */
	size_t ne = nexact < nq ? nexact : nq;
	if (ne > 0) {
		struct ab_hnsw_hit *hits = ab_xmalloc(k * sizeof(*hits));
		for (size_t i = 0; i < ne; i++) {
			int c = ab_hnsw_search_exact(h, qv + i * dim, k, NULL, NULL, hits);
			for (size_t t = 0; t < k; t++)
				got[i * k + t] = (int)t < c ? (uint32_t)((uintptr_t)ab_hnsw_node_value(
								      hits[t].node) - 1)
							    : UINT32_MAX;
		}
		printf(",\"exact_recall\":%.4f", recall(got, gt, ne, k));
		free(hits);
	}
	if (del_frac > 0 && del_frac < 1) {
		size_t ndel = (size_t)(del_frac * (double)n), step = n / (ndel ? ndel : 1);
		size_t done = 0;
		double td = ab_now_ms_f();
		for (size_t i = 0; i < n && done < ndel; i += step ? step : 1, done++)
			ab_hnsw_delete(h, nodes[i]);
		double del_s = (ab_now_ms_f() - td) / 1000.0;
		int chk = ab_hnsw_check(h);
		/* ground truth over what is left: the exact scan of the index */
		size_t nd = nq < 500 ? nq : 500, ok = 0;
		struct ab_hnsw_hit *ex = ab_xmalloc(k * sizeof(*ex));
		struct ab_hnsw_hit *ap = ab_xmalloc(k * sizeof(*ap));
		uint32_t ef = (uint32_t)strtoul(efs, NULL, 10);
		for (size_t i = 0; i < nd; i++) {
			int ce = ab_hnsw_search_exact(h, qv + i * dim, k, NULL, NULL, ex);
			int ca = ab_hnsw_search(h, qv + i * dim, k, ef, NULL, NULL, 0, ap);
			for (int a = 0; a < ca; a++)
				for (int b = 0; b < ce; b++)
					if (ap[a].node == ex[b].node) {
						ok++;
						break;
					}
		}
		printf(",\"deleted\":%zu,\"deletes_per_s\":%.1f,\"check_after_delete\":%d,"
		       "\"recall_after_delete_vs_exact\":%.4f,\"ef_after_delete\":%u",
		       done, (double)done / del_s, chk, (double)ok / (double)(nd * k), ef);
		free(ex);
		free(ap);
	}
	printf("}\n");
	free(got);
	free(nodes);
	ab_hnsw_free(h, NULL);
	free(base);
	free(qv);
	free(gt);
	return 0;
}
