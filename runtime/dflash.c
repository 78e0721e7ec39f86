/* DFlash drafter and the generation loop (dflash.h). */
#include "dflash.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"

typedef struct dlayer {
    int swa, causal;
    float *in_norm, *post_norm, *q_norm, *k_norm, *sinks;
    float *qb, *kb, *vb, *ob; /* biases (attention_bias) */
    rt_linear q, k, v, o, gate, up, down;
} dlayer;

struct rt_drafter {
    lq_drafter *dr;
    const lq_drafter_config *c;
    const rt_model *m;
    uint32_t H, Ht, nh, nkv, d, dv, rd;
    double theta, vscale;
    rt_linear fc;
    float *hidden_norm, *norm, *mask_emb;
    dlayer *L;
};

struct rt_dcache {
    size_t cap, len;
    uint32_t layers;
    size_t *slots;
    float **k, **v; /* [slots, nkv * d], [slots, nkv * dv] */
};

const lq_drafter_config *rt_drafter_config(const rt_drafter *d) { return d ? d->c : NULL; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static lq_status dvec(const rt_drafter *D, const char *name, uint64_t n, float **out, lq_error *err)
{
    const lq_ckpt *ck = lq_drafter_ckpt(D->dr);
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return lq_fail(err, LQ_ERR_NOT_FOUND, lq_ckpt_dir(ck), name, "RT_NO_TENSOR", "tensor not in the drafter");
    if (t.info->numel != n)
        return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(t.file), name, "RT_SHAPE", "%llu elements, expected %llu",
                       (unsigned long long)t.info->numel, (unsigned long long)n);
    *out = malloc(n * sizeof(float));
    if (!*out)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, name, NULL, "out of memory");
    if (lq_to_f32(t.info->dtype, lq_st_data(t.file, t.info), (size_t)n, *out) != LQ_OK)
        return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(t.file), name, "RT_FORMAT", "cannot decode %s",
                       lq_dtype_name(t.info->dtype));
    return LQ_OK;
}

static lq_status dlin(const rt_drafter *D, const char *name, uint64_t rows, uint64_t cols, rt_linear *l, lq_error *err)
{
    lq_status st = rt_linear_bind(lq_drafter_ckpt(D->dr), name, 0, l, err);
    if (st == LQ_OK && (l->rows != rows || l->cols != cols))
        st = lq_fail(err, LQ_ERR_CORRUPT, lq_ckpt_dir(lq_drafter_ckpt(D->dr)), name, "RT_SHAPE",
                     "[%llu, %llu], expected [%llu, %llu]", (unsigned long long)l->rows, (unsigned long long)l->cols,
                     (unsigned long long)rows, (unsigned long long)cols);
    return st;
}

void rt_drafter_close(rt_drafter *D)
{
    if (!D)
        return;
    for (uint32_t i = 0; D->L && i < D->c->num_hidden_layers; i++) {
        dlayer *L = &D->L[i];
        free(L->in_norm), free(L->post_norm), free(L->q_norm), free(L->k_norm), free(L->sinks);
        free(L->qb), free(L->kb), free(L->vb), free(L->ob);
    }
    free(D->L);
    free(D->hidden_norm), free(D->norm), free(D->mask_emb);
    lq_drafter_close(D->dr);
    free(D);
}

