/*
 * bert.c - loading a BERT-family encoder from GGUF and the bidirectional
 * forward pass that turns token ids into one sentence embedding (bert.h).
 *
 * What the files hold. llama.cpp's converter writes sentence-transformers
 * encoders under two architectures, and so do the GGUFs Ollama serves:
 *
 *   bert        token_embd, position_embd, token_types, token_embd_norm
 *               (weight, bias); per layer attn_q/attn_k/attn_v (weights and
 *               biases, or one fused attn_qkv), attn_output (+bias),
 *               attn_output_norm, ffn_up (+bias), ffn_down (+bias),
 *               layer_output_norm; GELU feed-forward.
 *   nomic-bert  no position_embd: rotary positions (NEOX pairs, i and
 *               i + n_rot/2, base <arch>.rope.freq_base); a fused attn_qkv
 *               without bias; a SwiGLU feed-forward ffn_up, ffn_gate,
 *               ffn_down without biases.
 *
 * Every bias is optional here (added when present), as every norm bias is
 * required. Hyper-parameters are <arch>.embedding_length, block_count,
 * feed_forward_length, attention.head_count, context_length,
 * attention.layer_norm_epsilon and pooling_type; attention.causal must
 * not be true, attention.head_count_kv (if present) must equal the head
 * count (no BERT uses grouped-query attention). Classifier heads a file
 * may carry (cls.*) are not used.
 *
 * The forward pass, for the T tokens [CLS] w1 ... wk [SEP] at positions
 * 0..T-1, is the post-LayerNorm transformer of the original BERT:
 *
 *   x = LN(token_embd[t] + token_types[0] + position_embd[pos])  (no position_embd: rope)
 *   per layer:  q, k, v = Wq x + bq, Wk x + bk, Wv x + bv        (rope on q, k for nomic)
 *               a = softmax(q k^T / sqrt(head_dim)) v            per head, every key
 *               x = LN(x + Wo a + bo)                            attn_output_norm
 *               f = Wdown gelu(Wup x + bup) + bdown              bert
 *               f = Wdown (silu(Wgate x) * Wup x)                nomic-bert
 *               x = LN(x + f)                                    layer_output_norm
 *   e = pool(x) / |pool(x)|    mean over the T rows, or row 0 ([CLS]), or row T-1
 *
 * LN(x) = (x - mean) / sqrt(var + eps) * w + b, with the sums taken in
 * double as ggml does. GELU is the exact one, x/2 (1 + erf(x/sqrt 2)),
 * which the models were trained with (Hugging Face's "gelu"); llama.cpp
 * uses the tanh approximation through a float16 table, which moves the
 * final embeddings by ~1e-4 (cosine > 0.9999), so vectors agree with
 * Ollama's to that level, not bit for bit.
 *
 * Batching. Attention is bidirectional, so an input is evaluated as one
 * batch of all its tokens: no KV cache, every product is matrix-matrix
 * work. The weight products go through ab_matmul (which rounds the
 * activations to the weight's dot type as ggml does, and splits the
 * output rows over the context's thread pool); attention is done head by
 * head as two more ab_matmul calls on float32 "weights": S = Q_h K_h^T
 * with K_h (T rows of head_dim) as the matrix, then O_h = P_h V_h with
 * V_h^T (head_dim rows of T) as the matrix. For that the projections are
 * first regrouped head-major (Q_h and K_h contiguous [T][head_dim], V_h
 * transposed), a copy of O(T * n_embd) next to the O(T^2 * n_embd) work.
 * The softmax rows of S are split over the pool. Scratch is sized for the
 * longest input seen so far (at most the context's n_ctx) and kept, so a
 * context holds little memory until a long input arrives; S is one head's
 * T x T floats (16 MiB at 2048 tokens).
 *
 * Loading checks every tensor's presence, type, shape and byte size
 * before anything else is allocated, and compares weights plus one full
 * context with the memory budget, as model.c does for decoders.
 */
#include "bert.h"

#include "common.h"
#include "quant.h"
#include "rowops.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMALL_MODEL_PARAMS 5000000ull
#define MAX_EMBD 65536
#define MAX_FF (1 << 20)
#define MAX_LAYER 4096
#define MAX_CTX (1 << 20)

/* One weight matrix: rows of cols elements of type, in the mapping. */
struct mat {
	const void *w;
	uint32_t type;
	int64_t rows, cols;
};

struct layer {
	struct mat wqkv, wq, wk, wv, wo, up, gate, down;
	float *bqkv, *bq, *bk, *bv, *bo, *bup, *bdown; /* owned, optional */
	float *ln1_w, *ln1_b, *ln2_w, *ln2_b;          /* owned: attn_output_norm, layer_output_norm */
};

struct ab_bert {
	struct ab_bert_hparams hp;
	struct ab_gguf *g;
	struct ab_wpm *tok;
	int head_dim;
	struct mat embd;
	struct mat pos;  /* bert only */
	float *type0;    /* token_types row 0, or NULL */
	float *norm_w, *norm_b;
	struct layer *layers;
	size_t weight_bytes;
	uint64_t n_params;
};

