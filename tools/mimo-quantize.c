/* mimo-quantize: BF16 / F32 / block-FP8 MiMo checkpoints -> the MiMo MXFP4-expert release layout.
 *
 *   mimo-quantize SRC OUT [options]            convert (or --part i/N into a part directory)
 *   mimo-quantize merge OUT PART_DIR... [opts]  assemble the parts of a distributed conversion
 *
 * main parses and calls the library: the plan (libquant/plan.h) is built from headers, printed
 * for --dry-run, then run (libquant/convert.h) and finalized. Results go to stdout, progress and
 * errors to stderr. Exit: 0 ok, 1 a quality gate failed, 2 usage, 3 bad input or I/O,
 * 130 / 143 interrupted by SIGINT / SIGTERM (completed shards are kept for --resume). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "libquant/convert.h"
#include "libquant/drafter.h"
#include "libquant/jsonw.h"
#include "libquant/libquant.h"
#include "libquant/mimo_config.h"

static volatile sig_atomic_t g_cancel;
static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
    g_cancel = 1;
}

typedef struct cli {
    const char *src, *out, *drafter, *sign_key;
    int no_drafter, dry_run, resume, quiet, json, threads, allow_outside;
    uint32_t part, nparts;
    lq_plan_opts popts;
    lq_gate gate;
} cli;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-quantize SRC OUT [options]\n"
        "       mimo-quantize merge OUT PART_DIR... [--sign-key KEY.pem] [gates] [-q] [--format F]\n"
        "Converts a BF16, F32 or block-FP8 MiMo checkpoint (mimo_v2_flash or mimo_v2) to the MiMo\n"
        "MXFP4-expert release layout: routed experts -> MXFP4 weight + weight_scale, everything else\n"
        "unchanged. OUT must not exist; it appears only when complete.\n"
        "  --scale-mode M        mse (default), even, floor or rceil\n"
        "  --layout L            mimo (default) or compressed-tensors (mxfp4-pack-quantized)\n"
        "  --include PAT         also quantize matching weight tensors (repeatable)\n"
        "  --exclude PAT         do not quantize matching weight tensors (repeatable)\n"
        "                        PAT is a glob over the full tensor name (* ? [..]) or re:REGEX\n"
        "                        (POSIX ERE, whole name); patterns apply in order, the later wins;\n"
        "                        a pattern matching no weight tensor is an error\n"
        "  --max-shard-size N    bytes of tensor data per output shard, >= 1; suffixes k M G\n"
        "                        (powers of 1000) (default 5G)\n"
        "  --threads N           quantizer threads, 1..256 (default: all online cores)\n"
        "  --drafter DIR         DFlash drafter to pack into OUT/dflash (default: SRC/dflash if present)\n"
        "  --no-drafter          do not pack a drafter\n"
        "  --dry-run             print the plan, sizes, bits per weight, RAM and disk needed; write nothing\n"
        "  --resume              continue a killed run from its completed shards (same inputs and options)\n"
        "  --part I/N            convert part I of N (1 <= I <= N <= 4096) into OUT as a part directory;\n"
        "                        free disk is checked against what the part writes\n"
        "  --min-sqnr DB         fail (exit 1) if any MXFP4 tensor's SQNR is below DB\n"
        "  --min-cosine C        fail if any MXFP4 tensor's cosine similarity is below C\n"
        "  --max-clip F          fail if any MXFP4 tensor clips more than fraction F of its elements\n"
        "  --sign-key KEY.pem    sign mimo-manifest.json with this Ed25519 private key\n"
        "  --allow-outside-links accept shards that are symlinks out of SRC (Hugging Face cache)\n"
        "  -q, --quiet           no progress on stderr\n"
        "  --format F            text (default) or json (JSON lines of progress on stderr, JSON result\n"
        "                        on stdout)\n"
        "  -h, --help            this text\n"
        "Exit status: 0 written, 1 quality gate failed, 2 usage error, 3 bad input or I/O error,\n"
        "130/143 interrupted (rerun with --resume).\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1000ull, end++;
    else if (*end == 'M')
        mul = 1000000ull, end++;
    else if (*end == 'G')
        mul = 1000000000ull, end++;
    else if (*end == 'T')
        mul = 1000000000000ull, end++;
    if (*end || (v && mul > UINT64_MAX / v))
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Prints s as a JSON string literal on f. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void print_err(const lq_error *err)
{
    char buf[1600];
    fprintf(stderr, "mimo-quantize: error: %s\n", lq_error_format(err, buf, sizeof(buf)));
}

static int exit_for(lq_status st)
{
    switch (st) {
    case LQ_OK: return 0;
    case LQ_ERR_CHECK_FAILED: return 1;
    case LQ_ERR_CANCELLED: return g_signal == SIGTERM ? 143 : 130;
    default: return 3;
    }
}

/* ---- progress ---- */

