/*
 * tokenizer.c - text <-> token ids for the llama family, matching what
 * llama.cpp's llama_tokenize / llama_token_to_piece / llama_detokenize do
 * for the two vocabulary kinds a GGUF file can carry ("llama" SentencePiece
 * BPE with scores and "gpt2" byte-level BPE with merges), plus llama2.c's
 * tokenizer.bin, which is a SentencePiece vocabulary in another wrapping.
 *
 * Vocabulary. All token texts live in one arena; an open-addressing hash
 * table (FNV-1a, linear probing, load <= 1/2) maps text to id, so a
 * lookup costs one hash of the bytes. For BPE the strings named by the
 * merges ("a b") are interned in the same table (ids >= n_vocab when a
 * half or a product is not itself a token), and a second hash table maps
 * the pair of string ids (left, right) to (rank, id of left+right). A BPE
 * step therefore never builds a string.
 *
 * Special tokens. Before anything else the input is cut into fragments:
 * the texts of user-defined tokens always, and of control and unknown
 * tokens when parse_special is set, become their ids. Like llama.cpp the
 * candidates are tried longest text first, each splitting every remaining
 * raw fragment at all its occurrences (memmem), so the cost is
 * O(#specials x length) with a fast inner scan.
 *
 * SPM ("llama"). A raw fragment gets a leading space when it starts the
 * text or follows a special token (add_space_prefix), spaces become
 * U+2581, and the text is split into UTF-8 characters by their lead
 * bytes, as llama.cpp does; where it would let a lead byte swallow the
 * bytes that follow regardless, a lead byte without its continuation
 * bytes is a symbol of its own here, so invalid input falls back to
 * exactly its own bytes and the text around it is unharmed.
 * Symbols form a doubly linked list; every adjacent pair whose
 * concatenation is a token enters a binary heap ordered by that token's
 * score (highest first, then leftmost). Popping a pair that is still
 * intact (both symbols alive, lengths unchanged) merges it and offers the
 * two new neighbouring pairs. Each merge adds at most two heap entries, so
 * the whole is O(n log n). Symbols left that are not tokens (single
 * characters) fall back to byte tokens <0xXX>, else UNK.
 *
 * BPE ("gpt2"). A raw fragment is decoded into code points, classified
 * with utf8proc (letter L*, number N*, White_Space, other) and split into
 * words by a hand-written matcher for the pre-tokenizer regex: GPT-2's
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * or llama 3's (qwen2 is the same with one digit per number)
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * The matchers look ahead over one whitespace run at a time, so they are
 * linear. Each word's bytes are mapped to GPT-2's printable byte alphabet
 * (bytes_to_unicode); the symbols (one per byte) merge in a heap by lowest
 * merge rank, then leftmost, until no adjacent pair has a rank; symbols
 * are then looked up (llama 3 first tries the whole word: ignore_merges).
 * Invalid UTF-8 is where we differ on purpose: llama.cpp replaces a bad
 * byte by U+FFFD; here it is classified like U+FFFD (a symbol) but its
 * own byte is encoded, so any byte string round-trips. Pre-tokenizer
 * names other than gpt-2, llama3/llama-bpe and qwen2 get GPT-2's
 * expression (llama.cpp's "default" and the rest are not implemented).
 *
 * Pieces and detokenizing follow llama_token_to_piece: control and
 * unknown tokens give their text only when asked for specials, user
 * tokens give their text, SPM normal tokens turn U+2581 into spaces, byte
 * tokens give their byte, BPE tokens map their characters back to bytes.
 * Detokenizing concatenates pieces, drops one leading space of the first
 * piece when the vocabulary adds a space prefix, and for BPE applies
 * llama.cpp's clean_up_tokenization_spaces passes (" ," -> ",", ...).
 */
#include "tokenizer.h"

#include "common.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_TOKEN_BYTES (1u << 20)
#define MAX_INPUT_BYTES ((size_t)1 << 28)

enum pre_kind { PRE_GPT2 = 0, PRE_LLAMA3 = 1, PRE_QWEN2 = 2 };

struct merge_ent {
	uint64_t key; /* (left sid << 32) | right sid */
	int32_t rank; /* -1: empty slot */
	int32_t result;
};

struct ab_tok {
	enum ab_tok_kind kind;
	enum pre_kind pre;
	int n_vocab;
	/* strings: ids [0, n_vocab) are tokens, the rest interned merge parts */
	int n_str, cap_str;
	char *arena;
	size_t arena_len, arena_cap;
	uint32_t *off, *len, *hash;
	float *score;
	uint8_t *type;
	uint8_t *eog;
	int32_t *slot; /* string hash table: sid or -1 */
	uint32_t slot_mask;
	struct merge_ent *merges;
	uint32_t merge_mask;
	int n_merges;
	int32_t *special; /* control/user/unknown ids, longest text first */
	int n_special;
	int32_t bos, eos, unk, eot, eom;
	bool add_bos, add_eos, add_space_prefix, clean_spaces, ignore_merges;
	/* BPE byte alphabet */
	uint16_t byte_cp[256];
	int16_t cp_byte[512];
	int32_t byte_sid[256];
	int32_t spm_byte[256];
};

/* ---- string table ---- */

static uint32_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static bool str_eq(const struct ab_tok *t, int32_t sid, const char *p, size_t n, uint32_t h)
{
	return t->hash[sid] == h && t->len[sid] == n && memcmp(t->arena + t->off[sid], p, n) == 0;
}

/* sid of the exact text, or -1. */
static int32_t str_find(const struct ab_tok *t, const char *p, size_t n)
{
	if (!t->slot)
		return -1;
	uint32_t h = fnv1a(p, n);
	for (uint32_t i = h & t->slot_mask;; i = (i + 1) & t->slot_mask) {
		int32_t s = t->slot[i];
		if (s < 0)
			return -1;
		if (str_eq(t, s, p, n, h))
			return s;
	}
}

static int32_t vocab_find(const struct ab_tok *t, const char *p, size_t n)
{
	int32_t s = str_find(t, p, n);
	return s >= 0 && s < t->n_vocab ? s : -1;
}

static void slot_put(struct ab_tok *t, int32_t sid)
{
	uint32_t i = t->hash[sid] & t->slot_mask;
	while (t->slot[i] >= 0)
		i = (i + 1) & t->slot_mask;
	t->slot[i] = sid;
}

