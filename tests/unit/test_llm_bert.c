/*
 * test_llm_bert.c - the BERT-family encoder (src/llm/bert.c) and its
 * WordPiece tokenizer (src/llm/wordpiece.c):
 *
 *  - WordPiece splits on hand-made vocabularies (phantom-space and "##"
 *    forms, cased and uncased), the edges (unknown words, over-long words,
 *    control characters, invalid UTF-8, truncation), and llama.cpp's 46
 *    test vectors for the real bge vocabulary in the shared folder (ids
 *    made by the Hugging Face tokenizer);
 *  - the loader's refusals (a clear message for each broken file);
 *  - synthetic models (random weights written here with the GGUF writer)
 *    of both architectures, both poolings and the F32, F16, Q8_0 (and
 *    Q4_0, Q4_K) weight types, against the float64 numpy forward pass of
 *    tests/python/bert_reference.py, with a tolerance per type (TOLS);
 *  - a model written by that script's own GGUF writer, threads vs one
 *    thread, repeat runs, text in / vector out with truncation;
 *  - a real embedding model, if the shared folder has one (it has none
 *    today: the test then skips and says so).
 *
 * The shared folder is AB_SOURCE_ROOT/../shared or $AB_SHARED_DIR; the
 * reference needs a python3 with numpy ($AB_PYTHON, /usr/bin/python3,
 * python3). Tests that need either skip with a message when it is
 * missing. Measured differences are printed to stderr ("[bert] ...").
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab_build.h"
#include "bert.h"
#include "common.h"
#include "gguf.h"
#include "quant.h"
#include "wordpiece.h"

#define U2581 "\xe2\x96\x81"

static const char *shared_dir(void)
{
	const char *e = getenv("AB_SHARED_DIR");
	return e && *e ? e : AB_SOURCE_ROOT "/../shared";
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = ab_xmalloc((size_t)sz + 1);
	*n = fread(b, 1, (size_t)sz, f);
	b[*n] = '\0';
	fclose(f);
	return b;
}

/* ---- vocabularies ---- */

struct vocab {
	char *tok[512];
	int32_t type[512];
	int n;
};

static int vadd(struct vocab *v, const char *s, int32_t type)
{
	cr_assert_lt(v->n, 512);
	v->tok[v->n] = ab_xstrdup(s);
	v->type[v->n] = type;
	return v->n++;
}

static void vfree(struct vocab *v)
{
	for (int i = 0; i < v->n; i++)
		free(v->tok[i]);
	v->n = 0;
}

static void put_vocab(struct ab_gguf_writer *w, const struct vocab *v, bool ids)
{
	ab_gguf_set_str(w, "tokenizer.ggml.model", "bert");
	ab_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, (size_t)v->n);
	ab_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", v->type, (size_t)v->n);
	if (ids) {
		ab_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 1);
		ab_gguf_set_u32(w, "tokenizer.ggml.cls_token_id", 2);
		ab_gguf_set_u32(w, "tokenizer.ggml.seperator_token_id", 3);
		ab_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
	}
}

/* The vocabulary of the synthetic models: specials 0-4, then word starts
 * and continuations of every letter and digit, some words, punctuation.
 * hash: continuations as "##x" instead of phantom-space word starts. */
static void base_vocab(struct vocab *v, bool hash, bool cased)
{
	static const char *specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
	for (int i = 0; i < 5; i++)
		vadd(v, specials[i], i == 1 ? 2 : 3);
	const char *alnum = "abcdefghijklmnopqrstuvwxyz0123456789";
	char b[64];
	for (const char *c = alnum; *c; c++) {
		snprintf(b, sizeof(b), "%s%c", hash ? "" : U2581, *c);
		vadd(v, b, 1);
		snprintf(b, sizeof(b), "%s%c", hash ? "##" : "", *c);
		vadd(v, b, 1);
	}
	static const char *words[] = {"un", "hello", "world", "the", "cat", "sat", "on", "mat",
				      "cafe", "quick", "brown", "fox", "embed"};
	for (size_t i = 0; i < AB_ARRAY_LEN(words); i++) {
		snprintf(b, sizeof(b), "%s%s", hash ? "" : U2581, words[i]);
		vadd(v, b, 1);
	}
	static const char *cont[] = {"aff", "able", "ing", "ed", "er"};
	for (size_t i = 0; i < AB_ARRAY_LEN(cont); i++) {
		snprintf(b, sizeof(b), "%s%s", hash ? "##" : "", cont[i]);
		vadd(v, b, 1);
	}
	const char *punct = ".,!?'-:;()";
	for (const char *c = punct; *c; c++) {
		snprintf(b, sizeof(b), "%s%c", hash ? "" : U2581, *c);
		vadd(v, b, 1);
	}
	/* CJK and a non-Latin word */
	static const char *other[] = {"\xe6\x88\x91" /* 我 */, "\xe7\x88\xb1" /* 爱 */,
				      "\xd0\xbc\xd0\xb8\xd1\x80" /* мир */};
	for (size_t i = 0; i < AB_ARRAY_LEN(other); i++) {
		snprintf(b, sizeof(b), "%s%s", hash ? "" : U2581, other[i]);
		vadd(v, b, 1);
	}
	if (cased) {
		snprintf(b, sizeof(b), "%sHello", hash ? "" : U2581);
		vadd(v, b, 1);
		snprintf(b, sizeof(b), "%sCaf\xc3\xa9", hash ? "" : U2581);
		vadd(v, b, 1);
	}
}

/* A tokenizer over a vocabulary-only GGUF made in memory. */
struct wtok {
	void *buf;
	struct ab_gguf *g;
	struct ab_wpm *t;
	struct vocab v;
};

