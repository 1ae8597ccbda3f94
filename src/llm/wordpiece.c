/*
 * wordpiece.c - BERT's WordPiece tokenizer over a GGUF vocabulary
 * (wordpiece.h), as Hugging Face's BertTokenizer(Fast) splits text, so
 * that an embedding model sees the ids it was trained on.
 *
 * The vocabulary in a GGUF file. llama.cpp's converter rewrites BERT's
 * vocab.txt into a "phantom space" form: a word-initial piece "hello"
 * becomes "\u2581hello", a continuation "##ing" becomes "ing", and
 * bracketed specials ("[CLS]") stay as they are. Older or hand-made files
 * may keep the "##" form; it is recognised (no token starts with U+2581
 * but some start with "##") and mapped to the same keys at load. The
 * lookup table is thus keyed by "\u2581" + piece for a word start and by
 * the bare piece for a continuation, one open-addressing hash (FNV-1a)
 * over a single byte pool; control tokens are not in it, so no text can
 * produce [CLS] or [PAD].
 *
 * Normalisation, in the order of the Hugging Face BertNormalizer and
 * BertPreTokenizer (the Rust "fast" tokenizer that the reference vectors
 * in shared/models/reference/tokenizers were made with):
 *   1. NUL, U+FFFD and "other" characters (categories Cc, Cf, Cs, Co, Cn,
 *      except tab, CR, LF) are dropped; white space (tab, CR, LF, Zs, Zl,
 *      Zp) separates words;
 *   2. CJK ideographs (the Unicode blocks BERT lists) are words of their
 *      own;
 *   3. for an uncased vocabulary: canonical decomposition (NFD), marks of
 *      category Mn dropped (accent stripping), then simple lower-casing;
 *   4. punctuation (ASCII !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ and categories
 *      P*) makes one-character words.
 * "Uncased" is decided from the vocabulary itself, since GGUF files do not
 * carry do_lower_case: a vocabulary in which no normal token contains a
 * letter that lower-casing changes was built from lower-cased text, so
 * the text must be lower-cased too (bert-base-uncased, MiniLM, bge and
 * nomic-embed-text have none; bert-base-cased has thousands). llama.cpp
 * itself always lower-cases and never strips accents; we follow the
 * original tokenizer instead.
 *
 * Pieces. Each word of at most AB_WPM_MAX_WORD_CHARS code points is cut
 * greedily from the left into the longest piece in the vocabulary (never
 * longer than the longest key, which bounds the work per position); if
 * some position cannot be matched, the pieces found so far are taken
 * back and the whole word becomes one [UNK]. Longer words are [UNK]
 * without being looked at. Everything is bounded: a word's bytes are only
 * kept up to the character limit, and the total is counted in an int
 * (the text is limited to 256 MiB).
 */
#include "wordpiece.h"

#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PHANTOM "\xe2\x96\x81" /* U+2581, llama.cpp's word-start marker */
#define PHANTOM_LEN 3
#define MAX_TEXT (256u << 20)
#define MAX_VOCAB (1 << 24)
#define WORD_BYTES (AB_WPM_MAX_WORD_CHARS * 4 + 8)

struct ab_wpm {
	int n_vocab;
	char *text;       /* the tokens as stored, back to back */
	size_t *text_off; /* n_vocab + 1 offsets into text */
	char *keys;       /* lookup keys, back to back */
	size_t *key_off;  /* n_vocab + 1 offsets into keys (empty: not in the table) */
	int32_t *slots;   /* hash table of ids, -1 empty; cap a power of two */
	size_t cap;
	size_t max_key;   /* longest key in bytes */
	int32_t cls, sep, unk;
	bool uncased;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) AB_PRINTF(4, 5);
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- the hash table ---- */

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

#define FNV_BASIS 14695981039346656037ull

/* The id whose key is pre (npre bytes) followed by s (n bytes), or -1. */
static int32_t lookup(const struct ab_wpm *t, const char *pre, size_t npre, const char *s,
		      size_t n)
{
	size_t len = npre + n;
	if (len == 0 || len > t->max_key)
		return -1;
	uint64_t h = fnv(fnv(FNV_BASIS, pre, npre), s, n);
	for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		int32_t id = t->slots[i];
		if (id < 0)
			return -1;
		const char *k = t->keys + t->key_off[id];
		if (t->key_off[id + 1] - t->key_off[id] == len && !memcmp(k, pre, npre) &&
		    !memcmp(k + npre, s, n))
			return id;
	}
}

