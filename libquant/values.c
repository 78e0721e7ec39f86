/* Value checks of stored weights (values.h).
 *
 * Every check is a comparison of bit patterns, because the integer order of the magnitude bits of
 * an IEEE-style float (sign cleared) is the order of the magnitudes, with inf and NaN above every
 * finite value:
 *
 * - Floats: |x| <= max_abs and "x finite" become one test, (bits & abs_mask) <= lim, where lim is
 *   the pattern of the largest finite value not above max_abs (the largest finite value when
 *   there is no bound). As x <= abs_mask (0x7FFF or 0x7FFFFFFF), x + (abs_mask - lim) has its top
 *   bit set exactly when x > lim and never wraps, so a chunk of a fixed number of elements ORs
 *   these sums (a loop with a constant trip count and no exit, which gcc vectorizes at -O2), and
 *   only a chunk whose OR has the top bit set is searched for its first bad element.
 * - FP8: per weight row and scale block, the largest magnitude byte (b & 0x7F, NaN and inf at the
 *   top) decides: it is a NaN code, or its decoded value lut[max] * scale is above the bound, or
 *   neither, and then no element of the block is bad.
 * - MXFP4: E2M1 codes have no invalid pattern, so a block can only fail through its scale. For
 *   scale bytes below s_lo, the smallest one at which even a code of 6 would overflow f32 or exceed
 *   max_abs, no code can fail, and the codes are not read. A block with a larger scale is tested
 *   with one more word trick: for a threshold t (0..8), a nibble magnitude m = code & 7 is >= t
 *   iff (m + 8 - t) has bit 3 set, and 16 nibbles are tested at once in a 64-bit word.
 *
 * Statistics (optional) take a second, plain pass that decodes every element as the runtime does
 * and sums in double; the fast pass alone decides the status. */
#include "values.h"

#include "fp_formats.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define VAL_CHUNK_ELEMS 2048  /* elements per chunk of the float scan */
#define VAL_CHUNK_BYTES 4096  /* per chunk of the FP8 and MXFP4 scale scans */
#define VAL_F32_MAX_FINITE 0x7F7FFFFFu

/* ---- statistics ---- */

static void stats_reset(lq_value_stats *s)
{
    memset(s, 0, sizeof *s);
    s->first_bad = UINT64_MAX;
}

void lq_value_stats_merge(lq_value_stats *a, const lq_value_stats *b)
{
    if (!a || !b)
        return;
    a->count += b->count;
    a->zeros += b->zeros;
    a->nonfinite += b->nonfinite;
    a->absmax = b->absmax > a->absmax ? b->absmax : a->absmax;
    a->sumsq += b->sumsq;
    a->first_bad = b->first_bad < a->first_bad ? b->first_bad : a->first_bad;
}

/* Per-pass accumulator. Values are decoded into short f32 runs and folded by acc_run: four
 * interleaved lanes (element i to lane i % 4 within the run) sum squares in double and keep the
 * largest magnitude in f32 (exact), then the lanes are added in a fixed order, so a result
 * depends only on the data and on how the pass cuts it into runs, never on timing. */
#define VAL_RUN 256

typedef struct stat_acc {
    uint64_t count, zeros, nonfinite;
    double absmax, sumsq;
} stat_acc;

/* One element of a lane: a non-finite value counts and adds nothing (|v| <= FLT_MAX is false for
 * NaN and inf). */
#define ACC_LANE(v, sum, mx)                                                                       \
    do {                                                                                           \
        float m_ = fabsf(v);                                                                       \
        int fin_ = m_ <= FLT_MAX;                                                                  \
        float d_ = fin_ ? m_ : 0.0f;                                                               \
        bad += (uint64_t)!fin_;                                                                    \
        zeros += (uint64_t)(m_ == 0.0f);                                                           \
        mx = d_ > mx ? d_ : mx;                                                                    \
        sum += (double)d_ * (double)d_;                                                            \
    } while (0)

