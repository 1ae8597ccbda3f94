/*
 * logsink.c - the ab:log stream of logsink.h: its writer (a log hook, a
 * bounded queue and a drain thread) and its readers' helpers.
 *
 * Why a queue and a thread. ab_log() is called on request threads, often
 * while a request is being answered; a Redis round trip there would tie
 * every request's latency to the data layer, and a dead Redis would stall
 * them all. So the hook only copies the line into a heap record and links
 * it at the tail of a FIFO under a mutex held for a few instructions. The
 * drain thread is the one consumer: it looks at up to BATCH records at
 * the head without unlinking them, sends them as one pipeline of XADDs
 * with the mutex released, and unlinks them only once Redis acknowledged
 * them. Producers never touch the head and the consumer never touches the
 * records' contents while they are linked, so the records it is sending
 * stay valid without holding the lock. Batching comes by itself: while
 * one pipeline is in flight, new lines pile up for the next.
 *
 * Failure. While Redis is down (the client's breaker is open) the thread
 * retries every RETRY_MS and the queue fills up to its bound in lines and
 * bytes; past it new lines are dropped and counted, so memory stays
 * bounded and the oldest lines of an outage are the ones kept. An entry
 * Redis refuses with an error (other than a transient LOADING or BUSY) is
 * dropped and counted too, so one bad entry cannot wedge the queue. The
 * thread mutes the hook for itself, so what the Redis client logs about
 * its failures on that thread reaches stderr and the file but never the
 * queue: no feedback loop. After a gap it queues one warning entry that
 * says how many lines were lost.
 *
 * Lifetime. One sink runs per process (the hook slot of log.c is single);
 * `active` points at it for ab_logsink_metrics(), under active_lock.
 */
#include "logsink.h"

#include "keys.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 256
#define RETRY_MS 250
#define QUEUE_MAX_DEFAULT 16384
#define QUEUE_BYTES_DEFAULT ((size_t)8 << 20)

/* Field caps when reading entries back: nothing from Redis is trusted. */
#define CAP_TS 40
#define CAP_LEVEL 8
#define CAP_ROLE 32
#define CAP_HOST 256
#define CAP_RID 128
#define CAP_MSG 8192

struct rec {
	struct rec *next;
	size_t size;         /* bytes charged to the queue */
	char ts[32];
	char level[8];
	char role[32];
	char rid[72];
	size_t msg_len;
	char msg[];
};

struct ab_logsink {
	struct ab_redis *redis;
	char *host;
	char maxlen[24];
	size_t queue_max, queue_max_bytes;

	pthread_mutex_t lock;
	pthread_cond_t cv;        /* lines arrived, or stop (CLOCK_MONOTONIC) */
	struct rec *head, *tail;
	size_t n, bytes;
	bool waiting;             /* the thread sleeps on cv for lines */
	bool stop;
	int64_t stop_deadline;    /* ab_now_ms() after which it gives up */
	uint64_t accepted, sent, dropped;
	uint64_t dropped_told;    /* dropped count covered by a notice */
	char last_role[32];
	pthread_t thread;
};

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ab_logsink *active;

/* ---- the hook: runs on every logging thread ---- */

static void on_line(void *ud, const struct ab_log_event *ev)
{
	struct ab_logsink *s = ud;
	size_t size = sizeof(struct rec) + ev->msg_len + 1;
	struct rec *r = ab_xmalloc(size);
	r->next = NULL;
	r->size = size;
	ab_strlcpy(r->ts, ev->ts, sizeof(r->ts));
	ab_strlcpy(r->level, ab_log_level_name(ev->level), sizeof(r->level));
	ab_strlcpy(r->role, ev->role, sizeof(r->role));
	ab_strlcpy(r->rid, ev->rid ? ev->rid : "", sizeof(r->rid));
	r->msg_len = ev->msg_len;
	memcpy(r->msg, ev->msg, ev->msg_len);
	r->msg[ev->msg_len] = '\0';

	pthread_mutex_lock(&s->lock);
	if (s->stop || s->n >= s->queue_max || s->bytes + size > s->queue_max_bytes) {
		s->dropped++;
		pthread_mutex_unlock(&s->lock);
		free(r);
		return;
	}
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->n++;
	s->bytes += size;
	s->accepted++;
	bool wake = s->waiting;
	pthread_mutex_unlock(&s->lock);
	if (wake)
		pthread_cond_signal(&s->cv);
}

