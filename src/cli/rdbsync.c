/*
 * rdbsync.c - the snapshot client of `autobot backup create` (rdbsync.h).
 *
 * It speaks the first half of the Redis replication protocol, as
 * `redis-cli --rdb` does: AUTH, "REPLCONF rdb-only 1" (Redis 7: the
 * server forgets this replica once the file is sent; an older server
 * answers an error, which is ignored), then SYNC. The server forks, runs
 * a BGSAVE, and while it works writes a lone "\n" every second as a
 * keep-alive; then it sends the file as one RESP bulk header "$<len>\r\n"
 * followed by exactly len bytes (no trailing CRLF). The EOF-marker form
 * of diskless replication ("$EOF:<40 bytes>") is only used with replicas
 * that announce "capa eof"; this client does not, so the server always
 * sends the length first and a short transfer is detected as such. After
 * the payload the connection would carry the replication stream; it is
 * closed instead.
 *
 * The payload is checked for the RDB magic ("REDIS" and four digits) and
 * hashed as it is written; its internal CRC64 is left to the scratch
 * redis-server that loads it afterwards, which verifies it.
 */
#include "rdbsync.h"

#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINE_MAX_LEN 1024
#define RDB_MAX_SIZE (1ull << 40)

struct conn {
	int fd;
	int idle_ms;
	uint8_t buf[65536];
	size_t pos, len;
};

static int connect_to(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host, ports, &hints, &res);
	if (g != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
		return AB_EINVAL;
	}
	int rc = -ECONNREFUSED, fd = -1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			rc = 0;
		} else if (errno == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int n = poll(&p, 1, timeout_ms);
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (n == 0)
				rc = AB_ETIMEOUT;
			else if (n < 0)
				rc = -errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				rc = -errno;
			else
				rc = soerr ? -soerr : 0;
		} else {
			rc = -errno;
		}
		if (rc == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (rc < 0) {
		snprintf(err, errlen, "cannot connect to redis at %s:%d: %s", host, port,
		         ab_strerror(rc));
		return rc;
	}
	return fd;
}

/* Reads more bytes into c->buf (which must be empty). 0 or a negative
 * code (AB_ECLOSED at the end of the stream). */
static int more(struct conn *c)
{
	c->pos = c->len = 0;
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int n = poll(&p, 1, c->idle_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return AB_ETIMEOUT;
		ssize_t k = recv(c->fd, c->buf, sizeof(c->buf), 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return AB_ECLOSED;
		c->len = (size_t)k;
		return 0;
	}
}

/* One reply line without its CRLF into line (at most LINE_MAX_LEN bytes).
 * skip_nl drops the lone "\n" keep-alives a master sends before the
 * payload. */
static int read_line(struct conn *c, char *line, bool skip_nl)
{
	size_t n = 0;
	for (;;) {
		if (c->pos == c->len) {
			int rc = more(c);
			if (rc < 0)
				return rc;
		}
		char ch = (char)c->buf[c->pos++];
		if (ch == '\n' && n == 0 && skip_nl)
			continue;
		if (ch == '\n') {
			if (n == 0 || line[n - 1] != '\r')
				return AB_EPROTO;
			line[n - 1] = '\0';
			return 0;
		}
		if (n >= LINE_MAX_LEN - 1)
			return AB_EPROTO;
		line[n++] = ch;
	}
}

static int send_cmd(int fd, int argc, const char *const *argv)
{
	struct ab_buf b = {0};
	ab_buf_printf(&b, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		ab_buf_printf(&b, "$%zu\r\n", strlen(argv[i]));
		ab_buf_puts(&b, argv[i]);
		ab_buf_puts(&b, "\r\n");
	}
	int rc = 0;
	size_t off = 0;
	while (off < b.len) {
		ssize_t k = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (k < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 1000);
			continue;
		}
		if (k < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)k;
	}
	ab_buf_free(&b);
	return rc;
}

