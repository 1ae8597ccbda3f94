/*
 * hnsw.h - an HNSW (hierarchical navigable small world) index of vectors
 * under cosine similarity, with FP32 / int8 / binary storage, exact
 * brute-force search for checks, and a random projection for REDUCE.
 *
 * The engine knows nothing of Redis: the module (src/redismod) keeps one
 * struct ab_hnsw per vector-set key and maps element names to nodes through
 * the opaque `value` pointer each node carries.
 *
 * Locking contract: the engine takes no locks. Any number of searches
 * (ab_hnsw_search, _search_exact, _node_*, _first/_next, _random,
 * _similarity) may run at the same time on different threads; inserts,
 * deletes and restores need the index to themselves. The caller holds a
 * read-write lock around the index to guarantee that.
 *
 * Scores: every search returns similarity = (1 + cos) / 2, in [0, 1], 1 for
 * the same direction, 0 for the opposite one (the Redis vector-set
 * convention). Vectors are normalised on insert; the norm is kept so that
 * ab_hnsw_node_vector() gives back (an approximation of) the original.
 */
#ifndef AB_HNSW_H
#define AB_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ab_vq {
	AB_VQ_F32 = 0, /* 4 bytes a component (NOQUANT) */
	AB_VQ_Q8 = 1,  /* int8 a component with a per-vector range (the default) */
	AB_VQ_BIN = 2, /* 1 bit a component: 1 for > 0 (a zero counts as negative);
			* cos is taken as 1 - 2 * hamming / dim */
};

struct ab_hnsw_params {
	uint32_t dim;             /* 1 .. AB_HNSW_MAX_DIM */
	enum ab_vq quant;
	uint32_t m;               /* links per node above level 0 (level 0: 2*m); 0 = 16 */
	uint32_t ef_construction; /* 0 = 200 */
	uint64_t seed;            /* level draws; same seed + same inserts = same graph */
};

#define AB_HNSW_MAX_DIM 65536
#define AB_HNSW_MAX_M 512
#define AB_HNSW_MAX_LEVEL 32 /* node levels are 0 .. AB_HNSW_MAX_LEVEL - 1 */

struct ab_hnsw;      /* opaque */
struct ab_hnsw_node; /* opaque; valid until deleted or the index is freed */

struct ab_hnsw_hit {
	struct ab_hnsw_node *node;
	float score; /* (1 + cos) / 2 */
};

/* Creates an empty index. 0, or AB_EINVAL for a bad parameter. The caller
 * frees *out with ab_hnsw_free. */
int ab_hnsw_new(const struct ab_hnsw_params *p, struct ab_hnsw **out);
/* Frees the index and every node; calls free_value (if not NULL) on each
 * node's value. Accepts NULL. */
void ab_hnsw_free(struct ab_hnsw *h, void (*free_value)(void *value));

uint32_t ab_hnsw_dim(const struct ab_hnsw *h);
enum ab_vq ab_hnsw_quant(const struct ab_hnsw *h);
uint32_t ab_hnsw_m(const struct ab_hnsw *h);
uint32_t ab_hnsw_ef_construction(const struct ab_hnsw *h);
uint64_t ab_hnsw_count(const struct ab_hnsw *h);
int ab_hnsw_max_level(const struct ab_hnsw *h); /* -1 when empty */
uint32_t ab_hnsw_next_id(const struct ab_hnsw *h); /* one past the largest id ever given */
/* Bytes held: nodes (vectors, links, in-link lists), the id table, the live
 * array and the search scratch pool; malloc's own overhead not included. */
size_t ab_hnsw_memory(const struct ab_hnsw *h);
/* Checks every internal invariant (links within caps and levels, no self
 * or duplicate links, in-link lists matching the links, level counts,
 * entry point, free ids): 0, or AB_EPROTO on the first violation, AB_EINVAL
 * while a restore is under way. O(links); for tests and debugging. */
int ab_hnsw_check(const struct ab_hnsw *h);
/* The name of the distance kernels this CPU runs ("avx512-vnni", "avx2",
 * "scalar", ...), a static string. */
const char *ab_hnsw_kernels(void);

/* Inserts a copy of vec (dim floats). value is stored as is: the caller owns
 * it (ab_hnsw_delete hands it back; ab_hnsw_free passes it to free_value).
 * ef 0 means the index's ef_construction. 0 or AB_EINVAL (NaN/Inf in vec, or
 * a restore under way or failed); AB_ETOOBIG past 2^31 ids. The node in *out
 * (out may be NULL) belongs to the index. Ids of deleted nodes are reused. */
int ab_hnsw_insert(struct ab_hnsw *h, const float *vec, void *value, uint32_t ef,
		   struct ab_hnsw_node **out);
/* Removes node (of h, after any restore has ended) and repairs its
 * neighbours' links so that the graph stays navigable (see hnsw.c); frees
 * the node and returns its value for the caller to free. */
void *ab_hnsw_delete(struct ab_hnsw *h, struct ab_hnsw_node *node);

void *ab_hnsw_node_value(const struct ab_hnsw_node *n);
void ab_hnsw_node_set_value(struct ab_hnsw_node *n, void *value);
uint32_t ab_hnsw_node_id(const struct ab_hnsw_node *n); /* stable while it lives */
int ab_hnsw_node_level(const struct ab_hnsw_node *n);
/* Writes dim floats: the stored vector times its original norm. */
void ab_hnsw_node_vector(const struct ab_hnsw *h, const struct ab_hnsw_node *n, float *out);
/* The neighbours of n at level (0 .. node level): up to cap written to out;
 * returns how many n has. */
