/* The generation loop, plain or DFlash speculative decoding, for any backend (reference/dflash.md
 * 3): prefill, then [ingest committed taps -> draft a block -> verify it in one target step ->
 * accept -> roll back] until the budget or a stop id. Tap features, logits and sampling stay in the
 * backend: the loop sees token ids only. The target cache is cut back to the committed tokens and
 * only committed positions' features enter the drafter's cache, so both caches always equal those
 * of a from-scratch run on the committed prefix, and greedy DFlash output equals greedy plain
 * output token for token. */
#ifndef MIMO_RUNTIME_GENERATE_H
#define MIMO_RUNTIME_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/model.h"
#include "runtime/sample.h"

/* ---- generation ---- */

typedef struct rt_gen_opts {
    size_t max_tokens;       /* tokens to generate at most (>= 1) */
    uint32_t block;          /* B with a drafter (2..RT_MAX_BLOCK); 0 = the drafter's block_size */
    rt_sampling sampling;
    const int32_t *stop;     /* stop ids (e.g. EOS): generation ends after the first one emitted */
    size_t n_stop;
    rt_opts rt;             /* per-call options (threads) */
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
    double draft_s, verify_s;              /* parts of decode_s: drafter (ingest + block), target; a fused
                                              iteration (rt_dflash_iter) counts whole in verify_s */
    int stopped;                           /* 1: a stop token, 2: the callback */
} rt_gen_stats;

/* Generates after prompt[0..n) into out[0..max_tokens): plain decoding when d is NULL and there is
 * no propose hook (or block is 1), else DFlash with block B. *n_out = tokens written (a stop token
 * is included). Greedy DFlash output equals greedy plain output token for token. */
lq_status rt_generate(const rt_model *m, const rt_drafter *d, const int32_t *prompt, size_t n, const rt_gen_opts *o,
                      int32_t *out, size_t *n_out, rt_gen_stats *stats, lq_error *err);

#endif
