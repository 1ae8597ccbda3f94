/*
 * jobs.c - the job bus (see jobs.h for the contract).
 *
 * A worker thread loops:
 *   1. after a Redis failure (and at start), re-reads its own pending
 *      entries (XREADGROUP ... 0): a job it was running when Redis went
 *      away is resumed as soon as Redis is back, not a visibility timeout
 *      later;
 *   2. XAUTOCLAIM one entry idle longer than the visibility timeout (a
 *      crashed worker's job);
 *   3. else XREADGROUP one new entry, blocking a short while.
 * For each entry it bumps ab:job:<id>.attempts; past max_attempts the entry
 * is copied to the dead-letter stream and the job fails; otherwise the
 * handler runs, and its outcome is written to the job hash before the
 * entry is acknowledged and deleted (XACK + XDEL in one MULTI), so a crash
 * between the two leaves a pending entry whose job says done, which the
 * next delivery recognises and just acknowledges. A retryable failure
 * leaves the entry pending: it comes back after the visibility timeout.
 * While a handler runs, ab_job_progress also resets the entry's idle time
 * (XCLAIM ... JUSTID) every quarter of the visibility timeout, so a long
 * job is not taken over while its worker is alive.
 *
 * Everything goes through the role's struct ab_redis pool, so a dead Redis
 * costs a fast AB_EUNAVAIL and the loop backs off for a second.
 */
#include "jobs.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "keys.h"
#include "log.h"

struct ab_job {
	struct ab_jobs *bus;
	struct ab_redis *r;
	char id[AB_JOB_ID_MAX];
	char type[64];
	char entry[64]; /* stream entry id */
	json_t *payload;
	int attempt;
	int64_t last_touch_ms;
	int64_t last_cancel_check_ms;
	bool cancelled;
	json_t *result;
	char error[512];
};

struct ab_jobs {
	struct ab_redis *r;
	char *queue;
	char *stream;
	char *dead;
	char *consumer;
	int visibility_ms;
	int max_attempts;
	ab_job_handler fn;
	void *ctx;
	atomic_bool stop;
	pthread_t *threads;
	int nthreads;
};

static const char submit_lua[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
	"redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', ARGV[2], 'queue', ARGV[3],\n"
	"  'state', 'queued', 'progress', '0', 'attempts', '0', 'created_ms', ARGV[5],\n"
	"  'updated_ms', ARGV[5])\n"
	"local e = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'type', ARGV[2],\n"
	"  'payload', ARGV[4])\n"
	"redis.call('HSET', KEYS[1], 'entry', e)\n"
	"return 1\n";

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= AB_JOB_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

int ab_jobs_submit(struct ab_redis *r, const char *queue, const char *type, const char *id,
		   const json_t *payload, char *id_out, bool *existed)
{
	char gen[33];
	if (!id) {
		ab_random_hex(gen, 16);
		id = gen;
	}
	if (!id_ok(id) || !queue || !type)
		return AB_EINVAL;
	ab_strlcpy(id_out, id, AB_JOB_ID_MAX);
	char *body = json_dumps(payload ? payload : json_object(), JSON_COMPACT);
	char *key = ab_xasprintf(AB_KEY_JOB_PREFIX "%s", id);
	char *stream = ab_xasprintf(AB_KEY_JOBS_PREFIX "%s", queue);
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)ab_wall_ms());
	const char *argv[] = {"EVAL", submit_lua, "2", key, stream, id, type, queue, body, now};
	int err = 0;
	redisReply *rep = ab_redis_cmdargv(r, &err, 10, argv, NULL);
	int rc = 0;
	if (!rep) {
		rc = err;
	} else if (rep->type == REDIS_REPLY_INTEGER) {
		if (existed)
			*existed = rep->integer == 0;
	} else {
		rc = AB_EREDIS;
	}
	if (rep)
		freeReplyObject(rep);
	free(body);
	free(key);
	free(stream);
	return rc;
}

