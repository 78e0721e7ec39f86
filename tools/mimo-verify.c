/* mimo-verify: the release gate for mimo-quantize artifacts.
 *
 *   mimo-verify ARTIFACT [--pubkey KEY.pem] [--only C,..] [--skip C,..] [--threads N]
 *               [--report FILE.json] [--junit FILE.xml] [-q]
 *
 * Checks run in order; each prints one line (PASS / FAIL / SKIP with what it measured), then the
 * verdict. Exit: 0 every check passed, 1 a check failed, 2 usage, 3 the artifact cannot be read.
 * Checks available now:
 *   manifest   mimo-manifest.json parses and has the expected schema
 *   integrity  every listed file exists with its size and SHA-256 (files hashed in parallel);
 *              files in the artifact that the manifest does not list are reported
 *   signature  mimo-manifest.json.sig verifies against --pubkey (Ed25519); skipped without a key
 *   container  the checkpoint opens under every safetensors and index rule (libquant/checkpoint.h):
 *              index <-> shards both ways, offsets, dtypes, shapes, total_size
 *   tensors    the manifest's tensor list equals the shards' (names, dtypes, shapes, files)
 * The loader-contract inventory, accuracy against the source, HTML output and policy files are
 * the next steps of this tool (docs/cli.md says which). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <openssl/evp.h>

#include "libquant/libquant.h"

typedef struct check {
    const char *name;
    int ran, passed;
    char detail[1024];
} check;

static check checks[] = {
    {"manifest", 0, 0, ""}, {"integrity", 0, 0, ""}, {"signature", 0, 0, ""},
    {"container", 0, 0, ""}, {"tensors", 0, 0, ""}, {"inventory", 0, 0, ""},
    {"drafter", 0, 0, ""}, {"accuracy", 0, 0, ""},
};
#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

static int enabled[NCHECKS];

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-verify ARTIFACT [options]\n"
        "Checks a mimo-quantize artifact: manifest, integrity (sizes and SHA-256), signature,\n"
        "container rules, tensor list. One line per check, then the verdict.\n"
        "  --pubkey KEY.pem    verify mimo-manifest.json.sig with this Ed25519 public key\n"
        "  --only C[,C...]     run only these checks (manifest, integrity, signature, container,\n"
        "                      tensors, inventory, drafter, accuracy)\n"
        "  --source SRC        the checkpoint the artifact was made from: every MXFP4 tensor is\n"
        "                      decoded and compared with its source tensor (accuracy check)\n"
        "  --policy FILE.json  required checks and thresholds (default: the built-in policy, the same\n"
        "                      as policy/default.json in the source tree)\n"
        "  --html FILE.html    a self-contained page with the checks and a per-layer SQNR chart\n"
        "  --skip C[,C...]     skip these checks\n"
        "  --threads N         hashing threads, 1..256 (default: all online cores)\n"
        "  --report FILE.json  write every check with its result as JSON (schema_version 1)\n"
        "  --junit FILE.xml    write the checks as a JUnit test suite\n"
        "  -q, --quiet         only the verdict line\n"
        "  -h, --help          this text\n"
        "Exit status: 0 all checks passed, 1 a check failed, 2 usage error, 3 unreadable input.\n");
}

static int check_index(const char *name)
{
    for (size_t i = 0; i < NCHECKS; i++)
        if (!strcmp(checks[i].name, name))
            return (int)i;
    return -1;
}

/* Parses a comma-separated list of check names into enabled[] (value v). */
static int parse_list(const char *s, int v)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int i = check_index(tok);
        if (i < 0) {
            fprintf(stderr, "mimo-verify: unknown check \"%s\"\n", tok);
            return -1;
        }
        enabled[i] = v;
    }
    return 0;
}

static void result(int i, int passed, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void result(int i, int passed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(checks[i].detail, sizeof(checks[i].detail), fmt, ap);
    va_end(ap);
    checks[i].ran = 1;
    checks[i].passed = passed;
}

/* Every "files" entry: a relative path inside the artifact (no "/" at the start, no ".."
 * component), an exact size and a 64-digit lowercase SHA-256; every "tensors" entry has a name
 * and a file. Fills why with the first problem. */
static void manifest_entries_ok(const cJSON *man, char *why, size_t cap)
{
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lq_json_get(man, "files")) {
        const char *p = cJSON_GetStringValue(lq_json_get(e, "path"));
        const char *h = cJSON_GetStringValue(lq_json_get(e, "sha256"));
        uint64_t size;
        int hex_ok = h && strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64;
        int path_ok = p && p[0] && p[0] != '/' && strcmp(p, "..") && strncmp(p, "../", 3) && !strstr(p, "/../") &&
                      !(strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/.."));
        if (!path_ok || !hex_ok || lq_json_u64(lq_json_get(e, "size"), &size) != 0) {
            snprintf(why, cap, "files[%d]: needs a relative \"path\" inside the artifact, an integer \"size\" and a "
                               "64-hex \"sha256\" (path %s)", i, p ? p : "missing");
            return;
        }
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(e, lq_json_get(man, "tensors")) {
        if (!cJSON_GetStringValue(lq_json_get(e, "name")) || !cJSON_GetStringValue(lq_json_get(e, "file"))) {
            snprintf(why, cap, "tensors[%d]: needs \"name\" and \"file\"", i);
            return;
        }
        i++;
    }
}

/* ---- integrity: parallel hashing of the listed files ---- */

typedef struct hjob {
    const char *dir;
    const cJSON *files;
    size_t n;
    size_t next;
    pthread_mutex_t mu;
    char (*got)[65];
    uint64_t *size;
    int *err;
} hjob;

static void *hash_worker(void *arg)
{
    hjob *h = arg;
    unsigned char *buf = malloc((size_t)8 << 20);
    for (;;) {
        pthread_mutex_lock(&h->mu);
        size_t i = h->next++;
        pthread_mutex_unlock(&h->mu);
        if (i >= h->n || !buf)
            break;
        const char *rel = cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(h->files, (int)i), "path"));
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", h->dir, rel ? rel : "");
        FILE *f = rel ? fopen(path, "rb") : NULL;
        if (!f) {
            h->err[i] = errno ? errno : ENOENT;
            continue;
        }
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        size_t r;
        uint64_t total = 0;
        while ((r = fread(buf, 1, (size_t)8 << 20, f)) > 0) {
            EVP_DigestUpdate(ctx, buf, r);
            total += r;
        }
        if (ferror(f))
            h->err[i] = EIO;
        fclose(f);
        uint8_t d[32];
        EVP_DigestFinal_ex(ctx, d, NULL);
        EVP_MD_CTX_free(ctx);
        lq_hex(d, 32, h->got[i]);
        h->size[i] = total;
    }
    free(buf);
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every file under dir at any depth (relative paths); directories are walked, links not followed. */
static size_t list_files(const char *dir, const char *sub, char ***out, size_t n)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
    DIR *d = opendir(path);
    if (!d)
        return n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char rel[4096], full[12288];
        snprintf(rel, sizeof(rel), "%s%s%s", sub ? sub : "", sub ? "/" : "", e->d_name);
        snprintf(full, sizeof(full), "%s/%s", dir, rel);
        struct stat sb;
        if (lstat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            n = list_files(dir, rel, out, n);
            continue;
        }
        char **o = realloc(*out, (n + 1) * sizeof(char *));
        if (!o)
            break;
        *out = o;
        (*out)[n++] = strdup(rel);
    }
    closedir(d);
    return n;
}

