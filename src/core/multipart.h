/*
 * multipart.h - a bounded parser of multipart/form-data bodies (RFC 7578),
 * for uploads. The whole body is in memory (the HTTP layer caps its size);
 * parts point into it, nothing is copied.
 */
#ifndef AB_MULTIPART_H
#define AB_MULTIPART_H

#include <stddef.h>

#define AB_MULTIPART_MAX_PARTS 64

struct ab_part {
	char name[128];        /* form field name ("" if absent) */
	char filename[256];    /* "" when the part is not a file */
	char content_type[128];
	const char *data;      /* into the body */
	size_t len;
};

/* Extracts the boundary from a Content-Type header value into out (room
 * for 71 bytes). 0 or AB_EINVAL. */
int ab_multipart_boundary(const char *content_type, char *out, size_t outlen);
/* Splits body into at most max parts (<= AB_MULTIPART_MAX_PARTS). Returns
 * the number of parts, or AB_EINVAL for a malformed body (missing
 * boundaries, headers without a blank line, more parts than max). */
int ab_multipart_parse(const char *body, size_t len, const char *boundary, struct ab_part *parts,
		       size_t max);

#endif