int ab_jobs_get(struct ab_redis *r, const char *id, json_t **out)
{
	if (!id_ok(id))
		return AB_ENOTFOUND;
	int err = 0;
	redisReply *rep = ab_redis_cmd(r, &err, "HGETALL " AB_KEY_JOB_PREFIX "%s", id);
	if (!rep)
		return err;
	int rc = 0;
	if (rep->type != REDIS_REPLY_ARRAY) {
		rc = AB_EREDIS;
		goto out;
	}
	if (rep->elements == 0) {
		rc = AB_ENOTFOUND;
		goto out;
	}
	json_t *o = json_object();
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const char *k = rep->element[i]->str;
		const char *v = rep->element[i + 1]->str;
		if (!k || !v)
			continue;
		if (!strcmp(k, "progress")) {
			json_object_set_new(o, k, json_real(atof(v)));
		} else if (!strcmp(k, "attempts") || !strcmp(k, "created_ms") ||
			   !strcmp(k, "updated_ms")) {
			json_object_set_new(o, k, json_integer(atoll(v)));
		} else if (!strcmp(k, "result")) {
			json_t *j = json_loads(v, 0, NULL);
			json_object_set_new(o, k, j ? j : json_string(v));
		} else if (!strcmp(k, "cancel") || !strcmp(k, "entry")) {
			continue;
		} else {
			json_object_set_new(o, k, json_string(v));
		}
	}
	*out = o;
out:
	freeReplyObject(rep);
	return rc;
}

static const char cancel_lua[] =
	"local s = redis.call('HGET', KEYS[1], 'state')\n"
	"if not s then return -1 end\n"
	"if s == 'done' or s == 'failed' or s == 'cancelled' then return 0 end\n"
	"redis.call('HSET', KEYS[1], 'cancel', '1', 'updated_ms', ARGV[1])\n"
	"if s == 'queued' then redis.call('HSET', KEYS[1], 'state', 'cancelled') end\n"
	"return 1\n";

int ab_jobs_cancel(struct ab_redis *r, const char *id)
{
	if (!id_ok(id))
		return AB_ENOTFOUND;
	char *key = ab_xasprintf(AB_KEY_JOB_PREFIX "%s", id);
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)ab_wall_ms());
	const char *argv[] = {"EVAL", cancel_lua, "1", key, now};
	int err = 0;
	redisReply *rep = ab_redis_cmdargv(r, &err, 5, argv, NULL);
	free(key);
	if (!rep)
		return err;
	int rc = rep->type == REDIS_REPLY_INTEGER ? (rep->integer < 0 ? AB_ENOTFOUND : 0) : AB_EREDIS;
	freeReplyObject(rep);
	return rc;
}

/* ---- handler side ------------------------------------------------------- */

const char *ab_job_id(const struct ab_job *job) { return job->id; }
const char *ab_job_type(const struct ab_job *job) { return job->type; }
const json_t *ab_job_payload(const struct ab_job *job) { return job->payload; }
int ab_job_attempt(const struct ab_job *job) { return job->attempt; }
struct ab_redis *ab_job_redis(const struct ab_job *job) { return job->r; }

static void touch(struct ab_job *job)
{
	int err;
	redisReply *rep = ab_redis_cmd(job->r, &err, "XCLAIM %s %s %s 0 %s JUSTID", job->bus->stream,
				       job->bus->queue, job->bus->consumer, job->entry);
	if (rep)
		freeReplyObject(rep);
	job->last_touch_ms = ab_now_ms();
}

void ab_job_progress(struct ab_job *job, double fraction, const char *fmt, ...)
{
	char msg[256] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	if (fraction < 0)
		fraction = 0;
	if (fraction > 1)
		fraction = 1;
	int err;
	redisReply *rep = ab_redis_cmd(job->r, &err,
				       "HSET " AB_KEY_JOB_PREFIX "%s progress %.4f message %s updated_ms %lld",
				       job->id, fraction, msg, (long long)ab_wall_ms());
	if (rep)
		freeReplyObject(rep);
	if (ab_now_ms() - job->last_touch_ms > job->bus->visibility_ms / 4)
		touch(job);
}

bool ab_job_cancelled(struct ab_job *job)
{
	if (job->cancelled)
		return true;
	if (ab_now_ms() - job->last_cancel_check_ms < 200)
		return false;
	job->last_cancel_check_ms = ab_now_ms();
	int err;
	redisReply *rep = ab_redis_cmd(job->r, &err, "HGET " AB_KEY_JOB_PREFIX "%s cancel", job->id);
	if (rep) {
		job->cancelled = rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, "1");
		freeReplyObject(rep);
	}
	return job->cancelled;
}