lq_status rt_drafter_open(const char *dir, const rt_model *m, const rt_drafter_opts *o, rt_drafter **out, lq_error *err)
{
    *out = NULL;
    rt_drafter *D = calloc(1, sizeof(*D));
    if (!D)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    const lq_mimo_config *tc = rt_model_config(m);
    lq_status st = lq_drafter_open(dir, tc, &D->dr, err);
    if (st != LQ_OK) {
        free(D);
        return st;
    }
    const lq_drafter_config *c = D->c = lq_drafter_get_config(D->dr);
    D->m = m;
    D->H = c->hidden_size;
    D->Ht = tc->hidden_size;
    D->nh = c->num_attention_heads;
    D->nkv = c->num_key_value_heads;
    D->d = c->head_dim;
    D->dv = c->v_head_dim;
    D->rd = c->rope_dim;
    D->theta = o && o->rope_theta > 0 ? o->rope_theta : c->rope_theta;
    D->vscale = c->attention_value_scale;
    if (c->head_dim > 1024) {
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, lq_drafter_config_path(D->dr), "head_dim", "RT_SHAPE",
                     "head_dim %u above the runtime's 1024", c->head_dim);
        goto fail;
    }
    if (c->block_size > RT_MAX_BLOCK) {
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, lq_drafter_config_path(D->dr), "block_size", "RT_BLOCK",
                     "block size %u above the runtime's %d", c->block_size, RT_MAX_BLOCK);
        goto fail;
    }
    uint64_t len = 0;
    const uint16_t *me = lq_drafter_mask_embedding(D->dr, &len, NULL);
    D->mask_emb = malloc(D->H * sizeof(float));
    if (!D->mask_emb) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < D->H; i++) {
        uint32_t b = (uint32_t)me[i] << 16;
        memcpy(&D->mask_emb[i], &b, 4);
    }
    if ((st = dlin(D, "fc.weight", D->H, (uint64_t)c->n_taps * D->Ht, &D->fc, err)) != LQ_OK ||
        (st = dvec(D, "hidden_norm.weight", D->H, &D->hidden_norm, err)) != LQ_OK ||
        (st = dvec(D, "norm.weight", D->H, &D->norm, err)) != LQ_OK)
        goto fail;
    D->L = calloc(c->num_hidden_layers, sizeof(dlayer));
    if (!D->L) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < c->num_hidden_layers && st == LQ_OK; i++) {
        dlayer *L = &D->L[i];
        char n[160];
        L->swa = c->is_swa[i];
        L->causal = c->is_causal[i];
#define V_(field, suffix, count)                                                                                       \
    if (st == LQ_OK) {                                                                                                 \
        snprintf(n, sizeof(n), "layers.%u.%s", i, suffix);                                                             \
        st = dvec(D, n, count, &L->field, err);                                                                        \
    }
#define W_(field, suffix, rows, cols)                                                                                  \
    if (st == LQ_OK) {                                                                                                 \
        snprintf(n, sizeof(n), "layers.%u.%s", i, suffix);                                                             \
        st = dlin(D, n, rows, cols, &L->field, err);                                                                   \
    }
        V_(in_norm, "input_layernorm.weight", D->H)
        V_(post_norm, "post_attention_layernorm.weight", D->H)
        V_(q_norm, "self_attn.q_norm.weight", D->d)
        V_(k_norm, "self_attn.k_norm.weight", D->d)
        if (c->attention_sink) {
            V_(sinks, "self_attn.attention_sink_bias", D->nh)
        }
        if (c->attention_bias) {
            V_(qb, "self_attn.q_proj.bias", (uint64_t)D->nh * D->d)
            V_(kb, "self_attn.k_proj.bias", (uint64_t)D->nkv * D->d)
            V_(vb, "self_attn.v_proj.bias", (uint64_t)D->nkv * D->dv)
            V_(ob, "self_attn.o_proj.bias", D->H)
        }
        W_(q, "self_attn.q_proj.weight", (uint64_t)D->nh * D->d, D->H)
        W_(k, "self_attn.k_proj.weight", (uint64_t)D->nkv * D->d, D->H)
        W_(v, "self_attn.v_proj.weight", (uint64_t)D->nkv * D->dv, D->H)
        W_(o, "self_attn.o_proj.weight", D->H, (uint64_t)D->nh * D->dv)
        W_(gate, "mlp.gate_proj.weight", c->intermediate_size, D->H)
        W_(up, "mlp.up_proj.weight", c->intermediate_size, D->H)
        W_(down, "mlp.down_proj.weight", D->H, c->intermediate_size)
#undef V_
#undef W_
    }
    if (st != LQ_OK)
        goto fail;
    *out = D;
    return LQ_OK;
fail:
    rt_drafter_close(D);
    return st;
}

/* ---- context cache ---- */

