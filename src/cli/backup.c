/*
 * backup.c - `autobot backup create|list|verify|restore`: the cluster's
 * state in one file that a person can read with `tar --zstd -xf`, check,
 * and load back (DESIGN section 9).
 *
 * What an archive holds (autobot-<cluster>-<UTC time>.tar.zst, members in
 * this order, all mode 0600):
 *   manifest.json           format, versions, key counts, every member's
 *                           size and sha256 (archive.h)
 *   redis/dump.rdb          the snapshot of Redis database 0 and the rest
 *   config/config.json      the effective config, secrets "[redacted]"
 *   config/<file>, secrets/<name>  the YAML file and the state dir's secret
 *                           files, only with --include-secrets
 *   kb/index.json, kb/<id>/<filename>
 *                           the knowledge base's documents as uploaded
 *   logs/<host>/<name>.log  <state_dir>/logs here, <remote_state_dir>/logs
 *                           of the other hosts over SSH
 *
 * The snapshot. It is taken over the network with the replication
 * protocol (rdbsync.c), so it is one consistent point in time and needs
 * only the Redis password. Everything else that comes from Redis (the key
 * counts of the manifest, the knowledge-base files) is read from a scratch
 * redis-server started here on a free 127.0.0.1 port with autobot.so and
 * the snapshot, never from the live server: counting on the live server
 * would race with writes between the count and the snapshot, while the
 * scratch server holds exactly what the archive holds. Keys with a TTL
 * (the service registry, ab:svc:*) are counted apart as "volatile": they
 * may expire between a backup and its verification, so only the counts of
 * persistent keys must match exactly.
 *
 * The archive is staged: the members are written to a hidden folder next
 * to it (.autobot-backup-<pid>-XXXXXX), hashed, described in the
 * manifest, and then streamed into "<name>.partial", which is renamed to
 * its name only when complete, so a reader never sees half an archive.
 * A create that was killed leaves its staging folder; the next create
 * removes those whose process is gone.
 *
 * Verify reads the whole archive once: the manifest first, then every
 * member against its size and sha256, in order, with nothing missing or
 * extra, up to a proper end (archive.c refuses truncation, links, unsafe
 * names); then it loads the snapshot into a scratch server and compares
 * the key counts with the manifest.
 *
 * Restore, and how it keeps writers out. It first runs verify and keeps
 * the scratch server, so a damaged archive is refused before anything is
 * touched. Then it connects to the cluster's Redis (services.redis), and:
 *  - if live services are registered there (ab:svc:*: the coordinator
 *    writes chat sessions and indexing results, every role heartbeats) it
 *    refuses unless --live is given: stop them first (Ctrl-C `autobot up`,
 *    or stop the systemd units);
 *  - when that Redis is the managed one of this state dir and is not
 *    running (`autobot up` stopped), it starts it itself from the
 *    state dir's redis.conf for the duration of the restore and shuts it
 *    down cleanly afterwards (so the AOF holds the restored data), which
 *    is the no-writer-at-all path;
 *  - it probes, before any change, that the target accepts one key of
 *    every type in the snapshot (RESTORE into a throw-away key, then DEL):
 *    a Redis without autobot.so, too old for the snapshot's RDB version,
 *    or a read-only replica is refused here;
 *  - the swap is one MULTI/EXEC transaction: FLUSHDB, then RESTORE with
 *    the absolute expiry for every key DUMPed from the scratch server
 *    (the registry excepted: it describes the processes of the cluster the
 *    backup came from). Redis runs a transaction as one unit, so no client
 *    ever sees a half-restored database, and with --live the running
 *    services see the old data, then the new. A command refused while
 *    queueing (e.g. over maxmemory) DISCARDs the whole transaction:
 *    nothing changes. The target needs memory for the queued payloads
 *    during the swap, about twice the data set.
 * Finally it counts the keys of the target and compares them with the
 * manifest (without the registry and the log stream ab:log, which running
 * roles write on their own). Only database 0, the one AutoBot uses, is
 * restored.
 */
#include "cli.h"

#include "archive.h"
#include "keys.h"
#include "log.h"
#include "rdbsync.h"
#include "registry.h"
#include "secrets.h"
#include "sha256.h"
#include "ssh.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#define RDB_MEMBER    "redis/dump.rdb"
#define SCAN_COUNT    "1000"
#define RESTORE_BATCH 256
#define MAX_TYPES     32
#define MAX_LOG_FILES 1000

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: autobot backup create [--out DIR] [--keep N] [--include-secrets]\n"
	    "       autobot backup list [--out DIR] [--json]\n"
	    "       autobot backup verify ARCHIVE\n"
	    "       autobot backup restore ARCHIVE [--yes] [--live]\n"
	    "\n"
	    "create  snapshots Redis over the network (replication protocol), and writes it\n"
	    "        with the config (secrets removed unless --include-secrets), the knowledge\n"
	    "        base's source files and the logs of every host into\n"
	    "        DIR/autobot-<cluster>-<UTC time>.tar.zst with a manifest of checksums.\n"
	    "        DIR defaults to <state_dir>/backups; --keep N deletes this cluster's\n"
	    "        oldest archives beyond the N newest.\n"
	    "list    the archives in DIR with their manifests.\n"
	    "verify  checks every checksum and loads the snapshot into a scratch redis-server\n"
	    "        (autobot.so loaded) to compare the key counts with the manifest.\n"
	    "restore verifies, then replaces Redis database 0 with the snapshot in one\n"
	    "        transaction and checks the counts. It refuses while services are\n"
	    "        registered (stop `autobot up` first; then it starts the managed redis\n"
	    "        itself) unless --live; --yes skips the confirmation.\n"
	    "\noptions:\n%s"
	    "  -h, --help         this text\n",
	    ab_cli_common_help);
}

/* ---- small helpers ------------------------------------------------------ */

struct prog {
	bool tty;
	int64_t last_ms;
};

static struct prog prog;

/* A progress line on a terminal (stderr), at most 10 per second. */
static void show(bool force, const char *fmt, ...) AB_PRINTF(2, 3);

static void show(bool force, const char *fmt, ...)
{
	if (!prog.tty)
		return;
	int64_t now = ab_now_ms();
	if (!force && now - prog.last_ms < 100)
		return;
	prog.last_ms = now;
	char line[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
}

static void show_end(void)
{
	if (prog.tty) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
	}
}

static void human(uint64_t n, char *out, size_t len)
{
	if (n < 10240)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else if (n < 10ull << 20)
		snprintf(out, len, "%.1f KiB", (double)n / 1024.0);
	else if (n < 10ull << 30)
		snprintf(out, len, "%.1f MiB", (double)n / 1048576.0);
	else
		snprintf(out, len, "%.2f GiB", (double)n / 1073741824.0);
}

static void sha_hex(const uint8_t d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Writes n bytes to a new file path (mode 0600); sha256 of them into hex. */
static int write_file(const char *path, const void *p, size_t n, char hex[65])
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	int rc = ab_write_full(fd, p, n);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (hex)
		ab_sha256_hex(p, n, hex);
	return rc;
}

/* Copies at most max bytes of src to dst (new, 0600); *size and the
 * sha256 of what was copied are returned. */
static int copy_file(const char *src, const char *dst, uint64_t max, uint64_t *size, char hex[65])
{
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return -errno;
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		int e = -errno;
		close(in);
		return e;
	}
	struct ab_sha256 sh;
	ab_sha256_init(&sh);
	char *buf = ab_xmalloc(1 << 16);
	uint64_t done = 0;
	int rc = 0;
	while (done < max) {
		size_t want = max - done < (1 << 16) ? (size_t)(max - done) : (1 << 16);
		ssize_t k = read(in, buf, want);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			break;
		}
		if (k == 0)
			break;
		rc = ab_write_full(out, buf, (size_t)k);
		if (rc < 0)
			break;
		ab_sha256_update(&sh, buf, (size_t)k);
		done += (uint64_t)k;
	}
	free(buf);
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	uint8_t d[32];
	ab_sha256_final(&sh, d);
	sha_hex(d, hex);
	*size = done;
	return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* best effort: go on with the rest */
}

