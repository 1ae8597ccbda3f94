/*
 * jsonfmt.c - constrained generation of JSON (jsonfmt.h): the validator,
 * the per-vocabulary token bytes and the logit mask.
 *
 * The validator is a pushdown automaton over bytes for the grammar of
 * RFC 8259. Its one promise, on which the masking depends, is that it
 * accepts exactly the prefixes of valid documents: a byte is refused as
 * soon as no continuation could make a document of the text, never
 * later. A model that is only ever offered accepted tokens therefore
 * can never write itself into a corner; the only way out of a document
 * is to finish it.
 *
 * State. The pushdown store is one 64-bit word: bit d says whether the
 * container at depth d+1 is an object (1) or an array (0), which is why
 * the depth is bounded by 64; everything else is a handful of bytes, so
 * the whole state is copied by assignment. "state" says what may come
 * next:
 *
 *   VALUE      a value is due: the top level, after ':' or after ',' in
 *              an array (at the top level only '{' unless ANY_VALUE);
 *   ARR_FIRST  just after '[': a value or ']';
 *   OBJ_FIRST  just after '{': a key or '}';
 *   KEY        after ',' in an object: a key;
 *   COLON      after a key: ':';
 *   AFTER      after a value inside a container: ',' or the bracket
 *              that closes that container (the top bit decides which);
 *   DONE       the document is complete: only white space.
 *
 * In these seven states white space is allowed, at most
 * AB_JSONFMT_MAX_WS bytes in a row ("ws" counts the run).
 *
 * Strings: STR reads characters, refusing control bytes below 0x20 and
 * ill-formed UTF-8: a lead byte sets how many continuation bytes follow
 * (aux) and the range of the first one (lo..hi: E0 needs A0..BF, ED
 * needs 80..9F so that no surrogate is encoded, F0 needs 90..BF, F4
 * needs 80..8F so that nothing passes U+10FFFF), the state UTF8 checks
 * them. ESC follows a backslash; HEX reads the four digits of \u, with
 * cp holding the value so far. A high surrogate (D800..DBFF) must be
 * followed by an escaped low one (DC00..DFFF): SURR_BS and SURR_U wait
 * for its "\u", and the flag LOW_DUE makes HEX demand 'd' and then c..f.
 * A low surrogate on its own is refused at its second digit. The flag
 * IN_KEY says whether the closing quote leads to COLON or ends a value.
 *
 * Numbers: MINUS, ZERO, INT, DOT, FRAC, EXP_MARK, EXP_SIGN, EXP follow
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? with aux counting the
 * bytes (at most AB_JSONFMT_MAX_NUMBER, and a number is refused a byte
 * early when it could not be finished within the cap) and lit the digits
 * of the exponent (at most AB_JSONFMT_MAX_EXP_DIGITS: with at most 32
 * digits before it, every number the validator lets through is within
 * the range of a double, which strict parsers such as jansson's or Go's
 * insist on; RFC 8259 section 6 allows such limits). In the four
 * states where a number may end, any other byte ends it and is then read
 * again as the byte after a value. LIT matches true/false/null, with lit
 * the literal and aux the position in it.
 *
 * A refused byte moves the state to DEAD, where it stays.
 *
 * Masking. The vocabulary's token bytes are laid out once per model in
 * one buffer (offsets per id). For the next token, ab_jsonfmt_mask does
 * not try all tokens: it selects the `window` highest logits with a
 * min-heap (one pass over the logits, O(n log window)), feeds each of
 * those tokens to a copy of the state, and keeps the valid ones: every
 * other logit becomes -INFINITY. Only when none of the window is valid
 * (a position where the model wants to write prose but only '"' or ','
 * may come) is the whole vocabulary scanned, with the bytes that may
 * come next found first so that the many tokens that start with another
 * byte cost one table look-up each. (Growing the window step by step
 * instead was measured slower: the heap of a big window costs more than
 * the filtered scan.) The caller sizes the window so that it holds
 * everything its sampler could pick (top_k), which makes greedy decoding
 * exact up to the reordering of the repeat penalties, and sampling exact
 * but for the tail beyond the window.
 *
 * Finishing in time. A generation has a budget of tokens (num_predict,
 * the room left in the context), and a document cut off by it is no
 * document. ab_jsonfmt_remaining gives the fewest bytes that complete
 * the text from a state (a closing quote, ':' and a digit for a key,
 * the rest of a literal or of a \u escape, six more after a high
 * surrogate, one bracket per open container); every such byte exists as
 * a token of its own in byte-fallback and byte-level vocabularies, and
 * each one lowers the count by one. So when the mask is given a budget
 * it keeps only tokens after which the remaining bytes fit in the tokens
 * left: the model writes freely while the budget is large and is steered
 * to close what it opened as the budget runs out, always in time. When
 * no token qualifies (a vocabulary without those one-byte tokens) the
 * budget is dropped and validity alone decides.
 */
