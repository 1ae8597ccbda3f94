/*
 * sampler.h - choosing the next token from the logits: repeat, presence
 * and frequency penalties over the last tokens, then temperature (0 =
 * greedy: the highest logit, lowest id on a tie), top-k, top-p, min-p,
 * and a draw from a seeded generator (same seed, same output).
 */
#ifndef AB_SAMPLER_H
#define AB_SAMPLER_H

#include <stdint.h>

struct ab_sampler_params {
	float temperature;       /* 0 = greedy; default 0.8 */
	int top_k;               /* <= 0: off; default 40 */
	float top_p;             /* 1 = off; default 0.9 */
	float min_p;             /* 0 = off; default 0.0 */
	float repeat_penalty;    /* 1 = off; default 1.1 */
	int repeat_last_n;       /* window of the penalties; default 64 */
	float presence_penalty;  /* 0 = off */
	float frequency_penalty; /* 0 = off */
	uint64_t seed;           /* 0 = from the clock */
};

/* The defaults above (Ollama's). */
void ab_sampler_defaults(struct ab_sampler_params *p);

struct ab_sampler;
struct ab_sampler *ab_sampler_new(const struct ab_sampler_params *p, int n_vocab);
void ab_sampler_free(struct ab_sampler *s);
/* Picks a token; logits (n_vocab) may be modified in place. */
int32_t ab_sampler_sample(struct ab_sampler *s, float *logits);
/* Records a token (prompt or generated) for the penalties. */
void ab_sampler_accept(struct ab_sampler *s, int32_t id);

#endif
