/*
 * test_llm_rowops.c - RMSNorm, RoPE and the residual add
 * (src/llm/rowops.c): the AVX2 forms against the scalar ones bit for bit
 * (every length from 1 to 300 and the model sizes, so every tail), and
 * both against the formulas computed in double. Without AVX2 the
 * bit-for-bit checks compare the scalar form with itself and say so.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quant.h"
#include "rowops.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float rnd(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

/* n random floats of magnitudes 1e-3 .. 1e3 */
static float *rand_row(int n)
{
	float *x = ab_xmalloc((size_t)(n + 1) * sizeof(float));
	for (int i = 0; i < n; i++)
		x[i] = rnd() * powf(10.0f, 3.0f * 2.0f * rnd());
	return x;
}

static void note_backend(void)
{
	if (!ab_quant_avx2())
		cr_log_warn("no AVX2 here: the bit-for-bit checks compare the scalar form with itself");
}

static const int sizes[] = {768, 2048, 4096, 5632};

static int size_at(int k) /* 1..300, then the model sizes */
{
	return k < 300 ? k + 1 : sizes[k - 300];
}

Test(rowops, rmsnorm_simd_matches_scalar_and_formula)
{
	note_backend();
	for (int k = 0; k < 300 + (int)AB_ARRAY_LEN(sizes); k++) {
		int n = size_at(k);
		float *x = rand_row(n), *w = rand_row(n);
		float *a = ab_xmalloc((size_t)n * sizeof(float)), *b = ab_xmalloc((size_t)n * sizeof(float));
		ab_rowops_rmsnorm(a, x, w, n, 1e-5f);
		ab_quant_force_scalar(true);
		ab_rowops_rmsnorm(b, x, w, n, 1e-5f);
		ab_quant_force_scalar(false);
		cr_assert(memcmp(a, b, (size_t)n * sizeof(float)) == 0, "n=%d: simd and scalar differ", n);
		double ss = 0;
		for (int i = 0; i < n; i++)
			ss += (double)x[i] * x[i];
		double sc = 1.0 / sqrt(ss / n + 1e-5);
		for (int i = 0; i < n; i++) {
			double want = x[i] * sc * w[i];
			cr_assert(fabs(a[i] - want) <= 1e-5 * fabs(want) + 1e-30, "n=%d i=%d: %.9g, want %.9g", n,
				  i, a[i], want);
		}
		/* in place */
		ab_rowops_rmsnorm(x, x, w, n, 1e-5f);
		cr_assert(memcmp(a, x, (size_t)n * sizeof(float)) == 0, "n=%d: in place differs", n);
		free(x), free(w), free(a), free(b);
	}
}

Test(rowops, rope_simd_matches_scalar_and_formula)
{
	note_backend();
	for (int neox = 0; neox < 2; neox++)
		for (int half = 1; half <= 72; half++) {
			int n = 2 * half;
			float *v = rand_row(n), *cs = ab_xmalloc((size_t)n * sizeof(float));
			for (int i = 0; i < half; i++) {
				float ang = 7.0f * rnd();
				cs[2 * i] = cosf(ang), cs[2 * i + 1] = sinf(ang);
			}
			float *a = ab_xmalloc((size_t)n * sizeof(float)), *b = ab_xmalloc((size_t)n * sizeof(float));
			memcpy(a, v, (size_t)n * sizeof(float));
			memcpy(b, v, (size_t)n * sizeof(float));
			ab_rowops_rope(a, cs, half, neox);
			ab_quant_force_scalar(true);
			ab_rowops_rope(b, cs, half, neox);
			ab_quant_force_scalar(false);
			cr_assert(memcmp(a, b, (size_t)n * sizeof(float)) == 0, "half=%d neox=%d: simd and scalar differ",
				  half, neox);
			for (int i = 0; i < half; i++) {
				int p = neox ? i : 2 * i, q = neox ? i + half : 2 * i + 1;
				double c = cs[2 * i], s = cs[2 * i + 1];
				double w0 = v[p] * c - v[q] * s, w1 = v[p] * s + v[q] * c;
				double tol = 1e-6 * (fabs(v[p]) + fabs(v[q]));
				cr_assert(fabs(a[p] - w0) <= tol && fabs(a[q] - w1) <= tol,
					  "half=%d neox=%d pair %d: (%.9g, %.9g), want (%.9g, %.9g)", half, neox, i, a[p],
					  a[q], w0, w1);
			}
			free(v), free(cs), free(a), free(b);
		}
}

Test(rowops, add_simd_matches_scalar)
{
	note_backend();
	for (int k = 0; k < 300 + (int)AB_ARRAY_LEN(sizes); k++) {
		int n = size_at(k);
		float *x = rand_row(n), *y = rand_row(n);
		float *a = ab_xmalloc((size_t)n * sizeof(float));
		memcpy(a, x, (size_t)n * sizeof(float));
		ab_rowops_add(a, y, (size_t)n);
		for (int i = 0; i < n; i++)
			cr_assert(a[i] == x[i] + y[i], "n=%d i=%d: %.9g + %.9g gave %.9g", n, i, x[i], y[i], a[i]);
		ab_quant_force_scalar(true);
		ab_rowops_add(x, y, (size_t)n);
		ab_quant_force_scalar(false);
		cr_assert(memcmp(a, x, (size_t)n * sizeof(float)) == 0, "n=%d: simd and scalar differ", n);
		free(x), free(y), free(a);
	}
}
