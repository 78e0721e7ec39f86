/* Block-scaled FP8 weights (fp8block.h): scale-grid detection, dequantization, quantization.
 *
 * Shape facts come from reference/mimo_arch.md 4.4: a checkpoint saved under tensor parallelism
 * with S shards pads each shard of R_s = rows / S rows to whole 128-row blocks, and its scale
 * rows run contiguously within the shard. The grid shape alone decides S (rows % S == 0 and
 * srows == S * ceil(R_s / block_r)); S = 1 is the ordinary DeepSeek grid. Dequantization is
 * w = fp8 * scale in f32, one rounding, as DeepSeek's weight_dequant does. */
#include "fp8block.h"

#include "fp_formats.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define FP8_MAX_SHARDS 4096

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Whether S shards explain the row grid. */
static int shards_fit(uint64_t rows, uint64_t srows, uint32_t block_r, uint64_t s)
{
    if (s == 0 || rows % s != 0)
        return 0;
    uint64_t per = ceil_div(rows / s, block_r);
    if (per != 0 && s > UINT64_MAX / per)
        return 0;
    return s * per == srows;
}

lq_status lq_fp8_grid_detect(uint64_t rows, uint64_t cols, uint64_t srows, uint64_t scols,
                             uint32_t block_r, uint32_t block_c, uint32_t hint,
                             const char *tensor, lq_fp8_grid *grid, lq_error *err)
{
    if (!grid || block_r == 0 || block_c == 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, tensor, "FP8_SCALE_SHAPE",
                       "grid output missing or zero block size");
    if (scols != ceil_div(cols, block_c))
        return lq_fail(err, LQ_ERR_CORRUPT, NULL, tensor, "FP8_SCALE_SHAPE",
                       "scale has %llu columns, weight with %llu columns needs %llu (block %u)",
                       (unsigned long long)scols, (unsigned long long)cols,
                       (unsigned long long)ceil_div(cols, block_c), block_c);
    uint64_t s = 0;
    if (rows == 0) {
        if (srows == 0)
            s = 1;
    } else if (hint && shards_fit(rows, srows, block_r, hint)) {
        s = hint;
    } else {
        /* Checkpoint-TP degrees are small, so the search is bounded by FP8_MAX_SHARDS whatever
         * the (untrusted) shape says. */
        uint64_t hi = srows < rows ? srows : rows;
        if (hi > FP8_MAX_SHARDS)
            hi = FP8_MAX_SHARDS;
        for (uint64_t c = 1; c <= hi && !s; c++)
            if (shards_fit(rows, srows, block_r, c))
                s = c;
    }
    if (s == 0)
        return lq_fail(err, LQ_ERR_CORRUPT, NULL, tensor, "FP8_SCALE_SHAPE",
                       "scale rows %llu fit no shard count for %llu weight rows (block %u; uniform "
                       "grid needs %llu)",
                       (unsigned long long)srows, (unsigned long long)rows, block_r,
                       (unsigned long long)ceil_div(rows, block_r));
    grid->rows = rows;
    grid->cols = cols;
    grid->srows = srows;
    grid->scols = scols;
    grid->block_r = block_r;
    grid->block_c = block_c;
    grid->shards = (uint32_t)s;
    return LQ_OK;
}

uint64_t lq_fp8_grid_scale_row(const lq_fp8_grid *g, uint64_t r)
{
    uint64_t rs = g->rows / g->shards;
    uint64_t shard = r / rs, local = r % rs;
    return shard * ceil_div(rs, g->block_r) + local / g->block_r;
}

int lq_fp8_grid_ok(const lq_fp8_grid *g)
{
    if (!g || g->block_r == 0 || g->block_c == 0 || g->shards == 0)
        return 0;
    if (g->rows % g->shards != 0 || g->scols != ceil_div(g->cols, g->block_c))
        return 0;
    return g->rows == 0 ? g->srows == 0 : shards_fit(g->rows, g->srows, g->block_r, g->shards);
}

static float scale_value(lq_dtype sdt, const void *scale, uint64_t idx)
{
    const uint8_t *p = scale;
    switch (sdt) {
    case LQ_DTYPE_F32: {
        float f;
        memcpy(&f, p + 4 * idx, 4);
        return f;
    }
    case LQ_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * idx, 2);
        return lq_bf16_to_f32(h);
    }
    default: return lq_e8m0_decode(p[idx]);
    }
}

static float g_lut[2][256];
static uint8_t g_bad[2][256];
static pthread_once_t g_lut_once = PTHREAD_ONCE_INIT;

