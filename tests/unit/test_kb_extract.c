/*
 * test_kb_extract.c - unit tests for src/kb/extract.c: text, Markdown,
 * HTML and PDF extraction from the sample documents in tests/data/kb (the
 * PDFs are written by tests/data/kb/make_pdfs.py), type detection and
 * refusals, broken and encrypted PDFs, every limit, loading poppler on
 * first use (from several threads; a missing library), and the rendering
 * for the chunker (checked by running src/text/chunk.c on it).
 *
 * Every successful extraction also goes through check_doc(), which holds
 * each block to the promises of extract.h.
 */
#include "ab_build.h"
#include "chunk.h"
#include "common.h"
#include "extract.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_data(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/data/kb/%s", AB_SOURCE_ROOT, name);
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	struct ab_buf b = {0};
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		ab_buf_append(&b, tmp, n);
	fclose(f);
	*len = b.len;
	return ab_buf_steal(&b);
}

/* The promises of extract.h about blocks. */
static void check_doc(const struct ab_doc_text *d)
{
	for (size_t i = 0; i < d->nblocks; i++) {
		const struct ab_doc_block *b = &d->blocks[i];
		cr_assert(b->len > 0, "block %zu is empty", i);
		cr_assert_eq(strlen(b->text), b->len, "block %zu: len", i);
		cr_assert(b->text[0] != ' ' && b->text[0] != '\n' && b->text[0] != '\t',
		          "block %zu starts with white space: <%s>", i, b->text);
		char last = b->text[b->len - 1];
		cr_assert(last != ' ' && last != '\n' && last != '\t',
		          "block %zu ends with white space: <%s>", i, b->text);
		cr_assert_null(strstr(b->text, "\n\n"), "block %zu has a blank line", i);
		for (size_t k = 0; k < b->len; k++) {
			unsigned char c = (unsigned char)b->text[k];
			cr_assert(c >= 0x20 || c == '\n' || c == '\t', "block %zu: control 0x%02x",
			          i, c);
			cr_assert(c != 0x7f);
		}
		if (b->kind == AB_BLOCK_HEADING) {
			cr_assert(b->level >= 1 && b->level <= 6);
			cr_assert_null(strchr(b->text, '\n'), "heading on two lines: <%s>",
			               b->text);
		} else {
			cr_assert_eq(b->level, 0);
		}
		if (d->npages)
			cr_assert(b->page >= 1 && b->page <= d->npages);
		else
			cr_assert_eq(b->page, 0);
	}
}

static struct ab_doc_text *extract_lim(const void *data, size_t len, const char *mime,
                                       const char *name, const struct ab_extract_limits *lim)
{
	struct ab_doc_text *d = NULL;
	char err[256];
	int rc = ab_extract(data, len, mime, name, lim, &d, err, sizeof(err));
	cr_assert_eq(rc, 0, "extract failed (%d): %s", rc, err);
	cr_assert_not_null(d);
	check_doc(d);
	return d;
}

static struct ab_doc_text *extract(const void *data, size_t len, const char *mime, const char *name)
{
	return extract_lim(data, len, mime, name, NULL);
}

static struct ab_doc_text *extract_file(const char *name)
{
	size_t len;
	char *data = read_data(name, &len);
	struct ab_doc_text *d = extract(data, len, NULL, name);
	free(data);
	return d;
}

/* Expects a failure with rc and a message containing want. */
static void refused(const void *data, size_t len, const char *mime, const char *name,
                    const struct ab_extract_limits *lim, int rc, const char *want)
{
	struct ab_doc_text *d = (struct ab_doc_text *)1;
	char err[256] = "untouched";
	int got = ab_extract(data, len, mime, name, lim, &d, err, sizeof(err));
	cr_assert_eq(got, rc, "rc %d, expected %d (%s)", got, rc, err);
	cr_assert_null(d, "no document on failure");
	cr_assert(strstr(err, want), "message <%s> lacks <%s>", err, want);
}

/* The block whose text contains s (NULL when none does). */
static const struct ab_doc_block *find(const struct ab_doc_text *d, const char *s)
{
	for (size_t i = 0; i < d->nblocks; i++)
		if (strstr(d->blocks[i].text, s))
			return &d->blocks[i];
	return NULL;
}

static bool anywhere(const struct ab_doc_text *d, const char *s)
{
	return find(d, s) != NULL || (d->title && strstr(d->title, s));
}

