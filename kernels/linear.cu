/* Linear layers from stored formats (linear.h).
 *
 * The MMA path's data layout: mma.m16n8k16 multiplies a 16 x 16 weight tile by a 16 x 8 token
 * tile. A dot product may add its terms in any order as long as the weight and the activation
 * use the same one, so the 16 k-slots of one MMA are mapped onto memory to suit the loads: lane
 * (g = lane / 4, q = lane % 4) owns weight rows g and g + 8 and, within a chunk of 128 columns,
 * the 32 columns 32q .. 32q + 31 (for MXFP4 exactly one scale block: one 16-byte load of codes and
 * one scale byte per row). MMA step s (0..7) then takes the thread's columns 32q + 4s .. + 3 as its
 * k-slots {2q, 2q + 1, 2q + 8, 2q + 9}, for the weights and for the activations alike. */
#include "linear.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "libquant/fp_formats.h"

namespace {

struct wdesc {
    int fmt;
    uint32_t rows, cols, experts;
    const uint8_t *w;
    uint64_t w_stride;
    const uint8_t *mx;
    uint64_t s_stride;
    const float *fs;
    const uint32_t *srow;
    uint32_t scols;
};

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t b) { return __uint_as_float(b << 16); }

__device__ __forceinline__ float fp8_value(int fmt, uint8_t b) { return fmt == KN_W_E4M3 ? lq_e4m3_decode(b) : lq_e5m2_decode(b); }

/* One weight element as the CPU decodes it (linear.c's rt_linear_rows): exact formats in f32, FP8
 * value x scale and MXFP4 code x E8M0 as one f32 product. */
__device__ __forceinline__ float wval(const wdesc &W, const uint8_t *wb, const uint8_t *sb, const float *fsb, uint32_t r,
                                      uint32_t k)
{
    const uint64_t i = (uint64_t)r * W.cols + k;
    switch (W.fmt) {
    case KN_W_BF16:
        return bf16_bits_to_f32(reinterpret_cast<const uint16_t *>(wb)[i]);
    case KN_W_F16:
        return __half2float(__ushort_as_half(reinterpret_cast<const uint16_t *>(wb)[i]));
    case KN_W_F32:
        return reinterpret_cast<const float *>(wb)[i];
    case KN_W_E4M3:
    case KN_W_E5M2:
        return fp8_value(W.fmt, wb[i]) * fsb[(uint64_t)W.srow[r] * W.scols + k / 128];
    default: {
        uint8_t byte = wb[i >> 1];
        return lq_e2m1_decode((i & 1) ? byte >> 4 : byte & 0xF) * lq_e8m0_decode(sb[(uint64_t)r * (W.cols / 32) + k / 32]);
    }
    }
}

