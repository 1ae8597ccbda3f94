/*
 * test_archive.c - the backup container (src/cli/archive.c): tar + zstd
 * round trips (long names through pax headers, empty and multi-block
 * members), every truncation refused, a bit flipped at every offset
 * either refused or harmless (the same members come out), hand-made hostile
 * tars (path traversal, absolute names, links, folders, GNU headers, bad
 * checksums, pax tricks) refused through both the raw and the zstd
 * reader, trailing garbage refused, and the manifest checks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include "archive.h"
#include "common.h"

/* ---- helpers ---- */

struct mem {
	const uint8_t *p;
	size_t len, pos, step;
};

static ssize_t mem_src(void *ud, void *buf, size_t n)
{
	struct mem *m = ud;
	size_t k = m->len - m->pos;
	if (k > n)
		k = n;
	if (m->step && k > m->step)
		k = m->step;
	memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	return (ssize_t)k;
}

/* Reads the fd's whole content. */
static uint8_t *slurp(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	cr_assert(end >= 0);
	uint8_t *p = malloc((size_t)end + 1);
	cr_assert_eq(pread(fd, p, (size_t)end, 0), end);
	*len = (size_t)end;
	return p;
}

struct got {
	char names[16][AB_ARCHIVE_MAX_NAME + 1];
	struct ab_buf data[16];
	size_t n;
	int rc; /* final: 0 = proper end, <0 = refused */
	char err[320];
};

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		ab_buf_free(&g->data[i]);
}

/* Reads an archive completely. */
static void read_all(const uint8_t *p, size_t len, unsigned flags, size_t step, struct got *g)
{
	memset(g, 0, sizeof(*g));
	struct mem m = {p, len, 0, step};
	struct ab_archive_reader *r = ab_archive_reader_new(mem_src, &m, flags);
	struct ab_archive_entry e;
	int rc;
	char buf[1000];
	while ((rc = ab_archive_next(r, &e)) > 0) {
		cr_assert(g->n < 16);
		snprintf(g->names[g->n], sizeof(g->names[g->n]), "%s", e.name);
		ab_buf_init(&g->data[g->n]);
		ssize_t k;
		while ((k = ab_archive_read(r, buf, sizeof(buf))) > 0)
			ab_buf_append(&g->data[g->n], buf, (size_t)k);
		g->n++;
		if (k < 0) {
			rc = (int)k;
			break;
		}
		cr_assert_eq(g->data[g->n - 1].len, e.size);
	}
	g->rc = rc;
	snprintf(g->err, sizeof(g->err), "%s", ab_archive_error(r));
	if (rc < 0) /* errors stick */
		cr_assert_eq(ab_archive_next(r, &e), rc);
	ab_archive_reader_free(r);
}

static const char *long_name(void)
{
	static char n[300];
	if (!n[0]) {
		int o = snprintf(n, sizeof(n), "kb/0123456789abcdef/");
		for (int i = 0; i < 25; i++)
			o += snprintf(n + o, sizeof(n) - (size_t)o, "long-name-");
		snprintf(n + o, sizeof(n) - (size_t)o, ".md");
	}
	return n;
}

/* A small archive of 4 members, zstd (or bare tar with threads < 0). */
static uint8_t *make_archive(size_t *len, uint8_t **big_out, size_t *big_len)
{
	int fd = memfd_create("archive", 0);
	cr_assert(fd >= 0);
	struct ab_archive_writer *w;
	cr_assert_eq(ab_archive_writer_new(fd, 3, 0, &w), 0);
	const char *manifest = "{\"format\":\"autobot-backup\"}";
	cr_assert_eq(
	    ab_archive_add(w, "manifest.json", manifest, strlen(manifest), 0600, 1700000000), 0);
	cr_assert_eq(ab_archive_add(w, "empty", "", 0, 0600, 1700000000), 0);
	cr_assert_eq(ab_archive_add(w, long_name(), "pax", 3, 0600, 1700000000), 0);
	size_t bl = 3000;
	uint8_t *big = malloc(bl);
	for (size_t i = 0; i < bl; i++)
		big[i] = (uint8_t)(i * 7 + i / 13);
	cr_assert_eq(ab_archive_begin(w, "redis/dump.rdb", bl, 0600, 1700000000), 0);
	cr_assert_eq(ab_archive_write(w, big, 1000), 0);
	cr_assert_eq(ab_archive_write(w, big + 1000, bl - 1000), 0);
	cr_assert_eq(ab_archive_end(w), 0);
	cr_assert_eq(ab_archive_finish(w), 0);
	ab_archive_writer_free(w);
	uint8_t *p = slurp(fd, len);
	close(fd);
	*big_out = big;
	*big_len = bl;
	return p;
}