#include "jsonfmt.h"

#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
	S_VALUE,
	S_ARR_FIRST,
	S_OBJ_FIRST,
	S_KEY,
	S_COLON,
	S_AFTER,
	S_DONE,
	S_STR,
	S_UTF8,
	S_ESC,
	S_HEX,
	S_SURR_BS,
	S_SURR_U,
	S_MINUS,
	S_ZERO,
	S_INT,
	S_DOT,
	S_FRAC,
	S_EXP_MARK,
	S_EXP_SIGN,
	S_EXP,
	S_LIT,
	S_DEAD,
};

enum { F_ANY = 1, F_IN_KEY = 2, F_LOW_DUE = 4 };

static const char *const literals[3] = {"true", "false", "null"};
static const uint8_t literal_len[3] = {4, 5, 4};

void ab_jsonfmt_init(struct ab_jsonfmt *j, unsigned flags)
{
	memset(j, 0, sizeof(*j));
	j->state = S_VALUE;
	j->flags = (flags & AB_JSONFMT_ANY_VALUE) ? F_ANY : 0;
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void value_end(struct ab_jsonfmt *j)
{
	j->state = j->depth ? S_AFTER : S_DONE;
	j->ws = 0;
}

static bool top_is_object(const struct ab_jsonfmt *j)
{
	return j->depth > 0 && ((j->stack >> (j->depth - 1)) & 1u);
}

static bool push(struct ab_jsonfmt *j, bool object)
{
	if (j->depth >= AB_JSONFMT_MAX_DEPTH)
		return false;
	if (object)
		j->stack |= (uint64_t)1 << j->depth;
	else
		j->stack &= ~((uint64_t)1 << j->depth);
	j->depth++;
	j->state = object ? S_OBJ_FIRST : S_ARR_FIRST;
	return true;
}

/* The first byte of a value (VALUE or ARR_FIRST, not white space). */
static bool value_start(struct ab_jsonfmt *j, unsigned char c)
{
	if (j->depth == 0 && !(j->flags & F_ANY) && c != '{')
		return false;
	j->aux = 1;
	switch (c) {
	case '{':
		return push(j, true);
	case '[':
		return push(j, false);
	case '"':
		j->flags &= (uint8_t)~F_IN_KEY;
		j->state = S_STR;
		return true;
	case '-':
		j->state = S_MINUS;
		return true;
	case '0':
		j->state = S_ZERO;
		return true;
	case 't':
		j->lit = 0;
		j->state = S_LIT;
		return true;
	case 'f':
		j->lit = 1;
		j->state = S_LIT;
		return true;
	case 'n':
		j->lit = 2;
		j->state = S_LIT;
		return true;
	default:
		if (c >= '1' && c <= '9') {
			j->state = S_INT;
			return true;
		}
		return false;
	}
}

static bool close_container(struct ab_jsonfmt *j, bool object)
{
	if (j->depth == 0 || top_is_object(j) != object)
		return false;
	j->depth--;
	value_end(j);
	return true;
}

static void start_key(struct ab_jsonfmt *j)
{
	j->flags |= F_IN_KEY;
	j->state = S_STR;
}

/* A lead byte in a string: how many continuation bytes, and the range of
 * the first (Unicode's table of well-formed UTF-8). */
static bool utf8_lead(struct ab_jsonfmt *j, unsigned char c)
{
	uint8_t need, lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 2;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 3;
	else
		return false;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	j->aux = need;
	j->lo = lo;
	j->hi = hi;
	j->state = S_UTF8;
	return true;
}

/* A number byte that moved to state next: counts it, and refuses a number
 * that could no longer end within the cap. */
static bool number_byte(struct ab_jsonfmt *j, uint8_t next)
{
	j->state = next;
	j->aux++;
	bool can_end = next == S_ZERO || next == S_INT || next == S_FRAC || next == S_EXP;
	return j->aux + (can_end ? 0 : 1) <= AB_JSONFMT_MAX_NUMBER;
}

static bool step(struct ab_jsonfmt *j, unsigned char c)
{
	bool digit = c >= '0' && c <= '9';
	switch (j->state) {
	case S_VALUE:
	case S_ARR_FIRST:
	case S_OBJ_FIRST:
	case S_KEY:
	case S_COLON:
	case S_AFTER:
	case S_DONE:
		break; /* structure: below */
	case S_STR:
		if (c == '"') {
			if (j->flags & F_IN_KEY) {
				j->state = S_COLON;
				j->ws = 0;
			} else {
				value_end(j);
			}
			return true;
		}
		if (c == '\\') {
			j->state = S_ESC;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c < 0x80)
			return true;
		return utf8_lead(j, c);
	case S_UTF8:
		if (c < j->lo || c > j->hi)
			return false;
		j->lo = 0x80;
		j->hi = 0xBF;
		if (--j->aux == 0)
			j->state = S_STR;
		return true;
	case S_ESC:
		if (c == 'u') {
			j->state = S_HEX;
			j->aux = 0;
			j->cp = 0;
			return true;
		}
		if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
		    c == 'r' || c == 't') {
			j->state = S_STR;
			return true;
		}
		return false;
	case S_HEX: {
		int v = hex_val(c);
		if (v < 0)
			return false;
		if (j->flags & F_LOW_DUE) {
			if ((j->aux == 0 && v != 0xD) || (j->aux == 1 && v < 0xC))
				return false;
		} else if (j->aux == 1 && j->cp == 0xD && v >= 0xC) {
			return false; /* a low surrogate with no high one */
		}
		j->cp = j->cp * 16 + (uint32_t)v;
		if (++j->aux < 4)
			return true;
		if (j->flags & F_LOW_DUE) {
			j->flags &= (uint8_t)~F_LOW_DUE;
			j->state = S_STR;
		} else if (j->cp >= 0xD800 && j->cp <= 0xDBFF) {
			j->flags |= F_LOW_DUE;
			j->state = S_SURR_BS;
		} else {
			j->state = S_STR;
		}
		return true;
	}
	case S_SURR_BS:
		if (c != '\\')
			return false;
		j->state = S_SURR_U;
		return true;
	case S_SURR_U:
		if (c != 'u')
			return false;
		j->state = S_HEX;
		j->aux = 0;
		j->cp = 0;
		return true;
	case S_MINUS:
		if (c == '0')
			return number_byte(j, S_ZERO);
		if (digit)
			return number_byte(j, S_INT);
		return false;
	case S_ZERO:
	case S_INT:
	case S_FRAC:
	case S_EXP:
		if (digit && j->state == S_EXP && ++j->lit > AB_JSONFMT_MAX_EXP_DIGITS)
			return false;
		if (digit && j->state != S_ZERO)
			return number_byte(j, j->state);
		if (digit)
			return false; /* a leading zero */
		if (c == '.' && (j->state == S_ZERO || j->state == S_INT))
			return number_byte(j, S_DOT);
		if ((c == 'e' || c == 'E') && j->state != S_EXP)
			return number_byte(j, S_EXP_MARK);
		value_end(j); /* the number ended: c comes after it */
		break;
	case S_DOT:
		return digit && number_byte(j, S_FRAC);
	case S_EXP_MARK:
		if (c == '+' || c == '-')
			return number_byte(j, S_EXP_SIGN);
		/* fall through */
	case S_EXP_SIGN:
		if (!digit)
			return false;
		j->lit = 1; /* exponent digits */
		return number_byte(j, S_EXP);
	case S_LIT:
		if (c != (unsigned char)literals[j->lit][j->aux])
			return false;
		if (++j->aux == literal_len[j->lit])
			value_end(j);
		return true;
	default:
		return false;
	}

	/* structure */
	if (is_ws(c))
		return ++j->ws <= AB_JSONFMT_MAX_WS;
	j->ws = 0;
	switch (j->state) {
	case S_VALUE:
		return value_start(j, c);
	case S_ARR_FIRST:
		if (c == ']')
			return close_container(j, false);
		return value_start(j, c);
	case S_OBJ_FIRST:
		if (c == '}')
			return close_container(j, true);
		if (c != '"')
			return false;
		start_key(j);
		return true;
	case S_KEY:
		if (c != '"')
			return false;
		start_key(j);
		return true;
	case S_COLON:
		if (c != ':')
			return false;
		j->state = S_VALUE;
		return true;
	case S_AFTER:
		if (c == ',') {
			j->state = top_is_object(j) ? S_KEY : S_VALUE;
			return true;
		}
		if (c == '}' || c == ']')
			return close_container(j, c == '}');
		return false;
	default: /* S_DONE */
		return false;
	}
}