static void wtok_open(struct wtok *w, bool hash, bool cased)
{
	memset(w, 0, sizeof(*w));
	base_vocab(&w->v, hash, cased);
	struct ab_gguf_writer *wr = ab_gguf_writer_new();
	ab_gguf_set_str(wr, "general.architecture", "bert");
	put_vocab(wr, &w->v, true);
	size_t len;
	cr_assert_eq(ab_gguf_write_mem(wr, &w->buf, &len), 0);
	ab_gguf_writer_free(wr);
	char err[256] = "";
	cr_assert_eq(ab_gguf_parse(w->buf, len, &w->g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ab_wpm_from_gguf(w->g, &w->t, err, sizeof(err)), 0, "%s", err);
	ab_gguf_free(w->g); /* the tokenizer copies what it needs */
	w->g = NULL;
	free(w->buf);
	w->buf = NULL;
}

static void wtok_close(struct wtok *w)
{
	ab_wpm_free(w->t);
	vfree(&w->v);
}

static int32_t vid(const struct wtok *w, const char *text)
{
	for (int i = 0; i < w->v.n; i++)
		if (!strcmp(w->v.tok[i], text))
			return i;
	cr_assert_fail("no token %s", text);
	return -1;
}

/* Encodes text and compares the pieces with want (space-separated token
 * texts as stored in the vocabulary). */
static void expect_split(const struct wtok *w, const char *text, bool add_special,
			 const char *want)
{
	int32_t ids[256];
	int n = ab_wpm_encode(w->t, text, strlen(text), add_special, ids, 256);
	cr_assert_geq(n, 0, "\"%s\": %d", text, n);
	cr_assert_leq(n, 256);
	char got[2048] = "";
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		size_t len;
		const char *s = ab_wpm_token(w->t, ids[i], &len);
		cr_assert_not_null(s);
		off += (size_t)snprintf(got + off, sizeof(got) - off, "%s%.*s", i ? " " : "",
					(int)len, s);
	}
	cr_assert_str_eq(got, want, "\"%s\": got [%s], want [%s]", text, got, want);
}

/* ---- WordPiece ---- */

Test(wordpiece, greedy_longest_match_phantom_form)
{
	struct wtok w;
	wtok_open(&w, false, false);
	cr_assert(ab_wpm_uncased(w.t));
	cr_assert_eq(ab_wpm_cls(w.t), 2);
	cr_assert_eq(ab_wpm_sep(w.t), 3);
	cr_assert_eq(ab_wpm_unk(w.t), 1);
	/* the classic: un ##aff ##able */
	expect_split(&w, "unaffable", false, U2581 "un aff able");
	expect_split(&w, "unaffable", true, "[CLS] " U2581 "un aff able [SEP]");
	/* lower-casing, punctuation as words, white space of every kind */
	expect_split(&w, "Hello, World!", false,
		     U2581 "hello " U2581 ", " U2581 "world " U2581 "!");
	expect_split(&w, "  the\tcat\r\nsat\xc2\xa0on\xe3\x80\x80the mat  ", false,
		     U2581 "the " U2581 "cat " U2581 "sat " U2581 "on " U2581 "the " U2581 "mat");
	/* longest first: "hello" is one piece, not h ##e ##l ... */
	expect_split(&w, "helloed", false, U2581 "hello ed");
	/* no full word-start piece: letters */
	expect_split(&w, "zq9", false, U2581 "z q 9");
	/* accents stripped (NFD, Mn dropped), upper-case non-ASCII lowered */
	expect_split(&w, "Caf\xc3\xa9 CAF\xc3\x89", false, U2581 "cafe " U2581 "cafe");
	expect_split(&w, "\xd0\x9c\xd0\x98\xd0\xa0", false, U2581 "\xd0\xbc\xd0\xb8\xd1\x80");
	/* CJK ideographs are words of their own, even inside a word */
	expect_split(&w, "cat\xe6\x88\x91\xe7\x88\xb1" "dog", false,
		     U2581 "cat " U2581 "\xe6\x88\x91 " U2581 "\xe7\x88\xb1 " U2581 "d o g");
	/* a word that cannot be covered is one [UNK], its found pieces dropped */
	expect_split(&w, "cat\xe2\x82\xac" "cat hello", false, "[UNK] " U2581 "hello");
	expect_split(&w, "\xf0\x9f\x9a\x80", false, "[UNK]");
	/* control and format characters vanish (zero-width joiner, NUL, DEL) */
	expect_split(&w, "ca\xe2\x80\x8dt", false, U2581 "cat");
	char nul[] = {'c', 'a', 0, 't', 0x7f, ' ', 'o', 'n'};
	int32_t ids[16];
	int n = ab_wpm_encode(w.t, nul, sizeof(nul), false, ids, 16);
	cr_assert_eq(n, 2);
	cr_assert_eq(ids[0], vid(&w, U2581 "cat"));
	cr_assert_eq(ids[1], vid(&w, U2581 "on"));
	/* [CLS] in the text is punctuation and letters, never the control token */
	expect_split(&w, "[CLS]", false, "[UNK] " U2581 "c l s [UNK]");
	wtok_close(&w);
}

Test(wordpiece, hash_form_vocabulary_splits_the_same)
{
	struct wtok w;
	wtok_open(&w, true, false);
	int32_t ids[64];
	int n = ab_wpm_encode(w.t, "unaffable Hello", 15, true, ids, 64);
	cr_assert_eq(n, 6);
	cr_assert_eq(ids[0], 2);
	cr_assert_eq(ids[1], vid(&w, "un"));
	cr_assert_eq(ids[2], vid(&w, "##aff"));
	cr_assert_eq(ids[3], vid(&w, "##able"));
	cr_assert_eq(ids[4], vid(&w, "hello"));
	cr_assert_eq(ids[5], 3);
	n = ab_wpm_encode(w.t, "zq9", 3, false, ids, 64);
	cr_assert_eq(n, 3);
	cr_assert_eq(ids[0], vid(&w, "z"));
	cr_assert_eq(ids[1], vid(&w, "##q"));
	cr_assert_eq(ids[2], vid(&w, "##9"));
	wtok_close(&w);
}

Test(wordpiece, cased_vocabulary_keeps_case_and_accents)
{
	struct wtok w;
	wtok_open(&w, false, true);
	cr_assert_not(ab_wpm_uncased(w.t));
	expect_split(&w, "Hello hello", false, U2581 "Hello " U2581 "hello");
	expect_split(&w, "Caf\xc3\xa9", false, U2581 "Caf\xc3\xa9");
	/* no lower-casing: "World" has no W piece */
	expect_split(&w, "World", false, "[UNK]");
	wtok_close(&w);
}

