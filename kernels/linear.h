/* Linear layers on the GPU, reading weights in their stored format: y = x W^T (+ bias).
 *
 * Formats (kn_weight): BF16, F16, F32, block-128 FP8 (E4M3/E5M2 with an f32 scale grid) and
 * MXFP4 (E2M1 codes + E8M0 scales per 32). Nothing is dequantized to memory: a weight tile is
 * decoded in registers as it is used.
 *
 * Two paths, one launcher:
 * - bf16 activations (x_f32 = 0): tensor-core MMA (m16n8k16, BF16 in, fp32 accumulate). A block
 *   of 4 warps owns 16 weight rows and every token of its group; the K dimension is cut into
 *   chunks of 128 dealt to the 4 warps round-robin and their partial sums are added in warp order.
 *   Weight values are exact in BF16 (E2M1 x E8M0, E4M3, E5M2, BF16); FP8's block scale multiplies
 *   each 128-chunk's fp32 partial sum; F16 and F32 weights are rounded to BF16.
 * - fp32 activations (x_f32 = 1, the debug mode that is held to the CPU oracle): CUDA-core fp32
 *   FMAs, one warp per (weight row, group), weights decoded exactly as the CPU does (FP8 value x
 *   scale in f32).
 * Either way a row's output depends only on that row's x: the split of K is fixed by K, never by
 * the number of rows, and padded token columns never mix with real ones (batch invariance).
 *
 * Expert groups (MoE): with `groups`, grid slot g computes expert gexp[g] for its gcnt[g] rows
 * starting at pair goff[g] (kernels/router.h's kn_moe_plan fills these); logical row i of the
 * group reads x row xmap[goff + i] (or goff + i without xmap) and writes y row goff + i. Slots
 * whose gcnt is 0 return at once, so the launch's grid is fixed whatever the routing. */
#ifndef MIMO_KERNELS_LINEAR_H
#define MIMO_KERNELS_LINEAR_H

#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kn_wfmt { KN_W_BF16 = 0, KN_W_F16 = 1, KN_W_F32 = 2, KN_W_E4M3 = 3, KN_W_E5M2 = 4, KN_W_MXFP4 = 5 } kn_wfmt;

/* A weight [experts][rows, cols] on the device. */
typedef struct kn_weight {
    kn_wfmt fmt;
    uint32_t rows, cols;
    uint32_t experts;          /* 1 for a plain weight */
    const void *w;             /* element data; MXFP4: rows * cols / 2 code bytes per expert */
    uint64_t w_stride;         /* bytes from one expert's w to the next */
    const uint8_t *mx_scales;  /* MXFP4: E8M0 [rows, cols / 32] per expert */
    uint64_t s_stride;         /* bytes between experts' mx_scales, or floats between experts' fp8_scale */
    const float *fp8_scale;    /* FP8: f32 scale grid [srows, scols] per expert (128 x 128 blocks) */
    const uint32_t *fp8_srow;  /* FP8: [rows] the scale row of each weight row (shared by experts) */
    uint32_t scols;            /* FP8: ceil(cols / 128) */
} kn_weight;

/* The largest row count one launch serves (a step chunk; an expert group never has more). */
#define KN_LINEAR_MAX_ROWS 64

typedef struct kn_linear_args {
    const kn_weight *W;  /* host struct describing device memory */
    const void *x;       /* device [.., ldx]: bf16 bits (x_f32 = 0) or f32; 16-byte aligned rows when bf16 */
    int x_f32;
    uint32_t ldx;        /* elements; multiple of 8 when bf16 */
    uint32_t n;          /* rows of x (plain), or the number of pairs (groups) */
    float *y;            /* device f32 [.., ldy] */
    uint32_t ldy;
    const float *bias;   /* NULL or device f32 [W->rows], added to every row */
    /* expert groups: all NULL for a plain linear layer */
    const int32_t *gexp, *goff, *gcnt; /* device [slots] */
    const int32_t *xmap;               /* NULL or device [n]: x row of each pair */
    uint32_t slots;                    /* grid slots (0 for a plain layer) */
} kn_linear_args;

/* Checks: W's format fields (pointers present, MXFP4 cols % 32 == 0, FP8 scols = ceil(cols/128)),
 * n <= KN_LINEAR_MAX_ROWS for a plain layer (groups: each group <= KN_LINEAR_MAX_ROWS rows is a
 * promise of kn_moe_plan), alignment. */
lq_status kn_linear(const kn_ctx *k, const kn_linear_args *a, lq_error *err);

/* out[t, 0..cols) = f32 row tokens[t] of W (experts = 1), exactly as the CPU decodes it (FP8: value x
 * scale in f32; MXFP4: code x E8M0). tokens: device int32 [n], checked by the caller. */
typedef struct kn_embed_args {
    const kn_weight *W;
    const int32_t *tokens;
    uint32_t n;
    float *out;          /* device f32 [n, ldo] */
    uint32_t ldo;
} kn_embed_args;
lq_status kn_embed(const kn_ctx *k, const kn_embed_args *a, lq_error *err);

/* out (bf16 bits) = round-to-nearest-even of x (f32), n rows of cols, strides in elements. */
typedef struct kn_to_bf16_args {
    const float *x;
    uint32_t ldx;
    uint16_t *out;
    uint32_t ldo;
    uint32_t n, cols;
} kn_to_bf16_args;
lq_status kn_to_bf16(const kn_ctx *k, const kn_to_bf16_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
