/*
 * coordinator.c - the coordinator role: AutoBot's public API (/api/...).
 *
 * This file reads as a table of contents: the route table at the bottom
 * is the API. Handlers here only compose core pieces: health and the
 * registry (registry.h), the redacted config (config.h), and API tokens
 * stored in Redis (keys.h).
 *
 * The cluster-health stream: every client of /api/health/cluster/stream is
 * a subscriber of one hub thread, which probes the cluster every
 * HUB_INTERVAL_MS while anyone listens and writes the same server-sent
 * event to every subscriber. Waiting clients cost a queue entry, not a
 * thread; the hub sleeps on a condition variable when nobody listens.
 */
#include "kb_api.h"
#include "logs_api.h"
#include "sessions.h"
#include "service.h"

#include "keys.h"
#include "log.h"
#include "sha256.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_INTERVAL_MS 2000
#define HUB_MAX_SUBS 4096

struct coord {
	struct ab_service *svc;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t hub;
	bool hub_started;
	bool stop;
	struct ab_http_stream **subs;
	size_t n_subs;
	bool kick;  /* a new subscriber waits for its first event */
	struct ab_chat *chat;
	struct ab_kb_api *kb;
};

struct ab_kb_api *ab_coord_kb(struct ab_service *svc)
{
	return ((struct coord *)svc->state)->kb;
}

struct ab_chat *ab_coord_chat(struct ab_service *svc)
{
	return ((struct coord *)svc->state)->chat;
}

static struct ab_service *svc_of(struct ab_http_req *req)
{
	return req->ud;
}

static struct coord *coord_of(struct ab_http_req *req)
{
	return svc_of(req)->state;
}

static void h_health(struct ab_http_req *req)
{
	ab_service_health_handler(req);
}

static void h_cluster(struct ab_http_req *req)
{
	struct ab_service *svc = svc_of(req);
	struct ab_probe *p = NULL;
	size_t n = 0;
	double t0 = ab_now_ms_f();
	int rc = ab_health_cluster(svc->cfg, svc->redis, svc->cfg->probe_ms, &p, &n);
	if (rc < 0) {
		ab_http_reply_error(req, 500, "internal", "cluster probe failed: %s",
				    ab_strerror(rc));
		return;
	}
	json_t *j = ab_health_to_json(p, n, ab_now_ms_f() - t0);
	ab_http_reply_jansson(req, 200, j);
	json_decref(j);
	free(p);
}