Test(wordpiece, bounds_and_truncation)
{
	struct wtok w;
	wtok_open(&w, false, false);
	/* 100 characters are split; 101 are one [UNK] */
	char word[128];
	memset(word, 'a', 100);
	word[100] = '\0';
	int32_t ids[256];
	cr_assert_eq(ab_wpm_encode(w.t, word, 100, false, ids, 256), 100);
	memset(word, 'a', 101);
	cr_assert_eq(ab_wpm_encode(w.t, word, 101, false, ids, 256), 1);
	cr_assert_eq(ids[0], 1);
	/* a huge word, and a huge text: bounded, counted, nothing past max written */
	size_t big = 1 << 20;
	char *s = ab_xmalloc(big);
	memset(s, 'b', big);
	cr_assert_eq(ab_wpm_encode(w.t, s, big, true, ids, 4), 3);
	for (size_t i = 0; i < big; i++)
		s[i] = i % 2 ? ' ' : 'b';
	int32_t guard[6] = {-7, -7, -7, -7, -7, -7};
	int n = ab_wpm_encode(w.t, s, big, true, guard, 4);
	cr_assert_eq(n, (int)(big / 2) + 2);
	cr_assert_eq(guard[0], 2);
	cr_assert_eq(guard[4], -7, "wrote past max");
	cr_assert_eq(guard[5], -7);
	/* invalid UTF-8 and stray continuation bytes are dropped, not fatal */
	for (size_t i = 0; i < big; i++)
		s[i] = (char)(0x80 + (i * 37) % 128);
	n = ab_wpm_encode(w.t, s, big, false, ids, 256);
	cr_assert_geq(n, 0);
	expect_split(&w, "ca\xff" "t \xc3", false, U2581 "cat");
	free(s);
	/* max 0: only the count */
	cr_assert_eq(ab_wpm_encode(w.t, "the cat", 7, true, NULL, 0), 4);
	cr_assert_eq(ab_wpm_encode(w.t, "", 0, true, ids, 8), 2);
	cr_assert_eq(ab_wpm_encode(w.t, "", 0, false, ids, 8), 0);
	wtok_close(&w);
}

Test(wordpiece, refuses_other_vocabularies)
{
	struct ab_gguf_writer *wr = ab_gguf_writer_new();
	const char *toks[] = {"<unk>", "<s>", "</s>", "a"};
	ab_gguf_set_str(wr, "tokenizer.ggml.model", "llama");
	ab_gguf_set_arr_str(wr, "tokenizer.ggml.tokens", toks, 4);
	void *buf;
	size_t len;
	cr_assert_eq(ab_gguf_write_mem(wr, &buf, &len), 0);
	ab_gguf_writer_free(wr);
	struct ab_gguf *g;
	char err[256] = "";
	cr_assert_eq(ab_gguf_parse(buf, len, &g, err, sizeof(err)), 0);
	struct ab_wpm *t = NULL;
	cr_assert_lt(ab_wpm_from_gguf(g, &t, err, sizeof(err)), 0);
	cr_assert(strstr(err, "llama"), "%s", err);
	cr_assert_null(t);
	ab_gguf_free(g);
	free(buf);

	/* bert, but no [UNK] anywhere */
	wr = ab_gguf_writer_new();
	const char *toks2[] = {"[CLS]", "[SEP]", U2581 "a"};
	ab_gguf_set_str(wr, "tokenizer.ggml.model", "bert");
	ab_gguf_set_arr_str(wr, "tokenizer.ggml.tokens", toks2, 3);
	cr_assert_eq(ab_gguf_write_mem(wr, &buf, &len), 0);
	ab_gguf_writer_free(wr);
	cr_assert_eq(ab_gguf_parse(buf, len, &g, err, sizeof(err)), 0);
	cr_assert_lt(ab_wpm_from_gguf(g, &t, err, sizeof(err)), 0);
	cr_assert(strstr(err, "[UNK]"), "%s", err);
	ab_gguf_free(g);
	free(buf);
}

#define VOCAB_SEP "\n__ggml_vocab_test__\n"

/* llama.cpp's tokenizer test vectors for the bge vocabulary: the ids the
 * Hugging Face tokenizer gives (no [CLS]/[SEP]). */
Test(wordpiece, bge_vocabulary_matches_hugging_face_vectors)
{
	char base[1024];
	snprintf(base, sizeof(base), "%s/models/reference/tokenizers/ggml-vocab-bert-bge.gguf",
		 shared_dir());
	char inp_path[1100], out_path[1100];
	snprintf(inp_path, sizeof(inp_path), "%s.inp", base);
	snprintf(out_path, sizeof(out_path), "%s.out", base);
	if (access(base, R_OK) || access(inp_path, R_OK) || access(out_path, R_OK))
		cr_skip_test("%s and its .inp/.out are missing (the shared reference data: set "
			     "AB_SHARED_DIR)",
			     base);
	struct ab_gguf *g;
	char err[256] = "";
	cr_assert_eq(ab_gguf_open(base, &g, err, sizeof(err)), 0, "%s", err);
	struct ab_wpm *t;
	cr_assert_eq(ab_wpm_from_gguf(g, &t, err, sizeof(err)), 0, "%s", err);
	ab_gguf_free(g);
	cr_assert_eq(ab_wpm_n_vocab(t), 30522);
	cr_assert(ab_wpm_uncased(t));
	cr_assert_eq(ab_wpm_cls(t), 101);
	cr_assert_eq(ab_wpm_sep(t), 102);
	cr_assert_eq(ab_wpm_unk(t), 100);
	size_t ni, no;
	char *inp = slurp(inp_path, &ni), *out = slurp(out_path, &no);
	cr_assert(inp && out);
	const char *p = inp, *end = inp + ni;
	char *line = out;
	int total = 0, ok = 0;
	size_t sl = strlen(VOCAB_SEP);
	while (p < end) {
		const char *q = strstr(p, VOCAB_SEP);
		cr_assert_not_null(q, "no separator after byte %td", p - inp);
		/* the expected line (strtok_r would skip empty lines) */
		char *nl = strchr(line, '\n');
		cr_assert_not_null(nl, "fewer .out lines than texts");
		*nl = '\0';
		int32_t want[512];
		int nw = 0;
		for (char *s = line, *e2; nw < 512; s = e2) {
			long v = strtol(s, &e2, 10);
			if (e2 == s)
				break;
			want[nw++] = (int32_t)v;
		}
		int32_t got[512];
		int n = ab_wpm_encode(t, p, (size_t)(q - p), false, got, 512);
		bool same = n == nw && !memcmp(got, want, (size_t)nw * sizeof(int32_t));
		if (!same) {
			fprintf(stderr, "[bert] vector %d \"%.*s\": got", total, (int)(q - p), p);
			for (int i = 0; i < n && i < 512; i++)
				fprintf(stderr, " %d", got[i]);
			fprintf(stderr, "\n       want%s\n", line);
		}
		ok += same;
		total++;
		line = nl + 1;
		p = q + sl;
	}
	fprintf(stderr, "[bert] bge vocabulary: %d/%d Hugging Face test vectors match\n", ok,
		total);
	cr_assert_eq(total, 46, "expected 46 texts, found %d", total);
	cr_assert_eq(ok, total, "%d/%d vectors match", ok, total);
	free(inp);
	free(out);
	ab_wpm_free(t);
}