static void build_luts(void)
{
    for (int b = 0; b < 256; b++) {
        g_lut[0][b] = lq_e4m3_decode((uint8_t)b);
        g_lut[1][b] = lq_e5m2_decode((uint8_t)b);
        g_bad[0][b] = (uint8_t)lq_e4m3_is_nan((uint8_t)b);
        g_bad[1][b] = (uint8_t)lq_e5m2_is_nonfinite((uint8_t)b);
    }
}

/* One column block: out[c] = decode(w[c]) * sc; returns whether any byte is not finite (its
 * value is then whatever the table holds; the caller fails the tensor). */
static unsigned dequant_block_c(const uint8_t *w, size_t n, float sc, const float *lut, unsigned nm,
                                float *out)
{
    unsigned any_bad = 0;
    for (size_t c = 0; c < n; c++) {
        out[c] = lut[w[c]] * sc;
        any_bad |= (w[c] & nm) == nm;
    }
    return any_bad;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define FP8_AVX2 1
#include <immintrin.h>

/* The same products, 32 codes at a time. The code's magnitude bits, shifted so its exponent
 * lands in the f32 exponent field (E4M3 by 20, E5M2 by 21), are an f32 that is the code's value
 * times 2^-120 (E4M3) or 2^-112 (E5M2), subnormal codes included (as f32 subnormals); one
 * multiplication by that power of two restores the value exactly, so the product with the scale
 * is the table path's product bit for bit (tests/numerics/test_fp8block.c compares all codes).
 * Non-finite codes decode to finite garbage here; they are flagged as in the table path. */
__attribute__((target("avx2"))) static unsigned dequant_block_avx2(const uint8_t *w, size_t n, float sc,
                                                                 const float *lut, unsigned nm, int e5,
                                                                 float *out)
{
    const __m256i mag_mask = _mm256_set1_epi32(0x7F), sign_mask = _mm256_set1_epi32((int)0x80000000u);
    const __m256i nmv = _mm256_set1_epi8((char)nm);
    const __m128i shift = _mm_cvtsi32_si128(e5 ? 21 : 20);
    const __m256 pow2 = _mm256_set1_ps(e5 ? 0x1p112f : 0x1p120f), scv = _mm256_set1_ps(sc);
    __m256i bad = _mm256_setzero_si256();
    size_t c = 0;
    for (; c + 32 <= n; c += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(w + c));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi8(_mm256_and_si256(v, nmv), nmv));
        for (int k = 0; k < 4; k++) {
            __m256i u = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w + c + 8 * k)));
            __m256i sign = _mm256_and_si256(_mm256_slli_epi32(u, 24), sign_mask);
            __m256i mag = _mm256_sll_epi32(_mm256_and_si256(u, mag_mask), shift);
            __m256 f = _mm256_castsi256_ps(_mm256_or_si256(sign, mag));
            _mm256_storeu_ps(out + c + 8 * k, _mm256_mul_ps(_mm256_mul_ps(f, pow2), scv));
        }
    }
    unsigned any_bad = !_mm256_testz_si256(bad, bad);
    return any_bad | dequant_block_c(w + c, n - c, sc, lut, nm, out + c);
}
#else
#define FP8_AVX2 0
#endif

static lq_status dequant(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w, lq_dtype sdt,
                         const void *scale, uint64_t r0, uint64_t r1, float *out, const char *tensor,
                         lq_error *err, int simd)
{
    if (!lq_fp8_grid_ok(g))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, tensor, "FP8_SCALE_SHAPE",
                       "inconsistent scale grid");
    if (r0 > r1 || r1 > g->rows)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, tensor, NULL,
                       "row range [%llu, %llu) outside %llu rows", (unsigned long long)r0,
                       (unsigned long long)r1, (unsigned long long)g->rows);
    if (wdt != LQ_DTYPE_F8_E4M3 && wdt != LQ_DTYPE_F8_E5M2)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, NULL, tensor, NULL, "weight dtype %s is not FP8",
                       lq_dtype_name(wdt));
    if (sdt != LQ_DTYPE_F32 && sdt != LQ_DTYPE_BF16 && sdt != LQ_DTYPE_F8_E8M0)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, NULL, tensor, NULL,
                       "scale dtype %s (expected F32, BF16 or F8_E8M0)", lq_dtype_name(sdt));
    if (r0 == r1 || g->cols == 0)
        return LQ_OK;
    if (!w || !scale || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, tensor, NULL, "null buffer");

    /* Exact decode tables, plus which bytes are not finite (NaN, and inf for E5M2), built once. */
    pthread_once(&g_lut_once, build_luts);
    const int e5 = wdt == LQ_DTYPE_F8_E5M2;
    const float *lut = g_lut[e5];
    const uint8_t *bad = g_bad[e5];
    /* non-finite codes: E4M3 S.1111.111 (NaN); E5M2 exponent 11111 (inf, NaN) */
    const unsigned nm = e5 ? LQ_E5M2_NONFINITE_MASK : LQ_E4M3_NAN_MASK;
