/*
 * test_redis.c - tests of the pooled Redis client against a real
 * redis-server started by the test on a free port with a password.
 *
 * The server is a child started with tu_redis_start (testutil.c) on
 * tu_free_port() and killed in teardown. Tests that need it skip with a
 * message when redis-server is not installed. The central test kills the
 * server while threads hammer the client, checks that nothing hangs and
 * that commands fail fast while it is gone, then restarts it on the same
 * port and waits for the same client object to recover.
 */
#include "common.h"
#include "log.h"
#include "redis.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PW "test-pw-5f1c9e"

static struct tu_redis srv;

static void setup(void)
{
	ab_log_min_level = AB_LOG_WARN;
	srv = (struct tu_redis){0};
}

static void teardown(void)
{
	tu_kill(srv.pid);
	srv.pid = 0;
}

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

static bool wait_up(struct ab_redis *r, int ms)
{
	int64_t end = ab_now_ms() + ms;
	while (ab_now_ms() < end) {
		if (ab_redis_is_up(r))
			return true;
		ab_sleep_ms(10);
	}
	return ab_redis_is_up(r);
}

static struct ab_redis *client(const char *pw, int cmd_ms)
{
	return tu_redis_client(srv.port, pw, cmd_ms, 3);
}

Test(redis, state_names)
{
	cr_assert_str_eq(ab_redis_state_name(AB_REDIS_CONNECTING), "connecting");
	cr_assert_str_eq(ab_redis_state_name(AB_REDIS_UP), "up");
	cr_assert_str_eq(ab_redis_state_name(AB_REDIS_DOWN), "down");
	ab_redis_free(NULL);
}

Test(redis, basic_commands)
{
	tu_redis_need(&srv, PW);
	struct ab_redis *r = client(PW, 1000);
	int err = 1;

	cr_assert(wait_up(r, 3000), "client never came up");
	redisReply *rep = ab_redis_cmd(r, &err, "SET %s %s", "ab:test:k", "v1");
	cr_assert_not_null(rep);
	cr_assert_eq(err, 0);
	freeReplyObject(rep);
	rep = ab_redis_cmd(r, &err, "GET %s", "ab:test:k");
	cr_assert_eq(rep->type, REDIS_REPLY_STRING);
	cr_assert_str_eq(rep->str, "v1");
	freeReplyObject(rep);

	/* An error reply is handed back with AB_EREDIS. */
	rep = ab_redis_cmd(r, &err, "INCR %s", "ab:test:k");
	cr_assert_not_null(rep);
	cr_assert_eq(rep->type, REDIS_REPLY_ERROR);
	cr_assert_eq(err, AB_EREDIS);
	freeReplyObject(rep);

	const char *argv[] = {"SET", "ab:test:bin", "a\0b"};
	size_t lens[] = {3, 11, 3};
	rep = ab_redis_cmdargv(r, &err, 3, argv, lens);
	cr_assert_eq(err, 0);
	freeReplyObject(rep);
	rep = ab_redis_cmd(r, &err, "STRLEN %s", "ab:test:bin");
	cr_assert_eq(rep->integer, 3);
	freeReplyObject(rep);

	struct ab_redis_status st;
	ab_redis_status(r, &st);
	cr_assert_eq(st.state, AB_REDIS_UP);
	cr_assert(st.last_ok_ms > 0);
	cr_assert(st.ping_ms >= 0 && st.ping_ms < 500);
	cr_assert(st.commands >= 5);
	ab_redis_free(r);
}

Test(redis, pipeline)
{
	tu_redis_need(&srv, PW);
	struct ab_redis *r = client(PW, 1000);
	cr_assert(wait_up(r, 3000));

	const char *c1[] = {"DEL", "ab:test:p"};
	const char *c2[] = {"RPUSH", "ab:test:p", "a", "b", "c"};
	const char *c3[] = {"LRANGE", "ab:test:p", "0", "-1"};
	const char *c4[] = {"HGET", "ab:test:p", "x"}; /* WRONGTYPE error */
	struct ab_redis_argv cmds[] = {
	    {.argc = 2, .argv = c1},
	    {.argc = 5, .argv = c2},
	    {.argc = 4, .argv = c3},
	    {.argc = 3, .argv = c4},
	};
	redisReply *rep[4] = {0};
	cr_assert_eq(ab_redis_pipeline(r, 4, cmds, rep), 0);
	cr_assert_eq(rep[1]->type, REDIS_REPLY_INTEGER);
	cr_assert_eq(rep[1]->integer, 3);
	cr_assert_eq(rep[2]->type, REDIS_REPLY_ARRAY);
	cr_assert_eq(rep[2]->elements, 3);
	cr_assert_str_eq(rep[2]->element[2]->str, "c");
	cr_assert_eq(rep[3]->type, REDIS_REPLY_ERROR);
	for (int i = 0; i < 4; i++)
		freeReplyObject(rep[i]);
	ab_redis_free(r);
}

/* ---- concurrency ---- */