/* ---- synthetic models ---- */

static uint64_t lcg;

static float frand(float lo, float hi)
{
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	return lo + (float)((double)(lcg >> 11) * 0x1.0p-53) * (hi - lo);
}

struct spec {
	const char *arch;  /* written as general.architecture */
	uint32_t type;     /* the matrices' type */
	int pooling;       /* 0: no key */
	bool fused;        /* bert: attn_qkv instead of q/k/v */
	int E, H, F, L, ctx;
	uint64_t seed;
	/* breakage, for the loader's refusals */
	const char *omit;     /* a tensor left out */
	const char *misshape; /* a tensor with one column too many */
	bool causal;
	int head_count_kv;
	bool truncate_file;
};

static void put_vec(struct ab_gguf_writer *w, const char *name, int64_t n, float lo, float hi,
		    const struct spec *s)
{
	if (s->omit && !strcmp(s->omit, name))
		return;
	int64_t ne[1] = {n + (s->misshape && !strcmp(s->misshape, name))};
	float *v = ab_xmalloc((size_t)ne[0] * sizeof(float));
	for (int64_t i = 0; i < ne[0]; i++)
		v[i] = frand(lo, hi);
	cr_assert_eq(ab_gguf_add_tensor(w, name, AB_TYPE_F32, 1, ne, v,
					(size_t)ne[0] * sizeof(float)),
		     0);
	free(v);
}

/* A [cols, rows] matrix, uniform in +-sqrt(3/cols) (unit-size products). */
static void put_mat(struct ab_gguf_writer *w, const char *name, uint32_t type, int64_t cols,
		    int64_t rows, const struct spec *s)
{
	if (s->omit && !strcmp(s->omit, name))
		return;
	if (s->misshape && !strcmp(s->misshape, name))
		type = AB_TYPE_F32, cols++;
	float a = sqrtf(3.0f / (float)cols);
	size_t n = (size_t)(cols * rows);
	float *v = ab_xmalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		v[i] = frand(-a, a);
	size_t nb = ab_type_row_bytes(type, cols) * (size_t)rows;
	cr_assert_gt(nb, 0, "%s: %lld columns", name, (long long)cols);
	void *q = ab_xmalloc(nb);
	cr_assert_eq(ab_quantize(type, v, q, (int64_t)n), 0);
	int64_t ne[2] = {cols, rows};
	cr_assert_eq(ab_gguf_add_tensor(w, name, type, 2, ne, q, nb), 0);
	free(q);
	free(v);
}

/* Writes the model of s to a new temporary file; returns its path. */
static char *synth(const struct spec *s)
{
	int E = s->E, F = s->F, L = s->L;
	bool nomic = !strcmp(s->arch, "nomic-bert");
	lcg = s->seed * 7919 + s->type;
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	char k[160];
	const char *a = s->arch;
	ab_gguf_set_str(w, "general.architecture", a);
	ab_gguf_set_str(w, "general.name", "synthetic");
#define KEY(x) (snprintf(k, sizeof(k), "%s.%s", a, x), k)
	ab_gguf_set_u32(w, KEY("context_length"), (uint32_t)s->ctx);
	ab_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)E);
	ab_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)F);
	ab_gguf_set_u32(w, KEY("block_count"), (uint32_t)L);
	ab_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)s->H);
	if (s->head_count_kv)
		ab_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->head_count_kv);
	ab_gguf_set_f32(w, KEY("attention.layer_norm_epsilon"), 1e-12f);
	ab_gguf_set_bool(w, KEY("attention.causal"), s->causal);
	if (s->pooling)
		ab_gguf_set_u32(w, KEY("pooling_type"), (uint32_t)s->pooling);
	if (nomic)
		ab_gguf_set_f32(w, KEY("rope.freq_base"), 1000.0f);
#undef KEY
	struct vocab v = {0};
	base_vocab(&v, false, false);
	put_vocab(w, &v, true);
	int V = v.n;
	vfree(&v);
	put_mat(w, "token_embd.weight", s->type, E, V, s);
	put_mat(w, "token_types.weight", AB_TYPE_F32, E, 2, s);
	if (!nomic)
		put_mat(w, "position_embd.weight", AB_TYPE_F32, E, s->ctx, s);
	put_vec(w, "token_embd_norm.weight", E, 0.8f, 1.2f, s);
	put_vec(w, "token_embd_norm.bias", E, -0.1f, 0.1f, s);
	for (int il = 0; il < L; il++) {
		char n[64];
#define T(x) (snprintf(n, sizeof(n), "blk.%d.%s", il, x), n)
		if (nomic || s->fused) {
			put_mat(w, T("attn_qkv.weight"), s->type, E, 3 * E, s);
			if (!nomic)
				put_vec(w, T("attn_qkv.bias"), 3 * E, -0.1f, 0.1f, s);
		} else {
			put_mat(w, T("attn_q.weight"), s->type, E, E, s);
			put_mat(w, T("attn_k.weight"), s->type, E, E, s);
			put_mat(w, T("attn_v.weight"), s->type, E, E, s);
			put_vec(w, T("attn_q.bias"), E, -0.1f, 0.1f, s);
			put_vec(w, T("attn_k.bias"), E, -0.1f, 0.1f, s);
			put_vec(w, T("attn_v.bias"), E, -0.1f, 0.1f, s);
		}
		put_mat(w, T("attn_output.weight"), s->type, E, E, s);
		if (!nomic)
			put_vec(w, T("attn_output.bias"), E, -0.1f, 0.1f, s);
		put_vec(w, T("attn_output_norm.weight"), E, 0.8f, 1.2f, s);
		put_vec(w, T("attn_output_norm.bias"), E, -0.1f, 0.1f, s);
		put_mat(w, T("ffn_up.weight"), s->type, E, F, s);
		if (nomic) {
			put_mat(w, T("ffn_gate.weight"), s->type, E, F, s);
		} else {
			put_vec(w, T("ffn_up.bias"), F, -0.1f, 0.1f, s);
		}
		put_mat(w, T("ffn_down.weight"), s->type, F, E, s);
		if (!nomic)
			put_vec(w, T("ffn_down.bias"), E, -0.1f, 0.1f, s);
		put_vec(w, T("layer_output_norm.weight"), E, 0.8f, 1.2f, s);
		put_vec(w, T("layer_output_norm.bias"), E, -0.1f, 0.1f, s);
#undef T
	}
	void *buf;
	size_t len;
	cr_assert_eq(ab_gguf_write_mem(w, &buf, &len), 0);
	ab_gguf_writer_free(w);
	char *path = ab_xstrdup("/tmp/ab-bert-XXXXXX.gguf");
	int fd = mkstemps(path, 5);
	cr_assert_geq(fd, 0);
	size_t wlen = s->truncate_file ? len - 100 : len;
	cr_assert_eq(write(fd, buf, wlen), (ssize_t)wlen);
	close(fd);
	free(buf);
	return path;
}

