/*
 * redis.c - the pooled Redis client of redis.h: blocking hiredis
 * connections guarded by a circuit breaker and watched by a monitor
 * thread.
 *
 * Design. One mutex (r->lock) guards everything shared: the pool slots,
 * the breaker state and the statistics. Network I/O never happens with
 * the lock held.
 *
 *  - The pool is an array of pool_size slots. A caller checks a slot out
 *    (waiting on slot_cv at most command_timeout_ms, else AB_ETIMEOUT),
 *    uses its connection without the lock, and checks it back in. A slot
 *    whose connection was dropped holds NULL and is reconnected lazily by
 *    the next caller that checks it out.
 *
 *  - The breaker is the state field. While it is not UP, checkout fails
 *    at once with AB_EUNAVAIL, so a dead Redis costs callers nothing.
 *    It opens (state DOWN) when a command meets an I/O error (reset, EOF,
 *    timeout), when a lazy reconnect fails, or when the monitor's ping
 *    fails. Opening bumps r->gen, closes idle connections, and calls
 *    shutdown(2) on the sockets of connections other threads are using,
 *    so their blocked reads return at once instead of waiting out the
 *    command timeout; those connections are freed when checked in (their
 *    slot's gen no longer matches). The fd stays open until the owner
 *    frees the context, and owners only detach a context from its slot
 *    under the lock, so the shutdown never hits a reused descriptor.
 *
 *  - The monitor thread owns a private connection. It connects, AUTHs,
 *    SELECTs and PINGs every ping_interval_ms while UP; while not UP it
 *    retries with exponential backoff (backoff_min..backoff_max, with
 *    jitter). A successful ping closes the breaker. Its waits are timed
 *    waits on mon_cv, so ab_redis_free() (and a breaker opened by a
 *    command, which wants a prompt re-check) wake it at once.
 *
 * State changes are logged once each ("redis down: ..." / "redis up
 * again after N ms"), never per retry. Passwords are never logged.
 */
#include "redis.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct slot {
	redisContext *c; /* NULL = dropped, reconnect on next checkout */
	bool busy;
	uint64_t gen; /* r->gen when c was connected */
};

struct ab_redis {
	/* options (strings owned) */
	char *host;
	int port;
	char *password; /* NULL = no AUTH */
	int db;
	int connect_ms, command_ms, pool_size;
	int backoff_min, backoff_max, ping_ms;

	pthread_mutex_t lock;
	pthread_cond_t slot_cv; /* a slot became free (CLOCK_MONOTONIC) */
	pthread_cond_t mon_cv;  /* wake the monitor (CLOCK_MONOTONIC) */
	struct slot *slots;
	uint64_t gen;
	enum ab_redis_state state;
	bool stopping;
	bool kick;          /* a command opened the breaker */
	bool down_logged;   /* "redis down" said since the last up */
	int64_t down_since; /* ab_now_ms() when the breaker opened */
	double ping_latency;
	int64_t last_ok;
	uint64_t commands, failures, reconnects;
	char last_error[160];
	uint64_t rng;

	pthread_t monitor;
	bool monitor_started;
};

/* ---- small helpers ---- */

static struct timeval tv_ms(int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	return tv;
}

static struct timespec abs_deadline(int64_t ms_from_now)
{
	return ab_deadline(CLOCK_MONOTONIC, ms_from_now);
}

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/* xorshift64; r->rng is touched with the lock held. */
static uint64_t next_rand(struct ab_redis *r)
{
	uint64_t x = r->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	r->rng = x;
	return x;
}

/* Was the failure on c a timeout? hiredis 0.14 reports a blocking read
 * that hit SO_RCVTIMEO as REDIS_ERR_IO with EAGAIN's message. */
static bool ctx_timed_out(const redisContext *c)
{
	return c->err == REDIS_ERR_IO &&
	       (strstr(c->errstr, "temporarily unavailable") || strstr(c->errstr, "timed out") ||
	        strstr(c->errstr, "would block"));
}

