/* GPU linear layers (kernels/linear.h) against the CPU oracle's rt_linear_forward / rt_linear_rows
 * (runtime/cpu/linear.h), for every stored format, over edge shapes: 1 row, rows and K not
 * multiples of the tiles, 1..64 tokens, expert groups. Tolerances (the issue's): relative L2
 * <= 4e-3 for the BF16-activation path against the fp32 reference; <= 1e-5 for the fp32 path, and
 * for the BF16 path against the reference fed the same BF16-rounded activations when the weight
 * format is exact in BF16 (then only the summation order differs). Batch invariance is checked
 * bitwise: a row's output alone equals its output among 2, 8, 16 and 64 rows with other companions,
 * and an expert group's row equals a plain launch of that expert. Embedding rows are bit-identical to
 * the CPU decode. Exits 77 without a CUDA device (fails instead under MIMO_REQUIRE_GPU=1). */
#include <math.h>

#include "../harness.h"
#include "gpu_test.h"
#include "kernels/linear.h"
#include "libquant/libquant.h"
#include "runtime/cpu/linear.h"

static uint64_t seed = 0x9E3779B97F4A7C15ull;
static kn_ctx K;

static const char *fmt_name(kn_wfmt f)
{
    static const char *n[] = {"BF16", "F16", "F32", "E4M3", "E5M2", "MXFP4"};
    return n[f];
}

/* A weight of `experts` x [rows, cols] in format f: host copy (as the CPU reads it) and device copy. */
typedef struct tw {
    kn_wfmt f;
    uint32_t rows, cols, experts;
    uint8_t *w, *mx;      /* host */
    float *fs;            /* host f32 grid per expert */
    uint32_t *srow;
    lq_fp8_grid grid;
    uint64_t wbytes, sbytes, fsn; /* per expert */
    kn_weight d;
    void *dw, *dmx, *dfs, *dsrow;
} tw;

static uint64_t row_bytes(kn_wfmt f, uint32_t cols)
{
    switch (f) {
    case KN_W_BF16:
    case KN_W_F16: return (uint64_t)cols * 2;
    case KN_W_F32: return (uint64_t)cols * 4;
    case KN_W_MXFP4: return cols / 2;
    default: return cols;
    }
}

static void tw_make(tw *t, kn_wfmt f, uint32_t rows, uint32_t cols, uint32_t experts)
{
    memset(t, 0, sizeof(*t));
    t->f = f, t->rows = rows, t->cols = cols, t->experts = experts;
    t->wbytes = row_bytes(f, cols) * rows;
    t->w = malloc(t->wbytes * experts);
    for (uint64_t i = 0; i < t->wbytes * experts; i++) {
        if (f == KN_W_BF16 || f == KN_W_F16 || f == KN_W_F32) {
            if (i % (f == KN_W_F32 ? 4 : 2))
                continue;
            float v = gt_uniform(&seed) * 0.5f;
            if (f == KN_W_BF16) { uint16_t h = lq_f32_to_bf16(v); memcpy(t->w + i, &h, 2); }
            else if (f == KN_W_F16) { uint16_t h = lq_f32_to_f16(v); memcpy(t->w + i, &h, 2); }
            else memcpy(t->w + i, &v, 4);
        } else if (f == KN_W_E4M3) {
            t->w[i] = lq_f32_to_e4m3_sat(gt_uniform(&seed) * 400.0f);
        } else if (f == KN_W_E5M2) {
            t->w[i] = lq_f32_to_e5m2(gt_uniform(&seed) * 400.0f);
        } else {
            t->w[i] = (uint8_t)gt_next(&seed);
        }
    }
    if (f == KN_W_MXFP4) {
        t->sbytes = (uint64_t)rows * (cols / 32);
        t->mx = malloc(t->sbytes * experts);
        for (uint64_t i = 0; i < t->sbytes * experts; i++)
            t->mx[i] = (uint8_t)(120 + gt_next(&seed) % 8);
    }
    if (f == KN_W_E4M3 || f == KN_W_E5M2) {
        uint64_t srows = (rows + 127) / 128, scols = (cols + 127) / 128;
        CHECK(lq_fp8_grid_detect(rows, cols, srows, scols, 128, 128, 0, "w", &t->grid, NULL) == LQ_OK);
        t->fsn = srows * scols;
        t->fs = malloc(t->fsn * experts * sizeof(float));
        for (uint64_t i = 0; i < t->fsn * experts; i++)
            t->fs[i] = 1e-3f * (1.0f + 0.5f * gt_uniform(&seed));
        t->srow = malloc(rows * sizeof(uint32_t));
        for (uint32_t r = 0; r < rows; r++)
            t->srow[r] = (uint32_t)lq_fp8_grid_scale_row(&t->grid, r);
    }
    CK(cudaMalloc(&t->dw, t->wbytes * experts));
    CK(cudaMemcpy(t->dw, t->w, t->wbytes * experts, cudaMemcpyHostToDevice));
    t->d.fmt = f, t->d.rows = rows, t->d.cols = cols, t->d.experts = experts, t->d.w = t->dw, t->d.w_stride = t->wbytes;
    if (t->mx) {
        CK(cudaMalloc(&t->dmx, t->sbytes * experts));
        CK(cudaMemcpy(t->dmx, t->mx, t->sbytes * experts, cudaMemcpyHostToDevice));
        t->d.mx_scales = t->dmx, t->d.s_stride = t->sbytes;
    }
    if (t->fs) {
        CK(cudaMalloc(&t->dfs, t->fsn * experts * sizeof(float)));
        CK(cudaMemcpy(t->dfs, t->fs, t->fsn * experts * sizeof(float), cudaMemcpyHostToDevice));
        CK(cudaMalloc(&t->dsrow, rows * sizeof(uint32_t)));
        CK(cudaMemcpy(t->dsrow, t->srow, rows * sizeof(uint32_t), cudaMemcpyHostToDevice));
        t->d.fp8_scale = t->dfs, t->d.fp8_srow = t->dsrow, t->d.scols = (cols + 127) / 128, t->d.s_stride = t->fsn;
    }
}