static void *hub_main(void *arg)
{
	struct coord *c = arg;
	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		while (!c->stop && c->n_subs == 0)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop)
			break;
		c->kick = false;
		pthread_mutex_unlock(&c->lock);

		struct ab_probe *p = NULL;
		size_t n = 0;
		double t0 = ab_now_ms_f();
		char *text = NULL;
		if (ab_health_cluster(c->svc->cfg, c->svc->redis, c->svc->cfg->probe_ms, &p, &n) == 0) {
			json_t *j = ab_health_to_json(p, n, ab_now_ms_f() - t0);
			text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
			json_decref(j);
			free(p);
		}

		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < c->n_subs;) {
			int rc = text ? ab_http_stream_printf(c->subs[i], "event: health\ndata: %s\n\n", text)
				      : 0;
			if (rc < 0 || ab_http_stream_closed(c->subs[i])) {
				ab_http_stream_close(c->subs[i]);
				c->subs[i] = c->subs[--c->n_subs];
				continue;
			}
			i++;
		}
		free(text);
		if (c->stop || c->kick)
			continue;
		struct timespec ts = ab_deadline(CLOCK_REALTIME, HUB_INTERVAL_MS);
		while (!c->stop && !c->kick &&
		       pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void h_cluster_stream(struct ab_http_req *req)
{
	struct coord *c = coord_of(req);
	pthread_mutex_lock(&c->lock);
	if (c->n_subs >= HUB_MAX_SUBS) {
		pthread_mutex_unlock(&c->lock);
		ab_http_add_header(req, "Retry-After", "5");
		ab_http_reply_error(req, 429, "too_many_streams",
				    "too many open health streams (%d); retry later", HUB_MAX_SUBS);
		return;
	}
	struct ab_http_stream *s = ab_http_reply_stream(req, 200, "text/event-stream");
	if (!s) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	ab_http_stream_printf(s, ": cluster health every %d ms\n\n", HUB_INTERVAL_MS);
	if (!c->subs)
		c->subs = ab_xcalloc(HUB_MAX_SUBS, sizeof(*c->subs));
	c->subs[c->n_subs++] = s;
	c->kick = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void h_services(struct ab_http_req *req)
{
	struct ab_service *svc = svc_of(req);
	int err = 0;
	json_t *list = ab_registry_list(svc->redis, &err);
	if (!list) {
		ab_service_reply_redis_error(req, err, NULL);
		return;
	}
	json_t *j = json_pack("{s:o}", "services", list);
	ab_http_reply_jansson(req, 200, j);
	json_decref(j);
}

static void h_version(struct ab_http_req *req)
{
	struct ab_service *svc = svc_of(req);
	struct ab_buf b = {0};
	ab_buf_printf(&b, "{\"name\":\"autobot\",\"version\":\"%s\",\"role\":\"%s\",\"api\":\"v1\"}",
		      AB_VERSION, ab_role_name(svc->def->role));
	ab_http_reply_json(req, 200, b.data, b.len);
	ab_buf_free(&b);
}

static void h_config(struct ab_http_req *req)
{
	json_t *j = ab_config_to_json(svc_of(req)->cfg, true);
	ab_http_reply_jansson(req, 200, j);
	json_decref(j);
}

static void h_whoami(struct ab_http_req *req)
{
	struct ab_buf b = {0};
	ab_buf_printf(&b, "{\"access\":\"%s\"}", ab_access_name(req->level));
	ab_http_reply_json(req, 200, b.data, b.len);
	ab_buf_free(&b);
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

/* POST /api/auth/tokens {"name":..,"role":"viewer|user|admin"}: mints a
 * token, stores its SHA-256, and shows the token once in the answer. */
static void h_token_create(struct ab_http_req *req)
{
	struct ab_service *svc = svc_of(req);
	const char *name = json_string_value(json_object_get(req->json, "name"));
	const char *role = json_string_value(json_object_get(req->json, "role"));
	if (!json_is_object(req->json) || !name || !name_ok(name)) {
		ab_http_reply_error(req, 400, "bad_request",
				    "\"name\" must be 1-64 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if (!role)
		role = "viewer";
	if (strcmp(role, "viewer") && strcmp(role, "user") && strcmp(role, "admin")) {
		ab_http_reply_error(req, 400, "bad_request",
				    "\"role\" must be one of viewer, user, admin");
		return;
	}
	char token[80], hex[65];
	memcpy(token, "abt_", 4);
	if (ab_random_hex(token + 4, 24) < 0) {
		ab_http_reply_error(req, 500, "internal", "no randomness available");
		return;
	}
	ab_sha256_hex(token, strlen(token), hex);
	int err = 0;
	redisReply *r = ab_redis_cmd(svc->redis, &err, "HSETNX " AB_KEY_TOKEN_NAMES " %s %s",
				     name, hex);
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		ab_service_reply_redis_error(req, err, r);
		return;
	}
	long long created = r->integer;
	freeReplyObject(r);
	if (!created) {
		ab_http_reply_error(req, 409, "conflict", "a token named \"%s\" exists", name);
		return;
	}
	json_t *rec = json_pack("{s:s,s:s,s:I}", "name", name, "role", role, "created_ms",
				(json_int_t)ab_wall_ms());
	char *text = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	r = ab_redis_cmd(svc->redis, &err, "SET " AB_KEY_TOKEN_PREFIX "%s %s", hex, text);
	free(text);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		ab_service_reply_redis_error(req, err, r);
		redisReply *u = ab_redis_cmd(svc->redis, &err, "HDEL " AB_KEY_TOKEN_NAMES " %s", name);
		if (u)
			freeReplyObject(u);
		return;
	}
	freeReplyObject(r);
	ab_log(AB_LOG_INFO, "token %s created with role %s", name, role);
	json_t *j = json_pack("{s:s,s:s,s:s}", "name", name, "role", role, "token", token);
	ab_http_reply_jansson(req, 201, j);
	json_decref(j);
}

static void h_token_list(struct ab_http_req *req)
{
	struct ab_service *svc = svc_of(req);
	int err = 0;
	redisReply *r = ab_redis_cmd(svc->redis, &err, "HGETALL " AB_KEY_TOKEN_NAMES);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		ab_service_reply_redis_error(req, err, r);
		return;
	}
	json_t *list = json_array();
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		int e2 = 0;
		redisReply *v = ab_redis_cmd(svc->redis, &e2, "GET " AB_KEY_TOKEN_PREFIX "%s",
					     r->element[i + 1]->str);
		json_t *rec = NULL;
		if (v && v->type == REDIS_REPLY_STRING)
			rec = json_loadb(v->str, v->len, 0, NULL);
		if (v)
			freeReplyObject(v);
		if (!rec)
			rec = json_pack("{s:s}", "name", r->element[i]->str);
		json_array_append_new(list, rec);
	}
	freeReplyObject(r);
	json_t *j = json_pack("{s:o}", "tokens", list);
	ab_http_reply_jansson(req, 200, j);
	json_decref(j);
}

static void h_token_delete(struct ab_http_req *req)
{
	struct ab_service *svc = svc_of(req);
	const char *name = ab_http_param(req, "name");
	int err = 0;
	redisReply *r = ab_redis_cmd(svc->redis, &err, "HGET " AB_KEY_TOKEN_NAMES " %s", name);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		ab_service_reply_redis_error(req, err, r);
		return;
	}
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		ab_http_reply_error(req, 404, "not_found", "no token named \"%s\"", name);
		return;
	}
	char hex[65];
	ab_strlcpy(hex, r->str, sizeof(hex));
	freeReplyObject(r);
	r = ab_redis_cmd(svc->redis, &err, "DEL " AB_KEY_TOKEN_PREFIX "%s", hex);
	if (r)
		freeReplyObject(r);
	r = ab_redis_cmd(svc->redis, &err, "HDEL " AB_KEY_TOKEN_NAMES " %s", name);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		ab_service_reply_redis_error(req, err, r);
		return;
	}
	freeReplyObject(r);
	ab_log(AB_LOG_INFO, "token %s deleted", name);
	ab_http_reply(req, 204, "application/json", "", 0);
}

