/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (gguf.c): parses the
 * input as a GGUF file; when it parses, reads every key through the typed
 * getters, touches every tensor's first and last byte (which must lie in
 * the input), and copies the whole file through the writer, whose output
 * must parse again with the same keys and tensors.
 */
#include "common.h"
#include "gguf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ab_gguf *g = NULL;
	char err[256];
	if (ab_gguf_parse(data, size, &g, err, sizeof(err)) != 0)
		return 0;
	volatile uint8_t sink = 0;
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct ab_gguf_kv *kv = &g->kv[i];
		char *key = ab_xstrndup(kv->key.p, (size_t)kv->key.n);
		uint32_t u;
		int64_t v;
		float f;
		bool b;
		char *s = NULL;
		(void)ab_gguf_get_u32(g, key, &u);
		(void)ab_gguf_get_i64(g, key, &v);
		(void)ab_gguf_get_f32(g, key, &f);
		(void)ab_gguf_get_bool(g, key, &b);
		if (ab_gguf_get_str(g, key, &s) == 0)
			free(s);
		if (kv->type == AB_GGUF_ARRAY && kv->v.arr.strs && kv->v.arr.n > 0) {
			const struct ab_gguf_str *last = &kv->v.arr.strs[kv->v.arr.n - 1];
			if (last->n)
				sink ^= (uint8_t)last->p[last->n - 1];
		}
		free(key);
	}
	struct ab_gguf_writer *w = ab_gguf_writer_new();
	for (uint64_t i = 0; i < g->n_kv; i++)
		ab_gguf_set_kv(w, &g->kv[i]);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &g->tensors[i];
		if (t->n_bytes) {
			const uint8_t *p = t->data;
			sink ^= p[0];
			sink ^= p[t->n_bytes - 1];
		}
		if (ab_gguf_tensor(g, t->name) != t)
			abort();
		if (ab_gguf_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data,
				       (size_t)t->n_bytes) != 0)
			abort();
	}
	void *buf = NULL;
	size_t len = 0;
	ab_gguf_write_mem(w, &buf, &len);
	struct ab_gguf *g2 = NULL;
	if (ab_gguf_parse(buf, len, &g2, err, sizeof(err)) != 0)
		abort();
	bool had_align = ab_gguf_find(g, "general.alignment") != NULL;
	if (g2->n_tensors != g->n_tensors || g2->n_kv + had_align != g->n_kv)
		abort();
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (g2->tensors[i].n_bytes != g->tensors[i].n_bytes ||
		    memcmp(g2->tensors[i].data, g->tensors[i].data, (size_t)g->tensors[i].n_bytes))
			abort();
	ab_gguf_free(g2);
	free(buf);
	ab_gguf_writer_free(w);
	ab_gguf_free(g);
	(void)sink;
	return 0;
}