typedef struct progress {
    int quiet, json;
    double t0, last;
    uint64_t start_bytes; /* bytes already done when this process started (resume) */
    int started;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_tensor(void *user, const lq_tensor_event *ev)
{
    progress *pr = user;
    double t = now_s();
    if (!pr->started) {
        pr->started = 1;
        pr->start_bytes = ev->done_bytes - ev->in_bytes;
    }
    int last = ev->done_tensors == ev->total_tensors;
    if (pr->quiet || (!last && t - pr->last < 0.05))
        return; /* throttled to 20 lines a second */
    pr->last = t;
    double el = t - pr->t0;
    double rate = el > 0 ? (double)(ev->done_bytes - pr->start_bytes) / el : 0;
    double pct = ev->total_bytes ? 100.0 * (double)ev->done_bytes / (double)ev->total_bytes : 100.0;
    double eta = rate > 0 ? (double)(ev->total_bytes - ev->done_bytes) / rate : 0;
    const lq_plan_tensor *pt = ev->t;
    char shape[64] = "";
    const lq_tensor_info *si = pt->src.info;
    for (uint32_t k = 0; k < si->rank; k++) {
        size_t l = strlen(shape);
        snprintf(shape + l, sizeof(shape) - l, "%s%" PRIu64, k ? "x" : "", si->shape[k]);
    }
    const char *fmt = pt->rule == LQ_RULE_MXFP4 ? "MXFP4" : lq_dtype_name(pt->dtype);
    if (pr->json) {
        fprintf(stderr, "{\"event\":\"tensor\",\"name\":");
        json_str(stderr, pt->name);
        fprintf(stderr, ",\"shape\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"in_bytes\":%" PRIu64
                        ",\"out_bytes\":%" PRIu64 ",\"sqnr_db\":", shape, lq_dtype_name(si->dtype), fmt,
                ev->in_bytes, ev->out_bytes);
        if (ev->quantized && isfinite(ev->m.sqnr_db))
            fprintf(stderr, "%.3f", ev->m.sqnr_db);
        else
            fprintf(stderr, "null");
        fprintf(stderr, ",\"done\":%zu,\"total\":%zu,\"percent\":%.2f,\"bytes_per_s\":%.0f,\"eta_s\":%.0f}\n",
                ev->done_tensors, ev->total_tensors, pct, rate, eta);
        return;
    }
    char sq[32] = "";
    if (ev->quantized)
        snprintf(sq, sizeof(sq), " SQNR %.2f dB", ev->m.sqnr_db);
    fprintf(stderr, "[%6zu/%zu %5.1f%%] %s %s %s -> %s %.2f MiB -> %.2f MiB%s | %.1f MB/s ETA %.0f s\n",
            ev->done_tensors, ev->total_tensors, pct, pt->name, shape, lq_dtype_name(si->dtype), fmt,
            (double)ev->in_bytes / 1048576.0, (double)ev->out_bytes / 1048576.0, sq, rate / 1e6, eta);
}

/* ---- the plan, printed ---- */

typedef struct sizes {
    uint64_t *shard_file;     /* exact file size of each shard (header included); a real run
                               * fills only its part's shards */
    uint32_t s0, s1;          /* the shards this run writes: [s0, s1) */
    uint64_t shards;          /* file bytes of shards s0..s1-1 */
    uint64_t extras;          /* config.json, copied files, drafter (written by part 1) */
    uint64_t book;            /* this run's bookkeeping in its work directory (an upper estimate) */
    uint64_t meta;            /* index, manifest and report that finalize/merge write (estimate) */
    uint64_t out_total;       /* the whole output: every shard, extras and meta */
    uint64_t need;            /* this run: a single run's whole output and bookkeeping, or one part */
    uint64_t merge_same_fs;   /* merge with the part directories on OUT's file system (renames) */
    uint64_t merge_other_fs;  /* merge with them elsewhere (every file copied in) */
    uint64_t free_b;          /* free bytes where OUT is made */
    uint64_t ram;             /* peak estimate */
} sizes;

/* Exact file size of each shard in [s0, s1): the headers are laid out by the real writer in
 * memory (lq_stw_measure), nothing touches the disk. Two passes over the plan: one counts each
 * shard's tensors so its writer is sized once, one declares them (names borrowed from the
 * plan). */
static lq_status shard_sizes(const lq_plan *p, uint32_t s0, uint32_t s1, uint64_t *file, lq_error *err)
{
    lq_status st = LQ_OK;
    size_t ns = (size_t)(s1 - s0);
    lq_stw **w = calloc(ns + 1, sizeof(*w));
    size_t *cnt = calloc(2 * ns + 1, sizeof(*cnt));
    if (!w || !cnt) {
        free(w);
        free(cnt);
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].shard >= s0 && p->t[i].shard < s1) {
            cnt[2 * (p->t[i].shard - s0)]++;
            cnt[2 * (p->t[i].shard - s0) + 1] += p->t[i].rank;
        }
    for (uint32_t s = s0; s < s1 && st == LQ_OK; s++) {
        st = lq_stw_create(p->shard_names[s], &w[s - s0], err);
        if (st == LQ_OK)
            st = lq_stw_borrow_names(w[s - s0], err);
        if (st == LQ_OK)
            st = lq_stw_reserve(w[s - s0], cnt[2 * (s - s0)], cnt[2 * (s - s0) + 1], err);
    }
    free(cnt);
    for (size_t i = 0; i < p->n && st == LQ_OK; i++)
        if (p->t[i].shard >= s0 && p->t[i].shard < s1)
            st = lq_stw_add(w[p->t[i].shard - s0], p->t[i].name, p->t[i].dtype, p->t[i].rank, p->t[i].shape, err);
    for (uint32_t s = s0; s < s1 && st == LQ_OK; s++) {
        uint64_t hlen = 0, data = 0;
        if ((st = lq_stw_measure(w[s - s0], &hlen, &data, err)) == LQ_OK)
            file[s] = 8 + hlen + data;
    }
    for (uint32_t s = s0; s < s1; s++)
        lq_stw_abort(w[s - s0]);
    free(w);
    return st;
}

/* Index, manifest and report of the whole output (written by finalize or merge): an upper
 * estimate from the names. Measured on the tiny fixture: index 44, manifest 182 bytes per tensor
 * beside its name, report 314 per MXFP4 tensor beside its name. */
static uint64_t meta_estimate(const lq_plan *p)
{
    uint64_t r = 65536 + (uint64_t)p->nshards * 256;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t nl = strlen(p->t[i].name), sl = strlen(p->shard_names[p->t[i].shard]);
        r += 2 * (nl + sl) + 64 + 160;                       /* index and manifest entries */
        if (p->t[i].rule == LQ_RULE_MXFP4)
            r += nl + 512;                                    /* report entry */
    }
    return r;
}

/* A part's bookkeeping in its work directory: the plan record (every tensor), one record per
 * finished shard (error accumulators of its MXFP4 tensors), one per hashed source file. Upper
 * estimate; measured on the tiny fixture: plan 60 bytes per tensor beside its name, 140 per MXFP4
 * tensor in a shard record, 144 per source record. */
static uint64_t book_estimate(const lq_plan *p, size_t nsrc, uint32_t s0, uint32_t s1, uint32_t f0, uint32_t f1)
{
    uint64_t r = 8192 + (uint64_t)nsrc * 512 + (uint64_t)(s1 - s0) * 512 + (uint64_t)(f1 - f0) * 256;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t nl = strlen(p->t[i].name);
        r += nl + 128;
        if (p->t[i].rule == LQ_RULE_MXFP4 && p->t[i].shard >= s0 && p->t[i].shard < s1)
            r += nl + 256;
    }
    return r;
}

/* Free bytes of the file system where path would be created. MIMO_TEST_FREE_BYTES=N (tests)
 * stands for the file system's answer. */
static uint64_t free_space(const char *path)
{
    const char *fake = getenv("MIMO_TEST_FREE_BYTES");
    if (fake && *fake) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(fake, &end, 10);
        if (!errno && end && !*end && fake[0] != '-')
            return (uint64_t)v;
    }
    char parent[4200];
    snprintf(parent, sizeof(parent), "%s", path);
    char *sl = strrchr(parent, '/');
    if (sl)
        *sl = 0;
    struct statvfs vfs;
    if (statvfs(sl ? (parent[0] ? parent : "/") : ".", &vfs) != 0)
        return UINT64_MAX; /* unknown: the run itself reports a full disk */
    return (uint64_t)vfs.f_bavail * vfs.f_frsize;
}