static struct ab_bert *load_ok(const char *path)
{
	struct ab_bert *m = NULL;
	char err[512] = "";
	int rc = ab_bert_load(path, NULL, &m, err, sizeof(err));
	cr_assert_eq(rc, 0, "loading %s: %s (%d)", path, err, rc);
	return m;
}

static struct ab_bert_ctx *ctx_ok(struct ab_bert *m, int n_ctx, int threads)
{
	struct ab_bert_ctx *c = NULL;
	char err[256] = "";
	cr_assert_eq(ab_bert_ctx_new(m, n_ctx, threads, &c, err, sizeof(err)), 0, "%s", err);
	return c;
}

static const char *TEXT_SHORT = "the cat sat";

static const struct spec SMALL_BERT = {
	.arch = "bert", .type = AB_TYPE_F32, .pooling = 1, .E = 64, .H = 4, .F = 96, .L = 2,
	.ctx = 64, .seed = 1};

/* ---- the loader ---- */

static void expect_refusal(const struct spec *s, const char *want)
{
	char *path = synth(s);
	struct ab_bert *m = NULL;
	char err[512] = "";
	int rc = ab_bert_load(path, NULL, &m, err, sizeof(err));
	unlink(path);
	free(path);
	cr_assert_lt(rc, 0, "loaded a broken model (want \"%s\")", want);
	cr_assert_null(m);
	cr_assert(strstr(err, want), "error \"%s\" does not say \"%s\"", err, want);
}

Test(bert, loader_refuses_broken_files_with_a_reason)
{
	struct spec s = SMALL_BERT;
	s.omit = "blk.1.ffn_down.weight";
	expect_refusal(&s, "missing tensor blk.1.ffn_down.weight");
	s = SMALL_BERT;
	s.omit = "token_embd_norm.bias";
	expect_refusal(&s, "missing tensor token_embd_norm.bias");
	s = SMALL_BERT;
	s.omit = "position_embd.weight";
	expect_refusal(&s, "missing tensor position_embd.weight");
	s = SMALL_BERT;
	s.misshape = "blk.0.attn_k.weight";
	expect_refusal(&s, "tensor blk.0.attn_k.weight: shape [65, 64], expected [64, 64]");
	s = SMALL_BERT;
	s.misshape = "blk.0.attn_output_norm.bias";
	expect_refusal(&s, "blk.0.attn_output_norm.bias: shape");
	s = SMALL_BERT;
	s.arch = "nomic-bert";
	s.omit = "blk.0.ffn_gate.weight";
	expect_refusal(&s, "missing tensor blk.0.ffn_gate.weight");
	s = SMALL_BERT;
	s.pooling = 4;
	expect_refusal(&s, "pooling_type 4 is not supported");
	s = SMALL_BERT;
	s.causal = true;
	expect_refusal(&s, "bert.attention.causal is true");
	s = SMALL_BERT;
	s.head_count_kv = 2;
	expect_refusal(&s, "head_count_kv 2 differs");
	s = SMALL_BERT;
	s.arch = "llama";
	expect_refusal(&s, "architecture llama is not an encoder");
	s = SMALL_BERT;
	s.truncate_file = true;
	expect_refusal(&s, "");
	s = SMALL_BERT;
	s.H = 5;
	expect_refusal(&s, "does not divide by n_head 5");
}

/* Bytes flipped in the metadata and tensor table: a refusal or a model
 * that runs, never a crash (the ASan build checks the reads). */
Test(bert, corrupted_files_fail_cleanly, .timeout = 120)
{
	char *path = synth(&SMALL_BERT);
	size_t len;
	char *orig = slurp(path, &len);
	cr_assert_not_null(orig);
	char *buf = ab_xmalloc(len);
	lcg = 99;
	int refused = 0, ran = 0;
	for (int it = 0; it < 80; it++) {
		memcpy(buf, orig, len);
		size_t span = len < 6000 ? len : 6000; /* header, keys, vocabulary, tensor infos */
		for (int k = 0; k < 1 + it % 3; k++) {
			size_t at = (size_t)frand(0, (float)span) % span;
			buf[at] = (char)((unsigned char)buf[at] ^ (1u << (it % 8)));
		}
		FILE *f = fopen(path, "wb");
		cr_assert_not_null(f);
		cr_assert_eq(fwrite(buf, 1, len, f), len);
		fclose(f);
		struct ab_bert *m = NULL;
		char err[512] = "";
		struct ab_bert_load_opts o = {.mem_budget = 256u << 20};
		if (ab_bert_load(path, &o, &m, err, sizeof(err)) < 0) {
			cr_assert(err[0], "a refusal without a message");
			cr_assert_null(m);
			refused++;
			continue;
		}
		struct ab_bert_ctx *c = ctx_ok(m, 16, 1);
		float e[4096];
		cr_assert_leq(ab_bert_hparams(m)->n_embd, 4096);
		cr_assert_eq(ab_bert_embed(c, TEXT_SHORT, strlen(TEXT_SHORT), e, NULL, NULL), 0);
		ran++;
		ab_bert_ctx_free(c);
		ab_bert_free(m);
	}
	fprintf(stderr, "[bert] corrupted files: %d refused with a message, %d loaded and ran\n",
		refused, ran);
	cr_assert_gt(refused, 0);
	free(buf);
	free(orig);
	unlink(path);
	free(path);
}