int ab_jsonfmt_feed(struct ab_jsonfmt *j, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	if (j->state == S_DEAD)
		return AB_EJSON;
	for (size_t i = 0; i < len; i++) {
		if (!step(j, p[i])) {
			j->state = S_DEAD;
			return AB_EJSON;
		}
		j->n++;
	}
	return 0;
}

bool ab_jsonfmt_complete(const struct ab_jsonfmt *j)
{
	if (j->state == S_DONE)
		return true;
	return j->depth == 0 && (j->state == S_ZERO || j->state == S_INT || j->state == S_FRAC ||
				 j->state == S_EXP);
}

uint64_t ab_jsonfmt_offset(const struct ab_jsonfmt *j)
{
	return j->n;
}

/* Bytes that end the current string: its closing quote, and for a key
 * the ':' and a one-digit value as well; then the containers. */
static int string_rest(const struct ab_jsonfmt *j)
{
	return ((j->flags & F_IN_KEY) ? 3 : 1) + j->depth;
}

int ab_jsonfmt_remaining(const struct ab_jsonfmt *j)
{
	int d = j->depth;
	switch (j->state) {
	case S_DONE:
		return 0;
	case S_VALUE:
		return d == 0 && !(j->flags & F_ANY) ? 2 : 1 + d; /* "{}" or "0" */
	case S_ARR_FIRST:
	case S_OBJ_FIRST:
	case S_AFTER:
		return d;
	case S_KEY:
		return 4 + d; /* "":0 */
	case S_COLON:
		return 2 + d; /* :0 */
	case S_STR:
		return string_rest(j);
	case S_UTF8:
		return j->aux + string_rest(j);
	case S_ESC:
		return 1 + string_rest(j);
	case S_HEX: {
		int left = 4 - j->aux, more = 0;
		/* digits that already make a high surrogate need a low one too */
		if (!(j->flags & F_LOW_DUE) && j->aux >= 2) {
			uint32_t top = j->cp >> (4 * (j->aux - 2));
			if (top >= 0xD8 && top <= 0xDB)
				more = 6; /* \uDC00 */
		}
		return left + more + string_rest(j);
	}
	case S_SURR_BS:
		return 6 + string_rest(j);
	case S_SURR_U:
		return 5 + string_rest(j);
	case S_ZERO:
	case S_INT:
	case S_FRAC:
	case S_EXP:
		return d;
	case S_MINUS:
	case S_DOT:
	case S_EXP_MARK:
	case S_EXP_SIGN:
		return 1 + d;
	case S_LIT:
		return literal_len[j->lit] - j->aux + d;
	default:
		return -1;
	}
}

