/*
 * module.c - autobot.so, the Redis module of the knowledge base: vector sets
 * with the commands of Redis 8 (vset.c, over the HNSW engine of src/vector)
 * and a BM25 full-text index (text.c, over src/text), loaded into Redis 7
 * with --loadmodule.
 *
 * Design. Redis runs every command on its main thread; a search over a
 * large index must not stall it. So each key's value (a vector set or a
 * text index) carries a read-write lock and a reference count:
 *
 *  - Writes (VADD, VREM, VSETATTR, AB.TEXTADD, ...) run on the main thread
 *    and take the write lock. They wait for searches already running on
 *    that key (bounded by one search's time), never for anything else.
 *  - A search parses its arguments on the main thread, takes a reference,
 *    blocks its client (RedisModule_BlockClient) and hands the work to one
 *    of the module's search threads. The thread takes the read lock, runs
 *    the search, copies out what the reply needs (names, scores,
 *    attributes: nodes may be deleted as soon as the lock is released),
 *    releases lock and reference, and unblocks the client; Redis then
 *    calls the reply callback on the main thread with the copied result.
 *    Any number of searches run at once; the engines allow concurrent
 *    readers by contract.
 *  - Deleting a key (DEL, expiry, FLUSHALL) calls the type's free
 *    callback, which only drops the key's reference: the value is freed by
 *    whoever drops the last one, the key or a search still in flight.
 *  - Where a client may not block (inside MULTI, Lua, or a module's call)
 *    or NOTHREAD is given, the search runs inline on the main thread.
 *
 * The main thread never reads a value while holding no lock but also never
 * races a writer, since every writer is the main thread itself; this is
 * why commands like VCARD or VEMB need no lock at all.
 *
 * Memory of the engines comes from malloc (ab_xmalloc), not Redis's
 * allocator; MEMORY USAGE reports it through each type's mem_usage.
 */
#include "module.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"
#include "filter.h"

#define POOL_MAX 16