static int coord_init(struct ab_service *svc, char *err, size_t errlen)
{
	struct coord *c = ab_xcalloc(1, sizeof(*c));
	c->svc = svc;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	svc->state = c;
	int rc = ab_chat_new(svc, &c->chat, err, errlen);
	if (rc < 0)
		return rc;
	rc = ab_kb_api_new(svc, &c->kb, err, errlen);
	if (rc < 0)
		return rc;
	rc = pthread_create(&c->hub, NULL, hub_main, c);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the health hub: %s", ab_strerror(-rc));
		return -rc;
	}
	c->hub_started = true;
	return 0;
}

static void coord_fini(struct ab_service *svc)
{
	struct coord *c = svc->state;
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->hub_started)
		pthread_join(c->hub, NULL);
	ab_chat_free(c->chat);
	ab_kb_api_free(c->kb);
	for (size_t i = 0; i < c->n_subs; i++)
		ab_http_stream_close(c->subs[i]);
	free(c->subs);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
	svc->state = NULL;
}

static const struct ab_route routes[] = {
	{"GET", "/api/health", h_health, AB_ACCESS_PUBLIC, 0,
	 "health of the coordinator itself (no token needed)"},
	{"GET", "/api/health/cluster", h_cluster, AB_ACCESS_VIEWER, 0,
	 "every configured and registered service, probed concurrently"},
	{"GET", "/api/health/cluster/stream", h_cluster_stream, AB_ACCESS_VIEWER, AB_ROUTE_STREAM,
	 "cluster health as server-sent events, one every 2 s"},
	{"GET", "/api/services", h_services, AB_ACCESS_VIEWER, 0,
	 "live entries of the service registry (needs redis)"},
	{"GET", "/api/version", h_version, AB_ACCESS_VIEWER, 0, "version of this build"},
	{"GET", "/api/config", h_config, AB_ACCESS_ADMIN, 0,
	 "the effective configuration, secrets redacted"},
	{"GET", "/api/auth/whoami", h_whoami, AB_ACCESS_VIEWER, 0,
	 "the access level of the presented token"},
	{"GET", "/api/auth/tokens", h_token_list, AB_ACCESS_ADMIN, 0,
	 "API tokens (names and roles, never the tokens)"},
	{"POST", "/api/auth/tokens", h_token_create, AB_ACCESS_ADMIN, AB_ROUTE_JSON_BODY,
	 "mint a token {name, role: viewer|user|admin}; shown once"},
	{"DELETE", "/api/auth/tokens/{name}", h_token_delete, AB_ACCESS_ADMIN, 0,
	 "revoke a token by name"},
	{"POST", "/api/chat/sessions", ab_chat_h_create, AB_ACCESS_USER, AB_ROUTE_JSON_BODY,
	 "new chat session {title?, model?, system?}"},
	{"GET", "/api/chat/sessions", ab_chat_h_list, AB_ACCESS_USER, 0,
	 "chat sessions, most recent first"},
	{"GET", "/api/chat/sessions/{id}", ab_chat_h_get, AB_ACCESS_USER, 0,
	 "a chat session with its messages"},
	{"PATCH", "/api/chat/sessions/{id}", ab_chat_h_update, AB_ACCESS_USER, AB_ROUTE_JSON_BODY,
	 "rename a session or change its model or system prompt"},
	{"DELETE", "/api/chat/sessions/{id}", ab_chat_h_delete, AB_ACCESS_USER, 0,
	 "delete a session and its messages"},
	{"POST", "/api/chat/sessions/{id}/messages", ab_chat_h_message, AB_ACCESS_USER,
	 AB_ROUTE_JSON_BODY | AB_ROUTE_STREAM,
	 "send {content}: the answer streams as server-sent events (start, token..., done)"},
	{"POST", "/api/chat/sessions/{id}/cancel", ab_chat_h_cancel, AB_ACCESS_USER, 0,
	 "stop the answer running in a session (the partial answer is kept)"},
	{"POST", "/api/knowledge/documents", ab_kb_h_add, AB_ACCESS_USER, AB_ROUTE_UPLOAD,
	 "add a document: multipart upload (file, title, tags, source, id) or JSON {text|url, ...}"},
	{"GET", "/api/knowledge/documents", ab_kb_h_list, AB_ACCESS_VIEWER, 0,
	 "documents, newest first (?offset=&limit=)"},
	{"GET", "/api/knowledge/documents/{id}", ab_kb_h_get, AB_ACCESS_VIEWER, 0,
	 "one document's metadata and indexing status"},
	{"DELETE", "/api/knowledge/documents/{id}", ab_kb_h_delete, AB_ACCESS_USER, 0,
	 "remove a document and all its chunks"},
	{"POST", "/api/knowledge/search", ab_kb_h_search, AB_ACCESS_VIEWER, AB_ROUTE_JSON_BODY,
	 "hybrid | bm25 | vector search: {query, k, mode, filters: {tags, source, type}}"},
	{"GET", "/api/knowledge/stats", ab_kb_h_stats, AB_ACCESS_VIEWER, 0,
	 "documents, chunks, vectors, embedder"},
	{"GET", "/api/jobs/{id}", ab_job_h_get, AB_ACCESS_VIEWER, 0, "a background job's state"},
	{"GET", "/api/jobs/{id}/events", ab_job_h_events, AB_ACCESS_VIEWER, AB_ROUTE_STREAM,
	 "a job's progress as server-sent events, until it ends"},
	{"POST", "/api/jobs/{id}/cancel", ab_job_h_cancel, AB_ACCESS_USER, 0, "ask a job to stop"},
	{"GET", "/api/logs", ab_logs_h_list, AB_ACCESS_VIEWER, 0,
	 "log lines of every role and host, newest last (?role=&host=&level=&since=&limit=)"},
	{"GET", "/api/logs/stream", ab_logs_h_stream, AB_ACCESS_VIEWER, AB_ROUTE_STREAM,
	 "new log lines as server-sent events (same filters; ?limit=N replays N first)"},
};

const struct ab_role_def ab_role_coordinator = {
	.role = AB_ROLE_COORDINATOR,
	.summary = "the public API: health, services, config, auth",
	.routes = routes,
	.n_routes = AB_ARRAY_LEN(routes),
	.init = coord_init,
	.fini = coord_fini,
	.health = NULL,
};
