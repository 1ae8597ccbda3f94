/*
 * gguf.c - GGUF reader and writer.
 *
 * Layout (little-endian throughout): "GGUF", uint32 version (2 or 3),
 * uint64 n_tensors, uint64 n_kv, the key/value pairs (key = uint64
 * length + bytes, uint32 value type, value), the tensor infos (name,
 * uint32 n_dims, n_dims x uint64 ne, uint32 ggml type, uint64 offset),
 * padding up to general.alignment (default 32), then the data section;
 * tensor offsets are relative to its start and aligned.
 *
 * The reader treats the file as hostile. A cursor walks the bytes and
 * every read first checks how many bytes are left, so a truncated file
 * stops with "truncated at byte N reading X". Counts are checked against
 * what could possibly fit in the bytes left (a key/value pair takes at
 * least 13 bytes, a tensor info at least 32, a string 8) before anything
 * is allocated, so a forged count of 2^63 is an error, not a huge
 * calloc. Array nesting is bounded (MAX_DEPTH) so recursion is too. Sizes
 * (ne products, row bytes times rows, offset plus size) are computed
 * with overflow checks. Duplicate keys and tensor names are found by
 * sorting an index (n log n, so a file with a million keys cannot make
 * the check quadratic). Strings point into the mapping; only tensor names
 * are copied (NUL-terminated) and string arrays get an index so that the
 * vocabulary's element i is O(1).
 *
 * The writer keeps every value already serialised and a copy of every
 * tensor's bytes, then emits header, pairs, infos, padding and data in
 * one pass through a sink (a file descriptor or a memory buffer). Files
 * are written to a temporary name in the target directory, fsynced and
 * renamed, so a reader never sees half a model.
 *
 * The type table below is the file format's own knowledge of ggml block
 * sizes (every id llama.cpp has assigned), kept here so that validation
 * does not depend on which types quant.c can compute with.
 */
#include "gguf.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian files by memcpy: port it before building big-endian"
#endif

#define GGUF_MAGIC "GGUF"
#define DEFAULT_ALIGNMENT 32
#define MAX_ALIGNMENT (1u << 24)
#define MAX_DEPTH 4
#define KV_MIN_BYTES 13     /* key length 8 + type 4 + smallest value 1 */
#define TENSOR_MIN_BYTES 32 /* name length 8 + n_dims 4 + ne 8 + type 4 + offset 8 */

/* ---- type table ---- */

struct type_row {
	const char *name;
	int block;
	size_t bytes;
};

