/* The CPU backend (backend.h): the MiMo forward written from reference/mimo_arch.md section 3 and
 * the DFlash drafter from reference/dflash.md 1, in fp32, weights decoded on the fly from their
 * stored format. It is the oracle the CUDA backend is held to.
 *
 * Target: pre-norm decoder layers; attention with q/k head dim 192 and v 128, RoPE (rotate-half)
 * on the first rope_dim dims with the layer type's theta, v scaled by attention_value_scale, a
 * causal mask with a sliding window and a per-head sink logit on SWA layers; a dense SwiGLU MLP on
 * dense layers and on MoE layers the sigmoid router (ops.h) weighting the experts' SwiGLU outputs;
 * final RMSNorm and an untied lm_head.
 *
 * Drafter: fc + hidden_norm over the target's taps, context K/V per draft layer at real positions,
 * block [anchor, MASK x k] with the drafter's window, sinks, value scale, partial RoPE, q/k norm,
 * the target's embedding and lm_head.
 *
 * Every buffer a step uses is allocated with its context (ctx_new / dctx_new) or is a per-thread
 * decode buffer kept for the thread's life: a warm step allocates nothing. Work is spread over the
 * process pool (libquant/pool.h) by output rows and by (row, head) pairs, never by summation order,
 * so results do not depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/backend.h"
#include "runtime/cpu/linear.h"
#include "runtime/cpu/ops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The rule of a failure inside a step: its own for out of memory and non-finite values, else a
 * format error of the weight being read. */
#define RULE(st) ((st) == LQ_ERR_NO_MEMORY ? "RT_NO_MEMORY" : (st) == LQ_ERR_NUMERIC ? "RT_NONFINITE" : "RT_FORMAT")

