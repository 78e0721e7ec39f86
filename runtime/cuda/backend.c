/* The CUDA backend (backend.h) on one GPU: the MiMo forward and the DFlash drafter of the CPU
 * backend (runtime/cpu/backend.c), op for op, on the kernels of kernels/.
 *
 * Weights are uploaded as stored, tensor by tensor (MXFP4 stays codes + E8M0 scales, FP8 stays FP8
 * with its scale grid widened to f32, BF16 stays BF16; a layer's experts are packed into one
 * buffer per projection), each tensor's values checked just before its upload (the CPU value pass
 * is off for this backend: rt_weights_opts.check_values = 0). Small vectors (norms, sinks, router,
 * biases) are widened to f32.
 *
 * Precision (rt_model_opts.fp32 = 0): BF16 activations into every matrix product (the FP8 ones
 * too: no FP8 activation quantization), fp32 accumulation, fp32 residual stream, router input,
 * softmax and logits, and an fp32 KV cache (rt_model_opts.kv_bf16 = 1: BF16, half the memory; on
 * the H100, BF16 KV with BF16 products put nano's held-out perplexity 6.8e-4 from the CPU's, over
 * the 5e-4 bound, and emulating each rounding on the CPU showed the KV cache's share as large as
 * the products'). With fp32 = 1 (the debug mode) activations and the KV cache are fp32 and the
 * products run on CUDA cores: that mode is held to the CPU oracle within 1e-4 relative L2 and
 * localises GPU-only bugs.
 *
 * A step: the tokens and the first position are copied to the device, the forward runs as a
 * sequence of launches on one stream, and the host synchronises once at the end, for the argmax ids
 * of the kept rows and the non-finite flag. Every buffer is allocated with its context. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/kn.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/router.h"
#include "kernels/sample.h"
#include "runtime/backend.h"

#define R RT_STEP_CHUNK

/* ============================== device memory ============================== */

typedef struct dmem {
    void **p;
    size_t n, cap;
    size_t bytes;
} dmem;

static lq_status dm_alloc(dmem *m, size_t bytes, void **out, const char *what, lq_error *err)
{
    *out = NULL;
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 256;
        void **np = realloc(m->p, nc * sizeof(void *));
        if (!np)
            return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, what, "RT_NO_MEMORY", "out of host memory");
        m->p = np, m->cap = nc;
    }
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *out = NULL;
        return lq_fail(err, e == cudaErrorMemoryAllocation ? LQ_ERR_NO_MEMORY : LQ_ERR_CUDA, NULL, what,
                       e == cudaErrorMemoryAllocation ? "RT_DEVICE_OOM" : "CUDA",
                       "cannot allocate %zu bytes on the device (%zu already held): %s", bytes, m->bytes,
                       cudaGetErrorString(e));
    }
    m->p[m->n++] = *out;
    m->bytes += bytes;
    return LQ_OK;
}

static void dm_free(dmem *m)
{
    for (size_t i = 0; i < m->n; i++)
        cudaFree(m->p[i]);
    free(m->p);
    memset(m, 0, sizeof(*m));
}

static lq_status cu_check(cudaError_t e, const char *what, lq_error *err)
{
    return e == cudaSuccess ? LQ_OK : kn_cuda_fail(e, what, err);
}

#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        lq_status st_ = (x);                                                                                           \
        if (st_ != LQ_OK)                                                                                              \
            return st_;                                                                                                \
    } while (0)

/* ============================== upload ============================== */

typedef struct cu_be {
    const rt_weights *w;
    const lq_mimo_config *c;
    kn_ctx k;
    dmem mem;
    int fp32, window_inclusive;
    int kv_f32; /* KV cache element type: fp32 (default, and always with fp32) or BF16 (kv_bf16) */
    double max_abs;
    int check;
    rt_prof *prof;
    struct cu_layer *L;
    kn_weight embed, lm_head;
    float *final_norm;
    uint64_t bytes_token; /* weight bytes one decode token reads (dense + attention + K experts + head) */
    uint64_t mq, mk, mv, matt, mqkv, mI;
    double copy_gbps;
    int graphs; /* capture steps and drafts into CUDA graphs (MIMO_CUDA_GRAPHS=0: launch directly) */
} cu_be;

/* ============================== graphs ============================== */

/* A context keeps at most CU_GRAPHS instantiated graphs, one per step shape (rows in, logits rows
 * kept, taps; for a fused DFlash iteration, the block and the pending rows): decode and verify need
 * one each and DFlash at most one per pending-row count, so a run instantiates a bounded number.
 * Everything that changes between replays (tokens, position, anchor) is copied from pinned host
 * memory by the graph's own copy nodes, and kernels read the position on the device. */
#define CU_GRAPHS 24
typedef struct cu_graph {
    int used;
    uint64_t key;
    cudaGraphExec_t exec;
} cu_graph;

static void graphs_free(cu_graph *g)
{
    for (int i = 0; i < CU_GRAPHS; i++)
        if (g[i].used)
            cudaGraphExecDestroy(g[i].exec);
}

/* Runs body on stream s: replays the graph of `key` when there is one, else captures body into a
 * new graph (when a slot is free) and launches it, else runs body directly. */
static lq_status run_graph(cu_graph *gs, int on, uint64_t key, cudaStream_t s, lq_status (*body)(void *, lq_error *),
                           void *arg, lq_error *err)
{
    if (!on)
        return body(arg, err);
    int slot = -1;
    for (int i = 0; i < CU_GRAPHS; i++) {
        if (gs[i].used && gs[i].key == key)
            return cu_check(cudaGraphLaunch(gs[i].exec, s), "graph launch", err);
        if (!gs[i].used && slot < 0)
            slot = i;
    }
    if (slot < 0)
        return body(arg, err);
    TRY(cu_check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "graph capture", err));
    lq_status st = body(arg, err);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(s, &g);
    if (st != LQ_OK) {
        if (g)
            cudaGraphDestroy(g);
        cudaGetLastError();
        return st;
    }
    if (e != cudaSuccess)
        return kn_cuda_fail(e, "graph capture", err);
    cudaGraphExec_t exec;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess)
        return kn_cuda_fail(e, "graph instantiation", err);
    gs[slot].used = 1, gs[slot].key = key, gs[slot].exec = exec;
    return cu_check(cudaGraphLaunch(exec, s), "graph launch", err);
}

typedef struct cu_layer {
    kn_weight qkv, q, k, v, o, gate, up, down, eg, eu, ed;
    float *in_norm, *post_norm, *sinks, *router, *e_bias, *inv_freq;
} cu_layer;

static uint64_t row_bytes(kn_wfmt f, uint64_t cols)
{
    switch (f) {
    case KN_W_BF16:
    case KN_W_F16:
        return cols * 2;
    case KN_W_F32:
        return cols * 4;
    case KN_W_MXFP4:
        return cols / 2;
    default:
        return cols;
    }
}

/* *f is written on every path (meaningful only with LQ_OK), so no caller can read it unset. */
static lq_status wfmt_of(const rt_linear *l, kn_wfmt *f, lq_error *err)
{
    *f = KN_W_BF16;
    if (l->fmt == RT_W_MXFP4) {
        *f = KN_W_MXFP4;
        return LQ_OK;
    }
    if (l->fmt == RT_W_FP8) {
        if (l->grid.block_r != 128 || l->grid.block_c != 128)
            return lq_fail(err, LQ_ERR_UNSUPPORTED, l->file, l->name, "RT_FORMAT",
                           "FP8 scale blocks of %ux%u (the CUDA backend reads 128x128)", l->grid.block_r, l->grid.block_c);
        *f = l->dtype == LQ_DTYPE_F8_E5M2 ? KN_W_E5M2 : KN_W_E4M3;
        return LQ_OK;
    }
    switch (l->dtype) {
    case LQ_DTYPE_BF16: *f = KN_W_BF16; return LQ_OK;
    case LQ_DTYPE_F16: *f = KN_W_F16; return LQ_OK;
    case LQ_DTYPE_F32: *f = KN_W_F32; return LQ_OK;
    default:
        return lq_fail(err, LQ_ERR_UNSUPPORTED, l->file, l->name, "RT_FORMAT", "dtype %s", lq_dtype_name(l->dtype));
    }
}

static lq_status h2d(void *dst, const void *src, size_t bytes, const char *name, lq_error *err)
{
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? LQ_OK : lq_fail(err, LQ_ERR_CUDA, NULL, name, "CUDA", "upload: %s", cudaGetErrorString(e));
}

