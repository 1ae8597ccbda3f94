/*
 * rowops.c - RMSNorm, RoPE and the residual add, one row at a time (see
 * rowops.h). They are a few per cent of a prompt's time, but run once per
 * token and layer, so the AVX2 forms matter once the matrix products are
 * fast. Every AVX2 form does the scalar form's operations on each element
 * in the same order (no FMA contraction: C17 mode keeps a * b - c as two
 * roundings), so the bits do not depend on the backend; the tests compare
 * them.
 */
#include "rowops.h"

#include <math.h>

#include "quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ROW_X86 1
#define ROW_AVX2 __attribute__((target("avx2,fma")))
#else
#define ROW_X86 0
#endif

/* the eight partial sums of squares joined: the one order both forms use */
static double join8(const double *s8)
{
	return ((s8[0] + s8[4]) + (s8[2] + s8[6])) + ((s8[1] + s8[5]) + (s8[3] + s8[7]));
}

static double sumsq(const float *x, int n)
{
	double s8[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s8[k] += (double)(x[i + k] * x[i + k]);
	for (; i < n; i++)
		s8[i & 7] += (double)(x[i] * x[i]);
	return join8(s8);
}

#if ROW_X86
/* sumsq with the eight partial sums in two vectors of four doubles */
ROW_AVX2 static double sumsq_avx2(const float *x, int n)
{
	__m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		v = _mm256_mul_ps(v, v);
		lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
		hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
	}
	double s8[8];
	_mm256_storeu_pd(s8, lo);
	_mm256_storeu_pd(s8 + 4, hi);
	for (; i < n; i++)
		s8[i & 7] += (double)(x[i] * x[i]);
	return join8(s8);
}

ROW_AVX2 static void scale_mul_avx2(float *o, const float *x, float scale, const float *w, int n)
{
	int i = 0;
	__m256 sc = _mm256_set1_ps(scale);
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sc),
						      _mm256_loadu_ps(w + i)));
	for (; i < n; i++)
		o[i] = (x[i] * scale) * w[i];
}

/* adjacent pairs, four a vector: v * cos, then addsub with the swapped
 * pairs times sin (even lanes x0 c - x1 s, odd x1 c + x0 s: the scalar
 * form's products, and sums that differ only in operand order) */
ROW_AVX2 static void rope_pairs_avx2(float *v, const float *cs, int half)
{
	int i = 0;
	for (; i + 4 <= half; i += 4) {
		__m256 x = _mm256_loadu_ps(v + 2 * i), t = _mm256_loadu_ps(cs + 2 * i);
		__m256 c = _mm256_moveldup_ps(t), sn = _mm256_movehdup_ps(t);
		__m256 xs = _mm256_permute_ps(x, 0xb1); /* x1, x0 in each pair */
		_mm256_storeu_ps(v + 2 * i, _mm256_addsub_ps(_mm256_mul_ps(x, c), _mm256_mul_ps(xs, sn)));
	}
	for (; i < half; i++) {
		float x0 = v[2 * i], x1 = v[2 * i + 1], co = cs[2 * i], si = cs[2 * i + 1];
		v[2 * i] = x0 * co - x1 * si;
		v[2 * i + 1] = x0 * si + x1 * co;
	}
}

ROW_AVX2 static void add_avx2(float *x, const float *y, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		x[i] += y[i];
}
#endif

void ab_rowops_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
#if ROW_X86
	if (ab_quant_avx2()) {
		float scale = 1.0f / sqrtf((float)(sumsq_avx2(x, n) / n) + eps);
		scale_mul_avx2(out, x, scale, w, n);
		return;
	}
#endif
	float scale = 1.0f / sqrtf((float)(sumsq(x, n) / n) + eps);
	for (int i = 0; i < n; i++)
		out[i] = (x[i] * scale) * w[i];
}

void ab_rowops_rope(float *v, const float *cs, int half, bool neox)
{
#if ROW_X86
	if (!neox && ab_quant_avx2()) {
		rope_pairs_avx2(v, cs, half);
		return;
	}
#endif
	for (int i = 0; i < half; i++) {
		int a = neox ? i : 2 * i;
		int b = neox ? i + half : a + 1;
		float x0 = v[a], x1 = v[b], co = cs[2 * i], si = cs[2 * i + 1];
		v[a] = x0 * co - x1 * si;
		v[b] = x0 * si + x1 * co;
	}
}

void ab_rowops_add(float *x, const float *y, size_t n)
{
#if ROW_X86
	if (ab_quant_avx2()) {
		add_avx2(x, y, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}
