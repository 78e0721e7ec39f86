/* Value checks of stored weights (libquant/values.h).
 *
 * For every dtype and rule one bad value is planted at the first, a middle and the last element
 * and on both sides of a scan-chunk boundary (2048 elements for floats, 4096 scale blocks for
 * MXFP4; 128-column / 128-row scale blocks for FP8), and the rule and the index the message names
 * ("element N ...") are asserted. Where expected values come from:
 * - the bit patterns of NaN / inf / largest finite values are the IEEE binary32 / binary16 and
 *   bfloat16 encodings, and the FP8 ones reference/mxfp4_formats.md 4.1 (E4M3 NaN S.1111.111, E5M2
 *   exponent 11111 inf / NaN);
 * - the E2M1 values are the table of reference/mxfp4_formats.md 1.2, the E8M0 scale 2^(b-127) with
 *   0xFF NaN is 1.3; f32 overflows at 2^128 (its largest finite value is (2 - 2^-23) 2^127), so the
 *   MXFP4 boundary cases follow by hand: 6 * 2^125 (0xFC) and 3 * 2^126 (0xFD) are finite,
 *   4 * 2^126 = 2^128 is not; 1.5 * 2^127 (0xFE) is finite, 2 * 2^127 is not;
 * - statistics are compared with a plain double-precision loop over values decoded in this file
 *   (relative tolerance 1e-12 for sums, whose order differs; counts and maxima exact). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/dtype.h"
#include "libquant/fp8block.h"
#include "libquant/values.h"
#include "tests/harness.h"

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Uniform in [-a, a). */
static float uniform(float a)
{
    return (float)(((double)(next_u64() >> 11) * 0x1p-53 * 2.0 - 1.0) * a);
}

/* The flat index a message names ("element N ..."), or UINT64_MAX. */
static uint64_t msg_index(const lq_error *e)
{
    unsigned long long i;
    if (sscanf(e->msg, "element %llu", &i) != 1)
        return UINT64_MAX;
    return i;
}

/* Runs one failing case and checks status, rule and index, with and without statistics. */
#define EXPECT_FAIL(call_with_stats, stats_ptr, rule_str, index)                                           \
    do {                                                                                                   \
        lq_error e_;                                                                                       \
        lq_error_clear(&e_);                                                                               \
        lq_value_stats *stats_ptr = NULL;                                                                  \
        lq_status st_ = (call_with_stats);                                                                 \
        CHECK_EQ_U64(st_, LQ_ERR_NUMERIC);                                                                 \
        CHECK_STR(e_.rule, rule_str);                                                                      \
        CHECK_MSG(msg_index(&e_) == (uint64_t)(index), "%s: want element %llu: %s", rule_str,             \
                  (unsigned long long)(index), e_.msg);                                                    \
        lq_value_stats s_;                                                                                 \
        stats_ptr = &s_;                                                                                   \
        lq_error_clear(&e_);                                                                               \
        st_ = (call_with_stats);                                                                           \
        CHECK_EQ_U64(st_, LQ_ERR_NUMERIC);                                                                 \
        CHECK_STR(e_.rule, rule_str);                                                                      \
        CHECK_EQ_U64(s_.first_bad, (index));                                                               \
    } while (0)

/* ---- floats ---- */

typedef struct fdt {
    lq_dtype dt;
    unsigned size;
    uint32_t nan, inf, max_finite; /* IEEE / bfloat16 encodings, sign bit clear */
    uint32_t sign;
} fdt;

static const fdt fdts[] = {
    {LQ_DTYPE_F32, 4, 0x7FC00000u, 0x7F800000u, 0x7F7FFFFFu, 0x80000000u},
    {LQ_DTYPE_F16, 2, 0x7E00u, 0x7C00u, 0x7BFFu, 0x8000u},
    {LQ_DTYPE_BF16, 2, 0x7FC0u, 0x7F80u, 0x7F7Fu, 0x8000u},
};

static void put_bits(const fdt *d, uint8_t *buf, uint64_t i, uint32_t u)
{
    if (d->size == 2) {
        uint16_t h = (uint16_t)u;
        memcpy(buf + 2 * i, &h, 2);
    } else {
        memcpy(buf + 4 * i, &u, 4);
    }
}

static uint32_t get_bits(const fdt *d, const uint8_t *buf, uint64_t i)
{
    if (d->size == 2) {
        uint16_t h;
        memcpy(&h, buf + 2 * i, 2);
        return h;
    }
    uint32_t u;
    memcpy(&u, buf + 4 * i, 4);
    return u;
}

static uint32_t enc(const fdt *d, float f)
{
    switch (d->dt) {
    case LQ_DTYPE_F16: return lq_f32_to_f16(f);
    case LQ_DTYPE_BF16: return lq_f32_to_bf16(f);
    default: {
        uint32_t u;
        memcpy(&u, &f, 4);
        return u;
    }
    }
}

