/*
 * utf8.c - the UTF-8 sanitiser of utf8.h: a byte-at-a-time decoder of the
 * well-formed sequences of Unicode's table 3-7, which copies valid
 * characters, holds an unfinished one between calls and writes U+FFFD for
 * each maximal ill-formed subpart. ASCII runs are copied in one go.
 */
#include "utf8.h"

#include <string.h>

void ab_utf8_init(struct ab_utf8 *u)
{
	memset(u, 0, sizeof(*u));
}

/* Starts a character at lead byte c: returns false when c cannot start one. */
static bool start(struct ab_utf8 *u, unsigned char c)
{
	unsigned char need, lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0; /* overlong below U+0800 */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates U+D800..U+DFFF */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return false; /* 0x80..0xC1 (continuation, overlong 2-byte), 0xF5..0xFF */
	}
	u->held[0] = c;
	u->n_held = 1;
	u->need = need;
	u->lo = lo;
	u->hi = hi;
	return true;
}

static void reset(struct ab_utf8 *u)
{
	u->n_held = 0;
	u->need = 0;
}

void ab_utf8_feed(struct ab_utf8 *u, const void *s, size_t n, struct ab_buf *out)
{
	const unsigned char *p = s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		if (u->need) {
			if (c >= u->lo && c <= u->hi) {
				u->held[u->n_held++] = c;
				u->lo = 0x80;
				u->hi = 0xBF;
				if (--u->need == 0) {
					ab_buf_append(out, u->held, u->n_held);
					reset(u);
				}
				i++;
				continue;
			}
			/* the character breaks off here: its bytes so far are one
			 * maximal subpart; c is looked at again as a new start */
			ab_buf_append(out, AB_UTF8_REPLACEMENT, 3);
			reset(u);
			continue;
		}
		if (c < 0x80) {
			size_t k = i + 1;
			while (k < n && p[k] < 0x80)
				k++;
			ab_buf_append(out, p + i, k - i);
			i = k;
			continue;
		}
		if (!start(u, c))
			ab_buf_append(out, AB_UTF8_REPLACEMENT, 3);
		i++;
	}
}

void ab_utf8_flush(struct ab_utf8 *u, struct ab_buf *out)
{
	if (u->need)
		ab_buf_append(out, AB_UTF8_REPLACEMENT, 3);
	reset(u);
}

size_t ab_utf8_pending(const struct ab_utf8 *u)
{
	return u->need ? u->n_held : 0;
}

bool ab_utf8_valid(const void *s, size_t n)
{
	struct ab_utf8 u;
	struct ab_buf b = {0};
	ab_utf8_init(&u);
	ab_utf8_feed(&u, s, n, &b);
	bool ok = u.need == 0 && b.len == n && (n == 0 || memcmp(b.data, s, n) == 0);
	ab_buf_free(&b);
	return ok;
}
