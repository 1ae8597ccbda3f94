/*
 * fuzz_utf8.c - libFuzzer target for the UTF-8 sanitiser (src/core/utf8.c).
 * The whole input is the byte stream; its first two bytes also seed the
 * sizes of the pieces (0 to 7 bytes, empty feeds included) in which it is
 * fed, so a character is split across calls in every possible way.
 *
 * Checks, beyond "no crash, no leak, no sanitizer report":
 *   - the output is valid UTF-8, by a strict decoder of our own that
 *     works on code points (no overlong forms, no surrogates, nothing
 *     above U+10FFFF, no truncated sequence);
 *   - fed in pieces, in one call and byte by byte, the output is the same;
 *   - it equals a reference written here from Unicode's rule (one U+FFFD
 *     per maximal subpart of an ill-formed sequence, one for a sequence
 *     cut off by the end), so no byte is dropped or over-replaced;
 *   - valid input comes out unchanged (and ab_utf8_valid agrees with the
 *     strict decoder); the output is never longer than 3 * input + 3;
 *   - at most 3 bytes are ever held back, none after a flush.
 */
#include "common.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 65536

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_utf8: %s\n", what);
	abort();
}

/* Strict UTF-8: decodes each sequence to its code point and rejects
 * overlong forms, surrogates and values above U+10FFFF. */
static bool strict_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
			min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* The allowed range of the k-th byte (k >= 1) of a sequence led by c. */
static void cont_range(unsigned char c, size_t k, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xBF;
	if (k != 1)
		return;
	if (c == 0xE0)
		*lo = 0xA0;
	else if (c == 0xED)
		*hi = 0x9F;
	else if (c == 0xF0)
		*lo = 0x90;
	else if (c == 0xF4)
		*hi = 0x8F;
}

/* The expected output, from the whole input at once: valid sequences are
 * copied, each maximal subpart of an ill-formed one becomes U+FFFD. */
static void reference(const unsigned char *s, size_t n, struct ab_buf *out)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t len = 0;
		if (c < 0x80)
			len = 1;
		else if (c >= 0xC2 && c <= 0xDF)
			len = 2;
		else if (c >= 0xE0 && c <= 0xEF)
			len = 3;
		else if (c >= 0xF0 && c <= 0xF4)
			len = 4;
		if (len == 0) {
			ab_buf_append(out, AB_UTF8_REPLACEMENT, 3);
			i++;
			continue;
		}
		size_t k = 1;
		while (k < len && i + k < n) {
			unsigned char lo, hi;
			cont_range(c, k, &lo, &hi);
			if (s[i + k] < lo || s[i + k] > hi)
				break;
			k++;
		}
		if (k == len)
			ab_buf_append(out, s + i, len);
		else
			ab_buf_append(out, AB_UTF8_REPLACEMENT, 3);
		i += k;
	}
}

static void check_pending(const struct ab_utf8 *u)
{
	if (ab_utf8_pending(u) > 3)
		fail("more than 3 bytes held back");
}

/* Feeds s in pieces of the sizes given by the seed (size 0 feeds nothing). */
static void feed_pieces(const unsigned char *s, size_t n, uint32_t seed, struct ab_buf *out)
{
	struct ab_utf8 u;
	ab_utf8_init(&u);
	uint32_t x = seed * 2654435761u + 1;
	size_t i = 0;
	while (i < n) {
		x = x * 1103515245u + 12345u;
		size_t piece = (x >> 16) & 7;
		if (piece > n - i)
			piece = n - i;
		ab_utf8_feed(&u, s + i, piece, out);
		check_pending(&u);
		i += piece;
	}
	ab_utf8_flush(&u, out);
	if (ab_utf8_pending(&u) != 0)
		fail("bytes held after flush");
}

static void feed_bytes(const unsigned char *s, size_t n, struct ab_buf *out)
{
	struct ab_utf8 u;
	ab_utf8_init(&u);
	for (size_t i = 0; i < n; i++) {
		ab_utf8_feed(&u, s + i, 1, out);
		check_pending(&u);
	}
	ab_utf8_flush(&u, out);
}

static bool same(const struct ab_buf *a, const struct ab_buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		size = MAX_INPUT;
	const unsigned char *s = data;
	uint32_t seed = size ? data[0] : 0;
	if (size > 1)
		seed |= (uint32_t)data[1] << 8;

	struct ab_buf pieces = {0}, whole = {0}, bytes = {0}, ref = {0};
	feed_pieces(s, size, seed, &pieces);

	struct ab_utf8 u;
	ab_utf8_init(&u);
	ab_utf8_feed(&u, s, size, &whole);
	check_pending(&u);
	ab_utf8_flush(&u, &whole);

	feed_bytes(s, size, &bytes);
	reference(s, size, &ref);

	if (!strict_valid((const unsigned char *)pieces.data, pieces.len))
		fail("output is not valid UTF-8");
	if (!same(&pieces, &whole))
		fail("pieces and one call differ");
	if (!same(&bytes, &whole))
		fail("byte by byte and one call differ");
	if (!same(&whole, &ref))
		fail("output differs from the maximal-subpart reference");
	if (whole.len > 3 * size + 3)
		fail("output longer than 3 * input + 3");

	bool valid = strict_valid(s, size);
	if (valid != ab_utf8_valid(s, size))
		fail("ab_utf8_valid disagrees with the strict decoder");
	if (valid) {
		struct ab_buf in = {0};
		ab_buf_append(&in, s, size);
		if (!same(&in, &whole))
			fail("valid input did not pass through unchanged");
		ab_buf_free(&in);
	}

	ab_buf_free(&pieces);
	ab_buf_free(&whole);
	ab_buf_free(&bytes);
	ab_buf_free(&ref);
	return 0;
}
