/* test_utf8.c - the UTF-8 sanitiser (utf8.h): valid text passes byte for
 * byte, split characters come out whole, and every ill-formed subpart of
 * Unicode's table 3-7 becomes exactly one U+FFFD, whatever the pieces. */
#include <criterion/criterion.h>
#include <string.h>

#include "utf8.h"

#define R AB_UTF8_REPLACEMENT

/* An independent validator for the checks: decodes code points by
 * arithmetic and refuses overlong forms, surrogates and values above
 * U+10FFFF. */
static bool ref_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (len == 0 || i + len > n)
			return false;
		unsigned cp = len == 1 ? c : c & (0x7F >> len);
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* Feeds s in pieces of `step` bytes (0: all at once), flushes, and
 * checks the result. */
static void check_step(const char *s, size_t n, const char *want, size_t step)
{
	struct ab_utf8 u;
	struct ab_buf out = {0};
	ab_utf8_init(&u);
	if (step == 0)
		step = n ? n : 1;
	for (size_t i = 0; i < n; i += step) {
		size_t k = n - i < step ? n - i : step;
		ab_utf8_feed(&u, s + i, k, &out);
		cr_assert_leq(ab_utf8_pending(&u), 3);
		/* what came out so far is always valid UTF-8 */
		cr_assert(ref_valid((const unsigned char *)out.data, out.len));
	}
	ab_utf8_flush(&u, &out);
	cr_assert_eq(ab_utf8_pending(&u), 0);
	size_t wn = strlen(want);
	cr_assert_eq(out.len, wn, "step %zu: %zu bytes out, want %zu", step, out.len, wn);
	cr_assert(wn == 0 || memcmp(out.data, want, wn) == 0, "step %zu: wrong bytes", step);
	ab_buf_free(&out);
}

static void check(const char *s, const char *want)
{
	size_t n = strlen(s);
	for (size_t step = 0; step <= 4; step++)
		check_step(s, n, want, step);
}

Test(utf8, valid_text_passes_unchanged)
{
	const char *ok[] = {"", "plain ascii", "caf\xC3\xA9", "\xE2\x80\x99quote\xE2\x80\x99",
			    "\xF0\x9F\x98\x80 smile", "\xED\x9F\xBF", "\xEE\x80\x80",
			    "\xF4\x8F\xBF\xBF", "\xF0\x90\x80\x80", "\xE0\xA0\x80", "\xC2\x80",
			    "\xEF\xBF\xBD literal replacement"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		check(ok[i], ok[i]);
		cr_assert(ab_utf8_valid(ok[i], strlen(ok[i])), "%zu", i);
		cr_assert(ref_valid((const unsigned char *)ok[i], strlen(ok[i])), "%zu", i);
	}
}

Test(utf8, nul_is_kept)
{
	struct ab_utf8 u;
	struct ab_buf out = {0};
	ab_utf8_init(&u);
	ab_utf8_feed(&u, "a\0b", 3, &out);
	ab_utf8_flush(&u, &out);
	cr_assert_eq(out.len, 3);
	cr_assert(memcmp(out.data, "a\0b", 3) == 0);
	ab_buf_free(&out);
}

Test(utf8, split_character_comes_out_whole)
{
	struct ab_utf8 u;
	struct ab_buf out = {0};
	ab_utf8_init(&u);
	ab_utf8_feed(&u, "x\xF0\x9F", 3, &out);
	cr_assert_eq(out.len, 1);
	cr_assert_eq(ab_utf8_pending(&u), 2);
	ab_utf8_feed(&u, "\x98", 1, &out);
	cr_assert_eq(out.len, 1);
	cr_assert_eq(ab_utf8_pending(&u), 3);
	ab_utf8_feed(&u, "\x80y", 2, &out);
	cr_assert_eq(ab_utf8_pending(&u), 0);
	cr_assert_eq(out.len, 6);
	cr_assert(memcmp(out.data, "x\xF0\x9F\x98\x80y", 6) == 0);
	ab_buf_free(&out);
}

Test(utf8, invalid_lead_bytes)
{
	check("\x80", R);
	check("a\xBF" "b", "a" R "b");
	check("\xC0\xAF", R R);   /* overlong 2-byte lead */
	check("\xC1\xBF", R R);
	check("\xF5\x80\x80\x80", R R R R);
	check("\xF8\x88\x80\x80\x80", R R R R R);
	check("\xFE\xFF", R R);
}

Test(utf8, bad_continuations)
{
	check("\xC3" "a", R "a");
	check("\xE2\x80" "a", R "a");
	check("\xF0\x9F\x98" "a", R "a");
	check("\xE2\xE2\x80\x99", R "\xE2\x80\x99"); /* the second lead starts over */
	check("\xC3\xC3\xA9", R "\xC3\xA9");
	check("\xE2\x80\x80\x80", "\xE2\x80\x80" R); /* one continuation too many */
}

Test(utf8, overlong_surrogates_and_out_of_range)
{
	check("\xE0\x80\xAF", R R R);      /* overlong 3-byte: E0 needs A0..BF */
	check("\xE0\x9F\xBF", R R R);
	check("\xF0\x80\x80\xAF", R R R R); /* overlong 4-byte: F0 needs 90..BF */
	check("\xF0\x8F\xBF\xBF", R R R R);
	check("\xED\xA0\x80", R R R);      /* U+D800 */
	check("\xED\xBF\xBF", R R R);      /* U+DFFF */
	check("\xF4\x90\x80\x80", R R R R); /* U+110000 */
}

Test(utf8, incomplete_at_the_end)
{
	check("ok\xE2", "ok" R);
	check("ok\xE2\x80", "ok" R);
	check("ok\xF0\x9F\x98", "ok" R);
	check("\xF4\x8F", R);
}

Test(utf8, every_two_byte_start_against_a_reference)
{
	/* a coarse fuzz against the reference: whatever comes in, what goes
	 * out is valid, ab_utf8_valid agrees, and valid input is unchanged */
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			unsigned char in[4] = {(unsigned char)a, (unsigned char)b, 0xA9, 'z'};
			struct ab_utf8 u;
			struct ab_buf out = {0};
			ab_utf8_init(&u);
			ab_utf8_feed(&u, in, 1, &out);
			ab_utf8_feed(&u, in + 1, 3, &out);
			ab_utf8_flush(&u, &out);
			cr_assert(ref_valid((const unsigned char *)out.data, out.len), "%02x %02x", a,
				  b);
			cr_assert_eq(ab_utf8_valid(in, 4), ref_valid(in, 4), "%02x %02x", a, b);
			if (ref_valid(in, 4))
				cr_assert(out.len == 4 && memcmp(out.data, in, 4) == 0);
			ab_buf_free(&out);
		}
	}
}
