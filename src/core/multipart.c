/*
 * multipart.c - see multipart.h. The body is scanned with memmem for
 * "--boundary" delimiters; each part's header block (up to the first blank
 * line, at most 8 KiB) is read line by line for Content-Disposition (name,
 * filename) and Content-Type. Every copy is bounded by its buffer, quoted
 * parameter values are unescaped only for \" and \\, and a part's data is
 * everything up to the CRLF before the next delimiter.
 */
#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"

#define HEADER_MAX 8192

int ab_multipart_boundary(const char *ct, char *out, size_t outlen)
{
	if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
		return AB_EINVAL;
	const char *p = ct + 19;
	while ((p = strchr(p, ';'))) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		bool quoted = *p == '"';
		if (quoted)
			p++;
		size_t n = 0;
		while (p[n] && (quoted ? p[n] != '"' : (p[n] != ';' && p[n] != ' ' && p[n] != '\t')))
			n++;
		if (n == 0 || n > 70 || n + 1 > outlen)
			return AB_EINVAL;
		memcpy(out, p, n);
		out[n] = '\0';
		return 0;
	}
	return AB_EINVAL;
}

/* Copies the value of param (name= or filename=) from a header line. */
static void param(const char *line, size_t len, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	out[0] = '\0';
	for (size_t i = 0; i + kl < len; i++) {
		/* the key must start a parameter: after ';' and spaces */
		if (strncasecmp(line + i, key, kl) != 0)
			continue;
		size_t b = i;
		while (b > 0 && (line[b - 1] == ' ' || line[b - 1] == '\t'))
			b--;
		if (b == 0 || line[b - 1] != ';')
			continue;
		size_t j = i + kl, o = 0;
		if (j < len && line[j] == '"') {
			j++;
			while (j < len && line[j] != '"') {
				if (line[j] == '\\' && j + 1 < len)
					j++;
				if (o + 1 < outlen)
					out[o++] = line[j];
				j++;
			}
		} else {
			while (j < len && line[j] != ';' && line[j] != ' ')
				if (o + 1 < outlen)
					out[o++] = line[j++];
				else
					j++;
		}
		out[o] = '\0';
		return;
	}
}

static void header_value(const char *line, size_t len, char *out, size_t outlen)
{
	const char *colon = memchr(line, ':', len);
	size_t o = 0;
	if (colon) {
		const char *p = colon + 1, *end = line + len;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (p < end && o + 1 < outlen)
			out[o++] = *p++;
	}
	out[o] = '\0';
}

int ab_multipart_parse(const char *body, size_t len, const char *boundary, struct ab_part *parts,
		       size_t max)
{
	char delim[80];
	int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
	if (dl < 3 || (size_t)dl >= sizeof(delim) || max > AB_MULTIPART_MAX_PARTS)
		return AB_EINVAL;
	const char *end = body + len;
	const char *p = memmem(body, len, delim, (size_t)dl);
	if (!p)
		return AB_EINVAL;
	size_t n = 0;
	for (;;) {
		p += dl;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return (int)n; /* closing delimiter */
		/* rest of the delimiter line */
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return AB_EINVAL;
		p = nl + 1;
		if (n == max)
			return AB_EINVAL;
		struct ab_part *part = &parts[n];
		memset(part, 0, sizeof(*part));
		/* headers up to a blank line */
		const char *hstart = p;
		for (;;) {
			if (p - hstart > HEADER_MAX)
				return AB_EINVAL;
			const char *eol = memchr(p, '\n', (size_t)(end - p));
			if (!eol)
				return AB_EINVAL;
			size_t ll = (size_t)(eol - p);
			if (ll && p[ll - 1] == '\r')
				ll--;
			if (ll == 0) {
				p = eol + 1;
				break;
			}
			if (ll > 20 && strncasecmp(p, "Content-Disposition:", 20) == 0) {
				param(p, ll, "name=", part->name, sizeof(part->name));
				param(p, ll, "filename=", part->filename, sizeof(part->filename));
			} else if (ll > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
				header_value(p, ll, part->content_type, sizeof(part->content_type));
			}
			p = eol + 1;
		}
		/* data up to CRLF + next delimiter */
		const char *next = memmem(p, (size_t)(end - p), delim, (size_t)dl);
		if (!next)
			return AB_EINVAL;
		const char *dend = next;
		if (dend > p && dend[-1] == '\n')
			dend--;
		if (dend > p && dend[-1] == '\r')
			dend--;
		part->data = p;
		part->len = (size_t)(dend - p);
		n++;
		p = next;
	}
}