Test(bert, probe_and_hyperparameters)
{
	char *path = synth(&SMALL_BERT);
	cr_assert_eq(ab_bert_probe(path), 1);
	cr_assert_lt(ab_bert_probe("/nonexistent/model.gguf"), 0);
	struct ab_bert *m = load_ok(path);
	const struct ab_bert_hparams *hp = ab_bert_hparams(m);
	cr_assert_str_eq(hp->arch, "bert");
	cr_assert_eq(hp->n_embd, 64);
	cr_assert_eq(hp->n_layer, 2);
	cr_assert_eq(hp->n_head, 4);
	cr_assert_eq(hp->n_ff, 96);
	cr_assert_eq(hp->n_ctx_train, 64);
	cr_assert_eq(hp->pooling, AB_BERT_POOL_MEAN);
	cr_assert_not(hp->rope);
	cr_assert_not(hp->gated_ffn);
	cr_assert_not(hp->fused_qkv);
	cr_assert_eq(hp->file_type, AB_TYPE_F32);
	cr_assert_eq(hp->n_vocab, ab_wpm_n_vocab(ab_bert_tok(m)));
	cr_assert_not_null(ab_bert_gguf(m));
	cr_assert_gt(ab_bert_weight_bytes(m), 0);
	/* a memory budget too small for weights + one context */
	struct ab_bert_load_opts o = {.mem_budget = 4096};
	struct ab_bert *m2 = NULL;
	char err[256] = "";
	cr_assert_eq(ab_bert_load(path, &o, &m2, err, sizeof(err)), AB_ETOOBIG);
	cr_assert(strstr(err, "MiB available"), "%s", err);
	ab_bert_free(m);
	/* a decoder file is not an encoder */
	struct spec s = SMALL_BERT;
	s.arch = "llama";
	char *p2 = synth(&s);
	cr_assert_eq(ab_bert_probe(p2), 0);
	unlink(p2);
	free(p2);
	unlink(path);
	free(path);
	ab_bert_free(NULL);
	ab_bert_ctx_free(NULL);
}

/* ---- against the numpy reference ---- */

static const char *python_numpy(void)
{
	const char *cands[] = {getenv("AB_PYTHON"), "/usr/bin/python3", "python3"};
	for (size_t i = 0; i < AB_ARRAY_LEN(cands); i++) {
		if (!cands[i] || !*cands[i])
			continue;
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "%s -c 'import numpy' >/dev/null 2>&1", cands[i]);
		if (system(cmd) == 0)
			return cands[i];
	}
	cr_skip_test("no python3 with numpy ($AB_PYTHON, /usr/bin/python3, python3): install "
		     "python3-numpy for the reference forward pass");
	return NULL;
}

/* Runs bert_reference.py with args; its stdout as numbers (n of them). */
static double *run_reference(const char *args, size_t want)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "%s %s/tests/python/bert_reference.py %s", python_numpy(),
		 AB_SOURCE_ROOT, args);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p, "%s", cmd);
	double *v = ab_xmalloc((want + 1) * sizeof(double));
	size_t got = 0;
	while (got <= want && fscanf(p, "%lf", &v[got]) == 1)
		got++;
	int st = pclose(p);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		cr_skip_test("%s: numpy is missing", cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (status %d)", cmd, st);
	cr_assert_eq(got, want, "%s: %zu numbers, wanted %zu", cmd, got, want);
	return v;
}

struct diff {
	double max_abs, rel_l2;
};

static struct diff compare(const float *a, const double *r, size_t n)
{
	double d2 = 0, r2 = 0, mx = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - r[i];
		d2 += d * d;
		r2 += r[i] * r[i];
		if (fabs(d) > mx)
			mx = fabs(d);
	}
	return (struct diff){mx, r2 > 0 ? sqrt(d2 / r2) : sqrt(d2)};
}

/*
 * Tolerances per weight type, on the final hidden states (values of size
 * ~1 after the last LayerNorm) and on the unit embedding (components of
 * size ~1/sqrt(64)): relative L2 against the reference with ggml's
 * activation rounding (what the engine computes up to float32 noise) and
 * against the reference in exact arithmetic (the cost of that rounding).
 * Measured on this file's models (worst of the cases below; rel L2 on the
 * hidden states / on the embedding):
 *          vs rounded           vs exact
 *   F32    2.0e-7 / 2.3e-7      (the same)
 *   F16    1.5e-4 / 1.8e-4      3.2e-4 / 2.6e-4
 *   Q8_0   1.2e-7 / 1.2e-7      1.0e-2 / 9.6e-3
 *   Q4_0   1.2e-7 / 5.1e-8      8.0e-3 / 3.5e-3
 *   Q4_K   1.9e-7 / 6.0e-8      1.4e-2 / 5.4e-3
 * F16 is the odd one (as for the decoders, see test_llm_model.c): its
 * rounding step is fine enough that float32 noise moves a few
 * activations across it, and the moves grow through the layers; the CLS
 * row often stays exact while others drift. F32 is also held to a max
 * abs of 1e-5 on the embedding.
 */
struct tol {
	uint32_t type;
	double rounded, exact;
};

static const struct tol TOLS[] = {
	{AB_TYPE_F32, 1e-5, 1e-5},  {AB_TYPE_F16, 1e-3, 3e-3}, {AB_TYPE_Q8_0, 1e-5, 3e-2},
	{AB_TYPE_Q4_0, 1e-5, 5e-2}, {AB_TYPE_Q4_K, 1e-5, 5e-2},
};

static const struct tol *tol_for(uint32_t type)
{
	for (size_t i = 0; i < AB_ARRAY_LEN(TOLS); i++)
		if (TOLS[i].type == type)
			return &TOLS[i];
	cr_assert_fail("no tolerance for type %u", type);
	return NULL;
}

static const char *TEXT = "The quick brown fox sat on the mat, unaffable! Hello world 42.";

