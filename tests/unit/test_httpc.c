/*
 * test_httpc.c - tests of the curl-multi HTTP client against a tiny HTTP
 * server that lives in this file.
 *
 * The server is a thread accepting on 127.0.0.1:0 and handing each
 * connection to a detached thread that reads one request and answers by
 * path (/hello, /echo, /big, /bigstream, /status/503). A second server
 * in "black hole" mode accepts connections and reads forever without
 * answering, which is what a hung service looks like to a client.
 * Connection threads exit when the client closes its end.
 */
#include "common.h"
#include "httpc.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct tsrv {
	int fd;
	int port;
	bool blackhole;
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

static void *conn_main(void *arg)
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
		/* "<METHOD> <X-Test header or -> <body>" */
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
	struct tsrv *s = arg;
	while (!atomic_load(&s->stop)) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		pthread_t t;
		if (pthread_create(&t, NULL, s->blackhole ? blackhole_main : conn_main,
		                   (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
	return NULL;
}

static struct tsrv *tsrv_start(bool blackhole)
{
	struct tsrv *s = ab_xcalloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	s->blackhole = blackhole;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(s->fd >= 0);
	cr_assert(bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(listen(s->fd, 256) == 0);
	cr_assert(getsockname(s->fd, (struct sockaddr *)&a, &al) == 0);
	s->port = ntohs(a.sin_port);
	cr_assert(pthread_create(&s->th, NULL, accept_main, s) == 0);
	return s;
}

static void tsrv_stop(struct tsrv *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
	pthread_join(s->th, NULL);
	close(s->fd);
	free(s);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	return ntohs(a.sin_port);
}

static void setup(void)
{
	ab_httpc_global_init();
}

static void teardown(void)
{
	ab_httpc_global_cleanup();
}

TestSuite(httpc, .init = setup, .fini = teardown, .timeout = 60);

Test(httpc, simple_get)
{
	struct tsrv *s = tsrv_start(false);
	char *url = ab_xasprintf("http://127.0.0.1:%d/hello", s->port);
	struct ab_httpc_req q = {.url = url, .timeout_ms = 2000};

	cr_assert_eq(ab_httpc_run(&q, 1), 0);
	cr_assert_eq(q.err, 0, "err %d %s", q.err, q.errstr);
	cr_assert_eq(q.status, 200);
	cr_assert_str_eq(q.resp, "hello");
	cr_assert_eq(q.resp_len, 5);
	cr_assert(q.elapsed_ms >= 0 && q.elapsed_ms < 1000);
	ab_httpc_req_clear(&q);
	ab_httpc_req_clear(&q); /* twice is fine */
	free(url);
	tsrv_stop(s);
}

Test(httpc, fifty_concurrent)
{
	struct tsrv *s = tsrv_start(false);
	enum { N = 50 };
	struct ab_httpc_req q[N];
	char *urls[N];

	memset(q, 0, sizeof(q));
	for (int i = 0; i < N; i++) {
		urls[i] = ab_xasprintf("http://127.0.0.1:%d/%s", s->port,
		                       i % 5 == 0 ? "status/503" : "hello");
		q[i].url = urls[i];
		q[i].timeout_ms = 5000;
	}
	cr_assert_eq(ab_httpc_run(q, N), 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(q[i].err, 0, "req %d: %s", i, q[i].errstr);
		if (i % 5 == 0) {
			cr_assert_eq(q[i].status, 503);
		} else {
			cr_assert_eq(q[i].status, 200);
			cr_assert_str_eq(q[i].resp, "hello");
		}
		ab_httpc_req_clear(&q[i]);
		free(urls[i]);
	}
	tsrv_stop(s);
}

Test(httpc, blackhole_times_out_alone)
{
	struct tsrv *good = tsrv_start(false);
	struct tsrv *hole = tsrv_start(true);
	enum { N = 10 };
	struct ab_httpc_req q[N];
	char *urls[N];

	memset(q, 0, sizeof(q));
	for (int i = 0; i < N; i++) {
		urls[i] =
		    ab_xasprintf("http://127.0.0.1:%d/hello", i == 0 ? hole->port : good->port);
		q[i].url = urls[i];
		q[i].timeout_ms = i == 0 ? 400 : 3000;
	}
	double t0 = ab_now_ms_f();
	cr_assert_eq(ab_httpc_run(q, N), 0);
	double total = ab_now_ms_f() - t0;

	cr_assert_eq(q[0].err, AB_ETIMEOUT);
	cr_assert_str_eq(q[0].errstr, "timeout after 400 ms");
	cr_assert(q[0].elapsed_ms >= 350 && q[0].elapsed_ms < 1200, "elapsed %.0f",
	          q[0].elapsed_ms);
	for (int i = 1; i < N; i++) {
		cr_assert_eq(q[i].err, 0, "req %d: %s", i, q[i].errstr);
		cr_assert_eq(q[i].status, 200);
		cr_assert(q[i].elapsed_ms < 300, "fast request took %.0f ms", q[i].elapsed_ms);
	}
	cr_assert(total < 1200, "batch took %.0f ms", total);
	for (int i = 0; i < N; i++) {
		ab_httpc_req_clear(&q[i]);
		free(urls[i]);
	}
	tsrv_stop(good);
	tsrv_stop(hole);
}

Test(httpc, many_blackholes_cost_one_timeout)
{
	struct tsrv *hole = tsrv_start(true);
	enum { N = 20, T = 300 };
	struct ab_httpc_req q[N];
	char *url = ab_xasprintf("http://127.0.0.1:%d/x", hole->port);

	memset(q, 0, sizeof(q));
	for (int i = 0; i < N; i++) {
		q[i].url = url;
		q[i].timeout_ms = T;
	}
	double t0 = ab_now_ms_f();
	cr_assert_eq(ab_httpc_run(q, N), 0);
	double total = ab_now_ms_f() - t0;
	for (int i = 0; i < N; i++)
		cr_assert_eq(q[i].err, AB_ETIMEOUT, "req %d: %d %s", i, q[i].err, q[i].errstr);
	cr_assert(total >= T - 20, "too fast: %.0f ms", total);
	cr_assert(total < 3 * T, "%d black holes of %d ms took %.0f ms (serial?)", N, T, total);
	free(url);
	tsrv_stop(hole);
}

Test(httpc, connection_refused)
{
	char *url = ab_xasprintf("http://127.0.0.1:%d/", free_port());
	struct ab_httpc_req q = {.url = url, .timeout_ms = 2000};
	double t0 = ab_now_ms_f();

	cr_assert_eq(ab_httpc_run(&q, 1), 0);
	cr_assert_eq(q.err, -ECONNREFUSED, "err %d %s", q.err, q.errstr);
	cr_assert_str_eq(q.errstr, "connection refused");
	cr_assert_eq(q.status, 0);
	cr_assert_null(q.resp);
	cr_assert(ab_now_ms_f() - t0 < 1000);
	free(url);
}

Test(httpc, oversized_body)
{
	struct tsrv *s = tsrv_start(false);
	char *u1 = ab_xasprintf("http://127.0.0.1:%d/big", s->port);
	char *u2 = ab_xasprintf("http://127.0.0.1:%d/bigstream", s->port);
	struct ab_httpc_req q[3] = {
	    {.url = u1, .timeout_ms = 3000, .max_response = 1000},
	    {.url = u2, .timeout_ms = 3000, .max_response = 1000},
	    {.url = u1, .timeout_ms = 3000, .max_response = 200000},
	};

	cr_assert_eq(ab_httpc_run(q, 3), 0);
	cr_assert_eq(q[0].err, AB_ETOOBIG, "%d %s", q[0].err, q[0].errstr);
	cr_assert_eq(q[1].err, AB_ETOOBIG, "%d %s", q[1].err, q[1].errstr);
	cr_assert_null(q[0].resp);
	cr_assert_eq(q[2].err, 0);
	cr_assert_eq(q[2].resp_len, 100000);
	for (int i = 0; i < 3; i++)
		ab_httpc_req_clear(&q[i]);
	free(u1);
	free(u2);
	tsrv_stop(s);
}

Test(httpc, post_body_and_headers)
{
	struct tsrv *s = tsrv_start(false);
	char *url = ab_xasprintf("http://127.0.0.1:%d/echo", s->port);
	const char *hdrs[] = {"X-Test: yes", "Content-Type: application/json", NULL};
	const char *body = "{\"a\":1}";
	struct ab_httpc_req q[3] = {
	    {.method = "POST",
	     .url = url,
	     .body = body,
	     .body_len = strlen(body),
	     .headers = hdrs,
	     .timeout_ms = 2000},
	    {.method = "PUT", .url = url, .body = "abc", .body_len = 3, .timeout_ms = 2000},
	    {.method = "POST", .url = url, .timeout_ms = 2000},
	};

	cr_assert_eq(ab_httpc_run(q, 3), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(q[i].err, 0, "req %d: %s", i, q[i].errstr);
	cr_assert_str_eq(q[0].resp, "POST yes {\"a\":1}");
	cr_assert_str_eq(q[1].resp, "PUT - abc");
	cr_assert_str_eq(q[2].resp, "POST - ");
	for (int i = 0; i < 3; i++)
		ab_httpc_req_clear(&q[i]);
	free(url);
	tsrv_stop(s);
}

Test(httpc, empty_batch_and_bad_url)
{
	cr_assert_eq(ab_httpc_run(NULL, 0), 0);
	struct ab_httpc_req q = {.url = "not a url at all", .timeout_ms = 500};
	cr_assert_eq(ab_httpc_run(&q, 1), 0);
	cr_assert_neq(q.err, 0);
	cr_assert_neq(q.errstr[0], '\0');
	ab_httpc_req_clear(&q);
}
