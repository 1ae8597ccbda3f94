/*
 * test_log.c - line format, levels, request ids and secret redaction; the
 * log file (append, modes, reopen after a rename on SIGHUP); the ab:log
 * stream sink (bounded queue, drops counted, lines intact after a real
 * redis-server comes up) and its readers (entries, filters, --since).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "logsink.h"
#include "testutil.h"

static char out[8192];

static void capture(void (*fn)(void))
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	ab_log_set_fd(p[1]);
	fn();
	ab_log_set_fd(2);
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
}

static void emit_levels(void)
{
	ab_log_init("coordinator", AB_LOG_WARN, false);
	ab_log(AB_LOG_INFO, "hidden line");
	ab_log(AB_LOG_WARN, "shown %d", 7);
}

Test(log, level_filter_and_logfmt)
{
	capture(emit_levels);
	cr_assert_null(strstr(out, "hidden"));
	cr_assert_not_null(strstr(out, "level=warn role=coordinator msg=\"shown 7\""), "%s", out);
	cr_assert_eq(out[strlen(out) - 1], '\n');
}

static void emit_json_req(void)
{
	ab_log_init("llm", AB_LOG_DEBUG, true);
	ab_log_set_request_id("abc123");
	ab_log(AB_LOG_INFO, "quote \" and newline \n here");
	ab_log_set_request_id(NULL);
}

Test(log, json_lines_with_request_id)
{
	capture(emit_json_req);
	cr_assert_not_null(strstr(out, "\"role\":\"llm\",\"req\":\"abc123\""), "%s", out);
	cr_assert_not_null(strstr(out, "quote \\\" and newline \\n here"), "%s", out);
}

static void emit_secret(void)
{
	ab_log_init("up", AB_LOG_DEBUG, false);
	ab_log_add_secret("s3cr3t-token-value");
	ab_log(AB_LOG_INFO, "token is s3cr3t-token-value and again s3cr3t-token-value!");
}

Test(log, secrets_are_redacted)
{
	capture(emit_secret);
	cr_assert_null(strstr(out, "s3cr3t"), "%s", out);
	cr_assert_not_null(strstr(out, "token is [redacted] and again [redacted]!"), "%s", out);
}

Test(log, level_names)
{
	cr_assert_eq(ab_log_level_parse("debug"), AB_LOG_DEBUG);
	cr_assert_eq(ab_log_level_parse("warning"), AB_LOG_WARN);
	cr_assert_eq(ab_log_level_parse("loud"), AB_EINVAL);
}

/* ---- the log file ---- */

static char *slurp(const char *path)
{
	static char buf[16384];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static bool file_has(const char *path, const char *needle)
{
	const char *t = slurp(path);
	return t && strstr(t, needle);
}

static void on_hup(int sig)
{
	(void)sig;
	ab_log_request_reopen();
}

Test(log, file_reopened_after_rename_and_sighup)
{
	char dir[] = "/tmp/ab-logtest-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[256], rotated[256], sub[256];
	snprintf(sub, sizeof(sub), "%s/logs", dir);
	snprintf(path, sizeof(path), "%s/coordinator.log", sub);
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	umask(022);
	int devnull = open("/dev/null", O_WRONLY);
	ab_log_set_fd(devnull);
	ab_log_init("coordinator", AB_LOG_INFO, false);

	cr_assert_eq(ab_log_open_file(path), 0);
	struct stat st;
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0750, "folder mode %o", st.st_mode & 0777);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640, "file mode %o", st.st_mode & 0777);

	ab_log(AB_LOG_INFO, "line before the rotation");
	cr_assert_eq(rename(path, rotated), 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGHUP, &sa, NULL), 0);
	cr_assert_eq(raise(SIGHUP), 0);
	ab_log(AB_LOG_INFO, "line after the rotation");

	cr_assert(file_has(rotated, "line before the rotation"), "%s", slurp(rotated));
	cr_assert(!file_has(rotated, "line after"), "%s", slurp(rotated));
	cr_assert(file_has(path, "level=info role=coordinator msg=\"line after the rotation\""),
		  "%s", slurp(path));
	cr_assert(!file_has(path, "before"), "%s", slurp(path));

	/* the direct call does the same; closing stops the copies */
	cr_assert_eq(rename(path, rotated), 0);
	cr_assert_eq(ab_log_reopen(), 0);
	ab_log(AB_LOG_WARN, "third line");
	cr_assert(file_has(path, "third line"));
	cr_assert_eq(ab_log_open_file(NULL), 0);
	ab_log(AB_LOG_WARN, "fourth line");
	cr_assert(!file_has(path, "fourth line"));
	cr_assert_eq(ab_log_reopen(), 0, "no file: nothing to reopen");

	/* a path that cannot be opened keeps the logger working */
	cr_assert_lt(ab_log_open_file("/proc/no/such/dir/x.log"), 0);
	close(devnull);
	ab_log_set_fd(2);
	unlink(path);
	unlink(rotated);
	rmdir(sub);
	rmdir(dir);
}