static void assert_heading(const struct ab_doc_block *b, int level, const char *text)
{
	cr_assert_not_null(b, "no block for heading <%s>", text);
	cr_assert_eq(b->kind, AB_BLOCK_HEADING, "<%s> is not a heading", b->text);
	cr_assert_eq(b->level, level, "<%s>: level %d, expected %d", b->text, b->level, level);
	cr_assert_str_eq(b->text, text);
}

static void assert_para(const struct ab_doc_block *b, const char *text)
{
	cr_assert_not_null(b, "no block for <%s>", text);
	cr_assert_eq(b->kind, AB_BLOCK_PARAGRAPH, "<%s> is not a paragraph", b->text);
	cr_assert_str_eq(b->text, text);
}

static enum ab_doc_kind detect(const char *data, const char *mime, const char *name)
{
	enum ab_doc_kind k;
	char err[256];
	int rc = ab_extract_detect(data, strlen(data), mime, name, &k, err, sizeof(err));
	cr_assert_eq(rc, 0, "detect %s/%s: %s", mime ? mime : "-", name ? name : "-", err);
	return k;
}

/* ---- plain text ---- */

Test(text, bom_crlf_paragraphs)
{
	struct ab_doc_text *d = extract_file("notes.txt");
	cr_assert_eq(d->kind, AB_DOC_TEXT);
	cr_assert_null(d->title);
	cr_assert_eq(d->npages, 0);
	cr_assert_eq(d->nblocks, 2);
	assert_para(&d->blocks[0], "First line of notes.\nSecond line.");
	assert_para(&d->blocks[1], "A new paragraph\twith a tab.\nLast line");
	ab_doc_text_free(d);
}

Test(text, invalid_utf8_replaced)
{
	/* 6 bad bytes in 70: replaced (more than a tenth would be refused) */
	const char s[] = "caf\xe9 au lait, \xed\xa0\x80 a surrogate, \xc0\xaf an overlong slash, "
	                 "and some words";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "text/plain", NULL);
	cr_assert_eq(d->nblocks, 1);
	assert_para(&d->blocks[0], "caf\xef\xbf\xbd au lait, \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
	                           "a surrogate, \xef\xbf\xbd\xef\xbf\xbd an overlong slash, "
	                           "and some words");
	ab_doc_text_free(d);
}

Test(text, binary_refused)
{
	refused("abc\0def", 7, "text/plain", NULL, NULL, AB_EINVAL, "NUL");
	unsigned char junk[256];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(0x80 + (i * 37) % 0x7f);
	refused(junk, sizeof(junk), "text/plain", "a.txt", NULL, AB_EINVAL, "not UTF-8 text");
	/* without a type, invalid UTF-8 is not taken for text at all */
	refused("caf\xe9", 4, NULL, NULL, NULL, AB_EINVAL, "unsupported type");
}

Test(text, utf16_with_bom)
{
	const char le[] = "\xff\xfeH\0i\0 \0\xe9\0\r\0\n\0\x3d\xd8\x00\xde\n\0!\0";
	struct ab_doc_text *d = extract(le, sizeof(le) - 1, NULL, NULL);
	cr_assert_eq(d->nblocks, 1);
	assert_para(&d->blocks[0], "Hi \xc3\xa9\n\xf0\x9f\x98\x80\n!");
	ab_doc_text_free(d);
	const char be[] = "\xfe\xff\0O\0K";
	d = extract(be, sizeof(be) - 1, "text/plain", NULL);
	assert_para(&d->blocks[0], "OK");
	ab_doc_text_free(d);
}

Test(text, controls_and_invisibles_dropped)
{
	const char s[] = "a\x01"
	                 "b\x7f c\xc2\xad"
	                 "d\xe2\x80\x8b"
	                 "e\xc2\x85"
	                 "f\x1b[0m";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "text", NULL);
	assert_para(&d->blocks[0], "ab cdef[0m");
	ab_doc_text_free(d);
}

Test(text, form_feeds_are_pages)
{
	const char s[] = "one\ntwo\fTwo page\f\fFour";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, NULL, "x.txt");
	cr_assert_eq(d->npages, 4);
	cr_assert_eq(d->nblocks, 3);
	cr_assert_eq(d->blocks[0].page, 1);
	cr_assert_eq(d->blocks[1].page, 2);
	cr_assert_eq(d->blocks[2].page, 4);
	size_t len;
	char *r = ab_doc_text_render(d, &len);
	cr_assert_str_eq(r, "one\ntwo\n\n\f\nTwo page\n\n\f\n\f\nFour\n\n");
	cr_assert_eq(len, strlen(r));
	free(r);
	ab_doc_text_free(d);
}

