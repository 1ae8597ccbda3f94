/*
 * health.c - cluster health (the probing half of registry.h).
 *
 * ab_health_cluster() first builds a target list: every service the
 * config enables (source "config"), merged with the live registry
 * entries when a Redis client is given and up; a registry entry whose url
 * equals a configured one marks that target "both" and lends it its id,
 * any other becomes a target of its own (source "registry").
 *
 * Then it probes every target at once, each within timeout_ms: the HTTP
 * targets as one libcurl multi batch (GET <url>/health) on the calling
 * thread, and each Redis target by ab_redis_probe() on a thread of its
 * own started before the batch and joined after it. So the whole check
 * takes about one timeout however many services are down. Each probe
 * thread writes only its own target; the caller reads them after join.
 */
#include "registry.h"

#include "httpc.h"
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct target {
	struct ab_probe p;
	int role; /* enum ab_role, or AB_ROLE__COUNT if unknown */
	bool is_redis;
	char host[200];
	int port;
	const char *password; /* borrowed from cfg */
	int timeout_ms;
	pthread_t thread;
	bool threaded;
	bool want_registry;   /* read the registry on this probe's connection */
	redisReply *registry; /* its reply, or NULL */
};

static void set_down(struct ab_probe *p, const char *fmt, ...) AB_PRINTF(2, 3);
static void set_down(struct ab_probe *p, const char *fmt, ...)
{
	va_list ap;
	ab_strlcpy(p->status, "down", sizeof(p->status));
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
}

/* Splits "redis://host:port" (or "host:port") into host and port. */
static void parse_hostport(const char *url, char *host, size_t hostlen, int *port)
{
	const char *s = strstr(url, "://");
	s = s ? s + 3 : url;
	const char *colon = strrchr(s, ':');
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	if (hl >= hostlen)
		hl = hostlen - 1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	long long v = 6379;
	if (colon && ab_parse_int(colon + 1, 1, 65535, &v) != 0)
		v = 6379;
	*port = (int)v;
	if (!host[0])
		ab_strlcpy(host, "127.0.0.1", hostlen);
}

static void *redis_probe_main(void *arg)
{
	struct target *t = arg;
	double lat = 0;
	char err[200] = "";
	double t0 = ab_now_ms_f();
	const char *argv[4];
	ab_registry_list_cmd(argv);
	int rc = ab_redis_probe_cmd(t->host, t->port, t->password, t->timeout_ms, &lat, err,
				    sizeof(err), t->want_registry ? 4 : 0, argv, &t->registry);
	if (rc == 0) {
		ab_strlcpy(t->p.status, "ok", sizeof(t->p.status));
		t->p.latency_ms = lat;
		t->p.error[0] = '\0';
	} else {
		t->p.latency_ms = ab_now_ms_f() - t0;
		set_down(&t->p, "%s", err[0] ? err : ab_strerror(rc));
	}
	return NULL;
}

static void judge_http(struct target *t, const struct ab_httpc_req *q)
{
	struct ab_probe *p = &t->p;

	p->latency_ms = q->elapsed_ms;
	if (q->err) {
		set_down(p, "%s", q->errstr[0] ? q->errstr : ab_strerror(q->err));
		return;
	}
	if (q->status != 200) {
		set_down(p, "http %d", q->status);
		return;
	}
	json_t *o = json_loadb(q->resp ? q->resp : "", q->resp_len, 0, NULL);
	const char *st = json_string_value(json_object_get(o, "status"));
	if (!st) {
		set_down(p, "%s", "unparsable health response");
	} else if (!strcmp(st, "ok")) {
		ab_strlcpy(p->status, "ok", sizeof(p->status));
		p->error[0] = '\0';
	} else if (!strcmp(st, "degraded")) {
		ab_strlcpy(p->status, "degraded", sizeof(p->status));
		/* Say what is degraded when the service tells us. */
		json_t *checks = json_object_get(o, "checks");
		const char *k;
		json_t *v;
		p->error[0] = '\0';
		json_object_foreach(checks, k, v)
		{
			const char *cs = json_string_value(json_object_get(v, "status"));
			if (cs && strcmp(cs, "ok") != 0) {
				snprintf(p->error, sizeof(p->error), "%s %s", k, cs);
				break;
			}
		}
		if (!p->error[0])
			ab_strlcpy(p->error, "degraded", sizeof(p->error));
	} else {
		set_down(p, "status %s", st);
	}
	json_decref(o);
}

