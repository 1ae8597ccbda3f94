/*
 * filter.c - compiler and matcher for vector-set FILTER expressions
 * (filter.h), the language Redis 8 documents for VSIM ... FILTER.
 *
 * The language
 * ------------
 * Values are numbers (doubles), strings, null and flat arrays. A selector
 * `.name` (letters, digits, '_' and '-', as in Redis, so `.a-1` is the
 * key "a-1": put spaces around a minus after a selector) reads a
 * top-level key of the element's JSON object: numbers stay numbers,
 * strings (escapes decoded, \uXXXX to UTF-8) stay strings, true/false
 * become 1/0, null is null, and an array whose elements are all scalars
 * becomes an array. Objects and nested arrays cannot be used.
 *
 * Precedence, tightest first, as in Redis's operator table:
 *   ! not - + (unary)  >  **  >  * / %  >  + -  >
 *   == != < <= > >= in  >  and &&  >  or ||
 * All binary operators are left-associative except **, which is right-
 * associative (2 ** 3 ** 2 is 512). Unary operators bind tighter than
 * everything, also ** (-2 ** 2 is 4, like Redis's negative literals)
 * and comparisons (!.n == 1 is (!.n) == 1, which Redis tests for).
 *
 * Semantics:
 *   - truthiness: a number is true unless 0 or NaN, a string unless
 *     empty, null is false, an array is always true;
 *   - arithmetic and unary minus/plus convert operands to numbers: a
 *     string that holds a decimal number (surrounding blanks allowed, at
 *     most 255 bytes; the empty string is 0) becomes it, any other string
 *     NaN, null 0, an array NaN; / and % follow IEEE (x/0 is inf, fmod);
 *   - == / !=: two strings compare bytes, two numbers numerically, null
 *     equals only null, two arrays element by element, an array never
 *     equals a scalar, and any other pair (number vs string) compares
 *     as numbers (so "25" == 25);
 *   - < <= > >=: two strings compare numerically when both hold numbers,
 *     otherwise bytewise (lexicographic); other pairs numerically, and a
 *     NaN on either side makes the comparison false;
 *   - x in [array]: some element == x; "a" in "cab": substring (the
 *     empty string is in every string); anything else is false;
 *   - and/or short-circuit and yield 1 or 0, not/! yields 1 or 0.
 * An element matches when the value of the whole expression is true.
 * When any selector of the expression names a key that is missing or
 * holds an object/nested array, the element does not match at all (even
 * under `not`), exactly as Redis aborts evaluation on such a selector.
 * Attributes that are absent, empty, longer than AB_FILTER_MAX_JSON, not
 * valid JSON (checked over the whole text, not just up to the keys we
 * need) or not a JSON object never match. With duplicate keys the first
 * one counts, as in Redis.
 *
 * Where we differ from Redis, on purpose: Redis has no true/false
 * literals (we accept them as 1 and 0; keywords are case-insensitive
 * here), converts a non-numeric string to 0 (we use NaN, so ".name > -1"
 * is false for names), orders two non-numeric strings as 0 vs 0 (we
 * compare bytes), lets an array equal 0 (we do not), accepts JSON with
 * garbage after the keys it needed (we reject it), and decodes only some
 * JSON escapes (we decode all, including surrogate pairs; lone
 * surrogates become U+FFFD). Raw bytes are not checked for valid UTF-8.
 *
 * Design
 * ------
 * Compilation is a recursive-descent parser (one function per precedence
 * level; only parentheses recurse, bounded by AB_FILTER_MAX_NEST) that
 * emits postfix code for a small stack machine: push constant, push
 * field, unary and binary operators, and two conditional jumps that give
 * and/or their short-circuit. Right-associative ** is emitted as all its
 * operands followed by all its operators. The compiler tracks the
 * machine's stack depth, so evaluation runs on a fixed array on the C
 * stack and needs no bounds checks. Constants, array literals, decoded
 * string literals and the distinct selector names live in the filter;
 * string and element storage is sized from the expression length up
 * front so the pointers inside constants never move.
 *
 * Matching never builds a DOM. One validating pass walks the top-level
 * object; every key is compared with the (few) selector names, values of
 * keys the expression needs are converted into per-call slots and every
 * other value is skipped while still being checked (depth limited).
 * Strings without escapes point into the caller's JSON; decoded strings
 * and array elements go to a 4 KiB arena on the C stack that grows into
 * heap chunks only for large values, released before returning. So a
 * match holds no shared mutable state and usually allocates nothing;
 * any number of threads may match with one filter at once. Numbers are
 * converted exactly without strtod when they have at most 15 significant
 * digits and a small exponent (one correctly rounded IEEE multiply or
 * divide by an exact power of ten); longer ones go through strtod.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "filter.h"

#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* values                                                               */

enum vtype {
	V_NONE = 0, /* field not (yet) seen */
	V_NUM,
	V_STR,
	V_NULL,
	V_ARR,
	V_BAD, /* field present with a value we cannot use */
};

struct val {
	uint8_t type;
	uint32_t len; /* bytes of a string, elements of an array */
	union {
		double num;
		const char *str;
		const struct val *arr;
	} u;
};

static struct val num_val(double d)
{
	struct val v = {.type = V_NUM};
	v.u.num = d;
	return v;
}

/* ------------------------------------------------------------------ */
/* character classes (ASCII only, independent of the locale)            */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
	return is_alpha(c) || is_digit(c) || c == '_';
}

