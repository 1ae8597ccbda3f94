/*
 * fuzz_jsonfmt.c - libFuzzer target for the incremental JSON validator of
 * constrained generation (src/llm/jsonfmt.c). The input is the document
 * text; it is checked twice, with the default top-level rule (an object)
 * and with AB_JSONFMT_ANY_VALUE.
 *
 * Checks, beyond "no crash, no leak, no sanitizer report":
 *   - fed byte by byte and in one call, the same prefix is accepted (and
 *     ab_jsonfmt_offset names the refused byte); ab_jsonfmt_accepts
 *     agrees with feeding; a dead state stays dead;
 *   - after every accepted byte, _remaining() is >= 0, is 0 exactly when
 *     _complete() says so, and drops by at most one per byte (it is the
 *     fewest bytes to a complete document, so no byte can save two);
 *   - from the accepted prefix, bytes that each lower _remaining() by one
 *     always exist and complete the document in exactly _remaining()
 *     bytes, and the text so completed parses with jansson (so the
 *     validator never accepts a text that is no prefix of a document);
 *   - a whole input that the validator accepts as complete parses with
 *     jansson (an object unless ANY_VALUE); conversely, what jansson
 *     accepts (an object unless ANY_VALUE) within the validator's caps
 *     (depth, white-space run, number and exponent length) is accepted
 *     whole and complete.
 * jansson is asked to allow \u0000 and to read integers as reals, as the
 * validator does; it still refuses \u0000 in an object key, which RFC 8259
 * allows, so that one refusal is not held against the validator. jansson
 * is no judge of a text with a raw NUL byte (it takes "650" followed by a
 * NUL for a document), so the converse skips those; the validator refuses
 * every raw NUL.
 */
#include "common.h"
#include "jsonfmt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 16384

static void fail(const char *what, const uint8_t *s, size_t n, unsigned flags)
{
	fprintf(stderr, "fuzz_jsonfmt (flags %u): %s: %.*s\n", flags, what, (int)(n > 200 ? 200 : n),
		(const char *)s);
	abort();
}

/* jansson's verdict on s[0..n) as a document of the validator's top-level
 * rule: 1 accepted, 0 refused, -1 refused only for \u0000 in a key. */
static int jansson_ok(const uint8_t *s, size_t n, unsigned flags)
{
	json_error_t je;
	size_t jf = JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;
	if (flags & AB_JSONFMT_ANY_VALUE)
		jf |= JSON_DECODE_ANY;
	json_t *root = json_loadb((const char *)s, n, jf, &je);
	if (!root)
		return json_error_code(&je) == json_error_null_byte_in_key ? -1 : 0;
	bool ok = (flags & AB_JSONFMT_ANY_VALUE) || json_is_object(root);
	json_decref(root);
	return ok;
}

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether a valid JSON text s[0..n) stays within the validator's caps. */
static bool within_caps(const uint8_t *s, size_t n)
{
	int depth = 0;
	size_t ws = 0;
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			i++;
			ws = 0;
			continue;
		}
		if (is_ws(c)) {
			if (++ws > AB_JSONFMT_MAX_WS)
				return false;
			i++;
			continue;
		}
		ws = 0;
		if (c == '-' || (c >= '0' && c <= '9')) {
			size_t start = i, exp = 0;
			bool in_exp = false;
			for (; i < n && s[i] && strchr("0123456789+-.eE", s[i]); i++) {
				if (s[i] == 'e' || s[i] == 'E')
					in_exp = true;
				else if (in_exp && s[i] >= '0' && s[i] <= '9')
					exp++;
			}
			if (i - start > AB_JSONFMT_MAX_NUMBER || exp > AB_JSONFMT_MAX_EXP_DIGITS)
				return false;
			continue;
		}
		if (c == '[' || c == '{') {
			if (++depth > AB_JSONFMT_MAX_DEPTH)
				return false;
		} else if (c == ']' || c == '}') {
			depth--;
		}
		i++;
	}
	return true;
}

/* Completes the text of j with bytes that each lower _remaining() by one;
 * appends them to out. */
