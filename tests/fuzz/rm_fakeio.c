/*
 * rm_fakeio.c - see rm_fakeio.h. The module casts RedisModuleIO pointers
 * back to struct ab_fakeio here; Redis's real IO type never reaches it.
 */
#include "rm_fakeio.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rmapi.h"

static struct ab_fakeio *fio(RedisModuleIO *io) { return (struct ab_fakeio *)(void *)io; }

static int take(RedisModuleIO *io, void *dst, size_t n)
{
	struct ab_fakeio *f = fio(io);
	if (f->error || f->len - f->off < n) {
		f->error = 1;
		memset(dst, 0, n);
		return -1;
	}
	memcpy(dst, f->in + f->off, n);
	f->off += n;
	return 0;
}

static void save_unsigned(RedisModuleIO *io, uint64_t v) { ab_buf_append(&fio(io)->out, &v, 8); }
static void save_float(RedisModuleIO *io, float v) { ab_buf_append(&fio(io)->out, &v, 4); }
static void save_double(RedisModuleIO *io, double v) { ab_buf_append(&fio(io)->out, &v, 8); }

static void save_string(RedisModuleIO *io, const char *s, size_t len)
{
	uint32_t l = (uint32_t)len;
	ab_buf_append(&fio(io)->out, &l, 4);
	ab_buf_append(&fio(io)->out, s, len);
}

static uint64_t load_unsigned(RedisModuleIO *io)
{
	uint64_t v;
	take(io, &v, 8);
	return v;
}

static float load_float(RedisModuleIO *io)
{
	float v;
	take(io, &v, 4);
	return v;
}

static double load_double(RedisModuleIO *io)
{
	double v;
	take(io, &v, 8);
	return v;
}

static char *load_string(RedisModuleIO *io, size_t *len)
{
	uint32_t l;
	if (take(io, &l, 4) < 0)
		return NULL;
	struct ab_fakeio *f = fio(io);
	if (f->len - f->off < l) {
		f->error = 1;
		return NULL;
	}
	char *s = ab_xmalloc((size_t)l + 1);
	memcpy(s, f->in + f->off, l);
	s[l] = 0;
	f->off += l;
	*len = l;
	return s;
}

static int is_io_error(RedisModuleIO *io) { return fio(io)->error; }

static void log_io_error(RedisModuleIO *io, const char *level, const char *fmt, ...)
{
	(void)io;
	(void)level;
	(void)fmt;
}

void ab_fakeio_install(void)
{
	RedisModule_SaveUnsigned = save_unsigned;
	RedisModule_LoadUnsigned = load_unsigned;
	RedisModule_SaveFloat = save_float;
	RedisModule_LoadFloat = load_float;
	RedisModule_SaveDouble = save_double;
	RedisModule_LoadDouble = load_double;
	RedisModule_SaveStringBuffer = save_string;
	RedisModule_LoadStringBuffer = load_string;
	RedisModule_IsIOError = is_io_error;
	RedisModule_LogIOError = log_io_error;
	RedisModule_Free = free;
}
