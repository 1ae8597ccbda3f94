/*
 * hnsw.c - the HNSW index of hnsw.h: insert, delete with repair, search
 * (approximate, filtered, exact), persistence and introspection.
 *
 * The algorithm is Malkov and Yashunin's (arXiv:1603.09320): every node
 * draws a top level from a geometric distribution (floor(-ln U / ln M),
 * from a seeded xoshiro256**, so that the same seed and the same inserts
 * give the same graph); level l > 0 keeps up to M links a node, level 0 up
 * to 2M; an insert descends greedily from the entry point to its level,
 * then at each level below runs a best-first search of ef_construction
 * candidates and keeps up to M of them chosen by the diversity heuristic
 * (a candidate is kept only if it is closer to the new node than to every
 * neighbour already kept), and links back from each, pruning a full list
 * with the same heuristic.
 *
 * Distances. Vectors are normalised on insert, so cosine is a dot
 * product: d = 1 - cos in [0, 2], score = 1 - d / 2. FP32 uses a float dot
 * product; Q8 stores round(u * 127 / r) with r = max |u_i| (per vector) and
 * uses the exact int8 dot product scaled by r_a * r_b / 127^2; BIN stores
 * the sign bits and uses cos ~ 1 - 2 * hamming / dim. A query is encoded
 * the same way as a stored vector, so every distance is one kernel call
 * (vkernels.c, chosen at run time for the CPU).
 *
 * Data layout. A node is one allocation:
 *
 *   header (32 bytes: value, id, position, norm, range, level)
 *   vector        dim*4, dim or ceil(dim/8) bytes, rounded up to 4
 *   level 0 links [count][2M ids]            uint32
 *   level l links [count][M ids] for l = 1..level
 *   in-link lists (level+1) pointers          see below
 *
 * Links are uint32 ids, resolved through one table of node pointers
 * indexed by id (ids of deleted nodes are reused, so the table stays as
 * large as the peak count). The vector sits right after the header so that
 * a distance touches one node's consecutive lines; a search prefetches the
 * nodes of a candidate's unvisited neighbours before it computes their
 * distances. A dense array of live nodes (each node knows its position,
 * deletes swap the last one in) gives O(1) uniform random picks, a stable
 * walk, and the exact scan.
 *
 * Delete and repair. HNSW links are directed, so the nodes that point at
 * a node are not its own neighbours; to delete exactly, each node keeps,
 * per level, a small growable list of the ids that link to it (about
 * 4 bytes a link, the price of a delete that leaves no dangling ids and
 * needs no tombstones or sweeps). Deleting X at level l:
 *   1. every out-neighbour forgets X as an in-link;
 *   2. every in-neighbour I drops its link to X and takes in its place one
 *      of X's out-links: the closest to I that passes the diversity test
 *      against I's remaining links, else simply the closest. The paths
 *      that went through X now go around it, and I keeps its degree.
 *      (Re-pruning I's whole list from its links + X's, as FreshDiskANN's
 *      RobustPrune does, was measured worse here: it drops appended
 *      back-links, the mean degree fell from 17.8 to 14.7 after deleting
 *      30%, and recall at ef 32 from a fresh build's 0.950 to 0.927; the
 *      one-for-one replacement keeps 17.8 and 0.950, at the same number
 *      of distance evaluations per query, and costs fewer at delete);
 *   3. any node left with no in-link at l (an orphan: X's out-neighbours,
 *      and nodes dropped in step 2) gets one back from its nearest
 *      out-neighbour that has room, or that can swap out a link whose
 *      target has other in-links, so nobody becomes unreachable;
 *   4. if X was the entry point, a node of the highest remaining level
 *      (one of X's neighbours when possible) takes its place.
 * The unit tests delete 30% of a graph and check that recall holds.
 *
 * Threads. The engine takes no locks (hnsw.h: the caller's read-write
 * lock). Searches share nothing mutable except a pool of scratch sets:
 * a visited array of 16-bit epochs (one slot per id, bumped each search,
 * cleared on wrap-around), the heaps and the encoded query. A search takes
 * a free slot with an atomic exchange and gives it back with a release
 * store; when all AB_HNSW_POOL slots are busy it allocates a private
 * scratch for the call. A slot's owner may grow its arrays (the id table
 * cannot change while readers run), and the bytes the pool holds are kept
 * in an atomic counter for ab_hnsw_memory.
 *
 * Restore. Saved nodes come back into a fresh index: restore_node checks
 * each node alone (id < 2^31, level, raw length, finite floats, no int8
 * -128), restore_links stores raw ids, and restore_end sorts the nodes by
 * id, resolves every link by binary search, rejects dangling, self,
 * duplicate, too-high and over-cap links, builds the id table, the
 * in-link lists and the entry point. Ids are kept unless they are so
 * sparse (largest > 4 * count + 2^20) that the table would be mostly
 * holes; then they are renumbered densely, in the same order.
 */
#include "hnsw.h"

#include "common.h"
#include "vkernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define AB_HNSW_POOL 16
#define AB_HNSW_DEFAULT_M 16
#define AB_HNSW_DEFAULT_EFC 200
#define AB_HNSW_DEFAULT_EF 100
#define AB_HNSW_MAX_EF (1u << 20)
#define AB_HNSW_MAX_ID 0x7fffffffu

/* ---- types ---- */

struct rlist { /* the ids that link to a node at one level */
	uint32_t n, cap;
	uint32_t ids[];
};

struct ab_hnsw_node {
	void *value;
	uint32_t id;
	uint32_t pos; /* index in h->live */
	float norm;
	float range;
	uint8_t level;
	uint8_t pad[7];
	/* vector, links and in-link pointers follow: see the essay above */
};
_Static_assert(sizeof(struct ab_hnsw_node) == 32, "the node header is 32 bytes");

struct cand {
	float d;
	uint32_t id;
};

struct scratch {
	atomic_int busy;
	bool heap_owned; /* a private scratch, freed after the call */
	uint16_t epoch;
	uint16_t *mark;
	size_t mark_cap;
	struct cand *cand; /* candidate min-heap */
	size_t cand_cap;
	struct cand *res; /* result max-heap */
	size_t res_cap;
	struct cand *tmp; /* sorted lists, neighbour selection */
	size_t tmp_cap;
	uint32_t *ids; /* unvisited neighbours of one node; new links */
	size_t ids_cap;
	unsigned char *q; /* the encoded query */
	size_t q_cap;
	size_t bytes;
};

struct pool {
	struct scratch slot[AB_HNSW_POOL];
	atomic_size_t bytes;
};

enum state { ST_FRESH, ST_READY, ST_RESTORING, ST_BROKEN };

