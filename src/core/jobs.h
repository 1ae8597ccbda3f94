/*
 * jobs.h - the job bus of DESIGN section 6: background work through Redis
 * Streams. A job is submitted to a queue (stream ab:jobs:<queue>, one
 * consumer group named after the queue), its state lives in the hash
 * ab:job:<id>, and any process that runs workers on that queue takes it.
 *
 * Guarantees: a job is idempotent by id (submitting an id that exists is a
 * no-op); it runs at least once; a worker that dies mid-job (or loses
 * Redis) leaves the entry pending, and another worker (or the same one
 * when Redis comes back) takes it over once it has been idle for the
 * visibility timeout; after max_attempts deliveries it goes to the
 * dead-letter stream ab:jobs:<queue>:dead and its state to failed. So a
 * handler must be safe to run twice (the knowledge base's is: it replaces
 * what a previous attempt wrote).
 *
 * Job state (ab:job:<id>): id, type, queue, state (queued | running | done
 * | failed | cancelled), progress (0..1), message, attempts, created_ms,
 * updated_ms, result (JSON, when done), error (when failed), cancel ("1"
 * when asked to stop).
 */
#ifndef AB_JOBS_H
#define AB_JOBS_H

#include <stdbool.h>

#include <jansson.h>

#include "redis.h"

#define AB_JOB_ID_MAX 64

struct ab_job; /* what a handler is given; valid during the call only */

/* What a handler returns. Negative AB_E* codes mean "try again later". */
enum {
	AB_JOB_DONE = 0,
	AB_JOB_FAILED = 1,    /* permanent: do not retry (bad input) */
	AB_JOB_CANCELLED = 2, /* stopped because ab_job_cancelled() said so */
};

typedef int (*ab_job_handler)(struct ab_job *job, void *ctx);

const char *ab_job_id(const struct ab_job *job);
const char *ab_job_type(const struct ab_job *job);
const json_t *ab_job_payload(const struct ab_job *job); /* borrowed */
int ab_job_attempt(const struct ab_job *job);           /* 1 for the first */
struct ab_redis *ab_job_redis(const struct ab_job *job);
/* Records progress (fraction 0..1, a short message) and tells the bus the
 * job is alive, so that no other worker takes it over. */
void ab_job_progress(struct ab_job *job, double fraction, const char *fmt, ...) AB_PRINTF(3, 4);
/* True once someone asked to cancel the job (checked at most every
 * 200 ms against Redis). */
bool ab_job_cancelled(struct ab_job *job);
/* The result stored when the handler returns AB_JOB_DONE (reference
 * stolen), and the error message stored for any other return. */
void ab_job_set_result(struct ab_job *job, json_t *result);
void ab_job_set_error(struct ab_job *job, const char *fmt, ...) AB_PRINTF(2, 3);

/* Submits a job. id NULL makes a random one. The payload is copied (as
 * JSON text). id_out (AB_JOB_ID_MAX bytes) receives the id; *existed tells
 * whether that id was already known (then nothing was queued). */
int ab_jobs_submit(struct ab_redis *r, const char *queue, const char *type, const char *id,
		   const json_t *payload, char *id_out, bool *existed);
/* The job's state as a JSON object (caller decrefs), AB_ENOTFOUND, or a
 * Redis error code. */
int ab_jobs_get(struct ab_redis *r, const char *id, json_t **out);
/* Asks a job to stop: a queued job is cancelled at once, a running one at
 * its handler's next ab_job_cancelled(). AB_ENOTFOUND if unknown; 0 also
 * when it had already finished (nothing changes then). */
int ab_jobs_cancel(struct ab_redis *r, const char *id);

struct ab_jobs_opts {
	const char *queue;
	const char *consumer;  /* unique per process; NULL = <hostname>:<pid> */
	int workers;           /* threads; 0 = none */
	int visibility_ms;     /* idle time before a pending job is taken over */
	int max_attempts;      /* deliveries before the dead-letter stream */
};

struct ab_jobs; /* running workers */

/* Starts the workers on r (which must outlive them). The caller stops and
 * frees them with ab_jobs_stop (accepts NULL). */
int ab_jobs_start(struct ab_redis *r, const struct ab_jobs_opts *o, ab_job_handler fn, void *ctx,
		  struct ab_jobs **out);
void ab_jobs_stop(struct ab_jobs *j);

#endif
