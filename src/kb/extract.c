/*
 * extract.c - the knowledge base's text extraction: an uploaded file in,
 * a title and a list of headings and paragraphs (with page numbers) out.
 * See extract.h for the contract.
 *
 * How it is built
 * ---------------
 * ab_extract() detects the format, turns text formats into clean UTF-8
 * (to_utf8: BOM, UTF-16, line ends, invalid bytes, the binary test), and
 * hands the bytes to one reader: plain text, md4c's callbacks, a walk over
 * gumbo's tree, or poppler page by page. Every reader writes through one
 * "builder", which owns all the rules about what a block may contain:
 * text goes into the current block through add(), which replaces invalid
 * UTF-8, drops control and invisible format characters, and either keeps
 * white space (code, plain text) or collapses it the way HTML does;
 * line_break() ends a line, prefix() starts a list item, end_block()
 * trims the block and files it as a heading or a paragraph. Block texts are stored one
 * after the other in a single arena (so a document of a million short
 * paragraphs is not a million allocations); the result's block pointers
 * are set into it once the arena stops moving. The builder also keeps the
 * output budget and the deadline: a reader only has to stop when b->rc is
 * set.
 *
 * Untrusted input and the three parsers
 * -------------------------------------
 * md4c calls back often (every block, span and run of text); the
 * callbacks check the budget and the clock and abort the parse by
 * returning non-zero.
 *
 * gumbo is not safe to run on hostile input as it comes; measured with
 * 0.10.1 on nested <div>s:
 *   - with its default max_errors (-1, keep every parse error) each error
 *     copies the stack of open elements: 8000 levels (40 kB of input)
 *     took 500 MB. We keep no errors (max_errors = 0): 3.5 MB.
 *   - tree construction scans the open elements per tag, so time is
 *     quadratic in the depth: 16000 levels take 0.7 s, 64000 take 27 s.
 *   - gumbo_destroy_output() frees the tree recursively: a deep enough
 *     tree would overflow the stack.
 * Three defences, cheapest first:
 *   1. html_depth() estimates the nesting before parsing, with a light
 *      tokenizer (comments, quoted attribute values, raw-text elements
 *      and script escapes as the HTML tokenizer reads them) and a stack
 *      of open tags that pops only where the HTML tree builder certainly
 *      pops too (an end tag through inline elements, or through anything
 *      in its scope for block end tags; <p>, <li>, <dd>, <dt>, headings
 *      and table cells closing their predecessors). Where it cannot know
 *      the parser's mode (after SVG or MathML, in what may be raw text)
 *      it takes the reading that counts more. Over max_html_depth (4096,
 *      about 50 ms of parsing; real pages nest a few dozen levels) is
 *      refused at once. It was fuzzed against gumbo's real trees (the
 *      cases it once missed are unit tests), but it remains an estimate:
 *      it does not see the formatting elements (<b>, <i>...) that the
 *      tree builder re-opens after a block closes them.
 *   2. So the hard bounds come from gumbo's allocator hook, and they are
 *      per byte: a parse may take 5 s + 5 ms per KiB of input and 64 MiB
 *      + 40 bytes per input byte (an honest page needs about 0.3 ms per
 *      KiB on an idle machine, and 20 bytes per byte), within max_ms and
 *      max_parse_mem. Our allocator
 *      puts a small header on every block, links the blocks in a list and
 *      counts the bytes; when the count would pass the budget, or the
 *      deadline has passed (checked every 1024 allocations, and tags
 *      allocate), it longjmp()s out of the parser back to
 *      parse_html_guarded(). That is safe because gumbo keeps no state
 *      outside the memory it got from us and holds no other resource: the
 *      abandoned parse is just blocks on our list.
 *   3. We never call gumbo_destroy_output(), not even after a successful
 *      parse: the list is freed in one loop. Our own walk over the tree
 *      uses an explicit stack.
 *
 * poppler is a large C++ library; we give it the bytes (no copy), refuse
 * encrypted files and more than max_pages pages, and check the clock
 * between pages. A single hostile page can still keep poppler busy or make
 * it allocate a lot inside poppler_page_get_text(); the knowledge base
 * should run extraction where that can be contained (a worker process
 * with resource limits) if it accepts PDFs from untrusted users.
 *
 * Loading poppler on first use
 * ----------------------------
 * autobot is not linked against libpoppler-glib: with glib, gobject,
 * gio, cairo, NSS, fontconfig and the rest it brings about 50 shared
 * objects, and loading them cost every exec of autobot (even --version)
 * most of its start-up time. We compile against poppler.h for the types
 * and prototypes only; the first PDF that read_pdf() sees dlopen()s
 * libpoppler-glib.so.8 and resolves the eleven functions we call (glib's
 * among them, found through poppler-glib's dependencies) into struct
 * pdf_api. That happens under pthread_once(), so worker threads may
 * extract PDFs concurrently from the start; the outcome, success or the
 * error message, is kept for the life of the process and the library is
 * never unloaded. If the library or a function is missing, every PDF
 * fails with AB_EUNAVAIL and "PDF support needs libpoppler-glib (on
 * Debian and Ubuntu: apt-get install libpoppler-glib8) ..." with the
 * loader's reason; text, Markdown and HTML are unaffected.
 */
#include "extract.h"

#include <ctype.h>
#include <dlfcn.h>
#include <gumbo.h>
#include <md4c.h>
#include <poppler.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"

#define DEF_MAX_INPUT      ((size_t)64 << 20)
#define DEF_MAX_OUTPUT     ((size_t)64 << 20)
#define DEF_MAX_PAGES      2000u
#define DEF_MAX_PARSE_MEM  ((size_t)512 << 20)
#define DEF_MAX_MS         60000u
#define DEF_MAX_HTML_DEPTH 4096u
#define HTML_MEM_BASE      ((size_t)64 << 20) /* gumbo's memory: base, per input byte */
#define HTML_MEM_PER_BYTE  40
#define HTML_MS_BASE       5000 /* gumbo's time: base, input bytes per ms */
#define HTML_BYTES_PER_MS  205
#define TITLE_MAX          512 /* bytes of a title; longer ones are cut */
#define MAX_INDENT         8   /* list levels that still indent */
#define SUPPORTED          "AutoBot reads text, Markdown, HTML and PDF"

void ab_extract_limits_default(struct ab_extract_limits *l)
{
	l->max_input = DEF_MAX_INPUT;
	l->max_output = DEF_MAX_OUTPUT;
	l->max_pages = DEF_MAX_PAGES;
	l->max_parse_mem = DEF_MAX_PARSE_MEM;
	l->max_ms = DEF_MAX_MS;
	l->max_html_depth = DEF_MAX_HTML_DEPTH;
}

const char *ab_doc_kind_name(enum ab_doc_kind kind)
{
	switch (kind) {
	case AB_DOC_TEXT:
		return "text";
	case AB_DOC_MARKDOWN:
		return "markdown";
	case AB_DOC_HTML:
		return "html";
	case AB_DOC_PDF:
		return "pdf";
	}
	return "unknown";
}

AB_PRINTF(4, 5)
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

/* ---- UTF-8 ---- */

/* The length (1-4) of the well-formed UTF-8 sequence at s (n bytes
 * available), with its code point in *cp; 0 when it is not one (overlong
 * forms, surrogates and values above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Writes cp as UTF-8 into u; returns the length (1-4). */
