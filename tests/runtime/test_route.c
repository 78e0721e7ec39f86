/* The router (runtime/cpu/ops.h rt_route) and argmax (sample.h) on hostile and edge inputs.
 * Expected values are worked out by hand from mimo_arch.md 3.5's rule in each case's comment.
 * 1. 2048 experts, the correction bias making expert 2000 the best choice: it is selected first
 *    (the previous router scanned only ids below 1024).
 * 2. A router whose weights are all NaN: every choice is NaN; the K lowest ids are chosen, distinct,
 *    and nothing is written out of bounds (ASan build).
 * 3. One NaN choice among numbers never wins; the others rank as usual.
 * 4. Group-limited selection, 8 experts in 4 groups of 2, topk_group 1, K 2: the group with the
 *    largest sum of its two choices wins even though the single best expert is elsewhere.
 * 5. Ties go to the lower id; weights are the unbiased scores normalised (sum 1 with norm).
 * 6. rt_argmax: NaN never wins over a number, ties to the lowest id, all NaN gives 0. */
#include <math.h>

#include "../harness.h"
#include "runtime/cpu/ops.h"
#include "runtime/sample.h"

/* x = [1, 0, ...] so that each expert's logit is its router row's first weight. */
static void route(uint32_t E, uint32_t K, uint32_t G, uint32_t TG, const float *w0, const float *bias, int32_t *sel,
                  float *wt)
{
    const uint64_t H = 4;
    float *w = calloc((size_t)E * H, sizeof(float)), x[4] = {1, 0, 0, 0};
    float *score = malloc(E * sizeof(float)), *gs = malloc((G ? G : 1) * sizeof(float));
    uint8_t *taken = malloc(E);
    for (uint32_t e = 0; e < E; e++)
        w[(uint64_t)e * H] = w0[e];
    rt_router r = {w, bias, E, K, G, TG, H, 1, 1.0};
    rt_route(&r, x, score, taken, gs, sel, wt);
    free(w), free(score), free(gs), free(taken);
}

int main(void)
{
    /* 1 */
    {
        const uint32_t E = 2048;
        float *w0 = calloc(E, sizeof(float)), *b = calloc(E, sizeof(float));
        b[2000] = 1.0f; /* choice 0.5 + 1 beats every other 0.5 */
        b[1500] = 0.5f;
        int32_t sel[3];
        float wt[3];
        route(E, 3, 1, 1, w0, b, sel, wt);
        CHECK_EQ_U64((uint64_t)sel[0], 2000);
        CHECK_EQ_U64((uint64_t)sel[1], 1500);
        CHECK_EQ_U64((uint64_t)sel[2], 0); /* the rest tie at 0.5: the lowest id */
        CHECK_NEAR(wt[0] + wt[1] + wt[2], 1.0, 1e-6, 0);
        free(w0), free(b);
    }
    /* 2 */
    {
        const uint32_t E = 16;
        float w0[16], b[16] = {0};
        for (int i = 0; i < 16; i++)
            w0[i] = NAN;
        int32_t sel[8];
        float wt[8];
        route(E, 8, 1, 1, w0, b, sel, wt);
        for (int k = 0; k < 8; k++)
            CHECK_EQ_U64((uint64_t)sel[k], (uint64_t)k);
    }
    /* 3 */
    {
        float w0[6] = {0, 0, 0, 0, 0, 0}, b[6] = {0.1f, NAN, 0.3f, 0.2f, 0, 0};
        int32_t sel[3];
        float wt[3];
        route(6, 3, 1, 1, w0, b, sel, wt);
        CHECK_EQ_U64((uint64_t)sel[0], 2);
        CHECK_EQ_U64((uint64_t)sel[1], 3);
        CHECK_EQ_U64((uint64_t)sel[2], 0);
    }
    /* 4: choices (score 0.5 + bias): group 0 {0.5+0.9, 0.5+0} = 1.9 (expert 0 is the single best),
     * group 1 {0.5+0.6, 0.5+0.6} = 2.2 (the best pair), groups 2, 3 = 1.0 */
    {
        float w0[8] = {0}, b[8] = {0.9f, 0, 0.6f, 0.6f, 0, 0, 0, 0};
        int32_t sel[2];
        float wt[2];
        route(8, 2, 4, 1, w0, b, sel, wt);
        CHECK_EQ_U64((uint64_t)sel[0], 2);
        CHECK_EQ_U64((uint64_t)sel[1], 3);
        route(8, 2, 1, 1, w0, b, sel, wt); /* without groups: expert 0 first */
        CHECK_EQ_U64((uint64_t)sel[0], 0);
        CHECK_EQ_U64((uint64_t)sel[1], 2);
    }
    /* 5: logits 0 and ln 3 -> scores 0.5 and 0.75; normalised 0.4 and 0.6 */
    {
        float w0[4] = {0, logf(3.0f), 0, 0}, b[4] = {0};
        int32_t sel[2];
        float wt[2];
        route(4, 2, 1, 1, w0, b, sel, wt);
        CHECK_EQ_U64((uint64_t)sel[0], 1);
        CHECK_EQ_U64((uint64_t)sel[1], 0);
        CHECK_NEAR(wt[0], 0.6, 1e-6, 0);
        CHECK_NEAR(wt[1], 0.4, 1e-6, 0);
    }
    /* 6 */
    {
        float a[5] = {NAN, 1, 3, 3, NAN}, n3[3] = {NAN, NAN, NAN}, c[3] = {-INFINITY, NAN, -5};
        CHECK_EQ_U64((uint64_t)rt_argmax(a, 5), 2);
        CHECK_EQ_U64((uint64_t)rt_argmax(n3, 3), 0);
        CHECK_EQ_U64((uint64_t)rt_argmax(c, 3), 2);
        rt_sampling s = {0.8, 0, 1, 1};
        double probs[5];
        uint32_t idx[5];
        rt_dist(a, 5, &s, probs, idx);
        CHECK(probs[0] == 0 && probs[4] == 0);
        CHECK_NEAR(probs[2], probs[3], 1e-12, 0);
        CHECK_NEAR(probs[1] + probs[2] + probs[3], 1.0, 1e-12, 0);
    }
    return th_finish("test_route");
}
