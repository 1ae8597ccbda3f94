/*
 * kb_api.c - the coordinator's knowledge-base and job routes:
 *
 *   POST   /api/knowledge/documents       multipart upload (field "file", plus
 *                                         optional title, tags, source, id) or
 *                                         JSON {text | url, title, tags, source,
 *                                         id, type}: 202 {id, job, status}
 *   GET    /api/knowledge/documents       ?offset=&limit= (newest first)
 *   GET    /api/knowledge/documents/{id}
 *   DELETE /api/knowledge/documents/{id}
 *   POST   /api/knowledge/search          {query, k, mode, filters, per_document}
 *   GET    /api/knowledge/stats
 *   GET    /api/jobs/{id}                 job state
 *   GET    /api/jobs/{id}/events          server-sent events until it ends
 *   POST   /api/jobs/{id}/cancel
 *
 * The handlers are thin: src/kb does the work. Each progress stream gets a
 * small thread that polls the job's hash every 250 ms and writes an event
 * when something changed, until the job ends, the client goes away, or the
 * coordinator stops (ab_kb_api_free waits for every such thread to end
 * before the Redis client they use can go).
 */
#include "kb_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "httpc.h"
#include "kb.h"
#include "log.h"
#include "multipart.h"

struct ab_kb_api {
	struct ab_service *svc;
	struct ab_kb *kb;
	struct ab_jobs *workers;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int streams;   /* job event streams running */
	bool stopping; /* ab_kb_api_free waits for the streams to end */
};

static struct ab_kb *kb_of(struct ab_http_req *req)
{
	struct ab_kb_api *a = ab_coord_kb(req->ud);
	return a ? a->kb : NULL;
}

/* Maps an error code to an HTTP answer. */
static void reply_rc(struct ab_http_req *req, int rc, const char *msg)
{
	switch (rc) {
	case AB_EINVAL:
		ab_http_reply_error(req, 400, "bad_request", "%s", msg && msg[0] ? msg : "invalid request");
		break;
	case AB_ETOOBIG:
		ab_http_reply_error(req, 413, "payload_too_large", "%s", msg && msg[0] ? msg : "too big");
		break;
	case AB_ENOTFOUND:
		ab_http_reply_error(req, 404, "not_found", "%s", msg && msg[0] ? msg : "not found");
		break;
	case AB_EUNAVAIL:
	case AB_ETIMEOUT:
		ab_http_add_header(req, "Retry-After", "2");
		ab_http_reply_error(req, 503, "unavailable", "%s",
				    msg && msg[0] ? msg : "the data layer (Redis) is unavailable");
		break;
	default:
		ab_http_reply_error(req, 502, "upstream_error", "%s",
				    msg && msg[0] ? msg : ab_strerror(rc));
	}
}

static bool need_kb(struct ab_http_req *req)
{
	if (kb_of(req))
		return true;
	ab_http_reply_error(req, 503, "unavailable", "the knowledge base is not configured here");
	return false;
}

/* tags: a JSON array, or a comma-separated list (forms). New reference. */
static json_t *parse_tags(const char *s, size_t len)
{
	json_t *j = json_loadb(s, len, 0, NULL);
	if (j)
		return j;
	json_t *a = json_array();
	size_t i = 0;
	while (i < len) {
		size_t j0 = i;
		while (i < len && s[i] != ',')
			i++;
		size_t b = j0, e = i;
		while (b < e && (s[b] == ' ' || s[b] == '\t'))
			b++;
		while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
			e--;
		if (e > b)
			json_array_append_new(a, json_stringn(s + b, e - b));
		i++;
	}
	return a;
}

static bool url_ok(const char *u)
{
	return !strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8);
}

