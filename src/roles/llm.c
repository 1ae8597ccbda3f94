/*
 * llm.c - the llm role: an Ollama- and OpenAI-compatible LLM server on
 * AutoBot's own engine (src/llm), or a pass-through to an existing
 * Ollama/OpenAI server (services.llm.provider).
 *
 * Requests and threads. HTTP handlers never run the engine: they check
 * the request, resolve the model name to a file, answer at once with a
 * stream (NDJSON for Ollama, server-sent events for OpenAI, a single JSON
 * document written at the end for "stream": false) and put a job on a
 * bounded FIFO queue (llm.queue_max; 429 with Retry-After when full).
 * llm.parallel worker threads take jobs in arrival order, so requests are
 * served fairly, and write tokens into the job's stream as they come. A
 * client that goes away makes the next write fail (AB_ECLOSED) and the
 * worker stops that generation at once; for "stream": false a space is
 * written every few tokens (JSON allows leading white space) so that a
 * vanished client is noticed there too.
 *
 * Models. A model is loaded on first use into a slot and stays for its
 * keep_alive (request field or llm.keep_alive_s); a reaper thread unloads
 * idle slots when they expire. At most llm.max_loaded slots exist; a new
 * load first evicts the least recently used idle slot, and the engine's
 * own memory check (llm.mem_budget_mb or MemAvailable) refuses a model
 * that does not fit. Each slot keeps its contexts (KV caches) with the
 * tokens they hold, so a follow-up request that shares a prefix with the
 * previous one (a chat turn) evaluates only the new tokens.
 *
 * Because the HTTP status goes out before the worker runs, failures found
 * by the worker (a model file that does not load) are reported inside the
 * body, as Ollama does for streams: {"error":"..."}.
 *
 * Embeddings. A slot holds either a decoder (model.h) or a BERT-family
 * encoder (bert.h: GGUF architectures bert and nomic-bert, the embedding
 * models people pull as all-minilm, bge or nomic-embed-text); which one is
 * decided when the file is loaded, by its general.architecture. The
 * three embedding routes use the encoder's pooled, normalised output when
 * the named model is an encoder, and for a decoder the mean of its final
 * normalised hidden states (scaled to unit length) as before. Encoders
 * only embed: generation and chat on one answer with an error. Inputs
 * longer than the context are cut (keeping [SEP] for encoders) unless the
 * request says "truncate": false, which makes them an error, as Ollama
 * does.
 *
 * Structured output. "format": "json" (Ollama's two routes) and
 * response_format {"type": "json_object"} (OpenAI's) constrain the
 * answer to a JSON object with jsonfmt.h: before every draw, the logits
 * of the tokens whose bytes would break the document are set to
 * -INFINITY, and the generation ends ("stop") the moment the object is
 * complete. The token bytes are laid out once per loaded model (the
 * slot's jvocab, built by the first such job). Only the tokens the
 * sampler could pick are tried: the top_k highest logits (at least 16;
 * 256 when top_k is off; 16 for greedy decoding), and the whole
 * vocabulary only when none of them is valid, so a token usually costs
 * one extra pass over the logits and a few dozen short validations
 * (about 0.1 ms for a 32k vocabulary; a full scan about 0.3-0.6 ms).
 * The mask also gets the tokens left (num_predict, room in the context)
 * and, as they run out, keeps only tokens that leave the object
 * closable in time, so an answer cut by the budget is still JSON. A
 * JSON schema as format is refused (400): no grammar beyond plain JSON.
 */
#include "service.h"

#include "bert.h"
#include "catalog.h"
#include "chat.h"
#include "jsonfmt.h"
#include "log.h"
#include "model.h"
#include "sampler.h"
#include "utf8.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 64
#define MAX_CTX_PER_SLOT 8
#define MAX_STOPS 8
#define MAX_INPUTS 256

enum job_kind {
	J_GENERATE,    /* POST /api/generate */
	J_CHAT,        /* POST /api/chat */
	J_OAI_CHAT,    /* POST /v1/chat/completions */
	J_OAI_COMPL,   /* POST /v1/completions */
	J_EMBED,       /* POST /api/embed */
	J_EMBED_OLD,   /* POST /api/embeddings */
	J_OAI_EMBED,   /* POST /v1/embeddings */
	J_PROXY,       /* provider mode: forward */
};

struct ctx_slot {
	struct ab_llm_ctx *ctx;
	struct ab_bert_ctx *bctx; /* encoder slots: instead of ctx */
	int32_t *hist;   /* tokens in the KV cache */
	int n_hist;
	bool busy;
};

struct slot {
	char *path;
	char *name;
	struct ab_llm_model *model; /* a decoder, or NULL and: */
	struct ab_bert *bert;       /* a BERT-family encoder (embeddings only) */
	struct ab_jsonfmt_vocab *jvocab; /* token bytes for format json; built on first use */
	enum ab_chat_family fam;
	struct ctx_slot ctxs[MAX_CTX_PER_SLOT];
	int busy;        /* jobs using it */
	int64_t last_used_ms;
	int64_t expires_ms;  /* INT64_MAX = never */
	int64_t loaded_wall_ms;
};

struct job {
	enum job_kind kind;
	char *model;       /* as the client named it */
	char *path;        /* resolved file */
	char *prompt;      /* generate / completions */
	char *system;      /* generate: system prompt */
	json_t *messages;  /* chat kinds */
	json_t *context;   /* generate: previous context ids */
	char *inputs[MAX_INPUTS];
	size_t n_inputs;
	struct ab_sampler_params sp;
	int num_predict;
	int num_ctx;
	int threads;
	char *stops[MAX_STOPS];
	size_t n_stops;
	bool raw;
	bool stream;
	bool json_fmt;         /* format json / response_format json_object */
	bool no_truncate;      /* embeddings: "truncate": false */
	bool b64;              /* /v1/embeddings: "encoding_format": "base64" */
	int64_t keep_alive_s;  /* <0 forever */
	bool oai_usage;        /* stream_options.include_usage */
	/* proxy */
	char *proxy_url;
	char *proxy_body;
	struct ab_http_stream *out;
	int64_t enqueued_ms;
	char id[48];
	struct job *next;
};

struct llm_state {
	struct ab_service *svc;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	int qlen;
	int active;
	bool stop;
	pthread_t workers[64];
	int n_workers;
	pthread_t reaper;
	bool reaper_started;
	struct slot *slots[MAX_SLOTS];
	int n_slots;
	char *models_dir;
	char *ollama_dir;
	bool proxy;
};

static struct llm_state *state_of(struct ab_http_req *req)
{
	return ((struct ab_service *)req->ud)->state;
}

/* ---- small helpers ------------------------------------------------------ */

/* RFC 3339 UTC time with nanoseconds, as Ollama prints created_at. */
static void iso_now(char *out, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

static void iso_time(int64_t unix_s, char *out, size_t n)
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* keep_alive: a number of seconds or a duration "10m", "1h", "30s",
 * "-1" (forever). Returns AB_EINVAL on anything else. */
static int parse_keep_alive(const json_t *v, int64_t *out)
{
	if (json_is_integer(v) || json_is_real(v)) {
		double d = json_number_value(v);
		*out = d < 0 ? -1 : (int64_t)d;
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s || !*s)
		return AB_EINVAL;
	char *end;
	double d = strtod(s, &end);
	if (end == s)
		return AB_EINVAL;
	double mul = 1;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1;
	else if (!strcmp(end, "ms"))
		mul = 0.001;
	else if (!strcmp(end, "m"))
		mul = 60;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else
		return AB_EINVAL;
	*out = d < 0 ? -1 : (int64_t)(d * mul);
	return 0;
}

static bool is_oai_kind(enum job_kind k)
{
	return k == J_OAI_CHAT || k == J_OAI_COMPL || k == J_OAI_EMBED;
}

static bool is_oai(const struct job *j)
{
	return is_oai_kind(j->kind);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->model);
	free(j->path);
	free(j->prompt);
	free(j->system);
	json_decref(j->messages);
	json_decref(j->context);
	for (size_t i = 0; i < j->n_inputs; i++)
		free(j->inputs[i]);
	for (size_t i = 0; i < j->n_stops; i++)
		free(j->stops[i]);
	free(j->proxy_url);
	free(j->proxy_body);
	if (j->out)
		ab_http_stream_close(j->out);
	free(j);
}

static int write_str(struct job *j, const char *s, size_t n)
{
	return ab_http_stream_write(j->out, s, n);
}

static int write_json_line(struct job *j, json_t *o, bool sse)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
	int rc;
	if (sse)
		rc = ab_http_stream_printf(j->out, "data: %s\n\n", s);
	else
		rc = ab_http_stream_printf(j->out, "%s\n", s);
	free(s);
	return rc;
}

/* Reports a failure found by a worker inside the body. */
static void job_error(struct job *j, const char *fmt, ...) AB_PRINTF(2, 3);
static void job_error(struct job *j, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ab_log(AB_LOG_WARN, "llm request failed: %s", msg);
	bool oai = is_oai(j);
	json_t *e = oai ? json_pack("{s:{s:s,s:s}}", "error", "message", msg, "type", "server_error")
			: json_pack("{s:s}", "error", msg);
	write_json_line(j, e, oai && j->stream);
	json_decref(e);
}

/* ---- model slots -------------------------------------------------------- */

static void slot_free(struct slot *s)
{
	if (!s)
		return;
	for (int i = 0; i < MAX_CTX_PER_SLOT; i++) {
		ab_llm_ctx_free(s->ctxs[i].ctx);
		ab_bert_ctx_free(s->ctxs[i].bctx);
		free(s->ctxs[i].hist);
	}
	ab_llm_model_free(s->model);
	ab_bert_free(s->bert);
	ab_jsonfmt_vocab_free(s->jvocab);
	free(s->path);
	free(s->name);
	free(s);
}

static int64_t expiry(const struct llm_state *st, int64_t keep_alive_s)
{
	if (keep_alive_s == INT64_MIN)
		keep_alive_s = st->svc->cfg->llm.keep_alive_s;
	if (keep_alive_s < 0)
		return INT64_MAX;
	return ab_now_ms() + keep_alive_s * 1000;
}

