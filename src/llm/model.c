/*
 * model.c - loading a llama-family model (GGUF or llama2.c checkpoint)
 * and the transformer forward pass over it (model.h).
 *
 * Loading. A GGUF file is mapped by ab_gguf_open and the weights are used
 * in place: a model is little more than a table of pointers into the
 * mapping plus the norm vectors (and qwen2's biases) dequantised to float
 * once, because they are tiny and read for every token. A llama2.c
 * checkpoint is converted to an in-memory GGUF (ab_llama2c_to_gguf +
 * ab_gguf_write_mem) and parsed from that buffer, which then lives as long
 * as the model; from there on both kinds are the same. Every tensor the
 * graph needs is checked for presence, shape and a type the kernels
 * support before anything is allocated, and the bytes of weights plus one
 * context are compared with the memory budget (or MemAvailable) so that a
 * model too big for the machine is refused with a sentence instead of
 * being paged to death.
 *
 * The forward pass is the one llama.cpp computes for LLM_ARCH_LLAMA (and
 * mistral, and qwen2 with its q/k/v biases and NEOX-style rotary pairs):
 *
 *   x = token_embd[t]
 *   per layer:  h = rmsnorm(x) * attn_norm
 *               q, k, v = Wq h, Wk h, Wv h   (+ biases for qwen2)
 *               rope(q), rope(k); append k, v to the cache
 *               x += Wo attention(q, K, V)
 *               h = rmsnorm(x) * ffn_norm
 *               x += Wdown (silu(Wgate h) * Wup h)
 *   logits = Wout (rmsnorm(x) * output_norm)
 *
 * The arithmetic follows ggml where that is cheap to do, so that F32
 * models agree with llama.cpp to float32 noise: rmsnorm sums squares in
 * double and multiplies (x * scale) * w in that order; rotary angles are
 * pos * base^(-2i/n_rot) built by repeated float multiplication as ggml
 * builds its cache; softmax subtracts the max and sums in double. The
 * matrix products (and the rounding of activations to the weight's dot
 * type for F16 and quantised weights) are ab_matmul's business.
 *
 * KV cache. One float32 array per K and V, laid out
 * [n_layer][n_ctx][n_head_kv * head_dim]: for a layer, the keys of
 * consecutive positions are consecutive rows. That makes the K and V
 * projections of a batch of T tokens at positions pos..pos+T-1 one
 * contiguous block of T rows, so ab_matmul writes them straight into the
 * cache (no copy), and RoPE is applied to K in place there. Attention for
 * a query at position p reads rows 0..p of its layer: one contiguous run
 * per (layer, kv head) stride. Float32 (not f16) is what the reference
 * outputs were produced with; the cost is 2 * n_layer * n_ctx * kv_dim * 4
 * bytes, which ab_llm_ctx_bytes reports for the memory check.
 *
 * Batching. A prompt is evaluated in chunks of up to n_batch (128) tokens:
 * every weight matrix is streamed once per chunk for all its tokens
 * (matrix-matrix work in ab_matmul) instead of once per token, which is
 * what makes prompt processing many times faster than generation. The
 * scratch buffers are sized for one chunk, so memory does not grow with
 * the prompt. Logits are computed only for the last token unless the
 * caller asks for all of them (the classifier is the biggest matrix of a
 * small model).
 *
 * Repacking. After the tensors are checked, every layer matrix and the
 * classifier is offered to ab_quant_repack (up to four threads at
 * once): Q4_0, Q8_0, Q4_K and Q6_K matrices (rows a multiple of 8) are
 * copied into the eight-row interleaved layouts the kernels read faster
 * (quant.c; Q4_K's is 2.8 % larger, its scales decoded), owned by the
 * model (mat.packed), and the file's pages of the original are dropped
 * with MADV_DONTNEED (read once; the mapping stays valid), so resident
 * memory stays about the size of the weights. The token embedding stays
 * as stored (rows are dequantised one at a time); with a tied classifier
 * the copy is made and the original kept for the embedding. The memory
 * check counts both extras.
 *
 * Threads. A context owns an ab_pool. Matrix products split their rows
 * across it (inside ab_matmul; products of the same input, Q/K/V and
 * gate/up, as one job through ab_matmul_n); attention hands out the
 * (token, head) items of a chunk from a counter, the last tokens' long
 * causal rows first, each thread with its own score buffer of n_ctx
 * floats. In a prompt of eight tokens or more the norms, RoPE, KV stores
 * and residual adds split the chunk's tokens (rows_run); for a single
 * token they stay on the calling thread. For tiny models the pool's
 * wake-up cost exceeds the work, hence the default of one thread below
 * ~50M parameters.
 */
#include "model.h"

#include "common.h"
#include "gguf.h"
#include "llama2c.h"
#include "quant.h"
#include "rowops.h"
#include "tokenizer.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* 128 rather than 64: one chunk for a 128-token prompt (the weights
 * streamed once, the AMX B tiles made once for eight activation tiles):
 * prompt medians 7-17 % faster over four alternating runs (110M Q4_0 1
 * and 2 threads, 110M Q8_0 and 1.1B Q4_0 2 threads); 256 was no better on
 * a 509-token prompt */
#define N_BATCH 128
#define SMALL_MODEL_PARAMS 50000000ull

/* One weight matrix: rows of cols elements of type, in the mapping. */
struct mat {
	const void *w;
	uint32_t type;
	int64_t rows, cols;
	void *packed; /* owned: w repacked by ab_quant_repack, or NULL */
	size_t grown; /* bytes the repacked copy has beyond the original */
};

struct layer {
	struct mat wq, wk, wv, wo, wgate, wup, wdown;
	float *attn_norm, *ffn_norm; /* owned, n_embd */
	float *bq, *bk, *bv;         /* owned, qwen2 only */
};

struct ab_llm_model {
	struct ab_llm_hparams hp;
	struct ab_gguf *g;
	void *mem; /* llama2.c: the converted GGUF the mapping-less g points into */
	size_t mem_len;
	bool from_llama2c;
	struct ab_tok *tok;
	int head_dim;
	bool neox; /* rotary pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
	struct mat embd;
	struct mat out;
	float *out_norm;
	struct layer *layers;
	size_t weight_bytes;
	uint64_t n_params;
	bool kv_f16; /* contexts made from now on keep K and V as F16 */
	bool att_plain; /* tests: the row-at-a-time attention for every head size */
};

/* Prompt attention takes the queries of a head ATT_G tokens at a time
 * (see att_group) */
#define ATT_G 16
/* a thread's attention scratch: ATT_G rows of scores, and one key and one
 * value row as float (the F16 cache's slow path) */
#define SCORE_FLOATS(n_ctx, hd) (ATT_G * (size_t)(n_ctx) + 2 * (size_t)(hd))

struct ab_llm_ctx {
	struct ab_llm_model *m;
	struct ab_pool *pool;
	int n_ctx, n_batch, pos;
	int n_batch_max; /* the chunk size the scratch buffers were made for */
	int kv_dim, q_dim;
	/* [n_layer][n_head_kv][n_ctx][head_dim]: a head's keys (values) for
	 * consecutive positions are contiguous, so attention streams them */
	void *k_cache, *v_cache;  /* float, or F16 (uint16_t) with kv16 */
	bool kv16;
	float *kt, *vt;           /* [n_batch][kv_dim]: a chunk's new keys and values */
	float *x, *xb, *xb2;      /* [n_batch][n_embd] */
	float *q, *att;           /* [n_batch][q_dim] */
	float *hb, *hb2;          /* [n_batch][n_ff] */
	float *rope_cs;           /* [n_batch][n_rot / 2][2]: cos, sin at the chunk's positions */
	float *scores;            /* [threads][ATT_G][n_ctx] */
	float *logits;            /* [n_vocab], when the caller passes none */
	ab_llm_hidden_cb cb;
	void *cb_ud;
};

/* ---- small helpers ---- */

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

static int n_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (int)n;
}

/* MemAvailable from /proc/meminfo in bytes, or 0 if unknown. */
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

static int check_memory(size_t need, size_t budget, char *err, size_t errlen)
{
	size_t avail = budget ? budget : mem_available();
	if (avail && need > avail)
		return fail(err, errlen, AB_ETOOBIG, "needs %.1f MiB, %.1f MiB available", mib(need),
			    mib(avail));
	return 0;
}

/* ---- hyperparameters ---- */

static int get_u32(const struct ab_gguf *g, const char *arch, const char *key, int def,
		   bool required, int *out, char *err, size_t errlen)
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
	if (v > 0x7fffffff)
		return fail(err, errlen, AB_EINVAL, "key %s: %u is out of range", k, v);
	*out = (int)v;
	return 0;
}

