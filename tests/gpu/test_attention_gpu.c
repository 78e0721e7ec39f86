/* GPU attention (kernels/attention.h) against the CPU oracle. Every expected value comes from
 * rt_attend (runtime/cpu/ops.c), called with the key ranges, block-key visibility and sinks that
 * the CPU backend's `attention` (target, ctx_only = 0) and `cpu_draft` (drafter, ctx_only = 1)
 * give it; with bf16 KV the oracle reads the same bf16 values widened to f32. Tolerances, per
 * (row, head) output: relative L2 <= 1e-5 for f32 output, and <= 4e-3 against the oracle rounded
 * to bf16 (lq_f32_to_bf16) for bf16 output. Outputs and the workspace are poisoned (0xFF bytes,
 * NaN) before every launch: every output must come back finite and the row padding untouched.
 * Batch invariance is checked bitwise: each row computed alone (n = 1, p0 shifted, a larger grid)
 * and inside launches of 2, 8, 16 and 64 rows, and again beside different companion rows.
 * Exits 77 (skipped) without a CUDA device. */
#include <cuda_runtime_api.h>

#include "../harness.h"
#include "gpu_test.h"
#include "kernels/attention.h"
#include "libquant/dtype.h"
#include "runtime/cpu/ops.h"

static kn_ctx K;
static uint64_t seed_state = 0x243F6A8885A308D3ull;

/* A fresh, nonzero xorshift seed per array. */
static uint64_t fresh_seed(void)
{
    seed_state += 0x9E3779B97F4A7C15ull;
    uint64_t z = seed_state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) | 1;
}

static void fill(float *x, size_t n, float amp)
{
    uint64_t s = fresh_seed();
    for (size_t i = 0; i < n; i++)
        x[i] = gt_uniform(&s) * amp;
}