/* Copies the len-byte payload from c to out; checks the magic. */
static int payload(struct conn *c, uint64_t len, int out, const struct ab_rdbsync_opts *o,
                   struct ab_rdbsync_result *res, char *err, size_t errlen)
{
	struct ab_sha256 sh;
	ab_sha256_init(&sh);
	char magic[10] = {0};
	uint64_t done = 0;
	int64_t last = 0;
	while (done < len) {
		if (c->pos == c->len) {
			int rc = more(c);
			if (rc < 0) {
				snprintf(
				    err, errlen,
				    "the snapshot transfer stopped after %llu of %llu bytes: %s",
				    (unsigned long long)done, (unsigned long long)len,
				    ab_strerror(rc));
				return rc;
			}
		}
		size_t k = c->len - c->pos;
		if (k > len - done)
			k = (size_t)(len - done);
		const uint8_t *p = c->buf + c->pos;
		for (size_t i = 0; done + i < 9 && i < k; i++)
			magic[done + i] = (char)p[i];
		int rc = ab_write_full(out, p, k);
		if (rc < 0) {
			snprintf(err, errlen, "cannot write the snapshot: %s", ab_strerror(rc));
			return rc;
		}
		ab_sha256_update(&sh, p, k);
		c->pos += k;
		done += k;
		if (o->progress && (ab_now_ms() - last >= 100 || done == len)) {
			last = ab_now_ms();
			o->progress(o->ud, done, len);
		}
	}
	if (len < 9 || memcmp(magic, "REDIS", 5) != 0 || magic[5] < '0' || magic[5] > '9' ||
	    magic[6] < '0' || magic[6] > '9' || magic[7] < '0' || magic[7] > '9' ||
	    magic[8] < '0' || magic[8] > '9') {
		snprintf(err, errlen, "the server sent something that is not an RDB file");
		return AB_EPROTO;
	}
	res->rdb_version = atoi(magic + 5);
	res->size = len;
	uint8_t d[32];
	ab_sha256_final(&sh, d);
	for (int i = 0; i < 32; i++)
		snprintf(res->sha256 + 2 * i, 3, "%02x", d[i]);
	return 0;
}

int ab_rdbsync_fetch(const struct ab_rdbsync_opts *o, int fd, struct ab_rdbsync_result *res,
                     char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	if (errlen)
		err[0] = '\0';
	int cto = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 3000;
	struct conn *c = ab_xcalloc(1, sizeof(*c));
	c->idle_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 60000;
	c->fd = connect_to(o->host, o->port, cto, err, errlen);
	int rc = c->fd < 0 ? c->fd : 0;
	char line[LINE_MAX_LEN];
	if (rc == 0 && o->password && o->password[0]) {
		const char *argv[] = {"AUTH", o->password};
		rc = send_cmd(c->fd, 2, argv);
		if (rc == 0)
			rc = read_line(c, line, false);
		if (rc == 0 && line[0] == '-' && !strstr(line, "without any password configured")) {
			snprintf(err, errlen, "redis refused the password: %.200s", line + 1);
			rc = AB_EAUTH;
		}
	}
	if (rc == 0) {
		/* an error here means a server older than 7.0: go on */
		const char *argv[] = {"REPLCONF", "rdb-only", "1"};
		rc = send_cmd(c->fd, 3, argv);
		if (rc == 0)
			rc = read_line(c, line, false);
	}
	if (rc == 0) {
		const char *argv[] = {"SYNC"};
		rc = send_cmd(c->fd, 1, argv);
		if (rc == 0)
			rc = read_line(c, line, true);
		if (rc == 0 && line[0] == '-') {
			snprintf(err, errlen, "redis refused to send a snapshot: %.200s", line + 1);
			rc =
			    strstr(line, "NOAUTH") || strstr(line, "NOPERM") ? AB_EAUTH : AB_EPROTO;
		} else if (rc == 0 && !strncmp(line, "$EOF:", 5)) {
			snprintf(err, errlen,
			         "redis sent an EOF-marked (diskless) transfer, which "
			         "was not asked for");
			rc = AB_EPROTO;
		} else if (rc == 0) {
			long long len = -1;
			if (line[0] != '$' ||
			    ab_parse_int(line + 1, 0, (long long)RDB_MAX_SIZE, &len) < 0) {
				snprintf(err, errlen, "redis answered SYNC with \"%.60s\"", line);
				rc = AB_EPROTO;
			} else {
				rc = payload(c, (uint64_t)len, fd, o, res, err, errlen);
			}
		}
	}
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "snapshot from %s:%d failed: %s", o->host, o->port,
		         ab_strerror(rc));
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return rc;
}