bool ab_jsonfmt_accepts(const struct ab_jsonfmt *j, const void *bytes, size_t len)
{
	struct ab_jsonfmt c = *j;
	return ab_jsonfmt_feed(&c, bytes, len) == 0;
}

/* ---- the vocabulary ---------------------------------------------------- */

enum { K_BYTES, K_NEVER, K_EOG };

/* Longest token piece kept; longer ones (none in real vocabularies) are
 * never offered. */
#define MAX_PIECE 1024

struct ab_jsonfmt_vocab {
	int n;
	uint32_t *off; /* n + 1 */
	uint8_t *kind;
	char *bytes;
};

struct ab_jsonfmt_vocab *ab_jsonfmt_vocab_new(const struct ab_tok *t)
{
	int n = t ? ab_tok_n_vocab(t) : 0;
	if (n <= 0)
		return NULL;
	struct ab_jsonfmt_vocab *v = ab_xcalloc(1, sizeof(*v));
	v->n = n;
	v->off = ab_xcalloc((size_t)n + 1, sizeof(uint32_t));
	v->kind = ab_xcalloc((size_t)n, 1);
	struct ab_buf b = {0};
	char piece[MAX_PIECE];
	for (int id = 0; id < n; id++) {
		v->off[id] = (uint32_t)b.len;
		if (ab_tok_is_eog(t, id)) {
			v->kind[id] = K_EOG;
			continue;
		}
		int pl = ab_tok_piece(t, id, false, piece, sizeof(piece));
		if (pl <= 0 || (size_t)pl >= sizeof(piece) || b.len + (size_t)pl > UINT32_MAX) {
			v->kind[id] = K_NEVER;
			continue;
		}
		ab_buf_append(&b, piece, (size_t)pl);
	}
	v->off[n] = (uint32_t)b.len;
	v->bytes = b.data ? b.data : ab_xcalloc(1, 1);
	return v;
}