static void acc_run(stat_acc *a, const float *v, unsigned n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f;
    uint64_t zeros = 0, bad = 0;
    unsigned i = 0;
    for (; i + 4 <= n; i += 4) {
        ACC_LANE(v[i], s0, m0);
        ACC_LANE(v[i + 1], s1, m1);
        ACC_LANE(v[i + 2], s2, m2);
        ACC_LANE(v[i + 3], s3, m3);
    }
    for (; i < n; i++) /* lane i % 4 */
        switch (i & 3u) {
        case 0: ACC_LANE(v[i], s0, m0); break;
        case 1: ACC_LANE(v[i], s1, m1); break;
        default: ACC_LANE(v[i], s2, m2); break;
        }
    float m01 = m0 > m1 ? m0 : m1, m23 = m2 > m3 ? m2 : m3;
    float m = m01 > m23 ? m01 : m23;
    a->count += n;
    a->zeros += zeros;
    a->nonfinite += bad;
    a->absmax = (double)m > a->absmax ? (double)m : a->absmax;
    a->sumsq += (s0 + s1) + (s2 + s3);
}
#undef ACC_LANE

static void acc_store(const stat_acc *a, lq_value_stats *s)
{
    s->count = a->count;
    s->zeros = a->zeros;
    s->nonfinite = a->nonfinite;
    s->absmax = a->absmax;
    s->sumsq = a->sumsq;
}

static lq_status arg_fail(lq_error *err, const char *file, const char *tensor, const char *what)
{
    return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, file, tensor, "VAL_ARG", "%s", what);
}

/* ---- floats ---- */

typedef struct float_fmt {
    unsigned size;          /* bytes per element: 2 or 4 */
    uint32_t abs_mask;      /* magnitude bits */
    uint32_t exp_mask;      /* all-ones exponent: inf or NaN */
    uint32_t max_finite;    /* pattern of the largest finite magnitude */
} float_fmt;

static const float_fmt fmt_f32 = {4, 0x7FFFFFFFu, 0x7F800000u, VAL_F32_MAX_FINITE};
static const float_fmt fmt_f16 = {2, 0x7FFFu, 0x7C00u, 0x7BFFu};
static const float_fmt fmt_bf16 = {2, 0x7FFFu, 0x7F80u, 0x7F7Fu};

static float float_decode(lq_dtype dt, uint32_t bits)
{
    switch (dt) {
    case LQ_DTYPE_F16: return lq_f16_to_f32((uint16_t)bits);
    case LQ_DTYPE_BF16: return lq_bf16_to_f32((uint16_t)bits);
    default: return lq_fp_from_bits(bits);
    }
}

static uint32_t float_bits_at(const uint8_t *p, unsigned size, uint64_t i)
{
    if (size == 2) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return h;
    }
    uint32_t u;
    memcpy(&u, p + 4 * i, 4);
    return u;
}

/* The largest finite magnitude pattern whose value is <= max_abs (max_abs > 0): a binary search,
 * as decoding is monotone in the pattern. Pattern 0 (zero) always qualifies. */