/* Peak resident memory of the whole run (ru_maxrss), a model fitted to measurements (docs/cli.md,
 * docs/perf.md): a fixed part (program and libraries, thread stacks, source pages in flight, the
 * output writer's and the hashing's buffers); a part per source tensor (its header entry, the plan's
 * entries, the shard writer's entries, the finalize step's index of the plan and its records; the
 * last three per output tensor);
 * and the buffers that the largest tensors touch: the f32 rows and codes of one quantization chunk,
 * the scales of one tensor, one decode row per thread, and the source pages of one copy step of the
 * largest kept tensor. Measured on the tiny fixtures and the widened tiny checkpoints
 * (tests/bench/scale.sh, 10,014 to 159,702 source tensors) the per-tensor part is about 200 bytes
 * per source tensor and 400 per output tensor (1.0 kB per source tensor of a BF16 checkpoint, whose
 * expert weights become two output tensors); the fit is within 13% of every measured peak. A shard
 * of LQ_STW_DIRECT_MIN bytes or more adds the staging buffers of its direct writes (stwriter.h). */
#define RAM_FIXED ((uint64_t)17 << 20)
#define RAM_PER_SOURCE_TENSOR 200u
#define RAM_PER_OUTPUT_TENSOR 400u
#define RAM_COPY_STEP ((uint64_t)64 << 20) /* libquant/convert.c COPY_CHUNK */

static uint64_t ram_estimate(const lq_plan *p, size_t nsrc, int threads)
{
    uint64_t chunk = LQ_CONVERT_CHUNK_ELEMS > p->max_quant_cols ? LQ_CONVERT_CHUNK_ELEMS : p->max_quant_cols;
    uint64_t rows = p->max_quant_numel < chunk ? p->max_quant_numel : chunk; /* values one chunk touches */
    uint64_t kept = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].rule == LQ_RULE_KEEP && p->t[i].nbytes > kept)
            kept = p->t[i].nbytes;
    uint64_t r = RAM_FIXED + (uint64_t)nsrc * RAM_PER_SOURCE_TENSOR + (uint64_t)p->n * RAM_PER_OUTPUT_TENSOR;
    r += rows * 4 + rows / 2;                                 /* f32 rows + codes */
    r += p->max_quant_numel / 32;                             /* scales of one tensor */
    r += (uint64_t)threads * p->max_quant_cols * 4;           /* per-thread decode row */
    r += kept < RAM_COPY_STEP ? kept : RAM_COPY_STEP;         /* source pages of one copy step */
    for (uint32_t s = 0; s < p->nshards; s++)
        if (p->shard_bytes[s] >= LQ_STW_DIRECT_MIN) {       /* staged direct writes of a large shard */
            r += LQ_STW_DIRECT_BUFFER_BYTES;
            break;
        }
    return r;
}

