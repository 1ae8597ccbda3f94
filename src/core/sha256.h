/*
 * sha256.h - SHA-256 (FIPS 180-4), for hashing API tokens before they are
 * stored and, later, content hashes of documents.
 */
#ifndef AB_SHA256_H
#define AB_SHA256_H

#include "common.h"

struct ab_sha256 {
	uint32_t h[8];
	uint64_t total;
	uint8_t block[64];
	size_t fill;
};

void ab_sha256_init(struct ab_sha256 *s);
void ab_sha256_update(struct ab_sha256 *s, const void *data, size_t len);
void ab_sha256_final(struct ab_sha256 *s, uint8_t out[32]);
/* One-shot digest of data as 64 lowercase hex characters + NUL. */
void ab_sha256_hex(const void *data, size_t len, char out[65]);

#endif