void ab_kb_h_add(struct ab_http_req *req)
{
	if (!need_kb(req))
		return;
	struct ab_kb *kb = kb_of(req);
	const struct ab_config *cfg = ((struct ab_service *)req->ud)->cfg;
	struct ab_kb_doc_in in = {0};
	char err[512] = "";
	json_t *body = NULL, *tags = NULL, *out = NULL;
	struct ab_httpc_req fetch = {0};
	char *strs[5] = {0}; /* owned copies of form fields */
	const char *ct = ab_http_header(req, "Content-Type");
	char boundary[72];
	if (ct && ab_multipart_boundary(ct, boundary, sizeof(boundary)) == 0) {
		struct ab_part parts[16];
		int n = req->body ? ab_multipart_parse(req->body, req->body_len, boundary, parts, 16)
				  : AB_EINVAL;
		if (n < 0) {
			ab_http_reply_error(req, 400, "bad_request", "malformed multipart body");
			goto out;
		}
		for (int i = 0; i < n; i++) {
			struct ab_part *p = &parts[i];
			if (!strcmp(p->name, "file")) {
				in.data = p->data;
				in.len = p->len;
				in.filename = p->filename[0] ? p->filename : NULL;
				if (p->content_type[0] && strcasecmp(p->content_type, "application/octet-stream"))
					in.mime = p->content_type;
			} else if (!strcmp(p->name, "title")) {
				in.title = strs[0] = ab_xstrndup(p->data, p->len);
			} else if (!strcmp(p->name, "source")) {
				in.source = strs[1] = ab_xstrndup(p->data, p->len);
			} else if (!strcmp(p->name, "id")) {
				in.id = strs[2] = ab_xstrndup(p->data, p->len);
			} else if (!strcmp(p->name, "tags")) {
				json_decref(tags);
				tags = parse_tags(p->data, p->len);
			} else if (!strcmp(p->name, "type")) {
				in.mime = strs[3] = ab_xstrndup(p->data, p->len);
			}
		}
		if (!in.data) {
			ab_http_reply_error(req, 400, "bad_request", "the form has no \"file\" field");
			goto out;
		}
		if (!in.source)
			in.source = in.filename;
	} else {
		json_error_t je;
		body = req->body ? json_loadb(req->body, req->body_len, 0, &je) : NULL;
		if (!json_is_object(body)) {
			ab_http_reply_error(req, 400, "bad_request",
					    "expected a multipart upload or a JSON object with text or url");
			goto out;
		}
		const char *text = json_string_value(json_object_get(body, "text"));
		const char *url = json_string_value(json_object_get(body, "url"));
		in.title = json_string_value(json_object_get(body, "title"));
		in.source = json_string_value(json_object_get(body, "source"));
		in.id = json_string_value(json_object_get(body, "id"));
		in.mime = json_string_value(json_object_get(body, "type"));
		in.filename = json_string_value(json_object_get(body, "filename"));
		json_t *t = json_object_get(body, "tags");
		if (t)
			tags = json_incref(t);
		if (text) {
			in.data = text;
			in.len = json_string_length(json_object_get(body, "text"));
			if (!in.mime && !in.filename)
				in.mime = "text/plain";
		} else if (url) {
			if (!url_ok(url)) {
				ab_http_reply_error(req, 400, "bad_request", "url must be http:// or https://");
				goto out;
			}
			fetch.url = url;
			fetch.timeout_ms = 30000;
			fetch.max_response = (size_t)cfg->kb.max_upload_mb << 20;
			int rc = ab_httpc_run(&fetch, 1);
			if (rc < 0 || fetch.status != 200) {
				ab_http_reply_error(req, 502, "fetch_failed", "cannot fetch %s: %s", url,
						    rc < 0 ? ab_strerror(rc) : "the server did not answer 200");
				goto out;
			}
			in.data = fetch.resp;
			in.len = fetch.resp_len;
			if (!in.source)
				in.source = url;
			if (!in.filename) {
				const char *slash = strrchr(url, '/');
				in.filename = slash && slash[1] ? slash + 1 : NULL;
			}
		} else {
			ab_http_reply_error(req, 400, "bad_request", "give text, url, or upload a file");
			goto out;
		}
	}
	in.tags = tags;
	int rc = ab_kb_add(kb, &in, true, &out, err, sizeof(err));
	if (rc < 0) {
		reply_rc(req, rc, err);
		goto out;
	}
	bool existing = json_is_true(json_object_get(out, "existing"));
	ab_log(AB_LOG_INFO, "kb: %s document %s (%zu bytes)", existing ? "already have" : "queued",
	       json_string_value(json_object_get(out, "id")), in.len);
	ab_http_reply_jansson(req, existing ? 200 : 202, out);
out:
	json_decref(out);
	json_decref(body);
	json_decref(tags);
	ab_httpc_req_clear(&fetch);
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(strs[i]);
}

void ab_kb_h_list(struct ab_http_req *req)
{
	if (!need_kb(req))
		return;
	long long offset = 0, limit = 50;
	const char *o = ab_http_query(req, "offset"), *l = ab_http_query(req, "limit");
	if ((o && ab_parse_int(o, 0, 1LL << 40, &offset) != 0) ||
	    (l && ab_parse_int(l, 1, 1000, &limit) != 0)) {
		ab_http_reply_error(req, 400, "bad_request", "offset >= 0, limit from 1 to 1000");
		return;
	}
	json_t *out = NULL;
	int rc = ab_kb_list(kb_of(req), (long)offset, (long)limit, &out);
	if (rc < 0) {
		reply_rc(req, rc, NULL);
		return;
	}
	ab_http_reply_jansson(req, 200, out);
	json_decref(out);
}

