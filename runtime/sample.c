/* Sampling (sample.h). */
#include "sample.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rt_rng_seed(rt_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rt_rng_next(rt_rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rt_rng_uniform(rt_rng *r) { return (double)(rt_rng_next(r) >> 11) * 0x1.0p-53; }

int32_t rt_argmax(const float *logits, uint32_t V)
{
    uint32_t best = 0;
    while (best + 1 < V && isnan(logits[best])) /* a NaN never wins over a number */
        best++;
    for (uint32_t i = best + 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    return isnan(logits[best]) ? 0 : (int32_t)best;
}

/* Sort order: probability descending, then id ascending. */
static const double *g_sort_p;
static int by_prob(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (g_sort_p[x] != g_sort_p[y])
        return g_sort_p[x] > g_sort_p[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

uint32_t rt_dist(const float *logits, uint32_t V, const rt_sampling *s, double *probs, uint32_t *idx)
{
    if (s->temperature <= 0) {
        for (uint32_t i = 0; i < V; i++)
            probs[i] = 0;
        probs[rt_argmax(logits, V)] = 1;
        return 1;
    }
    double mx = -INFINITY, sum = 0;
    for (uint32_t i = 0; i < V; i++)
        mx = (double)logits[i] > mx ? (double)logits[i] : mx;
    for (uint32_t i = 0; i < V; i++) {
        probs[i] = isnan(logits[i]) ? 0.0 : exp(((double)logits[i] - mx) / s->temperature);
        sum += probs[i];
    }
    if (!(sum > 0) || !isfinite(sum)) { /* no number, or +inf logits: the argmax takes all */
        for (uint32_t i = 0; i < V; i++)
            probs[i] = 0;
        probs[rt_argmax(logits, V)] = 1;
        return 1;
    }
    for (uint32_t i = 0; i < V; i++)
        probs[i] /= sum;
    int cut_k = s->top_k > 0 && s->top_k < V, cut_p = s->top_p > 0 && s->top_p < 1;
    if (!cut_k && !cut_p)
        return V;
    /* idx[0..keep): the candidates, most probable first (ties: lower id first) */
    uint32_t keep;
    if (cut_k && s->top_k <= 64) {
        keep = 0;
        for (uint32_t i = 0; i < V; i++) {
            if (keep == s->top_k && !(probs[i] > probs[idx[keep - 1]]))
                continue;
            uint32_t j = keep < s->top_k ? keep++ : keep - 1;
            while (j > 0 && probs[i] > probs[idx[j - 1]]) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = i;
        }
    } else {
        for (uint32_t i = 0; i < V; i++)
            idx[i] = i;
        /* qsort with a file-scope key: the runtime samples from one thread. */
        g_sort_p = probs;
        qsort(idx, V, sizeof(uint32_t), by_prob);
        keep = cut_k ? s->top_k : V;
    }
    if (cut_p) {
        double kept = 0, cum = 0;
        for (uint32_t i = 0; i < keep; i++)
            kept += probs[idx[i]];
        uint32_t n = 0;
        while (n < keep) {
            cum += probs[idx[n]] / kept;
            n++;
            if (cum >= s->top_p)
                break;
        }
        keep = n;
    }
    double z = 0, kv[64];
    for (uint32_t i = 0; i < keep; i++)
        z += probs[idx[i]];
    if (keep <= 64) {
        for (uint32_t i = 0; i < keep; i++)
            kv[i] = probs[idx[i]];
        for (uint32_t i = 0; i < V; i++)
            probs[i] = 0;
        for (uint32_t i = 0; i < keep; i++)
            probs[idx[i]] = kv[i] / z;
    } else {
        for (uint32_t i = keep; i < V; i++)
            probs[idx[i]] = 0;
        for (uint32_t i = 0; i < keep; i++)
            probs[idx[i]] /= z;
    }
    return keep;
}

int32_t rt_pick(const double *probs, uint32_t V, double u)
{
    double tot = 0;
    for (uint32_t i = 0; i < V; i++)
        tot += probs[i];
    double target = u * tot, cum = 0;
    int32_t last = -1;
    for (uint32_t i = 0; i < V; i++) {
        if (probs[i] <= 0)
            continue;
        cum += probs[i];
        last = (int32_t)i;
        if (cum > target)
            return (int32_t)i;
    }
    return last; /* rounding: the last token with mass */
}

int32_t rt_sample(const float *logits, uint32_t V, const rt_sampling *s, rt_rng *r, double *probs, uint32_t *idx)
{
    if (s->temperature <= 0)
        return rt_argmax(logits, V);
    rt_dist(logits, V, s, probs, idx);
    return rt_pick(probs, V, rt_rng_uniform(r));
}

uint32_t rt_accept(const float *logits, uint32_t V, const int32_t *drafts, uint32_t k, const rt_sampling *s, rt_rng *r,
                   int32_t *bonus, double *probs, uint32_t *idx)
{
    if (s->temperature <= 0) {
        uint32_t a = 0;
        while (a < k && drafts[a] == rt_argmax(logits + (size_t)a * V, V))
            a++;
        *bonus = rt_argmax(logits + (size_t)a * V, V);
        return a;
    }
    for (uint32_t i = 0; i < k; i++) {
        rt_dist(logits + (size_t)i * V, V, s, probs, idx);
        double pd = drafts[i] >= 0 && (uint32_t)drafts[i] < V ? probs[drafts[i]] : 0;
        if (rt_rng_uniform(r) < pd)
            continue;
        if (drafts[i] >= 0 && (uint32_t)drafts[i] < V)
            probs[drafts[i]] = 0; /* residual max(P - onehot, 0), renormalised by rt_pick */
        *bonus = rt_pick(probs, V, rt_rng_uniform(r));
        return i;
    }
    rt_dist(logits + (size_t)k * V, V, s, probs, idx);
    *bonus = rt_pick(probs, V, rt_rng_uniform(r));
    return k;
}
