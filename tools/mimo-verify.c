/* mimo-verify: the release gate for mimo-quantize artifacts.
 *
 *   mimo-verify ARTIFACT [--source SRC] [--policy FILE.json] [--pubkey KEY.pem] [--only C,..]
 *               [--skip C,..] [--threads N] [--report FILE.json] [--junit FILE.xml]
 *               [--html FILE.html] [-q]
 *
 * Checks run in order; each prints one line (PASS / FAIL / SKIP with what it measured), then the
 * verdict. Exit: 0 every check passed, 1 a check failed, 2 usage, 3 the artifact cannot be read.
 * Checks, in order:
 *   manifest   mimo-manifest.json parses and has the expected schema
 *   integrity  every listed file exists with its size and SHA-256 (files hashed in parallel);
 *              files in the artifact that the manifest does not list are reported
 *   signature  mimo-manifest.json.sig verifies against --pubkey (Ed25519); skipped without a key
 *   container  the checkpoint opens under every safetensors and index rule (libquant/checkpoint.h):
 *              index <-> shards both ways, offsets, dtypes, shapes, total_size
 *   tensors    the manifest's tensor list equals the shards' (names, dtypes, shapes, files)
 *   inventory  the loader contract (libquant/inventory.h)
 *   drafter    dflash/ against the target (libquant/drafter.h)
 *   accuracy   with --source: every MXFP4 tensor against its source tensor
 *   model      with --source and a policy "model" section: artifact and source run end to end
 *              through the CPU runtime (runtime/model.h): top-1 agreement and KL of teacher-forced
 *              logits on the policy's prompts, perplexity of both on a token sequence, per-layer
 *              hidden-state cosine
 * docs/cli.md describes every check, the policy keys and the report fields. */
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
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "libquant/libquant.h"
#include "runtime/dflash.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "runtime/weights.h"

typedef struct check {
    const char *name;
    int ran, passed;
    char detail[1024];
} check;

static check checks[] = {
    {"manifest", 0, 0, ""}, {"integrity", 0, 0, ""}, {"signature", 0, 0, ""},
    {"container", 0, 0, ""}, {"tensors", 0, 0, ""}, {"inventory", 0, 0, ""},
    {"values", 0, 0, ""},    {"drafter", 0, 0, ""}, {"accuracy", 0, 0, ""}, {"model", 0, 0, ""},
};
#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

static int enabled[NCHECKS];

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mimo-verify ARTIFACT [options]\n"
        "Checks a mimo-quantize artifact: manifest, integrity (sizes and SHA-256), signature,\n"
        "container rules, tensor list, loader inventory, drafter; with --source also per-tensor\n"
        "accuracy and the end-to-end model check. One line per check, then the verdict.\n"
        "  --pubkey KEY.pem    verify mimo-manifest.json.sig with this Ed25519 public key\n"
        "  --only C[,C...]     run only these checks (manifest, integrity, signature, container,\n"
        "                      tensors, inventory, values, drafter, accuracy, model)\n"
        "  --source SRC        the checkpoint the artifact was made from: every MXFP4 tensor is\n"
        "                      decoded and compared with its source tensor (accuracy check), and\n"
        "                      when the policy has a \"model\" section both models run through the\n"
        "                      CPU runtime: top-1 agreement, KL, perplexity, hidden-state cosine\n"
        "                      (model check)\n"
        "  --policy FILE.json  required checks, thresholds and model-check settings (default: the\n"
        "                      built-in policy, the same as policy/default.json in the source tree)\n"
        "  --html FILE.html    a self-contained page with the checks and a per-layer chart (MXFP4\n"
        "                      SQNR bars; hidden-state cosine line when the model check ran)\n"
        "  --skip C[,C...]     skip these checks\n"
        "  --threads N         hashing, accuracy and runtime threads, 1..256 (default: all online\n"
        "                      cores)\n"
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
    const cJSON **files;      /* the manifest's "files" entries, in order */
    char (*got)[65];
    uint64_t *size;
    int *err;
} hjob;