static void *dput(const void *h, size_t bytes)
{
    void *d = NULL;
    CK(cudaMalloc(&d, bytes));
    CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

typedef struct tcase {
    const char *name;
    uint32_t n, nq, nkv, dqk, dv, span, max_keys;
    uint64_t slots, p0;
    int ctx_only, causal, sinks, kv_bf16, out_bf16;
    uint32_t pad; /* extra floats (even) per row of q, out and the block keys: strided rows */
} tcase;

/* One ring, its sinks and block keys, and device buffers for up to c.n rows. */
typedef struct fix {
    tcase c;
    uint64_t kr, vr, ldq, ldo, ldbk, ldbv;
    float *rk, *rv, *bk, *bv, *sinks; /* host: the ring as the oracle reads it, block keys, sinks */
    float *dq, *dbk, *dbv, *dsinks;
    void *dkc, *dvc, *dout, *dws;
    uint32_t *dpos;
    size_t ws_bytes, esz;
    float scale;
} fix;

static void fix_make(fix *f, const tcase *c)
{
    memset(f, 0, sizeof(*f));
    f->c = *c;
    f->kr = (uint64_t)c->nkv * c->dqk, f->vr = (uint64_t)c->nkv * c->dv;
    f->ldq = (uint64_t)c->nq * c->dqk + c->pad, f->ldo = (uint64_t)c->nq * c->dv + c->pad;
    f->ldbk = f->kr + c->pad, f->ldbv = f->vr + c->pad;
    f->esz = c->out_bf16 ? 2 : 4;
    f->scale = 1.5f / sqrtf((float)c->dqk);
    size_t nk = c->slots * f->kr, nv = c->slots * f->vr;
    f->rk = malloc(nk * sizeof(float)), f->rv = malloc(nv * sizeof(float));
    fill(f->rk, nk, 1.0f);
    fill(f->rv, nv, 1.0f);
    if (c->kv_bf16) {
        uint16_t *bits = malloc((nk > nv ? nk : nv) * sizeof(uint16_t));
        for (size_t i = 0; i < nk; i++)
            bits[i] = lq_f32_to_bf16(f->rk[i]), f->rk[i] = lq_bf16_to_f32(bits[i]);
        f->dkc = dput(bits, nk * sizeof(uint16_t));
        for (size_t i = 0; i < nv; i++)
            bits[i] = lq_f32_to_bf16(f->rv[i]), f->rv[i] = lq_bf16_to_f32(bits[i]);
        f->dvc = dput(bits, nv * sizeof(uint16_t));
        free(bits);
    } else {
        f->dkc = dput(f->rk, nk * sizeof(float));
        f->dvc = dput(f->rv, nv * sizeof(float));
    }
    if (c->ctx_only) {
        f->bk = malloc(c->n * f->ldbk * sizeof(float)), f->bv = malloc(c->n * f->ldbv * sizeof(float));
        fill(f->bk, c->n * f->ldbk, 1.0f);
        fill(f->bv, c->n * f->ldbv, 1.0f);
        f->dbk = dput(f->bk, c->n * f->ldbk * sizeof(float));
        f->dbv = dput(f->bv, c->n * f->ldbv * sizeof(float));
    }
    if (c->sinks) {
        f->sinks = malloc(c->nq * sizeof(float));
        fill(f->sinks, c->nq, 2.0f);
        f->dsinks = dput(f->sinks, c->nq * sizeof(float));
    }
    CK(cudaMalloc((void **)&f->dq, c->n * f->ldq * sizeof(float)));
    CK(cudaMalloc((void **)&f->dpos, sizeof(uint32_t)));
    CK(cudaMalloc(&f->dout, c->n * f->ldo * f->esz));
    /* Sized for the largest grid any launch here uses (max_keys = slots). */
    f->ws_bytes = kn_attention_workspace_bytes(c->n, c->nq, c->dv, (uint32_t)c->slots);
    CK(cudaMalloc(&f->dws, f->ws_bytes));
}

static void fix_free(fix *f)
{
    free(f->rk), free(f->rv), free(f->bk), free(f->bv), free(f->sinks);
    void *dev[] = {f->dq, f->dbk, f->dbv, f->dsinks, f->dkc, f->dvc, f->dout, f->dws, f->dpos};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        CK(cudaFree(dev[i]));
}

static kn_attention_args fix_args(const fix *f, uint32_t n, uint32_t max_keys)
{
    const tcase *c = &f->c;
    kn_attention_args a;
    memset(&a, 0, sizeof(a));
    a.q = f->dq, a.ldq = f->ldq;
    a.kc = f->dkc, a.vc = f->dvc, a.slots = c->slots, a.kv_f32 = !c->kv_bf16;
    a.pos = f->dpos;
    a.bk = f->dbk, a.bv = f->dbv, a.ldbk = f->ldbk, a.ldbv = f->ldbv;
    a.sinks = f->dsinks;
    a.out = f->dout, a.ldo = f->ldo, a.out_bf16 = c->out_bf16;
    a.ws = f->dws, a.ws_bytes = f->ws_bytes;
    a.n = n, a.nq = c->nq, a.nkv = c->nkv, a.dqk = c->dqk, a.dv = c->dv;
    a.max_keys = max_keys, a.span = c->span, a.ctx_only = c->ctx_only, a.causal = c->causal;
    a.scale = f->scale;
    return a;
}

/* Uploads n query rows and p0, poisons the output and the workspace, launches, waits and fetches
 * the n output rows (ldo elements each, raw) into out. Returns the launcher's status. */
static lq_status fix_run(fix *f, uint32_t n, uint64_t p0, const float *q, uint32_t max_keys, void *out, lq_error *err)
{
    const uint32_t p = (uint32_t)p0;
    const size_t ob = n * f->ldo * f->esz;
    CK(cudaMemcpy(f->dq, q, n * f->ldq * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(f->dpos, &p, sizeof(p), cudaMemcpyHostToDevice));
    CK(cudaMemset(f->dout, 0xFF, ob));
    CK(cudaMemset(f->dws, 0xFF, f->ws_bytes));
    kn_attention_args a = fix_args(f, n, max_keys);
    lq_status st = kn_attention(&K, &a, err);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(out, f->dout, ob, cudaMemcpyDeviceToHost));
    return st;
}

static float out_at(const fix *f, const uint8_t *buf, uint64_t i)
{
    if (f->c.out_bf16) {
        uint16_t b;
        memcpy(&b, buf + 2 * i, 2);
        return lq_bf16_to_f32(b);
    }
    float x;
    memcpy(&x, buf + 4 * i, 4);
    return x;
}

/* The first ring position row t reads, as backend.c computes it. */
static uint64_t first_key(const tcase *c, uint64_t p0, uint32_t t)
{
    const uint64_t qp = p0 + t;
    return c->span && qp + 1 > c->span ? qp + 1 - c->span : 0;
}

/* The oracle: rt_attend for (row t, head h) exactly as the CPU backend calls it. */
static void oracle(const fix *f, const float *q, uint64_t p0, uint32_t t, uint32_t h, float *sc, float *out)
{
    const tcase *c = &f->c;
    const rt_kv kv = {.k = f->rk, .v = f->rv, .slots = c->slots, .kr = f->kr, .vr = f->vr};
    const float *qh = q + t * f->ldq + (uint64_t)h * c->dqk, *sk = c->sinks ? &f->sinks[h] : NULL;
    const uint32_t g = h / (c->nq / c->nkv);
    uint64_t lo = first_key(c, p0, t);
    if (!c->ctx_only) { /* backend.c attention / att_task */
        rt_attend(qh, &kv, lo, p0 + t + 1, g, c->dqk, c->dv, NULL, NULL, 0, 0, 0, NULL, f->scale, sk, sc, out);
        return;
    }
    /* backend.c cpu_draft: context lo .. p0 - 1, then the block keys under vis[]. A window
     * shorter than the block leaves a late row no context keys (cpu_draft never meets that). */
    uint8_t vis[KN_ATTENTION_MAX_ROWS];
    for (uint32_t j = 0; j < c->n; j++) {
        const uint32_t dj = j > t ? j - t : t - j;
        vis[j] = (!c->causal || j <= t) && (!c->span || dj < c->span);
    }
    if (lo > p0)
        lo = p0;
    rt_attend(qh, &kv, lo, p0, g, c->dqk, c->dv, f->bk, f->bv, f->ldbk, f->ldbv, c->n, vis, f->scale, sk, sc, out);
}

static void check_case(const tcase *c)
{
    fix f;
    fix_make(&f, c);
    /* The case's own promise: no row has more ring keys than max_keys or than the ring holds. */
    uint64_t most = 0;
    for (uint32_t t = 0; t < c->n; t++) {
        const uint64_t hi = c->ctx_only ? c->p0 : c->p0 + t + 1, lo = first_key(c, c->p0, t);
        most = hi > lo && hi - lo > most ? hi - lo : most;
    }
    CHECK_MSG(most <= c->max_keys && c->max_keys <= c->slots, "%s: case setup: %llu keys, max_keys %u, slots %llu",
              c->name, (unsigned long long)most, c->max_keys, (unsigned long long)c->slots);

    float *q = malloc(c->n * f.ldq * sizeof(float));
    fill(q, c->n * f.ldq, 2.0f);
    uint8_t *got = malloc(c->n * f.ldo * f.esz);
    lq_error err;
    memset(&err, 0, sizeof(err));
    lq_status st = fix_run(&f, c->n, c->p0, q, c->max_keys, got, &err);
    CHECK_MSG(st == LQ_OK, "%s: kn_attention returned %d (%s: %s)", c->name, (int)st, err.rule, err.msg);

    float *ref = malloc(c->dv * sizeof(float)), *gv = malloc(c->dv * sizeof(float));
    float *sc = malloc((c->slots + c->n + 1) * sizeof(float));
    double worst = 0;
    uint32_t wt = 0, wh = 0;
    size_t unwritten = 0, pad_written = 0;
    for (uint32_t t = 0; t < c->n; t++) {
        for (uint32_t h = 0; h < c->nq; h++) {
            oracle(&f, q, c->p0, t, h, sc, ref);
            for (uint32_t d = 0; d < c->dv; d++) {
                gv[d] = out_at(&f, got, t * f.ldo + (uint64_t)h * c->dv + d);
                unwritten += !isfinite(gv[d]);
                if (c->out_bf16)
                    ref[d] = lq_bf16_to_f32(lq_f32_to_bf16(ref[d]));
            }
            double e = gt_rel_l2(gv, ref, c->dv);
            e = isnan(e) ? INFINITY : e;
            if (e > worst || (t == 0 && h == 0))
                worst = e, wt = t, wh = h;
        }
        for (uint64_t i = (uint64_t)c->nq * c->dv * f.esz; i < f.ldo * f.esz; i++)
            pad_written += got[t * f.ldo * f.esz + i] != 0xFF;
    }
    const double tol = c->out_bf16 ? 4e-3 : 1e-5;
    CHECK_MSG(unwritten == 0, "%s: %zu of %llu outputs unwritten or not finite", c->name, unwritten,
              (unsigned long long)c->n * c->nq * c->dv);
    CHECK_MSG(pad_written == 0, "%s: %zu bytes of row padding in out were written", c->name, pad_written);
    CHECK_MSG(worst <= tol, "%s: max rel L2 vs rt_attend %.3g > %.0e (row %u head %u)", c->name, worst, tol, wt, wh);
    printf("%-58s max rel L2 %.3g (tol %.0e)\n", c->name, worst, tol);
    free(q), free(got), free(ref), free(gv), free(sc);
    fix_free(&f);
}

/* Target mode, c->n = 64 rows of capacity: rows of launches of n = 2, 8, 16, 64 against the same
 * row launched alone (n = 1 at p0 + t, max_keys = slots: a larger grid), and the even rows
 * against a relaunch whose odd rows are new. Bitwise. */
static void check_invariance(const tcase *c)
{
    static const uint32_t ns[] = {2, 8, 16, 64};
    fix f;
    fix_make(&f, c);
    const size_t rowb = (size_t)c->nq * c->dv * f.esz, ldob = f.ldo * f.esz;
    float *qa = malloc(c->n * f.ldq * sizeof(float)), *qb = malloc(c->n * f.ldq * sizeof(float));
    uint8_t *oa = malloc(c->n * ldob), *ob = malloc(c->n * ldob), *o1 = malloc(ldob);
    size_t alone = 0, comp = 0, rows_alone = 0, rows_comp = 0, bad_st = 0, unwritten = 0;
    lq_error err;
    memset(&err, 0, sizeof(err));
    for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
        const uint32_t N = ns[ni];
        fill(qa, N * f.ldq, 2.0f);
        bad_st += fix_run(&f, N, c->p0, qa, c->max_keys, oa, &err) != LQ_OK;
        for (uint64_t i = 0; i < (uint64_t)N * f.ldo; i++)
            unwritten += i % f.ldo < (uint64_t)c->nq * c->dv && !isfinite(out_at(&f, oa, i));
        for (uint32_t t = 0; t < N; t++) {
            bad_st += fix_run(&f, 1, c->p0 + t, qa + t * f.ldq, (uint32_t)c->slots, o1, &err) != LQ_OK;
            alone += memcmp(o1, oa + t * ldob, rowb) != 0;
            rows_alone++;
        }
        memcpy(qb, qa, N * f.ldq * sizeof(float));
        for (uint32_t t = 1; t < N; t += 2)
            fill(qb + t * f.ldq, f.ldq, 2.0f);
        bad_st += fix_run(&f, N, c->p0, qb, c->max_keys, ob, &err) != LQ_OK;
        for (uint32_t t = 0; t < N; t += 2) {
            comp += memcmp(ob + t * ldob, oa + t * ldob, rowb) != 0;
            rows_comp++;
        }
    }
    CHECK_MSG(bad_st == 0, "%s: %zu launches failed (last: %s: %s)", c->name, bad_st, err.rule, err.msg);
    CHECK_MSG(unwritten == 0, "%s: %zu outputs unwritten or not finite", c->name, unwritten);
    CHECK_MSG(alone == 0, "%s: %zu of %zu rows differ bitwise between n = 1 and their batch", c->name, alone, rows_alone);
    CHECK_MSG(comp == 0, "%s: %zu of %zu rows differ bitwise when their companion rows change", c->name, comp, rows_comp);
    printf("%-58s rows differing: %zu of %zu alone, %zu of %zu with new companions\n", c->name, alone, rows_alone, comp,
           rows_comp);
    free(qa), free(qb), free(oa), free(ob), free(o1);
    fix_free(&f);
}

