/* MXFP4 codec (mxfp4.h): E2M1 elements, E8M0 scale per 32 values, gpt-oss nibble order.
 *
 * Scale without log2/pow: the block maximum is the largest |x| bit pattern (the integer order of
 * non-negative IEEE floats is their numeric order), so floor(log2 amax) is its exponent field
 * and every rule of reference/mxfp4_formats.md 1.5 is a test on its mantissa field:
 *   FLOOR  e = E - 2
 *   RCEIL  e = E - 2 + (significand > 1.5)     [the smallest e with amax <= 6 * 2^e]
 *   EVEN   e = E - 2 + (significand >= 1.75)   [amax rounded half-up to one mantissa bit]
 * RCEIL is derived from its definition ceil(log2(amax / 6)) rather than from the bits of a
 * rounded amax / 6: the two agree for normal quotients, and the definition stays exact when the
 * quotient is an f32 subnormal (tiny blocks then get scale 0x00, not 0x01).
 *
 * Elements: y = |x| * 2^-e is a multiplication by a power of two, exact wherever it matters (a y
 * that can round to a non-zero code is a normal float). The code is the number of
 * round-to-nearest decision points (1.2) that y passes: strict '>' at the points whose tie goes
 * down to the even code (0.25, 1.25, 2.5, 5) and '>=' where the tie goes up (0.75, 1.75, 3.5).
 * Past 5 the code is 7, which is the saturation at 6. The SIMD kernels below do the same test
 * in 16-bit integer lanes without multiplying (see there).
 *
 * MSE compares floor (e) with e + 1 by the exact difference of squared errors, in units of 4^e:
 * with q0 = Q(y) and q1 = 2 Q(y / 2),
 *   sum (y - q1)^2 - (y - q0)^2 = sum (q0 - q1) (2y - q0 - q1).
 * Each non-zero term is a multiple of 2^-25 below 2^6 (y > 0.25 has a 24-bit significand), so
 * the double sum of 32 terms is exact in any order and a tie really is a tie (-> floor). Only
 * elements with y > 7 make a term negative (for y <= 6 the e + 1 grid is a subset of the e grid;
 * in (6, 7] both give 6; 7 ties to 8 on the coarse grid at equal error), so a block whose
 * largest y is at most 7 keeps floor without the sum. */
#include "mxfp4.h"
#include "pool.h"

#include "internal/bits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float lq_fp4_values[16] = LQ_E2M1_VALUES;

const char *lq_mx_scale_mode_name(lq_mx_scale_mode m)
{
    switch (m) {
    case LQ_MX_SCALE_FLOOR: return "floor";
    case LQ_MX_SCALE_RCEIL: return "rceil";
    case LQ_MX_SCALE_EVEN: return "even";
    case LQ_MX_SCALE_MSE: return "mse";
    }
    return "invalid";
}

lq_status lq_mx_scale_mode_parse(const char *s, lq_mx_scale_mode *out)
{
    static const lq_mx_scale_mode modes[] = {LQ_MX_SCALE_FLOOR, LQ_MX_SCALE_RCEIL,
                                             LQ_MX_SCALE_EVEN, LQ_MX_SCALE_MSE};
    if (!s || !out)
        return LQ_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(s, lq_mx_scale_mode_name(modes[i])) == 0) {
            *out = modes[i];
            return LQ_OK;
        }
    }
    return LQ_ERR_INVALID_ARGUMENT;
}


/* Magnitude code 0..7 of y >= 0 (NaN gives 0). */
static inline uint32_t fp4_mag_code(float y)
{
    return (uint32_t)(y > 0.25f) + (uint32_t)(y >= 0.75f) + (uint32_t)(y > 1.25f) +
           (uint32_t)(y >= 1.75f) + (uint32_t)(y > 2.5f) + (uint32_t)(y >= 3.5f) +
           (uint32_t)(y > 5.0f);
}

uint8_t lq_fp4_encode(float v)
{
    uint32_t u = f32_bits(v);
    return (uint8_t)(((u >> 28) & 8u) | fp4_mag_code(bits_f32(u & 0x7FFFFFFFu)));
}

/* 2^-e as a float, e in [-127, 127]: the reciprocal of the E8M0 scale e + 127 (2^-127 is an
 * f32 subnormal). */
static inline float pow2_neg(int e)
{
    return lq_e8m0_recip((uint8_t)(e + 127));
}

static inline int clamp_exp(int e)
{
    return e < -127 ? -127 : (e > 127 ? 127 : e);
}

/* Exact SE(e + 1) - SE(e) of one block in units of 4^e, with s = 2^-e (see the top comment).
 * y / 2 is exact for every y that can round to a non-zero code. */
