/*
 * archive.h - the container of `autobot backup`: a tar stream (POSIX
 * ustar headers, pax extended headers for names over 100 bytes and sizes
 * of 8 GiB or more) compressed as zstd, written and read in one pass, and
 * the manifest.json that describes such an archive.
 *
 * The reader treats its input as hostile: every header is checked (magic,
 * checksum, octal fields, sizes against the limits below), only regular
 * files and pax headers are accepted (no links, devices, folders or GNU
 * extensions), member names must be relative paths without "." or ".."
 * components, and the archive must end properly (two zero blocks, the
 * zstd frame complete with its checksum, nothing after it). Any failure
 * is final and leaves a message in ab_archive_error(); the caller has
 * extracted nothing it did not ask for, because the reader never writes
 * to the file system itself.
 */
#ifndef AB_ARCHIVE_H
#define AB_ARCHIVE_H

#include "common.h"

#include <jansson.h>
#include <sys/types.h>

#define AB_ARCHIVE_MAX_NAME       1024 /* bytes of a member name */
#define AB_ARCHIVE_MAX_MEMBERS    1000000
#define AB_ARCHIVE_MAX_SIZE       (1ull << 40) /* one member: 1 TiB */
#define AB_ARCHIVE_MAX_PAX        65536        /* one pax header's data */
#define AB_ARCHIVE_MANIFEST       "manifest.json"
#define AB_ARCHIVE_MAX_MANIFEST   (64u << 20) /* manifest.json: 64 MiB */
#define AB_ARCHIVE_FORMAT         "autobot-backup"
#define AB_ARCHIVE_FORMAT_VERSION 1

/* ---- writing ------------------------------------------------------------ */

struct ab_archive_writer;

/*
 * Starts an archive written to fd (borrowed, not closed), compressed with
 * zstd at level (1-19; 0 = the default, 3) using threads worker threads
 * (0 = compress on the calling thread). *out is freed with
 * ab_archive_writer_free(). Returns 0 or a negative code.
 */
int ab_archive_writer_new(int fd, int level, int threads, struct ab_archive_writer **out);
void ab_archive_writer_free(struct ab_archive_writer *w);

/* Starts a member of exactly size bytes (name checked with
 * ab_archive_name_ok; mode such as 0600; mtime in seconds since 1970).
 * Feed it with ab_archive_write() and close it with ab_archive_end(),
 * which fails with AB_EINVAL when fewer or more bytes came. */
int ab_archive_begin(struct ab_archive_writer *w, const char *name, uint64_t size, unsigned mode,
                     int64_t mtime);
int ab_archive_write(struct ab_archive_writer *w, const void *p, size_t n);
int ab_archive_end(struct ab_archive_writer *w);
/* One member from memory. */
int ab_archive_add(struct ab_archive_writer *w, const char *name, const void *p, size_t n,
                   unsigned mode, int64_t mtime);
/* One member from the file at path, of exactly size bytes (a file that
 * changed size since is an error: AB_EINVAL); sha256_hex (65 bytes, may
 * be NULL) receives the digest of what was written. progress, if not
 * NULL, is called with the bytes of this member written so far. */
int ab_archive_add_file(struct ab_archive_writer *w, const char *name, const char *path,
                        uint64_t size, unsigned mode, int64_t mtime, char *sha256_hex,
                        void (*progress)(void *ud, uint64_t done), void *ud);
/* Writes the end-of-archive blocks and ends the zstd frame. */
int ab_archive_finish(struct ab_archive_writer *w);
/* Compressed bytes written to fd so far. */
uint64_t ab_archive_writer_out_bytes(const struct ab_archive_writer *w);
/* The message of the last failure ("" when none). */
const char *ab_archive_writer_error(const struct ab_archive_writer *w);

/* ---- reading ------------------------------------------------------------ */

/* Where the reader's bytes come from: up to n bytes into buf; returns the
 * count, 0 at the end of the input, or a negative code. */
typedef ssize_t (*ab_archive_src_fn)(void *ud, void *buf, size_t n);

#define AB_ARCHIVE_RAW 0x1u /* the input is a bare tar stream, not zstd */

struct ab_archive_reader;

struct ab_archive_entry {
	char name[AB_ARCHIVE_MAX_NAME + 1];
	uint64_t size;
	int64_t mtime;
	unsigned mode;
};

/* A reader of src (ud is passed back to it). flags: AB_ARCHIVE_RAW or 0.
 * Free with ab_archive_reader_free(). */
struct ab_archive_reader *ab_archive_reader_new(ab_archive_src_fn src, void *ud, unsigned flags);
/* A reader of the zstd archive on fd (borrowed; read from its current
 * offset to its end). */
struct ab_archive_reader *ab_archive_reader_fd(int fd);
void ab_archive_reader_free(struct ab_archive_reader *r);

/*
 * Moves to the next member (skipping what is left of the current one).
 * Returns 1 with *e filled, 0 at the proper end of the archive, or a
 * negative code (AB_EPROTO for a malformed or truncated archive,
 * AB_ETOOBIG past a limit, -errno from the source) with the reason in
 * ab_archive_error(). After an error every call fails the same way.
 */
int ab_archive_next(struct ab_archive_reader *r, struct ab_archive_entry *e);
/* Reads up to n bytes of the current member: the count, 0 at its end, or
 * a negative code. */
ssize_t ab_archive_read(struct ab_archive_reader *r, void *buf, size_t n);
const char *ab_archive_error(const struct ab_archive_reader *r);
/* Bytes taken from the source so far (for progress). */
uint64_t ab_archive_in_bytes(const struct ab_archive_reader *r);

/* Whether name may be a member name: 1 to AB_ARCHIVE_MAX_NAME bytes of
 * printable characters, relative, no empty, "." or ".." component, no
 * backslash. */
bool ab_archive_name_ok(const char *name);

/*
 * Parses and checks manifest.json (len bytes, untrusted): a JSON object
 * with format AB_ARCHIVE_FORMAT, format_version AB_ARCHIVE_FORMAT_VERSION
 * and members, an array (at most AB_ARCHIVE_MAX_MEMBERS) of {name, size,
 * sha256} with valid, unique names, sizes within limits and 64 lowercase
 * hex digits. Returns the object (caller decrefs) or NULL with the reason
 * in err.
 */
json_t *ab_archive_manifest_parse(const char *data, size_t len, char *err, size_t errlen);

#endif