/* Removes a folder this process made, with everything in it. */
static void rm_tree(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int port = -1;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

/* Is addr an address of this machine (loopback, or one it can bind)? */
static bool addr_is_local(const char *host)
{
	if (!strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1"))
		return true;
	struct sockaddr_storage ss;
	socklen_t len;
	if (ab_sockaddr_parse(host, 0, &ss, &len) < 0)
		return false;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
	close(fd);
	return ok;
}

/* ---- talking to Redis (hiredis, one connection) ------------------------- */

static redisContext *rconnect(const char *host, int port, const char *password, int timeout_ms,
                              char *err, size_t errlen)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		snprintf(err, errlen, "cannot connect to redis at %s:%d: %s", host, port,
		         c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	struct timeval cmd = {300, 0}; /* an EXEC of a big restore takes a while */
	redisSetTimeout(c, cmd);
	if (password && password[0]) {
		const char *argv[] = {"AUTH", password};
		redisReply *r = redisCommandArgv(c, 2, argv, NULL);
		bool ok = r && r->type != REDIS_REPLY_ERROR;
		if (!ok)
			snprintf(err, errlen, "redis at %s:%d refused the password: %s", host, port,
			         r ? r->str : c->errstr);
		freeReplyObject(r);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/* A command with printf-free arguments; NULL with err set on failure or
 * an error reply. */
static redisReply *rcmd(redisContext *c, char *err, size_t errlen, int argc, const char **argv,
                        const size_t *lens)
{
	redisReply *r = redisCommandArgv(c, argc, argv, lens);
	if (!r) {
		snprintf(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "connection lost");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "redis: %s: %.300s", argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* Value of "field:" in an INFO reply, into out. */
static void info_field(const char *info, const char *field, char *out, size_t len)
{
	out[0] = '\0';
	size_t fl = strlen(field);
	for (const char *p = info; p && *p;) {
		if (!strncmp(p, field, fl) && p[fl] == ':') {
			const char *v = p + fl + 1;
			size_t n = strcspn(v, "\r\n");
			if (n >= len)
				n = len - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

/* ---- key counts --------------------------------------------------------- */

/* The prefixes counted apart, most specific first (keys.h, registry.h). */
static const char *const prefixes[] = {
    AB_KEY_KB_DOC_PREFIX,
    AB_KEY_KB_CHUNKS_PREFIX,
    AB_KEY_KB_SRC_PREFIX,
    AB_KEY_KB_HASH_PREFIX,
    "ab:kb:",
    AB_KEY_CHAT_PREFIX,
    AB_KEY_CHATS,
    AB_KEY_JOB_PREFIX,
    AB_KEY_JOBS_PREFIX,
    AB_KEY_TOKEN_PREFIX,
    AB_KEY_TOKEN_NAMES,
    "ab:user:",
    AB_KEY_SVC_PREFIX,
    AB_KEY_LOG,
    "ab:",
};

static const char *prefix_of(const char *key, size_t len)
{
	for (size_t i = 0; i < AB_ARRAY_LEN(prefixes); i++) {
		size_t pl = strlen(prefixes[i]);
		if (len >= pl && !memcmp(key, prefixes[i], pl))
			return prefixes[i];
	}
	return "other";
}

struct sample {
	char type[40];
	char *key;
	size_t len;
};

struct counts {
	json_t *persistent;    /* prefix -> keys without a TTL */
	json_t *volatile_keys; /* prefix -> keys with one */
	long long total;
	struct sample samples[MAX_TYPES]; /* one key of each type */
	size_t n_samples;
};

static void counts_clear(struct counts *k)
{
	json_decref(k->persistent);
	json_decref(k->volatile_keys);
	for (size_t i = 0; i < k->n_samples; i++)
		free(k->samples[i].key);
	memset(k, 0, sizeof(*k));
}

static void bump(json_t *obj, const char *prefix)
{
	json_t *v = json_object_get(obj, prefix);
	json_object_set_new(obj, prefix, json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* Whether r is a SCAN reply: [cursor, [keys...]]. */
static bool scan_reply_ok(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY)
		return false;
	for (size_t i = 0; i < r->element[1]->elements; i++)
		if (r->element[1]->element[i]->type != REDIS_REPLY_STRING)
			return false;
	return true;
}

/* Counts the keys of database 0 of c by prefix, reading each key's TTL
 * and type in pipelined batches. with_samples keeps one key per type. */
static int count_keys(redisContext *c, struct counts *k, bool with_samples, char *err,
                      size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->persistent = json_object();
	k->volatile_keys = json_object();
	char cursor[32] = "0";
	do {
		const char *argv[] = {"SCAN", cursor, "COUNT", SCAN_COUNT};
		redisReply *r = rcmd(c, err, errlen, 4, argv, NULL);
		if (!r)
			return AB_EREDIS;
		if (!scan_reply_ok(r)) {
			snprintf(err, errlen, "redis: unexpected SCAN reply");
			freeReplyObject(r);
			return AB_EPROTO;
		}
		ab_strlcpy(cursor, r->element[0]->str, sizeof(cursor));
		redisReply *keys = r->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			const char *a1[] = {"PTTL", keys->element[i]->str};
			const char *a2[] = {"TYPE", keys->element[i]->str};
			size_t l[] = {4, keys->element[i]->len};
			redisAppendCommandArgv(c, 2, a1, l);
			redisAppendCommandArgv(c, 2, a2, l);
		}
		int rc = 0;
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *ttl = NULL, *type = NULL;
			if (redisGetReply(c, (void **)&ttl) != REDIS_OK ||
			    redisGetReply(c, (void **)&type) != REDIS_OK) {
				snprintf(err, errlen, "redis: %s", c->errstr);
				freeReplyObject(ttl);
				rc = AB_ECLOSED;
				break;
			}
			const redisReply *key = keys->element[i];
			if (ttl->type == REDIS_REPLY_INTEGER && ttl->integer != -2) {
				const char *p = prefix_of(key->str, key->len);
				bump(ttl->integer >= 0 ? k->volatile_keys : k->persistent, p);
				k->total++;
				if (with_samples && type->type == REDIS_REPLY_STATUS) {
					bool seen = false;
					for (size_t s = 0; s < k->n_samples && !seen; s++)
						seen = !strcmp(k->samples[s].type, type->str);
					if (!seen && k->n_samples < MAX_TYPES) {
						struct sample *s = &k->samples[k->n_samples++];
						ab_strlcpy(s->type, type->str, sizeof(s->type));
						s->key = ab_xmalloc(key->len + 1);
						memcpy(s->key, key->str, key->len + 1);
						s->len = key->len;
					}
				}
			}
			freeReplyObject(ttl);
			freeReplyObject(type);
		}
		freeReplyObject(r);
		if (rc < 0)
			return rc;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static json_t *counts_json(const struct counts *k)
{
	long long vol = 0;
	const char *key;
	json_t *v;
	json_object_foreach(k->volatile_keys, key, v) vol += json_integer_value(v);
	return json_pack("{s:I, s:O, s:I, s:O}", "total", (json_int_t)k->total, "persistent",
	                 k->persistent, "volatile", (json_int_t)vol, "volatile_by_prefix",
	                 k->volatile_keys);
}

/* What running roles write on their own: the registry, the log stream. */
static bool skipped(const char *prefix, bool live)
{
	return live && (!strcmp(prefix, AB_KEY_SVC_PREFIX) || !strcmp(prefix, AB_KEY_LOG));
}

/* Compares persistent counts of have with the manifest's want (a keys
 * object). live leaves out skipped() prefixes and the volatile keys;
 * otherwise volatile keys may only have become fewer. Writes the
 * differences into diff; returns true when they agree. */
static bool counts_match(const json_t *want, const struct counts *have, bool live, char *diff,
                         size_t difflen)
{
	json_t *wp = json_object_get(want, "persistent");
	size_t o = 0;
	diff[0] = '\0';
	bool ok = json_is_object(wp);
	const char *key;
	json_t *v;
	json_object_foreach(wp, key, v)
	{
		if (skipped(key, live))
			continue;
		json_int_t h = json_integer_value(json_object_get(have->persistent, key));
		if (h != json_integer_value(v)) {
			ok = false;
			if (o < difflen)
				o += (size_t)snprintf(diff + o, difflen - o,
				                      " %s %lld (expected %lld)", key, (long long)h,
				                      (long long)json_integer_value(v));
		}
	}
	json_object_foreach(have->persistent, key, v)
	{
		if (skipped(key, live) || json_object_get(wp, key))
			continue;
		ok = false;
		if (o < difflen)
			o += (size_t)snprintf(diff + o, difflen - o, " %s %lld (expected 0)", key,
			                      (long long)json_integer_value(v));
	}
	if (!live) {
		long long vol = 0;
		json_object_foreach(have->volatile_keys, key, v) vol += json_integer_value(v);
		if (vol > json_integer_value(json_object_get(want, "volatile"))) {
			ok = false;
			if (o < difflen)
				snprintf(diff + o, difflen - o,
				         " %lld keys with a TTL (expected at most "
				         "%lld)",
				         vol,
				         (long long)json_integer_value(
				             json_object_get(want, "volatile")));
		}
	}
	return ok;
}

/* ---- the scratch redis-server ------------------------------------------- */

struct scratch {
	pid_t pid;
	int port;
	char password[33];
	char log[PATH_MAX];
	redisContext *c;
};

static void scratch_stop(struct scratch *s)
{
	if (s->c) {
		const char *argv[] = {"SHUTDOWN", "NOSAVE"};
		freeReplyObject(redisCommandArgv(s->c, 2, argv, NULL));
		redisFree(s->c);
		s->c = NULL;
	}
	if (s->pid > 0) {
		for (int i = 0; i < 100; i++) {
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
				s->pid = 0;
				return;
			}
			ab_sleep_ms(20);
		}
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

/* The last line of a redis log mentioning why it stopped, into out. */
static void log_reason(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strstr(line, "# ") || strstr(line, "Short read") || strstr(line, "Error") ||
		    strstr(line, "error") || strstr(line, "can't") ||
		    strstr(line, "Unrecoverable")) {
			const char *m = strstr(line, "# ");
			ab_strlcpy(out, m ? m + 2 : line, len);
		}
	}
	fclose(f);
}

/*
 * Starts redis-server on a free 127.0.0.1 port with a random password,
 * autobot.so, no persistence, loading dir/dbfile, and waits until the
 * data set is loaded. s->c is then a connection to it. Returns 0 or a
 * negative code with the reason in err (e.g. a corrupt RDB).
 */
static int scratch_start(const struct ab_config *cfg, const char *dir, const char *dbfile,
                         struct scratch *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	char module[PATH_MAX];
	if (ab_cli_module_path(cfg, module, sizeof(module)) < 0) {
		snprintf(err, errlen, "services.redis.module: cannot read %s", cfg->redis_module);
		return AB_ENOTFOUND;
	}
	/* without the module (services.redis.module: none, or not built) a
	 * snapshot with its types fails to load, with redis' own reason */
	const char *load = module[0] ? "--loadmodule" : NULL;
	ab_random_hex(s->password, 16);
	snprintf(s->log, sizeof(s->log), "%s/scratch-redis.log", dir);
	/* the password goes in a 0600 file, not on the command line (ps) */
	char conf[PATH_MAX];
	snprintf(conf, sizeof(conf), "%s/scratch-redis.conf", dir);
	char *line = ab_xasprintf("requirepass %s\n", s->password);
	int rc = write_file(conf, line, strlen(line), NULL);
	free(line);
	if (rc < 0) {
		snprintf(err, errlen, "cannot write %s: %s", conf, ab_strerror(rc));
		return rc;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		s->port = free_port();
		if (s->port <= 0) {
			snprintf(err, errlen, "no free port on 127.0.0.1");
			return AB_EUNAVAIL;
		}
		char ports[16];
		snprintf(ports, sizeof(ports), "%d", s->port);
		unlink(s->log);
		s->pid = fork();
		if (s->pid < 0) {
			int e = -errno;
			snprintf(err, errlen, "fork: %s", ab_strerror(e));
			return e;
		}
		if (s->pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			int fd = open("/dev/null", O_RDWR);
			if (fd >= 0) {
				dup2(fd, 0);
				dup2(fd, 1);
				dup2(fd, 2);
			}
			/* load == NULL ends the list before the module */
			execlp("redis-server", "redis-server", conf, "--port", ports, "--bind",
			       "127.0.0.1", "--protected-mode", "yes", "--dir", dir, "--dbfilename",
			       dbfile, "--save", "", "--appendonly", "no", "--logfile", s->log,
			       "--daemonize", "no", load, module, (char *)NULL);
			_exit(127);
		}
		for (int64_t t0 = ab_now_ms();;) {
			int st;
			if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
				s->pid = 0;
				char why[300];
				log_reason(s->log, why, sizeof(why));
				if (strstr(why, "in use"))
					break; /* lost the port race: another one */
				if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
					snprintf(err, errlen, "redis-server is not installed");
				else
					snprintf(err, errlen, "the snapshot does not load: %s%s",
					         why[0] ? why : "redis-server exited",
					         module[0] ? "" : " (autobot.so was not found)");
				return AB_EPROTO;
			}
			char cerr[200];
			s->c = rconnect("127.0.0.1", s->port, s->password, 500, cerr, sizeof(cerr));
			if (s->c) {
				redisReply *r = redisCommand(s->c, "PING");
				bool up = r && r->type == REDIS_REPLY_STATUS;
				freeReplyObject(r);
				if (up)
					return 0;
				redisFree(s->c);
				s->c = NULL;
			}
			show(false, "loading the snapshot into a scratch redis-server (%.0f s)",
			     (double)(ab_now_ms() - t0) / 1000.0);
			ab_sleep_ms(50);
		}
	}
	snprintf(err, errlen, "the scratch redis-server could not get a port");
	return AB_EUNAVAIL;
}

/* ---- archive names, the state dir's folders ----------------------------- */

/* The cluster name as it may appear in a file name. */
static void safe_cluster(const struct ab_config *cfg, char *out, size_t len)
{
	const char *n = cfg->cluster_name && cfg->cluster_name[0] ? cfg->cluster_name : "autobot";
	size_t o = 0;
	for (size_t i = 0; n[i] && o + 1 < len && o < 64; i++) {
		char ch = n[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
		out[o++] = ok ? ch : '_';
	}
	out[o] = '\0';
}

/* Whether name is "autobot-<cluster>-YYYYMMDDTHHMMSSZ.tar.zst" for this
 * cluster (cluster NULL: any). */
static bool archive_name(const char *name, const char *cluster)
{
	size_t n = strlen(name);
	const char *ext = ".tar.zst";
	if (n < 8 + 17 + 8 || strncmp(name, "autobot-", 8) != 0 || strcmp(name + n - 8, ext) != 0)
		return false;
	const char *ts = name + n - 8 - 16;
	for (int i = 0; i < 16; i++) {
		bool want_digit = i != 8 && i != 15;
		char ch = ts[i];
		if (want_digit ? (ch < '0' || ch > '9') : (ch != (i == 8 ? 'T' : 'Z')))
			return false;
	}
	if (ts[-1] != '-')
		return false;
	if (!cluster)
		return true;
	size_t cl = strlen(cluster);
	return (size_t)(ts - 1 - (name + 8)) == cl && !strncmp(name + 8, cluster, cl);
}

static char *default_out(const struct ab_config *cfg)
{
	return ab_xasprintf("%s/backups", cfg->state_dir);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Archive file names in dir (cluster NULL: all clusters), sorted oldest
 * first. Caller frees each and the array. */
static char **list_archives(const char *dir, const char *cluster, size_t *n)
{
	*n = 0;
	char **v = NULL;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!archive_name(e->d_name, cluster))
			continue;
		v = ab_xrealloc(v, (*n + 1) * sizeof(char *));
		v[(*n)++] = ab_xstrdup(e->d_name);
	}
	if (d)
		closedir(d);
	if (*n)
		qsort(v, *n, sizeof(char *), cmp_str);
	return v;
}

/* Removes staging folders and partial archives of creates, and the
 * folders of verifies, whose process is gone (killed half-way). */
static void clean_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		long pid = 0;
		bool staging = !strncmp(e->d_name, ".autobot-backup-", 16);
		bool partial = !strncmp(e->d_name, ".autobot-partial-", 17);
		bool verify = !strncmp(e->d_name, "autobot-verify-", 15);
		if (!staging && !partial && !verify)
			continue;
		pid = strtol(e->d_name + (partial ? 17 : staging ? 16 : 15), NULL, 10);
		staging = staging || verify;
		if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)) {
			char *p = ab_xasprintf("%s/%s", dir, e->d_name);
			if (staging)
				rm_tree(p);
			else
				unlink(p);
			free(p);
		}
	}
	if (d)
		closedir(d);
}

/* ---- create ------------------------------------------------------------- */

struct member {
	char *name; /* in the archive */
	char *path; /* staged file */
	uint64_t size;
	char sha[65];
};

struct create {
	const struct ab_config *cfg;
	char *staging;
	struct member *m;
	size_t n, cap;
	json_t *logs; /* [{host, files, error?}] */
};

static void add_member(struct create *cr, const char *name, const char *path, uint64_t size,
                       const char *sha)
{
	if (cr->n == cr->cap) {
		cr->cap = cr->cap ? 2 * cr->cap : 32;
		cr->m = ab_xrealloc(cr->m, cr->cap * sizeof(*cr->m));
	}
	struct member *m = &cr->m[cr->n++];
	m->name = ab_xstrdup(name);
	m->path = ab_xstrdup(path);
	m->size = size;
	ab_strlcpy(m->sha, sha, sizeof(m->sha));
}

/* Stages n bytes as member name (its folders made under staging). */
static int stage_bytes(struct create *cr, const char *name, const void *p, size_t n, char *err,
                       size_t errlen)
{
	char *path = ab_xasprintf("%s/%s", cr->staging, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	int rc = ab_mkdir_p(path, 0700);
	*slash = '/';
	char sha[65];
	if (rc == 0)
		rc = write_file(path, p, n, sha);
	if (rc == 0)
		add_member(cr, name, path, n, sha);
	else
		snprintf(err, errlen, "cannot write %s: %s", path, ab_strerror(rc));
	free(path);
	return rc;
}

static void snapshot_progress(void *ud, uint64_t done, uint64_t total)
{
	(void)ud;
	char a[32], b[32];
	human(done, a, sizeof(a));
	human(total, b, sizeof(b));
	show(done == total, "snapshot: %s of %s (%.0f%%)", a, b,
	     total ? 100.0 * (double)done / (double)total : 100.0);
}

/* A document id safe as a folder name. */
static bool doc_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* The last path component of a document's filename, made safe. */
static void safe_filename(const char *in, char *out, size_t len)
{
	const char *base = in ? in : "";
	for (const char *p = base; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	size_t o = 0;
	for (size_t i = 0; base[i] && o + 1 < len && o < 200; i++) {
		unsigned char c = (unsigned char)base[i];
		out[o++] = (c < 0x20 || c == 0x7f) ? '_' : (char)c;
	}
	out[o] = '\0';
	if (!strcmp(out, ".") || !strcmp(out, "..") || !out[0] || !strcmp(out, "index.json"))
		ab_strlcpy(out, "source", len);
}

/* The knowledge base's documents, read from the scratch server, as
 * kb/<id>/<filename> and kb/index.json. */
static int export_kb(struct create *cr, redisContext *c, json_t *kbinfo, char *err, size_t errlen)
{
	json_t *index = json_array();
	char cursor[32] = "0";
	int rc = 0;
	size_t docs = 0;
	uint64_t bytes = 0;
	do {
		const char *argv[] = {"SCAN",  cursor,    "MATCH", AB_KEY_KB_DOC_PREFIX "*",
		                      "COUNT", SCAN_COUNT};
		redisReply *r = rcmd(c, err, errlen, 6, argv, NULL);
		if (r && !scan_reply_ok(r)) {
			snprintf(err, errlen, "redis: unexpected SCAN reply");
			freeReplyObject(r);
			r = NULL;
		}
		if (!r) {
			rc = AB_EREDIS;
			break;
		}
		ab_strlcpy(cursor, r->element[0]->str, sizeof(cursor));
		redisReply *keys = r->element[1];
		for (size_t i = 0; rc == 0 && i < keys->elements; i++) {
			const char *key = keys->element[i]->str;
			size_t klen = keys->element[i]->len, pl = strlen(AB_KEY_KB_DOC_PREFIX);
			const char *id = key + pl;
			if (klen <= pl || !doc_id_ok(id, klen - pl))
				continue;
			const char *ha[] = {"HGETALL", key};
			redisReply *h = rcmd(c, err, errlen, 2, ha, NULL);
			if (!h) {
				rc = AB_EREDIS;
				break;
			}
			json_t *meta = json_object();
			for (size_t f = 0; h->type == REDIS_REPLY_ARRAY && f + 1 < h->elements;
			     f += 2) {
				const redisReply *k = h->element[f], *val = h->element[f + 1];
				if (k->type != REDIS_REPLY_STRING ||
				    val->type != REDIS_REPLY_STRING)
					continue;
				json_t *js = json_stringn(val->str, val->len); /* NULL: not UTF-8 */
				json_object_set_new(meta, k->str, js ? js : json_null());
			}
			freeReplyObject(h);
			char *skey = ab_xasprintf(AB_KEY_KB_SRC_PREFIX "%s", id);
			const char *ga[] = {"GET", skey};
			redisReply *src = rcmd(c, err, errlen, 2, ga, NULL);
			free(skey);
			if (!src) {
				json_decref(meta);
				rc = AB_EREDIS;
				break;
			}
			if (src->type == REDIS_REPLY_STRING) {
				char fname[256];
				safe_filename(json_string_value(json_object_get(meta, "filename")),
				              fname, sizeof(fname));
				char *name = ab_xasprintf("kb/%s/%s", id, fname);
				if (!ab_archive_name_ok(name)) {
					free(name);
					name = ab_xasprintf("kb/%s/source", id);
				}
				rc = stage_bytes(cr, name, src->str, src->len, err, errlen);
				json_object_set_new(meta, "archive_path", json_string(name));
				free(name);
				bytes += src->len;
			}
			freeReplyObject(src);
			json_array_append_new(index, meta);
			docs++;
			show(false, "knowledge base: %zu documents", docs);
		}
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	if (rc == 0) {
		/* jansson checks UTF-8 at dump time: metadata is, sources may not be */
		char *js = json_dumps(index, JSON_INDENT(1) | JSON_ENSURE_ASCII);
		if (!js)
			js = ab_xstrdup("[]");
		rc = stage_bytes(cr, "kb/index.json", js, strlen(js), err, errlen);
		free(js);
	}
	json_object_set_new(kbinfo, "documents", json_integer((json_int_t)docs));
	json_object_set_new(kbinfo, "source_bytes", json_integer((json_int_t)bytes));
	json_decref(index);
	return rc;
}

/* Copies the *.log files of dir (regular files only) into staging under
 * logs/<host>/. Returns how many, or a negative code. */
static int stage_local_logs(struct create *cr, const char *dir, const char *host)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int n = 0, rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < MAX_LOG_FILES) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".log") != 0 || e->d_name[0] == '.')
			continue;
		char *src = ab_xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(src, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(src);
			continue;
		}
		char *name = ab_xasprintf("logs/%s/%s", host, e->d_name);
		char *dst = ab_xasprintf("%s/%s", cr->staging, name);
		char *folder = ab_xasprintf("%s/logs/%s", cr->staging, host);
		uint64_t size = 0;
		char sha[65];
		rc = ab_mkdir_p(folder, 0700);
		if (rc == 0 && ab_archive_name_ok(name))
			rc = copy_file(src, dst, (uint64_t)st.st_size, &size, sha);
		if (rc == 0 && ab_archive_name_ok(name)) {
			add_member(cr, name, dst, size, sha);
			n++;
		}
		free(src);
		free(name);
		free(dst);
		free(folder);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc < 0 ? rc : n;
}

/* The logs of one other host, over SSH: lists <remote_state_dir>/logs/
 * *.log and fetches each. Returns how many, or a negative code with the
 * reason in err. */
static int stage_remote_logs(struct create *cr, const char *host_name, char *err, size_t errlen)
{
	struct ab_ssh_target t;
	char tbuf[4096];
	int rc = ab_ssh_target_for(cr->cfg, host_name, &t, tbuf, sizeof(tbuf));
	if (rc < 0) {
		snprintf(err, errlen, "no ssh target: %s", ab_strerror(rc));
		return rc;
	}
	char *dir = ab_xasprintf("%s/logs", cr->cfg->deploy.remote_state_dir);
	const char *argv[] = {"find", dir, "-maxdepth", "1", "-type", "f", "-name", "*.log", NULL};
	struct ab_buf out = {0}, eb = {0};
	rc = ab_ssh_run(&t, argv, NULL, 0, &out, &eb, 30000);
	int n = 0;
	if (rc != 0) {
		if (eb.data && strstr(eb.data, "No such file"))
			rc = 0; /* no logs folder there: nothing to fetch */
		else
			snprintf(err, errlen, "ssh %s: %s", t.host,
			         rc > 0 ? (eb.data && eb.len ? eb.data : "failed")
			                : ab_strerror(rc));
		if (rc != 0)
			rc = rc > 0 ? AB_EUNAVAIL : rc;
	}
	char *folder = ab_xasprintf("%s/logs/%s", cr->staging, host_name);
	for (char *line = out.data, *next; rc == 0 && line && *line && n < MAX_LOG_FILES;
	     line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		const char *base = strrchr(line, '/');
		base = base ? base + 1 : line;
		char *name = ab_xasprintf("logs/%s/%s", host_name, base);
		if (strncmp(line, dir, strlen(dir)) != 0 || !ab_archive_name_ok(name)) {
			free(name);
			continue;
		}
		char *dst = ab_xasprintf("%s/%s", cr->staging, name);
		rc = ab_mkdir_p(folder, 0700);
		if (rc == 0)
			rc = ab_ssh_fetch(&t, line, dst, 300000);
		if (rc != 0) {
			snprintf(err, errlen, "fetching %s from %s: %s", line, t.host,
			         rc > 0 ? "scp failed" : ab_strerror(rc));
			rc = rc > 0 ? AB_EUNAVAIL : rc;
		} else {
			/* hash what arrived */
			uint64_t size = 0;
			char sha[65];
			char *tmp = ab_xasprintf("%s.hash", dst);
			rc = copy_file(dst, tmp, AB_ARCHIVE_MAX_SIZE, &size, sha);
			if (rc == 0)
				rc = rename(tmp, dst) < 0 ? -errno : 0;
			unlink(tmp);
			free(tmp);
			if (rc == 0) {
				add_member(cr, name, dst, size, sha);
				n++;
			} else {
				snprintf(err, errlen, "%s: %s", dst, ab_strerror(rc));
			}
		}
		free(name);
		free(dst);
	}
	free(folder);
	free(dir);
	ab_buf_free(&out);
	ab_buf_free(&eb);
	return rc < 0 ? rc : n;
}

/* Whether a and b name the same folder (or the same path, when absent). */
static bool same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	if (!a || !b)
		return false;
	if (realpath(a, ra) && realpath(b, rb))
		return !strcmp(ra, rb);
	return !strcmp(a, b);
}

/*
 * The logs: this machine's <state_dir>/logs as logs/local/, then every
 * host of the config over SSH (<remote_state_dir>/logs, where `autobot
 * deploy` puts the roles' state). A host whose address is this machine is
 * skipped when its remote state dir is the local one (those files are
 * logs/local already); otherwise it is a deployed host like any other,
 * even on a loopback address. An unreachable host is a warning, not a
 * failure: a backup of the data must not depend on every host being up.
 */
static void stage_logs(struct create *cr)
{
	cr->logs = json_array();
	char *dir = ab_xasprintf("%s/logs", cr->cfg->state_dir);
	int n = stage_local_logs(cr, dir, "local");
	json_t *e = json_pack("{s:s, s:s}", "host", "local", "path", dir);
	if (n >= 0)
		json_object_set_new(e, "files", json_integer(n));
	else
		json_object_set_new(e, "error", json_string(ab_strerror(n)));
	json_array_append_new(cr->logs, e);
	free(dir);
	/* every other host of the config, once per address */
	for (size_t i = 0; i < cr->cfg->n_hosts; i++) {
		const struct ab_host_cfg *h = &cr->cfg->hosts[i];
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(cr->cfg->hosts[j].addr, h->addr);
		char probe[300];
		snprintf(probe, sizeof(probe), "logs/%s/x.log", h->name);
		if (dup || !ab_archive_name_ok(probe) ||
		    (addr_is_local(h->addr) &&
		     same_dir(cr->cfg->deploy.remote_state_dir, cr->cfg->state_dir)))
			continue;
		show(true, "logs: %s (%s) over ssh", h->name, h->addr);
		char err[512] = "";
		n = stage_remote_logs(cr, h->name, err, sizeof(err));
		e = json_pack("{s:s, s:s}", "host", h->name, "addr", h->addr);
		if (n >= 0) {
			json_object_set_new(e, "files", json_integer(n));
		} else {
			json_object_set_new(e, "error", json_string(err));
			show_end();
			fprintf(stderr, "autobot backup: warning: logs of %s not included: %s\n",
			        h->name, err);
		}
		json_array_append_new(cr->logs, e);
	}
}

static void add_progress(void *ud, uint64_t done)
{
	const uint64_t *base = ud;
	char a[32], b[32];
	human(base[0] + done, a, sizeof(a));
	human(base[1], b, sizeof(b));
	show(false, "writing the archive: %s of %s", a, b);
}

/* Writes manifest + members into fd. */
static int write_archive(struct create *cr, int fd, const char *manifest, int64_t mtime, char *err,
                         size_t errlen)
{
	struct ab_archive_writer *w = NULL;
	ab_archive_writer_new(fd, 3, 2, &w);
	int rc = ab_archive_add(w, AB_ARCHIVE_MANIFEST, manifest, strlen(manifest), 0600, mtime);
	uint64_t base[2] = {0, 0};
	for (size_t i = 0; i < cr->n; i++)
		base[1] += cr->m[i].size;
	for (size_t i = 0; rc == 0 && i < cr->n; i++) {
		char sha[65];
		rc = ab_archive_add_file(w, cr->m[i].name, cr->m[i].path, cr->m[i].size, 0600,
		                         mtime, sha, add_progress, base);
		if (rc == 0 && strcmp(sha, cr->m[i].sha) != 0) {
			snprintf(err, errlen, "%s changed while it was archived", cr->m[i].path);
			rc = AB_EINVAL;
		}
		base[0] += cr->m[i].size;
	}
	if (rc == 0)
		rc = ab_archive_finish(w);
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s", ab_archive_writer_error(w));
	ab_archive_writer_free(w);
	return rc;
}

/* "20250102T030405Z" for t. */
static void utc_stamp(time_t t, char *out, size_t len, bool iso)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y%m%dT%H%M%SZ", &tm);
}

static int prune(const char *out_dir, const char *cluster, long long keep)
{
	size_t n;
	char **v = list_archives(out_dir, cluster, &n);
	int removed = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + (size_t)keep < n) {
			char *p = ab_xasprintf("%s/%s", out_dir, v[i]);
			if (unlink(p) == 0) {
				printf("  pruned      %s\n", p);
				removed++;
			} else {
				fprintf(stderr, "autobot backup: cannot remove %s: %s\n", p,
				        strerror(errno));
			}
			free(p);
		}
		free(v[i]);
	}
	free(v);
	return removed;
}

