/* Head preparation, QKV split and KV store (rope.h).
 *
 * kn_head_prep: one warp per (row, head). Lanes stride over the head's d values; the optional
 * norm's sum of squares is a double per lane reduced by a fixed butterfly (depends on d only).
 * The rotation pairs i and i + rd/2 are handled by the same lane, which recomputes bias and norm
 * for the two values it rotates, so nothing is staged in shared memory and every value of the
 * head is read once more after the reduction and written once. The rotation is rt_rope's:
 * angle = (float)position * inv_freq[i] and each product and sum rounded on its own (no FMA).
 *
 * kn_qkv_split and kn_kv_store are copies: blockIdx.y walks rows, x threads walk a row's
 * values, so loads and stores are coalesced within a shard or a ring row. */
#include "rope.h"

#include "kn_dev.cuh"

#define PREP_WARPS 4
#define COPY_THREADS 256
#define MAX_GRID_Y 65535u

/* Value j of the head after bias and norm (r and w unused when w is NULL). */
static __device__ __forceinline__ float prep_load(const float *xh, const float *bh, const float *w, float r, uint32_t j)
{
    float v = xh[j];
    if (bh)
        v = __fadd_rn(v, bh[j]);
    if (w)
        v = __fmul_rn(w[j], __fmul_rn(v, r));
    return v;
}

__global__ void __launch_bounds__(PREP_WARPS * 32) head_prep_kernel(float *x, const float *__restrict__ bias,
                                                                   const float *__restrict__ norm_w,
                                                                   const float *__restrict__ inv_freq,
                                                                   const uint32_t *__restrict__ pos, uint32_t heads,
                                                                   uint32_t d, uint32_t rd, uint64_t ldx, uint64_t pairs,
                                                                   double eps, float scale)
{
    const uint64_t wid = (uint64_t)blockIdx.x * PREP_WARPS + (threadIdx.x >> 5);
    const uint32_t lane = threadIdx.x & 31;
    if (wid >= pairs) /* whole warps leave together: the shuffles below see full warps */
        return;
    const uint64_t t = wid / heads;
    const uint32_t hd = (uint32_t)(wid % heads);
    float *xh = x + t * ldx + (uint64_t)hd * d;
    const float *bh = bias ? bias + (uint64_t)hd * d : nullptr;
    float r = 1.0f;
    if (norm_w) {
        double ss = 0;
        for (uint32_t j = lane; j < d; j += 32) {
            float v = xh[j];
            if (bh)
                v = __fadd_rn(v, bh[j]);
            ss += (double)v * (double)v;
        }
        ss = kn_warp_sum_d(ss);
        r = (float)(1.0 / sqrt(ss / (double)d + eps));
    }
    __syncwarp(); /* every lane's reads above come before any lane's writes below */
    const uint32_t half = rd / 2;
    if (half) {
        const float fp = (float)((uint64_t)*pos + t); /* rt_rope: (float)pos, round to nearest */
        for (uint32_t i = lane; i < half; i += 32) {
            float a = prep_load(xh, bh, norm_w, r, i), b = prep_load(xh, bh, norm_w, r, i + half);
            float f = __fmul_rn(fp, inv_freq[i]);
            float c = cosf(f), s = sinf(f);
            float ra = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
            float rb = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
            if (scale != 1.0f)
                ra = __fmul_rn(ra, scale), rb = __fmul_rn(rb, scale);
            xh[i] = ra;
            xh[i + half] = rb;
        }
    }
    for (uint32_t j = rd + lane; j < d; j += 32) {
        float v = prep_load(xh, bh, norm_w, r, j);
        if (scale != 1.0f)
            v = __fmul_rn(v, scale);
        xh[j] = v;
    }
}

