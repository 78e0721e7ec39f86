/* The CPU backend's per-op references (ops.h). */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rt_rmsnorm(const float *x, const float *w, uint64_t n, double eps, float *y)
{
    double ss = 0;
    for (uint64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (uint64_t i = 0; i < n; i++)
        y[i] = w[i] * (x[i] * r);
}

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
                    float *a, float *b, float *out)
{
    uint64_t I = g->rows, H = d->rows;
    lq_status st = rt_linear_forward(g, x, n, 0, I, a, I, threads);
    if (st == LQ_OK)
        st = rt_linear_forward(u, x, n, 0, I, b, I, threads);
    for (size_t i = 0; st == LQ_OK && i < n * I; i++)
        a[i] = rt_silu(a[i]) * b[i];
    if (st == LQ_OK)
        st = rt_linear_forward(d, a, n, 0, H, out, H, threads);
    return st;
}

lq_status rt_kv_alloc(rt_kv *c, size_t slots, uint64_t kr, uint64_t vr)
{
    c->slots = slots, c->kr = kr, c->vr = vr;
    c->k = malloc(slots * kr * sizeof(float) + 1);
    c->v = malloc(slots * vr * sizeof(float) + 1);
    return c->k && c->v ? LQ_OK : LQ_ERR_NO_MEMORY;
}

void rt_kv_free(rt_kv *c)
{
    free(c->k), free(c->v);
    c->k = c->v = NULL;
}

void rt_attend(const float *q, const rt_kv *c, size_t lo, size_t hi, uint32_t g, uint32_t dqk, uint32_t dv,
               const float *bk, const float *bv, uint64_t bkr, uint64_t bvr, uint32_t nb, const uint8_t *vis,
               float scale, const float *sink, float *sc, float *out)
{
    float mx = sink ? *sink : -INFINITY;
    size_t nr = hi - lo, ns = nr + nb;
    for (size_t j = 0; j < ns; j++) {
        const float *kj;
        if (j < nr)
            kj = rt_kv_key(c, lo + j) + (uint64_t)g * dqk;
        else if (!vis || vis[j - nr])
            kj = bk + (uint64_t)(j - nr) * bkr + (uint64_t)g * dqk;
        else {
            sc[j] = -INFINITY;
            continue;
        }
        float s = 0;
        for (uint32_t d = 0; d < dqk; d++)
            s += q[d] * kj[d];
        sc[j] = s * scale;
        mx = sc[j] > mx ? sc[j] : mx;
    }
    double den = sink ? exp((double)*sink - mx) : 0.0;
    for (size_t j = 0; j < ns; j++) {
        sc[j] = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - mx);
        den += sc[j];
    }
    for (uint32_t d = 0; d < dv; d++)
        out[d] = 0;
    for (size_t j = 0; j < ns; j++) {
        float p = (float)(sc[j] / den);
        const float *vj = j < nr ? rt_kv_val(c, lo + j) + (uint64_t)g * dv : bv + (uint64_t)(j - nr) * bvr + (uint64_t)g * dv;
        for (uint32_t d = 0; d < dv; d++)
            out[d] += p * vj[d];
    }
}

void rt_route(const rt_router *r, const float *x, float *score, uint8_t *taken, float *gscore, int32_t *sel, float *w)
{
    const uint32_t E = r->E, K = r->K;
    const uint64_t H = r->H;
    for (uint32_t e = 0; e < E; e++) {
        float s = 0;
        for (uint64_t h = 0; h < H; h++)
            s += x[h] * r->w[(uint64_t)e * H + h];
        score[e] = 1.0f / (1.0f + expf(-s));
    }
    memset(taken, 0, E);
    if (r->n_group > 1) {
        /* group-limited: the experts of groups outside the topk_group best are marked taken */
        uint32_t G = r->n_group, per = E / G;
        for (uint32_t gi = 0; gi < G; gi++) {
            float b1 = -INFINITY, b2 = -INFINITY;
            for (uint32_t e = gi * per; e < (gi + 1) * per; e++) {
                float ch = score[e] + r->bias[e];
                if (ch > b1)
                    b2 = b1, b1 = ch;
                else if (ch > b2)
                    b2 = ch;
            }
            gscore[gi] = b1 + b2;
        }
        for (uint32_t gi = 0; gi < G; gi++) {
            uint32_t better = 0; /* groups ranked before gi: higher score, or equal and lower index */
            for (uint32_t gj = 0; gj < G; gj++)
                better += gscore[gj] > gscore[gi] || (gscore[gj] == gscore[gi] && gj < gi) ||
                          (isnan(gscore[gi]) && !isnan(gscore[gj])) || (isnan(gscore[gi]) && isnan(gscore[gj]) && gj < gi);
            if (better >= r->topk_group)
                memset(taken + gi * per, 1, per);
        }
    }
    float sum = 0;
    for (uint32_t k = 0; k < K; k++) {
        int32_t best = -1;
        float bv = -INFINITY;
        for (uint32_t e = 0; e < E; e++) {
            float ch = score[e] + r->bias[e];
            if (!taken[e] && ch > bv) {
                bv = ch;
                best = (int32_t)e;
            }
        }
        if (best < 0) /* only NaN or -inf choices left: the lowest free id */
            for (uint32_t e = 0; e < E && best < 0; e++)
                if (!taken[e])
                    best = (int32_t)e;
        if (best < 0) /* group limit left fewer than K experts: free every group (config check refuses this) */
            for (uint32_t e = 0; e < E && best < 0; e++)
                if (taken[e] != 2)
                    best = (int32_t)e;
        taken[best] = 2;
        sel[k] = best;
        w[k] = score[best];
        sum += score[best];
    }
    for (uint32_t k = 0; k < K; k++) {
        if (r->norm)
            w[k] /= (sum + 1e-20f);
        w[k] *= (float)r->scaling;
    }
}
