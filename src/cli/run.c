/*
 * run.c - `autobot run MODEL [PROMPT]`: text generation with the built-in
 * engine on this machine, streaming to stdout.
 *
 * The prompt is tokenized (BOS as the vocabulary says), evaluated as one
 * batch (the engine chunks it), then up to --num-predict tokens are
 * sampled and fed back one at a time until an end-of-generation token.
 * Each token's piece is written as soon as it is decoded, with two
 * details of llama.cpp's detokenizer: a SentencePiece vocabulary's first
 * piece loses its leading space when the text starts right after BOS
 * (the word marker of the first word is not a space), and bytes of a
 * UTF-8 character split across tokens are held back until the character
 * is complete, so the terminal never sees half a character.
 *
 * When the model carries a chat template (tokenizer.chat_template) and
 * --raw is not given, the prompt is sent as one user message in that
 * template (chat.h) and control tokens in the rendered text are parsed.
 * With no PROMPT, a terminal on stdin gives an interactive loop (one
 * prompt per line, the context kept between lines until it fills);
 * anything else on stdin is read whole as the prompt. Diagnostics (load
 * time, prompt and generation speed) go to stderr so stdout is the text.
 */
#include "cli.h"
#include "catalog.h"

#include "llm/chat.h"
#include "llm/model.h"
#include "llm/sampler.h"
#include "llm/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage_run(FILE *f)
{
	fprintf(f,
		"usage: autobot run MODEL [PROMPT] [options]\n"
		"\n"
		"Generates text with MODEL (a .gguf file or a llama2.c .bin checkpoint)\n"
		"on this machine and streams it to stdout. Without PROMPT: an interactive\n"
		"loop when stdin is a terminal, else stdin is read as the prompt. An\n"
		"empty prompt starts from BOS alone. Timings go to stderr.\n"
		"\noptions:\n"
		"  --tokenizer FILE     llama2.c tokenizer (default: tokenizer.bin or\n"
		"                       tok*.bin next to the model)\n"
		"  --temperature T      0 = greedy (default 0.8)\n"
		"  --seed N             sampling seed (default: from the clock)\n"
		"  --num-predict N      tokens to generate at most (default 128)\n"
		"  --threads N          threads (default: 1 for models under 50M\n"
		"                       parameters, else up to 8)\n"
		"  --kv-cache TYPE      f16 or f32: how attention keys and values are\n"
		"                       kept (default f16, f32 for F32 models)\n"
		"  --ctx N              context size in tokens (default min(train, 4096))\n"
		"  --top-k K            (default 40; 0 = off)\n"
		"  --top-p P            (default 0.9; 1 = off)\n"
		"  --min-p P            (default 0 = off)\n"
		"  --repeat-penalty R   (default 1.1, or 1 with --temperature 0)\n"
		"  --raw                no chat template: the prompt is the text as given\n"
		"  -h, --help           this text\n");
}

static int parse_float(const char *opt, const char *v, double min, double max, float *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= min && d <= max)) {
		fprintf(stderr, "autobot run: %s: expected a number from %g to %g, got \"%s\"\n",
			opt, min, max, v);
		return -1;
	}
	*out = (float)d;
	return 0;
}

/* Writes UTF-8 bytes as they come, holding back an incomplete sequence at
 * the end until its remaining bytes arrive. */
struct out_stream {
	unsigned char pend[8];
	size_t n;
};

static size_t utf8_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		return 2;
	if ((c & 0xf0) == 0xe0)
		return 3;
	if ((c & 0xf8) == 0xf0)
		return 4;
	return 1; /* a stray continuation or invalid byte: pass it through */
}

static void stream_put(struct out_stream *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		s->pend[s->n++] = (unsigned char)p[i];
		size_t need = utf8_len(s->pend[0]);
		/* a new lead byte while a sequence is open: flush the broken one */
		if (s->n > 1 && (s->pend[s->n - 1] & 0xc0) != 0x80) {
			fwrite(s->pend, 1, s->n - 1, stdout);
			s->pend[0] = s->pend[s->n - 1];
			s->n = 1;
			need = utf8_len(s->pend[0]);
		}
		if (s->n >= need) {
			fwrite(s->pend, 1, s->n, stdout);
			s->n = 0;
		}
	}
	fflush(stdout);
}

