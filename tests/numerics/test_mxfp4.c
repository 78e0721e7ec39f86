/* MXFP4 codec tests (libquant/mxfp4.h).
 *
 * Expected values come from reference/mxfp4_formats.md (1.2 code table and decision points,
 * 1.7 round-trip property, 1.8 golden vectors and error table) or from the independent reference
 * quantizer below, which follows the definitions literally: the nearest of the 8 magnitudes in
 * double precision with ties to the even code, floor(log2 amax) from frexp, RCEIL as the
 * smallest e with amax <= 6 * 2^e found by stepping, and MSE by summing squared errors of both
 * candidates in long double. It shares no code with the library.
 *
 * This file is also built against libquant/mxfp4.c compiled with LQ_MXFP4_ISA=0 and =1 (see
 * meson.build), so the portable, SSE2 and AVX2 kernels all meet the same checks. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/metrics.h"
#include "libquant/mxfp4.h"
#include "tests/harness.h"

/* ---- helpers ---- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double next_unit(void) /* (0, 1) */
{
    return ((double)(next_u64() >> 11) + 0.5) * 0x1p-53;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const lq_mx_scale_mode all_modes[4] = {LQ_MX_SCALE_FLOOR, LQ_MX_SCALE_RCEIL,
                                              LQ_MX_SCALE_EVEN, LQ_MX_SCALE_MSE};

static uint8_t code_at(const uint8_t *packed, size_t i)
{
    uint8_t b = packed[i / 2];
    return (uint8_t)(i % 2 ? b >> 4 : b & 0xF);
}

/* ---- independent reference ---- */

static const double ref_mag[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};

/* Nearest magnitude, ties to the even code (1.2). */
static int ref_code_mag(double y)
{
    int best = 0;
    double bd = fabs(y);
    for (int c = 1; c < 8; c++) {
        double d = fabs(y - ref_mag[c]);
        if (d < bd || (d == bd && c % 2 == 0)) {
            best = c;
            bd = d;
        }
    }
    return best;
}

static int clampi(int e)
{
    return e < -127 ? -127 : e > 127 ? 127 : e;
}

/* Sum of squared errors in units of x (not of 2^e, so candidates compare directly). */
static long double ref_sq_err(const float *xb, int e)
{
    long double s = 0;
    for (int i = 0; i < 32; i++) {
        double ax = fabs((double)xb[i]);
        double q = ldexp(ref_mag[ref_code_mag(ldexp(ax, -e))], e);
        long double d = (long double)ax - (long double)q;
        s += d * d;
    }
    return s;
}

typedef struct ref_block {
    int zero; /* all elements +-0 */
    int e, ef;
    uint8_t codes[32];
    unsigned clipped, zeroed;
} ref_block;

static void ref_quantize_block(const float *xb, lq_mx_scale_mode mode, ref_block *r)
{
    double amax = 0;
    for (int i = 0; i < 32; i++)
        amax = fmax(amax, fabs((double)xb[i]));
    memset(r, 0, sizeof *r);
    if (amax == 0) {
        r->zero = 1;
        for (int i = 0; i < 32; i++)
            r->codes[i] = signbit(xb[i]) ? 8 : 0;
        return;
    }
    int E2;
    double m = frexp(amax, &E2); /* amax = m 2^E2, m in [0.5, 1) */
    int E = E2 - 1;              /* floor(log2 amax) */
    int ef = clampi(E - 2), e = ef;
    if (mode == LQ_MX_SCALE_RCEIL) {
        e = E - 4;
        while (amax > ldexp(6.0, e))
            e++;
        e = clampi(e);
    } else if (mode == LQ_MX_SCALE_EVEN) {
        double r1 = floor(4.0 * m + 0.5) / 2.0; /* 2m rounded half up to a multiple of 0.5 */
        e = clampi((r1 >= 2.0 ? E + 1 : E) - 2);
    } else if (mode == LQ_MX_SCALE_MSE) {
        if (ef < 127 && ref_sq_err(xb, ef + 1) < ref_sq_err(xb, ef))
            e = ef + 1;
    }
    r->e = e;
    r->ef = ef;
    for (int i = 0; i < 32; i++) {
        double y = ldexp(fabs((double)xb[i]), -e);
        int c = ref_code_mag(y);
        r->codes[i] = (uint8_t)(c | (signbit(xb[i]) ? 8 : 0));
        r->clipped += y > 6.0;
        r->zeroed += xb[i] != 0.0f && c == 0;
    }
}

/* Compares the library with the reference on nb blocks; returns the number of mismatching blocks. */
static size_t compare_with_ref(const float *x, size_t nb, lq_mx_scale_mode mode, int threads)
{
    uint8_t *packed = malloc(nb * 16), *scales = malloc(nb);
    lq_mx_counts cnt = {0};
    size_t bad = 0, mism = 0;
    uint64_t rc = 0, rz = 0, rp = 0, rzb = 0;
    CHECK(packed && scales);
    if (!packed || !scales)
        goto out;
    lq_status st = lq_mxfp4_quantize_mt(x, nb * 32, mode, packed, scales, &cnt, &bad, threads);
    CHECK_EQ_U64(st, LQ_OK);
    for (size_t b = 0; b < nb; b++) {
        ref_block r;
        ref_quantize_block(x + b * 32, mode, &r);
        uint8_t want_scale = r.zero ? 0 : (uint8_t)(r.e + 127);
        int ok = scales[b] == want_scale;
        for (int i = 0; i < 32; i++)
            ok &= code_at(packed + b * 16, (size_t)i) == r.codes[i];
        if (!ok && mism++ < 3) {
            fprintf(stderr, "mode %s block %zu: scale %u want %u; x[0..3] = %a %a %a %a\n",
                    lq_mx_scale_mode_name(mode), b, scales[b], want_scale, (double)x[b * 32],
                    (double)x[b * 32 + 1], (double)x[b * 32 + 2], (double)x[b * 32 + 3]);
        }
        rc += r.clipped;
        rz += r.zeroed;
        rp += r.zero ? 0 : (uint64_t)(r.e - r.ef);
        rzb += r.zero;
    }
    CHECK_EQ_U64(cnt.clipped, rc);
    CHECK_EQ_U64(cnt.zeroed, rz);
    CHECK_EQ_U64(cnt.plus_one, rp);
    CHECK_EQ_U64(cnt.zero_blocks, rzb);
out:
    free(packed);
    free(scales);
    return mism;
}

/* ---- cases ---- */

/* 1.2: code table from the bit fields S EE M, and names. */
static void test_table_and_names(void)
{
    for (int c = 0; c < 16; c++) {
        int s = c >> 3, ee = (c >> 1) & 3, mm = c & 1;
        double v = ee ? ldexp(1.0 + mm / 2.0, ee - 1) : 0.5 * mm;
        if (s)
            v = -v;
        CHECK(lq_fp4_values[c] == (float)v);
        CHECK((signbit(lq_fp4_values[c]) != 0) == (s != 0));
        CHECK_EQ_U64(lq_fp4_encode(lq_fp4_values[c]), c);
    }
    const char *names[4] = {"floor", "rceil", "even", "mse"};
    for (int m = 0; m < 4; m++) {
        lq_mx_scale_mode out;
        CHECK_STR(lq_mx_scale_mode_name(all_modes[m]), names[m]);
        CHECK_EQ_U64(lq_mx_scale_mode_parse(names[m], &out), LQ_OK);
        CHECK_EQ_U64(out, all_modes[m]);
    }
    lq_mx_scale_mode out;
    CHECK_EQ_U64(lq_mx_scale_mode_parse("ceil", &out), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_mx_scale_mode_parse("FLOOR", &out), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_mx_scale_mode_parse(NULL, &out), LQ_ERR_INVALID_ARGUMENT);
}

/* 1.2 decision points: value at the point, and the floats just below and above it. Expected
 * codes by hand: ties go to the even code (0.25 -> 0, 0.75 -> 2 = 1.0, 1.25 -> 2, 1.75 -> 4
 * = 2.0, 2.5 -> 4, 3.5 -> 6 = 4.0, 5 -> 6); just below / above are the two neighbours. */
static const struct {
    float t;
    uint8_t below, at, above;
} points[7] = {
    {0.25f, 0, 0, 1}, {0.75f, 1, 2, 2}, {1.25f, 2, 2, 3}, {1.75f, 3, 4, 4},
    {2.5f, 4, 4, 5},  {3.5f, 5, 6, 6},  {5.0f, 6, 6, 7},
};

static void test_decision_points_scalar(void)
{
    for (int k = 0; k < 7; k++) {
        float t = points[k].t;
        CHECK_EQ_U64(lq_fp4_encode(nextafterf(t, 0.0f)), points[k].below);
        CHECK_EQ_U64(lq_fp4_encode(t), points[k].at);
        CHECK_EQ_U64(lq_fp4_encode(nextafterf(t, 100.0f)), points[k].above);
        CHECK_EQ_U64(lq_fp4_encode(-t), points[k].at | 8);
        CHECK_EQ_U64(lq_fp4_encode(-nextafterf(t, 100.0f)), points[k].above | 8);
    }
    /* Saturation at 6 and the sign of zero. */
    CHECK_EQ_U64(lq_fp4_encode(6.0f), 7);
    CHECK_EQ_U64(lq_fp4_encode(7.99f), 7);
    CHECK_EQ_U64(lq_fp4_encode(1e30f), 7);
    CHECK_EQ_U64(lq_fp4_encode(-1e30f), 15);
    CHECK_EQ_U64(lq_fp4_encode(INFINITY), 7);
    CHECK_EQ_U64(lq_fp4_encode(0.0f), 0);
    CHECK_EQ_U64(lq_fp4_encode(-0.0f), 8);
    CHECK_EQ_U64(lq_fp4_encode(-0.1f), 8);
    CHECK_EQ_U64(lq_fp4_encode(1e-45f), 0);
}

/* The same points inside real blocks, at many scales, so the block kernels see every tie.
 * Element 0 is 4 * 2^e: its significand is 1, so every mode picks exactly e (FLOOR E-2 = e;
 * RCEIL 4 <= 6; EVEN 1 < 1.75; MSE: nothing above 7), and the other 31 elements are
 * (point or neighbour) * 2^e with alternating signs. */
static void test_decision_points_blocks(void)
{
    for (int e = -127; e <= 125; e++) {
        float xb[32];
        xb[0] = ldexpf(4.0f, e);
        uint8_t want[32];
        want[0] = 6;
        for (int i = 1; i < 32; i++) {
            int k = (i - 1) % 7, which = ((i - 1) / 7) % 3;
            float t = points[k].t;
            float v = which == 0 ? nextafterf(t, 0.0f) : which == 1 ? t : nextafterf(t, 100.0f);
            uint8_t c = which == 0 ? points[k].below : which == 1 ? points[k].at : points[k].above;
            /* Scaling a neighbour into the f32 subnormal range would round it; skip those. */
            float xv = ldexpf(v, e);
            if (ldexpf(xv, -e) != v) {
                xv = 0.0f;
                c = 0;
            }
            xb[i] = i % 2 ? -xv : xv;
            want[i] = (uint8_t)(c | (i % 2 ? 8 : 0));
        }
        for (int m = 0; m < 4; m++) {
            uint8_t packed[16], scale;
            CHECK_EQ_U64(lq_mxfp4_quantize(xb, 32, all_modes[m], packed, &scale, NULL, NULL), LQ_OK);
            CHECK_EQ_U64(scale, e + 127);
            int ok = 1;
            for (int i = 0; i < 32; i++)
                ok &= code_at(packed, (size_t)i) == want[i];
            CHECK_MSG(ok, "tie codes wrong at e = %d, mode %s", e, lq_mx_scale_mode_name(all_modes[m]));
        }
    }
}

/* 1.8 golden vectors: x[i] = (i - 16) * 0.4375, x[5] = +0, x[6] = -0. */
static void test_golden(void)
{
    float x[32];
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) * 0.4375f;
    x[5] = 0.0f;
    x[6] = -0.0f;
    static const uint8_t floor_bytes[16] = {0xFF, 0xFF, 0x0F, 0xE8, 0xDE, 0xCD, 0xBC, 0x9A,
                                            0x10, 0x32, 0x44, 0x55, 0x66, 0x66, 0x77, 0x77};
    static const uint8_t rceil_bytes[16] = {0xDE, 0xDD, 0x0D, 0xC8, 0xBC, 0xAB, 0x9A, 0x89,
                                            0x00, 0x11, 0x22, 0x33, 0x44, 0x44, 0x55, 0x55};
    uint8_t packed[16], scale;
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_FLOOR, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 0x7F);
    CHECK(memcmp(packed, floor_bytes, 16) == 0);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_RCEIL, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 0x80);
    CHECK(memcmp(packed, rceil_bytes, 16) == 0);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_EVEN, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 0x80);
    CHECK(memcmp(packed, rceil_bytes, 16) == 0);
    /* MSE: the squared errors of the two candidates, summed by hand (in a short independent
     * script), are SE(e = 0) = 4.88671875 and SE(e = 1) = 5.38671875, so floor is kept. */
    ref_block r;
    ref_quantize_block(x, LQ_MX_SCALE_MSE, &r);
    CHECK_EQ_U64(r.e, 0);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_MSE, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 0x7F);
    CHECK(memcmp(packed, floor_bytes, 16) == 0);
}