static int get_f32(const struct ab_gguf *g, const char *arch, const char *key, float def,
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

static int read_hparams(struct ab_llm_model *m, const char *path, char *err, size_t errlen)
{
	struct ab_llm_hparams *hp = &m->hp;
	const struct ab_gguf *g = m->g;
	char *arch = NULL;
	if (ab_gguf_get_str(g, "general.architecture", &arch) < 0)
		return fail(err, errlen, AB_EINVAL, "missing key general.architecture");
	if (strcmp(arch, "llama") && strcmp(arch, "mistral") && strcmp(arch, "qwen2")) {
		fail(err, errlen, AB_EINVAL,
		     "architecture %s is not supported (llama, mistral, qwen2 are)", arch);
		free(arch);
		return AB_EINVAL;
	}
	ab_strlcpy(hp->arch, arch, sizeof(hp->arch));
	free(arch);
	const char *a = hp->arch;
	hp->qkv_bias = !strcmp(a, "qwen2");
	m->neox = !strcmp(a, "qwen2");

	char *name = NULL;
	if (ab_gguf_get_str(g, "general.name", &name) == 0 && name[0]) {
		ab_strlcpy(hp->name, name, sizeof(hp->name));
	} else {
		const char *base = strrchr(path, '/');
		ab_strlcpy(hp->name, base ? base + 1 : path, sizeof(hp->name));
	}
	free(name);

	int rc;
	if ((rc = get_u32(g, a, "embedding_length", 0, true, &hp->n_embd, err, errlen)) < 0 ||
	    (rc = get_u32(g, a, "block_count", 0, true, &hp->n_layer, err, errlen)) < 0 ||
	    (rc = get_u32(g, a, "feed_forward_length", 0, true, &hp->n_ff, err, errlen)) < 0 ||
	    (rc = get_u32(g, a, "attention.head_count", 0, true, &hp->n_head, err, errlen)) < 0)
		return rc;
	if ((rc = get_u32(g, a, "attention.head_count_kv", hp->n_head, false, &hp->n_head_kv, err,
			  errlen)) < 0 ||
	    (rc = get_u32(g, a, "context_length", 2048, false, &hp->n_ctx_train, err, errlen)) < 0)
		return rc;
	if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_ff <= 0 || hp->n_head <= 0 ||
	    hp->n_head_kv <= 0 || hp->n_ctx_train <= 0)
		return fail(err, errlen, AB_EINVAL,
			    "bad hyperparameters: n_embd %d, n_layer %d, n_ff %d, n_head %d, "
			    "n_head_kv %d, context_length %d",
			    hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head, hp->n_head_kv,
			    hp->n_ctx_train);
	if (hp->n_embd % hp->n_head || hp->n_head % hp->n_head_kv)
		return fail(err, errlen, AB_EINVAL,
			    "n_embd %d must divide by n_head %d and n_head by n_head_kv %d",
			    hp->n_embd, hp->n_head, hp->n_head_kv);
	m->head_dim = hp->n_embd / hp->n_head;
	if ((rc = get_u32(g, a, "rope.dimension_count", m->head_dim, false, &hp->n_rot, err,
			  errlen)) < 0)
		return rc;
	if (hp->n_rot <= 0 || hp->n_rot > m->head_dim || hp->n_rot % 2)
		return fail(err, errlen, AB_EINVAL,
			    "rope.dimension_count %d must be even and at most head_dim %d",
			    hp->n_rot, m->head_dim);
	if ((rc = get_f32(g, a, "rope.freq_base", 10000.0f, &hp->rope_freq_base, err, errlen)) <
		    0 ||
	    (rc = get_f32(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err,
			  errlen)) < 0)
		return rc;
	hp->rope_freq_scale = 1.0f;
	char key[160];
	snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
	char *stype = NULL;
	float factor = 0;
	if (ab_gguf_get_str(g, key, &stype) == 0) {
		bool none = !strcmp(stype, "none"), linear = !strcmp(stype, "linear");
		if (!none && !linear) {
			fail(err, errlen, AB_EINVAL,
			     "rope scaling type %s is not supported (none, linear are)", stype);
			free(stype);
			return AB_EINVAL;
		}
		free(stype);
		if (linear) {
			if ((rc = get_f32(g, a, "rope.scaling.factor", 0, &factor, err, errlen)) < 0)
				return rc;
		}
	} else {
		/* older files: <arch>.rope.scale_linear */
		if ((rc = get_f32(g, a, "rope.scale_linear", 0, &factor, err, errlen)) < 0)
			return rc;
	}
	if (factor > 0)
		hp->rope_freq_scale = 1.0f / factor;
	if (!(hp->rope_freq_base > 0) || !(hp->rms_eps > 0))
		return fail(err, errlen, AB_EINVAL, "bad rope.freq_base %g or rms epsilon %g",
			    (double)hp->rope_freq_base, (double)hp->rms_eps);
	return 0;
}

/* ---- tensors ---- */

static int find_tensor(const struct ab_llm_model *m, const char *name, int64_t ne0, int64_t ne1,
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
	if (!ti || !ti->supported)
		return fail(err, errlen, AB_EINVAL, "tensor %s: type %s is not supported", name,
			    ti ? ti->name : "unknown");
	int64_t e1 = t->n_dims >= 2 ? t->ne[1] : 1;
	bool extra = false;
	for (uint32_t d = 2; d < t->n_dims && d < AB_GGUF_MAX_DIMS; d++)
		extra |= t->ne[d] != 1;
	if (t->ne[0] != ne0 || (ne1 >= 0 && e1 != ne1) || extra)
		return fail(err, errlen, AB_EINVAL,
			    "tensor %s: shape [%lld, %lld], expected [%lld, %lld]", name,
			    (long long)t->ne[0], (long long)e1, (long long)ne0, (long long)ne1);
	size_t rb = ab_type_row_bytes(t->type, t->ne[0]);
	if (!rb)
		return fail(err, errlen, AB_EINVAL,
			    "tensor %s: row length %lld is not a multiple of the %s block", name,
			    (long long)t->ne[0], ti->name);
	if (t->n_bytes < rb * (uint64_t)e1 || !t->data)
		return fail(err, errlen, AB_EINVAL, "tensor %s: %llu bytes, expected %llu", name,
			    (unsigned long long)t->n_bytes, (unsigned long long)(rb * e1));
	return 0;
}

static int load_mat(const struct ab_llm_model *m, const char *name, int64_t cols, int64_t rows,
		    struct mat *out, char *err, size_t errlen)
{
	const struct ab_gguf_tensor *t;
	int rc = find_tensor(m, name, cols, rows, false, &t, err, errlen);
	if (rc < 0)
		return rc;
	out->w = t->data;
	out->type = t->type;
	out->cols = t->ne[0];
	out->rows = t->n_dims >= 2 ? t->ne[1] : 1;
	return 0;
}

/* A vector of n elements (any supported type) dequantised into a new
 * float array; *out stays NULL when optional and absent. */