void ab_job_set_result(struct ab_job *job, json_t *result)
{
	json_decref(job->result);
	job->result = result;
}

void ab_job_set_error(struct ab_job *job, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
}

/* ---- worker side -------------------------------------------------------- */

static bool ensure_group(struct ab_jobs *b)
{
	int err;
	redisReply *rep = ab_redis_cmd(b->r, &err, "XGROUP CREATE %s %s 0 MKSTREAM", b->stream,
				       b->queue);
	if (!rep)
		return false;
	bool ok = rep->type != REDIS_REPLY_ERROR || strstr(rep->str, "BUSYGROUP");
	if (!ok)
		ab_log(AB_LOG_WARN, "jobs: cannot create the group of %s: %s", b->stream, rep->str);
	freeReplyObject(rep);
	return ok;
}

/* Finishes an entry: the job's final fields, then XACK + XDEL. */
static int finish(struct ab_jobs *b, const char *id, const char *entry, const char *state,
		  const char *field, const char *value)
{
	char *key = ab_xasprintf(AB_KEY_JOB_PREFIX "%s", id);
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)ab_wall_ms());
	const char *hset[] = {"HSET", key, "state", state, "updated_ms", now,
			      field ? field : "message", value ? value : "", "progress",
			      !strcmp(state, "done") ? "1" : "0"};
	const char *multi[] = {"MULTI"};
	const char *ack[] = {"XACK", b->stream, b->queue, entry};
	const char *del[] = {"XDEL", b->stream, entry};
	const char *exec[] = {"EXEC"};
	struct ab_redis_argv cmds[] = {
		{1, multi, NULL}, {10, hset, NULL}, {4, ack, NULL}, {3, del, NULL}, {1, exec, NULL},
	};
	redisReply *rep[5] = {0};
	int rc = ab_redis_pipeline(b->r, 5, cmds, rep);
	if (rc == 0 && (!rep[4] || rep[4]->type != REDIS_REPLY_ARRAY))
		rc = AB_EREDIS;
	for (int i = 0; i < 5; i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	free(key);
	return rc;
}

static const char *field_of(const redisReply *fields, const char *name)
{
	for (size_t i = 0; fields && i + 1 < fields->elements; i += 2)
		if (fields->element[i]->str && !strcmp(fields->element[i]->str, name))
			return fields->element[i + 1]->str;
	return NULL;
}

/* Runs one stream entry [id, [field, value, ...]]. Returns <0 when Redis
 * failed (the caller backs off and re-reads its pending entries). */