static size_t encode_cp(uint32_t cp, char u[4])
{
	if (cp < 0x80) {
		u[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	u[0] = (char)(0xf0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	u[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static void put_cp(struct ab_buf *b, uint32_t cp)
{
	char u[4];
	ab_buf_append(b, u, encode_cp(cp, u));
}

/* Characters that end a line where white space is kept. */
static bool is_break(uint32_t cp)
{
	return cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' || cp == 0x2028 || cp == 0x2029;
}

/* Other white space (no-break and typographic spaces included). */
static bool is_space(uint32_t cp)
{
	return cp == ' ' || cp == '\t' || cp == 0xa0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Control characters, and invisible ones that would split words for the
 * search: soft hyphen, zero-width space, byte-order mark, noncharacters. */
static bool is_dropped(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0xad || cp == 0x200b ||
	       cp == 0xfeff || cp == 0xfffe || cp == 0xffff;
}

/* ---- text buffers ---- */

/* Text under construction: bytes, plus a space seen but not yet written
 * (collapsing white space writes one only between two visible
 * characters of the same line). */
struct tbuf {
	struct ab_buf s;
	bool space;
};

static bool line_empty(const struct tbuf *t)
{
	return t->s.len == 0 || t->s.data[t->s.len - 1] == '\n';
}

/* Ends the current line: its trailing blanks go, and an empty line is
 * never written (blocks hold no blank lines). */
static void tbuf_break(struct tbuf *t)
{
	while (t->s.len > 0 && (t->s.data[t->s.len - 1] == ' ' || t->s.data[t->s.len - 1] == '\t'))
		t->s.len--;
	if (t->s.data)
		t->s.data[t->s.len] = '\0';
	if (!line_empty(t))
		ab_buf_putc(&t->s, '\n');
	t->space = false;
}

/* Appends n bytes of s (any bytes: invalid UTF-8 becomes U+FFFD). With
 * collapse, every run of white space and line breaks counts as one space;
 * without, spaces and tabs are kept and line breaks end lines. Returns
 * whether a visible character was written. */
static bool tbuf_put(struct tbuf *t, const char *s, size_t n, bool collapse)
{
	const unsigned char *p = (const unsigned char *)s;
	bool added = false;
	ab_buf_reserve(&t->s, n + 1);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_seq(p + i, n - i, &cp);
		bool valid = k > 0;
		if (!valid) {
			cp = 0xfffd;
			k = 1;
		}
		i += k;
		if (is_break(cp)) {
			if (collapse)
				t->space = true;
			else
				tbuf_break(t);
			continue;
		}
		if (is_space(cp)) {
			if (collapse)
				t->space = true;
			else
				ab_buf_putc(&t->s, cp == '\t' ? '\t' : ' ');
			continue;
		}
		if (is_dropped(cp))
			continue;
		if (t->space && !line_empty(t))
			ab_buf_putc(&t->s, ' ');
		t->space = false;
		if (valid)
			ab_buf_append(&t->s, p + i - k, k);
		else
			put_cp(&t->s, cp);
		added = true;
	}
	return added;
}

/* The text of s as one clean line (white space collapsed, cut at max
 * bytes on a character boundary), or NULL when nothing visible is left.
 * The caller frees it. */
static char *clean_line(const char *s, size_t n, size_t max)
{
	struct tbuf t = {{0}, false};
	tbuf_put(&t, s, n, true);
	if (t.s.len == 0) {
		ab_buf_free(&t.s);
		return NULL;
	}
	if (t.s.len > max) {
		size_t cut = max;
		while (cut > 0 && ((unsigned char)t.s.data[cut] & 0xc0) == 0x80)
			cut--;
		t.s.len = cut;
		while (t.s.len > 0 && t.s.data[t.s.len - 1] == ' ')
			t.s.len--;
		t.s.data[t.s.len] = '\0';
	}
	return ab_buf_steal(&t.s);
}

/* ---- the builder ---- */

struct builder {
	struct ab_doc_text *d;
	size_t cap;          /* blocks allocated in d->blocks */
	struct ab_buf arena; /* every block's text and NUL, in order */
	struct tbuf cur;     /* the block being built */
	bool fresh;          /* the current line holds only a list marker */
	size_t fresh_at;     /* where that marker starts in cur */
	size_t used;         /* bytes charged against max_output */
	size_t max_output;
	uint32_t page;    /* page of the blocks being built, 0 if none */
	int64_t deadline; /* ab_now_ms() limit */
	uint32_t max_ms;
	unsigned ticks;
	int rc; /* the first failure; readers stop when set */
	char *err;
	size_t errlen;
};

AB_PRINTF(3, 4)
static void bfail(struct builder *b, int rc, const char *fmt, ...)
{
	if (b->rc)
		return;
	b->rc = rc;
	if (b->err && b->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(b->err, b->errlen, fmt, ap);
		va_end(ap);
	}
}

static void too_big(struct builder *b)
{
	bfail(b, AB_ETOOBIG, "the extracted text is larger than the limit of %zu bytes",
	      b->max_output);
}

/* Checks the clock every `every` calls; true (and b->rc set) once the
 * deadline has passed or anything else failed. */
static bool stop(struct builder *b, unsigned every)
{
	if (b->rc)
		return true;
	if (++b->ticks % every == 0 && ab_now_ms() > b->deadline)
		bfail(b, AB_ETIMEOUT, "extraction took longer than the limit of %u ms", b->max_ms);
	return b->rc != 0;
}

/* Adds text to the current block; returns whether anything visible was
 * added. */
static bool add(struct builder *b, const char *s, size_t n, bool collapse)
{
	if (b->rc)
		return false;
	bool added = tbuf_put(&b->cur, s, n, collapse);
	if (added)
		b->fresh = false;
	if (b->used + b->cur.s.len > b->max_output)
		too_big(b);
	return added;
}

/* Appends an ASCII literal (a separator) as it is. */
static void lit(struct builder *b, const char *s)
{
	if (b->rc)
		return;
	ab_buf_puts(&b->cur.s, s);
	b->cur.space = false;
}

static void line_break(struct builder *b)
{
	if (b->fresh)
		b->cur.space = false; /* stay on the marker's line */
	else
		tbuf_break(&b->cur);
}

/* Starts a list item: a new line, indent, then marker ("- ", "3. "). A
 * marker left without text (an empty item) is taken back. */
static void prefix(struct builder *b, unsigned depth, const char *marker)
{
	if (b->fresh)
		b->cur.s.len = b->fresh_at;
	b->fresh = false;
	tbuf_break(&b->cur);
	b->fresh_at = b->cur.s.len;
	for (unsigned i = 1; i < depth && i <= MAX_INDENT; i++)
		lit(b, "  ");
	lit(b, marker);
	b->fresh = true;
}

/* Files the current block (if it has any text) as kind. */
static void end_block(struct builder *b, enum ab_block_kind kind, int level)
{
	struct ab_buf *s = &b->cur.s;
	if (b->fresh)
		s->len = b->fresh_at;
	b->fresh = false;
	b->cur.space = false;
	size_t st = 0, en = s->len;
	while (st < en && (s->data[st] == ' ' || s->data[st] == '\t' || s->data[st] == '\n'))
		st++;
	while (en > st &&
	       (s->data[en - 1] == ' ' || s->data[en - 1] == '\t' || s->data[en - 1] == '\n'))
		en--;
	if (b->rc || en == st) {
		ab_buf_reset(s);
		return;
	}
	if (kind == AB_BLOCK_HEADING) {
		for (size_t i = st; i < en; i++)
			if (s->data[i] == '\n' || s->data[i] == '\t')
				s->data[i] = ' ';
	}
	size_t len = en - st;
	b->used += len + 1 + sizeof(struct ab_doc_block);
	if (b->used > b->max_output) {
		too_big(b);
		ab_buf_reset(s);
		return;
	}
	struct ab_doc_text *d = b->d;
	if (d->nblocks == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		d->blocks = ab_xrealloc(d->blocks, b->cap * sizeof(*d->blocks));
	}
	struct ab_doc_block *blk = &d->blocks[d->nblocks++];
	blk->kind = kind;
	blk->level = kind == AB_BLOCK_HEADING ? (level < 1 ? 1 : level > 6 ? 6 : level) : 0;
	blk->page = b->page;
	blk->text = NULL; /* set in finish(), when the arena stops moving */
	blk->len = len;
	ab_buf_append(&b->arena, s->data + st, len);
	ab_buf_putc(&b->arena, '\0');
	ab_buf_reset(s);
}

static void paragraph(struct builder *b)
{
	end_block(b, AB_BLOCK_PARAGRAPH, 0);
}

static void set_title(struct builder *b, const char *s, size_t n)
{
	if (b->d->title || b->rc)
		return;
	b->d->title = clean_line(s, n, TITLE_MAX);
	if (b->d->title)
		b->used += strlen(b->d->title) + 1;
}

static void builder_init(struct builder *b, enum ab_doc_kind kind,
                         const struct ab_extract_limits *lim, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->d = ab_xcalloc(1, sizeof(*b->d));
	b->d->kind = kind;
	b->max_output = lim->max_output;
	b->max_ms = lim->max_ms;
	b->deadline = ab_now_ms() + (int64_t)lim->max_ms;
	b->err = err;
	b->errlen = errlen;
}

static void builder_free(struct builder *b)
{
	ab_buf_free(&b->arena);
	ab_buf_free(&b->cur.s);
	free(b->d->blocks);
	free(b->d->title);
	free(b->d);
	b->d = NULL;
}

/* Points the blocks into the arena and hands the document over. */
static struct ab_doc_text *finish(struct builder *b)
{
	struct ab_doc_text *d = b->d;
	ab_buf_free(&b->cur.s);
	if (d->nblocks == 0) {
		ab_buf_free(&b->arena);
		free(d->blocks);
		d->blocks = NULL;
	} else {
		char *p = ab_buf_steal(&b->arena);
		for (size_t i = 0; i < d->nblocks; i++) {
			d->blocks[i].text = p;
			p += d->blocks[i].len + 1;
		}
	}
	b->d = NULL;
	return d;
}

void ab_doc_text_free(struct ab_doc_text *d)
{
	if (!d)
		return;
	/* all block texts live in one allocation, starting at the first */
	if (d->nblocks)
		free(d->blocks[0].text);
	free(d->blocks);
	free(d->title);
	free(d);
}

/* ---- type detection ---- */

struct type_name {
	const char *name;
	int kind; /* enum ab_doc_kind; -1: says nothing; -2: refused */
};

static const struct type_name mime_types[] = {
    {"text/plain", AB_DOC_TEXT},
    {"text/markdown", AB_DOC_MARKDOWN},
    {"text/x-markdown", AB_DOC_MARKDOWN},
    {"text/html", AB_DOC_HTML},
    {"application/xhtml+xml", AB_DOC_HTML},
    {"application/pdf", AB_DOC_PDF},
    {"application/x-pdf", AB_DOC_PDF},
    {"text", AB_DOC_TEXT},
    {"txt", AB_DOC_TEXT},
    {"plain", AB_DOC_TEXT},
    {"markdown", AB_DOC_MARKDOWN},
    {"md", AB_DOC_MARKDOWN},
    {"html", AB_DOC_HTML},
    {"htm", AB_DOC_HTML},
    {"pdf", AB_DOC_PDF},
    {"application/octet-stream", -1},
    {"binary/octet-stream", -1},
};

static const struct type_name extensions[] = {
    {"txt", AB_DOC_TEXT},
    {"text", AB_DOC_TEXT},
    {"log", AB_DOC_TEXT},
    {"md", AB_DOC_MARKDOWN},
    {"markdown", AB_DOC_MARKDOWN},
    {"mdown", AB_DOC_MARKDOWN},
    {"mkd", AB_DOC_MARKDOWN},
    {"mkdn", AB_DOC_MARKDOWN},
    {"html", AB_DOC_HTML},
    {"htm", AB_DOC_HTML},
    {"xhtml", AB_DOC_HTML},
    {"pdf", AB_DOC_PDF},
    /* formats people upload that are not text; anything else unknown is
     * sniffed (source code, CSV, YAML... read as text) */
    {"doc", -2},
    {"docx", -2},
    {"odt", -2},
    {"rtf", -2},
    {"xls", -2},
    {"xlsx", -2},
    {"ods", -2},
    {"ppt", -2},
    {"pptx", -2},
    {"odp", -2},
    {"epub", -2},
    {"zip", -2},
    {"gz", -2},
    {"tgz", -2},
    {"bz2", -2},
    {"xz", -2},
    {"7z", -2},
    {"rar", -2},
    {"tar", -2},
    {"png", -2},
    {"jpg", -2},
    {"jpeg", -2},
    {"gif", -2},
    {"webp", -2},
    {"bmp", -2},
    {"tif", -2},
    {"tiff", -2},
    {"svg", -2},
    {"mp3", -2},
    {"mp4", -2},
    {"wav", -2},
    {"exe", -2},
    {"dll", -2},
    {"so", -2},
    {"bin", -2},
};

static int lookup(const struct type_name *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return t[i].kind;
	return -3;
}

/* Copies s up to stop chars (or the end), trimmed and lower-cased, into
 * out (size outsz, cut if longer). Bytes outside printable ASCII become
 * '?': the word may end up in a message shown to the uploader. */
static void lower_word(const char *s, const char *stops, char *out, size_t outsz)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, stops);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= outsz)
		n = outsz - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)tolower(c);
	}
	out[n] = '\0';
}

/* Where s (n bytes) starts with prefix, ignoring ASCII case. */
static bool starts_ci(const unsigned char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && strncasecmp((const char *)s, prefix, k) == 0;
}

/* Counts what makes bytes not text: invalid UTF-8 sequences and control
 * characters other than tab, line breaks and escape; sets *nul when a NUL
 * byte is present. */
