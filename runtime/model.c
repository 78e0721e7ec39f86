/* The model API (model.h): argument checks, cache lengths, and dispatch to the chosen backend. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"

struct rt_model {
    rt_weights *w;
    const rt_backend_ops *ops;
    void *be;
    int threads;
};

struct rt_cache {
    const rt_model *m;
    void *ctx;
    size_t cap, len;
    rt_cache_opts o;
};

const char *rt_prof_name(int i)
{
    static const char *n[RT_PROF_N] = {"attention", "routed experts", "dense mlp", "lm_head", "other"};
    return i >= 0 && i < RT_PROF_N ? n[i] : "?";
}

const lq_mimo_config *rt_model_config(const rt_model *m) { return m ? &m->w->cfg : NULL; }
const char *rt_model_dir(const rt_model *m) { return m ? lq_ckpt_dir(m->w->ck) : NULL; }
const rt_weights *rt_model_weights(const rt_model *m) { return m ? m->w : NULL; }
const char *rt_model_backend(const rt_model *m) { return m ? m->ops->name : NULL; }
int rt_model_threads(const rt_model *m) { return m ? m->threads : 1; }

void *rt_model_be_(const rt_model *m, const rt_backend_ops **ops)
{
    if (ops)
        *ops = m->ops;
    return m->be;
}
void *rt_cache_ctx_(const rt_cache *c) { return c->ctx; }
void rt_cache_set_len_(rt_cache *c, size_t len) { c->len = len; }

int rt_parse_device(const char *s, const char **backend, int *device)
{
    if (!s)
        return 1;
    if (!strcmp(s, "cpu")) {
        *backend = "cpu", *device = 0;
        return 0;
    }
    if (!strcmp(s, "cuda")) {
        *backend = "cuda", *device = 0;
        return 0;
    }
    if (strncmp(s, "cuda:", 5) || !s[5] || strlen(s + 5) > 3)
        return 1;
    int d = 0;
    for (const char *c = s + 5; *c; c++) {
        if (*c < '0' || *c > '9')
            return 1;
        d = d * 10 + (*c - '0');
    }
    if (d > 255)
        return 1;
    *backend = "cuda", *device = d;
    return 0;
}

void rt_model_close(rt_model *m)
{
    if (!m)
        return;
    if (m->be)
        m->ops->close(m->be);
    rt_weights_close(m->w);
    free(m);
}

lq_status rt_model_open(const char *dir, const rt_model_opts *o, rt_model **out, lq_error *err)
{
    *out = NULL;
    const char *bk = o && o->backend ? o->backend : "cpu";
    const rt_backend_ops *ops = NULL;
    if (strcmp(bk, "cpu") == 0)
        ops = &rt_cpu_backend;
    else if (strcmp(bk, "cuda") == 0) {
#ifdef MIMO_HAVE_CUDA
        ops = &rt_cuda_backend;
#else
        return lq_fail(err, LQ_ERR_UNSUPPORTED, dir, NULL, "RT_BACKEND", "this build has no CUDA backend");
#endif
    } else
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, "RT_BACKEND", "unknown backend '%s' (cpu or cuda)", bk);
    if (o && ops == &rt_cpu_backend && (o->device != 0 || o->fp32))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, "RT_DEVICE", "the cpu backend has one device (device %d)%s",
                       o->device, o->fp32 ? " and is always fp32" : "");
    if (o && (o->world > 1 || o->rank != 0))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, dir, NULL, "RT_DEVICE", "one rank only (rank %d of %d)", o->rank,
                       o->world);
    rt_model *m = calloc(1, sizeof(*m));
    if (!m)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    m->ops = ops;
    m->threads = o && o->threads > 0 ? o->threads : 1;
    /* The CPU backend reads the mapped files in every step: the value pass runs here, on the pool.
     * A device backend checks each tensor as it uploads it. */
    rt_weights_opts wo = {m->threads, o ? o->max_abs : 0, ops == &rt_cpu_backend};
    lq_status st = rt_weights_open(dir, &wo, &m->w, err);
    if (st == LQ_OK)
        st = ops->open(m->w, o, &m->be, err);
    if (st != LQ_OK) {
        rt_model_close(m);
        return st;
    }
    *out = m;
    return LQ_OK;
}

uint64_t rt_model_bytes_per_token(const rt_model *m)
{
    return m && m->ops->bytes_per_token ? m->ops->bytes_per_token(m->be) : 0;
}

double rt_model_copy_gbps(const rt_model *m)
{
    return m && m->ops->copy_gbps ? m->ops->copy_gbps(m->be) : 0;
}

/* ---- contexts ---- */

lq_status rt_cache_new(const rt_model *m, size_t max_tokens, rt_cache **out, lq_error *err)
{
    return rt_cache_new_ex(m, max_tokens, NULL, out, err);
}

