/* The DFlash drafter API (dflash.h): argument checks, cache lengths, and dispatch to the target's
 * backend. */
#include "dflash.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"

struct rt_drafter {
    rt_dweights *w;
    const rt_model *m;
    const rt_backend_ops *ops;
    void *bd;
};

struct rt_dcache {
    const rt_drafter *d;
    void *ctx;
    size_t cap, len;
};

const lq_drafter_config *rt_drafter_config(const rt_drafter *d) { return d ? d->w->c : NULL; }

void rt_drafter_close(rt_drafter *d)
{
    if (!d)
        return;
    if (d->bd)
        d->ops->drafter_close(d->bd);
    rt_dweights_close(d->w);
    free(d);
}

lq_status rt_drafter_open(const char *dir, const rt_model *m, const rt_drafter_opts *o, rt_drafter **out, lq_error *err)
{
    *out = NULL;
    rt_drafter *d = calloc(1, sizeof(*d));
    if (!d)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    d->m = m;
    void *be = rt_model_be_(m, &d->ops);
    rt_weights_opts wo = {rt_model_threads(m), 0, 1};
    lq_status st = rt_dweights_open(dir, rt_model_weights(m), &wo, &d->w, err);
    if (st == LQ_OK && d->w->c->block_size > RT_MAX_BLOCK)
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, dir, "block_size", "RT_BLOCK", "block size %u above the runtime's %d",
                     d->w->c->block_size, RT_MAX_BLOCK);
    if (st == LQ_OK)
        st = d->ops->drafter_open(be, d->w, o, &d->bd, err);
    if (st != LQ_OK) {
        rt_drafter_close(d);
        return st;
    }
    *out = d;
    return LQ_OK;
}

lq_status rt_dcache_new(const rt_drafter *d, size_t max_tokens, rt_dcache **out, lq_error *err)
{
    *out = NULL;
    rt_dcache *c = calloc(1, sizeof(*c));
    if (!c)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    c->d = d;
    c->cap = max_tokens;
    lq_status st = d->ops->dctx_new(d->bd, max_tokens, &c->ctx, err);
    if (st != LQ_OK) {
        free(c);
        return st;
    }
    *out = c;
    return LQ_OK;
}

void rt_dcache_free(rt_dcache *c)
{
    if (!c)
        return;
    c->d->ops->dctx_free(c->ctx);
    free(c);
}

size_t rt_dcache_len(const rt_dcache *c) { return c ? c->len : 0; }

static lq_status ingest(const rt_drafter *d, rt_dcache *c, const float *taps, const rt_cache *kv, size_t row0, size_t n,
                        int threads, float *ctx_out, lq_error *err)
{
    if (c->len + n > c->cap)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_CACHE", "the draft cache holds %zu of %zu positions",
                       c->len, c->cap);
    lq_status st = n ? d->ops->ingest(d->bd, c->ctx, c->len, taps, kv ? rt_cache_ctx_(kv) : NULL, row0, n, ctx_out,
                                      threads > 0 ? threads : rt_model_threads(d->m), err)
                     : LQ_OK;
    if (st == LQ_OK)
        c->len += n;
    return st;
}

lq_status rt_draft_ingest(const rt_drafter *d, rt_dcache *c, const float *taps, size_t n, int threads, float *ctx_out,
                          lq_error *err)
{
    if (!taps && n)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP", "no tap features");
    return ingest(d, c, taps, NULL, 0, n, threads, ctx_out, err);
}

lq_status rt_draft_ingest_ctx(const rt_drafter *d, rt_dcache *c, const rt_cache *kv, size_t row0, size_t n, int threads,
                              lq_error *err)
{
    return ingest(d, c, NULL, kv, row0, n, threads, NULL, err);
}

lq_status rt_draft_block(const rt_drafter *d, rt_dcache *c, int32_t anchor, uint32_t k, int threads, float *logits,
                         int32_t *drafts, lq_error *err)
{
    if (k < 1 || k >= RT_MAX_BLOCK)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_BLOCK", "%u drafts per block", k);
    if (anchor < 0 || (uint32_t)anchor >= rt_model_config(d->m)->vocab_size)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TOKEN", "anchor %d outside the vocabulary", anchor);
    return d->ops->draft(d->bd, c->ctx, c->len, anchor, k, logits, drafts, threads > 0 ? threads : rt_model_threads(d->m),
                         err);
}

lq_status rt_dflash_iter(const rt_drafter *d, rt_dcache *c, rt_cache *kv, size_t pend, int32_t anchor, uint32_t k,
                         uint32_t *a, int32_t *ids, lq_error *err)
{
    if (!d->ops->dflash_iter)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, NULL, NULL, "RT_BACKEND", "no fused DFlash iteration on %s",
                       d->ops->name);
    if (k < 1 || k >= RT_MAX_BLOCK)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_BLOCK", "%u drafts per block", k);
    if (anchor < 0 || (uint32_t)anchor >= rt_model_config(d->m)->vocab_size)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TOKEN", "anchor %d outside the vocabulary", anchor);
    const size_t pos = rt_cache_len(kv);
    if (pend > RT_MAX_BLOCK || c->len + pend != pos || c->len + pend > c->cap || pos + k + 1 > rt_cache_cap(kv))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_CACHE",
                       "draft cache %zu + %zu pending rows against a target cache of %zu (of %zu) positions, block %u",
                       c->len, pend, pos, rt_cache_cap(kv), k + 1);
    lq_status st = d->ops->dflash_iter(rt_model_be_(d->m, NULL), rt_cache_ctx_(kv), d->bd, c->ctx, pos, c->len, pend,
                                       anchor, k, a, ids, err);
    if (st == LQ_OK) {
        c->len += pend;
        rt_cache_set_len_(kv, pos + *a + 1);
    }
    return st;
}
