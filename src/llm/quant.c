/*
 * quant.c - the tensor types of the engine and the numeric kernels on
 * them: f16/bf16 conversion, dequantisation and quantisation of the ggml
 * block formats (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, Q8_K), and
 * ab_matmul, the weight-times-activations product that dominates the
 * forward pass.
 *
 * Arithmetic. Dequantisation follows ggml's float32 operation order so
 * that the result is bit-identical to ggml's to_float (the reference
 * files check a sha256 of it): Q4_K is (d*sc)*q - dmin*m, Q6_K is
 * (d*sc)*q, and this file is compiled in ISO C mode (-std=c17, which
 * implies -ffp-contract=off), so nothing is fused into an FMA behind our
 * back. Products round the activations to the weight's "dot type" first,
 * as llama.cpp's CPU backend does (Q8_0 for Q4_0/Q8_0 weights, Q8_K for
 * Q4_K/Q6_K, f16 for F16, bf16 for BF16, nothing for F32); the Q8_0
 * rounding is the one of ggml's x86 SIMD path (id = 127/amax, round half
 * to even), the Q8_K one ggml's reference (iscale = -127/max).
 *
 * Kernel dispatch. Every weight type has a "row kernel" that computes the
 * dot product of one weight row with up to MM_TB already-rounded
 * activation rows. There are two implementations of each: a portable
 * scalar one and an AVX2+FMA+F16C one compiled with
 * __attribute__((target(...))) so that the rest of the library stays
 * baseline x86-64 (or any other architecture: the AVX2 code is only
 * compiled on x86). The choice is made per call from a CPU probe done
 * once (__builtin_cpu_supports) and ab_quant_force_scalar(), which tests
 * use to compare the two. The integer kernels (Q4_0, Q8_0, Q4_K, Q6_K)
 * are bit-identical between the two backends by construction: the block
 * formats' integer dot products are exact, and the float accumulation is
 * done in the same order in both. For Q4_0/Q8_0 the AVX2 kernel keeps
 * eight float lanes (lane l holds the products of the bytes 4l..4l+3 of
 * each 32-value block); blocks go by in groups of four whose scaled lane
 * values are chained with FMA (d0*s0, then fma) and added into one
 * accumulator a row, the weight scales of a group converted by one F16C
 * instruction and the activation scales converted to float once per
 * matmul; the scalar kernel emulates exactly those lanes with fmaf() and
 * the same final reduction. A Q4_0 block's nibbles are decoded with a
 * vbroadcasti128 load, one variable shift and one and (measured ~5-10%
 * faster at T = 1 than load + shift + vinserti128 + and; a two-row form
 * sharing activation loads and gathering the f16 scales with integer
 * operations were tried as well and measured no faster, so they are
 * not here). Where the CPU has AVX-VNNI (checked with
 * CPUID; AB_QUANT_NO_VNNI=1 disables it for testing) the Q4_0/Q8_0 lane
 * sums are taken with vpdpbusd instead of vpmaddubsw + vpmaddwd: the same
 * exact integers (for Q4_0 the nibbles are used unsigned and -8 * the
 * lane's activation byte sum, precomputed per activation block, is the
 * accumulator's start), so still bit-identical.
 *
 * Repacked Q4_0 (AB_TYPE_Q4_0_X8). Profiling generation on the 1.1B Q4_0
 * model showed ~85% of the time in the Q4_0 kernel, and the kernel
 * compute-bound, not memory-bound: ~6 cycles a block (~11 vector uops,
 * at the machine's ~3 vector ops a cycle), i.e. 9-10 GB/s of weights a
 * core from L2 against ~10 GB/s a core that a plain read loop gets from
 * DRAM. The cost is structural: with one row's block in a vector, its
 * eight lanes are eight partial sums of one row, so every block needs
 * its own convert, scale and FMA, and the row a horizontal sum. So
 * ab_quant_repack (called by the model loader) rewrites a Q4_0 matrix
 * into groups of eight rows: per block column 144 bytes, the eight f16
 * scales and then, for c = 0..3, bytes 4c..4c+3 of each row's nibbles.
 * Then lane r of every vector is row r: the low and high nibbles of the
 * four 32-byte chunks are eight vectors W_k (values 4k..4k+3 of each
 * row), and eight vpdpbusd (or vpmaddubsw, summed in int16, then one
 * vpmaddwd) against the activation block's dword k broadcast give the
 * exact integer dots of eight rows at once; one convert, one multiply
 * (row scales times the activation scale) and one FMA finish eight
 * rows. The -8 offset comes in as -8 * the activation block's byte sum
 * (precomputed, the aux words). The float arithmetic of this type,
 * shared by scalar and SIMD kernels: a[b % 2] = fmaf(isum_b, dw_b * dx_b,
 * a[b % 2]) over the blocks, row value a[0] + a[1] (two chains so the
 * FMA latency does not bind at T = 1); it differs from plain Q4_0's lane
 * order only by float rounding. Measured on the kernel bench (5632 x
 * 2048, same run, loaded machine): T = 1 about 2-3x, T = 128 about 2x
 * faster than plain Q4_0. The same size as the original, so the loader
 * drops the file's pages after copying (RSS unchanged). Rows must come
 * in multiples of 8; other shapes stay plain Q4_0. Tried, not faster:
 * storing the activation bytes 32-byte aligned apart from their scales
 * (no split loads) for the plain kernels.
 *
 * Repacked Q8_0 (AB_TYPE_Q8_0_X8). The plain Q8_0 kernel has the same
 * structure, and was as compute-bound (~8 GB/s a core on cache-resident
 * weights), so Q8_0 gets the same eight-row layout: per block column 272
 * bytes, the eight f16 scales, then for k = 0..7 the bytes 4k..4k+3 of
 * each row, stored plus 128 (unsigned, vpdpbusd's left operand; the
 * accumulator starts at -128 * the activation block's byte sum); the
 * same float arithmetic as Q4_0_X8. Measured with the 1.1B Q8_0 model
 * (2 threads, same runs, alternating, medians of 4; a loaded machine):
 * generation 1.5-1.6x, prompt 2.4-2.6x, CPU time 12.5 -> 8.3 s, at the
 * price of the copy at load (+1.3-2.5 s here; the plain type was used in
 * place from the mapping, so time to first token still drops by half).
 *
 * The repack itself moves a group's bytes as a dword transpose in AVX2
 * registers with the eight source rows prefetched (the scalar form is
 * kept for other CPUs and checked byte-identical by the tests), and the
 * copy's pages are populated by one madvise call; what remains of the
 * load cost is mostly the kernel zeroing fresh pages. Tried, not kept:
 * transparent huge pages for the copies (MADV_HUGEPAGE: no measurable
 * gain in the kernels, and on this VM clearing fresh 2 MiB pages made
 * loading slower), MADV_POPULATE_READ on the source (within noise), and
 * repacking several matrices at once on a pool of one thread per core
 * (no gain on this loaded 2-core machine: 725 vs 732 ms for the 1.1B
 * Q4_0 model, 1.32 vs 1.52 s for Q8_0, medians of 6).
 *
 * Repacked Q4_K and Q6_K (AB_TYPE_Q4_K_X8, AB_TYPE_Q6_K_X8). The plain
 * K-quant kernels were as compute-bound (kernel bench, one thread,
 * cache-resident: Q4_K ~10 GB/s at T = 1, ~40-57 GFLOP/s at T = 128):
 * every super-block of a row needs its 6-bit scales unpacked and
 * shuffled into place, and two horizontal sums per activation row. So
 * they get eight-row layouts too (see grp_q4_k_x8_scalar and
 * grp_q6_k_x8_scalar): per super-block column the eight rows' d (and
 * dmin), the scales (and Q4_K's mins) already decoded to bytes, lane r
 * of every vector row r, and the quants as dwords of four bytes a row
 * (Q4_K's nibbles and Q6_K's ql/qh bytes keep their ggml bit positions,
 * so the repack is a dword transpose). A sub-block's exact dot for eight
 * rows is eight vpdpbusd (or vpmaddubsw summed in int16), times the rows'
 * scales by one vpmulld (or vpmaddwd); the mins (Q4_K) and the -32 offset
 * (Q6_K) come from the activation's bsums. The float steps are the plain
 * kernels' own (dd * isum - dm * msum added into one chain over the
 * super-blocks), so the repacked products are bit-identical to the plain
 * ones, logits included. Q4_K_X8 is 148 bytes a super-block and row (the
 * decoded scales), Q6_K_X8 the original 210. The vpmulld by the scales
 * takes as many multiplier uops as two vpdpbusd, so with AVX-VNNI these
 * reach ~80% of Q4_0_X8's rate rather than all of it, and the plain
 * AVX2 form is within noise of the VNNI one (Q6_K's VNNI variant is the
 * AVX2 one with the last vpmaddwd and add fused into vpdpwssd). Measured
 * on the kernel bench (5632 x 2048, best of alternating runs, two
 * sessions, loaded 2-core machine; one thread): Q4_K T = 1 10-11 -> 16-19
 * GB/s from cache, 5-5.3 -> 10-10.5 GB/s from DRAM (AB_BENCH_MB=600),
 * T = 128 41-57 -> 94-131 GFLOP/s; Q6_K T = 1 9.3 -> 17-18 GB/s (DRAM
 * 5.1-5.4 -> 10.4-11), T = 128 43-49 -> 75-100 GFLOP/s; on the 1.1B Q4_K
 * model (2 threads, medians of 3) prompt ~32 -> ~76-89 tok/s and
 * generation ~14-14.5 -> ~24-26 tok/s, the same tokens. Repacking is
 * done only on CPUs with AVX2: the scalar kernels of these layouts are
 * references, 1.5-3x slower than the plain scalar kernels.
 *
 * The plain K-quant kernels reduce each
 * 256-value super-block to one integer and accumulate in a scalar float.
 * The float kernels (F32, F16, BF16) use FMA on eight lanes in AVX2 and
 * plain multiply-add in scalar, so they agree to float32 rounding only.
 *
 * Threading. ab_matmul works in two parallel phases on the caller's pool
 * (struct ab_pool, pool.c; NULL runs serially). Phase one rounds the T
 * activation rows to the dot type into one shared buffer (in parallel
 * over rows when T is large; for T = 1 the caller does it alone since a
 * pool round trip costs more than the work). Phase two splits the R
 * output rows into nth contiguous ranges, one per thread, so that every
 * weight row is read from memory exactly once per call whatever T is:
 * generation (T = 1) is a memory-bandwidth-bound matrix-vector product
 * and each thread streams its own slice of the weights. Inside a range,
 * rows are taken in tiles of MM_RT rows; for each tile the activation
 * rows go by in groups of MM_TB so that a tile of weights stays in L1/L2
 * while all activation rows pass over it, and the row kernels decode a
 * weight block once for the MM_TB activation rows of a group (matrix-
 * matrix form for prompt evaluation). The X8 types go by groups of eight
 * rows (the thread chunks are multiples of 8) with the same tiling.
 */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "quant_amx.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#define AB_X86 1
#include <cpuid.h>
#include <immintrin.h>
/* AVX-VNNI intrinsics (_mm256_dpbusd_avx_epi32): GCC 11, clang 12 */
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11)
#define HAVE_AVXVNNI 1
#else
#define HAVE_AVXVNNI 0
#endif
#else
#define AB_X86 0
#define HAVE_AVXVNNI 0
#endif

/* ---- block layouts (ggml's, byte for byte) ---- */

#define QK 32   /* Q4_0 / Q8_0 block */
#define QKK 256 /* K-quant super-block */

struct blk_q4_0 {
	uint16_t d;
	uint8_t qs[QK / 2];
};
struct blk_q8_0 {
	uint16_t d;
	int8_t qs[QK];
};
struct blk_q4_k {
	uint16_t d;
	uint16_t dmin;
	uint8_t scales[12];
	uint8_t qs[QKK / 2];
};
struct blk_q6_k {
	uint8_t ql[QKK / 2];
	uint8_t qh[QKK / 4];
	int8_t scales[QKK / 16];
	uint16_t d;
};
struct blk_q8_k {
	float d;
	int8_t qs[QKK];
	int16_t bsums[QKK / 16];
};

