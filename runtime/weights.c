/* Weight descriptors for the target and the drafter, bound and checked once (weights.h). */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_float(lq_dtype d) { return d == LQ_DTYPE_F32 || d == LQ_DTYPE_F16 || d == LQ_DTYPE_BF16; }

/* Binds a 2-D weight stored as a float tensor, FP8 with name_scale_inv, or MXFP4 (U8 codes with a
 * U8 name_scale), and checks it is [rows, cols]. */
static lq_status bind_linear(const lq_ckpt *ck, const char *name, uint32_t qkv_shards, uint64_t rows, uint64_t cols,
                             rt_linear *out, lq_error *err)
{
    memset(out, 0, sizeof(*out));
    lq_ckpt_tensor t, s;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return lq_fail(err, LQ_ERR_NOT_FOUND, lq_ckpt_dir(ck), name, "RT_NO_TENSOR", "weight not in the checkpoint");
    const lq_tensor_info *ti = t.info;
    const char *path = lq_st_path(t.file);
    if (ti->rank != 2)
        return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "a linear weight must be 2-D (rank %u)", ti->rank);
    out->name = ti->name;
    out->file = path;
    out->w = lq_st_data(t.file, ti);
    out->rows = ti->shape[0];
    char sn[1100];
    lq_status st = LQ_OK;
    if (is_float(ti->dtype)) {
        out->fmt = RT_W_FLOAT;
        out->dtype = ti->dtype;
        out->cols = ti->shape[1];
    } else if (ti->dtype == LQ_DTYPE_F8_E4M3 || ti->dtype == LQ_DTYPE_F8_E5M2) {
        snprintf(sn, sizeof(sn), "%s_scale_inv", name);
        if (lq_ckpt_find(ck, sn, &s) != 0 || s.info->rank != 2)
            return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "FP8 weight without a 2-D %s", sn);
        out->fmt = RT_W_FP8;
        out->dtype = ti->dtype;
        out->cols = ti->shape[1];
        out->fp8_scale = lq_st_data(s.file, s.info);
        out->fp8_scale_dtype = s.info->dtype;
        out->scale_file = lq_st_path(s.file);
        if (s.info->dtype != LQ_DTYPE_F32 && s.info->dtype != LQ_DTYPE_BF16 && s.info->dtype != LQ_DTYPE_F8_E8M0)
            return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(s.file), sn, "RT_FORMAT",
                           "scale dtype %s (expected F32, BF16 or F8_E8M0)", lq_dtype_name(s.info->dtype));
        st = lq_fp8_grid_detect(out->rows, out->cols, s.info->shape[0], s.info->shape[1], 128, 128, qkv_shards, name,
                                &out->grid, err);
    } else if (ti->dtype == LQ_DTYPE_U8) {
        snprintf(sn, sizeof(sn), "%s_scale", name);
        if (lq_ckpt_find(ck, sn, &s) != 0 || s.info->dtype != LQ_DTYPE_U8 || s.info->rank != 2 ||
            s.info->shape[0] != ti->shape[0] || s.info->shape[1] * 16 != ti->shape[1])
            return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "U8 weight without a U8 %s of [%llu, %llu]",
                           sn, (unsigned long long)ti->shape[0], (unsigned long long)(ti->shape[1] / 16));
        out->fmt = RT_W_MXFP4;
        out->cols = ti->shape[1] * 2;
        out->mx_scales = lq_st_data(s.file, s.info);
        out->scale_file = lq_st_path(s.file);
    } else {
        return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "dtype %s is no weight format",
                       lq_dtype_name(ti->dtype));
    }
    if (st == LQ_OK && (rows || cols) && (out->rows != rows || out->cols != cols))
        st = lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_SHAPE", "[%llu, %llu], expected [%llu, %llu]",
                     (unsigned long long)out->rows, (unsigned long long)out->cols, (unsigned long long)rows,
                     (unsigned long long)cols);
    return st;
}