static double mse_delta(const float *xb, float s)
{
    double d = 0.0;
    for (int i = 0; i < LQ_MX_BLOCK; i++) {
        float y = fabsf(xb[i]) * s;
        float q0 = lq_fp4_values[fp4_mag_code(y)];
        float q1 = 2.0f * lq_fp4_values[fp4_mag_code(y * 0.5f)];
        d += ((double)q0 - (double)q1) * (2.0 * (double)y - (double)q0 - (double)q1);
    }
    return d;
}

/* ---- per-block kernels: largest |x| bit pattern, and encode + pack + count ----
 *
 * Three builds of the same arithmetic: portable C, SSE2 (every x86-64) and AVX2 (picked at run
 * time). LQ_MXFP4_ISA caps the choice at compile time (0 = C, 1 = SSE2, 2 = AVX2) so the tests
 * can build this file at each level and prove that all of them write the same bytes. Each
 * encoder returns, through cnt, the clipped count (y > 6) and the zeroed count (x != 0 but code
 * magnitude 0) of the block.
 *
 * The SIMD encoders never form y. For a decision point T, y > T is |x| > T 2^e. T has at most
 * two significant bits, so when e >= -124 the float T 2^e is normal and its bit pattern is
 * bits(T) + e 2^23, whose low 16 bits are zero; when T 2^e would overflow, that integer is at
 * least the inf pattern, above every finite |x|, which is again the right answer. Hence, with
 * k = ceil(bits(|x|) / 2^16) and h = floor(bits(|x|) / 2^16):
 *   y >  T  <=>  k - 128 e >  bits(T) >> 16
 *   y >= T  <=>  h - 128 e >= bits(T) >> 16
 * 16-bit lanes do twice the work of 32-bit ones per instruction. For the block's own e every
 * y is below 8, so k - 128 e and h - 128 e stay within [-16256, 0x4101] and never wrap. Blocks
 * with e < -124 (amax below 2^-122) use the portable encoder. The tops of the points (and of 6,
 * for the clip count): */
enum {
    MX_T025 = 0x3E80, /* 0.25 = 0x3E800000 */
    MX_T075 = 0x3F40, /* 0.75 = 0x3F400000 */
    MX_T125 = 0x3FA0, /* 1.25 = 0x3FA00000 */
    MX_T175 = 0x3FE0, /* 1.75 = 0x3FE00000 */
    MX_T250 = 0x4020, /* 2.5 = 0x40200000 */
    MX_T350 = 0x4060, /* 3.5 = 0x40600000 */
    MX_T500 = 0x40A0, /* 5 = 0x40A00000 */
    MX_T600 = 0x40C0  /* 6 = 0x40C00000 */
};
#define MX_INT_MIN_EXP (-124)

#ifndef LQ_MXFP4_ISA
#define LQ_MXFP4_ISA 2
#endif
#if LQ_MXFP4_ISA >= 1 && defined(__SSE2__)
#define MX_SSE2 1
#include <emmintrin.h>
#else
#define MX_SSE2 0
#endif
#if LQ_MXFP4_ISA >= 2 && MX_SSE2 && defined(__x86_64__) && defined(__GNUC__)
#define MX_AVX2 1
#include <immintrin.h>
#define MX_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define MX_AVX2 0
#endif
#if defined(__GNUC__)
#define MX_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define MX_ALWAYS_INLINE static inline
#endif

static inline uint32_t amax_c(const float *xb)
{
    uint32_t amax = 0;
    for (int i = 0; i < LQ_MX_BLOCK; i++) {
        uint32_t u;
        memcpy(&u, xb + i, sizeof u);
        u &= 0x7FFFFFFFu;
        amax = u > amax ? u : amax;
    }
    return amax;
}

static inline void encode_c(const float *xb, float s, uint8_t *pb, uint32_t cnt[2])
{
    uint32_t c[LQ_MX_BLOCK], nclip = 0, nzero = 0;
    for (int i = 0; i < LQ_MX_BLOCK; i++) {
        uint32_t u;
        memcpy(&u, xb + i, sizeof u);
        float y = bits_f32(u & 0x7FFFFFFFu) * s;
        uint32_t m = fp4_mag_code(y);
        c[i] = m | ((u >> 28) & 8u);
        nclip += (uint32_t)(y > 6.0f);
        nzero += (uint32_t)((u & 0x7FFFFFFFu) != 0) & (uint32_t)(m == 0);
    }
    for (int j = 0; j < LQ_MX_BLOCK / 2; j++)
        pb[j] = (uint8_t)(c[2 * j] | (c[2 * j + 1] << 4));
    cnt[0] = nclip;
    cnt[1] = nzero;
}

