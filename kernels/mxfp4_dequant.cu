/* MXFP4 decode kernel. One thread per 32-element block: it loads the block's 16 packed bytes
 * with one 16-byte load and its scale byte, and writes 32 outputs as 16-byte stores (8 for f32,
 * 4 for bf16). Memory-bound: per block 17 bytes in, 128 (f32) or 64 (bf16) bytes out, so the
 * useful-bandwidth figure of merit is (in + out bytes) / time against a device copy. */
#include "mxfp4_dequant.h"

#include <cuda_bf16.h>

__constant__ float kn_fp4_lut[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

__device__ __forceinline__ float e8m0_to_f32(unsigned b)
{
    /* b >= 1: exponent field b (exact); b == 0: 2^-127 is the subnormal 0x00400000; 0xFF: NaN. */
    return __uint_as_float(b == 0 ? 0x00400000u : (b == 255 ? 0x7FC00000u : (b << 23)));
}

template <int BF16>
__global__ void mxfp4_dequant_kernel(const uint4 *__restrict__ packed, const uint8_t *__restrict__ scales,
                                     void *__restrict__ out, uint64_t nblocks)
{
    for (uint64_t b = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; b < nblocks;
         b += (uint64_t)gridDim.x * blockDim.x) {
        uint4 p = packed[b];
        float s = e8m0_to_f32(scales[b]);
        uint32_t w[4] = {p.x, p.y, p.z, p.w};
        float v[32];
#pragma unroll
        for (int i = 0; i < 16; i++) {
            uint32_t byte = (w[i >> 2] >> ((i & 3) * 8)) & 0xFF;
            v[2 * i] = kn_fp4_lut[byte & 0xF] * s;
            v[2 * i + 1] = kn_fp4_lut[byte >> 4] * s;
        }
        if (BF16) {
            uint4 *o = reinterpret_cast<uint4 *>(static_cast<__nv_bfloat16 *>(out) + b * 32);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t q[4];
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    __nv_bfloat162 h = __floats2bfloat162_rn(v[8 * j + 2 * k], v[8 * j + 2 * k + 1]);
                    q[k] = *reinterpret_cast<uint32_t *>(&h);
                }
                o[j] = make_uint4(q[0], q[1], q[2], q[3]);
            }
        } else {
            float4 *o = reinterpret_cast<float4 *>(static_cast<float *>(out) + b * 32);
#pragma unroll
            for (int j = 0; j < 8; j++)
                o[j] = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
        }
    }
}

extern "C" lq_status kn_mxfp4_dequant(const kn_mxfp4_dequant_args *a, cudaStream_t stream)
{
    if (!a || !a->packed || !a->scales || !a->out || a->n % 32 != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    if (((uintptr_t)a->packed | (uintptr_t)a->out) % 16 != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    uint64_t nblocks = a->n / 32;
    if (nblocks == 0)
        return LQ_OK;
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        return LQ_ERR_CUDA;
    const int threads = 256;
    uint64_t want = (nblocks + threads - 1) / threads, cap = (uint64_t)sms * 8;
    unsigned grid = (unsigned)(want < cap ? want : cap);
    if (a->out_bf16)
        mxfp4_dequant_kernel<1><<<grid, threads, 0, stream>>>((const uint4 *)a->packed, a->scales, a->out, nblocks);
    else
        mxfp4_dequant_kernel<0><<<grid, threads, 0, stream>>>((const uint4 *)a->packed, a->scales, a->out, nblocks);
    return cudaGetLastError() == cudaSuccess ? LQ_OK : LQ_ERR_CUDA;
}