static void print_plan(const cli *c, const lq_plan *p, const sizes *sz)
{
    size_t nrule[4] = {0};
    uint64_t qparams = 0;
    for (size_t i = 0; i < p->n; i++) {
        nrule[p->t[i].rule]++;
        if (p->t[i].rule == LQ_RULE_MXFP4)
            qparams += p->t[i].shape[0] * p->t[i].shape[1] * 2;
    }
    uint64_t cls_params[LQ_PLAN_NCLASSES] = {0}, cls_bytes[LQ_PLAN_NCLASSES] = {0};
    for (size_t i = 0; i < p->n; i++) {
        const lq_plan_tensor *t = &p->t[i];
        uint64_t params = 0;
        if (t->rule == LQ_RULE_MXFP4)
            params = t->shape[0] * t->shape[1] * 2;
        else if (t->rule != LQ_RULE_MXFP4_SCALE && !strstr(t->name, "_scale")) {
            params = 1;
            for (uint32_t k = 0; k < t->rank; k++)
                params *= t->shape[k];
            if (t->rule == LQ_RULE_PASSTHROUGH)
                params *= 2;
        }
        cls_params[t->mclass] += params;
        cls_bytes[t->mclass] += t->nbytes;
    }
    if (c->json) {
        lq_jw *w = lq_jw_new(2);
        lq_jw_begin_object(w);
        lq_jw_key(w, "layout");
        lq_jw_string(w, p->layout == LQ_LAYOUT_MIMO ? "mimo" : "compressed-tensors");
        lq_jw_key(w, "scale_mode");
        lq_jw_string(w, lq_mx_scale_mode_name(p->scale_mode));
        lq_jw_key(w, "patterns");
        lq_jw_begin_array(w);
        for (size_t k = 0; k < c->popts.npatterns; k++) {
            lq_jw_begin_object(w);
            lq_jw_key(w, c->popts.patterns[k].include ? "include" : "exclude");
            lq_jw_string(w, c->popts.patterns[k].text);
            lq_jw_key(w, "matched");
            lq_jw_u64(w, c->popts.patterns[k].matched);
            lq_jw_end_object(w);
        }
        lq_jw_end_array(w);
        lq_jw_key(w, "tensors");
        lq_jw_begin_object(w);
        lq_jw_key(w, "mxfp4");
        lq_jw_u64(w, nrule[LQ_RULE_MXFP4]);
        lq_jw_key(w, "keep");
        lq_jw_u64(w, nrule[LQ_RULE_KEEP]);
        lq_jw_key(w, "passthrough");
        lq_jw_u64(w, nrule[LQ_RULE_PASSTHROUGH]);
        lq_jw_key(w, "dropped");
        lq_jw_u64(w, p->ndropped);
        lq_jw_key(w, "output");
        lq_jw_u64(w, p->n);
        lq_jw_end_object(w);
        lq_jw_key(w, "mxfp4");
        lq_jw_begin_array(w);
        for (size_t i = 0; i < p->n; i++)
            if (p->t[i].rule == LQ_RULE_MXFP4)
                lq_jw_string(w, p->t[i].src.info->name);
        lq_jw_end_array(w);
        lq_jw_key(w, "shards");
        lq_jw_begin_array(w);
        for (uint32_t s = 0; s < p->nshards; s++) {
            lq_jw_begin_object(w);
            lq_jw_key(w, "name");
            lq_jw_string(w, p->shard_names[s]);
            lq_jw_key(w, "tensor_bytes");
            lq_jw_u64(w, p->shard_bytes[s]);
            lq_jw_key(w, "file_bytes");
            lq_jw_u64(w, sz->shard_file[s]);
            lq_jw_end_object(w);
        }
        lq_jw_end_array(w);
        lq_jw_key(w, "total_size");
        lq_jw_u64(w, p->total_bytes);
        lq_jw_key(w, "source_bytes");
        lq_jw_u64(w, p->src_bytes);
        lq_jw_key(w, "bits_per_weight");
        lq_jw_begin_object(w);
        for (int k = 0; k < LQ_PLAN_NCLASSES; k++)
            if (cls_params[k]) {
                lq_jw_key(w, lq_plan_class_name(k));
                lq_jw_double(w, 8.0 * (double)cls_bytes[k] / (double)cls_params[k], 6);
            }
        lq_jw_end_object(w);
        lq_jw_key(w, "ram_bytes");
        lq_jw_u64(w, sz->ram);
        lq_jw_key(w, "output_bytes");
        lq_jw_u64(w, sz->out_total);
        lq_jw_key(w, "disk_bytes");
        lq_jw_u64(w, sz->need);
        lq_jw_key(w, "disk_free_bytes");
        if (sz->free_b == UINT64_MAX)
            lq_jw_null(w);
        else
            lq_jw_u64(w, sz->free_b);
        if (c->nparts > 1) {
            lq_jw_key(w, "part");
            lq_jw_begin_object(w);
            lq_jw_key(w, "index");
            lq_jw_u64(w, c->part);
            lq_jw_key(w, "of");
            lq_jw_u64(w, c->nparts);
            lq_jw_key(w, "shards");
            lq_jw_begin_array(w);
            for (uint32_t s = sz->s0; s < sz->s1; s++)
                lq_jw_string(w, p->shard_names[s]);
            lq_jw_end_array(w);
            lq_jw_key(w, "shard_bytes");
            lq_jw_u64(w, sz->shards);
            lq_jw_key(w, "extras_bytes");
            lq_jw_u64(w, c->part == 1 ? sz->extras : 0);
            lq_jw_key(w, "record_bytes");
            lq_jw_u64(w, sz->book);
            lq_jw_end_object(w);
            lq_jw_key(w, "merge");
            lq_jw_begin_object(w);
            lq_jw_key(w, "disk_bytes_same_fs");
            lq_jw_u64(w, sz->merge_same_fs);
            lq_jw_key(w, "disk_bytes_other_fs");
            lq_jw_u64(w, sz->merge_other_fs);
            lq_jw_end_object(w);
        }
        lq_jw_end_object(w);
        char *text = NULL;
        if (lq_jw_finish(w, &text, NULL, NULL) == LQ_OK)
            fputs(text, stdout);
        free(text);
        lq_jw_free(w);
        return;
    }
    printf("plan: %s -> %s (layout %s, scale mode %s)\n", c->src, c->out,
           p->layout == LQ_LAYOUT_MIMO ? "mimo" : "compressed-tensors", lq_mx_scale_mode_name(p->scale_mode));
    for (size_t k = 0; k < c->popts.npatterns; k++) {
        printf("  --%s %s -> %" PRIu64 " weight tensors\n", c->popts.patterns[k].include ? "include" : "exclude",
               c->popts.patterns[k].text, c->popts.patterns[k].matched);
        /* pattern -> tensors -> format, as resolved after every pattern (the later wins) */
        size_t shown = 0;
        for (size_t i = 0; i < p->n; i++) {
            const lq_plan_tensor *t = &p->t[i];
            if (t->rule == LQ_RULE_MXFP4_SCALE || lq_pattern_match(c->popts.patterns[k].text, t->src.info->name) != 1)
                continue;
            if (shown++ < 8)
                printf("      %s -> %s\n", t->src.info->name,
                       t->rule == LQ_RULE_MXFP4 ? "MXFP4" : lq_dtype_name(t->dtype));
        }
        if (shown > 8)
            printf("      ... and %zu more\n", shown - 8);
    }
    printf("tensors: %zu to MXFP4 (%.3f G params), %zu kept, %zu passed through (already MXFP4), "
           "%zu dropped (weight_scale_inv of quantized FP8 weights); %zu in the output\n",
           nrule[LQ_RULE_MXFP4], (double)qparams / 1e9, nrule[LQ_RULE_KEEP], nrule[LQ_RULE_PASSTHROUGH],
           p->ndropped, p->n);
    printf("shards: %u, %" PRIu64 " bytes of tensors (source: %" PRIu64 ")\n", p->nshards, p->total_bytes, p->src_bytes);
    for (uint32_t s = 0; s < p->nshards; s++)
        printf("  %s  %" PRIu64 " bytes\n", p->shard_names[s], sz->shard_file[s]);
    printf("bits per weight:\n");
    for (int k = 0; k < LQ_PLAN_NCLASSES; k++)
        if (cls_params[k])
            printf("  %-15s %8.3f  (%" PRIu64 " params)\n", lq_plan_class_name(k),
                   8.0 * (double)cls_bytes[k] / (double)cls_params[k], cls_params[k]);
    char fb[32] = "unknown";
    if (sz->free_b != UINT64_MAX)
        snprintf(fb, sizeof(fb), "%" PRIu64, sz->free_b);
    if (c->nparts > 1) {
        if (sz->s1 > sz->s0)
            printf("part %u/%u: shards %s .. %s (%u of %u, %" PRIu64 " bytes)%s\n", c->part, c->nparts,
                   p->shard_names[sz->s0], p->shard_names[sz->s1 - 1], sz->s1 - sz->s0, p->nshards, sz->shards,
                   c->part == 1 ? ", config.json, copied files and the drafter" : "");
        else
            printf("part %u/%u: no shards (more parts than the %u shards)%s\n", c->part, c->nparts, p->nshards,
                   c->part == 1 ? "; config.json, copied files and the drafter" : "");
    }
    printf("needs: about %.0f MiB of RAM at peak, %" PRIu64 " bytes of disk (%s free)%s\n",
           (double)sz->ram / 1048576.0, sz->need, fb, c->nparts > 1 ? " for this part" : "");
    if (c->nparts > 1)
        printf("merge: the whole output is %" PRIu64 " bytes; merge needs %" PRIu64 " bytes on OUT's file system "
               "when the part directories are on it (shards are renamed), %" PRIu64 " when they are elsewhere "
               "(copied)\n", sz->out_total, sz->merge_same_fs, sz->merge_other_fs);
}

/* ---- files that travel with the model ---- */

typedef struct extra_list {
    lq_extra_file *f;
    char **owned;
    size_t n, nowned;
} extra_list;

static void extra_add(extra_list *x, char *src, const char *out_name)
{
    lq_extra_file *f = realloc(x->f, (x->n + 1) * sizeof(*f));
    char **o = realloc(x->owned, (x->nowned + 2) * sizeof(*o));
    if (!f || !o) {
        fprintf(stderr, "mimo-quantize: out of memory\n");
        exit(3);
    }
    x->f = f;
    x->owned = o;
    char *on = strdup(out_name);
    x->owned[x->nowned++] = src;
    x->owned[x->nowned++] = on;
    x->f[x->n].src_path = src;
    x->f[x->n].out_name = on;
    x->n++;
}

