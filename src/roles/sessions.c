/*
 * sessions.c - chat sessions in the coordinator (sessions.h).
 *
 * Storage (keys.h): ab:chat:<id> is a hash with the session (title,
 * model, system prompt, times), ab:chat:<id>:msgs a list of messages as
 * JSON, and ab:chats a sorted set of session ids by last update.
 *
 * Answers. POST .../messages saves the user's message, answers with
 * server-sent events, and hands the turn to the relay: one thread that
 * drives every running answer with libcurl's multi interface, each a
 * streaming POST /api/chat to an llm role (picked from the registry,
 * else the configured one). NDJSON lines from the llm become "token"
 * events as they arrive; at the end the assistant's message is saved and
 * a "done" event closes the stream. Waiting answers cost a transfer in
 * the multi handle, not a thread. A cancel (or the browser going away)
 * aborts the transfer - the llm role then stops generating - and the
 * partial answer is saved marked "cancelled". One answer per session runs
 * at a time (409 otherwise).
 */
#include "sessions.h"

#include "kb.h"
#include "kb_api.h"

#include "keys.h"
#include "log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HISTORY 200

struct turn {
	struct ab_chat *chat;
	char session[40];
	char model[256];
	struct ab_http_stream *out;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	struct ab_buf line;     /* partial NDJSON line */
	struct ab_buf answer;
	json_t *stats;          /* the llm's final object */
	json_t *sources;        /* passages given to the model ("rag": true), or NULL */
	char error[256];
	atomic_bool cancelled; /* set by the cancel route, read by the relay */
	bool added;
	int64_t started_ms;
	struct turn *next;
};

struct ab_chat {
	struct ab_service *svc;
	pthread_mutex_t lock;
	pthread_t thread;
	bool started, stop;
	CURLM *multi;
	struct turn *pending;   /* to add to the multi handle */
	struct turn *running;
	unsigned rr;            /* round robin over llm instances */
};

/* ---- storage ------------------------------------------------------------- */

static bool id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

/* The session hash as a JSON object, NULL with *err (AB_ENOTFOUND if none). */
static json_t *load_session(struct ab_redis *r, const char *id, int *err)
{
	redisReply *rep = ab_redis_cmd(r, err, "HGETALL " AB_KEY_CHAT_PREFIX "%s", id);
	if (!rep)
		return NULL;
	json_t *o = NULL;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
		o = json_object();
		for (size_t i = 0; i + 1 < rep->elements; i += 2) {
			const char *k = rep->element[i]->str, *v = rep->element[i + 1]->str;
			if (!strcmp(k, "created_ms") || !strcmp(k, "updated_ms"))
				json_object_set_new(o, k, json_integer(strtoll(v, NULL, 10)));
			else
				json_object_set_new(o, k, json_string(v));
		}
	} else if (rep->type == REDIS_REPLY_ARRAY) {
		*err = AB_ENOTFOUND;
	} else {
		*err = AB_EREDIS;
	}
	freeReplyObject(rep);
	return o;
}

static json_t *load_messages(struct ab_redis *r, const char *id, int *err)
{
	redisReply *rep = ab_redis_cmd(r, err, "LRANGE " AB_KEY_CHAT_PREFIX "%s:msgs -%d -1", id,
				       MAX_HISTORY);
	if (!rep)
		return NULL;
	json_t *arr = json_array();
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
		json_t *m = json_loadb(rep->element[i]->str, rep->element[i]->len, 0, NULL);
		if (m)
			json_array_append_new(arr, m);
	}
	freeReplyObject(rep);
	return arr;
}

static int save_message(struct ab_redis *r, const char *id, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	char ts[24];
	snprintf(ts, sizeof(ts), "%lld", (long long)ab_wall_ms());
	int err = 0;
	redisReply *a = ab_redis_cmd(r, &err, "RPUSH " AB_KEY_CHAT_PREFIX "%s:msgs %s", id, s);
	redisReply *b = a ? ab_redis_cmd(r, &err, "HSET " AB_KEY_CHAT_PREFIX "%s updated_ms %s", id, ts)
			  : NULL;
	redisReply *c = b ? ab_redis_cmd(r, &err, "ZADD " AB_KEY_CHATS " %s %s", ts, id) : NULL;
	if (a)
		freeReplyObject(a);
	if (b)
		freeReplyObject(b);
	if (c)
		freeReplyObject(c);
	free(s);
	return err == AB_EREDIS ? 0 : err;
}

