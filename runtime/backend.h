/* The step-level interface a compute backend implements (internal to runtime/). The model API
 * (model.h, dflash.h) checks arguments, keeps cache lengths and dispatches here; a backend owns its
 * weights' device copies, its contexts (KV cache, workspace, kept logits, tap rows) and its drafter.
 *
 * Contract for every backend (the front end has already checked a step's tokens, cache room and
 * selection: taps only from a context made with them, at most RT_STEP_CHUNK tap rows, more than
 * RT_KEEP_ROWS logits rows only into a host buffer):
 * - open binds to checked weights (rt_weights: shapes and values already validated on the CPU
 *   path, or validated by the backend while uploading when rt_weights_opts.check_values was 0);
 * - everything a step needs is allocated by ctx_new / dctx_new: a step allocates nothing;
 * - step(pos, tokens[0..n)) appends positions pos..pos+n-1 and computes only what sel asks for:
 *   the lm_head of the last sel->rows rows (kept in the context for sample/accept, copied to
 *   sel->logits when given), their argmax ids, per-layer hidden states, and the rows' tap features
 *   (kept in the context for ingest; n <= RT_STEP_CHUNK then). A row's results never depend on n or
 *   on the other rows; non-finite selected logits fail with RT_NONFINITE;
 * - sample / accept run on the kept logits (the host never needs B x vocab floats);
 * - ingest takes tap rows from a target context (or host floats, for tests) into the drafter's
 *   context at positions pos..; draft runs one block and returns the B - 1 argmax ids.
 * Lengths (rollback) are the front end's: a backend is told the position of every write and read. */
#ifndef MIMO_RUNTIME_BACKEND_H
#define MIMO_RUNTIME_BACKEND_H

#include "runtime/dflash.h"
#include "runtime/model.h"
#include "runtime/sample.h"
#include "runtime/weights.h"

typedef struct rt_backend_ops {
    const char *name;
    lq_status (*open)(const rt_weights *w, const rt_model_opts *o, void **be, lq_error *err);
    void (*close)(void *be);

    lq_status (*ctx_new)(void *be, size_t max_tokens, const rt_cache_opts *o, void **ctx, lq_error *err);
    void (*ctx_free)(void *ctx);
    size_t (*ctx_bytes)(const void *ctx);
    lq_status (*ctx_copy)(void *dst, const void *src, size_t len);
    lq_status (*step)(void *be, void *ctx, size_t pos, const int32_t *tokens, size_t n, const rt_sel *sel, int threads,
                      lq_error *err);
    lq_status (*sample)(void *be, void *ctx, size_t row, const rt_sampling *s, rt_rng *r, int32_t *id, lq_error *err);
    lq_status (*accept)(void *be, void *ctx, const int32_t *drafts, uint32_t k, const rt_sampling *s, rt_rng *r,
                        uint32_t *a, int32_t *bonus, lq_error *err);

    lq_status (*drafter_open)(void *be, const rt_dweights *dw, const rt_drafter_opts *o, void **bd, lq_error *err);
    void (*drafter_close)(void *bd);
    lq_status (*dctx_new)(void *bd, size_t max_tokens, void **dctx, lq_error *err);
    void (*dctx_free)(void *dctx);
    lq_status (*ingest)(void *bd, void *dctx, size_t pos, const float *taps, const void *ctx, size_t row0, size_t n,
                        float *ctx_out, int threads, lq_error *err);
    lq_status (*draft)(void *bd, void *dctx, size_t pos, int32_t anchor, uint32_t k, float *logits, int32_t *drafts,
                       int threads, lq_error *err);

    /* Optional (NULL where a backend has none): the weight bytes one decode token reads, and the
     * device's copy bandwidth in GB/s (read + write), measured once (the roofline's ceiling). */
    uint64_t (*bytes_per_token)(const void *be);
    double (*copy_gbps)(void *be);
    /* Optional: one greedy DFlash iteration without host round trips (rt_dflash_iter): ingest rows
     * 0..pend-1 of ctx's last step into dctx at dpos, draft k after anchor at pos (= dpos + pend),
     * verify [anchor, drafts] in ctx at pos (taps kept), accept greedily: *a and ids[0..a] (the
     * accepted drafts, then the bonus). */
    lq_status (*dflash_iter)(void *be, void *ctx, void *bd, void *dctx, size_t pos, size_t dpos, size_t pend,
                             int32_t anchor, uint32_t k, uint32_t *a, int32_t *ids, lq_error *err);
} rt_backend_ops;

extern const rt_backend_ops rt_cpu_backend;
#ifdef MIMO_HAVE_CUDA
extern const rt_backend_ops rt_cuda_backend;
#endif

/* The backend state behind the front end's handles (for dflash.c). */
void *rt_model_be_(const rt_model *m, const rt_backend_ops **ops);
void *rt_cache_ctx_(const rt_cache *c);
void rt_cache_set_len_(rt_cache *c, size_t len);

#endif