static int cmd_create(struct ab_config *cfg, const char *out_opt, const char *keep_opt,
                      bool include_secrets)
{
	long long keep = 0;
	if (keep_opt && ab_cli_int("backup create", "--keep", keep_opt, 1, 100000, &keep) < 0)
		return AB_EXIT_USAGE;
	int64_t t0 = ab_now_ms();
	int status = 1;
	char err[1024] = "";
	struct create cr = {.cfg = cfg};
	struct scratch sc = {0};
	struct counts counts = {0};
	json_t *manifest = NULL, *kbinfo = json_object(), *versions = json_object();
	char *manifest_js = NULL, *partial = NULL, *final = NULL, *rdb_path = NULL;
	int fd = -1;
	char *out_dir = out_opt ? ab_xstrdup(out_opt) : default_out(cfg);

	struct ab_secrets sec;
	if (ab_secrets_load(cfg, 0, &sec, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot backup create: %s\n", err);
		goto out;
	}
	ab_secrets_apply(cfg, &sec);
	const struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];
	int rc = ab_mkdir_p(out_dir, 0700);
	if (rc < 0) {
		fprintf(stderr, "autobot backup create: cannot create %s: %s\n", out_dir,
		        ab_strerror(rc));
		goto out;
	}
	clean_stale(out_dir);
	char cluster[80];
	safe_cluster(cfg, cluster, sizeof(cluster));
	time_t now = time(NULL);
	char stamp[32], iso[32];
	for (int i = 0; i < 3; i++) { /* one archive per second: wait for a free name */
		now = time(NULL);
		utc_stamp(now, stamp, sizeof(stamp), false);
		free(final);
		final = ab_xasprintf("%s/autobot-%s-%s.tar.zst", out_dir, cluster, stamp);
		if (access(final, F_OK) != 0)
			break;
		ab_sleep_ms(1000 - (int)(ab_wall_ms() % 1000) + 5);
	}
	utc_stamp(now, iso, sizeof(iso), true);

	cr.staging = ab_xasprintf("%s/.autobot-backup-%ld-XXXXXX", out_dir, (long)getpid());
	if (!mkdtemp(cr.staging)) {
		fprintf(stderr, "autobot backup create: cannot create a folder in %s: %s\n",
		        out_dir, strerror(errno));
		cr.staging[0] = '\0';
		goto out;
	}

	/* 1. the snapshot, over the replication protocol */
	char *rdir = ab_xasprintf("%s/redis", cr.staging);
	mkdir(rdir, 0700);
	rdb_path = ab_xasprintf("%s/dump.rdb", rdir);
	free(rdir);
	char info_err[256];
	redisContext *live = rconnect(rs->host, rs->port, rs->password, cfg->redis_connect_ms,
	                              info_err, sizeof(info_err));
	if (live) {
		redisReply *r = redisCommand(live, "INFO server");
		if (r && r->type == REDIS_REPLY_STRING) {
			char v[64];
			info_field(r->str, "redis_version", v, sizeof(v));
			json_object_set_new(versions, "redis", json_string(v));
		}
		freeReplyObject(r);
		r = redisCommand(live, "MODULE LIST");
		for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
			redisReply *m = r->element[i];
			const char *name = NULL;
			long long ver = -1;
			for (size_t j = 0; m->type == REDIS_REPLY_ARRAY && j + 1 < m->elements;
			     j += 2) {
				const redisReply *k = m->element[j], *val = m->element[j + 1];
				if (k->type != REDIS_REPLY_STRING)
					continue;
				if (!strcmp(k->str, "name") && val->type == REDIS_REPLY_STRING)
					name = val->str;
				else if (!strcmp(k->str, "ver") && val->type == REDIS_REPLY_INTEGER)
					ver = val->integer;
			}
			if (name && !strcmp(name, "autobot"))
				json_object_set_new(versions, "module", json_integer(ver));
		}
		freeReplyObject(r);
		redisFree(live);
	} else {
		fprintf(stderr, "autobot backup create: %s\n", info_err);
		goto out;
	}
	fd = open(rdb_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "autobot backup create: %s: %s\n", rdb_path, strerror(errno));
		goto out;
	}
	struct ab_rdbsync_opts so = {.host = rs->host,
	                             .port = rs->port,
	                             .password = rs->password,
	                             .connect_timeout_ms = cfg->redis_connect_ms,
	                             .progress = snapshot_progress};
	struct ab_rdbsync_result sr;
	rc = ab_rdbsync_fetch(&so, fd, &sr, err, sizeof(err));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	fd = -1;
	show_end();
	if (rc < 0) {
		fprintf(stderr, "autobot backup create: %s\n", err[0] ? err : ab_strerror(rc));
		goto out;
	}
	json_object_set_new(versions, "rdb", json_integer(sr.rdb_version));
	add_member(&cr, RDB_MEMBER, rdb_path, sr.size, sr.sha256);
	char hb[32];
	human(sr.size, hb, sizeof(hb));
	printf("  snapshot    %s from %s:%d (RDB version %d)\n", hb, rs->host, rs->port,
	       sr.rdb_version);
	fflush(stdout);

	/* 2. exact counts and the knowledge base, from a scratch server */
	char *sdir = ab_xasprintf("%s/redis", cr.staging);
	rc = scratch_start(cfg, sdir, "dump.rdb", &sc, err, sizeof(err));
	free(sdir);
	show_end();
	if (rc < 0) {
		fprintf(stderr, "autobot backup create: %s\n", err);
		goto out;
	}
	rc = count_keys(sc.c, &counts, false, err, sizeof(err));
	if (rc == 0) {
		const char *va[] = {"VCARD", AB_KEY_KB_VEC};
		redisReply *r = redisCommandArgv(sc.c, 2, va, NULL);
		if (r && r->type == REDIS_REPLY_INTEGER)
			json_object_set_new(kbinfo, "vectors", json_integer(r->integer));
		freeReplyObject(r);
		const char *ta[] = {"AB.TEXTCARD", AB_KEY_KB_TEXT};
		r = redisCommandArgv(sc.c, 2, ta, NULL);
		if (r && r->type == REDIS_REPLY_INTEGER)
			json_object_set_new(kbinfo, "chunks", json_integer(r->integer));
		freeReplyObject(r);
		rc = export_kb(&cr, sc.c, kbinfo, err, sizeof(err));
	}
	scratch_stop(&sc);
	unlink(sc.log);
	show_end();
	if (rc < 0) {
		fprintf(stderr, "autobot backup create: %s\n", err);
		goto out;
	}
	printf("  keys        %lld (%lld knowledge-base documents)\n", counts.total,
	       (long long)json_integer_value(json_object_get(kbinfo, "documents")));

	/* 3. config and secrets */
	json_t *cj = ab_config_to_json(cfg, !include_secrets);
	char *cjs = json_dumps(cj, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(cj);
	rc = stage_bytes(&cr, "config/config.json", cjs, strlen(cjs), err, sizeof(err));
	free(cjs);
	if (rc == 0 && include_secrets && cfg->path) {
		const char *base = strrchr(cfg->path, '/');
		base = base ? base + 1 : cfg->path;
		char *name = ab_xasprintf("config/%s", base);
		char *dst = ab_xasprintf("%s/%s", cr.staging, name);
		uint64_t size;
		char sha[65];
		if (ab_archive_name_ok(name) && strcmp(name, "config/config.json") != 0 &&
		    copy_file(cfg->path, dst, 16u << 20, &size, sha) == 0)
			add_member(&cr, name, dst, size, sha);
		free(name);
		free(dst);
	}
	static const char *const secret_files[] = {"admin.token", "cluster.token",
	                                           "redis.password"};
	for (size_t i = 0; rc == 0 && include_secrets && i < AB_ARRAY_LEN(secret_files); i++) {
		char *src = ab_xasprintf("%s/%s", cfg->state_dir, secret_files[i]);
		char *name = ab_xasprintf("secrets/%s", secret_files[i]);
		char *dst = ab_xasprintf("%s/%s", cr.staging, name);
		char *folder = ab_xasprintf("%s/secrets", cr.staging);
		uint64_t size;
		char sha[65];
		ab_mkdir_p(folder, 0700);
		if (copy_file(src, dst, 4096, &size, sha) == 0)
			add_member(&cr, name, dst, size, sha);
		free(src);
		free(name);
		free(dst);
		free(folder);
	}
	if (rc < 0) {
		fprintf(stderr, "autobot backup create: %s\n", err);
		goto out;
	}

	/* 4. logs */
	stage_logs(&cr);
	show_end();

	/* 5. the manifest, then the archive */
	json_t *members = json_array();
	uint64_t total = 0;
	for (size_t i = 0; i < cr.n; i++) {
		json_array_append_new(members,
		                      json_pack("{s:s, s:I, s:s}", "name", cr.m[i].name, "size",
		                                (json_int_t)cr.m[i].size, "sha256", cr.m[i].sha));
		total += cr.m[i].size;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	json_object_set_new(versions, "autobot", json_string(AB_VERSION));
	manifest = json_pack(
	    "{s:s, s:i, s:s, s:s, s:I, s:s, s:O, s:{s:s, s:i}, s:o, s:O, s:b, "
	    "s:O, s:o}",
	    "format", AB_ARCHIVE_FORMAT, "format_version", AB_ARCHIVE_FORMAT_VERSION, "cluster",
	    cfg->cluster_name ? cfg->cluster_name : "", "created", iso, "created_ms",
	    (json_int_t)ab_wall_ms(), "host", host, "versions", versions, "redis", "host", rs->host,
	    "port", rs->port, "keys", counts_json(&counts), "kb", kbinfo, "include_secrets",
	    include_secrets, "logs", cr.logs, "members", members);
	manifest_js = manifest ? json_dumps(manifest, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;
	if (!manifest_js) {
		fprintf(stderr, "autobot backup create: cannot build the manifest\n");
		goto out;
	}
	partial = ab_xasprintf("%s/.autobot-partial-%ld.tar.zst", out_dir, (long)getpid());
	fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "autobot backup create: %s: %s\n", partial, strerror(errno));
		goto out;
	}
	err[0] = '\0';
	rc = write_archive(&cr, fd, manifest_js, (int64_t)now, err, sizeof(err));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	struct stat st;
	uint64_t archive_size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	close(fd);
	fd = -1;
	show_end();
	if (rc < 0) {
		fprintf(stderr, "autobot backup create: writing %s: %s\n", partial,
		        err[0] ? err : ab_strerror(rc));
		unlink(partial);
		goto out;
	}
	if (renameat2(AT_FDCWD, partial, AT_FDCWD, final, RENAME_NOREPLACE) < 0 &&
	    (errno != EINVAL || link(partial, final) < 0)) {
		fprintf(stderr, "autobot backup create: cannot name the archive %s: %s\n", final,
		        strerror(errno));
		unlink(partial);
		goto out;
	}
	unlink(partial); /* after link(); gone already after a rename */
	char ab[32], tb[32];
	human(archive_size, ab, sizeof(ab));
	human(total, tb, sizeof(tb));
	printf("  archive     %s\n  size        %s (%s in %zu members)\n  took        %.1f s\n",
	       final, ab, tb, cr.n + 1, (double)(ab_now_ms() - t0) / 1000.0);
	if (keep > 0)
		prune(out_dir, cluster, keep);
	status = 0;
out:
	if (fd >= 0)
		close(fd);
	scratch_stop(&sc);
	rm_tree(cr.staging);
	for (size_t i = 0; i < cr.n; i++) {
		free(cr.m[i].name);
		free(cr.m[i].path);
	}
	free(cr.m);
	free(cr.staging);
	json_decref(cr.logs);
	counts_clear(&counts);
	json_decref(manifest);
	json_decref(kbinfo);
	json_decref(versions);
	free(manifest_js);
	free(partial);
	free(final);
	free(rdb_path);
	free(out_dir);
	return status;
}