/* ---- the drain thread ---- */

/* Links a record ahead of the bound (the thread's own notice). Locked. */
static void push_locked(struct ab_logsink *s, struct rec *r)
{
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->n++;
	s->bytes += r->size;
}

static struct rec *notice_rec(const char *role, uint64_t lost)
{
	char msg[160];
	int len = snprintf(msg, sizeof(msg),
			   "log stream: %llu lines were dropped (queue full or redis unavailable)",
			   (unsigned long long)lost);
	size_t size = sizeof(struct rec) + (size_t)len + 1;
	struct rec *r = ab_xcalloc(1, size);
	r->size = size;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(r->ts, sizeof(r->ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
	ab_strlcpy(r->level, "warn", sizeof(r->level));
	ab_strlcpy(r->role, role[0] ? role : "autobot", sizeof(r->role));
	r->msg_len = (size_t)len;
	memcpy(r->msg, msg, (size_t)len + 1);
	return r;
}

/* Redis errors worth retrying rather than dropping the entry for. */
static bool transient(const redisReply *rep)
{
	return rep->str && (!strncmp(rep->str, "LOADING", 7) || !strncmp(rep->str, "BUSY", 4) ||
			    !strncmp(rep->str, "TRYAGAIN", 8) ||
			    !strncmp(rep->str, "MASTERDOWN", 10));
}

/*
 * Sends the k records of batch as one pipeline. Returns how many from the
 * front are done with (acknowledged or refused for good; *refused of
 * them refused), or a negative code when nothing went through.
 */
static int send_batch(struct ab_logsink *s, struct rec **batch, size_t k, size_t *refused)
{
	enum { MAXARGS = 18 };
	const char *argv[BATCH][MAXARGS];
	size_t lens[BATCH][MAXARGS];
	struct ab_redis_argv cmds[BATCH] = {{0}};
	redisReply *replies[BATCH];
	*refused = 0;
	for (size_t i = 0; i < k; i++) {
		const struct rec *r = batch[i];
		int n = 0;
#define ARG(p, l) (argv[i][n] = (p), lens[i][n] = (l), n++)
		ARG("XADD", 4);
		ARG(AB_KEY_LOG, strlen(AB_KEY_LOG));
		ARG("MAXLEN", 6);
		ARG("~", 1);
		ARG(s->maxlen, strlen(s->maxlen));
		ARG("*", 1);
		ARG("ts", 2);
		ARG(r->ts, strlen(r->ts));
		ARG("level", 5);
		ARG(r->level, strlen(r->level));
		ARG("role", 4);
		ARG(r->role, strlen(r->role));
		ARG("host", 4);
		ARG(s->host, strlen(s->host));
		ARG("msg", 3);
		ARG(r->msg, r->msg_len);
		if (r->rid[0]) {
			ARG("rid", 3);
			ARG(r->rid, strlen(r->rid));
		}
#undef ARG
		cmds[i] = (struct ab_redis_argv){.argc = n, .argv = argv[i], .lens = lens[i]};
	}
	int rc = ab_redis_pipeline(s->redis, k, cmds, replies);
	if (rc < 0)
		return rc;
	size_t done = k;
	for (size_t i = 0; i < k; i++) {
		if (done == k && replies[i]->type == REDIS_REPLY_ERROR) {
			if (transient(replies[i]))
				done = i;
			else
				(*refused)++;
		}
		freeReplyObject(replies[i]);
	}
	return done ? (int)done : AB_EUNAVAIL;
}

static void timed_wait(struct ab_logsink *s, int ms)
{
	struct timespec dl = ab_deadline(CLOCK_MONOTONIC, ms);
	pthread_cond_timedwait(&s->cv, &s->lock, &dl);
}

static void *drain_main(void *arg)
{
	struct ab_logsink *s = arg;
	struct rec *batch[BATCH];
	ab_log_mute_hook(true);
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->head && !s->stop) {
			s->waiting = true;
			pthread_cond_wait(&s->cv, &s->lock);
			s->waiting = false;
		}
		if (!s->head || (s->stop && ab_now_ms() >= s->stop_deadline))
			break;
		size_t k = 0;
		for (struct rec *r = s->head; r && k < BATCH; r = r->next)
			batch[k++] = r;
		pthread_mutex_unlock(&s->lock);

		size_t refused = 0;
		int done = ab_redis_is_up(s->redis) ? send_batch(s, batch, k, &refused)
						    : AB_EUNAVAIL;

		pthread_mutex_lock(&s->lock);
		if (done < 0) {
			if (s->stop)
				break; /* stopping: one try, no waiting on a dead redis */
			timed_wait(s, RETRY_MS);
			continue;
		}
		for (int i = 0; i < done; i++) {
			struct rec *r = s->head;
			s->head = r->next;
			if (!s->head)
				s->tail = NULL;
			s->n--;
			s->bytes -= r->size;
			ab_strlcpy(s->last_role, r->role, sizeof(s->last_role));
			free(r);
		}
		s->sent += (uint64_t)done - refused;
		s->dropped += refused;
		if (s->dropped > s->dropped_told) {
			uint64_t lost = s->dropped - s->dropped_told;
			s->dropped_told = s->dropped;
			push_locked(s, notice_rec(s->last_role, lost));
			pthread_mutex_unlock(&s->lock);
			/* stderr and the file only: this thread is muted */
			ab_log(AB_LOG_WARN,
			       "log stream: %llu lines were dropped (queue full or redis unavailable)",
			       (unsigned long long)lost);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int ab_logsink_start(const struct ab_logsink_opts *opts, struct ab_logsink **out)
{
	if (!opts || !opts->redis || opts->stream_max <= 0)
		return AB_EINVAL;
	struct ab_logsink *s = ab_xcalloc(1, sizeof(*s));
	s->redis = opts->redis;
	s->host = ab_xstrdup(opts->host && *opts->host ? opts->host : "-");
	snprintf(s->maxlen, sizeof(s->maxlen), "%lld", opts->stream_max);
	s->queue_max = opts->queue_max ? opts->queue_max : QUEUE_MAX_DEFAULT;
	s->queue_max_bytes = opts->queue_max_bytes ? opts->queue_max_bytes : QUEUE_BYTES_DEFAULT;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);

	pthread_mutex_lock(&active_lock);
	if (active) {
		pthread_mutex_unlock(&active_lock);
		s->stop = true;
		ab_logsink_stop(s, 0);
		return AB_EEXIST;
	}
	int e = pthread_create(&s->thread, NULL, drain_main, s);
	if (e != 0) {
		pthread_mutex_unlock(&active_lock);
		s->stop = true;
		ab_logsink_stop(s, 0);
		return -e;
	}
	active = s;
	pthread_mutex_unlock(&active_lock);
	ab_log_set_hook(on_line, s);
	*out = s;
	return 0;
}

void ab_logsink_stop(struct ab_logsink *s, int flush_ms)
{
	if (!s)
		return;
	pthread_mutex_lock(&active_lock);
	bool running = active == s;
	if (running)
		active = NULL;
	pthread_mutex_unlock(&active_lock);
	if (running) {
		ab_log_set_hook(NULL, NULL);
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		s->stop_deadline = ab_now_ms() + (flush_ms > 0 ? flush_ms : 0);
		pthread_mutex_unlock(&s->lock);
		pthread_cond_broadcast(&s->cv);
		pthread_join(s->thread, NULL);
	}
	while (s->head) {
		struct rec *r = s->head;
		s->head = r->next;
		free(r);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lock);
	free(s->host);
	free(s);
}

void ab_logsink_stats(struct ab_logsink *s, struct ab_logsink_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	st->accepted = s->accepted;
	st->sent = s->sent;
	st->dropped = s->dropped;
	st->pending = s->n;
	pthread_mutex_unlock(&s->lock);
}

void ab_logsink_metrics(struct ab_buf *out)
{
	struct ab_logsink_stats st;
	pthread_mutex_lock(&active_lock);
	bool have = active != NULL;
	if (have)
		ab_logsink_stats(active, &st);
	pthread_mutex_unlock(&active_lock);
	if (!have)
		return;
	ab_buf_printf(out,
		      "# HELP autobot_log_stream_sent_total log lines written to the ab:log stream\n"
		      "# TYPE autobot_log_stream_sent_total counter\n"
		      "autobot_log_stream_sent_total %llu\n"
		      "# HELP autobot_log_stream_dropped_total log lines lost on the way to ab:log "
		      "(queue full or refused)\n"
		      "# TYPE autobot_log_stream_dropped_total counter\n"
		      "autobot_log_stream_dropped_total %llu\n"
		      "# HELP autobot_log_stream_pending log lines waiting for redis\n"
		      "# TYPE autobot_log_stream_pending gauge\n"
		      "autobot_log_stream_pending %zu\n",
		      (unsigned long long)st.sent, (unsigned long long)st.dropped, st.pending);
}

/* ---- reading ---- */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *p into *v. */
static bool digits(const char **p, int n, int *v)
{
	int x = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*p += n;
	*v = x;
	return true;
}

/* ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:]MM]. */
static int parse_iso(const char *s, int64_t *out_ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
	const char *p = s;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return AB_EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
			return AB_EINVAL;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &sec))
				return AB_EINVAL;
			if (*p == '.' || *p == ',') {
				p++;
				int scale = 100, nd = 0;
				while (*p >= '0' && *p <= '9' && nd < 9) {
					ms += (*p - '0') * scale;
					scale /= 10;
					p++;
					nd++;
				}
				if (nd == 0)
					return AB_EINVAL;
			}
		}
	}
	int64_t off_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if (!digits(&p, 2, &oh))
			return AB_EINVAL;
		if (*p == ':')
			p++;
		if (*p && !digits(&p, 2, &om))
			return AB_EINVAL;
		if (oh > 23 || om > 59)
			return AB_EINVAL;
		off_min = sign * (oh * 60 + om);
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return AB_EINVAL;
	int64_t days = days_from_civil(y, mo, d);
	*out_ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - off_min * 60) * 1000 + ms;
	return 0;
}