/*
 * Connects, sets timeouts and keepalive, AUTHs and SELECTs. Returns the
 * context (caller frees with redisFree) or NULL with a reason in why and
 * *err set (AB_EAUTH for a refused password, AB_ETIMEOUT, AB_EUNAVAIL).
 */
static redisContext *open_conn(const char *host, int port, const char *password, int db,
                               int connect_ms, int budget_ms, int command_ms, char *why,
                               size_t whylen, int *err)
{
	int64_t t0 = ab_now_ms();
	if (connect_ms > budget_ms)
		connect_ms = budget_ms;
	redisContext *c = redisConnectWithTimeout(host, port, tv_ms(connect_ms));
	redisReply *rep = NULL;

	if (!c) {
		snprintf(why, whylen, "connect: out of memory");
		*err = AB_EUNAVAIL;
		return NULL;
	}
	if (c->err) {
		if (strstr(c->errstr, "timed out")) {
			snprintf(why, whylen, "timeout after %d ms", connect_ms);
			*err = AB_ETIMEOUT;
		} else {
			snprintf(why, whylen, "connect: %s", c->errstr);
			*err = AB_EUNAVAIL;
		}
		goto fail;
	}
	redisEnableKeepAlive(c);
	/* AUTH and SELECT share what is left of the budget. */
	int64_t left = budget_ms - (ab_now_ms() - t0);
	redisSetTimeout(c, tv_ms(left > 10 ? (int)left : 10));
	if (password && *password) {
		rep = redisCommand(c, "AUTH %s", password);
		if (!rep) {
			if (ctx_timed_out(c)) {
				snprintf(why, whylen, "timeout after %d ms", budget_ms);
				*err = AB_ETIMEOUT;
			} else {
				snprintf(why, whylen, "auth: %s", c->errstr);
				*err = AB_EUNAVAIL;
			}
			goto fail;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "auth: %s", rep->str ? rep->str : "error");
			*err = AB_EAUTH;
			goto fail;
		}
		freeReplyObject(rep);
		rep = NULL;
	}
	if (db > 0) {
		rep = redisCommand(c, "SELECT %d", db);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "select %d: %s", db,
			         rep ? (rep->str ? rep->str : "error") : c->errstr);
			*err = rep ? AB_EREDIS : AB_EUNAVAIL;
			goto fail;
		}
		freeReplyObject(rep);
	}
	redisSetTimeout(c, tv_ms(command_ms));
	return c;
fail:
	if (rep)
		freeReplyObject(rep);
	redisFree(c);
	return NULL;
}

/* ---- the breaker ---- */

/* Opens the breaker. Call with r->lock held. Idle connections are
 * collected into *drop (caller frees them after unlocking); busy ones
 * are shut down so their owners fail fast and free them at checkin. */
static void open_breaker_locked(struct ab_redis *r, const char *why, redisContext **drop,
                                size_t *ndrop)
{
	r->gen++;
	for (int i = 0; i < r->pool_size; i++) {
		struct slot *s = &r->slots[i];
		if (!s->c)
			continue;
		if (s->busy) {
			shutdown(s->c->fd, SHUT_RDWR);
		} else {
			drop[(*ndrop)++] = s->c;
			s->c = NULL;
		}
	}
	ab_strlcpy(r->last_error, why, sizeof(r->last_error));
	if (r->state == AB_REDIS_UP) {
		r->state = AB_REDIS_DOWN;
		r->down_since = ab_now_ms();
		ab_log(AB_LOG_WARN, "redis down: %s", why);
		r->down_logged = true;
		r->kick = true;
		pthread_cond_signal(&r->mon_cv);
	}
	/* CONNECTING stays CONNECTING: the monitor logs its own failures. */
}

static void free_dropped(redisContext **drop, size_t n)
{
	for (size_t i = 0; i < n; i++)
		redisFree(drop[i]);
}