static size_t count_bad(const unsigned char *s, size_t n, bool *nul)
{
	size_t bad = 0;
	*nul = false;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_seq(s + i, n - i, &cp);
		if (k == 0) {
			bad++;
			i++;
			continue;
		}
		if (cp == 0)
			*nul = true;
		else if ((cp < 0x20 && !strchr("\t\n\r\f\v\x1b", (int)cp)) || cp == 0x7f)
			bad++;
		i += k;
	}
	return bad;
}

static int sniff(const unsigned char *s, size_t n, const char *ext, enum ab_doc_kind *kind,
                 char *err, size_t errlen)
{
	size_t i = 0;
	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
		i = 3;
	else if (n >= 2 && ((s[0] == 0xff && s[1] == 0xfe) || (s[0] == 0xfe && s[1] == 0xff))) {
		*kind = AB_DOC_TEXT; /* UTF-16 with a byte-order mark */
		return 0;
	}
	/* a markup preamble: white space, an XML declaration, comments */
	for (int rounds = 0; rounds < 64 && i < n; rounds++) {
		while (i < n && isspace(s[i]))
			i++;
		const unsigned char *end = NULL;
		if (starts_ci(s + i, n - i, "<?xml"))
			end = memmem(s + i, n - i, "?>", 2);
		else if (starts_ci(s + i, n - i, "<!--"))
			end = memmem(s + i, n - i, "-->", 3);
		else
			break;
		if (!end)
			break;
		i = (size_t)(end - s) + (s[i + 1] == '?' ? 2 : 3);
	}
	if (starts_ci(s + i, n - i, "%PDF-")) {
		*kind = AB_DOC_PDF;
		return 0;
	}
	if (starts_ci(s + i, n - i, "<!doctype html") ||
	    (starts_ci(s + i, n - i, "<html") &&
	     (n - i == 5 || s[i + 5] == '>' || isspace(s[i + 5])))) {
		*kind = AB_DOC_HTML;
		return 0;
	}
	bool nul;
	if (count_bad(s, n, &nul) == 0 && !nul) {
		*kind = AB_DOC_TEXT;
		return 0;
	}
	if (ext && *ext)
		return fail(err, errlen, AB_EINVAL,
		            "unsupported type '.%s' (the content is not UTF-8 text): " SUPPORTED,
		            ext);
	return fail(err, errlen, AB_EINVAL,
	            "unsupported type (binary data, not UTF-8 text): " SUPPORTED);
}

int ab_extract_detect(const void *data, size_t len, const char *mime, const char *filename,
                      enum ab_doc_kind *kind, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!kind || (!data && len))
		return fail(err, errlen, AB_EINVAL, "invalid arguments");
	int mk = -1;
	char m[96] = "";
	if (mime) {
		lower_word(mime, ";", m, sizeof(m));
		mk = m[0] ? lookup(mime_types, AB_ARRAY_LEN(mime_types), m) : -1;
		if (mk == -3)
			mk = strncmp(m, "text/", 5) == 0 ? AB_DOC_TEXT : -2;
		if (mk == -2)
			return fail(err, errlen, AB_EINVAL, "unsupported type '%s': " SUPPORTED, m);
	}
	int ek = -1;
	char ext[24] = "";
	if (filename) {
		const char *base = filename;
		for (const char *p = filename; *p; p++)
			if (*p == '/' || *p == '\\')
				base = p + 1;
		const char *dot = strrchr(base, '.');
		if (dot && dot != base && dot[1]) {
			lower_word(dot + 1, "", ext, sizeof(ext));
			ek = lookup(extensions, AB_ARRAY_LEN(extensions), ext);
		}
	}
	/* a specific MIME type wins; text/plain (what many clients say for
	 * any text file) defers to a Markdown or HTML extension */
	if (mk >= 0 && !(mk == AB_DOC_TEXT && strcmp(m, "text/plain") == 0 &&
	                 (ek == AB_DOC_MARKDOWN || ek == AB_DOC_HTML))) {
		*kind = (enum ab_doc_kind)mk;
		return 0;
	}
	if (ek >= 0) {
		*kind = (enum ab_doc_kind)ek;
		return 0;
	}
	if (ek == -2)
		return fail(err, errlen, AB_EINVAL, "unsupported file type '.%s': " SUPPORTED, ext);
	return sniff(data, len, ext, kind, err, errlen);
}

/* ---- text input ---- */

/* The input as clean UTF-8 in out: a UTF-8 BOM dropped, UTF-16 with a BOM
 * converted, CRLF and CR turned into LF, invalid sequences replaced by
 * U+FFFD. Returns 0, or AB_EINVAL when the bytes look binary. */
static int to_utf8(const unsigned char *s, size_t n, struct ab_buf *out, char *err, size_t errlen)
{
	size_t bad = 0;
	bool cr = false;
	ab_buf_reserve(out, n + 1);
	if (n >= 2 && ((s[0] == 0xff && s[1] == 0xfe) || (s[0] == 0xfe && s[1] == 0xff))) {
		bool le = s[0] == 0xff;
		uint32_t hi = 0; /* a pending high surrogate */
		for (size_t i = 2; i + 1 < n; i += 2) {
			uint32_t u = le ? (uint32_t)s[i] | (uint32_t)s[i + 1] << 8
			                : (uint32_t)s[i] << 8 | (uint32_t)s[i + 1];
			if (u == 0)
				return fail(
				    err, errlen, AB_EINVAL,
				    "the text contains NUL characters: binary data, not text");
			if (hi && u >= 0xdc00 && u <= 0xdfff) {
				put_cp(out, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00));
				hi = 0;
				continue;
			}
			if (hi) {
				put_cp(out, 0xfffd);
				bad++;
				hi = 0;
			}
			if (u >= 0xd800 && u <= 0xdbff) {
				hi = u;
				continue;
			}
			if (u >= 0xdc00 && u <= 0xdfff) {
				put_cp(out, 0xfffd);
				bad++;
			} else if (u == '\r') {
				ab_buf_putc(out, '\n');
				cr = true;
				continue;
			} else if (!(u == '\n' && cr)) {
				put_cp(out, u);
			}
			cr = false;
		}
		if (hi || n % 2) {
			put_cp(out, 0xfffd);
			bad++;
		}
		if (bad * 10 > n / 2)
			return fail(err, errlen, AB_EINVAL,
			            "the UTF-16 text is broken: binary data, not text");
		return 0;
	}
	size_t i = 0;
	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
		i = 3;
	const size_t start = i;
	while (i < n) {
		/* runs of plain ASCII go in one copy */
		size_t j = i;
		while (j < n && s[j] >= 0x20 && s[j] < 0x7f)
			j++;
		if (j > i) {
			ab_buf_append(out, s + i, j - i);
			i = j;
			cr = false;
			continue;
		}
		uint32_t cp;
		size_t k = utf8_seq(s + i, n - i, &cp);
		if (k == 0) {
			put_cp(out, 0xfffd);
			bad++;
			i++;
			cr = false;
			continue;
		}
		if (cp == 0)
			return fail(err, errlen, AB_EINVAL,
			            "the text contains NUL bytes: binary data, not text");
		if (cp == '\r') {
			ab_buf_putc(out, '\n');
			cr = true;
			i++;
			continue;
		}
		if (!(cp == '\n' && cr)) {
			if ((cp < 0x20 && !strchr("\t\n\f\v\x1b", (int)cp)) || cp == 0x7f)
				bad++;
			ab_buf_append(out, s + i, k);
		}
		cr = false;
		i += k;
	}
	if (bad * 10 > n - start)
		return fail(err, errlen, AB_EINVAL,
		            "%zu of %zu bytes are not UTF-8 text: binary data, or text in another "
		            "encoding (save it as UTF-8)",
		            bad, n - start);
	return 0;
}

/* Adds lines of s as paragraphs: a blank line ends a paragraph; with
 * pages, a form feed ends one and starts the next page. */
static void add_lines(struct builder *b, const char *s, size_t n, bool collapse, bool pages)
{
	size_t i = 0;
	while (i < n && !stop(b, 4096)) {
		size_t e = i;
		while (e < n && s[e] != '\n' && s[e] != '\f')
			e++;
		if (!add(b, s + i, e - i, collapse)) /* a blank line */
			paragraph(b);
		else
			line_break(b);
		if (e < n && s[e] == '\f') {
			paragraph(b);
			if (pages)
				b->page++;
		}
		i = e + 1;
	}
}

static void read_text(struct builder *b, const char *s, size_t n)
{
	bool pages = memchr(s, '\f', n) != NULL;
	if (pages)
		b->page = 1;
	add_lines(b, s, n, false, pages);
	paragraph(b);
	b->d->npages = b->page;
}

/* ---- Markdown (md4c) ---- */

static const struct {
	const char *name;
	uint32_t cp;
} entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},      {"apos", '\''},
    {"nbsp", 0xa0},    {"copy", 0xa9},    {"reg", 0xae},     {"trade", 0x2122},  {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019},  {"ldquo", 0x201c},
    {"rdquo", 0x201d}, {"laquo", 0xab},   {"raquo", 0xbb},   {"bull", 0x2022},   {"middot", 0xb7},
    {"deg", 0xb0},     {"plusmn", 0xb1},  {"times", 0xd7},   {"divide", 0xf7},   {"euro", 0x20ac},
    {"pound", 0xa3},   {"yen", 0xa5},     {"cent", 0xa2},    {"sect", 0xa7},     {"para", 0xb6},
    {"shy", 0xad},     {"ensp", 0x2002},  {"emsp", 0x2003},  {"thinsp", 0x2009}, {"larr", 0x2190},
    {"rarr", 0x2192},  {"uarr", 0x2191},  {"darr", 0x2193},  {"harr", 0x2194},   {"rArr", 0x21d2},
    {"le", 0x2264},    {"ge", 0x2265},    {"ne", 0x2260},    {"asymp", 0x2248},  {"infin", 0x221e},
    {"minus", 0x2212}, {"frac12", 0xbd},  {"frac14", 0xbc},  {"frac34", 0xbe},   {"sup2", 0xb2},
    {"sup3", 0xb3},    {"micro", 0xb5},   {"iexcl", 0xa1},   {"iquest", 0xbf},   {"szlig", 0xdf},
    {"auml", 0xe4},    {"ouml", 0xf6},    {"uuml", 0xfc},    {"Auml", 0xc4},     {"Ouml", 0xd6},
    {"Uuml", 0xdc},    {"aacute", 0xe1},  {"eacute", 0xe9},  {"iacute", 0xed},   {"oacute", 0xf3},
    {"uacute", 0xfa},  {"Eacute", 0xc9},  {"agrave", 0xe0},  {"egrave", 0xe8},   {"ugrave", 0xf9},
    {"acirc", 0xe2},   {"ecirc", 0xea},   {"icirc", 0xee},   {"ocirc", 0xf4},    {"ucirc", 0xfb},
    {"ccedil", 0xe7},  {"Ccedil", 0xc7},  {"ntilde", 0xf1},  {"Ntilde", 0xd1},   {"aring", 0xe5},
    {"Aring", 0xc5},   {"aelig", 0xe6},   {"oslash", 0xf8},  {"euml", 0xeb},     {"iuml", 0xef},
    {"alpha", 0x3b1},  {"beta", 0x3b2},   {"gamma", 0x3b3},  {"delta", 0x3b4},   {"pi", 0x3c0},
    {"mu", 0x3bc},     {"sigma", 0x3c3},  {"Omega", 0x3a9},  {"hearts", 0x2665}, {"check", 0x2713},
    {"zwj", 0x200d},   {"zwnj", 0x200c},
};