/* Uploads experts l[0..E) (E = 1: a plain weight) into one device weight. */
static lq_status up_linear(cu_be *be, const rt_linear *l, uint32_t E, kn_weight *d, lq_error *err)
{
    memset(d, 0, sizeof(*d));
    kn_wfmt f;
    TRY(wfmt_of(&l[0], &f, err));
    const uint64_t rows = l[0].rows, cols = l[0].cols;
    if (rows > UINT32_MAX || cols > UINT32_MAX)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, l->file, l->name, "RT_SHAPE", "%llu x %llu", (unsigned long long)rows,
                       (unsigned long long)cols);
    for (uint32_t e = 1; e < E; e++) {
        kn_wfmt fe;
        TRY(wfmt_of(&l[e], &fe, err));
        if (fe != f || l[e].rows != rows || l[e].cols != cols ||
            (f == KN_W_E4M3 || f == KN_W_E5M2 ? l[e].grid.shards != l[0].grid.shards || l[e].grid.srows != l[0].grid.srows : 0))
            return lq_fail(err, LQ_ERR_UNSUPPORTED, l[e].file, l[e].name, "RT_FORMAT",
                           "experts of one layer differ in format or shape (the CUDA backend packs them)");
    }
    const uint64_t wb = rows * row_bytes(f, cols);
    d->fmt = f, d->rows = (uint32_t)rows, d->cols = (uint32_t)cols, d->experts = E, d->w_stride = (wb + 255) / 256 * 256;
    void *dw;
    TRY(dm_alloc(&be->mem, d->w_stride * E, &dw, l->name, err));
    d->w = dw;
    uint8_t *dmx = NULL;
    float *dfs = NULL;
    float *tmp = NULL;
    uint64_t sn = 0;
    if (f == KN_W_MXFP4) {
        sn = rows * (cols / 32);
        d->s_stride = (sn + 255) / 256 * 256;
        TRY(dm_alloc(&be->mem, d->s_stride * E, (void **)&dmx, l->name, err));
        d->mx_scales = dmx;
    } else if (f == KN_W_E4M3 || f == KN_W_E5M2) {
        sn = l[0].grid.srows * l[0].grid.scols;
        d->s_stride = (sn + 63) / 64 * 64;
        d->scols = (uint32_t)l[0].grid.scols;
        TRY(dm_alloc(&be->mem, d->s_stride * E * sizeof(float), (void **)&dfs, l->name, err));
        d->fp8_scale = dfs;
        uint32_t *srow = malloc(rows * sizeof(uint32_t));
        tmp = malloc(sn * sizeof(float) + 4);
        void *ds = NULL;
        lq_status st = srow && tmp ? LQ_OK : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, l->name, "RT_NO_MEMORY", "out of memory");
        for (uint64_t r = 0; st == LQ_OK && r < rows; r++)
            srow[r] = (uint32_t)lq_fp8_grid_scale_row(&l[0].grid, r);
        if (st == LQ_OK)
            st = dm_alloc(&be->mem, rows * sizeof(uint32_t), &ds, l->name, err);
        if (st == LQ_OK)
            st = h2d(ds, srow, rows * sizeof(uint32_t), l->name, err);
        free(srow);
        if (st != LQ_OK) {
            free(tmp);
            return st;
        }
        d->fp8_srow = ds;
    }
    lq_status st = LQ_OK;
    for (uint32_t e = 0; e < E && st == LQ_OK; e++) {
        lq_pages_populate(l[e].w, wb);
        if (be->check && (st = rt_linear_check(&l[e], be->max_abs, err)) != LQ_OK)
            break;
        st = h2d((uint8_t *)dw + e * d->w_stride, l[e].w, wb, l[e].name, err);
        lq_pages_release(l[e].w, wb); /* host RSS stays bounded: the pages were read twice at most */
        if (st == LQ_OK && dmx)
            st = h2d(dmx + e * d->s_stride, l[e].mx_scales, sn, l[e].name, err);
        if (st == LQ_OK && dfs) {
            if ((st = lq_to_f32(l[e].fp8_scale_dtype, l[e].fp8_scale, sn, tmp)) != LQ_OK)
                st = lq_fail(err, st, l[e].scale_file, l[e].name, "RT_FORMAT", "scale dtype %s",
                             lq_dtype_name(l[e].fp8_scale_dtype));
            else
                st = h2d(dfs + e * d->s_stride, tmp, sn * sizeof(float), l[e].name, err);
        }
    }
    free(tmp);
    return st;
}

/* A small stored vector widened to f32 on the device (NULL when absent). */
static lq_status up_vec(cu_be *be, const rt_vec *v, float **out, lq_error *err)
{
    *out = NULL;
    if (!v->n)
        return LQ_OK;
    if (be->check)
        TRY(rt_vec_check(v, be->max_abs, err));
    float *tmp = malloc(v->n * sizeof(float));
    if (!tmp)
        return lq_fail(err, LQ_ERR_NO_MEMORY, v->file, v->name, "RT_NO_MEMORY", "out of memory");
    lq_status st = lq_to_f32(v->dtype, v->data, (size_t)v->n, tmp);
    if (st != LQ_OK)
        st = lq_fail(err, st, v->file, v->name, "RT_FORMAT", "cannot decode %s", lq_dtype_name(v->dtype));
    if (st == LQ_OK)
        st = dm_alloc(&be->mem, v->n * sizeof(float), (void **)out, v->name, err);
    if (st == LQ_OK)
        st = h2d(*out, tmp, v->n * sizeof(float), v->name, err);
    free(tmp);
    return st;
}

static lq_status up_inv_freq(cu_be *be, double theta, uint32_t rd, float **out, lq_error *err)
{
    *out = NULL;
    if (rd < 2)
        return LQ_OK;
    float tmp[1024];
    if (rd / 2 > 1024)
        return lq_fail(err, LQ_ERR_UNSUPPORTED, NULL, NULL, "RT_SHAPE", "rope dim %u", rd);
    kn_rope_inv_freq(theta, rd, tmp);
    TRY(dm_alloc(&be->mem, rd / 2 * sizeof(float), (void **)out, "inv_freq", err));
    return h2d(*out, tmp, rd / 2 * sizeof(float), "inv_freq", err);
}

static uint64_t wbytes(const kn_weight *d)
{
    if (!d->w)
        return 0;
    uint64_t b = (uint64_t)d->rows * row_bytes(d->fmt, d->cols);
    if (d->fmt == KN_W_MXFP4)
        b += (uint64_t)d->rows * d->cols / 32;
    return b;
}

static void cu_close(void *p)
{
    cu_be *be = p;
    if (!be)
        return;
    dm_free(&be->mem);
    if (be->k.stream)
        cudaStreamDestroy(be->k.stream);
    free(be->L);
    free(be);
}

static uint64_t umax(uint64_t a, uint64_t b) { return a > b ? a : b; }