#if MX_SSE2
static inline uint32_t amax_sse2(const float *xb)
{
    const __m128 am = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
    __m128 a0 = _mm_and_ps(_mm_loadu_ps(xb), am), a1 = _mm_and_ps(_mm_loadu_ps(xb + 4), am);
    __m128 a2 = _mm_and_ps(_mm_loadu_ps(xb + 8), am), a3 = _mm_and_ps(_mm_loadu_ps(xb + 12), am);
    __m128 a4 = _mm_and_ps(_mm_loadu_ps(xb + 16), am), a5 = _mm_and_ps(_mm_loadu_ps(xb + 20), am);
    __m128 a6 = _mm_and_ps(_mm_loadu_ps(xb + 24), am), a7 = _mm_and_ps(_mm_loadu_ps(xb + 28), am);
    /* maxps is exact on finite values; NaN is found separately (unordered pairs). */
    __m128 m = _mm_max_ps(_mm_max_ps(_mm_max_ps(a0, a1), _mm_max_ps(a2, a3)),
                          _mm_max_ps(_mm_max_ps(a4, a5), _mm_max_ps(a6, a7)));
    __m128 un = _mm_or_ps(_mm_or_ps(_mm_cmpunord_ps(a0, a1), _mm_cmpunord_ps(a2, a3)),
                          _mm_or_ps(_mm_cmpunord_ps(a4, a5), _mm_cmpunord_ps(a6, a7)));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    if (_mm_movemask_ps(un))
        return 0x7FFFFFFFu;
    return f32_bits(_mm_cvtss_f32(m));
}

/* mse_delta() on 4 lanes at a time. q0 and q1 = 2 Q(y / 2) are sums of masked constants, and
 * q0 - q1, q0 + q1 are exact in f32; the product and the sum are formed in double, where they
 * are exact too, so the result equals the scalar one bit for bit. */
static inline double mse_delta_sse2(const float *xb, float s)
{
    const __m128 am = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
    const __m128 h = _mm_set1_ps(0.5f), one = _mm_set1_ps(1.0f), two = _mm_set1_ps(2.0f);
    __m128 sv = _mm_set1_ps(s);
    __m128d acc = _mm_setzero_pd();
    for (int k = 0; k < 8; k++) {
        __m128 y = _mm_mul_ps(_mm_and_ps(_mm_loadu_ps(xb + 4 * k), am), sv);
        __m128 q0 = _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(0.25f)), h);
        q0 = _mm_add_ps(q0, _mm_and_ps(_mm_cmpnlt_ps(y, _mm_set1_ps(0.75f)), h));
        q0 = _mm_add_ps(q0, _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(1.25f)), h));
        q0 = _mm_add_ps(q0, _mm_and_ps(_mm_cmpnlt_ps(y, _mm_set1_ps(1.75f)), h));
        q0 = _mm_add_ps(q0, _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(2.5f)), one));
        q0 = _mm_add_ps(q0, _mm_and_ps(_mm_cmpnlt_ps(y, _mm_set1_ps(3.5f)), one));
        q0 = _mm_add_ps(q0, _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(5.0f)), two));
        __m128 q1 = _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(0.5f)), one);
        q1 = _mm_add_ps(q1, _mm_and_ps(_mm_cmpnlt_ps(y, _mm_set1_ps(1.5f)), one));
        q1 = _mm_add_ps(q1, _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(2.5f)), one));
        q1 = _mm_add_ps(q1, _mm_and_ps(_mm_cmpnlt_ps(y, _mm_set1_ps(3.5f)), one));
        q1 = _mm_add_ps(q1, _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(5.0f)), two));
        q1 = _mm_add_ps(q1, _mm_and_ps(_mm_cmpnlt_ps(y, _mm_set1_ps(7.0f)), two));
        q1 = _mm_add_ps(q1, _mm_and_ps(_mm_cmpnle_ps(y, _mm_set1_ps(10.0f)), _mm_set1_ps(4.0f)));
        __m128 d = _mm_sub_ps(q0, q1), t = _mm_add_ps(q0, q1);
        __m128d ylo = _mm_cvtps_pd(y), yhi = _mm_cvtps_pd(_mm_movehl_ps(y, y));
        __m128d dlo = _mm_cvtps_pd(d), dhi = _mm_cvtps_pd(_mm_movehl_ps(d, d));
        __m128d tlo = _mm_cvtps_pd(t), thi = _mm_cvtps_pd(_mm_movehl_ps(t, t));
        acc = _mm_add_pd(acc, _mm_mul_pd(dlo, _mm_sub_pd(_mm_add_pd(ylo, ylo), tlo)));
        acc = _mm_add_pd(acc, _mm_mul_pd(dhi, _mm_sub_pd(_mm_add_pd(yhi, yhi), thi)));
    }
    acc = _mm_add_pd(acc, _mm_unpackhi_pd(acc, acc));
    return _mm_cvtsd_f64(acc);
}

