/*
 * quant_amx.c - prompt evaluation on Intel AMX for the Q4_0 / Q8_0
 * weights that quant.c repacks into groups of eight rows.
 *
 * Why. Prompt evaluation multiplies every weight matrix by tens of
 * activation rows at once; with AVX2/AVX-VNNI the work per weight block
 * (unpack, one vpdpbusd per four columns, convert, scale) is dominated
 * by instruction count, not memory. An AMX tile multiply (TDPBSSD) does
 * a 16 x 16 x 32 int8 product, the integer dots of sixteen activation
 * rows with sixteen weight rows over one 32-element block, in one
 * instruction, so the cost left is the per-block float scaling.
 *
 * How. Tile registers (configured per call, released before return):
 *   tmm0      B: one block column of sixteen weight rows (two eight-row
 *             groups), 8 rows x 64 bytes in the "VNNI" order TDPBSSD
 *             wants: row k holds elements 4k..4k+3 of each of the
 *             sixteen weight rows. That is the order of the repacked
 *             groups already (four bytes of a row at a time), so making
 *             B is two 32-byte loads per row k, the Q4_0 nibbles split
 *             and made signed (nibble - 8), the Q8_0 bytes' +128 taken
 *             off, into a 512-byte buffer in L1.
 *   tmm1      A: sixteen activation rows' Q8_0 block quants (32 bytes
 *             each), packed once per product with the rows' block
 *             scales so that a tile is 512 contiguous bytes
 *             (ab__amx_pack_a; the last tile zero-padded, its padding
 *             rows never stored).
 *   tmm4      C: the 16 x 16 exact int32 dots of the activation tile
 *             with the block column.
 *   (tmm2, tmm3, tmm5: the same for odd block columns, so that one
 *   block's tile work need not wait for the previous one's registers.)
 * For each slab of sixteen weight rows all its B tiles are made once
 * (nb x 512 bytes, in L1/L2) and reused by every activation tile. The C
 * tiles of eight block columns at a time go to an 8 KiB staging buffer
 * (two, alternating: group g + 1's tile work is issued before group g's
 * float work), and AVX-512 then adds cvt(dot) * (weight scale *
 * activation scale) into float accumulators, four activation rows at a
 * time so that their two chains each (by block parity, summed at the
 * end) stay in eight registers across the group: exactly the operations,
 * in the same order and rounding, of quant.c's eight-row AVX2 and scalar
 * kernels, so every backend gives the same bits. Measured here, the tile
 * unit and the vector float work hardly overlap (they share ports), the
 * C tile stores cost about as much as the multiplies, and per-block
 * accumulators spilled to the stack (sixteen rows x two chains need all
 * 32 registers) cost more than staging the C tiles.
 *
 * The tile state needs the kernel's permission (arch_prctl
 * ARCH_REQ_XCOMP_PERM, Linux 5.16+), asked once per process by
 * ab__amx_usable(); without it, or on a CPU without AMX-INT8 and
 * AVX-512, quant.c keeps its AVX kernels.
 */
#include "quant_amx.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) &&                                               \
	((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define HAVE_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define HAVE_AMX 0
#endif

#if HAVE_AMX

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

#define AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma,amx-tile,amx-int8")))

/* Activation rows a tile. Extracting a C tile (TILESTORED) is the
 * costly step (measured: about 20 ns for 8 rows, about as much as the
 * multiply before it, and not overlapped by more tiles in flight), so
 * tiles are as tall as AMX allows. */
#define TM 16

/* GCC's tile intrinsics are asm statements that do not tell the compiler
 * they read or write memory: a barrier keeps the stores into the tile
 * configuration and into B before the asm that reads them, and the reads
 * of cb after the tile stores. */
#define MEMBAR() __asm__ __volatile__("" ::: "memory")
#define Q8_0_BYTES 34 /* f16 scale + 32 quants */

/* the 64-byte LDTILECFG operand (palette 1) */
struct tilecfg {
	uint8_t palette;
	uint8_t start_row;
	uint8_t reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
};

static int detect(void)
{
	const char *e = getenv("AB_QUANT_NO_AMX"); /* to test/measure the AVX kernels */
	if (e && *e == '1')
		return 0;
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
		return 0;
	unsigned a, b, c, d;
	/* CPUID.(EAX=7,ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8 */
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 24 & 1) || !(d >> 25 & 1))
		return 0;
	if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
		return 0;
	return 1;
}

