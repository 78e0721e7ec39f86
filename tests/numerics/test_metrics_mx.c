/* lq_err_acc_add_mx: the fused MXFP4 error accumulator used by the converter.
 * 1. The AVX2 path and the portable path give bit-identical accumulators (the report must not
 *    depend on the machine) on random data, including blocks that take the careful path
 *    (non-finite w, scales 253..255).
 * 2. Both agree with the reference lq_err_acc_add on the dequantized values: sums to 1e-6
 *    relative (f32 block sums of 32 terms carry about 32 * 2^-24 relative error), counts exactly,
 *    max |error| to 1e-6 relative. */
#include "../harness.h"
#include "libquant/libquant.h"

static uint64_t rs = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float gauss(void)
{
    double u1 = ((double)(rnd() >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(rnd() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int main(void)
{
    const size_t n = 32 * 20000;
    float *w = malloc(n * sizeof(float)), *q = malloc(n * sizeof(float));
    uint8_t *packed = malloc(n / 2), *scales = malloc(n / 32);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++)
            w[i] = gauss() * (round == 2 ? 1e-30f : 0.02f);
        CHECK(lq_mxfp4_quantize(w, n, LQ_MX_SCALE_MSE, packed, scales, NULL, NULL) == LQ_OK);
        if (round == 1) { /* careful-path blocks */
            w[5] = NAN;
            w[70] = INFINITY;
            scales[7] = 253;
            scales[8] = 254;
        }
        lq_err_acc a, b, r;
        lq_err_acc_init(&a);
        lq_err_acc_init(&b);
        lq_err_acc_init(&r);
        lq_err_acc_add_mx(&a, w, packed, scales, n);
        lq_err_acc_add_mx_portable(&b, w, packed, scales, n);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
        CHECK_EQ_U64(a.n, n);
        for (size_t blk = 0; blk < n / 32; blk++)
            lq_mxfp4_dequantize(packed + 16 * blk, scales + blk, 32, q + 32 * blk, NULL);
        lq_err_acc_add(&r, w, q, n, scales);
        CHECK_EQ_U64(a.clipped, r.clipped);
        CHECK_EQ_U64(a.zeroed, r.zeroed);
        CHECK_EQ_U64(a.nonfinite, r.nonfinite);
        CHECK_NEAR(a.sum_w2, r.sum_w2, 0, 1e-6);
        CHECK_NEAR(a.sum_q2, r.sum_q2, 0, 1e-6);
        CHECK_NEAR(a.sum_wq, r.sum_wq, 0, 1e-6);
        CHECK_NEAR(a.sum_e2, r.sum_e2, 0, 1e-6);
        CHECK_NEAR(a.max_abs, r.max_abs, 0, 1e-6);
        if (round == 1)
            CHECK(a.nonfinite >= 2);
    }
    free(w), free(q), free(packed), free(scales);
    return th_finish("test_metrics_mx");
}
