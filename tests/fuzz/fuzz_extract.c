/*
 * fuzz_extract.c - libFuzzer target for src/kb/extract.c. The first byte
 * picks how the rest is announced (its value modulo 8: no hint, text/plain,
 * text/markdown, text/html, application/pdf, a .md name, a .htm name,
 * octet-stream with a .pdf name); the rest is the document. Limits are
 * small so that a run stays fast. A success must keep every promise of
 * extract.h (checked below, abort() otherwise) and render; a failure must
 * say why.
 */
#include "common.h"
#include "extract.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether s is well-formed UTF-8 without control characters other than
 * '\n' and '\t'. */
static int clean_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
		if (len == 0 || c > 0xf4 || i + len > n)
			return 0;
		uint32_t v = c & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			v = (v << 6) | (p[i + k] & 0x3f);
		}
		static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return 0;
		if (v >= 0x80 && v <= 0x9f)
			return 0;
		i += len;
	}
	return 1;
}

static void check(const struct ab_doc_text *d)
{
	if (d->title && (!d->title[0] || strlen(d->title) > 512 ||
	                 !clean_utf8(d->title, strlen(d->title)) || strchr(d->title, '\n')))
		abort();
	for (size_t i = 0; i < d->nblocks; i++) {
		const struct ab_doc_block *b = &d->blocks[i];
		if (b->len == 0 || strlen(b->text) != b->len || !clean_utf8(b->text, b->len))
			abort();
		if (strchr(" \t\n", b->text[0]) || strchr(" \t\n", b->text[b->len - 1]))
			abort();
		if (strstr(b->text, "\n\n"))
			abort();
		if (b->kind == AB_BLOCK_HEADING &&
		    (b->level < 1 || b->level > 6 || strchr(b->text, '\n')))
			abort();
		if (b->kind == AB_BLOCK_PARAGRAPH && b->level != 0)
			abort();
		if (d->npages ? (b->page < 1 || b->page > d->npages) : b->page != 0)
			abort();
		if (i > 0 && b->page < d->blocks[i - 1].page)
			abort();
	}
	size_t len;
	char *r = ab_doc_text_render(d, &len);
	if (strlen(r) != len)
		abort();
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		const char *mime, *name;
	} hints[8] = {
	    {NULL, NULL},
	    {"text/plain", NULL},
	    {"text/markdown", NULL},
	    {"text/html", NULL},
	    {"application/pdf", NULL},
	    {NULL, "doc.md"},
	    {NULL, "page.htm"},
	    {"application/octet-stream", "file.pdf"},
	};
	if (size < 1)
		return 0;
	unsigned h = data[0] % 8;
	struct ab_extract_limits lim = {
	    .max_input = 1 << 20,
	    .max_output = 4 << 20,
	    .max_pages = 16,
	    .max_parse_mem = 64 << 20,
	    .max_ms = 10000,
	};
	struct ab_doc_text *d = NULL;
	char err[256];
	int rc = ab_extract(data + 1, size - 1, hints[h].mime, hints[h].name, &lim, &d, err,
	                    sizeof(err));
	if (rc == 0) {
		if (!d)
			abort();
		check(d);
		ab_doc_text_free(d);
	} else {
		if (d || !err[0] || (rc != AB_EINVAL && rc != AB_ETOOBIG && rc != AB_ETIMEOUT))
			abort();
	}
	return 0;
}
