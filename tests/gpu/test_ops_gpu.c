/* The per-op GPU kernels (kernels/norm.h, rope.h, act.h, router.h, sample.h) against the CPU
 * runtime's references over edge shapes. The expected values come from: rt_rmsnorm, rt_rope,
 * rt_silu and rt_route (runtime/cpu/ops.c), rt_argmax (runtime/sample.c), lq_f32_to_bf16
 * (libquant) for every bf16 value, and loops written here in the CPU forward's order for the
 * copies (attention()'s QKV split and ring store) and the MoE plan and combine (moe()).
 *
 * Tolerances: f32 results within relative L2 1e-5 of the reference (the kernels round like the CPU
 * except for expf / cosf / sinf, which may differ in the last bits); bf16 results within 4e-3 of
 * the f32 reference and bit-equal to the RNE of the kernel's own f32 value; copies, ring stores,
 * expert ids, argmax ids and the MoE plan exact; the MoE combine within 1e-6. Batch invariance:
 * rmsnorm and router rows bit-equal alone and among 64 rows. Outputs are poisoned (0xFF bytes)
 * before every launch. Exits 77 (skipped) without a CUDA device. */
#include <cuda_runtime_api.h>

#include "../harness.h"
#include "gpu_test.h"
#include "kernels/act.h"
#include "kernels/kn.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/router.h"
#include "kernels/sample.h"
#include "libquant/libquant.h"
#include "runtime/cpu/ops.h"
#include "runtime/sample.h"

static kn_ctx g_k;
static lq_error g_err;
static uint64_t g_rng = 0x243F6A8885A308D3ull;

/* A launch that must succeed; then waits for it so a fault shows here. */
#define LAUNCH(call)                                                                              \
    do {                                                                                          \
        lq_error_clear(&g_err);                                                                   \
        lq_status st_ = (call);                                                                   \
        CHECK_MSG(st_ == LQ_OK, "%s: status %d (%s)", #call, (int)st_, g_err.msg);                \
        CK(cudaStreamSynchronize(g_k.stream));                                                    \
        CK(cudaGetLastError());                                                                   \
    } while (0)

/* A launch the argument check must refuse (LQ_ERR_INVALID_ARGUMENT, rule KN_ARG). */
#define REJECT(call)                                                                              \
    do {                                                                                          \
        lq_error_clear(&g_err);                                                                   \
        lq_status st_ = (call);                                                                   \
        CHECK_MSG(st_ == LQ_ERR_INVALID_ARGUMENT && strcmp(g_err.rule, "KN_ARG") == 0,           \
                  "%s: status %d rule '%s', expected %d (invalid argument) rule KN_ARG", #call,   \
                  (int)st_, g_err.rule, (int)LQ_ERR_INVALID_ARGUMENT);                            \
    } while (0)

static void *hmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static void *dmalloc(size_t bytes)
{
    void *p = NULL;
    CK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}

static void h2d(void *d, const void *h, size_t bytes) { CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)); }
static void d2h(void *h, const void *d, size_t bytes) { CK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)); }
static void poison(void *d, size_t bytes) { CK(cudaMemset(d, 0xFF, bytes)); }

/* scale * uniform [-1, 1) */
static void fill(float *p, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        p[i] = scale * gt_uniform(&g_rng);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Rows [n, w] of a strided buffer into a dense one. */
static void gather(const float *src, size_t n, size_t ld, size_t w, float *dst)
{
    for (size_t t = 0; t < n; t++)
        memcpy(dst + t * w, src + t * ld, w * sizeof(float));
}

/* Relative L2 over the entries both hold as numbers (equal values, infinities included, count as
 * no difference); *nan_diff gets the entries NaN in only one of them. */
static double rel_l2_nan(const float *a, const float *b, size_t n, size_t *nan_diff)
{
    double d = 0, r = 0;
    *nan_diff = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            *nan_diff += isnan(a[i]) != isnan(b[i]);
            continue;
        }
        if (a[i] == b[i] && isinf(b[i]))
            continue;
        double x = (double)a[i] - (double)b[i];
        d += x * x;
        r += (double)b[i] * (double)b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* ---------------------------------------------------------------- rmsnorm */

static void rmsnorm_case(uint32_t n, uint32_t dim, int with_add, int in_place)
{
    const double eps = 1e-6;
    const uint64_t ldh = dim + 3, lda = dim + 5, ldy = in_place ? ldh : dim + 1;
    float *h = hmalloc(n * ldh * 4), *ad = hmalloc(n * lda * 4), *w = hmalloc(dim * 4);
    float *hn = hmalloc(n * ldh * 4), *ref = hmalloc((size_t)n * dim * 4);
    fill(h, n * ldh, 2.0f);
    fill(ad, n * lda, 1.0f);
    for (uint32_t i = 0; i < dim; i++)
        w[i] = 1.0f + 0.5f * gt_uniform(&g_rng);
    memcpy(hn, h, n * ldh * 4);
    for (uint32_t t = 0; with_add && t < n; t++)
        for (uint32_t i = 0; i < dim; i++)
            hn[t * ldh + i] = h[t * ldh + i] + ad[t * lda + i];
    for (uint32_t t = 0; t < n; t++)
        rt_rmsnorm(hn + t * ldh, w, dim, eps, ref + (size_t)t * dim);

    float *dh = dmalloc(n * ldh * 4), *dad = dmalloc(n * lda * 4), *dw = dmalloc(dim * 4), *dy = dmalloc(n * ldy * 4);
    uint16_t *dy16 = dmalloc(n * ldy * 2);
    h2d(dh, h, n * ldh * 4);
    h2d(dad, ad, n * lda * 4);
    h2d(dw, w, dim * 4);
    poison(dy, n * ldy * 4);
    poison(dy16, n * ldy * 2);
    kn_rmsnorm_args a = {.h = dh, .add = with_add ? dad : NULL, .w = dw, .y_f32 = in_place ? dh : dy, .y_bf16 = dy16,
                         .n = n, .dim = dim, .ldh = ldh, .ld_add = lda, .ldy = ldy, .eps = eps};
    LAUNCH(kn_rmsnorm(&g_k, &a, &g_err));

    float *got = hmalloc(n * ldy * 4), *g32 = hmalloc((size_t)n * dim * 4), *g16f = hmalloc((size_t)n * dim * 4);
    uint16_t *got16 = hmalloc(n * ldy * 2);
    d2h(got, in_place ? dh : dy, n * ldy * 4);
    d2h(got16, dy16, n * ldy * 2);
    gather(got, n, ldy, dim, g32);
    size_t bf_bad = 0, gap_bad = 0;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t i = 0; i < dim; i++) {
            uint16_t b = got16[t * ldy + i];
            g16f[(size_t)t * dim + i] = lq_bf16_to_f32(b);
            bf_bad += b != lq_f32_to_bf16(g32[(size_t)t * dim + i]);
        }
    double r32 = gt_rel_l2(g32, ref, (size_t)n * dim), r16 = gt_rel_l2(g16f, ref, (size_t)n * dim);
    CHECK_MSG(r32 <= 1e-5, "rmsnorm n=%u dim=%u add=%d in_place=%d: f32 rel L2 %.3g vs rt_rmsnorm (limit 1e-5)", n, dim,
              with_add, in_place, r32);
    CHECK_MSG(r16 <= 4e-3, "rmsnorm n=%u dim=%u add=%d: bf16 rel L2 %.3g vs rt_rmsnorm (limit 4e-3)", n, dim, with_add,
              r16);
    CHECK_MSG(bf_bad == 0, "rmsnorm n=%u dim=%u: %zu bf16 values differ from lq_f32_to_bf16 of the f32 output", n, dim,
              bf_bad);
    if (in_place) {
        /* the gaps between rows of h keep their values */
        for (uint32_t t = 0; t < n; t++)
            for (uint64_t i = dim; i < ldh; i++)
                gap_bad += f32_bits(got[t * ldh + i]) != f32_bits(hn[t * ldh + i]);
    } else {
        float *hg = hmalloc(n * ldh * 4);
        d2h(hg, dh, n * ldh * 4);
        size_t hbad = 0;
        for (size_t i = 0; i < n * ldh; i++)
            hbad += f32_bits(hg[i]) != f32_bits(hn[i]);
        CHECK_MSG(hbad == 0, "rmsnorm n=%u dim=%u add=%d: %zu values of h differ from h + add in f32 (exact)", n, dim,
                  with_add, hbad);
        free(hg);
        for (uint32_t t = 0; t < n; t++)
            for (uint64_t i = dim; i < ldy; i++)
                gap_bad += f32_bits(got[t * ldy + i]) != 0xFFFFFFFFu || got16[t * ldy + i] != 0xFFFFu;
    }
    CHECK_MSG(gap_bad == 0, "rmsnorm n=%u dim=%u: %zu values written between rows (past dim)", n, dim, gap_bad);
    CK(cudaFree(dh));
    CK(cudaFree(dad));
    CK(cudaFree(dw));
    CK(cudaFree(dy));
    CK(cudaFree(dy16));
    free(h), free(ad), free(w), free(hn), free(ref), free(got), free(g32), free(g16f), free(got16);
}

