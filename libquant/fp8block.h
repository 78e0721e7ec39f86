/* Block-scaled FP8 weights (DeepSeek / MiMo `weight_scale_inv`, reference/mimo_arch.md 4.4).
 *
 * A weight [rows, cols] in F8_E4M3 (or F8_E5M2) has a scale grid [srows, scols] of 128x128
 * blocks; w[r][c] = fp8[r][c] * scale[row_block(r)][c / 128] (the "_inv" scale is a multiplier).
 * Edges are ragged: the last block of a row or column may be partial.
 *
 * Fused or split q/k/v tensors of checkpoints saved under tensor parallelism restart their row
 * grid per checkpoint-TP shard: with S shards of R_s = rows / S rows each, local row r of shard s
 * uses scale row s * ceil(R_s / 128) + r / 128. S = 1 is the uniform grid. */
#ifndef LIBQUANT_FP8BLOCK_H
#define LIBQUANT_FP8BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_fp8_grid {
    uint64_t rows, cols;     /* weight shape */
    uint64_t srows, scols;   /* scale grid shape */
    uint32_t block_r, block_c; /* 128, 128 */
    uint32_t shards;         /* checkpoint-TP shard count S along rows (1 = uniform) */
} lq_fp8_grid;

/* Finds S such that rows % S == 0 and srows == S * ceil(rows / S / block_r), checks
 * scols == ceil(cols / block_c), and fills *grid. `hint` (0 = none; e.g. num_key_value_heads)
 * is preferred when it fits; otherwise the smallest fitting S in 1..4096 is taken (all fitting S
 * whose shards are multiples of block_r give the same mapping; when they do not, only the hint
 * can tell them apart). rows = 0 needs srows = 0 and gives S = 1. No fitting S, or a scols
 * mismatch -> LQ_ERR_CORRUPT with rule "FP8_SCALE_SHAPE"; a zero block size or NULL grid ->
 * LQ_ERR_INVALID_ARGUMENT. `tensor` names the weight in the error. */
lq_status lq_fp8_grid_detect(uint64_t rows, uint64_t cols, uint64_t srows, uint64_t scols,
                             uint32_t block_r, uint32_t block_c, uint32_t hint,
                             const char *tensor, lq_fp8_grid *grid, lq_error *err);

/* Whether g is internally consistent, as lq_fp8_grid_detect fills it (non-zero block sizes and
 * shard count, rows % shards == 0, the grid shape that the shard count implies), so that every
 * scale index of every row is in bounds. NULL -> 0. */
int lq_fp8_grid_ok(const lq_fp8_grid *g);

/* Scale row used by weight row r (r < rows; g as filled by lq_fp8_grid_detect). */
uint64_t lq_fp8_grid_scale_row(const lq_fp8_grid *g, uint64_t r);

/* Dequantizes weight rows [r0, r1) into out ((r1 - r0) * cols f32, row-major). w and scale
 * point at the start of the whole weight [rows, cols] and the whole grid [srows, scols]
 * (row-major, little-endian, any alignment). wdt is F8_E4M3 or F8_E5M2; the scale dtype sdt is
 * F32, BF16 or F8_E8M0 (reference/mxfp4_formats.md 4.1); anything else -> LQ_ERR_UNSUPPORTED.
 * Each value is one f32 product fp8 * scale. A weight byte that is not finite (NaN; inf in
 * E5M2) -> LQ_ERR_NUMERIC, rule "FP8_NONFINITE", the message giving the flat element index,
 * row and column; a scale that is not finite or is negative (E8M0 0xFF included) ->
 * LQ_ERR_NUMERIC, rule "FP8_BAD_SCALE". out is then partly written. A grid that detect would
 * not produce or r0 > r1 > rows -> LQ_ERR_INVALID_ARGUMENT. */
lq_status lq_fp8_block_dequant(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w,
                               lq_dtype sdt, const void *scale, uint64_t r0, uint64_t r1,
                               float *out, const char *tensor, lq_error *err);

/* lq_fp8_block_dequant through the table path only (no SIMD), for tests that compare the two:
 * the same bytes out and the same status and error for every input. */
lq_status lq_fp8_block_dequant_portable(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w,
                                        lq_dtype sdt, const void *scale, uint64_t r0, uint64_t r1,
                                        float *out, const char *tensor, lq_error *err);

/* Quantizes a f32 weight [rows, cols] to F8_E4M3 with an F32 scale grid laid out as g describes
 * (g->srows and g->scols must match the shards and block sizes, else LQ_ERR_INVALID_ARGUMENT).
 * Per block: scale = amax / 448 (1 for an all-zero block, or when amax / 448 underflows to 0),
 * q = e4m3_sat(w / scale). A non-finite w -> LQ_ERR_NUMERIC. Used by the fixture generator. */
lq_status lq_fp8_block_quant(const lq_fp8_grid *g, const float *w, uint8_t *q, float *scale);

#ifdef __cplusplus
}
#endif
#endif
