/* Running a conversion plan and assembling OUT (convert.h).
 *
 * Work directory of a part:
 *   .mimo-plan.json          fingerprint, part i/N, and the plan (written once)
 *   model-0000k-of-0000N.safetensors   finished shards (published atomically by the writer)
 *   .mimo-done-<shard>.json  size, SHA-256 and MXFP4 error accumulators of a finished shard
 *   .mimo-src-<j>.json       SHA-256 of source file j (each source file is hashed by one part)
 *   .mimo-extras.json        part 1: config.json, copied files and the drafter, with digests
 * A shard counts as done only once its record exists, and the record is written only after the
 * shard itself is published, so a kill at any instant leaves either a complete, recorded shard or
 * a temporary that resume deletes. Records are one small file per shard, so the cost of keeping
 * state does not grow with the model. */
#include "convert.h"
#include "fp_formats.h"
#include "values.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "json.h"
#include "jsonw.h"
#include "libquant.h"
#include "outfile.h"
#include "stwriter.h"

#define COPY_CHUNK ((size_t)64 << 20)
#define HASH_BUF ((size_t)8 << 20)

/* ---- small utilities ---- */

static void hex32(const uint8_t d[32], char out[65]) { lq_hex(d, 32, out); }

static int unhex32(const char *s, uint8_t out[32])
{
    if (!s || strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static int cancelled(const lq_run_opts *o) { return o->cancel && *o->cancel; }

void lq_work_dir_name(const char *out, char *buf, size_t cap)
{
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        n--;
    snprintf(buf, cap, "%.*s.mimo-partial", (int)n, out);
}

/* Streams a file through SHA-256 (and optionally into an output file). */
static lq_status hash_copy(const char *src, const char *dst, uint8_t sha[32], uint64_t *size,
                           volatile sig_atomic_t *cancel, volatile sig_atomic_t *stop, lq_error *err)
{
    lq_status st = LQ_OK;
    uint8_t *buf = malloc(HASH_BUF);
    lq_outfile *of = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    uint64_t total = 0;
    if (!buf || !ctx) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, src, NULL, NULL, "out of memory");
        goto cleanup;
    }
    if (fd < 0) {
        st = lq_fail(err, errno == ENOENT ? LQ_ERR_NOT_FOUND : LQ_ERR_IO, src, NULL, NULL,
                     "cannot open: %s", strerror(errno));
        goto cleanup;
    }
    if (dst && (st = lq_outfile_open(dst, &of, err)) != LQ_OK)
        goto cleanup;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = lq_fail(err, LQ_ERR_IO, src, NULL, NULL, "SHA-256 initialisation failed");
        goto cleanup;
    }
    for (;;) {
        if ((cancel && *cancel) || (stop && *stop)) {
            st = lq_fail(err, LQ_ERR_CANCELLED, src, NULL, "RUN_CANCELLED", "interrupted");
            goto cleanup;
        }
        ssize_t r = read(fd, buf, HASH_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = lq_fail(err, LQ_ERR_IO, src, NULL, NULL, "read failed: %s", strerror(errno));
            goto cleanup;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        if (of && (st = lq_outfile_write(of, buf, (size_t)r, err)) != LQ_OK) {
            of = NULL; /* the outfile removed its temporary */
            goto cleanup;
        }
        total += (uint64_t)r;
    }
    EVP_DigestFinal_ex(ctx, sha, NULL);
    if (of) {
        uint8_t osha[32];
        st = lq_outfile_commit(of, osha, NULL, err);
        of = NULL;
        if (st == LQ_OK && memcmp(osha, sha, 32) != 0)
            st = lq_fail(err, LQ_ERR_IO, dst, NULL, NULL, "copy differs from its source");
    }
    if (size)
        *size = total;
cleanup:
    lq_outfile_abort(of);
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return st;
}

static lq_status write_text(const char *path, const char *text, uint8_t sha[32], uint64_t *size, lq_error *err)
{
    size_t n = strlen(text);
    if (size)
        *size = n;
    return lq_write_file_atomic(path, text, n, sha, err);
}

static lq_status skip_elem(void *user, size_t index, const cJSON *e, lq_error *err)
{
    (void)user;
    (void)index;
    (void)e;
    (void)err;
    return LQ_OK;
}

/* Reads a state file whose per-tensor lists are not needed here (checked strictly, never
 * built as one tree): a shard record without "metrics" and "crc32c", a plan without
 * "plan"."tensors". */
static lq_status read_state_head(const char *path, int plan, cJSON **out, lq_error *err)
{
    static const char *const tensors[] = {"plan", "tensors"}, *const metrics[] = {"metrics"},
                             *const crc[] = {"crc32c"};
    lq_json_split sp[2] = {{metrics, 1, skip_elem, NULL}, {crc, 1, skip_elem, NULL}};
    if (plan)
        sp[0] = (lq_json_split){tensors, 2, skip_elem, NULL};
    return lq_json_parse_file_split(path, (size_t)256 << 20, NULL, sp, plan ? 1 : 2, out, err);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = lq_json_get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint64_t ju64(const cJSON *o, const char *k, int *ok)
{
    uint64_t v = 0;
    if (lq_json_u64(lq_json_get(o, k), &v) != 0)
        *ok = 0;
    return v;
}

/* ---- parallel loops ---- */

typedef void (*range_fn)(void *ctx, size_t begin, size_t end);

typedef struct pf_ranges {
    range_fn fn;
    void *ctx;
    size_t n, parts;
} pf_ranges;

static void pf_range(void *arg, size_t k)
{
    const pf_ranges *r = arg;
    r->fn(r->ctx, r->n * k / r->parts, r->n * (k + 1) / r->parts);
}

/* Splits [0, n) into `threads` contiguous ranges run on the process's thread pool; which thread
 * runs a range never changes a result, because every item writes only its own output. */
static void parallel_for(int threads, size_t n, range_fn fn, void *ctx)
{
    if (threads > LQ_POOL_MAX)
        threads = LQ_POOL_MAX;
    if ((size_t)threads > n)
        threads = (int)n;
    if (threads <= 1) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    pf_ranges r = {fn, ctx, n, (size_t)threads};
    lq_parallel_for((size_t)threads, threads, pf_range, &r);
}

/* ---- fingerprint and plan file ---- */

static const char *rule_name(lq_rule r)
{
    switch (r) {
    case LQ_RULE_KEEP: return "keep";
    case LQ_RULE_MXFP4: return "mxfp4";
    case LQ_RULE_MXFP4_SCALE: return "mxfp4_scale";
    case LQ_RULE_PASSTHROUGH: return "passthrough";
    }
    return "keep";
}

/* Logical parameters a tensor stands for: scale tensors stand for none. */
static uint64_t params_of(const lq_plan_tensor *t)
{
    if (t->rule == LQ_RULE_MXFP4)
        return t->shape[0] * t->shape[1] * 2;
    if (t->rule == LQ_RULE_MXFP4_SCALE)
        return 0;
    size_t n = strlen(t->name);
    if ((n > 10 && !strcmp(t->name + n - 10, "_scale_inv")) || (n > 13 && !strcmp(t->name + n - 13, ".weight_scale")))
        return 0;
    if (t->rule == LQ_RULE_PASSTHROUGH)
        return t->shape[0] * t->shape[1] * 2;
    uint64_t p = 1;
    for (uint32_t i = 0; i < t->rank; i++)
        p *= t->shape[i];
    return p;
}

/* Source description: config and index digests, and each shard's name, size and header digest
 * (the headers fix every tensor's name, dtype, shape and offset). Content digests of the source
 * files are added while the parts run. */
static lq_status describe_source(const lq_ckpt *src, lq_jw *w, EVP_MD_CTX *fp, lq_error *err)
{
    const char *dir = lq_ckpt_dir(src);
    static const char *const meta_files[] = {"config.json", "model.safetensors.index.json"};
    lq_jw_begin_object(w);
    for (int k = 0; k < 2; k++) {
        char *path = path_join(dir, meta_files[k]);
        if (!path)
            return lq_fail(err, LQ_ERR_NO_MEMORY, dir, NULL, NULL, "out of memory");
        uint8_t sha[32];
        uint64_t size = 0;
        lq_status st = hash_copy(path, NULL, sha, &size, NULL, NULL, err);
        free(path);
        if (st == LQ_ERR_NOT_FOUND)
            continue;
        if (st != LQ_OK)
            return st;
        char hx[65];
        hex32(sha, hx);
        lq_jw_key(w, k == 0 ? "config_sha256" : "index_sha256");
        lq_jw_string(w, hx);
        EVP_DigestUpdate(fp, hx, 64);
    }
    lq_jw_key(w, "shards");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < lq_ckpt_shard_count(src); i++) {
        const lq_st_file *f = lq_ckpt_shard(src, i);
        const char *name = lq_ckpt_shard_name(src, i);
        uint64_t hl = 8 + lq_st_header_len(f);
        uint8_t *hdr = malloc(hl);
        FILE *fh = fopen(lq_st_path(f), "rb");
        int ok = hdr && fh && fread(hdr, 1, hl, fh) == hl;
        if (fh)
            fclose(fh);
        if (!ok) {
            free(hdr);
            return lq_fail(err, LQ_ERR_IO, lq_st_path(f), NULL, NULL, "cannot read the header again");
        }
        uint8_t sha[32];
        char hx[65];
        lq_sha256(hdr, hl, sha);
        free(hdr);
        hex32(sha, hx);
        lq_jw_begin_object(w);
        lq_jw_key(w, "name");
        lq_jw_string(w, name);
        lq_jw_key(w, "size");
        lq_jw_u64(w, lq_st_file_size(f));
        lq_jw_key(w, "header_sha256");
        lq_jw_string(w, hx);
        lq_jw_end_object(w);
        char num[32];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)lq_st_file_size(f));
        EVP_DigestUpdate(fp, name, strlen(name) + 1);
        EVP_DigestUpdate(fp, num, strlen(num) + 1);
        EVP_DigestUpdate(fp, hx, 64);
    }
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    return LQ_OK;
}