/* Row t of a 64-row launch against the same row launched alone: bit-equal. */
static void rmsnorm_batch_invariance(uint32_t dim)
{
    const uint32_t n = 64;
    float *h = hmalloc((size_t)n * dim * 4), *w = hmalloc(dim * 4), *all = hmalloc((size_t)n * dim * 4);
    float *one = hmalloc(dim * 4);
    fill(h, (size_t)n * dim, 3.0f);
    fill(w, dim, 1.0f);
    float *dh = dmalloc((size_t)n * dim * 4), *dw = dmalloc(dim * 4), *dy = dmalloc((size_t)n * dim * 4);
    float *dy1 = dmalloc(dim * 4);
    h2d(dh, h, (size_t)n * dim * 4);
    h2d(dw, w, dim * 4);
    poison(dy, (size_t)n * dim * 4);
    kn_rmsnorm_args a = {.h = dh, .w = dw, .y_f32 = dy, .n = n, .dim = dim, .ldh = dim, .ldy = dim, .eps = 1e-5};
    LAUNCH(kn_rmsnorm(&g_k, &a, &g_err));
    d2h(all, dy, (size_t)n * dim * 4);
    uint32_t bad = 0;
    for (uint32_t t = 0; t < n; t++) {
        poison(dy1, dim * 4);
        kn_rmsnorm_args b = a;
        b.h = dh + (size_t)t * dim, b.y_f32 = dy1, b.n = 1;
        LAUNCH(kn_rmsnorm(&g_k, &b, &g_err));
        d2h(one, dy1, dim * 4);
        bad += memcmp(one, all + (size_t)t * dim, dim * 4) != 0;
    }
    CHECK_MSG(bad == 0, "rmsnorm dim=%u: %u of %u rows differ bitwise between a %u-row launch and a 1-row launch", dim,
              bad, n, n);
    CK(cudaFree(dh));
    CK(cudaFree(dw));
    CK(cudaFree(dy));
    CK(cudaFree(dy1));
    free(h), free(w), free(all), free(one);
}

static void test_rmsnorm(void)
{
    static const uint32_t dims[] = {1, 7, 1000, 4096, 6144, 16384};
    static const uint32_t ns[] = {1, 2, 8, 16, 64};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++)
            rmsnorm_case(ns[j], dims[i], (int)((i + j) % 2), 0);
    rmsnorm_case(8, 4096, 1, 1);
    rmsnorm_case(3, 1000, 0, 1);
    rmsnorm_batch_invariance(4096);
    rmsnorm_batch_invariance(1000);
}

/* ---------------------------------------------------------------- head_prep */

typedef struct hp_case {
    uint32_t n, heads, d, rd;
    int bias, norm;
    float scale;
    uint32_t pos;
    double theta;
} hp_case;

static void head_prep_case(const hp_case *c)
{
    const double eps = 1e-6;
    const uint64_t hd = (uint64_t)c->heads * c->d, ldx = hd + 5;
    float *x = hmalloc(c->n * ldx * 4), *ref = hmalloc(c->n * ldx * 4), *bias = hmalloc(hd * 4);
    float *nw = hmalloc(c->d * 4), *tmp = hmalloc(c->d * 4), *inv = hmalloc((c->rd / 2 + 1) * 4);
    fill(x, c->n * ldx, 2.0f);
    fill(bias, hd, 0.5f);
    for (uint32_t i = 0; i < c->d; i++)
        nw[i] = 1.0f + 0.5f * gt_uniform(&g_rng);
    memcpy(ref, x, c->n * ldx * 4);
    /* the CPU order: bias, per-head rt_rmsnorm, rt_rope at pos + t, the value scale */
    for (uint32_t t = 0; t < c->n; t++)
        for (uint32_t h = 0; h < c->heads; h++) {
            float *xh = ref + t * ldx + (uint64_t)h * c->d;
            for (uint32_t i = 0; c->bias && i < c->d; i++)
                xh[i] += bias[(uint64_t)h * c->d + i];
            if (c->norm) {
                rt_rmsnorm(xh, nw, c->d, eps, tmp);
                memcpy(xh, tmp, c->d * 4);
            }
            if (c->rd)
                rt_rope(xh, c->rd, c->theta, (uint64_t)c->pos + t);
            for (uint32_t i = 0; c->scale != 1.0f && i < c->d; i++)
                xh[i] *= c->scale;
        }
    kn_rope_inv_freq(c->theta, c->rd, inv);

    float *dx = dmalloc(c->n * ldx * 4), *dbias = dmalloc(hd * 4), *dnw = dmalloc(c->d * 4);
    float *dinv = dmalloc((c->rd / 2 + 1) * 4);
    uint32_t *dpos = dmalloc(4);
    h2d(dx, x, c->n * ldx * 4);
    h2d(dbias, bias, hd * 4);
    h2d(dnw, nw, c->d * 4);
    h2d(dinv, inv, (c->rd / 2 + 1) * 4);
    h2d(dpos, &c->pos, 4);
    kn_head_prep_args a = {.x = dx, .bias = c->bias ? dbias : NULL, .norm_w = c->norm ? dnw : NULL,
                           .inv_freq = c->rd ? dinv : NULL, .pos = c->rd ? dpos : NULL, .n = c->n, .heads = c->heads,
                           .d = c->d, .rd = c->rd, .ldx = ldx, .eps = eps, .scale = c->scale};
    LAUNCH(kn_head_prep(&g_k, &a, &g_err));
    float *got = hmalloc(c->n * ldx * 4), *gd = hmalloc(c->n * hd * 4), *rd = hmalloc(c->n * hd * 4);
    d2h(got, dx, c->n * ldx * 4);
    gather(got, c->n, ldx, hd, gd);
    gather(ref, c->n, ldx, hd, rd);
    double r = gt_rel_l2(gd, rd, c->n * hd);
    size_t gap_bad = 0;
    for (uint32_t t = 0; t < c->n; t++)
        for (uint64_t i = hd; i < ldx; i++)
            gap_bad += f32_bits(got[t * ldx + i]) != f32_bits(x[t * ldx + i]);
    CHECK_MSG(r <= 1e-5,
              "head_prep n=%u heads=%u d=%u rd=%u bias=%d norm=%d scale=%g pos=%u theta=%g: rel L2 %.3g vs "
              "rt_rmsnorm + rt_rope (limit 1e-5)",
              c->n, c->heads, c->d, c->rd, c->bias, c->norm, (double)c->scale, c->pos, c->theta, r);
    CHECK_MSG(gap_bad == 0, "head_prep d=%u: %zu values changed between rows (past heads * d)", c->d, gap_bad);
    CK(cudaFree(dx));
    CK(cudaFree(dbias));
    CK(cudaFree(dnw));
    CK(cudaFree(dinv));
    CK(cudaFree(dpos));
    free(x), free(ref), free(bias), free(nw), free(tmp), free(inv), free(got), free(gd), free(rd);
}