/* ---- reading archives --------------------------------------------------- */

/* Opens path and reads its manifest (the first member). Returns the
 * reader positioned after it, or NULL with the reason in err. */
static struct ab_archive_reader *open_archive(const char *path, int *fd, json_t **manifest,
                                              char *err, size_t errlen)
{
	*manifest = NULL;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	struct ab_archive_reader *r = ab_archive_reader_fd(*fd);
	struct ab_archive_entry e;
	int rc = ab_archive_next(r, &e);
	if (rc < 0) {
		snprintf(err, errlen, "%s", ab_archive_error(r));
	} else if (rc == 0 || strcmp(e.name, AB_ARCHIVE_MANIFEST) != 0) {
		snprintf(err, errlen, "the first member is not %s", AB_ARCHIVE_MANIFEST);
		rc = AB_EPROTO;
	} else if (e.size > AB_ARCHIVE_MAX_MANIFEST) {
		snprintf(err, errlen, "%s is too large", AB_ARCHIVE_MANIFEST);
		rc = AB_ETOOBIG;
	} else {
		char *buf = ab_xmalloc((size_t)e.size + 1);
		size_t got = 0;
		while (got < e.size) {
			ssize_t k = ab_archive_read(r, buf + got, (size_t)e.size - got);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		if (got != e.size) {
			snprintf(err, errlen, "%s", ab_archive_error(r));
			rc = AB_EPROTO;
		} else {
			*manifest = ab_archive_manifest_parse(buf, got, err, errlen);
			rc = *manifest ? 0 : AB_EPROTO;
		}
		free(buf);
	}
	if (rc < 0) {
		ab_archive_reader_free(r);
		close(*fd);
		*fd = -1;
		return NULL;
	}
	return r;
}

struct verified {
	json_t *manifest;
	char tmp[PATH_MAX]; /* holds dump.rdb while the scratch server runs */
	struct scratch sc;
	struct counts counts;
};

static void verified_clear(struct verified *v)
{
	scratch_stop(&v->sc);
	rm_tree(v->tmp);
	v->tmp[0] = '\0';
	counts_clear(&v->counts);
	json_decref(v->manifest);
	v->manifest = NULL;
}

/* Reads the whole archive, checking every member against the manifest,
 * then loads the snapshot into a scratch server (kept in v) and compares
 * the counts. Prints what it checked. Returns 0 or a negative code with
 * the reason in err. */
static int verify_archive(const struct ab_config *cfg, const char *path, struct verified *v,
                          bool with_samples, char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	int fd = -1, rc = 0;
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -ENOENT;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a file");
		return AB_EINVAL;
	}
	struct ab_archive_reader *r = open_archive(path, &fd, &v->manifest, err, errlen);
	if (!r)
		return AB_EPROTO;
	const char *tmpbase = getenv("TMPDIR");
	if (!tmpbase || !tmpbase[0])
		tmpbase = "/tmp";
	clean_stale(tmpbase); /* folders of verifies that were killed */
	snprintf(v->tmp, sizeof(v->tmp), "%s/autobot-verify-%ld-XXXXXX", tmpbase, (long)getpid());
	if (!mkdtemp(v->tmp)) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a temporary folder: %s", strerror(errno));
		v->tmp[0] = '\0';
		goto out;
	}
	json_t *members = json_object_get(v->manifest, "members");
	size_t n = json_array_size(members), i = 0;
	uint64_t total = (uint64_t)st.st_size;
	char *buf = ab_xmalloc(1 << 17);
	bool have_rdb = false;
	for (;; i++) {
		struct ab_archive_entry e;
		rc = ab_archive_next(r, &e);
		if (rc < 0) {
			snprintf(err, errlen, "%s", ab_archive_error(r));
			break;
		}
		if (rc == 0) {
			if (i < n) {
				snprintf(err, errlen,
				         "truncated: %zu of the manifest's %zu members are "
				         "missing",
				         n - i, n);
				rc = AB_EPROTO;
			}
			break;
		}
		json_t *want = json_array_get(members, i);
		const char *wname = json_string_value(json_object_get(want, "name"));
		if (!want || strcmp(wname, e.name) != 0 ||
		    (uint64_t)json_integer_value(json_object_get(want, "size")) != e.size) {
			snprintf(err, errlen,
			         "member %zu (%.200s, %llu bytes) is not the manifest's "
			         "(%.200s)",
			         i + 1, e.name, (unsigned long long)e.size, wname ? wname : "none");
			rc = AB_EPROTO;
			break;
		}
		int out = -1;
		if (!strcmp(e.name, RDB_MEMBER)) {
			char *p = ab_xasprintf("%s/dump.rdb", v->tmp);
			out = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			free(p);
			if (out < 0) {
				rc = -errno;
				snprintf(err, errlen, "cannot write the snapshot: %s",
				         strerror(errno));
				break;
			}
			have_rdb = true;
		}
		struct ab_sha256 sh;
		ab_sha256_init(&sh);
		ssize_t k;
		while ((k = ab_archive_read(r, buf, 1 << 17)) > 0) {
			ab_sha256_update(&sh, buf, (size_t)k);
			if (out >= 0 && (rc = ab_write_full(out, buf, (size_t)k)) < 0)
				break;
			char a[32], b[32];
			human(ab_archive_in_bytes(r), a, sizeof(a));
			human(total, b, sizeof(b));
			show(false, "checking %s of %s (member %zu of %zu)", a, b, i + 1, n);
		}
		if (out >= 0)
			close(out);
		if (k < 0 || rc < 0) {
			snprintf(err, errlen, "%s", k < 0 ? ab_archive_error(r) : ab_strerror(rc));
			rc = k < 0 ? (int)k : rc;
			break;
		}
		uint8_t d[32];
		char hex[65];
		ab_sha256_final(&sh, d);
		sha_hex(d, hex);
		if (strcmp(hex, json_string_value(json_object_get(want, "sha256"))) != 0) {
			snprintf(err, errlen,
			         "corrupt: the sha256 of %.300s does not match the manifest",
			         e.name);
			rc = AB_EPROTO;
			break;
		}
	}
	free(buf);
	show_end();
	if (rc < 0)
		goto out;
	if (!have_rdb) {
		snprintf(err, errlen, "the archive has no %s", RDB_MEMBER);
		rc = AB_EPROTO;
		goto out;
	}
	printf("  checksums   %zu members ok\n", n + 1);
	fflush(stdout);
	rc = scratch_start(cfg, v->tmp, "dump.rdb", &v->sc, err, errlen);
	show_end();
	if (rc == 0)
		rc = count_keys(v->sc.c, &v->counts, with_samples, err, errlen);
	if (rc == 0) {
		char diff[512];
		if (!counts_match(json_object_get(v->manifest, "keys"), &v->counts, false, diff,
		                  sizeof(diff))) {
			snprintf(err, errlen,
			         "the snapshot's key counts differ from the manifest:%s", diff);
			rc = AB_EPROTO;
		} else {
			printf("  snapshot    loads; %lld keys, counts match the manifest\n",
			       v->counts.total);
		}
	}
