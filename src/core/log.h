/*
 * log.h - one line per event on stderr, as logfmt or JSON lines, copied to
 * an optional log file and handed to an optional hook (the ab:log stream
 * sink of logsink.h).
 *
 * Every line carries a timestamp, the level, the role of the process and
 * the request id of the calling thread (when one is set). Messages are
 * lowercase without a trailing full stop. Strings registered with
 * ab_log_add_secret() are replaced by "[redacted]" wherever they would
 * appear, so a token that slips into a message never reaches the log, the
 * file or the stream.
 *
 * The file (ab_log_open_file) is opened in append mode with mode 0640, and
 * reopened by path on ab_log_reopen(), so that logrotate can rename it and
 * send SIGHUP. ab_log_request_reopen() is the async-signal-safe half: a
 * signal handler may call it, and the next line written reopens the file.
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

/*
 * The log file. ab_log_open_file() appends every line to path from now on
 * (path copied; its folder is created with mode 0750 when missing, the file
 * with 0640); NULL or "" closes the file. Returns 0 or -errno, and keeps the
 * previous file on failure. ab_log_reopen() opens the same path again (after
 * a rename by logrotate); 0 when no file is configured.
 */
int ab_log_open_file(const char *path);
int ab_log_reopen(void);
/* Async-signal-safe: the next line written reopens the file first. */
void ab_log_request_reopen(void);

/* One line as handed to the hook; the strings live for the call only. */
struct ab_log_event {
	int64_t wall_ms;    /* ab_wall_ms() when it was written */
	const char *ts;     /* the same time, ISO 8601 UTC with milliseconds */
	int level;          /* AB_LOG_* */
	const char *role;
	const char *rid;    /* request id, or NULL */
	const char *msg;    /* the formatted message, secrets redacted */
	size_t msg_len;
};

typedef void (*ab_log_hook_fn)(void *ud, const struct ab_log_event *ev);

/*
 * Installs fn (NULL removes it) as the one hook called for every line
 * written, on the writing thread; it must not block and must not log.
 * When this returns, no call of the previous hook is still running, so
 * its ud may be freed.
 */
void ab_log_set_hook(ab_log_hook_fn fn, void *ud);
/* Skips the hook for lines written by the calling thread while muted (a
 * sink's own thread, so its failures are never fed back to it). */
void ab_log_mute_hook(bool mute);

#endif