struct ab_hnsw {
	uint32_t dim, m, cap0, efc;
	enum ab_vq quant;
	enum state state;
	double mult;
	uint64_t rng[4];
	const struct ab_vk *k;
	size_t rawlen; /* exact stored vector bytes */
	size_t vbytes; /* rounded up to 4 */
	size_t off_l0; /* from the node start */
	struct ab_hnsw_node **table;
	uint32_t table_cap;
	uint32_t next_id;
	uint32_t *free_ids;
	size_t nfree, free_cap;
	struct ab_hnsw_node **live;
	size_t nlive, live_cap;
	struct ab_hnsw_node *entry;
	int max_level;
	uint64_t level_count[AB_HNSW_MAX_LEVEL]; /* nodes whose top level is l */
	size_t bytes; /* nodes, in-link lists, table, arrays */
	struct pool *pool;
};

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static void seed_rng(uint64_t s[4], uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		s[i] = splitmix64(&seed);
}

/* uniform in [0, 1) with 53 bits */
static double unit_draw(uint64_t s[4])
{
	return (double)(xoshiro(s) >> 11) * (1.0 / 9007199254740992.0);
}

static int draw_level(struct ab_hnsw *h)
{
	double u = unit_draw(h->rng);
	double l = -log(1.0 - u) * h->mult;
	if (!(l < AB_HNSW_MAX_LEVEL - 1))
		return AB_HNSW_MAX_LEVEL - 1;
	return (int)l;
}

/* ---- node layout ---- */

static size_t align_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

static uint32_t cap_of(const struct ab_hnsw *h, int level)
{
	return level == 0 ? h->cap0 : h->m;
}

static size_t off_rev(const struct ab_hnsw *h, int level)
{
	size_t end = h->off_l0 + 4 * (1 + (size_t)h->cap0) + 4 * (size_t)level * (1 + h->m);
	return align_up(end, sizeof(void *));
}

static size_t node_size(const struct ab_hnsw *h, int level)
{
	return off_rev(h, level) + sizeof(struct rlist *) * (size_t)(level + 1);
}

static unsigned char *node_vec(const struct ab_hnsw_node *n)
{
	return (unsigned char *)(uintptr_t)(n + 1);
}

/* lk[0] is the count, lk[1..] the ids */
static uint32_t *node_lk(const struct ab_hnsw *h, const struct ab_hnsw_node *n, int level)
{
	size_t off = h->off_l0;
	if (level > 0)
		off += 4 * (1 + (size_t)h->cap0) + 4 * (size_t)(level - 1) * (1 + h->m);
	return (uint32_t *)(uintptr_t)((const char *)n + off);
}

static struct rlist **node_rev(const struct ab_hnsw *h, const struct ab_hnsw_node *n)
{
	return (struct rlist **)(uintptr_t)((const char *)n + off_rev(h, n->level));
}

/* ---- encoding and distances ---- */

static bool all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return false;
	return true;
}

/* Writes the stored form of vec (dim floats) to out (h->vbytes) and its
 * norm and Q8 range. */
static void encode(const struct ab_hnsw *h, const float *vec, unsigned char *out, float *norm,
		   float *range)
{
	double ss = 0;
	for (uint32_t i = 0; i < h->dim; i++)
		ss += (double)vec[i] * vec[i];
	double nrm = sqrt(ss);
	double inv = nrm > 0 ? 1.0 / nrm : 0.0;
	*norm = (float)nrm;
	*range = 0;
	memset(out, 0, h->vbytes);
	switch (h->quant) {
	case AB_VQ_F32: {
		float *f = (float *)(void *)out;
		for (uint32_t i = 0; i < h->dim; i++)
			f[i] = (float)(vec[i] * inv);
		break;
	}
	case AB_VQ_Q8: {
		float mx = 0;
		for (uint32_t i = 0; i < h->dim; i++) {
			float u = fabsf((float)(vec[i] * inv));
			if (u > mx)
				mx = u;
		}
		*range = mx;
		if (mx > 0) {
			float scale = 127.0f / mx;
			int8_t *q = (int8_t *)(void *)out;
			for (uint32_t i = 0; i < h->dim; i++) {
				float c = roundf((float)(vec[i] * inv) * scale);
				if (c > 127)
					c = 127;
				if (c < -127)
					c = -127;
				q[i] = (int8_t)c;
			}
		}
		break;
	}
	case AB_VQ_BIN:
		for (uint32_t i = 0; i < h->dim; i++)
			if (vec[i] > 0)
				out[i / 8] |= (unsigned char)(1u << (i % 8));
		break;
	}
}

/* 1 - cos between two encoded vectors (ra, rb: their Q8 ranges) */
static inline float vdist(const struct ab_hnsw *h, const unsigned char *a, float ra,
			  const unsigned char *b, float rb)
{
	switch (h->quant) {
	case AB_VQ_F32:
		return 1.0f - h->k->dot_f32((const float *)(const void *)a,
					    (const float *)(const void *)b, h->dim);
	case AB_VQ_Q8:
		return 1.0f - (float)h->k->dot_i8((const int8_t *)(const void *)a,
						  (const int8_t *)(const void *)b, h->dim) *
				      (ra * rb * (1.0f / (127.0f * 127.0f)));
	case AB_VQ_BIN:
	default:
		return 2.0f * (float)h->k->hamming(a, b, h->rawlen) / (float)h->dim;
	}
}

static inline float ndist(const struct ab_hnsw *h, const struct ab_hnsw_node *a,
			  const struct ab_hnsw_node *b)
{
	return vdist(h, node_vec(a), a->range, node_vec(b), b->range);
}

static float score_of(float d)
{
	float s = 1.0f - d * 0.5f;
	return s < 0 ? 0 : s > 1 ? 1 : s;
}

/* ---- heaps of candidates ---- */

static bool cand_less(struct cand a, struct cand b)
{
	return a.d < b.d || (a.d == b.d && a.id < b.id);
}

/* Binary heaps of candidates, one function per kind so that each
 * comparison is a plain branch: a min-heap (closest on top) for the nodes
 * to expand, a max-heap (farthest on top) for the best found. Ties go by
 * id, so that equal distances still give one deterministic order. */
static inline bool cand_before(struct cand a, struct cand b, bool minh)
{
	return minh ? cand_less(a, b) : cand_less(b, a);
}

static inline void heap_push_k(struct cand *hp, size_t *n, struct cand c, bool minh)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!cand_before(c, hp[p], minh))
			break;
		hp[i] = hp[p];
		i = p;
	}
	hp[i] = c;
}

static inline struct cand heap_pop_k(struct cand *hp, size_t *n, bool minh)
{
	struct cand top = hp[0];
	size_t cnt = --(*n);
	struct cand last = hp[cnt];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1;
		if (l >= cnt)
			break;
		if (l + 1 < cnt && cand_before(hp[l + 1], hp[l], minh))
			l++;
		if (!cand_before(hp[l], last, minh))
			break;
		hp[i] = hp[l];
		i = l;
	}
	if (cnt > 0)
		hp[i] = last;
	return top;
}

static void minheap_push(struct cand *hp, size_t *n, struct cand c)
{
	heap_push_k(hp, n, c, true);
}

static struct cand minheap_pop(struct cand *hp, size_t *n)
{
	return heap_pop_k(hp, n, true);
}

static void maxheap_push(struct cand *hp, size_t *n, struct cand c)
{
	heap_push_k(hp, n, c, false);
}

static struct cand maxheap_pop(struct cand *hp, size_t *n)
{
	return heap_pop_k(hp, n, false);
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	return cand_less(*x, *y) ? -1 : cand_less(*y, *x) ? 1 : 0;
}

