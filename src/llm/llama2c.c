/*
 * llama2c.c - llama2.c checkpoints (model .bin + tokenizer.bin) to GGUF.
 *
 * The checkpoint header is seven int32: dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size (negative: a separate classifier
 * follows the other weights) and seq_len. Then float32 arrays, each with
 * the layers stacked: token embedding [vocab][dim], rms_att [L][dim], wq
 * [L][dim][dim], wk and wv [L][kv_dim][dim], wo [L][dim][dim], rms_ffn
 * [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim],
 * rms_final [dim], the precomputed RoPE table (seq_len * head_size/2 real
 * parts, as many imaginary ones: skipped, the engine computes its own),
 * and wcls [vocab][dim] when vocab_size was negative. The file size must
 * equal what the header implies, byte for byte: that is the only check a
 * headerless format allows, so it is strict.
 *
 * A [rows][cols] row-major matrix is a GGUF tensor with ne = {cols, rows}.
 * llama2.c rotates interleaved pairs (2i, 2i+1) inside each head, which is
 * GGUF llama's normal RoPE, so wq and wk are copied unpermuted. Names
 * follow llama.cpp (token_embd, blk.N.attn_q, ffn_gate = w1, ffn_down =
 * w2, ffn_up = w3, ...). With shared classifier weights no output.weight
 * is written: the model ties the classifier to token_embd (llama.cpp's own
 * converter writes a copy instead; the values are identical).
 *
 * tokenizer.bin is int32 max_token_length, then per token float32 score,
 * int32 length and the bytes. llama2.c stores the SentencePiece word
 * marker as a plain space and BOS/EOS as "\n<s>\n" / "\n</s>\n"; GGUF
 * vocabularies use U+2581 and "<s>" / "</s>", so the texts are mapped
 * back (this gives exactly the vocabulary llama.cpp's converter writes).
 */
#include "llama2c.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DIM (1 << 20)
#define MAX_VOCAB (1 << 24)

struct mapped {
	const uint8_t *p;
	size_t size;
};

static int map_file(const char *path, struct mapped *m, char *err, size_t errlen)
{
	m->p = NULL;
	m->size = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		close(fd);
		snprintf(err, errlen, "%s: empty or not a regular file", path);
		return AB_EPROTO;
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(e));
		return -e;
	}
	m->p = p;
	m->size = (size_t)st.st_size;
	return 0;
}

static void unmap_file(struct mapped *m)
{
	if (m->p)
		munmap((void *)m->p, m->size);
	m->p = NULL;
}

struct hparams {
	int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
	bool shared;
	int64_t kv_dim, head_size;
};

static int in_range(int32_t v, int32_t max)
{
	return v >= 1 && v <= max;
}