/* 32 weight values of row r from column k0 (valid of them real, the rest 0) as 16 bf16 pairs. */
template <int FMT>
__device__ __forceinline__ void load_w32(const wdesc &W, const uint8_t *wb, const uint8_t *sb, uint32_t r, uint32_t k0,
                                         uint32_t valid, bool vec, const float *lut, uint32_t v[16])
{
#pragma unroll
    for (int i = 0; i < 16; i++)
        v[i] = 0;
    if (valid == 0)
        return;
    if (FMT == KN_W_MXFP4) { /* cols % 32 == 0: always a whole aligned block */
        uint4 u = __ldg(reinterpret_cast<const uint4 *>(wb + (uint64_t)r * (W.cols / 2) + k0 / 2));
        float s = lq_e8m0_decode(__ldg(sb + (uint64_t)r * (W.cols / 32) + k0 / 32));
        uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int w = 0; w < 4; w++)
#pragma unroll
            for (int b = 0; b < 4; b++) {
                uint32_t byte = (words[w] >> (8 * b)) & 0xFFu;
                v[w * 4 + b] = pack_bf16x2(lut[byte & 0xF] * s, lut[byte >> 4] * s);
            }
        return;
    }
    const uint64_t base = (uint64_t)r * W.cols + k0;
    if (FMT == KN_W_BF16) {
        const uint16_t *p = reinterpret_cast<const uint16_t *>(wb) + base;
        if (vec && valid == 32) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                uint4 u = __ldg(reinterpret_cast<const uint4 *>(p) + i);
                v[4 * i] = u.x, v[4 * i + 1] = u.y, v[4 * i + 2] = u.z, v[4 * i + 3] = u.w;
            }
        } else {
#pragma unroll
            for (int i = 0; i < 32; i++)
                if ((uint32_t)i < valid)
                    v[i / 2] |= (uint32_t)__ldg(p + i) << (16 * (i & 1));
        }
    } else if (FMT == KN_W_F16) {
        const uint16_t *p = reinterpret_cast<const uint16_t *>(wb) + base;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            float lo = (uint32_t)(2 * i) < valid ? __half2float(__ushort_as_half(__ldg(p + 2 * i))) : 0.0f;
            float hi = (uint32_t)(2 * i + 1) < valid ? __half2float(__ushort_as_half(__ldg(p + 2 * i + 1))) : 0.0f;
            v[i] = pack_bf16x2(lo, hi);
        }
    } else if (FMT == KN_W_F32) {
        const float *p = reinterpret_cast<const float *>(wb) + base;
        if (vec && valid == 32) {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 f = __ldg(reinterpret_cast<const float4 *>(p) + i);
                v[2 * i] = pack_bf16x2(f.x, f.y), v[2 * i + 1] = pack_bf16x2(f.z, f.w);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 16; i++) {
                float lo = (uint32_t)(2 * i) < valid ? __ldg(p + 2 * i) : 0.0f;
                float hi = (uint32_t)(2 * i + 1) < valid ? __ldg(p + 2 * i + 1) : 0.0f;
                v[i] = pack_bf16x2(lo, hi);
            }
        }
    } else { /* FP8: the raw value, exact in bf16; the block scale is applied per 128-chunk */
        const uint8_t *p = wb + base;
        if (vec && valid == 32) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                uint4 u = __ldg(reinterpret_cast<const uint4 *>(p) + h);
                uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int w = 0; w < 4; w++) {
                    uint32_t x = words[w];
                    v[h * 8 + w * 2] = pack_bf16x2(fp8_value(FMT, x & 0xFF), fp8_value(FMT, (x >> 8) & 0xFF));
                    v[h * 8 + w * 2 + 1] = pack_bf16x2(fp8_value(FMT, (x >> 16) & 0xFF), fp8_value(FMT, x >> 24));
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < 16; i++) {
                float lo = (uint32_t)(2 * i) < valid ? fp8_value(FMT, __ldg(p + 2 * i)) : 0.0f;
                float hi = (uint32_t)(2 * i + 1) < valid ? fp8_value(FMT, __ldg(p + 2 * i + 1)) : 0.0f;
                v[i] = pack_bf16x2(lo, hi);
            }
        }
    }
}

/* 32 bf16 activations of one row from column k0 (valid real, the rest 0). */
__device__ __forceinline__ void load_x32(const uint16_t *p, uint32_t valid, uint32_t v[16])
{
    if (valid == 32) { /* rows are 16-byte aligned (ldx % 8 == 0) and k0 % 32 == 0 */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 u = *(reinterpret_cast<const uint4 *>(p) + i);
            v[4 * i] = u.x, v[4 * i + 1] = u.y, v[4 * i + 2] = u.z, v[4 * i + 3] = u.w;
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 16; i++)
        v[i] = 0;
#pragma unroll
    for (int i = 0; i < 32; i++)
        if ((uint32_t)i < valid)
            v[i / 2] |= (uint32_t)p[i] << (16 * (i & 1));
}