Test(text, empty_and_blank)
{
	struct ab_doc_text *d = extract("", 0, NULL, NULL);
	cr_assert_eq(d->kind, AB_DOC_TEXT);
	cr_assert_eq(d->nblocks, 0);
	cr_assert_null(d->blocks);
	char *r = ab_doc_text_render(d, NULL);
	cr_assert_str_eq(r, "");
	free(r);
	ab_doc_text_free(d);
	d = extract(" \n\t\r\n  \n", 8, "text/plain", NULL);
	cr_assert_eq(d->nblocks, 0);
	ab_doc_text_free(d);
	/* a line of white space ends a paragraph too */
	d = extract("one\n \t \ntwo", 11, "text/plain", NULL);
	cr_assert_eq(d->nblocks, 2);
	assert_para(&d->blocks[1], "two");
	ab_doc_text_free(d);
	ab_doc_text_free(NULL);
}

/* ---- Markdown ---- */

Test(markdown, guide)
{
	struct ab_doc_text *d = extract_file("guide.md");
	cr_assert_eq(d->kind, AB_DOC_MARKDOWN);
	cr_assert_str_eq(d->title, "Router Guide", "front matter title");
	cr_assert_not(anywhere(d, "tags:"), "front matter is not text");
	assert_heading(&d->blocks[0], 1, "Getting started");
	assert_para(&d->blocks[1], "The AutoBot router connects your home to the internet. "
	                           "Press the reset button for ten seconds.");
	assert_heading(&d->blocks[2], 2, "Install");
	assert_para(&d->blocks[3],
	            "1. Unpack the box.\n2. Plug in the cable.\n"
	            "  - Use the yellow port.\n  - Not the blue one.\n3. Switch it on.");
	assert_heading(&d->blocks[4], 2, "Setext title");
	assert_para(find(d, "Prices"),
	            "Prices: 5 \xe2\x82\xac & more \xc2\xa9 2024 AB &unknownentity;");
	assert_para(find(d, "sudo"), "# this comment is code, not a heading\n"
	                             "sudo reset-router --now");
	assert_para(find(d, "Quoted"), "Quoted advice stays as text.");
	assert_para(find(d, "Light"), "Light | Meaning\ngreen | online\nred | offline");
	assert_para(find(d, "Raw"), "Raw HTML block text");
	assert_para(find(d, "Inline"), "Inline tags vanish.");
	cr_assert_not(anywhere(d, "example.com"), "link targets go");
	cr_assert_not(anywhere(d, "**"));
	cr_assert_not(anywhere(d, "router photo"), "image alt text goes");
	cr_assert_not(anywhere(d, "<"), "no tag survives");
	ab_doc_text_free(d);
}

Test(markdown, title_only_from_front_matter)
{
	const char s[] = "# Solar power\n\nPanels.\n";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "text/markdown", NULL);
	cr_assert_null(d->title, "the first heading is not the title");
	assert_heading(&d->blocks[0], 1, "Solar power");
	ab_doc_text_free(d);
	/* a leading rule followed by prose is not front matter */
	const char t[] = "---\nSome text\n---\nMore.\n";
	d = extract(t, sizeof(t) - 1, NULL, "t.md");
	cr_assert_null(d->title);
	assert_heading(find(d, "Some text"), 2, "Some text");
	assert_para(find(d, "More"), "More.");
	ab_doc_text_free(d);
}

Test(markdown, loose_lists_and_breaks)
{
	const char s[] = "- first item\n\n  second paragraph\n- \n- third  \n  hard break\n\n"
	                 "5. five\n6. six\n";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "md", NULL);
	cr_assert_eq(d->nblocks, 2, "%zu blocks", d->nblocks);
	assert_para(&d->blocks[0], "- first item\nsecond paragraph\n- third\nhard break");
	assert_para(&d->blocks[1], "5. five\n6. six");
	ab_doc_text_free(d);
}

Test(markdown, crlf_and_setext)
{
	const char s[] = "Title\r\n=====\r\n\r\nBody line one\r\nline two\r\n";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "text/markdown", NULL);
	assert_heading(&d->blocks[0], 1, "Title");
	assert_para(&d->blocks[1], "Body line one line two");
	ab_doc_text_free(d);
}

/* ---- HTML ---- */

