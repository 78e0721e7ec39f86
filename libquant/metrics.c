/* Quantization error metrics (metrics.h), accumulated in double.
 *
 * Non-finite pairs are counted and left out of every sum, so one bad value shows up as a count
 * instead of turning the whole report into NaN. The clip test |w| / 2^(s-127) > 6 is evaluated
 * as |w| > 6 * 2^(s-127) in double, where both sides are exact (6 * 2^k for k in [-127, 127] and
 * any f32 are doubles), so the count is exact. */
#include "metrics.h"

#include "fp_formats.h"

#include <math.h>
#include <string.h>

void lq_err_acc_init(lq_err_acc *a)
{
    if (a)
        memset(a, 0, sizeof *a);
}

/* Eight independent lanes (element i goes to lane i % 8), summed in lane order at the end: the
 * result depends only on n and the data, never on how callers split their work, and the lanes
 * keep several additions in flight. Non-finite pairs are counted and contribute zero. The
 * converter's hot path is lq_err_acc_add_mx below. */
#define ACC_LANES 8

void lq_err_acc_add(lq_err_acc *a, const float *w, const float *q, size_t n, const uint8_t *mx_scales)
{
    if (!a || n == 0 || !w || !q)
        return;
    double sw2[ACC_LANES] = {0}, sq2[ACC_LANES] = {0}, swq[ACC_LANES] = {0}, se2[ACC_LANES] = {0};
    double mx[ACC_LANES];
    for (int l = 0; l < ACC_LANES; l++)
        mx[l] = a->max_abs;
    uint64_t clipped = 0, zeroed = 0, nonfinite = 0;
    for (size_t b0 = 0; b0 < n; b0 += 32) {
        size_t b1 = b0 + 32 < n ? b0 + 32 : n;
        double limit = INFINITY;
        if (mx_scales) {
            uint8_t s = mx_scales[b0 / 32];
            /* 0xFF is NaN: nothing compares greater than it, so nothing counts as clipped. */
            limit = s == 0xFFu ? INFINITY : ldexp(6.0, (int)s - 127);
        }
        for (size_t i = b0; i < b1; i++) {
            int l = (int)(i % ACC_LANES);
            double wi = w[i], qi = q[i];
            int fin = isfinite(wi) && isfinite(qi);
            nonfinite += !fin;
            wi = fin ? wi : 0.0;
            qi = fin ? qi : 0.0;
            double e = wi - qi;
            sw2[l] += wi * wi;
            sq2[l] += qi * qi;
            swq[l] += wi * qi;
            se2[l] += e * e;
            mx[l] = fabs(e) > mx[l] ? fabs(e) : mx[l];
            zeroed += (wi != 0.0) & (qi == 0.0);
            clipped += mx_scales && fabs(wi) > limit;
        }
    }
    double tw2 = 0, tq2 = 0, twq = 0, te2 = 0, tmx = a->max_abs;
    for (int l = 0; l < ACC_LANES; l++) {
        tw2 += sw2[l];
        tq2 += sq2[l];
        twq += swq[l];
        te2 += se2[l];
        tmx = mx[l] > tmx ? mx[l] : tmx;
    }
    a->n += n;
    a->sum_w2 += tw2;
    a->sum_q2 += tq2;
    a->sum_wq += twq;
    a->sum_e2 += te2;
    a->max_abs = tmx;
    a->clipped += clipped;
    a->zeroed += zeroed;
    a->nonfinite += nonfinite;
}

void lq_err_acc_merge(lq_err_acc *a, const lq_err_acc *b)
{
    if (!a || !b)
        return;
    a->n += b->n;
    a->sum_w2 += b->sum_w2;
    a->sum_q2 += b->sum_q2;
    a->sum_wq += b->sum_wq;
    a->sum_e2 += b->sum_e2;
    if (b->max_abs > a->max_abs)
        a->max_abs = b->max_abs;
    a->clipped += b->clipped;
    a->zeroed += b->zeroed;
    a->nonfinite += b->nonfinite;
}

void lq_err_acc_finish(const lq_err_acc *a, lq_metrics *m)
{
    if (!m)
        return;
    memset(m, 0, sizeof *m);
    if (!a)
        return;
    m->n = a->n;
    m->nonfinite = a->nonfinite;
    m->max_abs = a->max_abs;
    if (a->sum_e2 == 0.0)
        m->rel_mse = 0.0;
    else if (a->sum_w2 == 0.0)
        m->rel_mse = INFINITY;
    else
        m->rel_mse = a->sum_e2 / a->sum_w2;
    m->sqnr_db = m->rel_mse == 0.0 ? INFINITY : -10.0 * log10(m->rel_mse);
    if (a->sum_w2 == 0.0 && a->sum_q2 == 0.0)
        m->cosine = 1.0;
    else if (a->sum_w2 == 0.0 || a->sum_q2 == 0.0)
        m->cosine = 0.0;
    else
        m->cosine = a->sum_wq / (sqrt(a->sum_w2) * sqrt(a->sum_q2));
    if (a->n) {
        m->clip_frac = (double)a->clipped / (double)a->n;
        m->zero_frac = (double)a->zeroed / (double)a->n;
    }
}

