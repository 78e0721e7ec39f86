/* mimo-mkfixture: writes a deterministic MiMo-architecture checkpoint in the exact HF layout.
 *
 *   --variant bf16: MiMo-V2-Flash names (model_type mimo_v2_flash), split q/k/v, all BF16
 *                   except the F32 router; the numerics reference.
 *   --variant fp8 : MiMo-V2.5/Pro names (model_type mimo_v2), fused qkv interleaved over
 *                   checkpoint-TP shards, every linear except o_proj in F8_E4M3 with 128x128
 *                   weight_scale_inv grids (per-shard grid for the fused qkv), o_proj,
 *                   embeddings, lm_head, norms and sinks BF16, router F32.
 * Both variants hold the same logical weights (fixture.h). tiny and medium also get a DFlash
 * drafter in dflash/ (config.json, dflash_draft_model.safetensors, index, mask_embedding.pt):
 * tiny's is small, medium's has the release drafter's geometry at medium's hidden size.
 * --tokenizer FILE copies a tokenizer.json in beside them (fixtures/tokenizer/ holds one made for
 * the tiny preset's vocabulary). --vocab, --experts and --layers resize a preset (fixture.h:
 * fx_geometry_resize), e.g. MiMo's real vocabulary or more than 1024 experts for the hostile
 * tests; left at the preset's values they change nothing, so default output stays identical.
 * --preset pro is MiMo-V2.5-Pro's FP8 checkpoint as reference/mimo_arch.md 4.1 lists it (159,581
 * tensors with their names, shapes and dtypes, MTP layers included, in Pro's own files and index):
 * with --sparse its headers are written true and its 1.03 TB of data left as holes; with
 * --dims tiny it keeps every name at tiny widths and real generated data, so the converter can
 * run on Pro's tensor names and count in seconds.
 *
 * Everything is streamed through the library's safetensors writer a row block at a time, so
 * the medium preset (~12 GB BF16) needs a few tens of MB of RAM. FP8 tensors take two passes:
 * their F32 scale grids sort before the 1-byte weights in a safetensors file, so the grids are
 * computed first and kept (they are 1/16384 of the weights), then the weights are regenerated
 * and written. */
#include <errno.h>
#include <fcntl.h>
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

static uint64_t rows_of(const fx_tensor *t) { return t->rank == 1 ? 1 : t->shape[0]; }
static uint64_t cols_of(const fx_tensor *t) { return t->rank == 1 ? t->shape[0] : t->shape[1]; }
static uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

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

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const fx_tensor *)a)->name, ((const fx_tensor *)b)->name);
}

static int cmp_key(const void *key, const void *b)
{
    return strcmp((const char *)key, ((const fx_tensor *)b)->name);
}

/* l is sorted by name (write_shards sorts it first): a binary search, so that a 160k-tensor
 * fixture is not quadratic in its tensor count. */
static fx_tensor *find(fx_list *l, const char *name)
{
    return bsearch(name, l->t, l->n, sizeof(*l->t), cmp_key);
}

/* ---- MiMo-V2.5-Pro's files ---- */

/* The file a tensor goes to in Pro's layout (g->ep_ranks > 0). reference/mimo_arch.md 4 names the
 * files (model_pp0_ep{N}_shard{M}.safetensors, experts grouped by EP rank, model_mtp.safetensors)
 * but not which tensor goes where; public notes on Pro's index give the rest: 34 files, the 32 EP
 * ranks holding 12 experts each over every MoE layer, rank 0 also holding the non-expert backbone
 * split over two files (embed_tokens in shard0, lm_head in shard1), the MTP layers alone in
 * model_mtp. Where rank 0 is cut is not known: this layout cuts it at layer 39 of 70 (decoder
 * layers below it, and rank 0's experts of those layers, with embed_tokens in shard0; the rest,
 * model.norm and lm_head in shard1), which puts the two files within 2% of the sizes the notes
 * give (34.55 and 27.18 GB). With fewer experts (--experts N) each rank keeps ceil(N / 32). */
static void pro_file(const fx_geometry *g, const char *name, char *out, size_t cap)
{
    unsigned L = 0, e = 0;
    int n = 0;
    uint32_t per = (g->experts + g->ep_ranks - 1) / g->ep_ranks;
    uint32_t cut = g->layers * 39 / 70;
    if (!strncmp(name, "model.mtp.", 10)) {
        fmt(out, cap, "model_mtp.safetensors");
        return;
    }
    if (sscanf(name, "model.layers.%u.mlp.experts.%u.%n", &L, &e, &n) == 2 && n > 0 && e / per > 0) {
        fmt(out, cap, "model_pp0_ep%u_shard0.safetensors", e / per);
        return;
    }
    int first;
    if (sscanf(name, "model.layers.%u.%n", &L, &n) == 1 && n > 0)
        first = L < cut;
    else
        first = !strcmp(name, "model.embed_tokens.weight");
    fmt(out, cap, "model_pp0_ep0_shard%d.safetensors", first ? 0 : 1);
}

