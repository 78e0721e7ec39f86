/* Linear layers from stored formats (linear.h). */
#include "linear.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_float(lq_dtype d) { return d == LQ_DTYPE_F32 || d == LQ_DTYPE_F16 || d == LQ_DTYPE_BF16; }

lq_status rt_linear_bind(const lq_ckpt *ck, const char *name, uint32_t qkv_shards, rt_linear *out, lq_error *err)
{
    memset(out, 0, sizeof(*out));
    lq_ckpt_tensor t, s;
    if (lq_ckpt_find(ck, name, &t) != 0)
        return lq_fail(err, LQ_ERR_NOT_FOUND, lq_ckpt_dir(ck), name, "RT_NO_TENSOR", "weight not in the checkpoint");
    const lq_tensor_info *ti = t.info;
    const char *path = lq_st_path(t.file);
    if (ti->rank != 2)
        return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "a linear weight must be 2-D (rank %u)", ti->rank);
    out->name = ti->name;
    out->w = lq_st_data(t.file, ti);
    out->rows = ti->shape[0];
    char sn[1100];
    if (is_float(ti->dtype)) {
        out->fmt = RT_W_FLOAT;
        out->dtype = ti->dtype;
        out->cols = ti->shape[1];
        return LQ_OK;
    }
    if (ti->dtype == LQ_DTYPE_F8_E4M3 || ti->dtype == LQ_DTYPE_F8_E5M2) {
        snprintf(sn, sizeof(sn), "%s_scale_inv", name);
        if (lq_ckpt_find(ck, sn, &s) != 0 || s.info->rank != 2)
            return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "FP8 weight without a 2-D %s", sn);
        out->fmt = RT_W_FP8;
        out->dtype = ti->dtype;
        out->cols = ti->shape[1];
        out->fp8_scale = lq_st_data(s.file, s.info);
        out->fp8_scale_dtype = s.info->dtype;
        return lq_fp8_grid_detect(out->rows, out->cols, s.info->shape[0], s.info->shape[1], 128, 128, qkv_shards, name,
                                  &out->grid, err);
    }
    if (ti->dtype == LQ_DTYPE_U8) {
        snprintf(sn, sizeof(sn), "%s_scale", name);
        if (lq_ckpt_find(ck, sn, &s) != 0 || s.info->dtype != LQ_DTYPE_U8 || s.info->rank != 2 ||
            s.info->shape[0] != ti->shape[0] || s.info->shape[1] * 16 != ti->shape[1])
            return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT",
                           "U8 weight without a U8 %s of [%llu, %llu]", sn, (unsigned long long)ti->shape[0],
                           (unsigned long long)(ti->shape[1] / 16));
        out->fmt = RT_W_MXFP4;
        out->cols = ti->shape[1] * 2;
        out->mx_scales = lq_st_data(s.file, s.info);
        return LQ_OK;
    }
    return lq_fail(err, LQ_ERR_CORRUPT, path, name, "RT_FORMAT", "dtype %s is no weight format", lq_dtype_name(ti->dtype));
}

lq_status rt_linear_rows(const rt_linear *l, uint64_t r0, uint64_t r1, float *out)
{
    uint64_t K = l->cols;
    switch (l->fmt) {
    case RT_W_FLOAT:
        return lq_to_f32(l->dtype, l->w + r0 * K * (lq_dtype_bits(l->dtype) / 8), (size_t)((r1 - r0) * K), out);
    case RT_W_FP8:
        return lq_fp8_block_dequant(&l->grid, l->dtype, l->w, l->fp8_scale_dtype, l->fp8_scale, r0, r1, out, l->name,
                                    NULL);
    case RT_W_MXFP4:
        return lq_mxfp4_dequantize(l->w + r0 * (K / 2), l->mx_scales + r0 * (K / 32), (size_t)((r1 - r0) * K), out,
                                   NULL);
    }
    return LQ_ERR_INVALID_ARGUMENT;
}

/* One fp32 dot product in a fixed order: 8 interleaved partial sums, then a fixed tree. */
static float dot(const float *a, const float *b, uint64_t n)
{
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[i + (uint64_t)k] * b[i + (uint64_t)k];
    for (; i < n; i++)
        s[i % 8] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

typedef struct fwd_job {
    const rt_linear *l;
    const float *x;
    size_t n;
    uint64_t r0, b, e; /* rows [b, e) of this thread */
    float *y;
    size_t ldy;
    lq_status st;
} fwd_job;

/* Rows are decoded RT_ROWS at a time: the decoders' per-call set-up (FP8 lookup table, MXFP4
 * dispatch) is paid once per group, not per row. */
#define RT_ROWS 32

static void *fwd_worker(void *arg)
{
    fwd_job *j = arg;
    uint64_t K = j->l->cols;
    float *rows = malloc(RT_ROWS * K * sizeof(float));
    if (!rows) {
        j->st = LQ_ERR_NO_MEMORY;
        return NULL;
    }
    for (uint64_t r = j->b; r < j->e && j->st == LQ_OK; r += RT_ROWS) {
        uint64_t e = r + RT_ROWS < j->e ? r + RT_ROWS : j->e;
        j->st = rt_linear_rows(j->l, r, e, rows);
        for (uint64_t i = r; i < e && j->st == LQ_OK; i++)
            for (size_t t = 0; t < j->n; t++)
                j->y[t * j->ldy + (i - j->r0)] = dot(rows + (i - r) * K, j->x + t * K, K);
    }
    free(rows);
    return NULL;
}

lq_status rt_linear_forward(const rt_linear *l, const float *x, size_t n, uint64_t r0, uint64_t r1, float *y,
                            size_t ldy, int threads)
{
    if (!l || !x || !y || r0 > r1 || r1 > l->rows || threads < 1)
        return LQ_ERR_INVALID_ARGUMENT;
    uint64_t rows = r1 - r0;
    if (threads > 64)
        threads = 64;
    if ((uint64_t)threads > rows)
        threads = rows ? (int)rows : 1;
    /* a thread is worth its start-up (tens of microseconds) only with enough work: at least
     * 2^18 multiply-adds each; results do not depend on the split */
    uint64_t work = rows * l->cols * (uint64_t)n;
    while (threads > 1 && work / (uint64_t)threads < (1u << 18))
        threads--;
    fwd_job jobs[64];
    pthread_t th[64];
    int running[64] = {0};
    for (int i = 0; i < threads; i++) {
        jobs[i] = (fwd_job){l, x, n, r0, r0 + rows * (uint64_t)i / (uint64_t)threads,
                            r0 + rows * (uint64_t)(i + 1) / (uint64_t)threads, y, ldy, LQ_OK};
        running[i] = i > 0 && pthread_create(&th[i], NULL, fwd_worker, &jobs[i]) == 0;
    }
    for (int i = 0; i < threads; i++)
        if (!running[i])
            fwd_worker(&jobs[i]);
    lq_status st = LQ_OK;
    for (int i = 0; i < threads; i++) {
        if (running[i])
            pthread_join(th[i], NULL);
        if (jobs[i].st != LQ_OK && st == LQ_OK)
            st = jobs[i].st;
    }
    return st;
}
