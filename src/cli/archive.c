/*
 * archive.c - tar inside zstd for `autobot backup` (archive.h), written
 * from the POSIX pax/ustar interchange format and the zstd streaming API.
 *
 * Why tar + zstd, written here: a backup must be readable in ten years by
 * a person with nothing but `tar --zstd -xf`, so the container is the
 * most common one there is; the code is ours because the reader is a
 * parser of untrusted input (an archive copied around, restored months
 * later, possibly corrupted or crafted) and must be small enough to read
 * in one sitting and fuzz, and because shelling out to tar(1) would make
 * path traversal, links and truncation its problem instead of ours.
 *
 * The writer emits one zstd frame with the content checksum on, so a
 * flipped bit anywhere is caught by zstd at the end of the frame even if
 * the tar layer happens to parse it, and the manifest's sha256 per member
 * catches it again. Every member is a regular file: a 512-byte ustar
 * header (preceded by a pax 'x' header carrying "path" when the name does
 * not fit in 100 bytes, and "size" from 8 GiB up), the data, zero padding
 * to 512. The archive ends with two zero blocks.
 *
 * The reader is a pull parser over a byte source (a file descriptor, or
 * memory for the fuzzer and the tests). It holds at most one compressed
 * and one decompressed buffer, so memory is bounded whatever the input;
 * the zstd window is capped at 2^27 bytes. It refuses rather than guesses:
 * anything that is not exactly what the writer would produce for some
 * input (modulo fields it ignores, such as uid or uname) is an error,
 * including a clean-looking archive that stops early, which is what a
 * truncated copy looks like after decompression.
 *
 * Building with AB_ARCHIVE_TAR_ONLY leaves libzstd out (the writer then
 * writes bare tar and the reader takes only AB_ARCHIVE_RAW input): the
 * fuzz target is built that way by the generic fuzz rule, which links no
 * zstd.
 */
#include "archive.h"

#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef AB_ARCHIVE_TAR_ONLY
#include <zstd.h>
#endif

#define BLOCK              512
#define USTAR_MAX_SIZE     077777777777ull /* 11 octal digits */
#define MAX_TRAILING_ZEROS (1u << 20)      /* padding after the end blocks */
#define RAW_BUF            (128u << 10)

/* ---- writer ------------------------------------------------------------- */

struct ab_archive_writer {
	int fd;
#ifndef AB_ARCHIVE_TAR_ONLY
	ZSTD_CCtx *cctx;
#endif
	uint8_t *out;
	size_t out_cap;
	uint64_t out_bytes;
	bool in_member;
	uint64_t size;    /* of the open member */
	uint64_t written; /* of the open member, so far */
	bool failed;
	char err[256];
};

static int wfail(struct ab_archive_writer *w, int rc, const char *fmt, ...) AB_PRINTF(3, 4);

static int wfail(struct ab_archive_writer *w, int rc, const char *fmt, ...)
{
	if (!w->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->err, sizeof(w->err), fmt, ap);
		va_end(ap);
	}
	w->failed = true;
	return rc;
}

/* Sends n bytes into the compressed stream; end closes the frame. */
static int push(struct ab_archive_writer *w, const void *p, size_t n, bool end)
{
	if (w->failed)
		return AB_EINVAL;
#ifdef AB_ARCHIVE_TAR_ONLY
	(void)end;
	int rc = ab_write_full(w->fd, p, n);
	if (rc < 0)
		return wfail(w, rc, "cannot write the archive: %s", ab_strerror(rc));
	w->out_bytes += n;
	return 0;
#else
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		ZSTD_outBuffer ob = {w->out, w->out_cap, 0};
		size_t left =
		    ZSTD_compressStream2(w->cctx, &ob, &in, end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return wfail(w, AB_EPROTO, "zstd: %s", ZSTD_getErrorName(left));
		if (ob.pos > 0) {
			int rc = ab_write_full(w->fd, w->out, ob.pos);
			if (rc < 0)
				return wfail(w, rc, "cannot write the archive: %s",
				             ab_strerror(rc));
			w->out_bytes += ob.pos;
		}
		if (end ? left == 0 : in.pos == in.size)
			return 0;
	}
#endif
}

