/*
 * llm_kernels.c - micro-benchmark of the engine's matmul kernels
 * (src/llm/quant.c): an R x C weight matrix of each type times T
 * activation rows, with 1 and 2 threads, reporting ms per call, GFLOP/s
 * (2*R*C*T) and the effective weight bandwidth (weight bytes / time,
 * the figure that bounds generation at T = 1). Not built by meson;
 * build it by hand against a build directory, e.g.
 *
 *   ninja -C /tmp/b-quant libabllm.a libabcore.a libabcommon.a
 *   cc -O2 -Isrc/llm -Isrc/core bench/llm_kernels.c /tmp/b-quant/libabllm.a \
 *      /tmp/b-quant/libabcore.a /tmp/b-quant/libabcommon.a -lutf8proc \
 *      -lpthread -lm -o /tmp/llm_kernels
 *   /tmp/llm_kernels [R C]          (default 5632 2048, TinyLlama's FFN)
 *
 * AB_BENCH_TYPES=Q4_0,Q8_0 (say) limits the run to those types. Q4_0,
 * Q8_0 and Q4_K are measured in the layout the model loader gives them
 * (ab_quant_repack: Q4_0_X8, Q8_0_X8, Q4_K_X8); AB_BENCH_NO_REPACK=1
 * measures the file's layout instead. GB/s(W) is always the file
 * layout's bytes over the time (Q4_K_X8 reads 148/144 of that).
 * AB_BENCH_THREADS=1 (or 2) measures only that many threads, and
 * AB_BENCH_CPUTIME=1 times the process's CPU time instead of wall time
 * (with one thread: the kernel's own time, less disturbed by other load
 * on a shared machine).
 * AB_BENCH_MB=600 (say) cycles through enough copies of the matrix to
 * fill that many MiB, so that the weights come from DRAM, not the cache,
 * as they do in generation with a real model (the default, one copy,
 * measures the kernel on cache-resident weights). AB_BENCH_T=1 limits
 * the run to T = 1. AB_FORCE_SCALAR=1 in the environment measures the scalar kernels,
 * AB_QUANT_NO_VNNI=1 the plain AVX2 ones on a CPU with AVX-VNNI. Each
 * figure is the best of three 0.3 s runs (the machine is often shared).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "quant.h"

static int g_clock = CLOCK_MONOTONIC;

static double now(void)
{
	struct timespec t;
	clock_gettime(g_clock, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int64_t R = argc > 2 ? atoll(argv[1]) : 5632, C = argc > 2 ? atoll(argv[2]) : 2048;
	const char *ct = getenv("AB_BENCH_CPUTIME");
	if (ct && *ct == '1')
		g_clock = CLOCK_PROCESS_CPUTIME_ID;
	const char *fs = getenv("AB_FORCE_SCALAR");
	ab_quant_force_scalar(fs && *fs == '1');
	static const uint32_t types[] = {AB_TYPE_Q4_0, AB_TYPE_Q8_0, AB_TYPE_Q4_K, AB_TYPE_Q6_K,
					 AB_TYPE_F16, AB_TYPE_F32};
	static const int64_t Ts[] = {1, 128};
	float *wf = ab_xmalloc((size_t)(R * C) * sizeof(float));
	uint64_t s = 88172645463325252ull;
	for (int64_t i = 0; i < R * C; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		wf[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
	}
	float *X = ab_xmalloc((size_t)(128 * C) * sizeof(float));
	for (int64_t i = 0; i < 128 * C; i++)
		X[i] = wf[i % (R * C)] * 3.0f;
	float *Y = ab_xmalloc((size_t)(128 * R) * sizeof(float));
	printf("backend %s, W %ld x %ld\n", ab_quant_backend(), (long)R, (long)C);
	printf("%-5s %4s %3s %9s %9s %9s %12s\n", "type", "T", "thr", "ms/call", "GFLOP/s", "GB/s(W)",
	       "rows/s");
	const char *only = getenv("AB_BENCH_TYPES");
	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
		if (only && !strstr(only, ab_type_get(types[ti])->name))
			continue;
		size_t wb = ab_type_row_bytes(types[ti], C) * (size_t)R;
		void *W0 = ab_xmalloc(wb);
		ab_quantize(types[ti], wf, W0, R * C);
		/* the layout the model loader uses (Q4_0: rows interleaved by
		 * eight); AB_BENCH_NO_REPACK=1 measures the file's layout.
		 * AB_BENCH_MB: more copies, made the same way */
		const char *nr = getenv("AB_BENCH_NO_REPACK");
		const char *mbs = getenv("AB_BENCH_MB");
		size_t ncopy = mbs ? ((size_t)atol(mbs) << 20) / wb + 1 : 1;
		void **Ws = ab_xmalloc(ncopy * sizeof(*Ws));
		uint32_t mt = types[ti];
		for (size_t c = 0; c < ncopy; c++) {
			void *rp = NULL;
			if (!(nr && *nr == '1') && ab_quant_repack(types[ti], W0, R, C, &rp, &mt) == 0 && rp) {
				Ws[c] = rp;
			} else {
				Ws[c] = ab_xmalloc(wb);
				memcpy(Ws[c], W0, wb);
			}
		}
		free(W0);
		size_t cur = 0;
		const char *t1 = getenv("AB_BENCH_T");
		for (size_t k = 0; k < (t1 && *t1 == '1' ? 1 : 2); k++)
			for (int nt = 1; nt <= 2; nt++) {
				const char *ths = getenv("AB_BENCH_THREADS");
				if (ths && *ths && atoi(ths) != nt)
					continue;
				struct ab_pool *p = ab_pool_new(nt);
				int64_t T = Ts[k];
				ab_matmul(Ws[0], mt, R, C, X, T, Y, p); /* warm up */
				double best = 1e30;
				for (int rep = 0; rep < 3; rep++) {
					int iters = 0;
					double t0 = now(), el;
					do {
						ab_matmul(Ws[cur], mt, R, C, X, T, Y, p);
						cur = (cur + 1) % ncopy;
						iters++;
						el = now() - t0;
					} while (el < 0.3 || iters < 2);
					if (el / iters < best)
						best = el / iters;
				}
				double dt = best;
				printf("%-7s %4ld %3d %9.3f %9.2f %9.2f %12.0f\n", ab_type_get(mt)->name,
				       (long)T, nt, dt * 1e3, 2.0 * (double)(R * C * T) / dt * 1e-9,
				       (double)wb / dt * 1e-9, (double)R / dt);
				ab_pool_free(p);
			}
		for (size_t c = 0; c < ncopy; c++)
			free(Ws[c]);
		free(Ws);
	}
	free(wf);
	free(X);
	free(Y);
	return 0;
}