Test(html, page)
{
	struct ab_doc_text *d = extract_file("page.html");
	cr_assert_eq(d->kind, AB_DOC_HTML);
	cr_assert_str_eq(d->title, "Rivers & Lakes");
	static const char *const gone[] = {"secret",     "do not index",  "color",
	                                   "JavaScript", "Template text", "Hidden",
	                                   "svg",        "comment",       "also not me"};
	for (size_t i = 0; i < AB_ARRAY_LEN(gone); i++)
		cr_assert_not(anywhere(d, gone[i]), "<%s> must not be extracted", gone[i]);
	assert_heading(&d->blocks[0], 1, "Great rivers");
	assert_para(&d->blocks[1],
	            "The Danube flows through ten countries \xe2\x80\x94 into the Black Sea.");
	assert_para(&d->blocks[2], "Caf\xc3\xa9 <au> bord de l'eau.\nSecond line.");
	assert_heading(&d->blocks[3], 2, "Lists");
	assert_para(&d->blocks[4], "- Nile\n- Amazon\n  1. Source\n  2. Mouth");
	assert_para(&d->blocks[5], "River | Length\nNile | 6650 km");
	assert_para(&d->blocks[6], "line one\n  indented two");
	assert_para(&d->blocks[7], "Div text with span");
	cr_assert_eq(d->nblocks, 8);
	ab_doc_text_free(d);
}

Test(html, fragment_without_title)
{
	const char s[] =
	    "<p>Just a <b>fragment</b></p><h4>Sub <i>head</i></h4>tail &copy; &#x1F600;";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "text/html", NULL);
	cr_assert_null(d->title);
	assert_para(&d->blocks[0], "Just a fragment");
	assert_heading(&d->blocks[1], 4, "Sub head");
	assert_para(&d->blocks[2], "tail \xc2\xa9 \xf0\x9f\x98\x80");
	ab_doc_text_free(d);
}

Test(html, heading_inside_list_item)
{
	const char s[] = "<ul><li>before</li><li><h3>Head</h3>after</li></ul>";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "html", NULL);
	cr_assert_eq(d->nblocks, 3);
	assert_para(&d->blocks[0], "- before");
	assert_heading(&d->blocks[1], 3, "Head");
	assert_para(&d->blocks[2], "after");
	ab_doc_text_free(d);
}

static char *repeat(const char *unit, size_t n, const char *tail)
{
	struct ab_buf b = {0};
	for (size_t i = 0; i < n; i++)
		ab_buf_puts(&b, unit);
	ab_buf_puts(&b, tail);
	return ab_buf_steal(&b);
}

Test(html, deep_nesting_bounded)
{
	/* 300 levels are fine */
	char *s = repeat("<div>", 300, "deep text");
	struct ab_doc_text *d = extract(s, strlen(s), "text/html", NULL);
	assert_para(&d->blocks[0], "deep text");
	ab_doc_text_free(d);
	free(s);
	/* 30000 would take gumbo seconds: refused before parsing */
	s = repeat("<div>", 30000, "x");
	int64_t t0 = ab_now_ms();
	refused(s, strlen(s), "text/html", NULL, NULL, AB_ETOOBIG, "more than 4096 levels deep");
	cr_assert_lt(ab_now_ms() - t0, 1000);
	/* with the estimate out of the way, the deadline stops gumbo itself
	 * (from inside its allocator), and everything it allocated is freed
	 * (ASan checks) */
	struct ab_extract_limits lim = {.max_html_depth = 1000000, .max_ms = 100};
	refused(s, strlen(s), "text/html", NULL, &lim, AB_ETIMEOUT, "longer than the limit");
	free(s);
	/* (below, a bound of 256 levels keeps the inputs small) */
	lim = (struct ab_extract_limits){.max_html_depth = 256};
	/* end tags that the parser ignores do not fool the estimate */
	s = repeat("<div><span></span></x></body></form>", 1000, "");
	refused(s, strlen(s), "text/html", NULL, &lim, AB_ETOOBIG, "more than 256 levels deep");
	free(s);
	/* closed elements, comments, scripts and void elements do not count */
	s = repeat("<div><!-- <div> --><script>'<div>'</script><br><img src='>'><p>x</div>", 1000,
	           "");
	d = extract_lim(s, strlen(s), "text/html", NULL, &lim);
	cr_assert_eq(d->nblocks, 1000);
	ab_doc_text_free(d);
	free(s);
}

/* Tricks that once hid nesting from the estimate (found by fuzzing it
 * against gumbo's real tree), each followed by 1000 <div>s; and honest
 * pages that must not be taken for deep ones (1000 times a pattern that
 * an estimate could take for one more level each time). The bound is 256
 * levels to keep the inputs small. */
