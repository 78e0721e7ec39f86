/* The DFlash drafter against the PyTorch oracle (fixtures/golden/tiny-dflash, made by
 * tools/oracle/dflash_oracle.py from reference/dflash.md on transformers' MiMoV2FlashForCausalLM in
 * float32; the fixture's bf16 drafter).
 * usage: test_dflash_golden MKFIXTURE GOLDEN_DIR
 * Checked, relative L2 per row <= 1e-4 (fp32 against fp32 summed in other orders: ~1e-6 expected):
 *  - the tap features of 100 positions (taps [0, 5, 11]; 11 is the last layer: before the final
 *    norm) and the fused context hidden_norm(fc(taps));
 *  - the draft logits of 5 blocks at p = 1, 17, 64, 65, 100 (the drafter window is 64), each from
 *    our own context cache; their argmax drafts equal;
 *  - the greedy DFlash decode (prompt 40, 48 tokens, B = 8): the same tokens, the same accepted
 *    count at every step (the acceptance golden trace), and the forced-draft trace, whose accepted
 *    counts run through every rollback length 0..7 (the last block clipped to the token budget). */
#include "../harness.h"
#include "golden_io.h"
#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/generate.h"

/* per-step accepted counts, from the sizes of the committed batches (the first is the prefill's) */
typedef struct trace {
    size_t calls, acc[256];
} trace;
static int on_tokens(void *ctx, const int32_t *t, size_t n)
{
    (void)t;
    trace *tr = ctx;
    if (tr->calls > 0 && tr->calls <= 256)
        tr->acc[tr->calls - 1] = n - 1;
    tr->calls++;
    return 0;
}

/* The oracle keeps every block 8 long and cuts the output at max_tokens; the runtime clips the last
 * block to the budget (dflash.md 3.6), so there the accepted count is min(a, budget - 1). */
static size_t expected_a(const int32_t *tr, size_t s, size_t max)
{
    size_t gen = 1, a = 0;
    for (size_t i = 0; i <= s; i++) {
        size_t bs = max - gen < 8 ? max - gen : 8;
        a = (size_t)tr[i * 10 + 8] < bs - 1 ? (size_t)tr[i * 10 + 8] : bs - 1;
        gen += a + 1;
    }
    return a;
}