size_t ab_hnsw_node_links(const struct ab_hnsw *h, const struct ab_hnsw_node *n, int level,
			  struct ab_hnsw_node **out, size_t cap);
/* Similarity (1 + cos) / 2 between a query (dim floats) and a node, the
 * query quantised as in ab_hnsw_search; 0 for a query with NaN/Inf. */
float ab_hnsw_similarity(const struct ab_hnsw *h, const float *query, const struct ab_hnsw_node *n);

/* Optional filter: return true to accept a node's value. */
typedef bool (*ab_hnsw_filter_fn)(void *value, void *ctx);

/* Approximate k nearest nodes to query (dim floats, need not be normalised),
 * best first, written to hits (room for k). ef is the size of the candidate
 * list: 0 means 100, and an ef below k is raised to k. With a filter, only
 * accepted nodes are returned and the search visits at most max_visits
 * nodes (0 = no bound) looking for k of them. Returns the number of hits
 * (0..k) or AB_EINVAL. Safe to run concurrently with other searches.
 * max_visits counts distance evaluations and bounds unfiltered searches
 * too. The query is encoded like a stored vector (Q8: int8 with its own
 * range; BIN: sign bits), so scores are those of the quantised vectors. */
int ab_hnsw_search(const struct ab_hnsw *h, const float *query, size_t k, uint32_t ef,
		   ab_hnsw_filter_fn filter, void *ctx, size_t max_visits,
		   struct ab_hnsw_hit *hits);
/* The same by scanning every node (exact up to quantisation). */
int ab_hnsw_search_exact(const struct ab_hnsw *h, const float *query, size_t k,
			 ab_hnsw_filter_fn filter, void *ctx, struct ab_hnsw_hit *hits);

/* A uniformly random node (NULL when empty). *rng is the caller's state
 * (any value; advanced by each call). */
struct ab_hnsw_node *ab_hnsw_random(const struct ab_hnsw *h, uint64_t *rng);
/* Walks every node (order unspecified, stable while the index is unchanged). */
struct ab_hnsw_node *ab_hnsw_first(const struct ab_hnsw *h);
struct ab_hnsw_node *ab_hnsw_next(const struct ab_hnsw *h, const struct ab_hnsw_node *n);

/* Persistence (the module's RDB). A node's stored form: */
struct ab_hnsw_raw {
	const void *data; /* quantised components: dim*4, dim, or (dim+7)/8 bytes */
	size_t len;
	float norm;       /* original L2 norm */
	float range;      /* Q8 only: the value int8 127 stands for; else 0 */
};
void ab_hnsw_node_raw(const struct ab_hnsw *h, const struct ab_hnsw_node *n, struct ab_hnsw_raw *raw);

/* Restoring a saved graph into a new, empty index made with the saved
 * params: restore_node for every node (any order), restore_links for every
 * node and level, then restore_end, which checks the whole graph (every
 * link names a restored node of a high enough level, no self link, at most
 * the level's link cap, ids unique and below 2^31, raw lengths right) and
 * sets the entry point. Any error is AB_EPROTO (or AB_EINVAL), never a
 * crash: the input comes from a file. After an error the caller only frees
 * the index (its values included). restore_node copies raw->data; the
 * node keeps value. Also rejected: a level outside 0..AB_HNSW_MAX_LEVEL-1,
 * NaN/Inf or negative norm/range, NaN/Inf FP32 components, Q8 bytes of
 * -128 (the quantiser never writes them), duplicate links in one list. A
 * missing restore_links call means no links at that level. Ids are kept
 * (next_id = largest + 1, the holes reused first) unless they are very
 * sparse (largest > 4 * count + 2^20): then they are renumbered densely in
 * the same order, so callers must not keep ids across a reload. */
int ab_hnsw_restore_node(struct ab_hnsw *h, uint32_t id, int level, const struct ab_hnsw_raw *raw,
			 void *value, struct ab_hnsw_node **out);
int ab_hnsw_restore_links(struct ab_hnsw *h, struct ab_hnsw_node *n, int level,
			  const uint32_t *ids, size_t count);
int ab_hnsw_restore_end(struct ab_hnsw *h);

/* Random projection for REDUCE: out_dim x in_dim Gaussian matrix scaled by
 * 1/sqrt(out_dim), drawn from seed (vproj.c). Dimensions 1..AB_HNSW_MAX_DIM
 * with out_dim * in_dim <= AB_VPROJ_MAX_ELEMS, else AB_EINVAL. The caller
 * frees *out with ab_vproj_free. */
#define AB_VPROJ_MAX_ELEMS (1u << 26)
struct ab_vproj;
int ab_vproj_new(uint32_t in_dim, uint32_t out_dim, uint64_t seed, struct ab_vproj **out);
/* Takes a copy of a saved matrix (out_dim*in_dim floats, row by row); any
 * NaN/Inf in it is AB_EINVAL. */
int ab_vproj_from_matrix(uint32_t in_dim, uint32_t out_dim, const float *m, struct ab_vproj **out);
void ab_vproj_free(struct ab_vproj *p); /* accepts NULL */
uint32_t ab_vproj_in_dim(const struct ab_vproj *p);
uint32_t ab_vproj_out_dim(const struct ab_vproj *p);
const float *ab_vproj_matrix(const struct ab_vproj *p); /* owned by p */
/* out (out_dim floats) = matrix x in (in_dim floats). */
void ab_vproj_apply(const struct ab_vproj *p, const float *in, float *out);

#endif