__device__ __forceinline__ void mma_bf16(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

#define TILES (KN_LINEAR_MAX_ROWS / 8)

template <int FMT>
__global__ void __launch_bounds__(128) linear_mma(wdesc W, const uint16_t *__restrict__ x, uint32_t ldx, uint32_t n,
                                                  float *__restrict__ y, uint32_t ldy, const float *__restrict__ bias,
                                                  const int32_t *gexp, const int32_t *goff, const int32_t *gcnt,
                                                  const int32_t *xmap, bool vec)
{
    constexpr bool FP8 = FMT == KN_W_E4M3 || FMT == KN_W_E5M2;
    __shared__ float red[4][TILES * 4][32];
    __shared__ float lut[16];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    uint32_t e = 0, off = 0, cnt = n;
    if (gcnt) {
        int c = gcnt[blockIdx.y];
        if (c <= 0 || gexp[blockIdx.y] < 0 || (uint32_t)gexp[blockIdx.y] >= W.experts)
            return; /* the whole block: nothing to do in this slot */
        cnt = (uint32_t)c < KN_LINEAR_MAX_ROWS ? (uint32_t)c : KN_LINEAR_MAX_ROWS;
        e = (uint32_t)gexp[blockIdx.y], off = (uint32_t)goff[blockIdx.y];
    }
    if (threadIdx.x < 16)
        lut[threadIdx.x] = lq_e2m1_decode(threadIdx.x);
    __syncthreads();
    const uint8_t *wb = W.w + (uint64_t)e * W.w_stride;
    const uint8_t *sb = W.mx ? W.mx + (uint64_t)e * W.s_stride : nullptr;
    const float *fsb = W.fs ? W.fs + (uint64_t)e * W.s_stride : nullptr;
    const uint32_t r0 = blockIdx.x * 16, ra = r0 + g, rb = r0 + g + 8;
    const int nt = (int)((cnt + 7) / 8);
    const uint32_t K = W.cols, nchunks = (K + 127) / 128;
    /* the x row of this lane's token column in each tile (-1: padding) */
    int64_t xr[TILES];
#pragma unroll
    for (int j = 0; j < TILES; j++) {
        uint32_t t = (uint32_t)j * 8 + (uint32_t)g;
        xr[j] = t < cnt ? (int64_t)(xmap ? xmap[off + t] : (int32_t)(off + t)) : -1;
    }
    float acc[TILES][4];
#pragma unroll
    for (int j = 0; j < TILES; j++)
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    for (uint32_t c = (uint32_t)warp; c < nchunks; c += 4) {
        const uint32_t k0 = c * 128 + 32 * (uint32_t)q;
        const uint32_t valid = k0 < K ? (K - k0 < 32 ? K - k0 : 32) : 0;
        uint32_t wa[16], wbv[16];
        load_w32<FMT>(W, wb, sb, ra, k0, ra < W.rows ? valid : 0, vec, lut, wa);
        load_w32<FMT>(W, wb, sb, rb, k0, rb < W.rows ? valid : 0, vec, lut, wbv);
        float tmp[TILES][4];
#pragma unroll
        for (int j = 0; j < TILES; j++) {
            if (j < nt) {
                uint32_t b[16];
                if (xr[j] >= 0)
                    load_x32(x + (uint64_t)xr[j] * ldx + k0, valid, b);
                else {
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        b[i] = 0;
                }
                float *d = FP8 ? tmp[j] : acc[j];
                if (FP8)
                    d[0] = d[1] = d[2] = d[3] = 0.0f;
#pragma unroll
                for (int s = 0; s < 8; s++)
                    mma_bf16(d, wa[2 * s], wbv[2 * s], wa[2 * s + 1], wbv[2 * s + 1], b[2 * s], b[2 * s + 1]);
            }
        }
        if (FP8) {
            float sa = ra < W.rows ? fsb[(uint64_t)W.srow[ra] * W.scols + c] : 0.0f;
            float sbb = rb < W.rows ? fsb[(uint64_t)W.srow[rb] * W.scols + c] : 0.0f;
#pragma unroll
            for (int j = 0; j < TILES; j++)
                if (j < nt) {
                    acc[j][0] += tmp[j][0] * sa, acc[j][1] += tmp[j][1] * sa;
                    acc[j][2] += tmp[j][2] * sbb, acc[j][3] += tmp[j][3] * sbb;
                }
        }
    }
#pragma unroll
    for (int j = 0; j < TILES; j++)
        if (j < nt)
#pragma unroll
            for (int r = 0; r < 4; r++)
                red[warp][j * 4 + r][lane] = acc[j][r];
    __syncthreads();
    for (int idx = threadIdx.x; idx < nt * 4 * 32; idx += 128) {
        const int jr = idx >> 5, l = idx & 31, j = jr >> 2, r = jr & 3;
        const float v = ((red[0][jr][l] + red[1][jr][l]) + red[2][jr][l]) + red[3][jr][l];
        const uint32_t row = r0 + (uint32_t)(l >> 2) + (r >= 2 ? 8u : 0u);
        const uint32_t t = (uint32_t)j * 8 + 2u * (uint32_t)(l & 3) + (uint32_t)(r & 1);
        if (row < W.rows && t < cnt)
            y[(uint64_t)(off + t) * ldy + row] = bias ? v + bias[row] : v;
    }
}

/* fp32 activations: one warp per weight row, 8 tokens at a time, lane-strided columns and a fixed
 * butterfly reduction. */
__global__ void __launch_bounds__(128) linear_f32(wdesc W, const float *__restrict__ x, uint32_t ldx, uint32_t n,
                                                  float *__restrict__ y, uint32_t ldy, const float *__restrict__ bias,
                                                  const int32_t *gexp, const int32_t *goff, const int32_t *gcnt,
                                                  const int32_t *xmap)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const uint32_t row = blockIdx.x * 4 + (uint32_t)warp;
    uint32_t e = 0, off = 0, cnt = n;
    if (gcnt) {
        int c = gcnt[blockIdx.y];
        if (c <= 0 || gexp[blockIdx.y] < 0 || (uint32_t)gexp[blockIdx.y] >= W.experts)
            return;
        cnt = (uint32_t)c < KN_LINEAR_MAX_ROWS ? (uint32_t)c : KN_LINEAR_MAX_ROWS;
        e = (uint32_t)gexp[blockIdx.y], off = (uint32_t)goff[blockIdx.y];
    }
    if (row >= W.rows)
        return;
    const uint8_t *wb = W.w + (uint64_t)e * W.w_stride;
    const uint8_t *sb = W.mx ? W.mx + (uint64_t)e * W.s_stride : nullptr;
    const float *fsb = W.fs ? W.fs + (uint64_t)e * W.s_stride : nullptr;
    for (uint32_t t0 = 0; t0 < cnt; t0 += 8) {
        const float *xp[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint32_t t = t0 + (uint32_t)j;
            xp[j] = t < cnt ? x + (uint64_t)(xmap ? xmap[off + t] : (int32_t)(off + t)) * ldx : nullptr;
        }
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (uint32_t k = (uint32_t)lane; k < W.cols; k += 32) {
            const float wv = wval(W, wb, sb, fsb, row, k);
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (xp[j])
                    acc[j] = fmaf(wv, xp[j][k], acc[j]);
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float v = acc[j];
#pragma unroll
            for (int m = 16; m >= 1; m >>= 1)
                v += __shfl_xor_sync(0xFFFFFFFFu, v, m);
            if (lane == 0 && xp[j])
                y[(uint64_t)(off + t0 + (uint32_t)j) * ldy + row] = bias ? v + bias[row] : v;
        }
    }
}

