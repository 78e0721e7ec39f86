/* The low-bit number formats, defined once for C and CUDA (reference/mxfp4_formats.md 1.1-1.3,
 * 4.1): the MXFP4 block, E2M1 elements, E8M0 scales, and the FP8 element types E4M3 (e4m3fn) and
 * E5M2. libquant's codec, its metrics and value checks, and the kernels all decode through this
 * header, so no decoder is typed twice.
 *
 * Every decoder here is exact: a normal result is assembled from its IEEE binary32 bits, a
 * subnormal one is an integer times a power of two, so nothing rounds. The functions are
 * `static inline` and, when compiled by nvcc, `__host__ __device__` as well. The only
 * dependencies are <stdint.h> and, in host code, <string.h> (memcpy is C's defined bit cast;
 * device code uses __uint_as_float). */
#ifndef LIBQUANT_FP_FORMATS_H
#define LIBQUANT_FP_FORMATS_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define LQ_FP_FN static __host__ __device__ __forceinline__
#define LQ_FP_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define LQ_FP_FN static inline
#define LQ_FP_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- MXFP4 block (OCP MX v1.0; gpt-oss / MiMo-FP4 byte order) ----
 * 32 elements share one E8M0 scale byte; their E2M1 codes fill 16 bytes, byte j holding element
 * 2j in the low nibble and element 2j + 1 in the high nibble. Codes and scales are stored as two
 * tensors ([rows, cols/2] and [rows, cols/32]), so a block is 16 + 1 bytes but not a struct. */
#define LQ_MXFP4_BLOCK 32        /* elements per block */
#define LQ_MXFP4_BLOCK_BYTES 16  /* code bytes per block */
#define LQ_MXFP4_SCALE_BYTES 1   /* scale bytes per block */

LQ_FP_STATIC_ASSERT(LQ_MXFP4_BLOCK_BYTES * 2 == LQ_MXFP4_BLOCK, "two E2M1 codes per byte");
LQ_FP_STATIC_ASSERT(LQ_MXFP4_BLOCK_BYTES + LQ_MXFP4_SCALE_BYTES == 17, "17 bytes per 32 elements");
LQ_FP_STATIC_ASSERT(sizeof(float) == 4 && sizeof(uint32_t) == 4, "binary32 floats");

/* Code c of the block (0 <= i < 32) from its 16 code bytes. */
LQ_FP_FN unsigned lq_mxfp4_code(const uint8_t *codes, unsigned i)
{
    return (unsigned)(codes[i >> 1] >> ((i & 1u) * 4u)) & 0xFu;
}

/* ---- bit casts ---- */

LQ_FP_FN float lq_fp_from_bits(uint32_t u)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

LQ_FP_FN uint32_t lq_fp_to_bits(float f)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

/* ---- E2M1 (FP4 element: S EE M, bias 1, no inf, no NaN, -0 is code 8) ----
 * The values of codes 0..15. The list is written once, here, as an initializer: the host table
 * below, the CUDA __constant__ copy and libquant's exported lq_fp4_values are all filled from it.
 * The magnitude code (code & 7) is monotone in |value|. */
#define LQ_E2M1_VALUES                                                                              \
    {                                                                                               \
        0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f,   \
            -4.0f, -6.0f                                                                            \
    }
#define LQ_E2M1_MAX 6.0f
#define LQ_E2M1_MAG_MASK 0x7u
#define LQ_E2M1_SIGN 0x8u

static const float lq_e2m1_values[16] = LQ_E2M1_VALUES;
#if defined(__CUDACC__)
static __constant__ float lq_e2m1_values_dev[16] = LQ_E2M1_VALUES;
#endif

/* Value of code c (its low 4 bits). */
LQ_FP_FN float lq_e2m1_decode(unsigned c)
{
#if defined(__CUDA_ARCH__)
    return lq_e2m1_values_dev[c & 0xFu];
#else
    return lq_e2m1_values[c & 0xFu];
#endif
}

