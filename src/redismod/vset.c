/*
 * vset.c - the vector-set data type ("vectorset", as TYPE reports it in
 * Redis 8) and its commands, with the names, arguments and reply shapes of
 * Redis 8's vector sets: VADD, VSIM, VREM, VCARD, VDIM, VEMB, VINFO,
 * VSETATTR, VGETATTR, VRANDMEMBER, VISMEMBER, VLINKS. A client written for
 * Redis 8 works unchanged against Redis 7 with this module.
 *
 * A value is a struct vset: the HNSW index (src/vector), a dictionary from
 * element name to struct velem (the node's `value`), the optional REDUCE
 * projection, a read-write lock and a reference count (see module.c for
 * the threading design). Element names and attributes live in the velem;
 * the index only points at it.
 *
 * Persistence. RDB encoding version 1: the set's parameters, projection
 * matrix, then every node with its name, attributes, stored (quantised)
 * components, norm, Q8 range, level and links per level, so that loading
 * rebuilds no graph; ab_hnsw_restore_end checks the whole graph before the
 * value is accepted, and any short read or inconsistency makes the load
 * fail cleanly. The AOF rewrite emits AB.VCREATE (parameters and matrix)
 * and one AB.VADDRAW per element (its stored form, so nothing is projected
 * or quantised twice); the graph is rebuilt by replaying them.
 *
 * Replication: writes are replicated verbatim. REDUCE draws its matrix from
 * a seed derived from the key name and the dimensions, so a replica that
 * replays VADD ... REDUCE builds the same matrix.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dict.h"
#include "filter.h"
#include "hnsw.h"
#include "module.h"

#define VSET_ENCVER 1
#define VSET_DEFAULT_M 16
#define VSET_DEFAULT_EF_CONSTRUCTION 200
#define VSET_DEFAULT_EF_SEARCH 200
#define VSET_DEFAULT_COUNT 10
#define VSET_MAX_COUNT 100000000LL

static RedisModuleType *vset_type;
static atomic_uint_fast64_t vset_uid_next = 1;

struct velem {
	char *name;
	size_t name_len;
	char *attr; /* NULL: none */
	size_t attr_len;
	struct ab_hnsw_node *node;
};

struct vset {
	struct ab_hnsw *h;
	struct ab_dict *elems; /* name -> struct velem */
	struct ab_vproj *proj; /* REDUCE, or NULL */
	pthread_rwlock_t lock;
	atomic_int refs; /* the key's + one per search in flight */
	uint64_t uid;
	uint64_t rng;
	size_t nattr;
};

static void velem_free(void *p)
{
	struct velem *e = p;
	if (!e)
		return;
	free(e->name);
	free(e->attr);
	free(e);
}

static struct vset *vset_new(const struct ab_hnsw_params *p, struct ab_vproj *proj)
{
	struct ab_hnsw *h;
	if (ab_hnsw_new(p, &h) < 0)
		return NULL;
	struct vset *vs = ab_xcalloc(1, sizeof(*vs));
	vs->h = h;
	vs->elems = ab_dict_new();
	vs->proj = proj;
	pthread_rwlock_init(&vs->lock, NULL);
	atomic_init(&vs->refs, 1);
	vs->uid = atomic_fetch_add(&vset_uid_next, 1);
	vs->rng = vs->uid * 0x9e3779b97f4a7c15ULL;
	return vs;
}

static void vset_destroy(struct vset *vs)
{
	/* The dictionary and the index share the velems: free them once. */
	ab_hnsw_free(vs->h, NULL);
	ab_dict_free(vs->elems, velem_free);
	ab_vproj_free(vs->proj);
	pthread_rwlock_destroy(&vs->lock);
	free(vs);
}

static void vset_release(struct vset *vs)
{
	if (atomic_fetch_sub(&vs->refs, 1) == 1)
		vset_destroy(vs);
}

/* ---- arguments ---------------------------------------------------------- */

static const char *quant_name(enum ab_vq q, bool raw)
{
	switch (q) {
	case AB_VQ_F32: return raw ? "fp32" : "f32";
	case AB_VQ_BIN: return "bin";
	case AB_VQ_Q8: break;
	}
	return raw ? "q8" : "int8";
}

/* Reads a vector at argv[*i]: "FP32 blob" or "VALUES n v1 .. vn". On
 * success *vec (caller frees) and *dim are set and *i moves past it. */
static bool parse_vector(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int *i,
			 float **vec, uint32_t *dim)
{
	if (*i >= argc) {
		RedisModule_ReplyWithError(ctx, "ERR missing vector");
		return false;
	}
	if (ab_rm_arg_is(argv[*i], "FP32")) {
		if (*i + 1 >= argc) {
			RedisModule_ReplyWithError(ctx, "ERR FP32 needs a vector blob");
			return false;
		}
		size_t len;
		const char *b = RedisModule_StringPtrLen(argv[*i + 1], &len);
		if (len == 0 || len % 4 != 0 || len / 4 > AB_HNSW_MAX_DIM) {
			RedisModule_ReplyWithError(ctx, "ERR invalid vector specification: the FP32 "
							"blob length must be a non-zero multiple of 4");
			return false;
		}
		*dim = (uint32_t)(len / 4);
		*vec = ab_xmalloc(len);
		memcpy(*vec, b, len); /* little-endian floats, as x86 stores them */
		*i += 2;
	} else if (ab_rm_arg_is(argv[*i], "VALUES")) {
		long long n;
		if (*i + 1 >= argc) {
			RedisModule_ReplyWithError(ctx, "ERR VALUES needs a count");
			return false;
		}
		if (!ab_rm_arg_ll(ctx, argv[*i + 1], 1, AB_HNSW_MAX_DIM, "VALUES count", &n))
			return false;
		if (*i + 2 + n > argc) {
			RedisModule_ReplyWithError(ctx, "ERR invalid vector specification: fewer values "
							"than the count");
			return false;
		}
		*vec = ab_xmalloc((size_t)n * sizeof(float));
		for (long long k = 0; k < n; k++) {
			double d;
			if (RedisModule_StringToDouble(argv[*i + 2 + k], &d) != REDISMODULE_OK) {
				free(*vec);
				*vec = NULL;
				RedisModule_ReplyWithError(ctx, "ERR invalid vector specification: a value "
								"is not a number");
				return false;
			}
			(*vec)[k] = (float)d;
		}
		*dim = (uint32_t)n;
		*i += 2 + (int)n;
	} else {
		RedisModule_ReplyWithError(ctx, "ERR invalid vector specification: expected FP32 or VALUES");
		return false;
	}
	for (uint32_t k = 0; k < *dim; k++) {
		if (!isfinite((*vec)[k])) {
			free(*vec);
			*vec = NULL;
			RedisModule_ReplyWithError(ctx, "ERR invalid vector specification: values must be finite");
			return false;
		}
	}
	return true;
}