static uint64_t umax(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* A small stored tensor decoded to f32 (NULL for an absent one: n == 0). */
static lq_status decode_vec(const rt_vec *v, float **out, lq_error *err)
{
    *out = NULL;
    if (!v->n)
        return LQ_OK;
    *out = malloc(v->n * sizeof(float));
    if (!*out)
        return lq_fail(err, LQ_ERR_NO_MEMORY, v->file, v->name, NULL, "out of memory");
    lq_status st = lq_to_f32(v->dtype, v->data, (size_t)v->n, *out);
    if (st != LQ_OK)
        return lq_fail(err, st, v->file, v->name, RULE(st), "cannot decode %s", lq_dtype_name(v->dtype));
    return LQ_OK;
}

/* ================================ target ================================ */

typedef struct cpu_layer {
    float *in_norm, *post_norm, *sinks, *router, *e_bias;
} cpu_layer;

typedef struct cpu_be {
    const rt_weights *w;
    const lq_mimo_config *c;
    cpu_layer *L;
    float *final_norm;
    int threads, window_inclusive;
    rt_prof *prof;
    uint64_t mq, mk, mv, matt, mqkv, mI; /* widest per-row q, k, v, attention output, fused qkv, MLP */
} cpu_be;

static void cpu_close(void *p)
{
    cpu_be *be = p;
    if (!be)
        return;
    for (uint32_t i = 0; be->L && i < be->c->num_hidden_layers; i++) {
        cpu_layer *L = &be->L[i];
        free(L->in_norm), free(L->post_norm), free(L->sinks), free(L->router), free(L->e_bias);
    }
    free(be->L), free(be->final_norm), free(be);
}

static lq_status cpu_open(const rt_weights *w, const rt_model_opts *o, void **out, lq_error *err)
{
    *out = NULL;
    cpu_be *be = calloc(1, sizeof(*be));
    if (!be)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    be->w = w, be->c = &w->cfg;
    be->threads = o && o->threads > 0 ? o->threads : 1;
    be->window_inclusive = o ? o->window_inclusive : 0;
    be->prof = o ? o->prof : NULL;
    const lq_mimo_config *c = be->c;
    lq_status st = decode_vec(&w->final_norm, &be->final_norm, err);
    be->L = calloc(c->num_hidden_layers, sizeof(cpu_layer));
    if (st == LQ_OK && !be->L)
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    be->mI = c->intermediate_size > c->moe_intermediate_size ? c->intermediate_size : c->moe_intermediate_size;
    for (uint32_t i = 0; st == LQ_OK && i < c->num_hidden_layers; i++) {
        const rt_wlayer *W = &w->L[i];
        cpu_layer *L = &be->L[i];
        if ((st = decode_vec(&W->in_norm, &L->in_norm, err)) != LQ_OK ||
            (st = decode_vec(&W->post_norm, &L->post_norm, err)) != LQ_OK ||
            (st = decode_vec(&W->sinks, &L->sinks, err)) != LQ_OK ||
            (st = decode_vec(&W->router, &L->router, err)) != LQ_OK ||
            (st = decode_vec(&W->e_bias, &L->e_bias, err)) != LQ_OK)
            break;
        uint64_t qr = (uint64_t)W->nq * W->dqk, kr = (uint64_t)W->nkv * W->dqk, vr = (uint64_t)W->nkv * W->dv;
        be->mq = umax(be->mq, qr), be->mk = umax(be->mk, kr), be->mv = umax(be->mv, vr);
        be->matt = umax(be->matt, (uint64_t)W->nq * W->dv), be->mqkv = umax(be->mqkv, qr + kr + vr);
    }
    if (st != LQ_OK) {
        cpu_close(be);
        return st;
    }
    *out = be;
    return LQ_OK;
}

typedef struct cpu_ctx {
    const cpu_be *be;
    size_t cap;
    uint32_t layers;
    rt_kv *kv;
    /* workspace of RT_STEP_CHUNK rows */
    float *h, *xn, *y, *q, *k, *v, *att, *qkv, *a, *b, *xe, *ye;
    float *escore, *wsel, *gscore;
    int32_t *sel;
    size_t *tok;
    uint8_t *taken;
    /* kept logits of the last step and sampling scratch */
    float *keep;
    size_t nkeep;
    double *probs;
    uint32_t *idx;
    /* tap rows of the last step */
    uint32_t ntaps, taps[64];
    float *tap;
    size_t ntap_rows;
} cpu_ctx;

static void cpu_ctx_free(void *p)
{
    cpu_ctx *x = p;
    if (!x)
        return;
    for (uint32_t l = 0; x->kv && l < x->layers; l++)
        rt_kv_free(&x->kv[l]);
    free(x->kv);
    float *fs[] = {x->h, x->xn, x->y, x->q, x->k, x->v, x->att, x->qkv, x->a, x->b, x->xe, x->ye, x->escore, x->wsel,
                   x->gscore, x->keep, x->tap};
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
        free(fs[i]);
    free(x->sel), free(x->tok), free(x->taken), free(x->probs), free(x->idx);
    free(x);
}

static lq_status cpu_ctx_new(void *p, size_t max_tokens, const rt_cache_opts *o, void **out, lq_error *err)
{
    const cpu_be *be = p;
    const lq_mimo_config *c = be->c;
    *out = NULL;
    cpu_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    x->be = be;
    x->cap = max_tokens;
    x->layers = c->num_hidden_layers;
    x->kv = calloc(x->layers, sizeof(rt_kv));
    int ok = x->kv != NULL;
    /* SWA ring: the widest window (W + 1 under the inclusive convention) plus the most positions one
     * chunk writes or one rollback removes. */
    size_t ring = (size_t)c->sliding_window + 1 + (RT_STEP_CHUNK > RT_MAX_ROLLBACK ? RT_STEP_CHUNK : RT_MAX_ROLLBACK);
    for (uint32_t l = 0; ok && l < x->layers; l++) {
        const rt_wlayer *L = &be->w->L[l];
        size_t slots = L->swa && !(o && o->no_ring) && ring < max_tokens ? ring : max_tokens;
        ok = rt_kv_alloc(&x->kv[l], slots, (uint64_t)L->nkv * L->dqk, (uint64_t)L->nkv * L->dv) == LQ_OK;
    }
    const size_t R = RT_STEP_CHUNK, H = c->hidden_size, V = c->vocab_size;
    const uint32_t E = c->n_routed_experts ? c->n_routed_experts : 1, K = c->num_experts_per_tok ? c->num_experts_per_tok : 1;
#define A(ptr, count) ok = ok && ((ptr) = malloc((size_t)(count) * sizeof(*(ptr)) + 1)) != NULL
    A(x->h, R * H), A(x->xn, R * H), A(x->y, R * H), A(x->q, R * be->mq), A(x->k, R * be->mk), A(x->v, R * be->mv);
    A(x->att, R * be->matt), A(x->qkv, R * be->mqkv), A(x->a, R * be->mI), A(x->b, R * be->mI);
    A(x->xe, R * H), A(x->ye, R * H);
    A(x->escore, E), A(x->wsel, R * K), A(x->gscore, E), A(x->sel, R * K), A(x->tok, R * K), A(x->taken, E);
    A(x->keep, RT_KEEP_ROWS * V), A(x->probs, V), A(x->idx, V);
    if (o && o->ntaps) {
        if (o->ntaps > 64 || !o->taps) {
            cpu_ctx_free(x);
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP", "%u taps (at most 64)", o->ntaps);
        }
        x->ntaps = o->ntaps;
        memcpy(x->taps, o->taps, o->ntaps * sizeof(uint32_t));
        A(x->tap, R * o->ntaps * H);
    }
#undef A
    if (!ok) {
        cpu_ctx_free(x);
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "RT_NO_MEMORY", "cannot allocate a context of %zu tokens",
                       max_tokens);
    }
    *out = x;
    return LQ_OK;
}

static size_t cpu_ctx_bytes(const void *p)
{
    const cpu_ctx *x = p;
    size_t b = 0;
    for (uint32_t l = 0; l < x->layers; l++)
        b += x->kv[l].slots * (x->kv[l].kr + x->kv[l].vr) * sizeof(float);
    return b;
}