/* ---- scratch pool ---- */

static void grow(void **p, size_t *cap, size_t need, size_t elem, size_t *bytes)
{
	if (*cap >= need)
		return;
	size_t nc = *cap ? *cap : 16;
	while (nc < need)
		nc *= 2;
	*p = ab_xrealloc(*p, nc * elem);
	*bytes += (nc - *cap) * elem;
	*cap = nc;
}

static void scratch_release_arrays(struct scratch *s)
{
	free(s->mark);
	free(s->cand);
	free(s->res);
	free(s->tmp);
	free(s->ids);
	free(s->q);
	s->mark = NULL;
	s->cand = s->res = s->tmp = NULL;
	s->ids = NULL;
	s->q = NULL;
	s->mark_cap = s->cand_cap = s->res_cap = s->tmp_cap = s->ids_cap = s->q_cap = 0;
	s->bytes = 0;
}

/* Makes s fit the index as it is now: a mark per id, room for the query
 * and one node's neighbours. Only the owner of s calls this. */
static void scratch_fit(const struct ab_hnsw *h, struct scratch *s)
{
	size_t before = s->bytes;
	if (s->mark_cap < h->next_id) {
		size_t old = s->mark_cap;
		grow((void **)&s->mark, &s->mark_cap, h->next_id, sizeof(uint16_t), &s->bytes);
		memset(s->mark + old, 0, (s->mark_cap - old) * sizeof(uint16_t));
	}
	grow((void **)&s->q, &s->q_cap, h->vbytes, 1, &s->bytes);
	grow((void **)&s->ids, &s->ids_cap, 2 * (size_t)h->cap0 + 2, sizeof(uint32_t), &s->bytes);
	if (!s->heap_owned && s->bytes != before)
		atomic_fetch_add(&h->pool->bytes, s->bytes - before);
}

static void scratch_need(const struct ab_hnsw *h, struct scratch *s, struct cand **arr,
			 size_t *cap, size_t need)
{
	size_t before = s->bytes;
	grow((void **)arr, cap, need, sizeof(struct cand), &s->bytes);
	if (!s->heap_owned && s->bytes != before)
		atomic_fetch_add(&h->pool->bytes, s->bytes - before);
}

static struct scratch *scratch_take(const struct ab_hnsw *h)
{
	struct scratch *s = NULL;
	for (int i = 0; i < AB_HNSW_POOL; i++) {
		struct scratch *c = &h->pool->slot[i];
		if (atomic_load_explicit(&c->busy, memory_order_relaxed))
			continue;
		if (!atomic_exchange_explicit(&c->busy, 1, memory_order_acquire)) {
			s = c;
			break;
		}
	}
	if (!s) {
		s = ab_xcalloc(1, sizeof(*s));
		s->heap_owned = true;
	}
	scratch_fit(h, s);
	return s;
}

static void scratch_give(struct scratch *s)
{
	if (s->heap_owned) {
		scratch_release_arrays(s);
		free(s);
		return;
	}
	atomic_store_explicit(&s->busy, 0, memory_order_release);
}

/* A fresh visited epoch: marks equal to it mean "seen in this search". */
static uint16_t new_epoch(struct scratch *s)
{
	if (++s->epoch == 0) {
		memset(s->mark, 0, s->mark_cap * sizeof(uint16_t));
		s->epoch = 1;
	}
	return s->epoch;
}

/* ---- construction and accessors ---- */

int ab_hnsw_new(const struct ab_hnsw_params *p, struct ab_hnsw **out)
{
	if (!p || !out)
		return AB_EINVAL;
	*out = NULL;
	uint32_t m = p->m ? p->m : AB_HNSW_DEFAULT_M;
	uint32_t efc = p->ef_construction ? p->ef_construction : AB_HNSW_DEFAULT_EFC;
	if (p->dim < 1 || p->dim > AB_HNSW_MAX_DIM || m < 2 || m > AB_HNSW_MAX_M ||
	    efc > AB_HNSW_MAX_EF)
		return AB_EINVAL;
	if (p->quant != AB_VQ_F32 && p->quant != AB_VQ_Q8 && p->quant != AB_VQ_BIN)
		return AB_EINVAL;
	struct ab_hnsw *h = ab_xcalloc(1, sizeof(*h));
	h->dim = p->dim;
	h->quant = p->quant;
	h->m = m;
	h->cap0 = 2 * m;
	h->efc = efc;
	h->mult = 1.0 / log((double)m);
	seed_rng(h->rng, p->seed);
	h->k = ab_vk_best();
	h->rawlen = p->quant == AB_VQ_F32 ? (size_t)p->dim * 4
		    : p->quant == AB_VQ_Q8 ? p->dim
					   : ((size_t)p->dim + 7) / 8;
	h->vbytes = align_up(h->rawlen, 4);
	h->off_l0 = sizeof(struct ab_hnsw_node) + h->vbytes;
	h->max_level = -1;
	h->state = ST_FRESH;
	h->pool = ab_xcalloc(1, sizeof(*h->pool));
	h->bytes = sizeof(*h) + sizeof(*h->pool);
	*out = h;
	return 0;
}

static void node_free(const struct ab_hnsw *h, struct ab_hnsw_node *n)
{
	struct rlist **rev = node_rev(h, n);
	for (int l = 0; l <= n->level; l++)
		free(rev[l]);
	free(n);
}

void ab_hnsw_free(struct ab_hnsw *h, void (*free_value)(void *value))
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nlive; i++) {
		if (free_value)
			free_value(h->live[i]->value);
		node_free(h, h->live[i]);
	}
	for (int i = 0; i < AB_HNSW_POOL; i++)
		scratch_release_arrays(&h->pool->slot[i]);
	free(h->pool);
	free(h->live);
	free(h->table);
	free(h->free_ids);
	free(h);
}

uint32_t ab_hnsw_dim(const struct ab_hnsw *h)
{
	return h->dim;
}

enum ab_vq ab_hnsw_quant(const struct ab_hnsw *h)
{
	return h->quant;
}

uint32_t ab_hnsw_m(const struct ab_hnsw *h)
{
	return h->m;
}

uint32_t ab_hnsw_ef_construction(const struct ab_hnsw *h)
{
	return h->efc;
}

uint64_t ab_hnsw_count(const struct ab_hnsw *h)
{
	return h->nlive;
}

int ab_hnsw_max_level(const struct ab_hnsw *h)
{
	return h->max_level;
}

uint32_t ab_hnsw_next_id(const struct ab_hnsw *h)
{
	return h->next_id;
}

size_t ab_hnsw_memory(const struct ab_hnsw *h)
{
	return h->bytes + atomic_load(&h->pool->bytes);
}

const char *ab_hnsw_kernels(void)
{
	return ab_vk_best()->name;
}

void *ab_hnsw_node_value(const struct ab_hnsw_node *n)
{
	return n->value;
}

void ab_hnsw_node_set_value(struct ab_hnsw_node *n, void *value)
{
	n->value = value;
}

uint32_t ab_hnsw_node_id(const struct ab_hnsw_node *n)
{
	return n->id;
}