static void slots_grow(struct ab_tok *t, uint32_t want)
{
	uint32_t cap = 1024;
	while (cap < want * 2u)
		cap <<= 1;
	free(t->slot);
	t->slot = ab_xmalloc(cap * sizeof(*t->slot));
	memset(t->slot, 0xff, cap * sizeof(*t->slot));
	t->slot_mask = cap - 1;
	/* later ids win on duplicate texts, as in llama.cpp's token_to_id */
	for (int32_t s = 0; s < t->n_str; s++) {
		int32_t old = -1;
		uint32_t h = t->hash[s];
		uint32_t i = h & t->slot_mask;
		for (;; i = (i + 1) & t->slot_mask) {
			if (t->slot[i] < 0)
				break;
			if (str_eq(t, t->slot[i], t->arena + t->off[s], t->len[s], h)) {
				old = t->slot[i];
				break;
			}
		}
		if (old >= 0)
			t->slot[i] = s;
		else
			slot_put(t, s);
	}
}

/* Appends a string to the table (no hashing into slots). */
static int32_t str_append(struct ab_tok *t, const char *p, size_t n)
{
	if (t->n_str == t->cap_str) {
		t->cap_str = t->cap_str ? t->cap_str * 2 : 1024;
		t->off = ab_xrealloc(t->off, (size_t)t->cap_str * sizeof(*t->off));
		t->len = ab_xrealloc(t->len, (size_t)t->cap_str * sizeof(*t->len));
		t->hash = ab_xrealloc(t->hash, (size_t)t->cap_str * sizeof(*t->hash));
	}
	if (t->arena_len + n + 1 > t->arena_cap) {
		size_t c = t->arena_cap ? t->arena_cap : 65536;
		while (c < t->arena_len + n + 1)
			c *= 2;
		t->arena = ab_xrealloc(t->arena, c);
		t->arena_cap = c;
	}
	if (n)
		memcpy(t->arena + t->arena_len, p, n);
	t->arena[t->arena_len + n] = 0;
	int32_t sid = t->n_str++;
	t->off[sid] = (uint32_t)t->arena_len;
	t->len[sid] = (uint32_t)n;
	t->hash[sid] = fnv1a(p, n);
	t->arena_len += n + 1;
	return sid;
}

/* sid of text, adding it as an extra (non-token) string if absent. */
static int32_t str_intern(struct ab_tok *t, const char *p, size_t n)
{
	int32_t s = str_find(t, p, n);
	if (s >= 0)
		return s;
	if ((uint32_t)(t->n_str + 1) * 2u > t->slot_mask + 1u)
		slots_grow(t, (uint32_t)(t->n_str + 1) * 2u);
	s = str_append(t, p, n);
	slot_put(t, s);
	return s;
}

/* ---- merge table ---- */

static uint32_t merge_hash(uint64_t key)
{
	return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32);
}

static const struct merge_ent *merge_find(const struct ab_tok *t, int32_t l, int32_t r)
{
	if (!t->merges)
		return NULL;
	uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
	for (uint32_t i = merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
		const struct merge_ent *e = &t->merges[i];
		if (e->rank < 0)
			return NULL;
		if (e->key == key)
			return e;
	}
}

static void merge_add(struct ab_tok *t, int32_t l, int32_t r, int32_t rank, int32_t result)
{
	uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
	uint32_t i = merge_hash(key) & t->merge_mask;
	for (;; i = (i + 1) & t->merge_mask) {
		struct merge_ent *e = &t->merges[i];
		if (e->rank < 0)
			break;
		if (e->key == key)
			return; /* first rank wins (llama.cpp: emplace) */
	}
	t->merges[i].key = key;
	t->merges[i].rank = rank;
	t->merges[i].result = result;
	t->n_merges++;
}

/* ---- construction ---- */