out:
	ab_archive_reader_free(r);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		verified_clear(v);
	return rc;
}

static int cmd_verify(const struct ab_config *cfg, const char *path)
{
	int64_t t0 = ab_now_ms();
	struct verified v;
	char err[1024] = "";
	printf("verifying %s\n", path);
	fflush(stdout);
	int rc = verify_archive(cfg, path, &v, false, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "autobot backup verify: %s: refused: %s\n", path, err);
		return 1;
	}
	printf("  ok          (%.1f s)\n", (double)(ab_now_ms() - t0) / 1000.0);
	verified_clear(&v);
	return 0;
}

/* ---- list --------------------------------------------------------------- */

static int cmd_list(const struct ab_config *cfg, const char *out_opt, bool as_json)
{
	char *dir = out_opt ? ab_xstrdup(out_opt) : default_out(cfg);
	size_t n;
	char **v = list_archives(dir, NULL, &n);
	json_t *arr = json_array();
	if (!as_json)
		printf("%-52s %10s  %-20s %8s %6s\n", "ARCHIVE", "SIZE", "CREATED", "KEYS", "DOCS");
	for (size_t i = n; i-- > 0;) { /* newest first */
		char *p = ab_xasprintf("%s/%s", dir, v[i]);
		struct stat st;
		uint64_t size = stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
		int fd;
		json_t *m = NULL;
		char err[512] = "";
		struct ab_archive_reader *r = open_archive(p, &fd, &m, err, sizeof(err));
		ab_archive_reader_free(r);
		if (r)
			close(fd);
		json_t *keys = json_object_get(m, "keys"), *kb = json_object_get(m, "kb");
		if (as_json) {
			json_t *e = json_pack("{s:s, s:I}", "path", p, "size", (json_int_t)size);
			if (m) {
				json_object_set(e, "created", json_object_get(m, "created"));
				json_object_set(e, "cluster", json_object_get(m, "cluster"));
				json_object_set(e, "keys", json_object_get(keys, "total"));
				json_object_set(e, "documents", json_object_get(kb, "documents"));
				json_object_set(e, "versions", json_object_get(m, "versions"));
			} else {
				json_object_set_new(e, "error", json_string(err));
			}
			json_array_append_new(arr, e);
		} else {
			char hs[32];
			human(size, hs, sizeof(hs));
			if (m)
				printf(
				    "%-52s %10s  %-20s %8lld %6lld\n", v[i], hs,
				    json_string_value(json_object_get(m, "created")),
				    (long long)json_integer_value(json_object_get(keys, "total")),
				    (long long)json_integer_value(
				        json_object_get(kb, "documents")));
			else
				printf("%-52s %10s  unreadable: %s\n", v[i], hs, err);
		}
		json_decref(m);
		free(p);
		free(v[i]);
	}
	free(v);
	if (as_json) {
		char *js = json_dumps(arr, JSON_INDENT(2));
		printf("%s\n", js);
		free(js);
	} else if (n == 0) {
		printf("(no archives in %s)\n", dir);
	}
	json_decref(arr);
	free(dir);
	return 0;
}

