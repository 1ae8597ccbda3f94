/*
 * logs_api.c - GET /api/logs and GET /api/logs/stream (logs_api.h): the
 * ab:log stream, which every role of every host writes (logsink.h), read
 * through the coordinator.
 *
 * The list is one bounded XREVRANGE walk on the service's Redis pool.
 *
 * The follow stream. All clients of /api/logs/stream share one hub
 * thread, started by the first and ended when the last goes away. The
 * hub owns a Redis connection of its own (not one of the service's pool,
 * which it would hold for the whole of every XREAD BLOCK) and touches no
 * memory of the service, so it is safe whenever the service shuts down;
 * the streams it writes to are reference counted by the HTTP server.
 * Each subscriber keeps its filter and `after`, the id of the last entry
 * it has been shown or skipped. The hub reads from the smallest `after`
 * of all, so a new subscriber that joins behind the others is served
 * from its own point, and an entry reaches a subscriber only when its id
 * is past that subscriber's `after`: no gaps, no repeats. All of this is
 * guarded by hub.lock; writes to a stream only queue bytes, so holding
 * the lock while writing is cheap. Closed clients are noticed after a
 * write fails or on the keepalive comment sent every KEEPALIVE_MS.
 */
#include "logs_api.h"

#include "log.h"
#include "logsink.h"
#include "service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define MAX_SCAN 200000     /* entries one request may look at */
#define HUB_MAX_SUBS 64
#define HUB_BLOCK_MS 1000
#define HUB_COUNT 200
#define KEEPALIVE_MS 15000
#define DOWN_NOTE_MS 5000

struct sub {
	struct ab_http_stream *s;
	char role[64];
	char host[256];
	int min_level;
	int64_t since_ms;
	char after[AB_LOGSINK_ID_MAX];
};