static int load_vec(const struct ab_llm_model *m, const char *name, int64_t n, bool optional,
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

/* Replaces w by a faster layout when ab_quant_repack has one, and
 * drops the file's pages of the original from this process (they were
 * read once; the mapping stays valid, a later access would fault them in
 * again) so that the copy does not double the resident size. */
static void repack_mat(const struct ab_llm_model *m, struct mat *w, bool keep_source)
{
	void *p = NULL;
	uint32_t type = w->type;
	if (ab_quant_repack(w->type, w->w, w->rows, w->cols, &p, &type) < 0 || !p)
		return;
	size_t len = ab_type_row_bytes(w->type, w->cols) * (size_t)w->rows;
	if (!keep_source && !m->from_llama2c) {
		long pg = sysconf(_SC_PAGESIZE);
		uintptr_t a = ((uintptr_t)w->w + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
		uintptr_t e = ((uintptr_t)w->w + len) & ~(uintptr_t)(pg - 1);
		if (pg > 0 && e > a)
			(void)madvise((void *)a, e - a, MADV_DONTNEED);
	}
	size_t plen = ab_type_row_bytes(type, w->cols) * (size_t)w->rows;
	w->grown = plen > len ? plen - len : 0;
	w->w = p;
	w->type = type;
	w->packed = p;
}

/* The matrices are repacked by a few threads at once (each takes the
 * next matrix from a shared counter): the copy is bound by page faults
 * and memory traffic, and it is most of the load time of a big model. */
struct repack_job {
	struct ab_llm_model *m;
	struct mat **ms;
	int n;
	atomic_int next;
};

static void repack_task(void *ud, int ith, int nth)
{
	struct repack_job *j = ud;
	(void)ith;
	(void)nth;
	for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;)
		/* tied: the embedding rows are still read from the original */
		repack_mat(j->m, j->ms[i], j->ms[i] == &j->m->out && j->m->hp.tied_output);
}

static void repack_all(struct ab_llm_model *m)
{
	struct repack_job j = {.m = m, .n = 0};
	j.ms = ab_xcalloc((size_t)m->hp.n_layer * 7 + 1, sizeof(*j.ms));
	size_t bytes = 0;
	for (int il = 0; il < m->hp.n_layer; il++) {
		struct layer *L = &m->layers[il];
		struct mat *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
		for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
			j.ms[j.n++] = ms[i];
	}
	j.ms[j.n++] = &m->out;
	for (int i = 0; i < j.n; i++)
		bytes += ab_type_row_bytes(j.ms[i]->type, j.ms[i]->cols) * (size_t)j.ms[i]->rows;
	atomic_init(&j.next, 0);
	int nth = n_cpus() < 4 ? n_cpus() : 4;
	if (nth > 1 && bytes >= ((size_t)64 << 20)) {
		struct ab_pool *pool = ab_pool_new(nth);
		ab_pool_run(pool, repack_task, &j);
		ab_pool_free(pool);
	} else {
		repack_task(&j, 0, 1);
	}
	free(j.ms);
}

static int load_tensors(struct ab_llm_model *m, char *err, size_t errlen)
{
	struct ab_llm_hparams *hp = &m->hp;
	const struct ab_gguf_tensor *te = ab_gguf_tensor(m->g, "token_embd.weight");
	if (!te)
		return fail(err, errlen, AB_ENOTFOUND, "missing tensor token_embd.weight");
	if (te->n_dims < 2 || te->ne[1] <= 0 || te->ne[1] > 0x7fffffff)
		return fail(err, errlen, AB_EINVAL, "tensor token_embd.weight: bad shape");
	hp->n_vocab = (int)te->ne[1];
	int rc = load_mat(m, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->embd, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = load_vec(m, "output_norm.weight", hp->n_embd, false, &m->out_norm, err,
			   errlen)) < 0)
		return rc;
	if (ab_gguf_tensor(m->g, "output.weight")) {
		rc = load_mat(m, "output.weight", hp->n_embd, hp->n_vocab, &m->out, err, errlen);
		if (rc < 0)
			return rc;
		hp->tied_output = false;
	} else {
		m->out = m->embd;
		hp->tied_output = true;
	}
	int hd = m->head_dim;
	int64_t q_dim = (int64_t)hp->n_head * hd, kv_dim = (int64_t)hp->n_head_kv * hd;
	m->layers = ab_xcalloc((size_t)hp->n_layer, sizeof(*m->layers));
	for (int il = 0; il < hp->n_layer; il++) {
		struct layer *L = &m->layers[il];
		char n[96];
#define NAME(s) (snprintf(n, sizeof(n), "blk.%d.%s", il, s), n)
		if ((rc = load_vec(m, NAME("attn_norm.weight"), hp->n_embd, false, &L->attn_norm,
				   err, errlen)) < 0 ||
		    (rc = load_vec(m, NAME("ffn_norm.weight"), hp->n_embd, false, &L->ffn_norm, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("attn_q.weight"), hp->n_embd, q_dim, &L->wq, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("attn_k.weight"), hp->n_embd, kv_dim, &L->wk, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("attn_v.weight"), hp->n_embd, kv_dim, &L->wv, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("attn_output.weight"), q_dim, hp->n_embd, &L->wo, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, &L->wgate, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, &L->wup, err,
				   errlen)) < 0 ||
		    (rc = load_mat(m, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, &L->wdown, err,
				   errlen)) < 0)
			return rc;
		if (hp->qkv_bias &&
		    ((rc = load_vec(m, NAME("attn_q.bias"), q_dim, false, &L->bq, err, errlen)) < 0 ||
		     (rc = load_vec(m, NAME("attn_k.bias"), kv_dim, false, &L->bk, err, errlen)) <
			     0 ||
		     (rc = load_vec(m, NAME("attn_v.bias"), kv_dim, false, &L->bv, err, errlen)) <
			     0))
			return rc;
#undef NAME
	}

	/* Parameter count, and the dominant type of the layer matrices. */
	uint64_t by_type[AB_TYPE__MAX] = {0};
	for (uint64_t i = 0; i < m->g->n_tensors; i++) {
		const struct ab_gguf_tensor *t = &m->g->tensors[i];
		uint64_t ne = 1;
		for (uint32_t d = 0; d < t->n_dims && d < AB_GGUF_MAX_DIMS; d++)
			ne *= (uint64_t)t->ne[d];
		m->n_params += ne;
		/* the layers' matrices: token_embd is often kept at higher precision */
		if (t->n_dims >= 2 && t->type < AB_TYPE__MAX && !strncmp(t->name, "blk.", 4))
			by_type[t->type] += ne;
	}
	uint32_t best = AB_TYPE_F32;
	for (uint32_t t = 0; t < AB_TYPE__MAX; t++)
		if (by_type[t] > by_type[best])
			best = t;
	hp->file_type = best;
	repack_all(m);
	return 0;
}

/* ---- loading ---- */

static bool is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* tokenizer.bin, else the first tok*.bin, in the directory of path. */
static char *find_llama2c_tokenizer(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? ab_xstrndup(path, (size_t)(slash - path) + 1) : ab_xstrdup("");
	char *cand = ab_xasprintf("%stokenizer.bin", dir);
	if (is_file(cand)) {
		free(dir);
		return cand;
	}
	free(cand);
	cand = NULL;
	char *pat = ab_xasprintf("%stok*.bin", dir);
	glob_t gl;
	if (glob(pat, 0, NULL, &gl) == 0) {
		for (size_t i = 0; i < gl.gl_pathc && !cand; i++)
			if (is_file(gl.gl_pathv[i]))
				cand = ab_xstrdup(gl.gl_pathv[i]);
		globfree(&gl);
	}
	free(pat);
	free(dir);
	return cand;
}

/* 1 if path starts with the GGUF magic, 0 if not, -errno if unreadable. */
static int sniff_gguf(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	char magic[4] = {0};
	size_t n = fread(magic, 1, 4, f);
	fclose(f);
	return n == 4 && !memcmp(magic, "GGUF", 4);
}

static int open_llama2c(struct ab_llm_model *m, const char *path,
			const struct ab_llm_load_opts *o, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	/* The conversion holds the checkpoint and its GGUF copy at once. */
	int rc = check_memory(2 * (size_t)st.st_size, o ? o->mem_budget : 0, err, errlen);
	if (rc < 0)
		return rc;
	char *tok = NULL;
	if (o && o->tokenizer_path)
		tok = ab_xstrdup(o->tokenizer_path);
	else
		tok = find_llama2c_tokenizer(path);
	if (!tok)
		return fail(err, errlen, AB_ENOTFOUND,
			    "%s is a llama2.c checkpoint and no tokenizer was found next to it "
			    "(tokenizer.bin or tok*.bin); name one with --tokenizer",
			    path);
	struct ab_gguf_writer *w = NULL;
	rc = ab_llama2c_to_gguf(path, tok, &w, err, errlen);
	free(tok);
	if (rc < 0)
		return rc;
	rc = ab_gguf_write_mem(w, &m->mem, &m->mem_len);
	ab_gguf_writer_free(w);
	if (rc < 0)
		return fail(err, errlen, rc, "converting %s: %s", path, ab_strerror(rc));
	m->from_llama2c = true;
	return ab_gguf_parse(m->mem, m->mem_len, &m->g, err, errlen);
}

