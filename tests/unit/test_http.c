/*
 * test_http.c - the HTTP server over the wire: a real server on
 * 127.0.0.1 port 0 with a small route table, driven by libcurl easy
 * handles, and raw sockets (tu_connect in testutil.c) where curl cannot
 * produce the case (hundreds of idle streams, a client that vanishes
 * mid-stream). Covers the whole middleware chain (ids, allowlist, header
 * and body limits, CORS, routing, auth, JSON), the generated documents,
 * metrics and streaming.
 * No timing assertions beyond "answers within a few seconds".
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "testutil.h"

/* --- the server under test ----------------------------------------------- */

static struct ab_http_server *srv;
static int port;

static void h_health(struct ab_http_req *req)
{
	ab_http_reply_json(req, 200, "{\"ok\":true}", 11);
}

static void h_level(struct ab_http_req *req)
{
	json_t *j = json_pack("{s:s}", "level", ab_access_name(req->level));
	ab_http_reply_jansson(req, 200, j);
	json_decref(j);
}

static void h_echo(struct ab_http_req *req)
{
	ab_http_reply_jansson(req, 200, req->json);
}

static void h_upload(struct ab_http_req *req)
{
	ab_http_reply_error(req, 200, "ok", "got %zu bytes", req->body_len);
}

static void h_thing(struct ab_http_req *req)
{
	const char *q = ab_http_query(req, "q");
	json_t *j = json_pack("{s:s, s:s?}", "id", ab_http_param(req, "id"), "q", q);
	ab_http_add_header(req, "X-Thing", "yes");
	ab_http_reply_jansson(req, 200, j);
	json_decref(j);
}

static void h_noreply(struct ab_http_req *req)
{
	(void)req;
}

static void *events_producer(void *arg)
{
	struct ab_http_stream *s = arg;
	for (int i = 0; i < 5; i++) {
		usleep(20000);
		if (ab_http_stream_printf(s, "data: %d\n\n", i) != 0)
			break;
	}
	ab_http_stream_close(s);
	return NULL;
}

static void h_events(struct ab_http_req *req)
{
	struct ab_http_stream *s = ab_http_reply_stream(req, 200, "text/event-stream");
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, events_producer, s), 0);
	pthread_detach(t);
}

/* Streams kept by the tests: idle ones and the one a client abandons. */
#define MAX_HELD 256
static struct ab_http_stream *held[MAX_HELD];
static atomic_int n_held;

static void h_hold(struct ab_http_req *req)
{
	struct ab_http_stream *s = ab_http_reply_stream(req, 200, "text/event-stream");
	int i = atomic_fetch_add(&n_held, 1);
	if (i < MAX_HELD)
		held[i] = s;
	else
		ab_http_stream_close(s);
}

static const struct ab_route routes[] = {
	{"GET", "/api/health", h_health, AB_ACCESS_PUBLIC, 0, "liveness"},
	{"GET", "/api/view", h_level, AB_ACCESS_VIEWER, 0, "caller level"},
	{"POST", "/api/admin", h_level, AB_ACCESS_ADMIN, 0, "admin only"},
	{"POST", "/api/echo", h_echo, AB_ACCESS_USER, AB_ROUTE_JSON_BODY, "echo json"},
	{"POST", "/api/upload", h_upload, AB_ACCESS_PUBLIC, 0, "count bytes"},
	{"GET", "/api/things/{id}", h_thing, AB_ACCESS_PUBLIC, 0, "one thing"},
	{"GET", "/api/events", h_events, AB_ACCESS_PUBLIC, AB_ROUTE_STREAM, "five events"},
	{"GET", "/api/hold", h_hold, AB_ACCESS_PUBLIC, AB_ROUTE_STREAM, "idle stream"},
	{"GET", "/api/noreply", h_noreply, AB_ACCESS_PUBLIC, 0, "buggy"},
	{"GET", "/api/secret", h_health, AB_ACCESS_PUBLIC, AB_ROUTE_HIDDEN, "hidden"},
};