static uint32_t float_limit(lq_dtype dt, const float_fmt *f, double max_abs)
{
    if (!(max_abs > 0.0) || (double)float_decode(dt, f->max_finite) <= max_abs)
        return f->max_finite;
    uint32_t lo = 0, hi = f->max_finite; /* value(lo) <= max_abs < value(hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((double)float_decode(dt, mid) <= max_abs)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Index of the first element of p[0 .. n) whose magnitude pattern exceeds lim, or n. The chunk
 * loops have a constant trip count and no early exit, so gcc vectorizes them at -O2; lanes are the
 * element's own width, and x + (abs_mask - lim) <= 2 abs_mask + 1 never wraps. */
static uint64_t first_bad_16(const uint8_t *p, uint64_t n, uint16_t lim)
{
    const uint16_t add = (uint16_t)(0x7FFFu - lim);
    uint64_t i = 0;
    for (; i + VAL_CHUNK_ELEMS <= n; i += VAL_CHUNK_ELEMS) {
        const uint8_t *q = p + 2 * i;
        uint16_t acc = 0;
        for (unsigned k = 0; k < VAL_CHUNK_ELEMS; k++) {
            uint16_t u;
            memcpy(&u, q + 2 * k, 2);
            acc |= (uint16_t)((u & 0x7FFFu) + add);
        }
        if (acc & 0x8000u)
            break;
    }
    for (; i < n; i++) {
        uint16_t u;
        memcpy(&u, p + 2 * i, 2);
        if ((u & 0x7FFFu) > lim)
            return i;
    }
    return n;
}

static uint64_t first_bad_32(const uint8_t *p, uint64_t n, uint32_t lim)
{
    const uint32_t add = 0x7FFFFFFFu - lim;
    uint64_t i = 0;
    for (; i + VAL_CHUNK_ELEMS <= n; i += VAL_CHUNK_ELEMS) {
        const uint8_t *q = p + 4 * i;
        uint32_t acc = 0;
        for (unsigned k = 0; k < VAL_CHUNK_ELEMS; k++) {
            uint32_t u;
            memcpy(&u, q + 4 * k, 4);
            acc |= (u & 0x7FFFFFFFu) + add;
        }
        if (acc & 0x80000000u)
            break;
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        if ((u & 0x7FFFFFFFu) > lim)
            return i;
    }
    return n;
}

lq_status lq_values_float(lq_dtype dt, const void *data, uint64_t n, double max_abs, const char *file,
                          const char *tensor, lq_value_stats *stats, lq_error *err)
{
    const float_fmt *f;
    switch (dt) {
    case LQ_DTYPE_F32: f = &fmt_f32; break;
    case LQ_DTYPE_F16: f = &fmt_f16; break;
    case LQ_DTYPE_BF16: f = &fmt_bf16; break;
    default: return arg_fail(err, file, tensor, "value check of a float tensor with a non-float dtype");
    }
    if (n > 0 && !data)
        return arg_fail(err, file, tensor, "null data");
    if (stats)
        stats_reset(stats);
    if (n == 0)
        return LQ_OK;
    const uint8_t *p = data;
    uint32_t lim = float_limit(dt, f, max_abs);
    uint64_t bad = f->size == 2 ? first_bad_16(p, n, (uint16_t)lim) : first_bad_32(p, n, lim);
    lq_status st = LQ_OK;
    if (bad < n) {
        uint32_t u = float_bits_at(p, f->size, bad);
        double v = (double)float_decode(dt, u);
        if ((u & f->exp_mask) == f->exp_mask)
            st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_NONFINITE",
                         "element %llu is %g (bits 0x%0*X), not finite", (unsigned long long)bad, v,
                         (int)(2 * f->size), (unsigned)u);
        else
            st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_RANGE",
                         "element %llu is %.9g, |value| above max_abs %.9g", (unsigned long long)bad, v, max_abs);
    }
    if (stats) {
        stat_acc a;
        memset(&a, 0, sizeof a);
        float run[VAL_RUN];
        for (uint64_t i0 = 0; i0 < n; i0 += VAL_RUN) {
            unsigned len = n - i0 < VAL_RUN ? (unsigned)(n - i0) : VAL_RUN;
            switch (dt) {
            case LQ_DTYPE_BF16:
                for (unsigned k = 0; k < len; k++)
                    run[k] = lq_fp_from_bits(float_bits_at(p, 2, i0 + k) << 16);
                break;
            case LQ_DTYPE_F32: memcpy(run, p + 4 * i0, 4 * (size_t)len); break;
            default:
                for (unsigned k = 0; k < len; k++)
                    run[k] = lq_f16_to_f32((uint16_t)float_bits_at(p, 2, i0 + k));
                break;
            }
            acc_run(&a, run, len);
        }
        acc_store(&a, stats);
        if (bad < n)
            stats->first_bad = bad;
    }
    return st;
}

