/* Attention over a KV ring on the GPU: the target's decode (n = 1) and verify/prefill steps
 * (n <= 64), and the DFlash drafter's block attention over its injected context. The result of
 * one (row, head) equals rt_attend's (runtime/cpu/ops.h) as the CPU backend calls it: `attention`
 * for ctx_only = 0 and `cpu_draft` for ctx_only = 1.
 *
 * Keys are split into chunks of KN_ATTENTION_CHUNK keys counted from each query's first visible
 * key; one block per (chunk, slice of a GQA group's heads, row) writes a partial softmax (max,
 * sum, unnormalized values) to the workspace, and a second kernel combines a (row, head)'s
 * partials in ascending chunk order and adds the sink. The chunk size is a constant and the grid
 * is sized by max_keys, never by the context length or by n: a row's output is bit-identical
 * whatever else shares the launch, and the launch can be captured in a CUDA graph once and
 * replayed with new positions (p0 is read on the device).
 *
 * Visibility, with qp = p0 + t the position of query row t and lo = span && qp + 1 > span ?
 * qp + 1 - span : 0 (span 0: no window):
 *   ctx_only = 0 (target): ring positions [lo, qp]; the step's own keys are in the ring already.
 *   ctx_only = 1 (drafter): ring positions [lo, p0), then the n block keys bk/bv, block key j
 *     visible when (!causal || j <= t) && (!span || |j - t| < span).
 * Position p lives in ring slot p % slots. The ring must hold every position some row reads:
 * the launcher cannot see p0, so this, like max_keys, is the caller's promise. */
#ifndef MIMO_KERNELS_ATTENTION_H
#define MIMO_KERNELS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KN_ATTENTION_CHUNK 256u   /* keys per partial: a constant, so the split never depends on n */
#define KN_ATTENTION_MAX_ROWS 64u /* n: query rows (and drafter block keys) per launch */
#define KN_ATTENTION_MAX_DIM 256u /* dqk, dv */

typedef struct kn_attention_args {
    /* Queries, device f32 [n rows, ldq]: row t holds nq heads of dqk values (RoPE applied);
     * head h reads KV head h / (nq / nkv). 4-byte aligned; ldq >= nq * dqk. */
    const float *q;
    uint64_t ldq;
    /* The ring, device [slots, nkv * dqk] keys and [slots, nkv * dv] values, rows contiguous:
     * bf16 (raw uint16 bits, kv_f32 = 0; 4-byte aligned) or f32 (kv_f32 = 1; 8-byte aligned).
     * Rows are read with 16-byte loads when the pointer and dqk (dv) bytes allow it. */
    const void *kc, *vc;
    uint64_t slots; /* 1 .. 2^32 - 1, >= max_keys */
    int kv_f32;
    /* Device uint32 p0, the position of row 0 (read on the device at run time). */
    const uint32_t *pos;
    /* Drafter block keys and values (ctx_only = 1 only; else ignored, may be NULL): device f32
     * [n, ldbk] and [n, ldbv], KV head g at column g * dqk (g * dv); 8-byte aligned, ld even,
     * ldbk >= nkv * dqk, ldbv >= nkv * dv. */
    const float *bk, *bv;
    uint64_t ldbk, ldbv;
    /* Per-head sink logits, device f32 [nq], or NULL for none: each takes softmax mass and
     * contributes no value. */
    const float *sinks;
    /* Output, device [n, ldo], head h at column h * dv: bf16 (out_bf16 = 1; 4-byte aligned) or f32
     * (8-byte aligned); ldo even, >= nq * dv. Columns beyond nq * dv are not written. */
    void *out;
    uint64_t ldo;
    int out_bf16;
    /* Workspace, device, 16-byte aligned, ws_bytes >= kn_attention_workspace_bytes(n, nq, dv,
     * max_keys); holds nothing between launches. */
    void *ws;
    size_t ws_bytes;
    /* Shapes. n: 1 .. KN_ATTENTION_MAX_ROWS. nq, nkv >= 1, nq % nkv == 0, nq <= 65535. dqk, dv:
     * even, 2 .. KN_ATTENTION_MAX_DIM. */
    uint32_t n, nq, nkv, dqk, dv;
    /* The most ring keys any row of any launch sharing this workspace reads (block keys not
     * counted): the context capacity, or the window on SWA layers. The grid is sized by it. A
     * promise the launcher cannot check (p0 is on the device): a row with more visible ring keys
     * reads only its first max_keys of them. 1 .. slots (0 allowed with ctx_only = 1). */
    uint32_t max_keys;
    uint32_t span; /* keys visible back from a query, its own included; 0 = all */
    int ctx_only;  /* 0: target, 1: drafter (ring context, then the block keys) */
    int causal;    /* ctx_only = 1: block key j visible to row t only when j <= t */
    float scale;   /* logit = q . k * scale; finite */
} kn_attention_args;

/* Workspace bytes for n rows of nq heads of dv values over max_keys ring keys:
 * n * nq * (ceil(max_keys / KN_ATTENTION_CHUNK) + 1) * (dv + 2) * 4 (one partial of dv values,
 * a max and a sum per chunk, and one more for the drafter's block keys). */
size_t kn_attention_workspace_bytes(uint32_t n, uint32_t nq, uint32_t dv, uint32_t max_keys);

/* Checks every argument (KN_ARG on failure, nothing launched), then launches the partial and the
 * combine kernels on k->stream. Never synchronizes or allocates. */
lq_status kn_attention(const kn_ctx *k, const kn_attention_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
