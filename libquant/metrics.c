/* Quantization error metrics (metrics.h), accumulated in double.
 *
 * Non-finite pairs are counted and left out of every sum, so one bad value shows up as a count
 * instead of turning the whole report into NaN. The clip test |w| / 2^(s-127) > 6 is evaluated
 * as |w| > 6 * 2^(s-127) in double, where both sides are exact (6 * 2^k for k in [-127, 127] and
 * any f32 are doubles), so the count is exact. */
#include "metrics.h"

#include <math.h>
#include <string.h>

void lq_err_acc_init(lq_err_acc *a)
{
    if (a)
        memset(a, 0, sizeof *a);
}

void lq_err_acc_add(lq_err_acc *a, const float *w, const float *q, size_t n, const uint8_t *mx_scales)
{
    if (!a || n == 0 || !w || !q)
        return;
    double sw2 = 0.0, sq2 = 0.0, swq = 0.0, se2 = 0.0, mx = a->max_abs;
    uint64_t clipped = 0, zeroed = 0, nonfinite = 0;
    double limit = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (mx_scales && i % 32 == 0) {
            uint8_t s = mx_scales[i / 32];
            /* 0xFF is NaN: nothing compares greater than it, so nothing counts as clipped. */
            limit = s == 0xFFu ? INFINITY : ldexp(6.0, (int)s - 127);
        }
        double wi = w[i], qi = q[i];
        if (!isfinite(wi) || !isfinite(qi)) {
            nonfinite++;
            continue;
        }
        double e = wi - qi;
        sw2 += wi * wi;
        sq2 += qi * qi;
        swq += wi * qi;
        se2 += e * e;
        if (fabs(e) > mx)
            mx = fabs(e);
        zeroed += (wi != 0.0) & (qi == 0.0);
        if (mx_scales)
            clipped += fabs(wi) > limit;
    }
    a->n += n;
    a->sum_w2 += sw2;
    a->sum_q2 += sq2;
    a->sum_wq += swq;
    a->sum_e2 += se2;
    a->max_abs = mx;
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
