/* MXFP4 decode kernel. Memory-bound: per 32-element block 17 bytes in and 128 (f32) or 64
 * (bf16) bytes out, so the figure of merit is (in + out bytes) / time against a device copy.
 * Each thread decodes 8 consecutive elements: one 4-byte load of packed codes, one scale byte,
 * and one 16-byte store (bf16) or two (f32), so consecutive threads of a warp touch consecutive
 * 16-byte chunks and every load and store is fully coalesced. */
#include "mxfp4_dequant.h"

#include <cuda_bf16.h>

#include "libquant/fp_formats.h"

template <int BF16>
__global__ void mxfp4_dequant_kernel(const uint32_t *__restrict__ packed, const uint8_t *__restrict__ scales,
                                     void *__restrict__ out, uint64_t nchunks)
{
    for (uint64_t c = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; c < nchunks;
         c += (uint64_t)gridDim.x * blockDim.x) {
        uint32_t w = packed[c];          /* elements 8c .. 8c+7 */
        float s = lq_e8m0_decode(scales[c >> 2]); /* 0 -> 2^-127 (subnormal), 0xFF -> NaN */
        float v[8];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t byte = (w >> (8 * i)) & 0xFF;
            v[2 * i] = lq_e2m1_decode(byte & 0xF) * s;
            v[2 * i + 1] = lq_e2m1_decode(byte >> 4) * s;
        }
        if (BF16) {
            uint32_t q[4];
#pragma unroll
            for (int k = 0; k < 4; k++) {
                __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
                q[k] = *reinterpret_cast<uint32_t *>(&h);
            }
            reinterpret_cast<uint4 *>(out)[c] = make_uint4(q[0], q[1], q[2], q[3]);
        } else {
            float4 *o = reinterpret_cast<float4 *>(out) + 2 * c;
            o[0] = make_float4(v[0], v[1], v[2], v[3]);
            o[1] = make_float4(v[4], v[5], v[6], v[7]);
        }
    }
}

extern "C" lq_status kn_mxfp4_dequant(const kn_mxfp4_dequant_args *a, cudaStream_t stream)
{
    if (!a || !a->packed || !a->scales || !a->out || a->n % LQ_MXFP4_BLOCK != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    if (((uintptr_t)a->packed | (uintptr_t)a->out) % 16 != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    uint64_t nchunks = a->n / 8;
    if (nchunks == 0)
        return LQ_OK;
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        return LQ_ERR_CUDA;
    const int threads = 256;
    uint64_t want = (nchunks + threads - 1) / threads, cap = (uint64_t)sms * 16;
    unsigned grid = (unsigned)(want < cap ? want : cap);
    if (a->out_bf16)
        mxfp4_dequant_kernel<1><<<grid, threads, 0, stream>>>((const uint32_t *)a->packed, a->scales, a->out, nchunks);
    else
        mxfp4_dequant_kernel<0><<<grid, threads, 0, stream>>>((const uint32_t *)a->packed, a->scales, a->out, nchunks);
    return cudaGetLastError() == cudaSuccess ? LQ_OK : LQ_ERR_CUDA;
}