struct ab_bert_ctx {
	struct ab_bert *m;
	struct ab_pool *pool;
	int n_ctx;
	int cap;          /* tokens the scratch below is sized for */
	float *x, *xb;    /* [T][E] */
	float *qkv;       /* [T][3E] */
	float *qh, *kh;   /* [H][T][hd] */
	float *vt;        /* [H][hd][T] */
	float *att;       /* [T][E] */
	float *oh;        /* [T][hd] */
	float *hb, *hb2;  /* [T][F] */
	float *s;         /* [T][T] */
	float *rope_cs; /* [T][n_rot/2][2]: cos, sin; nomic-bert */
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) AB_PRINTF(4, 5);
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

bool ab_bert_arch_supported(const char *arch)
{
	return arch && (!strcmp(arch, "bert") || !strcmp(arch, "nomic-bert"));
}

int ab_bert_probe(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	char magic[4] = {0};
	size_t n = fread(magic, 1, 4, f);
	fclose(f);
	if (n != 4 || memcmp(magic, "GGUF", 4))
		return 0;
	struct ab_gguf *g = NULL;
	char err[256];
	if (ab_gguf_open(path, &g, err, sizeof(err)) < 0)
		return 0; /* a broken file: the decoder loader reports why */
	char *arch = NULL;
	int r = ab_gguf_get_str(g, "general.architecture", &arch) == 0 &&
		ab_bert_arch_supported(arch);
	free(arch);
	ab_gguf_free(g);
	return r;
}

/* ---- memory ---- */

static size_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	char line[256];
	size_t avail = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
			avail = (size_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return avail;
}

