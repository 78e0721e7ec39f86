/* RMSNorm of rows on the GPU, with the residual add fused in front (rt_rmsnorm's arithmetic).
 *
 * Per row t < n: when add is not NULL, h[t] += add[t] first (f32, in place: the residual stream);
 * then y[t] = w * (h[t] * r) with r = (float)(1 / sqrt(ss / dim + eps)) and ss the sum of squares
 * of h[t] in double, as rt_rmsnorm computes it. The sum is taken in a fixed order that depends on
 * dim only, so a row's result never depends on n. One block of 256 threads per row. */
#ifndef MIMO_KERNELS_NORM_H
#define MIMO_KERNELS_NORM_H

#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_rmsnorm_args {
    float *h;           /* device f32 [n, ldh]: the rows (dim values each); written only when add != NULL */
    const float *add;   /* NULL, or device f32 [n, ld_add]: added into h before the norm */
    const float *w;     /* device f32 [dim]: the norm weight */
    float *y_f32;       /* NULL, or device f32 [n, ldy]; may be h itself (same stride) */
    uint16_t *y_bf16;   /* NULL, or device bf16 bits [n, ldy] (RNE of the f32 result) */
    uint32_t n;         /* rows; 0 launches nothing */
    uint32_t dim;       /* 1 .. 1 << 20 */
    uint64_t ldh;       /* row stride of h in floats, >= dim */
    uint64_t ld_add;    /* row stride of add in floats, >= dim (ignored when add is NULL) */
    uint64_t ldy;       /* row stride of y_f32 and y_bf16 in elements, >= dim */
    double eps;         /* >= 0 */
} kn_rmsnorm_args;

/* At least one of y_f32, y_bf16 must be given. add must not overlap the outputs; y_f32 may be
 * h (in place) but must not otherwise overlap it. */
lq_status kn_rmsnorm(const kn_ctx *k, const kn_rmsnorm_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