bool ab__amx_usable(void)
{
	static atomic_int state = -1;
	int v = atomic_load_explicit(&state, memory_order_acquire);
	if (v < 0) {
		v = detect(); /* racing callers all get the same answer */
		atomic_store_explicit(&state, v, memory_order_release);
	}
	return v == 1;
}

/* The tile shapes every kernel here uses, two sets (0, 1, 4 and 2, 3,
 * 5): B (K/4 = 8 rows of 16 columns x 4 bytes), A (TM rows x K = 32
 * bytes), C (TM rows x 16 int32). */
AMX static void load_tiles(void)
{
	_Alignas(64) struct tilecfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.palette = 1;
	for (int i = 0; i < 2; i++) {
		cfg.rows[2 * i] = 8, cfg.colsb[2 * i] = 64;
		cfg.rows[2 * i + 1] = TM, cfg.colsb[2 * i + 1] = 32;
		cfg.rows[4 + i] = TM, cfg.colsb[4 + i] = 64;
	}
	MEMBAR(); /* the stores into cfg are read by the asm */
	_tile_loadconfig(&cfg);
}

AMX static inline __m512i load_pair(const uint8_t *p0, const uint8_t *p1)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)p0)),
				  _mm256_loadu_si256((const __m256i *)(const void *)p1), 1);
}

/* The B tile of block columns k0 (rows 0..7) and k1 (rows 8..15). */
AMX static inline void make_b(bool q8, const uint8_t *k0, const uint8_t *k1, int8_t *B)
{
	if (q8) {
		const __m512i off = _mm512_set1_epi8((char)0x80);
		for (int k = 0; k < 8; k++)
			_mm512_store_si512(B + 64 * k,
					   _mm512_xor_si512(load_pair(k0 + 16 + 32 * k, k1 + 16 + 32 * k), off));
	} else {
		const __m512i lo = _mm512_set1_epi8(0xf), eight = _mm512_set1_epi8(8);
		for (int c = 0; c < 4; c++) {
			__m512i v = load_pair(k0 + 16 + 32 * c, k1 + 16 + 32 * c);
			_mm512_store_si512(B + 64 * c, _mm512_sub_epi8(_mm512_and_si512(v, lo), eight));
			_mm512_store_si512(B + 64 * (c + 4),
					   _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), lo), eight));
		}
	}
}

/* packed activations: per tile of TM rows and block column, the rows'
 * 32 quants then their TM scales */
#define A_STRIDE (TM * 32 + TM * 4)

size_t ab__amx_a_bytes(int64_t T, int64_t nb)
{
	return (size_t)((T + TM - 1) / TM) * (size_t)nb * A_STRIDE;
}

void ab__amx_pack_a(const char *xq, size_t xrow, const float *xd, size_t xds, int64_t T, int64_t nb, int8_t *xa,
		    int64_t t0, int64_t t1)
{
	int64_t tp = (T + TM - 1) / TM * TM; /* rows with padding */
	for (int64_t t = t0; t < (t1 == T ? tp : t1); t++) {
		int64_t p = t / TM, i = t % TM;
		for (int64_t b = 0; b < nb; b++) {
			int8_t *d = xa + ((size_t)p * (size_t)nb + (size_t)b) * A_STRIDE;
			float sc = 0.0f;
			if (t < T) {
				memcpy(d + 32 * i, xq + (size_t)t * xrow + (size_t)b * Q8_0_BYTES + 2, 32);
				sc = xd[(size_t)t * xds + (size_t)b];
			} else {
				memset(d + 32 * i, 0, 32);
			}
			memcpy(d + TM * 32 + 4 * i, &sc, sizeof sc);
		}
	}
}

/* Block column b of the activation tile at xp: B (cached) into tmm TB,
 * A into tmm TA, tmm TC = A x B, stored at c. Even and odd blocks use
 * their own three tiles (0, 1, 4 and 2, 3, 5): tile registers are not
 * renamed, so with one set every block's load, multiply and store would
 * wait for the previous block's. */
