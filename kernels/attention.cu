/* Attention over a KV ring (attention.h): a split over keys in fixed chunks, then a combine.
 *
 * att_partial: one block of 256 threads per (chunk, slice of hpb heads of one GQA group, row).
 * It walks its chunk's keys in tiles of TK: the K and V rows of the tile go to shared memory as
 * f32 (16-byte loads where alignment allows), each (head, key) score is one thread's dot product
 * against the group's queries (also in shared memory), one warp per head updates that head's
 * running max and sum and turns scores into weights, and each thread accumulates its own
 * (head, 4 value columns) pairs in registers. So every K/V byte is read once for all hpb heads.
 * At the end the block writes each head's (max, sum, unnormalized values) to the workspace.
 * Blocks whose chunk lies beyond their row's keys return at once: the grid is sized by max_keys
 * so that a captured graph serves every position up to it.
 *
 * att_combine: one block per (head, row) merges that row's chunks in ascending order with the
 * sink, divides, and writes f32 or bf16.
 *
 * Everything a block computes depends only on its row's position, its chunk and the shapes
 * (hpb is chosen from the shapes), so a row's result never depends on n or on other rows. */
#include "attention.h"

#include <cuda_bf16.h>
#include <math.h>

namespace {

constexpr int NT = 256;                 /* threads of a partial block */
constexpr int TK = 16;                  /* keys per shared-memory tile */
constexpr int MAXH = 16;                /* heads per block (2 per warp in the softmax step) */
constexpr int KMAX = 4;                 /* (head, column quad) pairs per thread: MAXH * 64 quads / NT */
constexpr int CT = 128;                 /* threads of a combine block: dv / 2 <= 128 column pairs */
constexpr uint32_t CHUNK = KN_ATTENTION_CHUNK;
constexpr size_t SMEM_CAP = 48 * 1024;  /* the default dynamic limit: no per-kernel attribute needed */

static_assert(MAXH * (KN_ATTENTION_MAX_DIM / 4) <= KMAX * NT, "accumulator pairs do not fit");
static_assert(MAXH <= 2 * (NT / 32), "the softmax step gives each warp two heads");
static_assert(TK <= 32, "the softmax step holds a tile's scores in one warp");
static_assert(KN_ATTENTION_MAX_DIM <= 2 * CT, "the combine gives each thread one column pair");
static_assert(CHUNK % TK == 0, "chunks are whole tiles");

struct att_params {
    const float *q, *bk, *bv, *sinks;
    const void *kc, *vc;
    const uint32_t *pos;
    void *out;
    float *ws_acc; /* [n][nq][nct][dv] */
    float2 *ws_ml; /* [n][nq][nct] (max, sum) */
    uint64_t ldq, ldbk, ldbv, ldo, slots;
    uint32_t n, nq, nkv, dqk, dv, group, hpb, nc, nct, max_keys, span;
    int ctx_only, causal, kvec, vvec, bkvec, bvvec;
    int qs, vs, dq4, dv4; /* shared row strides (floats) and column quads */
    float scale;
};

/* Row t's ring keys: positions lo .. lo + cnt - 1, clamped to max_keys. */
__device__ __forceinline__ void key_range(const att_params &p, uint64_t p0, uint32_t t, uint64_t *lo, uint64_t *cnt)
{
    const uint64_t qp = p0 + t, hi = p.ctx_only ? p0 : qp + 1;
    const uint64_t l = p.span && qp + 1 > p.span ? qp + 1 - p.span : 0;
    uint64_t c = hi > l ? hi - l : 0;
    *lo = l;
    *cnt = c < p.max_keys ? c : p.max_keys;
}

/* x mod s with 32-bit remainders only (a 64-bit one is a called subroutine). Positions here are
 * below 2^33 + 64, so the loop runs at most twice. */
__device__ __forceinline__ uint64_t ring_slot(uint64_t x, uint32_t s)
{
    const uint32_t hi = (uint32_t)(x >> 32), w = (0u - s) % s; /* 2^32 mod s */
    uint64_t r = (uint32_t)x % s;
    for (uint32_t i = 0; i < hi; i++) {
        r += w;
        r = r >= s ? r - s : r;
    }
    return r;
}

__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

/* 16 bytes of source to f32 shared memory. */
__device__ __forceinline__ void put16(float *d, const float *s)
{
    *reinterpret_cast<float4 *>(d) = __ldg(reinterpret_cast<const float4 *>(s));
}
__device__ __forceinline__ void put16(float *d, const uint16_t *s)
{
    const uint4 w = __ldg(reinterpret_cast<const uint4 *>(s));
    reinterpret_cast<float4 *>(d)[0] = make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
    reinterpret_cast<float4 *>(d)[1] = make_float4(bf16_lo(w.z), bf16_hi(w.z), bf16_lo(w.w), bf16_hi(w.w));
}
/* Two elements (the narrow path). */
__device__ __forceinline__ void put2(float *d, const float *s)
{
    *reinterpret_cast<float2 *>(d) = __ldg(reinterpret_cast<const float2 *>(s));
}
__device__ __forceinline__ void put2(float *d, const uint16_t *s)
{
    const uint32_t w = __ldg(reinterpret_cast<const unsigned int *>(s));
    *reinterpret_cast<float2 *>(d) = make_float2(bf16_lo(w), bf16_hi(w));
}

/* rows x cols elements into dst (row stride ds floats): source row r at base + ((rb + r) wrapped at
 * `wrap`) * stride. Consecutive threads take consecutive pieces of a row, so loads coalesce. */
template <typename T>
__device__ __forceinline__ void load_rows(float *dst, int ds, const T *__restrict__ base, uint64_t rb, uint64_t wrap,
                                          uint64_t stride, int rows, int cols, int vec)
{
    if (vec) {
        constexpr int U = 16 / (int)sizeof(T);
        const int upr = cols / U, total = rows * upr;
        for (int u = threadIdx.x; u < total; u += NT) {
            const int r = u / upr, c = (u - r * upr) * U;
            uint64_t row = rb + (uint64_t)r;
            row = row >= wrap ? row - wrap : row;
            put16(dst + r * ds + c, base + row * stride + c);
        }
    } else {
        const int upr = cols / 2, total = rows * upr;
        for (int u = threadIdx.x; u < total; u += NT) {
            const int r = u / upr, c = (u - r * upr) * 2;
            uint64_t row = rb + (uint64_t)r;
            row = row >= wrap ? row - wrap : row;
            put2(dst + r * ds + c, base + row * stride + c);
        }
    }
}

template <typename KT>
__global__ void __launch_bounds__(NT, 2) att_partial(const att_params p)
{
    extern __shared__ float4 smem4[];
    float *const Ks = reinterpret_cast<float *>(smem4); /* [TK][qs] */
    float *const Vs = Ks + TK * p.qs;                    /* [TK][vs] */
    float *const Qs = Vs + TK * p.vs;                    /* [hpb][qs] */
    float *const Ps = Qs + p.hpb * p.qs;                 /* [hpb][TK] scores, then weights */
    float *const Cs = Ps + p.hpb * TK;                   /* [hpb] rescale of the running sums */

    const uint32_t c = blockIdx.x, t = blockIdx.z, hpb = p.hpb, h0 = blockIdx.y * hpb, g = h0 / p.group;
    const uint64_t p0 = *p.pos;
    uint64_t lo, cnt;
    key_range(p, p0, t, &lo, &cnt);
    const bool blk = p.ctx_only && c == p.nc; /* the drafter's block keys */
    uint32_t nkeys;
    if (blk)
        nkeys = p.n;
    else {
        const uint64_t b = (uint64_t)c * CHUNK;
        if (b >= cnt)
            return; /* beyond this row's keys: the combine never reads this chunk */
        nkeys = cnt - b < CHUNK ? (uint32_t)(cnt - b) : CHUNK;
    }
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int qs = p.qs, vs = p.vs, dq4 = p.dq4, dv4 = p.dv4, dqk = (int)p.dqk, dv = (int)p.dv;

    /* Zeroed tiles: the padding columns (a dimension not a multiple of 4) stay zero, and the
     * loads below only ever write real columns. */
    for (int i = tid; i < TK * (qs + vs); i += NT)
        Ks[i] = 0.0f;
    {
        const float *qrow = p.q + (uint64_t)t * p.ldq + (uint64_t)h0 * p.dqk;
        const int w4 = 4 * dq4;
        for (int i = tid; i < (int)hpb * w4; i += NT) {
            const int h = i / w4, d = i - h * w4;
            Qs[h * qs + d] = d < dqk ? qrow[(uint64_t)h * p.dqk + d] : 0.0f;
        }
    }

    float4 acc[KMAX];
    int oh[KMAX], oq[KMAX];
    bool ov[KMAX];
#pragma unroll
    for (int k = 0; k < KMAX; k++) {
        const int o = tid + k * NT;
        ov[k] = o < (int)hpb * dv4;
        oh[k] = ov[k] ? o / dv4 : 0;
        oq[k] = ov[k] ? o - oh[k] * dv4 : 0;
        acc[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    float mrun[2] = {-INFINITY, -INFINITY}, lrun[2] = {0.0f, 0.0f}; /* heads warp, warp + 8 */

    /* The ring slot of this chunk's first key. Every tile's first key is fewer than max_keys <= slots
     * keys further on, so one conditional subtraction wraps it. */
    const uint64_t slot0 = blk ? 0 : ring_slot(lo + (uint64_t)c * CHUNK, (uint32_t)p.slots);
    const KT *kbase = static_cast<const KT *>(p.kc) + (uint64_t)g * p.dqk;
    const KT *vbase = static_cast<const KT *>(p.vc) + (uint64_t)g * p.dv;
    const uint64_t krow = (uint64_t)p.nkv * p.dqk, vrow = (uint64_t)p.nkv * p.dv;
    __syncthreads();

    for (uint32_t base = 0; base < nkeys; base += TK) {
        const int nv = nkeys - base < (uint32_t)TK ? (int)(nkeys - base) : TK;
        if (blk) {
            load_rows<float>(Ks, qs, p.bk + (uint64_t)g * p.dqk, base, UINT64_MAX, p.ldbk, nv, dqk, p.bkvec);
            load_rows<float>(Vs, vs, p.bv + (uint64_t)g * p.dv, base, UINT64_MAX, p.ldbv, nv, dv, p.bvvec);
        } else {
            const uint64_t rb = slot0 + base >= p.slots ? slot0 + base - p.slots : slot0 + base;
            load_rows<KT>(Ks, qs, kbase, rb, p.slots, krow, nv, dqk, p.kvec);
            load_rows<KT>(Vs, vs, vbase, rb, p.slots, vrow, nv, dv, p.vvec);
        }
        __syncthreads();

        /* Scores: thread (h, j) = q_h . k_j * scale; -inf for a missing or hidden key. */
        for (int pr = tid; pr < (int)hpb * TK; pr += NT) {
            const int h = pr / TK, j = pr % TK;
            float s = -INFINITY;
            bool vis = j < nv;
            if (vis && blk) {
                const uint32_t jj = base + (uint32_t)j, dj = jj > t ? jj - t : t - jj;
                vis = (!p.causal || jj <= t) && (!p.span || dj < p.span);
            }
            if (vis) {
                const float4 *qr = reinterpret_cast<const float4 *>(Qs + h * qs);
                const float4 *kr = reinterpret_cast<const float4 *>(Ks + j * qs);
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma unroll 4
                for (int d = 0; d < dq4; d++) {
                    const float4 x = qr[d], y = kr[d];
                    a0 = fmaf(x.x, y.x, a0);
                    a1 = fmaf(x.y, y.y, a1);
                    a2 = fmaf(x.z, y.z, a2);
                    a3 = fmaf(x.w, y.w, a3);
                }
                s = ((a0 + a1) + (a2 + a3)) * p.scale;
            }
            Ps[pr] = s;
        }
        __syncthreads();

        /* Online softmax, one warp per head: new running max, the factor for what was summed so
         * far, the tile's weights. A head with no visible key yet keeps max -inf and sum 0. */
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int h = warp + 8 * i;
            if (h < (int)hpb) {
                const float s = lane < TK ? Ps[h * TK + lane] : -INFINITY;
                float mx = s;
#pragma unroll
                for (int off = 16; off > 0; off >>= 1)
                    mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, off));
                const float mn = fmaxf(mrun[i], mx);
                const float corr = mn == -INFINITY ? 1.0f : expf(mrun[i] - mn);
                const float e = s == -INFINITY ? 0.0f : expf(s - mn);
                float sum = e;
#pragma unroll
                for (int off = 16; off > 0; off >>= 1)
                    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, off);
                lrun[i] = lrun[i] * corr + sum;
                mrun[i] = mn;
                if (lane < TK)
                    Ps[h * TK + lane] = e;
                if (lane == 0)
                    Cs[h] = corr;
            }
        }
        __syncthreads();

