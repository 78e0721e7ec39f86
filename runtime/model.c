/* The MiMo forward pass on the CPU (model.h), written from reference/mimo_arch.md section 3:
 * pre-norm decoder layers; attention with q/k head dim 192 and v 128, RoPE (rotate-half) on the
 * first rope_dim dims with the layer type's theta, v scaled by attention_value_scale, a causal mask
 * with a sliding window and a per-head sink logit on SWA layers; a dense SwiGLU MLP on dense
 * layers and on MoE layers an fp32 sigmoid router whose e_score_correction_bias only selects the
 * top-k experts, whose unbiased scores, normalised, weight the experts' SwiGLU outputs; final
 * RMSNorm and an untied lm_head. Everything in fp32. */
#include "model.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct rt_layer {
    int swa, moe;
    uint32_t nq, nkv, dqk, dv, rope_dim;
    double theta;
    float *in_norm, *post_norm, *sinks;
    int fused;
    rt_linear qkv, q, k, v, o;
    rt_linear gate, up, down;          /* dense MLP */
    float *router, *e_bias;            /* MoE: [E, H], [E] */
    rt_linear *eg, *eu, *ed;           /* MoE experts */
} rt_layer;

struct rt_model {
    lq_ckpt *ck;
    lq_mimo_config cfg;
    int have_cfg;
    rt_layer *L;
    rt_linear embed, lm_head;
    float *final_norm;
    uint32_t qkv_shards;
};

const lq_mimo_config *rt_model_config(const rt_model *m) { return m ? &m->cfg : NULL; }
const char *rt_prof_name(int i)
{
    static const char *n[RT_PROF_N] = {"attention", "routed experts", "dense mlp", "lm_head", "other"};
    return i >= 0 && i < RT_PROF_N ? n[i] : "?";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *rt_model_dir(const rt_model *m) { return m ? lq_ckpt_dir(m->ck) : NULL; }

lq_status rt_model_embed(const rt_model *m, int32_t token, float *out)
{
    if (token < 0 || (uint32_t)token >= m->cfg.vocab_size)
        return LQ_ERR_INVALID_ARGUMENT;
    return rt_linear_rows(&m->embed, (uint64_t)token, (uint64_t)token + 1, out);
}

lq_status rt_model_lm_head(const rt_model *m, const float *x, size_t n, int threads, float *logits)
{
    return rt_linear_forward(&m->lm_head, x, n, 0, m->cfg.vocab_size, logits, m->cfg.vocab_size, threads);
}

struct rt_cache {
    size_t cap, len;
    uint32_t layers;
    float **k, **v;      /* per layer: [slots, nkv * dqk], [slots, nkv * dv] */
    uint64_t *kr, *vr;   /* row widths */
    size_t *slots;       /* per layer: cap (global layers) or the ring size (SWA layers) */
};

void rt_cache_free(rt_cache *c)
{
    if (!c)
        return;
    for (uint32_t l = 0; l < c->layers; l++) {
        if (c->k)
            free(c->k[l]);
        if (c->v)
            free(c->v[l]);
    }
    free(c->k), free(c->v), free(c->kr), free(c->vr), free(c->slots);
    free(c);
}

size_t rt_cache_len(const rt_cache *c) { return c ? c->len : 0; }
size_t rt_cache_cap(const rt_cache *c) { return c ? c->cap : 0; }

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
    if (!dst || !src || dst->layers != src->layers || dst->cap != src->cap)
        return LQ_ERR_INVALID_ARGUMENT;
    for (uint32_t l = 0; l < src->layers; l++) {
        if (dst->slots[l] != src->slots[l])
            return LQ_ERR_INVALID_ARGUMENT;
        size_t used = src->len < src->slots[l] ? src->len : src->slots[l];
        memcpy(dst->k[l], src->k[l], used * src->kr[l] * sizeof(float));
        memcpy(dst->v[l], src->v[l], used * src->vr[l] * sizeof(float));
    }
    dst->len = src->len;
    return LQ_OK;
}

