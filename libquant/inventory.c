/* Expected-tensor inventory of a MiMo checkpoint against its shards (inventory.h).
 *
 * The expected set is generated from the config into a name-sorted array; the checkpoint's
 * tensors (already in name order) are then walked once, each looked up by binary search, so
 * both directions (unexpected, missing) cost O(n log n) even for the ~160k tensors of
 * V2.5-Pro. Scale tensors are not expected entries of their own: which scale a weight needs
 * depends on how the weight is stored, so a scale is checked from its weight and is
 * "unexpected" only when no expected weight stored that way explains it. */
#include "inventory.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8block.h"

/* What a tensor is, which decides the dtypes a loader accepts and how it is stored. */
enum {
    K_EMBED,   /* embed_tokens: floating point, 2-D */
    K_LINEAR,  /* projections: floating point or FP8 + weight_scale_inv */
    K_EXPERT,  /* routed expert projections: K_LINEAR or MXFP4 */
    K_NORM,    /* norms and sinks: floating point, 1-D */
    K_ROUTER,  /* mlp.gate.weight: F32/BF16, 2-D */
    K_RBIAS    /* e_score_correction_bias: F32/BF16, 1-D */
};

typedef struct inv_exp {
    char *name;
    uint64_t rows, cols;   /* logical [out, in]; 1-D tensors use cols as their length */
    uint8_t kind;
    uint8_t qkv;           /* q/k/v/qkv projection: its FP8 grid may restart per TP shard */
    uint8_t seen;
} inv_exp;

typedef struct inv_ctx {
    const lq_ckpt *ck;
    const lq_mimo_config *cfg;
    lq_inv_result *r;
    size_t cap;            /* allocated issues */
    size_t more;           /* issues past LQ_INV_MAX_ISSUES */
    int oom;
    inv_exp *e;
    size_t ne, cape;
    /* quantization_config cross-checks, gathered during the walk */
    size_t expert_not_mx;
    char first_expert_not_mx[256];
    char first_mx[256];
    char first_fp8[256];
} inv_ctx;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void issue(inv_ctx *c, const char *rule, const char *tensor, const char *fmt, ...)
{
    if (c->oom)
        return;
    if (c->r->nissues >= LQ_INV_MAX_ISSUES) {
        c->more++;
        return;
    }
    if (c->r->nissues == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        /* one slot beyond the cap for the final INV_MORE line */
        if (ncap > LQ_INV_MAX_ISSUES + 1)
            ncap = LQ_INV_MAX_ISSUES + 1;
        lq_inv_issue *n = realloc(c->r->issues, ncap * sizeof(*n));
        if (!n) {
            c->oom = 1;
            return;
        }
        c->r->issues = n;
        c->cap = ncap;
    }
    lq_inv_issue *is = &c->r->issues[c->r->nissues++];
    memset(is, 0, sizeof(*is));
    snprintf(is->rule, sizeof(is->rule), "%s", rule);
    snprintf(is->tensor, sizeof(is->tensor), "%s", tensor ? tensor : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->msg, sizeof(is->msg), fmt, ap);
    va_end(ap);
}

#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
static void expect(inv_ctx *c, int kind, int qkv, uint64_t rows, uint64_t cols, const char *fmt, ...)
{
    if (c->oom)
        return;
    if (c->ne == c->cape) {
        size_t ncap = c->cape ? c->cape * 2 : 256;
        inv_exp *n = realloc(c->e, ncap * sizeof(*n));
        if (!n) {
            c->oom = 1;
            return;
        }
        c->e = n;
        c->cape = ncap;
    }
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    size_t len = strlen(buf);
    char *name = malloc(len + 1);
    if (!name) {
        c->oom = 1;
        return;
    }
    memcpy(name, buf, len + 1);
    inv_exp *x = &c->e[c->ne++];
    x->name = name;
    x->rows = rows;
    x->cols = cols;
    x->kind = (uint8_t)kind;
    x->qkv = (uint8_t)qkv;
    x->seen = 0;
}

static int exp_cmp(const void *a, const void *b)
{
    return strcmp(((const inv_exp *)a)->name, ((const inv_exp *)b)->name);
}