/* Opens key and returns its vset, NULL when empty. Replies with WRONGTYPE
 * and sets *wrong when it holds something else. */
static struct vset *open_vset(RedisModuleCtx *ctx, RedisModuleString *name, int mode,
			      RedisModuleKey **key, bool *wrong)
{
	*wrong = false;
	*key = RedisModule_OpenKey(ctx, name, mode);
	int t = RedisModule_KeyType(*key);
	if (t == REDISMODULE_KEYTYPE_EMPTY)
		return NULL;
	if (t != REDISMODULE_KEYTYPE_MODULE || RedisModule_ModuleTypeGetType(*key) != vset_type) {
		*wrong = true;
		RedisModule_ReplyWithError(ctx,
			"WRONGTYPE Operation against a key holding the wrong kind of value");
		return NULL;
	}
	return RedisModule_ModuleTypeGetValue(*key);
}

static uint64_t proj_seed(RedisModuleString *key, uint32_t in, uint32_t out)
{
	size_t len;
	const char *s = RedisModule_StringPtrLen(key, &len);
	return ab_hash64(s, len, 0x6a09e667f3bcc908ULL) ^ ((uint64_t)in << 32) ^ out;
}

/* ---- writes ------------------------------------------------------------- */

static bool set_attr(struct vset *vs, struct velem *e, const char *json, size_t len)
{
	if (e->attr)
		vs->nattr--;
	free(e->attr);
	e->attr = NULL;
	e->attr_len = 0;
	if (len) {
		e->attr = ab_xstrndup(json, len);
		e->attr_len = len;
		vs->nattr++;
	}
	return true;
}

/* Inserts or replaces element name with vec (already projected). Returns 1
 * when added, 0 when an existing element got the new vector, or <0. Caller
 * holds the write lock. */
static int vset_put(struct vset *vs, const char *name, size_t name_len, const float *vec,
		    uint32_t ef, const char *attr, size_t attr_len, bool set_attr_too)
{
	struct velem *e = ab_dict_get(vs->elems, name, name_len);
	int added = e ? 0 : 1;
	if (e) {
		ab_hnsw_delete(vs->h, e->node);
		e->node = NULL;
	} else {
		e = ab_xcalloc(1, sizeof(*e));
		e->name = ab_xstrndup(name, name_len);
		e->name_len = name_len;
	}
	int rc = ab_hnsw_insert(vs->h, vec, e, ef, &e->node);
	if (rc < 0) {
		if (!added)
			ab_dict_del(vs->elems, e->name, e->name_len);
		if (e->attr)
			vs->nattr--;
		velem_free(e);
		return rc;
	}
	if (added)
		ab_dict_set(vs->elems, e->name, e->name_len, e);
	if (set_attr_too)
		set_attr(vs, e, attr, attr_len);
	return added;
}

void *ab_rm_vset_new(uint32_t dim, int quant, uint32_t m)
{
	struct ab_hnsw_params p = {.dim = dim, .quant = (enum ab_vq)quant, .m = m,
				   .ef_construction = VSET_DEFAULT_EF_CONSTRUCTION};
	return vset_new(&p, NULL);
}

int ab_rm_vset_put(void *value, const char *name, size_t len, const float *vec, const char *attr,
		   size_t attr_len)
{
	return vset_put(value, name, len, vec, 0, attr, attr_len, attr != NULL);
}

/* VADD key [REDUCE dim] (FP32 blob | VALUES n v..) element [CAS]
 *      [NOQUANT | Q8 | BIN] [EF n] [SETATTR json] [M n] */