/* .mimo-plan.json: {"schema":1,"fingerprint":F,"part":I,"nparts":N,"plan":BODY}, where BODY holds
 * everything merge needs without SRC (one entry per output tensor) and F is the SHA-256 of the
 * tool, the options, the run's parts and the source description, then BODY's text. BODY is
 * generated twice from the plan, once into the fingerprint and once into the file, so its text
 * (about 110 bytes per output tensor) is never held whole. */
static void plan_body(lq_jw *body, const lq_ckpt *src, const lq_plan *p, const char *opts, const char *source)
{
    lq_jw_begin_object(body);
    lq_jw_key(body, "options");
    lq_jw_raw(body, opts);
    lq_jw_key(body, "source");
    lq_jw_raw(body, source);
    lq_jw_key(body, "source_files");
    lq_jw_begin_array(body);
    for (size_t i = 0; i < lq_ckpt_shard_count(src); i++)
        lq_jw_string(body, lq_ckpt_shard_name(src, i));
    lq_jw_end_array(body);
    lq_jw_key(body, "total_size");
    lq_jw_u64(body, p->total_bytes);
    lq_jw_key(body, "shards");
    lq_jw_begin_array(body);
    for (uint32_t s = 0; s < p->nshards; s++)
        lq_jw_string(body, p->shard_names[s]);
    lq_jw_end_array(body);
    lq_jw_key(body, "tensors");
    lq_jw_begin_array(body);
    for (size_t i = 0; i < p->n; i++) {
        const lq_plan_tensor *t = &p->t[i];
        lq_jw_begin_array(body);
        lq_jw_string(body, t->name);
        lq_jw_string(body, lq_dtype_name(t->dtype));
        lq_jw_begin_array(body);
        for (uint32_t k = 0; k < t->rank; k++)
            lq_jw_u64(body, t->shape[k]);
        lq_jw_end_array(body);
        lq_jw_u64(body, t->shard);
        lq_jw_string(body, rule_name(t->rule));
        lq_jw_string(body, lq_plan_class_name(t->mclass));
        lq_jw_u64(body, params_of(t));
        lq_jw_string(body, lq_dtype_name(t->src.info->dtype));
        lq_jw_end_array(body);
    }
    lq_jw_end_array(body);
    lq_jw_end_object(body);
}

static lq_status digest_sink(void *user, const char *text, size_t len, lq_error *err)
{
    (void)err;
    EVP_DigestUpdate((EVP_MD_CTX *)user, text, len);
    return LQ_OK;
}

/* The fingerprint, and the source description's text (*source, small: one entry per source
 * file) that plan_write puts into the body again. */
static lq_status plan_fingerprint(const lq_ckpt *src, const lq_plan *p, const lq_run_opts *o, char **source,
                                  char fp_hex[65], lq_error *err)
{
    lq_status st = LQ_OK;
    lq_jw *sw = lq_jw_new(0), *body = lq_jw_new(0);
    EVP_MD_CTX *fp = EVP_MD_CTX_new();
    *source = NULL;
    if (!sw || !body || !fp) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    EVP_DigestInit_ex(fp, EVP_sha256(), NULL);
    const char *tool = "mimo-quant " LQ_VERSION_STRING;
    EVP_DigestUpdate(fp, tool, strlen(tool) + 1);
    const char *opts = o->options_json ? o->options_json : "{}";
    EVP_DigestUpdate(fp, opts, strlen(opts) + 1);
    if (o->source_fingerprint_extra)
        EVP_DigestUpdate(fp, o->source_fingerprint_extra, strlen(o->source_fingerprint_extra) + 1);
    char np[32];
    snprintf(np, sizeof(np), "parts %u", o->nparts);
    EVP_DigestUpdate(fp, np, strlen(np) + 1);
    if ((st = describe_source(src, sw, fp, err)) != LQ_OK || (st = lq_jw_finish(sw, source, NULL, err)) != LQ_OK)
        goto cleanup;
    lq_jw_set_sink(body, digest_sink, fp);
    plan_body(body, src, p, opts, *source);
    if ((st = lq_jw_finish(body, NULL, NULL, err)) != LQ_OK)
        goto cleanup;
    uint8_t d[32];
    EVP_DigestFinal_ex(fp, d, NULL);
    hex32(d, fp_hex);
cleanup:
    if (st != LQ_OK) {
        free(*source);
        *source = NULL;
    }
    lq_jw_free(sw);
    lq_jw_free(body);
    EVP_MD_CTX_free(fp);
    return st;
}

/* Writes .mimo-plan.json to path, atomically. */
static lq_status plan_write(const char *path, const lq_ckpt *src, const lq_plan *p, const lq_run_opts *o,
                            const char *source, const char *fp_hex, lq_error *err)
{
    lq_outfile *of = NULL;
    lq_status st = lq_outfile_open(path, &of, err);
    if (st != LQ_OK)
        return st;
    char head[200];
    int hl = snprintf(head, sizeof(head), "{\"schema\":1,\"fingerprint\":\"%s\",\"part\":%u,\"nparts\":%u,\"plan\":",
                      fp_hex, o->part, o->nparts);
    st = lq_outfile_write(of, head, (size_t)hl, err);
    lq_jw *body = st == LQ_OK ? lq_jw_new(0) : NULL;
    if (st == LQ_OK) {
        lq_jw_set_sink(body, lq_outfile_sink, of);
        plan_body(body, src, p, o->options_json ? o->options_json : "{}", source);
        st = lq_jw_finish(body, NULL, NULL, err);
    }
    lq_jw_free(body);
    if (st == LQ_OK)
        st = lq_outfile_write(of, "}", 1, err);
    if (st != LQ_OK) {
        lq_outfile_abort(of);
        return st;
    }
    return lq_outfile_commit(of, NULL, NULL, err);
}