void rt_dcache_free(rt_dcache *c)
{
    if (!c)
        return;
    for (uint32_t l = 0; l < c->layers; l++) {
        if (c->k)
            free(c->k[l]);
        if (c->v)
            free(c->v[l]);
    }
    free(c->k), free(c->v), free(c->slots);
    free(c);
}

size_t rt_dcache_len(const rt_dcache *c) { return c ? c->len : 0; }

lq_status rt_dcache_new(const rt_drafter *D, size_t max_tokens, rt_dcache **out, lq_error *err)
{
    *out = NULL;
    rt_dcache *c = calloc(1, sizeof(*c));
    if (!c)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    c->cap = max_tokens;
    c->layers = D->c->num_hidden_layers;
    c->k = calloc(c->layers, sizeof(float *));
    c->v = calloc(c->layers, sizeof(float *));
    c->slots = calloc(c->layers, sizeof(size_t));
    int ok = c->k && c->v && c->slots;
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        /* A block row at p + r sees context c with p + r - c < W: never more than the last W. */
        c->slots[l] = D->L[l].swa && D->c->window < max_tokens ? D->c->window : max_tokens;
        c->k[l] = malloc(c->slots[l] * D->nkv * D->d * sizeof(float) + 1);
        c->v[l] = malloc(c->slots[l] * D->nkv * D->dv * sizeof(float) + 1);
        ok = c->k[l] && c->v[l];
    }
    if (!ok) {
        rt_dcache_free(c);
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "cannot allocate a draft cache of %zu tokens", max_tokens);
    }
    *out = c;
    return LQ_OK;
}

static void add_bias(float *y, const float *b, size_t n, uint64_t w)
{
    if (b)
        for (size_t t = 0; t < n; t++)
            for (uint64_t i = 0; i < w; i++)
                y[t * w + i] += b[i];
}

/* Per-head RMSNorm (q_norm / k_norm) and RoPE of n rows of `heads` heads at positions pos0 + t. */
static void norm_rope(const rt_drafter *D, float *x, size_t n, uint32_t heads, const float *w, size_t pos0)
{
    float tmp[1024];
    for (size_t t = 0; t < n; t++)
        for (uint32_t h = 0; h < heads; h++) {
            float *xh = x + (t * heads + h) * D->d;
            rt_rmsnorm(xh, w, D->d, D->c->rms_norm_eps, tmp);
            memcpy(xh, tmp, D->d * sizeof(float));
            rt_rope(xh, D->rd, D->theta, pos0 + t);
        }
}

lq_status rt_draft_ingest(const rt_drafter *D, rt_dcache *c, const float *taps, size_t n, int threads, float *ctx_out,
                          lq_error *err)
{
    if (c->len + n > c->cap)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_CACHE", "the draft cache holds %zu of %zu positions",
                       c->len, c->cap);
    uint64_t H = D->H, kr = (uint64_t)D->nkv * D->d, vr = (uint64_t)D->nkv * D->dv;
    float *f = malloc(n * H * sizeof(float)), *x = malloc(n * H * sizeof(float));
    float *k = malloc(n * kr * sizeof(float)), *v = malloc(n * vr * sizeof(float));
    lq_status st = f && x && k && v ? LQ_OK : LQ_ERR_NO_MEMORY;
    if (st == LQ_OK)
        st = rt_linear_forward(&D->fc, taps, n, 0, H, f, H, threads);
    for (size_t t = 0; st == LQ_OK && t < n; t++)
        rt_rmsnorm(f + t * H, D->hidden_norm, H, D->c->rms_norm_eps, x + t * H);
    if (st == LQ_OK && ctx_out)
        memcpy(ctx_out, x, n * H * sizeof(float));
    for (uint32_t l = 0; st == LQ_OK && l < c->layers; l++) {
        const dlayer *L = &D->L[l];
        st = rt_linear_forward(&L->k, x, n, 0, kr, k, kr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->v, x, n, 0, vr, v, vr, threads);
        if (st != LQ_OK)
            break;
        add_bias(k, L->kb, n, kr);
        add_bias(v, L->vb, n, vr);
        norm_rope(D, k, n, D->nkv, L->k_norm, c->len);
        for (size_t t = 0; t < n; t++) {
            size_t s = (c->len + t) % c->slots[l];
            for (uint64_t i = 0; i < vr; i++)
                v[t * vr + i] *= (float)D->vscale;
            memcpy(c->k[l] + s * kr, k + t * kr, kr * sizeof(float));
            memcpy(c->v[l] + s * vr, v + t * vr, vr * sizeof(float));
        }
    }
    if (st == LQ_OK)
        c->len += n;
    else
        lq_fail(err, st, NULL, NULL, "RT_FORMAT", "drafter context projection failed");
    free(f), free(x), free(k), free(v);
    return st;
}

