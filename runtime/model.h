/* The MiMo model API (reference/mimo_arch.md section 3): open a checkpoint on a backend, make
 * contexts (KV cache + workspace), run steps of n tokens with a selection of outputs, sample.
 * Prefill, verify and decode are one call (rt_step_ex). The CPU backend (runtime/cpu/) computes in
 * fp32 and is the oracle the CUDA backend is held to. docs/architecture.md draws the parts. */
#ifndef MIMO_RUNTIME_MODEL_H
#define MIMO_RUNTIME_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/libquant.h"
#include "runtime/sample.h"
#include "runtime/weights.h"

typedef struct rt_model rt_model;

/* Wall time per component of the target forward, accumulated over steps (rt_model_opts.prof). */
enum { RT_PROF_ATTN, RT_PROF_MOE, RT_PROF_DENSE, RT_PROF_HEAD, RT_PROF_OTHER, RT_PROF_N };
typedef struct rt_prof {
    double s[RT_PROF_N]; /* attention (q/k/v/o projections, RoPE, softmax), routed experts (router
                            included), dense mlp, lm_head, the rest (embedding, norms, residuals) */
} rt_prof;
const char *rt_prof_name(int i);

typedef struct rt_model_opts {
    const char *backend;  /* "cpu" (NULL: cpu) or "cuda"; a backend not built fails with RT_BACKEND */
    int device;           /* the backend's device index (cuda:N); 0 for cpu */
    int threads;          /* CPU threads (0: 1) */
    int window_inclusive; /* 0 (default, HF): key j visible from i when i - j < W; 1: i - j <= W (SGLang) */
    double max_abs;       /* value check bound (weights.h): 0 = RT_MAX_ABS_DEFAULT, < 0 = none */
    int rank, world;      /* tensor/expert parallel rank and size: 0 and 1 (room for more) */
    rt_prof *prof;        /* NULL, or where component times accumulate (not thread-safe) */
    int fp32;             /* cuda: fp32 activations and KV cache on CUDA cores (the debug mode held to
                             the CPU oracle); 0: BF16 activations into tensor-core products */
    int kv_bf16;          /* cuda: a BF16 KV cache (half the memory) instead of the default fp32 one;
                             ignored with fp32 */
} rt_model_opts;

/* Per-call options: threads (0: the model's). */
typedef struct rt_opts {
    int threads;
} rt_opts;

/* Parses a --device value: "cpu", "cuda" (device 0) or "cuda:N" (N in 0..255). Returns 0, or 1
 * for anything else (then *backend and *device are unchanged). */
int rt_parse_device(const char *s, const char **backend, int *device);

/* Opens the checkpoint directory and binds every weight on the chosen backend (o may be NULL: cpu,
 * one thread). Errors name the file, tensor and rule (weights.h's, RT_BACKEND, RT_DEVICE). */
lq_status rt_model_open(const char *dir, const rt_model_opts *o, rt_model **out, lq_error *err);
void rt_model_close(rt_model *m);
const lq_mimo_config *rt_model_config(const rt_model *m);
const char *rt_model_dir(const rt_model *m);
const rt_weights *rt_model_weights(const rt_model *m);
const char *rt_model_backend(const rt_model *m);
int rt_model_threads(const rt_model *m);
/* Weight bytes one decode token reads on this backend (attention, dense MLP, the routed experts of
 * K choices, lm_head), and the device's measured copy bandwidth in GB/s (read + write; measured
 * on first call): 0 where the backend does not say (cpu). */
uint64_t rt_model_bytes_per_token(const rt_model *m);
double rt_model_copy_gbps(const rt_model *m);

/* Tokens one internal forward processes at once (a longer step is split; results are bit-identical
 * either way), the most positions rt_cache_truncate may remove, and the most logits rows a context
 * keeps for rt_sample_row / rt_accept_rows. */
#define RT_STEP_CHUNK 64
#define RT_MAX_ROLLBACK 64
#define RT_KEEP_ROWS 64

/* A context: the KV cache (per layer the RoPE'd keys and the scaled values; global layers keep
 * every position up to max_tokens, SWA layers a ring of W + 1 + max(RT_STEP_CHUNK,
 * RT_MAX_ROLLBACK) slots) and everything a step needs, allocated here once. */