/* ---- config.json output: the plan's cJSON tree written like json.dumps(indent=2) ---- */

static void emit_number(lq_jw *w, double v)
{
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
        if (v < 0)
            lq_jw_i64(w, (int64_t)v);
        else
            lq_jw_u64(w, (uint64_t)v);
        return;
    }
    /* Shortest of 15..17 significant digits that reads back exactly, as Python's repr does. */
    for (int d = 15; d <= 17; d++) {
        char buf[40];
        snprintf(buf, sizeof(buf), "%.*g", d, v);
        if (strtod(buf, NULL) == v || d == 17) {
            lq_jw_double(w, v, d);
            return;
        }
    }
}

static void emit_cjson(lq_jw *w, const cJSON *c)
{
    if (cJSON_IsObject(c)) {
        lq_jw_begin_object(w);
        for (const cJSON *ch = c->child; ch; ch = ch->next) {
            lq_jw_key(w, ch->string);
            emit_cjson(w, ch);
        }
        lq_jw_end_object(w);
    } else if (cJSON_IsArray(c)) {
        lq_jw_begin_array(w);
        for (const cJSON *ch = c->child; ch; ch = ch->next)
            emit_cjson(w, ch);
        lq_jw_end_array(w);
    } else if (cJSON_IsString(c)) {
        lq_jw_string(w, c->valuestring);
    } else if (cJSON_IsNumber(c)) {
        emit_number(w, c->valuedouble);
    } else if (cJSON_IsBool(c)) {
        lq_jw_bool(w, cJSON_IsTrue(c));
    } else {
        lq_jw_null(w);
    }
}

static lq_status config_text(const cJSON *cfg, char **text, lq_error *err)
{
    lq_jw *w = lq_jw_new(2);
    if (!w)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    emit_cjson(w, cfg);
    size_t n = 0;
    char *t = NULL;
    lq_status st = lq_jw_finish(w, &t, &n, err);
    lq_jw_free(w);
    if (st != LQ_OK)
        return st;
    char *t2 = realloc(t, n + 2);
    if (!t2) {
        free(t);
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    }
    if (n == 0 || t2[n - 1] != '\n') {
        t2[n] = '\n';
        t2[n + 1] = 0;
    }
    *text = t2;
    return LQ_OK;
}

/* ---- source hashing (runs beside the conversion) ---- */

/* SHA-256 of a file read through its own read-only mapping, 8 MiB at a time: pages are mapped
 * in one call each (no copy into a buffer, no per-page fault) and dropped after hashing. */
static lq_status hash_mapped(const char *path, uint8_t sha[32], uint64_t *size, volatile sig_atomic_t *cancel,
                             volatile sig_atomic_t *stop, lq_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lq_fail(err, LQ_ERR_IO, path, NULL, NULL, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0) {
        close(fd);
        return hash_copy(path, NULL, sha, size, cancel, stop, err); /* empty or odd: the plain way */
    }
    uint64_t n = (uint64_t)sb.st_size;
    void *m = mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return hash_copy(path, NULL, sha, size, cancel, stop, err);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    lq_status st = LQ_OK;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, path, NULL, NULL, "SHA-256 initialisation failed");
        goto done;
    }
    for (uint64_t off = 0; off < n; off += HASH_BUF) {
        if ((cancel && *cancel) || (stop && *stop)) {
            st = lq_fail(err, LQ_ERR_CANCELLED, path, NULL, "RUN_CANCELLED", "interrupted");
            goto done;
        }
        size_t len = (size_t)(n - off < HASH_BUF ? n - off : HASH_BUF);
        lq_pages_populate((const uint8_t *)m + off, len);
        EVP_DigestUpdate(ctx, (const uint8_t *)m + off, len);
        lq_pages_release((const uint8_t *)m + off, len);
    }
    EVP_DigestFinal_ex(ctx, sha, NULL);
    *size = n;
done:
    EVP_MD_CTX_free(ctx);
    munmap(m, (size_t)n);
    return st;
}

typedef struct hash_task {
    const lq_ckpt *src;
    const char *work;
    size_t first, last;          /* source shards [first, last) */
    volatile sig_atomic_t *cancel;   /* the caller's request */
    volatile sig_atomic_t stop;      /* the part failed: stop hashing */
    lq_status st;
    lq_error err;
} hash_task;