/* All-zero blocks, -0.0, tiny and huge amax, RCEIL at the subnormal quotient boundary. */
static void test_edges(void)
{
    float x[32];
    uint8_t packed[16], scale;
    lq_mx_counts cnt = {0};
    for (int i = 0; i < 32; i++)
        x[i] = i % 3 == 0 ? -0.0f : 0.0f;
    for (int m = 0; m < 4; m++) {
        CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, all_modes[m], packed, &scale, &cnt, NULL), LQ_OK);
        CHECK_EQ_U64(scale, 0);
        for (int i = 0; i < 32; i++)
            CHECK_EQ_U64(code_at(packed, (size_t)i), i % 3 == 0 ? 8 : 0);
    }
    CHECK_EQ_U64(cnt.zero_blocks, 4);
    CHECK_EQ_U64(cnt.zeroed, 0);

    /* -0.0 inside a normal block keeps its sign (0x8); -tiny rounds to -0 (0x8). */
    for (int i = 0; i < 32; i++)
        x[i] = 1.0f;
    x[3] = -0.0f;
    x[4] = -0.01f;
    x[5] = 0.01f;
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_FLOOR, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 127 - 2); /* amax 1 -> e = -2 */
    CHECK_EQ_U64(code_at(packed, 3), 8);
    CHECK_EQ_U64(code_at(packed, 4), 8);
    CHECK_EQ_U64(code_at(packed, 5), 0);
    CHECK_EQ_U64(code_at(packed, 0), 6); /* 1 / 2^-2 = 4 */

    /* Saturation: 7.9 * 2^e under FLOOR (e = E - 2 = 0 for amax in [4, 8)) clips to 6. */
    for (int i = 0; i < 32; i++)
        x[i] = 0.0f;
    x[0] = 7.9f;
    x[1] = -6.5f;
    memset(&cnt, 0, sizeof cnt);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_FLOOR, packed, &scale, &cnt, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 127);
    CHECK_EQ_U64(code_at(packed, 0), 7);
    CHECK_EQ_U64(code_at(packed, 1), 15);
    CHECK_EQ_U64(cnt.clipped, 2);

    /* Tiny amax: subnormal inputs clamp the scale to 0x00 in every mode; 1e-40 * 2^127 = 0.017
     * flushes to zero (counted as zeroed), and 2^-126 * 2^127 = 2 keeps code 4. */
    for (int i = 0; i < 32; i++)
        x[i] = i % 2 ? -1e-40f : 1e-40f;
    for (int m = 0; m < 4; m++) {
        memset(&cnt, 0, sizeof cnt);
        CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, all_modes[m], packed, &scale, &cnt, NULL), LQ_OK);
        CHECK_EQ_U64(scale, 0);
        CHECK_EQ_U64(packed[0], 0x80);
        CHECK_EQ_U64(cnt.zeroed, 32);
    }
    x[7] = FLT_MIN;
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_RCEIL, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 0);
    CHECK_EQ_U64(code_at(packed, 7), 4);

    /* RCEIL = ceil(log2(amax / 6)): amax = 1.5 * 2^-125 = 6 * 2^-127 gives e = -127 (0x00);
     * the next float up needs e = -126 (0x01). */
    for (int i = 0; i < 32; i++)
        x[i] = 0.0f;
    x[9] = ldexpf(1.5f, -125);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_RCEIL, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 0);
    CHECK_EQ_U64(code_at(packed, 9), 7);
    x[9] = nextafterf(ldexpf(1.5f, -125), 1.0f);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, LQ_MX_SCALE_RCEIL, packed, &scale, NULL, NULL), LQ_OK);
    CHECK_EQ_U64(scale, 1);

    /* Huge amax: 3e38 = 1.763 * 2^127. FLOOR 127 - 2 -> 0xFC; RCEIL and EVEN (1.763 > 1.5 and
     * >= 1.75) -> 0xFD; never 0xFF. FLT_MAX likewise. */
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) * 1e37f;
    x[0] = 3e38f;
    const uint8_t want_huge[4] = {0xFC, 0xFD, 0xFD, 0};
    for (int m = 0; m < 4; m++) {
        CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, all_modes[m], packed, &scale, NULL, NULL), LQ_OK);
        if (m < 3)
            CHECK_EQ_U64(scale, want_huge[m]);
        else
            CHECK(scale == 0xFC || scale == 0xFD);
        CHECK(scale != 0xFF);
    }
    x[0] = -FLT_MAX;
    for (int m = 0; m < 4; m++) {
        CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, all_modes[m], packed, &scale, NULL, NULL), LQ_OK);
        CHECK(scale <= 0xFD);
    }
}