static void open_breaker(struct ab_redis *r, const char *why)
{
	redisContext **drop = ab_xcalloc((size_t)r->pool_size, sizeof(*drop));
	size_t ndrop = 0;

	pthread_mutex_lock(&r->lock);
	open_breaker_locked(r, why, drop, &ndrop);
	pthread_mutex_unlock(&r->lock);
	free_dropped(drop, ndrop);
	free(drop);
}

/* ---- the pool ---- */

/*
 * Checks out a slot. On success returns its index and sets *cp to a
 * usable connection (reconnecting a dropped slot) and *gen. On failure
 * returns a negative code (AB_EUNAVAIL, AB_ETIMEOUT) and holds nothing.
 */
static int checkout(struct ab_redis *r, redisContext **cp, uint64_t *gen)
{
	struct timespec dl = abs_deadline(r->command_ms);
	int idx = -1;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		if (r->stopping || r->state != AB_REDIS_UP) {
			r->failures++;
			pthread_mutex_unlock(&r->lock);
			return AB_EUNAVAIL;
		}
		/* Prefer a slot with a live connection, then any free one. */
		for (int i = 0; i < r->pool_size; i++) {
			if (!r->slots[i].busy && r->slots[i].c) {
				idx = i;
				break;
			}
		}
		if (idx < 0) {
			for (int i = 0; i < r->pool_size; i++) {
				if (!r->slots[i].busy) {
					idx = i;
					break;
				}
			}
		}
		if (idx >= 0)
			break;
		if (pthread_cond_timedwait(&r->slot_cv, &r->lock, &dl) == ETIMEDOUT) {
			r->failures++;
			pthread_mutex_unlock(&r->lock);
			return AB_ETIMEOUT;
		}
	}
	struct slot *s = &r->slots[idx];
	s->busy = true;
	r->commands++;
	*gen = r->gen;
	redisContext *c = s->c;
	pthread_mutex_unlock(&r->lock);

	if (c) {
		*cp = c;
		return idx;
	}

	/* Lazy reconnect, kept within the command timeout. */
	char why[160];
	int err = 0;
	c = open_conn(r->host, r->port, r->password, r->db, r->connect_ms, r->command_ms,
	              r->command_ms, why, sizeof(why), &err);
	if (!c && err == AB_EAUTH)
		snprintf(why, sizeof(why), "redis auth failed");
	pthread_mutex_lock(&r->lock);
	if (c && r->gen == *gen && r->state == AB_REDIS_UP && !r->stopping) {
		s->c = c;
		s->gen = *gen;
		r->reconnects++;
		pthread_mutex_unlock(&r->lock);
		*cp = c;
		return idx;
	}
	s->busy = false;
	r->failures++;
	pthread_cond_signal(&r->slot_cv);
	pthread_mutex_unlock(&r->lock);
	if (c) {
		redisFree(c); /* the breaker opened meanwhile */
		return AB_EUNAVAIL;
	}
	open_breaker(r, why);
	return err == AB_ETIMEOUT ? AB_ETIMEOUT : AB_EUNAVAIL;
}

/*
 * Returns a slot. broken: the connection met an error and must go (why
 * says what; io says it was an I/O failure that opens the breaker).
 */
static void checkin(struct ab_redis *r, int idx, bool broken, bool io, const char *why)
{
	struct slot *s = &r->slots[idx];
	redisContext *dead = NULL;
	redisContext **drop = NULL;
	size_t ndrop = 0;

	if (io)
		drop = ab_xcalloc((size_t)r->pool_size, sizeof(*drop));
	pthread_mutex_lock(&r->lock);
	if (broken || s->gen != r->gen) {
		dead = s->c;
		s->c = NULL;
	}
	s->busy = false;
	if (broken)
		r->failures++;
	if (io && s->gen == r->gen)
		open_breaker_locked(r, why, drop, &ndrop);
	pthread_cond_signal(&r->slot_cv);
	pthread_mutex_unlock(&r->lock);
	if (dead)
		redisFree(dead);
	free_dropped(drop, ndrop);
	free(drop);
}