static int cmp_target(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	if (x->role != y->role)
		return x->role < y->role ? -1 : 1;
	if (x->role == AB_ROLE__COUNT) {
		int c = strcmp(x->p.role, y->p.role);
		if (c)
			return c;
	}
	int c = strcmp(x->p.id, y->p.id);
	return c ? c : strcmp(x->p.url, y->p.url);
}

static struct target *add_target(struct target **ts, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*ts = ab_xrealloc(*ts, *cap * sizeof(**ts));
	}
	struct target *t = &(*ts)[(*n)++];
	memset(t, 0, sizeof(*t));
	return t;
}

/* Adds the registry's entries (arr, consumed) to the target list. */
static void merge_registry(json_t *arr, const struct ab_config *cfg, struct target **ts,
                           size_t *n, size_t *cap)
{
	size_t i;
	json_t *e;

	if (!arr)
		return;
	json_array_foreach(arr, i, e)
	{
		const char *role = json_string_value(json_object_get(e, "role"));
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *url = json_string_value(json_object_get(e, "url"));
		if (!role || !url || !*url)
			continue;
		struct target *match = NULL;
		for (size_t k = 0; k < *n; k++) {
			struct target *t = &(*ts)[k];
			if (!strcmp(t->p.source, "config") && !strcmp(t->p.url, url)) {
				match = t;
				break;
			}
		}
		if (match) {
			ab_strlcpy(match->p.source, "both", sizeof(match->p.source));
			ab_strlcpy(match->p.id, id ? id : "", sizeof(match->p.id));
			continue;
		}
		struct target *t = add_target(ts, n, cap);
		int rl = ab_role_parse(role);
		t->role = rl >= 0 ? rl : AB_ROLE__COUNT;
		ab_strlcpy(t->p.role, role, sizeof(t->p.role));
		ab_strlcpy(t->p.id, id ? id : "", sizeof(t->p.id));
		ab_strlcpy(t->p.url, url, sizeof(t->p.url));
		ab_strlcpy(t->p.source, "registry", sizeof(t->p.source));
		if (t->role == AB_ROLE_REDIS || !strncmp(url, "redis://", 8)) {
			t->is_redis = true;
			parse_hostport(url, t->host, sizeof(t->host), &t->port);
			t->password = cfg->services[AB_ROLE_REDIS].password;
		}
	}
	json_decref(arr);
}

/* Probes targets [from, to): Redis ones on threads, HTTP ones in one
 * curl-multi batch beside them; all within timeout_ms. */
static void probe_round(struct target *ts, size_t from, size_t to, int timeout_ms)
{
	size_t cnt = to - from, nreq = 0;
	struct ab_httpc_req *reqs = ab_xcalloc(cnt ? cnt : 1, sizeof(*reqs));
	size_t *req_of = ab_xcalloc(cnt ? cnt : 1, sizeof(*req_of));
	char **urls = ab_xcalloc(cnt ? cnt : 1, sizeof(*urls));
	static const char *const hdrs[] = {"Accept: application/json", NULL};
	for (size_t i = from; i < to; i++) {
		struct target *t = &ts[i];
		t->timeout_ms = timeout_ms;
		if (t->is_redis) {
			t->threaded = pthread_create(&t->thread, NULL, redis_probe_main, t) == 0;
			continue;
		}
		size_t ul = strlen(t->p.url);
		while (ul > 0 && t->p.url[ul - 1] == '/')
			ul--;
		urls[nreq] = ab_xasprintf("%.*s/health", (int)ul, t->p.url);
		struct ab_httpc_req *q = &reqs[nreq];
		q->url = urls[nreq];
		q->timeout_ms = timeout_ms;
		q->connect_timeout_ms = timeout_ms;
		q->max_response = 64 * 1024;
		q->headers = hdrs;
		req_of[nreq++] = i;
	}
	int hrc = ab_httpc_run(reqs, nreq);
	for (size_t k = 0; k < nreq; k++) {
		struct target *t = &ts[req_of[k]];
		if (hrc != 0)
			set_down(&t->p, "probe failed: %s", ab_strerror(hrc));
		else
			judge_http(t, &reqs[k]);
		ab_httpc_req_clear(&reqs[k]);
		free(urls[k]);
	}
	for (size_t i = from; i < to; i++) {
		struct target *t = &ts[i];
		if (!t->is_redis)
			continue;
		if (t->threaded)
			pthread_join(t->thread, NULL);
		else
			redis_probe_main(t); /* could not start a thread: probe here */
		t->threaded = false;
	}
	free(urls);
	free(reqs);
	free(req_of);
}

