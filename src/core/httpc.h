/*
 * httpc.h - the HTTP client: libcurl's multi interface runs a batch of
 * requests concurrently on the calling thread, each with its own timeout,
 * so probing N services takes about as long as the slowest one, never the
 * sum. Thread-safe: each call uses its own multi handle.
 */
#ifndef AB_HTTPC_H
#define AB_HTTPC_H

#include "common.h"

struct ab_httpc_req {
	/* in */
	const char *method;            /* NULL = GET */
	const char *url;
	const char *body;              /* NULL = none */
	size_t body_len;
	const char *const *headers;    /* NULL-terminated "Name: value" list */
	int timeout_ms;                /* whole request; <= 0 = 5000 */
	int connect_timeout_ms;        /* <= 0 = timeout_ms */
	size_t max_response;           /* 0 = 8 MiB; larger answers fail */
	/* out */
	int status;                    /* HTTP status, 0 if none */
	char *resp;                    /* body, NUL-terminated (owned: ab_httpc_req_clear) */
	size_t resp_len;
	double elapsed_ms;
	int err;                       /* 0, AB_ETIMEOUT, AB_ETOOBIG, -ECONNREFUSED, AB_EPROTO ... */
	char errstr[160];              /* human-readable reason when err != 0 */
};

/* Optional: libcurl is loaded and initialised on first use (curl_lazy.c);
 * this only does that now. */
int ab_httpc_global_init(void);
void ab_httpc_global_cleanup(void);

/* Runs all n requests concurrently and returns when every one has
 * finished or timed out. Returns 0 (per-request errors are in req->err)
 * or a negative code if the batch itself could not run. */
int ab_httpc_run(struct ab_httpc_req *reqs, size_t n);
/* Frees the response of one request (safe to call twice). */
void ab_httpc_req_clear(struct ab_httpc_req *req);

#endif
