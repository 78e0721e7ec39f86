/* MiMo-architecture fixture models: geometry presets and the deterministic weight generator.
 *
 * A fixture is a real HF checkpoint directory (config.json in Xiaomi's hub dialect, safetensors
 * shards, index) whose weights come from a seeded generator keyed by (seed, logical tensor name,
 * row). Because every row is generated on its own, the same logical weights appear in every
 * variant (BF16 split q/k/v, FP8 fused qkv), any tensor can be streamed row by row, and two runs
 * with the same seed are byte-identical. Logical names are the split-layout (mimo_v2_flash)
 * names; fused qkv rows map back to the q, k and v rows they came from. */
#ifndef MIMO_TOOLS_FIXTURE_H
#define MIMO_TOOLS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#define FX_MAX_LAYERS 64
#define FX_MAX_EXPERTS 65536

typedef struct fx_geometry {
    const char *preset;
    uint32_t vocab, hidden, layers;
    uint32_t heads, kv_full, kv_swa, swa_heads;
    uint32_t head_dim, v_head_dim;
    uint32_t intermediate, moe_intermediate, experts, top_k;
    uint32_t window;
    double rope_theta, swa_rope_theta, partial_rotary, value_scale;
    uint32_t max_pos;
    int hybrid[FX_MAX_LAYERS]; /* 0 = global (full) attention, 1 = sliding window */
    int moe[FX_MAX_LAYERS];    /* 0 = dense MLP, 1 = MoE */
    uint32_t qkv_shards;    /* checkpoint-TP shards of the fused qkv (= kv_full) */
    uint64_t shard_bytes;   /* default max shard size for this preset */
    /* drafter (tiny only; 0 layers = none) */
    uint32_t d_layers, d_hidden, d_heads, d_kv, d_head_dim, d_intermediate, d_window, d_block;
    uint32_t d_taps[8], d_ntaps;
    uint32_t d_mask_id;
} fx_geometry;

/* Fills g for "tiny" or "medium"; returns -1 for an unknown preset. */
int fx_geometry_preset(const char *name, fx_geometry *g);

/* Resizes a preset: a value of 0 keeps the preset's. vocab (8..2^31-1) moves the config's
 * eos / pad ids and the drafter's mask id with it (always the last three ids, as in the tiny
 * preset); experts (top_k..FX_MAX_EXPERTS) keeps top-k and the expert size; layers
 * (1..FX_MAX_LAYERS) repeats the preset's attention pattern, keeps layer 0 dense and every
 * other layer MoE, and puts the drafter's taps at 0, (layers - 1) / 2 and layers - 1 (duplicates
 * dropped). Values equal to the preset's leave g unchanged, so default output stays
 * byte-identical. Returns -1 with a message in why when a value is out of range. */
int fx_geometry_resize(fx_geometry *g, uint64_t vocab, uint64_t experts, uint64_t layers,
                       char *why, size_t cap);

typedef enum fx_kind {
    FX_NORMAL = 0,   /* N(0, std) */
    FX_NORM_WEIGHT,  /* 1 + N(0, 0.1): RMSNorm gains */
    FX_SINK,         /* N(0, 1): attention sink logits */
    FX_BIAS          /* N(0, 0.05): router e_score_correction_bias */
} fx_kind;

/* Generates row `row` (cols values) of logical tensor `logical`. */
void fx_gen_row(uint64_t seed, const char *logical, uint64_t row, uint64_t cols, fx_kind kind,
                float std, float *out);

#endif
