/* Tensor inventory of a MiMo checkpoint: the tensors its config.json calls for, checked against
 * the shards both ways (the static "loader contract" of mimo-verify).
 *
 * Expected tensors (reference/mimo_arch.md 3 and 4.1-4.3; H = hidden_size, V = vocab_size; per
 * layer nq/nkv/dqk/dv are the full or SWA head counts and dims as the layer's kind says):
 *   model.embed_tokens.weight [V, H]; lm_head.weight [V, H] unless tie_word_embeddings;
 *   model.norm.weight [H]; model.layers.L.{input,post_attention}_layernorm.weight [H];
 *   self_attn: split layout (mimo_v2_flash) q_proj [nq*dqk, H], k_proj [nkv*dqk, H],
 *     v_proj [nkv*dv, H]; fused layout (mimo_v2 / fused_qkv) qkv_proj
 *     [nq*dqk + S*max(1, nkv/S)*(dqk + dv), H] with S = lq_mimo_qkv_shards (mimo_arch.md 3.3);
 *     o_proj [H, nq*dv]; attention_sink_bias [nq] on SWA layers when add_swa_attention_sink_bias
 *     and on full layers when add_full_attention_sink_bias;
 *   dense layers: mlp.{gate,up}_proj [intermediate, H], mlp.down_proj [H, intermediate];
 *   MoE layers: mlp.gate.weight [E, H], mlp.gate.e_score_correction_bias [E], and for every
 *     expert e < E mlp.experts.e.{gate,up}_proj [moe_intermediate, H], down_proj
 *     [H, moe_intermediate].
 * Shapes above are logical [out, in]. Stored forms: BF16/F16/F32 as is; F8_E4M3 [N, K] with a
 * 2-D `weight_scale_inv` grid (fp8block.h; the q/k/v/qkv grids may restart per checkpoint-TP
 * shard, every other grid must be uniform); MXFP4 (routed experts only) U8 [N, K/2] with U8
 * `weight_scale` [N, K/32].
 *
 * Rules (lq_inv_issue.rule; .tensor names the tensor, or the config key for config-only issues):
 *   INV_MISSING         an expected tensor is absent
 *   INV_UNEXPECTED      a tensor the config does not explain (an extra expert, a sink on a layer
 *                       without one, a scale next to a weight that does not use it, ...).
 *                       Tensors under "model.mtp." are counted (lq_inv_result.mtp), not checked.
 *   INV_SHAPE           rank or shape differs from the stored form of the logical shape
 *   INV_DTYPE           a dtype loaders do not accept there: linear weights BF16/F16/F32/F8_E4M3,
 *                       plus U8 (MXFP4) for routed experts; embeddings, norms and sinks
 *                       BF16/F16/F32; router weight and bias F32/BF16. Shape and scale checks
 *                       are skipped for such a tensor.
 *   INV_SCALE_MISSING   FP8 weight without weight_scale_inv, MXFP4 weight without weight_scale
 *   INV_SCALE_SHAPE     scale not 2-D, FP8 grid that does not fit (lq_fp8_grid_detect with the
 *                       q/k/v shard hint), MXFP4 scale not [N, K/32]
 *   INV_SCALE_DTYPE     weight_scale_inv not F32/BF16/F8_E8M0; weight_scale not U8
 *   INV_SCALE_NAN       an E8M0 byte 0xFF in an MXFP4 weight_scale (first row and row count)
 *   INV_SCALE_ZERO_ROW  an MXFP4 scale row of all 0x00 whose weight row is all zero values (the
 *                       silently zeroed expert; first row and row count)
 *   INV_QUANT_CONFIG    quantization_config disagrees with the tensors: store_dtype "mxfp4" with a
 *                       routed expert weight that is not MXFP4, MXFP4 weights without store_dtype
 *                       "mxfp4", FP8 weights without an fp8 quant_method, an FP8 weight whose
 *                       module is in ignored_layers (exact module, or a dotted prefix of it),
 *                       mxfp4_block_size present and not 32. Aggregate problems name the first
 *                       tensor and give the count.
 *   INV_MORE            last issue when more than LQ_INV_MAX_ISSUES were found: "and N more"
 * Issues come in this order: per tensor in checkpoint name order (dtype, an FP8 weight in
 * ignored_layers, shape, scale rules, unexpected), then missing tensors in name order, then the
 * aggregate quantization_config issues. */
#ifndef LIBQUANT_INVENTORY_H
#define LIBQUANT_INVENTORY_H

#include <stddef.h>

#include "checkpoint.h"
#include "mimo_config.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_INV_MAX_ISSUES 1000

typedef struct lq_inv_issue {
    char rule[48];
    char tensor[256];
    char msg[384];
} lq_inv_issue;

typedef struct lq_inv_result {
    lq_inv_issue *issues;    /* nissues entries (owned; lq_inv_result_free) */
    size_t nissues;          /* at most LQ_INV_MAX_ISSUES + 1 (the INV_MORE line) */
    size_t expected;         /* tensors the config calls for (scales not counted) */
    size_t present;          /* of those, how many the checkpoint holds */
    size_t mxfp4_weights;    /* expected weights stored MXFP4 (U8 + weight_scale) */
    size_t fp8_weights;      /* expected weights stored F8_E4M3 */
    size_t mtp;              /* tensors under "model.mtp." (allowed, not checked) */
} lq_inv_result;

/* Checks ck against cfg. Returns LQ_OK whenever the check could run; problems found are issues
 * in *out (zeroed first). Errors: LQ_ERR_INVALID_ARGUMENT (NULL ck, cfg or out, a config with
 * no layer arrays), LQ_ERR_NO_MEMORY; *out then owns nothing. Reads every MXFP4 scale byte
 * (and the weight rows of all-zero scale rows); nothing else of the tensor data. */
lq_status lq_inventory_check(const lq_ckpt *ck, const lq_mimo_config *cfg, lq_inv_result *out,
                             lq_error *err);

/* Frees the issues and zeroes r. Accepts NULL and a zeroed struct. */
void lq_inv_result_free(lq_inv_result *r);

#ifdef __cplusplus
}
#endif
#endif