static int auth(void *ud, const char *token, enum ab_access *level)
{
	(void)ud;
	if (strcmp(token, "admin-token") == 0)
		*level = AB_ACCESS_ADMIN;
	else if (strcmp(token, "user-token") == 0)
		*level = AB_ACCESS_USER;
	else if (strcmp(token, "viewer-token") == 0)
		*level = AB_ACCESS_VIEWER;
	else if (strcmp(token, "store-down") == 0)
		return AB_EUNAVAIL;
	else
		return AB_EAUTH;
	return 0;
}

static char *cors[] = {"http://ok.example:5173"};

static struct ab_http_opts base_opts(void)
{
	struct ab_http_opts o = {0};
	o.bind_host = "127.0.0.1";
	o.routes = routes;
	o.n_routes = AB_ARRAY_LEN(routes);
	o.cors_origins = cors;
	o.n_cors = 1;
	o.threads = 2;
	o.auth = auth;
	o.title = "Test API";
	o.version = "9.9.9";
	return o;
}

static void start_with(struct ab_http_opts o)
{
	ab_log_init("test", AB_LOG_WARN, false);
	atomic_store(&n_held, 0);
	int rc = ab_http_server_start(&o, &srv);
	cr_assert_eq(rc, 0, "start: %s", ab_strerror(rc));
	port = ab_http_server_port(srv);
	cr_assert(port > 0);
}

static void setup(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	start_with(base_opts());
}

static void teardown(void)
{
	ab_http_server_free(srv);
	srv = NULL;
	/* streams survive the server: writes fail, close releases */
	int n = atomic_load(&n_held);
	for (int i = 0; i < n && i < MAX_HELD; i++) {
		cr_expect_eq(ab_http_stream_write(held[i], "x", 1), AB_ECLOSED);
		ab_http_stream_close(held[i]);
	}
	atomic_store(&n_held, 0);
}

/* --- a tiny curl client -------------------------------------------------- */

struct resp {
	long status;
	struct ab_buf body;
	struct ab_buf hdrs;
	CURLcode cc;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	ab_buf_append(ud, p, sz * n);
	return sz * n;
}

struct upload {
	long long left;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
	struct upload *u = ud;
	size_t k = sz * n;
	if ((long long)k > u->left)
		k = (size_t)u->left;
	memset(buf, 'a', k);
	u->left -= (long long)k;
	return k;
}

struct reqspec {
	const char *method;
	const char *path;
	const char *token;
	const char *body;
	const char *hdr[4];
	long long upload;     /* bytes from on_read; -1 none */
	bool chunked;
	const char *iface;
};

