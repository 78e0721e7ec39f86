/* Router, expert plan and combine (router.h).
 *
 * kn_router, one block of 256 threads per token: thread e computes expert e's dot product alone,
 * in the CPU's order (16-byte loads when the rows allow, the four products added one by one), so
 * the reduction order is fixed by H and nothing else. The x row is read by every thread at the
 * same address (a broadcast); the weight rows stream through L1. Selection works on shared
 * arrays: each of the K picks is a block argmax over (choice descending, id ascending), a total
 * order, so its result is the CPU's sequential first-strict-maximum whatever the thread layout.
 *
 * kn_moe_plan, one block: counts per expert (atomic adds commute, so the counts are exact and
 * deterministic), a block scan for offsets and group indices, then warp 0 places the pairs in
 * ascending i, 32 at a time, ranking equal experts inside a chunk with __match_any_sync: a stable
 * counting sort.
 *
 * kn_moe_combine: blockIdx.y is the token; its K picks are ordered by (expert, k) once in shared
 * memory, then each thread sums one value over them. */
#include "router.h"

#include <limits.h>

#include "kn_dev.cuh"

#define ROUTER_THREADS 256
#define ROUTER_WARPS (ROUTER_THREADS / 32)
#define PLAN_THREADS 1024
#define COMBINE_THREADS 256

/* Expert e's logit, h ascending with one rounding per product and per sum (rt_route's loop). */
template <int VEC>
static __device__ __forceinline__ float router_dot(const float *__restrict__ x, const float *__restrict__ w, uint64_t H)
{
    float s = 0.0f;
    if (VEC) {
        const float4 *x4 = reinterpret_cast<const float4 *>(x), *w4 = reinterpret_cast<const float4 *>(w);
        for (uint64_t j = 0; j < H / 4; j++) {
            float4 a = x4[j], b = w4[j];
            s = __fadd_rn(s, __fmul_rn(a.x, b.x));
            s = __fadd_rn(s, __fmul_rn(a.y, b.y));
            s = __fadd_rn(s, __fmul_rn(a.z, b.z));
            s = __fadd_rn(s, __fmul_rn(a.w, b.w));
        }
    } else {
        for (uint64_t h = 0; h < H; h++)
            s = __fadd_rn(s, __fmul_rn(x[h], w[h]));
    }
    return s;
}

/* (value, id) a beats (value, id) b: b has no candidate, or a's value is larger, or equal with a
 * lower id. Candidates are numbers (never NaN), so this is a total order. */
static __device__ __forceinline__ bool pick_beats(float av, int ai, float bv, int bi)
{
    return ai >= 0 && (bi < 0 || av > bv || (av == bv && ai < bi));
}