/* ---- block FP8 ---- */

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Scale element idx as f32 and whether it is finite and > 0 (as a bit test: for F32 / BF16,
 * pattern - 1 below the largest finite positive pattern; for E8M0, not 0xFF). */
static float fp8_scale_at(lq_dtype sdt, const uint8_t *sp, uint64_t idx, int *ok)
{
    switch (sdt) {
    case LQ_DTYPE_F32: {
        uint32_t u;
        memcpy(&u, sp + 4 * idx, 4);
        *ok = u - 1u < VAL_F32_MAX_FINITE;
        return lq_fp_from_bits(u);
    }
    case LQ_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, sp + 2 * idx, 2);
        *ok = (uint16_t)(h - 1u) < 0x7F7Fu;
        return lq_bf16_to_f32(h);
    }
    default:
        *ok = sp[idx] != LQ_E8M0_NAN;
        return lq_e8m0_decode(sp[idx]);
    }
}

/* The first weight row in [r0, r1) that uses scale row sr (sr is used by some row of the range). */
static uint64_t fp8_first_row_of(const lq_fp8_grid *g, uint64_t sr, uint64_t r0)
{
    uint64_t rs = g->rows / g->shards, per = ceil_div(rs, g->block_r);
    uint64_t r = (sr / per) * rs + (sr % per) * g->block_r;
    return r < r0 ? r0 : r;
}

/* Largest b & 0x7F over n bytes: whole 64-byte pieces with a constant trip count (vectorized),
 * then the rest. */
static unsigned fp8_max_mag(const uint8_t *p, uint64_t n)
{
    uint8_t m = 0;
    uint64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint8_t mm = 0;
        for (unsigned k = 0; k < 64; k++) {
            uint8_t b = (uint8_t)(p[i + k] & 0x7Fu);
            mm = b > mm ? b : mm;
        }
        m = mm > m ? mm : m;
    }
    for (; i < n; i++) {
        uint8_t b = (uint8_t)(p[i] & 0x7Fu);
        m = b > m ? b : m;
    }
    return m;
}