static void check_members(const struct got *g, const uint8_t *big, size_t bl)
{
	cr_assert_eq(g->rc, 0, "refused: %s", g->err);
	cr_assert_eq(g->n, 4);
	cr_assert_str_eq(g->names[0], "manifest.json");
	cr_assert_str_eq(g->names[1], "empty");
	cr_assert_eq(g->data[1].len, 0);
	cr_assert_str_eq(g->names[2], long_name());
	cr_assert_eq(g->data[2].len, 3);
	cr_assert_eq(memcmp(g->data[2].data, "pax", 3), 0);
	cr_assert_str_eq(g->names[3], "redis/dump.rdb");
	cr_assert_eq(g->data[3].len, bl);
	cr_assert_eq(memcmp(g->data[3].data, big, bl), 0);
}

/* One 512-byte ustar header with a valid checksum. */
static void hdr(uint8_t *h, const char *name, size_t size, char type, const char *magic)
{
	memset(h, 0, 512);
	memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
	snprintf((char *)h + 100, 8, "%07o", 0600);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", size);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (uint8_t)type;
	memcpy(h + 257, magic, 8);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

#define USTAR                                                                                      \
	"ustar\0"                                                                                  \
	"00"

/* A tar of one member (after an optional pax header with pax_body). */
static size_t craft(uint8_t *out, const char *name, char type, const char *magic,
                    const char *pax_body)
{
	size_t o = 0;
	if (pax_body) {
		size_t pl = strlen(pax_body);
		hdr(out, "PaxHeaders/x", pl, 'x', USTAR);
		o += 512;
		memcpy(out + o, pax_body, pl);
		o += (pl + 511) / 512 * 512;
	}
	hdr(out + o, name, 5, type, magic);
	o += 512;
	memcpy(out + o, "hello", 5);
	o += 512;
	memset(out + o, 0, 1024);
	return o + 1024;
}

static uint8_t *zstd_of(const uint8_t *p, size_t n, size_t *out)
{
	size_t cap = ZSTD_compressBound(n);
	uint8_t *z = malloc(cap);
	size_t k = ZSTD_compress(z, cap, p, n, 3);
	cr_assert(!ZSTD_isError(k));
	*out = k;
	return z;
}

/* Both readers refuse the crafted tar, with a message containing want,
 * after handing out exactly `before` members. */
static void refused_after(const uint8_t *tar, size_t n, const char *want, size_t before)
{
	struct got g;
	read_all(tar, n, AB_ARCHIVE_RAW, 0, &g);
	cr_assert_lt(g.rc, 0, "raw tar accepted (want \"%s\")", want);
	cr_assert(strstr(g.err, want), "raw: \"%s\" does not say \"%s\"", g.err, want);
	cr_assert_eq(g.n, before, "a refused member was handed out");
	got_free(&g);
	size_t zl;
	uint8_t *z = zstd_of(tar, n, &zl);
	read_all(z, zl, 0, 0, &g);
	cr_assert_lt(g.rc, 0);
	cr_assert(strstr(g.err, want), "zstd: \"%s\" does not say \"%s\"", g.err, want);
	got_free(&g);
	free(z);
}

static void refused(const uint8_t *tar, size_t n, const char *want)
{
	refused_after(tar, n, want, 0);
}

/* ---- tests ---- */

Test(archive, round_trip)
{
	size_t len, bl;
	uint8_t *big;
	uint8_t *p = make_archive(&len, &big, &bl);
	cr_assert_eq(memcmp(p, "\x28\xb5\x2f\xfd", 4), 0, "a zstd frame");
	struct got g;
	read_all(p, len, 0, 0, &g);
	check_members(&g, big, bl);
	got_free(&g);
	/* the same, fed one byte at a time and 7 at a time */
	read_all(p, len, 0, 1, &g);
	check_members(&g, big, bl);
	got_free(&g);
	read_all(p, len, 0, 7, &g);
	check_members(&g, big, bl);
	got_free(&g);
	free(p);
	free(big);
}

Test(archive, readable_by_tar)
{
	/* the archive is standard: GNU tar with zstd lists the long name */
	if (system("command -v tar >/dev/null && command -v zstd >/dev/null") != 0)
		cr_skip_test("tar or zstd is not installed");
	size_t len, bl;
	uint8_t *big;
	uint8_t *p = make_archive(&len, &big, &bl);
	char path[] = "/tmp/ab-archive-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, p, len), (ssize_t)len);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "tar --zstd -tf %s", path);
	FILE *f = popen(cmd, "r");
	char line[400];
	int n = 0;
	bool saw_long = false;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		saw_long = saw_long || !strcmp(line, long_name());
		n++;
	}
	cr_assert_eq(pclose(f), 0);
	unlink(path);
	cr_assert_eq(n, 4);
	cr_assert(saw_long);
	free(p);
	free(big);
}