int ab_health_cluster(const struct ab_config *cfg, struct ab_redis *r, int timeout_ms,
                      struct ab_probe **out, size_t *nout)
{
	struct target *ts = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!cfg || !out || !nout)
		return AB_EINVAL;
	*out = NULL;
	*nout = 0;
	if (timeout_ms <= 0)
		timeout_ms = 500;

	for (int role = 0; role < AB_ROLE__COUNT; role++) {
		const struct ab_service_cfg *sc = &cfg->services[role];
		if (!sc->enabled)
			continue;
		struct target *t = add_target(&ts, &n, &cap);
		t->role = role;
		ab_strlcpy(t->p.role, ab_role_name((enum ab_role)role), sizeof(t->p.role));
		ab_strlcpy(t->p.source, "config", sizeof(t->p.source));
		if (role == AB_ROLE_REDIS) {
			t->is_redis = true;
			ab_strlcpy(t->host, sc->host && *sc->host ? sc->host : "127.0.0.1",
			           sizeof(t->host));
			t->port = sc->port > 0 ? sc->port : 6379;
			t->password = sc->password;
			snprintf(t->p.url, sizeof(t->p.url), "redis://%s:%d", t->host, t->port);
		} else {
			char *url = ab_config_service_url(cfg, (enum ab_role)role);
			ab_strlcpy(t->p.url, url ? url : "", sizeof(t->p.url));
			free(url);
		}
	}
	/* The registry is read on the configured Redis probe's own connection,
	 * within the probe's time: health never waits longer than one probe
	 * timeout for a Redis that went away. Only without a configured Redis
	 * is the caller's client asked. */
	bool asked = false;
	for (size_t i = 0; i < n && !asked; i++)
		if (ts[i].is_redis)
			asked = ts[i].want_registry = true;
	if (!asked && r && ab_redis_is_up(r)) {
		int err = 0;
		merge_registry(ab_registry_list(r, &err), cfg, &ts, &n, &cap);
	}
	size_t n0 = n;
	probe_round(ts, 0, n, timeout_ms);
	for (size_t i = 0; i < n0; i++) {
		if (!ts[i].registry)
			continue;
		int err = 0;
		merge_registry(ab_registry_list_reply(ts[i].registry, &err), cfg, &ts, &n, &cap);
		freeReplyObject(ts[i].registry);
		ts[i].registry = NULL;
	}
	/* instances only the registry knows (a second coordinator, ...) */
	if (n > n0)
		probe_round(ts, n0, n, timeout_ms);

	qsort(ts, n, sizeof(*ts), cmp_target);
	struct ab_probe *res = ab_xcalloc(n ? n : 1, sizeof(*res));
	for (size_t i = 0; i < n; i++)
		res[i] = ts[i].p;
	free(ts);
	*out = res; /* caller frees */
	*nout = n;
	return rc;
}

const char *ab_health_overall(const struct ab_probe *p, size_t n)
{
	bool degraded = false;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(p[i].status, "down"))
			return "down";
		if (strcmp(p[i].status, "ok") != 0)
			degraded = true;
	}
	return degraded ? "degraded" : "ok";
}

json_t *ab_health_to_json(const struct ab_probe *p, size_t n, double elapsed_ms)
{
	json_t *svcs = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct ab_probe *x = &p[i];
		bool ok = !strcmp(x->status, "ok");
		json_t *o = json_object();
		json_object_set_new(o, "role", json_string(x->role));
		json_object_set_new(o, "id", x->id[0] ? json_string(x->id) : json_null());
		json_object_set_new(o, "url", json_string(x->url));
		json_object_set_new(o, "source", json_string(x->source));
		json_object_set_new(o, "status", json_string(x->status));
		json_object_set_new(o, "latency_ms", json_real(x->latency_ms));
		json_object_set_new(o, "error",
		                    ok || !x->error[0] ? json_null() : json_string(x->error));
		json_array_append_new(svcs, o);
	}
	json_t *root = json_object();
	json_object_set_new(root, "status", json_string(ab_health_overall(p, n)));
	json_object_set_new(root, "elapsed_ms", json_real(elapsed_ms));
	json_object_set_new(root, "services", svcs);
	return root;
}