/* Broken arguments fail with LQ_ERR_INVALID_ARGUMENT, rule KN_ARG, and launch nothing. */
static void check_validation(void)
{
    const tcase c = {.name = "validation", .n = 4, .nq = 4, .nkv = 2, .dqk = 64, .dv = 64, .max_keys = 64,
                     .slots = 80, .p0 = 50, .kv_bf16 = 1};
    fix f;
    fix_make(&f, &c);
    float *q = malloc(c.n * f.ldq * sizeof(float));
    fill(q, c.n * f.ldq, 1.0f);
    const uint32_t p = (uint32_t)c.p0;
    CK(cudaMemcpy(f.dq, q, c.n * f.ldq * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(f.dpos, &p, sizeof(p), cudaMemcpyHostToDevice));
    const size_t ob = c.n * f.ldo * f.esz;
    CK(cudaMemset(f.dout, 0xFF, ob));
    struct {
        const char *what;
        kn_attention_args a;
    } bad[6];
    for (int i = 0; i < 6; i++)
        bad[i].a = fix_args(&f, c.n, c.max_keys);
    bad[0].what = "NULL q", bad[0].a.q = NULL;
    bad[1].what = "workspace one byte short", bad[1].a.ws_bytes = kn_attention_workspace_bytes(c.n, c.nq, c.dv, c.max_keys) - 1;
    bad[2].what = "odd dqk", bad[2].a.dqk = 63, bad[2].a.ldq = (uint64_t)c.nq * 63;
    bad[3].what = "max_keys beyond the ring", bad[3].a.max_keys = (uint32_t)c.slots + 1;
    bad[4].what = "n = 65", bad[4].a.n = 65;
    bad[5].what = "nq not a multiple of nkv", bad[5].a.nkv = 3;
    for (int i = 0; i < 6; i++) {
        lq_error err;
        memset(&err, 0, sizeof(err));
        lq_status st = kn_attention(&K, &bad[i].a, &err);
        CHECK_MSG(st == LQ_ERR_INVALID_ARGUMENT && !strcmp(err.rule, "KN_ARG"), "validation, %s: status %d rule '%s' (%s)",
                  bad[i].what, (int)st, err.rule, err.msg);
    }
    CK(cudaDeviceSynchronize());
    CHECK_MSG(cudaGetLastError() == cudaSuccess, "validation: a CUDA error is pending after the rejected calls");
    uint8_t *got = malloc(ob);
    CK(cudaMemcpy(got, f.dout, ob, cudaMemcpyDeviceToHost));
    size_t touched = 0;
    for (size_t i = 0; i < ob; i++)
        touched += got[i] != 0xFF;
    CHECK_MSG(touched == 0, "validation: %zu output bytes written by rejected launches", touched);
    /* The same arguments, unbroken, run. */
    lq_error err;
    memset(&err, 0, sizeof(err));
    kn_attention_args a = fix_args(&f, c.n, c.max_keys);
    lq_status st = kn_attention(&K, &a, &err);
    CK(cudaDeviceSynchronize());
    CHECK_MSG(st == LQ_OK, "validation: the unbroken arguments returned %d (%s)", (int)st, err.msg);
    printf("%-58s %d broken argument sets rejected, %zu output bytes touched\n", "validation", 6, touched);
    free(q), free(got);
    fix_free(&f);
}

/* Shapes: nq, nkv (group), dqk, dv. */
#define MIMO_SWA .nq = 16, .nkv = 2, .dqk = 192, .dv = 128 /* group 8 */
#define MIMO_G16 .nq = 32, .nkv = 2, .dqk = 192, .dv = 128 /* group 16 */
#define SQ64 .nq = 4, .nkv = 4, .dqk = 64, .dv = 64        /* group 1 */
#define SMALL .nq = 8, .nkv = 4, .dqk = 40, .dv = 24       /* group 2 */
#define ODD .nq = 6, .nkv = 2, .dqk = 38, .dv = 22         /* group 3, dims not multiples of 4 */

static const tcase cases[] = {
    /* target, global (span 0): contexts of 1, 300, 2000, 5000 keys; chunk boundaries crossed */
    {.name = "target n=1 g8 192/128 1 key bf16kv sinks", .n = 1, MIMO_SWA, .slots = 40, .max_keys = 40, .p0 = 0,
     .sinks = 1, .kv_bf16 = 1},
    {.name = "target n=1 g8 192/128 300 keys f32kv", .n = 1, MIMO_SWA, .slots = 300, .max_keys = 300, .p0 = 299},
    {.name = "target n=1 g8 192/128 2000 keys bf16kv bf16out sinks", .n = 1, MIMO_SWA, .slots = 2100, .max_keys = 2048,
     .p0 = 1999, .sinks = 1, .kv_bf16 = 1, .out_bf16 = 1},
    {.name = "target n=1 g16 192/128 5000 keys bf16kv sinks grid 8192", .n = 1, MIMO_G16, .slots = 8192,
     .max_keys = 8192, .p0 = 4999, .sinks = 1, .kv_bf16 = 1},
    {.name = "target n=2 g1 64/64 f32kv sinks strided", .n = 2, SQ64, .slots = 320, .max_keys = 302, .p0 = 300,
     .sinks = 1, .pad = 6},
    {.name = "target n=8 g2 40/24 bf16kv", .n = 8, SMALL, .slots = 1100, .max_keys = 1008, .p0 = 1000, .kv_bf16 = 1},
    {.name = "target n=16 g3 38/22 f32kv bf16out sinks strided", .n = 16, ODD, .slots = 600, .max_keys = 529,
     .p0 = 513, .sinks = 1, .out_bf16 = 1, .pad = 2},
    {.name = "target n=64 g8 192/128 2000 keys bf16kv sinks", .n = 64, MIMO_SWA, .slots = 2100, .max_keys = 2064,
     .p0 = 2000, .sinks = 1, .kv_bf16 = 1},
    {.name = "target n=64 g1 64/64 prefill from 0 f32kv", .n = 64, SQ64, .slots = 64, .max_keys = 64, .p0 = 0},
    /* target, window span 128 in a ring of 128 + 1 + 64 slots, positions far beyond it (wraps) */
    {.name = "target n=1 g8 192/128 swa128 p0=5000 bf16kv sinks", .n = 1, MIMO_SWA, .span = 128, .slots = 193,
     .max_keys = 128, .p0 = 5000, .sinks = 1, .kv_bf16 = 1},
    {.name = "target n=16 g1 64/64 swa128 p0=5000 f32kv bf16out", .n = 16, SQ64, .span = 128, .slots = 193,
     .max_keys = 128, .p0 = 5000, .out_bf16 = 1},
    {.name = "target n=64 g16 192/128 swa128 p0=5000 bf16kv sinks", .n = 64, MIMO_G16, .span = 128, .slots = 193,
     .max_keys = 193, .p0 = 5000, .sinks = 1, .kv_bf16 = 1},
    {.name = "target n=8 g3 38/22 swa128 under the window f32kv sinks", .n = 8, ODD, .span = 128, .slots = 193,
     .max_keys = 128, .p0 = 100, .sinks = 1},
    {.name = "target n=64 g2 40/24 swa129 p0=4321 bf16kv bf16out", .n = 64, SMALL, .span = 129, .slots = 194,
     .max_keys = 129, .p0 = 4321, .kv_bf16 = 1, .out_bf16 = 1},
    {.name = "target n=64 g1 64/64 swa32 positions past 2^32 bf16kv", .n = 64, SQ64, .span = 32, .slots = 97,
     .max_keys = 32, .p0 = 4294967295u, .kv_bf16 = 1},
    {.name = "target n=64 g8 192/128 swa128 f32kv f32out sinks strided", .n = 64, MIMO_SWA, .span = 128, .slots = 193,
     .max_keys = 128, .p0 = 777, .sinks = 1, .pad = 4},
    /* drafter: 8 block keys after the context; window 64 with contexts under and over it */
    {.name = "drafter n=8 g8 192/128 ctx 300 bf16kv sinks", .n = 8, MIMO_SWA, .ctx_only = 1, .slots = 310,
     .max_keys = 310, .p0 = 300, .sinks = 1, .kv_bf16 = 1},
    {.name = "drafter n=8 causal g1 64/64 ctx 40 f32kv bf16out", .n = 8, SQ64, .ctx_only = 1, .causal = 1,
     .slots = 48, .max_keys = 40, .p0 = 40, .out_bf16 = 1},
    {.name = "drafter n=8 g8 192/128 swa64 ctx 40 bf16kv sinks", .n = 8, MIMO_SWA, .ctx_only = 1, .span = 64,
     .slots = 129, .max_keys = 64, .p0 = 40, .sinks = 1, .kv_bf16 = 1},
    {.name = "drafter n=8 causal g3 38/22 swa64 ctx 300 f32kv sinks strided", .n = 8, ODD, .ctx_only = 1, .causal = 1,
     .span = 64, .slots = 129, .max_keys = 64, .p0 = 300, .sinks = 1, .pad = 2},
    {.name = "drafter n=8 causal g16 192/128 swa64 ctx 5000 bf16kv", .n = 8, MIMO_G16, .ctx_only = 1, .causal = 1,
     .span = 64, .slots = 129, .max_keys = 64, .p0 = 5000, .kv_bf16 = 1},
    {.name = "drafter n=8 causal g2 40/24 empty context bf16kv", .n = 8, SMALL, .ctx_only = 1, .causal = 1, .slots = 8,
     .max_keys = 0, .p0 = 0, .kv_bf16 = 1},
    {.name = "drafter n=8 g1 64/64 swa6 (shorter than the block) f32kv", .n = 8, SQ64, .ctx_only = 1, .span = 6,
     .slots = 80, .max_keys = 6, .p0 = 60},
};

static const tcase inv_cases[] = {
    {.name = "invariance g8 192/128 global p0=700 bf16kv sinks", .n = 64, MIMO_SWA, .slots = 900, .max_keys = 764,
     .p0 = 700, .sinks = 1, .kv_bf16 = 1},
    {.name = "invariance g16 192/128 swa128 p0=5000 f32kv bf16out", .n = 64, MIMO_G16, .span = 128, .slots = 193,
     .max_keys = 128, .p0 = 5000, .out_bf16 = 1},
    {.name = "invariance g3 38/22 global p0=250 bf16kv sinks strided", .n = 64, ODD, .slots = 400, .max_keys = 314,
     .p0 = 250, .sinks = 1, .kv_bf16 = 1, .pad = 2},
};

int main(void)
{
    gt_device();
    lq_error err;
    memset(&err, 0, sizeof(err));
    if (kn_ctx_init(&K, 0, 0, &err) != LQ_OK) {
        fprintf(stderr, "kn_ctx_init: %s: %s\n", err.rule, err.msg);
        return 1;
    }
    printf("expected values: rt_attend (runtime/cpu/ops.c), the CPU oracle\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
    for (size_t i = 0; i < sizeof(inv_cases) / sizeof(inv_cases[0]); i++)
        check_invariance(&inv_cases[i]);
    check_validation();
    return th_finish("test_attention_gpu");
}
