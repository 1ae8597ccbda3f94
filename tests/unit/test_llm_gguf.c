/*
 * test_llm_gguf.c - the GGUF reader and writer (src/llm/gguf.c) and the
 * llama2.c converter (src/llm/llama2c.c).
 *
 * Reference files: every GGUF in ../shared/models/reference is parsed and
 * each tensor's type, shape, absolute data offset and size must equal what
 * llama.cpp recorded in its expected.json; key metadata must agree too, and
 * F32 tensors must hash to the recorded dequant_f32_sha256. The vocab-only
 * GGUFs in tokenizers/ are parsed and their vocabulary sizes checked. The
 * llama2.c conversion of stories260K.bin + tok512.bin must give tensors
 * byte-identical to llama.cpp's stories260K.gguf and the same tokenizer.
 *
 * Hostile input: every prefix of a small valid file must fail cleanly, and
 * hand-built files with one thing wrong each (magic, version, counts,
 * string lengths, n_dims, shape overflow, type, offsets, duplicates) must
 * fail with a message naming the problem.
 *
 * The shared directory is AB_SOURCE_ROOT "/../shared", or $AB_SHARED_DIR
 * when set; without it the data-driven tests are skipped with a message.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab_build.h"
#include "common.h"
#include "gguf.h"
#include "llama2c.h"
#include "sha256.h"

/* ---- helpers ---- */

static char *shared_path(const char *rel)
{
	const char *dir = getenv("AB_SHARED_DIR");
	if (dir && dir[0])
		return ab_xasprintf("%s/%s", dir, rel);
	return ab_xasprintf("%s/../shared/%s", AB_SOURCE_ROOT, rel);
}

static bool exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* The path of a shared file, or skips the test when it is missing. */
static char *need_shared(const char *rel)
{
	char *p = shared_path(rel);
	if (!exists(p)) {
		cr_log_warn("skipping: %s not found (set AB_SHARED_DIR to the shared folder)", p);
		free(p);
		cr_skip_test("shared file %s missing", rel);
	}
	return p;
}

static void b_u32(struct ab_buf *b, uint32_t v)
{
	ab_buf_append(b, &v, 4);
}

static void b_u64(struct ab_buf *b, uint64_t v)
{
	ab_buf_append(b, &v, 8);
}

static void b_str(struct ab_buf *b, const char *s)
{
	b_u64(b, strlen(s));
	ab_buf_append(b, s, strlen(s));
}

static void b_hdr(struct ab_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	ab_buf_append(b, "GGUF", 4);
	b_u32(b, version);
	b_u64(b, n_tensors);
	b_u64(b, n_kv);
}

static void b_kv_u32(struct ab_buf *b, const char *key, uint32_t v)
{
	b_str(b, key);
	b_u32(b, AB_GGUF_UINT32);
	b_u32(b, v);
}

static void b_tensor(struct ab_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		     uint32_t type, uint64_t off)
{
	b_str(b, name);
	b_u32(b, n_dims);
	for (uint32_t d = 0; d < n_dims; d++)
		b_u64(b, ne[d]);
	b_u32(b, type);
	b_u64(b, off);
}

static void b_pad(struct ab_buf *b, size_t extra)
{
	while (b->len % 32)
		ab_buf_putc(b, 0);
	for (size_t i = 0; i < extra; i++)
		ab_buf_putc(b, (char)i);
}

static void expect_fail(const void *p, size_t n, const char *needle)
{
	struct ab_gguf *g = NULL;
	char err[512] = "";
	int rc = ab_gguf_parse(p, n, &g, err, sizeof(err));
	cr_assert_lt(rc, 0, "expected failure (%s), got success", needle);
	cr_assert_null(g);
	cr_assert(strstr(err, needle) != NULL, "error '%s' does not mention '%s'", err, needle);
}

static void expect_ok(const void *p, size_t n, struct ab_gguf **g)
{
	char err[512] = "";
	int rc = ab_gguf_parse(p, n, g, err, sizeof(err));
	cr_assert_eq(rc, 0, "parse failed: %s", err);
}

/* ---- reference files ---- */

static uint32_t type_by_name(const char *name)
{
	for (uint32_t t = 0; t < 64; t++) {
		const char *n = ab_gguf_type_name(t);
		if (n && !strcmp(n, name))
			return t;
	}
	cr_assert_fail("unknown type name %s in expected.json", name);
	return 0;
}

static void check_u32(const struct ab_gguf *g, const char *key, json_t *want)
{
	uint32_t v = 0;
	cr_assert_eq(ab_gguf_get_u32(g, key, &v), 0, "%s missing", key);
	cr_assert_eq((json_int_t)v, json_integer_value(want), "%s = %u, want %lld", key, v,
		     (long long)json_integer_value(want));
}