static void *hash_worker(void *arg)
{
    hash_task *h = arg;
    lq_error_clear(&h->err);
    for (size_t j = h->first; j < h->last && h->st == LQ_OK; j++) {
        char rec[64];
        snprintf(rec, sizeof(rec), ".mimo-src-%zu.json", j);
        char *rpath = path_join(h->work, rec);
        if (!rpath) {
            h->st = lq_fail(&h->err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            break;
        }
        if (access(rpath, F_OK) == 0) { /* hashed by an earlier, interrupted run */
            free(rpath);
            continue;
        }
        const lq_st_file *f = lq_ckpt_shard(h->src, j);
        uint8_t sha[32];
        uint64_t size = 0;
        h->st = hash_mapped(lq_st_path(f), sha, &size, h->cancel, &h->stop, &h->err);
        if (h->st == LQ_OK) {
            char hx[65], text[512];
            hex32(sha, hx);
            lq_jw *w = lq_jw_new(0);
            lq_jw_begin_object(w);
            lq_jw_key(w, "index");
            lq_jw_u64(w, j);
            lq_jw_key(w, "name");
            lq_jw_string(w, lq_ckpt_shard_name(h->src, j));
            lq_jw_key(w, "size");
            lq_jw_u64(w, size);
            lq_jw_key(w, "sha256");
            lq_jw_string(w, hx);
            lq_jw_end_object(w);
            char *t = NULL;
            h->st = lq_jw_finish(w, &t, NULL, &h->err);
            lq_jw_free(w);
            if (h->st == LQ_OK) {
                snprintf(text, sizeof(text), "%s", t);
                h->st = write_text(rpath, text, NULL, NULL, &h->err);
            }
            free(t);
        }
        free(rpath);
    }
    return NULL;
}

/* ---- quantizing one tensor ---- */

typedef struct qctx {
    const lq_plan *p;
    const lq_plan_tensor *t;
    const uint8_t *src;          /* whole source tensor */
    const uint8_t *scale_src;    /* FP8: whole weight_scale_inv */
    uint64_t K, r0;              /* columns; first row of the chunk */
    float *f32;                  /* one row slot per thread's range (the range's first row) */
    uint8_t *packed;             /* chunk codes */
    uint8_t *scales;             /* whole tensor's scales */
    lq_err_acc *row_acc;         /* per chunk row */
    lq_status st;                /* the failure of the lowest row */
    uint64_t err_row;            /* its row, so the error does not depend on the thread count */
    int quant_failed;            /* it was the quantizer's (a non-finite value), not the decoder's */
    uint64_t bad_col;            /* quantizer: the first non-finite column of that row */
    float bad_value;             /* and its value */
    lq_error err;                /* decoder: its error */
    pthread_mutex_t mu;
} qctx;

static void note_failure(qctx *c, uint64_t row, lq_status st, int quant, uint64_t col, float v,
                         const lq_error *e)
{
    pthread_mutex_lock(&c->mu);
    if (c->st == LQ_OK || row < c->err_row) {
        c->st = st;
        c->err_row = row;
        c->quant_failed = quant;
        c->bad_col = col;
        c->bad_value = v;
        if (e)
            c->err = *e;
    }
    pthread_mutex_unlock(&c->mu);
}

/* Decodes, quantizes and measures chunk rows [b, e) one row at a time, so a row's f32 values are
 * quantized and measured while they are still in this core's cache: one pass over the source
 * bytes instead of three passes over a chunk of f32 much larger than the cache. Each row is
 * quantized and measured exactly as it was as part of a whole chunk (MXFP4 blocks of 32 never
 * span rows, K being a multiple of 32; the error accumulators are per row and merged in row
 * order), so codes, scales and metrics are unchanged and do not depend on the thread count. */
static void convert_rows(void *arg, size_t b, size_t e)
{
    qctx *c = arg;
    const lq_plan_tensor *t = c->t;
    lq_dtype dt = t->src.info->dtype;
    uint64_t K = c->K;
    float *row = c->f32 + b * K;
    const int fp8 = dt == LQ_DTYPE_F8_E4M3 || dt == LQ_DTYPE_F8_E5M2;
    const size_t esz = lq_dtype_bits(dt) / 8;
    for (size_t r = b; r < e; r++) {
        uint64_t gr = c->r0 + r;
        if (fp8) {
            lq_error e2;
            lq_status st = lq_fp8_block_dequant(t->grid, dt, c->src, t->src_scale.info->dtype, c->scale_src, gr,
                                                gr + 1, row, t->src.info->name, &e2);
            if (st != LQ_OK) {
                note_failure(c, gr, st, 0, 0, 0.0f, &e2);
                return;
            }
        } else {
            lq_to_f32(dt, c->src + gr * K * esz, (size_t)K, row);
        }
        uint8_t *pk = c->packed + r * (K / 2), *sc = c->scales + gr * (K / 32);
        size_t bad = 0;
        lq_status st = lq_mxfp4_quantize(row, (size_t)K, c->p->scale_mode, pk, sc, NULL, &bad);
        if (st != LQ_OK) {
            note_failure(c, gr, st, 1, bad, st == LQ_ERR_NUMERIC ? row[bad] : 0.0f, NULL);
            return;
        }
        lq_err_acc_init(&c->row_acc[r]);
        lq_err_acc_add_mx(&c->row_acc[r], row, pk, sc, (size_t)K);
    }
}

/* ---- running a part ---- */

void lq_part_range(uint32_t n, uint32_t part, uint32_t nparts, uint32_t *first, uint32_t *last)
{
    *first = nparts ? (uint32_t)((uint64_t)n * (part - 1) / nparts) : 0;
    *last = nparts ? (uint32_t)((uint64_t)n * part / nparts) : n;
}

typedef struct part_ctx {
    const lq_ckpt *src;
    const lq_plan *p;
    const lq_run_opts *o;
    const char *work;
    float *f32;
    uint8_t *packed;
    lq_err_acc *row_acc;
    uint64_t row_acc_cap;
    uint64_t chunk_elems;
    uint8_t *scales;             /* scales of the MXFP4 weight written last */
    uint64_t scales_len;
    size_t scales_quant;
    uint64_t done_bytes, total_bytes;
    size_t done_tensors, total_tensors;
    /* The plan's tensors grouped by shard: shard s holds by_shard[shard_first[s] ..
     * shard_first[s + 1]), in plan order until write_shard sorts them into file order. */
    size_t *shard_first;
    const lq_plan_tensor **by_shard;
    size_t since_release;        /* tensors since the last release_source */
} part_ctx;

/* Drops every mapped source page from this process. Each tensor releases the whole pages of its
 * own bytes once read (lq_pages_release); the pages it shares with its neighbours stay, about one
 * page per tensor, which for a model of many small tensors is most of the resident memory (4 kB
 * a tensor). Done every 1024 tensors and after each shard; pages still to be read fault back in
 * from the page cache. */
static void release_source(part_ctx *pc)
{
    pc->since_release = 0;
    for (size_t i = 0; i < lq_ckpt_shard_count(pc->src); i++) {
        const lq_st_file *f = lq_ckpt_shard(pc->src, i);
        if (!f || lq_st_count(f) == 0)
            continue;
        const lq_tensor_info *t0 = lq_st_tensor(f, 0);
        const uint8_t *data = lq_st_data(f, t0) - t0->begin;
        uint64_t len = lq_st_file_size(f) - 8 - lq_st_header_len(f);
        lq_pages_release(data, len);
    }
}

/* Groups the plan's tensors by shard (a counting sort, so one pass per shard is not needed). */
static int group_by_shard(part_ctx *pc)
{
    const lq_plan *p = pc->p;
    pc->shard_first = calloc((size_t)p->nshards + 2, sizeof(size_t));
    pc->by_shard = calloc(p->n + 1, sizeof(*pc->by_shard));
    if (!pc->shard_first || !pc->by_shard)
        return -1;
    for (size_t i = 0; i < p->n; i++)
        pc->shard_first[p->t[i].shard + 1]++;
    for (uint32_t s = 0; s < p->nshards; s++)
        pc->shard_first[s + 1] += pc->shard_first[s];
    size_t *fill = calloc((size_t)p->nshards + 1, sizeof(size_t));
    if (!fill)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        uint32_t s = p->t[i].shard;
        pc->by_shard[pc->shard_first[s] + fill[s]++] = &p->t[i];
    }
    free(fill);
    return 0;
}

static uint64_t src_bytes_of(const lq_plan_tensor *t)
{
    if (t->rule == LQ_RULE_MXFP4_SCALE)
        return 0;
    return t->src.info->nbytes + (t->rule == LQ_RULE_MXFP4 && t->has_src_scale ? t->src_scale.info->nbytes : 0);
}

/* Every stored value of a source tensor is checked before it is used (values.h, bound
 * LQ_VALUES_MAX_ABS), so a bad value is refused naming the source tensor instead of being copied
 * into a release: floats finite and bounded; FP8 sources of MXFP4 weights with their scale grid
 * (codes not NaN, scales finite and positive); kept FP8 weights' codes not NaN (their kept
 * weight_scale_inv is a float tensor, checked finite and positive on its own); already-MXFP4
 * weights' E8M0 scales decoding within the float range. */
