/*
 * vkernels.c - distance kernels (vkernels.h): scalar forms, SIMD forms
 * compiled per function with __attribute__((target)), and the cpuid probe
 * that picks among them.
 *
 * Why a probe of our own rather than __builtin_cpu_supports: clang 14 does
 * not know every feature name (it rejects "f16c" and "avxvnni"), and the
 * builtin does not say whether the OS saves the wide registers. So we read
 * cpuid leaves 1 and 7 and XCR0 (xgetbv) ourselves: AVX needs XCR0 bits
 * 1-2 (SSE and YMM state), AVX-512 also bits 5-7 (opmask, ZMM upper
 * halves, ZMM16-31).
 *
 * The int8 dot product in SIMD: the x86 byte multiplies (vpmaddubsw,
 * vpdpbusd) take one unsigned and one signed operand, so we feed |a| and
 * b * sign(a), whose product is a * b. With codes in [-127, 127] no pair
 * sum saturates (2 * 127 * 127 < 32767). AVX2 widens the 16-bit pair sums
 * with vpmaddwd; the VNNI forms accumulate straight into 32-bit lanes.
 *
 * Lengths: every kernel takes any n. The SIMD loops run over whole
 * registers; AVX-512 finishes with a masked load, the others with a
 * scalar tail. Several accumulators hide the FMA latency.
 */
#include "vkernels.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define AB_VK_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ---- scalar ---- */

float ab_vk_dot_f32_scalar(const float *a, const float *b, size_t n)
{
	/* four partial sums: the same association the SIMD forms use, and
	 * a loop the compiler can keep in registers */
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < n; i++)
		s0 += a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

int32_t ab_vk_dot_i8_scalar(const int8_t *a, const int8_t *b, size_t n)
{
	int32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (int32_t)a[i] * (int32_t)b[i];
	return s;
}

static uint32_t popcount_bytes(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint32_t d = 0;
	size_t i = 0;
	for (; i + 8 <= nbytes; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		d += (uint32_t)__builtin_popcountll(x ^ y);
	}
	for (; i < nbytes; i++)
		d += (uint32_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	return d;
}

uint32_t ab_vk_hamming_scalar(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	return popcount_bytes(a, b, nbytes);
}

#ifdef AB_VK_X86

/* The same loop compiled with the popcnt instruction available. */
__attribute__((target("popcnt"))) static uint32_t hamming_popcnt(const uint8_t *a,
								  const uint8_t *b, size_t nbytes)
{
	uint32_t d = 0;
	size_t i = 0;
	for (; i + 8 <= nbytes; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		d += (uint32_t)__builtin_popcountll(x ^ y);
	}
	for (; i < nbytes; i++)
		d += (uint32_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	return d;
}

/* ---- AVX2 + FMA ---- */

__attribute__((target("avx2,fma"))) static float hsum256_ps(__m256 v)
{
	__m128 lo = _mm256_castps256_ps128(v);
	__m128 hi = _mm256_extractf128_ps(v, 1);
	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
	return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static int32_t hsum256_epi32(__m256i v)
{
	__m128i lo = _mm256_castsi256_si128(v);
	__m128i hi = _mm256_extracti128_si256(v, 1);
	lo = _mm_add_epi32(lo, hi);
	lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4e));
	lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xb1));
	return _mm_cvtsi128_si32(lo);
}

__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b,
							       size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	float s = hsum256_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* |a| and b*sign(a) as two registers: the operands of an unsigned x
 * signed byte multiply whose product is a*b. */
#define AB_VK_ABS_SIGN256(va, vb, ua, sb)                                                  \
	do {                                                                              \
		(ua) = _mm256_sign_epi8((va), (va));                                      \
		(sb) = _mm256_sign_epi8((vb), (va));                                      \
	} while (0)

__attribute__((target("avx2,fma"))) static int32_t dot_i8_avx2(const int8_t *a, const int8_t *b,
								size_t n)
{
	const __m256i ones = _mm256_set1_epi16(1);
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		__m256i a0 = _mm256_loadu_si256((const __m256i *)(const void *)(a + i));
		__m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + i));
		__m256i a1 = _mm256_loadu_si256((const __m256i *)(const void *)(a + i + 32));
		__m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + i + 32));
		__m256i u0, t0, u1, t1;
		AB_VK_ABS_SIGN256(a0, b0, u0, t0);
		AB_VK_ABS_SIGN256(a1, b1, u1, t1);
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(u0, t0), ones));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(u1, t1), ones));
	}
	for (; i + 32 <= n; i += 32) {
		__m256i a0 = _mm256_loadu_si256((const __m256i *)(const void *)(a + i));
		__m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + i));
		__m256i u0, t0;
		AB_VK_ABS_SIGN256(a0, b0, u0, t0);
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(u0, t0), ones));
	}
	int32_t s = hsum256_epi32(_mm256_add_epi32(s0, s1));
	for (; i < n; i++)
		s += (int32_t)a[i] * (int32_t)b[i];
	return s;
}