/* Decodes one entity as md4c reports it ("&amp;", "&#169;", "&#xA9;").
 * Named ones outside the table above stay as they were written. */
static void put_entity(struct builder *b, const char *s, size_t n)
{
	char u[4];
	if (n >= 4 && s[0] == '&' && s[1] == '#' && s[n - 1] == ';') {
		bool hex = s[2] == 'x' || s[2] == 'X';
		size_t i = hex ? 3 : 2;
		bool ok = i < n - 1;
		uint32_t v = 0;
		for (; i < n - 1 && ok; i++) {
			int c = (unsigned char)s[i];
			uint32_t d;
			if (c >= '0' && c <= '9')
				d = (uint32_t)(c - '0');
			else if (hex && isxdigit(c))
				d = (uint32_t)(tolower(c) - 'a' + 10);
			else {
				ok = false;
				break;
			}
			if (v <= 0x10ffff) /* past it, it stays past it */
				v = v * (hex ? 16 : 10) + d;
		}
		if (ok) {
			if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
				v = 0xfffd;
			add(b, u, encode_cp(v, u), true);
			return;
		}
	} else if (n >= 3 && s[0] == '&' && s[n - 1] == ';') {
		for (size_t i = 0; i < AB_ARRAY_LEN(entities); i++) {
			if (strlen(entities[i].name) == n - 2 &&
			    memcmp(entities[i].name, s + 1, n - 2) == 0) {
				add(b, u, encode_cp(entities[i].cp, u), true);
				return;
			}
		}
	}
	add(b, s, n, true);
}

#define MD_LISTS 32 /* list levels whose numbering is kept */

struct mdx {
	struct builder *b;
	unsigned lists; /* list nesting */
	bool ordered[MD_LISTS];
	unsigned num[MD_LISTS]; /* the next item's number */
	int heading;            /* level of the heading being read, or 0 */
	bool code, html, tag;   /* in a code block, an HTML block, a tag */
	bool first_cell;
	unsigned img; /* open image spans */
};

static bool in_list(const struct mdx *m)
{
	return m->lists > 0;
}

/* A block that is a paragraph of its own outside lists, and a new line
 * inside a list item. */
static void md_boundary(struct mdx *m)
{
	if (in_list(m))
		line_break(m->b);
	else
		paragraph(m->b);
}

static int md_enter(MD_BLOCKTYPE type, void *detail, void *ud)
{
	struct mdx *m = ud;
	struct builder *b = m->b;
	if (stop(b, 1024))
		return 1;
	switch (type) {
	case MD_BLOCK_UL:
	case MD_BLOCK_OL:
		if (!in_list(m))
			paragraph(b);
		if (m->lists < MD_LISTS) {
			m->ordered[m->lists] = type == MD_BLOCK_OL;
			m->num[m->lists] =
			    type == MD_BLOCK_OL ? ((MD_BLOCK_OL_DETAIL *)detail)->start : 0;
		}
		m->lists++;
		break;
	case MD_BLOCK_LI: {
		char marker[16] = "- ";
		unsigned l = m->lists - 1;
		if (m->lists > 0 && l < MD_LISTS && m->ordered[l])
			snprintf(marker, sizeof(marker), "%u. ", m->num[l]++);
		prefix(b, m->lists, marker);
		break;
	}
	case MD_BLOCK_H:
		paragraph(b);
		m->heading = (int)((MD_BLOCK_H_DETAIL *)detail)->level;
		break;
	case MD_BLOCK_CODE:
		md_boundary(m);
		m->code = true;
		break;
	case MD_BLOCK_HTML:
		md_boundary(m);
		m->html = true;
		m->tag = false;
		break;
	case MD_BLOCK_P:
		if (in_list(m))
			line_break(b);
		else
			paragraph(b);
		break;
	case MD_BLOCK_TR:
		line_break(b);
		m->first_cell = true;
		break;
	case MD_BLOCK_TH:
	case MD_BLOCK_TD:
		if (!m->first_cell)
			lit(b, " | ");
		m->first_cell = false;
		break;
	case MD_BLOCK_QUOTE:
	case MD_BLOCK_HR:
	case MD_BLOCK_TABLE:
		md_boundary(m);
		break;
	default:
		break;
	}
	return 0;
}

static int md_leave(MD_BLOCKTYPE type, void *detail, void *ud)
{
	struct mdx *m = ud;
	struct builder *b = m->b;
	AB_UNUSED(detail);
	if (stop(b, 1024))
		return 1;
	switch (type) {
	case MD_BLOCK_UL:
	case MD_BLOCK_OL:
		m->lists--;
		if (!in_list(m))
			paragraph(b);
		break;
	case MD_BLOCK_H:
		end_block(b, AB_BLOCK_HEADING, m->heading);
		m->heading = 0;
		break;
	case MD_BLOCK_CODE:
		m->code = false;
		md_boundary(m);
		break;
	case MD_BLOCK_HTML:
		m->html = false;
		md_boundary(m);
		break;
	case MD_BLOCK_P:
	case MD_BLOCK_QUOTE:
	case MD_BLOCK_TABLE:
		md_boundary(m);
		break;
	default:
		break;
	}
	return b->rc ? 1 : 0;
}

/* Spans are markup and go, but an image's alt text is not the
 * document's text either: it is dropped (as HTML's alt attributes are). */
static int md_enter_span(MD_SPANTYPE type, void *detail, void *ud)
{
	struct mdx *m = ud;
	AB_UNUSED(detail);
	if (type == MD_SPAN_IMG)
		m->img++;
	return 0;
}

static int md_leave_span(MD_SPANTYPE type, void *detail, void *ud)
{
	struct mdx *m = ud;
	AB_UNUSED(detail);
	if (type == MD_SPAN_IMG && m->img > 0)
		m->img--;
	return 0;
}

/* The text of a raw HTML block without its tags (a tag may span lines,
 * which md4c reports one by one). */
static void md_html_text(struct mdx *m, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (m->tag) {
			const char *gt = memchr(s + i, '>', n - i);
			if (!gt)
				return;
			m->tag = false;
			i = (size_t)(gt - s) + 1;
			m->b->cur.space = true;
			continue;
		}
		const char *lt = memchr(s + i, '<', n - i);
		size_t e = lt ? (size_t)(lt - s) : n;
		add(m->b, s + i, e - i, true);
		if (lt)
			m->tag = true;
		i = e + (lt ? 1 : 0);
	}
}

static int md_text(MD_TEXTTYPE type, const MD_CHAR *text, MD_SIZE size, void *ud)
{
	struct mdx *m = ud;
	struct builder *b = m->b;
	if (stop(b, 1024))
		return 1;
	if (m->img)
		return 0;
	switch (type) {
	case MD_TEXT_NULLCHAR:
		add(b, "\xef\xbf\xbd", 3, true);
		break;
	case MD_TEXT_BR:
		line_break(b);
		break;
	case MD_TEXT_SOFTBR:
		add(b, " ", 1, true);
		break;
	case MD_TEXT_ENTITY:
		put_entity(b, text, size);
		break;
	case MD_TEXT_HTML:
		if (m->html)
			md_html_text(m, text, size);
		break; /* inline tags go */
	case MD_TEXT_CODE:
		add(b, text, size, !m->code);
		break;
	default:
		add(b, text, size, true);
		break;
	}
	return b->rc ? 1 : 0;
}

/* YAML front matter ("---" line, "key: value" lines, a "---" or "..."
 * line) at the very start: skipped, and its "title:" becomes the title.
 * Returns the offset where the Markdown starts. */
static size_t front_matter(struct builder *b, const char *s, size_t n)
{
	if (n < 4 || memcmp(s, "---\n", 4) != 0)
		return 0;
	size_t i = 4, limit = n < 65536 ? n : 65536;
	const char *title = NULL;
	size_t tlen = 0;
	bool first = true;
	while (i < limit) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - s) : n;
		size_t len = e - i;
		const char *line = s + i;
		if ((len == 3 && (memcmp(line, "---", 3) == 0 || memcmp(line, "...", 3) == 0))) {
			if (title)
				set_title(b, title, tlen);
			return nl ? e + 1 : n;
		}
		if (first) {
			/* it must look like YAML: "key:" */
			size_t k = 0;
			while (k < len && (isalnum((unsigned char)line[k]) || line[k] == '_' ||
			                   line[k] == '-'))
				k++;
			if (k == 0 || k >= len || line[k] != ':')
				return 0;
			first = false;
		}
		if (len > 6 && memcmp(line, "title:", 6) == 0 && !title) {
			title = line + 6;
			tlen = len - 6;
			while (tlen > 0 && (*title == ' ' || *title == '\t')) {
				title++;
				tlen--;
			}
			while (tlen > 0 && (title[tlen - 1] == ' ' || title[tlen - 1] == '\t'))
				tlen--;
			if (tlen >= 2 && (title[0] == '"' || title[0] == '\'') &&
			    title[tlen - 1] == title[0]) {
				title++;
				tlen -= 2;
			}
		}
		if (!nl)
			break;
		i = e + 1;
	}
	return 0;
}

static void read_markdown(struct builder *b, const char *s, size_t n)
{
	size_t start = front_matter(b, s, n);
	if (n - start > (size_t)(MD_SIZE)-1) {
		bfail(b, AB_ETOOBIG, "the Markdown text is too large for the parser");
		return;
	}
	MD_PARSER p;
	memset(&p, 0, sizeof(p));
	p.abi_version = 0;
	p.flags = MD_DIALECT_GITHUB;
	p.enter_block = md_enter;
	p.leave_block = md_leave;
	p.enter_span = md_enter_span;
	p.leave_span = md_leave_span;
	p.text = md_text;
	struct mdx m;
	memset(&m, 0, sizeof(m));
	m.b = b;
	int rc = md_parse(s + start, (MD_SIZE)(n - start), &p, &m);
	if (rc != 0 && !b->rc)
		bfail(b, AB_EINVAL, "the Markdown parser failed");
	paragraph(b);
}