static void complete_greedily(struct ab_jsonfmt *j, struct ab_buf *out, const uint8_t *s, size_t n,
			      unsigned flags)
{
	int r = ab_jsonfmt_remaining(j);
	while (r > 0) {
		int c;
		for (c = 0; c < 256; c++) {
			struct ab_jsonfmt t = *j;
			unsigned char b = (unsigned char)c;
			if (ab_jsonfmt_feed(&t, &b, 1) == 0 && ab_jsonfmt_remaining(&t) == r - 1) {
				*j = t;
				ab_buf_append(out, &b, 1);
				break;
			}
		}
		if (c == 256)
			fail("no byte brings the document closer to complete", s, n, flags);
		r--;
	}
	if (!ab_jsonfmt_complete(j))
		fail("remaining() reached 0 on an incomplete document", s, n, flags);
}

static void check(const uint8_t *s, size_t n, unsigned flags)
{
	/* byte by byte */
	struct ab_jsonfmt j;
	ab_jsonfmt_init(&j, flags);
	if (ab_jsonfmt_remaining(&j) <= 0 || ab_jsonfmt_complete(&j))
		fail("the empty text counts as complete", s, n, flags);
	struct ab_jsonfmt prefix = j; /* the state after the accepted prefix */
	size_t accepted = 0;
	bool dead = false;
	for (size_t i = 0; i < n; i++) {
		int before = ab_jsonfmt_remaining(&j);
		bool acc = ab_jsonfmt_accepts(&j, s + i, 1);
		if (ab_jsonfmt_feed(&j, s + i, 1) != 0) {
			if (acc)
				fail("accepts() said yes, feed() refused", s, n, flags);
			if (ab_jsonfmt_offset(&j) != i)
				fail("offset() is not the refused byte", s, n, flags);
			if (ab_jsonfmt_remaining(&j) != -1 || ab_jsonfmt_complete(&j))
				fail("a dead state looks alive", s, n, flags);
			if (ab_jsonfmt_feed(&j, "}", 1) == 0 || ab_jsonfmt_offset(&j) != i)
				fail("a dead state came back", s, n, flags);
			dead = true;
			break;
		}
		if (!acc)
			fail("accepts() said no, feed() accepted", s, n, flags);
		int after = ab_jsonfmt_remaining(&j);
		if (after < 0)
			fail("remaining() < 0 after an accepted byte", s, n, flags);
		if ((after == 0) != ab_jsonfmt_complete(&j))
			fail("remaining() == 0 and complete() disagree", s, n, flags);
		if (after < before - 1)
			fail("one byte lowered remaining() by more than one", s, n, flags);
		accepted = i + 1;
		prefix = j;
	}
	if (!dead && ab_jsonfmt_offset(&j) != n)
		fail("offset() is not the bytes accepted", s, n, flags);

	/* in one call */
	struct ab_jsonfmt w;
	ab_jsonfmt_init(&w, flags);
	int rc = ab_jsonfmt_feed(&w, s, n);
	size_t accepted_whole = rc == 0 ? n : (size_t)ab_jsonfmt_offset(&w);
	if (accepted_whole != accepted || (rc == 0) == dead)
		fail("byte by byte and one call accept different prefixes", s, n, flags);
	if (!dead && (ab_jsonfmt_complete(&w) != ab_jsonfmt_complete(&j) ||
		      ab_jsonfmt_remaining(&w) != ab_jsonfmt_remaining(&j)))
		fail("byte by byte and one call end in different states", s, n, flags);

	/* the accepted prefix is a prefix of a document jansson reads */
	struct ab_buf doc = {0};
	ab_buf_append(&doc, s, accepted);
	complete_greedily(&prefix, &doc, s, n, flags);
	if (jansson_ok((const uint8_t *)doc.data, doc.len, flags) == 0)
		fail("the completed prefix does not parse with jansson", (const uint8_t *)doc.data,
		     doc.len, flags);
	ab_buf_free(&doc);

	/* whole documents: the validator and jansson agree */
	bool ours = !dead && ab_jsonfmt_complete(&j);
	int theirs = jansson_ok(s, n, flags);
	if (ours && theirs == 0)
		fail("the validator accepts, jansson refuses", s, n, flags);
	if (theirs == 1 && !ours && !memchr(s, 0, n) && within_caps(s, n))
		fail("jansson accepts within the caps, the validator refuses", s, n, flags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		size = MAX_INPUT;
	check(data, size, 0);
	check(data, size, AB_JSONFMT_ANY_VALUE);
	return 0;
}