/* Classifies a NULL reply on c and checks the slot in. Returns the code. */
static int fail_io(struct ab_redis *r, int idx, redisContext *c)
{
	char why[200];
	int err;
	bool io = true;

	if (ctx_timed_out(c)) {
		snprintf(why, sizeof(why), "timeout after %d ms", r->command_ms);
		err = AB_ETIMEOUT;
	} else if (c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF) {
		ab_strlcpy(why, c->err == REDIS_ERR_EOF ? "connection closed" : c->errstr,
		           sizeof(why));
		err = AB_EUNAVAIL;
	} else {
		snprintf(why, sizeof(why), "protocol: %s", c->errstr);
		err = AB_EPROTO;
		io = false;
	}
	checkin(r, idx, true, io, why);
	return err;
}

static redisReply *finish(struct ab_redis *r, int idx, redisContext *c, redisReply *rep, int *err)
{
	if (!rep) {
		*err = fail_io(r, idx, c);
		return NULL;
	}
	checkin(r, idx, false, false, NULL);
	*err = rep->type == REDIS_REPLY_ERROR ? AB_EREDIS : 0;
	return rep;
}

redisReply *ab_redis_cmd(struct ab_redis *r, int *err, const char *fmt, ...)
{
	redisContext *c;
	uint64_t gen;
	int dummy;
	va_list ap;

	if (!err)
		err = &dummy;
	int idx = checkout(r, &c, &gen);
	if (idx < 0) {
		*err = idx;
		return NULL;
	}
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	return finish(r, idx, c, rep, err);
}

redisReply *ab_redis_cmdargv(struct ab_redis *r, int *err, int argc, const char **argv,
                             const size_t *argvlen)
{
	redisContext *c;
	uint64_t gen;
	int dummy;

	if (!err)
		err = &dummy;
	if (argc <= 0 || !argv) {
		*err = AB_EINVAL;
		return NULL;
	}
	int idx = checkout(r, &c, &gen);
	if (idx < 0) {
		*err = idx;
		return NULL;
	}
	redisReply *rep = redisCommandArgv(c, argc, argv, argvlen);
	return finish(r, idx, c, rep, err);
}

int ab_redis_pipeline(struct ab_redis *r, size_t n, const struct ab_redis_argv *cmds,
                      redisReply **replies)
{
	redisContext *c;
	uint64_t gen;
	size_t got = 0;
	int rc = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (cmds[i].argc <= 0 || !cmds[i].argv)
			return AB_EINVAL;
	int idx = checkout(r, &c, &gen);
	if (idx < 0)
		return idx;
	for (size_t i = 0; i < n; i++) {
		if (redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].lens) !=
		    REDIS_OK) {
			/* Only fails on OOM; the buffer is unusable now. */
			checkin(r, idx, true, false, NULL);
			return AB_EPROTO;
		}
	}
	for (got = 0; got < n; got++) {
		void *rep = NULL;
		if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
			rc = fail_io(r, idx, c);
			goto out;
		}
		replies[got] = rep;
	}
	checkin(r, idx, false, false, NULL);
	return 0;
out:
	for (size_t i = 0; i < got; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
	return rc;
}

/* ---- the monitor ---- */

/* One health check on the monitor's connection *mc (connecting it when
 * NULL). Returns 0 and the ping latency, or a negative code and why. */