Test(archive, every_truncation_refused)
{
	size_t len, bl;
	uint8_t *big;
	uint8_t *p = make_archive(&len, &big, &bl);
	for (size_t cut = 0; cut < len; cut++) {
		struct got g;
		read_all(p, cut, 0, 0, &g);
		cr_assert_lt(g.rc, 0, "a copy cut at %zu of %zu bytes was accepted", cut, len);
		cr_assert(g.err[0]);
		got_free(&g);
	}
	free(p);
	free(big);
}

Test(archive, every_raw_truncation_refused)
{
	/* the tar layer alone, without zstd's frame check */
	int fd = memfd_create("raw", 0);
	struct ab_archive_writer *w;
	ab_archive_writer_new(fd, 0, 0, &w);
	cr_assert_eq(ab_archive_add(w, long_name(), "abc", 3, 0600, 0), 0);
	cr_assert_eq(ab_archive_add(w, "b", "defg", 4, 0600, 0), 0);
	cr_assert_eq(ab_archive_finish(w), 0);
	ab_archive_writer_free(w);
	size_t len;
	uint8_t *z = slurp(fd, &len);
	close(fd);
	/* decompress it to get the bare tar */
	uint8_t *raw = malloc(1 << 16);
	size_t rl = ZSTD_decompress(raw, 1 << 16, z, len);
	cr_assert(!ZSTD_isError(rl));
	struct got g;
	read_all(raw, rl, AB_ARCHIVE_RAW, 0, &g);
	cr_assert_eq(g.rc, 0, "%s", g.err);
	cr_assert_eq(g.n, 2);
	got_free(&g);
	for (size_t cut = 0; cut < rl; cut++) {
		read_all(raw, cut, AB_ARCHIVE_RAW, 0, &g);
		cr_assert_lt(g.rc, 0, "a bare tar cut at %zu of %zu was accepted", cut, rl);
		got_free(&g);
	}
	free(raw);
	free(z);
}

Test(archive, corruption_refused_or_harmless)
{
	size_t len, bl;
	uint8_t *big;
	uint8_t *p = make_archive(&len, &big, &bl);
	uint8_t *q = malloc(len);
	size_t refusals = 0;
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(q, p, len);
			q[i] ^= (uint8_t)(1u << bit);
			struct got g;
			read_all(q, len, 0, 0, &g);
			if (g.rc < 0)
				refusals++;
			else /* accepted: then the content must be exactly the original */
				check_members(&g, big, bl);
			got_free(&g);
		}
	}
	cr_assert_gt(refusals, len * 3 * 9 / 10, "most corruptions are refused (%zu)", refusals);
	free(q);
	free(p);
	free(big);
}