int ab_llm_model_load(const char *path, const struct ab_llm_load_opts *o,
		      struct ab_llm_model **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!path)
		return fail(err, errlen, AB_EINVAL, "no model path");
	int gg = sniff_gguf(path);
	if (gg < 0)
		return fail(err, errlen, gg, "%s: %s", path, ab_strerror(gg));
	struct ab_llm_model *m = ab_xcalloc(1, sizeof(*m));
	int rc;
	if (gg) {
		rc = ab_gguf_open(path, &m->g, err, errlen);
	} else {
		const char *dot = strrchr(path, '.');
		if (!dot || strcmp(dot, ".bin")) {
			rc = fail(err, errlen, AB_EINVAL,
				  "%s is neither a GGUF file nor a llama2.c checkpoint (.bin)", path);
		} else {
			rc = open_llama2c(m, path, o, err, errlen);
		}
	}
	if (rc < 0)
		goto out;
	if ((rc = read_hparams(m, path, err, errlen)) < 0 ||
	    (rc = load_tensors(m, err, errlen)) < 0)
		goto out;
	m->weight_bytes = m->from_llama2c ? m->mem_len : m->g->size;

	int n_ctx = o && o->n_ctx > 0 ? o->n_ctx : m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train
									     : 4096;
	size_t need = m->weight_bytes + ab_llm_ctx_bytes(m, n_ctx, N_BATCH);
	/* a tied classifier that was repacked is a second copy: the embedding
	 * rows are still read from the file's */
	if (m->hp.tied_output && m->out.packed)
		need += ab_type_row_bytes(m->out.type, m->out.cols) * (size_t)m->out.rows;
	need += m->out.grown;
	for (int il = 0; il < m->hp.n_layer; il++) {
		const struct layer *L = &m->layers[il];
		need += L->wq.grown + L->wk.grown + L->wv.grown + L->wo.grown + L->wgate.grown + L->wup.grown +
			L->wdown.grown;
	}
	if ((rc = check_memory(need, o ? o->mem_budget : 0, err, errlen)) < 0)
		goto out;

	char terr[256] = "";
	if ((rc = ab_tok_from_gguf(m->g, &m->tok, terr, sizeof(terr))) < 0) {
		fail(err, errlen, rc, "tokenizer: %s", terr);
		goto out;
	}
	if (ab_tok_n_vocab(m->tok) > m->hp.n_vocab) {
		rc = fail(err, errlen, AB_EINVAL,
			  "the vocabulary has %d tokens but token_embd.weight only %d rows",
			  ab_tok_n_vocab(m->tok), m->hp.n_vocab);
		goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	ab_llm_model_free(m);
	return rc;
}

void ab_llm_model_free(struct ab_llm_model *m)
{
	if (!m)
		return;
	if (m->layers) {
		for (int il = 0; il < m->hp.n_layer; il++) {
			struct layer *L = &m->layers[il];
			free(L->attn_norm);
			free(L->ffn_norm);
			free(L->bq);
			free(L->bk);
			free(L->bv);
			free(L->wq.packed);
			free(L->wk.packed);
			free(L->wv.packed);
			free(L->wo.packed);
			free(L->wgate.packed);
			free(L->wup.packed);
			free(L->wdown.packed);
		}
		free(m->layers);
	}
	free(m->out_norm);
	free(m->out.packed);
	ab_tok_free(m->tok);
	ab_gguf_free(m->g);
	free(m->mem);
	free(m);
}

const struct ab_llm_hparams *ab_llm_model_hparams(const struct ab_llm_model *m)
{
	return &m->hp;
}

const struct ab_tok *ab_llm_model_tok(const struct ab_llm_model *m)
{
	return m->tok;
}

const struct ab_gguf *ab_llm_model_gguf(const struct ab_llm_model *m)
{
	return m->from_llama2c ? NULL : m->g;
}

void ab_llm_model_set_kv_f16(struct ab_llm_model *m, bool on)
{
	m->kv_f16 = on;
}

void ab_llm_model_set_fused_attention(struct ab_llm_model *m, bool on)
{
	m->att_plain = !on;
}

bool ab_llm_kv_f16_default(const struct ab_llm_model *m)
{
	return m->hp.file_type != AB_TYPE_F32;
}

size_t ab_llm_model_weight_bytes(const struct ab_llm_model *m)
{
	return m->weight_bytes;
}

static int default_n_ctx(const struct ab_llm_model *m)
{
	return m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
}

static int default_threads(const struct ab_llm_model *m)
{
	if (m->n_params < SMALL_MODEL_PARAMS)
		return 1;
	int n = n_cpus();
	return n < 8 ? n : 8;
}

static size_t scratch_floats(const struct ab_llm_model *m, int n_ctx, int n_batch, int threads)
{
	const struct ab_llm_hparams *hp = &m->hp;
	size_t q_dim = (size_t)hp->n_head * (size_t)m->head_dim;
	size_t kv_dim = (size_t)hp->n_head_kv * (size_t)m->head_dim;
	return (size_t)n_batch * (3 * (size_t)hp->n_embd + 2 * q_dim + 2 * kv_dim + 2 * (size_t)hp->n_ff +
				  (size_t)(hp->n_rot / 2) * 2) +
	       (size_t)threads * SCORE_FLOATS(n_ctx, m->head_dim) + (size_t)hp->n_vocab;
}

size_t ab_llm_ctx_bytes(const struct ab_llm_model *m, int n_ctx, int n_batch)
{
	if (n_ctx <= 0)
		n_ctx = default_n_ctx(m);
	if (n_batch <= 0)
		n_batch = N_BATCH;
	const struct ab_llm_hparams *hp = &m->hp;
	size_t kv_dim = (size_t)hp->n_head_kv * (size_t)m->head_dim;
	size_t kv = 2 * (size_t)hp->n_layer * (size_t)n_ctx * kv_dim;
	return kv * (m->kv_f16 ? sizeof(uint16_t) : sizeof(float)) +
	       scratch_floats(m, n_ctx, n_batch, default_threads(m)) * sizeof(float);
}

/* ---- contexts ---- */

int ab_llm_ctx_new(struct ab_llm_model *m, int n_ctx, int n_threads, struct ab_llm_ctx **out,
		   char *err, size_t errlen)
{
	*out = NULL;
	if (!m)
		return fail(err, errlen, AB_EINVAL, "no model");
	if (n_ctx <= 0)
		n_ctx = default_n_ctx(m);
	if (n_ctx > 1 << 24)
		return fail(err, errlen, AB_ETOOBIG, "context of %d tokens is too large", n_ctx);
	if (n_threads <= 0)
		n_threads = default_threads(m);
	if (n_threads > 256)
		n_threads = 256;
	const struct ab_llm_hparams *hp = &m->hp;
	struct ab_llm_ctx *c = ab_xcalloc(1, sizeof(*c));
	c->m = m;
	c->n_ctx = n_ctx;
	c->n_batch = N_BATCH < n_ctx ? N_BATCH : n_ctx;
	c->n_batch_max = c->n_batch;
	c->kv_dim = hp->n_head_kv * m->head_dim;
	c->q_dim = hp->n_head * m->head_dim;
	size_t kv = (size_t)hp->n_layer * (size_t)n_ctx * (size_t)c->kv_dim;
	c->kv16 = m->kv_f16;
	c->k_cache = ab_xcalloc(kv, c->kv16 ? sizeof(uint16_t) : sizeof(float));
	c->v_cache = ab_xcalloc(kv, c->kv16 ? sizeof(uint16_t) : sizeof(float));
	size_t B = (size_t)c->n_batch;
	c->x = ab_xmalloc(B * (size_t)hp->n_embd * sizeof(float));
	c->xb = ab_xmalloc(B * (size_t)hp->n_embd * sizeof(float));
	c->xb2 = ab_xmalloc(B * (size_t)hp->n_embd * sizeof(float));
	c->q = ab_xmalloc(B * (size_t)c->q_dim * sizeof(float));
	c->kt = ab_xmalloc(B * (size_t)c->kv_dim * sizeof(float));
	c->vt = ab_xmalloc(B * (size_t)c->kv_dim * sizeof(float));
	c->att = ab_xmalloc(B * (size_t)c->q_dim * sizeof(float));
	c->hb = ab_xmalloc(B * (size_t)hp->n_ff * sizeof(float));
	c->hb2 = ab_xmalloc(B * (size_t)hp->n_ff * sizeof(float));
	c->rope_cs = ab_xmalloc(B * (size_t)(hp->n_rot / 2) * 2 * sizeof(float) + sizeof(float));
	c->pool = ab_pool_new(n_threads);
	c->scores = ab_xmalloc((size_t)ab_pool_threads(c->pool) * SCORE_FLOATS(n_ctx, m->head_dim) * sizeof(float));
	c->logits = ab_xmalloc((size_t)hp->n_vocab * sizeof(float));
	*out = c;
	return 0;
}

void ab_llm_ctx_free(struct ab_llm_ctx *c)
{
	if (!c)
		return;
	ab_pool_free(c->pool);
	free(c->k_cache);
	free(c->v_cache);
	free(c->x);
	free(c->xb);
	free(c->xb2);
	free(c->q);
	free(c->kt);
	free(c->vt);
	free(c->att);
	free(c->hb);
	free(c->hb2);
	free(c->rope_cs);
	free(c->scores);
	free(c->logits);
	free(c);
}

