/*
 * http.c - the HTTP server of http.h on top of libmicrohttpd (MHD 0.9.75):
 * connection bookkeeping, the middleware chain, replies, metrics and
 * streaming.
 *
 * Threads. MHD runs opts->threads workers, each with its own epoll set
 * (MHD_USE_EPOLL_INTERNAL_THREAD + MHD_OPTION_THREAD_POOL_SIZE); a
 * connection stays on the worker that accepted it, and every callback for
 * it (access handler, content reader, completion) runs there. We open the
 * listening socket ourselves so that bind errors come back as -errno and
 * port 0 can be read with getsockname().
 *
 * Per-connection state. MHD_OPTION_NOTIFY_CONNECTION allocates one
 * struct conn per TCP connection; it holds the peer address (and the
 * allowlist verdict, decided once), and buffers that are reset, not
 * freed, between keep-alive requests, so a steady stream of small
 * requests allocates nothing of ours beyond the response MHD builds.
 * MHD_OPTION_URI_LOG_CALLBACK marks the start of each request: it copies
 * the raw request target (MHD later percent-decodes the path in place,
 * and the router must decode parameter values itself, after splitting, so
 * that "%2F" stays inside one segment) and hands the conn to the access
 * handler as its con_cls. MHD_OPTION_NOTIFY_COMPLETED writes the access
 * log line, counts the metrics and resets the request state.
 *
 * When to answer. MHD calls the access handler once with the headers,
 * then with each piece of body, then once more with nothing. A response
 * queued on the first call makes MHD close the connection afterwards
 * (it cannot know yet that no body follows), which would defeat
 * keep-alive; so bodyless requests run the whole chain on the second
 * call, and only requests that announce a body (Content-Length > 0 or
 * chunked) are judged on the first, where an early 401/403/413 saves
 * reading a body we would throw away. A chunked body that outgrows the
 * limit is drained (up to a bound, then the connection is dropped) and
 * answered 413 at its end: MHD 0.9.75 refuses a response queued in the
 * middle of an upload.
 *
 * The access log is one line per request at INFO (method, path, status,
 * bytes, milliseconds, peer), written on completion; successful
 * /health and /api/health probes log at DEBUG, because a line per probe
 * floods the log and the write costs a large share of a tiny request.
 * For streams, bytes is 0 and the duration covers the whole stream.
 *
 * Metrics are plain arrays of relaxed atomics indexed by route (plus one
 * "unmatched" slot for everything the middleware rejected), so the hot
 * path takes no lock.
 *
 * Streaming. ab_http_reply_stream() answers with a response built by
 * MHD_create_response_from_callback(MHD_SIZE_UNKNOWN): chunked encoding,
 * bytes pulled through reader() as the socket can take them. A stream has
 * two references, one for the connection (dropped in reader_free(), which
 * MHD calls when it destroys the response, i.e. after the connection is
 * done with it) and one for the producer (dropped by
 * ab_http_stream_close()). Bytes written by the producer go into a queue
 * under the stream's mutex. When reader() finds the queue empty and the
 * producer not finished it must neither return 0 (MHD would call it again
 * at once: a busy loop) nor block (that would pin a worker thread), so it
 * calls MHD_suspend_connection() and returns 0: microhttpd.h of 0.9.75
 * names the access handler and the content reader as the only safe
 * places to suspend from, and says returning 0 is meant to go with a
 * suspension. The suspended connection leaves the worker's event loop, so
 * a thousand idle streams cost no thread. The next write or the close
 * calls MHD_resume_connection(), which is thread-safe given MHD_USE_ITC
 * (implied by MHD_ALLOW_SUSPEND_RESUME): it wakes the worker through its
 * inter-thread channel and reader() runs again. The "suspended" flag is
 * read and changed only under the stream mutex, in the same critical
 * section as the suspend or resume call, so a write can never slip
 * between "queue looked empty" and "connection suspended" and be lost.
 * Lock order: server streams_mu, then stream mu, then MHD's own locks.
 *
 * A suspended connection does not notice the client leaving; the next
 * write resumes it, the send fails, MHD closes the connection and
 * reader_free() marks the stream closed, so a producer sees AB_ECLOSED
 * within a write or two of a disconnect. MHD forbids stopping a daemon
 * that still has suspended connections, so ab_http_server_free() first
 * marks every attached stream closed and resumes it (reader() then ends
 * it with an error), waits a bounded time for those connections to
 * finish, and only then stops MHD. Producers may keep their reference
 * past the server's life: the stream no longer points anywhere but
 * itself once reader_free() has run, and writes answer AB_ECLOSED.
 */
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_MAX_QUEUED (8u * 1024 * 1024)
#define N_BUCKETS 13
#define RID_MAX 64

static const double bucket_le[N_BUCKETS - 1] = {0.5, 1,   2,   5,    10,  25,
						 50,  100, 250, 500, 1000, 2500};