static lq_status source_values(const lq_plan_tensor *t, lq_error *err)
{
    const lq_tensor_info *si = t->src.info;
    const uint8_t *d = lq_st_data(t->src.file, si);
    const char *path = lq_st_path(t->src.file);
    lq_dtype dt = si->dtype;
    if (t->rule == LQ_RULE_MXFP4_SCALE)
        return LQ_OK;
    if (t->rule == LQ_RULE_PASSTHROUGH && t->has_src_scale)
        return lq_values_mxfp4(d, lq_st_data(t->src_scale.file, t->src_scale.info), si->shape[0], si->shape[1] * 2,
                               LQ_VALUES_MAX_ABS, path, si->name, NULL, err);
    if ((dt == LQ_DTYPE_F8_E4M3 || dt == LQ_DTYPE_F8_E5M2) && t->has_src_scale)
        return lq_values_fp8(t->grid, dt, d, t->src_scale.info->dtype, lq_st_data(t->src_scale.file, t->src_scale.info),
                             0, si->shape[0], LQ_VALUES_MAX_ABS, path, lq_st_path(t->src_scale.file), si->name, NULL,
                             err);
    if (dt == LQ_DTYPE_F8_E4M3 || dt == LQ_DTYPE_F8_E5M2) {
        for (uint64_t i = 0; i < si->nbytes; i++)
            if (dt == LQ_DTYPE_F8_E4M3 ? lq_e4m3_is_nan(d[i]) : (d[i] & 0x7C) == 0x7C)
                return lq_fail(err, LQ_ERR_NUMERIC, path, si->name, "VAL_FP8_NAN", "element %llu is the code 0x%02X (%s)",
                               (unsigned long long)i, d[i], dt == LQ_DTYPE_F8_E4M3 ? "NaN" : "inf or NaN");
        return LQ_OK;
    }
    if (dt != LQ_DTYPE_F32 && dt != LQ_DTYPE_F16 && dt != LQ_DTYPE_BF16)
        return LQ_OK;
    lq_status st = lq_values_float(dt, d, si->numel, LQ_VALUES_MAX_ABS, path, si->name, NULL, err);
    /* a weight to quantize: its NaN or inf is reported by the quantizer, with row and column */
    if (st != LQ_OK && t->rule == LQ_RULE_MXFP4 && err && !strcmp(err->rule, "VAL_NONFINITE")) {
        lq_error_clear(err);
        st = LQ_OK;
    }
    size_t nl = strlen(si->name);
    if (st == LQ_OK && nl > 10 && !strcmp(si->name + nl - 10, "_scale_inv")) {
        float v;
        for (uint64_t i = 0; i < si->numel; i++)
            if (lq_to_f32(dt, d + i * (lq_dtype_bits(dt) / 8), 1, &v) == LQ_OK && !(v > 0))
                return lq_fail(err, LQ_ERR_NUMERIC, path, si->name, "VAL_SCALE_INV",
                               "element %llu is %g: a weight_scale_inv must be positive", (unsigned long long)i,
                               (double)v);
    }
    return st;
}

static lq_status write_mxfp4(part_ctx *pc, const lq_plan_tensor *t, lq_stw *w, lq_err_acc *acc, lq_error *err)
{
    const lq_tensor_info *si = t->src.info;
    uint64_t N = si->shape[0], K = si->shape[1];
    uint64_t rows_per = pc->chunk_elems / K ? pc->chunk_elems / K : 1;
    if (rows_per > pc->row_acc_cap) {
        lq_err_acc *ra = realloc(pc->row_acc, rows_per * sizeof(*ra));
        if (!ra)
            return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, t->name, NULL, "out of memory");
        pc->row_acc = ra;
        pc->row_acc_cap = rows_per;
    }
    uint8_t *scales = malloc(N * (K / 32) + 1);
    if (!scales)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, t->name, NULL, "cannot allocate %llu scale bytes",
                       (unsigned long long)(N * K / 32));
    qctx c = {.p = pc->p, .t = t, .src = lq_st_data(t->src.file, si),
              .scale_src = t->has_src_scale ? lq_st_data(t->src_scale.file, t->src_scale.info) : NULL,
              .K = K, .f32 = pc->f32, .packed = pc->packed, .scales = scales, .row_acc = pc->row_acc,
              .st = LQ_OK};
    pthread_mutex_init(&c.mu, NULL);
    lq_status st = LQ_OK;
    lq_err_acc_init(acc);
    const size_t esz = lq_dtype_bits(si->dtype) / 8;
    for (uint64_t r0 = 0; r0 < N && st == LQ_OK; r0 += rows_per) {
        if (cancelled(pc->o)) {
            st = lq_fail(err, LQ_ERR_CANCELLED, NULL, t->name, "RUN_CANCELLED", "interrupted");
            break;
        }
        uint64_t nr = r0 + rows_per < N ? rows_per : N - r0;
        c.r0 = r0;
        lq_pages_populate(c.src + r0 * K * esz, nr * K * esz);
        parallel_for(pc->o->threads, (size_t)nr, convert_rows, &c);
        if (c.st != LQ_OK && !c.quant_failed) {
            *err = c.err;
            st = c.st;
            break;
        }
        if (c.st == LQ_ERR_NUMERIC) {
            st = lq_fail(err, LQ_ERR_NUMERIC, lq_st_path(t->src.file), si->name, "QUANT_NONFINITE",
                         "non-finite value %g at row %llu, column %llu", (double)c.bad_value,
                         (unsigned long long)c.err_row, (unsigned long long)c.bad_col);
            break;
        }
        if (c.st != LQ_OK) {
            st = lq_fail(err, c.st, lq_st_path(t->src.file), si->name, NULL, "quantization failed");
            break;
        }
        for (uint64_t r = 0; r < nr; r++)
            lq_err_acc_merge(acc, &pc->row_acc[r]);
        lq_pages_release(c.src + r0 * K * esz, nr * K * esz);
        st = lq_stw_write(w, pc->packed, (size_t)(nr * K / 2), err);
    }
    pthread_mutex_destroy(&c.mu);
    if (st != LQ_OK) {
        free(scales);
        return st;
    }
    free(pc->scales);
    pc->scales = scales;
    pc->scales_len = N * (K / 32);
    pc->scales_quant = t->quant;
    return LQ_OK;
}

static lq_status copy_bytes(part_ctx *pc, lq_stw *w, const uint8_t *data, uint64_t n, const char *name,
                            lq_error *err)
{
    for (uint64_t off = 0; off < n; off += COPY_CHUNK) {
        if (cancelled(pc->o))
            return lq_fail(err, LQ_ERR_CANCELLED, NULL, name, "RUN_CANCELLED", "interrupted");
        size_t len = (size_t)(n - off < COPY_CHUNK ? n - off : COPY_CHUNK);
        lq_pages_populate(data + off, len);
        lq_status st = lq_stw_write(w, data + off, len, err);
        if (st != LQ_OK)
            return st;
        lq_pages_release(data + off, len);
    }
    return LQ_OK;
}

/* The writer's file order (stwriter.h): dtype descending, then name byte-wise. */
static int cmp_file_order(const void *a, const void *b)
{
    const lq_plan_tensor *const *x = a, *const *y = b;
    if ((*x)->dtype != (*y)->dtype)
        return (*x)->dtype > (*y)->dtype ? -1 : 1;
    return strcmp((*x)->name, (*y)->name);
}