template <int VEC>
__global__ void __launch_bounds__(ROUTER_THREADS) router_kernel(const float *__restrict__ x, uint64_t ldx,
                                                               const float *__restrict__ w,
                                                               const float *__restrict__ bias, uint64_t H, uint32_t E,
                                                               uint32_t K, uint32_t G, uint32_t topk_group, int norm,
                                                               float scaling, int32_t *__restrict__ sel,
                                                               float *__restrict__ wsel, float *__restrict__ scores)
{
    __shared__ float score[KN_ROUTER_MAX_E], choice[KN_ROUTER_MAX_E], gscore[KN_ROUTER_MAX_E];
    __shared__ uint8_t taken[KN_ROUTER_MAX_E]; /* 0 free, 1 outside the kept groups, 2 picked */
    __shared__ float wv[ROUTER_WARPS];
    __shared__ int wi[ROUTER_WARPS], wfree[ROUTER_WARPS], wleft[ROUTER_WARPS];
    __shared__ int32_t pick[KN_ROUTER_MAX_K];
    const uint64_t t = blockIdx.x;
    const unsigned tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const float *xr = x + t * ldx;

    for (uint32_t e = tid; e < E; e += ROUTER_THREADS) {
        float s = router_dot<VEC>(xr, w + (uint64_t)e * H, H);
        /* rt_route's 1 / (1 + expf(-s)), with expf taken as exp in double rounded to float: the
         * host's expf is within about half an ulp and CUDA's expf within two, so this agrees with
         * the host on nearly every input and near-equal scores rank as they do on the CPU */
        float sc = 1.0f / (1.0f + (float)exp(-(double)s));
        score[e] = sc;
        choice[e] = __fadd_rn(sc, bias ? bias[e] : 0.0f);
        taken[e] = 0;
        if (scores)
            scores[t * E + e] = sc;
    }
    __syncthreads();

    if (G > 1) {
        const uint32_t per = E / G;
        for (uint32_t gi = tid; gi < G; gi += ROUTER_THREADS) {
            float b1 = -INFINITY, b2 = -INFINITY;
            for (uint32_t e = gi * per; e < (gi + 1) * per; e++) {
                float ch = choice[e];
                if (ch > b1)
                    b2 = b1, b1 = ch;
                else if (ch > b2)
                    b2 = ch;
            }
            gscore[gi] = __fadd_rn(b1, b2);
        }
        __syncthreads();
        for (uint32_t gi = tid; gi < G; gi += ROUTER_THREADS) {
            const float gs = gscore[gi];
            uint32_t better = 0; /* groups ranked before gi, exactly as rt_route counts them */
            for (uint32_t gj = 0; gj < G; gj++) {
                const float o = gscore[gj];
                better += o > gs || (o == gs && gj < gi) || (isnan(gs) && !isnan(o)) || (isnan(gs) && isnan(o) && gj < gi);
            }
            if (better >= topk_group)
                for (uint32_t e = gi * per; e < (gi + 1) * per; e++)
                    taken[e] = 1;
        }
        __syncthreads();
    }

    for (uint32_t k = 0; k < K; k++) {
        float bv = -INFINITY;
        int bi = -1, lfree = INT_MAX, lleft = INT_MAX;
        for (uint32_t e = tid; e < E; e += ROUTER_THREADS) { /* ascending: strict > keeps the lowest id */
            const uint8_t tk = taken[e];
            if (tk == 0) {
                const float ch = choice[e];
                if (ch > bv) /* false for NaN and -inf, as in rt_route */
                    bv = ch, bi = (int)e;
                lfree = min(lfree, (int)e);
            }
            if (tk != 2)
                lleft = min(lleft, (int)e);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(KN_FULL_MASK, bv, o);
            int oi = __shfl_xor_sync(KN_FULL_MASK, bi, o);
            if (pick_beats(ov, oi, bv, bi))
                bv = ov, bi = oi;
            lfree = min(lfree, __shfl_xor_sync(KN_FULL_MASK, lfree, o));
            lleft = min(lleft, __shfl_xor_sync(KN_FULL_MASK, lleft, o));
        }
        if (lane == 0)
            wv[warp] = bv, wi[warp] = bi, wfree[warp] = lfree, wleft[warp] = lleft;
        __syncthreads();
        if (tid == 0) {
            for (int j = 1; j < ROUTER_WARPS; j++) {
                if (pick_beats(wv[j], wi[j], bv, bi))
                    bv = wv[j], bi = wi[j];
                lfree = min(lfree, wfree[j]);
                lleft = min(lleft, wleft[j]);
            }
            int best = bi >= 0 ? bi : lfree != INT_MAX ? lfree : lleft; /* lleft exists: K <= E */
            taken[best] = 2;
            pick[k] = best;
        }
        __syncthreads();
    }

    if (tid == 0) {
        float sum = 0.0f;
        for (uint32_t k = 0; k < K; k++)
            sum = __fadd_rn(sum, score[pick[k]]);
        for (uint32_t k = 0; k < K; k++) {
            float v = score[pick[k]];
            if (norm)
                v = __fdiv_rn(v, __fadd_rn(sum, 1e-20f));
            v = __fmul_rn(v, scaling);
            sel[t * K + k] = pick[k];
            wsel[t * K + k] = v;
        }
    }
}

/* Exclusive prefix sum of v over the block (PLAN_THREADS threads); *total gets the sum. */
static __device__ __forceinline__ uint32_t block_exscan(uint32_t v, uint32_t *wsum, uint32_t *total)
{
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    uint32_t inc = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        uint32_t u = __shfl_up_sync(KN_FULL_MASK, inc, o);
        if (lane >= (unsigned)o)
            inc += u;
    }
    if (lane == 31)
        wsum[warp] = inc;
    __syncthreads();
    if (warp == 0) {
        uint32_t s = wsum[lane], si = s;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            uint32_t u = __shfl_up_sync(KN_FULL_MASK, si, o);
            if (lane >= (unsigned)o)
                si += u;
        }
        wsum[lane] = si - s; /* exclusive over warps */
        if (lane == 31)
            *total = si;
    }
    __syncthreads();
    uint32_t r = wsum[warp] + inc - v;
    __syncthreads(); /* wsum is reused by the next scan */
    return r;
}

