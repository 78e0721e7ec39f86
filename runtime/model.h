/* The MiMo forward pass on the CPU in fp32 (reference/mimo_arch.md section 3), the oracle the
 * CUDA backend is held to. Weights stay in their stored format (runtime/linear.h).
 *
 * This first version runs a whole sequence at once without a KV cache (teacher forcing: every
 * position attends to itself and the positions before it); prefill/decode with a cache reuse the
 * same per-layer code next. */
#ifndef MIMO_RUNTIME_MODEL_H
#define MIMO_RUNTIME_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/linear.h"

typedef struct rt_model rt_model;

typedef struct rt_opts {
    int threads;            /* >= 1 */
    int window_inclusive;   /* 0 (default, HF): key j visible from i when i - j < W; 1: i - j <= W (SGLang) */
} rt_opts;

/* Opens the checkpoint directory (config.json in either dialect, any weight format) and binds every
 * weight. Errors name the file, tensor and rule (RT_NO_TENSOR, RT_FORMAT, RT_SHAPE, CFG_*). */
lq_status rt_model_open(const char *dir, rt_model **out, lq_error *err);
void rt_model_close(rt_model *m);
const lq_mimo_config *rt_model_config(const rt_model *m);

/* A KV cache: per layer the RoPE'd keys and the scaled values of every position so far (SWA
 * layers keep all positions too in this version; only the last `window` are read). */
typedef struct rt_cache rt_cache;
lq_status rt_cache_new(const rt_model *m, size_t max_tokens, rt_cache **out, lq_error *err);
void rt_cache_free(rt_cache *c);
size_t rt_cache_len(const rt_cache *c);
/* Forgets every position from len on (rollback after rejected draft tokens). */
void rt_cache_truncate(rt_cache *c, size_t len);

/* Appends tokens[0..n) at positions len..len+n-1 of the cache (prefill, verify and decode are the
 * same call) and writes their logits ([n, vocab], may be NULL). One forward of n tokens and n
 * forwards of one token give bit-identical logits. */
lq_status rt_step(const rt_model *m, rt_cache *c, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                  float *hidden, lq_error *err);

/* Runs tokens[0..n) at positions 0..n-1 (a fresh cache and one rt_step). logits: [n, vocab] (may be NULL); hidden: NULL or
 * [(layers + 1), n, hidden]: the embeddings, the residual stream after every layer but the last,
 * and the final-normed state after the last (transformers' output_hidden_states convention). */
lq_status rt_forward(const rt_model *m, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                     float *hidden, lq_error *err);

#endif