static void check_reference(const char *model)
{
	char *rel = ab_xasprintf("models/reference/%s.gguf", model);
	char *path = need_shared(rel);
	char *jrel = ab_xasprintf("models/reference/%s.expected.json", model);
	char *jpath = need_shared(jrel);
	json_error_t je;
	json_t *root = json_load_file(jpath, 0, &je);
	cr_assert_not_null(root, "%s: %s", jpath, je.text);
	json_t *m = json_object_get(root, "model");
	json_t *tensors = json_object_get(m, "tensors");

	struct ab_gguf *g = NULL;
	char err[512];
	int rc = ab_gguf_open(path, &g, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert(g->mapped);
	cr_assert_eq(g->size, (size_t)json_integer_value(json_object_get(m, "bytes")));
	cr_assert_eq(g->n_tensors, json_array_size(tensors), "%s: %llu tensors, want %zu", model,
		     (unsigned long long)g->n_tensors, json_array_size(tensors));
	size_t i;
	json_t *jt;
	json_array_foreach(tensors, i, jt)
	{
		const char *name = json_string_value(json_object_get(jt, "name"));
		const struct ab_gguf_tensor *t = ab_gguf_tensor(g, name);
		cr_assert_not_null(t, "%s: tensor %s missing", model, name);
		cr_assert_eq(t->type,
			     type_by_name(json_string_value(json_object_get(jt, "type"))),
			     "%s: type", name);
		json_t *ne = json_object_get(jt, "ne");
		for (size_t d = 0; d < AB_GGUF_MAX_DIMS; d++) {
			int64_t want = d < json_array_size(ne)
					       ? json_integer_value(json_array_get(ne, d))
					       : 1;
			cr_assert_eq(t->ne[d], want, "%s: ne[%zu] %lld want %lld", name, d,
				     (long long)t->ne[d], (long long)want);
		}
		cr_assert_eq((json_int_t)(g->data_offset + t->offset),
			     json_integer_value(json_object_get(jt, "data_offset")), "%s: offset",
			     name);
		cr_assert_eq((json_int_t)t->n_bytes,
			     json_integer_value(json_object_get(jt, "n_bytes")), "%s: n_bytes",
			     name);
		cr_assert_eq((const uint8_t *)t->data, g->base + g->data_offset + t->offset);
		if (t->type == 0) {
			char hex[65];
			ab_sha256_hex(t->data, (size_t)t->n_bytes, hex);
			cr_assert_str_eq(
				hex,
				json_string_value(json_object_get(jt, "dequant_f32_sha256")),
				"%s: sha256", name);
		}
	}
	char *arch = NULL;
	cr_assert_eq(ab_gguf_get_str(g, "general.architecture", &arch), 0);
	cr_assert_str_eq(arch, json_string_value(json_object_get(m, "architecture")));
	char *key = ab_xasprintf("%s.block_count", arch);
	check_u32(g, key, json_object_get(m, "n_layer"));
	free(key);
	key = ab_xasprintf("%s.embedding_length", arch);
	check_u32(g, key, json_object_get(m, "n_embd"));
	free(key);
	key = ab_xasprintf("%s.attention.head_count", arch);
	check_u32(g, key, json_object_get(m, "n_head"));
	free(key);
	key = ab_xasprintf("%s.attention.head_count_kv", arch);
	check_u32(g, key, json_object_get(m, "n_head_kv"));
	free(key);
	key = ab_xasprintf("%s.feed_forward_length", arch);
	check_u32(g, key, json_object_get(m, "n_ff"));
	free(key);
	key = ab_xasprintf("%s.context_length", arch);
	check_u32(g, key, json_object_get(m, "n_ctx_train"));
	free(key);
	key = ab_xasprintf("%s.attention.layer_norm_rms_epsilon", arch);
	float eps = 0;
	cr_assert_eq(ab_gguf_get_f32(g, key, &eps), 0);
	cr_assert_eq(eps, (float)json_real_value(json_object_get(m, "rms_norm_eps")));
	free(key);
	free(arch);
	const struct ab_gguf_kv *toks = ab_gguf_find(g, "tokenizer.ggml.tokens");
	cr_assert_not_null(toks);
	cr_assert_eq(toks->type, AB_GGUF_ARRAY);
	cr_assert_eq(toks->v.arr.type, AB_GGUF_STRING);
	cr_assert_eq((json_int_t)toks->v.arr.n, json_integer_value(json_object_get(m, "n_vocab")));
	cr_assert_not_null(toks->v.arr.strs);
	char *tm = NULL;
	cr_assert_eq(ab_gguf_get_str(g, "tokenizer.ggml.model", &tm), 0);
	cr_assert_str_eq(tm, json_string_value(json_object_get(m, "tokenizer_model")));
	free(tm);
	bool tied = json_is_true(json_object_get(m, "tied_output"));
	cr_assert_eq(ab_gguf_tensor(g, "output.weight") == NULL, tied);

	ab_gguf_free(g);
	json_decref(root);
	free(rel);
	free(path);
	free(jrel);
	free(jpath);
}

Test(gguf_ref, stories260K) { check_reference("stories260K"); }
Test(gguf_ref, stories260K_f16) { check_reference("stories260K.f16"); }
Test(gguf_ref, tiny_q8_0) { check_reference("tiny-llama-spm.q8_0"); }
Test(gguf_ref, tiny_q4_0) { check_reference("tiny-llama-spm.q4_0"); }
Test(gguf_ref, tiny_q4_k_m) { check_reference("tiny-llama-spm.q4_k_m"); }
Test(gguf_ref, tiny_q6_k) { check_reference("tiny-llama-spm.q6_k"); }
Test(gguf_ref, tiny_gpt2bpe_q8_0) { check_reference("tiny-gpt2bpe.q8_0"); }

Test(gguf_ref, stories260K_details)
{
	char *path = need_shared("models/reference/stories260K.gguf");
	struct ab_gguf *g = NULL;
	char err[512];
	cr_assert_eq(ab_gguf_open(path, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g->alignment, 32);
	cr_assert(g->version == 2 || g->version == 3);
	const struct ab_gguf_kv *toks = ab_gguf_find(g, "tokenizer.ggml.tokens");
	cr_assert_eq(toks->v.arr.n, 512);
	/* the byte tokens follow the three specials */
	cr_assert_eq(toks->v.arr.strs[0].n, 5);
	cr_assert(!memcmp(toks->v.arr.strs[0].p, "<unk>", 5));
	cr_assert(!memcmp(toks->v.arr.strs[3].p, "<0x00>", 6));
	uint32_t u;
	cr_assert_eq(ab_gguf_get_u32(g, "tokenizer.ggml.seperator_token_id", &u), 0);
	cr_assert_eq(u, 0xFFFFFFFFu);
	int64_t i64;
	cr_assert_eq(ab_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &i64), 0);
	cr_assert_eq(i64, 1);
	/* type conversions */
	float f;
	cr_assert_eq(ab_gguf_get_f32(g, "llama.block_count", &f), AB_EINVAL);
	cr_assert_eq(ab_gguf_get_u32(g, "general.architecture", &u), AB_EINVAL);
	cr_assert_eq(ab_gguf_get_u32(g, "no.such.key", &u), AB_ENOTFOUND);
	bool bv;
	cr_assert_eq(ab_gguf_get_bool(g, "no.such.key", &bv), AB_ENOTFOUND);
	cr_assert_null(ab_gguf_tensor(g, "no.such.tensor"));
	ab_gguf_free(g);
	free(path);
}

static void check_vocab(const char *file, uint64_t n_tokens, const char *model)
{
	char *rel = ab_xasprintf("models/reference/tokenizers/%s", file);
	char *path = need_shared(rel);
	struct ab_gguf *g = NULL;
	char err[512];
	cr_assert_eq(ab_gguf_open(path, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g->n_tensors, 0);
	const struct ab_gguf_kv *toks = ab_gguf_find(g, "tokenizer.ggml.tokens");
	cr_assert_not_null(toks);
	cr_assert_eq(toks->v.arr.n, n_tokens);
	char *m = NULL;
	cr_assert_eq(ab_gguf_get_str(g, "tokenizer.ggml.model", &m), 0);
	cr_assert_str_eq(m, model);
	free(m);
	ab_gguf_free(g);
	free(rel);
	free(path);
}

Test(gguf_ref, vocab_llama_spm) { check_vocab("ggml-vocab-llama-spm.gguf", 32000, "llama"); }
Test(gguf_ref, vocab_gpt2) { check_vocab("ggml-vocab-gpt-2.gguf", 50257, "gpt2"); }
Test(gguf_ref, vocab_bert) { check_vocab("ggml-vocab-bert-bge.gguf", 30522, "bert"); }

/* ---- writer round trip ---- */

static struct ab_gguf_writer *sample_writer(void)
{
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	ab_gguf_set_str(w, "general.architecture", "llama");
	ab_gguf_set_u32(w, "llama.block_count", 3);
	ab_gguf_set_i32(w, "some.neg", -7);
	ab_gguf_set_f32(w, "some.eps", 1e-5f);
	ab_gguf_set_bool(w, "some.flag", true);
	ab_gguf_set_u64(w, "some.big", 1ull << 40);
	const char *strs[] = {"<unk>", "", "hello world", "\xe2\x96\x81x"};
	ab_gguf_set_arr_str(w, "tokenizer.ggml.tokens", strs, 4);
	const float sc[] = {0.0f, -1.5f, 2.25f, 3.0f};
	ab_gguf_set_arr_f32(w, "tokenizer.ggml.scores", sc, 4);
	const int32_t ty[] = {2, 1, 1, 6};
	ab_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", ty, 4);
	const uint8_t u8[] = {1, 2, 3};
	ab_gguf_set_arr(w, "some.bytes", AB_GGUF_UINT8, u8, 3);
	ab_gguf_set_arr(w, "some.empty", AB_GGUF_INT64, NULL, 0);
	float a[16], b[64];
	for (int i = 0; i < 16; i++)
		a[i] = (float)i * 0.5f;
	for (int i = 0; i < 64; i++)
		b[i] = (float)-i;
	int64_t ne_a[2] = {8, 2}, ne_b[1] = {64};
	cr_assert_eq(ab_gguf_add_tensor(w, "a.weight", 0, 2, ne_a, a, sizeof(a)), 0);
	cr_assert_eq(ab_gguf_add_tensor(w, "b.weight", 0, 1, ne_b, b, sizeof(b)), 0);
	return w;
}

static void check_sample(const struct ab_gguf *g)
{
	cr_assert_eq(g->version, 3);
	cr_assert_eq(g->n_kv, 11);
	cr_assert_eq(g->n_tensors, 2);
	char *s = NULL;
	cr_assert_eq(ab_gguf_get_str(g, "general.architecture", &s), 0);
	cr_assert_str_eq(s, "llama");
	free(s);
	uint32_t u;
	cr_assert_eq(ab_gguf_get_u32(g, "llama.block_count", &u), 0);
	cr_assert_eq(u, 3);
	int64_t i;
	cr_assert_eq(ab_gguf_get_i64(g, "some.neg", &i), 0);
	cr_assert_eq(i, -7);
	cr_assert_eq(ab_gguf_get_u32(g, "some.neg", &u), AB_EINVAL);
	cr_assert_eq(ab_gguf_get_i64(g, "some.big", &i), 0);
	cr_assert_eq(i, 1ll << 40);
	cr_assert_eq(ab_gguf_get_u32(g, "some.big", &u), AB_EINVAL);
	float f;
	cr_assert_eq(ab_gguf_get_f32(g, "some.eps", &f), 0);
	cr_assert_eq(f, 1e-5f);
	bool bv = false;
	cr_assert_eq(ab_gguf_get_bool(g, "some.flag", &bv), 0);
	cr_assert(bv);
	const struct ab_gguf_kv *kv = ab_gguf_find(g, "tokenizer.ggml.tokens");
	cr_assert_eq(kv->v.arr.type, AB_GGUF_STRING);
	cr_assert_eq(kv->v.arr.n, 4);
	cr_assert_eq(kv->v.arr.strs[1].n, 0);
	cr_assert_eq(kv->v.arr.strs[2].n, 11);
	cr_assert(!memcmp(kv->v.arr.strs[2].p, "hello world", 11));
	cr_assert(!memcmp(kv->v.arr.strs[3].p, "\xe2\x96\x81x", 4));
	kv = ab_gguf_find(g, "tokenizer.ggml.scores");
	cr_assert_eq(kv->v.arr.type, AB_GGUF_FLOAT32);
	float sc[4];
	memcpy(sc, kv->v.arr.data, sizeof(sc));
	cr_assert_eq(sc[1], -1.5f);
	cr_assert_eq(sc[2], 2.25f);
	kv = ab_gguf_find(g, "tokenizer.ggml.token_type");
	int32_t ty[4];
	memcpy(ty, kv->v.arr.data, sizeof(ty));
	cr_assert_eq(ty[0], 2);
	cr_assert_eq(ty[3], 6);
	kv = ab_gguf_find(g, "some.bytes");
	cr_assert_eq(kv->v.arr.type, AB_GGUF_UINT8);
	cr_assert_eq(kv->v.arr.n, 3);
	cr_assert_eq(kv->v.arr.data[2], 3);
	kv = ab_gguf_find(g, "some.empty");
	cr_assert_eq(kv->v.arr.n, 0);
	const struct ab_gguf_tensor *t = ab_gguf_tensor(g, "a.weight");
	cr_assert_not_null(t);
	cr_assert_eq(t->n_dims, 2);
	cr_assert_eq(t->ne[0], 8);
	cr_assert_eq(t->ne[1], 2);
	cr_assert_eq(t->ne[2], 1);
	cr_assert_eq(t->n_bytes, 64);
	cr_assert_eq(ab_gguf_tensor_nelements(t), 16);
	cr_assert_eq(((const float *)t->data)[3], 1.5f);
	t = ab_gguf_tensor(g, "b.weight");
	cr_assert_eq(t->n_bytes, 256);
	cr_assert_eq(t->offset % 32, 0);
	cr_assert_eq(((const float *)t->data)[63], -63.0f);
}

Test(gguf_write, round_trip_mem)
{
	struct ab_gguf_writer *w = sample_writer();
	cr_assert_eq(ab_gguf_writer_n_kv(w), 11);
	cr_assert_eq(ab_gguf_writer_n_tensors(w), 2);
	void *buf = NULL;
	size_t len = 0;
	cr_assert_eq(ab_gguf_write_mem(w, &buf, &len), 0);
	cr_assert_eq(len % 32, 0);
	struct ab_gguf *g = NULL;
	expect_ok(buf, len, &g);
	check_sample(g);

	/* copy every pair into a second writer: the bytes must not change */
	struct ab_gguf_writer *w2 = ab_gguf_writer_new();
	for (uint64_t i = 0; i < g->n_kv; i++)
		ab_gguf_set_kv(w2, &g->kv[i]);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &g->tensors[i];
		cr_assert_eq(ab_gguf_add_tensor(w2, t->name, t->type, (int)t->n_dims, t->ne, t->data,
						(size_t)t->n_bytes),
			     0);
	}
	void *buf2 = NULL;
	size_t len2 = 0;
	ab_gguf_write_mem(w2, &buf2, &len2);
	cr_assert_eq(len2, len);
	cr_assert(!memcmp(buf, buf2, len));
	ab_gguf_free(g);
	free(buf);
	free(buf2);
	ab_gguf_writer_free(w);
	ab_gguf_writer_free(w2);
}

Test(gguf_write, round_trip_file)
{
	struct ab_gguf_writer *w = sample_writer();
	/* replacing and removing keys */
	ab_gguf_set_u32(w, "llama.block_count", 99);
	ab_gguf_set_u32(w, "tmp.key", 1);
	ab_gguf_unset(w, "tmp.key");
	ab_gguf_set_u32(w, "llama.block_count", 3);
	char dir[] = "/tmp/ab-gguf-test-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char *path = ab_xasprintf("%s/out.gguf", dir);
	char err[512];
	cr_assert_eq(ab_gguf_write(w, path, err, sizeof(err)), 0, "%s", err);
	struct ab_gguf *g = NULL;
	cr_assert_eq(ab_gguf_open(path, &g, err, sizeof(err)), 0, "%s", err);
	check_sample(g);
	ab_gguf_free(g);
	unlink(path);
	rmdir(dir);
	/* an unwritable place fails with -errno and leaves nothing */
	char *bad = ab_xasprintf("%s/missing/out.gguf", dir);
	cr_assert_lt(ab_gguf_write(w, bad, err, sizeof(err)), 0);
	free(bad);
	free(path);
	ab_gguf_writer_free(w);
}

Test(gguf_write, add_tensor_checks)
{
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	float x[32] = {0};
	int64_t ne[2] = {32, 1};
	cr_assert_eq(ab_gguf_add_tensor(w, "x", 0, 1, ne, x, sizeof(x)), 0);
	cr_assert_eq(ab_gguf_add_tensor(w, "x", 0, 1, ne, x, sizeof(x)), AB_EEXIST);
	cr_assert_eq(ab_gguf_add_tensor(w, "y", 0, 1, ne, x, 4), AB_EINVAL);
	cr_assert_eq(ab_gguf_add_tensor(w, "y", 99, 1, ne, x, sizeof(x)), AB_EINVAL);
	cr_assert_eq(ab_gguf_add_tensor(w, "y", 0, 5, ne, x, sizeof(x)), AB_EINVAL);
	cr_assert_eq(ab_gguf_add_tensor(w, "", 0, 1, ne, x, sizeof(x)), AB_EINVAL);
	int64_t q[1] = {33};
	cr_assert_eq(ab_gguf_add_tensor(w, "y", 8 /* Q8_0 */, 1, q, x, 34), AB_EINVAL);
	q[0] = 32;
	cr_assert_eq(ab_gguf_add_tensor(w, "y", 8, 1, q, x, 34), 0);
	ab_gguf_writer_free(w);
}

Test(gguf_types, table)
{
	cr_assert_str_eq(ab_gguf_type_name(12), "Q4_K");
	cr_assert_null(ab_gguf_type_name(4));
	cr_assert_null(ab_gguf_type_name(99));
	int block;
	size_t bytes;
	cr_assert_eq(ab_gguf_type_block(14, &block, &bytes), 0);
	cr_assert_eq(block, 256);
	cr_assert_eq(bytes, 210);
	uint64_t n;
	int64_t ne[2] = {256, 10};
	cr_assert_eq(ab_gguf_nbytes(2, 2, ne, &n), 0);
	cr_assert_eq(n, 8 * 18 * 10);
	int64_t big[4] = {1ll << 40, 1ll << 40, 1, 1};
	cr_assert_eq(ab_gguf_nbytes(0, 4, big, &n), AB_ETOOBIG);
	cr_assert_str_eq(ab_gguf_vtype_name(AB_GGUF_STRING), "string");
	cr_assert_str_eq(ab_gguf_vtype_name(77), "unknown");
}

/* ---- hostile input ---- */

Test(gguf_bad, every_truncation)
{
	struct ab_gguf_writer *w = sample_writer();
	void *buf = NULL;
	size_t len = 0;
	ab_gguf_write_mem(w, &buf, &len);
	ab_gguf_writer_free(w);
	for (size_t n = 0; n < len; n++) {
		/* a fresh allocation of exactly n bytes, so that ASan sees overreads */
		uint8_t *p = ab_xmalloc(n ? n : 1);
		memcpy(p, buf, n);
		struct ab_gguf *g = NULL;
		char err[512] = "";
		int rc = ab_gguf_parse(p, n, &g, err, sizeof(err));
		cr_assert_lt(rc, 0, "prefix of %zu/%zu bytes parsed", n, len);
		cr_assert_null(g);
		cr_assert_neq(err[0], '\0', "no message for prefix %zu", n);
		free(p);
	}
	struct ab_gguf *g = NULL;
	expect_ok(buf, len, &g);
	ab_gguf_free(g);
	free(buf);
}

Test(gguf_bad, magic_and_version)
{
	struct ab_buf b = {0};
	b_hdr(&b, 3, 0, 0);
	struct ab_gguf *g = NULL;
	expect_ok(b.data, b.len, &g);
	cr_assert_eq(g->n_kv, 0);
	ab_gguf_free(g);
	b.data[0] = 'X';
	expect_fail(b.data, b.len, "bad magic");
	ab_buf_reset(&b);
	b_hdr(&b, 1, 0, 0);
	expect_fail(b.data, b.len, "version 1");
	ab_buf_reset(&b);
	b_hdr(&b, 4, 0, 0);
	expect_fail(b.data, b.len, "version 4");
	ab_buf_reset(&b);
	b_hdr(&b, 0x03000000u, 0, 0);
	expect_fail(b.data, b.len, "big-endian");
	ab_buf_reset(&b);
	b_hdr(&b, 2, 0, 0);
	expect_ok(b.data, b.len, &g);
	cr_assert_eq(g->version, 2);
	ab_gguf_free(g);
	expect_fail("GGU", 3, "truncated at byte 0");
	expect_fail("", 0, "truncated");
	ab_buf_free(&b);
}

Test(gguf_bad, absurd_counts)
{
	struct ab_buf b = {0};
	b_hdr(&b, 3, UINT64_MAX, 0);
	expect_fail(b.data, b.len, "n_tensors");
	ab_buf_reset(&b);
	b_hdr(&b, 3, 1ull << 40, 0);
	expect_fail(b.data, b.len, "n_tensors");
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1000);
	b_kv_u32(&b, "a", 1);
	expect_fail(b.data, b.len, "n_kv 1000");
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 3);
	b_kv_u32(&b, "a", 1);
	b_kv_u32(&b, "b", 1);
	b_kv_u32(&b, "c", 1);
	struct ab_gguf *g = NULL;
	expect_ok(b.data, b.len, &g);
	ab_gguf_free(g);
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 3);
	b_kv_u32(&b, "a", 1);
	b_kv_u32(&b, "b", 1);
	b_kv_u32(&b, "a", 2);
	expect_fail(b.data, b.len, "duplicate key 'a'");
	ab_buf_free(&b);
}