_Static_assert(sizeof(struct blk_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(struct blk_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(struct blk_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(struct blk_q6_k) == 210, "q6_k layout");
_Static_assert(sizeof(struct blk_q8_k) == 292, "q8_k layout");

/* ---- type table ---- */

static const struct ab_type_info TYPES[AB_TYPE__MAX] = {
	[AB_TYPE_F32] = {"F32", 1, 4, true},
	[AB_TYPE_F16] = {"F16", 1, 2, true},
	[AB_TYPE_Q4_0] = {"Q4_0", 32, 18, true},
	[AB_TYPE_Q4_1] = {"Q4_1", 32, 20, false},
	[AB_TYPE_Q5_0] = {"Q5_0", 32, 22, false},
	[AB_TYPE_Q5_1] = {"Q5_1", 32, 24, false},
	[AB_TYPE_Q8_0] = {"Q8_0", 32, 34, true},
	[AB_TYPE_Q8_1] = {"Q8_1", 32, 36, false},
	[AB_TYPE_Q2_K] = {"Q2_K", 256, 84, false},
	[AB_TYPE_Q3_K] = {"Q3_K", 256, 110, false},
	[AB_TYPE_Q4_K] = {"Q4_K", 256, 144, true},
	[AB_TYPE_Q5_K] = {"Q5_K", 256, 176, false},
	[AB_TYPE_Q6_K] = {"Q6_K", 256, 210, true},
	/* activations only: dequantise/quantise, no weight product */
	[AB_TYPE_Q8_K] = {"Q8_K", 256, 292, false},
	[16] = {"IQ2_XXS", 256, 66, false},
	[17] = {"IQ2_XS", 256, 74, false},
	[18] = {"IQ3_XXS", 256, 98, false},
	[19] = {"IQ1_S", 256, 50, false},
	[20] = {"IQ4_NL", 32, 18, false},
	[21] = {"IQ3_S", 256, 110, false},
	[22] = {"IQ2_S", 256, 82, false},
	[23] = {"IQ4_XS", 256, 136, false},
	[24] = {"I8", 1, 1, false},
	[25] = {"I16", 1, 2, false},
	[26] = {"I32", 1, 4, false},
	[27] = {"I64", 1, 8, false},
	[28] = {"F64", 1, 8, false},
	[29] = {"IQ1_M", 256, 56, false},
	[AB_TYPE_BF16] = {"BF16", 1, 2, true},
	[34] = {"TQ1_0", 256, 54, false},
	[35] = {"TQ2_0", 256, 66, false},
	/* ours, not GGUF's: only ab_matmul reads it */
	[AB_TYPE_Q4_0_X8] = {"Q4_0_X8", 32, 18, false},
	[AB_TYPE_Q8_0_X8] = {"Q8_0_X8", 32, 34, false},
	[AB_TYPE_Q4_K_X8] = {"Q4_K_X8", 256, 148, false},
	[AB_TYPE_Q6_K_X8] = {"Q6_K_X8", 256, 210, false},
};

const struct ab_type_info *ab_type_get(uint32_t type)
{
	if (type >= AB_TYPE__MAX || !TYPES[type].name)
		return NULL;
	return &TYPES[type];
}

size_t ab_type_row_bytes(uint32_t type, int64_t n)
{
	const struct ab_type_info *ti = ab_type_get(type);
	if (!ti || n < 0 || n % ti->block)
		return 0;
	return (size_t)(n / ti->block) * ti->block_bytes;
}

int ab_type_parse(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < AB_TYPE__MAX; i++)
		if (TYPES[i].name && !strcasecmp(TYPES[i].name, name))
			return i;
	return -1;
}

/* ---- f16 / bf16 ---- */

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float ab_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	if (exp == 0x1f) /* inf, or nan quietened with its payload (as F16C) */
		return u2f(sign | 0x7f800000 | (man ? 0x400000 | (man << 13) : 0));
	if (exp == 0) {
		if (man == 0)
			return u2f(sign);
		/* subnormal: man * 2^-24, exact in float */
		float v = (float)man * 0x1p-24f;
		return u2f(sign | f2u(v));
	}
	return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ab_f32_to_f16(float f)
{
	uint32_t x = f2u(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	x &= 0x7fffffff;
	if (x >= 0x7f800000) {
		if (x == 0x7f800000)
			return sign | 0x7c00;
		/* nan: quiet it, keep the top of the payload (as vcvtps2ph) */
		return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
	}
	if (x >= 0x477ff000) /* >= 65520 rounds to infinity */
		return sign | 0x7c00;
	if (x >= 0x38800000) { /* normal half */
		uint32_t h = (x - (112u << 23)) >> 13;
		uint32_t rem = x & 0x1fff;
		if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	if (x < 0x33000000) /* below 2^-25: zero (2^-25 itself ties to 0) */
		return sign;
	/* subnormal half: round(value / 2^-24), ties to even */
	uint32_t e = x >> 23;
	uint32_t man = (x & 0x7fffff) | 0x800000;
	uint32_t shift = 126 - e; /* 14..24 */
	uint32_t h = man >> shift;
	uint32_t rem = man & ((1u << shift) - 1);
	uint32_t half = 1u << (shift - 1);
	if (rem > half || (rem == half && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

float ab_bf16_to_f32(uint16_t h)
{
	return u2f((uint32_t)h << 16);
}

uint16_t ab_f32_to_bf16(float f)
{
	uint32_t u = f2u(f);
	if ((u & 0x7fffffff) > 0x7f800000) /* nan: force quiet */
		return (uint16_t)((u >> 16) | 0x40);
	return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

#define F16(h) ab_f16_to_f32(h)

/* Round to nearest, ties to even, for |v| < 2^22 (like ggml's nearest_int). */
static int round_even(float v)
{
	float t = v + 12582912.0f;
	int32_t i;
	memcpy(&i, &t, 4);
	return (i & 0x007fffff) - 0x00400000;
}

/* ---- dequantisation ---- */

static void deq_q4_0(const struct blk_q4_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK) {
		float d = F16(b[i].d);
		for (int j = 0; j < QK / 2; j++) {
			y[j] = (float)((b[i].qs[j] & 0xf) - 8) * d;
			y[j + QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
		}
	}
}

static void deq_q8_0(const struct blk_q8_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK) {
		float d = F16(b[i].d);
		for (int j = 0; j < QK; j++)
			y[j] = (float)b[i].qs[j] * d;
	}
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K super-block. */
static void k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

static void deq_q4_k(const struct blk_q4_k *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = F16(b[i].d), dmin = F16(b[i].dmin);
		const uint8_t *q = b[i].qs;
		for (int j = 0; j < QKK; j += 64, q += 32) {
			uint8_t sc, m;
			k4_scale_min(j / 32, b[i].scales, &sc, &m);
			float d1 = d * (float)sc, m1 = dmin * (float)m;
			k4_scale_min(j / 32 + 1, b[i].scales, &sc, &m);
			float d2 = d * (float)sc, m2 = dmin * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)(q[l] & 0xf) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)(q[l] >> 4) - m2;
		}
	}
}

static void deq_q6_k(const struct blk_q6_k *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = F16(b[i].d);
		const uint8_t *ql = b[i].ql, *qh = b[i].qh;
		const int8_t *sc = b[i].scales;
		for (int n = 0; n < QKK; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
				int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
				int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
				y[l] = d * (float)sc[is] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
		}
	}
}

static void deq_q8_k(const struct blk_q8_k *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QKK)
		for (int j = 0; j < QKK; j++)
			y[j] = b[i].d * (float)b[i].qs[j];
}

int ab_dequantize(uint32_t type, const void *src, float *dst, int64_t n)
{
	const struct ab_type_info *ti = ab_type_get(type);
	if (!ti || n < 0 || n % ti->block || (n && (!src || !dst)))
		return AB_EINVAL;
	int64_t nb = n / ti->block;
	switch (type) {
	case AB_TYPE_F32:
		memcpy(dst, src, (size_t)n * 4);
		return 0;
	case AB_TYPE_F16: {
		const uint16_t *s = src;
		for (int64_t i = 0; i < n; i++)
			dst[i] = ab_f16_to_f32(s[i]);
		return 0;
	}
	case AB_TYPE_BF16: {
		const uint16_t *s = src;
		for (int64_t i = 0; i < n; i++)
			dst[i] = ab_bf16_to_f32(s[i]);
		return 0;
	}
	case AB_TYPE_Q4_0:
		deq_q4_0(src, dst, nb);
		return 0;
	case AB_TYPE_Q8_0:
		deq_q8_0(src, dst, nb);
		return 0;
	case AB_TYPE_Q4_K:
		deq_q4_k(src, dst, nb);
		return 0;
	case AB_TYPE_Q6_K:
		deq_q6_k(src, dst, nb);
		return 0;
	case AB_TYPE_Q8_K:
		deq_q8_k(src, dst, nb);
		return 0;
	default:
		return AB_EINVAL;
	}
}

/* ---- quantisation ---- */

/* Q8_0 as ggml's x86 SIMD path rounds activations: d = amax/127 stored
 * as f16, q = round-half-even(x * (127/amax)). */
static void quant_q8_0(const float *x, struct blk_q8_0 *b, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK) {
		float amax = 0.0f;
		for (int j = 0; j < QK; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		b[i].d = ab_f32_to_f16(amax / 127.0f);
		/* below ~3.7e-37 the inverse overflows (and the f16 scale is 0
		 * already): zero quants, in both forms */
		float id = amax != 0.0f ? 127.0f / amax : 0.0f;
		if (id > FLT_MAX)
			id = 0.0f;
		for (int j = 0; j < QK; j++)
			b[i].qs[j] = (int8_t)round_even(x[j] * id);
	}
}

/* Q4_0 as ggml's reference quantiser: d = max / -8 (max = the value of
 * largest magnitude, with its sign), q = trunc(x/d + 8.5) clamped to 15. */
static void quant_q4_0(const float *x, struct blk_q4_0 *b, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK) {
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QK; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -8.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		b[i].d = ab_f32_to_f16(d);
		for (int j = 0; j < QK / 2; j++) {
			int q0 = (int)(int8_t)(x[j] * id + 8.5f);
			int q1 = (int)(int8_t)(x[j + QK / 2] * id + 8.5f);
			q0 = q0 > 15 ? 15 : q0 < 0 ? 0 : q0;
			q1 = q1 > 15 ? 15 : q1 < 0 ? 0 : q1;
			b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

/* Q8_K as ggml's reference: iscale = -127/max, q = min(127, round(x*iscale)),
 * d = 1/iscale, bsums = sums of 16 consecutive q. */
static void quant_q8_k(const float *x, struct blk_q8_k *b, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QKK) {
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QKK; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
		if (amax == 0.0f || fabsf(iscale) > FLT_MAX) {
			/* zeros, or so small that the inverse overflows: zeros */
			memset(&b[i], 0, sizeof(b[i]));
			continue;
		}
		for (int j = 0; j < QKK; j++) {
			int v = round_even(iscale * x[j]);
			b[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
		}
		for (int g = 0; g < QKK / 16; g++) {
			int s = 0;
			for (int j = 0; j < 16; j++)
				s += b[i].qs[g * 16 + j];
			b[i].bsums[g] = (int16_t)s;
		}
		b[i].d = 1.0f / iscale;
	}
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Fits x[0..n) ~ s*q - m with q in 0..nmax: starts from the min/max
 * range and refines (s, m) by least squares for the chosen q a few
 * times. m >= 0 (a non-positive minimum), as Q4_K stores it. */
static void fit_affine(const float *x, int n, int nmax, float *ps, float *pm)
{
	float mn = 0.0f, mx = x[0];
	for (int i = 0; i < n; i++) {
		mn = fminf(mn, x[i]);
		mx = fmaxf(mx, x[i]);
	}
	float s = (mx - mn) / (float)nmax, m = -mn;
	if (s <= 0.0f) {
		*ps = 0.0f;
		*pm = m;
		return;
	}
	float best_err = INFINITY, bs = s, bm = m;
	for (int it = 0; it < 4; it++) {
		double sq = 0, sqq = 0, sx = 0, sxq = 0, err = 0;
		for (int i = 0; i < n; i++) {
			int q = clampi((int)lrintf((x[i] + m) / s), 0, nmax);
			double e = (double)s * q - m - x[i];
			err += e * e;
			sq += q;
			sqq += (double)q * q;
			sx += x[i];
			sxq += (double)x[i] * q;
		}
		if (err < best_err) {
			best_err = (float)err;
			bs = s;
			bm = m;
		}
		/* minimise sum (s q - m - x)^2 over s, m */
		double det = n * sqq - sq * sq;
		if (det <= 0)
			break;
		double ns = (n * sxq - sq * sx) / det;
		double nm = (ns * sq - sx) / n;
		if (ns <= 0 || nm < 0)
			break;
		s = (float)ns;
		m = (float)nm;
	}
	*ps = bs;
	*pm = bm;
}

static void quant_q4_k(const float *x, struct blk_q4_k *b, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QKK) {
		float sc[8], mn[8], maxs = 0.0f, maxm = 0.0f;
		for (int j = 0; j < 8; j++) {
			fit_affine(x + 32 * j, 32, 15, &sc[j], &mn[j]);
			maxs = fmaxf(maxs, sc[j]);
			maxm = fmaxf(maxm, mn[j]);
		}
		float d = maxs / 63.0f, dmin = maxm / 63.0f;
		b[i].d = ab_f32_to_f16(d);
		b[i].dmin = ab_f32_to_f16(dmin);
		d = F16(b[i].d);
		dmin = F16(b[i].dmin);
		uint8_t ls[8], lm[8];
		for (int j = 0; j < 8; j++) {
			ls[j] = (uint8_t)(d > 0.0f ? clampi((int)lrintf(sc[j] / d), 0, 63) : 0);
			lm[j] = (uint8_t)(dmin > 0.0f ? clampi((int)lrintf(mn[j] / dmin), 0, 63) : 0);
		}
		memset(b[i].scales, 0, 12);
		for (int j = 0; j < 8; j++) {
			if (j < 4) {
				b[i].scales[j] = ls[j];
				b[i].scales[j + 4] = lm[j];
			} else {
				b[i].scales[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
				b[i].scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
				b[i].scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
			}
		}
		uint8_t q[QKK];
		for (int j = 0; j < 8; j++) {
			float ds = d * (float)ls[j], dm = dmin * (float)lm[j];
			for (int l = 0; l < 32; l++)
				q[32 * j + l] = (uint8_t)(ds > 0.0f ? clampi((int)lrintf((x[32 * j + l] + dm) / ds), 0, 15) : 0);
		}
		for (int j = 0; j < QKK; j += 64)
			for (int l = 0; l < 32; l++)
				b[i].qs[j / 2 + l] = (uint8_t)(q[j + l] | (q[j + 32 + l] << 4));
	}
}

static void quant_q6_k(const float *x, struct blk_q6_k *b, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QKK) {
		float sc[16], amaxs = 0.0f, maxs = 0.0f;
		for (int g = 0; g < 16; g++) {
			float amax = 0.0f, max = 0.0f;
			for (int l = 0; l < 16; l++)
				if (fabsf(x[16 * g + l]) > amax) {
					amax = fabsf(x[16 * g + l]);
					max = x[16 * g + l];
				}
			sc[g] = max / -32.0f;
			if (fabsf(sc[g]) > amaxs) {
				amaxs = fabsf(sc[g]);
				maxs = sc[g];
			}
		}
		float d = maxs / -127.0f;
		b[i].d = ab_f32_to_f16(d);
		d = F16(b[i].d);
		uint8_t q[QKK];
		for (int g = 0; g < 16; g++) {
			int ls = d != 0.0f ? clampi((int)lrintf(sc[g] / d), -128, 127) : 0;
			b[i].scales[g] = (int8_t)ls;
			float ds = d * (float)ls;
			for (int l = 0; l < 16; l++) {
				int v = ds != 0.0f ? (int)lrintf(x[16 * g + l] / ds) : 0;
				q[16 * g + l] = (uint8_t)(clampi(v, -32, 31) + 32);
			}
		}
		for (int n = 0; n < QKK; n += 128) {
			uint8_t *ql = b[i].ql + n / 2, *qh = b[i].qh + n / 4;
			for (int l = 0; l < 32; l++) {
				const uint8_t *qq = q + n;
				ql[l] = (uint8_t)((qq[l] & 0xf) | ((qq[l + 64] & 0xf) << 4));
				ql[l + 32] = (uint8_t)((qq[l + 32] & 0xf) | ((qq[l + 96] & 0xf) << 4));
				qh[l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
						  ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
			}
		}
	}
}

static bool use_avx2(void);
#if AB_X86
/* quant_q8_0 with eight lanes: the same amax, the same f16 scale, the same
 * products x * id rounded half to even by vcvtps2dq (the default MXCSR
 * mode), so the same bytes (for finite input). */
__attribute__((target("avx2,fma,f16c"))) static void quant_q8_0_avx2(const float *x, struct blk_q8_0 *b,
								      int64_t nb)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	for (int64_t i = 0; i < nb; i++, x += QK) {
		__m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
		__m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
		__m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
					 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		float amax = _mm_cvtss_f32(h);
		/* F16C rounds to nearest even as ab_f32_to_f16 does (the tests
		 * compare every float's conversion) */
		b[i].d = (uint16_t)_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
		float idf = amax != 0.0f ? 127.0f / amax : 0.0f;
		__m256 id = _mm256_set1_ps(idf > FLT_MAX ? 0.0f : idf); /* as quant_q8_0 */
		__m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
		__m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
		__m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
		__m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
		__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
		_mm256_storeu_si256((__m256i *)(void *)b[i].qs, _mm256_permutevar8x32_epi32(p, perm));
	}
}

/* quant_q8_k with eight lanes: amax as the largest |x| (a NaN never
 * wins, as in the scalar loop), max the first element of that magnitude,
 * the same iscale, products rounded half to even by vcvtps2dq (as
 * round_even), the same clamp at 127 and sums: the same bytes for finite
 * input. */
__attribute__((target("avx2,fma,f16c"))) static void quant_q8_k_avx2(const float *x, struct blk_q8_k *b,
								      int64_t nb)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	for (int64_t i = 0; i < nb; i++, x += QKK) {
		__m256 m = _mm256_setzero_ps();
		for (int j = 0; j < QKK; j += 8)
			m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		float amax = _mm_cvtss_f32(h);
		float max = 0.0f;
		for (int j = 0; j < QKK && amax != 0.0f; j++)
			if (fabsf(x[j]) == amax) {
				max = x[j];
				break;
			}
		float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
		if (amax == 0.0f || fabsf(iscale) > FLT_MAX) { /* as quant_q8_k */
			memset(&b[i], 0, sizeof(b[i]));
			continue;
		}
		__m256 is = _mm256_set1_ps(iscale);
		const __m256i top = _mm256_set1_epi32(127);
		for (int j = 0; j < QKK; j += 32) {
			__m256i q[4];
			for (int k = 0; k < 4; k++)
				q[k] = _mm256_min_epi32(
					_mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + j + 8 * k))), top);
			__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
			p = _mm256_permutevar8x32_epi32(p, perm);
			_mm256_storeu_si256((__m256i *)(void *)(b[i].qs + j), p);
			/* the sums of the two groups of sixteen: bytes widened
			 * to 16 bits and added in pairs, exact */
			__m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p));
			__m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1));
			int16_t s0[16], s1[16];
			_mm256_storeu_si256((__m256i *)(void *)s0, w0);
			_mm256_storeu_si256((__m256i *)(void *)s1, w1);
			int a0 = 0, a1 = 0;
			for (int k = 0; k < 16; k++)
				a0 += s0[k], a1 += s1[k];
			b[i].bsums[j / 16] = (int16_t)a0;
			b[i].bsums[j / 16 + 1] = (int16_t)a1;
		}
		b[i].d = 1.0f / iscale;
	}
}
#endif