static void do_req(const struct reqspec *rs, struct resp *r)
{
	memset(r, 0, sizeof(*r));
	CURL *c = curl_easy_init();
	char url[4096];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, rs->path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdrs);
	if (rs->iface)
		curl_easy_setopt(c, CURLOPT_INTERFACE, rs->iface);
	struct curl_slist *hl = NULL;
	char authz[256];
	if (rs->token) {
		snprintf(authz, sizeof(authz), "Authorization: Bearer %s", rs->token);
		hl = curl_slist_append(hl, authz);
	}
	for (int i = 0; i < 4 && rs->hdr[i]; i++)
		hl = curl_slist_append(hl, rs->hdr[i]);
	struct upload up = {rs->upload};
	if (rs->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rs->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(rs->body));
	} else if (rs->upload > 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
		if (rs->chunked)
			hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
		else
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)rs->upload);
	}
	if (rs->method && strcmp(rs->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (rs->method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rs->method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	r->cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	if (!r->body.data)
		ab_buf_puts(&r->body, "");
	if (!r->hdrs.data)
		ab_buf_puts(&r->hdrs, "");
}

static void resp_free(struct resp *r)
{
	ab_buf_free(&r->body);
	ab_buf_free(&r->hdrs);
}

/* Value of the last header called name (copied into out), or NULL. */
static const char *header(const struct resp *r, const char *name, char *out, size_t size)
{
	const char *found = NULL;
	size_t nl = strlen(name);
	for (const char *p = r->hdrs.data; p && *p;) {
		const char *e = strstr(p, "\r\n");
		size_t ll = e ? (size_t)(e - p) : strlen(p);
		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = ll - (size_t)(v - p);
			if (vl >= size)
				vl = size - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			found = out;
		}
		p = e ? e + 2 : p + ll;
	}
	return found;
}

static void expect_error(const struct resp *r, long status, const char *code)
{
	cr_assert_eq(r->status, status, "status %ld, want %ld; body %s", r->status, status,
		     r->body.data);
	json_error_t err;
	json_t *j = json_loads(r->body.data, 0, &err);
	cr_assert(j, "error body is not JSON: %s", r->body.data);
	const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	const char *m =
		json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	cr_assert(c && m, "error shape wrong: %s", r->body.data);
	cr_assert_str_eq(c, code);
	json_decref(j);
	char ct[128];
	cr_assert(header(r, "Content-Type", ct, sizeof(ct)));
	cr_assert_str_eq(ct, "application/json");
	cr_assert(header(r, "X-Request-Id", ct, sizeof(ct)), "no request id on error");
}

static long get(const char *path, const char *token, struct resp *r)
{
	struct reqspec rs = {.path = path, .token = token};
	do_req(&rs, r);
	return r->status;
}

/* --- basic routing and auth ---------------------------------------------- */

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

Test(http, public_get)
{
	struct resp r;
	cr_assert_eq(get("/api/health", NULL, &r), 200);
	cr_assert_str_eq(r.body.data, "{\"ok\":true}");
	char v[128];
	cr_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "application/json");
	resp_free(&r);
}

Test(http, head_as_get)
{
	struct resp r;
	struct reqspec rs = {.method = "HEAD", .path = "/api/health"};
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
}

Test(http, param_and_query)
{
	struct resp r;
	cr_assert_eq(get("/api/things/a%2Fb?q=x%20y", NULL, &r), 200);
	json_t *j = json_loads(r.body.data, 0, NULL);
	cr_assert(j);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "a/b");
	cr_assert_str_eq(json_string_value(json_object_get(j, "q")), "x y");
	json_decref(j);
	char v[64];
	cr_assert_str_eq(header(&r, "X-Thing", v, sizeof(v)), "yes");
	resp_free(&r);

	cr_assert_eq(get("/api/things/%zz", NULL, &r), 400);
	expect_error(&r, 400, "bad_request");
	resp_free(&r);
}

Test(http, not_found_and_method)
{
	struct resp r;
	get("/api/nope", NULL, &r);
	expect_error(&r, 404, "not_found");
	resp_free(&r);
	get("/api/health/", NULL, &r);
	expect_error(&r, 404, "not_found");
	resp_free(&r);

	struct reqspec rs = {.method = "DELETE", .path = "/api/health"};
	do_req(&rs, &r);
	expect_error(&r, 405, "method_not_allowed");
	char v[64];
	cr_assert_str_eq(header(&r, "Allow", v, sizeof(v)), "GET");
	resp_free(&r);
}

Test(http, auth_levels)
{
	struct resp r;
	char v[64];
	get("/api/view", NULL, &r);
	expect_error(&r, 401, "unauthorized");
	cr_assert_str_eq(header(&r, "WWW-Authenticate", v, sizeof(v)), "Bearer");
	resp_free(&r);

	get("/api/view", "wrong-token", &r);
	expect_error(&r, 401, "unauthorized");
	resp_free(&r);

	get("/api/view", "store-down", &r);
	expect_error(&r, 503, "unavailable");
	resp_free(&r);

	cr_assert_eq(get("/api/view", "viewer-token", &r), 200);
	cr_assert(strstr(r.body.data, "\"viewer\""));
	resp_free(&r);

	struct reqspec rs = {.method = "POST", .path = "/api/admin", .token = "viewer-token",
			     .body = ""};
	do_req(&rs, &r);
	expect_error(&r, 403, "forbidden");
	resp_free(&r);

	rs.token = "admin-token";
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body.data, "\"admin\""));
	resp_free(&r);
}