/* ---- the relay -------------------------------------------------------------- */

static void sse(struct turn *t, const char *event, json_t *data)
{
	char *s = json_dumps(data, JSON_COMPACT);
	ab_http_stream_printf(t->out, "event: %s\ndata: %s\n\n", event, s);
	free(s);
}

/* One NDJSON line of the llm's /api/chat stream. */
static void on_line(struct turn *t, const char *p, size_t n)
{
	json_t *o = json_loadb(p, n, 0, NULL);
	if (!o)
		return;
	const char *err = json_string_value(json_object_get(o, "error"));
	if (err) {
		snprintf(t->error, sizeof(t->error), "%s", err);
	} else {
		const char *piece =
			json_string_value(json_object_get(json_object_get(o, "message"), "content"));
		if (piece && *piece) {
			ab_buf_puts(&t->answer, piece);
			json_t *d = json_pack("{s:s}", "content", piece);
			sse(t, "token", d);
			json_decref(d);
		}
		if (json_is_true(json_object_get(o, "done"))) {
			json_decref(t->stats);
			t->stats = json_incref(o);
		}
	}
	json_decref(o);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
	struct turn *t = ud;
	size_t n = size * nmemb;
	if (t->cancelled || ab_http_stream_closed(t->out)) {
		t->cancelled = true;
		return 0; /* aborts the transfer: the llm stops generating */
	}
	ab_buf_append(&t->line, p, n);
	size_t start = 0;
	for (size_t i = 0; i < t->line.len; i++) {
		if (t->line.data[i] == '\n') {
			on_line(t, t->line.data + start, i - start);
			start = i + 1;
		}
	}
	memmove(t->line.data, t->line.data + start, t->line.len - start);
	t->line.len -= start;
	t->line.data[t->line.len] = '\0';
	return n;
}

static void turn_free(struct turn *t)
{
	if (!t)
		return;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->hdrs);
	free(t->body);
	ab_buf_free(&t->line);
	ab_buf_free(&t->answer);
	json_decref(t->stats);
	json_decref(t->sources);
	if (t->out)
		ab_http_stream_close(t->out);
	free(t);
}

/* Saves the answer (also a partial one) and closes the client's stream. */
static void turn_finish(struct turn *t, CURLcode rc)
{
	struct ab_service *svc = t->chat->svc;
	long status = 0;
	if (t->easy)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (!t->cancelled && !t->error[0] && rc != CURLE_OK)
		snprintf(t->error, sizeof(t->error), "llm unreachable: %s", curl_easy_strerror(rc));
	else if (!t->cancelled && !t->error[0] && status != 200)
		snprintf(t->error, sizeof(t->error), "llm answered http %ld", status);
	if (t->answer.len || t->cancelled) {
		json_t *msg = json_pack("{s:s,s:s,s:I,s:s}", "role", "assistant", "content",
					t->answer.data ? t->answer.data : "", "ts",
					(json_int_t)ab_wall_ms(), "model", t->model);
		if (t->cancelled)
			json_object_set_new(msg, "cancelled", json_true());
		if (t->sources)
			json_object_set(msg, "sources", t->sources);
		save_message(svc->redis, t->session, msg);
		json_t *d = json_pack("{s:O,s:b}", "message", msg, "cancelled", t->cancelled);
		if (t->sources)
			json_object_set(d, "sources", t->sources);
		if (t->stats) {
			json_object_set(d, "eval_count", json_object_get(t->stats, "eval_count"));
			json_object_set(d, "prompt_eval_count",
					json_object_get(t->stats, "prompt_eval_count"));
			json_object_set(d, "done_reason", json_object_get(t->stats, "done_reason"));
		}
		if (t->error[0])
			json_object_set_new(d, "error", json_string(t->error));
		sse(t, "done", d);
		json_decref(d);
		json_decref(msg);
	} else {
		json_t *d = json_pack("{s:s}", "error", t->error[0] ? t->error : "no answer");
		sse(t, "error", d);
		json_decref(d);
	}
	ab_log(t->error[0] ? AB_LOG_WARN : AB_LOG_INFO,
	       "chat %s: %zu bytes answered in %lld ms%s%s%s", t->session, t->answer.len,
	       (long long)(ab_now_ms() - t->started_ms), t->cancelled ? " (cancelled)" : "",
	       t->error[0] ? ": " : "", t->error);
}