static int is_shard_of(const lq_ckpt *ck, const char *name)
{
    for (size_t i = 0; i < lq_ckpt_shard_count(ck); i++)
        if (!strcmp(lq_ckpt_shard_name(ck, i), name))
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Top-level regular files of SRC other than config, index, shards; pickles are refused. */
static void collect_extras(const cli *c, const lq_ckpt *ck, extra_list *x)
{
    DIR *d = opendir(c->src);
    if (!d)
        return;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || !strcmp(nm, "config.json") || !strcmp(nm, "model.safetensors.index.json") ||
            is_shard_of(ck, nm))
            continue;
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", c->src, nm);
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            if (strcmp(nm, "dflash") && !c->quiet)
                fprintf(stderr, "mimo-quantize: note: %s/: directory not copied\n", nm);
            continue;
        }
        size_t l = strlen(nm);
        int pickle = (l > 4 && (!strcmp(nm + l - 4, ".bin") || !strcmp(nm + l - 4, ".pth") ||
                                !strcmp(nm + l - 4, ".pkl"))) || (l > 3 && !strcmp(nm + l - 3, ".pt"));
        int weights = l > 12 && !strcmp(nm + l - 12, ".safetensors");
        if (!S_ISREG(sb.st_mode) || pickle || weights) {
            if (!c->quiet)
                fprintf(stderr, "mimo-quantize: note: %s: not copied (%s)\n", nm,
                        pickle ? "pickle files are never read" : weights ? "safetensors file not in the index"
                                                                         : "not a regular file");
            continue;
        }
        char **nn = realloc(names, (n + 1) * sizeof(*nn));
        if (!nn)
            break;
        names = nn;
        names[n++] = strdup(nm);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = malloc(strlen(c->src) + strlen(names[i]) + 2);
        sprintf(path, "%s/%s", c->src, names[i]);
        extra_add(x, path, names[i]);
        free(names[i]);
    }
    free(names);
}

/* ---- main ---- */

static int output_inside_source(const char *src, const char *out)
{
    char rs[PATH_MAX], ro[PATH_MAX], parent[PATH_MAX];
    if (!realpath(src, rs))
        return 0;
    snprintf(parent, sizeof(parent), "%s", out);
    char *sl = strrchr(parent, '/');
    const char *base = out;
    if (sl) {
        *sl = 0;
        base = sl + 1;
        if (!parent[0])
            snprintf(parent, sizeof(parent), "/");
    } else {
        snprintf(parent, sizeof(parent), ".");
    }
    if (!realpath(parent, ro))
        return 0;
    size_t l = strlen(ro);
    snprintf(ro + l, sizeof(ro) - l, "/%s", base);
    size_t ls = strlen(rs);
    return !strcmp(ro, rs) || (!strncmp(ro, rs, ls) && ro[ls] == '/');
}

/* Bytes of the regular files under dir (every depth, symlinks not followed); with skip_book,
 * the run's bookkeeping (".mimo-*" names) is left out and added to *book instead. */
static uint64_t tree_size(const char *dir, int skip_book, uint64_t *book)
{
    DIR *d = opendir(dir);
    uint64_t n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            n += tree_size(p, skip_book, book);
        else if (S_ISREG(sb.st_mode)) {
            if (skip_book && !strncmp(e->d_name, ".mimo-", 6)) {
                if (book)
                    *book += (uint64_t)sb.st_size;
            } else
                n += (uint64_t)sb.st_size;
        }
    }
    closedir(d);
    return n;
}

/* Disk merge needs on OUT's file system, checked before anything is written: every file of a part
 * directory on another file system (copied in; on OUT's own, shards are renamed and cost nothing),
 * and the index, manifest and report it writes, bounded by four times the bookkeeping it reads them
 * from (one part's plan record and every part's shard records; measured: 2.0 times on the tiny
 * fixture in 2 parts, 2.9 times the dry run's own estimate for MiMo-V2.5-Pro's 114 shards) plus
 * 64 KiB. A merge resumed from its assembly directory (OUT.mimo-merge) is not checked: part of
 * it has moved already. Returns 0, or 3 with RUN_DISK printed. */
static int merge_disk_check(const char *out, const char *const *dirs, size_t nd)
{
    char asmd[4200];
    struct stat sb;
    snprintf(asmd, sizeof(asmd), "%s.mimo-merge", out);
    if (stat(asmd, &sb) == 0)
        return 0;
    char parent[4200];
    snprintf(parent, sizeof(parent), "%s", out);
    char *sl = strrchr(parent, '/');
    if (sl)
        *sl = 0;
    struct stat ps;
    const int have_parent = stat(sl ? (parent[0] ? parent : "/") : ".", &ps) == 0;
    uint64_t copied = 0, book = 0, plan = 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t b = 0;
        uint64_t files = tree_size(dirs[i], 1, &b);
        char pp[4400];
        snprintf(pp, sizeof(pp), "%s/.mimo-plan.json", dirs[i]);
        struct stat pl;
        if (stat(pp, &pl) == 0) {
            b -= (uint64_t)pl.st_size < b ? (uint64_t)pl.st_size : b;
            plan = (uint64_t)pl.st_size;
        }
        book += b;
        struct stat ds;
        if (have_parent && stat(dirs[i], &ds) == 0 && ds.st_dev != ps.st_dev)
            copied += files;
    }
    const uint64_t meta = 65536 + 4 * (plan + book), need = meta + copied, free_b = free_space(out);
    if (free_b >= need)
        return 0;
    lq_error err;
    lq_error_clear(&err);
    lq_fail(&err, LQ_ERR_IO, out, NULL, "RUN_DISK",
            "merge needs about %" PRIu64 " bytes (%" PRIu64 " copied from part directories on other file "
            "systems, %" PRIu64 " for the index, manifest and report), %" PRIu64 " free",
            need, copied, meta, free_b);
    print_err(&err);
    return 3;
}

static void gate_fail(void *user, const char *tensor, const char *metric, double v, double lim)
{
    (void)user;
    fprintf(stderr, "mimo-quantize: gate: %s: %s %.6g (limit %.6g)\n", tensor, metric, v, lim);
}