Test(http, handler_without_reply)
{
	struct resp r;
	get("/api/noreply", NULL, &r);
	expect_error(&r, 500, "internal");
	resp_free(&r);
}

Test(http, keep_alive)
{
	CURL *c = curl_easy_init();
	struct ab_buf b = {0};
	char url[128];
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	const char *paths[] = {"/api/health", "/api/nope", "/api/view", "/api/health"};
	for (size_t i = 0; i < AB_ARRAY_LEN(paths); i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, paths[i]);
		curl_easy_setopt(c, CURLOPT_URL, url);
		cr_assert_eq(curl_easy_perform(c), CURLE_OK);
		long conns = -1;
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
		if (i > 0)
			cr_assert_eq(conns, 0, "request %zu (%s) opened a new connection", i,
				     paths[i]);
	}
	curl_easy_cleanup(c);
	ab_buf_free(&b);
}

/* --- bodies -------------------------------------------------------------- */

Test(http, json_body)
{
	struct resp r;
	struct reqspec rs = {.method = "POST", .path = "/api/echo", .token = "user-token",
			     .body = "{\"a\": [1, 2]}",
			     .hdr = {"Content-Type: application/json"}};
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200, "%s", r.body.data);
	cr_assert_str_eq(r.body.data, "{\"a\":[1,2]}");
	resp_free(&r);

	rs.body = "{\"a\": \n [1, 2";
	do_req(&rs, &r);
	expect_error(&r, 400, "bad_json");
	cr_assert(strstr(r.body.data, "line 2"), "%s", r.body.data);
	resp_free(&r);

	rs.body = "";
	do_req(&rs, &r);
	expect_error(&r, 400, "bad_json");
	resp_free(&r);

	/* auth comes before the body: no token, broken JSON -> 401 */
	rs.token = NULL;
	rs.body = "{";
	do_req(&rs, &r);
	expect_error(&r, 401, "unauthorized");
	resp_free(&r);
}

Test(http, upload_within_limit)
{
	struct resp r;
	struct reqspec rs = {.path = "/api/upload", .upload = 100000};
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body.data, "got 100000 bytes"), "%s", r.body.data);
	resp_free(&r);
	rs.chunked = true;
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body.data, "got 100000 bytes"), "%s", r.body.data);
	resp_free(&r);
}

Test(http, body_too_large_content_length)
{
	struct resp r;
	struct reqspec rs = {.path = "/api/upload", .upload = 10LL * 1024 * 1024};
	do_req(&rs, &r);
	expect_error(&r, 413, "payload_too_large");
	resp_free(&r);
}

Test(http, body_too_large_chunked)
{
	struct resp r;
	struct reqspec rs = {.path = "/api/upload", .upload = 3LL * 1024 * 1024,
			     .chunked = true};
	do_req(&rs, &r);
	expect_error(&r, 413, "payload_too_large");
	resp_free(&r);
	/* the server is still fine afterwards */
	cr_assert_eq(get("/api/health", NULL, &r), 200);
	resp_free(&r);
}

Test(http, headers_too_large)
{
	struct resp r;
	size_t n = 32 * 1024;
	char *big = malloc(n + 16);
	memcpy(big, "X-Big: ", 7);
	memset(big + 7, 'b', n);
	big[7 + n] = '\0';
	struct reqspec rs = {.path = "/api/health", .hdr = {big}};
	do_req(&rs, &r);
	expect_error(&r, 431, "headers_too_large");
	resp_free(&r);
	free(big);
}

/* --- request ids and CORS ------------------------------------------------ */

static bool is_hex16(const char *s)
{
	if (strlen(s) != 16)
		return false;
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return false;
	return true;
}