/* Byte j = code(2j) | code(2j+1) << 4, from 32 codes held as 16 bytes each in b0 and b1. */
static inline __m128i pair_nibbles_sse2(__m128i b0, __m128i b1)
{
    const __m128i lo = _mm_set1_epi16(0x00FF);
    b0 = _mm_and_si128(_mm_or_si128(b0, _mm_srli_epi16(b0, 4)), lo);
    b1 = _mm_and_si128(_mm_or_si128(b1, _mm_srli_epi16(b1, 4)), lo);
    return _mm_packus_epi16(b0, b1);
}

/* t = (number of y > 0.25 or x == 0) + 64 * (number of y > 6) over the block. */
static inline void unpack_counts(uint32_t t, uint32_t cnt[2])
{
    cnt[0] = t >> 6;
    cnt[1] = LQ_MX_BLOCK - (t & 63u);
}

/* Codes of 8 elements in 16-bit lanes from k and h of the kernel comment, here taken from x
 * with its sign (bit 15): the sign-extending shifts keep the signed packs exact, and adding
 * 0xFFFF never carries into the sign for finite x. acc gathers (y > 0.25 or x == 0) + 64 (y > 6)
 * per lane; x == 0 exactly when k's magnitude is 0. */
static inline __m128i code8_sse2(__m128i k, __m128i h, __m128i eo, __m128i *acc)
{
    const __m128i m15 = _mm_set1_epi16(0x7FFF);
    __m128i c = _mm_and_si128(_mm_srai_epi16(h, 15), _mm_set1_epi16(8));
    __m128i ka = _mm_and_si128(k, m15);
    __m128i z = _mm_cmpeq_epi16(ka, _mm_setzero_si128());
    __m128i ky = _mm_sub_epi16(ka, eo), hy = _mm_sub_epi16(_mm_and_si128(h, m15), eo);
    __m128i g = _mm_cmpgt_epi16(ky, _mm_set1_epi16(MX_T025));
    c = _mm_sub_epi16(c, g);
    c = _mm_sub_epi16(c, _mm_cmpgt_epi16(hy, _mm_set1_epi16(MX_T075 - 1)));
    c = _mm_sub_epi16(c, _mm_cmpgt_epi16(ky, _mm_set1_epi16(MX_T125)));
    c = _mm_sub_epi16(c, _mm_cmpgt_epi16(hy, _mm_set1_epi16(MX_T175 - 1)));
    c = _mm_sub_epi16(c, _mm_cmpgt_epi16(ky, _mm_set1_epi16(MX_T250)));
    c = _mm_sub_epi16(c, _mm_cmpgt_epi16(hy, _mm_set1_epi16(MX_T350 - 1)));
    c = _mm_sub_epi16(c, _mm_cmpgt_epi16(ky, _mm_set1_epi16(MX_T500)));
    *acc = _mm_sub_epi16(*acc, _mm_or_si128(g, z));
    *acc = _mm_sub_epi16(*acc, _mm_slli_epi16(_mm_cmpgt_epi16(ky, _mm_set1_epi16(MX_T600)), 6));
    return c;
}

static inline __m128i code8_load_sse2(const float *p, __m128i eo, __m128i *acc)
{
    const __m128i r = _mm_set1_epi32(0xFFFF);
    __m128i u0 = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i u1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 4));
    __m128i k = _mm_packs_epi32(_mm_srai_epi32(_mm_add_epi32(u0, r), 16),
                                _mm_srai_epi32(_mm_add_epi32(u1, r), 16));
    __m128i h = _mm_packs_epi32(_mm_srai_epi32(u0, 16), _mm_srai_epi32(u1, 16));
    return code8_sse2(k, h, eo, acc);
}

static inline void encode_sse2(const float *xb, int e, uint8_t *pb, uint32_t cnt[2])
{
    __m128i eo = _mm_set1_epi16((short)(e * 128)), acc = _mm_setzero_si128();
    __m128i c0 = code8_load_sse2(xb, eo, &acc), c1 = code8_load_sse2(xb + 8, eo, &acc);
    __m128i c2 = code8_load_sse2(xb + 16, eo, &acc), c3 = code8_load_sse2(xb + 24, eo, &acc);
    __m128i out = pair_nibbles_sse2(_mm_packus_epi16(c0, c1), _mm_packus_epi16(c2, c3));
    _mm_storeu_si128((__m128i *)(void *)pb, out);
    acc = _mm_madd_epi16(acc, _mm_set1_epi16(1));
    acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(1, 0, 3, 2)));
    acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(2, 3, 0, 1)));
    unpack_counts((uint32_t)_mm_cvtsi128_si32(acc), cnt);
}
#endif

