/*
 * test_llm_tokenizer.c - the tokenizers against llama.cpp: its tokenizer
 * test vectors (46 texts each for the llama SentencePiece and GPT-2 BPE
 * vocabularies), the token ids, pieces and detokenized texts recorded in
 * the reference models' expected.json, llama2.c's tokenizer.bin against
 * the GGUF converted from it, special-token parsing, round trips over
 * awkward UTF-8 and invalid bytes, and a guard against quadratic time on
 * long runs of one character.
 *
 * The data lies in ../shared (AB_SOURCE_ROOT "/../shared", or the
 * directory named by AB_SHARED_DIR); a test whose files are missing is
 * skipped with a message naming the file.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ab_build.h"
#include "common.h"
#include "gguf.h"
#include "tokenizer.h"

/* ---- helpers ---- */

static const char *shared_dir(void)
{
	const char *e = getenv("AB_SHARED_DIR");
	return e && *e ? e : AB_SOURCE_ROOT "/../shared";
}

static char *shared_path(const char *rel)
{
	return ab_xasprintf("%s/%s", shared_dir(), rel);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Whole file (NUL-terminated, length in *n) or NULL. */
static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct ab_buf b = {0};
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ab_buf_append(&b, chunk, got);
	fclose(f);
	if (!b.data)
		ab_buf_append(&b, "", 0);
	*n = b.len;
	return ab_buf_steal(&b);
}

/* Tokenizer of a GGUF under shared/ (skips the test when it is absent). */
static struct ab_tok *load_gguf(const char *rel)
{
	char *path = shared_path(rel);
	if (!exists(path)) {
		cr_skip_test("%s is missing (set AB_SHARED_DIR to the shared folder)", path);
	}
	struct ab_gguf *g = NULL;
	char err[256] = "";
	int rc = ab_gguf_open(path, &g, err, sizeof(err));
	cr_assert_eq(rc, 0, "ab_gguf_open(%s): %d %s", path, rc, err);
	struct ab_tok *t = NULL;
	rc = ab_tok_from_gguf(g, &t, err, sizeof(err));
	cr_assert_eq(rc, 0, "ab_tok_from_gguf(%s): %d %s", path, rc, err);
	ab_gguf_free(g); /* the tokenizer keeps copies */
	free(path);
	return t;
}

static struct ab_tok *load_llama2c(void)
{
	char *path = shared_path("models/tok512.bin");
	if (!exists(path)) {
		cr_skip_test("%s is missing (set AB_SHARED_DIR to the shared folder)", path);
	}
	struct ab_tok *t = NULL;
	char err[256] = "";
	int rc = ab_tok_from_llama2c(path, 512, &t, err, sizeof(err));
	cr_assert_eq(rc, 0, "ab_tok_from_llama2c(%s): %d %s", path, rc, err);
	free(path);
	return t;
}

/* Encodes into a fresh array (count in *n). */
static int32_t *enc(const struct ab_tok *t, const char *s, size_t len, bool add_special,
                    bool parse_special, int *n)
{
	int need = ab_tok_encode(t, s, len, add_special, parse_special, NULL, 0);
	cr_assert_geq(need, 0, "encode failed: %d", need);
	int32_t *ids = ab_xmalloc(((size_t)need + 1) * sizeof(*ids));
	int got = ab_tok_encode(t, s, len, add_special, parse_special, ids, need);
	cr_assert_eq(got, need);
	*n = need;
	return ids;
}

/* Decodes into a fresh NUL-terminated string (length in *n). */
static char *dec(const struct ab_tok *t, const int32_t *ids, int n_ids, size_t *n)
{
	int need = ab_tok_decode(t, ids, n_ids, NULL, 0);
	cr_assert_geq(need, 0);
	char *s = ab_xmalloc((size_t)need + 1);
	int got = ab_tok_decode(t, ids, n_ids, s, (size_t)need + 1);
	cr_assert_eq(got, need);
	*n = (size_t)need;
	return s;
}

static char *ids_str(const int32_t *ids, int n)
{
	struct ab_buf b = {0};
	ab_buf_puts(&b, "[");
	for (int i = 0; i < n; i++)
		ab_buf_printf(&b, "%s%d", i ? " " : "", (int)ids[i]);
	ab_buf_puts(&b, "]");
	return ab_buf_steal(&b);
}

/* ---- (a) llama.cpp's tokenizer test vectors ---- */

#define VOCAB_SEP "\n__ggml_vocab_test__\n"

/* Runs one .inp/.out pair; returns the number of texts that matched and
 * stores the number of texts in *total. */