static lq_status cpu_ctx_copy(void *d, const void *s, size_t len)
{
    cpu_ctx *dst = d;
    const cpu_ctx *src = s;
    if (dst->layers != src->layers || dst->cap != src->cap)
        return LQ_ERR_INVALID_ARGUMENT;
    for (uint32_t l = 0; l < src->layers; l++) {
        const rt_kv *a = &src->kv[l];
        if (dst->kv[l].slots != a->slots)
            return LQ_ERR_INVALID_ARGUMENT;
        size_t used = len < a->slots ? len : a->slots;
        memcpy(dst->kv[l].k, a->k, used * a->kr * sizeof(float));
        memcpy(dst->kv[l].v, a->v, used * a->vr * sizeof(float));
    }
    return LQ_OK;
}

/* ---- attention over (row, head) pairs on the pool ---- */

typedef struct att_job {
    const rt_kv *kv;
    const float *q, *sinks;
    float *out;
    size_t p0, n, parts, span, cap; /* span: keys visible back from a query (0 = all); cap: the context's */
    uint32_t nq, group, dqk, dv;
    uint64_t qr;
    float scale;
    lq_status st[64];
} att_job;

static void att_task(void *ctx, size_t part)
{
    att_job *j = ctx;
    size_t pairs = j->n * j->nq, b = pairs * part / j->parts, e = pairs * (part + 1) / j->parts;
    float *sc = rt_thread_buf(1, j->cap + 1); /* sized by the context, so a growing one never reallocates */
    j->st[part] = sc ? LQ_OK : LQ_ERR_NO_MEMORY;
    for (size_t pr = b; sc && pr < e; pr++) {
        size_t ti = pr / j->nq, i = j->p0 + ti;
        uint32_t h = (uint32_t)(pr % j->nq);
        size_t lo = j->span && i + 1 > j->span ? i + 1 - j->span : 0;
        rt_attend(j->q + ti * j->qr + (uint64_t)h * j->dqk, j->kv, lo, i + 1, h / j->group, j->dqk, j->dv, NULL, NULL,
                  0, 0, 0, NULL, j->scale, j->sinks ? &j->sinks[h] : NULL, sc,
                  j->out + ti * (uint64_t)j->nq * j->dv + (uint64_t)h * j->dv);
    }
}

static lq_status attention(const cpu_be *be, const rt_wlayer *L, const cpu_layer *CL, cpu_ctx *x, rt_kv *kv, size_t p0,
                           size_t n, int threads, lq_error *err)
{
    const lq_mimo_config *c = be->c;
    uint64_t qr = (uint64_t)L->nq * L->dqk, kr = (uint64_t)L->nkv * L->dqk, vr = (uint64_t)L->nkv * L->dv;
    float *q = x->q, *k = x->k, *v = x->v, *xn = x->xn;
    lq_status st;
    if (L->fused) {
        /* De-interleave: shard s holds [q_s | k_s | v_s] (mimo_arch.md 3.3). */
        uint64_t rows = qr + kr + vr, S = be->w->qkv_shards;
        float *y = x->qkv;
        st = rt_linear_forward(&L->qkv, xn, n, 0, rows, y, rows, threads);
        uint64_t qs = qr / S, ks = kr / S, vs = vr / S;
        for (size_t t = 0; st == LQ_OK && t < n; t++)
            for (uint64_t s = 0; s < S; s++) {
                const float *base = y + t * rows + s * (qs + ks + vs);
                memcpy(q + t * qr + s * qs, base, qs * sizeof(float));
                memcpy(k + t * kr + s * ks, base + qs, ks * sizeof(float));
                memcpy(v + t * vr + s * vs, base + qs + ks, vs * sizeof(float));
            }
    } else {
        st = rt_linear_forward(&L->q, xn, n, 0, qr, q, qr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->k, xn, n, 0, kr, k, kr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&L->v, xn, n, 0, vr, v, vr, threads);
    }
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, L->fused ? L->qkv.name : L->q.name, RULE(st), "projection failed");
    float vscale = (float)c->attention_value_scale;
    for (size_t t = 0; t < n; t++) {
        for (uint32_t h = 0; h < L->nq; h++)
            rt_rope(q + t * qr + (uint64_t)h * L->dqk, L->rope_dim, L->theta, p0 + t);
        for (uint32_t h = 0; h < L->nkv; h++)
            rt_rope(k + t * kr + (uint64_t)h * L->dqk, L->rope_dim, L->theta, p0 + t);
        for (uint64_t i = 0; i < vr; i++)
            v[t * vr + i] *= vscale;
    }
    /* Into the ring at absolute positions p0..p0+n-1 (sized so that neither this chunk nor a
     * rollback overwrites a position still in some query's window); attention reads from it. */
    for (size_t t = 0; t < n; t++) {
        memcpy(rt_kv_key(kv, p0 + t), k + t * kr, kr * sizeof(float));
        memcpy(rt_kv_val(kv, p0 + t), v + t * vr, vr * sizeof(float));
    }
    att_job j = {0};
    j.kv = kv, j.q = q, j.sinks = CL->sinks, j.out = x->att, j.p0 = p0, j.n = n, j.cap = x->cap;
    j.span = L->swa ? (be->window_inclusive ? (size_t)c->sliding_window + 1 : (size_t)c->sliding_window) : 0;
    j.nq = L->nq, j.group = L->nq / L->nkv, j.dqk = L->dqk, j.dv = L->dv, j.qr = qr;
    j.scale = 1.0f / sqrtf((float)L->dqk);
    size_t keys = j.span && j.span < p0 + n ? j.span : p0 + n;
    j.parts = rt_parts((uint64_t)n * L->nq * keys * (L->dqk + L->dv), threads);
    lq_parallel_for(j.parts, (int)j.parts, att_task, &j);
    for (size_t i = 0; i < j.parts; i++)
        if (j.st[i] != LQ_OK)
            return lq_fail(err, j.st[i], NULL, NULL, "RT_NO_MEMORY", "out of memory for attention scores");
    st = rt_linear_forward(&L->o, x->att, n, 0, c->hidden_size, x->y, c->hidden_size, threads);
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, L->o.name, RULE(st), "projection failed");
    return LQ_OK;
}