/* Non-finite inputs: LQ_ERR_NUMERIC with the index of the first one. */
static void test_nonfinite(void)
{
    size_t n = 32 * 3000;
    float *x = malloc(n * sizeof *x);
    uint8_t *packed = malloc(n / 2), *scales = malloc(n / 32);
    CHECK(x && packed && scales);
    if (!x || !packed || !scales)
        goto out;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)i * 1e-3);
    const float bad_vals[4] = {NAN, -NAN, INFINITY, -INFINITY};
    const size_t where[3] = {0, 77, n - 1};
    for (int v = 0; v < 4; v++) {
        for (int w = 0; w < 3; w++) {
            float keep = x[where[w]];
            x[where[w]] = bad_vals[v];
            for (int m = 0; m < 4; m++) {
                size_t bad = 12345;
                CHECK_EQ_U64(lq_mxfp4_quantize(x, n, all_modes[m], packed, scales, NULL, &bad),
                             LQ_ERR_NUMERIC);
                CHECK_EQ_U64(bad, where[w]);
                bad = 12345;
                CHECK_EQ_U64(lq_mxfp4_quantize_mt(x, n, all_modes[m], packed, scales, NULL, &bad, 3),
                             LQ_ERR_NUMERIC);
                CHECK_EQ_U64(bad, where[w]);
            }
            x[where[w]] = keep;
        }
    }
    /* Two bad values in different thread ranges: the smaller index wins. */
    x[n - 40] = NAN;
    x[2000] = INFINITY;
    for (int t = 1; t <= 5; t++) {
        size_t bad = 0;
        CHECK_EQ_U64(lq_mxfp4_quantize_mt(x, n, LQ_MX_SCALE_MSE, packed, scales, NULL, &bad, t),
                     LQ_ERR_NUMERIC);
        CHECK_EQ_U64(bad, 2000);
    }
    /* Bad arguments. */
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 33, LQ_MX_SCALE_FLOOR, packed, scales, NULL, NULL),
                 LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_mxfp4_quantize(x, 32, (lq_mx_scale_mode)9, packed, scales, NULL, NULL),
                 LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_mxfp4_quantize(NULL, 32, LQ_MX_SCALE_FLOOR, packed, scales, NULL, NULL),
                 LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_mxfp4_quantize(NULL, 0, LQ_MX_SCALE_FLOOR, NULL, NULL, NULL, NULL), LQ_OK);