static int run_vectors(const char *vocab, int *total)
{
	char *rel = ab_xasprintf("models/reference/tokenizers/%s", vocab);
	char *inp_rel = ab_xasprintf("%s.inp", rel);
	char *out_rel = ab_xasprintf("%s.out", rel);
	char *inp_path = shared_path(inp_rel), *out_path = shared_path(out_rel);
	size_t inp_n = 0, out_n = 0;
	char *inp = slurp(inp_path, &inp_n), *out = slurp(out_path, &out_n);
	if (!inp || !out) {
		cr_skip_test("%s or %s is missing", inp_path, out_path);
	}
	struct ab_tok *t = load_gguf(rel);

	/* texts: split on the separator; the file ends with one */
	const char *texts[128];
	size_t lens[128];
	int nt = 0;
	const char *p = inp, *end = inp + inp_n;
	while (p < end && nt < 128) {
		const char *s = memmem(p, (size_t)(end - p), VOCAB_SEP, strlen(VOCAB_SEP));
		if (!s)
			break;
		texts[nt] = p;
		lens[nt] = (size_t)(s - p);
		nt++;
		p = s + strlen(VOCAB_SEP);
	}
	cr_assert_eq(p, end, "%s: text after the last separator", inp_path);

	int ok = 0, line = 0;
	/* strtok would skip empty lines: walk the lines by hand */
	char *lp = out;
	for (int i = 0; i < nt; i++, line++) {
		cr_assert(lp && *lp, "%s: only %d lines for %d texts", out_path, line, nt);
		char *nl = strchr(lp, '\n');
		if (nl)
			*nl = 0;
		int32_t want[4096];
		int nw = 0;
		char *q = lp;
		for (;;) {
			while (*q == ' ' || *q == '\r')
				q++;
			if (!*q)
				break;
			char *e = NULL;
			long v = strtol(q, &e, 10);
			cr_assert(e != q, "%s line %d: bad id", out_path, line + 1);
			cr_assert_lt(nw, 4096);
			want[nw++] = (int32_t)v;
			q = e;
		}
		lp = nl ? nl + 1 : NULL;

		int n = 0;
		int32_t *got = enc(t, texts[i], lens[i], false, false, &n);
		bool same = n == nw && memcmp(got, want, (size_t)n * sizeof(*got)) == 0;
		if (same) {
			ok++;
		} else {
			char *a = ids_str(got, n), *b = ids_str(want, nw);
			cr_log_error("%s text %d \"%.*s\": got %s want %s", vocab, i, (int)lens[i],
			             texts[i], a, b);
			free(a);
			free(b);
		}
		free(got);
	}
	cr_log_info("%s: %d/%d test vectors match", vocab, ok, nt);
	*total = nt;
	ab_tok_free(t);
	free(inp);
	free(out);
	free(inp_path);
	free(out_path);
	free(inp_rel);
	free(out_rel);
	free(rel);
	return ok;
}

Test(tokenizer, vectors_llama_spm)
{
	int total = 0;
	int ok = run_vectors("ggml-vocab-llama-spm.gguf", &total);
	cr_assert_eq(total, 46, "expected 46 test texts, found %d", total);
	cr_assert_eq(ok, total, "llama-spm: %d/%d test vectors match", ok, total);
}

Test(tokenizer, vectors_gpt2)
{
	int total = 0;
	int ok = run_vectors("ggml-vocab-gpt-2.gguf", &total);
	cr_assert_eq(total, 46, "expected 46 test texts, found %d", total);
	cr_assert_eq(ok, total, "gpt-2: %d/%d test vectors match", ok, total);
}

/* ---- (b) the reference models' expected.json ---- */

static size_t unhex(const char *h, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; h[i] && h[i + 1] && n < cap; i += 2) {
		unsigned v;
		cr_assert_eq(sscanf(h + i, "%2x", &v), 1);
		out[n++] = (char)v;
	}
	return n;
}

static void check_ids(const struct ab_tok *t, const char *text, json_t *want, bool add_special,
                      const char *what)
{
	cr_assert(json_is_array(want), "%s: no ids", what);
	int n = 0;
	int32_t *got = enc(t, text, strlen(text), add_special, false, &n);
	size_t nw = json_array_size(want);
	char *a = ids_str(got, n);
	cr_assert_eq((size_t)n, nw, "%s \"%s\": %d ids %s, want %zu", what, text, n, a, nw);
	for (size_t i = 0; i < nw; i++)
		cr_assert_eq(got[i], (int32_t)json_integer_value(json_array_get(want, i)),
		             "%s \"%s\": id %zu: got %s", what, text, i, a);
	free(a);
	free(got);
}