struct hammer {
	struct ab_redis *r;
	atomic_bool stop;
	atomic_bool killed; /* the server is dead: watch for fast failures */
	atomic_int ok, unavail, timeout, other;
	atomic_int slow_after_kill; /* failures that took > 100 ms once settled */
	_Atomic double max_ms;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	while (!atomic_load(&h->stop)) {
		int err = 0;
		bool settled = atomic_load(&h->killed);
		double t0 = ab_now_ms_f();
		redisReply *rep = ab_redis_cmd(h->r, &err, "INCR %s", "ab:test:ctr");
		double dt = ab_now_ms_f() - t0;
		double m = atomic_load(&h->max_ms);
		while (dt > m && !atomic_compare_exchange_weak(&h->max_ms, &m, dt))
			;
		if (rep) {
			atomic_fetch_add(&h->ok, 1);
			freeReplyObject(rep);
		} else if (err == AB_EUNAVAIL) {
			atomic_fetch_add(&h->unavail, 1);
			if (settled && dt > 100)
				atomic_fetch_add(&h->slow_after_kill, 1);
			ab_sleep_ms(2);
		} else if (err == AB_ETIMEOUT) {
			atomic_fetch_add(&h->timeout, 1);
		} else {
			atomic_fetch_add(&h->other, 1);
		}
	}
	return NULL;
}

Test(redis, many_threads_small_pool)
{
	tu_redis_need(&srv, PW);
	struct ab_redis *r = client(PW, 2000);
	cr_assert(wait_up(r, 3000));
	enum { T = 8 };
	pthread_t th[T];
	struct hammer h = {.r = r};

	for (int i = 0; i < T; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, hammer_main, &h), 0);
	ab_sleep_ms(500);
	atomic_store(&h.stop, true);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	cr_assert(atomic_load(&h.ok) > 100, "only %d ok", atomic_load(&h.ok));
	cr_assert_eq(atomic_load(&h.unavail) + atomic_load(&h.timeout) + atomic_load(&h.other), 0);
	int err;
	redisReply *rep = ab_redis_cmd(r, &err, "GET %s", "ab:test:ctr");
	cr_assert_eq(atoi(rep->str), atomic_load(&h.ok));
	freeReplyObject(rep);
	ab_redis_free(r);
}

Test(redis, kill_and_restart_recovers)
{
	tu_redis_need(&srv, PW);
	enum { CMD_MS = 500, T = 6 };
	struct ab_redis *r = client(PW, CMD_MS);
	cr_assert(wait_up(r, 3000));
	pthread_t th[T];
	struct hammer h = {.r = r};

	for (int i = 0; i < T; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, hammer_main, &h), 0);
	ab_sleep_ms(300);
	cr_assert(atomic_load(&h.ok) > 0);

	tu_kill(srv.pid);
	srv.pid = 0;
	ab_sleep_ms(300); /* let the breaker open */
	atomic_store(&h.killed, true);
	cr_assert(!ab_redis_is_up(r), "client still up after kill");

	/* With the breaker open, commands fail at once, without the network. */
	for (int i = 0; i < 20; i++) {
		int err = 0;
		double t0 = ab_now_ms_f();
		redisReply *rep = ab_redis_cmd(r, &err, "PING");
		double dt = ab_now_ms_f() - t0;
		cr_assert_null(rep);
		cr_assert_eq(err, AB_EUNAVAIL, "err %d", err);
		cr_assert(dt < 20, "failure took %.1f ms (not fast)", dt);
	}
	struct ab_redis_status st;
	ab_redis_status(r, &st);
	cr_assert_eq(st.state, AB_REDIS_DOWN);
	cr_assert_neq(st.last_error[0], '\0');
	ab_sleep_ms(700);
	int ok_while_down = atomic_load(&h.ok);

	/* Same port, same client object: it must come back by itself. */
	srv.pid = tu_redis_start(srv.port, PW);
	atomic_store(&h.killed, false);
	int64_t t_restart = ab_now_ms();
	bool back = false;
	while (ab_now_ms() - t_restart < 5000) {
		int err = 0;
		redisReply *rep = ab_redis_cmd(r, &err, "PING");
		if (rep) {
			freeReplyObject(rep);
			back = true;
			break;
		}
		ab_sleep_ms(20);
	}
	cr_assert(back, "client did not recover within 5 s of the restart");
	ab_sleep_ms(300);
	cr_assert(atomic_load(&h.ok) > ok_while_down, "hammer threads never succeeded again");

	atomic_store(&h.stop, true);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	double maxms = atomic_load(&h.max_ms);
	cr_assert(maxms < CMD_MS + 300, "a command took %.0f ms (timeout %d)", maxms, CMD_MS);
	cr_assert_eq(atomic_load(&h.slow_after_kill), 0);
	cr_assert_eq(atomic_load(&h.other), 0);
	ab_redis_status(r, &st);
	cr_assert_eq(st.state, AB_REDIS_UP);
	cr_assert(st.failures > 0);
	ab_redis_free(r);
}

