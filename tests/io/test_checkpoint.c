/* Hugging Face checkpoint directories (libquant/checkpoint.h).
 *
 * Each case builds a directory under /tmp (config.json, safetensors shards assembled by
 * st_build.c, an index), opens it and checks the status, the rule id, the file and the tensor
 * named in the error. The rules come from checkpoint.h; the cases from
 * reference/ecosystem_reliability.md 3.6 item 6 and reference/mxfp4_formats.md 3.4 item 8 and
 * 3.6. Every temporary directory is removed at the end. */
#include "../harness.h"

#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libquant/checkpoint.h"
#include "libquant/json.h"
#include "st_build.h"

#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"
#define CONFIG "{\"model_type\":\"mimo_v2_flash\",\"hidden_size\":64,\"Hidden_Size\":1}"

/* Shard 1 holds a (F32 [2,2], 16 bytes) and c (U8 [3], 3 bytes); shard 2 holds b (BF16 [4],
 * 8 bytes) and d (F32 [1], 4 bytes): 31 bytes in all. */
static const stb_tensor shard1[] = {{"a", "F32", 2, {2, 2}}, {"c", "U8", 1, {3}}};
static const stb_tensor shard2[] = {{"b", "BF16", 1, {4}}, {"d", "F32", 1, {1}}};
#define WEIGHT_MAP "\"a\":\"" S1 "\",\"b\":\"" S2 "\",\"c\":\"" S1 "\",\"d\":\"" S2 "\""
#define GOOD_INDEX "{\"metadata\":{\"total_size\":31},\"weight_map\":{" WEIGHT_MAP "}}"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    CHECK_MSG(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0, "cannot remove %s", dir);
}

static void put_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK_MSG(stb_write_file(path, text, strlen(text)) == 0, "cannot write %s", path);
}

static void put_st(const char *dir, const char *name, const stb_tensor *t, size_t n, size_t extra)
{
    char path[512];
    size_t len = 0;
    uint8_t *img = stb_build(t, n, "{\"format\":\"pt\"}", 1, &len, NULL);
    uint8_t *buf = calloc(1, len + extra);
    memcpy(buf, img, len);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK_MSG(stb_write_file(path, buf, len + extra) == 0, "cannot write %s", path);
    free(buf);
    free(img);
}

/* A fresh directory: "<parent>/ck" under a new /tmp parent, so that cases can put files
 * next to the checkpoint (outside it). */
typedef struct tmpck {
    char parent[64];
    char dir[96];
} tmpck;

static int tmp_new(tmpck *t)
{
    snprintf(t->parent, sizeof(t->parent), "/tmp/lqckpt-XXXXXX");
    if (!mkdtemp(t->parent)) {
        CHECK_MSG(0, "mkdtemp failed");
        return -1;
    }
    snprintf(t->dir, sizeof(t->dir), "%s/ck", t->parent);
    CHECK(mkdir(t->dir, 0755) == 0);
    return 0;
}

/* The standard sharded checkpoint with the given index text (NULL: no index). */
static int tmp_sharded(tmpck *t, const char *index)
{
    if (tmp_new(t) != 0)
        return -1;
    put_text(t->dir, "config.json", CONFIG);
    put_st(t->dir, S1, shard1, 2, 0);
    put_st(t->dir, S2, shard2, 2, 0);
    if (index)
        put_text(t->dir, "model.safetensors.index.json", index);
    return 0;
}

/* Opens t->dir and checks a failure: status, rule, file (must contain file_part) and tensor
 * (NULL: must be empty). */