/* Pieces (with special) and detokenized text of ids. */
static void check_text(const struct ab_tok *t, json_t *ids, json_t *pieces, json_t *hex,
                       json_t *detok, const char *what)
{
	size_t n = json_array_size(ids);
	int32_t *v = ab_xmalloc((n + 1) * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = (int32_t)json_integer_value(json_array_get(ids, i));
	cr_assert_eq(json_array_size(pieces), n, "%s: pieces count", what);
	for (size_t i = 0; i < n; i++) {
		char want[512], got[512];
		size_t wn;
		if (hex) {
			wn = unhex(json_string_value(json_array_get(hex, i)), want, sizeof(want));
		} else {
			const char *s = json_string_value(json_array_get(pieces, i));
			wn = strlen(s);
			memcpy(want, s, wn);
		}
		int gn = ab_tok_piece(t, v[i], true, got, sizeof(got));
		cr_assert(gn >= 0 && (size_t)gn == wn && memcmp(got, want, wn) == 0,
		          "%s: piece %zu of id %d: got \"%.*s\" (%d bytes), want \"%.*s\"", what, i,
		          (int)v[i], gn < 0 ? 0 : gn, got, gn, (int)wn, want);
	}
	size_t dn;
	char *d = dec(t, v, (int)n, &dn);
	const char *dw = json_string_value(detok);
	cr_assert_not_null(dw, "%s: no detokenized text", what);
	cr_assert(dn == strlen(dw) && memcmp(d, dw, dn) == 0, "%s: detokenized \"%s\", want \"%s\"",
	          what, d, dw);
	free(d);
	free(v);
}

/* Checks one expected.json against the tokenizer of gguf_rel; returns the
 * number of prompts checked (each one fully: ids, pieces, text). */
static int check_expected(const char *json_rel, const char *gguf_rel)
{
	char *jpath = shared_path(json_rel);
	if (!exists(jpath)) {
		cr_skip_test("%s is missing", jpath);
	}
	json_error_t jerr;
	json_t *root = json_load_file(jpath, 0, &jerr);
	cr_assert_not_null(root, "%s: %s", jpath, jerr.text);
	struct ab_tok *t = load_gguf(gguf_rel);

	json_t *tk = json_object_get(root, "tokenizer");
	const char *vt = json_string_value(json_object_get(tk, "vocab_type"));
	cr_assert_eq(ab_tok_kind(t), strcmp(vt, "spm") == 0 ? AB_TOK_SPM : AB_TOK_BPE);
	cr_assert_eq(ab_tok_bos(t), (int32_t)json_integer_value(json_object_get(tk, "bos_id")));
	cr_assert_eq(ab_tok_eos(t), (int32_t)json_integer_value(json_object_get(tk, "eos_id")));
	cr_assert_eq(ab_tok_add_bos(t), json_is_true(json_object_get(tk, "add_bos")));
	cr_assert(ab_tok_is_eog(t, ab_tok_eos(t)));

	json_t *prompts = json_object_get(root, "prompts");
	size_t np = json_array_size(prompts);
	cr_assert_gt(np, 0);
	for (size_t i = 0; i < np; i++) {
		json_t *pr = json_array_get(prompts, i);
		const char *text = json_string_value(json_object_get(pr, "text"));
		char what[256];
		snprintf(what, sizeof(what), "%s prompt %zu with special", json_rel, i);
		check_ids(t, text, json_object_get(pr, "tokens_with_special"), true, what);
		check_text(t, json_object_get(pr, "tokens_with_special"),
		           json_object_get(pr, "pieces_with_special"),
		           json_object_get(pr, "pieces_with_special_hex"),
		           json_object_get(pr, "detokenized_with_special"), what);
		snprintf(what, sizeof(what), "%s prompt %zu without special", json_rel, i);
		check_ids(t, text, json_object_get(pr, "tokens_without_special"), false, what);
		check_text(t, json_object_get(pr, "tokens_without_special"),
		           json_object_get(pr, "pieces_without_special"),
		           json_object_get(pr, "pieces_without_special_hex"),
		           json_object_get(pr, "detokenized_without_special"), what);
	}
	ab_tok_free(t);
	json_decref(root);
	free(jpath);
	return (int)np;
}

#define REF "models/reference/"

Test(tokenizer, expected_stories260K)
{
	cr_assert_eq(check_expected(REF "stories260K.expected.json", REF "stories260K.gguf"), 3);
	cr_assert_eq(
	    check_expected(REF "stories260K.f16.expected.json", REF "stories260K.f16.gguf"), 3);
}

Test(tokenizer, expected_tiny_llama_spm)
{
	static const char *const q[] = {"q8_0", "q4_0", "q4_k_m", "q6_k"};
	for (size_t i = 0; i < AB_ARRAY_LEN(q); i++) {
		char j[128], g[128];
		snprintf(j, sizeof(j), REF "tiny-llama-spm.%s.expected.json", q[i]);
		snprintf(g, sizeof(g), REF "tiny-llama-spm.%s.gguf", q[i]);
		cr_assert_eq(check_expected(j, g), 3);
	}
	/* the f16 parent is not stored; its vocabulary is llama-spm's */
	cr_assert_eq(check_expected(REF "tiny-llama-spm.f16.expected.json",
	                            REF "tokenizers/ggml-vocab-llama-spm.gguf"),
	             3);
}

Test(tokenizer, expected_tiny_gpt2bpe)
{
	cr_assert_eq(
	    check_expected(REF "tiny-gpt2bpe.q8_0.expected.json", REF "tiny-gpt2bpe.q8_0.gguf"), 3);
}

/* ---- (c) llama2.c's tokenizer.bin = the GGUF converted from it ---- */

Test(tokenizer, llama2c_matches_gguf)
{
	struct ab_tok *a = load_llama2c();
	struct ab_tok *b = load_gguf(REF "stories260K.gguf");
	cr_assert_eq(ab_tok_n_vocab(a), 512);
	cr_assert_eq(ab_tok_n_vocab(b), 512);
	cr_assert_eq(ab_tok_kind(a), AB_TOK_SPM);
	cr_assert_eq(ab_tok_bos(a), 1);
	cr_assert_eq(ab_tok_eos(a), 2);
	cr_assert(ab_tok_add_bos(a));
	static const char *const prompts[] = {
	    "Hello world",
	    "Once upon a time, in a land far away",
	    "Grüße 123 — ok?",
	    "",
	    " ",
	    "Lily's mom said, \"Let's go to the park!\"\n\nThe end.",
	};
	/* the three reference prompts, with the ids llama.cpp gave */
	static const int32_t want0[] = {1, 346, 306, 414, 263, 304, 341};
	int n = 0;
	int32_t *ids = enc(a, prompts[0], strlen(prompts[0]), true, false, &n);
	cr_assert_eq(n, (int)AB_ARRAY_LEN(want0));
	cr_assert_eq(memcmp(ids, want0, sizeof(want0)), 0);
	free(ids);
	for (size_t i = 0; i < AB_ARRAY_LEN(prompts); i++) {
		for (int sp = 0; sp < 2; sp++) {
			int na = 0, nb = 0;
			int32_t *ia = enc(a, prompts[i], strlen(prompts[i]), sp, false, &na);
			int32_t *ib = enc(b, prompts[i], strlen(prompts[i]), sp, false, &nb);
			char *sa = ids_str(ia, na), *sb = ids_str(ib, nb);
			cr_assert_str_eq(sa, sb, "\"%s\" add_special=%d", prompts[i], sp);
			size_t da, db;
			char *ta = dec(a, ia, na, &da), *tb = dec(b, ib, nb, &db);
			cr_assert_str_eq(ta, tb);
			free(ta);
			free(tb);
			free(sa);
			free(sb);
			free(ia);
			free(ib);
		}
	}
	/* every piece is the same */
	for (int32_t id = 0; id < 512; id++) {
		for (int sp = 0; sp < 2; sp++) {
			char pa[64], pb[64];
			int la = ab_tok_piece(a, id, sp, pa, sizeof(pa));
			int lb = ab_tok_piece(b, id, sp, pb, sizeof(pb));
			cr_assert(la == lb && memcmp(pa, pb, (size_t)la) == 0, "piece of %d",
			          (int)id);
		}
	}
	ab_tok_free(a);
	ab_tok_free(b);
}

/* ---- (d) round trips ---- */

/* spm: false where SentencePiece cannot round-trip by design (U+2581 in
 * the input is its own word marker and comes back as a space) */
static const struct {
	const char *s;
	size_t n;
	bool spm;
} roundtrip_texts[] = {
#define T(x)                                                                                       \
	{                                                                                          \
		x, sizeof(x) - 1, true                                                             \
	}
    T("Hello world"),
    T(" leading space and trailing  "),
    T("tabs\tand\nnewlines\r\n\n  indented\n"),
    T("emoji 👋🏽 🎉🇫🇷 family 👨‍👩‍👧"),
    T("CJK 日本語のテキスト 中文 한국어"),
    T("combining e\xcc\x81 n\xcc\x83 A\xcc\x8a and Å precomposed"),
    T("invalid \xff\xfe bytes \xc3\x28 and \xe2\x82 truncated \xf0\x9f\x98"),
    T("lone continuation \x80\xbf and overlong \xc0\xaf surrogate \xed\xa0\x80"),
    T("nul \0 byte"),
    {"\xe2\x96\x81 the SPM marker itself \xe2\x96\x81\xe2\x96\x81", 32, false},
    T("numbers 1234567890 3.14159 ١٢٣ Ⅻ"),
    T("Ġ and Ċ are GPT-2's alphabet"),
    T("\xf4\x8f\xbf\xbf max and \xf4\x90\x80\x80 beyond"),
    T("   "),
    T("\n"),
    T("x"),
#undef T
};

static void roundtrip(const struct ab_tok *t, const char *s, size_t len)
{
	int n = 0;
	int32_t *ids = enc(t, s, len, false, false, &n);
	for (int i = 0; i < n; i++)
		cr_assert(ids[i] >= 0 && ids[i] < ab_tok_n_vocab(t));
	size_t dn;
	char *d = dec(t, ids, n, &dn);
	cr_assert(dn == len && memcmp(d, s, len) == 0, "round trip of \"%.*s\" gave \"%.*s\"",
	          (int)len, s, (int)dn, d);
	free(d);
	free(ids);
}

Test(tokenizer, roundtrip_spm)
{
	struct ab_tok *t = load_gguf(REF "tokenizers/ggml-vocab-llama-spm.gguf");
	for (size_t i = 0; i < AB_ARRAY_LEN(roundtrip_texts); i++)
		if (roundtrip_texts[i].spm)
			roundtrip(t, roundtrip_texts[i].s, roundtrip_texts[i].n);
	/* with BOS the leading space stays, as in llama.cpp */
	int n = 0;
	int32_t *ids = enc(t, "Hi", 2, true, false, &n);
	cr_assert_eq(ids[0], 1);
	size_t dn;
	char *d = dec(t, ids, n, &dn);
	cr_assert_str_eq(d, " Hi");
	free(d);
	free(ids);
	/* the empty text: BOS alone, or nothing */
	cr_assert_eq(ab_tok_encode(t, "", 0, true, false, NULL, 0), 1);
	cr_assert_eq(ab_tok_encode(t, "", 0, false, false, NULL, 0), 0);
	ab_tok_free(t);
}

Test(tokenizer, roundtrip_llama2c)
{
	struct ab_tok *t = load_llama2c();
	for (size_t i = 0; i < AB_ARRAY_LEN(roundtrip_texts); i++)
		if (roundtrip_texts[i].spm)
			roundtrip(t, roundtrip_texts[i].s, roundtrip_texts[i].n);
	ab_tok_free(t);
}

Test(tokenizer, roundtrip_gpt2)
{
	struct ab_tok *t = load_gguf(REF "tokenizers/ggml-vocab-gpt-2.gguf");
	for (size_t i = 0; i < AB_ARRAY_LEN(roundtrip_texts); i++)
		roundtrip(t, roundtrip_texts[i].s, roundtrip_texts[i].n);
	/* llama.cpp's clean_up_tokenization_spaces applies to BPE text */
	int n = 0;
	int32_t *ids = enc(t, "a , b .", 7, false, false, &n);
	size_t dn;
	char *d = dec(t, ids, n, &dn);
	cr_assert_str_eq(d, "a, b.");
	free(d);
	free(ids);
	ab_tok_free(t);
}

/* Random bytes never crash and (for both kinds) survive the trip. */
Test(tokenizer, random_bytes)
{
	struct ab_tok *ts[2] = {load_gguf(REF "tokenizers/ggml-vocab-llama-spm.gguf"),
	                        load_gguf(REF "tokenizers/ggml-vocab-gpt-2.gguf")};
	uint64_t x = 0x9E3779B97F4A7C15ull;
	char buf[300];
	for (int k = 0; k < 400; k++) {
		size_t len = (size_t)(k % 297);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* bias towards interesting bytes */
			unsigned v = (unsigned)(x >> 24) & 0xff;
			static const unsigned char pick[] = " a\xc3\xe2\x80\xbf'?";
			unsigned b =
			    k % 3 == 0 ? v : (k % 3 == 1 ? pick[v % sizeof(pick)] : v | 0x80);
			buf[i] = (char)b;
		}
		/* SPM: no special parsing, no BOS, no U+2581 in the input */
		if (!memmem(buf, len, "\xe2\x96\x81", 3))
			roundtrip(ts[0], buf, len);
		/* GPT-2: llama.cpp's space clean-up only touches " ?" " !" " ." " ,"
		 * and " '" */
		bool clean = false;
		for (size_t i = 0; i + 1 < len; i++)
			if (buf[i] == ' ' && strchr("?!.,'", buf[i + 1]) && buf[i + 1])
				clean = true;
		if (!clean)
			roundtrip(ts[1], buf, len);
		/* and with everything switched on nothing breaks */
		for (int j = 0; j < 2; j++) {
			int n = 0;
			int32_t *ids = enc(ts[j], buf, len, true, true, &n);
			size_t dn;
			free(dec(ts[j], ids, n, &dn));
			free(ids);
		}
	}
	ab_tok_free(ts[0]);
	ab_tok_free(ts[1]);
}

