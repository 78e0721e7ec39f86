/* Fixture geometry presets and the row-keyed generator (fixture.h). */
#include "fixture.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tiny: reference/mimo_arch.md 6.1 (real head geometry 192/128 with 64 RoPE dims, hybrid
 * SWA/global with sinks, KV-head asymmetry 2/4, dense layer 0, sigmoid top-8 routing, fused qkv
 * over 2 checkpoint-TP shards whose 1088-row global shard is not 128-aligned) with two size
 * cuts: vocab 4096 (so the fixture stays small), and 16 experts of 64 instead of 32 of 256,
 * which keeps top-8 routing meaningful, makes experts ragged against the 128 FP8 block in both
 * directions, and cuts the checkpoint from ~170 MB to ~46 MB BF16. */
static const fx_geometry tiny = {
    .preset = "tiny", .vocab = 4096, .hidden = 256, .layers = 12,
    .heads = 8, .kv_full = 2, .kv_swa = 4, .swa_heads = 8, .head_dim = 192, .v_head_dim = 128,
    .intermediate = 1024, .moe_intermediate = 64, .experts = 16, .top_k = 8, .window = 16,
    .rope_theta = 1e7, .swa_rope_theta = 1e4, .partial_rotary = 0.334, .value_scale = 0.707,
    .max_pos = 8192,
    .hybrid = {0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0},
    .moe = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    .qkv_shards = 2, .shard_bytes = 8000000,
    .d_layers = 2, .d_hidden = 256, .d_heads = 4, .d_kv = 2, .d_head_dim = 64,
    .d_intermediate = 512, .d_window = 64, .d_block = 8,
    .d_taps = {0, 5, 11}, .d_ntaps = 3, .d_mask_id = 4095, .d_anchors = 512,
};

/* medium: MiMo-V2-Flash per-layer geometry (mimo_arch.md 2.1 and 6.2): hidden 4096, 64 q heads,
 * 4 global / 8 SWA KV heads, dense 16384, experts of 2048, real vocab; 6 layers and 32 experts
 * so it fits one GPU. Fused qkv over 4 shards as in V2.5 (13568 / 14848 rows). Its drafter has
 * the release drafter's geometry (dflash.md 2.2, MiMo-V2.5-Pro-FP4-DFlash dflash/config.json:
 * 5 layers, 128 heads and 8 KV heads of 128, intermediate 16384, block 8, SWA window 1024 on every
 * layer, num_anchors 4096; the partial RoPE, thetas, value scale, sinks and eps every fixture
 * drafter has), so a draft step costs what the release's does at hidden 4096: the hidden size is
 * the target's (DF_HIDDEN), 4096 instead of the release's 6144. Its five taps are the release's
 * [0, 15, 31, 47, 69] of 70 layers scaled to 6 (fx_geometry_resize's rule). */
static const fx_geometry medium = {
    .preset = "medium", .vocab = 152576, .hidden = 4096, .layers = 6,
    .heads = 64, .kv_full = 4, .kv_swa = 8, .swa_heads = 64, .head_dim = 192, .v_head_dim = 128,
    .intermediate = 16384, .moe_intermediate = 2048, .experts = 32, .top_k = 8, .window = 128,
    .rope_theta = 5e6, .swa_rope_theta = 1e4, .partial_rotary = 0.334, .value_scale = 0.707,
    .max_pos = 262144,
    .hybrid = {0, 1, 1, 1, 1, 0},
    .moe = {0, 1, 1, 1, 1, 1},
    .qkv_shards = 4, .shard_bytes = 5000000000ull,
    .d_layers = 5, .d_hidden = 4096, .d_heads = 128, .d_kv = 8, .d_head_dim = 128,
    .d_intermediate = 16384, .d_window = 1024, .d_block = 8,
    .d_taps = {0, 1, 2, 3, 5}, .d_ntaps = 5, .d_mask_id = 152575, .d_anchors = 4096,
    .d_release_taps = 1,
};

/* pro: MiMo-V2.5-Pro as reference/mimo_arch.md 2.1 gives its config (CFG-PRO) and 4.1 its FP8
 * checkpoint: vocab 152576, hidden 6144, 70 layers, 128 q heads (full and SWA), 8 KV heads
 * (both), q/k 192, v 128, dense 16384, 384 experts of 2048, top-8, window 128, rope_theta 1e7,
 * value scale 0.612, 1M positions; fused qkv over 8 checkpoint-TP shards (27136 rows, scale grid
 * 216 x 48); 3 MTP layers; global attention on the layers of pro_global (2.2), so sinks on the
 * other 60. Files as 4 says Pro ships them: model_pp0_ep{N}_shard{M} plus model_mtp. No drafter
 * (the FP8 checkpoint has none). The config's eos / pad ids are not in the reference's record of
 * CFG-PRO, so none are written. */
