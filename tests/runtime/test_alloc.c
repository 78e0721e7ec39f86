/* A warm step allocates nothing: the context's workspace, the per-thread decode buffers and the
 * pool's workers are all made before or during the first steps.
 * usage: test_alloc MKFIXTURE QUANTIZE
 * On the tiny MXFP4 artifact with its drafter, at 2 threads: after a warm-up (a prefill, decode
 * steps, a verify step with taps, acceptance, rollback, ingest and a draft block), the same
 * operations repeated 12 times must call malloc, calloc, realloc and aligned allocators exactly 0
 * times (tests/alloc_count.h: interposed in the regular build, the sanitizer's hooks under ASan). Then rt_generate: its allocations do not depend on how
 * many tokens it makes (its per-call set-up only), checked with 8 and 40 tokens, plain and DFlash. */
#include "../harness.h"
#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/generate.h"
#include "runtime/model.h"

#include "../alloc_count.h"

/* The operations of one DFlash iteration and some plain decode steps, at positions from len. */
static int round_trip(const rt_model *m, rt_cache *kv, const rt_drafter *d, rt_dcache *dc, int32_t *tok, rt_rng *rng)
{
    lq_error err;
    const rt_sampling greedy = {0, 0, 1, 0}, hot = {0.8, 0, 1, 5};
    rt_opts o = {2};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        rt_sel s = {.rows = 1, .ids = tok};
        ok &= rt_step_ex(m, kv, tok, 1, &o, &s, &err) == LQ_OK;
    }
    int32_t blk[8];
    blk[0] = *tok;
    ok &= rt_draft_block(d, dc, blk[0], 7, 2, NULL, blk + 1, &err) == LQ_OK;
    size_t p = rt_cache_len(kv);
    rt_sel v = {.rows = 8, .taps = 1};
    ok &= rt_step_ex(m, kv, blk, 8, &o, &v, &err) == LQ_OK;
    uint32_t a = 0;
    int32_t bonus = 0;
    ok &= rt_accept_rows(m, kv, blk + 1, 7, &hot, rng, &a, &bonus, &err) == LQ_OK;
    ok &= rt_accept_rows(m, kv, blk + 1, 7, &greedy, rng, &a, &bonus, &err) == LQ_OK;
    ok &= rt_sample_row(m, kv, 2, &hot, rng, tok, &err) == LQ_OK;
    ok &= rt_cache_truncate(kv, p + a + 1) == LQ_OK;
    /* the draft cache takes the committed rows (the plain steps' positions are skipped: positions
     * do not matter for counting allocations) */
    ok &= rt_draft_ingest_ctx(d, dc, kv, 0, a + 1, 2, &err) == LQ_OK;
    *tok = bonus;
    return ok;
}

static long gen_allocs(const rt_model *m, const rt_drafter *d, size_t ntok)
{
    int32_t prompt[20], out[64];
    for (int i = 0; i < 20; i++)
        prompt[i] = 100 + 7 * i;
    rt_gen_opts go;
    memset(&go, 0, sizeof(go));
    go.max_tokens = ntok;
    go.rt.threads = 2;
    go.sampling = (rt_sampling){0.8, 0, 1, 3};
    size_t n = 0;
    lq_error err;
    atomic_store(&g_allocs, 0), atomic_store(&g_counting, 1);
    lq_status st = rt_generate(m, d, prompt, 20, &go, out, &n, NULL, &err);
    atomic_store(&g_counting, 0);
    CHECK(st == LQ_OK && n == ntok);
    return atomic_load(&g_allocs);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_alloc MKFIXTURE QUANTIZE\n");
        return 2;
    }
    CHECK(alloc_count_install());
    char root[] = "/tmp/mimo-alloc-XXXXXX", cmd[2048], src[600], art[600], dd[700];
    CHECK(mkdtemp(root) != NULL);
    snprintf(src, sizeof(src), "%s/fp8", root);
    snprintf(art, sizeof(art), "%s/mx", root);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant fp8 --out '%s' -q > /dev/null && '%s' '%s' '%s' -q > /dev/null",
             argv[1], src, argv[2], src, art);
    CHECK(system(cmd) == 0);
    snprintf(dd, sizeof(dd), "%s/dflash", art);
    lq_error err = {0};
    rt_model *m = NULL;
    rt_drafter *d = NULL;
    rt_model_opts mo = {.threads = 2};
    CHECK(rt_model_open(art, &mo, &m, &err) == LQ_OK);
    CHECK(m && rt_drafter_open(dd, m, NULL, &d, &err) == LQ_OK);
    if (!m || !d)
        return th_finish("test_alloc");
    const lq_drafter_config *dcfg = rt_drafter_config(d);
    rt_cache_opts co = {0, dcfg->taps, dcfg->n_taps};
    rt_cache *kv = NULL;
    rt_dcache *dc = NULL;
    CHECK(rt_cache_new_ex(m, 512, &co, &kv, &err) == LQ_OK);
    CHECK(rt_dcache_new(d, 512, &dc, &err) == LQ_OK);
    int32_t prompt[40], tok = 0;
    for (int i = 0; i < 40; i++)
        prompt[i] = 50 + 13 * i;
    rt_rng rng;
    rt_rng_seed(&rng, 1);
    /* warm-up: a prefill that keeps taps, its ingest, and two rounds */
    rt_sel ps = {.rows = 1, .ids = &tok, .taps = 1};
    CHECK(rt_step_ex(m, kv, prompt, 40, NULL, &ps, &err) == LQ_OK);
    CHECK(rt_draft_ingest_ctx(d, dc, kv, 0, 40, 2, &err) == LQ_OK);
    CHECK(round_trip(m, kv, d, dc, &tok, &rng));
    CHECK(round_trip(m, kv, d, dc, &tok, &rng));
    atomic_store(&g_allocs, 0), atomic_store(&g_counting, 1);
    int ok = 1;
    for (int i = 0; i < 12; i++)
        ok &= round_trip(m, kv, d, dc, &tok, &rng);
    atomic_store(&g_counting, 0);
    CHECK(ok);
    printf("allocations in 12 warm rounds (36 decode steps, 12 verify steps, drafts, acceptance, ingest): %ld\n",
           atomic_load(&g_allocs));
    CHECK_EQ_U64((uint64_t)atomic_load(&g_allocs), 0);
    rt_cache_free(kv);
    rt_dcache_free(dc);
    for (int k = 0; k < 2; k++) {
        const rt_drafter *dk = k ? d : NULL;
        gen_allocs(m, dk, 8); /* warm */
        long a8 = gen_allocs(m, dk, 8), a40 = gen_allocs(m, dk, 40);
        printf("rt_generate %s: %ld allocations for 8 tokens, %ld for 40\n", k ? "DFlash" : "plain", a8, a40);
        CHECK_EQ_U64((uint64_t)a8, (uint64_t)a40);
    }
    rt_drafter_close(d);
    rt_model_close(m);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_alloc");
}