/* ---- (e) special tokens ---- */

Test(tokenizer, parse_special_spm)
{
	struct ab_tok *t = load_gguf(REF "tokenizers/ggml-vocab-llama-spm.gguf");
	const char *s = "<s>hello</s>";
	int32_t hello = ab_tok_lookup(t, "\xe2\x96\x81hello");
	cr_assert_geq(hello, 0);
	int n = 0;
	int32_t *ids = enc(t, s, strlen(s), false, true, &n);
	char *str = ids_str(ids, n);
	cr_assert_eq(n, 3, "%s", str);
	cr_assert(ids[0] == 1 && ids[1] == hello && ids[2] == 2, "%s", str);
	free(str);
	free(ids);
	ids = enc(t, s, strlen(s), true, true, &n);
	cr_assert(n == 4 && ids[0] == 1 && ids[1] == 1 && ids[2] == hello && ids[3] == 2);
	free(ids);
	/* without parse_special the markup is plain text */
	ids = enc(t, s, strlen(s), false, false, &n);
	cr_assert_gt(n, 3);
	for (int i = 0; i < n; i++)
		cr_assert(ids[i] != 1 && ids[i] != 2);
	size_t dn;
	char *d = dec(t, ids, n, &dn);
	cr_assert_str_eq(d, s);
	free(d);
	free(ids);
	/* pieces: control text only with special */
	char p[32];
	cr_assert_eq(ab_tok_piece(t, 1, true, p, sizeof(p)), 3);
	cr_assert_eq(memcmp(p, "<s>", 3), 0);
	cr_assert_eq(ab_tok_piece(t, 1, false, p, sizeof(p)), 0);
	cr_assert_eq(ab_tok_piece(t, 0, true, p, sizeof(p)), 5); /* <unk> */
	cr_assert_eq(ab_tok_piece(t, ab_tok_lookup(t, "<0x0A>"), false, p, sizeof(p)), 1);
	cr_assert_eq(p[0], '\n');
	cr_assert_eq(ab_tok_piece(t, 32000, true, p, sizeof(p)), AB_EINVAL);
	cr_assert_eq(ab_tok_piece(t, -1, true, p, sizeof(p)), AB_EINVAL);
	/* decoding skips control text: llama_detokenize(unparse_special=false) */
	int32_t three[3] = {1, hello, 2};
	d = dec(t, three, 3, &dn);
	cr_assert_str_eq(d, " hello");
	free(d);
	/* eog and lookup */
	cr_assert(ab_tok_is_eog(t, 2));
	cr_assert(!ab_tok_is_eog(t, 1));
	cr_assert(!ab_tok_is_eog(t, -5));
	cr_assert(!ab_tok_is_eog(t, 1 << 30));
	cr_assert_eq(ab_tok_lookup(t, "<s>"), 1);
	cr_assert_eq(ab_tok_lookup(t, "</s>"), 2);
	cr_assert_eq(ab_tok_lookup(t, "no such token, surely"), -1);
	ab_tok_free(t);
}