static double dec(const fdt *d, uint32_t u)
{
    switch (d->dt) {
    case LQ_DTYPE_F16: return lq_f16_to_f32((uint16_t)u);
    case LQ_DTYPE_BF16: return lq_bf16_to_f32((uint16_t)u);
    default: {
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    }
}

/* 3 chunks of 2048 plus a tail of 37. */
#define FN (3 * 2048 + 37)

static void check_float_stats(const fdt *d, const uint8_t *buf, uint64_t n, const lq_value_stats *s)
{
    uint64_t zeros = 0, nonfinite = 0;
    double absmax = 0.0, sumsq = 0.0;
    for (uint64_t i = 0; i < n; i++) {
        double v = dec(d, get_bits(d, buf, i));
        if (!isfinite(v)) {
            nonfinite++;
            continue;
        }
        zeros += v == 0.0;
        absmax = fabs(v) > absmax ? fabs(v) : absmax;
        sumsq += v * v;
    }
    CHECK_EQ_U64(s->count, n);
    CHECK_EQ_U64(s->zeros, zeros);
    CHECK_EQ_U64(s->nonfinite, nonfinite);
    CHECK(s->absmax == absmax);
    CHECK_NEAR(s->sumsq, sumsq, 0.0, 1e-12);
}

static void test_float(void)
{
    const uint64_t where[] = {0, 1, FN / 2, 2047, 2048, 4095, 4096, 3 * 2048, FN - 1};
    for (size_t t = 0; t < sizeof fdts / sizeof fdts[0]; t++) {
        const fdt *d = &fdts[t];
        uint8_t *buf = malloc((size_t)FN * d->size);
        if (!buf) {
            CHECK(0);
            return;
        }
        for (uint64_t i = 0; i < FN; i++)
            put_bits(d, buf, i, enc(d, i % 17 == 0 ? 0.0f : uniform(1.5f)));
        lq_error err;
        lq_value_stats st;

        /* Clean: passes with and without a bound of 2, and the statistics match. */
        CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 0.0, "f", "t", NULL, &err), LQ_OK);
        CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", NULL, &err), LQ_OK);
        CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", &st, &err), LQ_OK);
        CHECK_EQ_U64(st.first_bad, UINT64_MAX);
        check_float_stats(d, buf, FN, &st);

        for (size_t k = 0; k < sizeof where / sizeof where[0]; k++) {
            uint64_t i = where[k];
            uint32_t keep = get_bits(d, buf, i);
            const uint32_t bads[] = {d->nan, d->nan | d->sign, d->inf, d->inf | d->sign};
            for (size_t b = 0; b < 4; b++) {
                put_bits(d, buf, i, bads[b]);
                EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 0.0, "f.safetensors", "t", sp, &e_), sp,
                            "VAL_NONFINITE", i);
                EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 2.0, "f.safetensors", "t", sp, &e_), sp,
                            "VAL_NONFINITE", i);
            }
            /* Out of range: -2.5 and the smallest value above 2 (both representable exactly). */
            put_bits(d, buf, i, enc(d, -2.5f));
            EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", sp, &e_), sp, "VAL_RANGE", i);
            CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 0.0, "f", "t", NULL, &err), LQ_OK);
            put_bits(d, buf, i, enc(d, 2.0f) + 1u);
            EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", sp, &e_), sp, "VAL_RANGE", i);
            /* Exactly max_abs passes; so does the largest finite value without a bound. */
            put_bits(d, buf, i, enc(d, -2.0f));
            CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", NULL, &err), LQ_OK);
            put_bits(d, buf, i, d->max_finite | d->sign);
            CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 0.0, "f", "t", NULL, &err), LQ_OK);
            CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, (double)FLT_MAX * 2.0, "f", "t", NULL, &err), LQ_OK);
            put_bits(d, buf, i, keep);
        }

        /* Two bad values: the first one is named, whatever their rules. */
        put_bits(d, buf, 3000, d->nan);
        put_bits(d, buf, 5000, enc(d, 3.0f));
        EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", sp, &e_), sp, "VAL_NONFINITE", 3000);
        put_bits(d, buf, 2999, enc(d, 3.0f));
        EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", sp, &e_), sp, "VAL_RANGE", 2999);
        /* With statistics the whole tensor is still counted. */
        CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 2.0, "f", "t", &st, &err), LQ_ERR_NUMERIC);
        check_float_stats(d, buf, FN, &st);
        CHECK_EQ_U64(st.nonfinite, 1);
        CHECK_STR(err.file, "f");
        CHECK_STR(err.tensor, "t");

        /* A bound between two representable values: 1 passes and the next value up fails. */
        for (uint64_t i = 0; i < FN; i++)
            put_bits(d, buf, i, enc(d, 1.0f));
        double between = (dec(d, enc(d, 1.0f)) + dec(d, enc(d, 1.0f) + 1u)) / 2.0;
        CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, between, "f", "t", NULL, &err), LQ_OK);
        put_bits(d, buf, 777, enc(d, 1.0f) + 1u);
        EXPECT_FAIL(lq_values_float(d->dt, buf, FN, between, "f", "t", sp, &e_), sp, "VAL_RANGE", 777);
        /* Tiny bounds: only zeros pass below the smallest subnormal. */
        for (uint64_t i = 0; i < FN; i++)
            put_bits(d, buf, i, (i & 1) ? d->sign : 0u);
        CHECK_EQ_U64(lq_values_float(d->dt, buf, FN, 1e-300, "f", "t", &st, &err), LQ_OK);
        CHECK_EQ_U64(st.zeros, FN);
        put_bits(d, buf, FN - 1, 1u); /* the smallest subnormal */
        EXPECT_FAIL(lq_values_float(d->dt, buf, FN, 1e-300, "f", "t", sp, &e_), sp, "VAL_RANGE", FN - 1);

        /* Short tensors (tail only), and n = 0. */
        for (uint64_t n = 1; n < 9; n++) {
            for (uint64_t i = 0; i < n; i++)
                put_bits(d, buf, i, enc(d, 0.5f));
            CHECK_EQ_U64(lq_values_float(d->dt, buf, n, 1.0, "f", "t", NULL, &err), LQ_OK);
            put_bits(d, buf, n - 1, d->inf);
            EXPECT_FAIL(lq_values_float(d->dt, buf, n, 1.0, "f", "t", sp, &e_), sp, "VAL_NONFINITE", n - 1);
        }
        CHECK_EQ_U64(lq_values_float(d->dt, NULL, 0, 1.0, "f", "t", &st, &err), LQ_OK);
        CHECK_EQ_U64(st.count, 0);
        free(buf);
    }
    /* Arguments. */
    lq_error err;
    uint8_t b[8] = {0};
    CHECK_EQ_U64(lq_values_float(LQ_DTYPE_F32, NULL, 1, 0.0, "f", "t", NULL, &err), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_values_float(LQ_DTYPE_U8, b, 1, 0.0, "f", "t", NULL, &err), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_values_float(LQ_DTYPE_F8_E4M3, b, 1, 0.0, "f", "t", NULL, NULL), LQ_ERR_INVALID_ARGUMENT);
    /* Unaligned data. */
    uint8_t u[2 * 64 + 1];
    memset(u, 0, sizeof u);
    CHECK_EQ_U64(lq_values_float(LQ_DTYPE_BF16, u + 1, 64, 0.0, "f", "t", NULL, &err), LQ_OK);
    u[1 + 2 * 63] = 0x80;
    u[2 + 2 * 63] = 0x7F; /* element 63 = 0x7F80, +inf */
    lq_error_clear(&err);
    CHECK_EQ_U64(lq_values_float(LQ_DTYPE_BF16, u + 1, 64, 0.0, "f", "t", NULL, &err), LQ_ERR_NUMERIC);
    CHECK_EQ_U64(msg_index(&err), 63);
}