static bool is_sel_char(char c)
{
	return is_word(c) || c == '-';
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (the caller checked there are four bytes), or -1. */
static long hex4(const char *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hex_val(p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* ------------------------------------------------------------------ */
/* numbers                                                              */

static const double pow10_exact[] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Parses all of s[0..n) as a decimal number: an optional sign, digits
 * with an optional '.' (a digit on at least one side), an optional
 * exponent. False on anything else. */
static bool parse_decimal(const char *s, size_t n, double *out)
{
	size_t i = 0;
	bool neg = false, slow = false;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	uint64_t m = 0;
	int sig = 0;
	long scale = 0;
	size_t digits = 0;
	for (; i < n && is_digit(s[i]); i++, digits++) {
		int d = s[i] - '0';
		if (m == 0 && d == 0)
			continue;
		if (sig < 15) {
			m = m * 10 + (uint64_t)d;
			sig++;
		} else {
			slow = true;
		}
	}
	if (i < n && s[i] == '.') {
		for (i++; i < n && is_digit(s[i]); i++, digits++) {
			int d = s[i] - '0';
			if (m == 0 && d == 0) {
				scale--;
			} else if (sig < 15) {
				m = m * 10 + (uint64_t)d;
				sig++;
				scale--;
			} else {
				slow = true;
			}
		}
	}
	if (digits == 0)
		return false;
	long exp = 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		bool eneg = false;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		if (i >= n || !is_digit(s[i]))
			return false;
		for (; i < n && is_digit(s[i]); i++)
			if (exp < 100000)
				exp = exp * 10 + (s[i] - '0');
		if (eneg)
			exp = -exp;
	}
	if (i != n)
		return false;
	double r;
	long e = scale + exp;
	if (m == 0 && !slow) {
		r = 0;
	} else if (!slow && e >= -22 && e <= 22) {
		r = e < 0 ? (double)m / pow10_exact[-e] : (double)m * pow10_exact[e];
	} else {
		/* strtod needs a terminated copy; long ones (rare, and bounded
		 * by the input limits) go to the heap */
		char small[128];
		char *buf = n < sizeof(small) ? small : ab_xmalloc(n + 1);
		memcpy(buf, s, n);
		buf[n] = '\0';
		char *ep;
		r = strtod(buf, &ep);
		bool ok = ep == buf + n;
		if (buf != small)
			free(buf);
		if (!ok)
			return false;
		*out = r;
		return true;
	}
	*out = neg ? -r : r;
	return true;
}

/* Length of the JSON number (RFC 8259 grammar) at p, or 0. */
static size_t json_number_len(const char *p, const char *end)
{
	const char *q = p;
	if (q < end && *q == '-')
		q++;
	if (q >= end || !is_digit(*q))
		return 0;
	if (*q == '0') {
		q++;
	} else {
		while (q < end && is_digit(*q))
			q++;
	}
	if (q < end && *q == '.') {
		q++;
		if (q >= end || !is_digit(*q))
			return 0;
		while (q < end && is_digit(*q))
			q++;
	}
	if (q < end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q >= end || !is_digit(*q))
			return 0;
		while (q < end && is_digit(*q))
			q++;
	}
	return (size_t)(q - p);
}

/* ------------------------------------------------------------------ */
/* strings                                                              */

static size_t put_utf8(char *d, unsigned long cp)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xC0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xE0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		d[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (char)(0xF0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	d[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

#define DEC_BAD_ESCAPE (-1)
#define DEC_NO_ROOM (-2)

/* Decodes the backslash escapes of s[0..n) into dst (room for cap
 * bytes). JSON's escapes are understood, plus \' when squote is set;
 * \uXXXX becomes UTF-8, a surrogate pair one code point, a lone
 * surrogate U+FFFD. The decoded text is never longer than s. Returns
 * the decoded length, DEC_NO_ROOM, or DEC_BAD_ESCAPE with *bad (when not
 * NULL) set to the offset of the offending backslash. */
static long decode_str(const char *s, size_t n, char *dst, size_t cap, bool squote, size_t *bad)
{
	size_t i = 0, o = 0;
	while (i < n) {
		char tmp[4];
		size_t k;
		char c = s[i];
		if (c != '\\') {
			tmp[0] = c;
			k = 1;
			i++;
		} else {
			if (i + 1 >= n)
				goto bad_escape;
			k = 1;
			switch (s[i + 1]) {
			case '"': tmp[0] = '"'; break;
			case '\\': tmp[0] = '\\'; break;
			case '/': tmp[0] = '/'; break;
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case '\'':
				if (!squote)
					goto bad_escape;
				tmp[0] = '\'';
				break;
			case 'u': {
				if (n - i < 6)
					goto bad_escape;
				long cp = hex4(s + i + 2);
				if (cp < 0)
					goto bad_escape;
				size_t used = 6;
				if (cp >= 0xD800 && cp <= 0xDBFF && n - i >= 12 && s[i + 6] == '\\' &&
				    s[i + 7] == 'u') {
					long lo = hex4(s + i + 8);
					if (lo >= 0xDC00 && lo <= 0xDFFF) {
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						used = 12;
					}
				}
				if (cp >= 0xD800 && cp <= 0xDFFF)
					cp = 0xFFFD;
				k = put_utf8(tmp, (unsigned long)cp);
				i += used;
				goto copy;
			}
			default:
				goto bad_escape;
			}
			i += 2;
		}
copy:
		if (cap - o < k)
			return DEC_NO_ROOM;
		memcpy(dst + o, tmp, k);
		o += k;
	}
	return (long)o;
bad_escape:
	if (bad)
		*bad = i;
	return DEC_BAD_ESCAPE;
}

/* The bytes that end a run of plain string content: '"', '\\' and the
 * control characters, which JSON forbids raw. */
static const bool str_stop[256] = {
	[0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
	[0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
	[0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
	[0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
	[0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1,  ['\\'] = 1,
};

/* p is just past the opening quote of a JSON string. Returns the
 * position just past its closing quote, or NULL when the string is
 * unterminated, holds a raw control character or a bad escape. *esc
 * tells whether there was any backslash. */
static const char *json_str_end(const char *p, const char *end, bool *esc)
{
	bool e = false;
	for (;;) {
		while (p < end && !str_stop[(unsigned char)*p])
			p++;
		if (p >= end || *p != '\\') {
			if (p >= end || *p != '"')
				return NULL; /* the end, or a control character */
			*esc = e;
			return p + 1;
		}
		e = true;
		if (end - p < 2)
			return NULL;
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			break;
		case 'u':
			if (end - p < 6 || hex4(p + 2) < 0)
				return NULL;
			p += 6;
			break;
		default:
			return NULL;
		}
	}
}

/* ------------------------------------------------------------------ */
/* the compiled form                                                    */

enum op {
	OP_CONST, /* push consts[arg] */
	OP_FIELD, /* push the value of fields[arg] */
	OP_NOT,
	OP_NEG,
	OP_POS,
	OP_POW,
	OP_MUL,
	OP_DIV,
	OP_MOD,
	OP_ADD,
	OP_SUB,
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_IN,
	OP_ANDJ, /* top false: top = 0, jump to arg; else pop */
	OP_ORJ,  /* top true: top = 1, jump to arg; else pop */
	OP_BOOL, /* top = 1 or 0 */
};

struct insn {
	uint8_t op;
	uint32_t arg;
};

struct field {
	const char *name; /* in strs */
	uint32_t len;
};

struct ab_filter {
	struct insn *code;
	uint32_t ncode;
	struct val *consts;
	uint32_t nconsts;
	struct field *fields;
	uint32_t nfields;
	struct val *elems; /* elements of array literals, never reallocated */
	char *strs;        /* decoded literals and names, never reallocated */
};

void ab_filter_free(struct ab_filter *f)
{
	if (!f)
		return;
	free(f->code);
	free(f->consts);
	free(f->fields);
	free(f->elems);
	free(f->strs);
	free(f);
}

/* ------------------------------------------------------------------ */
/* lexer                                                                */

enum tok {
	T_EOF,
	T_NUM,
	T_STR,
	T_SEL,
	T_NULL,
	T_TRUE,
	T_FALSE,
	T_LP,
	T_RP,
	T_LB,
	T_RB,
	T_COMMA,
	T_NOT,
	T_POW,
	T_MUL,
	T_DIV,
	T_MOD,
	T_ADD,
	T_SUB,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_IN,
	T_AND,
	T_OR,
};

struct parser {
	const char *src;
	size_t len, pos;
	struct ab_filter *f;
	uint32_t cap_code, cap_consts, cap_fields;
	size_t used_strs, used_elems, cap_elems;
	uint32_t depth; /* machine stack depth after the code so far */
	int nest;       /* open parentheses */
	char *err;
	size_t errlen;
	bool failed;
	/* the current token */
	enum tok tok;
	size_t tpos, tlen;
	double num;      /* T_NUM */
	const char *str; /* T_STR: decoded, in strs; T_SEL: the name in src */
	uint32_t slen;
};

static bool fail(struct parser *ps, const char *fmt, ...) AB_PRINTF(2, 3);

static bool fail(struct parser *ps, const char *fmt, ...)
{
	if (ps->failed)
		return false;
	ps->failed = true;
	if (ps->err && ps->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ps->err, ps->errlen, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* "syntax error near 'tok' at offset N" for the current token (at most
 * 24 bytes of it, unprintable bytes as '?'), or the end-of-input form. */
static bool fail_near(struct parser *ps)
{
	if (ps->tpos >= ps->len)
		return fail(ps, "unexpected end of expression at offset %zu", ps->tpos);
	char near[25];
	size_t n = ps->tlen ? ps->tlen : 1;
	if (n > sizeof(near) - 1)
		n = sizeof(near) - 1;
	if (n > ps->len - ps->tpos)
		n = ps->len - ps->tpos;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)ps->src[ps->tpos + i];
		near[i] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
	}
	near[n] = '\0';
	return fail(ps, "syntax error near '%s' at offset %zu", near, ps->tpos);
}

static bool word_is(const char *s, size_t n, const char *kw)
{
	if (strlen(kw) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != kw[i])
			return false;
	}
	return true;
}

static bool lex_number(struct parser *ps, size_t i)
{
	const char *s = ps->src;
	size_t n = ps->len, j = i;
	while (j < n && is_digit(s[j]))
		j++;
	if (j < n && s[j] == '.')
		for (j++; j < n && is_digit(s[j]); j++)
			;
	if (j < n && (s[j] == 'e' || s[j] == 'E')) {
		size_t k = j + 1;
		if (k < n && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < n && is_digit(s[k])) {
			for (j = k; j < n && is_digit(s[j]); j++)
				;
		}
	}
	ps->tlen = j - i;
	if (j < n && (is_word(s[j]) || s[j] == '.')) {
		ps->tlen++;
		return fail_near(ps);
	}
	if (!parse_decimal(s + i, j - i, &ps->num))
		return fail(ps, "bad number at offset %zu", i);
	ps->tok = T_NUM;
	ps->pos = j;
	return true;
}

static bool lex_string(struct parser *ps, size_t i)
{
	const char *s = ps->src;
	size_t n = ps->len, j = i + 1;
	char q = s[i];
	while (j < n && s[j] != q)
		j += s[j] == '\\' ? 2 : 1;
	if (j >= n)
		return fail(ps, "unterminated string at offset %zu", i);
	char *dst = ps->f->strs + ps->used_strs;
	size_t bad = 0;
	long d = decode_str(s + i + 1, j - i - 1, dst, ps->len - ps->used_strs, true, &bad);
	if (d < 0)
		return fail(ps, "bad escape in string at offset %zu", i + 1 + bad);
	ps->used_strs += (size_t)d;
	ps->tok = T_STR;
	ps->str = dst;
	ps->slen = (uint32_t)d;
	ps->tlen = j + 1 - i;
	ps->pos = j + 1;
	return true;
}

static bool lex_selector(struct parser *ps, size_t i)
{
	const char *s = ps->src;
	size_t n = ps->len, j = i + 1;
	while (j < n && is_sel_char(s[j]))
		j++;
	ps->tlen = j - i;
	if (j == i + 1) {
		ps->tlen = 1;
		return fail_near(ps);
	}
	if (j - i - 1 > AB_FILTER_MAX_NAME)
		return fail(ps, "selector longer than %d bytes at offset %zu", AB_FILTER_MAX_NAME, i);
	ps->tok = T_SEL;
	ps->str = s + i + 1;
	ps->slen = (uint32_t)(j - i - 1);
	ps->pos = j;
	return true;
}

static bool lex_word(struct parser *ps, size_t i)
{
	static const struct {
		const char *kw;
		enum tok tok;
	} kws[] = {
		{"and", T_AND},   {"or", T_OR},     {"not", T_NOT},     {"in", T_IN},
		{"null", T_NULL}, {"true", T_TRUE}, {"false", T_FALSE},
	};
	const char *s = ps->src;
	size_t j = i;
	while (j < ps->len && is_word(s[j]))
		j++;
	ps->tlen = j - i;
	for (size_t k = 0; k < AB_ARRAY_LEN(kws); k++) {
		if (word_is(s + i, j - i, kws[k].kw)) {
			ps->tok = kws[k].tok;
			ps->pos = j;
			return true;
		}
	}
	return fail_near(ps);
}

/* Reads the next token into ps. False (with the error set) on a lexical
 * error. */
static bool lex(struct parser *ps)
{
	const char *s = ps->src;
	size_t n = ps->len, i = ps->pos;
	while (i < n && is_blank(s[i]))
		i++;
	ps->tpos = i;
	ps->tlen = 0;
	if (i >= n) {
		ps->tok = T_EOF;
		ps->pos = i;
		return true;
	}
	char c = s[i];
	if (is_digit(c))
		return lex_number(ps, i);
	if (c == '"' || c == '\'')
		return lex_string(ps, i);
	if (c == '.')
		return lex_selector(ps, i);
	if (is_alpha(c) || c == '_')
		return lex_word(ps, i);
	char d = i + 1 < n ? s[i + 1] : '\0';
	size_t l = 1;
	enum tok t;
	switch (c) {
	case '(': t = T_LP; break;
	case ')': t = T_RP; break;
	case '[': t = T_LB; break;
	case ']': t = T_RB; break;
	case ',': t = T_COMMA; break;
	case '/': t = T_DIV; break;
	case '%': t = T_MOD; break;
	case '+': t = T_ADD; break;
	case '-': t = T_SUB; break;
	case '*':
		t = d == '*' ? T_POW : T_MUL;
		break;
	case '!':
		t = d == '=' ? T_NE : T_NOT;
		break;
	case '<':
		t = d == '=' ? T_LE : T_LT;
		break;
	case '>':
		t = d == '=' ? T_GE : T_GT;
		break;
	case '=':
		if (d != '=')
			goto bad;
		t = T_EQ;
		break;
	case '&':
		if (d != '&')
			goto bad;
		t = T_AND;
		break;
	case '|':
		if (d != '|')
			goto bad;
		t = T_OR;
		break;
	default:
		goto bad;
	}
	if (t == T_POW || t == T_NE || t == T_LE || t == T_GE || t == T_EQ || t == T_AND ||
	    t == T_OR)
		l = 2;
	ps->tok = t;
	ps->tlen = l;
	ps->pos = i + l;
	return true;
bad:
	ps->tlen = 1;
	return fail_near(ps);
}

/* ------------------------------------------------------------------ */
/* parser and code generation                                           */

static bool emit(struct parser *ps, enum op op, uint32_t arg)
{
	struct ab_filter *f = ps->f;
	switch (op) {
	case OP_CONST:
	case OP_FIELD:
		if (ps->depth >= AB_FILTER_MAX_STACK)
			return fail(ps, "expression too complex near offset %zu", ps->tpos);
		ps->depth++;
		break;
	case OP_NOT:
	case OP_NEG:
	case OP_POS:
	case OP_BOOL:
		break;
	default: /* binary operators; and/or when they fall through */
		ps->depth--;
		break;
	}
	if (f->ncode == ps->cap_code) {
		ps->cap_code = ps->cap_code ? ps->cap_code * 2 : 16;
		f->code = ab_xrealloc(f->code, ps->cap_code * sizeof(*f->code));
	}
	f->code[f->ncode].op = (uint8_t)op;
	f->code[f->ncode].arg = arg;
	f->ncode++;
	return true;
}

static uint32_t add_const(struct parser *ps, struct val v)
{
	struct ab_filter *f = ps->f;
	if (f->nconsts == ps->cap_consts) {
		ps->cap_consts = ps->cap_consts ? ps->cap_consts * 2 : 8;
		f->consts = ab_xrealloc(f->consts, ps->cap_consts * sizeof(*f->consts));
	}
	f->consts[f->nconsts] = v;
	return f->nconsts++;
}

/* The scalar literal of the current token (number, string, null, true,
 * false), for constants and array elements; false if it is not one. */
static bool literal(struct parser *ps, struct val *v)
{
	memset(v, 0, sizeof(*v));
	switch (ps->tok) {
	case T_NUM:
		*v = num_val(ps->num);
		return true;
	case T_STR:
		v->type = V_STR;
		v->len = ps->slen;
		v->u.str = ps->str;
		return true;
	case T_NULL:
		v->type = V_NULL;
		return true;
	case T_TRUE:
		*v = num_val(1);
		return true;
	case T_FALSE:
		*v = num_val(0);
		return true;
	default:
		return false;
	}
}

static bool field_ref(struct parser *ps)
{
	struct ab_filter *f = ps->f;
	uint32_t i;
	for (i = 0; i < f->nfields; i++)
		if (f->fields[i].len == ps->slen && memcmp(f->fields[i].name, ps->str, ps->slen) == 0)
			break;
	if (i == f->nfields) {
		if (f->nfields == AB_FILTER_MAX_FIELDS)
			return fail(ps, "more than %d distinct selectors at offset %zu",
				    AB_FILTER_MAX_FIELDS, ps->tpos);
		if (f->nfields == ps->cap_fields) {
			ps->cap_fields = ps->cap_fields ? ps->cap_fields * 2 : 4;
			f->fields = ab_xrealloc(f->fields, ps->cap_fields * sizeof(*f->fields));
		}
		char *name = f->strs + ps->used_strs;
		memcpy(name, ps->str, ps->slen);
		ps->used_strs += ps->slen;
		f->fields[i].name = name;
		f->fields[i].len = ps->slen;
		f->nfields++;
	}
	return emit(ps, OP_FIELD, i);
}

/* [a, b, ...] of scalar literals, numbers with an optional sign. */
static bool parse_array(struct parser *ps)
{
	struct ab_filter *f = ps->f;
	size_t first = ps->used_elems;
	if (!lex(ps))
		return false;
	if (ps->tok != T_RB) {
		for (;;) {
			int sign = 0;
			if (ps->tok == T_SUB || ps->tok == T_ADD) {
				sign = ps->tok == T_SUB ? -1 : 1;
				if (!lex(ps))
					return false;
				if (ps->tok != T_NUM)
					return fail_near(ps);
			}
			struct val v;
			if (!literal(ps, &v))
				return fail_near(ps);
			if (sign < 0)
				v.u.num = -v.u.num;
			if (ps->used_elems == ps->cap_elems) /* cannot happen: sized from len */
				return fail(ps, "array too long at offset %zu", ps->tpos);
			f->elems[ps->used_elems++] = v;
			if (!lex(ps))
				return false;
			if (ps->tok == T_RB)
				break;
			if (ps->tok != T_COMMA)
				return fail_near(ps);
			if (!lex(ps))
				return false;
		}
	}
	struct val a = {.type = V_ARR, .len = (uint32_t)(ps->used_elems - first)};
	a.u.arr = f->elems + first;
	if (!emit(ps, OP_CONST, add_const(ps, a)))
		return false;
	return lex(ps);
}

static bool parse_or(struct parser *ps);

static bool parse_primary(struct parser *ps)
{
	struct val v;
	switch (ps->tok) {
	case T_SEL:
		if (!field_ref(ps))
			return false;
		return lex(ps);
	case T_LB:
		return parse_array(ps);
	case T_LP:
		if (++ps->nest > AB_FILTER_MAX_NEST)
			return fail(ps, "nesting deeper than %d at offset %zu", AB_FILTER_MAX_NEST,
				    ps->tpos);
		if (!lex(ps) || !parse_or(ps))
			return false;
		if (ps->tok != T_RP)
			return fail_near(ps);
		ps->nest--;
		return lex(ps);
	default:
		if (!literal(ps, &v))
			return fail_near(ps);
		if (!emit(ps, OP_CONST, add_const(ps, v)))
			return false;
		return lex(ps);
	}
}

/* Prefix operators, applied innermost first after their operand. */
static bool parse_unary(struct parser *ps)
{
	enum op ops[AB_FILTER_MAX_NEST];
	int n = 0;
	while (ps->tok == T_NOT || ps->tok == T_SUB || ps->tok == T_ADD) {
		if (n == AB_FILTER_MAX_NEST)
			return fail(ps, "more than %d unary operators in a row at offset %zu",
				    AB_FILTER_MAX_NEST, ps->tpos);
		ops[n++] = ps->tok == T_NOT ? OP_NOT : ps->tok == T_SUB ? OP_NEG : OP_POS;
		if (!lex(ps))
			return false;
	}
	if (!parse_primary(ps))
		return false;
	struct ab_filter *f = ps->f;
	while (n > 0) {
		enum op op = ops[--n];
		const struct insn *last = &f->code[f->ncode - 1];
		/* fold a sign into a numeric constant: -2 is a literal */
		if ((op == OP_NEG || op == OP_POS) && last->op == OP_CONST &&
		    f->consts[last->arg].type == V_NUM) {
			if (op == OP_NEG)
				f->consts[last->arg].u.num = -f->consts[last->arg].u.num;
			continue;
		}
		if (!emit(ps, op, 0))
			return false;
	}
	return true;
}

/* a ** b ** c: all operands, then all operators, which is
 * right-associative on a stack machine. */
static bool parse_pow(struct parser *ps)
{
	if (!parse_unary(ps))
		return false;
	uint32_t n = 0;
	while (ps->tok == T_POW) {
		if (!lex(ps) || !parse_unary(ps))
			return false;
		n++;
	}
	while (n--)
		if (!emit(ps, OP_POW, 0))
			return false;
	return true;
}

static bool parse_mul(struct parser *ps)
{
	if (!parse_pow(ps))
		return false;
	while (ps->tok == T_MUL || ps->tok == T_DIV || ps->tok == T_MOD) {
		enum op op = ps->tok == T_MUL ? OP_MUL : ps->tok == T_DIV ? OP_DIV : OP_MOD;
		if (!lex(ps) || !parse_pow(ps) || !emit(ps, op, 0))
			return false;
	}
	return true;
}

static bool parse_add(struct parser *ps)
{
	if (!parse_mul(ps))
		return false;
	while (ps->tok == T_ADD || ps->tok == T_SUB) {
		enum op op = ps->tok == T_ADD ? OP_ADD : OP_SUB;
		if (!lex(ps) || !parse_mul(ps) || !emit(ps, op, 0))
			return false;
	}
	return true;
}

static bool cmp_op(enum tok t, enum op *op)
{
	switch (t) {
	case T_EQ: *op = OP_EQ; return true;
	case T_NE: *op = OP_NE; return true;
	case T_LT: *op = OP_LT; return true;
	case T_LE: *op = OP_LE; return true;
	case T_GT: *op = OP_GT; return true;
	case T_GE: *op = OP_GE; return true;
	case T_IN: *op = OP_IN; return true;
	default: return false;
	}
}

static bool parse_cmp(struct parser *ps)
{
	if (!parse_add(ps))
		return false;
	enum op op;
	while (cmp_op(ps->tok, &op)) {
		if (!lex(ps) || !parse_add(ps) || !emit(ps, op, 0))
			return false;
	}
	return true;
}

/* a and b: a ANDJ L b BOOL L: (or likewise with ORJ) */
static bool parse_logic(struct parser *ps, enum tok t, enum op jump, bool (*operand)(struct parser *))
{
	if (!operand(ps))
		return false;
	while (ps->tok == t) {
		uint32_t at = ps->f->ncode;
		if (!emit(ps, jump, 0) || !lex(ps) || !operand(ps) || !emit(ps, OP_BOOL, 0))
			return false;
		ps->f->code[at].arg = ps->f->ncode;
	}
	return true;
}

static bool parse_and(struct parser *ps)
{
	return parse_logic(ps, T_AND, OP_ANDJ, parse_cmp);
}

static bool parse_or(struct parser *ps)
{
	return parse_logic(ps, T_OR, OP_ORJ, parse_and);
}

int ab_filter_compile(const char *expr, size_t len, struct ab_filter **out, char *err,
		      size_t errlen)
{
	struct parser ps = {.src = expr, .len = len, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	if (!out) {
		fail(&ps, "no place for the filter");
		return AB_EINVAL;
	}
	*out = NULL;
	if (!expr) {
		fail(&ps, "no expression");
		return AB_EINVAL;
	}
	if (len > AB_FILTER_MAX_EXPR) {
		fail(&ps, "expression longer than %d bytes", AB_FILTER_MAX_EXPR);
		return AB_EINVAL;
	}
	const char *nul = memchr(expr, '\0', len);
	if (nul) {
		fail(&ps, "NUL byte at offset %zu", (size_t)(nul - expr));
		return AB_EINVAL;
	}
	struct ab_filter *f = ab_xcalloc(1, sizeof(*f));
	/* Every decoded literal and name is no longer than its source, and
	 * an array element takes at least two bytes ("1," or "1]"). */
	f->strs = ab_xmalloc(len + 1);
	ps.cap_elems = len / 2 + 1;
	f->elems = ab_xmalloc(ps.cap_elems * sizeof(*f->elems));
	ps.f = f;
	if (lex(&ps)) {
		if (ps.tok == T_EOF)
			fail(&ps, "empty expression");
		else if (parse_or(&ps) && ps.tok != T_EOF)
			fail_near(&ps);
	}
	if (ps.failed) {
		ab_filter_free(f);
		return AB_EINVAL;
	}
	*out = f;
	return 0;
}

/* ------------------------------------------------------------------ */
/* evaluation                                                           */

/* A string's number: decimal text with optional surrounding blanks, the
 * empty string 0; false when it is no number, and for strings of 256
 * bytes or more (which this runs on at every comparison). */
static bool str_num(const struct val *v, double *out)
{
	const char *s = v->u.str;
	size_t n = v->len;
	while (n && is_blank(*s)) {
		s++;
		n--;
	}
	while (n && is_blank(s[n - 1]))
		n--;
	if (n == 0) {
		*out = 0;
		return true;
	}
	return n < 256 && parse_decimal(s, n, out);
}

static double to_num(const struct val *v)
{
	double d;
	switch (v->type) {
	case V_NUM:
		return v->u.num;
	case V_STR:
		return str_num(v, &d) ? d : NAN;
	case V_NULL:
		return 0;
	default:
		return NAN;
	}
}

static bool truthy(const struct val *v)
{
	switch (v->type) {
	case V_NUM:
		return v->u.num != 0 && !isnan(v->u.num);
	case V_STR:
		return v->len > 0;
	case V_ARR:
		return true;
	default:
		return false;
	}
}

static bool val_eq(const struct val *a, const struct val *b)
{
	if (a->type == V_STR && b->type == V_STR)
		return a->len == b->len && memcmp(a->u.str, b->u.str, a->len) == 0;
	if (a->type == V_NUM && b->type == V_NUM)
		return a->u.num == b->u.num;
	if (a->type == V_NULL || b->type == V_NULL)
		return a->type == b->type;
	if (a->type == V_ARR || b->type == V_ARR) {
		if (a->type != b->type || a->len != b->len)
			return false;
		/* elements are scalars, so this recursion is one level deep */
		for (uint32_t i = 0; i < a->len; i++)
			if (!val_eq(&a->u.arr[i], &b->u.arr[i]))
				return false;
		return true;
	}
	return to_num(a) == to_num(b);
}

/* -1, 0 or 1 as a is less than, equal to or greater than b; 2 when they
 * are unordered (a NaN). */
static int order(const struct val *a, const struct val *b)
{
	double x, y;
	if (a->type == V_STR && b->type == V_STR && !(str_num(a, &x) && str_num(b, &y))) {
		size_t n = a->len < b->len ? a->len : b->len;
		int c = n ? memcmp(a->u.str, b->u.str, n) : 0;
		if (c == 0)
			return a->len < b->len ? -1 : a->len > b->len;
		return c < 0 ? -1 : 1;
	}
	x = to_num(a);
	y = to_num(b);
	if (isnan(x) || isnan(y))
		return 2;
	return x < y ? -1 : x > y;
}

static bool val_in(const struct val *a, const struct val *b)
{
	if (b->type == V_ARR) {
		for (uint32_t i = 0; i < b->len; i++)
			if (val_eq(a, &b->u.arr[i]))
				return true;
		return false;
	}
	if (a->type == V_STR && b->type == V_STR) {
		if (a->len == 0)
			return true;
		return memmem(b->u.str, b->len, a->u.str, a->len) != NULL;
	}
	return false;
}

static double binop(enum op op, const struct val *a, const struct val *b)
{
	int o;
	switch (op) {
	case OP_POW: return pow(to_num(a), to_num(b));
	case OP_MUL: return to_num(a) * to_num(b);
	case OP_DIV: return to_num(a) / to_num(b);
	case OP_MOD: return fmod(to_num(a), to_num(b));
	case OP_ADD: return to_num(a) + to_num(b);
	case OP_SUB: return to_num(a) - to_num(b);
	case OP_EQ: return val_eq(a, b);
	case OP_NE: return !val_eq(a, b);
	case OP_IN: return val_in(a, b);
	case OP_LT: o = order(a, b); return o == -1;
	case OP_LE: o = order(a, b); return o == -1 || o == 0;
	case OP_GT: o = order(a, b); return o == 1;
	case OP_GE: o = order(a, b); return o == 1 || o == 0;
	default: return 0;
	}
}

/* Runs the code over the field values (all present and usable). The
 * compiler proved the stack never exceeds AB_FILTER_MAX_STACK and ends
 * with one value. */
static bool run(const struct ab_filter *f, const struct val *slots)
{
	struct val st[AB_FILTER_MAX_STACK];
	uint32_t sp = 0, pc = 0;
	while (pc < f->ncode) {
		const struct insn *in = &f->code[pc++];
		struct val *top = sp ? &st[sp - 1] : NULL;
		switch ((enum op)in->op) {
		case OP_CONST:
			st[sp++] = f->consts[in->arg];
			break;
		case OP_FIELD:
			st[sp++] = slots[in->arg];
			break;
		case OP_NOT:
			*top = num_val(!truthy(top));
			break;
		case OP_NEG:
			*top = num_val(-to_num(top));
			break;
		case OP_POS:
			*top = num_val(to_num(top));
			break;
		case OP_BOOL:
			*top = num_val(truthy(top));
			break;
		case OP_ANDJ:
			if (!truthy(top)) {
				*top = num_val(0);
				pc = in->arg;
			} else {
				sp--;
			}
			break;
		case OP_ORJ:
			if (truthy(top)) {
				*top = num_val(1);
				pc = in->arg;
			} else {
				sp--;
			}
			break;
		default:
			sp--;
			st[sp - 1] = num_val(binop((enum op)in->op, &st[sp - 1], &st[sp]));
			break;
		}
	}
	return sp == 1 && truthy(&st[0]);
}

/* ------------------------------------------------------------------ */
/* per-call arena: 4 KiB inline, then heap chunks                       */

struct chunk {
	struct chunk *next;
	max_align_t data[];
};

struct arena {
	char *cur, *lim;
	struct chunk *heap;
	union {
		max_align_t align;
		char bytes[4096];
	} inl;
};

static void arena_init(struct arena *a)
{
	a->cur = a->inl.bytes;
	a->lim = a->inl.bytes + sizeof(a->inl.bytes);
	a->heap = NULL;
}

/* n bytes aligned for a struct val; n is at most a few MiB (bounded by
 * AB_FILTER_MAX_JSON and AB_FILTER_MAX_ARRAY). */
static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if ((size_t)(a->lim - a->cur) < n) {
		size_t sz = n > 16384 ? n : 16384;
		struct chunk *c = ab_xmalloc(sizeof(*c) + sz);
		c->next = a->heap;
		a->heap = c;
		a->cur = (char *)c->data;
		a->lim = a->cur + sz;
	}
	void *p = a->cur;
	a->cur += n;
	return p;
}

static void arena_release(struct arena *a)
{
	while (a->heap) {
		struct chunk *c = a->heap;
		a->heap = c->next;
		free(c);
	}
}

/* ------------------------------------------------------------------ */
/* JSON scanning                                                        */

struct scan {
	const char *end;
	const struct ab_filter *f;
	struct val *slots;
	struct arena *arena;
};

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *skip_lit(const char *p, const char *end, const char *lit, size_t n)
{
	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

static const char *skip_value(const char *p, const char *end, int depth);

/* The object or array at p, which sits at nesting level depth. */
static const char *skip_container(const char *p, const char *end, int depth)
{
	if (depth > AB_FILTER_MAX_JSON_DEPTH)
		return NULL;
	bool obj = *p == '{';
	char close = obj ? '}' : ']';
	p = skip_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			bool esc;
			if (p >= end || *p != '"' || !(p = json_str_end(p + 1, end, &esc)))
				return NULL;
			p = skip_ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p = skip_ws(p + 1, end);
		}
		if (!(p = skip_value(p, end, depth)))
			return NULL;
		p = skip_ws(p, end);
		if (p >= end)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = skip_ws(p + 1, end);
	}
}

/* Checks and skips the value at p (no leading blanks), held by a
 * container at nesting level depth. NULL when it is not valid JSON. */
static const char *skip_value(const char *p, const char *end, int depth)
{
	bool esc;
	size_t n;
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		return json_str_end(p + 1, end, &esc);
	case '{':
	case '[':
		return skip_container(p, end, depth + 1);
	case 't':
		return skip_lit(p, end, "true", 4);
	case 'f':
		return skip_lit(p, end, "false", 5);
	case 'n':
		return skip_lit(p, end, "null", 4);
	default:
		n = json_number_len(p, end);
		return n ? p + n : NULL;
	}
}

/* Converts the scalar at p into v (V_BAD for a container). Returns the position after it, or NULL when the JSON
 * is invalid. */
static const char *scalar(struct scan *s, const char *p, struct val *v)
{
	const char *end = s->end, *q;
	bool esc;
	size_t n;
	memset(v, 0, sizeof(*v));
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		if (!(q = json_str_end(p + 1, end, &esc)))
			return NULL;
		n = (size_t)(q - 1 - (p + 1));
		v->type = V_STR;
		if (!esc) {
			v->u.str = p + 1;
			v->len = (uint32_t)n;
		} else {
			char *d = arena_alloc(s->arena, n);
			long k = decode_str(p + 1, n, d, n, false, NULL);
			if (k < 0) /* cannot happen after json_str_end() */
				return NULL;
			v->u.str = d;
			v->len = (uint32_t)k;
		}
		return q;
	case 't':
		*v = num_val(1);
		return skip_lit(p, end, "true", 4);
	case 'f':
		*v = num_val(0);
		return skip_lit(p, end, "false", 5);
	case 'n':
		v->type = V_NULL;
		return skip_lit(p, end, "null", 4);
	case '{':
	case '[':
		/* only top-level values get here (extract_array() sends no
		 * containers), and those sit at level 2 */
		v->type = V_BAD;
		return skip_container(p, end, 2);
	default:
		if (!(n = json_number_len(p, end)))
			return NULL;
		if (parse_decimal(p, n, &v->u.num))
			v->type = V_NUM;
		else
			v->type = V_BAD;
		return p + n;
	}
}

/* The array at p, a top-level value: checked whole first, counting its
 * elements, then converted when it is flat and not too long. */
static const char *extract_array(struct scan *s, const char *p, struct val *v)
{
	const char *end = s->end;
	uint32_t count = 0;
	bool flat = true;
	const char *q = skip_ws(p + 1, end);
	if (q < end && *q == ']') {
		v->type = V_ARR;
		v->len = 0;
		v->u.arr = NULL;
		return q + 1;
	}
	for (;;) {
		if (q < end && (*q == '[' || *q == '{'))
			flat = false;
		if (!(q = skip_value(q, end, 2)))
			return NULL;
		count++;
		q = skip_ws(q, end);
		if (q >= end)
			return NULL;
		if (*q == ']')
			break;
		if (*q != ',')
			return NULL;
		q = skip_ws(q + 1, end);
	}
	q++;
	if (!flat || count > AB_FILTER_MAX_ARRAY) {
		v->type = V_BAD;
		return q;
	}
	struct val *els = arena_alloc(s->arena, count * sizeof(*els));
	const char *r = skip_ws(p + 1, end);
	for (uint32_t i = 0; i < count; i++) {
		if (!(r = scalar(s, r, &els[i])))
			return NULL;
		if (els[i].type == V_BAD) {
			v->type = V_BAD;
			return q;
		}
		r = skip_ws(skip_ws(r, end) + 1, end); /* past ',' or ']' */
	}
	v->type = V_ARR;
	v->len = count;
	v->u.arr = els;
	return q;
}

/* Index of the field named by the JSON key body k[0..n), or -1. */
static int find_field(const struct ab_filter *f, const char *k, size_t n, bool esc)
{
	char buf[AB_FILTER_MAX_NAME];
	if (esc) {
		long d = decode_str(k, n, buf, sizeof(buf), false, NULL);
		if (d < 0)
			return -1;
		k = buf;
		n = (size_t)d;
	}
	for (uint32_t i = 0; i < f->nfields; i++)
		if (f->fields[i].len == n && f->fields[i].name[0] == k[0] &&
		    memcmp(f->fields[i].name, k, n) == 0)
			return (int)i;
	return -1;
}

/* One pass over the whole document: the top-level object's values for
 * our fields go to the slots, everything else is checked and skipped.
 * False when the text is not one valid JSON object. */
static bool scan_object(struct scan *s, const char *p)
{
	const char *end = s->end;
	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return false;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}') {
		p++;
	} else {
		for (;;) {
			bool esc;
			if (p >= end || *p != '"')
				return false;
			const char *k = p + 1;
			if (!(p = json_str_end(k, end, &esc)))
				return false;
			int idx = s->f->nfields ? find_field(s->f, k, (size_t)(p - 1 - k), esc) : -1;
			p = skip_ws(p, end);
			if (p >= end || *p != ':')
				return false;
			p = skip_ws(p + 1, end);
			if (idx >= 0 && s->slots[idx].type == V_NONE) {
				struct val *v = &s->slots[idx];
				if (p < end && *p == '[')
					p = extract_array(s, p, v);
				else
					p = scalar(s, p, v);
			} else {
				p = skip_value(p, end, 1);
			}
			if (!p)
				return false;
			p = skip_ws(p, end);
			if (p >= end)
				return false;
			if (*p == '}') {
				p++;
				break;
			}
			if (*p != ',')
				return false;
			p = skip_ws(p + 1, end);
		}
	}
	return skip_ws(p, end) == end;
}

bool ab_filter_match(const struct ab_filter *f, const char *json, size_t json_len)
{
	if (!f || !json || json_len == 0 || json_len > AB_FILTER_MAX_JSON)
		return false;
	struct val slots[AB_FILTER_MAX_FIELDS];
	for (uint32_t i = 0; i < f->nfields; i++)
		slots[i].type = V_NONE;
	struct arena a;
	arena_init(&a);
	struct scan s = {.end = json + json_len, .f = f, .slots = slots, .arena = &a};
	bool ok = scan_object(&s, json);
	for (uint32_t i = 0; ok && i < f->nfields; i++)
		if (slots[i].type == V_NONE || slots[i].type == V_BAD)
			ok = false;
	if (ok)
		ok = run(f, slots);
	arena_release(&a);
	return ok;
}
