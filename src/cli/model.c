/*
 * model.c - `autobot model`: info, convert and synth.
 *
 * info prints what a GGUF file holds without loading the model: every
 * metadata key (arrays summarised as type[n] and their first elements),
 * every tensor with its type, shape and size, totals per type, the
 * parameter count, the file type, and the memory a run needs: the weights
 * plus a float32 KV cache for the context length (2 * n_layer * n_ctx *
 * kv_dim * 4 bytes). --json gives the same as one object.
 *
 * convert turns a llama2.c checkpoint and its tokenizer.bin into a GGUF
 * file (llama2c.c does the work; see there for the mapping).
 *
 * synth writes a llama-architecture model of any shape with random
 * weights, for tests and benchmarks of sizes we have no real model for:
 * matrices N(0, 1/sqrt(fan_in)) so activations stay O(1) through the
 * layers, norm weights near 1, quantised to the requested type (quant.c)
 * wherever ne[0] is a multiple of the type's block, F32 elsewhere. The
 * vocabulary comes from a vocab-only GGUF (every tokenizer.* key is
 * copied), a llama2.c tokenizer.bin, or, without --tokenizer, a made-up
 * SentencePiece-style one (<unk>, <s>, </s>, 256 byte tokens, fillers).
 * The generator is seeded, so a given command line always writes the
 * same file.
 */
#include "cli.h"
#include "catalog.h"

#include "common.h"
#include "llm/gguf.h"
#include "llm/llama2c.h"
#include "llm/quant.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- shared ---- */

static const char *ftype_name(uint32_t ft)
{
	switch (ft) {
	case 0: return "ALL_F32";
	case 1: return "MOSTLY_F16";
	case 2: return "MOSTLY_Q4_0";
	case 3: return "MOSTLY_Q4_1";
	case 7: return "MOSTLY_Q8_0";
	case 8: return "MOSTLY_Q5_0";
	case 9: return "MOSTLY_Q5_1";
	case 10: return "MOSTLY_Q2_K";
	case 11: return "MOSTLY_Q3_K_S";
	case 12: return "MOSTLY_Q3_K_M";
	case 13: return "MOSTLY_Q3_K_L";
	case 14: return "MOSTLY_Q4_K_S";
	case 15: return "MOSTLY_Q4_K_M";
	case 16: return "MOSTLY_Q5_K_S";
	case 17: return "MOSTLY_Q5_K_M";
	case 18: return "MOSTLY_Q6_K";
	case 32: return "MOSTLY_BF16";
	default: return "unknown";
	}
}

static const char *type_name(uint32_t t)
{
	const char *n = ab_gguf_type_name(t);
	return n ? n : "?";
}

static void human(uint64_t n, char *buf, size_t size)
{
	if (n >= (1ull << 30))
		snprintf(buf, size, "%.2f GiB", (double)n / (double)(1ull << 30));
	else if (n >= (1ull << 20))
		snprintf(buf, size, "%.2f MiB", (double)n / (double)(1ull << 20));
	else if (n >= 1024)
		snprintf(buf, size, "%.1f KiB", (double)n / 1024.0);
	else
		snprintf(buf, size, "%llu B", (unsigned long long)n);
}

/* ---- info ---- */

static void usage_info(FILE *f)
{
	fprintf(f, "usage: autobot model info FILE.gguf [--json] [--ctx N]\n"
		   "\n"
		   "Prints the metadata keys and values (arrays as type[n] with the first\n"
		   "elements), the tensors (name, type, shape, bytes), totals per type, the\n"
		   "parameter count, the file type and the memory a run needs: weights plus\n"
		   "a float32 KV cache of 2 * n_layer * n_ctx * kv_dim * 4 bytes.\n"
		   "\noptions:\n"
		   "  --json             one JSON object instead of text\n"
		   "  --ctx N            context length for the KV cache estimate\n"
		   "                     (default: the model's context_length)\n"
		   "  -h, --help         this text\n");
}

/* Appends a bounded, printable rendering of a string to b. */
static void put_text(struct ab_buf *b, const char *p, size_t n, size_t max)
{
	ab_buf_putc(b, '"');
	for (size_t i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			ab_buf_printf(b, "\\%c", c);
		else if (c == '\n')
			ab_buf_puts(b, "\\n");
		else if (c < 0x20 || c == 0x7f)
			ab_buf_printf(b, "\\x%02x", c);
		else
			ab_buf_putc(b, (char)c);
	}
	ab_buf_putc(b, '"');
	if (n > max)
		ab_buf_printf(b, "... (%zu bytes)", n);
}