/* Names what is damaged inside a shard whose digest is wrong: the reader's rule when the header
 * or layout is broken, else every tensor whose CRC-32C differs from the manifest's. */
static void locate_damage(const char *dir, const char *rel, const cJSON *man, char *out, size_t cap)
{
    out[0] = 0;
    size_t l = strlen(rel);
    if (l < 12 || strcmp(rel + l - 12, ".safetensors"))
        return;
    char path[8192], buf[1400];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    lq_st_file *f = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (lq_st_open(path, NULL, &f, &err) != LQ_OK) {
        snprintf(out, cap, "; the header or layout is damaged: %s", lq_error_format(&err, buf, sizeof(buf)));
        return;
    }
    size_t bad = 0;
    char first[300] = "";
    const cJSON *t;
    cJSON_ArrayForEach(t, lq_json_get(man, "tensors")) {
        const char *file = cJSON_GetStringValue(lq_json_get(t, "file"));
        const char *name = cJSON_GetStringValue(lq_json_get(t, "name"));
        const char *crc = cJSON_GetStringValue(lq_json_get(t, "crc32c"));
        if (!file || !name || !crc || strcmp(file, rel))
            continue;
        const lq_tensor_info *ti = lq_st_find(f, name);
        char got[9] = "missing";
        if (ti)
            snprintf(got, sizeof(got), "%08x", lq_crc32c(0, lq_st_data(f, ti), (size_t)ti->nbytes));
        if (strcmp(got, crc) != 0 && !bad++)
            snprintf(first, sizeof(first), "%s", name);
    }
    lq_st_close(f);
    if (bad == 1)
        snprintf(out, cap, "; damaged tensor: %s", first);
    else if (bad)
        snprintf(out, cap, "; %zu damaged tensors, first: %s", bad, first);
}

static void check_integrity(const char *dir, const cJSON *man, int threads)
{
    int ci = check_index("integrity");
    const cJSON *files = lq_json_get(man, "files");
    size_t n = (size_t)cJSON_GetArraySize(files);
    hjob h = {.dir = dir, .files = files, .n = n};
    h.got = calloc(n + 1, sizeof(*h.got));
    h.size = calloc(n + 1, sizeof(uint64_t));
    h.err = calloc(n + 1, sizeof(int));
    pthread_mutex_init(&h.mu, NULL);
    pthread_t th[256];
    int started = 0;
    for (int t = 0; t < threads && t < 256; t++)
        if (pthread_create(&th[t], NULL, hash_worker, &h) == 0)
            started++;
    if (!started)
        hash_worker(&h);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&h.mu);
    size_t bad = 0;
    uint64_t bytes = 0;
    char first[900] = "";
    for (size_t i = 0; i < n; i++) {
        const cJSON *f = cJSON_GetArrayItem(files, (int)i);
        const char *rel = cJSON_GetStringValue(lq_json_get(f, "path"));
        const char *sha = cJSON_GetStringValue(lq_json_get(f, "sha256"));
        uint64_t size = 0;
        lq_json_u64(lq_json_get(f, "size"), &size);
        bytes += h.size[i];
        char why[700] = "";
        if (h.err[i])
            snprintf(why, sizeof(why), "%s: %s", rel ? rel : "?", h.err[i] == ENOENT ? "missing" : strerror(h.err[i]));
        else if (h.size[i] != size)
            snprintf(why, sizeof(why), "%s: size %" PRIu64 ", manifest says %" PRIu64, rel, h.size[i], size);
        else if (!sha || strcmp(sha, h.got[i]) != 0) {
            char where[400];
            locate_damage(dir, rel, man, where, sizeof(where));
            snprintf(why, sizeof(why), "%s: SHA-256 %.16s..., manifest says %.16s...%s", rel, h.got[i],
                     sha ? sha : "none", where);
        }
        if (why[0]) {
            fprintf(stderr, "mimo-verify: integrity: %s\n", why);
            if (!bad++)
                snprintf(first, sizeof(first), "%s", why);
        }
    }
    /* Files present but not listed (the manifest and its signature are never listed). */
    char **present = NULL;
    size_t np = list_files(dir, NULL, &present, 0), extra = 0;
    if (np)
        qsort(present, np, sizeof(char *), cmp_str);
    for (size_t i = 0; i < np; i++) {
        int listed = !strcmp(present[i], LQ_MANIFEST_FILE) || !strcmp(present[i], LQ_SIGNATURE_FILE);
        for (size_t k = 0; k < n && !listed; k++) {
            const char *lp = cJSON_GetStringValue(lq_json_get(cJSON_GetArrayItem(files, (int)k), "path"));
            listed = lp && !strcmp(present[i], lp);
        }
        if (!listed) {
            fprintf(stderr, "mimo-verify: integrity: %s: present but not in the manifest\n", present[i]);
            if (!bad && !extra)
                snprintf(first, sizeof(first), "%s: present but not in the manifest", present[i]);
            extra++;
        }
        free(present[i]);
    }
    free(present);
    if (bad || extra)
        result(ci, 0, "%zu of %zu files wrong, %zu unlisted; first: %s", bad, n, extra, first);
    else
        result(ci, 1, "%zu files, %" PRIu64 " bytes, sizes and SHA-256 match", n, bytes);
    free(h.got);
    free(h.size);
    free(h.err);
}

/* ---- the other checks ---- */

