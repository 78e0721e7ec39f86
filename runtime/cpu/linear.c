/* Linear layers from stored formats (linear.h). */
#include "linear.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- per-thread buffers: found through a thread-specific key, listed globally and all freed at
 * exit (a thread that ends earlier leaves its buffer to that; the pool's workers live until exit) ---- */

#define RT_BUF_SLOTS 2
typedef struct tbuf {
    float *p[RT_BUF_SLOTS];
    size_t n[RT_BUF_SLOTS];
    struct tbuf *next;
} tbuf;

static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static tbuf *g_all;
static int g_key_ok;

static void free_all(void)
{
    pthread_mutex_lock(&g_mu);
    for (tbuf *b = g_all, *nx; b; b = nx) {
        nx = b->next;
        for (int i = 0; i < RT_BUF_SLOTS; i++)
            free(b->p[i]);
        free(b);
    }
    g_all = NULL;
    g_key_ok = 0;
    pthread_mutex_unlock(&g_mu);
}

static void key_init(void)
{
    g_key_ok = pthread_key_create(&g_key, NULL) == 0;
    if (g_key_ok)
        atexit(free_all);
}

float *rt_thread_buf(int slot, size_t n)
{
    pthread_once(&g_once, key_init);
    if (!g_key_ok || slot < 0 || slot >= RT_BUF_SLOTS)
        return NULL;
    tbuf *b = pthread_getspecific(g_key);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b || pthread_setspecific(g_key, b) != 0) {
            free(b);
            return NULL;
        }
        pthread_mutex_lock(&g_mu);
        b->next = g_all;
        g_all = b;
        pthread_mutex_unlock(&g_mu);
    }
    if (b->n[slot] < n) {
        float *p = realloc(b->p[slot], n * sizeof(float));
        if (!p)
            return NULL;
        b->p[slot] = p, b->n[slot] = n;
    }
    return b->p[slot];
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
    uint64_t r0, rows;
    size_t parts;
    float *y;
    size_t ldy;
    lq_status st[64];
} fwd_job;

/* Rows are decoded RT_ROWS at a time: the decoders' per-call set-up (FP8 lookup table, MXFP4
 * dispatch) is paid once per group, not per row. */
#define RT_ROWS 32

static void fwd_task(void *ctx, size_t part)
{
    fwd_job *j = ctx;
    uint64_t K = j->l->cols;
    uint64_t b = j->r0 + j->rows * part / j->parts, e_ = j->r0 + j->rows * (part + 1) / j->parts;
    float *rows = rt_thread_buf(0, RT_ROWS * K);
    if (!rows) {
        j->st[part] = LQ_ERR_NO_MEMORY;
        return;
    }
    lq_status st = LQ_OK;
    for (uint64_t r = b; r < e_ && st == LQ_OK; r += RT_ROWS) {
        uint64_t e = r + RT_ROWS < e_ ? r + RT_ROWS : e_;
        st = rt_linear_rows(j->l, r, e, rows);
        for (uint64_t i = r; i < e && st == LQ_OK; i++)
            for (size_t t = 0; t < j->n; t++)
                j->y[t * j->ldy + (i - j->r0)] = dot(rows + (i - r) * K, j->x + t * K, K);
    }
    j->st[part] = st;
}

size_t rt_parts(uint64_t work, int threads)
{
    size_t t = threads < 1 ? 1 : threads > 64 ? 64 : (size_t)threads;
    while (t > 1 && work / t < (1u << 16))
        t--;
    return t;
}

lq_status rt_linear_forward(const rt_linear *l, const float *x, size_t n, uint64_t r0, uint64_t r1, float *y,
                            size_t ldy, int threads)
{
    if (!l || !x || !y || r0 > r1 || r1 > l->rows || threads < 1)
        return LQ_ERR_INVALID_ARGUMENT;
    uint64_t rows = r1 - r0;
    fwd_job j;
    j.l = l, j.x = x, j.n = n, j.r0 = r0, j.rows = rows, j.y = y, j.ldy = ldy;
    j.parts = rt_parts(rows * l->cols * (uint64_t)n, threads);
    if (j.parts > rows)
        j.parts = rows ? (size_t)rows : 1;
    lq_parallel_for(j.parts, (int)j.parts, fwd_task, &j);
    for (size_t i = 0; i < j.parts; i++)
        if (j.st[i] != LQ_OK)
            return j.st[i];
    return LQ_OK;
}