static double mib(size_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

/* ---- hyper-parameters ---- */

static int get_int(const struct ab_gguf *g, const char *arch, const char *key, int def,
		   bool required, int lo, int hi, int *out, char *err, size_t errlen)
{
	char k[160];
	snprintf(k, sizeof(k), "%s.%s", arch, key);
	uint32_t v;
	int rc = ab_gguf_get_u32(g, k, &v);
	if (rc == AB_ENOTFOUND && !required) {
		*out = def;
		return 0;
	}
	if (rc == AB_ENOTFOUND)
		return fail(err, errlen, rc, "missing key %s", k);
	if (rc < 0)
		return fail(err, errlen, rc, "key %s: not an unsigned integer", k);
	if (v < (uint32_t)lo || v > (uint32_t)hi)
		return fail(err, errlen, AB_EINVAL, "key %s: %u is out of range [%d, %d]", k, v, lo,
			    hi);
	*out = (int)v;
	return 0;
}

static int get_float(const struct ab_gguf *g, const char *arch, const char *key, float def,
		     float *out, char *err, size_t errlen)
{
	char k[160];
	snprintf(k, sizeof(k), "%s.%s", arch, key);
	int rc = ab_gguf_get_f32(g, k, out);
	if (rc == AB_ENOTFOUND) {
		*out = def;
		return 0;
	}
	if (rc < 0)
		return fail(err, errlen, rc, "key %s: not a float", k);
	return 0;
}

static int read_hparams(struct ab_bert *m, const char *path, char *err, size_t errlen)
{
	struct ab_bert_hparams *hp = &m->hp;
	const struct ab_gguf *g = m->g;
	char *arch = NULL;
	if (ab_gguf_get_str(g, "general.architecture", &arch) < 0)
		return fail(err, errlen, AB_EINVAL, "missing key general.architecture");
	if (!ab_bert_arch_supported(arch)) {
		fail(err, errlen, AB_EINVAL,
		     "architecture %s is not an encoder this engine runs (bert, nomic-bert are)",
		     arch);
		free(arch);
		return AB_EINVAL;
	}
	ab_strlcpy(hp->arch, arch, sizeof(hp->arch));
	free(arch);
	const char *a = hp->arch;
	hp->rope = !strcmp(a, "nomic-bert");
	hp->gated_ffn = hp->rope;

	char *name = NULL;
	if (ab_gguf_get_str(g, "general.name", &name) == 0 && name[0]) {
		ab_strlcpy(hp->name, name, sizeof(hp->name));
	} else {
		const char *base = strrchr(path, '/');
		ab_strlcpy(hp->name, base ? base + 1 : path, sizeof(hp->name));
	}
	free(name);

	int rc, n_head_kv, pooling;
	if ((rc = get_int(g, a, "embedding_length", 0, true, 1, MAX_EMBD, &hp->n_embd, err,
			  errlen)) < 0 ||
	    (rc = get_int(g, a, "block_count", 0, true, 1, MAX_LAYER, &hp->n_layer, err, errlen)) <
		    0 ||
	    (rc = get_int(g, a, "feed_forward_length", 0, true, 1, MAX_FF, &hp->n_ff, err,
			  errlen)) < 0 ||
	    (rc = get_int(g, a, "attention.head_count", 0, true, 1, MAX_EMBD, &hp->n_head, err,
			  errlen)) < 0 ||
	    (rc = get_int(g, a, "attention.head_count_kv", hp->n_head, false, 1, MAX_EMBD,
			  &n_head_kv, err, errlen)) < 0 ||
	    (rc = get_int(g, a, "context_length", 512, false, 2, MAX_CTX, &hp->n_ctx_train, err,
			  errlen)) < 0 ||
	    (rc = get_int(g, a, "pooling_type", AB_BERT_POOL_MEAN, false, 0, 1000, &pooling, err,
			  errlen)) < 0)
		return rc;
	if (hp->n_embd % hp->n_head)
		return fail(err, errlen, AB_EINVAL, "n_embd %d does not divide by n_head %d",
			    hp->n_embd, hp->n_head);
	if (n_head_kv != hp->n_head)
		return fail(err, errlen, AB_EINVAL,
			    "%s.attention.head_count_kv %d differs from head_count %d: grouped "
			    "attention is not supported for encoders",
			    a, n_head_kv, hp->n_head);
	m->head_dim = hp->n_embd / hp->n_head;
	switch (pooling) {
	case 0: /* none: per-token vectors; a sentence needs one, mean is the usual */
	case AB_BERT_POOL_MEAN:
		hp->pooling = AB_BERT_POOL_MEAN;
		break;
	case AB_BERT_POOL_CLS:
	case AB_BERT_POOL_LAST:
		hp->pooling = (enum ab_bert_pooling)pooling;
		break;
	default:
		return fail(err, errlen, AB_EINVAL,
			    "%s.pooling_type %d is not supported (1 mean, 2 cls, 3 last are; 4 is "
			    "a reranker)",
			    a, pooling);
	}
	char key[160];
	snprintf(key, sizeof(key), "%s.attention.causal", a);
	bool causal = false;
	if (ab_gguf_get_bool(g, key, &causal) == 0 && causal)
		return fail(err, errlen, AB_EINVAL,
			    "%s is true: a causal encoder is not supported", key);
	if ((rc = get_float(g, a, "attention.layer_norm_epsilon", 1e-12f, &hp->eps, err,
			    errlen)) < 0)
		return rc;
	if (!(hp->eps > 0) || !(hp->eps < 1))
		return fail(err, errlen, AB_EINVAL, "bad %s.attention.layer_norm_epsilon %g", a,
			    (double)hp->eps);
	if (hp->rope) {
		if ((rc = get_int(g, a, "rope.dimension_count", m->head_dim, false, 2,
				  m->head_dim, &hp->n_rot, err, errlen)) < 0 ||
		    (rc = get_float(g, a, "rope.freq_base", 10000.0f, &hp->rope_freq_base, err,
				    errlen)) < 0)
			return rc;
		if (hp->n_rot % 2 || !(hp->rope_freq_base > 0))
			return fail(err, errlen, AB_EINVAL,
				    "bad rope: dimension_count %d, freq_base %g", hp->n_rot,
				    (double)hp->rope_freq_base);
		snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
		char *st = NULL;
		if (ab_gguf_get_str(g, key, &st) == 0) {
			bool none = !strcmp(st, "none");
			if (!none)
				fail(err, errlen, AB_EINVAL,
				     "%s %s is not supported for encoders (none is)", key, st);
			free(st);
			if (!none)
				return AB_EINVAL;
		}
	}
	return 0;
}

/* ---- tensors ---- */

/* The GGUF tensor types the kernels run (not quant.h's in-memory layouts). */
static bool file_type_ok(uint32_t type)
{
	switch (type) {
	case AB_TYPE_F32:
	case AB_TYPE_F16:
	case AB_TYPE_BF16:
	case AB_TYPE_Q8_0:
	case AB_TYPE_Q4_0:
	case AB_TYPE_Q4_K:
	case AB_TYPE_Q6_K:
		return true;
	default:
		return false;
	}
}

/* A tensor of [ne0, ne1] (ne1 < 0: any row count >= 1), of a supported
 * type, with all its bytes; *out NULL and 0 when optional and absent. */
static int find_tensor(const struct ab_bert *m, const char *name, int64_t ne0, int64_t ne1,
		       bool optional, const struct ab_gguf_tensor **out, char *err,
		       size_t errlen)
{
	const struct ab_gguf_tensor *t = ab_gguf_tensor(m->g, name);
	*out = t;
	if (!t) {
		if (optional)
			return 0;
		return fail(err, errlen, AB_ENOTFOUND, "missing tensor %s", name);
	}
	const struct ab_type_info *ti = ab_type_get(t->type);
	if (!ti || !ti->supported || !file_type_ok(t->type))
		return fail(err, errlen, AB_EINVAL, "tensor %s: type %s is not supported", name,
			    ti ? ti->name : "unknown");
	int64_t e1 = t->n_dims >= 2 ? t->ne[1] : 1;
	bool extra = false;
	for (uint32_t d = 2; d < t->n_dims && d < AB_GGUF_MAX_DIMS; d++)
		extra |= t->ne[d] != 1;
	if (t->ne[0] != ne0 || (ne1 >= 0 && e1 != ne1) || e1 < 1 || extra)
		return fail(err, errlen, AB_EINVAL,
			    "tensor %s: shape [%lld, %lld], expected [%lld, %lld]", name,
			    (long long)t->ne[0], (long long)e1, (long long)ne0, (long long)ne1);
	size_t rb = ab_type_row_bytes(t->type, t->ne[0]);
	if (!rb)
		return fail(err, errlen, AB_EINVAL,
			    "tensor %s: row length %lld is not a multiple of the %s block", name,
			    (long long)t->ne[0], ti->name);
	if (!t->data || t->n_bytes / rb < (uint64_t)e1)
		return fail(err, errlen, AB_EINVAL, "tensor %s: %llu bytes, expected %llu", name,
			    (unsigned long long)t->n_bytes, (unsigned long long)rb * (uint64_t)e1);
	return 0;
}

static int load_mat(const struct ab_bert *m, const char *name, int64_t cols, int64_t rows,
		    bool optional, struct mat *out, char *err, size_t errlen)
{
	const struct ab_gguf_tensor *t;
	memset(out, 0, sizeof(*out));
	int rc = find_tensor(m, name, cols, rows, optional, &t, err, errlen);
	if (rc < 0 || !t)
		return rc;
	out->w = t->data;
	out->type = t->type;
	out->cols = t->ne[0];
	out->rows = t->n_dims >= 2 ? t->ne[1] : 1;
	return 0;
}

/* A vector of n values (any supported type) as a new float array. */
static int load_vec(const struct ab_bert *m, const char *name, int64_t n, bool optional,
		    float **out, char *err, size_t errlen)
{
	const struct ab_gguf_tensor *t;
	*out = NULL;
	int rc = find_tensor(m, name, n, 1, optional, &t, err, errlen);
	if (rc < 0 || !t)
		return rc;
	float *v = ab_xmalloc((size_t)n * sizeof(float));
	if (ab_dequantize(t->type, t->data, v, n) < 0) {
		free(v);
		return fail(err, errlen, AB_EINVAL, "tensor %s: cannot convert to float", name);
	}
	*out = v;
	return 0;
}

static int load_layer(struct ab_bert *m, int il, char *err, size_t errlen)
{
	const struct ab_bert_hparams *hp = &m->hp;
	struct layer *L = &m->layers[il];
	int64_t E = hp->n_embd, F = hp->n_ff;
	char n[96];
	int rc;
#define NAME(s) (snprintf(n, sizeof(n), "blk.%d.%s", il, s), n)
	if ((rc = load_mat(m, NAME("attn_qkv.weight"), E, 3 * E, true, &L->wqkv, err, errlen)) <
	    0)
		return rc;
	if (L->wqkv.w) {
		if ((rc = load_vec(m, NAME("attn_qkv.bias"), 3 * E, true, &L->bqkv, err, errlen)) <
		    0)
			return rc;
	} else if ((rc = load_mat(m, NAME("attn_q.weight"), E, E, false, &L->wq, err, errlen)) <
			   0 ||
		   (rc = load_mat(m, NAME("attn_k.weight"), E, E, false, &L->wk, err, errlen)) <
			   0 ||
		   (rc = load_mat(m, NAME("attn_v.weight"), E, E, false, &L->wv, err, errlen)) <
			   0 ||
		   (rc = load_vec(m, NAME("attn_q.bias"), E, true, &L->bq, err, errlen)) < 0 ||
		   (rc = load_vec(m, NAME("attn_k.bias"), E, true, &L->bk, err, errlen)) < 0 ||
		   (rc = load_vec(m, NAME("attn_v.bias"), E, true, &L->bv, err, errlen)) < 0) {
		return rc;
	}
	if (il == 0)
		m->hp.fused_qkv = L->wqkv.w != NULL;
	else if (m->hp.fused_qkv != (L->wqkv.w != NULL))
		return fail(err, errlen, AB_EINVAL,
			    "layer %d: fused and separate q/k/v projections are mixed", il);
	if ((rc = load_mat(m, NAME("attn_output.weight"), E, E, false, &L->wo, err, errlen)) <
		    0 ||
	    (rc = load_vec(m, NAME("attn_output.bias"), E, true, &L->bo, err, errlen)) < 0 ||
	    (rc = load_vec(m, NAME("attn_output_norm.weight"), E, false, &L->ln1_w, err,
			   errlen)) < 0 ||
	    (rc = load_vec(m, NAME("attn_output_norm.bias"), E, false, &L->ln1_b, err, errlen)) <
		    0 ||
	    (rc = load_mat(m, NAME("ffn_up.weight"), E, F, false, &L->up, err, errlen)) < 0 ||
	    (rc = load_vec(m, NAME("ffn_up.bias"), F, true, &L->bup, err, errlen)) < 0 ||
	    (rc = load_mat(m, NAME("ffn_down.weight"), F, E, false, &L->down, err, errlen)) < 0 ||
	    (rc = load_vec(m, NAME("ffn_down.bias"), E, true, &L->bdown, err, errlen)) < 0 ||
	    (rc = load_vec(m, NAME("layer_output_norm.weight"), E, false, &L->ln2_w, err,
			   errlen)) < 0 ||
	    (rc = load_vec(m, NAME("layer_output_norm.bias"), E, false, &L->ln2_b, err,
			   errlen)) < 0)
		return rc;
	if (hp->gated_ffn &&
	    (rc = load_mat(m, NAME("ffn_gate.weight"), E, F, false, &L->gate, err, errlen)) < 0)
		return rc;
#undef NAME
	return 0;
}

static int load_tensors(struct ab_bert *m, char *err, size_t errlen)
{
	struct ab_bert_hparams *hp = &m->hp;
	int64_t E = hp->n_embd;
	const struct ab_gguf_tensor *te;
	int rc = find_tensor(m, "token_embd.weight", E, -1, false, &te, err, errlen);
	if (rc < 0)
		return rc;
	if (te->ne[1] > 0x7fffffff)
		return fail(err, errlen, AB_EINVAL, "tensor token_embd.weight: too many rows");
	hp->n_vocab = (int)te->ne[1];
	if ((rc = load_mat(m, "token_embd.weight", E, hp->n_vocab, false, &m->embd, err,
			   errlen)) < 0)
		return rc;
	const struct ab_gguf_tensor *tt;
	if ((rc = find_tensor(m, "token_types.weight", E, -1, true, &tt, err, errlen)) < 0)
		return rc;
	if (tt) { /* every input is "sentence A": row 0 */
		m->type0 = ab_xmalloc((size_t)E * sizeof(float));
		if (ab_dequantize(tt->type, tt->data, m->type0, E) < 0)
			return fail(err, errlen, AB_EINVAL, "tensor token_types.weight: bad data");
	}
	if (!hp->rope) {
		const struct ab_gguf_tensor *tp;
		if ((rc = find_tensor(m, "position_embd.weight", E, -1, false, &tp, err, errlen)) <
		    0)
			return rc;
		int64_t n_pos = tp->ne[1];
		if ((rc = load_mat(m, "position_embd.weight", E, n_pos, false, &m->pos, err,
				   errlen)) < 0)
			return rc;
		if (n_pos < hp->n_ctx_train)
			hp->n_ctx_train = (int)n_pos; /* no position past the table */
		if (hp->n_ctx_train < 2)
			return fail(err, errlen, AB_EINVAL,
				    "position_embd.weight has %lld rows: no room for [CLS] [SEP]",
				    (long long)n_pos);
	}
	if ((rc = load_vec(m, "token_embd_norm.weight", E, false, &m->norm_w, err, errlen)) < 0 ||
	    (rc = load_vec(m, "token_embd_norm.bias", E, false, &m->norm_b, err, errlen)) < 0)
		return rc;
	m->layers = ab_xcalloc((size_t)hp->n_layer, sizeof(*m->layers));
	for (int il = 0; il < hp->n_layer; il++)
		if ((rc = load_layer(m, il, err, errlen)) < 0)
			return rc;

	/* parameter count, and the dominant type of the layer matrices */
	uint64_t by_type[AB_TYPE__MAX] = {0};
	for (uint64_t i = 0; i < m->g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &m->g->tensors[i];
		uint64_t ne = 1;
		for (uint32_t d = 0; d < t->n_dims && d < AB_GGUF_MAX_DIMS; d++)
			ne *= (uint64_t)t->ne[d];
		m->n_params += ne;
		if (t->n_dims >= 2 && t->type < AB_TYPE__MAX && !strncmp(t->name, "blk.", 4))
			by_type[t->type] += ne;
	}
	uint32_t best = AB_TYPE_F32;
	for (uint32_t t = 0; t < AB_TYPE__MAX; t++)
		if (by_type[t] > by_type[best])
			best = t;
	hp->file_type = best;
	return 0;
}

/* ---- loading ---- */

int ab_bert_load(const char *path, const struct ab_bert_load_opts *o, struct ab_bert **out,
		 char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!path)
		return fail(err, errlen, AB_EINVAL, "no model path");
	struct ab_bert *m = ab_xcalloc(1, sizeof(*m));
	int rc = ab_gguf_open(path, &m->g, err, errlen);
	if (rc < 0)
		goto out;
	if ((rc = read_hparams(m, path, err, errlen)) < 0 ||
	    (rc = load_tensors(m, err, errlen)) < 0)
		goto out;
	m->weight_bytes = m->g->size;
	int n_ctx = o && o->n_ctx > 0 && o->n_ctx < m->hp.n_ctx_train ? o->n_ctx
								       : m->hp.n_ctx_train;
	size_t need = m->weight_bytes + ab_bert_ctx_bytes(m, n_ctx);
	size_t avail = o && o->mem_budget ? o->mem_budget : mem_available();
	if (avail && need > avail) {
		rc = fail(err, errlen, AB_ETOOBIG, "needs %.1f MiB, %.1f MiB available", mib(need),
			  mib(avail));
		goto out;
	}
	char terr[256] = "";
	if ((rc = ab_wpm_from_gguf(m->g, &m->tok, terr, sizeof(terr))) < 0) {
		fail(err, errlen, rc, "tokenizer: %s", terr);
		goto out;
	}
	if (ab_wpm_n_vocab(m->tok) > m->hp.n_vocab) {
		rc = fail(err, errlen, AB_EINVAL,
			  "the vocabulary has %d tokens but token_embd.weight only %d rows",
			  ab_wpm_n_vocab(m->tok), m->hp.n_vocab);
		goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	ab_bert_free(m);
	return rc;
}

void ab_bert_free(struct ab_bert *m)
{
	if (!m)
		return;
	if (m->layers) {
		for (int il = 0; il < m->hp.n_layer; il++) {
			struct layer *L = &m->layers[il];
			float *owned[] = {L->bqkv, L->bq,    L->bk,    L->bv,    L->bo,   L->bup,
					  L->bdown, L->ln1_w, L->ln1_b, L->ln2_w, L->ln2_b};
			for (size_t i = 0; i < AB_ARRAY_LEN(owned); i++)
				free(owned[i]);
		}
		free(m->layers);
	}
	free(m->type0);
	free(m->norm_w);
	free(m->norm_b);
	ab_wpm_free(m->tok);
	ab_gguf_free(m->g);
	free(m);
}

const struct ab_bert_hparams *ab_bert_hparams(const struct ab_bert *m)
{
	return &m->hp;
}

const struct ab_wpm *ab_bert_tok(const struct ab_bert *m)
{
	return m->tok;
}

const struct ab_gguf *ab_bert_gguf(const struct ab_bert *m)
{
	return m->g;
}

size_t ab_bert_weight_bytes(const struct ab_bert *m)
{
	return m->weight_bytes;
}

/* floats of scratch for T tokens */
static size_t scratch_floats(const struct ab_bert *m, size_t T)
{
	size_t E = (size_t)m->hp.n_embd, F = (size_t)m->hp.n_ff, hd = (size_t)m->head_dim;
	size_t rot = m->hp.rope ? (size_t)m->hp.n_rot : 0;
	return T * E * 10 + T * hd + 2 * T * F + T * T + T * rot;
}

size_t ab_bert_ctx_bytes(const struct ab_bert *m, int n_ctx)
{
	if (n_ctx <= 0 || n_ctx > m->hp.n_ctx_train)
		n_ctx = m->hp.n_ctx_train;
	return scratch_floats(m, (size_t)n_ctx) * sizeof(float);
}

int ab_bert_tokenize(const struct ab_bert *m, const char *text, size_t len, int32_t *out,
		     int max, int *n_full)
{
	if (!m || !out || max < 2)
		return AB_EINVAL;
	int n = ab_wpm_encode(m->tok, text, len, true, out, max);
	if (n < 0)
		return n;
	if (n_full)
		*n_full = n;
	if (n > max) { /* [CLS] and the first max - 2 pieces were written */
		out[max - 1] = ab_wpm_sep(m->tok);
		n = max;
	}
	return n;
}

/* ---- contexts ---- */

static int n_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (int)n;
}

