/*
 * test_llm_amx.c - the AMX prompt kernels (src/llm/quant_amx.c) against
 * the scalar eight-row kernels of quant.c, bit for bit: Q4_0, Q8_0 (and,
 * through ab_matmul, Q4_K) weights repacked as the model loader does
 * (ab_quant_repack), activation
 * row counts that fill whole tiles, partial tiles and several 64-row
 * passes, row ranges that start inside the matrix. On a machine without
 * AMX (or without the kernel's permission for it) the tests say so and
 * skip; the scalar/AVX paths are covered by test_llm_quant.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quant.h"
#include "quant_amx.h"

static uint64_t rng = 0x243f6a8885a308d3ull;

static float rnd(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* One case: an R x C matrix of type (Q4_0 or Q8_0) against T rows;
 * ab__amx_x8 over rows [r0, r1) compared with the scalar ab_matmul. */
static void amx_case(uint32_t type, int64_t R, int64_t C, int64_t T, int64_t r0, int64_t r1)
{
	float *wf = ab_xmalloc((size_t)(R * C) * sizeof(float));
	for (int64_t i = 0; i < R * C; i++)
		wf[i] = rnd() * (1.0f + (float)(i % 7));
	size_t wrow = ab_type_row_bytes(type, C);
	void *W = ab_xmalloc(wrow * (size_t)R);
	cr_assert_eq(ab_quantize(type, wf, W, R * C), 0);
	void *P = NULL;
	uint32_t pt = 0;
	cr_assert_eq(ab_quant_repack(type, W, R, C, &P, &pt), 0);
	cr_assert_not_null(P);

	float *X = ab_xmalloc((size_t)(T * C) * sizeof(float));
	for (int64_t i = 0; i < T * C; i++)
		X[i] = rnd() * 4.0f;
	/* what ab_matmul hands the kernels: Q8_0 rows and their scales */
	int64_t nb = C / 32;
	size_t xrow = ab_type_row_bytes(AB_TYPE_Q8_0, C);
	char *xq = ab_xmalloc(xrow * (size_t)T);
	float *xd = ab_xmalloc((size_t)(T * nb) * sizeof(float));
	for (int64_t t = 0; t < T; t++) {
		cr_assert_eq(ab_quantize(AB_TYPE_Q8_0, X + t * C, xq + (size_t)t * xrow, C), 0);
		for (int64_t b = 0; b < nb; b++) {
			uint16_t h;
			memcpy(&h, xq + (size_t)t * xrow + (size_t)b * 34, 2);
			xd[t * nb + b] = ab_f16_to_f32(h);
		}
	}

	ab_quant_force_scalar(true);
	float *ref = ab_xmalloc((size_t)(T * R) * sizeof(float));
	ab_matmul(P, pt, R, C, X, T, ref, NULL);
	ab_quant_force_scalar(false);

	float *Y = ab_xmalloc((size_t)(T * R) * sizeof(float));
	for (int64_t i = 0; i < T * R; i++)
		Y[i] = -7.0f; /* rows outside [r0, r1) must stay */
	/* packed in two ranges, as two threads would, over garbage */
	size_t xab = ab__amx_a_bytes(T, nb);
	int8_t *xa = ab_xmalloc(xab);
	memset(xa, 0x5a, xab);
	ab__amx_pack_a(xq, xrow, xd, (size_t)nb, T, nb, xa, T / 3, T);
	ab__amx_pack_a(xq, xrow, xd, (size_t)nb, T, nb, xa, 0, T / 3);
	ab__amx_x8(type == AB_TYPE_Q8_0, P, wrow, r0, r1, R, nb, xa, T, Y);
	free(xa);
	for (int64_t t = 0; t < T; t++)
		for (int64_t r = 0; r < R; r++) {
			float y = Y[t * R + r];
			if (r < r0 || r >= r1)
				cr_assert_eq(fbits(y), fbits(-7.0f), "row %ld outside the range was written", (long)r);
			else
				cr_assert_eq(fbits(y), fbits(ref[t * R + r]),
					     "%s %ldx%ld T=%ld t=%ld r=%ld: amx %.9g, scalar %.9g",
					     ab_type_get(type)->name, (long)R, (long)C, (long)T, (long)t, (long)r,
					     (double)y, (double)ref[t * R + r]);
		}
	free(wf);
	free(W);
	free(P);
	free(X);
	free(xq);
	free(xd);
	free(ref);
	free(Y);
}