static struct {
	pthread_mutex_t lock;
	bool running;
	struct sub *subs[HUB_MAX_SUBS];
	size_t n;
	char rhost[256];
	int rport;
	char rpass[160];
	int connect_ms;
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- shared parts ---- */

/* Reads role, host, level and since into f (strings point into req).
 * Returns 0, or AB_EINVAL with why filled. */
static int parse_filter(struct ab_http_req *req, struct ab_logsink_filter *f, char *why,
			size_t whylen)
{
	memset(f, 0, sizeof(*f));
	f->min_level = AB_LOG_DEBUG;
	f->role = ab_http_query(req, "role");
	f->host = ab_http_query(req, "host");
	if (f->role && strlen(f->role) >= sizeof(((struct sub *)0)->role)) {
		snprintf(why, whylen, "role: too long");
		return AB_EINVAL;
	}
	if (f->host && strlen(f->host) >= sizeof(((struct sub *)0)->host)) {
		snprintf(why, whylen, "host: too long");
		return AB_EINVAL;
	}
	const char *level = ab_http_query(req, "level");
	if (level && ab_logsink_level_parse(level, &f->min_level) < 0) {
		snprintf(why, whylen, "level: expected debug, info, warn or error");
		return AB_EINVAL;
	}
	const char *since = ab_http_query(req, "since");
	if (since && ab_logsink_since_parse(since, ab_wall_ms(), &f->since_ms) < 0) {
		snprintf(why, whylen,
			 "since: expected a duration (90s, 10m, 2h, 7d) or an ISO 8601 time");
		return AB_EINVAL;
	}
	return 0;
}

static int parse_limit(struct ab_http_req *req, long long def, long long min, long long *out,
		       char *why, size_t whylen)
{
	const char *v = ab_http_query(req, "limit");
	*out = def;
	if (v && ab_parse_int(v, min, LIST_LIMIT_MAX, out) < 0) {
		snprintf(why, whylen, "limit: expected an integer from %lld to %d", min,
			 LIST_LIMIT_MAX);
		return AB_EINVAL;
	}
	return 0;
}

/* Writes entry e as one server-sent event. Returns the write's code. */
static int write_event(struct ab_http_stream *s, const json_t *e)
{
	char *txt = json_dumps(e, JSON_COMPACT);
	if (!txt)
		return 0;
	int rc = ab_http_stream_printf(s, "id: %s\ndata: %s\n\n",
				       json_string_value(json_object_get(e, "id")), txt);
	free(txt);
	return rc;
}

/* -1, 0, 1 as stream id a is before, equal to, after b (both valid). */
static int id_cmp(const char *a, const char *b)
{
	char *end;
	unsigned long long am = strtoull(a, &end, 10), as = strtoull(end + 1, NULL, 10);
	unsigned long long bm = strtoull(b, &end, 10), bs = strtoull(end + 1, NULL, 10);
	if (am != bm)
		return am < bm ? -1 : 1;
	return as < bs ? -1 : as > bs ? 1 : 0;
}

/* ---- GET /api/logs ---- */

void ab_logs_h_list(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	struct ab_logsink_filter f;
	long long limit;
	char why[160];
	if (parse_filter(req, &f, why, sizeof(why)) < 0 ||
	    parse_limit(req, LIST_LIMIT_DEFAULT, 1, &limit, why, sizeof(why)) < 0) {
		ab_http_reply_error(req, 400, "bad_request", "%s", why);
		return;
	}
	json_t *arr = json_array();
	char top[AB_LOGSINK_ID_MAX];
	int rc = ab_logsink_tail(svc->redis, &f, (size_t)limit, MAX_SCAN, arr, top);
	if (rc < 0)
		ab_service_reply_redis_error(req, rc, NULL);
	else
		ab_http_reply_jansson(req, 200, arr);
	json_decref(arr);
}

/* ---- the hub ---- */

static redisContext *hub_connect(const char *host, int port, const char *pass, int connect_ms)
{
	struct timeval tv = {connect_ms / 1000, (connect_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err)
		goto fail;
	struct timeval ct = {(HUB_BLOCK_MS + 2000) / 1000, 0};
	if (redisSetTimeout(c, ct) != REDIS_OK)
		goto fail;
	if (pass[0]) {
		const char *argv[] = {"AUTH", pass};
		redisReply *r = redisCommandArgv(c, 2, argv, NULL);
		bool ok = r && r->type != REDIS_REPLY_ERROR;
		if (r)
			freeReplyObject(r);
		if (!ok)
			goto fail;
	}
	return c;
fail:
	if (c)
		redisFree(c);
	return NULL;
}

/* Ends closed subscriptions; returns the smallest `after` left in cursor,
 * or false when none is left (the hub then stops). Locked. */
static bool prune_locked(char cursor[AB_LOGSINK_ID_MAX])
{
	size_t j = 0;
	for (size_t i = 0; i < hub.n; i++) {
		struct sub *x = hub.subs[i];
		if (ab_http_stream_closed(x->s)) {
			ab_http_stream_close(x->s);
			free(x);
			continue;
		}
		if (j == 0 || id_cmp(x->after, cursor) < 0)
			ab_strlcpy(cursor, x->after, AB_LOGSINK_ID_MAX);
		hub.subs[j++] = x;
	}
	hub.n = j;
	return j > 0;
}

static void say_all_locked(const char *comment)
{
	for (size_t i = 0; i < hub.n; i++)
		ab_http_stream_printf(hub.subs[i]->s, ": %s\n\n", comment);
}

static void deliver_locked(const json_t *entries)
{
	for (size_t k = 0; k < json_array_size(entries); k++) {
		const json_t *e = json_array_get(entries, k);
		const char *id = json_string_value(json_object_get(e, "id"));
		for (size_t i = 0; i < hub.n; i++) {
			struct sub *x = hub.subs[i];
			if (id_cmp(id, x->after) <= 0)
				continue;
			struct ab_logsink_filter f = {.role = x->role, .host = x->host,
						      .min_level = x->min_level,
						      .since_ms = x->since_ms};
			if (ab_logsink_match(e, &f))
				write_event(x->s, e);
			ab_strlcpy(x->after, id, sizeof(x->after));
		}
	}
}

static void *hub_main(void *arg)
{
	(void)arg;
	char host[256], pass[160], cursor[AB_LOGSINK_ID_MAX] = "0-0";
	pthread_mutex_lock(&hub.lock);
	ab_strlcpy(host, hub.rhost, sizeof(host));
	ab_strlcpy(pass, hub.rpass, sizeof(pass));
	int port = hub.rport, connect_ms = hub.connect_ms;
	pthread_mutex_unlock(&hub.lock);

	redisContext *c = NULL;
	int64_t last_talk = ab_now_ms(), last_down_note = 0;
	for (;;) {
		pthread_mutex_lock(&hub.lock);
		if (!prune_locked(cursor)) {
			hub.running = false;
			pthread_mutex_unlock(&hub.lock);
			break;
		}
		if (ab_now_ms() - last_talk >= KEEPALIVE_MS) {
			say_all_locked("keepalive");
			last_talk = ab_now_ms();
		}
		pthread_mutex_unlock(&hub.lock);

		if (!c)
			c = hub_connect(host, port, pass, connect_ms);
		if (!c) {
			if (ab_now_ms() - last_down_note >= DOWN_NOTE_MS) {
				pthread_mutex_lock(&hub.lock);
				say_all_locked("redis unavailable, retrying");
				pthread_mutex_unlock(&hub.lock);
				last_down_note = last_talk = ab_now_ms();
			}
			ab_sleep_ms(1000);
			continue;
		}
		json_t *arr = json_array();
		char start[AB_LOGSINK_ID_MAX];
		ab_strlcpy(start, cursor, sizeof(start));
		/* no filter here: every entry advances every subscriber */
		int rc = ab_logsink_next_ctx(c, NULL, HUB_BLOCK_MS, HUB_COUNT, cursor, arr);
		if (rc < 0) {
			redisFree(c);
			c = NULL;
		} else if (rc > 0) {
			pthread_mutex_lock(&hub.lock);
			if (json_array_size(arr)) {
				deliver_locked(arr);
				last_talk = ab_now_ms();
			}
			/* entries that were not valid advance the readers too */
			for (size_t i = 0; i < hub.n; i++) {
				struct sub *x = hub.subs[i];
				if (id_cmp(x->after, start) >= 0 && id_cmp(cursor, x->after) > 0)
					ab_strlcpy(x->after, cursor, sizeof(x->after));
			}
			pthread_mutex_unlock(&hub.lock);
		}
		json_decref(arr);
	}
	if (c)
		redisFree(c);
	return NULL;
}

/* Adds x to the hub, starting the hub when it is not running. Returns 0,
 * or AB_ETOOBIG when the hub is full. */
static int subscribe(struct ab_service *svc, struct sub *x)
{
	const struct ab_service_cfg *rs = &svc->cfg->services[AB_ROLE_REDIS];
	int rc = 0;
	pthread_mutex_lock(&hub.lock);
	if (hub.n >= HUB_MAX_SUBS) {
		rc = AB_ETOOBIG;
		goto out;
	}
	hub.subs[hub.n++] = x;
	if (hub.running)
		goto out;
	ab_strlcpy(hub.rhost, rs->host, sizeof(hub.rhost));
	hub.rport = rs->port;
	ab_strlcpy(hub.rpass, rs->password ? rs->password : "", sizeof(hub.rpass));
	hub.connect_ms = svc->cfg->redis_connect_ms > 0 ? svc->cfg->redis_connect_ms : 2000;
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, hub_main, NULL) == 0) {
		hub.running = true;
	} else {
		hub.n--;
		rc = AB_EUNAVAIL;
	}
	pthread_attr_destroy(&attr);
out:
	pthread_mutex_unlock(&hub.lock);
	return rc;
}