lq_status rt_linear_bind(const lq_ckpt *ck, const char *name, uint32_t qkv_shards, rt_linear *out, lq_error *err)
{
    return bind_linear(ck, name, qkv_shards, 0, 0, out, err);
}

/* Binds a small float tensor of n elements. */
static lq_status bind_vec(const lq_ckpt *ck, const char *name, uint64_t n, rt_vec *out, lq_error *err)
{
    memset(out, 0, sizeof(*out));
    lq_ckpt_tensor t;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return lq_fail(err, LQ_ERR_NOT_FOUND, lq_ckpt_dir(ck), name, "RT_NO_TENSOR", "tensor not in the checkpoint");
    if (t.info->numel != n)
        return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(t.file), name, "RT_SHAPE", "%llu elements, expected %llu",
                       (unsigned long long)t.info->numel, (unsigned long long)n);
    if (!is_float(t.info->dtype))
        return lq_fail(err, LQ_ERR_CORRUPT, lq_st_path(t.file), name, "RT_FORMAT", "dtype %s (expected F32, F16 or BF16)",
                       lq_dtype_name(t.info->dtype));
    *out = (rt_vec){t.info->dtype, n, lq_st_data(t.file, t.info), t.info->name, lq_st_path(t.file)};
    return LQ_OK;
}

lq_status rt_linear_check(const rt_linear *l, double max_abs, lq_error *err)
{
    switch (l->fmt) {
    case RT_W_FLOAT:
        return lq_values_float(l->dtype, l->w, l->rows * l->cols, max_abs, l->file, l->name, NULL, err);
    case RT_W_FP8:
        return lq_values_fp8(&l->grid, l->dtype, l->w, l->fp8_scale_dtype, l->fp8_scale, 0, l->rows, max_abs, l->file,
                             l->scale_file, l->name, NULL, err);
    case RT_W_MXFP4:
        return lq_values_mxfp4(l->w, l->mx_scales, l->rows, l->cols, max_abs, l->file, l->name, NULL, err);
    }
    return LQ_ERR_INVALID_ARGUMENT;
}

lq_status rt_vec_check(const rt_vec *v, double max_abs, lq_error *err)
{
    return v->n ? lq_values_float(v->dtype, v->data, v->n, max_abs, v->file, v->name, NULL, err) : LQ_OK;
}

/* ---- the value pass: every descriptor checked on the thread pool; the error reported is that of
 * the first failing descriptor in binding order, whatever the thread count ---- */

typedef struct vitem {
    const rt_linear *l;
    const rt_vec *v;
} vitem;

typedef struct vpass {
    vitem *items;
    size_t n, cap;
    double max_abs;
    lq_status *st;
    int oom;
} vpass;

static lq_status vp_check(const vpass *p, size_t i, lq_error *err)
{
    return p->items[i].l ? rt_linear_check(p->items[i].l, p->max_abs, err)
                         : rt_vec_check(p->items[i].v, p->max_abs, err);
}

static void vp_add(vpass *p, const rt_linear *l, const rt_vec *v)
{
    if (v && !v->n)
        return;
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 256;
        vitem *ni = realloc(p->items, nc * sizeof(vitem));
        if (!ni) {
            p->oom = 1;
            return;
        }
        p->items = ni, p->cap = nc;
    }
    p->items[p->n++] = (vitem){l, v};
}

static void vp_task(void *ctx, size_t i)
{
    vpass *p = ctx;
    p->st[i] = vp_check(p, i, NULL);
}

static lq_status vp_run(vpass *p, int threads, lq_error *err)
{
    lq_status st = LQ_OK;
    if (p->oom)
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    else if (p->n) {
        p->st = malloc(p->n * sizeof(lq_status));
        if (!p->st)
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        else {
            lq_parallel_for(p->n, threads < 1 ? 1 : threads, vp_task, p);
            /* only the first failing descriptor's message is wanted: it is checked again for it */
            for (size_t i = 0; i < p->n && st == LQ_OK; i++)
                if (p->st[i] != LQ_OK)
                    st = vp_check(p, i, err);
        }
    }
    free(p->items), free(p->st);
    memset(p, 0, sizeof(*p));
    return st;
}

