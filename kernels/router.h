/* The MoE router and the per-step expert plan on the GPU (rt_route and moe() in
 * runtime/cpu/backend.c).
 *
 * kn_router is rt_route row by row, one block per token: score[e] = sigmoid(x . w[e]) with the
 * dot product summed in the CPU's order (h ascending, each product and sum rounded on its own,
 * no FMA) and exp evaluated in double and rounded to float, so the scores equal rt_route's except
 * where the host's expf misrounds (its last bit); choice = score + bias (selection
 * only); with n_group > 1 the group-limited selection (a group's score is the sum of its two best
 * choices, the topk_group best groups kept, ties to the lower group, NaN group scores last); then
 * K picks of the largest free choice, ties to the lower id, a NaN or -inf choice never picked over
 * a number, and when no numeric choice is left the lowest free id (then the lowest id not yet
 * picked). Weights: the unbiased scores of the picks, divided by (their sum + 1e-20f) when norm,
 * times (float)scaling, in rt_route's order. Nothing depends on n.
 *
 * kn_moe_plan groups a step's (token, pick) pairs by expert for the expert kernels, and
 * kn_moe_combine sums the experts' outputs back per token in ascending expert id, the CPU's
 * order. */
#ifndef MIMO_KERNELS_ROUTER_H
#define MIMO_KERNELS_ROUTER_H

#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KN_ROUTER_MAX_E 1024 /* experts */
#define KN_ROUTER_MAX_K 64   /* picks per token */
#define KN_MOE_MAX_TOKENS 64 /* rows of one kn_moe_plan */

typedef struct kn_router_args {
    const float *x;      /* device f32 [n, ldx]: the normed hidden rows (H values each) */
    const float *w;      /* device f32 [E, H], dense: the router weight */
    const float *bias;   /* NULL (zeros) or device f32 [E]: the selection bias */
    int32_t *sel;        /* device [n, K], dense: the picked expert ids, in pick order */
    float *wsel;         /* device f32 [n, K], dense: their weights */
    float *scores;       /* NULL, or device f32 [n, E], dense: the sigmoid scores (unbiased) */
    uint32_t n;          /* tokens; 0 launches nothing */
    uint32_t E;          /* experts, 1 .. KN_ROUTER_MAX_E */
    uint32_t K;          /* picks, 1 .. min(E, KN_ROUTER_MAX_K) */
    uint32_t n_group;    /* 0 or 1: no group limit; else divides E */
    uint32_t topk_group; /* groups kept, 1 .. n_group (ignored when n_group <= 1) */
    uint64_t H;          /* hidden size, >= 1 */
    uint64_t ldx;        /* row stride of x in floats, >= H */
    int norm;            /* nonzero: weights divided by their sum + 1e-20f */
    double scaling;      /* weights times (float)scaling */
} kn_router_args;

lq_status kn_router(const kn_ctx *k, const kn_router_args *a, lq_error *err);

/* The plan of one step: pairs p = 0 .. n*K-1 ordered by expert ascending and, within an expert,
 * by i = t*K + k ascending; "groups" g are the distinct experts used, ascending.
 *   *ng          number of groups (distinct experts used; <= min(n*K, E))
 *   gexp[g]      the expert of group g                       (g < ng; -1 for ng <= g < slots)
 *   goff[g]      its first pair p                            (g < ng; n*K for ng <= g < slots)
 *   gcnt[g]      its pairs (>= 1)                            (g < ng; 0 for ng <= g < slots)
 *   pair_tok[p]  the token t of pair p, so the expert kernel of group g gathers x rows
 *                pair_tok[goff[g] .. goff[g] + gcnt[g] - 1] and writes ye rows goff[g] ..
 *   pair_of[i]   the pair p of pick i = t*K + k (0xFFFFFFFF if sel[i] is outside [0, E), which
 *                kn_router never produces; such picks get no pair and ng, goff count only valid ones)
 * `slots` is the fixed number of groups the expert kernel's grid covers (min(n*K, E) for the
 * largest step a graph is captured for): groups ng .. slots-1 are written as empty so a fixed grid
 * needs no host read of ng. One block of 1024 threads. */
typedef struct kn_moe_plan_args {
    const int32_t *sel;  /* device [n, K], dense (kn_router's output) */
    uint32_t *ng;        /* device, one word */
    int32_t *gexp;       /* device [slots] */
    uint32_t *goff;      /* device [slots] */
    uint32_t *gcnt;      /* device [slots] */
    int32_t *pair_tok;   /* device [n * K] */
    uint32_t *pair_of;   /* device [n * K] */
    uint32_t n;          /* tokens, 1 .. KN_MOE_MAX_TOKENS */
    uint32_t K;          /* picks per token, 1 .. KN_ROUTER_MAX_K */
    uint32_t E;          /* experts, 1 .. KN_ROUTER_MAX_E */
    uint32_t slots;      /* >= min(n * K, E) */
} kn_moe_plan_args;

lq_status kn_moe_plan(const kn_ctx *k, const kn_moe_plan_args *a, lq_error *err);

/* y[t][h] = sum over the token's K picks, in ascending expert id (equal ids: ascending k), of
 * wsel[t*K + k] * ye[pair_of[t*K + k]][h]; the sum starts at 0 and each product and sum is
 * rounded on its own, as moe() accumulates. A pick whose pair_of is >= n*K adds nothing. */
typedef struct kn_moe_combine_args {
    const float *ye;         /* device f32 [n * K, ldye]: the experts' outputs in pair order */
    const int32_t *sel;      /* device [n, K], dense */
    const float *wsel;       /* device f32 [n, K], dense */
    const uint32_t *pair_of; /* device [n * K] (kn_moe_plan) */
    float *y;                /* device f32 [n, ldy]: overwritten */
    uint32_t n;              /* tokens, 0 .. 65535; 0 launches nothing */
    uint32_t K;              /* 1 .. KN_ROUTER_MAX_K */
    uint64_t H;              /* values per row, >= 1 */
    uint64_t ldye, ldy;      /* row strides in floats, each >= H */
} kn_moe_combine_args;

lq_status kn_moe_combine(const kn_ctx *k, const kn_moe_combine_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
