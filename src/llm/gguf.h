/*
 * gguf.h - reading and writing GGUF files (v2 and v3), the model format of
 * llama.cpp and Ollama. No HTTP, no Redis, no config: part of the engine.
 *
 * Reading maps the file (mmap, read-only) and indexes it without copying
 * the weights: tensor data pointers point into the mapping. Every count,
 * length, offset and size read from the file is checked against the file
 * size before use, so a truncated or hostile file is an error with a
 * message, never a crash. String arrays (the vocabulary) are indexed at
 * open so that element i is O(1).
 */
#ifndef AB_GGUF_H
#define AB_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ab_gguf_vtype {
	AB_GGUF_UINT8 = 0,
	AB_GGUF_INT8 = 1,
	AB_GGUF_UINT16 = 2,
	AB_GGUF_INT16 = 3,
	AB_GGUF_UINT32 = 4,
	AB_GGUF_INT32 = 5,
	AB_GGUF_FLOAT32 = 6,
	AB_GGUF_BOOL = 7,
	AB_GGUF_STRING = 8,
	AB_GGUF_ARRAY = 9,
	AB_GGUF_UINT64 = 10,
	AB_GGUF_INT64 = 11,
	AB_GGUF_FLOAT64 = 12,
};

/* A string inside the mapping: not NUL-terminated. */
struct ab_gguf_str {
	const char *p;
	uint64_t n;
};

struct ab_gguf_kv {
	struct ab_gguf_str key;
	uint32_t type;               /* enum ab_gguf_vtype */
	union {
		uint64_t u;          /* unsigned integer types and bool */
		int64_t i;           /* signed integer types */
		double f;            /* FLOAT32 / FLOAT64 */
		struct ab_gguf_str s;
		struct {
			uint32_t type;       /* element type */
			uint64_t n;
			const uint8_t *data; /* first element in the mapping */
			struct ab_gguf_str *strs; /* STRING arrays: indexed (owned) */
		} arr;
	} v;
};

#define AB_GGUF_MAX_DIMS 4

struct ab_gguf_tensor {
	char *name;                  /* NUL-terminated copy (owned) */
	uint32_t n_dims;
	int64_t ne[AB_GGUF_MAX_DIMS];/* ggml order: ne[0] = contiguous row length; unused = 1 */
	uint32_t type;               /* ggml type id (quant.h: enum ab_type) */
	uint64_t offset;             /* from the start of the data section */
	const void *data;            /* in the mapping */
	uint64_t n_bytes;
};

struct ab_gguf {
	const uint8_t *base;         /* the mapping (or caller's buffer) */
	size_t size;
	bool mapped;
	uint32_t version;
	uint64_t alignment;          /* general.alignment, default 32 */
	uint64_t data_offset;        /* start of tensor data in the file */
	uint64_t n_kv;
	struct ab_gguf_kv *kv;
	uint64_t n_tensors;
	struct ab_gguf_tensor *tensors;
};

/* Opens and validates path (mmap). Returns 0, or a negative code with a
 * message in err naming what is wrong ("truncated at byte N reading the
 * tensor count", "bad magic", "tensor blk.0.attn_q.weight: data past the
 * end of the file", "unknown tensor type 99"). Free with ab_gguf_free(). */
int ab_gguf_open(const char *path, struct ab_gguf **out, char *err, size_t errlen);
/* The same over a buffer the caller keeps alive (for tests and fuzzing). */
int ab_gguf_parse(const void *buf, size_t size, struct ab_gguf **out, char *err, size_t errlen);
void ab_gguf_free(struct ab_gguf *g);

const struct ab_gguf_kv *ab_gguf_find(const struct ab_gguf *g, const char *key);
/* Typed getters: 0 on success, AB_ENOTFOUND if absent, AB_EINVAL if the
 * stored type does not convert (any integer type converts to another if
 * the value fits; FLOAT32/64 convert to float/double). */