static lq_status moe(const cpu_be *be, const rt_wlayer *L, const cpu_layer *CL, cpu_ctx *x, size_t n, int32_t *route,
                     int threads, lq_error *err)
{
    const lq_mimo_config *c = be->c;
    uint32_t E = c->n_routed_experts, K = c->num_experts_per_tok;
    uint64_t H = c->hidden_size;
    rt_router r = {CL->router, CL->e_bias, E, K, c->n_group, c->topk_group, H, c->norm_topk_prob,
                   c->routed_scaling_factor};
    for (size_t t = 0; t < n; t++)
        rt_route(&r, x->xn + t * H, x->escore, x->taken, x->gscore, x->sel + t * K, x->wsel + t * K);
    if (route)
        memcpy(route, x->sel, n * K * sizeof(int32_t));
    float *out = x->y;
    memset(out, 0, n * H * sizeof(float));
    lq_status st = LQ_OK;
    /* Expert by expert over the tokens routed to it. */
    for (uint32_t e = 0; e < E && st == LQ_OK; e++) {
        size_t cnt = 0;
        for (size_t t = 0; t < n; t++)
            for (uint32_t k = 0; k < K; k++)
                if (x->sel[t * K + k] == (int32_t)e) {
                    memcpy(x->xe + cnt * H, x->xn + t * H, H * sizeof(float));
                    x->tok[cnt++] = t * K + k;
                }
        if (!cnt)
            continue;
        st = rt_swiglu(&L->eg[e], &L->eu[e], &L->ed[e], x->xe, cnt, threads, x->a, x->b, x->ye);
        for (size_t i = 0; st == LQ_OK && i < cnt; i++) {
            size_t t = x->tok[i] / K;
            float w = x->wsel[x->tok[i]];
            for (uint64_t h = 0; h < H; h++)
                out[t * H + h] += w * x->ye[i * H + h];
        }
    }
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, NULL, RULE(st), "expert forward failed");
    return LQ_OK;
}

static int all_finite(const float *p, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(p[i]) != 0;
    return ok;
}