static double bound(const rt_weights_opts *o)
{
    return !o || o->max_abs == 0 ? RT_MAX_ABS_DEFAULT : o->max_abs < 0 ? 0 : o->max_abs;
}

/* ---- the target ---- */

void rt_weights_close(rt_weights *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; w->L && i < w->cfg.num_hidden_layers; i++)
        free(w->L[i].eg), free(w->L[i].eu), free(w->L[i].ed);
    free(w->L);
    if (w->have_cfg)
        lq_mimo_config_free(&w->cfg);
    lq_ckpt_close(w->ck);
    free(w);
}

static lq_status bind_layer(rt_weights *w, uint32_t li, lq_error *err)
{
    const lq_mimo_config *c = &w->cfg;
    const lq_ckpt *ck = w->ck;
    uint64_t H = c->hidden_size;
    rt_wlayer *L = &w->L[li];
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
    lq_status st;
#define VEC(field, count, ...)                                                                                         \
    do {                                                                                                               \
        snprintf(n, sizeof(n), __VA_ARGS__);                                                                           \
        if ((st = bind_vec(ck, n, count, &L->field, err)) != LQ_OK)                                                    \
            return st;                                                                                                 \
    } while (0)
#define LIN(field, shards, rows, cols, ...)                                                                            \
    do {                                                                                                               \
        snprintf(n, sizeof(n), __VA_ARGS__);                                                                           \
        if ((st = bind_linear(ck, n, shards, rows, cols, &L->field, err)) != LQ_OK)                                    \
            return st;                                                                                                 \
    } while (0)
    VEC(in_norm, H, "%s.input_layernorm.weight", p);
    VEC(post_norm, H, "%s.post_attention_layernorm.weight", p);
    if ((L->swa && c->swa_attention_sink) || (!L->swa && c->full_attention_sink))
        VEC(sinks, L->nq, "%s.self_attn.attention_sink_bias", p);
    uint64_t qr = (uint64_t)L->nq * L->dqk, kr = (uint64_t)L->nkv * L->dqk, vr = (uint64_t)L->nkv * L->dv;
    L->fused = c->fused_qkv;
    if (L->fused) {
        if (L->nkv % w->qkv_shards || L->nq % w->qkv_shards)
            return lq_fail(err, LQ_ERR_UNSUPPORTED, lq_ckpt_dir(ck), p, "RT_SHAPE", "heads do not divide over %u qkv shards",
                           w->qkv_shards);
        LIN(qkv, w->qkv_shards, qr + kr + vr, H, "%s.self_attn.qkv_proj.weight", p);
    } else {
        LIN(q, 0, qr, H, "%s.self_attn.q_proj.weight", p);
        LIN(k, 0, kr, H, "%s.self_attn.k_proj.weight", p);
        LIN(v, 0, vr, H, "%s.self_attn.v_proj.weight", p);
    }
    LIN(o, 0, H, (uint64_t)L->nq * L->dv, "%s.self_attn.o_proj.weight", p);
    if (!L->moe) {
        LIN(gate, 0, c->intermediate_size, H, "%s.mlp.gate_proj.weight", p);
        LIN(up, 0, c->intermediate_size, H, "%s.mlp.up_proj.weight", p);
        LIN(down, 0, H, c->intermediate_size, "%s.mlp.down_proj.weight", p);
        return LQ_OK;
    }
    uint32_t E = c->n_routed_experts, I = c->moe_intermediate_size;
    VEC(router, (uint64_t)E * H, "%s.mlp.gate.weight", p);
    VEC(e_bias, E, "%s.mlp.gate.e_score_correction_bias", p);
    L->eg = calloc(E, sizeof(rt_linear));
    L->eu = calloc(E, sizeof(rt_linear));
    L->ed = calloc(E, sizeof(rt_linear));
    if (!L->eg || !L->eu || !L->ed)
        return lq_fail(err, LQ_ERR_NO_MEMORY, lq_ckpt_dir(ck), NULL, NULL, "out of memory for %u experts", E);
    for (uint32_t e = 0; e < E; e++) {
        LIN(eg[e], 0, I, H, "%s.mlp.experts.%u.gate_proj.weight", p, e);
        LIN(eu[e], 0, I, H, "%s.mlp.experts.%u.up_proj.weight", p, e);
        LIN(ed[e], 0, H, I, "%s.mlp.experts.%u.down_proj.weight", p, e);
    }
#undef VEC
#undef LIN
    return LQ_OK;
}