int ab_gguf_get_u32(const struct ab_gguf *g, const char *key, uint32_t *out);
int ab_gguf_get_i64(const struct ab_gguf *g, const char *key, int64_t *out);
int ab_gguf_get_f32(const struct ab_gguf *g, const char *key, float *out);
int ab_gguf_get_bool(const struct ab_gguf *g, const char *key, bool *out);
/* Copies a STRING value into a new NUL-terminated string (caller frees). */
int ab_gguf_get_str(const struct ab_gguf *g, const char *key, char **out);
const struct ab_gguf_tensor *ab_gguf_tensor(const struct ab_gguf *g, const char *name);
const char *ab_gguf_vtype_name(uint32_t t);

/*
 * Writing (for `autobot model convert` and `model synth`): collect
 * metadata and tensors, then write the file in one go (v3, alignment 32).
 * Values and tensor data are copied when added.
 */
struct ab_gguf_writer;
struct ab_gguf_writer *ab_gguf_writer_new(void);
void ab_gguf_writer_free(struct ab_gguf_writer *w);
void ab_gguf_set_u32(struct ab_gguf_writer *w, const char *key, uint32_t v);
void ab_gguf_set_i32(struct ab_gguf_writer *w, const char *key, int32_t v);
void ab_gguf_set_f32(struct ab_gguf_writer *w, const char *key, float v);
void ab_gguf_set_bool(struct ab_gguf_writer *w, const char *key, bool v);
void ab_gguf_set_str(struct ab_gguf_writer *w, const char *key, const char *v);
void ab_gguf_set_arr_str(struct ab_gguf_writer *w, const char *key, const char *const *v, size_t n);
void ab_gguf_set_arr_f32(struct ab_gguf_writer *w, const char *key, const float *v, size_t n);
void ab_gguf_set_arr_i32(struct ab_gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Adds a tensor whose data (n_bytes, already in the given ggml type) is copied. */
int ab_gguf_add_tensor(struct ab_gguf_writer *w, const char *name, uint32_t type, int n_dims,
		       const int64_t *ne, const void *data, size_t n_bytes);
/* Writes the file (atomically: a temporary file renamed). 0 or -errno. */
int ab_gguf_write(struct ab_gguf_writer *w, const char *path, char *err, size_t errlen);

/* ---- additions (gguf.c) ---- */

/* The whole file in memory (*buf is the caller's to free()). 0. */
int ab_gguf_write_mem(struct ab_gguf_writer *w, void **buf, size_t *len);
/* An array of n fixed-size elements of type (any scalar vtype, not STRING
 * or ARRAY); data holds n * size(type) little-endian bytes. */
void ab_gguf_set_arr(struct ab_gguf_writer *w, const char *key, uint32_t type, const void *data,
		     size_t n);
/* A string array from counted strings (may hold any bytes). */
void ab_gguf_set_arr_strn(struct ab_gguf_writer *w, const char *key, const struct ab_gguf_str *v,
			  size_t n);
void ab_gguf_set_u64(struct ab_gguf_writer *w, const char *key, uint64_t v);
/* Copies a key/value pair read by ab_gguf_parse/open (any type, arrays
 * included) under its own key. Setting a key that exists replaces it. */
void ab_gguf_set_kv(struct ab_gguf_writer *w, const struct ab_gguf_kv *kv);
/* Removes key if present. */
void ab_gguf_unset(struct ab_gguf_writer *w, const char *key);
size_t ab_gguf_writer_n_tensors(const struct ab_gguf_writer *w);
size_t ab_gguf_writer_n_kv(const struct ab_gguf_writer *w);

/* The ggml type table as far as the file format needs it (every type id
 * llama.cpp has defined, supported by quant.c or not): name ("Q4_K") or
 * NULL if unknown, and the bytes of a tensor of that type and shape
 * (n_dims 1..4, ne[0] a multiple of the block). 0 or AB_EINVAL /
 * AB_ETOOBIG (the size overflows). */
const char *ab_gguf_type_name(uint32_t type);
int ab_gguf_type_block(uint32_t type, int *block, size_t *block_bytes);
int ab_gguf_nbytes(uint32_t type, int n_dims, const int64_t *ne, uint64_t *out);
/* Elements of a tensor (product of ne). */
int64_t ab_gguf_tensor_nelements(const struct ab_gguf_tensor *t);

#endif