/* ---- restore ------------------------------------------------------------ */

/* Live services in the target's registry, as "role pid url" lines. */
static int live_services(redisContext *c, struct ab_buf *out)
{
	const char *argv[] = {"SMEMBERS", AB_KEY_SVC_INDEX};
	redisReply *r = redisCommandArgv(c, 2, argv, NULL);
	int n = 0;
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		const char *ga[] = {"GET", r->element[i]->str};
		redisReply *g = redisCommandArgv(c, 2, ga, NULL);
		if (g && g->type == REDIS_REPLY_STRING) {
			json_t *j = json_loadb(g->str, g->len, 0, NULL);
			const char *role = json_string_value(json_object_get(j, "role"));
			const char *url = json_string_value(json_object_get(j, "url"));
			ab_buf_printf(out, "    %s (pid %lld) %s\n", role ? role : "?",
			              (long long)json_integer_value(json_object_get(j, "pid")),
			              url ? url : "");
			json_decref(j);
			n++;
		}
		freeReplyObject(g);
	}
	freeReplyObject(r);
	return n;
}

/* Starts the state dir's managed redis-server from the redis.conf that
 * `autobot up` wrote, for an offline restore. */
static int start_managed(const struct ab_config *cfg, pid_t *pid, redisContext **c, char *err,
                         size_t errlen)
{
	const struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];
	char *conf = ab_xasprintf("%s/redis/redis.conf", cfg->state_dir);
	if (access(conf, R_OK) != 0) {
		snprintf(err, errlen,
		         "redis at %s:%d is not running and %s does not exist (run "
		         "`autobot up` once to create it)",
		         rs->host, rs->port, conf);
		free(conf);
		return AB_ENOTFOUND;
	}
	*pid = fork();
	if (*pid < 0) {
		int e = -errno;
		free(conf);
		snprintf(err, errlen, "fork: %s", ab_strerror(e));
		return e;
	}
	if (*pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
		}
		/* where the config (as given to this command) says it listens */
		char port[16];
		snprintf(port, sizeof(port), "%d", rs->port);
		execlp("redis-server", "redis-server", conf, "--port", port, "--bind", rs->host,
		       (char *)NULL);
		_exit(127);
	}
	free(conf);
	for (int64_t t0 = ab_now_ms(); ab_now_ms() - t0 < 600000;) {
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = 0;
			snprintf(err, errlen,
			         "the managed redis-server did not start (see its output "
			         "above)");
			return AB_EUNAVAIL;
		}
		char cerr[256];
		*c = rconnect(rs->host, rs->port, rs->password, 500, cerr, sizeof(cerr));
		if (*c) {
			redisReply *r = redisCommand(*c, "PING");
			bool up = r && r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
			if (up)
				return 0;
			redisFree(*c);
			*c = NULL;
		}
		show(false, "starting the managed redis-server (%.0f s)",
		     (double)(ab_now_ms() - t0) / 1000.0);
		ab_sleep_ms(50);
	}
	snprintf(err, errlen, "the managed redis-server did not become ready");
	return AB_ETIMEOUT;
}

