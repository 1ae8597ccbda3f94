/*
 * fuzz_multipart.c - multipart/form-data bodies: the first line of the
 * input is the Content-Type header value, the rest the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	if (!nl)
		return 0;
	char *ct = ab_xstrndup((const char *)data, (size_t)(nl - data));
	char boundary[72];
	if (ab_multipart_boundary(ct, boundary, sizeof(boundary)) == 0) {
		struct ab_part parts[8];
		size_t blen = size - (size_t)(nl + 1 - data);
		/* a copy of exactly blen bytes, so ASan sees any overread */
		char *body = ab_xmalloc(blen ? blen : 1);
		memcpy(body, nl + 1, blen);
		int n = ab_multipart_parse(body, blen, boundary, parts, 8);
		for (int i = 0; i < n; i++) {
			volatile size_t sum = 0;
			for (size_t k = 0; k < parts[i].len; k++)
				sum += (unsigned char)parts[i].data[k];
			(void)sum;
		}
		free(body);
	}
	free(ct);
	return 0;
}
