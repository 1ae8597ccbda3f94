/*
 * httpc.c - the HTTP client of httpc.h over libcurl's multi interface.
 *
 * ab_httpc_run() makes one easy handle per request, adds them all to a
 * private multi handle and drives them with curl_multi_perform() and
 * curl_multi_poll() on the calling thread until none is running. Each
 * handle carries its own CURLOPT_TIMEOUT_MS, so a black-holed peer costs
 * its own timeout and nothing more, and the batch takes about as long as
 * its slowest member. Nothing is shared between calls except curl's
 * global state (ab_httpc_global_init), so concurrent calls from several
 * threads are safe.
 *
 * The response body is collected in an ab_buf by the write callback,
 * which refuses to grow past max_response (the transfer then fails and
 * the request reports AB_ETOOBIG). Proxies from the environment are
 * ignored: AutoBot talks to its own services directly.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS   5000
#define DEFAULT_MAX_RESPONSE (8u * 1024 * 1024)

/* Per-request transfer state, owned by ab_httpc_run(). */
struct xfer {
	struct ab_httpc_req *req;
	CURL *easy;
	struct curl_slist *hdrs;
	struct ab_buf body;
	size_t cap;
	bool too_big;
	bool added;
	int timeout_ms, connect_ms;
};

int ab_httpc_global_init(void)
{
	CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	return cc == CURLE_OK ? 0 : AB_EPROTO;
}

void ab_httpc_global_cleanup(void)
{
	curl_global_cleanup();
}

void ab_httpc_req_clear(struct ab_httpc_req *req)
{
	if (!req)
		return;
	free(req->resp);
	req->resp = NULL;
	req->resp_len = 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (x->body.len + n > x->cap) {
		x->too_big = true;
		return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
	}
	ab_buf_append(&x->body, p, n);
	return n;
}

static int setup(struct xfer *x)
{
	struct ab_httpc_req *q = x->req;
	CURL *e = curl_easy_init();

	if (!e)
		return AB_EPROTO;
	x->easy = e;
	x->timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : DEFAULT_TIMEOUT_MS;
	x->connect_ms = q->connect_timeout_ms > 0 ? q->connect_timeout_ms : x->timeout_ms;
	x->cap = q->max_response ? q->max_response : DEFAULT_MAX_RESPONSE;

	curl_easy_setopt(e, CURLOPT_URL, q->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)x->connect_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->cap);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");

	const char *method = q->method && *q->method ? q->method : "GET";
	if (q->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
		if (strcasecmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (!strcasecmp(method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	} else if (!strcasecmp(method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcasecmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}

	/* Suppress "Expect: 100-continue", which stalls large POSTs. */
	x->hdrs = curl_slist_append(NULL, "Expect:");
	for (const char *const *h = q->headers; h && *h; h++) {
		struct curl_slist *n = curl_slist_append(x->hdrs, *h);
		if (!n)
			return AB_EPROTO;
		x->hdrs = n;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	return 0;
}

/* Fills the request's results from a finished transfer. */
static void complete(struct xfer *x, CURLcode cc, double elapsed)
{
	struct ab_httpc_req *q = x->req;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	q->status = (int)status;
	q->elapsed_ms = elapsed;
	switch (cc) {
	case CURLE_OK:
		q->err = 0;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		q->err = AB_ETIMEOUT;
		/* A connect that timed out before the whole-request limit. */
		if (x->connect_ms < x->timeout_ms && elapsed < x->timeout_ms - 1 && status == 0)
			snprintf(q->errstr, sizeof(q->errstr), "connect timeout after %d ms",
			         x->connect_ms);
		else
			snprintf(q->errstr, sizeof(q->errstr), "timeout after %d ms",
			         x->timeout_ms);
		break;
	case CURLE_COULDNT_CONNECT: {
		long oserr = 0;
		curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
		if (oserr == 0 || oserr == ECONNREFUSED) {
			q->err = -ECONNREFUSED;
			snprintf(q->errstr, sizeof(q->errstr), "connection refused");
		} else {
			q->err = -(int)oserr;
			snprintf(q->errstr, sizeof(q->errstr), "connect: %s", strerror((int)oserr));
		}
		break;
	}
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (x->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
			q->err = AB_ETOOBIG;
			snprintf(q->errstr, sizeof(q->errstr), "response larger than %zu bytes",
			         x->cap);
			break;
		}
		/* fall through */
	default:
		q->err = AB_EPROTO;
		ab_strlcpy(q->errstr, curl_easy_strerror(cc), sizeof(q->errstr));
		break;
	}
	if (q->err == 0) {
		q->resp_len = x->body.len;
		q->resp = x->body.data ? ab_buf_steal(&x->body) : ab_xstrdup("");
	}
}

int ab_httpc_run(struct ab_httpc_req *reqs, size_t n)
{
	struct xfer *xs = NULL;
	CURLM *m = NULL;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		struct ab_httpc_req *q = &reqs[i];
		ab_httpc_req_clear(q);
		q->status = 0;
		q->elapsed_ms = 0;
		q->err = 0;
		q->errstr[0] = '\0';
		if (!q->url) {
			q->err = AB_EINVAL;
			snprintf(q->errstr, sizeof(q->errstr), "no url");
		}
	}
	if (n == 0)
		return 0;

	m = curl_multi_init();
	if (!m)
		return AB_EPROTO;
	xs = ab_xcalloc(n, sizeof(*xs));
	double t0 = ab_now_ms_f();
	for (size_t i = 0; i < n; i++) {
		xs[i].req = &reqs[i];
		if (reqs[i].err)
			continue;
		if (setup(&xs[i]) != 0 || curl_multi_add_handle(m, xs[i].easy) != CURLM_OK) {
			reqs[i].err = AB_EPROTO;
			snprintf(reqs[i].errstr, sizeof(reqs[i].errstr),
			         "could not set up request");
			continue;
		}
		xs[i].added = true;
	}

	int running = 0;
	for (;;) {
		CURLMcode mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK) {
			rc = AB_EPROTO;
			goto out;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			if (x)
				complete(x, msg->data.result, ab_now_ms_f() - t0);
		}
		if (running == 0)
			break;
		mc = curl_multi_poll(m, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK) {
			rc = AB_EPROTO;
			goto out;
		}
	}
out:
	for (size_t i = 0; i < n; i++) {
		struct xfer *x = &xs[i];
		if (x->easy) {
			if (x->added)
				curl_multi_remove_handle(m, x->easy);
			curl_easy_cleanup(x->easy);
		}
		curl_slist_free_all(x->hdrs);
		ab_buf_free(&x->body);
	}
	free(xs);
	curl_multi_cleanup(m);
	return rc;
}
