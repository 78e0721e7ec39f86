/* The CPU backend's per-op references: the building blocks of the target and drafter forwards,
 * each callable on its own (the CUDA kernels' tests compare against these). fp32 throughout, sums
 * in a fixed order, so a row's result never depends on the thread count or on its companions. */
#ifndef MIMO_RUNTIME_CPU_OPS_H
#define MIMO_RUNTIME_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/cpu/linear.h"

/* y = w * x / sqrt(mean(x^2) + eps), the mean taken in double. */
void rt_rmsnorm(const float *x, const float *w, uint64_t n, double eps, float *y);
/* Rotate-half (NeoX) RoPE on the first rd dims of one head at position pos: element i pairs with
 * i + rd/2, frequency theta^(-2i/rd), in f32 as transformers computes it. */
void rt_rope(float *x, uint32_t rd, double theta, uint64_t pos);
float rt_silu(float x);
/* out[n, d.rows] = d(silu(g x) * (u x)), the SwiGLU MLP; a, b: scratch of n * g.rows floats each. */
lq_status rt_swiglu(const rt_linear *g, const rt_linear *u, const rt_linear *d, const float *x, size_t n, int threads,
                    float *a, float *b, float *out);

/* A KV ring: position j in slot j mod slots (slots >= every position still read: the whole
 * context on global layers, the window plus what one step writes or one rollback removes on SWA
 * layers). Rows of kr key and vr value floats. Used by the target's and the drafter's caches. */
typedef struct rt_kv {
    float *k, *v;
    size_t slots;
    uint64_t kr, vr;
} rt_kv;
static inline float *rt_kv_key(const rt_kv *c, size_t pos) { return c->k + (pos % c->slots) * c->kr; }
static inline float *rt_kv_val(const rt_kv *c, size_t pos) { return c->v + (pos % c->slots) * c->vr; }
/* Allocates a ring (slots x (kr + vr) floats); rt_kv_free accepts a zeroed ring. */
lq_status rt_kv_alloc(rt_kv *c, size_t slots, uint64_t kr, uint64_t vr);
void rt_kv_free(rt_kv *c);

/* One query head's attention: keys and values of ring positions [lo, hi) (KV head g: dims
 * g*dqk.. and g*dv..) and then nb block keys bk/bv (rows of bkr/bvr floats, same head offsets), the
 * block key j visible when vis is NULL or vis[j]; logits q.k * scale, a sink logit when sink is not
 * NULL (it takes softmax mass and contributes no value); the softmax max-subtracted, its
 * denominator summed in double. out[dv]; scores: scratch of (hi - lo) + nb floats. */
void rt_attend(const float *q, const rt_kv *c, size_t lo, size_t hi, uint32_t g, uint32_t dqk, uint32_t dv,
               const float *bk, const float *bv, uint64_t bkr, uint64_t bvr, uint32_t nb, const uint8_t *vis,
               float scale, const float *sink, float *scores, float *out);

/* The MoE router of one row (mimo_arch.md 3.5): score[e] = sigmoid(x . router[e]) in fp32; the
 * choice score + bias[e] (bias for selection only); with n_group > 1, group-limited selection:
 * a group's score is the sum of its two best choices, the topk_group best groups are kept (ties:
 * the lower group) and the other groups' experts cannot be chosen; then the top K choices (ties:
 * the lower id). A NaN choice never wins over a number; when no candidate with a number is left
 * the lowest free id is taken, so K distinct experts are always chosen, whatever the values. The
 * weights are the unbiased scores, divided by their sum + 1e-20 when norm, times scaling.
 * sel[K], w[K]; score[E]; taken[E] and gscore[n_group]: scratch. */
typedef struct rt_router {
    const float *w, *bias; /* [E, H] f32, [E] f32 */
    uint32_t E, K, n_group, topk_group;
    uint64_t H;
    int norm;
    double scaling;
} rt_router;
void rt_route(const rt_router *r, const float *x, float *score, uint8_t *taken, float *gscore, int32_t *sel, float *w);

#endif