static int monitor_check(struct ab_redis *r, redisContext **mc, double *lat, char *why,
                         size_t whylen)
{
	int err = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = false;
		if (!*mc) {
			*mc = open_conn(r->host, r->port, r->password, r->db, r->connect_ms,
			                r->connect_ms + r->command_ms, r->command_ms, why, whylen,
			                &err);
			if (!*mc) {
				if (err == AB_EAUTH) {
					/* why already holds "auth: <server message>" */
					char tmp[160];
					ab_strlcpy(tmp, why, sizeof(tmp));
					snprintf(why, whylen, "redis auth failed (%s)", tmp);
				}
				return err;
			}
			fresh = true;
		}
		double t0 = ab_now_ms_f();
		redisReply *rep = redisCommand(*mc, "PING");
		if (rep && rep->type != REDIS_REPLY_ERROR) {
			*lat = ab_now_ms_f() - t0;
			freeReplyObject(rep);
			return 0;
		}
		if (rep) {
			if (rep->str &&
			    (!strncmp(rep->str, "NOAUTH", 6) || !strncmp(rep->str, "WRONGPASS", 9)))
				snprintf(why, whylen, "redis auth failed (%s)", rep->str);
			else
				snprintf(why, whylen, "ping: %s", rep->str ? rep->str : "error");
			freeReplyObject(rep);
			redisFree(*mc);
			*mc = NULL;
			return AB_EREDIS;
		}
		if (ctx_timed_out(*mc)) {
			snprintf(why, whylen, "timeout after %d ms", r->command_ms);
			err = AB_ETIMEOUT;
		} else {
			snprintf(why, whylen, "ping: %s",
			         (*mc)->err == REDIS_ERR_EOF ? "connection closed" : (*mc)->errstr);
			err = AB_EUNAVAIL;
		}
		redisFree(*mc);
		*mc = NULL;
		if (fresh)
			break;
		/* A stale connection (e.g. Redis restarted): retry once on a new one. */
	}
	return err;
}