struct route_metrics {
	_Atomic uint64_t by_class[5]; /* 1xx .. 5xx */
	_Atomic uint64_t buckets[N_BUCKETS]; /* not cumulative; last is +Inf */
	_Atomic uint64_t sum_us;
	_Atomic uint64_t count;
};

struct ab_http_server {
	struct MHD_Daemon *daemon;
	struct ab_http_opts opts;
	struct ab_route *routes; /* the role's followed by the built-ins; owned */
	size_t n_routes;
	struct route_metrics *metrics; /* n_routes + 1, the last "unmatched" */
	char *openapi;                 /* cached documents, owned */
	size_t openapi_len;
	char *docs;
	size_t docs_len;
	int port;
	size_t mem_limit;
	pthread_mutex_t streams_mu;
	struct ab_http_stream *streams; /* attached to a live connection */
	_Atomic size_t open_streams;
};

struct ab_http_stream {
	pthread_mutex_t mu;
	atomic_int refs;
	struct ab_buf q; /* queued bytes, q.data[off..len) unsent */
	size_t off;
	bool finished;   /* producer closed */
	bool closed;     /* connection gone or server stopping */
	bool suspended;  /* we suspended the connection in reader() */
	bool linked;     /* in srv->streams */
	struct MHD_Connection *mc;
	struct ab_http_server *srv;
	struct ab_http_stream *prev, *next;
};

struct hdr_scan {
	size_t total;
	const char *rid;
	size_t rid_len;
	const char *origin;
	const char *auth;
	const char *content_length;
	const char *acr_method; /* Access-Control-Request-Method */
	bool chunked;
};

/* One per TCP connection; request fields are reset after each request. */
struct conn {
	struct ab_http_server *srv;
	struct MHD_Connection *mc;
	struct sockaddr_storage peer;
	char peer_ip[INET6_ADDRSTRLEN];
	bool allowed;

	/* the current request */
	struct ab_http_req req;
	bool started, replied, expect_body, body_over, deferred;
	long long max_body;      /* of the matched route */
	struct hdr_scan h;       /* pointers into MHD's copy of the headers */
	int status;
	size_t bytes;
	size_t discarded;        /* body bytes dropped after the limit */
	int metric_idx;
	double t0;
	char rid[RID_MAX + 1];
	const char *origin;      /* MHD's copy, valid during the request */
	bool cors_ok;
	struct ab_buf uri;       /* raw target, cut at '?' */
	struct ab_buf body;
	struct ab_buf hdrs;      /* extra headers as "name\0value\0" pairs */
	struct ab_buf scratch;
};

/* --- small helpers ------------------------------------------------------- */

