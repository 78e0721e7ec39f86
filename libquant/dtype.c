/* Element types: dtype names and sizes, and exact scalar and bulk conversions (dtype.h).
 *
 * Every narrow float format is decoded by assembling IEEE binary32 bits directly (normal
 * numbers) or by an exact integer-times-power-of-two product (subnormals), so decoding never
 * rounds. F16 and BF16 are decoded here; F8_E4M3, F8_E5M2 and F8_E8M0 in fp_formats.h, which
 * the codec, the value checks and the CUDA kernels share. Encoding from f32 goes through one integer routine, encode_minifloat(), that rounds
 * the 24-bit significand to nearest with ties to even by shifting; it serves F16, F8_E4M3 and
 * F8_E5M2 alike, because in all three the code of a magnitude is monotone in the magnitude and
 * the carry out of the mantissa moves into the exponent field by plain addition. BF16 uses the
 * c10 formula (reference/mxfp4_formats.md 4.3), which is the same rounding on 16 dropped bits.
 *
 * Overflow behaviour, checked against ml_dtypes 0.6 (tests/numerics/interop_mldtypes.py):
 *   F8_E4M3 (e4m3fn has no inf): |f| <= 464 rounds normally (464, the midpoint between 448 and
 *   the NaN pattern, ties to 448 whose mantissa is even); |f| > 464 and +-inf give NaN with the
 *   sign of f (0x7F / 0xFF). NaN gives 0x7F / 0xFF by sign.
 *   F8_E5M2 and F16: IEEE behaviour, |f| >= max + half an ulp gives inf (the tie goes up because
 *   the largest finite mantissa is odd). NaN gives the quiet NaN 0x7E / 0x7E00 with f's sign.
 *   BF16: NaN gives 0x7FC0 with f's sign. */
#include "dtype.h"

#include "fp_formats.h"
#include "internal/bits.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libquant assumes a little-endian host (safetensors data is little-endian)"
#endif

/* ---- names and sizes ---- */