/* The engine's embedding and hidden states for TEXT against the reference. */
static void check_model(const char *label, const char *path, uint32_t type)
{
	python_numpy();
	struct ab_bert *m = load_ok(path);
	const struct ab_bert_hparams *hp = ab_bert_hparams(m);
	int32_t toks[64];
	int full = 0;
	int n = ab_bert_tokenize(m, TEXT, strlen(TEXT), toks, 64, &full);
	cr_assert_eq(n, full);
	cr_assert_gt(n, 16);
	struct ab_bert_ctx *c = ctx_ok(m, 0, 1);
	size_t E = (size_t)hp->n_embd;
	float *e = ab_xmalloc(E * sizeof(float));
	float *h = ab_xmalloc((size_t)n * E * sizeof(float));
	cr_assert_eq(ab_bert_encode(c, toks, n, e, h), 0);
	double norm = 0;
	for (size_t i = 0; i < E; i++)
		norm += (double)e[i] * e[i];
	cr_assert(fabs(sqrt(norm) - 1) < 1e-6, "%s: |e| = %.9f", label, sqrt(norm));

	const struct tol *tl = tol_for(type);
	char args[2048];
	for (int rounded = type != AB_TYPE_F32; rounded >= 0; rounded--) {
		int off = snprintf(args, sizeof(args), "%s %s", rounded ? "--ggml-rounding" : "",
				   path);
		for (int i = 0; i < n; i++)
			off += snprintf(args + off, sizeof(args) - (size_t)off, " %d", toks[i]);
		double *r = run_reference(args, E + (size_t)n * E);
		struct diff de = compare(e, r, E), dh = compare(h, r + E, (size_t)n * E);
		double lim = rounded ? tl->rounded : tl->exact;
		fprintf(stderr,
			"[bert] %-30s %-4s vs %s: embedding rel L2 %.2g max abs %.2g; hidden rel L2 "
			"%.2g max abs %.2g (limit %.0e)\n",
			label, ab_type_get(type)->name, rounded ? "rounded" : "exact  ", de.rel_l2,
			de.max_abs, dh.rel_l2, dh.max_abs, lim);
		cr_assert_leq(de.rel_l2, lim, "%s: embedding rel L2 %g", label, de.rel_l2);
		cr_assert_leq(dh.rel_l2, lim, "%s: hidden rel L2 %g", label, dh.rel_l2);
		if (type == AB_TYPE_F32)
			cr_assert_leq(de.max_abs, 1e-5, "%s: embedding max abs %g", label,
				      de.max_abs);
		free(r);
	}
	free(e);
	free(h);
	ab_bert_ctx_free(c);
	ab_bert_free(m);
}

static void check_synthetic(const char *arch, uint32_t type, int pooling, bool fused, int E,
			    int F)
{
	struct spec s = {.arch = arch, .type = type, .pooling = pooling, .fused = fused, .E = E,
			 .H = 4, .F = F, .L = 2, .ctx = 64, .seed = 7 + (uint64_t)pooling};
	char *path = synth(&s);
	struct ab_bert *m = load_ok(path);
	const struct ab_bert_hparams *hp = ab_bert_hparams(m);
	cr_assert_eq(hp->pooling, (enum ab_bert_pooling)pooling);
	cr_assert_eq(hp->rope, !strcmp(arch, "nomic-bert"));
	cr_assert_eq(hp->fused_qkv, fused || hp->rope);
	cr_assert_eq(hp->file_type, type);
	ab_bert_free(m);
	char label[64];
	snprintf(label, sizeof(label), "%s %s%s E%d", arch, pooling == 2 ? "cls" : "mean",
		 fused ? " fused" : "", E);
	check_model(label, path, type);
	unlink(path);
	free(path);
}

Test(bert, synthetic_bert_f32_mean, .timeout = 120)
{
	check_synthetic("bert", AB_TYPE_F32, 1, false, 64, 96);
}

Test(bert, synthetic_bert_f32_cls_fused, .timeout = 120)
{
	check_synthetic("bert", AB_TYPE_F32, 2, true, 64, 96);
}

Test(bert, synthetic_bert_f16_cls, .timeout = 120)
{
	check_synthetic("bert", AB_TYPE_F16, 2, false, 64, 96);
}

Test(bert, synthetic_bert_q8_0_mean, .timeout = 120)
{
	check_synthetic("bert", AB_TYPE_Q8_0, 1, false, 64, 96);
}

Test(bert, synthetic_nomic_f32_mean, .timeout = 120)
{
	check_synthetic("nomic-bert", AB_TYPE_F32, 1, false, 64, 96);
}

Test(bert, synthetic_nomic_f32_cls, .timeout = 120)
{
	check_synthetic("nomic-bert", AB_TYPE_F32, 2, false, 64, 96);
}

Test(bert, synthetic_nomic_f16_mean, .timeout = 120)
{
	check_synthetic("nomic-bert", AB_TYPE_F16, 1, false, 64, 96);
}

Test(bert, synthetic_nomic_q8_0_cls, .timeout = 120)
{
	check_synthetic("nomic-bert", AB_TYPE_Q8_0, 2, false, 64, 96);
}

/* rows of 256 for the K-quants */
Test(bert, synthetic_bert_q4_0_and_nomic_q4_k, .timeout = 120)
{
	check_synthetic("bert", AB_TYPE_Q4_0, 1, false, 256, 512);
	check_synthetic("nomic-bert", AB_TYPE_Q4_K, 1, false, 256, 512);
}

/* The reference script's own writer: an independent GGUF producer. */
Test(bert, model_written_by_the_reference_script, .timeout = 120)
{
	python_numpy();
	static const struct {
		const char *arch, *type;
		int pooling;
		uint32_t t;
	} cases[] = {{"bert", "f32", 1, AB_TYPE_F32},
		     {"nomic-bert", "q8_0", 2, AB_TYPE_Q8_0},
		     {"bert", "f16", 2, AB_TYPE_F16}};
	for (size_t i = 0; i < AB_ARRAY_LEN(cases); i++) {
		char path[] = "/tmp/ab-bert-py-XXXXXX.gguf";
		int fd = mkstemps(path, 5);
		cr_assert_geq(fd, 0);
		close(fd);
		char cmd[2048];
		snprintf(cmd, sizeof(cmd),
			 "%s %s/tests/python/bert_reference.py synth --arch %s --type %s "
			 "--pooling %d --seed %zu -o %s",
			 python_numpy(), AB_SOURCE_ROOT, cases[i].arch, cases[i].type,
			 cases[i].pooling, 3 + i, path);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
		char label[64];
		snprintf(label, sizeof(label), "py-written %s", cases[i].arch);
		check_model(label, path, cases[i].t);
		unlink(path);
	}
}

/* ---- the engine's own consistency ---- */