void ab_kb_h_get(struct ab_http_req *req)
{
	if (!need_kb(req))
		return;
	json_t *out = NULL;
	int rc = ab_kb_get(kb_of(req), ab_http_param(req, "id"), &out);
	if (rc < 0) {
		reply_rc(req, rc, rc == AB_ENOTFOUND ? "no such document" : NULL);
		return;
	}
	ab_http_reply_jansson(req, 200, out);
	json_decref(out);
}

void ab_kb_h_delete(struct ab_http_req *req)
{
	if (!need_kb(req))
		return;
	const char *id = ab_http_param(req, "id");
	int rc = ab_kb_delete(kb_of(req), id);
	if (rc < 0) {
		reply_rc(req, rc, rc == AB_ENOTFOUND ? "no such document" : NULL);
		return;
	}
	ab_log(AB_LOG_INFO, "kb: document %s deleted", id);
	ab_http_reply(req, 204, "application/json", "", 0);
}

void ab_kb_h_search(struct ab_http_req *req)
{
	if (!need_kb(req))
		return;
	json_t *b = req->json;
	const char *query = json_string_value(json_object_get(b, "query"));
	json_t *k = json_object_get(b, "k");
	const char *mode = json_string_value(json_object_get(b, "mode"));
	int m = ab_kb_mode_parse(mode);
	if (!query || m < 0 || (k && !json_is_integer(k))) {
		ab_http_reply_error(req, 400, "bad_request",
				    "expected {\"query\": string, \"k\": integer, \"mode\": hybrid|bm25|vector, "
				    "\"filters\": {...}}");
		return;
	}
	struct ab_kb_query q = {
		.text = query,
		.k = k ? (int)json_integer_value(k) : 5,
		.mode = (enum ab_kb_mode)m,
		.filters = json_object_get(b, "filters"),
		.per_document = json_is_true(json_object_get(b, "per_document")),
	};
	char err[512] = "";
	json_t *out = NULL;
	double t0 = ab_now_ms_f();
	int rc = ab_kb_search(kb_of(req), &q, &out, err, sizeof(err));
	if (rc < 0) {
		reply_rc(req, rc, err);
		return;
	}
	json_object_set_new(out, "took_ms", json_real(ab_now_ms_f() - t0));
	ab_http_reply_jansson(req, 200, out);
	json_decref(out);
}

void ab_kb_h_stats(struct ab_http_req *req)
{
	if (!need_kb(req))
		return;
	json_t *out = NULL;
	int rc = ab_kb_stats(kb_of(req), &out);
	if (rc < 0) {
		reply_rc(req, rc, NULL);
		return;
	}
	ab_http_reply_jansson(req, 200, out);
	json_decref(out);
}

void ab_job_h_get(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	json_t *out = NULL;
	int rc = ab_jobs_get(svc->redis, ab_http_param(req, "id"), &out);
	if (rc < 0) {
		reply_rc(req, rc, rc == AB_ENOTFOUND ? "no such job" : NULL);
		return;
	}
	ab_http_reply_jansson(req, 200, out);
	json_decref(out);
}

void ab_job_h_cancel(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	int rc = ab_jobs_cancel(svc->redis, ab_http_param(req, "id"));
	if (rc < 0) {
		reply_rc(req, rc, rc == AB_ENOTFOUND ? "no such job" : NULL);
		return;
	}
	json_t *out = NULL;
	if (ab_jobs_get(svc->redis, ab_http_param(req, "id"), &out) == 0) {
		ab_http_reply_jansson(req, 202, out);
		json_decref(out);
	} else {
		ab_http_reply(req, 202, "application/json", "{}", 2);
	}
}

struct job_stream {
	struct ab_kb_api *api;
	struct ab_redis *redis;
	struct ab_http_stream *s;
	char id[AB_JOB_ID_MAX];
};

static bool terminal(const char *state)
{
	return state && (!strcmp(state, "done") || !strcmp(state, "failed") ||
			 !strcmp(state, "cancelled"));
}