int ab_logsink_since_parse(const char *s, int64_t now_ms, int64_t *out_ms)
{
	if (!s || !*s || strlen(s) > 64)
		return AB_EINVAL;
	size_t n = strlen(s);
	char unit = s[n - 1];
	int64_t mult = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000
		     : unit == 'd' ? 86400000 : 0;
	if (mult && n > 1 && strspn(s, "0123456789") == n - 1) {
		char num[32];
		if (n - 1 >= sizeof(num))
			return AB_EINVAL;
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		long long v;
		if (ab_parse_int(num, 0, 100LL * 365 * 86400, &v) < 0)
			return AB_EINVAL;
		int64_t back = (int64_t)v * mult;
		*out_ms = now_ms > back ? now_ms - back : 1;
		return 0;
	}
	return parse_iso(s, out_ms);
}

int ab_logsink_level_parse(const char *s, int *out)
{
	int lv = ab_log_level_parse(s);
	if (lv < 0 || lv == AB_LOG_OFF)
		return AB_EINVAL;
	*out = lv;
	return 0;
}

bool ab_logsink_id_valid(const char *s)
{
	if (!s)
		return false;
	size_t a = strspn(s, "0123456789");
	if (a == 0 || a > 20 || s[a] != '-')
		return false;
	size_t b = strspn(s + a + 1, "0123456789");
	return b > 0 && b <= 20 && s[a + 1 + b] == '\0';
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned int cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string of at most cap bytes of p: invalid UTF-8 and NULs become
 * '?', a cut never splits a character. */
static json_t *clean_str(const char *p, size_t n, size_t cap)
{
	struct ab_buf b = {0};
	ab_buf_reserve(&b, (n < cap ? n : cap) + 1);
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		size_t l = u[i] ? utf8_len(u + i, n - i) : 0;
		if (b.len + (l ? l : 1) > cap)
			break;
		if (l) {
			ab_buf_append(&b, u + i, l);
			i += l;
		} else {
			ab_buf_putc(&b, '?');
			i++;
		}
	}
	json_t *j = json_stringn(b.data ? b.data : "", b.len);
	ab_buf_free(&b);
	return j ? j : json_string("");
}

