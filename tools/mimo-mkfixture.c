/* mimo-mkfixture: writes a deterministic MiMo-architecture checkpoint in the exact HF layout.
 *
 *   --variant bf16: MiMo-V2-Flash names (model_type mimo_v2_flash), split q/k/v, all BF16
 *                   except the F32 router; the numerics reference.
 *   --variant fp8 : MiMo-V2.5/Pro names (model_type mimo_v2), fused qkv interleaved over
 *                   checkpoint-TP shards, every linear except o_proj in F8_E4M3 with 128x128
 *                   weight_scale_inv grids (per-shard grid for the fused qkv), o_proj,
 *                   embeddings, lm_head, norms and sinks BF16, router F32.
 * Both variants hold the same logical weights (fixture.h). The tiny preset also gets a DFlash
 * drafter in dflash/ (config.json, dflash_draft_model.safetensors, index, mask_embedding.pt).
 * --tokenizer FILE copies a tokenizer.json in beside them (fixtures/tokenizer/ holds one made for
 * the tiny preset's vocabulary). --vocab, --experts and --layers resize a preset (fixture.h:
 * fx_geometry_resize), e.g. MiMo's real vocabulary or more than 1024 experts for the hostile
 * tests; left at the preset's values they change nothing, so default output stays identical.
 *
 * Everything is streamed through the library's safetensors writer a row block at a time, so
 * the medium preset (~12 GB BF16) needs a few tens of MB of RAM. FP8 tensors take two passes:
 * their F32 scale grids sort before the 1-byte weights in a safetensors file, so the grids are
 * computed first and kept (they are 1/16384 of the weights), then the weights are regenerated
 * and written. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libquant/libquant.h"
#include "fixture.h"

#define MAX_PARTS 48

typedef struct fx_part {
    char logical[256];
    uint64_t row0, nrows; /* logical rows [row0, row0 + nrows) */
} fx_part;

typedef struct fx_tensor {
    char name[256];
    lq_dtype dtype;
    uint32_t rank;
    uint64_t shape[2];
    fx_kind kind;
    float std;
    fx_part parts[MAX_PARTS]; /* stored rows = concatenation of parts */
    uint32_t nparts;
    int fp8;                  /* F8_E4M3 weight with a scale grid */
    int scale_of;             /* >= 0: the weight_scale_inv of that tensor */
    lq_fp8_grid grid;
    float *scales;            /* pass-1 result for fp8 weights */
    uint64_t nbytes;
    uint32_t shard;
} fx_tensor;

typedef struct fx_list {
    fx_tensor *t;
    size_t n, cap;
} fx_list;

static int quiet;

/* snprintf that treats truncation as the bug it would be (every name here is far shorter). */
static void fmt(char *dst, size_t cap, const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void fmt(char *dst, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(dst, cap, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "mimo-mkfixture: internal error: name too long: %s\n", dst);
        exit(3);
    }
}

static void die_oom(void)
{
    fprintf(stderr, "mimo-mkfixture: out of memory\n");
    exit(3);
}

static fx_tensor *push(fx_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->t = realloc(l->t, l->cap * sizeof(*l->t));
        if (!l->t)
            die_oom();
    }
    fx_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof(*t));
    t->scale_of = -1;
    return t;
}

/* A tensor whose stored rows are one logical tensor (its own name). rank 1 = one row. */
static fx_tensor *add_plain(fx_list *l, const char *name, lq_dtype dt, uint64_t rows,
                            uint64_t cols, int rank, fx_kind kind, float std)
{
    fx_tensor *t = push(l);
    fmt(t->name, sizeof(t->name), "%s", name);
    t->dtype = dt;
    t->rank = (uint32_t)rank;
    t->shape[0] = rank == 1 ? cols : rows;
    t->shape[1] = rank == 1 ? 0 : cols;
    t->kind = kind;
    t->std = std;
    fmt(t->parts[0].logical, sizeof(t->parts[0].logical), "%s", name);
    t->parts[0].row0 = 0;
    t->parts[0].nrows = rank == 1 ? 1 : rows;
    t->nparts = 1;
    return t;
}

static uint64_t rows_of(const fx_tensor *t) { return t->rank == 1 ? 1 : t->shape[0]; }
static uint64_t cols_of(const fx_tensor *t) { return t->rank == 1 ? t->shape[0] : t->shape[1]; }
static uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* Turns the last-added 2-D weight into an FP8 weight and appends its scale grid tensor. */
static void make_fp8(fx_list *l, uint32_t shards)
{
    size_t wi = l->n - 1;
    fx_tensor *w = &l->t[wi];
    uint64_t rows = w->shape[0], cols = w->shape[1];
    w->dtype = LQ_DTYPE_F8_E4M3;
    w->fp8 = 1;
    w->grid.rows = rows;
    w->grid.cols = cols;
    w->grid.block_r = w->grid.block_c = 128;
    w->grid.shards = shards;
    w->grid.srows = shards * cdiv(rows / shards, 128);
    w->grid.scols = cdiv(cols, 128);
    char name[256];
    fmt(name, sizeof(name), "%s_scale_inv", w->name);
    lq_fp8_grid g = w->grid;
    fx_tensor *s = push(l);
    fmt(s->name, sizeof(s->name), "%s", name);
    s->dtype = LQ_DTYPE_F32;
    s->rank = 2;
    s->shape[0] = g.srows;
    s->shape[1] = g.scols;
    s->scale_of = (int)wi;
}

