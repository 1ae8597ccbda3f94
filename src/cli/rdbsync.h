/*
 * rdbsync.h - a point-in-time snapshot (an RDB file) of a running Redis,
 * taken over the network the way a new replica gets its first copy: no
 * shell or file access on the Redis host is needed, only its password.
 */
#ifndef AB_RDBSYNC_H
#define AB_RDBSYNC_H

#include "common.h"

struct ab_rdbsync_opts {
	const char *host; /* address or name */
	int port;
	const char *password;   /* NULL or "" = no AUTH */
	int connect_timeout_ms; /* default 3000 */
	int idle_timeout_ms;    /* longest silence while waiting; default 60000 */
	/* called as the payload arrives (total known from the first reply);
	 * may be NULL */
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	void *ud;
};

struct ab_rdbsync_result {
	uint64_t size;   /* bytes of the RDB written */
	char sha256[65]; /* of those bytes */
	int rdb_version; /* from the "REDIS0011" magic */
};

/*
 * Asks the server at o->host:o->port for a full resynchronisation and
 * writes the RDB payload to fd (borrowed, written from its offset). The
 * RDB is what the server's BGSAVE produced at the moment of the request.
 * Returns 0, or a negative code with a one-line reason in err: AB_EAUTH
 * (password refused), AB_EPROTO (the server answered something that is
 * not a replication stream, e.g. a replica that is itself not synced),
 * AB_ETIMEOUT, AB_ECLOSED (connection lost mid-transfer), -errno.
 */
int ab_rdbsync_fetch(const struct ab_rdbsync_opts *o, int fd, struct ab_rdbsync_result *res,
                     char *err, size_t errlen);

#endif