int ab_bert_ctx_new(struct ab_bert *m, int n_ctx, int n_threads, struct ab_bert_ctx **out,
		    char *err, size_t errlen)
{
	*out = NULL;
	if (!m)
		return fail(err, errlen, AB_EINVAL, "no model");
	if (n_ctx <= 0 || n_ctx > m->hp.n_ctx_train)
		n_ctx = m->hp.n_ctx_train;
	if (n_threads <= 0) {
		n_threads = m->n_params < SMALL_MODEL_PARAMS ? 1 : n_cpus();
		if (n_threads > 4)
			n_threads = 4;
	}
	if (n_threads > 256)
		n_threads = 256;
	struct ab_bert_ctx *c = ab_xcalloc(1, sizeof(*c));
	c->m = m;
	c->n_ctx = n_ctx;
	c->pool = ab_pool_new(n_threads);
	*out = c;
	return 0;
}

static void free_scratch(struct ab_bert_ctx *c)
{
	float **bufs[] = {&c->x, &c->xb, &c->qkv, &c->qh, &c->kh, &c->vt,
			  &c->att, &c->oh, &c->hb, &c->hb2, &c->s, &c->rope_cs};
	for (size_t i = 0; i < AB_ARRAY_LEN(bufs); i++) {
		free(*bufs[i]);
		*bufs[i] = NULL;
	}
	c->cap = 0;
}