Test(html, depth_estimate_cases)
{
	const struct ab_extract_limits lim = {.max_html_depth = 256};
	static const char *const tricks[] = {
	    "</<!--x>",                                   /* a bogus comment ends at '>' */
	    "<t =\">",                                    /* '=' starts a name, not a value */
	    "<math><li><textarea><!--</textarea>",        /* <li> leaves MathML */
	    "<script><!--<script></script><!--</script>", /* script escapes */
	    "<math></s><![CDATA[<a '=\"]]>",              /* CDATA, maybe */
	    "<svg></i><title></title ><title></title >",  /* foreign end tags */
	};
	for (size_t i = 0; i < AB_ARRAY_LEN(tricks); i++) {
		char *s = repeat("<div>", 1000, "");
		char *t = ab_xasprintf("%s%s", tricks[i], s);
		refused(t, strlen(t), "text/html", NULL, &lim, AB_ETOOBIG, "levels deep");
		free(t);
		free(s);
	}
	char *s = repeat("<g>", 1000, "");
	char *t = ab_xasprintf("<svg>%s", s);
	refused(t, strlen(t), "text/html", NULL, &lim, AB_ETOOBIG, "levels deep");
	free(t);
	free(s);
	static const char *const honest[] = {
	    "<p><svg viewBox='0 0 1 1'><path d='M0'/><path/></svg> icon</p>",
	    "<p><b>unclosed bold",
	    "<li><b>unclosed bold in an item",
	    "<script>var s = '<div>' + x;</script><p>after a script</p>",
	    "<!-- <div> --><p>after a comment</p>",
	    "<p><font face=Arial>legacy<br>",
	    "<p><math><mi>x</mi><mo>=</mo><mn>1</mn></math></p>",
	};
	for (size_t i = 0; i < AB_ARRAY_LEN(honest); i++) {
		char *h = repeat(honest[i], 1000, "");
		struct ab_doc_text *d = extract_lim(h, strlen(h), "text/html", NULL, &lim);
		cr_assert_geq(d->nblocks, 1, "%s", honest[i]);
		ab_doc_text_free(d);
		free(h);
	}
	s = repeat("<tr><td>a<td><b>b", 1000, "</table>");
	t = ab_xasprintf("<table>%s", s);
	struct ab_doc_text *d = extract_lim(t, strlen(t), "text/html", NULL, &lim);
	cr_assert_eq(d->nblocks, 1);
	ab_doc_text_free(d);
	free(t);
	free(s);
}

Test(html, parser_memory_bounded)
{
	char *s = repeat("<p class=x>some words</p>", 5000, "");
	struct ab_extract_limits lim = {.max_parse_mem = 1 << 20};
	refused(s, strlen(s), "text/html", NULL, &lim, AB_ETOOBIG, "1 MiB to parse");
	struct ab_doc_text *d = extract(s, strlen(s), "text/html", NULL);
	cr_assert_eq(d->nblocks, 5000);
	ab_doc_text_free(d);
	free(s);
}

/* ---- PDF ---- */

Test(pdf, three_pages)
{
	struct ab_doc_text *d = extract_file("manual.pdf");
	cr_assert_eq(d->kind, AB_DOC_PDF);
	cr_assert_str_eq(d->title, "AutoBot Test Manual");
	cr_assert_eq(d->npages, 3);
	cr_assert_eq(d->nblocks, 3);
	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(d->blocks[i].page, i + 1);
	cr_assert_str_eq(d->blocks[0].text, "Router manual\nThe router has a reset button on the "
	                                    "back.\nHold it for ten seconds to restore the "
	                                    "factory settings.");
	cr_assert(strstr(d->blocks[1].text, "Wireless setup"));
	cr_assert(strstr(d->blocks[2].text, "blinks red"));
	ab_doc_text_free(d);
}

Test(pdf, empty_page_keeps_numbering)
{
	struct ab_doc_text *d = extract_file("gap.pdf");
	cr_assert_null(d->title);
	cr_assert_eq(d->npages, 3);
	cr_assert_eq(d->nblocks, 2);
	cr_assert_eq(d->blocks[0].page, 1);
	cr_assert_eq(d->blocks[1].page, 3);
	char *r = ab_doc_text_render(d, NULL);
	cr_assert_str_eq(r, "First page words.\n\n\f\n\f\nThird page words.\n\n");
	free(r);
	ab_doc_text_free(d);
}

Test(pdf, encrypted_refused)
{
	size_t len;
	char *data = read_data("locked.pdf", &len);
	refused(data, len, NULL, "locked.pdf", NULL, AB_EINVAL, "encrypted");
	free(data);
}

