/* Fixture geometry presets and the row-keyed generator (fixture.h). */
#include "fixture.h"

#include <math.h>
#include <stdio.h>
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
    .d_taps = {0, 5, 11}, .d_ntaps = 3, .d_mask_id = 4095,
};

/* medium: MiMo-V2-Flash per-layer geometry (mimo_arch.md 2.1 and 6.2): hidden 4096, 64 q heads,
 * 4 global / 8 SWA KV heads, dense 16384, experts of 2048, real vocab; 6 layers and 32 experts
 * so it fits one GPU. Fused qkv over 4 shards as in V2.5 (13568 / 14848 rows). */
static const fx_geometry medium = {
    .preset = "medium", .vocab = 152576, .hidden = 4096, .layers = 6,
    .heads = 64, .kv_full = 4, .kv_swa = 8, .swa_heads = 64, .head_dim = 192, .v_head_dim = 128,
    .intermediate = 16384, .moe_intermediate = 2048, .experts = 32, .top_k = 8, .window = 128,
    .rope_theta = 5e6, .swa_rope_theta = 1e4, .partial_rotary = 0.334, .value_scale = 0.707,
    .max_pos = 262144,
    .hybrid = {0, 1, 1, 1, 1, 0},
    .moe = {0, 1, 1, 1, 1, 1},
    .qkv_shards = 4, .shard_bytes = 5000000000ull,
    .d_layers = 0,
};

int fx_geometry_preset(const char *name, fx_geometry *g)
{
    if (strcmp(name, "tiny") == 0)
        *g = tiny;
    else if (strcmp(name, "medium") == 0)
        *g = medium;
    else
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
            /* The tiny preset's taps 0 / 5 / 11 of 12, for any depth. */
            uint32_t t[3] = {0, (n - 1) / 2, n - 1}, k = 0;
            for (int i = 0; i < 3; i++)
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
