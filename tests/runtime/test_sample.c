/* Sampling (runtime/sample.h).
 *  - rt_dist: temperature, top-k and top-p against values computed by hand from the definitions
 *    (softmax of logits / T; keep the k most probable; keep the smallest most-probable-first prefix
 *    reaching mass top_p; renormalise), ties broken by the lower id, greedy one-hot at T = 0.
 *  - rt_accept with argmax-style (deterministic) proposals is lossless: over 200,000 draws the
 *    outcome (accepted count a, bonus token) follows the law of sampling the target one token at a
 *    time, P(a = i, b) = prod_{j<i} P_j(d_j) * P_i(b) with b != d_i for i < k (the draft
 *    re-proposed is impossible) - Pearson chi-square below the 0.1% critical value; also with
 *    top-k / top-p cut distributions and with drafts outside the support (never accepted).
 *  - greedy acceptance: the longest matching prefix, the bonus is the argmax of row a. */
#include <math.h>
#include <string.h>

#include "../harness.h"
#include "runtime/sample.h"

/* chi-square 0.1% critical values, df 1..40 */
static const double crit[41] = {0,     10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26,
                                32.91, 34.53, 36.12, 37.70, 39.25, 40.79, 42.31, 43.82, 45.31, 46.80, 48.27, 49.73,
                                51.18, 52.62, 54.05, 55.48, 56.89, 58.30, 59.70, 61.10, 62.49, 63.87, 65.25, 66.62,
                                67.99, 69.35, 70.70, 72.05, 73.40};

enum { V = 6, K = 3 };

static void run_accept(const float *lg, const int32_t *d, const rt_sampling *s, const char *what)
{
    double P[K + 1][V], probs[V];
    uint32_t idx[V];
    for (int i = 0; i <= K; i++) {
        rt_dist(lg + i * V, V, s, probs, idx);
        memcpy(P[i], probs, sizeof(probs));
    }
    /* exact law of (a, bonus) */
    double law[K + 1][V], pre = 1;
    for (int i = 0; i <= K; i++) {
        for (int b = 0; b < V; b++)
            law[i][b] = pre * (i < K && b == d[i] ? 0 : P[i][b]);
        if (i < K)
            pre *= d[i] >= 0 && d[i] < V ? P[i][d[i]] : 0;
    }
    const int N = 200000;
    static size_t cnt[K + 1][V];
    memset(cnt, 0, sizeof(cnt));
    rt_rng r;
    rt_rng_seed(&r, 12345);
    size_t impossible = 0;
    for (int n = 0; n < N; n++) {
        int32_t bonus;
        uint32_t a = rt_accept(lg, V, d, K, s, &r, &bonus, probs, idx);
        if (a > K || bonus < 0 || bonus >= V || law[a][bonus] == 0)
            impossible++;
        else
            cnt[a][bonus]++;
    }
    double chi = 0, pe = 0, pc = 0;
    int df = -1;
    for (int i = 0; i <= K; i++)
        for (int b = 0; b < V; b++) {
            double e = law[i][b] * N;
            if (e >= 5) {
                chi += (cnt[i][b] - e) * (cnt[i][b] - e) / e;
                df++;
            } else if (e > 0) {
                pe += e;
                pc += (double)cnt[i][b];
            }
        }
    if (pe > 0) {
        chi += (pc - pe) * (pc - pe) / pe, df++;
    }
    printf("accept %-28s: %d draws, %zu impossible outcomes, chi2 %.2f (df %d, 0.1%% critical %.2f)\n", what, N,
           impossible, chi, df, df > 0 && df <= 40 ? crit[df] : -1.0);
    CHECK_EQ_U64(impossible, 0);
    CHECK(df > 0 && df <= 40 && chi < crit[df]);
}