/* One chunk of at most RT_STEP_CHUNK tokens at positions p0..p0+n-1, rows off.. of a step of ld. */
static lq_status chunk(cpu_be *be, cpu_ctx *x, size_t p0, const int32_t *tokens, size_t n, size_t off, size_t ld,
                       const rt_sel *sel, int threads, lq_error *err)
{
    const lq_mimo_config *c = be->c;
    const rt_weights *w = be->w;
    const uint64_t H = c->hidden_size, V = c->vocab_size;
    rt_prof *prof = be->prof;
    double t_all = now_s(), t0, spent = 0;
    float *h = x->h, *xn = x->xn, *y = x->y;
    lq_status st = LQ_OK;
    for (size_t t = 0; t < n && st == LQ_OK; t++)
        st = rt_linear_rows(&w->embed, (uint64_t)tokens[t], (uint64_t)tokens[t] + 1, h + t * H);
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, w->embed.name, RULE(st), "embedding failed");
    if (sel->hidden)
        memcpy(sel->hidden + off * H, h, n * H * sizeof(float));
    for (uint32_t li = 0; li < c->num_hidden_layers && st == LQ_OK; li++) {
        const rt_wlayer *L = &w->L[li];
        const cpu_layer *CL = &be->L[li];
        for (size_t t = 0; t < n; t++)
            rt_rmsnorm(h + t * H, CL->in_norm, H, c->rms_norm_eps, xn + t * H);
        t0 = now_s();
        st = attention(be, L, CL, x, &x->kv[li], p0, n, threads, err);
        if (prof)
            prof->s[RT_PROF_ATTN] += now_s() - t0, spent += now_s() - t0;
        if (st != LQ_OK)
            break;
        for (uint64_t i = 0; i < n * H; i++)
            h[i] += y[i];
        for (size_t t = 0; t < n; t++)
            rt_rmsnorm(h + t * H, CL->post_norm, H, c->rms_norm_eps, xn + t * H);
        t0 = now_s();
        int32_t *route = sel->experts ? sel->experts + ((uint64_t)li * ld + off) * (c->num_experts_per_tok ? c->num_experts_per_tok : 1) : NULL;
        if (route && !L->moe)
            for (size_t i = 0; i < n * (c->num_experts_per_tok ? c->num_experts_per_tok : 1); i++)
                route[i] = -1;
        if (L->moe)
            st = moe(be, L, CL, x, n, route, threads, err);
        else if ((st = rt_swiglu(&L->gate, &L->up, &L->down, xn, n, threads, x->a, x->b, y)) != LQ_OK)
            lq_fail(err, st, NULL, L->gate.name, RULE(st), "MLP failed");
        if (prof)
            prof->s[L->moe ? RT_PROF_MOE : RT_PROF_DENSE] += now_s() - t0, spent += now_s() - t0;
        if (st != LQ_OK)
            break;
        for (uint64_t i = 0; i < n * H; i++)
            h[i] += y[i];
        if (sel->hidden && li + 1 < c->num_hidden_layers)
            memcpy(sel->hidden + ((uint64_t)(li + 1) * ld + off) * H, h, n * H * sizeof(float));
        for (uint32_t ti = 0; ti < x->ntaps; ti++)
            if (x->taps[ti] == li)
                for (size_t t = 0; t < n; t++) {
                    if (sel->taps)
                        memcpy(x->tap + ((off + t) * x->ntaps + ti) * H, h + t * H, H * sizeof(float));
                    if (sel->tap_out)
                        memcpy(sel->tap_out + ((off + t) * x->ntaps + ti) * H, h + t * H, H * sizeof(float));
                }
    }
    if (st != LQ_OK)
        return st;
    /* rows [first, n) of this chunk are selected for logits */
    size_t sel0 = ld - sel->rows, first = sel0 > off ? sel0 - off : 0;
    if (first > n)
        first = n;
    size_t norm0 = sel->hidden ? 0 : first;
    for (size_t t = norm0; t < n; t++)
        rt_rmsnorm(h + t * H, be->final_norm, H, c->rms_norm_eps, xn + t * H);
    if (sel->hidden)
        memcpy(sel->hidden + ((uint64_t)c->num_hidden_layers * ld + off) * H, xn, n * H * sizeof(float));
    t0 = now_s();
    if (first < n) {
        size_t r0 = off + first - sel0, nr = n - first; /* selected row index of the chunk's first */
        float *dst = sel->rows <= RT_KEEP_ROWS ? x->keep + r0 * V : sel->logits + r0 * V;
        st = rt_linear_forward(&w->lm_head, xn + first * H, nr, 0, V, dst, V, threads);
        if (st != LQ_OK)
            return lq_fail(err, st, NULL, w->lm_head.name, RULE(st), "lm_head failed");
        for (size_t r = 0; r < nr; r++)
            if (!all_finite(dst + r * V, V))
                return lq_fail(err, LQ_ERR_NUMERIC, lq_ckpt_dir(w->ck), NULL, "RT_NONFINITE",
                               "non-finite logits at position %zu: the weights or activations overflow",
                               p0 + first + r);
        if (sel->rows <= RT_KEEP_ROWS && sel->logits)
            memcpy(sel->logits + r0 * V, dst, nr * V * sizeof(float));
        if (sel->ids)
            for (size_t r = 0; r < nr; r++)
                sel->ids[r0 + r] = rt_argmax(dst + r * V, (uint32_t)V);
    }
    if (prof) {
        prof->s[RT_PROF_HEAD] += now_s() - t0, spent += now_s() - t0;
        prof->s[RT_PROF_OTHER] += now_s() - t_all - spent;
    }
    return LQ_OK;
}

static lq_status cpu_step(void *p, void *ctx, size_t pos, const int32_t *tokens, size_t n, const rt_sel *sel,
                          int threads, lq_error *err)
{
    cpu_be *be = p;
    cpu_ctx *x = ctx;
    x->nkeep = 0;
    x->ntap_rows = 0;
    lq_status st = LQ_OK;
    for (size_t off = 0; off < n && st == LQ_OK; off += RT_STEP_CHUNK)
        st = chunk(be, x, pos + off, tokens + off, n - off < RT_STEP_CHUNK ? n - off : RT_STEP_CHUNK, off, n, sel,
                   threads, err);
    if (st == LQ_OK) {
        x->nkeep = sel->rows <= RT_KEEP_ROWS ? sel->rows : 0;
        x->ntap_rows = sel->taps ? n : 0;
    }
    return st;
}

static lq_status cpu_sample(void *p, void *ctx, size_t row, const rt_sampling *s, rt_rng *r, int32_t *id, lq_error *err)
{
    cpu_ctx *x = ctx;
    uint32_t V = x->be->c->vocab_size;
    if (row >= x->nkeep)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "row %zu of %zu kept logits rows", row,
                       x->nkeep);
    *id = rt_sample(x->keep + row * V, V, s, r, x->probs, x->idx);
    return LQ_OK;
}

