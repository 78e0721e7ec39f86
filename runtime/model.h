/* The MiMo forward pass on the CPU in fp32 (reference/mimo_arch.md section 3), the oracle the
 * CUDA backend is held to. Weights stay in their stored format (runtime/linear.h).
 * Prefill, verify and decode are one code path (rt_step_ex). */
#ifndef MIMO_RUNTIME_MODEL_H
#define MIMO_RUNTIME_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/linear.h"

typedef struct rt_model rt_model;

/* Wall time per component of the target forward, accumulated over steps (rt_opts.prof). */
enum { RT_PROF_ATTN, RT_PROF_MOE, RT_PROF_DENSE, RT_PROF_HEAD, RT_PROF_OTHER, RT_PROF_N };
typedef struct rt_prof {
    double s[RT_PROF_N]; /* attention (q/k/v/o projections, RoPE, softmax), routed experts (router
                            included), dense MLP, lm_head, the rest (embedding, norms, residuals) */
} rt_prof;
const char *rt_prof_name(int i);

typedef struct rt_opts {
    int threads;            /* >= 1 */
    int window_inclusive;   /* 0 (default, HF): key j visible from i when i - j < W; 1: i - j <= W (SGLang) */
    rt_prof *prof;          /* NULL, or where component times accumulate */
} rt_opts;

/* Opens the checkpoint directory (config.json in either dialect, any weight format) and binds every
 * weight. Errors name the file, tensor and rule (RT_NO_TENSOR, RT_FORMAT, RT_SHAPE, CFG_*). */
lq_status rt_model_open(const char *dir, rt_model **out, lq_error *err);
void rt_model_close(rt_model *m);
const lq_mimo_config *rt_model_config(const rt_model *m);
const char *rt_model_dir(const rt_model *m);
/* The target's embedding row of token (f32, hidden floats) and its lm_head on n rows (a DFlash
 * drafter borrows both). */
lq_status rt_model_embed(const rt_model *m, int32_t token, float *out);
lq_status rt_model_lm_head(const rt_model *m, const float *x, size_t n, int threads, float *logits);

/* Tokens one internal forward processes at once (a longer step is split; results are bit-identical
 * either way) and the most positions rt_cache_truncate may remove. */
#define RT_STEP_CHUNK 64
#define RT_MAX_ROLLBACK 64

/* A KV cache: per layer the RoPE'd keys and the scaled values. Global layers keep every position
 * up to max_tokens; SWA layers keep a ring of W + 1 + max(RT_STEP_CHUNK, RT_MAX_ROLLBACK) slots
 * (position j in slot j mod ring), so their memory does not grow with the context. */
typedef struct rt_cache rt_cache;
lq_status rt_cache_new(const rt_model *m, size_t max_tokens, rt_cache **out, lq_error *err);
/* no_ring: SWA layers keep every position too (a reference for testing the ring). */
lq_status rt_cache_new_ex(const rt_model *m, size_t max_tokens, int no_ring, rt_cache **out, lq_error *err);
void rt_cache_free(rt_cache *c);
size_t rt_cache_len(const rt_cache *c);
size_t rt_cache_cap(const rt_cache *c);
size_t rt_cache_bytes(const rt_cache *c);
/* Forgets every position from len on (rollback after rejected draft tokens). At most
 * RT_MAX_ROLLBACK positions may be removed (the SWA rings hold no more); otherwise
 * LQ_ERR_INVALID_ARGUMENT and the cache is unchanged. */
lq_status rt_cache_truncate(rt_cache *c, size_t len);
/* Copies src into dst (made by rt_cache_new for the same model and max_tokens). */
lq_status rt_cache_copy(rt_cache *dst, const rt_cache *src);

/* What a step writes besides the cache; any pointer may be NULL. */
typedef struct rt_out {
    float *logits;          /* [n, vocab] */
    float *hidden;          /* [(layers + 1), n, hidden], as rt_forward */
    const uint32_t *taps;   /* ntaps layer ids l: the residual stream after layer l (before the */
    uint32_t ntaps;         /* final norm for the last layer), DFlash's target_layer_ids */
    float *tap_out;         /* [n, ntaps * hidden], tap-major within a row (fc's input order) */
} rt_out;

/* Appends tokens[0..n) at positions len..len+n-1 of the cache (prefill, verify and decode are the
 * same call). One forward of n tokens and n forwards of one token give bit-identical outputs.
 * Errors: RT_CACHE (no room), RT_TOKEN (an id outside the vocabulary; checked before anything
 * runs), RT_TAP; on any error the cache length is unchanged. */
lq_status rt_step_ex(const rt_model *m, rt_cache *c, const int32_t *tokens, size_t n, const rt_opts *o,
                     const rt_out *out, lq_error *err);
/* rt_step_ex with logits and hidden only. */
lq_status rt_step(const rt_model *m, rt_cache *c, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                  float *hidden, lq_error *err);

/* Runs tokens[0..n) at positions 0..n-1 (a fresh cache and one rt_step). logits: [n, vocab] (may be NULL); hidden: NULL or
 * [(layers + 1), n, hidden]: the embeddings, the residual stream after every layer but the last,
 * and the final-normed state after the last (transformers' output_hidden_states convention). */
lq_status rt_forward(const rt_model *m, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                     float *hidden, lq_error *err);

#endif