Test(redis, created_while_down_returns_at_once)
{
	srv.port = tu_free_port(); /* nothing listens there */
	double t0 = ab_now_ms_f();
	struct ab_redis *r = client(PW, 500);
	cr_assert(ab_now_ms_f() - t0 < 50, "ab_redis_new blocked");

	struct ab_redis_status st;
	ab_redis_status(r, &st);
	cr_assert(st.state == AB_REDIS_CONNECTING || st.state == AB_REDIS_DOWN);
	int err = 0;
	t0 = ab_now_ms_f();
	cr_assert_null(ab_redis_cmd(r, &err, "PING"));
	cr_assert_eq(err, AB_EUNAVAIL);
	cr_assert(ab_now_ms_f() - t0 < 20);
	ab_sleep_ms(300);
	cr_assert(!ab_redis_is_up(r));
	ab_redis_status(r, &st);
	cr_assert(strstr(st.last_error, "refused"), "last_error: %s", st.last_error);

	/* Freeing wakes the monitor from its backoff wait at once. */
	t0 = ab_now_ms_f();
	ab_redis_free(r);
	cr_assert(ab_now_ms_f() - t0 < 200, "free took %.0f ms", ab_now_ms_f() - t0);
}

Test(redis, wrong_password)
{
	tu_redis_need(&srv, PW);
	struct ab_redis *r = client("not-the-password", 500);
	ab_sleep_ms(500);
	cr_assert(!ab_redis_is_up(r));
	struct ab_redis_status st;
	ab_redis_status(r, &st);
	cr_assert(strstr(st.last_error, "redis auth failed"), "last_error: %s", st.last_error);
	cr_assert_null(strstr(st.last_error, "not-the-password"));
	int err = 0;
	cr_assert_null(ab_redis_cmd(r, &err, "PING"));
	cr_assert_eq(err, AB_EUNAVAIL);
	ab_redis_free(r);

	/* No password at all: the server says NOAUTH. */
	r = client(NULL, 500);
	ab_sleep_ms(500);
	cr_assert(!ab_redis_is_up(r));
	ab_redis_status(r, &st);
	cr_assert(strstr(st.last_error, "auth"), "last_error: %s", st.last_error);
	ab_redis_free(r);
}

Test(redis, probe)
{
	tu_redis_need(&srv, PW);
	double lat = -1;
	char err[160];

	cr_assert_eq(ab_redis_probe("127.0.0.1", srv.port, PW, 500, &lat, err, sizeof(err)), 0);
	cr_assert(lat >= 0 && lat < 500);
	cr_assert_str_eq(err, "");

	int rc = ab_redis_probe("127.0.0.1", srv.port, "wrong-pass", 500, &lat, err, sizeof(err));
	cr_assert_eq(rc, AB_EAUTH);
	cr_assert(!strncmp(err, "auth: WRONGPASS", 15), "err: %s", err);

	rc = ab_redis_probe("127.0.0.1", srv.port, NULL, 500, &lat, err, sizeof(err));
	cr_assert_eq(rc, AB_EAUTH);
	cr_assert(strstr(err, "NOAUTH"), "err: %s", err);

	rc = ab_redis_probe("127.0.0.1", tu_free_port(), PW, 500, &lat, err, sizeof(err));
	cr_assert_eq(rc, AB_EUNAVAIL);
	cr_assert_str_eq(err, "connect: Connection refused");

	int port;
	int fd = tu_listen_silent(&port); /* accepts, never answers */
	double t0 = ab_now_ms_f();
	rc = ab_redis_probe("127.0.0.1", port, PW, 300, &lat, err, sizeof(err));
	double dt = ab_now_ms_f() - t0;
	cr_assert_eq(rc, AB_ETIMEOUT, "rc %d err %s", rc, err);
	cr_assert_str_eq(err, "timeout after 300 ms");
	cr_assert(dt >= 250 && dt < 700, "took %.0f ms", dt);
	close(fd);
}

Test(redis, command_timeout_on_hung_server)
{
	tu_redis_need(&srv, PW);
	struct ab_redis *r = client(PW, 300);
	cr_assert(wait_up(r, 3000));
	int err = 0;
	redisReply *rep = ab_redis_cmd(r, &err, "PING"); /* warm one pooled connection */
	cr_assert_not_null(rep);
	freeReplyObject(rep);
	/* Freeze the server: commands must time out, then fail fast. */
	kill(srv.pid, SIGSTOP);
	double t0 = ab_now_ms_f();
	rep = ab_redis_cmd(r, &err, "PING");
	double dt = ab_now_ms_f() - t0;
	cr_assert_null(rep);
	cr_assert_eq(err, AB_ETIMEOUT, "err %d", err);
	cr_assert(dt >= 250 && dt < 700, "took %.0f ms", dt);
	t0 = ab_now_ms_f();
	rep = ab_redis_cmd(r, &err, "PING");
	cr_assert_null(rep);
	cr_assert_eq(err, AB_EUNAVAIL);
	cr_assert(ab_now_ms_f() - t0 < 20);
	kill(srv.pid, SIGCONT);
	cr_assert(wait_up(r, 3000), "did not recover after SIGCONT");
	rep = ab_redis_cmd(r, &err, "PING");
	cr_assert_not_null(rep, "err %d", err);
	freeReplyObject(rep);
	ab_redis_free(r);
}