static void expect_fail(const tmpck *t, const lq_ckpt_opts *opts, lq_status want,
                        const char *rule, const char *file_part, const char *tensor, int line)
{
    lq_ckpt *ck = (lq_ckpt *)0x1;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_ckpt_open(t->dir, opts, &ck, &err);
    CHECK_MSG(st == want, "line %d: status %d (%s: %s: %s), want %d", line, (int)st, err.file,
              err.rule, err.msg, (int)want);
    CHECK_MSG(ck == NULL, "line %d: *out not NULL on failure", line);
    CHECK_MSG(strcmp(err.rule, rule) == 0, "line %d: rule %s, want %s (%s)", line, err.rule, rule,
              err.msg);
    CHECK_MSG(strstr(err.file, file_part) != NULL, "line %d: file \"%s\" lacks \"%s\"", line,
              err.file, file_part);
    if (tensor)
        CHECK_MSG(strcmp(err.tensor, tensor) == 0, "line %d: tensor \"%s\", want \"%s\"", line,
                  err.tensor, tensor);
    else
        CHECK_MSG(err.tensor[0] == '\0', "line %d: tensor \"%s\", want none", line, err.tensor);
}

static lq_ckpt *expect_ok(const tmpck *t, const lq_ckpt_opts *opts, int line)
{
    lq_ckpt *ck = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_ckpt_open(t->dir, opts, &ck, &err);
    CHECK_MSG(st == LQ_OK, "line %d: %s: %s: %s: %s", line, err.file, err.tensor, err.rule,
              err.msg);
    return ck;
}

/* Checks the tensor's bytes against the pattern its shard was built with. */
static int bytes_ok(const lq_ckpt_tensor *t)
{
    const uint8_t *d = lq_st_data(t->file, t->info);
    for (uint64_t k = 0; k < t->info->nbytes; k++)
        if (d[k] != stb_pattern(t->info->begin + k))
            return 0;
    return 1;
}

static void test_single_file(void)
{
    tmpck t;
    if (tmp_new(&t) != 0)
        return;
    put_text(t.dir, "config.json", CONFIG);
    put_st(t.dir, "model.safetensors", shard1, 2, 0);
    lq_ckpt *ck = expect_ok(&t, NULL, __LINE__);
    if (ck) {
        CHECK(!lq_ckpt_has_index(ck));
        CHECK_EQ_U64(lq_ckpt_shard_count(ck), 1);
        CHECK_STR(lq_ckpt_shard_name(ck, 0), "model.safetensors");
        CHECK_STR(lq_ckpt_dir(ck), t.dir);
        CHECK_EQ_U64(lq_ckpt_count(ck), 2);
        lq_ckpt_tensor x;
        CHECK(lq_ckpt_find(ck, "c", &x) == 0 && x.info->dtype == LQ_DTYPE_U8 && x.shard == 0);
        CHECK(lq_ckpt_find(ck, "b", &x) == -1);
        /* config.json: case-variant keys are distinct and looked up exactly. */
        uint64_t v = 0;
        CHECK(lq_json_u64(lq_json_get(lq_ckpt_config(ck), "hidden_size"), &v) == 0 && v == 64);
        CHECK(lq_json_u64(lq_json_get(lq_ckpt_config(ck), "Hidden_Size"), &v) == 0 && v == 1);
        lq_ckpt_close(ck);
    }

    /* Other names through opts; config optional. */
    put_st(t.dir, "weights.safetensors", shard2, 2, 0);
    lq_ckpt_opts o = {0};
    o.single_file = "weights.safetensors";
    o.require_config = 0;
    ck = expect_ok(&t, &o, __LINE__);
    CHECK(ck && lq_ckpt_count(ck) == 2 && lq_ckpt_find(ck, "d", NULL) == 0);
    lq_ckpt_close(ck);
    o.single_file = "../weights.safetensors";
    expect_fail(&t, &o, LQ_ERR_INVALID_ARGUMENT, "CKPT_SHARD_NAME", t.dir, NULL, __LINE__);

    /* Per-shard limits travel through opts. */
    o = (lq_ckpt_opts){0};
    o.require_config = 1;
    o.limits.max_tensors = 1;
    expect_fail(&t, &o, LQ_ERR_LIMIT, "ST_TENSOR_LIMIT", "model.safetensors", NULL, __LINE__);
    rm_rf(t.parent);
}