out:
    free(x);
    free(packed);
    free(scales);
}

/* Random blocks with a wide spread of magnitudes, exact midpoints and subnormals, compared with
 * the reference quantizer block by block, counters included. */
static float random_element(int base)
{
    uint64_t r = next_u64();
    int kind = (int)(r % 8);
    float v;
    if (kind == 0) {
        /* a decision point or its neighbour at the block's nominal scale */
        static const float t[9] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f};
        v = t[(r >> 8) % 9];
        if ((r >> 16) % 3 == 0)
            v = nextafterf(v, 0.0f);
        else if ((r >> 16) % 3 == 1)
            v = nextafterf(v, 100.0f);
        v = ldexpf(v, base);
    } else if (kind == 1) {
        v = 0.0f;
    } else if (kind == 2) {
        v = ldexpf((float)next_unit(), base - (int)((r >> 8) % 40)); /* far below the max */
    } else {
        v = ldexpf((float)(next_unit() * 8.0), base);
    }
    return (r >> 40) & 1 ? -v : v;
}

static void test_against_reference(void)
{
    size_t nb = 40000;
    float *x = malloc(nb * 32 * sizeof *x);
    CHECK(x != NULL);
    if (!x)
        return;
    for (size_t b = 0; b < nb; b++) {
        /* Block scales across the whole range, with extra weight on the extremes. */
        int base;
        uint64_t r = next_u64() % 10;
        if (r == 0)
            base = -150 + (int)(next_u64() % 30);
        else if (r == 1)
            base = 100 + (int)(next_u64() % 26);
        else
            base = -20 + (int)(next_u64() % 40);
        for (int i = 0; i < 32; i++)
            x[b * 32 + i] = random_element(base);
        if (b % 97 == 0)
            for (int i = 0; i < 32; i++)
                x[b * 32 + i] = i % 5 ? 0.0f : -0.0f;
    }
    for (int m = 0; m < 4; m++) {
        size_t mism = compare_with_ref(x, nb, all_modes[m], 1);
        CHECK_MSG(mism == 0, "mode %s: %zu of %zu blocks differ from the reference",
                  lq_mx_scale_mode_name(all_modes[m]), mism, nb);
    }
    free(x);
}