Test(archive, trailing_garbage_refused)
{
	size_t len, bl;
	uint8_t *big;
	uint8_t *p = make_archive(&len, &big, &bl);
	uint8_t *q = malloc(len + 8);
	memcpy(q, p, len);
	memcpy(q + len, "garbage!", 8);
	struct got g;
	read_all(q, len + 8, 0, 0, &g);
	cr_assert_lt(g.rc, 0);
	got_free(&g);
	/* a second, empty frame is still a valid stream of frames */
	free(q);
	free(p);
	free(big);
}

Test(archive, not_zstd)
{
	struct got g;
	const char *zip = "PK\x03\x04 not a tar.zst at all";
	read_all((const uint8_t *)zip, strlen(zip), 0, 0, &g);
	cr_assert_lt(g.rc, 0);
	cr_assert(strstr(g.err, "not a zstd stream"), "%s", g.err);
	read_all((const uint8_t *)"", 0, 0, 0, &g);
	cr_assert_lt(g.rc, 0);
	cr_assert(strstr(g.err, "empty"), "%s", g.err);
}

Test(archive, crafted_tar_accepted_when_sane)
{
	uint8_t tar[4096];
	size_t n = craft(tar, "kb/abc/notes.txt", '0', USTAR, NULL);
	struct got g;
	read_all(tar, n, AB_ARCHIVE_RAW, 0, &g);
	cr_assert_eq(g.rc, 0, "%s", g.err);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.names[0], "kb/abc/notes.txt");
	got_free(&g);
	n = craft(tar, "short", '0', USTAR, "29 path=logs/a/pax-named.log\n");
	read_all(tar, n, AB_ARCHIVE_RAW, 0, &g);
	cr_assert_eq(g.rc, 0, "%s", g.err);
	cr_assert_str_eq(g.names[0], "logs/a/pax-named.log");
	got_free(&g);
}

Test(archive, path_traversal_and_links_refused)
{
	uint8_t tar[4096];
	static const char *const bad_names[] = {
	    "../evil", "a/../../evil", "/etc/passwd", "a//b",        "./a",       "a/./b",
	    "a/..",    "..",           "dir/",        "back\\slash", "tab\there",
	};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		size_t n = craft(tar, bad_names[i], '0', USTAR, NULL);
		refused(tar, n, "unsafe member name");
	}
	refused(tar, craft(tar, "link", '2', USTAR, NULL), "symbolic link");
	refused(tar, craft(tar, "hard", '1', USTAR, NULL), "hard link");
	refused(tar, craft(tar, "dev", '3', USTAR, NULL), "character device");
	refused(tar, craft(tar, "dir", '5', USTAR, NULL), "folder");
	refused(tar, craft(tar, "fifo", '6', USTAR, NULL), "fifo");
	refused(tar, craft(tar, "gnu", 'L', USTAR, NULL), "GNU long-name");
	refused(tar, craft(tar, "gnu", '0', "ustar  \0", NULL), "not a POSIX ustar");
	/* a pax path that climbs out, or is absolute */
	refused(tar, craft(tar, "ok", '0', USTAR, "20 path=../../etc/x\n"), "unsafe member name");
	refused(tar, craft(tar, "ok", '0', USTAR, "20 path=/etc/shadow\n"), "unsafe member name");
	/* malformed pax records */
	refused(tar, craft(tar, "ok", '0', USTAR, "99 path=x\n"), "pax record");
	refused(tar, craft(tar, "ok", '0', USTAR, "8 pathx\n"), "key=value");
	refused(tar, craft(tar, "ok", '0', USTAR, "14 size=-1xyz\n"), "pax size");
}