static inv_exp *exp_find(inv_ctx *c, const char *name)
{
    size_t lo = 0, hi = c->ne;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(c->e[mid].name, name);
        if (d == 0)
            return &c->e[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The expected set (inventory.h; mimo_arch.md 3.3-3.5, 4.1-4.3). */
static void build_expected(inv_ctx *c)
{
    const lq_mimo_config *g = c->cfg;
    uint64_t H = g->hidden_size, V = g->vocab_size;
    expect(c, K_EMBED, 0, V, H, "model.embed_tokens.weight");
    if (!g->tie_word_embeddings)
        expect(c, K_LINEAR, 0, V, H, "lm_head.weight");
    expect(c, K_NORM, 0, 1, H, "model.norm.weight");
    uint64_t S = lq_mimo_qkv_shards(g);
    for (uint32_t L = 0; L < g->num_hidden_layers; L++) {
        int swa = g->is_swa[L] != 0;
        uint64_t nq = swa ? g->swa_num_attention_heads : g->num_attention_heads;
        uint64_t nkv = swa ? g->swa_num_key_value_heads : g->num_key_value_heads;
        uint64_t dqk = swa ? g->swa_head_dim : g->head_dim;
        uint64_t dv = swa ? g->swa_v_head_dim : g->v_head_dim;
        expect(c, K_NORM, 0, 1, H, "model.layers.%u.input_layernorm.weight", L);
        expect(c, K_NORM, 0, 1, H, "model.layers.%u.post_attention_layernorm.weight", L);
        if (g->fused_qkv) {
            /* Each of the S checkpoint-TP shards holds max(1, nkv/S) KV heads (replicated when
             * nkv < S), mimo_arch.md 3.3. */
            uint64_t kvs = S ? nkv / S : nkv;
            if (kvs == 0)
                kvs = 1;
            uint64_t rows = nq * dqk + (S ? S : 1) * kvs * (dqk + dv);
            expect(c, K_LINEAR, 1, rows, H, "model.layers.%u.self_attn.qkv_proj.weight", L);
        } else {
            expect(c, K_LINEAR, 1, nq * dqk, H, "model.layers.%u.self_attn.q_proj.weight", L);
            expect(c, K_LINEAR, 1, nkv * dqk, H, "model.layers.%u.self_attn.k_proj.weight", L);
            expect(c, K_LINEAR, 1, nkv * dv, H, "model.layers.%u.self_attn.v_proj.weight", L);
        }
        expect(c, K_LINEAR, 0, H, nq * dv, "model.layers.%u.self_attn.o_proj.weight", L);
        if (swa ? g->swa_attention_sink : g->full_attention_sink)
            expect(c, K_NORM, 0, 1, nq, "model.layers.%u.self_attn.attention_sink_bias", L);
        if (!g->is_moe[L]) {
            uint64_t I = g->intermediate_size;
            expect(c, K_LINEAR, 0, I, H, "model.layers.%u.mlp.gate_proj.weight", L);
            expect(c, K_LINEAR, 0, I, H, "model.layers.%u.mlp.up_proj.weight", L);
            expect(c, K_LINEAR, 0, H, I, "model.layers.%u.mlp.down_proj.weight", L);
            continue;
        }
        uint64_t E = g->n_routed_experts, I = g->moe_intermediate_size;
        expect(c, K_ROUTER, 0, E, H, "model.layers.%u.mlp.gate.weight", L);
        expect(c, K_RBIAS, 0, 1, E, "model.layers.%u.mlp.gate.e_score_correction_bias", L);
        for (uint32_t e = 0; e < E && !c->oom; e++) {
            expect(c, K_EXPERT, 0, I, H, "model.layers.%u.mlp.experts.%u.gate_proj.weight", L, e);
            expect(c, K_EXPERT, 0, I, H, "model.layers.%u.mlp.experts.%u.up_proj.weight", L, e);
            expect(c, K_EXPERT, 0, H, I, "model.layers.%u.mlp.experts.%u.down_proj.weight", L, e);
        }
    }
}

static int is_float(lq_dtype d)
{
    return d == LQ_DTYPE_BF16 || d == LQ_DTYPE_F16 || d == LQ_DTYPE_F32;
}

static int dtype_ok(int kind, lq_dtype d)
{
    switch (kind) {
    case K_EMBED:
    case K_NORM: return is_float(d);
    case K_LINEAR: return is_float(d) || d == LQ_DTYPE_F8_E4M3;
    case K_EXPERT: return is_float(d) || d == LQ_DTYPE_F8_E4M3 || d == LQ_DTYPE_U8;
    default: return d == LQ_DTYPE_F32 || d == LQ_DTYPE_BF16; /* router weight and bias */
    }
}

static const char *dtype_list(int kind)
{
    switch (kind) {
    case K_EMBED:
    case K_NORM: return "BF16, F16 or F32";
    case K_LINEAR: return "BF16, F16, F32 or F8_E4M3";
    case K_EXPERT: return "BF16, F16, F32, F8_E4M3 or U8 (MXFP4)";
    default: return "F32 or BF16";
    }
}

static void shape_str(const lq_tensor_info *t, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < t->rank && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "",
                              (unsigned long long)t->shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

static int shape_is(const lq_tensor_info *t, uint64_t a, uint64_t b)
{
    return t->rank == 2 && t->shape[0] == a && t->shape[1] == b;
}

/* "X.weight" -> "X" + suffix into buf; 0 on success. */
static int sibling(const char *name, const char *suffix, char *buf, size_t cap)
{
    size_t n = strlen(name);
    if (n < 7 || strcmp(name + n - 7, ".weight") != 0)
        return -1;
    int w = snprintf(buf, cap, "%.*s%s", (int)(n - 7), name, suffix);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

static void check_fp8_scale(inv_ctx *c, const inv_exp *x)
{
    char sn[320];
    lq_ckpt_tensor st;
    if (sibling(x->name, ".weight_scale_inv", sn, sizeof(sn)) != 0 || lq_ckpt_find(c->ck, sn, &st) != 0) {
        issue(c, "INV_SCALE_MISSING", x->name, "F8_E4M3 weight without its weight_scale_inv");
        return;
    }
    const lq_tensor_info *s = st.info;
    if (s->dtype != LQ_DTYPE_F32 && s->dtype != LQ_DTYPE_BF16 && s->dtype != LQ_DTYPE_F8_E8M0) {
        issue(c, "INV_SCALE_DTYPE", sn, "weight_scale_inv is %s; loaders take F32, BF16 or F8_E8M0",
              lq_dtype_name(s->dtype));
        return;
    }
    if (s->rank != 2) {
        issue(c, "INV_SCALE_SHAPE", sn, "weight_scale_inv has rank %u; a 2-D block grid is needed",
              s->rank);
        return;
    }
    const lq_mimo_quant *q = &c->cfg->quant;
    uint32_t br = q->weight_block_size[0] ? q->weight_block_size[0] : 128;
    uint32_t bc = q->weight_block_size[1] ? q->weight_block_size[1] : 128;
    uint32_t hint = x->qkv ? lq_mimo_qkv_shards(c->cfg) : 0;
    lq_fp8_grid grid;
    lq_error e;
    lq_error_clear(&e);
    if (lq_fp8_grid_detect(x->rows, x->cols, s->shape[0], s->shape[1], br, bc, hint, x->name, &grid,
                           &e) != LQ_OK) {
        issue(c, "INV_SCALE_SHAPE", sn, "grid [%llu, %llu] does not fit weight [%llu, %llu] in %ux%u "
              "blocks: %s", (unsigned long long)s->shape[0], (unsigned long long)s->shape[1],
              (unsigned long long)x->rows, (unsigned long long)x->cols, br, bc, e.msg);
        return;
    }
    /* Only q/k/v grids restart per checkpoint-TP shard; every other loader indexes uniformly. */
    if (!x->qkv && grid.shards != 1)
        issue(c, "INV_SCALE_SHAPE", sn, "grid [%llu, %llu] is not the uniform [%llu, %llu] of "
              "weight [%llu, %llu]", (unsigned long long)s->shape[0],
              (unsigned long long)s->shape[1], (unsigned long long)((x->rows + br - 1) / br),
              (unsigned long long)((x->cols + bc - 1) / bc), (unsigned long long)x->rows,
              (unsigned long long)x->cols);
}

/* An MXFP4 weight row whose elements are all zero (E2M1 nibbles 0x0 and 0x8 are +0 and -0). */
static int mx_row_zero(const uint8_t *w, uint64_t nbytes)
{
    for (uint64_t i = 0; i < nbytes; i++)
        if (w[i] & 0x77)
            return 0;
    return 1;
}

static void check_mx_scale(inv_ctx *c, const inv_exp *x, const lq_ckpt_tensor *wt)
{
    char sn[320];
    lq_ckpt_tensor st;
    if (sibling(x->name, ".weight_scale", sn, sizeof(sn)) != 0 || lq_ckpt_find(c->ck, sn, &st) != 0) {
        issue(c, "INV_SCALE_MISSING", x->name, "MXFP4 weight (U8) without its weight_scale");
        return;
    }
    const lq_tensor_info *s = st.info;
    if (s->dtype != LQ_DTYPE_U8) {
        issue(c, "INV_SCALE_DTYPE", sn, "MXFP4 weight_scale is %s; U8 (E8M0 bytes) expected",
              lq_dtype_name(s->dtype));
        return;
    }
    uint64_t nb = x->cols / 32;
    if (!shape_is(s, x->rows, nb)) {
        char sh[96];
        shape_str(s, sh, sizeof(sh));
        issue(c, "INV_SCALE_SHAPE", sn, "MXFP4 weight_scale is %s, expected [%llu, %llu] "
              "([N, K/32] for K = %llu)", sh, (unsigned long long)x->rows, (unsigned long long)nb,
              (unsigned long long)x->cols);
        return;
    }
    const uint8_t *sc = lq_st_data(st.file, s);
    const uint8_t *w = lq_st_data(wt->file, wt->info);
    uint64_t wrow = x->cols / 2;
    uint64_t nan_rows = 0, nan_first = 0, zero_rows = 0, zero_first = 0;
    for (uint64_t r = 0; r < x->rows; r++) {
        const uint8_t *row = sc + r * nb;
        int has_nan = 0, all_zero = 1;
        for (uint64_t b = 0; b < nb; b++) {
            if (row[b] == 0xFF)
                has_nan = 1;
            if (row[b] != 0)
                all_zero = 0;
        }
        if (has_nan && nan_rows++ == 0)
            nan_first = r;
        if (all_zero && nb && mx_row_zero(w + r * wrow, wrow) && zero_rows++ == 0)
            zero_first = r;
    }
    if (nan_rows)
        issue(c, "INV_SCALE_NAN", sn, "rows with an E8M0 0xFF (NaN) scale: %llu, first row %llu",
              (unsigned long long)nan_rows, (unsigned long long)nan_first);
    if (zero_rows)
        issue(c, "INV_SCALE_ZERO_ROW", x->name, "rows with all-0x00 scales and all-zero weights "
              "(a silently zeroed expert): %llu, first row %llu", (unsigned long long)zero_rows,
              (unsigned long long)zero_first);
}

/* Whether module (a weight name without ".weight") is listed in ignored_layers, exactly or
 * under a listed parent module. */
static int is_ignored(const lq_mimo_quant *q, const char *name)
{
    size_t mlen = strlen(name);
    if (mlen > 7 && !strcmp(name + mlen - 7, ".weight"))
        mlen -= 7;
    for (size_t i = 0; i < q->n_ignored; i++) {
        const char *g = q->ignored_layers[i];
        size_t gl = strlen(g);
        if (gl <= mlen && !strncmp(name, g, gl) && (gl == mlen || name[gl] == '.'))
            return 1;
    }
    return 0;
}

static void check_tensor(inv_ctx *c, const inv_exp *x, const lq_ckpt_tensor *ct)
{
    const lq_tensor_info *t = ct->info;
    if (x->kind == K_EXPERT && t->dtype != LQ_DTYPE_U8 && c->expert_not_mx++ == 0)
        snprintf(c->first_expert_not_mx, sizeof(c->first_expert_not_mx), "%s", x->name);
    if (!dtype_ok(x->kind, t->dtype)) {
        issue(c, "INV_DTYPE", x->name, "dtype %s; loaders accept %s here", lq_dtype_name(t->dtype),
              dtype_list(x->kind));
        return;
    }
    char sh[96];
    if (x->kind == K_NORM || x->kind == K_RBIAS) {
        if (t->rank != 1 || t->shape[0] != x->cols) {
            shape_str(t, sh, sizeof(sh));
            issue(c, "INV_SHAPE", x->name, "shape %s, expected [%llu]", sh,
                  (unsigned long long)x->cols);
        }
        return;
    }
    if (t->dtype == LQ_DTYPE_U8) {
        if (c->r->mxfp4_weights++ == 0)
            snprintf(c->first_mx, sizeof(c->first_mx), "%s", x->name);
        if (x->cols % 32 != 0) {
            issue(c, "INV_SHAPE", x->name, "MXFP4 needs K %% 32 == 0; logical K is %llu",
                  (unsigned long long)x->cols);
            return;
        }
        if (!shape_is(t, x->rows, x->cols / 2)) {
            shape_str(t, sh, sizeof(sh));
            issue(c, "INV_SHAPE", x->name, "MXFP4 shape %s, expected [%llu, %llu] (logical [%llu, "
                  "%llu])", sh, (unsigned long long)x->rows, (unsigned long long)(x->cols / 2),
                  (unsigned long long)x->rows, (unsigned long long)x->cols);
            return;
        }
        check_mx_scale(c, x, ct);
        return;
    }
    if (t->dtype == LQ_DTYPE_F8_E4M3) {
        if (c->r->fp8_weights++ == 0)
            snprintf(c->first_fp8, sizeof(c->first_fp8), "%s", x->name);
        if (c->cfg->quant.present && is_ignored(&c->cfg->quant, x->name))
            issue(c, "INV_QUANT_CONFIG", x->name, "stored F8_E4M3 but its module is in "
                  "quantization_config ignored_layers (loaders read it as unquantized)");
    }
    if (!shape_is(t, x->rows, x->cols)) {
        shape_str(t, sh, sizeof(sh));
        issue(c, "INV_SHAPE", x->name, "shape %s, expected [%llu, %llu]", sh,
              (unsigned long long)x->rows, (unsigned long long)x->cols);
        return;
    }
    if (t->dtype == LQ_DTYPE_F8_E4M3)
        check_fp8_scale(c, x);
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* A scale tensor is explained when its weight is expected, present, and stored in the form
 * that uses it (FP8 for weight_scale_inv, U8 MXFP4 for weight_scale). */
static int scale_explained(inv_ctx *c, const char *name, size_t suflen, int fp8)
{
    char base[320];
    size_t n = strlen(name) - suflen;
    int w = snprintf(base, sizeof(base), "%.*s.weight", (int)n, name);
    if (w < 0 || (size_t)w >= sizeof(base) || !exp_find(c, base))
        return 0;
    lq_ckpt_tensor wt;
    if (lq_ckpt_find(c->ck, base, &wt) != 0)
        return 0;
    lq_dtype d = wt.info->dtype;
    return fp8 ? (d == LQ_DTYPE_F8_E4M3 || d == LQ_DTYPE_F8_E5M2) : d == LQ_DTYPE_U8;
}

static void check_quant_config(inv_ctx *c)
{
    const lq_mimo_quant *q = &c->cfg->quant;
    int mx_store = q->present && !strcmp(q->store_dtype, "mxfp4");
    if (mx_store && c->expert_not_mx)
        issue(c, "INV_QUANT_CONFIG", c->first_expert_not_mx, "store_dtype is \"mxfp4\" but %zu "
              "routed expert weights are not MXFP4 (first named)", c->expert_not_mx);
    if (!mx_store && c->r->mxfp4_weights)
        issue(c, "INV_QUANT_CONFIG", c->first_mx, "%zu MXFP4 weights but quantization_config "
              "store_dtype is \"%s\", not \"mxfp4\" (first named)", c->r->mxfp4_weights,
              q->present ? q->store_dtype : "(no quantization_config)");
    if (c->r->fp8_weights && !(q->present && strstr(q->quant_method, "fp8")))
        issue(c, "INV_QUANT_CONFIG", c->first_fp8, "%zu F8_E4M3 weights but quantization_config "
              "has no fp8 quant_method (%s; first named)", c->r->fp8_weights,
              q->present ? q->quant_method : "absent");
    if (q->present && q->mxfp4_block_size && q->mxfp4_block_size != 32)
        issue(c, "INV_QUANT_CONFIG", "quantization_config.mxfp4_block_size",
              "mxfp4_block_size is %u; MXFP4 blocks are 32 elements", q->mxfp4_block_size);
}

lq_status lq_inventory_check(const lq_ckpt *ck, const lq_mimo_config *cfg, lq_inv_result *out,
                             lq_error *err)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!ck || !cfg || !out)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, NULL,
                       "lq_inventory_check: NULL checkpoint, config or result");
    if (cfg->num_hidden_layers && (!cfg->is_swa || !cfg->is_moe))
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, NULL,
                       "lq_inventory_check: config without per-layer arrays");
    inv_ctx c;
    memset(&c, 0, sizeof(c));
    c.ck = ck;
    c.cfg = cfg;
    c.r = out;
    lq_status st = LQ_OK;

    build_expected(&c);
    if (c.oom)
        goto cleanup;
    qsort(c.e, c.ne, sizeof(*c.e), exp_cmp);
    out->expected = c.ne;

    size_t n = lq_ckpt_count(ck);
    for (size_t i = 0; i < n && !c.oom; i++) {
        lq_ckpt_tensor t = lq_ckpt_at(ck, i);
        const char *name = t.info->name;
        if (!strncmp(name, "model.mtp.", 10)) {
            out->mtp++;
            continue;
        }
        inv_exp *x = exp_find(&c, name);
        if (x) {
            x->seen = 1;
            out->present++;
            check_tensor(&c, x, &t);
            continue;
        }
        if (ends_with(name, ".weight_scale_inv")) {
            if (!scale_explained(&c, name, 17, 1))
                issue(&c, "INV_UNEXPECTED", name, "weight_scale_inv without an expected FP8 weight");
            continue;
        }
        if (ends_with(name, ".weight_scale")) {
            if (!scale_explained(&c, name, 13, 0))
                issue(&c, "INV_UNEXPECTED", name, "weight_scale without an expected MXFP4 weight");
            continue;
        }
        issue(&c, "INV_UNEXPECTED", name, "%s tensor not explained by config.json",
              lq_dtype_name(t.info->dtype));
    }
    for (size_t i = 0; i < c.ne && !c.oom; i++)
        if (!c.e[i].seen)
            issue(&c, "INV_MISSING", c.e[i].name, "expected by config.json, absent from the shards");
    check_quant_config(&c);

cleanup:
    if (!c.oom && c.more && c.cap <= out->nissues) {
        lq_inv_issue *grown = realloc(out->issues, (out->nissues + 1) * sizeof(*grown));
        if (grown)
            out->issues = grown;
        else
            c.oom = 1;
    }
    if (!c.oom && c.more) {
        /* issue() stops at the cap; the summary line takes one more slot. */
        size_t more = c.more;
        lq_inv_issue *is = &out->issues[out->nissues++];
        memset(is, 0, sizeof(*is));
        snprintf(is->rule, sizeof(is->rule), "INV_MORE");
        snprintf(is->msg, sizeof(is->msg), "and %zu more issues", more);
    }
    for (size_t i = 0; i < c.ne; i++)
        free(c.e[i].name);
    free(c.e);
    if (c.oom) {
        lq_inv_result_free(out);
        st = lq_fail(err, LQ_ERR_NO_MEMORY, lq_ckpt_dir(ck), NULL, NULL, "out of memory");
    }
    return st;
}

void lq_inv_result_free(lq_inv_result *r)
{
    if (!r)
        return;
    free(r->issues);
    memset(r, 0, sizeof(*r));
}