static void tw_free(tw *t)
{
    free(t->w), free(t->mx), free(t->fs), free(t->srow);
    CK(cudaFree(t->dw));
    if (t->dmx) CK(cudaFree(t->dmx));
    if (t->dfs) CK(cudaFree(t->dfs));
    if (t->dsrow) CK(cudaFree(t->dsrow));
}

/* The CPU descriptor of expert e. */
static rt_linear tw_cpu(const tw *t, uint32_t e)
{
    rt_linear l;
    memset(&l, 0, sizeof(l));
    l.rows = t->rows, l.cols = t->cols, l.name = "w";
    l.w = t->w + (uint64_t)e * t->wbytes;
    switch (t->f) {
    case KN_W_BF16: l.fmt = RT_W_FLOAT, l.dtype = LQ_DTYPE_BF16; break;
    case KN_W_F16: l.fmt = RT_W_FLOAT, l.dtype = LQ_DTYPE_F16; break;
    case KN_W_F32: l.fmt = RT_W_FLOAT, l.dtype = LQ_DTYPE_F32; break;
    case KN_W_E4M3:
    case KN_W_E5M2:
        l.fmt = RT_W_FP8, l.dtype = t->f == KN_W_E4M3 ? LQ_DTYPE_F8_E4M3 : LQ_DTYPE_F8_E5M2;
        l.fp8_scale = t->fs + (uint64_t)e * t->fsn, l.fp8_scale_dtype = LQ_DTYPE_F32, l.grid = t->grid;
        break;
    case KN_W_MXFP4: l.fmt = RT_W_MXFP4, l.mx_scales = t->mx + (uint64_t)e * t->sbytes; break;
    }
    return l;
}

/* n activation rows of ldx: f32 and the bf16 rounding of it (host), and both on the device. */
typedef struct tx {
    uint32_t n, cols, ld;
    float *f, *fr; /* fr: f rounded to bf16 */
    uint16_t *h;
    float *df;
    uint16_t *dh;
} tx;