/* Unloads idle slots, oldest first, until at most keep remain.
 * Called with the lock held. */
static void evict_idle(struct llm_state *st, int keep)
{
	while (st->n_slots > keep) {
		int victim = -1;
		for (int i = 0; i < st->n_slots; i++)
			if (!st->slots[i]->busy &&
			    (victim < 0 || st->slots[i]->last_used_ms < st->slots[victim]->last_used_ms))
				victim = i;
		if (victim < 0)
			return;
		ab_log(AB_LOG_INFO, "unloading model %s", st->slots[victim]->name);
		slot_free(st->slots[victim]);
		st->slots[victim] = st->slots[--st->n_slots];
	}
}

/* Loads the file of job j into s: an encoder (s->bert) when its
 * architecture is a BERT-family one, else a decoder (s->model). */
static int load_into(struct llm_state *st, const struct job *j, struct slot *s, char *err,
		     size_t errlen)
{
	size_t budget = (size_t)st->svc->cfg->llm.mem_budget_mb * 1024 * 1024;
	if (ab_bert_probe(j->path) == 1) {
		struct ab_bert_load_opts bo = {.mem_budget = budget, .n_ctx = j->num_ctx};
		return ab_bert_load(j->path, &bo, &s->bert, err, errlen);
	}
	struct ab_llm_load_opts lo = {.mem_budget = budget, .n_ctx = j->num_ctx};
	int rc = ab_llm_model_load(j->path, &lo, &s->model, err, errlen);
	if (rc == 0) /* F16 keys and values, as llama.cpp and Ollama keep them */
		ab_llm_model_set_kv_f16(s->model, ab_llm_kv_f16_default(s->model));
	return rc;
}

/* Finds or loads the model of job j and marks it busy. Returns the slot,
 * or NULL with a message in err. */
static struct slot *acquire_model(struct llm_state *st, struct job *j, double *load_ms,
				  char *err, size_t errlen)
{
	*load_ms = 0;
	pthread_mutex_lock(&st->lock);
	for (int i = 0; i < st->n_slots; i++) {
		if (strcmp(st->slots[i]->path, j->path) == 0) {
			struct slot *s = st->slots[i];
			s->busy++;
			pthread_mutex_unlock(&st->lock);
			return s;
		}
	}
	evict_idle(st, st->svc->cfg->llm.max_loaded - 1);
	pthread_mutex_unlock(&st->lock);

	double t0 = ab_now_ms_f();
	struct slot *s = ab_xcalloc(1, sizeof(*s));
	int rc = load_into(st, j, s, err, errlen);
	if (rc < 0) {
		/* maybe other idle models hold the memory: free them and retry */
		pthread_mutex_lock(&st->lock);
		int before = st->n_slots;
		evict_idle(st, 0);
		bool freed = st->n_slots < before;
		pthread_mutex_unlock(&st->lock);
		if (!freed || load_into(st, j, s, err, errlen) < 0) {
			slot_free(s);
			return NULL;
		}
	}
	*load_ms = ab_now_ms_f() - t0;
	s->path = ab_xstrdup(j->path);
	s->name = ab_xstrdup(j->model);
	s->loaded_wall_ms = ab_wall_ms();
	if (s->bert) {
		const struct ab_bert_hparams *bh = ab_bert_hparams(s->bert);
		ab_log(AB_LOG_INFO,
		       "loaded embedding model %s from %s in %.0f ms (%s, %d dimensions, %s "
		       "pooling, context %d)",
		       s->name, s->path, *load_ms, bh->arch, bh->n_embd,
		       bh->pooling == AB_BERT_POOL_CLS	  ? "cls"
		       : bh->pooling == AB_BERT_POOL_LAST ? "last"
							  : "mean",
		       bh->n_ctx_train);
	} else {
		char *tmpl = NULL;
		const struct ab_gguf *g = ab_llm_model_gguf(s->model);
		if (g)
			ab_gguf_get_str(g, "tokenizer.chat_template", &tmpl);
		s->fam = ab_chat_detect(tmpl);
		free(tmpl);
		ab_log(AB_LOG_INFO, "loaded model %s from %s in %.0f ms (chat template %s)",
		       s->name, s->path, *load_ms, ab_chat_family_name(s->fam));
	}
	pthread_mutex_lock(&st->lock);
	/* another worker may have loaded it meanwhile: keep one */
	for (int i = 0; i < st->n_slots; i++) {
		if (strcmp(st->slots[i]->path, j->path) == 0) {
			struct slot *other = st->slots[i];
			other->busy++;
			pthread_mutex_unlock(&st->lock);
			slot_free(s);
			return other;
		}
	}
	if (st->n_slots >= MAX_SLOTS)
		evict_idle(st, MAX_SLOTS - 1);
	s->busy = 1;
	st->slots[st->n_slots++] = s;
	pthread_mutex_unlock(&st->lock);
	return s;
}

static void release_model(struct llm_state *st, struct slot *s, int64_t keep_alive_s)
{
	pthread_mutex_lock(&st->lock);
	s->busy--;
	s->last_used_ms = ab_now_ms();
	s->expires_ms = expiry(st, keep_alive_s);
	if (keep_alive_s == 0 && s->busy == 0) {
		for (int i = 0; i < st->n_slots; i++) {
			if (st->slots[i] == s) {
				ab_log(AB_LOG_INFO, "unloading model %s (keep_alive 0)", s->name);
				slot_free(s);
				st->slots[i] = st->slots[--st->n_slots];
				break;
			}
		}
	}
	pthread_mutex_unlock(&st->lock);
}

/* Takes a free context of the slot whose n_ctx is at least n_ctx,
 * creating one if needed. Returns NULL with a message in err. */
static struct ctx_slot *acquire_ctx(struct llm_state *st, struct slot *s, int n_ctx, int threads,
				    char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	struct ctx_slot *free_cs = NULL;
	for (int i = 0; i < MAX_CTX_PER_SLOT; i++) {
		struct ctx_slot *cs = &s->ctxs[i];
		if (cs->busy)
			continue;
		if ((cs->ctx && ab_llm_ctx_n_ctx(cs->ctx) == n_ctx) ||
		    (cs->bctx && ab_bert_ctx_n_ctx(cs->bctx) == n_ctx)) {
			cs->busy = true;
			pthread_mutex_unlock(&st->lock);
			return cs;
		}
		if (!free_cs)
			free_cs = cs;
	}
	if (!free_cs) {
		pthread_mutex_unlock(&st->lock);
		snprintf(err, errlen, "no free context for the model");
		return NULL;
	}
	free_cs->busy = true;
	pthread_mutex_unlock(&st->lock);
	ab_llm_ctx_free(free_cs->ctx);
	ab_bert_ctx_free(free_cs->bctx);
	free(free_cs->hist);
	free_cs->ctx = NULL;
	free_cs->bctx = NULL;
	free_cs->hist = NULL;
	free_cs->n_hist = 0;
	if (s->bert) {
		if (ab_bert_ctx_new(s->bert, n_ctx, threads, &free_cs->bctx, err, errlen) < 0) {
			pthread_mutex_lock(&st->lock);
			free_cs->busy = false;
			pthread_mutex_unlock(&st->lock);
			return NULL;
		}
		return free_cs;
	}
	if (ab_llm_ctx_new(s->model, n_ctx, threads, &free_cs->ctx, err, errlen) < 0) {
		pthread_mutex_lock(&st->lock);
		free_cs->busy = false;
		pthread_mutex_unlock(&st->lock);
		return NULL;
	}
	free_cs->hist = ab_xcalloc((size_t)ab_llm_ctx_n_ctx(free_cs->ctx), sizeof(int32_t));
	return free_cs;
}

static void release_ctx(struct llm_state *st, struct ctx_slot *cs)
{
	pthread_mutex_lock(&st->lock);
	cs->busy = false;
	pthread_mutex_unlock(&st->lock);
}

/* ---- generation ---------------------------------------------------------- */

struct gen {
	struct job *j;
	struct slot *s;
	const struct ab_tok *tok;
	double load_ms, prompt_ms, gen_ms;
	int n_prompt;       /* prompt tokens */
	int n_gen;
	struct ab_buf text;    /* all generated text sent, as valid UTF-8 */
	struct ab_buf pending; /* generated, not yet sent (may start a stop string) */
	struct ab_utf8 u8;     /* an unfinished character between emit() calls */
	const char *done_reason;
	bool role_sent;
	bool gone;          /* the client went away */
	int32_t *all;       /* prompt + generated ids (generate's "context") */
	int n_all, cap_all;
	char created_at[48];
	int64_t created_s;
};

static void push_id(struct gen *g, int32_t id)
{
	if (g->n_all == g->cap_all) {
		g->cap_all = g->cap_all ? g->cap_all * 2 : 256;
		g->all = ab_xrealloc(g->all, (size_t)g->cap_all * sizeof(int32_t));
	}
	g->all[g->n_all++] = id;
}

/* JSON string of n bytes that ab_utf8 made valid (NUL allowed). */
static json_t *text_json(const char *s, size_t n)
{
	json_t *v = json_stringn(n ? s : "", n);
	if (!v) {
		/* cannot happen: the sanitiser only lets valid UTF-8 through */
		ab_log(AB_LOG_ERROR, "llm: %zu bytes of generated text are not valid UTF-8", n);
		v = json_string("");
	}
	return v;
}

/* Sends generated bytes to the client in the shape of the job's API. The
 * bytes go through the job's UTF-8 sanitiser first (utf8.h): a character
 * split across tokens is held until it is complete, and bytes that can
 * never be valid become U+FFFD, so every chunk is a valid JSON string and
 * nothing is dropped. last: the end of the answer (an unfinished
 * character becomes U+FFFD). */