static int cmd_vadd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc < 4)
		return RedisModule_WrongArity(ctx);
	int i = 2;
	long long reduce = 0;
	if (ab_rm_arg_is(argv[i], "REDUCE")) {
		if (i + 1 >= argc)
			return RedisModule_WrongArity(ctx);
		if (!ab_rm_arg_ll(ctx, argv[i + 1], 1, AB_HNSW_MAX_DIM, "REDUCE dimension", &reduce))
			return REDISMODULE_OK;
		i += 2;
	}
	float *vec = NULL;
	uint32_t dim = 0;
	if (!parse_vector(ctx, argv, argc, &i, &vec, &dim))
		return REDISMODULE_OK;
	int rc = REDISMODULE_OK;
	float *projected = NULL;
	if (i >= argc) {
		rc = RedisModule_WrongArity(ctx);
		goto out;
	}
	RedisModuleString *elem = argv[i++];
	int quant = -1;
	long long ef = 0, m = 0;
	const char *attr = NULL;
	size_t attr_len = 0;
	for (; i < argc; i++) {
		if (ab_rm_arg_is(argv[i], "CAS")) {
			/* Same result as without: the neighbour search runs on
			 * the main thread here. */
		} else if (ab_rm_arg_is(argv[i], "NOQUANT")) {
			quant = AB_VQ_F32;
		} else if (ab_rm_arg_is(argv[i], "Q8")) {
			quant = AB_VQ_Q8;
		} else if (ab_rm_arg_is(argv[i], "BIN")) {
			quant = AB_VQ_BIN;
		} else if (ab_rm_arg_is(argv[i], "EF") && i + 1 < argc) {
			if (!ab_rm_arg_ll(ctx, argv[++i], 1, 1000000, "EF", &ef))
				goto out;
		} else if (ab_rm_arg_is(argv[i], "M") && i + 1 < argc) {
			if (!ab_rm_arg_ll(ctx, argv[++i], 4, AB_HNSW_MAX_M, "M", &m))
				goto out;
		} else if (ab_rm_arg_is(argv[i], "SETATTR") && i + 1 < argc) {
			attr = RedisModule_StringPtrLen(argv[++i], &attr_len);
			if (attr_len && !ab_rm_json_object_ok(attr, attr_len)) {
				RedisModule_ReplyWithError(ctx, "ERR invalid JSON attribute: expected a JSON object");
				goto out;
			}
		} else {
			RedisModule_ReplyWithError(ctx, "ERR invalid option after the element");
			goto out;
		}
	}
	if (reduce && reduce > dim) {
		RedisModule_ReplyWithError(ctx, "ERR REDUCE dimension must not exceed the vector's");
		goto out;
	}
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = open_vset(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	if (wrong)
		goto close;
	if (!vs) {
		struct ab_hnsw_params p = {
			.dim = reduce ? (uint32_t)reduce : dim,
			.quant = quant < 0 ? AB_VQ_Q8 : (enum ab_vq)quant,
			.m = m ? (uint32_t)m : VSET_DEFAULT_M,
			.ef_construction = VSET_DEFAULT_EF_CONSTRUCTION,
			.seed = 0,
		};
		struct ab_vproj *proj = NULL;
		if (reduce && ab_vproj_new(dim, (uint32_t)reduce, proj_seed(argv[1], dim, (uint32_t)reduce),
					   &proj) < 0) {
			RedisModule_ReplyWithError(ctx, "ERR cannot create the projection");
			goto close;
		}
		vs = vset_new(&p, proj);
		if (!vs) {
			ab_vproj_free(proj);
			RedisModule_ReplyWithError(ctx, "ERR invalid vector set parameters");
			goto close;
		}
		RedisModule_ModuleTypeSetValue(key, vset_type, vs);
	} else {
		if (quant >= 0 && (enum ab_vq)quant != ab_hnsw_quant(vs->h)) {
			RedisModule_ReplyWithError(ctx, "ERR asked quantization mismatch with existing vector set");
			goto close;
		}
		if (m && (uint32_t)m != ab_hnsw_m(vs->h)) {
			RedisModule_ReplyWithError(ctx, "ERR asked M value mismatch with existing vector set");
			goto close;
		}
		if (reduce && (!vs->proj || ab_vproj_out_dim(vs->proj) != reduce)) {
			RedisModule_ReplyWithError(ctx, vs->proj
				? "ERR asked dimension reduction mismatch with existing vector set"
				: "ERR cannot add projection to existing set without projection");
			goto close;
		}
	}
	uint32_t want = vs->proj ? ab_vproj_in_dim(vs->proj) : ab_hnsw_dim(vs->h);
	if (dim != want) {
		char msg[128];
		snprintf(msg, sizeof(msg), "ERR Vector dimension mismatch - got %u but set has %u", dim, want);
		RedisModule_ReplyWithError(ctx, msg);
		goto close;
	}
	const float *use = vec;
	if (vs->proj) {
		projected = ab_xmalloc(ab_vproj_out_dim(vs->proj) * sizeof(float));
		ab_vproj_apply(vs->proj, vec, projected);
		use = projected;
	}
	size_t name_len;
	const char *name = RedisModule_StringPtrLen(elem, &name_len);
	pthread_rwlock_wrlock(&vs->lock);
	int added = vset_put(vs, name, name_len, use, (uint32_t)ef, attr, attr_len, attr != NULL);
	pthread_rwlock_unlock(&vs->lock);
	if (added < 0) {
		RedisModule_ReplyWithError(ctx, "ERR cannot insert the vector");
		if (ab_hnsw_count(vs->h) == 0)
			RedisModule_DeleteKey(key);
		goto close;
	}
	RedisModule_ReplyWithLongLong(ctx, added);
	RedisModule_ReplicateVerbatim(ctx);
close:
	RedisModule_CloseKey(key);
out:
	free(vec);
	free(projected);
	return rc;
}