static size_t vsize(uint32_t t)
{
	switch (t) {
	case AB_GGUF_UINT8: case AB_GGUF_INT8: case AB_GGUF_BOOL: return 1;
	case AB_GGUF_UINT16: case AB_GGUF_INT16: return 2;
	case AB_GGUF_UINT32: case AB_GGUF_INT32: case AB_GGUF_FLOAT32: return 4;
	case AB_GGUF_UINT64: case AB_GGUF_INT64: case AB_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

/* Element i of a fixed-size array as a double / integer. */
static void arr_elem(uint32_t t, const uint8_t *p, bool *is_float, double *f, int64_t *i,
		     uint64_t *u)
{
	*is_float = false;
	*i = 0;
	*u = 0;
	*f = 0;
	switch (t) {
	case AB_GGUF_UINT8: case AB_GGUF_BOOL: *u = p[0]; break;
	case AB_GGUF_INT8: *i = (int8_t)p[0]; break;
	case AB_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *u = v; break; }
	case AB_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *i = v; break; }
	case AB_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *u = v; break; }
	case AB_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *i = v; break; }
	case AB_GGUF_UINT64: memcpy(u, p, 8); break;
	case AB_GGUF_INT64: memcpy(i, p, 8); break;
	case AB_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); *f = v; *is_float = true; break; }
	case AB_GGUF_FLOAT64: memcpy(f, p, 8); *is_float = true; break;
	default: break;
	}
}

static bool is_signed_t(uint32_t t)
{
	return t == AB_GGUF_INT8 || t == AB_GGUF_INT16 || t == AB_GGUF_INT32 || t == AB_GGUF_INT64;
}

static void format_value(struct ab_buf *b, const struct ab_gguf_kv *kv)
{
	switch (kv->type) {
	case AB_GGUF_STRING:
		put_text(b, kv->v.s.p, (size_t)kv->v.s.n, 72);
		return;
	case AB_GGUF_BOOL:
		ab_buf_puts(b, kv->v.u ? "true" : "false");
		return;
	case AB_GGUF_FLOAT32:
	case AB_GGUF_FLOAT64:
		ab_buf_printf(b, "%.9g", kv->v.f);
		return;
	case AB_GGUF_ARRAY: {
		const uint32_t et = kv->v.arr.type;
		uint64_t n = kv->v.arr.n;
		ab_buf_printf(b, "%s[%llu]", ab_gguf_vtype_name(et), (unsigned long long)n);
		uint64_t show = n < 5 ? n : 5;
		if (et == AB_GGUF_ARRAY || show == 0)
			return;
		ab_buf_puts(b, " = [");
		for (uint64_t i = 0; i < show; i++) {
			if (i)
				ab_buf_puts(b, ", ");
			if (et == AB_GGUF_STRING) {
				const struct ab_gguf_str *s = &kv->v.arr.strs[i];
				put_text(b, s->p, (size_t)s->n, 24);
				continue;
			}
			bool fl;
			double f;
			int64_t iv;
			uint64_t uv;
			arr_elem(et, kv->v.arr.data + i * vsize(et), &fl, &f, &iv, &uv);
			if (fl)
				ab_buf_printf(b, "%.6g", f);
			else if (is_signed_t(et))
				ab_buf_printf(b, "%lld", (long long)iv);
			else
				ab_buf_printf(b, "%llu", (unsigned long long)uv);
		}
		ab_buf_puts(b, n > show ? ", ...]" : "]");
		return;
	}
	default:
		if (is_signed_t(kv->type))
			ab_buf_printf(b, "%lld", (long long)kv->v.i);
		else
			ab_buf_printf(b, "%llu", (unsigned long long)kv->v.u);
	}
}

/* A JSON string from bytes that may not be UTF-8 (invalid bytes become '?'). */
static json_t *jstr(const char *p, size_t n)
{
	json_t *j = json_stringn(p, n);
	if (j)
		return j;
	char *c = ab_xstrndup(p, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)c[i] >= 0x80 || c[i] == '\0')
			c[i] = '?';
	j = json_stringn(c, n);
	free(c);
	return j ? j : json_string("");
}

static json_t *json_value(const struct ab_gguf_kv *kv)
{
	switch (kv->type) {
	case AB_GGUF_STRING:
		return jstr(kv->v.s.p, (size_t)kv->v.s.n);
	case AB_GGUF_BOOL:
		return json_boolean(kv->v.u);
	case AB_GGUF_FLOAT32:
	case AB_GGUF_FLOAT64:
		return json_real(kv->v.f);
	case AB_GGUF_ARRAY: {
		const uint32_t et = kv->v.arr.type;
		json_t *head = json_array();
		uint64_t show = kv->v.arr.n < 8 ? kv->v.arr.n : 8;
		for (uint64_t i = 0; i < show && et != AB_GGUF_ARRAY; i++) {
			if (et == AB_GGUF_STRING) {
				const struct ab_gguf_str *s = &kv->v.arr.strs[i];
				json_array_append_new(head, jstr(s->p, (size_t)s->n));
				continue;
			}
			bool fl;
			double f;
			int64_t iv;
			uint64_t uv;
			arr_elem(et, kv->v.arr.data + i * vsize(et), &fl, &f, &iv, &uv);
			json_array_append_new(head, fl ? json_real(f)
						       : is_signed_t(et) ? json_integer(iv)
									 : json_integer((json_int_t)uv));
		}
		return json_pack("{s:s,s:s,s:I,s:o}", "type", "array", "element_type",
				 ab_gguf_vtype_name(et), "n", (json_int_t)kv->v.arr.n, "head", head);
	}
	default:
		if (is_signed_t(kv->type))
			return json_integer(kv->v.i);
		return json_integer((json_int_t)kv->v.u);
	}
}