static void test_head_prep(void)
{
    static const hp_case cases[] = {
        {1, 4, 128, 64, 0, 0, 1.0f, 100000, 10000.0},          /* partial rotary, large position */
        {16, 4, 128, 64, 0, 0, 1.0f, 100000, 10000.0},
        {8, 2, 64, 64, 1, 1, 1.0f, 7, 1e6},                     /* k: bias + norm + full rotary */
        {64, 2, 192, 64, 1, 1, 1.0f, 4000000000u, 5e6},         /* positions near 2^32 */
        {2, 3, 100, 0, 1, 0, 0.707f, 0, 0.0},                   /* v: bias + value scale only */
        {16, 1, 7, 6, 0, 1, 0.5f, 123, 10000.0},                /* tiny head */
        {1, 1, 1, 0, 0, 1, 1.0f, 0, 0.0},                       /* d = 1, norm only */
        {2, 8, 256, 200, 1, 1, 0.5f, 65536, 10000.0},           /* every step at once */
        {64, 16, 128, 128, 0, 1, 1.0f, 250000, 1e7},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        head_prep_case(&cases[i]);
    /* the table is rt_rope's frequencies */
    float inv[32];
    kn_rope_inv_freq(10000.0, 64, inv);
    size_t bad = 0;
    for (uint32_t i = 0; i < 32; i++)
        bad += f32_bits(inv[i]) != f32_bits(1.0f / powf(10000.0f, (float)(2 * i) / 64.0f));
    CHECK_MSG(bad == 0 && inv[0] == 1.0f, "kn_rope_inv_freq: %zu of 32 values differ from 1 / powf(theta, 2i / rd)", bad);
}

/* ---------------------------------------------------------------- qkv_split, kv_store */

static void qkv_case(uint32_t n, uint32_t S, uint64_t qs, uint64_t ks, uint64_t vs)
{
    const uint64_t qr = S * qs, kr = S * ks, vr = S * vs, rows = qr + kr + vr, ld = rows + 7;
    float *y = hmalloc(n * ld * 4), *q = hmalloc(n * qr * 4), *k = hmalloc(n * kr * 4), *v = hmalloc(n * vr * 4);
    float *gq = hmalloc(n * qr * 4), *gk = hmalloc(n * kr * 4), *gv = hmalloc(n * vr * 4);
    fill(y, n * ld, 1.0f);
    for (uint32_t t = 0; t < n; t++) /* attention()'s de-interleave */
        for (uint64_t s = 0; s < S; s++) {
            const float *base = y + t * ld + s * (qs + ks + vs);
            memcpy(q + t * qr + s * qs, base, qs * 4);
            memcpy(k + t * kr + s * ks, base + qs, ks * 4);
            memcpy(v + t * vr + s * vs, base + qs + ks, vs * 4);
        }
    float *dy = dmalloc(n * ld * 4), *dq = dmalloc(n * qr * 4), *dk = dmalloc(n * kr * 4), *dv = dmalloc(n * vr * 4);
    h2d(dy, y, n * ld * 4);
    poison(dq, n * qr * 4);
    poison(dk, n * kr * 4);
    poison(dv, n * vr * 4);
    kn_qkv_split_args a = {.y = dy, .q = dq, .k = dk, .v = dv, .n = n, .shards = S, .qr = qr, .kr = kr, .vr = vr, .ld = ld};
    LAUNCH(kn_qkv_split(&g_k, &a, &g_err));
    d2h(gq, dq, n * qr * 4);
    d2h(gk, dk, n * kr * 4);
    d2h(gv, dv, n * vr * 4);
    int ok = !memcmp(gq, q, n * qr * 4) && !memcmp(gk, k, n * kr * 4) && !memcmp(gv, v, n * vr * 4);
    CHECK_MSG(ok, "qkv_split n=%u S=%u q/k/v per shard %llu/%llu/%llu: output differs from attention()'s copy (exact)", n,
              S, (unsigned long long)qs, (unsigned long long)ks, (unsigned long long)vs);
    CK(cudaFree(dy));
    CK(cudaFree(dq));
    CK(cudaFree(dk));
    CK(cudaFree(dv));
    free(y), free(q), free(k), free(v), free(gq), free(gk), free(gv);
}

static void kv_case(uint32_t n, uint64_t slots, uint64_t kr, uint64_t vr, uint32_t pos, int f32, int with_nan)
{
    const uint64_t ldk = kr + 3, ldv = vr + 1, es = f32 ? 4 : 2;
    float *k = hmalloc(n * ldk * 4), *v = hmalloc(n * ldv * 4);
    uint8_t *ek = hmalloc(slots * kr * es), *ev = hmalloc(slots * vr * es), *gk = hmalloc(slots * kr * es);
    uint8_t *gv = hmalloc(slots * vr * es);
    fill(k, n * ldk, 4.0f);
    fill(v, n * ldv, 4.0f);
    if (with_nan)
        k[0] = -NAN, v[ldv * (n - 1)] = NAN;
    memset(ek, 0xFF, slots * kr * es); /* the ring as poisoned, then rt_kv_key's slots written */
    memset(ev, 0xFF, slots * vr * es);
    for (uint32_t t = 0; t < n; t++) {
        uint64_t slot = ((uint64_t)pos + t) % slots;
        for (uint64_t i = 0; i < kr + vr; i++) {
            float val = i < kr ? k[t * ldk + i] : v[t * ldv + (i - kr)];
            uint8_t *dst = i < kr ? ek + (slot * kr + i) * es : ev + (slot * vr + (i - kr)) * es;
            if (f32) {
                memcpy(dst, &val, 4);
            } else {
                uint16_t b = lq_f32_to_bf16(val);
                memcpy(dst, &b, 2);
            }
        }
    }
    float *dk = dmalloc(n * ldk * 4), *dv = dmalloc(n * ldv * 4);
    void *dkc = dmalloc(slots * kr * es), *dvc = dmalloc(slots * vr * es);
    uint32_t *dpos = dmalloc(4);
    h2d(dk, k, n * ldk * 4);
    h2d(dv, v, n * ldv * 4);
    h2d(dpos, &pos, 4);
    poison(dkc, slots * kr * es);
    poison(dvc, slots * vr * es);
    kn_kv_store_args a = {.k = dk, .v = dv, .kc = dkc, .vc = dvc, .pos = dpos, .n = n, .slots = slots, .kr = kr,
                          .vr = vr, .ldk = ldk, .ldv = ldv, .kv_f32 = f32};
    LAUNCH(kn_kv_store(&g_k, &a, &g_err));
    d2h(gk, dkc, slots * kr * es);
    d2h(gv, dvc, slots * vr * es);
    int ok = !memcmp(gk, ek, slots * kr * es) && !memcmp(gv, ev, slots * vr * es);
    CHECK_MSG(ok,
              "kv_store n=%u slots=%llu kr=%llu vr=%llu pos=%u %s: ring differs from the expected slots (f32 exact, "
              "bf16 = lq_f32_to_bf16, other slots untouched)",
              n, (unsigned long long)slots, (unsigned long long)kr, (unsigned long long)vr, pos, f32 ? "f32" : "bf16");
    CK(cudaFree(dk));
    CK(cudaFree(dv));
    CK(cudaFree(dkc));
    CK(cudaFree(dvc));
    CK(cudaFree(dpos));
    free(k), free(v), free(ek), free(ev), free(gk), free(gv);
}

static void test_copies(void)
{
    qkv_case(1, 1, 64, 16, 16);
    qkv_case(16, 4, 24, 8, 16);
    qkv_case(3, 2, 7, 1, 3);
    qkv_case(64, 8, 64, 16, 16);
    for (int f32 = 0; f32 <= 1; f32++) {
        kv_case(7, 10, 24, 40, 8, f32, 0);            /* slots 8, 9, 0, 1, ..., 4 */
        kv_case(10, 10, 24, 40, 4294967290u, f32, 1); /* the whole ring; positions past 2^32 */
        kv_case(1, 1, 3, 5, 0, f32, 0);
        kv_case(16, 37, 128, 128, 30, f32, 1);
    }
}

/* ---------------------------------------------------------------- swiglu_act */

static void swiglu_case(uint32_t n, uint64_t I)
{
    const uint64_t lda = I + 1, ldb = I + 2, ldo = I + 3;
    float *a = hmalloc(n * lda * 4), *b = hmalloc(n * ldb * 4), *ref = hmalloc(n * I * 4);
    float *got = hmalloc(n * ldo * 4), *g32 = hmalloc(n * I * 4), *g16f = hmalloc(n * I * 4);
    uint16_t *got16 = hmalloc(n * ldo * 2);
    fill(a, n * lda, 8.0f);
    fill(b, n * ldb, 2.0f);
    if (I >= 3) /* exp overflow and underflow inside silu */
        a[0] = -100.0f, a[1] = 100.0f, a[2] = -87.5f;
    for (uint32_t t = 0; t < n; t++)
        for (uint64_t i = 0; i < I; i++)
            ref[t * I + i] = rt_silu(a[t * lda + i]) * b[t * ldb + i];
    float *da = dmalloc(n * lda * 4), *db = dmalloc(n * ldb * 4);
    void *dout = dmalloc(n * ldo * 4);
    h2d(da, a, n * lda * 4);
    h2d(db, b, n * ldb * 4);
    poison(dout, n * ldo * 4);
    kn_swiglu_act_args args = {.a = da, .b = db, .out = dout, .n = n, .I = I, .lda = lda, .ldb = ldb, .ldo = ldo};
    LAUNCH(kn_swiglu_act(&g_k, &args, &g_err));
    d2h(got, dout, n * ldo * 4);
    poison(dout, n * ldo * 4);
    args.out_bf16 = 1;
    LAUNCH(kn_swiglu_act(&g_k, &args, &g_err));
    d2h(got16, dout, n * ldo * 2);
    gather(got, n, ldo, I, g32);
    size_t bf_bad = 0;
    for (uint32_t t = 0; t < n; t++)
        for (uint64_t i = 0; i < I; i++) {
            g16f[t * I + i] = lq_bf16_to_f32(got16[t * ldo + i]);
            bf_bad += got16[t * ldo + i] != lq_f32_to_bf16(g32[t * I + i]);
        }
    double r32 = gt_rel_l2(g32, ref, n * I), r16 = gt_rel_l2(g16f, ref, n * I);
    CHECK_MSG(r32 <= 1e-5, "swiglu_act n=%u I=%llu: f32 rel L2 %.3g vs rt_silu(a) * b (limit 1e-5)", n,
              (unsigned long long)I, r32);
    CHECK_MSG(r16 <= 4e-3, "swiglu_act n=%u I=%llu: bf16 rel L2 %.3g vs rt_silu(a) * b (limit 4e-3)", n,
              (unsigned long long)I, r16);
    CHECK_MSG(bf_bad == 0, "swiglu_act n=%u I=%llu: %zu bf16 values differ from lq_f32_to_bf16 of the f32 output", n,
              (unsigned long long)I, bf_bad);
    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFree(dout));
    free(a), free(b), free(ref), free(got), free(g32), free(g16f), free(got16);
}