/* Checks, before any change, that the target takes one key of each type
 * of the snapshot: RESTORE into a throw-away name, then DEL. */
static int probe_types(redisContext *src, redisContext *dst, const struct counts *k, char *err,
                       size_t errlen)
{
	char probe[64] = "ab:backup:probe:";
	ab_random_hex(probe + strlen(probe), 8);
	for (size_t i = 0; i < k->n_samples; i++) {
		const char *da[] = {"DUMP", k->samples[i].key};
		size_t dl[] = {4, k->samples[i].len};
		redisReply *d = rcmd(src, err, errlen, 2, da, dl);
		if (!d)
			return AB_EREDIS;
		if (d->type != REDIS_REPLY_STRING) { /* gone meanwhile: nothing to probe */
			freeReplyObject(d);
			continue;
		}
		const char *ra[] = {"RESTORE", probe, "0", d->str, "REPLACE"};
		size_t rl[] = {7, strlen(probe), 1, d->len, 7};
		redisReply *r = redisCommandArgv(dst, 5, ra, rl);
		freeReplyObject(d);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			static const char *const core[] = {"string", "list", "set",
			                                   "zset",   "hash", "stream"};
			bool module_type = true;
			for (size_t c = 0; c < AB_ARRAY_LEN(core); c++)
				module_type =
				    module_type && strcmp(k->samples[i].type, core[c]) != 0;
			snprintf(
			    err, errlen, "the target redis cannot take a key of type %s: %.300s%s",
			    k->samples[i].type, r ? r->str : dst->errstr,
			    module_type ? " (a type of autobot.so: is the module loaded there, "
			                  "and as new as the backup's?)"
			                : "");
			freeReplyObject(r);
			return AB_EREDIS;
		}
		freeReplyObject(r);
		const char *xa[] = {"DEL", probe};
		freeReplyObject(redisCommandArgv(dst, 2, xa, NULL));
	}
	return 0;
}

static bool confirm(const char *what)
{
	if (!isatty(0))
		return false;
	fprintf(stderr, "%s\ntype yes to go on: ", what);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return !strcmp(line, "yes\n");
}

/* Queues FLUSHDB and one RESTORE per key in a transaction on dst, then
 * EXECs it. *restored = keys restored. */