static lq_status cpu_accept(void *p, void *ctx, const int32_t *drafts, uint32_t k, const rt_sampling *s, rt_rng *r,
                            uint32_t *a, int32_t *bonus, lq_error *err)
{
    cpu_ctx *x = ctx;
    uint32_t V = x->be->c->vocab_size;
    if (k + 1 > x->nkeep)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "%u drafts against %zu kept logits rows", k,
                       x->nkeep);
    *a = rt_accept(x->keep, V, drafts, k, s, r, bonus, x->probs, x->idx);
    return LQ_OK;
}

/* ================================ drafter ================================ */

typedef struct cpu_dlayer {
    float *in_norm, *post_norm, *q_norm, *k_norm, *sinks, *qb, *kb, *vb, *ob;
} cpu_dlayer;

typedef struct cpu_drafter {
    const rt_dweights *dw;
    const cpu_be *be;
    const lq_drafter_config *c;
    uint32_t H, Ht, nh, nkv, d, dv, rd;
    double theta, vscale;
    float *hidden_norm, *norm, *mask_emb;
    cpu_dlayer *L;
} cpu_drafter;

static void cpu_drafter_close(void *p)
{
    cpu_drafter *D = p;
    if (!D)
        return;
    for (uint32_t i = 0; D->L && i < D->c->num_hidden_layers; i++) {
        cpu_dlayer *L = &D->L[i];
        free(L->in_norm), free(L->post_norm), free(L->q_norm), free(L->k_norm), free(L->sinks);
        free(L->qb), free(L->kb), free(L->vb), free(L->ob);
    }
    free(D->L), free(D->hidden_norm), free(D->norm), free(D->mask_emb), free(D);
}

static lq_status cpu_drafter_open(void *p, const rt_dweights *dw, const rt_drafter_opts *o, void **out, lq_error *err)
{
    *out = NULL;
    cpu_drafter *D = calloc(1, sizeof(*D));
    if (!D)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    const lq_drafter_config *c = D->c = dw->c;
    D->dw = dw, D->be = p;
    D->H = c->hidden_size, D->Ht = dw->Ht, D->nh = c->num_attention_heads, D->nkv = c->num_key_value_heads;
    D->d = c->head_dim, D->dv = c->v_head_dim, D->rd = c->rope_dim;
    D->theta = o && o->rope_theta > 0 ? o->rope_theta : c->rope_theta;
    D->vscale = c->attention_value_scale;
    lq_status st = decode_vec(&dw->hidden_norm, &D->hidden_norm, err);
    if (st == LQ_OK)
        st = decode_vec(&dw->norm, &D->norm, err);
    if (st == LQ_OK)
        st = decode_vec(&dw->mask_emb, &D->mask_emb, err);
    if (st == LQ_OK && !(D->L = calloc(c->num_hidden_layers, sizeof(cpu_dlayer))))
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    for (uint32_t i = 0; st == LQ_OK && i < c->num_hidden_layers; i++) {
        const rt_dwlayer *W = &dw->L[i];
        cpu_dlayer *L = &D->L[i];
        const rt_vec *src[] = {&W->in_norm, &W->post_norm, &W->q_norm, &W->k_norm, &W->sinks,
                               &W->qb,      &W->kb,        &W->vb,     &W->ob};
        float **dst[] = {&L->in_norm, &L->post_norm, &L->q_norm, &L->k_norm, &L->sinks,
                         &L->qb,      &L->kb,        &L->vb,     &L->ob};
        for (size_t j = 0; st == LQ_OK && j < sizeof(src) / sizeof(src[0]); j++)
            st = decode_vec(src[j], dst[j], err);
    }
    if (st != LQ_OK) {
        cpu_drafter_close(D);
        return st;
    }
    *out = D;
    return LQ_OK;
}

typedef struct cpu_dctx {
    const cpu_drafter *D;
    size_t cap;
    uint32_t layers;
    rt_kv *kv;
    /* workspace: RT_MAX_BLOCK rows */
    float *f, *x, *h, *u, *y, *q, *kb, *vb, *att, *a, *b, *lg, *sc, *tmp;
} cpu_dctx;

static void cpu_dctx_free(void *p)
{
    cpu_dctx *c = p;
    if (!c)
        return;
    for (uint32_t l = 0; c->kv && l < c->layers; l++)
        rt_kv_free(&c->kv[l]);
    free(c->kv);
    float *fs[] = {c->f, c->x, c->h, c->u, c->y, c->q, c->kb, c->vb, c->att, c->a, c->b, c->lg, c->sc, c->tmp};
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
        free(fs[i]);
    free(c);
}

