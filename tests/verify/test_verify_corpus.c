/* mimo-verify against a corpus of broken artifacts.
 * usage: test_verify_corpus MKFIXTURE QUANTIZE VERIFY [--known-bugs]
 *
 * One clean tiny FP8 artifact (mimo-mkfixture + mimo-quantize, 4 MB shards, signed with an
 * Ed25519 key made by the openssl CLI when it is installed) must pass every check (exit 0).
 * Then each case below breaks one hard-linked copy of it in one way and asserts the exit code
 * tools/mimo-verify.c documents (1: a check failed, 3: unreadable), which check line says FAIL,
 * and the rule id or text naming the problem (rule ids from libquant/checkpoint.h,
 * safetensors.h, inventory.h, drafter.h, sign.h).
 *
 * mimo-verify checks integrity against the manifest first, so a byte-level corruption is always
 * caught there. To prove that the deeper checks (container, tensors, inventory, drafter) catch a
 * problem on their own, most cases also rewrite mimo-manifest.json ("files" sizes and SHA-256,
 * and the "tensors" list when the checkpoint still opens) and re-sign it: such a case must show
 * "integrity PASS" (and "signature PASS" with the key) and the FAIL on the deeper check.
 * Shards are rewritten with the library's safetensors writer and the index with lq_index_write,
 * so everything except the intended defect obeys the format rules.
 * All artifacts live under one mkdtemp root that is removed at the end. */
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "libquant/libquant.h"

static char root[] = "/tmp/mimo-vcorpus-XXXXXX";
static const char *VER;
static int have_key;
static lq_ckpt *clean_ck; /* the clean artifact, to find which shard holds a tensor */

static int sh(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void path_of(char *buf, size_t cap, const char *name, const char *rel)
{
    snprintf(buf, cap, "%s/%s%s%s", root, name, rel ? "/" : "", rel ? rel : "");
}

/* Runs mimo-verify on root/NAME (with --pubkey when a key exists and pub is set) plus extra
 * args; stdout and stderr together go to root/NAME.log; returns the exit code. */
static int verify_ex(const char *name, int pub, const char *extra)
{
    char pk[1200] = "";
    if (pub && have_key)
        snprintf(pk, sizeof(pk), "--pubkey '%s/pub.pem'", root);
    return sh("'%s' '%s/%s' %s %s > '%s/%s.log' 2>&1", VER, root, name, pk, extra ? extra : "", root, name);
}

static int verify(const char *name, int pub) { return verify_ex(name, pub, NULL); }

static int log_has(const char *name, const char *needle)
{
    return sh("grep -qF -- '%s' '%s/%s.log'", needle, root, name) == 0;
}

/* The check's result line, as mimo-verify prints it ("%-10s %s"). */
static int line_is(const char *name, const char *check, const char *status)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "%-10s %s", check, status);
    return log_has(name, needle);
}

static void show_log_on_failure(const char *name, int before)
{
    if (th_failures > before)
        sh("echo '--- %s.log:' >&2; cat '%s/%s.log' >&2", name, root, name);
}

/* A hard-linked copy of the clean artifact: files are replaced by atomic rename (which leaves
 * the clean inode alone) or made private first with own(). */
static void clone(const char *name)
{
    CHECK(sh("cp -al '%s/clean' '%s/%s'", root, root, name) == 0);
}

static void own(const char *name, const char *rel)
{
    char p[4096];
    path_of(p, sizeof(p), name, rel);
    CHECK(sh("cp '%s' '%s.own' && mv '%s.own' '%s'", p, p, p, p) == 0);
}

/* ---- shard rewriting ---- */

typedef void (*mutate_fn)(uint8_t *data, const lq_tensor_info *t);

typedef struct edit {
    const char *tensor;      /* the tensor edited */
    int drop;                /* leave it out */
    const char *copy_as;     /* also store a copy of it under this name */
    lq_dtype dtype;          /* nonzero: declare it with this dtype (same byte size) */
    uint32_t rank;           /* nonzero: declare it with this shape (same byte size) */
    uint64_t shape[4];
    mutate_fn mutate;        /* change its bytes (on a copy) */
} edit;

