/*
 * log.c - the logger of log.h.
 *
 * A line is formatted into a stack buffer and written with one write(2),
 * so lines from concurrent threads never interleave (stderr is a pipe or
 * a journal socket; writes up to PIPE_BUF are atomic). The secret list is
 * append-only and small; it is guarded by a mutex only while it grows,
 * and readers take the same mutex briefly.
 *
 * The file and the hook are the two optional sinks behind stderr. Both
 * sit behind one reader-writer lock: every line takes it shared while it
 * writes the file and calls the hook, and only installing or removing a
 * sink, or reopening the file, takes it exclusively. So a hook's owner
 * can remove it and free what it points to the moment ab_log_set_hook()
 * returns, and a reopen never lets a line go to a descriptor that was
 * already closed (or, worse, reused by a socket). SIGHUP cannot take the
 * lock from a signal handler, so ab_log_request_reopen() only raises an
 * atomic flag that the next writer acts on before it takes the lock.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

int ab_log_min_level = AB_LOG_INFO;

static char log_role[32] = "autobot";
static bool log_json;
static int log_fd = 2;
static _Thread_local char req_id[72];

#define MAX_SECRETS 16
static char *secrets[MAX_SECRETS];
static size_t n_secrets;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static int file_fd = -1;        /* the log file, or -1 */
static char *file_path;         /* its path, for reopening */
static ab_log_hook_fn hook_fn;
static void *hook_ud;
static atomic_int reopen_wanted;
static _Thread_local bool hook_muted;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void ab_log_init(const char *role, int min_level, bool json)
{
	ab_log_set_role(role);
	ab_log_min_level = min_level;
	log_json = json;
}

void ab_log_set_role(const char *role)
{
	if (role)
		ab_strlcpy(log_role, role, sizeof(log_role));
}

void ab_log_set_fd(int fd)
{
	log_fd = fd;
}

void ab_log_set_request_id(const char *id)
{
	if (id)
		ab_strlcpy(req_id, id, sizeof(req_id));
	else
		req_id[0] = '\0';
}

const char *ab_log_request_id(void)
{
	return req_id[0] ? req_id : NULL;
}

void ab_log_add_secret(const char *secret)
{
	if (!secret || strlen(secret) < 6)
		return;
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < n_secrets; i++)
		if (strcmp(secrets[i], secret) == 0)
			goto out;
	if (n_secrets < MAX_SECRETS)
		secrets[n_secrets++] = ab_xstrdup(secret);
out:
	pthread_mutex_unlock(&secrets_lock);
}

int ab_log_level_parse(const char *s)
{
	for (int i = 0; i < (int)AB_ARRAY_LEN(level_names); i++)
		if (s && strcmp(s, level_names[i]) == 0)
			return i;
	if (s && strcmp(s, "warning") == 0)
		return AB_LOG_WARN;
	return AB_EINVAL;
}

const char *ab_log_level_name(int level)
{
	if (level < 0 || level >= (int)AB_ARRAY_LEN(level_names))
		return "?";
	return level_names[level];
}

/* Replaces every registered secret in msg (in place, bounded by cap). */
static void redact(char *msg, size_t cap)
{
	static const char mask[] = "[redacted]";
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < n_secrets; i++) {
		size_t sl = strlen(secrets[i]);
		char *p;
		while ((p = strstr(msg, secrets[i])) != NULL) {
			size_t ml = sizeof(mask) - 1;
			size_t tail = strlen(p + sl);
			if ((size_t)(p - msg) + ml + tail + 1 > cap)
				tail = cap - (size_t)(p - msg) - ml - 1;
			memmove(p + ml, p + sl, tail);
			memcpy(p, mask, ml);
			p[ml + tail] = '\0';
		}
	}
	pthread_mutex_unlock(&secrets_lock);
}

/* Appends s quoted for logfmt or JSON into out at *pos (bounded). */
static void put_quoted(char *out, size_t cap, size_t *pos, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (*pos + 2 >= cap)
		return;
	out[(*pos)++] = '"';
	for (; *s && *pos + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[(*pos)++] = '\\';
			out[(*pos)++] = (char)c;
		} else if (c == '\n') {
			out[(*pos)++] = '\\';
			out[(*pos)++] = 'n';
		} else if (c < 0x20) {
			out[(*pos)++] = '\\';
			out[(*pos)++] = 'u';
			out[(*pos)++] = '0';
			out[(*pos)++] = '0';
			out[(*pos)++] = hex[c >> 4];
			out[(*pos)++] = hex[c & 15];
		} else {
			out[(*pos)++] = (char)c;
		}
	}
	out[(*pos)++] = '"';
}