static void check_signature(const char *dir, const char *pubkey)
{
    int ci = check_index("signature");
    if (!pubkey) {
        checks[ci].ran = 0;
        snprintf(checks[ci].detail, sizeof(checks[ci].detail), "no --pubkey given");
        return;
    }
    char mp[8192], sp[8192];
    snprintf(mp, sizeof(mp), "%s/%s", dir, LQ_MANIFEST_FILE);
    snprintf(sp, sizeof(sp), "%s/%s", dir, LQ_SIGNATURE_FILE);
    uint8_t sig[64], pub[32], trusted[32];
    lq_error err;
    lq_error_clear(&err);
    char buf[1400];
    if (lq_sig_read(sp, sig, pub, &err) != LQ_OK || lq_ed25519_public_from_pem(pubkey, trusted, &err) != LQ_OK) {
        result(ci, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
        return;
    }
    if (memcmp(pub, trusted, 32) != 0) {
        result(ci, 0, "%s: signed by another key than %s", LQ_SIGNATURE_FILE, pubkey);
        return;
    }
    size_t len = 0;
    FILE *f = fopen(mp, "rb");
    char *text = NULL;
    if (f) {
        fseek(f, 0, SEEK_END);
        long l = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = l >= 0 ? malloc((size_t)l + 1) : NULL;
        len = text ? fread(text, 1, (size_t)l, f) : 0;
        fclose(f);
    }
    if (!text) {
        result(ci, 0, "%s: unreadable", mp);
        return;
    }
    if (lq_ed25519_verify_raw(trusted, text, len, sig, &err) != LQ_OK)
        result(ci, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
    else
        result(ci, 1, "Ed25519 signature of %s verified", LQ_MANIFEST_FILE);
    free(text);
}

static void check_tensors(const lq_ckpt *ck, const cJSON *man)
{
    int ci = check_index("tensors");
    const cJSON *ts = lq_json_get(man, "tensors");
    size_t n = (size_t)cJSON_GetArraySize(ts), bad = 0;
    char first[700] = "";
    const cJSON *t;
    cJSON_ArrayForEach(t, ts) {
        const char *name = cJSON_GetStringValue(lq_json_get(t, "name"));
        const char *dt = cJSON_GetStringValue(lq_json_get(t, "dtype"));
        const char *file = cJSON_GetStringValue(lq_json_get(t, "file"));
        lq_ckpt_tensor ct;
        char why[600] = "";
        if (!name || lq_ckpt_find(ck, name, &ct) != 0) {
            snprintf(why, sizeof(why), "%s: in the manifest, not in the shards", name ? name : "?");
        } else {
            int same = dt && !strcmp(dt, lq_dtype_name(ct.info->dtype)) && file &&
                       !strcmp(file, lq_ckpt_shard_name(ck, ct.shard));
            const cJSON *shape = lq_json_get(t, "shape");
            same = same && (uint32_t)cJSON_GetArraySize(shape) == ct.info->rank;
            for (uint32_t k = 0; same && k < ct.info->rank; k++) {
                uint64_t v = 0;
                same = lq_json_u64(cJSON_GetArrayItem(shape, (int)k), &v) == 0 && v == ct.info->shape[k];
            }
            if (!same)
                snprintf(why, sizeof(why), "%s: dtype, shape or file differ from the manifest", name);
        }
        if (why[0]) {
            fprintf(stderr, "mimo-verify: tensors: %s\n", why);
            if (!bad++)
                snprintf(first, sizeof(first), "%s", why);
        }
    }
    if (lq_ckpt_count(ck) != n) {
        if (!bad)
            snprintf(first, sizeof(first), "the shards hold %zu tensors, the manifest lists %zu", lq_ckpt_count(ck), n);
        bad++;
    }
    if (bad)
        result(ci, 0, "%zu problems; first: %s", bad, first);
    else
        result(ci, 1, "%zu tensors: names, dtypes, shapes and files match the manifest", n);
}

/* The loader contract: the tensor inventory config.json implies, against the shards. */
static void check_inventory(const lq_ckpt *ck, const lq_mimo_config *mc)
{
    int ci = check_index("inventory");
    lq_inv_result r;
    lq_error err;
    char buf[1400];
    memset(&r, 0, sizeof(r));
    if (lq_inventory_check(ck, mc, &r, &err) != LQ_OK) {
        result(ci, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
        return;
    }
    for (size_t i = 0; i < r.nissues; i++)
        fprintf(stderr, "mimo-verify: inventory: %s: %s: %s\n", r.issues[i].tensor, r.issues[i].rule,
                r.issues[i].msg);
    if (r.nissues)
        result(ci, 0, "%zu problems; first: %s: %s: %s", r.nissues, r.issues[0].tensor, r.issues[0].rule,
               r.issues[0].msg);
    else
        result(ci, 1, "%zu expected tensors present with the shapes and dtypes MiMo loaders expect "
                      "(%zu MXFP4, %zu FP8 weights; scales checked)", r.expected, r.mxfp4_weights, r.fp8_weights);
    lq_inv_result_free(&r);
}

/* The drafter in ARTIFACT/dflash, validated against the target (skipped when there is none). */
static void check_drafter(const char *dir, const lq_mimo_config *mc)
{
    int ci = check_index("drafter");
    char dd[8192], buf[1400];
    snprintf(dd, sizeof(dd), "%s/dflash", dir);
    struct stat sb;
    if (stat(dd, &sb) != 0) {
        checks[ci].ran = 0;
        snprintf(checks[ci].detail, sizeof(checks[ci].detail), "no dflash/ in the artifact");
        return;
    }
    lq_drafter *d = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (lq_drafter_open(dd, mc, &d, &err) != LQ_OK) {
        result(ci, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
        return;
    }
    const lq_drafter_config *c = lq_drafter_get_config(d);
    uint64_t len = 0;
    int64_t id = 0;
    lq_drafter_mask_embedding(d, &len, &id);
    result(ci, 1, "%zu tensors, mask id %lld, mask embedding of %llu values: consistent with the target",
           lq_ckpt_count(lq_drafter_ckpt(d)), (long long)id, (unsigned long long)len);
    (void)c;
    lq_drafter_close(d);
}

/* ---- policy ---- */

/* Built-in policy; policy/default.json in the source tree holds the same values. */
static const char *const default_policy =
    "{\"schema_version\": 1,"
    " \"required\": [\"manifest\", \"integrity\", \"container\", \"tensors\", \"inventory\"],"
    " \"thresholds\": {\"min_sqnr_db\": 17.0, \"min_cosine\": 0.99, \"max_clip_frac\": 0.05,"
    " \"min_layer_sqnr_db\": 17.5}}";

typedef struct policy {
    int required[16];
    double min_sqnr_db, min_cosine, max_clip_frac, min_layer_sqnr_db;
} policy;

static int load_policy(const char *path, policy *p)
{
    cJSON *j = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = path ? lq_json_parse_file(path, 0, NULL, &j, &err)
                        : lq_json_parse(default_policy, strlen(default_policy), NULL, "built-in policy", &j, &err);
    char buf[1400];
    if (st != LQ_OK) {
        fprintf(stderr, "mimo-verify: policy: %s\n", lq_error_format(&err, buf, sizeof(buf)));
        return -1;
    }
    uint64_t sv = 0;
    const cJSON *req = lq_json_get(j, "required"), *th = lq_json_get(j, "thresholds");
    if (lq_json_u64(lq_json_get(j, "schema_version"), &sv) != 0 || sv != 1 || !cJSON_IsArray(req) ||
        !cJSON_IsObject(th)) {
        fprintf(stderr, "mimo-verify: policy %s: needs schema_version 1, \"required\" and \"thresholds\"\n",
                path ? path : "(built-in)");
        cJSON_Delete(j);
        return -1;
    }
    memset(p, 0, sizeof(*p));
    const cJSON *e;
    cJSON_ArrayForEach(e, req) {
        int i = cJSON_IsString(e) ? check_index(e->valuestring) : -1;
        if (i < 0) {
            fprintf(stderr, "mimo-verify: policy: unknown check in \"required\"\n");
            cJSON_Delete(j);
            return -1;
        }
        p->required[i] = 1;
    }
    struct { const char *k; double *v; } keys[] = {{"min_sqnr_db", &p->min_sqnr_db}, {"min_cosine", &p->min_cosine},
                                                    {"max_clip_frac", &p->max_clip_frac},
                                                    {"min_layer_sqnr_db", &p->min_layer_sqnr_db}};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        const cJSON *v = lq_json_get(th, keys[k].k);
        *keys[k].v = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    }
    for (const cJSON *ch = th->child; ch; ch = ch->next) {
        int known = 0;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            known |= !strcmp(ch->string, keys[k].k);
        if (!known || !cJSON_IsNumber(ch)) {
            fprintf(stderr, "mimo-verify: policy: unknown or non-numeric threshold \"%s\"\n", ch->string);
            cJSON_Delete(j);
            return -1;
        }
    }
    cJSON_Delete(j);
    return 0;
}

/* ---- accuracy against the source ---- */

typedef struct acc_item {
    const char *name;           /* artifact weight */
    lq_ckpt_tensor w, sc;       /* artifact codes and scales */
    lq_ckpt_tensor src, src_scale; /* valid only while the source is open (check_accuracy) */
    lq_dtype src_dtype;             /* kept for the report */
    int has_src_scale;
    lq_err_acc acc;
    lq_status st;
    char err[512];
} acc_item;

typedef struct acc_job {
    acc_item *items;
    size_t n, next;
    pthread_mutex_t mu;
} acc_job;

/* Drops mapped pages once read, so resident memory stays small on large artifacts. */
static void drop_pages(const void *p, uint64_t n)
{
    long page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t e = ((uintptr_t)p + (uintptr_t)n) & ~((uintptr_t)page - 1);
    if (e > a)
        madvise((void *)a, (size_t)(e - a), MADV_DONTNEED);
}

static void measure_item(acc_item *it)
{
    const lq_tensor_info *si = it->src.info;
    uint64_t N = si->shape[0], K = si->shape[1], rows = K ? ((uint64_t)4 << 20) / K : 1;
    if (!rows)
        rows = 1;
    float *buf = malloc(rows * K * sizeof(float));
    const uint8_t *packed = lq_st_data(it->w.file, it->w.info), *scales = lq_st_data(it->sc.file, it->sc.info);
    lq_fp8_grid g;
    lq_error err;
    lq_error_clear(&err);
    it->st = buf ? LQ_OK : LQ_ERR_NO_MEMORY;
    int fp8 = si->dtype == LQ_DTYPE_F8_E4M3 || si->dtype == LQ_DTYPE_F8_E5M2;
    if (it->st == LQ_OK && fp8) {
        if (!it->has_src_scale)
            it->st = lq_fail(&err, LQ_ERR_CORRUPT, NULL, si->name, "FP8_NO_SCALE", "source FP8 weight without its scale");
        else
            it->st = lq_fp8_grid_detect(N, K, it->src_scale.info->shape[0], it->src_scale.info->shape[1], 128, 128,
                                        0, si->name, &g, &err);
    }
    lq_err_acc_init(&it->acc);
    for (uint64_t r0 = 0; it->st == LQ_OK && r0 < N; r0 += rows) {
        uint64_t nr = r0 + rows < N ? rows : N - r0;
        if (fp8)
            it->st = lq_fp8_block_dequant(&g, si->dtype, lq_st_data(it->src.file, si), it->src_scale.info->dtype,
                                          lq_st_data(it->src_scale.file, it->src_scale.info), r0, r0 + nr, buf,
                                          si->name, &err);
        else
            it->st = lq_to_f32(si->dtype, lq_st_data(it->src.file, si) + r0 * K * (lq_dtype_bits(si->dtype) / 8),
                               (size_t)(nr * K), buf);
        /* Rows one by one, merged in order: the same sums however the work is split. */
        for (uint64_t r = 0; it->st == LQ_OK && r < nr; r++) {
            lq_err_acc row;
            lq_err_acc_init(&row);
            lq_err_acc_add_mx(&row, buf + r * K, packed + (r0 + r) * (K / 2), scales + (r0 + r) * (K / 32), (size_t)K);
            lq_err_acc_merge(&it->acc, &row);
        }
        size_t esz = lq_dtype_bits(si->dtype) / 8;
        drop_pages(lq_st_data(it->src.file, si) + r0 * K * esz, nr * K * esz);
        drop_pages(packed + r0 * (K / 2), nr * (K / 2));
    }
    if (it->st != LQ_OK) {
        char b2[1400];
        snprintf(it->err, sizeof(it->err), "%s", lq_error_format(&err, b2, sizeof(b2)));
    }
    free(buf);
}

static void *acc_worker(void *arg)
{
    acc_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n)
            break;
        measure_item(&j->items[i]);
    }
    return NULL;
}

/* Per-layer results for the report and the HTML chart. */
typedef struct layer_stat {
    char key[128];
    lq_err_acc acc;
    size_t tensors;
} layer_stat;

static layer_stat *g_layers;
static size_t g_nlayers;
static acc_item *g_items;
static size_t g_nitems;

static void check_accuracy(const lq_ckpt *ck, const char *source, const policy *pol, int threads)
{
    int ci = check_index("accuracy");
    lq_ckpt *src = NULL;
    lq_error err;
    char buf[1400];
    lq_error_clear(&err);
    if (lq_ckpt_open(source, NULL, &src, &err) != LQ_OK) {
        result(ci, 0, "--source %s", lq_error_format(&err, buf, sizeof(buf)));
        return;
    }
    size_t n = 0;
    g_items = calloc(lq_ckpt_count(ck) + 1, sizeof(*g_items));
    for (size_t i = 0; g_items && i < lq_ckpt_count(ck); i++) {
        lq_ckpt_tensor t = lq_ckpt_at(ck, i), sc, s;
        char sn[600];
        if (t.info->dtype != LQ_DTYPE_U8 || t.info->rank != 2)
            continue;
        snprintf(sn, sizeof(sn), "%s_scale", t.info->name);
        if (lq_ckpt_find(ck, sn, &sc) != 0 || lq_ckpt_find(src, t.info->name, &s) != 0)
            continue;
        if (s.info->rank != 2 || s.info->shape[0] != t.info->shape[0] || s.info->shape[1] != t.info->shape[1] * 2 ||
            sc.info->shape[0] != t.info->shape[0] || sc.info->shape[1] * 32 != s.info->shape[1])
            continue; /* the inventory check reports shape problems */
        acc_item *it = &g_items[n++];
        it->name = t.info->name;
        it->w = t;
        it->sc = sc;
        it->src = s;
        it->src_dtype = s.info->dtype;
        snprintf(sn, sizeof(sn), "%s_scale_inv", t.info->name);
        it->has_src_scale = lq_ckpt_find(src, sn, &it->src_scale) == 0;
    }
    g_nitems = n;
    acc_job job = {.items = g_items, .n = n};
    pthread_mutex_init(&job.mu, NULL);
    pthread_t th[256];
    int started = 0;
    for (int t = 0; t < threads && t < 256; t++)
        if (pthread_create(&th[t], NULL, acc_worker, &job) == 0)
            started++;
    if (!started)
        acc_worker(&job);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&job.mu);
    if (n == 0) {
        result(ci, 0, "no MXFP4 tensor of the artifact has a source tensor in %s", source);
        lq_ckpt_close(src);
        return;
    }
    size_t bad = 0;
    char first[700] = "";
    lq_err_acc total;
    lq_err_acc_init(&total);
    g_layers = calloc(n + 1, sizeof(*g_layers));
    for (size_t i = 0; i < n; i++) {
        acc_item *it = &g_items[i];
        char why[600] = "";
        lq_metrics m;
        if (it->st != LQ_OK) {
            snprintf(why, sizeof(why), "%s: %s", it->name, it->err);
        } else {
            lq_err_acc_finish(&it->acc, &m);
            lq_err_acc_merge(&total, &it->acc);
            char key[128];
            lq_plan_layer_key(it->name, key, sizeof(key));
            size_t L = 0;
            while (L < g_nlayers && strcmp(g_layers[L].key, key))
                L++;
            if (L == g_nlayers) {
                snprintf(g_layers[L].key, sizeof(g_layers[L].key), "%s", key);
                lq_err_acc_init(&g_layers[L].acc);
                g_nlayers++;
            }
            lq_err_acc_merge(&g_layers[L].acc, &it->acc);
            g_layers[L].tensors++;
            if (!isnan(pol->min_sqnr_db) && !(m.sqnr_db >= pol->min_sqnr_db))
                snprintf(why, sizeof(why), "%s: SQNR %.3f dB below %.3f", it->name, m.sqnr_db, pol->min_sqnr_db);
            else if (!isnan(pol->min_cosine) && !(m.cosine >= pol->min_cosine))
                snprintf(why, sizeof(why), "%s: cosine %.6f below %.6f", it->name, m.cosine, pol->min_cosine);
            else if (!isnan(pol->max_clip_frac) && !(m.clip_frac <= pol->max_clip_frac))
                snprintf(why, sizeof(why), "%s: clip fraction %.4f above %.4f", it->name, m.clip_frac, pol->max_clip_frac);
            else if (m.nonfinite)
                snprintf(why, sizeof(why), "%s: %llu non-finite values", it->name, (unsigned long long)m.nonfinite);
        }
        if (why[0]) {
            fprintf(stderr, "mimo-verify: accuracy: %s\n", why);
            if (!bad++)
                snprintf(first, sizeof(first), "%s", why);
        }
    }
    for (size_t L = 0; L < g_nlayers; L++) {
        lq_metrics m;
        lq_err_acc_finish(&g_layers[L].acc, &m);
        if (!isnan(pol->min_layer_sqnr_db) && !(m.sqnr_db >= pol->min_layer_sqnr_db)) {
            fprintf(stderr, "mimo-verify: accuracy: %s: layer SQNR %.3f dB below %.3f\n", g_layers[L].key, m.sqnr_db,
                    pol->min_layer_sqnr_db);
            if (!bad++)
                snprintf(first, sizeof(first), "%s: layer SQNR %.3f dB below %.3f", g_layers[L].key, m.sqnr_db,
                         pol->min_layer_sqnr_db);
        }
    }
    lq_metrics tm;
    lq_err_acc_finish(&total, &tm);
    if (bad)
        result(ci, 0, "%zu of %zu MXFP4 tensors or layers out of bounds; first: %s", bad, n, first);
    else
        result(ci, 1, "%zu MXFP4 tensors vs source: SQNR %.3f dB, cosine %.6f, clip %.4f%% (thresholds per tensor: "
                      "SQNR >= %.2f dB, cosine >= %.4f, clip <= %.2f%%; per layer SQNR >= %.2f dB)",
               n, tm.sqnr_db, tm.cosine, 100 * tm.clip_frac, pol->min_sqnr_db, pol->min_cosine, 100 * pol->max_clip_frac,
               pol->min_layer_sqnr_db);
    lq_ckpt_close(src);
}

