/* dtype tests (libquant/dtype.h).
 *
 * Where expected values come from:
 *   - names and bit sizes: reference/mxfp4_formats.md 3.2;
 *   - decoders: every pattern is checked against the format definitions (reference
 *     mxfp4_formats.md 4.1 for E4M3FN / E5M2, 1.3 for E8M0, IEEE binary16, 4.3 for BF16)
 *     evaluated here with ldexp in double;
 *   - encoders: against a brute-force nearest-value search over the decoded code set written in
 *     this file (ties to the code with an even last bit), at every midpoint between adjacent
 *     codes, one f32 ulp either side of it, and on random floats; plus hand-computed cases.
 * Overflow conventions follow ml_dtypes 0.6, which tests/numerics/interop_mldtypes.py checks. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/dtype.h"
#include "tests/harness.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Same float, including the sign of zero; any NaN equals any NaN of the same sign. */
static int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) && (signbit(a) != 0) == (signbit(b) != 0);
    return fbits(a) == fbits(b);
}

/* ---- names and sizes ---- */

static void test_names(void)
{
    static const struct {
        const char *name;
        lq_dtype dt;
        unsigned bits;
    } t[] = {
        {"BOOL", LQ_DTYPE_BOOL, 8},       {"F4", LQ_DTYPE_F4, 4},
        {"F6_E2M3", LQ_DTYPE_F6_E2M3, 6}, {"F6_E3M2", LQ_DTYPE_F6_E3M2, 6},
        {"U8", LQ_DTYPE_U8, 8},           {"I8", LQ_DTYPE_I8, 8},
        {"F8_E5M2", LQ_DTYPE_F8_E5M2, 8}, {"F8_E4M3", LQ_DTYPE_F8_E4M3, 8},
        {"F8_E8M0", LQ_DTYPE_F8_E8M0, 8}, {"F8_E4M3FNUZ", LQ_DTYPE_F8_E4M3FNUZ, 8},
        {"F8_E5M2FNUZ", LQ_DTYPE_F8_E5M2FNUZ, 8},
        {"I16", LQ_DTYPE_I16, 16},        {"U16", LQ_DTYPE_U16, 16},
        {"F16", LQ_DTYPE_F16, 16},        {"BF16", LQ_DTYPE_BF16, 16},
        {"I32", LQ_DTYPE_I32, 32},        {"U32", LQ_DTYPE_U32, 32},
        {"F32", LQ_DTYPE_F32, 32},        {"C64", LQ_DTYPE_C64, 64},
        {"F64", LQ_DTYPE_F64, 64},        {"I64", LQ_DTYPE_I64, 64},
        {"U64", LQ_DTYPE_U64, 64},
    };
    CHECK_EQ_U64(sizeof t / sizeof t[0], LQ_DTYPE_COUNT - 1);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        CHECK_EQ_U64(lq_dtype_from_name(t[i].name, strlen(t[i].name)), t[i].dt);
        CHECK_STR(lq_dtype_name(t[i].dt), t[i].name);
        CHECK_EQ_U64(lq_dtype_bits(t[i].dt), t[i].bits);
    }
    /* Exact, case-sensitive, length-delimited. */
    CHECK_EQ_U64(lq_dtype_from_name("bf16", 4), LQ_DTYPE_INVALID);
    CHECK_EQ_U64(lq_dtype_from_name("BF16 ", 5), LQ_DTYPE_INVALID);
    CHECK_EQ_U64(lq_dtype_from_name("F8_E4M3FN", 9), LQ_DTYPE_INVALID);
    CHECK_EQ_U64(lq_dtype_from_name("F8_E4M3FNUZ", 7), LQ_DTYPE_F8_E4M3);
    CHECK_EQ_U64(lq_dtype_from_name("", 0), LQ_DTYPE_INVALID);
    CHECK_EQ_U64(lq_dtype_from_name(NULL, 3), LQ_DTYPE_INVALID);
    CHECK_EQ_U64(lq_dtype_from_name("INVALID", 7), LQ_DTYPE_INVALID);
    CHECK_STR(lq_dtype_name(LQ_DTYPE_INVALID), "INVALID");
    CHECK_STR(lq_dtype_name((lq_dtype)99), "INVALID");
    CHECK_EQ_U64(lq_dtype_bits(LQ_DTYPE_INVALID), 0);

    int ovf = -1;
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_F4, 3, &ovf), 2); /* 12 bits -> 2 bytes */
    CHECK_EQ_U64(ovf, 0);
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_F6_E2M3, 4, NULL), 3);  /* 24 bits */
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_F6_E3M2, 5, NULL), 4);  /* 30 bits -> 4 bytes */
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_BF16, 0, NULL), 0);
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_C64, 10, NULL), 80);
    /* 2^61 U64 elements are 2^64 bytes: overflow; one fewer fits (2^64 - 8). */
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_U64, UINT64_C(1) << 61, &ovf), 0);
    CHECK_EQ_U64(ovf, 1);
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_U64, (UINT64_C(1) << 61) - 1, &ovf), UINT64_MAX - 7);
    CHECK_EQ_U64(ovf, 0);
    /* numel * bits overflows but the byte count fits: F4 of UINT64_MAX elements = 2^63 bytes. */
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_F4, UINT64_MAX, &ovf), UINT64_C(1) << 63);
    CHECK_EQ_U64(ovf, 0);
    CHECK_EQ_U64(lq_dtype_nbytes(LQ_DTYPE_INVALID, 5, &ovf), 0);
}