__global__ void __launch_bounds__(PLAN_THREADS) moe_plan_kernel(const int32_t *__restrict__ sel, uint32_t n, uint32_t K,
                                                               uint32_t E, uint32_t slots, uint32_t *__restrict__ ng_out,
                                                               int32_t *__restrict__ gexp, uint32_t *__restrict__ goff,
                                                               uint32_t *__restrict__ gcnt,
                                                               int32_t *__restrict__ pair_tok,
                                                               uint32_t *__restrict__ pair_of)
{
    __shared__ uint32_t cnt[KN_ROUTER_MAX_E], cur[KN_ROUTER_MAX_E], wsum[32];
    __shared__ uint32_t ng_s, valid_s;
    const unsigned tid = threadIdx.x, lane = tid & 31;
    const uint32_t nk = n * K;
    if (tid < E)
        cnt[tid] = 0;
    __syncthreads();
    for (uint32_t i = tid; i < nk; i += PLAN_THREADS) {
        int32_t e = sel[i];
        if (e >= 0 && (uint32_t)e < E)
            atomicAdd(&cnt[e], 1u);
    }
    __syncthreads();
    const uint32_t c = tid < E ? cnt[tid] : 0;
    const uint32_t off = block_exscan(c, wsum, &valid_s);
    const uint32_t gi = block_exscan(c > 0, wsum, &ng_s);
    if (tid < E) {
        cur[tid] = off;
        if (c > 0)
            gexp[gi] = (int32_t)tid, goff[gi] = off, gcnt[gi] = c;
    }
    const uint32_t ng = ng_s, valid = valid_s; /* written before the scan's last barrier */
    for (uint32_t g = ng + tid; g < slots; g += PLAN_THREADS)
        gexp[g] = -1, goff[g] = valid, gcnt[g] = 0;
    if (tid == 0)
        *ng_out = ng;
    __syncthreads();
    if (tid < 32) {
        const uint32_t lt = (1u << lane) - 1u;
        for (uint32_t base = 0; base < nk; base += 32) {
            const uint32_t i = base + lane;
            const int32_t e = i < nk ? sel[i] : -1;
            const bool ok = i < nk && e >= 0 && (uint32_t)e < E;
            const unsigned m = __match_any_sync(KN_FULL_MASK, ok ? e : -1);
            if (ok) {
                const uint32_t p = cur[e] + __popc(m & lt);
                pair_tok[p] = (int32_t)(i / K);
                pair_of[i] = p;
            } else if (i < nk) {
                pair_of[i] = 0xFFFFFFFFu;
            }
            __syncwarp();
            if (ok && lane == (unsigned)(__ffs(m) - 1))
                cur[e] += __popc(m);
            __syncwarp();
        }
    }
}

/* No __launch_bounds__(256): with it ptxas held this kernel to 32 registers and spilled. */
__global__ void moe_combine_kernel(const float *__restrict__ ye, uint64_t ldye, const int32_t *__restrict__ sel,
                                   const float *__restrict__ wsel, const uint32_t *__restrict__ pair_of,
                                   float *__restrict__ y, uint64_t ldy, uint32_t n, uint32_t K, uint64_t H)
{
    __shared__ uint32_t row[KN_ROUTER_MAX_K];
    __shared__ float wk[KN_ROUTER_MAX_K];
    const uint64_t t = blockIdx.y;
    const uint32_t nk = n * K;
    if (threadIdx.x < K) {
        const uint32_t k = threadIdx.x;
        const int32_t e = sel[t * K + k];
        uint32_t rank = 0; /* position of pick k in (expert, k) order */
        for (uint32_t j = 0; j < K; j++) {
            const int32_t o = sel[t * K + j];
            rank += o < e || (o == e && j < k);
        }
        row[rank] = pair_of[t * K + k];
        wk[rank] = wsel[t * K + k];
    }
    __syncthreads();
    for (uint64_t h = (uint64_t)blockIdx.x * COMBINE_THREADS + threadIdx.x; h < H; h += (uint64_t)gridDim.x * COMBINE_THREADS) {
        float acc = 0.0f;
        for (uint32_t r = 0; r < K; r++)
            if (row[r] < nk)
                acc = __fadd_rn(acc, __fmul_rn(wk[r], ye[(uint64_t)row[r] * ldye + h]));
        y[t * ldy + h] = acc;
    }
}