/* 1.7: quantize(dequantize(q)) reproduces dequantize(q) for random valid blocks in every mode
 * (200,000 blocks), and the bytes too whenever the block's largest magnitude code is 4.0 or
 * 6.0 (otherwise FLOOR-like rules legitimately pick a smaller scale for the same values). */
static void test_idempotence(void)
{
    size_t nb = 200000;
    uint8_t *p0 = malloc(nb * 16), *s0 = malloc(nb), *p1 = malloc(nb * 16), *s1 = malloc(nb);
    float *v0 = malloc(nb * 32 * sizeof(float)), *v1 = malloc(nb * 32 * sizeof(float));
    CHECK(p0 && s0 && p1 && s1 && v0 && v1);
    if (!p0 || !s0 || !p1 || !s1 || !v0 || !v1)
        goto out;
    for (size_t b = 0; b < nb; b++) {
        /* Scale bytes 0..252: from 253 on, 6 * 2^(s-127) >= 2^128 is beyond f32. */
        s0[b] = (uint8_t)(next_u64() % 253);
        int kmax = 1 + (int)(next_u64() % 7);
        if (b % 2)
            kmax = 7; /* half the blocks use the full code range */
        for (int j = 0; j < 16; j++) {
            uint8_t lo = (uint8_t)(next_u64() % (uint64_t)(kmax + 1)) | ((next_u64() & 1) << 3);
            uint8_t hi = (uint8_t)(next_u64() % (uint64_t)(kmax + 1)) | ((next_u64() & 1) << 3);
            p0[b * 16 + (size_t)j] = (uint8_t)(lo | hi << 4);
        }
    }
    CHECK_EQ_U64(lq_mxfp4_dequantize(p0, s0, nb * 32, v0, NULL), LQ_OK);
    for (int m = 0; m < 4; m++) {
        CHECK_EQ_U64(lq_mxfp4_quantize(v0, nb * 32, all_modes[m], p1, s1, NULL, NULL), LQ_OK);
        CHECK_EQ_U64(lq_mxfp4_dequantize(p1, s1, nb * 32, v1, NULL), LQ_OK);
        size_t value_mism = 0, byte_mism = 0, byte_checked = 0;
        for (size_t b = 0; b < nb; b++) {
            int maxc = 0, allzero = 1;
            for (int i = 0; i < 32; i++) {
                int c = code_at(p0 + b * 16, (size_t)i) & 7;
                maxc = c > maxc ? c : maxc;
                allzero &= c == 0;
            }
            /* Bitwise equality of values: the sign of zero survives as well. */
            if (memcmp(v0 + b * 32, v1 + b * 32, 32 * sizeof(float)) != 0)
                value_mism++;
            if (maxc >= 6 && !allzero) {
                byte_checked++;
                if (s0[b] != s1[b] || memcmp(p0 + b * 16, p1 + b * 16, 16) != 0)
                    byte_mism++;
            }
        }
        CHECK_MSG(value_mism == 0, "mode %s: %zu blocks changed value", lq_mx_scale_mode_name(all_modes[m]),
                  value_mism);
        CHECK_MSG(byte_mism == 0, "mode %s: %zu of %zu blocks changed bytes",
                  lq_mx_scale_mode_name(all_modes[m]), byte_mism, byte_checked);
        CHECK(byte_checked > nb / 2);
    }
out:
    free(p0);
    free(s0);
    free(p1);
    free(s1);
    free(v0);
    free(v1);
}