static void init_byte_alphabet(struct ab_tok *t)
{
	int extra = 0;
	for (int i = 0; i < 512; i++)
		t->cp_byte[i] = -1;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
		int cp = printable ? b : 256 + extra++;
		t->byte_cp[b] = (uint16_t)cp;
		t->cp_byte[cp] = (int16_t)b;
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte of a "<0xXX>" text, or -1. */
static int byte_of_text(const char *p, size_t n)
{
	if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
		return -1;
	int hi = hexval((unsigned char)p[3]), lo = hexval((unsigned char)p[4]);
	return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static const char *tok_text(const struct ab_tok *t, int32_t id, size_t *n)
{
	*n = t->len[id];
	return t->arena + t->off[id];
}

struct lenid {
	uint32_t len;
	int32_t id;
};

/* Longest text first; ties by id (qsort is not stable). */
static int cmp_lenid(const void *a, const void *b)
{
	const struct lenid *x = a, *y = b;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Everything after the token texts, types and scores are in place. */
static void finish(struct ab_tok *t)
{
	init_byte_alphabet(t);
	/* byte-level symbols for BPE */
	for (int b = 0; b < 256; b++) {
		char u[4];
		utf8proc_ssize_t n = utf8proc_encode_char(t->byte_cp[b], (utf8proc_uint8_t *)u);
		t->byte_sid[b] = str_find(t, u, (size_t)n);
	}
	/* byte fallback for SPM: <0xXX>, else the byte itself, else UNK */
	for (int b = 0; b < 256; b++) {
		char hex[8];
		unsigned char c = (unsigned char)b;
		snprintf(hex, sizeof(hex), "<0x%02X>", b);
		int32_t id = vocab_find(t, hex, 6);
		if (id < 0)
			id = vocab_find(t, (const char *)&c, 1);
		t->spm_byte[b] = id >= 0 ? id : t->unk;
	}
	/* special-token candidates */
	struct lenid *li = ab_xmalloc(((size_t)t->n_vocab + 1) * sizeof(*li));
	t->special = ab_xmalloc(((size_t)t->n_vocab + 1) * sizeof(*t->special));
	t->n_special = 0;
	for (int32_t id = 0; id < t->n_vocab; id++) {
		uint8_t ty = t->type[id];
		if ((ty == AB_TOKT_CONTROL || ty == AB_TOKT_USER_DEFINED ||
		     ty == AB_TOKT_UNKNOWN) &&
		    t->len[id] > 0)
			li[t->n_special++] = (struct lenid){t->len[id], id};
	}
	qsort(li, (size_t)t->n_special, sizeof(*li), cmp_lenid);
	for (int i = 0; i < t->n_special; i++)
		t->special[i] = li[i].id;
	free(li);
	/* end of generation */
	t->eog = ab_xcalloc((size_t)t->n_vocab + 1, 1);
	int32_t ids[3] = {t->eos, t->eot, t->eom};
	for (int i = 0; i < 3; i++)
		if (ids[i] >= 0 && ids[i] < t->n_vocab)
			t->eog[ids[i]] = 1;
	static const char *const eog_texts[] = {
	    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",   "<|endoftext|>",
	    "<|eom_id|>", "<EOT>",      "_<EOT>",  "<|end_of_text|>",
	};
	for (size_t i = 0; i < AB_ARRAY_LEN(eog_texts); i++) {
		int32_t id = vocab_find(t, eog_texts[i], strlen(eog_texts[i]));
		if (id >= 0 &&
		    (t->type[id] == AB_TOKT_CONTROL || t->type[id] == AB_TOKT_USER_DEFINED))
			t->eog[id] = 1;
	}
}

static struct ab_tok *tok_alloc(int n_vocab)
{
	struct ab_tok *t = ab_xcalloc(1, sizeof(*t));
	t->n_vocab = n_vocab;
	t->score = ab_xcalloc((size_t)n_vocab + 1, sizeof(*t->score));
	t->type = ab_xcalloc((size_t)n_vocab + 1, 1);
	t->bos = t->eos = t->unk = t->eot = t->eom = -1;
	return t;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) AB_PRINTF(3, 4);

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int32_t get_id(const struct ab_gguf *g, const char *key, int32_t def, int n_vocab)
{
	uint32_t v;
	if (ab_gguf_get_u32(g, key, &v) != 0)
		return def;
	return v < (uint32_t)n_vocab ? (int32_t)v : def;
}

static bool get_flag(const struct ab_gguf *g, const char *key, bool def)
{
	bool v;
	return ab_gguf_get_bool(g, key, &v) == 0 ? v : def;
}

/* Element i of a numeric array as a double; 0 when the type is odd. */
static double arr_num(const struct ab_gguf_kv *kv, uint64_t i)
{
	const uint8_t *p = kv->v.arr.data;
	switch (kv->v.arr.type) {
	case AB_GGUF_FLOAT32: {
		float f;
		memcpy(&f, p + i * 4, 4);
		return f;
	}
	case AB_GGUF_FLOAT64: {
		double d;
		memcpy(&d, p + i * 8, 8);
		return d;
	}
	case AB_GGUF_INT32: {
		int32_t v;
		memcpy(&v, p + i * 4, 4);
		return v;
	}
	case AB_GGUF_UINT32: {
		uint32_t v;
		memcpy(&v, p + i * 4, 4);
		return v;
	}
	case AB_GGUF_INT8:
		return (int8_t)p[i];
	case AB_GGUF_UINT8:
		return p[i];
	case AB_GGUF_INT16: {
		int16_t v;
		memcpy(&v, p + i * 2, 2);
		return v;
	}
	case AB_GGUF_UINT16: {
		uint16_t v;
		memcpy(&v, p + i * 2, 2);
		return v;
	}
	default:
		return 0;
	}
}

static bool is_num_type(uint32_t ty)
{
	return ty <= AB_GGUF_FLOAT32 || ty == AB_GGUF_FLOAT64;
}

int ab_tok_from_gguf(const struct ab_gguf *g, struct ab_tok **out, char *err, size_t errlen)
{
	*out = NULL;
	char *model = NULL, *pre = NULL;
	if (!g || ab_gguf_get_str(g, "tokenizer.ggml.model", &model) != 0) {
		seterr(err, errlen, "no tokenizer.ggml.model");
		return AB_EINVAL;
	}
	enum ab_tok_kind kind;
	if (strcmp(model, "llama") == 0) {
		kind = AB_TOK_SPM;
	} else if (strcmp(model, "gpt2") == 0) {
		kind = AB_TOK_BPE;
	} else {
		seterr(err, errlen, "unsupported tokenizer model '%.64s'", model);
		free(model);
		return AB_EINVAL;
	}
	free(model);
	const struct ab_gguf_kv *toks = ab_gguf_find(g, "tokenizer.ggml.tokens");
	if (!toks || toks->type != AB_GGUF_ARRAY || toks->v.arr.type != AB_GGUF_STRING ||
	    !toks->v.arr.strs) {
		seterr(err, errlen, "no tokenizer.ggml.tokens string array");
		return AB_EINVAL;
	}
	uint64_t nv = toks->v.arr.n;
	if (nv == 0 || nv > (1u << 24)) {
		seterr(err, errlen, "tokenizer.ggml.tokens: bad vocabulary size %llu",
		       (unsigned long long)nv);
		return AB_EINVAL;
	}
	const struct ab_gguf_kv *scores = ab_gguf_find(g, "tokenizer.ggml.scores");
	const struct ab_gguf_kv *types = ab_gguf_find(g, "tokenizer.ggml.token_type");
	if (scores && (scores->type != AB_GGUF_ARRAY || !is_num_type(scores->v.arr.type) ||
	               scores->v.arr.n != nv)) {
		seterr(err, errlen, "tokenizer.ggml.scores: not %llu numbers",
		       (unsigned long long)nv);
		return AB_EINVAL;
	}
	if (types && (types->type != AB_GGUF_ARRAY || !is_num_type(types->v.arr.type) ||
	              types->v.arr.n != nv)) {
		seterr(err, errlen, "tokenizer.ggml.token_type: not %llu numbers",
		       (unsigned long long)nv);
		return AB_EINVAL;
	}
	struct ab_tok *t = tok_alloc((int)nv);
	t->kind = kind;
	for (uint64_t i = 0; i < nv; i++) {
		const struct ab_gguf_str *s = &toks->v.arr.strs[i];
		if (s->n > MAX_TOKEN_BYTES || (s->n && !s->p)) {
			seterr(err, errlen, "token %llu: text too long", (unsigned long long)i);
			ab_tok_free(t);
			return AB_EINVAL;
		}
		str_append(t, s->p, (size_t)s->n);
		t->score[i] = scores ? (float)arr_num(scores, i) : 0.0f;
		double ty = types ? arr_num(types, i) : AB_TOKT_NORMAL;
		t->type[i] = ty >= 0 && ty <= AB_TOKT_BYTE ? (uint8_t)ty : 0;
	}
	slots_grow(t, (uint32_t)nv);

	if (kind == AB_TOK_SPM) {
		t->bos = get_id(g, "tokenizer.ggml.bos_token_id", 1 < nv ? 1 : -1, t->n_vocab);
		t->eos = get_id(g, "tokenizer.ggml.eos_token_id", 2 < nv ? 2 : -1, t->n_vocab);
		t->unk = get_id(g, "tokenizer.ggml.unknown_token_id", 0, t->n_vocab);
		t->add_bos = true;
		t->add_space_prefix = true;
	} else {
		t->bos = get_id(g, "tokenizer.ggml.bos_token_id", -1, t->n_vocab);
		t->eos = get_id(g, "tokenizer.ggml.eos_token_id", -1, t->n_vocab);
		t->unk = get_id(g, "tokenizer.ggml.unknown_token_id", -1, t->n_vocab);
		t->clean_spaces = true;
		t->pre = PRE_GPT2;
		if (ab_gguf_get_str(g, "tokenizer.ggml.pre", &pre) == 0) {
			if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") ||
			    !strcmp(pre, "llama-bpe") || !strcmp(pre, "falcon3")) {
				t->pre = PRE_LLAMA3;
				t->ignore_merges = true;
				t->add_bos = true;
			} else if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) {
				t->pre = PRE_QWEN2;
				t->clean_spaces = false;
			}
			/* anything else: GPT-2's expression, the closest we have */
			free(pre);
		}
		const struct ab_gguf_kv *mg = ab_gguf_find(g, "tokenizer.ggml.merges");
		if (!mg || mg->type != AB_GGUF_ARRAY || mg->v.arr.type != AB_GGUF_STRING ||
		    !mg->v.arr.strs || mg->v.arr.n > (1u << 24)) {
			seterr(err, errlen,
			       "gpt2 tokenizer without a tokenizer.ggml.merges string array");
			ab_tok_free(t);
			return AB_EINVAL;
		}
		uint64_t nm = mg->v.arr.n;
		uint32_t cap = 1024;
		while (cap < nm * 2)
			cap <<= 1;
		t->merges = ab_xmalloc(cap * sizeof(*t->merges));
		for (uint32_t i = 0; i < cap; i++)
			t->merges[i].rank = -1;
		t->merge_mask = cap - 1;
		struct ab_buf cat = {0};
		for (uint64_t i = 0; i < nm; i++) {
			const struct ab_gguf_str *s = &mg->v.arr.strs[i];
			if (s->n < 3 || s->n > MAX_TOKEN_BYTES || !s->p)
				continue;
			const char *sp = memchr(s->p + 1, ' ', (size_t)s->n - 1);
			if (!sp)
				continue;
			size_t ln = (size_t)(sp - s->p), rn = (size_t)s->n - ln - 1;
			int32_t l = str_intern(t, s->p, ln);
			int32_t r = str_intern(t, sp + 1, rn);
			ab_buf_reset(&cat);
			ab_buf_append(&cat, s->p, ln);
			ab_buf_append(&cat, sp + 1, rn);
			int32_t res = str_intern(t, cat.data, cat.len);
			merge_add(t, l, r, (int32_t)i, res);
		}
		ab_buf_free(&cat);
	}
	t->eot = get_id(g, "tokenizer.ggml.eot_token_id", -1, t->n_vocab);
	t->eom = get_id(g, "tokenizer.ggml.eom_token_id", -1, t->n_vocab);
	t->add_bos = get_flag(g, "tokenizer.ggml.add_bos_token", t->add_bos);
	t->add_eos = get_flag(g, "tokenizer.ggml.add_eos_token", t->add_eos);
	t->add_space_prefix = get_flag(g, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
	finish(t);
	*out = t;
	return 0;
}

int ab_tok_from_llama2c(const char *path, int vocab_size, struct ab_tok **out, char *err,
                        size_t errlen)
{
	*out = NULL;
	if (vocab_size <= 0 || vocab_size > (1 << 24)) {
		seterr(err, errlen, "bad vocabulary size %d", vocab_size);
		return AB_EINVAL;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		seterr(err, errlen, "%s: cannot open", path);
		return AB_ENOTFOUND;
	}
	struct ab_buf b = {0};
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + got > ((size_t)1 << 30)) {
			fclose(f);
			ab_buf_free(&b);
			seterr(err, errlen, "%s: too big", path);
			return AB_ETOOBIG;
		}
		ab_buf_append(&b, chunk, got);
	}
	fclose(f);
	const uint8_t *p = (const uint8_t *)b.data;
	size_t n = b.len, o = 4;
	if (n < 4) {
		ab_buf_free(&b);
		seterr(err, errlen, "%s: truncated header", path);
		return AB_EINVAL;
	}
	struct ab_tok *t = tok_alloc(vocab_size);
	t->kind = AB_TOK_SPM;
	struct ab_buf txt = {0};
	for (int i = 0; i < vocab_size; i++) {
		float sc;
		int32_t ln;
		if (n - o < 8) {
			seterr(err, errlen, "%s: truncated at token %d", path, i);
			goto fail;
		}
		memcpy(&sc, p + o, 4);
		memcpy(&ln, p + o + 4, 4);
		o += 8;
		if (ln < 0 || (size_t)ln > n - o || (uint32_t)ln > MAX_TOKEN_BYTES) {
			seterr(err, errlen, "%s: token %d: bad length %d", path, i, (int)ln);
			goto fail;
		}
		const char *s = (const char *)p + o;
		o += (size_t)ln;
		uint8_t ty = AB_TOKT_NORMAL;
		ab_buf_reset(&txt);
		if (i == 0) {
			ab_buf_puts(&txt, "<unk>");
			ty = AB_TOKT_UNKNOWN;
		} else if (i == 1) {
			ab_buf_puts(&txt, "<s>");
			ty = AB_TOKT_CONTROL;
		} else if (i == 2) {
			ab_buf_puts(&txt, "</s>");
			ty = AB_TOKT_CONTROL;
		} else {
			if (ln == 0)
				ty = AB_TOKT_CONTROL;
			else if (byte_of_text(s, (size_t)ln) >= 0)
				ty = AB_TOKT_BYTE;
			/* llama2.c stores spaces; GGUF vocabularies store U+2581 */
			for (int32_t k = 0; k < ln; k++) {
				if (s[k] == ' ')
					ab_buf_append(&txt, "\xe2\x96\x81", 3);
				else
					ab_buf_putc(&txt, s[k]);
			}
		}
		str_append(t, txt.data ? txt.data : "", txt.len);
		t->score[i] = sc;
		t->type[i] = ty;
	}
	ab_buf_free(&txt);
	ab_buf_free(&b);
	slots_grow(t, (uint32_t)vocab_size);
	t->bos = 1 < vocab_size ? 1 : -1;
	t->eos = 2 < vocab_size ? 2 : -1;
	t->unk = 0;
	t->add_bos = true;
	t->add_space_prefix = true;
	finish(t);
	*out = t;
	return 0;
fail:
	ab_buf_free(&txt);
	ab_buf_free(&b);
	ab_tok_free(t);
	return AB_EINVAL;
}