/* ---- HTML ---- */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

/* Per-layer SQNR from the accuracy check, or else from the artifact's own report. */
static int write_html(const char *path, const char *artifact, int verdict)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    static double sq[4096];
    static char names[4096][128];
    size_t nl = 0;
    const char *origin = "";
    if (g_nlayers) {
        origin = "measured against --source";
        for (size_t L = 0; L < g_nlayers && nl < 4096; L++) {
            lq_metrics m;
            lq_err_acc_finish(&g_layers[L].acc, &m);
            sq[nl] = m.sqnr_db;
            snprintf(names[nl++], 128, "%s", g_layers[L].key);
        }
    } else {
        char rp[8192];
        snprintf(rp, sizeof(rp), "%s/%s", artifact, LQ_REPORT_FILE);
        cJSON *r = NULL;
        lq_error err;
        if (lq_json_parse_file(rp, 0, NULL, &r, &err) == LQ_OK) {
            origin = "from the artifact's mimo-quant-report.json";
            const cJSON *e;
            cJSON_ArrayForEach(e, lq_json_get(r, "layers")) {
                if (nl >= 4096)
                    break;
                sq[nl] = cJSON_GetNumberValue(lq_json_get(e, "sqnr_db"));
                snprintf(names[nl++], 128, "%s", cJSON_GetStringValue(lq_json_get(e, "layer")));
            }
            cJSON_Delete(r);
        }
    }
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mimo-verify: ");
    html_text(f, artifact);
    fprintf(f, "</title>\n<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
               ".PASS{color:#060}.FAIL{color:#b00}.SKIP{color:#777}</style></head><body>\n");
    fprintf(f, "<h1>mimo-verify: <span class=\"%s\">%s</span></h1>\n<p>", verdict == 0 ? "PASS" : "FAIL",
            verdict == 0 ? "PASS" : "FAIL");
    html_text(f, artifact);
    fprintf(f, " &middot; mimo-quant %s</p>\n<table><tr><th>check</th><th>result</th><th>detail</th></tr>\n",
            LQ_VERSION_STRING);
    for (size_t i = 0; i < NCHECKS; i++) {
        if (!enabled[i])
            continue;
        const char *st = !checks[i].ran ? "SKIP" : checks[i].passed ? "PASS" : "FAIL";
        fprintf(f, "<tr><td>%s</td><td class=\"%s\">%s</td><td>", checks[i].name, st, st);
        html_text(f, checks[i].detail);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");
    if (nl) {
        /* One bar per layer, scaled between 0 and the largest SQNR (at least 25 dB). */
        double top = 25;
        for (size_t i = 0; i < nl; i++)
            top = sq[i] > top && isfinite(sq[i]) ? sq[i] : top;
        int W = 40 + (int)nl * 18, H = 260;
        fprintf(f, "<h2>MXFP4 SQNR per layer (dB, %s)</h2>\n", origin);
        fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\">\n", W, H + 90);
        fprintf(f, "<line x1=\"35\" y1=\"10\" x2=\"35\" y2=\"%d\" stroke=\"#000\"/>\n", H + 10);
        for (int tick = 0; tick <= (int)top; tick += 5) {
            double y = 10 + H - H * tick / top;
            fprintf(f, "<text x=\"2\" y=\"%.1f\" font-size=\"10\">%d</text><line x1=\"33\" y1=\"%.1f\" x2=\"%d\" "
                       "y2=\"%.1f\" stroke=\"#ddd\"/>\n", y + 3, tick, y, W, y);
        }
        for (size_t i = 0; i < nl; i++) {
            double v = isfinite(sq[i]) ? sq[i] : top;
            double h = H * (v < 0 ? 0 : v) / top, x = 40 + (double)i * 18;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"#4a7\"><title>", x,
                    10 + H - h, h);
            html_text(f, names[i]);
            fprintf(f, ": %.3f dB</title></rect>\n", sq[i]);
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" transform=\"rotate(60 %.1f %d)\">", x + 3, H + 22,
                    x + 3, H + 22);
            const char *short_name = strrchr(names[i], '.');
            html_text(f, short_name ? short_name + 1 : names[i]);
            fprintf(f, "</text>\n");
        }
        fprintf(f, "</svg>\n");
    }
    fprintf(f, "</body></html>\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- outputs ---- */

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
                fputc(*s, f);
        }
    }
}