static void test_sharded(void)
{
    tmpck t;
    if (tmp_sharded(&t, GOOD_INDEX) != 0)
        return;
    lq_ckpt *ck = expect_ok(&t, NULL, __LINE__);
    if (ck) {
        CHECK(lq_ckpt_has_index(ck));
        CHECK_EQ_U64(lq_ckpt_shard_count(ck), 2);
        CHECK_STR(lq_ckpt_shard_name(ck, 0), S1);
        CHECK_STR(lq_ckpt_shard_name(ck, 1), S2);
        CHECK(strstr(lq_st_path(lq_ckpt_shard(ck, 1)), S2) != NULL);
        /* All tensors in name order across shards: a (1), b (2), c (1), d (2). */
        static const char *names[] = {"a", "b", "c", "d"};
        static const unsigned shard[] = {0, 1, 0, 1};
        CHECK_EQ_U64(lq_ckpt_count(ck), 4);
        for (size_t i = 0; i < 4 && i < lq_ckpt_count(ck); i++) {
            lq_ckpt_tensor x = lq_ckpt_at(ck, i);
            CHECK_STR(x.info->name, names[i]);
            CHECK_EQ_U64(x.shard, shard[i]);
            CHECK(x.file == lq_ckpt_shard(ck, shard[i]));
            CHECK(bytes_ok(&x));
        }
        CHECK(lq_ckpt_at(ck, 4).info == NULL);
        lq_ckpt_tensor x;
        CHECK(lq_ckpt_find(ck, "b", &x) == 0 && x.info->dtype == LQ_DTYPE_BF16 &&
              x.info->nbytes == 8);
        CHECK(lq_ckpt_find(ck, "B", &x) == -1);
        lq_ckpt_close(ck);
    }
    rm_rf(t.parent);

    /* total_size is optional: "metadata": {} (DeepSeek's converter) and no metadata at all. */
    if (tmp_sharded(&t, "{\"metadata\":{},\"weight_map\":{" WEIGHT_MAP "}}") == 0) {
        lq_ckpt_close(expect_ok(&t, NULL, __LINE__));
        rm_rf(t.parent);
    }
    if (tmp_sharded(&t, "{\"weight_map\":{" WEIGHT_MAP "}}") == 0) {
        lq_ckpt_close(expect_ok(&t, NULL, __LINE__));
        rm_rf(t.parent);
    }
    /* A custom index name; the default name is then absent, so it must be used. */
    if (tmp_sharded(&t, NULL) == 0) {
        put_text(t.dir, "other.index.json", GOOD_INDEX);
        lq_ckpt_opts o = {0};
        o.index_name = "other.index.json";
        o.require_config = 1;
        ck = expect_ok(&t, &o, __LINE__);
        CHECK(ck && lq_ckpt_has_index(ck) && lq_ckpt_count(ck) == 4);
        lq_ckpt_close(ck);
        /* Without it: no index, no model.safetensors. */
        expect_fail(&t, NULL, LQ_ERR_NOT_FOUND, "CKPT_NO_WEIGHTS", "model.safetensors", NULL,
                    __LINE__);
        rm_rf(t.parent);
    }
}