int ab_quantize(uint32_t type, const float *src, void *dst, int64_t n)
{
	const struct ab_type_info *ti = ab_type_get(type);
	if (!ti || n < 0 || n % ti->block || (n && (!src || !dst)))
		return AB_EINVAL;
	int64_t nb = n / ti->block;
	switch (type) {
	case AB_TYPE_F32:
		memcpy(dst, src, (size_t)n * 4);
		return 0;
	case AB_TYPE_F16:
		ab_f32_to_f16_row(src, dst, n);
		return 0;
	case AB_TYPE_BF16: {
		uint16_t *d = dst;
		for (int64_t i = 0; i < n; i++)
			d[i] = ab_f32_to_bf16(src[i]);
		return 0;
	}
	case AB_TYPE_Q4_0:
		quant_q4_0(src, dst, nb);
		return 0;
	case AB_TYPE_Q8_0:
#if AB_X86
		if (use_avx2()) {
			quant_q8_0_avx2(src, dst, nb);
			return 0;
		}
#endif
		quant_q8_0(src, dst, nb);
		return 0;
	case AB_TYPE_Q4_K:
		quant_q4_k(src, dst, nb);
		return 0;
	case AB_TYPE_Q6_K:
		quant_q6_k(src, dst, nb);
		return 0;
	case AB_TYPE_Q8_K:
#if AB_X86
		if (use_avx2()) {
			quant_q8_k_avx2(src, dst, nb);
			return 0;
		}
#endif
		quant_q8_k(src, dst, nb);
		return 0;
	default:
		return AB_EINVAL;
	}
}

/* ---- row kernels ----
 * rowdot(n, w, x, xs, nx, out): out[j] = dot(weight row w, activation
 * row x + j*xs) for j < nx <= MM_TB, n elements, x already in the dot
 * type. */

#define MM_TB 4
/* Per activation row in the Q8_0 dot type, the auxiliary words next to the
 * blocks: nb float scales, then for each block the eight int32 values
 * -8 * (sum of bytes 4l..4l+3) (the Q4_0 offset, folded into the VNNI
 * kernel's accumulator), then for each block one int32, -8 * (sum of its
 * 32 bytes) (the same offset for the Q4_0_X8 kernels). AUXW(nb) 4-byte
 * words a row. */
#define AUXW(nb) ((size_t)(nb) * 10)
#define AUX_LS(nb) ((size_t)(nb))      /* offset of the lane offsets */
#define AUX_BS(nb) ((size_t)(nb) * 9)  /* offset of the block offsets */
typedef void (*rowdot_fn)(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out);
/* The same for a group of eight interleaved rows (Q4_0_X8): nb blocks,
 * out[8 t + r]. */
typedef void (*grpdot_fn)(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd, int nx,
			  float *out);

/* The fixed reduction order of eight float lanes, shared by both backends. */
static float reduce8(const float *a)
{
	return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* Q4_0/Q8_0 x Q8_0, the float arithmetic shared by both backends: eight
 * lanes (lane l: the integer dot of bytes 4l..4l+3 of a block, exact).
 * The blocks go by in groups of four (the last group may be shorter); a
 * group's contribution is p = d0 * s0, then p = fmaf(dk, sk, p) for its
 * further blocks in order (dk = weight scale * activation scale), and the
 * accumulator takes acc = acc + p; at the end the lanes are reduced by
 * reduce8. So the vector kernels have one add chain per four blocks and
 * need one accumulator per activation row. xd holds the activation
 * blocks' scales as float (row t at xd + t * AUXW(nb)). */
#define QGROUP 4

static void dot_q4_0_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	const struct blk_q4_0 *wb = w;
	int64_t nb = n / QK;
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_0 *xb = (const void *)((const char *)x + (size_t)t * xs);
		const float *xdt = xd + (size_t)t * AUXW(nb);
		float acc[8] = {0}, p[8] = {0};
		for (int64_t i = 0; i < nb; i++) {
			float d = F16(wb[i].d) * xdt[i];
			for (int l = 0; l < 8; l++) {
				int s = 0;
				for (int k = 4 * l; k < 4 * l + 4; k++) {
					int q = k < 16 ? (wb[i].qs[k] & 0xf) : (wb[i].qs[k - 16] >> 4);
					s += (q - 8) * xb[i].qs[k];
				}
				p[l] = i % QGROUP == 0 ? d * (float)s : fmaf(d, (float)s, p[l]);
			}
			if (i % QGROUP == QGROUP - 1 || i == nb - 1)
				for (int l = 0; l < 8; l++)
					acc[l] = acc[l] + p[l];
		}
		out[t] = reduce8(acc);
	}
}

static void dot_q8_0_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	const struct blk_q8_0 *wb = w;
	int64_t nb = n / QK;
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_0 *xb = (const void *)((const char *)x + (size_t)t * xs);
		const float *xdt = xd + (size_t)t * AUXW(nb);
		float acc[8] = {0}, p[8] = {0};
		for (int64_t i = 0; i < nb; i++) {
			float d = F16(wb[i].d) * xdt[i];
			for (int l = 0; l < 8; l++) {
				int s = 0;
				for (int k = 4 * l; k < 4 * l + 4; k++)
					s += wb[i].qs[k] * xb[i].qs[k];
				p[l] = i % QGROUP == 0 ? d * (float)s : fmaf(d, (float)s, p[l]);
			}
			if (i % QGROUP == QGROUP - 1 || i == nb - 1)
				for (int l = 0; l < 8; l++)
					acc[l] = acc[l] + p[l];
		}
		out[t] = reduce8(acc);
	}
}

/* Q4_0_X8 x Q8_0: a group of eight weight rows against nx <= MM_TB
 * activation rows, out[8 t + r]. Group layout: per block column b, 144
 * bytes at g + 144 b: the eight rows' f16 scales (16 bytes), then for
 * c = 0..3 the bytes 4c..4c+3 of the eight rows' nibble blocks, row after
 * row (32 bytes each). Arithmetic (both backends): for each block the
 * exact integer dot (nibbles times bytes, plus the activation block's
 * -8 * byte sum), then a[b % 2] = fmaf(isum, dw * dx, a[b % 2]); the row's
 * value is a[0] + a[1]. */
#define X8_BLK AB_X8_Q4_BLK /* 144: quant_amx.h reads the layout too */
static void grp_q4_0_x8_scalar(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd,
			       int nx, float *out)
{
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_0 *xb = (const void *)((const char *)x + (size_t)t * xs);
		const float *xdt = xd + (size_t)t * AUXW(nb);
		const int32_t *bs = (const int32_t *)(const void *)(xdt + AUX_BS(nb));
		for (int r = 0; r < 8; r++) {
			float a[2] = {0.0f, 0.0f};
			for (int64_t b = 0; b < nb; b++) {
				const uint8_t *blk = g + (size_t)b * X8_BLK;
				uint16_t h;
				memcpy(&h, blk + 2 * r, 2);
				int32_t isum = bs[b];
				for (int c = 0; c < 4; c++)
					for (int k = 0; k < 4; k++) {
						uint8_t v = blk[16 + 32 * c + 4 * r + k];
						isum += (v & 0xf) * xb[b].qs[4 * c + k] + (v >> 4) * xb[b].qs[16 + 4 * c + k];
					}
				float dd = F16(h) * xdt[b];
				a[b & 1] = fmaf((float)isum, dd, a[b & 1]);
			}
			out[8 * t + r] = a[0] + a[1];
		}
	}
}

/* Q8_0_X8 x Q8_0: as Q4_0_X8, the group layout per block column b, 272
 * bytes at g + 272 b: the eight rows' f16 scales, then for k = 0..7 the
 * bytes 4k..4k+3 of the eight rows' blocks, row after row (32 bytes each),
 * stored plus 128 (x ^ 0x80: unsigned 0..255, what vpdpbusd multiplies).
 * The same float arithmetic as Q4_0_X8 on the exact integer dot. */
#define X8Q8_BLK AB_X8_Q8_BLK /* 272 */
static void grp_q8_0_x8_scalar(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd,
			       int nx, float *out)
{
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_0 *xb = (const void *)((const char *)x + (size_t)t * xs);
		const float *xdt = xd + (size_t)t * AUXW(nb);
		for (int r = 0; r < 8; r++) {
			float a[2] = {0.0f, 0.0f};
			for (int64_t b = 0; b < nb; b++) {
				const uint8_t *blk = g + (size_t)b * X8Q8_BLK;
				uint16_t h;
				memcpy(&h, blk + 2 * r, 2);
				int32_t isum = 0;
				for (int k = 0; k < 8; k++)
					for (int i = 0; i < 4; i++)
						isum += ((int)blk[16 + 32 * k + 4 * r + i] - 128) * xb[b].qs[4 * k + i];
				float dd = F16(h) * xdt[b];
				a[b & 1] = fmaf((float)isum, dd, a[b & 1]);
			}
			out[8 * t + r] = a[0] + a[1];
		}
	}
}

/* Q4_K_X8 x Q8_K: a group of eight Q4_K weight rows against nx <= MM_TB
 * activation rows, out[8 t + r]. Group layout: per super-block column b,
 * X8K4_BLK = 1184 bytes (8 x 148: the 144 of the rows' blocks plus the
 * 6-bit scales and mins decoded to bytes) at g + 1184 b:
 *     0  the eight rows' d (f16), row after row
 *    16  the eight rows' dmin (f16)
 *    32  scales: byte 8 j + r = sub-block j's scale of row r (0..63)
 *    96  mins: byte 16 i + 2 r + e = the min of sub-block 2 i + e of
 *        row r, so that a 16-byte load widened to int16 (vpmovzxbw) has
 *        in dword lane r the pair (m[2i], m[2i+1]) of row r
 *   160  nibbles: 32 chunks of 32 bytes, chunk k holding bytes
 *        4k..4k+3 of each row's qs (row after row, one dword a row).
 * A Q4_K byte qs[32 p + l] holds value 64 p + l (low nibble, sub-block
 * 2 p) and value 64 p + 32 + l (high nibble, sub-block 2 p + 1), so the
 * low (j even) or high (j odd) nibbles of chunks 8 (j / 2) + c, c = 0..7,
 * are the values 32 j + 4c..4c+3 of the eight rows, one dword lane a
 * row, to multiply with the activation's dword at 32 j + 4 c broadcast.
 * Arithmetic (all backends, and the same as the plain Q4_K kernels, so
 * repacked and plain products are bit-identical): per super-block the
 * exact integers isum = sum_j sc_j * (sum of the 32 nibble * byte
 * products of sub-block j) and msum = sum_j m_j * (bsums[2j] +
 * bsums[2j+1]) (the pair sums precomputed per activation block, the aux
 * words, AUXK), then sum = sum + ((d * dx) * isum - (dmin * dx) * msum),
 * one chain over the super-blocks in order. */
/* the offsets, shared with quant_amx.c (quant_amx.h) */
#define X8K4_BLK AB_X8K4_BLK /* 1184 */
#define X8K4_SC AB_X8K4_SC   /* 32 */
#define X8K4_MN AB_X8K4_MN   /* 96 */
#define X8K4_QS AB_X8K4_QS   /* 160 */
/* Aux words of a Q8_K activation row (Q4_K_X8): per super-block four
 * words, the eight int16 bsums[2j] + bsums[2j+1], j = 0..7. */
#define AUXK(nb) ((size_t)(nb) * 4)
static void grp_q4_k_x8_scalar(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd,
			       int nx, float *out)
{
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_k *xb = (const void *)((const char *)x + (size_t)t * xs);
		const int16_t *bsp = (const int16_t *)(const void *)(xd + (size_t)t * AUXK(nb));
		float sum[8] = {0};
		for (int64_t b = 0; b < nb; b++) {
			const uint8_t *blk = g + (size_t)b * X8K4_BLK;
			int32_t is[8] = {0}, ms[8] = {0};
			for (int j = 0; j < 8; j++) {
				/* acc[4 r + k]: byte k of row r's dwords (the
				 * vector kernels' lanes, split by byte) */
				int32_t acc[32] = {0};
				const uint8_t *q = blk + X8K4_QS + 256 * (j / 2);
				int sh = 4 * (j & 1);
				for (int c = 0; c < 8; c++) {
					const int8_t *xq = xb[b].qs + 32 * j + 4 * c;
					for (int i = 0; i < 32; i++)
						acc[i] += ((q[32 * c + i] >> sh) & 0xf) * xq[i & 3];
				}
				for (int r = 0; r < 8; r++) {
					int32_t sub = acc[4 * r] + acc[4 * r + 1] + acc[4 * r + 2] + acc[4 * r + 3];
					is[r] += blk[X8K4_SC + 8 * j + r] * sub;
					ms[r] += blk[X8K4_MN + 16 * (j / 2) + 2 * r + (j & 1)] * bsp[8 * b + j];
				}
			}
			for (int r = 0; r < 8; r++) {
				uint16_t hd, hm;
				memcpy(&hd, blk + 2 * r, 2);
				memcpy(&hm, blk + 16 + 2 * r, 2);
				float dd = F16(hd) * xb[b].d, dm = F16(hm) * xb[b].d;
				sum[r] = sum[r] + (dd * (float)is[r] - dm * (float)ms[r]);
			}
		}
		for (int r = 0; r < 8; r++)
			out[8 * t + r] = sum[r];
	}
}

/* Q6_K_X8 x Q8_K: eight Q6_K rows interleaved, the same size as the
 * original. Per super-block column b, X8K6_BLK = 1680 bytes at g + 1680 b:
 *     0  the eight rows' d (f16)
 *    16  scales (int8): byte 16 i + 2 r + e = the scale of the 16 values
 *        32 i + 16 e.. of row r, so that a 16-byte load widened to int16
 *        (vpmovsxbw) has in dword lane r the pair of scales of sub-block i
 *   144  ql: 32 chunks of 32 bytes, chunk k = bytes 4k..4k+3 of each
 *        row's ql (row after row, one dword a row)
 *  1168  qh: 16 chunks, chunk m = bytes 4m..4m+3 of each row's qh.
 * In ggml's Q6_K, with j = 4 h + s the sub-block of the 32 values 32 j..
 * (h = 0, 1, s = 0..3), value 32 j + l (l < 32) has its low four bits in
 * ql byte 64 h + 32 (s & 1) + l (low nibble for s < 2, high for s >= 2)
 * and its top two in bits 2 s, 2 s + 1 of qh byte 32 h + l; so the values
 * 32 j + 4c..4c+3 of the eight rows are, one dword lane a row, the
 * nibbles of ql chunk 16 h + 8 (s & 1) + c and the bit pairs of qh chunk
 * 8 h + c. Arithmetic (all backends, and the plain Q6_K kernels', so
 * bit-identical to them): the exact integer is = sum over the sixteen
 * 16-value groups of sc * (sum of q * x, q unsigned 0..63) - 32 * sum of
 * sc * bsums (the -32 offset), then sum = sum + (d * dx) * is, one chain
 * over the super-blocks in order. */
#define X8K6_BLK 1680
#define X8K6_SC 16
#define X8K6_QL 144
#define X8K6_QH 1168
static void grp_q6_k_x8_scalar(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd,
			       int nx, float *out)
{
	(void)xd;
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_k *xb = (const void *)((const char *)x + (size_t)t * xs);
		float sum[8] = {0};
		for (int64_t b = 0; b < nb; b++) {
			const uint8_t *blk = g + (size_t)b * X8K6_BLK;
			int32_t is[8] = {0};
			for (int j = 0; j < 8; j++) {
				int h = j / 4, s = j % 4;
				const uint8_t *ql = blk + X8K6_QL + 32 * (16 * h + 8 * (s & 1));
				const uint8_t *qh = blk + X8K6_QH + 32 * (8 * h);
				/* acc[e][4 r + k]: the 16-value group 2 j + e,
				 * byte k of row r's dwords */
				int32_t acc[2][32] = {{0}};
				for (int c = 0; c < 8; c++) {
					const int8_t *xq = xb[b].qs + 32 * j + 4 * c;
					for (int i = 0; i < 32; i++) {
						int v = ((ql[32 * c + i] >> (4 * (s >> 1))) & 0xf) |
							(((qh[32 * c + i] >> (2 * s)) & 3) << 4);
						acc[c / 4][i] += v * xq[i & 3];
					}
				}
				for (int e = 0; e < 2; e++)
					for (int r = 0; r < 8; r++) {
						int32_t dot = acc[e][4 * r] + acc[e][4 * r + 1] + acc[e][4 * r + 2] +
							      acc[e][4 * r + 3];
						int sc = (int8_t)blk[X8K6_SC + 16 * j + 2 * r + e];
						is[r] += sc * dot - 32 * sc * xb[b].bsums[2 * j + e];
					}
			}
			for (int r = 0; r < 8; r++) {
				uint16_t hd;
				memcpy(&hd, blk + 2 * r, 2);
				float dd = F16(hd) * xb[b].d;
				sum[r] = sum[r] + dd * (float)is[r];
			}
		}
		for (int r = 0; r < 8; r++)
			out[8 * t + r] = sum[r];
	}
}

