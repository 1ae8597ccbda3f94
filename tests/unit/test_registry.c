/*
 * test_registry.c - tests of service registration (registry.c) and of
 * cluster health (health.c) against a real redis-server and a tiny HTTP
 * server, both started by the test.
 *
 * redis-server runs as our child (tu_redis_start in testutil.c) on a
 * free port with a password, and is killed in teardown; tests that need
 * it skip when it is not installed. The HTTP server is testutil's
 * threaded one on 127.0.0.1, answering {"status":"ok"} on /health; in
 * "black hole" mode it accepts and never answers. A process that dies
 * without deregistering is simulated by a forked child killed with
 * SIGKILL.
 */
#include "common.h"
#include "config.h"
#include "httpc.h"
#include "log.h"
#include "redis.h"
#include "registry.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PW "reg-test-pw-a81f"

static struct tu_redis srv;

/* ---- fixtures: redis-server ---- */

static struct ab_redis *client(void)
{
	return tu_redis_client(srv.port, PW, 500, 2);
}

static void wait_up(struct ab_redis *r)
{
	for (int i = 0; i < 300 && !ab_redis_is_up(r); i++)
		ab_sleep_ms(10);
	cr_assert(ab_redis_is_up(r), "redis client never came up");
}

static void setup(void)
{
	ab_log_min_level = AB_LOG_ERROR;
	ab_httpc_global_init();
	srv = (struct tu_redis){0};
}

static void teardown(void)
{
	tu_kill(srv.pid);
	srv.pid = 0;
	ab_httpc_global_cleanup();
}

TestSuite(registry, .init = setup, .fini = teardown, .timeout = 60);

/* Lists and returns the entry with the given id (new reference), or NULL. */
static json_t *find_entry(struct ab_redis *r, const char *id, size_t *count)
{
	int err = 0;
	json_t *arr = ab_registry_list(r, &err);
	cr_assert_not_null(arr, "list failed: %s", ab_strerror(err));
	json_t *found = NULL, *e;
	size_t i;
	json_array_foreach(arr, i, e)
	{
		const char *eid = json_string_value(json_object_get(e, "id"));
		if (eid && !strcmp(eid, id))
			found = json_incref(e);
	}
	if (count)
		*count = json_array_size(arr);
	json_decref(arr);
	return found;
}

static json_t *wait_entry(struct ab_redis *r, const char *id, int ms)
{
	int64_t end = ab_now_ms() + ms;
	do {
		json_t *e = find_entry(r, id, NULL);
		if (e)
			return e;
		ab_sleep_ms(20);
	} while (ab_now_ms() < end);
	return NULL;
}