static int swap(redisContext *src, redisContext *dst, long long total, long long *restored,
                char *err, size_t errlen)
{
	*restored = 0;
	redisReply *r = rcmd(dst, err, errlen, 1, (const char *[]){"MULTI"}, NULL);
	if (!r)
		return AB_EREDIS;
	freeReplyObject(r);
	r = rcmd(dst, err, errlen, 1, (const char *[]){"FLUSHDB"}, NULL);
	int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : AB_EREDIS;
	freeReplyObject(r);
	long long queued = 0;
	char cursor[32] = "0";
	size_t svc_len = strlen(AB_KEY_SVC_PREFIX);
	int64_t now = ab_wall_ms();
	while (rc == 0) {
		const char *sa[] = {"SCAN", cursor, "COUNT", "256"};
		redisReply *s = rcmd(src, err, errlen, 4, sa, NULL);
		if (s && !scan_reply_ok(s)) {
			snprintf(err, errlen, "scratch redis: unexpected SCAN reply");
			freeReplyObject(s);
			s = NULL;
		}
		if (!s) {
			rc = AB_EREDIS;
			break;
		}
		ab_strlcpy(cursor, s->element[0]->str, sizeof(cursor));
		redisReply *keys = s->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			size_t l[] = {4, keys->element[i]->len};
			const char *a1[] = {"DUMP", keys->element[i]->str};
			redisAppendCommandArgv(src, 2, a1, l);
			size_t l2[] = {11, keys->element[i]->len};
			const char *a2[] = {"PEXPIRETIME", keys->element[i]->str};
			redisAppendCommandArgv(src, 2, a2, l2);
		}
		size_t sent = 0;
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *d = NULL, *t = NULL;
			if (redisGetReply(src, (void **)&d) != REDIS_OK ||
			    redisGetReply(src, (void **)&t) != REDIS_OK) {
				snprintf(err, errlen, "scratch redis: %s", src->errstr);
				freeReplyObject(d);
				rc = AB_ECLOSED;
				break;
			}
			const redisReply *key = keys->element[i];
			bool skip =
			    d->type != REDIS_REPLY_STRING || t->type != REDIS_REPLY_INTEGER ||
			    t->integer == -2 || (t->integer >= 0 && t->integer <= now) ||
			    (key->len >= svc_len && !memcmp(key->str, AB_KEY_SVC_PREFIX, svc_len));
			if (!skip) {
				char ttl[24];
				snprintf(ttl, sizeof(ttl), "%lld",
				         t->integer > 0 ? t->integer : 0LL);
				const char *ra[] = {"RESTORE", key->str,  ttl,
				                    d->str,    "REPLACE", "ABSTTL"};
				size_t rl[] = {7, key->len, strlen(ttl), d->len, 7, 6};
				redisAppendCommandArgv(dst, t->integer > 0 ? 6 : 5, ra, rl);
				sent++;
			}
			freeReplyObject(d);
			freeReplyObject(t);
		}
		for (size_t i = 0; rc == 0 && i < sent; i++) {
			redisReply *q = NULL;
			if (redisGetReply(dst, (void **)&q) != REDIS_OK) {
				snprintf(err, errlen, "target redis: %s", dst->errstr);
				rc = AB_ECLOSED;
			} else if (q->type != REDIS_REPLY_STATUS || strcmp(q->str, "QUEUED") != 0) {
				snprintf(
				    err, errlen, "the target refused a key while queueing: %.300s",
				    q->type == REDIS_REPLY_ERROR ? q->str : "unexpected reply");
				rc = AB_EREDIS;
				/* drain the replies of what was sent */
				for (size_t j = i + 1; j < sent; j++) {
					freeReplyObject(q);
					q = NULL;
					if (redisGetReply(dst, (void **)&q) != REDIS_OK)
						break;
				}
				i = sent;
			}
			freeReplyObject(q);
		}
		queued += (long long)sent;
		freeReplyObject(s);
		show(false, "restoring: %lld of %lld keys queued", queued, total);
		if (!strcmp(cursor, "0"))
			break;
	}
	if (rc < 0) {
		freeReplyObject(redisCommand(dst, "DISCARD"));
		return rc;
	}
	show(true, "restoring: applying %lld keys in one transaction", queued);
	r = redisCommand(dst, "EXEC");
	show_end();
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "EXEC failed: %.300s",
		         r && r->type == REDIS_REPLY_ERROR ? r->str : dst->errstr);
		freeReplyObject(r);
		return AB_EREDIS;
	}
	long long failed = 0;
	const char *first = NULL;
	for (size_t i = 1; i < r->elements; i++) {
		if (r->element[i]->type == REDIS_REPLY_ERROR) {
			if (!failed++)
				first = r->element[i]->str;
		} else {
			(*restored)++;
		}
	}
	if (failed) {
		snprintf(err, errlen,
		         "%lld keys could not be restored (first: %.200s); the database "
		         "now holds %lld keys of the backup",
		         failed, first, *restored);
		rc = AB_EREDIS;
	}
	freeReplyObject(r);
	return rc;
}

static int cmd_restore(struct ab_config *cfg, const char *path, bool yes, bool live)
{
	int64_t t0 = ab_now_ms();
	char err[1024] = "";
	struct verified v;
	redisContext *dst = NULL;
	pid_t managed = 0;
	int status = 1;
	struct counts after = {0};
	struct ab_buf svcs = {0};

	struct ab_secrets sec;
	if (ab_secrets_load(cfg, 0, &sec, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot backup restore: %s\n", err);
		return 1;
	}
	ab_secrets_apply(cfg, &sec);
	const struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];

	printf("verifying %s\n", path);
	fflush(stdout);
	if (verify_archive(cfg, path, &v, true, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot backup restore: %s: refused: %s; nothing was changed\n",
		        path, err);
		return 1;
	}
	dst = rconnect(rs->host, rs->port, rs->password, cfg->redis_connect_ms, err, sizeof(err));
	if (dst) {
		redisReply *p = redisCommand(dst, "PING");
		bool ok = p && p->type == REDIS_REPLY_STATUS;
		if (!ok)
			fprintf(stderr,
			        "autobot backup restore: redis at %s:%d: %s; nothing was "
			        "changed\n",
			        rs->host, rs->port, p ? p->str : dst->errstr);
		freeReplyObject(p);
		if (!ok)
			goto out;
	}
	if (!dst) {
		if (!rs->managed || !addr_is_local(rs->host)) {
			fprintf(stderr, "autobot backup restore: %s; nothing was changed\n", err);
			goto out;
		}
		printf("  redis       not running: starting the managed one of %s\n",
		       cfg->state_dir);
		fflush(stdout);
		if (start_managed(cfg, &managed, &dst, err, sizeof(err)) < 0) {
			show_end();
			fprintf(stderr, "autobot backup restore: %s; nothing was changed\n", err);
			goto out;
		}
		show_end();
	}
	int n_live = live_services(dst, &svcs);
	if (n_live > 0 && !live) {
		fprintf(stderr,
		        "autobot backup restore: services are running against redis at %s:%d and "
		        "write to it:\n%s"
		        "stop them first (Ctrl-C `autobot up`, or stop their systemd units) and "
		        "run the restore again, or pass --live to swap the data under them in one "
		        "transaction; nothing was changed\n",
		        rs->host, rs->port, svcs.data);
		goto out;
	}
	if (probe_types(v.sc.c, dst, &v.counts, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot backup restore: %s; nothing was changed\n", err);
		goto out;
	}
	if (!yes) {
		char q[512];
		snprintf(q, sizeof(q),
		         "this replaces every key of redis database 0 at %s:%d with the %lld keys "
		         "of %s.",
		         rs->host, rs->port, v.counts.total, path);
		if (!confirm(q)) {
			fprintf(stderr,
			        "autobot backup restore: not confirmed (pass --yes); nothing "
			        "was changed\n");
			goto out;
		}
	}
	long long restored = 0;
	if (swap(v.sc.c, dst, v.counts.total, &restored, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot backup restore: %s\n", err);
		goto out;
	}
	printf("  restored    %lld keys into %s:%d%s\n", restored, rs->host, rs->port,
	       n_live ? " (live)" : "");
	if (count_keys(dst, &after, false, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot backup restore: counting: %s\n", err);
		goto out;
	}
	char diff[512];
	if (!counts_match(json_object_get(v.manifest, "keys"), &after, true, diff, sizeof(diff))) {
		fprintf(stderr,
		        "autobot backup restore: the restored counts differ from the "
		        "manifest:%s\n",
		        diff);
		goto out;
	}
	printf("  counts      match the manifest\n");
	status = 0;
out:
	if (managed > 0) {
		/* persist (the AOF and an RDB) and stop, as `autobot up` would */
		if (dst) {
			freeReplyObject(redisCommand(dst, "SHUTDOWN"));
			redisFree(dst);
			dst = NULL;
		}
		int st;
		waitpid(managed, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "autobot backup restore: the managed redis-server did not "
			                "shut down cleanly\n");
			status = 1;
		} else {
			printf("  redis       saved and stopped; start `autobot up` again\n");
		}
	}
	redisFree(dst);
	counts_clear(&after);
	ab_buf_free(&svcs);
	verified_clear(&v);
	if (status == 0)
		printf("  ok          (%.1f s)\n", (double)(ab_now_ms() - t0) / 1000.0);
	return status;
}

/* ---- the command -------------------------------------------------------- */

int ab_cmd_backup(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		usage(sub ? stdout : stderr);
		return sub ? 0 : AB_EXIT_USAGE;
	}
	static const char *const subs[] = {"create", "list", "verify", "restore"};
	bool known = false;
	for (size_t i = 0; i < AB_ARRAY_LEN(subs); i++)
		known = known || !strcmp(sub, subs[i]);
	if (!known) {
		fprintf(stderr, "autobot backup: unknown subcommand %s\n", sub);
		usage(stderr);
		return AB_EXIT_USAGE;
	}
	struct ab_cli_common co = {0};
	const char *out = NULL, *keep = NULL;
	bool secrets = false, as_json = false, yes = false, live = false;
	const struct ab_cli_opt opts[] = {
	    {.name = "--out", .value = &out},
	    {.name = "--keep", .value = &keep},
	    {.name = "--include-secrets", .flag = &secrets},
	    {.name = "--json", .flag = &as_json},
	    {.name = "--yes", .flag = &yes},
	    {.name = "--live", .flag = &live},
	    {.name = NULL},
	};
	const char *pos[1];
	size_t n_pos = 0;
	char cmd[32];
	snprintf(cmd, sizeof(cmd), "backup %s", sub);
	int pr = ab_cli_parse(argc - 1, argv + 1, cmd, &co, opts, pos, 1, &n_pos, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	bool want_archive = !strcmp(sub, "verify") || !strcmp(sub, "restore");
	if (want_archive != (n_pos == 1)) {
		fprintf(stderr, "autobot %s: %s\n", cmd,
		        want_archive ? "which archive? (autobot backup list shows them)"
		                     : "takes no arguments");
		return AB_EXIT_USAGE;
	}
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	ab_log_init("backup", cfg->log_level > AB_LOG_WARN ? cfg->log_level : AB_LOG_WARN,
	            cfg->log_json);
	prog.tty = isatty(2);
	int status;
	if (!strcmp(sub, "create"))
		status = cmd_create(cfg, out, keep, secrets);
	else if (!strcmp(sub, "list"))
		status = cmd_list(cfg, out, as_json);
	else if (!strcmp(sub, "verify"))
		status = cmd_verify(cfg, pos[0]);
	else
		status = cmd_restore(cfg, pos[0], yes, live);
	ab_config_free(cfg);
	return status;
}
