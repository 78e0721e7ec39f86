/* DFlash speculative decoding on the CPU runtime (reference/dflash.md 1, 3; mimo_arch.md 5.2).
 *
 * The drafter is a small Qwen3-style stack with no embedding and no lm_head of its own. For every
 * committed position the target's residual streams after the tapped layers are concatenated, put
 * through fc and hidden_norm, and projected by every draft layer (k_proj, k_norm, RoPE at the real
 * position; v_proj times the value scale) into that layer's context cache. A draft pass runs the
 * block [anchor, MASK x (B - 1)] at positions p..p+B-1 (target embeddings, the MASK rows replaced by
 * mask_embedding.pt): per layer q/k/v projections, per-head q_norm/k_norm, partial RoPE, values
 * scaled; each block row attends to the context keys c < p with q - c < W on SWA layers and to the
 * block's own keys (all of them when the layer is non-causal, as MiMo's use_swa drafter is), with a
 * per-head sink logit; then o_proj, residual, SwiGLU MLP, residual; the final norm and the target's
 * lm_head give logits for rows 1..B-1, whose argmaxes are the B - 1 drafts. Block keys and values
 * are never kept.
 *
 * The generation loop (generate.h) verifies [anchor, d_1..d_k] in one target forward and accepts
 * with sample.h's rule; only committed positions' features ever enter the drafter's cache. */
#ifndef MIMO_RUNTIME_DFLASH_H
#define MIMO_RUNTIME_DFLASH_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/model.h"

#define RT_MAX_BLOCK 64

typedef struct rt_drafter rt_drafter;

typedef struct rt_drafter_opts {
    /* RoPE base of the drafter: 0 = the config's rope_theta (what vLLM and the public oracles use),
     * else this value (e.g. dflash_config.backbone_rotary_base; mimo_arch.md 7.5 lists it as open). */
    double rope_theta;
} rt_drafter_opts;

/* Opens DIR (a drafter directory, e.g. MODEL/dflash) for target m: lq_drafter_open's checks
 * (DF_* rules) plus the runtime's (RT_* rules, e.g. a weight format the runtime cannot read). */
lq_status rt_drafter_open(const char *dir, const rt_model *m, const rt_drafter_opts *o, rt_drafter **out,
                          lq_error *err);
void rt_drafter_close(rt_drafter *d);
const lq_drafter_config *rt_drafter_config(const rt_drafter *d);

/* The drafter's context cache: per draft layer the keys and values of committed positions
 * 0..len-1 (a ring of the window on SWA layers). */
typedef struct rt_dcache rt_dcache;
lq_status rt_dcache_new(const rt_drafter *d, size_t max_tokens, rt_dcache **out, lq_error *err);
void rt_dcache_free(rt_dcache *c);
size_t rt_dcache_len(const rt_dcache *c);

/* Appends n committed positions len..len+n-1 from their target tap features
 * ([n, ntaps * target hidden], rt_out's tap layout). ctx_out: NULL or [n, hidden], the fused
 * features after fc and hidden_norm. */
lq_status rt_draft_ingest(const rt_drafter *d, rt_dcache *c, const float *taps, size_t n, int threads, float *ctx_out,
                          lq_error *err);

/* Appends the n committed positions whose tap features a target step kept (rt_sel.taps) in kv,
 * rows row0..row0+n-1 of that step: the generation loop's path, where taps never leave the backend.
 * kv must have been made with the drafter's taps (rt_cache_opts). */
lq_status rt_draft_ingest_ctx(const rt_drafter *d, rt_dcache *c, const rt_cache *kv, size_t row0, size_t n, int threads,
                              lq_error *err);

/* One draft pass: block [anchor, MASK x k] at positions len..len+k (len = the cache length = the
 * anchor's position), 1 <= k < RT_MAX_BLOCK. logits: NULL or [k, vocab] for rows 1..k; drafts: [k]
 * argmaxes. The cached positions are not changed (the context's workspace is). */
lq_status rt_draft_block(const rt_drafter *d, rt_dcache *c, int32_t anchor, uint32_t k, int threads, float *logits,
                         int32_t *drafts, lq_error *err);

/* One greedy DFlash iteration in a single call, where the backend can run it without host round
 * trips (the CUDA backend: one device-to-host copy, the accepted ids): ingests the pend tap rows kv's
 * last step kept (rows 0..pend-1) into c, drafts k tokens after anchor (at kv's length, which must be
 * c's length after the ingest), verifies [anchor, drafts] in kv with taps kept, accepts the longest
 * prefix of drafts equal to the target's argmax and rolls kv back to its old length + a + 1.
 * *a accepted; ids[0..a] = the accepted drafts, then the bonus (rt_accept's greedy rule). A backend
 * without this path returns LQ_ERR_UNSUPPORTED (rule RT_BACKEND) having done nothing: the caller
 * then goes step by step (rt_draft_ingest_ctx, rt_draft_block, rt_step_ex, rt_accept_rows). */
lq_status rt_dflash_iter(const rt_drafter *d, rt_dcache *c, rt_cache *kv, size_t pend, int32_t anchor, uint32_t k,
                         uint32_t *a, int32_t *ids, lq_error *err);

#endif