void ab_log_write(int level, const char *fmt, ...)
{
	char msg[2048];
	char line[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n_secrets)
		redact(msg, sizeof(msg));

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[80];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	size_t pos = 0;
	int n;
	if (log_json) {
		n = snprintf(line, sizeof(line),
			     "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"%s\"", when,
			     ab_log_level_name(level), log_role);
		pos = (size_t)n;
		if (req_id[0]) {
			n = snprintf(line + pos, sizeof(line) - pos, ",\"req\":\"%s\"", req_id);
			pos += (size_t)n;
		}
		n = snprintf(line + pos, sizeof(line) - pos, ",\"msg\":");
		pos += (size_t)n;
		put_quoted(line, sizeof(line) - 3, &pos, msg);
		line[pos++] = '}';
	} else {
		n = snprintf(line, sizeof(line), "ts=%s level=%s role=%s", when,
			     ab_log_level_name(level), log_role);
		pos = (size_t)n;
		if (req_id[0]) {
			n = snprintf(line + pos, sizeof(line) - pos, " req=%s", req_id);
			pos += (size_t)n;
		}
		n = snprintf(line + pos, sizeof(line) - pos, " msg=");
		pos += (size_t)n;
		put_quoted(line, sizeof(line) - 2, &pos, msg);
	}
	line[pos++] = '\n';

	if (atomic_load_explicit(&reopen_wanted, memory_order_relaxed) &&
	    atomic_exchange(&reopen_wanted, 0))
		(void)ab_log_reopen();
	ssize_t w = write(log_fd, line, pos);
	(void)w;
	pthread_rwlock_rdlock(&sink_lock);
	if (file_fd >= 0) {
		w = write(file_fd, line, pos);
		(void)w;
	}
	if (hook_fn && !hook_muted) {
		struct ab_log_event ev = {
			.wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
			.ts = when,
			.level = level,
			.role = log_role,
			.rid = req_id[0] ? req_id : NULL,
			.msg = msg,
			.msg_len = strlen(msg),
		};
		hook_fn(hook_ud, &ev);
	}
	pthread_rwlock_unlock(&sink_lock);
}

/* ---- the file sink ---- */

/* Creates the folders above path (each with mode 0750) when missing. */
static void make_parents(const char *path)
{
	char dir[4096];
	if (ab_strlcpy(dir, path, sizeof(dir)) >= sizeof(dir))
		return;
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(dir, 0750);
		*p = '/';
	}
	(void)mkdir(dir, 0750);
}

/* Opens path for appending lines. Returns the descriptor or -errno. */
static int open_log(const char *path)
{
	int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY;
	int fd = open(path, flags, 0640);
	if (fd < 0 && errno == ENOENT) {
		make_parents(path);
		fd = open(path, flags, 0640);
	}
	return fd >= 0 ? fd : -errno;
}

int ab_log_open_file(const char *path)
{
	int fd = -1;
	if (path && *path) {
		fd = open_log(path);
		if (fd < 0)
			return fd;
	}
	pthread_rwlock_wrlock(&sink_lock);
	int old = file_fd;
	file_fd = fd;
	free(file_path);
	file_path = fd >= 0 ? ab_xstrdup(path) : NULL;
	pthread_rwlock_unlock(&sink_lock);
	if (old >= 0)
		close(old);
	return 0;
}

int ab_log_reopen(void)
{
	int rc = 0;
	pthread_rwlock_wrlock(&sink_lock);
	if (file_path) {
		int fd = open_log(file_path);
		if (fd >= 0) {
			close(file_fd);
			file_fd = fd;
		} else {
			rc = fd; /* keep writing to the old file rather than nowhere */
		}
	}
	pthread_rwlock_unlock(&sink_lock);
	return rc;
}

void ab_log_request_reopen(void)
{
	atomic_store(&reopen_wanted, 1);
}

/* ---- the hook ---- */

void ab_log_set_hook(ab_log_hook_fn fn, void *ud)
{
	pthread_rwlock_wrlock(&sink_lock);
	hook_fn = fn;
	hook_ud = fn ? ud : NULL;
	pthread_rwlock_unlock(&sink_lock);
}

void ab_log_mute_hook(bool mute)
{
	hook_muted = mute;
}