void ab_jsonfmt_vocab_free(struct ab_jsonfmt_vocab *v)
{
	if (!v)
		return;
	free(v->off);
	free(v->kind);
	free(v->bytes);
	free(v);
}

int ab_jsonfmt_vocab_size(const struct ab_jsonfmt_vocab *v)
{
	return v ? v->n : 0;
}

/* Token id may come next, and what it leaves can still be finished with
 * `after` more tokens of one byte each. */
static bool token_fits(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, int32_t id,
		       int after)
{
	if (!v || id < 0 || id >= v->n)
		return false;
	switch (v->kind[id]) {
	case K_EOG:
		return ab_jsonfmt_complete(j);
	case K_NEVER:
		return false;
	default: {
		struct ab_jsonfmt c = *j;
		if (ab_jsonfmt_feed(&c, v->bytes + v->off[id], v->off[id + 1] - v->off[id]) < 0)
			return false;
		return ab_jsonfmt_remaining(&c) <= after;
	}
	}
}

bool ab_jsonfmt_token_ok(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, int32_t id)
{
	return token_fits(v, j, id, INT32_MAX);
}

/* ---- masking ----------------------------------------------------------- */

struct cand {
	int32_t id;
	float logit;
};

/* a ranks before b: higher logit, then lower id (the sampler's order). */
static bool better(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* The k best finite logits into h (a min-heap: h[0] the worst kept).
 * Returns how many (fewer than k when fewer are finite). */
static int top_k(const float *logits, int n, int k, struct cand *h)
{
	int m = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(logits[i]))
			continue;
		struct cand x = {i, logits[i]};
		int pos;
		if (m < k) {
			pos = m++;
			while (pos > 0) {
				int par = (pos - 1) / 2;
				if (!better(&h[par], &x))
					break;
				h[pos] = h[par];
				pos = par;
			}
			h[pos] = x;
			continue;
		}
		if (!better(&x, &h[0]))
			continue;
		pos = 0;
		for (;;) {
			int l = 2 * pos + 1, r = l + 1, w = pos;
			const struct cand *wc = &x;
			if (l < k && better(wc, &h[l])) {
				w = l;
				wc = &h[l];
			}
			if (r < k && better(wc, &h[r]))
				w = r;
			if (w == pos)
				break;
			h[pos] = h[w];
			pos = w;
		}
		h[pos] = x;
	}
	return m;
}