lq_status lq_values_fp8(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w, lq_dtype sdt, const void *scale,
                        uint64_t r0, uint64_t r1, double max_abs, const char *file, const char *scale_file,
                        const char *tensor, lq_value_stats *stats, lq_error *err)
{
    if (!lq_fp8_grid_ok(g))
        return arg_fail(err, file, tensor, "inconsistent FP8 scale grid");
    if (wdt != LQ_DTYPE_F8_E4M3 && wdt != LQ_DTYPE_F8_E5M2)
        return arg_fail(err, file, tensor, "FP8 value check of a weight that is not F8_E4M3 or F8_E5M2");
    if (sdt != LQ_DTYPE_F32 && sdt != LQ_DTYPE_BF16 && sdt != LQ_DTYPE_F8_E8M0)
        return arg_fail(err, file, tensor, "weight_scale_inv dtype is not F32, BF16 or F8_E8M0");
    if (r0 > r1 || r1 > g->rows)
        return arg_fail(err, file, tensor, "row range outside the weight");
    if (stats)
        stats_reset(stats);
    if (r0 == r1 || g->cols == 0)
        return LQ_OK;
    if (!w || !scale)
        return arg_fail(err, file, tensor, "null data");

    const int e5 = wdt == LQ_DTYPE_F8_E5M2;
    const unsigned nan_mag = e5 ? LQ_E5M2_NONFINITE_MASK : LQ_E4M3_NAN_MASK; /* magnitudes >= this */
    const uint8_t *sp = scale;
    const uint64_t cols = g->cols, scols = g->scols;
    /* An element is out of range when !(|value| <= lim): above max_abs, or overflowed to inf. */
    const double lim = max_abs > 0.0 && max_abs < (double)FLT_MAX ? max_abs : (double)FLT_MAX;
    float lut[128];
    for (unsigned b = 0; b < 128; b++)
        lut[b] = e5 ? lq_e5m2_decode((uint8_t)b) : lq_e4m3_decode((uint8_t)b);

    lq_status st = LQ_OK;
    uint64_t bad = UINT64_MAX;
    /* 1. The scale rows the weight rows use: one contiguous run of the grid. */
    uint64_t s0 = lq_fp8_grid_scale_row(g, r0) * scols, s1 = (lq_fp8_grid_scale_row(g, r1 - 1) + 1) * scols;
    for (uint64_t i = s0; i < s1; i++) {
        int ok;
        float sc = fp8_scale_at(sdt, sp, i, &ok);
        if (!ok) {
            char sname[320];
            snprintf(sname, sizeof sname, "%s_scale_inv", tensor ? tensor : "");
            uint64_t sr = i / scols, cb = i % scols;
            bad = fp8_first_row_of(g, sr, r0) * cols + cb * g->block_c;
            st = lq_fail(err, LQ_ERR_NUMERIC, scale_file ? scale_file : file, sname, "VAL_SCALE_INV",
                         "element %llu (scale row %llu, column %llu) is %g, not a finite value > 0",
                         (unsigned long long)i, (unsigned long long)sr, (unsigned long long)cb, (double)sc);
            break;
        }
    }
    /* 2. The weights, row by row, block by block. */
    for (uint64_t r = r0; r < r1 && st == LQ_OK; r++) {
        const uint8_t *wr = w + r * cols;
        uint64_t srow = lq_fp8_grid_scale_row(g, r) * scols;
        for (uint64_t cb = 0; cb < scols; cb++) {
            uint64_t c0 = cb * g->block_c, c1 = c0 + g->block_c < cols ? c0 + g->block_c : cols;
            unsigned m = fp8_max_mag(wr + c0, c1 - c0);
            int ok;
            float sc = fp8_scale_at(sdt, sp, srow + cb, &ok);
            if (m < nan_mag && (double)(lut[m] * sc) <= lim)
                continue;
            /* The first element of the block that is a NaN code or decodes out of range. */
            uint64_t c = c0;
            unsigned b = 0;
            for (; c < c1; c++) {
                b = wr[c] & 0x7Fu;
                if (b >= nan_mag || !((double)(lut[b] * sc) <= lim))
                    break;
            }
            bad = r * cols + c;
            if (b >= nan_mag)
                st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_FP8_NAN",
                             "element %llu (row %llu, column %llu) is byte 0x%02X, not a finite %s",
                             (unsigned long long)bad, (unsigned long long)r, (unsigned long long)c, wr[c],
                             lq_dtype_name(wdt));
            else {
                float v = (e5 ? lq_e5m2_decode(wr[c]) : lq_e4m3_decode(wr[c])) * sc;
                st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_RANGE",
                             "element %llu (row %llu, column %llu) is byte 0x%02X times scale %g = %.9g, |value| "
                             "above %s %.9g",
                             (unsigned long long)bad, (unsigned long long)r, (unsigned long long)c, wr[c], (double)sc,
                             (double)v, max_abs > 0.0 ? "max_abs" : "the f32 maximum", lim);
            }
            break;
        }
    }
    if (stats) {
        stat_acc a;
        memset(&a, 0, sizeof a);
        for (uint64_t r = r0; r < r1; r++) {
            const uint8_t *wr = w + r * cols;
            uint64_t srow = lq_fp8_grid_scale_row(g, r) * scols;
            for (uint64_t cb = 0; cb < scols; cb++) {
                uint64_t c0 = cb * g->block_c, c1 = c0 + g->block_c < cols ? c0 + g->block_c : cols;
                int ok;
                float sc = fp8_scale_at(sdt, sp, srow + cb, &ok), run[VAL_RUN];
                for (uint64_t c = c0; c < c1; c += VAL_RUN) {
                    unsigned len = c1 - c < VAL_RUN ? (unsigned)(c1 - c) : VAL_RUN;
                    for (unsigned k = 0; k < len; k++) {
                        uint8_t b = wr[c + k];
                        run[k] = (b & 0x80u ? -lut[b & 0x7Fu] : lut[b & 0x7Fu]) * sc;
                    }
                    acc_run(&a, run, len);
                }
            }
        }
        acc_store(&a, stats);
        stats->first_bad = bad;
    }
    return st;
}