int ab_hnsw_node_level(const struct ab_hnsw_node *n)
{
	return n->level;
}

void ab_hnsw_node_vector(const struct ab_hnsw *h, const struct ab_hnsw_node *n, float *out)
{
	const unsigned char *v = node_vec(n);
	switch (h->quant) {
	case AB_VQ_F32: {
		const float *f = (const float *)(const void *)v;
		for (uint32_t i = 0; i < h->dim; i++)
			out[i] = f[i] * n->norm;
		break;
	}
	case AB_VQ_Q8: {
		const int8_t *q = (const int8_t *)(const void *)v;
		float step = n->range / 127.0f;
		for (uint32_t i = 0; i < h->dim; i++)
			out[i] = (float)q[i] * step * n->norm;
		break;
	}
	case AB_VQ_BIN: {
		float mag = n->norm / sqrtf((float)h->dim);
		for (uint32_t i = 0; i < h->dim; i++)
			out[i] = (v[i / 8] >> (i % 8)) & 1 ? mag : -mag;
		break;
	}
	}
}

size_t ab_hnsw_node_links(const struct ab_hnsw *h, const struct ab_hnsw_node *n, int level,
			  struct ab_hnsw_node **out, size_t cap)
{
	if (level < 0 || level > n->level || h->state == ST_RESTORING || h->state == ST_BROKEN)
		return 0;
	const uint32_t *lk = node_lk(h, n, level);
	for (uint32_t i = 0; i < lk[0] && i < cap; i++)
		out[i] = h->table[lk[1 + i]];
	return lk[0];
}

void ab_hnsw_node_raw(const struct ab_hnsw *h, const struct ab_hnsw_node *n,
		      struct ab_hnsw_raw *raw)
{
	raw->data = node_vec(n);
	raw->len = h->rawlen;
	raw->norm = n->norm;
	raw->range = h->quant == AB_VQ_Q8 ? n->range : 0;
}

/* ---- ids, table, live array, in-link lists ---- */

static void table_fit(struct ab_hnsw *h, uint32_t id)
{
	if (id < h->table_cap)
		return;
	size_t nc = h->table_cap ? h->table_cap : 64;
	while (nc <= id)
		nc *= 2;
	if (nc > (size_t)AB_HNSW_MAX_ID + 1)
		nc = (size_t)AB_HNSW_MAX_ID + 1;
	h->table = ab_xrealloc(h->table, nc * sizeof(*h->table));
	memset(h->table + h->table_cap, 0, (nc - h->table_cap) * sizeof(*h->table));
	h->bytes += (nc - h->table_cap) * sizeof(*h->table);
	h->table_cap = (uint32_t)nc;
}

static void live_add(struct ab_hnsw *h, struct ab_hnsw_node *n)
{
	if (h->nlive == h->live_cap) {
		size_t nc = h->live_cap ? h->live_cap * 2 : 64;
		h->live = ab_xrealloc(h->live, nc * sizeof(*h->live));
		h->bytes += (nc - h->live_cap) * sizeof(*h->live);
		h->live_cap = nc;
	}
	n->pos = (uint32_t)h->nlive;
	h->live[h->nlive++] = n;
}

static void live_remove(struct ab_hnsw *h, struct ab_hnsw_node *n)
{
	struct ab_hnsw_node *last = h->live[--h->nlive];
	h->live[n->pos] = last;
	last->pos = n->pos;
}

static void free_id_push(struct ab_hnsw *h, uint32_t id)
{
	if (h->nfree == h->free_cap) {
		size_t nc = h->free_cap ? h->free_cap * 2 : 64;
		h->free_ids = ab_xrealloc(h->free_ids, nc * sizeof(*h->free_ids));
		h->bytes += (nc - h->free_cap) * sizeof(*h->free_ids);
		h->free_cap = nc;
	}
	h->free_ids[h->nfree++] = id;
}

static void rev_add(struct ab_hnsw *h, struct ab_hnsw_node *n, int level, uint32_t from)
{
	struct rlist **slot = &node_rev(h, n)[level];
	struct rlist *r = *slot;
	if (!r || r->n == r->cap) {
		uint32_t oc = r ? r->cap : 0;
		uint32_t nc = oc ? oc + oc / 2 + 2 : 4;
		r = ab_xrealloc(r, sizeof(*r) + (size_t)nc * sizeof(uint32_t));
		if (!oc)
			r->n = 0;
		r->cap = nc;
		h->bytes += (size_t)(nc - oc) * sizeof(uint32_t) + (oc ? 0 : sizeof(*r));
		*slot = r;
	}
	r->ids[r->n++] = from;
}

static void rev_remove(const struct ab_hnsw *h, struct ab_hnsw_node *n, int level, uint32_t from)
{
	struct rlist *r = node_rev(h, n)[level];
	if (!r)
		return;
	for (uint32_t i = 0; i < r->n; i++)
		if (r->ids[i] == from) {
			r->ids[i] = r->ids[--r->n];
			return;
		}
}

static uint32_t rev_count(const struct ab_hnsw *h, const struct ab_hnsw_node *n, int level)
{
	const struct rlist *r = node_rev(h, n)[level];
	return r ? r->n : 0;
}

static struct ab_hnsw_node *node_alloc(struct ab_hnsw *h, int level)
{
	size_t sz = node_size(h, level);
	struct ab_hnsw_node *n = ab_xcalloc(1, sz);
	n->level = (uint8_t)level;
	h->bytes += sz;
	return n;
}

/* ---- search ---- */

struct query {
	const unsigned char *v; /* encoded */
	float r;                /* Q8 range */
	ab_hnsw_filter_fn filter;
	void *ctx;
	size_t max_visits; /* 0: none */
	size_t visits;
};

static inline float qdist(const struct ab_hnsw *h, const struct query *q,
			  const struct ab_hnsw_node *n)
{
	return vdist(h, q->v, q->r, node_vec(n), n->range);
}

/* Greedy walk at one level from *cur towards q. */
static void greedy(const struct ab_hnsw *h, struct query *q, int level, struct ab_hnsw_node **cur,
		   float *curd)
{
	bool moved = true;
	while (moved) {
		moved = false;
		const uint32_t *lk = node_lk(h, *cur, level);
		uint32_t cnt = lk[0];
		for (uint32_t i = 0; i < cnt; i++)
			__builtin_prefetch(h->table[lk[1 + i]]);
		for (uint32_t i = 0; i < cnt; i++) {
			struct ab_hnsw_node *n = h->table[lk[1 + i]];
			float d = qdist(h, q, n);
			q->visits++;
			if (d < *curd) {
				*curd = d;
				*cur = n;
				moved = true;
			}
		}
	}
}

static bool accepted(const struct query *q, const struct ab_hnsw_node *n)
{
	return !q->filter || q->filter(n->value, q->ctx);
}

/* Best-first search at one level from ep, keeping the ef closest
 * (accepted) nodes in the max-heap s->res (*nres of them). */
