/*
 * logs.c - `autobot logs`: the log lines of every role on every host, read
 * from the ab:log stream (logsink.h) through the config's Redis.
 *
 *   autobot logs [ROLE] [-f] [--role R] [--host H] [--level L] [--since T]
 *                [-n N] [--json]
 *
 * Without --since it prints the last N lines (100, or 10 with -f); with
 * --since every line from then on (or the last N of them when -n is
 * given). -f then keeps printing new lines as they are written (XREAD
 * BLOCK, one second at a time, so Ctrl-C ends it within a second with
 * status 0), and rides out a Redis restart by retrying.
 */
#include "cli.h"

#include "log.h"
#include "logsink.h"
#include "redis.h"
#include "secrets.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LINES 100
#define FOLLOW_LINES 10
#define BLOCK_MS 1000

static volatile sig_atomic_t stop_now;

static void on_stop(int sig)
{
	(void)sig;
	stop_now = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: autobot logs [ROLE] [options]\n"
		"\n"
		"Prints the log lines every role writes to the ab:log stream in Redis, from\n"
		"every host, oldest first: \"TIME LEVEL ROLE@HOST MESSAGE [rid=ID]\".\n"
		"\noptions:\n%s"
		"  -f, --follow       keep printing new lines until Ctrl-C\n"
		"  --role R           only lines of role R (also: the ROLE argument)\n"
		"  --host H           only lines of host H (a service's configured address)\n"
		"  --level L          only level L and above: debug, info, warn, error\n"
		"  --since T          only lines from T on: a duration back (90s, 10m, 2h, 7d)\n"
		"                     or an ISO 8601 time (2024-05-01T10:00:00, UTC unless it\n"
		"                     has Z or an offset)\n"
		"  -n N               the last N lines (default %d, %d with -f; with --since:\n"
		"                     all lines since then unless -n is given)\n"
		"  --json             one JSON object per line: id, ts, level, role, host, msg, rid\n"
		"  -h, --help         this text\n",
		ab_cli_common_help, DEFAULT_LINES, FOLLOW_LINES);
}

static void print_entries(const json_t *arr, bool as_json)
{
	struct ab_buf b = {0};
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *e = json_array_get(arr, i);
		if (as_json) {
			char *txt = json_dumps(e, JSON_COMPACT);
			if (txt)
				ab_buf_puts(&b, txt);
			free(txt);
		} else {
			ab_logsink_format(e, &b);
		}
		ab_buf_putc(&b, '\n');
	}
	if (b.len)
		fwrite(b.data, 1, b.len, stdout);
	fflush(stdout);
	ab_buf_free(&b);
}


/* Prints every line matching f from f->since_ms on, leaving cursor at
 * the last entry scanned. */
static int print_since(struct ab_redis *r, const struct ab_logsink_filter *f, bool as_json,
		       char cursor[AB_LOGSINK_ID_MAX])
{
	/* the id just before since_ms-0, so that the range starts there */
	snprintf(cursor, AB_LOGSINK_ID_MAX, "%lld-18446744073709551615",
		 (long long)(f->since_ms > 0 ? f->since_ms - 1 : 0));
	for (;;) {
		json_t *arr = json_array();
		int n = ab_logsink_next(r, f, 0, 500, cursor, arr);
		print_entries(arr, as_json);
		json_decref(arr);
		if (n <= 0)
			return n;
	}
}

static int follow(struct ab_redis *r, const struct ab_logsink_filter *f, bool as_json,
		  char cursor[AB_LOGSINK_ID_MAX])
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool said_down = false;
	while (!stop_now) {
		json_t *arr = json_array();
		int n = ab_logsink_next(r, f, BLOCK_MS, 200, cursor, arr);
		print_entries(arr, as_json);
		json_decref(arr);
		if (n >= 0) {
			said_down = false;
			continue;
		}
		if (stop_now)
			break;
		if (n == AB_EREDIS || n == AB_EINVAL) {
			fprintf(stderr, "autobot logs: reading ab:log failed: %s\n", ab_strerror(n));
			return 1;
		}
		if (!said_down)
			fprintf(stderr, "autobot logs: redis unavailable (%s), retrying\n",
				ab_strerror(n));
		said_down = true;
		ab_sleep_ms(500);
	}
	return 0;
}