static void *relay_main(void *arg)
{
	struct ab_chat *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		while (c->pending) {
			struct turn *t = c->pending;
			c->pending = t->next;
			t->next = c->running;
			c->running = t;
			curl_multi_add_handle(c->multi, t->easy);
			t->added = true;
		}
		/* cancelled turns: abort their transfers now */
		for (struct turn **pp = &c->running; *pp;) {
			struct turn *t = *pp;
			if (t->cancelled || ab_http_stream_closed(t->out)) {
				t->cancelled = true;
				curl_multi_remove_handle(c->multi, t->easy);
				*pp = t->next;
				pthread_mutex_unlock(&c->lock);
				turn_finish(t, CURLE_ABORTED_BY_CALLBACK);
				turn_free(t);
				pthread_mutex_lock(&c->lock);
				pp = &c->running;
				continue;
			}
			pp = &t->next;
		}
		pthread_mutex_unlock(&c->lock);

		int still = 0;
		curl_multi_perform(c->multi, &still);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			pthread_mutex_lock(&c->lock);
			struct turn *t = NULL;
			for (struct turn **pp = &c->running; *pp; pp = &(*pp)->next) {
				if ((*pp)->easy == m->easy_handle) {
					t = *pp;
					*pp = t->next;
					break;
				}
			}
			pthread_mutex_unlock(&c->lock);
			if (!t)
				continue;
			CURLcode rc = m->data.result;
			curl_multi_remove_handle(c->multi, t->easy);
			turn_finish(t, rc);
			turn_free(t);
		}
		curl_multi_poll(c->multi, NULL, 0, 250, NULL);
	}
	/* stopping: cancel what still runs */
	pthread_mutex_lock(&c->lock);
	struct turn *all[2] = {c->running, c->pending};
	c->running = c->pending = NULL;
	pthread_mutex_unlock(&c->lock);
	for (int k = 0; k < 2; k++) {
		while (all[k]) {
			struct turn *t = all[k];
			all[k] = t->next;
			if (t->added)
				curl_multi_remove_handle(c->multi, t->easy);
			t->cancelled = true;
			turn_finish(t, CURLE_ABORTED_BY_CALLBACK);
			turn_free(t);
		}
	}
	return NULL;
}

int ab_chat_new(struct ab_service *svc, struct ab_chat **out, char *err, size_t errlen)
{
	struct ab_chat *c = ab_xcalloc(1, sizeof(*c));
	c->svc = svc;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	(void)err;
	(void)errlen;
	return 0;
}

/* The relay starts with the first answer: a coordinator nobody chats
 * with loads no libcurl. Called with c->lock held. */
static int ensure_relay(struct ab_chat *c)
{
	if (c->started)
		return 0;
	c->multi = curl_multi_init();
	if (!c->multi)
		return AB_EUNAVAIL;
	int rc = pthread_create(&c->thread, NULL, relay_main, c);
	if (rc != 0) {
		curl_multi_cleanup(c->multi);
		c->multi = NULL;
		return -rc;
	}
	c->started = true;
	return 0;
}