static int emit(struct gen *g, const char *s, size_t n, bool last)
{
	struct job *j = g->j;
	size_t from = g->text.len;
	ab_utf8_feed(&g->u8, s, n, &g->text);
	if (last)
		ab_utf8_flush(&g->u8, &g->text);
	size_t m = g->text.len - from;
	if (m == 0)
		return 0;
	if (!j->stream) {
		/* a space now and then: notices a client that went away */
		return (g->n_gen % 8 == 0) ? write_str(j, " ", 1) : 0;
	}
	json_t *piece = text_json(g->text.data + from, m);
	json_t *o = NULL;
	switch (j->kind) {
	case J_GENERATE:
		o = json_pack("{s:s,s:s,s:O,s:b}", "model", j->model, "created_at", g->created_at,
			      "response", piece, "done", 0);
		break;
	case J_CHAT:
		o = json_pack("{s:s,s:s,s:{s:s,s:O},s:b}", "model", j->model, "created_at",
			      g->created_at, "message", "role", "assistant", "content", piece, "done", 0);
		break;
	case J_OAI_CHAT: {
		json_t *delta = json_pack("{s:O}", "content", piece);
		if (!g->role_sent) {
			json_object_set_new(delta, "role", json_string("assistant"));
			g->role_sent = true;
		}
		o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n}]}", "id", j->id, "object",
			      "chat.completion.chunk", "created", (json_int_t)g->created_s, "model",
			      j->model, "choices", "index", 0, "delta", delta, "finish_reason");
		break;
	}
	case J_OAI_COMPL:
		o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:O,s:i,s:n,s:n}]}", "id", j->id, "object",
			      "text_completion", "created", (json_int_t)g->created_s, "model", j->model,
			      "choices", "text", piece, "index", 0, "logprobs", "finish_reason");
		break;
	default:
		break;
	}
	json_decref(piece);
	if (!o)
		ab_log(AB_LOG_ERROR, "llm: a chunk of %zu bytes could not be built", m);
	int rc = o ? write_json_line(j, o, is_oai(j)) : 0;
	json_decref(o);
	return rc;
}

/* Length of the longest suffix of s that is a proper prefix of a stop
 * string: text that must wait for the next piece before it can be sent.
 * (An unfinished UTF-8 character is held by emit()'s sanitiser.) Stop
 * strings are matched on the bytes as generated, before the sanitiser:
 * a stop string is valid UTF-8, so it starts on a character boundary
 * whatever invalid bytes come before it. */
static size_t holdback(const struct job *j, const char *s, size_t n)
{
	size_t hold = 0;
	for (size_t k = 0; k < j->n_stops; k++) {
		size_t sl = strlen(j->stops[k]);
		for (size_t m = sl - 1; m > hold && m > 0; m--) {
			if (m <= n && memcmp(s + n - m, j->stops[k], m) == 0) {
				hold = m;
				break;
			}
		}
	}
	return hold;
}

/* Adds a piece; sends what is safe. Returns 1 when a stop string ended
 * the answer, 0 to go on, or a negative code when the client is gone. */
static int add_piece(struct gen *g, const char *p, size_t n)
{
	struct job *j = g->j;
	ab_buf_append(&g->pending, p, n);
	for (size_t k = 0; k < j->n_stops; k++) {
		char *hit = memmem(g->pending.data, g->pending.len, j->stops[k], strlen(j->stops[k]));
		if (hit) {
			int rc = emit(g, g->pending.data, (size_t)(hit - g->pending.data), false);
			ab_buf_reset(&g->pending);
			return rc < 0 ? rc : 1;
		}
	}
	size_t hold = holdback(j, g->pending.data, g->pending.len);
	size_t send = g->pending.len - hold;
	int rc = emit(g, g->pending.data, send, false);
	memmove(g->pending.data, g->pending.data + send, hold);
	g->pending.len = hold;
	g->pending.data[hold] = '\0';
	return rc;
}

static json_int_t ns(double ms)
{
	return (json_int_t)(ms * 1e6);
}

static void finish(struct gen *g)
{
	struct job *j = g->j;
	if (!g->gone)
		emit(g, g->pending.data, g->pending.len, true);
	const char *reason = g->done_reason ? g->done_reason : "stop";
	const char *text = g->text.data ? g->text.data : "";
	size_t text_len = g->text.len;
	json_t *o = NULL;
	double total = ab_now_ms_f() - (double)j->enqueued_ms;
	switch (j->kind) {
	case J_GENERATE:
	case J_CHAT: {
		o = json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:i,s:I,s:i,s:I}", "model", j->model,
			      "created_at", g->created_at, "done", 1, "done_reason", reason,
			      "total_duration", ns(total), "load_duration", ns(g->load_ms),
			      "prompt_eval_count", g->n_prompt, "prompt_eval_duration", ns(g->prompt_ms),
			      "eval_count", g->n_gen, "eval_duration", ns(g->gen_ms));
		if (j->kind == J_GENERATE) {
			json_object_set_new(o, "response", text_json(text, j->stream ? 0 : text_len));
			json_t *ctx = json_array();
			for (int i = 0; i < g->n_all; i++)
				json_array_append_new(ctx, json_integer(g->all[i]));
			json_object_set_new(o, "context", ctx);
		} else {
			json_object_set_new(o, "message",
					    json_pack("{s:s,s:o}", "role", "assistant", "content",
						      text_json(text, j->stream ? 0 : text_len)));
		}
		write_json_line(j, o, false);
		break;
	}
	case J_OAI_CHAT:
	case J_OAI_COMPL: {
		const char *fr = strcmp(reason, "length") == 0 ? "length" : "stop";
		json_t *usage = json_pack("{s:i,s:i,s:i}", "prompt_tokens", g->n_prompt,
					  "completion_tokens", g->n_gen, "total_tokens",
					  g->n_prompt + g->n_gen);
		bool chat = j->kind == J_OAI_CHAT;
		if (j->stream) {
			json_t *choice = chat ? json_pack("{s:i,s:{},s:s}", "index", 0, "delta",
							  "finish_reason", fr)
					      : json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", 0,
							  "logprobs", "finish_reason", fr);
			o = json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", j->id, "object",
				      chat ? "chat.completion.chunk" : "text_completion", "created",
				      (json_int_t)g->created_s, "model", j->model, "choices", choice);
			write_json_line(j, o, true);
			if (j->oai_usage) {
				json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:[],s:O}", "id", j->id,
						      "object", "chat.completion.chunk", "created",
						      (json_int_t)g->created_s, "model", j->model,
						      "choices", "usage", usage);
				write_json_line(j, u, true);
				json_decref(u);
			}
			write_str(j, "data: [DONE]\n\n", 14);
		} else {
			json_t *choice =
				chat ? json_pack("{s:i,s:{s:s,s:o},s:s}", "index", 0, "message", "role",
						 "assistant", "content", text_json(text, text_len),
						 "finish_reason", fr)
				     : json_pack("{s:o,s:i,s:n,s:s}", "text", text_json(text, text_len),
						 "index", 0, "logprobs", "finish_reason", fr);
			o = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:O}", "id", j->id, "object",
				      chat ? "chat.completion" : "text_completion", "created",
				      (json_int_t)g->created_s, "model", j->model, "choices", choice,
				      "usage", usage);
			write_json_line(j, o, false);
		}
		json_decref(usage);
		break;
	}
	default:
		break;
	}
	json_decref(o);
}

/* The prompt text of a job for slot s (caller frees), and whether it was
 * rendered from a chat template (then control tokens in it are parsed). */
static char *build_prompt(struct job *j, struct slot *s, bool *templated)
{
	*templated = false;
	const struct ab_gguf *gg = ab_llm_model_gguf(s->model);
	bool has_tmpl = gg && ab_gguf_find(gg, "tokenizer.chat_template");
	struct ab_chat_msg msgs[256];
	size_t n = 0;
	char *out = NULL;
	if (j->kind == J_CHAT || j->kind == J_OAI_CHAT) {
		size_t i;
		json_t *m;
		json_array_foreach(j->messages, i, m)
		{
			if (n >= AB_ARRAY_LEN(msgs))
				break;
			msgs[n].role = json_string_value(json_object_get(m, "role"));
			msgs[n].content = json_string_value(json_object_get(m, "content"));
			if (!msgs[n].content)
				msgs[n].content = "";
			n++;
		}
		if (ab_chat_render(s->fam, msgs, n, true, &out) == 0) {
			*templated = true;
			return out;
		}
		return NULL;
	}
	if (j->kind == J_GENERATE && !j->raw && has_tmpl) {
		if (j->system)
			msgs[n++] = (struct ab_chat_msg){"system", j->system};
		msgs[n++] = (struct ab_chat_msg){"user", j->prompt ? j->prompt : ""};
		if (ab_chat_render(s->fam, msgs, n, true, &out) == 0) {
			*templated = true;
			return out;
		}
	}
	return ab_xstrdup(j->prompt ? j->prompt : "");
}

/* The token bytes of the slot's model for format json, built by the
 * first job that needs them (outside the lock: a big vocabulary takes a
 * few milliseconds); the slot is busy, so it stays while the job runs. */
static const struct ab_jsonfmt_vocab *slot_jvocab(struct llm_state *st, struct slot *s)
{
	pthread_mutex_lock(&st->lock);
	const struct ab_jsonfmt_vocab *v = s->jvocab;
	pthread_mutex_unlock(&st->lock);
	if (v)
		return v;
	double t0 = ab_now_ms_f();
	struct ab_jsonfmt_vocab *nv = ab_jsonfmt_vocab_new(ab_llm_model_tok(s->model));
	if (!nv)
		return NULL;
	ab_log(AB_LOG_INFO, "%s: format json token table built in %.1f ms (%d tokens)", s->name,
	       ab_now_ms_f() - t0, ab_jsonfmt_vocab_size(nv));
	pthread_mutex_lock(&st->lock);
	if (!s->jvocab) {
		s->jvocab = nv;
		nv = NULL;
	}
	v = s->jvocab;
	pthread_mutex_unlock(&st->lock);
	ab_jsonfmt_vocab_free(nv);
	return v;
}

/* How many of the highest logits format json tries for a token: what the
 * sampler could pick (jsonfmt.c scans the whole vocabulary when none of
 * them is valid). */
static int json_window(const struct ab_sampler_params *sp)
{
	if (!(sp->temperature > 0))
		return 16; /* greedy: room for the repeat penalties to reorder */
	if (sp->top_k <= 0)
		return 256;
	return sp->top_k < 16 ? 16 : sp->top_k;
}

