/*
 * testutil.c - helpers shared by the unit tests (see testutil.h): free
 * loopback ports and raw sockets, a redis-server child with a password,
 * and a tiny threaded HTTP server with canned replies or a "black hole".
 *
 * The HTTP server is one accept thread per server handing each connection
 * to a detached thread; stopping it shuts the listening socket down to
 * wake accept(), joins the accept thread and leaves connection threads to
 * end when their client closes. redis-server is started with fork+exec,
 * its output sent to /dev/null, and polled with ab_redis_probe until it
 * answers.
 */
#include "testutil.h"

#include "common.h"
#include "redis.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- ports and raw sockets ---- */

/* A socket bound to 127.0.0.1 on a fresh port, stored in *port. */
static int bind_loopback(int type, int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, type, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

int tu_free_port(void)
{
	int port;
	close(bind_loopback(SOCK_STREAM, &port));
	return port;
}

int tu_listen_silent(int *port)
{
	int fd = bind_loopback(SOCK_STREAM | SOCK_CLOEXEC, port);
	cr_assert(listen(fd, 16) == 0);
	return fd;
}

int tu_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect to %d: %s", port,
	             strerror(errno));
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

void tu_send_str(int fd, const char *s)
{
	size_t n = strlen(s);
	cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

/* ---- processes ---- */

void tu_kill(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* ---- redis-server ---- */

pid_t tu_redis_start(int port, const char *password)
{
	if (access(TU_REDIS_BIN, X_OK) != 0)
		return -1;
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
		/* Without a password the list simply ends at pw_flag. */
		const char *pw_flag = password ? "--requirepass" : NULL;
		execl(TU_REDIS_BIN, TU_REDIS_BIN, "--port", ports, "--bind", "127.0.0.1", "--save",
		      "", "--appendonly", "no", "--daemonize", "no", pw_flag, password,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		double lat;
		char err[160];
		if (ab_redis_probe("127.0.0.1", port, password, 200, &lat, err, sizeof(err)) == 0)
			return pid;
		ab_sleep_ms(50);
	}
	tu_kill(pid);
	cr_assert_fail("redis-server did not come up on port %d", port);
	return -1;
}

void tu_redis_need(struct tu_redis *r, const char *password)
{
	r->port = tu_free_port();
	r->pid = tu_redis_start(r->port, password);
	if (r->pid < 0) {
		r->pid = 0;
		cr_skip_test("redis-server not installed at " TU_REDIS_BIN "; skipping");
	}
}

struct ab_redis *tu_redis_client(int port, const char *password, int command_timeout_ms,
                                 int pool_size)
{
	struct ab_redis_opts o = {
	    .host = "127.0.0.1",
	    .port = port,
	    .password = password,
	    .connect_timeout_ms = 500,
	    .command_timeout_ms = command_timeout_ms,
	    .pool_size = pool_size,
	    .backoff_min_ms = 50,
	    .backoff_max_ms = 400,
	    .ping_interval_ms = 200,
	};
	struct ab_redis *r = NULL;
	cr_assert_eq(ab_redis_new(&o, &r), 0);
	return r;
}

/* ---- HTTP server ---- */

struct tu_http_server {
	int fd;
	int port;
	enum tu_http_mode mode;
	atomic_bool stop;
	pthread_t th;
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* One response with "Connection: close"; without Content-Length the body
 * ends when the connection does. */
static void respond(int fd, int status, const char *body, size_t len, bool with_len)
{
	char head[256];
	int hl;
	if (with_len)
		hl = snprintf(head, sizeof(head),
		              "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		              status, len);
	else
		hl = snprintf(
		    head, sizeof(head),
		    "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
		    status);
	write_all(fd, head, (size_t)hl);
	write_all(fd, body, len);
}

/* Reads one request and answers it by path (the table in testutil.h). */
static void *canned_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct ab_buf b = {0};
	char tmp[4096];
	ssize_t got;
	char *hend = NULL;

	while (!(hend = b.data ? strstr(b.data, "\r\n\r\n") : NULL)) {
		got = recv(fd, tmp, sizeof(tmp), 0);
		if (got <= 0)
			goto out;
		ab_buf_append(&b, tmp, (size_t)got);
	}
	size_t hlen = (size_t)(hend - b.data) + 4;
	size_t clen = 0;
	char *cl = strcasestr(b.data, "\r\ncontent-length:");
	if (cl && cl < hend)
		clen = (size_t)strtoul(cl + 17, NULL, 10);
	while (b.len < hlen + clen) {
		got = recv(fd, tmp, sizeof(tmp), 0);
		if (got <= 0)
			goto out;
		ab_buf_append(&b, tmp, (size_t)got);
	}
	char method[16] = "", path[256] = "";
	sscanf(b.data, "%15s %255s", method, path);
	if (!strcmp(path, "/hello")) {
		respond(fd, 200, "hello", 5, true);
	} else if (!strcmp(path, "/health")) {
		const char *j = "{\"status\":\"ok\"}";
		respond(fd, 200, j, strlen(j), true);
	} else if (!strcmp(path, "/echo")) {
		char xt[64] = "-";
		char *h = strcasestr(b.data, "\r\nx-test:");
		if (h && h < hend)
			sscanf(h + 9, " %63[^\r]", xt);
		char *out = ab_xasprintf("%s %s %.*s", method, xt, (int)clen, b.data + hlen);
		respond(fd, 200, out, strlen(out), true);
		free(out);
	} else if (!strcmp(path, "/big") || !strcmp(path, "/bigstream")) {
		size_t n = 100000;
		char *big = ab_xmalloc(n);
		memset(big, 'x', n);
		respond(fd, 200, big, n, !strcmp(path, "/big"));
		free(big);
	} else if (!strcmp(path, "/status/503")) {
		respond(fd, 503, "{}", 2, true);
	} else {
		respond(fd, 404, "{}", 2, true);
	}
out:
	ab_buf_free(&b);
	close(fd);
	return NULL;
}

/* Reads and discards until the client closes; never answers. */
static void *blackhole_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char tmp[1024];
	while (recv(fd, tmp, sizeof(tmp), 0) > 0)
		;
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct tu_http_server *s = arg;
	void *(*conn_main)(void *) = s->mode == TU_HTTP_BLACKHOLE ? blackhole_main : canned_main;
	while (!atomic_load(&s->stop)) {
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		pthread_t t;
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
	return NULL;
}

struct tu_http_server *tu_http_start(enum tu_http_mode mode)
{
	struct tu_http_server *s = ab_xcalloc(1, sizeof(*s));
	s->mode = mode;
	s->fd = bind_loopback(SOCK_STREAM | SOCK_CLOEXEC, &s->port);
	cr_assert(listen(s->fd, 256) == 0);
	cr_assert(pthread_create(&s->th, NULL, accept_main, s) == 0);
	return s;
}

int tu_http_port(const struct tu_http_server *s)
{
	return s->port;
}

void tu_http_stop(struct tu_http_server *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
	pthread_join(s->th, NULL);
	close(s->fd);
	free(s);
}
