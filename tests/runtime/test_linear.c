/* Linear layers from stored formats (runtime/linear.h).
 * usage: test_linear MKFIXTURE QUANTIZE
 * 1. BF16 (tiny bf16 fixture): y = x W^T equals a double-precision product of the decoded weight to
 *    1e-6 relative L2 (fp32 dot products of 256 terms: about 256 * 2^-24 worst case, far less on
 *    average), and 1, 2 and 3 threads give bit-identical outputs.
 * 2. FP8 fused qkv (tiny fp8 fixture, layer 0, 2 checkpoint-TP shards with a non-128-aligned shard)
 *    against the BF16 fixture's split q, k, v de-interleaved per shard (mimo_arch.md 3.3): relative
 *    L2 below 0.05 (E4M3 keeps 3 mantissa bits: about 31 dB, i.e. 0.028, on these weights).
 * 3. MXFP4 expert (mimo-quantize output): equal to the double product of the dequantized codes to
 *    1e-6, and within 0.15 relative L2 of the BF16 source's product (MXFP4 on Gaussian weights is
 *    about 19 dB, 0.11; reference/mxfp4_formats.md 1.8). */
#include <sys/wait.h>

#include "../harness.h"
#include "libquant/libquant.h"
#include "runtime/cpu/linear.h"