Test(tokenizer, parse_special_gpt2)
{
	struct ab_tok *t = load_gguf(REF "tokenizers/ggml-vocab-gpt-2.gguf");
	cr_assert_eq(ab_tok_lookup(t, "<|endoftext|>"), 50256);
	cr_assert(ab_tok_is_eog(t, 50256));
	cr_assert(!ab_tok_add_bos(t));
	int n = 0;
	int32_t *ids = enc(t, "<|endoftext|>", 13, true, true, &n);
	cr_assert(n == 1 && ids[0] == 50256);
	free(ids);
	ids = enc(t, "a<|endoftext|>b", 15, false, true, &n);
	cr_assert(n == 3 && ids[0] == 64 && ids[1] == 50256 && ids[2] == 65);
	free(ids);
	ids = enc(t, "<|endoftext|>", 13, false, false, &n);
	cr_assert_gt(n, 1);
	for (int i = 0; i < n; i++)
		cr_assert_neq(ids[i], 50256);
	size_t dn;
	char *d = dec(t, ids, n, &dn);
	cr_assert_str_eq(d, "<|endoftext|>");
	free(d);
	free(ids);
	char p[32];
	cr_assert_eq(ab_tok_piece(t, 50256, true, p, sizeof(p)), 13);
	cr_assert_eq(ab_tok_piece(t, 50256, false, p, sizeof(p)), 0);
	cr_assert_eq(ab_tok_piece(t, 220, false, p, sizeof(p)), 1); /* "Ġ" */
	cr_assert_eq(p[0], ' ');
	ab_tok_free(t);
}

