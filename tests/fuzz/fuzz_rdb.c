/*
 * fuzz_rdb.c - the module's RDB loaders (vector set and text index) on
 * arbitrary bytes. The first byte picks the type; the rest is what the
 * loader reads through the stand-in IO of rm_fakeio.c. A load either fails
 * cleanly or gives a value that saves again and frees without a leak.
 */
#include <stddef.h>
#include <stdint.h>

#include "module.h"
#include "rm_fakeio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	ab_fakeio_install();
	struct ab_fakeio in = {.in = data + 1, .len = size - 1};
	bool text = data[0] & 1;
	void *v = text ? ab_rm_text_rdb_load((RedisModuleIO *)(void *)&in, 1)
		       : ab_rm_vset_rdb_load((RedisModuleIO *)(void *)&in, 1);
	if (!v)
		return 0;
	struct ab_fakeio out = {0};
	ab_buf_init(&out.out);
	if (text) {
		ab_rm_text_rdb_save((RedisModuleIO *)(void *)&out, v);
		ab_rm_text_free(v);
	} else {
		ab_rm_vset_rdb_save((RedisModuleIO *)(void *)&out, v);
		ab_rm_vset_free(v);
	}
	ab_buf_free(&out.out);
	return 0;
}
