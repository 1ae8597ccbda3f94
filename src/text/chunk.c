/*
 * chunk.c - the sentence splitter and the chunker of chunk.h.
 *
 * Everything works on byte offsets into the caller's text, which is never
 * modified; code points are decoded on the fly with utf8proc_iterate, an
 * invalid byte reading as one non-space character, so no input can make
 * a scan leave the buffer or stall.
 *
 * The chunker runs in three passes:
 *   1. lines: Markdown headings (outside code fences) cut the text into
 *      sections, each with its heading path from a stack of six levels;
 *   2. units: each section's body is split into sentences, and a sentence
 *      longer than the target is cut between words into pieces that fit;
 *   3. packing: units are taken greedily while they fit in the target;
 *      a new chunk starts with the overlap taken from the end of the
 *      previous one (whole units, else words), shrunk when the first new
 *      unit would not fit beside it, and always takes at least one new
 *      unit, so every pass makes progress.
 */
#include "chunk.h"

#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define NONE ((size_t)-1)

/* ---- code points ---- */

/* The code point at s[i] (n bytes long, 1 for an invalid byte: -1). */
static int32_t cp_at(const char *s, size_t len, size_t i, size_t *n)
{
	const uint8_t *p = (const uint8_t *)s + i;
	if (p[0] < 0x80) {
		*n = 1;
		return p[0];
	}
	utf8proc_int32_t c;
	size_t rest = len - i;
	utf8proc_ssize_t r = utf8proc_iterate(p, rest > 4 ? 4 : (utf8proc_ssize_t)rest, &c);
	if (r <= 0) {
		*n = 1;
		return -1;
	}
	*n = (size_t)r;
	return c;
}

static bool is_space(int32_t c)
{
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')
		return true;
	if (c < 0x80)
		return false;
	if (c == 0x85)
		return true;
	utf8proc_category_t k = utf8proc_category(c);
	return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL ||
	       k == UTF8PROC_CATEGORY_ZP;
}

static bool is_ideograph(int32_t c)
{
	return (c >= 0x3040 && c <= 0x30ff) || (c >= 0x31f0 && c <= 0x31ff) ||
	       (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) ||
	       (c >= 0xf900 && c <= 0xfaff) || (c >= 0x20000 && c <= 0x3134f);
}

static bool is_lower(int32_t c)
{
	if (c < 0)
		return false;
	if (c < 0x80)
		return c >= 'a' && c <= 'z';
	return utf8proc_category(c) == UTF8PROC_CATEGORY_LL;
}

static bool is_upper(int32_t c)
{
	if (c < 0)
		return false;
	if (c < 0x80)
		return c >= 'A' && c <= 'Z';
	utf8proc_category_t k = utf8proc_category(c);
	return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT;
}

/* Sentence-final marks that need white space after them, and the CJK ones
 * that do not. */
static bool is_terminal(int32_t c)
{
	return c == '.' || c == '!' || c == '?' || c == 0x2026 || c == 0xff0e;
}

static bool is_cjk_terminal(int32_t c)
{
	return c == 0x3002 || c == 0xff01 || c == 0xff1f;
}

static bool is_closer(int32_t c)
{
	return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}' || c == 0x2019 ||
	       c == 0x201d || c == 0xbb || c == 0x300d || c == 0x300f || c == 0xff09;
}

size_t ab_text_count_tokens(const char *text, size_t len)
{
	size_t count = 0, i = 0, n;
	bool in_run = false;
	if (!text)
		return 0;
	while (i < len) {
		int32_t c = cp_at(text, len, i, &n);
		if (is_space(c)) {
			in_run = false;
		} else if (is_ideograph(c)) {
			count++;
			in_run = false;
		} else if (!in_run) {
			count++;
			in_run = true;
		}
		i += n;
	}
	return count;
}

/* ---- sentences ---- */

struct spans {
	struct ab_text_span *v;
	size_t n, cap;
};

static void spans_push(struct spans *s, size_t start, size_t end)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = ab_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = (struct ab_text_span){start, end};
}