Test(bert, repeatable_threads_and_text_path, .timeout = 120)
{
	struct spec s = SMALL_BERT;
	s.arch = "nomic-bert";
	char *path = synth(&s);
	struct ab_bert *m = load_ok(path);
	size_t E = 64;
	struct ab_bert_ctx *c1 = ctx_ok(m, 0, 1), *c3 = ctx_ok(m, 0, 3);
	float a[64], b[64], t3[64], x[64];
	int32_t toks[64];
	int n = ab_bert_tokenize(m, TEXT, strlen(TEXT), toks, 64, NULL);
	cr_assert_eq(ab_bert_encode(c1, toks, n, a, NULL), 0);
	/* a shorter input in between: scratch reuse must not leak state */
	cr_assert_eq(ab_bert_encode(c1, toks, 3, x, NULL), 0);
	cr_assert_eq(ab_bert_encode(c1, toks, n, b, NULL), 0);
	cr_assert_eq(memcmp(a, b, sizeof(a)), 0, "the same input gave another vector");
	cr_assert_eq(ab_bert_encode(c3, toks, n, t3, NULL), 0);
	struct diff d = {0, 0};
	for (size_t i = 0; i < E; i++)
		if (fabs((double)t3[i] - a[i]) > d.max_abs)
			d.max_abs = fabs((double)t3[i] - a[i]);
	cr_assert_lt(d.max_abs, 1e-6, "3 threads vs 1: %g", d.max_abs);
	/* text in, vector out: the same as tokenising and encoding */
	int nt = 0;
	bool cut = true;
	cr_assert_eq(ab_bert_embed(c1, TEXT, strlen(TEXT), x, &nt, &cut), 0);
	cr_assert_eq(nt, n);
	cr_assert_not(cut);
	cr_assert_eq(memcmp(a, x, sizeof(a)), 0);
	/* the empty text is [CLS] [SEP] */
	cr_assert_eq(ab_bert_embed(c1, "", 0, x, &nt, NULL), 0);
	cr_assert_eq(nt, 2);
	/* bad input */
	int32_t bad[2] = {2, 100000};
	cr_assert_eq(ab_bert_encode(c1, bad, 2, x, NULL), AB_EINVAL);
	cr_assert_eq(ab_bert_encode(c1, toks, 0, x, NULL), AB_EINVAL);
	ab_bert_ctx_free(c1);
	ab_bert_ctx_free(c3);
	ab_bert_free(m);
	unlink(path);
	free(path);
}

Test(bert, long_text_is_truncated_to_the_context, .timeout = 120)
{
	char *path = synth(&SMALL_BERT); /* context 64 */
	struct ab_bert *m = load_ok(path);
	struct ab_bert_ctx *c = ctx_ok(m, 0, 1);
	cr_assert_eq(ab_bert_ctx_n_ctx(c), 64);
	struct ab_buf text = {0};
	for (int i = 0; i < 200; i++)
		ab_buf_puts(&text, "the cat sat on the mat ");
	int32_t toks[64];
	int full = 0;
	int n = ab_bert_tokenize(m, text.data, text.len, toks, 64, &full);
	cr_assert_eq(n, 64);
	cr_assert_eq(full, 1202);
	cr_assert_eq(toks[0], 2);
	cr_assert_eq(toks[63], 3, "[SEP] kept at the end");
	float e[64], e2[64];
	int nt = 0;
	bool cut = false;
	cr_assert_eq(ab_bert_embed(c, text.data, text.len, e, &nt, &cut), 0);
	cr_assert_eq(nt, 64);
	cr_assert(cut);
	cr_assert_eq(ab_bert_encode(c, toks, 64, e2, NULL), 0);
	cr_assert_eq(memcmp(e, e2, sizeof(e)), 0);
	/* more than the context through encode: refused, not cut */
	int32_t many[65];
	for (int i = 0; i < 65; i++)
		many[i] = 5;
	cr_assert_eq(ab_bert_encode(c, many, 65, e, NULL), AB_ETOOBIG);
	/* a smaller context */
	struct ab_bert_ctx *c8 = ctx_ok(m, 8, 1);
	cr_assert_eq(ab_bert_embed(c8, text.data, text.len, e, &nt, &cut), 0);
	cr_assert_eq(nt, 8);
	ab_bert_ctx_free(c8);
	ab_buf_free(&text);
	ab_bert_ctx_free(c);
	ab_bert_free(m);
	unlink(path);
	free(path);
}

/* ---- a real model, if the shared folder has one ---- */

static double cosine(const float *a, const float *b, int n)
{
	double d = 0;
	for (int i = 0; i < n; i++)
		d += (double)a[i] * b[i];
	return d; /* unit vectors */
}

/* Looks in shared/models (one level of folders) for GGUFs of an encoder
 * architecture; checks the sentence-similarity ordering a trained model
 * must have. */
Test(bert, real_embedding_model_from_shared, .timeout = 300)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/models", shared_dir());
	const char *subs[] = {"", "/reference", "/embed", "/embedding"};
	char found[1200] = "";
	for (size_t i = 0; i < AB_ARRAY_LEN(subs) && !found[0]; i++) {
		char d[1100];
		snprintf(d, sizeof(d), "%s%s", dir, subs[i]);
		DIR *dp = opendir(d);
		if (!dp)
			continue;
		struct dirent *de;
		while ((de = readdir(dp)) && !found[0]) {
			size_t l = strlen(de->d_name);
			if (l < 5 || strcmp(de->d_name + l - 5, ".gguf"))
				continue;
			char p[1200];
			snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
			if (ab_bert_probe(p) == 1 && strstr(p, "ggml-vocab") == NULL)
				ab_strlcpy(found, p, sizeof(found));
		}
		closedir(dp);
	}
	if (!found[0])
		cr_skip_test("no BERT-family GGUF (bert, nomic-bert) with weights in %s: the real "
			     "embedding model test needs one (e.g. all-MiniLM-L6-v2, bge-small, "
			     "nomic-embed-text)",
			     dir);
	struct ab_bert *m = load_ok(found);
	const struct ab_bert_hparams *hp = ab_bert_hparams(m);
	struct ab_bert_ctx *c = ctx_ok(m, 0, 0);
	int E = hp->n_embd;
	static const char *texts[] = {"The cat sat on the mat.", "A cat was sitting on a rug.",
				      "Stock markets fell sharply on Monday."};
	float *v[3];
	double t0 = ab_now_ms_f();
	for (int i = 0; i < 3; i++) {
		v[i] = ab_xmalloc((size_t)E * sizeof(float));
		cr_assert_eq(ab_bert_embed(c, texts[i], strlen(texts[i]), v[i], NULL, NULL), 0);
	}
	double ms = ab_now_ms_f() - t0;
	double s01 = cosine(v[0], v[1], E), s02 = cosine(v[0], v[2], E);
	fprintf(stderr, "[bert] %s (%s, %d dims): cos(cat, cat) %.3f, cos(cat, stocks) %.3f, %.1f ms\n",
		found, hp->arch, E, s01, s02, ms);
	cr_assert_gt(s01, s02, "related sentences are not closer than unrelated ones");
	for (int i = 0; i < 3; i++)
		free(v[i]);
	ab_bert_ctx_free(c);
	ab_bert_free(m);
}