void ab_tok_free(struct ab_tok *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->off);
	free(t->len);
	free(t->hash);
	free(t->score);
	free(t->type);
	free(t->eog);
	free(t->slot);
	free(t->merges);
	free(t->special);
	free(t);
}

/* ---- accessors ---- */

enum ab_tok_kind ab_tok_kind(const struct ab_tok *t)
{
	return t->kind;
}

int ab_tok_n_vocab(const struct ab_tok *t)
{
	return t->n_vocab;
}

int32_t ab_tok_bos(const struct ab_tok *t)
{
	return t->bos;
}

int32_t ab_tok_eos(const struct ab_tok *t)
{
	return t->eos;
}

bool ab_tok_add_bos(const struct ab_tok *t)
{
	return t->add_bos && t->bos >= 0;
}

bool ab_tok_is_eog(const struct ab_tok *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && t->eog[id];
}

int32_t ab_tok_lookup(const struct ab_tok *t, const char *text)
{
	return text ? vocab_find(t, text, strlen(text)) : -1;
}

/* ---- encoding: shared pieces ---- */

struct ivec {
	int32_t *v;
	size_t n, cap;
};

static void ivec_push(struct ivec *a, int32_t x)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->v = ab_xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = x;
}

struct sym {
	int prev, next;
	uint32_t start, n;
	int32_t sid;
};

