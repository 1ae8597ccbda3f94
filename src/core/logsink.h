/*
 * logsink.h - the ab:log stream (DESIGN sections 4 and 9): every role's log
 * lines in one capped Redis stream, written without ever slowing a request,
 * and read back by `autobot logs` and GET /api/logs.
 *
 * Writing. ab_logsink_start() installs a log hook (log.h) that copies each
 * line into a bounded in-memory queue; a background thread drains the
 * queue with pipelined XADD ab:log MAXLEN ~ N. When the queue is full the
 * new line is dropped and counted; while Redis is down lines wait in the
 * queue (up to its bound) and go out when it is back. The sink never logs
 * about its own failures into itself; after a gap it writes one entry
 * saying how many lines were dropped.
 *
 * Each entry has the fields ts (ISO 8601 UTC, milliseconds), level, role,
 * host (the service's advertised address), msg (the message, secrets
 * already redacted) and rid (request id) when there is one.
 *
 * Reading. Entries are turned into JSON objects {id, ts, level, role,
 * host, msg, rid?} with every field length-capped and made valid UTF-8, so
 * nothing read from Redis is trusted; filters select by role, host,
 * minimum level and time.
 */
#ifndef AB_LOGSINK_H
#define AB_LOGSINK_H

#include "common.h"
#include "redis.h"

#include <jansson.h>

/* ---- writing ---- */

struct ab_logsink_opts {
	struct ab_redis *redis;  /* borrowed; must outlive the sink */
	const char *host;        /* the "host" field (copied) */
	long long stream_max;    /* MAXLEN ~ of ab:log; > 0 */
	size_t queue_max;        /* lines waiting at most; 0 = 16384 */
	size_t queue_max_bytes;  /* their bytes at most; 0 = 8 MiB */
};

struct ab_logsink_stats {
	uint64_t accepted;   /* lines taken into the queue */
	uint64_t sent;       /* entries Redis acknowledged */
	uint64_t dropped;    /* lines lost: queue full, or refused by Redis */
	size_t pending;      /* lines in the queue now */
};

struct ab_logsink;

/*
 * Starts the drain thread and installs the sink as the log hook (only one
 * sink per process). Returns 0 and *out, which the caller stops with
 * ab_logsink_stop(), or a negative code.
 */
int ab_logsink_start(const struct ab_logsink_opts *opts, struct ab_logsink **out);
/* Removes the hook, sends what is queued if Redis answers within
 * flush_ms, stops the thread and frees the sink. NULL ok. */
void ab_logsink_stop(struct ab_logsink *s, int flush_ms);
void ab_logsink_stats(struct ab_logsink *s, struct ab_logsink_stats *st);
/* Appends the running sink's counters as Prometheus text (nothing when
 * none runs in this process). */
void ab_logsink_metrics(struct ab_buf *out);

/* ---- reading ---- */

#define AB_LOGSINK_ID_MAX 48 /* "<ms>-<seq>" with room to spare */

struct ab_logsink_filter {
	const char *role;    /* NULL = any */
	const char *host;    /* NULL = any */
	int min_level;       /* AB_LOG_*; AB_LOG_DEBUG = any */
	int64_t since_ms;    /* wall ms; 0 = from the start */
};

/*
 * Parses a --since / ?since= value into wall-clock ms: a duration back
 * from now_ms ("90s", "10m", "2h", "7d") or an ISO 8601 time
 * ("2024-05-01T10:00", "2024-05-01 10:00:00.5", with "Z" or "+02:00"; no
 * zone means UTC) or a plain date. Returns 0 or AB_EINVAL.
 */
int ab_logsink_since_parse(const char *s, int64_t now_ms, int64_t *out_ms);
/* Parses --level / ?level= (a level name) into *out. 0 or AB_EINVAL. */
int ab_logsink_level_parse(const char *s, int *out);

/* One stream entry (an element of an XRANGE reply: [id, [field, value,
 * ...]]) as a new JSON object, or NULL when the entry is malformed. */
json_t *ab_logsink_entry_json(const redisReply *entry);
bool ab_logsink_match(const json_t *e, const struct ab_logsink_filter *f);
/* Appends e as one printable line (no newline): "TS LEVEL ROLE@HOST MSG
 * [rid=RID]", control characters replaced. */
void ab_logsink_format(const json_t *e, struct ab_buf *out);
/* True when s is a stream id "<ms>-<seq>" (both decimal, bounded). */
bool ab_logsink_id_valid(const char *s);

/*
 * The newest n entries matching f (n > 0), oldest first, appended to arr.
 * Scans back from the end of the stream at most max_scan entries (0 = no
 * limit beyond the stream's own cap) and never past f->since_ms. top gets
 * the id of the newest entry in the stream at the time ("0-0" when it was
 * empty), from where a follower goes on. Returns 0 or a negative code.
 */
int ab_logsink_tail(struct ab_redis *r, const struct ab_logsink_filter *f, size_t n,
		    size_t max_scan, json_t *arr, char top[AB_LOGSINK_ID_MAX]);

/*
 * The matching entries after cursor (exclusive), oldest first, at most
 * about count scanned: appended to arr; cursor advances past every entry
 * scanned, matching or not. block_ms > 0 waits that long for new entries
 * (XREAD BLOCK; the client's command timeout must be longer), 0 does not
 * wait (XRANGE). Returns the number of entries scanned, or a negative
 * code.
 */
int ab_logsink_next(struct ab_redis *r, const struct ab_logsink_filter *f, int block_ms,
		    size_t count, char cursor[AB_LOGSINK_ID_MAX], json_t *arr);

/* The same on a plain hiredis connection (for readers that keep their own
 * connection, such as the API's follow stream). */
int ab_logsink_next_ctx(redisContext *c, const struct ab_logsink_filter *f, int block_ms,
			size_t count, char cursor[AB_LOGSINK_ID_MAX], json_t *arr);

#endif