/* Bounded outputs: encode reports the size it needs, decode truncates. */
Test(tokenizer, bounded_buffers)
{
	struct ab_tok *t = load_gguf(REF "tokenizers/ggml-vocab-gpt-2.gguf");
	const char *s = "Once upon a time, in a land far away";
	int32_t ids[4] = {-7, -7, -7, -7};
	int need = ab_tok_encode(t, s, strlen(s), false, false, ids, 3);
	cr_assert_eq(need, 10);
	cr_assert_eq(ids[0], 7454);
	cr_assert_eq(ids[3], -7);
	int32_t all[10];
	cr_assert_eq(ab_tok_encode(t, s, strlen(s), false, false, all, 10), 10);
	char small[8];
	cr_assert_eq(ab_tok_decode(t, all, 10, small, sizeof(small)), (int)strlen(s));
	cr_assert_str_eq(small, "Once up");
	char p[3];
	cr_assert_eq(ab_tok_piece(t, 2402, false, p, sizeof(p)), 3); /* " upon", cut */
	cr_assert_eq(memcmp(p, " up", 3), 0);
	cr_assert_eq(ab_tok_encode(t, NULL, 5, false, false, all, 10), AB_EINVAL);
	ab_tok_free(t);
}

/* ---- (f) no quadratic behaviour ---- */

/* Sanitizers and -O0 builds run the same code several times slower. */
static double slowdown(void)
{
	double f = 1.0;
#if defined(__SANITIZE_ADDRESS__)
	f *= 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	f *= 4;
#endif
#endif
#ifndef __OPTIMIZE__
	f *= 2;
#endif
	return f;
}

/* Best of three timings of encoding len bytes of c. */
static double encode_ms(const struct ab_tok *t, const char *s, size_t len, int *n)
{
	double best = 1e30;
	for (int r = 0; r < 3; r++) {
		double t0 = ab_now_ms_f();
		*n = ab_tok_encode(t, s, len, true, true, NULL, 0);
		double ms = ab_now_ms_f() - t0;
		if (ms < best)
			best = ms;
	}
	return best;
}