struct bigram {
	double prio; /* smaller pops first: -score (SPM) or rank (BPE) */
	int left, right;
	uint32_t size;
	int32_t sl, sr, res;
};

struct heap {
	struct bigram *v;
	size_t n, cap;
};

static bool bg_less(const struct bigram *a, const struct bigram *b)
{
	return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(struct heap *h, const struct bigram *x)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = ab_xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!bg_less(x, &h->v[p]))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = *x;
}

static struct bigram heap_pop(struct heap *h)
{
	struct bigram top = h->v[0];
	struct bigram last = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && bg_less(&h->v[c + 1], &h->v[c]))
			c++;
		if (!bg_less(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* Scratch space of one encode call (the tokenizer itself is read-only,
 * so one ab_tok may serve several threads). */
struct work {
	struct ivec out;
	struct sym *sy;
	size_t sy_cap;
	struct heap heap;
	struct ab_buf text;
	uint32_t *cp;
	uint8_t *cls;
	size_t *cpoff;
	size_t cp_cap;
	struct ivec ends; /* word ends (code point indices) */
};

static void work_syms(struct work *w, size_t n)
{
	if (n > w->sy_cap) {
		w->sy_cap = n;
		w->sy = ab_xrealloc(w->sy, n * sizeof(*w->sy));
	}
}

static void work_free(struct work *w)
{
	free(w->out.v);
	free(w->sy);
	free(w->heap.v);
	ab_buf_free(&w->text);
	free(w->cp);
	free(w->cls);
	free(w->cpoff);
	free(w->ends.v);
}

/* ---- SPM ---- */

static void spm_try_pair(const struct ab_tok *t, struct work *w, int l, int r)
{
	if (l < 0 || r < 0)
		return;
	const struct sym *a = &w->sy[l], *b = &w->sy[r];
	int32_t id = vocab_find(t, w->text.data + a->start, a->n + b->n);
	if (id < 0)
		return;
	struct bigram bg = {
	    .prio = -(double)t->score[id], .left = l, .right = r, .size = a->n + b->n};
	heap_push(&w->heap, &bg);
}

static void spm_fragment(const struct ab_tok *t, struct work *w, const char *s, size_t n,
                         bool prefix)
{
	static const unsigned char u8len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	struct ab_buf *tx = &w->text;
	ab_buf_reset(tx);
	if (prefix)
		ab_buf_append(tx, "\xe2\x96\x81", 3);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			ab_buf_append(tx, s + run, i - run);
			ab_buf_append(tx, "\xe2\x96\x81", 3);
			run = i + 1;
		}
	}
	ab_buf_append(tx, s + run, n - run);
	size_t len = tx->len;
	if (len == 0)
		return;
	work_syms(w, len);
	int ns = 0;
	for (size_t o = 0; o < len;) {
		size_t cl = u8len[(unsigned char)tx->data[o] >> 4];
		/* a lead byte without its continuation bytes stands alone
		 * (llama.cpp would swallow what follows, U+2581 included) */
		for (size_t k = 1; k < cl; k++) {
			if (o + k >= len || ((unsigned char)tx->data[o + k] & 0xC0) != 0x80) {
				cl = 1;
				break;
			}
		}
		struct sym *y = &w->sy[ns];
		y->start = (uint32_t)o;
		y->n = (uint32_t)cl;
		y->prev = ns - 1;
		o += cl;
		y->next = o == len ? -1 : ns + 1;
		ns++;
	}
	w->heap.n = 0;
	for (int i = 1; i < ns; i++)
		spm_try_pair(t, w, i - 1, i);
	while (w->heap.n) {
		struct bigram bg = heap_pop(&w->heap);
		struct sym *a = &w->sy[bg.left], *b = &w->sy[bg.right];
		if (a->n == 0 || b->n == 0 || a->n + b->n != bg.size)
			continue;
		a->n += b->n;
		b->n = 0;
		a->next = b->next;
		if (b->next >= 0)
			w->sy[b->next].prev = bg.left;
		spm_try_pair(t, w, a->prev, bg.left);
		spm_try_pair(t, w, bg.left, a->next);
	}
	for (int i = 0; i != -1; i = w->sy[i].next) {
		const struct sym *y = &w->sy[i];
		int32_t id = vocab_find(t, tx->data + y->start, y->n);
		if (id >= 0) {
			ivec_push(&w->out, id);
			continue;
		}
		for (uint32_t k = 0; k < y->n; k++) {
			int32_t bid = t->spm_byte[(unsigned char)tx->data[y->start + k]];
			if (bid >= 0)
				ivec_push(&w->out, bid);
		}
	}
}

