/*
 * quant.h - tensor types and the kernels on them: block layouts of the
 * ggml types AutoBot runs (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K),
 * dequantisation, quantisation (for model synth and for activations) and
 * the matrix-vector / matrix-matrix products of the forward pass, each
 * with an AVX2+FMA kernel chosen at run time and a scalar fallback.
 *
 * Products follow ggml's arithmetic: the activations are rounded to the
 * weight's "dot type" first (Q8_0 for Q4_0/Q8_0 weights, Q8_K for
 * Q4_K/Q6_K, F16 for F16, BF16 for BF16, none for F32), so that logits
 * agree with llama.cpp's to float32 noise.
 */
#ifndef AB_QUANT_H
#define AB_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml type ids, as stored in GGUF files. */
enum ab_type {
	AB_TYPE_F32 = 0,
	AB_TYPE_F16 = 1,
	AB_TYPE_Q4_0 = 2,
	AB_TYPE_Q4_1 = 3,
	AB_TYPE_Q5_0 = 6,
	AB_TYPE_Q5_1 = 7,
	AB_TYPE_Q8_0 = 8,
	AB_TYPE_Q8_1 = 9,
	AB_TYPE_Q2_K = 10,
	AB_TYPE_Q3_K = 11,
	AB_TYPE_Q4_K = 12,
	AB_TYPE_Q5_K = 13,
	AB_TYPE_Q6_K = 14,
	AB_TYPE_Q8_K = 15,
	AB_TYPE_BF16 = 30,
	/* Not GGUF types: Q4_0 / Q8_0 / Q4_K / Q6_K rows repacked by
	 * ab_quant_repack, groups of eight rows interleaved (see quant.c).
	 * Only ab_matmul reads them. */
	AB_TYPE_Q4_0_X8 = 39,
	AB_TYPE_Q8_0_X8 = 40,
	AB_TYPE_Q4_K_X8 = 41,
	AB_TYPE_Q6_K_X8 = 42,
	AB_TYPE__MAX = 43,
};

struct ab_type_info {
	const char *name;     /* "Q4_K" */
	int block;            /* elements per block */
	size_t block_bytes;   /* bytes per block */
	bool supported;       /* we can dequantise and multiply it */
};

/* Info for a type id, or NULL if the id is unknown. */
const struct ab_type_info *ab_type_get(uint32_t type);
/* Bytes of a row of n elements (n a multiple of the block), or 0 if
 * the type is unknown or n is not a multiple of its block. */
size_t ab_type_row_bytes(uint32_t type, int64_t n);
/* Parses "q4_0", "Q4_K", "f16", ... Returns the id or -1. */
int ab_type_parse(const char *name);

/* Converts n elements (a multiple of the block) to float32. 0 or AB_EINVAL. */
int ab_dequantize(uint32_t type, const void *src, float *dst, int64_t n);
/* Converts n float32 values to type (for model synth, and activations). */
int ab_quantize(uint32_t type, const float *src, void *dst, int64_t n);

float ab_f16_to_f32(uint16_t h);
uint16_t ab_f32_to_f16(float f);
/* dst[i] = ab_f32_to_f16(src[i]) for i < n, the same bits, with F16C
 * where the CPU has it (and AVX2 is not turned off) */
void ab_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n);
/* The index of the first largest of x[0..n) (NaNs never count as larger;
 * 0 when x[0] is NaN or n <= 0): greedy sampling's pick, vectorised
 * where the CPU allows, the same answer either way. */
int64_t ab_argmax_f32(const float *x, int64_t n);
float ab_bf16_to_f32(uint16_t h);
uint16_t ab_f32_to_bf16(float f);

/* A fixed pool of worker threads that run one parallel-for at a time.
 * The calling thread takes part as thread 0. */
struct ab_pool;
struct ab_pool *ab_pool_new(int n_threads);   /* n_threads >= 1 */
void ab_pool_free(struct ab_pool *p);
int ab_pool_threads(const struct ab_pool *p);
/* Runs fn(ud, ith, nth) for ith in 0..nth-1 on the pool and waits. */
void ab_pool_run(struct ab_pool *p, void (*fn)(void *ud, int ith, int nth), void *ud);

/*
 * Y = X W^T: W is R rows of C elements of the given type (row-major, as
 * stored: ne[0] = C, ne[1] = R), X is T rows of C floats, Y is T rows of
 * R floats. T = 1 is the generation case (matrix-vector); T > 1 is prompt
 * evaluation and is computed as matrix-matrix work (each weight row is
 * loaded once for all T activation rows). Uses the pool (NULL = serial).
 */
void ab_matmul(const void *W, uint32_t type, int64_t R, int64_t C, const float *X, int64_t T,
	       float *Y, struct ab_pool *pool);

/* Several products of the same activations (X, T rows of C floats):
 * ops[i].Y = X ops[i].W^T, ops[i].W being ops[i].R rows of ops[i].type.
 * The activations are quantised once when the types share a quantised
 * form (else each product runs as ab_matmul), and the rows of all the
 * products are shared out in one pool run: fewer wake-ups than one call
 * each. The results are ab_matmul's, bit for bit. n <= AB_MATMUL_MAX. */
#define AB_MATMUL_MAX 4
struct ab_matmul_op {
	const void *W;
	uint32_t type;
	int64_t R;
	float *Y;
};
void ab_matmul_n(const struct ab_matmul_op *ops, int n, int64_t C, const float *X, int64_t T,
		 struct ab_pool *pool);

/*
 * Weights in a layout the kernels read faster, made once at model load:
 * for a Q4_0, Q8_0, Q4_K or Q6_K matrix of R rows (R a multiple of 8) a
 * new buffer (*out, to free()) in AB_TYPE_Q4_0_X8 / AB_TYPE_Q8_0_X8 /
 * AB_TYPE_Q4_K_X8 / AB_TYPE_Q6_K_X8 (*out_type), to pass to ab_matmul
 * instead of the original; its size is ab_type_row_bytes(*out_type, C) * R
 * (the same as the original, but 148/144 of it for Q4_K). Other types and
 * shapes: *out = NULL (use the original as it is). 0, or AB_EINVAL.
 * Thread-safe: a loader may repack several matrices at once.
 */
int ab_quant_repack(uint32_t type, const void *W, int64_t R, int64_t C, void **out,
		    uint32_t *out_type);

/* Which kernels run: "avx2" or "scalar" (ab_quant_avx2() says the same
 * as a bool, cheap enough for hot paths). ab_quant_force_scalar() is for
 * tests that compare both. */
const char *ab_quant_backend(void);
bool ab_quant_avx2(void);
void ab_quant_force_scalar(bool on);

#endif