static lq_status cu_open(const rt_weights *w, const rt_model_opts *o, void **out, lq_error *err)
{
    *out = NULL;
    cu_be *be = calloc(1, sizeof(*be));
    if (!be)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    be->w = w, be->c = &w->cfg;
    be->fp32 = o ? o->fp32 : 0;
    be->kv_f32 = be->fp32 || !(o && o->kv_bf16);
    be->window_inclusive = o ? o->window_inclusive : 0;
    be->max_abs = o && o->max_abs != 0 ? o->max_abs : RT_MAX_ABS_DEFAULT;
    be->check = 1;
    be->prof = o ? o->prof : NULL;
    /* Launches go to a stream of the backend's own (the legacy default stream cannot be captured
     * into a graph); uploads are synchronous copies, done before any launch reads them. */
    lq_status st = kn_ctx_init(&be->k, o ? o->device : 0, 0, err);
    cudaStream_t stream = NULL;
    if (st == LQ_OK && (st = cu_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream", err)) == LQ_OK)
        be->k.stream = stream;
    const char *g = getenv("MIMO_CUDA_GRAPHS");
    be->graphs = !(g && g[0] == '0');
    const lq_mimo_config *c = be->c;
    /* What the kernels cannot serve is refused here, naming the config key, not in a step. */
    const char *cfg = lq_ckpt_dir(w->ck);
    if (st == LQ_OK && c->n_routed_experts > KN_ROUTER_MAX_E)
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, cfg, "n_routed_experts", "RT_CONFIG",
                     "%u experts: the CUDA router serves at most %d", c->n_routed_experts, KN_ROUTER_MAX_E);
    if (st == LQ_OK && c->num_experts_per_tok > KN_ROUTER_MAX_K)
        st = lq_fail(err, LQ_ERR_UNSUPPORTED, cfg, "num_experts_per_tok", "RT_CONFIG",
                     "%u experts per token: the CUDA router serves at most %d", c->num_experts_per_tok, KN_ROUTER_MAX_K);
    for (uint32_t i = 0; st == LQ_OK && i < c->num_hidden_layers; i++) {
        const rt_wlayer *W = &w->L[i];
        if (W->dqk > KN_ATTENTION_MAX_DIM || W->dv > KN_ATTENTION_MAX_DIM || W->dqk % 2 || W->dv % 2 || W->nq > 65535)
            st = lq_fail(err, LQ_ERR_UNSUPPORTED, cfg, "head_dim", "RT_CONFIG",
                         "layer %u: heads of %u (q/k) and %u (v) dims, %u query heads: the CUDA attention serves even "
                         "head dims up to %u and at most 65535 heads", i, W->dqk, W->dv, W->nq, KN_ATTENTION_MAX_DIM);
    }
    if (st == LQ_OK && !(be->L = calloc(c->num_hidden_layers, sizeof(cu_layer))))
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    if (st == LQ_OK)
        st = up_linear(be, &w->embed, 1, &be->embed, err);
    if (st == LQ_OK)
        st = up_linear(be, &w->lm_head, 1, &be->lm_head, err);
    if (st == LQ_OK)
        st = up_vec(be, &w->final_norm, &be->final_norm, err);
    be->mI = umax(c->intermediate_size, c->moe_intermediate_size);
    uint64_t tok = wbytes(&be->lm_head);
    const uint32_t K = c->num_experts_per_tok ? c->num_experts_per_tok : 1;
    for (uint32_t i = 0; st == LQ_OK && i < c->num_hidden_layers; i++) {
        const rt_wlayer *W = &w->L[i];
        cu_layer *L = &be->L[i];
        if (W->fused)
            st = up_linear(be, &W->qkv, 1, &L->qkv, err);
        else if ((st = up_linear(be, &W->q, 1, &L->q, err)) == LQ_OK && (st = up_linear(be, &W->k, 1, &L->k, err)) == LQ_OK)
            st = up_linear(be, &W->v, 1, &L->v, err);
        if (st == LQ_OK)
            st = up_linear(be, &W->o, 1, &L->o, err);
        if (st == LQ_OK && !W->moe && (st = up_linear(be, &W->gate, 1, &L->gate, err)) == LQ_OK &&
            (st = up_linear(be, &W->up, 1, &L->up, err)) == LQ_OK)
            st = up_linear(be, &W->down, 1, &L->down, err);
        if (st == LQ_OK && W->moe && (st = up_linear(be, W->eg, c->n_routed_experts, &L->eg, err)) == LQ_OK &&
            (st = up_linear(be, W->eu, c->n_routed_experts, &L->eu, err)) == LQ_OK)
            st = up_linear(be, W->ed, c->n_routed_experts, &L->ed, err);
        if (st == LQ_OK && (st = up_vec(be, &W->in_norm, &L->in_norm, err)) == LQ_OK &&
            (st = up_vec(be, &W->post_norm, &L->post_norm, err)) == LQ_OK &&
            (st = up_vec(be, &W->sinks, &L->sinks, err)) == LQ_OK && (st = up_vec(be, &W->router, &L->router, err)) == LQ_OK &&
            (st = up_vec(be, &W->e_bias, &L->e_bias, err)) == LQ_OK)
            st = up_inv_freq(be, W->theta, W->rope_dim, &L->inv_freq, err);
        if (st != LQ_OK)
            break;
        uint64_t qr = (uint64_t)W->nq * W->dqk, kr = (uint64_t)W->nkv * W->dqk, vr = (uint64_t)W->nkv * W->dv;
        be->mq = umax(be->mq, qr), be->mk = umax(be->mk, kr), be->mv = umax(be->mv, vr);
        be->matt = umax(be->matt, (uint64_t)W->nq * W->dv), be->mqkv = umax(be->mqkv, qr + kr + vr);
        tok += wbytes(&L->qkv) + wbytes(&L->q) + wbytes(&L->k) + wbytes(&L->v) + wbytes(&L->o);
        if (W->moe)
            tok += (wbytes(&L->eg) + wbytes(&L->eu) + wbytes(&L->ed)) * K + W->router.n * 4;
        else
            tok += wbytes(&L->gate) + wbytes(&L->up) + wbytes(&L->down);
    }
    be->bytes_token = tok;
    if (st != LQ_OK) {
        cu_close(be);
        return st;
    }
    *out = be;
    return LQ_OK;
}

/* ============================== contexts ============================== */

typedef struct cu_kv {
    void *k, *v;
    size_t slots;
    uint64_t kr, vr;
} cu_kv;

/* Host-side values a step copies to and from the device (pinned). */
typedef struct cu_io {
    int32_t tokens[R];
    uint32_t pos;
    int32_t ids[R];
    int nonfinite;
    int32_t acc[2 + RT_MAX_BLOCK + 1]; /* a fused DFlash iteration's result: a, bonus, drafts, flag */
} cu_io;

typedef struct cu_ctx {
    cu_be *be;
    dmem mem;
    size_t cap;
    uint32_t layers;
    cu_kv *kv;
    size_t eb;  /* activation element bytes: 2 (bf16) or 4 */
    size_t kvb; /* KV cache element bytes: 2 (bf16) or 4 */
    /* device workspace of R rows */
    float *h, *y, *xnf, *q, *k, *v, *qkv, *ea, *eb_, *ye, *wsel, *keep, *tap;
    void *xnb, *att, *eact; /* bf16 or f32 per mode */
    int32_t *tokens, *sel, *gexp, *goff, *gcnt, *pair_tok, *pair_of, *ids, *acc;
    uint32_t *pos, *ng;
    int *flag;
    void *aws;
    size_t aws_bytes;
    uint32_t slots; /* expert-group grid slots */
    cu_io *io;      /* pinned */
    /* kept rows */
    size_t nkeep, ntap_rows;
    uint32_t ntaps, taps[64];
    cu_graph graphs[CU_GRAPHS];
    /* host scratch for sampling at temperature > 0 */
    float *hrows;
    double *probs;
    uint32_t *idx;
} cu_ctx;

static void cu_ctx_free(void *p)
{
    cu_ctx *x = p;
    if (!x)
        return;
    graphs_free(x->graphs);
    dm_free(&x->mem);
    if (x->io)
        cudaFreeHost(x->io);
    free(x->kv), free(x->hrows), free(x->probs), free(x->idx);
    free(x);
}

static lq_status cu_ctx_new(void *p, size_t max_tokens, const rt_cache_opts *o, void **out, lq_error *err)
{
    cu_be *be = p;
    const lq_mimo_config *c = be->c;
    *out = NULL;
    cu_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    x->be = be, x->cap = max_tokens, x->layers = c->num_hidden_layers, x->eb = be->fp32 ? 4 : 2;
    x->kvb = be->kv_f32 ? 4 : 2;
    lq_status st = cudaSetDevice(be->k.device) == cudaSuccess ? LQ_OK : kn_launched("cudaSetDevice", err);
    if (st == LQ_OK && !(x->kv = calloc(x->layers, sizeof(cu_kv))))
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    if (st == LQ_OK && o && o->ntaps) {
        if (o->ntaps > 64 || !o->taps)
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP", "%u taps (at most 64)", o->ntaps);
        else
            x->ntaps = o->ntaps, memcpy(x->taps, o->taps, o->ntaps * sizeof(uint32_t));
    }
    const size_t ring = (size_t)c->sliding_window + 1 + (RT_STEP_CHUNK > RT_MAX_ROLLBACK ? RT_STEP_CHUNK : RT_MAX_ROLLBACK);
    uint32_t mnq = 1, mdv = 1;
    for (uint32_t l = 0; st == LQ_OK && l < x->layers; l++) {
        const rt_wlayer *L = &be->w->L[l];
        cu_kv *kv = &x->kv[l];
        kv->slots = L->swa && !(o && o->no_ring) && ring < max_tokens ? ring : max_tokens;
        kv->kr = (uint64_t)L->nkv * L->dqk, kv->vr = (uint64_t)L->nkv * L->dv;
        if ((st = dm_alloc(&x->mem, kv->slots * kv->kr * x->kvb, &kv->k, "KV cache", err)) == LQ_OK)
            st = dm_alloc(&x->mem, kv->slots * kv->vr * x->kvb, &kv->v, "KV cache", err);
        mnq = L->nq > mnq ? L->nq : mnq, mdv = L->dv > mdv ? L->dv : mdv;
    }
    const uint64_t H = c->hidden_size, V = c->vocab_size;
    const uint32_t E = c->n_routed_experts ? c->n_routed_experts : 1, K = c->num_experts_per_tok ? c->num_experts_per_tok : 1;
    const uint64_t P = (uint64_t)R * K; /* expert pairs of one chunk */
    x->slots = (uint32_t)(P < E ? P : E);
#define A(ptr, bytes, what)                                                                                            \
    if (st == LQ_OK)                                                                                                   \
    st = dm_alloc(&x->mem, (size_t)(bytes), (void **)&(ptr), what, err)
    A(x->h, R * H * 4, "workspace"); A(x->y, R * H * 4, "workspace"); A(x->xnf, R * H * 4, "workspace");
    A(x->xnb, R * H * x->eb, "workspace");
    A(x->q, R * be->mq * 4, "workspace"); A(x->k, R * be->mk * 4, "workspace"); A(x->v, R * be->mv * 4, "workspace");
    A(x->qkv, R * be->mqkv * 4, "workspace"); A(x->att, R * be->matt * x->eb, "workspace");
    A(x->ea, P * be->mI * 4, "workspace"); A(x->eb_, P * be->mI * 4, "workspace"); A(x->eact, P * be->mI * x->eb, "workspace");
    A(x->ye, P * H * 4, "workspace"); A(x->wsel, R * K * 4, "workspace"); A(x->sel, R * K * 4, "workspace");
    A(x->gexp, x->slots * 4, "workspace"); A(x->goff, x->slots * 4, "workspace"); A(x->gcnt, x->slots * 4, "workspace");
    A(x->pair_tok, P * 4, "workspace"); A(x->pair_of, P * 4, "workspace"); A(x->ng, 4, "workspace");
    A(x->tokens, R * 4, "workspace"); A(x->pos, 4, "workspace"); A(x->acc, sizeof(x->io->acc), "workspace"); A(x->ids, R * 4, "workspace"); A(x->flag, 4, "workspace");
    A(x->keep, (size_t)RT_KEEP_ROWS * V * 4, "logits");
    if (x->ntaps)
        A(x->tap, (size_t)R * x->ntaps * H * 4, "tap rows");
    x->aws_bytes = kn_attention_workspace_bytes(R, mnq, mdv, (uint32_t)max_tokens);
    A(x->aws, x->aws_bytes, "attention workspace");
#undef A
    if (st == LQ_OK && cudaMallocHost((void **)&x->io, sizeof(cu_io)) != cudaSuccess)
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "RT_NO_MEMORY", "cannot pin host memory");
    if (st == LQ_OK && (!(x->probs = malloc(V * sizeof(double))) || !(x->idx = malloc(V * sizeof(uint32_t))) ||
                        !(x->hrows = malloc((size_t)RT_KEEP_ROWS * V * sizeof(float)))))
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "RT_NO_MEMORY", "out of memory");
    if (st != LQ_OK) {
        cu_ctx_free(x);
        if (err && err->status == LQ_ERR_NO_MEMORY)
            snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg), " (a context of %zu tokens)",
                     max_tokens);
        return st;
    }
    *out = x;
    return LQ_OK;
}