/* Writes shard s and its record. */
static lq_status write_shard(part_ctx *pc, uint32_t s, lq_error *err)
{
    const lq_plan *p = pc->p;
    lq_status st = LQ_OK;
    char *path = path_join(pc->work, p->shard_names[s]);
    const lq_plan_tensor **members = pc->by_shard + pc->shard_first[s];
    size_t cnt = pc->shard_first[s + 1] - pc->shard_first[s];
    size_t cntq = 0, ndims = 0;
    for (size_t k = 0; k < cnt; k++) {
        cntq += members[k]->rule == LQ_RULE_MXFP4;
        ndims += members[k]->rank;
    }
    lq_err_acc *accs = calloc(cntq + 1, sizeof(*accs));
    size_t nq = 0;
    lq_stw *w = NULL;
    lq_jw *jw = NULL;
    if (!path || !accs) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    /* The members in the order the writer lays them out, so its i-th tensor is members[i]: no
     * name lookup while writing. The writer keeps the plan's names (they outlive it) and gets
     * its arrays sized once. */
    qsort(members, cnt, sizeof(*members), cmp_file_order);
    if ((st = lq_stw_create(path, &w, err)) != LQ_OK || (st = lq_stw_borrow_names(w, err)) != LQ_OK ||
        (st = lq_stw_reserve(w, cnt, ndims, err)) != LQ_OK)
        goto cleanup;
    for (size_t k = 0; k < cnt && st == LQ_OK; k++)
        st = lq_stw_add(w, members[k]->name, members[k]->dtype, members[k]->rank, members[k]->shape, err);
    if (st != LQ_OK || (st = lq_stw_begin(w, err)) != LQ_OK)
        goto cleanup;
    for (size_t k = 0; k < cnt; k++) {
        const lq_tensor_info *wi = lq_stw_tensor(w, k);
        if (wi->name != members[k]->name || wi->nbytes != members[k]->nbytes) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, wi->name, NULL, "internal: file order not the plan's");
            goto cleanup;
        }
    }
    const char *next;
    size_t at = 0;
    while ((next = lq_stw_next(w)) != NULL) {
        while (at < cnt && members[at]->name != next) /* zero-byte tensors need no bytes */
            at++;
        if (at == cnt) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, next, NULL, "internal: tensor not in the plan");
            goto cleanup;
        }
        const lq_plan_tensor *t = members[at];
        lq_tensor_event ev = {.t = t, .in_bytes = src_bytes_of(t), .out_bytes = t->nbytes};
        if ((st = source_values(t, err)) != LQ_OK)
            goto cleanup;
        switch (t->rule) {
        case LQ_RULE_KEEP:
            st = copy_bytes(pc, w, lq_st_data(t->src.file, t->src.info), t->nbytes, t->name, err);
            break;
        case LQ_RULE_PASSTHROUGH: /* its E8M0 scales were checked by source_values */
            st = copy_bytes(pc, w, lq_st_data(t->src.file, t->src.info), t->nbytes, t->name, err);
            break;
        case LQ_RULE_MXFP4:
            st = write_mxfp4(pc, t, w, &accs[nq], err);
            if (st == LQ_OK) {
                ev.quantized = 1;
                ev.out_bytes = t->nbytes + pc->scales_len;
                lq_err_acc_finish(&accs[nq], &ev.m);
                nq++;
            }
            break;
        case LQ_RULE_MXFP4_SCALE:
            if (!pc->scales || pc->scales_quant != t->quant || pc->scales_len != t->nbytes) {
                st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, path, t->name, NULL,
                             "internal: scales requested before their weight");
                goto cleanup;
            }
            st = lq_stw_write(w, pc->scales, (size_t)t->nbytes, err);
            free(pc->scales);
            pc->scales = NULL;
            break;
        }
        if (st != LQ_OK)
            goto cleanup;
        if (t->rule != LQ_RULE_MXFP4_SCALE) {
            if (++pc->since_release >= 1024)
                release_source(pc);
            pc->done_bytes += ev.in_bytes;
            pc->done_tensors++;
            ev.done_bytes = pc->done_bytes;
            ev.total_bytes = pc->total_bytes;
            ev.done_tensors = pc->done_tensors;
            ev.total_tensors = pc->total_tensors;
            if (pc->o->progress)
                pc->o->progress(pc->o->user, &ev);
        }
    }
    /* Per-tensor CRC-32C, for verifiers to name a damaged tensor (file order: members[i]). */
    size_t nt = lq_stw_count(w);
    uint32_t *crcs = calloc(nt + 1, sizeof(uint32_t));
    if (!crcs) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < nt; i++)
        crcs[i] = lq_stw_crc32c(w, i);
    release_source(pc);
    uint8_t sha[32];
    uint64_t size = 0;
    st = lq_stw_finish(w, sha, &size, err);
    w = NULL;
    if (st != LQ_OK) {
        free(crcs);
        goto cleanup;
    }
    /* The record, written after the shard is published; streamed into its file (at one shard
     * of 100,000 tensors its text is about 20 MB). */
    char hx[65];
    hex32(sha, hx);
    char rec[320];
    snprintf(rec, sizeof(rec), ".mimo-done-%s.json", p->shard_names[s]);
    char *rpath = path_join(pc->work, rec);
    lq_outfile *of = NULL;
    st = rpath ? lq_outfile_open(rpath, &of, err) : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    free(rpath);
    if (st != LQ_OK) {
        free(crcs);
        goto cleanup;
    }
    jw = lq_jw_new(0);
    lq_jw_set_sink(jw, lq_outfile_sink, of);
    lq_jw_begin_object(jw);
    lq_jw_key(jw, "shard");
    lq_jw_string(jw, p->shard_names[s]);
    lq_jw_key(jw, "size");
    lq_jw_u64(jw, size);
    lq_jw_key(jw, "sha256");
    lq_jw_string(jw, hx);
    lq_jw_key(jw, "metrics");
    lq_jw_begin_array(jw);
    /* accs[] follow the MXFP4 weights in file order (zero-byte tensors were never written). */
    for (size_t i = 0, k = 0; i < nq; i++, k++) {
        while (k < cnt - 1 && (members[k]->rule != LQ_RULE_MXFP4 || members[k]->nbytes == 0))
            k++;
        const lq_err_acc *a = &accs[i];
        lq_jw_begin_array(jw);
        lq_jw_string(jw, members[k]->name);
        lq_jw_u64(jw, a->n);
        lq_jw_double_exact(jw, a->sum_w2);
        lq_jw_double_exact(jw, a->sum_q2);
        lq_jw_double_exact(jw, a->sum_wq);
        lq_jw_double_exact(jw, a->sum_e2);
        lq_jw_double_exact(jw, a->max_abs);
        lq_jw_u64(jw, a->clipped);
        lq_jw_u64(jw, a->zeroed);
        lq_jw_u64(jw, a->nonfinite);
        lq_jw_end_array(jw);
    }
    lq_jw_end_array(jw);
    lq_jw_key(jw, "crc32c");
    lq_jw_begin_array(jw);
    for (size_t i = 0; i < nt; i++) {
        char hx8[9];
        snprintf(hx8, sizeof(hx8), "%08x", crcs[i]);
        lq_jw_begin_array(jw);
        lq_jw_string(jw, members[i]->name);
        lq_jw_string(jw, hx8);
        lq_jw_end_array(jw);
    }
    free(crcs);
    lq_jw_end_array(jw);
    lq_jw_end_object(jw);
    st = lq_jw_finish(jw, NULL, NULL, err);
    if (st == LQ_OK)
        st = lq_outfile_commit(of, NULL, NULL, err);
    else
        lq_outfile_abort(of);
cleanup:
    lq_stw_abort(w);
    lq_jw_free(jw);
    free(path);
    free(accs);
    return st;
}

/* Checks a finished shard against its record (resume). 1 = done and intact, 0 = not done. */
static lq_status check_done(const char *work, const char *shard, int *done, lq_error *err)
{
    char rec[320];
    snprintf(rec, sizeof(rec), ".mimo-done-%s.json", shard);
    char *rpath = path_join(work, rec), *spath = path_join(work, shard);
    lq_status st = LQ_OK;
    cJSON *j = NULL;
    *done = 0;
    if (!rpath || !spath) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    if (access(rpath, F_OK) != 0)
        goto cleanup;
    if ((st = read_state_head(rpath, 0, &j, err)) != LQ_OK)
        goto cleanup;
    int ok = 1;
    uint64_t size = ju64(j, "size", &ok);
    uint8_t want[32], got[32];
    uint64_t gsize = 0;
    if (!ok || unhex32(jstr(j, "sha256"), want) != 0) {
        st = lq_fail(err, LQ_ERR_CORRUPT, rpath, NULL, "RUN_STATE", "malformed shard record");
        goto cleanup;
    }
    st = hash_copy(spath, NULL, got, &gsize, NULL, NULL, err);
    if (st != LQ_OK || gsize != size || memcmp(got, want, 32) != 0) {
        st = lq_fail(err, LQ_ERR_CORRUPT, spath, NULL, "RUN_SHARD_DAMAGED",
                     "completed shard no longer matches its record (size or SHA-256); remove the work "
                     "directory to start over");
        goto cleanup;
    }
    *done = 1;
cleanup:
    cJSON_Delete(j);
    free(rpath);
    free(spath);
    return st;
}

