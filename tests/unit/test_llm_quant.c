/*
 * test_llm_quant.c - the numeric kernels of the engine (src/llm/quant.c,
 * src/llm/pool.c): dequantisation of every tensor of the reference GGUF
 * files against the sha256 of ggml's float32 output (the tensor bytes are
 * read with plain fread at the offsets listed in expected.json, so these
 * tests do not depend on the GGUF parser), f16/bf16 conversion edge
 * cases, quantise/dequantise round-trip error bounds, ab_matmul (AVX2
 * against scalar, both against a float64 reference on the same rounded
 * activations, T = 1 against T = 7, odd row counts, pools of 1-3
 * threads) and the thread pool itself.
 *
 * The reference files live in ../shared/models/reference next to the
 * source tree (AB_SHARED_DIR overrides ../shared); tests that need them
 * skip with a message when they are missing.
 */
#include <criterion/criterion.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab_build.h"
#include "common.h"
#include "quant.h"
#include "sha256.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

static char *ref_dir(void)
{
	const char *env = getenv("AB_SHARED_DIR");
	if (env && *env)
		return ab_xasprintf("%s/models/reference", env);
	return ab_xasprintf("%s/models/reference", AB_SOURCE_ROOT "/../shared");
}

/* ---- small deterministic RNG ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_u64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(void)
{
	return ((double)(rng_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static float rng_gauss(void)
{
	double u = rng_unit(), v = rng_unit();
	return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bitsf(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---- reference dequantisation ---- */

struct deq_stats {
	int tensors, sha_ok;
	int by_type[AB_TYPE__MAX];
};

static void check_model(const char *dir, const char *model, struct deq_stats *st)
{
	char *jpath = ab_xasprintf("%s/%s.expected.json", dir, model);
	json_error_t err;
	json_t *root = json_load_file(jpath, 0, &err);
	cr_assert(root, "%s: %s", jpath, err.text);
	json_t *m = json_object_get(root, "model");
	const char *file = json_string_value(json_object_get(m, "file"));
	cr_assert(file);
	char *gpath = ab_xasprintf("%s/%s", dir, file);
	FILE *f = fopen(gpath, "rb");
	if (!f) {
		/* tiny-llama-spm.f16.gguf is documented as not stored */
		cr_log_info("%s: not present, skipped", gpath);
		free(gpath);
		free(jpath);
		json_decref(root);
		return;
	}
	json_t *tensors = json_object_get(m, "tensors");
	size_t i;
	json_t *t;
	json_array_foreach(tensors, i, t)
	{
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *tname = json_string_value(json_object_get(t, "type"));
		int type = ab_type_parse(tname);
		cr_assert(type >= 0, "%s: type %s", name, tname);
		int64_t n = 1;
		size_t k;
		json_t *e;
		json_array_foreach(json_object_get(t, "ne"), k, e) n *= json_integer_value(e);
		long long off = json_integer_value(json_object_get(t, "data_offset"));
		size_t nbytes = (size_t)json_integer_value(json_object_get(t, "n_bytes"));
		cr_assert_eq(ab_type_row_bytes((uint32_t)type, n), nbytes, "%s: size", name);
		void *raw = ab_xmalloc(nbytes);
		cr_assert_eq(fseeko(f, off, SEEK_SET), 0);
		cr_assert_eq(fread(raw, 1, nbytes, f), nbytes, "%s: short read", name);
		float *out = ab_xmalloc((size_t)n * sizeof(float));
		cr_assert_eq(ab_dequantize((uint32_t)type, raw, out, n), 0, "%s", name);
		char hex[65];
		ab_sha256_hex(out, (size_t)n * sizeof(float), hex);
		const char *want = json_string_value(json_object_get(t, "dequant_f32_sha256"));
		st->tensors++;
		st->by_type[type]++;
		bool same = want && !strcmp(hex, want);
		st->sha_ok += same;
		/* F32/F16/Q8_0/Q4_0 must be exact; so must the K-quants, as
		 * computed here in ggml's order (checked, not just within 1 ulp) */
		cr_expect(same, "%s %s (%s): sha256 %s, want %s", model, name, tname, hex, want);
		if (!same) {
			double s = 0, l2 = 0;
			for (int64_t j = 0; j < n; j++) {
				s += out[j];
				l2 += (double)out[j] * out[j];
			}
			double ws = json_real_value(json_object_get(t, "dequant_sum"));
			double wl = json_real_value(json_object_get(t, "dequant_l2"));
			cr_log_error("  sum %.9g (want %.9g) l2 %.9g (want %.9g)", s, ws, sqrt(l2), wl);
		}
		json_t *first = json_object_get(t, "dequant_first8");
		json_array_foreach(first, k, e)
		{
			if ((int64_t)k < n)
				cr_expect_eq(out[k], (float)json_real_value(e), "%s[%zu]", name, k);
		}
		free(out);
		free(raw);
	}
	fclose(f);
	free(gpath);
	free(jpath);
	json_decref(root);
}

Test(quant, reference_dequant_sha256, .timeout = 300)
{
	static const char *models[] = {
		"stories260K", "stories260K.f16", "tiny-llama-spm.q8_0", "tiny-llama-spm.q4_0",
		"tiny-llama-spm.q4_k_m", "tiny-llama-spm.q6_k", "tiny-gpt2bpe.q8_0",
		"tiny-llama-spm.f16",
	};
	char *dir = ref_dir();
	char *probe = ab_xasprintf("%s/stories260K.expected.json", dir);
	FILE *pf = fopen(probe, "rb");
	free(probe);
	if (!pf) {
		cr_log_warn("reference files not found in %s (set AB_SHARED_DIR)", dir);
		free(dir);
		cr_skip_test("reference models missing");
	}
	fclose(pf);
	struct deq_stats st = {0};
	for (size_t i = 0; i < AB_ARRAY_LEN(models); i++)
		check_model(dir, models[i], &st);
	cr_log_info("dequant: %d/%d tensors sha256-exact (F32 %d, F16 %d, Q8_0 %d, Q4_0 %d, Q4_K %d, Q6_K %d)",
		    st.sha_ok, st.tensors, st.by_type[AB_TYPE_F32], st.by_type[AB_TYPE_F16],
		    st.by_type[AB_TYPE_Q8_0], st.by_type[AB_TYPE_Q4_0], st.by_type[AB_TYPE_Q4_K],
		    st.by_type[AB_TYPE_Q6_K]);
	cr_expect(st.by_type[AB_TYPE_Q4_K] > 0 && st.by_type[AB_TYPE_Q6_K] > 0 &&
		  st.by_type[AB_TYPE_Q4_0] > 0 && st.by_type[AB_TYPE_Q8_0] > 0 &&
		  st.by_type[AB_TYPE_F16] > 0 && st.by_type[AB_TYPE_F32] > 0);
	free(dir);
}