/* Same layout rule as the library's writer (stwriter.h: dtype enum descending, then name). */
static int cmp_layout(const void *a, const void *b)
{
    const fx_tensor *x = *(const fx_tensor *const *)a, *y = *(const fx_tensor *const *)b;
    if (x->dtype != y->dtype)
        return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Writes a safetensors file whose header is the one the library's writer would write for these
 * tensors and whose data section is a hole of the right length (ftruncate: no data block is
 * allocated, every value reads as zero). Returns the file size. */
static uint64_t write_sparse(const char *path, fx_tensor **t, size_t n)
{
    qsort(t, n, sizeof(*t), cmp_layout);
    size_t cap = 64 + n * 160, len = 0;
    char *h = malloc(cap);
    if (!h)
        die_oom();
    len += (size_t)snprintf(h, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        char shape[64];
        if (t[i]->rank == 1)
            fmt(shape, sizeof(shape), "%" PRIu64, t[i]->shape[0]);
        else
            fmt(shape, sizeof(shape), "%" PRIu64 ",%" PRIu64, t[i]->shape[0], t[i]->shape[1]);
        /* fixture names are plain ASCII without quotes or backslashes: no escaping needed */
        size_t need = strlen(t[i]->name) + strlen(shape) + 120;
        if (len + need + 8 > cap) {
            cap = 2 * cap + need;
            if (!(h = realloc(h, cap)))
                die_oom();
        }
        len += (size_t)snprintf(h + len, cap - len,
                                ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%" PRIu64
                                ",%" PRIu64 "]}", t[i]->name, lq_dtype_name(t[i]->dtype), shape, off,
                                off + t[i]->nbytes);
        off += t[i]->nbytes;
    }
    h[len++] = '}';
    while (len % 8)
        h[len++] = ' ';
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)len >> (8 * i));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    int ok = fd >= 0 && write(fd, len8, 8) == 8 && write(fd, h, len) == (ssize_t)len &&
             ftruncate(fd, (off_t)(8 + len + off)) == 0;
    /* The FP8 scale grids (0.02% of Pro's bytes) are written as 1.0: a zero weight_scale_inv is
     * refused by the value checks (VAL_SCALE_INV), and with them the replica converts (its
     * weights read as zero). */
    float *ones = NULL;
    size_t ones_n = 0;
    off = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (t[i]->scale_of >= 0 && t[i]->dtype == LQ_DTYPE_F32) {
            size_t k = (size_t)(t[i]->nbytes / sizeof(float));
            if (k > ones_n) {
                free(ones);
                if (!(ones = malloc(k * sizeof(float))))
                    die_oom();
                for (size_t j = 0; j < k; j++)
                    ones[j] = 1.0f;
                ones_n = k;
            }
            ok = pwrite(fd, ones, (size_t)t[i]->nbytes, (off_t)(8 + len + off)) == (ssize_t)t[i]->nbytes;
        }
        off += t[i]->nbytes;
    }
    free(ones);
    if (!ok || close(fd) != 0) {
        fprintf(stderr, "mimo-mkfixture: %s: %s\n", path, strerror(errno));
        exit(3);
    }
    free(h);
    return 8 + len + off;
}

/* Writes the tensors of l into dir as `prefix` shards (plus an index when there is more than
 * one shard, or always when force_index), returns total bytes of files written. */