/* Closes the sentence [start, end) with trailing white space trimmed. */
static void close_sentence(const char *s, size_t start, size_t end, struct spans *out)
{
	while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\n' ||
			       s[end - 1] == '\r' || s[end - 1] == '\f' || s[end - 1] == '\v'))
		end--;
	if (end > start)
		spans_push(out, start, end);
}

/* Whether the line at s[i..] starts a Markdown list item or table row. */
static bool starts_list_item(const char *s, size_t len, size_t i)
{
	size_t j = i, ind = 0;
	while (j < len && s[j] == ' ' && ind < 4) {
		j++;
		ind++;
	}
	if (j >= len)
		return false;
	if (s[j] == '|')
		return true;
	if ((s[j] == '-' || s[j] == '*' || s[j] == '+') && j + 1 < len &&
	    (s[j + 1] == ' ' || s[j + 1] == '\t'))
		return true;
	size_t d = 0;
	while (j + d < len && d < 10 && s[j + d] >= '0' && s[j + d] <= '9')
		d++;
	return d > 0 && d < 10 && j + d + 1 < len && (s[j + d] == '.' || s[j + d] == ')') &&
	       (s[j + d + 1] == ' ' || s[j + d + 1] == '\t');
}

static bool word_in(const char *w, size_t n, const char *const *list, size_t count)
{
	char low[8];
	if (n == 0 || n >= sizeof(low))
		return false;
	for (size_t i = 0; i < n; i++)
		low[i] = (w[i] >= 'A' && w[i] <= 'Z') ? (char)(w[i] - 'A' + 'a') : w[i];
	for (size_t i = 0; i < count; i++)
		if (strlen(list[i]) == n && memcmp(list[i], low, n) == 0)
			return true;
	return false;
}

/* Never the end of a sentence, whatever follows. */
static const char *const titles[] = {
	"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "gen", "sen", "rep",
	"gov", "capt", "col", "lt", "sgt", "e.g", "i.e", "cf", "viz", "approx", "ca",
};
/* The end of a sentence only when a capital follows. */
static const char *const abbrevs[] = {
	"etc", "vs", "fig", "figs", "eq", "eqs", "no", "nos", "vol", "vols", "pp", "p",
	"al", "inc", "ltd", "co", "corp", "dept", "jan", "feb", "mar", "apr", "jun", "jul",
	"aug", "sep", "sept", "oct", "nov", "dec", "ref", "refs", "sec", "ch", "ed", "eds",
	"est", "min", "max", "resp", "ibid", "op",
};

/* Whether the full stop at s[dot] (in a sentence begun at start) ends the
 * sentence, given the first code point `next` after the white space. */
static bool dot_ends_sentence(const char *s, size_t start, size_t dot, int32_t next)
{
	size_t ws = dot;
	/* back to the white space before the word (ASCII is enough: multi-byte
	 * white space is rare there and its bytes are never ASCII) */
	while (ws > start && s[ws - 1] != ' ' && s[ws - 1] != '\t' && s[ws - 1] != '\n' &&
	       s[ws - 1] != '\r' && s[ws - 1] != '\f' && s[ws - 1] != '(' && s[ws - 1] != '"')
		ws--;
	size_t wn = dot - ws;
	if (wn == 0)
		return true; /* a detached " . " */
	const char *w = s + ws;
	if (word_in(w, wn, titles, AB_ARRAY_LEN(titles)))
		return false;
	bool single = wn == 1 && ((w[0] >= 'a' && w[0] <= 'z') || (w[0] >= 'A' && w[0] <= 'Z'));
	if (single)
		return false; /* an initial: "J. Smith" */
	bool dotted = memchr(w, '.', wn) != NULL; /* "U.S" */
	if (dotted || word_in(w, wn, abbrevs, AB_ARRAY_LEN(abbrevs)))
		return is_upper(next);
	return !is_lower(next);
}