/* A small tensor decoded to f32 (norms, sinks, router), checked to hold n elements. */
static lq_status vec(const lq_ckpt *ck, const char *name, uint64_t n, float **out, lq_error *err)
{
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return lq_fail(err, LQ_ERR_NOT_FOUND, lq_ckpt_dir(ck), name, "RT_NO_TENSOR", "tensor not in the checkpoint");
    if (t.info->numel != n)
        return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(t.file), name, "RT_SHAPE", "%llu elements, expected %llu",
                       (unsigned long long)t.info->numel, (unsigned long long)n);
    *out = malloc(n * sizeof(float));
    if (!*out)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, name, NULL, "out of memory");
    lq_status st = lq_to_f32(t.info->dtype, lq_st_data(t.file, t.info), (size_t)n, *out);
    if (st != LQ_OK)
        return lq_fail(err, st, lq_st_path(t.file), name, "RT_FORMAT", "cannot decode %s", lq_dtype_name(t.info->dtype));
    return LQ_OK;
}

static lq_status lin(const rt_model *m, const char *name, uint64_t rows, uint64_t cols, rt_linear *l, lq_error *err)
{
    lq_status st = rt_linear_bind(m->ck, name, strstr(name, "qkv_proj") ? m->qkv_shards : 0, l, err);
    if (st != LQ_OK)
        return st;
    if (l->rows != rows || l->cols != cols)
        return lq_fail(err, LQ_ERR_CORRUPT, lq_ckpt_dir(m->ck), name, "RT_SHAPE", "[%llu, %llu], expected [%llu, %llu]",
                       (unsigned long long)l->rows, (unsigned long long)l->cols, (unsigned long long)rows,
                       (unsigned long long)cols);
    return LQ_OK;
}

void rt_model_close(rt_model *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; m->L && i < m->cfg.num_hidden_layers; i++) {
        rt_layer *L = &m->L[i];
        free(L->in_norm), free(L->post_norm), free(L->sinks), free(L->router), free(L->e_bias);
        free(L->eg), free(L->eu), free(L->ed);
    }
    free(m->L);
    free(m->final_norm);
    if (m->have_cfg)
        lq_mimo_config_free(&m->cfg);
    lq_ckpt_close(m->ck);
    free(m);
}