void ab_bert_ctx_free(struct ab_bert_ctx *c)
{
	if (!c)
		return;
	ab_pool_free(c->pool);
	free_scratch(c);
	free(c);
}

int ab_bert_ctx_n_ctx(const struct ab_bert_ctx *c)
{
	return c->n_ctx;
}

/* Scratch for T tokens (grows, never shrinks). */
static void reserve(struct ab_bert_ctx *c, int T)
{
	if (T <= c->cap)
		return;
	free_scratch(c);
	size_t t = (size_t)T, E = (size_t)c->m->hp.n_embd, F = (size_t)c->m->hp.n_ff;
	size_t hd = (size_t)c->m->head_dim;
	c->x = ab_xmalloc(t * E * sizeof(float));
	c->xb = ab_xmalloc(t * E * sizeof(float));
	c->qkv = ab_xmalloc(3 * t * E * sizeof(float));
	c->qh = ab_xmalloc(t * E * sizeof(float));
	c->kh = ab_xmalloc(t * E * sizeof(float));
	c->vt = ab_xmalloc(t * E * sizeof(float));
	c->att = ab_xmalloc(t * E * sizeof(float));
	c->oh = ab_xmalloc(t * hd * sizeof(float));
	c->hb = ab_xmalloc(t * F * sizeof(float));
	c->hb2 = ab_xmalloc(t * F * sizeof(float));
	c->s = ab_xmalloc(t * t * sizeof(float));
	if (c->m->hp.rope) {
		size_t half = (size_t)c->m->hp.n_rot / 2;
		c->rope_cs = ab_xmalloc(t * half * 2 * sizeof(float));
	}
	c->cap = T;
}