int ab_cmd_logs(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	bool follow_f = false, follow_long = false, as_json = false;
	const char *role = NULL, *host = NULL, *level_s = NULL, *since_s = NULL, *n_s = NULL;
	const char *pos[1];
	size_t n_pos = 0;
	const struct ab_cli_opt opts[] = {
		{"-f", &follow_f, NULL},
		{"--follow", &follow_long, NULL},
		{"--json", &as_json, NULL},
		{"--role", NULL, &role},
		{"--host", NULL, &host},
		{"--level", NULL, &level_s},
		{"--since", NULL, &since_s},
		{"-n", NULL, &n_s},
		{NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "logs", &co, opts, pos, 1, &n_pos, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	bool following = follow_f || follow_long;
	if (n_pos) {
		if (role && strcmp(role, pos[0]) != 0) {
			fprintf(stderr, "autobot logs: ROLE %s and --role %s disagree\n", pos[0], role);
			return AB_EXIT_USAGE;
		}
		role = pos[0];
	}
	if (role && ab_role_parse(role) < 0) {
		fprintf(stderr, "autobot logs: unknown role \"%s\"\n", role);
		return AB_EXIT_USAGE;
	}
	struct ab_logsink_filter f = {.role = role, .host = host, .min_level = AB_LOG_DEBUG};
	if (level_s && ab_logsink_level_parse(level_s, &f.min_level) < 0) {
		fprintf(stderr, "autobot logs: --level: expected debug, info, warn or error, got "
				"\"%s\"\n",
			level_s);
		return AB_EXIT_USAGE;
	}
	if (since_s && ab_logsink_since_parse(since_s, ab_wall_ms(), &f.since_ms) < 0) {
		fprintf(stderr,
			"autobot logs: --since: expected a duration (90s, 10m, 2h, 7d) or an ISO "
			"8601 time, got \"%s\"\n",
			since_s);
		return AB_EXIT_USAGE;
	}
	long long lines = following ? FOLLOW_LINES : DEFAULT_LINES;
	if (n_s && ab_cli_int("logs", "-n", n_s, 0, 1000000, &lines) < 0)
		return AB_EXIT_USAGE;

	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	/* the client's own notes ("redis up at ...") would only clutter */
	ab_log_init("logs", cfg->log_level > AB_LOG_WARN ? cfg->log_level : AB_LOG_WARN, false);
	int status = 1;
	struct ab_redis *r = ab_cli_redis(cfg, cfg->redis_connect_ms, BLOCK_MS + cfg->redis_command_ms,
					 cfg->redis_connect_ms + 500);
	if (!r || !ab_redis_is_up(r)) {
		struct ab_redis_status st = {0};
		ab_redis_status(r, &st);
		fprintf(stderr, "autobot logs: cannot reach redis at %s:%d: %s\n",
			cfg->services[AB_ROLE_REDIS].host, cfg->services[AB_ROLE_REDIS].port,
			st.last_error[0] ? st.last_error : "no answer");
		goto out;
	}
	char cursor[AB_LOGSINK_ID_MAX] = "0-0";
	int rc;
	if (since_s && !n_s) {
		rc = print_since(r, &f, as_json, cursor);
	} else {
		json_t *arr = json_array();
		rc = lines > 0 ? ab_logsink_tail(r, &f, (size_t)lines, 0, arr, cursor)
			       : ab_logsink_tail(r, NULL, 1, 1, arr, cursor);
		if (lines > 0)
			print_entries(arr, as_json);
		json_decref(arr);
	}
	if (rc < 0) {
		fprintf(stderr, "autobot logs: reading ab:log failed: %s\n", ab_strerror(rc));
		goto out;
	}
	status = following ? follow(r, &f, as_json, cursor) : 0;
out:
	ab_redis_free(r);
	ab_config_free(cfg);
	return status;
}
