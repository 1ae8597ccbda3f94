/*
 * http.h - the HTTP server every role uses: libmicrohttpd underneath, one
 * route table on top, and the middleware of DESIGN section 8 in between.
 *
 * A role describes its API as an array of struct ab_route. From that one
 * table the server routes requests (404 unknown path, 405 known path with
 * another method), checks the caller's access level, generates
 * /api/openapi.json (OpenAPI 3.1) and the /docs page, and keeps per-route
 * metrics served at /metrics (Prometheus text).
 *
 * Order of checks for each request:
 *   request id -> CIDR allowlist (403) -> header size (431) -> CORS
 *   preflight -> route (404/405) -> bearer auth (401, 403 if the role is
 *   too low) -> body size (413) -> JSON body parse (400) -> handler
 * Every error is {"error":{"code":"...","message":"..."}} with the request
 * id in the X-Request-Id response header; every request is access-logged.
 *
 * Handlers run on one of the server's worker threads and must answer
 * exactly once, with ab_http_reply*() or ab_http_reply_stream(). A stream
 * (server-sent events or NDJSON) does not hold a thread while it waits:
 * the connection is suspended until a producer, on any thread, writes to
 * it with ab_http_stream_write().
 */
#ifndef AB_HTTP_H
#define AB_HTTP_H

#include "cidr.h"
#include "common.h"

#include <jansson.h>
#include <sys/socket.h>

/* Access levels, ordered: a route needing VIEWER accepts USER and ADMIN. */
enum ab_access {
	AB_ACCESS_PUBLIC = 0,
	AB_ACCESS_VIEWER = 1,
	AB_ACCESS_USER = 2,
	AB_ACCESS_ADMIN = 3,
};

const char *ab_access_name(enum ab_access a);

#define AB_ROUTE_JSON_BODY 0x1u /* body must be a JSON document (400 if not) */
#define AB_ROUTE_STREAM 0x2u    /* documented as text/event-stream */
#define AB_ROUTE_HIDDEN 0x4u    /* not listed in openapi/docs */
#define AB_ROUTE_UPLOAD 0x8u    /* body limit max_upload_bytes, not max_body_bytes */

#define AB_HTTP_MAX_PARAMS 8

struct ab_http_req;
typedef void (*ab_http_handler)(struct ab_http_req *req);

struct ab_route {
	const char *method;   /* "GET", "POST", ... */
	const char *pattern;  /* "/api/things/{id}": {name} matches one segment */
	ab_http_handler handler;
	enum ab_access need;
	unsigned flags;       /* AB_ROUTE_* */
	const char *summary;  /* one line, for openapi and /docs */
};

struct ab_route_match {
	int index;            /* into the route table */
	size_t n_params;
	const char *names[AB_HTTP_MAX_PARAMS];   /* point into the pattern */
	size_t name_lens[AB_HTTP_MAX_PARAMS];
	char *values[AB_HTTP_MAX_PARAMS];        /* percent-decoded, owned */
	char allow[64];       /* for 405: "GET, POST" */
};

/*
 * Matches method + path (no query string) against the table. Returns the
 * route index (>= 0), AB_ENOTFOUND, or AB_EMETHOD with m->allow filled.
 * On success the caller releases m with ab_router_match_free().
 */
int ab_router_match(const struct ab_route *routes, size_t n, const char *method,
		    const char *path, struct ab_route_match *m);
void ab_router_match_free(struct ab_route_match *m);

/*
 * Resolves a bearer token to an access level. Returns 0 and sets *level,
 * AB_EAUTH for an unknown token, or AB_EUNAVAIL when the store that would
 * know is down (the server answers 503 then).
 */
typedef int (*ab_http_auth_fn)(void *ud, const char *token, enum ab_access *level);

struct ab_http_opts {
	const char *bind_host;    /* address to bind; NULL = 127.0.0.1 */
	int port;                 /* 0 = pick a free one (see ab_http_server_port) */
	const struct ab_route *routes;
	size_t n_routes;
	const struct ab_cidr *allow;  /* allowlist; n_allow == 0 allows all */
	size_t n_allow;
	char *const *cors_origins;    /* exact origins, e.g. http://h:5173 */
	size_t n_cors;
	long long max_body_bytes;     /* default 1 MiB */
	long long max_upload_bytes;   /* AB_ROUTE_UPLOAD routes; default max_body_bytes */
	long long max_header_bytes;   /* default 16 KiB */
	int threads;                  /* worker threads; default 2 */
	int request_timeout_ms;       /* idle connection timeout; default 30000 */
	ab_http_auth_fn auth;
	void *ud;                     /* passed to auth and in req->ud */
	/* Appends role metrics (Prometheus text) to /metrics; may be NULL. */
	void (*metrics_extra)(void *ud, struct ab_buf *out);
	const char *title;            /* openapi info.title */
	const char *version;          /* openapi info.version */
};