/* ---- generic brute-force reference for RNE into a finite code set ---- */

/* Non-negative codes 0..maxcode of a format, sorted by value; the encoder reference picks the
 * nearest, ties to the even code, and treats values past the last code as rounding to it
 * only if below `limit` (the next value the format would have with an unbounded exponent). */
typedef struct fmt_ref {
    const char *name;
    int ncodes;          /* number of finite non-negative codes, value increasing with code */
    double *val;
    double next;         /* value of code ncodes if the exponent were unbounded */
} fmt_ref;

/* Nearest code for a >= 0 (double, exact); returns ncodes for "rounds past the largest". */
static int ref_rne(const fmt_ref *f, double a)
{
    if (a >= f->next)
        return f->ncodes;
    int lo = 0, hi = f->ncodes; /* val[lo] <= a < val[hi] (val[ncodes] = next) */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        double v = mid == f->ncodes ? f->next : f->val[mid];
        if (v <= a)
            lo = mid;
        else
            hi = mid;
    }
    double vlo = f->val[lo], vhi = hi == f->ncodes ? f->next : f->val[hi];
    if (a - vlo < vhi - a)
        return lo;
    if (a - vlo > vhi - a)
        return hi;
    return lo % 2 == 0 ? lo : hi;
}

/* ---- BF16 ---- */

static void test_bf16(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lq_bf16_to_f32((uint16_t)h);
        CHECK_EQ_U64(fbits(f), h << 16); /* 4.3: bf16 is the top half of an f32 */
        uint16_t back = lq_f32_to_bf16(f);
        if (isnan(f))
            CHECK_EQ_U64(back, (h & 0x8000u) | 0x7FC0u);
        else
            CHECK_EQ_U64(back, h);
    }
    /* Hand-computed ties: 1 + 2^-8 (0x3F808000) lies halfway between 0x3F80 and 0x3F81, and
     * goes to the even 0x3F80; 0x3F818000 lies between 0x3F81 and 0x3F82 and goes to 0x3F82;
     * one f32 ulp above the first tie goes up. The bf16 maximum 0x7F7F plus half an ulp
     * (0x7F7F8000) ties to the even neighbour 0x7F80 = inf. */
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x3F808000u)), 0x3F80);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x3F818000u)), 0x3F82);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x3F808001u)), 0x3F81);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0xBF808000u)), 0xBF80);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x7F7F8000u)), 0x7F80);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x7F7F7FFFu)), 0x7F7F);
    CHECK_EQ_U64(lq_f32_to_bf16(FLT_MAX), 0x7F80);
    CHECK_EQ_U64(lq_f32_to_bf16(-INFINITY), 0xFF80);
    CHECK_EQ_U64(lq_f32_to_bf16(-0.0f), 0x8000);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x00008000u)), 0x0000); /* subnormal tie -> even 0 */
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x00018000u)), 0x0002);
    CHECK_EQ_U64(lq_f32_to_bf16(NAN), 0x7FC0);
    CHECK_EQ_U64(lq_f32_to_bf16(-NAN), 0xFFC0);
    CHECK_EQ_U64(lq_f32_to_bf16(from_bits(0x7F800001u)), 0x7FC0); /* signalling NaN stays NaN */
    /* Random floats: nearest of the two bf16 neighbours, computed in double. */
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)next_u64();
        float f = from_bits(u);
        if (isnan(f))
            continue;
        uint32_t lo = u & 0xFFFF0000u, hi = lo + 0x10000u;
        uint16_t want;
        if ((u & 0x7FFFFFFFu) >= 0x7F7F8000u) {
            want = (uint16_t)((u >> 16 & 0x8000u) | 0x7F80u);
        } else {
            double d_lo = fabs((double)f - (double)from_bits(lo));
            double d_hi = fabs((double)from_bits(hi) - (double)f);
            want = (uint16_t)(d_lo < d_hi || (d_lo == d_hi && !((lo >> 16) & 1)) ? lo >> 16 : hi >> 16);
        }
        CHECK_EQ_U64(lq_f32_to_bf16(f), want);
    }
}