/* ---- types ---- */

Test(quant, type_table)
{
	const struct ab_type_info *ti = ab_type_get(AB_TYPE_Q5_K);
	cr_assert(ti);
	cr_expect(!ti->supported);
	cr_expect_eq(ti->block, 256);
	cr_expect_eq(ti->block_bytes, 176);
	cr_expect_str_eq(ti->name, "Q5_K");
	cr_expect(ab_type_get(AB_TYPE_Q4_K)->supported);
	cr_expect(ab_type_get(AB_TYPE_BF16)->supported);
	cr_expect_null(ab_type_get(AB_TYPE__MAX));
	cr_expect_null(ab_type_get(5));
	cr_expect_eq(ab_type_row_bytes(AB_TYPE_Q4_0, 64), 36);
	cr_expect_eq(ab_type_row_bytes(AB_TYPE_Q4_0, 33), 0);
	cr_expect_eq(ab_type_row_bytes(AB_TYPE_Q4_K, 128), 0);
	cr_expect_eq(ab_type_row_bytes(AB_TYPE_Q6_K, 512), 420);
	cr_expect_eq(ab_type_row_bytes(AB_TYPE_Q8_K, 256), 292);
	cr_expect_eq(ab_type_row_bytes(AB_TYPE_F16, 3), 6);
	cr_expect_eq(ab_type_row_bytes(99, 32), 0);
	cr_expect_eq(ab_type_parse("q4_k"), AB_TYPE_Q4_K);
	cr_expect_eq(ab_type_parse("F16"), AB_TYPE_F16);
	cr_expect_eq(ab_type_parse("bf16"), AB_TYPE_BF16);
	cr_expect_eq(ab_type_parse("q9_9"), -1);
	float buf[32];
	uint8_t raw[64] = {0};
	cr_expect_eq(ab_dequantize(AB_TYPE_Q4_0, raw, buf, 31), AB_EINVAL);
	cr_expect_eq(ab_dequantize(AB_TYPE_Q5_K, raw, buf, 256), AB_EINVAL);
	cr_expect_eq(ab_quantize(AB_TYPE_Q8_0, buf, raw, 16), AB_EINVAL);
}

/* ---- f16 / bf16 ---- */

static void f16_case(float f, uint16_t want)
{
	uint16_t h = ab_f32_to_f16(f);
	cr_expect_eq(h, want, "f32_to_f16(%a) = 0x%04x, want 0x%04x", (double)f, h, want);
}

Test(quant, f16_edge_cases)
{
	f16_case(0.0f, 0x0000);
	f16_case(-0.0f, 0x8000);
	f16_case(1.0f, 0x3c00);
	f16_case(-2.0f, 0xc000);
	f16_case(65504.0f, 0x7bff);
	f16_case(65519.99f, 0x7bff);
	f16_case(65520.0f, 0x7c00);
	f16_case(1e10f, 0x7c00);
	f16_case(INFINITY, 0x7c00);
	f16_case(-INFINITY, 0xfc00);
	f16_case(0x1p-24f, 0x0001);   /* smallest subnormal */
	f16_case(0x1p-25f, 0x0000);   /* tie: to even (0) */
	f16_case(0x1.8p-25f, 0x0001); /* above the tie */
	f16_case(0x3p-25f, 0x0002);   /* 1.5 ulp: tie to even (2) */
	f16_case(0x5p-25f, 0x0002);   /* 2.5 ulp: tie to even (2) */
	f16_case(0x1p-14f, 0x0400);   /* smallest normal */
	f16_case(0x1.ffcp-15f, 0x0400); /* tie rounds up into the normals */
	f16_case(0x1.ff8p-15f, 0x03ff); /* largest subnormal */
	f16_case(1.0f + 0x1p-11f, 0x3c00); /* tie: even */
	f16_case(1.0f + 0x3p-11f, 0x3c02); /* tie: even (up) */
	f16_case(1.0f + 0x1p-11f + 0x1p-20f, 0x3c01);
	uint16_t hn = ab_f32_to_f16(NAN);
	cr_expect((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff), "nan -> 0x%04x", hn);
	cr_expect(isnan(ab_f16_to_f32(0x7e00)));
	cr_expect(isnan(ab_f16_to_f32(0x7c01)));
	cr_expect_eq(ab_f16_to_f32(0x7c00), INFINITY);
	cr_expect_eq(ab_f16_to_f32(0xfc00), -INFINITY);
	cr_expect_eq(ab_f16_to_f32(0x0001), 0x1p-24f);
	cr_expect_eq(ab_f16_to_f32(0x83ff), -0x3ffp-24f);
	cr_expect_eq(ab_f16_to_f32(0x7bff), 65504.0f);
	/* every half survives the round trip (NaN stays NaN) */
	for (uint32_t h = 0; h < 65536; h++) {
		float f = ab_f16_to_f32((uint16_t)h);
		if (isnan(f))
			continue;
		cr_assert_eq(ab_f32_to_f16(f), h, "0x%04x", h);
	}
}