static void search_layer(const struct ab_hnsw *h, struct scratch *s, struct query *q,
			 struct ab_hnsw_node *ep, float epd, int level, size_t ef, size_t *nres)
{
	uint16_t ep_mark = new_epoch(s);
	size_t ncand = 0;
	*nres = 0;
	scratch_need(h, s, &s->cand, &s->cand_cap, 64);
	scratch_need(h, s, &s->res, &s->res_cap, ef + 1);
	s->mark[ep->id] = ep_mark;
	minheap_push(s->cand, &ncand, (struct cand){epd, ep->id});
	if (accepted(q, ep))
		maxheap_push(s->res, nres, (struct cand){epd, ep->id});
	while (ncand > 0) {
		struct cand c = minheap_pop(s->cand, &ncand);
		if (*nres >= ef && c.d > s->res[0].d)
			break;
		if (q->max_visits && q->visits >= q->max_visits)
			break;
		const uint32_t *lk = node_lk(h, h->table[c.id], level);
		uint32_t cnt = lk[0], nu = 0;
		for (uint32_t i = 0; i < cnt; i++) {
			uint32_t id = lk[1 + i];
			if (s->mark[id] == ep_mark)
				continue;
			s->mark[id] = ep_mark;
			s->ids[nu++] = id;
			const char *p = (const char *)h->table[id];
			__builtin_prefetch(p);
			__builtin_prefetch(p + 64);
		}
		for (uint32_t i = 0; i < nu; i++) {
			struct ab_hnsw_node *n = h->table[s->ids[i]];
			float d = qdist(h, q, n);
			q->visits++;
			if (*nres < ef || d < s->res[0].d) {
				if (ncand + 1 > s->cand_cap)
					scratch_need(h, s, &s->cand, &s->cand_cap, ncand + 1);
				minheap_push(s->cand, &ncand, (struct cand){d, n->id});
				if (accepted(q, n)) {
					maxheap_push(s->res, nres, (struct cand){d, n->id});
					if (*nres > ef)
						maxheap_pop(s->res, nres);
				}
			}
		}
	}
}

/* Empties the result heap into s->tmp, closest first; returns the count. */
static size_t drain_sorted(const struct ab_hnsw *h, struct scratch *s, size_t nres)
{
	scratch_need(h, s, &s->tmp, &s->tmp_cap, nres + 1);
	size_t n = nres;
	while (nres > 0) {
		struct cand c = maxheap_pop(s->res, &nres);
		s->tmp[nres] = c;
	}
	return n;
}

static int encode_query(const struct ab_hnsw *h, const float *query, struct scratch *s,
			struct query *q)
{
	if (!all_finite(query, h->dim))
		return AB_EINVAL;
	float norm;
	encode(h, query, s->q, &norm, &q->r);
	q->v = s->q;
	return 0;
}

int ab_hnsw_search(const struct ab_hnsw *h, const float *query, size_t k, uint32_t ef,
		   ab_hnsw_filter_fn filter, void *ctx, size_t max_visits,
		   struct ab_hnsw_hit *hits)
{
	if (!h || !query || (k > 0 && !hits) || k > (size_t)INT32_MAX)
		return AB_EINVAL;
	if (k == 0 || !h->entry || h->state != ST_READY)
		return all_finite(query, h->dim) ? 0 : AB_EINVAL;
	size_t efs = ef ? ef : AB_HNSW_DEFAULT_EF;
	if (efs < k)
		efs = k;
	if (efs > h->nlive)
		efs = h->nlive;
	struct scratch *s = scratch_take(h);
	struct query q = {.filter = filter, .ctx = ctx, .max_visits = max_visits};
	int rc = encode_query(h, query, s, &q);
	if (rc < 0)
		goto out;
	struct ab_hnsw_node *cur = h->entry;
	float curd = qdist(h, &q, cur);
	for (int l = h->max_level; l > 0; l--)
		greedy(h, &q, l, &cur, &curd);
	size_t nres;
	search_layer(h, s, &q, cur, curd, 0, efs, &nres);
	size_t n = drain_sorted(h, s, nres);
	if (n > k)
		n = k;
	for (size_t i = 0; i < n; i++) {
		hits[i].node = h->table[s->tmp[i].id];
		hits[i].score = score_of(s->tmp[i].d);
	}
	rc = (int)n;
out:
	scratch_give(s);
	return rc;
}

int ab_hnsw_search_exact(const struct ab_hnsw *h, const float *query, size_t k,
			 ab_hnsw_filter_fn filter, void *ctx, struct ab_hnsw_hit *hits)
{
	if (!h || !query || (k > 0 && !hits) || k > (size_t)INT32_MAX)
		return AB_EINVAL;
	if (k == 0 || h->nlive == 0)
		return all_finite(query, h->dim) ? 0 : AB_EINVAL;
	struct scratch *s = scratch_take(h);
	struct query q = {.filter = filter, .ctx = ctx};
	int rc = encode_query(h, query, s, &q);
	if (rc < 0)
		goto out;
	size_t kk = k < h->nlive ? k : h->nlive;
	scratch_need(h, s, &s->res, &s->res_cap, kk + 1);
	size_t nres = 0;
	for (size_t i = 0; i < h->nlive; i++) {
		const struct ab_hnsw_node *n = h->live[i];
		if (!accepted(&q, n))
			continue;
		/* ids are not final while restoring: rank by position then */
		uint32_t key = h->state == ST_READY ? n->id : (uint32_t)i;
		struct cand c = {qdist(h, &q, n), key};
		if (nres < kk) {
			maxheap_push(s->res, &nres, c);
		} else if (cand_less(c, s->res[0])) {
			maxheap_pop(s->res, &nres);
			maxheap_push(s->res, &nres, c);
		}
	}
	size_t n = drain_sorted(h, s, nres);
	for (size_t i = 0; i < n; i++) {
		hits[i].node = h->state == ST_READY ? h->table[s->tmp[i].id] : h->live[s->tmp[i].id];
		hits[i].score = score_of(s->tmp[i].d);
	}
	rc = (int)n;
out:
	scratch_give(s);
	return rc;
}

float ab_hnsw_similarity(const struct ab_hnsw *h, const float *query, const struct ab_hnsw_node *n)
{
	struct scratch *s = scratch_take(h);
	struct query q = {0};
	float sc = 0;
	if (encode_query(h, query, s, &q) == 0)
		sc = score_of(qdist(h, &q, n));
	scratch_give(s);
	return sc;
}

/* ---- neighbour selection and linking (the index to ourselves) ---- */

/* The diversity heuristic: from c (n candidates, closest to the base
 * first) keep up to max, each closer to the base than to any kept one.
 * With fewer than max candidates all are kept (as hnswlib does). */
static size_t select_heuristic(const struct ab_hnsw *h, const struct cand *c, size_t n,
			       size_t max, uint32_t *out)
{
	size_t k = 0;
	if (n < max) {
		for (size_t i = 0; i < n; i++)
			out[k++] = c[i].id;
		return k;
	}
	for (size_t i = 0; i < n && k < max; i++) {
		const struct ab_hnsw_node *ci = h->table[c[i].id];
		bool good = true;
		for (size_t j = 0; j < k; j++) {
			if (ndist(h, ci, h->table[out[j]]) < c[i].d) {
				good = false;
				break;
			}
		}
		if (good)
			out[k++] = c[i].id;
	}
	return k;
}