static double rel_l2(const float *a, const double *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += b[i] * b[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* Double product of the decoded weight rows [r0, r1). */
static void ref_product(const rt_linear *l, const float *x, size_t n, uint64_t r0, uint64_t r1, double *y)
{
    float *w = malloc((r1 - r0) * l->cols * sizeof(float));
    CHECK(rt_linear_rows(l, r0, r1, w) == LQ_OK);
    for (size_t t = 0; t < n; t++)
        for (uint64_t r = r0; r < r1; r++) {
            double s = 0;
            for (uint64_t c = 0; c < l->cols; c++)
                s += (double)w[(r - r0) * l->cols + c] * x[t * l->cols + c];
            y[t * (r1 - r0) + (r - r0)] = s;
        }
    free(w);
}

static void fill(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_linear MKFIXTURE QUANTIZE\n");
        return 2;
    }
    char root[] = "/tmp/mimo-rtlin-XXXXXX", cmd[4096];
    CHECK(mkdtemp(root) != NULL);
    snprintf(cmd, sizeof(cmd), "'%s' --preset tiny --variant bf16 --out '%s/b' -q >/dev/null && '%s' --preset tiny "
                               "--variant fp8 --out '%s/f' -q >/dev/null && '%s' '%s/b' '%s/q' -q >/dev/null",
             argv[1], root, argv[1], root, argv[2], root, root);
    CHECK(system(cmd) == 0);
    char pb[600], pf[600], pq[600];
    snprintf(pb, sizeof(pb), "%s/b", root);
    snprintf(pf, sizeof(pf), "%s/f", root);
    snprintf(pq, sizeof(pq), "%s/q", root);
    lq_ckpt *b = NULL, *f = NULL, *q = NULL;
    lq_error err;
    CHECK(lq_ckpt_open(pb, NULL, &b, &err) == LQ_OK && lq_ckpt_open(pf, NULL, &f, &err) == LQ_OK &&
          lq_ckpt_open(pq, NULL, &q, &err) == LQ_OK);
    if (!b || !f || !q)
        return th_finish("test_linear");
    enum { NT = 5 };
    float x[NT * 1024];
    fill(x, sizeof(x) / sizeof(x[0]), 42);

    /* 1. BF16 and threads. */
    rt_linear l;
    CHECK(rt_linear_bind(b, "model.layers.0.mlp.down_proj.weight", 0, &l, &err) == LQ_OK);
    CHECK(l.fmt == RT_W_FLOAT && l.rows == 256 && l.cols == 1024);
    float y1[NT * 256], y2[NT * 256], y3[NT * 256];
    double yr[NT * 256];
    CHECK(rt_linear_forward(&l, x, NT, 0, 256, y1, 256, 1) == LQ_OK);
    CHECK(rt_linear_forward(&l, x, NT, 0, 256, y2, 256, 2) == LQ_OK);
    CHECK(rt_linear_forward(&l, x, NT, 0, 256, y3, 256, 3) == LQ_OK);
    CHECK(memcmp(y1, y2, sizeof y1) == 0 && memcmp(y1, y3, sizeof y1) == 0);
    ref_product(&l, x, NT, 0, 256, yr);
    CHECK(rel_l2(y1, yr, NT * 256) < 1e-6);

    /* 2. FP8 fused qkv vs split BF16 q/k/v, de-interleaved: shard s = [q_s | k_s | v_s]. */
    rt_linear qkv, lq, lk, lv;
    CHECK(rt_linear_bind(f, "model.layers.0.self_attn.qkv_proj.weight", 2, &qkv, &err) == LQ_OK);
    CHECK(rt_linear_bind(b, "model.layers.0.self_attn.q_proj.weight", 0, &lq, &err) == LQ_OK);
    CHECK(rt_linear_bind(b, "model.layers.0.self_attn.k_proj.weight", 0, &lk, &err) == LQ_OK);
    CHECK(rt_linear_bind(b, "model.layers.0.self_attn.v_proj.weight", 0, &lv, &err) == LQ_OK);
    CHECK(qkv.fmt == RT_W_FP8 && qkv.rows == 2176 && qkv.grid.shards == 2);
    float *yf = malloc(NT * 2176 * sizeof(float));
    double *ys = malloc(NT * 2176 * sizeof(double));
    CHECK(rt_linear_forward(&qkv, x, NT, 0, 2176, yf, 2176, 2) == LQ_OK);
    uint64_t per[3] = {lq.rows / 2, lk.rows / 2, lv.rows / 2}, o = 0;
    const rt_linear *parts[3] = {&lq, &lk, &lv};
    for (uint64_t s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++) {
            double *tmp = malloc(NT * per[k] * sizeof(double));
            ref_product(parts[k], x, NT, s * per[k], (s + 1) * per[k], tmp);
            for (size_t t = 0; t < NT; t++)
                for (uint64_t r = 0; r < per[k]; r++)
                    ys[t * 2176 + o + r] = tmp[t * per[k] + r];
            free(tmp);
            o += per[k];
        }
    CHECK_EQ_U64(o, 2176);
    double e = rel_l2(yf, ys, NT * 2176);
    CHECK_MSG(e < 0.05, "fused FP8 qkv vs split BF16: relative L2 %.4f", e);
    free(yf);
    free(ys);

    /* 3. MXFP4 expert. */
    rt_linear mx, src;
    const char *en = "model.layers.2.mlp.experts.3.gate_proj.weight";
    CHECK(rt_linear_bind(q, en, 0, &mx, &err) == LQ_OK);
    CHECK(rt_linear_bind(b, en, 0, &src, &err) == LQ_OK);
    CHECK(mx.fmt == RT_W_MXFP4 && mx.rows == 64 && mx.cols == 256);
    float ym[NT * 64];
    double yd[NT * 64], ysrc[NT * 64];
    CHECK(rt_linear_forward(&mx, x, NT, 0, 64, ym, 64, 2) == LQ_OK);
    ref_product(&mx, x, NT, 0, 64, yd);
    ref_product(&src, x, NT, 0, 64, ysrc);
    CHECK(rel_l2(ym, yd, NT * 64) < 1e-6);
    e = rel_l2(ym, ysrc, NT * 64);
    CHECK_MSG(e > 0.02 && e < 0.15, "MXFP4 vs BF16 source: relative L2 %.4f", e);
    /* Binding errors. */
    CHECK(rt_linear_bind(q, "model.norm.weight", 0, &mx, &err) == LQ_ERR_CORRUPT);
    CHECK(rt_linear_bind(q, "no.such.weight", 0, &mx, &err) == LQ_ERR_NOT_FOUND);

    lq_ckpt_close(b);
    lq_ckpt_close(f);
    lq_ckpt_close(q);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return th_finish("test_linear");
}