static size_t cu_ctx_bytes(const void *p)
{
    const cu_ctx *x = p;
    size_t b = 0;
    for (uint32_t l = 0; l < x->layers; l++)
        b += x->kv[l].slots * (x->kv[l].kr + x->kv[l].vr) * x->kvb;
    return b;
}

static lq_status cu_ctx_copy(void *d, const void *s, size_t len)
{
    cu_ctx *dst = d;
    const cu_ctx *src = s;
    if (dst->layers != src->layers || dst->cap != src->cap || dst->kvb != src->kvb)
        return LQ_ERR_INVALID_ARGUMENT;
    for (uint32_t l = 0; l < src->layers; l++) {
        const cu_kv *a = &src->kv[l];
        if (dst->kv[l].slots != a->slots)
            return LQ_ERR_INVALID_ARGUMENT;
        size_t used = len < a->slots ? len : a->slots;
        if (cudaMemcpy(dst->kv[l].k, a->k, used * a->kr * src->kvb, cudaMemcpyDeviceToDevice) != cudaSuccess ||
            cudaMemcpy(dst->kv[l].v, a->v, used * a->vr * src->kvb, cudaMemcpyDeviceToDevice) != cudaSuccess)
            return LQ_ERR_CUDA;
    }
    return LQ_OK;
}

/* ============================== the forward ============================== */

static lq_status lin(cu_be *be, const kn_weight *W, const void *x, uint32_t ldx, uint32_t n, float *y, uint32_t ldy,
                     const float *bias, lq_error *err)
{
    kn_linear_args a;
    memset(&a, 0, sizeof(a));
    a.W = W, a.x = x, a.x_f32 = be->fp32, a.ldx = ldx, a.n = n, a.y = y, a.ldy = ldy, a.bias = bias;
    return kn_linear(&be->k, &a, err);
}

static lq_status norm(cu_be *be, float *h, const float *add, const float *w, uint32_t n, uint32_t dim, double eps,
                      float *yf, void *yb, lq_error *err)
{
    kn_rmsnorm_args a;
    memset(&a, 0, sizeof(a));
    a.h = h, a.ldh = dim, a.add = add, a.ld_add = dim, a.w = w, a.n = n, a.dim = dim, a.eps = eps, a.y_f32 = yf;
    a.y_bf16 = yb, a.ldy = dim;
    return kn_rmsnorm(&be->k, &a, err);
}

static lq_status head_prep(cu_be *be, float *x, uint32_t n, uint32_t heads, uint32_t d, const float *nw, double eps,
                           uint32_t rd, const float *inv, const uint32_t *pos, float scale, lq_error *err)
{
    kn_head_prep_args a;
    memset(&a, 0, sizeof(a));
    a.x = x, a.ldx = heads * d, a.n = n, a.heads = heads, a.d = d, a.norm_w = nw, a.eps = eps, a.rd = inv ? rd : 0;
    a.inv_freq = inv, a.pos = pos, a.scale = scale;
    return kn_head_prep(&be->k, &a, err);
}

static lq_status swiglu(cu_be *be, const float *a_, const float *b_, uint32_t n, uint32_t I, void *out, lq_error *err)
{
    kn_swiglu_act_args a;
    memset(&a, 0, sizeof(a));
    a.a = a_, a.b = b_, a.lda = I, a.ldb = I, a.n = n, a.I = I, a.out = out, a.out_bf16 = !be->fp32, a.ldo = I;
    return kn_swiglu_act(&be->k, &a, err);
}

/* The activations a matrix product reads: bf16 or f32 by mode. */
static void *act_x(cu_ctx *x, void *b, float *f) { return x->be->fp32 ? (void *)f : b; }

static lq_status d2h(void *dst, const void *src, size_t bytes, cudaStream_t s, lq_error *err)
{
    return cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "device-to-host copy", err);
}

static lq_status attention(cu_be *be, cu_ctx *x, uint32_t li, uint32_t n, lq_error *err)
{
    const lq_mimo_config *c = be->c;
    const rt_wlayer *W = &be->w->L[li];
    cu_layer *L = &be->L[li];
    const uint32_t qr = W->nq * W->dqk, kr = W->nkv * W->dqk, vr = W->nkv * W->dv, H = c->hidden_size;
    void *xn = act_x(x, x->xnb, x->xnf);
    if (W->fused) {
        uint32_t rows = qr + kr + vr;
        TRY(lin(be, &L->qkv, xn, H, n, x->qkv, rows, NULL, err));
        kn_qkv_split_args s;
        memset(&s, 0, sizeof(s));
        s.y = x->qkv, s.ld = rows, s.n = n, s.shards = be->w->qkv_shards, s.qr = qr, s.kr = kr, s.vr = vr;
        s.q = x->q, s.k = x->k, s.v = x->v;
        TRY(kn_qkv_split(&be->k, &s, err));
    } else {
        TRY(lin(be, &L->q, xn, H, n, x->q, qr, NULL, err));
        TRY(lin(be, &L->k, xn, H, n, x->k, kr, NULL, err));
        TRY(lin(be, &L->v, xn, H, n, x->v, vr, NULL, err));
    }
    TRY(head_prep(be, x->q, n, W->nq, W->dqk, NULL, 0, W->rope_dim, L->inv_freq, x->pos, 1.0f, err));
    TRY(head_prep(be, x->k, n, W->nkv, W->dqk, NULL, 0, W->rope_dim, L->inv_freq, x->pos, 1.0f, err));
    TRY(head_prep(be, x->v, n, W->nkv, W->dv, NULL, 0, 0, NULL, x->pos, (float)c->attention_value_scale, err));
    kn_kv_store_args ks;
    memset(&ks, 0, sizeof(ks));
    ks.k = x->k, ks.ldk = kr, ks.v = x->v, ks.ldv = vr, ks.n = n, ks.kr = kr, ks.vr = vr, ks.kc = x->kv[li].k;
    ks.vc = x->kv[li].v, ks.kv_f32 = be->kv_f32, ks.slots = (uint32_t)x->kv[li].slots, ks.pos = x->pos;
    TRY(kn_kv_store(&be->k, &ks, err));
    kn_attention_args a;
    memset(&a, 0, sizeof(a));
    a.q = x->q, a.ldq = qr, a.n = n, a.kc = x->kv[li].k, a.vc = x->kv[li].v, a.kv_f32 = be->kv_f32;
    a.slots = (uint32_t)x->kv[li].slots, a.pos = x->pos, a.nq = W->nq, a.nkv = W->nkv, a.dqk = W->dqk, a.dv = W->dv;
    a.span = W->swa ? (be->window_inclusive ? c->sliding_window + 1 : c->sliding_window) : 0;
    a.max_keys = (uint32_t)(a.span && a.span < x->kv[li].slots ? a.span : x->kv[li].slots), a.sinks = L->sinks, a.scale = 1.0f / sqrtf((float)W->dqk);
    a.out = x->att, a.out_bf16 = !be->fp32, a.ldo = W->nq * W->dv, a.ws = x->aws, a.ws_bytes = x->aws_bytes;
    TRY(kn_attention(&be->k, &a, err));
    return lin(be, &L->o, x->att, W->nq * W->dv, n, x->y, H, NULL, err);
}