int ab_archive_writer_new(int fd, int level, int threads, struct ab_archive_writer **out)
{
	struct ab_archive_writer *w = ab_xcalloc(1, sizeof(*w));
	w->fd = fd;
#ifdef AB_ARCHIVE_TAR_ONLY
	(void)level;
	(void)threads;
	w->out_cap = 0;
#else
	w->cctx = ZSTD_createCCtx();
	if (!w->cctx)
		abort(); /* allocation: OOM aborts */
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level > 0 ? level : 3);
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
	if (threads > 0) /* fails harmlessly when libzstd has no threads */
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, threads);
	w->out_cap = ZSTD_CStreamOutSize();
	w->out = ab_xmalloc(w->out_cap);
#endif
	*out = w;
	return 0;
}

void ab_archive_writer_free(struct ab_archive_writer *w)
{
	if (!w)
		return;
#ifndef AB_ARCHIVE_TAR_ONLY
	ZSTD_freeCCtx(w->cctx);
#endif
	free(w->out);
	free(w);
}

/* Writes v as width-1 zero-padded octal digits and a NUL. */
static void octal(char *field, size_t width, uint64_t v)
{
	field[width - 1] = '\0';
	for (size_t i = width - 1; i-- > 0;) {
		field[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
}

static size_t ndigits(size_t v)
{
	size_t d = 1;
	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* Appends one pax record "LEN key=value\n"; LEN counts the whole record,
 * its own digits included. */
static void pax_record(struct ab_buf *b, const char *key, const char *value)
{
	size_t base = 1 + strlen(key) + 1 + strlen(value) + 1;
	size_t d = ndigits(base);
	while (ndigits(base + d) != d)
		d++;
	ab_buf_printf(b, "%zu %s=%s\n", base + d, key, value);
}

static void header(uint8_t h[BLOCK], const char *name, size_t name_len, uint64_t size,
                   unsigned mode, int64_t mtime, char type)
{
	memset(h, 0, BLOCK);
	memcpy(h, name, name_len < 100 ? name_len : 100);
	octal((char *)h + 100, 8, mode & 07777);
	octal((char *)h + 108, 8, 0);
	octal((char *)h + 116, 8, 0);
	octal((char *)h + 124, 12, size);
	octal((char *)h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memcpy(h + 148, "        ", 8);
	unsigned sum = 0;
	for (size_t i = 0; i < BLOCK; i++)
		sum += h[i];
	octal((char *)h + 148, 7, sum);
	h[155] = ' ';
}

int ab_archive_begin(struct ab_archive_writer *w, const char *name, uint64_t size, unsigned mode,
                     int64_t mtime)
{
	if (w->failed)
		return AB_EINVAL;
	if (w->in_member)
		return wfail(w, AB_EINVAL, "member started before the previous one ended");
	if (!ab_archive_name_ok(name))
		return wfail(w, AB_EINVAL, "unsafe member name");
	if (size > AB_ARCHIVE_MAX_SIZE)
		return wfail(w, AB_ETOOBIG, "%s: member too large", name);
	uint8_t h[BLOCK];
	size_t nlen = strlen(name);
	bool long_name = nlen > 100, big = size > USTAR_MAX_SIZE;
	if (long_name || big) {
		struct ab_buf pax = {0};
		if (long_name)
			pax_record(&pax, "path", name);
		if (big) {
			char sz[24];
			snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
			pax_record(&pax, "size", sz);
		}
		const char *base = strrchr(name, '/');
		base = base ? base + 1 : name;
		char pname[101];
		int pl = snprintf(pname, sizeof(pname), "PaxHeaders/%.88s", base);
		header(h, pname, (size_t)pl, pax.len, 0600, mtime, 'x');
		int rc = push(w, h, BLOCK, false);
		if (rc == 0)
			rc = push(w, pax.data, pax.len, false);
		static const uint8_t zeros[BLOCK];
		if (rc == 0 && pax.len % BLOCK)
			rc = push(w, zeros, BLOCK - pax.len % BLOCK, false);
		ab_buf_free(&pax);
		if (rc < 0)
			return rc;
	}
	header(h, name, nlen, big ? 0 : size, mode, mtime, '0');
	int rc = push(w, h, BLOCK, false);
	if (rc < 0)
		return rc;
	w->in_member = true;
	w->size = size;
	w->written = 0;
	return 0;
}

int ab_archive_write(struct ab_archive_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return AB_EINVAL;
	if (!w->in_member || n > w->size - w->written)
		return wfail(w, AB_EINVAL, "more data than the member's size");
	w->written += n;
	return push(w, p, n, false);
}

int ab_archive_end(struct ab_archive_writer *w)
{
	if (w->failed)
		return AB_EINVAL;
	if (!w->in_member || w->written != w->size)
		return wfail(w, AB_EINVAL, "member ended after %llu of %llu bytes",
		             (unsigned long long)w->written, (unsigned long long)w->size);
	w->in_member = false;
	static const uint8_t zeros[BLOCK];
	if (w->size % BLOCK)
		return push(w, zeros, BLOCK - w->size % BLOCK, false);
	return 0;
}

int ab_archive_add(struct ab_archive_writer *w, const char *name, const void *p, size_t n,
                   unsigned mode, int64_t mtime)
{
	int rc = ab_archive_begin(w, name, n, mode, mtime);
	if (rc == 0 && n > 0)
		rc = ab_archive_write(w, p, n);
	if (rc == 0)
		rc = ab_archive_end(w);
	return rc;
}

int ab_archive_add_file(struct ab_archive_writer *w, const char *name, const char *path,
                        uint64_t size, unsigned mode, int64_t mtime, char *sha256_hex,
                        void (*progress)(void *ud, uint64_t done), void *ud)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		return wfail(w, e, "%s: %s", path, ab_strerror(e));
	}
	int rc = ab_archive_begin(w, name, size, mode, mtime);
	struct ab_sha256 sh;
	ab_sha256_init(&sh);
	uint8_t *buf = ab_xmalloc(RAW_BUF);
	uint64_t done = 0;
	while (rc == 0) {
		ssize_t k = read(fd, buf, RAW_BUF);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			wfail(w, rc, "%s: %s", path, ab_strerror(rc));
			break;
		}
		if (k == 0)
			break;
		if ((uint64_t)k > size - done) {
			rc = wfail(w, AB_EINVAL, "%s grew while it was archived", path);
			break;
		}
		ab_sha256_update(&sh, buf, (size_t)k);
		rc = ab_archive_write(w, buf, (size_t)k);
		done += (uint64_t)k;
		if (progress)
			progress(ud, done);
	}
	if (rc == 0 && done != size)
		rc = wfail(w, AB_EINVAL, "%s shrank while it was archived", path);
	if (rc == 0)
		rc = ab_archive_end(w);
	if (rc == 0 && sha256_hex) {
		uint8_t d[32];
		ab_sha256_final(&sh, d);
		for (int i = 0; i < 32; i++)
			snprintf(sha256_hex + 2 * i, 3, "%02x", d[i]);
	}
	free(buf);
	close(fd);
	return rc;
}

int ab_archive_finish(struct ab_archive_writer *w)
{
	if (w->failed)
		return AB_EINVAL;
	if (w->in_member)
		return wfail(w, AB_EINVAL, "archive finished inside a member");
	static const uint8_t zeros[2 * BLOCK];
	int rc = push(w, zeros, sizeof(zeros), false);
	if (rc == 0)
		rc = push(w, NULL, 0, true);
	return rc;
}

uint64_t ab_archive_writer_out_bytes(const struct ab_archive_writer *w)
{
	return w->out_bytes;
}

const char *ab_archive_writer_error(const struct ab_archive_writer *w)
{
	return w->err;
}

/* ---- reader ------------------------------------------------------------- */

enum { R_HEADERS, R_MEMBER, R_END, R_FAILED };

struct ab_archive_reader {
	ab_archive_src_fn src;
	void *ud;
	bool raw;
#ifndef AB_ARCHIVE_TAR_ONLY
	ZSTD_DCtx *dctx;
	size_t zret; /* last ZSTD_decompressStream result: 0 = at a frame end */
#endif
	uint8_t *in; /* compressed input */
	size_t in_cap, in_len, in_pos;
	bool src_eof;
	uint8_t *out; /* decompressed bytes not yet consumed */
	size_t out_cap, out_len, out_pos;
	uint64_t in_bytes;
	uint64_t remaining; /* data of the current member */
	uint64_t pad;       /* zero padding after it */
	size_t members;
	int state;
	int rc; /* the error, once R_FAILED */
	char err[320];
	int fd; /* for ab_archive_reader_fd */
};

static int rfail(struct ab_archive_reader *r, int rc, const char *fmt, ...) AB_PRINTF(3, 4);

static int rfail(struct ab_archive_reader *r, int rc, const char *fmt, ...)
{
	if (r->state != R_FAILED) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, sizeof(r->err), fmt, ap);
		va_end(ap);
		r->state = R_FAILED;
		r->rc = rc;
	}
	return r->rc;
}

