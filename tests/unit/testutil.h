/*
 * testutil.h - helpers shared by the unit tests: free loopback ports, a
 * throwaway redis-server child and a client for it, a tiny threaded HTTP
 * server and raw loopback sockets.
 *
 * Everything binds to 127.0.0.1 only. The helpers run inside Criterion
 * tests and fail the calling test with cr_assert when the system refuses
 * something (a socket, a thread, a fork); the one expected absence, a
 * missing redis-server, becomes -1 from tu_redis_start or a skip with a
 * clear message from tu_redis_need, never a failure.
 */
#ifndef AB_TESTUTIL_H
#define AB_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- ports and raw sockets ---- */

/* A loopback port that was free a moment ago: bound to port 0, then
 * closed. Nothing listens there, so connecting is refused. */
int tu_free_port(void);

/* A socket listening on 127.0.0.1 on a fresh port (stored in *port) that
 * never accepts: connections complete in the kernel backlog and nothing
 * is ever read or answered, which is what a hung server looks like to a
 * client. The caller closes the returned fd. */
int tu_listen_silent(int *port);

/* A blocking TCP connection to 127.0.0.1:port with a 5 s receive
 * timeout. */
int tu_connect(int port);

/* Writes the whole string s to fd, asserting that it all went out. */
void tu_send_str(int fd, const char *s);

/* ---- processes ---- */

/* Sends SIGKILL to pid and reaps it; pid <= 0 is ignored. */
void tu_kill(pid_t pid);

/* ---- redis-server ---- */

#define TU_REDIS_BIN "/usr/bin/redis-server"

/* Starts TU_REDIS_BIN in the foreground as our child on 127.0.0.1:port,
 * without persistence, requiring password when it is not NULL, and waits
 * until it answers PING. Returns -1 when redis-server is not installed,
 * so that the caller can cr_skip_test; fails the test if the server does
 * not come up within about 5 s. Stop it with tu_kill. */
pid_t tu_redis_start(int port, const char *password);

/* The redis-server of one test; zero it in the suite's init. */
struct tu_redis {
	pid_t pid; /* 0 when not running */
	int port;
};

/* Starts a redis-server for the running test on tu_free_port() into *r,
 * or skips the test with a message when redis-server is not installed. */
void tu_redis_need(struct tu_redis *r, const char *password);

struct ab_redis;

/* A pooled client of 127.0.0.1:port with test-friendly timings (connect
 * 500 ms, backoff 50-400 ms, ping every 200 ms); asserts that it was
 * created. Free with ab_redis_free. */
struct ab_redis *tu_redis_client(int port, const char *password, int command_timeout_ms,
                                 int pool_size);

/* ---- HTTP server ---- */

enum tu_http_mode {
	/* Reads one request (headers and a Content-Length body) per
	 * connection, answers by path and closes:
	 *   /hello        200 "hello"
	 *   /health       200 {"status":"ok"}
	 *   /echo         200 "<METHOD> <X-Test header or -> <body>"
	 *   /big          200 100000 bytes of 'x' with Content-Length
	 *   /bigstream    the same without Content-Length (read to close)
	 *   /status/503   503 {}
	 *   anything else 404 {} */
	TU_HTTP_CANNED,
	/* Accepts and reads forever without answering, until the client
	 * closes its end. */
	TU_HTTP_BLACKHOLE,
};

struct tu_http_server;

/* Starts a server thread accepting on 127.0.0.1 on a fresh port; each
 * connection gets a detached thread. */
struct tu_http_server *tu_http_start(enum tu_http_mode mode);

/* The port the server listens on. */
int tu_http_port(const struct tu_http_server *s);

/* Stops accepting and frees the server; NULL is ignored. Connection
 * threads still running exit when their client closes. */
void tu_http_stop(struct tu_http_server *s);

#endif