/* ---- MXFP4 pairs (lq_err_acc_add_mx) ---- */

/* Per-call double accumulators, one per lane: a block's f32 lane sums (in units of the block
 * scale X) are scaled back by X^2 (exact in double) and added lane by lane; the lanes are summed
 * into the totals in order at the end of the call. Both paths do exactly this, so they agree to
 * the bit. Working in units of X keeps every f32 term near 1, so nothing underflows whatever the
 * weights' magnitude. */
typedef struct lanes {
    double t[4][8];
    double m[8];
} lanes;

static void fold_block(lanes *L, const float *sw2, const float *sq2, const float *swq, const float *se2,
                       const float *mx, double x)
{
    double x2 = x * x;
    for (int l = 0; l < 8; l++) {
        L->t[0][l] += (double)sw2[l] * x2;
        L->t[1][l] += (double)sq2[l] * x2;
        L->t[2][l] += (double)swq[l] * x2;
        L->t[3][l] += (double)se2[l] * x2;
        double m = (double)mx[l] * x;
        L->m[l] = m > L->m[l] ? m : L->m[l];
    }
}

static void fold_total(lq_err_acc *a, const lanes *L)
{
    double t[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 8; l++)
            t[k] += L->t[k][l];
    a->sum_w2 += t[0];
    a->sum_q2 += t[1];
    a->sum_wq += t[2];
    a->sum_e2 += t[3];
    for (int l = 0; l < 8; l++)
        a->max_abs = L->m[l] > a->max_abs ? L->m[l] : a->max_abs;
}

/* A block that needs the careful path: decode to f32, then per-element double sums. */
static void slow_block(lq_err_acc *a, const float *w, const uint8_t *p, uint8_t s)
{
    float q[32];
    for (unsigned i = 0; i < 32; i++)
        q[i] = lq_e2m1_decode(lq_mxfp4_code(p, i)) * lq_e8m0_decode(s); /* 0xFF: NaN */
    lq_err_acc_add(a, w, q, 32, &s);
}

static int block_fast(const float *w, uint8_t s)
{
    if (s >= 253)
        return 0;
    uint32_t bad = 0;
    for (int i = 0; i < 32; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        bad |= (u & 0x7F800000u) == 0x7F800000u;
    }
    return !bad;
}