static lq_status mlp(cu_be *be, cu_ctx *x, uint32_t li, uint32_t n, int32_t *route, lq_error *err)
{
    const lq_mimo_config *c = be->c;
    const rt_wlayer *W = &be->w->L[li];
    cu_layer *L = &be->L[li];
    const uint32_t H = c->hidden_size;
    void *xn = act_x(x, x->xnb, x->xnf);
    if (!W->moe) {
        const uint32_t I = L->gate.rows;
        TRY(lin(be, &L->gate, xn, H, n, x->ea, I, NULL, err));
        TRY(lin(be, &L->up, xn, H, n, x->eb_, I, NULL, err));
        TRY(swiglu(be, x->ea, x->eb_, n, I, x->eact, err));
        return lin(be, &L->down, x->eact, I, n, x->y, H, NULL, err);
    }
    const uint32_t E = c->n_routed_experts, K = c->num_experts_per_tok, I = L->eg.rows;
    kn_router_args r;
    memset(&r, 0, sizeof(r));
    r.x = x->xnf, r.ldx = H, r.n = n, r.H = H, r.w = L->router, r.bias = L->e_bias, r.E = E, r.K = K;
    r.n_group = c->n_group, r.topk_group = c->topk_group, r.norm = c->norm_topk_prob, r.scaling = c->routed_scaling_factor;
    r.sel = x->sel, r.wsel = x->wsel;
    TRY(kn_router(&be->k, &r, err));
    if (route)
        TRY(d2h(route, x->sel, (size_t)n * K * 4, be->k.stream, err));
    kn_moe_plan_args pl;
    memset(&pl, 0, sizeof(pl));
    pl.sel = x->sel, pl.n = n, pl.K = K, pl.E = E, pl.slots = x->slots, pl.gexp = x->gexp, pl.goff = (uint32_t *)x->goff;
    pl.gcnt = (uint32_t *)x->gcnt, pl.ng = x->ng, pl.pair_tok = x->pair_tok, pl.pair_of = (uint32_t *)x->pair_of;
    TRY(kn_moe_plan(&be->k, &pl, err));
    kn_linear_args a;
    memset(&a, 0, sizeof(a));
    a.x_f32 = be->fp32, a.n = n * K, a.gexp = x->gexp, a.goff = x->goff, a.gcnt = x->gcnt, a.slots = x->slots;
    a.W = &L->eg, a.x = xn, a.ldx = H, a.xmap = x->pair_tok, a.y = x->ea, a.ldy = I;
    TRY(kn_linear(&be->k, &a, err));
    a.W = &L->eu, a.y = x->eb_;
    TRY(kn_linear(&be->k, &a, err));
    TRY(swiglu(be, x->ea, x->eb_, n * K, I, x->eact, err));
    a.W = &L->ed, a.x = x->eact, a.ldx = I, a.xmap = NULL, a.y = x->ye, a.ldy = H;
    TRY(kn_linear(&be->k, &a, err));
    kn_moe_combine_args cb;
    memset(&cb, 0, sizeof(cb));
    cb.ye = x->ye, cb.ldye = H, cb.wsel = x->wsel, cb.sel = x->sel, cb.pair_of = (const uint32_t *)x->pair_of, cb.n = n, cb.K = K, cb.H = H;
    cb.y = x->y, cb.ldy = H;
    return kn_moe_combine(&be->k, &cb, err);
}

/* One chunk of n <= R tokens at p0.., rows off.. of a step of ld (the CPU backend's chunk()). */
static lq_status chunk(cu_be *be, cu_ctx *x, size_t p0, const int32_t *tokens, uint32_t n, size_t off, size_t ld,
                       const rt_sel *sel, lq_error *err)
{
    const lq_mimo_config *c = be->c;
    const uint32_t H = c->hidden_size, V = c->vocab_size, NL = c->num_hidden_layers;
    const uint32_t K = c->num_experts_per_tok ? c->num_experts_per_tok : 1;
    cudaStream_t s = be->k.stream;
    if (tokens) { /* NULL: a fused DFlash iteration put them on the device */
        memcpy(x->io->tokens, tokens, n * sizeof(int32_t));
        TRY(cu_check(cudaMemcpyAsync(x->tokens, x->io->tokens, n * 4, cudaMemcpyHostToDevice, s), "token upload", err));
    }
    x->io->pos = (uint32_t)p0;
    TRY(cu_check(cudaMemcpyAsync(x->pos, &x->io->pos, 4, cudaMemcpyHostToDevice, s), "position upload", err));
    kn_embed_args e = {&be->embed, x->tokens, n, x->h, H};
    TRY(kn_embed(&be->k, &e, err));
    if (sel->hidden)
        TRY(d2h(sel->hidden + off * H, x->h, (size_t)n * H * 4, s, err));
    for (uint32_t li = 0; li <= NL; li++) {
        /* h += the previous layer's MLP output, then this layer's input norm (or the final norm) */
        const float *w = li < NL ? be->L[li].in_norm : be->final_norm;
        TRY(norm(be, x->h, li ? x->y : NULL, w, n, H, c->rms_norm_eps, x->xnf, be->fp32 ? NULL : x->xnb, err));
        if (li) { /* h is now the residual stream after layer li - 1 */
            if (sel->hidden && li < NL)
                TRY(d2h(sel->hidden + ((uint64_t)li * ld + off) * H, x->h, (size_t)n * H * 4, s, err));
            for (uint32_t ti = 0; ti < x->ntaps; ti++)
                if (x->taps[ti] == li - 1) {
                    if (sel->taps)
                        TRY(cu_check(cudaMemcpy2DAsync(x->tap + (off * x->ntaps + ti) * H, (size_t)x->ntaps * H * 4, x->h,
                                                       (size_t)H * 4, (size_t)H * 4, n, cudaMemcpyDeviceToDevice, s),
                                     "tap copy", err));
                    if (sel->tap_out)
                        TRY(cu_check(cudaMemcpy2DAsync(sel->tap_out + (off * x->ntaps + ti) * H, (size_t)x->ntaps * H * 4,
                                                       x->h, (size_t)H * 4, (size_t)H * 4, n, cudaMemcpyDeviceToHost, s),
                                     "tap copy", err));
                }
        }
        if (li == NL)
            break;
        TRY(attention(be, x, li, n, err));
        TRY(norm(be, x->h, x->y, be->L[li].post_norm, n, H, c->rms_norm_eps, x->xnf, be->fp32 ? NULL : x->xnb, err));
        int32_t *route = sel->experts ? sel->experts + ((uint64_t)li * ld + off) * K : NULL;
        if (route && !be->w->L[li].moe)
            for (size_t i = 0; i < (size_t)n * K; i++)
                route[i] = -1;
        TRY(mlp(be, x, li, n, be->w->L[li].moe ? route : NULL, err));
    }
    if (sel->hidden)
        TRY(d2h(sel->hidden + ((uint64_t)NL * ld + off) * H, x->xnf, (size_t)n * H * 4, s, err));
    /* rows [first, n) of this chunk are selected for logits */
    size_t sel0 = ld - sel->rows, first = sel0 > off ? sel0 - off : 0;
    if (first > n)
        first = n;
    if (first < n) {
        size_t r0 = off + first - sel0, nr = n - first;
        float *dst = sel->rows <= RT_KEEP_ROWS ? x->keep + r0 * V : x->keep;
        const void *xn = be->fp32 ? (const void *)(x->xnf + first * H) : (const void *)((uint16_t *)x->xnb + first * H);
        TRY(lin(be, &be->lm_head, xn, H, (uint32_t)nr, dst, V, NULL, err));
        kn_argmax_args am = {.logits = dst, .ids = x->ids + (sel->rows <= RT_KEEP_ROWS ? r0 : 0), .nonfinite = x->flag,
                             .rows = (uint32_t)nr, .V = V, .ld = V};
        TRY(kn_argmax(&be->k, &am, err));
        if (sel->logits)
            TRY(d2h(sel->logits + r0 * V, dst, nr * V * 4, s, err));
        if (sel->rows > RT_KEEP_ROWS && sel->ids)
            TRY(d2h(sel->ids + r0, x->ids, nr * 4, s, err));
    }
    return LQ_OK;
}

typedef struct step_args {
    cu_be *be;
    cu_ctx *x;
    size_t pos;
    const int32_t *tokens;
    size_t n;
    const rt_sel *sel;
} step_args;

/* Everything a step puts on the stream: captured into a graph or run directly. */
static lq_status step_body(void *arg, lq_error *err)
{
    step_args *a = arg;
    cu_be *be = a->be;
    cu_ctx *x = a->x;
    const rt_sel *sel = a->sel;
    cudaStream_t s = be->k.stream;
    TRY(cu_check(cudaMemsetAsync(x->flag, 0, sizeof(int), s), "flag reset", err));
    for (size_t off = 0; off < a->n; off += R) {
        /* a longer step (never captured) rewrites the pinned tokens and position per chunk: the
         * previous chunk's copies must have run first */
        if (off)
            TRY(cu_check(cudaStreamSynchronize(s), "step", err));
        TRY(chunk(be, x, a->pos + off, a->tokens + off, (uint32_t)(a->n - off < R ? a->n - off : R), off, a->n, sel, err));
    }
    if (sel->rows && sel->rows <= RT_KEEP_ROWS)
        TRY(d2h(x->io->ids, x->ids, sel->rows * 4, s, err));
    return d2h(&x->io->nonfinite, x->flag, sizeof(int), s, err);
}

static lq_status cu_step(void *p, void *ctx, size_t pos, const int32_t *tokens, size_t n, const rt_sel *sel, int threads,
                         lq_error *err)
{
    cu_be *be = p;
    cu_ctx *x = ctx;
    (void)threads;
    x->nkeep = 0, x->ntap_rows = 0;
    cudaStream_t s = be->k.stream;
    x->io->nonfinite = 0;
    step_args sa = {be, x, pos, tokens, n, sel};
    /* A single chunk whose outputs stay on the device or go to pinned memory runs as a graph. */
    const int graph = n <= R && !sel->hidden && !sel->tap_out && !sel->experts && !sel->logits;
    if (graph) {
        memcpy(x->io->tokens, tokens, n * sizeof(int32_t));
        x->io->pos = (uint32_t)pos;
    }
    TRY(run_graph(x->graphs, be->graphs && graph, (uint64_t)n | (uint64_t)sel->rows << 16 | (uint64_t)!!sel->taps << 32, s,
                  step_body, &sa, err));
    TRY(cu_check(cudaStreamSynchronize(s), "step", err));
    if (x->io->nonfinite)
        return lq_fail(err, LQ_ERR_NUMERIC, lq_ckpt_dir(be->w->ck), NULL, "RT_NONFINITE",
                       "non-finite logits among positions %zu..%zu: the weights or activations overflow", pos, pos + n - 1);
    if (sel->rows && sel->rows <= RT_KEEP_ROWS && sel->ids)
        memcpy(sel->ids, x->io->ids, sel->rows * 4);
    x->nkeep = sel->rows <= RT_KEEP_ROWS ? sel->rows : 0;
    x->ntap_rows = sel->taps ? n : 0;
    return LQ_OK;
}