static void test_swiglu(void)
{
    static const uint64_t Is[] = {1, 7, 1000, 6144};
    static const uint32_t ns[] = {1, 8, 64};
    for (size_t i = 0; i < sizeof(Is) / sizeof(Is[0]); i++)
        for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++)
            swiglu_case(ns[j], Is[i]);
}

/* ---------------------------------------------------------------- router */

typedef struct router_cfg {
    uint32_t E, K, G, topk;
    uint64_t H;
    int norm;
    double scaling;
} router_cfg;

typedef struct router_out {
    int32_t *sel;
    float *w, *sc;
} router_out;

static void router_out_alloc(router_out *o, uint32_t n, const router_cfg *c)
{
    o->sel = hmalloc((size_t)n * c->K * 4);
    o->w = hmalloc((size_t)n * c->K * 4);
    o->sc = hmalloc((size_t)n * c->E * 4);
}

static void router_out_free(router_out *o) { free(o->sel), free(o->w), free(o->sc); }

/* rt_route row by row; bias NULL means zeros. */
static void router_cpu(const router_cfg *c, uint32_t n, const float *x, uint64_t ldx, const float *w, const float *bias,
                       router_out *o)
{
    float *zeros = calloc(c->E, 4), *gscore = hmalloc((c->G + 1) * 4);
    uint8_t *taken = hmalloc(c->E);
    rt_router r = {.w = w, .bias = bias ? bias : zeros, .E = c->E, .K = c->K, .n_group = c->G,
                   .topk_group = c->topk, .H = c->H, .norm = c->norm, .scaling = c->scaling};
    for (uint32_t t = 0; t < n; t++)
        rt_route(&r, x + t * ldx, o->sc + (size_t)t * c->E, taken, gscore, o->sel + (size_t)t * c->K,
                 o->w + (size_t)t * c->K);
    free(zeros), free(gscore), free(taken);
}

/* kn_router on device copies; x_off floats of offset before x (1: the unaligned path). */
static void router_gpu(const router_cfg *c, uint32_t n, const float *x, uint64_t ldx, const float *w, const float *bias,
                       int x_off, router_out *o)
{
    float *dx = dmalloc(((size_t)n * ldx + (size_t)x_off) * 4), *dw = dmalloc((size_t)c->E * c->H * 4);
    float *db = dmalloc((size_t)c->E * 4), *dwsel = dmalloc((size_t)n * c->K * 4), *dsc = dmalloc((size_t)n * c->E * 4);
    int32_t *dsel = dmalloc((size_t)n * c->K * 4);
    h2d(dx + x_off, x, (size_t)n * ldx * 4);
    h2d(dw, w, (size_t)c->E * c->H * 4);
    if (bias)
        h2d(db, bias, (size_t)c->E * 4);
    poison(dsel, (size_t)n * c->K * 4);
    poison(dwsel, (size_t)n * c->K * 4);
    poison(dsc, (size_t)n * c->E * 4);
    kn_router_args a = {.x = dx + x_off, .w = dw, .bias = bias ? db : NULL, .sel = dsel, .wsel = dwsel, .scores = dsc,
                        .n = n, .E = c->E, .K = c->K, .n_group = c->G, .topk_group = c->topk, .H = c->H, .ldx = ldx,
                        .norm = c->norm, .scaling = c->scaling};
    LAUNCH(kn_router(&g_k, &a, &g_err));
    d2h(o->sel, dsel, (size_t)n * c->K * 4);
    d2h(o->w, dwsel, (size_t)n * c->K * 4);
    d2h(o->sc, dsc, (size_t)n * c->E * 4);
    CK(cudaFree(dx));
    CK(cudaFree(dw));
    CK(cudaFree(db));
    CK(cudaFree(dwsel));
    CK(cudaFree(dsc));
    CK(cudaFree(dsel));
}