lq_status rt_cache_new_ex(const rt_model *m, size_t max_tokens, const rt_cache_opts *o, rt_cache **out, lq_error *err)
{
    *out = NULL;
    for (uint32_t i = 0; o && i < o->ntaps; i++)
        if (!o->taps || o->taps[i] >= m->w->cfg.num_hidden_layers)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP", "tap layer %u outside the model's %u layers",
                           o->taps ? o->taps[i] : 0, m->w->cfg.num_hidden_layers);
    rt_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    c->m = m;
    c->cap = max_tokens;
    if (o)
        c->o = *o;
    lq_status st = m->ops->ctx_new(m->be, max_tokens, o, &c->ctx, err);
    if (st != LQ_OK) {
        free(c);
        return st;
    }
    *out = c;
    return LQ_OK;
}

void rt_cache_free(rt_cache *c)
{
    if (!c)
        return;
    c->m->ops->ctx_free(c->ctx);
    free(c);
}

size_t rt_cache_len(const rt_cache *c) { return c ? c->len : 0; }
size_t rt_cache_cap(const rt_cache *c) { return c ? c->cap : 0; }
size_t rt_cache_bytes(const rt_cache *c) { return c ? c->m->ops->ctx_bytes(c->ctx) : 0; }

lq_status rt_cache_truncate(rt_cache *c, size_t len)
{
    if (!c)
        return LQ_ERR_INVALID_ARGUMENT;
    if (len >= c->len)
        return LQ_OK;
    if (c->len - len > RT_MAX_ROLLBACK)
        return LQ_ERR_INVALID_ARGUMENT;
    c->len = len;
    return LQ_OK;
}

lq_status rt_cache_copy(rt_cache *dst, const rt_cache *src)
{
    if (!dst || !src || dst->m != src->m || dst->cap != src->cap || dst->o.no_ring != src->o.no_ring)
        return LQ_ERR_INVALID_ARGUMENT;
    lq_status st = src->m->ops->ctx_copy(dst->ctx, src->ctx, src->len);
    if (st == LQ_OK)
        dst->len = src->len;
    return st;
}

/* ---- steps ---- */

lq_status rt_step_ex(const rt_model *m, rt_cache *kv, const int32_t *tokens, size_t n, const rt_opts *o,
                     const rt_sel *sel, lq_error *err)
{
    static const rt_sel none = {0};
    if (!sel)
        sel = &none;
    if (!kv || kv->m != m || kv->len + n > kv->cap)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_CACHE",
                       "the cache holds %zu of %zu positions; %zu more do not fit", kv ? kv->len : 0, kv ? kv->cap : 0, n);
    if (sel->rows > n)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "logits of %zu rows from a step of %zu",
                       sel->rows, n);
    for (size_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= m->w->cfg.vocab_size)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TOKEN",
                           "token %d (input %zu) outside the vocabulary of %u", tokens[t], t, m->w->cfg.vocab_size);
    if ((sel->taps || sel->tap_out) && !kv->o.ntaps)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "taps from a context made without taps");
    if (sel->taps && n > RT_STEP_CHUNK)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "taps of %zu rows kept in one step (at most %d)",
                       n, RT_STEP_CHUNK);
    if (sel->rows > RT_KEEP_ROWS && !sel->logits)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT",
                       "%zu logits rows kept (at most %d without a host buffer)", sel->rows, RT_KEEP_ROWS);
    int threads = o && o->threads > 0 ? o->threads : m->threads;
    lq_status st = n ? m->ops->step(m->be, kv->ctx, kv->len, tokens, n, sel, threads, err) : LQ_OK;
    if (st == LQ_OK)
        kv->len += n; /* a failed step leaves the length as it was (positions beyond it are never read) */
    return st;
}

lq_status rt_step(const rt_model *m, rt_cache *kv, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                  float *hidden, lq_error *err)
{
    rt_sel sel = {.rows = logits ? n : 0, .logits = logits, .hidden = hidden};
    return rt_step_ex(m, kv, tokens, n, o, &sel, err);
}

lq_status rt_forward(const rt_model *m, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                     float *hidden, lq_error *err)
{
    rt_cache *c = NULL;
    lq_status st = rt_cache_new(m, n, &c, err);
    if (st == LQ_OK)
        st = rt_step(m, c, tokens, n, o, logits, hidden, err);
    rt_cache_free(c);
    return st;
}

lq_status rt_sample_row(const rt_model *m, rt_cache *c, size_t row, const rt_sampling *s, rt_rng *r, int32_t *id,
                        lq_error *err)
{
    return m->ops->sample(m->be, c->ctx, row, s, r, id, err);
}

lq_status rt_accept_rows(const rt_model *m, rt_cache *c, const int32_t *drafts, uint32_t k, const rt_sampling *s,
                         rt_rng *r, uint32_t *a, int32_t *bonus, lq_error *err)
{
    return m->ops->accept(m->be, c->ctx, drafts, k, s, r, a, bonus, err);
}