json_t *ab_logsink_entry_json(const redisReply *entry)
{
	if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2)
		return NULL;
	const redisReply *id = entry->element[0], *kv = entry->element[1];
	if (!id || id->type != REDIS_REPLY_STRING || id->len >= AB_LOGSINK_ID_MAX ||
	    !ab_logsink_id_valid(id->str))
		return NULL;
	if (!kv || kv->type != REDIS_REPLY_ARRAY || kv->elements % 2)
		return NULL;
	static const struct {
		const char *name;
		size_t cap;
	} fields[] = {{"ts", CAP_TS},     {"level", CAP_LEVEL}, {"role", CAP_ROLE},
		      {"host", CAP_HOST}, {"msg", CAP_MSG},     {"rid", CAP_RID}};
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(id->str));
	for (size_t i = 0; i + 1 < kv->elements; i += 2) {
		const redisReply *k = kv->element[i], *v = kv->element[i + 1];
		if (!k || !v || k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		for (size_t f = 0; f < AB_ARRAY_LEN(fields); f++)
			if (k->len == strlen(fields[f].name) &&
			    !memcmp(k->str, fields[f].name, k->len) &&
			    !json_object_get(o, fields[f].name))
				json_object_set_new(o, fields[f].name,
						    clean_str(v->str, v->len, fields[f].cap));
	}
	for (size_t f = 0; f < AB_ARRAY_LEN(fields) - 1; f++)
		if (!json_object_get(o, fields[f].name))
			json_object_set_new(o, fields[f].name, json_string(""));
	return o;
}