#define ISSUE(b, c, TB, TA, TC)                                                                \
	do {                                                                                   \
		_tile_loadd(TB, bb + (size_t)(b) * 512, 64);                                   \
		_tile_loadd(TA, xp + (size_t)(b) * A_STRIDE, 32);                              \
		_tile_zero(TC);                                                                \
		_tile_dpbssd(TC, TA, TB);                                                      \
		_tile_stored(TC, (c), 64);                                                     \
		MEMBAR();                                                                      \
	} while (0)
#define ISSUE_ANY(b, c)                                                                        \
	do {                                                                                   \
		if ((b) & 1)                                                                   \
			ISSUE(b, c, 2, 3, 5);                                                  \
		else                                                                           \
			ISSUE(b, c, 0, 1, 4);                                                  \
	} while (0)

/* Float work of blocks b0..b1-1 (b0 even) for one activation tile,
 * four rows at a time: their even- and odd-block chains in eight
 * registers, read from and written back to acc (row t: the even chain
 * at acc[2 t], the odd one at acc[2 t + 1]). cs: the blocks' C tiles. */
#define FSTEP(b, q)                                                                            \
	do {                                                                                   \
		const int32_t *c = cs + (size_t)((b) - b0) * 256 + 16 * tq;                    \
		const float *xs = (const float *)(const void *)(xp + (size_t)(b) * A_STRIDE + TM * 32) + tq; \
		__m512 dw = dws[b];                                                            \
		q##0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c)),              \
				       _mm512_mul_ps(dw, _mm512_set1_ps(xs[0])), q##0);        \
		q##1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 16)),         \
				       _mm512_mul_ps(dw, _mm512_set1_ps(xs[1])), q##1);        \
		q##2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 32)),         \
				       _mm512_mul_ps(dw, _mm512_set1_ps(xs[2])), q##2);        \
		q##3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 48)),         \
				       _mm512_mul_ps(dw, _mm512_set1_ps(xs[3])), q##3);        \
	} while (0)

AMX static void float_group(const int32_t *cs, const int8_t *xp, const __m512 *dws, int64_t b0, int64_t b1,
			    __m512 *acc)
{
	for (int tq = 0; tq < TM; tq += 4) {
		__m512 e0 = acc[2 * tq], e1 = acc[2 * tq + 2], e2 = acc[2 * tq + 4], e3 = acc[2 * tq + 6];
		__m512 o0 = acc[2 * tq + 1], o1 = acc[2 * tq + 3], o2 = acc[2 * tq + 5], o3 = acc[2 * tq + 7];
		int64_t b = b0;
		for (; b + 1 < b1; b += 2) {
			FSTEP(b, e);
			FSTEP(b + 1, o);
		}
		if (b < b1)
			FSTEP(b, e);
		acc[2 * tq] = e0, acc[2 * tq + 2] = e1, acc[2 * tq + 4] = e2, acc[2 * tq + 6] = e3;
		acc[2 * tq + 1] = o0, acc[2 * tq + 3] = o1, acc[2 * tq + 5] = o2, acc[2 * tq + 7] = o3;
	}
}

/* block columns whose C tiles are staged together; even, so that a group
 * starts on an even block and the chains' parity is the block's */
#define GB 8