Test(registry, two_registrations_listed_and_stop_removes)
{
	tu_redis_need(&srv, PW);
	struct ab_redis *r = client();
	wait_up(r);
	struct ab_registry *a = NULL, *b = NULL;

	cr_assert_eq(ab_registry_start(r, "npu", "n1", "http://10.0.0.2:8090", &b), 0);
	cr_assert_eq(ab_registry_start(r, "coordinator", "c1", "http://10.0.0.1:8080", &a), 0);
	json_t *ea = wait_entry(r, "c1", 3000);
	json_t *eb = wait_entry(r, "n1", 3000);
	cr_assert_not_null(ea);
	cr_assert_not_null(eb);
	cr_assert_str_eq(json_string_value(json_object_get(ea, "role")), "coordinator");
	cr_assert_str_eq(json_string_value(json_object_get(ea, "url")), "http://10.0.0.1:8080");
	cr_assert_str_eq(json_string_value(json_object_get(ea, "version")), AB_VERSION);
	cr_assert_eq(json_integer_value(json_object_get(ea, "pid")), getpid());
	json_int_t started = json_integer_value(json_object_get(ea, "started_ms"));
	cr_assert(started > 1600000000000LL && started <= ab_wall_ms());
	cr_assert(json_is_number(json_object_get(ea, "load")));
	cr_assert(json_is_string(json_object_get(ea, "host")));
	json_decref(ea);
	json_decref(eb);

	/* Sorted by role, then id. */
	int err;
	json_t *arr = ab_registry_list(r, &err);
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), "c1");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 1), "id")), "n1");
	json_decref(arr);

	/* The TTL is set, and the load is republished. */
	redisReply *rep = ab_redis_cmd(r, &err, "TTL %s", "ab:svc:coordinator:c1");
	cr_assert(rep->integer >= 1 && rep->integer <= AB_REGISTRY_TTL_S, "ttl %lld", rep->integer);
	freeReplyObject(rep);
	ab_registry_set_load(a, 2.5);
	ab_sleep_ms(1300);
	ea = find_entry(r, "c1", NULL);
	cr_assert_float_eq(json_number_value(json_object_get(ea, "load")), 2.5, 1e-9);
	json_decref(ea);

	double t0 = ab_now_ms_f();
	ab_registry_stop(a);
	cr_assert(ab_now_ms_f() - t0 < 300, "stop took %.0f ms", ab_now_ms_f() - t0);
	size_t count = 0;
	cr_assert_null(find_entry(r, "c1", &count));
	cr_assert_eq(count, 1);
	rep = ab_redis_cmd(r, &err, "SISMEMBER %s %s", AB_KEY_SVC_INDEX, "ab:svc:coordinator:c1");
	cr_assert_eq(rep->integer, 0);
	freeReplyObject(rep);
	ab_registry_stop(b);
	ab_registry_stop(NULL);
	ab_redis_free(r);
}

Test(registry, dead_process_expires)
{
	tu_redis_need(&srv, PW);
	pid_t child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		struct ab_redis *cr = client();
		struct ab_registry *g = NULL;
		if (ab_registry_start(cr, "ai", "doomed", "http://10.0.0.9:8091", &g) != 0)
			_exit(1);
		for (;;)
			pause();
	}
	struct ab_redis *r = client();
	wait_up(r);
	json_t *e = wait_entry(r, "doomed", 4000);
	if (!e)
		tu_kill(child);
	cr_assert_not_null(e, "child never registered");
	json_decref(e);

	tu_kill(child);
	double t0 = ab_now_ms_f();
	while ((e = find_entry(r, "doomed", NULL)) && ab_now_ms_f() - t0 < 6000) {
		json_decref(e);
		ab_sleep_ms(50);
	}
	double gone = ab_now_ms_f() - t0;
	cr_assert_null(e, "entry of a dead process still listed after %.0f ms", gone);
	cr_assert(gone < 4000, "took %.0f ms to expire", gone);
	int err;
	redisReply *rep =
	    ab_redis_cmd(r, &err, "SISMEMBER %s %s", AB_KEY_SVC_INDEX, "ab:svc:ai:doomed");
	cr_assert_eq(rep->integer, 0, "stale key left in the index");
	freeReplyObject(rep);
	ab_redis_free(r);
}

Test(registry, redis_down)
{
	srv.port = tu_free_port();
	struct ab_redis *r = client();
	struct ab_registry *g = NULL;
	cr_assert_eq(ab_registry_start(r, "npu", "x", "http://127.0.0.1:1", &g), 0);
	int err = 0;
	cr_assert_null(ab_registry_list(r, &err));
	cr_assert_eq(err, AB_EUNAVAIL);
	ab_sleep_ms(200);
	double t0 = ab_now_ms_f();
	ab_registry_stop(g);
	cr_assert(ab_now_ms_f() - t0 < 100);
	ab_redis_free(r);
}

/* ---- cluster health ---- */

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = ab_xstrdup(v);
}

/* A config with nothing enabled. Caller frees with ab_config_free. */
static struct ab_config *empty_config(void)
{
	struct ab_config *cfg = ab_config_default();
	cr_assert_not_null(cfg);
	for (int i = 0; i < AB_ROLE__COUNT; i++)
		cfg->services[i].enabled = false;
	return cfg;
}