static int run_merge(int argc, char **argv)
{
    const char *out = NULL, *key = NULL;
    const char **dirs = calloc((size_t)argc + 1, sizeof(char *));
    size_t nd = 0;
    int json = 0;
    lq_gate gate = {NAN, NAN, NAN};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--sign-key") && v)
            key = argv[++i];
        else if (!strcmp(a, "--min-sqnr") && v && !parse_double(v, &gate.min_sqnr_db))
            i++;
        else if (!strcmp(a, "--min-cosine") && v && !parse_double(v, &gate.min_cosine))
            i++;
        else if (!strcmp(a, "--max-clip") && v && !parse_double(v, &gate.max_clip))
            i++;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            ;
        else if (!strcmp(a, "--format") && v && (!strcmp(v, "json") || !strcmp(v, "text")))
            json = !strcmp(argv[++i], "json");
        else if (a[0] == '-') {
            fprintf(stderr, "mimo-quantize merge: unknown or incomplete option: %s\n", a);
            free(dirs);
            return 2;
        } else if (!out)
            out = a;
        else
            dirs[nd++] = a;
    }
    if (!out || nd == 0) {
        fprintf(stderr, "usage: mimo-quantize merge OUT PART_DIR... [--sign-key KEY.pem] [gates]\n");
        free(dirs);
        return 2;
    }
    int drc = merge_disk_check(out, dirs, nd);
    if (drc != 0) {
        free(dirs);
        return drc;
    }
    lq_finalize_opts fo = {.sign_key = key, .gate = gate, .gate_fail = gate_fail};
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_finalize(out, dirs, nd, &fo, &err);
    free(dirs);
    if (st != LQ_OK) {
        print_err(&err);
        return exit_for(st);
    }
    if (json) {
        printf("{\"out\":");
        json_str(stdout, out);
        printf(",\"parts\":%zu,\"status\":\"ok\"}\n", nd);
    }
    else
        printf("%s: merged %zu parts\n", out, nd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "merge"))
        return run_merge(argc, argv);
    cli c = {.threads = 0, .part = 1, .nparts = 1};
    c.popts.scale_mode = LQ_MX_SCALE_MSE;
    c.popts.layout = LQ_LAYOUT_MIMO;
    c.gate = (lq_gate){NAN, NAN, NAN};
    lq_pattern *pats = calloc((size_t)argc + 1, sizeof(*pats));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(pats);
            return 0;
        } else if (!strcmp(a, "--scale-mode") && v) {
            bad = lq_mx_scale_mode_parse(v, &c.popts.scale_mode) != LQ_OK;
            i++;
        } else if (!strcmp(a, "--layout") && v) {
            if (!strcmp(v, "mimo"))
                c.popts.layout = LQ_LAYOUT_MIMO;
            else if (!strcmp(v, "compressed-tensors"))
                c.popts.layout = LQ_LAYOUT_COMPRESSED;
            else
                bad = 1;
            i++;
        } else if ((!strcmp(a, "--include") || !strcmp(a, "--exclude")) && v) {
            pats[c.popts.npatterns].text = v;
            pats[c.popts.npatterns++].include = !strcmp(a, "--include");
            i++;
        } else if (!strcmp(a, "--max-shard-size") && v) {
            bad = parse_u64(v, &c.popts.max_shard_bytes) || c.popts.max_shard_bytes == 0;
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            uint64_t t = 0;
            bad = parse_u64(v, &t) || t < 1 || t > 256;
            c.threads = (int)t;
            i++;
        } else if (!strcmp(a, "--drafter") && v) {
            c.drafter = v;
            i++;
        } else if (!strcmp(a, "--no-drafter")) {
            c.no_drafter = 1;
        } else if (!strcmp(a, "--dry-run")) {
            c.dry_run = 1;
        } else if (!strcmp(a, "--resume")) {
            c.resume = 1;
        } else if (!strcmp(a, "--part") && v) {
            unsigned pi = 0, pn = 0;
            char tail;
            bad = sscanf(v, "%u/%u%c", &pi, &pn, &tail) != 2 || pi < 1 || pn < 1 || pi > pn || pn > 4096;
            c.part = pi;
            c.nparts = pn;
            i++;
        } else if (!strcmp(a, "--min-sqnr") && v) {
            bad = parse_double(v, &c.gate.min_sqnr_db);
            i++;
        } else if (!strcmp(a, "--min-cosine") && v) {
            bad = parse_double(v, &c.gate.min_cosine);
            i++;
        } else if (!strcmp(a, "--max-clip") && v) {
            bad = parse_double(v, &c.gate.max_clip);
            i++;
        } else if (!strcmp(a, "--sign-key") && v) {
            c.sign_key = v;
            i++;
        } else if (!strcmp(a, "--allow-outside-links")) {
            c.allow_outside = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            c.quiet = 1;
        } else if (!strcmp(a, "--format") && v) {
            bad = strcmp(v, "json") && strcmp(v, "text");
            c.json = !strcmp(v, "json");
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "mimo-quantize: unknown or incomplete option: %s\n", a);
            usage(stderr);
            free(pats);
            return 2;
        } else if (!c.src) {
            c.src = a;
        } else if (!c.out) {
            c.out = a;
        } else {
            fprintf(stderr, "mimo-quantize: unexpected argument: %s\n", a);
            free(pats);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "mimo-quantize: %s: invalid value %s (see --help)\n", a, v ? v : "");
            free(pats);
            return 2;
        }
    }
    if (!c.src || !c.out) {
        usage(stderr);
        free(pats);
        return 2;
    }
    if (c.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.threads = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    }
    c.popts.patterns = pats;
    int rc = 3;
    lq_error err;
    lq_error_clear(&err);
    lq_ckpt *ck = NULL;
    lq_plan *plan = NULL;
    lq_mimo_config mc;
    int have_mc = 0;
    lq_drafter *dr = NULL;
    extra_list extras = {0};
    sizes sz = {0};
    char *opts_json = NULL, *draft_fp = NULL;
    char work[4200];
    lq_status st;

    if (output_inside_source(c.src, c.out)) {
        lq_fail(&err, LQ_ERR_INVALID_ARGUMENT, c.out, NULL, "PLAN_OUT_IN_SRC",
                "the output would be inside the source directory %s", c.src);
        print_err(&err);
        goto done;
    }
    struct stat sb;
    if (!c.dry_run && c.nparts == 1 && lstat(c.out, &sb) == 0 && !(c.resume && lq_publish_record_exists(c.out))) {
        lq_fail(&err, LQ_ERR_INVALID_ARGUMENT, c.out, NULL, "OUT_EXISTS", "exists; refusing to overwrite it");
        print_err(&err);
        goto done;
    }
    lq_ckpt_opts co = {0};
    co.require_config = 1;
    co.allow_outside = c.allow_outside;
    if ((st = lq_ckpt_open(c.src, &co, &ck, &err)) != LQ_OK) {
        print_err(&err);
        goto done;
    }
    if ((st = lq_mimo_config_parse(lq_ckpt_config(ck), "config.json", &mc, &err)) != LQ_OK) {
        if (!err.file[0] || !strcmp(err.file, "config.json"))
            snprintf(err.file, sizeof(err.file), "%s/config.json", c.src);
        print_err(&err);
        goto done;
    }
    have_mc = 1;
    c.popts.qkv_shards_hint = lq_mimo_qkv_shards(&mc);
    if ((st = lq_plan_build(ck, &c.popts, &plan, &err)) != LQ_OK) {
        print_err(&err);
        goto done;
    }
    for (size_t i = 0; i < plan->n && !c.quiet; i++)
        if (plan->t[i].rule == LQ_RULE_MXFP4 && plan->t[i].mclass != 0 && c.popts.layout == LQ_LAYOUT_MIMO) {
            fprintf(stderr, "mimo-quantize: warning: %s is not a routed expert; MiMo loaders read MXFP4 only "
                            "for routed experts\n", plan->t[i].src.info->name);
            break;
        }

    /* The drafter: validated against the target, its files travel to OUT/dflash. */
    char ddir[4200];
    const char *drafter_dir = NULL;
    if (!c.no_drafter) {
        if (c.drafter) {
            drafter_dir = c.drafter;
        } else {
            snprintf(ddir, sizeof(ddir), "%s/dflash", c.src);
            if (stat(ddir, &sb) == 0 && S_ISDIR(sb.st_mode))
                drafter_dir = ddir;
        }
    }
    if (drafter_dir) {
        if ((st = lq_drafter_open(drafter_dir, &mc, &dr, &err)) != LQ_OK) {
            print_err(&err);
            goto done;
        }
        const lq_ckpt *dck = lq_drafter_ckpt(dr);
        char p1[8200];
        snprintf(p1, sizeof(p1), "%s", lq_drafter_config_path(dr));
        extra_add(&extras, strdup(p1), "dflash/config.json");
        snprintf(p1, sizeof(p1), "%s", lq_drafter_mask_path(dr));
        extra_add(&extras, strdup(p1), "dflash/mask_embedding.pt");
        (void)dck; /* its weights are re-written by the engine (lq_run_opts.drafter) */
    }
    collect_extras(&c, ck, &extras);

    /* Canonical options: what decides the output bytes, nothing else (no threads, no part). */
    {
        lq_jw *w = lq_jw_new(0);
        lq_jw_begin_object(w);
        lq_jw_key(w, "layout");
        lq_jw_string(w, c.popts.layout == LQ_LAYOUT_MIMO ? "mimo" : "compressed-tensors");
        lq_jw_key(w, "scale_mode");
        lq_jw_string(w, lq_mx_scale_mode_name(c.popts.scale_mode));
        lq_jw_key(w, "max_shard_size");
        lq_jw_u64(w, plan->max_shard_bytes);
        lq_jw_key(w, "mxfp4_block_size");
        lq_jw_u64(w, 32);
        lq_jw_key(w, "patterns");
        lq_jw_begin_array(w);
        for (size_t k = 0; k < c.popts.npatterns; k++) {
            char pb[1100];
            snprintf(pb, sizeof(pb), "%s:%s", pats[k].include ? "include" : "exclude", pats[k].text);
            lq_jw_string(w, pb);
        }
        lq_jw_end_array(w);
        lq_jw_key(w, "drafter");
        lq_jw_bool(w, dr != NULL);
        lq_jw_key(w, "extra_files");
        lq_jw_begin_array(w);
        for (size_t i = 0; i < extras.n; i++)
            lq_jw_string(w, extras.f[i].out_name);
        lq_jw_end_array(w);
        lq_jw_end_object(w);
        if (lq_jw_finish(w, &opts_json, NULL, &err) != LQ_OK) {
            lq_jw_free(w);
            print_err(&err);
            goto done;
        }
        lq_jw_free(w);
    }
    /* Extras' sizes and the drafter's shard sizes make the fingerprint notice a changed
     * tokenizer or drafter. */
    {
        size_t nds = dr ? lq_ckpt_shard_count(lq_drafter_ckpt(dr)) : 0;
        size_t cap = 64 + (extras.n + nds) * 64;
        draft_fp = malloc(cap);
        size_t used = 0;
        draft_fp[0] = 0;
        for (size_t i = 0; i < extras.n; i++) {
            struct stat es;
            uint64_t size = stat(extras.f[i].src_path, &es) == 0 ? (uint64_t)es.st_size : 0;
            used += (size_t)snprintf(draft_fp + used, cap - used, "%" PRIu64 ";", size);
        }
        for (size_t i = 0; i < nds; i++)
            used += (size_t)snprintf(draft_fp + used, cap - used, "d%" PRIu64 ";",
                                     lq_st_file_size(lq_ckpt_shard(lq_drafter_ckpt(dr), i)));
    }

    /* Disk: exact shard sizes (headers laid out in memory, nothing written) for the shards this
     * run writes, or for every shard in a dry run; estimates for the bookkeeping and the index,
     * manifest and report. A part needs only its own shards and records (part 1 also the extras);
     * the whole output is merge's business. */
    if (!(sz.shard_file = calloc(plan->nshards + 1, sizeof(uint64_t)))) {
        lq_fail(&err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        print_err(&err);
        goto done;
    }
    lq_part_range(plan->nshards, c.part, c.nparts, &sz.s0, &sz.s1);
    if ((st = shard_sizes(plan, c.dry_run ? 0 : sz.s0, c.dry_run ? plan->nshards : sz.s1, sz.shard_file, &err)) !=
        LQ_OK) {
        print_err(&err);
        goto done;
    }
    {
        uint32_t f0, f1;
        size_t nsrc = lq_ckpt_shard_count(ck);
        lq_part_range((uint32_t)nsrc, c.part, c.nparts, &f0, &f1);
        for (uint32_t s = sz.s0; s < sz.s1; s++)
            sz.shards += sz.shard_file[s];
        char cfg[4200];
        snprintf(cfg, sizeof(cfg), "%s/config.json", c.src);
        sz.extras = 4096 + (stat(cfg, &sb) == 0 ? (uint64_t)sb.st_size * 2 : 0); /* config.json, re-indented */
        for (size_t i = 0; i < extras.n; i++)
            if (stat(extras.f[i].src_path, &sb) == 0)
                sz.extras += (uint64_t)sb.st_size;
        if (dr) {
            const lq_ckpt *dck = lq_drafter_ckpt(dr);
            for (size_t i = 0; i < lq_ckpt_shard_count(dck); i++)
                sz.extras += lq_st_file_size(lq_ckpt_shard(dck, i)) + 4096;
            sz.extras += 4096 + (uint64_t)lq_ckpt_count(dck) * 1024; /* its index */
        }
        sz.book = book_estimate(plan, nsrc, sz.s0, sz.s1, f0, f1);
        sz.meta = meta_estimate(plan);
        sz.out_total = sz.extras + sz.meta;
        for (uint32_t s = 0; s < plan->nshards; s++)
            sz.out_total += c.dry_run || (s >= sz.s0 && s < sz.s1) ? sz.shard_file[s] : plan->shard_bytes[s] + 8;
        if (!c.dry_run)
            for (size_t i = 0; i < plan->n; i++)
                if (plan->t[i].shard < sz.s0 || plan->t[i].shard >= sz.s1)
                    sz.out_total += strlen(plan->t[i].name) + 80; /* other shards' headers: a bound */
        sz.merge_same_fs = sz.meta;
        sz.merge_other_fs = sz.out_total;
        sz.need = c.nparts == 1 ? sz.out_total + sz.book : sz.shards + sz.book + (c.part == 1 ? sz.extras : 0);
        sz.free_b = free_space(c.out);
    }
    sz.ram = ram_estimate(plan, lq_ckpt_count(ck), c.threads);
    if (c.dry_run) {
        print_plan(&c, plan, &sz);
        rc = 0;
        goto done;
    }
    if (!c.resume && sz.free_b < sz.need) {
        if (c.nparts == 1)
            lq_fail(&err, LQ_ERR_IO, c.out, NULL, "RUN_DISK", "needs %" PRIu64 " bytes, %" PRIu64 " free",
                    sz.need, sz.free_b);
        else
            lq_fail(&err, LQ_ERR_IO, c.out, NULL, "RUN_DISK",
                    "part %u/%u needs %" PRIu64 " bytes (%u shards of %" PRIu64 " bytes, records%s), %" PRIu64
                    " free", c.part, c.nparts, sz.need, sz.s1 - sz.s0, sz.shards,
                    c.part == 1 ? ", config, copied files and drafter" : "", sz.free_b);
        print_err(&err);
        goto done;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (c.nparts == 1)
        lq_work_dir_name(c.out, work, sizeof(work));
    else
        snprintf(work, sizeof(work), "%s", c.out);
    int published = 0;
    progress pr = {.quiet = c.quiet, .json = c.json, .t0 = now_s()};
    lq_run_opts ro = {.threads = c.threads, .part = c.part, .nparts = c.nparts, .resume = c.resume,
                      .cancel = &g_cancel, .progress = on_tensor, .user = &pr, .extras = extras.f,
                      .nextras = extras.n, .options_json = opts_json, .source_fingerprint_extra = draft_fp,
                      .drafter = dr ? lq_drafter_ckpt(dr) : NULL, .drafter_file = "dflash_draft_model.safetensors",
                      .out = c.nparts == 1 ? c.out : NULL, .published = &published};
    double t0 = now_s();
    int work_existed = stat(work, &sb) == 0;
    st = lq_run_part(ck, plan, work, &ro, &err);
    if (st == LQ_ERR_CANCELLED) {
        fprintf(stderr, "mimo-quantize: interrupted; completed shards are kept in %s: rerun with --resume\n", work);
        rc = exit_for(st);
        goto done;
    }
    if (st != LQ_OK) {
        print_err(&err);
        if (!work_existed && (st == LQ_ERR_NUMERIC || !strncmp(err.rule, "QUANT_", 6) ||
                              !strncmp(err.rule, "FP8_", 4))) {
            /* Bad source data found by a run that created this work directory: nothing in it is
             * worth resuming. Never for resume-state errors, never for a directory we did not make. */
            char cmd[8400];
            snprintf(cmd, sizeof(cmd), "%s", work);
            DIR *d = opendir(work);
            if (d) {
                struct dirent *e;
                while ((e = readdir(d)) != NULL) {
                    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                    snprintf(cmd, sizeof(cmd), "%s/%s", work, e->d_name);
                    unlink(cmd);
                }
                closedir(d);
                snprintf(cmd, sizeof(cmd), "%s/dflash", work);
                d = opendir(cmd);
                if (d) {
                    struct dirent *e2;
                    while ((e2 = readdir(d)) != NULL) {
                        char f2[8800];
                        snprintf(f2, sizeof(f2), "%s/%s", cmd, e2->d_name);
                        unlink(f2);
                    }
                    closedir(d);
                    rmdir(cmd);
                }
                rmdir(work);
            }
        }
        rc = exit_for(st);
        goto done;
    }
    if (published) {
        if (c.json) {
            printf("{\"out\":");
            json_str(stdout, c.out);
            printf(",\"resumed_publish\":true}\n");
        } else
            printf("%s: published the finished conversion an interrupted run left (%s.mimo-publish.json)\n",
                   c.out, c.out);
        rc = 0;
        goto done;
    }
    double t_run = now_s() - t0;
    if (c.nparts > 1) {
        if (c.json) {
            printf("{\"part\":%u,\"nparts\":%u,\"dir\":", c.part, c.nparts);
            json_str(stdout, work);
            printf(",\"seconds\":%.3f}\n", t_run);
        }
        else
            printf("%s: part %u/%u done in %.1f s; assemble with: mimo-quantize merge OUT PART_DIRS...\n", work,
                   c.part, c.nparts, t_run);
        rc = 0;
        goto done;
    }
    /* The plan is not needed to finalize (which reads the work directory): its memory goes
     * before the report and manifest are built. */
    size_t plan_n = plan->n, plan_nquant = plan->nquant;
    uint32_t plan_nshards = plan->nshards;
    uint64_t plan_src_bytes = plan->src_bytes;
    lq_plan_free(plan);
    plan = NULL;
    lq_ckpt_close(ck); /* nor are the source's headers */
    ck = NULL;
    lq_finalize_opts fo = {.sign_key = c.sign_key, .gate = c.gate, .gate_fail = gate_fail};
    const char *dirs[1] = {work};
    st = lq_finalize(c.out, dirs, 1, &fo, &err);
    if (st != LQ_OK) {
        print_err(&err);
        rc = exit_for(st);
        goto done;
    }
    double secs = now_s() - t0;
    if (c.json) {
        printf("{\"out\":");
        json_str(stdout, c.out);
        printf(",\"tensors\":%zu,\"mxfp4\":%zu,\"shards\":%u,\"source_bytes\":%" PRIu64
               ",\"seconds\":%.3f,\"threads\":%d}\n",
               plan_n, plan_nquant, plan_nshards, plan_src_bytes, secs, c.threads);
    } else
        printf("%s: %zu tensors (%zu MXFP4) in %u shards from %" PRIu64 " source bytes in %.1f s "
               "(%.1f MB/s, %d threads); report %s/%s\n",
               c.out, plan_n, plan_nquant, plan_nshards, plan_src_bytes, secs,
               secs > 0 ? (double)plan_src_bytes / secs / 1e6 : 0.0, c.threads, c.out, LQ_REPORT_FILE);
    rc = 0;
done:
    for (size_t i = 0; i < extras.nowned; i++)
        free(extras.owned[i]);
    free(extras.owned);
    free(extras.f);
    free(sz.shard_file);
    free(opts_json);
    free(draft_fp);
    lq_plan_free(plan);
    lq_drafter_close(dr);
    if (have_mc)
        lq_mimo_config_free(&mc);
    lq_ckpt_close(ck);
    free(pats);
    return rc;
}