/* Sends the entries after from (exclusive) up to now, at most
 * LIST_LIMIT_MAX scanned; leaves from at the last one scanned. */
static int replay_after(struct ab_redis *r, const struct ab_logsink_filter *f,
			struct ab_http_stream *s, char from[AB_LOGSINK_ID_MAX])
{
	size_t scanned = 0;
	while (scanned < LIST_LIMIT_MAX) {
		json_t *arr = json_array();
		int n = ab_logsink_next(r, f, 0, 200, from, arr);
		for (size_t i = 0; n > 0 && i < json_array_size(arr); i++)
			write_event(s, json_array_get(arr, i));
		json_decref(arr);
		if (n <= 0)
			return n;
		scanned += (size_t)n;
	}
	return 0;
}

/* ---- GET /api/logs/stream ---- */

void ab_logs_h_stream(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	struct ab_logsink_filter f;
	long long limit;
	char why[160];
	if (parse_filter(req, &f, why, sizeof(why)) < 0 ||
	    parse_limit(req, 0, 0, &limit, why, sizeof(why)) < 0) {
		ab_http_reply_error(req, 400, "bad_request", "%s", why);
		return;
	}
	pthread_mutex_lock(&hub.lock);
	bool full = hub.n >= HUB_MAX_SUBS;
	pthread_mutex_unlock(&hub.lock);
	if (full) {
		ab_http_reply_error(req, 503, "too_many_streams",
				    "%d log streams are open already; retry later", HUB_MAX_SUBS);
		return;
	}
	const char *resume = ab_http_header(req, "Last-Event-ID");
	if (resume && (strlen(resume) >= AB_LOGSINK_ID_MAX || !ab_logsink_id_valid(resume)))
		resume = NULL;

	/* Where this subscriber starts: the resumed id, else the end of the
	 * stream (after the last `limit` lines, which are replayed). */
	json_t *replay = json_array();
	char top[AB_LOGSINK_ID_MAX];
	int rc;
	if (resume) {
		ab_strlcpy(top, resume, sizeof(top));
		rc = 0;
	} else {
		rc = ab_logsink_tail(svc->redis, limit ? &f : NULL, limit ? (size_t)limit : 1,
				     limit ? MAX_SCAN : 1, replay, top);
		if (!limit)
			json_array_clear(replay);
	}
	if (rc < 0) {
		json_decref(replay);
		ab_service_reply_redis_error(req, rc, NULL);
		return;
	}
	struct sub *x = ab_xcalloc(1, sizeof(*x));
	ab_strlcpy(x->role, f.role ? f.role : "", sizeof(x->role));
	ab_strlcpy(x->host, f.host ? f.host : "", sizeof(x->host));
	x->min_level = f.min_level;
	x->since_ms = f.since_ms;
	x->s = ab_http_reply_stream(req, 200, "text/event-stream");
	if (!x->s) {
		json_decref(replay);
		free(x);
		return;
	}
	ab_http_stream_printf(x->s, ": following ab:log\n\n");
	for (size_t i = 0; i < json_array_size(replay); i++)
		write_event(x->s, json_array_get(replay, i));
	json_decref(replay);
	if (resume && replay_after(svc->redis, &f, x->s, top) < 0)
		ab_http_stream_printf(x->s, ": redis unavailable, some lines may be missing\n\n");
	ab_strlcpy(x->after, top, sizeof(x->after));
	rc = subscribe(svc, x);
	if (rc < 0) {
		ab_http_stream_printf(x->s, "event: error\ndata: {\"error\":\"%s\"}\n\n",
				      rc == AB_ETOOBIG ? "too many log streams" : "cannot follow");
		ab_http_stream_close(x->s);
		free(x);
	}
}