/* ---- the forward pass ---- */

static void matmul(struct ab_bert_ctx *c, const struct mat *w, const float *x, int T, float *y)
{
	ab_matmul(w->w, w->type, w->rows, w->cols, x, T, y, c->pool);
}

static void add_bias(float *y, const float *b, int T, int n)
{
	if (!b)
		return;
	for (int t = 0; t < T; t++)
		for (int i = 0; i < n; i++)
			y[(size_t)t * n + i] += b[i];
}

/* out = (x - mean) / sqrt(var + eps) * w + b over T rows of n (out may be x). */
static void layernorm(float *out, const float *x, const float *w, const float *b, int T, int n,
		      float eps)
{
	for (int t = 0; t < T; t++) {
		const float *xr = x + (size_t)t * n;
		float *o = out + (size_t)t * n;
		double sum = 0;
		for (int i = 0; i < n; i++)
			sum += xr[i];
		float mean = (float)(sum / n);
		double sum2 = 0;
		for (int i = 0; i < n; i++) {
			float d = xr[i] - mean;
			sum2 += (double)(d * d);
		}
		float scale = 1.0f / sqrtf((float)(sum2 / n) + eps);
		for (int i = 0; i < n; i++)
			o[i] = (xr[i] - mean) * scale * w[i] + b[i];
	}
}