lq_status rt_model_open(const char *dir, rt_model **out, lq_error *err)
{
    *out = NULL;
    rt_model *m = calloc(1, sizeof(*m));
    if (!m)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    lq_status st = lq_ckpt_open(dir, NULL, &m->ck, err);
    if (st == LQ_OK && (st = lq_mimo_config_parse(lq_ckpt_config(m->ck), "config.json", &m->cfg, err)) == LQ_OK)
        m->have_cfg = 1;
    if (st != LQ_OK)
        goto fail;
    const lq_mimo_config *c = &m->cfg;
    uint64_t H = c->hidden_size;
    m->qkv_shards = lq_mimo_qkv_shards(c);
    if ((st = lin(m, "model.embed_tokens.weight", c->vocab_size, H, &m->embed, err)) != LQ_OK ||
        (st = lin(m, c->tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", c->vocab_size, H,
                  &m->lm_head, err)) != LQ_OK ||
        (st = vec(m->ck, "model.norm.weight", H, &m->final_norm, err)) != LQ_OK)
        goto fail;
    m->L = calloc(c->num_hidden_layers, sizeof(rt_layer));
    if (!m->L) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto fail;
    }
    for (uint32_t li = 0; li < c->num_hidden_layers; li++) {
        rt_layer *L = &m->L[li];
        char n[256], p[64];
        snprintf(p, sizeof(p), "model.layers.%u", li);
        L->swa = c->is_swa[li];
        L->moe = c->is_moe[li];
        L->nq = L->swa ? c->swa_num_attention_heads : c->num_attention_heads;
        L->nkv = L->swa ? c->swa_num_key_value_heads : c->num_key_value_heads;
        L->dqk = L->swa ? c->swa_head_dim : c->head_dim;
        L->dv = L->swa ? c->swa_v_head_dim : c->v_head_dim;
        L->rope_dim = L->swa ? c->swa_rope_dim : c->rope_dim;
        L->theta = L->swa ? c->swa_rope_theta : c->rope_theta;
        snprintf(n, sizeof(n), "%s.input_layernorm.weight", p);
        if ((st = vec(m->ck, n, H, &L->in_norm, err)) != LQ_OK)
            goto fail;
        snprintf(n, sizeof(n), "%s.post_attention_layernorm.weight", p);
        if ((st = vec(m->ck, n, H, &L->post_norm, err)) != LQ_OK)
            goto fail;
        if ((L->swa && c->swa_attention_sink) || (!L->swa && c->full_attention_sink)) {
            snprintf(n, sizeof(n), "%s.self_attn.attention_sink_bias", p);
            if ((st = vec(m->ck, n, L->nq, &L->sinks, err)) != LQ_OK)
                goto fail;
        }
        uint64_t qr = (uint64_t)L->nq * L->dqk, kr = (uint64_t)L->nkv * L->dqk, vr = (uint64_t)L->nkv * L->dv;
        L->fused = c->fused_qkv;
        if (L->fused) {
            if (L->nkv % m->qkv_shards || L->nq % m->qkv_shards) {
                st = lq_fail(err, LQ_ERR_UNSUPPORTED, dir, p, "RT_SHAPE", "heads do not divide over %u qkv shards",
                             m->qkv_shards);
                goto fail;
            }
            snprintf(n, sizeof(n), "%s.self_attn.qkv_proj.weight", p);
            st = lin(m, n, qr + kr + vr, H, &L->qkv, err);
        } else {
            snprintf(n, sizeof(n), "%s.self_attn.q_proj.weight", p);
            st = lin(m, n, qr, H, &L->q, err);
            snprintf(n, sizeof(n), "%s.self_attn.k_proj.weight", p);
            if (st == LQ_OK)
                st = lin(m, n, kr, H, &L->k, err);
            snprintf(n, sizeof(n), "%s.self_attn.v_proj.weight", p);
            if (st == LQ_OK)
                st = lin(m, n, vr, H, &L->v, err);
        }
        snprintf(n, sizeof(n), "%s.self_attn.o_proj.weight", p);
        if (st == LQ_OK)
            st = lin(m, n, H, (uint64_t)L->nq * L->dv, &L->o, err);
        if (st != LQ_OK)
            goto fail;
        if (!L->moe) {
            snprintf(n, sizeof(n), "%s.mlp.gate_proj.weight", p);
            st = lin(m, n, c->intermediate_size, H, &L->gate, err);
            snprintf(n, sizeof(n), "%s.mlp.up_proj.weight", p);
            if (st == LQ_OK)
                st = lin(m, n, c->intermediate_size, H, &L->up, err);
            snprintf(n, sizeof(n), "%s.mlp.down_proj.weight", p);
            if (st == LQ_OK)
                st = lin(m, n, H, c->intermediate_size, &L->down, err);
            if (st != LQ_OK)
                goto fail;
            continue;
        }
        uint32_t E = c->n_routed_experts, I = c->moe_intermediate_size;
        snprintf(n, sizeof(n), "%s.mlp.gate.weight", p);
        if ((st = vec(m->ck, n, (uint64_t)E * H, &L->router, err)) != LQ_OK)
            goto fail;
        snprintf(n, sizeof(n), "%s.mlp.gate.e_score_correction_bias", p);
        if ((st = vec(m->ck, n, E, &L->e_bias, err)) != LQ_OK)
            goto fail;
        L->eg = calloc(E, sizeof(rt_linear));
        L->eu = calloc(E, sizeof(rt_linear));
        L->ed = calloc(E, sizeof(rt_linear));
        if (!L->eg || !L->eu || !L->ed) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
            goto fail;
        }
        for (uint32_t e = 0; e < E && st == LQ_OK; e++) {
            snprintf(n, sizeof(n), "%s.mlp.experts.%u.gate_proj.weight", p, e);
            st = lin(m, n, I, H, &L->eg[e], err);
            snprintf(n, sizeof(n), "%s.mlp.experts.%u.up_proj.weight", p, e);
            if (st == LQ_OK)
                st = lin(m, n, I, H, &L->eu[e], err);
            snprintf(n, sizeof(n), "%s.mlp.experts.%u.down_proj.weight", p, e);
            if (st == LQ_OK)
                st = lin(m, n, H, I, &L->ed[e], err);
        }
        if (st != LQ_OK)
            goto fail;
    }
    *out = m;
    return LQ_OK;
fail:
    rt_model_close(m);
    return st;
}