static void run_generation(struct llm_state *st, struct job *j)
{
	struct gen g;
	memset(&g, 0, sizeof(g));
	g.j = j;
	g.created_s = ab_wall_ms() / 1000;
	iso_now(g.created_at, sizeof(g.created_at));
	char err[512];
	struct ctx_slot *cs = NULL;
	struct ab_sampler *smp = NULL;
	float *logits = NULL;
	int32_t *toks = NULL;
	char *prompt = NULL;

	struct slot *s = acquire_model(st, j, &g.load_ms, err, sizeof(err));
	if (!s) {
		job_error(j, "cannot load model %s: %s", j->model, err);
		goto out;
	}
	g.s = s;
	if (s->bert) {
		job_error(j,
			  "model %s is an embedding model (%s): it serves /api/embed, "
			  "/api/embeddings and /v1/embeddings, not generation or chat",
			  j->model, ab_bert_hparams(s->bert)->arch);
		goto out;
	}
	g.tok = ab_llm_model_tok(s->model);
	const struct ab_llm_hparams *hp = ab_llm_model_hparams(s->model);

	/* /api/generate with no prompt only loads the model */
	if (j->kind == J_GENERATE && (!j->prompt || !*j->prompt) && !j->context) {
		g.done_reason = "load";
		finish(&g);
		goto out;
	}

	int n_ctx = j->num_ctx > 0 ? j->num_ctx : st->svc->cfg->llm.num_ctx;
	if (hp->n_ctx_train > 0 && n_ctx > hp->n_ctx_train)
		n_ctx = hp->n_ctx_train;
	bool templated;
	int n = 0;
	for (;;) {
		free(prompt);
		free(toks);
		toks = NULL;
		prompt = build_prompt(j, s, &templated);
		if (!prompt) {
			job_error(j, "cannot render the chat messages");
			goto out;
		}
		int max = (int)strlen(prompt) + 16 + (int)json_array_size(j->context);
		toks = ab_xcalloc((size_t)max, sizeof(int32_t));
		n = 0;
		size_t ci;
		json_t *cv;
		json_array_foreach(j->context, ci, cv)
			toks[n++] = (int32_t)json_integer_value(cv);
		int k = ab_tok_encode(g.tok, prompt, strlen(prompt), n == 0, templated, toks + n,
				      max - n);
		if (k < 0 || k > max - n) {
			job_error(j, "cannot tokenize the prompt");
			goto out;
		}
		n += k;
		/* a long conversation: drop the oldest turns (never the system
		 * prompt or the last message) until it fits with room to answer */
		int room = n_ctx / 4;
		if (!j->messages || n + room < n_ctx || json_array_size(j->messages) < 2)
			break;
		size_t first = 0;
		while (first + 1 < json_array_size(j->messages) &&
		       !strcmp(json_string_value(json_object_get(json_array_get(j->messages, first),
							      "role")) ?: "", "system"))
			first++;
		if (first + 1 >= json_array_size(j->messages))
			break;
		json_array_remove(j->messages, first);
	}
	if (n == 0) {
		int32_t bos = ab_tok_bos(g.tok);
		toks[n++] = bos >= 0 ? bos : 0;
	}
	if (n >= n_ctx) {
		job_error(j, "the prompt is %d tokens, longer than the context of %d (options.num_ctx)",
			  n, n_ctx);
		goto out;
	}
	cs = acquire_ctx(st, s, n_ctx, j->threads, err, sizeof(err));
	if (!cs) {
		job_error(j, "%s", err);
		goto out;
	}
	/* reuse the cached prefix */
	int p = 0;
	while (p < cs->n_hist && p < n && cs->hist[p] == toks[p])
		p++;
	if (p == n)
		p = n - 1;
	ab_llm_ctx_truncate(cs->ctx, p);
	cs->n_hist = p;
	logits = ab_xcalloc((size_t)hp->n_vocab, sizeof(float));
	double t0 = ab_now_ms_f();
	int rc = ab_llm_eval(cs->ctx, toks + p, n - p, logits, NULL);
	g.prompt_ms = ab_now_ms_f() - t0;
	if (rc < 0) {
		cs->n_hist = 0;
		ab_llm_ctx_truncate(cs->ctx, 0);
		job_error(j, "prompt evaluation failed: %s", ab_strerror(rc));
		goto out;
	}
	memcpy(cs->hist + p, toks + p, (size_t)(n - p) * sizeof(int32_t));
	cs->n_hist = n;
	g.n_prompt = n;
	for (int i = 0; i < n; i++)
		push_id(&g, toks[i]);

	/* format json: the document so far, and the vocabulary's bytes */
	const struct ab_jsonfmt_vocab *jv = NULL;
	struct ab_jsonfmt jf;
	double mask_ms = 0;
	bool failed = false;
	if (j->json_fmt) {
		jv = slot_jvocab(st, s);
		if (!jv || ab_jsonfmt_vocab_size(jv) != hp->n_vocab) {
			job_error(j, "format json: the vocabulary of %s cannot be read", j->model);
			goto out;
		}
		ab_jsonfmt_init(&jf, 0);
	}

	smp = ab_sampler_new(&j->sp, hp->n_vocab);
	for (int i = 0; i < n; i++)
		ab_sampler_accept(smp, toks[i]);
	t0 = ab_now_ms_f();
	int limit = j->num_predict < 0 ? INT32_MAX : j->num_predict;
	char piece[1024];
	while (g.n_gen < limit) {
		if (cs->n_hist >= n_ctx) {
			g.done_reason = "length";
			break;
		}
		if (jv) {
			double tm = ab_now_ms_f();
			/* tokens left, this one included: the JSON must close by then */
			int budget = limit - g.n_gen;
			if (n_ctx - cs->n_hist < budget)
				budget = n_ctx - cs->n_hist;
			int kept = ab_jsonfmt_mask(jv, &jf, logits, json_window(&j->sp), budget);
			mask_ms += ab_now_ms_f() - tm;
			if (kept == 0) {
				job_error(j,
					  "format json: no token of %s can continue the JSON text "
					  "after %d tokens",
					  j->model, g.n_gen);
				failed = true;
				break;
			}
		}
		int32_t id = ab_sampler_sample(smp, logits);
		if (ab_tok_is_eog(g.tok, id)) {
			g.done_reason = "stop";
			break;
		}
		ab_sampler_accept(smp, id);
		g.n_gen++;
		push_id(&g, id);
		int pl = ab_tok_piece(g.tok, id, false, piece, sizeof(piece));
		if (pl < 0)
			pl = 0;
		if ((size_t)pl > sizeof(piece))
			pl = (int)sizeof(piece);
		if (jv && ab_jsonfmt_feed(&jf, piece, (size_t)pl) < 0) {
			/* cannot happen: the mask let only valid tokens through */
			job_error(j, "format json: token %d broke the JSON text", (int)id);
			failed = true;
			break;
		}
		int ar = add_piece(&g, piece, (size_t)pl);
		if (ar < 0) {
			g.gone = true;
			break;
		}
		if (ar == 1) {
			g.done_reason = "stop";
			break;
		}
		if (jv && ab_jsonfmt_complete(&jf)) {
			g.done_reason = "stop"; /* the object is closed: nothing may follow */
			break;
		}
		if (g.n_gen >= limit) {
			g.done_reason = "length";
			break;
		}
		if (ab_llm_eval(cs->ctx, &id, 1, logits, NULL) < 0) {
			g.done_reason = "length";
			break;
		}
		cs->hist[cs->n_hist++] = id;
	}
	g.gen_ms = ab_now_ms_f() - t0;
	if (!g.done_reason)
		g.done_reason = "length";
	if (g.gone) {
		ab_log(AB_LOG_INFO, "client went away after %d tokens; generation stopped", g.n_gen);
		goto out;
	}
	if (failed)
		goto out;
	finish(&g);
	ab_log(AB_LOG_INFO, "%s: %d prompt tokens (%.0f tok/s), %d generated (%.1f tok/s), %s",
	       j->model, g.n_prompt - p, g.prompt_ms > 0 ? (n - p) * 1000.0 / g.prompt_ms : 0,
	       g.n_gen, g.gen_ms > 0 ? g.n_gen * 1000.0 / g.gen_ms : 0, g.done_reason);
	if (jv)
		ab_log(AB_LOG_INFO, "%s: format json mask %.3f ms/token over %d tokens", j->model,
		       g.n_gen > 0 ? mask_ms / g.n_gen : 0.0, g.n_gen);
out:
	if (cs)
		release_ctx(st, cs);
	if (s)
		release_model(st, s, j->keep_alive_s);
	ab_sampler_free(smp);
	free(logits);
	free(toks);
	free(prompt);
	free(g.all);
	ab_buf_free(&g.text);
	ab_buf_free(&g.pending);
}

/* ---- embeddings ----------------------------------------------------------- */

struct pool_acc {
	float *sum;
	int n_embd;
	int rows;
};

static void on_hidden(void *ud, const char *name, const float *data, int n_tokens, int n_embd)
{
	struct pool_acc *a = ud;
	if (strcmp(name, "result_norm") != 0 || n_embd != a->n_embd)
		return;
	for (int t = 0; t < n_tokens; t++)
		for (int i = 0; i < n_embd; i++)
			a->sum[i] += data[(size_t)t * (size_t)n_embd + (size_t)i];
	a->rows += n_tokens;
}

/* Mean of the final normalised hidden states over the input's tokens,
 * scaled to unit length: the sentence embedding of a decoder model.
 * Inputs longer than the context are cut unless truncation is off. */