/* ---- hooks ---- */

static int hook_calls;
static char hook_msg[256], hook_rid[80];

static void count_hook(void *ud, const struct ab_log_event *ev)
{
	(void)ud;
	hook_calls++;
	ab_strlcpy(hook_msg, ev->msg, sizeof(hook_msg));
	ab_strlcpy(hook_rid, ev->rid ? ev->rid : "", sizeof(hook_rid));
}

Test(log, hook_sees_redacted_lines_unless_muted)
{
	int devnull = open("/dev/null", O_WRONLY);
	ab_log_set_fd(devnull);
	ab_log_init("llm", AB_LOG_INFO, false);
	ab_log_add_secret("hook-secret-123");
	ab_log_set_hook(count_hook, NULL);
	ab_log_set_request_id("req-9");
	ab_log(AB_LOG_INFO, "token hook-secret-123 seen");
	ab_log_set_request_id(NULL);
	ab_log(AB_LOG_DEBUG, "below the level");
	cr_assert_eq(hook_calls, 1);
	cr_assert_str_eq(hook_msg, "token [redacted] seen");
	cr_assert_str_eq(hook_rid, "req-9");
	ab_log_mute_hook(true);
	ab_log(AB_LOG_ERROR, "muted");
	ab_log_mute_hook(false);
	cr_assert_eq(hook_calls, 1);
	ab_log_set_hook(NULL, NULL);
	ab_log(AB_LOG_ERROR, "no hook");
	cr_assert_eq(hook_calls, 1);
	close(devnull);
	ab_log_set_fd(2);
}

/* ---- the stream sink ---- */

#define PW "log-test-pw-8d2a"

static bool wait_sent(struct ab_logsink *s, uint64_t want, int ms)
{
	struct ab_logsink_stats st;
	int64_t end = ab_now_ms() + ms;
	do {
		ab_logsink_stats(s, &st);
		if (st.sent >= want && st.pending == 0)
			return true;
		ab_sleep_ms(20);
	} while (ab_now_ms() < end);
	return false;
}