/* One task of the thread pool: hashes file i into got[i], size[i], err[i]. */
static void hash_file(void *arg, size_t i)
{
    hjob *h = arg;
    const char *rel = cJSON_GetStringValue(lq_json_get(h->files[i], "path"));
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", h->dir, rel ? rel : "");
    errno = 0;
    FILE *f = rel ? fopen(path, "rb") : NULL;
    if (!f) {
        h->err[i] = errno ? errno : ENOENT;
        return;
    }
    unsigned char *buf = malloc((size_t)8 << 20);
    if (!buf) {
        h->err[i] = ENOMEM;
        fclose(f);
        return;
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
    free(buf);
    uint8_t d[32];
    EVP_DigestFinal_ex(ctx, d, NULL);
    EVP_MD_CTX_free(ctx);
    lq_hex(d, 32, h->got[i]);
    h->size[i] = total;
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
    const cJSON *files = lq_json_get(man, "files"), *e;
    size_t n = (size_t)cJSON_GetArraySize(files);
    const cJSON **fv = calloc(n + 1, sizeof(*fv));
    const char **listed_paths = calloc(n + 1, sizeof(*listed_paths));
    size_t nlisted = 0;
    {
        size_t k = 0;
        cJSON_ArrayForEach(e, files) {
            fv[k++] = e;
            const char *lp = cJSON_GetStringValue(lq_json_get(e, "path"));
            if (lp)
                listed_paths[nlisted++] = lp;
        }
    }
    if (nlisted > 1)
        qsort(listed_paths, nlisted, sizeof(*listed_paths), cmp_str);
    hjob h = {.dir = dir, .files = fv};
    h.got = calloc(n + 1, sizeof(*h.got));
    h.size = calloc(n + 1, sizeof(uint64_t));
    h.err = calloc(n + 1, sizeof(int));
    lq_parallel_for(n, threads, hash_file, &h);
    size_t bad = 0;
    uint64_t bytes = 0;
    char first[900] = "";
    for (size_t i = 0; i < n; i++) {
        const cJSON *f = fv[i];
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
        int listed = !strcmp(present[i], LQ_MANIFEST_FILE) || !strcmp(present[i], LQ_SIGNATURE_FILE) ||
                     (nlisted && bsearch(&present[i], listed_paths, nlisted, sizeof(*listed_paths), cmp_str));
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
    free(fv);
    free(listed_paths);
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

/* The "manifest" check: reads ARTIFACT/mimo-manifest.json and records the result. Returns the
 * parsed tree (NULL when the file does not parse; the caller frees it); *parsed = 1 when it parsed,
 * *usable = 1 when it is a schema-1 manifest whose entries hold (the checks that read it may run). */
static cJSON *check_manifest(const char *artifact, int *parsed, int *usable)
{
    char mp[8192], buf[1400];
    snprintf(mp, sizeof(mp), "%s/%s", artifact, LQ_MANIFEST_FILE);
    cJSON *man = NULL;
    lq_error err;
    lq_error_clear(&err);
    int mi = check_index("manifest");
    *parsed = *usable = 0;
    if (lq_json_parse_file(mp, LQ_OUTPUT_JSON_MAX_BYTES, NULL, &man, &err) != LQ_OK) {
        result(mi, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
        return man;
    }
    *parsed = 1;
    uint64_t sv = 0;
    int ok = lq_json_u64(lq_json_get(man, "schema_version"), &sv) == 0 && sv == 1 &&
             cJSON_IsArray(lq_json_get(man, "files")) && cJSON_IsArray(lq_json_get(man, "tensors"));
    char bad_entry[600] = "";
    if (ok)
        manifest_entries_ok(man, bad_entry, sizeof(bad_entry));
    if (ok && !bad_entry[0])
        result(mi, 1, "schema 1, %d files, %d tensors", cJSON_GetArraySize(lq_json_get(man, "files")),
               cJSON_GetArraySize(lq_json_get(man, "tensors")));
    else if (ok)
        result(mi, 0, "%s: %s", mp, bad_entry);
    else
        result(mi, 0, "%s: not a schema-1 mimo manifest (schema_version, files, tensors)", mp);
    *usable = checks[mi].ran && checks[mi].passed;
    return man;
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
    /* A name listed twice can stand in for a tensor the manifest leaves out (the counts still
     * agree), so every repeat is a problem of its own. */
    char **names = malloc((n ? n : 1) * sizeof(*names));
    size_t nn = 0;
    if (!names) {
        if (!bad++)
            snprintf(first, sizeof(first), "out of memory while comparing tensor names");
    } else {
        cJSON_ArrayForEach(t, ts) {
            char *name = cJSON_GetStringValue(lq_json_get(t, "name"));
            if (name)
                names[nn++] = name;
        }
        if (nn > 1)
            qsort(names, nn, sizeof(*names), cmp_str);
        for (size_t i = 1; i < nn; i++) {
            if (strcmp(names[i - 1], names[i]) != 0)
                continue;
            fprintf(stderr, "mimo-verify: tensors: %s: listed more than once in the manifest\n", names[i]);
            if (!bad++)
                snprintf(first, sizeof(first), "%s: listed more than once in the manifest", names[i]);
        }
        free(names);
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
/* Every stored value of the target, as the runtime checks it at load (runtime/weights.h through
 * libquant/values.h): floats finite and within LQ_VALUES_MAX_ABS, FP8 codes not NaN, scales
 * finite and positive, MXFP4 blocks within the float range. The drafter's values are part of the
 * drafter check (lq_drafter_open). A second read of the artifact besides integrity's hashing. */
static void check_values(const char *dir, int threads)
{
    int ci = check_index("values");
    rt_weights *w = NULL;
    lq_error err;
    lq_error_clear(&err);
    rt_weights_opts o = {threads, 0, 1};
    char buf[1400];
    if (rt_weights_open(dir, &o, &w, &err) != LQ_OK) {
        result(ci, 0, "%s", lq_error_format(&err, buf, sizeof(buf)));
        return;
    }
    result(ci, 1, "every value of the target's weights finite, within %g, FP8 codes and scales and MXFP4 blocks valid",
           LQ_VALUES_MAX_ABS);
    rt_weights_close(w);
}

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

/* Built-in policy; policy/default.json in the source tree holds the same values (a test compares
 * the policy each one puts in force). The thresholds of the model check and the reasoning behind
 * them are in docs/cli.md (mimo-verify, "model check"). */
static const char *const default_policy =
    "{\"schema_version\": 1,"
    " \"required\": [\"manifest\", \"integrity\", \"container\", \"tensors\", \"inventory\", \"values\"],"
    " \"thresholds\": {\"min_sqnr_db\": 17.0, \"min_cosine\": 0.99, \"max_clip_frac\": 0.05,"
    " \"min_layer_sqnr_db\": 17.5, \"min_top1_agreement\": 0.9, \"max_mean_kl\": 1e-05, \"max_kl\": 2.5e-05,"
    " \"max_ppl_ratio\": 1.005, \"min_layer_hidden_cosine\": 0.9999, \"min_dflash_tau_ratio\": 0.9},"
    " \"model\": {\"prompts\": 4, \"prompt_length\": 32, \"seed\": 1, \"continuation_length\": 32,"
    " \"sample_seed\": 1, \"dflash_tokens\": 16}}";

/* Limits of the "model" section (documented in docs/cli.md). */
#define MODEL_MAX_PROMPTS 256
#define MODEL_MAX_LEN 4096

/* The "model" section: which prompts the model check runs and how it draws the perplexity
 * sequence. Without the section the check does not run. */
typedef struct model_policy {
    int enabled;
    uint64_t prompts, prompt_length, seed;  /* prompts drawn from seed (when ids is NULL) */
    int32_t *ids;                           /* explicit "prompt_ids", concatenated; owned */
    size_t *starts;                         /* [prompts + 1] offsets into ids; owned */
    uint64_t continuation_length, sample_seed;
    uint64_t dflash_tokens;                 /* greedy tokens per prompt for the DFlash comparison; 0 off */
    char *text;                             /* "text": the perplexity sequence, tokenized; owned */
} model_policy;

typedef struct policy {
    int required[16];
    double min_sqnr_db, min_cosine, max_clip_frac, min_layer_sqnr_db;
    double min_top1_agreement, max_mean_kl, max_kl, max_ppl_ratio, min_layer_hidden_cosine;
    double min_dflash_tau_ratio, min_dflash_tau;
    model_policy model;
} policy;

/* Every threshold the policy may hold, with the range a value must lie in. */
static const struct {
    const char *key;
    size_t off;
    double lo, hi;
} threshold_keys[] = {
    {"min_sqnr_db", offsetof(policy, min_sqnr_db), -1000, 1000},
    {"min_cosine", offsetof(policy, min_cosine), -1, 1},
    {"max_clip_frac", offsetof(policy, max_clip_frac), 0, 1},
    {"min_layer_sqnr_db", offsetof(policy, min_layer_sqnr_db), -1000, 1000},
    {"min_top1_agreement", offsetof(policy, min_top1_agreement), 0, 1},
    {"max_mean_kl", offsetof(policy, max_mean_kl), 0, 1e6},
    {"max_kl", offsetof(policy, max_kl), 0, 1e6},
    {"max_ppl_ratio", offsetof(policy, max_ppl_ratio), 0, 1e6},
    {"min_layer_hidden_cosine", offsetof(policy, min_layer_hidden_cosine), -1, 1},
    {"min_dflash_tau_ratio", offsetof(policy, min_dflash_tau_ratio), 0, 1e6},
    {"min_dflash_tau", offsetof(policy, min_dflash_tau), 1, 4096},
};
#define NTHRESHOLDS (sizeof(threshold_keys) / sizeof(threshold_keys[0]))

static double *threshold_ptr(policy *p, size_t k) { return (double *)((char *)p + threshold_keys[k].off); }
static double threshold_val(const policy *p, size_t k)
{
    return *(const double *)((const char *)p + threshold_keys[k].off);
}

static void policy_free(policy *p)
{
    free(p->model.ids);
    free(p->model.starts);
    free(p->model.text);
    p->model.ids = NULL;
    p->model.starts = NULL;
    p->model.text = NULL;
}

/* Prints "mimo-verify: policy FILE: KEY: RULE: message" and returns -1. Rules: POLICY_JSON (not
 * strict JSON), POLICY_SCHEMA (schema_version, required, thresholds missing or of the wrong
 * type), POLICY_UNKNOWN_KEY, POLICY_UNKNOWN_CHECK, POLICY_VALUE (a value of the wrong type or
 * outside its range), POLICY_CONFLICT (keys that exclude each other). */
static int policy_error(const char *path, const char *key, const char *rule, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int policy_error(const char *path, const char *key, const char *rule, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mimo-verify: policy %s: %s: %s: ", path ? path : "(built-in)", key, rule);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

/* An integer member in [lo, hi]; absent leaves *v alone. */
static int policy_int(const char *path, const cJSON *obj, const char *sect, const char *key, uint64_t lo, uint64_t hi,
                      uint64_t *v)
{
    const cJSON *e = lq_json_get(obj, key);
    uint64_t x = 0;
    if (!e)
        return 0;
    if (lq_json_u64(e, &x) != 0 || x < lo || x > hi) {
        char full[96];
        snprintf(full, sizeof(full), "%s.%s", sect, key);
        return policy_error(path, full, "POLICY_VALUE", "must be an integer in %" PRIu64 "..%" PRIu64, lo, hi);
    }
    *v = x;
    return 0;
}

/* The "model" section. Absent keys take the defaults documented in docs/cli.md. */
static int load_model_section(const char *path, const cJSON *m, model_policy *mp)
{
    static const char *const known[] = {"prompts", "prompt_length", "seed", "prompt_ids", "continuation_length",
                                        "sample_seed", "dflash_tokens", "text"};
    if (!cJSON_IsObject(m))
        return policy_error(path, "model", "POLICY_VALUE", "must be an object");
    for (const cJSON *ch = m->child; ch; ch = ch->next) {
        int ok = 0;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok |= !strcmp(ch->string, known[k]);
        if (!ok) {
            char full[300];
            snprintf(full, sizeof(full), "model.%.200s", ch->string);
            return policy_error(path, full, "POLICY_UNKNOWN_KEY",
                                "unknown key (known: prompts, prompt_length, seed, prompt_ids, "
                                "continuation_length, sample_seed, dflash_tokens, text)");
        }
    }
    mp->enabled = 1;
    mp->prompts = 4;
    mp->prompt_length = 32;
    mp->seed = 1;
    mp->continuation_length = 32;
    mp->sample_seed = 1;
    mp->dflash_tokens = 16;
    if (policy_int(path, m, "model", "dflash_tokens", 0, MODEL_MAX_LEN, &mp->dflash_tokens) ||
        policy_int(path, m, "model", "prompts", 1, MODEL_MAX_PROMPTS, &mp->prompts) ||
        policy_int(path, m, "model", "prompt_length", 1, MODEL_MAX_LEN, &mp->prompt_length) ||
        policy_int(path, m, "model", "seed", 0, (uint64_t)1 << 53, &mp->seed) ||
        policy_int(path, m, "model", "continuation_length", 1, MODEL_MAX_LEN, &mp->continuation_length) ||
        policy_int(path, m, "model", "sample_seed", 0, (uint64_t)1 << 53, &mp->sample_seed))
        return -1;
    const cJSON *tx = lq_json_get(m, "text");
    if (tx) {
        if (!cJSON_IsString(tx) || !tx->valuestring[0] || strlen(tx->valuestring) > 65536)
            return policy_error(path, "model.text", "POLICY_VALUE", "must be a non-empty string of at most 65536 bytes");
        if (lq_json_get(m, "continuation_length") || lq_json_get(m, "sample_seed"))
            return policy_error(path, "model.text", "POLICY_CONFLICT",
                                "a text to score excludes \"continuation_length\" and \"sample_seed\"");
        mp->text = strdup(tx->valuestring);
        if (!mp->text)
            return policy_error(path, "model.text", "POLICY_VALUE", "out of memory");
    }
    const cJSON *ids = lq_json_get(m, "prompt_ids");
    if (!ids)
        return 0;
    if (lq_json_get(m, "prompts") || lq_json_get(m, "prompt_length") || lq_json_get(m, "seed"))
        return policy_error(path, "model.prompt_ids", "POLICY_CONFLICT",
                            "explicit prompts exclude \"prompts\", \"prompt_length\" and \"seed\"");
    int np = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : -1;
    if (np < 1 || np > MODEL_MAX_PROMPTS)
        return policy_error(path, "model.prompt_ids", "POLICY_VALUE", "must be an array of 1..%d arrays of token ids",
                            MODEL_MAX_PROMPTS);
    size_t total = 0, pi = 0;
    const cJSON *pr;
    cJSON_ArrayForEach(pr, ids) {
        int n = cJSON_IsArray(pr) ? cJSON_GetArraySize(pr) : -1;
        if (n < 1 || n > MODEL_MAX_LEN) {
            char full[96];
            snprintf(full, sizeof(full), "model.prompt_ids[%zu]", pi);
            return policy_error(path, full, "POLICY_VALUE", "must be an array of 1..%d token ids", MODEL_MAX_LEN);
        }
        total += (size_t)n;
        pi++;
    }
    mp->ids = malloc(total * sizeof(int32_t));
    mp->starts = malloc(((size_t)np + 1) * sizeof(size_t));
    if (!mp->ids || !mp->starts)
        return policy_error(path, "model.prompt_ids", "POLICY_VALUE", "out of memory");
    size_t at = 0;
    pi = 0;
    cJSON_ArrayForEach(pr, ids) {
        mp->starts[pi] = at;
        size_t ti = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, pr) {
            uint64_t v = 0;
            if (lq_json_u64(t, &v) != 0 || v > INT32_MAX) {
                char full[96];
                snprintf(full, sizeof(full), "model.prompt_ids[%zu][%zu]", pi, ti);
                return policy_error(path, full, "POLICY_VALUE", "must be a token id (an integer 0..%d)", INT32_MAX);
            }
            mp->ids[at++] = (int32_t)v;
            ti++;
        }
        pi++;
    }
    mp->starts[pi] = at;
    mp->prompts = (uint64_t)np;
    mp->prompt_length = 0; /* per prompt: starts[] */
    return 0;
}

static int load_policy(const char *path, policy *p)
{
    cJSON *j = NULL;
    lq_error err;
    lq_error_clear(&err);
    memset(p, 0, sizeof(*p));
    lq_status st = path ? lq_json_parse_file(path, 0, NULL, &j, &err)
                        : lq_json_parse(default_policy, strlen(default_policy), NULL, "built-in policy", &j, &err);
    char buf[1400];
    if (st != LQ_OK) {
        fprintf(stderr, "mimo-verify: policy: %s\n", lq_error_format(&err, buf, sizeof(buf)));
        return -1;
    }
    int rc = -1;
    uint64_t sv = 0;
    const cJSON *req = lq_json_get(j, "required"), *th = lq_json_get(j, "thresholds");
    if (!cJSON_IsObject(j) || lq_json_u64(lq_json_get(j, "schema_version"), &sv) != 0 || sv != 1 ||
        !cJSON_IsArray(req) || !cJSON_IsObject(th)) {
        policy_error(path, "schema_version", "POLICY_SCHEMA", "needs schema_version 1, \"required\" (an array) and "
                                                              "\"thresholds\" (an object)");
        goto done;
    }
    for (const cJSON *ch = j->child; ch; ch = ch->next)
        if (strcmp(ch->string, "schema_version") && strcmp(ch->string, "required") && strcmp(ch->string, "thresholds") &&
            strcmp(ch->string, "model")) {
            policy_error(path, ch->string, "POLICY_UNKNOWN_KEY",
                         "unknown key (known: schema_version, required, thresholds, model)");
            goto done;
        }
    const cJSON *e;
    int ri = 0;
    cJSON_ArrayForEach(e, req) {
        int i = cJSON_IsString(e) ? check_index(e->valuestring) : -1;
        if (i < 0) {
            char key[64];
            snprintf(key, sizeof(key), "required[%d]", ri);
            policy_error(path, key, "POLICY_UNKNOWN_CHECK", "unknown check \"%.100s\"",
                         cJSON_IsString(e) ? e->valuestring : "(not a string)");
            goto done;
        }
        p->required[i] = 1;
        ri++;
    }
    for (size_t k = 0; k < NTHRESHOLDS; k++)
        *threshold_ptr(p, k) = NAN;
    for (const cJSON *ch = th->child; ch; ch = ch->next) {
        size_t k = 0;
        while (k < NTHRESHOLDS && strcmp(ch->string, threshold_keys[k].key))
            k++;
        char key[300];
        snprintf(key, sizeof(key), "thresholds.%.200s", ch->string);
        if (k == NTHRESHOLDS) {
            policy_error(path, key, "POLICY_UNKNOWN_KEY", "unknown threshold");
            goto done;
        }
        if (!cJSON_IsNumber(ch) || !(ch->valuedouble >= threshold_keys[k].lo && ch->valuedouble <= threshold_keys[k].hi)) {
            policy_error(path, key, "POLICY_VALUE", "must be a number in %g..%g", threshold_keys[k].lo,
                         threshold_keys[k].hi);
            goto done;
        }
        *threshold_ptr(p, k) = ch->valuedouble;
    }
    const cJSON *m = lq_json_get(j, "model");
    if (m && load_model_section(path, m, &p->model) != 0)
        goto done;
    rc = 0;
done:
    if (rc)
        policy_free(p);
    cJSON_Delete(j);
    return rc;
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

/* One task of the thread pool: measures items[i]. */
static void measure_task(void *arg, size_t i)
{
    measure_item(&((acc_item *)arg)[i]);
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
    lq_parallel_for(n, threads, measure_task, g_items);
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

/* ---- model: artifact and source end to end through the CPU runtime ---- */

/* A token sequence to score: ids[0..n), of which positions scored_from..n-1 are predicted (each
 * from the positions before it). Where the ids come from is the origin; today the perplexity
 * sequence is sampled from the source model (seq_sample_source); a tokenized text file would be
 * another origin filling the same struct, and seq_perplexity scores either. */
typedef struct id_seq {
    int32_t *ids;
    size_t n, scored_from;
    char origin[160];
} id_seq;

/* One hidden state (index 0: the embeddings; i in 1..layers-1: the residual stream after
 * model.layers.(i-1); index layers: the final-normed state after the last layer), compared
 * between artifact and source, pooled over every position of every prompt. */
typedef struct hid_stat {
    double dot, na, nb;
    double min_cos;             /* the lowest per-position cosine, and where */
    size_t min_prompt, min_pos;
} hid_stat;

typedef struct prompt_stat {
    size_t len, agree, first_disagree; /* first_disagree == len: none */
    double kl_sum, kl_max;
    size_t kl_max_pos;
} prompt_stat;

typedef struct model_stats {
    size_t nprompts;
    int32_t *ids;               /* the prompts, concatenated; prompt p is ids[starts[p]..starts[p + 1]) */
    size_t *starts;
    prompt_stat *pr;
    size_t positions, agree;
    double kl_sum, kl_max;
    size_t kl_max_prompt, kl_max_pos;
    uint32_t nhid;              /* layers + 1 */
    hid_stat *hid;
    id_seq seq;                 /* the perplexity sequence */
    double ppl_src, ppl_art;
    double seconds;
    /* DFlash acceptance: the artifact's drafter (ARTIFACT/dflash) drafting for the artifact and
     * for the source (SOURCE/dflash when the source has one), greedy, the policy's prompts */
    int dflash;                 /* 0: not run (no drafter, or dflash_tokens 0) */
    char dflash_why[160];       /* why not, or which drafters */
    uint32_t block;
    size_t dsteps[2], dtokens[2];           /* [0] source, [1] artifact: target steps, tokens after the first */
    size_t dhist[2][RT_MAX_BLOCK + 1];
    double tau[2];
} model_stats;

static model_stats g_model;
static int g_have_model;

static void model_stats_free(model_stats *s)
{
    free(s->ids);
    free(s->starts);
    free(s->pr);
    free(s->hid);
    free(s->seq.ids);
    memset(s, 0, sizeof(*s));
}

static void hid_name(uint32_t i, uint32_t nhid, char *out, size_t cap)
{
    if (i == 0)
        snprintf(out, cap, "embeddings");
    else if (i + 1 == nhid)
        snprintf(out, cap, "final_norm");
    else
        snprintf(out, cap, "model.layers.%u", i - 1);
}

static double hid_cosine(const hid_stat *h)
{
    if (h->na == 0 && h->nb == 0)
        return 1;
    if (h->na == 0 || h->nb == 0)
        return 0;
    return h->dot / sqrt(h->na * h->nb);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* log softmax of x[0..n) in fp64. */
static void log_softmax(const float *x, size_t n, double *out)
{
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)x[i] - lse;
}

static size_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i; /* ties: the lowest id */
    return b;
}

/* The sampler of the perplexity sequence: temperature 1, p = softmax(logits) in fp64; u is the
 * top 53 bits of the next splitmix64 output over 2^53, and the token is the first id (in id order)
 * whose cumulative probability exceeds u. Deterministic for a seed on every platform with IEEE
 * doubles. */
static int32_t sample_t1(const float *logits, size_t V, uint64_t *state)
{
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (size_t i = 0; i < V; i++)
        z += exp((double)logits[i] - mx);
    double u = (double)(splitmix64(state) >> 11) * 0x1p-53 * z, cum = 0;
    size_t last = 0;
    for (size_t i = 0; i < V; i++) {
        double p = exp((double)logits[i] - mx);
        if (p > 0)
            last = i;
        cum += p;
        if (cum > u)
            return (int32_t)i;
    }
    return (int32_t)last; /* rounding left u at the very top */
}

/* The perplexity sequence: prefix followed by cont tokens sampled from m (sample_t1), decoded
 * incrementally through the KV cache. */
static lq_status seq_sample_source(const rt_model *m, const int32_t *prefix, size_t np, size_t cont, uint64_t seed,
                                   const rt_opts *o, id_seq *s, lq_error *err)
{
    size_t V = rt_model_config(m)->vocab_size;
    rt_cache *c = NULL;
    float *lg = malloc(V * sizeof(float));
    s->ids = malloc((np + cont) * sizeof(int32_t));
    lq_status st = lg && s->ids ? LQ_OK : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    if (st == LQ_OK)
        st = rt_cache_new(m, np + cont, &c, err);
    if (st == LQ_OK && np > 1)
        st = rt_step(m, c, prefix, np - 1, o, NULL, NULL, err);
    if (st == LQ_OK)
        st = rt_step(m, c, prefix + np - 1, 1, o, lg, NULL, err);
    if (st == LQ_OK) {
        memcpy(s->ids, prefix, np * sizeof(int32_t));
        uint64_t state = seed;
        for (size_t t = 0; t < cont && st == LQ_OK; t++) {
            s->ids[np + t] = sample_t1(lg, V, &state);
            if (t + 1 < cont)
                st = rt_step(m, c, &s->ids[np + t], 1, o, lg, NULL, err);
        }
        s->n = np + cont;
        s->scored_from = np;
        snprintf(s->origin, sizeof(s->origin), "sampled_from_source");
    }
    rt_cache_free(c);
    free(lg);
    return st;
}

/* exp(mean negative log-likelihood) of s->ids[scored_from..n) under m, teacher-forced, fp64. */
static lq_status seq_perplexity(const rt_model *m, const id_seq *s, const rt_opts *o, double *ppl, lq_error *err)
{
    size_t V = rt_model_config(m)->vocab_size;
    float *lg = malloc(s->n * V * sizeof(float));
    double *ls = malloc(V * sizeof(double));
    lq_status st = lg && ls ? LQ_OK : lq_fail(err, LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory");
    if (st == LQ_OK)
        st = rt_forward(m, s->ids, s->n, o, lg, NULL, err);
    double nll = 0;
    for (size_t t = s->scored_from ? s->scored_from : 1; st == LQ_OK && t < s->n; t++) {
        log_softmax(lg + (t - 1) * V, V, ls);
        nll -= ls[s->ids[t]];
    }
    size_t scored = s->n - (s->scored_from ? s->scored_from : 1);
    *ppl = scored ? exp(nll / (double)scored) : NAN;
    free(lg);
    free(ls);
    return st;
}

/* The policy's prompts: explicit ids, or prompt_length ids each drawn from splitmix64(seed) as
 * floor(u * vocab) with u the top 32 bits over 2^32. Returns the offsets in *starts. */
static int make_prompts(const model_policy *mp, uint32_t vocab, int32_t **ids, size_t **starts, char *why, size_t cap)
{
    size_t np = (size_t)mp->prompts;
    size_t total = mp->ids ? mp->starts[np] : np * (size_t)mp->prompt_length;
    *ids = malloc(total * sizeof(int32_t));
    *starts = malloc((np + 1) * sizeof(size_t));
    if (!*ids || !*starts) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    if (mp->ids) {
        memcpy(*starts, mp->starts, (np + 1) * sizeof(size_t));
        for (size_t p = 0; p < np; p++)
            for (size_t i = mp->starts[p]; i < mp->starts[p + 1]; i++) {
                if ((uint32_t)mp->ids[i] >= vocab) {
                    snprintf(why, cap, "policy model.prompt_ids[%zu][%zu]: POLICY_VALUE: token %d outside the "
                                       "vocabulary of %u", p, i - mp->starts[p], mp->ids[i], vocab);
                    return -1;
                }
                (*ids)[i] = mp->ids[i];
            }
        return 0;
    }
    uint64_t state = mp->seed;
    for (size_t p = 0; p <= np; p++)
        (*starts)[p] = p * (size_t)mp->prompt_length;
    for (size_t i = 0; i < total; i++)
        (*ids)[i] = (int32_t)(((splitmix64(&state) >> 32) * vocab) >> 32);
    return 0;
}

/* One prompt's teacher-forced comparison: ps and hid[nhid] (this prompt's positions only). */
static void prompt_compare(prompt_stat *ps, hid_stat *hid, uint32_t nhid, size_t n, uint32_t V, uint32_t H,
                           const float *ls, const float *la, const float *hs, const float *ha, double *lps, double *lpa)
{
    ps->len = n;
    ps->first_disagree = n;
    for (size_t t = 0; t < n; t++) {
        const float *xs = ls + t * V, *xa = la + t * V;
        if (argmax(xs, V) == argmax(xa, V))
            ps->agree++;
        else if (ps->first_disagree == n)
            ps->first_disagree = t;
        log_softmax(xs, V, lps);
        log_softmax(xa, V, lpa);
        double kl = 0;
        for (size_t i = 0; i < V; i++)
            kl += exp(lps[i]) * (lps[i] - lpa[i]);
        ps->kl_sum += kl;
        if (t == 0 || kl > ps->kl_max) {
            ps->kl_max = kl;
            ps->kl_max_pos = t;
        }
    }
    for (uint32_t l = 0; l < nhid; l++) {
        hid_stat *h = &hid[l];
        for (size_t t = 0; t < n; t++) {
            const float *a = ha + ((size_t)l * n + t) * H, *b = hs + ((size_t)l * n + t) * H;
            hid_stat one = {0, 0, 0, 0, 0, 0};
            for (uint32_t k = 0; k < H; k++) {
                one.dot += (double)a[k] * b[k];
                one.na += (double)a[k] * a[k];
                one.nb += (double)b[k] * b[k];
            }
            h->dot += one.dot;
            h->na += one.na;
            h->nb += one.nb;
            double c = hid_cosine(&one);
            if (t == 0 || c < h->min_cos) {
                h->min_cos = c;
                h->min_pos = t;
            }
        }
    }
}

/* Adds prompt p's part to the totals. Parts are merged in prompt order, so every figure is the
 * same whatever the thread count. */
static void model_merge(model_stats *S, size_t p, const prompt_stat *ps, const hid_stat *hid)
{
    if (p == 0 || ps->kl_max > S->kl_max) {
        S->kl_max = ps->kl_max;
        S->kl_max_prompt = p;
        S->kl_max_pos = ps->kl_max_pos;
    }
    S->pr[p] = *ps;
    S->positions += ps->len;
    S->agree += ps->agree;
    S->kl_sum += ps->kl_sum;
    for (uint32_t l = 0; l < S->nhid; l++) {
        hid_stat *h = &S->hid[l];
        h->dot += hid[l].dot;
        h->na += hid[l].na;
        h->nb += hid[l].nb;
        if (p == 0 || hid[l].min_cos < h->min_cos) {
            h->min_cos = hid[l].min_cos;
            h->min_prompt = p;
            h->min_pos = hid[l].min_pos;
        }
    }
}

/* The work of the model check, run as tasks of the thread pool: job 0 samples the perplexity
 * sequence from the source (a chain of one-token decode steps, the longest job, so it starts
 * first); job 1 + p runs prompt p through both models and compares them. The per-prompt parts
 * are merged afterwards in prompt order. */
typedef struct model_scratch {
    int busy;
    float *la, *ls, *ha, *hs;
    double *lpa, *lps;
} model_scratch;

typedef struct model_pool {
    const rt_model *ms, *ma;
    const int32_t *ids;
    const size_t *starts;
    size_t np, maxlen;
    uint32_t V, H, nhid;
    rt_opts o;                  /* runtime threads per job */
    uint64_t cont, sample_seed;
    pthread_mutex_t mu;         /* guards scr[].busy */
    model_scratch *scr;         /* [nscr]: one per job that can run at once, kept between jobs */
    size_t nscr;
    prompt_stat *ps;            /* [np] */
    hid_stat *hid;              /* [np * nhid] */
    lq_status *st;              /* [np + 1] */
    lq_error *err;              /* [np + 1] */
    int *in_artifact;           /* [np + 1]: the failed forward was the artifact's */
    id_seq *seq;
} model_pool;

static void free_scratch(model_scratch *m)
{
    free(m->la), free(m->ls), free(m->ha), free(m->hs), free(m->lpa), free(m->lps);
}

static void model_job(void *arg, size_t j)
{
    model_pool *P = arg;
    if (j == 0) {
        if (!P->seq->n) /* else a tokenized text, prepared before the pool */
            P->st[0] = seq_sample_source(P->ms, P->ids, P->starts[1], (size_t)P->cont, P->sample_seed, &P->o, P->seq,
                                         &P->err[0]);
        return;
    }
    /* A free scratch set: the pool runs at most nscr jobs at once, so one is always free; the
     * local set is only a fallback. */
    model_scratch local = {0}, *m = NULL;
    pthread_mutex_lock(&P->mu);
    for (size_t k = 0; k < P->nscr && !m; k++)
        if (!P->scr[k].busy)
            m = &P->scr[k];
    if (m)
        m->busy = 1;
    pthread_mutex_unlock(&P->mu);
    if (!m)
        m = &local;
    size_t p = j - 1, n = P->starts[p + 1] - P->starts[p];
    if (!m->la) {
        m->la = malloc(P->maxlen * P->V * sizeof(float));
        m->ls = malloc(P->maxlen * P->V * sizeof(float));
        m->ha = malloc((size_t)P->nhid * P->maxlen * P->H * sizeof(float));
        m->hs = malloc((size_t)P->nhid * P->maxlen * P->H * sizeof(float));
        m->lpa = malloc(P->V * sizeof(double));
        m->lps = malloc(P->V * sizeof(double));
    }
    lq_status st = LQ_OK;
    if (!m->la || !m->ls || !m->ha || !m->hs || !m->lpa || !m->lps) {
        P->st[j] = lq_fail(&P->err[j], LQ_ERR_NO_MEMORY, NULL, NULL, NULL, "out of memory for a prompt of %zu tokens",
                           n);
    } else if ((st = rt_forward(P->ms, P->ids + P->starts[p], n, &P->o, m->ls, m->hs, &P->err[j])) != LQ_OK) {
        P->st[j] = st;
    } else if ((st = rt_forward(P->ma, P->ids + P->starts[p], n, &P->o, m->la, m->ha, &P->err[j])) != LQ_OK) {
        P->st[j] = st;
        P->in_artifact[j] = 1;
    } else {
        prompt_compare(&P->ps[p], P->hid + p * P->nhid, P->nhid, n, P->V, P->H, m->ls, m->la, m->hs, m->ha, m->lps,
                       m->lpa);
    }
    if (m == &local) {
        free_scratch(&local);
    } else {
        pthread_mutex_lock(&P->mu);
        m->busy = 0;
        pthread_mutex_unlock(&P->mu);
    }
}

/* Perplexity of the sequence under both models, one model per task. */
typedef struct ppl_job {
    const rt_model *m[2];
    const id_seq *seq;
    rt_opts o;
    double ppl[2];
    lq_status st[2];
    lq_error err[2];
} ppl_job;

static void ppl_task(void *arg, size_t i)
{
    ppl_job *J = arg;
    J->st[i] = seq_perplexity(J->m[i], J->seq, &J->o, &J->ppl[i], &J->err[i]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Appends "; " and a formatted failure to buf (and prints it on stderr); counts it. */
static void model_fail(char *buf, size_t cap, size_t *nfail, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void model_fail(char *buf, size_t cap, size_t *nfail, const char *fmt, ...)
{
    char one[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one, sizeof(one), fmt, ap);
    va_end(ap);
    fprintf(stderr, "mimo-verify: model: %s\n", one);
    size_t l = strlen(buf);
    if (l < cap)
        snprintf(buf + l, cap - l, "%s%s", *nfail ? "; " : "", one);
    (*nfail)++;
}

static void check_model(const char *artifact, const char *source, const policy *pol, int threads)
{
    int ci = check_index("model");
    double t0 = now_s();
    rt_model *ma = NULL, *ms = NULL;
    lq_error err;
    char buf[1400], why[700] = "";
    int32_t *ids = NULL;
    size_t *starts = NULL;
    model_pool P;
    memset(&P, 0, sizeof(P));
    model_stats *S = &g_model;
    memset(S, 0, sizeof(*S));
    lq_error_clear(&err);
    const rt_model_opts vmo = {.threads = threads, .world = 1};
    if (rt_model_open(artifact, &vmo, &ma, &err) != LQ_OK) {
        result(ci, 0, "the artifact cannot be loaded by the runtime: %s", lq_error_format(&err, buf, sizeof(buf)));
        goto done;
    }
    lq_error_clear(&err);
    if (rt_model_open(source, &vmo, &ms, &err) != LQ_OK) {
        result(ci, 0, "--source %s cannot be loaded by the runtime: %s", source, lq_error_format(&err, buf, sizeof(buf)));
        goto done;
    }
    const lq_mimo_config *ca = rt_model_config(ma), *cs = rt_model_config(ms);
    if (ca->vocab_size != cs->vocab_size || ca->hidden_size != cs->hidden_size ||
        ca->num_hidden_layers != cs->num_hidden_layers) {
        result(ci, 0, "--source %s is another model: vocab_size %u, hidden_size %u, num_hidden_layers %u; the artifact "
                      "has %u, %u, %u", source, cs->vocab_size, cs->hidden_size, cs->num_hidden_layers, ca->vocab_size,
               ca->hidden_size, ca->num_hidden_layers);
        goto done;
    }
    if (make_prompts(&pol->model, ca->vocab_size, &ids, &starts, why, sizeof(why)) != 0) {
        result(ci, 0, "%s", why);
        goto done;
    }
    size_t np = (size_t)pol->model.prompts;
    S->nprompts = np;
    S->nhid = ca->num_hidden_layers + 1;
    S->pr = calloc(np, sizeof(prompt_stat));
    S->hid = calloc(S->nhid, sizeof(hid_stat));
    if (pol->model.text) {
        /* the text to score, encoded with the artifact's tokenizer (docs/tokenizer.md) */
        char tp[4200];
        snprintf(tp, sizeof(tp), "%s/tokenizer.json", artifact);
        rt_tokenizer *tk = NULL;
        int32_t *tids = NULL;
        size_t tn = 0;
        lq_error_clear(&err);
        if (rt_tokenizer_open(tp, &tk, &err) != LQ_OK ||
            rt_tokenizer_encode(tk, pol->model.text, strlen(pol->model.text), &tids, &tn, &err) != LQ_OK) {
            result(ci, 0, "the policy's model.text needs the artifact's tokenizer: %s",
                   lq_error_format(&err, buf, sizeof(buf)));
            rt_tokenizer_close(tk);
            goto done;
        }
        rt_tokenizer_close(tk);
        size_t bad = tn;
        for (size_t i = 0; i < tn && bad == tn; i++)
            if (tids[i] < 0 || (uint32_t)tids[i] >= ca->vocab_size)
                bad = i;
        if (tn < 2 || tn > MODEL_MAX_LEN || bad < tn) {
            if (bad < tn)
                result(ci, 0, "model.text: token %zu is id %d, outside the model's vocabulary of %u (%s)", bad, tids[bad],
                       ca->vocab_size, tp);
            else
                result(ci, 0, "model.text encodes to %zu tokens; 2..%d are scored", tn, MODEL_MAX_LEN);
            free(tids);
            goto done;
        }
        S->seq.ids = tids;
        S->seq.n = tn;
        S->seq.scored_from = 1; /* every token after the first is predicted */
        snprintf(S->seq.origin, sizeof(S->seq.origin), "text");
    }
    P = (model_pool){.ms = ms, .ma = ma, .ids = ids, .starts = starts, .np = np, .V = ca->vocab_size,
                     .H = ca->hidden_size, .nhid = S->nhid, .cont = pol->model.continuation_length,
                     .sample_seed = pol->model.sample_seed, .seq = &S->seq};
    for (size_t p = 0; p < np; p++)
        P.maxlen = starts[p + 1] - starts[p] > P.maxlen ? starts[p + 1] - starts[p] : P.maxlen;
    P.ps = calloc(np, sizeof(prompt_stat));
    P.hid = calloc(np * S->nhid, sizeof(hid_stat));
    P.st = calloc(np + 1, sizeof(lq_status));
    P.err = calloc(np + 1, sizeof(lq_error));
    P.in_artifact = calloc(np + 1, sizeof(int));
    if (!S->pr || !S->hid || !P.ps || !P.hid || !P.st || !P.err || !P.in_artifact) {
        result(ci, 0, "out of memory for %zu prompts", np);
        goto done;
    }
    /* 1 and 3 (every prompt through both models) and the sampling of 2, in parallel: as many jobs
     * at once as there are threads, the rest of the threads inside the runtime. */
    int workers = threads < (int)(np + 1) ? threads : (int)(np + 1);
    P.o = (rt_opts){.threads = threads / workers > 0 ? threads / workers : 1};
    P.nscr = (size_t)workers;
    P.scr = calloc(P.nscr, sizeof(model_scratch));
    if (!P.scr) {
        result(ci, 0, "out of memory for %zu prompts", np);
        goto done;
    }
    pthread_mutex_init(&P.mu, NULL);
    lq_parallel_for(np + 1, workers, model_job, &P);
    pthread_mutex_destroy(&P.mu);
    for (size_t k = 0; k < P.nscr; k++)
        free_scratch(&P.scr[k]);
    for (size_t j = 0; j <= np; j++)
        if (P.st[j] != LQ_OK) {
            if (j == 0)
                result(ci, 0, "sampling the perplexity sequence from the source: %s",
                       lq_error_format(&P.err[0], buf, sizeof(buf)));
            else
                result(ci, 0, "prompt %zu: the %s's forward failed: %s", j - 1, P.in_artifact[j] ? "artifact" : "source",
                       lq_error_format(&P.err[j], buf, sizeof(buf)));
            goto done;
        }
    for (size_t p = 0; p < np; p++)
        model_merge(S, p, &P.ps[p], P.hid + p * S->nhid);
    /* 2: perplexity of both models on the sequence (prompt 0 and the sampled continuation). */
    ppl_job J;
    memset(&J, 0, sizeof(J));
    J.m[0] = ms;
    J.m[1] = ma;
    J.seq = &S->seq;
    J.o = (rt_opts){.threads = threads >= 2 ? threads / 2 : 1};
    lq_parallel_for(2, threads >= 2 ? 2 : 1, ppl_task, &J);
    for (int i = 0; i < 2; i++)
        if (J.st[i] != LQ_OK) {
            result(ci, 0, "perplexity of the %s: %s", i ? "artifact" : "source",
                   lq_error_format(&J.err[i], buf, sizeof(buf)));
            goto done;
        }
    S->ppl_src = J.ppl[0];
    S->ppl_art = J.ppl[1];
    /* 4: DFlash acceptance, greedy, on the same prompts: the artifact's drafter with the artifact
     * and the source's (or else the artifact's) drafter with the source. A quantization that
     * moves the target's argmax or the tapped hidden states shows up as a lower tau. */
    if (pol->model.dflash_tokens > 0) {
        char dd[2][4200];
        snprintf(dd[1], sizeof(dd[1]), "%s/dflash", artifact);
        snprintf(dd[0], sizeof(dd[0]), "%s/dflash", source);
        struct stat sb;
        if (stat(dd[1], &sb) != 0 || !S_ISDIR(sb.st_mode))
            snprintf(S->dflash_why, sizeof(S->dflash_why), "no dflash/ in the artifact");
        else {
            if (stat(dd[0], &sb) != 0 || !S_ISDIR(sb.st_mode))
                snprintf(dd[0], sizeof(dd[0]), "%s", dd[1]);
            const rt_model *mm[2] = {ms, ma};
            int32_t *gen = malloc(pol->model.dflash_tokens * sizeof(int32_t));
            if (!gen) {
                result(ci, 0, "out of memory");
                goto done;
            }
            for (int i = 0; i < 2; i++) {
                rt_drafter *dr = NULL;
                lq_error derr;
                if (rt_drafter_open(dd[i], mm[i], NULL, &dr, &derr) != LQ_OK) {
                    result(ci, 0, "DFlash: the drafter %s with the %s: %s", dd[i], i ? "artifact" : "source",
                           lq_error_format(&derr, buf, sizeof(buf)));
                    free(gen);
                    goto done;
                }
                S->block = rt_drafter_config(dr)->block_size;
                for (size_t p = 0; p < np; p++) {
                    rt_gen_opts go;
                    memset(&go, 0, sizeof(go));
                    go.max_tokens = pol->model.dflash_tokens;
                    go.rt = (rt_opts){.threads = threads};
                    rt_gen_stats gs;
                    size_t ng = 0;
                    if (rt_generate(mm[i], dr, ids + starts[p], starts[p + 1] - starts[p], &go, gen, &ng, &gs, &derr) !=
                        LQ_OK) {
                        result(ci, 0, "DFlash: prompt %zu on the %s: %s", p, i ? "artifact" : "source",
                               lq_error_format(&derr, buf, sizeof(buf)));
                        rt_drafter_close(dr);
                        free(gen);
                        goto done;
                    }
                    S->dsteps[i] += gs.steps;
                    S->dtokens[i] += ng - 1;
                    for (uint32_t b = 1; b <= S->block && b <= RT_MAX_BLOCK; b++)
                        S->dhist[i][b] += gs.accept_hist[b];
                }
                rt_drafter_close(dr);
                S->tau[i] = S->dsteps[i] ? (double)S->dtokens[i] / (double)S->dsteps[i] : 0;
            }
            free(gen);
            S->dflash = 1;
            snprintf(S->dflash_why, sizeof(S->dflash_why), "%s drafter for the source", strcmp(dd[0], dd[1]) ? "source's" : "artifact's");
        }
    }
    S->seconds = now_s() - t0;
    S->ids = ids;
    S->starts = starts;
    ids = NULL;
    starts = NULL;
    g_have_model = 1;

    /* Against the policy. */
    char fails[1000] = "";
    size_t nfail = 0;
    double top1 = (double)S->agree / (double)S->positions, mean_kl = S->kl_sum / (double)S->positions;
    double ratio = S->ppl_art / S->ppl_src;
    /* The criteria the policy sets (a criterion left out is not checked; the DFlash ones apply only
       when both models were run with a drafter): the denominator of "N of M failed". */
    size_t nactive = !isnan(pol->min_top1_agreement) + !isnan(pol->max_mean_kl) + !isnan(pol->max_kl) +
                     !isnan(pol->max_ppl_ratio) + !isnan(pol->min_layer_hidden_cosine) +
                     (S->dflash && !isnan(pol->min_dflash_tau_ratio)) + (S->dflash && !isnan(pol->min_dflash_tau));
    if (!isnan(pol->min_top1_agreement) && !(top1 >= pol->min_top1_agreement)) {
        size_t worst = 0;
        for (size_t p = 1; p < np; p++)
            if ((double)S->pr[p].agree / (double)S->pr[p].len < (double)S->pr[worst].agree / (double)S->pr[worst].len)
                worst = p;
        model_fail(fails, sizeof(fails), &nfail,
                   "top-1 agreement %.4f below %.4f (%zu of %zu positions; worst prompt %zu: %.4f, first "
                   "disagreement at position %zu)", top1, pol->min_top1_agreement, S->agree, S->positions, worst,
                   (double)S->pr[worst].agree / (double)S->pr[worst].len, S->pr[worst].first_disagree);
    }
    if (!isnan(pol->max_mean_kl) && !(mean_kl <= pol->max_mean_kl))
        model_fail(fails, sizeof(fails), &nfail,
                   "mean KL(source||artifact) %.6g above %.6g nats (largest at prompt %zu position %zu: %.6g)", mean_kl,
                   pol->max_mean_kl, S->kl_max_prompt, S->kl_max_pos, S->kl_max);
    if (!isnan(pol->max_kl) && !(S->kl_max <= pol->max_kl))
        model_fail(fails, sizeof(fails), &nfail, "KL(source||artifact) %.6g above %.6g nats at prompt %zu position %zu",
                   S->kl_max, pol->max_kl, S->kl_max_prompt, S->kl_max_pos);
    if (S->dflash && !isnan(pol->min_dflash_tau_ratio) && !(S->tau[1] >= pol->min_dflash_tau_ratio * S->tau[0]))
        model_fail(fails, sizeof(fails), &nfail,
                   "DFlash acceptance length on the artifact %.3f below %.3f x the source's %.3f (%zu and %zu steps, "
                   "block %u)", S->tau[1], pol->min_dflash_tau_ratio, S->tau[0], S->dsteps[1], S->dsteps[0], S->block);
    if (S->dflash && !isnan(pol->min_dflash_tau) && !(S->tau[1] >= pol->min_dflash_tau))
        model_fail(fails, sizeof(fails), &nfail, "DFlash acceptance length on the artifact %.3f below %.3f (%zu steps, block %u)",
                   S->tau[1], pol->min_dflash_tau, S->dsteps[1], S->block);
    if (!isnan(pol->max_ppl_ratio) && !(ratio <= pol->max_ppl_ratio))
        model_fail(fails, sizeof(fails), &nfail,
                   "perplexity ratio artifact/source %.4f above %.4f (artifact %.4g, source %.4g on %zu tokens %s)",
                   ratio, pol->max_ppl_ratio, S->ppl_art, S->ppl_src, S->seq.n - S->seq.scored_from, S->seq.origin);
    uint32_t lowest = 0, nbad = 0, first_bad = 0;
    for (uint32_t l = 0; l < S->nhid; l++) {
        if (hid_cosine(&S->hid[l]) < hid_cosine(&S->hid[lowest]))
            lowest = l;
        if (!isnan(pol->min_layer_hidden_cosine) && !(hid_cosine(&S->hid[l]) >= pol->min_layer_hidden_cosine) &&
            !nbad++)
            first_bad = l;
    }
    if (nbad) {
        char nm[64];
        hid_name(first_bad, S->nhid, nm, sizeof(nm));
        model_fail(fails, sizeof(fails), &nfail,
                   "hidden-state cosine below %.8f in %u of %u hidden states; first: %s (hidden state %u) %.8f (lowest "
                   "position: prompt %zu position %zu, %.8f)", pol->min_layer_hidden_cosine, nbad, S->nhid, nm,
                   first_bad, hid_cosine(&S->hid[first_bad]), S->hid[first_bad].min_prompt, S->hid[first_bad].min_pos,
                   S->hid[first_bad].min_cos);
        /* The whole profile: where the divergence starts and how it grows. */
        for (uint32_t l = 0; l < S->nhid; l++) {
            hid_name(l, S->nhid, nm, sizeof(nm));
            fprintf(stderr, "mimo-verify: model:   hidden state %2u %-18s cosine %.8f (lowest position %.8f at prompt "
                            "%zu position %zu)%s\n", l, nm, hid_cosine(&S->hid[l]), S->hid[l].min_cos,
                    S->hid[l].min_prompt, S->hid[l].min_pos,
                    hid_cosine(&S->hid[l]) >= pol->min_layer_hidden_cosine ? "" : "  FAIL");
        }
    }
    char lname[64];
    hid_name(lowest, S->nhid, lname, sizeof(lname));
    if (nfail)
        result(ci, 0, "%zu of %zu model criteria failed: %s", nfail, nactive, fails);
    else {
        char th[300] = "";
        const struct { const char *what; double v; } set[] = {
            {"top-1 >= ", pol->min_top1_agreement}, {"mean KL <= ", pol->max_mean_kl}, {"max KL <= ", pol->max_kl},
            {"ratio <= ", pol->max_ppl_ratio}, {"cosine >= ", pol->min_layer_hidden_cosine},
            {"tau ratio >= ", pol->min_dflash_tau_ratio}, {"tau >= ", pol->min_dflash_tau}};
        for (size_t k = 0; k < sizeof(set) / sizeof(set[0]); k++)
            if (!isnan(set[k].v)) {
                size_t l = strlen(th);
                snprintf(th + l, sizeof(th) - l, "%s%s%g", l ? ", " : "", set[k].what, set[k].v);
            }
        char dfl[200];
        if (S->dflash)
            snprintf(dfl, sizeof(dfl), "DFlash tau artifact %.3f / source %.3f (block %u, %zu + %zu steps)", S->tau[1],
                     S->tau[0], S->block, S->dsteps[1], S->dsteps[0]);
        else
            snprintf(dfl, sizeof(dfl), "DFlash not compared (%.150s)", S->dflash_why[0] ? S->dflash_why : "dflash_tokens 0");
        result(ci, 1, "%zu prompts, %zu positions: top-1 agreement %.4f, KL(source||artifact) mean %.3g max %.3g nats; "
                      "perplexity artifact %.4g / source %.4g = %.4f (%zu tokens %s); hidden-state cosine lowest %.8f "
                      "(%s); %s; %.2f s (thresholds: %s)",
               np, S->positions, top1, mean_kl, S->kl_max, S->ppl_art, S->ppl_src, ratio, S->seq.n - S->seq.scored_from,
               S->seq.origin, hid_cosine(&S->hid[lowest]), lname, dfl, S->seconds, th[0] ? th : "none set");
    }
done:
    if (!g_have_model)
        model_stats_free(S);
    free(ids), free(starts), free(P.ps), free(P.hid), free(P.st), free(P.err), free(P.in_artifact), free(P.scr);
    rt_model_close(ma);
    rt_model_close(ms);
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

/* The per-layer chart. Without the model check: one SQNR bar per layer (from the accuracy check,
 * or else from the artifact's own report). With it, the columns are the hidden states the model
 * check compares (embeddings, the output of each layer, the final-normed state, which follows the
 * last layer), each layer's SQNR bar stands in the column of that layer's output, and the
 * hidden-state cosine (artifact vs source) is a line on a right-hand axis with its threshold. */
static int write_html(const char *path, const char *artifact, int verdict, const policy *pol)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    static double sq[4096], csq[4096], ccos[4096];
    static char names[4096][128], cname[4096][128], ckey[4096][128];
    static int chas[4096];
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
        if (lq_json_parse_file(rp, LQ_OUTPUT_JSON_MAX_BYTES, NULL, &r, &err) == LQ_OK) {
            origin = "from the artifact's mimo-quant-report.json";
            const cJSON *e;
            cJSON_ArrayForEach(e, lq_json_get(r, "layers")) {
                const char *ln = cJSON_GetStringValue(lq_json_get(e, "layer"));
                if (nl >= 4096 || !ln)
                    continue;
                sq[nl] = cJSON_GetNumberValue(lq_json_get(e, "sqnr_db"));
                snprintf(names[nl++], 128, "%s", ln);
            }
            cJSON_Delete(r);
        }
    }
    /* The columns. */
    size_t nc = 0;
    int with_cos = g_have_model && g_model.nhid <= 4096;
    if (with_cos) {
        nc = g_model.nhid;
        for (size_t i = 0; i < nc; i++) {
            hid_name((uint32_t)i, g_model.nhid, cname[i], 128);
            ccos[i] = hid_cosine(&g_model.hid[i]);
            chas[i] = 0;
        }
        for (size_t k = 0; k < nl; k++) {
            unsigned layer;
            char tail;
            if (sscanf(names[k], "model.layers.%u%c", &layer, &tail) == 1 && (size_t)layer + 1 < nc) {
                csq[layer + 1] = sq[k];
                chas[layer + 1] = 1;
                snprintf(ckey[layer + 1], 128, "%.100s", names[k]);
            }
        }
    } else {
        nc = nl;
        for (size_t i = 0; i < nc; i++) {
            snprintf(cname[i], 128, "%s", names[i]);
            snprintf(ckey[i], 128, "%s", names[i]);
            csq[i] = sq[i];
            chas[i] = 1;
            ccos[i] = NAN;
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
    if (nc) {
        /* Bars scaled between 0 and the largest SQNR (at least 25 dB). The cosine axis runs from a
         * little below the lowest of the cosines and the threshold up to 1. */
        double top = 25;
        for (size_t i = 0; i < nc; i++)
            top = chas[i] && csq[i] > top && isfinite(csq[i]) ? csq[i] : top;
        double clo = 1;
        if (with_cos) {
            for (size_t i = 0; i < nc; i++)
                clo = ccos[i] < clo ? ccos[i] : clo;
            if (!isnan(pol->min_layer_hidden_cosine) && pol->min_layer_hidden_cosine < clo)
                clo = pol->min_layer_hidden_cosine;
            double d = 1 - clo > 0 ? 1 - clo : 1e-6;
            clo = 1 - 1.25 * d;
        }
        int W = 40 + (int)nc * 18 + (with_cos ? 80 : 0), H = 260;
        double xr = 40 + (double)nc * 18 + 4; /* the right-hand axis */
        if (with_cos)
            fprintf(f, "<h2>MXFP4 SQNR per layer (dB, %s) and hidden-state cosine (artifact vs source)</h2>\n"
                       "<p>Bars: SQNR of each layer's MXFP4 tensors (left axis). Line: cosine between the artifact's "
                       "and the source's hidden states after each layer, pooled over every prompt position (right "
                       "axis; dashed: the policy's min_layer_hidden_cosine).</p>\n", origin[0] ? origin : "no --source");
        else
            fprintf(f, "<h2>MXFP4 SQNR per layer (dB, %s)</h2>\n", origin);
        fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\">\n", W, H + 90);
        fprintf(f, "<line x1=\"35\" y1=\"10\" x2=\"35\" y2=\"%d\" stroke=\"#000\"/>\n", H + 10);
        for (int tick = 0; tick <= (int)top; tick += 5) {
            double y = 10 + H - H * tick / top;
            fprintf(f, "<text x=\"2\" y=\"%.1f\" font-size=\"10\">%d</text><line x1=\"33\" y1=\"%.1f\" x2=\"%.1f\" "
                       "y2=\"%.1f\" stroke=\"#ddd\"/>\n", y + 3, tick, y, with_cos ? xr : (double)W, y);
        }
        for (size_t i = 0; i < nc; i++) {
            double x = 40 + (double)i * 18;
            if (chas[i]) {
                double v = isfinite(csq[i]) ? csq[i] : top;
                double h = H * (v < 0 ? 0 : v) / top;
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"#4a7\"><title>", x,
                        10 + H - h, h);
                html_text(f, ckey[i]); /* the layer whose tensors the bar measures */
                fprintf(f, ": %.3f dB</title></rect>\n", csq[i]);
            }
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" transform=\"rotate(60 %.1f %d)\">", x + 3, H + 22,
                    x + 3, H + 22);
            const char *short_name = strrchr(cname[i], '.');
            html_text(f, short_name ? short_name + 1 : cname[i]);
            fprintf(f, "</text>\n");
        }
        if (with_cos) {
            fprintf(f, "<line x1=\"%.1f\" y1=\"10\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c33\"/>\n", xr, xr, H + 10);
            for (int tick = 0; tick <= 4; tick++) {
                double c = clo + (1 - clo) * tick / 4, y = 10 + H - H * tick / 4.0;
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#c33\">%.6f</text>\n", xr + 4, y + 3, c);
            }
            if (!isnan(pol->min_layer_hidden_cosine)) {
                double y = 10 + H - H * (pol->min_layer_hidden_cosine - clo) / (1 - clo);
                fprintf(f, "<line class=\"cosine-threshold\" x1=\"35\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" "
                           "stroke-dasharray=\"4 3\"><title>min_layer_hidden_cosine %.6f</title></line>\n", y, xr, y,
                        pol->min_layer_hidden_cosine);
            }
            fprintf(f, "<polyline class=\"cosine\" fill=\"none\" stroke=\"#c33\" stroke-width=\"1.5\" points=\"");
            for (size_t i = 0; i < nc; i++)
                fprintf(f, "%s%.1f,%.1f", i ? " " : "", 40 + (double)i * 18 + 7, 10 + H - H * (ccos[i] - clo) / (1 - clo));
            fprintf(f, "\"/>\n");
            for (size_t i = 0; i < nc; i++) {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#c33\"><title>", 40 + (double)i * 18 + 7,
                        10 + H - H * (ccos[i] - clo) / (1 - clo));
                html_text(f, cname[i]);
                fprintf(f, ": hidden-state cosine %.8f</title></circle>\n", ccos[i]);
            }
        }
        fprintf(f, "</svg>\n");
    }
    if (g_have_model) {
        const model_stats *S = &g_model;
        fprintf(f, "<h2>Model check (artifact vs source through the CPU runtime)</h2>\n<table class=\"model\">\n"
                   "<tr><td>top-1 agreement</td><td>%.6f</td><td>%zu of %zu positions</td></tr>\n"
                   "<tr><td>KL(source||artifact), nats</td><td>mean %.6g</td><td>max %.6g (prompt %zu position %zu)</td></tr>\n"
                   "<tr><td>perplexity</td><td>artifact %.6g, source %.6g</td><td>ratio %.6f on %zu tokens (",
                (double)S->agree / (double)S->positions, S->agree, S->positions, S->kl_sum / (double)S->positions,
                S->kl_max, S->kl_max_prompt, S->kl_max_pos, S->ppl_art, S->ppl_src, S->ppl_art / S->ppl_src,
                S->seq.n - S->seq.scored_from);
        html_text(f, S->seq.origin);
        fprintf(f, ")</td></tr>\n");
        for (uint32_t l = 0; l < S->nhid; l++) {
            char nm[64];
            hid_name(l, S->nhid, nm, sizeof(nm));
            fprintf(f, "<tr><td>hidden-state cosine %s</td><td>%.8f</td><td>lowest position %.8f (prompt %zu position "
                       "%zu)</td></tr>\n", nm, hid_cosine(&S->hid[l]), S->hid[l].min_cos, S->hid[l].min_prompt,
                    S->hid[l].min_pos);
        }
        fprintf(f, "</table>\n");
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

/* The model check's figures ("model" in the report; docs/cli.md lists the fields). */
static void put_model(lq_jw *w)
{
    const model_stats *S = &g_model;
    lq_jw_key(w, "model");
    lq_jw_begin_object(w);
    lq_jw_key(w, "positions");
    lq_jw_u64(w, S->positions);
    lq_jw_key(w, "top1_agreement");
    lq_jw_double(w, (double)S->agree / (double)S->positions, 8);
    lq_jw_key(w, "mean_kl");
    lq_jw_double(w, S->kl_sum / (double)S->positions, 8);
    lq_jw_key(w, "max_kl");
    lq_jw_double(w, S->kl_max, 8);
    lq_jw_key(w, "max_kl_prompt");
    lq_jw_u64(w, S->kl_max_prompt);
    lq_jw_key(w, "max_kl_position");
    lq_jw_u64(w, S->kl_max_pos);
    lq_jw_key(w, "prompts");
    lq_jw_begin_array(w);
    for (size_t p = 0; p < S->nprompts; p++) {
        const prompt_stat *ps = &S->pr[p];
        lq_jw_begin_object(w);
        lq_jw_key(w, "length");
        lq_jw_u64(w, ps->len);
        lq_jw_key(w, "top1_agreement");
        lq_jw_double(w, (double)ps->agree / (double)ps->len, 8);
        lq_jw_key(w, "first_disagreement");
        if (ps->first_disagree < ps->len)
            lq_jw_u64(w, ps->first_disagree);
        else
            lq_jw_null(w);
        lq_jw_key(w, "mean_kl");
        lq_jw_double(w, ps->kl_sum / (double)ps->len, 8);
        lq_jw_key(w, "max_kl");
        lq_jw_double(w, ps->kl_max, 8);
        lq_jw_key(w, "max_kl_position");
        lq_jw_u64(w, ps->kl_max_pos);
        lq_jw_key(w, "ids");
        lq_jw_begin_array(w);
        for (size_t i = S->starts[p]; i < S->starts[p + 1]; i++)
            lq_jw_u64(w, (uint64_t)S->ids[i]);
        lq_jw_end_array(w);
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_key(w, "perplexity");
    lq_jw_begin_object(w);
    lq_jw_key(w, "origin");
    lq_jw_string(w, S->seq.origin);
    lq_jw_key(w, "temperature"); /* of the sampling; null for a text */
    if (strcmp(S->seq.origin, "text") == 0)
        lq_jw_null(w);
    else
        lq_jw_double(w, 1.0, 3);
    lq_jw_key(w, "prefix_tokens");
    lq_jw_u64(w, S->seq.scored_from);
    lq_jw_key(w, "tokens");
    lq_jw_u64(w, S->seq.n - S->seq.scored_from);
    lq_jw_key(w, "source");
    lq_jw_double(w, S->ppl_src, 8);
    lq_jw_key(w, "artifact");
    lq_jw_double(w, S->ppl_art, 8);
    lq_jw_key(w, "ratio");
    lq_jw_double(w, S->ppl_art / S->ppl_src, 8);
    lq_jw_key(w, "ids");
    lq_jw_begin_array(w);
    for (size_t i = 0; i < S->seq.n; i++)
        lq_jw_u64(w, (uint64_t)S->seq.ids[i]);
    lq_jw_end_array(w);
    lq_jw_end_object(w);
    lq_jw_key(w, "dflash");
    if (!S->dflash)
        lq_jw_null(w);
    else {
        lq_jw_begin_object(w);
        lq_jw_key(w, "block_size");
        lq_jw_u64(w, S->block);
        lq_jw_key(w, "drafters");
        lq_jw_string(w, S->dflash_why);
        const char *side[2] = {"source", "artifact"};
        for (int i = 0; i < 2; i++) {
            lq_jw_key(w, side[i]);
            lq_jw_begin_object(w);
            lq_jw_key(w, "tau");
            lq_jw_double(w, S->tau[i], 6);
            lq_jw_key(w, "steps");
            lq_jw_u64(w, S->dsteps[i]);
            lq_jw_key(w, "tokens");
            lq_jw_u64(w, S->dtokens[i]);
            lq_jw_key(w, "accept_hist");
            lq_jw_begin_array(w);
            for (uint32_t b = 1; b <= S->block && b <= RT_MAX_BLOCK; b++)
                lq_jw_u64(w, S->dhist[i][b]);
            lq_jw_end_array(w);
            lq_jw_end_object(w);
        }
        lq_jw_key(w, "tau_ratio");
        lq_jw_double(w, S->tau[0] > 0 ? S->tau[1] / S->tau[0] : 0, 6);
        lq_jw_end_object(w);
    }
    lq_jw_key(w, "hidden_cosine");
    lq_jw_begin_array(w);
    for (uint32_t l = 0; l < S->nhid; l++) {
        char nm[64];
        hid_name(l, S->nhid, nm, sizeof(nm));
        lq_jw_begin_object(w);
        lq_jw_key(w, "index");
        lq_jw_u64(w, l);
        lq_jw_key(w, "state");
        lq_jw_string(w, nm);
        lq_jw_key(w, "cosine");
        lq_jw_double(w, hid_cosine(&S->hid[l]), 10);
        lq_jw_key(w, "min_position_cosine");
        lq_jw_double(w, S->hid[l].min_cos, 10);
        lq_jw_key(w, "min_prompt");
        lq_jw_u64(w, S->hid[l].min_prompt);
        lq_jw_key(w, "min_position");
        lq_jw_u64(w, S->hid[l].min_pos);
        lq_jw_end_object(w);
    }
    lq_jw_end_array(w);
    lq_jw_key(w, "seconds");
    lq_jw_double(w, S->seconds, 4);
    lq_jw_end_object(w);
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
    lq_jw_key(w, "thresholds");
    lq_jw_begin_object(w);
    for (size_t k = 0; k < NTHRESHOLDS; k++) {
        lq_jw_key(w, threshold_keys[k].key);
        lq_jw_double(w, threshold_val(pol, k), 8); /* null when not set */
    }
    lq_jw_end_object(w);
    lq_jw_key(w, "model"); /* the settings of the model check in force; null: the check does not run */
    if (pol->model.enabled) {
        const model_policy *mp = &pol->model;
        lq_jw_begin_object(w);
        lq_jw_key(w, "prompts");
        lq_jw_u64(w, mp->prompts);
        if (mp->ids) {
            lq_jw_key(w, "prompt_ids");
            lq_jw_begin_array(w);
            for (size_t p = 0; p < mp->prompts; p++) {
                lq_jw_begin_array(w);
                for (size_t i = mp->starts[p]; i < mp->starts[p + 1]; i++)
                    lq_jw_u64(w, (uint64_t)mp->ids[i]);
                lq_jw_end_array(w);
            }
            lq_jw_end_array(w);
        } else {
            lq_jw_key(w, "prompt_length");
            lq_jw_u64(w, mp->prompt_length);
            lq_jw_key(w, "seed");
            lq_jw_u64(w, mp->seed);
        }
        lq_jw_key(w, "continuation_length");
        lq_jw_u64(w, mp->continuation_length);
        lq_jw_key(w, "sample_seed");
        lq_jw_u64(w, mp->sample_seed);
        lq_jw_key(w, "dflash_tokens");
        lq_jw_u64(w, mp->dflash_tokens);
        lq_jw_key(w, "text");
        if (mp->text)
            lq_jw_string(w, mp->text);
        else
            lq_jw_null(w);
        lq_jw_end_object(w);
    } else {
        lq_jw_null(w);
    }
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
    if (g_have_model)
        put_model(w);
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
        policy_free(&pol);
        return 3;
    }
    int unreadable = 0, man_ok = 0, parsed = 0;
    char buf[1400];
    lq_error err;
    cJSON *man = check_manifest(artifact, &parsed, &man_ok);
    if (!man_ok)
        unreadable = 1;
    if (enabled[check_index("integrity")] && man_ok)
        check_integrity(artifact, man, threads);
    if (enabled[check_index("signature")])
        check_signature(artifact, pubkey);
    lq_ckpt *ck = NULL;
    int ci = check_index("container");
    if (enabled[ci] || enabled[check_index("tensors")] || enabled[check_index("inventory")] || enabled[check_index("values")] ||
        enabled[check_index("drafter")] || enabled[check_index("accuracy")] || enabled[check_index("model")]) {
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
    if (ck && enabled[check_index("values")])
        check_values(artifact, threads);
    if (have_mc && enabled[check_index("drafter")])
        check_drafter(artifact, &mc);
    if (have_mc)
        lq_mimo_config_free(&mc);
    int ai = check_index("accuracy");
    if (enabled[ai] && ck && source)
        check_accuracy(ck, source, &pol, threads);
    else if (enabled[ai])
        snprintf(checks[ai].detail, sizeof(checks[ai].detail), "no --source given");
    int mdi = check_index("model");
    if (enabled[mdi] && ck && source && pol.model.enabled)
        check_model(artifact, source, &pol, threads);
    else if (enabled[mdi])
        snprintf(checks[mdi].detail, sizeof(checks[mdi].detail), "%s",
                 !source ? "no --source given"
                 : !pol.model.enabled ? "the policy has no \"model\" section"
                                      : "the artifact's checkpoint cannot be opened");
    /* A required check that could not run fails the gate too. */
    for (size_t i = 0; i < NCHECKS; i++)
        if (enabled[i] && pol.required[i] && !checks[i].ran) {
            char why[sizeof(checks[i].detail)]; /* result() writes into detail: copy it first */
            snprintf(why, sizeof(why), "%s", checks[i].detail[0] ? checks[i].detail : "skipped");
            result((int)i, 0, "required by the policy but not run (%s)", why);
        }

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
    if (html && write_html(html, artifact, rc, &pol) != 0) {
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
    model_stats_free(&g_model);
    policy_free(&pol);
    return rc;
}