static void tx_make(tx *x, uint32_t n, uint32_t cols)
{
    x->n = n, x->cols = cols, x->ld = (cols + 7) / 8 * 8;
    size_t m = (size_t)n * x->ld;
    x->f = calloc(m, sizeof(float)), x->fr = calloc(m, sizeof(float)), x->h = calloc(m, 2);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t c = 0; c < cols; c++) {
            size_t i = (size_t)t * x->ld + c;
            x->f[i] = gt_uniform(&seed);
            x->h[i] = lq_f32_to_bf16(x->f[i]);
            x->fr[i] = lq_bf16_to_f32(x->h[i]);
        }
    CK(cudaMalloc((void **)&x->df, m * sizeof(float)));
    CK(cudaMalloc((void **)&x->dh, m * 2));
    CK(cudaMemcpy(x->df, x->f, m * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(x->dh, x->h, m * 2, cudaMemcpyHostToDevice));
}

static void tx_free(tx *x)
{
    free(x->f), free(x->fr), free(x->h);
    CK(cudaFree(x->df));
    CK(cudaFree(x->dh));
}

/* CPU reference: y[t, rows] for x rows (dense, ld = cols) */
static void cpu_ref(const rt_linear *l, const float *x, uint32_t ld, uint32_t n, float *y)
{
    float *dense = malloc((size_t)n * l->cols * sizeof(float) + 4);
    for (uint32_t t = 0; t < n; t++)
        memcpy(dense + (size_t)t * l->cols, x + (size_t)t * ld, l->cols * sizeof(float));
    CHECK(rt_linear_forward(l, dense, n, 0, l->rows, y, l->rows, 1) == LQ_OK);
    free(dense);
}

/* Runs the GPU linear layer (plain) on rows [r0, r0 + n) of x; returns y on the host [n, rows]. */
static void gpu_plain(const tw *t, const tx *x, uint32_t r0, uint32_t n, int f32, const float *dbias, float *y)
{
    float *dy;
    size_t bytes = (size_t)n * t->rows * sizeof(float);
    CK(cudaMalloc((void **)&dy, bytes));
    CK(cudaMemset(dy, 0xFF, bytes)); /* NaN poison: every output must be written */
    kn_linear_args a;
    memset(&a, 0, sizeof(a));
    a.W = &t->d, a.x_f32 = f32, a.ldx = x->ld, a.n = n, a.y = dy, a.ldy = t->rows, a.bias = dbias;
    a.x = f32 ? (const void *)(x->df + (size_t)r0 * x->ld) : (const void *)(x->dh + (size_t)r0 * x->ld);
    lq_error err;
    lq_status st = kn_linear(&K, &a, &err);
    CHECK_MSG(st == LQ_OK, "kn_linear: %s", err.msg);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost));
    CK(cudaFree(dy));
}

static int all_finite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

static void case_plain(kn_wfmt f, uint32_t rows, uint32_t cols, uint32_t n)
{
    tw t;
    tw_make(&t, f, rows, cols, 1);
    tx x;
    tx_make(&x, 64, cols);
    rt_linear l = tw_cpu(&t, 0);
    size_t m = (size_t)n * rows;
    float *ref = malloc(m * 4), *refr = malloc(m * 4), *g = malloc(m * 4), *g32 = malloc(m * 4);
    cpu_ref(&l, x.f, x.ld, n, ref);
    /* The bf16 path's inputs: x rounded to bf16, and F16 / F32 weights rounded to bf16 too (BF16,
     * FP8 and MXFP4 values are exact in bf16). The CPU on those same inputs is the reference the
     * path must match to fp32 accumulation order (1e-5). */
    const int exact = f != KN_W_F16 && f != KN_W_F32;
    rt_linear lr = l;
    uint16_t *wr = NULL;
    if (!exact) {
        wr = malloc((size_t)rows * cols * 2);
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            float v;
            if (f == KN_W_F32)
                memcpy(&v, t.w + 4 * i, 4);
            else {
                uint16_t h;
                memcpy(&h, t.w + 2 * i, 2);
                v = lq_f16_to_f32(h);
            }
            wr[i] = lq_f32_to_bf16(v);
        }
        lr.w = (const uint8_t *)wr, lr.dtype = LQ_DTYPE_BF16;
    }
    cpu_ref(&lr, x.fr, x.ld, n, refr);
    gpu_plain(&t, &x, 0, n, 0, NULL, g);
    gpu_plain(&t, &x, 0, n, 1, NULL, g32);
    double e_bf = gt_rel_l2(g, ref, m), e_same = gt_rel_l2(g, refr, m), e32 = gt_rel_l2(g32, ref, m);
    CHECK_MSG(all_finite(g, m) && all_finite(g32, m), "%s %ux%u n=%u: an output was not written or not finite",
              fmt_name(f), rows, cols, n);
    /* Against the fp32 CPU: the rounding of the inputs, 4e-3 (the BF16-output bound). With
     * F16 / F32 weights rounded as well, a single output of a 32-term dot product can lose most
     * of its digits to cancellation (seen on the H100: 4.0e-2 for the one output of F32 1x32,
     * 7.8e-3 for F16), so there the bound is held on outputs of at least 16 values. */
    if (exact || m >= 16)
        CHECK_MSG(e_bf <= 4e-3, "%s %ux%u n=%u: bf16 path rel L2 %.3g vs fp32 CPU (<= 4e-3)", fmt_name(f), rows, cols,
                  n, e_bf);
    CHECK_MSG(e_same <= 1e-5, "%s %ux%u n=%u: bf16 path rel L2 %.3g vs CPU on the same bf16 inputs (<= 1e-5)",
              fmt_name(f), rows, cols, n, e_same);
    free(wr);
    CHECK_MSG(e32 <= 1e-5, "%s %ux%u n=%u: fp32 path rel L2 %.3g vs CPU (<= 1e-5)", fmt_name(f), rows, cols, n, e32);
    if (n == 1)
        printf("  %-5s %5ux%-5u bf16 path %.2e (same inputs %.2e), fp32 path %.2e\n", fmt_name(f), rows, cols, e_bf,
               e_same, e32);
    free(ref), free(refr), free(g), free(g32);
    tx_free(&x);
    tw_free(&t);
}