/* Threads: identical bytes and counters for 1..5 threads and odd sizes. */
static void test_threads(void)
{
    static const size_t sizes[] = {1, 7, 1023, 2049, 5 * 1024 + 3, 12345};
    size_t maxnb = 12345;
    float *x = malloc(maxnb * 32 * sizeof(float));
    uint8_t *p1 = malloc(maxnb * 16), *s1 = malloc(maxnb), *pt = malloc(maxnb * 16),
            *st = malloc(maxnb);
    CHECK(x && p1 && s1 && pt && st);
    if (!x || !p1 || !s1 || !pt || !st)
        goto out;
    for (size_t i = 0; i < maxnb * 32; i++)
        x[i] = random_element((int)(i / 32 % 17) - 8);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t nb = sizes[k];
        for (int m = 0; m < 4; m++) {
            lq_mx_counts c1 = {0};
            CHECK_EQ_U64(lq_mxfp4_quantize(x, nb * 32, all_modes[m], p1, s1, &c1, NULL), LQ_OK);
            for (int t = 1; t <= 5; t++) {
                lq_mx_counts ct = {0};
                memset(pt, 0xAA, nb * 16);
                memset(st, 0xAA, nb);
                CHECK_EQ_U64(lq_mxfp4_quantize_mt(x, nb * 32, all_modes[m], pt, st, &ct, NULL, t),
                             LQ_OK);
                CHECK_MSG(memcmp(p1, pt, nb * 16) == 0 && memcmp(s1, st, nb) == 0,
                          "%zu blocks, %d threads, mode %s: bytes differ", nb, t,
                          lq_mx_scale_mode_name(all_modes[m]));
                CHECK(memcmp(&c1, &ct, sizeof c1) == 0);
            }
        }
    }