void ab_chat_free(struct ab_chat *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	bool started = c->started;
	pthread_mutex_unlock(&c->lock);
	if (started) {
		curl_multi_wakeup(c->multi);
		pthread_join(c->thread, NULL);
		curl_multi_cleanup(c->multi);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* URL of an llm role: a registered instance (round robin), else the
 * configured one when enabled. Caller frees; NULL when none. */
static char *pick_llm(struct ab_chat *c)
{
	int err = 0;
	json_t *list = ab_registry_list(c->svc->redis, &err);
	const char *urls[64];
	size_t n = 0, i;
	json_t *e;
	json_array_foreach(list, i, e)
	{
		const char *role = json_string_value(json_object_get(e, "role"));
		const char *url = json_string_value(json_object_get(e, "url"));
		if (role && url && !strcmp(role, "llm") && n < AB_ARRAY_LEN(urls))
			urls[n++] = url;
	}
	char *out = NULL;
	if (n)
		out = ab_xstrdup(urls[__atomic_fetch_add(&c->rr, 1, __ATOMIC_RELAXED) % n]);
	else if (c->svc->cfg->services[AB_ROLE_LLM].enabled)
		out = ab_config_service_url(c->svc->cfg, AB_ROLE_LLM);
	json_decref(list);
	return out;
}

/* ---- handlers ------------------------------------------------------------------ */

static struct ab_chat *chat_of(struct ab_http_req *req)
{
	return ab_coord_chat(req->ud);
}

static struct ab_redis *redis_of(struct ab_http_req *req)
{
	return ((struct ab_service *)req->ud)->redis;
}

static const char *str_field(json_t *o, const char *k, size_t max, const char **why)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || json_string_length(v) > max) {
		static char msg[80];
		snprintf(msg, sizeof(msg), "\"%s\" must be a string of at most %zu bytes", k, max);
		*why = msg;
		return NULL;
	}
	return json_string_value(v);
}

void ab_chat_h_create(struct ab_http_req *req)
{
	const char *why = NULL;
	json_t *b = req->json;
	if (!json_is_object(b)) {
		ab_http_reply_error(req, 400, "bad_request", "expected a JSON object");
		return;
	}
	const char *title = str_field(b, "title", 200, &why);
	const char *model = str_field(b, "model", 200, &why);
	const char *system = str_field(b, "system", 16384, &why);
	if (why) {
		ab_http_reply_error(req, 400, "bad_request", "%s", why);
		return;
	}
	struct ab_service *svc = req->ud;
	if (!model || !*model)
		model = svc->cfg->llm.model;
	char id[33];
	ab_random_hex(id, 16);
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)ab_wall_ms());
	const char *argv[] = {"HSET", NULL, "id", id, "title", title ? title : "New chat",
			      "model", model ? model : "", "system", system ? system : "",
			      "created_ms", now, "updated_ms", now};
	char key[64];
	snprintf(key, sizeof(key), AB_KEY_CHAT_PREFIX "%s", id);
	argv[1] = key;
	int err = 0;
	redisReply *r = ab_redis_cmdargv(svc->redis, &err, (int)AB_ARRAY_LEN(argv), argv, NULL);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		ab_service_reply_redis_error(req, err, r);
		return;
	}
	freeReplyObject(r);
	r = ab_redis_cmd(svc->redis, &err, "ZADD " AB_KEY_CHATS " %s %s", now, id);
	if (r)
		freeReplyObject(r);
	json_t *s = load_session(svc->redis, id, &err);
	ab_http_reply_jansson(req, 201, s);
	json_decref(s);
}

void ab_chat_h_list(struct ab_http_req *req)
{
	struct ab_redis *rd = redis_of(req);
	int err = 0;
	redisReply *r = ab_redis_cmd(rd, &err, "ZREVRANGE " AB_KEY_CHATS " 0 199");
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		ab_service_reply_redis_error(req, err, r);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < r->elements; i++) {
		int e2 = 0;
		json_t *s = load_session(rd, r->element[i]->str, &e2);
		if (s)
			json_array_append_new(arr, s);
	}
	freeReplyObject(r);
	json_t *o = json_pack("{s:o}", "sessions", arr);
	ab_http_reply_jansson(req, 200, o);
	json_decref(o);
}

