/* MXFP4 -> f32 / bf16 decoding on the GPU (layout and rules as libquant/mxfp4.h).
 *
 * Launchers validate their arguments before launching and return lq_status; they never
 * synchronize. The decoded values are bit-identical to lq_mxfp4_dequantize (E8M0 scale 0 is
 * the f32 subnormal 2^-127, kept because CUDA does not flush f32 denormals by default). Scale
 * bytes of 0xFF decode to NaN here: validation of untrusted data belongs to the loader. */
#ifndef MIMO_KERNELS_MXFP4_DEQUANT_H
#define MIMO_KERNELS_MXFP4_DEQUANT_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "libquant/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_mxfp4_dequant_args {
    const uint8_t *packed;  /* device, n / 2 bytes, 16-byte aligned */
    const uint8_t *scales;  /* device, n / 32 bytes */
    void *out;              /* device, n f32 (out_bf16 = 0) or n bf16 (out_bf16 = 1), 16-byte aligned */
    uint64_t n;             /* multiple of 32 */
    int out_bf16;
} kn_mxfp4_dequant_args;

/* Checks n % 32 == 0, non-NULL 16-byte-aligned pointers, then launches on stream. */
lq_status kn_mxfp4_dequant(const kn_mxfp4_dequant_args *a, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