static void split_into(const char *s, size_t base, size_t len, struct spans *out)
{
	size_t i = base, start = NONE, n;
	while (i < len) {
		int32_t c = cp_at(s, len, i, &n);
		if (c == '\n') {
			size_t j = i + 1;
			while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\f' ||
					   s[j] == '\v'))
				j++;
			if (start != NONE && (j >= len || s[j] == '\n' || starts_list_item(s, len, i + 1))) {
				close_sentence(s, start, i, out);
				start = NONE;
			}
			i++;
			continue;
		}
		if (is_space(c)) {
			i += n;
			continue;
		}
		if (start == NONE)
			start = i;
		if (!is_terminal(c) && !is_cjk_terminal(c)) {
			i += n;
			continue;
		}
		size_t e = i + n, n2;
		while (e < len) {
			int32_t c2 = cp_at(s, len, e, &n2);
			if (!is_terminal(c2) && !is_cjk_terminal(c2) && !is_closer(c2))
				break;
			e += n2;
		}
		if (is_cjk_terminal(c)) {
			close_sentence(s, start, e, out);
			start = NONE;
			i = e;
			continue;
		}
		if (e < len && !is_space(cp_at(s, len, e, &n2))) {
			i = e; /* "3.14", "example.com", "?!x" */
			continue;
		}
		size_t k = e;
		int32_t next = -1;
		while (k < len) {
			next = cp_at(s, len, k, &n2);
			if (!is_space(next))
				break;
			k += n2;
		}
		bool ends;
		if (k >= len)
			ends = true;
		else if (c == '.')
			ends = dot_ends_sentence(s, start, i, next);
		else
			ends = !is_lower(next);
		if (ends) {
			close_sentence(s, start, e, out);
			start = NONE;
		}
		i = e;
	}
	if (start != NONE)
		close_sentence(s, start, len, out);
}

size_t ab_text_sentences(const char *text, size_t len, struct ab_text_span **out)
{
	struct spans sp = {0};
	if (text)
		split_into(text, 0, len, &sp);
	*out = sp.v;
	return sp.n;
}

/* ---- sections (Markdown headings) ---- */

struct section {
	size_t start, end; /* the body */
	char *heading;
	uint32_t depth;
};

struct sections {
	struct section *v;
	size_t n, cap;
};

/* Appends a copy of s[0..n) to b without invalid UTF-8 and with form
 * feeds as newlines. */
static void append_clean(struct ab_buf *b, const char *s, size_t n)
{
	size_t i = 0, cn;
	while (i < n) {
		int32_t c = cp_at(s, n, i, &cn);
		if (c == '\f')
			ab_buf_putc(b, '\n');
		else if (c > 0)
			ab_buf_append(b, s + i, cn);
		i += cn;
	}
}

struct hstack {
	char *level[6];
};

static char *heading_path(const struct hstack *h, uint32_t *depth)
{
	struct ab_buf b = {0};
	uint32_t d = 0;
	ab_buf_puts(&b, "");
	for (int i = 0; i < 6; i++) {
		if (!h->level[i] || !h->level[i][0])
			continue;
		if (d++)
			ab_buf_puts(&b, " > ");
		ab_buf_puts(&b, h->level[i]);
	}
	*depth = d;
	return ab_buf_steal(&b);
}

static void hstack_set(struct hstack *h, int level, const char *s, size_t n)
{
	for (int i = level - 1; i < 6; i++) {
		free(h->level[i]);
		h->level[i] = NULL;
	}
	struct ab_buf b = {0};
	ab_buf_puts(&b, "");
	while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	append_clean(&b, s, n);
	h->level[level - 1] = ab_buf_steal(&b);
}

static void sections_push(struct sections *ss, const struct hstack *h, size_t start, size_t end)
{
	if (ss->n == ss->cap) {
		ss->cap = ss->cap ? ss->cap * 2 : 8;
		ss->v = ab_xrealloc(ss->v, ss->cap * sizeof(*ss->v));
	}
	struct section *sec = &ss->v[ss->n++];
	sec->start = start;
	sec->end = end;
	sec->heading = heading_path(h, &sec->depth);
}