lq_status rt_weights_open(const char *dir, const rt_weights_opts *o, rt_weights **out, lq_error *err)
{
    *out = NULL;
    rt_weights *w = calloc(1, sizeof(*w));
    if (!w)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    lq_status st = lq_ckpt_open(dir, NULL, &w->ck, err);
    if (st == LQ_OK && (st = lq_mimo_config_parse(lq_ckpt_config(w->ck), "config.json", &w->cfg, err)) == LQ_OK)
        w->have_cfg = 1;
    if (st != LQ_OK)
        goto fail;
    const lq_mimo_config *c = &w->cfg;
    uint64_t H = c->hidden_size;
    w->qkv_shards = lq_mimo_qkv_shards(c);
    if ((st = bind_linear(w->ck, "model.embed_tokens.weight", 0, c->vocab_size, H, &w->embed, err)) != LQ_OK ||
        (st = bind_linear(w->ck, c->tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", 0,
                          c->vocab_size, H, &w->lm_head, err)) != LQ_OK ||
        (st = bind_vec(w->ck, "model.norm.weight", H, &w->final_norm, err)) != LQ_OK)
        goto fail;
    w->L = calloc(c->num_hidden_layers, sizeof(rt_wlayer));
    if (!w->L) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto fail;
    }
    for (uint32_t li = 0; li < c->num_hidden_layers; li++)
        if ((st = bind_layer(w, li, err)) != LQ_OK)
            goto fail;
    if (!o || o->check_values) {
        vpass p = {0};
        p.max_abs = bound(o);
        vp_add(&p, &w->embed, NULL);
        if (!c->tie_word_embeddings)
            vp_add(&p, &w->lm_head, NULL);
        vp_add(&p, NULL, &w->final_norm);
        for (uint32_t li = 0; li < c->num_hidden_layers; li++) {
            const rt_wlayer *L = &w->L[li];
            vp_add(&p, NULL, &L->in_norm), vp_add(&p, NULL, &L->post_norm), vp_add(&p, NULL, &L->sinks);
            if (L->fused)
                vp_add(&p, &L->qkv, NULL);
            else
                vp_add(&p, &L->q, NULL), vp_add(&p, &L->k, NULL), vp_add(&p, &L->v, NULL);
            vp_add(&p, &L->o, NULL);
            if (!L->moe) {
                vp_add(&p, &L->gate, NULL), vp_add(&p, &L->up, NULL), vp_add(&p, &L->down, NULL);
                continue;
            }
            vp_add(&p, NULL, &L->router), vp_add(&p, NULL, &L->e_bias);
            for (uint32_t e = 0; e < c->n_routed_experts; e++)
                vp_add(&p, &L->eg[e], NULL), vp_add(&p, &L->eu[e], NULL), vp_add(&p, &L->ed[e], NULL);
        }
        if ((st = vp_run(&p, o ? o->threads : 1, err)) != LQ_OK)
            goto fail;
    }
    *out = w;
    return LQ_OK;
fail:
    rt_weights_close(w);
    return st;
}

/* ---- the drafter ---- */

void rt_dweights_close(rt_dweights *d)
{
    if (!d)
        return;
    free(d->L);
    lq_drafter_close(d->dr);
    free(d);
}