/* Wall ms of an entry: its ts, else the time in its id. */
static int64_t entry_ms(const json_t *e)
{
	int64_t ms = 0;
	const char *ts = json_string_value(json_object_get(e, "ts"));
	if (ts && parse_iso(ts, &ms) == 0)
		return ms;
	const char *id = json_string_value(json_object_get(e, "id"));
	return id ? strtoll(id, NULL, 10) : 0;
}

bool ab_logsink_match(const json_t *e, const struct ab_logsink_filter *f)
{
	if (!f)
		return true;
	const char *role = json_string_value(json_object_get(e, "role"));
	const char *host = json_string_value(json_object_get(e, "host"));
	const char *level = json_string_value(json_object_get(e, "level"));
	if (f->role && *f->role && (!role || strcmp(role, f->role) != 0))
		return false;
	if (f->host && *f->host && (!host || strcmp(host, f->host) != 0))
		return false;
	if (f->min_level > AB_LOG_DEBUG) {
		int lv = ab_log_level_parse(level);
		if (lv >= 0 && lv < f->min_level)
			return false;
	}
	if (f->since_ms > 0 && entry_ms(e) < f->since_ms)
		return false;
	return true;
}

/* Appends s with control characters made visible and harmless. */
static void put_printable(struct ab_buf *out, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n')
			ab_buf_puts(out, "\\n");
		else if (c == '\t')
			ab_buf_putc(out, ' ');
		else if (c < 0x20 || c == 0x7f)
			ab_buf_putc(out, '?');
		else
			ab_buf_putc(out, (char)c);
	}
}

void ab_logsink_format(const json_t *e, struct ab_buf *out)
{
	const char *rid = json_string_value(json_object_get(e, "rid"));
	put_printable(out, json_string_value(json_object_get(e, "ts")));
	const char *level = json_string_value(json_object_get(e, "level"));
	ab_buf_putc(out, ' ');
	put_printable(out, level);
	for (size_t n = level ? strlen(level) : 0; n < 5; n++)
		ab_buf_putc(out, ' ');
	ab_buf_putc(out, ' ');
	put_printable(out, json_string_value(json_object_get(e, "role")));
	ab_buf_putc(out, '@');
	put_printable(out, json_string_value(json_object_get(e, "host")));
	ab_buf_putc(out, ' ');
	put_printable(out, json_string_value(json_object_get(e, "msg")));
	if (rid && *rid) {
		ab_buf_puts(out, " rid=");
		put_printable(out, rid);
	}
}