int main(void)
{
    /* rt_dist by hand: logits ln(p) for p = 0.4 0.3 0.2 0.1 (T = 1) */
    const float lg4[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)};
    double pr[4];
    uint32_t ix[4];
    rt_sampling s = {1.0, 0, 1.0, 0};
    CHECK_EQ_U64(rt_dist(lg4, 4, &s, pr, ix), 4);
    CHECK_NEAR(pr[0], 0.4, 1e-6, 0);
    CHECK_NEAR(pr[3], 0.1, 1e-6, 0);
    s.top_k = 2; /* 0.4, 0.3 -> 4/7, 3/7 */
    CHECK_EQ_U64(rt_dist(lg4, 4, &s, pr, ix), 2);
    CHECK_NEAR(pr[0], 4.0 / 7, 1e-6, 0);
    CHECK_NEAR(pr[1], 3.0 / 7, 1e-6, 0);
    CHECK(pr[2] == 0 && pr[3] == 0);
    s.top_k = 0, s.top_p = 0.75; /* 0.4 + 0.3 = 0.7 < 0.75 -> add 0.2: 0.4/0.9 ... */
    CHECK_EQ_U64(rt_dist(lg4, 4, &s, pr, ix), 3);
    CHECK_NEAR(pr[2], 0.2 / 0.9, 1e-6, 0);
    CHECK(pr[3] == 0);
    s.top_p = 0.3; /* at least one token */
    CHECK_EQ_U64(rt_dist(lg4, 4, &s, pr, ix), 1);
    CHECK_NEAR(pr[0], 1.0, 1e-12, 0);
    s.top_p = 1, s.temperature = 2; /* p^(1/2) normalised */
    rt_dist(lg4, 4, &s, pr, ix);
    double z = sqrt(0.4) + sqrt(0.3) + sqrt(0.2) + sqrt(0.1);
    CHECK_NEAR(pr[1], sqrt(0.3) / z, 1e-6, 0);
    const float tie[4] = {1, 3, 3, 0};
    s.temperature = 0;
    rt_dist(tie, 4, &s, pr, ix);
    CHECK(pr[1] == 1 && pr[2] == 0); /* greedy: lowest id on ties */
    CHECK(rt_argmax(tie, 4) == 1);
    s.temperature = 1, s.top_k = 1;
    CHECK_EQ_U64(rt_dist(tie, 4, &s, pr, ix), 1);
    CHECK(pr[1] == 1);
    /* rng: uniform in [0, 1), mean ~ 1/2 */
    rt_rng r;
    rt_rng_seed(&r, 1);
    double mean = 0, lo = 1, hi = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rt_rng_uniform(&r);
        mean += u / 100000, lo = u < lo ? u : lo, hi = u > hi ? u : hi;
    }
    CHECK(lo >= 0 && hi < 1);
    CHECK_NEAR(mean, 0.5, 0.005, 0); /* 5 sigma of sqrt(1/12/1e5) = 0.0009 */

    /* rt_accept */
    float lg[(K + 1) * V];
    rt_rng_seed(&r, 99);
    for (int i = 0; i < (K + 1) * V; i++)
        lg[i] = (float)(2.0 * rt_rng_uniform(&r));
    int32_t d[K];
    for (int i = 0; i < K; i++)
        d[i] = rt_argmax(lg + i * V, V);
    rt_sampling t1 = {1.0, 0, 1.0, 0};
    run_accept(lg, d, &t1, "T=1, argmax drafts");
    int32_t d2[K] = {0, 5, 2};
    run_accept(lg, d2, &t1, "T=1, other drafts");
    rt_sampling t2 = {0.7, 4, 0.9, 0};
    run_accept(lg, d, &t2, "T=0.7 top-k 4 top-p 0.9");
    /* a draft outside the top-k support is never accepted */
    rt_sampling t3 = {1.0, 2, 1.0, 0};
    int32_t d3[K];
    for (int i = 0; i < K; i++) {
        double p6[V];
        uint32_t i6[V];
        rt_dist(lg + i * V, V, &t3, p6, i6);
        d3[i] = (int32_t)i6[V - 1]; /* least probable: outside the top 2 */
    }
    run_accept(lg, d3, &t3, "T=1 top-k 2, drafts cut");
    /* greedy acceptance */
    rt_sampling g = {0, 0, 1, 0};
    int32_t bonus, dg[K] = {d[0], d[1], (d[2] + 1) % V};
    double probs[V];
    uint32_t idx[V];
    CHECK_EQ_U64(rt_accept(lg, V, dg, K, &g, &r, &bonus, probs, idx), 2);
    CHECK(bonus == d[2]);
    CHECK_EQ_U64(rt_accept(lg, V, d, K, &g, &r, &bonus, probs, idx), 3);
    CHECK(bonus == rt_argmax(lg + K * V, V));
    dg[0] = (d[0] + 1) % V;
    CHECK_EQ_U64(rt_accept(lg, V, dg, K, &g, &r, &bonus, probs, idx), 0);
    CHECK(bonus == d[0]);
    return th_finish("test_sample");
}