static int write_junit(const char *path, const char *artifact)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = 0, fail = 0, skip = 0;
    for (size_t i = 0; i < NCHECKS; i++) {
        if (!enabled[i])
            continue;
        n++;
        fail += checks[i].ran && !checks[i].passed;
        skip += !checks[i].ran;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"mimo-verify\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\">\n",
            n, fail, skip);
    for (size_t i = 0; i < NCHECKS; i++) {
        if (!enabled[i])
            continue;
        fprintf(f, "  <testcase classname=\"mimo-verify.");
        xml_text(f, artifact);
        fprintf(f, "\" name=\"%s\">", checks[i].name);
        if (!checks[i].ran) {
            fprintf(f, "<skipped message=\"");
            xml_text(f, checks[i].detail);
            fprintf(f, "\"/>");
        } else if (!checks[i].passed) {
            fprintf(f, "<failure message=\"");
            xml_text(f, checks[i].detail);
            fprintf(f, "\"/>");
        }
        fprintf(f, "</testcase>\n");
    }
    fprintf(f, "</testsuite>\n");
    return fclose(f) == 0 ? 0 : -1;
}

static void put_metrics(lq_jw *w, const lq_err_acc *a)
{
    lq_metrics m;
    lq_err_acc_finish(a, &m);
    lq_jw_key(w, "elements");
    lq_jw_u64(w, m.n);
    lq_jw_key(w, "sqnr_db");
    lq_jw_double(w, m.sqnr_db, 6);
    lq_jw_key(w, "rel_mse");
    lq_jw_double(w, m.rel_mse, 6);
    lq_jw_key(w, "cosine");
    lq_jw_double(w, m.cosine, 8);
    lq_jw_key(w, "max_abs_err");
    lq_jw_double(w, m.max_abs, 6);
    lq_jw_key(w, "clip_frac");
    lq_jw_double(w, m.clip_frac, 6);
    lq_jw_key(w, "zero_frac");
    lq_jw_double(w, m.zero_frac, 6);
}