        /* Values: each thread's (head, column quad) pairs. */
#pragma unroll
        for (int k = 0; k < KMAX; k++) {
            if (ov[k]) {
                const float cr = Cs[oh[k]];
                float4 a = acc[k];
                a.x *= cr, a.y *= cr, a.z *= cr, a.w *= cr;
                const float *pw = Ps + oh[k] * TK;
                const float4 *vr = reinterpret_cast<const float4 *>(Vs) + oq[k];
                const int vs4 = vs / 4;
#pragma unroll 4
                for (int j = 0; j < nv; j++) {
                    const float w = pw[j];
                    const float4 v = vr[j * vs4];
                    a.x = fmaf(w, v.x, a.x);
                    a.y = fmaf(w, v.y, a.y);
                    a.z = fmaf(w, v.z, a.z);
                    a.w = fmaf(w, v.w, a.w);
                }
                acc[k] = a;
            }
        }
        __syncthreads(); /* the next tile overwrites K, V, the weights and the factors */
    }

    const uint32_t cs = blk ? p.nc : c;
#pragma unroll
    for (int k = 0; k < KMAX; k++) {
        if (ov[k]) {
            const uint64_t idx = ((uint64_t)t * p.nq + h0 + (uint32_t)oh[k]) * p.nct + cs;
            float *w = p.ws_acc + idx * p.dv + 4 * oq[k];
            *reinterpret_cast<float2 *>(w) = make_float2(acc[k].x, acc[k].y);
            if (4 * oq[k] + 2 < dv)
                *reinterpret_cast<float2 *>(w + 2) = make_float2(acc[k].z, acc[k].w);
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int h = warp + 8 * i;
        if (h < (int)hpb && lane == 0)
            p.ws_ml[((uint64_t)t * p.nq + h0 + (uint32_t)h) * p.nct + cs] = make_float2(mrun[i], lrun[i]);
    }
}