static void test_config(void)
{
    tmpck t;
    if (tmp_new(&t) != 0)
        return;
    put_st(t.dir, "model.safetensors", shard1, 2, 0);
    expect_fail(&t, NULL, LQ_ERR_NOT_FOUND, "CKPT_CONFIG", "config.json", NULL, __LINE__);
    lq_ckpt_opts o = {0};
    lq_ckpt *ck = expect_ok(&t, &o, __LINE__);
    CHECK(ck && lq_ckpt_config(ck) == NULL);
    lq_ckpt_close(ck);

    put_text(t.dir, "config.json", "{\"hidden_size\":64,\"hidden_size\":64}");
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "config.json", "hidden_size", __LINE__);
    /* Strict even when the config is optional. */
    expect_fail(&t, &o, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "config.json", "hidden_size", __LINE__);
    put_text(t.dir, "config.json", "{\"hidden_size\":64} trailing");
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "JSON_TRAILING", "config.json", NULL, __LINE__);
    put_text(t.dir, "config.json", "{\"name\":\"\xC0\xAF\"}");
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "JSON_UTF8", "config.json", NULL, __LINE__);
    put_text(t.dir, "config.json", "[1,2]");
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_CONFIG", "config.json", NULL, __LINE__);
    put_text(t.dir, "config.json", "{\"vocab_size\":151936,\"rope_theta\":1e6}");
    lq_ckpt_close(expect_ok(&t, NULL, __LINE__));

    /* Unreadable: a directory where the file should be. */
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", t.dir);
    CHECK(remove(path) == 0);
    CHECK(mkdir(path, 0755) == 0);
    expect_fail(&t, NULL, LQ_ERR_IO, "CKPT_CONFIG", "config.json", NULL, __LINE__);
    rm_rf(t.parent);
}

static void test_index_schema(void)
{
    static const char *bad[] = {
        "[1]",
        "{\"metadata\":{\"total_size\":31}}",
        "{\"weight_map\":[\"" S1 "\"]}",
        "{\"weight_map\":{\"a\":1}}",
        "{\"weight_map\":{" WEIGHT_MAP "},\"extra\":{}}",
        "{\"metadata\":[],\"weight_map\":{" WEIGHT_MAP "}}",
        "{\"metadata\":{\"total_size\":\"31\"},\"weight_map\":{" WEIGHT_MAP "}}",
        "{\"metadata\":{\"total_size\":-31},\"weight_map\":{" WEIGHT_MAP "}}",
        "{\"metadata\":{\"total_size\":31.5},\"weight_map\":{" WEIGHT_MAP "}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tmpck t;
        if (tmp_sharded(&t, bad[i]) != 0)
            return;
        const char *tensor = strstr(bad[i], "\"a\":1") ? "a" : NULL;
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_INDEX_SCHEMA", "model.safetensors.index.json",
                    tensor, __LINE__);
        rm_rf(t.parent);
    }
    /* Strict JSON applies to the index too: a tensor listed twice. */
    tmpck t;
    if (tmp_sharded(&t, "{\"weight_map\":{" WEIGHT_MAP ",\"a\":\"" S2 "\"}}") == 0) {
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "JSON_DUP_KEY", "model.safetensors.index.json",
                    "weight_map", __LINE__);
        rm_rf(t.parent);
    }
}

/* Shard names are checked before any path is built: a valid shard placed where each name
 * would lead must not be opened. */
static void test_shard_names(void)
{
    static const char *names[] = {
        "../x.safetensors", "/abs.safetensors", "a/b.safetensors", "x.bin", "a\\\\b.safetensors",
        "", "..", ".", ".safetensors", "model.safetensors.bak",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        tmpck t;
        if (tmp_sharded(&t, NULL) != 0)
            return;
        put_st(t.parent, "x.safetensors", shard1, 2, 0);
        char sub[128];
        snprintf(sub, sizeof(sub), "%s/a", t.dir);
        CHECK(mkdir(sub, 0755) == 0);
        put_st(sub, "b.safetensors", shard1, 2, 0);
        put_st(t.dir, "x.bin", shard1, 2, 0);
        stb_buf idx = {0};
        stb_printf(&idx, "{\"weight_map\":{\"a\":\"%s\",\"c\":\"%s\",\"b\":\"" S2 "\",\"d\":\"" S2
                         "\"}}",
                   names[i], names[i]);
        put_text(t.dir, "model.safetensors.index.json", (const char *)idx.p);
        stb_free(&idx);
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_SHARD_NAME", "model.safetensors.index.json",
                    NULL, __LINE__);
        rm_rf(t.parent);
    }
}