__global__ void __launch_bounds__(COPY_THREADS) qkv_split_kernel(const float *__restrict__ y, float *__restrict__ q,
                                                                float *__restrict__ k, float *__restrict__ v, uint32_t n,
                                                                uint64_t qs, uint64_t ks, uint64_t vs, uint32_t shards,
                                                                uint64_t ld)
{
    const uint64_t per = qs + ks + vs, rows = per * shards;
    for (uint64_t t = blockIdx.y; t < n; t += gridDim.y) {
        const float *src = y + t * ld;
        for (uint64_t j = (uint64_t)blockIdx.x * COPY_THREADS + threadIdx.x; j < rows; j += (uint64_t)gridDim.x * COPY_THREADS) {
            uint64_t s = j / per, o = j - s * per;
            float val = src[j];
            if (o < qs)
                q[t * qs * shards + s * qs + o] = val;
            else if (o < qs + ks)
                k[t * ks * shards + s * ks + (o - qs)] = val;
            else
                v[t * vs * shards + s * vs + (o - qs - ks)] = val;
        }
    }
}

template <int F32>
__global__ void __launch_bounds__(COPY_THREADS) kv_store_kernel(const float *__restrict__ k, const float *__restrict__ v,
                                                               void *__restrict__ kc, void *__restrict__ vc,
                                                               const uint32_t *__restrict__ pos, uint32_t n,
                                                               uint64_t slots, uint64_t kr, uint64_t vr, uint64_t ldk,
                                                               uint64_t ldv)
{
    const uint64_t p0 = *pos;
    for (uint64_t t = blockIdx.y; t < n; t += gridDim.y) {
        const uint64_t slot = (p0 + t) % slots;
        for (uint64_t j = (uint64_t)blockIdx.x * COPY_THREADS + threadIdx.x; j < kr + vr; j += (uint64_t)gridDim.x * COPY_THREADS) {
            float val;
            uint64_t dst;
            void *ring;
            if (j < kr)
                val = k[t * ldk + j], dst = slot * kr + j, ring = kc;
            else
                val = v[t * ldv + (j - kr)], dst = slot * vr + (j - kr), ring = vc;
            if (F32)
                static_cast<float *>(ring)[dst] = val;
            else
                static_cast<uint16_t *>(ring)[dst] = kn_bf16_bits(val);
        }
    }
}

/* Blocks along a row of `width` values: enough to fill the machine about four times with the
 * rows of the launch, never more than the row needs. */
static unsigned row_blocks(const kn_ctx *k, uint64_t width, uint32_t rows)
{
    unsigned per_row = kn_grid(k, width, COPY_THREADS, 4);
    unsigned share = (unsigned)((uint64_t)(k->sms > 0 ? k->sms : 1) * 4 / (rows ? rows : 1));
    if (share < 1)
        share = 1;
    return per_row < share ? per_row : share;
}

extern "C" lq_status kn_head_prep(const kn_ctx *k, const kn_head_prep_args *a, lq_error *err)
{
    static const char op[] = "head_prep";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->x)
        return kn_arg_fail(err, op, "NULL x");
    if (a->heads == 0 || a->d == 0 || a->d > 65536)
        return kn_arg_fail(err, op, "heads %u, d %u: need heads >= 1 and d in 1..65536", a->heads, a->d);
    if (a->rd % 2 != 0 || a->rd > a->d)
        return kn_arg_fail(err, op, "rotary dims %u: need an even count <= d %u", a->rd, a->d);
    if (a->rd > 0 && (!a->inv_freq || !a->pos))
        return kn_arg_fail(err, op, "rd %u with a NULL inv_freq or pos", a->rd);
    if (a->ldx < (uint64_t)a->heads * a->d)
        return kn_arg_fail(err, op, "ldx %llu below heads * d = %llu", (unsigned long long)a->ldx,
                           (unsigned long long)a->heads * a->d);
    if (a->norm_w && !(a->eps >= 0))
        return kn_arg_fail(err, op, "eps %g is not >= 0", a->eps);
    if (!(a->scale == a->scale))
        return kn_arg_fail(err, op, "scale is NaN");
    const uint64_t pairs = (uint64_t)a->n * a->heads, blocks = (pairs + PREP_WARPS - 1) / PREP_WARPS;
    if (blocks > 0x7FFFFFFFu)
        return kn_arg_fail(err, op, "%llu (row, head) pairs exceed one grid", (unsigned long long)pairs);
    if (pairs == 0)
        return LQ_OK;
    head_prep_kernel<<<(unsigned)blocks, PREP_WARPS * 32, 0, k->stream>>>(a->x, a->bias, a->norm_w, a->inv_freq, a->pos,
                                                                         a->heads, a->d, a->rd, a->ldx, pairs, a->eps,
                                                                         a->scale);
    return kn_launched(op, err);
}