/* Every token tried: invalid ones get -INFINITY (none when none is valid).
 * Most tokens fail on their first byte, or on the second after a space
 * (the word tokens " word" of both vocabulary kinds), so the bytes that
 * may come next, and next after a space, are found first (512 one-byte
 * feeds) and only tokens that pass both tables are fed whole. */
static int mask_all(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, float *logits,
		    int after)
{
	bool first[256], second[256];
	struct ab_jsonfmt sp = *j;
	bool space = ab_jsonfmt_feed(&sp, " ", 1) == 0;
	for (int c = 0; c < 256; c++) {
		unsigned char b = (unsigned char)c;
		first[c] = ab_jsonfmt_accepts(j, &b, 1);
		second[c] = space && ab_jsonfmt_accepts(&sp, &b, 1);
	}
	uint8_t *ok = ab_xmalloc((size_t)v->n);
	int kept = 0;
	for (int i = 0; i < v->n; i++) {
		const unsigned char *p = (const unsigned char *)v->bytes + v->off[i];
		uint32_t len = v->off[i + 1] - v->off[i];
		bool maybe = v->kind[i] != K_BYTES ||
			     (first[p[0]] && (p[0] != ' ' || len < 2 || second[p[1]]));
		ok[i] = maybe && isfinite(logits[i]) && token_fits(v, j, i, after);
		kept += ok[i];
	}
	if (kept)
		for (int i = 0; i < v->n; i++)
			if (!ok[i])
				logits[i] = -INFINITY;
	free(ok);
	return kept;
}

/* One pass of the mask for tokens that leave at most `after` bytes. */
static int mask_within(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, float *logits,
		       int window, int after)
{
	if (window < v->n) {
		struct cand *h = ab_xmalloc((size_t)window * sizeof(*h));
		int m = top_k(logits, v->n, window, h);
		int kept = 0;
		for (int i = 0; i < m; i++)
			if (token_fits(v, j, h[i].id, after))
				h[kept++] = h[i];
		if (kept) {
			for (int i = 0; i < v->n; i++)
				logits[i] = -INFINITY;
			for (int i = 0; i < kept; i++)
				logits[h[i].id] = h[i].logit;
		}
		free(h);
		if (kept || m < window) /* m < window: every finite logit was tried */
			return kept;
	}
	return mask_all(v, j, logits, after);
}

int ab_jsonfmt_mask(const struct ab_jsonfmt_vocab *v, const struct ab_jsonfmt *j, float *logits,
		    int window, int budget)
{
	if (!v || !logits)
		return 0;
	if (window < 1)
		window = 1;
	int kept = 0;
	if (budget > 0 && budget < INT32_MAX)
		kept = mask_within(v, j, logits, window, budget - 1);
	/* no budget, or no token closes fast enough (a vocabulary without the
	 * one-byte tokens): validity alone */
	return kept ? kept : mask_within(v, j, logits, window, INT32_MAX);
}