/* An ATX heading on line [ls, le): its level (1-6) and text, or 0. */
static int atx_heading(const char *s, size_t ls, size_t le, size_t *ts, size_t *te)
{
	size_t i = ls, ind = 0;
	while (i < le && s[i] == ' ' && ind < 3) {
		i++;
		ind++;
	}
	int level = 0;
	while (i < le && s[i] == '#' && level < 7) {
		i++;
		level++;
	}
	if (level == 0 || level > 6 || (i < le && s[i] != ' ' && s[i] != '\t'))
		return 0;
	size_t e = le;
	while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r'))
		e--;
	size_t h = e;
	while (h > i && s[h - 1] == '#')
		h--;
	if (h < e && (h == i || s[h - 1] == ' ' || s[h - 1] == '\t'))
		e = h; /* a closing run of #s */
	*ts = i;
	*te = e;
	return level;
}

static bool is_fence(const char *s, size_t ls, size_t le)
{
	size_t i = ls, ind = 0;
	while (i < le && s[i] == ' ' && ind < 3) {
		i++;
		ind++;
	}
	return i + 3 <= le && ((s[i] == '`' && s[i + 1] == '`' && s[i + 2] == '`') ||
			       (s[i] == '~' && s[i + 1] == '~' && s[i + 2] == '~'));
}

