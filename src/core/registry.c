/*
 * registry.c - service registration in Redis (the heartbeat half of
 * registry.h; the cluster probes live in health.c).
 *
 * A registration is one thread that, once a second, sends in a single
 * pipeline
 *     SET ab:svc:<role>:<id> <json> EX 3
 *     SADD ab:svc:index ab:svc:<role>:<id>
 * so an entry whose process dies or freezes expires within 3 s. While
 * Redis is down the pipeline fails fast (the client's breaker) and the
 * thread simply tries again next second. The thread sleeps in a timed
 * wait on a condition variable, so ab_registry_stop() wakes it at once;
 * stop then deletes the key and its index entry (best effort).
 *
 * Listing reads the index with SMEMBERS and the values with one MGET.
 * Keys whose value has expired are removed from the index on the way
 * (SREM), so the index never grows without bound.
 */
#include "registry.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000
#define HEARTBEAT_RETRY_MS 100

struct ab_registry {
	struct ab_redis *r;    /* not owned */
	char *role, *id, *url; /* owned */
	char *key;             /* ab:svc:<role>:<id>, owned */
	char host[256];
	int64_t started_ms;
	pthread_mutex_t lock;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	bool stopping;
	double load;
	bool load_set;
	bool failing; /* last heartbeat failed (log once) */
	pthread_t thread;
};

static char *entry_json(struct ab_registry *g)
{
	pthread_mutex_lock(&g->lock);
	double load = g->load;
	bool load_set = g->load_set;
	pthread_mutex_unlock(&g->lock);
	/* Until the role reports its own figure, publish the host's: the
	 * 1-minute load average per core (1.0 = every core busy). */
	double avg[1];
	if (!load_set && getloadavg(avg, 1) == 1) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		load = avg[0] / (double)(cores > 0 ? cores : 1);
	}

	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:s}", "role", g->role, "id", g->id,
	              "url", g->url, "version", AB_VERSION, "pid", (json_int_t)getpid(),
	              "started_ms", (json_int_t)g->started_ms, "load", load, "host", g->host);
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
	json_decref(o);
	return s; /* caller frees */
}

static void beat(struct ab_registry *g)
{
	char *js = entry_json(g);
	if (!js)
		return;
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%d", AB_REGISTRY_TTL_S);
	const char *set[] = {"SET", g->key, js, "EX", ttl};
	const char *sadd[] = {"SADD", AB_KEY_SVC_INDEX, g->key};
	struct ab_redis_argv cmds[2] = {
	    {.argc = 5, .argv = set},
	    {.argc = 3, .argv = sadd},
	};
	redisReply *rep[2] = {NULL, NULL};
	int rc = ab_redis_pipeline(g->r, 2, cmds, rep);
	if (rc == 0 && (rep[0]->type == REDIS_REPLY_ERROR || rep[1]->type == REDIS_REPLY_ERROR))
		rc = AB_EREDIS;
	/* Redis down is logged by the client already: say it quietly. */
	if (rc != 0 && !g->failing)
		ab_log(rc == AB_EUNAVAIL ? AB_LOG_DEBUG : AB_LOG_WARN,
		       "registry heartbeat for %s failed: %s", g->key, ab_strerror(rc));
	else if (rc == 0 && g->failing)
		ab_log(AB_LOG_INFO, "registry heartbeat for %s resumed", g->key);
	g->failing = rc != 0;
	for (int i = 0; i < 2; i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	free(js);
}

static void *heartbeat_main(void *arg)
{
	struct ab_registry *g = arg;

	for (;;) {
		beat(g);
		/* While Redis is away, retry often (the breaker makes a try
		 * cheap) so the entry reappears soon after Redis does. */
		int wait_ms = g->failing ? HEARTBEAT_RETRY_MS : HEARTBEAT_MS;
		pthread_mutex_lock(&g->lock);
		struct timespec dl = ab_deadline(CLOCK_MONOTONIC, wait_ms);
		while (!g->stopping && pthread_cond_timedwait(&g->cv, &g->lock, &dl) != ETIMEDOUT)
			;
		bool stop = g->stopping;
		pthread_mutex_unlock(&g->lock);
		if (stop)
			break;
	}
	return NULL;
}

static void registry_free(struct ab_registry *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->lock);
	free(g->role);
	free(g->id);
	free(g->url);
	free(g->key);
	free(g);
}