/* Loads the session of the {id} parameter or answers 404/503. */
static json_t *session_or_reply(struct ab_http_req *req, const char **idp)
{
	const char *id = ab_http_param(req, "id");
	int err = 0;
	json_t *s = id_ok(id) ? load_session(redis_of(req), id, &err) : NULL;
	if (!s) {
		if (!id_ok(id) || err == AB_ENOTFOUND)
			ab_http_reply_error(req, 404, "not_found", "no chat session \"%s\"", id);
		else
			ab_service_reply_redis_error(req, err, NULL);
		return NULL;
	}
	*idp = id;
	return s;
}

void ab_chat_h_get(struct ab_http_req *req)
{
	const char *id;
	json_t *s = session_or_reply(req, &id);
	if (!s)
		return;
	int err = 0;
	json_t *msgs = load_messages(redis_of(req), id, &err);
	if (!msgs) {
		json_decref(s);
		ab_service_reply_redis_error(req, err, NULL);
		return;
	}
	json_object_set_new(s, "messages", msgs);
	ab_http_reply_jansson(req, 200, s);
	json_decref(s);
}

void ab_chat_h_update(struct ab_http_req *req)
{
	const char *id;
	json_t *s = session_or_reply(req, &id);
	if (!s)
		return;
	json_decref(s);
	const char *why = NULL;
	json_t *b = req->json;
	const char *fields[] = {"title", "model", "system"};
	size_t max[] = {200, 200, 16384};
	int err = 0;
	for (size_t i = 0; i < 3; i++) {
		const char *v = str_field(b, fields[i], max[i], &why);
		if (why) {
			ab_http_reply_error(req, 400, "bad_request", "%s", why);
			return;
		}
		if (!v)
			continue;
		redisReply *r = ab_redis_cmd(redis_of(req), &err, "HSET " AB_KEY_CHAT_PREFIX "%s %s %s",
					     id, fields[i], v);
		if (!r) {
			ab_service_reply_redis_error(req, err, NULL);
			return;
		}
		freeReplyObject(r);
	}
	s = load_session(redis_of(req), id, &err);
	ab_http_reply_jansson(req, 200, s);
	json_decref(s);
}

void ab_chat_h_delete(struct ab_http_req *req)
{
	const char *id;
	json_t *s = session_or_reply(req, &id);
	if (!s)
		return;
	json_decref(s);
	int err = 0;
	redisReply *r = ab_redis_cmd(redis_of(req), &err,
				     "DEL " AB_KEY_CHAT_PREFIX "%s " AB_KEY_CHAT_PREFIX "%s:msgs", id, id);
	if (r)
		freeReplyObject(r);
	r = ab_redis_cmd(redis_of(req), &err, "ZREM " AB_KEY_CHATS " %s", id);
	if (!r) {
		ab_service_reply_redis_error(req, err, NULL);
		return;
	}
	freeReplyObject(r);
	ab_http_reply(req, 204, "application/json", "", 0);
}

static struct turn *find_turn(struct ab_chat *c, const char *id)
{
	for (struct turn *t = c->running; t; t = t->next)
		if (!strcmp(t->session, id))
			return t;
	for (struct turn *t = c->pending; t; t = t->next)
		if (!strcmp(t->session, id))
			return t;
	return NULL;
}

/* Retrieves passages for a message: hybrid search of the knowledge base
 * ("rag_k" results, default 4; "rag_filters" as for /api/knowledge/search).
 * *sources: [{doc_id, title, page, chunk, score, text}] (caller decrefs);
 * *context: the instructions and numbered passages for the system prompt
 * (caller frees), NULL when nothing was found. */