#if MX_AVX2
MX_TARGET_AVX2 static inline uint32_t amax_avx2(const float *xb)
{
    const __m256i am = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i a0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)xb), am);
    __m256i a1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(xb + 8)), am);
    __m256i a2 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(xb + 16)), am);
    __m256i a3 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(xb + 24)), am);
    /* Integer max of |x| patterns: NaN patterns are above inf, so one test finds both. */
    __m256i m = _mm256_max_epu32(_mm256_max_epu32(a0, a1), _mm256_max_epu32(a2, a3));
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1)));
    return (uint32_t)_mm_cvtsi128_si32(h);
}

/* mse_delta_sse2() on 8 lanes; q0 and q1 come from 8-entry tables indexed by the codes. */
MX_TARGET_AVX2 static inline double mse_delta_avx2(const float *xb, float s)
{
    const __m256 am = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 v0 = _mm256_loadu_ps(lq_e2m1_values);   /* E2M1 magnitudes of codes 0..7 */
    const __m256 v1 = _mm256_add_ps(v0, v0);              /* the same, doubled (exact) */
    __m256 sv = _mm256_set1_ps(s);
    __m256d acc = _mm256_setzero_pd();
    for (int k = 0; k < 4; k++) {
        __m256 y = _mm256_mul_ps(_mm256_and_ps(_mm256_loadu_ps(xb + 8 * k), am), sv);
#define MX_GT(t) _mm256_castps_si256(_mm256_cmp_ps(y, _mm256_set1_ps(t), _CMP_GT_OQ))
#define MX_GE(t) _mm256_castps_si256(_mm256_cmp_ps(y, _mm256_set1_ps(t), _CMP_GE_OQ))
        __m256i c0 = _mm256_add_epi32(_mm256_add_epi32(MX_GT(0.25f), MX_GE(0.75f)),
                                      _mm256_add_epi32(MX_GT(1.25f), MX_GE(1.75f)));
        c0 = _mm256_add_epi32(c0, _mm256_add_epi32(_mm256_add_epi32(MX_GT(2.5f), MX_GE(3.5f)),
                                                   MX_GT(5.0f)));
        __m256i c1 = _mm256_add_epi32(_mm256_add_epi32(MX_GT(0.5f), MX_GE(1.5f)),
                                      _mm256_add_epi32(MX_GT(2.5f), MX_GE(3.5f)));
        c1 = _mm256_add_epi32(c1, _mm256_add_epi32(_mm256_add_epi32(MX_GT(5.0f), MX_GE(7.0f)),
                                                   MX_GT(10.0f)));
#undef MX_GT
#undef MX_GE
        /* The masks are -1, so the sums are minus the codes. */
        __m256 q0 = _mm256_permutevar8x32_ps(v0, _mm256_sub_epi32(_mm256_setzero_si256(), c0));
        __m256 q1 = _mm256_permutevar8x32_ps(v1, _mm256_sub_epi32(_mm256_setzero_si256(), c1));
        /* (q0 - q1)(2y - q0 - q1) is exact in f32 here (q0 - q1 is 0, +-0.5 or -2, and
         * 2y - q0 - q1 is a short difference of multiples of ulp(2y)); the sum is in double. */
        __m256 d = _mm256_sub_ps(q0, q1), t = _mm256_add_ps(q0, q1);
        __m256 p = _mm256_mul_ps(d, _mm256_sub_ps(_mm256_add_ps(y, y), t));
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
    h = _mm_add_pd(h, _mm_unpackhi_pd(h, h));
    return _mm_cvtsd_f64(h);
}

/* code8_sse2() on 16 lanes. */
MX_TARGET_AVX2 static inline __m256i code16_avx2(const float *p, __m256i eo, __m256i *acc)
{
    const __m256i r = _mm256_set1_epi32(0xFFFF), m15 = _mm256_set1_epi16(0x7FFF);
    __m256i u0 = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i u1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + 8));
    __m256i k = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_add_epi32(u0, r), 16),
                                   _mm256_srai_epi32(_mm256_add_epi32(u1, r), 16));
    __m256i h = _mm256_packs_epi32(_mm256_srai_epi32(u0, 16), _mm256_srai_epi32(u1, 16));
    __m256i c = _mm256_and_si256(_mm256_srai_epi16(h, 15), _mm256_set1_epi16(8));
    __m256i ka = _mm256_and_si256(k, m15);
    __m256i z = _mm256_cmpeq_epi16(ka, _mm256_setzero_si256());
    __m256i ky = _mm256_sub_epi16(ka, eo), hy = _mm256_sub_epi16(_mm256_and_si256(h, m15), eo);
    __m256i g = _mm256_cmpgt_epi16(ky, _mm256_set1_epi16(MX_T025));
    c = _mm256_sub_epi16(c, g);
    c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(hy, _mm256_set1_epi16(MX_T075 - 1)));
    c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(ky, _mm256_set1_epi16(MX_T125)));
    c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(hy, _mm256_set1_epi16(MX_T175 - 1)));
    c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(ky, _mm256_set1_epi16(MX_T250)));
    c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(hy, _mm256_set1_epi16(MX_T350 - 1)));
    c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(ky, _mm256_set1_epi16(MX_T500)));
    *acc = _mm256_sub_epi16(*acc, _mm256_or_si256(g, z));
    *acc = _mm256_sub_epi16(*acc,
                            _mm256_slli_epi16(_mm256_cmpgt_epi16(ky, _mm256_set1_epi16(MX_T600)), 6));
    return c;
}

