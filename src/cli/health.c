/*
 * health.c - `autobot health` and `autobot status`.
 *
 * health probes every configured service (and, when Redis answers within
 * the probe timeout, every registered one) concurrently and prints a
 * table or JSON; the exit code is 0 when all are ok, 1 when any is
 * degraded, 2 when any is down. status adds what the registry knows:
 * which instances run where, their pids, uptime and load.
 */
#include "cli.h"

#include "log.h"
#include "redis.h"
#include "registry.h"
#include "secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage_health(FILE *f)
{
	fprintf(f,
		"usage: autobot health [options]\n"
		"\n"
		"Probes every service concurrently and prints role, url, status and\n"
		"latency. Exit status: 0 all ok, 1 some degraded, 2 some down.\n"
		"\noptions:\n%s"
		"  --json             print {\"status\",\"elapsed_ms\",\"services\":[...]}\n"
		"  --watch            repeat every 2 s until interrupted\n"
		"  --timeout MS       probe timeout (default: timeouts.probe_ms)\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}


static int exit_for(const char *overall)
{
	if (!strcmp(overall, "ok"))
		return 0;
	if (!strcmp(overall, "degraded"))
		return 1;
	return 2;
}

static void print_table(const struct ab_probe *p, size_t n, double elapsed, bool color)
{
	printf("%-12s %-34s %-9s %10s  %s\n", "ROLE", "URL", "STATUS", "LATENCY", "ERROR");
	for (size_t i = 0; i < n; i++) {
		const char *c0 = "", *c1 = "";
		if (color) {
			c0 = !strcmp(p[i].status, "ok") ? "\033[32m"
			     : !strcmp(p[i].status, "degraded") ? "\033[33m" : "\033[31m";
			c1 = "\033[0m";
		}
		printf("%-12s %-34s %s%-9s%s %8.1fms  %s\n", p[i].role, p[i].url, c0, p[i].status,
		       c1, p[i].latency_ms, p[i].error);
	}
	printf("overall: %s (%zu services, %.1f ms)\n", ab_health_overall(p, n), n, elapsed);
}

int ab_cmd_health(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	bool json = false, watch = false;
	const char *timeout_s = NULL;
	int timeout = -1;
	const struct ab_cli_opt opts[] = {
		{"--json", &json, NULL},
		{"--watch", &watch, NULL},
		{"--timeout", NULL, &timeout_s},
		{NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "health", &co, opts, NULL, 0, NULL, usage_health);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	if (timeout_s) {
		long long t;
		if (ab_cli_int("health", "--timeout", timeout_s, 1, 600000, &t) < 0)
			return AB_EXIT_USAGE;
		timeout = (int)t;
	}
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 2;
	ab_log_init("cli", AB_LOG_ERROR, false);
	if (timeout < 0)
		timeout = cfg->probe_ms;
	struct ab_secrets sec;
	char serr[256];
	if (ab_secrets_load(cfg, 0, &sec, serr, sizeof(serr)) < 0)
		sec.redis_password[0] = '\0';
	ab_secrets_apply(cfg, &sec); /* the Redis probe authenticates */
	int code = 2;
	bool tty = isatty(1);
	for (;;) {
		double t0 = ab_now_ms_f();
		/* the registry is read on the Redis probe's connection */
		struct ab_probe *p = NULL;
		size_t n = 0;
		int rc = ab_health_cluster(cfg, NULL, timeout, &p, &n);
		double elapsed = ab_now_ms_f() - t0;
		if (rc < 0) {
			fprintf(stderr, "autobot health: %s\n", ab_strerror(rc));
			code = 2;
			break;
		}
		code = exit_for(ab_health_overall(p, n));
		if (watch && tty)
			printf("\033[H\033[2J");
		if (json) {
			json_t *j = ab_health_to_json(p, n, elapsed);
			char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
			printf("%s\n", s);
			free(s);
			json_decref(j);
		} else {
			print_table(p, n, elapsed, tty);
		}
		fflush(stdout);
		free(p);
		if (!watch)
			break;
		ab_sleep_ms(2000);
	}
	ab_config_free(cfg);
	return code;
}

static void usage_status(FILE *f)
{
	fprintf(f,
		"usage: autobot status [options]\n"
		"\n"
		"Shows the config in use, the state directory, and every instance in\n"
		"the service registry (role, id, url, pid, uptime, load), then the\n"
		"health of each service. Exit status as for autobot health.\n"
		"\noptions:\n%s"
		"  --json             print one JSON object\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

int ab_cmd_status(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	bool json = false;
	const struct ab_cli_opt opts[] = {{"--json", &json, NULL}, {NULL, NULL, NULL}};
	int pr = ab_cli_parse(argc, argv, "status", &co, opts, NULL, 0, NULL, usage_status);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 2;
	ab_log_init("cli", AB_LOG_ERROR, false);
	double t0 = ab_now_ms_f();
	/* the registry, if Redis answers within the probe timeout; else health
	 * goes by the config alone */
	struct ab_redis *r = ab_cli_redis(cfg, cfg->probe_ms, cfg->probe_ms, cfg->probe_ms);
	int err = 0;
	json_t *reg = ab_redis_is_up(r) ? ab_registry_list(r, &err) : NULL;
	struct ab_probe *p = NULL;
	size_t n = 0;
	ab_health_cluster(cfg, r, cfg->probe_ms, &p, &n);
	double elapsed = ab_now_ms_f() - t0;
	const char *overall = ab_health_overall(p, n);
	int code = exit_for(overall);
	if (json) {
		json_t *j = json_pack("{s:s?,s:s,s:s,s:o,s:o}", "config", cfg->path, "state_dir",
				      cfg->state_dir, "cluster", cfg->cluster_name, "registry",
				      reg ? json_incref(reg) : json_null(), "health",
				      ab_health_to_json(p, n, elapsed));
		char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
		printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		printf("cluster:   %s\n", cfg->cluster_name);
		printf("config:    %s\n", cfg->path ? cfg->path : "(none: one-machine defaults)");
		printf("state dir: %s\n", cfg->state_dir);
		printf("redis:     %s\n", ab_redis_is_up(r) ? "up" : "unreachable");
		printf("\nregistered instances:\n");
		if (!reg) {
			printf("  (registry unavailable: redis is not reachable)\n");
		} else if (json_array_size(reg) == 0) {
			printf("  (none)\n");
		} else {
			printf("  %-12s %-28s %-30s %7s %10s %6s\n", "ROLE", "ID", "URL", "PID",
			       "UPTIME", "LOAD");
			size_t i;
			json_t *e;
			json_array_foreach(reg, i, e)
			{
				long long started = json_integer_value(json_object_get(e, "started_ms"));
				double up = started ? (double)(ab_wall_ms() - started) / 1000.0 : 0;
				printf("  %-12s %-28s %-30s %7lld %9.0fs %6.2f\n",
				       json_string_value(json_object_get(e, "role")) ?: "?",
				       json_string_value(json_object_get(e, "id")) ?: "?",
				       json_string_value(json_object_get(e, "url")) ?: "?",
				       json_integer_value(json_object_get(e, "pid")), up,
				       json_number_value(json_object_get(e, "load")));
			}
		}
		printf("\n");
		print_table(p, n, elapsed, isatty(1));
	}
	json_decref(reg);
	free(p);
	ab_redis_free(r);
	ab_config_free(cfg);
	return code;
}