static void router_compare(const char *what, const router_cfg *c, uint32_t n, const router_out *got,
                           const router_out *ref)
{
    uint32_t bad_rows = 0, first = 0;
    for (uint32_t t = 0; t < n; t++)
        if (memcmp(got->sel + (size_t)t * c->K, ref->sel + (size_t)t * c->K, c->K * 4) != 0 && !bad_rows++)
            first = t;
    size_t nan_s = 0, nan_w = 0;
    double rs = rel_l2_nan(got->sc, ref->sc, (size_t)n * c->E, &nan_s);
    double rw = rel_l2_nan(got->w, ref->w, (size_t)n * c->K, &nan_w);
    CHECK_MSG(bad_rows == 0,
              "router %s (E=%u K=%u groups %u/%u H=%llu): %u of %u rows pick other experts than rt_route (first row "
              "%u: expert %d vs %d)",
              what, c->E, c->K, c->topk, c->G, (unsigned long long)c->H, bad_rows, n, first,
              got->sel[(size_t)first * c->K], ref->sel[(size_t)first * c->K]);
    CHECK_MSG(rs <= 1e-5 && nan_s == 0,
              "router %s (E=%u K=%u): scores rel L2 %.3g vs rt_route (limit 1e-5), %zu NaN where rt_route has none or "
              "the reverse",
              what, c->E, c->K, rs, nan_s);
    CHECK_MSG(rw <= 1e-5 && nan_w == 0,
              "router %s (E=%u K=%u): weights rel L2 %.3g vs rt_route (limit 1e-5), %zu NaN mismatches", what, c->E,
              c->K, rw, nan_w);
}

/* Random rows: x in [-1, 1), w scaled by 2 / sqrt(H) so the logits spread the sigmoid over
 * about (0.2, 0.8) instead of saturating it. */
static void router_random(const char *what, const router_cfg *c, uint32_t n, uint64_t ldx, int with_bias)
{
    float *x = hmalloc((size_t)n * ldx * 4), *w = hmalloc((size_t)c->E * c->H * 4), *b = hmalloc((size_t)c->E * 4);
    fill(x, (size_t)n * ldx, 1.0f);
    fill(w, (size_t)c->E * c->H, 2.0f / sqrtf((float)c->H));
    fill(b, c->E, 0.05f);
    router_out ref, got;
    router_out_alloc(&ref, n, c);
    router_out_alloc(&got, n, c);
    router_cpu(c, n, x, ldx, w, with_bias ? b : NULL, &ref);
    router_gpu(c, n, x, ldx, w, with_bias ? b : NULL, 0, &got);
    router_compare(what, c, n, &got, &ref);
    router_out_free(&ref);
    router_out_free(&got);
    free(x), free(w), free(b);
}

/* Ties: identical weight rows give identical scores; the lower id (and the lower group) wins. */
static void router_ties(void)
{
    const uint32_t E = 16, n = 4;
    const uint64_t H = 64;
    float *x = hmalloc(n * H * 4), *w = hmalloc(E * H * 4), *b = hmalloc(E * 4);
    fill(x, n * H, 1.0f);
    fill(w, E * H, 0.25f);
    memcpy(w + 2 * H, w + 1 * H, H * 4);     /* experts 1 and 2 tie */
    memcpy(w + 8 * H, w + 0 * H, 4 * H * 4); /* group 2 (experts 8..11) copies group 0 */
    memcpy(w + 13 * H, w + 1 * H, H * 4);    /* expert 13 ties with 1 and 2 */
    fill(b, E, 0.05f);
    b[2] = b[1];
    memcpy(b + 8, b + 0, 4 * 4);
    b[13] = b[1];
    for (uint32_t e = 0; e < E; e++) /* groups 0 and 2 ahead of 1 and 3 */
        if (e / 4 == 0 || e / 4 == 2)
            b[e] += 0.5f;
    static const router_cfg cfgs[] = {
        {16, 4, 4, 1, 64, 1, 1.0}, /* one group kept: group 0 wins the tie with group 2 */
        {16, 6, 4, 2, 64, 1, 2.5}, /* groups 0 and 2: equal choices, lower id first */
        {16, 8, 0, 0, 64, 0, 1.0}, /* no groups */
        {16, 16, 4, 4, 64, 1, 1.0},
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        router_out ref, got;
        router_out_alloc(&ref, n, &cfgs[i]);
        router_out_alloc(&got, n, &cfgs[i]);
        router_cpu(&cfgs[i], n, x, H, w, b, &ref);
        router_gpu(&cfgs[i], n, x, H, w, b, 0, &got);
        router_compare("ties", &cfgs[i], n, &got, &ref);
        router_out_free(&ref);
        router_out_free(&got);
    }
    free(x), free(w), free(b);
}

/* NaN and infinite inputs: a NaN in x (every score NaN), a NaN weight row, a NaN bias, and a
 * group whose two best choices are +inf and -inf (its group score is NaN). */
static void router_nan(void)
{
    const uint32_t E = 16, n = 4;
    const uint64_t H = 64;
    float *x = hmalloc(n * H * 4), *w = hmalloc(E * H * 4), *b = hmalloc(E * 4);
    fill(x, n * H, 1.0f);
    fill(w, E * H, 0.25f);
    fill(b, E, 0.05f);
    x[3] = NAN;          /* row 0: every score NaN */
    w[6 * H + 10] = NAN; /* expert 6: NaN score on every row */
    b[13] = NAN;         /* expert 13: NaN choice */
    b[4] = INFINITY;     /* group 1: +inf, then -inf, -inf, NaN: group score NaN */
    b[5] = -INFINITY, b[7] = -INFINITY;
    static const router_cfg cfgs[] = {
        {16, 4, 4, 2, 64, 1, 1.0},
        {16, 8, 4, 4, 64, 1, 2.5},
        {16, 8, 0, 0, 64, 1, 1.0},
        {16, 6, 4, 1, 64, 0, 1.0}, /* fewer than K experts in the kept group: the fallback ids */
        {16, 16, 4, 3, 64, 1, 1.0},
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        router_out ref, got;
        router_out_alloc(&ref, n, &cfgs[i]);
        router_out_alloc(&got, n, &cfgs[i]);
        router_cpu(&cfgs[i], n, x, H, w, b, &ref);
        router_gpu(&cfgs[i], n, x, H, w, b, 0, &got);
        router_compare("NaN/inf", &cfgs[i], n, &got, &ref);
        router_out_free(&ref);
        router_out_free(&got);
    }
    free(x), free(w), free(b);
}

/* Row t among 64 against row t alone, and the aligned (16-byte loads) against the unaligned
 * path: all bit-equal. */
static void router_batch_invariance(void)
{
    const router_cfg c = {256, 8, 8, 4, 4096, 1, 2.5};
    const uint32_t n = 64;
    float *x = hmalloc((size_t)n * c.H * 4), *w = hmalloc((size_t)c.E * c.H * 4), *b = hmalloc(c.E * 4);
    fill(x, (size_t)n * c.H, 1.0f);
    fill(w, (size_t)c.E * c.H, 2.0f / sqrtf((float)c.H));
    fill(b, c.E, 0.05f);
    router_out all, one, un;
    router_out_alloc(&all, n, &c);
    router_out_alloc(&one, 1, &c);
    router_out_alloc(&un, n, &c);
    router_gpu(&c, n, x, c.H, w, b, 0, &all);
    router_gpu(&c, n, x, c.H, w, b, 1, &un);
    uint32_t bad = 0, bad_un = 0;
    for (uint32_t t = 0; t < n; t++) {
        router_gpu(&c, 1, x + (size_t)t * c.H, c.H, w, b, 0, &one);
        bad += memcmp(one.sel, all.sel + (size_t)t * c.K, c.K * 4) || memcmp(one.w, all.w + (size_t)t * c.K, c.K * 4) ||
               memcmp(one.sc, all.sc + (size_t)t * c.E, c.E * 4);
        bad_un += memcmp(un.sel + (size_t)t * c.K, all.sel + (size_t)t * c.K, c.K * 4) ||
                  memcmp(un.w + (size_t)t * c.K, all.w + (size_t)t * c.K, c.K * 4) ||
                  memcmp(un.sc + (size_t)t * c.E, all.sc + (size_t)t * c.E, c.E * 4);
    }
    CHECK_MSG(bad == 0, "router: %u of %u rows differ bitwise between a %u-row launch and a 1-row launch", bad, n, n);
    CHECK_MSG(bad_un == 0, "router: %u of %u rows differ bitwise between the 16-byte and the scalar load paths", bad_un, n);
    router_out_free(&all);
    router_out_free(&one);
    router_out_free(&un);
    free(x), free(w), free(b);
}