/* ---- F16 ---- */

static double f16_def(uint16_t h) /* IEEE binary16 definition; NaN/inf handled by the caller */
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16(void)
{
    double *val = malloc(31744 * sizeof(double));
    CHECK(val != NULL);
    if (!val)
        return;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lq_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            if (m == 0)
                CHECK(isinf(f) && (signbit(f) != 0) == (int)(h >> 15));
            else
                CHECK(isnan(f) && (signbit(f) != 0) == (int)(h >> 15));
            continue;
        }
        CHECK(same_float(f, (float)f16_def((uint16_t)h)));
        CHECK_EQ_U64(lq_f32_to_f16(f), h); /* round trip of every finite pattern */
        if (h < 31744)
            val[h] = f16_def((uint16_t)h);
    }
    fmt_ref ref = {"f16", 31744, val, 65536.0};
    /* Every midpoint between neighbours (exact in f32: 12 significant bits), and one f32 ulp on
     * either side of it. */
    for (int h = 0; h < 31744; h++) {
        double next = h + 1 < 31744 ? val[h + 1] : 65536.0;
        float mid = (float)((val[h] + next) / 2);
        float probes[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        for (int k = 0; k < 3; k++) {
            int want = ref_rne(&ref, probes[k]);
            uint16_t w = want >= 31744 ? 0x7C00 : (uint16_t)want;
            CHECK_EQ_U64(lq_f32_to_f16(probes[k]), w);
            CHECK_EQ_U64(lq_f32_to_f16(-probes[k]), w | 0x8000u);
        }
    }
    /* Hand-computed: 2^-25 is half the smallest subnormal -> 0 (even); 3 * 2^-25 is halfway
     * between codes 1 and 2 -> 2; 65504 + 16 = 65520 is halfway to 65536 and the largest finite
     * mantissa is odd -> inf; 65519.99 -> 65504 (0x7BFF). */
    CHECK_EQ_U64(lq_f32_to_f16(0x1p-25f), 0x0000);
    CHECK_EQ_U64(lq_f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    CHECK_EQ_U64(lq_f32_to_f16(0x1.8p-24f), 0x0002);
    CHECK_EQ_U64(lq_f32_to_f16(65520.0f), 0x7C00);
    CHECK_EQ_U64(lq_f32_to_f16(nextafterf(65520.0f, 0.0f)), 0x7BFF);
    CHECK_EQ_U64(lq_f32_to_f16(1e-30f), 0x0000);
    CHECK_EQ_U64(lq_f32_to_f16(-1e-30f), 0x8000);
    CHECK_EQ_U64(lq_f32_to_f16(INFINITY), 0x7C00);
    CHECK_EQ_U64(lq_f32_to_f16(NAN), 0x7E00);
    CHECK_EQ_U64(lq_f32_to_f16(-NAN), 0xFE00);
    /* Random floats over the f16 range and beyond. */
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)next_u64();
        u = (u & 0x80FFFFFFu) | ((uint32_t)(96 + (next_u64() % 48)) << 23); /* 2^-31 .. 2^17 */
        float f = from_bits(u);
        int want = ref_rne(&ref, fabs((double)f));
        uint16_t w = (uint16_t)((want >= 31744 ? 0x7C00 : want) | (u >> 16 & 0x8000u));
        CHECK_EQ_U64(lq_f32_to_f16(f), w);
    }
    free(val);
}

/* ---- FP8 ---- */

/* 4.1: E4M3FN S EEEE MMM bias 7, subnormal M/8 2^-6, max 448, NaN S.1111.111, no inf. */
static double e4m3_def(uint8_t b)
{
    int e = (b >> 3) & 15, m = b & 7;
    double v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
    return b & 0x80 ? -v : v;
}

