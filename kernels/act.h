/* The SwiGLU activation on the GPU: out = silu(a) * b elementwise, silu(x) = x / (1 + expf(-x))
 * as rt_silu computes it (accurate expf, IEEE division), the product rounded once. */
#ifndef MIMO_KERNELS_ACT_H
#define MIMO_KERNELS_ACT_H

#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_swiglu_act_args {
    const float *a;  /* device f32 [n, lda]: the gate projection */
    const float *b;  /* device f32 [n, ldb]: the up projection */
    void *out;       /* device [n, ldo]: f32 (out_bf16 = 0, may be a or b itself with the same stride)
                        or uint16_t bf16 bits (out_bf16 = 1, RNE as lq_f32_to_bf16) */
    uint32_t n;      /* rows; 0 launches nothing */
    uint64_t I;      /* values per row, >= 1 */
    uint64_t lda, ldb, ldo; /* row strides in elements, each >= I */
    int out_bf16;    /* 0 or 1 */
} kn_swiglu_act_args;

lq_status kn_swiglu_act(const kn_ctx *k, const kn_swiglu_act_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