static const fx_geometry pro = {
    .preset = "pro", .vocab = 152576, .hidden = 6144, .layers = 70,
    .heads = 128, .kv_full = 8, .kv_swa = 8, .swa_heads = 128, .head_dim = 192, .v_head_dim = 128,
    .intermediate = 16384, .moe_intermediate = 2048, .experts = 384, .top_k = 8, .window = 128,
    .rope_theta = 1e7, .swa_rope_theta = 1e4, .partial_rotary = 0.334, .value_scale = 0.612,
    .max_pos = 1048576,
    .qkv_shards = 8, .shard_bytes = 5000000000ull,
    .mtp_layers = 3, .ep_ranks = 32, .no_token_ids = 1,
};

/* pro-tiny: pro's names, 70-layer pattern, KV heads and 8-shard fused qkv, 3 MTP layers, expert
 * count and file layout, with tiny widths so that all 159,581 tensors convert in well under a
 * minute of CPU: vocab 4096, hidden 128, 16 q heads (2 per qkv shard), dense 256, experts of 32
 * (K = 32 is one MXFP4 block; both dims ragged against the 128 FP8 block). Head dims stay
 * 192 / 128. */
static const fx_geometry pro_tiny = {
    .preset = "pro-tiny", .vocab = 4096, .hidden = 128, .layers = 70,
    .heads = 16, .kv_full = 8, .kv_swa = 8, .swa_heads = 16, .head_dim = 192, .v_head_dim = 128,
    .intermediate = 256, .moe_intermediate = 32, .experts = 384, .top_k = 8, .window = 128,
    .rope_theta = 1e7, .swa_rope_theta = 1e4, .partial_rotary = 0.334, .value_scale = 0.612,
    .max_pos = 1048576,
    .qkv_shards = 8, .shard_bytes = 5000000000ull,
    .mtp_layers = 3, .ep_ranks = 32, .no_token_ids = 1,
};

/* MiMo-V2.5-Pro's global-attention layers (mimo_arch.md 2.2, CFG-PRO's hybrid_layer_pattern). */
static const uint32_t pro_global[10] = {0, 7, 15, 23, 31, 39, 47, 55, 62, 69};

int fx_geometry_preset(const char *name, fx_geometry *g)
{
    if (strcmp(name, "tiny") == 0)
        *g = tiny;
    else if (strcmp(name, "medium") == 0)
        *g = medium;
    else if (strcmp(name, "pro") == 0 || strcmp(name, "pro-tiny") == 0) {
        *g = strcmp(name, "pro") == 0 ? pro : pro_tiny;
        for (uint32_t L = 0; L < g->layers; L++) {
            g->hybrid[L] = 1;
            g->moe[L] = L > 0;
        }
        for (size_t i = 0; i < sizeof(pro_global) / sizeof(pro_global[0]); i++)
            g->hybrid[pro_global[i]] = 0;
    } else
        return -1;
    return 0;
}