/* ---- HTML (gumbo) ---- */

/* The depth estimate (see the top of the file). Tags are told apart by a
 * hash of their lower-cased name. */
#define LOOKBACK 16 /* how far down the stack a tag looks for what it closes */

static const char *const void_tags[] = {
    /* void elements, and elements that the estimate leaves out because
     * they are closed by their siblings or by the table around them */
    "area",    "base",     "basefont", "bgsound", "br",   "col",   "embed",  "frame", "hr",
    "img",     "input",    "keygen",   "link",    "meta", "param", "source", "track", "wbr",
    "option",  "optgroup", "tr",       "td",      "th",   "thead", "tbody",  "tfoot", "colgroup",
    "caption", "rb",       "rp",       "rt",      "rtc",  NULL,
};
static const char *const raw_tags[] = {
    /* their content is text up to their end tag */
    "script", "style",   "textarea", "title",     "xmp",
    "iframe", "noembed", "noframes", "plaintext", NULL,
};
static const char *const inline_tags[] = {
    /* neither special nor scope boundaries: every kind of end tag pops
     * through them in the HTML parser */
    "a",    "abbr", "b",    "bdi",  "bdo",  "big",   "cite", "code",   "data",
    "del",  "dfn",  "em",   "font", "i",    "ins",   "kbd",  "label",  "mark",
    "nobr", "q",    "ruby", "s",    "samp", "small", "span", "strike", "strong",
    "sub",  "sup",  "time", "tt",   "u",    "var",   NULL,
};
static const char *const kept_tags[] = {
    /* end tags that do not pop what is above them */
    "html", "head", "body", "form", NULL,
};
static const char *const closes_p_tags[] = {
    /* start tags that always close an open <p> (the parser pops
     * everything above it) */
    "address", "article", "aside",    "blockquote", "center", "details", "dialog",  "dir",
    "div",     "dl",      "fieldset", "figcaption", "figure", "footer",  "header",  "hgroup",
    "main",    "menu",    "nav",      "ol",         "p",      "section", "summary", "ul",
    "h1",      "h2",      "h3",       "h4",         "h5",     "h6",      "pre",     "listing",
    "form",    "hr",      "xmp",      NULL,
};
static const char *const block_end_tags[] = {
    /* end tags that pop everything above their element when it is in
     * scope */
    "address", "article", "aside", "blockquote", "button",     "center", "details", "dialog",
    "dir",     "div",     "dl",    "fieldset",   "figcaption", "figure", "footer",  "header",
    "hgroup",  "listing", "main",  "menu",       "nav",        "ol",     "pre",     "section",
    "summary", "ul",      "p",     "dd",         "dt",         "h1",     "h2",      "h3",
    "h4",      "h5",      "h6",    "applet",     "marquee",    "object", "table",   NULL,
};
static const char *const scope_tags[] = {
    /* elements that end the scope an end tag looks in */
    "table", "applet", "marquee", "object", "template", "html", "svg",
    "math",  "button", "caption", "td",     "th",       NULL,
};
static const char *const breakout_tags[] = {
    /* start tags that end foreign (SVG, MathML) content */
    "b",   "big",  "blockquote", "body",  "br",      "center", "code",   "dd",   "div", "dl",
    "dt",  "em",   "embed",      "h1",    "h2",      "h3",     "h4",     "h5",   "h6",  "head",
    "hr",  "i",    "img",        "li",    "listing", "menu",   "meta",   "nobr", "ol",  "p",
    "pre", "ruby", "s",          "small", "span",    "strong", "strike", "sub",  "sup", "table",
    "tt",  "u",    "ul",         "var",   "font",    NULL,
};
static const char *const mathml_text_tags[] = {
    /* MathML elements whose content is HTML again */
    "mi", "mo", "mn", "ms", "mtext", NULL,
};
static const char *const table_part_tags[] = {
    "tr", "td", "th", "thead", "tbody", "tfoot", "caption", "colgroup", NULL,
};

static bool tag_is(const char *name, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 16777619u;
	return h;
}

/* What the stack entries are, in the order of how easily the parser pops
 * through them; a search that may pass kind k passes every kind below. */
enum dkind {
	D_INLINE, /* inline_tags: every end tag pops through them */
	D_PDA,    /* p, div, address: a new <li>, <dd> or <dt> pops through */
	D_OTHER,  /* the rest: an end tag in scope pops through */
	D_LIST,   /* ul, ol: end the scope of </li> */
	D_SCOPE,  /* scope_tags: end every scope */
};

struct dent {
	uint32_t hash;
	enum dkind kind;
	size_t level; /* the depth it stands at: a <table> counts 4 (the parser
	                 adds <tbody>, <tr> and <td> under it) */
};

/* Looks down the stack (st, *depth entries), at most LOOKBACK entries and
 * through entries of a kind up to pass only, for one whose hash is a or
 * b. When found, pops the entries above it, and it too unless keep, and
 * returns true.
 * Passing only what the parser certainly pops too is what keeps the
 * estimate from popping more than the parser does. */
static bool pop_to(const struct dent *st, size_t *depth, uint32_t a, uint32_t b, bool keep,
                   enum dkind pass)
{
	for (size_t d = *depth, seen = 0; d > 0 && seen < LOOKBACK; d--, seen++) {
		if (st[d - 1].hash == a || st[d - 1].hash == b) {
			*depth = keep ? d : d - 1;
			return true;
		}
		if (st[d - 1].kind > pass)
			return false;
	}
	return false;
}

/* Where the markup at s[i] ("<!...", "<?...", "</" and no letter) ends,
 * as the HTML tokenizer reads it: a comment at "-->" or "--!>" (or at
 * once: "<!-->", "<!--->"), a doctype or bogus comment at the first '>'.
 * (CDATA, which only foreign content has, is left to the caller.) */
static size_t skip_decl(const char *s, size_t n, size_t i)
{
	if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
		size_t p = i + 4;
		if (p < n && s[p] == '>')
			return p + 1;
		if (p + 1 < n && s[p] == '-' && s[p + 1] == '>')
			return p + 2;
		for (; p + 1 < n; p++) {
			if (s[p] != '-' || s[p + 1] != '-')
				continue;
			if (p + 2 < n && s[p + 2] == '>')
				return p + 3;
			if (p + 3 < n && s[p + 2] == '!' && s[p + 3] == '>')
				return p + 4;
		}
		return n;
	}
	const char *gt = memchr(s + i, '>', n - i);
	return gt ? (size_t)(gt - s) + 1 : n;
}

/* White space as the HTML tokenizer knows it (CR is read as LF). */
static bool html_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Where the tag whose attributes start at s[j] ends (its '>'), or n when
 * it does not; *self_closing when it ends in "/>". This follows the HTML
 * tokenizer's attribute states, so that a quote counts only where the
 * tokenizer would start a quoted value. */
static size_t tag_end(const char *s, size_t n, size_t j, bool *self_closing)
{
	enum { BEFORE_NAME, NAME, AFTER_NAME, BEFORE_VALUE, VALUE } st = BEFORE_NAME;
	*self_closing = false;
	for (; j < n; j++) {
		char c = s[j];
		bool ws = html_ws(c);
		if (c == '>')
			return j;
		switch (st) {
		case BEFORE_NAME:
		case NAME:
		case AFTER_NAME:
			if (c == '/') {
				if (j + 1 < n && s[j + 1] == '>') {
					*self_closing = true;
					return j + 1;
				}
				st = BEFORE_NAME;
			} else if (c == '=' && st != BEFORE_NAME) {
				st = BEFORE_VALUE;
			} else if (ws) {
				st = st == BEFORE_NAME ? BEFORE_NAME : AFTER_NAME;
			} else {
				st = NAME;
			}
			break;
		case BEFORE_VALUE:
			if (c == '"' || c == '\'') {
				const char *q = memchr(s + j + 1, c, n - j - 1);
				if (!q)
					return n;
				j = (size_t)(q - s);
				st = BEFORE_NAME;
			} else if (!ws) {
				st = VALUE;
			}
			break;
		case VALUE:
			if (ws)
				st = BEFORE_NAME;
			break;
		}
	}
	return n;
}

/* Whether s[i..] starts with name (nl bytes, lower case, any case in s)
 * followed by white space, '/' or '>'. */
static bool name_at(const char *s, size_t n, size_t i, const char *name, size_t nl)
{
	return n - i > nl && strncasecmp(s + i, name, nl) == 0 &&
	       (html_ws(s[i + nl]) || s[i + nl] == '/' || s[i + nl] == '>');
}

/* Where the raw text that starts at s[i] ends: at the first "</name"
 * followed by white space, '/' or '>', or at n. A script's text follows
 * the tokenizer's escape states too: after "<!--", a "<script" makes the
 * next "</script" part of the text, until "-->". */
static size_t skip_raw(const char *s, size_t n, size_t i, const char *name, size_t nl)
{
	if (strcmp(name, "script") != 0) {
		for (;;) {
			const char *c = memmem(s + i, n - i, "</", 2);
			if (!c)
				return n;
			i = (size_t)(c - s) + 2;
			if (name_at(s, n, i, name, nl))
				return i - 2;
		}
	}
	enum { DATA, ESCAPED, DOUBLE } st = DATA;
	size_t dashes = 0; /* '-'s just seen: "--" then '>' ends escaping */
	for (; i < n; i++) {
		char c = s[i];
		if (st != DATA) {
			if (c == '-') {
				dashes++;
				continue;
			}
			if (c == '>' && dashes >= 2)
				st = DATA;
			dashes = 0;
		}
		if (c != '<')
			continue;
		if (st == DATA && n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
			st = ESCAPED;
			dashes = 2;
			i += 3;
		} else if (i + 1 < n && s[i + 1] == '/' && name_at(s, n, i + 2, "script", 6)) {
			if (st != DOUBLE)
				return i;
			st = ESCAPED;
		} else if (st == ESCAPED && name_at(s, n, i + 1, "script", 6)) {
			st = DOUBLE;
		}
	}
	return n;
}

/* Which mode the HTML parser is in, as far as the estimate can tell. */
enum dmode {
	DM_HTML,    /* certainly HTML */
	DM_FOREIGN, /* certainly SVG or MathML content */
	DM_UNSURE,  /* either: only what adds to the estimate is done */
};