/* Integer parts of one Q4_K x Q8_K super-block: sum of sc*q4*q8 and of
 * m * (q8 sums of the sub-block). */
static void q4k_block_scalar(const struct blk_q4_k *w, const struct blk_q8_k *x, int32_t *isum, int32_t *msum)
{
	int32_t s = 0, ms = 0;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		k4_scale_min(j, w->scales, &sc, &m);
		const uint8_t *q = w->qs + 32 * (j / 2);
		int shift = (j & 1) * 4;
		int32_t sub = 0;
		for (int l = 0; l < 32; l++)
			sub += ((q[l] >> shift) & 0xf) * x->qs[32 * j + l];
		s += sc * sub;
		ms += m * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
	}
	*isum = s;
	*msum = ms;
}

static void dot_q4_k_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const struct blk_q4_k *wb = w;
	int64_t nb = n / QKK;
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_k *xb = (const void *)((const char *)x + (size_t)t * xs);
		float sum = 0.0f;
		for (int64_t i = 0; i < nb; i++) {
			int32_t is, ms;
			q4k_block_scalar(&wb[i], &xb[i], &is, &ms);
			float dd = F16(wb[i].d) * xb[i].d, dm = F16(wb[i].dmin) * xb[i].d;
			sum = sum + (dd * (float)is - dm * (float)ms);
		}
		out[t] = sum;
	}
}

static int32_t q6k_block_scalar(const struct blk_q6_k *w, const struct blk_q8_k *x)
{
	int32_t s = 0;
	const uint8_t *ql = w->ql, *qh = w->qh;
	for (int n = 0; n < QKK; n += 128, ql += 64, qh += 32) {
		int32_t g[8] = {0};
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			const int8_t *q8 = x->qs + n;
			g[is] += (((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32) * q8[l];
			g[is + 2] += (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32) * q8[l + 32];
			g[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * q8[l + 64];
			g[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * q8[l + 96];
		}
		for (int k = 0; k < 8; k++)
			s += w->scales[n / 16 + k] * g[k];
	}
	return s;
}

static void dot_q6_k_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const struct blk_q6_k *wb = w;
	int64_t nb = n / QKK;
	for (int t = 0; t < nx; t++) {
		const struct blk_q8_k *xb = (const void *)((const char *)x + (size_t)t * xs);
		float sum = 0.0f;
		for (int64_t i = 0; i < nb; i++) {
			float dd = F16(wb[i].d) * xb[i].d;
			sum = sum + dd * (float)q6k_block_scalar(&wb[i], &xb[i]);
		}
		out[t] = sum;
	}
}

static void dot_f32_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const float *a = w;
	for (int t = 0; t < nx; t++) {
		const float *b = (const void *)((const char *)x + (size_t)t * xs);
		float acc[8] = {0};
		int64_t i = 0;
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				acc[l] += a[i + l] * b[i + l];
		for (; i < n; i++)
			acc[0] += a[i] * b[i];
		out[t] = reduce8(acc);
	}
}

static void dot_f16_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const uint16_t *a = w;
	for (int t = 0; t < nx; t++) {
		const uint16_t *b = (const void *)((const char *)x + (size_t)t * xs);
		float acc[8] = {0};
		int64_t i = 0;
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				acc[l] += F16(a[i + l]) * F16(b[i + l]);
		for (; i < n; i++)
			acc[0] += F16(a[i]) * F16(b[i]);
		out[t] = reduce8(acc);
	}
}

static void dot_bf16_scalar(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const uint16_t *a = w;
	for (int t = 0; t < nx; t++) {
		const uint16_t *b = (const void *)((const char *)x + (size_t)t * xs);
		float acc[8] = {0};
		int64_t i = 0;
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				acc[l] += ab_bf16_to_f32(a[i + l]) * ab_bf16_to_f32(b[i + l]);
		for (; i < n; i++)
			acc[0] += ab_bf16_to_f32(a[i]) * ab_bf16_to_f32(b[i]);
		out[t] = reduce8(acc);
	}
}

/* ---- AVX2 kernels ---- */

#if AB_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline int32_t hsum_i32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

AVX2 static inline float hsum_ps8(__m256 v)
{
	float a[8];
	_mm256_storeu_ps(a, v);
	return reduce8(a);
}

AVX2 static inline float f16_hw(uint16_t h)
{
	return _cvtsh_ss(h); /* bit-identical to ab_f16_to_f32 (tested) */
}

/* The Q4_0/Q8_0 kernels are written once for a compile-time number of
 * activation rows NX (always_inline + a switch on nx), so that the NX
 * accumulators live in registers. */
#define AINL __attribute__((always_inline)) inline
/* The call of such a kernel for the run-time nx (1..MM_TB): FN(ARGS, N, OUT)
 * with N a constant in each case. */
#define NX_DISPATCH(FN, NX, OUT, ...)                                                          \
	do {                                                                                   \
		switch (NX) {                                                                  \
		case 1: FN(__VA_ARGS__, 1, OUT); break;                                        \
		case 2: FN(__VA_ARGS__, 2, OUT); break;                                        \
		case 3: FN(__VA_ARGS__, 3, OUT); break;                                        \
		default: FN(__VA_ARGS__, 4, OUT); break;                                       \
		}                                                                              \
	} while (0)
_Static_assert(MM_TB == 4, "NX_DISPATCH has a case for each nx up to MM_TB");

/* The 32 nibbles of a Q4_0 block as bytes 0..15: the 16 bytes loaded
 * into both halves (vbroadcasti128, a plain load), the high half shifted
 * right by 4 (one variable shift), then masked. */
AVX2 static AINL __m256i q4_0_nib(const struct blk_q4_0 *b)
{
	__m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b->qs));
	__m256i q = _mm256_srlv_epi64(raw, _mm256_setr_epi64x(0, 0, 4, 4));
	return _mm256_and_si256(q, _mm256_set1_epi8(0xf));
}

AVX2 static AINL __m256i q4_0_unpack(const struct blk_q4_0 *b)
{
	return _mm256_sub_epi8(q4_0_nib(b), _mm256_set1_epi8(8));
}

AVX2 static AINL __m256i q8_0_unpack(const struct blk_q8_0 *b)
{
	return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* Four blocks (one group) per step: their four weight scales converted
 * by one F16C instruction and multiplied by the activation scales
 * (already float); the four weight blocks decoded once, then for each
 * activation row the group's chain mul, fma, fma, fma and one add into
 * the row's accumulator (the scalar kernel's order). */
#define DEF_Q_NX(NAME, TGT, WBLK, PREP, LANES)                                                  \
	TGT static AINL __m256 NAME##_lanes(const WBLK *w, const char *xc, size_t xs, const float *xd, \
					    int64_t nb, int t, int64_t i)                        \
	{                                                                                      \
		__m256i q, uq;                                                                 \
		PREP(w, q, uq);                                                                \
		const struct blk_q8_0 *xb = (const struct blk_q8_0 *)(const void *)(xc + (size_t)t * xs) + i; \
		__m256i y = _mm256_loadu_si256((const __m256i *)xb->qs);                       \
		const int32_t *ls = (const int32_t *)(const void *)(xd + (size_t)t * AUXW(nb) + AUX_LS(nb)) + 8 * i; \
		(void)ls;                                                                      \
		return _mm256_cvtepi32_ps(LANES(q, uq, y, ls));                                \
	}                                                                                      \
	TGT static AINL void NAME##_nx(int64_t nb, const WBLK *wb, const char *xc, size_t xs,     \
				       const float *xd, const int nx, float *out)                \
	{                                                                                      \
		__m256 acc[MM_TB];                                                             \
		for (int t = 0; t < nx; t++)                                                   \
			acc[t] = _mm256_setzero_ps();                                          \
		int64_t i = 0;                                                                 \
		for (; i + QGROUP <= nb; i += QGROUP) {                                        \
			_mm_prefetch((const char *)(wb + i) + 1024, _MM_HINT_T0);              \
			__m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)wb[i].d, (short)wb[i + 1].d, \
								(short)wb[i + 2].d, (short)wb[i + 3].d, \
								0, 0, 0, 0));                   \
			_Pragma("GCC unroll 4")                                                \
			for (int t = 0; t < nx; t++) {                                         \
				float dd[4];                                                   \
				_mm_storeu_ps(dd, _mm_mul_ps(dw, _mm_loadu_ps(xd + (size_t)t * AUXW(nb) + i))); \
				__m256 p = _mm256_mul_ps(_mm256_broadcast_ss(&dd[0]),         \
							 NAME##_lanes(wb + i, xc, xs, xd, nb, t, i)); \
				p = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd[1]),               \
						    NAME##_lanes(wb + i + 1, xc, xs, xd, nb, t, i + 1), p); \
				p = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd[2]),               \
						    NAME##_lanes(wb + i + 2, xc, xs, xd, nb, t, i + 2), p); \
				p = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd[3]),               \
						    NAME##_lanes(wb + i + 3, xc, xs, xd, nb, t, i + 3), p); \
				acc[t] = _mm256_add_ps(acc[t], p);                             \
			}                                                                      \
		}                                                                              \
		if (i < nb) {                                                                  \
			for (int t = 0; t < nx; t++) {                                         \
				__m256 p = _mm256_setzero_ps();                                \
				for (int64_t k = i; k < nb; k++) {                             \
					float d = f16_hw(wb[k].d) * xd[(size_t)t * AUXW(nb) + k]; \
					__m256 sv = NAME##_lanes(wb + k, xc, xs, xd, nb, t, k); \
					p = k == i ? _mm256_mul_ps(_mm256_set1_ps(d), sv)      \
						   : _mm256_fmadd_ps(_mm256_set1_ps(d), sv, p); \
				}                                                              \
				acc[t] = _mm256_add_ps(acc[t], p);                             \
			}                                                                      \
		}                                                                              \
		for (int t = 0; t < nx; t++)                                                   \
			out[t] = hsum_ps8(acc[t]);                                             \
	}                                                                                      \
	TGT static void NAME(int64_t n, const void *w, const void *x, size_t xs, const float *xd, \
			     int nx, float *out)                                               \
	{                                                                                      \
		int64_t nb = n / QK;                                                           \
		NX_DISPATCH(NAME##_nx, nx, out, nb, w, x, xs, xd);                              \
	}

/* PREP(block, q, uq) decodes a weight block; LANES(q, uq, y, ls) gives
 * the eight int32 lane sums of (weight byte * activation byte). */
#define PREP_Q4_0(b, q, uq) (q = q4_0_unpack(b), uq = _mm256_sign_epi8(q, q))
#define PREP_Q8_0(b, q, uq) (q = q8_0_unpack(b), uq = _mm256_sign_epi8(q, q))
#define LANES_MADD(q, uq, y, ls)                                                            \
	((void)(ls), _mm256_madd_epi16(_mm256_maddubs_epi16(uq, _mm256_sign_epi8(y, q)),        \
				       _mm256_set1_epi16(1)))

DEF_Q_NX(dot_q4_0_avx2, AVX2, struct blk_q4_0, PREP_Q4_0, LANES_MADD)
DEF_Q_NX(dot_q8_0_avx2, AVX2, struct blk_q8_0, PREP_Q8_0, LANES_MADD)

#if HAVE_AVXVNNI
/* AVX-VNNI (vpdpbusd: unsigned x signed bytes summed by four into int32,
 * no intermediate saturation): the same exact lane sums in fewer
 * instructions. For Q4_0 the nibbles are used unsigned (0..15) and the
 * -8 offset comes in as the accumulator's start value, -8 * the lane's
 * activation byte sum, precomputed per activation block. */
#define VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

#define PREP_Q4_0_VNNI(b, q, uq) (q = q4_0_nib(b), uq = q)
#define LANES_Q4_0_VNNI(q, uq, y, ls)                                                       \
	((void)(uq), _mm256_dpbusd_avx_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(ls)), q, y))
#define LANES_Q8_0_VNNI(q, uq, y, ls)                                                       \
	((void)(ls), _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), uq, _mm256_sign_epi8(y, q)))

DEF_Q_NX(dot_q4_0_vnni, VNNI, struct blk_q4_0, PREP_Q4_0_VNNI, LANES_Q4_0_VNNI)
DEF_Q_NX(dot_q8_0_vnni, VNNI, struct blk_q8_0, PREP_Q8_0, LANES_Q8_0_VNNI)
#endif

/* Q4_0_X8 (see grp_q4_0_x8_scalar): lane r of a vector is weight row r,
 * so a block column of eight rows is eight vectors W_k (the nibbles
 * 4k..4k+3 of each row, k = 0..7: the low nibbles of the four 32-byte
 * chunks, then the high ones) and the exact integer dots of the eight
 * rows with an activation block come from eight byte-group products with
 * the block's dword k broadcast: no horizontal sums, one convert, one
 * multiply and one FMA for eight rows. DOT8 is vpdpbusd with AVX-VNNI,
 * else vpmaddubsw into int16 (|sum| <= 8 * 2 * 15 * 127 < 2^15, exact)
 * and one vpmaddwd. Q8_0_X8 is the same with the eight vectors loaded as
 * stored (the bytes plus 128, unsigned) and the accumulator starting at
 * -128 * the activation block's byte sum (16 * its aux word); without
 * VNNI the bytes are made signed again and multiplied as |w| * sign(x, w)
 * (vpmaddubsw's pairs then stay below 2^15), one vpmaddwd per vector.
 *
 * Prefetch. Generation streams the weights from DRAM once per token and
 * the hardware prefetchers stop at 4 KiB boundaries, so the kernel
 * prefetches X8_PF bytes ahead of the block it reads (the next groups
 * follow in memory). On the 1.1B model's matrices, weights cycled through
 * 600 MB (kernel bench, AB_BENCH_MB=600), 4608 bytes ahead measured
 * ~1.3-2x the effective bandwidth of the earlier 1152 at T = 1 (medians of
 * 6 alternating runs on a loaded 2-core machine: 1 thread 4.4 -> 6.4-9
 * GB/s); 2304 and 9216-18432 bytes measured between the two (and
 * again within noise of 4608 once every line was prefetched, as were
 * prefetches into L2 only, or into L2 16 KiB ahead besides). PFSTEP sets how many
 * prefetches a block gets: one per PFSTEP bytes, now every cache line
 * for both types. For Q8_0_X8's 272 bytes one a block covered under half:
 * a prefetch every 64 bytes measured 9.6 -> 10.7 GB/s on one thread and
 * 17.9 -> 19.2 on two (medians of 6 alternating runs, AB_BENCH_MB=600).
 * Q4_0_X8 first measured no better with more than one a block, but once
 * the rest of generation got faster, every 64 bytes won all of 8
 * alternating kernel-bench pairs (medians 9.1 -> 10.5 GB/s on one thread,
 * 17.3 -> 18.7 on two). */