/* Row 5 of x computed alone, and inside launches of 2, 8, 16 and 64 rows starting at different
 * offsets (different companions): bitwise equal, on both paths. */
static void case_invariance(kn_wfmt f, uint32_t rows, uint32_t cols)
{
    tw t;
    tw_make(&t, f, rows, cols, 1);
    tx x;
    tx_make(&x, 64, cols);
    const uint32_t target = 5;
    float *alone = malloc(rows * 4), *many = malloc((size_t)64 * rows * 4);
    for (int f32 = 0; f32 < 2; f32++) {
        gpu_plain(&t, &x, target, 1, f32, NULL, alone);
        const uint32_t ns[] = {2, 8, 16, 64}, starts[] = {4, 0, 3, 0};
        for (int i = 0; i < 4; i++) {
            gpu_plain(&t, &x, starts[i], ns[i], f32, NULL, many);
            size_t bad = 0;
            for (uint32_t r = 0; r < rows; r++)
                bad += memcmp(&alone[r], &many[(size_t)(target - starts[i]) * rows + r], 4) != 0;
            CHECK_MSG(bad == 0, "%s %s path: row %u differs in %zu of %u outputs when launched among %u rows", fmt_name(f),
                      f32 ? "fp32" : "bf16", target, bad, rows, ns[i]);
        }
    }
    free(alone), free(many);
    tx_free(&x);
    tw_free(&t);
}

/* Expert groups: 4 experts; groups (expert 0: 5 pairs, expert 2: 64 pairs, expert 3: 1 pair) and
 * an empty slot; x rows through xmap. Each pair against the CPU expert forward, and bitwise
 * against a plain launch of its expert on its row alone. */