static int embed_one(struct slot *s, struct ctx_slot *cs, const char *text, bool no_truncate,
		     float *out, int *n_tokens, char *err, size_t errlen)
{
	const struct ab_llm_hparams *hp = ab_llm_model_hparams(s->model);
	const struct ab_tok *tok = ab_llm_model_tok(s->model);
	int n_ctx = ab_llm_ctx_n_ctx(cs->ctx);
	int max = (int)strlen(text) + 8;
	int32_t *toks = ab_xcalloc((size_t)max, sizeof(int32_t));
	float *logits = ab_xcalloc((size_t)hp->n_vocab, sizeof(float));
	int rc = 0;
	int n = ab_tok_encode(tok, text, strlen(text), true, false, toks, max);
	if (n < 0 || n > max) {
		snprintf(err, errlen, "cannot tokenize the input");
		rc = AB_EINVAL;
		goto out;
	}
	if (n == 0) {
		int32_t bos = ab_tok_bos(tok);
		toks[n++] = bos >= 0 ? bos : 0;
	}
	if (n > n_ctx && no_truncate) {
		snprintf(err, errlen, "the input is %d tokens, longer than the context of %d", n,
			 n_ctx);
		rc = AB_ETOOBIG;
		goto out;
	}
	if (n > n_ctx)
		n = n_ctx; /* truncate, as Ollama does by default */
	struct pool_acc acc = {ab_xcalloc((size_t)hp->n_embd, sizeof(float)), hp->n_embd, 0};
	ab_llm_ctx_truncate(cs->ctx, 0);
	cs->n_hist = 0;
	ab_llm_ctx_set_hidden_cb(cs->ctx, on_hidden, &acc);
	rc = ab_llm_eval(cs->ctx, toks, n, logits, NULL);
	ab_llm_ctx_set_hidden_cb(cs->ctx, NULL, NULL);
	ab_llm_ctx_truncate(cs->ctx, 0);
	if (rc == 0 && acc.rows == 0) {
		snprintf(err, errlen, "the engine reported no hidden states");
		rc = AB_EPROTO;
	} else if (rc < 0) {
		snprintf(err, errlen, "evaluation failed: %s", ab_strerror(rc));
	} else {
		double norm = 0;
		for (int i = 0; i < hp->n_embd; i++) {
			out[i] = acc.sum[i] / (float)acc.rows;
			norm += (double)out[i] * out[i];
		}
		norm = sqrt(norm);
		for (int i = 0; norm > 0 && i < hp->n_embd; i++)
			out[i] = (float)(out[i] / norm);
		*n_tokens = n;
	}
	free(acc.sum);
out:
	free(toks);
	free(logits);
	return rc;
}

/* An encoder's embedding of text: [CLS] pieces [SEP], the pieces cut to
 * the context unless truncation is off; pooled and normalised by bert.c. */
static int embed_bert(struct ctx_slot *cs, const char *text, bool no_truncate, float *out,
		      int *n_tokens, char *err, size_t errlen)
{
	bool cut = false;
	int rc = ab_bert_embed(cs->bctx, text, strlen(text), out, n_tokens, &cut);
	if (rc < 0) {
		snprintf(err, errlen, "evaluation failed: %s", ab_strerror(rc));
		return rc;
	}
	if (cut && no_truncate) {
		snprintf(err, errlen, "the input is longer than the context of %d tokens",
			 ab_bert_ctx_n_ctx(cs->bctx));
		return AB_ETOOBIG;
	}
	return 0;
}

/* OpenAI's "encoding_format": "base64": the little-endian float32 bytes
 * of the vector in standard base64, as a JSON string (the official
 * clients ask for this by default and decode it). */
static json_t *b64_floats(const float *v, int n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t nb = (size_t)n * 4;
	uint8_t *b = ab_xmalloc(nb + 2);
	for (int i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		for (int k = 0; k < 4; k++)
			b[4 * (size_t)i + (size_t)k] = (uint8_t)(u >> (8 * k));
	}
	b[nb] = b[nb + 1] = 0;
	char *out = ab_xmalloc((nb + 2) / 3 * 4 + 1);
	size_t o = 0;
	for (size_t i = 0; i < nb; i += 3) {
		uint32_t w = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = i + 1 < nb ? tab[w >> 6 & 63] : '=';
		out[o++] = i + 2 < nb ? tab[w & 63] : '=';
	}
	out[o] = '\0';
	json_t *s = json_string(out);
	free(out);
	free(b);
	return s;
}

static void run_embedding(struct llm_state *st, struct job *j)
{
	char err[512];
	double load_ms = 0, t0 = ab_now_ms_f();
	struct ctx_slot *cs = NULL;
	json_t *vecs = json_array();
	int total_tokens = 0;
	struct slot *s = acquire_model(st, j, &load_ms, err, sizeof(err));
	if (!s) {
		job_error(j, "cannot load model %s: %s", j->model, err);
		goto out;
	}
	/* an encoder's own context (all of it by default: its inputs are short
	 * and its memory small); a decoder's as for generation */
	int n_embd, n_ctx_train, n_ctx;
	if (s->bert) {
		const struct ab_bert_hparams *bh = ab_bert_hparams(s->bert);
		n_embd = bh->n_embd;
		n_ctx_train = bh->n_ctx_train;
		n_ctx = j->num_ctx > 0 ? j->num_ctx : n_ctx_train;
	} else {
		const struct ab_llm_hparams *hp = ab_llm_model_hparams(s->model);
		n_embd = hp->n_embd;
		n_ctx_train = hp->n_ctx_train;
		n_ctx = j->num_ctx > 0 ? j->num_ctx : st->svc->cfg->llm.num_ctx;
	}
	if (n_ctx_train > 0 && n_ctx > n_ctx_train)
		n_ctx = n_ctx_train;
	cs = acquire_ctx(st, s, n_ctx, j->threads, err, sizeof(err));
	if (!cs) {
		job_error(j, "%s", err);
		goto out;
	}
	float *v = ab_xcalloc((size_t)n_embd, sizeof(float));
	for (size_t i = 0; i < j->n_inputs; i++) {
		int nt = 0;
		int rc = s->bert ? embed_bert(cs, j->inputs[i], j->no_truncate, v, &nt, err,
					      sizeof(err))
				 : embed_one(s, cs, j->inputs[i], j->no_truncate, v, &nt, err,
					     sizeof(err));
		for (int k = 0; rc == 0 && k < n_embd; k++)
			if (!isfinite(v[k])) {
				snprintf(err, sizeof(err),
					 "the model produced a non-finite value (broken weights?)");
				rc = AB_EINVAL;
			}
		if (rc < 0) {
			free(v);
			job_error(j, "embedding failed: %s", err);
			goto out;
		}
		total_tokens += nt;
		json_t *a;
		if (j->b64) {
			a = b64_floats(v, n_embd);
		} else {
			a = json_array();
			for (int k = 0; k < n_embd; k++)
				json_array_append_new(a, json_real(v[k]));
		}
		json_array_append_new(vecs, a);
		if (ab_http_stream_closed(j->out))
			break;
	}
	free(v);
	json_t *o = NULL;
	if (j->kind == J_EMBED) {
		o = json_pack("{s:s,s:O,s:I,s:I,s:i}", "model", j->model, "embeddings", vecs,
			      "total_duration", ns(ab_now_ms_f() - t0), "load_duration", ns(load_ms),
			      "prompt_eval_count", total_tokens);
	} else if (j->kind == J_EMBED_OLD) {
		json_t *first = json_array_get(vecs, 0);
		o = json_pack("{s:O}", "embedding", first ? first : json_array());
	} else {
		json_t *data = json_array();
		size_t i;
		json_t *e;
		json_array_foreach(vecs, i, e)
			json_array_append_new(data, json_pack("{s:s,s:i,s:O}", "object", "embedding",
							      "index", (int)i, "embedding", e));
		o = json_pack("{s:s,s:o,s:s,s:{s:i,s:i}}", "object", "list", "data", data, "model",
			      j->model, "usage", "prompt_tokens", total_tokens, "total_tokens",
			      total_tokens);
	}
	write_json_line(j, o, false);
	json_decref(o);
out:
	json_decref(vecs);
	if (cs)
		release_ctx(st, cs);
	if (s)
		release_model(st, s, j->keep_alive_s);
}

/* ---- provider mode: forward to an Ollama or OpenAI server ---------------- */

static size_t proxy_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct job *j = ud;
	size_t n = size * nmemb;
	return ab_http_stream_write(j->out, p, n) < 0 ? 0 : n;
}

static void run_proxy(struct llm_state *st, struct job *j)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Content-Type: application/json");
	const char *key = st->svc->cfg->llm.api_key; /* any provider: Ollama behind a proxy may want one */
	char *auth = NULL;
	if (key && *key) {
		auth = ab_xasprintf("Authorization: Bearer %s", key);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, j->proxy_url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (j->proxy_body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->proxy_body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(j->proxy_body));
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, proxy_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR)
		job_error(j, "provider %s: %s", st->svc->cfg->llm.url, curl_easy_strerror(rc));
	curl_slist_free_all(h);
	free(auth);
	curl_easy_cleanup(c);
}

/* ---- workers ---------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct llm_state *st = arg;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (!st->stop && !st->head)
			pthread_cond_wait(&st->cond, &st->lock);
		if (st->stop)
			break;
		struct job *j = st->head;
		st->head = j->next;
		if (!st->head)
			st->tail = NULL;
		st->qlen--;
		st->active++;
		pthread_mutex_unlock(&st->lock);
		if (ab_http_stream_closed(j->out))
			ab_log(AB_LOG_INFO, "dropping a queued request: the client went away");
		else if (j->kind == J_PROXY)
			run_proxy(st, j);
		else if (j->kind == J_EMBED || j->kind == J_EMBED_OLD || j->kind == J_OAI_EMBED)
			run_embedding(st, j);
		else
			run_generation(st, j);
		job_free(j);
		pthread_mutex_lock(&st->lock);
		st->active--;
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static void *reaper_main(void *arg)
{
	struct llm_state *st = arg;
	pthread_mutex_lock(&st->lock);
	while (!st->stop) {
		struct timespec ts = ab_deadline(CLOCK_REALTIME, 1000);
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
		int64_t now = ab_now_ms();
		for (int i = 0; i < st->n_slots;) {
			struct slot *s = st->slots[i];
			if (!s->busy && s->expires_ms != INT64_MAX && now >= s->expires_ms) {
				ab_log(AB_LOG_INFO, "unloading model %s (keep_alive expired)", s->name);
				slot_free(s);
				st->slots[i] = st->slots[--st->n_slots];
				continue;
			}
			i++;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* ---- request parsing ------------------------------------------------------ */

static void ollama_error(struct ab_http_req *req, int status, const char *fmt, ...)
	AB_PRINTF(3, 4);
static void ollama_error(struct ab_http_req *req, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *o = json_pack("{s:s}", "error", msg);
	ab_http_reply_jansson(req, status, o);
	json_decref(o);
}