/* Replaces n's links at level with ids[0..cnt), keeping the in-link lists
 * right. */
static void set_links(struct ab_hnsw *h, struct scratch *s, struct ab_hnsw_node *n, int level,
		      const uint32_t *ids, uint32_t cnt)
{
	uint32_t *lk = node_lk(h, n, level);
	uint16_t e = new_epoch(s);
	for (uint32_t i = 0; i < cnt; i++)
		s->mark[ids[i]] = e;
	for (uint32_t i = 0; i < lk[0]; i++) {
		uint32_t t = lk[1 + i];
		if (s->mark[t] == e) {
			s->mark[t] = (uint16_t)(e - 1); /* already linked: nothing to do */
		} else {
			rev_remove(h, h->table[t], level, n->id);
		}
	}
	for (uint32_t i = 0; i < cnt; i++)
		if (s->mark[ids[i]] == e)
			rev_add(h, h->table[ids[i]], level, n->id);
	memmove(lk + 1, ids, cnt * sizeof(uint32_t));
	lk[0] = cnt;
}

/* Re-chooses n's links at level with the heuristic from its current
 * links plus extra[] (n itself left out). */
static void relink(struct ab_hnsw *h, struct scratch *s, struct ab_hnsw_node *n, int level,
		   const uint32_t *extra, uint32_t nextra)
{
	const uint32_t *lk = node_lk(h, n, level);
	size_t total = (size_t)lk[0] + nextra;
	scratch_need(h, s, &s->tmp, &s->tmp_cap, total + 1);
	uint16_t e = new_epoch(s);
	s->mark[n->id] = e;
	size_t nc = 0;
	for (size_t i = 0; i < total; i++) {
		uint32_t id = i < lk[0] ? lk[1 + i] : extra[i - lk[0]];
		if (s->mark[id] == e)
			continue;
		s->mark[id] = e;
		s->tmp[nc++] = (struct cand){ndist(h, n, h->table[id]), id};
	}
	qsort(s->tmp, nc, sizeof(*s->tmp), cand_cmp);
	uint32_t *sel = s->ids;
	size_t ns = select_heuristic(h, s->tmp, nc, cap_of(h, level), sel);
	set_links(h, s, n, level, sel, (uint32_t)ns);
}

/* After p lost its link to x at level: gives p one link from cand[] (x's
 * out-links), the closest that is nearer to p than to any of p's links,
 * else the closest of all; skips p, x and what p links already. */
static void replace_link(struct ab_hnsw *h, struct scratch *s, struct ab_hnsw_node *p, int level,
			 const uint32_t *cand, uint32_t ncand, uint32_t x)
{
	uint32_t *lk = node_lk(h, p, level);
	if (lk[0] >= cap_of(h, level))
		return;
	uint16_t e = new_epoch(s);
	s->mark[p->id] = e;
	s->mark[x] = e;
	for (uint32_t i = 0; i < lk[0]; i++)
		s->mark[lk[1 + i]] = e;
	scratch_need(h, s, &s->tmp, &s->tmp_cap, (size_t)ncand + 1);
	size_t nc = 0;
	for (uint32_t i = 0; i < ncand; i++) {
		if (s->mark[cand[i]] == e)
			continue;
		s->mark[cand[i]] = e;
		s->tmp[nc++] = (struct cand){ndist(h, p, h->table[cand[i]]), cand[i]};
	}
	if (nc == 0)
		return;
	qsort(s->tmp, nc, sizeof(*s->tmp), cand_cmp);
	size_t pick = 0;
	for (size_t i = 0; i < nc; i++) {
		const struct ab_hnsw_node *c = h->table[s->tmp[i].id];
		bool good = true;
		for (uint32_t j = 0; j < lk[0] && good; j++)
			good = !(ndist(h, c, h->table[lk[1 + j]]) < s->tmp[i].d);
		if (good) {
			pick = i;
			break;
		}
	}
	lk[1 + lk[0]++] = s->tmp[pick].id;
	rev_add(h, h->table[s->tmp[pick].id], level, p->id);
}

/* Adds the link nb -> n at level (n is new there), pruning a full list. */
static void link_back(struct ab_hnsw *h, struct scratch *s, struct ab_hnsw_node *nb,
		      struct ab_hnsw_node *n, int level)
{
	uint32_t *lk = node_lk(h, nb, level);
	if (lk[0] < cap_of(h, level)) {
		lk[1 + lk[0]++] = n->id;
		rev_add(h, n, level, nb->id);
		return;
	}
	relink(h, s, nb, level, &n->id, 1);
}

int ab_hnsw_insert(struct ab_hnsw *h, const float *vec, void *value, uint32_t ef,
		   struct ab_hnsw_node **out)
{
	if (!h || !vec || h->state == ST_RESTORING || h->state == ST_BROKEN)
		return AB_EINVAL;
	if (!all_finite(vec, h->dim))
		return AB_EINVAL;
	if (h->nfree == 0 && h->next_id >= AB_HNSW_MAX_ID)
		return AB_ETOOBIG;
	h->state = ST_READY;
	int level = draw_level(h);
	struct ab_hnsw_node *n = node_alloc(h, level);
	n->value = value;
	encode(h, vec, node_vec(n), &n->norm, &n->range);
	n->id = h->nfree ? h->free_ids[--h->nfree] : h->next_id++;
	table_fit(h, n->id);
	h->table[n->id] = n;
	live_add(h, n);
	h->level_count[level]++;
	if (out)
		*out = n;
	if (!h->entry) {
		h->entry = n;
		h->max_level = level;
		return 0;
	}
	size_t efc = ef ? ef : h->efc;
	if (efc > AB_HNSW_MAX_EF)
		efc = AB_HNSW_MAX_EF;
	struct scratch *s = scratch_take(h);
	struct query q = {.v = node_vec(n), .r = n->range};
	struct ab_hnsw_node *cur = h->entry;
	float curd = qdist(h, &q, cur);
	for (int l = h->max_level; l > level; l--)
		greedy(h, &q, l, &cur, &curd);
	for (int l = level < h->max_level ? level : h->max_level; l >= 0; l--) {
		size_t nres;
		search_layer(h, s, &q, cur, curd, l, efc, &nres);
		size_t nc = drain_sorted(h, s, nres);
		uint32_t *lk = node_lk(h, n, l);
		size_t ns = select_heuristic(h, s->tmp, nc, h->m, lk + 1);
		lk[0] = (uint32_t)ns;
		cur = h->table[s->tmp[0].id];
		curd = s->tmp[0].d;
		for (size_t i = 0; i < ns; i++) {
			struct ab_hnsw_node *nb = h->table[lk[1 + i]];
			rev_add(h, nb, l, n->id);
			link_back(h, s, nb, n, l);
		}
	}
	scratch_give(s);
	if (level > h->max_level) {
		h->max_level = level;
		h->entry = n;
	}
	return 0;
}

/* ---- delete ---- */