static int process(struct ab_jobs *b, const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !e->element[0]->str)
		return 0;
	const char *entry = e->element[0]->str;
	const redisReply *fields = e->element[1];
	const char *id = field_of(fields, "id");
	const char *type = field_of(fields, "type");
	const char *payload = field_of(fields, "payload");
	int err = 0;
	if (!id || !type || !payload || !id_ok(id)) {
		/* not ours or damaged: drop it into the dead letters */
		redisReply *rep = ab_redis_cmd(b->r, &err, "XADD %s * entry %s reason malformed",
					       b->dead, entry);
		if (rep)
			freeReplyObject(rep);
		rep = ab_redis_cmd(b->r, &err, "XACK %s %s %s", b->stream, b->queue, entry);
		if (rep)
			freeReplyObject(rep);
		return 0;
	}
	redisReply *st = ab_redis_cmd(b->r, &err, "HMGET " AB_KEY_JOB_PREFIX "%s state cancel", id);
	if (!st)
		return err;
	const char *state = st->type == REDIS_REPLY_ARRAY && st->elements == 2 ? st->element[0]->str : NULL;
	bool cancel = st->type == REDIS_REPLY_ARRAY && st->elements == 2 && st->element[1]->str &&
		      !strcmp(st->element[1]->str, "1");
	int rc = 0;
	if (!state) { /* the job was deleted: forget the entry */
		freeReplyObject(st);
		redisReply *rep = ab_redis_cmd(b->r, &err, "XACK %s %s %s", b->stream, b->queue, entry);
		if (!rep)
			return err;
		freeReplyObject(rep);
		return 0;
	}
	if (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled") ||
	    cancel) {
		/* finished by an earlier delivery, or cancelled */
		char final[16];
		ab_strlcpy(final, cancel && strcmp(state, "done") && strcmp(state, "failed")
					  ? "cancelled" : state, sizeof(final));
		freeReplyObject(st);
		return finish(b, id, entry, final, NULL, NULL);
	}
	freeReplyObject(st);
	redisReply *at = ab_redis_cmd(b->r, &err, "HINCRBY " AB_KEY_JOB_PREFIX "%s attempts 1", id);
	if (!at)
		return err;
	long long attempt = at->type == REDIS_REPLY_INTEGER ? at->integer : 1;
	freeReplyObject(at);
	if (attempt > b->max_attempts) {
		redisReply *rep = ab_redis_cmd(b->r, &err,
					       "XADD %s * id %s type %s payload %s reason %s", b->dead,
					       id, type, payload, "too many attempts");
		if (!rep)
			return err;
		freeReplyObject(rep);
		char msg[128];
		snprintf(msg, sizeof(msg), "gave up after %d attempts", b->max_attempts);
		ab_log(AB_LOG_WARN, "jobs: %s %s: %s, moved to %s", type, id, msg, b->dead);
		return finish(b, id, entry, "failed", "error", msg);
	}
	redisReply *rs = ab_redis_cmd(b->r, &err,
				      "HSET " AB_KEY_JOB_PREFIX "%s state running worker %s updated_ms %lld",
				      id, b->consumer, (long long)ab_wall_ms());
	if (!rs)
		return err;
	freeReplyObject(rs);

	struct ab_job job = {.bus = b, .r = b->r, .attempt = (int)attempt};
	ab_strlcpy(job.id, id, sizeof(job.id));
	ab_strlcpy(job.type, type, sizeof(job.type));
	ab_strlcpy(job.entry, entry, sizeof(job.entry));
	job.payload = json_loads(payload, 0, NULL);
	job.last_touch_ms = ab_now_ms();
	int64_t t0 = ab_now_ms();
	int out;
	if (!job.payload) {
		ab_job_set_error(&job, "the job's payload is not JSON");
		out = AB_JOB_FAILED;
	} else {
		out = b->fn(&job, b->ctx);
	}
	if (out == AB_JOB_DONE) {
		char *res = job.result ? json_dumps(job.result, JSON_COMPACT) : NULL;
		rc = finish(b, id, entry, "done", "result", res ? res : "{}");
		free(res);
		ab_log(AB_LOG_INFO, "jobs: %s %s done in %lld ms (attempt %lld)", type, id,
		       (long long)(ab_now_ms() - t0), attempt);
	} else if (out == AB_JOB_FAILED) {
		rc = finish(b, id, entry, "failed", "error", job.error[0] ? job.error : "failed");
		ab_log(AB_LOG_WARN, "jobs: %s %s failed: %s", type, id, job.error);
	} else if (out == AB_JOB_CANCELLED) {
		rc = finish(b, id, entry, "cancelled", NULL, NULL);
	} else {
		/* retry later: the entry stays pending */
		redisReply *rep = ab_redis_cmd(b->r, &err,
					       "HSET " AB_KEY_JOB_PREFIX "%s state queued error %s",
					       id, job.error[0] ? job.error : ab_strerror(out));
		if (rep)
			freeReplyObject(rep);
		ab_log(AB_LOG_WARN, "jobs: %s %s attempt %lld failed: %s; will retry", type, id,
		       attempt, job.error[0] ? job.error : ab_strerror(out));
		rc = rep ? 0 : err;
		if (!rc && (out == AB_EUNAVAIL || out == AB_ETIMEOUT || out == AB_EREDIS))
			rc = out; /* Redis trouble: back off, then resume from the pending list */
	}
	json_decref(job.payload);
	json_decref(job.result);
	return rc;
}

/* Reads entries: XREADGROUP ... STREAMS stream <from>. Processes what came.
 * Returns the number processed, or <0 on a Redis failure. */