__global__ void embed_kernel(wdesc W, const int32_t *__restrict__ tokens, float *__restrict__ out, uint32_t ldo)
{
    const uint32_t r = (uint32_t)tokens[blockIdx.x];
    if (r >= W.rows)
        return;
    for (uint32_t k = threadIdx.x; k < W.cols; k += blockDim.x)
        out[(uint64_t)blockIdx.x * ldo + k] = wval(W, W.w, W.mx, W.fs, r, k);
}

__global__ void to_bf16_kernel(const float *__restrict__ x, uint32_t ldx, uint16_t *__restrict__ out, uint32_t ldo,
                               uint32_t cols)
{
    for (uint32_t k = threadIdx.x; k < cols; k += blockDim.x) {
        __nv_bfloat16 h = __float2bfloat16_rn(x[(uint64_t)blockIdx.x * ldx + k]);
        out[(uint64_t)blockIdx.x * ldo + k] = *reinterpret_cast<uint16_t *>(&h);
    }
}

lq_status check_weight(const kn_weight *W, const char *op, lq_error *err)
{
    if (!W || !W->w || !W->rows || !W->cols || !W->experts)
        return kn_arg_fail(err, op, "weight: NULL data or an empty shape");
    if ((int)W->fmt < KN_W_BF16 || (int)W->fmt > KN_W_MXFP4)
        return kn_arg_fail(err, op, "weight: unknown format %d", (int)W->fmt);
    if (W->fmt == KN_W_MXFP4 && (W->cols % 32 || !W->mx_scales))
        return kn_arg_fail(err, op, "MXFP4 weight: cols %u not a multiple of 32 or no scales", W->cols);
    if ((W->fmt == KN_W_E4M3 || W->fmt == KN_W_E5M2) && (!W->fp8_scale || !W->fp8_srow || W->scols != (W->cols + 127) / 128))
        return kn_arg_fail(err, op, "FP8 weight: scale grid missing or %u scale columns for %u columns", W->scols, W->cols);
    if (W->experts > 1 && !W->w_stride)
        return kn_arg_fail(err, op, "weight of %u experts with no expert stride", W->experts);
    return LQ_OK;
}

wdesc make_desc(const kn_weight *W)
{
    wdesc d;
    d.fmt = (int)W->fmt, d.rows = W->rows, d.cols = W->cols, d.experts = W->experts;
    d.w = static_cast<const uint8_t *>(W->w), d.w_stride = W->w_stride, d.mx = W->mx_scales, d.s_stride = W->s_stride;
    d.fs = W->fp8_scale, d.srow = W->fp8_srow, d.scols = W->scols;
    return d;
}

/* Whether 16-byte weight loads are aligned for every row (and expert). */
bool weight_vec(const kn_weight *W)
{
    uint64_t rb;
    switch (W->fmt) {
    case KN_W_BF16:
    case KN_W_F16:
        rb = (uint64_t)W->cols * 2;
        break;
    case KN_W_F32:
        rb = (uint64_t)W->cols * 4;
        break;
    case KN_W_MXFP4:
        rb = (uint64_t)W->cols / 2;
        break;
    default:
        rb = W->cols;
    }
    return KN_ALIGNED(W->w, 16) && rb % 16 == 0 && W->w_stride % 16 == 0;
}

} // namespace