extern "C" lq_status kn_qkv_split(const kn_ctx *k, const kn_qkv_split_args *a, lq_error *err)
{
    static const char op[] = "qkv_split";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->y || !a->q || !a->k || !a->v)
        return kn_arg_fail(err, op, "NULL y, q, k or v");
    if (a->shards == 0 || a->qr == 0 || a->kr == 0 || a->vr == 0 || a->qr % a->shards || a->kr % a->shards ||
        a->vr % a->shards)
        return kn_arg_fail(err, op, "qr %llu, kr %llu, vr %llu must be >= 1 and divisible by %u shards",
                           (unsigned long long)a->qr, (unsigned long long)a->kr, (unsigned long long)a->vr, a->shards);
    if (a->ld < a->qr + a->kr + a->vr)
        return kn_arg_fail(err, op, "ld %llu below qr + kr + vr = %llu", (unsigned long long)a->ld,
                           (unsigned long long)(a->qr + a->kr + a->vr));
    if (a->n == 0)
        return LQ_OK;
    const uint64_t rows = a->qr + a->kr + a->vr;
    dim3 grid(row_blocks(k, rows, a->n), a->n < MAX_GRID_Y ? a->n : MAX_GRID_Y);
    qkv_split_kernel<<<grid, COPY_THREADS, 0, k->stream>>>(a->y, a->q, a->k, a->v, a->n, a->qr / a->shards,
                                                           a->kr / a->shards, a->vr / a->shards, a->shards, a->ld);
    return kn_launched(op, err);
}

extern "C" lq_status kn_kv_store(const kn_ctx *k, const kn_kv_store_args *a, lq_error *err)
{
    static const char op[] = "kv_store";
    if (!k || !a)
        return kn_arg_fail(err, op, "NULL context or arguments");
    if (!a->k || !a->v || !a->kc || !a->vc || !a->pos)
        return kn_arg_fail(err, op, "NULL k, v, kc, vc or pos");
    if (a->kr == 0 || a->vr == 0 || a->ldk < a->kr || a->ldv < a->vr)
        return kn_arg_fail(err, op, "kr %llu, vr %llu (need >= 1) with strides ldk %llu, ldv %llu (need >= kr, vr)",
                           (unsigned long long)a->kr, (unsigned long long)a->vr, (unsigned long long)a->ldk,
                           (unsigned long long)a->ldv);
    if (a->slots == 0 || a->n > a->slots)
        return kn_arg_fail(err, op, "%u rows into a ring of %llu slots (need 1 <= rows <= slots)", a->n,
                           (unsigned long long)a->slots);
    if (a->kv_f32 != 0 && a->kv_f32 != 1)
        return kn_arg_fail(err, op, "kv_f32 %d is not 0 or 1", a->kv_f32);
    if (!KN_ALIGNED(a->kc, a->kv_f32 ? 4 : 2) || !KN_ALIGNED(a->vc, a->kv_f32 ? 4 : 2))
        return kn_arg_fail(err, op, "ring pointers not aligned to their element size");
    if (a->n == 0)
        return LQ_OK;
    dim3 grid(row_blocks(k, a->kr + a->vr, a->n), a->n < MAX_GRID_Y ? a->n : MAX_GRID_Y);
    if (a->kv_f32)
        kv_store_kernel<1><<<grid, COPY_THREADS, 0, k->stream>>>(a->k, a->v, a->kc, a->vc, a->pos, a->n, a->slots,
                                                                 a->kr, a->vr, a->ldk, a->ldv);
    else
        kv_store_kernel<0><<<grid, COPY_THREADS, 0, k->stream>>>(a->k, a->v, a->kc, a->vc, a->pos, a->n, a->slots,
                                                                 a->kr, a->vr, a->ldk, a->ldv);
    return kn_launched(op, err);
}