static void add_mx_portable(lq_err_acc *a, const float *w, const uint8_t *packed, const uint8_t *scales, size_t n)
{
    lanes L;
    memset(&L, 0, sizeof L);
    for (size_t b = 0; b < n / 32; b++) {
        const float *wb = w + 32 * b;
        const uint8_t *pb = packed + 16 * b;
        uint8_t s = scales[b];
        if (!block_fast(wb, s)) {
            slow_block(a, wb, pb, s);
            continue;
        }
        float inv = lq_e8m0_recip(s); /* 1 / X, a normal f32 for s <= 252 */
        float sw2[8] = {0}, sq2[8] = {0}, swq[8] = {0}, se2[8] = {0}, mx[8] = {0};
        uint64_t zeroed = 0, clipped = 0;
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 8; l++) {
                int i = 8 * j + l;
                float wi = wb[i] * inv;                               /* w / X */
                float qi = lq_e2m1_decode(lq_mxfp4_code(pb, (unsigned)i)); /* q / X */
                float e = wi - qi;
                float p1 = wi * wi, p2 = qi * qi, p3 = wi * qi, p4 = e * e;
                sw2[l] = sw2[l] + p1;
                sq2[l] = sq2[l] + p2;
                swq[l] = swq[l] + p3;
                se2[l] = se2[l] + p4;
                float ae = fabsf(e);
                mx[l] = ae > mx[l] ? ae : mx[l];
                zeroed += (wb[i] != 0.0f) & (qi == 0.0f);
                clipped += fabsf(wi) > 6.0f;
            }
        }
        fold_block(&L, sw2, sq2, swq, se2, mx, (double)lq_e8m0_decode(s));
        a->n += 32;
        a->zeroed += zeroed;
        a->clipped += clipped;
    }
    fold_total(a, &L);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void add_mx_avx2(lq_err_acc *a, const float *w, const uint8_t *packed,
                                                       const uint8_t *scales, size_t n)
{
    const __m256 lut = _mm256_loadu_ps(lq_e2m1_values); /* magnitudes of codes 0..7 */
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i m7 = _mm256_set1_epi32(7), m8 = _mm256_set1_epi32(8);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 zero = _mm256_setzero_ps();
    __m256d T[4][2], M[2];
    for (int k = 0; k < 4; k++)
        T[k][0] = T[k][1] = _mm256_setzero_pd();
    M[0] = M[1] = _mm256_setzero_pd();
    for (size_t b = 0; b < n / 32; b++) {
        const float *wb = w + 32 * b;
        const uint8_t *pb = packed + 16 * b;
        uint8_t s = scales[b];
        if (!block_fast(wb, s)) {
            slow_block(a, wb, pb, s);
            continue;
        }
        __m256 inv = _mm256_set1_ps(lq_e8m0_recip(s)), limit = _mm256_set1_ps(6.0f);
        __m256 sw2 = zero, sq2 = zero, swq = zero, se2 = zero, mx = zero;
        uint64_t zeroed = 0, clipped = 0;
        for (int j = 0; j < 4; j++) {
            uint32_t word;
            memcpy(&word, pb + 4 * j, 4);
            __m256i codes = _mm256_srlv_epi32(_mm256_set1_epi32((int)word), shifts);
            __m256 mag = _mm256_permutevar8x32_ps(lut, _mm256_and_si256(codes, m7));
            __m256i sign = _mm256_slli_epi32(_mm256_and_si256(codes, m8), 28);
            __m256 q = _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
            __m256 w0 = _mm256_loadu_ps(wb + 8 * j);
            __m256 wv = _mm256_mul_ps(w0, inv);
            __m256 e = _mm256_sub_ps(wv, q);
            sw2 = _mm256_add_ps(sw2, _mm256_mul_ps(wv, wv));
            sq2 = _mm256_add_ps(sq2, _mm256_mul_ps(q, q));
            swq = _mm256_add_ps(swq, _mm256_mul_ps(wv, q));
            se2 = _mm256_add_ps(se2, _mm256_mul_ps(e, e));
            __m256 ae = _mm256_and_ps(e, absmask);
            mx = _mm256_max_ps(ae, mx);
            __m256 wnz = _mm256_cmp_ps(w0, zero, _CMP_NEQ_UQ), qz = _mm256_cmp_ps(q, zero, _CMP_EQ_OQ);
            zeroed += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_and_ps(wnz, qz)));
            __m256 cl = _mm256_cmp_ps(_mm256_and_ps(wv, absmask), limit, _CMP_GT_OQ);
            clipped += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_ps(cl));
        }
        /* fold_block, four doubles at a time: lanes 0-3 then 4-7. */
        double x = (double)lq_e8m0_decode(s);
        __m256d xv = _mm256_set1_pd(x), x2v = _mm256_set1_pd(x * x);
        __m256 v[4] = {sw2, sq2, swq, se2};
        for (int k = 0; k < 4; k++) {
            __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v[k]));
            __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v[k], 1));
            T[k][0] = _mm256_add_pd(T[k][0], _mm256_mul_pd(lo, x2v));
            T[k][1] = _mm256_add_pd(T[k][1], _mm256_mul_pd(hi, x2v));
        }
        __m256d mlo = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(mx)), xv);
        __m256d mhi = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(mx, 1)), xv);
        M[0] = _mm256_max_pd(mlo, M[0]);
        M[1] = _mm256_max_pd(mhi, M[1]);
        a->n += 32;
        a->zeroed += zeroed;
        a->clipped += clipped;
    }
    lanes L;
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_pd(L.t[k], T[k][0]);
        _mm256_storeu_pd(L.t[k] + 4, T[k][1]);
    }
    _mm256_storeu_pd(L.m, M[0]);
    _mm256_storeu_pd(L.m + 4, M[1]);
    fold_total(a, &L);
}
#endif

void lq_err_acc_add_mx_portable(lq_err_acc *a, const float *w, const uint8_t *packed, const uint8_t *scales,
                                size_t n)
{
    if (a && w && packed && scales)
        add_mx_portable(a, w, packed, scales, n);
}

void lq_err_acc_add_mx(lq_err_acc *a, const float *w, const uint8_t *packed, const uint8_t *scales, size_t n)
{
    if (!a || !w || !packed || !scales)
        return;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2")) {
        add_mx_avx2(a, w, packed, scales, n);
        return;
    }
#endif
    add_mx_portable(a, w, packed, scales, n);
}