Test(amx, matches_scalar_bit_for_bit, .timeout = 300)
{
	if (!ab__amx_usable())
		cr_skip_test("no AMX here (CPU without AMX-INT8/AVX-512, kernel without the tile "
			     "permission, or AB_QUANT_NO_AMX=1): the AVX kernels run instead");
	static const int64_t shapes[][5] = {
		/* R, C, T, r0, r1 */
		{16, 32, 16, 0, 16},    {16, 32, 1, 0, 16},	{32, 64, 5, 16, 32},
		{48, 96, 17, 0, 48},    {64, 256, 64, 16, 48},  {32, 128, 65, 0, 32},
		{96, 768, 130, 32, 96}, {128, 2048, 33, 0, 128},
		/* block columns staged eight at a time: a last group of one
		 * and of five (odd, so it ends on an even block) */
		{16, 288, 16, 0, 16},   {32, 416, 20, 0, 32},
	};
	for (size_t s = 0; s < AB_ARRAY_LEN(shapes); s++)
		for (int q8 = 0; q8 < 2; q8++)
			amx_case(q8 ? AB_TYPE_Q8_0 : AB_TYPE_Q4_0, shapes[s][0], shapes[s][1], shapes[s][2],
				 shapes[s][3], shapes[s][4]);
}

/* ab_matmul itself (any path it picks for these sizes) against scalar,
 * with a pool, on prompt-sized inputs where the AMX path applies: Q4_0,
 * Q8_0 and Q4_K (rows of 256 and more for the K-quant). */
Test(amx, matmul_prompt_shapes, .timeout = 300)
{
	struct ab_pool *pool = ab_pool_new(2);
	static const int64_t shapes[][3] = {{24, 256, 40}, {256, 512, 64}, {200, 256, 23}, {48, 768, 70}};
	static const uint32_t types[] = {AB_TYPE_Q4_0, AB_TYPE_Q8_0, AB_TYPE_Q4_K};
	for (size_t s = 0; s < AB_ARRAY_LEN(shapes); s++)
		for (size_t ti = 0; ti < AB_ARRAY_LEN(types); ti++) {
			uint32_t type = types[ti];
			int64_t R = shapes[s][0], C = shapes[s][1], T = shapes[s][2];
			float *wf = ab_xmalloc((size_t)(R * C) * sizeof(float));
			for (int64_t i = 0; i < R * C; i++)
				wf[i] = rnd();
			void *W = ab_xmalloc(ab_type_row_bytes(type, C) * (size_t)R);
			cr_assert_eq(ab_quantize(type, wf, W, R * C), 0);
			void *P = NULL;
			uint32_t pt = 0;
			cr_assert_eq(ab_quant_repack(type, W, R, C, &P, &pt), 0);
			float *X = ab_xmalloc((size_t)(T * C) * sizeof(float));
			for (int64_t i = 0; i < T * C; i++)
				X[i] = rnd() * 3.0f;
			float *y = ab_xmalloc((size_t)(T * R) * sizeof(float));
			float *ys = ab_xmalloc((size_t)(T * R) * sizeof(float));
			ab_matmul(P, pt, R, C, X, T, y, pool);
			ab_quant_force_scalar(true);
			ab_matmul(P, pt, R, C, X, T, ys, NULL);
			ab_quant_force_scalar(false);
			for (int64_t i = 0; i < T * R; i++)
				cr_assert_eq(fbits(y[i]), fbits(ys[i]), "%s %ldx%ld T=%ld [%ld]: %.9g vs %.9g",
					     ab_type_get(type)->name, (long)R, (long)C, (long)T, (long)i,
					     (double)y[i], (double)ys[i]);
			free(wf);
			free(W);
			free(P);
			free(X);
			free(y);
			free(ys);
		}
	ab_pool_free(pool);
}