static void enable(struct ab_config *cfg, enum ab_role role, int port)
{
	struct ab_service_cfg *s = &cfg->services[role];
	s->enabled = true;
	set_str(&s->host, "127.0.0.1");
	s->port = port;
}

static const struct ab_probe *probe_of(const struct ab_probe *p, size_t n, const char *role)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p[i].role, role))
			return &p[i];
	return NULL;
}

Test(registry, overall)
{
	struct ab_probe p[3] = {0};
	cr_assert_str_eq(ab_health_overall(p, 0), "ok");
	ab_strlcpy(p[0].status, "ok", sizeof(p[0].status));
	ab_strlcpy(p[1].status, "degraded", sizeof(p[1].status));
	ab_strlcpy(p[2].status, "ok", sizeof(p[2].status));
	cr_assert_str_eq(ab_health_overall(p, 3), "degraded");
	ab_strlcpy(p[2].status, "down", sizeof(p[2].status));
	cr_assert_str_eq(ab_health_overall(p, 3), "down");
}

Test(registry, health_ok_then_redis_down)
{
	tu_redis_need(&srv, PW);
	struct tu_http_server *http = tu_http_start(TU_HTTP_CANNED);
	struct ab_config *cfg = empty_config();
	enable(cfg, AB_ROLE_COORDINATOR, tu_http_port(http));
	enable(cfg, AB_ROLE_REDIS, srv.port);
	set_str(&cfg->services[AB_ROLE_REDIS].password, PW);
	struct ab_redis *r = client();
	wait_up(r);

	/* A registry entry for the configured coordinator, and another one. */
	char *coord_url = ab_config_service_url(cfg, AB_ROLE_COORDINATOR);
	struct ab_registry *g1 = NULL, *g2 = NULL;
	cr_assert_eq(ab_registry_start(r, "coordinator", "c1", coord_url, &g1), 0);
	cr_assert_eq(ab_registry_start(r, "npu", "n7", "http://localhost:1", &g2), 0);
	json_decref(wait_entry(r, "c1", 3000));
	json_decref(wait_entry(r, "n7", 3000));

	struct ab_probe *p = NULL;
	size_t n = 0;
	cr_assert_eq(ab_health_cluster(cfg, r, 500, &p, &n), 0);
	cr_assert_eq(n, 3);
	/* role order: coordinator, npu, redis */
	cr_assert_str_eq(p[0].role, "coordinator");
	cr_assert_str_eq(p[0].status, "ok", "coordinator: %s", p[0].error);
	cr_assert_str_eq(p[0].source, "both");
	cr_assert_str_eq(p[0].id, "c1");
	cr_assert_str_eq(p[0].url, coord_url);
	cr_assert_str_eq(p[1].role, "npu");
	cr_assert_str_eq(p[1].source, "registry");
	cr_assert_str_eq(p[1].status, "down");
	cr_assert_str_eq(p[1].error, "connection refused");
	cr_assert_str_eq(p[2].role, "redis");
	cr_assert_str_eq(p[2].status, "ok", "redis: %s", p[2].error);
	cr_assert_str_eq(p[2].source, "config");
	char want[64];
	snprintf(want, sizeof(want), "redis://127.0.0.1:%d", srv.port);
	cr_assert_str_eq(p[2].url, want);
	cr_assert_str_eq(ab_health_overall(p, n), "down");

	json_t *j = ab_health_to_json(p, n, 12.5);
	cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "down");
	cr_assert_float_eq(json_number_value(json_object_get(j, "elapsed_ms")), 12.5, 1e-9);
	json_t *s0 = json_array_get(json_object_get(j, "services"), 0);
	cr_assert(json_is_null(json_object_get(s0, "error")));
	cr_assert_str_eq(json_string_value(json_object_get(s0, "id")), "c1");
	cr_assert(json_is_number(json_object_get(s0, "latency_ms")));
	json_t *s1 = json_array_get(json_object_get(j, "services"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(s1, "error")), "connection refused");
	json_decref(j);
	free(p);

	ab_registry_stop(g1);
	ab_registry_stop(g2);

	/* Config alone: ok/ok. */
	cr_assert_eq(ab_health_cluster(cfg, NULL, 500, &p, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(ab_health_overall(p, n), "ok");
	free(p);

	/* Kill Redis: its probe is down and says why; HTTP is unaffected. */
	tu_kill(srv.pid);
	srv.pid = 0;
	double t0 = ab_now_ms_f();
	cr_assert_eq(ab_health_cluster(cfg, r, 500, &p, &n), 0);
	cr_assert(ab_now_ms_f() - t0 < 1000);
	cr_assert_eq(n, 2);
	const struct ab_probe *rp = probe_of(p, n, "redis");
	cr_assert_str_eq(rp->status, "down");
	cr_assert_str_eq(rp->error, "connect: Connection refused");
	cr_assert_str_eq(probe_of(p, n, "coordinator")->status, "ok");
	cr_assert_str_eq(ab_health_overall(p, n), "down");
	free(p);

	free(coord_url);
	ab_redis_free(r);
	ab_config_free(cfg);
	tu_http_stop(http);
}

Test(registry, health_blackholes_are_concurrent)
{
	struct tu_http_server *http = tu_http_start(TU_HTTP_CANNED);
	struct tu_http_server *hole = tu_http_start(TU_HTTP_BLACKHOLE);
	int rport;
	/* A Redis that accepts but never answers: listen without accepting. */
	int rfd = tu_listen_silent(&rport);

	struct ab_config *cfg = empty_config();
	enable(cfg, AB_ROLE_COORDINATOR, tu_http_port(http));
	enable(cfg, AB_ROLE_NPU, tu_http_port(hole));
	enable(cfg, AB_ROLE_AI, tu_http_port(hole));
	enable(cfg, AB_ROLE_BROWSER, tu_http_port(hole));
	enable(cfg, AB_ROLE_LLM, tu_http_port(hole));
	enable(cfg, AB_ROLE_DESKTOP, tu_free_port());
	enable(cfg, AB_ROLE_REDIS, rport);
	set_str(&cfg->services[AB_ROLE_REDIS].password, "whatever");

	enum { T = 500 };
	struct ab_probe *p = NULL;
	size_t n = 0;
	double t0 = ab_now_ms_f();
	cr_assert_eq(ab_health_cluster(cfg, NULL, T, &p, &n), 0);
	double total = ab_now_ms_f() - t0;
	cr_assert(total < 2 * T, "health took %.0f ms with timeout %d", total, T);
	cr_assert_eq(n, 7);
	int prev = -1;
	for (size_t i = 0; i < n; i++) {
		int role = ab_role_parse(p[i].role);
		cr_assert(role > prev, "order at %zu (%s)", i, p[i].role);
		prev = role;
		if (role == AB_ROLE_COORDINATOR) {
			cr_assert_str_eq(p[i].status, "ok");
		} else if (role == AB_ROLE_DESKTOP) {
			cr_assert_str_eq(p[i].status, "down");
			cr_assert_str_eq(p[i].error, "connection refused");
		} else {
			cr_assert_str_eq(p[i].status, "down", "%s", p[i].role);
			cr_assert_str_eq(p[i].error, "timeout after 500 ms", "%s: %s", p[i].role,
			                 p[i].error);
			cr_assert(p[i].latency_ms >= T - 50 && p[i].latency_ms < T + 400,
			          "%s latency %.0f", p[i].role, p[i].latency_ms);
		}
	}
	free(p);
	ab_config_free(cfg);
	close(rfd);
	tu_http_stop(http);
	tu_http_stop(hole);
}
