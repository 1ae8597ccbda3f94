/*
 * extract.h - turning an uploaded document (plain text, Markdown, HTML or
 * PDF) into plain UTF-8 text with the structure the chunker uses: a title,
 * headings with their level, paragraphs, and the page each came from.
 *
 * The input is untrusted: every format is read under limits (input size,
 * result size, PDF pages, time), and anything that is not one of the four
 * formats is refused with a message meant for the person who uploaded it.
 * The parsers are md4c (Markdown), gumbo (HTML) and poppler-glib (PDF,
 * loaded with dlopen() on the first PDF); none of their types appear here.
 */
#ifndef AB_KB_EXTRACT_H
#define AB_KB_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

enum ab_doc_kind {
	AB_DOC_TEXT = 0,
	AB_DOC_MARKDOWN,
	AB_DOC_HTML,
	AB_DOC_PDF,
};

enum ab_block_kind {
	AB_BLOCK_PARAGRAPH = 0,
	AB_BLOCK_HEADING,
};

/* One block of text. A paragraph may hold several lines ('\n' between
 * them: list items, table rows, code, lines of a poem); a heading is one
 * line. Text is valid UTF-8 without control characters other than '\n'
 * and '\t', never empty, with no leading or trailing white space and no
 * blank line. */
struct ab_doc_block {
	enum ab_block_kind kind;
	int level;     /* heading level 1-6; 0 for a paragraph */
	uint32_t page; /* page it comes from, from 1; 0 when the format has none */
	char *text;    /* NUL-terminated; owned by the struct ab_doc_text */
	size_t len;    /* strlen(text) */
};

struct ab_doc_text {
	enum ab_doc_kind kind;       /* the format it was read as */
	char *title;                 /* HTML <title>, PDF Title, Markdown front
	                                matter "title:"; NULL when there is none */
	struct ab_doc_block *blocks; /* in document order */
	size_t nblocks;
	uint32_t npages; /* pages of a PDF (or form-feed pages of a text); 0 if none */
};

/* Bounds on one extraction. A zero field means "the default" (in
 * brackets). Exceeding one gives AB_ETOOBIG (AB_ETIMEOUT for max_ms). */
struct ab_extract_limits {
	/* bytes of input [64 MiB] */
	size_t max_input;
	/* bytes of the result: texts, their NULs, the title, and
	 * sizeof(struct ab_doc_block) per block [64 MiB] */
	size_t max_output;
	/* pages of a PDF [2000] */
	uint32_t max_pages;
	/* memory the HTML parser may use [512 MiB]; it never gets more than
	 * 64 MiB + 40 bytes per input byte */
	size_t max_parse_mem;
	/* wall-clock time, checked between PDF pages and inside the Markdown
	 * and HTML parsers [60000]; the HTML parser never gets more than
	 * 5 s + 5 ms per KiB of input */
	uint32_t max_ms;
	/* HTML element nesting, as estimated before parsing [4096] */
	uint32_t max_html_depth;
};

/* Fills l with the defaults above. */
void ab_extract_limits_default(struct ab_extract_limits *l);

/* Which format data is, from (in this order) an explicit MIME type or
 * short name ("text", "markdown", "md", "html", "pdf"), else the file
 * name's extension (an unknown one falls through to the content; office,
 * archive, image and media ones are refused), else the content: "%PDF-"
 * is PDF, a doctype or <html is HTML, valid UTF-8 without NULs or control
 * characters (other than tab, line breaks and escape) is plain text. MIME
 * parameters (";charset=...") are ignored; application/octet-stream and
 * an empty string count as no MIME type, and text/plain defers to a
 * Markdown or HTML extension. Other text/... types are read as plain
 * text. Returns 0 and sets *kind, or AB_EINVAL with a message in err
 * (errlen bytes, may be 0) for a type AutoBot does not read. Either
 * string may be NULL. */
int ab_extract_detect(const void *data, size_t len, const char *mime, const char *filename,
                      enum ab_doc_kind *kind, char *err, size_t errlen);

/* Extracts the text of data (len bytes, which need not be NUL-terminated)
 * after detecting its format as ab_extract_detect() does. lim may be NULL
 * (the defaults). On success returns 0 and sets *out to a document the
 * caller frees with ab_doc_text_free(). On failure *out is NULL, err holds
 * a message for the uploader and the result is
 *   AB_EINVAL   unsupported type, binary data, a broken or encrypted PDF;
 *   AB_ETOOBIG  a limit of lim was exceeded;
 *   AB_ETIMEOUT lim->max_ms, or the HTML parser's own budget, passed;
 *   AB_EUNAVAIL a PDF, and libpoppler-glib.so.8 cannot be loaded (the
 *               message says which package to install).
 * Plain text (and the text of Markdown and HTML): a UTF-8 byte-order mark
 * is dropped, UTF-16 with a byte-order mark is converted, CRLF and CR
 * become LF, invalid UTF-8 becomes U+FFFD; input with a NUL byte, or with
 * more than a tenth of its bytes invalid or control characters, is
 * refused as binary. A document with no text gives zero blocks. */
int ab_extract(const void *data, size_t len, const char *mime, const char *filename,
               const struct ab_extract_limits *lim, struct ab_doc_text **out, char *err,
               size_t errlen);

/* Tries to load PDF support from the shared library soname, the way
 * ab_extract() loads libpoppler-glib.so.8 on its first PDF, without
 * touching the copy ab_extract() uses: 0 when soname opens and has every
 * function needed, else AB_EUNAVAIL with the message ab_extract() would
 * give (AB_EINVAL when soname is NULL). For tests and diagnostics. */
int ab_extract_pdf_load(const char *soname, char *err, size_t errlen);

/* Frees d with its title and blocks; NULL is ignored. */
void ab_doc_text_free(struct ab_doc_text *d);

/* "text", "markdown", "html" or "pdf" (static strings). */
const char *ab_doc_kind_name(enum ab_doc_kind kind);

/* Renders d as one string for ab_chunk_text() (src/text/chunk.h):
 * headings as ATX lines ("## Setup"), blocks separated by a blank line,
 * a form feed where each new page starts (so that with the chunker's
 * default, form feeds, page numbers come out right, empty pages
 * included). Paragraph lines that the chunker would take for Markdown
 * structure (a "#" heading, a ``` or ~~~ fence, a === or --- underline)
 * are indented by four spaces, which the chunker reads as plain text. The
 * title is not rendered. Returns a NUL-terminated string the caller frees
 * with free(); its length goes to *len when len is not NULL. */
char *ab_doc_text_render(const struct ab_doc_text *d, size_t *len);

#endif