static void stream_flush(struct out_stream *s)
{
	if (s->n)
		fwrite(s->pend, 1, s->n, stdout);
	s->n = 0;
	fflush(stdout);
}

struct run {
	struct ab_llm_model *m;
	struct ab_llm_ctx *ctx;
	struct ab_sampler *smp;
	const struct ab_tok *tok;
	float *logits;
	int n_predict;
	int chat;            /* enum ab_chat_family, or -1 for raw text */
	bool text_started;   /* some text precedes the next piece */
};

static char *read_all(FILE *f)
{
	struct ab_buf b = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ab_buf_append(&b, chunk, n);
	if (!b.data)
		return ab_xstrdup("");
	return ab_buf_steal(&b);
}

/* Tokenizes text (with BOS when at the start of the context) into a new
 * array; *n gets the count. */
static int32_t *tokenize(struct run *r, const char *text, int *n)
{
	bool at_start = ab_llm_ctx_pos(r->ctx) == 0;
	char *rendered = NULL;
	bool special = false;
	if (r->chat >= 0 && *text) {
		struct ab_chat_msg msg = {"user", text};
		if (ab_chat_render((enum ab_chat_family)r->chat, &msg, 1, true, &rendered) == 0) {
			text = rendered;
			special = true;
		}
	}
	size_t len = strlen(text);
	int max = (int)len + 8;
	int32_t *ids = ab_xmalloc((size_t)max * sizeof(int32_t));
	int k = ab_tok_encode(r->tok, text, len, at_start, special, ids, max);
	if (k > max) {
		ids = ab_xrealloc(ids, (size_t)k * sizeof(int32_t));
		k = ab_tok_encode(r->tok, text, len, at_start, special, ids, k);
	}
	free(rendered);
	if (k < 0) {
		free(ids);
		return NULL;
	}
	/* An empty prompt still needs something to condition on: BOS. */
	if (k == 0 && at_start && ab_tok_bos(r->tok) >= 0)
		ids[k++] = ab_tok_bos(r->tok);
	*n = k;
	return ids;
}

/* Evaluates the prompt and generates; 0, or 1 after printing an error. */
static int generate(struct run *r, const char *prompt)
{
	int n = 0;
	int32_t *ids = tokenize(r, prompt, &n);
	if (!ids) {
		fprintf(stderr, "autobot run: cannot tokenize the prompt\n");
		return 1;
	}
	if (n == 0) {
		free(ids);
		return 0;
	}
	int room = ab_llm_ctx_n_ctx(r->ctx) - ab_llm_ctx_pos(r->ctx);
	if (n >= room && ab_llm_ctx_pos(r->ctx) > 0) {
		fprintf(stderr, "[context full: starting over]\n");
		ab_llm_ctx_truncate(r->ctx, 0);
		free(ids);
		r->text_started = false;
		ids = tokenize(r, prompt, &n);
		if (!ids)
			return 1;
		room = ab_llm_ctx_n_ctx(r->ctx);
	}
	if (n >= room) {
		fprintf(stderr, "autobot run: the prompt has %d tokens, the context holds %d "
				"(use --ctx)\n",
			n, room);
		free(ids);
		return 1;
	}
	/* Text starts after BOS only if the prompt adds no text of its own. */
	bool bos_only = true;
	for (int i = 0; i < n; i++)
		if (ids[i] != ab_tok_bos(r->tok))
			bos_only = false;
	if (!bos_only)
		r->text_started = true;
	for (int i = 0; i < n; i++)
		ab_sampler_accept(r->smp, ids[i]);

	double t0 = ab_now_ms_f();
	int rc = ab_llm_eval(r->ctx, ids, n, r->logits, NULL);
	double t1 = ab_now_ms_f();
	free(ids);
	if (rc < 0) {
		fprintf(stderr, "autobot run: evaluating the prompt: %s\n", ab_strerror(rc));
		return 1;
	}

	struct out_stream os = {0};
	int gen = 0;
	const char *stop = "";
	char piece[256];
	for (; gen < r->n_predict; gen++) {
		int32_t id = ab_sampler_sample(r->smp, r->logits);
		if (ab_tok_is_eog(r->tok, id)) {
			stop = " (end of text)";
			break;
		}
		ab_sampler_accept(r->smp, id);
		int k = ab_tok_piece(r->tok, id, false, piece, sizeof(piece));
		if (k > (int)sizeof(piece))
			k = (int)sizeof(piece);
		const char *p = piece;
		if (k > 0 && !r->text_started && ab_tok_kind(r->tok) == AB_TOK_SPM && p[0] == ' ') {
			p++;
			k--;
		}
		if (k > 0) {
			stream_put(&os, p, (size_t)k);
			r->text_started = true;
		}
		if (ab_llm_ctx_pos(r->ctx) >= ab_llm_ctx_n_ctx(r->ctx)) {
			gen++;
			stop = " (context full)";
			break;
		}
		rc = ab_llm_eval(r->ctx, &id, 1, r->logits, NULL);
		if (rc < 0) {
			stream_flush(&os);
			fprintf(stderr, "\nautobot run: %s\n", ab_strerror(rc));
			return 1;
		}
	}
	stream_flush(&os);
	double t2 = ab_now_ms_f();
	printf("\n");
	fflush(stdout);
	double pe = t1 - t0, ge = t2 - t1;
	fprintf(stderr, "prompt: %d tokens in %.1f ms (%.1f tokens/s)\n", n, pe,
		pe > 0 ? n * 1000.0 / pe : 0.0);
	fprintf(stderr, "generation: %d tokens in %.1f ms (%.1f tokens/s)%s\n", gen, ge,
		ge > 0 ? gen * 1000.0 / ge : 0.0, stop);
	return 0;
}