static void linear(fx_list *l, int fp8, const char *name, uint64_t out, uint64_t in)
{
    add_plain(l, name, LQ_DTYPE_BF16, out, in, 2, FX_NORMAL, 0.02f);
    if (fp8)
        make_fp8(l, 1);
}

static void build_backbone(const fx_geometry *g, int fp8, fx_list *l)
{
    char n[256], p[64];
    uint64_t H = g->hidden;
    add_plain(l, "model.embed_tokens.weight", LQ_DTYPE_BF16, g->vocab, H, 2, FX_NORMAL, 0.02f);
    add_plain(l, "lm_head.weight", LQ_DTYPE_BF16, g->vocab, H, 2, FX_NORMAL, 0.02f);
    add_plain(l, "model.norm.weight", LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
    for (uint32_t L = 0; L < g->layers; L++) {
        int swa = g->hybrid[L];
        uint64_t nq = swa ? g->swa_heads : g->heads, nkv = swa ? g->kv_swa : g->kv_full;
        fmt(p, sizeof(p), "model.layers.%u", L);
        fmt(n, sizeof(n), "%s.input_layernorm.weight", p);
        add_plain(l, n, LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
        fmt(n, sizeof(n), "%s.post_attention_layernorm.weight", p);
        add_plain(l, n, LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
        char qn[256], kn[256], vn[256];
        fmt(qn, sizeof(qn), "%s.self_attn.q_proj.weight", p);
        fmt(kn, sizeof(kn), "%s.self_attn.k_proj.weight", p);
        fmt(vn, sizeof(vn), "%s.self_attn.v_proj.weight", p);
        uint64_t qr = nq * g->head_dim, kr = nkv * g->head_dim, vr = nkv * g->v_head_dim;
        if (!fp8) {
            add_plain(l, qn, LQ_DTYPE_BF16, qr, H, 2, FX_NORMAL, 0.02f);
            add_plain(l, kn, LQ_DTYPE_BF16, kr, H, 2, FX_NORMAL, 0.02f);
            add_plain(l, vn, LQ_DTYPE_BF16, vr, H, 2, FX_NORMAL, 0.02f);
        } else {
            /* Fused qkv, interleaved over S checkpoint-TP shards: shard s = [q_s | k_s | v_s]
             * (reference/mimo_arch.md 3.3). */
            uint32_t S = g->qkv_shards;
            fmt(n, sizeof(n), "%s.self_attn.qkv_proj.weight", p);
            fx_tensor *t = add_plain(l, n, LQ_DTYPE_BF16, qr + kr + vr, H, 2, FX_NORMAL, 0.02f);
            t->nparts = 0;
            for (uint32_t s = 0; s < S; s++) {
                const char *src[3] = {qn, kn, vn};
                uint64_t per[3] = {qr / S, kr / S, vr / S};
                for (int k = 0; k < 3; k++) {
                    fx_part *pt = &t->parts[t->nparts++];
                    fmt(pt->logical, sizeof(pt->logical), "%s", src[k]);
                    pt->row0 = s * per[k];
                    pt->nrows = per[k];
                }
            }
            make_fp8(l, S);
        }
        fmt(n, sizeof(n), "%s.self_attn.o_proj.weight", p);
        add_plain(l, n, LQ_DTYPE_BF16, H, nq * g->v_head_dim, 2, FX_NORMAL, 0.02f);
        if (swa) {
            fmt(n, sizeof(n), "%s.self_attn.attention_sink_bias", p);
            add_plain(l, n, LQ_DTYPE_BF16, 1, nq, 1, FX_SINK, 0);
        }
        if (!g->moe[L]) {
            fmt(n, sizeof(n), "%s.mlp.gate_proj.weight", p);
            linear(l, fp8, n, g->intermediate, H);
            fmt(n, sizeof(n), "%s.mlp.up_proj.weight", p);
            linear(l, fp8, n, g->intermediate, H);
            fmt(n, sizeof(n), "%s.mlp.down_proj.weight", p);
            linear(l, fp8, n, H, g->intermediate);
            continue;
        }
        fmt(n, sizeof(n), "%s.mlp.gate.weight", p);
        add_plain(l, n, LQ_DTYPE_F32, g->experts, H, 2, FX_NORMAL, 0.02f);
        fmt(n, sizeof(n), "%s.mlp.gate.e_score_correction_bias", p);
        add_plain(l, n, LQ_DTYPE_F32, 1, g->experts, 1, FX_BIAS, 0);
        for (uint32_t e = 0; e < g->experts; e++) {
            fmt(n, sizeof(n), "%s.mlp.experts.%u.gate_proj.weight", p, e);
            linear(l, fp8, n, g->moe_intermediate, H);
            fmt(n, sizeof(n), "%s.mlp.experts.%u.up_proj.weight", p, e);
            linear(l, fp8, n, g->moe_intermediate, H);
            fmt(n, sizeof(n), "%s.mlp.experts.%u.down_proj.weight", p, e);
            linear(l, fp8, n, H, g->moe_intermediate);
        }
    }
}

/* DFlash drafter tensors (reference/dflash.md 2.3); logical names are prefixed "dflash." so
 * they never collide with the backbone's. */
static void build_drafter(const fx_geometry *g, fx_list *l)
{
    char n[256];
    uint64_t H = g->d_hidden, d = g->d_head_dim;
    add_plain(l, "fc.weight", LQ_DTYPE_BF16, H, (uint64_t)g->d_ntaps * g->hidden, 2, FX_NORMAL, 0.02f);
    add_plain(l, "hidden_norm.weight", LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
    add_plain(l, "norm.weight", LQ_DTYPE_BF16, 1, H, 1, FX_NORM_WEIGHT, 0);
    for (uint32_t i = 0; i < g->d_layers; i++) {
        struct { const char *suffix; uint64_t rows, cols; int rank; fx_kind kind; } spec[] = {
            {"input_layernorm.weight", 1, H, 1, FX_NORM_WEIGHT},
            {"post_attention_layernorm.weight", 1, H, 1, FX_NORM_WEIGHT},
            {"self_attn.q_proj.weight", g->d_heads * d, H, 2, FX_NORMAL},
            {"self_attn.k_proj.weight", g->d_kv * d, H, 2, FX_NORMAL},
            {"self_attn.v_proj.weight", g->d_kv * d, H, 2, FX_NORMAL},
            {"self_attn.o_proj.weight", H, g->d_heads * d, 2, FX_NORMAL},
            {"self_attn.q_norm.weight", 1, d, 1, FX_NORM_WEIGHT},
            {"self_attn.k_norm.weight", 1, d, 1, FX_NORM_WEIGHT},
            {"self_attn.attention_sink_bias", 1, g->d_heads, 1, FX_SINK},
            {"mlp.gate_proj.weight", g->d_intermediate, H, 2, FX_NORMAL},
            {"mlp.up_proj.weight", g->d_intermediate, H, 2, FX_NORMAL},
            {"mlp.down_proj.weight", H, g->d_intermediate, 2, FX_NORMAL},
        };
        for (size_t k = 0; k < sizeof(spec) / sizeof(spec[0]); k++) {
            fmt(n, sizeof(n), "layers.%u.%s", i, spec[k].suffix);
            add_plain(l, n, LQ_DTYPE_BF16, spec[k].rows, spec[k].cols, spec[k].rank, spec[k].kind, 0.02f);
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        char logical[256];
        fmt(logical, sizeof(logical), "dflash.%s", l->t[i].name);
        memcpy(l->t[i].parts[0].logical, logical, sizeof(logical));
    }
}

/* Generates stored rows [r0, r1) of t (as f32) into out, on one thread. */
static void gen_rows_1(uint64_t seed, const fx_tensor *t, uint64_t r0, uint64_t r1, float *out)
{
    uint64_t cols = cols_of(t), base = 0;
    for (uint32_t k = 0; k < t->nparts; k++) {
        const fx_part *p = &t->parts[k];
        for (uint64_t r = r0 > base ? r0 : base; r < r1 && r < base + p->nrows; r++)
            fx_gen_row(seed, p->logical, p->row0 + (r - base), cols, t->kind, t->std,
                       out + (r - r0) * cols);
        base += p->nrows;
    }
}

static int gen_threads = 1;

typedef struct gen_job {
    uint64_t seed;
    const fx_tensor *t;
    uint64_t r0, rows, cols;
    size_t parts;
    float *out;
} gen_job;

static void gen_part(void *arg, size_t i)
{
    gen_job *j = arg;
    uint64_t a = j->r0 + j->rows * i / j->parts, b = j->r0 + j->rows * (i + 1) / j->parts;
    gen_rows_1(j->seed, j->t, a, b, j->out + (a - j->r0) * j->cols);
}

/* Generates stored rows [r0, r1) of t into out, split by rows over gen_threads threads of the
 * process pool. Every row is generated on its own, so the values do not depend on the thread
 * count. */
static void gen_rows(uint64_t seed, const fx_tensor *t, uint64_t r0, uint64_t r1, float *out)
{
    uint64_t rows = r1 - r0, cols = cols_of(t);
    int nt = gen_threads;
    if (nt > 64)
        nt = 64;
    if ((uint64_t)nt > rows)
        nt = (int)rows;
    if (nt <= 1 || rows * cols < 65536) {
        gen_rows_1(seed, t, r0, r1, out);
        return;
    }
    gen_job j = {seed, t, r0, rows, cols, (size_t)nt, out};
    lq_parallel_for(j.parts, nt, gen_part, &j);
}

static void fail_lq(const lq_error *err)
{
    char buf[1400];
    fprintf(stderr, "mimo-mkfixture: %s\n", lq_error_format(err, buf, sizeof(buf)));
    exit(3);
}

/* Walks an FP8 weight one 128-row block at a time (blocks restart at each checkpoint-TP shard),
 * quantizing each. Pass 1 (w == NULL) stores the scale grid in t->scales; pass 2 writes the
 * weight bytes and checks that the regenerated scales equal pass 1's. */
static void fp8_walk(uint64_t seed, fx_tensor *t, lq_stw *w, float *fbuf, uint8_t *qbuf)
{
    const lq_fp8_grid *g = &t->grid;
    uint64_t cols = g->cols, rs = g->rows / g->shards, bps = cdiv(rs, 128);
    if (!w && !t->scales) {
        t->scales = malloc(g->srows * g->scols * sizeof(float));
        if (!t->scales)
            die_oom();
    }
    float srow[1024];
    for (uint64_t s = 0; s < g->shards; s++) {
        for (uint64_t b = 0; b < bps; b++) {
            uint64_t r0 = s * rs + b * 128, r1 = s * rs + (b + 1) * 128 < (s + 1) * rs
                                                     ? s * rs + (b + 1) * 128 : (s + 1) * rs;
            lq_fp8_grid bg = {.rows = r1 - r0, .cols = cols, .srows = 1, .scols = g->scols,
                              .block_r = 128, .block_c = 128, .shards = 1};
            gen_rows(seed, t, r0, r1, fbuf);
            lq_status st = lq_fp8_block_quant(&bg, fbuf, qbuf, srow);
            if (st != LQ_OK) {
                fprintf(stderr, "mimo-mkfixture: %s: FP8 quantization failed (%s)\n", t->name,
                        lq_status_str(st));
                exit(3);
            }
            float *dst = t->scales + (s * bps + b) * g->scols;
            if (!w) {
                memcpy(dst, srow, g->scols * sizeof(float));
                continue;
            }
            if (memcmp(dst, srow, g->scols * sizeof(float)) != 0) {
                fprintf(stderr, "mimo-mkfixture: %s: scales differ between passes\n", t->name);
                exit(3);
            }
            lq_error err;
            if (lq_stw_write(w, qbuf, (size_t)((r1 - r0) * cols), &err) != LQ_OK)
                fail_lq(&err);
        }
    }
}

static void write_tensor(uint64_t seed, fx_list *l, fx_tensor *t, lq_stw *w, float *fbuf,
                         uint8_t *qbuf, size_t fbuf_elems)
{
    lq_error err;
    if (t->scale_of >= 0) {
        const fx_tensor *o = &l->t[t->scale_of];
        if (lq_stw_write(w, o->scales, (size_t)t->nbytes, &err) != LQ_OK)
            fail_lq(&err);
        return;
    }
    if (t->fp8) {
        fp8_walk(seed, t, w, fbuf, qbuf);
        return;
    }
    uint64_t rows = rows_of(t), cols = cols_of(t);
    uint64_t chunk = fbuf_elems / cols ? fbuf_elems / cols : 1;
    unsigned esz = lq_dtype_bits(t->dtype) / 8;
    for (uint64_t r0 = 0; r0 < rows; r0 += chunk) {
        uint64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
        gen_rows(seed, t, r0, r1, fbuf);
        size_t n = (size_t)((r1 - r0) * cols);
        if (lq_from_f32(t->dtype, fbuf, n, qbuf) != LQ_OK) {
            fprintf(stderr, "mimo-mkfixture: %s: cannot convert to %s\n", t->name,
                    lq_dtype_name(t->dtype));
            exit(3);
        }
        if (lq_stw_write(w, qbuf, n * esz, &err) != LQ_OK)
            fail_lq(&err);
    }
}

static fx_tensor *find(fx_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0)
            return &l->t[i];
    return NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const fx_tensor *)a)->name, ((const fx_tensor *)b)->name);
}

/* Writes the tensors of l into dir as `prefix` shards (plus an index when there is more than
 * one shard, or always when force_index), returns total bytes of files written. */
static uint64_t write_shards(const char *dir, const char *prefix, int single_name, int force_index,
                             fx_list *l, uint64_t seed, uint64_t max_shard)
{
    /* Fix the scale back-references before sorting moves tensors around. */
    for (size_t i = 0; i < l->n; i++)
        if (l->t[i].scale_of >= 0)
            fmt(l->t[i].parts[0].logical, sizeof(l->t[i].parts[0].logical), "%s",
                     l->t[l->t[i].scale_of].name);
    qsort(l->t, l->n, sizeof(*l->t), cmp_name);
    for (size_t i = 0; i < l->n; i++) {
        fx_tensor *t = &l->t[i];
        if (t->scale_of >= 0)
            t->scale_of = (int)(find(l, t->parts[0].logical) - l->t);
        int of = 0;
        uint64_t numel = t->rank == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
        t->nbytes = lq_dtype_nbytes(t->dtype, numel, &of);
    }
    uint64_t *sizes = malloc(l->n * sizeof(*sizes));
    uint32_t *shard_of = malloc(l->n * sizeof(*shard_of));
    if (!sizes || !shard_of)
        die_oom();
    for (size_t i = 0; i < l->n; i++)
        sizes[i] = l->t[i].nbytes;
    uint32_t nshards = lq_shard_plan(sizes, l->n, max_shard, shard_of);

    /* Pass 1: scale grids of every FP8 weight. */
    size_t fbuf_elems = 1u << 22; /* 16 MiB of f32; at least 128 rows of 16384 columns */
    float *fbuf = malloc(fbuf_elems * sizeof(float));
    uint8_t *qbuf = malloc(fbuf_elems * sizeof(float));
    if (!fbuf || !qbuf)
        die_oom();
    for (size_t i = 0; i < l->n; i++)
        if (l->t[i].fp8)
            fp8_walk(seed, &l->t[i], NULL, fbuf, qbuf);

    uint64_t total_files = 0, total_tensor = 0;
    char **files = calloc(l->n, sizeof(char *));
    const char **names = calloc(l->n, sizeof(char *));
    if (!files || !names)
        die_oom();
    for (uint32_t s = 0; s < nshards; s++) {
        char fname[256], path[4096];
        lq_shard_name(prefix, s, nshards, single_name && nshards == 1, fname, sizeof(fname));
        fmt(path, sizeof(path), "%s/%s", dir, fname);
        lq_error err;
        lq_stw *w = NULL;
        if (lq_stw_create(path, &w, &err) != LQ_OK)
            fail_lq(&err);
        for (size_t i = 0; i < l->n; i++) {
            fx_tensor *t = &l->t[i];
            if (shard_of[i] != s)
                continue;
            uint64_t shape[2] = {t->shape[0], t->shape[1]};
            if (lq_stw_add(w, t->name, t->dtype, t->rank, shape, &err) != LQ_OK)
                fail_lq(&err);
            files[i] = strdup(fname);
            names[i] = t->name;
            if (!files[i])
                die_oom();
        }
        if (lq_stw_begin(w, &err) != LQ_OK)
            fail_lq(&err);
        const char *next;
        while ((next = lq_stw_next(w)) != NULL)
            write_tensor(seed, l, find(l, next), w, fbuf, qbuf, fbuf_elems);
        uint64_t fsize = 0;
        uint8_t sha[32];
        total_tensor += lq_stw_total_size(w);
        if (lq_stw_finish(w, sha, &fsize, &err) != LQ_OK)
            fail_lq(&err);
        total_files += fsize;
        if (!quiet) {
            char hex[65];
            lq_hex(sha, 32, hex);
            fprintf(stderr, "  %s  %" PRIu64 " bytes  sha256 %s\n", fname, fsize, hex);
        }
    }
    if (nshards > 1 || force_index) {
        char path[4096];
        fmt(path, sizeof(path), "%s/model.safetensors.index.json", dir);
        lq_error err;
        if (lq_index_write(path, names, (const char *const *)files, l->n, total_tensor, NULL,
                           NULL, &err) != LQ_OK)
            fail_lq(&err);
    }
    for (size_t i = 0; i < l->n; i++) {
        free(files[i]);
        free(l->t[i].scales);
        l->t[i].scales = NULL;
    }
    free(files);
    free(names);
    free(fbuf);
    free(qbuf);
    free(sizes);
    free(shard_of);
    return total_files;
}

/* ---- config.json ---- */

static cJSON *int_array(const int *v, uint32_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static void write_json(const char *dir, const char *name, cJSON *root)
{
    char path[4096];
    fmt(path, sizeof(path), "%s/%s", dir, name);
    char *text = cJSON_Print(root);
    if (!text)
        die_oom();
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON leaves no newline; the NUL is not written */
    lq_error err;
    if (lq_write_file_atomic(path, text, len + 1, NULL, &err) != LQ_OK)
        fail_lq(&err);
    free(text);
    cJSON_Delete(root);
}

static void write_backbone_config(const char *dir, const fx_geometry *g, int fp8, int f32)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString(fp8 ? "MiMoV2ForCausalLM" : "MiMoV2FlashForCausalLM"));
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_AddStringToObject(c, "model_type", fp8 ? "mimo_v2" : "mimo_v2_flash");
    cJSON_AddNumberToObject(c, "vocab_size", g->vocab);
    cJSON_AddNumberToObject(c, "hidden_size", g->hidden);
    cJSON_AddNumberToObject(c, "num_hidden_layers", g->layers);
    cJSON_AddItemToObject(c, "hybrid_layer_pattern", int_array(g->hybrid, g->layers));
    cJSON_AddItemToObject(c, "moe_layer_freq", int_array(g->moe, g->layers));
    cJSON_AddNumberToObject(c, "num_attention_heads", g->heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", g->kv_full);
    cJSON_AddNumberToObject(c, "head_dim", g->head_dim);
    cJSON_AddNumberToObject(c, "v_head_dim", g->v_head_dim);
    cJSON_AddNumberToObject(c, "swa_num_attention_heads", g->swa_heads);
    cJSON_AddNumberToObject(c, "swa_num_key_value_heads", g->kv_swa);
    cJSON_AddNumberToObject(c, "swa_head_dim", g->head_dim);
    cJSON_AddNumberToObject(c, "swa_v_head_dim", g->v_head_dim);
    cJSON_AddNumberToObject(c, "partial_rotary_factor", g->partial_rotary);
    cJSON_AddNumberToObject(c, "rope_theta", g->rope_theta);
    cJSON_AddNumberToObject(c, "swa_rope_theta", g->swa_rope_theta);
    cJSON_AddNumberToObject(c, "sliding_window", g->window);
    cJSON_AddNumberToObject(c, "sliding_window_size", g->window);
    cJSON_AddNumberToObject(c, "attention_chunk_size", g->window);
    cJSON_AddBoolToObject(c, "add_swa_attention_sink_bias", 1);
    cJSON_AddBoolToObject(c, "add_full_attention_sink_bias", 0);
    cJSON_AddNumberToObject(c, "attention_value_scale", g->value_scale);
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    if (fp8)
        cJSON_AddStringToObject(c, "attention_projection_layout", "fused_qkv");
    cJSON_AddNumberToObject(c, "intermediate_size", g->intermediate);
    cJSON_AddNumberToObject(c, "moe_intermediate_size", g->moe_intermediate);
    cJSON_AddNumberToObject(c, "n_routed_experts", g->experts);
    cJSON_AddNumberToObject(c, "num_experts_per_tok", g->top_k);
    cJSON_AddNullToObject(c, "n_shared_experts");
    cJSON_AddStringToObject(c, "scoring_func", "sigmoid");
    cJSON_AddStringToObject(c, "topk_method", "noaux_tc");
    cJSON_AddNumberToObject(c, "n_group", 1);
    cJSON_AddNumberToObject(c, "topk_group", 1);
    cJSON_AddBoolToObject(c, "norm_topk_prob", 1);
    cJSON_AddNullToObject(c, "routed_scaling_factor");
    cJSON_AddNumberToObject(c, "layernorm_epsilon", 1e-5);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "max_position_embeddings", g->max_pos);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    cJSON_AddStringToObject(c, "torch_dtype", f32 ? "float32" : "bfloat16");
    cJSON_AddNumberToObject(c, "eos_token_id", g->vocab - 3);
    cJSON_AddNumberToObject(c, "pad_token_id", g->vocab - 2);
    if (fp8) {
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
        cJSON_AddStringToObject(q, "fmt", "e4m3");
        cJSON_AddStringToObject(q, "quant_method", "fp8");
        int blk[2] = {128, 128};
        cJSON_AddItemToObject(q, "weight_block_size", int_array(blk, 2));
        cJSON *ign = cJSON_CreateArray();
        for (uint32_t L = 0; L < g->layers; L++) {
            char n[96];
            fmt(n, sizeof(n), "model.layers.%u.self_attn.o_proj", L);
            cJSON_AddItemToArray(ign, cJSON_CreateString(n));
        }
        cJSON_AddItemToObject(q, "ignored_layers", ign);
        cJSON_AddItemToObject(c, "quantization_config", q);
    }
    write_json(dir, "config.json", c);
}

