/*
 * fuzz_archive.c - the backup archive reader (src/cli/archive.c) on
 * arbitrary bytes. The first byte sets how many bytes the source hands
 * over per call (1 to 256; 0 = all at once), so that headers and pax
 * records split across reads are covered; the rest is a bare tar stream.
 * Every member is read to its end, and a member named manifest.json goes
 * through the manifest checks. A reader must either reach a proper end or
 * fail with a message; reading past an error must keep failing.
 *
 * archive.c lives with the CLI, outside the libraries this generic fuzz
 * rule links, and its zstd layer needs libzstd, which the rule does not
 * link either; so the file is compiled into this target here, tar layer
 * only (AB_ARCHIVE_TAR_ONLY). The zstd layer is libzstd's own parser; the
 * unit tests (tests/unit/test_archive.c) cover ours around it, truncation
 * and corruption at every offset included.
 */
#define AB_ARCHIVE_TAR_ONLY 1
#include "src/cli/archive.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* a copy of exactly the input, so ASan sees any overread */
	size_t n = size - 1;
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, data + 1, n);
	struct mem m = {copy, n, 0, data[0]};
	struct ab_archive_reader *r = ab_archive_reader_new(mem_src, &m, AB_ARCHIVE_RAW);
	struct ab_archive_entry e;
	int rc;
	char *buf = malloc(4096);
	while ((rc = ab_archive_next(r, &e)) > 0) {
		if (!ab_archive_name_ok(e.name))
			abort(); /* the reader promised a safe name */
		bool manifest = !strcmp(e.name, AB_ARCHIVE_MANIFEST) && e.size <= (1u << 20);
		struct ab_buf b = {0};
		ssize_t k;
		uint64_t got = 0;
		while ((k = ab_archive_read(r, buf, 4096)) > 0) {
			got += (uint64_t)k;
			if (manifest)
				ab_buf_append(&b, buf, (size_t)k);
		}
		if (k == 0 && got != e.size)
			abort(); /* a member ends exactly at its size */
		if (k == 0 && manifest) {
			char err[256];
			json_t *j = ab_archive_manifest_parse(b.data ? b.data : "", b.len, err,
			                                      sizeof(err));
			if (!j && !err[0])
				abort();
			json_decref(j);
		}
		ab_buf_free(&b);
		if (k < 0)
			break;
	}
	if (rc < 0 || ab_archive_next(r, &e) < 0) {
		if (!ab_archive_error(r)[0] || ab_archive_next(r, &e) >= 0)
			abort(); /* errors are sticky and explained */
	}
	free(buf);
	ab_archive_reader_free(r);
	free(copy);
	return 0;
}
