/* Attention head preparation on the GPU: the fused projection split, per-head bias / RMSNorm /
 * RoPE / value scale, and the KV ring store (attention() and the drafter's norm_rope in
 * runtime/cpu/backend.c, with rt_rmsnorm's and rt_rope's arithmetic).
 *
 * Positions: row t of a launch is at position *pos + t, read on the device, so a captured graph
 * replays with a new step position by updating that one word. */
#ifndef MIMO_KERNELS_ROPE_H
#define MIMO_KERNELS_ROPE_H

#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host: the RoPE frequency table of rt_rope, out[i] = 1.0f / powf((float)theta, (float)(2 * i) /
 * (float)rd) for i < rd / 2 (computed by the host libm, so the table is the CPU's bit for bit).
 * Copy it to the device once per (theta, rd). */
void kn_rope_inv_freq(double theta, uint32_t rd, float *out);

/* In place on x, per row t < n and head hd < heads, the d values x[t * ldx + hd * d ..]:
 *   1. bias != NULL: x += bias[hd * d ..] (f32);
 *   2. norm_w != NULL: x = rt_rmsnorm(x, norm_w, d, eps);
 *   3. rd > 0: rotate-half RoPE of the first rd values at position *pos + t: for i < rd / 2,
 *      angle = (float)position * inv_freq[i], c = cosf, s = sinf, (a, b) = (x[i], x[i + rd/2]),
 *      x[i] = a*c - b*s, x[i + rd/2] = b*c + a*s, each product and sum rounded as rt_rope's;
 *   4. scale != 1: all d values times scale (the value scale on v heads: rd = 0).
 * One warp per (row, head). */
typedef struct kn_head_prep_args {
    float *x;              /* device f32 [n, ldx]; heads * d values per row are touched */
    const float *bias;     /* NULL, or device f32 [heads * d] */
    const float *norm_w;   /* NULL, or device f32 [d] (per-head RMSNorm weight) */
    const float *inv_freq; /* device f32 [rd / 2] from kn_rope_inv_freq; may be NULL when rd == 0 */
    const uint32_t *pos;   /* device uint32: the position of row 0; may be NULL when rd == 0 */
    uint32_t n;            /* rows; 0 launches nothing */
    uint32_t heads;        /* >= 1 */
    uint32_t d;            /* values per head, 1 .. 65536 */
    uint32_t rd;           /* rotated values per head: even, <= d; 0 = no RoPE */
    uint64_t ldx;          /* row stride of x in floats, >= heads * d */
    double eps;            /* the norm's epsilon, >= 0 (ignored when norm_w is NULL) */
    float scale;           /* final factor; 1 = none */
} kn_head_prep_args;

lq_status kn_head_prep(const kn_ctx *k, const kn_head_prep_args *a, lq_error *err);

/* De-interleaves a fused QKV projection: row t of y holds S shards, shard s being
 * [q_s (qr/S) | k_s (kr/S) | v_s (vr/S)]; q_s goes to q[t * qr + s * qr/S ..], likewise k and v.
 * Exact copies. */
typedef struct kn_qkv_split_args {
    const float *y;  /* device f32 [n, ld]; the first qr + kr + vr values of a row are read */
    float *q;        /* device f32 [n, qr], dense */
    float *k;        /* device f32 [n, kr], dense */
    float *v;        /* device f32 [n, vr], dense */
    uint32_t n;      /* rows; 0 launches nothing */
    uint32_t shards; /* S >= 1; divides qr, kr and vr */
    uint64_t qr, kr, vr; /* each >= 1 */
    uint64_t ld;     /* row stride of y in floats, >= qr + kr + vr */
} kn_qkv_split_args;

lq_status kn_qkv_split(const kn_ctx *k, const kn_qkv_split_args *a, lq_error *err);

/* Stores rows t < n of k and v into the KV ring at slot (*pos + t) % slots (rt_kv_key's rule):
 * kc[slot * kr ..] = k[t * ldk ..] (kr values), vc[slot * vr ..] = v[t * ldv ..] (vr values); the
 * ring holds bf16 bits (kv_f32 = 0, RNE as lq_f32_to_bf16) or f32 (kv_f32 = 1, exact). n <= slots,
 * so no two rows of a launch share a slot. */
typedef struct kn_kv_store_args {
    const float *k;      /* device f32 [n, ldk] */
    const float *v;      /* device f32 [n, ldv] */
    void *kc;            /* device ring [slots, kr]: uint16_t bf16 bits or f32 */
    void *vc;            /* device ring [slots, vr]: uint16_t bf16 bits or f32 */
    const uint32_t *pos; /* device uint32: the position of row 0 */
    uint32_t n;          /* rows, <= slots; 0 launches nothing */
    uint64_t slots;      /* ring rows, >= 1 */
    uint64_t kr, vr;     /* values per key row and per value row, each >= 1 */
    uint64_t ldk, ldv;   /* row strides of k (>= kr) and v (>= vr) in floats */
    int kv_f32;          /* 0: bf16 ring, 1: f32 ring */
} kn_kv_store_args;

lq_status kn_kv_store(const kn_ctx *k, const kn_kv_store_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