/* forced drafts: the golden's per-step drafts, looked up by the anchor position */
static const int32_t *g_forced;
static size_t g_nforced;
static lq_status forced(void *ctx, const int32_t *committed, size_t p, int32_t anchor, uint32_t k, int32_t *drafts)
{
    (void)ctx, (void)committed, (void)anchor;
    for (size_t s = 0; s < g_nforced; s++)
        if ((size_t)g_forced[s * 10] == p) {
            for (uint32_t i = 0; i < k; i++)
                drafts[i] = g_forced[s * 10 + 1 + i];
            return LQ_OK;
        }
    return LQ_ERR_NOT_FOUND;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_dflash_golden MKFIXTURE GOLDEN_DIR\n");
        return 2;
    }
    const char *g = argv[2];
    char root[] = "/tmp/mimo-dfg-XXXXXX", cmd[2048], src[600], ddir[700];
    CHECK(mkdtemp(root) != NULL);
    snprintf(src, sizeof(src), "%s/b", root);
    snprintf(ddir, sizeof(ddir), "%s/dflash", src);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant bf16 --out '%s' -q > /dev/null", argv[1], src);
    CHECK(system(cmd) == 0);
    size_t lids, ltaps, lctx, llog, ltr, lft, ldt, lgt;
    int32_t *ids = load_zst(g, "case_ids.i32.zst", &lids), *tr = load_zst(g, "trace.i32.zst", &ltr),
            *ft = load_zst(g, "trace_forced.i32.zst", &lft), *dt = load_zst(g, "dflash_tokens.i32.zst", &ldt),
            *gt = load_zst(g, "greedy_tokens.i32.zst", &lgt);
    float *gtaps = load_zst(g, "case_taps.f32.zst", &ltaps), *gctx = load_zst(g, "case_ctx.f32.zst", &lctx),
          *glog = load_zst(g, "case_logits.f32.zst", &llog);
    CHECK(ids && tr && ft && dt && gt && gtaps && gctx && glog);
    lq_error err = {0};
    char eb[1600];
    rt_model *m = NULL;
    rt_drafter *d = NULL;
    CHECK_MSG(rt_model_open(src, NULL, &m, &err) == LQ_OK, "%s", lq_error_format(&err, eb, sizeof(eb)));
    CHECK_MSG(m && rt_drafter_open(ddir, m, NULL, &d, &err) == LQ_OK, "%s", lq_error_format(&err, eb, sizeof(eb)));
    if (!m || !d || !ids || !tr || !ft || !dt || !gt || !gtaps || !gctx || !glog)
        return th_finish("test_dflash_golden");
    const lq_drafter_config *dc = rt_drafter_config(d);
    const size_t V = rt_model_config(m)->vocab_size, H = rt_model_config(m)->hidden_size, NT = dc->n_taps, N = 100;
    CHECK_EQ_U64(lids, 101 * 4);
    CHECK_EQ_U64(ltaps, N * NT * H * 4);
    CHECK_EQ_U64(lctx, N * dc->hidden_size * 4);
    CHECK_EQ_U64(llog, 5 * 7 * V * 4);
    rt_opts o = {.threads = 2};
    /* taps and context features */
    float *taps = malloc(N * NT * H * sizeof(float)), *ctx = malloc(N * dc->hidden_size * sizeof(float));
    rt_cache *kv = NULL;
    rt_cache_opts co = {0, dc->taps, (uint32_t)NT};
    CHECK(rt_cache_new_ex(m, N, &co, &kv, &err) == LQ_OK);
    rt_sel ro = {.tap_out = taps};
    CHECK(rt_step_ex(m, kv, ids, N, &o, &ro, &err) == LQ_OK);
    double wt = 0, wc = 0;
    for (size_t t = 0; t < N; t++)
        for (size_t k = 0; k < NT; k++) {
            double e = rel(taps + (t * NT + k) * H, gtaps + (t * NT + k) * H, H);
            wt = e > wt ? e : wt;
        }
    rt_dcache *c = NULL;
    CHECK(rt_dcache_new(d, N, &c, &err) == LQ_OK);
    CHECK(rt_draft_ingest(d, c, taps, N, 2, ctx, &err) == LQ_OK);
    for (size_t t = 0; t < N; t++) {
        double e = rel(ctx + t * dc->hidden_size, gctx + t * dc->hidden_size, dc->hidden_size);
        wc = e > wc ? e : wc;
    }
    printf("taps: worst relative L2 %.3g; context features: %.3g\n", wt, wc);
    CHECK(wt <= 1e-4);
    CHECK(wc <= 1e-4);
    rt_dcache_free(c);
    /* draft logits per case */
    const size_t ps[5] = {1, 17, 64, 65, 100};
    float *lg = malloc(7 * V * sizeof(float));
    for (int ci = 0; ci < 5; ci++) {
        CHECK(rt_dcache_new(d, N, &c, &err) == LQ_OK);
        CHECK(rt_draft_ingest(d, c, taps, ps[ci], 2, NULL, &err) == LQ_OK);
        int32_t dr[7];
        CHECK(rt_draft_block(d, c, ids[ps[ci]], 7, 2, lg, dr, &err) == LQ_OK);
        double w = 0;
        size_t same = 0;
        for (size_t r = 0; r < 7; r++) {
            const float *gr = glog + ((size_t)ci * 7 + r) * V;
            double e = rel(lg + r * V, gr, V);
            w = e > w ? e : w;
            size_t best = 0;
            for (size_t v = 1; v < V; v++)
                best = gr[v] > gr[best] ? v : best;
            same += (size_t)dr[r] == best;
        }
        printf("draft p=%3zu: worst row relative L2 %.3g, %zu of 7 drafts equal\n", ps[ci], w, same);
        CHECK(w <= 1e-4);
        CHECK_EQ_U64(same, 7);
        rt_dcache_free(c);
    }
    /* the greedy decode trace */
    const size_t steps = ltr / 40, fsteps = lft / 40;
    trace t1 = {0, {0}};
    rt_gen_opts go = {0};
    go.max_tokens = ldt / 4;
    go.block = 8;
    go.rt = o;
    go.on_tokens = on_tokens;
    go.cb_ctx = &t1;
    int32_t out[256];
    size_t nout = 0;
    rt_gen_stats S;
    CHECK(rt_generate(m, d, ids, 40, &go, out, &nout, &S, &err) == LQ_OK);
    CHECK_EQ_U64(nout, ldt / 4);
    CHECK(memcmp(out, dt, ldt) == 0);
    CHECK(memcmp(out, gt, lgt) == 0);
    CHECK_EQ_U64(S.steps, steps);
    size_t acc_same = 0;
    for (size_t s = 0; s < steps && s < 256; s++)
        acc_same += t1.acc[s] == expected_a(tr, s, ldt / 4);
    printf("greedy DFlash: %zu tokens equal the oracle's, %zu steps, accepted counts equal at %zu of %zu steps, tau "
           "%.3f\n",
           nout, S.steps, acc_same, steps, S.tau);
    CHECK_EQ_U64(acc_same, steps);
    /* forced drafts: every rollback length */
    g_forced = ft;
    g_nforced = fsteps;
    trace t2 = {0, {0}};
    go.cb_ctx = &t2;
    go.propose = forced;
    CHECK(rt_generate(m, NULL, ids, 40, &go, out, &nout, &S, &err) == LQ_OK);
    CHECK(memcmp(out, gt, lgt) == 0);
    CHECK_EQ_U64(S.steps, fsteps);
    acc_same = 0;
    printf("forced drafts, accepted per step:");
    for (size_t s = 0; s < fsteps && s < 256; s++) {
        acc_same += t2.acc[s] == expected_a(ft, s, ldt / 4);
        printf(" %zu", t2.acc[s]);
    }
    printf(" (%zu of %zu equal the oracle's)\n", acc_same, fsteps);
    CHECK_EQ_U64(acc_same, fsteps);
    free(lg), free(taps), free(ctx);
    free(ids), free(tr), free(ft), free(dt), free(gt), free(gtaps), free(gctx), free(glog);
    rt_cache_free(kv);
    rt_drafter_close(d);
    rt_model_close(m);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_dflash_golden");
}