/* ---- BPE: pre-tokenizers ---- */

enum { C_NONE = 0, C_L = 1, C_N = 2, C_WS = 3, C_O = 4 };

static bool is_white(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
	       c == 0x205F || c == 0x3000;
}

static uint8_t cp_class(uint32_t c)
{
	if (is_white(c))
		return C_WS;
	switch (utf8proc_category((utf8proc_int32_t)c)) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
		return C_L;
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return C_N;
	default:
		return C_O;
	}
}

/* Decodes s into code points (w->cp, w->cls, w->cpoff with a sentinel
 * offset at index n). A byte that does not start valid UTF-8 is one code
 * point of its own, classed like U+FFFD. Returns the count. */
static size_t decode_cps(struct work *w, const char *s, size_t n)
{
	if (n + 1 > w->cp_cap) {
		w->cp_cap = n + 1;
		w->cp = ab_xrealloc(w->cp, w->cp_cap * sizeof(*w->cp));
		w->cls = ab_xrealloc(w->cls, w->cp_cap);
		w->cpoff = ab_xrealloc(w->cpoff, w->cp_cap * sizeof(*w->cpoff));
	}
	size_t k = 0;
	for (size_t o = 0; o < n;) {
		unsigned char c = (unsigned char)s[o];
		utf8proc_int32_t cp;
		utf8proc_ssize_t l;
		if (c < 0x80) {
			cp = c;
			l = 1;
		} else {
			l = utf8proc_iterate((const utf8proc_uint8_t *)s + o,
			                     (utf8proc_ssize_t)(n - o < 4 ? n - o : 4), &cp);
			if (l <= 0) {
				cp = 0xFFFD;
				l = 1;
			}
		}
		w->cp[k] = (uint32_t)cp;
		w->cls[k] = cp_class((uint32_t)cp);
		w->cpoff[k] = o;
		k++;
		o += (size_t)l;
	}
	w->cpoff[k] = n;
	return k;
}

static void emit_end(struct work *w, size_t *prev, size_t end)
{
	if (end > *prev) {
		ivec_push(&w->ends, (int32_t)end);
		*prev = end;
	}
}