static void test_router(void)
{
    const router_cfg e1 = {1, 1, 0, 0, 7, 1, 1.0}, e8 = {8, 2, 0, 0, 1000, 1, 2.5}, e8h1 = {8, 2, 0, 0, 1, 0, 1.0};
    const router_cfg big = {256, 8, 8, 4, 4096, 1, 2.5}, big6k = {256, 8, 0, 0, 6144, 1, 1.0};
    const router_cfg odd = {256, 8, 8, 4, 1001, 0, 1.5}, wide = {1024, 64, 16, 8, 64, 1, 1.0};
    router_random("E=1", &e1, 1, 7, 1);
    router_random("E=1", &e1, 2, 9, 0);
    router_random("E=8", &e8, 8, 1000, 1);
    router_random("E=8 H=1", &e8h1, 16, 1, 1);
    router_random("E=256 groups", &big, 1, 4096, 1);
    router_random("E=256 groups", &big, 64, 4096, 1);
    router_random("E=256 no bias", &big, 16, 4100, 0);
    router_random("E=256 H=6144", &big6k, 8, 6144, 1);
    router_random("E=256 H=1001", &odd, 16, 1003, 1);
    router_random("E=1024 K=64", &wide, 2, 64, 1);
    router_ties();
    router_nan();
    router_batch_invariance();
}

/* ---------------------------------------------------------------- moe_plan, moe_combine */

/* sel: K distinct random experts per token; dup: token 0's second pick repeats its first;
 * invalid: the last pick is E (outside the experts). */
static void moe_case(uint32_t n, uint32_t K, uint32_t E, uint32_t extra_slots, int dup, int invalid, uint64_t H)
{
    const uint32_t nk = n * K, slots = (nk < E ? nk : E) + extra_slots;
    int32_t *sel = hmalloc(nk * 4), *perm = hmalloc(E * 4);
    for (uint32_t t = 0; t < n; t++) {
        for (uint32_t e = 0; e < E; e++)
            perm[e] = (int32_t)e;
        for (uint32_t k = 0; k < K; k++) { /* partial Fisher-Yates */
            uint32_t j = k + (uint32_t)(gt_next(&g_rng) % (E - k));
            int32_t s = perm[k];
            perm[k] = perm[j], perm[j] = s;
            sel[t * K + k] = perm[k];
        }
    }
    if (dup && K >= 2)
        sel[1] = sel[0];
    if (invalid)
        sel[nk - 1] = (int32_t)E;
    /* expected plan: experts ascending, picks ascending within each */
    uint32_t eng = 0, valid = 0, *egoff = hmalloc(slots * 4), *egcnt = hmalloc(slots * 4), *epof = hmalloc(nk * 4);
    int32_t *egexp = hmalloc(slots * 4), *eptok = hmalloc(nk * 4);
    for (uint32_t i = 0; i < nk; i++)
        epof[i] = 0xFFFFFFFFu;
    for (uint32_t e = 0; e < E; e++) {
        uint32_t cnt = 0;
        for (uint32_t i = 0; i < nk; i++)
            if (sel[i] == (int32_t)e) {
                epof[i] = valid + cnt;
                eptok[valid + cnt] = (int32_t)(i / K);
                cnt++;
            }
        if (cnt) {
            egexp[eng] = (int32_t)e, egoff[eng] = valid, egcnt[eng] = cnt;
            eng++;
            valid += cnt;
        }
    }
    for (uint32_t g = eng; g < slots; g++)
        egexp[g] = -1, egoff[g] = valid, egcnt[g] = 0;

    int32_t *dsel = dmalloc(nk * 4), *dgexp = dmalloc(slots * 4), *dptok = dmalloc(nk * 4);
    uint32_t *dng = dmalloc(4), *dgoff = dmalloc(slots * 4), *dgcnt = dmalloc(slots * 4), *dpof = dmalloc(nk * 4);
    h2d(dsel, sel, nk * 4);
    poison(dng, 4);
    poison(dgexp, slots * 4);
    poison(dgoff, slots * 4);
    poison(dgcnt, slots * 4);
    poison(dptok, nk * 4);
    poison(dpof, nk * 4);
    kn_moe_plan_args pa = {.sel = dsel, .ng = dng, .gexp = dgexp, .goff = dgoff, .gcnt = dgcnt, .pair_tok = dptok,
                           .pair_of = dpof, .n = n, .K = K, .E = E, .slots = slots};
    LAUNCH(kn_moe_plan(&g_k, &pa, &g_err));
    uint32_t ng = 0, *goff = hmalloc(slots * 4), *gcnt = hmalloc(slots * 4), *pof = hmalloc(nk * 4);
    int32_t *gexp = hmalloc(slots * 4), *ptok = hmalloc(nk * 4);
    d2h(&ng, dng, 4);
    d2h(gexp, dgexp, slots * 4);
    d2h(goff, dgoff, slots * 4);
    d2h(gcnt, dgcnt, slots * 4);
    d2h(ptok, dptok, nk * 4);
    d2h(pof, dpof, nk * 4);
    int ok = ng == eng && !memcmp(gexp, egexp, slots * 4) && !memcmp(goff, egoff, slots * 4) &&
             !memcmp(gcnt, egcnt, slots * 4) && !memcmp(ptok, eptok, valid * 4) && !memcmp(pof, epof, nk * 4);
    CHECK_MSG(ok,
              "moe_plan n=%u K=%u E=%u slots=%u dup=%d invalid=%d: plan differs from the expert-ascending, "
              "pick-ascending order (groups %u vs %u expected)",
              n, K, E, slots, dup, invalid, ng, eng);

    /* combine: the expert outputs in pair order, summed per token in ascending expert id */
    const uint64_t ldye = H + 1, ldy = H + 2;
    float *ye = hmalloc(nk * ldye * 4), *wsel = hmalloc(nk * 4), *ref = hmalloc(n * H * 4);
    float *got = hmalloc(n * ldy * 4), *gd = hmalloc(n * H * 4);
    fill(ye, nk * ldye, 3.0f);
    fill(wsel, nk, 1.0f);
    uint32_t *order = hmalloc(K * 4);
    for (uint32_t t = 0; t < n; t++) {
        uint32_t m = 0; /* moe(): expert by expert, then the token's picks of that expert in k order */
        for (uint32_t e = 0; e < E; e++)
            for (uint32_t k = 0; k < K; k++)
                if (sel[t * K + k] == (int32_t)e)
                    order[m++] = t * K + k;
        for (uint64_t h = 0; h < H; h++) {
            float acc = 0; /* out starts at 0 and takes out += w * ye */
            for (uint32_t j = 0; j < m; j++)
                acc += wsel[order[j]] * ye[(uint64_t)epof[order[j]] * ldye + h];
            ref[t * H + h] = acc;
        }
    }
    free(order);
    float *dye = dmalloc(nk * ldye * 4), *dwsel = dmalloc(nk * 4), *dy = dmalloc(n * ldy * 4);
    h2d(dye, ye, nk * ldye * 4);
    h2d(dwsel, wsel, nk * 4);
    poison(dy, n * ldy * 4);
    kn_moe_combine_args ca = {.ye = dye, .sel = dsel, .wsel = dwsel, .pair_of = dpof, .y = dy, .n = n, .K = K, .H = H,
                              .ldye = ldye, .ldy = ldy};
    LAUNCH(kn_moe_combine(&g_k, &ca, &g_err));
    d2h(got, dy, n * ldy * 4);
    gather(got, n, ldy, H, gd);
    double r = gt_rel_l2(gd, ref, n * H);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)n * H; i++)
        diff += f32_bits(gd[i]) != f32_bits(ref[i]);
    CHECK_MSG(r <= 1e-6, "moe_combine n=%u K=%u E=%u H=%llu: rel L2 %.3g vs moe()'s ascending-expert sum (limit 1e-6)",
              n, K, E, (unsigned long long)H, r);
    /* the kernel adds in the same order with the same roundings (no FMA), so any difference means
     * another summation order */
    CHECK_MSG(diff == 0, "moe_combine n=%u K=%u E=%u H=%llu: %zu of %zu values not bit-equal to moe()'s order", n, K, E,
              (unsigned long long)H, diff, (size_t)n * H);
    CK(cudaFree(dsel));
    CK(cudaFree(dgexp));
    CK(cudaFree(dptok));
    CK(cudaFree(dng));
    CK(cudaFree(dgoff));
    CK(cudaFree(dgcnt));
    CK(cudaFree(dpof));
    CK(cudaFree(dye));
    CK(cudaFree(dwsel));
    CK(cudaFree(dy));
    free(sel), free(perm), free(egoff), free(egcnt), free(epof), free(egexp), free(eptok), free(goff), free(gcnt);
    free(pof), free(gexp), free(ptok), free(ye), free(wsel), free(ref), free(got), free(gd);
}