lq_status rt_draft_block(const rt_drafter *D, const rt_dcache *c, int32_t anchor, uint32_t k, int threads, float *logits,
                         int32_t *drafts, lq_error *err)
{
    if (k < 1 || k >= RT_MAX_BLOCK)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_BLOCK", "%u drafts per block", k);
    const uint32_t B = k + 1, V = rt_model_config(D->m)->vocab_size;
    const uint64_t H = D->H, qr = (uint64_t)D->nh * D->d, kr = (uint64_t)D->nkv * D->d, vr = (uint64_t)D->nkv * D->dv;
    const size_t p = c->len;
    float *h = malloc(B * H * sizeof(float)), *u = malloc(B * H * sizeof(float)), *y = malloc(B * H * sizeof(float));
    float *q = malloc(B * qr * sizeof(float)), *kb = malloc(B * kr * sizeof(float)), *vb = malloc(B * vr * sizeof(float));
    float *ctx = malloc(B * (uint64_t)D->nh * D->dv * sizeof(float));
    float *sc = malloc((p + B + 8) * sizeof(float));
    float *lg = logits ? logits : malloc((size_t)k * V * sizeof(float));
    lq_status st = h && u && y && q && kb && vb && ctx && sc && lg ? LQ_OK : LQ_ERR_NO_MEMORY;
    if (st != LQ_OK) {
        lq_fail(err, st, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    if ((st = rt_model_embed(D->m, anchor, h)) != LQ_OK) {
        lq_fail(err, st, NULL, NULL, "RT_TOKEN", "anchor %d outside the vocabulary", anchor);
        goto done;
    }
    for (uint32_t r = 1; r < B; r++)
        memcpy(h + r * H, D->mask_emb, H * sizeof(float));
    const float scale = 1.0f / sqrtf((float)D->d);
    const uint32_t group = D->nh / D->nkv, W = D->c->window;
    for (uint32_t l = 0; l < c->layers && st == LQ_OK; l++) {
        const dlayer *L = &D->L[l];
        for (uint32_t r = 0; r < B; r++)
            rt_rmsnorm(h + r * H, L->in_norm, H, D->c->rms_norm_eps, u + r * H);
        st = rt_linear_forward(&L->q, u, B, 0, qr, q, qr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->k, u, B, 0, kr, kb, kr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->v, u, B, 0, vr, vb, vr, threads);
        if (st != LQ_OK)
            break;
        add_bias(q, L->qb, B, qr);
        add_bias(kb, L->kb, B, kr);
        add_bias(vb, L->vb, B, vr);
        norm_rope(D, q, B, D->nh, L->q_norm, p);
        norm_rope(D, kb, B, D->nkv, L->k_norm, p);
        for (uint64_t i = 0; i < B * vr; i++)
            vb[i] *= (float)D->vscale;
        for (uint32_t r = 0; r < B; r++) {
            size_t qp = p + r, lo = 0;
            if (L->swa && W)
                lo = qp + 1 > W ? qp + 1 - W : 0; /* q - c < W */
            for (uint32_t hh = 0; hh < D->nh; hh++) {
                const float *qi = q + ((uint64_t)r * D->nh + hh) * D->d;
                uint32_t g = hh / group;
                float mx = L->sinks ? L->sinks[hh] : -INFINITY;
                size_t ns = 0;
                /* context keys lo..p-1, then block keys */
                for (size_t j = lo; j < p; j++) {
                    const float *kj = c->k[l] + (j % c->slots[l]) * kr + (uint64_t)g * D->d;
                    float s = 0;
                    for (uint32_t e = 0; e < D->d; e++)
                        s += qi[e] * kj[e];
                    sc[ns] = s * scale;
                    mx = sc[ns] > mx ? sc[ns] : mx;
                    ns++;
                }
                for (uint32_t j = 0; j < B; j++) {
                    int vis = (!L->causal || j <= r) && (!(L->swa && W) || (j > r ? j - r : r - j) < W);
                    if (!vis) {
                        sc[ns++] = -INFINITY;
                        continue;
                    }
                    const float *kj = kb + (uint64_t)j * kr + (uint64_t)g * D->d;
                    float s = 0;
                    for (uint32_t e = 0; e < D->d; e++)
                        s += qi[e] * kj[e];
                    sc[ns] = s * scale;
                    mx = sc[ns] > mx ? sc[ns] : mx;
                    ns++;
                }
                double den = L->sinks ? exp((double)L->sinks[hh] - mx) : 0.0;
                for (size_t j = 0; j < ns; j++) {
                    sc[j] = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - mx);
                    den += sc[j];
                }
                float *ci = ctx + ((uint64_t)r * D->nh + hh) * D->dv;
                for (uint32_t e = 0; e < D->dv; e++)
                    ci[e] = 0;
                for (size_t j = 0; j < ns; j++) {
                    float pj = (float)(sc[j] / den);
                    const float *vj = j < p - lo ? c->v[l] + ((lo + j) % c->slots[l]) * vr + (uint64_t)g * D->dv
                                                 : vb + (uint64_t)(j - (p - lo)) * vr + (uint64_t)g * D->dv;
                    for (uint32_t e = 0; e < D->dv; e++)
                        ci[e] += pj * vj[e];
                }
            }
        }
        st = rt_linear_forward(&L->o, ctx, B, 0, H, y, H, threads);
        if (st != LQ_OK)
            break;
        add_bias(y, L->ob, B, H);
        for (uint64_t i = 0; i < B * H; i++)
            h[i] += y[i];
        for (uint32_t r = 0; r < B; r++)
            rt_rmsnorm(h + r * H, L->post_norm, H, D->c->rms_norm_eps, u + r * H);
        if ((st = rt_swiglu(&L->gate, &L->up, &L->down, u, B, threads, y)) != LQ_OK)
            break;
        for (uint64_t i = 0; i < B * H; i++)
            h[i] += y[i];
    }
    if (st != LQ_OK) {
        lq_fail(err, st, NULL, NULL, "RT_FORMAT", "draft forward failed");
        goto done;
    }
    for (uint32_t r = 1; r < B; r++)
        rt_rmsnorm(h + r * H, D->norm, H, D->c->rms_norm_eps, u + (r - 1) * H);
    if ((st = rt_model_lm_head(D->m, u, k, threads, lg)) != LQ_OK) {
        lq_fail(err, st, NULL, NULL, "RT_FORMAT", "lm_head failed");
        goto done;
    }
    for (uint32_t r = 0; r < k; r++)
        drafts[r] = rt_argmax(lg + (size_t)r * V, V);
done:
    free(h), free(u), free(y), free(q), free(kb), free(vb), free(ctx), free(sc);
    if (lg != logits)
        free(lg);
    return st;
}

/* ---- generation ---- */

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
    const uint32_t V = rt_model_config(m)->vocab_size;
    uint32_t B = o->block ? o->block : (D ? D->c->block_size : 1);
    int spec = (D || o->propose) && B > 1;
    if (!spec) {
        B = 1;
        D = NULL;
    }
    if (n == 0 || o->max_tokens == 0)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_GEN", "an empty prompt or max_tokens 0");
    if (B > RT_MAX_BLOCK)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_BLOCK", "block %u above %d", B, RT_MAX_BLOCK);
    const uint32_t ntaps = D ? D->c->n_taps : 0, Ht = rt_model_config(m)->hidden_size;
    const uint64_t tw = (uint64_t)ntaps * Ht;
    size_t cap = n + o->max_tokens + B + 1, pend_cap = (n > B ? n : B);
    rt_cache *kv = NULL;
    rt_dcache *dc = NULL;
    float *logits = malloc((n > B ? n : B) * (size_t)V * sizeof(float));
    float *taps = ntaps ? malloc(pend_cap * tw * sizeof(float)) : NULL;
    double *probs = malloc(V * sizeof(double));
    uint32_t *idx = malloc(V * sizeof(uint32_t));
    int32_t *committed = malloc(cap * sizeof(int32_t)), blk[RT_MAX_BLOCK];
    lq_status st = logits && (taps || !ntaps) && probs && idx && committed ? LQ_OK : LQ_ERR_NO_MEMORY;
    if (st != LQ_OK) {
        lq_fail(err, st, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    if ((st = rt_cache_new(m, cap, &kv, err)) != LQ_OK || (D && (st = rt_dcache_new(D, cap, &dc, err)) != LQ_OK))
        goto done;
    rt_rng rng;
    rt_rng_seed(&rng, o->sampling.seed);
    gen g = {o, out, 0, o->max_tokens, 0};
    memcpy(committed, prompt, n * sizeof(int32_t));
    S->prompt_tokens = n;

    /* Prefill: the prompt's logits (only the last row is used) and its tap features. */
    double t0 = now_s();
    rt_out ro = {logits, NULL, D ? D->c->taps : NULL, ntaps, taps};
    if ((st = rt_step_ex(m, kv, prompt, n, &o->rt, &ro, err)) != LQ_OK)
        goto done;
    size_t pend = n; /* tap rows pending for the draft cache: positions p - pend .. p - 1 */
    int32_t anchor = rt_sample(logits + (n - 1) * (size_t)V, V, &o->sampling, &rng, probs, idx);
    S->prefill_s = now_s() - t0;
    double t1 = now_s();
    int done = emit(&g, &anchor, 1);
    size_t p = n; /* committed tokens in the target cache; the anchor sits at position p */
    while (!done) {
        uint32_t bs = B;
        if (bs > g.max - g.n)
            bs = (uint32_t)(g.max - g.n);
        uint32_t k = bs - 1;
        blk[0] = anchor;
        committed[p] = anchor;
        if (k > 0) {
            double td = now_s();
            if (o->propose) {
                if ((st = o->propose(o->propose_ctx, committed, p, anchor, k, blk + 1)) != LQ_OK) {
                    lq_fail(err, st, NULL, NULL, "RT_PROPOSE", "the proposal hook failed");
                    goto done;
                }
            } else {
                if ((st = rt_draft_ingest(D, dc, taps, pend, o->rt.threads, NULL, err)) != LQ_OK ||
                    (st = rt_draft_block(D, dc, anchor, k, o->rt.threads, NULL, blk + 1, err)) != LQ_OK)
                    goto done;
                pend = 0;
            }
            S->draft_s += now_s() - td;
        } else if (dc && pend) {
            /* no drafts this step: the features still go in, so the draft cache never lags */
            if ((st = rt_draft_ingest(D, dc, taps, pend, o->rt.threads, NULL, err)) != LQ_OK)
                goto done;
            pend = 0;
        }
        double tv = now_s();
        rt_out vo = {logits, NULL, D ? D->c->taps : NULL, ntaps, taps};
        if ((st = rt_step_ex(m, kv, blk, bs, &o->rt, &vo, err)) != LQ_OK)
            goto done;
        int32_t bonus;
        uint32_t a = rt_accept(logits, V, blk + 1, k, &o->sampling, &rng, &bonus, probs, idx);
        S->verify_s += now_s() - tv;
        if ((st = rt_cache_truncate(kv, p + a + 1)) != LQ_OK) {
            lq_fail(err, st, NULL, NULL, "RT_CACHE", "rollback failed");
            goto done;
        }
        /* the tap rows of positions p..p+a are the pending context (rows a+1.. were rejected) */
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
    free(logits), free(taps), free(probs), free(idx), free(committed);
    return st;
}
