/*
 * test_vector_kernels.c - the distance kernels of src/vector/vkernels.h:
 * every SIMD level this CPU runs must agree with the scalar forms (float
 * dot products within rounding, int8 dot products and Hamming distances
 * exactly) over lengths that exercise the full-register loops and every
 * tail, and the CPU probe must be consistent with itself.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vkernels.h"

static uint64_t rng_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float rng_float(uint64_t *x) /* in [-1, 1) */
{
	return (float)((double)(rng_next(x) >> 11) / 4503599627370496.0 - 1.0);
}

static const size_t lengths[] = {1,  2,  3,   7,   8,   15,  16,  17,  31,  32,  33,  63,
				 64, 65, 100, 127, 128, 129, 255, 256, 300, 384, 1000, 1536};

Test(vkernels, probe_is_consistent)
{
	const struct ab_vk_cpu *c = ab_vk_cpu();
	if (c->avx_vnni)
		cr_assert(c->avx2_fma, "AVX-VNNI without AVX2");
	if (c->avx512_vnni)
		cr_assert(c->avx512, "AVX-512 VNNI without AVX-512");
	if (c->avx512)
		cr_assert(c->avx2_fma, "AVX-512 without AVX2");
	cr_assert_not_null(ab_vk_table(AB_VK_SCALAR));
	cr_assert_eq(ab_vk_table(AB_VK_AVX2) != NULL, c->avx2_fma != 0);
	cr_assert_eq(ab_vk_table(AB_VK_AVX512) != NULL, c->avx512 != 0);
	cr_assert_null(ab_vk_table(AB_VK_NLEVELS));
	cr_assert_not_null(ab_vk_best());
	cr_log_info("vkernels: best is %s", ab_vk_best()->name);
}

Test(vkernels, f32_dot_matches_scalar)
{
	uint64_t seed = 1;
	float *a = malloc(2000 * sizeof(float)), *b = malloc(2000 * sizeof(float));
	for (int lv = 1; lv < AB_VK_NLEVELS; lv++) {
		const struct ab_vk *k = ab_vk_table((enum ab_vk_level)lv);
		if (!k) {
			cr_log_info("vkernels: level %d not supported here, skipped", lv);
			continue;
		}
		for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
			size_t n = lengths[li];
			/* offset by one float: unaligned loads */
			for (size_t i = 0; i < n + 1; i++) {
				a[i] = rng_float(&seed);
				b[i] = rng_float(&seed);
			}
			double exact = 0, mag = 0;
			for (size_t i = 0; i < n; i++) {
				exact += (double)a[i + 1] * b[i + 1];
				mag += fabs((double)a[i + 1] * b[i + 1]);
			}
			float s = ab_vk_dot_f32_scalar(a + 1, b + 1, n);
			float v = k->dot_f32(a + 1, b + 1, n);
			cr_assert(fabs(s - exact) <= 1e-5 * mag + 1e-7, "scalar n=%zu", n);
			cr_assert(fabs(v - exact) <= 1e-5 * mag + 1e-7, "%s n=%zu: %g vs %g", k->name,
				  n, (double)v, exact);
		}
	}
	free(a);
	free(b);
}

Test(vkernels, i8_dot_is_exact)
{
	uint64_t seed = 2;
	int8_t *a = malloc(2000), *b = malloc(2000);
	for (int lv = 0; lv < AB_VK_NLEVELS; lv++) {
		const struct ab_vk *k = ab_vk_table((enum ab_vk_level)lv);
		if (!k)
			continue;
		for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
			size_t n = lengths[li];
			for (int pattern = 0; pattern < 3; pattern++) {
				for (size_t i = 0; i < n + 3; i++) {
					int x = (int)(rng_next(&seed) % 255) - 127;
					int y = (int)(rng_next(&seed) % 255) - 127;
					if (pattern == 1) { /* extremes: the saturation cases */
						x = (i % 2) ? 127 : -127;
						y = (i % 3) ? -127 : 127;
					} else if (pattern == 2 && i % 4 == 0) {
						x = 0;
					}
					a[i] = (int8_t)x;
					b[i] = (int8_t)y;
				}
				int32_t want = 0;
				for (size_t i = 0; i < n; i++)
					want += (int32_t)a[i + 3] * b[i + 3];
				cr_assert_eq(ab_vk_dot_i8_scalar(a + 3, b + 3, n), want);
				cr_assert_eq(k->dot_i8(a + 3, b + 3, n), want, "%s n=%zu pattern %d",
					     k->name, n, pattern);
			}
		}
	}
	free(a);
	free(b);
}

Test(vkernels, hamming_is_exact)
{
	uint64_t seed = 3;
	uint8_t a[300], b[300];
	for (int lv = 0; lv < AB_VK_NLEVELS; lv++) {
		const struct ab_vk *k = ab_vk_table((enum ab_vk_level)lv);
		if (!k)
			continue;
		for (size_t n = 1; n < 290; n += 7) {
			for (size_t i = 0; i < n + 1; i++) {
				a[i] = (uint8_t)rng_next(&seed);
				b[i] = (uint8_t)rng_next(&seed);
			}
			uint32_t want = 0;
			for (size_t i = 0; i < n; i++)
				for (int bit = 0; bit < 8; bit++)
					want += ((a[i + 1] ^ b[i + 1]) >> bit) & 1;
			cr_assert_eq(ab_vk_hamming_scalar(a + 1, b + 1, n), want);
			cr_assert_eq(k->hamming(a + 1, b + 1, n), want, "%s n=%zu", k->name, n);
		}
	}
	memset(a, 0xff, sizeof(a));
	memset(b, 0, sizeof(b));
	cr_assert_eq(ab_vk_best()->hamming(a, b, 48), 384);
}