Test(pdf, broken_refused)
{
	size_t len;
	char *data = read_data("manual.pdf", &len);
	refused(data, len / 2, NULL, "manual.pdf", NULL, AB_EINVAL, "not a readable PDF");
	refused(data, 40, "application/pdf", NULL, NULL, AB_EINVAL, "not a readable PDF");
	free(data);
	const char junk[] = "%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\n%%EOF\n";
	refused(junk, sizeof(junk) - 1, NULL, NULL, NULL, AB_EINVAL, "not a readable PDF");
	refused("hello", 5, "application/pdf", NULL, NULL, AB_EINVAL, "not a readable PDF");
	refused("", 0, "application/pdf", NULL, NULL, AB_EINVAL, "not a readable PDF");
}

Test(pdf, page_limit)
{
	size_t len;
	char *data = read_data("manual.pdf", &len);
	struct ab_extract_limits lim = {.max_pages = 2};
	refused(data, len, NULL, NULL, &lim, AB_ETOOBIG, "3 pages");
	lim.max_pages = 3;
	struct ab_doc_text *d = extract_lim(data, len, NULL, NULL, &lim);
	cr_assert_eq(d->npages, 3);
	ab_doc_text_free(d);
	free(data);
}

/* The library is loaded on the first PDF (criterion runs each test in a
 * fresh process, so here that is the first use): several threads at once
 * must all get the one copy. */
struct pdf_bytes {
	const char *data;
	size_t len;
};

static void *extract_manual(void *arg)
{
	const struct pdf_bytes *in = arg;
	struct ab_doc_text *d = NULL;
	char err[256];
	int rc = ab_extract(in->data, in->len, NULL, "manual.pdf", NULL, &d, err, sizeof(err));
	uint32_t pages = rc == 0 ? d->npages : 0;
	ab_doc_text_free(d);
	return (void *)(uintptr_t)pages;
}

Test(pdf, first_use_from_threads)
{
	struct pdf_bytes in;
	char *data = read_data("manual.pdf", &in.len);
	in.data = data;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, extract_manual, &in), 0);
	for (int i = 0; i < 4; i++) {
		void *pages;
		cr_assert_eq(pthread_join(t[i], &pages), 0);
		cr_assert_eq((uintptr_t)pages, 3, "thread %d", i);
	}
	free(data);
}

Test(pdf, library_missing)
{
	char err[256];
	int rc = ab_extract_pdf_load("libpoppler-glib-absent.so.0", err, sizeof(err));
	cr_assert_eq(rc, AB_EUNAVAIL);
	cr_assert(strstr(err, "PDF support needs libpoppler-glib"), "%s", err);
	cr_assert(strstr(err, "apt-get install libpoppler-glib8"), "%s", err);
	cr_assert(strstr(err, "libpoppler-glib-absent.so.0"), "%s", err);
	/* a library without poppler's functions */
	rc = ab_extract_pdf_load("libc.so.6", err, sizeof(err));
	cr_assert_eq(rc, AB_EUNAVAIL);
	cr_assert(strstr(err, "libc.so.6 has no g_bytes_new_static"), "%s", err);
	cr_assert_eq(ab_extract_pdf_load(NULL, err, sizeof(err)), AB_EINVAL);
	/* neither touched the copy ab_extract() uses */
	cr_assert_eq(ab_extract_pdf_load("libpoppler-glib.so.8", err, sizeof(err)), 0, "%s",
	             err);
	struct ab_doc_text *d = extract_file("manual.pdf");
	cr_assert_eq(d->npages, 3);
	ab_doc_text_free(d);
}

/* ---- detection ---- */

Test(detect, mime_types)
{
	cr_assert_eq(detect("x", "Text/HTML; charset=UTF-8", NULL), AB_DOC_HTML);
	cr_assert_eq(detect("x", "application/xhtml+xml", NULL), AB_DOC_HTML);
	cr_assert_eq(detect("x", "application/pdf", NULL), AB_DOC_PDF);
	cr_assert_eq(detect("x", "text/x-markdown", NULL), AB_DOC_MARKDOWN);
	cr_assert_eq(detect("x", "text/plain", NULL), AB_DOC_TEXT);
	cr_assert_eq(detect("x", "text/csv", NULL), AB_DOC_TEXT, "other text/ types are text");
	cr_assert_eq(detect("x", "md", NULL), AB_DOC_MARKDOWN);
	cr_assert_eq(detect("x", " PDF ", NULL), AB_DOC_PDF);
	/* the MIME type wins over the extension, except text/plain */
	cr_assert_eq(detect("x", "text/markdown", "a.pdf"), AB_DOC_MARKDOWN);
	cr_assert_eq(detect("x", "text/plain", "a.md"), AB_DOC_MARKDOWN);
	cr_assert_eq(detect("x", "text/plain", "a.htm"), AB_DOC_HTML);
	cr_assert_eq(detect("x", "text/plain", "a.pdf"), AB_DOC_TEXT);
	/* octet-stream and empty say nothing */
	cr_assert_eq(detect("x", "application/octet-stream", "dir/Guide.MD"), AB_DOC_MARKDOWN);
	cr_assert_eq(detect("x", "", "page.xhtml"), AB_DOC_HTML);
	cr_assert_eq(detect("%PDF-1.4", "application/octet-stream", NULL), AB_DOC_PDF);
}