/* VREM key element */
static int cmd_vrem(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = open_vset(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	if (wrong)
		goto out;
	size_t len;
	const char *name = RedisModule_StringPtrLen(argv[2], &len);
	struct velem *e = vs ? ab_dict_get(vs->elems, name, len) : NULL;
	if (!e) {
		RedisModule_ReplyWithLongLong(ctx, 0);
		goto out;
	}
	pthread_rwlock_wrlock(&vs->lock);
	ab_hnsw_delete(vs->h, e->node);
	ab_dict_del(vs->elems, e->name, e->name_len);
	if (e->attr)
		vs->nattr--;
	velem_free(e);
	pthread_rwlock_unlock(&vs->lock);
	if (ab_hnsw_count(vs->h) == 0)
		RedisModule_DeleteKey(key);
	RedisModule_ReplyWithLongLong(ctx, 1);
	RedisModule_ReplicateVerbatim(ctx);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* VSETATTR key element json ("" removes the attributes) */
static int cmd_vsetattr(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 4)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = open_vset(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	if (wrong)
		goto out;
	size_t len, alen;
	const char *name = RedisModule_StringPtrLen(argv[2], &len);
	const char *attr = RedisModule_StringPtrLen(argv[3], &alen);
	if (alen && !ab_rm_json_object_ok(attr, alen)) {
		RedisModule_ReplyWithError(ctx, "ERR invalid JSON attribute: expected a JSON object");
		goto out;
	}
	struct velem *e = vs ? ab_dict_get(vs->elems, name, len) : NULL;
	if (!e) {
		RedisModule_ReplyWithLongLong(ctx, 0);
		goto out;
	}
	pthread_rwlock_wrlock(&vs->lock);
	set_attr(vs, e, attr, alen);
	pthread_rwlock_unlock(&vs->lock);
	RedisModule_ReplyWithLongLong(ctx, 1);
	RedisModule_ReplicateVerbatim(ctx);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* ---- reads on the main thread ------------------------------------------- */

static struct vset *read_vset(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleKey **key,
			      bool *wrong)
{
	return open_vset(ctx, name, REDISMODULE_READ, key, wrong);
}

static int cmd_vcard(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 2)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (!wrong)
		RedisModule_ReplyWithLongLong(ctx, vs ? (long long)ab_hnsw_count(vs->h) : 0);
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_vdim(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 2)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (!wrong) {
		if (vs)
			RedisModule_ReplyWithLongLong(ctx, ab_hnsw_dim(vs->h));
		else
			RedisModule_ReplyWithError(ctx, "ERR key does not exist");
	}
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static struct velem *lookup(struct vset *vs, RedisModuleString *name)
{
	size_t len;
	const char *s = RedisModule_StringPtrLen(name, &len);
	return vs ? ab_dict_get(vs->elems, s, len) : NULL;
}

/* VEMB key element [RAW] */
static int cmd_vemb(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3 && argc != 4)
		return RedisModule_WrongArity(ctx);
	bool raw = argc == 4;
	if (raw && !ab_rm_arg_is(argv[3], "RAW"))
		return RedisModule_ReplyWithError(ctx, "ERR syntax error: expected RAW");
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (wrong)
		goto out;
	struct velem *e = lookup(vs, argv[2]);
	if (!e) {
		RedisModule_ReplyWithNull(ctx);
		goto out;
	}
	if (raw) {
		struct ab_hnsw_raw r;
		ab_hnsw_node_raw(vs->h, e->node, &r);
		enum ab_vq q = ab_hnsw_quant(vs->h);
		RedisModule_ReplyWithArray(ctx, q == AB_VQ_Q8 ? 4 : 3);
		RedisModule_ReplyWithSimpleString(ctx, quant_name(q, true));
		RedisModule_ReplyWithStringBuffer(ctx, r.data, r.len);
		RedisModule_ReplyWithDouble(ctx, r.norm);
		if (q == AB_VQ_Q8)
			RedisModule_ReplyWithDouble(ctx, r.range);
		goto out;
	}
	uint32_t dim = ab_hnsw_dim(vs->h);
	float *v = ab_xmalloc(dim * sizeof(float));
	ab_hnsw_node_vector(vs->h, e->node, v);
	RedisModule_ReplyWithArray(ctx, dim);
	for (uint32_t k = 0; k < dim; k++)
		RedisModule_ReplyWithDouble(ctx, v[k]);
	free(v);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_vgetattr(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (!wrong) {
		struct velem *e = lookup(vs, argv[2]);
		if (e && e->attr)
			RedisModule_ReplyWithStringBuffer(ctx, e->attr, e->attr_len);
		else
			RedisModule_ReplyWithNull(ctx);
	}
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_vismember(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (!wrong)
		RedisModule_ReplyWithLongLong(ctx, lookup(vs, argv[2]) ? 1 : 0);
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static int cmd_vinfo(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 2)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (wrong)
		goto out;
	if (!vs) {
		RedisModule_ReplyWithNull(ctx);
		goto out;
	}
	RedisModule_ReplyWithMap(ctx, 9);
	RedisModule_ReplyWithSimpleString(ctx, "quant-type");
	RedisModule_ReplyWithSimpleString(ctx, quant_name(ab_hnsw_quant(vs->h), false));
	RedisModule_ReplyWithSimpleString(ctx, "hnsw-m");
	RedisModule_ReplyWithLongLong(ctx, ab_hnsw_m(vs->h));
	RedisModule_ReplyWithSimpleString(ctx, "vector-dim");
	RedisModule_ReplyWithLongLong(ctx, ab_hnsw_dim(vs->h));
	RedisModule_ReplyWithSimpleString(ctx, "projection-input-dim");
	RedisModule_ReplyWithLongLong(ctx, vs->proj ? ab_vproj_in_dim(vs->proj) : 0);
	RedisModule_ReplyWithSimpleString(ctx, "size");
	RedisModule_ReplyWithLongLong(ctx, (long long)ab_hnsw_count(vs->h));
	RedisModule_ReplyWithSimpleString(ctx, "max-level");
	RedisModule_ReplyWithLongLong(ctx, ab_hnsw_max_level(vs->h));
	RedisModule_ReplyWithSimpleString(ctx, "attributes-count");
	RedisModule_ReplyWithLongLong(ctx, (long long)vs->nattr);
	RedisModule_ReplyWithSimpleString(ctx, "vset-uid");
	RedisModule_ReplyWithLongLong(ctx, (long long)vs->uid);
	RedisModule_ReplyWithSimpleString(ctx, "hnsw-max-node-uid");
	RedisModule_ReplyWithLongLong(ctx, ab_hnsw_next_id(vs->h));
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* VRANDMEMBER key [count] */
static int cmd_vrandmember(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 2 && argc != 3)
		return RedisModule_WrongArity(ctx);
	long long count = 0;
	if (argc == 3 && !ab_rm_arg_ll(ctx, argv[2], -VSET_MAX_COUNT, VSET_MAX_COUNT, "count", &count))
		return REDISMODULE_OK;
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (wrong)
		goto out;
	if (argc == 2) {
		struct velem *e = vs ? ab_dict_random(vs->elems, &vs->rng) : NULL;
		if (e)
			RedisModule_ReplyWithStringBuffer(ctx, e->name, e->name_len);
		else
			RedisModule_ReplyWithNull(ctx);
		goto out;
	}
	size_t n = vs ? ab_dict_count(vs->elems) : 0;
	if (!n || count == 0) {
		RedisModule_ReplyWithArray(ctx, 0);
		goto out;
	}
	if (count < 0) { /* duplicates allowed */
		RedisModule_ReplyWithArray(ctx, -count);
		for (long long k = 0; k < -count; k++) {
			struct velem *e = ab_dict_random(vs->elems, &vs->rng);
			RedisModule_ReplyWithStringBuffer(ctx, e->name, e->name_len);
		}
		goto out;
	}
	if ((size_t)count >= n) {
		RedisModule_ReplyWithArray(ctx, (long)n);
		size_t pos = 0;
		struct velem *e;
		while ((e = ab_dict_next(vs->elems, &pos, NULL, NULL)))
			RedisModule_ReplyWithStringBuffer(ctx, e->name, e->name_len);
		goto out;
	}
	/* Distinct picks: draw, and skip what was drawn already. */
	struct ab_dict *seen = ab_dict_new();
	RedisModule_ReplyWithArray(ctx, count);
	for (long long k = 0; k < count;) {
		struct velem *e = ab_dict_random(vs->elems, &vs->rng);
		if (ab_dict_get(seen, e->name, e->name_len))
			continue;
		ab_dict_set(seen, e->name, e->name_len, e);
		RedisModule_ReplyWithStringBuffer(ctx, e->name, e->name_len);
		k++;
	}
	ab_dict_free(seen, NULL);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* VLINKS key element [WITHSCORES]: the neighbours at each level, level 0 first. */
static int cmd_vlinks(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 3 && argc != 4)
		return RedisModule_WrongArity(ctx);
	bool scores = argc == 4;
	if (scores && !ab_rm_arg_is(argv[3], "WITHSCORES"))
		return RedisModule_ReplyWithError(ctx, "ERR syntax error: expected WITHSCORES");
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (wrong)
		goto out;
	struct velem *e = lookup(vs, argv[2]);
	if (!e) {
		RedisModule_ReplyWithNull(ctx);
		goto out;
	}
	int levels = ab_hnsw_node_level(e->node) + 1;
	uint32_t dim = ab_hnsw_dim(vs->h);
	float *v = ab_xmalloc(dim * sizeof(float));
	ab_hnsw_node_vector(vs->h, e->node, v);
	size_t cap = 2 * (size_t)ab_hnsw_m(vs->h) + 1;
	struct ab_hnsw_node **nb = ab_xmalloc(cap * sizeof(*nb));
	RedisModule_ReplyWithArray(ctx, levels);
	for (int l = 0; l < levels; l++) {
		size_t n = ab_hnsw_node_links(vs->h, e->node, l, nb, cap);
		if (n > cap)
			n = cap;
		if (scores)
			RedisModule_ReplyWithMap(ctx, (long)n);
		else
			RedisModule_ReplyWithArray(ctx, (long)n);
		for (size_t k = 0; k < n; k++) {
			struct velem *o = ab_hnsw_node_value(nb[k]);
			RedisModule_ReplyWithStringBuffer(ctx, o->name, o->name_len);
			if (scores)
				RedisModule_ReplyWithDouble(ctx, ab_hnsw_similarity(vs->h, v, nb[k]));
		}
	}
	free(nb);
	free(v);
out:
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

/* ---- VSIM --------------------------------------------------------------- */

struct vsim_job {
	struct ab_rm_search s; /* first: the shared search job (module.c) */
	struct vset *vs;       /* one reference held */
	float *query;
	size_t count;
	uint32_t ef;
	size_t filter_ef;
	double epsilon; /* < 0: none */
	bool truth;
};

static void vsim_free(struct ab_rm_search *s)
{
	struct vsim_job *j = (struct vsim_job *)s;
	free(j->query);
	free(j);
}

static void vsim_release(struct ab_rm_search *s)
{
	struct vsim_job *j = (struct vsim_job *)s;
	struct vset *vs = j->vs;
	j->vs = NULL;
	vset_release(vs);
}

static bool filter_accept(void *value, void *ctx)
{
	const struct velem *e = value;
	return e->attr && ab_filter_match(ctx, e->attr, e->attr_len);
}

/* Runs the search; copies what the reply needs. Takes the read lock. */
static void vsim_run(struct ab_rm_search *s)
{
	struct vsim_job *j = (struct vsim_job *)s;
	struct vset *vs = j->vs;
	pthread_rwlock_rdlock(&vs->lock);
	size_t n = ab_hnsw_count(vs->h);
	size_t k = j->count < n ? j->count : n;
	struct ab_hnsw_hit *hits = k ? ab_xmalloc(k * sizeof(*hits)) : NULL;
	int got = 0;
	if (k) {
		ab_hnsw_filter_fn fn = j->s.filter ? filter_accept : NULL;
		if (j->truth)
			got = ab_hnsw_search_exact(vs->h, j->query, k, fn, j->s.filter, hits);
		else
			got = ab_hnsw_search(vs->h, j->query, k, j->ef, fn, j->s.filter, j->filter_ef, hits);
	}
	if (got < 0) {
		j->s.error = "ERR search failed";
		got = 0;
	}
	j->s.hits = got ? ab_xcalloc((size_t)got, sizeof(*j->s.hits)) : NULL;
	for (int x = 0; x < got; x++) {
		if (j->epsilon >= 0 && hits[x].score < 1.0 - j->epsilon)
			continue;
		const struct velem *e = ab_hnsw_node_value(hits[x].node);
		struct ab_rm_hit *h = &j->s.hits[j->s.nhits++];
		h->name = ab_xstrndup(e->name, e->name_len);
		h->name_len = e->name_len;
		h->score = hits[x].score;
		if (j->s.withattribs && e->attr) {
			h->attr = ab_xstrndup(e->attr, e->attr_len);
			h->attr_len = e->attr_len;
		}
	}
	pthread_rwlock_unlock(&vs->lock);
	free(hits);
}

/* VSIM key (ELE name | FP32 blob | VALUES n v..) [WITHSCORES] [WITHATTRIBS]
 *      [COUNT n] [EPSILON d] [EF n] [FILTER expr] [FILTER-EF n] [TRUTH]
 *      [NOTHREAD] */
static int cmd_vsim(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc < 4)
		return RedisModule_WrongArity(ctx);
	struct vsim_job *j = ab_xcalloc(1, sizeof(*j));
	j->s.run = vsim_run;
	j->s.release = vsim_release;
	j->s.free = vsim_free;
	j->count = VSET_DEFAULT_COUNT;
	j->epsilon = -1;
	bool nothread = false, have_filter_ef = false;
	long long filter_ef = 0;
	RedisModuleKey *key = NULL;
	int i = 2;
	RedisModuleString *ele = NULL;
	uint32_t qdim = 0;
	if (ab_rm_arg_is(argv[i], "ELE")) {
		ele = argv[i + 1];
		i += 2;
	} else if (!parse_vector(ctx, argv, argc, &i, &j->query, &qdim)) {
		goto fail;
	}
	for (; i < argc; i++) {
		bool has = i + 1 < argc;
		if (ab_rm_arg_is(argv[i], "WITHSCORES")) {
			j->s.withscores = true;
		} else if (ab_rm_arg_is(argv[i], "WITHATTRIBS")) {
			j->s.withattribs = true;
		} else if (ab_rm_arg_is(argv[i], "TRUTH")) {
			j->truth = true;
		} else if (ab_rm_arg_is(argv[i], "NOTHREAD")) {
			nothread = true;
		} else if (ab_rm_arg_is(argv[i], "COUNT") && has) {
			long long c;
			if (!ab_rm_arg_ll(ctx, argv[++i], 1, VSET_MAX_COUNT, "COUNT", &c))
				goto fail;
			j->count = (size_t)c;
		} else if (ab_rm_arg_is(argv[i], "EF") && has) {
			long long ef;
			if (!ab_rm_arg_ll(ctx, argv[++i], 1, 1000000, "EF", &ef))
				goto fail;
			j->ef = (uint32_t)ef;
		} else if (ab_rm_arg_is(argv[i], "EPSILON") && has) {
			if (!ab_rm_arg_double(ctx, argv[++i], 0, 1, "EPSILON", &j->epsilon))
				goto fail;
		} else if (ab_rm_arg_is(argv[i], "FILTER-EF") && has) {
			if (!ab_rm_arg_ll(ctx, argv[++i], 0, VSET_MAX_COUNT, "FILTER-EF", &filter_ef))
				goto fail;
			have_filter_ef = true;
		} else if (ab_rm_arg_is(argv[i], "FILTER") && has) {
			if (!ab_rm_arg_filter(ctx, argv[++i], &j->s.filter))
				goto fail;
		} else {
			RedisModule_ReplyWithError(ctx, "ERR syntax error in VSIM command");
			goto fail;
		}
	}
	j->s.resp3 = ab_rm_resp3(ctx);
	if (!j->ef)
		j->ef = VSET_DEFAULT_EF_SEARCH;
	if (j->ef < j->count && j->count <= 1000000)
		j->ef = (uint32_t)j->count;
	j->filter_ef = have_filter_ef ? (size_t)filter_ef : j->count * 100;

	bool wrong;
	struct vset *vs = read_vset(ctx, argv[1], &key, &wrong);
	if (wrong)
		goto fail;
	if (!vs) {
		RedisModule_ReplyWithArray(ctx, 0);
		goto fail;
	}
	uint32_t dim = ab_hnsw_dim(vs->h);
	if (ele) {
		struct velem *e = lookup(vs, ele);
		if (!e) {
			RedisModule_ReplyWithError(ctx, "ERR element not found in set");
			goto fail;
		}
		j->query = ab_xmalloc(dim * sizeof(float));
		ab_hnsw_node_vector(vs->h, e->node, j->query);
	} else {
		uint32_t want = vs->proj ? ab_vproj_in_dim(vs->proj) : dim;
		if (qdim != want) {
			char msg[128];
			snprintf(msg, sizeof(msg),
				 "ERR Vector dimension mismatch - got %u but set has %u", qdim, want);
			RedisModule_ReplyWithError(ctx, msg);
			goto fail;
		}
		if (vs->proj) {
			float *p = ab_xmalloc(dim * sizeof(float));
			ab_vproj_apply(vs->proj, j->query, p);
			free(j->query);
			j->query = p;
		}
	}
	j->vs = vs;
	atomic_fetch_add(&vs->refs, 1);
	RedisModule_CloseKey(key);
	ab_rm_search_start(ctx, &j->s, nothread);
	return REDISMODULE_OK;
fail:
	if (key)
		RedisModule_CloseKey(key);
	ab_filter_free(j->s.filter);
	vsim_free(&j->s);
	return REDISMODULE_OK;
}

/* ---- persistence ------------------------------------------------------- */

static void save_links(RedisModuleIO *io, struct vset *vs, struct ab_hnsw_node *n, int level,
		       struct ab_hnsw_node **buf, size_t cap, uint32_t *ids)
{
	size_t k = ab_hnsw_node_links(vs->h, n, level, buf, cap);
	if (k > cap)
		k = cap;
	for (size_t x = 0; x < k; x++) {
		uint32_t id = ab_hnsw_node_id(buf[x]);
		memcpy(&ids[x], &id, 4); /* little-endian on every platform we build */
	}
	RedisModule_SaveStringBuffer(io, (const char *)ids, k * 4);
}

void ab_rm_vset_rdb_save(RedisModuleIO *io, void *value)
{
	struct vset *vs = value;
	RedisModule_SaveUnsigned(io, ab_hnsw_dim(vs->h));
	RedisModule_SaveUnsigned(io, ab_hnsw_quant(vs->h));
	RedisModule_SaveUnsigned(io, ab_hnsw_m(vs->h));
	RedisModule_SaveUnsigned(io, ab_hnsw_ef_construction(vs->h));
	if (vs->proj) {
		uint32_t in = ab_vproj_in_dim(vs->proj), out = ab_vproj_out_dim(vs->proj);
		RedisModule_SaveUnsigned(io, in);
		RedisModule_SaveStringBuffer(io, (const char *)ab_vproj_matrix(vs->proj),
					     (size_t)in * out * sizeof(float));
	} else {
		RedisModule_SaveUnsigned(io, 0);
	}
	RedisModule_SaveUnsigned(io, ab_hnsw_count(vs->h));
	size_t cap = 2 * (size_t)ab_hnsw_m(vs->h) + 1;
	struct ab_hnsw_node **buf = ab_xmalloc(cap * sizeof(*buf));
	uint32_t *ids = ab_xmalloc(cap * sizeof(*ids));
	for (struct ab_hnsw_node *n = ab_hnsw_first(vs->h); n; n = ab_hnsw_next(vs->h, n)) {
		const struct velem *e = ab_hnsw_node_value(n);
		struct ab_hnsw_raw raw;
		ab_hnsw_node_raw(vs->h, n, &raw);
		RedisModule_SaveStringBuffer(io, e->name, e->name_len);
		RedisModule_SaveStringBuffer(io, e->attr ? e->attr : "", e->attr_len);
		RedisModule_SaveUnsigned(io, ab_hnsw_node_id(n));
		RedisModule_SaveUnsigned(io, (uint64_t)ab_hnsw_node_level(n));
		RedisModule_SaveStringBuffer(io, raw.data, raw.len);
		RedisModule_SaveFloat(io, raw.norm);
		RedisModule_SaveFloat(io, raw.range);
		for (int l = 0; l <= ab_hnsw_node_level(n); l++)
			save_links(io, vs, n, l, buf, cap, ids);
	}
	free(buf);
	free(ids);
}

/* One node's links, read while loading: applied after every node exists. */
struct pending_links {
	struct ab_hnsw_node *node;
	int level;
	uint32_t *ids;
	size_t count;
};

void *ab_rm_vset_rdb_load(RedisModuleIO *io, int encver)
{
	if (encver != VSET_ENCVER) {
		RedisModule_LogIOError(io, "warning", "autobot: unknown vector set encoding %d", encver);
		return NULL;
	}
	struct vset *vs = NULL;
	struct ab_vproj *proj = NULL;
	struct pending_links *pl = NULL;
	size_t npl = 0, cappl = 0;
	char *matrix = NULL;
	bool ok = false;
	struct ab_hnsw_params p = {0};
	uint64_t dim = RedisModule_LoadUnsigned(io);
	uint64_t quant = RedisModule_LoadUnsigned(io);
	uint64_t m = RedisModule_LoadUnsigned(io);
	uint64_t efc = RedisModule_LoadUnsigned(io);
	uint64_t in = RedisModule_LoadUnsigned(io);
	if (RedisModule_IsIOError(io) || dim == 0 || dim > AB_HNSW_MAX_DIM || quant > AB_VQ_BIN ||
	    m < 2 || m > AB_HNSW_MAX_M || efc == 0 || efc > 1000000 || in > AB_HNSW_MAX_DIM)
		goto out;
	if (in) {
		size_t len;
		matrix = RedisModule_LoadStringBuffer(io, &len);
		if (RedisModule_IsIOError(io) || !matrix || len != in * dim * sizeof(float) ||
		    ab_vproj_from_matrix((uint32_t)in, (uint32_t)dim, (const float *)(void *)matrix,
					 &proj) < 0)
			goto out;
	}
	p.dim = (uint32_t)dim;
	p.quant = (enum ab_vq)quant;
	p.m = (uint32_t)m;
	p.ef_construction = (uint32_t)efc;
	vs = vset_new(&p, proj);
	if (!vs)
		goto out;
	proj = NULL;
	uint64_t count = RedisModule_LoadUnsigned(io);
	if (RedisModule_IsIOError(io) || count > (1ULL << 31))
		goto out;
	for (uint64_t c = 0; c < count; c++) {
		size_t nlen, alen, rlen;
		char *name = RedisModule_LoadStringBuffer(io, &nlen);
		char *attr = RedisModule_LoadStringBuffer(io, &alen);
		uint64_t id = RedisModule_LoadUnsigned(io);
		uint64_t level = RedisModule_LoadUnsigned(io);
		char *rawdata = RedisModule_LoadStringBuffer(io, &rlen);
		float norm = RedisModule_LoadFloat(io);
		float range = RedisModule_LoadFloat(io);
		bool good = !RedisModule_IsIOError(io) && name && attr && rawdata &&
			    level < AB_HNSW_MAX_LEVEL && id < (1ULL << 31) &&
			    !ab_dict_get(vs->elems, name, nlen);
		struct velem *e = NULL;
		if (good) {
			e = ab_xcalloc(1, sizeof(*e));
			e->name = ab_xstrndup(name, nlen);
			e->name_len = nlen;
			struct ab_hnsw_raw raw = {.data = rawdata, .len = rlen, .norm = norm, .range = range};
			if (ab_hnsw_restore_node(vs->h, (uint32_t)id, (int)level, &raw, e, &e->node) < 0) {
				velem_free(e);
				good = false;
			} else {
				ab_dict_set(vs->elems, e->name, e->name_len, e);
				if (alen)
					set_attr(vs, e, attr, alen);
			}
		}
		if (name)
			RedisModule_Free(name);
		if (attr)
			RedisModule_Free(attr);
		if (rawdata)
			RedisModule_Free(rawdata);
		if (!good)
			goto out;
		for (uint64_t l = 0; l <= level; l++) {
			size_t blen;
			char *b = RedisModule_LoadStringBuffer(io, &blen);
			if (RedisModule_IsIOError(io) || !b || blen % 4) {
				if (b)
					RedisModule_Free(b);
				goto out;
			}
			if (npl == cappl) {
				cappl = cappl ? cappl * 2 : 64;
				pl = ab_xrealloc(pl, cappl * sizeof(*pl));
			}
			pl[npl].node = e->node;
			pl[npl].level = (int)l;
			pl[npl].count = blen / 4;
			pl[npl].ids = ab_xmalloc(blen ? blen : 1);
			memcpy(pl[npl].ids, b, blen);
			npl++;
			RedisModule_Free(b);
		}
	}
	for (size_t k = 0; k < npl; k++)
		if (ab_hnsw_restore_links(vs->h, pl[k].node, pl[k].level, pl[k].ids, pl[k].count) < 0)
			goto out;
	if (ab_hnsw_restore_end(vs->h) < 0)
		goto out;
	ok = true;
out:
	for (size_t k = 0; k < npl; k++)
		free(pl[k].ids);
	free(pl);
	if (matrix)
		RedisModule_Free(matrix);
	ab_vproj_free(proj);
	if (!ok) {
		RedisModule_LogIOError(io, "warning", "autobot: corrupt vector set in RDB, not loaded");
		if (vs)
			vset_destroy(vs);
		return NULL;
	}
	return vs;
}

static void vset_aof_rewrite(RedisModuleIO *aof, RedisModuleString *key, void *value)
{
	struct vset *vs = value;
	const char *q = quant_name(ab_hnsw_quant(vs->h), true);
	if (vs->proj) {
		uint32_t in = ab_vproj_in_dim(vs->proj), out = ab_vproj_out_dim(vs->proj);
		RedisModule_EmitAOF(aof, "AB.VCREATE", "sllccb", key, (long long)ab_hnsw_dim(vs->h),
				    (long long)ab_hnsw_m(vs->h), q, "PROJ",
				    (const char *)ab_vproj_matrix(vs->proj), (size_t)in * out * sizeof(float));
	} else {
		RedisModule_EmitAOF(aof, "AB.VCREATE", "sllc", key, (long long)ab_hnsw_dim(vs->h),
				    (long long)ab_hnsw_m(vs->h), q);
	}
	for (struct ab_hnsw_node *n = ab_hnsw_first(vs->h); n; n = ab_hnsw_next(vs->h, n)) {
		const struct velem *e = ab_hnsw_node_value(n);
		struct ab_hnsw_raw raw;
		ab_hnsw_node_raw(vs->h, n, &raw);
		float nr[2] = {raw.norm, raw.range};
		RedisModule_EmitAOF(aof, "AB.VADDRAW", "sbbbb", key, e->name, e->name_len,
				    (const char *)raw.data, raw.len, (const char *)nr, sizeof(nr),
				    e->attr ? e->attr : "", e->attr_len);
	}
}

/* AB.VCREATE key dim m quant [PROJ matrix]: an empty set with these
 * parameters, for the AOF rewrite. The projection's input dimension is the
 * matrix size over dim. */
static int cmd_vcreate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 5 && argc != 7)
		return RedisModule_WrongArity(ctx);
	long long dim, m;
	if (!ab_rm_arg_ll(ctx, argv[2], 1, AB_HNSW_MAX_DIM, "dimension", &dim) ||
	    !ab_rm_arg_ll(ctx, argv[3], 2, AB_HNSW_MAX_M, "M", &m))
		return REDISMODULE_OK;
	enum ab_vq q;
	if (ab_rm_arg_is(argv[4], "fp32"))
		q = AB_VQ_F32;
	else if (ab_rm_arg_is(argv[4], "q8"))
		q = AB_VQ_Q8;
	else if (ab_rm_arg_is(argv[4], "bin"))
		q = AB_VQ_BIN;
	else
		return RedisModule_ReplyWithError(ctx, "ERR unknown quantization");
	struct ab_vproj *proj = NULL;
	if (argc == 7) {
		size_t len;
		const char *mx = RedisModule_StringPtrLen(argv[6], &len);
		size_t row = (size_t)dim * sizeof(float);
		if (!ab_rm_arg_is(argv[5], "PROJ") || len == 0 || len % row ||
		    len / row > AB_HNSW_MAX_DIM)
			return RedisModule_ReplyWithError(ctx, "ERR invalid projection matrix");
		float *copy = ab_xmalloc(len);
		memcpy(copy, mx, len);
		int rc = ab_vproj_from_matrix((uint32_t)(len / row), (uint32_t)dim, copy, &proj);
		free(copy);
		if (rc < 0)
			return RedisModule_ReplyWithError(ctx, "ERR invalid projection matrix");
	}
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = open_vset(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	if (wrong || vs) {
		if (vs)
			RedisModule_ReplyWithError(ctx, "ERR key exists");
		ab_vproj_free(proj);
		RedisModule_CloseKey(key);
		return REDISMODULE_OK;
	}
	struct ab_hnsw_params p = {.dim = (uint32_t)dim, .quant = q, .m = (uint32_t)m,
				   .ef_construction = VSET_DEFAULT_EF_CONSTRUCTION};
	vs = vset_new(&p, proj);
	if (!vs) {
		ab_vproj_free(proj);
		RedisModule_CloseKey(key);
		return RedisModule_ReplyWithError(ctx, "ERR invalid vector set parameters");
	}
	RedisModule_ModuleTypeSetValue(key, vset_type, vs);
	RedisModule_CloseKey(key);
	RedisModule_ReplicateVerbatim(ctx);
	return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* AB.VADDRAW key element raw norm+range attr: an element from its stored
 * form (see vset_aof_rewrite). */
static int cmd_vaddraw(RedisModuleCtx *ctx, RedisModuleString **argv, int argc)
{
	if (argc != 6)
		return RedisModule_WrongArity(ctx);
	RedisModuleKey *key;
	bool wrong;
	struct vset *vs = open_vset(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &wrong);
	float *v = NULL;
	if (wrong)
		goto out;
	if (!vs) {
		RedisModule_ReplyWithError(ctx, "ERR no such vector set (AB.VCREATE first)");
		goto out;
	}
	size_t nlen, rlen, nrlen, alen;
	const char *name = RedisModule_StringPtrLen(argv[2], &nlen);
	const unsigned char *raw = (const unsigned char *)RedisModule_StringPtrLen(argv[3], &rlen);
	const char *nr = RedisModule_StringPtrLen(argv[4], &nrlen);
	const char *attr = RedisModule_StringPtrLen(argv[5], &alen);
	uint32_t dim = ab_hnsw_dim(vs->h);
	enum ab_vq q = ab_hnsw_quant(vs->h);
	size_t want = q == AB_VQ_F32 ? (size_t)dim * 4 : q == AB_VQ_Q8 ? dim : (dim + 7) / 8;
	float norm_range[2];
	if (rlen != want || nrlen != sizeof(norm_range) ||
	    (alen && !ab_rm_json_object_ok(attr, alen))) {
		RedisModule_ReplyWithError(ctx, "ERR invalid raw element");
		goto out;
	}
	memcpy(norm_range, nr, sizeof(norm_range));
	v = ab_xmalloc(dim * sizeof(float));
	for (uint32_t k = 0; k < dim; k++) {
		float c;
		if (q == AB_VQ_F32)
			memcpy(&c, raw + 4 * k, 4);
		else if (q == AB_VQ_Q8)
			c = (float)(int8_t)raw[k] * norm_range[1] / 127.0f;
		else
			c = (raw[k / 8] >> (k % 8)) & 1 ? 1.0f : -1.0f;
		v[k] = c;
	}
	/* Scale to the saved norm, so that VEMB keeps answering the same. */
	double ss = 0;
	for (uint32_t k = 0; k < dim; k++)
		ss += (double)v[k] * v[k];
	if (ss > 0 && isfinite(norm_range[0]))
		for (uint32_t k = 0; k < dim; k++)
			v[k] = (float)(v[k] / sqrt(ss) * norm_range[0]);
	pthread_rwlock_wrlock(&vs->lock);
	int added = vset_put(vs, name, nlen, v, 0, attr, alen, true);
	pthread_rwlock_unlock(&vs->lock);
	if (added < 0)
		RedisModule_ReplyWithError(ctx, "ERR cannot insert the vector");
	else
		RedisModule_ReplyWithLongLong(ctx, added);
	if (added >= 0)
		RedisModule_ReplicateVerbatim(ctx);
out:
	free(v);
	RedisModule_CloseKey(key);
	return REDISMODULE_OK;
}

static size_t vset_mem_usage(const void *value)
{
	const struct vset *vs = value;
	size_t n = sizeof(*vs) + ab_hnsw_memory(vs->h) + ab_dict_memory(vs->elems);
	size_t pos = 0;
	const struct velem *e;
	while ((e = ab_dict_next(vs->elems, &pos, NULL, NULL)))
		n += sizeof(*e) + e->name_len + 1 + (e->attr ? e->attr_len + 1 : 0);
	if (vs->proj)
		n += (size_t)ab_vproj_in_dim(vs->proj) * ab_vproj_out_dim(vs->proj) * sizeof(float);
	return n;
}

void ab_rm_vset_free(void *value)
{
	vset_release(value);
}

int ab_rm_vset_register(RedisModuleCtx *ctx)
{
	static struct ab_rm_type_methods tm = {
		.version = 1,
		.rdb_load = ab_rm_vset_rdb_load,
		.rdb_save = ab_rm_vset_rdb_save,
		.aof_rewrite = vset_aof_rewrite,
		.mem_usage = vset_mem_usage,
		.free = ab_rm_vset_free,
	};
	vset_type = RedisModule_CreateDataType(ctx, "vectorset", VSET_ENCVER, &tm);
	if (!vset_type)
		return REDISMODULE_ERR;
	static const struct {
		const char *name;
		RedisModuleCmdFunc fn;
		const char *flags;
	} cmds[] = {
		{"VADD", cmd_vadd, "write deny-oom"},
		{"VREM", cmd_vrem, "write"},
		{"VSETATTR", cmd_vsetattr, "write deny-oom fast"},
		{"VSIM", cmd_vsim, "readonly"},
		{"VCARD", cmd_vcard, "readonly fast"},
		{"VDIM", cmd_vdim, "readonly fast"},
		{"VEMB", cmd_vemb, "readonly fast"},
		{"VINFO", cmd_vinfo, "readonly fast"},
		{"VGETATTR", cmd_vgetattr, "readonly fast"},
		{"VISMEMBER", cmd_vismember, "readonly fast"},
		{"VRANDMEMBER", cmd_vrandmember, "readonly"},
		{"VLINKS", cmd_vlinks, "readonly"},
		{"AB.VCREATE", cmd_vcreate, "write deny-oom"},
		{"AB.VADDRAW", cmd_vaddraw, "write deny-oom"},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (RedisModule_CreateCommand(ctx, cmds[i].name, cmds[i].fn, cmds[i].flags, 1, 1, 1) ==
		    REDISMODULE_ERR)
			return REDISMODULE_ERR;
	return REDISMODULE_OK;
}