static float gelu(float x)
{
	return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
}

static float silu(float x)
{
	return x / (1.0f + expf(-x));
}

/* The rotary angles of positions 0..T-1: cos and sin of pos * base^(-2i/n_rot)
 * for i < n_rot/2, the frequencies built by repeated multiplication as
 * ggml builds them; once per input, shared by every layer and head. */
static void rope_table(struct ab_bert_ctx *c, int T)
{
	const struct ab_bert *m = c->m;
	int half = m->hp.n_rot / 2;
	float theta_scale = powf(m->hp.rope_freq_base, -2.0f / (float)m->hp.n_rot);
	for (int t = 0; t < T; t++) {
		float theta = (float)t;
		for (int i = 0; i < half; i++) {
			c->rope_cs[((size_t)t * half + i) * 2] = cosf(theta);
			c->rope_cs[((size_t)t * half + i) * 2 + 1] = sinf(theta);
			theta *= theta_scale;
		}
	}
}

/* NEOX rotary embedding of T rows of hd floats (one head), row t at
 * position t: pairs (i, i + n_rot/2) for i < n_rot/2 (rowops.c). */
static void rope_head(const struct ab_bert_ctx *c, float *v, int T)
{
	int hd = c->m->head_dim, half = c->m->hp.n_rot / 2;
	for (int t = 0; t < T; t++)
		ab_rowops_rope(v + (size_t)t * hd, c->rope_cs + (size_t)t * half * 2, half, true);
}

struct softmax_job {
	float *s;
	int T;
	float scale;
};

static void softmax_rows(void *ud, int ith, int nth)
{
	const struct softmax_job *j = ud;
	int r0 = (int)((int64_t)j->T * ith / nth), r1 = (int)((int64_t)j->T * (ith + 1) / nth);
	for (int r = r0; r < r1; r++) {
		float *row = j->s + (size_t)r * j->T;
		float mx = -INFINITY;
		for (int k = 0; k < j->T; k++) {
			row[k] *= j->scale;
			if (row[k] > mx)
				mx = row[k];
		}
		double sum = 0;
		for (int k = 0; k < j->T; k++) {
			row[k] = expf(row[k] - mx);
			sum += row[k];
		}
		float inv = (float)(1.0 / sum);
		for (int k = 0; k < j->T; k++)
			row[k] *= inv;
	}
}

/* Self-attention of one layer: c->att = per-head softmax(Q K^T / sqrt(hd)) V
 * for q, k, v given as T rows of stride floats. */
static void attention(struct ab_bert_ctx *c, const float *q, const float *k, const float *v,
		      int stride, int T)
{
	const struct ab_bert *m = c->m;
	int H = m->hp.n_head, hd = m->head_dim, E = m->hp.n_embd;
	size_t th = (size_t)T * (size_t)hd;
	for (int h = 0; h < H; h++) {
		float *qh = c->qh + (size_t)h * th, *kh = c->kh + (size_t)h * th;
		float *vt = c->vt + (size_t)h * th;
		for (int t = 0; t < T; t++) {
			size_t src = (size_t)t * (size_t)stride + (size_t)h * (size_t)hd;
			memcpy(qh + (size_t)t * hd, q + src, (size_t)hd * sizeof(float));
			memcpy(kh + (size_t)t * hd, k + src, (size_t)hd * sizeof(float));
			for (int d = 0; d < hd; d++)
				vt[(size_t)d * T + t] = v[src + d];
		}
		if (m->hp.rope) {
			rope_head(c, qh, T);
			rope_head(c, kh, T);
		}
	}
	struct softmax_job sj = {.s = c->s, .T = T, .scale = 1.0f / sqrtf((float)hd)};
	for (int h = 0; h < H; h++) {
		/* S[t][s] = q_t . k_s: K_h is the "weight" matrix of T rows */
		ab_matmul(c->kh + (size_t)h * th, AB_TYPE_F32, T, hd, c->qh + (size_t)h * th, T, c->s,
			  c->pool);
		ab_pool_run(c->pool, softmax_rows, &sj);
		/* O[t][d] = sum_s P[t][s] v_s[d]: V_h^T has hd rows of T */
		ab_matmul(c->vt + (size_t)h * th, AB_TYPE_F32, hd, T, c->s, T, c->oh, c->pool);
		for (int t = 0; t < T; t++)
			memcpy(c->att + (size_t)t * E + (size_t)h * hd, c->oh + (size_t)t * hd,
			       (size_t)hd * sizeof(float));
	}
}