/* 4.1: E5M2 bias 15, IEEE-like: inf S.11111.00, NaN S.11111.{01,10,11}, max 57344. */
static double e5m2_def(uint8_t b)
{
    int e = (b >> 2) & 31, m = b & 3;
    double v = e == 0 ? ldexp(m, -16) : ldexp(4 + m, e - 17);
    return b & 0x80 ? -v : v;
}

static void check_fp8_encoder(const char *name, uint8_t (*enc)(float), const fmt_ref *ref,
                              uint8_t overflow_code)
{
    int bad = 0;
    for (int c = 0; c < ref->ncodes; c++) {
        double next = c + 1 < ref->ncodes ? ref->val[c + 1] : ref->next;
        float mid = (float)((ref->val[c] + next) / 2);
        float probes[4] = {(float)ref->val[c], nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        for (int k = 0; k < 4; k++) {
            int want = ref_rne(ref, probes[k]);
            uint8_t w = want >= ref->ncodes ? overflow_code : (uint8_t)want;
            if (enc(probes[k]) != w || enc(-probes[k]) != (w | 0x80))
                bad++;
        }
    }
    for (int i = 0; i < 100000; i++) {
        uint32_t u = (uint32_t)next_u64();
        u = (u & 0x80FFFFFFu) | ((uint32_t)(100 + (next_u64() % 46)) << 23); /* 2^-27 .. 2^18 */
        float f = from_bits(u);
        int want = ref_rne(ref, fabs((double)f));
        uint8_t w = (uint8_t)((want >= ref->ncodes ? overflow_code : want) | (u >> 24 & 0x80u));
        if (enc(f) != w)
            bad++;
    }
    CHECK_MSG(bad == 0, "%s encoder: %d mismatches with the nearest-even reference", name, bad);
}

static uint8_t enc_e4m3(float f) { return lq_f32_to_e4m3(f); }
static uint8_t enc_e4m3_sat(float f) { return lq_f32_to_e4m3_sat(f); }
static uint8_t enc_e5m2(float f) { return lq_f32_to_e5m2(f); }

static void test_fp8(void)
{
    double v4[127], v5[124];
    for (int b = 0; b < 256; b++) {
        float f4 = lq_e4m3_to_f32((uint8_t)b), f5 = lq_e5m2_to_f32((uint8_t)b);
        if ((b & 0x7F) == 0x7F)
            CHECK(isnan(f4) && (signbit(f4) != 0) == (b >> 7));
        else
            CHECK(same_float(f4, (float)e4m3_def((uint8_t)b)));
        int e5 = (b >> 2) & 31;
        if (e5 == 31 && (b & 3) == 0)
            CHECK(isinf(f5) && (signbit(f5) != 0) == (b >> 7));
        else if (e5 == 31)
            CHECK(isnan(f5) && (signbit(f5) != 0) == (b >> 7));
        else
            CHECK(same_float(f5, (float)e5m2_def((uint8_t)b)));
        if (b < 127) {
            v4[b] = e4m3_def((uint8_t)b);
            CHECK_EQ_U64(lq_f32_to_e4m3(f4), b);
            CHECK_EQ_U64(lq_f32_to_e4m3_sat(f4), b);
        }
        if (b < 124) {
            v5[b] = e5m2_def((uint8_t)b);
            CHECK_EQ_U64(lq_f32_to_e5m2(f5), b);
        }
    }
    /* Spot checks of the tables against 4.1. */
    CHECK(lq_e4m3_to_f32(0x7E) == 448.0f);
    CHECK(lq_e4m3_to_f32(0xFE) == -448.0f);
    CHECK(lq_e4m3_to_f32(0x01) == 0x1p-9f); /* smallest subnormal 1/8 * 2^-6 */
    CHECK(lq_e4m3_to_f32(0x07) == 0x1.cp-7f);
    CHECK(lq_e4m3_to_f32(0x08) == 0x1p-6f); /* smallest normal */
    CHECK(lq_e4m3_to_f32(0x38) == 1.0f);
    CHECK(fbits(lq_e4m3_to_f32(0x80)) == 0x80000000u);
    CHECK(lq_e5m2_to_f32(0x7B) == 57344.0f);
    CHECK(lq_e5m2_to_f32(0x01) == 0x1p-16f);
    CHECK(lq_e5m2_to_f32(0x04) == 0x1p-14f);
    CHECK(lq_e5m2_to_f32(0x3C) == 1.0f);
    CHECK(isinf(lq_e5m2_to_f32(0x7C)) && lq_e5m2_to_f32(0xFC) < 0);

    /* Encoders against the brute-force reference. E4M3FN would have 480 after 448; RNE results
     * of 480 or more are NaN (0x7F) in the plain encoder, 448 (0x7E) in the saturating one.
     * E5M2 would have 65536 after 57344; those results are inf (0x7C). */
    fmt_ref r4 = {"e4m3", 127, v4, 480.0}, r5 = {"e5m2", 124, v5, 65536.0};
    check_fp8_encoder("e4m3", enc_e4m3, &r4, 0x7F);
    check_fp8_encoder("e4m3_sat", enc_e4m3_sat, &r4, 0x7E);
    check_fp8_encoder("e5m2", enc_e5m2, &r5, 0x7C);

    /* Hand-computed: 464 = 448 + 16 is halfway between 448 (mantissa 110, even) and the NaN
     * slot 480 -> 448; anything above -> NaN (ml_dtypes) or 448 (saturating). 2^-10 is half the
     * smallest subnormal -> 0; 3 * 2^-10 is halfway between codes 1 and 2 -> 2. */
    CHECK_EQ_U64(lq_f32_to_e4m3(464.0f), 0x7E);
    CHECK_EQ_U64(lq_f32_to_e4m3(nextafterf(464.0f, 1000.0f)), 0x7F);
    CHECK_EQ_U64(lq_f32_to_e4m3(-500.0f), 0xFF);
    CHECK_EQ_U64(lq_f32_to_e4m3(INFINITY), 0x7F);
    CHECK_EQ_U64(lq_f32_to_e4m3(-INFINITY), 0xFF);
    CHECK_EQ_U64(lq_f32_to_e4m3(NAN), 0x7F);
    CHECK_EQ_U64(lq_f32_to_e4m3(-NAN), 0xFF);
    CHECK_EQ_U64(lq_f32_to_e4m3(0x1p-10f), 0x00);
    CHECK_EQ_U64(lq_f32_to_e4m3(0x1.8p-9f), 0x02);
    CHECK_EQ_U64(lq_f32_to_e4m3(-0.0f), 0x80);
    CHECK_EQ_U64(lq_f32_to_e4m3_sat(1e30f), 0x7E);
    CHECK_EQ_U64(lq_f32_to_e4m3_sat(-INFINITY), 0xFE);
    CHECK_EQ_U64(lq_f32_to_e4m3_sat(NAN), 0x7F);
    CHECK_EQ_U64(lq_f32_to_e4m3_sat(FLT_MAX), 0x7E);
    /* E5M2: 61440 = 57344 + 4096 ties away from the odd mantissa 11 -> inf. */
    CHECK_EQ_U64(lq_f32_to_e5m2(61440.0f), 0x7C);
    CHECK_EQ_U64(lq_f32_to_e5m2(nextafterf(61440.0f, 0.0f)), 0x7B);
    CHECK_EQ_U64(lq_f32_to_e5m2(-1e30f), 0xFC);
    CHECK_EQ_U64(lq_f32_to_e5m2(NAN), 0x7E);
    CHECK_EQ_U64(lq_f32_to_e5m2(0x1p-17f), 0x00);
    CHECK_EQ_U64(lq_f32_to_e5m2(0x1.8p-16f), 0x02);
}

/* ---- E8M0 (1.3) ---- */

static void test_e8m0(void)
{
    CHECK_EQ_U64(fbits(lq_e8m0_to_f32(0)), 0x00400000u); /* 2^-127, an f32 subnormal */
    CHECK(lq_e8m0_to_f32(0) == 0x1p-127f);
    CHECK(lq_e8m0_to_f32(1) == FLT_MIN);
    CHECK(lq_e8m0_to_f32(127) == 1.0f);
    CHECK(lq_e8m0_to_f32(128) == 2.0f);
    CHECK(lq_e8m0_to_f32(254) == 0x1p127f);
    CHECK(isnan(lq_e8m0_to_f32(255)));
    for (int b = 0; b < 255; b++)
        CHECK((double)lq_e8m0_to_f32((uint8_t)b) == ldexp(1.0, b - 127));
}

/* ---- bulk converters ---- */

static void test_bulk(void)
{
    static uint8_t raw[1 + 65536 * 2];
    static float out[65536], want[65536];
    uint8_t *src = raw + 1; /* deliberately misaligned */
    for (int h = 0; h < 65536; h++) {
        src[2 * h] = (uint8_t)h;
        src[2 * h + 1] = (uint8_t)(h >> 8);
    }
    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_BF16, src, 65536, out), LQ_OK);
    int bad = 0;
    for (int h = 0; h < 65536; h++)
        bad += !same_float(out[h], lq_bf16_to_f32((uint16_t)h));
    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_F16, src, 65536, out), LQ_OK);
    for (int h = 0; h < 65536; h++)
        bad += !same_float(out[h], lq_f16_to_f32((uint16_t)h));
    CHECK_EQ_U64(bad, 0);

    for (int b = 0; b < 256; b++)
        src[b] = (uint8_t)b;
    static const lq_dtype bytewise[5] = {LQ_DTYPE_F8_E4M3, LQ_DTYPE_F8_E5M2, LQ_DTYPE_F8_E8M0,
                                         LQ_DTYPE_U8, LQ_DTYPE_I8};
    for (int k = 0; k < 5; k++) {
        CHECK_EQ_U64(lq_to_f32(bytewise[k], src, 256, out), LQ_OK);
        for (int b = 0; b < 256; b++) {
            switch (bytewise[k]) {
            case LQ_DTYPE_F8_E4M3: want[b] = lq_e4m3_to_f32((uint8_t)b); break;
            case LQ_DTYPE_F8_E5M2: want[b] = lq_e5m2_to_f32((uint8_t)b); break;
            case LQ_DTYPE_F8_E8M0: want[b] = lq_e8m0_to_f32((uint8_t)b); break;
            case LQ_DTYPE_U8: want[b] = (float)b; break;
            default: want[b] = (float)(int8_t)b; break;
            }
            CHECK(same_float(out[b], want[b]));
        }
    }
    CHECK(out[0xFF] == -1.0f && out[0x80] == -128.0f); /* I8 */

    float f32in[5] = {1.0f, -2.5f, 448.0f, 1e9f, -0.0f};
    memcpy(src, f32in, sizeof f32in);
    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_F32, src, 5, out), LQ_OK);
    CHECK(memcmp(out, f32in, sizeof f32in) == 0);

    uint8_t enc[20];
    CHECK_EQ_U64(lq_from_f32(LQ_DTYPE_F8_E4M3, f32in, 5, enc), LQ_OK);
    CHECK(enc[0] == 0x38 && enc[2] == 0x7E && enc[3] == 0x7E && enc[4] == 0x80); /* saturating */
    CHECK_EQ_U64(lq_from_f32(LQ_DTYPE_F8_E5M2, f32in, 5, enc), LQ_OK);
    CHECK(enc[0] == 0x3C && enc[3] == 0x7C);
    CHECK_EQ_U64(lq_from_f32(LQ_DTYPE_BF16, f32in, 5, enc + 1), LQ_OK);
    CHECK(enc[1] == 0x80 && enc[2] == 0x3F); /* 1.0 = 0x3F80 little-endian */
    CHECK_EQ_U64(lq_from_f32(LQ_DTYPE_F16, f32in, 5, enc + 1), LQ_OK);
    CHECK(enc[1] == 0x00 && enc[2] == 0x3C && enc[7] == 0x00 && enc[8] == 0x7C); /* 1e9 -> inf */
    CHECK_EQ_U64(lq_from_f32(LQ_DTYPE_F32, f32in, 5, enc), LQ_OK);
    CHECK(memcmp(enc, f32in, 20) == 0);

    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_I32, src, 4, out), LQ_ERR_UNSUPPORTED);
    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_F4, src, 4, out), LQ_ERR_UNSUPPORTED);
    CHECK_EQ_U64(lq_from_f32(LQ_DTYPE_F8_E8M0, f32in, 4, enc), LQ_ERR_UNSUPPORTED);
    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_BF16, NULL, 4, out), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_to_f32(LQ_DTYPE_BF16, NULL, 0, NULL), LQ_OK);
}

int main(void)
{
    test_names();
    test_bf16();
    test_f16();
    test_fp8();
    test_e8m0();
    test_bulk();
    return th_finish("test_dtype");
}
