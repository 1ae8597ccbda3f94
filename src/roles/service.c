/*
 * service.c - running one role: the scaffolding of service.h.
 *
 * Start-up never waits for Redis: the Redis client connects in its own
 * thread, the HTTP server starts at once, and /health says "degraded"
 * until Redis answers. That keeps start-up in milliseconds and lets a
 * service come up before (or without) its data layer.
 *
 * Signals: SIGINT and SIGTERM are blocked before any thread is created, so
 * every thread inherits the mask and only the main thread, in sigwait(),
 * ever sees them. Shutdown then runs in the reverse order of start-up:
 * registry entry deleted, HTTP server stopped (closing streams), role
 * torn down, Redis client freed.
 *
 * Logs: the role's lines also go to log.file (when set; SIGHUP, taken by
 * the same sigwait(), reopens it for logrotate) and, through the sink of
 * logsink.h, to the ab:log stream. The sink starts right after the Redis
 * client, queues what is logged before Redis answers, and is stopped
 * after the role's teardown with a short flush so the last lines land.
 */
#include "service.h"

#include "keys.h"
#include "log.h"
#include "logsink.h"
#include "sha256.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

static const struct ab_route common_routes[] = {
	{"GET", "/health", ab_service_health_handler, AB_ACCESS_PUBLIC, 0,
	 "health of this service: status, uptime and its real checks"},
};

void ab_service_health(struct ab_service *svc, struct ab_buf *out, int *http_status)
{
	struct ab_redis_status st;
	int worst = 0;
	struct ab_buf checks = {0};
	ab_redis_status(svc->redis, &st);
	if (st.state == AB_REDIS_UP) {
		ab_buf_printf(&checks,
			      "\"redis\":{\"status\":\"ok\",\"latency_ms\":%.3f,\"checked_ms_ago\":%lld}",
			      st.ping_ms, (long long)(ab_now_ms() - st.last_ok_ms));
	} else {
		worst = 1;
		ab_buf_printf(&checks, "\"redis\":{\"status\":\"down\",\"state\":\"%s\",\"error\":",
			      ab_redis_state_name(st.state));
		ab_buf_json_str(&checks, st.last_error[0] ? st.last_error : "not connected yet");
		ab_buf_putc(&checks, '}');
	}
	if (svc->def->health) {
		int w = svc->def->health(svc, &checks);
		if (w > worst)
			worst = w;
	}
	static const char *names[] = {"ok", "degraded", "down"};
	ab_buf_printf(out,
		      "{\"status\":\"%s\",\"role\":\"%s\",\"id\":", names[worst],
		      ab_role_name(svc->def->role));
	ab_buf_json_str(out, svc->id);
	ab_buf_printf(out, ",\"version\":\"%s\",\"pid\":%d,\"uptime_s\":%.3f,\"checks\":{%s}}",
		      AB_VERSION, (int)getpid(), (double)(ab_now_ms() - svc->started_ms) / 1000.0,
		      checks.data ? checks.data : "");
	ab_buf_free(&checks);
	*http_status = worst == 2 ? 503 : 200;
}

static void reply_redis_error(struct ab_http_req *req, int err, const redisReply *reply);

void ab_service_health_handler(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	struct ab_buf b = {0};
	int status;
	ab_service_health(svc, &b, &status);
	ab_http_reply_json(req, status, b.data, b.len);
	ab_buf_free(&b);
}

void ab_service_reply_redis_error(struct ab_http_req *req, int err, redisReply *reply)
{
	reply_redis_error(req, err, reply);
	if (reply)
		freeReplyObject(reply);
}

static void reply_redis_error(struct ab_http_req *req, int err, const redisReply *reply)
{
	if (err == AB_EUNAVAIL || err == AB_ETIMEOUT) {
		ab_http_reply_error(req, 503, "redis_unavailable",
				    "the data layer (redis) is unavailable: %s; retry shortly",
				    ab_strerror(err));
		return;
	}
	if (reply && reply->type == REDIS_REPLY_ERROR) {
		ab_http_reply_error(req, 500, "redis_error", "redis error: %.*s",
				    (int)(reply->len > 200 ? 200 : reply->len), reply->str);
		return;
	}
	ab_http_reply_error(req, 500, "redis_error", "redis call failed: %s", ab_strerror(err));
}

/* Tokens are printable ASCII without spaces, at most 256 bytes. */
static bool token_plausible(const char *t)
{
	size_t n = 0;
	for (; t[n]; n++)
		if (t[n] <= 0x20 || t[n] >= 0x7f || n > 256)
			return false;
	return n >= 8;
}