static int interactive(struct run *r)
{
	char *line = NULL;
	size_t cap = 0;
	int code = 0;
	for (;;) {
		fprintf(stderr, ">>> ");
		fflush(stderr);
		ssize_t k = getline(&line, &cap, stdin);
		if (k < 0)
			break;
		while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
			line[--k] = '\0';
		if (!strcmp(line, "/bye") || !strcmp(line, "/exit"))
			break;
		if (!*line)
			continue;
		code = generate(r, line);
	}
	free(line);
	fprintf(stderr, "\n");
	return code;
}

int ab_cmd_run(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	bool raw = false;
	const char *tok_s = NULL, *temp_s = NULL, *seed_s = NULL, *np_s = NULL, *thr_s = NULL,
		   *ctx_s = NULL, *topk_s = NULL, *topp_s = NULL, *minp_s = NULL, *rp_s = NULL,
		   *kv_s = NULL;
	const struct ab_cli_opt opts[] = {
		{"--raw", &raw, NULL},
		{"--tokenizer", NULL, &tok_s},
		{"--temperature", NULL, &temp_s},
		{"--seed", NULL, &seed_s},
		{"--num-predict", NULL, &np_s},
		{"--threads", NULL, &thr_s},
		{"--ctx", NULL, &ctx_s},
		{"--top-k", NULL, &topk_s},
		{"--top-p", NULL, &topp_s},
		{"--min-p", NULL, &minp_s},
		{"--repeat-penalty", NULL, &rp_s},
		{"--kv-cache", NULL, &kv_s},
		{NULL, NULL, NULL},
	};
	const char *pos[2];
	size_t n_pos = 0;
	int pr = ab_cli_parse(argc, argv, "run", &co, opts, pos, 2, &n_pos, usage_run);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	if (n_pos < 1) {
		fprintf(stderr, "autobot run: which model? (a .gguf or llama2.c .bin file)\n");
		usage_run(stderr);
		return AB_EXIT_USAGE;
	}

	struct ab_sampler_params sp;
	ab_sampler_defaults(&sp);
	long long v, n_predict = 128, threads = 0, n_ctx = 0;
	if (temp_s && parse_float("--temperature", temp_s, 0, 100, &sp.temperature) < 0)
		return AB_EXIT_USAGE;
	if (sp.temperature == 0)
		sp.repeat_penalty = 1.0f;
	if (seed_s) {
		if (ab_cli_int("run", "--seed", seed_s, 0, INT64_MAX, &v) < 0)
			return AB_EXIT_USAGE;
		sp.seed = (uint64_t)v;
	}
	if ((np_s && ab_cli_int("run", "--num-predict", np_s, 0, 1 << 24, &n_predict) < 0) ||
	    (thr_s && ab_cli_int("run", "--threads", thr_s, 1, 256, &threads) < 0) ||
	    (ctx_s && ab_cli_int("run", "--ctx", ctx_s, 1, 1 << 24, &n_ctx) < 0))
		return AB_EXIT_USAGE;
	if (topk_s) {
		if (ab_cli_int("run", "--top-k", topk_s, 0, 1 << 30, &v) < 0)
			return AB_EXIT_USAGE;
		sp.top_k = (int)v;
	}
	if ((topp_s && parse_float("--top-p", topp_s, 0, 1, &sp.top_p) < 0) ||
	    (minp_s && parse_float("--min-p", minp_s, 0, 1, &sp.min_p) < 0) ||
	    (rp_s && parse_float("--repeat-penalty", rp_s, 0, 100, &sp.repeat_penalty) < 0))
		return AB_EXIT_USAGE;

	if (kv_s && strcmp(kv_s, "f16") && strcmp(kv_s, "f32")) {
		fprintf(stderr, "autobot run: --kv-cache must be f16 or f32, not %s\n", kv_s);
		return AB_EXIT_USAGE;
	}

	const char *path = pos[0];
	char *resolved = NULL;
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		/* a name from `autobot model list` */
		struct ab_config *cfg = ab_cli_load_config(&co);
		if (!cfg)
			return 1;
		char *mdir = NULL, *odir = NULL;
		ab_cli_model_dirs(cfg, &mdir, &odir);
		resolved = ab_catalog_resolve(path, mdir, odir);
		free(mdir);
		free(odir);
		ab_config_free(cfg);
		if (!resolved) {
			fprintf(stderr,
				"autobot run: no model file or model named %s (see autobot model list)\n",
				path);
			return 1;
		}
		path = resolved;
	}

	char err[512];
	struct run r = {.n_predict = (int)n_predict, .chat = -1};
	struct ab_llm_load_opts lo = {.tokenizer_path = tok_s, .n_ctx = (int)n_ctx};
	double t0 = ab_now_ms_f();
	int rc = ab_llm_model_load(path, &lo, &r.m, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "autobot run: %s: %s\n", path, err);
		free(resolved);
		return 1;
	}
	free(resolved); /* path is not used after loading */
	path = NULL;
	ab_llm_model_set_kv_f16(r.m, kv_s ? !strcmp(kv_s, "f16") : ab_llm_kv_f16_default(r.m));
	if (ab_llm_ctx_new(r.m, (int)n_ctx, (int)threads, &r.ctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot run: %s\n", err);
		ab_llm_model_free(r.m);
		return 1;
	}
	const struct ab_llm_hparams *hp = ab_llm_model_hparams(r.m);
	const struct ab_type_info *ti = ab_type_get(hp->file_type);
	fprintf(stderr, "loaded %s (%s, %s, %d layers, context %d) in %.1f ms\n", hp->name,
		hp->arch, ti ? ti->name : "?", hp->n_layer, ab_llm_ctx_n_ctx(r.ctx),
		ab_now_ms_f() - t0);
	r.tok = ab_llm_model_tok(r.m);
	r.smp = ab_sampler_new(&sp, hp->n_vocab);
	r.logits = ab_xmalloc((size_t)hp->n_vocab * sizeof(float));
	const struct ab_gguf *g = ab_llm_model_gguf(r.m);
	char *tmpl = NULL;
	if (!raw && g && ab_gguf_get_str(g, "tokenizer.chat_template", &tmpl) == 0)
		r.chat = (int)ab_chat_detect(tmpl);
	free(tmpl);

	int code;
	if (n_pos >= 2) {
		code = generate(&r, pos[1]);
	} else if (isatty(0)) {
		code = interactive(&r);
	} else {
		char *text = read_all(stdin);
		size_t len = strlen(text); /* the newline that ends the input is not prompt */
		if (len && text[len - 1] == '\n')
			text[--len] = '\0';
		if (len && text[len - 1] == '\r')
			text[--len] = '\0';
		code = generate(&r, text);
		free(text);
	}
	free(r.logits);
	ab_sampler_free(r.smp);
	ab_llm_ctx_free(r.ctx);
	ab_llm_model_free(r.m);
	return code;
}