/* Rewrites the shard at path with the edits whose tensor it holds; returns the number applied. */
static int rewrite_shard(const char *path, const edit *ed, size_t ned)
{
    lq_st_file *f = NULL;
    lq_stw *w = NULL;
    lq_error err;
    int applied = 0, ok = 0;
    uint8_t *tmp = NULL;
    if (lq_st_open(path, NULL, &f, &err) != LQ_OK || lq_stw_create(path, &w, &err) != LQ_OK)
        goto cleanup;
    for (size_t i = 0; i < lq_st_metadata_count(f); i++) {
        const char *k, *v;
        lq_st_metadata_at(f, i, &k, &v);
        if (lq_stw_set_metadata(w, k, v, &err) != LQ_OK)
            goto cleanup;
    }
    for (size_t i = 0; i < lq_st_count(f); i++) {
        const lq_tensor_info *t = lq_st_tensor(f, i);
        const edit *e = NULL;
        for (size_t k = 0; k < ned; k++)
            if (!strcmp(ed[k].tensor, t->name))
                e = &ed[k];
        applied += e != NULL;
        if (e && e->drop)
            continue;
        lq_dtype dt = e && e->dtype ? e->dtype : t->dtype;
        uint32_t rank = e && e->rank ? e->rank : t->rank;
        const uint64_t *shape = e && e->rank ? e->shape : t->shape;
        if (lq_stw_add(w, t->name, dt, rank, shape, &err) != LQ_OK)
            goto cleanup;
        if (e && e->copy_as && lq_stw_add(w, e->copy_as, dt, rank, shape, &err) != LQ_OK)
            goto cleanup;
    }
    if (lq_stw_begin(w, &err) != LQ_OK)
        goto cleanup;
    for (size_t i = 0; i < lq_stw_count(w); i++) {
        const lq_tensor_info *o = lq_stw_tensor(w, i);
        const char *src = o->name;
        const edit *e = NULL;
        for (size_t k = 0; k < ned; k++) {
            if (ed[k].copy_as && !strcmp(ed[k].copy_as, o->name))
                src = ed[k].tensor;
            else if (!strcmp(ed[k].tensor, o->name))
                e = &ed[k];
        }
        const lq_tensor_info *t = lq_st_find(f, src);
        if (!t || t->nbytes != o->nbytes)
            goto cleanup;
        const uint8_t *data = lq_st_data(f, t);
        if (e && e->mutate) {
            free(tmp);
            tmp = malloc(t->nbytes ? t->nbytes : 1);
            if (!tmp)
                goto cleanup;
            memcpy(tmp, data, t->nbytes);
            e->mutate(tmp, t);
            data = tmp;
        }
        if (lq_stw_write_tensor(w, o->name, data, o->nbytes, &err) != LQ_OK)
            goto cleanup;
    }
    ok = 1;
cleanup:
    if (ok) {
        ok = lq_stw_finish(w, NULL, NULL, &err) == LQ_OK;
    } else {
        char buf[1400];
        fprintf(stderr, "rewrite %s: %s\n", path, lq_error_format(&err, buf, sizeof(buf)));
        lq_stw_abort(w);
    }
    free(tmp);
    lq_st_close(f);
    return ok ? applied : -1;
}

/* Applies edits on backbone tensors of case NAME (each shard that holds one is rewritten). */
static void edit_backbone(const char *name, const edit *ed, size_t ned)
{
    int done = 0;
    for (size_t s = 0; s < lq_ckpt_shard_count(clean_ck); s++) {
        int has = 0;
        lq_ckpt_tensor ct;
        for (size_t k = 0; k < ned; k++)
            has |= lq_ckpt_find(clean_ck, ed[k].tensor, &ct) == 0 && ct.shard == s;
        if (!has)
            continue;
        char p[4096];
        path_of(p, sizeof(p), name, lq_ckpt_shard_name(clean_ck, s));
        int n = rewrite_shard(p, ed, ned);
        CHECK(n > 0);
        done += n > 0 ? n : 0;
    }
    CHECK_EQ_U64(done, ned);
}

/* Rebuilds DIR/model.safetensors.index.json from the shards it names (weight_map, total_size;
 * other metadata kept), as after a legitimate re-shard. */
static void fix_index(const char *dir)
{
    char ip[4096];
    snprintf(ip, sizeof(ip), "%s/model.safetensors.index.json", dir);
    cJSON *idx = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(ip, 0, NULL, &idx, &err) == LQ_OK);
    const char *shards[64];
    lq_st_file *sf[64] = {0};
    size_t ns = 0, n = 0, cap = 0;
    const char **names = NULL, **files = NULL;
    uint64_t total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lq_json_get(idx, "weight_map")) {
        const char *file = cJSON_GetStringValue(e);
        size_t k = 0;
        while (k < ns && strcmp(shards[k], file) != 0)
            k++;
        if (k == ns && ns < 64)
            shards[ns++] = file;
    }
    for (size_t k = 0; k < ns; k++) {
        char sp[8192];
        snprintf(sp, sizeof(sp), "%s/%s", dir, shards[k]);
        CHECK(lq_st_open(sp, NULL, &sf[k], &err) == LQ_OK);
        for (size_t i = 0; sf[k] && i < lq_st_count(sf[k]); i++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                names = realloc(names, cap * sizeof(*names));
                files = realloc(files, cap * sizeof(*files));
            }
            names[n] = lq_st_tensor(sf[k], i)->name;
            files[n++] = shards[k];
            total += lq_st_tensor(sf[k], i)->nbytes;
        }
    }
    cJSON *extra = cJSON_Duplicate(lq_json_get(idx, "metadata"), 1);
    cJSON_DeleteItemFromObjectCaseSensitive(extra, "total_size");
    CHECK(lq_index_write(ip, names, files, n, total, extra, NULL, &err) == LQ_OK);
    cJSON_Delete(extra);
    for (size_t k = 0; k < ns; k++)
        lq_st_close(sf[k]);
    free(names);
    free(files);
    cJSON_Delete(idx);
}

/* Rewrites NAME's manifest so that it describes the files as they now are (every "files"
 * entry's size and SHA-256; with tensors set, the "tensors" list from the opened checkpoint)
 * and re-signs it with the test key: the artifact then looks released as it is. */
