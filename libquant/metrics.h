/* Quantization error metrics (reference/mxfp4_formats.md 6.1), accumulated in double so a
 * tensor can be processed in chunks (and chunks merged in a fixed order for determinism).
 *
 *   relative MSE = sum (w - q)^2 / sum w^2          SQNR dB = -10 log10(relative MSE)
 *   cosine       = <w, q> / (|w| |q|)               max abs error = max |w - q|
 *   clip fraction = elements with |w / X| > 6 (needs the MX scales)
 *   zero fraction = non-zero w whose q is +-0 */
#ifndef LIBQUANT_METRICS_H
#define LIBQUANT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_err_acc {
    uint64_t n;
    double sum_w2;    /* sum w^2 */
    double sum_q2;    /* sum q^2 */
    double sum_wq;    /* sum w*q */
    double sum_e2;    /* sum (w-q)^2 */
    double max_abs;   /* max |w-q| */
    uint64_t clipped;
    uint64_t zeroed;
    uint64_t nonfinite; /* non-finite w or q seen (must stay 0) */
} lq_err_acc;

typedef struct lq_metrics {
    uint64_t n;
    double rel_mse;
    double sqnr_db;   /* +inf when the error is exactly zero */
    double cosine;    /* 1 when both are all-zero */
    double max_abs;
    double clip_frac;
    double zero_frac;
    uint64_t nonfinite;
} lq_metrics;

void lq_err_acc_init(lq_err_acc *a);
/* Adds n pairs. mx_scales (may be NULL) are the E8M0 scales of q, one per 32 elements starting
 * at w[0]; with them the clip count is exact, without them it stays 0. */
void lq_err_acc_add(lq_err_acc *a, const float *w, const float *q, size_t n, const uint8_t *mx_scales);
/* Adds n pairs where q is MXFP4 data (n % 32 == 0): the packed codes and E8M0 scales are
 * decoded on the fly, so no f32 copy of q is needed. Per 32-element block the sums are formed
 * in f32 over 8 fixed lanes (4 terms each), then added to the double totals in lane order; the
 * AVX2 path and the portable path perform the same IEEE operations in the same order, so the
 * result is bit-identical on every x86-64 machine. A block with a non-finite w, or a scale of
 * 253 or more (whose decoded values can overflow f32), falls back to per-element double sums. */
void lq_err_acc_add_mx(lq_err_acc *a, const float *w, const uint8_t *packed, const uint8_t *scales, size_t n);
/* The same, forced onto the portable path (tests compare the two). */
void lq_err_acc_add_mx_portable(lq_err_acc *a, const float *w, const uint8_t *packed, const uint8_t *scales,
                                size_t n);

/* a += b. */
void lq_err_acc_merge(lq_err_acc *a, const lq_err_acc *b);
void lq_err_acc_finish(const lq_err_acc *a, lq_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