/* A setext underline (=== gives 1, --- gives 2), or 0. */
static int setext_level(const char *s, size_t ls, size_t le)
{
	size_t i = ls, ind = 0;
	while (i < le && s[i] == ' ' && ind < 3) {
		i++;
		ind++;
	}
	if (i >= le || (s[i] != '=' && s[i] != '-'))
		return 0;
	char ch = s[i];
	size_t run = 0;
	while (i < le && s[i] == ch) {
		i++;
		run++;
	}
	while (i < le && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	if (i != le || run < 2)
		return 0;
	return ch == '=' ? 1 : 2;
}

static bool is_blank(const char *s, size_t ls, size_t le)
{
	for (size_t i = ls; i < le; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
			return false;
	return true;
}

static void find_sections(const char *s, size_t len, bool headings, struct sections *ss)
{
	struct hstack h = {{0}};
	size_t body = 0, ls = 0;
	bool fence = false;
	size_t prev_ls = NONE, prev_le = 0; /* the previous line, when it may be a setext title */
	bool before_prev_blank = true;      /* the line before it was blank (or none) */
	bool prev_blank = true;
	while (headings && ls < len) {
		const char *nl = memchr(s + ls, '\n', len - ls);
		size_t le = nl ? (size_t)(nl - s) : len;
		size_t next = nl ? le + 1 : len;
		bool blank = is_blank(s, ls, le);
		size_t ts, te;
		int level = 0;
		if (is_fence(s, ls, le)) {
			fence = !fence;
		} else if (!fence && (level = atx_heading(s, ls, le, &ts, &te)) > 0) {
			sections_push(ss, &h, body, ls);
			hstack_set(&h, level, s + ts, te - ts);
			body = next;
		} else if (!fence && prev_ls != NONE && before_prev_blank &&
			   (level = setext_level(s, ls, le)) > 0) {
			sections_push(ss, &h, body, prev_ls);
			hstack_set(&h, level, s + prev_ls, prev_le - prev_ls);
			body = next;
		}
		/* the line may title a setext heading when it is a paragraph's
		 * first line outside a fence */
		bool candidate = !fence && level == 0 && !blank && !is_fence(s, ls, le) &&
				 !starts_list_item(s, len, ls);
		before_prev_blank = prev_blank || level > 0;
		prev_ls = candidate ? ls : NONE;
		prev_le = le;
		prev_blank = blank || level > 0;
		ls = next;
	}
	sections_push(ss, &h, body, len);
	for (int i = 0; i < 6; i++)
		free(h.level[i]);
}

/* ---- units and packing ---- */

struct unit {
	size_t start, end;
	uint32_t tokens;
};

struct units {
	struct unit *v;
	size_t n, cap;
};

static void units_push(struct units *u, size_t start, size_t end, uint32_t tokens)
{
	if (u->n == u->cap) {
		u->cap = u->cap ? u->cap * 2 : 32;
		u->v = ab_xrealloc(u->v, u->cap * sizeof(*u->v));
	}
	u->v[u->n++] = (struct unit){start, end, tokens};
}

static uint32_t clamp_tokens(size_t n)
{
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* The start of the next token at or after i (len if none), and its end. */
static size_t next_token(const char *s, size_t len, size_t i, size_t *end)
{
	size_t n;
	while (i < len && is_space(cp_at(s, len, i, &n)))
		i += n;
	size_t start = i;
	if (i < len && is_ideograph(cp_at(s, len, i, &n))) {
		*end = i + n;
		return start;
	}
	while (i < len) {
		int32_t c = cp_at(s, len, i, &n);
		if (is_space(c) || is_ideograph(c))
			break;
		i += n;
	}
	*end = i;
	return start;
}

/* Adds sentence [start, end) as one unit, or as pieces of at most target
 * tokens when it is longer. */
static void add_sentence(const char *s, size_t start, size_t end, uint32_t target,
			 struct units *u)
{
	size_t tokens = ab_text_count_tokens(s + start, end - start);
	if (tokens <= target) {
		if (tokens > 0)
			units_push(u, start, end, (uint32_t)tokens);
		return;
	}
	size_t i = start, piece = NONE, piece_end = start;
	uint32_t count = 0;
	while (i < end) {
		size_t te, ts = next_token(s, end, i, &te);
		if (ts >= end)
			break;
		if (piece == NONE)
			piece = ts;
		piece_end = te;
		i = te;
		if (++count == target) {
			units_push(u, piece, piece_end, count);
			piece = NONE;
			count = 0;
		}
	}
	if (piece != NONE)
		units_push(u, piece, piece_end, count);
}

/* The start of the last `want` tokens of [start, end) (start when fewer). */
static size_t last_tokens_start(const char *s, size_t start, size_t end, uint32_t want)
{
	/* tokens from the front; keep the starts in a ring of `want` */
	size_t *ring = ab_xmalloc((size_t)want * sizeof(*ring));
	size_t count = 0, i = start;
	while (i < end) {
		size_t te, ts = next_token(s, end, i, &te);
		if (ts >= end)
			break;
		ring[count % want] = ts;
		count++;
		i = te;
	}
	size_t r = count < want ? start : ring[count % want];
	free(ring);
	return r;
}

struct pages {
	const size_t *starts;
	size_t n;
};

static uint32_t page_of(const struct pages *pg, size_t off)
{
	size_t lo = 0, hi = pg->n; /* count the starts <= off */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pg->starts[mid] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? 1 : clamp_tokens(lo);
}

struct chunkvec {
	struct ab_chunk *v;
	size_t n, cap;
};

static void emit_chunk(const char *s, const struct section *sec, const struct pages *pg,
		       size_t start, size_t end, uint32_t tokens, uint32_t overlap,
		       struct chunkvec *cv)
{
	if (cv->n == cv->cap) {
		cv->cap = cv->cap ? cv->cap * 2 : 16;
		cv->v = ab_xrealloc(cv->v, cv->cap * sizeof(*cv->v));
	}
	struct ab_chunk *c = &cv->v[cv->n++];
	struct ab_buf b = {0};
	ab_buf_puts(&b, "");
	append_clean(&b, s + start, end - start);
	c->len = b.len;
	c->text = ab_buf_steal(&b);
	c->start = start;
	c->end = end;
	c->heading = ab_xstrdup(sec->heading);
	c->depth = sec->depth;
	c->page = page_of(pg, start);
	c->page_last = page_of(pg, end - 1);
	c->tokens = tokens;
	c->overlap = overlap;
}

static void pack_section(const char *s, const struct section *sec, const struct pages *pg,
			 uint32_t target, uint32_t overlap, struct chunkvec *cv)
{
	struct spans sp = {0};
	struct units u = {0};
	split_into(s, sec->start, sec->end, &sp);
	for (size_t i = 0; i < sp.n; i++)
		add_sentence(s, sp.v[i].start, sp.v[i].end, target, &u);
	free(sp.v);

	size_t next = 0;          /* first unit not yet in a chunk */
	size_t prev_first = NONE; /* units of the previous chunk: [prev_first, next) */
	while (next < u.n) {
		size_t start = u.v[next].start;
		uint32_t tokens = 0, ov = 0;
		if (prev_first != NONE && overlap > 0) {
			/* whole units from the end of the previous chunk */
			size_t j = next;
			uint32_t t = 0;
			while (j > prev_first && t + u.v[j - 1].tokens <= overlap &&
			       t + u.v[j - 1].tokens + u.v[next].tokens <= target) {
				t += u.v[j - 1].tokens;
				j--;
			}
			if (j < next) {
				start = u.v[j].start;
				ov = t;
			} else {
				/* words from the end of its last unit */
				uint32_t room = target - u.v[next].tokens;
				uint32_t want = overlap < room ? overlap : room;
				const struct unit *last = &u.v[next - 1];
				if (want > last->tokens)
					want = last->tokens;
				if (want > 0) {
					start = last_tokens_start(s, last->start, last->end, want);
					ov = want;
				}
			}
		}
		tokens = ov;
		size_t first = next;
		while (next < u.n && (next == first || tokens + u.v[next].tokens <= target)) {
			tokens += u.v[next].tokens;
			next++;
		}
		emit_chunk(s, sec, pg, start, u.v[next - 1].end, tokens, ov, cv);
		prev_first = first;
	}
	free(u.v);
}

void ab_chunk_params_default(struct ab_chunk_params *p)
{
	memset(p, 0, sizeof(*p));
	p->target_tokens = 200;
	p->overlap_tokens = 40;
}

int ab_chunk_text(const char *text, size_t len, const struct ab_chunk_params *p,
		  struct ab_chunks **out)
{
	struct ab_chunk_params def;
	if (!out)
		return AB_EINVAL;
	*out = NULL;
	if (!text && len)
		return AB_EINVAL;
	if (!p) {
		ab_chunk_params_default(&def);
		p = &def;
	}
	if (p->npage_starts && !p->page_starts)
		return AB_EINVAL;
	for (size_t i = 1; i < p->npage_starts; i++)
		if (p->page_starts[i] < p->page_starts[i - 1])
			return AB_EINVAL;
	uint32_t target = p->target_tokens ? p->target_tokens : 200;
	uint32_t overlap = p->overlap_tokens > target / 2 ? target / 2 : p->overlap_tokens;

	struct pages pg = {p->page_starts, p->npage_starts};
	size_t *ff = NULL;
	if (!p->page_starts) {
		size_t nff = 1;
		for (size_t i = 0; i < len; i++)
			nff += text[i] == '\f';
		ff = ab_xmalloc(nff * sizeof(*ff));
		ff[0] = 0;
		for (size_t i = 0, k = 1; i < len; i++)
			if (text[i] == '\f')
				ff[k++] = i + 1;
		pg.starts = ff;
		pg.n = nff;
	}

	struct sections ss = {0};
	struct chunkvec cv = {0};
	if (len)
		find_sections(text, len, !p->no_headings, &ss);
	for (size_t i = 0; i < ss.n; i++) {
		pack_section(text, &ss.v[i], &pg, target, overlap, &cv);
		free(ss.v[i].heading);
	}
	free(ss.v);
	free(ff);
	struct ab_chunks *c = ab_xmalloc(sizeof(*c));
	c->v = cv.v;
	c->n = cv.n;
	*out = c;
	return 0;
}

void ab_chunks_free(struct ab_chunks *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].text);
		free(c->v[i].heading);
	}
	free(c->v);
	free(c);
}