int ab_registry_start(struct ab_redis *r, const char *role, const char *id, const char *url,
                      struct ab_registry **out)
{
	if (!r || !role || !*role || !id || !*id || !out)
		return AB_EINVAL;
	struct ab_registry *g = ab_xcalloc(1, sizeof(*g));
	g->r = r;
	g->role = ab_xstrdup(role);
	g->id = ab_xstrdup(id);
	g->url = ab_xstrdup(url ? url : "");
	g->key = ab_xasprintf("%s%s:%s", AB_KEY_SVC_PREFIX, role, id);
	if (gethostname(g->host, sizeof(g->host) - 1) != 0)
		ab_strlcpy(g->host, "unknown", sizeof(g->host));
	g->started_ms = ab_wall_ms();
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &a);
	pthread_condattr_destroy(&a);

	int rc = pthread_create(&g->thread, NULL, heartbeat_main, g);
	if (rc != 0) {
		registry_free(g);
		return -rc;
	}
	*out = g;
	return 0;
}

void ab_registry_stop(struct ab_registry *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);

	const char *del[] = {"DEL", g->key};
	const char *srem[] = {"SREM", AB_KEY_SVC_INDEX, g->key};
	struct ab_redis_argv cmds[2] = {
	    {.argc = 2, .argv = del},
	    {.argc = 3, .argv = srem},
	};
	redisReply *rep[2] = {NULL, NULL};
	if (ab_redis_pipeline(g->r, 2, cmds, rep) == 0) {
		freeReplyObject(rep[0]);
		freeReplyObject(rep[1]);
	}
	registry_free(g);
}

void ab_registry_set_load(struct ab_registry *g, double load)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->load = load;
	g->load_set = true;
	pthread_mutex_unlock(&g->lock);
}

static const char *obj_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int cmp_entry(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(obj_str(x, "role"), obj_str(y, "role"));
	return c ? c : strcmp(obj_str(x, "id"), obj_str(y, "id"));
}

/* One round trip: the live entries of the index, with the index pruned of
 * expired keys on the server side. */
static const char list_script[] =
	"local ks = redis.call('SMEMBERS', KEYS[1]) "
	"if #ks == 0 then return {} end "
	"local vs = redis.call('MGET', unpack(ks)) "
	"local out = {} "
	"for i = 1, #ks do "
	"  if vs[i] then out[#out + 1] = vs[i] else redis.call('SREM', KEYS[1], ks[i]) end "
	"end "
	"return out";

void ab_registry_list_cmd(const char **argv)
{
	argv[0] = "EVAL";
	argv[1] = list_script;
	argv[2] = "1";
	argv[3] = AB_KEY_SVC_INDEX;
}

json_t *ab_registry_list(struct ab_redis *r, int *err)
{
	int dummy;
	if (!err)
		err = &dummy;
	*err = 0;
	const char *argv[4];
	ab_registry_list_cmd(argv);
	redisReply *vals = ab_redis_cmdargv(r, err, 4, argv, NULL);
	if (!vals)
		return NULL;
	json_t *arr = ab_registry_list_reply(vals, err);
	freeReplyObject(vals);
	return arr;
}

json_t *ab_registry_list_reply(const redisReply *vals, int *err)
{
	json_t **items = NULL;
	json_t *arr = NULL;
	size_t nitems = 0;
	if (vals->type != REDIS_REPLY_ARRAY) {
		*err = *err ? *err : AB_EPROTO;
		goto out;
	}
	arr = json_array();
	items = ab_xcalloc(vals->elements ? vals->elements : 1, sizeof(*items));
	for (size_t i = 0; i < vals->elements; i++) {
		redisReply *v = vals->element[i];
		if (v->type != REDIS_REPLY_STRING)
			continue;
		json_t *o = json_loadb(v->str, v->len, 0, NULL);
		if (!json_is_object(o)) {
			json_decref(o);
			continue;
		}
		items[nitems++] = o;
	}
	qsort(items, nitems, sizeof(*items), cmp_entry);
	for (size_t i = 0; i < nitems; i++)
		json_array_append_new(arr, items[i]);
	*err = 0;
out:
	free(items);
	return arr;
}
