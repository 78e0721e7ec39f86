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

#include "libquant/libquant.h"

#define FX_MAX_LAYERS 128
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
    /* DFlash drafter (0 layers = none) */
    uint32_t d_layers, d_hidden, d_heads, d_kv, d_head_dim, d_intermediate, d_window, d_block;
    uint32_t d_taps[8], d_ntaps;
    uint32_t d_mask_id;
    uint32_t d_anchors;     /* dflash_config.num_anchors (training metadata) */
    int d_release_taps;     /* resized taps: 1 = the release's [0, 15, 31, 47, 69] of 70 scaled
                               to the depth, 0 = 0, (N - 1) / 2, N - 1 */
    /* MiMo-V2.5-Pro's checkpoint conventions (0 for tiny and medium) */
    uint32_t mtp_layers;    /* model.mtp.layers.{0..n-1}: SWA attention, dense MLP */
    uint32_t ep_ranks;      /* > 0: Pro's files, model_pp0_ep{r}_shard{m} + model_mtp */
    int no_token_ids;       /* config.json without eos_token_id / pad_token_id */
} fx_geometry;

/* Fills g for "tiny", "medium", "pro" or "pro-tiny"; returns -1 for an unknown preset.
 * tiny and medium have a drafter: tiny's is small; medium's has the release drafter's geometry
 * (reference/dflash.md 2.2, MiMo-V2.5-Pro's dflash/config.json) except its hidden size, which is
 * medium's (4096, not 6144: a drafter embeds with the target's embed_tokens and ends in its
 * lm_head, so libquant requires the two equal, DF_HIDDEN). pro is MiMo-V2.5-Pro's FP8 checkpoint
 * (reference/mimo_arch.md 2 and 4.1: 70 layers, 384 experts, 3 MTP layers, 159,581 tensors, no
 * drafter); pro-tiny has pro's names, layer pattern, KV heads, qkv sharding, MTP layers and file
 * layout with tiny widths (fixture.c lists them). */
int fx_geometry_preset(const char *name, fx_geometry *g);

/* Resizes a preset: a value of 0 keeps the preset's. vocab (8..2^31-1) moves the config's
 * eos / pad ids and the drafter's mask id with it (always the last three ids, as in the tiny
 * preset); experts (top_k..FX_MAX_EXPERTS) keeps top-k and the expert size; layers
 * (1..FX_MAX_LAYERS) repeats the preset's attention pattern (pro's whole 70-layer list, which has
 * no shorter period), keeps layer 0 dense and every other layer MoE, and puts the drafter's taps
 * at 0, (layers - 1) / 2 and layers - 1 (tiny), or at the release's five taps [0, 15, 31, 47, 69]
 * of 70 layers scaled to layers - 1 and rounded half up (medium: 0, 1, 2, 3, 5 at its own 6; five
 * taps from 5 layers on), duplicates dropped. Values equal to the preset's leave g unchanged, so
 * default output stays byte-identical. Returns -1 with a message in why when a value is out of range. */
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

/* ---- the tensors a fixture holds ---- */

#define FX_MAX_PARTS 48

typedef struct fx_part {
    char logical[256];
    uint64_t row0, nrows; /* logical rows [row0, row0 + nrows) */
} fx_part;

typedef struct fx_tensor {
    char name[256];
    lq_dtype dtype;
    uint32_t rank;
    uint64_t shape[2];
    fx_kind kind;
    float std;
    fx_part parts[FX_MAX_PARTS]; /* stored rows = concatenation of parts */
    uint32_t nparts;
    int fp8;                  /* F8_E4M3 weight with a scale grid */
    int scale_of;             /* >= 0: the weight_scale_inv of that tensor */
    lq_fp8_grid grid;
    float *scales;            /* pass-1 result for fp8 weights */
    uint64_t nbytes;
    uint32_t shard;
} fx_tensor;

typedef struct fx_list {
    fx_tensor *t;
    size_t n, cap;
} fx_list;

/* The backbone's tensors in the variant's layout (fp8: fused qkv and FP8 weights, each followed
 * by its weight_scale_inv) and the drafter's (reference/dflash.md 2.3, all BF16), appended to l
 * in build order, unsorted, with the logical rows each stored row comes from. Aborts the process
 * on out-of-memory (a tool's helper). */
void fx_plan_backbone(const fx_geometry *g, int fp8, fx_list *l);
void fx_plan_drafter(const fx_geometry *g, fx_list *l);

/* config.json of the backbone (Xiaomi's hub dialect; fp8: mimo_v2 with quantization_config;
 * f32: torch_dtype float32) and of the drafter (dflash/config.json). Caller owns the result. */
cJSON *fx_config_backbone(const fx_geometry *g, int fp8, int f32);
cJSON *fx_config_drafter(const fx_geometry *g);

#endif