/* Checks the header and that the file holds exactly the weights it implies. */
static int parse_header(const struct mapped *m, const char *path, struct hparams *h, char *err,
			size_t errlen)
{
	int32_t hd[7];
	if (m->size < sizeof(hd)) {
		snprintf(err, errlen, "%s: %zu bytes, shorter than the 28-byte llama2.c header", path,
			 m->size);
		return AB_EPROTO;
	}
	memcpy(hd, m->p, sizeof(hd));
	h->dim = hd[0];
	h->hidden = hd[1];
	h->n_layers = hd[2];
	h->n_heads = hd[3];
	h->n_kv_heads = hd[4];
	h->shared = hd[5] > 0;
	h->vocab = hd[5] == INT32_MIN ? 0 : (hd[5] < 0 ? -hd[5] : hd[5]);
	h->seq_len = hd[6];
	if (!in_range(h->dim, MAX_DIM) || !in_range(h->hidden, MAX_DIM) ||
	    !in_range(h->n_layers, 4096) || !in_range(h->n_heads, 4096) ||
	    !in_range(h->n_kv_heads, h->n_heads) || !in_range(h->vocab, MAX_VOCAB) ||
	    !in_range(h->seq_len, MAX_DIM) || h->dim % h->n_heads != 0 ||
	    h->n_heads % h->n_kv_heads != 0) {
		snprintf(err, errlen,
			 "%s: not a llama2.c checkpoint (header dim %d, hidden_dim %d, n_layers %d, "
			 "n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d)",
			 path, hd[0], hd[1], hd[2], hd[3], hd[4], hd[5], hd[6]);
		return AB_EPROTO;
	}
	h->head_size = h->dim / h->n_heads;
	h->kv_dim = (int64_t)h->dim * h->n_kv_heads / h->n_heads;
	/* all factors are below 2^24, so these int64 products cannot overflow */
	int64_t D = h->dim, F = h->hidden, L = h->n_layers, V = h->vocab, KV = h->kv_dim;
	int64_t floats = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D +
			 3 * L * F * D + D + (int64_t)h->seq_len * (h->head_size / 2) * 2 +
			 (h->shared ? 0 : V * D);
	int64_t want = 28 + floats * 4;
	if ((uint64_t)want != m->size) {
		snprintf(err, errlen,
			 "%s: %zu bytes, but a llama2.c checkpoint with this header (dim %d, "
			 "hidden %d, %d layers, %d/%d heads, vocab %d%s, seq_len %d) has %lld",
			 path, m->size, h->dim, h->hidden, h->n_layers, h->n_heads, h->n_kv_heads,
			 h->vocab, h->shared ? " shared" : " separate classifier", h->seq_len,
			 (long long)want);
		return AB_EPROTO;
	}
	return 0;
}

static bool is_byte_token(const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEFabcdef";
	return n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && s[3] && s[4] &&
	       strchr(hex, s[3]) && strchr(hex, s[4]);
}

/* Text of a llama2.c token in GGUF form (see the top of the file). */
static char *gguf_text(const uint8_t *s, size_t n, size_t *out_n)
{
	size_t a = 0, b = n;
	while (a < b && (s[a] == '\n' || s[a] == ' '))
		a++;
	while (b > a && (s[b - 1] == '\n' || s[b - 1] == ' '))
		b--;
	if ((b - a == 3 && !memcmp(s + a, "<s>", 3)) || (b - a == 4 && !memcmp(s + a, "</s>", 4))) {
		*out_n = b - a;
		return ab_xstrndup((const char *)s + a, b - a);
	}
	struct ab_buf t = {0};
	ab_buf_reserve(&t, n + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ')
			ab_buf_append(&t, "\xe2\x96\x81", 3);
		else
			ab_buf_putc(&t, (char)s[i]);
	}
	*out_n = t.len;
	return ab_buf_steal(&t);
}

/* Counts the entries of a tokenizer.bin (to its end). */
static int count_tokens(const struct mapped *m, const char *path, char *err, size_t errlen)
{
	size_t pos = 4;
	int n = 0;
	if (m->size < 4) {
		snprintf(err, errlen, "%s: truncated at byte 0 reading max_token_length", path);
		return AB_EPROTO;
	}
	while (pos < m->size) {
		int32_t len;
		if (m->size - pos < 8 || n >= MAX_VOCAB) {
			snprintf(err, errlen, "%s: truncated at byte %zu reading token %d", path, pos, n);
			return AB_EPROTO;
		}
		memcpy(&len, m->p + pos + 4, 4);
		pos += 8;
		if (len < 0 || (size_t)len > m->size - pos) {
			snprintf(err, errlen, "%s: token %d at byte %zu: length %d runs past the end",
				 path, n, pos - 4, len);
			return AB_EPROTO;
		}
		pos += (size_t)len;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "%s: no tokens", path);
		return AB_EPROTO;
	}
	return n;
}