template <int OUT_BF16>
__global__ void __launch_bounds__(CT) att_combine(const att_params p)
{
    const uint32_t h = blockIdx.x, t = blockIdx.y;
    const uint64_t p0 = *p.pos;
    uint64_t lo, cnt;
    key_range(p, p0, t, &lo, &cnt);
    const uint32_t nvc = (uint32_t)((cnt + CHUNK - 1) / CHUNK), nparts = nvc + (p.ctx_only ? 1u : 0u);
    const uint64_t row = (uint64_t)t * p.nq + h;
    const float2 *ml = p.ws_ml + row * p.nct;
    const float *ac = p.ws_acc + row * p.nct * p.dv;

    float M = p.sinks ? p.sinks[h] : -INFINITY;
    for (uint32_t i = 0; i < nparts; i++)
        M = fmaxf(M, ml[i < nvc ? i : p.nc].x);
    float L = p.sinks && M != -INFINITY ? expf(p.sinks[h] - M) : 0.0f;
    const uint32_t d = 2 * threadIdx.x;
    const bool act = d < p.dv;
    float ox = 0.0f, oy = 0.0f;
    for (uint32_t i = 0; i < nparts; i++) { /* ascending chunks, then the block keys: a fixed order */
        const uint32_t c = i < nvc ? i : p.nc;
        const float2 v = ml[c];
        const float w = v.x == -INFINITY ? 0.0f : expf(v.x - M);
        L = fmaf(v.y, w, L);
        if (act) {
            const float2 a = *reinterpret_cast<const float2 *>(ac + (uint64_t)c * p.dv + d);
            ox = fmaf(a.x, w, ox);
            oy = fmaf(a.y, w, oy);
        }
    }
    if (!act)
        return;
    const float rx = L > 0.0f ? ox / L : 0.0f, ry = L > 0.0f ? oy / L : 0.0f;
    const uint64_t o = (uint64_t)t * p.ldo + (uint64_t)h * p.dv + d;
    if (OUT_BF16)
        *reinterpret_cast<__nv_bfloat162 *>(static_cast<uint16_t *>(p.out) + o) = __floats2bfloat162_rn(rx, ry);
    else
        *reinterpret_cast<float2 *>(static_cast<float *>(p.out) + o) = make_float2(rx, ry);
}