/* Gives n (which has no in-link at level) one, from its nearest
 * out-neighbour with room, else by swapping out a link whose target keeps
 * another in-link. */
static void ensure_inlink(struct ab_hnsw *h, struct scratch *s, struct ab_hnsw_node *n, int level)
{
	if (rev_count(h, n, level) > 0)
		return;
	const uint32_t *lk = node_lk(h, n, level);
	uint32_t cnt = lk[0];
	if (cnt == 0)
		return;
	scratch_need(h, s, &s->tmp, &s->tmp_cap, cnt + 1);
	for (uint32_t i = 0; i < cnt; i++)
		s->tmp[i] = (struct cand){ndist(h, n, h->table[lk[1 + i]]), lk[1 + i]};
	qsort(s->tmp, cnt, sizeof(*s->tmp), cand_cmp);
	uint32_t cap = cap_of(h, level);
	for (uint32_t i = 0; i < cnt; i++) {
		struct ab_hnsw_node *t = h->table[s->tmp[i].id];
		uint32_t *tl = node_lk(h, t, level);
		if (tl[0] < cap) {
			tl[1 + tl[0]++] = n->id;
			rev_add(h, n, level, t->id);
			return;
		}
	}
	for (uint32_t i = 0; i < cnt; i++) {
		struct ab_hnsw_node *t = h->table[s->tmp[i].id];
		uint32_t *tl = node_lk(h, t, level);
		int worst = -1;
		float wd = -1;
		for (uint32_t j = 0; j < tl[0]; j++) {
			struct ab_hnsw_node *w = h->table[tl[1 + j]];
			if (rev_count(h, w, level) < 2)
				continue;
			float d = ndist(h, t, w);
			if (d > wd) {
				wd = d;
				worst = (int)j;
			}
		}
		if (worst >= 0) {
			rev_remove(h, h->table[tl[1 + worst]], level, t->id);
			tl[1 + worst] = n->id;
			rev_add(h, n, level, t->id);
			return;
		}
	}
}

static uint64_t count_at_or_above(const struct ab_hnsw *h, int level)
{
	uint64_t c = 0;
	for (int l = level; l < AB_HNSW_MAX_LEVEL; l++)
		c += h->level_count[l];
	return c;
}

/* After x (the entry point) leaves: a node of the highest level left,
 * one of x's neighbours when one qualifies. */
static void new_entry(struct ab_hnsw *h, const struct ab_hnsw_node *x)
{
	int top = -1;
	for (int l = AB_HNSW_MAX_LEVEL - 1; l >= 0; l--)
		if (h->level_count[l] > 0) {
			top = l;
			break;
		}
	h->max_level = top;
	h->entry = NULL;
	if (top < 0)
		return;
	for (int l = x->level; l >= 0 && !h->entry; l--) {
		const uint32_t *lk = node_lk(h, x, l);
		for (uint32_t i = 0; i < lk[0]; i++) {
			struct ab_hnsw_node *c = h->table[lk[1 + i]];
			if (c->level == top) {
				h->entry = c;
				break;
			}
		}
	}
	for (size_t i = 0; i < h->nlive && !h->entry; i++)
		if (h->live[i] != x && h->live[i]->level == top)
			h->entry = h->live[i];
}

void *ab_hnsw_delete(struct ab_hnsw *h, struct ab_hnsw_node *x)
{
	void *value = x->value;
	struct scratch *s = scratch_take(h);
	struct rlist **xrev = node_rev(h, x);
	for (int l = 0; l <= x->level; l++) {
		/* x's own links stay in place (read only) until x is freed */
		const uint32_t *xl = node_lk(h, x, l);
		uint32_t co = xl[0];
		for (uint32_t i = 0; i < co; i++)
			rev_remove(h, h->table[xl[1 + i]], l, x->id);
		struct rlist *in = xrev[l]; /* detached: nobody may link x again */
		xrev[l] = NULL;
		for (uint32_t i = 0; in && i < in->n; i++) {
			struct ab_hnsw_node *p = h->table[in->ids[i]];
			uint32_t *pl = node_lk(h, p, l);
			for (uint32_t j = 0; j < pl[0]; j++)
				if (pl[1 + j] == x->id) {
					pl[1 + j] = pl[pl[0]];
					pl[0]--;
					break;
				}
			replace_link(h, s, p, l, xl + 1, co, x->id);
		}
		if (in) {
			h->bytes -= sizeof(*in) + (size_t)in->cap * sizeof(uint32_t);
			free(in);
		}
		/* x's out-neighbours lost an in-link: none may be left without */
		if (count_at_or_above(h, l) > 2)
			for (uint32_t i = 0; i < co; i++)
				ensure_inlink(h, s, h->table[xl[1 + i]], l);
	}
	scratch_give(s);
	h->level_count[x->level]--;
	if (h->entry == x)
		new_entry(h, x);
	h->table[x->id] = NULL;
	free_id_push(h, x->id);
	live_remove(h, x);
	h->bytes -= node_size(h, x->level);
	node_free(h, x);
	if (h->nlive == 0) {
		h->entry = NULL;
		h->max_level = -1;
	}
	return value;
}

/* ---- walking ---- */

struct ab_hnsw_node *ab_hnsw_random(const struct ab_hnsw *h, uint64_t *rng)
{
	if (h->nlive == 0)
		return NULL;
	return h->live[splitmix64(rng) % h->nlive];
}

struct ab_hnsw_node *ab_hnsw_first(const struct ab_hnsw *h)
{
	return h->nlive ? h->live[0] : NULL;
}

struct ab_hnsw_node *ab_hnsw_next(const struct ab_hnsw *h, const struct ab_hnsw_node *n)
{
	size_t p = (size_t)n->pos + 1;
	return p < h->nlive ? h->live[p] : NULL;
}

/* ---- invariants ---- */

int ab_hnsw_check(const struct ab_hnsw *h)
{
	if (h->state == ST_RESTORING || h->state == ST_BROKEN)
		return AB_EINVAL;
	uint64_t per_level[AB_HNSW_MAX_LEVEL] = {0};
	uint64_t links = 0, rlinks = 0;
	for (size_t i = 0; i < h->nlive; i++) {
		const struct ab_hnsw_node *n = h->live[i];
		if (n->pos != i || n->id >= h->next_id || h->table[n->id] != n)
			return AB_EPROTO;
		per_level[n->level]++;
		for (int l = 0; l <= n->level; l++) {
			const uint32_t *lk = node_lk(h, n, l);
			if (lk[0] > cap_of(h, l))
				return AB_EPROTO;
			for (uint32_t j = 0; j < lk[0]; j++) {
				uint32_t t = lk[1 + j];
				if (t >= h->next_id || t == n->id || !h->table[t] ||
				    h->table[t]->level < l)
					return AB_EPROTO;
				for (uint32_t k = 0; k < j; k++)
					if (lk[1 + k] == t)
						return AB_EPROTO;
				/* the target must list n as an in-link */
				const struct rlist *r = node_rev(h, h->table[t])[l];
				bool found = false;
				for (uint32_t k = 0; r && k < r->n && !found; k++)
					found = r->ids[k] == n->id;
				if (!found)
					return AB_EPROTO;
				links++;
			}
			const struct rlist *r = node_rev(h, n)[l];
			rlinks += r ? r->n : 0;
		}
	}
	if (links != rlinks)
		return AB_EPROTO;
	int top = -1;
	for (int l = 0; l < AB_HNSW_MAX_LEVEL; l++) {
		if (per_level[l] != h->level_count[l])
			return AB_EPROTO;
		if (per_level[l])
			top = l;
	}
	if (top != h->max_level || (h->nlive > 0) != (h->entry != NULL))
		return AB_EPROTO;
	if (h->entry && h->entry->level != top)
		return AB_EPROTO;
	uint64_t holes = 0;
	for (uint32_t id = 0; id < h->next_id; id++)
		holes += h->table[id] == NULL;
	if (holes != h->nfree)
		return AB_EPROTO;
	return 0;
}