lq_status rt_dweights_open(const char *dir, const rt_weights *t, const rt_weights_opts *o, rt_dweights **out,
                           lq_error *err)
{
    *out = NULL;
    rt_dweights *D = calloc(1, sizeof(*D));
    if (!D)
        return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
    /* lq_drafter_open checks every drafter tensor's values and the mask embedding's (values.h, as
     * DF_TENSOR_VALUE / DF_MASK_VALUE): no second pass here */
    lq_status st = lq_drafter_open(dir, &t->cfg, &D->dr, err);
    if (st != LQ_OK) {
        free(D);
        return st;
    }
    const lq_drafter_config *c = D->c = lq_drafter_get_config(D->dr);
    const lq_ckpt *ck = lq_drafter_ckpt(D->dr);
    /* the parser (DF_VALUE) guarantees heads, head dims and rope dims, and DF_MASK_LEN the mask's length */
    uint64_t H = c->hidden_size, d = c->head_dim, dv = c->v_head_dim, nh = c->num_attention_heads,
             nkv = c->num_key_value_heads;
    D->Ht = t->cfg.hidden_size;
    D->mask_emb = (rt_vec){LQ_DTYPE_BF16, H, lq_drafter_mask_embedding(D->dr, NULL, NULL), "mask_embedding",
                           lq_drafter_mask_path(D->dr)};
    if ((st = bind_linear(ck, "fc.weight", 0, H, (uint64_t)c->n_taps * D->Ht, &D->fc, err)) != LQ_OK ||
        (st = bind_vec(ck, "hidden_norm.weight", H, &D->hidden_norm, err)) != LQ_OK ||
        (st = bind_vec(ck, "norm.weight", H, &D->norm, err)) != LQ_OK)
        goto fail;
    D->L = calloc(c->num_hidden_layers, sizeof(rt_dwlayer));
    if (!D->L) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < c->num_hidden_layers && st == LQ_OK; i++) {
        rt_dwlayer *L = &D->L[i];
        char n[160];
        L->swa = c->is_swa[i];
        L->causal = c->is_causal[i];
#define V_(field, suffix, count)                                                                                       \
    if (st == LQ_OK) {                                                                                                 \
        snprintf(n, sizeof(n), "layers.%u.%s", i, suffix);                                                             \
        st = bind_vec(ck, n, count, &L->field, err);                                                                   \
    }
#define W_(field, suffix, rows, cols)                                                                                  \
    if (st == LQ_OK) {                                                                                                 \
        snprintf(n, sizeof(n), "layers.%u.%s", i, suffix);                                                             \
        st = bind_linear(ck, n, 0, rows, cols, &L->field, err);                                                        \
    }
        V_(in_norm, "input_layernorm.weight", H)
        V_(post_norm, "post_attention_layernorm.weight", H)
        V_(q_norm, "self_attn.q_norm.weight", d)
        V_(k_norm, "self_attn.k_norm.weight", d)
        if (c->attention_sink) {
            V_(sinks, "self_attn.attention_sink_bias", nh)
        }
        if (c->attention_bias) {
            V_(qb, "self_attn.q_proj.bias", nh * d)
            V_(kb, "self_attn.k_proj.bias", nkv * d)
            V_(vb, "self_attn.v_proj.bias", nkv * dv)
            V_(ob, "self_attn.o_proj.bias", H)
        }
        W_(q, "self_attn.q_proj.weight", nh * d, H)
        W_(k, "self_attn.k_proj.weight", nkv * d, H)
        W_(v, "self_attn.v_proj.weight", nkv * dv, H)
        W_(o, "self_attn.o_proj.weight", H, nh * dv)
        W_(gate, "mlp.gate_proj.weight", c->intermediate_size, H)
        W_(up, "mlp.up_proj.weight", c->intermediate_size, H)
        W_(down, "mlp.down_proj.weight", H, c->intermediate_size)
#undef V_
#undef W_
    }
    if (st != LQ_OK)
        goto fail;
    *out = D;
    return LQ_OK;
fail:
    rt_dweights_close(D);
    return st;
}
