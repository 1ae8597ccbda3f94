/*
 * fuse.h - hybrid search's last step: reciprocal-rank fusion (RRF) of
 * ranked lists of document ids, typically the BM25 hits of textidx.h and
 * the nearest neighbours of the query's vector (embed.h).
 *
 * For each id, score = sum over the lists that hold it of
 * weight / (k + rank), rank counting from 1 (an id repeated in one list
 * counts once, at its best rank). RRF needs no score calibration between
 * retrievers, which is why it is used: BM25 scores are unbounded, cosine
 * similarities are not comparable with them.
 *
 * ab_hybrid_params_default holds the one set of fusion settings that the
 * engine's evaluation (bench/text) was run with and that `autobot kb eval`
 * reports with: the module or role doing hybrid search should take them
 * from here rather than repeat the numbers. They are k = 60 (the value of
 * the original RRF paper), BM25 weight 1 and vector weight 0.5: the
 * built-in embedder is a weaker retriever than BM25 on its own, and at
 * equal weights its mistakes cost Medline some recall; each retriever is
 * asked for max(100, k) hits.
 */
#ifndef AB_TEXT_FUSE_H
#define AB_TEXT_FUSE_H

#include <stddef.h>
#include <stdint.h>

struct ab_hybrid_params {
	double rrf_k;    /* the k of RRF */
	double w_text;   /* weight of the BM25 list */
	double w_vector; /* weight of the vector list */
	uint32_t depth;  /* each retriever is asked for max(depth, k) hits, k being
			    how many fused hits the caller wants */
};

void ab_hybrid_params_default(struct ab_hybrid_params *p);

/* One ranked list, best first. ids[i] is id_lens[i] bytes (any bytes). */
struct ab_rrf_list {
	const char *const *ids;
	const size_t *id_lens;
	size_t n;
	double weight;
};

struct ab_rrf_hit {
	const char *id; /* points into the list it came from */
	size_t id_len;
	double score;
};

/* Fuses nlists lists with constant k (> 0) and writes the best `top` into
 * out (the caller's array of top entries), best first; equal scores are
 * ordered by id bytes. Returns how many were written, or AB_EINVAL. The
 * ids in out stay valid as long as the lists' ids do; nothing is kept. */
int ab_rrf_fuse(const struct ab_rrf_list *lists, size_t nlists, double k, size_t top,
		struct ab_rrf_hit *out);

#endif
