/* Error-metric tests (libquant/metrics.h). Expected values are computed by hand in the comments
 * from the definitions in reference/mxfp4_formats.md 6.1. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "libquant/metrics.h"
#include "tests/harness.h"

static void test_small_case(void)
{
    /* w = (1, 2, 3, 4), q = (1, 2, 3, 5): error (0, 0, 0, -1).
     * sum w^2 = 30, sum q^2 = 39, sum wq = 1 + 4 + 9 + 20 = 34, sum e^2 = 1.
     * relMSE = 1/30; SQNR = 10 log10(30) = 14.7712125472 dB;
     * cosine = 34 / sqrt(30 * 39) = 34 / 34.2052627530 = 0.9939990885. */
    const float w[4] = {1, 2, 3, 4}, q[4] = {1, 2, 3, 5};
    lq_err_acc a;
    lq_metrics m;
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, w, q, 4, NULL);
    lq_err_acc_finish(&a, &m);
    CHECK_EQ_U64(m.n, 4);
    CHECK_NEAR(a.sum_w2, 30.0, 0, 0);
    CHECK_NEAR(a.sum_q2, 39.0, 0, 0);
    CHECK_NEAR(a.sum_wq, 34.0, 0, 0);
    CHECK_NEAR(a.sum_e2, 1.0, 0, 0);
    CHECK_NEAR(m.rel_mse, 1.0 / 30.0, 0, 1e-15);
    CHECK_NEAR(m.sqnr_db, 14.7712125472, 1e-9, 0);
    CHECK_NEAR(m.cosine, 0.9939990885, 1e-9, 0);
    CHECK_NEAR(m.max_abs, 1.0, 0, 0);
    CHECK_EQ_U64(a.clipped, 0);
    CHECK_EQ_U64(a.zeroed, 0);
    CHECK_NEAR(m.clip_frac, 0.0, 0, 0);
}

static void test_zeroed_and_clip(void)
{
    /* Zeroed: non-zero w whose q is +-0. Here 0.1 -> 0 and -0.2 -> -0 count; w = 0 does not;
     * 5 -> 5 does not. 2 of 4: zero_frac 0.5. */
    const float w[4] = {0.0f, 0.1f, -0.2f, 5.0f}, q[4] = {0.0f, 0.0f, -0.0f, 5.0f};
    lq_err_acc a;
    lq_metrics m;
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, w, q, 4, NULL);
    lq_err_acc_finish(&a, &m);
    CHECK_EQ_U64(a.zeroed, 2);
    CHECK_NEAR(m.zero_frac, 0.5, 0, 0);
    CHECK_NEAR(m.max_abs, 0.2, 1e-7, 0);

    /* Clip: |w| / 2^(s-127) > 6 exactly. Block 0 has s = 127 (X = 1): 6 is not clipped, the
     * next float above 6 is, -7 is. Block 1 has s = 130 (X = 8): the limit is 48, so 48 is not
     * clipped and -48.00001 is. Block 2 has s = 0xFF (NaN scale): nothing counts. */
    float w2[96], q2[96];
    uint8_t s[3] = {127, 130, 0xFF};
    for (int i = 0; i < 96; i++)
        w2[i] = q2[i] = 0.5f;
    w2[0] = 6.0f;
    w2[1] = nextafterf(6.0f, 7.0f);
    w2[31] = -7.0f;
    w2[32] = 48.0f;
    w2[63] = -nextafterf(48.0f, 49.0f);
    w2[64] = 1e30f;
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, w2, q2, 96, s);
    CHECK_EQ_U64(a.clipped, 3);
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, w2, q2, 96, NULL);
    CHECK_EQ_U64(a.clipped, 0); /* no scales, no clip count */

    /* Scale byte 0 is 2^-127: the limit is 6 * 2^-127 = 1.5 * 2^-125. */
    float w3[32] = {0}, q3[32] = {0};
    uint8_t s0 = 0;
    w3[0] = ldexpf(1.5f, -125);
    w3[1] = nextafterf(ldexpf(1.5f, -125), 1.0f);
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, w3, q3, 32, &s0);
    CHECK_EQ_U64(a.clipped, 1);
}

static void test_merge_and_specials(void)
{
    /* Merging two halves equals one pass (the values are small integers, so every sum is exact). */
    float w[10], q[10];
    for (int i = 0; i < 10; i++) {
        w[i] = (float)(i - 4);
        q[i] = (float)(i - 4 + (i % 3 == 0 ? 1 : 0));
    }
    lq_err_acc one, h1, h2;
    lq_err_acc_init(&one);
    lq_err_acc_init(&h1);
    lq_err_acc_init(&h2);
    lq_err_acc_add(&one, w, q, 10, NULL);
    lq_err_acc_add(&h1, w, q, 6, NULL);
    lq_err_acc_add(&h2, w + 6, q + 6, 4, NULL);
    lq_err_acc_merge(&h1, &h2);
    CHECK(memcmp(&one, &h1, sizeof one) == 0);

    /* Non-finite pairs are counted and excluded from the sums. */
    float wn[4] = {1.0f, NAN, 2.0f, 3.0f}, qn[4] = {1.0f, 1.0f, INFINITY, 4.0f};
    lq_err_acc a;
    lq_metrics m;
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, wn, qn, 4, NULL);
    lq_err_acc_finish(&a, &m);
    CHECK_EQ_U64(m.nonfinite, 2);
    CHECK_EQ_U64(m.n, 4);
    CHECK_NEAR(a.sum_w2, 10.0, 0, 0); /* 1 + 9 */
    CHECK_NEAR(a.sum_e2, 1.0, 0, 0);  /* (3 - 4)^2 */
    CHECK(isfinite(m.sqnr_db));

    /* Exact reproduction: SQNR +inf, cosine 1. */
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, w, w, 10, NULL);
    lq_err_acc_finish(&a, &m);
    CHECK(isinf(m.sqnr_db) && m.sqnr_db > 0);
    CHECK_NEAR(m.cosine, 1.0, 1e-15, 0);
    CHECK_NEAR(m.rel_mse, 0.0, 0, 0);

    /* All zero on both sides: cosine 1, SQNR +inf. Zero weights, non-zero q: relMSE inf,
     * cosine 0. Empty accumulator: fractions 0. */
    float z[3] = {0, 0, 0}, o[3] = {0, 1, 0};
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, z, z, 3, NULL);
    lq_err_acc_finish(&a, &m);
    CHECK_NEAR(m.cosine, 1.0, 0, 0);
    CHECK(isinf(m.sqnr_db) && m.sqnr_db > 0);
    lq_err_acc_init(&a);
    lq_err_acc_add(&a, z, o, 3, NULL);
    lq_err_acc_finish(&a, &m);
    CHECK(isinf(m.rel_mse));
    CHECK(isinf(m.sqnr_db) && m.sqnr_db < 0);
    CHECK_NEAR(m.cosine, 0.0, 0, 0);
    lq_err_acc_init(&a);
    lq_err_acc_finish(&a, &m);
    CHECK_EQ_U64(m.n, 0);
    CHECK_NEAR(m.clip_frac, 0.0, 0, 0);
    lq_err_acc_finish(NULL, &m);
    CHECK_EQ_U64(m.n, 0);
}

int main(void)
{
    test_small_case();
    test_zeroed_and_clip();
    test_merge_and_specials();
    return th_finish("test_metrics");
}