Test(http, request_id)
{
	struct resp r;
	char v[128];
	struct reqspec rs = {.path = "/api/health", .hdr = {"X-Request-Id: abc-123_x.y"}};
	do_req(&rs, &r);
	cr_assert_str_eq(header(&r, "X-Request-Id", v, sizeof(v)), "abc-123_x.y");
	resp_free(&r);

	rs.hdr[0] = "X-Request-Id: bad id!";
	do_req(&rs, &r);
	cr_assert(is_hex16(header(&r, "X-Request-Id", v, sizeof(v))), "%s", v);
	resp_free(&r);

	rs.hdr[0] = "X-Request-Id: "
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* 65 */
	do_req(&rs, &r);
	cr_assert(is_hex16(header(&r, "X-Request-Id", v, sizeof(v))), "%s", v);
	resp_free(&r);

	char a[32];
	get("/api/nope", NULL, &r);
	cr_assert(is_hex16(header(&r, "X-Request-Id", a, sizeof(a))));
	resp_free(&r);
	get("/api/nope", NULL, &r);
	cr_assert(is_hex16(header(&r, "X-Request-Id", v, sizeof(v))));
	cr_assert_str_neq(a, v);
	resp_free(&r);
}

Test(http, cors)
{
	struct resp r;
	char v[128];
	struct reqspec rs = {.path = "/api/health", .hdr = {"Origin: http://ok.example:5173"}};
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(header(&r, "Access-Control-Allow-Origin", v, sizeof(v)),
			 "http://ok.example:5173");
	cr_assert_str_eq(header(&r, "Vary", v, sizeof(v)), "Origin");
	cr_assert_str_eq(header(&r, "Access-Control-Allow-Credentials", v, sizeof(v)),
			 "true");
	resp_free(&r);

	rs.hdr[0] = "Origin: http://evil.example";
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_null(header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
	resp_free(&r);

	/* preflight comes before auth */
	struct reqspec pf = {.method = "OPTIONS", .path = "/api/echo",
			     .hdr = {"Origin: http://ok.example:5173",
				     "Access-Control-Request-Method: POST",
				     "Access-Control-Request-Headers: authorization"}};
	do_req(&pf, &r);
	cr_assert_eq(r.status, 204);
	cr_assert_str_eq(header(&r, "Access-Control-Allow-Origin", v, sizeof(v)),
			 "http://ok.example:5173");
	cr_assert(strstr(header(&r, "Access-Control-Allow-Methods", v, sizeof(v)), "POST"));
	cr_assert(strstr(header(&r, "Access-Control-Allow-Headers", v, sizeof(v)),
			 "Authorization"));
	cr_assert(header(&r, "Access-Control-Max-Age", v, sizeof(v)));
	resp_free(&r);

	pf.hdr[0] = "Origin: http://evil.example";
	do_req(&pf, &r);
	expect_error(&r, 403, "forbidden");
	cr_assert_null(header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
	resp_free(&r);
}

/* --- generated documents and metrics ------------------------------------- */

Test(http, openapi)
{
	struct resp r;
	cr_assert_eq(get("/api/openapi.json", NULL, &r), 200);
	json_error_t err;
	json_t *j = json_loads(r.body.data, 0, &err);
	cr_assert(j, "openapi does not parse: %s", err.text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "openapi")), "3.1.0");
	cr_assert_str_eq(
		json_string_value(json_object_get(json_object_get(j, "info"), "title")),
		"Test API");
	json_t *paths = json_object_get(j, "paths");
	cr_assert(json_object_get(paths, "/api/health"));
	cr_assert(json_object_get(paths, "/metrics"));
	cr_assert(json_object_get(paths, "/docs"));
	cr_assert_null(json_object_get(paths, "/api/secret"));
	json_t *thing = json_object_get(json_object_get(paths, "/api/things/{id}"), "get");
	cr_assert(thing);
	json_t *p0 = json_array_get(json_object_get(thing, "parameters"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(p0, "name")), "id");
	cr_assert_str_eq(json_string_value(json_object_get(p0, "in")), "path");
	json_t *echo = json_object_get(json_object_get(paths, "/api/echo"), "post");
	cr_assert(json_object_get(echo, "requestBody"));
	cr_assert(json_object_get(echo, "security"));
	cr_assert_str_eq(json_string_value(json_object_get(echo, "x-autobot-access")), "user");
	json_t *ev = json_object_get(json_object_get(paths, "/api/events"), "get");
	json_t *content = json_object_get(
		json_object_get(json_object_get(ev, "responses"), "200"), "content");
	cr_assert(json_object_get(content, "text/event-stream"));
	cr_assert(json_object_get(
		json_object_get(json_object_get(j, "components"), "securitySchemes"),
		"bearer"));
	json_decref(j);
	resp_free(&r);
}