out:
    free(x);
    free(p1);
    free(s1);
    free(pt);
    free(st);
}

/* 1.8 error table on 2^20 values per distribution: SQNR within 0.05 dB; clip% and zero% within
 * 0.15 points; +1 blocks within 1 point (32768 blocks: binomial sd about 0.25 points). The
 * counters of the codec are cross-checked against lq_err_acc on the same data. */
static void test_error_table(void)
{
    static const struct {
        int laplace;
        lq_mx_scale_mode mode;
        double sqnr, clip, zero, plus1;
    } ref[8] = {
        {0, LQ_MX_SCALE_FLOOR, 18.79, 2.34, 8.79, 0.0},  {0, LQ_MX_SCALE_RCEIL, 18.76, 0.0, 10.68, 29.6},
        {0, LQ_MX_SCALE_EVEN, 19.03, 0.62, 9.72, 16.9},  {0, LQ_MX_SCALE_MSE, 19.05, 0.83, 9.52, 14.1},
        {1, LQ_MX_SCALE_FLOOR, 17.99, 1.92, 16.44, 0.0}, {1, LQ_MX_SCALE_RCEIL, 17.56, 0.0, 21.11, 39.7},
        {1, LQ_MX_SCALE_EVEN, 18.16, 0.83, 18.43, 18.2}, {1, LQ_MX_SCALE_MSE, 18.24, 1.11, 17.69, 12.3},
    };
    size_t n = (size_t)1 << 20, nb = n / 32;
    float *x = malloc(n * sizeof(float)), *q = malloc(n * sizeof(float));
    uint8_t *packed = malloc(n / 2), *scales = malloc(nb);
    CHECK(x && q && packed && scales);
    if (!x || !q || !packed || !scales)
        goto out;
    for (int d = 0; d < 2; d++) {
        for (size_t i = 0; i < n; i += 2) {
            if (d == 0) { /* Box-Muller */
                double r = sqrt(-2.0 * log(next_unit())), t = 2.0 * M_PI * next_unit();
                x[i] = (float)(r * cos(t));
                x[i + 1] = (float)(r * sin(t));
            } else { /* unit-variance Laplace by inverse CDF */
                for (size_t j = i; j < i + 2; j++) {
                    double u = next_unit() - 0.5;
                    x[j] = (float)(-copysign(1.0, u) * log(1.0 - 2.0 * fabs(u)) / sqrt(2.0));
                }
            }
        }
        for (int m = 0; m < 4; m++) {
            int k = d * 4 + m;
            lq_mx_counts cnt = {0};
            CHECK_EQ_U64(lq_mxfp4_quantize_mt(x, n, ref[k].mode, packed, scales, &cnt, NULL, 2), LQ_OK);
            CHECK_EQ_U64(lq_mxfp4_dequantize(packed, scales, n, q, NULL), LQ_OK);
            lq_err_acc acc;
            lq_metrics met;
            lq_err_acc_init(&acc);
            lq_err_acc_add(&acc, x, q, n, scales);
            lq_err_acc_finish(&acc, &met);
            CHECK_NEAR(met.sqnr_db, ref[k].sqnr, 0.05, 0);
            CHECK_NEAR(100.0 * met.clip_frac, ref[k].clip, 0.15, 0);
            CHECK_NEAR(100.0 * met.zero_frac, ref[k].zero, 0.15, 0);
            CHECK_NEAR(100.0 * (double)cnt.plus_one / (double)nb, ref[k].plus1, 1.0, 0);
            CHECK_EQ_U64(cnt.clipped, acc.clipped);
            CHECK_EQ_U64(cnt.zeroed, acc.zeroed);
            fprintf(stderr, "%s %-5s SQNR %.3f dB (ref %.2f) clip %.2f%% zero %.2f%% +1 %.1f%%\n",
                    d ? "laplace " : "gaussian", lq_mx_scale_mode_name(ref[k].mode), met.sqnr_db,
                    ref[k].sqnr, 100.0 * met.clip_frac, 100.0 * met.zero_frac,
                    100.0 * (double)cnt.plus_one / (double)nb);
        }
    }
out:
    free(x);
    free(q);
    free(packed);
    free(scales);
}