/* the row conversion (F16C where the CPU has it) gives ab_f32_to_f16's
 * bits for every kind of float: specials, NaN payloads, subnormal and
 * rounding ties, overflow, and random bit patterns; odd lengths for the
 * tail */
Test(quant, f16_row_matches_scalar)
{
	enum { N = 4099 };
	static float src[N];
	static uint16_t got[N + 1];
	static const uint32_t special[] = {
		0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001,
		0x7fbfffff, 0x7fe02000, 0x33000000, 0x33000001, 0x337fffff, 0x38800000, 0x387fe000,
		0x387ff000, 0x477fe000, 0x477fefff, 0x477ff000, 0x3f801000, 0x3f803000, 0x3f801001,
		0x00000001, 0x80400000, 0x4b800000,
	};
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (int i = 0; i < N; i++) {
		uint32_t u;
		if (i < (int)(sizeof(special) / sizeof(special[0]))) {
			u = special[i];
		} else {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			u = (uint32_t)x;
			if (i % 3 == 0) /* the half range, where most values live */
				u = (u & 0x80001fffu) | ((0x33u + (uint32_t)(x >> 40) % 0x15u) << 23) | (u & 0x7fe000u);
		}
		memcpy(&src[i], &u, 4);
	}
	for (int pass = 0; pass < 2; pass++) {
		ab_quant_force_scalar(pass == 1);
		for (int n = N; n >= N - 7; n -= 3) {
			memset(got, 0xa5, sizeof(got));
			ab_f32_to_f16_row(src, got, n);
			for (int i = 0; i < n; i++) {
				uint32_t u;
				memcpy(&u, &src[i], 4);
				cr_assert_eq(got[i], ab_f32_to_f16(src[i]), "%s: 0x%08x -> 0x%04x, want 0x%04x",
					     pass ? "scalar" : ab_quant_backend(), u, got[i], ab_f32_to_f16(src[i]));
			}
			cr_assert_eq(got[n], 0xa5a5, "wrote past n");
		}
	}
	ab_quant_force_scalar(false);
}

#if HAVE_X86
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
	return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h)
{
	return _cvtsh_ss(h);
}
#endif

Test(quant, f16_matches_f16c)
{
#if HAVE_X86
	unsigned a_, b_, c_, d_; /* F16C: CPUID.1:ECX bit 29 (clang lacks the builtin name) */
	if (!__get_cpuid(1, &a_, &b_, &c_, &d_) || !(c_ >> 29 & 1))
		cr_skip_test("no F16C on this CPU");
	for (uint32_t h = 0; h < 65536; h++) {
		float a = ab_f16_to_f32((uint16_t)h), b = hw_f16_to_f32((uint16_t)h);
		cr_assert_eq(fbits(a), fbits(b), "0x%04x", h);
	}
	for (int i = 0; i < 2000000; i++) {
		uint32_t u = (uint32_t)rng_u64();
		if (i & 1) /* concentrate near the half range */
			u = (u & 0x807fffff) | ((uint32_t)(100 + (u >> 23) % 45) << 23);
		float f = bitsf(u);
		cr_assert_eq(ab_f32_to_f16(f), hw_f32_to_f16(f), "0x%08x", u);
	}
#else
	cr_skip_test("not x86");
#endif
}

