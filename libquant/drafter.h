/* DFlash drafter directory (`dflash/`): open, validate against its target, expose.
 *
 * A drafter is a small Qwen3-style stack with no embedding and no lm_head of its own: it reads
 * the target's hidden states at target_layer_ids through `fc`, embeds with the target's
 * embed_tokens and replaces the MASK row with mask_embedding.pt (reference/dflash.md 1, 2;
 * reference/mimo_arch.md 5.2). Opening checks everything a runtime or a packer relies on,
 * before any tensor is used:
 *
 *   DF_CONFIG            config.json missing (LQ_ERR_NOT_FOUND), unreadable, not strict JSON
 *                        (the JSON_* rule is quoted in the message), not an object, or a
 *                        required key (hidden_size, intermediate_size, num_hidden_layers,
 *                        num_attention_heads, num_key_value_heads, head_dim, rms_norm_eps)
 *                        absent or of the wrong type (lq_error.tensor names the key)
 *   DF_VALUE             a value outside its sane range: layers 1..256, heads % kv heads,
 *                        sizes >= 1 (hidden <= 2^20, intermediate <= 2^24, heads <= 65536,
 *                        head dims <= 4096), products past the size caps (heads x head dim,
 *                        and taps x target hidden, at most 2^20; q/o_proj, an MLP projection
 *                        and fc at most 2^34 elements; lq_error.tensor names the key),
 *                        partial_rotary_factor in (0, 1] giving even rotary dims,
 *                        thetas > 1, eps in (0, 0.5], window >= 1, value scale > 0, two keys for
 *                        the window disagreeing, sliding-window layers without a window
 *                        (LQ_ERR_NOT_FOUND), layer_types of the wrong length or with an unknown
 *                        entry, hidden_act other than silu (LQ_ERR_UNSUPPORTED); two weight files
 *                        without an index (ambiguous)
 *   DF_ARCH              architectures[0] is not "DFlashDraftModel" (LQ_ERR_UNSUPPORTED)
 *   DF_BLOCK             block_size (dflash_config.block_size, else top-level) absent, < 2 or
 *                        above 4096, or the two keys disagree
 *   DF_TAPS              dflash_config.target_layer_ids absent, empty, longer than
 *                        LQ_DRAFTER_MAX_TAPS, not strictly increasing, or an id >= the target's
 *                        num_hidden_layers
 *   DF_TARGET_LAYERS     num_target_layers (top level or dflash_config) differs from the
 *                        target's num_hidden_layers
 *   DF_MASK_ID           mask_token_id (dflash_config, else top level) absent, the two keys
 *                        disagree, or it is not below the target's vocab_size
 *   DF_HIDDEN            hidden_size (or target_hidden_size when present) differs from the
 *                        target's hidden_size: the drafter embeds with the target's table and
 *                        reads its hidden states
 *   DF_FC_SHAPE          fc.weight is not [hidden, ntaps x target hidden]
 *   DF_TENSOR_MISSING    an expected tensor is absent (LQ_ERR_NOT_FOUND)
 *   DF_TENSOR_SHAPE      an expected tensor has another shape or rank
 *   DF_TENSOR_UNEXPECTED a tensor outside the expected set (embed_tokens, lm_head, mask_hidden,
 *                        d2t, layers beyond num_hidden_layers, a sink when sinks are off, ...)
 *   DF_DTYPE             a tensor that is not BF16, F16 or F32
 *   DF_MASK_FILE         mask_embedding.pt absent (LQ_ERR_NOT_FOUND); a file that is present
 *                        but malformed keeps the reader's TZ_* rule (torchzip.h)
 *   DF_MASK_LEN          the embedding's length differs from hidden_size
 *   DF_MASK_ID_MISMATCH  the file's mask_token_id differs from the config's
 *   DF_TENSOR_VALUE      a weight element is NaN, infinite or above LQ_DRAFTER_MAX_ABS in
 *                        magnitude (LQ_ERR_NUMERIC; the message gives the element, its row and
 *                        column, and the value); checked after the shapes and dtypes
 *   DF_MASK_VALUE        the embedding holds NaN, infinity or a value above LQ_DRAFTER_MAX_ABS in
 *                        magnitude (LQ_ERR_NUMERIC)
 * plus the checkpoint rules of checkpoint.h (CKPT_*, ST_*) for the weights. Status is
 * LQ_ERR_CORRUPT unless stated. Checks run in the order listed (config, then weights, then the
 * mask file), so a drafter broken in one place reports that place's rule. Every weight value is
 * read once at open (a drafter is a few layers, small next to its target).
 *
 * Expected tensors (dflash.md 2.3; H = hidden, d = head_dim, dv = v_head_dim, nh / nkv heads,
 * I = intermediate, n taps, Ht = target hidden), names relative to the directory with no
 * "model." prefix, as MiMo ships them:
 *   fc.weight [H, n*Ht], hidden_norm.weight [H], norm.weight [H], and per layer i:
 *   layers.i.input_layernorm.weight [H], layers.i.post_attention_layernorm.weight [H],
 *   layers.i.self_attn.{q_proj [nh*d, H], k_proj [nkv*d, H], v_proj [nkv*dv, H],
 *   o_proj [H, nh*dv]}.weight, layers.i.self_attn.{q_norm, k_norm}.weight [d],
 *   layers.i.mlp.{gate_proj, up_proj [I, H], down_proj [H, I]}.weight,
 *   layers.i.self_attn.attention_sink_bias [nh] when sinks are on, and with attention_bias
 *   true the biases layers.i.self_attn.{q,k,v,o}_proj.bias [nh*d], [nkv*d], [nkv*dv], [H].
 *
 * Weights: `model.safetensors.index.json` when present (MiMo's names
 * `dflash_draft_model.safetensors`); without an index, the single file
 * `dflash_draft_model.safetensors` or `model.safetensors`. */