/* ---- block FP8 ---- */

/* Decoders written here from reference/mxfp4_formats.md 4.1, independent of libquant. */
static double ref_e4m3(uint8_t b)
{
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7)
        return NAN;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

static double ref_e5m2(uint8_t b)
{
    int s = b >> 7, e = (b >> 2) & 31, m = b & 3;
    double v = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m / 4.0, -14) : ldexp(1.0 + m / 4.0, e - 15);
    return s ? -v : v;
}

/* A random code of magnitude byte <= 0x50 (E4M3: |v| <= 8, E5M2: |v| <= 32), so that the largest
 * codes planted below stand out. */
static uint8_t rand_fp8(void)
{
    uint8_t b = (uint8_t)next_u64();
    return (uint8_t)((b & 0x80) | ((b & 0x7F) % 0x51));
}

typedef struct fp8_case {
    lq_fp8_grid g;
    uint8_t *w;
    float *scale;
} fp8_case;

/* Statistics of rows [r0, r1) computed in double: fp8 * scale, as one f32 product (what the
 * runtime's dequantization forms), then accumulated in double. */
static void check_fp8_stats(const fp8_case *c, int e5, uint64_t r0, uint64_t r1, const lq_value_stats *s)
{
    uint64_t zeros = 0, nonfinite = 0;
    double absmax = 0.0, sumsq = 0.0;
    for (uint64_t r = r0; r < r1; r++)
        for (uint64_t col = 0; col < c->g.cols; col++) {
            uint8_t b = c->w[r * c->g.cols + col];
            float sc = c->scale[lq_fp8_grid_scale_row(&c->g, r) * c->g.scols + col / 128];
            float v = (float)(e5 ? ref_e5m2(b) : ref_e4m3(b)) * sc;
            if (!isfinite(v)) {
                nonfinite++;
                continue;
            }
            zeros += v == 0.0f;
            absmax = fabs((double)v) > absmax ? fabs((double)v) : absmax;
            sumsq += (double)v * (double)v;
        }
    CHECK_EQ_U64(s->count, (r1 - r0) * c->g.cols);
    CHECK_EQ_U64(s->zeros, zeros);
    CHECK_EQ_U64(s->nonfinite, nonfinite);
    CHECK(s->absmax == absmax);
    CHECK_NEAR(s->sumsq, sumsq, 0.0, 1e-12);
}