static void test_moe(void)
{
    moe_case(1, 1, 1, 0, 0, 0, 7);
    moe_case(8, 2, 8, 0, 0, 0, 1000);
    moe_case(64, 8, 256, 0, 0, 0, 4096);
    moe_case(64, 8, 16, 3, 0, 0, 1000);
    moe_case(4, 3, 10, 2, 1, 1, 33);
    moe_case(64, 64, 1024, 0, 0, 0, 64);
    moe_case(2, 64, 64, 0, 0, 0, 257);
    moe_case(16, 8, 256, 5, 0, 0, 1);
}

/* ---------------------------------------------------------------- argmax, accept_greedy */

/* A special row, by pattern: 0 plain; 1 ties at the maximum; 2 NaN sprinkled; 3 all NaN; 4 two
 * +inf; 5 NaN then only -inf; 6 -0 and +0 as the maximum. */
static void argmax_row(float *row, uint32_t V, uint32_t pattern)
{
    uint32_t p1 = (uint32_t)(gt_next(&g_rng) % V), p2 = p1 + (uint32_t)(gt_next(&g_rng) % (V - p1));
    switch (pattern) {
    case 0:
        break;
    case 1:
        row[p2] = 20.0f, row[p1] = 20.0f, row[V - 1] = 20.0f;
        break;
    case 2:
        for (uint32_t i = 0; i < V; i += 3)
            row[i] = NAN;
        row[p2] = NAN;
        break;
    case 3:
        for (uint32_t i = 0; i < V; i++)
            row[i] = NAN;
        break;
    case 4:
        row[p2] = INFINITY, row[p1] = INFINITY;
        break;
    case 5:
        for (uint32_t i = 0; i < V; i++)
            row[i] = i < p1 ? NAN : -INFINITY;
        break;
    case 6:
        for (uint32_t i = 0; i < V; i++)
            row[i] = -1.0f - fabsf(row[i]);
        row[p2] = 0.0f, row[p1] = -0.0f;
        break;
    }
}

/* specials: 0 plain rows, 1 row r takes pattern r % 7, 2 every row two +inf (no NaN). */
static void argmax_case(uint32_t rows, uint32_t V, uint64_t ld, int off, int specials, int flag_in)
{
    const size_t total = (size_t)rows * ld + (size_t)off;
    float *l = hmalloc(total * 4);
    fill(l, total, 10.0f);
    int want_flag = flag_in;
    int32_t *ref = hmalloc(rows * 4), *got = hmalloc(rows * 4);
    for (uint32_t r = 0; r < rows; r++) {
        float *row = l + off + (size_t)r * ld;
        if (specials)
            argmax_row(row, V, specials == 1 ? r % 7 : 4);
        ref[r] = rt_argmax(row, V);
        for (uint32_t i = 0; i < V; i++)
            want_flag |= !isfinite(row[i]);
    }
    float *dl = dmalloc(total * 4);
    int32_t *dids = dmalloc(rows * 4);
    int *dflag = dmalloc(sizeof(int)), flag = 0;
    h2d(dl, l, total * 4);
    h2d(dflag, &flag_in, sizeof(int));
    poison(dids, rows * 4);
    kn_argmax_args a = {.logits = dl + off, .ids = dids, .nonfinite = dflag, .rows = rows, .V = V, .ld = ld};
    LAUNCH(kn_argmax(&g_k, &a, &g_err));
    d2h(got, dids, rows * 4);
    d2h(&flag, dflag, sizeof(int));
    uint32_t bad = 0, first = 0;
    for (uint32_t r = 0; r < rows; r++)
        if (got[r] != ref[r] && !bad++)
            first = r;
    CHECK_MSG(bad == 0, "argmax rows=%u V=%u ld=%llu off=%d: %u rows differ from rt_argmax (first row %u: %d vs %d)", rows,
              V, (unsigned long long)ld, off, bad, first, got[first], ref[first]);
    CHECK_MSG(flag == want_flag, "argmax rows=%u V=%u: nonfinite flag %d, expected %d (set in %d, values scanned on the host)",
              rows, V, flag, want_flag, flag_in);
    poison(dids, rows * 4);
    a.nonfinite = NULL; /* the flag is optional */
    LAUNCH(kn_argmax(&g_k, &a, &g_err));
    d2h(got, dids, rows * 4);
    CHECK_MSG(!memcmp(got, ref, rows * 4), "argmax rows=%u V=%u without the flag: ids differ from rt_argmax", rows, V);
    CK(cudaFree(dl));
    CK(cudaFree(dids));
    CK(cudaFree(dflag));
    free(l), free(ref), free(got);
}

static void accept_case(const int32_t *ids, const int32_t *drafts, uint32_t k, int32_t want_a)
{
    int32_t *dids = dmalloc((k + 1) * 4), *ddr = dmalloc(k * 4 + 4), *dres = dmalloc(8), res[2];
    h2d(dids, ids, (k + 1) * 4);
    if (k)
        h2d(ddr, drafts, k * 4);
    poison(dres, 8);
    kn_accept_greedy_args a = {.ids = dids, .drafts = k ? ddr : NULL, .res = dres, .k = k};
    LAUNCH(kn_accept_greedy(&g_k, &a, &g_err));
    d2h(res, dres, 8);
    CHECK_MSG(res[0] == want_a && res[1] == ids[want_a],
              "accept_greedy k=%u: (%d, %d), expected (%d, %d) (hand-made: the first draft != its row's argmax)", k,
              res[0], res[1], want_a, ids[want_a]);
    CK(cudaFree(dids));
    CK(cudaFree(ddr));
    CK(cudaFree(dres));
}

static void test_sample(void)
{
    argmax_case(1, 1, 1, 0, 0, 0);
    argmax_case(9, 1, 1, 0, 1, 0);
    argmax_case(7, 7, 7, 0, 1, 0);
    argmax_case(9, 1000, 1001, 0, 1, 0);      /* scalar path (ld % 4 != 0) */
    argmax_case(9, 1000, 1000, 0, 1, 0);      /* 16-byte path */
    argmax_case(3, 151936, 151936, 0, 1, 0);  /* a vocabulary */
    argmax_case(64, 4097, 4100, 1, 1, 0);     /* unaligned base: scalar path */
    argmax_case(14, 152067, 152068, 0, 1, 0);
    argmax_case(2, 152064, 152064, 0, 0, 0);  /* finite rows: the flag stays 0 */
    argmax_case(3, 1000, 1000, 0, 2, 0);      /* infinities without NaN set it */
    argmax_case(4, 5000, 5000, 0, 0, 1);      /* ... and a set flag is never cleared */
    argmax_case(64, 32000, 32000, 0, 0, 0);

    static const int32_t ids0[] = {5};
    accept_case(ids0, NULL, 0, 0);
    static const int32_t ids1[] = {3, 1, 4, 1}, dr_all[] = {3, 1, 4};
    accept_case(ids1, dr_all, 3, 3);
    static const int32_t dr_first[] = {2, 1, 4};
    accept_case(ids1, dr_first, 3, 0);
    static const int32_t dr_third[] = {3, 1, 5};
    accept_case(ids1, dr_third, 3, 2);
    static const int32_t ids2[] = {7, 7}, dr2[] = {7};
    accept_case(ids2, dr2, 1, 1);
}