Test(gguf_bad, strings_and_values)
{
	struct ab_buf b = {0};
	/* key length past the end */
	b_hdr(&b, 3, 0, 1);
	b_u64(&b, 1000);
	ab_buf_append(&b, "abcdefghijklmnop", 16);
	expect_fail(b.data, b.len, "string length 1000");
	/* string value past the end */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "general.name");
	b_u32(&b, AB_GGUF_STRING);
	b_u64(&b, UINT64_MAX);
	ab_buf_append(&b, "0123456789abcdef", 16);
	expect_fail(b.data, b.len, "key 'general.name'");
	/* unknown value type */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, 13);
	b_u64(&b, 0);
	b_u64(&b, 0);
	expect_fail(b.data, b.len, "unknown value type 13");
	/* array longer than the file */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, AB_GGUF_ARRAY);
	b_u32(&b, AB_GGUF_UINT32);
	b_u64(&b, 1ull << 62);
	b_u64(&b, 0);
	expect_fail(b.data, b.len, "cannot fit");
	/* string array whose count cannot fit */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, AB_GGUF_ARRAY);
	b_u32(&b, AB_GGUF_STRING);
	b_u64(&b, 3);
	b_str(&b, "x");
	expect_fail(b.data, b.len, "cannot fit");
	/* nested arrays: two levels fine, too deep refused */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, AB_GGUF_ARRAY);
	b_u32(&b, AB_GGUF_ARRAY);
	b_u64(&b, 1);
	b_u32(&b, AB_GGUF_INT32);
	b_u64(&b, 2);
	b_u32(&b, 5);
	b_u32(&b, 6);
	struct ab_gguf *g = NULL;
	expect_ok(b.data, b.len, &g);
	cr_assert_eq(g->kv[0].v.arr.type, AB_GGUF_ARRAY);
	/* copying a nested array keeps its bytes */
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	ab_gguf_set_kv(w, &g->kv[0]);
	void *out = NULL;
	size_t n = 0;
	ab_gguf_write_mem(w, &out, &n);
	cr_assert_geq(n, b.len);
	cr_assert(!memcmp((char *)out + 24, b.data + 24, b.len - 24));
	free(out);
	ab_gguf_writer_free(w);
	ab_gguf_free(g);
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, AB_GGUF_ARRAY);
	for (int i = 0; i < 8; i++) {
		b_u32(&b, AB_GGUF_ARRAY);
		b_u64(&b, 1);
	}
	b_u32(&b, AB_GGUF_UINT8);
	b_u64(&b, 0);
	for (int i = 0; i < 64; i++)
		ab_buf_putc(&b, 0);
	expect_fail(b.data, b.len, "nested deeper");
	/* a bool that is neither 0 nor 1 */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, AB_GGUF_BOOL);
	ab_buf_putc(&b, 7);
	expect_fail(b.data, b.len, "bool");
	/* bad alignment */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 0, 1);
	b_kv_u32(&b, "general.alignment", 48);
	expect_fail(b.data, b.len, "general.alignment 48");
	ab_buf_free(&b);
}