/* Bearer-token check: the admin and cluster tokens from the state
 * directory, then tokens minted through /api/auth/tokens (stored in Redis
 * as the SHA-256 of the token, never the token itself). */
static int auth_token(void *ud, const char *token, enum ab_access *level)
{
	struct ab_service *svc = ud;
	if (!token_plausible(token))
		return AB_EAUTH;
	if (svc->secrets.admin_token[0] && ab_secure_streq(token, svc->secrets.admin_token)) {
		*level = AB_ACCESS_ADMIN;
		return 0;
	}
	if (svc->secrets.cluster_token[0] &&
	    ab_secure_streq(token, svc->secrets.cluster_token)) {
		*level = AB_ACCESS_ADMIN;
		return 0;
	}
	char hex[65];
	ab_sha256_hex(token, strlen(token), hex);
	int err = 0;
	redisReply *r = ab_redis_cmd(svc->redis, &err, "GET " AB_KEY_TOKEN_PREFIX "%s", hex);
	if (!r)
		return (err == AB_EUNAVAIL || err == AB_ETIMEOUT) ? AB_EUNAVAIL : AB_EAUTH;
	int rc = AB_EAUTH;
	if (r->type == REDIS_REPLY_STRING) {
		json_t *j = json_loadb(r->str, r->len, 0, NULL);
		const char *role = json_string_value(json_object_get(j, "role"));
		if (role && strcmp(role, "admin") == 0) {
			*level = AB_ACCESS_ADMIN;
			rc = 0;
		} else if (role && strcmp(role, "user") == 0) {
			*level = AB_ACCESS_USER;
			rc = 0;
		} else if (role && strcmp(role, "viewer") == 0) {
			*level = AB_ACCESS_VIEWER;
			rc = 0;
		}
		json_decref(j);
	}
	freeReplyObject(r);
	return rc;
}

/* Redis client figures for /metrics. */
static void redis_metrics(void *ud, struct ab_buf *out)
{
	struct ab_service *svc = ud;
	struct ab_redis_status st;
	ab_redis_status(svc->redis, &st);
	ab_buf_printf(out,
		      "# HELP autobot_redis_up 1 when the data layer answers, 0 when the breaker is open\n"
		      "# TYPE autobot_redis_up gauge\n"
		      "autobot_redis_up %d\n"
		      "# HELP autobot_redis_ping_ms latency of the last successful ping\n"
		      "# TYPE autobot_redis_ping_ms gauge\n"
		      "autobot_redis_ping_ms %.3f\n"
		      "# TYPE autobot_redis_commands_total counter\n"
		      "autobot_redis_commands_total %llu\n"
		      "# TYPE autobot_redis_failures_total counter\n"
		      "autobot_redis_failures_total %llu\n"
		      "# TYPE autobot_redis_reconnects_total counter\n"
		      "autobot_redis_reconnects_total %llu\n"
		      "# TYPE autobot_uptime_seconds gauge\n"
		      "autobot_uptime_seconds %.3f\n",
		      st.state == AB_REDIS_UP, st.ping_ms, (unsigned long long)st.commands,
		      (unsigned long long)st.failures, (unsigned long long)st.reconnects,
		      (double)(ab_now_ms() - svc->started_ms) / 1000.0);
	ab_logsink_metrics(out);
}

/*
 * Tells systemd (Type=notify) about our state: one datagram to the unix
 * socket named by $NOTIFY_SOCKET ("@" = abstract namespace). That is the
 * whole sd_notify protocol, so no libsystemd is needed.
 */
static void notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	size_t len = strlen(path);
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		ab_log(AB_LOG_DEBUG, "sd_notify: %s", strerror(errno));
	close(fd);
}

