/*
 * redis.h - the Redis client every role uses (DESIGN section 4): a pool of
 * hiredis connections with connect and command timeouts, AUTH, reconnect
 * with capped exponential backoff and jitter, and a circuit breaker.
 *
 * The client never blocks its creator: ab_redis_new() returns at once and
 * a monitor thread connects in the background, pings every second, and
 * records the latency. While Redis is unreachable the breaker is open and
 * every command fails at once with AB_EUNAVAIL (the caller answers 503);
 * when the monitor's ping succeeds again the breaker closes and commands
 * flow, with no restart of the process.
 */
#ifndef AB_REDIS_H
#define AB_REDIS_H

#include "common.h"

#include <hiredis/hiredis.h>

struct ab_redis_opts {
	const char *host;          /* default 127.0.0.1 */
	int port;                  /* default 6379 */
	const char *password;      /* NULL or "" = no AUTH */
	int db;                    /* SELECT db when > 0 */
	int connect_timeout_ms;    /* default 2000 */
	int command_timeout_ms;    /* default 1000 */
	int pool_size;             /* default 4 */
	int backoff_min_ms;        /* default 100 */
	int backoff_max_ms;        /* default 2000 */
	int ping_interval_ms;      /* monitor period; default 1000 */
};

enum ab_redis_state {
	AB_REDIS_CONNECTING = 0,  /* never connected yet */
	AB_REDIS_UP = 1,
	AB_REDIS_DOWN = 2,        /* breaker open */
};

struct ab_redis_status {
	enum ab_redis_state state;
	double ping_ms;            /* latency of the last successful ping */
	int64_t last_ok_ms;        /* ab_now_ms() of the last success, 0 never */
	uint64_t commands, failures, reconnects;
	char last_error[160];
};

struct ab_redis;

/* Creates the client and starts its monitor thread; never blocks on the
 * network. Free with ab_redis_free(). Strings in opts are copied. */
int ab_redis_new(const struct ab_redis_opts *opts, struct ab_redis **out);
void ab_redis_free(struct ab_redis *r);

/*
 * Runs one command (hiredis format string). Returns the reply, which the
 * caller frees with freeReplyObject(), or NULL with *err set:
 * AB_EUNAVAIL (Redis down, breaker open; fails fast), AB_ETIMEOUT, or
 * AB_EPROTO. An error reply from Redis is returned as a reply of type
 * REDIS_REPLY_ERROR (and *err = AB_EREDIS) so the caller can read it.
 */
redisReply *ab_redis_cmd(struct ab_redis *r, int *err, const char *fmt, ...);
redisReply *ab_redis_cmdargv(struct ab_redis *r, int *err, int argc, const char **argv,
			     const size_t *argvlen);

/* Sends n commands in one round trip. replies[i] are owned by the caller.
 * Returns 0 or a negative code (then no replies are set). */
struct ab_redis_argv {
	int argc;
	const char **argv;
	const size_t *lens;  /* NULL = strlen */
};
int ab_redis_pipeline(struct ab_redis *r, size_t n, const struct ab_redis_argv *cmds,
		      redisReply **replies);

void ab_redis_status(struct ab_redis *r, struct ab_redis_status *st);
bool ab_redis_is_up(struct ab_redis *r);
const char *ab_redis_state_name(enum ab_redis_state s);

/*
 * One-shot check without a pool: connect with timeout, AUTH, PING.
 * Returns 0 and the round-trip latency, or a negative code with a reason
 * in err. Used by health probes and `autobot health`.
 */
int ab_redis_probe(const char *host, int port, const char *password, int timeout_ms,
		   double *latency_ms, char *err, size_t errlen);

/* The same, then one more command (argv) on the same connection within
 * what is left of timeout_ms: *reply gets its reply (caller frees with
 * freeReplyObject) or stays NULL. The probe's result does not depend on it. */
int ab_redis_probe_cmd(const char *host, int port, const char *password, int timeout_ms,
		       double *latency_ms, char *err, size_t errlen, int argc, const char **argv,
		       redisReply **reply);

#endif