static uint64_t write_shards(const char *dir, const char *prefix, int single_name, int force_index,
                             fx_list *l, uint64_t seed, uint64_t max_shard, const fx_geometry *pro,
                             int sparse)
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
    uint32_t nshards;
    char (*pro_names)[64] = NULL;
    if (pro) {
        /* Pro's files, in name order (the order the listing of the real repository gives). */
        char (*fn)[64] = malloc(l->n * sizeof(*fn));
        if (!fn)
            die_oom();
        for (size_t i = 0; i < l->n; i++)
            pro_file(pro, l->t[i].name, fn[i], sizeof(fn[i]));
        if (!(pro_names = malloc(l->n * sizeof(*pro_names))))
            die_oom();
        nshards = 0;
        for (size_t i = 0; i < l->n; i++) {
            uint32_t k = 0;
            while (k < nshards && strcmp(pro_names[k], fn[i]) != 0)
                k++;
            if (k == nshards)
                memcpy(pro_names[nshards++], fn[i], sizeof(fn[i]));
            shard_of[i] = k;
        }
        free(fn);
    } else {
        nshards = lq_shard_plan(sizes, l->n, max_shard, shard_of);
    }

    /* Pass 1: scale grids of every FP8 weight (a sparse file has no data to compute them for). */
    size_t fbuf_elems = 1u << 22; /* 16 MiB of f32; at least 128 rows of 16384 columns */
    float *fbuf = malloc(fbuf_elems * sizeof(float));
    uint8_t *qbuf = malloc(fbuf_elems * sizeof(float));
    if (!fbuf || !qbuf)
        die_oom();
    for (size_t i = 0; i < l->n && !sparse; i++)
        if (l->t[i].fp8)
            fp8_walk(seed, &l->t[i], NULL, fbuf, qbuf);

    uint64_t total_files = 0, total_tensor = 0;
    char **files = calloc(l->n, sizeof(char *));
    const char **names = calloc(l->n, sizeof(char *));
    fx_tensor **members = calloc(l->n, sizeof(*members));
    if (!files || !names || !members)
        die_oom();
    for (uint32_t s = 0; s < nshards; s++) {
        char fname[256], path[4096];
        if (pro)
            fmt(fname, sizeof(fname), "%s", pro_names[s]);
        else
            lq_shard_name(prefix, s, nshards, single_name && nshards == 1, fname, sizeof(fname));
        fmt(path, sizeof(path), "%s/%s", dir, fname);
        if (sparse) {
            size_t m = 0;
            for (size_t i = 0; i < l->n; i++) {
                if (shard_of[i] != s)
                    continue;
                members[m++] = &l->t[i];
                total_tensor += l->t[i].nbytes;
                names[i] = l->t[i].name;
                if (!(files[i] = strdup(fname)))
                    die_oom();
            }
            uint64_t fsize = write_sparse(path, members, m);
            total_files += fsize;
            if (!quiet)
                fprintf(stderr, "  %s  %" PRIu64 " bytes (sparse), %zu tensors\n", fname, fsize, m);
            continue;
        }
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
    if (nshards > 1 || force_index || pro) {
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
    free(members);
    free(pro_names);
    free(fbuf);
    free(qbuf);
    free(sizes);
    free(shard_of);
    return total_files;
}

/* ---- config.json ---- */

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
    write_json(dir, "config.json", fx_config_backbone(g, fp8, f32));
}