int ab_service_run(struct ab_config *cfg, const struct ab_role_def *def,
		   const struct ab_serve_opts *opts)
{
	struct ab_service svc;
	struct ab_logsink *logsink = NULL;
	char err[512];
	int status = 1;
	memset(&svc, 0, sizeof(svc));
	svc.cfg = cfg;
	svc.def = def;
	svc.started_ms = ab_now_ms();
	svc.started_wall_ms = ab_wall_ms();

	if (cfg->log_file && cfg->log_file[0]) {
		int le = ab_log_open_file(cfg->log_file);
		if (le < 0)
			ab_log(AB_LOG_WARN, "cannot open log file %s: %s (logging to stderr only)",
			       cfg->log_file, ab_strerror(le));
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	const struct ab_service_cfg *me = &cfg->services[def->role];
	const char *bind = (opts && opts->bind_override) ? opts->bind_override : me->host;
	int port = (opts && opts->port_override > 0) ? opts->port_override : me->port;

	if (ab_secrets_load(cfg, AB_SECRETS_CREATE_TOKENS, &svc.secrets, err, sizeof(err)) < 0) {
		ab_log(AB_LOG_ERROR, "%s", err);
		goto out;
	}
	ab_secrets_apply(cfg, &svc.secrets);

	const struct ab_service_cfg *rc = &cfg->services[AB_ROLE_REDIS];
	struct ab_redis_opts ro = {
		.host = rc->host,
		.port = rc->port,
		.password = svc.secrets.redis_password,
		.connect_timeout_ms = cfg->redis_connect_ms,
		.command_timeout_ms = cfg->redis_command_ms,
	};
	int e = ab_redis_new(&ro, &svc.redis);
	if (e < 0) {
		ab_log(AB_LOG_ERROR, "cannot create redis client: %s", ab_strerror(e));
		goto out;
	}
	if (cfg->log_stream_max > 0) {
		struct ab_logsink_opts lo = {
			.redis = svc.redis, .host = me->host, .stream_max = cfg->log_stream_max};
		e = ab_logsink_start(&lo, &logsink);
		if (e < 0)
			ab_log(AB_LOG_WARN, "log stream not started: %s", ab_strerror(e));
	}

	svc.n_routes = AB_ARRAY_LEN(common_routes) + def->n_routes;
	svc.routes = ab_xcalloc(svc.n_routes, sizeof(struct ab_route));
	memcpy(svc.routes, common_routes, sizeof(common_routes));
	if (def->n_routes)
		memcpy(svc.routes + AB_ARRAY_LEN(common_routes), def->routes,
		       def->n_routes * sizeof(struct ab_route));

	if (def->init && def->init(&svc, err, sizeof(err)) < 0) {
		ab_log(AB_LOG_ERROR, "%s init failed: %s", ab_role_name(def->role), err);
		goto out;
	}

	char title[64];
	snprintf(title, sizeof(title), "AutoBot %s API", ab_role_name(def->role));
	struct ab_http_opts ho = {
		.bind_host = bind,
		.port = port,
		.routes = svc.routes,
		.n_routes = svc.n_routes,
		.allow = cfg->allow,
		.n_allow = cfg->n_allow,
		.cors_origins = cfg->cors_origins,
		.n_cors = cfg->n_cors,
		.max_body_bytes = cfg->max_body_bytes,
		.max_upload_bytes = ((long long)cfg->kb.max_upload_mb << 20) + (1 << 20),
		.max_header_bytes = cfg->max_header_bytes,
		.threads = cfg->http_threads,
		.request_timeout_ms = cfg->request_timeout_ms,
		.auth = auth_token,
		.metrics_extra = redis_metrics,
		.ud = &svc,
		.title = title,
		.version = AB_VERSION,
	};
	e = ab_http_server_start(&ho, &svc.http);
	if (e < 0) {
		ab_log(AB_LOG_ERROR, "cannot listen on %s:%d: %s", bind, port, ab_strerror(e));
		status = 3;
		goto out;
	}
	port = ab_http_server_port(svc.http);
	const char *adv = me->host;
	bool v6 = strchr(adv, ':') != NULL;
	snprintf(svc.url, sizeof(svc.url), v6 ? "http://[%s]:%d" : "http://%s:%d", adv, port);
	snprintf(svc.id, sizeof(svc.id), "%s-%d", adv, port);

	e = ab_registry_start(svc.redis, ab_role_name(def->role), svc.id, svc.url, &svc.reg);
	if (e < 0)
		ab_log(AB_LOG_WARN, "registry heartbeat not started: %s", ab_strerror(e));

	ab_log(AB_LOG_INFO, "%s listening on %s (pid %d, started in %lld ms)",
	       ab_role_name(def->role), svc.url, (int)getpid(),
	       (long long)(ab_now_ms() - svc.started_ms));
	notify("READY=1");

	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		e = ab_log_reopen();
		if (e < 0)
			ab_log(AB_LOG_WARN, "cannot reopen log file %s: %s", cfg->log_file,
			       ab_strerror(e));
		else
			ab_log(AB_LOG_INFO, "log file reopened on SIGHUP");
	}
	ab_log(AB_LOG_INFO, "stopping on signal %d", sig);
	notify("STOPPING=1");
	status = 0;
out:
	ab_registry_stop(svc.reg);
	ab_http_server_free(svc.http);
	if (def->fini)
		def->fini(&svc);
	ab_logsink_stop(logsink, 1000);
	ab_redis_free(svc.redis);
	free(svc.routes);
	ab_log_open_file(NULL);
	return status;
}
