/*
 * rm_fakeio.h - stand-ins for the Redis module API's RDB functions, so that
 * the module's rdb_load/rdb_save callbacks run outside redis-server: saves
 * append to a buffer, loads read from one, and a read past the end sets the
 * error flag that RedisModule_IsIOError reports (as Redis does with
 * REDISMODULE_OPTIONS_HANDLE_IO_ERRORS). Encoding: unsigned and double 8
 * bytes, float 4, strings a 4-byte length and the bytes; all little-endian.
 */
#ifndef AB_RM_FAKEIO_H
#define AB_RM_FAKEIO_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct ab_fakeio {
	const uint8_t *in;
	size_t len, off;
	int error;
	struct ab_buf out;
};

/* Points the RedisModule_* RDB functions at the stand-ins. */
void ab_fakeio_install(void);

#endif