#define X8_PF 4608
#define DEF_X8(NAME, TGT, BLKB, PFSTEP, NW, LOADW, DOT8, INITK)                                 \
	TGT static AINL void NAME##_blk(const uint8_t *blk, int64_t b, int64_t nb, const char *xc, size_t xs, \
					const float *xd, const int nx, __m256 *acc)               \
	{                                                                                       \
		_Pragma("GCC unroll 4")                                                         \
		for (int pf_ = 0; pf_ < ((BLKB) + (PFSTEP) - 1) / (PFSTEP); pf_++)              \
			_mm_prefetch((const char *)blk + X8_PF + (PFSTEP) * pf_, _MM_HINT_T0);   \
		__m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)blk)); \
		__m256i w[NW];                                                                  \
		LOADW(blk, w);                                                                  \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++) {                                                  \
			const struct blk_q8_0 *xb =                                             \
				(const struct blk_q8_0 *)(const void *)(xc + (size_t)t * xs) + b;  \
			const float *xdt = xd + (size_t)t * AUXW(nb);                           \
			const int32_t *bs = (const int32_t *)(const void *)(xdt + AUX_BS(nb));  \
			__m256i s = DOT8(w, xb->qs, (INITK) * bs[b]);                           \
			__m256 dd = _mm256_mul_ps(dw, _mm256_broadcast_ss(xdt + b));            \
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc[t]);            \
		}                                                                               \
	}                                                                                       \
	TGT static AINL void NAME##_nx(int64_t nb, const uint8_t *g, const char *xc, size_t xs,    \
				       const float *xd, const int nx, float *out)                 \
	{                                                                                       \
		__m256 a0[MM_TB], a1[MM_TB];                                                    \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			a0[t] = a1[t] = _mm256_setzero_ps();                                    \
		int64_t b = 0;                                                                  \
		for (; b + 2 <= nb; b += 2) {                                                   \
			NAME##_blk(g + (size_t)b * (BLKB), b, nb, xc, xs, xd, nx, a0);          \
			NAME##_blk(g + (size_t)(b + 1) * (BLKB), b + 1, nb, xc, xs, xd, nx, a1); \
		}                                                                               \
		if (b < nb)                                                                     \
			NAME##_blk(g + (size_t)b * (BLKB), b, nb, xc, xs, xd, nx, a0);          \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			_mm256_storeu_ps(out + 8 * t, _mm256_add_ps(a0[t], a1[t]));              \
	}                                                                                       \
	TGT static void NAME(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd, \
			     int nx, float *out)                                                \
	{                                                                                       \
		NX_DISPATCH(NAME##_nx, nx, out, nb, g, x, xs, xd);                              \
	}

/* LOADW: the eight nibble vectors of a Q4_0_X8 block column */
AVX2 static AINL void loadw_q4(const uint8_t *blk, __m256i *w)
{
	const __m256i lo = _mm256_set1_epi8(0xf);
	_Pragma("GCC unroll 4")
	for (int c = 0; c < 4; c++) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16 + 32 * c));
		w[c] = _mm256_and_si256(v, lo);
		w[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo);
	}
}

/* the eight byte vectors of a Q8_0_X8 block column, as stored (w + 128) */
AVX2 static AINL void loadw_q8(const uint8_t *blk, __m256i *w)
{
	_Pragma("GCC unroll 8")
	for (int k = 0; k < 8; k++)
		w[k] = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16 + 32 * k));
}

/* without VNNI: w[k] = |w|, w[8 + k] = w (signed) */
AVX2 static AINL void loadw_q8_signed(const uint8_t *blk, __m256i *w)
{
	const __m256i off = _mm256_set1_epi8((char)0x80);
	_Pragma("GCC unroll 8")
	for (int k = 0; k < 8; k++) {
		__m256i v = _mm256_xor_si256(
			_mm256_loadu_si256((const __m256i *)(const void *)(blk + 16 + 32 * k)), off);
		w[k] = _mm256_abs_epi8(v);
		w[k + 8] = v;
	}
}

AVX2 static AINL __m256i bcast_dword(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return _mm256_set1_epi32(v);
}

AVX2 static AINL __m256i dot8_madd(const __m256i *w, const int8_t *q, int32_t init)
{
	__m256i p = _mm256_maddubs_epi16(w[0], bcast_dword(q));
	_Pragma("GCC unroll 8")
	for (int k = 1; k < 8; k++)
		p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w[k], bcast_dword(q + 4 * k)));
	return _mm256_add_epi32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), _mm256_set1_epi32(init));
}

/* Q8_0_X8 without VNNI: sum of |w| * sign(x, w), exact (init unused: the
 * weights are signed here) */
AVX2 static AINL __m256i dot8_q8_madd(const __m256i *w, const int8_t *q, int32_t init)
{
	(void)init;
	const __m256i one = _mm256_set1_epi16(1);
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	_Pragma("GCC unroll 4")
	for (int k = 0; k < 8; k += 2) {
		__m256i p0 = _mm256_maddubs_epi16(w[k], _mm256_sign_epi8(bcast_dword(q + 4 * k), w[8 + k]));
		__m256i p1 = _mm256_maddubs_epi16(w[k + 1],
						  _mm256_sign_epi8(bcast_dword(q + 4 * k + 4), w[9 + k]));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, one));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, one));
	}
	return _mm256_add_epi32(s0, s1);
}

DEF_X8(grp_q4_0_x8_avx2, AVX2, X8_BLK, 64, 8, loadw_q4, dot8_madd, 1)
DEF_X8(grp_q8_0_x8_avx2, AVX2, X8Q8_BLK, 64, 16, loadw_q8_signed, dot8_q8_madd, 0)

#if HAVE_AVXVNNI
VNNI static AINL __m256i dot8_vnni(const __m256i *w, const int8_t *q, int32_t init)
{
	/* two chains of four: shorter latency */
	__m256i s0 = _mm256_set1_epi32(init), s1 = _mm256_setzero_si256();
	_Pragma("GCC unroll 4")
	for (int k = 0; k < 8; k += 2) {
		s0 = _mm256_dpbusd_avx_epi32(s0, w[k], bcast_dword(q + 4 * k));
		s1 = _mm256_dpbusd_avx_epi32(s1, w[k + 1], bcast_dword(q + 4 * k + 4));
	}
	return _mm256_add_epi32(s0, s1);
}

DEF_X8(grp_q4_0_x8_vnni, VNNI, X8_BLK, 64, 8, loadw_q4, dot8_vnni, 1)
DEF_X8(grp_q8_0_x8_vnni, VNNI, X8Q8_BLK, 64, 8, loadw_q8, dot8_vnni, 16)
#endif

/* Q4_K_X8 (see grp_q4_k_x8_scalar): lane r of every vector is weight row
 * r. Per super-block column and sub-block j, the eight chunks' low or
 * high nibbles are eight vectors W_c (values 32 j + 4c..4c+3 of the eight
 * rows), decoded once for the nx activation rows; SUBDOT gives, per lane,
 * the sub-block's exact dot with the activation times the row's scale:
 *   - AVX-VNNI: eight vpdpbusd (two chains of four) against the
 *     activation's dwords broadcast, then vpmulld by the scales widened
 *     to int32 (vpmovzxbd of the eight bytes at X8K4_SC + 8 j);
 *   - AVX2: eight vpmaddubsw summed in int16 (16 products of at most
 *     15 * 127 a lane: < 2^15, exact), then one vpmaddwd by the scale in
 *     both int16 halves of the lane, which also adds the halves.
 * The eight scaled sub-block sums add up (int32) to isum; msum is four
 * vpmaddwd of the mins pairs (vpmovzxbw) with the activation's pair sums
 * broadcast by dword; then the scalar kernel's float steps on eight
 * lanes: dd = d * dx, dm = dmin * dx, sum = sum + (dd * isum - dm * msum)
 * (separate multiplies, no FMA: the order the plain kernels use).
 * Prefetch as DEF_X8: X8_PF bytes ahead, one prefetch per 148 bytes. */
#define DEF_X8K4(NAME, TGT, SCV, SUBDOT)                                                        \
	TGT static AINL void NAME##_blk(const uint8_t *blk, int64_t b, int64_t nb, const char *xc, size_t xs, \
					const float *xd, const int nx, __m256 *sum)               \
	{                                                                                       \
		const __m256i lo = _mm256_set1_epi8(0xf);                                       \
		__m256i is[MM_TB];                                                              \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			is[t] = _mm256_setzero_si256();                                         \
		_Pragma("GCC unroll 1")                                                         \
		for (int p = 0; p < 4; p++) {                                                   \
			_mm_prefetch((const char *)blk + X8_PF + 296 * p, _MM_HINT_T0);         \
			_mm_prefetch((const char *)blk + X8_PF + 296 * p + 148, _MM_HINT_T0);   \
			const uint8_t *q = blk + X8K4_QS + 256 * p;                             \
			_Pragma("GCC unroll 2")                                                 \
			for (int h = 0; h < 2; h++) {                                           \
				int j = 2 * p + h;                                              \
				__m256i w[8];                                                   \
				_Pragma("GCC unroll 8")                                         \
				for (int c = 0; c < 8; c++) {                                   \
					__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(q + 32 * c)); \
					w[c] = _mm256_and_si256(h ? _mm256_srli_epi16(v, 4) : v, lo); \
				}                                                               \
				__m256i sc = SCV(blk + X8K4_SC + 8 * j);                        \
				_Pragma("GCC unroll 4")                                         \
				for (int t = 0; t < nx; t++) {                                  \
					const struct blk_q8_k *xb =                             \
						(const struct blk_q8_k *)(const void *)(xc + (size_t)t * xs) + b; \
					is[t] = _mm256_add_epi32(is[t], SUBDOT(w, xb->qs + 32 * j, sc)); \
				}                                                               \
			}                                                                       \
		}                                                                               \
		__m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)blk)); \
		__m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(blk + 16))); \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++) {                                                  \
			const struct blk_q8_k *xb =                                             \
				(const struct blk_q8_k *)(const void *)(xc + (size_t)t * xs) + b;  \
			const int8_t *bsp = (const int8_t *)(const void *)(xd + (size_t)t * AUXK(nb) + 4 * b); \
			__m256i ms = _mm256_setzero_si256();                                    \
			_Pragma("GCC unroll 4")                                                 \
			for (int i = 0; i < 4; i++) {                                           \
				__m256i m = _mm256_cvtepu8_epi16(                               \
					_mm_loadu_si128((const __m128i *)(const void *)(blk + X8K4_MN + 16 * i))); \
				ms = _mm256_add_epi32(ms, _mm256_madd_epi16(m, bcast_dword(bsp + 4 * i))); \
			}                                                                       \
			__m256 dx = _mm256_broadcast_ss(&xb->d);                                \
			__m256 dd = _mm256_mul_ps(dw, dx), dm = _mm256_mul_ps(dmw, dx);         \
			__m256 v = _mm256_sub_ps(_mm256_mul_ps(dd, _mm256_cvtepi32_ps(is[t])),   \
						 _mm256_mul_ps(dm, _mm256_cvtepi32_ps(ms)));     \
			sum[t] = _mm256_add_ps(sum[t], v);                                      \
		}                                                                               \
	}                                                                                       \
	TGT static AINL void NAME##_nx(int64_t nb, const uint8_t *g, const char *xc, size_t xs,    \
				       const float *xd, const int nx, float *out)                 \
	{                                                                                       \
		__m256 sum[MM_TB];                                                              \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			sum[t] = _mm256_setzero_ps();                                           \
		for (int64_t b = 0; b < nb; b++)                                                \
			NAME##_blk(g + (size_t)b * X8K4_BLK, b, nb, xc, xs, xd, nx, sum);       \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			_mm256_storeu_ps(out + 8 * t, sum[t]);                                  \
	}                                                                                       \
	TGT static void NAME(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd, \
			     int nx, float *out)                                                \
	{                                                                                       \
		NX_DISPATCH(NAME##_nx, nx, out, nb, g, x, xs, xd);                              \
	}

/* SCV for AVX2: the scale of row r in both int16 halves of lane r */
AVX2 static AINL __m256i k4_scv16(const uint8_t *p)
{
	__m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
	return _mm256_or_si256(s, _mm256_slli_epi32(s, 16));
}

AVX2 static AINL __m256i k4_subdot_madd(const __m256i *w, const int8_t *q, __m256i sc)
{
	__m256i p = _mm256_maddubs_epi16(w[0], bcast_dword(q));
	_Pragma("GCC unroll 8")
	for (int c = 1; c < 8; c++)
		p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w[c], bcast_dword(q + 4 * c)));
	return _mm256_madd_epi16(p, sc);
}

DEF_X8K4(grp_q4_k_x8_avx2, AVX2, k4_scv16, k4_subdot_madd)

#if HAVE_AVXVNNI
/* SCV for AVX-VNNI: the scale of row r as lane r's int32 */
VNNI static AINL __m256i k4_scv32(const uint8_t *p)
{
	return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
}

VNNI static AINL __m256i k4_subdot_vnni(const __m256i *w, const int8_t *q, __m256i sc)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	_Pragma("GCC unroll 4")
	for (int c = 0; c < 8; c += 2) {
		s0 = _mm256_dpbusd_avx_epi32(s0, w[c], bcast_dword(q + 4 * c));
		s1 = _mm256_dpbusd_avx_epi32(s1, w[c + 1], bcast_dword(q + 4 * c + 4));
	}
	return _mm256_mullo_epi32(_mm256_add_epi32(s0, s1), sc);
}

DEF_X8K4(grp_q4_k_x8_vnni, VNNI, k4_scv32, k4_subdot_vnni)
#endif

/* Q6_K_X8 (see grp_q6_k_x8_scalar), lane r = row r as for Q4_K_X8. Per
 * sub-block j the eight vectors W_c (values 32 j + 4c..4c+3, unsigned
 * 0..63) are put together from the ql nibbles and the qh bit pairs
 * (shifted into bits 4-5 with a 16-bit shift and a 0x30 mask; the bits
 * that cross a byte are masked off), once for the nx activation rows.
 * SUBDOT16 gives the exact sc * dot of a 16-value group (four W_c):
 *   - AVX-VNNI: four vpdpbusd, then vpmulld by the scale (int32);
 *   - AVX2: vpmaddubsw pairs summed by two in int16 (four products of at
 *     most 63 * 128 a lane: < 2^15), then vpmaddwd by the scale in both
 *     int16 halves.
 * The offset: is -= 32 * sum of the eight vpmaddwd of the scale pairs
 * (vpmovsxbw) with the activation's bsums pairs broadcast by dword. Then
 * sum = sum + (d * dx) * is on eight lanes. */