struct ab_archive_reader *ab_archive_reader_new(ab_archive_src_fn src, void *ud, unsigned flags)
{
	struct ab_archive_reader *r = ab_xcalloc(1, sizeof(*r));
	r->src = src;
	r->ud = ud;
	r->raw = (flags & AB_ARCHIVE_RAW) != 0;
	r->fd = -1;
	r->out_cap = RAW_BUF;
#ifndef AB_ARCHIVE_TAR_ONLY
	if (!r->raw) {
		r->dctx = ZSTD_createDCtx();
		if (!r->dctx)
			abort(); /* allocation: OOM aborts */
		ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, 27);
		r->in_cap = ZSTD_DStreamInSize();
		r->in = ab_xmalloc(r->in_cap);
		r->out_cap = ZSTD_DStreamOutSize();
		r->zret = 1;
	}
#else
	if (!r->raw)
		rfail(r, AB_EINVAL, "this build reads bare tar only (no zstd)");
#endif
	r->out = ab_xmalloc(r->out_cap);
	return r;
}

static ssize_t fd_src(void *ud, void *buf, size_t n)
{
	struct ab_archive_reader *r = ud;
	for (;;) {
		ssize_t k = read(r->fd, buf, n);
		if (k < 0 && errno == EINTR)
			continue;
		return k < 0 ? -errno : k;
	}
}

