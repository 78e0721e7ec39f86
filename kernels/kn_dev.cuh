/* Device helpers shared by the kernels' .cu files (never included from C).
 *
 * Arithmetic that must round like the CPU references: the CPU runtime is built as ISO C11, so
 * gcc does not contract a * b + c into a fused multiply-add; nvcc does by default. Where a kernel
 * promises the CPU's rounding it spells each step with __fmul_rn / __fadd_rn / __fsub_rn, which
 * the compiler never fuses. */
#ifndef MIMO_KERNELS_KN_DEV_CUH
#define MIMO_KERNELS_KN_DEV_CUH

#include <stdint.h>

#include <cuda_bf16.h>

#define KN_FULL_MASK 0xFFFFFFFFu

/* f32 -> bf16 bits, round to nearest even; equal to lq_f32_to_bf16 for every input (a NaN keeps
 * its sign and becomes 0x7FC0, where cvt.rn.bf16.f32 would give 0x7FFF). */
static __device__ __forceinline__ uint16_t kn_bf16_bits(float f)
{
    if (isnan(f))
        return (uint16_t)(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7FC0u);
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

/* Sum of one double per lane over a full warp, in a fixed butterfly order (every lane gets the
 * same bits). */
static __device__ __forceinline__ double kn_warp_sum_d(double v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(KN_FULL_MASK, v, o);
    return v;
}

#endif