#ifndef LIBQUANT_DRAFTER_H
#define LIBQUANT_DRAFTER_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "mimo_config.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_DRAFTER_MAX_TAPS 64
#define LQ_DRAFTER_MAX_LAYERS 256
/* Largest |value| accepted in a drafter weight or the mask embedding: the largest finite F16.
 * Trained weights and embeddings are orders of magnitude smaller, and an engine that runs the
 * drafter in F16 would overflow past it; anything above is a corrupted or hostile file. */
#define LQ_DRAFTER_MAX_ABS 65504.0 /* = LQ_VALUES_MAX_ABS (values.h) */

/* Parsed drafter config. Optional keys absent take the value given in the comment. */
typedef struct lq_drafter_config {
    char architecture[64];         /* "DFlashDraftModel" */
    char model_type[32];           /* "qwen3"; "" when absent */
    uint32_t hidden_size, intermediate_size, num_hidden_layers;
    uint32_t num_attention_heads, num_key_value_heads, head_dim;
    uint32_t v_head_dim;           /* absent: head_dim */
    uint32_t target_hidden_size;   /* target_hidden_size; absent: the target's hidden_size */
    uint32_t num_target_layers;    /* absent: the target's num_hidden_layers */
    uint32_t block_size;           /* B: one draft pass proposes B - 1 tokens */
    uint32_t n_taps;
    uint32_t taps[LQ_DRAFTER_MAX_TAPS]; /* target_layer_ids: residual after target layer l */
    uint32_t mask_token_id;
    int use_swa;                   /* dflash_config.use_swa; absent: 0 */
    uint32_t window;               /* dflash_config.swa_window_size, else sliding_window; 0 none */
    uint8_t is_swa[LQ_DRAFTER_MAX_LAYERS];    /* per layer, resolved as dflash.md 1.7 */
    uint8_t is_causal[LQ_DRAFTER_MAX_LAYERS]; /* per layer, resolved as dflash.md 1.7 */
    int attention_sink;            /* dflash_config.attention_sink_bias, else
                                      add_swa_attention_sink_bias; absent: 0 */
    int attention_bias;            /* absent: 0 */
    double attention_value_scale;  /* dflash_config.attention_value_scale; absent: 1.0 */
    double partial_rotary_factor;  /* absent: 1.0 */
    uint32_t rope_dim;             /* int(head_dim x partial_rotary_factor) */
    double rope_theta;             /* rope_theta or rope_parameters.rope_theta; absent: 10000 */
    double backbone_rotary_base;   /* dflash_config.backbone_rotary_base; absent: 0 (see
                                      mimo_arch.md 7.5: which base the drafter uses is open) */
    double rms_norm_eps;
} lq_drafter_config;

typedef struct lq_drafter lq_drafter;

/* Opens and validates dir against target (the backbone's parsed config). target may be NULL,
 * then the checks that need it use the drafter's own target_hidden_size / num_target_layers
 * when present (fc in = n x target_hidden_size, else n x hidden_size) and skip the rest
 * (tap bound without num_target_layers, mask id bound). On failure *out is NULL and nothing
 * stays open. */
lq_status lq_drafter_open(const char *dir, const lq_mimo_config *target, lq_drafter **out,
                          lq_error *err);
void lq_drafter_close(lq_drafter *d); /* accepts NULL */

/* The opened weights (so a packer can re-write every tensor). Owned by d. */
const lq_ckpt *lq_drafter_ckpt(const lq_drafter *d);
const lq_drafter_config *lq_drafter_get_config(const lq_drafter *d);
/* The mask embedding: bf16 bits [*len] (= hidden_size), and the id stored in the file (equal
 * to the config's). Owned by d. len and id may be NULL. */
const uint16_t *lq_drafter_mask_embedding(const lq_drafter *d, uint64_t *len, int64_t *id);
const char *lq_drafter_config_path(const lq_drafter *d); /* dir/config.json */
const char *lq_drafter_mask_path(const lq_drafter *d);   /* dir/mask_embedding.pt */

#ifdef __cplusplus
}
#endif
#endif