#define DEF_X8K6(NAME, TGT, SCV, SUBDOT16)                                                      \
	TGT static AINL void NAME##_blk(const uint8_t *blk, int64_t b, const char *xc, size_t xs,  \
					const int nx, __m256 *sum)                                \
	{                                                                                       \
		const __m256i lo = _mm256_set1_epi8(0xf), m30 = _mm256_set1_epi8(0x30);         \
		__m256i is[MM_TB];                                                              \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			is[t] = _mm256_setzero_si256();                                         \
		_Pragma("GCC unroll 1")                                                         \
		for (int h = 0; h < 2; h++) {                                                   \
			_Pragma("GCC unroll 4")                                                 \
			for (int s = 0; s < 4; s++) {                                           \
				int j = 4 * h + s;                                              \
				_mm_prefetch((const char *)blk + X8_PF + 210 * j, _MM_HINT_T0); \
				const uint8_t *ql = blk + X8K6_QL + 32 * (16 * h + 8 * (s & 1)); \
				const uint8_t *qh = blk + X8K6_QH + 32 * (8 * h);               \
				__m256i w[8];                                                   \
				_Pragma("GCC unroll 8")                                         \
				for (int c = 0; c < 8; c++) {                                   \
					__m256i l4 = _mm256_loadu_si256((const __m256i *)(const void *)(ql + 32 * c)); \
					__m256i h2 = _mm256_loadu_si256((const __m256i *)(const void *)(qh + 32 * c)); \
					l4 = _mm256_and_si256(s >= 2 ? _mm256_srli_epi16(l4, 4) : l4, lo); \
					h2 = s == 0 ? _mm256_slli_epi16(h2, 4) : s == 1 ? _mm256_slli_epi16(h2, 2) \
					   : s == 2 ? h2 : _mm256_srli_epi16(h2, 2);                     \
					w[c] = _mm256_or_si256(l4, _mm256_and_si256(h2, m30));  \
				}                                                               \
				__m256i sv = _mm256_cvtepi8_epi16(                              \
					_mm_loadu_si128((const __m128i *)(const void *)(blk + X8K6_SC + 16 * j))); \
				__m256i sc0 = SCV(sv, 0), sc1 = SCV(sv, 1);                     \
				_Pragma("GCC unroll 4")                                         \
				for (int t = 0; t < nx; t++) {                                  \
					const struct blk_q8_k *xb =                             \
						(const struct blk_q8_k *)(const void *)(xc + (size_t)t * xs) + b; \
					const int8_t *q = xb->qs + 32 * j;                      \
					is[t] = _mm256_add_epi32(is[t], _mm256_add_epi32(SUBDOT16(w, q, sc0), \
											 SUBDOT16(w + 4, q + 16, sc1))); \
				}                                                               \
			}                                                                       \
		}                                                                               \
		__m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)blk)); \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++) {                                                  \
			const struct blk_q8_k *xb =                                             \
				(const struct blk_q8_k *)(const void *)(xc + (size_t)t * xs) + b;  \
			__m256i ms = _mm256_setzero_si256();                                    \
			_Pragma("GCC unroll 8")                                                 \
			for (int i = 0; i < 8; i++) {                                           \
				__m256i sp = _mm256_cvtepi8_epi16(                              \
					_mm_loadu_si128((const __m128i *)(const void *)(blk + X8K6_SC + 16 * i))); \
				ms = _mm256_add_epi32(ms, _mm256_madd_epi16(sp, bcast_dword((const int8_t *)(const void *)(xb->bsums + 2 * i)))); \
			}                                                                       \
			__m256i v = _mm256_sub_epi32(is[t], _mm256_slli_epi32(ms, 5));          \
			__m256 dd = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb->d));             \
			sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(dd, _mm256_cvtepi32_ps(v))); \
		}                                                                               \
	}                                                                                       \
	TGT static AINL void NAME##_nx(int64_t nb, const uint8_t *g, const char *xc, size_t xs,    \
				       const int nx, float *out)                                  \
	{                                                                                       \
		__m256 sum[MM_TB];                                                              \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			sum[t] = _mm256_setzero_ps();                                           \
		for (int64_t b = 0; b < nb; b++)                                                \
			NAME##_blk(g + (size_t)b * X8K6_BLK, b, xc, xs, nx, sum);               \
		_Pragma("GCC unroll 4")                                                         \
		for (int t = 0; t < nx; t++)                                                    \
			_mm256_storeu_ps(out + 8 * t, sum[t]);                                  \
	}                                                                                       \
	TGT static void NAME(int64_t nb, const uint8_t *g, const void *x, size_t xs, const float *xd, \
			     int nx, float *out)                                                \
	{                                                                                       \
		(void)xd;                                                                       \
		NX_DISPATCH(NAME##_nx, nx, out, nb, g, x, xs);                                  \
	}

/* SCV for AVX2: scale e of lane r's pair (sv: int16 pairs) in both int16
 * halves of the lane */
AVX2 static AINL __m256i k6_scv16(__m256i sv, int e)
{
	__m256i s = e ? _mm256_srai_epi32(sv, 16) : _mm256_srai_epi32(_mm256_slli_epi32(sv, 16), 16);
	return _mm256_or_si256(_mm256_and_si256(s, _mm256_set1_epi32(0xffff)), _mm256_slli_epi32(s, 16));
}

AVX2 static AINL __m256i k6_subdot_madd(const __m256i *w, const int8_t *q, __m256i sc)
{
	__m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(w[0], bcast_dword(q)),
				      _mm256_maddubs_epi16(w[1], bcast_dword(q + 4)));
	__m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(w[2], bcast_dword(q + 8)),
				      _mm256_maddubs_epi16(w[3], bcast_dword(q + 12)));
	return _mm256_add_epi32(_mm256_madd_epi16(p0, sc), _mm256_madd_epi16(p1, sc));
}

DEF_X8K6(grp_q6_k_x8_avx2, AVX2, k6_scv16, k6_subdot_madd)

#if HAVE_AVXVNNI
/* AVX-VNNI: the AVX2 form with the last vpmaddwd and add fused into one
 * vpdpwssd (vpdpbusd and vpmulld would take as many multiplier uops) */
VNNI static AINL __m256i k6_subdot_vnni(const __m256i *w, const int8_t *q, __m256i sc)
{
	__m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(w[0], bcast_dword(q)),
				      _mm256_maddubs_epi16(w[1], bcast_dword(q + 4)));
	__m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(w[2], bcast_dword(q + 8)),
				      _mm256_maddubs_epi16(w[3], bcast_dword(q + 12)));
	return _mm256_dpwssd_avx_epi32(_mm256_madd_epi16(p0, sc), p1, sc);
}

DEF_X8K6(grp_q6_k_x8_vnni, VNNI, k6_scv16, k6_subdot_vnni)
#endif

/* The eight 6-bit scales and mins of a Q4_K super-block as bytes
 * (sc0..7 in *sc, m0..7 in *m), decoded with 32-bit word operations. */
static inline void k4_unpack_scales(const uint8_t *q, uint32_t sc[2], uint32_t m[2])
{
	uint32_t u[3];
	memcpy(u, q, 12);
	sc[0] = u[0] & 0x3f3f3f3f;
	m[0] = u[1] & 0x3f3f3f3f;
	sc[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
	m[1] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
}

AVX2 static AINL void dot_q4_k_avx2_nx(int64_t n, const void *w, const void *x, size_t xs, const int nx, float *out)
{
	const struct blk_q4_k *wb = w;
	int64_t nb = n / QKK;
	const char *xc = x;
	float sum[MM_TB] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf);
	for (int64_t i = 0; i < nb; i++) {
		uint32_t scw[2], mw[2];
		k4_unpack_scales(wb[i].scales, scw, mw);
		/* sc as eight int16 in both halves; m as eight int16 */
		__m256i sc16 = _mm256_broadcastsi128_si256(
			_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)scw[1], (int)scw[0])));
		__m128i m16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mw[1], (int)mw[0]));
		__m256i q4[8], scj[8];
		_Pragma("GCC unroll 4")
		for (int j = 0; j < 4; j++) {
			__m256i q = _mm256_loadu_si256((const __m256i *)(wb[i].qs + 32 * j));
			q4[2 * j] = _mm256_and_si256(q, lo);
			q4[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
		}
		_Pragma("GCC unroll 8")
		for (int j = 0; j < 8; j++)
			scj[j] = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)));
		float dw = f16_hw(wb[i].d), dmw = f16_hw(wb[i].dmin);
		for (int t = 0; t < nx; t++) {
			const struct blk_q8_k *xb = (const struct blk_q8_k *)(const void *)(xc + (size_t)t * xs) + i;
			__m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
			_Pragma("GCC unroll 4")
			for (int j = 0; j < 8; j += 2) {
				__m256i y0 = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * j));
				__m256i y1 = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * j + 32));
				acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_maddubs_epi16(q4[j], y0), scj[j]));
				acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_maddubs_epi16(q4[j + 1], y1),
										 scj[j + 1]));
			}
			int32_t is = hsum_i32(_mm256_add_epi32(acc0, acc1));
			/* sum m[j] * (bsums[2j] + bsums[2j+1]) */
			__m128i bs0 = _mm_loadu_si128((const __m128i *)xb->bsums);
			__m128i bs1 = _mm_loadu_si128((const __m128i *)(xb->bsums + 8));
			__m128i pm = _mm_madd_epi16(_mm_hadd_epi16(bs0, bs1), m16);
			pm = _mm_add_epi32(pm, _mm_shuffle_epi32(pm, 0x4e));
			pm = _mm_add_epi32(pm, _mm_shuffle_epi32(pm, 0xb1));
			int32_t ms = _mm_cvtsi128_si32(pm);
			float dd = dw * xb->d, dm = dmw * xb->d;
			sum[t] = sum[t] + (dd * (float)is - dm * (float)ms);
		}
	}
	for (int t = 0; t < nx; t++)
		out[t] = sum[t];
}

AVX2 static void dot_q4_k_avx2(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	NX_DISPATCH(dot_q4_k_avx2_nx, nx, out, n, w, x, xs);
}

AVX2 static AINL void dot_q6_k_avx2_nx(int64_t n, const void *w, const void *x, size_t xs, const int nx, float *out)
{
	const struct blk_q6_k *wb = w;
	int64_t nb = n / QKK;
	const char *xc = x;
	float sum[MM_TB] = {0};
	const __m256i m4 = _mm256_set1_epi8(0xf), m30 = _mm256_set1_epi8(0x30);
	for (int64_t i = 0; i < nb; i++) {
		/* the 256 unsigned 6-bit values, in element order, 32 a vector */
		__m256i q6[8], scv[8];
		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = wb[i].ql + 64 * h, *qh = wb[i].qh + 32 * h;
			__m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
			__m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
			__m256i hh = _mm256_loadu_si256((const __m256i *)qh);
			q6[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
							_mm256_and_si256(_mm256_slli_epi16(hh, 4), m30));
			q6[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
							_mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
			q6[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
							_mm256_and_si256(hh, m30));
			q6[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
							_mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
		}
		const int8_t *sc = wb[i].scales;
		for (int v = 0; v < 8; v++)
			scv[v] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * v + 1]), _mm_set1_epi16(sc[2 * v]));
		__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
		float dw = f16_hw(wb[i].d);
		for (int t = 0; t < nx; t++) {
			const struct blk_q8_k *xb = (const struct blk_q8_k *)(const void *)(xc + (size_t)t * xs) + i;
			__m256i acc = _mm256_setzero_si256();
			_Pragma("GCC unroll 8")
			for (int v = 0; v < 8; v++) {
				__m256i y = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * v));
				__m256i p16 = _mm256_maddubs_epi16(q6[v], y);
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p16, scv[v]));
			}
			/* sum sc[g] * bsums[g], folded in as -32 times it */
			__m256i bsv = _mm256_loadu_si256((const __m256i *)xb->bsums);
			acc = _mm256_sub_epi32(acc, _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsv), 5));
			int32_t is = hsum_i32(acc);
			float dd = dw * xb->d;
			sum[t] = sum[t] + dd * (float)is;
		}
	}
	for (int t = 0; t < nx; t++)
		out[t] = sum[t];
}

AVX2 static void dot_q6_k_avx2(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	NX_DISPATCH(dot_q6_k_avx2_nx, nx, out, n, w, x, xs);
}

AVX2 static void dot_f32_avx2(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const float *a = w;
	for (int t = 0; t < nx; t++) {
		const float *b = (const void *)((const char *)x + (size_t)t * xs);
		__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
		int64_t i = 0;
		for (; i + 16 <= n; i += 16) {
			acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
			acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
		}
		for (; i + 8 <= n; i += 8)
			acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
		float s = hsum_ps8(_mm256_add_ps(acc0, acc1));
		for (; i < n; i++)
			s += a[i] * b[i];
		out[t] = s;
	}
}

AVX2 static void dot_f16_avx2(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const uint16_t *a = w;
	for (int t = 0; t < nx; t++) {
		const uint16_t *b = (const void *)((const char *)x + (size_t)t * xs);
		__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
		int64_t i = 0;
		for (; i + 16 <= n; i += 16) {
			__m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
			__m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
			__m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
			__m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8)));
			acc0 = _mm256_fmadd_ps(a0, b0, acc0);
			acc1 = _mm256_fmadd_ps(a1, b1, acc1);
		}
		for (; i + 8 <= n; i += 8) {
			__m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
			__m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
			acc0 = _mm256_fmadd_ps(a0, b0, acc0);
		}
		float s = hsum_ps8(_mm256_add_ps(acc0, acc1));
		for (; i < n; i++)
			s += F16(a[i]) * F16(b[i]);
		out[t] = s;
	}
}

AVX2 static inline __m256 bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2 static void dot_bf16_avx2(int64_t n, const void *w, const void *x, size_t xs, const float *xd, int nx, float *out)
{
	(void)xd;
	const uint16_t *a = w;
	for (int t = 0; t < nx; t++) {
		const uint16_t *b = (const void *)((const char *)x + (size_t)t * xs);
		__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
		int64_t i = 0;
		for (; i + 16 <= n; i += 16) {
			acc0 = _mm256_fmadd_ps(bf16x8(a + i), bf16x8(b + i), acc0);
			acc1 = _mm256_fmadd_ps(bf16x8(a + i + 8), bf16x8(b + i + 8), acc1);
		}
		for (; i + 8 <= n; i += 8)
			acc0 = _mm256_fmadd_ps(bf16x8(a + i), bf16x8(b + i), acc0);
		float s = hsum_ps8(_mm256_add_ps(acc0, acc1));
		for (; i < n; i++)
			s += ab_bf16_to_f32(a[i]) * ab_bf16_to_f32(b[i]);
		out[t] = s;
	}
}
/* F32 and F16 weights, eight consecutive rows (g, rows n elements apart)
 * against nx <= MM_TB activation rows, out[8 t + r]: each row's dot in
 * one eight-lane accumulator over the columns, then the eight
 * accumulators reduced together by a horizontal-add tree (seven
 * instructions for eight rows instead of a reduction a row). For small
 * matrices (stories260K: 64 columns) the per-row reduction and call were
 * most of the work. Columns past the last multiple of 8 are added row
 * by row after the reduction. */