static void remanifest(const char *name, int tensors)
{
    char mp[4096], dir[4096];
    path_of(dir, sizeof(dir), name, NULL);
    path_of(mp, sizeof(mp), name, LQ_MANIFEST_FILE);
    cJSON *man = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(mp, 0, NULL, &man, &err) == LQ_OK);
    if (!man)
        return;
    cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(man, "files")) {
        char p[8192];
        snprintf(p, sizeof(p), "%s/%s", dir, cJSON_GetStringValue(lq_json_get(f, "path")));
        FILE *fp = fopen(p, "rb");
        if (!fp)
            continue; /* a deleted file stays listed as it was */
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        uint8_t *buf = malloc((size_t)len + 1);
        CHECK(buf && fread(buf, 1, (size_t)len, fp) == (size_t)len);
        fclose(fp);
        uint8_t d[32];
        char hex[65];
        lq_sha256(buf, (size_t)len, d);
        lq_hex(d, 32, hex);
        free(buf);
        cJSON_ReplaceItemInObjectCaseSensitive(f, "size", cJSON_CreateNumber((double)len));
        cJSON_ReplaceItemInObjectCaseSensitive(f, "sha256", cJSON_CreateString(hex));
    }
    if (tensors) {
        lq_ckpt *ck = NULL;
        CHECK(lq_ckpt_open(dir, NULL, &ck, &err) == LQ_OK);
        cJSON *ts = cJSON_CreateArray();
        for (size_t i = 0; ck && i < lq_ckpt_count(ck); i++) {
            lq_ckpt_tensor t = lq_ckpt_at(ck, i);
            cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
            cJSON_AddStringToObject(o, "name", t.info->name);
            cJSON_AddStringToObject(o, "dtype", lq_dtype_name(t.info->dtype));
            for (uint32_t k = 0; k < t.info->rank; k++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t.info->shape[k]));
            cJSON_AddItemToObject(o, "shape", shape);
            cJSON_AddStringToObject(o, "file", lq_ckpt_shard_name(ck, t.shard));
            cJSON_AddItemToArray(ts, o);
        }
        cJSON_ReplaceItemInObjectCaseSensitive(man, "tensors", ts);
        lq_ckpt_close(ck);
    }
    char *text = cJSON_Print(man);
    CHECK(text && lq_write_file_atomic(mp, text, strlen(text), NULL, &err) == LQ_OK);
    if (have_key && text) {
        char kp[4096], sp[4096];
        uint8_t sig[64], pub[32];
        snprintf(kp, sizeof(kp), "%s/key.pem", root);
        path_of(sp, sizeof(sp), name, LQ_SIGNATURE_FILE);
        CHECK(lq_ed25519_sign(kp, text, strlen(text), sig, &err) == LQ_OK);
        CHECK(lq_ed25519_public_from_private(kp, pub, &err) == LQ_OK);
        CHECK(lq_sig_write(sp, sig, pub, &err) == LQ_OK);
    }
    free(text);
    cJSON_Delete(man);
}

/* Parses NAME/REL as JSON, lets fn change it, writes it back atomically. */
static void edit_json(const char *name, const char *rel, void (*fn)(cJSON *))
{
    char p[4096];
    path_of(p, sizeof(p), name, rel);
    cJSON *j = NULL;
    lq_error err;
    CHECK(lq_json_parse_file(p, 0, NULL, &j, &err) == LQ_OK);
    if (!j)
        return;
    fn(j);
    char *text = cJSON_Print(j);
    CHECK(text && lq_write_file_atomic(p, text, strlen(text), NULL, &err) == LQ_OK);
    free(text);
    cJSON_Delete(j);
}

/* ---- the edits ---- */

static void set_num(cJSON *obj, const char *key, double v)
{
    CHECK(lq_json_get(obj, key) != NULL);
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, cJSON_CreateNumber(v));
}

/* 16 -> 32 routed experts: the router gate [E, H] no longer fits (INV_SHAPE) and experts
 * 16..31 are absent (INV_MISSING). */
static void cfg_experts(cJSON *c) { set_num(c, "n_routed_experts", 32); }
/* hidden 256 -> 512: every [.., H] tensor has the wrong shape; the drafter's hidden no longer
 * matches its target (DF_HIDDEN). */