static uint32_t lower_ascii(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at pos: length matched (0, 2 or 3). */
static size_t contraction(const uint32_t *cp, size_t pos, size_t n, bool fold)
{
	if (cp[pos] != '\'' || pos + 1 >= n)
		return 0;
	uint32_t a = fold ? lower_ascii(cp[pos + 1]) : cp[pos + 1];
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if (pos + 2 >= n)
		return 0;
	uint32_t b = fold ? lower_ascii(cp[pos + 2]) : cp[pos + 2];
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

static void split_gpt2(struct work *w, size_t n)
{
	const uint32_t *cp = w->cp;
	const uint8_t *cls = w->cls;
	size_t pos = 0, prev = 0;
	while (pos < n) {
		size_t k = contraction(cp, pos, n, false);
		if (k) {
			pos += k;
			emit_end(w, &prev, pos);
			continue;
		}
		bool sp = cp[pos] == ' ';
		uint8_t c2 = sp ? (pos + 1 < n ? cls[pos + 1] : C_NONE) : cls[pos];
		if (c2 == C_L || c2 == C_N || c2 == C_O) {
			pos += sp;
			while (pos < n && cls[pos] == c2)
				pos++;
			emit_end(w, &prev, pos);
			continue;
		}
		size_t nw = 0;
		while (pos + nw < n && cls[pos + nw] == C_WS)
			nw++;
		if (nw > 1 && pos + nw < n) {
			pos += nw - 1;
		} else if (nw > 0) {
			pos += nw;
		} else {
			pos++;
		}
		emit_end(w, &prev, pos);
	}
}

static void split_llama3(struct work *w, size_t n, size_t max_digits)
{
	const uint32_t *cp = w->cp;
	const uint8_t *cls = w->cls;
	size_t pos = 0, prev = 0;
	while (pos < n) {
		size_t k = contraction(cp, pos, n, true);
		if (k) {
			pos += k;
			emit_end(w, &prev, pos);
			continue;
		}
		uint32_t c = cp[pos];
		/* [^\r\n\p{L}\p{N}]?\p{L}+ */
		if (c != '\r' && c != '\n' && cls[pos] != C_N &&
		    (cls[pos] == C_L || (pos + 1 < n && cls[pos + 1] == C_L))) {
			pos++;
			while (pos < n && cls[pos] == C_L)
				pos++;
			emit_end(w, &prev, pos);
			continue;
		}
		/* \p{N}{1,max_digits} */
		if (cls[pos] == C_N) {
			size_t ini = pos;
			while (pos < n && cls[pos] == C_N) {
				pos++;
				if (pos - ini >= max_digits) {
					emit_end(w, &prev, pos);
					ini = pos;
				}
			}
			emit_end(w, &prev, pos);
			continue;
		}
		/*  ?[^\s\p{L}\p{N}]+[\r\n]* */
		bool sp = c == ' ';
		uint8_t c2 = sp ? (pos + 1 < n ? cls[pos + 1] : C_NONE) : cls[pos];
		if (c2 == C_O) {
			pos += sp;
			while (pos < n && cls[pos] == C_O)
				pos++;
			while (pos < n && (cp[pos] == '\r' || cp[pos] == '\n'))
				pos++;
			emit_end(w, &prev, pos);
			continue;
		}
		/* \s*[\r\n]+ | \s+(?!\S) | \s+ */
		size_t nw = 0, last_nl = 0;
		while (pos + nw < n && cls[pos + nw] == C_WS) {
			if (cp[pos + nw] == '\r' || cp[pos + nw] == '\n')
				last_nl = pos + nw + 1;
			nw++;
		}
		if (last_nl > 0)
			pos = last_nl;
		else if (nw > 1 && pos + nw < n)
			pos += nw - 1;
		else if (nw > 0)
			pos += nw;
		else
			pos++;
		emit_end(w, &prev, pos);
	}
}

/* ---- BPE: merging one word ---- */

static void bpe_try_pair(const struct ab_tok *t, struct work *w, int l, int r)
{
	if (l < 0 || r < 0)
		return;
	int32_t sl = w->sy[l].sid, sr = w->sy[r].sid;
	if (sl < 0 || sr < 0)
		return;
	const struct merge_ent *m = merge_find(t, sl, sr);
	if (!m)
		return;
	struct bigram bg = {
	    .prio = m->rank, .left = l, .right = r, .sl = sl, .sr = sr, .res = m->result};
	heap_push(&w->heap, &bg);
}

static void bpe_word(const struct ab_tok *t, struct work *w, const unsigned char *s, size_t n)
{
	struct ab_buf *tx = &w->text;
	ab_buf_reset(tx);
	work_syms(w, n);
	for (size_t i = 0; i < n; i++) {
		char u[4];
		utf8proc_ssize_t l = utf8proc_encode_char(t->byte_cp[s[i]], (utf8proc_uint8_t *)u);
		struct sym *y = &w->sy[i];
		y->start = (uint32_t)tx->len;
		y->n = (uint32_t)l;
		y->sid = t->byte_sid[s[i]];
		y->prev = (int)i - 1;
		y->next = i + 1 == n ? -1 : (int)i + 1;
		ab_buf_append(tx, u, (size_t)l);
	}
	if (t->ignore_merges) {
		int32_t id = vocab_find(t, tx->data, tx->len);
		if (id >= 0) {
			ivec_push(&w->out, id);
			return;
		}
	}
	w->heap.n = 0;
	for (size_t i = 1; i < n; i++)
		bpe_try_pair(t, w, (int)i - 1, (int)i);
	while (w->heap.n) {
		struct bigram bg = heap_pop(&w->heap);
		struct sym *a = &w->sy[bg.left], *b = &w->sy[bg.right];
		if (a->n == 0 || b->n == 0 || a->sid != bg.sl || b->sid != bg.sr)
			continue;
		a->n += b->n;
		a->sid = bg.res;
		b->n = 0;
		a->next = b->next;
		if (b->next >= 0)
			w->sy[b->next].prev = bg.left;
		bpe_try_pair(t, w, a->prev, bg.left);
		bpe_try_pair(t, w, bg.left, a->next);
	}
	for (int i = 0; i != -1; i = w->sy[i].next) {
		const struct sym *y = &w->sy[i];
		if (y->sid >= 0 && y->sid < t->n_vocab) {
			ivec_push(&w->out, y->sid);
			continue;
		}
		int32_t id = vocab_find(t, tx->data + y->start, y->n);
		if (id >= 0) {
			ivec_push(&w->out, id);
			continue;
		}
		for (uint32_t k = 0; k < y->n; k++) {
			int32_t bid = vocab_find(t, tx->data + y->start + k, 1);
			if (bid >= 0)
				ivec_push(&w->out, bid);
		}
	}
}

static void bpe_fragment(const struct ab_tok *t, struct work *w, const char *s, size_t n)
{
	size_t ncp = decode_cps(w, s, n);
	w->ends.n = 0;
	if (t->pre == PRE_LLAMA3)
		split_llama3(w, ncp, 3);
	else if (t->pre == PRE_QWEN2)
		split_llama3(w, ncp, 1);
	else
		split_gpt2(w, ncp);
	size_t start = 0;
	for (size_t i = 0; i < w->ends.n; i++) {
		size_t end = (size_t)w->ends.v[i];
		size_t b0 = w->cpoff[start], b1 = w->cpoff[end];
		bpe_word(t, w, (const unsigned char *)s + b0, b1 - b0);
		start = end;
	}
}

/* ---- encoding: special-token fragments ---- */

struct frag {
	int32_t id; /* -1: raw text */
	size_t off, len;
};

struct fvec {
	struct frag *v;
	size_t n, cap;
};

static void fvec_push(struct fvec *a, int32_t id, size_t off, size_t len)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = ab_xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = (struct frag){id, off, len};
}

/* Cuts text into raw fragments and special tokens (into *fv). */
static void partition(const struct ab_tok *t, const char *text, size_t len, bool parse_special,
                      struct fvec *fv)
{
	struct fvec tmp = {0};
	fv->n = 0;
	if (len == 0)
		return;
	fvec_push(fv, -1, 0, len);
	for (int si = 0; si < t->n_special; si++) {
		int32_t id = t->special[si];
		uint8_t ty = t->type[id];
		if (!parse_special && ty != AB_TOKT_USER_DEFINED)
			continue;
		size_t sl;
		const char *st = tok_text(t, id, &sl);
		bool any = false;
		for (size_t i = 0; i < fv->n && !any; i++)
			if (fv->v[i].id < 0 && fv->v[i].len >= sl &&
			    memmem(text + fv->v[i].off, fv->v[i].len, st, sl))
				any = true;
		if (!any)
			continue;
		tmp.n = 0;
		for (size_t i = 0; i < fv->n; i++) {
			struct frag f = fv->v[i];
			if (f.id >= 0) {
				fvec_push(&tmp, f.id, f.off, f.len);
				continue;
			}
			size_t o = f.off, end = f.off + f.len;
			while (end - o >= sl) {
				const char *hit = memmem(text + o, end - o, st, sl);
				if (!hit)
					break;
				size_t h = (size_t)(hit - text);
				if (h > o)
					fvec_push(&tmp, -1, o, h - o);
				fvec_push(&tmp, id, h, sl);
				o = h + sl;
			}
			if (o < end)
				fvec_push(&tmp, -1, o, end - o);
		}
		struct fvec sw = *fv;
		*fv = tmp;
		tmp = sw;
	}
	free(tmp.v);
}

int ab_tok_encode(const struct ab_tok *t, const char *text, size_t len, bool add_special,
                  bool parse_special, int32_t *out, int max)
{
	if (!t || (!text && len))
		return AB_EINVAL;
	if (len > MAX_INPUT_BYTES)
		return AB_ETOOBIG;
	struct work w = {0};
	struct fvec fv = {0};
	partition(t, text, len, parse_special, &fv);
	if (add_special && t->add_bos && t->bos >= 0)
		ivec_push(&w.out, t->bos);
	bool prev_special = true;
	for (size_t i = 0; i < fv.n; i++) {
		const struct frag *f = &fv.v[i];
		if (f->id >= 0) {
			ivec_push(&w.out, f->id);
			prev_special = true;
			continue;
		}
		if (t->kind == AB_TOK_SPM)
			spm_fragment(t, &w, text + f->off, f->len,
			             t->add_space_prefix && prev_special);
		else
			bpe_fragment(t, &w, text + f->off, f->len);
		prev_special = false;
	}
	if (add_special && t->add_eos && t->eos >= 0)
		ivec_push(&w.out, t->eos);
	free(fv.v);
	int rc;
	if (w.out.n > INT_MAX) {
		rc = AB_ETOOBIG;
	} else {
		rc = (int)w.out.n;
		if (out && max > 0)
			memcpy(out, w.out.v, (size_t)(rc < max ? rc : max) * sizeof(*out));
	}
	work_free(&w);
	return rc;
}

/* ---- pieces and decoding ---- */

struct sink {
	char *buf;
	size_t size, n;
	int lstrip; /* leading spaces still to drop */
};

static void sink_put(struct sink *k, const char *p, size_t n)
{
	while (k->lstrip > 0 && n > 0 && *p == ' ') {
		p++;
		n--;
		k->lstrip--;
	}
	k->lstrip = 0;
	if (k->n < k->size) {
		size_t c = k->size - k->n < n ? k->size - k->n : n;
		memcpy(k->buf + k->n, p, c);
	}
	k->n += n;
}

/* Emits the piece of id into k (k->n grows by the full length). */
static void piece(const struct ab_tok *t, int32_t id, bool special, struct sink *k)
{
	size_t n;
	const char *s = tok_text(t, id, &n);
	uint8_t ty = t->type[id];
	if (ty == AB_TOKT_CONTROL || ty == AB_TOKT_UNKNOWN) {
		if (special)
			sink_put(k, s, n);
		else
			k->lstrip = 0;
		return;
	}
	if (ty == AB_TOKT_USER_DEFINED) {
		sink_put(k, s, n);
		return;
	}
	char tmp[256];
	size_t m = 0;
	struct ab_buf big = {0};
	if (ty == AB_TOKT_BYTE) {
		int b = byte_of_text(s, n);
		if (b < 0 && t->kind == AB_TOK_BPE) {
			ty = AB_TOKT_NORMAL; /* a byte-level symbol */
		} else {
			char c = (char)(b < 0 ? 0 : b);
			sink_put(k, &c, 1);
			return;
		}
	}
	if (ty != AB_TOKT_NORMAL) {
		k->lstrip = 0;
		return; /* unused or undefined: nothing */
	}
	/* the output is never longer than the text */
	char *dst = n <= sizeof(tmp) ? tmp : (ab_buf_reserve(&big, n), big.data);
	if (t->kind == AB_TOK_SPM) {
		for (size_t i = 0; i < n;) {
			if (n - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
				dst[m++] = ' ';
				i += 3;
			} else {
				dst[m++] = s[i++];
			}
		}
	} else {
		for (size_t i = 0; i < n;) {
			utf8proc_int32_t cp;
			utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
			                                      (utf8proc_ssize_t)(n - i), &cp);
			if (l <= 0) {
				dst[m++] = s[i++];
				continue;
			}
			if (cp >= 0 && cp < 512 && t->cp_byte[cp] >= 0) {
				dst[m++] = (char)t->cp_byte[cp];
			} else {
				memcpy(dst + m, s + i, (size_t)l);
				m += (size_t)l;
			}
			i += (size_t)l;
		}
	}
	sink_put(k, dst, m);
	ab_buf_free(&big);
}