Test(detect, refusals)
{
	enum ab_doc_kind k;
	char err[256];
	cr_assert_eq(ab_extract_detect("PK", 2, "application/zip", NULL, &k, err, sizeof(err)),
	             AB_EINVAL);
	cr_assert_str_eq(err, "unsupported type 'application/zip': AutoBot reads text, "
	                      "Markdown, HTML and PDF");
	refused("PK\3\4", 4, NULL, "report.DOCX", NULL, AB_EINVAL, "unsupported file type '.docx'");
	refused("PK\3\4\0\0binary\0\1\2", 15, "application/octet-stream", "x.zip", NULL, AB_EINVAL,
	        "unsupported");
	refused("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, NULL, "noext", NULL, AB_EINVAL,
	        "unsupported type (binary data");
	refused("\x7f"
	        "ELF\2\1\1\0",
	        8, NULL, "tool.xyz", NULL, AB_EINVAL, "unsupported type '.xyz'");
	/* what the uploader sent is echoed only as printable ASCII */
	refused("x", 1, "Application/\x01Zip\xff", NULL, NULL, AB_EINVAL,
	        "unsupported type 'application/?zip?'");
	/* a message fits any buffer, even none */
	cr_assert_eq(ab_extract_detect("PK", 2, "application/zip", NULL, &k, err, 8), AB_EINVAL);
	cr_assert_str_eq(err, "unsuppo");
	cr_assert_eq(ab_extract_detect("PK", 2, "application/zip", NULL, &k, NULL, 0), AB_EINVAL);
}

Test(detect, sniffing)
{
	cr_assert_eq(detect("%PDF-1.4\n...", NULL, NULL), AB_DOC_PDF);
	cr_assert_eq(detect("  \n<!DOCTYPE html><p>x", NULL, NULL), AB_DOC_HTML);
	cr_assert_eq(detect("<!-- made by hand -->\n<HTML lang=en>", NULL, NULL), AB_DOC_HTML);
	cr_assert_eq(detect("<?xml version=\"1.0\"?>\n<html xmlns=\"x\">", NULL, NULL),
	             AB_DOC_HTML);
	cr_assert_eq(detect("\xef\xbb\xbf<html>", NULL, NULL), AB_DOC_HTML);
	cr_assert_eq(detect("<htmlish> is text", NULL, NULL), AB_DOC_TEXT);
	cr_assert_eq(detect("# Looks like Markdown\n", NULL, NULL), AB_DOC_TEXT);
	cr_assert_eq(detect("caf\xc3\xa9", NULL, "Makefile"), AB_DOC_TEXT);
	cr_assert_eq(detect("print('hi')\n", NULL, "script.py"), AB_DOC_TEXT);
	cr_assert_eq(detect("", NULL, NULL), AB_DOC_TEXT);
}

/* ---- limits ---- */

Test(limits, input_and_output)
{
	char *s = repeat("word ", 2000, "");
	struct ab_extract_limits lim = {.max_input = 100};
	refused(s, strlen(s), "text/plain", NULL, &lim, AB_ETOOBIG, "limit is 100 bytes");
	lim = (struct ab_extract_limits){.max_output = 1000};
	refused(s, strlen(s), "text/plain", NULL, &lim, AB_ETOOBIG, "larger than the limit");
	refused(s, strlen(s), "text/markdown", NULL, &lim, AB_ETOOBIG, "larger than the limit");
	free(s);
	/* many tiny blocks: each is charged its bookkeeping too */
	s = repeat("a\n\n", 100000, "");
	lim.max_output = 1 << 20;
	refused(s, strlen(s), "text/plain", NULL, &lim, AB_ETOOBIG, "larger than the limit");
	lim.max_output = 16 << 20;
	struct ab_doc_text *d = extract_lim(s, strlen(s), "text/plain", NULL, &lim);
	cr_assert_eq(d->nblocks, 100000);
	ab_doc_text_free(d);
	free(s);
	s = repeat("<p>html paragraph</p>", 1000, "");
	lim.max_output = 4000;
	refused(s, strlen(s), "text/html", NULL, &lim, AB_ETOOBIG, "larger than the limit");
	free(s);
}