static void cfg_hidden(cJSON *c) { set_num(c, "hidden_size", 512); }
static void cfg_store_dtype(cJSON *c)
{
    cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    CHECK(lq_json_get(q, "store_dtype") != NULL);
    cJSON_DeleteItemFromObjectCaseSensitive(q, "store_dtype");
}
/* The target has 12 layers (tiny preset, config.json): tap 12 is out of range. */
static void df_taps(cJSON *c)
{
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "dflash_config"),
                                                  "target_layer_ids");
    int n = cJSON_GetArraySize(ids);
    CHECK(n > 0);
    cJSON_ReplaceItemInArray(ids, n - 1, cJSON_CreateNumber(12));
}
/* mask_embedding.pt keeps the fixture's id 4095; 4000 is a valid id below vocab 4096. */
static void df_mask_4000(cJSON *c) { set_num(cJSON_GetObjectItemCaseSensitive(c, "dflash_config"), "mask_token_id", 4000); }
/* 5000 is not below the target's vocab_size 4096. */
static void df_mask_5000(cJSON *c) { set_num(cJSON_GetObjectItemCaseSensitive(c, "dflash_config"), "mask_token_id", 5000); }
/* A "files" entry without its "path" (a hand-edited or truncated manifest). */
static void man_no_path(cJSON *m)
{
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "files"), 0),
                                            "path");
}
/* The manifest's tensor list says F32 where the shard holds BF16. */
static void man_dtype(cJSON *m)
{
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(m, "tensors"))
        if (!strcmp(cJSON_GetStringValue(lq_json_get(t, "name")), "model.norm.weight"))
            cJSON_ReplaceItemInObjectCaseSensitive(t, "dtype", cJSON_CreateString("F32"));
}

/* Row 3 of an MXFP4 expert: weight bytes [N, K/2] and scale bytes [N, K/32], both zeroed. */
static void zero_row3(uint8_t *d, const lq_tensor_info *t) { memset(d + 3 * t->shape[1], 0, t->shape[1]); }
/* E8M0 0xFF is NaN (reference/mxfp4_formats.md; dtype.h lq_e8m0_to_f32). */
static void scale_nan(uint8_t *d, const lq_tensor_info *t) { d[1 * t->shape[1] + 0] = 0xFF; }

/* ---- report / JUnit outputs ---- */

/* Runs NAME again with --report/--junit; checks both files parse (JSON strictly, the XML's
 * testsuite line by text: tests/verify/junit_check.py parses it with xml.etree), the verdict,
 * and that CHECK_NAME's status is "fail". Returns the exit code. */
static int verify_outputs(const char *name, int pub, const char *check_name)
{
    char extra[9000], rp[4096], xp[4096];
    snprintf(rp, sizeof(rp), "%s/%s.report.json", root, name);
    snprintf(xp, sizeof(xp), "%s/%s.junit.xml", root, name);
    snprintf(extra, sizeof(extra), "--report '%s' --junit '%s'", rp, xp);
    int rc = verify_ex(name, pub, extra);
    cJSON *r = NULL;
    lq_error err;
    int nchecks = 0, nfail = 0, found = 0;
    CHECK(lq_json_parse_file(rp, 0, NULL, &r, &err) == LQ_OK);
    if (r) {
        CHECK_EQ_U64(lq_json_get(r, "schema_version") ? lq_json_get(r, "schema_version")->valuedouble : 0, 1);
        CHECK_STR(cJSON_GetStringValue(lq_json_get(r, "verdict")), rc == 0 ? "pass" : "fail");
        const cJSON *c;
        cJSON_ArrayForEach(c, lq_json_get(r, "checks")) {
            const char *st = cJSON_GetStringValue(lq_json_get(c, "status"));
            nchecks++;
            nfail += st && !strcmp(st, "fail");
            if (!strcmp(cJSON_GetStringValue(lq_json_get(c, "name")), check_name)) {
                found = 1;
                CHECK_STR(st, rc == 0 ? "pass" : "fail");
            }
        }
        cJSON_Delete(r);
    }
    /* At least the seven checks the brief lists (the tool may have more); the JUnit suite
     * counts the same checks and failures as the JSON report. */
    CHECK(found);
    CHECK(nchecks >= 7);
    CHECK(rc == 0 ? nfail == 0 : nfail >= 1);
    CHECK(sh("grep -q '<testsuite name=\"mimo-verify\" tests=\"%d\" failures=\"%d\"' '%s'", nchecks, nfail, xp) == 0);
    if (rc != 0)
        CHECK(sh("grep -q 'name=\"%s\"><failure message=' '%s'", check_name, xp) == 0);
    return rc;
}