struct ab_http_server;

/* Starts listening. Returns 0 and the server, or -errno (e.g. -EADDRINUSE).
 * The opts arrays must outlive the server. */
int ab_http_server_start(const struct ab_http_opts *opts, struct ab_http_server **out);
/* Stops accepting, closes every connection and streams, frees. NULL ok. */
void ab_http_server_free(struct ab_http_server *srv);
int ab_http_server_port(const struct ab_http_server *srv);
/* Appends this server's metrics (per-route counters and latency
 * histograms, open streams) in Prometheus text format to out. */
void ab_http_server_metrics(struct ab_http_server *srv, struct ab_buf *out);

struct ab_http_req {
	const char *method;
	const char *path;          /* without the query string */
	const struct ab_route *route;
	struct ab_route_match match;
	const char *body;          /* NUL-terminated; NULL when empty */
	size_t body_len;
	json_t *json;              /* parsed body for AB_ROUTE_JSON_BODY routes */
	enum ab_access level;      /* of the caller */
	const char *request_id;
	const struct sockaddr *peer;
	void *ud;                  /* opts.ud */
	struct ab_http_server *server;
	void *internal;            /* the server's */
};

/* Route parameter by name, or NULL. */
const char *ab_http_param(const struct ab_http_req *req, const char *name);
/* Query-string argument by name, or NULL. */
const char *ab_http_query(const struct ab_http_req *req, const char *name);
/* Request header by name (case-insensitive), or NULL. */
const char *ab_http_header(const struct ab_http_req *req, const char *name);

/* Adds a response header to the reply that follows (copied). */
void ab_http_add_header(struct ab_http_req *req, const char *name, const char *value);
/* Replies with body (copied) and content type. */
void ab_http_reply(struct ab_http_req *req, int status, const char *content_type,
		   const char *body, size_t len);
/* Replies with the JSON text in body (copied). */
void ab_http_reply_json(struct ab_http_req *req, int status, const char *body, size_t len);
/* Replies with j serialised (j is not consumed). */
void ab_http_reply_jansson(struct ab_http_req *req, int status, const json_t *j);
/* Replies {"error":{"code":code,"message":...}}. */
void ab_http_reply_error(struct ab_http_req *req, int status, const char *code,
			 const char *fmt, ...) AB_PRINTF(4, 5);

/*
 * Streaming. ab_http_reply_stream() answers with status and content type
 * (e.g. "text/event-stream" or "application/x-ndjson") and returns a
 * stream handle shared by the server and the producer: the producer owns
 * one reference and gives it up with ab_http_stream_close(), after which
 * it must not touch the handle. Writes may come from any thread; they are
 * copied and sent as the client reads. ab_http_stream_write() returns
 * AB_ECLOSED once the client has gone away (stop producing, then close),
 * AB_ETOOBIG if more than 8 MiB are queued unsent.
 */
struct ab_http_stream;
struct ab_http_stream *ab_http_reply_stream(struct ab_http_req *req, int status,
					    const char *content_type);
int ab_http_stream_write(struct ab_http_stream *s, const void *data, size_t len);
int ab_http_stream_printf(struct ab_http_stream *s, const char *fmt, ...) AB_PRINTF(2, 3);
bool ab_http_stream_closed(struct ab_http_stream *s);
void ab_http_stream_close(struct ab_http_stream *s);
/* Number of streams currently open on the server. */
size_t ab_http_server_open_streams(struct ab_http_server *srv);

/*
 * Generated documents (openapi.c), built once by the server at start from
 * the full route table (the role's routes plus the built-in ones) and
 * cached. Both return a new string the caller frees with free().
 */
char *ab_openapi_json(const struct ab_http_opts *opts, const struct ab_route *routes,
		      size_t n);
char *ab_openapi_docs_html(const struct ab_http_opts *opts, const struct ab_route *routes,
			   size_t n);

#endif