static void write_drafter_config(const char *dir, const fx_geometry *g)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("DFlashDraftModel"));
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_AddStringToObject(c, "model_type", "qwen3");
    cJSON_AddNumberToObject(c, "hidden_size", g->d_hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", g->d_intermediate);
    cJSON_AddNumberToObject(c, "num_hidden_layers", g->d_layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", g->d_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", g->d_kv);
    cJSON_AddNumberToObject(c, "head_dim", g->d_head_dim);
    cJSON_AddNumberToObject(c, "v_head_dim", g->d_head_dim);
    cJSON_AddNumberToObject(c, "partial_rotary_factor", 0.5);
    cJSON_AddNumberToObject(c, "rope_theta", 10000);
    cJSON_AddNumberToObject(c, "sliding_window", g->d_window);
    cJSON_AddNumberToObject(c, "max_position_embeddings", g->max_pos);
    cJSON_AddNumberToObject(c, "block_size", g->d_block);
    cJSON_AddNumberToObject(c, "num_target_layers", g->layers);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "vocab_size", g->vocab);
    cJSON_AddStringToObject(c, "torch_dtype", "bfloat16");
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    cJSON *d = cJSON_CreateObject();
    int taps[8];
    for (uint32_t i = 0; i < g->d_ntaps; i++)
        taps[i] = (int)g->d_taps[i];
    cJSON_AddItemToObject(d, "target_layer_ids", int_array(taps, g->d_ntaps));
    cJSON_AddNumberToObject(d, "mask_token_id", g->d_mask_id);
    cJSON_AddNumberToObject(d, "num_anchors", 512);
    cJSON_AddNumberToObject(d, "block_size", g->d_block);
    cJSON_AddNumberToObject(d, "loss_decay_gamma", 7.0);
    cJSON_AddBoolToObject(d, "use_swa", 1);
    cJSON_AddNumberToObject(d, "swa_window_size", g->d_window);
    cJSON_AddNumberToObject(d, "backbone_rotary_base", 5000000);
    cJSON_AddNumberToObject(d, "attention_value_scale", 0.612);
    cJSON_AddBoolToObject(d, "attention_sink_bias", 1);
    cJSON_AddItemToObject(c, "dflash_config", d);
    write_json(dir, "config.json", c);
}