static int add_vocab(struct ab_gguf_writer *w, const struct mapped *m, const char *path, int vocab,
		     char *err, size_t errlen)
{
	if (vocab <= 0) {
		vocab = count_tokens(m, path, err, errlen);
		if (vocab < 0)
			return vocab;
	}
	struct ab_gguf_str *texts = ab_xcalloc((size_t)vocab, sizeof(*texts));
	float *scores = ab_xcalloc((size_t)vocab, sizeof(*scores));
	int32_t *types = ab_xcalloc((size_t)vocab, sizeof(*types));
	int rc = 0, n = 0;
	size_t pos = 4;
	if (m->size < 4) {
		snprintf(err, errlen, "%s: truncated at byte 0 reading max_token_length", path);
		rc = AB_EPROTO;
		goto out;
	}
	for (n = 0; n < vocab; n++) {
		int32_t len;
		if (m->size - pos < 8) {
			snprintf(err, errlen,
				 "%s: truncated at byte %zu reading token %d (the model has %d tokens)",
				 path, pos, n, vocab);
			rc = AB_EPROTO;
			goto out;
		}
		memcpy(&scores[n], m->p + pos, 4);
		memcpy(&len, m->p + pos + 4, 4);
		pos += 8;
		if (len < 0 || (size_t)len > m->size - pos) {
			snprintf(err, errlen, "%s: token %d at byte %zu: length %d runs past the end",
				 path, n, pos - 4, len);
			rc = AB_EPROTO;
			goto out;
		}
		const uint8_t *s = m->p + pos;
		pos += (size_t)len;
		size_t tn;
		char *t = gguf_text(s, (size_t)len, &tn);
		texts[n].p = t;
		texts[n].n = tn;
		if (is_byte_token((const uint8_t *)t, tn))
			types[n] = 6;
		else if (tn == 5 && !memcmp(t, "<unk>", 5))
			types[n] = 2;
		else if ((tn == 3 && !memcmp(t, "<s>", 3)) || (tn == 4 && !memcmp(t, "</s>", 4)))
			types[n] = 3;
		else
			types[n] = 1;
	}
	ab_gguf_set_str(w, "tokenizer.ggml.model", "llama");
	ab_gguf_set_arr_strn(w, "tokenizer.ggml.tokens", texts, (size_t)vocab);
	ab_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)vocab);
	ab_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)vocab);
	ab_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	ab_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	ab_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
out:
	for (int i = 0; i < n && i < vocab; i++)
		free((void *)texts[i].p);
	free(texts);
	free(scores);
	free(types);
	return rc < 0 ? rc : vocab;
}

int ab_llama2c_add_vocab(struct ab_gguf_writer *w, const char *tok_path, int vocab, char *err,
			 size_t errlen)
{
	struct mapped tok = {0};
	int rc = map_file(tok_path, &tok, err, errlen);
	if (rc < 0)
		return rc;
	rc = add_vocab(w, &tok, tok_path, vocab, err, errlen);
	unmap_file(&tok);
	return rc;
}

static int add_f32(struct ab_gguf_writer *w, const char *name, const float *p, int64_t cols,
		   int64_t rows)
{
	int64_t ne[2] = {cols, rows};
	int64_t n = rows ? rows * cols : cols;
	return ab_gguf_add_tensor(w, name, 0, rows ? 2 : 1, ne, p, (size_t)n * 4);
}

/* Adds the tensors in llama.cpp's order (per layer), picking each one out
 * of llama2.c's per-kind arrays. */