static const struct type_row types[] = {
	[0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},
	[3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
	[8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},     [10] = {"Q2_K", 256, 84},
	[11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
	[14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
	[17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
	[20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
	[23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},
	[26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},       [28] = {"F64", 1, 8},
	[29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
	[35] = {"TQ2_0", 256, 66},
};

static const struct type_row *type_row(uint32_t type)
{
	if (type >= AB_ARRAY_LEN(types) || !types[type].name)
		return NULL;
	return &types[type];
}

const char *ab_gguf_type_name(uint32_t type)
{
	const struct type_row *r = type_row(type);
	return r ? r->name : NULL;
}

int ab_gguf_type_block(uint32_t type, int *block, size_t *block_bytes)
{
	const struct type_row *r = type_row(type);
	if (!r)
		return AB_EINVAL;
	if (block)
		*block = r->block;
	if (block_bytes)
		*block_bytes = r->bytes;
	return 0;
}

int ab_gguf_nbytes(uint32_t type, int n_dims, const int64_t *ne, uint64_t *out)
{
	const struct type_row *r = type_row(type);
	if (!r || n_dims < 1 || n_dims > AB_GGUF_MAX_DIMS)
		return AB_EINVAL;
	uint64_t rows = 1, elems = 1;
	for (int d = 0; d < n_dims; d++) {
		if (ne[d] < 0)
			return AB_EINVAL;
		if (__builtin_mul_overflow(elems, (uint64_t)ne[d], &elems) || elems > INT64_MAX)
			return AB_ETOOBIG;
		if (d > 0 && __builtin_mul_overflow(rows, (uint64_t)ne[d], &rows))
			return AB_ETOOBIG;
	}
	if (ne[0] % r->block != 0)
		return AB_EINVAL;
	uint64_t row_bytes, total;
	if (__builtin_mul_overflow((uint64_t)(ne[0] / r->block), (uint64_t)r->bytes, &row_bytes) ||
	    __builtin_mul_overflow(row_bytes, rows, &total) || total > INT64_MAX)
		return AB_ETOOBIG;
	*out = total;
	return 0;
}

int64_t ab_gguf_tensor_nelements(const struct ab_gguf_tensor *t)
{
	int64_t n = 1;
	for (uint32_t d = 0; d < t->n_dims && d < AB_GGUF_MAX_DIMS; d++)
		n *= t->ne[d]; /* validated at parse: cannot overflow */
	return n;
}

static const uint8_t vtype_size[] = {
	[AB_GGUF_UINT8] = 1,  [AB_GGUF_INT8] = 1,    [AB_GGUF_UINT16] = 2, [AB_GGUF_INT16] = 2,
	[AB_GGUF_UINT32] = 4, [AB_GGUF_INT32] = 4,   [AB_GGUF_FLOAT32] = 4, [AB_GGUF_BOOL] = 1,
	[AB_GGUF_STRING] = 0, [AB_GGUF_ARRAY] = 0,   [AB_GGUF_UINT64] = 8, [AB_GGUF_INT64] = 8,
	[AB_GGUF_FLOAT64] = 8,
};

const char *ab_gguf_vtype_name(uint32_t t)
{
	static const char *const names[] = {
		"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
		"bool",  "string", "array", "uint64", "int64", "float64",
	};
	return t < AB_ARRAY_LEN(names) ? names[t] : "unknown";
}

/* ---- reading ---- */

struct rd {
	const uint8_t *b;
	size_t size;
	size_t pos;
	char *err;
	size_t errlen;
};

static int fail(struct rd *r, int code, const char *fmt, ...) AB_PRINTF(3, 4);

static int fail(struct rd *r, int code, const char *fmt, ...)
{
	if (r->err && r->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static size_t left(const struct rd *r)
{
	return r->size - r->pos;
}

static int need(struct rd *r, size_t n, const char *what, const char *who)
{
	if (n > left(r))
		return fail(r, AB_EPROTO, "truncated at byte %zu reading %s%s%s (%zu bytes needed, %zu left)",
			    r->pos, what, who[0] ? " of " : "", who, n, left(r));
	return 0;
}

static int rd_bytes(struct rd *r, void *dst, size_t n, const char *what, const char *who)
{
	int rc = need(r, n, what, who);
	if (rc < 0)
		return rc;
	memcpy(dst, r->b + r->pos, n);
	r->pos += n;
	return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what, const char *who)
{
	return rd_bytes(r, v, 4, what, who);
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what, const char *who)
{
	return rd_bytes(r, v, 8, what, who);
}

static int rd_str(struct rd *r, struct ab_gguf_str *s, const char *what, const char *who)
{
	uint64_t n;
	size_t at = r->pos;
	int rc = rd_u64(r, &n, what, who);
	if (rc < 0)
		return rc;
	if (n > left(r))
		return fail(r, AB_EPROTO,
			    "%s%s%s at byte %zu: string length %llu runs past the end of the file (%zu bytes left)",
			    what, who[0] ? " of " : "", who, at, (unsigned long long)n, left(r));
	s->p = (const char *)r->b + r->pos;
	s->n = n;
	r->pos += (size_t)n;
	return 0;
}

/* A printable, bounded name for messages ("key 'llama.block_count'"). */
static void str_label(const struct ab_gguf_str *s, char *buf, size_t size)
{
	size_t n = s->n < size - 1 ? (size_t)s->n : size - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s->p[i];
		buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[n] = '\0';
}

/* Reads an array body (element type, count, elements) at depth; when strs
 * is not NULL and the elements are strings, indexes them into *strs. */
static int rd_array(struct rd *r, const char *who, int depth, uint32_t *etype, uint64_t *n,
		    const uint8_t **data, struct ab_gguf_str **strs)
{
	if (depth > MAX_DEPTH)
		return fail(r, AB_ETOOBIG, "%s at byte %zu: arrays nested deeper than %d", who,
			    r->pos, MAX_DEPTH);
	int rc = rd_u32(r, etype, "the array element type", who);
	if (rc < 0)
		return rc;
	if (*etype > AB_GGUF_FLOAT64)
		return fail(r, AB_EPROTO, "%s at byte %zu: unknown array element type %u", who,
			    r->pos - 4, *etype);
	size_t at = r->pos;
	if ((rc = rd_u64(r, n, "the array length", who)) < 0)
		return rc;
	*data = r->b + r->pos;
	size_t rem = left(r);
	size_t min = *etype == AB_GGUF_STRING ? 8 : *etype == AB_GGUF_ARRAY ? 12
										 : vtype_size[*etype];
	if (*n > rem / min)
		return fail(r, AB_EPROTO,
			    "%s at byte %zu: array of %llu %s elements cannot fit in the %zu bytes left",
			    who, at, (unsigned long long)*n, ab_gguf_vtype_name(*etype), rem);
	if (*etype == AB_GGUF_STRING) {
		struct ab_gguf_str *idx = NULL;
		if (strs)
			idx = ab_xcalloc(*n ? (size_t)*n : 1, sizeof(*idx));
		for (uint64_t i = 0; i < *n; i++) {
			struct ab_gguf_str s;
			if ((rc = rd_str(r, &s, "an array string", who)) < 0) {
				free(idx);
				return rc;
			}
			if (idx)
				idx[i] = s;
		}
		if (strs)
			*strs = idx;
	} else if (*etype == AB_GGUF_ARRAY) {
		for (uint64_t i = 0; i < *n; i++) {
			uint32_t et;
			uint64_t nn;
			const uint8_t *d;
			if ((rc = rd_array(r, who, depth + 1, &et, &nn, &d, NULL)) < 0)
				return rc;
		}
	} else {
		r->pos += (size_t)*n * min;
	}
	return 0;
}

static int rd_value(struct rd *r, struct ab_gguf_kv *kv, const char *who)
{
	size_t at = r->pos;
	int rc;
	switch (kv->type) {
	case AB_GGUF_UINT8:
	case AB_GGUF_UINT16:
	case AB_GGUF_UINT32:
	case AB_GGUF_UINT64:
	case AB_GGUF_BOOL: {
		uint64_t u = 0;
		if ((rc = rd_bytes(r, &u, vtype_size[kv->type], "the value", who)) < 0)
			return rc;
		if (kv->type == AB_GGUF_BOOL && u > 1)
			return fail(r, AB_EPROTO, "%s at byte %zu: bool value %llu is not 0 or 1", who,
				    at, (unsigned long long)u);
		kv->v.u = u;
		return 0;
	}
	case AB_GGUF_INT8: {
		int8_t x;
		if ((rc = rd_bytes(r, &x, 1, "the value", who)) < 0)
			return rc;
		kv->v.i = x;
		return 0;
	}
	case AB_GGUF_INT16: {
		int16_t x;
		if ((rc = rd_bytes(r, &x, 2, "the value", who)) < 0)
			return rc;
		kv->v.i = x;
		return 0;
	}
	case AB_GGUF_INT32: {
		int32_t x;
		if ((rc = rd_bytes(r, &x, 4, "the value", who)) < 0)
			return rc;
		kv->v.i = x;
		return 0;
	}
	case AB_GGUF_INT64: {
		int64_t x;
		if ((rc = rd_bytes(r, &x, 8, "the value", who)) < 0)
			return rc;
		kv->v.i = x;
		return 0;
	}
	case AB_GGUF_FLOAT32: {
		float x;
		if ((rc = rd_bytes(r, &x, 4, "the value", who)) < 0)
			return rc;
		kv->v.f = x;
		return 0;
	}
	case AB_GGUF_FLOAT64: {
		double x;
		if ((rc = rd_bytes(r, &x, 8, "the value", who)) < 0)
			return rc;
		kv->v.f = x;
		return 0;
	}
	case AB_GGUF_STRING:
		return rd_str(r, &kv->v.s, "the string value", who);
	case AB_GGUF_ARRAY:
		return rd_array(r, who, 1, &kv->v.arr.type, &kv->v.arr.n, &kv->v.arr.data,
				&kv->v.arr.strs);
	default:
		return fail(r, AB_EPROTO, "%s at byte %zu: unknown value type %u", who, at - 4,
			    kv->type);
	}
}

static int cmp_kv_ptr(const void *a, const void *b)
{
	const struct ab_gguf_kv *x = *(const struct ab_gguf_kv *const *)a;
	const struct ab_gguf_kv *y = *(const struct ab_gguf_kv *const *)b;
	size_t n = x->key.n < y->key.n ? (size_t)x->key.n : (size_t)y->key.n;
	int c = n ? memcmp(x->key.p, y->key.p, n) : 0;
	if (c)
		return c;
	return x->key.n < y->key.n ? -1 : x->key.n > y->key.n;
}

static int cmp_tensor_ptr(const void *a, const void *b)
{
	const struct ab_gguf_tensor *x = *(const struct ab_gguf_tensor *const *)a;
	const struct ab_gguf_tensor *y = *(const struct ab_gguf_tensor *const *)b;
	return strcmp(x->name, y->name);
}

static bool str_eq(const struct ab_gguf_str *s, const char *z)
{
	size_t n = strlen(z);
	return s->n == n && memcmp(s->p, z, n) == 0;
}

static int parse_kvs(struct rd *r, struct ab_gguf *g)
{
	int rc;
	if (g->n_kv > left(r) / KV_MIN_BYTES)
		return fail(r, AB_EPROTO,
			    "n_kv %llu at byte 16 cannot fit in the %zu bytes left in the file",
			    (unsigned long long)g->n_kv, left(r));
	g->kv = ab_xcalloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof(*g->kv));
	for (uint64_t i = 0; i < g->n_kv; i++) {
		struct ab_gguf_kv *kv = &g->kv[i];
		char who[160], label[128];
		snprintf(who, sizeof(who), "key/value %llu", (unsigned long long)i);
		if ((rc = rd_str(r, &kv->key, "the key", who)) < 0)
			return rc;
		if (kv->key.n == 0 || memchr(kv->key.p, '\0', (size_t)kv->key.n))
			return fail(r, AB_EPROTO,
				    "key/value %llu at byte %zu: empty key or a NUL byte in it",
				    (unsigned long long)i, r->pos - 8);
		str_label(&kv->key, label, sizeof(label));
		snprintf(who, sizeof(who), "key '%s'", label);
		if ((rc = rd_u32(r, &kv->type, "the value type", who)) < 0)
			return rc;
		if ((rc = rd_value(r, kv, who)) < 0)
			return rc;
	}
	if (g->n_kv > 1) {
		const struct ab_gguf_kv **idx = ab_xcalloc((size_t)g->n_kv, sizeof(*idx));
		for (uint64_t i = 0; i < g->n_kv; i++)
			idx[i] = &g->kv[i];
		qsort(idx, (size_t)g->n_kv, sizeof(*idx), cmp_kv_ptr);
		for (uint64_t i = 1; i < g->n_kv; i++) {
			if (cmp_kv_ptr(&idx[i - 1], &idx[i]) == 0) {
				char label[128];
				str_label(&idx[i]->key, label, sizeof(label));
				free(idx);
				return fail(r, AB_EPROTO, "duplicate key '%s'", label);
			}
		}
		free(idx);
	}
	return 0;
}

static int parse_alignment(struct rd *r, struct ab_gguf *g)
{
	g->alignment = DEFAULT_ALIGNMENT;
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct ab_gguf_kv *kv = &g->kv[i];
		if (!str_eq(&kv->key, "general.alignment"))
			continue;
		uint64_t a;
		switch (kv->type) {
		case AB_GGUF_UINT8: case AB_GGUF_UINT16: case AB_GGUF_UINT32: case AB_GGUF_UINT64:
			a = kv->v.u;
			break;
		case AB_GGUF_INT8: case AB_GGUF_INT16: case AB_GGUF_INT32: case AB_GGUF_INT64:
			a = kv->v.i < 0 ? 0 : (uint64_t)kv->v.i;
			break;
		default:
			return fail(r, AB_EPROTO, "general.alignment has type %s, not an integer",
				    ab_gguf_vtype_name(kv->type));
		}
		if (a == 0 || (a & (a - 1)) != 0 || a > MAX_ALIGNMENT)
			return fail(r, AB_EPROTO,
				    "general.alignment %llu is not a power of two in 1..%u",
				    (unsigned long long)a, MAX_ALIGNMENT);
		g->alignment = a;
	}
	return 0;
}

static int parse_tensor_info(struct rd *r, struct ab_gguf_tensor *t, uint64_t i)
{
	char who[160], label[128];
	struct ab_gguf_str name;
	int rc;
	snprintf(who, sizeof(who), "tensor %llu", (unsigned long long)i);
	size_t at = r->pos;
	if ((rc = rd_str(r, &name, "the name", who)) < 0)
		return rc;
	if (name.n == 0 || memchr(name.p, '\0', (size_t)name.n))
		return fail(r, AB_EPROTO, "tensor %llu at byte %zu: empty name or a NUL byte in it",
			    (unsigned long long)i, at);
	t->name = ab_xstrndup(name.p, (size_t)name.n);
	str_label(&name, label, sizeof(label));
	snprintf(who, sizeof(who), "tensor %s", label);
	at = r->pos;
	if ((rc = rd_u32(r, &t->n_dims, "n_dims", who)) < 0)
		return rc;
	if (t->n_dims < 1 || t->n_dims > AB_GGUF_MAX_DIMS)
		return fail(r, AB_EPROTO, "%s at byte %zu: n_dims %u is not in 1..%d", who, at,
			    t->n_dims, AB_GGUF_MAX_DIMS);
	for (int d = 0; d < AB_GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	for (uint32_t d = 0; d < t->n_dims; d++) {
		uint64_t v;
		at = r->pos;
		if ((rc = rd_u64(r, &v, "ne", who)) < 0)
			return rc;
		if (v > INT64_MAX)
			return fail(r, AB_EPROTO, "%s at byte %zu: ne[%u] is negative", who, at, d);
		t->ne[d] = (int64_t)v;
	}
	at = r->pos;
	if ((rc = rd_u32(r, &t->type, "the type", who)) < 0)
		return rc;
	const struct type_row *tr = type_row(t->type);
	if (!tr)
		return fail(r, AB_EPROTO, "%s at byte %zu: unknown tensor type %u", who, at, t->type);
	if ((rc = rd_u64(r, &t->offset, "the offset", who)) < 0)
		return rc;
	if (t->ne[0] % tr->block != 0)
		return fail(r, AB_EPROTO, "%s: ne[0] = %lld is not a multiple of the %s block (%d)",
			    who, (long long)t->ne[0], tr->name, tr->block);
	rc = ab_gguf_nbytes(t->type, (int)t->n_dims, t->ne, &t->n_bytes);
	if (rc < 0)
		return fail(r, AB_EPROTO, "%s: shape [%lld, %lld, %lld, %lld] overflows", who,
			    (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
			    (long long)t->ne[3]);
	return 0;
}

static int parse_all(struct rd *r, struct ab_gguf *g)
{
	char magic[4];
	int rc;
	if ((rc = rd_bytes(r, magic, 4, "the magic", "")) < 0)
		return rc;
	if (memcmp(magic, GGUF_MAGIC, 4) != 0)
		return fail(r, AB_EPROTO, "bad magic %02x %02x %02x %02x at byte 0: not a GGUF file",
			    (unsigned char)magic[0], (unsigned char)magic[1],
			    (unsigned char)magic[2], (unsigned char)magic[3]);
	if ((rc = rd_u32(r, &g->version, "the version", "")) < 0)
		return rc;
	if (g->version == 1)
		return fail(r, AB_EPROTO,
			    "GGUF version 1 (32-bit counts, 2023) is not supported: convert it to v3");
	if (g->version != 2 && g->version != 3)
		return fail(r, AB_EPROTO, "unsupported GGUF version %u at byte 4 (expected 2 or 3%s)",
			    g->version, (g->version & 0xffff) == 0 ? "; a big-endian file?" : "");
	if ((rc = rd_u64(r, &g->n_tensors, "the tensor count", "")) < 0)
		return rc;
	if ((rc = rd_u64(r, &g->n_kv, "the key/value count", "")) < 0)
		return rc;
	/* the tensor count is checked against what is left after the kvs too,
	 * but an absurd one fails here before the kvs are walked */
	if (g->n_tensors > left(r) / TENSOR_MIN_BYTES)
		return fail(r, AB_EPROTO,
			    "n_tensors %llu at byte 8 cannot fit in the %zu bytes left in the file",
			    (unsigned long long)g->n_tensors, left(r));
	if ((rc = parse_kvs(r, g)) < 0)
		return rc;
	if ((rc = parse_alignment(r, g)) < 0)
		return rc;
	if (g->n_tensors > left(r) / TENSOR_MIN_BYTES)
		return fail(r, AB_EPROTO,
			    "n_tensors %llu cannot fit in the %zu bytes left after the metadata",
			    (unsigned long long)g->n_tensors, left(r));
	g->tensors = ab_xcalloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof(*g->tensors));
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if ((rc = parse_tensor_info(r, &g->tensors[i], i)) < 0)
			return rc;
	uint64_t a = g->alignment;
	uint64_t data = ((uint64_t)r->pos + a - 1) & ~(a - 1);
	g->data_offset = data;
	if (g->n_tensors > 0 && data > r->size)
		return fail(r, AB_EPROTO,
			    "the data section would start at byte %llu, past the end of the file (%zu bytes)",
			    (unsigned long long)data, r->size);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct ab_gguf_tensor *t = &g->tensors[i];
		if (t->offset % a != 0)
			return fail(r, AB_EPROTO,
				    "tensor %s: offset %llu is not a multiple of the alignment %llu",
				    t->name, (unsigned long long)t->offset, (unsigned long long)a);
		uint64_t end;
		if (__builtin_add_overflow(data, t->offset, &end) ||
		    __builtin_add_overflow(end, t->n_bytes, &end) || end > r->size)
			return fail(r, AB_EPROTO,
				    "tensor %s: data past the end of the file (offset %llu + %llu bytes, data section %llu bytes)",
				    t->name, (unsigned long long)t->offset,
				    (unsigned long long)t->n_bytes,
				    (unsigned long long)(r->size - data));
		t->data = r->b + data + t->offset;
	}
	if (g->n_tensors > 1) {
		const struct ab_gguf_tensor **idx = ab_xcalloc((size_t)g->n_tensors, sizeof(*idx));
		for (uint64_t i = 0; i < g->n_tensors; i++)
			idx[i] = &g->tensors[i];
		qsort(idx, (size_t)g->n_tensors, sizeof(*idx), cmp_tensor_ptr);
		for (uint64_t i = 1; i < g->n_tensors; i++) {
			if (strcmp(idx[i - 1]->name, idx[i]->name) == 0) {
				rc = fail(r, AB_EPROTO, "duplicate tensor name %s", idx[i]->name);
				free(idx);
				return rc;
			}
		}
		free(idx);
	}
	return 0;
}

int ab_gguf_parse(const void *buf, size_t size, struct ab_gguf **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	struct rd r = {.b = buf, .size = size, .pos = 0, .err = err, .errlen = errlen};
	if (!buf && size)
		return fail(&r, AB_EINVAL, "no buffer");
	struct ab_gguf *g = ab_xcalloc(1, sizeof(*g));
	g->base = buf;
	g->size = size;
	int rc = parse_all(&r, g);
	if (rc < 0) {
		ab_gguf_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int ab_gguf_open(const char *path, struct ab_gguf **out, char *err, size_t errlen)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
		close(fd);
		snprintf(err, errlen, "%s: %s", path,
			 S_ISREG(st.st_mode) ? "empty file, not a GGUF model" : "not a regular file");
		return AB_EPROTO;
	}
	size_t size = (size_t)st.st_size;
	void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(e));
		return -e;
	}
	(void)madvise(m, size, MADV_WILLNEED);
	char msg[384] = "";
	struct ab_gguf *g = NULL;
	int rc = ab_gguf_parse(m, size, &g, msg, sizeof(msg));
	if (rc < 0) {
		munmap(m, size);
		snprintf(err, errlen, "%s: %s", path, msg);
		return rc;
	}
	g->mapped = true;
	*out = g;
	return 0;
}

void ab_gguf_free(struct ab_gguf *g)
{
	if (!g)
		return;
	if (g->kv)
		for (uint64_t i = 0; i < g->n_kv; i++)
			if (g->kv[i].type == AB_GGUF_ARRAY)
				free(g->kv[i].v.arr.strs);
	free(g->kv);
	if (g->tensors)
		for (uint64_t i = 0; i < g->n_tensors; i++)
			free(g->tensors[i].name);
	free(g->tensors);
	if (g->mapped)
		munmap((void *)g->base, g->size);
	free(g);
}

/* ---- lookups ---- */

const struct ab_gguf_kv *ab_gguf_find(const struct ab_gguf *g, const char *key)
{
	if (!g || !key)
		return NULL;
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (str_eq(&g->kv[i].key, key))
			return &g->kv[i];
	return NULL;
}

static bool is_unsigned(uint32_t t)
{
	return t == AB_GGUF_UINT8 || t == AB_GGUF_UINT16 || t == AB_GGUF_UINT32 ||
	       t == AB_GGUF_UINT64;
}

static bool is_signed(uint32_t t)
{
	return t == AB_GGUF_INT8 || t == AB_GGUF_INT16 || t == AB_GGUF_INT32 || t == AB_GGUF_INT64;
}

int ab_gguf_get_u32(const struct ab_gguf *g, const char *key, uint32_t *out)
{
	const struct ab_gguf_kv *kv = ab_gguf_find(g, key);
	if (!kv)
		return AB_ENOTFOUND;
	if (is_unsigned(kv->type) && kv->v.u <= UINT32_MAX) {
		*out = (uint32_t)kv->v.u;
		return 0;
	}
	if (is_signed(kv->type) && kv->v.i >= 0 && kv->v.i <= (int64_t)UINT32_MAX) {
		*out = (uint32_t)kv->v.i;
		return 0;
	}
	return AB_EINVAL;
}

int ab_gguf_get_i64(const struct ab_gguf *g, const char *key, int64_t *out)
{
	const struct ab_gguf_kv *kv = ab_gguf_find(g, key);
	if (!kv)
		return AB_ENOTFOUND;
	if (is_unsigned(kv->type) && kv->v.u <= (uint64_t)INT64_MAX) {
		*out = (int64_t)kv->v.u;
		return 0;
	}
	if (is_signed(kv->type)) {
		*out = kv->v.i;
		return 0;
	}
	return AB_EINVAL;
}

int ab_gguf_get_f32(const struct ab_gguf *g, const char *key, float *out)
{
	const struct ab_gguf_kv *kv = ab_gguf_find(g, key);
	if (!kv)
		return AB_ENOTFOUND;
	if (kv->type != AB_GGUF_FLOAT32 && kv->type != AB_GGUF_FLOAT64)
		return AB_EINVAL;
	*out = (float)kv->v.f;
	return 0;
}

int ab_gguf_get_bool(const struct ab_gguf *g, const char *key, bool *out)
{
	const struct ab_gguf_kv *kv = ab_gguf_find(g, key);
	if (!kv)
		return AB_ENOTFOUND;
	if (kv->type != AB_GGUF_BOOL)
		return AB_EINVAL;
	*out = kv->v.u != 0;
	return 0;
}

int ab_gguf_get_str(const struct ab_gguf *g, const char *key, char **out)
{
	const struct ab_gguf_kv *kv = ab_gguf_find(g, key);
	if (!kv)
		return AB_ENOTFOUND;
	if (kv->type != AB_GGUF_STRING)
		return AB_EINVAL;
	*out = ab_xstrndup(kv->v.s.p, (size_t)kv->v.s.n);
	return 0;
}

const struct ab_gguf_tensor *ab_gguf_tensor(const struct ab_gguf *g, const char *name)
{
	if (!g || !name)
		return NULL;
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (!strcmp(g->tensors[i].name, name))
			return &g->tensors[i];
	return NULL;
}

/* ---- writing ---- */

struct wkv {
	char *key;
	uint32_t type;
	struct ab_buf val; /* the serialised value */
};

struct wtensor {
	char *name;
	uint32_t type;
	uint32_t n_dims;
	int64_t ne[AB_GGUF_MAX_DIMS];
	void *data;
	size_t n_bytes;
};

struct ab_gguf_writer {
	struct wkv *kv;
	size_t n_kv, cap_kv;
	struct wtensor *t;
	size_t n_t, cap_t;
};

struct ab_gguf_writer *ab_gguf_writer_new(void)
{
	return ab_xcalloc(1, sizeof(struct ab_gguf_writer));
}

void ab_gguf_writer_free(struct ab_gguf_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_kv; i++) {
		free(w->kv[i].key);
		ab_buf_free(&w->kv[i].val);
	}
	free(w->kv);
	for (size_t i = 0; i < w->n_t; i++) {
		free(w->t[i].name);
		free(w->t[i].data);
	}
	free(w->t);
	free(w);
}

size_t ab_gguf_writer_n_tensors(const struct ab_gguf_writer *w)
{
	return w->n_t;
}

size_t ab_gguf_writer_n_kv(const struct ab_gguf_writer *w)
{
	return w->n_kv;
}

/* The (emptied) value buffer of key, created at the end if new. */
static struct ab_buf *kv_slot(struct ab_gguf_writer *w, const char *key, uint32_t type)
{
	for (size_t i = 0; i < w->n_kv; i++) {
		if (!strcmp(w->kv[i].key, key)) {
			w->kv[i].type = type;
			ab_buf_reset(&w->kv[i].val);
			return &w->kv[i].val;
		}
	}
	if (w->n_kv == w->cap_kv) {
		w->cap_kv = w->cap_kv ? w->cap_kv * 2 : 32;
		w->kv = ab_xrealloc(w->kv, w->cap_kv * sizeof(*w->kv));
	}
	struct wkv *kv = &w->kv[w->n_kv++];
	kv->key = ab_xstrdup(key);
	kv->type = type;
	ab_buf_init(&kv->val);
	return &kv->val;
}

void ab_gguf_unset(struct ab_gguf_writer *w, const char *key)
{
	for (size_t i = 0; i < w->n_kv; i++) {
		if (!strcmp(w->kv[i].key, key)) {
			free(w->kv[i].key);
			ab_buf_free(&w->kv[i].val);
			memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof(*w->kv));
			w->n_kv--;
			return;
		}
	}
}

static void put_u32(struct ab_buf *b, uint32_t v)
{
	ab_buf_append(b, &v, 4);
}

static void put_u64(struct ab_buf *b, uint64_t v)
{
	ab_buf_append(b, &v, 8);
}

static void put_str(struct ab_buf *b, const char *s, size_t n)
{
	put_u64(b, n);
	ab_buf_append(b, s, n);
}

void ab_gguf_set_u32(struct ab_gguf_writer *w, const char *key, uint32_t v)
{
	put_u32(kv_slot(w, key, AB_GGUF_UINT32), v);
}

void ab_gguf_set_u64(struct ab_gguf_writer *w, const char *key, uint64_t v)
{
	put_u64(kv_slot(w, key, AB_GGUF_UINT64), v);
}

void ab_gguf_set_i32(struct ab_gguf_writer *w, const char *key, int32_t v)
{
	ab_buf_append(kv_slot(w, key, AB_GGUF_INT32), &v, 4);
}

void ab_gguf_set_f32(struct ab_gguf_writer *w, const char *key, float v)
{
	ab_buf_append(kv_slot(w, key, AB_GGUF_FLOAT32), &v, 4);
}

void ab_gguf_set_bool(struct ab_gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v ? 1 : 0;
	ab_buf_append(kv_slot(w, key, AB_GGUF_BOOL), &b, 1);
}

void ab_gguf_set_str(struct ab_gguf_writer *w, const char *key, const char *v)
{
	put_str(kv_slot(w, key, AB_GGUF_STRING), v, strlen(v));
}

void ab_gguf_set_arr_str(struct ab_gguf_writer *w, const char *key, const char *const *v, size_t n)
{
	struct ab_buf *b = kv_slot(w, key, AB_GGUF_ARRAY);
	put_u32(b, AB_GGUF_STRING);
	put_u64(b, n);
	for (size_t i = 0; i < n; i++)
		put_str(b, v[i], strlen(v[i]));
}

void ab_gguf_set_arr_strn(struct ab_gguf_writer *w, const char *key, const struct ab_gguf_str *v,
			  size_t n)
{
	struct ab_buf *b = kv_slot(w, key, AB_GGUF_ARRAY);
	put_u32(b, AB_GGUF_STRING);
	put_u64(b, n);
	for (size_t i = 0; i < n; i++)
		put_str(b, v[i].p, (size_t)v[i].n);
}

void ab_gguf_set_arr(struct ab_gguf_writer *w, const char *key, uint32_t type, const void *data,
		     size_t n)
{
	if (type >= AB_ARRAY_LEN(vtype_size) || vtype_size[type] == 0)
		abort(); /* a programming error: strings and arrays have their own setters */
	struct ab_buf *b = kv_slot(w, key, AB_GGUF_ARRAY);
	put_u32(b, type);
	put_u64(b, n);
	if (n)
		ab_buf_append(b, data, n * vtype_size[type]);
}

void ab_gguf_set_arr_f32(struct ab_gguf_writer *w, const char *key, const float *v, size_t n)
{
	ab_gguf_set_arr(w, key, AB_GGUF_FLOAT32, v, n);
}

void ab_gguf_set_arr_i32(struct ab_gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
	ab_gguf_set_arr(w, key, AB_GGUF_INT32, v, n);
}

/* Bytes an already-validated array body (after element type and count)
 * takes in the mapping. */
static size_t array_extent(uint32_t etype, uint64_t n, const uint8_t *data)
{
	if (etype != AB_GGUF_STRING && etype != AB_GGUF_ARRAY)
		return (size_t)n * vtype_size[etype];
	size_t pos = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (etype == AB_GGUF_STRING) {
			uint64_t len;
			memcpy(&len, data + pos, 8);
			pos += 8 + (size_t)len;
		} else {
			uint32_t et;
			uint64_t nn;
			memcpy(&et, data + pos, 4);
			memcpy(&nn, data + pos + 4, 8);
			pos += 12;
			pos += array_extent(et, nn, data + pos);
		}
	}
	return pos;
}

void ab_gguf_set_kv(struct ab_gguf_writer *w, const struct ab_gguf_kv *kv)
{
	char *key = ab_xstrndup(kv->key.p, (size_t)kv->key.n);
	struct ab_buf *b = kv_slot(w, key, kv->type);
	free(key);
	switch (kv->type) {
	case AB_GGUF_UINT8: case AB_GGUF_UINT16: case AB_GGUF_UINT32: case AB_GGUF_UINT64:
	case AB_GGUF_BOOL:
		ab_buf_append(b, &kv->v.u, vtype_size[kv->type]);
		break;
	case AB_GGUF_INT8: case AB_GGUF_INT16: case AB_GGUF_INT32: case AB_GGUF_INT64:
		ab_buf_append(b, &kv->v.i, vtype_size[kv->type]);
		break;
	case AB_GGUF_FLOAT32: {
		float f = (float)kv->v.f;
		ab_buf_append(b, &f, 4);
		break;
	}
	case AB_GGUF_FLOAT64:
		ab_buf_append(b, &kv->v.f, 8);
		break;
	case AB_GGUF_STRING:
		put_str(b, kv->v.s.p, (size_t)kv->v.s.n);
		break;
	case AB_GGUF_ARRAY:
		put_u32(b, kv->v.arr.type);
		put_u64(b, kv->v.arr.n);
		ab_buf_append(b, kv->v.arr.data,
			      array_extent(kv->v.arr.type, kv->v.arr.n, kv->v.arr.data));
		break;
	default:
		abort();
	}
}

int ab_gguf_add_tensor(struct ab_gguf_writer *w, const char *name, uint32_t type, int n_dims,
		       const int64_t *ne, const void *data, size_t n_bytes)
{
	if (!name || !name[0] || n_dims < 1 || n_dims > AB_GGUF_MAX_DIMS || (!data && n_bytes))
		return AB_EINVAL;
	uint64_t want;
	int rc = ab_gguf_nbytes(type, n_dims, ne, &want);
	if (rc < 0)
		return rc;
	if (want != n_bytes)
		return AB_EINVAL;
	for (size_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return AB_EEXIST;
	if (w->n_t == w->cap_t) {
		w->cap_t = w->cap_t ? w->cap_t * 2 : 64;
		w->t = ab_xrealloc(w->t, w->cap_t * sizeof(*w->t));
	}
	struct wtensor *t = &w->t[w->n_t++];
	t->name = ab_xstrdup(name);
	t->type = type;
	t->n_dims = (uint32_t)n_dims;
	for (int d = 0; d < AB_GGUF_MAX_DIMS; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->n_bytes = n_bytes;
	t->data = ab_xmalloc(n_bytes ? n_bytes : 1);
	if (n_bytes)
		memcpy(t->data, data, n_bytes);
	return 0;
}

typedef int (*sink_fn)(void *ud, const void *p, size_t n);

static size_t pad_to(size_t n, size_t a)
{
	return (a - n % a) % a;
}

/* Emits the whole file through fn: header, metadata, infos, data. */
static int emit(const struct ab_gguf_writer *w, sink_fn fn, void *ud)
{
	static const uint8_t zeros[DEFAULT_ALIGNMENT];
	struct ab_buf h = {0};
	ab_buf_append(&h, GGUF_MAGIC, 4);
	put_u32(&h, 3);
	/* the writer always aligns to 32: a copied general.alignment would lie */
	size_t n_kv = 0;
	for (size_t i = 0; i < w->n_kv; i++)
		n_kv += strcmp(w->kv[i].key, "general.alignment") != 0;
	put_u64(&h, w->n_t);
	put_u64(&h, n_kv);
	for (size_t i = 0; i < w->n_kv; i++) {
		if (!strcmp(w->kv[i].key, "general.alignment"))
			continue;
		put_str(&h, w->kv[i].key, strlen(w->kv[i].key));
		put_u32(&h, w->kv[i].type);
		if (w->kv[i].val.len)
			ab_buf_append(&h, w->kv[i].val.data, w->kv[i].val.len);
	}
	uint64_t off = 0;
	for (size_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		put_str(&h, t->name, strlen(t->name));
		put_u32(&h, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims; d++)
			put_u64(&h, (uint64_t)t->ne[d]);
		put_u32(&h, t->type);
		put_u64(&h, off);
		off += t->n_bytes + pad_to(t->n_bytes, DEFAULT_ALIGNMENT);
	}
	ab_buf_append(&h, zeros, pad_to(h.len, DEFAULT_ALIGNMENT));
	int rc = fn(ud, h.data, h.len);
	ab_buf_free(&h);
	for (size_t i = 0; rc == 0 && i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		rc = fn(ud, t->data, t->n_bytes);
		if (rc == 0)
			rc = fn(ud, zeros, pad_to(t->n_bytes, DEFAULT_ALIGNMENT));
	}
	return rc;
}

static int sink_buf(void *ud, const void *p, size_t n)
{
	if (n)
		ab_buf_append(ud, p, n);
	return 0;
}

static int sink_fd(void *ud, const void *p, size_t n)
{
	return ab_write_full(*(int *)ud, p, n);
}

int ab_gguf_write_mem(struct ab_gguf_writer *w, void **buf, size_t *len)
{
	struct ab_buf b = {0};
	ab_buf_reserve(&b, 1);
	emit(w, sink_buf, &b);
	*len = b.len;
	*buf = ab_buf_steal(&b);
	return 0;
}

int ab_gguf_write(struct ab_gguf_writer *w, const char *path, char *err, size_t errlen)
{
	char *tmp = ab_xasprintf("%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(e));
		free(tmp);
		return -e;
	}
	int rc = 0;
	if (fchmod(fd, 0644) != 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = emit(w, sink_fd, &fd)) < 0)
		goto out;
	if (fsync(fd) != 0) {
		rc = -errno;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}