/* Goes through an array of entries: cursor follows every entry, matches
 * are appended to arr. Returns the number of entries, or AB_EPROTO. */
static int take_entries(const redisReply *list, const struct ab_logsink_filter *f,
			char cursor[AB_LOGSINK_ID_MAX], json_t *arr)
{
	if (list->type != REDIS_REPLY_ARRAY)
		return AB_EPROTO;
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *ent = list->element[i];
		if (ent && ent->type == REDIS_REPLY_ARRAY && ent->elements == 2 &&
		    ent->element[0]->type == REDIS_REPLY_STRING &&
		    ent->element[0]->len < AB_LOGSINK_ID_MAX &&
		    ab_logsink_id_valid(ent->element[0]->str))
			ab_strlcpy(cursor, ent->element[0]->str, AB_LOGSINK_ID_MAX);
		json_t *e = ab_logsink_entry_json(ent);
		if (e && ab_logsink_match(e, f))
			json_array_append_new(arr, e);
		else
			json_decref(e);
	}
	return (int)list->elements;
}

/* An XREAD reply: nil (timed out) or [[key, [entries]]]. */
static int take_xread(const redisReply *rep, const struct ab_logsink_filter *f,
		      char cursor[AB_LOGSINK_ID_MAX], json_t *arr)
{
	if (rep->type == REDIS_REPLY_NIL)
		return 0;
	if (rep->type != REDIS_REPLY_ARRAY)
		return AB_EPROTO;
	int total = 0;
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *kv = rep->element[i];
		if (!kv || kv->type != REDIS_REPLY_ARRAY || kv->elements != 2)
			return AB_EPROTO;
		int n = take_entries(kv->element[1], f, cursor, arr);
		if (n < 0)
			return n;
		total += n;
	}
	return total;
}

static int reply_code(const redisReply *rep, int err)
{
	if (!rep)
		return err ? err : AB_EPROTO;
	if (rep->type == REDIS_REPLY_ERROR)
		return AB_EREDIS;
	return 0;
}

int ab_logsink_tail(struct ab_redis *r, const struct ab_logsink_filter *f, size_t n,
		    size_t max_scan, json_t *arr, char top[AB_LOGSINK_ID_MAX])
{
	enum { PAGE = 500 };
	char end[AB_LOGSINK_ID_MAX + 1] = "+", start[32] = "-", count[16];
	int page = max_scan && max_scan < PAGE ? (int)max_scan : PAGE;
	snprintf(count, sizeof(count), "%d", page);
	if (f && f->since_ms > 0)
		snprintf(start, sizeof(start), "%lld", (long long)f->since_ms);
	ab_strlcpy(top, "0-0", AB_LOGSINK_ID_MAX);
	json_t *found = json_array(); /* newest first */
	size_t scanned = 0;
	bool first = true;
	int rc = 0;
	while (json_array_size(found) < n && (!max_scan || scanned < max_scan)) {
		const char *argv[] = {"XREVRANGE", AB_KEY_LOG, end, start, "COUNT", count};
		int err = 0;
		redisReply *rep = ab_redis_cmdargv(r, &err, 6, argv, NULL);
		rc = reply_code(rep, err);
		if (rc == 0 && rep->type != REDIS_REPLY_ARRAY)
			rc = AB_EPROTO;
		if (rc < 0) {
			if (rep)
				freeReplyObject(rep);
			goto out;
		}
		char last[AB_LOGSINK_ID_MAX] = "";
		json_t *got_arr = json_array();
		take_entries(rep, f, last, got_arr);
		size_t got = rep->elements;
		if (first && got && rep->element[0]->type == REDIS_REPLY_ARRAY &&
		    rep->element[0]->elements == 2 &&
		    rep->element[0]->element[0]->type == REDIS_REPLY_STRING &&
		    ab_logsink_id_valid(rep->element[0]->element[0]->str))
			ab_strlcpy(top, rep->element[0]->element[0]->str, AB_LOGSINK_ID_MAX);
		first = false;
		freeReplyObject(rep);
		for (size_t i = 0; i < json_array_size(got_arr) && json_array_size(found) < n; i++)
			json_array_append(found, json_array_get(got_arr, i));
		json_decref(got_arr);
		scanned += got;
		if (got < (size_t)page || !last[0])
			break;
		snprintf(end, sizeof(end), "(%s", last);
	}
	if (!strcmp(top, "0-0") && strcmp(start, "-") != 0) {
		/* nothing since then: the end of the stream is still where to
		 * follow from */
		const char *argv[] = {"XREVRANGE", AB_KEY_LOG, "+", "-", "COUNT", "1"};
		int err = 0;
		redisReply *rep = ab_redis_cmdargv(r, &err, 6, argv, NULL);
		rc = reply_code(rep, err);
		if (rc == 0 && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
			char last[AB_LOGSINK_ID_MAX] = "";
			json_t *none = json_array();
			take_entries(rep, NULL, last, none);
			json_decref(none);
			if (last[0])
				ab_strlcpy(top, last, AB_LOGSINK_ID_MAX);
		}
		if (rep)
			freeReplyObject(rep);
		if (rc < 0)
			goto out;
	}
	for (size_t i = json_array_size(found); i > 0; i--)
		json_array_append(arr, json_array_get(found, i - 1));
out:
	json_decref(found);
	return rc;
}