int ab_tok_piece(const struct ab_tok *t, int32_t id, bool special, char *buf, size_t size)
{
	if (!t || id < 0 || id >= t->n_vocab)
		return AB_EINVAL;
	struct sink k = {.buf = buf, .size = buf ? size : 0};
	piece(t, id, special, &k);
	size_t w = k.n < k.size ? k.n : k.size;
	if (w < k.size)
		buf[w] = 0;
	return w > INT_MAX ? INT_MAX : (int)w;
}

/* llama.cpp's clean_up_tokenization_spaces, in place; returns the length. */
static size_t clean_spaces(char *s, size_t n)
{
	size_t o;
	if (n < 2)
		return n;
	/* " ?" " !" " ." " ," lose the space */
	o = 1;
	for (size_t i = 1; i < n; i++) {
		if (s[i - 1] == ' ' && (s[i] == '?' || s[i] == '!' || s[i] == '.' || s[i] == ','))
			o--;
		s[o++] = s[i];
	}
	n = o;
	/* " ' " becomes "'" */
	o = n ? 1 : 0;
	for (size_t i = 1; i < n; i++) {
		char x = s[i];
		if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
			o--;
			i++;
		}
		s[o++] = x;
	}
	n = o;
	/* " 's" " 'm" " 're" " 've" lose the space */
	o = n ? 1 : 0;
	for (size_t i = 1; i < n; i++) {
		char x = s[i];
		if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
			char a = s[i + 1];
			if (a == 's' || a == 'm')
				o--;
			else if (a != 't' && a != 'd' && i + 2 < n &&
			         ((a == 'r' && s[i + 2] == 'e') || (a == 'v' && s[i + 2] == 'e')))
				o--;
		}
		s[o++] = x;
	}
	return o;
}

int ab_tok_decode(const struct ab_tok *t, const int32_t *ids, int n, char *buf, size_t size)
{
	if (!t || n < 0 || (!ids && n))
		return AB_EINVAL;
	struct ab_buf b = {0};
	ab_buf_reserve(&b, 64);
	bool strip = t->add_space_prefix;
	for (int i = 0; i < n; i++) {
		int32_t id = ids[i];
		if (id < 0 || id >= t->n_vocab) {
			strip = false;
			continue;
		}
		size_t tl = t->len[id];
		ab_buf_reserve(&b, tl + 1);
		struct sink k = {.buf = b.data + b.len, .size = tl + 1, .lstrip = strip ? 1 : 0};
		piece(t, id, false, &k);
		b.len += k.n < k.size ? k.n : k.size;
		strip = false;
	}
	size_t len = b.len;
	if (t->clean_spaces && len)
		len = clean_spaces(b.data, len);
	if (buf && size) {
		size_t c = len < size - 1 ? len : size - 1;
		memcpy(buf, b.data, c);
		buf[c] = 0;
	}
	ab_buf_free(&b);
	return len > INT_MAX ? INT_MAX : (int)len;
}