Test(quant, bf16_edge_cases)
{
	cr_expect_eq(ab_f32_to_bf16(1.0f), 0x3f80);
	cr_expect_eq(ab_f32_to_bf16(-0.0f), 0x8000);
	cr_expect_eq(ab_f32_to_bf16(bitsf(0x3f808000)), 0x3f80); /* tie to even */
	cr_expect_eq(ab_f32_to_bf16(bitsf(0x3f818000)), 0x3f82); /* tie to even */
	cr_expect_eq(ab_f32_to_bf16(bitsf(0x3f808001)), 0x3f81);
	cr_expect_eq(ab_f32_to_bf16(INFINITY), 0x7f80);
	cr_expect_eq(ab_f32_to_bf16(bitsf(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
	cr_expect_eq(ab_f32_to_bf16(bitsf(0x00010000)), 0x0001); /* subnormal kept */
	cr_expect_eq(ab_f32_to_bf16(bitsf(0x00018000)), 0x0002);
	uint16_t n = ab_f32_to_bf16(bitsf(0x7f800001)); /* signalling nan */
	cr_expect((n & 0x7f80) == 0x7f80 && (n & 0x7f), "nan -> 0x%04x", n);
	cr_expect_eq(ab_bf16_to_f32(0x3f80), 1.0f);
	cr_expect(isnan(ab_bf16_to_f32(0x7fc0)));
	for (uint32_t h = 0; h < 65536; h++) {
		float f = ab_bf16_to_f32((uint16_t)h);
		if (isnan(f))
			continue;
		cr_assert_eq(ab_f32_to_bf16(f), h, "0x%04x", h);
	}
}

/* ---- quantise / dequantise round trip ---- */

static double roundtrip_err(uint32_t type, const float *x, int64_t n)
{
	void *q = ab_xmalloc(ab_type_row_bytes(type, n));
	float *y = ab_xmalloc((size_t)n * sizeof(float));
	cr_assert_eq(ab_quantize(type, x, q, n), 0);
	cr_assert_eq(ab_dequantize(type, q, y, n), 0);
	double e = 0, s = 0;
	for (int64_t i = 0; i < n; i++) {
		e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
		s += (double)x[i] * x[i];
	}
	free(q);
	free(y);
	return sqrt(e / s);
}

Test(quant, roundtrip_error_bounds)
{
	const int64_t n = 256 * 64;
	float *x = ab_xmalloc((size_t)n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		x[i] = rng_gauss();
	static const struct {
		uint32_t type;
		double bound;
	} cases[] = {
		/* relative L2 error on N(0,1) data; the 4-bit bounds are the
		 * information limit of 16 levels (ggml's quantisers reach
		 * about 9% for Q4_0 and 7.5% for Q4_K on such data). */
		{AB_TYPE_F16, 3e-4},  {AB_TYPE_BF16, 3e-3}, {AB_TYPE_Q8_0, 0.008},
		{AB_TYPE_Q8_K, 0.01}, {AB_TYPE_Q6_K, 0.025}, {AB_TYPE_Q4_0, 0.11},
		{AB_TYPE_Q4_K, 0.09},
	};
	for (size_t i = 0; i < AB_ARRAY_LEN(cases); i++) {
		double e = roundtrip_err(cases[i].type, x, n);
		cr_log_info("round trip %s: relative L2 error %.4f", ab_type_get(cases[i].type)->name, e);
		cr_expect(e < cases[i].bound, "%s: %g >= %g", ab_type_get(cases[i].type)->name, e,
			  cases[i].bound);
	}
	/* exact for F32, and zero blocks stay zero */
	cr_expect_eq(roundtrip_err(AB_TYPE_F32, x, n), 0.0);
	memset(x, 0, (size_t)n * sizeof(float));
	uint32_t zt[] = {AB_TYPE_Q8_0, AB_TYPE_Q4_0, AB_TYPE_Q4_K, AB_TYPE_Q6_K, AB_TYPE_Q8_K};
	for (size_t i = 0; i < AB_ARRAY_LEN(zt); i++) {
		void *q = ab_xmalloc(ab_type_row_bytes(zt[i], 256));
		float y[256];
		ab_quantize(zt[i], x, q, 256);
		ab_dequantize(zt[i], q, y, 256);
		for (int j = 0; j < 256; j++)
			cr_assert_eq(y[j], 0.0f, "%u", zt[i]);
		free(q);
	}
	free(x);
}

Test(quant, q8_k_bsums_and_q8_0_rounding)
{
	float x[256];
	for (int i = 0; i < 256; i++)
		x[i] = rng_gauss();
	uint8_t raw[292];
	ab_quantize(AB_TYPE_Q8_K, x, raw, 256);
	const int8_t *qs = (const int8_t *)(raw + 4);
	int16_t bs[16];
	memcpy(bs, raw + 260, sizeof(bs));
	for (int g = 0; g < 16; g++) {
		int s = 0;
		for (int j = 0; j < 16; j++)
			s += qs[16 * g + j];
		cr_expect_eq(bs[g], s);
	}
	/* Q8_0: amax maps to +-127, d = amax/127 in f16 */
	float y[32];
	for (int i = 0; i < 32; i++)
		y[i] = (float)(i - 16) * 0.25f;
	uint8_t b[34];
	ab_quantize(AB_TYPE_Q8_0, y, b, 32);
	uint16_t d;
	memcpy(&d, b, 2);
	cr_expect_eq(d, ab_f32_to_f16(4.0f / 127.0f));
	cr_expect_eq((int8_t)b[2], -127);
	cr_expect_eq((int8_t)b[2 + 16], 0);
}

/* ---- matmul ---- */

static const uint32_t MM_TYPES[] = {AB_TYPE_F32, AB_TYPE_F16, AB_TYPE_BF16, AB_TYPE_Q8_0,
				    AB_TYPE_Q4_0, AB_TYPE_Q4_K, AB_TYPE_Q6_K};

static uint32_t dot_type(uint32_t t)
{
	switch (t) {
	case AB_TYPE_Q4_0:
	case AB_TYPE_Q8_0:
		return AB_TYPE_Q8_0;
	case AB_TYPE_Q4_K:
	case AB_TYPE_Q6_K:
		return AB_TYPE_Q8_K;
	default:
		return t;
	}
}

static bool integer_type(uint32_t t)
{
	return t == AB_TYPE_Q4_0 || t == AB_TYPE_Q8_0 || t == AB_TYPE_Q4_K || t == AB_TYPE_Q6_K;
}

struct mm_case {
	uint32_t type;
	int64_t R, C, T;
	void *W;
	float *X;
	double *ref;  /* T x R float64 reference */
	double *mag;  /* T x R sum |w x| */
};

static void mm_case_init(struct mm_case *c, uint32_t type, int64_t R, int64_t C, int64_t T)
{
	c->type = type;
	c->R = R;
	c->C = C;
	c->T = T;
	float *wf = ab_xmalloc((size_t)(R * C) * sizeof(float));
	for (int64_t i = 0; i < R * C; i++)
		wf[i] = rng_gauss() * 0.1f;
	size_t rb = ab_type_row_bytes(type, C);
	c->W = ab_xmalloc(rb * (size_t)R);
	cr_assert_eq(ab_quantize(type, wf, c->W, R * C), 0);
	cr_assert_eq(ab_dequantize(type, c->W, wf, R * C), 0);
	c->X = ab_xmalloc((size_t)(T * C) * sizeof(float));
	for (int64_t i = 0; i < T * C; i++)
		c->X[i] = rng_gauss();
	/* the activations as the kernels see them */
	uint32_t dt = dot_type(type);
	float *xr = ab_xmalloc((size_t)(T * C) * sizeof(float));
	void *xq = ab_xmalloc(ab_type_row_bytes(dt, C) * (size_t)T);
	cr_assert_eq(ab_quantize(dt, c->X, xq, T * C), 0);
	cr_assert_eq(ab_dequantize(dt, xq, xr, T * C), 0);
	c->ref = ab_xmalloc((size_t)(T * R) * sizeof(double));
	c->mag = ab_xmalloc((size_t)(T * R) * sizeof(double));
	for (int64_t t = 0; t < T; t++)
		for (int64_t r = 0; r < R; r++) {
			double s = 0, m = 0;
			for (int64_t k = 0; k < C; k++) {
				double p = (double)wf[r * C + k] * xr[t * C + k];
				s += p;
				m += fabs(p);
			}
			c->ref[t * R + r] = s;
			c->mag[t * R + r] = m;
		}
	free(xq);
	free(xr);
	free(wf);
}

static void mm_case_free(struct mm_case *c)
{
	free(c->W);
	free(c->X);
	free(c->ref);
	free(c->mag);
}

static float *mm_run(struct mm_case *c, bool scalar, struct ab_pool *pool)
{
	float *Y = ab_xmalloc((size_t)(c->T * c->R) * sizeof(float));
	for (int64_t i = 0; i < c->T * c->R; i++)
		Y[i] = NAN;
	ab_quant_force_scalar(scalar);
	ab_matmul(c->W, c->type, c->R, c->C, c->X, c->T, Y, pool);
	ab_quant_force_scalar(false);
	return Y;
}

Test(quant, matmul_all_types, .timeout = 300)
{
	struct ab_pool *pools[4] = {NULL, ab_pool_new(1), ab_pool_new(2), ab_pool_new(3)};
	bool have_avx2 = !strcmp(ab_quant_backend(), "avx2");
	cr_log_info("backend: %s", ab_quant_backend());
	for (size_t ti = 0; ti < AB_ARRAY_LEN(MM_TYPES); ti++) {
		uint32_t type = MM_TYPES[ti];
		const char *tn = ab_type_get(type)->name;
		struct mm_case c;
		mm_case_init(&c, type, 33, 512, 7);
		float *ys = mm_run(&c, true, NULL);
		double worst = 0;
		for (int64_t i = 0; i < c.T * c.R; i++) {
			double e = fabs(ys[i] - c.ref[i]) / (c.mag[i] + 1e-30);
			if (e > worst)
				worst = e;
			cr_assert(e < 1e-5, "%s scalar [%ld]: %.9g vs float64 %.9g", tn, (long)i,
				  (double)ys[i], c.ref[i]);
		}
		cr_log_info("matmul %s: scalar vs float64, max error %.2e of sum|w*x|", tn, worst);
		for (int p = 0; p < 4; p++) {
			for (int sc = 0; sc < 2; sc++) {
				if (!sc && !have_avx2)
					continue;
				float *y = mm_run(&c, sc, pools[p]);
				for (int64_t i = 0; i < c.T * c.R; i++) {
					if (integer_type(type) || sc)
						cr_assert_eq(fbits(y[i]), fbits(ys[i]),
							     "%s pool %d %s [%ld]: %.9g vs scalar %.9g", tn, p,
							     sc ? "scalar" : "avx2", (long)i, (double)y[i],
							     (double)ys[i]);
					else
						cr_assert(fabs(y[i] - ys[i]) <= 1e-5 * c.mag[i],
							  "%s pool %d avx2 [%ld]: %.9g vs scalar %.9g", tn, p,
							  (long)i, (double)y[i], (double)ys[i]);
				}
				free(y);
			}
		}
		/* T = 1 gives each row exactly what T = 7 gave */
		for (int sc = 0; sc < 2; sc++) {
			float *y7 = mm_run(&c, sc, pools[2]);
			struct mm_case one = c;
			one.T = 1;
			for (int64_t t = 0; t < c.T; t++) {
				one.X = c.X + t * c.C;
				float *y1 = mm_run(&one, sc, t % 2 ? pools[3] : NULL);
				for (int64_t r = 0; r < c.R; r++)
					cr_assert_eq(fbits(y1[r]), fbits(y7[t * c.R + r]), "%s t=%ld r=%ld", tn,
						     (long)t, (long)r);
				free(y1);
			}
			free(y7);
		}
		free(ys);
		mm_case_free(&c);
	}
	for (int p = 0; p < 4; p++)
		ab_pool_free(pools[p]);
}

Test(quant, matmul_shapes, .timeout = 300)
{
	/* bigger and odd shapes, tiles and thread splits that do not divide */
	struct ab_pool *pool = ab_pool_new(3);
	static const int64_t shapes[][3] = {{1, 256, 1}, {5, 768, 3}, {97, 1024, 9}, {130, 256, 17}};
	for (size_t ti = 0; ti < AB_ARRAY_LEN(MM_TYPES); ti++)
		for (size_t s = 0; s < AB_ARRAY_LEN(shapes); s++) {
			struct mm_case c;
			mm_case_init(&c, MM_TYPES[ti], shapes[s][0], shapes[s][1], shapes[s][2]);
			float *y = mm_run(&c, false, pool);
			float *ys = mm_run(&c, true, NULL);
			for (int64_t i = 0; i < c.T * c.R; i++) {
				cr_assert(fabs(y[i] - c.ref[i]) <= 1e-5 * c.mag[i], "%s R=%ld [%ld]: %.9g vs %.9g",
					  ab_type_get(c.type)->name, (long)c.R, (long)i, (double)y[i], c.ref[i]);
				if (integer_type(c.type))
					cr_assert_eq(fbits(y[i]), fbits(ys[i]));
			}
			free(y);
			free(ys);
			mm_case_free(&c);
		}
	ab_pool_free(pool);
}

/* Q4_0, Q8_0, Q4_K and Q6_K repacked eight rows at a time
 * (ab_quant_repack, what the model loader does): the same products as
 * float64 on the dequantised values, AVX2 bit-identical to scalar whatever
 * the pool, T = 1 identical to any T, and no repack where it does not
 * apply. Q4_K_X8 and Q6_K_X8 keep the plain K-quant kernels' float
 * arithmetic, so their products are also bit-identical to the unrepacked
 * matrix's. */
static uint32_t x8_type(uint32_t type)
{
	switch (type) {
	case AB_TYPE_Q4_0: return AB_TYPE_Q4_0_X8;
	case AB_TYPE_Q8_0: return AB_TYPE_Q8_0_X8;
	case AB_TYPE_Q4_K: return AB_TYPE_Q4_K_X8;
	default: return AB_TYPE_Q6_K_X8;
	}
}

static void x8_case(uint32_t type, int64_t R, int64_t C, int64_t T, struct ab_pool **pools, int npools)
{
	struct mm_case c;
	mm_case_init(&c, type, R, C, T);
	/* the plain layout's product (scalar), for Q4_K */
	float *yplain = type == AB_TYPE_Q4_K || type == AB_TYPE_Q6_K ? mm_run(&c, true, NULL) : NULL;
	void *rp = NULL;
	uint32_t rt = 0;
	cr_assert_eq(ab_quant_repack(type, c.W, R, C, &rp, &rt), 0);
	if (yplain && strcmp(ab_quant_backend(), "avx2")) {
		/* K-quants are repacked only for the AVX2 kernels */
		cr_assert_null(rp);
		cr_assert_eq(rt, type);
		free(yplain);
		mm_case_free(&c);
		return;
	}
	cr_assert_not_null(rp);
	cr_assert_eq(rt, x8_type(type));
	/* the AVX2 repack writes the scalar one's bytes */
	ab_quant_force_scalar(true);
	void *rps = NULL;
	uint32_t rts = 0;
	cr_assert_eq(ab_quant_repack(type, c.W, R, C, &rps, &rts), 0);
	ab_quant_force_scalar(false);
	cr_assert_eq(rts, rt);
	cr_assert(!memcmp(rp, rps, ab_type_row_bytes(rt, C) * (size_t)R), "repack %ldx%ld: scalar and AVX2 differ",
		  (long)R, (long)C);
	free(rps);
	free(c.W);
	c.W = rp;
	c.type = rt;
	bool have_avx2 = !strcmp(ab_quant_backend(), "avx2");
	float *ys = mm_run(&c, true, NULL);
	for (int64_t i = 0; i < T * R; i++)
		cr_assert(fabs(ys[i] - c.ref[i]) <= 1e-5 * c.mag[i], "x8 %ldx%ld T=%ld [%ld]: %.9g vs float64 %.9g",
			  (long)R, (long)C, (long)T, (long)i, (double)ys[i], c.ref[i]);
	if (yplain) {
		for (int64_t i = 0; i < T * R; i++)
			cr_assert_eq(fbits(ys[i]), fbits(yplain[i]), "%s %ldx%ld T=%ld [%ld]: %.9g vs plain %.9g",
				     ab_type_get(rt)->name, (long)R, (long)C, (long)T, (long)i, (double)ys[i],
				     (double)yplain[i]);
		free(yplain);
	}
	for (int p = 0; p < npools; p++)
		for (int sc = 0; sc < 2; sc++) {
			if (!sc && !have_avx2)
				continue;
			float *y = mm_run(&c, sc, pools[p]);
			for (int64_t i = 0; i < T * R; i++)
				cr_assert_eq(fbits(y[i]), fbits(ys[i]), "x8 %ldx%ld T=%ld pool %d %s [%ld]: %.9g vs %.9g",
					     (long)R, (long)C, (long)T, p, sc ? "scalar" : "avx2", (long)i,
					     (double)y[i], (double)ys[i]);
			free(y);
		}
	struct mm_case one = c;
	one.T = 1;
	for (int64_t t = 0; t < T; t++) {
		one.X = c.X + t * C;
		float *y1 = mm_run(&one, false, pools[t % npools]);
		for (int64_t r = 0; r < R; r++)
			cr_assert_eq(fbits(y1[r]), fbits(ys[t * R + r]), "x8 T=1 t=%ld r=%ld", (long)t, (long)r);
		free(y1);
	}
	free(ys);
	mm_case_free(&c);
}

Test(quant, matmul_q4_0_q8_0_repacked, .timeout = 300)
{
	struct ab_pool *pools[4] = {NULL, ab_pool_new(1), ab_pool_new(2), ab_pool_new(3)};
	static const int64_t shapes[][3] = {{8, 32, 1}, {16, 96, 5}, {40, 800, 7}, {96, 256, 17}, {128, 768, 3}};
	for (size_t s = 0; s < AB_ARRAY_LEN(shapes); s++) {
		x8_case(AB_TYPE_Q4_0, shapes[s][0], shapes[s][1], shapes[s][2], pools, 4);
		x8_case(AB_TYPE_Q8_0, shapes[s][0], shapes[s][1], shapes[s][2], pools, 4);
	}
	for (int p = 0; p < 4; p++)
		ab_pool_free(pools[p]);

	/* not applicable: rows not a multiple of 8, other types */
	uint8_t w[18 * 8 * 2] = {0};
	void *rp = (void *)1;
	uint32_t rt = 0;
	cr_assert_eq(ab_quant_repack(AB_TYPE_Q4_0, w, 7, 32, &rp, &rt), 0);
	cr_assert_null(rp);
	cr_assert_eq(rt, AB_TYPE_Q4_0);
	rp = (void *)1;
	cr_assert_eq(ab_quant_repack(AB_TYPE_Q8_0, w, 7, 32, &rp, &rt), 0);
	cr_assert_null(rp);
	cr_assert_eq(rt, AB_TYPE_Q8_0);
	rp = (void *)1;
	cr_assert_eq(ab_quant_repack(AB_TYPE_F32, w, 8, 32, &rp, &rt), 0);
	cr_assert_null(rp);
	cr_assert_eq(rt, AB_TYPE_F32);
	cr_assert_eq(ab_quant_repack(AB_TYPE_Q4_0, NULL, 8, 32, &rp, &rt), AB_EINVAL);
	/* a GGUF file may not claim the internal type */
	cr_assert_not_null(ab_type_get(AB_TYPE_Q4_0_X8));
	cr_assert(!ab_type_get(AB_TYPE_Q4_0_X8)->supported);
	cr_assert_not_null(ab_type_get(AB_TYPE_Q8_0_X8));
	cr_assert(!ab_type_get(AB_TYPE_Q8_0_X8)->supported);
}

Test(quant, matmul_q4_k_q6_k_repacked, .timeout = 600)
{
	struct ab_pool *pools[4] = {NULL, ab_pool_new(1), ab_pool_new(2), ab_pool_new(3)};
	static const int64_t shapes[][3] = {{8, 256, 1},   {16, 512, 5},  {24, 2048, 2}, {40, 768, 7},
					    {96, 256, 17}, {128, 1024, 3}, {64, 1280, 4}};
	for (size_t s = 0; s < AB_ARRAY_LEN(shapes); s++) {
		x8_case(AB_TYPE_Q4_K, shapes[s][0], shapes[s][1], shapes[s][2], pools, 4);
		x8_case(AB_TYPE_Q6_K, shapes[s][0], shapes[s][1], shapes[s][2], pools, 4);
	}
	for (int p = 0; p < 4; p++)
		ab_pool_free(pools[p]);

	/* not applicable: rows not a multiple of 8, columns not a multiple of
	 * the super-block (not a valid Q4_K row either) */
	uint8_t w[210 * 8] = {0};
	static const uint32_t kt[] = {AB_TYPE_Q4_K, AB_TYPE_Q6_K};
	for (size_t i = 0; i < AB_ARRAY_LEN(kt); i++) {
		void *rp = (void *)1;
		uint32_t rt = 0;
		cr_assert_eq(ab_quant_repack(kt[i], w, 7, 256, &rp, &rt), 0);
		cr_assert_null(rp);
		cr_assert_eq(rt, kt[i]);
		rp = (void *)1;
		cr_assert_eq(ab_quant_repack(kt[i], w, 8, 32, &rp, &rt), 0);
		cr_assert_null(rp);
		cr_assert_eq(rt, kt[i]);
		cr_assert_eq(ab_quant_repack(kt[i], NULL, 8, 256, &rp, &rt), AB_EINVAL);
	}
	/* a GGUF file may not claim the internal type; its rows are 148 bytes
	 * a super-block (the decoded scales and mins) */
	cr_assert_not_null(ab_type_get(AB_TYPE_Q4_K_X8));
	cr_assert(!ab_type_get(AB_TYPE_Q4_K_X8)->supported);
	cr_assert_eq(ab_type_row_bytes(AB_TYPE_Q4_K_X8, 512), 296);
	cr_assert_not_null(ab_type_get(AB_TYPE_Q6_K_X8));
	cr_assert(!ab_type_get(AB_TYPE_Q6_K_X8)->supported);
	cr_assert_eq(ab_type_row_bytes(AB_TYPE_Q6_K_X8, 512), 420);
	/* a matrix with rows not a multiple of 8 is not multiplied as X8 */
	float x[256] = {0}, y[7];
	for (int i = 0; i < 7; i++)
		y[i] = 42.0f;
	ab_matmul(w, AB_TYPE_Q4_K_X8, 7, 256, x, 1, y, NULL);
	ab_matmul(w, AB_TYPE_Q6_K_X8, 7, 256, x, 1, y, NULL);
	for (int i = 0; i < 7; i++)
		cr_assert_eq(y[i], 42.0f);
}

/* ---- pool ---- */

struct pool_probe {
	atomic_int hits[8];
	atomic_long total;
	int nth_seen;
};

static void pool_fn(void *ud, int ith, int nth)
{
	struct pool_probe *p = ud;
	atomic_fetch_add(&p->hits[ith], 1);
	atomic_fetch_add(&p->total, ith + 1);
	p->nth_seen = nth;
}

Test(quant, pool_runs_every_share, .timeout = 120)
{
	for (int n = 1; n <= 4; n++) {
		struct ab_pool *pool = ab_pool_new(n);
		cr_assert_eq(ab_pool_threads(pool), n);
		struct pool_probe pr;
		memset(&pr, 0, sizeof(pr));
		const int runs = 5000;
		for (int i = 0; i < runs; i++) {
			ab_pool_run(pool, pool_fn, &pr);
			/* every share has finished when run returns */
			cr_assert_eq(atomic_load(&pr.total), (long)(i + 1) * n * (n + 1) / 2);
			if (i % 1000 == 0) { /* let the workers fall asleep */
				struct timespec ts = {0, 5 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
		}
		for (int i = 0; i < n; i++)
			cr_expect_eq(atomic_load(&pr.hits[i]), runs);
		cr_expect_eq(pr.nth_seen, n);
		ab_pool_free(pool);
	}
	ab_pool_free(NULL);
}

/* the vectorised greedy pick is the plain loop's: the first largest,
 * NaNs skipped, ties and signed zeros to the first index, every length */
static int64_t argmax_ref(const float *x, int64_t n)
{
	int64_t best = 0;
	for (int64_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

Test(quant, argmax_matches_loop)
{
	enum { N = 300 };
	static float x[N];
	uint64_t r = 12345;
	for (int trial = 0; trial < 2000; trial++) {
		int n = 1 + trial % N;
		for (int i = 0; i < n; i++) {
			r = r * 6364136223846793005u + 1442695040888963407u;
			int k = (int)(r >> 59);
			x[i] = k < 2 ? NAN : k < 4 ? -0.0f : k < 6 ? 0.0f : k < 8 ? 3.0f : k < 9 ? -INFINITY
			       : (float)(int)((r >> 20) % 64) - 32.0f;
		}
		for (int pass = 0; pass < 2; pass++) {
			ab_quant_force_scalar(pass == 1);
			cr_assert_eq(ab_argmax_f32(x, n), argmax_ref(x, n), "trial %d n %d", trial, n);
		}
	}
	ab_quant_force_scalar(false);
	float one[1] = {NAN};
	cr_expect_eq(ab_argmax_f32(one, 1), 0);
	cr_expect_eq(ab_argmax_f32(one, 0), 0);
}

/* ab_matmul_n against one ab_matmul per product, bit for bit: products
 * that share the quantised activations (Q/K/V-like, gate/up-like, Q4_0
 * with Q8_0, with and without AMX-sized prompts), mixes that do not
 * (Q4_K with Q6_K, F32 with Q8_0: each product on its own), rows not a
 * multiple of sixteen, serial and pooled; entries the call cannot do are
 * skipped as ab_matmul skips them. */
Test(quant, matmul_n_matches_one_at_a_time, .timeout = 300)
{
	struct ab_pool *pools[3] = {NULL, ab_pool_new(2), ab_pool_new(3)};
	static const struct {
		int n;
		uint32_t types[3];
		int64_t R[3];
		int64_t C;
	} cases[] = {
		{3, {AB_TYPE_Q8_0, AB_TYPE_Q8_0, AB_TYPE_Q8_0}, {256, 64, 64}, 256},
		{2, {AB_TYPE_Q4_0, AB_TYPE_Q4_0}, {200, 200}, 128},
		{3, {AB_TYPE_Q4_0, AB_TYPE_Q8_0, AB_TYPE_Q4_0}, {96, 40, 48}, 64},
		{3, {AB_TYPE_Q4_K, AB_TYPE_Q4_K, AB_TYPE_Q6_K}, {64, 32, 32}, 256},
		{2, {AB_TYPE_F32, AB_TYPE_Q8_0}, {24, 32}, 64},
		{2, {AB_TYPE_F16, AB_TYPE_F16}, {20, 13}, 64},
	};
	static const int64_t Ts[] = {1, 5, 40};
	for (size_t ci = 0; ci < AB_ARRAY_LEN(cases); ci++)
		for (size_t ti = 0; ti < AB_ARRAY_LEN(Ts); ti++)
			for (int p = 0; p < 3; p++) {
				int64_t T = Ts[ti], C = cases[ci].C;
				int n = cases[ci].n;
				struct ab_matmul_op ops[3];
				float *ref[3];
				float *X = ab_xmalloc((size_t)(T * C) * sizeof(float));
				for (int64_t i = 0; i < T * C; i++)
					X[i] = (float)(rng_unit() * 4.0 - 2.0);
				for (int k = 0; k < n; k++) {
					uint32_t type = cases[ci].types[k];
					int64_t R = cases[ci].R[k];
					float *wf = ab_xmalloc((size_t)(R * C) * sizeof(float));
					for (int64_t i = 0; i < R * C; i++)
						wf[i] = (float)(rng_unit() - 0.5);
					void *W = ab_xmalloc(ab_type_row_bytes(type, C) * (size_t)R);
					cr_assert_eq(ab_quantize(type, wf, W, R * C), 0);
					free(wf);
					void *P = NULL;
					uint32_t pt = type;
					cr_assert_eq(ab_quant_repack(type, W, R, C, &P, &pt), 0);
					if (P) {
						free(W);
						W = P;
					}
					ref[k] = ab_xmalloc((size_t)(T * R) * sizeof(float));
					ab_matmul(W, pt, R, C, X, T, ref[k], pools[p]);
					ops[k] = (struct ab_matmul_op){.W = W, .type = pt, .R = R,
								       .Y = ab_xmalloc((size_t)(T * R) * sizeof(float))};
				}
				ab_matmul_n(ops, n, C, X, T, pools[p]);
				for (int k = 0; k < n; k++) {
					cr_assert(!memcmp(ops[k].Y, ref[k], (size_t)(T * ops[k].R) * sizeof(float)),
						  "case %zu T=%ld pool %d product %d: differs from ab_matmul", ci, (long)T,
						  p, k);
					free((void *)ops[k].W);
					free(ops[k].Y);
					free(ref[k]);
				}
				free(X);
			}
	for (int p = 0; p < 3; p++)
		ab_pool_free(pools[p]);
}

/* The activation quantisers (Q8_0 for Q4_0/Q8_0 weights, Q8_K for the
 * K-quants): the AVX2 forms write the scalar forms' bytes for finite
 * input: random blocks of every magnitude, blocks of zeros, maxima tied
 * in magnitude with either sign first, halves that round either way,
 * subnormals. */
Test(quant, activation_quantisers_match_scalar)
{
	enum { N = 256 * 24 };
	float *x = ab_xmalloc(N * sizeof(float));
	uint8_t *a = ab_xmalloc(ab_type_row_bytes(AB_TYPE_Q8_0, N) + ab_type_row_bytes(AB_TYPE_Q8_K, N));
	uint8_t *b = ab_xmalloc(ab_type_row_bytes(AB_TYPE_Q8_0, N) + ab_type_row_bytes(AB_TYPE_Q8_K, N));
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < N; i++)
			x[i] = (float)(rng_gauss() * pow(10.0, (double)(round % 9) - 4.0));
		int blk = round % 24 * 256;
		switch (round % 5) {
		case 0: /* zeros (and a negative zero) */
			memset(x + blk, 0, 256 * sizeof(float));
			x[blk + 7] = -0.0f;
			break;
		case 1: /* a tie in magnitude, negative first */
			x[blk + 3] = -50.0f, x[blk + 200] = 50.0f;
			break;
		case 2: /* a tie, positive first */
			x[blk + 3] = 50.0f, x[blk + 200] = -50.0f;
			break;
		case 3: /* products that land on halves */
			for (int i = 0; i < 256; i++)
				x[blk + i] = (float)(i % 255 - 127) * 0.5f;
			break;
		default: /* subnormals */
			for (int i = 0; i < 256; i++)
				x[blk + i] = (float)(i - 128) * 1e-40f;
			break;
		}
		for (int pass = 0; pass < 2; pass++) {
			uint8_t *o = pass ? b : a;
			ab_quant_force_scalar(pass == 1);
			cr_assert_eq(ab_quantize(AB_TYPE_Q8_0, x, o, N), 0);
			cr_assert_eq(ab_quantize(AB_TYPE_Q8_K, x, o + ab_type_row_bytes(AB_TYPE_Q8_0, N), N), 0);
		}
		ab_quant_force_scalar(false);
		size_t n0 = ab_type_row_bytes(AB_TYPE_Q8_0, N), nk = ab_type_row_bytes(AB_TYPE_Q8_K, N);
		cr_assert(!memcmp(a, b, n0), "round %d: Q8_0 bytes differ", round);
		cr_assert(!memcmp(a + n0, b + n0, nk), "round %d: Q8_K bytes differ", round);
	}
	free(x), free(a), free(b);
}