struct type_total {
	uint64_t tensors, params, bytes;
};

struct summary {
	char arch[64];
	char name[128];
	uint64_t n_params, weight_bytes, kv_bytes;
	int64_t n_ctx, n_layer, kv_dim;
	uint32_t file_type;
	bool file_type_known;
	struct type_total by_type[64];
};

static void get_arch_u32(const struct ab_gguf *g, const char *arch, const char *suffix,
			 int64_t *out)
{
	char key[160];
	uint32_t v;
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	*out = ab_gguf_get_u32(g, key, &v) == 0 ? v : 0;
}

static void summarise(const struct ab_gguf *g, int64_t ctx_override, struct summary *s)
{
	memset(s, 0, sizeof(*s));
	char *str = NULL;
	ab_strlcpy(s->arch, "?", sizeof(s->arch));
	if (ab_gguf_get_str(g, "general.architecture", &str) == 0) {
		ab_strlcpy(s->arch, str, sizeof(s->arch));
		free(str);
	}
	if (ab_gguf_get_str(g, "general.name", &str) == 0) {
		ab_strlcpy(s->name, str, sizeof(s->name));
		free(str);
	}
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &g->tensors[i];
		uint64_t n = (uint64_t)ab_gguf_tensor_nelements(t);
		s->n_params += n;
		s->weight_bytes += t->n_bytes;
		if (t->type < AB_ARRAY_LEN(s->by_type)) {
			s->by_type[t->type].tensors++;
			s->by_type[t->type].params += n;
			s->by_type[t->type].bytes += t->n_bytes;
		}
	}
	uint32_t ft;
	if (ab_gguf_get_u32(g, "general.file_type", &ft) == 0) {
		s->file_type = ft;
		s->file_type_known = true;
	}
	int64_t embd, heads, heads_kv;
	get_arch_u32(g, s->arch, "block_count", &s->n_layer);
	get_arch_u32(g, s->arch, "embedding_length", &embd);
	get_arch_u32(g, s->arch, "attention.head_count", &heads);
	get_arch_u32(g, s->arch, "attention.head_count_kv", &heads_kv);
	get_arch_u32(g, s->arch, "context_length", &s->n_ctx);
	if (heads_kv == 0)
		heads_kv = heads;
	s->kv_dim = heads ? embd * heads_kv / heads : 0;
	if (ctx_override > 0)
		s->n_ctx = ctx_override;
	s->kv_bytes = 2ull * (uint64_t)s->n_layer * (uint64_t)s->n_ctx * (uint64_t)s->kv_dim * 4ull;
}

/* The type holding most of the weight bytes (for files without general.file_type). */
static uint32_t dominant_type(const struct summary *s)
{
	uint32_t best = 0;
	for (uint32_t t = 0; t < AB_ARRAY_LEN(s->by_type); t++)
		if (s->by_type[t].bytes > s->by_type[best].bytes)
			best = t;
	return best;
}

static void shape_text(const struct ab_gguf_tensor *t, char *buf, size_t size)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, size - o, "[");
	for (uint32_t d = 0; d < t->n_dims && o < size; d++)
		o += (size_t)snprintf(buf + o, size - o, "%s%lld", d ? ", " : "",
				      (long long)t->ne[d]);
	if (o < size)
		snprintf(buf + o, size - o, "]");
}

static void print_info_text(const char *path, const struct ab_gguf *g, const struct summary *s)
{
	char h1[32], h2[32], h3[32];
	printf("file:          %s\n", path);
	printf("format:        GGUF v%u, %zu bytes, alignment %llu, data at byte %llu\n",
	       g->version, g->size, (unsigned long long)g->alignment,
	       (unsigned long long)g->data_offset);
	printf("architecture:  %s\n", s->arch);
	if (s->name[0])
		printf("name:          %s\n", s->name);
	if (s->file_type_known)
		printf("file type:     %s (%u)\n", ftype_name(s->file_type), s->file_type);
	else if (g->n_tensors)
		printf("file type:     (not recorded; mostly %s)\n", type_name(dominant_type(s)));
	printf("parameters:    %llu\n", (unsigned long long)s->n_params);
	human(s->weight_bytes, h1, sizeof(h1));
	human(s->kv_bytes, h2, sizeof(h2));
	human(s->weight_bytes + s->kv_bytes, h3, sizeof(h3));
	printf("weights:       %s (%llu bytes)\n", h1, (unsigned long long)s->weight_bytes);
	printf("kv cache:      %s (n_ctx %lld x %lld layers x kv_dim %lld, f32 K and V)\n", h2,
	       (long long)s->n_ctx, (long long)s->n_layer, (long long)s->kv_dim);
	printf("memory needed: %s\n", h3);

	printf("\nmetadata (%llu keys):\n", (unsigned long long)g->n_kv);
	struct ab_buf b = {0};
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct ab_gguf_kv *kv = &g->kv[i];
		ab_buf_reset(&b);
		format_value(&b, kv);
		int kn = kv->key.n > 200 ? 200 : (int)kv->key.n;
		printf("  %-44.*s %-8s %s\n", kn, kv->key.p,
		       kv->type == AB_GGUF_ARRAY ? "array" : ab_gguf_vtype_name(kv->type),
		       b.data ? b.data : "");
	}
	ab_buf_free(&b);

	printf("\ntensors (%llu):\n", (unsigned long long)g->n_tensors);
	if (g->n_tensors)
		printf("  %-36s %-6s %-20s %12s\n", "NAME", "TYPE", "SHAPE", "BYTES");
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &g->tensors[i];
		char shape[96];
		shape_text(t, shape, sizeof(shape));
		printf("  %-36s %-6s %-20s %12llu\n", t->name, type_name(t->type), shape,
		       (unsigned long long)t->n_bytes);
	}
	if (g->n_tensors) {
		printf("\ntotals per type:\n");
		for (uint32_t t = 0; t < AB_ARRAY_LEN(s->by_type); t++) {
			const struct type_total *tt = &s->by_type[t];
			if (!tt->tensors)
				continue;
			human(tt->bytes, h1, sizeof(h1));
			printf("  %-6s %5llu tensors %12llu params %12s\n", type_name(t),
			       (unsigned long long)tt->tensors, (unsigned long long)tt->params, h1);
		}
	}
}