int fx_geometry_resize(fx_geometry *g, uint64_t vocab, uint64_t experts, uint64_t layers,
                       char *why, size_t cap)
{
    /* vocab: the last three ids are eos, pad and MASK, so at least a few ordinary ids remain;
     * the upper bound is the config parser's (libquant/mimo_config.c). */
    if (vocab && (vocab < 8 || vocab > 0x7FFFFFFFu)) {
        snprintf(why, cap, "--vocab %llu outside 8..2147483647", (unsigned long long)vocab);
        return -1;
    }
    if (experts && (experts < g->top_k || experts > FX_MAX_EXPERTS)) {
        snprintf(why, cap, "--experts %llu outside %u..%u (top-%u routing)",
                 (unsigned long long)experts, g->top_k, FX_MAX_EXPERTS, g->top_k);
        return -1;
    }
    if (layers && layers > FX_MAX_LAYERS) {
        snprintf(why, cap, "--layers %llu outside 1..%d", (unsigned long long)layers, FX_MAX_LAYERS);
        return -1;
    }
    if (vocab && vocab != g->vocab) {
        g->vocab = (uint32_t)vocab;
        if (g->d_layers)
            g->d_mask_id = g->vocab - 1;
    }
    if (experts)
        g->experts = (uint32_t)experts;
    if (layers && layers != g->layers) {
        /* The preset's attention pattern, repeated; dense layer 0 and MoE after it as in both
         * presets. */
        uint32_t period = g->layers, n = (uint32_t)layers;
        int hybrid[FX_MAX_LAYERS];
        memcpy(hybrid, g->hybrid, sizeof(hybrid));
        for (uint32_t L = 0; L < FX_MAX_LAYERS; L++) {
            g->hybrid[L] = L < n ? hybrid[L % period] : 0;
            g->moe[L] = L < n && L > 0;
        }
        g->layers = n;
        if (g->d_layers) {
            /* tiny: its taps 0 / 5 / 11 of 12 for any depth; medium: the release's taps of its 70
             * layers, round(t * (n - 1) / 69) with halves up */
            static const uint32_t rel[5] = {0, 15, 31, 47, 69};
            uint32_t t[5] = {0, (n - 1) / 2, n - 1, 0, 0}, nt = 3, k = 0;
            if (g->d_release_taps)
                for (nt = 0; nt < 5; nt++)
                    t[nt] = (2 * rel[nt] * (n - 1) + 69) / 138;
            for (uint32_t i = 0; i < nt; i++)
                if (k == 0 || t[i] > g->d_taps[k - 1])
                    g->d_taps[k++] = t[i];
            g->d_ntaps = k;
        }
    }
    return 0;
}

/* ---- generator ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

typedef struct { uint64_t s[4]; } xoshiro;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xo_next(xoshiro *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in (0, 1]: 24 random bits, never 0 so log() is finite. */
static float u01(xoshiro *r) { return (float)((xo_next(r) >> 40) + 1) * (1.0f / 16777216.0f); }

void fx_gen_row(uint64_t seed, const char *logical, uint64_t row, uint64_t cols, fx_kind kind,
                float std, float *out)
{
    uint64_t x = seed ^ fnv1a(logical) ^ (row * 0xD1B54A32D192ED03ull);
    xoshiro r;
    for (int i = 0; i < 4; i++)
        r.s[i] = splitmix64(&x);
    float sd = std, mean = 0.0f;
    switch (kind) {
    case FX_NORMAL: break;
    case FX_NORM_WEIGHT: sd = 0.1f; mean = 1.0f; break;
    case FX_SINK: sd = 1.0f; break;
    case FX_BIAS: sd = 0.05f; break;
    }
    /* Box-Muller, two values per pair of uniforms. */
    for (uint64_t c = 0; c < cols; c += 2) {
        float u1 = u01(&r), u2 = u01(&r);
        float rad = sqrtf(-2.0f * logf(u1));
        float th = 6.28318530717958647692f * u2;
        out[c] = mean + sd * rad * cosf(th);
        if (c + 1 < cols)
            out[c + 1] = mean + sd * rad * sinf(th);
    }
}

/* ---- the tensors ---- */

/* snprintf that treats truncation as the bug it would be (every name here is far shorter). */
static void fmt(char *dst, size_t cap, const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void fmt(char *dst, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(dst, cap, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "fixture: internal error: name too long: %s\n", dst);
        exit(3);
    }
}

static void die_oom(void)
{
    fprintf(stderr, "fixture: out of memory\n");
    exit(3);
}

static fx_tensor *push(fx_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->t = realloc(l->t, l->cap * sizeof(*l->t));
        if (!l->t)
            die_oom();
    }
    fx_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof(*t));
    t->scale_of = -1;
    return t;
}

/* A tensor whose stored rows are one logical tensor (its own name). rank 1 = one row. */
static fx_tensor *add_plain(fx_list *l, const char *name, lq_dtype dt, uint64_t rows,
                            uint64_t cols, int rank, fx_kind kind, float std)
{
    fx_tensor *t = push(l);
    fmt(t->name, sizeof(t->name), "%s", name);
    t->dtype = dt;
    t->rank = (uint32_t)rank;
    t->shape[0] = rank == 1 ? cols : rows;
    t->shape[1] = rank == 1 ? 0 : cols;
    t->kind = kind;
    t->std = std;
    fmt(t->parts[0].logical, sizeof(t->parts[0].logical), "%s", name);
    t->parts[0].row0 = 0;
    t->parts[0].nrows = rank == 1 ? 1 : rows;
    t->nparts = 1;
    return t;
}

static uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* Turns the last-added 2-D weight into an FP8 weight and appends its scale grid tensor. */
static void make_fp8(fx_list *l, uint32_t shards)
{
    size_t wi = l->n - 1;
    fx_tensor *w = &l->t[wi];
    uint64_t rows = w->shape[0], cols = w->shape[1];
    w->dtype = LQ_DTYPE_F8_E4M3;
    w->fp8 = 1;
    w->grid.rows = rows;
    w->grid.cols = cols;
    w->grid.block_r = w->grid.block_c = 128;
    w->grid.shards = shards;
    w->grid.srows = shards * cdiv(rows / shards, 128);
    w->grid.scols = cdiv(cols, 128);
    char name[256];
    fmt(name, sizeof(name), "%s_scale_inv", w->name);
    lq_fp8_grid g = w->grid;
    fx_tensor *s = push(l);
    fmt(s->name, sizeof(s->name), "%s", name);
    s->dtype = LQ_DTYPE_F32;
    s->rank = 2;
    s->shape[0] = g.srows;
    s->shape[1] = g.scols;
    s->scale_of = (int)wi;
}

static void linear(fx_list *l, int fp8, const char *name, uint64_t out, uint64_t in)
{
    add_plain(l, name, LQ_DTYPE_BF16, out, in, 2, FX_NORMAL, 0.02f);
    if (fp8)
        make_fp8(l, 1);
}

/* Attention of one decoder block under prefix p: q/k/v (split) or the fused qkv interleaved over S
 * checkpoint-TP shards, shard s = [q_s | k_s | v_s] (reference/mimo_arch.md 3.3), o_proj, and the
 * sink on SWA blocks. */
static void attention(const fx_geometry *g, int fp8, const char *p, int swa, fx_list *l)
{
    char n[256], qn[256], kn[256], vn[256];
    uint64_t H = g->hidden;
    uint64_t nq = swa ? g->swa_heads : g->heads, nkv = swa ? g->kv_swa : g->kv_full;
    fmt(qn, sizeof(qn), "%s.self_attn.q_proj.weight", p);
    fmt(kn, sizeof(kn), "%s.self_attn.k_proj.weight", p);
    fmt(vn, sizeof(vn), "%s.self_attn.v_proj.weight", p);
    uint64_t qr = nq * g->head_dim, kr = nkv * g->head_dim, vr = nkv * g->v_head_dim;
    if (!fp8) {
        add_plain(l, qn, LQ_DTYPE_BF16, qr, H, 2, FX_NORMAL, 0.02f);
        add_plain(l, kn, LQ_DTYPE_BF16, kr, H, 2, FX_NORMAL, 0.02f);
        add_plain(l, vn, LQ_DTYPE_BF16, vr, H, 2, FX_NORMAL, 0.02f);
    } else {
        uint32_t S = g->qkv_shards;
        fmt(n, sizeof(n), "%s.self_attn.qkv_proj.weight", p);
        fx_tensor *t = add_plain(l, n, LQ_DTYPE_BF16, qr + kr + vr, H, 2, FX_NORMAL, 0.02f);
        t->nparts = 0;
        for (uint32_t s = 0; s < S; s++) {
            const char *src[3] = {qn, kn, vn};
            uint64_t per[3] = {qr / S, kr / S, vr / S};
            for (int k = 0; k < 3; k++) {
                fx_part *pt = &t->parts[t->nparts++];
                fmt(pt->logical, sizeof(pt->logical), "%s", src[k]);
                pt->row0 = s * per[k];
                pt->nrows = per[k];
            }
        }
        make_fp8(l, S);
    }
    fmt(n, sizeof(n), "%s.self_attn.o_proj.weight", p);
    add_plain(l, n, LQ_DTYPE_BF16, H, nq * g->v_head_dim, 2, FX_NORMAL, 0.02f);
    if (swa) {
        fmt(n, sizeof(n), "%s.self_attn.attention_sink_bias", p);
        add_plain(l, n, LQ_DTYPE_BF16, 1, nq, 1, FX_SINK, 0);
    }
}