/* The argv of the read after cursor; count and block are formatted into
 * the caller's buffers. */
static int next_argv(const char **argv, int block_ms, size_t count,
		     const char cursor[AB_LOGSINK_ID_MAX], char *cbuf, size_t cblen, char *bbuf,
		     size_t bblen, char *from, size_t fromlen)
{
	snprintf(cbuf, cblen, "%zu", count ? count : 100);
	if (block_ms > 0) {
		snprintf(bbuf, bblen, "%d", block_ms);
		const char *a[] = {"XREAD", "COUNT", cbuf, "BLOCK", bbuf, "STREAMS", AB_KEY_LOG,
				   cursor};
		memcpy(argv, a, sizeof(a));
		return 8;
	}
	snprintf(from, fromlen, "(%s", cursor);
	const char *a[] = {"XRANGE", AB_KEY_LOG, from, "+", "COUNT", cbuf};
	memcpy(argv, a, sizeof(a));
	return 6;
}

int ab_logsink_next(struct ab_redis *r, const struct ab_logsink_filter *f, int block_ms,
		    size_t count, char cursor[AB_LOGSINK_ID_MAX], json_t *arr)
{
	if (!ab_logsink_id_valid(cursor))
		return AB_EINVAL;
	const char *argv[8];
	char cbuf[24], bbuf[24], from[AB_LOGSINK_ID_MAX + 1];
	int argc = next_argv(argv, block_ms, count, cursor, cbuf, sizeof(cbuf), bbuf,
			     sizeof(bbuf), from, sizeof(from));
	int err = 0;
	redisReply *rep = ab_redis_cmdargv(r, &err, argc, argv, NULL);
	int rc = reply_code(rep, err);
	if (rc == 0)
		rc = block_ms > 0 ? take_xread(rep, f, cursor, arr) : take_entries(rep, f, cursor, arr);
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int ab_logsink_next_ctx(redisContext *c, const struct ab_logsink_filter *f, int block_ms,
			size_t count, char cursor[AB_LOGSINK_ID_MAX], json_t *arr)
{
	if (!ab_logsink_id_valid(cursor))
		return AB_EINVAL;
	const char *argv[8];
	char cbuf[24], bbuf[24], from[AB_LOGSINK_ID_MAX + 1];
	int argc = next_argv(argv, block_ms, count, cursor, cbuf, sizeof(cbuf), bbuf,
			     sizeof(bbuf), from, sizeof(from));
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	int rc = reply_code(rep, rep ? 0 : AB_EUNAVAIL);
	if (rc == 0)
		rc = block_ms > 0 ? take_xread(rep, f, cursor, arr) : take_entries(rep, f, cursor, arr);
	if (rep)
		freeReplyObject(rep);
	return rc;
}