struct ab_archive_reader *ab_archive_reader_fd(int fd)
{
	struct ab_archive_reader *r = ab_archive_reader_new(fd_src, NULL, 0);
	r->ud = r;
	r->fd = fd;
	return r;
}

void ab_archive_reader_free(struct ab_archive_reader *r)
{
	if (!r)
		return;
#ifndef AB_ARCHIVE_TAR_ONLY
	ZSTD_freeDCtx(r->dctx);
#endif
	free(r->in);
	free(r->out);
	free(r);
}

const char *ab_archive_error(const struct ab_archive_reader *r)
{
	return r->err[0] ? r->err : "no error";
}

uint64_t ab_archive_in_bytes(const struct ab_archive_reader *r)
{
	return r->in_bytes;
}

/* Refills r->out. Returns the bytes now available, 0 at the proper end
 * of the input, or a negative code (r failed). */
static int fill(struct ab_archive_reader *r)
{
	if (r->state == R_FAILED)
		return r->rc;
	r->out_pos = r->out_len = 0;
	if (r->raw) {
		ssize_t k = r->src(r->ud, r->out, r->out_cap);
		if (k < 0)
			return rfail(r, (int)k, "cannot read the archive: %s", ab_strerror((int)k));
		r->in_bytes += (uint64_t)k;
		r->out_len = (size_t)k;
		return (int)(k > 0);
	}
#ifdef AB_ARCHIVE_TAR_ONLY
	return rfail(r, AB_EINVAL, "this build reads bare tar only (no zstd)");
#else
	for (;;) {
		if (r->in_pos == r->in_len && !r->src_eof) {
			ssize_t k = r->src(r->ud, r->in, r->in_cap);
			if (k < 0)
				return rfail(r, (int)k, "cannot read the archive: %s",
				             ab_strerror((int)k));
			if (r->in_bytes == 0 && k >= 4) {
				static const uint8_t magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
				if (memcmp(r->in, magic, 4) != 0)
					return rfail(
					    r, AB_EPROTO,
					    "not a zstd stream (a .tar.zst archive starts with "
					    "28 b5 2f fd)");
			}
			r->in_bytes += (uint64_t)k;
			r->in_len = (size_t)k;
			r->in_pos = 0;
			if (k == 0)
				r->src_eof = true;
		}
		/* starved: the input is used up; zstd may still hold output */
		bool starved = r->in_pos == r->in_len && r->src_eof;
		if (starved && r->zret == 0)
			return 0;
		ZSTD_inBuffer ib = {r->in, r->in_len, r->in_pos};
		ZSTD_outBuffer ob = {r->out, r->out_cap, 0};
		size_t z = ZSTD_decompressStream(r->dctx, &ob, &ib);
		r->in_pos = ib.pos;
		if (ZSTD_isError(z))
			return rfail(
			    r, AB_EPROTO,
			    "corrupt: zstd says \"%s\" within the first %llu compressed bytes",
			    ZSTD_getErrorName(z), (unsigned long long)r->in_bytes);
		r->zret = z;
		if (ob.pos == 0 && starved) {
			if (r->in_bytes == 0)
				return rfail(r, AB_EPROTO, "the archive is empty");
			return rfail(r, AB_EPROTO,
			             "truncated: the compressed stream stops inside a zstd frame "
			             "after %llu bytes",
			             (unsigned long long)r->in_bytes);
		}
		if (ob.pos > 0) {
			r->out_len = ob.pos;
			return 1;
		}
	}
#endif
}