/* ---- E8M0 (scale: 2^(b - 127), unsigned, no zero, no inf, 0xFF = NaN) ---- */
#define LQ_E8M0_NAN 0xFFu
#define LQ_E8M0_BIAS 127

/* 2^(b - 127): b >= 1 is the exponent field b << 23 (exact); b = 0 is 2^-127, the f32 subnormal
 * 0x00400000; 0xFF is NaN (0x7FC00000). */
LQ_FP_FN float lq_e8m0_decode(uint8_t b)
{
    return lq_fp_from_bits(b == 0u ? 0x00400000u : (b == 0xFFu ? 0x7FC00000u : (uint32_t)b << 23));
}

/* The exact reciprocal 2^(127 - b): b = 1..253 is (254 - b) << 23; b = 0 is 2^127; b = 254 is
 * 2^-127 (subnormal 0x00400000); 0xFF is NaN. */
LQ_FP_FN float lq_e8m0_recip(uint8_t b)
{
    return lq_fp_from_bits(b == 0xFFu ? 0x7FC00000u : (b == 0xFEu ? 0x00400000u : (uint32_t)(254u - b) << 23));
}

/* ---- E4M3 (OCP e4m3fn: bias 7, no inf, NaN = S.1111.111, max 448) ---- */
#define LQ_E4M3_MAX 448.0f
#define LQ_E4M3_NAN_MASK 0x7Fu /* (b & mask) == mask: NaN (0x7F, 0xFF) */

/* Whether byte b is the NaN code (0x7F or 0xFF); every other code is finite. The magnitude
 * b & 0x7F is monotone in |value|, NaN at the top. */
LQ_FP_FN int lq_e4m3_is_nan(uint8_t b)
{
    return (b & LQ_E4M3_NAN_MASK) == LQ_E4M3_NAN_MASK;
}

/* NaN -> 0x7FC00000 with b's sign; subnormal M/8 * 2^-6 = M * 2^-9. */
LQ_FP_FN float lq_e4m3_decode(uint8_t b)
{
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t e = (b >> 3) & 0xFu, m = b & 0x7u;
    if (e == 15u && m == 7u)
        return lq_fp_from_bits(sign | 0x7FC00000u);
    if (e == 0u)
        return lq_fp_from_bits(lq_fp_to_bits((float)m * 0x1p-9f) | sign);
    return lq_fp_from_bits(sign | ((e + 120u) << 23) | (m << 20));
}

/* ---- E5M2 (IEEE-like: bias 15, exponent 31 is inf (M = 0) or NaN, max 57344) ---- */
#define LQ_E5M2_MAX 57344.0f
#define LQ_E5M2_NONFINITE_MASK 0x7Cu /* (b & mask) == mask: inf or NaN */

/* Whether byte b is inf or NaN (exponent field all ones). The magnitude b & 0x7F is monotone in
 * |value|, inf and NaN at the top. */
LQ_FP_FN int lq_e5m2_is_nonfinite(uint8_t b)
{
    return (b & LQ_E5M2_NONFINITE_MASK) == LQ_E5M2_NONFINITE_MASK;
}

/* inf keeps its sign; NaN -> the quiet NaN 0x7FC00000 with b's sign (what ml_dtypes returns);
 * subnormal M/4 * 2^-14 = M * 2^-16. */
LQ_FP_FN float lq_e5m2_decode(uint8_t b)
{
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t e = (b >> 2) & 0x1Fu, m = b & 0x3u;
    if (e == 0u)
        return lq_fp_from_bits(lq_fp_to_bits((float)m * 0x1p-16f) | sign);
    if (e == 31u)
        return lq_fp_from_bits(sign | (m ? 0x7FC00000u : 0x7F800000u));
    return lq_fp_from_bits(sign | ((e + 112u) << 23) | (m << 21));
}

#endif
