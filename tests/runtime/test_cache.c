/* The KV cache: the SWA ring buffer against a cache that keeps every position, and rollback.
 * usage: test_cache MKFIXTURE
 * A 260-token sequence (16x the tiny fixture's SWA window, 3x its ring; 130 tokens and one window
 * convention under the sanitizers) is run through a cache
 * without rings in one step (the reference); then through ring caches (a) as prefill 100 +
 * single-token decode, (b) as verify-style steps of 8 tokens of which a random number are rejected
 * (truncate) and re-run. Every logit must be bit-identical to the reference (each row depends only on
 * its prefix, and the runtime's sums are in a fixed order), for both window conventions. */
#include "../harness.h"
#include "libquant/libquant.h"
#include "runtime/model.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cache MKFIXTURE\n");
        return 2;
    }
    char root[] = "/tmp/mimo-cache-XXXXXX", cmd[2048], src[600];
    CHECK(mkdtemp(root) != NULL);
    snprintf(src, sizeof(src), "%s/b", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant bf16 --no-drafter --out '%s' -q > /dev/null", argv[1], src);
    CHECK(system(cmd) == 0);
    lq_error err = {0};
    rt_model *m = NULL;
    CHECK(rt_model_open(src, NULL, &m, &err) == LQ_OK);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return th_finish("test_cache");
    }
#if defined(__SANITIZE_ADDRESS__)
    const size_t N = 130; /* still past the ring (81 slots); the sanitizers run ~10x slower */
    const int nconv = 1;
#else
    const size_t N = 260;
    const int nconv = 2;
#endif
    const size_t V = rt_model_config(m)->vocab_size;
    int32_t *seq = malloc(N * sizeof(int32_t));
    uint64_t x = 7;
    for (size_t i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        seq[i] = (int32_t)((x >> 33) % (V - 8));
    }
    float *ref = malloc(N * V * sizeof(float)), *lg = malloc(N * V * sizeof(float));
    rt_model *base = m;
    for (int incl = 0; incl < nconv; incl++) {
        /* the window convention is a property of the opened model */
        rt_model_opts mo = {.threads = 2, .window_inclusive = incl};
        CHECK(rt_model_open(src, &mo, &m, &err) == LQ_OK);
        rt_opts o = {.threads = 2};
        rt_cache *full = NULL, *ring = NULL;
        rt_cache_opts no_ring = {.no_ring = 1};
        CHECK(rt_cache_new_ex(m, N, &no_ring, &full, &err) == LQ_OK);
        CHECK(rt_step(m, full, seq, N, &o, ref, NULL, &err) == LQ_OK);
        CHECK(rt_cache_new(m, N, &ring, &err) == LQ_OK);
        printf("window %s: cache %zu bytes with rings, %zu without\n", incl ? "i-j<=W" : "i-j<W", rt_cache_bytes(ring),
               rt_cache_bytes(full));
        CHECK(rt_cache_bytes(ring) < rt_cache_bytes(full));
        /* (a) prefill 100, then one token at a time */
        CHECK(rt_step(m, ring, seq, 100, &o, lg, NULL, &err) == LQ_OK);
        for (size_t t = 100; t < N; t++)
            CHECK(rt_step(m, ring, seq + t, 1, &o, lg + t * V, NULL, &err) == LQ_OK);
        size_t bad = 0;
        for (size_t i = 0; i < N * V; i++)
            bad += lg[i] != ref[i];
        printf("  prefill 100 + %zu single steps: %zu of %zu logits differ\n", N - 100, bad, N * V);
        CHECK(bad == 0);
        /* (b) steps of 8 with random rejection */
        CHECK(rt_cache_truncate(ring, 0) == LQ_ERR_INVALID_ARGUMENT); /* more than RT_MAX_ROLLBACK back */
        CHECK_EQ_U64(rt_cache_len(ring), N);
        rt_cache_free(ring);
        CHECK(rt_cache_new(m, N, &ring, &err) == LQ_OK);
        CHECK(rt_step(m, ring, seq, 20, &o, lg, NULL, &err) == LQ_OK);
        size_t steps = 0, rolled = 0;
        bad = 0;
        float *blk = malloc(8 * V * sizeof(float));
        while (rt_cache_len(ring) < N) {
            size_t p = rt_cache_len(ring), b = N - p < 8 ? N - p : 8;
            CHECK(rt_step(m, ring, seq + p, b, &o, blk, NULL, &err) == LQ_OK);
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            size_t keep = 1 + (size_t)((x >> 33) % b); /* a + 1 of b rows survive */
            for (size_t i = 0; i < keep * V; i++)
                bad += blk[i] != ref[p * V + i];
            CHECK(rt_cache_truncate(ring, p + keep) == LQ_OK);
            rolled += b - keep;
            steps++;
        }
        free(blk);
        printf("  %zu verify steps of <= 8, %zu positions rolled back: %zu logits differ\n", steps, rolled, bad);
        CHECK(bad == 0);
        CHECK(rt_cache_truncate(ring, N - RT_MAX_ROLLBACK - 1) != LQ_OK);
        CHECK(rt_cache_truncate(ring, N - RT_MAX_ROLLBACK) == LQ_OK);
        CHECK_EQ_U64(rt_cache_len(ring), N - RT_MAX_ROLLBACK);
        rt_cache_free(ring);
        rt_cache_free(full);
        rt_model_close(m);
    }
    m = base;
    /* A bad token is refused before anything runs. */
    rt_cache *c = NULL;
    CHECK(rt_cache_new(m, 8, &c, &err) == LQ_OK);
    int32_t badtok[2] = {1, (int32_t)V};
    CHECK(rt_step(m, c, badtok, 2, NULL, NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "RT_TOKEN");
    CHECK_EQ_U64(rt_cache_len(c), 0);
    rt_cache_free(c);
    free(seq), free(ref), free(lg);
    rt_model_close(m);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_cache");
}