static void time_long(const struct ab_tok *t, char c, const char *what)
{
	size_t len = 100 * 1024;
	char *s = ab_xmalloc(len);
	memset(s, c, len);
	int n = 0, n4 = 0;
	double ms = encode_ms(t, s, len, &n);
	double ms4 = encode_ms(t, s, len / 4, &n4);
	cr_assert_gt(n, 0);
	cr_log_info("%s: 100 KB of 0x%02x -> %d tokens in %.1f ms (25 KB: %.1f ms)", what,
	            (unsigned)c, n, ms, ms4);
	/* well under a second, whatever the machine's load... */
	cr_assert_lt(ms, 1000.0 * slowdown(), "%s: 100 KB of 0x%02x took %.0f ms", what,
	             (unsigned)c, ms);
	/* ...and growing like n log n: quadratic time would be 16x */
	cr_assert_lt(ms, 10.0 * ms4 + 20.0 * slowdown(),
	             "%s: 0x%02x: 25 KB took %.1f ms but 100 KB %.1f ms", what, (unsigned)c, ms4,
	             ms);
	int32_t *ids = ab_xmalloc((size_t)n * sizeof(*ids));
	cr_assert_eq(ab_tok_encode(t, s, len, false, false, ids, n),
	             n - (ab_tok_add_bos(t) ? 1 : 0));
	free(ids);
	free(s);
}

Test(tokenizer, long_inputs_fast)
{
	struct ab_tok *a = load_gguf(REF "tokenizers/ggml-vocab-llama-spm.gguf");
	struct ab_tok *b = load_gguf(REF "tokenizers/ggml-vocab-gpt-2.gguf");
	const char cs[] = {'a', ' ', '\n', '1', '!'};
	for (size_t i = 0; i < sizeof(cs); i++) {
		time_long(a, cs[i], "llama-spm");
		time_long(b, cs[i], "gpt-2");
	}
	ab_tok_free(a);
	ab_tok_free(b);
}

/* ---- loader errors ---- */

Test(tokenizer, llama2c_errors)
{
	struct ab_tok *t = (struct ab_tok *)1;
	char err[128];
	cr_assert_eq(ab_tok_from_llama2c("/nonexistent/tok.bin", 512, &t, err, sizeof(err)),
	             AB_ENOTFOUND);
	cr_assert_null(t);
	char *path = shared_path("models/tok512.bin");
	if (!exists(path)) {
		cr_skip_test("%s is missing", path);
	}
	/* more tokens than the file holds: truncated, an error */
	cr_assert_eq(ab_tok_from_llama2c(path, 600, &t, err, sizeof(err)), AB_EINVAL);
	cr_assert_null(t);
	cr_assert_eq(ab_tok_from_llama2c(path, 0, &t, err, sizeof(err)), AB_EINVAL);
	free(path);
	ab_tok_free(NULL);
}

/* ---- llama 3 and qwen2 pre-tokenizers, on a synthetic vocabulary ---- */

/* GPT-2's byte alphabet: byte b as a UTF-8 string. */
static void byte_char(int b, char out[3])
{
	int extra = 0, cp = -1;
	for (int i = 0; i <= b; i++) {
		bool printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE;
		cp = printable ? i : 256 + extra++;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		out[2] = 0;
	}
}

/* A byte-level vocabulary: the 256 byte characters, then words, then
 * "<|eot_id|>" (control) as the last token; merges as given. */
static struct ab_tok *synth_bpe(const char *pre, const char *const *words, size_t nwords,
                                const char *const *merges, size_t nmerges)
{
	size_t n = 256 + nwords + 1;
	const char **toks = ab_xcalloc(n, sizeof(*toks));
	int32_t *types = ab_xcalloc(n, sizeof(*types));
	char bytes[256][3];
	for (int b = 0; b < 256; b++) {
		byte_char(b, bytes[b]);
		toks[b] = bytes[b];
		types[b] = AB_TOKT_NORMAL;
	}
	for (size_t i = 0; i < nwords; i++) {
		toks[256 + i] = words[i];
		types[256 + i] = AB_TOKT_NORMAL;
	}
	toks[n - 1] = "<|eot_id|>";
	types[n - 1] = AB_TOKT_CONTROL;
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	ab_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
	ab_gguf_set_str(w, "tokenizer.ggml.pre", pre);
	ab_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, n);
	ab_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, n);
	ab_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, nmerges);
	ab_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 1));
	ab_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 1));
	void *buf = NULL;
	size_t len = 0;
	cr_assert_eq(ab_gguf_write_mem(w, &buf, &len), 0);
	ab_gguf_writer_free(w);
	struct ab_gguf *g = NULL;
	char err[256] = "";
	cr_assert_eq(ab_gguf_parse(buf, len, &g, err, sizeof(err)), 0, "%s", err);
	struct ab_tok *t = NULL;
	cr_assert_eq(ab_tok_from_gguf(g, &t, err, sizeof(err)), 0, "%s", err);
	ab_gguf_free(g);
	free(buf);
	free(toks);
	free(types);
	return t;
}

