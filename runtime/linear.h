/* Linear layers read straight from their stored format: y = x W^T with W in F32, BF16, F16,
 * block FP8 (with its weight_scale_inv grid, per-shard for fused qkv) or MXFP4 (codes + E8M0
 * scales), decoded one row at a time in registers-sized buffers; there is never a dequantized copy
 * of a whole weight. Part of the CPU reference runtime, the oracle the CUDA backend is held to.
 *
 * Numerics: each output is one fp32 dot product summed in a fixed order (column order, 8
 * interleaved partial sums combined in a fixed tree), computed by exactly one thread, so results
 * do not depend on the thread count. */
#ifndef MIMO_RUNTIME_LINEAR_H
#define MIMO_RUNTIME_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"

typedef enum rt_wfmt {
    RT_W_FLOAT = 0,   /* F32, F16 or BF16 (dtype says which) */
    RT_W_FP8 = 1,     /* F8_E4M3 / F8_E5M2 with a 128x128 scale grid */
    RT_W_MXFP4 = 2    /* U8 codes [rows, cols/2] + U8 E8M0 scales [rows, cols/32] */
} rt_wfmt;

typedef struct rt_linear {
    rt_wfmt fmt;
    lq_dtype dtype;           /* element dtype of w (RT_W_FLOAT, RT_W_FP8) */
    uint64_t rows, cols;      /* logical [out, in] */
    const uint8_t *w;
    const uint8_t *mx_scales; /* RT_W_MXFP4 */
    const void *fp8_scale;    /* RT_W_FP8 */
    lq_dtype fp8_scale_dtype;
    lq_fp8_grid grid;
    const char *name;         /* for errors */
} rt_linear;

/* Binds weight `name` of a checkpoint in whatever format it is stored: a float tensor, an FP8
 * tensor with `name`_scale_inv, or MXFP4 `name` (U8) with `name`_scale (U8). qkv_shards is the
 * checkpoint-TP shard hint for FP8 grids (0 = none). Errors: LQ_ERR_NOT_FOUND (RT_NO_TENSOR),
 * LQ_ERR_CORRUPT (RT_FORMAT: shapes or dtypes that fit none of the formats). */
lq_status rt_linear_bind(const lq_ckpt *ck, const char *name, uint32_t qkv_shards, rt_linear *out, lq_error *err);

/* Decodes rows [r0, r1) into out ((r1 - r0) * cols floats). */
lq_status rt_linear_rows(const rt_linear *l, uint64_t r0, uint64_t r1, float *out);

/* y[t][r] = sum_c x[t][c] * W[r][c] for t < n tokens and rows [r0, r1) of W, written to
 * y[t * ldy + (r - r0)]. threads >= 1. */
lq_status rt_linear_forward(const rt_linear *l, const float *x, size_t n, uint64_t r0, uint64_t r1, float *y,
                            size_t ldy, int threads);

#endif