MX_TARGET_AVX2 static inline void encode_avx2(const float *xb, int e, uint8_t *pb, uint32_t cnt[2])
{
    __m256i eo = _mm256_set1_epi16((short)(e * 128)), acc = _mm256_setzero_si256();
    __m256i c0 = code16_avx2(xb, eo, &acc), c1 = code16_avx2(xb + 16, eo, &acc);
    /* The packs work per 128-bit half; the dword permutation puts codes back in order. */
    __m256i b = _mm256_packus_epi16(c0, c1);
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    __m128i out = pair_nibbles_sse2(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    _mm_storeu_si128((__m128i *)(void *)pb, out);
    acc = _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, _MM_SHUFFLE(2, 3, 0, 1)));
    unpack_counts((uint32_t)_mm_cvtsi128_si32(t), cnt);
}
#endif

typedef struct range_result {
    lq_mx_counts counts;
    int failed;
    size_t bad_index;
} range_result;

/* Quantizes nb whole blocks with the kernels of instruction set `isa` (a constant at each call
 * site, so the unused branches vanish). Stops at the first non-finite input. */
MX_ALWAYS_INLINE void quantize_range(const float *x, size_t nb, lq_mx_scale_mode mode,
                                     uint8_t *packed, uint8_t *scales, range_result *res, int isa)
{
    uint64_t clipped = 0, zeroed = 0, plus_one = 0, zero_blocks = 0;
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * LQ_MX_BLOCK;
        uint8_t *pb = packed + b * (LQ_MX_BLOCK / 2);
        uint32_t amax;
#if MX_AVX2
        if (isa == 2)
            amax = amax_avx2(xb);
        else
#endif
#if MX_SSE2
        if (isa == 1)
            amax = amax_sse2(xb);
        else
#endif
            amax = amax_c(xb);
        if (amax >= 0x7F800000u) {
            size_t i = 0;
            while (f32_bits(xb[i]) << 1 < 0xFF000000u)
                i++;
            res->failed = 1;
            res->bad_index = b * LQ_MX_BLOCK + i;
            return;
        }
        if (amax == 0) {
            /* Every element is +-0: scale 0x00, codes keep the sign of zero. */
            scales[b] = 0;
            for (int j = 0; j < LQ_MX_BLOCK / 2; j++)
                pb[j] = (uint8_t)(((f32_bits(xb[2 * j]) >> 28) & 8u) |
                                  ((f32_bits(xb[2 * j + 1]) >> 24) & 0x80u));
            zero_blocks++;
            continue;
        }
        /* floor(log2 amax). For a subnormal amax any value below -125 will do: every rule then
         * clamps to e = -127. */
        int E = amax >= 0x00800000u ? (int)(amax >> 23) - 127 : -127;
        uint32_t mant = amax & 0x7FFFFFu;
        int ef = clamp_exp(E - 2);
        int e;
        switch (mode) {
        case LQ_MX_SCALE_RCEIL: e = clamp_exp(E - 2 + (mant > 0x400000u)); break;
        case LQ_MX_SCALE_EVEN: e = clamp_exp(E - 2 + (mant >= 0x600000u)); break;
        case LQ_MX_SCALE_MSE:
            e = ef;
            /* Elements with y <= 7 never favour e + 1 (see the top comment), so only blocks
             * whose largest y exceeds 7 need the exact comparison. */
            if (ef < 127 && bits_f32(amax) * pow2_neg(ef) > 7.0f) {
                double d;
#if MX_AVX2
                if (isa == 2)
                    d = mse_delta_avx2(xb, pow2_neg(ef));
                else
#endif
#if MX_SSE2
                if (isa >= 1)
                    d = mse_delta_sse2(xb, pow2_neg(ef));
                else
#endif
                    d = mse_delta(xb, pow2_neg(ef));
                if (d < 0.0)
                    e = ef + 1;
            }
            break;
        case LQ_MX_SCALE_FLOOR:
        default: e = ef; break;
        }
        plus_one += (uint64_t)(e - ef);
        scales[b] = (uint8_t)(e + 127);
        uint32_t cnt[2];
#if MX_AVX2
        if (isa == 2 && e >= MX_INT_MIN_EXP)
            encode_avx2(xb, e, pb, cnt);
        else
#endif
#if MX_SSE2
        if (isa >= 1 && e >= MX_INT_MIN_EXP)
            encode_sse2(xb, e, pb, cnt);
        else
#endif
            encode_c(xb, pow2_neg(e), pb, cnt);
        clipped += cnt[0];
        zeroed += cnt[1];
    }
    res->counts.clipped += clipped;
    res->counts.zeroed += zeroed;
    res->counts.plus_one += plus_one;
    res->counts.zero_blocks += zero_blocks;
}

