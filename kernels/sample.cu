/* Argmax and greedy acceptance (sample.h).
 *
 * kn_argmax reads a row once (16-byte loads when the row allows), each thread keeping its first
 * strict maximum over ascending indices; the candidates are then merged by (value descending,
 * index ascending), a total order over numbers, which is rt_argmax's first maximum whatever the
 * merge order. */
#include "sample.h"

#include "kn_dev.cuh"

#define ARGMAX_THREADS 1024

static __device__ __forceinline__ void argmax_take(float v, int i, float *bv, int *bi, int *bad)
{
    *bad |= !isfinite(v);
    if (!isnan(v) && (*bi < 0 || v > *bv))
        *bv = v, *bi = i;
}

template <int VEC>
__global__ void __launch_bounds__(ARGMAX_THREADS) argmax_kernel(const float *__restrict__ logits, uint64_t ld, uint32_t V,
                                                               int32_t *__restrict__ ids, int *__restrict__ nonfinite)
{
    __shared__ float sv[ARGMAX_THREADS / 32];
    __shared__ int si[ARGMAX_THREADS / 32], sbad[ARGMAX_THREADS / 32];
    const float *row = logits + (uint64_t)blockIdx.x * ld;
    const unsigned tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float bv = 0.0f;
    int bi = -1, bad = 0;
    uint32_t tail = 0;
    if (VEC) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        for (uint32_t j = tid; j < V / 4; j += ARGMAX_THREADS) {
            float4 q = r4[j];
            argmax_take(q.x, (int)(4 * j), &bv, &bi, &bad);
            argmax_take(q.y, (int)(4 * j + 1), &bv, &bi, &bad);
            argmax_take(q.z, (int)(4 * j + 2), &bv, &bi, &bad);
            argmax_take(q.w, (int)(4 * j + 3), &bv, &bi, &bad);
        }
        tail = V / 4 * 4;
    }
    for (uint32_t j = tail + tid; j < V; j += ARGMAX_THREADS)
        argmax_take(row[j], (int)j, &bv, &bi, &bad);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(KN_FULL_MASK, bv, o);
        int oi = __shfl_xor_sync(KN_FULL_MASK, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi)))
            bv = ov, bi = oi;
    }
    bad = __any_sync(KN_FULL_MASK, bad);
    if (lane == 0)
        sv[warp] = bv, si[warp] = bi, sbad[warp] = bad;
    __syncthreads();
    if (tid == 0) {
        for (int w = 1; w < ARGMAX_THREADS / 32; w++) {
            if (si[w] >= 0 && (bi < 0 || sv[w] > bv || (sv[w] == bv && si[w] < bi)))
                bv = sv[w], bi = si[w];
            bad |= sbad[w];
        }
        ids[blockIdx.x] = bi < 0 ? 0 : bi;
        if (bad && nonfinite)
            *nonfinite = 1; /* every writer stores the same value */
    }
}

__global__ void accept_greedy_kernel(const int32_t *__restrict__ ids, const int32_t *__restrict__ drafts, uint32_t k,
                                     int32_t *__restrict__ res)
{
    uint32_t a = 0;
    while (a < k && drafts[a] == ids[a])
        a++;
    res[0] = (int32_t)a;
    res[1] = ids[a];
}

extern "C" lq_status kn_argmax(const kn_ctx *k, const kn_argmax_args *a, lq_error *err)
{
    static const char op[] = "argmax";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->logits || !a->ids)
        return kn_arg_fail(err, op, "NULL logits or ids");
    if (a->V == 0 || a->V > 0x7FFFFFFFu || a->ld < a->V)
        return kn_arg_fail(err, op, "V %u (need 1..2^31-1) with ld %llu (need >= V)", a->V, (unsigned long long)a->ld);
    if (a->rows > 0x7FFFFFFFu)
        return kn_arg_fail(err, op, "rows %u above the grid limit", a->rows);
    if (a->rows == 0)
        return LQ_OK;
    if (a->ld % 4 == 0 && KN_ALIGNED(a->logits, 16))
        argmax_kernel<1><<<a->rows, ARGMAX_THREADS, 0, k->stream>>>(a->logits, a->ld, a->V, a->ids, a->nonfinite);
    else
        argmax_kernel<0><<<a->rows, ARGMAX_THREADS, 0, k->stream>>>(a->logits, a->ld, a->V, a->ids, a->nonfinite);
    return kn_launched(op, err);
}

extern "C" lq_status kn_accept_greedy(const kn_ctx *k, const kn_accept_greedy_args *a, lq_error *err)
{
    static const char op[] = "accept_greedy";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->ids || !a->res || (a->k > 0 && !a->drafts))
        return kn_arg_fail(err, op, "NULL ids or res, or NULL drafts with k %u", a->k);
    if (a->k > 0x7FFFFFFEu)
        return kn_arg_fail(err, op, "k %u too large", a->k);
    accept_greedy_kernel<<<1, 1, 0, k->stream>>>(a->ids, a->drafts, a->k, a->res);
    return kn_launched(op, err);
}