int ab_llm_ctx_n_ctx(const struct ab_llm_ctx *c)
{
	return c->n_ctx;
}

int ab_llm_ctx_pos(const struct ab_llm_ctx *c)
{
	return c->pos;
}

void ab_llm_ctx_truncate(struct ab_llm_ctx *c, int pos)
{
	if (pos < 0)
		pos = 0;
	if (pos < c->pos)
		c->pos = pos;
}

void ab_llm_ctx_set_hidden_cb(struct ab_llm_ctx *c, ab_llm_hidden_cb cb, void *ud)
{
	c->cb = cb;
	c->cb_ud = ud;
}

/* ---- the forward pass ---- */

static void matmul(struct ab_llm_ctx *c, const struct mat *w, const float *x, int T, float *y)
{
	ab_matmul(w->w, w->type, w->rows, w->cols, x, T, y, c->pool);
}

/* Products of the same input (the Q, K and V projections; gate and up):
 * the input quantised once and one pool run for all their rows
 * (ab_matmul_n; the same results as one matmul each). */
static void matmul_same_x(struct ab_llm_ctx *c, const float *x, int T, int n, const struct mat *const *w,
			  float *const *y)
{
	struct ab_matmul_op ops[AB_MATMUL_MAX];
	for (int i = 0; i < n; i++)
		ops[i] = (struct ab_matmul_op){.W = w[i]->w, .type = w[i]->type, .R = w[i]->rows, .Y = y[i]};
	ab_matmul_n(ops, n, w[0]->cols, x, T, c->pool);
}

/* The AVX2 forms of attention further on are picked at run time with
 * the matmul kernels (ab_quant_avx2()). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ATT_X86 1
#define ATT_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define ATT_X86 0
#endif

/* out = (x / sqrt(mean(x^2) + eps)) * w for T rows of n. */
static void rmsnorm(float *out, const float *x, const float *w, int T, int n, float eps)
{
	for (int t = 0; t < T; t++)
		ab_rowops_rmsnorm(out + (size_t)t * n, x + (size_t)t * n, w, n, eps);
}

/* The rotation angles' cosines and sines for T positions from pos0
 * (row t: n_rot / 2 pairs), made once a chunk and shared by every layer's
 * queries and keys: the same floats each time, as the angle for a
 * position and pair is always computed the same way. */
static void rope_table(const struct ab_llm_model *m, float *cs, int T, int pos0)
{
	const struct ab_llm_hparams *hp = &m->hp;
	int half = hp->n_rot / 2;
	float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
	for (int t = 0; t < T; t++) {
		float theta = (float)(pos0 + t);
		float *r = cs + (size_t)t * (size_t)half * 2;
		for (int i = 0; i < half; i++) {
			float a = hp->rope_freq_scale * theta;
			r[2 * i] = cosf(a);
			r[2 * i + 1] = sinf(a);
			theta *= theta_scale;
		}
	}
}

/* Rotates the first n_rot dimensions of each of n_heads heads of every
 * row (T rows of stride floats; row t takes row t of the table cs). */
static void rope(const struct ab_llm_model *m, float *x, int T, int stride, int n_heads, const float *cs)
{
	int hd = m->head_dim, half = m->hp.n_rot / 2;
	for (int t = 0; t < T; t++)
		for (int h = 0; h < n_heads; h++)
			ab_rowops_rope(x + (size_t)t * stride + (size_t)h * hd, cs + (size_t)t * (size_t)half * 2,
				       half, m->neox);
}

/* Attention's inner loops: q.k over a head and o += w * v. The AVX2 forms
 * (chosen with the matmul kernels: ab_quant_avx2()) sum the
 * dot product in eight FMA lanes; the scalar ones in order. */
#if ATT_X86

ATT_AVX2 static float att_dot_avx2(const float *a, const float *b, int n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	__m256 v = _mm256_add_ps(s0, s1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	float d = _mm_cvtss_f32(h);
	for (; i < n; i++)
		d += a[i] * b[i];
	return d;
}

ATT_AVX2 static void att_axpy_avx2(float *o, float w, const float *v, int n)
{
	__m256 wv = _mm256_set1_ps(w);
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(o + i, _mm256_add_ps(_mm256_loadu_ps(o + i), _mm256_mul_ps(wv, _mm256_loadu_ps(v + i))));
	for (; i < n; i++)
		o[i] += w * v[i];
}
/* e^x for eight floats: x = n ln2 + r with |r| <= ln2/2 (ln2 in two
 * parts), e^r by a degree-7 polynomial in Horner form (the classic
 * single-precision minimax coefficients), times 2^n built in the exponent
 * bits. x is clamped to [-87.3, 88.7] so 2^n stays a normal float; about
 * one ulp from libm's expf. */
ATT_AVX2 static inline __m256 exp8(__m256 x)
{
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* s[p] = e^(s[p] - mx) for p < n, eight at a time (exp8); returns 1 / the
 * sum, accumulated in double (four lanes, then added in order) */
ATT_AVX2 static float softmax_avx2(float *s, int n, float mx)
{
	__m256 m = _mm256_set1_ps(mx);
	__m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
	int p = 0;
	for (; p + 8 <= n; p += 8) {
		__m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + p), m));
		_mm256_storeu_ps(s + p, e);
		a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
	}
	double l[4];
	_mm256_storeu_pd(l, _mm256_add_pd(a0, a1));
	double sum = (l[0] + l[1]) + (l[2] + l[3]);
	for (; p < n; p++) {
		s[p] = expf(s[p] - mx);
		sum += s[p];
	}
	return (float)(1.0 / sum);
}

/* One (token, head) attention item for a fixed head size HD (a multiple
 * of 16): the same operations in the same order as att_dot_avx2 and
 * att_axpy_avx2 called key by key (so the same bits), but inlined, with
 * the output held in registers across the keys and the next keys
 * prefetched (consecutive positions are contiguous in the cache). */
#define ATT_AINL __attribute__((always_inline)) inline
/* The loops over a head's eight-float pieces unrolled, so that the query
 * and the output stay in registers (-O2 keeps a rolled loop's arrays in
 * memory: a load and a store per piece and key) */
#define ATT_UNROLL _Pragma("GCC unroll 16")

/* q.k for a query held in registers: att_dot_avx2's sums (two chains of
 * eight lanes, then the same horizontal reduction) */
/* eight keys' or values' elements i..i+7 of a cache row, as float (the F16
 * cache converted by F16C: exact) */
ATT_AVX2 static ATT_AINL __m256 kv8(const void *row, int i, const bool KV16)
{
	if (KV16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)row + i)));
	return _mm256_loadu_ps((const float *)row + i);
}

/* row p of a head's cache */
static ATT_AINL const void *kv_row(const void *base, int p, int HD, const bool KV16)
{
	return (const char *)base + (size_t)p * (size_t)HD * (KV16 ? 2 : 4);
}

/* the eight lanes of q.k before the horizontal sum: two FMA chains */
ATT_AVX2 static ATT_AINL __m256 att_qk_lanes(const __m256 *qv, const void *k, const int HD, const bool KV16)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	ATT_UNROLL
	for (int i = 0; i + 2 <= HD / 8; i += 2) {
		s0 = _mm256_fmadd_ps(qv[i], kv8(k, 8 * i, KV16), s0);
		s1 = _mm256_fmadd_ps(qv[i + 1], kv8(k, 8 * i + 8, KV16), s1);
	}
	if (HD / 8 % 2)
		s0 = _mm256_fmadd_ps(qv[HD / 8 - 1], kv8(k, HD - 8, KV16), s0);
	return _mm256_add_ps(s0, s1);
}

ATT_AVX2 static ATT_AINL float att_qk(const __m256 *qv, const void *k, const int HD, const bool KV16)
{
	__m256 v = att_qk_lanes(qv, k, HD, KV16);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}
/* the largest of eight lanes (none NaN: vmaxps keeps its second operand
 * when the first is NaN, and the running maxima start at -inf) */
ATT_AVX2 static ATT_AINL float max8(__m256 v)
{
	float l[8];
	_mm256_storeu_ps(l, v);
	float m = l[0];
	for (int i = 1; i < 8; i++)
		if (l[i] > m)
			m = l[i];
	return m;
}

/* The scores q.k of eight consecutive keys (rows k0 .. k0 + 7), each the
 * exact float operations of att_qk: the two FMA chains per key, then its
 * horizontal reduction done for the eight keys at once by shuffles that
 * pair the same lanes (lane i with i + 4, then 0 with 2 and 1 with 3,
 * then 0 with 1), so no key pays a whole reduction of its own; the same
 * bits as eight att_qk calls, in key order. */