Test(http, docs)
{
	struct resp r;
	cr_assert_eq(get("/docs", NULL, &r), 200);
	char v[128];
	cr_assert(strncmp(header(&r, "Content-Type", v, sizeof(v)), "text/html", 9) == 0);
	cr_assert(strstr(r.body.data, "<table"));
	cr_assert(strstr(r.body.data, "/api/things/{id}"));
	cr_assert(strstr(r.body.data, "admin only"));
	cr_assert_null(strstr(r.body.data, "/api/secret"));
	resp_free(&r);
}

Test(http, metrics)
{
	struct resp r;
	for (int i = 0; i < 3; i++) {
		get("/api/health", NULL, &r);
		resp_free(&r);
	}
	get("/api/nope", NULL, &r);
	resp_free(&r);
	get("/metrics", NULL, &r);
	expect_error(&r, 401, "unauthorized");
	resp_free(&r);
	cr_assert_eq(get("/metrics", "viewer-token", &r), 200);
	cr_assert(strstr(r.body.data,
			 "autobot_http_requests_total{route=\"GET /api/health\",code=\"2xx\"} 3"),
		  "%s", r.body.data);
	cr_assert(strstr(r.body.data,
			 "autobot_http_requests_total{route=\"unmatched\",code=\"4xx\"} 2"),
		  "%s", r.body.data);
	cr_assert(strstr(r.body.data, "autobot_http_request_duration_ms_bucket{route=\"GET "
				      "/api/health\",le=\"+Inf\"} 3"));
	cr_assert(strstr(r.body.data, "autobot_http_open_streams 0"));
	resp_free(&r);
}

/* --- streaming ----------------------------------------------------------- */

Test(http, stream_delivers_in_order)
{
	struct resp r;
	cr_assert_eq(get("/api/events", NULL, &r), 200);
	cr_assert_eq(r.cc, CURLE_OK);
	cr_assert_str_eq(r.body.data,
			 "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
	char v[64];
	cr_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "text/event-stream");
	resp_free(&r);
	/* the finished stream is no longer open */
	for (int i = 0; i < 200 && ab_http_server_open_streams(srv) > 0; i++)
		usleep(10000);
	cr_assert_eq(ab_http_server_open_streams(srv), 0);
}

static bool wait_streams(size_t n)
{
	for (int i = 0; i < 500; i++) {
		if (ab_http_server_open_streams(srv) == n)
			return true;
		usleep(10000);
	}
	return false;
}

