/* Small building blocks shared by the target and the drafter forward (ops.h). */
#include "ops.h"

#include <math.h>
#include <stdlib.h>

/* y = w * x / sqrt(mean(x^2) + eps), the mean taken in double. */
void rt_rmsnorm(const float *x, const float *w, uint64_t n, double eps, float *y)
{
    double ss = 0;
    for (uint64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (uint64_t i = 0; i < n; i++)
        y[i] = w[i] * (x[i] * r);
}

/* Rotate-half RoPE on the first rd dims of a head of d dims at position pos: element i pairs with
 * i + rd/2 and both use frequency theta^(-2i/rd), computed in f32 as transformers does. */
void rt_rope(float *x, uint32_t rd, double theta, uint64_t pos)
{
    uint32_t half = rd / 2;
    for (uint32_t i = 0; i < half; i++) {
        float inv = 1.0f / powf((float)theta, (float)(2 * i) / (float)rd);
        float f = (float)pos * inv;
        float c = cosf(f), s = sinf(f);
        float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

float rt_silu(float x) { return x / (1.0f + expf(-x)); }

lq_status rt_swiglu(const rt_linear *g, const rt_linear *u, const rt_linear *d, const float *x, size_t n, int threads,
                        float *out)
{
    uint64_t I = g->rows, H = d->rows;
    float *a = malloc(n * I * sizeof(float)), *b = malloc(n * I * sizeof(float));
    lq_status st = a && b ? LQ_OK : LQ_ERR_NO_MEMORY;
    if (st == LQ_OK)
        st = rt_linear_forward(g, x, n, 0, I, a, I, threads);
    if (st == LQ_OK)
        st = rt_linear_forward(u, x, n, 0, I, b, I, threads);
    for (size_t i = 0; st == LQ_OK && i < n * I; i++)
        a[i] = rt_silu(a[i]) * b[i];
    if (st == LQ_OK)
        st = rt_linear_forward(d, a, n, 0, H, out, H, threads);
    free(a), free(b);
    return st;
}