Test(logsink, bounded_queue_counts_drops_and_catches_up, .timeout = 60)
{
	int port = tu_free_port();
	struct ab_redis *r = tu_redis_client(port, PW, 1000, 2);
	int devnull = open("/dev/null", O_WRONLY);
	ab_log_set_fd(devnull);
	/* error level only: the client's own notes (warn) stay out of the queue */
	ab_log_init("coordinator", AB_LOG_ERROR, false);
	struct ab_logsink *s = NULL;
	struct ab_logsink_opts o = {.redis = r, .host = "127.0.0.1", .stream_max = 1000,
				    .queue_max = 8};
	cr_assert_eq(ab_logsink_start(&o, &s), 0);
	struct ab_logsink *other = NULL;
	cr_assert_eq(ab_logsink_start(&o, &other), AB_EEXIST, "one sink per process");

	/* nothing listens on port: every line waits, then the queue is full */
	ab_log_set_request_id("rid-77");
	for (int i = 0; i < 20; i++)
		ab_log(AB_LOG_ERROR, "line %d with \"quotes\", a tab\tand caf\xc3\xa9", i);
	ab_log_set_request_id(NULL);
	struct ab_logsink_stats st;
	ab_logsink_stats(s, &st);
	cr_assert_eq(st.accepted, 8);
	cr_assert_eq(st.pending, 8);
	cr_assert_eq(st.dropped, 12);
	cr_assert_eq(st.sent, 0);
	struct ab_buf m = {0};
	ab_logsink_metrics(&m);
	cr_assert_not_null(strstr(m.data, "autobot_log_stream_dropped_total 12"), "%s", m.data);
	ab_buf_free(&m);

	/* redis comes up on that port: the queue drains, then the gap note */
	pid_t pid = tu_redis_start(port, PW);
	if (pid < 0) {
		ab_logsink_stop(s, 0);
		ab_redis_free(r);
		cr_skip_test("redis-server not installed at " TU_REDIS_BIN);
	}
	cr_assert(wait_sent(s, 9, 15000), "the queue never drained");

	int err = 0;
	redisReply *rep = ab_redis_cmd(r, &err, "XRANGE %s - +", AB_KEY_LOG);
	cr_assert_not_null(rep, "err %d", err);
	cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
	cr_assert_eq(rep->elements, 9);
	for (int i = 0; i < 8; i++) {
		json_t *e = ab_logsink_entry_json(rep->element[i]);
		cr_assert_not_null(e);
		char want[128];
		snprintf(want, sizeof(want), "line %d with \"quotes\", a tab\tand caf\xc3\xa9", i);
		cr_assert_str_eq(json_string_value(json_object_get(e, "msg")), want);
		cr_assert_str_eq(json_string_value(json_object_get(e, "level")), "error");
		cr_assert_str_eq(json_string_value(json_object_get(e, "role")), "coordinator");
		cr_assert_str_eq(json_string_value(json_object_get(e, "host")), "127.0.0.1");
		cr_assert_str_eq(json_string_value(json_object_get(e, "rid")), "rid-77");
		const char *ts = json_string_value(json_object_get(e, "ts"));
		int64_t ms = 0;
		cr_assert_eq(ab_logsink_since_parse(ts, 0, &ms), 0, "ts %s", ts);
		cr_assert_gt(ms, 1700000000000LL);
		json_decref(e);
	}
	json_t *note = ab_logsink_entry_json(rep->element[8]);
	cr_assert_str_eq(json_string_value(json_object_get(note, "level")), "warn");
	cr_assert_not_null(strstr(json_string_value(json_object_get(note, "msg")),
				  "12 lines were dropped"));
	json_decref(note);
	freeReplyObject(rep);

	/* readers: the tail with filters, and the forward read */
	json_t *arr = json_array();
	char top[AB_LOGSINK_ID_MAX];
	struct ab_logsink_filter f = {.min_level = AB_LOG_ERROR};
	cr_assert_eq(ab_logsink_tail(r, &f, 3, 0, arr, top), 0);
	cr_assert_eq(json_array_size(arr), 3);
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(arr, 0), "msg")),
				  "line 5 "), "oldest first");
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(arr, 2), "msg")),
				  "line 7 "));
	cr_assert(ab_logsink_id_valid(top));
	char newest[AB_LOGSINK_ID_MAX];
	ab_strlcpy(newest, top, sizeof(newest));
	json_array_clear(arr);
	f = (struct ab_logsink_filter){.role = "llm"};
	cr_assert_eq(ab_logsink_tail(r, &f, 5, 0, arr, top), 0);
	cr_assert_eq(json_array_size(arr), 0);
	f = (struct ab_logsink_filter){.since_ms = ab_wall_ms() + 60000};
	cr_assert_eq(ab_logsink_tail(r, &f, 5, 0, arr, top), 0);
	cr_assert_eq(json_array_size(arr), 0);
	cr_assert_str_eq(top, newest, "the end of the stream, even when nothing matched");
	f = (struct ab_logsink_filter){.min_level = AB_LOG_WARN, .host = "127.0.0.1"};
	char cursor[AB_LOGSINK_ID_MAX] = "0-0";
	cr_assert_eq(ab_logsink_next(r, &f, 0, 100, cursor, arr), 9);
	cr_assert_eq(json_array_size(arr), 9);
	cr_assert_str_eq(cursor, newest);
	json_array_clear(arr);
	cr_assert_eq(ab_logsink_next(r, &f, 0, 100, cursor, arr), 0, "nothing after the end");

	/* a new line after the catch-up goes straight through */
	ab_log(AB_LOG_ERROR, "fresh line");
	cr_assert(wait_sent(s, 10, 10000));
	cr_assert_eq(ab_logsink_next(r, &f, 200, 100, cursor, arr), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "msg")),
			 "fresh line");
	json_decref(arr);

	ab_logsink_stop(s, 1000);
	ab_redis_free(r);
	tu_kill(pid);
	close(devnull);
	ab_log_set_fd(2);
}