/* A file with one F32 tensor "t" of ne {8, 4}, built from the pieces. */
static void one_tensor(struct ab_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		       uint32_t type, uint64_t off, size_t data)
{
	ab_buf_reset(b);
	b_hdr(b, 3, 1, 0);
	b_tensor(b, name, n_dims, ne, type, off);
	b_pad(b, data);
}

Test(gguf_bad, tensors)
{
	struct ab_buf b = {0};
	uint64_t ne[5] = {8, 4, 1, 1, 1};
	struct ab_gguf *g = NULL;
	one_tensor(&b, "t", 2, ne, 0, 0, 128);
	expect_ok(b.data, b.len, &g);
	cr_assert_eq(g->tensors[0].n_bytes, 128);
	ab_gguf_free(g);
	one_tensor(&b, "t", 2, ne, 0, 0, 127);
	expect_fail(b.data, b.len, "tensor t: data past the end");
	one_tensor(&b, "t", 5, ne, 0, 0, 128);
	expect_fail(b.data, b.len, "n_dims 5");
	one_tensor(&b, "t", 0, ne, 0, 0, 128);
	expect_fail(b.data, b.len, "n_dims 0");
	one_tensor(&b, "t", 2, ne, 99, 0, 128);
	expect_fail(b.data, b.len, "unknown tensor type 99");
	one_tensor(&b, "t", 2, ne, 0, 32, 128);
	expect_fail(b.data, b.len, "data past the end");
	one_tensor(&b, "t", 2, ne, 0, UINT64_MAX - 31, 128);
	expect_fail(b.data, b.len, "data past the end");
	one_tensor(&b, "t", 2, ne, 0, 4, 256);
	expect_fail(b.data, b.len, "not a multiple of the alignment");
	one_tensor(&b, "", 2, ne, 0, 0, 128);
	expect_fail(b.data, b.len, "empty name");
	uint64_t neg[2] = {(uint64_t)-1, 4};
	one_tensor(&b, "t", 2, neg, 0, 0, 128);
	expect_fail(b.data, b.len, "negative");
	uint64_t over[4] = {1ull << 32, 1ull << 32, 1ull << 32, 1};
	one_tensor(&b, "t", 3, over, 0, 0, 128);
	expect_fail(b.data, b.len, "overflows");
	uint64_t q[2] = {33, 1};
	one_tensor(&b, "t", 2, q, 8, 0, 128);
	expect_fail(b.data, b.len, "not a multiple of the Q8_0 block");
	/* the data section itself starts past the end */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 1, 0);
	uint64_t z[1] = {0};
	b_tensor(&b, "t", 1, z, 0, 0);
	expect_fail(b.data, b.len, "data section");
	/* duplicate names */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 2, 0);
	b_tensor(&b, "t", 2, ne, 0, 0);
	b_tensor(&b, "t", 2, ne, 0, 128);
	b_pad(&b, 256);
	expect_fail(b.data, b.len, "duplicate tensor name t");
	ab_buf_reset(&b);
	b_hdr(&b, 3, 2, 0);
	b_tensor(&b, "t", 2, ne, 0, 0);
	b_tensor(&b, "u", 2, ne, 0, 128);
	b_pad(&b, 256);
	expect_ok(b.data, b.len, &g);
	ab_gguf_free(g);
	/* a custom alignment moves the data section */
	ab_buf_reset(&b);
	b_hdr(&b, 3, 1, 1);
	b_kv_u32(&b, "general.alignment", 64);
	b_tensor(&b, "t", 2, ne, 0, 0);
	while (b.len % 64)
		ab_buf_putc(&b, 0);
	size_t data_at = b.len;
	b_pad(&b, 128);
	expect_ok(b.data, b.len, &g);
	cr_assert_eq(g->alignment, 64);
	cr_assert_eq(g->data_offset, data_at);
	ab_gguf_free(g);
	ab_buf_free(&b);
}