static int add_weights(struct ab_gguf_writer *w, const struct hparams *h, const uint8_t *data)
{
	const float *p = (const float *)(const void *)(data + 28);
	int64_t D = h->dim, F = h->hidden, KV = h->kv_dim, V = h->vocab;
	static const struct {
		const char *name;
		int kind; /* 0 norm, 1 D x D, 2 KV x D, 3 F x D, 4 D x F */
	} arrays[] = {
		{"attn_norm", 0}, {"attn_q", 1},   {"attn_k", 2},   {"attn_v", 2},   {"attn_output", 1},
		{"ffn_norm", 0},  {"ffn_gate", 3}, {"ffn_down", 4}, {"ffn_up", 3},
	};
	int64_t cols[9], rows[9];
	const float *base[9];
	const float *at = p + V * D;
	for (size_t k = 0; k < AB_ARRAY_LEN(arrays); k++) {
		int kind = arrays[k].kind;
		cols[k] = kind == 4 ? F : D;
		rows[k] = kind == 0 ? 0 : kind == 1 || kind == 4 ? D : kind == 2 ? KV : F;
		base[k] = at;
		at += h->n_layers * cols[k] * (rows[k] ? rows[k] : 1);
	}
	const float *final_norm = at;
	at += D + (int64_t)h->seq_len * (h->head_size / 2) * 2; /* skip freq_cis_real/imag */
	int rc = add_f32(w, "token_embd.weight", p, D, V);
	if (rc == 0)
		rc = add_f32(w, "output_norm.weight", final_norm, D, 0);
	if (rc == 0 && !h->shared)
		rc = add_f32(w, "output.weight", at, D, V);
	char name[64];
	for (int l = 0; rc == 0 && l < h->n_layers; l++) {
		for (size_t k = 0; rc == 0 && k < AB_ARRAY_LEN(arrays); k++) {
			int64_t per = cols[k] * (rows[k] ? rows[k] : 1);
			snprintf(name, sizeof(name), "blk.%d.%s.weight", l, arrays[k].name);
			rc = add_f32(w, name, base[k] + l * per, cols[k], rows[k]);
		}
	}
	return rc;
}

static char *model_name(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	const char *dot = strrchr(b, '.');
	size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
	return ab_xstrndup(b, n);
}

int ab_llama2c_to_gguf(const char *bin_path, const char *tok_path, struct ab_gguf_writer **out,
		       char *err, size_t errlen)
{
	*out = NULL;
	struct mapped bin = {0}, tok = {0};
	struct ab_gguf_writer *w = NULL;
	struct hparams h;
	int rc = map_file(bin_path, &bin, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = parse_header(&bin, bin_path, &h, err, errlen)) < 0)
		goto out;
	if ((rc = map_file(tok_path, &tok, err, errlen)) < 0)
		goto out;
	w = ab_gguf_writer_new();
	char *name = model_name(bin_path);
	ab_gguf_set_str(w, "general.architecture", "llama");
	ab_gguf_set_str(w, "general.name", name);
	ab_gguf_set_u32(w, "general.file_type", 0); /* ALL_F32 */
	free(name);
	ab_gguf_set_u32(w, "llama.context_length", (uint32_t)h.seq_len);
	ab_gguf_set_u32(w, "llama.embedding_length", (uint32_t)h.dim);
	ab_gguf_set_u32(w, "llama.block_count", (uint32_t)h.n_layers);
	ab_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)h.hidden);
	ab_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)h.n_heads);
	ab_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)h.n_kv_heads);
	ab_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)h.head_size);
	ab_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	ab_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
	if ((rc = add_vocab(w, &tok, tok_path, h.vocab, err, errlen)) < 0)
		goto out;
	if ((rc = add_weights(w, &h, bin.p)) < 0) {
		snprintf(err, errlen, "%s: cannot add the weights: %s", bin_path, ab_strerror(rc));
		goto out;
	}
out:
	unmap_file(&bin);
	unmap_file(&tok);
	if (rc < 0) {
		ab_gguf_writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int ab_llama2c_load(const char *bin_path, const char *tok_path, struct ab_gguf **out, void **buf,
		    char *err, size_t errlen)
{
	*out = NULL;
	*buf = NULL;
	struct ab_gguf_writer *w = NULL;
	int rc = ab_llama2c_to_gguf(bin_path, tok_path, &w, err, errlen);
	if (rc < 0)
		return rc;
	size_t len = 0;
	ab_gguf_write_mem(w, buf, &len);
	ab_gguf_writer_free(w);
	rc = ab_gguf_parse(*buf, len, out, err, errlen);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}