AMX void ab__amx_x8(bool q8, const uint8_t *W, size_t wrow, int64_t r0, int64_t r1, int64_t R, int64_t nb,
		    const int8_t *xa, int64_t T, float *Y)
{
	const size_t blk = q8 ? AB_X8_Q8_BLK : AB_X8_Q4_BLK;
	load_tiles();

	int8_t *bb = aligned_alloc(64, (size_t)nb * 512); /* the slab's B tiles */
	if (!bb)
		abort();
	__m512 *dws = aligned_alloc(64, (size_t)nb * sizeof(__m512)); /* and weight scales */
	if (!dws)
		abort();
	_Alignas(64) int32_t cs[2][GB * TM * 16]; /* C tiles of two groups of blocks */
	__m512 acc[2 * TM];

	for (int64_t r = r0; r < r1; r += 16) {
		const uint8_t *g0 = W + (size_t)r * wrow, *g1 = W + (size_t)(r + 8) * wrow;
		for (int64_t b = 0; b < nb; b++) {
			const uint8_t *k0 = g0 + (size_t)b * blk, *k1 = g1 + (size_t)b * blk;
			make_b(q8, k0, k1, bb + (size_t)b * 512);
			dws[b] = _mm512_cvtph_ps(_mm256_inserti128_si256(
				_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)k0)),
				_mm_loadu_si128((const __m128i *)(const void *)k1), 1));
		}
		MEMBAR();
		for (int64_t t0 = 0; t0 < T; t0 += TM) {
			const int8_t *xp = xa + (size_t)(t0 / TM) * (size_t)nb * A_STRIDE;
			for (int t = 0; t < 2 * TM; t++)
				acc[t] = _mm512_setzero_ps();
			/* software pipeline: the tile work of group g + 1 is
			 * issued before the float work of group g */
			for (int64_t b = 0; b < nb && b < GB; b++)
				ISSUE_ANY(b, cs[0] + (size_t)b * 256);
			for (int64_t gs = 0, g = 0; gs < nb; gs += GB, g++) {
				int64_t ge = gs + GB < nb ? gs + GB : nb, n1 = ge + GB < nb ? ge + GB : nb;
				for (int64_t b = ge; b < n1; b++)
					ISSUE_ANY(b, cs[(g + 1) & 1] + (size_t)(b - ge) * 256);
				float_group(cs[g & 1], xp, dws, gs, ge, acc);
			}
			int nt = T - t0 < TM ? (int)(T - t0) : TM;
			for (int t = 0; t < nt; t++)
				_mm512_storeu_ps(Y + (size_t)(t0 + t) * (size_t)R + r,
						 _mm512_add_ps(acc[2 * t], acc[2 * t + 1]));
		}
	}
	free(dws);
	free(bb);
	_tile_release();
}

/* ---- Q4_K_X8 ----
 *
 * Q4_K super-blocks of 256 weights: eight sub-blocks of 32 with a 6-bit
 * scale and min each, d and dmin per row (quant.c's Q4_K_X8 layout has
 * them decoded, eight rows interleaved). Against Q8_K activations (one
 * float scale per 256, pair sums of the 16-value byte sums in the aux
 * words) the exact integers per row and super-block are
 *   isum = sum_j sc_j * dot_j    (dot_j: the sub-block's 32 products)
 *   msum = sum_j m_j * bsp_j
 * and the float step is sum = sum + ((d dx) isum - (dmin dx) msum). The
 * tiles give dot_j for sixteen activation rows and sixteen weight rows
 * (K = 32 again, one C tile per sub-block: B holds the sub-block's
 * nibbles, unsigned 0..15, made once per slab); AVX-512 multiplies by the
 * scales (vpmulld, exact), forms msum with vpmaddwd on the mins pairs,
 * and does the float step in quant.c's order: the same bits. */

#define KA_STRIDE (8 * TM * 32 + TM * 4 + TM * 16) /* per tile and super-block */
#define Q8K_BYTES 292                              /* f32 d, 256 quants, 16 int16 sums */

size_t ab__amx_k_bytes(int64_t T, int64_t nb)
{
	return (size_t)((T + TM - 1) / TM) * (size_t)nb * KA_STRIDE;
}

void ab__amx_pack_k(const char *xq, size_t xrow, const float *xd, size_t xds, int64_t T, int64_t nb, int8_t *xa)
{
	for (int64_t p = 0; p < (T + TM - 1) / TM; p++)
		for (int64_t b = 0; b < nb; b++) {
			int8_t *d = xa + ((size_t)p * (size_t)nb + (size_t)b) * KA_STRIDE;
			float dx[TM];
			int16_t bsp[TM][8];
			for (int64_t i = 0; i < TM; i++) {
				int64_t t = TM * p + i;
				const char *xb = xq + (size_t)t * xrow + (size_t)b * Q8K_BYTES;
				for (int j = 0; j < 8; j++) {
					if (t < T)
						memcpy(d + 512 * j + 32 * i, xb + 4 + 32 * j, 32);
					else
						memset(d + 512 * j + 32 * i, 0, 32);
				}
				if (t < T) {
					memcpy(&dx[i], xb, 4);
					memcpy(bsp[i], (const char *)(xd + (size_t)t * xds + 4 * (size_t)b), 16);
				} else {
					dx[i] = 0.0f;
					memset(bsp[i], 0, 16);
				}
			}
			memcpy(d + 8 * TM * 32, dx, sizeof dx);
			memcpy(d + 8 * TM * 32 + TM * 4, bsp, sizeof bsp);
		}
}