static void case_groups(kn_wfmt f, uint32_t rows, uint32_t cols)
{
    const uint32_t E = 4, slots = 4, pairs = 70;
    int32_t gexp[4] = {0, 2, 3, 0}, goff[4] = {0, 5, 69, 0}, gcnt[4] = {5, 64, 1, 0}, xmap[70];
    for (uint32_t p = 0; p < pairs; p++)
        xmap[p] = (int32_t)(gt_next(&seed) % 64);
    tw t;
    tw_make(&t, f, rows, cols, E);
    tx x;
    tx_make(&x, 64, cols);
    int32_t *dg;
    CK(cudaMalloc((void **)&dg, (3 * slots + pairs) * sizeof(int32_t)));
    CK(cudaMemcpy(dg, gexp, sizeof gexp, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dg + slots, goff, sizeof goff, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dg + 2 * slots, gcnt, sizeof gcnt, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dg + 3 * slots, xmap, sizeof xmap, cudaMemcpyHostToDevice));
    float *dy, *y = malloc((size_t)pairs * rows * 4), *ref = malloc(rows * 4), *alone = malloc(rows * 4);
    CK(cudaMalloc((void **)&dy, (size_t)pairs * rows * 4));
    for (int f32 = 0; f32 < 2; f32++) {
        CK(cudaMemset(dy, 0xFF, (size_t)pairs * rows * 4));
        kn_linear_args a;
        memset(&a, 0, sizeof(a));
        a.W = &t.d, a.x = f32 ? (const void *)x.df : (const void *)x.dh, a.x_f32 = f32, a.ldx = x.ld, a.n = pairs;
        a.y = dy, a.ldy = rows, a.gexp = dg, a.goff = dg + slots, a.gcnt = dg + 2 * slots, a.xmap = dg + 3 * slots;
        a.slots = slots;
        lq_error err;
        CHECK_MSG(kn_linear(&K, &a, &err) == LQ_OK, "grouped kn_linear: %s", err.msg);
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(y, dy, (size_t)pairs * rows * 4, cudaMemcpyDeviceToHost));
        double worst = 0;
        size_t bad = 0;
        for (uint32_t s = 0; s < 3; s++)
            for (int32_t i = 0; i < gcnt[s]; i++) {
                uint32_t p = (uint32_t)(goff[s] + i);
                rt_linear l = tw_cpu(&t, (uint32_t)gexp[s]);
                cpu_ref(&l, (f32 ? x.f : x.fr) + (size_t)xmap[p] * x.ld, x.ld, 1, ref);
                double e = gt_rel_l2(y + (size_t)p * rows, ref, rows);
                worst = e > worst ? e : worst;
                /* the same expert as a plain weight, on that row alone */
                tw one = t;
                one.d.experts = 1;
                one.d.w = (const uint8_t *)t.dw + (uint64_t)gexp[s] * t.wbytes;
                if (t.dmx) one.d.mx_scales = (const uint8_t *)t.dmx + (uint64_t)gexp[s] * t.sbytes;
                if (t.dfs) one.d.fp8_scale = (const float *)t.dfs + (uint64_t)gexp[s] * t.fsn;
                one.d.w_stride = 0;
                gpu_plain(&one, &x, (uint32_t)xmap[p], 1, f32, NULL, alone);
                for (uint32_t r = 0; r < rows; r++)
                    bad += memcmp(&alone[r], &y[(size_t)p * rows + r], 4) != 0;
            }
        const double tol = (f != KN_W_F16 && f != KN_W_F32) || f32 ? 1e-5 : 4e-3;
        CHECK_MSG(worst <= tol, "%s groups %s path: worst pair rel L2 %.3g (<= %.0e)", fmt_name(f), f32 ? "fp32" : "bf16",
                  worst, tol);
        CHECK_MSG(bad == 0, "%s groups %s path: %zu outputs differ from the plain launch of the same expert and row",
                  fmt_name(f), f32 ? "fp32" : "bf16", bad);
    }
    free(y), free(ref), free(alone);
    CK(cudaFree(dy));
    CK(cudaFree(dg));
    tx_free(&x);
    tw_free(&t);
}