static void test_fp8(void)
{
    /* 300 x 300 with 128 blocks: a ragged 3 x 3 grid; and 400 rows as 2 checkpoint-TP shards of
     * 200 rows (2 scale rows each: reference/mimo_arch.md 4.4's rule). */
    const struct {
        uint64_t rows, cols, srows;
        uint32_t shards;
    } shapes[] = {{300, 300, 3, 1}, {400, 260, 4, 2}};
    for (int e5 = 0; e5 < 2; e5++) {
        lq_dtype wdt = e5 ? LQ_DTYPE_F8_E5M2 : LQ_DTYPE_F8_E4M3;
        for (size_t sh = 0; sh < 2; sh++) {
            fp8_case c;
            lq_error err;
            uint64_t rows = shapes[sh].rows, cols = shapes[sh].cols;
            CHECK_EQ_U64(lq_fp8_grid_detect(rows, cols, shapes[sh].srows, (cols + 127) / 128, 128, 128,
                                            shapes[sh].shards, "w", &c.g, &err),
                         LQ_OK);
            CHECK_EQ_U64(c.g.shards, shapes[sh].shards);
            uint64_t ns = c.g.srows * c.g.scols;
            c.w = malloc(rows * cols);
            c.scale = malloc(ns * sizeof(float));
            if (!c.w || !c.scale) {
                CHECK(0);
                return;
            }
            for (uint64_t i = 0; i < rows * cols; i++)
                c.w[i] = rand_fp8();
            for (uint64_t i = 0; i < ns; i++)
                c.scale[i] = 0.001f + fabsf(uniform(0.01f));
            /* The largest decoded magnitude bounds the clean tensor. */
            lq_value_stats st;
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w.st", "s.st", "w", &st,
                                       &err),
                         LQ_OK);
            check_fp8_stats(&c, e5, 0, rows, &st);
            double bound = st.absmax;
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, bound, "w.st", "s.st", "w",
                                       NULL, &err),
                         LQ_OK);

            /* NaN codes at the start, middle, end, on block edges (column 127 / 128, row 127 /
             * 128 and, for the sharded grid, the shard edge 199 / 200). */
            const uint64_t rr[] = {0, rows / 2, rows - 1, 127, 128, 199, 200};
            const uint64_t cc[] = {0, cols / 2, cols - 1, 127, 128};
            const uint8_t nans4[] = {0x7F, 0xFF}, nans5[] = {0x7C, 0xFC, 0x7D, 0xFF};
            for (size_t a = 0; a < sizeof rr / sizeof rr[0]; a++)
                for (size_t b = 0; b < sizeof cc / sizeof cc[0]; b++) {
                    uint64_t i = rr[a] * cols + cc[b];
                    uint8_t keep = c.w[i];
                    size_t nn = e5 ? 4 : 2;
                    for (size_t k = 0; k < nn; k++) {
                        c.w[i] = e5 ? nans5[k] : nans4[k];
                        EXPECT_FAIL(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w.st",
                                                  "s.st", "w", sp, &e_),
                                    sp, "VAL_FP8_NAN", i);
                    }
                    /* Out of range: the largest finite code (E4M3 448, E5M2 57344) exceeds the bound. */
                    c.w[i] = e5 ? 0xFB : 0xFE;
                    EXPECT_FAIL(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, bound, "w.st", "s.st",
                                              "w", sp, &e_),
                                sp, "VAL_RANGE", i);
                    c.w[i] = keep;
                }

            /* Row ranges: a bad element outside the range is not seen; inside it is named by its
             * index in the whole tensor. */
            uint64_t bi = 150 * cols + 5;
            uint8_t keep = c.w[bi];
            c.w[bi] = e5 ? 0x7C : 0x7F;
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, 150, 0.0, "w", NULL, "w", &st, &err),
                         LQ_OK);
            check_fp8_stats(&c, e5, 0, 150, &st);
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 151, rows, 0.0, "w", NULL, "w", &st,
                                       &err),
                         LQ_OK);
            check_fp8_stats(&c, e5, 151, rows, &st);
            EXPECT_FAIL(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 140, 160, 0.0, "w", NULL, "w", sp, &e_),
                        sp, "VAL_FP8_NAN", bi);
            c.w[bi] = keep;

            /* Bad scales: 0, -0, -1, NaN, +-inf, at the first, a middle and the last element. The
             * error names the scale tensor and its file; the stats name the first weight element
             * that uses the scale. */
            const float bad_sc[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY};
            const uint64_t si[] = {0, ns / 2, ns - 1};
            for (size_t a = 0; a < 3; a++)
                for (size_t b = 0; b < 6; b++) {
                    float keep_s = c.scale[si[a]];
                    c.scale[si[a]] = bad_sc[b];
                    uint64_t sr = si[a] / c.g.scols, cb = si[a] % c.g.scols;
                    uint64_t rs = rows / c.g.shards, per = (rs + 127) / 128;
                    uint64_t first = ((sr / per) * rs + (sr % per) * 128) * cols + cb * 128;
                    lq_value_stats s2;
                    lq_error_clear(&err);
                    CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w.st", "s.st",
                                               "w", &s2, &err),
                                 LQ_ERR_NUMERIC);
                    CHECK_STR(err.rule, "VAL_SCALE_INV");
                    CHECK_STR(err.tensor, "w_scale_inv");
                    CHECK_STR(err.file, "s.st");
                    CHECK_EQ_U64(msg_index(&err), si[a]);
                    CHECK_EQ_U64(s2.first_bad, first);
                    lq_error_clear(&err);
                    CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w.st", NULL,
                                               "w", NULL, &err),
                                 LQ_ERR_NUMERIC);
                    CHECK_STR(err.file, "w.st"); /* no scale file: the weight's */
                    c.scale[si[a]] = keep_s;
                }
            /* The smallest positive subnormal scale is > 0 and passes. */
            float keep_s = c.scale[0];
            c.scale[0] = 0x1p-149f;
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w", NULL, &err),
                         LQ_OK);
            /* A finite scale whose product with the largest code overflows f32 (f32 ends below
             * 2^128): E4M3 448 * 2^120 = 1.75 * 2^128, E5M2 57344 * 2^113 = 1.75 * 2^128; out of
             * range even without a bound. Half that scale gives 1.75 * 2^127, finite. The random
             * codes (<= 8 or 32) stay finite at either scale. */
            uint8_t keep_w = c.w[cols + 3];
            c.w[cols + 3] = e5 ? 0x7B : 0x7E; /* row 1, column 3: scale element 0 */
            c.scale[0] = e5 ? 0x1p113f : 0x1p120f;
            EXPECT_FAIL(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w", sp, &e_), sp,
                        "VAL_RANGE", cols + 3);
            c.scale[0] = e5 ? 0x1p112f : 0x1p119f;
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w", NULL, &err),
                         LQ_OK);
            c.scale[0] = keep_s;
            c.w[cols + 3] = keep_w;

            /* BF16 and E8M0 scale grids. */
            uint16_t *sb = malloc(ns * 2);
            uint8_t *se = malloc(ns);
            if (sb && se) {
                for (uint64_t i = 0; i < ns; i++) {
                    sb[i] = lq_f32_to_bf16(c.scale[i]);
                    se[i] = (uint8_t)(120 + i % 10);
                }
                CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_BF16, sb, 0, rows, 0.0, "w", NULL, "w", NULL, &err),
                             LQ_OK);
                CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F8_E8M0, se, 0, rows, 0.0, "w", NULL, "w", NULL,
                                           &err),
                             LQ_OK);
                se[0] = 0; /* 2^-127 is a valid, positive scale */
                CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F8_E8M0, se, 0, rows, 0.0, "w", NULL, "w", NULL,
                                           &err),
                             LQ_OK);
                const uint16_t bad_b[] = {0x0000, 0x8000, 0xBF80 /* -1 */, 0x7FC0, 0x7F80, 0xFF80};
                for (size_t b = 0; b < 6; b++) {
                    uint16_t k2 = sb[ns - 1];
                    sb[ns - 1] = bad_b[b];
                    lq_error_clear(&err);
                    CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_BF16, sb, 0, rows, 0.0, "w", NULL, "w", NULL,
                                               &err),
                                 LQ_ERR_NUMERIC);
                    CHECK_STR(err.rule, "VAL_SCALE_INV");
                    CHECK_EQ_U64(msg_index(&err), ns - 1);
                    sb[ns - 1] = k2;
                }
                se[ns / 2] = 0xFF;
                lq_error_clear(&err);
                CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F8_E8M0, se, 0, rows, 0.0, "w", NULL, "w", NULL,
                                           &err),
                             LQ_ERR_NUMERIC);
                CHECK_STR(err.rule, "VAL_SCALE_INV");
                CHECK_EQ_U64(msg_index(&err), ns / 2);
            } else {
                CHECK(0);
            }
            free(sb);
            free(se);

            /* Arguments. */
            CHECK_EQ_U64(lq_values_fp8(&c.g, LQ_DTYPE_BF16, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w",
                                       NULL, &err),
                         LQ_ERR_INVALID_ARGUMENT);
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_U8, c.scale, 0, rows, 0.0, "w", NULL, "w", NULL, &err),
                         LQ_ERR_INVALID_ARGUMENT);
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows + 1, 0.0, "w", NULL, "w", NULL,
                                       &err),
                         LQ_ERR_INVALID_ARGUMENT);
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, NULL, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w", NULL,
                                       &err),
                         LQ_ERR_INVALID_ARGUMENT);
            CHECK_EQ_U64(lq_values_fp8(&c.g, wdt, NULL, LQ_DTYPE_F32, NULL, 3, 3, 0.0, "w", NULL, "w", NULL, &err),
                         LQ_OK);
            lq_fp8_grid bad = c.g;
            bad.srows++;
            CHECK_EQ_U64(lq_values_fp8(&bad, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w", NULL,
                                       &err),
                         LQ_ERR_INVALID_ARGUMENT);
            CHECK_EQ_U64(lq_values_fp8(NULL, wdt, c.w, LQ_DTYPE_F32, c.scale, 0, rows, 0.0, "w", NULL, "w", NULL,
                                       &err),
                         LQ_ERR_INVALID_ARGUMENT);
            free(c.w);
            free(c.scale);
        }
    }
}