static void print_info_json(const char *path, const struct ab_gguf *g, const struct summary *s)
{
	json_t *meta = json_object();
	for (uint64_t i = 0; i < g->n_kv; i++) {
		char *k = ab_xstrndup(g->kv[i].key.p, (size_t)g->kv[i].key.n);
		json_t *v = json_value(&g->kv[i]);
		json_t *jk = jstr(k, strlen(k));
		json_object_set_new(meta, json_string_value(jk), v);
		json_decref(jk);
		free(k);
	}
	json_t *tensors = json_array();
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &g->tensors[i];
		json_t *ne = json_array();
		for (uint32_t d = 0; d < t->n_dims; d++)
			json_array_append_new(ne, json_integer(t->ne[d]));
		json_array_append_new(tensors,
				      json_pack("{s:o,s:s,s:o,s:I,s:I}", "name",
						jstr(t->name, strlen(t->name)), "type",
						type_name(t->type), "ne", ne, "offset",
						(json_int_t)(g->data_offset + t->offset), "n_bytes",
						(json_int_t)t->n_bytes));
	}
	json_t *types = json_object();
	for (uint32_t t = 0; t < AB_ARRAY_LEN(s->by_type); t++) {
		const struct type_total *tt = &s->by_type[t];
		if (tt->tensors)
			json_object_set_new(types, type_name(t),
					    json_pack("{s:I,s:I,s:I}", "tensors",
						      (json_int_t)tt->tensors, "params",
						      (json_int_t)tt->params, "bytes",
						      (json_int_t)tt->bytes));
	}
	uint32_t ft = s->file_type_known ? s->file_type : 0;
	json_t *j = json_pack(
		"{s:s,s:I,s:i,s:I,s:I,s:s,s:s,s:o,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "file",
		path, "bytes", (json_int_t)g->size, "version", (int)g->version, "alignment",
		(json_int_t)g->alignment, "data_offset", (json_int_t)g->data_offset, "architecture",
		s->arch, "name", s->name, "file_type",
		s->file_type_known ? json_integer(ft) : json_null(), "file_type_name",
		s->file_type_known ? ftype_name(ft) : type_name(dominant_type(s)), "n_params",
		(json_int_t)s->n_params, "weights_bytes", (json_int_t)s->weight_bytes, "n_ctx",
		(json_int_t)s->n_ctx, "n_layer", (json_int_t)s->n_layer, "kv_dim",
		(json_int_t)s->kv_dim, "kv_cache_bytes", (json_int_t)s->kv_bytes, "memory_bytes",
		(json_int_t)(s->weight_bytes + s->kv_bytes), "metadata", meta, "tensors", tensors,
		"types", types);
	char *out = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
	printf("%s\n", out ? out : "{}");
	free(out);
	json_decref(j);
}