static void dense_mlp(const fx_geometry *g, int fp8, const char *p, fx_list *l)
{
    char n[256];
    fmt(n, sizeof(n), "%s.mlp.gate_proj.weight", p);
    linear(l, fp8, n, g->intermediate, g->hidden);
    fmt(n, sizeof(n), "%s.mlp.up_proj.weight", p);
    linear(l, fp8, n, g->intermediate, g->hidden);
    fmt(n, sizeof(n), "%s.mlp.down_proj.weight", p);
    linear(l, fp8, n, g->hidden, g->intermediate);
}

static void norm(const fx_geometry *g, const char *p, const char *what, fx_list *l)
{
    char n[256];
    fmt(n, sizeof(n), "%s.%s.weight", p, what);
    add_plain(l, n, LQ_DTYPE_BF16, 1, g->hidden, 1, FX_NORM_WEIGHT, 0);
}

void fx_plan_backbone(const fx_geometry *g, int fp8, fx_list *l)
{
    char n[256], p[64];
    uint64_t H = g->hidden;
    add_plain(l, "model.embed_tokens.weight", LQ_DTYPE_BF16, g->vocab, H, 2, FX_NORMAL, 0.02f);
    add_plain(l, "lm_head.weight", LQ_DTYPE_BF16, g->vocab, H, 2, FX_NORMAL, 0.02f);
    add_plain(l, "model.norm.weight", LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
    for (uint32_t L = 0; L < g->layers; L++) {
        fmt(p, sizeof(p), "model.layers.%u", L);
        norm(g, p, "input_layernorm", l);
        norm(g, p, "post_attention_layernorm", l);
        attention(g, fp8, p, g->hybrid[L], l);
        if (!g->moe[L]) {
            dense_mlp(g, fp8, p, l);
            continue;
        }
        fmt(n, sizeof(n), "%s.mlp.gate.weight", p);
        add_plain(l, n, LQ_DTYPE_F32, g->experts, H, 2, FX_NORMAL, 0.02f);
        fmt(n, sizeof(n), "%s.mlp.gate.e_score_correction_bias", p);
        add_plain(l, n, LQ_DTYPE_F32, 1, g->experts, 1, FX_BIAS, 0);
        for (uint32_t e = 0; e < g->experts; e++) {
            fmt(n, sizeof(n), "%s.mlp.experts.%u.gate_proj.weight", p, e);
            linear(l, fp8, n, g->moe_intermediate, H);
            fmt(n, sizeof(n), "%s.mlp.experts.%u.up_proj.weight", p, e);
            linear(l, fp8, n, g->moe_intermediate, H);
            fmt(n, sizeof(n), "%s.mlp.experts.%u.down_proj.weight", p, e);
            linear(l, fp8, n, H, g->moe_intermediate);
        }
    }
    /* MTP blocks (mimo_arch.md 3.9 and 4.1): eh_proj [H, 2H] BF16 over the two normed inputs,
     * one SWA-geometry attention with its sink, a dense MLP, and their norms (pre_mlp_layernorm
     * in place of post_attention_layernorm). */
    for (uint32_t k = 0; k < g->mtp_layers; k++) {
        fmt(p, sizeof(p), "model.mtp.layers.%u", k);
        norm(g, p, "enorm", l);
        norm(g, p, "hnorm", l);
        fmt(n, sizeof(n), "%s.eh_proj.weight", p);
        add_plain(l, n, LQ_DTYPE_BF16, H, 2 * H, 2, FX_NORMAL, 0.02f);
        norm(g, p, "input_layernorm", l);
        attention(g, fp8, p, 1, l);
        norm(g, p, "pre_mlp_layernorm", l);
        dense_mlp(g, fp8, p, l);
        norm(g, p, "final_layernorm", l);
    }
}

/* DFlash drafter tensors (reference/dflash.md 2.3); logical names are prefixed "dflash." so
 * they never collide with the backbone's. */
void fx_plan_drafter(const fx_geometry *g, fx_list *l)
{
    const size_t first = l->n;
    char n[256];
    uint64_t H = g->d_hidden, d = g->d_head_dim;
    add_plain(l, "fc.weight", LQ_DTYPE_BF16, H, (uint64_t)g->d_ntaps * g->hidden, 2, FX_NORMAL, 0.02f);
    add_plain(l, "hidden_norm.weight", LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
    add_plain(l, "norm.weight", LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
    for (uint32_t i = 0; i < g->d_layers; i++) {
        struct { const char *suffix; uint64_t rows, cols; int rank; fx_kind kind; } spec[] = {
            {"input_layernorm.weight", 1, H, 1, FX_NORM_WEIGHT},
            {"post_attention_layernorm.weight", 1, H, 1, FX_NORM_WEIGHT},
            {"self_attn.q_proj.weight", g->d_heads * d, H, 2, FX_NORMAL},
            {"self_attn.k_proj.weight", g->d_kv * d, H, 2, FX_NORMAL},
            {"self_attn.v_proj.weight", g->d_kv * d, H, 2, FX_NORMAL},
            {"self_attn.o_proj.weight", H, g->d_heads * d, 2, FX_NORMAL},
            {"self_attn.q_norm.weight", 1, d, 1, FX_NORM_WEIGHT},
            {"self_attn.k_norm.weight", 1, d, 1, FX_NORM_WEIGHT},
            {"self_attn.attention_sink_bias", 1, g->d_heads, 1, FX_SINK},
            {"mlp.gate_proj.weight", g->d_intermediate, H, 2, FX_NORMAL},
            {"mlp.up_proj.weight", g->d_intermediate, H, 2, FX_NORMAL},
            {"mlp.down_proj.weight", H, g->d_intermediate, 2, FX_NORMAL},
        };
        for (size_t k = 0; k < sizeof(spec) / sizeof(spec[0]); k++) {
            fmt(n, sizeof(n), "layers.%u.%s", i, spec[k].suffix);
            add_plain(l, n, LQ_DTYPE_BF16, spec[k].rows, spec[k].cols, spec[k].rank, spec[k].kind, 0.02f);
        }
    }
    for (size_t i = first; i < l->n; i++) {
        char logical[256];
        fmt(logical, sizeof(logical), "dflash.%s", l->t[i].name);
        memcpy(l->t[i].parts[0].logical, logical, sizeof(logical));
    }
}

/* ---- config.json ---- */

static cJSON *int_array(const int *v, uint32_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

cJSON *fx_config_backbone(const fx_geometry *g, int fp8, int f32)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString(fp8 ? "MiMoV2ForCausalLM" : "MiMoV2FlashForCausalLM"));
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_AddStringToObject(c, "model_type", fp8 ? "mimo_v2" : "mimo_v2_flash");
    cJSON_AddNumberToObject(c, "vocab_size", g->vocab);
    cJSON_AddNumberToObject(c, "hidden_size", g->hidden);
    cJSON_AddNumberToObject(c, "num_hidden_layers", g->layers);
    cJSON_AddItemToObject(c, "hybrid_layer_pattern", int_array(g->hybrid, g->layers));
    cJSON_AddItemToObject(c, "moe_layer_freq", int_array(g->moe, g->layers));
    cJSON_AddNumberToObject(c, "num_attention_heads", g->heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", g->kv_full);
    cJSON_AddNumberToObject(c, "head_dim", g->head_dim);
    cJSON_AddNumberToObject(c, "v_head_dim", g->v_head_dim);
    cJSON_AddNumberToObject(c, "swa_num_attention_heads", g->swa_heads);
    cJSON_AddNumberToObject(c, "swa_num_key_value_heads", g->kv_swa);
    cJSON_AddNumberToObject(c, "swa_head_dim", g->head_dim);
    cJSON_AddNumberToObject(c, "swa_v_head_dim", g->v_head_dim);
    cJSON_AddNumberToObject(c, "partial_rotary_factor", g->partial_rotary);
    cJSON_AddNumberToObject(c, "rope_theta", g->rope_theta);
    cJSON_AddNumberToObject(c, "swa_rope_theta", g->swa_rope_theta);
    cJSON_AddNumberToObject(c, "sliding_window", g->window);
    cJSON_AddNumberToObject(c, "sliding_window_size", g->window);
    cJSON_AddNumberToObject(c, "attention_chunk_size", g->window);
    cJSON_AddBoolToObject(c, "add_swa_attention_sink_bias", 1);
    cJSON_AddBoolToObject(c, "add_full_attention_sink_bias", 0);
    cJSON_AddNumberToObject(c, "attention_value_scale", g->value_scale);
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    if (fp8)
        cJSON_AddStringToObject(c, "attention_projection_layout", "fused_qkv");
    cJSON_AddNumberToObject(c, "intermediate_size", g->intermediate);
    cJSON_AddNumberToObject(c, "moe_intermediate_size", g->moe_intermediate);
    cJSON_AddNumberToObject(c, "n_routed_experts", g->experts);
    cJSON_AddNumberToObject(c, "num_experts_per_tok", g->top_k);
    cJSON_AddNullToObject(c, "n_shared_experts");
    cJSON_AddStringToObject(c, "scoring_func", "sigmoid");
    cJSON_AddStringToObject(c, "topk_method", "noaux_tc");
    cJSON_AddNumberToObject(c, "n_group", 1);
    cJSON_AddNumberToObject(c, "topk_group", 1);
    cJSON_AddBoolToObject(c, "norm_topk_prob", 1);
    cJSON_AddNullToObject(c, "routed_scaling_factor");
    cJSON_AddNumberToObject(c, "layernorm_epsilon", 1e-5);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "max_position_embeddings", g->max_pos);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    cJSON_AddStringToObject(c, "torch_dtype", f32 ? "float32" : "bfloat16");
    if (!g->no_token_ids) {
        cJSON_AddNumberToObject(c, "eos_token_id", g->vocab - 3);
        cJSON_AddNumberToObject(c, "pad_token_id", g->vocab - 2);
    }
    if (fp8) {
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
        cJSON_AddStringToObject(q, "fmt", "e4m3");
        cJSON_AddStringToObject(q, "quant_method", "fp8");
        int blk[2] = {128, 128};
        cJSON_AddItemToObject(q, "weight_block_size", int_array(blk, 2));
        cJSON *ign = cJSON_CreateArray();
        for (uint32_t L = 0; L < g->layers; L++) {
            char n[96];
            fmt(n, sizeof(n), "model.layers.%u.self_attn.o_proj", L);
            cJSON_AddItemToArray(ign, cJSON_CreateString(n));
        }
        /* CFG-PRO lists the MTP block's o_proj under this name (mimo_arch.md 2.3). */
        if (g->mtp_layers)
            cJSON_AddItemToArray(ign, cJSON_CreateString("model.decoder.self_attn.o_proj"));
        cJSON_AddItemToObject(q, "ignored_layers", ign);
        cJSON_AddItemToObject(c, "quantization_config", q);
    }
    return c;
}

cJSON *fx_config_drafter(const fx_geometry *g)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("DFlashDraftModel"));
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_AddStringToObject(c, "model_type", "qwen3");
    cJSON_AddNumberToObject(c, "hidden_size", g->d_hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", g->d_intermediate);
    cJSON_AddNumberToObject(c, "num_hidden_layers", g->d_layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", g->d_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", g->d_kv);
    cJSON_AddNumberToObject(c, "head_dim", g->d_head_dim);
    cJSON_AddNumberToObject(c, "v_head_dim", g->d_head_dim);
    cJSON_AddNumberToObject(c, "partial_rotary_factor", 0.5);
    cJSON_AddNumberToObject(c, "rope_theta", 10000);
    cJSON_AddNumberToObject(c, "sliding_window", g->d_window);
    cJSON_AddNumberToObject(c, "max_position_embeddings", g->max_pos);
    cJSON_AddNumberToObject(c, "block_size", g->d_block);
    cJSON_AddNumberToObject(c, "num_target_layers", g->layers);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "vocab_size", g->vocab);
    cJSON_AddStringToObject(c, "torch_dtype", "bfloat16");
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    cJSON *d = cJSON_CreateObject();
    int taps[8];
    for (uint32_t i = 0; i < g->d_ntaps; i++)
        taps[i] = (int)g->d_taps[i];
    cJSON_AddItemToObject(d, "target_layer_ids", int_array(taps, g->d_ntaps));
    cJSON_AddNumberToObject(d, "mask_token_id", g->d_mask_id);
    cJSON_AddNumberToObject(d, "num_anchors", g->d_anchors);
    cJSON_AddNumberToObject(d, "block_size", g->d_block);
    cJSON_AddNumberToObject(d, "loss_decay_gamma", 7.0);
    cJSON_AddBoolToObject(d, "use_swa", 1);
    cJSON_AddNumberToObject(d, "swa_window_size", g->d_window);
    cJSON_AddNumberToObject(d, "backbone_rotary_base", 5000000);
    cJSON_AddNumberToObject(d, "attention_value_scale", 0.612);
    cJSON_AddBoolToObject(d, "attention_sink_bias", 1);
    cJSON_AddItemToObject(c, "dflash_config", d);
    return c;
}