/* SHA-256 of the concatenation of files (those that exist), as lowercase hex; "" if none. */
static void fingerprint(const char *dir, const char *const *names, size_t n, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        char p[8192];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        if (!f)
            continue;
        unsigned char buf[65536];
        size_t r;
        while ((r = fread(buf, 1, sizeof buf, f)) > 0)
            EVP_DigestUpdate(ctx, buf, r);
        fclose(f);
        any = 1;
    }
    uint8_t d[32];
    EVP_DigestFinal_ex(ctx, d, NULL);
    EVP_MD_CTX_free(ctx);
    if (any)
        lq_hex(d, 32, out);
    else
        out[0] = 0;
}

static int write_report(const char *path, const char *artifact, const char *source, const lq_ckpt *ck,
                        const policy *pol, int verdict)
{
    lq_jw *w = lq_jw_new(2);
    lq_jw_begin_object(w);
    lq_jw_key(w, "schema_version");
    lq_jw_u64(w, 1);
    lq_jw_key(w, "tool");
    lq_jw_string(w, "mimo-verify");
    lq_jw_key(w, "tool_version");
    lq_jw_string(w, LQ_VERSION_STRING);
    lq_jw_key(w, "artifact");
    lq_jw_string(w, artifact);
    static const char *const art_files[] = {LQ_MANIFEST_FILE};
    static const char *const src_files[] = {"config.json", "model.safetensors.index.json"};
    char fp[65];
    fingerprint(artifact, art_files, 1, fp);
    lq_jw_key(w, "artifact_fingerprint");
    lq_jw_string(w, fp); /* SHA-256 of mimo-manifest.json, which lists every file's digest */
    lq_jw_key(w, "source");
    if (source) {
        lq_jw_string(w, source);
        fingerprint(source, src_files, 2, fp);
        lq_jw_key(w, "source_fingerprint");
        lq_jw_string(w, fp); /* SHA-256 of its config.json followed by its index */
    } else {
        lq_jw_null(w);
    }
    lq_jw_key(w, "verdict");
    lq_jw_string(w, verdict == 0 ? "pass" : "fail");
    lq_jw_key(w, "policy");
    lq_jw_begin_object(w);
    lq_jw_key(w, "required");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < NCHECKS; i++)
        if (pol->required[i])
            lq_jw_string(w, checks[i].name);
    lq_jw_end_array(w);
    struct { const char *k; double v; } th[] = {{"min_sqnr_db", pol->min_sqnr_db}, {"min_cosine", pol->min_cosine},
                                                {"max_clip_frac", pol->max_clip_frac},
                                                {"min_layer_sqnr_db", pol->min_layer_sqnr_db}};
    lq_jw_key(w, "thresholds");
    lq_jw_begin_object(w);
    for (size_t k = 0; k < sizeof(th) / sizeof(th[0]); k++) {
        lq_jw_key(w, th[k].k);
        lq_jw_double(w, th[k].v, 8); /* null when not set */
    }
    lq_jw_end_object(w);
    lq_jw_end_object(w);
    /* Bits per weight per module class, from the artifact's tensors (scale tensors add bytes but
     * no parameters; an MXFP4 weight stands for twice its bytes). */
    if (ck) {
        uint64_t params[LQ_PLAN_NCLASSES] = {0}, bytes[LQ_PLAN_NCLASSES] = {0};
        for (size_t i = 0; i < lq_ckpt_count(ck); i++) {
            const lq_tensor_info *ti = lq_ckpt_at(ck, i).info;
            int c = lq_plan_classify(ti->name);
            size_t l = strlen(ti->name);
            int scale = (l > 10 && !strcmp(ti->name + l - 10, "_scale_inv")) ||
                        (l > 13 && !strcmp(ti->name + l - 13, ".weight_scale"));
            bytes[c] += ti->nbytes;
            if (!scale)
                params[c] += ti->dtype == LQ_DTYPE_U8 ? ti->numel * 2 : ti->numel;
        }
        lq_jw_key(w, "classes");
        lq_jw_begin_array(w);
        for (int c = 0; c < LQ_PLAN_NCLASSES; c++) {
            if (!params[c])
                continue;
            lq_jw_begin_object(w);
            lq_jw_key(w, "class");
            lq_jw_string(w, lq_plan_class_name(c));
            lq_jw_key(w, "params");
            lq_jw_u64(w, params[c]);
            lq_jw_key(w, "bytes");
            lq_jw_u64(w, bytes[c]);
            lq_jw_key(w, "bits_per_weight");
            lq_jw_double(w, 8.0 * (double)bytes[c] / (double)params[c], 6);
            lq_err_acc ca;
            lq_err_acc_init(&ca);
            size_t nq = 0;
            for (size_t i = 0; i < g_nitems; i++)
                if (g_items[i].st == LQ_OK && lq_plan_classify(g_items[i].name) == c) {
                    lq_err_acc_merge(&ca, &g_items[i].acc);
                    nq++;
                }
            if (nq) {
                lq_jw_key(w, "accuracy");
                lq_jw_begin_object(w);
                lq_jw_key(w, "tensors");
                lq_jw_u64(w, nq);
                put_metrics(w, &ca);
                lq_jw_end_object(w);
            }
            lq_jw_end_object(w);
        }
        lq_jw_end_array(w);
    }
    if (g_nitems) {
        lq_jw_key(w, "layers");
        lq_jw_begin_array(w);
        for (size_t L = 0; L < g_nlayers; L++) {
            lq_jw_begin_object(w);
            lq_jw_key(w, "layer");
            lq_jw_string(w, g_layers[L].key);
            lq_jw_key(w, "tensors");
            lq_jw_u64(w, g_layers[L].tensors);
            put_metrics(w, &g_layers[L].acc);
            lq_jw_end_object(w);
        }
        lq_jw_end_array(w);
        lq_jw_key(w, "tensors");
        lq_jw_begin_array(w);
        for (size_t i = 0; i < g_nitems; i++) {
            if (g_items[i].st != LQ_OK)
                continue;
            lq_jw_begin_object(w);
            lq_jw_key(w, "name");
            lq_jw_string(w, g_items[i].name);
            lq_jw_key(w, "source_dtype");
            lq_jw_string(w, lq_dtype_name(g_items[i].src_dtype));
            put_metrics(w, &g_items[i].acc);
            lq_jw_end_object(w);
        }
        lq_jw_end_array(w);
    }
    lq_jw_key(w, "checks");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < NCHECKS; i++) {
        if (!enabled[i])
            continue;
        lq_jw_begin_object(w);
        lq_jw_key(w, "name");
        lq_jw_string(w, checks[i].name);
        lq_jw_key(w, "status");
        lq_jw_string(w, !checks[i].ran ? "skipped" : checks[i].passed ? "pass" : "fail");
        lq_jw_key(w, "detail");
        lq_jw_string(w, checks[i].detail);
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    char *text = NULL;
    lq_error err;
    int rc = -1;
    if (lq_jw_finish(w, &text, NULL, &err) == LQ_OK && lq_write_file_atomic(path, text, strlen(text), NULL, &err) == LQ_OK)
        rc = 0;
    free(text);
    lq_jw_free(w);
    return rc;
}