/* what a slab of sixteen weight rows needs per super-block: the eight B
 * tiles, then the scales (int32, per sub-block), the mins pairs (int16
 * pairs, per pair of sub-blocks), d and dmin (float) */
struct kslab {
	int8_t B[8][512];
	__m512i sc[8];
	__m512i mn[4];
	__m512 d, dmin;
};

AMX static void make_kslab(const uint8_t *k0, const uint8_t *k1, struct kslab *ks)
{
	const __m512i lo = _mm512_set1_epi8(0xf);
	for (int pr = 0; pr < 4; pr++)
		for (int c = 0; c < 8; c++) {
			size_t off = AB_X8K4_QS + 256 * (size_t)pr + 32 * (size_t)c;
			__m512i v = load_pair(k0 + off, k1 + off);
			_mm512_store_si512(ks->B[2 * pr] + 64 * c, _mm512_and_si512(v, lo));
			_mm512_store_si512(ks->B[2 * pr + 1] + 64 * c, _mm512_and_si512(_mm512_srli_epi16(v, 4), lo));
		}
	for (int j = 0; j < 8; j++)
		ks->sc[j] = _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(
			_mm_loadl_epi64((const __m128i *)(const void *)(k0 + AB_X8K4_SC + 8 * j)),
			_mm_loadl_epi64((const __m128i *)(const void *)(k1 + AB_X8K4_SC + 8 * j))));
	for (int i = 0; i < 4; i++)
		ks->mn[i] = _mm512_inserti64x4(
			_mm512_castsi256_si512(_mm256_cvtepu8_epi16(
				_mm_loadu_si128((const __m128i *)(const void *)(k0 + AB_X8K4_MN + 16 * i)))),
			_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(k1 + AB_X8K4_MN + 16 * i))),
			1);
	ks->d = _mm512_cvtph_ps(_mm256_inserti128_si256(
		_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)k0)),
		_mm_loadu_si128((const __m128i *)(const void *)k1), 1));
	ks->dmin = _mm512_cvtph_ps(_mm256_inserti128_si256(
		_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(k0 + 16))),
		_mm_loadu_si128((const __m128i *)(const void *)(k1 + 16)), 1));
}

/* sub-block j of the super-block at ks / pa: C tile into cj */
#define KISSUE(j, cj, TB, TA, TC)                                                              \
	do {                                                                                   \
		_tile_loadd(TB, ks->B[j], 64);                                                 \
		_tile_loadd(TA, pa + 512 * (j), 32);                                           \
		_tile_zero(TC);                                                                \
		_tile_dpbssd(TC, TA, TB);                                                      \
		_tile_stored(TC, (cj), 64);                                                    \
	} while (0)