static lq_status fetch_rows(cu_ctx *x, size_t rows, lq_error *err)
{
    const size_t V = x->be->c->vocab_size;
    return cu_check(cudaMemcpy(x->hrows, x->keep, rows * V * 4, cudaMemcpyDeviceToHost), "logits copy", err);
}

static lq_status cu_sample(void *p, void *ctx, size_t row, const rt_sampling *s, rt_rng *r, int32_t *id, lq_error *err)
{
    cu_ctx *x = ctx;
    uint32_t V = x->be->c->vocab_size;
    if (row >= x->nkeep)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "row %zu of %zu kept logits rows", row,
                       x->nkeep);
    if (s->temperature <= 0) { /* greedy: the step's argmax (rt_argmax's rule) */
        *id = x->io->ids[row];
        return LQ_OK;
    }
    TRY(fetch_rows(x, row + 1, err));
    *id = rt_sample(x->hrows + row * V, V, s, r, x->probs, x->idx);
    return LQ_OK;
}

static lq_status cu_accept(void *p, void *ctx, const int32_t *drafts, uint32_t k, const rt_sampling *s, rt_rng *r,
                           uint32_t *a, int32_t *bonus, lq_error *err)
{
    cu_ctx *x = ctx;
    uint32_t V = x->be->c->vocab_size;
    if (k + 1 > x->nkeep)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_SELECT", "%u drafts against %zu kept logits rows", k,
                       x->nkeep);
    if (s->temperature <= 0) {
        uint32_t i = 0;
        while (i < k && drafts[i] == x->io->ids[i])
            i++;
        *a = i, *bonus = x->io->ids[i];
        return LQ_OK;
    }
    TRY(fetch_rows(x, k + 1, err));
    *a = rt_accept(x->hrows, V, drafts, k, s, r, bonus, x->probs, x->idx);
    return LQ_OK;
}

/* ============================== drafter ============================== */

typedef struct cu_dlayer {
    kn_weight q, k, v, o, gate, up, down;
    float *in_norm, *post_norm, *q_norm, *k_norm, *sinks, *qb, *kb, *vb, *ob;
} cu_dlayer;

typedef struct cu_drafter {
    cu_be *be;
    const rt_dweights *dw;
    const lq_drafter_config *c;
    dmem mem;
    uint32_t H, Ht, nh, nkv, d, dv, rd, I;
    double vscale;
    kn_weight fc;
    float *hidden_norm, *norm, *mask_emb, *inv_freq;
    cu_dlayer *L;
} cu_drafter;

static void cu_drafter_close(void *p)
{
    cu_drafter *D = p;
    if (!D)
        return;
    dm_free(&D->mem);
    free(D->L);
    free(D);
}

static lq_status cu_drafter_open(void *p, const rt_dweights *dw, const rt_drafter_opts *o, void **out, lq_error *err)
{
    *out = NULL;
    cu_be *be = p;
    cu_drafter *D = calloc(1, sizeof(*D));
    if (!D)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    const lq_drafter_config *c = D->c = dw->c;
    D->be = be, D->dw = dw;
    D->H = c->hidden_size, D->Ht = dw->Ht, D->nh = c->num_attention_heads, D->nkv = c->num_key_value_heads;
    D->d = c->head_dim, D->dv = c->v_head_dim, D->rd = c->rope_dim, D->I = c->intermediate_size;
    D->vscale = c->attention_value_scale;
    double theta = o && o->rope_theta > 0 ? o->rope_theta : c->rope_theta;
    if (D->d > KN_ATTENTION_MAX_DIM || D->dv > KN_ATTENTION_MAX_DIM || D->d % 2 || D->dv % 2 || D->nh > 65535) {
        lq_fail(err, LQ_ERR_UNSUPPORTED, NULL, "head_dim", "RT_CONFIG",
                "drafter heads of %u (q/k) and %u (v) dims: the CUDA attention serves even head dims up to %u", D->d,
                D->dv, KN_ATTENTION_MAX_DIM);
        cu_drafter_close(D);
        return LQ_ERR_UNSUPPORTED;
    }
    /* the drafter's tensors were value-checked by lq_drafter_open; upload them as they are */
    dmem keep = be->mem;
    be->mem = D->mem;
    int check = be->check;
    be->check = 0;
    lq_status st = up_linear(be, &dw->fc, 1, &D->fc, err);
    if (st == LQ_OK && (st = up_vec(be, &dw->hidden_norm, &D->hidden_norm, err)) == LQ_OK &&
        (st = up_vec(be, &dw->norm, &D->norm, err)) == LQ_OK && (st = up_vec(be, &dw->mask_emb, &D->mask_emb, err)) == LQ_OK)
        st = up_inv_freq(be, theta, D->rd, &D->inv_freq, err);
    if (st == LQ_OK && !(D->L = calloc(c->num_hidden_layers, sizeof(cu_dlayer))))
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    for (uint32_t i = 0; st == LQ_OK && i < c->num_hidden_layers; i++) {
        const rt_dwlayer *W = &dw->L[i];
        cu_dlayer *L = &D->L[i];
        const rt_linear *ls[] = {&W->q, &W->k, &W->v, &W->o, &W->gate, &W->up, &W->down};
        kn_weight *ld[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t j = 0; st == LQ_OK && j < 7; j++)
            st = up_linear(be, ls[j], 1, ld[j], err);
        const rt_vec *src[] = {&W->in_norm, &W->post_norm, &W->q_norm, &W->k_norm, &W->sinks, &W->qb, &W->kb, &W->vb, &W->ob};
        float **dst[] = {&L->in_norm, &L->post_norm, &L->q_norm, &L->k_norm, &L->sinks, &L->qb, &L->kb, &L->vb, &L->ob};
        for (size_t j = 0; st == LQ_OK && j < 9; j++)
            st = up_vec(be, src[j], dst[j], err);
    }
    D->mem = be->mem;
    be->mem = keep;
    be->check = check;
    if (st != LQ_OK) {
        cu_drafter_close(D);
        return st;
    }
    *out = D;
    return LQ_OK;
}

typedef struct cu_dctx {
    cu_drafter *D;
    dmem mem;
    size_t cap;
    uint32_t layers, chunk;
    cu_kv *kv;
    size_t eb, kvb; /* activation and KV cache element bytes */
    float *f, *xf, *h, *uf, *y, *q, *kb, *vb, *a, *b, *lg, *tapf, *mask_rows;
    void *xb, *ub, *att, *act, *tapb;
    int32_t *ids, *anchor;
    uint32_t *pos;
    void *aws;
    size_t aws_bytes;
    struct {
        int32_t anchor;
        uint32_t pos;
        int32_t ids[RT_MAX_BLOCK];
        uint32_t ipos[RT_MAX_BLOCK]; /* the first position of each ingest chunk */
    } *io;
    cu_graph graphs[CU_GRAPHS];
} cu_dctx;

static void cu_dctx_free(void *p)
{
    cu_dctx *c = p;
    if (!c)
        return;
    graphs_free(c->graphs);
    dm_free(&c->mem);
    if (c->io)
        cudaFreeHost(c->io);
    free(c->kv);
    free(c);
}

static lq_status cu_dctx_new(void *p, size_t max_tokens, void **out, lq_error *err)
{
    cu_drafter *D = p;
    *out = NULL;
    cu_dctx *c = calloc(1, sizeof(*c));
    if (!c)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    c->D = D, c->cap = max_tokens, c->layers = D->c->num_hidden_layers, c->eb = D->be->fp32 ? 4 : 2;
    c->kvb = D->be->kv_f32 ? 4 : 2;
    lq_status st = (c->kv = calloc(c->layers, sizeof(cu_kv))) ? LQ_OK : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    /* an ingest launch writes at most `chunk` positions: never two into one ring slot */
    c->chunk = RT_MAX_BLOCK;
    for (uint32_t l = 0; st == LQ_OK && l < c->layers; l++) {
        cu_kv *kv = &c->kv[l];
        kv->slots = D->dw->L[l].swa && D->c->window && D->c->window < max_tokens ? D->c->window : max_tokens;
        if (kv->slots < c->chunk)
            c->chunk = (uint32_t)kv->slots;
        kv->kr = (uint64_t)D->nkv * D->d, kv->vr = (uint64_t)D->nkv * D->dv;
        if ((st = dm_alloc(&c->mem, kv->slots * kv->kr * c->kvb, &kv->k, "draft KV cache", err)) == LQ_OK)
            st = dm_alloc(&c->mem, kv->slots * kv->vr * c->kvb, &kv->v, "draft KV cache", err);
    }
    const size_t B = RT_MAX_BLOCK, H = D->H, V = D->be->c->vocab_size, I = D->I;
    const uint64_t qr = (uint64_t)D->nh * D->d, kr = (uint64_t)D->nkv * D->d, vr = (uint64_t)D->nkv * D->dv;
    const uint64_t tw = (uint64_t)D->c->n_taps * D->Ht;
#define A(ptr, bytes)                                                                                                  \
    if (st == LQ_OK)                                                                                                   \
    st = dm_alloc(&c->mem, (size_t)(bytes), (void **)&(ptr), "draft workspace", err)
    A(c->f, B * H * 4); A(c->xf, B * H * 4); A(c->xb, B * H * c->eb); A(c->h, B * H * 4); A(c->uf, B * H * 4);
    A(c->ub, B * H * c->eb); A(c->y, B * H * 4); A(c->q, B * qr * 4); A(c->kb, B * kr * 4); A(c->vb, B * vr * 4);
    A(c->att, B * D->nh * D->dv * c->eb); A(c->a, B * I * 4); A(c->b, B * I * 4); A(c->act, B * I * c->eb);
    A(c->lg, (B - 1) * V * 4); A(c->tapf, B * tw * 4); A(c->tapb, B * tw * c->eb); A(c->ids, B * 4); A(c->anchor, 4);
    A(c->pos, 4);
    c->aws_bytes = kn_attention_workspace_bytes((uint32_t)B, D->nh, D->dv, (uint32_t)max_tokens + (uint32_t)B);
    A(c->aws, c->aws_bytes);
#undef A
    if (st == LQ_OK && cudaMallocHost((void **)&c->io, sizeof(*c->io)) != cudaSuccess)
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, "RT_NO_MEMORY", "cannot pin host memory");
    if (st != LQ_OK) {
        cu_dctx_free(c);
        return st;
    }
    *out = c;
    return LQ_OK;
}

