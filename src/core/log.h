/*
 * log.h - one line per event on stderr, as logfmt or JSON lines.
 *
 * Every line carries a timestamp, the level, the role of the process and
 * the request id of the calling thread (when one is set). Messages are
 * lowercase without a trailing full stop. Strings registered with
 * ab_log_add_secret() are replaced by "[redacted]" wherever they would
 * appear, so a token that slips into a message never reaches the log.
 */
#ifndef AB_LOG_H
#define AB_LOG_H

#include "common.h"

enum ab_log_level {
	AB_LOG_DEBUG = 0,
	AB_LOG_INFO = 1,
	AB_LOG_WARN = 2,
	AB_LOG_ERROR = 3,
	AB_LOG_OFF = 4,
};

extern int ab_log_min_level;

/* Checks the level before evaluating the arguments. */
#define ab_log(level, ...)                                                     \
	do {                                                                   \
		if ((int)(level) >= ab_log_min_level)                          \
			ab_log_write((level), __VA_ARGS__);                    \
	} while (0)

/* Sets the role name printed on each line (copied) and the format. */
void ab_log_init(const char *role, int min_level, bool json);
void ab_log_set_role(const char *role);
void ab_log_write(int level, const char *fmt, ...) AB_PRINTF(2, 3);
/* Sets the calling thread's request id (copied; NULL clears it). */
void ab_log_set_request_id(const char *id);
const char *ab_log_request_id(void);
/* Registers a secret to redact (copied; strings shorter than 6 ignored). */
void ab_log_add_secret(const char *secret);
/* "debug", "info", "warn", "error", "off" -> level, or AB_EINVAL. */
int ab_log_level_parse(const char *s);
const char *ab_log_level_name(int level);
/* Redirects output to fd (default 2). For tests. */
void ab_log_set_fd(int fd);

#endif