static void case_bias_and_embed(kn_wfmt f, uint32_t rows, uint32_t cols)
{
    tw t;
    tw_make(&t, f, rows, cols, 1);
    tx x;
    tx_make(&x, 64, cols);
    float *bias = malloc(rows * 4), *dbias, *a = malloc(rows * 4 * 3), *b = malloc(rows * 4 * 3);
    for (uint32_t r = 0; r < rows; r++)
        bias[r] = gt_uniform(&seed);
    CK(cudaMalloc((void **)&dbias, rows * 4));
    CK(cudaMemcpy(dbias, bias, rows * 4, cudaMemcpyHostToDevice));
    gpu_plain(&t, &x, 0, 3, 0, NULL, a);
    gpu_plain(&t, &x, 0, 3, 0, dbias, b);
    size_t bad = 0;
    for (uint32_t i = 0; i < 3 * rows; i++)
        bad += memcmp(&b[i], &(float){a[i] + bias[i % rows]}, 4) != 0;
    CHECK_MSG(bad == 0, "%s bias: %zu outputs are not y + bias exactly", fmt_name(f), bad);
    /* embedding: rows 0, 1, rows-1 bit-identical to rt_linear_rows */
    int32_t tok[3] = {0, rows > 1 ? 1 : 0, (int32_t)rows - 1}, *dtok;
    float *dout, *got = malloc((size_t)3 * cols * 4), *ref = malloc((size_t)cols * 4);
    CK(cudaMalloc((void **)&dtok, sizeof tok));
    CK(cudaMalloc((void **)&dout, (size_t)3 * cols * 4));
    CK(cudaMemset(dout, 0xFF, (size_t)3 * cols * 4));
    CK(cudaMemcpy(dtok, tok, sizeof tok, cudaMemcpyHostToDevice));
    kn_embed_args e = {&t.d, dtok, 3, dout, cols};
    lq_error err;
    CHECK_MSG(kn_embed(&K, &e, &err) == LQ_OK, "kn_embed: %s", err.msg);
    CK(cudaMemcpy(got, dout, (size_t)3 * cols * 4, cudaMemcpyDeviceToHost));
    rt_linear l = tw_cpu(&t, 0);
    bad = 0;
    for (int i = 0; i < 3; i++) {
        CHECK(rt_linear_rows(&l, (uint64_t)tok[i], (uint64_t)tok[i] + 1, ref) == LQ_OK);
        for (uint32_t c = 0; c < cols; c++)
            bad += memcmp(&ref[c], &got[(size_t)i * cols + c], 4) != 0;
    }
    CHECK_MSG(bad == 0, "%s embedding: %zu values differ from the CPU decode", fmt_name(f), bad);
    CK(cudaFree(dbias));
    CK(cudaFree(dtok));
    CK(cudaFree(dout));
    free(bias), free(a), free(b), free(got), free(ref);
    tx_free(&x);
    tw_free(&t);
}

static void case_args(void)
{
    tw t;
    tw_make(&t, KN_W_BF16, 16, 64, 1);
    kn_linear_args a;
    memset(&a, 0, sizeof(a));
    a.W = &t.d, a.x = NULL, a.ldx = 64, a.n = 1, a.y = (float *)t.dw, a.ldy = 16;
    lq_error err;
    lq_error_clear(&err);
    CHECK(kn_linear(&K, &a, &err) == LQ_ERR_INVALID_ARGUMENT && strcmp(err.rule, "KN_ARG") == 0);
    a.x = t.dw, a.n = 65;
    CHECK(kn_linear(&K, &a, &err) == LQ_ERR_INVALID_ARGUMENT && strcmp(err.rule, "KN_ARG") == 0);
    tw_free(&t);
}

int main(void)
{
    gt_device();
    lq_error err;
    if (kn_ctx_init(&K, 0, 0, &err) != LQ_OK) {
        fprintf(stderr, "kn_ctx_init: %s\n", err.msg);
        return 1;
    }
    const kn_wfmt fmts[] = {KN_W_BF16, KN_W_F16, KN_W_F32, KN_W_E4M3, KN_W_E5M2, KN_W_MXFP4};
    const uint32_t ns[] = {1, 2, 8, 16, 64};
    for (int fi = 0; fi < 6; fi++) {
        kn_wfmt f = fmts[fi];
        /* K: 32 (one block), 4160 (not a multiple of 128), and for non-MXFP4 100 (not a multiple of 32) */
        const uint32_t shapes[][2] = {{1, 32}, {17, 4160}, {300, 96}, {33, 100}};
        for (int s = 0; s < 4; s++) {
            if (f == KN_W_MXFP4 && shapes[s][1] % 32)
                continue;
            for (int i = 0; i < 5; i++)
                case_plain(f, shapes[s][0], shapes[s][1], ns[i]);
        }
        case_invariance(f, 40, f == KN_W_MXFP4 ? 4160 : 4100);
        case_groups(f, 24, f == KN_W_MXFP4 ? 256 : 200);
        case_bias_and_embed(f, 20, f == KN_W_MXFP4 ? 128 : 70);
    }
    case_args();
    return th_finish("test_linear_gpu");
}