uint32_t chunks(uint32_t max_keys) { return (uint32_t)(((uint64_t)max_keys + CHUNK - 1) / CHUNK); }

size_t smem_bytes(uint32_t hpb, int qs, int vs)
{
    return ((size_t)TK * (size_t)(qs + vs) + (size_t)hpb * (size_t)qs + (size_t)hpb * TK + (size_t)hpb) * sizeof(float);
}

} // namespace

extern "C" size_t kn_attention_workspace_bytes(uint32_t n, uint32_t nq, uint32_t dv, uint32_t max_keys)
{
    return (size_t)n * nq * (uint64_t)(chunks(max_keys) + 1) * ((uint64_t)dv + 2) * sizeof(float);
}

#define FAIL(...) return kn_arg_fail(err, "attention", __VA_ARGS__)

extern "C" lq_status kn_attention(const kn_ctx *k, const kn_attention_args *a, lq_error *err)
{
    if (!k || !a)
        FAIL("NULL %s", !k ? "context" : "arguments");
    if (!a->q || !a->kc || !a->vc || !a->pos || !a->out || !a->ws)
        FAIL("NULL device pointer (q %p, kc %p, vc %p, pos %p, out %p, ws %p)", (const void *)a->q, a->kc, a->vc,
             (const void *)a->pos, a->out, a->ws);
    if (a->ctx_only && (!a->bk || !a->bv))
        FAIL("ctx_only needs the block keys and values (bk %p, bv %p)", (const void *)a->bk, (const void *)a->bv);
    if (a->n < 1 || a->n > KN_ATTENTION_MAX_ROWS)
        FAIL("n = %u rows, want 1..%u", a->n, KN_ATTENTION_MAX_ROWS);
    if (a->nq < 1 || a->nkv < 1 || a->nq % a->nkv != 0 || a->nq > 65535)
        FAIL("nq = %u, nkv = %u: want nkv >= 1, nq a multiple of nkv, nq <= 65535", a->nq, a->nkv);
    if (a->dqk < 2 || a->dqk > KN_ATTENTION_MAX_DIM || a->dqk % 2 || a->dv < 2 || a->dv > KN_ATTENTION_MAX_DIM ||
        a->dv % 2)
        FAIL("dqk = %u, dv = %u: want even values in 2..%u", a->dqk, a->dv, KN_ATTENTION_MAX_DIM);
    if (a->slots < 1 || a->slots > UINT32_MAX)
        FAIL("slots = %llu, want 1..2^32 - 1", (unsigned long long)a->slots);
    if (a->max_keys > a->slots || (a->max_keys == 0 && !a->ctx_only))
        FAIL("max_keys = %u with %llu ring slots: want 1..slots (0 only with ctx_only)", a->max_keys,
             (unsigned long long)a->slots);
    if (!isfinite(a->scale))
        FAIL("scale %g is not finite", (double)a->scale);
    const uint64_t qr = (uint64_t)a->nq * a->dqk, orow = (uint64_t)a->nq * a->dv;
    const uint64_t kr = (uint64_t)a->nkv * a->dqk, vr = (uint64_t)a->nkv * a->dv;
    if (a->ldq < qr)
        FAIL("ldq = %llu < nq * dqk = %llu", (unsigned long long)a->ldq, (unsigned long long)qr);
    if (a->ldo < orow || a->ldo % 2)
        FAIL("ldo = %llu: want even and >= nq * dv = %llu", (unsigned long long)a->ldo, (unsigned long long)orow);
    if (!KN_ALIGNED(a->q, 4))
        FAIL("q is not 4-byte aligned");
    if (!KN_ALIGNED(a->out, a->out_bf16 ? 4 : 8))
        FAIL("out is not %d-byte aligned", a->out_bf16 ? 4 : 8);
    const size_t es = a->kv_f32 ? 4 : 2;
    if (!KN_ALIGNED(a->kc, 2 * es) || !KN_ALIGNED(a->vc, 2 * es))
        FAIL("kc / vc not %zu-byte aligned", 2 * es);
    if (a->ctx_only) {
        if (a->ldbk < kr || a->ldbv < vr || a->ldbk % 2 || a->ldbv % 2)
            FAIL("ldbk = %llu, ldbv = %llu: want even and >= nkv * dqk = %llu, nkv * dv = %llu",
                 (unsigned long long)a->ldbk, (unsigned long long)a->ldbv, (unsigned long long)kr, (unsigned long long)vr);
        if (!KN_ALIGNED(a->bk, 8) || !KN_ALIGNED(a->bv, 8))
            FAIL("bk / bv not 8-byte aligned");
    }
    if (!KN_ALIGNED(a->ws, 16))
        FAIL("ws is not 16-byte aligned");
    const size_t need = kn_attention_workspace_bytes(a->n, a->nq, a->dv, a->max_keys);
    if (a->ws_bytes < need)
        FAIL("workspace %zu bytes < %zu needed (n %u, nq %u, dv %u, max_keys %u)", a->ws_bytes, need, a->n, a->nq, a->dv,
             a->max_keys);

    att_params p;
    p.q = a->q, p.bk = a->bk, p.bv = a->bv, p.sinks = a->sinks, p.kc = a->kc, p.vc = a->vc, p.pos = a->pos;
    p.out = a->out;
    p.ldq = a->ldq, p.ldbk = a->ldbk, p.ldbv = a->ldbv, p.ldo = a->ldo, p.slots = a->slots;
    p.n = a->n, p.nq = a->nq, p.nkv = a->nkv, p.dqk = a->dqk, p.dv = a->dv, p.group = a->nq / a->nkv;
    p.nc = chunks(a->max_keys), p.nct = p.nc + 1, p.max_keys = a->max_keys, p.span = a->span;
    p.ctx_only = a->ctx_only != 0, p.causal = a->causal != 0;
    p.dq4 = (int)(a->dqk + 3) / 4, p.dv4 = (int)(a->dv + 3) / 4;
    p.qs = 4 * (p.dq4 | 1); /* an odd number of quads: 8 rows read by a quarter warp hit distinct banks */
    p.vs = 4 * p.dv4;
    p.scale = a->scale;
    p.ws_acc = static_cast<float *>(a->ws);
    p.ws_ml = reinterpret_cast<float2 *>(p.ws_acc + (uint64_t)a->n * a->nq * p.nct * a->dv);
    /* 16-byte loads when the pointer, the head offset and the row stride are all multiples of 16 bytes. */
    p.kvec = KN_ALIGNED(a->kc, 16) && (a->dqk * es) % 16 == 0;
    p.vvec = KN_ALIGNED(a->vc, 16) && (a->dv * es) % 16 == 0;
    p.bkvec = a->ctx_only && KN_ALIGNED(a->bk, 16) && a->ldbk % 4 == 0 && a->dqk % 4 == 0;
    p.bvvec = a->ctx_only && KN_ALIGNED(a->bv, 16) && a->ldbv % 4 == 0 && a->dv % 4 == 0;
    /* Heads per block: the largest divisor of the group that fits the block's layout. */
    p.hpb = 1;
    for (uint32_t h = 1; h <= (uint32_t)MAXH && h <= p.group; h++)
        if (p.group % h == 0 && smem_bytes(h, p.qs, p.vs) <= SMEM_CAP)
            p.hpb = h;
    const size_t smem = smem_bytes(p.hpb, p.qs, p.vs);
    if (smem > SMEM_CAP)
        FAIL("dqk = %u, dv = %u need %zu bytes of shared memory per block, more than %zu", a->dqk, a->dv, smem, SMEM_CAP);

    const dim3 g1(p.nc + (p.ctx_only ? 1u : 0u), a->nq / p.hpb, a->n), g2(a->nq, a->n);
    if (a->kv_f32)
        att_partial<float><<<g1, NT, smem, k->stream>>>(p);
    else
        att_partial<uint16_t><<<g1, NT, smem, k->stream>>>(p);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return kn_cuda_fail(e, "attention", err);
    if (a->out_bf16)
        att_combine<1><<<g2, CT, 0, k->stream>>>(p);
    else
        att_combine<0><<<g2, CT, 0, k->stream>>>(p);
    return kn_launched("attention", err);
}