/* text must encode to exactly the tokens named (NULL-terminated). */
static void expect_words(const struct ab_tok *t, const char *text, const char *const *want)
{
	int n = 0;
	int32_t *ids = enc(t, text, strlen(text), false, false, &n);
	char *got = ids_str(ids, n);
	int nw = 0;
	while (want[nw])
		nw++;
	cr_assert_eq(n, nw, "\"%s\": %d tokens %s, want %d", text, n, got, nw);
	for (int i = 0; i < nw; i++) {
		int32_t id = ab_tok_lookup(t, want[i]);
		cr_assert_geq(id, 0, "no token \"%s\"", want[i]);
		cr_assert_eq(ids[i], id, "\"%s\": token %d is %d, want \"%s\" (%d); all: %s", text,
		             i, (int)ids[i], want[i], (int)id, got);
	}
	free(got);
	free(ids);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(tokenizer, pre_llama3_synthetic)
{
	static const char *const words[] = {
	    "123",        "45",         "12345", "Hello",    "\xc4\xa0world",
	    "it",         "'s",         "IT",    "'S",       "\xc4\x8a\xc4\x8a",
	    "x",          "!!\xc4\x8a", "y",     "\xc4\xa0", "\xc4\xa0hi",
	    "\xc4\x89hi", "'ll",
	};
	static const char *const merges[] = {"1 2", "12 3", "4 5", "I T", "' S"};
	struct ab_tok *t =
	    synth_bpe("llama-bpe", words, AB_ARRAY_LEN(words), merges, AB_ARRAY_LEN(merges));
	cr_assert(ab_tok_add_bos(t)); /* llama 3 adds BOS */
	int32_t eot = ab_tok_lookup(t, "<|eot_id|>");
	cr_assert(ab_tok_is_eog(t, eot));
	expect_words(t, "12345", W("123", "45"));
	expect_words(t, "Hello world", W("Hello", "\xc4\xa0world"));
	expect_words(t, "it's", W("it", "'s"));
	expect_words(t, "IT'S", W("IT", "'S"));
	expect_words(t, "it'll", W("it", "'ll"));
	expect_words(t, "x\n\ny", W("x", "\xc4\x8a\xc4\x8a", "y"));
	expect_words(t, "x!!\ny", W("x", "!!\xc4\x8a", "y"));
	expect_words(t, "  hi", W("\xc4\xa0", "\xc4\xa0hi"));
	expect_words(t, "\thi", W("\xc4\x89hi"));
	/* BOS, then the text; the special token only when parsed */
	int n = 0;
	int32_t *ids = enc(t, "it<|eot_id|>", 12, true, true, &n);
	cr_assert(n == 3 && ids[0] == ab_tok_bos(t) && ids[2] == eot);
	free(ids);
	ab_tok_free(t);

	/* qwen2: one digit per number, no whole-word shortcut (only merges) */
	t = synth_bpe("qwen2", words, AB_ARRAY_LEN(words), merges, AB_ARRAY_LEN(merges));
	cr_assert(!ab_tok_add_bos(t));
	expect_words(t, "12345", W("1", "2", "3", "4", "5"));
	expect_words(t, "IT'S", W("IT", "'S"));
	ab_tok_free(t);
}

/* Hostile or incomplete tokenizer metadata is an error, not a crash. */
Test(tokenizer, gguf_errors)
{
	const char *toks[] = {"a", "b", "ab"};
	struct {
		const char *model;
		bool tokens, merges, bad_scores;
		int rc;
	} cases[] = {
	    {NULL, true, true, false, AB_EINVAL},    {"bert", true, true, false, AB_EINVAL},
	    {"gpt2", false, true, false, AB_EINVAL}, {"gpt2", true, false, false, AB_EINVAL},
	    {"llama", true, false, true, AB_EINVAL}, {"llama", true, false, false, 0},
	    {"gpt2", true, true, false, 0},
	};
	for (size_t i = 0; i < AB_ARRAY_LEN(cases); i++) {
		struct ab_gguf_writer *w = ab_gguf_writer_new();
		if (cases[i].model)
			ab_gguf_set_str(w, "tokenizer.ggml.model", cases[i].model);
		if (cases[i].tokens)
			ab_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
		if (cases[i].merges) {
			const char *m[] = {"a b", "nospace", " ", "a  b"};
			ab_gguf_set_arr_str(w, "tokenizer.ggml.merges", m, 4);
		}
		/* a scores array of the wrong length is refused */
		if (cases[i].bad_scores) {
			float sc[2] = {0, 0};
			ab_gguf_set_arr_f32(w, "tokenizer.ggml.scores", sc, 2);
		}
		void *buf = NULL;
		size_t len = 0;
		cr_assert_eq(ab_gguf_write_mem(w, &buf, &len), 0);
		ab_gguf_writer_free(w);
		struct ab_gguf *g = NULL;
		char err[256] = "";
		cr_assert_eq(ab_gguf_parse(buf, len, &g, err, sizeof(err)), 0, "%s", err);
		struct ab_tok *t = NULL;
		int rc = ab_tok_from_gguf(g, &t, err, sizeof(err));
		cr_assert_eq(rc, cases[i].rc, "case %zu: %d (%s)", i, rc, err);
		if (rc == 0) {
			int n = 0;
			int32_t *ids = enc(t, "abba \xff", 6, true, true, &n);
			size_t dn;
			free(dec(t, ids, n, &dn));
			free(ids);
		} else {
			cr_assert_null(t);
			cr_assert_neq(err[0], 0);
		}
		ab_tok_free(t);
		ab_gguf_free(g);
		free(buf);
	}
}