static int rag_passages(struct ab_service *svc, const json_t *body, const char *question,
			json_t **sources, char **context, char *err, size_t errlen)
{
	struct ab_kb *kb = ab_kb_api_kb(ab_coord_kb(svc));
	*sources = NULL;
	*context = NULL;
	if (!kb) {
		snprintf(err, errlen, "not configured on this coordinator");
		return AB_EUNAVAIL;
	}
	json_t *k = json_object_get(body, "rag_k");
	struct ab_kb_query q = {.text = question, .k = json_is_integer(k) ? (int)json_integer_value(k) : 4,
				.mode = AB_KB_HYBRID, .filters = json_object_get(body, "rag_filters")};
	if (q.k < 1 || q.k > 20) {
		snprintf(err, errlen, "rag_k must be from 1 to 20");
		return AB_EINVAL;
	}
	json_t *res = NULL;
	int rc = ab_kb_search(kb, &q, &res, err, errlen);
	if (rc < 0)
		return rc;
	json_t *list = json_object_get(res, "results");
	*sources = json_array();
	struct ab_buf ctx;
	ab_buf_init(&ctx);
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		json_array_append_new(*sources, json_pack("{s:O, s:O, s:O?, s:O, s:O, s:O?}", "doc_id",
						      json_object_get(r, "doc_id"), "title",
						      json_object_get(r, "title"), "page",
						      json_object_get(r, "page"), "chunk",
						      json_object_get(r, "chunk"), "score",
						      json_object_get(r, "score"), "text",
						      json_object_get(r, "text")));
		if (!ctx.len)
			ab_buf_puts(&ctx, "Answer from the numbered passages below, which come from the "
					  "user's documents. Cite the passages you use as [1], [2], ... "
					  "If they do not contain the answer, say so.\n");
		const char *title = json_string_value(json_object_get(r, "title"));
		json_int_t page = json_integer_value(json_object_get(r, "page"));
		ab_buf_printf(&ctx, "\n[%zu] %s", i + 1, title && *title ? title : "untitled");
		if (page > 0)
			ab_buf_printf(&ctx, ", page %lld", (long long)page);
		ab_buf_printf(&ctx, ":\n%s\n", json_string_value(json_object_get(r, "text"))
							? json_string_value(json_object_get(r, "text"))
							: "");
	}
	json_decref(res);
	if (ctx.len) {
		ab_buf_putc(&ctx, '\0');
		*context = ab_buf_steal(&ctx);
	}
	ab_buf_free(&ctx);
	return 0;
}

