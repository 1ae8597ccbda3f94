/*
 * test_redis.c - tests of the pooled Redis client against a real
 * redis-server started by the test on a free port with a password.
 *
 * The port is found by binding a socket to port 0 and closing it; the
 * server runs in the foreground as our child (stdout to /dev/null) and is
 * killed in teardown. Tests that need it skip with a message when
 * redis-server is not installed. The central test kills the server while
 * threads hammer the client, checks that nothing hangs and that commands
 * fail fast while it is gone, then restarts it on the same port and
 * waits for the same client object to recover.
 */
#include "common.h"
#include "log.h"
#include "redis.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define REDIS_BIN "/usr/bin/redis-server"
#define PW        "test-pw-5f1c9e"

static pid_t srv_pid;
static int srv_port;

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

static const char *redis_bin(void)
{
	return access(REDIS_BIN, X_OK) == 0 ? REDIS_BIN : NULL;
}

/* Starts redis-server on port and waits until it answers PING. */
static pid_t start_redis(int port)
{
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int dn = open("/dev/null", O_RDWR);
		if (dn >= 0) {
			dup2(dn, 1);
			dup2(dn, 2);
		}
		execl(REDIS_BIN, REDIS_BIN, "--port", ports, "--bind", "127.0.0.1", "--save", "",
		      "--appendonly", "no", "--daemonize", "no", "--requirepass", PW, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		double lat;
		char err[160];
		if (ab_redis_probe("127.0.0.1", port, PW, 200, &lat, err, sizeof(err)) == 0)
			return pid;
		ab_sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert_fail("redis-server did not come up on port %d", port);
	return -1;
}

static void kill_redis(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

static void need_redis(void)
{
	if (!redis_bin())
		cr_skip_test("redis-server not installed at " REDIS_BIN "; skipping");
	srv_port = free_port();
	srv_pid = start_redis(srv_port);
}

static void setup(void)
{
	ab_log_min_level = AB_LOG_WARN;
	srv_pid = 0;
	srv_port = 0;
}

static void teardown(void)
{
	kill_redis(srv_pid);
	srv_pid = 0;
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
	struct ab_redis_opts o = {
	    .host = "127.0.0.1",
	    .port = srv_port,
	    .password = pw,
	    .connect_timeout_ms = 500,
	    .command_timeout_ms = cmd_ms,
	    .pool_size = 3,
	    .backoff_min_ms = 50,
	    .backoff_max_ms = 400,
	    .ping_interval_ms = 200,
	};
	struct ab_redis *r = NULL;
	cr_assert_eq(ab_redis_new(&o, &r), 0);
	return r;
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
	need_redis();
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
	need_redis();
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
	need_redis();
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
	need_redis();
	enum { CMD_MS = 500, T = 6 };
	struct ab_redis *r = client(PW, CMD_MS);
	cr_assert(wait_up(r, 3000));
	pthread_t th[T];
	struct hammer h = {.r = r};

	for (int i = 0; i < T; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, hammer_main, &h), 0);
	ab_sleep_ms(300);
	cr_assert(atomic_load(&h.ok) > 0);

	kill_redis(srv_pid);
	srv_pid = 0;
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
	srv_pid = start_redis(srv_port);
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

/* A server that accepts connections but never answers. */
static int blackhole_listen(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(listen(fd, 16) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

Test(redis, created_while_down_returns_at_once)
{
	srv_port = free_port(); /* nothing listens there */
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
	need_redis();
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
	need_redis();
	double lat = -1;
	char err[160];

	cr_assert_eq(ab_redis_probe("127.0.0.1", srv_port, PW, 500, &lat, err, sizeof(err)), 0);
	cr_assert(lat >= 0 && lat < 500);
	cr_assert_str_eq(err, "");

	int rc = ab_redis_probe("127.0.0.1", srv_port, "wrong-pass", 500, &lat, err, sizeof(err));
	cr_assert_eq(rc, AB_EAUTH);
	cr_assert(!strncmp(err, "auth: WRONGPASS", 15), "err: %s", err);

	rc = ab_redis_probe("127.0.0.1", srv_port, NULL, 500, &lat, err, sizeof(err));
	cr_assert_eq(rc, AB_EAUTH);
	cr_assert(strstr(err, "NOAUTH"), "err: %s", err);

	rc = ab_redis_probe("127.0.0.1", free_port(), PW, 500, &lat, err, sizeof(err));
	cr_assert_eq(rc, AB_EUNAVAIL);
	cr_assert_str_eq(err, "connect: Connection refused");

	int port;
	int fd = blackhole_listen(&port);
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
	need_redis();
	struct ab_redis *r = client(PW, 300);
	cr_assert(wait_up(r, 3000));
	int err = 0;
	redisReply *rep = ab_redis_cmd(r, &err, "PING"); /* warm one pooled connection */
	cr_assert_not_null(rep);
	freeReplyObject(rep);
	/* Freeze the server: commands must time out, then fail fast. */
	kill(srv_pid, SIGSTOP);
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
	kill(srv_pid, SIGCONT);
	cr_assert(wait_up(r, 3000), "did not recover after SIGCONT");
	rep = ab_redis_cmd(r, &err, "PING");
	cr_assert_not_null(rep, "err %d", err);
	freeReplyObject(rep);
	ab_redis_free(r);
}