#if FP8_AVX2
    simd = simd && __builtin_cpu_supports("avx2");
#else
    simd = 0;
#endif
    uint64_t cols = g->cols;
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t sr = lq_fp8_grid_scale_row(g, r);
        const uint8_t *wr = w + r * cols;
        float *orow = out + (r - r0) * cols;
        for (uint64_t cb = 0; cb < g->scols; cb++) {
            uint64_t c0 = cb * g->block_c;
            uint64_t c1 = c0 + g->block_c < cols ? c0 + g->block_c : cols;
            uint64_t si = sr * g->scols + cb;
            float sc = scale_value(sdt, scale, si);
            if (!isfinite(sc) || sc < 0.0f)
                return lq_fail(err, LQ_ERR_NUMERIC, NULL, tensor, "FP8_BAD_SCALE",
                               "scale element %llu (row %llu, column block %llu) is %g",
                               (unsigned long long)si, (unsigned long long)sr,
                               (unsigned long long)cb, (double)sc);
            unsigned any_bad;
#if FP8_AVX2
            if (simd)
                any_bad = dequant_block_avx2(wr + c0, (size_t)(c1 - c0), sc, lut, nm, e5, orow + c0);
            else
#endif
                any_bad = dequant_block_c(wr + c0, (size_t)(c1 - c0), sc, lut, nm, orow + c0);
            if (any_bad) {
                uint64_t c = c0;
                while (!bad[wr[c]])
                    c++;
                return lq_fail(err, LQ_ERR_NUMERIC, NULL, tensor, "FP8_NONFINITE",
                               "weight element %llu (row %llu, column %llu) is byte 0x%02X, "
                               "not a finite %s",
                               (unsigned long long)(r * cols + c), (unsigned long long)r,
                               (unsigned long long)c, wr[c], lq_dtype_name(wdt));
            }
        }
    }
    return LQ_OK;
}

lq_status lq_fp8_block_dequant(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w,
                               lq_dtype sdt, const void *scale, uint64_t r0, uint64_t r1,
                               float *out, const char *tensor, lq_error *err)
{
    return dequant(g, wdt, w, sdt, scale, r0, r1, out, tensor, err, 1);
}

lq_status lq_fp8_block_dequant_portable(const lq_fp8_grid *g, lq_dtype wdt, const uint8_t *w,
                                        lq_dtype sdt, const void *scale, uint64_t r0, uint64_t r1,
                                        float *out, const char *tensor, lq_error *err)
{
    return dequant(g, wdt, w, sdt, scale, r0, r1, out, tensor, err, 0);
}

lq_status lq_fp8_block_quant(const lq_fp8_grid *g, const float *w, uint8_t *q, float *scale)
{
    if (!lq_fp8_grid_ok(g))
        return LQ_ERR_INVALID_ARGUMENT;
    if (g->rows == 0 || g->cols == 0)
        return LQ_OK;
    if (!w || !q || !scale)
        return LQ_ERR_INVALID_ARGUMENT;
    uint64_t rs = g->rows / g->shards, per = ceil_div(rs, g->block_r), cols = g->cols;
    for (uint64_t s = 0; s < g->shards; s++) {
        for (uint64_t rb = 0; rb < per; rb++) {
            uint64_t r0 = s * rs + rb * g->block_r;
            uint64_t r1 = r0 + g->block_r < (s + 1) * rs ? r0 + g->block_r : (s + 1) * rs;
            for (uint64_t cb = 0; cb < g->scols; cb++) {
                uint64_t c0 = cb * g->block_c;
                uint64_t c1 = c0 + g->block_c < cols ? c0 + g->block_c : cols;
                float amax = 0.0f;
                for (uint64_t r = r0; r < r1; r++)
                    for (uint64_t c = c0; c < c1; c++) {
                        float a = fabsf(w[r * cols + c]);
                        if (!isfinite(a))
                            return LQ_ERR_NUMERIC;
                        amax = a > amax ? a : amax;
                    }
                float sc = amax / 448.0f;
                if (!(sc > 0.0f))
                    sc = 1.0f; /* all-zero block, or amax so tiny the quotient underflows */
                scale[(s * per + rb) * g->scols + cb] = sc;
                for (uint64_t r = r0; r < r1; r++)
                    for (uint64_t c = c0; c < c1; c++)
                        q[r * cols + c] = lq_f32_to_e4m3_sat(w[r * cols + c] / sc);
            }
        }
    }
    return LQ_OK;
}
