/*
 * common.h - error codes, allocation, growable buffers, clocks and random
 * bytes: the small vocabulary every other file in AutoBot speaks.
 *
 * Errors: functions return 0 on success or a negative code. Codes from
 * -1 to -999 are -errno values from system calls; AutoBot's own codes are
 * the AB_E* constants below (-1000 and lower). ab_strerror() names both.
 *
 * Memory: ab_xmalloc() and friends abort the process on exhaustion, so
 * callers never check for NULL. Every struct with a _new() has a _free()
 * that accepts NULL.
 */
#ifndef AB_COMMON_H
#define AB_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define AB_VERSION "0.1.0"

enum ab_err {
	AB_EINVAL = -1001,   /* invalid argument or value */
	AB_ECONFIG = -1002,  /* configuration error */
	AB_EJSON = -1003,    /* malformed JSON */
	AB_ETOOBIG = -1004,  /* input exceeds a limit */
	AB_ENOTFOUND = -1005,
	AB_EMETHOD = -1006,  /* route exists, method does not */
	AB_EREDIS = -1007,   /* Redis replied with an error */
	AB_EUNAVAIL = -1008, /* a dependency is down (circuit open) */
	AB_ETIMEOUT = -1009,
	AB_EAUTH = -1010,    /* missing or wrong credentials */
	AB_EPROTO = -1011,   /* peer spoke something unexpected */
	AB_EEXIST = -1012,
	AB_ECLOSED = -1013,  /* the other side went away */
	AB_EFORBIDDEN = -1014,
};

/* Returns a static description of err (an AB_E* code or -errno). */
const char *ab_strerror(int err);

#define AB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define AB_UNUSED(x) ((void)(x))
#define AB_PRINTF(f, a) __attribute__((format(printf, f, a)))

void *ab_xmalloc(size_t n);
void *ab_xcalloc(size_t nmemb, size_t size);
void *ab_xrealloc(void *p, size_t n);
char *ab_xstrdup(const char *s);          /* NULL in, NULL out */
char *ab_xstrndup(const char *s, size_t n);
char *ab_xasprintf(const char *fmt, ...) AB_PRINTF(1, 2);

/* Growable byte buffer, always NUL-terminated when data != NULL.
 * Zero-initialise (struct ab_buf b = {0}) or ab_buf_init(); release with
 * ab_buf_free(). ab_buf_steal() hands the bytes to the caller (free()). */
struct ab_buf {
	char *data;
	size_t len;
	size_t cap;
};

void ab_buf_init(struct ab_buf *b);
void ab_buf_free(struct ab_buf *b);
void ab_buf_reset(struct ab_buf *b);
void ab_buf_reserve(struct ab_buf *b, size_t extra);
void ab_buf_append(struct ab_buf *b, const void *p, size_t n);
void ab_buf_puts(struct ab_buf *b, const char *s);
void ab_buf_putc(struct ab_buf *b, char c);
void ab_buf_printf(struct ab_buf *b, const char *fmt, ...) AB_PRINTF(2, 3);
void ab_buf_vprintf(struct ab_buf *b, const char *fmt, va_list ap) AB_PRINTF(2, 0);
/* Appends s as a JSON string literal, quotes included (NULL -> null). */
void ab_buf_json_str(struct ab_buf *b, const char *s);
void ab_buf_json_strn(struct ab_buf *b, const char *s, size_t n);
char *ab_buf_steal(struct ab_buf *b);

/* Clocks in milliseconds: monotonic for durations, wall for timestamps. */
int64_t ab_now_ms(void);
double ab_now_ms_f(void);
int64_t ab_wall_ms(void);
void ab_sleep_ms(int ms);
/* The absolute time ms from now on clock clk (CLOCK_MONOTONIC for
 * condition variables made with pthread_condattr_setclock, else
 * CLOCK_REALTIME), for pthread_cond_timedwait(). */
struct timespec ab_deadline(int clk, int64_t ms);

/* Writes all n bytes of p to fd (short writes continued, EINTR retried).
 * Returns 0 or -errno. */
int ab_write_full(int fd, const void *p, size_t n);
/* Fills p with n bytes from the kernel's CSPRNG. Returns 0 or -errno. */
int ab_random_bytes(void *p, size_t n);
/* Writes 2*nbytes hex characters + NUL into out (size >= 2*nbytes+1). */
int ab_random_hex(char *out, size_t nbytes);

/* Constant-time comparison of two NUL-terminated strings. */
bool ab_secure_streq(const char *a, const char *b);

/* Bounded string copy: always terminates, returns strlen(src). */
size_t ab_strlcpy(char *dst, const char *src, size_t size);

/* Parses a whole string as a base-10 integer in [min,max]. 0 or AB_EINVAL. */
int ab_parse_int(const char *s, long long min, long long max, long long *out);

#endif