Test(archive, bad_headers_refused)
{
	uint8_t tar[4096];
	size_t n = craft(tar, "file", '0', USTAR, NULL);
	tar[0] ^= 1; /* name changed, checksum not */
	refused(tar, n, "checksum");
	n = craft(tar, "file", '0', USTAR, NULL);
	memcpy(tar + 124, "0000000009x", 11); /* size field not octal */
	memset(tar + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += tar[i];
	snprintf((char *)tar + 148, 8, "%06o", sum);
	refused(tar, n, "malformed number");
	/* a zero block followed by something that is not one */
	n = craft(tar, "file", '0', USTAR, NULL);
	tar[n - 512] = 'x';
	refused_after(tar, n, "zero block in the middle", 1);
	/* junk after the end-of-archive marker */
	n = craft(tar, "file", '0', USTAR, NULL);
	memset(tar + n, 0, 512);
	tar[n + 100] = 1;
	refused_after(tar, n + 512, "after the end-of-archive", 1);
}

Test(archive, writer_refuses_unsafe_and_wrong_sizes)
{
	int fd = memfd_create("w", 0);
	struct ab_archive_writer *w;
	ab_archive_writer_new(fd, 0, 0, &w);
	cr_assert_lt(ab_archive_add(w, "../x", "a", 1, 0600, 0), 0);
	ab_archive_writer_free(w);
	ab_archive_writer_new(fd, 0, 0, &w);
	cr_assert_eq(ab_archive_begin(w, "a", 3, 0600, 0), 0);
	cr_assert_eq(ab_archive_write(w, "ab", 2), 0);
	cr_assert_lt(ab_archive_end(w), 0, "a member shorter than announced");
	cr_assert(strstr(ab_archive_writer_error(w), "2 of 3"));
	ab_archive_writer_free(w);
	ab_archive_writer_new(fd, 0, 0, &w);
	cr_assert_eq(ab_archive_begin(w, "a", 1, 0600, 0), 0);
	cr_assert_lt(ab_archive_write(w, "ab", 2), 0, "more than announced");
	ab_archive_writer_free(w);
	close(fd);
}

Test(archive, names)
{
	cr_assert(ab_archive_name_ok("manifest.json"));
	cr_assert(ab_archive_name_ok("kb/x/y z.pdf"));
	cr_assert(ab_archive_name_ok("a/..b/c.."));
	cr_assert_not(ab_archive_name_ok(""));
	cr_assert_not(ab_archive_name_ok("a/"));
	cr_assert_not(ab_archive_name_ok("a\nb"));
	char big[AB_ARCHIVE_MAX_NAME + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_not(ab_archive_name_ok(big));
}

Test(archive, manifest)
{
	char err[256];
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	char ok[512];
	snprintf(ok, sizeof(ok),
	         "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":"
	         "[{\"name\":\"redis/dump.rdb\",\"size\":0,\"sha256\":\"%s\"}]}",
	         sha);
	json_t *m = ab_archive_manifest_parse(ok, strlen(ok), err, sizeof(err));
	cr_assert(m, "%s", err);
	json_decref(m);
	static const char *const bad[] = {
	    "not json",
	    "[]",
	    "{\"format\":\"zip\",\"format_version\":1,\"members\":[]}",
	    "{\"format\":\"autobot-backup\",\"format_version\":2,\"members\":[]}",
	    "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":{}}",
	    "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":[{\"name\":\"../x\","
	    "\"size\":1,\"sha256\":\"SHA\"}]}",
	    "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":[{\"name\":\"x\","
	    "\"size\":-1,\"sha256\":\"SHA\"}]}",
	    "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":[{\"name\":\"x\","
	    "\"size\":1,\"sha256\":\"ABC\"}]}",
	    "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":[{\"name\":\"x\","
	    "\"size\":1,\"sha256\":\"SHA\"},{\"name\":\"x\",\"size\":1,\"sha256\":\"SHA\"}]}",
	    "{\"format\":\"autobot-backup\",\"format_version\":1,\"members\":[{\"name\":"
	    "\"manifest.json\",\"size\":1,\"sha256\":\"SHA\"}]}",
	    "{\"format\":\"autobot-backup\",\"format\":\"autobot-backup\",\"format_version\":1,"
	    "\"members\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* each SHA stands for a valid digest */
		struct ab_buf b = {0};
		for (const char *p = bad[i]; *p;) {
			const char *at = strstr(p, "SHA");
			ab_buf_append(&b, p, at ? (size_t)(at - p) : strlen(p));
			if (!at)
				break;
			ab_buf_puts(&b, sha);
			p = at + 3;
		}
		char *js = ab_buf_steal(&b);
		err[0] = '\0';
		m = ab_archive_manifest_parse(js, strlen(js), err, sizeof(err));
		cr_assert_null(m, "accepted: %s", js);
		cr_assert(err[0]);
		free(js);
	}
}