/* ---------------------------------------------------------------- argument checks */

static void test_validation(void)
{
    float *d = dmalloc(1 << 20); /* a device buffer for the pointers the checks look at */
    uint32_t *du = (uint32_t *)d;
    int32_t *di = (int32_t *)d;
    uint16_t *d16 = (uint16_t *)d;

    kn_rmsnorm_args rn = {.h = d, .w = d, .y_f32 = d + 1024, .n = 1, .dim = 16, .ldh = 16, .ldy = 16, .eps = 1e-6};
    kn_rmsnorm_args rb = rn;
    rb.w = NULL;
    REJECT(kn_rmsnorm(&g_k, &rb, &g_err));
    rb = rn, rb.y_f32 = NULL, rb.y_bf16 = NULL;
    REJECT(kn_rmsnorm(&g_k, &rb, &g_err));
    rb = rn, rb.ldy = 15;
    REJECT(kn_rmsnorm(&g_k, &rb, &g_err));
    rb = rn, rb.dim = 0;
    REJECT(kn_rmsnorm(&g_k, &rb, &g_err));
    REJECT(kn_rmsnorm(&g_k, NULL, &g_err));
    REJECT(kn_rmsnorm(NULL, &rn, &g_err));

    kn_head_prep_args hp = {.x = d, .inv_freq = d, .pos = du, .n = 1, .heads = 2, .d = 8, .rd = 8, .ldx = 16, .scale = 1.0f};
    kn_head_prep_args hb = hp;
    hb.rd = 7;
    REJECT(kn_head_prep(&g_k, &hb, &g_err));
    hb = hp, hb.rd = 10;
    REJECT(kn_head_prep(&g_k, &hb, &g_err));
    hb = hp, hb.pos = NULL;
    REJECT(kn_head_prep(&g_k, &hb, &g_err));
    hb = hp, hb.ldx = 15;
    REJECT(kn_head_prep(&g_k, &hb, &g_err));

    kn_qkv_split_args qs = {.y = d, .q = d, .k = d, .v = d, .n = 1, .shards = 2, .qr = 8, .kr = 4, .vr = 4, .ld = 16};
    kn_qkv_split_args qb = qs;
    qb.kr = 3;
    REJECT(kn_qkv_split(&g_k, &qb, &g_err));
    qb = qs, qb.ld = 15;
    REJECT(kn_qkv_split(&g_k, &qb, &g_err));
    qb = qs, qb.v = NULL;
    REJECT(kn_qkv_split(&g_k, &qb, &g_err));

    kn_kv_store_args kv = {.k = d, .v = d, .kc = d, .vc = d, .pos = du, .n = 4, .slots = 4, .kr = 8, .vr = 8, .ldk = 8,
                           .ldv = 8};
    kn_kv_store_args kb = kv;
    kb.n = 5;
    REJECT(kn_kv_store(&g_k, &kb, &g_err));
    kb = kv, kb.pos = NULL;
    REJECT(kn_kv_store(&g_k, &kb, &g_err));
    kb = kv, kb.vc = d16 + 1, kb.kv_f32 = 1;
    REJECT(kn_kv_store(&g_k, &kb, &g_err));
    kb = kv, kb.kv_f32 = 2;
    REJECT(kn_kv_store(&g_k, &kb, &g_err));

    kn_swiglu_act_args sa = {.a = d, .b = d, .out = d, .n = 1, .I = 8, .lda = 8, .ldb = 8, .ldo = 8};
    kn_swiglu_act_args sb = sa;
    sb.ldb = 7;
    REJECT(kn_swiglu_act(&g_k, &sb, &g_err));
    sb = sa, sb.out = NULL;
    REJECT(kn_swiglu_act(&g_k, &sb, &g_err));

    kn_router_args ra = {.x = d, .w = d, .sel = di, .wsel = d, .n = 1, .E = 8, .K = 2, .H = 16, .ldx = 16, .scaling = 1};
    kn_router_args rbad = ra;
    rbad.K = 9;
    REJECT(kn_router(&g_k, &rbad, &g_err));
    rbad = ra, rbad.E = 1025, rbad.K = 2;
    REJECT(kn_router(&g_k, &rbad, &g_err));
    rbad = ra, rbad.n_group = 3;
    REJECT(kn_router(&g_k, &rbad, &g_err));
    rbad = ra, rbad.n_group = 4, rbad.topk_group = 5;
    REJECT(kn_router(&g_k, &rbad, &g_err));
    rbad = ra, rbad.K = 65, rbad.E = 128;
    REJECT(kn_router(&g_k, &rbad, &g_err));
    rbad = ra, rbad.sel = NULL;
    REJECT(kn_router(&g_k, &rbad, &g_err));

    kn_moe_plan_args pa = {.sel = di, .ng = du, .gexp = di, .goff = du, .gcnt = du, .pair_tok = di, .pair_of = du,
                           .n = 4, .K = 2, .E = 8, .slots = 8};
    kn_moe_plan_args pb = pa;
    pb.n = 65;
    REJECT(kn_moe_plan(&g_k, &pb, &g_err));
    pb = pa, pb.slots = 7;
    REJECT(kn_moe_plan(&g_k, &pb, &g_err));
    pb = pa, pb.ng = NULL;
    REJECT(kn_moe_plan(&g_k, &pb, &g_err));

    kn_moe_combine_args ca = {.ye = d, .sel = di, .wsel = d, .pair_of = du, .y = d, .n = 2, .K = 2, .H = 8, .ldye = 8,
                              .ldy = 8};
    kn_moe_combine_args cb = ca;
    cb.K = 65;
    REJECT(kn_moe_combine(&g_k, &cb, &g_err));
    cb = ca, cb.ldye = 7;
    REJECT(kn_moe_combine(&g_k, &cb, &g_err));

    kn_argmax_args am = {.logits = d, .ids = di, .rows = 1, .V = 8, .ld = 8};
    kn_argmax_args ab = am;
    ab.V = 0;
    REJECT(kn_argmax(&g_k, &ab, &g_err));
    ab = am, ab.ld = 7;
    REJECT(kn_argmax(&g_k, &ab, &g_err));
    ab = am, ab.ids = NULL;
    REJECT(kn_argmax(&g_k, &ab, &g_err));

    kn_accept_greedy_args ag = {.ids = di, .drafts = NULL, .res = di, .k = 2};
    REJECT(kn_accept_greedy(&g_k, &ag, &g_err));
    ag.k = 0, ag.res = NULL;
    REJECT(kn_accept_greedy(&g_k, &ag, &g_err));

    CK(cudaDeviceSynchronize());
    CK(cudaFree(d));
}

int main(void)
{
    gt_device();
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    lq_status st = kn_ctx_init(&g_k, 0, s, &g_err);
    if (st != LQ_OK) {
        fprintf(stderr, "kn_ctx_init: %s\n", g_err.msg);
        return 1;
    }
    test_rmsnorm();
    test_head_prep();
    test_copies();
    test_swiglu();
    test_router();
    test_moe();
    test_sample();
    test_validation();
    CK(cudaStreamDestroy(s));
    return th_finish("test_ops_gpu");
}