/* Dequantize: nibble order, scale byte 0 (subnormal 2^-127), 0xFF rejected; passthrough. */
static void test_dequant_passthrough(void)
{
    uint8_t packed[32], scales[2] = {127, 0};
    float out[64];
    for (int j = 0; j < 32; j++)
        packed[j] = (uint8_t)(j & 0xF) | (uint8_t)(((j + 5) & 0xF) << 4);
    CHECK_EQ_U64(lq_mxfp4_dequantize(packed, scales, 64, out, NULL), LQ_OK);
    for (int j = 0; j < 16; j++) {
        CHECK(fbits(out[2 * j]) == fbits(lq_fp4_values[j & 0xF]));         /* low nibble first */
        CHECK(fbits(out[2 * j + 1]) == fbits(lq_fp4_values[(j + 5) & 0xF])); /* then high */
    }
    for (int j = 16; j < 32; j++) {
        /* 1.3: byte 0 is 2^-127 = f32 bits 0x00400000, so code 1 (0.5) gives 2^-128. */
        CHECK(out[2 * j] == (float)ldexp(lq_fp4_values[j & 0xF], -127));
    }
    CHECK(fbits(out[2 * 17]) == 0x00200000u);
    /* Scale 253 is 2^126: 3 * 2^126 = 1.5 * 2^127 is the largest finite product, 4 * 2^126 =
     * 2^128 is beyond f32 and decodes to inf (mxfp4.h). */
    uint8_t big[16] = {0x65, 0xED}, big_scale = 253; /* values 3, 4, -3, -4 */
    float bigv[32];
    CHECK_EQ_U64(lq_mxfp4_dequantize(big, &big_scale, 32, bigv, NULL), LQ_OK);
    CHECK(bigv[0] == 0x1.8p127f && isinf(bigv[1]) && bigv[1] > 0);
    CHECK(bigv[2] == -0x1.8p127f && isinf(bigv[3]) && bigv[3] < 0);
    scales[1] = 0xFF;
    size_t bad = 99;
    CHECK_EQ_U64(lq_mxfp4_dequantize(packed, scales, 64, out, &bad), LQ_ERR_CORRUPT);
    CHECK_EQ_U64(bad, 1);
    CHECK_EQ_U64(lq_mxfp4_dequantize(packed, scales, 40, out, &bad), LQ_ERR_INVALID_ARGUMENT);

    uint8_t pout[32], sout[2];
    bad = 99;
    CHECK_EQ_U64(lq_mxfp4_passthrough(packed, scales, 64, pout, sout, &bad), LQ_ERR_CORRUPT);
    CHECK_EQ_U64(bad, 1);
    scales[1] = 0xFE;
    CHECK_EQ_U64(lq_mxfp4_passthrough(packed, scales, 64, pout, sout, &bad), LQ_OK);
    CHECK(memcmp(pout, packed, 32) == 0 && memcmp(sout, scales, 2) == 0);
    CHECK_EQ_U64(lq_mxfp4_passthrough(packed, scales, 64, packed, scales, &bad), LQ_OK);
}

int main(void)
{
    test_table_and_names();
    test_decision_points_scalar();
    test_decision_points_blocks();
    test_golden();
    test_edges();
    test_nonfinite();
    test_against_reference();
    test_idempotence();
    test_threads();
    test_error_table();
    test_dequant_passthrough();
    return th_finish("test_mxfp4");
}