/* An estimate, meant to err upwards, of how deeply the elements of s
 * nest at the deepest (it stops counting once that passes limit).
 *
 * Where the estimate cannot tell what the parser does, it takes what
 * counts more under both readings: in DM_UNSURE, every start tag is
 * pushed and nothing is popped for it, and the content of an element
 * that may be raw text (<script> after an <svg>...) is read for its start
 * tags while its end tags, up to the earliest place the raw text can end
 * (raw_end), are left out. */
static size_t html_depth(const char *s, size_t n, size_t limit)
{
	const uint32_t h_p = name_hash("p"), h_li = name_hash("li"), h_dd = name_hash("dd");
	const uint32_t h_dt = name_hash("dt"), h_table = name_hash("table");
	const uint32_t h_div = name_hash("div"), h_address = name_hash("address");
	const uint32_t h_ul = name_hash("ul"), h_ol = name_hash("ol");
	const uint32_t h_svg = name_hash("svg"), h_math = name_hash("math");
	const uint32_t h_frameset = name_hash("frameset"), h_h1 = name_hash("h1");
	const uint32_t h_font = name_hash("font"), h_axml = name_hash("annotation-xml");
	enum dmode mode = DM_HTML;
	size_t root = 0;     /* entries up to the foreign root, when known */
	bool in_svg = false; /* the foreign root is <svg> (else <math>) */
	size_t ipoint = 0;   /* entries up to an integration point, or 0 */
	size_t raw_end = 0;
	struct dent *st = NULL;
	size_t depth = 0, deepest = 0, cap = 0;
	size_t i = 0;
	while (i < n && deepest <= limit) {
		const char *lt = memchr(s + i, '<', n - i);
		if (!lt)
			break;
		i = (size_t)(lt - s);
		const bool maybe_raw = i < raw_end;
		bool end = i + 1 < n && s[i + 1] == '/';
		size_t j = i + 1 + (end ? 1 : 0);
		bool decl = i + 1 < n && (s[i + 1] == '!' || s[i + 1] == '?');
		if (decl || (end && j < n && !isalpha((unsigned char)s[j]))) {
			size_t e;
			if (n - i >= 9 && memcmp(s + i, "<![CDATA[", 9) == 0 && mode != DM_HTML) {
				const char *c = memmem(s + i, n - i, "]]>", 3);
				e = c ? (size_t)(c - s) + 3 : n;
				if (mode == DM_UNSURE) { /* CDATA, or a comment to '>' */
					raw_end = e > raw_end ? e : raw_end;
					e = i + 2;
				}
			} else {
				e = skip_decl(s, n, i);
			}
			if (maybe_raw) { /* text, or markup that hides tags */
				raw_end = e > raw_end ? e : raw_end;
				e = i + 1;
			}
			i = e;
			continue;
		}
		if (j >= n || !isalpha((unsigned char)s[j])) {
			i++;
			continue;
		}
		/* the name, lower-cased: hashed in full, kept if short */
		char name[16];
		size_t nl = 0;
		uint32_t h = 2166136261u;
		for (; j < n && !html_ws(s[j]) && s[j] != '/' && s[j] != '>'; j++) {
			char c = (char)tolower((unsigned char)s[j]);
			h = (h ^ (unsigned char)c) * 16777619u;
			if (nl < sizeof(name) - 1)
				name[nl] = c;
			nl++;
		}
		/* a long or odd name (a NUL becomes U+FFFD in the parser) is
		 * no tag we know */
		name[nl < sizeof(name) && !memchr(name, '\0', nl) ? nl : 0] = '\0';
		/* the parser closes any heading with any heading's end tag */
		if (nl == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6')
			h = h_h1;
		bool self_closing;
		size_t k = tag_end(s, n, j, &self_closing);
		if (k >= n && maybe_raw) { /* maybe text: read on */
			i++;
			continue;
		}
		if (k >= n)
			break; /* the parser drops an unfinished tag */
		i = k + 1;
		if (end) {
			if (maybe_raw)
				continue;
			bool popped = false;
			/* gumbo matches foreign end tags by their original
			 * text: only a plain "</name>" is sure to match */
			if (mode == DM_FOREIGN && root && k == j) {
				/* to its element, whatever lies above, but not
				 * below the foreign root */
				size_t above = depth - (root - 1);
				popped = pop_to(st + root - 1, &above, h, h, false, D_SCOPE);
				depth = root - 1 + above;
			} else if (mode != DM_FOREIGN && !tag_is(name, kept_tags) &&
			           (mode == DM_HTML || k == j)) {
				enum dkind pass = D_INLINE;
				if (h == h_li)
					pass = D_OTHER;
				else if (tag_is(name, block_end_tags))
					pass = D_LIST;
				popped = pop_to(st, &depth, h, h, false, pass);
			}
			if (ipoint && depth < ipoint) {
				ipoint = 0; /* back in foreign content, or out of it */
				mode = DM_UNSURE;
			}
			if (mode == DM_FOREIGN && (!popped || depth < root))
				mode = DM_UNSURE;
			continue;
		}
		enum dmode m = maybe_raw ? DM_UNSURE : mode;
		if (!maybe_raw && mode != DM_HTML && tag_is(name, breakout_tags))
			m = mode = h == h_font ? DM_UNSURE : DM_HTML;
		if (m == DM_FOREIGN && self_closing)
			continue;
		if (tag_is(name, raw_tags) && m != DM_FOREIGN) {
			bool plain = strcmp(name, "plaintext") == 0;
			if (m == DM_HTML) {
				if (plain)
					break;
				i = skip_raw(s, n, i, name, nl);
				continue;
			}
			size_t e = plain ? n : skip_raw(s, n, i, name, nl);
			raw_end = e > raw_end ? e : raw_end;
		}
		if (m == DM_HTML) {
			if (tag_is(name, closes_p_tags))
				pop_to(st, &depth, h_p, h_p, false, D_LIST);
			else if (tag_is(name, table_part_tags))
				/* in a table, a row or cell closes what the
				 * previous cell left open */
				pop_to(st, &depth, h_table, h_table, true, D_LIST);
			if (h == h_h1 && depth && st[depth - 1].hash == h_h1)
				depth--; /* a heading right in a heading closes it */
			if (h == h_li)
				pop_to(st, &depth, h_li, h_li, false, D_PDA);
			else if (h == h_dd || h == h_dt)
				pop_to(st, &depth, h_dd, h_dt, false, D_PDA);
			if (tag_is(name, void_tags))
				continue;
		}
		if (depth == cap) {
			cap = cap ? 2 * cap : 256;
			st = ab_xrealloc(st, cap * sizeof(*st));
		}
		enum dkind kind = D_OTHER;
		if (tag_is(name, inline_tags))
			kind = D_INLINE;
		else if (h == h_p || h == h_div || h == h_address)
			kind = D_PDA;
		else if (h == h_ul || h == h_ol)
			kind = D_LIST;
		else if (tag_is(name, scope_tags))
			kind = D_SCOPE;
		size_t level = (depth ? st[depth - 1].level : 0) + (h == h_table ? 4 : 1);
		st[depth].hash = h;
		st[depth].kind = kind;
		st[depth].level = level;
		depth++;
		if (level > deepest)
			deepest = level;
		bool svg_point = !strcmp(name, "foreignobject") || !strcmp(name, "desc") ||
		                 !strcmp(name, "title");
		if (maybe_raw) {
			/* maybe text: whatever it would change, we are unsure */
			if (h == h_svg || h == h_math || h == h_frameset)
				mode = DM_UNSURE;
		} else if (m == DM_FOREIGN && h == h_axml) {
			mode = DM_UNSURE; /* HTML inside or not, by its encoding */
		} else if (m == DM_FOREIGN && (svg_point || tag_is(name, mathml_text_tags))) {
			bool is_point = in_svg ? svg_point : tag_is(name, mathml_text_tags);
			if (!root) {
				mode = DM_UNSURE; /* the namespace is not known */
			} else if (is_point) {
				mode = DM_HTML;
				ipoint = depth;
			}
		} else if ((h == h_svg || h == h_math) && m != DM_FOREIGN) {
			/* a new foreign root (or, when unsure, maybe a child) */
			mode = DM_FOREIGN;
			root = m == DM_HTML ? depth : 0;
			in_svg = h == h_svg;
		} else if (h == h_frameset) {
			mode = DM_UNSURE; /* the frameset modes ignore most tags */
		}
	}
	free(st);
	return deepest;
}

/* The allocator handed to gumbo (see the top of the file): every block
 * carries a header linking it into a list, so that all of them can be
 * freed without gumbo, and the total is bounded. */
struct galloc {
	struct ghdr *head;
	size_t used, max;
	unsigned long calls;
	int64_t deadline, budget_ms;
	struct builder *b;
	jmp_buf jump;
};

struct ghdr {
	union {
		struct {
			struct ghdr *prev, *next;
			size_t size;
		} h;
		max_align_t align;
	} u;
};

static void *galloc_alloc(void *ud, size_t size)
{
	struct galloc *g = ud;
	struct builder *b = g->b;
	if (size > g->max - g->used) {
		bfail(b, AB_ETOOBIG, "the HTML needs more than the limit of %zu MiB to parse",
		      g->max >> 20);
		longjmp(g->jump, 1);
	}
	if (++g->calls % 1024 == 0 && ab_now_ms() > g->deadline) {
		if (ab_now_ms() > b->deadline)
			bfail(b, AB_ETIMEOUT, "extraction took longer than the limit of %u ms",
			      b->max_ms);
		else
			bfail(b, AB_ETIMEOUT,
			      "the HTML took longer than %lld ms to parse (5 s plus 5 ms per KiB)",
			      (long long)g->budget_ms);
		longjmp(g->jump, 1);
	}
	struct ghdr *h = ab_xmalloc(sizeof(*h) + size);
	h->u.h.size = size;
	h->u.h.prev = NULL;
	h->u.h.next = g->head;
	if (g->head)
		g->head->u.h.prev = h;
	g->head = h;
	g->used += size;
	return h + 1;
}

static void galloc_free(void *ud, void *p)
{
	struct galloc *g = ud;
	if (!p)
		return;
	struct ghdr *h = (struct ghdr *)p - 1;
	if (h->u.h.prev)
		h->u.h.prev->u.h.next = h->u.h.next;
	else
		g->head = h->u.h.next;
	if (h->u.h.next)
		h->u.h.next->u.h.prev = h->u.h.prev;
	g->used -= h->u.h.size;
	free(h);
}

static void galloc_free_all(struct galloc *g)
{
	while (g->head) {
		struct ghdr *next = g->head->u.h.next;
		free(g->head);
		g->head = next;
	}
	g->used = 0;
}

/* The only frame that calls setjmp: nothing in it changes after the
 * call, so nothing is lost when the allocator jumps back. NULL when the
 * parse was abandoned (b->rc says why). */
static GumboOutput *parse_html_guarded(struct galloc *g, const GumboOptions *o, const char *s,
                                       size_t n)
{
	if (setjmp(g->jump) != 0)
		return NULL;
	return gumbo_parse_with_options(o, s, n);
}

enum h_role {
	H_INLINE, /* text flows through */
	H_SKIP,   /* nothing inside is text */
	H_HEAD,   /* <head>: only the <title> */
	H_TITLE,
	H_BLOCK, /* its own paragraph */
	H_LINE,  /* its own line */
	H_LIST,  /* ul, ol, dl, menu */
	H_ITEM,  /* li */
	H_CELL,  /* td, th */
	H_PRE,
	H_HEADING,
	H_BR,
};

static enum h_role html_role(const GumboNode *node)
{
	const GumboElement *el = &node->v.element;
	if (node->type == GUMBO_NODE_TEMPLATE)
		return H_SKIP;
	if (el->tag_namespace != GUMBO_NAMESPACE_HTML)
		return el->tag == GUMBO_TAG_SVG ? H_SKIP : H_INLINE;
	if (gumbo_get_attribute(&el->attributes, "hidden"))
		return H_SKIP;
	switch (el->tag) {
	case GUMBO_TAG_SCRIPT:
	case GUMBO_TAG_STYLE:
	case GUMBO_TAG_NOSCRIPT:
	case GUMBO_TAG_TEMPLATE:
	case GUMBO_TAG_IFRAME:
	case GUMBO_TAG_OBJECT:
	case GUMBO_TAG_SELECT:
	case GUMBO_TAG_DATALIST:
	case GUMBO_TAG_TEXTAREA:
	case GUMBO_TAG_NOEMBED:
	case GUMBO_TAG_NOFRAMES:
		return H_SKIP;
	case GUMBO_TAG_HEAD:
		return H_HEAD;
	case GUMBO_TAG_TITLE:
		return H_TITLE;
	case GUMBO_TAG_H1:
	case GUMBO_TAG_H2:
	case GUMBO_TAG_H3:
	case GUMBO_TAG_H4:
	case GUMBO_TAG_H5:
	case GUMBO_TAG_H6:
		return H_HEADING;
	case GUMBO_TAG_P:
	case GUMBO_TAG_DIV:
	case GUMBO_TAG_SECTION:
	case GUMBO_TAG_ARTICLE:
	case GUMBO_TAG_ASIDE:
	case GUMBO_TAG_HEADER:
	case GUMBO_TAG_FOOTER:
	case GUMBO_TAG_MAIN:
	case GUMBO_TAG_NAV:
	case GUMBO_TAG_BLOCKQUOTE:
	case GUMBO_TAG_ADDRESS:
	case GUMBO_TAG_CENTER:
	case GUMBO_TAG_FIGURE:
	case GUMBO_TAG_FORM:
	case GUMBO_TAG_FIELDSET:
	case GUMBO_TAG_DETAILS:
	case GUMBO_TAG_HGROUP:
	case GUMBO_TAG_HR:
	case GUMBO_TAG_TABLE:
	case GUMBO_TAG_BODY:
	case GUMBO_TAG_HTML:
		return H_BLOCK;
	case GUMBO_TAG_UL:
	case GUMBO_TAG_OL:
	case GUMBO_TAG_DL:
	case GUMBO_TAG_MENU:
	case GUMBO_TAG_DIR:
		return H_LIST;
	case GUMBO_TAG_LI:
		return H_ITEM;
	case GUMBO_TAG_TD:
	case GUMBO_TAG_TH:
		return H_CELL;
	case GUMBO_TAG_PRE:
	case GUMBO_TAG_LISTING:
	case GUMBO_TAG_XMP:
		return H_PRE;
	case GUMBO_TAG_BR:
		return H_BR;
	case GUMBO_TAG_TR:
	case GUMBO_TAG_DT:
	case GUMBO_TAG_DD:
	case GUMBO_TAG_CAPTION:
	case GUMBO_TAG_FIGCAPTION:
	case GUMBO_TAG_SUMMARY:
	case GUMBO_TAG_LEGEND:
	case GUMBO_TAG_OPTION:
	case GUMBO_TAG_THEAD:
	case GUMBO_TAG_TBODY:
	case GUMBO_TAG_TFOOT:
		return H_LINE;
	default:
		return H_INLINE;
	}
}

struct hframe {
	const GumboNode *node;
	unsigned next; /* the next child to visit */
	enum h_role role;
	int list;    /* the nearest list frame at or above, or -1 */
	int counter; /* a list's next item number */
};

struct hwalk {
	struct builder *b;
	struct hframe *st;
	size_t n, cap;
	unsigned lists;   /* open lists */
	unsigned head;    /* open <head>s */
	unsigned pre;     /* open <pre>s */
	unsigned heading; /* open headings; only the outermost counts */
	int level;        /* its level */
};

/* A block boundary: a paragraph of its own, except inside a list (a new
 * line of the list) or a heading (a space). */
static void h_boundary(struct hwalk *w)
{
	if (w->heading)
		add(w->b, " ", 1, true);
	else if (w->lists)
		line_break(w->b);
	else
		paragraph(w->b);
}

/* The text of an element's children (a <title>: RCDATA, so text only). */
static void h_title(struct hwalk *w, const GumboNode *node)
{
	const GumboVector *kids = &node->v.element.children;
	struct ab_buf t = {0};
	for (unsigned i = 0; i < kids->length && t.len < 4 * TITLE_MAX; i++) {
		const GumboNode *k = kids->data[i];
		if (k->type == GUMBO_NODE_TEXT || k->type == GUMBO_NODE_WHITESPACE ||
		    k->type == GUMBO_NODE_CDATA)
			ab_buf_puts(&t, k->v.text.text);
	}
	if (t.len)
		set_title(w->b, t.data, t.len);
	ab_buf_free(&t);
}

/* What happens on entering an element; false when its children are to be
 * skipped (it is then not pushed). */
static bool h_enter(struct hwalk *w, const GumboNode *node, struct hframe *f)
{
	struct builder *b = w->b;
	f->role = html_role(node);
	switch (f->role) {
	case H_SKIP:
		return false;
	case H_TITLE:
		h_title(w, node);
		return false;
	case H_HEAD:
		w->head++;
		break;
	case H_HEADING:
		if (w->heading++ == 0) {
			paragraph(b); /* even in a list: a heading is a block */
			w->level = node->v.element.tag - GUMBO_TAG_H1 + 1;
		}
		break;
	case H_BLOCK:
	case H_PRE:
		h_boundary(w);
		if (f->role == H_PRE)
			w->pre++;
		break;
	case H_LIST:
		h_boundary(w);
		w->lists++;
		f->list = (int)w->n;
		f->counter = 1;
		break;
	case H_ITEM: {
		char marker[16] = "- ";
		if (w->heading)
			break;
		if (f->list >= 0 && w->st[f->list].node->v.element.tag == GUMBO_TAG_OL)
			snprintf(marker, sizeof(marker), "%d. ", w->st[f->list].counter++);
		prefix(b, w->lists ? w->lists : 1, marker);
		break;
	}
	case H_CELL:
		if (!line_empty(&b->cur) && !b->fresh)
			lit(b, " | ");
		break;
	case H_LINE:
	case H_BR:
		if (w->heading)
			add(b, " ", 1, true);
		else
			line_break(b);
		break;
	case H_INLINE:
		break;
	}
	return true;
}

static void h_leave(struct hwalk *w, const struct hframe *f)
{
	switch (f->role) {
	case H_HEAD:
		w->head--;
		break;
	case H_HEADING:
		if (--w->heading == 0)
			end_block(w->b, AB_BLOCK_HEADING, w->level);
		break;
	case H_PRE:
		w->pre--;
		h_boundary(w);
		break;
	case H_BLOCK:
		h_boundary(w);
		break;
	case H_LIST:
		w->lists--;
		h_boundary(w);
		break;
	case H_LINE:
		if (w->heading)
			add(w->b, " ", 1, true);
		else
			line_break(w->b);
		break;
	default:
		break;
	}
}

static void h_walk(struct hwalk *w, const GumboNode *root)
{
	w->cap = 64;
	w->st = ab_xmalloc(w->cap * sizeof(*w->st));
	w->st[0] = (struct hframe){root, 0, H_INLINE, -1, 0};
	w->n = 1;
	while (w->n > 0 && !stop(w->b, 4096)) {
		struct hframe *top = &w->st[w->n - 1];
		const GumboVector *kids = top->node->type == GUMBO_NODE_DOCUMENT
		                              ? &top->node->v.document.children
		                              : &top->node->v.element.children;
		if (top->next >= kids->length) {
			struct hframe done = *top;
			w->n--;
			h_leave(w, &done);
			continue;
		}
		const GumboNode *k = kids->data[top->next++];
		switch (k->type) {
		case GUMBO_NODE_TEXT:
		case GUMBO_NODE_WHITESPACE:
		case GUMBO_NODE_CDATA:
			if (!w->head)
				add(w->b, k->v.text.text, strlen(k->v.text.text), w->pre == 0);
			break;
		case GUMBO_NODE_ELEMENT:
		case GUMBO_NODE_TEMPLATE: {
			struct hframe f = {k, 0, H_INLINE, top->list, 0};
			if (!h_enter(w, k, &f))
				break;
			if (w->n == w->cap) {
				w->cap *= 2;
				w->st = ab_xrealloc(w->st, w->cap * sizeof(*w->st));
			}
			w->st[w->n++] = f;
			break;
		}
		default:
			break; /* comments, documents */
		}
	}
	free(w->st);
	w->st = NULL;
}

static void read_html(struct builder *b, const char *s, size_t n,
                      const struct ab_extract_limits *lim)
{
	if (html_depth(s, n, lim->max_html_depth) > lim->max_html_depth) {
		bfail(b, AB_ETOOBIG, "the HTML nests elements more than %u levels deep",
		      lim->max_html_depth);
		return;
	}
	/* per-byte budgets: hostile HTML may cost what a large honest page
	 * costs, not more (gumbo takes about 0.3 ms and 20 bytes per byte) */
	struct galloc g;
	memset(&g, 0, sizeof(g));
	g.max = HTML_MEM_BASE + HTML_MEM_PER_BYTE * n;
	if (g.max > lim->max_parse_mem || n > SIZE_MAX / 64)
		g.max = lim->max_parse_mem;
	g.budget_ms = HTML_MS_BASE + (int64_t)(n / HTML_BYTES_PER_MS);
	g.deadline = ab_now_ms() + g.budget_ms;
	if (g.deadline > b->deadline)
		g.deadline = b->deadline;
	g.b = b;
	GumboOptions o = kGumboDefaultOptions;
	o.allocator = galloc_alloc;
	o.deallocator = galloc_free;
	o.userdata = &g;
	o.max_errors = 0;
	GumboOutput *out = parse_html_guarded(&g, &o, s, n);
	if (out) {
		struct hwalk w;
		memset(&w, 0, sizeof(w));
		w.b = b;
		h_walk(&w, out->document);
		paragraph(b);
	}
	galloc_free_all(&g); /* instead of gumbo_destroy_output: see the top */
}

/* ---- PDF (poppler-glib, loaded on first use: see the top) ---- */

/* The poppler and glib functions read_pdf() calls, by their prototypes in
 * poppler.h and the glib headers. The member names differ from the real
 * ones so that no glib macro of the same name can rewrite a call. */
struct pdf_api {
	GBytes *(*bytes_new_static)(gconstpointer, gsize);
	void (*bytes_unref)(GBytes *);
	void (*clear_error)(GError **);
	void (*free_mem)(gpointer);
	void (*object_unref)(gpointer);
	GQuark (*error_quark)(void);
	PopplerDocument *(*doc_new_from_bytes)(GBytes *, const char *, GError **);
	int (*doc_n_pages)(PopplerDocument *);
	gchar *(*doc_title)(PopplerDocument *);
	PopplerPage *(*doc_page)(PopplerDocument *, int);
	char *(*page_text)(PopplerPage *);
};

#define PDF_LIBRARY "libpoppler-glib.so.8"
#define PDF_INSTALL "on Debian and Ubuntu: apt-get install libpoppler-glib8"

/* The compound literal inside sizeof (never evaluated: no code and no
 * reference to the symbol) makes the compiler check the member's type
 * against the header's prototype. */
#define PDF_RESOLVE(field, name)                                                  \
	do {                                                                      \
		(void)sizeof((struct pdf_api){.field = name});                    \
		void *p_ = dlsym(h, #name);                                       \
		if (!p_) {                                                        \
			missing = #name;                                          \
			goto bad;                                                 \
		}                                                                 \
		memcpy(&api->field, &p_, sizeof(p_));                             \
	} while (0)

/* Opens soname and resolves every function into *api. glib's functions
 * are found through poppler-glib's own dependencies (dlsym searches the
 * handle's dependency tree). On success the library stays loaded. */
static int pdf_load(const char *soname, struct pdf_api *api, char *err, size_t errlen)
{
	const char *missing;
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();
		return fail(err, errlen, AB_EUNAVAIL,
		            "PDF support needs libpoppler-glib (%s), which could not be loaded: %s",
		            PDF_INSTALL, why ? why : soname);
	}
	PDF_RESOLVE(bytes_new_static, g_bytes_new_static);
	PDF_RESOLVE(bytes_unref, g_bytes_unref);
	PDF_RESOLVE(clear_error, g_clear_error);
	PDF_RESOLVE(free_mem, g_free);
	PDF_RESOLVE(object_unref, g_object_unref);
	PDF_RESOLVE(error_quark, poppler_error_quark);
	PDF_RESOLVE(doc_new_from_bytes, poppler_document_new_from_bytes);
	PDF_RESOLVE(doc_n_pages, poppler_document_get_n_pages);
	PDF_RESOLVE(doc_title, poppler_document_get_title);
	PDF_RESOLVE(doc_page, poppler_document_get_page);
	PDF_RESOLVE(page_text, poppler_page_get_text);
	return 0;
bad:
	dlclose(h);
	memset(api, 0, sizeof(*api));
	return fail(err, errlen, AB_EUNAVAIL,
	            "PDF support needs libpoppler-glib (%s); %s has no %s", PDF_INSTALL,
	            soname, missing);
}
#undef PDF_RESOLVE

int ab_extract_pdf_load(const char *soname, char *err, size_t errlen)
{
	struct pdf_api api;
	if (err && errlen)
		err[0] = '\0';
	if (!soname)
		return fail(err, errlen, AB_EINVAL, "invalid arguments");
	return pdf_load(soname, &api, err, errlen);
}

/* The process's one copy, filled once by pdf_init(). */
static struct pdf_api pdf;
static pthread_once_t pdf_once = PTHREAD_ONCE_INIT;
static int pdf_rc;
static char pdf_err[256];

static void pdf_init(void)
{
	pdf_rc = pdf_load(PDF_LIBRARY, &pdf, pdf_err, sizeof(pdf_err));
}

static void read_pdf(struct builder *b, const void *data, size_t n, uint32_t max_pages)
{
	pthread_once(&pdf_once, pdf_init);
	if (pdf_rc < 0) {
		bfail(b, pdf_rc, "%s", pdf_err);
		return;
	}
	/* poppler reads the caller's bytes in place; the document (which
	 * holds a reference to them) is gone before we return */
	GBytes *bytes = pdf.bytes_new_static(data, n);
	GError *gerr = NULL;
	PopplerDocument *doc = pdf.doc_new_from_bytes(bytes, NULL, &gerr);
	if (!doc) {
		if (gerr && gerr->domain == pdf.error_quark() &&
		    gerr->code == POPPLER_ERROR_ENCRYPTED)
			bfail(b, AB_EINVAL,
			      "the PDF is encrypted with a password: AutoBot cannot "
			      "read it (upload a copy without the password)");
		else
			bfail(b, AB_EINVAL, "not a readable PDF: %s",
			      gerr && gerr->message ? gerr->message : "unknown error");
		goto out;
	}
	int pages = pdf.doc_n_pages(doc);
	if (pages < 0 || (uint32_t)pages > max_pages) {
		bfail(b, AB_ETOOBIG, "the PDF has %d pages; the limit is %u", pages, max_pages);
		goto out;
	}
	char *title = pdf.doc_title(doc);
	if (title)
		set_title(b, title, strlen(title));
	pdf.free_mem(title);
	b->d->npages = (uint32_t)pages;
	for (int i = 0; i < pages && !stop(b, 1); i++) {
		PopplerPage *page = pdf.doc_page(doc, i);
		if (!page)
			continue;
		char *text = pdf.page_text(page);
		pdf.object_unref(page);
		b->page = (uint32_t)i + 1;
		if (text)
			add_lines(b, text, strlen(text), true, false);
		pdf.free_mem(text);
		paragraph(b);
	}
out:
	if (doc)
		pdf.object_unref(doc);
	pdf.clear_error(&gerr);
	pdf.bytes_unref(bytes);
}

/* ---- the entry point ---- */

static void resolve_limits(const struct ab_extract_limits *in, struct ab_extract_limits *l)
{
	ab_extract_limits_default(l);
	if (!in)
		return;
	if (in->max_input)
		l->max_input = in->max_input;
	if (in->max_output)
		l->max_output = in->max_output;
	if (in->max_pages)
		l->max_pages = in->max_pages;
	if (in->max_parse_mem)
		l->max_parse_mem = in->max_parse_mem;
	if (in->max_ms)
		l->max_ms = in->max_ms;
	if (in->max_html_depth)
		l->max_html_depth = in->max_html_depth;
}

int ab_extract(const void *data, size_t len, const char *mime, const char *filename,
               const struct ab_extract_limits *lim, struct ab_doc_text **out, char *err,
               size_t errlen)
{
	struct ab_extract_limits l;
	enum ab_doc_kind kind;
	struct ab_buf text = {0};
	struct builder b;
	int rc;
	if (err && errlen)
		err[0] = '\0';
	if (!out || (!data && len))
		return fail(err, errlen, AB_EINVAL, "invalid arguments");
	*out = NULL;
	resolve_limits(lim, &l);
	if (len > l.max_input)
		return fail(err, errlen, AB_ETOOBIG,
		            "the document is %zu bytes; the limit is %zu bytes", len, l.max_input);
	if ((rc = ab_extract_detect(data, len, mime, filename, &kind, err, errlen)) < 0)
		return rc;
	builder_init(&b, kind, &l, err, errlen);
	if (kind == AB_DOC_PDF) {
		read_pdf(&b, data, len, l.max_pages);
	} else {
		if ((rc = to_utf8(data, len, &text, err, errlen)) < 0)
			goto out;
		if (kind == AB_DOC_TEXT)
			read_text(&b, text.data ? text.data : "", text.len);
		else if (kind == AB_DOC_MARKDOWN)
			read_markdown(&b, text.data ? text.data : "", text.len);
		else
			read_html(&b, text.data ? text.data : "", text.len, &l);
	}
	rc = b.rc;
	if (rc == 0)
		*out = finish(&b);
out:
	if (b.d)
		builder_free(&b);
	ab_buf_free(&text);
	return rc;
}

/* ---- rendering for the chunker ---- */

/* Whether the chunker would read this paragraph line as Markdown
 * structure: an ATX heading, a fence, a setext underline. */
static bool looks_like_markup(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] == ' ')
		i++;
	if (i >= 4 || i == n)
		return false;
	if (s[i] == '#')
		return true;
	if (n - i >= 3 && (memcmp(s + i, "```", 3) == 0 || memcmp(s + i, "~~~", 3) == 0))
		return true;
	if (s[i] == '=' || s[i] == '-') {
		char c = s[i];
		while (i < n && s[i] == c)
			i++;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		return i == n;
	}
	return false;
}