static const struct {
    const char *name;
    unsigned bits;
} dtype_table[LQ_DTYPE_COUNT] = {
    [LQ_DTYPE_INVALID] = {"INVALID", 0},
    [LQ_DTYPE_BOOL] = {"BOOL", 8},
    [LQ_DTYPE_F4] = {"F4", 4},
    [LQ_DTYPE_F6_E2M3] = {"F6_E2M3", 6},
    [LQ_DTYPE_F6_E3M2] = {"F6_E3M2", 6},
    [LQ_DTYPE_U8] = {"U8", 8},
    [LQ_DTYPE_I8] = {"I8", 8},
    [LQ_DTYPE_F8_E5M2] = {"F8_E5M2", 8},
    [LQ_DTYPE_F8_E4M3] = {"F8_E4M3", 8},
    [LQ_DTYPE_F8_E8M0] = {"F8_E8M0", 8},
    [LQ_DTYPE_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [LQ_DTYPE_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [LQ_DTYPE_I16] = {"I16", 16},
    [LQ_DTYPE_U16] = {"U16", 16},
    [LQ_DTYPE_F16] = {"F16", 16},
    [LQ_DTYPE_BF16] = {"BF16", 16},
    [LQ_DTYPE_I32] = {"I32", 32},
    [LQ_DTYPE_U32] = {"U32", 32},
    [LQ_DTYPE_F32] = {"F32", 32},
    [LQ_DTYPE_C64] = {"C64", 64},
    [LQ_DTYPE_F64] = {"F64", 64},
    [LQ_DTYPE_I64] = {"I64", 64},
    [LQ_DTYPE_U64] = {"U64", 64},
};

lq_dtype lq_dtype_from_name(const char *name, size_t n)
{
    if (!name)
        return LQ_DTYPE_INVALID;
    for (int i = 1; i < LQ_DTYPE_COUNT; i++) {
        const char *s = dtype_table[i].name;
        if (strlen(s) == n && memcmp(s, name, n) == 0)
            return (lq_dtype)i;
    }
    return LQ_DTYPE_INVALID;
}

const char *lq_dtype_name(lq_dtype dt)
{
    if ((int)dt <= LQ_DTYPE_INVALID || (int)dt >= LQ_DTYPE_COUNT)
        return "INVALID";
    return dtype_table[dt].name;
}

unsigned lq_dtype_bits(lq_dtype dt)
{
    if ((int)dt <= LQ_DTYPE_INVALID || (int)dt >= LQ_DTYPE_COUNT)
        return 0;
    return dtype_table[dt].bits;
}

uint64_t lq_dtype_nbytes(lq_dtype dt, uint64_t numel, int *overflow)
{
    unsigned bits = lq_dtype_bits(dt);
    if (overflow)
        *overflow = 0;
    if (bits == 0)
        return 0;
    /* Split numel = 8q + r so numel * bits / 8 = q * bits + ceil(r * bits / 8) is computed
     * without an intermediate that could overflow when the result itself fits. */
    uint64_t q = numel / 8, r = numel % 8;
    if (q > UINT64_MAX / bits) {
        if (overflow)
            *overflow = 1;
        return 0;
    }
    uint64_t whole = q * bits, tail = (r * bits + 7) / 8;
    if (whole > UINT64_MAX - tail) {
        if (overflow)
            *overflow = 1;
        return 0;
    }
    return whole + tail;
}

/* ---- bit helpers ---- */


/* m >> s rounded to nearest, ties to even; 1 <= s <= 31. */
static inline uint32_t shift_rne(uint32_t m, unsigned s)
{
    uint32_t q = m >> s;
    uint32_t rem = m & ((UINT32_C(1) << s) - 1);
    uint32_t half = UINT32_C(1) << (s - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return q;
}

/* Magnitude code of the finite-or-infinite non-NaN |f| (bits a, sign cleared) in a binary
 * format with `mbits` mantissa bits and exponent bias `bias`, rounded to nearest even. The
 * result may exceed the format's largest finite code; callers map that to inf, NaN or max. */
static uint32_t encode_minifloat(uint32_t a, unsigned mbits, int bias)
{
    int e32 = (int)(a >> 23);
    if (e32 == 0)
        return 0; /* f32 subnormals are far below half the smallest subnormal of every target */
    int ue = e32 - 127;
    uint32_t m = (a & 0x7FFFFFu) | 0x800000u; /* value = m * 2^(ue - 23) */
    if (ue >= 1 - bias) {
        uint32_t q = shift_rne(m, 23 - mbits); /* in [2^mbits, 2^(mbits+1)] */
        return ((uint32_t)(ue + bias) << mbits) + q - (UINT32_C(1) << mbits);
    }
    /* Subnormal target: count units of 2^(1 - bias - mbits). */
    int s = 23 + 1 - bias - (int)mbits - ue; /* > 23 - mbits */
    if (s > 24)
        return 0; /* m < 2^24 <= half a unit */
    return shift_rne(m, (unsigned)s); /* 2^mbits here is the smallest normal code: continuous */
}

/* ---- scalar conversions ---- */

float lq_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t lq_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7FC0u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float lq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0) {
        /* m * 2^-24 is exact in f32 (m < 2^10). */
        float v = (float)m * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (e == 31) /* inf, or NaN with its payload in the top mantissa bits (as numpy does) */
        return bits_f32(sign | 0x7F800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* Sign, NaN and overflow handling around encode_minifloat for a format `width` bits wide:
 * NaN -> nan_code with the input's sign; codes above max_code (overflow) -> max_code. */
static uint32_t encode_small(float f, unsigned width, unsigned mbits, int bias,
                             uint32_t nan_code, uint32_t max_code)
{
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 31) << (width - 1);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return sign | nan_code;
    uint32_t c = encode_minifloat(a, mbits, bias);
    return sign | (c > max_code ? max_code : c);
}

uint16_t lq_f32_to_f16(float f)
{
    return (uint16_t)encode_small(f, 16, 10, 15, 0x7E00u, 0x7C00u);
}

float lq_e4m3_to_f32(uint8_t b)
{
    return lq_e4m3_decode(b);
}

uint8_t lq_f32_to_e4m3(float f)
{
    /* code 0x7F is NaN in e4m3fn: overflow is NaN, as in ml_dtypes */
    return (uint8_t)encode_small(f, 8, 3, 7, 0x7Fu, 0x7Fu);
}

uint8_t lq_f32_to_e4m3_sat(float f)
{
    /* finite overflow (and inf) clamps to +-448 */
    return (uint8_t)encode_small(f, 8, 3, 7, 0x7Fu, 0x7Eu);
}

float lq_e5m2_to_f32(uint8_t b)
{
    return lq_e5m2_decode(b);
}

uint8_t lq_f32_to_e5m2(float f)
{
    /* overflow rounds to inf (0x7C); NaN keeps its sign */
    return (uint8_t)encode_small(f, 8, 2, 15, 0x7Eu, 0x7Cu);
}

float lq_e8m0_to_f32(uint8_t b)
{
    return lq_e8m0_decode(b);
}

/* ---- bulk conversions ---- */

lq_status lq_to_f32(lq_dtype dt, const void *src, size_t n, float *dst)
{
    if (n == 0)
        return LQ_OK;
    if (!src || !dst)
        return LQ_ERR_INVALID_ARGUMENT;
    const uint8_t *s = src;
    switch (dt) {
    case LQ_DTYPE_F32:
        memmove(dst, src, n * sizeof(float));
        return LQ_OK;
    case LQ_DTYPE_BF16:
        /* the bits shifted up, in a loop the compiler vectorizes (little-endian) */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)s[2 * i] << 16 | (uint32_t)s[2 * i + 1] << 24;
            memcpy(&dst[i], &u, 4);
        }
        return LQ_OK;
    case LQ_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = lq_f16_to_f32(h);
        }
        return LQ_OK;
    case LQ_DTYPE_F8_E4M3:
    case LQ_DTYPE_F8_E5M2:
    case LQ_DTYPE_F8_E8M0:
    case LQ_DTYPE_U8:
    case LQ_DTYPE_I8: {
        /* One exact table per call: 256 conversions are negligible next to any real tensor. */
        float lut[256];
        for (int b = 0; b < 256; b++) {
            switch (dt) {
            case LQ_DTYPE_F8_E4M3: lut[b] = lq_e4m3_decode((uint8_t)b); break;
            case LQ_DTYPE_F8_E5M2: lut[b] = lq_e5m2_decode((uint8_t)b); break;
            case LQ_DTYPE_F8_E8M0: lut[b] = lq_e8m0_decode((uint8_t)b); break;
            case LQ_DTYPE_U8: lut[b] = (float)b; break;
            default: lut[b] = (float)(b < 128 ? b : b - 256); break;
            }
        }
        for (size_t i = 0; i < n; i++)
            dst[i] = lut[s[i]];
        return LQ_OK;
    }
    default:
        return LQ_ERR_UNSUPPORTED;
    }
}

lq_status lq_from_f32(lq_dtype dt, const float *src, size_t n, void *dst)
{
    if (n == 0)
        return LQ_OK;
    if (!src || !dst)
        return LQ_ERR_INVALID_ARGUMENT;
    uint8_t *d = dst;
    switch (dt) {
    case LQ_DTYPE_F32:
        memmove(dst, src, n * sizeof(float));
        return LQ_OK;
    case LQ_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = lq_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return LQ_OK;
    case LQ_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = lq_f32_to_f16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return LQ_OK;
    case LQ_DTYPE_F8_E4M3:
        for (size_t i = 0; i < n; i++)
            d[i] = lq_f32_to_e4m3_sat(src[i]);
        return LQ_OK;
    case LQ_DTYPE_F8_E5M2:
        for (size_t i = 0; i < n; i++)
            d[i] = lq_f32_to_e5m2(src[i]);
        return LQ_OK;
    default:
        return LQ_ERR_UNSUPPORTED;
    }
}