static int cmd_info(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	bool json = false;
	const char *ctx_s = NULL;
	const struct ab_cli_opt opts[] = {
		{"--json", &json, NULL},
		{"--ctx", NULL, &ctx_s},
		{NULL, NULL, NULL},
	};
	const char *pos[1];
	size_t n_pos = 0;
	int pr = ab_cli_parse(argc, argv, "model info", &co, opts, pos, 1, &n_pos, usage_info);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	if (n_pos != 1) {
		fprintf(stderr, "autobot model info: which file?\n");
		usage_info(stderr);
		return AB_EXIT_USAGE;
	}
	long long ctx = 0;
	if (ctx_s && ab_cli_int("model info", "--ctx", ctx_s, 1, 1 << 24, &ctx) < 0)
		return AB_EXIT_USAGE;
	struct ab_gguf *g = NULL;
	char err[512];
	if (ab_gguf_open(pos[0], &g, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot model info: %s\n", err);
		return 1;
	}
	struct summary s;
	summarise(g, ctx, &s);
	if (json)
		print_info_json(pos[0], g, &s);
	else
		print_info_text(pos[0], g, &s);
	ab_gguf_free(g);
	return 0;
}

/* ---- convert ---- */

static void usage_convert(FILE *f)
{
	fprintf(f, "usage: autobot model convert IN.bin --tokenizer TOK.bin -o OUT.gguf\n"
		   "\n"
		   "Converts a llama2.c checkpoint and its tokenizer.bin into a GGUF file\n"
		   "(llama architecture, F32 tensors named as llama.cpp names them).\n"
		   "\noptions:\n"
		   "  --tokenizer TOK    the llama2.c tokenizer.bin (required)\n"
		   "  -o, --output OUT   the GGUF file to write (required)\n"
		   "  -h, --help         this text\n");
}

static int write_out(const char *cmd, struct ab_gguf_writer *w, const char *out)
{
	char err[512];
	int rc = ab_gguf_write(w, out, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "autobot %s: %s\n", cmd, err);
		return 1;
	}
	struct stat st;
	long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
	printf("wrote %s (%zu tensors, %zu keys, %lld bytes)\n", out, ab_gguf_writer_n_tensors(w),
	       ab_gguf_writer_n_kv(w), size);
	return 0;
}