ATT_AVX2 static ATT_AINL __m256 att_qk8(const __m256 *qv, const void *k0, const int HD, const bool KV16)
{
	__m256 v[8];
	ATT_UNROLL
	for (int j = 0; j < 8; j++)
		v[j] = att_qk_lanes(qv, kv_row(k0, j, HD, KV16), HD, KV16);
	__m256 w[4];
	ATT_UNROLL
	for (int m = 0; m < 4; m++) /* keys 2m | 2m + 1: lanes i + (i + 4) */
		w[m] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * m], v[2 * m + 1], 0x20),
				     _mm256_permute2f128_ps(v[2 * m], v[2 * m + 1], 0x31));
	/* keys 0, 2 | 1, 3 (and 4, 6 | 5, 7): lanes 0 + 2, 1 + 3 */
	__m256 u0 = _mm256_add_ps(_mm256_shuffle_ps(w[0], w[1], 0x44), _mm256_shuffle_ps(w[0], w[1], 0xee));
	__m256 u1 = _mm256_add_ps(_mm256_shuffle_ps(w[2], w[3], 0x44), _mm256_shuffle_ps(w[2], w[3], 0xee));
	/* keys 0, 2, 4, 6 | 1, 3, 5, 7: lane 0 + 1 */
	__m256 r = _mm256_add_ps(_mm256_shuffle_ps(u0, u1, 0x88), _mm256_shuffle_ps(u0, u1, 0xdd));
	return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

ATT_AVX2 static ATT_AINL void att_head(const float *q, const void *K, const void *V, int n_keys, float scale,
				       float *s, float *o, const int HD, const bool KV16)
{
	__m256 qv[16], ov[16];
	ATT_UNROLL
	for (int i = 0; i < HD / 8; i++)
		qv[i] = _mm256_loadu_ps(q + 8 * i);
	int p = 0;
	__m256 mxv = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(scale);
	for (; p + 8 <= n_keys; p += 8) {
		const void *k = kv_row(K, p, HD, KV16);
		for (int j = 8; j < 16; j++)
			_mm_prefetch((const char *)kv_row(k, j, HD, KV16), _MM_HINT_T0);
		__m256 sv = _mm256_mul_ps(att_qk8(qv, k, HD, KV16), sc);
		_mm256_storeu_ps(s + p, sv);
		mxv = _mm256_max_ps(sv, mxv); /* a NaN score never wins, as below */
	}
	float mx = max8(mxv);
	for (; p < n_keys; p++) {
		s[p] = att_qk(qv, kv_row(K, p, HD, KV16), HD, KV16) * scale;
		if (s[p] > mx)
			mx = s[p];
	}
	float inv = softmax_avx2(s, n_keys, mx);
	ATT_UNROLL
	for (int i = 0; i < HD / 8; i++)
		ov[i] = _mm256_setzero_ps();
	for (p = 0; p < n_keys; p++) {
		const void *v = kv_row(V, p, HD, KV16);
		_mm_prefetch((const char *)kv_row(v, 8, HD, KV16), _MM_HINT_T0);
		__m256 wv = _mm256_set1_ps(s[p] * inv);
		ATT_UNROLL
		for (int i = 0; i < HD / 8; i++)
			ov[i] = _mm256_add_ps(ov[i], _mm256_mul_ps(wv, kv8(v, 8 * i, KV16)));
	}
	ATT_UNROLL
	for (int i = 0; i < HD / 8; i++)
		_mm256_storeu_ps(o + 8 * i, ov[i]);
}

/* att_head and att_group instantiated for the head sizes that have
 * them: multiples of 8 up to 128 (q and the output in registers) */
#define ATT_SIZES(X) X(8) X(16) X(24) X(32) X(48) X(64) X(80) X(96) X(128)
#define ATT_HEAD_FN(HD)                                                                        \
	ATT_AVX2 static void att_head_##HD(const float *q, const void *K, const void *V, int n_keys,  \
					  float scale, float *s, float *o)                     \
	{                                                                                      \
		att_head(q, K, V, n_keys, scale, s, o, HD, false);                             \
	}                                                                                      \
	ATT_AVX2 static void att_head_##HD##_h(const float *q, const void *K, const void *V, int n_keys, \
					      float scale, float *s, float *o)                 \
	{                                                                                      \
		att_head(q, K, V, n_keys, scale, s, o, HD, true);                              \
	}
ATT_SIZES(ATT_HEAD_FN)

/* Prompt attention: G <= ATT_G queries of one head (query i at q +
 * i * qs, n_keys nk0 + i, scores at s + i * ss, output at o + i * qs).
 * att_head per query would stream the head's keys and values from L2
 * once per query; here they are taken in blocks of 16 KiB that stay in
 * L1 while every query of the group uses them (an F16 block converted to
 * float once for the group, not once per query). For each query the
 * operations and their order are att_head's (scores in key order, the
 * same softmax, the output summed in key order, held in registers within
 * a block and in memory between blocks), so the bits are the same. */
/* rows p0 .. p0 + n - 1 of a head's cache as float32: in place, or (F16
 * cache) converted into buf, once for the whole query group (F16C's
 * conversion is exact, so the products that follow are unchanged) */
ATT_AVX2 static ATT_AINL const float *kv_block(const void *base, int p0, int n, float *buf, const int HD,
					     const bool KV16)
{
	if (!KV16)
		return (const float *)base + (size_t)p0 * HD;
	const uint16_t *h = (const uint16_t *)base + (size_t)p0 * HD;
	for (size_t i = 0; i < (size_t)n * HD; i += 8)
		_mm256_store_ps(buf + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + i))));
	return buf;
}

ATT_AVX2 static ATT_AINL void att_group(const float *q, size_t qs, int G, int nk0, const void *K, const void *V,
					float scale, float *s, size_t ss, float *o, const int HD, const bool KV16)
{
	const int KB = 4096 / HD; /* keys a block */
	_Alignas(32) float buf[4096];
	int nk_max = nk0 + G - 1;
	float mx[ATT_G], inv[ATT_G];
	for (int i = 0; i < G; i++)
		mx[i] = -INFINITY;
	for (int p0 = 0; p0 < nk_max; p0 += KB) {
		const float *kb = kv_block(K, p0, p0 + KB < nk_max ? KB : nk_max - p0, buf, HD, KV16);
		for (int i = 0; i < G; i++) {
			int pe = p0 + KB < nk0 + i ? p0 + KB : nk0 + i;
			const float *qi = q + (size_t)i * qs;
			float *si = s + (size_t)i * ss;
			__m256 qv[16];
			ATT_UNROLL
			for (int d = 0; d < HD / 8; d++)
				qv[d] = _mm256_loadu_ps(qi + 8 * d);
			int p = p0;
			if (p + 8 <= pe) {
				__m256 mxv = _mm256_set1_ps(mx[i]), sc = _mm256_set1_ps(scale);
				for (; p + 8 <= pe; p += 8) {
					__m256 sv = _mm256_mul_ps(att_qk8(qv, kv_row(kb, p - p0, HD, false), HD, false), sc);
					_mm256_storeu_ps(si + p, sv);
					mxv = _mm256_max_ps(sv, mxv);
				}
				mx[i] = max8(mxv);
			}
			for (; p < pe; p++) {
				si[p] = att_qk(qv, kv_row(kb, p - p0, HD, false), HD, false) * scale;
				if (si[p] > mx[i])
					mx[i] = si[p];
			}
		}
	}
	for (int i = 0; i < G; i++)
		inv[i] = softmax_avx2(s + (size_t)i * ss, nk0 + i, mx[i]);
	for (int i = 0; i < G; i++)
		ATT_UNROLL
		for (int d = 0; d < HD / 8; d++)
			_mm256_storeu_ps(o + (size_t)i * qs + 8 * d, _mm256_setzero_ps());
	for (int p0 = 0; p0 < nk_max; p0 += KB) {
		const float *vb = kv_block(V, p0, p0 + KB < nk_max ? KB : nk_max - p0, buf, HD, KV16);
		for (int i = 0; i < G; i++) {
			int pe = p0 + KB < nk0 + i ? p0 + KB : nk0 + i;
			float *oi = o + (size_t)i * qs;
			const float *si = s + (size_t)i * ss;
			__m256 ov[16];
			ATT_UNROLL
			for (int d = 0; d < HD / 8; d++)
				ov[d] = _mm256_loadu_ps(oi + 8 * d);
			for (int p = p0; p < pe; p++) {
				const float *v = vb + (size_t)(p - p0) * HD;
				__m256 wv = _mm256_set1_ps(si[p] * inv[i]);
				ATT_UNROLL
				for (int d = 0; d < HD / 8; d++)
					ov[d] = _mm256_add_ps(ov[d], _mm256_mul_ps(wv, _mm256_loadu_ps(v + 8 * d)));
			}
			ATT_UNROLL
			for (int d = 0; d < HD / 8; d++)
				_mm256_storeu_ps(oi + 8 * d, ov[d]);
		}
	}
}