Test(limits, time)
{
	char *s = repeat("Some *emphasis* and `code` here.\n\n", 100000, "");
	struct ab_extract_limits lim = {.max_ms = 1};
	refused(s, strlen(s), "text/markdown", NULL, &lim, AB_ETIMEOUT, "longer than the limit");
	free(s);
}

Test(limits, title_is_cut)
{
	char *s = repeat("\xc3\xa9", 1000, "</title>x");
	char *h = ab_xasprintf("<title>%s", s);
	struct ab_doc_text *d = extract(h, strlen(h), "text/html", NULL);
	cr_assert_not_null(d->title);
	cr_assert(strlen(d->title) <= 512 && strlen(d->title) >= 510, "%zu", strlen(d->title));
	cr_assert_eq(strlen(d->title) % 2, 0, "cut on a character boundary");
	ab_doc_text_free(d);
	free(h);
	free(s);
}

/* ---- rendering ---- */

Test(render, markup_lines_are_neutralised)
{
	const char s[] = "# not a heading\n```\n~~~ nor a fence\n---\n== \nok - fine\n    # deep";
	struct ab_doc_text *d = extract(s, sizeof(s) - 1, "text/plain", NULL);
	char *r = ab_doc_text_render(d, NULL);
	cr_assert_str_eq(r, "    # not a heading\n    ```\n    ~~~ nor a fence\n    ---\n    ==\n"
	                    "ok - fine\n    # deep\n\n");
	free(r);
	ab_doc_text_free(d);
}

/* The chunker reads the rendering as intended: headings become heading
 * paths (a "#" line of code does not), pages come from the form feeds. */
Test(render, chunker_reads_it)
{
	struct ab_doc_text *d = extract_file("guide.md");
	size_t len;
	char *r = ab_doc_text_render(d, &len);
	struct ab_chunks *c = NULL;
	cr_assert_eq(ab_chunk_text(r, len, NULL, &c), 0);
	bool saw_code = false, saw_install = false;
	for (size_t i = 0; i < c->n; i++) {
		cr_assert_null(strstr(c->v[i].heading, "comment"), "code became a heading");
		if (strstr(c->v[i].text, "sudo reset-router")) {
			saw_code = true;
			cr_assert_str_eq(c->v[i].heading, "Getting started > Setext title");
		}
		if (strstr(c->v[i].text, "Unpack the box"))
			saw_install = !strcmp(c->v[i].heading, "Getting started > Install");
	}
	cr_assert(saw_code && saw_install);
	ab_chunks_free(c);
	free(r);
	ab_doc_text_free(d);

	d = extract_file("gap.pdf");
	r = ab_doc_text_render(d, &len);
	struct ab_chunk_params p; /* one sentence a chunk */
	ab_chunk_params_default(&p);
	p.target_tokens = 3;
	p.overlap_tokens = 0;
	cr_assert_eq(ab_chunk_text(r, len, &p, &c), 0);
	cr_assert_eq(c->n, 2);
	bool first = false, third = false;
	for (size_t i = 0; i < c->n; i++) {
		if (strstr(c->v[i].text, "First page"))
			first = c->v[i].page == 1;
		if (strstr(c->v[i].text, "Third page"))
			third = c->v[i].page == 3 && c->v[i].page_last == 3;
	}
	cr_assert(first && third, "pages as the chunker sees them");
	ab_chunks_free(c);
	free(r);
	ab_doc_text_free(d);
}

Test(api, bad_arguments)
{
	struct ab_doc_text *d;
	char err[64];
	cr_assert_eq(ab_extract(NULL, 3, NULL, NULL, NULL, &d, err, sizeof(err)), AB_EINVAL);
	cr_assert_eq(ab_extract("x", 1, NULL, NULL, NULL, NULL, err, sizeof(err)), AB_EINVAL);
	cr_assert_str_eq(ab_doc_kind_name(AB_DOC_PDF), "pdf");
	cr_assert_str_eq(ab_doc_kind_name(AB_DOC_MARKDOWN), "markdown");
	cr_assert_str_eq(ab_doc_kind_name(AB_DOC_HTML), "html");
	cr_assert_str_eq(ab_doc_kind_name(AB_DOC_TEXT), "text");
}