static int cmd_convert(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	const char *tok = NULL, *out = NULL, *out2 = NULL;
	const struct ab_cli_opt opts[] = {
		{"--tokenizer", NULL, &tok},
		{"-o", NULL, &out},
		{"--output", NULL, &out2},
		{NULL, NULL, NULL},
	};
	const char *pos[1];
	size_t n_pos = 0;
	int pr = ab_cli_parse(argc, argv, "model convert", &co, opts, pos, 1, &n_pos,
			      usage_convert);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	if (out2)
		out = out2;
	if (n_pos != 1 || !tok || !out) {
		fprintf(stderr, "autobot model convert: needs IN.bin, --tokenizer and -o\n");
		usage_convert(stderr);
		return AB_EXIT_USAGE;
	}
	struct ab_gguf_writer *w = NULL;
	char err[512];
	if (ab_llama2c_to_gguf(pos[0], tok, &w, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot model convert: %s\n", err);
		return 1;
	}
	int code = write_out("model convert", w, out);
	ab_gguf_writer_free(w);
	return code;
}

/* ---- synth ---- */

static void usage_synth(FILE *f)
{
	fprintf(f,
		"usage: autobot model synth --dim D --layers L --heads H --kv-heads K --ffn F\n"
		"                           --vocab V --type TYPE [--ctx N] [--seed S]\n"
		"                           [--tokenizer VOCAB.gguf|tokenizer.bin] [--tied] -o OUT.gguf\n"
		"\n"
		"Writes a llama-architecture model with random weights of the given shape:\n"
		"matrices N(0, 1/sqrt(fan_in)), norms near 1, quantised to TYPE wherever a\n"
		"row is a multiple of the type's block (F32 otherwise, and for norms).\n"
		"\noptions:\n"
		"  --dim D            embedding length (a multiple of --heads)\n"
		"  --layers L         blocks\n"
		"  --heads H          attention heads\n"
		"  --kv-heads K       key/value heads (divides H; default H)\n"
		"  --ffn F            feed-forward length\n"
		"  --vocab V          vocabulary size (must equal the tokenizer's)\n"
		"  --type TYPE        q4_0, q8_0, q4_k, q6_k, f16, bf16 or f32\n"
		"  --ctx N            context length (default 2048)\n"
		"  --seed S           random seed (default 1)\n"
		"  --tokenizer FILE   copy the vocabulary: every tokenizer.* key of a GGUF\n"
		"                     (e.g. a vocab-only one), or a llama2.c tokenizer.bin;\n"
		"                     without it a made-up SentencePiece-style vocabulary\n"
		"  --tied             no output.weight (the classifier uses token_embd)\n"
		"  -o, --output OUT   the GGUF file to write\n"
		"  -h, --help         this text\n");
}

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	/* splitmix64 */
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unif(struct rng *r)
{
	return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(struct rng *r)
{
	double u1 = rng_unif(r), u2 = rng_unif(r);
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint32_t ftype_for(uint32_t type)
{
	switch (type) {
	case AB_TYPE_F32: return 0;
	case AB_TYPE_F16: return 1;
	case AB_TYPE_Q4_0: return 2;
	case AB_TYPE_Q8_0: return 7;
	case AB_TYPE_Q4_K: return 14;
	case AB_TYPE_Q6_K: return 18;
	case AB_TYPE_BF16: return 32;
	default: return 0;
	}
}

struct synth {
	struct ab_gguf_writer *w;
	struct rng rng;
	uint32_t type;
	float *f;        /* scratch: the largest tensor in float32 */
	void *q;         /* scratch: the same, converted */
};

/* Adds a random matrix (rows 0: a norm vector near 1). */
static int synth_tensor(struct synth *s, const char *name, int64_t cols, int64_t rows)
{
	int64_t n = rows ? rows * cols : cols;
	if (!rows) {
		for (int64_t i = 0; i < n; i++)
			s->f[i] = (float)(1.0 + 0.02 * rng_normal(&s->rng));
		int64_t ne[1] = {cols};
		return ab_gguf_add_tensor(s->w, name, AB_TYPE_F32, 1, ne, s->f, (size_t)n * 4);
	}
	double sd = 1.0 / sqrt((double)cols);
	for (int64_t i = 0; i < n; i++)
		s->f[i] = (float)(sd * rng_normal(&s->rng));
	int64_t ne[2] = {cols, rows};
	uint32_t type = s->type;
	uint64_t bytes;
	if (ab_gguf_nbytes(type, 2, ne, &bytes) < 0)
		type = AB_TYPE_F32; /* row not a multiple of the block */
	if (type == AB_TYPE_F32)
		return ab_gguf_add_tensor(s->w, name, type, 2, ne, s->f, (size_t)n * 4);
	int rc = ab_quantize(type, s->f, s->q, n);
	if (rc < 0)
		return rc;
	return ab_gguf_add_tensor(s->w, name, type, 2, ne, s->q, (size_t)bytes);
}

/* A made-up SentencePiece-style vocabulary of n tokens. */
static void synth_vocab(struct ab_gguf_writer *w, int n)
{
	char **texts = ab_xcalloc((size_t)n, sizeof(*texts));
	float *scores = ab_xcalloc((size_t)n, sizeof(*scores));
	int32_t *types = ab_xcalloc((size_t)n, sizeof(*types));
	for (int i = 0; i < n; i++) {
		if (i == 0) {
			texts[i] = ab_xstrdup("<unk>");
			types[i] = 2;
		} else if (i == 1 || i == 2) {
			texts[i] = ab_xstrdup(i == 1 ? "<s>" : "</s>");
			types[i] = 3;
		} else if (i < 259) {
			texts[i] = ab_xasprintf("<0x%02X>", i - 3);
			types[i] = 6;
		} else {
			texts[i] = ab_xasprintf("\xe2\x96\x81t%d", i);
			types[i] = 1;
			scores[i] = (float)-(i - 259);
		}
	}
	ab_gguf_set_str(w, "tokenizer.ggml.model", "llama");
	ab_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, (size_t)n);
	ab_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
	ab_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
	ab_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	ab_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	ab_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
	for (int i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	free(scores);
	free(types);
}

/* Copies the vocabulary of path into w; returns its size or -1 after
 * printing why. */
static long long copy_vocab(struct ab_gguf_writer *w, const char *path)
{
	char err[512];
	FILE *f = fopen(path, "rb");
	char magic[4] = {0};
	if (!f) {
		fprintf(stderr, "autobot model synth: %s: cannot open\n", path);
		return -1;
	}
	size_t got = fread(magic, 1, 4, f);
	fclose(f);
	if (got == 4 && !memcmp(magic, "GGUF", 4)) {
		struct ab_gguf *g = NULL;
		if (ab_gguf_open(path, &g, err, sizeof(err)) < 0) {
			fprintf(stderr, "autobot model synth: %s\n", err);
			return -1;
		}
		const struct ab_gguf_kv *toks = ab_gguf_find(g, "tokenizer.ggml.tokens");
		if (!toks || toks->type != AB_GGUF_ARRAY || toks->v.arr.type != AB_GGUF_STRING) {
			fprintf(stderr, "autobot model synth: %s has no tokenizer.ggml.tokens\n",
				path);
			ab_gguf_free(g);
			return -1;
		}
		long long n = (long long)toks->v.arr.n;
		for (uint64_t i = 0; i < g->n_kv; i++)
			if (g->kv[i].key.n > 10 && !memcmp(g->kv[i].key.p, "tokenizer.", 10))
				ab_gguf_set_kv(w, &g->kv[i]);
		ab_gguf_free(g);
		return n;
	}
	int n = ab_llama2c_add_vocab(w, path, 0, err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "autobot model synth: %s\n", err);
		return -1;
	}
	return n;
}

static int cmd_synth(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	const char *dim_s = NULL, *layers_s = NULL, *heads_s = NULL, *kv_s = NULL, *ffn_s = NULL,
		   *vocab_s = NULL, *type_s = NULL, *ctx_s = NULL, *seed_s = NULL, *tok = NULL,
		   *out = NULL, *out2 = NULL;
	bool tied = false;
	const struct ab_cli_opt opts[] = {
		{"--dim", NULL, &dim_s},     {"--layers", NULL, &layers_s},
		{"--heads", NULL, &heads_s}, {"--kv-heads", NULL, &kv_s},
		{"--ffn", NULL, &ffn_s},     {"--vocab", NULL, &vocab_s},
		{"--type", NULL, &type_s},   {"--ctx", NULL, &ctx_s},
		{"--seed", NULL, &seed_s},   {"--tokenizer", NULL, &tok},
		{"--tied", &tied, NULL},     {"-o", NULL, &out},
		{"--output", NULL, &out2},   {NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "model synth", &co, opts, NULL, 0, NULL, usage_synth);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	if (out2)
		out = out2;
	if (!dim_s || !layers_s || !heads_s || !ffn_s || !type_s || !out ||
	    (!vocab_s && !tok)) {
		fprintf(stderr, "autobot model synth: --dim, --layers, --heads, --ffn, --vocab (or "
				"--tokenizer), --type and -o are required\n");
		usage_synth(stderr);
		return AB_EXIT_USAGE;
	}
	const char *c = "model synth";
	long long dim, layers, heads, kv_heads, ffn, vocab = 0, ctx = 2048, seed = 1;
	if (ab_cli_int(c, "--dim", dim_s, 2, 1 << 16, &dim) < 0 ||
	    ab_cli_int(c, "--layers", layers_s, 1, 1024, &layers) < 0 ||
	    ab_cli_int(c, "--heads", heads_s, 1, 1024, &heads) < 0 ||
	    ab_cli_int(c, "--ffn", ffn_s, 1, 1 << 18, &ffn) < 0 ||
	    (kv_s && ab_cli_int(c, "--kv-heads", kv_s, 1, 1024, &kv_heads) < 0) ||
	    (vocab_s && ab_cli_int(c, "--vocab", vocab_s, 1, 1 << 22, &vocab) < 0) ||
	    (ctx_s && ab_cli_int(c, "--ctx", ctx_s, 1, 1 << 24, &ctx) < 0) ||
	    (seed_s && ab_cli_int(c, "--seed", seed_s, 0, INT64_MAX, &seed) < 0))
		return AB_EXIT_USAGE;
	if (!kv_s)
		kv_heads = heads;
	if (dim % heads != 0 || heads % kv_heads != 0 || (dim / heads) % 2 != 0) {
		fprintf(stderr,
			"autobot model synth: --dim %lld must be a multiple of --heads %lld with an "
			"even head size, and --kv-heads %lld must divide --heads\n",
			dim, heads, kv_heads);
		return AB_EXIT_USAGE;
	}
	int type = ab_type_parse(type_s);
	static const int allowed[] = {AB_TYPE_F32, AB_TYPE_F16, AB_TYPE_BF16, AB_TYPE_Q4_0,
				      AB_TYPE_Q8_0, AB_TYPE_Q4_K, AB_TYPE_Q6_K};
	bool ok = false;
	for (size_t i = 0; i < AB_ARRAY_LEN(allowed); i++)
		ok = ok || type == allowed[i];
	if (!ok) {
		fprintf(stderr, "autobot model synth: --type %s: expected q4_0, q8_0, q4_k, q6_k, "
				"f16, bf16 or f32\n",
			type_s);
		return AB_EXIT_USAGE;
	}

	struct synth s = {.w = ab_gguf_writer_new(), .rng = {(uint64_t)seed}, .type = (uint32_t)type};
	int code = 1;
	if (tok) {
		long long n = copy_vocab(s.w, tok);
		if (n < 0)
			goto out;
		if (vocab_s && n != vocab) {
			fprintf(stderr,
				"autobot model synth: --vocab %lld does not match the tokenizer %s, "
				"which has %lld tokens\n",
				vocab, tok, n);
			code = AB_EXIT_USAGE;
			goto out;
		}
		vocab = n;
	} else {
		synth_vocab(s.w, (int)vocab);
	}
	int64_t head = dim / heads, kv_dim = head * kv_heads;
	char *name = ab_xasprintf("synth-d%lld-l%lld-%s", dim, layers, type_s);
	ab_gguf_set_str(s.w, "general.architecture", "llama");
	ab_gguf_set_str(s.w, "general.name", name);
	free(name);
	ab_gguf_set_u32(s.w, "general.file_type", ftype_for((uint32_t)type));
	ab_gguf_set_u32(s.w, "llama.context_length", (uint32_t)ctx);
	ab_gguf_set_u32(s.w, "llama.embedding_length", (uint32_t)dim);
	ab_gguf_set_u32(s.w, "llama.block_count", (uint32_t)layers);
	ab_gguf_set_u32(s.w, "llama.feed_forward_length", (uint32_t)ffn);
	ab_gguf_set_u32(s.w, "llama.attention.head_count", (uint32_t)heads);
	ab_gguf_set_u32(s.w, "llama.attention.head_count_kv", (uint32_t)kv_heads);
	ab_gguf_set_u32(s.w, "llama.rope.dimension_count", (uint32_t)head);
	ab_gguf_set_f32(s.w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	ab_gguf_set_f32(s.w, "llama.rope.freq_base", 10000.0f);

	int64_t biggest = dim * (vocab > ffn ? vocab : ffn);
	if (dim * dim > biggest)
		biggest = dim * dim;
	s.f = ab_xmalloc((size_t)biggest * sizeof(float));
	s.q = ab_xmalloc((size_t)biggest * sizeof(float));
	int rc = synth_tensor(&s, "token_embd.weight", dim, vocab);
	if (rc == 0)
		rc = synth_tensor(&s, "output_norm.weight", dim, 0);
	if (rc == 0 && !tied)
		rc = synth_tensor(&s, "output.weight", dim, vocab);
	char tname[96];
	for (long long l = 0; rc == 0 && l < layers; l++) {
		static const struct {
			const char *n;
			int kind; /* 0 norm, 1 D x D, 2 KV x D, 3 F x D, 4 D x F */
		} per[] = {
			{"attn_norm", 0}, {"attn_q", 1}, {"attn_k", 2}, {"attn_v", 2},
			{"attn_output", 1}, {"ffn_norm", 0}, {"ffn_gate", 3}, {"ffn_down", 4},
			{"ffn_up", 3},
		};
		for (size_t k = 0; rc == 0 && k < AB_ARRAY_LEN(per); k++) {
			snprintf(tname, sizeof(tname), "blk.%lld.%s.weight", l, per[k].n);
			int kind = per[k].kind;
			int64_t cols = kind == 4 ? ffn : dim;
			int64_t rows = kind == 0 ? 0 : kind == 1 || kind == 4 ? dim : kind == 2 ? kv_dim : ffn;
			rc = synth_tensor(&s, tname, cols, rows);
		}
	}
	if (rc < 0) {
		fprintf(stderr, "autobot model synth: cannot make the tensors: %s\n",
			ab_strerror(rc));
		goto out;
	}
	code = write_out("model synth", s.w, out);
out:
	free(s.f);
	free(s.q);
	ab_gguf_writer_free(s.w);
	return code;
}

/* ---- list ---- */

static void usage_list(FILE *f)
{
	fprintf(f,
		"usage: autobot model list [--json] [options]\n"
		"\n"
		"Lists the models `autobot run`, the llm role and `autobot chat` can use by\n"
		"name: .gguf files and llama2.c checkpoints in llm.models_dir (default\n"
		"<state_dir>/models) and the models of an Ollama store (llm.ollama_dir,\n"
		"default $OLLAMA_MODELS or ~/.ollama/models).\n"
		"\noptions:\n%s"
		"  --json             one JSON object\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

static int cmd_list(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	bool json = false;
	const struct ab_cli_opt opts[] = {{"--json", &json, NULL}, {NULL, NULL, NULL}};
	int pr = ab_cli_parse(argc, argv, "model list", &co, opts, NULL, 0, NULL, usage_list);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	char *mdir = NULL, *odir = NULL;
	ab_cli_model_dirs(cfg, &mdir, &odir);
	struct ab_model_entry *e = NULL;
	size_t n = 0;
	ab_catalog_scan(mdir, odir, &e, &n);
	if (json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:I}", "name", e[i].name,
							     "path", e[i].path, "source", e[i].source,
							     "digest", e[i].digest, "size",
							     (json_int_t)e[i].size));
		json_t *o = json_pack("{s:s,s:s?,s:o}", "models_dir", mdir, "ollama_dir", odir,
				      "models", arr);
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("%-32s %10s  %-10s %s\n", "NAME", "SIZE", "SOURCE", "PATH");
		for (size_t i = 0; i < n; i++)
			printf("%-32s %9.1fM  %-10s %s\n", e[i].name, (double)e[i].size / 1048576.0,
			       e[i].source, e[i].path);
		fprintf(stderr, "%zu models (models folder %s%s%s)\n", n, mdir,
			odir ? ", ollama store " : "", odir ? odir : "");
	}
	ab_catalog_free(e, n);
	free(mdir);
	free(odir);
	ab_config_free(cfg);
	return 0;
}

/* ---- dispatch ---- */

static void usage_model(FILE *f)
{
	fprintf(f, "usage: autobot model COMMAND [options]\n"
		   "\n"
		   "commands:\n"
		   "  info FILE.gguf     metadata, tensors, parameter count and memory needed\n"
		   "  convert IN.bin --tokenizer TOK.bin -o OUT.gguf\n"
		   "                     a llama2.c checkpoint to GGUF\n"
		   "  synth ... -o OUT.gguf\n"
		   "                     a random-weight llama model of any shape and type\n"
		   "  list               the models of the models folder and the Ollama store\n"
		   "\n"
		   "`autobot model COMMAND --help` describes each.\n");
}

int ab_cmd_model(int argc, char **argv)
{
	if (argc < 2) {
		usage_model(stderr);
		return AB_EXIT_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		usage_model(stdout);
		return 0;
	}
	if (!strcmp(sub, "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(sub, "convert"))
		return cmd_convert(argc - 1, argv + 1);
	if (!strcmp(sub, "synth"))
		return cmd_synth(argc - 1, argv + 1);
	if (!strcmp(sub, "list"))
		return cmd_list(argc - 1, argv + 1);
	fprintf(stderr, "autobot model: unknown command %s\n", sub);
	usage_model(stderr);
	return AB_EXIT_USAGE;
}