#define ATT_GROUP_FN(HD)                                                                       \
	ATT_AVX2 static void att_group_##HD(const float *q, size_t qs, int G, int nk0, const void *K,   \
					   const void *V, float scale, float *s, size_t ss, float *o) \
	{                                                                                      \
		att_group(q, qs, G, nk0, K, V, scale, s, ss, o, HD, false);                    \
	}                                                                                      \
	ATT_AVX2 static void att_group_##HD##_h(const float *q, size_t qs, int G, int nk0, const void *K, \
					       const void *V, float scale, float *s, size_t ss, float *o) \
	{                                                                                      \
		att_group(q, qs, G, nk0, K, V, scale, s, ss, o, HD, true);                     \
	}
ATT_SIZES(ATT_GROUP_FN)

typedef void (*att_head_fn)(const float *, const void *, const void *, int, float, float *, float *);
typedef void (*att_group_fn)(const float *, size_t, int, int, const void *, const void *, float, float *, size_t,
			     float *);

/* g[i] = silu(g[i]) * u[i] = g / (1 + e^-g) * u */
ATT_AVX2 static void swiglu_avx2(float *g, const float *u, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 sx = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f),
							    exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
		_mm256_storeu_ps(g + i, _mm256_mul_ps(sx, _mm256_loadu_ps(u + i)));
	}
	for (; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* the kernels for head size hd and the cache's type, or false */
static bool att_fns(int hd, bool kv16, att_head_fn *fh, att_group_fn *fg)
{
	switch (hd) {
#define ATT_CASE(HD)                                                                           \
	case HD:                                                                               \
		*fh = kv16 ? att_head_##HD##_h : att_head_##HD;                                \
		*fg = kv16 ? att_group_##HD##_h : att_group_##HD;                              \
		return true;
		ATT_SIZES(ATT_CASE)
#undef ATT_CASE
	default:
		return false;
	}
}
#endif

static float att_dot(const float *a, const float *b, int n, bool simd)
{
#if ATT_X86
	if (simd)
		return att_dot_avx2(a, b, n);
#endif
	(void)simd;
	float d = 0;
	for (int i = 0; i < n; i++)
		d += a[i] * b[i];
	return d;
}

static void att_axpy(float *o, float w, const float *v, int n, bool simd)
{
#if ATT_X86
	if (simd) {
		att_axpy_avx2(o, w, v, n);
		return;
	}
#endif
	(void)simd;
	for (int i = 0; i < n; i++)
		o[i] += w * v[i];
}

struct attn_job {
	struct ab_llm_ctx *c;
	int layer, T, pos0;
	atomic_int next; /* the next item: taken one at a time, so a thread
			  * that gets less CPU (a shared machine) takes fewer */
};

/* the cache element at index off */
static const void *kv_at(const struct ab_llm_ctx *c, const void *cache, size_t off)
{
	return (const char *)cache + off * (c->kv16 ? sizeof(uint16_t) : sizeof(float));
}

/* row p of a head's cache as float: in place, or converted into tmp */
static const float *kv_float(const struct ab_llm_ctx *c, const void *head, int p, float *tmp)
{
	int hd = c->m->head_dim;
	if (!c->kv16)
		return (const float *)head + (size_t)p * hd;
	const uint16_t *r = (const uint16_t *)head + (size_t)p * hd;
	for (int i = 0; i < hd; i++)
		tmp[i] = ab_f16_to_f32(r[i]);
	return tmp;
}

static void attn_worker(void *ud, int ith, int nth)
{
	struct attn_job *j = ud;
	(void)nth;
	struct ab_llm_ctx *c = j->c;
	const struct ab_llm_model *m = c->m;
	int hd = m->head_dim, n_head = m->hp.n_head;
	int group = n_head / m->hp.n_head_kv;
	float scale = 1.0f / sqrtf((float)hd);
	size_t layer_off = (size_t)j->layer * (size_t)c->n_ctx * (size_t)c->kv_dim;
	float *s = c->scores + (size_t)ith * SCORE_FLOATS(c->n_ctx, hd);
	int items = j->T * n_head;
	bool simd = ab_quant_avx2();
#if ATT_X86
	att_head_fn fh = NULL;
	att_group_fn fg = NULL;
	bool fast = simd && !m->att_plain && att_fns(hd, c->kv16, &fh, &fg);
	if (fast && j->T > 1) {
		/* prompts: (head, ATT_G consecutive tokens) items, the last
		 * tokens' (the most keys) handed out first */
		int ng = (j->T + ATT_G - 1) / ATT_G, n = ng * n_head;
		for (int k; (k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n;) {
			int it = n - 1 - k;
			int h = it % n_head, t0 = it / n_head * ATT_G;
			int G = j->T - t0 < ATT_G ? j->T - t0 : ATT_G;
			size_t head_off = layer_off + (size_t)(h / group) * (size_t)c->n_ctx * (size_t)hd;
			size_t qoff = (size_t)t0 * c->q_dim + (size_t)h * hd;
			fg(c->q + qoff, (size_t)c->q_dim, G, j->pos0 + t0 + 1, kv_at(c, c->k_cache, head_off),
			   kv_at(c, c->v_cache, head_off), scale, s, (size_t)c->n_ctx, c->att + qoff);
		}
		return;
	}
#endif
	for (int k; (k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < items;) {
		int it = items - 1 - k;
		int t = it / n_head, h = it % n_head;
		int kvh = h / group;
		int n_keys = j->pos0 + t + 1; /* causal: positions 0..pos */
		size_t head_off = layer_off + (size_t)kvh * (size_t)c->n_ctx * (size_t)hd;
		const void *K = kv_at(c, c->k_cache, head_off), *V = kv_at(c, c->v_cache, head_off);
		const float *q = c->q + (size_t)t * c->q_dim + (size_t)h * hd;
		float *o = c->att + (size_t)t * c->q_dim + (size_t)h * hd;
#if ATT_X86
		if (fast) {
			fh(q, K, V, n_keys, scale, s, o);
			continue;
		}
#endif
		/* any head size, or no AVX2: a row at a time (F16 rows
		 * converted into the scratch after the scores) */
		float *krow = s + ATT_G * (size_t)c->n_ctx, *vrow = krow + hd;
		float mx = -INFINITY;
		for (int p = 0; p < n_keys; p++) {
			s[p] = att_dot(q, kv_float(c, K, p, krow), hd, simd) * scale;
			if (s[p] > mx)
				mx = s[p];
		}
		float inv;
#if ATT_X86
		if (simd) {
			inv = softmax_avx2(s, n_keys, mx); /* the fused kernels' softmax */
		} else
#endif
		{
			double sum = 0;
			for (int p = 0; p < n_keys; p++) {
				s[p] = expf(s[p] - mx);
				sum += s[p];
			}
			inv = (float)(1.0 / sum);
		}
		for (int i = 0; i < hd; i++)
			o[i] = 0;
		for (int p = 0; p < n_keys; p++)
			att_axpy(o, s[p] * inv, kv_float(c, V, p, vrow), hd, simd);
	}
}

/* Hands a hidden state to the test hook as "<what>-<il>" (il < 0: "<what>"). */
static void report(struct ab_llm_ctx *c, const char *what, int il, const float *d, int T)
{
	if (!c->cb)
		return;
	char name[64];
	if (il >= 0)
		snprintf(name, sizeof(name), "%s-%d", what, il);
	else
		ab_strlcpy(name, what, sizeof(name));
	c->cb(c->cb_ud, name, d, T, c->m->hp.n_embd);
}

static void add_bias(float *y, const float *b, int T, int n)
{
	if (!b)
		return;
	for (int t = 0; t < T; t++)
		for (int i = 0; i < n; i++)
			y[(size_t)t * n + i] += b[i];
}

static float silu(float x)
{
	return x / (1.0f + expf(-x));
}

/* The feed-forward gate, g = silu(g) * u over n values, split across the
 * pool in contiguous ranges (it is T x n_ff exponentials: at prompt sizes
 * as long as a small matrix product). */
struct swiglu_job {
	float *g;
	const float *u;
	size_t n;
	bool simd;
};

static void swiglu_task(void *ud, int ith, int nth)
{
	const struct swiglu_job *j = ud;
	size_t a = j->n * (size_t)ith / (size_t)nth, b = j->n * (size_t)(ith + 1) / (size_t)nth;
#if ATT_X86
	if (j->simd) {
		swiglu_avx2(j->g + a, j->u + a, b - a);
		return;
	}
#endif
	for (size_t i = a; i < b; i++)
		j->g[i] = silu(j->g[i]) * j->u[i];
}

static void swiglu(struct ab_llm_ctx *c, float *g, const float *u, size_t n)
{
	struct swiglu_job j = {.g = g, .u = u, .n = n, .simd = ab_quant_avx2()};
	if (n >= 16384 && ab_pool_threads(c->pool) > 1)
		ab_pool_run(c->pool, swiglu_task, &j);
	else
		swiglu_task(&j, 0, 1);
}

/* The chunk's keys and values (c->kt, c->vt, token-major) into the
 * layer's head-major cache at positions pos0..pos0+T-1. */
static void store_kv(struct ab_llm_ctx *c, int il, int pos0, int t0, int t1)
{
	int hd = c->m->head_dim, nkv = c->m->hp.n_head_kv;
	size_t layer_off = (size_t)il * (size_t)c->n_ctx * (size_t)c->kv_dim;
	for (int h = 0; h < nkv; h++) {
		size_t off = layer_off + ((size_t)h * (size_t)c->n_ctx + (size_t)pos0) * (size_t)hd;
		for (int t = t0; t < t1; t++) {
			size_t src = (size_t)t * (size_t)c->kv_dim + (size_t)h * (size_t)hd;
			size_t dst = off + (size_t)t * hd;
			if (c->kv16) {
				ab_f32_to_f16_row(c->kt + src, (uint16_t *)c->k_cache + dst, hd);
				ab_f32_to_f16_row(c->vt + src, (uint16_t *)c->v_cache + dst, hd);
			} else {
				memcpy((float *)c->k_cache + dst, c->kt + src, (size_t)hd * sizeof(float));
				memcpy((float *)c->v_cache + dst, c->vt + src, (size_t)hd * sizeof(float));
			}
		}
	}
}

/* The per-token steps between the matrix products (residual adds, RMSNorm,
 * RoPE and the KV stores) are independent across a chunk's rows, so a
 * prompt splits them over the pool by rows (same operations per row:
 * the same bits); one token, or one thread, runs them in place. */
enum rows_op { ROWS_ADD, ROWS_NORM, ROWS_ROPE_KV };

struct rows_job {
	struct ab_llm_ctx *c;
	enum rows_op op;
	int T, il, pos0;
	const float *w; /* ROWS_NORM: the norm's weights */
};

static void rows_range(const struct rows_job *j, int t0, int t1)
{
	struct ab_llm_ctx *c = j->c;
	const struct ab_llm_model *m = c->m;
	size_t E = (size_t)m->hp.n_embd;
	switch (j->op) {
	case ROWS_ADD:
		ab_rowops_add(c->x + (size_t)t0 * E, c->xb2 + (size_t)t0 * E, (size_t)(t1 - t0) * E);
		break;
	case ROWS_NORM:
		rmsnorm(c->xb + (size_t)t0 * E, c->x + (size_t)t0 * E, j->w, t1 - t0, (int)E, m->hp.rms_eps);
		break;
	case ROWS_ROPE_KV: {
		const float *cs = c->rope_cs + (size_t)t0 * (size_t)(m->hp.n_rot / 2) * 2;
		rope(m, c->q + (size_t)t0 * c->q_dim, t1 - t0, c->q_dim, m->hp.n_head, cs);
		rope(m, c->kt + (size_t)t0 * c->kv_dim, t1 - t0, c->kv_dim, m->hp.n_head_kv, cs);
		store_kv(c, j->il, j->pos0, t0, t1);
		break;
	}
	}
}

static void rows_task(void *ud, int ith, int nth)
{
	const struct rows_job *j = ud;
	int t0 = (int)((int64_t)j->T * ith / nth), t1 = (int)((int64_t)j->T * (ith + 1) / nth);
	if (t0 < t1)
		rows_range(j, t0, t1);
}

static void rows_run(struct ab_llm_ctx *c, enum rows_op op, int T, int il, int pos0, const float *w)
{
	struct rows_job j = {.c = c, .op = op, .T = T, .il = il, .pos0 = pos0, .w = w};
	if (T >= 8 && ab_pool_threads(c->pool) > 1)
		ab_pool_run(c->pool, rows_task, &j);
	else
		rows_range(&j, 0, T);
}

/* One chunk of T <= n_batch tokens at positions c->pos...; all (T rows of
 * n_vocab) may be NULL; last gets the last row's logits. */
static void eval_chunk(struct ab_llm_ctx *c, const int32_t *tokens, int T, float *last,
		       float *all)
{
	const struct ab_llm_model *m = c->m;
	const struct ab_llm_hparams *hp = &m->hp;
	int E = hp->n_embd, F = hp->n_ff, pos0 = c->pos;
	size_t embd_row = ab_type_row_bytes(m->embd.type, E);
	for (int t = 0; t < T; t++)
		ab_dequantize(m->embd.type, (const uint8_t *)m->embd.w + (size_t)tokens[t] * embd_row,
			      c->x + (size_t)t * E, E);
	rope_table(m, c->rope_cs, T, pos0);

	for (int il = 0; il < hp->n_layer; il++) {
		const struct layer *L = &m->layers[il];
		float *kc = c->kt, *vc = c->vt;

		rows_run(c, ROWS_NORM, T, il, pos0, L->attn_norm);
		report(c, "attn_norm", il, c->xb, T);
		matmul_same_x(c, c->xb, T, 3, (const struct mat *const[]){&L->wq, &L->wk, &L->wv},
			      (float *const[]){c->q, kc, vc});
		add_bias(c->q, L->bq, T, c->q_dim);
		add_bias(kc, L->bk, T, c->kv_dim);
		add_bias(vc, L->bv, T, c->kv_dim);
		rows_run(c, ROWS_ROPE_KV, T, il, pos0, NULL);

		struct attn_job job = {.c = c, .layer = il, .T = T, .pos0 = pos0};
		atomic_init(&job.next, 0);
		ab_pool_run(c->pool, attn_worker, &job);
		matmul(c, &L->wo, c->att, T, c->xb2);
		report(c, "kqv_out", il, c->xb2, T);
		rows_run(c, ROWS_ADD, T, il, pos0, NULL);
		report(c, "ffn_inp", il, c->x, T);

		rows_run(c, ROWS_NORM, T, il, pos0, L->ffn_norm);
		report(c, "ffn_norm", il, c->xb, T);
		matmul_same_x(c, c->xb, T, 2, (const struct mat *const[]){&L->wgate, &L->wup},
			      (float *const[]){c->hb, c->hb2});
		swiglu(c, c->hb, c->hb2, (size_t)T * F);
		matmul(c, &L->wdown, c->hb, T, c->xb2);
		rows_run(c, ROWS_ADD, T, il, pos0, NULL);
		report(c, "l_out", il, c->x, T);
	}

	/* The classifier: for every row when asked, else only the last. */
	int first = all ? 0 : T - 1, rows = T - first;
	rmsnorm(c->xb, c->x + (size_t)first * E, m->out_norm, rows, E, hp->rms_eps);
	report(c, "result_norm", -1, c->xb, rows);
	size_t V = (size_t)hp->n_vocab;
	if (all) {
		matmul(c, &m->out, c->xb, rows, all);
		memcpy(last, all + (size_t)(T - 1) * V, V * sizeof(float));
	} else {
		matmul(c, &m->out, c->xb, 1, last);
	}
	c->pos += T;
}

int ab_llm_ctx_set_n_batch(struct ab_llm_ctx *c, int n)
{
	if (!c || n < 1 || n > c->n_batch_max)
		return AB_EINVAL;
	c->n_batch = n;
	return 0;
}

int ab_llm_eval(struct ab_llm_ctx *c, const int32_t *tokens, int n, float *logits,
		float *all_logits)
{
	if (!c || !tokens || n <= 0)
		return AB_EINVAL;
	if (n > c->n_ctx - c->pos)
		return AB_ETOOBIG;
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab)
			return AB_EINVAL;
	float *last = logits ? logits : c->logits;
	size_t V = (size_t)c->m->hp.n_vocab;
	for (int done = 0; done < n;) {
		int T = n - done < c->n_batch ? n - done : c->n_batch;
		eval_chunk(c, tokens + done, T, last, all_logits ? all_logits + (size_t)done * V : NULL);
		done += T;
	}
	return 0;
}