static int read_group(struct ab_jobs *b, const char *from, int block_ms)
{
	int err = 0;
	redisReply *rep;
	if (block_ms > 0)
		rep = ab_redis_cmd(b->r, &err, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %d STREAMS %s %s",
				   b->queue, b->consumer, block_ms, b->stream, from);
	else
		rep = ab_redis_cmd(b->r, &err, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s %s", b->queue,
				   b->consumer, b->stream, from);
	if (!rep)
		return err;
	int n = 0, rc = 0;
	if (rep->type == REDIS_REPLY_ERROR) {
		if (strstr(rep->str, "NOGROUP"))
			ensure_group(b);
		rc = AB_EREDIS;
	} else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
		const redisReply *s = rep->element[0];
		const redisReply *entries = s->type == REDIS_REPLY_ARRAY && s->elements == 2 ? s->element[1] : NULL;
		for (size_t i = 0; entries && i < entries->elements && rc >= 0; i++) {
			/* a pending entry deleted meanwhile comes back as [id, nil] */
			rc = process(b, entries->element[i]);
			n++;
		}
	}
	freeReplyObject(rep);
	return rc < 0 ? rc : n;
}

static int autoclaim(struct ab_jobs *b)
{
	int err = 0;
	redisReply *rep = ab_redis_cmd(b->r, &err, "XAUTOCLAIM %s %s %s %d 0-0 COUNT 1", b->stream,
				       b->queue, b->consumer, b->visibility_ms);
	if (!rep)
		return err;
	int n = 0, rc = 0;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
	    rep->element[1]->type == REDIS_REPLY_ARRAY) {
		const redisReply *entries = rep->element[1];
		for (size_t i = 0; i < entries->elements && rc >= 0; i++) {
			ab_log(AB_LOG_INFO, "jobs: taking over an idle job from %s", b->stream);
			rc = process(b, entries->element[i]);
			n++;
		}
	} else if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "NOGROUP")) {
		ensure_group(b);
	}
	freeReplyObject(rep);
	return rc < 0 ? rc : n;
}

static void *worker_main(void *arg)
{
	struct ab_jobs *b = arg;
	bool recover = true, grouped = false;
	int block = 200;
	while (!atomic_load(&b->stop)) {
		if (!ab_redis_is_up(b->r)) {
			ab_sleep_ms(200);
			recover = true;
			continue;
		}
		if (!grouped && !(grouped = ensure_group(b))) {
			ab_sleep_ms(500);
			continue;
		}
		int n = 0;
		if (recover) {
			n = read_group(b, "0", 0);
			if (n >= 0 && n == 0)
				recover = false;
		}
		if (n == 0)
			n = autoclaim(b);
		if (n == 0)
			n = read_group(b, ">", block);
		if (n < 0) {
			recover = true;
			ab_sleep_ms(500);
		}
	}
	return NULL;
}

int ab_jobs_start(struct ab_redis *r, const struct ab_jobs_opts *o, ab_job_handler fn, void *ctx,
		  struct ab_jobs **out)
{
	if (!o->queue || !id_ok(o->queue) || o->workers < 0 || o->visibility_ms < 1 ||
	    o->max_attempts < 1)
		return AB_EINVAL;
	struct ab_jobs *b = ab_xcalloc(1, sizeof(*b));
	b->r = r;
	b->queue = ab_xstrdup(o->queue);
	b->stream = ab_xasprintf(AB_KEY_JOBS_PREFIX "%s", o->queue);
	b->dead = ab_xasprintf(AB_KEY_JOBS_PREFIX "%s:dead", o->queue);
	if (o->consumer) {
		b->consumer = ab_xstrdup(o->consumer);
	} else {
		char host[128] = "host";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		b->consumer = ab_xasprintf("%s:%d", host, (int)getpid());
	}
	b->visibility_ms = o->visibility_ms;
	b->max_attempts = o->max_attempts;
	b->fn = fn;
	b->ctx = ctx;
	atomic_init(&b->stop, false);
	b->threads = ab_xcalloc(o->workers ? (size_t)o->workers : 1, sizeof(pthread_t));
	for (int i = 0; i < o->workers; i++) {
		if (pthread_create(&b->threads[i], NULL, worker_main, b) != 0)
			break;
		b->nthreads++;
	}
	if (b->nthreads < o->workers) {
		ab_jobs_stop(b);
		return AB_EINVAL;
	}
	*out = b;
	return 0;
}

void ab_jobs_stop(struct ab_jobs *b)
{
	if (!b)
		return;
	atomic_store(&b->stop, true);
	for (int i = 0; i < b->nthreads; i++)
		pthread_join(b->threads[i], NULL);
	free(b->threads);
	free(b->queue);
	free(b->stream);
	free(b->dead);
	free(b->consumer);
	free(b);
}
