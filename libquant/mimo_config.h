/* MiMo-V2 backbone config.json, read in both dialects into one struct.
 *
 * Xiaomi's hub dialect (the files shipped with MiMo-V2-Flash, V2.5 and V2.5-Pro;
 * reference/mimo_arch.md 2) and the transformers port's dialect (MiMoV2FlashConfig, as
 * save_pretrained writes it; the GPU test host notes) describe the same model with different
 * keys. Both are accepted, and a file may carry keys of both:
 *
 *   value                    hub key(s)                              transformers key(s)
 *   per-layer attention      hybrid_layer_pattern (0 global, 1 SWA)  layer_types ("full_attention",
 *                                                                    "sliding_attention")
 *   per-layer MLP            moe_layer_freq (0 dense, 1 MoE)         mlp_layer_types ("dense", "sparse")
 *   global RoPE              rope_theta, partial_rotary_factor       rope_parameters.full_attention.
 *                                                                    {rope_theta, partial_rotary_factor}
 *   SWA RoPE                 swa_rope_theta, partial_rotary_factor   rope_parameters.sliding_attention.{...}
 *   SWA heads / KV heads     swa_num_attention_heads,                implicit: num_attention_heads and
 *                            swa_num_key_value_heads                 2 x num_key_value_heads
 *   SWA head dims            swa_head_dim, swa_v_head_dim            implicit: head_dim, v_head_dim
 *   sinks                    add_swa_attention_sink_bias,            implicit: SWA yes, global no
 *                            add_full_attention_sink_bias
 *   window                   sliding_window, sliding_window_size     sliding_window
 *   RMSNorm eps              layernorm_epsilon                       rms_norm_eps
 *   scoring                  scoring_func                            implicit: sigmoid
 *   FP8 exclusions           quantization_config.ignored_layers      quantization_config.modules_to_not_convert
 *
 * When two keys (of either dialect) give the same value explicitly and disagree, parsing fails
 * with CFG_CONFLICT. Implicit transformers values never conflict with explicit keys: an explicit
 * key wins. That matters for SWA KV heads, which the transformers port hard-codes as twice the
 * global count; that is wrong for V2.5-Pro (8 and 8; mimo_arch.md 7.3), so
 * swa_num_key_value_heads is used whenever present. A file with only hub layer keys must carry
 * every swa_* key and the sink flags (every shipped hub config does); a file with only
 * transformers layer keys gets the implicit values.
 *
 * Defaults (only where every implementation agrees on what absence means):
 *   tie_word_embeddings absent -> false (MiMo ships an untied lm_head; transformers' default).
 *   routed_scaling_factor null -> 1.0 (hub files store null; HF-T, SGLang and TRT read 1.0).
 *   attention_value_scale null -> 1.0 (HF-T skips the scaling when it is None). An ABSENT
 *   attention_value_scale is an error (CFG_KEY): transformers would default to 0.707 while a
 *   loader reading "absent" as "no scaling" would use 1.0, and every shipped config carries the
 *   key, so guessing would silently change every attention output by ~30%.
 *   rope_scaling / rope_type: absent, null or "default" only; anything else is LQ_ERR_UNSUPPORTED.
 *   n_shared_experts: absent, null or 0 only (MiMo has no shared expert); else unsupported.
 *   n_group / topk_group: absent or null -> 1 (no group-limited routing; every shipped MiMo
 *   config says 1 and 1).
 *   topk_method: absent or "noaux_tc"; scoring_func: absent (transformers) or "sigmoid".
 *   architectures: optional (a config saved without a model has none); when present a
 *   non-empty array of strings.
 *   eos/bos/pad token ids: optional (eos may be an integer or a list of integers).
 *   quantization_config: optional.
 *
 * Rules (lq_error.rule; lq_error.tensor holds the key path, e.g. "rope_parameters.
 * sliding_attention.rope_theta"; lq_error.file the file name passed in):
 *   CFG_KEY         a required key is absent, or a key has the wrong JSON type (an integer key
 *                   holding a string or a fraction, a string key holding a number, a list that
 *                   is not an array, a container that is not an object) (LQ_ERR_NOT_FOUND when
 *                   absent, LQ_ERR_CORRUPT for a wrong type)
 *   CFG_MODEL_TYPE  model_type is not "mimo_v2_flash" or "mimo_v2" (LQ_ERR_UNSUPPORTED)
 *   CFG_PATTERN     a per-layer list whose length differs from num_hidden_layers, or an element
 *                   that is not 0/1 (hub) or a known layer type string (transformers)
 *                   (LQ_ERR_CORRUPT)
 *   CFG_CONFLICT    two keys give different values for the same thing (LQ_ERR_CORRUPT)
 *   CFG_VALUE       a value outside its sane range: a negative integer, layers 1..4096,
 *                   hidden/vocab/heads/dims/sizes >= 1 and bounded, heads % kv_heads == 0 for
 *                   both layer kinds, RoPE dims int(head_dim x partial_rotary_factor) even and
 *                   >= 2, thetas > 1, eps in (0, 0.5], value scale and routed scale finite and
 *                   > 0, top-k <= experts, n_group dividing the experts into groups of at
 *                   least 2 when n_group > 1, topk_group <= n_group, top-k <= topk_group x
 *                   experts / n_group, token ids < vocab, q heads and SWA KV heads of a fused qkv dividing into
 *                   the checkpoint-TP shards, quantization block sizes >= 1, and the size caps
 *                   on products of sizes (below) (LQ_ERR_CORRUPT); or
 *                   a feature we do not implement: RoPE scaling, a shared expert, scoring other
 *                   than sigmoid, topk_method other than noaux_tc, hidden_act other than silu,
 *                   attention_bias true, an unknown attention_projection_layout
 *                   (LQ_ERR_UNSUPPORTED)
 * plus LQ_ERR_NO_MEMORY and LQ_ERR_INVALID_ARGUMENT (NULL cfg or out).
 *
 * Size caps (CFG_VALUE, lq_error.tensor naming the key that dominates; reasons in
 * mimo_config.c and docs/formats.md): heads x head dim of any projection <= 2^20, elements of
 * any weight matrix (embedding, fused qkv, o_proj, dense and expert projections, router) <= 2^34,
 * parameters of the whole backbone <= 2^44. With these, every element count and every byte
 * count of an f32 copy of one matrix or of the model fits in 64 bits. */
