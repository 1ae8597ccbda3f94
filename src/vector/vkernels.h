/*
 * vkernels.h - the distance kernels of the vector engine: dot products of
 * float and int8 vectors and the Hamming distance of bit vectors, each in a
 * portable scalar form and in SIMD forms (AVX2+FMA, AVX-VNNI, AVX-512 and
 * AVX-512 VNNI) that are compiled with __attribute__((target)) and chosen
 * at run time after a cpuid probe, so one binary runs everywhere and uses
 * what the CPU has.
 *
 * Internal to src/vector (hnsw.c and the tests use it); the Redis module
 * has no reason to. Every kernel takes any length n (no padding needed)
 * and reads exactly n elements of each operand.
 *
 * int8 kernels require that neither operand holds -128: the SIMD forms
 * multiply |a| (as an unsigned byte) by b * sign(a), which is exact for
 * [-127, 127] and wraps for -128. The quantiser never produces -128 and
 * the restore path rejects it.
 */
#ifndef AB_VKERNELS_H
#define AB_VKERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef float (*ab_vk_dot_f32_fn)(const float *a, const float *b, size_t n);
typedef int32_t (*ab_vk_dot_i8_fn)(const int8_t *a, const int8_t *b, size_t n);
typedef uint32_t (*ab_vk_hamming_fn)(const uint8_t *a, const uint8_t *b, size_t nbytes);

/* One set of kernels, all three for the same instruction-set level. */
struct ab_vk {
	const char *name; /* "scalar", "avx2", "avx512", ... for reports */
	ab_vk_dot_f32_fn dot_f32;
	ab_vk_dot_i8_fn dot_i8;
	ab_vk_hamming_fn hamming;
};

/* What the CPU (and the OS, for the wide register state) supports. */
struct ab_vk_cpu {
	int avx2_fma;    /* AVX2 and FMA, YMM state enabled */
	int avx_vnni;    /* AVX-VNNI (VEX int8 dot) */
	int avx512;      /* AVX-512 F + BW + VL, ZMM state enabled */
	int avx512_vnni; /* AVX-512 VNNI */
	int popcnt;
};

/* The levels a kernel set can be asked for, lowest first. */
enum ab_vk_level {
	AB_VK_SCALAR = 0,
	AB_VK_AVX2,      /* AVX2 + FMA; int8 with vpmaddubsw */
	AB_VK_AVX_VNNI,  /* as AVX2, int8 with vpdpbusd (VEX) */
	AB_VK_AVX512,    /* AVX-512 float; int8 with vpdpbusd when VNNI is there */
	AB_VK_NLEVELS,
};

/* Probes the CPU once (thread-safe) and returns the result. */
const struct ab_vk_cpu *ab_vk_cpu(void);
/* The kernels of one level, or NULL when this CPU cannot run them. The
 * tables are static: nothing to free. */
const struct ab_vk *ab_vk_table(enum ab_vk_level level);
/* The fastest table this CPU runs (never NULL). */
const struct ab_vk *ab_vk_best(void);

/* The scalar forms, exported so that tests can compare against them. */
float ab_vk_dot_f32_scalar(const float *a, const float *b, size_t n);
int32_t ab_vk_dot_i8_scalar(const int8_t *a, const int8_t *b, size_t n);
uint32_t ab_vk_hamming_scalar(const uint8_t *a, const uint8_t *b, size_t nbytes);

#endif