char *ab_doc_text_render(const struct ab_doc_text *d, size_t *len)
{
	struct ab_buf r = {0};
	uint32_t page = 1;
	ab_buf_append(&r, "", 0); /* "" for a document without blocks */
	for (size_t i = 0; d && i < d->nblocks; i++) {
		const struct ab_doc_block *blk = &d->blocks[i];
		for (; blk->page > page; page++)
			ab_buf_puts(&r, "\f\n");
		if (blk->kind == AB_BLOCK_HEADING) {
			int lvl = blk->level < 1 ? 1 : blk->level > 6 ? 6 : blk->level;
			ab_buf_append(&r, "######", (size_t)lvl);
			ab_buf_putc(&r, ' ');
			ab_buf_append(&r, blk->text, blk->len);
			ab_buf_puts(&r, "\n\n");
			continue;
		}
		for (size_t s = 0; s < blk->len;) {
			const char *nl = memchr(blk->text + s, '\n', blk->len - s);
			size_t e = nl ? (size_t)(nl - blk->text) : blk->len;
			if (looks_like_markup(blk->text + s, e - s))
				ab_buf_puts(&r, "    ");
			ab_buf_append(&r, blk->text + s, e - s);
			ab_buf_putc(&r, '\n');
			s = e + 1;
		}
		ab_buf_putc(&r, '\n');
	}
	if (len)
		*len = r.len;
	return ab_buf_steal(&r);
}