extern "C" lq_status kn_linear(const kn_ctx *k, const kn_linear_args *a, lq_error *err)
{
    const char *op = "linear";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    lq_status st = check_weight(a->W, op, err);
    if (st != LQ_OK)
        return st;
    const kn_weight *W = a->W;
    if (!a->x || !a->y)
        return kn_arg_fail(err, op, "NULL x or y");
    if (a->ldx < W->cols || a->ldy < W->rows)
        return kn_arg_fail(err, op, "ldx %u < cols %u or ldy %u < rows %u", a->ldx, W->cols, a->ldy, W->rows);
    if (!a->x_f32 && (a->ldx % 8 || !KN_ALIGNED(a->x, 16)))
        return kn_arg_fail(err, op, "bf16 x must have 16-byte aligned rows (ldx %u)", a->ldx);
    const int grouped = a->gcnt != NULL;
    if (grouped && (!a->gexp || !a->goff || !a->slots || a->slots > 65535))
        return kn_arg_fail(err, op, "expert groups need gexp, goff, gcnt and 1..65535 slots (%u)", a->slots);
    if (!grouped && (a->gexp || a->goff || a->xmap || a->slots))
        return kn_arg_fail(err, op, "group arrays without gcnt");
    if (!grouped && W->experts != 1)
        return kn_arg_fail(err, op, "a weight of %u experts used as a plain layer", W->experts);
    if (!grouped && a->n > KN_LINEAR_MAX_ROWS)
        return kn_arg_fail(err, op, "%u rows (at most %d per launch)", a->n, KN_LINEAR_MAX_ROWS);
    if (a->n == 0)
        return LQ_OK;
    const wdesc d = make_desc(W);
    const unsigned gy = grouped ? a->slots : 1;
    if (a->x_f32) {
        dim3 grid((W->rows + 3) / 4, gy);
        linear_f32<<<grid, 128, 0, k->stream>>>(d, static_cast<const float *>(a->x), a->ldx, a->n, a->y, a->ldy, a->bias,
                                                a->gexp, a->goff, a->gcnt, a->xmap);
    } else {
        dim3 grid((W->rows + 15) / 16, gy);
        const uint16_t *x = static_cast<const uint16_t *>(a->x);
        const bool vec = weight_vec(W);
#define LAUNCH(F)                                                                                                      \
    linear_mma<F><<<grid, 128, 0, k->stream>>>(d, x, a->ldx, a->n, a->y, a->ldy, a->bias, a->gexp, a->goff, a->gcnt,    \
                                              a->xmap, vec)
        switch (W->fmt) {
        case KN_W_BF16: LAUNCH(KN_W_BF16); break;
        case KN_W_F16: LAUNCH(KN_W_F16); break;
        case KN_W_F32: LAUNCH(KN_W_F32); break;
        case KN_W_E4M3: LAUNCH(KN_W_E4M3); break;
        case KN_W_E5M2: LAUNCH(KN_W_E5M2); break;
        case KN_W_MXFP4: LAUNCH(KN_W_MXFP4); break;
        }
#undef LAUNCH
    }
    return kn_launched(op, err);
}

extern "C" lq_status kn_embed(const kn_ctx *k, const kn_embed_args *a, lq_error *err)
{
    const char *op = "embed";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    lq_status st = check_weight(a->W, op, err);
    if (st != LQ_OK)
        return st;
    if (!a->tokens || !a->out || a->ldo < a->W->cols || a->W->experts != 1)
        return kn_arg_fail(err, op, "NULL tokens/out, ldo %u < cols %u, or an expert weight", a->ldo, a->W->cols);
    if (a->n == 0)
        return LQ_OK;
    embed_kernel<<<a->n, 256, 0, k->stream>>>(make_desc(a->W), a->tokens, a->out, a->ldo);
    return kn_launched(op, err);
}

extern "C" lq_status kn_to_bf16(const kn_ctx *k, const kn_to_bf16_args *a, lq_error *err)
{
    const char *op = "to_bf16";
    if (!k || !a || !a->x || !a->out || a->ldx < a->cols || a->ldo < a->cols)
        return kn_arg_fail(err, op, "NULL buffers or strides below cols");
    if (a->n == 0 || a->cols == 0)
        return LQ_OK;
    to_bf16_kernel<<<a->n, 256, 0, k->stream>>>(a->x, a->ldx, a->out, a->ldo, a->cols);
    return kn_launched(op, err);
}