static void insert(struct ab_wpm *t, int32_t id)
{
	size_t len = t->key_off[id + 1] - t->key_off[id];
	if (len == 0)
		return;
	const char *k = t->keys + t->key_off[id];
	if (lookup(t, "", 0, k, len) >= 0)
		return; /* a duplicate key: the first (lowest) id wins */
	uint64_t h = fnv(FNV_BASIS, k, len);
	size_t i = (size_t)h & (t->cap - 1);
	while (t->slots[i] >= 0)
		i = (i + 1) & (t->cap - 1);
	t->slots[i] = id;
}

/* ---- character classes ---- */

static bool is_ws(int32_t c)
{
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
		return true;
	utf8proc_category_t k = utf8proc_category(c);
	return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

static bool is_other(int32_t c)
{
	if (c == '\t' || c == '\n' || c == '\r')
		return false;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_CC:
	case UTF8PROC_CATEGORY_CF:
	case UTF8PROC_CATEGORY_CS:
	case UTF8PROC_CATEGORY_CO:
	case UTF8PROC_CATEGORY_CN:
		return true;
	default:
		return false;
	}
}

static bool is_punct(int32_t c)
{
	if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
	    (c >= 123 && c <= 126))
		return true;
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_PC:
	case UTF8PROC_CATEGORY_PD:
	case UTF8PROC_CATEGORY_PS:
	case UTF8PROC_CATEGORY_PE:
	case UTF8PROC_CATEGORY_PI:
	case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
		return true;
	default:
		return false;
	}
}

/* The CJK Unified Ideographs blocks (and extensions, compatibility
 * ideographs) that BERT's tokenizer isolates. Not Hangul, kana or other
 * scripts: those are split by white space like any other. */