extern "C" lq_status kn_router(const kn_ctx *k, const kn_router_args *a, lq_error *err)
{
    static const char op[] = "router";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->x || !a->w || !a->sel || !a->wsel)
        return kn_arg_fail(err, op, "NULL x, w, sel or wsel");
    if (a->E == 0 || a->E > KN_ROUTER_MAX_E)
        return kn_arg_fail(err, op, "E %u outside 1..%d", a->E, KN_ROUTER_MAX_E);
    if (a->K == 0 || a->K > a->E || a->K > KN_ROUTER_MAX_K)
        return kn_arg_fail(err, op, "K %u outside 1..min(E %u, %d)", a->K, a->E, KN_ROUTER_MAX_K);
    if (a->n_group > 1 && (a->E % a->n_group != 0 || a->topk_group == 0 || a->topk_group > a->n_group))
        return kn_arg_fail(err, op, "n_group %u must divide E %u and topk_group %u lie in 1..n_group", a->n_group, a->E,
                           a->topk_group);
    if (a->H == 0 || a->ldx < a->H)
        return kn_arg_fail(err, op, "H %llu (need >= 1) with ldx %llu (need >= H)", (unsigned long long)a->H,
                           (unsigned long long)a->ldx);
    if (a->n > 0x7FFFFFFFu)
        return kn_arg_fail(err, op, "n %u above the grid limit", a->n);
    if (a->n == 0)
        return LQ_OK;
    const int vec = a->H % 4 == 0 && a->ldx % 4 == 0 && KN_ALIGNED(a->x, 16) && KN_ALIGNED(a->w, 16);
    const uint32_t G = a->n_group > 1 ? a->n_group : 1;
    if (vec)
        router_kernel<1><<<a->n, ROUTER_THREADS, 0, k->stream>>>(a->x, a->ldx, a->w, a->bias, a->H, a->E, a->K, G,
                                                                 a->topk_group, a->norm, (float)a->scaling, a->sel,
                                                                 a->wsel, a->scores);
    else
        router_kernel<0><<<a->n, ROUTER_THREADS, 0, k->stream>>>(a->x, a->ldx, a->w, a->bias, a->H, a->E, a->K, G,
                                                                 a->topk_group, a->norm, (float)a->scaling, a->sel,
                                                                 a->wsel, a->scores);
    return kn_launched(op, err);
}

extern "C" lq_status kn_moe_plan(const kn_ctx *k, const kn_moe_plan_args *a, lq_error *err)
{
    static const char op[] = "moe_plan";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->sel || !a->ng || !a->gexp || !a->goff || !a->gcnt || !a->pair_tok || !a->pair_of)
        return kn_arg_fail(err, op, "NULL sel, ng, gexp, goff, gcnt, pair_tok or pair_of");
    if (a->n == 0 || a->n > KN_MOE_MAX_TOKENS || a->K == 0 || a->K > KN_ROUTER_MAX_K || a->E == 0 ||
        a->E > KN_ROUTER_MAX_E)
        return kn_arg_fail(err, op, "n %u, K %u, E %u: need n in 1..%d, K in 1..%d, E in 1..%d", a->n, a->K, a->E,
                           KN_MOE_MAX_TOKENS, KN_ROUTER_MAX_K, KN_ROUTER_MAX_E);
    const uint32_t need = a->n * a->K < a->E ? a->n * a->K : a->E;
    if (a->slots < need)
        return kn_arg_fail(err, op, "slots %u below min(n * K, E) = %u", a->slots, need);
    moe_plan_kernel<<<1, PLAN_THREADS, 0, k->stream>>>(a->sel, a->n, a->K, a->E, a->slots, a->ng, a->gexp, a->goff,
                                                       a->gcnt, a->pair_tok, a->pair_of);
    return kn_launched(op, err);
}

extern "C" lq_status kn_moe_combine(const kn_ctx *k, const kn_moe_combine_args *a, lq_error *err)
{
    static const char op[] = "moe_combine";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->ye || !a->sel || !a->wsel || !a->pair_of || !a->y)
        return kn_arg_fail(err, op, "NULL ye, sel, wsel, pair_of or y");
    if (a->n > 65535 || a->K == 0 || a->K > KN_ROUTER_MAX_K)
        return kn_arg_fail(err, op, "n %u, K %u: need n <= 65535 and K in 1..%d", a->n, a->K, KN_ROUTER_MAX_K);
    if (a->H == 0 || a->ldye < a->H || a->ldy < a->H)
        return kn_arg_fail(err, op, "H %llu (need >= 1) with ldye %llu, ldy %llu (need >= H)", (unsigned long long)a->H,
                           (unsigned long long)a->ldye, (unsigned long long)a->ldy);
    if (a->n == 0)
        return LQ_OK;
    unsigned per_row = kn_grid(k, a->H, COMBINE_THREADS, 4);
    unsigned share = (unsigned)((uint64_t)(k->sms > 0 ? k->sms : 1) * 4 / a->n);
    dim3 grid(per_row < share ? per_row : (share ? share : 1), a->n);
    moe_combine_kernel<<<grid, COMBINE_THREADS, 0, k->stream>>>(a->ye, a->ldye, a->sel, a->wsel, a->pair_of, a->y,
                                                                a->ldy, a->n, a->K, a->H);
    return kn_launched(op, err);
}