/* Removes temporaries left by a killed writer (".NAME.tmp-PID") in dir and its dflash/. */
static void remove_temps(const char *dir)
{
    for (int pass = 0; pass < 2; pass++) {
        char *d0 = pass ? path_join(dir, "dflash") : strdup(dir);
        DIR *d = d0 ? opendir(d0) : NULL;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp-")) {
                    char *pth = path_join(d0, e->d_name);
                    if (pth)
                        unlink(pth);
                    free(pth);
                }
            }
            closedir(d);
        }
        free(d0);
    }
}

/* Removes "<work>.init-PID" directories left when a run was killed while creating its work
 * directory (they hold at most the plan and its temporary). */
static void remove_stale_inits(const char *work)
{
    char *parent = strdup(work);
    if (!parent)
        return;
    char *sl = strrchr(parent, '/');
    const char *base = sl ? sl + 1 : work;
    if (sl)
        *sl = 0;
    const char *pdir = sl ? (parent[0] ? parent : "/") : ".";
    size_t bl = strlen(base);
    DIR *d = opendir(pdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, base, bl) != 0 || strncmp(e->d_name + bl, ".init-", 6) != 0)
                continue;
            char *stale = path_join(pdir, e->d_name);
            DIR *sd = stale ? opendir(stale) : NULL;
            if (sd) {
                struct dirent *f;
                while ((f = readdir(sd)) != NULL) {
                    if (!strcmp(f->d_name, ".") || !strcmp(f->d_name, ".."))
                        continue;
                    /* Only what a work directory's creation writes. */
                    if (!strstr(f->d_name, "mimo-plan.json"))
                        continue;
                    char *fp = path_join(stale, f->d_name);
                    if (fp)
                        unlink(fp);
                    free(fp);
                }
                closedir(sd);
                rmdir(stale);
            }
            free(stale);
        }
        closedir(d);
    }
    free(parent);
}

/* Part 1's other files: config.json and the extras, recorded in .mimo-extras.json. */
static lq_status write_extras(part_ctx *pc, lq_error *err)
{
    const lq_run_opts *o = pc->o;
    char *rpath = path_join(pc->work, ".mimo-extras.json");
    lq_status st = LQ_OK;
    lq_jw *jw = NULL;
    char *cfg = NULL, *text = NULL;
    if (!rpath)
        return lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    if (access(rpath, F_OK) == 0)
        goto cleanup;
    jw = lq_jw_new(0);
    lq_jw_begin_object(jw);
    lq_jw_key(jw, "files");
    lq_jw_begin_array(jw);
    uint8_t sha[32];
    uint64_t size = 0;
    char hx[65];
    if ((st = config_text(pc->p->config, &cfg, err)) != LQ_OK)
        goto cleanup;
    char *cpath = path_join(pc->work, "config.json");
    st = cpath ? write_text(cpath, cfg, sha, &size, err) : LQ_ERR_NO_MEMORY;
    free(cpath);
    if (st != LQ_OK)
        goto cleanup;
    hex32(sha, hx);
    lq_jw_begin_array(jw);
    lq_jw_string(jw, "config.json");
    lq_jw_u64(jw, size);
    lq_jw_string(jw, hx);
    lq_jw_end_array(jw);
    if (o->drafter) {
        /* The drafter's weights go through our writer (hashed while written, canonical layout),
         * with an index naming the one file, as MiMo ships it. */
        const lq_ckpt *d = o->drafter;
        char dpath[4096], rel[600];
        snprintf(dpath, sizeof(dpath), "%s/dflash", pc->work);
        mkdir(dpath, 0755);
        snprintf(dpath, sizeof(dpath), "%s/dflash/%s", pc->work, o->drafter_file);
        lq_stw *dw = NULL;
        size_t nd = lq_ckpt_count(d);
        const char **names = calloc(nd + 1, sizeof(char *)), **files = calloc(nd + 1, sizeof(char *));
        if (!names || !files) {
            free(names);
            free(files);
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto cleanup;
        }
        st = lq_stw_create(dpath, &dw, err);
        for (size_t i = 0; i < nd && st == LQ_OK; i++) {
            lq_ckpt_tensor t = lq_ckpt_at(d, i);
            names[i] = t.info->name;
            files[i] = o->drafter_file;
            st = lq_stw_add(dw, t.info->name, t.info->dtype, t.info->rank, t.info->shape, err);
        }
        if (st == LQ_OK)
            st = lq_stw_begin(dw, err);
        const char *next;
        uint64_t total = st == LQ_OK ? lq_stw_total_size(dw) : 0;
        while (st == LQ_OK && (next = lq_stw_next(dw)) != NULL) {
            lq_ckpt_tensor t;
            if (lq_ckpt_find(d, next, &t) != 0) {
                st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, next, NULL, "internal: drafter tensor lost");
                break;
            }
            st = copy_bytes(pc, dw, lq_st_data(t.file, t.info), t.info->nbytes, next, err);
        }
        if (st == LQ_OK) {
            st = lq_stw_finish(dw, sha, &size, err);
            dw = NULL;
        }
        lq_stw_abort(dw);
        if (st == LQ_OK) {
            hex32(sha, hx);
            snprintf(rel, sizeof(rel), "dflash/%s", o->drafter_file);
            lq_jw_begin_array(jw);
            lq_jw_string(jw, rel);
            lq_jw_u64(jw, size);
            lq_jw_string(jw, hx);
            lq_jw_end_array(jw);
            snprintf(dpath, sizeof(dpath), "%s/dflash/model.safetensors.index.json", pc->work);
            st = lq_index_write(dpath, names, files, nd, total, NULL, sha, err);
            struct stat isb;
            if (st == LQ_OK && stat(dpath, &isb) == 0) {
                hex32(sha, hx);
                lq_jw_begin_array(jw);
                lq_jw_string(jw, "dflash/model.safetensors.index.json");
                lq_jw_u64(jw, (uint64_t)isb.st_size);
                lq_jw_string(jw, hx);
                lq_jw_end_array(jw);
            }
        }
        free(names);
        free(files);
        if (st != LQ_OK)
            goto cleanup;
    }
    for (size_t i = 0; i < o->nextras; i++) {
        char *dst = path_join(pc->work, o->extras[i].out_name);
        if (!dst) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto cleanup;
        }
        char *slash = strrchr(dst, '/');
        if (slash && slash > dst + strlen(pc->work)) {
            *slash = 0;
            mkdir(dst, 0755);
            *slash = '/';
        }
        st = hash_copy(o->extras[i].src_path, dst, sha, &size, o->cancel, NULL, err);
        free(dst);
        if (st != LQ_OK)
            goto cleanup;
        hex32(sha, hx);
        lq_jw_begin_array(jw);
        lq_jw_string(jw, o->extras[i].out_name);
        lq_jw_u64(jw, size);
        lq_jw_string(jw, hx);
        lq_jw_end_array(jw);
    }
    lq_jw_end_array(jw);
    lq_jw_end_object(jw);
    if ((st = lq_jw_finish(jw, &text, NULL, err)) != LQ_OK)
        goto cleanup;
    st = write_text(rpath, text, NULL, NULL, err);
cleanup:
    lq_jw_free(jw);
    free(cfg);
    free(text);
    free(rpath);
    return st;
}