static void *job_stream_main(void *arg)
{
	struct job_stream *js = arg;
	char *last = NULL;
	int64_t deadline = ab_now_ms() + 24LL * 3600 * 1000;
	for (;;) {
		pthread_mutex_lock(&js->api->lock);
		bool stop = js->api->stopping;
		pthread_mutex_unlock(&js->api->lock);
		if (stop || ab_http_stream_closed(js->s) || ab_now_ms() >= deadline)
			break;
		json_t *j = NULL;
		int rc = ab_jobs_get(js->redis, js->id, &j);
		if (rc == AB_ENOTFOUND) {
			ab_http_stream_printf(js->s, "event: error\ndata: {\"error\":\"no such job\"}\n\n");
			break;
		}
		if (rc == 0) {
			char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
			const char *state = json_string_value(json_object_get(j, "state"));
			bool end = terminal(state);
			if (!last || strcmp(last, txt) != 0)
				ab_http_stream_printf(js->s, "event: %s\ndata: %s\n\n", end ? state : "progress",
						      txt);
			free(last);
			last = txt;
			json_decref(j);
			if (end)
				break;
		} else {
			ab_http_stream_printf(js->s, ": redis unavailable, retrying\n\n");
		}
		ab_sleep_ms(250);
	}
	free(last);
	ab_http_stream_close(js->s);
	struct ab_kb_api *a = js->api;
	free(js);
	pthread_mutex_lock(&a->lock);
	a->streams--;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

void ab_job_h_events(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	const char *id = ab_http_param(req, "id");
	json_t *j = NULL;
	int rc = ab_jobs_get(svc->redis, id, &j);
	if (rc < 0) {
		reply_rc(req, rc, rc == AB_ENOTFOUND ? "no such job" : NULL);
		return;
	}
	json_decref(j);
	struct ab_kb_api *a = ab_coord_kb(svc);
	if (!a) {
		ab_http_reply_error(req, 503, "unavailable", "the knowledge base is not configured here");
		return;
	}
	struct job_stream *js = ab_xcalloc(1, sizeof(*js));
	js->api = a;
	js->redis = svc->redis;
	ab_strlcpy(js->id, id, sizeof(js->id));
	js->s = ab_http_reply_stream(req, 200, "text/event-stream");
	if (!js->s) {
		free(js);
		return;
	}
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&a->lock);
	a->streams++;
	pthread_mutex_unlock(&a->lock);
	if (pthread_create(&th, &attr, job_stream_main, js) != 0) {
		ab_http_stream_close(js->s);
		free(js);
		pthread_mutex_lock(&a->lock);
		a->streams--;
		pthread_mutex_unlock(&a->lock);
	}
	pthread_attr_destroy(&attr);
}

int ab_kb_api_new(struct ab_service *svc, struct ab_kb_api **out, char *err, size_t errlen)
{
	const struct ab_config *cfg = svc->cfg;
	struct ab_kb_api *a = ab_xcalloc(1, sizeof(*a));
	a->svc = svc;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	char *llm_url = NULL;
	const char *url = cfg->kb.embed_url;
	const char *key = cfg->kb.embed_api_key;
	if (!strcmp(cfg->kb.embedder, "llm")) {
		/* our own llm role: its URL from the config, the cluster token */
		url = llm_url = ab_config_service_url(cfg, AB_ROLE_LLM);
		key = svc->secrets.cluster_token;
	}
	struct ab_kb_opts o = {
		.embedder = cfg->kb.embedder,
		.embed_model = cfg->kb.embed_model,
		.embed_url = url,
		.embed_api_key = key,
		.chunk_tokens = cfg->kb.chunk_tokens,
		.chunk_overlap = cfg->kb.chunk_overlap,
		.max_bytes = (size_t)cfg->kb.max_upload_mb << 20,
	};
	int rc = ab_kb_new(svc->redis, &o, &a->kb);
	free(llm_url);
	if (rc < 0) {
		snprintf(err, errlen, "kb.embedder %s needs kb.embed_model%s", cfg->kb.embedder,
			 strcmp(cfg->kb.embedder, "llm") ? " and kb.embed_url" : "");
		free(a);
		return rc;
	}
	if (cfg->kb.workers > 0) {
		struct ab_jobs_opts jo = {
			.queue = AB_KB_QUEUE,
			.workers = cfg->kb.workers,
			.visibility_ms = cfg->kb.job_visibility_ms,
			.max_attempts = cfg->kb.job_attempts,
		};
		rc = ab_jobs_start(svc->redis, &jo, ab_kb_job, a->kb, &a->workers);
		if (rc < 0) {
			snprintf(err, errlen, "cannot start the ingestion workers: %s", ab_strerror(rc));
			ab_kb_free(a->kb);
			free(a);
			return rc;
		}
	}
	*out = a;
	return 0;
}

void ab_kb_api_free(struct ab_kb_api *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	while (a->streams > 0) /* each notices within one 250 ms poll */
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
	ab_jobs_stop(a->workers);
	ab_kb_free(a->kb);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

struct ab_kb *ab_kb_api_kb(struct ab_kb_api *a)
{
	return a ? a->kb : NULL;
}