static lq_status dlin(cu_drafter *D, const kn_weight *W, const void *x, uint32_t ldx, uint32_t n, float *y, uint32_t ldy,
                      const float *bias, lq_error *err)
{
    return lin(D->be, W, x, ldx, n, y, ldy, bias, err);
}

/* The ingest of m <= chunk tap rows t (device f32) at the position in c->io->ipos[j]. */
static lq_status ingest_rows(cu_drafter *D, cu_dctx *c, const float *t, uint32_t m, int j, float *ctx_out, lq_error *err)
{
    cu_be *be = D->be;
    cudaStream_t s = be->k.stream;
    const uint32_t H = D->H, kr = D->nkv * D->d, vr = D->nkv * D->dv, tw = D->c->n_taps * D->Ht;
    TRY(cu_check(cudaMemcpyAsync(c->pos, &c->io->ipos[j], 4, cudaMemcpyHostToDevice, s), "position upload", err));
    const void *fin = t;
    if (!be->fp32) {
        kn_to_bf16_args cv = {t, tw, c->tapb, tw, m, tw};
        TRY(kn_to_bf16(&be->k, &cv, err));
        fin = c->tapb;
    }
    TRY(dlin(D, &D->fc, fin, tw, m, c->f, H, NULL, err));
    TRY(norm(be, c->f, NULL, D->hidden_norm, m, H, D->c->rms_norm_eps, c->xf, be->fp32 ? NULL : c->xb, err));
    if (ctx_out)
        TRY(d2h(ctx_out, c->xf, (size_t)m * H * 4, s, err));
    const void *xin = be->fp32 ? (const void *)c->xf : c->xb;
    for (uint32_t l = 0; l < c->layers; l++) {
        cu_dlayer *L = &D->L[l];
        TRY(dlin(D, &L->k, xin, H, m, c->kb, kr, L->kb, err));
        TRY(dlin(D, &L->v, xin, H, m, c->vb, vr, L->vb, err));
        TRY(head_prep(be, c->kb, m, D->nkv, D->d, L->k_norm, D->c->rms_norm_eps, D->rd, D->inv_freq, c->pos, 1.0f, err));
        TRY(head_prep(be, c->vb, m, D->nkv, D->dv, NULL, 0, 0, NULL, c->pos, (float)D->vscale, err));
        kn_kv_store_args ks;
        memset(&ks, 0, sizeof(ks));
        ks.k = c->kb, ks.ldk = kr, ks.v = c->vb, ks.ldv = vr, ks.n = m, ks.kr = kr, ks.vr = vr, ks.kc = c->kv[l].k;
        ks.vc = c->kv[l].v, ks.kv_f32 = be->kv_f32, ks.slots = (uint32_t)c->kv[l].slots, ks.pos = c->pos;
        TRY(kn_kv_store(&be->k, &ks, err));
    }
    return LQ_OK;
}

static lq_status cu_ingest(void *p, void *dctx, size_t pos, const float *taps, const void *tctx, size_t row0, size_t n,
                           float *ctx_out, int threads, lq_error *err)
{
    cu_drafter *D = p;
    cu_dctx *c = dctx;
    cudaStream_t s = D->be->k.stream;
    (void)threads;
    const uint32_t H = D->H, tw = D->c->n_taps * D->Ht;
    const float *src = NULL;
    if (!taps) {
        const cu_ctx *x = tctx;
        if (x->ntaps != D->c->n_taps || memcmp(x->taps, D->c->taps, x->ntaps * sizeof(uint32_t)) || row0 + n > x->ntap_rows)
            return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP",
                           "rows %zu..%zu of %zu tap rows of other layers than the drafter's", row0, row0 + n,
                           x->ntap_rows);
        src = x->tap + row0 * tw;
    }
    int j = 0;
    for (size_t o0 = 0; o0 < n; o0 += c->chunk, j++) {
        const uint32_t m = (uint32_t)(n - o0 < c->chunk ? n - o0 : c->chunk);
        if (j == RT_MAX_BLOCK || taps) { /* the pinned positions and the staging buffer are reused */
            TRY(cu_check(cudaStreamSynchronize(s), "ingest", err));
            j = 0;
        }
        const float *t = src ? src + o0 * tw : c->tapf;
        if (taps)
            TRY(cu_check(cudaMemcpyAsync(c->tapf, taps + o0 * tw, (size_t)m * tw * 4, cudaMemcpyHostToDevice, s), "tap upload",
                         err));
        c->io->ipos[j] = (uint32_t)(pos + o0);
        TRY(ingest_rows(D, c, t, m, j, ctx_out ? ctx_out + o0 * H : NULL, err));
    }
    return cu_check(cudaStreamSynchronize(s), "ingest", err);
}

typedef struct draft_args {
    cu_drafter *D;
    cu_dctx *c;
    uint32_t k;
    float *logits;
    int to_host; /* copy the draft ids to pinned memory (a fused iteration keeps them on the device) */
} draft_args;

/* Everything a draft puts on the stream (the anchor and position come from pinned memory). */
static lq_status draft_body(void *arg, lq_error *err)
{
    draft_args *da = arg;
    cu_drafter *D = da->D;
    cu_dctx *c = da->c;
    cu_be *be = D->be;
    cudaStream_t s = be->k.stream;
    const uint32_t k = da->k, B = k + 1, V = be->c->vocab_size, H = D->H;
    const uint32_t qr = D->nh * D->d, kr = D->nkv * D->d, vr = D->nkv * D->dv;
    float *logits = da->logits;
    TRY(cu_check(cudaMemcpyAsync(c->anchor, &c->io->anchor, 4, cudaMemcpyHostToDevice, s), "anchor upload", err));
    TRY(cu_check(cudaMemcpyAsync(c->pos, &c->io->pos, 4, cudaMemcpyHostToDevice, s), "position upload", err));
    kn_embed_args e = {&be->embed, c->anchor, 1, c->h, H};
    TRY(kn_embed(&be->k, &e, err));
    for (uint32_t r = 1; r < B; r++)
        TRY(cu_check(cudaMemcpyAsync(c->h + (size_t)r * H, D->mask_emb, (size_t)H * 4, cudaMemcpyDeviceToDevice, s), "mask rows",
                     err));
    const void *u = be->fp32 ? (const void *)c->uf : c->ub;
    const uint32_t W = D->c->window;
    for (uint32_t l = 0; l < c->layers; l++) {
        const rt_dwlayer *WL = &D->dw->L[l];
        cu_dlayer *L = &D->L[l];
        TRY(norm(be, c->h, l ? c->y : NULL, L->in_norm, B, H, D->c->rms_norm_eps, c->uf, be->fp32 ? NULL : c->ub, err));
        TRY(dlin(D, &L->q, u, H, B, c->q, qr, L->qb, err));
        TRY(dlin(D, &L->k, u, H, B, c->kb, kr, L->kb, err));
        TRY(dlin(D, &L->v, u, H, B, c->vb, vr, L->vb, err));
        TRY(head_prep(be, c->q, B, D->nh, D->d, L->q_norm, D->c->rms_norm_eps, D->rd, D->inv_freq, c->pos, 1.0f, err));
        TRY(head_prep(be, c->kb, B, D->nkv, D->d, L->k_norm, D->c->rms_norm_eps, D->rd, D->inv_freq, c->pos, 1.0f, err));
        TRY(head_prep(be, c->vb, B, D->nkv, D->dv, NULL, 0, 0, NULL, c->pos, (float)D->vscale, err));
        kn_attention_args a;
        memset(&a, 0, sizeof(a));
        a.q = c->q, a.ldq = qr, a.n = B, a.kc = c->kv[l].k, a.vc = c->kv[l].v, a.kv_f32 = be->kv_f32;
        a.slots = (uint32_t)c->kv[l].slots, a.pos = c->pos, a.nq = D->nh, a.nkv = D->nkv, a.dqk = D->d, a.dv = D->dv;
        a.span = WL->swa && W ? W : 0, a.ctx_only = 1, a.bk = c->kb, a.bv = c->vb, a.ldbk = kr, a.ldbv = vr;
        a.causal = WL->causal, a.max_keys = (uint32_t)c->kv[l].slots, a.sinks = L->sinks, a.scale = 1.0f / sqrtf((float)D->d);
        a.out = c->att, a.out_bf16 = !be->fp32, a.ldo = D->nh * D->dv, a.ws = c->aws, a.ws_bytes = c->aws_bytes;
        TRY(kn_attention(&be->k, &a, err));
        TRY(dlin(D, &L->o, c->att, D->nh * D->dv, B, c->y, H, L->ob, err));
        TRY(norm(be, c->h, c->y, L->post_norm, B, H, D->c->rms_norm_eps, c->uf, be->fp32 ? NULL : c->ub, err));
        TRY(dlin(D, &L->gate, u, H, B, c->a, D->I, NULL, err));
        TRY(dlin(D, &L->up, u, H, B, c->b, D->I, NULL, err));
        TRY(swiglu(be, c->a, c->b, B, D->I, c->act, err));
        TRY(dlin(D, &L->down, c->act, D->I, B, c->y, H, NULL, err));
    }
    /* final norm of rows 1..k (after the last MLP's residual), the target's lm_head, argmax */
    TRY(norm(be, c->h + H, c->y + H, D->norm, k, H, D->c->rms_norm_eps, c->uf, be->fp32 ? NULL : c->ub, err));
    TRY(lin(be, &be->lm_head, u, H, k, c->lg, V, NULL, err));
    kn_argmax_args am = {.logits = c->lg, .ids = c->ids, .rows = k, .V = V, .ld = V};
    TRY(kn_argmax(&be->k, &am, err));
    if (da->to_host)
        TRY(d2h(c->io->ids, c->ids, (size_t)k * 4, s, err));
    if (logits)
        TRY(d2h(logits, c->lg, (size_t)k * V * 4, s, err));
    return LQ_OK;
}