typedef struct rt_cache rt_cache;
typedef struct rt_cache_opts {
    int no_ring;           /* SWA layers keep every position too (a reference for testing the ring) */
    const uint32_t *taps;  /* tap layers (DFlash's target_layer_ids): a step with sel.taps keeps */
    uint32_t ntaps;        /* the residual stream after these layers for rt_draft_ingest_ctx */
} rt_cache_opts;
lq_status rt_cache_new(const rt_model *m, size_t max_tokens, rt_cache **out, lq_error *err);
lq_status rt_cache_new_ex(const rt_model *m, size_t max_tokens, const rt_cache_opts *o, rt_cache **out, lq_error *err);
void rt_cache_free(rt_cache *c);
size_t rt_cache_len(const rt_cache *c);
size_t rt_cache_cap(const rt_cache *c);
size_t rt_cache_bytes(const rt_cache *c); /* the KV cache's bytes */
/* Forgets every position from len on (rollback after rejected draft tokens). At most
 * RT_MAX_ROLLBACK positions may be removed (the SWA rings hold no more); otherwise
 * LQ_ERR_INVALID_ARGUMENT and the cache is unchanged. */
lq_status rt_cache_truncate(rt_cache *c, size_t len);
/* Copies src's KV positions into dst (made for the same model, max_tokens and options). */
lq_status rt_cache_copy(rt_cache *dst, const rt_cache *src);

/* What a step returns besides the cache update; zero = nothing. */
typedef struct rt_sel {
    size_t rows;     /* logits of the last `rows` of the n positions (prefill: 1, verify: B, scoring: n) */
    float *logits;   /* NULL or [rows, vocab] (host): a copy of them */
    int32_t *ids;    /* NULL or [rows]: their argmax (rt_argmax's rule) */
    float *hidden;   /* NULL or [(layers + 1), n, hidden]: the embeddings, the residual stream after
                        every layer but the last, the final-normed state after the last */
    int taps;        /* keep the n rows' tap features (rt_cache_opts.taps) for rt_draft_ingest_ctx */
    float *tap_out;  /* NULL or [n, ntaps * hidden], tap-major within a row (fc's input order): a host
                        copy of the tap features, for tests and tools (the generation loop never
                        asks for it) */
    int32_t *experts; /* NULL or [layers, n, num_experts_per_tok]: the experts each row was routed to,
                         in selection order (dense layers: -1), for comparing backends' routing */
} rt_sel;

/* Appends tokens[0..n) at positions len..len+n-1 of the cache (prefill, verify and decode are the
 * same call). One step of n tokens and n steps of one token give bit-identical outputs. Kept
 * logits rows (rows <= RT_KEEP_ROWS) serve rt_sample_row / rt_accept_rows until the next step;
 * rows > RT_KEEP_ROWS needs sel->logits. Errors: RT_CACHE (no room), RT_TOKEN (an id outside the
 * vocabulary; checked before anything runs), RT_SELECT (a selection the context cannot hold),
 * RT_NONFINITE (a selected logit is NaN or infinite: the weights or the activations overflowed);
 * on any error the cache length is unchanged. o may be NULL. */
lq_status rt_step_ex(const rt_model *m, rt_cache *c, const int32_t *tokens, size_t n, const rt_opts *o,
                     const rt_sel *sel, lq_error *err);
/* rt_step_ex with logits of every row (into logits, when not NULL) and hidden states. */
lq_status rt_step(const rt_model *m, rt_cache *c, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                  float *hidden, lq_error *err);
/* Runs tokens[0..n) at positions 0..n-1 in a fresh context: logits [n, vocab] and hidden as rt_sel
 * (either may be NULL). */
lq_status rt_forward(const rt_model *m, const int32_t *tokens, size_t n, const rt_opts *o, float *logits,
                     float *hidden, lq_error *err);

/* Samples one token from kept logits row `row` (0 = the first kept row) of the last step. */
lq_status rt_sample_row(const rt_model *m, rt_cache *c, size_t row, const rt_sampling *s, rt_rng *r, int32_t *id,
                        lq_error *err);
/* Speculative acceptance (sample.h's rt_accept) of drafts[0..k) against the last step's kept rows
 * 0..k: *a accepted, *bonus the next token. */
lq_status rt_accept_rows(const rt_model *m, rt_cache *c, const int32_t *drafts, uint32_t k, const rt_sampling *s,
                         rt_rng *r, uint32_t *a, int32_t *bonus, lq_error *err);

#endif
