/* Greedy sampling on the GPU: the argmax of logits rows (rt_argmax's rule) and the greedy
 * acceptance of a speculative step (rt_accept at temperature 0). */
#ifndef MIMO_KERNELS_SAMPLE_H
#define MIMO_KERNELS_SAMPLE_H

#include <stdint.h>

#include "kernels/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ids[r] = the first index of the largest value of row r, a NaN never winning over a number; a
 * row of only NaN gives 0 (rt_argmax). When nonfinite is not NULL it is set to 1 if any value of
 * the rows is NaN or infinite, and left alone otherwise (clear it before the step). One block of
 * 1024 threads per row; the result does not depend on the thread layout. */
typedef struct kn_argmax_args {
    const float *logits; /* device f32 [rows, ld] */
    int32_t *ids;        /* device [rows] */
    int *nonfinite;      /* NULL or device int */
    uint32_t rows;       /* 0 launches nothing */
    uint32_t V;          /* values per row, 1 .. 2^31 - 1 */
    uint64_t ld;         /* row stride in floats, >= V */
} kn_argmax_args;

lq_status kn_argmax(const kn_ctx *k, const kn_argmax_args *a, lq_error *err);

/* res[0] = a, the length of the longest prefix with drafts[i] == ids[i] (a <= k); res[1] =
 * ids[a], the token after the accepted drafts. ids are the argmax of the k + 1 verify rows. One
 * thread. */
typedef struct kn_accept_greedy_args {
    const int32_t *ids;    /* device [k + 1] */
    const int32_t *drafts; /* device [k]; may be NULL when k == 0 */
    int32_t *res;          /* device [2] */
    uint32_t k;            /* drafts, 0 .. 2^31 - 2 */
} kn_accept_greedy_args;

lq_status kn_accept_greedy(const kn_ctx *k, const kn_accept_greedy_args *a, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