Test(http, many_idle_streams_do_not_block)
{
	enum { NSTREAMS = 200 };
	static int fds[NSTREAMS];
	for (int i = 0; i < NSTREAMS; i++) {
		fds[i] = tu_connect(port);
		tu_send_str(fds[i], "GET /api/hold HTTP/1.1\r\nHost: t\r\n\r\n");
	}
	cr_assert(wait_streams(NSTREAMS), "open streams %zu",
		  ab_http_server_open_streams(srv));
	/* two worker threads, two hundred waiting streams: still answers */
	struct resp r;
	cr_assert_eq(get("/api/health", NULL, &r), 200);
	resp_free(&r);
	/* and a write to one of them reaches its client */
	cr_assert_eq(atomic_load(&n_held), NSTREAMS);
	char buf[4096];
	ssize_t got = read(fds[0], buf, sizeof(buf) - 1); /* the headers */
	cr_assert(got > 0);
	int idx = -1;
	/* held[] order is not connection order; write to all, read one */
	for (int i = 0; i < NSTREAMS; i++)
		cr_assert_eq(ab_http_stream_write(held[i], "data: hi\n\n", 10), 0);
	buf[got] = '\0';
	if (!strstr(buf, "data: hi")) {
		got = read(fds[0], buf, sizeof(buf) - 1);
		cr_assert(got > 0);
		buf[got] = '\0';
	}
	cr_assert(strstr(buf, "data: hi"), "%s", buf);
	(void)idx;
	for (int i = 0; i < NSTREAMS; i++)
		close(fds[i]);
	/* teardown frees the server with these streams still held */
}

Test(http, client_disconnect_closes_stream)
{
	int fd = tu_connect(port);
	tu_send_str(fd, "GET /api/hold HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert(wait_streams(1));
	struct ab_http_stream *s = held[0];
	cr_assert_eq(ab_http_stream_write(s, "data: 1\n\n", 9), 0);
	char buf[2048];
	cr_assert(read(fd, buf, sizeof(buf)) > 0);
	close(fd);
	int rc = 0;
	for (int i = 0; i < 250 && rc == 0; i++) {
		usleep(20000);
		rc = ab_http_stream_write(s, "data: more\n\n", 12);
	}
	cr_assert_eq(rc, AB_ECLOSED);
	cr_assert(ab_http_stream_closed(s));
	cr_assert(wait_streams(0));
}

Test(http, stream_queue_limit)
{
	int fd = tu_connect(port);
	tu_send_str(fd, "GET /api/hold HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert(wait_streams(1));
	struct ab_http_stream *s = held[0];
	char *chunk = calloc(1, 1024 * 1024);
	int rc = 0;
	for (int i = 0; i < 64 && rc == 0; i++) /* the client reads nothing */
		rc = ab_http_stream_write(s, chunk, 1024 * 1024);
	cr_assert_eq(rc, AB_ETOOBIG);
	free(chunk);
	close(fd);
}

/* --- allowlist and startup errors ---------------------------------------- */

Test(http_allow, peer_allowlist, .timeout = 30)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	static struct ab_cidr allow[1];
	cr_assert_eq(ab_cidr_parse("127.0.0.1/32", &allow[0]), 0);
	struct ab_http_opts o = base_opts();
	o.allow = allow;
	o.n_allow = 1;
	start_with(o);
	struct resp r;
	struct reqspec rs = {.path = "/api/health", .iface = "host!127.0.0.1"};
	do_req(&rs, &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	rs.iface = "host!127.0.0.2";
	do_req(&rs, &r);
	expect_error(&r, 403, "forbidden");
	resp_free(&r);
	ab_http_server_free(srv);
	srv = NULL;
}

Test(http_start, errors)
{
	ab_log_init("test", AB_LOG_OFF, false);
	struct ab_http_opts o = base_opts();
	struct ab_http_server *a = NULL, *b = NULL;
	cr_assert_eq(ab_http_server_start(&o, &a), 0);
	o.port = ab_http_server_port(a);
	cr_assert_eq(ab_http_server_start(&o, &b), -EADDRINUSE);
	cr_assert_null(b);
	o.port = 0;
	o.bind_host = "not-an-address";
	cr_assert_lt(ab_http_server_start(&o, &b), 0);
	o.bind_host = "::1";
	int rc = ab_http_server_start(&o, &b);
	if (rc == 0) { /* IPv6 loopback may be missing in a container */
		cr_assert(ab_http_server_port(b) > 0);
		ab_http_server_free(b);
	}
	ab_http_server_free(a);
	ab_http_server_free(NULL);
}