#if !MX_SSE2
static void quantize_blocks_c(const float *x, size_t nb, lq_mx_scale_mode mode, uint8_t *packed,
                              uint8_t *scales, range_result *res)
{
    quantize_range(x, nb, mode, packed, scales, res, 0);
}
#else
static void quantize_blocks_sse2(const float *x, size_t nb, lq_mx_scale_mode mode,
                                 uint8_t *packed, uint8_t *scales, range_result *res)
{
    quantize_range(x, nb, mode, packed, scales, res, 1);
}
#endif

#if MX_AVX2
MX_TARGET_AVX2 static void quantize_blocks_avx2(const float *x, size_t nb, lq_mx_scale_mode mode,
                                                uint8_t *packed, uint8_t *scales, range_result *res)
{
    quantize_range(x, nb, mode, packed, scales, res, 2);
}
#endif

static void quantize_blocks(const float *x, size_t nb, lq_mx_scale_mode mode, uint8_t *packed,
                            uint8_t *scales, range_result *res)
{
#if MX_AVX2
    if (__builtin_cpu_supports("avx2")) {
        quantize_blocks_avx2(x, nb, mode, packed, scales, res);
        return;
    }
#endif
#if MX_SSE2
    quantize_blocks_sse2(x, nb, mode, packed, scales, res);
#else
    quantize_blocks_c(x, nb, mode, packed, scales, res);
#endif
}