/* ---- MXFP4 ---- */

/* reference/mxfp4_formats.md 1.2 */
static const double e2m1[16] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0};

/* 70 rows of 150 blocks: 10500 blocks, so the scale scan's chunk boundary (4096) falls inside
 * row 27 (block 46 of it). */
#define MR 70
#define MC (150 * 32)
#define MNB (MC / 32)

static void put_code(uint8_t *codes, uint64_t elem, unsigned c)
{
    uint8_t *b = codes + elem / 2;
    *b = (elem & 1) ? (uint8_t)((*b & 0x0F) | (c << 4)) : (uint8_t)((*b & 0xF0) | c);
}

static unsigned get_code(const uint8_t *codes, uint64_t elem)
{
    return (codes[elem / 2] >> ((elem & 1) * 4)) & 0xF;
}

static void check_mx_stats(const uint8_t *codes, const uint8_t *scales, uint64_t r0, uint64_t r1,
                           const lq_value_stats *s)
{
    uint64_t zeros = 0, nonfinite = 0;
    double absmax = 0.0, sumsq = 0.0;
    for (uint64_t e = r0 * MC; e < r1 * MC; e++) {
        uint8_t sb = scales[e / 32];
        double v = sb == 0xFF ? NAN : ldexp(e2m1[get_code(codes, e)], sb - 127);
        if (!(fabs(v) < 0x1p128)) { /* NaN, or beyond f32 */
            nonfinite++;
            continue;
        }
        zeros += v == 0.0;
        absmax = fabs(v) > absmax ? fabs(v) : absmax;
        sumsq += v * v;
    }
    CHECK_EQ_U64(s->count, (r1 - r0) * MC);
    CHECK_EQ_U64(s->zeros, zeros);
    CHECK_EQ_U64(s->nonfinite, nonfinite);
    CHECK(s->absmax == absmax);
    CHECK_NEAR(s->sumsq, sumsq, 0.0, 1e-12);
}