static lq_status cu_draft(void *p, void *dctx, size_t pos, int32_t anchor, uint32_t k, float *logits, int32_t *drafts,
                          int threads, lq_error *err)
{
    cu_drafter *D = p;
    cu_dctx *c = dctx;
    cudaStream_t s = D->be->k.stream;
    (void)threads;
    c->io->anchor = anchor, c->io->pos = (uint32_t)pos;
    draft_args da = {D, c, k, logits, 1};
    TRY(run_graph(c->graphs, D->be->graphs && !logits, k, s, draft_body, &da, err));
    TRY(cu_check(cudaStreamSynchronize(s), "draft", err));
    memcpy(drafts, c->io->ids, (size_t)k * 4);
    return LQ_OK;
}

/* ============================== fused DFlash iteration ============================== */

typedef struct iter_args {
    cu_be *be;
    cu_ctx *x;
    cu_drafter *D;
    cu_dctx *c;
    size_t pos, pend;
    uint32_t k;
} iter_args;

/* ingest -> draft -> verify -> accept, all on the stream; the one copy back is x->acc: a, the
 * bonus, the k drafts and the non-finite flag. */
static lq_status iter_body(void *arg, lq_error *err)
{
    iter_args *ia = arg;
    cu_be *be = ia->be;
    cu_ctx *x = ia->x;
    cu_dctx *c = ia->c;
    cudaStream_t s = be->k.stream;
    const uint32_t k = ia->k, B = k + 1, tw = ia->D->c->n_taps * ia->D->Ht;
    int j = 0;
    for (size_t o0 = 0; o0 < ia->pend; o0 += c->chunk, j++) {
        const uint32_t m = (uint32_t)(ia->pend - o0 < c->chunk ? ia->pend - o0 : c->chunk);
        TRY(ingest_rows(ia->D, c, x->tap + o0 * tw, m, j, NULL, err));
    }
    draft_args da = {ia->D, c, k, NULL, 0};
    TRY(draft_body(&da, err));
    /* the verify block: the anchor from pinned memory, the drafts from the drafter's ids */
    TRY(cu_check(cudaMemcpyAsync(x->tokens, x->io->tokens, 4, cudaMemcpyHostToDevice, s), "anchor upload", err));
    TRY(cu_check(cudaMemcpyAsync(x->tokens + 1, c->ids, (size_t)k * 4, cudaMemcpyDeviceToDevice, s), "draft copy", err));
    TRY(cu_check(cudaMemsetAsync(x->flag, 0, sizeof(int), s), "flag reset", err));
    const rt_sel vs = {.rows = B, .taps = 1};
    TRY(chunk(be, x, ia->pos, NULL, B, 0, B, &vs, err));
    kn_accept_greedy_args ag = {.ids = x->ids, .drafts = c->ids, .res = x->acc, .k = k};
    TRY(kn_accept_greedy(&be->k, &ag, err));
    TRY(cu_check(cudaMemcpyAsync(x->acc + 2, c->ids, (size_t)k * 4, cudaMemcpyDeviceToDevice, s), "draft copy", err));
    TRY(cu_check(cudaMemcpyAsync(x->acc + 2 + RT_MAX_BLOCK, x->flag, sizeof(int), cudaMemcpyDeviceToDevice, s), "flag copy",
                 err));
    return d2h(x->io->acc, x->acc, sizeof(x->io->acc), s, err);
}

static lq_status cu_dflash_iter(void *p, void *ctx, void *bd, void *dctx, size_t pos, size_t dpos, size_t pend,
                                int32_t anchor, uint32_t k, uint32_t *a, int32_t *ids, lq_error *err)
{
    cu_be *be = p;
    cu_ctx *x = ctx;
    cu_drafter *D = bd;
    cu_dctx *c = dctx;
    const uint32_t B = k + 1;
    if (!x->ntaps || x->ntaps != D->c->n_taps || memcmp(x->taps, D->c->taps, x->ntaps * sizeof(uint32_t)) ||
        pend > x->ntap_rows || B > R)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, "RT_TAP",
                       "%zu pending rows of %zu tap rows, or a context without the drafter's taps", pend, x->ntap_rows);
    for (size_t o0 = 0, j = 0; o0 < pend; o0 += c->chunk, j++)
        c->io->ipos[j] = (uint32_t)(dpos + o0);
    c->io->anchor = anchor, c->io->pos = (uint32_t)pos;
    x->io->tokens[0] = anchor, x->io->pos = (uint32_t)pos;
    x->nkeep = 0, x->ntap_rows = 0;
    iter_args ia = {be, x, D, c, pos, pend, k};
    cudaStream_t s = be->k.stream;
    TRY(run_graph(x->graphs, be->graphs, (uint64_t)1 << 40 | (uint64_t)pend << 8 | k, s, iter_body, &ia, err));
    TRY(cu_check(cudaStreamSynchronize(s), "DFlash iteration", err));
    const int32_t *r = x->io->acc;
    if (r[2 + RT_MAX_BLOCK])
        return lq_fail(err, LQ_ERR_NUMERIC, lq_ckpt_dir(be->w->ck), NULL, "RT_NONFINITE",
                       "non-finite logits among positions %zu..%zu: the weights or activations overflow", pos, pos + k);
    if (r[0] < 0 || (uint32_t)r[0] > k)
        return lq_fail(err, LQ_ERR_CUDA, NULL, NULL, "CUDA", "acceptance returned %d of %u drafts", r[0], k);
    *a = (uint32_t)r[0];
    memcpy(ids, r + 2, *a * sizeof(int32_t));
    ids[*a] = r[1];
    x->ntap_rows = B; /* the block's tap rows are kept: rows 0..a are the committed ones */
    return LQ_OK;
}

static uint64_t cu_bytes_per_token(const void *be) { return ((const cu_be *)be)->bytes_token; }

/* A device-to-device copy of 256 MiB, best of 5 after a warm-up, counting bytes read + written. */
static double cu_copy_gbps(void *p)
{
    cu_be *be = p;
    if (be->copy_gbps > 0)
        return be->copy_gbps;
    const size_t bytes = (size_t)256 << 20;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0;
    if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess &&
        cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess) {
        cudaMemsetAsync(a, 1, bytes, be->k.stream);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, be->k.stream);
        for (int i = 0; i < 5; i++) {
            float ms = 0;
            cudaEventRecord(e0, be->k.stream);
            cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, be->k.stream);
            cudaEventRecord(e1, be->k.stream);
            if (cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && ms > 0) {
                double g = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
                best = g > best ? g : best;
            }
        }
    }
    cudaGetLastError();
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    cudaFree(a), cudaFree(b);
    return be->copy_gbps = best;
}

const rt_backend_ops rt_cuda_backend = {
    "cuda",        cu_open,           cu_close,     cu_ctx_new,    cu_ctx_free, cu_ctx_bytes,
    cu_ctx_copy,   cu_step,           cu_sample,    cu_accept,     cu_drafter_open,
    cu_drafter_close, cu_dctx_new,    cu_dctx_free, cu_ingest,     cu_draft,
    cu_bytes_per_token, cu_copy_gbps, cu_dflash_iter,
};