static void oai_error(struct ab_http_req *req, int status, const char *type, const char *fmt, ...)
	AB_PRINTF(4, 5);
static void oai_error(struct ab_http_req *req, int status, const char *type, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *o = json_pack("{s:{s:s,s:s,s:n}}", "error", "message", msg, "type", type, "code");
	ab_http_reply_jansson(req, status, o);
	json_decref(o);
}

static void reply_err(struct ab_http_req *req, bool oai, int status, const char *msg)
{
	if (oai)
		oai_error(req, status, status == 404 ? "not_found_error" : "invalid_request_error",
			  "%s", msg);
	else
		ollama_error(req, status, "%s", msg);
}

/* Reads a number field into *out; "bad" names the field when the type is wrong. */
static bool num_field(json_t *o, const char *k, double *out, const char **bad)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return false;
	if (!json_is_number(v)) {
		*bad = k;
		return false;
	}
	*out = json_number_value(v);
	return true;
}

static const char *add_stops(struct job *j, json_t *v)
{
	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v)) {
		if (json_string_length(v) > 0)
			j->stops[j->n_stops++] = ab_xstrdup(json_string_value(v));
		return NULL;
	}
	if (!json_is_array(v))
		return "stop must be a string or an array of strings";
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e))
			return "stop must be a string or an array of strings";
		if (j->n_stops >= MAX_STOPS)
			return "at most 8 stop strings";
		if (json_string_length(e) > 0)
			j->stops[j->n_stops++] = ab_xstrdup(json_string_value(e));
	}
	return NULL;
}

/* Ollama's "options". Returns NULL or what is wrong. */
static const char *ollama_options(struct job *j, json_t *o)
{
	if (!o || json_is_null(o))
		return NULL;
	if (!json_is_object(o))
		return "options must be an object";
	const char *bad = NULL;
	double d;
	if (num_field(o, "temperature", &d, &bad))
		j->sp.temperature = (float)d;
	if (num_field(o, "top_k", &d, &bad))
		j->sp.top_k = (int)d;
	if (num_field(o, "top_p", &d, &bad))
		j->sp.top_p = (float)d;
	if (num_field(o, "min_p", &d, &bad))
		j->sp.min_p = (float)d;
	if (num_field(o, "repeat_penalty", &d, &bad))
		j->sp.repeat_penalty = (float)d;
	if (num_field(o, "repeat_last_n", &d, &bad))
		j->sp.repeat_last_n = (int)d;
	if (num_field(o, "presence_penalty", &d, &bad))
		j->sp.presence_penalty = (float)d;
	if (num_field(o, "frequency_penalty", &d, &bad))
		j->sp.frequency_penalty = (float)d;
	if (num_field(o, "seed", &d, &bad))
		j->sp.seed = (uint64_t)(int64_t)d;
	if (num_field(o, "num_predict", &d, &bad))
		j->num_predict = (int)d;
	if (num_field(o, "num_ctx", &d, &bad)) {
		if (d < 16 || d > (1 << 20))
			return "options.num_ctx must be between 16 and 1048576";
		j->num_ctx = (int)d;
	}
	if (num_field(o, "num_thread", &d, &bad))
		j->threads = (int)d;
	if (bad) {
		static char msg[96];
		snprintf(msg, sizeof(msg), "options.%s must be a number", bad);
		return msg;
	}
	return add_stops(j, json_object_get(o, "stop"));
}

/* OpenAI's sampling fields at the top level of the request. */
static const char *oai_options(struct job *j, json_t *o)
{
	const char *bad = NULL;
	double d;
	/* OpenAI's defaults: temperature 1, nothing else cut or penalised */
	j->sp.temperature = 1.0f;
	j->sp.top_k = 0;
	j->sp.top_p = 1.0f;
	j->sp.min_p = 0.0f;
	j->sp.repeat_penalty = 1.0f;
	if (num_field(o, "temperature", &d, &bad))
		j->sp.temperature = (float)d;
	if (num_field(o, "top_p", &d, &bad))
		j->sp.top_p = (float)d;
	if (num_field(o, "presence_penalty", &d, &bad))
		j->sp.presence_penalty = (float)d;
	if (num_field(o, "frequency_penalty", &d, &bad))
		j->sp.frequency_penalty = (float)d;
	if (num_field(o, "seed", &d, &bad))
		j->sp.seed = (uint64_t)(int64_t)d;
	if (num_field(o, "max_tokens", &d, &bad))
		j->num_predict = (int)d;
	if (num_field(o, "max_completion_tokens", &d, &bad))
		j->num_predict = (int)d;
	if (num_field(o, "n", &d, &bad) && d != 1)
		return "only n = 1 is supported";
	if (bad) {
		static char msg[96];
		snprintf(msg, sizeof(msg), "%s must be a number", bad);
		return msg;
	}
	json_t *so = json_object_get(o, "stream_options");
	j->oai_usage = json_is_true(json_object_get(so, "include_usage"));
	/* response_format: text (the default) or json_object (as format json) */
	json_t *rf = json_object_get(o, "response_format");
	if (rf && !json_is_null(rf)) {
		const char *type = json_string_value(json_object_get(rf, "type"));
		if (!json_is_object(rf) || !type)
			return "response_format must be an object with a type";
		if (strcmp(type, "json_object") == 0)
			j->json_fmt = true;
		else if (strcmp(type, "json_schema") == 0)
			return "response_format json_schema is not supported: use "
			       "{\"type\": \"json_object\"}";
		else if (strcmp(type, "text") != 0)
			return "response_format.type must be text or json_object";
	}
	return add_stops(j, json_object_get(o, "stop"));
}

/* Chat messages as [{role, content}] with text content (OpenAI content
 * parts are joined). Returns NULL or what is wrong. */
static const char *norm_messages(json_t *in, json_t **out)
{
	if (!json_is_array(in))
		return "messages must be an array";
	json_t *arr = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(in, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		if (!role) {
			json_decref(arr);
			return "every message needs a role";
		}
		struct ab_buf text = {0};
		if (json_is_string(c)) {
			ab_buf_puts(&text, json_string_value(c));
		} else if (json_is_array(c)) {
			size_t k;
			json_t *part;
			json_array_foreach(c, k, part)
			{
				const char *t = json_string_value(json_object_get(part, "text"));
				if (t)
					ab_buf_puts(&text, t);
			}
		} else if (c && !json_is_null(c)) {
			json_decref(arr);
			return "message content must be a string or an array of parts";
		}
		json_array_append_new(arr, json_pack("{s:s,s:s}", "role", role, "content",
						     text.data ? text.data : ""));
		ab_buf_free(&text);
	}
	*out = arr;
	return NULL;
}

static char *models_dir_of(const struct ab_config *cfg)
{
	if (cfg->llm.models_dir && *cfg->llm.models_dir)
		return ab_xstrdup(cfg->llm.models_dir);
	return ab_xasprintf("%s/models", cfg->state_dir);
}

static struct job *job_new(struct llm_state *st, enum job_kind kind, const char *model)
{
	struct job *j = ab_xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->model = ab_xstrdup(model);
	ab_sampler_defaults(&j->sp);
	j->num_predict = -1;
	j->threads = st->svc->cfg->llm.threads;
	/* several generations at once share the cores: by default give each
	 * its share rather than letting each take them all */
	if (j->threads == 0 && st->svc->cfg->llm.parallel > 1) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		j->threads = (int)(cores > 0 ? cores : 1) / st->svc->cfg->llm.parallel;
		if (j->threads < 1)
			j->threads = 1;
	}
	j->keep_alive_s = INT64_MIN;
	j->stream = true;
	j->enqueued_ms = ab_now_ms();
	char hex[25];
	ab_random_hex(hex, 12);
	snprintf(j->id, sizeof(j->id), "%s-%s", kind == J_OAI_COMPL ? "cmpl" : "chatcmpl", hex);
	return j;
}

