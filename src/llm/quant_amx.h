/*
 * quant_amx.h - internal to src/llm: the AMX (Advanced Matrix
 * Extensions) kernels for prompt evaluation on the eight-row repacked
 * weight layouts of quant.c (AB_TYPE_Q4_0_X8, AB_TYPE_Q8_0_X8). Only
 * ab_matmul calls them; see quant_amx.c for the design.
 */
#ifndef AB_QUANT_AMX_H
#define AB_QUANT_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of one block column of an eight-row group: the eight rows' f16
 * scales (16 bytes), then the eight rows' 32 weights (Q4_0: 128 bytes of
 * nibbles, Q8_0: 256 bytes), four bytes of a row at a time. */
#define AB_X8_Q4_BLK 144
#define AB_X8_Q8_BLK 272

/* Whether the AMX kernels can run here: the CPU has AMX-TILE, AMX-INT8
 * and AVX-512 F/BW/VL, the kernel granted this process the tile state,
 * and AB_QUANT_NO_AMX=1 is not set. Decided once per process. */
bool ab__amx_usable(void);

/* The activations in the order the A tiles load them: for each tile of
 * sixteen rows (the last one zero-padded) and each block column, the
 * rows' 32 Q8_0 quants and then their sixteen block scales as float.
 * ab__amx_a_bytes(T, nb) bytes at xa, filled by ab__amx_pack_a from T
 * rows of Q8_0 blocks (xq, rows xrow bytes apart) and their scales as
 * float (row t at xd + t * xds). */
size_t ab__amx_a_bytes(int64_t T, int64_t nb);
/* Packs rows t0 <= t < t1 of the T (and, when t1 == T, zeroes the last
 * tile's padding rows), so that threads may pack disjoint ranges. */
void ab__amx_pack_a(const char *xq, size_t xrow, const float *xd, size_t xds, int64_t T, int64_t nb, int8_t *xa,
		    int64_t t0, int64_t t1);

/*
 * Y[t * R + r] for the weight rows r0 <= r < r1 (r0 and r1 - r0 multiples
 * of 16) and every activation row t < T. W is the repacked matrix (row r
 * of a group starts its group at W + r * wrow), q8 says Q8_0_X8 (else
 * Q4_0_X8), nb = columns / 32, xa the T activation rows packed by
 * ab__amx_pack_a. The result is bit-identical to the eight-row kernels
 * of quant.c (same exact integer dots, same float operations in the same
 * order). Uses and releases the calling thread's tile registers; call
 * only after ab__amx_usable() said true (the tile state is not enabled
 * before).
 */
void ab__amx_x8(bool q8, const uint8_t *W, size_t wrow, int64_t r0, int64_t r1, int64_t R, int64_t nb,
		const int8_t *xa, int64_t T, float *Y);

/* Q4_K_X8 (quant.c): per super-block column of an eight-row group,
 * AB_X8K4_BLK bytes: d (8 f16), dmin (8 f16), the scales (byte 8 j + r),
 * the mins (byte 16 i + 2 r + e = min of sub-block 2 i + e), then 32
 * chunks of the rows' nibble dwords. */
#define AB_X8K4_BLK 1184
#define AB_X8K4_SC 32
#define AB_X8K4_MN 96
#define AB_X8K4_QS 160

/* Q8_K activations packed for the Q4_K tiles: per tile of sixteen rows
 * and super-block, the eight sub-blocks' A tiles, the rows' scales and
 * their eight int16 pair sums (the aux words of quant.c: row t at
 * xd + t * xds, four words a super-block). */
size_t ab__amx_k_bytes(int64_t T, int64_t nb);
void ab__amx_pack_k(const char *xq, size_t xrow, const float *xd, size_t xds, int64_t T, int64_t nb, int8_t *xa);

/* As ab__amx_x8 for Q4_K_X8 weights (nb = columns / 256) against Q8_K
 * activations packed by ab__amx_pack_k; bit-identical to quant.c's
 * Q4_K_X8 kernels. */
void ab__amx_q4k(const uint8_t *W, size_t wrow, int64_t r0, int64_t r1, int64_t R, int64_t nb,
		 const int8_t *xa, int64_t T, float *Y);

#endif
