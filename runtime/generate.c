/* The generation loop (generate.h). */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct gen {
    const rt_gen_opts *o;
    int32_t *out;
    size_t n, max;
    int stopped;
} gen;

/* Emits toks[0..n) in order up to the budget and the first stop token. Returns 1 when done. */
static int emit(gen *g, const int32_t *toks, size_t n)
{
    size_t i = 0, first = g->n;
    for (; i < n && g->n < g->max && !g->stopped; i++) {
        g->out[g->n++] = toks[i];
        for (size_t s = 0; s < g->o->n_stop; s++)
            if (toks[i] == g->o->stop[s])
                g->stopped = 1;
    }
    if (g->o->on_tokens && g->n > first && g->o->on_tokens(g->o->cb_ctx, g->out + first, g->n - first) != 0 && !g->stopped)
        g->stopped = 2;
    return g->stopped || g->n >= g->max;
}

lq_status rt_generate(const rt_model *m, const rt_drafter *D, const int32_t *prompt, size_t n, const rt_gen_opts *o,
                      int32_t *out, size_t *n_out, rt_gen_stats *stats, lq_error *err)
{
    rt_gen_stats local;
    rt_gen_stats *S = stats ? stats : &local;
    memset(S, 0, sizeof(*S));
    *n_out = 0;
    uint32_t B = o->block ? o->block : (D ? rt_drafter_config(D)->block_size : 1);
    int spec = (D || o->propose) && B > 1;
    if (!spec) {
        B = 1;
        D = NULL;
    }
    if (n == 0 || o->max_tokens == 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_GEN", "an empty prompt or max_tokens 0");
    if (B > RT_MAX_BLOCK)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_BLOCK", "block %u above %d", B, RT_MAX_BLOCK);
    const lq_drafter_config *dc_cfg = D ? rt_drafter_config(D) : NULL;
    const int threads = o->rt.threads;
    size_t cap = n + o->max_tokens + B + 1;
    rt_cache *kv = NULL;
    rt_dcache *dc = NULL;
    int32_t *committed = malloc(cap * sizeof(int32_t)), blk[RT_MAX_BLOCK + 1];
    lq_status st = committed ? LQ_OK : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    rt_cache_opts co = {0, dc_cfg ? dc_cfg->taps : NULL, dc_cfg ? dc_cfg->n_taps : 0};
    if (st != LQ_OK || (st = rt_cache_new_ex(m, cap, &co, &kv, err)) != LQ_OK ||
        (D && (st = rt_dcache_new(D, cap, &dc, err)) != LQ_OK))
        goto done;
    rt_rng rng;
    rt_rng_seed(&rng, o->sampling.seed);
    gen g = {o, out, 0, o->max_tokens, 0};
    memcpy(committed, prompt, n * sizeof(int32_t));
    S->prompt_tokens = n;

    /* Prefill in steps of RT_STEP_CHUNK (the split a longer step makes anyway): the last row's
     * logits, and with a drafter every chunk's tap rows straight into the draft cache. */
    double t0 = now_s();
    for (size_t off = 0; off < n; off += RT_STEP_CHUNK) {
        size_t cn = n - off < RT_STEP_CHUNK ? n - off : RT_STEP_CHUNK;
        rt_sel ps = {.rows = off + cn == n ? 1 : 0, .taps = D != NULL};
        if ((st = rt_step_ex(m, kv, prompt + off, cn, &o->rt, &ps, err)) != LQ_OK ||
            (D && (st = rt_draft_ingest_ctx(D, dc, kv, 0, cn, threads, err)) != LQ_OK))
            goto done;
    }
    size_t pend = 0; /* tap rows of the last verify step (rows 0..pend-1) not yet in the draft cache */
    int32_t anchor;
    if ((st = rt_sample_row(m, kv, 0, &o->sampling, &rng, &anchor, err)) != LQ_OK)
        goto done;
    S->prefill_s = now_s() - t0;
    double t1 = now_s();
    int done = emit(&g, &anchor, 1);
    size_t p = n; /* committed tokens in the target cache; the anchor sits at position p */
    /* Greedy DFlash goes through the backend's fused iteration where it has one (one host round trip
     * per iteration); the step-by-step route below is the same computation. */
    int fused = dc && !o->propose && o->sampling.temperature <= 0;
    while (!done) {
        uint32_t bs = B;
        if (bs > g.max - g.n)
            bs = (uint32_t)(g.max - g.n);
        uint32_t k = bs - 1;
        blk[0] = anchor;
        committed[p] = anchor;
        if (fused && k > 0 && pend) {
            uint32_t a;
            double tv = now_s();
            st = rt_dflash_iter(D, dc, kv, pend, anchor, k, &a, blk + 1, err);
            if (st == LQ_ERR_UNSUPPORTED && !strcmp(err ? err->rule : "RT_BACKEND", "RT_BACKEND")) {
                fused = 0; /* this backend goes step by step */
                st = LQ_OK;
            } else if (st != LQ_OK) {
                goto done;
            } else {
                S->verify_s += now_s() - tv;
                pend = (size_t)a + 1;
                memcpy(committed + p + 1, blk + 1, a * sizeof(int32_t));
                S->steps++;
                S->accept_hist[a + 1]++;
                p += a + 1;
                done = emit(&g, blk + 1, (size_t)a + 1);
                anchor = blk[a + 1];
                continue;
            }
        }
        double td = now_s();
        if (dc && pend) {
            /* the committed rows go in before the next step overwrites them, drafts or not */
            if ((st = rt_draft_ingest_ctx(D, dc, kv, 0, pend, threads, err)) != LQ_OK)
                goto done;
            pend = 0;
        }
        if (k > 0) {
            if (o->propose) {
                if ((st = o->propose(o->propose_ctx, committed, p, anchor, k, blk + 1)) != LQ_OK) {
                    lq_fail(err, st, NULL, NULL, "RT_PROPOSE", "the proposal hook failed");
                    goto done;
                }
            } else if ((st = rt_draft_block(D, dc, anchor, k, threads, NULL, blk + 1, err)) != LQ_OK)
                goto done;
        }
        if (dc || o->propose)
            S->draft_s += now_s() - td;
        double tv = now_s();
        rt_sel vs = {.rows = bs, .taps = D != NULL};
        uint32_t a;
        int32_t bonus;
        if ((st = rt_step_ex(m, kv, blk, bs, &o->rt, &vs, err)) != LQ_OK ||
            (st = rt_accept_rows(m, kv, blk + 1, k, &o->sampling, &rng, &a, &bonus, err)) != LQ_OK)
            goto done;
        S->verify_s += now_s() - tv;
        if ((st = rt_cache_truncate(kv, p + a + 1)) != LQ_OK) {
            lq_fail(err, st, NULL, NULL, "RT_CACHE", "rollback failed");
            goto done;
        }
        /* the tap rows of positions p..p+a are pending for the draft cache (rows a+1.. were rejected) */
        pend = (size_t)a + 1;
        memcpy(committed + p + 1, blk + 1, a * sizeof(int32_t));
        S->steps++;
        S->accept_hist[a + 1]++;
        p += a + 1;
        blk[a + 1] = bonus;
        done = emit(&g, blk + 1, (size_t)a + 1);
        anchor = bonus;
    }
    S->decode_s = now_s() - t1;
    S->stopped = g.stopped;
    S->generated = g.n;
    size_t tot = 0;
    for (uint32_t i = 1; i <= B; i++)
        tot += i * S->accept_hist[i];
    S->tau = S->steps ? (double)tot / (double)S->steps : 0;
    *n_out = g.n;
done:
    rt_cache_free(kv);
    rt_dcache_free(dc);
    free(committed);
    return st;
}