lq_status lq_run_part(const lq_ckpt *src, const lq_plan *p, const char *work, const lq_run_opts *o,
                      lq_error *err)
{
    lq_status st = LQ_OK;
    char *plan_txt = NULL, *ppath = NULL; /* plan_txt: the source description (plan_fingerprint) */
    char fp[65];
    cJSON *old = NULL;
    part_ctx pc = {.src = src, .p = p, .o = o, .work = work};
    pthread_t hth;
    int hash_started = 0;
    hash_task ht = {0};
    if (o->part < 1 || o->part > o->nparts || o->threads < 1)
        return lq_fail(err, LQ_ERR_INVALID_ARGUMENT, NULL, NULL, NULL, "bad part or thread count");
    if ((st = plan_fingerprint(src, p, o, &plan_txt, fp, err)) != LQ_OK)
        return st;
    ppath = path_join(work, ".mimo-plan.json");
    if (!ppath) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    if (o->resume && o->out) {
        st = lq_publish_resume(o->out, fp, err);
        if (st == LQ_OK && o->published)
            *o->published = 1;
        if (st != LQ_ERR_NOT_FOUND)
            goto cleanup;
        st = LQ_OK;
    }
    remove_stale_inits(work);
    struct stat wsb;
    if (stat(work, &wsb) == 0) {
        if (!o->resume) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work, NULL, "RUN_EXISTS",
                         "a work directory from an earlier run exists: continue it with --resume, or remove it");
            goto cleanup;
        }
        if ((st = read_state_head(ppath, 1, &old, err)) != LQ_OK) {
            if (st == LQ_ERR_NOT_FOUND) {
                /* finalize drops the bookkeeping just before the rename that publishes OUT, after
                 * writing the publish record that --resume finishes from (above). A directory with
                 * a manifest, no run state and no record (removed by hand, or written by a version
                 * without records) is still a finished conversion: never "remove it". */
                char *mp = path_join(work, LQ_MANIFEST_FILE);
                struct stat msb;
                int finished = mp && stat(mp, &msb) == 0 && S_ISREG(msb.st_mode);
                free(mp);
                if (finished)
                    st = lq_fail(err, LQ_ERR_CORRUPT, work, NULL, "RUN_UNPUBLISHED",
                                 "holds a finished conversion whose final rename was interrupted (no run state, "
                                 "a %s): check it with mimo-verify and rename it to the output path",
                                 LQ_MANIFEST_FILE);
                else
                    st = lq_fail(err, LQ_ERR_CORRUPT, work, NULL, "RUN_STATE",
                                 "exists but holds no run state (%s); remove it", ".mimo-plan.json");
            }
            goto cleanup;
        }
        int ok = 1;
        const char *ofp = jstr(old, "fingerprint");
        if (!ofp || strcmp(ofp, fp) != 0 || ju64(old, "part", &ok) != o->part ||
            ju64(old, "nparts", &ok) != o->nparts || !ok) {
            st = lq_fail(err, LQ_ERR_INVALID_ARGUMENT, work, NULL, "RUN_MISMATCH",
                         "cannot resume: the earlier run used other inputs, options or part; remove the "
                         "work directory to start over");
            goto cleanup;
        }
        remove_temps(work);
    } else {
        /* A fresh run: a publish record of OUT left from an earlier run names a directory that no
         * longer exists, and would stop this run's finalize. */
        if (o->out) {
            char rec[4200];
            lq_publish_record_name(o->out, rec, sizeof(rec));
            unlink(rec);
        }
        /* Created under a temporary name with its plan inside, then renamed: a work directory
         * always holds its plan, whenever the process is killed. */
        size_t n = strlen(work) + 48;
        char *tmp = malloc(n);
        char *tp = NULL;
        if (!tmp) {
            st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
            goto cleanup;
        }
        snprintf(tmp, n, "%s.init-%ld", work, (long)getpid());
        if (mkdir(tmp, 0755) != 0) {
            st = lq_fail(err, LQ_ERR_IO, tmp, NULL, "RUN_WORKDIR", "cannot create: %s", strerror(errno));
            free(tmp);
            goto cleanup;
        }
        tp = path_join(tmp, ".mimo-plan.json");
        st = tp ? plan_write(tp, src, p, o, plan_txt, fp, err)
                : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        if (st == LQ_OK && rename(tmp, work) != 0)
            st = lq_fail(err, LQ_ERR_IO, work, NULL, "RUN_WORKDIR", "cannot create: %s", strerror(errno));
        if (st != LQ_OK) {
            if (tp)
                unlink(tp);
            rmdir(tmp);
        }
        free(tp);
        free(tmp);
        if (st != LQ_OK)
            goto cleanup;
    }

    /* The plan's text and an earlier run's plan are not needed past this point. */
    cJSON_Delete(old);
    old = NULL;
    free(plan_txt);
    plan_txt = NULL;

    /* Shards and source files of this part: contiguous ranges. */
    uint32_t s0, s1, f0, f1;
    lq_part_range(p->nshards, o->part, o->nparts, &s0, &s1);
    lq_part_range((uint32_t)lq_ckpt_shard_count(src), o->part, o->nparts, &f0, &f1);
    ht = (hash_task){.src = src, .work = work, .first = f0, .last = f1, .cancel = o->cancel, .st = LQ_OK};
    /* A dedicated thread, not the pool: hashing the source files is a pipeline stage that runs
     * beside the shard writer for the whole part (and is stopped through ht.stop), not a
     * fork-join loop; on the pool it would hold a worker for the whole conversion. */
    if (pthread_create(&hth, NULL, hash_worker, &ht) == 0)
        hash_started = 1;
    else
        hash_worker(&ht);

    if (group_by_shard(&pc) != 0) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
        goto cleanup;
    }
    for (size_t k = pc.shard_first[s0]; k < pc.shard_first[s1]; k++) {
        const lq_plan_tensor *t = pc.by_shard[k];
        if (t->rule != LQ_RULE_MXFP4_SCALE) {
            pc.total_bytes += src_bytes_of(t);
            pc.total_tensors++;
        }
    }
    pc.chunk_elems = LQ_CONVERT_CHUNK_ELEMS > p->max_quant_cols ? LQ_CONVERT_CHUNK_ELEMS : p->max_quant_cols;
    pc.f32 = malloc(pc.chunk_elems * sizeof(float) + 16);
    pc.packed = malloc(pc.chunk_elems / 2 + 16);
    if (!pc.f32 || !pc.packed) {
        st = lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "cannot allocate the quantization buffers");
        goto cleanup;
    }
    for (uint32_t s = s0; s < s1; s++) {
        int done = 0;
        if ((st = check_done(work, p->shard_names[s], &done, err)) != LQ_OK)
            goto cleanup;
        if (done) {
            for (size_t k = pc.shard_first[s]; k < pc.shard_first[s + 1]; k++) {
                const lq_plan_tensor *t = pc.by_shard[k];
                if (t->rule != LQ_RULE_MXFP4_SCALE) {
                    pc.done_bytes += src_bytes_of(t);
                    pc.done_tensors++;
                }
            }
            continue;
        }
        if (cancelled(o)) {
            st = lq_fail(err, LQ_ERR_CANCELLED, work, NULL, "RUN_CANCELLED", "interrupted");
            goto cleanup;
        }
        if ((st = write_shard(&pc, s, err)) != LQ_OK)
            goto cleanup;
    }
    if (o->part == 1 && (st = write_extras(&pc, err)) != LQ_OK)
        goto cleanup;
cleanup:
    if (hash_started) {
        if (st != LQ_OK)
            ht.stop = 1;
        pthread_join(hth, NULL);
    }
    if (st == LQ_OK && ht.st != LQ_OK) {
        st = ht.st;
        if (err)
            *err = ht.err;
    }
    cJSON_Delete(old);
    free(plan_txt);
    free(ppath);
    free(pc.shard_first);
    free(pc.by_shard);
    free(pc.f32);
    free(pc.packed);
    free(pc.row_acc);
    free(pc.scales);
    return st;
}