static void test_symlinks(void)
{
    char path[256], target[256];
    tmpck t;

    /* model.safetensors -> ../outside.safetensors: escapes, unless allowed. */
    if (tmp_new(&t) != 0)
        return;
    put_text(t.dir, "config.json", CONFIG);
    put_st(t.parent, "outside.safetensors", shard1, 2, 0);
    snprintf(path, sizeof(path), "%s/model.safetensors", t.dir);
    CHECK(symlink("../outside.safetensors", path) == 0);
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_SHARD_ESCAPE", "model.safetensors", NULL,
                __LINE__);
    lq_ckpt_opts o = {0};
    o.require_config = 1;
    o.allow_outside = 1;
    lq_ckpt *ck = expect_ok(&t, &o, __LINE__);
    CHECK(ck && lq_ckpt_count(ck) == 2);
    lq_ckpt_close(ck);
    /* An absolute link outside is the same. */
    CHECK(unlink(path) == 0);
    snprintf(target, sizeof(target), "%s/outside.safetensors", t.parent);
    CHECK(symlink(target, path) == 0);
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_SHARD_ESCAPE", "model.safetensors", NULL,
                __LINE__);
    /* A link that stays inside (a blob store in a subdirectory) is fine. */
    CHECK(unlink(path) == 0);
    snprintf(target, sizeof(target), "%s/blobs", t.dir);
    CHECK(mkdir(target, 0755) == 0);
    put_st(target, "0123abcd", shard2, 2, 0);
    CHECK(symlink("blobs/0123abcd", path) == 0);
    ck = expect_ok(&t, NULL, __LINE__);
    CHECK(ck && lq_ckpt_find(ck, "d", NULL) == 0);
    lq_ckpt_close(ck);
    /* A dangling link is a missing file. */
    CHECK(unlink(path) == 0);
    CHECK(symlink("blobs/none", path) == 0);
    expect_fail(&t, NULL, LQ_ERR_NOT_FOUND, "CKPT_NO_WEIGHTS", "model.safetensors", NULL,
                __LINE__);
    rm_rf(t.parent);

    /* Through an index: shard 2 links outside. */
    if (tmp_sharded(&t, GOOD_INDEX) != 0)
        return;
    snprintf(path, sizeof(path), "%s/" S2, t.dir);
    snprintf(target, sizeof(target), "%s/" S2, t.parent);
    CHECK(rename(path, target) == 0);
    CHECK(symlink("../" S2, path) == 0);
    expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_SHARD_ESCAPE", S2, NULL, __LINE__);
    /* The checkpoint directory itself may be reached through a link. */
    char alias[sizeof(t.dir) - 8];
    snprintf(alias, sizeof(alias), "%s/alias", t.parent);
    CHECK(unlink(path) == 0);
    CHECK(rename(target, path) == 0);
    CHECK(symlink("ck", alias) == 0);
    tmpck via = t;
    snprintf(via.dir, sizeof(via.dir), "%s", alias);
    lq_ckpt_close(expect_ok(&via, NULL, __LINE__));
    rm_rf(t.parent);
}