AVX2 static AINL __m256 reduce_rows8(const __m256 *a)
{
	__m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
	__m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
	__m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
	return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

#define DEF_ROWS8(NAME, WT, LOADW, LOADX)                                                       \
	AVX2 static void NAME(int64_t n, const uint8_t *g, const void *x, size_t xs, const float *xd, int nx, \
			      float *out)                                                       \
	{                                                                                       \
		(void)xd;                                                                       \
		const WT *w = (const WT *)(const void *)g;                                      \
		for (int t = 0; t < nx; t++) {                                                  \
			const WT *xt = (const WT *)(const void *)((const char *)x + (size_t)t * xs); \
			__m256 a[8];                                                            \
			for (int r = 0; r < 8; r++)                                             \
				a[r] = _mm256_setzero_ps();                                     \
			int64_t i = 0;                                                          \
			for (; i + 8 <= n; i += 8) {                                            \
				__m256 xv = LOADX(xt + i);                                      \
				for (int r = 0; r < 8; r++)                                     \
					a[r] = _mm256_fmadd_ps(LOADW(w + (size_t)r * (size_t)n + i), xv, a[r]); \
			}                                                                       \
			_mm256_storeu_ps(out + 8 * t, reduce_rows8(a));                         \
			for (; i < n; i++)                                                      \
				for (int r = 0; r < 8; r++)                                     \
					out[8 * t + r] += TOF(w[(size_t)r * (size_t)n + i]) * TOF(xt[i]); \
		}                                                                               \
	}
#define TOF(v) _Generic((v), float: (v), uint16_t: F16(v))
#define LOAD_F32(p) _mm256_loadu_ps(p)
#define LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
DEF_ROWS8(rows8_f32_avx2, float, LOAD_F32, LOAD_F32)
DEF_ROWS8(rows8_f16_avx2, uint16_t, LOAD_F16, LOAD_F16)
#endif /* AB_X86 */

/* ---- dispatch ---- */

struct kern {
	uint32_t dot_type;
	rowdot_fn scalar, avx2;
	rowdot_fn vnni; /* AVX2 + AVX-VNNI variant (bit-identical), or NULL */
};

static const struct kern *kern_for(uint32_t type)
{
#if AB_X86
#define K(t, dt, s, a) [t] = {dt, s, a, NULL}
#if HAVE_AVXVNNI
#define KV(t, dt, s, a, v) [t] = {dt, s, a, v}
#else
#define KV(t, dt, s, a, v) [t] = {dt, s, a, NULL}
#endif
	static const struct kern ks[AB_TYPE__MAX] = {
		K(AB_TYPE_F32, AB_TYPE_F32, dot_f32_scalar, dot_f32_avx2),
		K(AB_TYPE_F16, AB_TYPE_F16, dot_f16_scalar, dot_f16_avx2),
		K(AB_TYPE_BF16, AB_TYPE_BF16, dot_bf16_scalar, dot_bf16_avx2),
		KV(AB_TYPE_Q4_0, AB_TYPE_Q8_0, dot_q4_0_scalar, dot_q4_0_avx2, dot_q4_0_vnni),
		KV(AB_TYPE_Q8_0, AB_TYPE_Q8_0, dot_q8_0_scalar, dot_q8_0_avx2, dot_q8_0_vnni),
		K(AB_TYPE_Q4_K, AB_TYPE_Q8_K, dot_q4_k_scalar, dot_q4_k_avx2),
		K(AB_TYPE_Q6_K, AB_TYPE_Q8_K, dot_q6_k_scalar, dot_q6_k_avx2),
	};
#else
#define K(t, dt, s, a) [t] = {dt, s, NULL, NULL}
	static const struct kern ks[AB_TYPE__MAX] = {
		K(AB_TYPE_F32, AB_TYPE_F32, dot_f32_scalar, 0),
		K(AB_TYPE_F16, AB_TYPE_F16, dot_f16_scalar, 0),
		K(AB_TYPE_BF16, AB_TYPE_BF16, dot_bf16_scalar, 0),
		K(AB_TYPE_Q4_0, AB_TYPE_Q8_0, dot_q4_0_scalar, 0),
		K(AB_TYPE_Q8_0, AB_TYPE_Q8_0, dot_q8_0_scalar, 0),
		K(AB_TYPE_Q4_K, AB_TYPE_Q8_K, dot_q4_k_scalar, 0),
		K(AB_TYPE_Q6_K, AB_TYPE_Q8_K, dot_q6_k_scalar, 0),
	};
#endif
#undef K
#undef KV
	if (type >= AB_TYPE__MAX || !ks[type].scalar)
		return NULL;
	return &ks[type];
}

static atomic_bool g_force_scalar;
static atomic_int g_cpu = -1; /* -1 unknown, 0 no AVX2, 1 AVX2+FMA+F16C, 2 and AVX-VNNI */

static bool cpu_has_avx2(void)
{
	int v = atomic_load_explicit(&g_cpu, memory_order_relaxed);
	if (v < 0) {
#if AB_X86
		__builtin_cpu_init();
		unsigned a, b, c, d;
		/* F16C is CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports
		 * does not know the name) */
		bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
		v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
		/* AVX-VNNI: CPUID.(EAX=7,ECX=1):EAX bit 4 (the ymm state is
		 * OS-enabled since AVX2 is usable) */
		const char *nv = getenv("AB_QUANT_NO_VNNI"); /* to test/measure plain AVX2 */
		if (v && !(nv && *nv == '1') && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1))
			v = 2;
#else
		v = 0;
#endif
		atomic_store_explicit(&g_cpu, v, memory_order_relaxed);
	}
	return v >= 1;
}

static bool cpu_has_vnni(void)
{
	return cpu_has_avx2() && atomic_load_explicit(&g_cpu, memory_order_relaxed) == 2;
}

static bool use_avx2(void)
{
	return !atomic_load_explicit(&g_force_scalar, memory_order_relaxed) && cpu_has_avx2();
}

bool ab_quant_avx2(void)
{
	return use_avx2();
}

#if AB_X86
/* vcvtps2ph with round-to-nearest-even: the same bits as ab_f32_to_f16
 * for every float, NaN payloads included (the test compares them) */
AVX2 static void f32_to_f16_row_f16c(const float *src, uint16_t *dst, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(void *)(dst + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		dst[i] = ab_f32_to_f16(src[i]);
}

/* the maximum of the non-NaN values (vmaxps returns its second operand
 * when the first is NaN), then its first index */
AVX2 static int64_t argmax_avx2(const float *x, int64_t n)
{
	__m256 m0 = _mm256_set1_ps(x[0]), m1 = m0;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
		m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
	}
	float l[8];
	_mm256_storeu_ps(l, _mm256_max_ps(m0, m1));
	float m = l[0];
	for (int k = 1; k < 8; k++)
		if (l[k] > m)
			m = l[k];
	for (; i < n; i++)
		if (x[i] > m)
			m = x[i];
	__m256 mv = _mm256_set1_ps(m);
	for (i = 0; i + 8 <= n; i += 8) {
		int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), mv, _CMP_EQ_OQ));
		if (mask)
			return i + __builtin_ctz((unsigned)mask);
	}
	for (; i < n; i++)
		if (x[i] == m)
			return i;
	return 0;
}
#endif