AMX void ab__amx_q4k(const uint8_t *W, size_t wrow, int64_t r0, int64_t r1, int64_t R, int64_t nb,
		     const int8_t *xa, int64_t T, float *Y)
{
	load_tiles();

	struct kslab *slab = aligned_alloc(64, (size_t)nb * sizeof(struct kslab));
	if (!slab)
		abort();
	_Alignas(64) int32_t cb[8][TM * 16];

	for (int64_t r = r0; r < r1; r += 16) {
		const uint8_t *g0 = W + (size_t)r * wrow, *g1 = W + (size_t)(r + 8) * wrow;
		for (int64_t b = 0; b < nb; b++)
			make_kslab(g0 + (size_t)b * AB_X8K4_BLK, g1 + (size_t)b * AB_X8K4_BLK, &slab[b]);
		MEMBAR();
		for (int64_t t0 = 0; t0 < T; t0 += TM) {
			__m512 sum[TM];
			for (int t = 0; t < TM; t++)
				sum[t] = _mm512_setzero_ps();
			for (int64_t b = 0; b < nb; b++) {
				const struct kslab *ks = &slab[b];
				const int8_t *pa = xa + ((size_t)(t0 / TM) * (size_t)nb + (size_t)b) * KA_STRIDE;
				KISSUE(0, cb[0], 0, 1, 4);
				KISSUE(1, cb[1], 2, 3, 5);
				KISSUE(2, cb[2], 0, 1, 4);
				KISSUE(3, cb[3], 2, 3, 5);
				KISSUE(4, cb[4], 0, 1, 4);
				KISSUE(5, cb[5], 2, 3, 5);
				KISSUE(6, cb[6], 0, 1, 4);
				KISSUE(7, cb[7], 2, 3, 5);
				MEMBAR();
				const float *dx = (const float *)(const void *)(pa + 8 * TM * 32);
				const int32_t *bsp = (const int32_t *)(const void *)(pa + 8 * TM * 32 + TM * 4);
				for (int t = 0; t < TM; t++) {
					__m512i is = _mm512_mullo_epi32(_mm512_load_si512(cb[0] + 16 * t), ks->sc[0]);
					for (int j = 1; j < 8; j++)
						is = _mm512_add_epi32(is, _mm512_mullo_epi32(_mm512_load_si512(cb[j] + 16 * t),
											ks->sc[j]));
					__m512i ms = _mm512_madd_epi16(ks->mn[0], _mm512_set1_epi32(bsp[4 * t]));
					for (int i = 1; i < 4; i++)
						ms = _mm512_add_epi32(ms, _mm512_madd_epi16(ks->mn[i],
											_mm512_set1_epi32(bsp[4 * t + i])));
					__m512 dxv = _mm512_set1_ps(dx[t]);
					__m512 dd = _mm512_mul_ps(ks->d, dxv), dm = _mm512_mul_ps(ks->dmin, dxv);
					__m512 v = _mm512_sub_ps(_mm512_mul_ps(dd, _mm512_cvtepi32_ps(is)),
								 _mm512_mul_ps(dm, _mm512_cvtepi32_ps(ms)));
					sum[t] = _mm512_add_ps(sum[t], v);
				}
			}
			int nt = T - t0 < TM ? (int)(T - t0) : TM;
			for (int t = 0; t < nt; t++)
				_mm512_storeu_ps(Y + (size_t)(t0 + t) * (size_t)R + r, sum[t]);
		}
	}
	free(slab);
	_tile_release();
}

#else /* !HAVE_AMX */

bool ab__amx_usable(void)
{
	return false;
}

size_t ab__amx_a_bytes(int64_t T, int64_t nb)
{
	(void)T, (void)nb;
	return 0;
}

/* never called: ab__amx_usable() is false */
void ab__amx_pack_a(const char *xq, size_t xrow, const float *xd, size_t xds, int64_t T, int64_t nb, int8_t *xa,
		    int64_t t0, int64_t t1)
{
	(void)xq, (void)xrow, (void)xd, (void)xds, (void)T, (void)nb, (void)xa, (void)t0, (void)t1;
	abort();
}

void ab__amx_x8(bool q8, const uint8_t *W, size_t wrow, int64_t r0, int64_t r1, int64_t R, int64_t nb,
		const int8_t *xa, int64_t T, float *Y)
{
	(void)q8, (void)W, (void)wrow, (void)r0, (void)r1, (void)R, (void)nb;
	(void)xa, (void)T, (void)Y;
	abort();
}

size_t ab__amx_k_bytes(int64_t T, int64_t nb)
{
	(void)T, (void)nb;
	return 0;
}

void ab__amx_pack_k(const char *xq, size_t xrow, const float *xd, size_t xds, int64_t T, int64_t nb, int8_t *xa)
{
	(void)xq, (void)xrow, (void)xd, (void)xds, (void)T, (void)nb, (void)xa;
	abort();
}

void ab__amx_q4k(const uint8_t *W, size_t wrow, int64_t r0, int64_t r1, int64_t R, int64_t nb,
		 const int8_t *xa, int64_t T, float *Y)
{
	(void)W, (void)wrow, (void)r0, (void)r1, (void)R, (void)nb, (void)xa, (void)T, (void)Y;
	abort();
}

#endif