static lq_status check_args(const float *x, size_t n, lq_mx_scale_mode mode, const uint8_t *packed,
                            const uint8_t *scales)
{
    if (n % LQ_MX_BLOCK != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    if ((unsigned)mode > (unsigned)LQ_MX_SCALE_MSE)
        return LQ_ERR_INVALID_ARGUMENT;
    if (n > 0 && (!x || !packed || !scales))
        return LQ_ERR_INVALID_ARGUMENT;
    return LQ_OK;
}

static void add_counts(lq_mx_counts *dst, const lq_mx_counts *src)
{
    dst->clipped += src->clipped;
    dst->zeroed += src->zeroed;
    dst->plus_one += src->plus_one;
    dst->zero_blocks += src->zero_blocks;
}

lq_status lq_mxfp4_quantize(const float *x, size_t n, lq_mx_scale_mode mode, uint8_t *packed,
                            uint8_t *scales, lq_mx_counts *counts, size_t *bad_index)
{
    lq_status st = check_args(x, n, mode, packed, scales);
    if (st != LQ_OK)
        return st;
    range_result r;
    memset(&r, 0, sizeof r);
    quantize_blocks(x, n / LQ_MX_BLOCK, mode, packed, scales, &r);
    if (r.failed) {
        if (bad_index)
            *bad_index = r.bad_index;
        return LQ_ERR_NUMERIC;
    }
    if (counts)
        add_counts(counts, &r.counts);
    return LQ_OK;
}

typedef struct mt_job {
    const float *x;
    size_t block0, nb;
    lq_mx_scale_mode mode;
    uint8_t *packed, *scales;
    range_result res;
} mt_job;

static void mt_task(void *arg, size_t i)
{
    mt_job *j = (mt_job *)arg + i;
    quantize_blocks(j->x + j->block0 * LQ_MX_BLOCK, j->nb, j->mode,
                    j->packed + j->block0 * (LQ_MX_BLOCK / 2), j->scales + j->block0, &j->res);
    if (j->res.failed)
        j->res.bad_index += j->block0 * LQ_MX_BLOCK;
}

/* Below this many blocks per part, handing a part to another thread costs more than it saves. */
#define MT_MIN_BLOCKS 1024

lq_status lq_mxfp4_quantize_mt(const float *x, size_t n, lq_mx_scale_mode mode, uint8_t *packed,
                               uint8_t *scales, lq_mx_counts *counts, size_t *bad_index, int threads)
{
    lq_status st = check_args(x, n, mode, packed, scales);
    if (st != LQ_OK)
        return st;
    size_t nb = n / LQ_MX_BLOCK;
    size_t t = threads > 1 ? (size_t)threads : 1;
    if (t > nb / MT_MIN_BLOCKS)
        t = nb / MT_MIN_BLOCKS;
    if (t <= 1)
        return lq_mxfp4_quantize(x, n, mode, packed, scales, counts, bad_index);

    mt_job *jobs = calloc(t, sizeof *jobs);
    if (!jobs)
        return LQ_ERR_NO_MEMORY;
    /* Contiguous block ranges on the process pool (pool.h). The partition only decides who
     * computes a block, never how, so the bytes do not depend on t. */
    for (size_t i = 0; i < t; i++) {
        jobs[i].x = x;
        jobs[i].block0 = nb * i / t;
        jobs[i].nb = nb * (i + 1) / t - jobs[i].block0;
        jobs[i].mode = mode;
        jobs[i].packed = packed;
        jobs[i].scales = scales;
    }
    lq_parallel_for(t, (int)t, mt_task, jobs);
    /* Ranges are in index order, so the first failing job holds the smallest bad index. */
    for (size_t i = 0; i < t; i++) {
        if (jobs[i].res.failed) {
            if (bad_index)
                *bad_index = jobs[i].res.bad_index;
            st = LQ_ERR_NUMERIC;
            goto cleanup;
        }
    }
    if (counts)
        for (size_t i = 0; i < t; i++)
            add_counts(counts, &jobs[i].res.counts);
    st = LQ_OK;
cleanup:
    free(jobs);
    return st;
}

lq_status lq_mxfp4_dequantize(const uint8_t *packed, const uint8_t *scales, size_t n, float *out,
                              size_t *bad_block)
{
    if (n % LQ_MX_BLOCK != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    if (n > 0 && (!packed || !scales || !out))
        return LQ_ERR_INVALID_ARGUMENT;
    size_t nb = n / LQ_MX_BLOCK;
    for (size_t b = 0; b < nb; b++) {
        uint8_t s = scales[b];
        if (s == 0xFFu) {
            if (bad_block)
                *bad_block = b;
            return LQ_ERR_CORRUPT;
        }
        /* Scale byte s is 2^(s-127); s = 0 is the subnormal 2^-127. Each product is exact
         * unless it reaches 2^128, beyond f32 (then inf). */
        float x = lq_e8m0_decode(s);
        float lut[16];
        for (int c = 0; c < 16; c++)
            lut[c] = lq_fp4_values[c] * x;
        const uint8_t *pb = packed + b * (LQ_MX_BLOCK / 2);
        float *ob = out + b * LQ_MX_BLOCK;
        for (int j = 0; j < LQ_MX_BLOCK / 2; j++) {
            ob[2 * j] = lut[pb[j] & 0xFu];
            ob[2 * j + 1] = lut[pb[j] >> 4];
        }
    }
    return LQ_OK;
}

lq_status lq_mxfp4_passthrough(const uint8_t *packed_in, const uint8_t *scales_in, size_t n,
                               uint8_t *packed_out, uint8_t *scales_out, size_t *bad_block)
{
    if (n % LQ_MX_BLOCK != 0)
        return LQ_ERR_INVALID_ARGUMENT;
    if (n > 0 && (!packed_in || !scales_in || !packed_out || !scales_out))
        return LQ_ERR_INVALID_ARGUMENT;
    size_t nb = n / LQ_MX_BLOCK;
    for (size_t b = 0; b < nb; b++) {
        if (scales_in[b] == 0xFFu) {
            if (bad_block)
                *bad_block = b;
            return LQ_ERR_CORRUPT;
        }
    }
    if (nb == 0)
        return LQ_OK;
    if (packed_out != packed_in)
        memmove(packed_out, packed_in, n / 2);
    if (scales_out != scales_in)
        memmove(scales_out, scales_in, nb);
    return LQ_OK;
}