/* ---- pieces ---- */


static lq_status attention(const rt_model *m, const rt_layer *L, float *kc, float *vc, size_t slots, size_t p0,
                           const float *xn, size_t n, const rt_opts *o, float *out, lq_error *err)
{
    uint64_t qr = (uint64_t)L->nq * L->dqk, kr = (uint64_t)L->nkv * L->dqk, vr = (uint64_t)L->nkv * L->dv;
    float *q = malloc(n * qr * sizeof(float)), *k = malloc(n * kr * sizeof(float)), *v = malloc(n * vr * sizeof(float));
    float *ctx = malloc(n * (uint64_t)L->nq * L->dv * sizeof(float));
    float *scores = malloc((p0 + n + 1) * sizeof(float));
    lq_status st = LQ_OK;
    if (!q || !k || !v || !ctx || !scores) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    if (L->fused) {
        /* De-interleave: shard s holds [q_s | k_s | v_s] (mimo_arch.md 3.3). */
        uint64_t rows = qr + kr + vr, S = m->qkv_shards;
        float *y = malloc(n * rows * sizeof(float));
        if (!y) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto done;
        }
        st = rt_linear_forward(&L->qkv, xn, n, 0, rows, y, rows, o->threads);
        uint64_t qs = qr / S, ks = kr / S, vs = vr / S;
        for (size_t t = 0; st == LQ_OK && t < n; t++)
            for (uint64_t s = 0; s < S; s++) {
                const float *base = y + t * rows + s * (qs + ks + vs);
                memcpy(q + t * qr + s * qs, base, qs * sizeof(float));
                memcpy(k + t * kr + s * ks, base + qs, ks * sizeof(float));
                memcpy(v + t * vr + s * vs, base + qs + ks, vs * sizeof(float));
            }
        free(y);
    } else {
        st = rt_linear_forward(&L->q, xn, n, 0, qr, q, qr, o->threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->k, xn, n, 0, kr, k, kr, o->threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->v, xn, n, 0, vr, v, vr, o->threads);
    }
    if (st != LQ_OK) {
        lq_fail(err, st, NULL, L->fused ? L->qkv.name : L->q.name, "RT_FORMAT", "projection failed");
        goto done;
    }
    float vscale = (float)m->cfg.attention_value_scale;
    for (size_t t = 0; t < n; t++) {
        for (uint32_t h = 0; h < L->nq; h++)
            rt_rope(q + t * qr + (uint64_t)h * L->dqk, L->rope_dim, L->theta, p0 + t);
        for (uint32_t h = 0; h < L->nkv; h++)
            rt_rope(k + t * kr + (uint64_t)h * L->dqk, L->rope_dim, L->theta, p0 + t);
        for (uint64_t i = 0; i < vr; i++)
            v[t * vr + i] *= vscale;
    }
    /* Into the cache at absolute positions p0..p0+n-1 (slot = position mod slots: a ring on SWA
     * layers, sized so that neither this chunk nor a rollback overwrites a position still in some
     * query's window); attention reads keys and values from it. */
    for (size_t t = 0; t < n; t++) {
        memcpy(kc + ((p0 + t) % slots) * kr, k + t * kr, kr * sizeof(float));
        memcpy(vc + ((p0 + t) % slots) * vr, v + t * vr, vr * sizeof(float));
    }
    float scale = 1.0f / sqrtf((float)L->dqk);
    uint32_t group = L->nq / L->nkv, W = m->cfg.sliding_window;
    for (size_t ti = 0; ti < n; ti++) {
        size_t i = p0 + ti, lo = 0; /* absolute position of this query */
        if (L->swa) {
            size_t span = o->window_inclusive ? (size_t)W + 1 : (size_t)W;
            lo = i + 1 > span ? i + 1 - span : 0;
        }
        for (uint32_t h = 0; h < L->nq; h++) {
            const float *qi = q + ti * qr + (uint64_t)h * L->dqk;
            uint32_t g = h / group;
            float mx = L->sinks ? L->sinks[h] : -INFINITY;
            for (size_t j = lo; j <= i; j++) {
                const float *kj = kc + (j % slots) * kr + (uint64_t)g * L->dqk;
                float s = 0;
                for (uint32_t d = 0; d < L->dqk; d++)
                    s += qi[d] * kj[d];
                scores[j - lo] = s * scale;
                mx = scores[j - lo] > mx ? scores[j - lo] : mx;
            }
            double den = L->sinks ? exp((double)L->sinks[h] - mx) : 0.0;
            for (size_t j = lo; j <= i; j++) {
                scores[j - lo] = expf(scores[j - lo] - mx);
                den += scores[j - lo];
            }
            float *ci = ctx + ti * (uint64_t)L->nq * L->dv + (uint64_t)h * L->dv;
            for (uint32_t d = 0; d < L->dv; d++)
                ci[d] = 0;
            for (size_t j = lo; j <= i; j++) {
                float p = (float)(scores[j - lo] / den);
                const float *vj = vc + (j % slots) * vr + (uint64_t)g * L->dv;
                for (uint32_t d = 0; d < L->dv; d++)
                    ci[d] += p * vj[d];
            }
        }
    }
    st = rt_linear_forward(&L->o, ctx, n, 0, m->cfg.hidden_size, out, m->cfg.hidden_size, o->threads);