static lq_status cpu_dctx_new(void *p, size_t max_tokens, void **out, lq_error *err)
{
    const cpu_drafter *D = p;
    *out = NULL;
    cpu_dctx *c = calloc(1, sizeof(*c));
    if (!c)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    c->D = D;
    c->cap = max_tokens;
    c->layers = D->c->num_hidden_layers;
    c->kv = calloc(c->layers, sizeof(rt_kv));
    int ok = c->kv != NULL;
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        /* A block row at p + r sees context c with p + r - c < W: never more than the last W. */
        size_t slots = D->dw->L[l].swa && D->c->window && D->c->window < max_tokens ? D->c->window : max_tokens;
        ok = rt_kv_alloc(&c->kv[l], slots, (uint64_t)D->nkv * D->d, (uint64_t)D->nkv * D->dv) == LQ_OK;
    }
    const size_t R = RT_MAX_BLOCK, H = D->H, V = D->be->c->vocab_size, I = D->c->intermediate_size;
    const uint64_t qr = (uint64_t)D->nh * D->d, kr = (uint64_t)D->nkv * D->d, vr = (uint64_t)D->nkv * D->dv;
#define A(ptr, count) ok = ok && ((ptr) = malloc((size_t)(count) * sizeof(float) + 1)) != NULL
    A(c->f, R * H), A(c->x, R * H), A(c->h, R * H), A(c->u, R * H), A(c->y, R * H);
    A(c->q, R * qr), A(c->kb, R * kr), A(c->vb, R * vr), A(c->att, R * D->nh * D->dv), A(c->a, R * I), A(c->b, R * I);
    A(c->lg, (R - 1) * V), A(c->sc, max_tokens + R + 8), A(c->tmp, D->d);
#undef A
    if (!ok) {
        cpu_dctx_free(c);
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "RT_NO_MEMORY", "cannot allocate a draft context of %zu tokens",
                       max_tokens);
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
static void norm_rope(const cpu_drafter *D, float *x, size_t n, uint32_t heads, const float *w, size_t pos0, float *tmp)
{
    for (size_t t = 0; t < n; t++)
        for (uint32_t h = 0; h < heads; h++) {
            float *xh = x + (t * heads + h) * D->d;
            rt_rmsnorm(xh, w, D->d, D->c->rms_norm_eps, tmp);
            memcpy(xh, tmp, D->d * sizeof(float));
            rt_rope(xh, D->rd, D->theta, pos0 + t);
        }
}

static lq_status cpu_ingest(void *p, void *dctx, size_t pos, const float *taps, const void *tctx, size_t row0, size_t n,
                            float *ctx_out, int threads, lq_error *err)
{
    const cpu_drafter *D = p;
    cpu_dctx *c = dctx;
    const uint64_t H = D->H, kr = (uint64_t)D->nkv * D->d, vr = (uint64_t)D->nkv * D->dv;
    const uint64_t tw = (uint64_t)D->c->n_taps * D->Ht;
    if (!taps) {
        const cpu_ctx *x = tctx;
        if (x->ntaps != D->c->n_taps || memcmp(x->taps, D->c->taps, x->ntaps * sizeof(uint32_t)) ||
            row0 + n > x->ntap_rows)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP",
                           "rows %zu..%zu of %zu tap rows of other layers than the drafter's", row0, row0 + n,
                           x->ntap_rows);
        taps = x->tap + row0 * tw;
    }
    lq_status st = LQ_OK;
    /* RT_MAX_BLOCK rows at a time: every row is computed on its own, so the split does not show */
    for (size_t o0 = 0; st == LQ_OK && o0 < n; o0 += RT_MAX_BLOCK) {
        size_t m = n - o0 < RT_MAX_BLOCK ? n - o0 : RT_MAX_BLOCK, p0 = pos + o0;
        st = rt_linear_forward(&D->dw->fc, taps + o0 * tw, m, 0, H, c->f, H, threads);
        for (size_t t = 0; st == LQ_OK && t < m; t++)
            rt_rmsnorm(c->f + t * H, D->hidden_norm, H, D->c->rms_norm_eps, c->x + t * H);
        if (st == LQ_OK && ctx_out)
            memcpy(ctx_out + o0 * H, c->x, m * H * sizeof(float));
        for (uint32_t l = 0; st == LQ_OK && l < c->layers; l++) {
            const rt_dwlayer *W = &D->dw->L[l];
            const cpu_dlayer *L = &D->L[l];
            st = rt_linear_forward(&W->k, c->x, m, 0, kr, c->kb, kr, threads);
            if (st == LQ_OK)
                st = rt_linear_forward(&W->v, c->x, m, 0, vr, c->vb, vr, threads);
            if (st != LQ_OK)
                break;
            add_bias(c->kb, L->kb, m, kr);
            add_bias(c->vb, L->vb, m, vr);
            norm_rope(D, c->kb, m, D->nkv, L->k_norm, p0, c->tmp);
            for (size_t t = 0; t < m; t++) {
                for (uint64_t i = 0; i < vr; i++)
                    c->vb[t * vr + i] *= (float)D->vscale;
                memcpy(rt_kv_key(&c->kv[l], p0 + t), c->kb + t * kr, kr * sizeof(float));
                memcpy(rt_kv_val(&c->kv[l], p0 + t), c->vb + t * vr, vr * sizeof(float));
            }
        }
    }
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, NULL, RULE(st), "drafter context projection failed");
    return LQ_OK;
}