#ifndef LIBQUANT_MIMO_CONFIG_H
#define LIBQUANT_MIMO_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_MIMO_MAX_LAYERS 4096
#define LQ_MIMO_MAX_EOS 16

/* Bits of lq_mimo_config.dialect: which dialects' layer keys the file carries. */
#define LQ_MIMO_DIALECT_HUB 1u           /* hybrid_layer_pattern present */
#define LQ_MIMO_DIALECT_TRANSFORMERS 2u  /* layer_types present */

/* quantization_config, summarized. Strings are "" and numbers 0 when the key is absent. */
typedef struct lq_mimo_quant {
    int present;                  /* quantization_config is an object in the file */
    char quant_method[32];        /* required inside the object: "fp8", ... */
    char fmt[32];                 /* "e4m3" */
    char activation_scheme[32];   /* "dynamic" */
    char store_dtype[32];         /* "fp8", "mxfp4" (FP4-DFlash: experts MXFP4) */
    uint32_t weight_block_size[2];/* [128, 128] */
    uint32_t mxfp4_block_size;    /* 32 */
    char **ignored_layers;        /* owned strings (ignored_layers or modules_to_not_convert) */
    size_t n_ignored;
} lq_mimo_quant;

typedef struct lq_mimo_config {
    char model_type[32];          /* "mimo_v2_flash" or "mimo_v2" */
    char architecture[128];       /* architectures[0]; "" when absent or null */
    unsigned dialect;             /* LQ_MIMO_DIALECT_* bits */

    uint32_t vocab_size, hidden_size, num_hidden_layers;
    uint8_t *is_swa;              /* [num_hidden_layers]: 1 = sliding window, 0 = global; owned */
    uint8_t *is_moe;              /* [num_hidden_layers]: 1 = MoE, 0 = dense MLP; owned */
    uint32_t num_swa_layers, num_moe_layers;

    /* global (full-attention) layers */
    uint32_t num_attention_heads, num_key_value_heads, head_dim, v_head_dim;
    /* sliding-window layers */
    uint32_t swa_num_attention_heads, swa_num_key_value_heads, swa_head_dim, swa_v_head_dim;

    double partial_rotary_factor, swa_partial_rotary_factor;
    uint32_t rope_dim, swa_rope_dim;   /* int(head_dim x factor): 64 for 192 x 0.334 */
    double rope_theta, swa_rope_theta;
    uint32_t sliding_window;
    int swa_attention_sink, full_attention_sink;
    double attention_value_scale;
    uint64_t max_position_embeddings;  /* 0 when absent */

    uint32_t intermediate_size, moe_intermediate_size;
    uint32_t n_routed_experts, num_experts_per_tok;
    /* Group-limited selection (noaux_tc; mimo_arch.md 3.5): the experts form n_group groups of
     * n_routed_experts / n_group consecutive ids; a group's score is the sum of its two best
     * (score + e_score_correction_bias) values; only the topk_group best groups compete for the
     * top-k, the others are masked out. 1 and 1 (also when absent) select over all experts.
     * Guaranteed: n_group divides n_routed_experts (groups of >= 2 when n_group > 1),
     * 1 <= topk_group <= n_group, num_experts_per_tok <= topk_group x experts / n_group. */
    uint32_t n_group, topk_group;
    int norm_topk_prob;
    double routed_scaling_factor;
    char scoring_func[16];             /* "sigmoid" */

    double rms_norm_eps;
    int tie_word_embeddings;
    int fused_qkv;                     /* model_type mimo_v2 or layout "fused_qkv" */

    int64_t bos_token_id, pad_token_id;      /* -1 when absent or null */
    uint32_t n_eos;
    int64_t eos_token_ids[LQ_MIMO_MAX_EOS];

    lq_mimo_quant quant;
} lq_mimo_config;

/* Parses a config.json tree (for example lq_ckpt_config()). `file` names it in errors (may be
 * NULL). On success *out holds the values and owns its arrays (lq_mimo_config_free); on failure
 * *out is zeroed and owns nothing. */
lq_status lq_mimo_config_parse(const cJSON *cfg, const char *file, lq_mimo_config *out,
                               lq_error *err);

/* Frees the owned arrays and zeroes c. Accepts NULL and a zeroed struct. */
void lq_mimo_config_free(lq_mimo_config *c);

/* Checkpoint-TP shard count of the q/k/v weights (reference/mimo_arch.md 3.3, 4.4): the fused
 * qkv rows are interleaved over num_key_value_heads shards, and FP8 scale grids run
 * contiguously within each shard. Returns num_key_value_heads (also for the split layout, where
 * it is the shard count the per-shard grid rule predicts; callers may confirm it with the
 * generic grid detector), or 0 for NULL. */
uint32_t lq_mimo_qkv_shards(const lq_mimo_config *c);

#ifdef __cplusplus
}
#endif
#endif