done:
    free(q), free(k), free(v), free(ctx), free(scores);
    return st;
}

static lq_status moe(const rt_model *m, const rt_layer *L, const float *xn, size_t n, const rt_opts *o, float *out,
                     lq_error *err)
{
    const lq_mimo_config *c = &m->cfg;
    uint32_t E = c->n_routed_experts, K = c->num_experts_per_tok;
    uint64_t H = c->hidden_size;
    float *score = malloc(n * E * sizeof(float)), *wsel = malloc(n * K * sizeof(float));
    int *sel = malloc(n * K * sizeof(int));
    size_t *tok = malloc(n * sizeof(size_t));
    float *xe = malloc(n * H * sizeof(float)), *ye = malloc(n * H * sizeof(float));
    lq_status st = score && wsel && sel && tok && xe && ye ? LQ_OK : LQ_ERR_NO_MEMORY;
    if (st != LQ_OK) {
        lq_fail(err, st, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    for (size_t t = 0; t < n; t++) {
        const float *x = xn + t * H;
        for (uint32_t e = 0; e < E; e++) {
            float s = 0;
            for (uint64_t h = 0; h < H; h++)
                s += x[h] * L->router[(uint64_t)e * H + h];
            score[t * E + e] = 1.0f / (1.0f + expf(-s));
        }
        /* top-k by score + bias (selection only); weights are the unbiased scores, normalised */
        char taken[1024] = {0};
        float sum = 0;
        for (uint32_t k = 0; k < K; k++) {
            int best = -1;
            float bv = -INFINITY;
            for (uint32_t e = 0; e < E && e < 1024; e++) {
                float ch = score[t * E + e] + L->e_bias[e];
                if (!taken[e] && ch > bv) {
                    bv = ch;
                    best = (int)e;
                }
            }
            taken[best] = 1;
            sel[t * K + k] = best;
            wsel[t * K + k] = score[t * E + best];
            sum += score[t * E + best];
        }
        for (uint32_t k = 0; k < K; k++) {
            if (c->norm_topk_prob)
                wsel[t * K + k] /= (sum + 1e-20f);
            wsel[t * K + k] *= (float)c->routed_scaling_factor;
        }
    }
    memset(out, 0, n * H * sizeof(float));
    /* Expert by expert over the tokens routed to it. */
    for (uint32_t e = 0; e < E && st == LQ_OK; e++) {
        size_t cnt = 0;
        for (size_t t = 0; t < n; t++)
            for (uint32_t k = 0; k < K; k++)
                if (sel[t * K + k] == (int)e) {
                    memcpy(xe + cnt * H, xn + t * H, H * sizeof(float));
                    tok[cnt++] = t * K + k;
                }
        if (!cnt)
            continue;
        st = rt_swiglu(&L->eg[e], &L->eu[e], &L->ed[e], xe, cnt, o->threads, ye);
        for (size_t i = 0; st == LQ_OK && i < cnt; i++) {
            size_t t = tok[i] / K;
            float w = wsel[tok[i]];
            for (uint64_t h = 0; h < H; h++)
                out[t * H + h] += w * ye[i * H + h];
        }
    }
    if (st != LQ_OK)
        lq_fail(err, st, NULL, NULL, "RT_FORMAT", "expert forward failed");
done:
    free(score), free(wsel), free(sel), free(tok), free(xe), free(ye);
    return st;
}

lq_status rt_cache_new(const rt_model *m, size_t max_tokens, rt_cache **out, lq_error *err)
{
    return rt_cache_new_ex(m, max_tokens, 0, out, err);
}

lq_status rt_cache_new_ex(const rt_model *m, size_t max_tokens, int no_ring, rt_cache **out, lq_error *err)
{
    *out = NULL;
    const lq_mimo_config *c = &m->cfg;
    rt_cache *k = calloc(1, sizeof(*k));
    if (!k)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    k->cap = max_tokens;
    k->layers = c->num_hidden_layers;
    k->k = calloc(k->layers, sizeof(float *));
    k->v = calloc(k->layers, sizeof(float *));
    k->kr = calloc(k->layers, sizeof(uint64_t));
    k->vr = calloc(k->layers, sizeof(uint64_t));
    k->slots = calloc(k->layers, sizeof(size_t));
    int ok = k->k && k->v && k->kr && k->vr && k->slots;
    /* SWA ring: the widest window (W + 1 under the inclusive convention) plus the most positions one
     * chunk writes or one rollback removes. */
    size_t ring = (size_t)c->sliding_window + 1 + (RT_STEP_CHUNK > RT_MAX_ROLLBACK ? RT_STEP_CHUNK : RT_MAX_ROLLBACK);
    for (uint32_t l = 0; ok && l < k->layers; l++) {
        k->kr[l] = (uint64_t)m->L[l].nkv * m->L[l].dqk;
        k->vr[l] = (uint64_t)m->L[l].nkv * m->L[l].dv;
        k->slots[l] = m->L[l].swa && !no_ring && ring < max_tokens ? ring : max_tokens;
        k->k[l] = malloc(k->slots[l] * k->kr[l] * sizeof(float) + 1);
        k->v[l] = malloc(k->slots[l] * k->vr[l] * sizeof(float) + 1);
        ok = k->k[l] && k->v[l];
    }
    if (!ok) {
        rt_cache_free(k);
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "cannot allocate a cache of %zu tokens", max_tokens);
    }
    *out = k;
    return LQ_OK;
}

size_t rt_cache_bytes(const rt_cache *c)
{
    size_t b = 0;
    for (uint32_t l = 0; c && l < c->layers; l++)
        b += c->slots[l] * (c->kr[l] + c->vr[l]) * sizeof(float);
    return b;
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

/* One chunk of at most RT_STEP_CHUNK tokens: positions kv->len.. kv->len + n - 1; outputs at row
 * offset off of a call of total rows ld. */
static lq_status step_chunk(const rt_model *m, rt_cache *kv, const int32_t *tokens, size_t n, size_t off, size_t ld,
                            const rt_opts *o, const rt_out *out, lq_error *err)
{
    size_t p0 = kv->len;
    const lq_mimo_config *c = &m->cfg;
    uint64_t H = c->hidden_size;
    double t_all = now_s(), t0, spent = 0;
    float *h = malloc(n * H * sizeof(float)), *xn = malloc(n * H * sizeof(float)), *y = malloc(n * H * sizeof(float));
    lq_status st = h && xn && y ? LQ_OK : LQ_ERR_NO_MEMORY;
    if (st != LQ_OK) {
        lq_fail(err, st, NULL, NULL, NULL, "out of memory");
        goto done;
    }
    for (size_t t = 0; t < n && st == LQ_OK; t++) {
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= c->vocab_size) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TOKEN", "token %d outside the vocabulary of %u",
                         tokens[t], c->vocab_size);
            break;
        }
        st = rt_linear_rows(&m->embed, (uint64_t)tokens[t], (uint64_t)tokens[t] + 1, h + t * H);
    }
    if (st == LQ_OK && out->hidden)
        memcpy(out->hidden + off * H, h, n * H * sizeof(float));
    for (uint32_t li = 0; li < c->num_hidden_layers && st == LQ_OK; li++) {
        const rt_layer *L = &m->L[li];
        for (size_t t = 0; t < n; t++)
            rt_rmsnorm(h + t * H, L->in_norm, H, c->rms_norm_eps, xn + t * H);
        t0 = now_s();
        st = attention(m, L, kv->k[li], kv->v[li], kv->slots[li], p0, xn, n, o, y, err);
        if (o->prof)
            o->prof->s[RT_PROF_ATTN] += now_s() - t0, spent += now_s() - t0;
        if (st != LQ_OK)
            break;
        for (uint64_t i = 0; i < n * H; i++)
            h[i] += y[i];
        for (size_t t = 0; t < n; t++)
            rt_rmsnorm(h + t * H, L->post_norm, H, c->rms_norm_eps, xn + t * H);
        t0 = now_s();
        st = L->moe ? moe(m, L, xn, n, o, y, err) : rt_swiglu(&L->gate, &L->up, &L->down, xn, n, o->threads, y);
        if (o->prof)
            o->prof->s[L->moe ? RT_PROF_MOE : RT_PROF_DENSE] += now_s() - t0, spent += now_s() - t0;
        if (st != LQ_OK)
            break;
        for (uint64_t i = 0; i < n * H; i++)
            h[i] += y[i];
        if (out->hidden && li + 1 < c->num_hidden_layers)
            memcpy(out->hidden + ((uint64_t)(li + 1) * ld + off) * H, h, n * H * sizeof(float));
        for (uint32_t ti = 0; ti < out->ntaps; ti++)
            if (out->taps[ti] == li)
                for (size_t t = 0; t < n; t++)
                    memcpy(out->tap_out + ((off + t) * out->ntaps + ti) * H, h + t * H, H * sizeof(float));
    }
    if (st == LQ_OK) {
        for (size_t t = 0; t < n; t++)
            rt_rmsnorm(h + t * H, m->final_norm, H, c->rms_norm_eps, xn + t * H);
        if (out->hidden)
            memcpy(out->hidden + ((uint64_t)c->num_hidden_layers * ld + off) * H, xn, n * H * sizeof(float));
        t0 = now_s();
        if (out->logits)
            st = rt_linear_forward(&m->lm_head, xn, n, 0, c->vocab_size, out->logits + off * c->vocab_size,
                                   c->vocab_size, o->threads);
        if (o->prof)
            o->prof->s[RT_PROF_HEAD] += now_s() - t0, spent += now_s() - t0;
    }
    if (o->prof)
        o->prof->s[RT_PROF_OTHER] += now_s() - t_all - spent;
    if (st == LQ_OK)
        kv->len += n;