Test(logsink, hostile_entries_are_bounded_and_valid_utf8, .timeout = 60)
{
	struct tu_redis srv = {0};
	tu_redis_need(&srv, PW);
	struct ab_redis *r = tu_redis_client(srv.port, PW, 1000, 1);
	for (int i = 0; i < 200 && !ab_redis_is_up(r); i++)
		ab_sleep_ms(20);
	char big[20000];
	memset(big, 'x', sizeof(big));
	const char *argv[] = {"XADD", AB_KEY_LOG, "*", "msg", big, "role", "bad\xff\xfe\x1b[31m",
			      "level", "error", "junk", "ignored"};
	size_t lens[] = {4, strlen(AB_KEY_LOG), 1, 3, sizeof(big), 4, 10, 5, 5, 4, 7};
	int err = 0;
	redisReply *rep = ab_redis_cmdargv(r, &err, 11, argv, lens);
	cr_assert_not_null(rep);
	freeReplyObject(rep);
	rep = ab_redis_cmd(r, &err, "XADD %s * msg %s", AB_KEY_LOG, "odd\x01line\nnext");
	freeReplyObject(rep);

	json_t *arr = json_array();
	char top[AB_LOGSINK_ID_MAX];
	cr_assert_eq(ab_logsink_tail(r, NULL, 10, 0, arr, top), 0);
	cr_assert_eq(json_array_size(arr), 2);
	json_t *e = json_array_get(arr, 0);
	cr_assert_leq(strlen(json_string_value(json_object_get(e, "msg"))), 8192);
	cr_assert_str_eq(json_string_value(json_object_get(e, "role")), "bad??\x1b[31m");
	cr_assert_null(json_object_get(e, "junk"));
	cr_assert_str_eq(json_string_value(json_object_get(e, "ts")), "");
	struct ab_buf b = {0};
	ab_logsink_format(e, &b);
	cr_assert_null(strchr(b.data, '\x1b'), "control characters reach the terminal");
	ab_buf_reset(&b);
	ab_logsink_format(json_array_get(arr, 1), &b);
	cr_assert_not_null(strstr(b.data, "odd?line\\nnext"), "%s", b.data);
	ab_buf_free(&b);
	json_decref(arr);
	ab_redis_free(r);
	tu_kill(srv.pid);
}

Test(logsink, since_and_level_parsing)
{
	int64_t ms = 0, now = 1000000000000LL;
	cr_assert_eq(ab_logsink_since_parse("10m", now, &ms), 0);
	cr_assert_eq(ms, now - 600000);
	cr_assert_eq(ab_logsink_since_parse("2h", now, &ms), 0);
	cr_assert_eq(ms, now - 7200000);
	cr_assert_eq(ab_logsink_since_parse("90s", now, &ms), 0);
	cr_assert_eq(ms, now - 90000);
	cr_assert_eq(ab_logsink_since_parse("7d", now, &ms), 0);
	cr_assert_eq(ms, now - 7LL * 86400000);
	cr_assert_eq(ab_logsink_since_parse("2024-05-01T10:00:00Z", now, &ms), 0);
	cr_assert_eq(ms, 1714557600000LL);
	cr_assert_eq(ab_logsink_since_parse("2024-05-01T10:00:00.123Z", now, &ms), 0);
	cr_assert_eq(ms, 1714557600123LL);
	cr_assert_eq(ab_logsink_since_parse("2024-05-01 12:00:00.25+02:00", now, &ms), 0);
	cr_assert_eq(ms, 1714557600250LL);
	cr_assert_eq(ab_logsink_since_parse("2024-05-01T05:30-0430", now, &ms), 0);
	cr_assert_eq(ms, 1714557600000LL);
	cr_assert_eq(ab_logsink_since_parse("2024-05-01T10:00", now, &ms), 0);
	cr_assert_eq(ms, 1714557600000LL);
	cr_assert_eq(ab_logsink_since_parse("2024-05-01", now, &ms), 0);
	cr_assert_eq(ms, 1714521600000LL);
	const char *bad[] = {"", "10", "10x", "m", "-5m", "2024-13-01", "2024-05-01T25:00",
			     "yesterday", "2024-05-01T10:00:00Zjunk", "99999999999999999999d"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(ab_logsink_since_parse(bad[i], now, &ms), AB_EINVAL, "%s", bad[i]);
	int lv = -1;
	cr_assert_eq(ab_logsink_level_parse("warn", &lv), 0);
	cr_assert_eq(lv, AB_LOG_WARN);
	cr_assert_eq(ab_logsink_level_parse("off", &lv), AB_EINVAL);
	cr_assert_eq(ab_logsink_level_parse("loud", &lv), AB_EINVAL);
	cr_assert(ab_logsink_id_valid("1714557600000-0"));
	cr_assert(!ab_logsink_id_valid("1714557600000"));
	cr_assert(!ab_logsink_id_valid("12-3x"));
	cr_assert(!ab_logsink_id_valid("$"));
}