static bool is_cjk(int32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
	       (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
	       (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
	       (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ---- loading ---- */

static bool bracketed(const char *s, size_t n)
{
	return n >= 2 && s[0] == '[' && s[n - 1] == ']';
}

/* true if some letter of s changes under lower-casing */
static bool has_upper(const char *s, size_t n)
{
	size_t o = 0;
	while (o < n) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + o,
						      (utf8proc_ssize_t)(n - o), &c);
		if (l <= 0) {
			o++;
			continue;
		}
		if (utf8proc_tolower(c) != c)
			return true;
		o += (size_t)l;
	}
	return false;
}

/* An id key: 0 and *id set if present and in range, else -1. */
static int special_id(const struct ab_gguf *g, const char *key, int n, int32_t *id)
{
	uint32_t v;
	if (ab_gguf_get_u32(g, key, &v) == 0 && v < (uint32_t)n) {
		*id = (int32_t)v;
		return 0;
	}
	return -1;
}

static int32_t find_text(const struct ab_wpm *t, const char *s)
{
	size_t n = strlen(s);
	for (int i = 0; i < t->n_vocab; i++)
		if (t->text_off[i + 1] - t->text_off[i] == n && !memcmp(t->text + t->text_off[i], s, n))
			return i;
	return -1;
}

int ab_wpm_from_gguf(const struct ab_gguf *g, struct ab_wpm **out, char *err, size_t errlen)
{
	*out = NULL;
	char *model = NULL;
	if (ab_gguf_get_str(g, "tokenizer.ggml.model", &model) < 0)
		return fail(err, errlen, AB_ENOTFOUND, "missing key tokenizer.ggml.model");
	bool bert = !strcmp(model, "bert");
	if (!bert)
		fail(err, errlen, AB_EINVAL, "tokenizer.ggml.model is %s, not bert (WordPiece)",
		     model);
	free(model);
	if (!bert)
		return AB_EINVAL;
	const struct ab_gguf_kv *tk = ab_gguf_find(g, "tokenizer.ggml.tokens");
	if (!tk || tk->type != AB_GGUF_ARRAY || tk->v.arr.type != AB_GGUF_STRING ||
	    !tk->v.arr.strs)
		return fail(err, errlen, AB_EINVAL, "tokenizer.ggml.tokens: missing or not strings");
	if (tk->v.arr.n == 0 || tk->v.arr.n > MAX_VOCAB)
		return fail(err, errlen, AB_EINVAL, "tokenizer.ggml.tokens: %llu tokens",
			    (unsigned long long)tk->v.arr.n);
	int n = (int)tk->v.arr.n;
	const struct ab_gguf_str *toks = tk->v.arr.strs;
	/* token types, when present: control tokens stay out of the table */
	const struct ab_gguf_kv *tt = ab_gguf_find(g, "tokenizer.ggml.token_type");
	const uint8_t *types = NULL;
	if (tt && tt->type == AB_GGUF_ARRAY && tt->v.arr.n == (uint64_t)n &&
	    (tt->v.arr.type == AB_GGUF_INT32 || tt->v.arr.type == AB_GGUF_UINT32))
		types = tt->v.arr.data;

	struct ab_wpm *t = ab_xcalloc(1, sizeof(*t));
	t->n_vocab = n;
	bool phantom = false;
	size_t total = 0;
	for (int i = 0; i < n; i++) {
		total += toks[i].n;
		if (toks[i].n >= PHANTOM_LEN && !memcmp(toks[i].p, PHANTOM, PHANTOM_LEN))
			phantom = true;
	}
	t->text = ab_xmalloc(total + 1);
	t->text_off = ab_xmalloc(((size_t)n + 1) * sizeof(size_t));
	t->keys = ab_xmalloc(total + (size_t)n * PHANTOM_LEN + 1);
	t->key_off = ab_xmalloc(((size_t)n + 1) * sizeof(size_t));
	size_t to = 0, ko = 0;
	size_t cased_tokens = 0;
	for (int i = 0; i < n; i++) {
		const char *s = toks[i].p;
		size_t len = (size_t)toks[i].n;
		t->text_off[i] = to;
		memcpy(t->text + to, s, len);
		to += len;
		t->key_off[i] = ko;
		int32_t type = 1;
		if (types)
			memcpy(&type, types + 4 * (size_t)i, 4);
		if (type == 3 || len == 0) /* control: not reachable from text */
			continue;
		if (phantom || bracketed(s, len)) {
			memcpy(t->keys + ko, s, len);
			ko += len;
		} else if (len > 2 && s[0] == '#' && s[1] == '#') {
			memcpy(t->keys + ko, s + 2, len - 2);
			ko += len - 2;
		} else {
			memcpy(t->keys + ko, PHANTOM, PHANTOM_LEN);
			memcpy(t->keys + ko + PHANTOM_LEN, s, len);
			ko += PHANTOM_LEN + len;
		}
		size_t kl = ko - t->key_off[i];
		if (kl > t->max_key)
			t->max_key = kl;
		if (!bracketed(s, len) && has_upper(s, len))
			cased_tokens++;
	}
	t->text_off[n] = to;
	t->key_off[n] = ko;
	t->uncased = cased_tokens == 0;
	t->cap = 16;
	while (t->cap < 2 * (size_t)n)
		t->cap <<= 1;
	t->slots = ab_xmalloc(t->cap * sizeof(int32_t));
	memset(t->slots, 0xff, t->cap * sizeof(int32_t));
	for (int i = 0; i < n; i++)
		insert(t, i);

	int rc = 0;
	if (special_id(g, "tokenizer.ggml.cls_token_id", n, &t->cls) < 0 &&
	    special_id(g, "tokenizer.ggml.bos_token_id", n, &t->cls) < 0)
		t->cls = find_text(t, "[CLS]");
	if (special_id(g, "tokenizer.ggml.seperator_token_id", n, &t->sep) < 0 &&
	    special_id(g, "tokenizer.ggml.eos_token_id", n, &t->sep) < 0)
		t->sep = find_text(t, "[SEP]");
	if (special_id(g, "tokenizer.ggml.unknown_token_id", n, &t->unk) < 0)
		t->unk = find_text(t, "[UNK]");
	if (t->cls < 0 || t->sep < 0 || t->unk < 0) {
		rc = fail(err, errlen, AB_EINVAL,
			  "the vocabulary has no %s token (and no tokenizer.ggml.%s key)",
			  t->cls < 0 ? "[CLS]" : t->sep < 0 ? "[SEP]" : "[UNK]",
			  t->cls < 0 ? "cls_token_id" : t->sep < 0 ? "seperator_token_id"
								   : "unknown_token_id");
		ab_wpm_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void ab_wpm_free(struct ab_wpm *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->text_off);
	free(t->keys);
	free(t->key_off);
	free(t->slots);
	free(t);
}

int ab_wpm_n_vocab(const struct ab_wpm *t)
{
	return t->n_vocab;
}

int32_t ab_wpm_cls(const struct ab_wpm *t)
{
	return t->cls;
}

int32_t ab_wpm_sep(const struct ab_wpm *t)
{
	return t->sep;
}

int32_t ab_wpm_unk(const struct ab_wpm *t)
{
	return t->unk;
}

bool ab_wpm_uncased(const struct ab_wpm *t)
{
	return t->uncased;
}

const char *ab_wpm_token(const struct ab_wpm *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab)
		return NULL;
	*len = t->text_off[id + 1] - t->text_off[id];
	return t->text + t->text_off[id];
}

/* ---- encoding ---- */

/* The output and the word being collected. */
struct enc {
	const struct ab_wpm *t;
	int32_t *out;
	int max;
	int n;                /* ids so far (may exceed max) */
	char w[WORD_BYTES];   /* the word's bytes, up to the character limit */
	size_t wb;
	int bound[AB_WPM_MAX_WORD_CHARS + 1]; /* byte offset of each character */
	int nc;               /* characters in the word (counted past the limit) */
};

static void emit(struct enc *e, int32_t id)
{
	if (e->n < e->max)
		e->out[e->n] = id;
	e->n++;
}

/* Greedy longest-match pieces of the collected word, or one [UNK]. */
static void flush_word(struct enc *e)
{
	const struct ab_wpm *t = e->t;
	int nc = e->nc;
	e->nc = 0;
	e->wb = 0;
	if (nc == 0)
		return;
	if (nc > AB_WPM_MAX_WORD_CHARS) {
		emit(e, t->unk);
		return;
	}
	int first = e->n;
	int start = 0;
	while (start < nc) {
		const char *pre = start == 0 ? PHANTOM : "";
		size_t npre = start == 0 ? PHANTOM_LEN : 0;
		int32_t id = -1;
		int end = nc;
		/* skip ends whose piece is longer than any key */
		while (end > start &&
		       npre + (size_t)(e->bound[end] - e->bound[start]) > t->max_key)
			end--;
		for (; end > start; end--) {
			id = lookup(t, pre, npre, e->w + e->bound[start],
				    (size_t)(e->bound[end] - e->bound[start]));
			if (id >= 0)
				break;
		}
		if (id < 0) {
			e->n = first; /* take the pieces back */
			emit(e, t->unk);
			return;
		}
		emit(e, id);
		start = end;
	}
}

static void add_char(struct enc *e, int32_t c)
{
	if (e->nc < AB_WPM_MAX_WORD_CHARS) {
		utf8proc_uint8_t buf[4];
		utf8proc_ssize_t l = utf8proc_encode_char(c, buf);
		if (l > 0) {
			e->bound[e->nc] = (int)e->wb;
			memcpy(e->w + e->wb, buf, (size_t)l);
			e->wb += (size_t)l;
			e->bound[e->nc + 1] = (int)e->wb;
		}
	}
	e->nc++; /* past the limit only counted: the word is [UNK] */
}

/* One normalised character: a separator, a one-character word or part
 * of the current word. */
static void take(struct enc *e, int32_t c)
{
	if (is_ws(c)) {
		flush_word(e);
	} else if (is_punct(c)) {
		flush_word(e);
		add_char(e, c);
		flush_word(e);
	} else {
		add_char(e, c);
	}
}

int ab_wpm_encode(const struct ab_wpm *t, const char *text, size_t len, bool add_special,
		  int32_t *out, int max)
{
	if (!t || (!text && len) || (max > 0 && !out))
		return AB_EINVAL;
	if (len > MAX_TEXT)
		return AB_ETOOBIG;
	struct enc *e = ab_xmalloc(sizeof(*e));
	e->t = t;
	e->out = out;
	e->max = max < 0 ? 0 : max;
	e->n = 0;
	e->wb = 0;
	e->nc = 0;
	if (add_special)
		emit(e, t->cls);
	size_t o = 0;
	while (o < len) {
		utf8proc_int32_t c;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)text + o,
						      (utf8proc_ssize_t)(len - o < 4 ? len - o : 4), &c);
		if (l <= 0) {
			o++; /* invalid UTF-8: dropped */
			continue;
		}
		o += (size_t)l;
		if (c == 0 || c == 0xFFFD || is_other(c))
			continue;
		if (is_cjk(c)) {
			flush_word(e);
			add_char(e, c);
			flush_word(e);
			continue;
		}
		if (!t->uncased || c < 0x80) {
			if (t->uncased && c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			take(e, c);
			continue;
		}
		/* NFD, drop the non-spacing marks, lower-case */
		utf8proc_int32_t d[16];
		int lbc = 0;
		utf8proc_ssize_t nd = utf8proc_decompose_char(c, d, 16, UTF8PROC_DECOMPOSE, &lbc);
		if (nd <= 0 || nd > 16) {
			d[0] = c;
			nd = 1;
		}
		for (utf8proc_ssize_t i = 0; i < nd; i++) {
			if (utf8proc_category(d[i]) == UTF8PROC_CATEGORY_MN)
				continue;
			take(e, utf8proc_tolower(d[i]));
		}
	}
	flush_word(e);
	if (add_special)
		emit(e, t->sep);
	int n = e->n;
	free(e);
	return n;
}
