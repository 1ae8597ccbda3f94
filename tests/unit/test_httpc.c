/*
 * test_httpc.c - tests of the curl-multi HTTP client against the tiny
 * threaded HTTP server of testutil.c.
 *
 * The server accepts on 127.0.0.1 and hands each connection to a
 * detached thread that reads one request and answers by path (/hello,
 * /echo, /big, /bigstream, /status/503; see testutil.h). A second server
 * in "black hole" mode accepts connections and reads forever without
 * answering, which is what a hung service looks like to a client.
 * Connection threads exit when the client closes its end.
 */
#include "common.h"
#include "httpc.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	struct tu_http_server *s = tu_http_start(TU_HTTP_CANNED);
	char *url = ab_xasprintf("http://127.0.0.1:%d/hello", tu_http_port(s));
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
	tu_http_stop(s);
}

Test(httpc, fifty_concurrent)
{
	struct tu_http_server *s = tu_http_start(TU_HTTP_CANNED);
	enum { N = 50 };
	struct ab_httpc_req q[N];
	char *urls[N];

	memset(q, 0, sizeof(q));
	for (int i = 0; i < N; i++) {
		urls[i] = ab_xasprintf("http://127.0.0.1:%d/%s", tu_http_port(s),
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
	tu_http_stop(s);
}

Test(httpc, blackhole_times_out_alone)
{
	struct tu_http_server *good = tu_http_start(TU_HTTP_CANNED);
	struct tu_http_server *hole = tu_http_start(TU_HTTP_BLACKHOLE);
	enum { N = 10 };
	struct ab_httpc_req q[N];
	char *urls[N];

	memset(q, 0, sizeof(q));
	for (int i = 0; i < N; i++) {
		int port = tu_http_port(i == 0 ? hole : good);
		urls[i] = ab_xasprintf("http://127.0.0.1:%d/hello", port);
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
	tu_http_stop(good);
	tu_http_stop(hole);
}

Test(httpc, many_blackholes_cost_one_timeout)
{
	struct tu_http_server *hole = tu_http_start(TU_HTTP_BLACKHOLE);
	enum { N = 20, T = 300 };
	struct ab_httpc_req q[N];
	char *url = ab_xasprintf("http://127.0.0.1:%d/x", tu_http_port(hole));

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
	tu_http_stop(hole);
}

Test(httpc, connection_refused)
{
	char *url = ab_xasprintf("http://127.0.0.1:%d/", tu_free_port());
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
	struct tu_http_server *s = tu_http_start(TU_HTTP_CANNED);
	char *u1 = ab_xasprintf("http://127.0.0.1:%d/big", tu_http_port(s));
	char *u2 = ab_xasprintf("http://127.0.0.1:%d/bigstream", tu_http_port(s));
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
	tu_http_stop(s);
}

Test(httpc, post_body_and_headers)
{
	struct tu_http_server *s = tu_http_start(TU_HTTP_CANNED);
	char *url = ab_xasprintf("http://127.0.0.1:%d/echo", tu_http_port(s));
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
	tu_http_stop(s);
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