done:
    free(h), free(xn), free(y);
    return st;
}

lq_status rt_step_ex(const rt_model *m, rt_cache *kv, const int32_t *tokens, size_t n, const rt_opts *o,
                     const rt_out *out, lq_error *err)
{
    if (!kv || kv->len + n > kv->cap)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_CACHE",
                       "the cache holds %zu of %zu positions; %zu more do not fit", kv ? kv->len : 0, kv ? kv->cap : 0, n);
    for (uint32_t i = 0; i < out->ntaps; i++)
        if (out->taps[i] >= m->cfg.num_hidden_layers || !out->tap_out)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP", "tap layer %u outside the model's %u layers",
                           out->taps[i], m->cfg.num_hidden_layers);
    for (size_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= m->cfg.vocab_size)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TOKEN", "token %d (input %zu) outside the vocabulary of %u",
                           tokens[t], t, m->cfg.vocab_size);
    rt_opts dflt = {1, 0, NULL};
    if (!o)
        o = &dflt;
    size_t len0 = kv->len;
    lq_status st = LQ_OK;
    for (size_t off = 0; off < n && st == LQ_OK; off += RT_STEP_CHUNK)
        st = step_chunk(m, kv, tokens + off, n - off < RT_STEP_CHUNK ? n - off : RT_STEP_CHUNK, off, n, o, out, err);
    if (st != LQ_OK)
        kv->len = len0; /* a failed step leaves the cache as it was (positions beyond len are never read) */
    return st;
}

lq_status rt_step(const rt_model *m, rt_cache *kv, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                  float *hidden, lq_error *err)
{
    rt_out out = {logits, hidden, NULL, 0, NULL};
    return rt_step_ex(m, kv, tokens, n, o, &out, err);
}