/* Copies exactly n decompressed bytes into dst (NULL: skips them).
 * Returns 0, or a negative code (truncation is AB_EPROTO, message set
 * with what; what is e.g. "a header"). */
static int take(struct ab_archive_reader *r, void *dst, uint64_t n, const char *what)
{
	uint8_t *d = dst;
	while (n > 0) {
		if (r->out_pos == r->out_len) {
			int f = fill(r);
			if (f < 0)
				return f;
			if (f == 0)
				return rfail(
				    r, AB_EPROTO,
				    "truncated: the archive ends inside %s (no end-of-archive "
				    "marker)",
				    what);
		}
		size_t k = r->out_len - r->out_pos;
		if (k > n)
			k = (size_t)n;
		if (d) {
			memcpy(d, r->out + r->out_pos, k);
			d += k;
		}
		r->out_pos += k;
		n -= k;
	}
	return 0;
}

/* Parses an octal field: optional leading spaces, digits, then only NULs
 * or spaces. Returns 0 or -1. empty_ok lets a field with no digit be 0. */
static int parse_octal(const uint8_t *f, size_t w, uint64_t max, bool empty_ok, uint64_t *out)
{
	size_t i = 0;
	if (w > 0 && (f[0] & 0x80))
		return -1; /* GNU base-256 */
	while (i < w && f[i] == ' ')
		i++;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < w && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v > (max >> 3))
			return -1;
		v = (v << 3) | (uint64_t)(f[i] - '0');
		if (v > max)
			return -1;
	}
	for (; i < w; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return -1;
	if (digits == 0 && !empty_ok)
		return -1;
	*out = v;
	return 0;
}

/* Copies a field that is NUL-terminated or fills its width. */
static size_t field_str(const uint8_t *f, size_t w, char *out)
{
	size_t n = 0;
	while (n < w && f[n])
		n++;
	memcpy(out, f, n);
	out[n] = '\0';
	return n;
}

/* A name fit for an error message: printable ASCII, at most 80 bytes. */
static void printable(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		}
		if (o > 80) {
			o += (size_t)snprintf(out + o, outlen - o, "...");
			break;
		}
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}