/* ---- MXFP4 ---- */

enum { MX_OK = 0, MX_E8M0 = 1, MX_RANGE = 2 };

/* Which rule magnitude code m breaks at scale byte s: the value E2M1(m) * 2^(s - 127) is exact in
 * double, so "not finite in f32" is exactly "2^128 or more". */
static int mx_rule(unsigned m, unsigned s, double max_abs)
{
    if (s == LQ_E8M0_NAN)
        return MX_E8M0;
    double x = ldexp((double)lq_e2m1_decode(m), (int)s - LQ_E8M0_BIAS);
    if (x >= 0x1p128)
        return MX_E8M0;
    return max_abs > 0.0 && x > max_abs ? MX_RANGE : MX_OK;
}

/* The smallest magnitude code that breaks a rule at scale s, 8 for none (values grow with m). */
static unsigned mx_threshold(unsigned s, double max_abs)
{
    unsigned t = 8;
    while (t > 0 && mx_rule(t - 1, s, max_abs) != MX_OK)
        t--;
    return t;
}

/* The smallest scale byte at which a code of 6 breaks a rule (values grow with s; 0xFF always
 * breaks). Blocks with smaller scales are valid whatever their codes. */
static unsigned mx_scale_low(double max_abs)
{
    unsigned lo = 0, hi = LQ_E8M0_NAN; /* rule(7, hi) breaks; find the first s that does */
    if (mx_rule(7, 0, max_abs) != MX_OK)
        return 0;
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (mx_rule(7, mid, max_abs) != MX_OK)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static unsigned max_u8_chunk(const uint8_t *p)
{
    uint8_t m = 0;
    for (unsigned k = 0; k < VAL_CHUNK_BYTES; k++)
        m = p[k] > m ? p[k] : m;
    return m;
}

/* Whether some nibble of the 16 code bytes at p has magnitude (code & 7) >= t (0 <= t <= 8):
 * m + 8 - t <= 15 never carries out of its nibble and sets bit 3 exactly when m >= t. */
static int mx_block_over(const uint8_t *p, unsigned t)
{
    const uint64_t mag = UINT64_C(0x7777777777777777), top = UINT64_C(0x8888888888888888);
    uint64_t add = UINT64_C(0x1111111111111111) * (8u - t), w0, w1;
    memcpy(&w0, p, 8);
    memcpy(&w1, p + 8, 8);
    return ((((w0 & mag) + add) | ((w1 & mag) + add)) & top) != 0;
}

lq_status lq_values_mxfp4_rows(const uint8_t *codes, const uint8_t *scales, uint64_t rows, uint64_t cols,
                               uint64_t r0, uint64_t r1, double max_abs, const char *file, const char *tensor,
                               lq_value_stats *stats, lq_error *err)
{
    if (cols % LQ_MXFP4_BLOCK != 0)
        return arg_fail(err, file, tensor, "MXFP4 weight with a column count that is not a multiple of 32");
    if (r0 > r1 || r1 > rows)
        return arg_fail(err, file, tensor, "row range outside the weight");
    if (cols != 0 && rows > UINT64_MAX / cols)
        return arg_fail(err, file, tensor, "MXFP4 weight shape overflows");
    if (stats)
        stats_reset(stats);
    const uint64_t nb = cols / LQ_MXFP4_BLOCK, k0 = r0 * nb, k1 = r1 * nb; /* blocks */
    if (k0 == k1)
        return LQ_OK;
    if (!codes || !scales)
        return arg_fail(err, file, tensor, "null data");

    const unsigned s_lo = mx_scale_low(max_abs);
    uint8_t thr[256]; /* mx_threshold per scale byte, filled on first use (0xFF: not yet) */
    memset(thr, 0xFF, sizeof thr);
    lq_status st = LQ_OK;
    uint64_t bad = UINT64_MAX;
    for (uint64_t k = k0; k < k1 && st == LQ_OK;) {
        uint64_t end = k1 - k >= VAL_CHUNK_BYTES ? k + VAL_CHUNK_BYTES : k1;
        if (end - k == VAL_CHUNK_BYTES && max_u8_chunk(scales + k) < s_lo) {
            k = end;
            continue;
        }
        for (; k < end; k++) {
            unsigned s = scales[k];
            if (s < s_lo)
                continue;
            if (thr[s] == 0xFF)
                thr[s] = (uint8_t)mx_threshold(s, max_abs);
            const uint8_t *cb = codes + k * LQ_MXFP4_BLOCK_BYTES;
            if (!mx_block_over(cb, thr[s]))
                continue;
            unsigned i = 0, top = 0;
            while ((lq_mxfp4_code(cb, i) & LQ_E2M1_MAG_MASK) < thr[s])
                i++;
            for (unsigned j = 0; j < LQ_MXFP4_BLOCK; j++) {
                unsigned m = lq_mxfp4_code(cb, j) & LQ_E2M1_MAG_MASK;
                top = m > top ? m : top;
            }
            unsigned c = lq_mxfp4_code(cb, i);
            bad = k * LQ_MXFP4_BLOCK + i;
            unsigned long long row = k / nb, blk = k % nb, col = blk * LQ_MXFP4_BLOCK + i;
            double x = (double)lq_e2m1_decode(c) * ldexp(1.0, (int)s - LQ_E8M0_BIAS);
            if (s == LQ_E8M0_NAN)
                st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_E8M0",
                             "element %llu (row %llu, block %llu, column %llu): scale byte 0xFF is NaN (largest "
                             "|code| %g)",
                             (unsigned long long)bad, row, blk, col, (double)lq_e2m1_decode(top));
            else if (mx_rule(c & LQ_E2M1_MAG_MASK, s, max_abs) == MX_E8M0)
                st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_E8M0",
                             "element %llu (row %llu, block %llu, column %llu): code 0x%X (%g) times scale byte "
                             "0x%02X (2^%d) is not finite in f32 (largest |code| %g)",
                             (unsigned long long)bad, row, blk, col, c, (double)lq_e2m1_decode(c), s,
                             (int)s - LQ_E8M0_BIAS, (double)lq_e2m1_decode(top));
            else
                st = lq_fail(err, LQ_ERR_NUMERIC, file, tensor, "VAL_RANGE",
                             "element %llu (row %llu, block %llu, column %llu) is %.9g (code 0x%X, scale byte "
                             "0x%02X), |value| above max_abs %.9g (largest |code| %g)",
                             (unsigned long long)bad, row, blk, col, x, c, s, max_abs,
                             (double)lq_e2m1_decode(top));
            break;
        }
    }
    if (stats) {
        stat_acc a;
        memset(&a, 0, sizeof a);
        float run[VAL_RUN];
        unsigned len = 0;
        for (uint64_t k = k0; k < k1; k++) {
            float sc = lq_e8m0_decode(scales[k]);
            const uint8_t *cb = codes + k * LQ_MXFP4_BLOCK_BYTES;
            for (unsigned i = 0; i < LQ_MXFP4_BLOCK; i++)
                run[len + i] = lq_e2m1_decode(lq_mxfp4_code(cb, i)) * sc;
            len += LQ_MXFP4_BLOCK;
            if (len == VAL_RUN || k + 1 == k1) {
                acc_run(&a, run, len);
                len = 0;
            }
        }
        acc_store(&a, stats);
        stats->first_bad = bad;
    }
    return st;
}

lq_status lq_values_mxfp4(const uint8_t *codes, const uint8_t *scales, uint64_t rows, uint64_t cols, double max_abs,
                          const char *file, const char *tensor, lq_value_stats *stats, lq_error *err)
{
    return lq_values_mxfp4_rows(codes, scales, rows, cols, 0, rows, max_abs, file, tensor, stats, err);
}