Test(gguf_bad, open_errors)
{
	struct ab_gguf *g = NULL;
	char err[512];
	cr_assert_eq(ab_gguf_open("/nonexistent/x.gguf", &g, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "/nonexistent/x.gguf") != NULL);
	cr_assert_lt(ab_gguf_open("/tmp", &g, err, sizeof(err)), 0);
	char path[] = "/tmp/ab-gguf-empty-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_lt(ab_gguf_open(path, &g, err, sizeof(err)), 0);
	cr_assert(strstr(err, "empty") != NULL, "%s", err);
	cr_assert_eq(write(fd, "GGUF\x01\0\0\0", 8), 8);
	close(fd);
	cr_assert_lt(ab_gguf_open(path, &g, err, sizeof(err)), 0);
	cr_assert(strstr(err, "version 1") != NULL, "%s", err);
	cr_assert_null(g);
	unlink(path);
	ab_gguf_free(NULL);
	ab_gguf_writer_free(NULL);
}

/* ---- llama2.c conversion ---- */

static bool same_kv(const struct ab_gguf *a, const struct ab_gguf *b, const char *key)
{
	const struct ab_gguf_kv *x = ab_gguf_find(a, key), *y = ab_gguf_find(b, key);
	if (!x || !y || x->type != y->type)
		return false;
	struct ab_gguf_writer *w1 = ab_gguf_writer_new(), *w2 = ab_gguf_writer_new();
	ab_gguf_set_kv(w1, x);
	ab_gguf_set_kv(w2, y);
	void *p1, *p2;
	size_t n1, n2;
	ab_gguf_write_mem(w1, &p1, &n1);
	ab_gguf_write_mem(w2, &p2, &n2);
	bool same = n1 == n2 && !memcmp(p1, p2, n1);
	free(p1);
	free(p2);
	ab_gguf_writer_free(w1);
	ab_gguf_writer_free(w2);
	return same;
}