struct task {
	void (*fn)(void *arg);
	void *arg;
	struct task *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct task *head, *tail;
	int nthreads;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *pool_main(void *unused)
{
	(void)unused;
	for (;;) {
		pthread_mutex_lock(&pool.mu);
		while (!pool.head)
			pthread_cond_wait(&pool.cv, &pool.mu);
		struct task *t = pool.head;
		pool.head = t->next;
		if (!pool.head)
			pool.tail = NULL;
		pthread_mutex_unlock(&pool.mu);
		t->fn(t->arg);
		free(t);
	}
	return NULL;
}

void ab_rm_pool_submit(void (*fn)(void *arg), void *arg)
{
	struct task *t = ab_xmalloc(sizeof(*t));
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	pthread_mutex_lock(&pool.mu);
	if (pool.tail)
		pool.tail->next = t;
	else
		pool.head = t;
	pool.tail = t;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
}

static int pool_start(int n)
{
	for (int i = 0; i < n; i++) {
		pthread_t th;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int rc = pthread_create(&th, &attr, pool_main, NULL);
		pthread_attr_destroy(&attr);
		if (rc != 0)
			return -rc;
		pool.nthreads++;
	}
	return 0;
}

bool ab_rm_can_block(RedisModuleCtx *ctx)
{
	int f = RedisModule_GetContextFlags(ctx);
	if (f & (REDISMODULE_CTX_FLAGS_LUA | REDISMODULE_CTX_FLAGS_MULTI |
		 REDISMODULE_CTX_FLAGS_DENY_BLOCKING | REDISMODULE_CTX_FLAGS_LOADING))
		return false;
	return pool.nthreads > 0;
}

bool ab_rm_resp3(RedisModuleCtx *ctx)
{
	return (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_RESP3) != 0;
}

bool ab_rm_arg_is(RedisModuleString *arg, const char *word)
{
	size_t len;
	const char *s = RedisModule_StringPtrLen(arg, &len);
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

bool ab_rm_arg_ll(RedisModuleCtx *ctx, RedisModuleString *arg, long long min, long long max,
		  const char *what, long long *out)
{
	long long v;
	if (RedisModule_StringToLongLong(arg, &v) != REDISMODULE_OK || v < min || v > max) {
		char msg[160];
		snprintf(msg, sizeof(msg), "ERR invalid %s: expected an integer from %lld to %lld", what,
			 min, max);
		RedisModule_ReplyWithError(ctx, msg);
		return false;
	}
	*out = v;
	return true;
}

bool ab_rm_arg_double(RedisModuleCtx *ctx, RedisModuleString *arg, double min, double max,
		      const char *what, double *out)
{
	double v;
	if (RedisModule_StringToDouble(arg, &v) != REDISMODULE_OK || !(v >= min && v <= max)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "ERR invalid %s: expected a number from %g to %g", what, min,
			 max);
		RedisModule_ReplyWithError(ctx, msg);
		return false;
	}
	*out = v;
	return true;
}

bool ab_rm_json_object_ok(const char *json, size_t len)
{
	json_error_t err;
	json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
	bool ok = v && json_is_object(v);
	json_decref(v);
	return ok;
}

void ab_rm_hits_free(struct ab_rm_hit *hits, size_t n)
{
	for (size_t k = 0; hits && k < n; k++) {
		free(hits[k].name);
		free(hits[k].attr);
	}
	free(hits);
}

void ab_rm_reply_hits(RedisModuleCtx *ctx, const struct ab_rm_hit *hits, size_t n,
		      bool withscores, bool withattribs, bool resp3)
{
	bool both = withscores && withattribs;
	if (both && !resp3)
		RedisModule_ReplyWithArray(ctx, (long)(3 * n));
	else if (withscores || withattribs)
		RedisModule_ReplyWithMap(ctx, (long)n);
	else
		RedisModule_ReplyWithArray(ctx, (long)n);
	for (size_t k = 0; k < n; k++) {
		const struct ab_rm_hit *h = &hits[k];
		RedisModule_ReplyWithStringBuffer(ctx, h->name, h->name_len);
		if (both && resp3)
			RedisModule_ReplyWithArray(ctx, 2);
		if (withscores)
			RedisModule_ReplyWithDouble(ctx, h->score);
		if (withattribs) {
			if (h->attr)
				RedisModule_ReplyWithStringBuffer(ctx, h->attr, h->attr_len);
			else
				RedisModule_ReplyWithNull(ctx);
		}
	}
}

static void search_reply(RedisModuleCtx *ctx, const struct ab_rm_search *s)
{
	if (s->error)
		RedisModule_ReplyWithError(ctx, s->error);
	else
		ab_rm_reply_hits(ctx, s->hits, s->nhits, s->withscores, s->withattribs, s->resp3);
}

static void search_free(struct ab_rm_search *s)
{
	ab_rm_hits_free(s->hits, s->nhits);
	ab_filter_free(s->filter);
	s->free(s);
}

static int search_reply_cb(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	(void)argv;
	(void)argc;
	search_reply(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
	return REDISMODULE_OK;
}

static void search_free_cb(RedisModuleCtx *ctx, void *priv)
{
	(void)ctx;
	search_free(priv);
}

static void search_thread(void *arg)
{
	struct ab_rm_search *s = arg;
	s->run(s);
	s->release(s);
	RedisModule_UnblockClient(s->bc, s);
}

void ab_rm_search_start(RedisModuleCtx *ctx, struct ab_rm_search *s, bool nothread)
{
	if (nothread || !ab_rm_can_block(ctx)) {
		s->run(s);
		s->release(s);
		search_reply(ctx, s);
		search_free(s);
		return;
	}
	s->bc = RedisModule_BlockClient(ctx, search_reply_cb, NULL, search_free_cb, 0);
	ab_rm_pool_submit(search_thread, s);
}

bool ab_rm_arg_filter(RedisModuleCtx *ctx, RedisModuleString *arg, struct ab_filter **f)
{
	size_t len;
	const char *expr = RedisModule_StringPtrLen(arg, &len);
	char err[160], msg[200];
	ab_filter_free(*f);
	*f = NULL;
	if (ab_filter_compile(expr, len, f, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "ERR syntax error in FILTER expression: %s", err);
		RedisModule_ReplyWithError(ctx, msg);
		return false;
	}
	return true;
}

static long module_threads(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > POOL_MAX)
		n = POOL_MAX;
	/* --loadmodule autobot.so THREADS n (0 = every search inline) */
	for (int i = 0; i + 1 < argc; i += 2) {
		long long v;
		if (ab_rm_arg_is(argv[i], "THREADS") &&
		    RedisModule_StringToLongLong(argv[i + 1], &v) == REDISMODULE_OK && v >= 0 &&
		    v <= POOL_MAX)
			n = (long)v;
		else
			RedisModule_Log(ctx, "warning", "autobot: ignoring module argument %d", i);
	}
	return n;
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (ab_rm_init(ctx, "autobot", 1) != REDISMODULE_OK)
		return REDISMODULE_ERR;
	RedisModule_SetModuleOptions(ctx, REDISMODULE_OPTIONS_HANDLE_IO_ERRORS);
	if (ab_rm_vset_register(ctx) != REDISMODULE_OK || ab_rm_text_register(ctx) != REDISMODULE_OK)
		return REDISMODULE_ERR;
	long n = module_threads(ctx, argv, argc);
	int rc = pool_start((int)n);
	if (rc < 0) {
		RedisModule_Log(ctx, "warning", "autobot: cannot start search threads: %s",
				strerror(-rc));
		return REDISMODULE_ERR;
	}
	RedisModule_Log(ctx, "notice", "autobot: vector sets and text index ready, %d search threads",
			pool.nthreads);
	return REDISMODULE_OK;
}