void ab_chat_h_message(struct ab_http_req *req)
{
	struct ab_service *svc = req->ud;
	struct ab_chat *c = chat_of(req);
	const char *id;
	const char *why = NULL;
	const char *content = str_field(req->json, "content", 1 << 20, &why);
	if (why || !content || !*content) {
		ab_http_reply_error(req, 400, "bad_request", "%s",
				    why ? why : "\"content\" (the message text) is required");
		return;
	}
	json_t *s = session_or_reply(req, &id);
	if (!s)
		return;
	struct turn *t = NULL;
	json_t *msgs = NULL, *body = NULL;
	/* declared before the first goto out: out frees it */
	json_t *sources = NULL;
	char *llm = NULL;
	int err = 0;
	const char *model = json_string_value(json_object_get(s, "model"));
	const char *rmodel = str_field(req->json, "model", 200, &why);
	if (rmodel && *rmodel)
		model = rmodel;
	if (!model || !*model) {
		ab_http_reply_error(req, 400, "bad_request",
				    "the session has no model; set one with PATCH or services.llm.model");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	bool busy = find_turn(c, id) != NULL;
	pthread_mutex_unlock(&c->lock);
	if (busy) {
		ab_http_reply_error(req, 409, "busy", "an answer is still running in this session; "
				    "cancel it or wait");
		goto out;
	}
	llm = pick_llm(c);
	if (!llm) {
		ab_http_reply_error(req, 503, "no_llm", "no llm service is running or configured");
		goto out;
	}
	msgs = load_messages(svc->redis, id, &err);
	if (!msgs) {
		ab_service_reply_redis_error(req, err, NULL);
		goto out;
	}
	json_t *user = json_pack("{s:s,s:s,s:I}", "role", "user", "content", content, "ts",
				 (json_int_t)ab_wall_ms());
	if ((err = save_message(svc->redis, id, user)) < 0) {
		json_decref(user);
		ab_service_reply_redis_error(req, err, NULL);
		goto out;
	}
	/* "rag": true: passages from the knowledge base go into the prompt */
	char *context = NULL;
	if (json_is_true(json_object_get(req->json, "rag"))) {
		char kerr[256] = "";
		err = rag_passages(svc, req->json, content, &sources, &context, kerr, sizeof(kerr));
		if (err < 0) {
			json_decref(user);
			ab_http_reply_error(req, err == AB_EUNAVAIL ? 503 : err == AB_EINVAL ? 400 : 502,
					    "rag_failed", "knowledge base: %s",
					    kerr[0] ? kerr : ab_strerror(err));
			goto out;
		}
	}
	/* the prompt: system, history (roles and text only), the new message */
	json_t *conv = json_array();
	const char *system = json_string_value(json_object_get(s, "system"));
	if ((system && *system) || context) {
		char *sys = ab_xasprintf("%s%s%s", system ? system : "", system && *system && context ? "\n\n" : "",
					 context ? context : "");
		json_array_append_new(conv, json_pack("{s:s,s:s}", "role", "system", "content", sys));
		free(sys);
	}
	free(context);
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m)
		json_array_append_new(conv, json_pack("{s:O,s:O}", "role", json_object_get(m, "role"),
						      "content", json_object_get(m, "content")));
	json_array_append_new(conv, json_pack("{s:s,s:s}", "role", "user", "content", content));
	json_decref(user);
	body = json_pack("{s:s,s:o,s:b}", "model", model, "messages", conv, "stream", 1);
	json_t *opts = json_object_get(req->json, "options");
	if (json_is_object(opts))
		json_object_set(body, "options", opts);

	t = ab_xcalloc(1, sizeof(*t));
	t->chat = c;
	t->sources = sources;
	sources = NULL;
	t->started_ms = ab_now_ms();
	ab_strlcpy(t->session, id, sizeof(t->session));
	ab_strlcpy(t->model, model, sizeof(t->model));
	t->body = json_dumps(body, JSON_COMPACT);
	t->easy = curl_easy_init();
	if (!t->easy) {
		ab_http_reply_error(req, 503, "unavailable", "libcurl is not available");
		goto out;
	}
	char *url = ab_xasprintf("%s/api/chat", llm);
	char *auth = ab_xasprintf("Authorization: Bearer %s", svc->secrets.cluster_token);
	t->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	t->hdrs = curl_slist_append(t->hdrs, auth);
	curl_easy_setopt(t->easy, CURLOPT_URL, url);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->hdrs);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)svc->cfg->probe_ms * 4);
	free(url);
	free(auth);

	pthread_mutex_lock(&c->lock);
	int rc = ensure_relay(c);
	if (rc < 0) {
		pthread_mutex_unlock(&c->lock);
		ab_http_reply_error(req, 503, "unavailable", "cannot start the chat relay: %s",
				    ab_strerror(rc));
		goto out;
	}
	t->out = ab_http_reply_stream(req, 200, "text/event-stream");
	if (!t->out) {
		pthread_mutex_unlock(&c->lock);
		goto out;
	}
	json_t *hello = json_pack("{s:s,s:s,s:s}", "session", id, "model", model, "llm", llm);
	if (t->sources)
		json_object_set(hello, "sources", t->sources);
	sse(t, "start", hello);
	json_decref(hello);
	t->next = c->pending;
	c->pending = t;
	t = NULL;
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
out:
	turn_free(t);
	free(llm);
	json_decref(sources);
	json_decref(msgs);
	json_decref(body);
	json_decref(s);
}

void ab_chat_h_cancel(struct ab_http_req *req)
{
	struct ab_chat *c = chat_of(req);
	const char *id = ab_http_param(req, "id");
	pthread_mutex_lock(&c->lock);
	struct turn *t = id_ok(id) ? find_turn(c, id) : NULL;
	if (t)
		t->cancelled = true;
	pthread_mutex_unlock(&c->lock);
	if (!t) {
		ab_http_reply_error(req, 404, "not_found", "no answer is running in session \"%s\"",
				    id ? id : "");
		return;
	}
	curl_multi_wakeup(c->multi);
	ab_http_reply_json(req, 202, "{\"cancelled\":true}", 18);
}
