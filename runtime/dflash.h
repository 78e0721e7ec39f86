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
 * The target verifies [anchor, d_1..d_k] in one forward; acceptance is sample.h's rt_accept
 * (greedy: longest matching prefix plus the target's bonus token; sampling: exact rejection of
 * argmax proposals). The target cache is cut back to the committed tokens and only committed
 * positions' features ever enter the drafter's cache, so both caches always equal those of a
 * from-scratch run on the committed prefix. */
#ifndef MIMO_RUNTIME_DFLASH_H
#define MIMO_RUNTIME_DFLASH_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/model.h"
#include "runtime/sample.h"

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

/* One draft pass: block [anchor, MASK x k] at positions len..len+k (len = the cache length = the
 * anchor's position), 1 <= k < RT_MAX_BLOCK. logits: NULL or [k, vocab] for rows 1..k; drafts: [k]
 * argmaxes. The cache is not changed. */
lq_status rt_draft_block(const rt_drafter *d, const rt_dcache *c, int32_t anchor, uint32_t k, int threads, float *logits,
                         int32_t *drafts, lq_error *err);

/* ---- generation ---- */

typedef struct rt_gen_opts {
    size_t max_tokens;       /* tokens to generate at most (>= 1) */
    uint32_t block;          /* B with a drafter (2..RT_MAX_BLOCK); 0 = the drafter's block_size */
    rt_sampling sampling;
    const int32_t *stop;     /* stop ids (e.g. EOS): generation ends after the first one emitted */
    size_t n_stop;
    rt_opts rt;
    /* Called with every batch of newly committed tokens, in order; a non-zero return stops. */
    int (*on_tokens)(void *ctx, const int32_t *tokens, size_t n);
    void *cb_ctx;
    /* Testing hook: proposals from this function instead of the drafter (the drafter may then be
     * NULL while block > 1). committed[0..p) are the committed tokens, anchor the token at p. */
    lq_status (*propose)(void *ctx, const int32_t *committed, size_t p, int32_t anchor, uint32_t k, int32_t *drafts);
    void *propose_ctx;
} rt_gen_opts;

typedef struct rt_gen_stats {
    size_t prompt_tokens, generated;
    size_t steps;                          /* target forwards after the prefill */
    size_t accept_hist[RT_MAX_BLOCK + 1];  /* steps that committed i tokens (a + 1), i = 1..B */
    double tau;                            /* mean tokens committed per step (includes the bonus) */
    double prefill_s, decode_s;            /* wall time: the prompt; everything after */
    double draft_s, verify_s;              /* parts of decode_s: drafter (ingest + block), target */
    int stopped;                           /* 1: a stop token, 2: the callback */
} rt_gen_stats;

/* Generates after prompt[0..n) into out[0..max_tokens): plain decoding when d is NULL and there is
 * no propose hook (or block is 1), else DFlash with block B. *n_out = tokens written (a stop token
 * is included). Greedy DFlash output equals greedy plain output token for token. */
lq_status rt_generate(const rt_model *m, const rt_drafter *d, const int32_t *prompt, size_t n, const rt_gen_opts *o,
                      int32_t *out, size_t *n_out, rt_gen_stats *stats, lq_error *err);

#endif