/* Answers with the job's stream and queues it (or 429). Takes j. */
static void submit(struct ab_http_req *req, struct llm_state *st, struct job *j)
{
	bool oai = is_oai(j);
	const char *ctype = j->stream ? (oai ? "text/event-stream" : "application/x-ndjson")
				      : "application/json";
	pthread_mutex_lock(&st->lock);
	if (st->qlen >= st->svc->cfg->llm.queue_max) {
		pthread_mutex_unlock(&st->lock);
		ab_http_add_header(req, "Retry-After", "1");
		reply_err(req, oai, 429, "the llm queue is full; retry shortly");
		job_free(j);
		return;
	}
	j->out = ab_http_reply_stream(req, 200, ctype);
	if (!j->out) {
		pthread_mutex_unlock(&st->lock);
		job_free(j);
		return;
	}
	if (st->tail)
		st->tail->next = j;
	else
		st->head = j;
	st->tail = j;
	st->qlen++;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

/* Provider mode: queue the request for the upstream server. */
static void forward(struct ab_http_req *req, struct llm_state *st, bool oai_route)
{
	const struct ab_config *cfg = st->svc->cfg;
	if (!strcmp(cfg->llm.provider, "openai") && !oai_route) {
		ollama_error(req, 501, "provider openai serves only the /v1 routes");
		return;
	}
	struct job *j = job_new(st, J_PROXY, "");
	size_t bl = strlen(cfg->llm.url);
	while (bl > 0 && cfg->llm.url[bl - 1] == '/')
		bl--;
	/* an OpenAI base URL usually ends in /v1 already */
	const char *path = req->path;
	if (oai_route && bl >= 3 && !strncmp(cfg->llm.url + bl - 3, "/v1", 3))
		path += 3;
	j->proxy_url = ab_xasprintf("%.*s%s", (int)bl, cfg->llm.url, path);
	j->proxy_body = req->body ? ab_xstrndup(req->body, req->body_len) : NULL;
	j->stream = req->json ? !json_is_false(json_object_get(req->json, "stream")) : false;
	if (oai_route)
		j->stream = json_is_true(json_object_get(req->json, "stream"));
	submit(req, st, j);
}

/* Resolves j->model into j->path; replies 404 and returns false if none. */
static bool resolve(struct ab_http_req *req, struct llm_state *st, struct job *j)
{
	const struct ab_config *cfg = st->svc->cfg;
	const char *name = j->model && *j->model ? j->model : cfg->llm.model;
	if (!name || !*name) {
		reply_err(req, is_oai(j), 400, "model is required (no services.llm.model default)");
		return false;
	}
	if (!j->model || !*j->model) {
		free(j->model);
		j->model = ab_xstrdup(name);
	}
	j->path = ab_catalog_resolve(name, st->models_dir, st->ollama_dir);
	if (!j->path) {
		char msg[400];
		snprintf(msg, sizeof(msg), "model \"%s\" not found (see GET /api/tags or autobot model list)",
			 name);
		reply_err(req, is_oai(j), 404, msg);
		return false;
	}
	return true;
}

/* The end of every generation handler: 400 for what is wrong, 404 for an
 * unknown model, else the stream and the queue. Takes j. */
static void admit(struct ab_http_req *req, struct llm_state *st, struct job *j, const char *why)
{
	if (why) {
		reply_err(req, is_oai(j), 400, why);
		job_free(j);
		return;
	}
	if (!resolve(req, st, j)) {
		job_free(j);
		return;
	}
	submit(req, st, j);
}

static const char *keep_alive_field(struct job *j, json_t *b)
{
	json_t *v = json_object_get(b, "keep_alive");
	if (v && !json_is_null(v) && parse_keep_alive(v, &j->keep_alive_s) < 0)
		return "keep_alive must be seconds or a duration like \"5m\"";
	return NULL;
}

/* Ollama's "format": "json" (or "" / null: none). A JSON schema (newer
 * Ollama) would need a grammar of its own: refused rather than ignored. */
static const char *format_field(struct job *j, json_t *b)
{
	json_t *f = json_object_get(b, "format");
	if (!f || json_is_null(f))
		return NULL;
	if (json_is_object(f))
		return "format with a JSON schema is not supported: use \"json\"";
	const char *s = json_string_value(f);
	if (!s)
		return "format must be \"json\"";
	if (strcmp(s, "json") == 0)
		j->json_fmt = true;
	else if (*s)
		return "format must be \"json\" (a JSON schema is not supported)";
	return NULL;
}

/* What every Ollama generation request shares: format, options, keep_alive. */
static const char *ollama_fields(struct job *j, json_t *b)
{
	const char *why = format_field(j, b);
	if (why)
		return why;
	why = ollama_options(j, json_object_get(b, "options"));
	return why ? why : keep_alive_field(j, b);
}

/* Provider mode forwards the request and returns NULL; otherwise a new job
 * of kind for the request's model, streaming by the API's default
 * (Ollama: unless "stream": false; OpenAI: only with "stream": true). */
static struct job *begin(struct ab_http_req *req, enum job_kind kind)
{
	struct llm_state *st = state_of(req);
	bool oai = is_oai_kind(kind);
	if (st->proxy) {
		forward(req, st, oai);
		return NULL;
	}
	json_t *b = req->json;
	struct job *j = job_new(st, kind, json_string_value(json_object_get(b, "model")));
	json_t *stream = json_object_get(b, "stream");
	j->stream = oai ? json_is_true(stream) : !json_is_false(stream);
	return j;
}

/* ---- handlers -------------------------------------------------------------- */

static void h_generate(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	struct job *j = begin(req, J_GENERATE);
	if (!j)
		return;
	json_t *b = req->json;
	const char *why = NULL;
	json_t *v;
	if ((v = json_object_get(b, "prompt")) && !json_is_string(v) && !json_is_null(v))
		why = "prompt must be a string";
	j->prompt = ab_xstrdup(json_string_value(v));
	j->system = ab_xstrdup(json_string_value(json_object_get(b, "system")));
	j->raw = json_is_true(json_object_get(b, "raw"));
	if ((v = json_object_get(b, "context")) && json_is_array(v))
		j->context = json_incref(v);
	if (!why)
		why = ollama_fields(j, b);
	admit(req, st, j, why);
}

static void h_chat(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	struct job *j = begin(req, J_CHAT);
	if (!j)
		return;
	json_t *b = req->json;
	const char *why = norm_messages(json_object_get(b, "messages"), &j->messages);
	if (!why)
		why = ollama_fields(j, b);
	/* an empty message list only loads the model, as with Ollama */
	if (!why && json_array_size(j->messages) == 0) {
		j->kind = J_GENERATE;
		json_decref(j->messages);
		j->messages = NULL;
	}
	admit(req, st, j, why);
}

static void h_oai_chat(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	struct job *j = begin(req, J_OAI_CHAT);
	if (!j)
		return;
	json_t *b = req->json;
	const char *why = norm_messages(json_object_get(b, "messages"), &j->messages);
	if (!why && json_array_size(j->messages) == 0)
		why = "messages must not be empty";
	if (!why)
		why = oai_options(j, b);
	admit(req, st, j, why);
}

static void h_oai_completions(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	struct job *j = begin(req, J_OAI_COMPL);
	if (!j)
		return;
	json_t *b = req->json;
	json_t *p = json_object_get(b, "prompt");
	const char *why = NULL;
	if (json_is_array(p) && json_array_size(p) == 1)
		p = json_array_get(p, 0);
	if (!json_is_string(p))
		why = "prompt must be a string";
	else
		j->prompt = ab_xstrdup(json_string_value(p));
	j->raw = true;
	if (!why)
		why = oai_options(j, b);
	if (!why && j->num_predict < 0)
		j->num_predict = 16; /* OpenAI's default max_tokens for completions */
	admit(req, st, j, why);
}

/* Inputs of an embedding request: a string or an array of strings. */
static const char *take_inputs(struct job *j, json_t *v)
{
	if (json_is_string(v)) {
		j->inputs[j->n_inputs++] = ab_xstrdup(json_string_value(v));
		return NULL;
	}
	if (!json_is_array(v))
		return "input must be a string or an array of strings";
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e))
			return "input must be a string or an array of strings";
		if (j->n_inputs >= MAX_INPUTS)
			return "at most 256 inputs per request";
		j->inputs[j->n_inputs++] = ab_xstrdup(json_string_value(e));
	}
	return NULL;
}

static void embed_common(struct ab_http_req *req, enum job_kind kind, const char *field)
{
	struct llm_state *st = state_of(req);
	bool oai = kind == J_OAI_EMBED;
	struct job *j = begin(req, kind);
	if (!j)
		return;
	json_t *b = req->json;
	j->stream = false;
	const char *why = take_inputs(j, json_object_get(b, field));
	if (!why && !oai)
		why = ollama_options(j, json_object_get(b, "options"));
	json_t *fmt = oai ? json_object_get(b, "encoding_format") : NULL;
	if (!why && fmt && !json_is_null(fmt)) {
		const char *f = json_string_value(fmt);
		if (f && !strcmp(f, "base64"))
			j->b64 = true;
		else if (!f || strcmp(f, "float"))
			why = "encoding_format must be float or base64";
	}
	json_t *tr = json_object_get(b, "truncate");
	if (!why && tr && !json_is_boolean(tr))
		why = "truncate must be true or false";
	if (!why && tr)
		j->no_truncate = json_is_false(tr);
	if (!why)
		why = keep_alive_field(j, b);
	admit(req, st, j, why);
}

static void h_embed(struct ab_http_req *req)
{
	embed_common(req, J_EMBED, "input");
}

static void h_embeddings(struct ab_http_req *req)
{
	embed_common(req, J_EMBED_OLD, "prompt");
}

static void h_oai_embeddings(struct ab_http_req *req)
{
	embed_common(req, J_OAI_EMBED, "input");
}

/* ---- model listings ---------------------------------------------------------- */

static const char *file_type_name(uint32_t ft)
{
	static const struct {
		uint32_t id;
		const char *name;
	} t[] = {{0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},   {7, "Q8_0"},
		 {8, "Q5_0"},    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
		 {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
		 {18, "Q6_K"},   {32, "BF16"}};
	for (size_t i = 0; i < AB_ARRAY_LEN(t); i++)
		if (t[i].id == ft)
			return t[i].name;
	return "unknown";
}

/* Ollama's "details" of a model file: format, family, size, quantisation. */
static json_t *details_of(const char *path)
{
	struct ab_gguf *g = NULL;
	char err[256];
	if (ab_gguf_open(path, &g, err, sizeof(err)) < 0)
		return json_pack("{s:s,s:s,s:s,s:s}", "format", "llama2.c", "family", "llama",
				 "parameter_size", "", "quantization_level", "F32");
	char *arch = NULL;
	ab_gguf_get_str(g, "general.architecture", &arch);
	uint32_t ft = 0;
	ab_gguf_get_u32(g, "general.file_type", &ft);
	double params = 0;
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		double e = 1;
		for (uint32_t d = 0; d < g->tensors[i].n_dims; d++)
			e *= (double)g->tensors[i].ne[d];
		params += e;
	}
	char ps[32];
	if (params >= 1e9)
		snprintf(ps, sizeof(ps), "%.1fB", params / 1e9);
	else if (params >= 1e6)
		snprintf(ps, sizeof(ps), "%.0fM", params / 1e6);
	else
		snprintf(ps, sizeof(ps), "%.0fK", params / 1e3);
	json_t *o = json_pack("{s:s,s:s,s:[s],s:s,s:s}", "format", "gguf", "family",
			      arch ? arch : "unknown", "families", arch ? arch : "unknown",
			      "parameter_size", ps, "quantization_level", file_type_name(ft));
	free(arch);
	ab_gguf_free(g);
	return o;
}

static void h_tags(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	if (st->proxy) {
		forward(req, st, false);
		return;
	}
	struct ab_model_entry *e = NULL;
	size_t n = 0;
	ab_catalog_scan(st->models_dir, st->ollama_dir, &e, &n);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char when[40];
		iso_time(e[i].mtime_s, when, sizeof(when));
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", e[i].name,
						     "model", e[i].name, "modified_at", when, "size",
						     (json_int_t)e[i].size, "digest", e[i].digest,
						     "details", details_of(e[i].path)));
	}
	ab_catalog_free(e, n);
	json_t *o = json_pack("{s:o}", "models", arr);
	ab_http_reply_jansson(req, 200, o);
	json_decref(o);
}