/* A case broken so that only DEEP fails: integrity (and signature) must pass. */
static void expect_deep(const char *name, const char *deep, int code, const char *rule, const char *detail)
{
    int before = th_failures;
    CHECK_EQ_U64(verify(name, 1), code);
    CHECK(line_is(name, "integrity", "PASS"));
    if (have_key)
        CHECK(line_is(name, "signature", "PASS"));
    CHECK(line_is(name, deep, "FAIL"));
    CHECK(log_has(name, rule));
    if (detail)
        CHECK(log_has(name, detail));
    show_log_on_failure(name, before);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_verify_corpus MKFIXTURE QUANTIZE VERIFY [--known-bugs]\n");
        return 2;
    }
    VER = argv[3];
    CHECK(mkdtemp(root) != NULL);
    have_key = sh("command -v openssl >/dev/null") == 0;
    CHECK(sh("'%s' --preset tiny --variant fp8 --out '%s/src' -q > /dev/null", argv[1], root) == 0);
    if (have_key) {
        CHECK(sh("openssl genpkey -algorithm ed25519 -out '%s/key.pem' 2>/dev/null", root) == 0);
        CHECK(sh("openssl pkey -in '%s/key.pem' -pubout -out '%s/pub.pem' 2>/dev/null", root, root) == 0);
        CHECK(sh("openssl genpkey -algorithm ed25519 -out '%s/key2.pem' 2>/dev/null", root) == 0);
        CHECK(sh("openssl pkey -in '%s/key2.pem' -pubout -out '%s/pub2.pem' 2>/dev/null", root, root) == 0);
    } else {
        fprintf(stderr, "openssl CLI missing: signature cases not run, manifests not re-signed\n");
    }
    CHECK(sh("'%s' '%s/src' '%s/clean' -q --max-shard-size 4M %s%s%s > /dev/null", argv[2], root, root,
             have_key ? "--sign-key '" : "", have_key ? root : "", have_key ? "/key.pem'" : "") == 0);
    char cp[4096];
    path_of(cp, sizeof(cp), "clean", NULL);
    lq_error err;
    CHECK(lq_ckpt_open(cp, NULL, &clean_ck, &err) == LQ_OK);
    if (!clean_ck) {
        sh("rm -rf '%s'", root);
        return th_finish("test_verify_corpus");
    }
    /* The tiny preset has more than one shard at 4 MB (the cases below need two). */
    CHECK(lq_ckpt_shard_count(clean_ck) >= 2);
    int ncases = 0, before;

    /* A manifest "files" entry without "path" (it once crashed the unlisted-file scan) and one whose
     * path leaves the artifact are malformed manifests: exit 3, the manifest check names them. */
    clone("no_path");
    edit_json("no_path", LQ_MANIFEST_FILE, man_no_path);
    CHECK_EQ_U64(verify("no_path", 0), 3);
    CHECK(line_is("no_path", "manifest", "FAIL"));
    CHECK(log_has("no_path", "files[0]: needs a relative"));
    ncases++;
    clone("escape_path");
    CHECK(sh("sed -i 's#\"path\": \"config.json\"#\"path\": \"../clean/config.json\"#' '%s/escape_path/%s'",
             root, LQ_MANIFEST_FILE) == 0);
    CHECK_EQ_U64(verify("escape_path", 0), 3);
    CHECK(line_is("escape_path", "manifest", "FAIL"));
    ncases++;

    /* Clean: exit 0, every check PASS, outputs parse; the drafter check runs (not SKIP). */
    CHECK_EQ_U64(verify_outputs("clean", 1, "inventory"), 0);
    CHECK(log_has("clean", "verdict: PASS"));
    CHECK(line_is("clean", "drafter", "PASS"));
    CHECK(line_is("clean", "inventory", "PASS"));
    if (have_key)
        CHECK(line_is("clean", "signature", "PASS"));
    /* A clone re-manifested without changes still passes: the helper itself breaks nothing
     * (so every FAIL below comes from the one defect each case adds). */
    clone("identity");
    path_of(cp, sizeof(cp), "identity", NULL);
    fix_index(cp);
    remanifest("identity", 1);
    CHECK_EQ_U64(verify("identity", 1), 0);
    show_log_on_failure("identity", 0);

    const char *s2 = lq_ckpt_shard_name(clean_ck, 1);
    char rel[600];

    /* 1. A flipped byte in tensor data (1000 bytes into shard 2's data section). */
    before = th_failures;
    clone("flip_data");
    own("flip_data", s2);
    uint64_t hlen = lq_st_header_len(lq_ckpt_shard(clean_ck, 1));
    CHECK(sh("f='%s/flip_data/%s'; printf '\\377' | dd of=\"$f\" bs=1 seek=%llu conv=notrunc 2>/dev/null", root, s2,
             (unsigned long long)(8 + hlen + 1000)) == 0);
    CHECK_EQ_U64(verify_outputs("flip_data", 0, "integrity"), 1);
    CHECK(line_is("flip_data", "integrity", "FAIL"));
    CHECK(line_is("flip_data", "container", "PASS"));
    snprintf(rel, sizeof(rel), "%s: SHA-256", s2);
    CHECK(log_has("flip_data", rel));
    show_log_on_failure("flip_data", before);
    ncases++;

    /* 2. A flipped byte in a shard's header JSON: the 'd' of the first "dtype" key becomes 'D'
     * (0x64 ^ 0x20): integrity fails, and the reader rejects the entry keys (unreadable). */
    before = th_failures;
    clone("flip_header");
    own("flip_header", s2);
    CHECK(sh("f='%s/flip_header/%s'; off=$(head -c %llu \"$f\" | grep -boa '\"dtype\"' | head -1 | cut -d: -f1); "
             "test -n \"$off\" && printf 'D' | dd of=\"$f\" bs=1 seek=$((off + 1)) conv=notrunc 2>/dev/null",
             root, s2, (unsigned long long)(8 + hlen)) == 0);
    CHECK_EQ_U64(verify("flip_header", 0), 3);
    CHECK(line_is("flip_header", "integrity", "FAIL"));
    CHECK(line_is("flip_header", "container", "FAIL"));
    CHECK(log_has("flip_header", "ST_ENTRY_KEYS"));
    show_log_on_failure("flip_header", before);
    ncases++;

    /* 3. The same header flip with the manifest rewritten: the container check alone catches it. */
    clone("flip_header_man");
    own("flip_header_man", s2);
    CHECK(sh("cp '%s/flip_header/%s' '%s/flip_header_man/%s'", root, s2, root, s2) == 0);
    remanifest("flip_header_man", 0);
    expect_deep("flip_header_man", "container", 3, "ST_ENTRY_KEYS", s2);
    ncases++;

    /* 4. A truncated shard. */
    before = th_failures;
    clone("truncated");
    own("truncated", s2);
    CHECK(sh("truncate -s %llu '%s/truncated/%s'", (unsigned long long)(8 + hlen + 5000), root, s2) == 0);
    CHECK_EQ_U64(verify("truncated", 0), 3);
    CHECK(line_is("truncated", "integrity", "FAIL"));
    snprintf(rel, sizeof(rel), "%s: size %llu", s2, (unsigned long long)(8 + hlen + 5000));
    CHECK(log_has("truncated", rel));
    CHECK(log_has("truncated", "ST_TRUNCATED"));
    show_log_on_failure("truncated", before);
    ncases++;

    /* 5. A missing shard. */
    before = th_failures;
    clone("missing_shard");
    CHECK(sh("rm '%s/missing_shard/%s'", root, s2) == 0);
    CHECK_EQ_U64(verify("missing_shard", 0), 3);
    snprintf(rel, sizeof(rel), "%s: missing", s2);
    CHECK(log_has("missing_shard", rel));
    CHECK(log_has("missing_shard", "CKPT_SHARD_MISSING"));
    CHECK(line_is("missing_shard", "container", "FAIL"));
    show_log_on_failure("missing_shard", before);
    ncases++;

    /* 6. The index names a tensor its shard does not hold (re-manifested). */
    clone("index_absent");
    {
        edit e = {.tensor = "model.layers.2.input_layernorm.weight", .drop = 1};
        edit_backbone("index_absent", &e, 1);
    }
    remanifest("index_absent", 0);
    expect_deep("index_absent", "container", 3, "CKPT_TENSOR_MISSING", "model.layers.2.input_layernorm.weight");
    ncases++;

    /* 7. A shard holds a tensor the index does not list (re-manifested). */
    clone("unindexed");
    {
        edit e = {.tensor = "model.norm.weight", .copy_as = "model.norm.extra"};
        edit_backbone("unindexed", &e, 1);
    }
    remanifest("unindexed", 0);
    expect_deep("unindexed", "container", 3, "CKPT_TENSOR_UNINDEXED", "model.norm.extra");
    ncases++;

    /* 8. A zeroed scale row with its zeroed weight row in one expert. */
    clone("zero_row");
    {
        edit e[2] = {{.tensor = "model.layers.3.mlp.experts.5.up_proj.weight", .mutate = zero_row3},
                     {.tensor = "model.layers.3.mlp.experts.5.up_proj.weight_scale", .mutate = zero_row3}};
        edit_backbone("zero_row", e, 2);
    }
    remanifest("zero_row", 1);
    expect_deep("zero_row", "inventory", 1, "INV_SCALE_ZERO_ROW", "inventory  FAIL  1 problems; first: model.layers.3.mlp.experts.5.up_proj.weight: INV_SCALE_ZERO_ROW");
    CHECK(line_is("zero_row", "tensors", "PASS"));
    CHECK_EQ_U64(verify_outputs("zero_row", 1, "inventory"), 1);
    ncases++;

    /* 9. An E8M0 0xFF (NaN) scale. */
    clone("scale_nan");
    {
        edit e = {.tensor = "model.layers.4.mlp.experts.0.gate_proj.weight_scale", .mutate = scale_nan};
        edit_backbone("scale_nan", &e, 1);
    }
    remanifest("scale_nan", 1);
    expect_deep("scale_nan", "inventory", 1, "INV_SCALE_NAN", "inventory  FAIL  1 problems; first: model.layers.4.mlp.experts.0.gate_proj.weight_scale: INV_SCALE_NAN");
    ncases++;

    /* 10. A scale of the wrong shape: [64, 8] stored as [32, 16] (same bytes; mxfp4 wants
     * [N, K/32] = [64, 256/32]). */
    clone("scale_shape");
    {
        edit e = {.tensor = "model.layers.5.mlp.experts.9.up_proj.weight_scale", .rank = 2, .shape = {32, 16}};
        edit_backbone("scale_shape", &e, 1);
    }
    remanifest("scale_shape", 1);
    expect_deep("scale_shape", "inventory", 1, "INV_SCALE_SHAPE", "inventory  FAIL  1 problems; first: model.layers.5.mlp.experts.9.up_proj.weight_scale: INV_SCALE_SHAPE");
    CHECK(line_is("scale_shape", "container", "PASS"));
    ncases++;

    /* 11. An expert projection missing (weight and scale dropped, index rebuilt). */
    clone("expert_missing");
    {
        edit e[2] = {{.tensor = "model.layers.3.mlp.experts.5.down_proj.weight", .drop = 1},
                     {.tensor = "model.layers.3.mlp.experts.5.down_proj.weight_scale", .drop = 1}};
        edit_backbone("expert_missing", e, 2);
    }
    path_of(cp, sizeof(cp), "expert_missing", NULL);
    fix_index(cp);
    remanifest("expert_missing", 1);
    expect_deep("expert_missing", "inventory", 1, "INV_MISSING", "inventory  FAIL  1 problems; first: model.layers.3.mlp.experts.5.down_proj.weight: INV_MISSING");
    CHECK(line_is("expert_missing", "container", "PASS"));
    CHECK(line_is("expert_missing", "tensors", "PASS"));
    CHECK_EQ_U64(verify_outputs("expert_missing", 1, "inventory"), 1);
    ncases++;

    /* 12. A dtype loaders reject: a BF16 norm declared I16 (same bytes). */
    clone("dtype");
    {
        edit e = {.tensor = "model.layers.2.input_layernorm.weight", .dtype = LQ_DTYPE_I16};
        edit_backbone("dtype", &e, 1);
    }
    remanifest("dtype", 1);
    expect_deep("dtype", "inventory", 1, "INV_DTYPE", "inventory  FAIL  1 problems; first: model.layers.2.input_layernorm.weight: INV_DTYPE");
    ncases++;

    /* 13. config.json: n_routed_experts 16 -> 32. */
    clone("cfg_experts");
    edit_json("cfg_experts", "config.json", cfg_experts);
    remanifest("cfg_experts", 1);
    expect_deep("cfg_experts", "inventory", 1, "INV_SHAPE", "model.layers.1.mlp.gate.weight: INV_SHAPE");
    CHECK(log_has("cfg_experts", "model.layers.1.mlp.experts.31.up_proj.weight: INV_MISSING"));
    ncases++;

    /* 14. config.json: hidden_size 256 -> 512 (backbone shapes and the drafter both). */
    clone("cfg_hidden");
    edit_json("cfg_hidden", "config.json", cfg_hidden);
    remanifest("cfg_hidden", 1);
    expect_deep("cfg_hidden", "inventory", 1, "INV_SHAPE", "model.embed_tokens.weight: INV_SHAPE");
    CHECK(line_is("cfg_hidden", "drafter", "FAIL"));
    CHECK(log_has("cfg_hidden", "DF_HIDDEN"));
    ncases++;

    /* 15. quantization_config without store_dtype while experts are MXFP4. */
    clone("cfg_store_dtype");
    edit_json("cfg_store_dtype", "config.json", cfg_store_dtype);
    remanifest("cfg_store_dtype", 1);
    expect_deep("cfg_store_dtype", "inventory", 1, "INV_QUANT_CONFIG", "inventory  FAIL  1 problems; first: model.layers.1.mlp.experts.0.down_proj.weight: INV_QUANT_CONFIG");
    ncases++;

    /* 16. Drafter taps out of range. */
    clone("df_taps");
    edit_json("df_taps", "dflash/config.json", df_taps);
    remanifest("df_taps", 1);
    expect_deep("df_taps", "drafter", 1, "DF_TAPS", "[2] = 12 is not a layer of the 12-layer target");
    CHECK(line_is("df_taps", "inventory", "PASS"));
    CHECK_EQ_U64(verify_outputs("df_taps", 1, "drafter"), 1);
    ncases++;

    /* 17. Drafter mask id differing from mask_embedding.pt's. */
    clone("df_mask_mismatch");
    edit_json("df_mask_mismatch", "dflash/config.json", df_mask_4000);
    remanifest("df_mask_mismatch", 1);
    expect_deep("df_mask_mismatch", "drafter", 1, "DF_MASK_ID_MISMATCH", "file says mask_token_id 4095, config.json says 4000");
    ncases++;

    /* 18. Drafter mask id not below the target's vocabulary. */
    clone("df_mask_range");
    edit_json("df_mask_range", "dflash/config.json", df_mask_5000);
    remanifest("df_mask_range", 1);
    expect_deep("df_mask_range", "drafter", 1, "DF_MASK_ID", "mask_token_id 5000 is not below");
    ncases++;

    /* 19. A drafter tensor missing (dropped from its shard, drafter index rebuilt). */
    clone("df_tensor");
    {
        edit e = {.tensor = "layers.1.mlp.up_proj.weight", .drop = 1};
        char dp[4096];
        path_of(dp, sizeof(dp), "df_tensor", "dflash/dflash_draft_model.safetensors");
        CHECK_EQ_U64(rewrite_shard(dp, &e, 1), 1);
        path_of(dp, sizeof(dp), "df_tensor", "dflash");
        fix_index(dp);
    }
    remanifest("df_tensor", 1);
    expect_deep("df_tensor", "drafter", 1, "DF_TENSOR_MISSING", "layers.1.mlp.up_proj.weight: DF_TENSOR_MISSING");
    ncases++;

    /* 20. The manifest's tensor list disagrees with the shards (re-signed, so only the tensors
     * check can see it). */
    clone("man_tensors");
    edit_json("man_tensors", LQ_MANIFEST_FILE, man_dtype);
    remanifest("man_tensors", 0);
    expect_deep("man_tensors", "tensors", 1, "model.norm.weight: dtype, shape or file differ", NULL);
    ncases++;

    if (have_key) {
        char extra[1200];
        /* 21. The manifest edited after signing. */
        before = th_failures;
        clone("sig_tamper");
        CHECK(sh("sed -i 's/\"tool\": \"mimo-quant\"/\"tool\": \"mimo-quanT\"/' '%s/sig_tamper/%s'", root,
                 LQ_MANIFEST_FILE) == 0);
        CHECK_EQ_U64(verify_outputs("sig_tamper", 1, "signature"), 1);
        CHECK(line_is("sig_tamper", "signature", "FAIL"));
        CHECK(line_is("sig_tamper", "integrity", "PASS"));
        CHECK(log_has("sig_tamper", "SIG_BAD"));
        show_log_on_failure("sig_tamper", before);
        ncases++;

        /* 22. Signed by another key than the trusted one. */
        before = th_failures;
        clone("sig_other");
        snprintf(extra, sizeof(extra), "--pubkey '%s/pub2.pem'", root);
        CHECK_EQ_U64(verify_ex("sig_other", 0, extra), 1);
        CHECK(line_is("sig_other", "signature", "FAIL"));
        CHECK(log_has("sig_other", "signed by another key"));
        show_log_on_failure("sig_other", before);
        ncases++;

        /* 23. A malformed signature file (the algorithm line altered). */
        before = th_failures;
        clone("sig_file");
        CHECK(sh("sed -i 's/^algorithm ed25519$/algorithm ed25518/' '%s/sig_file/%s'", root, LQ_SIGNATURE_FILE) == 0);
        CHECK_EQ_U64(verify("sig_file", 1), 1);
        CHECK(line_is("sig_file", "signature", "FAIL"));
        CHECK(log_has("sig_file", "SIG_FILE"));
        show_log_on_failure("sig_file", before);
        ncases++;

        /* 24. The signature file deleted while a key is required. */
        before = th_failures;
        clone("sig_gone");
        CHECK(sh("rm '%s/sig_gone/%s'", root, LQ_SIGNATURE_FILE) == 0);
        CHECK_EQ_U64(verify("sig_gone", 1), 1);
        CHECK(line_is("sig_gone", "signature", "FAIL"));
        CHECK(log_has("sig_gone", "SIG_FILE"));
        show_log_on_failure("sig_gone", before);
        ncases++;
    }

    /* 25. Manifest missing: unreadable. */
    before = th_failures;
    clone("man_missing");
    CHECK(sh("rm '%s/man_missing/%s'", root, LQ_MANIFEST_FILE) == 0);
    CHECK_EQ_U64(verify_outputs("man_missing", 0, "manifest"), 3);
    CHECK(line_is("man_missing", "manifest", "FAIL"));
    CHECK(log_has("man_missing", LQ_MANIFEST_FILE));
    show_log_on_failure("man_missing", before);
    ncases++;

    /* 26. Manifest not JSON: unreadable, the strict reader's rule named. */
    before = th_failures;
    clone("man_garbage");
    CHECK(sh("rm '%s/man_garbage/%s' && printf '{\"schema_version\": 1, files' > '%s/man_garbage/%s'", root,
             LQ_MANIFEST_FILE, root, LQ_MANIFEST_FILE) == 0);
    CHECK_EQ_U64(verify("man_garbage", 0), 3);
    CHECK(line_is("man_garbage", "manifest", "FAIL"));
    CHECK(log_has("man_garbage", "JSON_SYNTAX"));
    show_log_on_failure("man_garbage", before);
    ncases++;

    /* 27. A file the manifest does not list. */
    before = th_failures;
    clone("unlisted");
    CHECK(sh("echo hello > '%s/unlisted/dflash/notes.txt'", root) == 0);
    CHECK_EQ_U64(verify("unlisted", 0), 1);
    CHECK(line_is("unlisted", "integrity", "FAIL"));
    CHECK(log_has("unlisted", "dflash/notes.txt: present but not in the manifest"));
    show_log_on_failure("unlisted", before);
    ncases++;

    /* 28. A listed file deleted (the conversion report: nothing else notices). */
    before = th_failures;
    clone("listed_gone");
    CHECK(sh("rm '%s/listed_gone/mimo-quant-report.json'", root) == 0);
    CHECK_EQ_U64(verify("listed_gone", 0), 1);
    CHECK(line_is("listed_gone", "integrity", "FAIL"));
    CHECK(line_is("listed_gone", "container", "PASS"));
    CHECK(log_has("listed_gone", "mimo-quant-report.json: missing"));
    show_log_on_failure("listed_gone", before);
    ncases++;

    /* The brief's corpus is at least 22 cases (fewer only without the openssl CLI). */
    CHECK(ncases >= (have_key ? 26 : 22));
    /* The clean artifact is still intact after all the clones (hard links were never written). */
    CHECK_EQ_U64(verify("clean", 1), 0);
    fprintf(stderr, "%d broken artifacts checked\n", ncases);

    lq_ckpt_close(clean_ck);
    /* MIMO_VCORPUS_KEEP=1 keeps the corpus and logs for inspection. */
    if (getenv("MIMO_VCORPUS_KEEP"))
        fprintf(stderr, "kept %s\n", root);
    else
        CHECK(sh("rm -rf '%s'", root) == 0);
    return th_finish("test_verify_corpus");
}