/* ---- AVX-VNNI (VEX-encoded vpdpbusd on YMM) ---- */

__attribute__((target("avx2,fma,avxvnni"))) static int32_t dot_i8_avxvnni(const int8_t *a,
									   const int8_t *b, size_t n)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		__m256i a0 = _mm256_loadu_si256((const __m256i *)(const void *)(a + i));
		__m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + i));
		__m256i a1 = _mm256_loadu_si256((const __m256i *)(const void *)(a + i + 32));
		__m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + i + 32));
		__m256i u0, t0, u1, t1;
		AB_VK_ABS_SIGN256(a0, b0, u0, t0);
		AB_VK_ABS_SIGN256(a1, b1, u1, t1);
		s0 = _mm256_dpbusd_avx_epi32(s0, u0, t0);
		s1 = _mm256_dpbusd_avx_epi32(s1, u1, t1);
	}
	for (; i + 32 <= n; i += 32) {
		__m256i a0 = _mm256_loadu_si256((const __m256i *)(const void *)(a + i));
		__m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + i));
		__m256i u0, t0;
		AB_VK_ABS_SIGN256(a0, b0, u0, t0);
		s0 = _mm256_dpbusd_avx_epi32(s0, u0, t0);
	}
	int32_t s = hsum256_epi32(_mm256_add_epi32(s0, s1));
	for (; i < n; i++)
		s += (int32_t)a[i] * (int32_t)b[i];
	return s;
}

/* ---- AVX-512 ---- */