int64_t ab_argmax_f32(const float *x, int64_t n)
{
	if (n <= 0 || isnan(x[0]))
		return 0; /* as the loop below: NaN never compares greater */
#if AB_X86
	if (use_avx2() && n >= 16)
		return argmax_avx2(x, n);
#endif
	int64_t best = 0;
	for (int64_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

void ab_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n)
{
#if AB_X86
	if (use_avx2()) {
		f32_to_f16_row_f16c(src, dst, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		dst[i] = ab_f32_to_f16(src[i]);
}

const char *ab_quant_backend(void)
{
	return use_avx2() ? "avx2" : "scalar";
}

void ab_quant_force_scalar(bool on)
{
	atomic_store(&g_force_scalar, on);
}

/* ---- ab_matmul ---- */

#define MM_RT 16 /* weight rows per tile */
/* Activation rows from which a Q4_0/Q8_0 product runs on AMX tiles: a
 * tile product costs about as much for 1 row as for 16 (see
 * quant_amx.c), the AVX kernels grow with the rows. */
#define AMX_MIN_T 8

struct mm_job {
	const char *W;
	size_t wrow;
	int64_t R, C, T;
	const float *X;
	uint32_t dot_type;
	char *xq; /* T rows of xrow bytes, in the dot type */
	size_t xrow;
	float *xd; /* Q8_0 dot type: the T x C/32 block scales as float */
	float *Y;
	rowdot_fn fn;
	grpdot_fn gfn;     /* Q4_0_X8 etc.: the group kernel (fn is NULL) */
	int64_t gnb;       /* group kernels: blocks of the weight type a row */
	size_t auxw;       /* aux words (xd) an activation row */
	int64_t chunk;     /* rows a grab (a multiple of 8; of 16 with xa) */
	uint32_t type;     /* the weight type */
	int8_t *xa;        /* AMX (quant_amx.c): the activations packed for its tiles, or NULL */
	bool scales_only;  /* Q8_0 aux: the scales only (AMX takes every row, no AVX kernel reads the rest) */
};

/* Rows t0..t1-1 of the activations quantised (and packed for AMX). */
static void mm_quant_rows(struct mm_job *j, int64_t t0, int64_t t1)
{
	for (int64_t t = t0; t < t1; t++) {
		char *xq = j->xq + (size_t)t * j->xrow;
		ab_quantize(j->dot_type, j->X + t * j->C, xq, j->C);
		if (j->xd && j->dot_type == AB_TYPE_Q8_K) {
			/* Q4_K_X8: the bsums' pair sums (AUXK) */
			int64_t nb = j->C / QKK;
			const struct blk_q8_k *b = (const void *)xq;
			int16_t *bsp = (int16_t *)(void *)(j->xd + (size_t)t * j->auxw);
			for (int64_t i = 0; i < nb; i++)
				for (int k = 0; k < 8; k++)
					bsp[8 * i + k] = (int16_t)(b[i].bsums[2 * k] + b[i].bsums[2 * k + 1]);
		} else if (j->xd) {
			int64_t nb = j->C / QK;
			const struct blk_q8_0 *b = (const void *)xq;
			float *aux = j->xd + (size_t)t * AUXW(nb);
			if (j->scales_only) {
				for (int64_t i = 0; i < nb; i++)
					aux[i] = F16(b[i].d);
				continue;
			}
			int32_t *ls = (int32_t *)(void *)(aux + AUX_LS(nb));
			int32_t *bs = (int32_t *)(void *)(aux + AUX_BS(nb));
			for (int64_t i = 0; i < nb; i++) {
				aux[i] = F16(b[i].d);
				int32_t sum = 0;
				for (int l = 0; l < 8; l++) {
					ls[8 * i + l] = -8 * (b[i].qs[4 * l] + b[i].qs[4 * l + 1] +
							      b[i].qs[4 * l + 2] + b[i].qs[4 * l + 3]);
					sum += ls[8 * i + l];
				}
				bs[i] = sum;
			}
		}
	}
	/* Q4_0_X8 / Q8_0_X8 on AMX: these rows into the tile order */
	if (j->xa && j->type != AB_TYPE_Q4_K_X8)
		ab__amx_pack_a(j->xq, j->xrow, j->xd, j->auxw, j->T, j->C / QK, j->xa, t0, t1);
}

/* The activations quantised on the pool sixteen rows (one AMX tile) at a
 * time, taken from a counter: a thread that gets less CPU takes fewer. */
#define MM_QROWS 16
struct mm_quant {
	struct mm_job *j;
	atomic_llong next;
};

static void mm_quant_task(void *ud, int ith, int nth)
{
	struct mm_quant *q = ud;
	(void)ith;
	(void)nth;
	for (;;) {
		int64_t t0 = atomic_fetch_add_explicit(&q->next, MM_QROWS, memory_order_relaxed);
		if (t0 >= q->j->T)
			break;
		mm_quant_rows(q->j, t0, t0 + MM_QROWS < q->j->T ? t0 + MM_QROWS : q->j->T);
	}
}

/* Q4_0_X8, Q8_0_X8, Q4_K_X8: rows r0..r1 (multiples of 8) a group of
 * eight at a time, the activation rows in groups of MM_TB as in mm_rows. */
static void mm_groups(const struct mm_job *j, int64_t r0, int64_t r1)
{
	float o[8 * MM_TB];
	int64_t nb = j->gnb;
	if (j->xa) {
		/* whole slabs of sixteen rows on the tiles, a last group of
		 * eight (R % 16 == 8) below */
		int64_t r16 = r0 + (r1 - r0) / 16 * 16;
		if (r16 > r0 && j->type == AB_TYPE_Q4_K_X8)
			ab__amx_q4k((const uint8_t *)j->W, j->wrow, r0, r16, j->R, nb, j->xa, j->T, j->Y);
		else if (r16 > r0)
			ab__amx_x8(j->type == AB_TYPE_Q8_0_X8, (const uint8_t *)j->W, j->wrow, r0, r16, j->R, nb,
				   j->xa, j->T, j->Y);
		r0 = r16;
	}
	for (int64_t rt = r0; rt < r1; rt += MM_RT) {
		int64_t re = rt + MM_RT < r1 ? rt + MM_RT : r1;
		for (int64_t t = 0; t < j->T; t += MM_TB) {
			int nx = j->T - t < MM_TB ? (int)(j->T - t) : MM_TB;
			const char *x = j->xq + (size_t)t * j->xrow;
			const float *xd = j->xd ? j->xd + (size_t)t * j->auxw : NULL;
			for (int64_t r = rt; r < re; r += 8) {
				j->gfn(nb, (const uint8_t *)j->W + (size_t)r * j->wrow, x, j->xrow, xd, nx, o);
				for (int k = 0; k < nx; k++)
					memcpy(j->Y + (t + k) * j->R + r, o + 8 * k, 8 * sizeof(float));
			}
		}
	}
}

static void mm_rows(const struct mm_job *j, int64_t r0, int64_t r1)
{
	float o[MM_TB];
	if (j->gfn) {
		/* whole groups of eight; only F32/F16 (R % 8 != 0) leave rows */
		int64_t r8 = r0 + (r1 - r0) / 8 * 8;
		mm_groups(j, r0, r8);
		if (r8 == r1)
			return;
		r0 = r8;
	}
	for (int64_t rt = r0; rt < r1; rt += MM_RT) {
		int64_t re = rt + MM_RT < r1 ? rt + MM_RT : r1;
		for (int64_t t = 0; t < j->T; t += MM_TB) {
			int nx = j->T - t < MM_TB ? (int)(j->T - t) : MM_TB;
			const char *x = j->xq + (size_t)t * j->xrow;
			const float *xd = j->xd ? j->xd + (size_t)t * j->auxw : NULL;
			for (int64_t r = rt; r < re; r++) {
				j->fn(j->C, j->W + (size_t)r * j->wrow, x, j->xrow, xd, nx, o);
				for (int k = 0; k < nx; k++)
					j->Y[(t + k) * j->R + r] = o[k];
			}
		}
	}
}

static grpdot_fn x8_fn(uint32_t type)
{
	bool q8 = type == AB_TYPE_Q8_0_X8;
	bool k4 = type == AB_TYPE_Q4_K_X8, k6 = type == AB_TYPE_Q6_K_X8;
#if AB_X86
	if (use_avx2()) {
#if HAVE_AVXVNNI
		if (cpu_has_vnni())
			return k6 ? grp_q6_k_x8_vnni
			       : k4 ? grp_q4_k_x8_vnni : q8 ? grp_q8_0_x8_vnni : grp_q4_0_x8_vnni;
#endif
		return k6 ? grp_q6_k_x8_avx2 : k4 ? grp_q4_k_x8_avx2 : q8 ? grp_q8_0_x8_avx2 : grp_q4_0_x8_avx2;
	}
#endif
	return k6 ? grp_q6_k_x8_scalar : k4 ? grp_q4_k_x8_scalar : q8 ? grp_q8_0_x8_scalar : grp_q4_0_x8_scalar;
}

/* F32 / F16 weights: the eight-rows-at-a-time kernel with AVX2 (mm_rows
 * takes rows past the last multiple of 8 one at a time), else NULL. */
static grpdot_fn rows8_fn(uint32_t type, int64_t R, int64_t C)
{
#if AB_X86
	(void)R, (void)C;
	if (use_avx2()) {
		if (type == AB_TYPE_F32)
			return rows8_f32_avx2;
		if (type == AB_TYPE_F16)
			return rows8_f16_avx2;
	}
#else
	(void)type, (void)R, (void)C;
#endif
	return NULL;
}

/* The file type a repacked type was made from, or 0 for other types. */
static uint32_t x8_base(uint32_t type)
{
	switch (type) {
	case AB_TYPE_Q4_0_X8: return AB_TYPE_Q4_0;
	case AB_TYPE_Q8_0_X8: return AB_TYPE_Q8_0;
	case AB_TYPE_Q4_K_X8: return AB_TYPE_Q4_K;
	case AB_TYPE_Q6_K_X8: return AB_TYPE_Q6_K;
	default: return 0;
	}
}

/* The job of one product, without its activation buffers (xq, xd, xa);
 * false when the call does nothing (a shape or type it cannot do). *amx:
 * prompts on Q4_0 / Q8_0 / Q4_K groups take AMX tiles when the CPU has
 * them. */
static bool mm_setup(struct mm_job *j, const void *W, uint32_t type, int64_t R, int64_t C, const float *X,
		     int64_t T, float *Y, bool *amx)
{
	uint32_t base = x8_base(type);
	bool x8 = base != 0;
	if (x8 && R % 8)
		return false;
	const struct kern *k = kern_for(x8 ? base : type);
	if (!k || R <= 0 || T <= 0 || C <= 0)
		return false;
	size_t wrow = ab_type_row_bytes(type, C);
	size_t xrow = ab_type_row_bytes(k->dot_type, C);
	if (!wrow || !xrow)
		return false;
	*j = (struct mm_job){
		.W = W, .wrow = wrow, .R = R, .C = C, .T = T, .X = X,
		.dot_type = k->dot_type, .xrow = xrow, .Y = Y,
		.fn = !use_avx2() || !k->avx2 ? k->scalar : k->vnni && cpu_has_vnni() ? k->vnni : k->avx2,
		.gfn = x8 ? x8_fn(type) : rows8_fn(type, R, C),
		.gnb = C / ab_type_get(type)->block,
		.type = type,
	};
	*amx = (type == AB_TYPE_Q4_0_X8 || type == AB_TYPE_Q8_0_X8 || type == AB_TYPE_Q4_K_X8) &&
	       T >= AMX_MIN_T && use_avx2() && ab__amx_usable();
	/* aux words: Q8_0 activations always, Q8_K ones for Q4_K_X8 */
	if (k->dot_type != AB_TYPE_F32)
		j->auxw = k->dot_type == AB_TYPE_Q8_0 ? AUXW(C / QK) : type == AB_TYPE_Q4_K_X8 ? AUXK(C / QKK) : 0;
	return true;
}

/* The rows of several products shared out in one pool run: chunk i of
 * the run is chunk i - first[k] of job k (the jobs' chunks in order). */
struct mm_multi {
	struct mm_job *jobs;
	int n;
	int64_t first[AB_MATMUL_MAX + 1];
	atomic_llong next;
};

static void mm_multi_task(void *ud, int ith, int nth)
{
	struct mm_multi *mm = ud;
	(void)ith;
	(void)nth;
	/* large contiguous chunks taken from a shared counter: a thread that
	 * got less CPU (a loaded machine) simply takes fewer of them */
	int k = 0;
	for (;;) {
		int64_t i = atomic_fetch_add_explicit(&mm->next, 1, memory_order_relaxed);
		if (i >= mm->first[mm->n])
			break;
		while (i >= mm->first[k + 1])
			k++;
		const struct mm_job *j = &mm->jobs[k];
		int64_t r0 = (i - mm->first[k]) * j->chunk;
		mm_rows(j, r0, r0 + j->chunk < j->R ? r0 + j->chunk : j->R);
	}
}

/* Whether job b can use job a's quantised activations: the same dot
 * type, aux words and AMX packing (Q4_K_X8's AMX packing is its own) */
static bool mm_share(const struct mm_job *a, bool amx_a, const struct mm_job *b, bool amx_b)
{
	return a->dot_type == b->dot_type && a->auxw == b->auxw && amx_a == amx_b &&
	       !(amx_a && (a->type == AB_TYPE_Q4_K_X8 || b->type == AB_TYPE_Q4_K_X8));
}

void ab_matmul_n(const struct ab_matmul_op *ops, int n, int64_t C, const float *X, int64_t T,
		 struct ab_pool *pool)
{
	struct mm_job jobs[AB_MATMUL_MAX];
	bool amx[AB_MATMUL_MAX];
	int nj = 0;
	if (n < 1 || n > AB_MATMUL_MAX)
		return;
	for (int i = 0; i < n; i++)
		if (mm_setup(&jobs[nj], ops[i].W, ops[i].type, ops[i].R, C, X, T, ops[i].Y, &amx[nj]))
			nj++;
	if (nj == 0)
		return;
	for (int i = 1; i < nj; i++)
		if (!mm_share(&jobs[0], amx[0], &jobs[i], amx[i])) {
			/* activations quantised differently: one product at a time */
			for (int k = 0; k < n; k++)
				ab_matmul_n(&ops[k], 1, C, X, T, pool);
			return;
		}

	struct mm_job *j = &jobs[0];
	int nth = pool ? ab_pool_threads(pool) : 1;
	char *buf = NULL;
	if (j->dot_type == AB_TYPE_F32) {
		j->xq = (char *)(uintptr_t)X;
	} else {
		size_t xdb = (size_t)T * j->auxw * 4;
		buf = ab_xmalloc(xdb + j->xrow * (size_t)T + 64);
		j->xd = xdb ? (float *)(void *)buf : NULL;
		j->xq = buf + xdb;
		/* the aux words' scales only when AMX takes every row of every
		 * product (no AVX kernel reads the rest) */
		j->scales_only = amx[0] && j->type != AB_TYPE_Q4_K_X8;
		for (int i = 0; i < nj; i++)
			j->scales_only = j->scales_only && jobs[i].R % 16 == 0;
		if (amx[0] && j->type != AB_TYPE_Q4_K_X8) /* packed by mm_quant_task */
			j->xa = ab_xmalloc(ab__amx_a_bytes(T, C / QK));
		if (nth > 1 && T >= 4) {
			struct mm_quant q = {.j = j};
			atomic_init(&q.next, 0);
			ab_pool_run(pool, mm_quant_task, &q);
		} else {
			mm_quant_rows(j, 0, T);
		}
		if (amx[0] && j->type == AB_TYPE_Q4_K_X8) {
			j->xa = ab_xmalloc(ab__amx_k_bytes(T, C / QKK));
			ab__amx_pack_k(j->xq, j->xrow, j->xd, j->auxw, T, C / QKK, j->xa);
		}
	}
	for (int i = 1; i < nj; i++) {
		jobs[i].xq = j->xq, jobs[i].xd = j->xd, jobs[i].xa = j->xa;
		jobs[i].scales_only = j->scales_only;
	}
	bool pooled = false;
	for (int i = 0; i < nj; i++)
		pooled = pooled || jobs[i].R >= 64 || T > 1;
	if (nth > 1 && pooled) {
		/* four chunks a thread and product: few atomic operations, some
		 * balancing; chunks of whole groups of eight rows (sixteen for
		 * AMX) */
		struct mm_multi mm = {.jobs = jobs, .n = nj};
		for (int i = 0; i < nj; i++) {
			int64_t g = jobs[i].xa ? 16 : 8;
			int64_t units = (jobs[i].R + g - 1) / g, per = (units + 4 * nth - 1) / (4 * nth);
			jobs[i].chunk = per * g;
			mm.first[i + 1] = mm.first[i] + (jobs[i].R + jobs[i].chunk - 1) / jobs[i].chunk;
		}
		atomic_init(&mm.next, 0);
		ab_pool_run(pool, mm_multi_task, &mm);
	} else {
		for (int i = 0; i < nj; i++)
			mm_rows(&jobs[i], 0, jobs[i].R);
	}
	free(j->xa);
	free(buf);
}

void ab_matmul(const void *W, uint32_t type, int64_t R, int64_t C, const float *X, int64_t T,
	       float *Y, struct ab_pool *pool)
{
	struct ab_matmul_op op = {.W = W, .type = type, .R = R, .Y = Y};
	ab_matmul_n(&op, 1, C, X, T, pool);
}

/* One group of eight rows (src0, rows wrow bytes apart) into its X8
 * layout at gd: the scalar form, and an AVX2 one that moves the bytes as
 * a 4 x 4 (Q4_0, rows r and r + 4 in the halves of a vector) or 8 x 8
 * (Q8_0) transpose of dwords, with the next blocks of the eight rows
 * prefetched (the rows are eight streams through the file's pages); the
 * same bytes. */
static void repack_group_scalar(uint32_t type, const char *src0, size_t wrow, int64_t nb, uint8_t *gd)
{
	for (int64_t b = 0; b < nb; b++) {
		if (type == AB_TYPE_Q4_0) {
			uint8_t *blk = gd + (size_t)b * X8_BLK;
			for (int r = 0; r < 8; r++) {
				const struct blk_q4_0 *src =
					(const struct blk_q4_0 *)(const void *)(src0 + (size_t)r * wrow) + b;
				memcpy(blk + 2 * r, &src->d, 2);
				for (int c = 0; c < 4; c++)
					memcpy(blk + 16 + 32 * c + 4 * r, src->qs + 4 * c, 4);
			}
		} else {
			uint8_t *blk = gd + (size_t)b * X8Q8_BLK;
			for (int r = 0; r < 8; r++) {
				const struct blk_q8_0 *src =
					(const struct blk_q8_0 *)(const void *)(src0 + (size_t)r * wrow) + b;
				memcpy(blk + 2 * r, &src->d, 2);
				for (int k = 0; k < 8; k++) {
					uint32_t v;
					memcpy(&v, src->qs + 4 * k, 4);
					v ^= 0x80808080u;
					memcpy(blk + 16 + 32 * k + 4 * r, &v, 4);
				}
			}
		}
	}
}

#if AB_X86
#define REPACK_PF 512 /* bytes ahead in each row */
AVX2 static void repack_group_avx2(uint32_t type, const char *src0, size_t wrow, int64_t nb, uint8_t *gd)
{
	bool q4 = type == AB_TYPE_Q4_0;
	size_t sb = q4 ? sizeof(struct blk_q4_0) : sizeof(struct blk_q8_0);
	size_t db = q4 ? X8_BLK : X8Q8_BLK;
	const __m256i off = _mm256_set1_epi8((char)0x80);
	for (int64_t b = 0; b < nb; b++) {
		const char *s = src0 + (size_t)b * sb;
		uint8_t *blk = gd + (size_t)b * db;
		uint16_t d[8];
		for (int r = 0; r < 8; r++) {
			_mm_prefetch(s + (size_t)r * wrow + REPACK_PF, _MM_HINT_T0);
			memcpy(&d[r], s + (size_t)r * wrow, 2);
		}
		memcpy(blk, d, 16);
		if (q4) {
			__m256i R[4];
			for (int i = 0; i < 4; i++)
				R[i] = _mm256_loadu2_m128i((const __m128i *)(const void *)(s + (size_t)(i + 4) * wrow + 2),
							   (const __m128i *)(const void *)(s + (size_t)i * wrow + 2));
			__m256i t0 = _mm256_unpacklo_epi32(R[0], R[1]), t1 = _mm256_unpackhi_epi32(R[0], R[1]);
			__m256i t2 = _mm256_unpacklo_epi32(R[2], R[3]), t3 = _mm256_unpackhi_epi32(R[2], R[3]);
			__m256i o[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
					_mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
			for (int c = 0; c < 4; c++)
				_mm256_storeu_si256((__m256i *)(void *)(blk + 16 + 32 * c), o[c]);
		} else {
			__m256i R[8], t[8], u[8];
			for (int i = 0; i < 8; i++)
				R[i] = _mm256_xor_si256(
					_mm256_loadu_si256((const __m256i *)(const void *)(s + (size_t)i * wrow + 2)), off);
			for (int i = 0; i < 8; i += 2) {
				t[i] = _mm256_unpacklo_epi32(R[i], R[i + 1]);
				t[i + 1] = _mm256_unpackhi_epi32(R[i], R[i + 1]);
			}
			for (int i = 0; i < 8; i += 4) {
				u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
				u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
				u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
				u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
			}
			/* u[0..3]: dwords 0..3 of rows 0..3 (low half) and 4..7
			 * (high half); u[4..7] the same for rows 4..7 */
			for (int k = 0; k < 4; k++) {
				_mm256_storeu_si256((__m256i *)(void *)(blk + 16 + 32 * k),
						    _mm256_permute2x128_si256(u[k], u[k + 4], 0x20));
				_mm256_storeu_si256((__m256i *)(void *)(blk + 16 + 32 * (k + 4)),
						    _mm256_permute2x128_si256(u[k], u[k + 4], 0x31));
			}
		}
	}
}
#endif

/* One group of eight Q4_K rows into the Q4_K_X8 layout (see
 * grp_q4_k_x8_scalar): d, dmin, the decoded scales and mins, then the
 * nibble bytes as dwords, chunk k = bytes 4k..4k+3 of each row. Written
 * a row at a time (eight sequential streams from the file's pages). */
static void repack_group_q4_k(const char *src0, size_t wrow, int64_t nb, uint8_t *gd)
{
	for (int r = 0; r < 8; r++) {
		const struct blk_q4_k *src = (const struct blk_q4_k *)(const void *)(src0 + (size_t)r * wrow);
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *blk = gd + (size_t)b * X8K4_BLK;
			memcpy(blk + 2 * r, &src[b].d, 2);
			memcpy(blk + 16 + 2 * r, &src[b].dmin, 2);
			for (int j = 0; j < 8; j++) {
				uint8_t sc, m;
				k4_scale_min(j, src[b].scales, &sc, &m);
				blk[X8K4_SC + 8 * j + r] = sc;
				blk[X8K4_MN + 16 * (j / 2) + 2 * r + (j & 1)] = m;
			}
			for (int k = 0; k < 32; k++)
				memcpy(blk + X8K4_QS + 32 * k + 4 * r, src[b].qs + 4 * k, 4);
		}
	}
}

/* One group of eight Q6_K rows into the Q6_K_X8 layout (see
 * grp_q6_k_x8_scalar): d, the scales as pairs, then ql and qh as dwords. */
static void repack_group_q6_k(const char *src0, size_t wrow, int64_t nb, uint8_t *gd)
{
	for (int r = 0; r < 8; r++) {
		const struct blk_q6_k *src = (const struct blk_q6_k *)(const void *)(src0 + (size_t)r * wrow);
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *blk = gd + (size_t)b * X8K6_BLK;
			memcpy(blk + 2 * r, &src[b].d, 2);
			for (int i = 0; i < 8; i++)
				memcpy(blk + X8K6_SC + 16 * i + 2 * r, src[b].scales + 2 * i, 2);
			for (int k = 0; k < 32; k++)
				memcpy(blk + X8K6_QL + 32 * k + 4 * r, src[b].ql + 4 * k, 4);
			for (int k = 0; k < 16; k++)
				memcpy(blk + X8K6_QH + 32 * k + 4 * r, src[b].qh + 4 * k, 4);
		}
	}
}

/* A buffer for a repacked matrix. Large ones have their pages faulted in
 * by one madvise(MADV_POPULATE_WRITE) (Linux 5.14; ignored elsewhere)
 * instead of one page fault per 4 KiB page while the repack writes
 * (load of the 1.1B Q8_0 model ~15% shorter; the zeroing of the fresh
 * pages by the kernel, the rest of that cost, stays). */
static void *alloc_packed(size_t n)
{
	uint8_t *p = ab_xmalloc(n);
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
	uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(pg - 1);
	if (pg > 0 && n >= ((size_t)1 << 20) && e > a)
		(void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#endif
	return p;
}

int ab_quant_repack(uint32_t type, const void *W, int64_t R, int64_t C, void **out,
		    uint32_t *out_type)
{
	if (!out || !out_type || !W || R <= 0 || C <= 0)
		return AB_EINVAL;
	*out = NULL;
	*out_type = type;
	if (type == AB_TYPE_Q4_K || type == AB_TYPE_Q6_K) {
		/* only for the AVX2 kernels: the scalar ones of the repacked
		 * layouts are the reference, 1.5-3x slower than the plain
		 * scalar kernels (the CPU, not ab_quant_force_scalar: tests
		 * compare the two on the same repacked matrix) */
		if (R % 8 || C % QKK || !cpu_has_avx2())
			return 0;
		uint32_t xt = type == AB_TYPE_Q4_K ? AB_TYPE_Q4_K_X8 : AB_TYPE_Q6_K_X8;
		int64_t nb = C / QKK;
		size_t wrow = ab_type_row_bytes(type, C), grow = ab_type_row_bytes(xt, C);
		uint8_t *dst = alloc_packed(grow * (size_t)R);
		for (int64_t g = 0; g < R / 8; g++) {
			const char *src0 = (const char *)W + (size_t)(8 * g) * wrow;
			if (type == AB_TYPE_Q4_K)
				repack_group_q4_k(src0, wrow, nb, dst + (size_t)g * 8 * grow);
			else
				repack_group_q6_k(src0, wrow, nb, dst + (size_t)g * 8 * grow);
		}
		*out = dst;
		*out_type = xt;
		return 0;
	}
	if ((type != AB_TYPE_Q4_0 && type != AB_TYPE_Q8_0) || R % 8 || C % QK)
		return 0;
	int64_t nb = C / QK;
	size_t wrow = ab_type_row_bytes(type, C);
	uint8_t *dst = alloc_packed(wrow * (size_t)R);
	for (int64_t g = 0; g < R / 8; g++) {
		uint8_t *gd = dst + (size_t)g * 8 * wrow;
		const char *src0 = (const char *)W + (size_t)(8 * g) * wrow;
#if AB_X86
		if (use_avx2()) {
			repack_group_avx2(type, src0, wrow, nb, gd);
			continue;
		}
#endif
		repack_group_scalar(type, src0, wrow, nb, gd);
	}
	*out = dst;
	*out_type = type == AB_TYPE_Q4_0 ? AB_TYPE_Q4_0_X8 : AB_TYPE_Q8_0_X8;
	return 0;
}