static void test_cross_checks(void)
{
    tmpck t;
    /* The index names a shard that is not there. */
    if (tmp_sharded(&t, "{\"weight_map\":{" WEIGHT_MAP
                        ",\"e\":\"model-00003-of-00003.safetensors\"}}") == 0) {
        expect_fail(&t, NULL, LQ_ERR_NOT_FOUND, "CKPT_SHARD_MISSING",
                    "model-00003-of-00003.safetensors", NULL, __LINE__);
        rm_rf(t.parent);
    }
    /* The index maps e to shard 1, which does not hold it (vllm PR 57108). */
    if (tmp_sharded(&t, "{\"weight_map\":{" WEIGHT_MAP ",\"e\":\"" S1 "\"}}") == 0) {
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_TENSOR_MISSING", S1, "e", __LINE__);
        rm_rf(t.parent);
    }
    /* The index maps a to shard 2, but it is in shard 1. */
    if (tmp_sharded(&t, "{\"weight_map\":{\"a\":\"" S2 "\",\"b\":\"" S2 "\",\"c\":\"" S1
                        "\",\"d\":\"" S2 "\"}}") == 0) {
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_TENSOR_MISSING", S2, "a", __LINE__);
        rm_rf(t.parent);
    }
    /* Shard 2 holds d, which the index does not list. */
    if (tmp_sharded(&t, "{\"weight_map\":{\"a\":\"" S1 "\",\"b\":\"" S2 "\",\"c\":\"" S1
                        "\"}}") == 0) {
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_TENSOR_UNINDEXED", S2, "d", __LINE__);
        rm_rf(t.parent);
    }
    /* a in both shards. */
    if (tmp_sharded(&t, GOOD_INDEX) == 0) {
        static const stb_tensor shard2a[] = {{"a", "F32", 2, {2, 2}}, {"b", "BF16", 1, {4}},
                                             {"d", "F32", 1, {1}}};
        put_st(t.dir, S2, shard2a, 3, 0);
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_TENSOR_DUPLICATE", S2, "a", __LINE__);
        rm_rf(t.parent);
    }
    /* total_size off by one either way (31 is right). */
    if (tmp_sharded(&t, "{\"metadata\":{\"total_size\":32},\"weight_map\":{" WEIGHT_MAP
                        "}}") == 0) {
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_TOTAL_SIZE", "model.safetensors.index.json",
                    NULL, __LINE__);
        put_text(t.dir, "model.safetensors.index.json",
                 "{\"metadata\":{\"total_size\":30},\"weight_map\":{" WEIGHT_MAP "}}");
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "CKPT_TOTAL_SIZE", "model.safetensors.index.json",
                    NULL, __LINE__);
        rm_rf(t.parent);
    }
    /* A corrupt shard fails with its own safetensors rule, naming the shard. */
    if (tmp_sharded(&t, GOOD_INDEX) == 0) {
        put_st(t.dir, S2, shard2, 2, 3);
        expect_fail(&t, NULL, LQ_ERR_CORRUPT, "ST_TRAILING_BYTES", S2, NULL, __LINE__);
        rm_rf(t.parent);
    }
    /* No weights at all. */
    if (tmp_new(&t) == 0) {
        put_text(t.dir, "config.json", CONFIG);
        expect_fail(&t, NULL, LQ_ERR_NOT_FOUND, "CKPT_NO_WEIGHTS", "model.safetensors", NULL,
                    __LINE__);
        rm_rf(t.parent);
    }
}

static void test_arguments(void)
{
    lq_ckpt *ck = NULL;
    lq_error err;
    CHECK(lq_ckpt_open(NULL, NULL, &ck, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_ckpt_open("/tmp", NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_ckpt_open("/nonexistent-lq-dir/x", NULL, &ck, &err) == LQ_ERR_NOT_FOUND);
    CHECK(ck == NULL);
    tmpck t;
    if (tmp_new(&t) == 0) {
        put_text(t.dir, "file", "x");
        char path[128];
        snprintf(path, sizeof(path), "%s/file", t.dir);
        CHECK(lq_ckpt_open(path, NULL, &ck, &err) == LQ_ERR_IO);
        rm_rf(t.parent);
    }
    lq_ckpt_close(NULL);
    CHECK(lq_ckpt_count(NULL) == 0 && lq_ckpt_shard(NULL, 0) == NULL);
    CHECK(lq_ckpt_find(NULL, "a", NULL) == -1 && lq_ckpt_config(NULL) == NULL);
}

int main(void)
{
    test_single_file();
    test_sharded();
    test_config();
    test_index_schema();
    test_shard_names();
    test_symlinks();
    test_cross_checks();
    test_arguments();
    return th_finish("test_checkpoint");
}