static void *monitor_main(void *arg)
{
	struct ab_redis *r = arg;
	redisContext *mc = NULL;
	int backoff = r->backoff_min;
	int64_t wait_ms = 0; /* first check at once */

	pthread_mutex_lock(&r->lock);
	for (;;) {
		if (wait_ms > 0 && !r->stopping && !r->kick) {
			struct timespec dl = abs_deadline(wait_ms);
			while (!r->stopping && !r->kick &&
			       pthread_cond_timedwait(&r->mon_cv, &r->lock, &dl) != ETIMEDOUT)
				;
		}
		if (r->stopping)
			break;
		bool kicked = r->kick;
		r->kick = false;
		pthread_mutex_unlock(&r->lock);

		if (kicked && mc) {
			/* A command saw Redis fail: don't trust our own socket. */
			redisFree(mc);
			mc = NULL;
		}
		char why[200] = "";
		double lat = 0;
		int rc = monitor_check(r, &mc, &lat, why, sizeof(why));

		redisContext **drop = ab_xcalloc((size_t)r->pool_size, sizeof(*drop));
		size_t ndrop = 0;
		pthread_mutex_lock(&r->lock);
		if (rc == 0) {
			r->ping_latency = lat;
			r->last_ok = ab_now_ms();
			if (r->state == AB_REDIS_DOWN) {
				ab_log(AB_LOG_INFO, "redis up again after %lld ms",
				       (long long)(ab_now_ms() - r->down_since));
			} else if (r->state == AB_REDIS_CONNECTING) {
				ab_log(AB_LOG_INFO, "redis up at %s:%d", r->host, r->port);
			}
			r->state = AB_REDIS_UP;
			r->down_logged = false;
			backoff = r->backoff_min;
			wait_ms = r->ping_ms;
		} else {
			if (r->state == AB_REDIS_UP) {
				open_breaker_locked(r, why, drop, &ndrop);
				r->kick = false; /* we are the monitor */
			} else {
				ab_strlcpy(r->last_error, why, sizeof(r->last_error));
				if (!r->down_logged) {
					ab_log(AB_LOG_WARN, "redis down: %s", why);
					r->down_logged = true;
				}
			}
			/* Wait backoff with jitter in [backoff/2, backoff], then double. */
			int64_t half = backoff / 2;
			wait_ms =
			    half + (half > 0 ? (int64_t)(next_rand(r) % (uint64_t)(half + 1)) : 0);
			if (wait_ms < 1)
				wait_ms = 1;
			backoff = backoff * 2 > r->backoff_max ? r->backoff_max : backoff * 2;
		}
		pthread_mutex_unlock(&r->lock);
		free_dropped(drop, ndrop);
		free(drop);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	if (mc)
		redisFree(mc);
	return NULL;
}

/* ---- lifecycle and status ---- */

int ab_redis_new(const struct ab_redis_opts *opts, struct ab_redis **out)
{
	struct ab_redis_opts o = {0};
	if (opts)
		o = *opts;
	if (o.port < 0 || o.port > 65535 || o.db < 0 || o.pool_size < 0)
		return AB_EINVAL;

	struct ab_redis *r = ab_xcalloc(1, sizeof(*r));
	r->host = ab_xstrdup(o.host && *o.host ? o.host : "127.0.0.1");
	r->port = o.port ? o.port : 6379;
	r->password = o.password && *o.password ? ab_xstrdup(o.password) : NULL;
	r->db = o.db;
	r->connect_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 2000;
	r->command_ms = o.command_timeout_ms > 0 ? o.command_timeout_ms : 1000;
	r->pool_size = o.pool_size > 0 ? o.pool_size : 4;
	r->backoff_min = o.backoff_min_ms > 0 ? o.backoff_min_ms : 100;
	r->backoff_max = o.backoff_max_ms > 0 ? o.backoff_max_ms : 2000;
	if (r->backoff_max < r->backoff_min)
		r->backoff_max = r->backoff_min;
	r->ping_ms = o.ping_interval_ms > 0 ? o.ping_interval_ms : 1000;
	r->slots = ab_xcalloc((size_t)r->pool_size, sizeof(*r->slots));
	r->state = AB_REDIS_CONNECTING;
	snprintf(r->last_error, sizeof(r->last_error), "not connected yet");
	if (ab_random_bytes(&r->rng, sizeof(r->rng)) != 0 || r->rng == 0)
		r->rng = (uint64_t)ab_now_ms() | 1;
	pthread_mutex_init(&r->lock, NULL);
	cond_init_mono(&r->slot_cv);
	cond_init_mono(&r->mon_cv);

	int rc = pthread_create(&r->monitor, NULL, monitor_main, r);
	if (rc != 0) {
		ab_redis_free(r);
		return -rc;
	}
	r->monitor_started = true;
	*out = r;
	return 0;
}

void ab_redis_free(struct ab_redis *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->mon_cv);
	pthread_cond_broadcast(&r->slot_cv);
	pthread_mutex_unlock(&r->lock);
	if (r->monitor_started)
		pthread_join(r->monitor, NULL);
	/* Callers must have finished their commands by now. */
	for (int i = 0; i < r->pool_size; i++)
		if (r->slots[i].c)
			redisFree(r->slots[i].c);
	free(r->slots);
	pthread_cond_destroy(&r->slot_cv);
	pthread_cond_destroy(&r->mon_cv);
	pthread_mutex_destroy(&r->lock);
	free(r->host);
	free(r->password);
	free(r);
}

void ab_redis_status(struct ab_redis *r, struct ab_redis_status *st)
{
	memset(st, 0, sizeof(*st));
	if (!r) {
		st->state = AB_REDIS_DOWN;
		snprintf(st->last_error, sizeof(st->last_error), "no client");
		return;
	}
	pthread_mutex_lock(&r->lock);
	st->state = r->state;
	st->ping_ms = r->ping_latency;
	st->last_ok_ms = r->last_ok;
	st->commands = r->commands;
	st->failures = r->failures;
	st->reconnects = r->reconnects;
	ab_strlcpy(st->last_error, r->state == AB_REDIS_UP ? "" : r->last_error,
	           sizeof(st->last_error));
	pthread_mutex_unlock(&r->lock);
}