Test(llama2c, stories260K_matches_llama_cpp)
{
	char *bin = need_shared("models/stories260K.bin");
	char *tok = need_shared("models/tok512.bin");
	char *ref_path = need_shared("models/reference/stories260K.gguf");
	char *jpath = need_shared("models/reference/stories260K.expected.json");
	struct ab_gguf *ours = NULL, *ref = NULL;
	void *buf = NULL;
	char err[512];
	cr_assert_eq(ab_llama2c_load(bin, tok, &ours, &buf, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ab_gguf_open(ref_path, &ref, err, sizeof(err)), 0, "%s", err);
	json_error_t je;
	json_t *root = json_load_file(jpath, 0, &je);
	cr_assert_not_null(root);
	json_t *tensors = json_object_get(json_object_get(root, "model"), "tensors");

	/* the checkpoint shares its classifier: llama.cpp writes a copy as
	 * output.weight, we leave it out (tied) */
	cr_assert_eq(ours->n_tensors + 1, ref->n_tensors);
	cr_assert_null(ab_gguf_tensor(ours, "output.weight"));
	size_t i;
	json_t *jt;
	json_array_foreach(tensors, i, jt)
	{
		const char *name = json_string_value(json_object_get(jt, "name"));
		const struct ab_gguf_tensor *r = ab_gguf_tensor(ref, name);
		const struct ab_gguf_tensor *o =
			ab_gguf_tensor(ours, strcmp(name, "output.weight") ? name : "token_embd.weight");
		cr_assert_not_null(o, "tensor %s missing", name);
		cr_assert_eq(o->type, 0);
		cr_assert_eq(o->n_dims, r->n_dims, "%s", name);
		for (int d = 0; d < AB_GGUF_MAX_DIMS; d++)
			cr_assert_eq(o->ne[d], r->ne[d], "%s ne[%d]", name, d);
		cr_assert_eq(o->n_bytes, r->n_bytes, "%s", name);
		cr_assert(!memcmp(o->data, r->data, (size_t)o->n_bytes), "%s: bytes differ", name);
		char hex[65];
		ab_sha256_hex(o->data, (size_t)o->n_bytes, hex);
		cr_assert_str_eq(hex, json_string_value(json_object_get(jt, "dequant_f32_sha256")),
				 "%s", name);
	}
	static const char *const same_keys[] = {
		"general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
		"tokenizer.ggml.scores", "tokenizer.ggml.token_type",
		"tokenizer.ggml.unknown_token_id", "tokenizer.ggml.bos_token_id",
		"tokenizer.ggml.eos_token_id", "llama.embedding_length", "llama.feed_forward_length",
		"llama.attention.head_count", "llama.attention.head_count_kv", "llama.block_count",
		"llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon",
	};
	for (size_t k = 0; k < AB_ARRAY_LEN(same_keys); k++)
		cr_assert(same_kv(ours, ref, same_keys[k]), "%s differs", same_keys[k]);
	/* llama.cpp's converter writes its default 128; the checkpoint says 512 */
	uint32_t ctx = 0;
	cr_assert_eq(ab_gguf_get_u32(ours, "llama.context_length", &ctx), 0);
	cr_assert_eq(ctx, 512);
	float fb = 0;
	cr_assert_eq(ab_gguf_get_f32(ours, "llama.rope.freq_base", &fb), 0);
	cr_assert_eq(fb, 10000.0f);
	char *name = NULL;
	cr_assert_eq(ab_gguf_get_str(ours, "general.name", &name), 0);
	cr_assert_str_eq(name, "stories260K");
	free(name);

	json_decref(root);
	ab_gguf_free(ours);
	free(buf);
	ab_gguf_free(ref);
	free(bin);
	free(tok);
	free(ref_path);
	free(jpath);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

/* A tiny checkpoint: dim 8, hidden 16, 2 layers, 2 heads, 1 kv head,
 * vocab 4 with a separate classifier, seq_len 4; weights 0, 1, 2, ... */
static size_t tiny_checkpoint(struct ab_buf *b, int32_t vocab)
{
	int32_t hd[7] = {8, 16, 2, 2, 1, vocab, 4};
	ab_buf_reset(b);
	ab_buf_append(b, hd, sizeof(hd));
	int64_t V = vocab < 0 ? -vocab : vocab;
	int64_t n = V * 8 + 2 * 8 + 2 * 64 + 2 * 2 * 4 * 8 + 2 * 64 + 2 * 8 + 3 * 2 * 16 * 8 + 8 +
		    4 * 2 * 2 + (vocab < 0 ? V * 8 : 0);
	for (int64_t i = 0; i < n; i++) {
		float f = (float)i;
		ab_buf_append(b, &f, 4);
	}
	return (size_t)n;
}

static void tiny_tokenizer(struct ab_buf *b, int n)
{
	static const char *const texts[] = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", " the"};
	ab_buf_reset(b);
	int32_t max = 6;
	ab_buf_append(b, &max, 4);
	for (int i = 0; i < n; i++) {
		float sc = (float)-i;
		int32_t len = (int32_t)strlen(texts[i % 5]);
		ab_buf_append(b, &sc, 4);
		ab_buf_append(b, &len, 4);
		ab_buf_append(b, texts[i % 5], (size_t)len);
	}
}

Test(llama2c, tiny_separate_classifier)
{
	char dir[] = "/tmp/ab-l2c-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char *bin = ab_xasprintf("%s/tiny.bin", dir), *tok = ab_xasprintf("%s/tok.bin", dir);
	struct ab_buf b = {0};
	tiny_checkpoint(&b, -5);
	write_file(bin, b.data, b.len);
	tiny_tokenizer(&b, 5);
	write_file(tok, b.data, b.len);
	struct ab_gguf *g = NULL;
	void *buf = NULL;
	char err[512];
	cr_assert_eq(ab_llama2c_load(bin, tok, &g, &buf, err, sizeof(err)), 0, "%s", err);
	const struct ab_gguf_tensor *t = ab_gguf_tensor(g, "token_embd.weight");
	cr_assert_eq(t->ne[0], 8);
	cr_assert_eq(t->ne[1], 5);
	const float *f = t->data;
	cr_assert_eq(f[0], 0.0f);
	/* after token_embd (40): rms_att 2 x 8, then wq; layer 1's wq starts at 40+16+64 */
	t = ab_gguf_tensor(g, "blk.1.attn_q.weight");
	cr_assert_eq(((const float *)t->data)[0], 120.0f);
	t = ab_gguf_tensor(g, "blk.0.attn_k.weight");
	cr_assert_eq(t->ne[0], 8);
	cr_assert_eq(t->ne[1], 4);
	cr_assert_eq(((const float *)t->data)[0], 184.0f);
	t = ab_gguf_tensor(g, "blk.0.ffn_down.weight");
	cr_assert_eq(t->ne[0], 16);
	cr_assert_eq(t->ne[1], 8);
	t = ab_gguf_tensor(g, "output.weight");
	cr_assert_not_null(t);
	cr_assert_eq(t->ne[1], 5);
	t = ab_gguf_tensor(g, "output_norm.weight");
	cr_assert_eq(t->n_dims, 1);
	const struct ab_gguf_kv *kv = ab_gguf_find(g, "tokenizer.ggml.tokens");
	cr_assert_eq(kv->v.arr.n, 5);
	cr_assert_eq(kv->v.arr.strs[1].n, 3);
	cr_assert(!memcmp(kv->v.arr.strs[1].p, "<s>", 3));
	cr_assert_eq(kv->v.arr.strs[4].n, 6);
	cr_assert(!memcmp(kv->v.arr.strs[4].p, "\xe2\x96\x81the", 6));
	kv = ab_gguf_find(g, "tokenizer.ggml.token_type");
	int32_t ty[5];
	memcpy(ty, kv->v.arr.data, sizeof(ty));
	cr_assert_eq(ty[0], 2);
	cr_assert_eq(ty[1], 3);
	cr_assert_eq(ty[2], 3);
	cr_assert_eq(ty[3], 6);
	cr_assert_eq(ty[4], 1);
	uint32_t u;
	cr_assert_eq(ab_gguf_get_u32(g, "llama.rope.dimension_count", &u), 0);
	cr_assert_eq(u, 4);
	ab_gguf_free(g);
	free(buf);

	/* output_norm comes right after ffn_up; output.weight after the rope table */
	size_t n = tiny_checkpoint(&b, -5);
	write_file(bin, b.data, b.len);
	cr_assert_eq(ab_llama2c_load(bin, tok, &g, &buf, err, sizeof(err)), 0, "%s", err);
	t = ab_gguf_tensor(g, "output.weight");
	cr_assert_eq(((const float *)t->data)[39], (float)(n - 1));
	t = ab_gguf_tensor(g, "output_norm.weight");
	cr_assert_eq(((const float *)t->data)[7], (float)(n - 40 - 16 - 1));
	ab_gguf_free(g);
	free(buf);

	unlink(bin);
	unlink(tok);
	rmdir(dir);
	ab_buf_free(&b);
	free(bin);
	free(tok);
}

static void l2c_fail(const char *bin, const char *tok, const char *needle)
{
	struct ab_gguf_writer *w = NULL;
	char err[512] = "";
	int rc = ab_llama2c_to_gguf(bin, tok, &w, err, sizeof(err));
	cr_assert_lt(rc, 0, "expected failure (%s)", needle);
	cr_assert_null(w);
	cr_assert(strstr(err, needle) != NULL, "error '%s' does not mention '%s'", err, needle);
}

Test(llama2c, bad_inputs)
{
	char dir[] = "/tmp/ab-l2c-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char *bin = ab_xasprintf("%s/tiny.bin", dir), *tok = ab_xasprintf("%s/tok.bin", dir);
	struct ab_buf b = {0}, t = {0};
	tiny_tokenizer(&t, 4);
	write_file(tok, t.data, t.len);
	tiny_checkpoint(&b, 4);
	write_file(bin, b.data, b.len - 4);
	l2c_fail(bin, tok, "bytes, but a llama2.c checkpoint");
	ab_buf_append(&b, "xxxx", 4);
	write_file(bin, b.data, b.len);
	l2c_fail(bin, tok, "bytes, but a llama2.c checkpoint");
	write_file(bin, b.data, 10);
	l2c_fail(bin, tok, "shorter than the 28-byte");
	int32_t zero = 0;
	memcpy(b.data, &zero, 4);
	write_file(bin, b.data, b.len);
	l2c_fail(bin, tok, "not a llama2.c checkpoint");
	int32_t hd[7] = {8, 16, 2, 3, 1, 4, 4}; /* 8 % 3 != 0 */
	memcpy(b.data, hd, sizeof(hd));
	write_file(bin, b.data, b.len);
	l2c_fail(bin, tok, "not a llama2.c checkpoint");
	int32_t big[7] = {INT32_MAX, INT32_MAX, INT32_MAX, 1, 1, INT32_MIN, INT32_MAX};
	memcpy(b.data, big, sizeof(big));
	write_file(bin, b.data, b.len);
	l2c_fail(bin, tok, "not a llama2.c checkpoint");
	/* a good model with a tokenizer that is too short or lies */
	tiny_checkpoint(&b, 4);
	write_file(bin, b.data, b.len);
	struct ab_gguf_writer *w = NULL;
	char err[512];
	cr_assert_eq(ab_llama2c_to_gguf(bin, tok, &w, err, sizeof(err)), 0, "%s", err);
	ab_gguf_writer_free(w);
	write_file(tok, t.data, t.len - 1);
	l2c_fail(bin, tok, "runs past the end");
	write_file(tok, t.data, 8);
	l2c_fail(bin, tok, "truncated");
	int32_t neg = -5;
	memcpy(t.data + 8, &neg, 4);
	write_file(tok, t.data, t.len);
	l2c_fail(bin, tok, "length -5");
	l2c_fail(bin, "/nonexistent/tok.bin", "/nonexistent/tok.bin");
	l2c_fail("/nonexistent/m.bin", tok, "/nonexistent/m.bin");
	unlink(bin);
	unlink(tok);
	rmdir(dir);
	ab_buf_free(&b);
	ab_buf_free(&t);
	free(bin);
	free(tok);
}

/* ---- autobot model (the CLI) ---- */

static void need_autobot(void)
{
	if (access(AB_TEST_AUTOBOT, X_OK) != 0)
		cr_skip_test("%s not built", AB_TEST_AUTOBOT);
}

/* Runs a shell command; returns its exit status and its stdout in *out. */
static int run_cmd(const char *cmd, char **out)
{
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	struct ab_buf b = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		ab_buf_append(&b, chunk, n);
	int st = pclose(p);
	if (out)
		*out = b.data ? ab_buf_steal(&b) : ab_xstrdup("");
	else
		ab_buf_free(&b);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(model_cli, info_json)
{
	need_autobot();
	char *path = need_shared("models/reference/stories260K.gguf");
	char *cmd = ab_xasprintf("%s model info --json '%s'", AB_TEST_AUTOBOT, path);
	char *out = NULL;
	cr_assert_eq(run_cmd(cmd, &out), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	cr_assert_not_null(j, "%s: %s", je.text, out);
	cr_assert_eq(json_integer_value(json_object_get(j, "n_params")), 292800);
	cr_assert_eq(json_array_size(json_object_get(j, "tensors")), 48);
	/* 2 * 5 layers * 128 ctx * kv_dim 32 * 4 bytes */
	cr_assert_eq(json_integer_value(json_object_get(j, "kv_cache_bytes")), 163840);
	json_t *toks = json_object_get(json_object_get(j, "metadata"), "tokenizer.ggml.tokens");
	cr_assert_eq(json_integer_value(json_object_get(toks, "n")), 512);
	json_decref(j);
	free(out);
	free(cmd);
	cmd = ab_xasprintf("%s model info '%s'", AB_TEST_AUTOBOT, path);
	cr_assert_eq(run_cmd(cmd, &out), 0);
	cr_assert(strstr(out, "parameters:    292800") != NULL, "%s", out);
	cr_assert(strstr(out, "string[512]") != NULL);
	free(out);
	free(cmd);
	cmd = ab_xasprintf("%s model info /nonexistent.gguf 2>/dev/null", AB_TEST_AUTOBOT);
	cr_assert_eq(run_cmd(cmd, NULL), 1);
	free(cmd);
	free(path);
}

Test(model_cli, convert_and_synth)
{
	need_autobot();
	char *bin = need_shared("models/stories260K.bin");
	char *tok = need_shared("models/tok512.bin");
	char *vocab = need_shared("models/reference/tokenizers/ggml-vocab-llama-spm.gguf");
	char dir[] = "/tmp/ab-model-cli-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char *out = ab_xasprintf("%s/s.gguf", dir);
	char *cmd = ab_xasprintf("%s model convert '%s' --tokenizer '%s' -o '%s' >/dev/null",
				 AB_TEST_AUTOBOT, bin, tok, out);
	cr_assert_eq(run_cmd(cmd, NULL), 0);
	free(cmd);
	struct ab_gguf *g = NULL;
	char err[512];
	cr_assert_eq(ab_gguf_open(out, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g->n_tensors, 47);
	ab_gguf_free(g);
	unlink(out);

	static const struct {
		const char *name;
		uint32_t type;
	} types[] = {{"f32", 0}, {"f16", 1}, {"q4_0", 2}, {"q8_0", 8}, {"q4_k", 12}, {"q6_k", 14}};
	for (size_t i = 0; i < AB_ARRAY_LEN(types); i++) {
		cmd = ab_xasprintf("%s model synth --dim 256 --layers 1 --heads 4 --kv-heads 2 "
				   "--ffn 512 --vocab 32000 --type %s --ctx 64 --seed 7 "
				   "--tokenizer '%s' -o '%s' >/dev/null",
				   AB_TEST_AUTOBOT, types[i].name, vocab, out);
		cr_assert_eq(run_cmd(cmd, NULL), 0, "%s", cmd);
		free(cmd);
		cr_assert_eq(ab_gguf_open(out, &g, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(g->n_tensors, 12);
		cr_assert_eq(ab_gguf_tensor(g, "blk.0.attn_q.weight")->type, types[i].type);
		cr_assert_eq(ab_gguf_tensor(g, "blk.0.ffn_down.weight")->type, types[i].type);
		cr_assert_eq(ab_gguf_tensor(g, "blk.0.attn_k.weight")->ne[1], 128);
		cr_assert_eq(ab_gguf_tensor(g, "blk.0.attn_norm.weight")->type, 0);
		cr_assert_eq(ab_gguf_find(g, "tokenizer.ggml.tokens")->v.arr.n, 32000);
		cr_assert_not_null(ab_gguf_find(g, "tokenizer.ggml.add_bos_token"));
		uint32_t ctx;
		cr_assert_eq(ab_gguf_get_u32(g, "llama.context_length", &ctx), 0);
		cr_assert_eq(ctx, 64);
		ab_gguf_free(g);
		unlink(out);
	}
	/* rows that are not a multiple of the block stay F32; tokenizer.bin vocab */
	cmd = ab_xasprintf("%s model synth --dim 64 --layers 1 --heads 8 --ffn 172 --type q8_0 "
			   "--tokenizer '%s' --tied -o '%s' >/dev/null",
			   AB_TEST_AUTOBOT, tok, out);
	cr_assert_eq(run_cmd(cmd, NULL), 0);
	free(cmd);
	cr_assert_eq(ab_gguf_open(out, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ab_gguf_tensor(g, "blk.0.attn_q.weight")->type, 8);
	cr_assert_eq(ab_gguf_tensor(g, "blk.0.ffn_down.weight")->type, 0);
	cr_assert_null(ab_gguf_tensor(g, "output.weight"));
	cr_assert_eq(ab_gguf_find(g, "tokenizer.ggml.tokens")->v.arr.n, 512);
	ab_gguf_free(g);
	unlink(out);
	/* --vocab must match the tokenizer */
	cmd = ab_xasprintf("%s model synth --dim 64 --layers 1 --heads 8 --ffn 172 --type q8_0 "
			   "--vocab 500 --tokenizer '%s' -o '%s' 2>/dev/null",
			   AB_TEST_AUTOBOT, tok, out);
	cr_assert_eq(run_cmd(cmd, NULL), 64);
	free(cmd);
	cr_assert(!exists(out));
	/* usage errors and --help */
	cmd = ab_xasprintf("%s model synth --dim 64 --type q9 -o x 2>/dev/null", AB_TEST_AUTOBOT);
	cr_assert_eq(run_cmd(cmd, NULL), 64);
	free(cmd);
	static const char *const subs[] = {"info", "convert", "synth"};
	for (size_t i = 0; i < AB_ARRAY_LEN(subs); i++) {
		char *o = NULL;
		cmd = ab_xasprintf("%s model %s --help", AB_TEST_AUTOBOT, subs[i]);
		cr_assert_eq(run_cmd(cmd, &o), 0);
		cr_assert(strstr(o, "usage: autobot model") != NULL);
		free(o);
		free(cmd);
	}
	rmdir(dir);
	free(out);
	free(bin);
	free(tok);
	free(vocab);
}