static lq_status cpu_draft(void *p, void *dctx, size_t pos, int32_t anchor, uint32_t k, float *logits, int32_t *drafts,
                           int threads, lq_error *err)
{
    const cpu_drafter *D = p;
    cpu_dctx *c = dctx;
    const rt_weights *tw = D->be->w;
    const uint32_t B = k + 1, V = D->be->c->vocab_size;
    const uint64_t H = D->H, qr = (uint64_t)D->nh * D->d, kr = (uint64_t)D->nkv * D->d, vr = (uint64_t)D->nkv * D->dv;
    float *h = c->h, *u = c->u, *y = c->y, *q = c->q, *kb = c->kb, *vb = c->vb;
    lq_status st = rt_linear_rows(&tw->embed, (uint64_t)anchor, (uint64_t)anchor + 1, h);
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, tw->embed.name, RULE(st), "embedding failed");
    for (uint32_t r = 1; r < B; r++)
        memcpy(h + r * H, D->mask_emb, H * sizeof(float));
    const float scale = 1.0f / sqrtf((float)D->d);
    const uint32_t group = D->nh / D->nkv, W = D->c->window;
    uint8_t vis[RT_MAX_BLOCK];
    for (uint32_t l = 0; l < c->layers && st == LQ_OK; l++) {
        const rt_dwlayer *WL = &D->dw->L[l];
        const cpu_dlayer *L = &D->L[l];
        for (uint32_t r = 0; r < B; r++)
            rt_rmsnorm(h + r * H, L->in_norm, H, D->c->rms_norm_eps, u + r * H);
        st = rt_linear_forward(&WL->q, u, B, 0, qr, q, qr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&WL->k, u, B, 0, kr, kb, kr, threads);
        if (st == LQ_OK)
            st = rt_linear_forward(&WL->v, u, B, 0, vr, vb, vr, threads);
        if (st != LQ_OK)
            break;
        add_bias(q, L->qb, B, qr);
        add_bias(kb, L->kb, B, kr);
        add_bias(vb, L->vb, B, vr);
        norm_rope(D, q, B, D->nh, L->q_norm, pos, c->tmp);
        norm_rope(D, kb, B, D->nkv, L->k_norm, pos, c->tmp);
        for (uint64_t i = 0; i < B * vr; i++)
            vb[i] *= (float)D->vscale;
        for (uint32_t r = 0; r < B; r++) {
            size_t qp = pos + r, lo = 0;
            if (WL->swa && W)
                lo = qp + 1 > W ? qp + 1 - W : 0; /* q - c < W */
            /* context keys lo..pos-1, then the block's keys */
            for (uint32_t j = 0; j < B; j++)
                vis[j] = (!WL->causal || j <= r) && (!(WL->swa && W) || (j > r ? j - r : r - j) < W);
            for (uint32_t hh = 0; hh < D->nh; hh++)
                rt_attend(q + ((uint64_t)r * D->nh + hh) * D->d, &c->kv[l], lo, pos, hh / group, D->d, D->dv, kb, vb, kr,
                          vr, B, vis, scale, L->sinks ? &L->sinks[hh] : NULL, c->sc,
                          c->att + ((uint64_t)r * D->nh + hh) * D->dv);
        }
        st = rt_linear_forward(&WL->o, c->att, B, 0, H, y, H, threads);
        if (st != LQ_OK)
            break;
        add_bias(y, L->ob, B, H);
        for (uint64_t i = 0; i < B * H; i++)
            h[i] += y[i];
        for (uint32_t r = 0; r < B; r++)
            rt_rmsnorm(h + r * H, L->post_norm, H, D->c->rms_norm_eps, u + r * H);
        if ((st = rt_swiglu(&WL->gate, &WL->up, &WL->down, u, B, threads, c->a, c->b, y)) != LQ_OK)
            break;
        for (uint64_t i = 0; i < B * H; i++)
            h[i] += y[i];
    }
    if (st != LQ_OK)
        return lq_fail(err, st, NULL, NULL, RULE(st), "draft forward failed");
    for (uint32_t r = 1; r < B; r++)
        rt_rmsnorm(h + r * H, D->norm, H, D->c->rms_norm_eps, u + (r - 1) * H);
    if ((st = rt_linear_forward(&tw->lm_head, u, k, 0, V, c->lg, V, threads)) != LQ_OK)
        return lq_fail(err, st, NULL, tw->lm_head.name, RULE(st), "lm_head failed");
    for (uint32_t r = 0; r < k; r++)
        drafts[r] = rt_argmax(c->lg + (size_t)r * V, V);
    if (logits)
        memcpy(logits, c->lg, (size_t)k * V * sizeof(float));
    return LQ_OK;
}

const rt_backend_ops rt_cpu_backend = {
    "cpu",          cpu_open,       cpu_close,         cpu_ctx_new,       cpu_ctx_free, cpu_ctx_bytes,
    cpu_ctx_copy,   cpu_step,       cpu_sample,        cpu_accept,        cpu_drafter_open,
    cpu_drafter_close, cpu_dctx_new, cpu_dctx_free,    cpu_ingest,        cpu_draft,
    NULL,           NULL,              NULL,
};