bool ab_redis_is_up(struct ab_redis *r)
{
	if (!r)
		return false;
	pthread_mutex_lock(&r->lock);
	bool up = r->state == AB_REDIS_UP;
	pthread_mutex_unlock(&r->lock);
	return up;
}

const char *ab_redis_state_name(enum ab_redis_state s)
{
	switch (s) {
	case AB_REDIS_CONNECTING:
		return "connecting";
	case AB_REDIS_UP:
		return "up";
	case AB_REDIS_DOWN:
		return "down";
	}
	return "unknown";
}

int ab_redis_probe(const char *host, int port, const char *password, int timeout_ms,
                   double *latency_ms, char *err, size_t errlen)
{
	return ab_redis_probe_cmd(host, port, password, timeout_ms, latency_ms, err, errlen, 0, NULL,
				  NULL);
}

int ab_redis_probe_cmd(const char *host, int port, const char *password, int timeout_ms,
		       double *latency_ms, char *err, size_t errlen, int argc, const char **argv,
		       redisReply **reply)
{
	char dummy[8];
	double lat_dummy;

	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (!latency_ms)
		latency_ms = &lat_dummy;
	err[0] = '\0';
	*latency_ms = 0;
	if (!host || !*host)
		host = "127.0.0.1";
	if (port <= 0)
		port = 6379;
	if (timeout_ms <= 0)
		timeout_ms = 1000;

	int64_t t_start = ab_now_ms();
	redisContext *c = redisConnectWithTimeout(host, port, tv_ms(timeout_ms));
	redisReply *rep = NULL;
	int rc = 0;

	if (!c) {
		snprintf(err, errlen, "connect: out of memory");
		return AB_EUNAVAIL;
	}
	if (c->err) {
		if (strstr(c->errstr, "timed out")) {
			snprintf(err, errlen, "timeout after %d ms", timeout_ms);
			rc = AB_ETIMEOUT;
		} else {
			snprintf(err, errlen, "connect: %s", c->errstr);
			rc = AB_EUNAVAIL;
		}
		goto out;
	}
	for (int step = 0; step < 2; step++) {
		bool auth = step == 0;
		if (auth && !(password && *password))
			continue;
		int64_t left = timeout_ms - (ab_now_ms() - t_start);
		if (left <= 0) {
			snprintf(err, errlen, "timeout after %d ms", timeout_ms);
			rc = AB_ETIMEOUT;
			goto out;
		}
		redisSetTimeout(c, tv_ms((int)left));
		double t0 = ab_now_ms_f();
		rep = auth ? redisCommand(c, "AUTH %s", password) : redisCommand(c, "PING");
		if (!rep) {
			if (ctx_timed_out(c)) {
				snprintf(err, errlen, "timeout after %d ms", timeout_ms);
				rc = AB_ETIMEOUT;
			} else {
				snprintf(err, errlen, "%s: %s", auth ? "auth" : "ping",
				         c->err == REDIS_ERR_EOF ? "connection closed" : c->errstr);
				rc = AB_EUNAVAIL;
			}
			goto out;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			bool noauth = rep->str && !strncmp(rep->str, "NOAUTH", 6);
			snprintf(err, errlen, "%s: %s", auth ? "auth" : "ping",
			         rep->str ? rep->str : "error");
			rc = auth || noauth ? AB_EAUTH : AB_EREDIS;
			goto out;
		}
		if (!auth)
			*latency_ms = ab_now_ms_f() - t0;
		freeReplyObject(rep);
		rep = NULL;
	}
	if (argc > 0 && reply) {
		/* one more command in what is left of the budget; its failure
		 * does not make the probe fail */
		int64_t left = timeout_ms - (ab_now_ms() - t_start);
		if (left > 0) {
			redisSetTimeout(c, tv_ms((int)left));
			*reply = redisCommandArgv(c, argc, argv, NULL);
		}
	}
out:
	if (rep)
		freeReplyObject(rep);
	redisFree(c);
	return rc;
}
