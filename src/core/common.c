/*
 * common.c - the helpers declared in common.h: error strings, aborting
 * allocators, the growable buffer, clocks and kernel randomness.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const struct {
	int code;
	const char *msg;
} err_table[] = {
	{AB_EINVAL, "invalid argument"},
	{AB_ECONFIG, "configuration error"},
	{AB_EJSON, "malformed JSON"},
	{AB_ETOOBIG, "input too large"},
	{AB_ENOTFOUND, "not found"},
	{AB_EMETHOD, "method not allowed"},
	{AB_EREDIS, "redis error"},
	{AB_EUNAVAIL, "service unavailable"},
	{AB_ETIMEOUT, "timed out"},
	{AB_EAUTH, "authentication failed"},
	{AB_EPROTO, "protocol error"},
	{AB_EEXIST, "already exists"},
	{AB_ECLOSED, "connection closed"},
	{AB_EFORBIDDEN, "forbidden"},
};

const char *ab_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err < 0 && err > -1000)
		return strerror(-err);
	for (size_t i = 0; i < AB_ARRAY_LEN(err_table); i++)
		if (err_table[i].code == err)
			return err_table[i].msg;
	return "unknown error";
}

static void oom(size_t n)
{
	fprintf(stderr, "autobot: out of memory allocating %zu bytes\n", n);
	abort();
}

void *ab_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *ab_xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *ab_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *ab_xstrdup(const char *s)
{
	if (!s)
		return NULL;
	return ab_xstrndup(s, strlen(s));
}

char *ab_xstrndup(const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *p = ab_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *ab_xasprintf(const char *fmt, ...)
{
	struct ab_buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	ab_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (!b.data)
		return ab_xstrdup("");
	return ab_buf_steal(&b);
}

void ab_buf_init(struct ab_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void ab_buf_free(struct ab_buf *b)
{
	free(b->data);
	ab_buf_init(b);
}

void ab_buf_reset(struct ab_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void ab_buf_reserve(struct ab_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = ab_xrealloc(b->data, cap);
	b->cap = cap;
}

void ab_buf_append(struct ab_buf *b, const void *p, size_t n)
{
	ab_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void ab_buf_puts(struct ab_buf *b, const char *s)
{
	ab_buf_append(b, s, strlen(s));
}

void ab_buf_putc(struct ab_buf *b, char c)
{
	ab_buf_append(b, &c, 1);
}

void ab_buf_vprintf(struct ab_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	ab_buf_reserve(b, 64);
	size_t room = b->cap - b->len;
	int n = vsnprintf(b->data + b->len, room, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return;
	}
	if ((size_t)n >= room) {
		ab_buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	b->len += (size_t)n;
	va_end(ap2);
}

void ab_buf_printf(struct ab_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ab_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void ab_buf_json_strn(struct ab_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	ab_buf_reserve(b, n + 2);
	ab_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': ab_buf_append(b, "\\\"", 2); break;
		case '\\': ab_buf_append(b, "\\\\", 2); break;
		case '\n': ab_buf_append(b, "\\n", 2); break;
		case '\r': ab_buf_append(b, "\\r", 2); break;
		case '\t': ab_buf_append(b, "\\t", 2); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				ab_buf_append(b, e, 6);
			} else {
				ab_buf_putc(b, (char)c);
			}
		}
	}
	ab_buf_putc(b, '"');
}

void ab_buf_json_str(struct ab_buf *b, const char *s)
{
	if (!s) {
		ab_buf_puts(b, "null");
		return;
	}
	ab_buf_json_strn(b, s, strlen(s));
}

char *ab_buf_steal(struct ab_buf *b)
{
	char *p = b->data;
	if (!p)
		p = ab_xstrdup("");
	ab_buf_init(b);
	return p;
}

int64_t ab_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double ab_now_ms_f(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int64_t ab_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec ab_deadline(int clk, int64_t ms)
{
	struct timespec ts;
	clock_gettime((clockid_t)clk, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void ab_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int ab_write_full(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;
	while (n > 0) {
		ssize_t k = write(fd, b, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

int ab_random_bytes(void *p, size_t n)
{
	unsigned char *q = p;
	while (n > 0) {
		ssize_t r = getrandom(q, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		q += r;
		n -= (size_t)r;
	}
	return 0;
}

int ab_random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];
	if (nbytes > sizeof(raw))
		return AB_EINVAL;
	int rc = ab_random_bytes(raw, nbytes);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * nbytes] = '\0';
	return 0;
}

bool ab_secure_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0 && lb > 0;
}

size_t ab_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

int ab_parse_int(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s)
		return AB_EINVAL;
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return AB_EINVAL;
	*out = v;
	return 0;
}