static void write_drafter_config(const char *dir, const fx_geometry *g)
{
    write_json(dir, "config.json", fx_config_drafter(g));
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
        "usage: mimo-mkfixture --preset tiny|medium|pro --variant bf16|fp8|f32 --out DIR [options]\n"
        "Writes a deterministic MiMo-architecture checkpoint in the HF layout.\n"
        "  --preset P          tiny (hidden 256, 12 layers, 16 experts, ~46 MB BF16, with a small\n"
        "                      DFlash drafter), medium (MiMo-V2-Flash layer geometry, 6 layers, 32\n"
        "                      experts of 2048, ~12 GB BF16 / ~7 GB FP8, with a 3.6 GB BF16 drafter\n"
        "                      of the MiMo-V2.5-Pro release drafter's geometry at hidden 4096: 5\n"
        "                      layers, 128 heads / 8 KV heads of 128, SwiGLU 16384, window 1024,\n"
        "                      block 8) or pro (MiMo-V2.5-Pro's FP8 checkpoint: its 159,581 tensor\n"
        "                      names, shapes and dtypes, 70 layers, 384 experts, 3 MTP layers, its\n"
        "                      files model_pp0_ep{N}_shard{M} and model_mtp; 1.03 TB of data, so\n"
        "                      only with --sparse or --dims tiny; fp8 only, no drafter). Required.\n"
        "  --dims D            real or tiny (default real); tiny only with --preset pro: Pro's names,\n"
        "                      layer pattern, 8 KV heads, 8-shard fused qkv, MTP layers and files\n"
        "                      with vocab 4096, hidden 128, 16 q heads, dense 256, experts of 32\n"
        "                      (~450 MB at 384 experts)\n"
        "  --sparse            write every safetensors header true and leave the data a hole of\n"
        "                      the right length (ftruncate), except the FP8 scale grids, written\n"
        "                      as 1.0 so that the replica passes the value checks: the weights\n"
        "                      read as zeros and Pro takes ~300 MB of disk (default: generate)\n"
        "  --variant V         bf16 (split q/k/v, mimo_v2_flash names), fp8 (block-128 FP8,\n"
        "                      fused qkv, mimo_v2 names) or f32 (bf16's layout stored as F32).\n"
        "                      Required.\n"
        "  --out DIR           output directory; must not exist or be empty. Required.\n"
        "  --seed N            generator seed, 0..2^64-1 (default 1)\n"
        "  --max-shard-size B  bytes of tensor data per shard, >= 1 (default: tiny 8000000,\n"
        "                      medium 5000000000); not with pro, whose files are Pro's own\n"
        "  --vocab N           vocabulary size, 8..2147483647 (default: tiny 4096, medium and pro\n"
        "                      152576, pro --dims tiny 4096); eos, pad and the drafter's mask id\n"
        "                      stay the last three ids (pro writes no eos / pad); not with\n"
        "                      --tokenizer unless N is the preset's own\n"
        "  --experts N         routed experts per MoE layer, 8..65536 (default: tiny 16, medium\n"
        "                      32, pro 384); top-8 routing and the expert size stay. pro: tensors\n"
        "                      = 605 + 414 N (N = 23: 10,127; 95: 39,935; 384: 159,581)\n"
        "  --layers N          decoder layers, 1..128 (default: tiny 12, medium 6, pro 70): the\n"
        "                      preset's attention pattern repeated, layer 0 dense, the rest MoE;\n"
        "                      the drafter taps layers 0, (N-1)/2 and N-1 (tiny), or the release's\n"
        "                      0/15/31/47/69 of 70 scaled to N-1 (medium: 0/1/2/3/5)\n"
        "  --threads N         generator threads, 1..64 (default 1); output does not depend on it\n"
        "  --no-drafter        do not write dflash/\n"
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
    const char *preset = NULL, *variant = NULL, *out = NULL, *tokenizer = NULL, *dims = "real";
    int sparse = 0;
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
        } else if (!strcmp(a, "--dims") && v) {
            dims = v;
            i++;
        } else if (!strcmp(a, "--sparse")) {
            sparse = 1;
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
    if (!preset || (strcmp(preset, "tiny") && strcmp(preset, "medium") && strcmp(preset, "pro"))) {
        fprintf(stderr, "mimo-mkfixture: --preset must be tiny, medium or pro\n");
        return 2;
    }
    if (strcmp(dims, "real") && strcmp(dims, "tiny")) {
        fprintf(stderr, "mimo-mkfixture: --dims must be real or tiny\n");
        return 2;
    }
    int tiny_dims = !strcmp(dims, "tiny");
    if (tiny_dims && strcmp(preset, "pro")) {
        fprintf(stderr, "mimo-mkfixture: --dims tiny goes with --preset pro only\n");
        return 2;
    }
    fx_geometry_preset(tiny_dims ? "pro-tiny" : preset, &g);
    if (g.ep_ranks) {
        /* Pro is an FP8 checkpoint in its own files; its real data would be 1.03 TB. */
        if (!variant || strcmp(variant, "fp8")) {
            fprintf(stderr, "mimo-mkfixture: --preset pro is MiMo-V2.5-Pro's FP8 checkpoint: "
                            "--variant fp8\n");
            return 2;
        }
        if (max_shard) {
            fprintf(stderr, "mimo-mkfixture: --max-shard-size does not apply to --preset pro "
                            "(Pro's own files)\n");
            return 2;
        }
        if (!tiny_dims && !sparse) {
            fprintf(stderr, "mimo-mkfixture: --preset pro at real dims is 1.03 TB of data: add "
                            "--sparse, or --dims tiny\n");
            return 2;
        }
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
        fprintf(stderr, "mimo-mkfixture: %s %s seed %" PRIu64 "%s -> %s\n", g.preset, variant, seed,
                sparse ? " (sparse)" : "", out);
    fx_list bb = {0};
    fx_plan_backbone(&g, fp8, &bb);
    if (!strcmp(variant, "f32")) /* the bf16 variant's tensors, stored as F32 */
        for (size_t i = 0; i < bb.n; i++)
            if (bb.t[i].dtype == LQ_DTYPE_BF16)
                bb.t[i].dtype = LQ_DTYPE_F32;
    size_t nbb = bb.n;
    write_backbone_config(out, &g, fp8, !strcmp(variant, "f32"));
    uint64_t bytes = write_shards(out, "model", 1, 0, &bb, seed, max_shard, g.ep_ranks ? &g : NULL,
                                  sparse);
    free(bb.t);

    size_t nd = 0;
    if (drafter && g.d_layers) {
        char ddir[4096];
        fmt(ddir, sizeof(ddir), "%s/dflash", out);
        if (prepare_dir(ddir))
            return 3;
        fx_list dl = {0};
        fx_plan_drafter(&g, &dl);
        nd = dl.n;
        write_drafter_config(ddir, &g);
        /* MiMo ships one drafter file plus an index naming it. */
        bytes += write_shards(ddir, "dflash_draft_model", 1, 1, &dl, seed, UINT64_MAX, NULL, sparse);
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
    printf("%s: %s %s%s, %zu backbone tensors, %zu drafter tensors, %" PRIu64 " bytes, %.2f s\n",
           out, g.preset, variant, sparse ? " sparse" : "", nbb, nd, bytes, secs);
    return 0;
}