static uint64_t next_random(void)
{
	static _Thread_local uint64_t state;
	static _Thread_local bool seeded;
	if (!seeded) {
		if (ab_random_bytes(&state, sizeof(state)) != 0)
			state = (uint64_t)ab_now_ms() ^ (uint64_t)(uintptr_t)&state;
		seeded = true;
	}
	/* splitmix64 */
	uint64_t z = (state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static bool rid_valid(const char *s, size_t n)
{
	if (n == 0 || n > RID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

static void rid_generate(char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v = next_random();
	for (int i = 15; i >= 0; i--) {
		out[i] = hex[v & 0xf];
		v >>= 4;
	}
	out[16] = '\0';
}

static int status_class(int status)
{
	int c = status / 100 - 1;
	return c < 0 ? 0 : c > 4 ? 4 : c;
}

/* --- replies ------------------------------------------------------------- */

static void add_common_headers(struct conn *c, struct MHD_Response *resp,
			       const char *content_type)
{
	if (content_type)
		MHD_add_response_header(resp, "Content-Type", content_type);
	MHD_add_response_header(resp, "X-Request-Id", c->rid);
	if (c->cors_ok) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", c->origin);
		MHD_add_response_header(resp, "Vary", "Origin");
		MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
		MHD_add_response_header(resp, "Access-Control-Expose-Headers",
					"X-Request-Id");
	}
	for (size_t i = 0; i < c->hdrs.len;) {
		const char *name = c->hdrs.data + i;
		const char *value = name + strlen(name) + 1;
		MHD_add_response_header(resp, name, value);
		i = (size_t)(value - c->hdrs.data) + strlen(value) + 1;
	}
}

static void queue(struct conn *c, int status, struct MHD_Response *resp, size_t bytes)
{
	if (MHD_queue_response(c->mc, (unsigned)status, resp) != MHD_YES)
		ab_log(AB_LOG_WARN, "http: could not queue a %d response", status);
	MHD_destroy_response(resp);
	c->replied = true;
	c->status = status;
	c->bytes = bytes;
}

/* Replies with len bytes at body; persistent bodies are not copied. */
static void reply_mem(struct conn *c, int status, const char *content_type,
		      const char *body, size_t len, bool persistent)
{
	if (c->replied) {
		ab_log(AB_LOG_WARN, "http: handler replied twice, second reply dropped");
		return;
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, (void *)(uintptr_t)body,
		persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
	if (!resp)
		abort(); /* only fails on allocation */
	add_common_headers(c, resp, content_type);
	queue(c, status, resp, len);
}

static void reply_error(struct conn *c, int status, const char *code, const char *msg)
{
	struct ab_buf *b = &c->scratch;
	ab_buf_reset(b);
	ab_buf_puts(b, "{\"error\":{\"code\":");
	ab_buf_json_str(b, code);
	ab_buf_puts(b, ",\"message\":");
	ab_buf_json_str(b, msg);
	ab_buf_puts(b, "}}");
	reply_mem(c, status, "application/json", b->data, b->len, false);
}

void ab_http_add_header(struct ab_http_req *req, const char *name, const char *value)
{
	struct conn *c = req->internal;
	if (!name || !value || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return;
	ab_buf_append(&c->hdrs, name, strlen(name) + 1);
	ab_buf_append(&c->hdrs, value, strlen(value) + 1);
}

void ab_http_reply(struct ab_http_req *req, int status, const char *content_type,
		   const char *body, size_t len)
{
	reply_mem(req->internal, status, content_type, body ? body : "", body ? len : 0,
		  false);
}

void ab_http_reply_json(struct ab_http_req *req, int status, const char *body, size_t len)
{
	ab_http_reply(req, status, "application/json", body, len);
}

void ab_http_reply_jansson(struct ab_http_req *req, int status, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
	if (!s) {
		reply_error(req->internal, 500, "internal", "could not serialise reply");
		return;
	}
	ab_http_reply_json(req, status, s, strlen(s));
	free(s);
}

void ab_http_reply_error(struct ab_http_req *req, int status, const char *code,
			 const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_error(req->internal, status, code, msg);
}

/* --- request accessors --------------------------------------------------- */

const char *ab_http_param(const struct ab_http_req *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->match.n_params; i++)
		if (req->match.name_lens[i] == n && memcmp(req->match.names[i], name, n) == 0)
			return req->match.values[i];
	return NULL;
}

const char *ab_http_query(const struct ab_http_req *req, const char *name)
{
	struct conn *c = req->internal;
	return MHD_lookup_connection_value(c->mc, MHD_GET_ARGUMENT_KIND, name);
}

const char *ab_http_header(const struct ab_http_req *req, const char *name)
{
	struct conn *c = req->internal;
	return MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, name);
}

/* --- streams ------------------------------------------------------------- */

static void stream_unref(struct ab_http_stream *s)
{
	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&s->mu);
	ab_buf_free(&s->q);
	free(s);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ab_http_stream *s = cls;
	ssize_t r;
	AB_UNUSED(pos);
	pthread_mutex_lock(&s->mu);
	if (s->closed) {
		r = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (s->q.len > s->off) {
		size_t n = s->q.len - s->off;
		if (n > max)
			n = max;
		memcpy(buf, s->q.data + s->off, n);
		s->off += n;
		if (s->off == s->q.len) {
			ab_buf_reset(&s->q);
			s->off = 0;
		}
		r = (ssize_t)n;
	} else if (s->finished) {
		r = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		s->suspended = true;
		MHD_suspend_connection(s->mc);
		r = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* MHD destroyed the response: the connection is done with the stream. */
static void reader_free(void *cls)
{
	struct ab_http_stream *s = cls;
	pthread_mutex_lock(&s->mu);
	s->closed = true;
	s->suspended = false;
	s->mc = NULL;
	pthread_mutex_unlock(&s->mu);
	struct ab_http_server *srv = s->srv;
	pthread_mutex_lock(&srv->streams_mu);
	if (s->linked) {
		if (s->prev)
			s->prev->next = s->next;
		else
			srv->streams = s->next;
		if (s->next)
			s->next->prev = s->prev;
		s->linked = false;
		atomic_fetch_sub(&srv->open_streams, 1);
	}
	pthread_mutex_unlock(&srv->streams_mu);
	stream_unref(s);
}

struct ab_http_stream *ab_http_reply_stream(struct ab_http_req *req, int status,
					    const char *content_type)
{
	struct conn *c = req->internal;
	struct ab_http_stream *s = ab_xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	if (c->replied) {
		ab_log(AB_LOG_WARN, "http: stream reply after a reply, stream closed");
		s->closed = true;
		atomic_init(&s->refs, 1);
		return s;
	}
	atomic_init(&s->refs, 2);
	s->mc = c->mc;
	s->srv = c->srv;
	struct MHD_Response *resp = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, reader_free);
	if (!resp)
		abort();
	add_common_headers(c, resp, content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	struct ab_http_server *srv = c->srv;
	pthread_mutex_lock(&srv->streams_mu);
	s->next = srv->streams;
	if (s->next)
		s->next->prev = s;
	srv->streams = s;
	s->linked = true;
	atomic_fetch_add(&srv->open_streams, 1);
	pthread_mutex_unlock(&srv->streams_mu);
	queue(c, status, resp, 0); /* a failure destroys resp -> reader_free */
	return s;
}

int ab_http_stream_write(struct ab_http_stream *s, const void *data, size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (s->closed || s->finished) {
		rc = AB_ECLOSED;
		goto out;
	}
	if (s->q.len - s->off + len > STREAM_MAX_QUEUED) {
		rc = AB_ETOOBIG;
		goto out;
	}
	if (s->off > 0 && s->off >= s->q.len / 2) {
		memmove(s->q.data, s->q.data + s->off, s->q.len - s->off);
		s->q.len -= s->off;
		s->q.data[s->q.len] = '\0';
		s->off = 0;
	}
	ab_buf_append(&s->q, data, len);
	if (s->suspended) {
		s->suspended = false;
		MHD_resume_connection(s->mc);
	}
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int ab_http_stream_printf(struct ab_http_stream *s, const char *fmt, ...)
{
	char small[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return AB_EINVAL;
	if ((size_t)n < sizeof(small))
		return ab_http_stream_write(s, small, (size_t)n);
	char *big = ab_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = ab_http_stream_write(s, big, (size_t)n);
	free(big);
	return rc;
}

bool ab_http_stream_closed(struct ab_http_stream *s)
{
	pthread_mutex_lock(&s->mu);
	bool closed = s->closed;
	pthread_mutex_unlock(&s->mu);
	return closed;
}

void ab_http_stream_close(struct ab_http_stream *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->finished = true;
	if (s->suspended && !s->closed) {
		s->suspended = false;
		MHD_resume_connection(s->mc);
	}
	pthread_mutex_unlock(&s->mu);
	stream_unref(s);
}

size_t ab_http_server_open_streams(struct ab_http_server *srv)
{
	return atomic_load(&srv->open_streams);
}

/* --- built-in routes ----------------------------------------------------- */

static void h_openapi(struct ab_http_req *req)
{
	struct ab_http_server *srv = req->server;
	reply_mem(req->internal, 200, "application/json", srv->openapi, srv->openapi_len,
		  true);
}

static void h_docs(struct ab_http_req *req)
{
	struct ab_http_server *srv = req->server;
	reply_mem(req->internal, 200, "text/html; charset=utf-8", srv->docs, srv->docs_len,
		  true);
}

static void h_metrics(struct ab_http_req *req)
{
	struct ab_buf b = {0};
	ab_http_server_metrics(req->server, &b);
	if (req->server->opts.metrics_extra)
		req->server->opts.metrics_extra(req->server->opts.ud, &b);
	ab_http_reply(req, 200, "text/plain; version=0.0.4", b.data, b.len);
	ab_buf_free(&b);
}

static const struct ab_route builtin_routes[] = {
	{"GET", "/api/openapi.json", h_openapi, AB_ACCESS_PUBLIC, 0,
	 "this API described as OpenAPI 3.1"},
	{"GET", "/docs", h_docs, AB_ACCESS_PUBLIC, 0, "this API as an HTML page"},
	{"GET", "/metrics", h_metrics, AB_ACCESS_VIEWER, 0,
	 "Prometheus metrics of this server"},
};

/* --- metrics ------------------------------------------------------------- */

static void metrics_count(struct ab_http_server *srv, int idx, int status, double ms)
{
	struct route_metrics *m = &srv->metrics[idx];
	atomic_fetch_add_explicit(&m->by_class[status_class(status)], 1,
				  memory_order_relaxed);
	int b = 0;
	while (b < N_BUCKETS - 1 && ms > bucket_le[b])
		b++;
	atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us, (uint64_t)(ms * 1000.0), memory_order_relaxed);
	atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

static void route_label(struct ab_http_server *srv, size_t i, struct ab_buf *out)
{
	if (i >= srv->n_routes) {
		ab_buf_puts(out, "unmatched");
		return;
	}
	/* patterns come from our own table; escape anyway */
	const char *parts[3] = {srv->routes[i].method, " ", srv->routes[i].pattern};
	for (int k = 0; k < 3; k++)
		for (const char *p = parts[k]; *p; p++) {
			if (*p == '"' || *p == '\\')
				ab_buf_putc(out, '\\');
			ab_buf_putc(out, *p);
		}
}

void ab_http_server_metrics(struct ab_http_server *srv, struct ab_buf *out)
{
	static const char *classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	struct ab_buf label = {0};
	ab_buf_puts(out, "# HELP autobot_http_requests_total HTTP requests by route and "
			 "status class\n# TYPE autobot_http_requests_total counter\n");
	for (size_t i = 0; i <= srv->n_routes; i++) {
		struct route_metrics *m = &srv->metrics[i];
		ab_buf_reset(&label);
		route_label(srv, i, &label);
		for (int k = 0; k < 5; k++) {
			uint64_t v = atomic_load_explicit(&m->by_class[k], memory_order_relaxed);
			if (v)
				ab_buf_printf(out,
					      "autobot_http_requests_total{route=\"%s\",code=\"%s\"} "
					      "%llu\n",
					      label.data, classes[k], (unsigned long long)v);
		}
	}
	ab_buf_puts(out, "# HELP autobot_http_request_duration_ms request latency in "
			 "milliseconds\n# TYPE autobot_http_request_duration_ms histogram\n");
	for (size_t i = 0; i <= srv->n_routes; i++) {
		struct route_metrics *m = &srv->metrics[i];
		uint64_t count = atomic_load_explicit(&m->count, memory_order_relaxed);
		if (!count)
			continue;
		ab_buf_reset(&label);
		route_label(srv, i, &label);
		uint64_t cum = 0;
		for (int b = 0; b < N_BUCKETS; b++) {
			cum += atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
			if (b < N_BUCKETS - 1)
				ab_buf_printf(out,
					      "autobot_http_request_duration_ms_bucket{route=\"%s\","
					      "le=\"%g\"} %llu\n",
					      label.data, bucket_le[b], (unsigned long long)cum);
			else
				ab_buf_printf(out,
					      "autobot_http_request_duration_ms_bucket{route=\"%s\","
					      "le=\"+Inf\"} %llu\n",
					      label.data, (unsigned long long)cum);
		}
		ab_buf_printf(out, "autobot_http_request_duration_ms_sum{route=\"%s\"} %.3f\n",
			      label.data,
			      (double)atomic_load_explicit(&m->sum_us, memory_order_relaxed) /
				      1000.0);
		ab_buf_printf(out, "autobot_http_request_duration_ms_count{route=\"%s\"} %llu\n",
			      label.data, (unsigned long long)count);
	}
	ab_buf_printf(out,
		      "# HELP autobot_http_open_streams streaming responses in progress\n"
		      "# TYPE autobot_http_open_streams gauge\nautobot_http_open_streams %zu\n",
		      ab_http_server_open_streams(srv));
	ab_buf_free(&label);
}

/* --- the middleware chain ------------------------------------------------ */


static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   size_t key_size, const char *value, size_t value_size)
{
	struct hdr_scan *h = cls;
	AB_UNUSED(kind);
	h->total += key_size + value_size;
	if (!value)
		return MHD_YES;
	switch (key_size) {
	case 6:
		if (strcasecmp(key, "Origin") == 0)
			h->origin = value;
		break;
	case 12:
		if (strcasecmp(key, "X-Request-Id") == 0) {
			h->rid = value;
			h->rid_len = value_size;
		}
		break;
	case 13:
		if (strcasecmp(key, "Authorization") == 0)
			h->auth = value;
		break;
	case 14:
		if (strcasecmp(key, "Content-Length") == 0)
			h->content_length = value;
		break;
	case 17:
		if (strcasecmp(key, "Transfer-Encoding") == 0)
			h->chunked = true;
		break;
	case 29:
		if (strcasecmp(key, "Access-Control-Request-Method") == 0)
			h->acr_method = value;
		break;
	default:
		break;
	}
	return MHD_YES;
}

static bool origin_allowed(const struct ab_http_server *srv, const char *origin)
{
	for (size_t i = 0; i < srv->opts.n_cors; i++)
		if (srv->opts.cors_origins[i] && strcmp(srv->opts.cors_origins[i], origin) == 0)
			return true;
	return false;
}

static void run_handler(struct conn *c)
{
	struct ab_http_req *req = &c->req;
	const struct ab_route *r = req->route;
	if (c->body_over) {
		reply_error(c, 413, "payload_too_large", "request body exceeds the limit");
		return;
	}
	if (c->body.len) {
		req->body = c->body.data;
		req->body_len = c->body.len;
	}
	if (r->flags & AB_ROUTE_JSON_BODY) {
		if (!c->body.len) {
			reply_error(c, 400, "bad_json", "request body must be a JSON document");
			return;
		}
		json_error_t err;
		req->json = json_loadb(c->body.data, c->body.len, 0, &err);
		if (!req->json) {
			char msg[256];
			snprintf(msg, sizeof(msg), "malformed JSON at line %d column %d: %s",
				 err.line, err.column, err.text);
			reply_error(c, 400, "bad_json", msg);
			return;
		}
	}
	c->metric_idx = req->match.index;
	ab_log_set_request_id(c->rid);
	r->handler(req);
	ab_log_set_request_id(NULL);
	if (!c->replied) {
		ab_log(AB_LOG_ERROR, "http: handler for %s %s returned without replying",
		       r->method, r->pattern);
		c->metric_idx = (int)c->srv->n_routes;
		reply_error(c, 500, "internal", "the handler did not reply");
		c->metric_idx = req->match.index;
	}
}

/* The first call for a request: everything that needs only the headers.
 * Returns with c->replied set when the request was answered. */
static void first_call(struct conn *c, const char *method)
{
	struct ab_http_server *srv = c->srv;
	struct ab_http_req *req = &c->req;
	struct hdr_scan h = c->h;

	if (h.rid && rid_valid(h.rid, h.rid_len))
		memcpy(c->rid, h.rid, h.rid_len + 1);
	else
		rid_generate(c->rid);

	req->method = method;
	req->path = c->uri.data ? c->uri.data : "";
	req->request_id = c->rid;
	req->peer = (const struct sockaddr *)&c->peer;
	req->ud = srv->opts.ud;
	req->server = srv;
	req->internal = c;
	req->level = AB_ACCESS_PUBLIC;

	if (!c->allowed) {
		reply_error(c, 403, "forbidden", "your address is not allowed");
		return;
	}
	if ((long long)h.total > srv->opts.max_header_bytes) {
		reply_error(c, 431, "headers_too_large", "request headers exceed the limit");
		return;
	}
	if (h.origin) {
		c->origin = h.origin;
		c->cors_ok = origin_allowed(srv, h.origin);
	}
	if (h.origin && h.acr_method && strcmp(method, "OPTIONS") == 0) {
		if (!c->cors_ok) {
			reply_error(c, 403, "forbidden", "origin not allowed");
			return;
		}
		struct ab_route_match pm;
		int pr = ab_router_match(srv->routes, srv->n_routes, "OPTIONS", req->path, &pm);
		const char *methods = pr == AB_EMETHOD ? pm.allow
						       : "GET, POST, PUT, PATCH, DELETE";
		ab_buf_reset(&c->hdrs);
		ab_http_add_header(req, "Access-Control-Allow-Methods", methods);
		ab_http_add_header(req, "Access-Control-Allow-Headers",
				   "Authorization, Content-Type, X-Request-Id");
		ab_http_add_header(req, "Access-Control-Max-Age", "600");
		if (pr >= 0)
			ab_router_match_free(&pm);
		reply_mem(c, 204, NULL, "", 0, true);
		return;
	}

	int ri = ab_router_match(srv->routes, srv->n_routes, method, req->path, &req->match);
	if (ri == AB_EMETHOD) {
		ab_http_add_header(req, "Allow", req->match.allow);
		reply_error(c, 405, "method_not_allowed", "method not allowed on this path");
		return;
	}
	if (ri == AB_EINVAL) {
		reply_error(c, 400, "bad_request", "malformed percent-escape in the path");
		return;
	}
	if (ri < 0) {
		reply_error(c, 404, "not_found", "no such route");
		return;
	}
	const struct ab_route *r = &srv->routes[ri];
	req->route = r;

	if (r->need > AB_ACCESS_PUBLIC) {
		const char *tok = NULL;
		if (h.auth && strncasecmp(h.auth, "Bearer ", 7) == 0) {
			tok = h.auth + 7;
			while (*tok == ' ')
				tok++;
		}
		enum ab_access level = AB_ACCESS_PUBLIC;
		int rc = AB_EAUTH;
		if (tok && *tok && srv->opts.auth)
			rc = srv->opts.auth(srv->opts.ud, tok, &level);
		if (rc == AB_EUNAVAIL) {
			reply_error(c, 503, "unavailable", "the token store is unavailable");
			return;
		}
		if (rc != 0) {
			ab_http_add_header(req, "WWW-Authenticate", "Bearer");
			reply_error(c, 401, "unauthorized", "missing or unknown bearer token");
			return;
		}
		if (level < r->need) {
			reply_error(c, 403, "forbidden", "this route needs a higher access level");
			return;
		}
		req->level = level;
	}

	c->max_body = (r->flags & AB_ROUTE_UPLOAD) && srv->opts.max_upload_bytes > 0
			      ? srv->opts.max_upload_bytes
			      : srv->opts.max_body_bytes;
	long long cl = 0;
	if (h.content_length) {
		if (ab_parse_int(h.content_length, 0, INT64_MAX, &cl) != 0) {
			reply_error(c, 400, "bad_request", "malformed Content-Length");
			return;
		}
		if (cl > c->max_body) {
			reply_error(c, 413, "payload_too_large", "request body exceeds the limit");
			return;
		}
	}
	c->expect_body = h.chunked || cl > 0;
	if (!c->expect_body)
		run_handler(c);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *mc, const char *url,
				 const char *method, const char *version,
				 const char *upload_data, size_t *upload_data_size,
				 void **con_cls)
{
	struct conn *c = *con_cls;
	AB_UNUSED(cls);
	AB_UNUSED(url);
	AB_UNUSED(version);
	if (!c)
		return MHD_NO; /* no URI log call happened: should not be */
	if (!c->started) {
		c->started = true;
		memset(&c->h, 0, sizeof(c->h));
		MHD_get_connection_values_n(mc, MHD_HEADER_KIND, scan_header, &c->h);
		if (!c->h.chunked && (!c->h.content_length ||
				      strcmp(c->h.content_length, "0") == 0)) {
			/* Answering now would make MHD close the connection
			 * (it cannot know the request is complete yet), so a
			 * bodyless request is handled on the next call. */
			c->deferred = true;
			return MHD_YES;
		}
		first_call(c, method);
		return MHD_YES;
	}
	if (c->deferred) {
		c->deferred = false;
		*upload_data_size = 0;
		first_call(c, method);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (c->replied)
			return MHD_YES; /* answered already; drain */
		long long limit = c->max_body > 0 ? c->max_body : c->srv->opts.max_body_bytes;
		if (c->body_over || (long long)(c->body.len + n) > limit) {
			/* drain the rest to answer 413 at the end, but not forever */
			c->body_over = true;
			ab_buf_free(&c->body);
			c->discarded += n;
			if ((long long)c->discarded > 4 * limit + (1 << 20))
				return MHD_NO;
			return MHD_YES;
		}
		ab_buf_append(&c->body, upload_data, n);
		return MHD_YES;
	}
	if (!c->replied)
		run_handler(c);
	return MHD_YES;
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *mc)
{
	AB_UNUSED(cls);
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = ci ? ci->socket_context : NULL;
	if (!c)
		return NULL;
	c->t0 = ab_now_ms_f();
	ab_buf_reset(&c->uri);
	const char *q = strchr(uri, '?');
	size_t n = q ? (size_t)(q - uri) : strlen(uri);
	ab_buf_append(&c->uri, uri, n);
	return c;
}

static void reset_request(struct conn *c)
{
	ab_router_match_free(&c->req.match);
	json_decref(c->req.json);
	memset(&c->req, 0, sizeof(c->req));
	c->started = c->replied = c->expect_body = c->body_over = c->deferred = false;
	c->status = 0;
	c->max_body = 0;
	c->bytes = 0;
	c->discarded = 0;
	c->origin = NULL;
	c->cors_ok = false;
	c->metric_idx = (int)c->srv->n_routes;
	/* keep small buffers for the next request on this connection */
	if (c->body.cap > 65536)
		ab_buf_free(&c->body);
	else
		ab_buf_reset(&c->body);
	ab_buf_reset(&c->hdrs);
	if (c->scratch.cap > 65536)
		ab_buf_free(&c->scratch);
}

static void completed_cb(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct ab_http_server *srv = cls;
	struct conn *c = *con_cls;
	AB_UNUSED(mc);
	if (!c)
		return;
	*con_cls = NULL;
	if (c->started) {
		double ms = ab_now_ms_f() - c->t0;
		int status = c->replied ? c->status : 0;
		if (c->replied)
			metrics_count(srv, c->metric_idx, status, ms);
		const char *path = c->req.path ? c->req.path : "";
		bool quiet = status >= 200 && status < 300 &&
			     (strcmp(path, "/health") == 0 || strcmp(path, "/api/health") == 0);
		int level = quiet ? AB_LOG_DEBUG : AB_LOG_INFO;
		if (level >= ab_log_min_level) {
			ab_log_set_request_id(c->rid);
			ab_log(level, "http %s %.200s status=%d bytes=%zu ms=%.2f peer=%s%s",
			       c->req.method ? c->req.method : "-", path, status, c->bytes, ms,
			       c->peer_ip,
			       toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
			ab_log_set_request_id(NULL);
		}
	}
	reset_request(c);
}

static void conn_cb(void *cls, struct MHD_Connection *mc, void **socket_context,
		    enum MHD_ConnectionNotificationCode toe)
{
	struct ab_http_server *srv = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		struct conn *c = ab_xcalloc(1, sizeof(*c));
		c->srv = srv;
		c->mc = mc;
		c->metric_idx = (int)srv->n_routes;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const struct sockaddr *sa = ci ? ci->client_addr : NULL;
		if (sa && sa->sa_family == AF_INET) {
			memcpy(&c->peer, sa, sizeof(struct sockaddr_in));
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
				  c->peer_ip, sizeof(c->peer_ip));
		} else if (sa && sa->sa_family == AF_INET6) {
			memcpy(&c->peer, sa, sizeof(struct sockaddr_in6));
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
				  c->peer_ip, sizeof(c->peer_ip));
		} else {
			ab_strlcpy(c->peer_ip, "-", sizeof(c->peer_ip));
		}
		c->allowed = srv->opts.n_allow == 0 ||
			     (sa && ab_cidr_list_match(srv->opts.allow, srv->opts.n_allow,
						       (const struct sockaddr *)&c->peer));
		*socket_context = c;
		return;
	}
	struct conn *c = *socket_context;
	if (!c)
		return;
	*socket_context = NULL;
	ab_router_match_free(&c->req.match);
	json_decref(c->req.json);
	ab_buf_free(&c->uri);
	ab_buf_free(&c->body);
	ab_buf_free(&c->hdrs);
	ab_buf_free(&c->scratch);
	free(c);
}

AB_PRINTF(2, 0) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	AB_UNUSED(cls);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	ab_log(AB_LOG_DEBUG, "http: microhttpd: %s", msg);
}

/* --- server lifecycle ---------------------------------------------------- */

/* Opens, binds and listens. Returns the socket or -errno. */
static int listen_on(const char *host, int port, int *bound_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (ab_sockaddr_parse(host, port, &ss, &len) < 0)
		return -EINVAL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 1024) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						   : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int ab_http_server_start(const struct ab_http_opts *opts, struct ab_http_server **out)
{
	*out = NULL;
	if (opts->port < 0 || opts->port > 65535 || (opts->n_routes && !opts->routes))
		return AB_EINVAL;
	struct ab_http_server *srv = ab_xcalloc(1, sizeof(*srv));
	srv->opts = *opts;
	if (srv->opts.max_body_bytes <= 0)
		srv->opts.max_body_bytes = 1024 * 1024;
	if (srv->opts.max_header_bytes <= 0)
		srv->opts.max_header_bytes = 16 * 1024;
	if (srv->opts.threads <= 0)
		srv->opts.threads = 2;
	if (srv->opts.request_timeout_ms <= 0)
		srv->opts.request_timeout_ms = 30000;
	pthread_mutex_init(&srv->streams_mu, NULL);

	/* the role's routes first, then the built-ins it does not define */
	srv->routes = ab_xcalloc(opts->n_routes + AB_ARRAY_LEN(builtin_routes),
				 sizeof(*srv->routes));
	for (size_t i = 0; i < opts->n_routes; i++)
		srv->routes[srv->n_routes++] = opts->routes[i];
	for (size_t b = 0; b < AB_ARRAY_LEN(builtin_routes); b++) {
		bool dup = false;
		for (size_t i = 0; i < opts->n_routes; i++)
			dup |= strcmp(opts->routes[i].method, builtin_routes[b].method) == 0 &&
			       strcmp(opts->routes[i].pattern, builtin_routes[b].pattern) == 0;
		if (!dup)
			srv->routes[srv->n_routes++] = builtin_routes[b];
	}
	srv->metrics = ab_xcalloc(srv->n_routes + 1, sizeof(*srv->metrics));
	srv->openapi = ab_openapi_json(&srv->opts, srv->routes, srv->n_routes);
	srv->openapi_len = strlen(srv->openapi);
	srv->docs = ab_openapi_docs_html(&srv->opts, srv->routes, srv->n_routes);
	srv->docs_len = strlen(srv->docs);

	int fd = listen_on(opts->bind_host, opts->port, &srv->port);
	if (fd < 0) {
		ab_http_server_free(srv);
		return fd;
	}
	/* MHD's per-connection pool must hold the request headers for us to
	 * judge them (our JSON 431); headers about twice the limit still fit,
	 * larger ones MHD refuses with its own 431. The pool is not bigger
	 * because MHD zeroes all of it between keep-alive requests: 96 KiB
	 * cost a third of the throughput of small GETs, 40 KiB is lost in
	 * the noise. */
	long long mem = srv->opts.max_header_bytes * 2 + 8 * 1024;
	if (mem < 24 * 1024)
		mem = 24 * 1024;
	srv->mem_limit = (size_t)mem;
	unsigned timeout_s = (unsigned)((srv->opts.request_timeout_ms + 999) / 1000);
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ITC | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	srv->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, access_cb, srv, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->opts.threads,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		srv->mem_limit, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
		MHD_OPTION_NOTIFY_CONNECTION, conn_cb, srv, MHD_OPTION_NOTIFY_COMPLETED,
		completed_cb, srv, MHD_OPTION_URI_LOG_CALLBACK, uri_cb, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (!srv->daemon) {
		close(fd);
		ab_http_server_free(srv);
		ab_log(AB_LOG_ERROR, "http: microhttpd would not start");
		return -EIO;
	}
	ab_log(AB_LOG_INFO, "http: listening on %s port %d with %d threads",
	       opts->bind_host ? opts->bind_host : "127.0.0.1", srv->port,
	       srv->opts.threads);
	*out = srv;
	return 0;
}

int ab_http_server_port(const struct ab_http_server *srv)
{
	return srv ? srv->port : -1;
}

void ab_http_server_free(struct ab_http_server *srv)
{
	if (!srv)
		return;
	if (srv->daemon) {
		/* end every stream so no connection stays suspended */
		pthread_mutex_lock(&srv->streams_mu);
		for (struct ab_http_stream *s = srv->streams; s; s = s->next) {
			pthread_mutex_lock(&s->mu);
			s->closed = true;
			if (s->suspended) {
				s->suspended = false;
				MHD_resume_connection(s->mc);
			}
			pthread_mutex_unlock(&s->mu);
		}
		pthread_mutex_unlock(&srv->streams_mu);
		for (int i = 0; i < 500 && atomic_load(&srv->open_streams) > 0; i++)
			ab_sleep_ms(10);
		if (atomic_load(&srv->open_streams) > 0)
			ab_log(AB_LOG_WARN, "http: %zu streams still open at shutdown",
			       atomic_load(&srv->open_streams));
		MHD_stop_daemon(srv->daemon);
	}
	pthread_mutex_destroy(&srv->streams_mu);
	free(srv->routes);
	free(srv->metrics);
	free(srv->openapi);
	free(srv->docs);
	free(srv);
}