int main(int argc, char **argv)
{
    const char *artifact = NULL, *pubkey = NULL, *report = NULL, *junit = NULL, *source = NULL, *policy_path = NULL,
               *html = NULL;
    int quiet = 0, threads = 0;
    for (size_t i = 0; i < NCHECKS; i++)
        enabled[i] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--pubkey") && v) {
            pubkey = argv[++i];
        } else if (!strcmp(a, "--report") && v) {
            report = argv[++i];
        } else if (!strcmp(a, "--junit") && v) {
            junit = argv[++i];
        } else if (!strcmp(a, "--source") && v) {
            source = argv[++i];
        } else if (!strcmp(a, "--policy") && v) {
            policy_path = argv[++i];
        } else if (!strcmp(a, "--html") && v) {
            html = argv[++i];
        } else if (!strcmp(a, "--only") && v) {
            for (size_t k = 0; k < NCHECKS; k++)
                enabled[k] = 0;
            if (parse_list(argv[++i], 1))
                return 2;
        } else if (!strcmp(a, "--skip") && v) {
            if (parse_list(argv[++i], 0))
                return 2;
        } else if (!strcmp(a, "--threads") && v) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 256) {
                fprintf(stderr, "mimo-verify: --threads: need 1..256\n");
                return 2;
            }
            threads = (int)t;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' || artifact) {
            fprintf(stderr, "mimo-verify: unknown or extra argument: %s\n", a);
            usage(stderr);
            return 2;
        } else {
            artifact = a;
        }
    }
    if (!artifact) {
        usage(stderr);
        return 2;
    }
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    }
    policy pol;
    if (load_policy(policy_path, &pol) != 0)
        return 2;
    struct stat sb;
    if (stat(artifact, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "mimo-verify: %s: not a directory\n", artifact);
        return 3;
    }
    int unreadable = 0;
    char mp[8192], buf[1400];
    snprintf(mp, sizeof(mp), "%s/%s", artifact, LQ_MANIFEST_FILE);
    cJSON *man = NULL;
    lq_error err;
    lq_error_clear(&err);
    int mi = check_index("manifest");
    if (lq_json_parse_file(mp, 0, NULL, &man, &err) != LQ_OK) {
        result(mi, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
        unreadable = 1;
    } else {
        uint64_t sv = 0;
        int ok = lq_json_u64(lq_json_get(man, "schema_version"), &sv) == 0 && sv == 1 &&
                 cJSON_IsArray(lq_json_get(man, "files")) && cJSON_IsArray(lq_json_get(man, "tensors"));
        char bad_entry[600] = "";
        if (ok)
            manifest_entries_ok(man, bad_entry, sizeof(bad_entry));
        if (ok && !bad_entry[0])
            result(mi, 1, "schema 1, %d files, %d tensors", cJSON_GetArraySize(lq_json_get(man, "files")),
                   cJSON_GetArraySize(lq_json_get(man, "tensors")));
        else if (ok) {
            result(mi, 0, "%s: %s", mp, bad_entry);
            unreadable = 1;
        } else {
            result(mi, 0, "%s: not a schema-1 mimo manifest (schema_version, files, tensors)", mp);
            unreadable = 1;
        }
    }
    int man_ok = checks[mi].ran && checks[mi].passed;
    if (enabled[check_index("integrity")] && man_ok)
        check_integrity(artifact, man, threads);
    if (enabled[check_index("signature")])
        check_signature(artifact, pubkey);
    lq_ckpt *ck = NULL;
    int ci = check_index("container");
    if (enabled[ci] || enabled[check_index("tensors")] || enabled[check_index("inventory")] ||
        enabled[check_index("drafter")] || enabled[check_index("accuracy")]) {
        lq_error_clear(&err);
        if (lq_ckpt_open(artifact, NULL, &ck, &err) != LQ_OK) {
            /* Nothing that reads tensors can run: the container failure is reported even when the
             * check was not asked for by name. */
            enabled[ci] = 1;
            result(ci, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
            unreadable = 1;
        } else if (enabled[ci]) {
            result(ci, 1, "%zu shards, %zu tensors: every safetensors and index rule holds", lq_ckpt_shard_count(ck),
                   lq_ckpt_count(ck));
        }
    }
    if (enabled[check_index("tensors")] && ck && man_ok)
        check_tensors(ck, man);
    lq_mimo_config mc;
    int have_mc = 0;
    if (ck && (enabled[check_index("inventory")] || enabled[check_index("drafter")])) {
        lq_error_clear(&err);
        if (lq_mimo_config_parse(lq_ckpt_config(ck), "config.json", &mc, &err) == LQ_OK) {
            have_mc = 1;
        } else {
            if (enabled[check_index("inventory")])
                result(check_index("inventory"), 0, "config.json: %s", lq_error_format(&err, buf, sizeof(buf)));
            if (enabled[check_index("drafter")])
                result(check_index("drafter"), 0, "config.json: %s", lq_error_format(&err, buf, sizeof(buf)));
        }
    }
    if (have_mc && enabled[check_index("inventory")])
        check_inventory(ck, &mc);
    if (have_mc && enabled[check_index("drafter")])
        check_drafter(artifact, &mc);
    if (have_mc)
        lq_mimo_config_free(&mc);
    int ai = check_index("accuracy");
    if (enabled[ai] && ck && source)
        check_accuracy(ck, source, &pol, threads);
    else if (enabled[ai])
        snprintf(checks[ai].detail, sizeof(checks[ai].detail), "no --source given");
    /* A required check that could not run fails the gate too. */
    for (size_t i = 0; i < NCHECKS; i++)
        if (enabled[i] && pol.required[i] && !checks[i].ran)
            result((int)i, 0, "required by the policy but not run (%s)", checks[i].detail[0] ? checks[i].detail : "skipped");

    int failed = 0;
    for (size_t i = 0; i < NCHECKS; i++) {
        if (!enabled[i])
            continue;
        if (checks[i].ran && !checks[i].passed)
            failed = 1;
        if (!quiet)
            printf("%-10s %s  %s\n", checks[i].name, !checks[i].ran ? "SKIP" : checks[i].passed ? "PASS" : "FAIL",
                   checks[i].detail);
    }
    int rc = failed ? (unreadable ? 3 : 1) : 0;
    printf("verdict: %s (%s)\n", rc == 0 ? "PASS" : "FAIL", artifact);
    if (report && write_report(report, artifact, source, ck, &pol, rc) != 0) {
        fprintf(stderr, "mimo-verify: cannot write %s\n", report);
        rc = rc ? rc : 3;
    }
    if (html && write_html(html, artifact, rc) != 0) {
        fprintf(stderr, "mimo-verify: cannot write %s\n", html);
        rc = rc ? rc : 3;
    }
    if (junit && write_junit(junit, artifact) != 0) {
        fprintf(stderr, "mimo-verify: cannot write %s\n", junit);
        rc = rc ? rc : 3;
    }
    lq_ckpt_close(ck);
    cJSON_Delete(man);
    free(g_items);
    free(g_layers);
    return rc;
}