bool ab_archive_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > AB_ARCHIVE_MAX_NAME || name[0] == '/')
		return false;
	const char *comp = name;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/' || c == '\0') {
			size_t cl = (size_t)(name + i - comp);
			if (cl == 0 || (cl == 1 && comp[0] == '.') ||
			    (cl == 2 && comp[0] == '.' && comp[1] == '.'))
				return false;
			comp = name + i + 1;
			continue;
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return false;
	}
	return true;
}

/* Applies the records of one pax header (n bytes) to *path / *size. */
static int parse_pax(struct ab_archive_reader *r, const char *d, size_t n, char *path,
                     bool *have_path, uint64_t *size, bool *have_size)
{
	size_t pos = 0;
	while (pos < n) {
		size_t len = 0, i = pos;
		while (i < n && d[i] >= '0' && d[i] <= '9' && i - pos < 8)
			len = len * 10 + (size_t)(d[i++] - '0');
		if (i == pos || i >= n || d[i] != ' ' || len < (i - pos) + 4 || len > n - pos ||
		    d[pos + len - 1] != '\n')
			return rfail(r, AB_EPROTO, "corrupt: a malformed pax record at offset %zu",
			             pos);
		const char *kv = d + i + 1, *end = d + pos + len - 1;
		const char *eq = memchr(kv, '=', (size_t)(end - kv));
		if (!eq || eq == kv)
			return rfail(r, AB_EPROTO, "corrupt: a pax record without key=value");
		size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
		const char *v = eq + 1;
		if (klen == 4 && !memcmp(kv, "path", 4)) {
			if (vlen == 0 || vlen > AB_ARCHIVE_MAX_NAME || memchr(v, '\0', vlen))
				return rfail(r, AB_EPROTO, "unsafe member name in a pax header");
			memcpy(path, v, vlen);
			path[vlen] = '\0';
			*have_path = true;
		} else if (klen == 4 && !memcmp(kv, "size", 4)) {
			uint64_t s = 0;
			if (vlen == 0 || vlen > 20)
				return rfail(r, AB_EPROTO, "corrupt: a bad pax size");
			for (size_t k = 0; k < vlen; k++) {
				if (v[k] < '0' || v[k] > '9' || s > AB_ARCHIVE_MAX_SIZE)
					return rfail(r, AB_EPROTO, "corrupt: a bad pax size");
				s = s * 10 + (uint64_t)(v[k] - '0');
			}
			if (s > AB_ARCHIVE_MAX_SIZE)
				return rfail(r, AB_ETOOBIG,
				             "a member of %llu bytes is over the limit",
				             (unsigned long long)s);
			*size = s;
			*have_size = true;
		}
		/* other keys (mtime, uid, uname, ...) change nothing we use */
		pos += len;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* After the first zero block: the second, then only zero padding, then
 * the end of the input. */
static int finish_read(struct ab_archive_reader *r)
{
	uint8_t h[BLOCK];
	int rc = take(r, h, BLOCK, "the end-of-archive marker");
	if (rc < 0)
		return rc;
	if (!all_zero(h, BLOCK))
		return rfail(r, AB_EPROTO, "corrupt: a zero block in the middle of the archive");
	uint64_t extra = 0;
	for (;;) {
		if (r->out_pos == r->out_len) {
			int f = fill(r);
			if (f < 0)
				return f;
			if (f == 0)
				break;
		}
		size_t k = r->out_len - r->out_pos;
		if (!all_zero(r->out + r->out_pos, k))
			return rfail(r, AB_EPROTO, "corrupt: data after the end-of-archive marker");
		extra += k;
		r->out_pos += k;
		if (extra > MAX_TRAILING_ZEROS)
			return rfail(r, AB_EPROTO, "corrupt: too much padding after the archive");
	}
	r->state = R_END;
	return 0;
}

static const char *type_name(uint8_t t)
{
	switch (t) {
	case '1':
		return "a hard link";
	case '2':
		return "a symbolic link";
	case '3':
		return "a character device";
	case '4':
		return "a block device";
	case '5':
		return "a folder";
	case '6':
		return "a fifo";
	case '7':
		return "a contiguous file";
	case 'g':
		return "a global pax header";
	case 'L':
	case 'K':
		return "a GNU long-name header";
	default:
		return "an unknown entry type";
	}
}

int ab_archive_next(struct ab_archive_reader *r, struct ab_archive_entry *e)
{
	if (r->state == R_FAILED)
		return r->rc;
	if (r->state == R_END)
		return 0;
	int rc = take(r, NULL, r->remaining + r->pad, "a member's data");
	if (rc < 0)
		return rc;
	r->remaining = r->pad = 0;
	r->state = R_HEADERS;

	char path[AB_ARCHIVE_MAX_NAME + 1];
	bool have_path = false, have_size = false, had_pax = false;
	uint64_t size = 0;
	uint8_t h[BLOCK];
	for (;;) {
		rc = take(r, h, BLOCK, "a header");
		if (rc < 0)
			return rc;
		if (all_zero(h, BLOCK)) {
			if (had_pax)
				return rfail(r, AB_EPROTO,
				             "corrupt: a pax header with no member after it");
			rc = finish_read(r);
			return rc < 0 ? rc : 0;
		}
		uint64_t stored, mode, mtime, fsize;
		if (parse_octal(h + 148, 8, 07777777, false, &stored) < 0)
			return rfail(r, AB_EPROTO,
			             "corrupt: a header with a malformed checksum field");
		unsigned sum = 0;
		for (size_t i = 0; i < BLOCK; i++)
			sum += (i >= 148 && i < 156) ? ' ' : h[i];
		if (sum != stored)
			return rfail(r, AB_EPROTO, "corrupt: header checksum mismatch (member %zu)",
			             r->members + 1);
		if (memcmp(h + 257, "ustar", 6) != 0 || memcmp(h + 263, "00", 2) != 0)
			return rfail(
			    r, AB_EPROTO,
			    "not a POSIX ustar/pax archive (only those are read; GNU and v7 "
			    "headers are refused)");
		if (parse_octal(h + 124, 12, USTAR_MAX_SIZE, false, &fsize) < 0 ||
		    parse_octal(h + 100, 8, 07777777, true, &mode) < 0 ||
		    parse_octal(h + 136, 12, USTAR_MAX_SIZE, true, &mtime) < 0)
			return rfail(r, AB_EPROTO, "corrupt: a malformed number in a header");
		uint8_t type = h[156];
		if (type == 'x') {
			if (had_pax)
				return rfail(r, AB_EPROTO, "corrupt: two pax headers in a row");
			if (fsize > AB_ARCHIVE_MAX_PAX)
				return rfail(r, AB_ETOOBIG,
				             "a pax header of %llu bytes is over the limit",
				             (unsigned long long)fsize);
			char *d = ab_xmalloc((size_t)fsize + 1);
			rc = take(r, d, fsize, "a pax header");
			if (rc == 0)
				rc = take(r, NULL, (BLOCK - fsize % BLOCK) % BLOCK, "a pax header");
			if (rc == 0)
				rc = parse_pax(r, d, (size_t)fsize, path, &have_path, &size,
				               &have_size);
			free(d);
			if (rc < 0)
				return rc;
			had_pax = true;
			continue;
		}
		if (type != '0' && type != '\0') {
			char nm[128], shown[128];
			field_str(h, 100, nm);
			printable(nm, strlen(nm), shown, sizeof(shown));
			return rfail(r, AB_EPROTO,
			             "refused: \"%s\" is %s; only regular files are read", shown,
			             type_name(type));
		}
		if (!have_path) {
			char name[101], prefix[156];
			size_t nl = field_str(h, 100, name);
			size_t pl = field_str(h + 345, 155, prefix);
			if (pl)
				snprintf(path, sizeof(path), "%s/%s", prefix, name);
			else
				memcpy(path, name, nl + 1);
		}
		if (!have_size)
			size = fsize;
		if (!ab_archive_name_ok(path)) {
			char shown[128];
			printable(path, strlen(path), shown, sizeof(shown));
			return rfail(r, AB_EPROTO,
			             "refused: unsafe member name \"%s\" (absolute, \"..\", empty "
			             "component or control characters)",
			             shown);
		}
		if (size > AB_ARCHIVE_MAX_SIZE)
			return rfail(r, AB_ETOOBIG, "a member of %llu bytes is over the limit",
			             (unsigned long long)size);
		if (++r->members > AB_ARCHIVE_MAX_MEMBERS)
			return rfail(r, AB_ETOOBIG, "more than %d members", AB_ARCHIVE_MAX_MEMBERS);
		memcpy(e->name, path, strlen(path) + 1);
		e->size = size;
		e->mode = (unsigned)mode & 07777;
		e->mtime = (int64_t)mtime;
		r->remaining = size;
		r->pad = (BLOCK - size % BLOCK) % BLOCK;
		r->state = R_MEMBER;
		return 1;
	}
}

ssize_t ab_archive_read(struct ab_archive_reader *r, void *buf, size_t n)
{
	if (r->state == R_FAILED)
		return r->rc;
	if (r->state != R_MEMBER || r->remaining == 0 || n == 0)
		return 0;
	if (r->out_pos == r->out_len) {
		int f = fill(r);
		if (f < 0)
			return f;
		if (f == 0)
			return rfail(r, AB_EPROTO,
			             "truncated: the archive ends inside a member's data");
	}
	size_t k = r->out_len - r->out_pos;
	if (k > n)
		k = n;
	if (k > r->remaining)
		k = (size_t)r->remaining;
	memcpy(buf, r->out + r->out_pos, k);
	r->out_pos += k;
	r->remaining -= k;
	return (ssize_t)k;
}

/* ---- manifest ----------------------------------------------------------- */

static bool hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

json_t *ab_archive_manifest_parse(const char *data, size_t len, char *err, size_t errlen)
{
	if (len > AB_ARCHIVE_MAX_MANIFEST) {
		snprintf(err, errlen, "manifest.json is over %u bytes", AB_ARCHIVE_MAX_MANIFEST);
		return NULL;
	}
	json_error_t je;
	json_t *m = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!m) {
		snprintf(err, errlen, "manifest.json is not valid JSON (line %d: %s)", je.line,
		         je.text);
		return NULL;
	}
	json_t *seen = json_object();
	const char *why = NULL;
	char where[160] = "";
	const char *fmt = json_string_value(json_object_get(m, "format"));
	json_t *members = json_object_get(m, "members");
	if (!json_is_object(m) || !fmt || strcmp(fmt, AB_ARCHIVE_FORMAT) != 0) {
		why = "not an autobot backup manifest (format)";
	} else if (json_integer_value(json_object_get(m, "format_version")) !=
	           AB_ARCHIVE_FORMAT_VERSION) {
		why = "unsupported format_version (this autobot reads version 1)";
	} else if (!json_is_array(members) || json_array_size(members) > AB_ARCHIVE_MAX_MEMBERS) {
		why = "members is not an array of at most 1000000 entries";
	}
	for (size_t i = 0; !why && i < json_array_size(members); i++) {
		json_t *it = json_array_get(members, i);
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *sha = json_string_value(json_object_get(it, "sha256"));
		json_t *size = json_object_get(it, "size");
		snprintf(where, sizeof(where), " (member %zu)", i + 1);
		if (!json_is_object(it) || !name || !sha || !json_is_integer(size))
			why = "a member without name, size and sha256";
		else if (!ab_archive_name_ok(name) || !strcmp(name, AB_ARCHIVE_MANIFEST))
			why = "a member with an unsafe or reserved name";
		else if (json_integer_value(size) < 0 ||
		         (uint64_t)json_integer_value(size) > AB_ARCHIVE_MAX_SIZE)
			why = "a member size out of range";
		else if (!hex64(sha))
			why = "a sha256 that is not 64 lowercase hex digits";
		else if (json_object_get(seen, name))
			why = "the same member name twice";
		else
			json_object_set_new(seen, name, json_true());
	}
	json_decref(seen);
	if (why) {
		snprintf(err, errlen, "manifest.json: %s%s", why, where);
		json_decref(m);
		return NULL;
	}
	return m;
}