__attribute__((target("avx512f,avx512bw,avx512vl"))) static float dot_f32_avx512(const float *a,
										 const float *b,
										 size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	__m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	if (i < n) {
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i),
				     s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* AVX-512 without VNNI: 16-bit pair sums widened as in AVX2. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static int32_t
dot_i8_avx512bw(const int8_t *a, const int8_t *b, size_t n)
{
	const __m512i ones = _mm512_set1_epi16(1);
	const __m512i zero = _mm512_setzero_si512();
	__m512i s0 = _mm512_setzero_si512();
	size_t i = 0;
	while (i < n) {
		size_t left = n - i;
		__mmask64 k = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
		__m512i va = _mm512_maskz_loadu_epi8(k, a + i);
		__m512i vb = _mm512_maskz_loadu_epi8(k, b + i);
		__m512i ua = _mm512_abs_epi8(va);
		__m512i sb = _mm512_mask_sub_epi8(vb, _mm512_movepi8_mask(va), zero, vb);
		s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(_mm512_maddubs_epi16(ua, sb), ones));
		i += 64;
	}
	return _mm512_reduce_add_epi32(s0);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static int32_t
dot_i8_avx512vnni(const int8_t *a, const int8_t *b, size_t n)
{
	const __m512i zero = _mm512_setzero_si512();
	__m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 128 <= n; i += 128) {
		__m512i a0 = _mm512_loadu_si512((const void *)(a + i));
		__m512i b0 = _mm512_loadu_si512((const void *)(b + i));
		__m512i a1 = _mm512_loadu_si512((const void *)(a + i + 64));
		__m512i b1 = _mm512_loadu_si512((const void *)(b + i + 64));
		__m512i t0 = _mm512_mask_sub_epi8(b0, _mm512_movepi8_mask(a0), zero, b0);
		__m512i t1 = _mm512_mask_sub_epi8(b1, _mm512_movepi8_mask(a1), zero, b1);
		s0 = _mm512_dpbusd_epi32(s0, _mm512_abs_epi8(a0), t0);
		s1 = _mm512_dpbusd_epi32(s1, _mm512_abs_epi8(a1), t1);
	}
	while (i < n) {
		size_t left = n - i;
		__mmask64 k = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
		__m512i va = _mm512_maskz_loadu_epi8(k, a + i);
		__m512i vb = _mm512_maskz_loadu_epi8(k, b + i);
		__m512i sb = _mm512_mask_sub_epi8(vb, _mm512_movepi8_mask(va), zero, vb);
		s0 = _mm512_dpbusd_epi32(s0, _mm512_abs_epi8(va), sb);
		i += 64;
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

/* ---- probe ---- */

static uint64_t xcr0(void)
{
	uint32_t lo, hi;
	/* xgetbv, spelled as bytes so that no -mxsave is needed */
	__asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static void probe(struct ab_vk_cpu *c)
{
	unsigned a, b, cx, d;
	memset(c, 0, sizeof(*c));
	if (!__get_cpuid(1, &a, &b, &cx, &d))
		return;
	int fma = (cx >> 12) & 1, osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1;
	c->popcnt = (cx >> 23) & 1;
	if (!osxsave || !avx)
		return;
	uint64_t x = xcr0();
	int ymm_ok = (x & 0x6) == 0x6;
	int zmm_ok = ymm_ok && (x & 0xe0) == 0xe0;
	if (__get_cpuid_max(0, NULL) < 7)
		return;
	unsigned b7, c7, d7, a7;
	__cpuid_count(7, 0, a7, b7, c7, d7);
	unsigned a71, b71, c71, d71;
	__cpuid_count(7, 1, a71, b71, c71, d71);
	(void)b71;
	(void)c71;
	(void)d71;
	(void)d7;
	int avx2 = (b7 >> 5) & 1;
	c->avx2_fma = ymm_ok && avx2 && fma;
	c->avx_vnni = c->avx2_fma && ((a71 >> 4) & 1);
	int f = (b7 >> 16) & 1, bw = (b7 >> 30) & 1, vl = (b7 >> 31) & 1;
	c->avx512 = zmm_ok && c->avx2_fma && f && bw && vl;
	c->avx512_vnni = c->avx512 && ((c7 >> 11) & 1);
}

#else /* not x86 */

static void probe(struct ab_vk_cpu *c)
{
	memset(c, 0, sizeof(*c));
}

#endif

static struct ab_vk_cpu g_cpu;
static struct ab_vk g_tables[AB_VK_NLEVELS];
static int g_ok[AB_VK_NLEVELS];
static int g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
	probe(&g_cpu);
	g_tables[AB_VK_SCALAR] = (struct ab_vk){"scalar", ab_vk_dot_f32_scalar, ab_vk_dot_i8_scalar,
						ab_vk_hamming_scalar};
	g_ok[AB_VK_SCALAR] = 1;
#ifdef AB_VK_X86
	ab_vk_hamming_fn ham = g_cpu.popcnt ? hamming_popcnt : ab_vk_hamming_scalar;
	g_tables[AB_VK_SCALAR].hamming = ham;
	g_tables[AB_VK_AVX2] = (struct ab_vk){"avx2", dot_f32_avx2, dot_i8_avx2, ham};
	g_ok[AB_VK_AVX2] = g_cpu.avx2_fma;
	g_tables[AB_VK_AVX_VNNI] = (struct ab_vk){"avx-vnni", dot_f32_avx2, dot_i8_avxvnni, ham};
	g_ok[AB_VK_AVX_VNNI] = g_cpu.avx_vnni;
	if (g_cpu.avx512_vnni)
		g_tables[AB_VK_AVX512] =
			(struct ab_vk){"avx512-vnni", dot_f32_avx512, dot_i8_avx512vnni, ham};
	else
		g_tables[AB_VK_AVX512] =
			(struct ab_vk){"avx512", dot_f32_avx512, dot_i8_avx512bw, ham};
	g_ok[AB_VK_AVX512] = g_cpu.avx512;
#endif
	for (int l = 0; l < AB_VK_NLEVELS; l++)
		if (g_ok[l])
			g_best = l;
}

const struct ab_vk_cpu *ab_vk_cpu(void)
{
	pthread_once(&g_once, init_tables);
	return &g_cpu;
}

const struct ab_vk *ab_vk_table(enum ab_vk_level level)
{
	pthread_once(&g_once, init_tables);
	if ((int)level < 0 || level >= AB_VK_NLEVELS || !g_ok[level])
		return NULL;
	return &g_tables[level];
}

const struct ab_vk *ab_vk_best(void)
{
	pthread_once(&g_once, init_tables);
	return &g_tables[g_best];
}