static void test_mxfp4(void)
{
    uint8_t *codes = malloc(MR * MC / 2), *scales = malloc(MR * MNB);
    if (!codes || !scales) {
        CHECK(0);
        free(codes);
        free(scales);
        return;
    }
    for (uint64_t i = 0; i < MR * MC / 2; i++)
        codes[i] = (uint8_t)next_u64();
    for (uint64_t k = 0; k < MR * MNB; k++)
        scales[k] = (uint8_t)(100 + next_u64() % 41); /* 2^-27 .. 2^13 */
    lq_error err;
    lq_value_stats st;
    CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", NULL, &err), LQ_OK);
    CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", &st, &err), LQ_OK);
    CHECK_EQ_U64(st.first_bad, UINT64_MAX);
    check_mx_stats(codes, scales, 0, MR, &st);
    CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, st.absmax, "m", "t", NULL, &err), LQ_OK);

    /* Scale 0xFF, always an error (also with all-zero codes): the block's first element is named. */
    const uint64_t blocks[] = {0, 1, MR * MNB / 2, 4095, 4096, 8191, 8192, MR * MNB - 1, MNB - 1, MNB};
    for (size_t a = 0; a < sizeof blocks / sizeof blocks[0]; a++) {
        uint64_t k = blocks[a];
        uint8_t keep = scales[k];
        scales[k] = 0xFF;
        EXPECT_FAIL(lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", sp, &e_), sp, "VAL_E8M0", k * 32);
        uint8_t keepc[16];
        memcpy(keepc, codes + 16 * k, 16);
        memset(codes + 16 * k, 0, 16);
        EXPECT_FAIL(lq_values_mxfp4(codes, scales, MR, MC, 1e30, "m", "t", sp, &e_), sp, "VAL_E8M0", k * 32);
        memcpy(codes + 16 * k, keepc, 16);
        scales[k] = keep;
    }

    /* Boundary scales (header comment): the block gets codes 0 except element j. */
    const struct {
        uint8_t scale;
        unsigned code;
        int ok;
    } cases[] = {
        {0xFC, 0x7, 1}, {0xFC, 0xF, 1}, /* 6 * 2^125 */
        {0xFD, 0x5, 1}, {0xFD, 0xD, 1}, /* 3 * 2^126 */
        {0xFD, 0x6, 0}, {0xFD, 0xE, 0}, /* 4 * 2^126 = 2^128 */
        {0xFD, 0x7, 0},                 /* 6 * 2^126 */
        {0xFE, 0x3, 1}, {0xFE, 0xB, 1}, /* 1.5 * 2^127 */
        {0xFE, 0x4, 0}, {0xFE, 0xC, 0}, /* 2 * 2^127 */
        {0xFE, 0x7, 0},
        {0xFE, 0x0, 1}, {0xFE, 0x8, 1}, /* +-0 at any scale */
        {0x00, 0x7, 1}, {0x00, 0x1, 1}, {0x00, 0xF, 1}, /* 2^-127 times anything */
    };
    const unsigned js[] = {0, 1, 13, 30, 31};
    for (size_t a = 0; a < sizeof cases / sizeof cases[0]; a++)
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
            for (size_t jj = 0; jj < sizeof js / sizeof js[0]; jj++) {
                uint64_t k = blocks[b];
                unsigned j = js[jj];
                uint8_t keep = scales[k], keepc[16];
                memcpy(keepc, codes + 16 * k, 16);
                memset(codes + 16 * k, 0, 16);
                put_code(codes, k * 32 + j, cases[a].code);
                scales[k] = cases[a].scale;
                if (cases[a].ok) {
                    lq_error_clear(&err);
                    CHECK_MSG(lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", NULL, &err) == LQ_OK,
                              "scale 0x%02X code 0x%X: %s", cases[a].scale, cases[a].code, err.msg);
                } else {
                    EXPECT_FAIL(lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", sp, &e_), sp, "VAL_E8M0",
                                k * 32 + j);
                }
                memcpy(codes + 16 * k, keepc, 16);
                scales[k] = keep;
            }

    /* max_abs: the random blocks reach 6 * 2^13 = 49152, the bound. A block at scale 141 (2^14)
     * with codes +-0.5 (8192) passes, a 3 (49152) still does, a -4 (65536) is VAL_RANGE there. */
    CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, 49152.0, "m", "t", NULL, &err), LQ_OK);
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        uint64_t k = blocks[b];
        uint8_t keep = scales[k], keepc[16];
        memcpy(keepc, codes + 16 * k, 16);
        for (unsigned j = 0; j < 32; j++)
            put_code(codes, k * 32 + j, j & 1 ? 0x9 : 0x1);
        scales[k] = 141;
        CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, 49152.0, "m", "t", NULL, &err), LQ_OK);
        put_code(codes, k * 32 + 9, 0x5);
        CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, 49152.0, "m", "t", NULL, &err), LQ_OK);
        put_code(codes, k * 32 + 20, 0xE);
        EXPECT_FAIL(lq_values_mxfp4(codes, scales, MR, MC, 49152.0, "m", "t", sp, &e_), sp, "VAL_RANGE", k * 32 + 20);
        memcpy(codes + 16 * k, keepc, 16);
        scales[k] = keep;
    }
    {
        /* A small tensor with known content for the bound tests. */
        uint8_t c2[4 * 16], s2[4] = {127, 127, 0, 0};
        memset(c2, 0x22, sizeof c2); /* every code 1.0 */
        memset(c2 + 32, 0, 32);      /* blocks 2, 3: zeros */
        CHECK_EQ_U64(lq_values_mxfp4(c2, s2, 1, 128, 1.0, "m", "t", NULL, &err), LQ_OK);
        put_code(c2, 40, 0x3); /* block 1, element 8: 1.5 */
        EXPECT_FAIL(lq_values_mxfp4(c2, s2, 1, 128, 1.0, "m", "t", sp, &e_), sp, "VAL_RANGE", 40);
        EXPECT_FAIL(lq_values_mxfp4(c2, s2, 2, 64, 1.0, "m", "t", sp, &e_), sp, "VAL_RANGE", 40);
        CHECK_EQ_U64(lq_values_mxfp4(c2, s2, 1, 128, 1.5, "m", "t", NULL, &err), LQ_OK);
        put_code(c2, 40, 0x2);
        put_code(c2, 100, 0x9); /* block 3, element 4: -0.5 * 2^-127 = -2^-128 */
        CHECK_EQ_U64(lq_values_mxfp4(c2, s2, 1, 128, 0x1p-128, "m", "t", NULL, &err), LQ_ERR_NUMERIC);
        CHECK_STR(err.rule, "VAL_RANGE"); /* 1.0 > 2^-128 first, at element 0 */
        CHECK_EQ_U64(msg_index(&err), 0);
        s2[0] = s2[1] = 0;
        memset(c2, 0, 32);
        EXPECT_FAIL(lq_values_mxfp4(c2, s2, 1, 128, 0x1p-130, "m", "t", sp, &e_), sp, "VAL_RANGE", 100);
        CHECK_EQ_U64(lq_values_mxfp4(c2, s2, 1, 128, 0x1p-128, "m", "t", &st, &err), LQ_OK);
        CHECK_EQ_U64(st.zeros, 127);
        CHECK(st.absmax == 0x1p-128);
    }

    /* Two bad blocks: the first is named; with statistics everything is counted (0xFF: 32 NaN;
     * 0xFE with a 6: inf). */
    scales[5000] = 0xFE;
    memset(codes + 16 * 5000, 0x11, 16); /* +0.5: 2^126, finite */
    put_code(codes, 5000 * 32 + 7, 0x7);
    scales[6000] = 0xFF;
    lq_error_clear(&err);
    CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", &st, &err), LQ_ERR_NUMERIC);
    CHECK_STR(err.rule, "VAL_E8M0");
    CHECK_EQ_U64(msg_index(&err), 5000 * 32 + 7);
    CHECK(strstr(err.msg, "0xFE") != NULL);
    check_mx_stats(codes, scales, 0, MR, &st);
    CHECK(st.nonfinite >= 33);

    /* Row ranges: rows [0, 33) hold neither bad block (5000 / 150 = row 33), [40, 70) holds 6000. */
    CHECK_EQ_U64(lq_values_mxfp4_rows(codes, scales, MR, MC, 0, 33, 0.0, "m", "t", &st, &err), LQ_OK);
    check_mx_stats(codes, scales, 0, 33, &st);
    lq_error_clear(&err);
    CHECK_EQ_U64(lq_values_mxfp4_rows(codes, scales, MR, MC, 34, MR, 0.0, "m", "t", &st, &err), LQ_ERR_NUMERIC);
    CHECK_EQ_U64(msg_index(&err), 6000 * 32);
    CHECK_EQ_U64(st.first_bad, 6000 * 32);
    check_mx_stats(codes, scales, 34, MR, &st);
    /* The documented alternative: offset pointers, positions relative to the first row. */
    lq_error_clear(&err);
    CHECK_EQ_U64(lq_values_mxfp4(codes + 34 * MC / 2, scales + 34 * MNB, MR - 34, MC, 0.0, "m", "t", NULL, &err),
                 LQ_ERR_NUMERIC);
    CHECK_EQ_U64(msg_index(&err), (6000 - 34 * MNB) * 32);
    /* Merged parts equal the whole. */
    lq_value_stats p1, p2, whole;
    lq_values_mxfp4_rows(codes, scales, MR, MC, 0, 20, 0.0, "m", "t", &p1, &err);
    lq_values_mxfp4_rows(codes, scales, MR, MC, 20, MR, 0.0, "m", "t", &p2, &err);
    lq_values_mxfp4(codes, scales, MR, MC, 0.0, "m", "t", &whole, &err);
    lq_value_stats_merge(&p1, &p2);
    CHECK_EQ_U64(p1.count, whole.count);
    CHECK_EQ_U64(p1.zeros, whole.zeros);
    CHECK_EQ_U64(p1.nonfinite, whole.nonfinite);
    CHECK_EQ_U64(p1.first_bad, whole.first_bad);
    CHECK(p1.absmax == whole.absmax);
    CHECK_NEAR(p1.sumsq, whole.sumsq, 0.0, 1e-12);

    /* Arguments. */
    CHECK_EQ_U64(lq_values_mxfp4(codes, scales, MR, 48, 0.0, "m", "t", NULL, &err), LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "VAL_ARG");
    CHECK_EQ_U64(lq_values_mxfp4(NULL, scales, MR, MC, 0.0, "m", "t", NULL, &err), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_values_mxfp4(codes, NULL, MR, MC, 0.0, "m", "t", NULL, &err), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_values_mxfp4(NULL, NULL, 0, MC, 0.0, "m", "t", NULL, &err), LQ_OK);
    CHECK_EQ_U64(lq_values_mxfp4_rows(codes, scales, MR, MC, 5, 4, 0.0, "m", "t", NULL, &err), LQ_ERR_INVALID_ARGUMENT);
    CHECK_EQ_U64(lq_values_mxfp4_rows(codes, scales, MR, MC, 0, MR + 1, 0.0, "m", "t", NULL, NULL),
                 LQ_ERR_INVALID_ARGUMENT);
    free(codes);
    free(scales);
}

int main(void)
{
    test_float();
    test_fp8();
    test_mxfp4();
    return th_finish("test_values");
}