/* Opens the --tokenizer file up front, so a missing or unreadable one stops the run before
 * anything is written. */
static FILE *open_tokenizer(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "mimo-mkfixture: --tokenizer %s: %s\n", path,
                f ? "not a regular file" : strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    return f;
}

/* Copies the tokenizer file byte for byte into DIR/tokenizer.json through the atomic writer. */
static void copy_tokenizer(FILE *src, const char *src_path, const char *dir)
{
    char path[4200];
    fmt(path, sizeof(path), "%s/tokenizer.json", dir);
    lq_outfile *f = NULL;
    lq_error err;
    if (lq_outfile_open(path, &f, &err) != LQ_OK)
        fail_lq(&err);
    static char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), src)) > 0)
        if (lq_outfile_write(f, buf, n, &err) != LQ_OK)
            fail_lq(&err);
    if (ferror(src)) {
        int e = errno;
        lq_outfile_abort(f);
        fprintf(stderr, "mimo-mkfixture: --tokenizer %s: read error: %s\n", src_path, strerror(e));
        exit(3);
    }
    uint64_t size = 0;
    if (lq_outfile_commit(f, NULL, &size, &err) != LQ_OK)
        fail_lq(&err);
    fclose(src);
    if (!quiet)
        fprintf(stderr, "mimo-mkfixture: %s (%" PRIu64 " bytes, from %s)\n", path, size, src_path);
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-mkfixture --preset tiny|medium --variant bf16|fp8|f32 --out DIR [options]\n"
        "Writes a deterministic MiMo-architecture checkpoint in the HF layout.\n"
        "  --preset P          tiny (hidden 256, 12 layers, 16 experts, ~46 MB BF16, with a DFlash\n"
        "                      drafter) or medium (MiMo-V2-Flash layer geometry, 6 layers, 32 experts\n"
        "                      of 2048, ~12 GB BF16 / ~7 GB FP8). Required.\n"
        "  --variant V         bf16 (split q/k/v, mimo_v2_flash names), fp8 (block-128 FP8,\n"
        "                      fused qkv, mimo_v2 names) or f32 (bf16's layout stored as F32).\n"
        "                      Required.\n"
        "  --out DIR           output directory; must not exist or be empty. Required.\n"
        "  --seed N            generator seed, 0..2^64-1 (default 1)\n"
        "  --max-shard-size B  bytes of tensor data per shard, >= 1 (default: tiny 8000000,\n"
        "                      medium 5000000000)\n"
        "  --vocab N           vocabulary size, 8..2147483647 (default: tiny 4096, medium 152576);\n"
        "                      eos, pad and the drafter's mask id stay the last three ids; not\n"
        "                      with --tokenizer unless N is the preset's own\n"
        "  --experts N         routed experts per MoE layer, 8..65536 (default: tiny 16, medium\n"
        "                      32); top-8 routing and the expert size stay\n"
        "  --layers N          decoder layers, 1..64 (default: tiny 12, medium 6): the preset's\n"
        "                      attention pattern repeated, layer 0 dense, the rest MoE; the\n"
        "                      drafter taps layers 0, (N-1)/2 and N-1\n"
        "  --threads N         generator threads, 1..64 (default 1); output does not depend on it\n"
        "  --no-drafter        do not write dflash/ (tiny only; medium never has one)\n"
        "  --tokenizer FILE    copy FILE into DIR as tokenizer.json, byte for byte (default: none;\n"
        "                      fixtures/tokenizer/tokenizer.json fits the tiny preset's 4096 ids)\n"
        "  -q, --quiet         no per-file lines on stderr\n"
        "  -h, --help          this text\n"
        "Exit status: 0 written, 2 usage error, 3 I/O error.\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Creates dir (and nothing above it); an existing empty directory is accepted. */