static void forward(struct ab_bert_ctx *c, const int32_t *tokens, int T)
{
	const struct ab_bert *m = c->m;
	const struct ab_bert_hparams *hp = &m->hp;
	int E = hp->n_embd, F = hp->n_ff;
	size_t TE = (size_t)T * (size_t)E, TF = (size_t)T * (size_t)F;
	size_t erow = ab_type_row_bytes(m->embd.type, E);
	for (int t = 0; t < T; t++) {
		float *x = c->x + (size_t)t * E;
		ab_dequantize(m->embd.type, (const uint8_t *)m->embd.w + (size_t)tokens[t] * erow, x,
			      E);
		if (m->type0)
			for (int i = 0; i < E; i++)
				x[i] += m->type0[i];
		if (!hp->rope) {
			float *p = c->xb + (size_t)t * E;
			size_t prow = ab_type_row_bytes(m->pos.type, E);
			ab_dequantize(m->pos.type, (const uint8_t *)m->pos.w + (size_t)t * prow, p, E);
			for (int i = 0; i < E; i++)
				x[i] += p[i];
		}
	}
	layernorm(c->x, c->x, m->norm_w, m->norm_b, T, E, hp->eps);
	if (hp->rope)
		rope_table(c, T);

	for (int il = 0; il < hp->n_layer; il++) {
		const struct layer *L = &m->layers[il];
		if (hp->fused_qkv) {
			matmul(c, &L->wqkv, c->x, T, c->qkv);
			add_bias(c->qkv, L->bqkv, T, 3 * E);
			attention(c, c->qkv, c->qkv + E, c->qkv + 2 * E, 3 * E, T);
		} else {
			float *q = c->qkv, *k = c->qkv + TE, *v = c->qkv + 2 * TE;
			/* one quantisation of x and one pool run for the three */
			struct ab_matmul_op ops[3] = {
				{.W = L->wq.w, .type = L->wq.type, .R = L->wq.rows, .Y = q},
				{.W = L->wk.w, .type = L->wk.type, .R = L->wk.rows, .Y = k},
				{.W = L->wv.w, .type = L->wv.type, .R = L->wv.rows, .Y = v},
			};
			ab_matmul_n(ops, 3, L->wq.cols, c->x, T, c->pool);
			add_bias(q, L->bq, T, E);
			add_bias(k, L->bk, T, E);
			add_bias(v, L->bv, T, E);
			attention(c, q, k, v, E, T);
		}
		matmul(c, &L->wo, c->att, T, c->xb);
		add_bias(c->xb, L->bo, T, E);
		for (size_t i = 0; i < TE; i++)
			c->xb[i] += c->x[i];
		layernorm(c->x, c->xb, L->ln1_w, L->ln1_b, T, E, hp->eps);

		matmul(c, &L->up, c->x, T, c->hb);
		add_bias(c->hb, L->bup, T, F);
		if (hp->gated_ffn) {
			matmul(c, &L->gate, c->x, T, c->hb2);
			for (size_t i = 0; i < TF; i++)
				c->hb[i] = silu(c->hb2[i]) * c->hb[i];
		} else {
			for (size_t i = 0; i < TF; i++)
				c->hb[i] = gelu(c->hb[i]);
		}
		matmul(c, &L->down, c->hb, T, c->xb);
		add_bias(c->xb, L->bdown, T, E);
		for (size_t i = 0; i < TE; i++)
			c->xb[i] += c->x[i];
		layernorm(c->x, c->xb, L->ln2_w, L->ln2_b, T, E, hp->eps);
	}
}

/* The pooled vector of the final states, scaled to unit length. */
static void pool_normalise(const struct ab_bert_ctx *c, int T, float *embd)
{
	const struct ab_bert_hparams *hp = &c->m->hp;
	int E = hp->n_embd;
	double *acc = ab_xcalloc((size_t)E, sizeof(double));
	if (hp->pooling == AB_BERT_POOL_MEAN) {
		for (int t = 0; t < T; t++)
			for (int i = 0; i < E; i++)
				acc[i] += c->x[(size_t)t * E + i];
		for (int i = 0; i < E; i++)
			acc[i] /= T;
	} else {
		int row = hp->pooling == AB_BERT_POOL_CLS ? 0 : T - 1;
		for (int i = 0; i < E; i++)
			acc[i] = c->x[(size_t)row * E + i];
	}
	double norm = 0;
	for (int i = 0; i < E; i++)
		norm += acc[i] * acc[i];
	norm = sqrt(norm);
	for (int i = 0; i < E; i++)
		embd[i] = (float)(norm > 0 ? acc[i] / norm : 0.0);
	free(acc);
}

int ab_bert_encode(struct ab_bert_ctx *c, const int32_t *tokens, int n, float *embd,
		   float *hidden)
{
	if (!c || !tokens || n < 1)
		return AB_EINVAL;
	if (n > c->n_ctx)
		return AB_ETOOBIG;
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab)
			return AB_EINVAL;
	reserve(c, n);
	forward(c, tokens, n);
	if (hidden)
		memcpy(hidden, c->x, (size_t)n * (size_t)c->m->hp.n_embd * sizeof(float));
	if (embd)
		pool_normalise(c, n, embd);
	return 0;
}

int ab_bert_embed(struct ab_bert_ctx *c, const char *text, size_t len, float *embd,
		  int *n_tokens, bool *truncated)
{
	if (!c || (!text && len))
		return AB_EINVAL;
	int32_t *toks = ab_xmalloc((size_t)c->n_ctx * sizeof(int32_t));
	int full = 0;
	int n = ab_bert_tokenize(c->m, text ? text : "", len, toks, c->n_ctx, &full);
	int rc = n < 0 ? n : ab_bert_encode(c, toks, n, embd, NULL);
	free(toks);
	if (rc < 0)
		return rc;
	if (n_tokens)
		*n_tokens = n;
	if (truncated)
		*truncated = full > n;
	return 0;
}
