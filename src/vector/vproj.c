/*
 * vproj.c - the random projection behind VADD ... REDUCE (hnsw.h): an
 * out_dim x in_dim matrix of independent N(0, 1) draws scaled by
 * 1/sqrt(out_dim), so that by Johnson-Lindenstrauss lengths and angles
 * survive the reduction approximately. The draws come from xoshiro256**
 * seeded through splitmix64 and the Box-Muller transform, so one seed
 * always gives the same matrix on every machine that rounds IEEE floats
 * the same way; the module saves the matrix itself anyway
 * (ab_vproj_from_matrix) so that a reload never depends on that.
 *
 * The product is one dot product per output row through the float
 * kernel chosen for the CPU (vkernels.c).
 */
#include "common.h"
#include "hnsw.h"
#include "vkernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ab_vproj {
	uint32_t in_dim, out_dim;
	float *m; /* out_dim rows of in_dim */
};

static uint64_t mix(uint64_t *x)
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

static uint64_t next64(uint64_t s[4])
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

/* uniform in (0, 1]: never 0, so that log() is finite */
static double open_unit(uint64_t s[4])
{
	return ((double)(next64(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

static bool dims_ok(uint32_t in_dim, uint32_t out_dim)
{
	return in_dim >= 1 && in_dim <= AB_HNSW_MAX_DIM && out_dim >= 1 &&
	       out_dim <= AB_HNSW_MAX_DIM && (uint64_t)in_dim * out_dim <= AB_VPROJ_MAX_ELEMS;
}

int ab_vproj_new(uint32_t in_dim, uint32_t out_dim, uint64_t seed, struct ab_vproj **out)
{
	if (!out)
		return AB_EINVAL;
	*out = NULL;
	if (!dims_ok(in_dim, out_dim))
		return AB_EINVAL;
	struct ab_vproj *p = ab_xcalloc(1, sizeof(*p));
	size_t n = (size_t)in_dim * out_dim;
	p->in_dim = in_dim;
	p->out_dim = out_dim;
	p->m = ab_xmalloc(n * sizeof(float));
	uint64_t s[4];
	for (int i = 0; i < 4; i++)
		s[i] = mix(&seed);
	double scale = 1.0 / sqrt((double)out_dim);
	for (size_t i = 0; i < n; i += 2) {
		/* Box-Muller: two independent normals from two uniforms */
		double r = sqrt(-2.0 * log(open_unit(s)));
		double t = 2.0 * M_PI * open_unit(s);
		p->m[i] = (float)(r * cos(t) * scale);
		if (i + 1 < n)
			p->m[i + 1] = (float)(r * sin(t) * scale);
	}
	*out = p;
	return 0;
}

int ab_vproj_from_matrix(uint32_t in_dim, uint32_t out_dim, const float *m, struct ab_vproj **out)
{
	if (!out)
		return AB_EINVAL;
	*out = NULL;
	if (!m || !dims_ok(in_dim, out_dim))
		return AB_EINVAL;
	size_t n = (size_t)in_dim * out_dim;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(m[i]))
			return AB_EINVAL;
	struct ab_vproj *p = ab_xcalloc(1, sizeof(*p));
	p->in_dim = in_dim;
	p->out_dim = out_dim;
	p->m = ab_xmalloc(n * sizeof(float));
	memcpy(p->m, m, n * sizeof(float));
	*out = p;
	return 0;
}

void ab_vproj_free(struct ab_vproj *p)
{
	if (!p)
		return;
	free(p->m);
	free(p);
}

uint32_t ab_vproj_in_dim(const struct ab_vproj *p)
{
	return p->in_dim;
}

uint32_t ab_vproj_out_dim(const struct ab_vproj *p)
{
	return p->out_dim;
}

const float *ab_vproj_matrix(const struct ab_vproj *p)
{
	return p->m;
}

void ab_vproj_apply(const struct ab_vproj *p, const float *in, float *out)
{
	ab_vk_dot_f32_fn dot = ab_vk_best()->dot_f32;
	for (uint32_t r = 0; r < p->out_dim; r++)
		out[r] = dot(p->m + (size_t)r * p->in_dim, in, p->in_dim);
}