static void h_oai_models(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	if (st->proxy) {
		forward(req, st, true);
		return;
	}
	struct ab_model_entry *e = NULL;
	size_t n = 0;
	ab_catalog_scan(st->models_dir, st->ollama_dir, &e, &n);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:s}", "id", e[i].name, "object",
						     "model", "created", (json_int_t)e[i].mtime_s,
						     "owned_by", "autobot"));
	ab_catalog_free(e, n);
	json_t *o = json_pack("{s:s,s:o}", "object", "list", "data", arr);
	ab_http_reply_jansson(req, 200, o);
	json_decref(o);
}

static void h_show(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	if (st->proxy) {
		forward(req, st, false);
		return;
	}
	const char *name = json_string_value(json_object_get(req->json, "model"));
	if (!name)
		name = json_string_value(json_object_get(req->json, "name"));
	char *path = name ? ab_catalog_resolve(name, st->models_dir, st->ollama_dir) : NULL;
	if (!path) {
		ollama_error(req, 404, "model \"%s\" not found", name ? name : "");
		return;
	}
	json_t *info = json_object();
	char *tmpl = NULL;
	struct ab_gguf *g = NULL;
	char err[256];
	if (ab_gguf_open(path, &g, err, sizeof(err)) == 0) {
		for (uint64_t i = 0; i < g->n_kv; i++) {
			const struct ab_gguf_kv *kv = &g->kv[i];
			char key[256];
			snprintf(key, sizeof(key), "%.*s", (int)(kv->key.n < 255 ? kv->key.n : 255),
				 kv->key.p);
			if (!strncmp(key, "tokenizer.", 10))
				continue;
			json_t *v = NULL;
			switch (kv->type) {
			case AB_GGUF_UINT8: case AB_GGUF_UINT16: case AB_GGUF_UINT32: case AB_GGUF_UINT64:
				v = json_integer((json_int_t)kv->v.u);
				break;
			case AB_GGUF_INT8: case AB_GGUF_INT16: case AB_GGUF_INT32: case AB_GGUF_INT64:
				v = json_integer((json_int_t)kv->v.i);
				break;
			case AB_GGUF_FLOAT32: case AB_GGUF_FLOAT64:
				v = json_real(kv->v.f);
				break;
			case AB_GGUF_BOOL:
				v = json_boolean(kv->v.u);
				break;
			case AB_GGUF_STRING:
				v = json_stringn_nocheck(kv->v.s.p, (size_t)kv->v.s.n);
				break;
			default:
				break;
			}
			if (v)
				json_object_set_new(info, key, v);
		}
		ab_gguf_get_str(g, "tokenizer.chat_template", &tmpl);
		ab_gguf_free(g);
	}
	char *modelfile = ab_xasprintf("# served by autobot\nFROM %s\n", path);
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "license", "", "modelfile", modelfile,
			      "parameters", "", "template", tmpl ? tmpl : "{{ .Prompt }}", "details",
			      details_of(path), "model_info", info);
	ab_http_reply_jansson(req, 200, o);
	json_decref(o);
	free(modelfile);
	free(tmpl);
	free(path);
}

static void h_ps(struct ab_http_req *req)
{
	struct llm_state *st = state_of(req);
	if (st->proxy) {
		forward(req, st, false);
		return;
	}
	json_t *arr = json_array();
	pthread_mutex_lock(&st->lock);
	for (int i = 0; i < st->n_slots; i++) {
		struct slot *s = st->slots[i];
		char when[40] = "0001-01-01T00:00:00Z";
		if (s->expires_ms != INT64_MAX && !s->busy)
			iso_time((ab_wall_ms() + (s->expires_ms - ab_now_ms())) / 1000, when,
				 sizeof(when));
		else if (s->expires_ms == INT64_MAX)
			ab_strlcpy(when, "2318-01-01T00:00:00Z", sizeof(when));
		struct stat sb;
		json_int_t size = stat(s->path, &sb) == 0 ? (json_int_t)sb.st_size : 0;
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:o}", "name", s->name,
						     "model", s->name, "size", size, "digest", "",
						     "expires_at", when, "size_vram", (json_int_t)0,
						     "details", json_object()));
	}
	pthread_mutex_unlock(&st->lock);
	json_t *o = json_pack("{s:o}", "models", arr);
	ab_http_reply_jansson(req, 200, o);
	json_decref(o);
}

static void h_version(struct ab_http_req *req)
{
	json_t *o = json_pack("{s:s}", "version", AB_VERSION);
	ab_http_reply_jansson(req, 200, o);
	json_decref(o);
}

/* ---- the role -------------------------------------------------------------- */

static int llm_health(struct ab_service *svc, struct ab_buf *out)
{
	struct llm_state *st = svc->state;
	if (!st)
		return 0;
	pthread_mutex_lock(&st->lock);
	ab_buf_printf(out, ",\"llm\":{\"status\":\"ok\",\"provider\":\"%s\",\"device\":\"cpu-%s\","
		      "\"queue\":%d,\"active\":%d,\"loaded\":[",
		      svc->cfg->llm.provider, ab_quant_backend(), st->qlen, st->active);
	for (int i = 0; i < st->n_slots; i++) {
		if (i)
			ab_buf_putc(out, ',');
		ab_buf_json_str(out, st->slots[i]->name);
	}
	ab_buf_puts(out, "]}");
	pthread_mutex_unlock(&st->lock);
	return 0;
}

static int llm_init(struct ab_service *svc, char *err, size_t errlen)
{
	const struct ab_config *cfg = svc->cfg;
	struct llm_state *st = ab_xcalloc(1, sizeof(*st));
	st->svc = svc;
	svc->state = st;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->proxy = strcmp(cfg->llm.provider, "builtin") != 0;
	if (st->proxy && !*cfg->llm.url) {
		snprintf(err, errlen, "services.llm.provider is %s but services.llm.url is empty",
			 cfg->llm.provider);
		return AB_ECONFIG;
	}
	st->models_dir = models_dir_of(cfg);
	st->ollama_dir = (cfg->llm.ollama_dir && *cfg->llm.ollama_dir)
				 ? ab_xstrdup(cfg->llm.ollama_dir)
				 : ab_catalog_default_ollama_dir();
	st->n_workers = st->proxy ? 8 : cfg->llm.parallel;
	if (st->n_workers > (int)AB_ARRAY_LEN(st->workers))
		st->n_workers = (int)AB_ARRAY_LEN(st->workers);
	for (int i = 0; i < st->n_workers; i++) {
		int rc = pthread_create(&st->workers[i], NULL, worker_main, st);
		if (rc != 0) {
			st->n_workers = i;
			snprintf(err, errlen, "cannot start workers: %s", strerror(rc));
			return -rc;
		}
	}
	if (pthread_create(&st->reaper, NULL, reaper_main, st) == 0)
		st->reaper_started = true;
	if (st->proxy)
		ab_log(AB_LOG_INFO, "forwarding to the %s server at %s", cfg->llm.provider,
		       cfg->llm.url);
	else
		ab_log(AB_LOG_INFO, "models from %s%s%s; kernels %s", st->models_dir,
		       st->ollama_dir ? " and the ollama store " : "",
		       st->ollama_dir ? st->ollama_dir : "", ab_quant_backend());
	return 0;
}

static void llm_fini(struct ab_service *svc)
{
	struct llm_state *st = svc->state;
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	for (int i = 0; i < st->n_workers; i++)
		pthread_join(st->workers[i], NULL);
	if (st->reaper_started)
		pthread_join(st->reaper, NULL);
	while (st->head) {
		struct job *j = st->head;
		st->head = j->next;
		job_free(j);
	}
	for (int i = 0; i < st->n_slots; i++)
		slot_free(st->slots[i]);
	free(st->models_dir);
	free(st->ollama_dir);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
	svc->state = NULL;
}

static const struct ab_route routes[] = {
	{"POST", "/api/generate", h_generate, AB_ACCESS_USER, AB_ROUTE_JSON_BODY | AB_ROUTE_STREAM,
	 "Ollama: generate a completion (NDJSON stream unless \"stream\": false)"},
	{"POST", "/api/chat", h_chat, AB_ACCESS_USER, AB_ROUTE_JSON_BODY | AB_ROUTE_STREAM,
	 "Ollama: chat with a model (NDJSON stream unless \"stream\": false)"},
	{"POST", "/api/embed", h_embed, AB_ACCESS_USER, AB_ROUTE_JSON_BODY,
	 "Ollama: embeddings of one or more inputs"},
	{"POST", "/api/embeddings", h_embeddings, AB_ACCESS_USER, AB_ROUTE_JSON_BODY,
	 "Ollama (legacy): the embedding of one prompt"},
	{"GET", "/api/tags", h_tags, AB_ACCESS_VIEWER, 0, "Ollama: models available here"},
	{"POST", "/api/show", h_show, AB_ACCESS_VIEWER, AB_ROUTE_JSON_BODY,
	 "Ollama: details and metadata of a model"},
	{"GET", "/api/ps", h_ps, AB_ACCESS_VIEWER, 0, "Ollama: models loaded now"},
	{"GET", "/api/version", h_version, AB_ACCESS_VIEWER, 0, "Ollama: server version"},
	{"POST", "/v1/chat/completions", h_oai_chat, AB_ACCESS_USER,
	 AB_ROUTE_JSON_BODY | AB_ROUTE_STREAM, "OpenAI: chat completion (SSE when stream is true)"},
	{"POST", "/v1/completions", h_oai_completions, AB_ACCESS_USER,
	 AB_ROUTE_JSON_BODY | AB_ROUTE_STREAM, "OpenAI: text completion (SSE when stream is true)"},
	{"POST", "/v1/embeddings", h_oai_embeddings, AB_ACCESS_USER, AB_ROUTE_JSON_BODY,
	 "OpenAI: embeddings"},
	{"GET", "/v1/models", h_oai_models, AB_ACCESS_VIEWER, 0, "OpenAI: models available here"},
};

const struct ab_role_def ab_role_llm = {
	.role = AB_ROLE_LLM,
	.summary = "LLM server: Ollama and OpenAI APIs on the built-in engine or a provider",
	.routes = routes,
	.n_routes = AB_ARRAY_LEN(routes),
	.init = llm_init,
	.fini = llm_fini,
	.health = llm_health,
};