/* ---- restore ---- */

static int fail(struct ab_hnsw *h, int err)
{
	h->state = ST_BROKEN;
	return err;
}

int ab_hnsw_restore_node(struct ab_hnsw *h, uint32_t id, int level, const struct ab_hnsw_raw *raw,
			 void *value, struct ab_hnsw_node **out)
{
	if (!h || !raw)
		return AB_EINVAL;
	if (h->state == ST_FRESH)
		h->state = ST_RESTORING;
	if (h->state != ST_RESTORING)
		return AB_EINVAL;
	if (id > AB_HNSW_MAX_ID || level < 0 || level >= AB_HNSW_MAX_LEVEL ||
	    raw->len != h->rawlen || !raw->data || !isfinite(raw->norm) || raw->norm < 0 ||
	    !isfinite(raw->range) || raw->range < 0 || h->nlive >= AB_HNSW_MAX_ID)
		return fail(h, AB_EPROTO);
	if (h->quant == AB_VQ_F32) {
		for (size_t i = 0; i < h->dim; i++) {
			float f;
			memcpy(&f, (const char *)raw->data + 4 * i, 4);
			if (!isfinite(f))
				return fail(h, AB_EPROTO);
		}
	} else if (h->quant == AB_VQ_Q8) {
		const int8_t *q = raw->data;
		for (size_t i = 0; i < h->dim; i++)
			if (q[i] == -128)
				return fail(h, AB_EPROTO);
	}
	struct ab_hnsw_node *n = node_alloc(h, level);
	memcpy(node_vec(n), raw->data, raw->len);
	if (h->quant == AB_VQ_BIN && h->dim % 8)
		node_vec(n)[h->rawlen - 1] &= (unsigned char)((1u << (h->dim % 8)) - 1);
	n->norm = raw->norm;
	n->range = h->quant == AB_VQ_Q8 ? raw->range : 0;
	n->id = id;
	n->value = value;
	live_add(h, n);
	if (out)
		*out = n;
	return 0;
}

int ab_hnsw_restore_links(struct ab_hnsw *h, struct ab_hnsw_node *n, int level,
			  const uint32_t *ids, size_t count)
{
	if (!h || !n || (count > 0 && !ids))
		return AB_EINVAL;
	if (h->state != ST_RESTORING)
		return AB_EINVAL;
	if (level < 0 || level > n->level || count > cap_of(h, level))
		return fail(h, AB_EPROTO);
	uint32_t *lk = node_lk(h, n, level);
	memcpy(lk + 1, ids, count * sizeof(uint32_t));
	lk[0] = (uint32_t)count;
	return 0;
}

static int node_id_cmp(const void *a, const void *b)
{
	const struct ab_hnsw_node *x = *(const struct ab_hnsw_node *const *)a;
	const struct ab_hnsw_node *y = *(const struct ab_hnsw_node *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* index in the id-sorted live array of the node saved as id, or -1 */
static long find_saved(const struct ab_hnsw *h, uint32_t id)
{
	size_t lo = 0, hi = h->nlive;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t v = h->live[mid]->id;
		if (v == id)
			return (long)mid;
		if (v < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int ab_hnsw_restore_end(struct ab_hnsw *h)
{
	if (!h)
		return AB_EINVAL;
	if (h->state == ST_FRESH && h->nlive == 0) {
		h->state = ST_READY;
		return 0;
	}
	if (h->state != ST_RESTORING)
		return AB_EINVAL;
	size_t n = h->nlive;
	qsort(h->live, n, sizeof(*h->live), node_id_cmp);
	for (size_t i = 0; i < n; i++) {
		h->live[i]->pos = (uint32_t)i;
		if (i > 0 && h->live[i]->id == h->live[i - 1]->id)
			return fail(h, AB_EPROTO);
	}
	uint32_t max_id = h->live[n - 1]->id;
	bool renumber = (uint64_t)max_id + 1 > 4 * (uint64_t)n + (1u << 20);
	/* resolve every link to a position in live[], checking it */
	uint16_t *seen = ab_xcalloc(n, sizeof(uint16_t));
	uint16_t epoch = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct ab_hnsw_node *a = h->live[i];
		for (int l = 0; l <= a->level && rc == 0; l++) {
			uint32_t *lk = node_lk(h, a, l);
			if (++epoch == 0) {
				memset(seen, 0, n * sizeof(uint16_t));
				epoch = 1;
			}
			for (uint32_t j = 0; j < lk[0]; j++) {
				long p = find_saved(h, lk[1 + j]);
				if (p < 0 || (size_t)p == i || h->live[p]->level < l ||
				    seen[p] == epoch) {
					rc = AB_EPROTO;
					break;
				}
				seen[p] = epoch;
				lk[1 + j] = (uint32_t)p; /* a position for now */
			}
		}
	}
	free(seen);
	if (rc < 0)
		return fail(h, rc);
	/* final ids: kept, or positions when renumbering */
	if (renumber)
		for (size_t i = 0; i < n; i++)
			h->live[i]->id = (uint32_t)i;
	h->next_id = h->live[n - 1]->id + 1;
	table_fit(h, h->next_id - 1);
	for (size_t i = 0; i < n; i++) {
		struct ab_hnsw_node *a = h->live[i];
		h->table[a->id] = a;
		h->level_count[a->level]++;
	}
	for (uint32_t id = h->next_id; id-- > 0;)
		if (!h->table[id])
			free_id_push(h, id);
	for (size_t i = 0; i < n; i++) {
		struct ab_hnsw_node *a = h->live[i];
		for (int l = 0; l <= a->level; l++) {
			uint32_t *lk = node_lk(h, a, l);
			for (uint32_t j = 0; j < lk[0]; j++) {
				struct ab_hnsw_node *t = h->live[lk[1 + j]];
				lk[1 + j] = t->id;
				rev_add(h, t, l, a->id);
			}
		}
	}
	h->max_level = -1;
	for (int l = AB_HNSW_MAX_LEVEL - 1; l >= 0; l--)
		if (h->level_count[l]) {
			h->max_level = l;
			break;
		}
	h->entry = NULL;
	for (size_t i = 0; i < n && !h->entry; i++)
		if (h->live[i]->level == h->max_level)
			h->entry = h->live[i];
	h->state = ST_READY;
	return 0;
}
