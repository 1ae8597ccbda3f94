/*
 * rowops.h - the per-token steps of a transformer layer that work on one
 * row at a time: RMSNorm, the rotary position embedding (RoPE) and the
 * residual add. Each has a scalar and an AVX2 form, picked at run time
 * with the matmul kernels (ab_quant_avx2(), so ab_quant_force_scalar()
 * switches them too); both give the same bits.
 */
#ifndef AB_ROWOPS_H
#define AB_ROWOPS_H

#include <stdbool.h>
#include <stddef.h>

/* out = (x / sqrt(mean(x^2) + eps)) * w over n floats. The mean's sum is
 * of the squares rounded to float, in double, as eight partial sums
 * (element i into sum i % 8) joined in a fixed order. out may be x. */
void ab_rowops_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* Rotates one head of v in place by the angles in cs (half pairs: cs[2 i]
 * the cosine, cs[2 i + 1] the sine of pair i): pairs (i, i + half) when
 * neox, else (2 i, 2 i + 1). x0' = x0 c - x1 s, x1' = x0 s + x1 c. */
void ab_rowops_rope(float *v, const float *cs, int half, bool neox);

/* x[i] += y[i] for n floats. */
void ab_rowops_add(float *x, const float *y, size_t n);

#endif