static int prepare_dir(const char *dir)
{
    if (mkdir(dir, 0755) == 0)
        return 0;
    if (errno != EEXIST) {
        fprintf(stderr, "mimo-mkfixture: %s: cannot create directory: %s\n", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mimo-mkfixture: %s: exists and is not a directory\n", dir);
        return -1;
    }
    if (rmdir(dir) != 0 || mkdir(dir, 0755) != 0) {
        fprintf(stderr, "mimo-mkfixture: %s: exists and is not empty; refusing to overwrite it\n", dir);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *preset = NULL, *variant = NULL, *out = NULL, *tokenizer = NULL;
    uint64_t seed = 1, max_shard = 0, vocab = 0, experts = 0, layers = 0;
    int drafter = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--preset") && v) {
            preset = v;
            i++;
        } else if (!strcmp(a, "--variant") && v) {
            variant = v;
            i++;
        } else if (!strcmp(a, "--out") && v) {
            out = v;
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            if (parse_u64(v, &seed)) {
                fprintf(stderr, "mimo-mkfixture: --seed: not an unsigned integer: %s\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--max-shard-size") && v) {
            if (parse_u64(v, &max_shard) || max_shard == 0) {
                fprintf(stderr, "mimo-mkfixture: --max-shard-size: need an integer >= 1: %s\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            uint64_t n = 0;
            if (parse_u64(v, &n) || n < 1 || n > 64) {
                fprintf(stderr, "mimo-mkfixture: --threads: need 1..64: %s\n", v);
                return 2;
            }
            gen_threads = (int)n;
            i++;
        } else if ((!strcmp(a, "--vocab") || !strcmp(a, "--experts") || !strcmp(a, "--layers")) && v) {
            uint64_t n = 0;
            if (parse_u64(v, &n) || n < 1) {
                fprintf(stderr, "mimo-mkfixture: %s: need an integer >= 1: %s\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--vocab"))
                vocab = n;
            else if (!strcmp(a, "--experts"))
                experts = n;
            else
                layers = n;
            i++;
        } else if (!strcmp(a, "--tokenizer") && v) {
            tokenizer = v;
            i++;
        } else if (!strcmp(a, "--no-drafter")) {
            drafter = 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else {
            fprintf(stderr, "mimo-mkfixture: unknown or incomplete option: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    fx_geometry g;
    if (!preset || fx_geometry_preset(preset, &g) != 0) {
        fprintf(stderr, "mimo-mkfixture: --preset must be tiny or medium\n");
        return 2;
    }
    /* The shipped tokenizer's special ids are the preset vocabulary's last ones (the config's
     * eos and pad, the drafter's MASK): another vocabulary would contradict it. */
    if (tokenizer && vocab && vocab != g.vocab) {
        fprintf(stderr, "mimo-mkfixture: --tokenizer needs the preset's vocabulary (%u), not "
                        "--vocab %llu: its special ids are the vocabulary's last ones\n",
                g.vocab, (unsigned long long)vocab);
        return 2;
    }
    char why[160];
    if (fx_geometry_resize(&g, vocab, experts, layers, why, sizeof(why)) != 0) {
        fprintf(stderr, "mimo-mkfixture: %s\n", why);
        return 2;
    }
    if (!variant || (strcmp(variant, "bf16") && strcmp(variant, "fp8") && strcmp(variant, "f32"))) {
        fprintf(stderr, "mimo-mkfixture: --variant must be bf16, fp8 or f32\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "mimo-mkfixture: --out is required\n");
        return 2;
    }
    int fp8 = !strcmp(variant, "fp8");
    if (!max_shard)
        max_shard = g.shard_bytes;
    FILE *tok_src = NULL;
    if (tokenizer && !(tok_src = open_tokenizer(tokenizer)))
        return 3;
    if (prepare_dir(out)) {
        if (tok_src)
            fclose(tok_src);
        return 3;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (!quiet)
        fprintf(stderr, "mimo-mkfixture: %s %s seed %" PRIu64 " -> %s\n", preset, variant, seed, out);
    fx_list bb = {0};
    build_backbone(&g, fp8, &bb);
    if (!strcmp(variant, "f32")) /* the bf16 variant's tensors, stored as F32 */
        for (size_t i = 0; i < bb.n; i++)
            if (bb.t[i].dtype == LQ_DTYPE_BF16)
                bb.t[i].dtype = LQ_DTYPE_F32;
    size_t nbb = bb.n;
    write_backbone_config(out, &g, fp8, !strcmp(variant, "f32"));
    uint64_t bytes = write_shards(out, "model", 1, 0, &bb, seed, max_shard);
    free(bb.t);

    size_t nd = 0;
    if (drafter && g.d_layers) {
        char ddir[4096];
        fmt(ddir, sizeof(ddir), "%s/dflash", out);
        if (prepare_dir(ddir))
            return 3;
        fx_list dl = {0};
        build_drafter(&g, &dl);
        nd = dl.n;
        write_drafter_config(ddir, &g);
        /* MiMo ships one drafter file plus an index naming it. */
        bytes += write_shards(ddir, "dflash_draft_model", 1, 1, &dl, seed, UINT64_MAX);
        free(dl.t);
        /* The mask embedding: one bf16 row of the drafter's hidden size. */
        float *row = malloc(g.d_hidden * sizeof(float));
        uint16_t *bf = malloc(g.d_hidden * sizeof(uint16_t));
        if (!row || !bf)
            die_oom();
        fx_gen_row(seed, "dflash.mask_embedding", 0, g.d_hidden, FX_NORMAL, 0.02f, row);
        lq_from_f32(LQ_DTYPE_BF16, row, g.d_hidden, bf);
        char path[4200];
        fmt(path, sizeof(path), "%s/mask_embedding.pt", ddir);
        lq_error err;
        if (lq_torchzip_write_mask(path, "mask_embedding", g.d_mask_id, bf, g.d_hidden, NULL, &err) != LQ_OK)
            fail_lq(&err);
        free(row);
        free(bf);
    }
    if (tok_src)
        copy_tokenizer(tok_src, tokenizer, out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s: %s %s, %zu backbone tensors, %zu drafter tensors, %" PRIu64 " bytes, %.2f s\n",
           out, preset, variant, nbb, nd, bytes, secs);
    return 0;
}
