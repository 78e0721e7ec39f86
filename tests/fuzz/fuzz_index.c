/* libFuzzer target for the checkpoint index (model.safetensors.index.json, libquant/checkpoint.h).
 *
 * Build and run (from the repository root; scripts/fuzz.sh does this for every target):
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_index.c libquant/checkpoint.c libquant/safetensors.c libquant/json.c \
 *     libquant/dtype.c libquant/status.c -lcjson -lm -o build-fuzz/fuzz_index
 *   build-fuzz/fuzz_index -max_total_time=60 -max_len=16384 build-fuzz/work-index \
 *     tests/fuzz/seeds/index
 *
 * The input is the index file. The index is only ever read from a checkpoint directory, so the
 * target builds one directory per process (a private temporary directory, removed at exit) that
 * holds config.json ("{}"), two small valid shards, a third shard whose tensor repeats one of
 * the others, and a symbolic link escaping the directory:
 *   model-00001-of-00002.safetensors   a.weight F32[2], b.bias BF16[2]        (12 data bytes)
 *   model-00002-of-00002.safetensors   c.weight U8[3]                         (3 data bytes)
 *   dup.safetensors                    a.weight F32[2]                        (8 data bytes)
 *   escape.safetensors -> ../<dir>-outside.safetensors (a valid shard outside the directory)
 * and each run writes the input as model.safetensors.index.json there and opens the directory.
 * These files never change, so runs share nothing but read-only fixtures.
 *
 * Whatever the input, the open must not crash or leak and a failure must name a file and, for
 * corrupt input, carry a rule. When it succeeds the index and the shards agree both ways: the
 * tensors are in strict name order, each is found by lookup in the shard the input maps it to,
 * and there are exactly as many tensors as weight_map entries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libquant/checkpoint.h"
#include "libquant/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *name)
{
    fprintf(stderr, "fuzz_index: invariant broken: %s (%s)\n", what, name ? name : "");
    abort();
}

static char dir[64];
static char outside[96];

static const char *const names[] = {"config.json", "model-00001-of-00002.safetensors",
                                    "model-00002-of-00002.safetensors", "dup.safetensors",
                                    "escape.safetensors", "model.safetensors.index.json"};

static void put_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_index: cannot write %s\n", path);
        abort();
    }
}

/* A safetensors image: 8-byte little-endian header length, the header padded with spaces to a
 * multiple of 8, then data_len zero bytes. */
static void put_shard(const char *path, const char *header, size_t data_len)
{
    uint8_t buf[512];
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    if (8 + hp + data_len > sizeof(buf))
        abort();
    memset(buf, 0, sizeof(buf));
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', hp - h);
    put_file(path, buf, 8 + hp + data_len);
}

static void cleanup(void)
{
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    unlink(outside);
    rmdir(dir);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/lqfuzz-index-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(outside, sizeof(outside), "%s-outside.safetensors", dir);
    atexit(cleanup);
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    put_file(path, "{}", 2);
    snprintf(path, sizeof(path), "%s/%s", dir, names[1]);
    put_shard(path, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}", 12);
    snprintf(path, sizeof(path), "%s/%s", dir, names[2]);
    put_shard(path, "{\"c.weight\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3);
    snprintf(path, sizeof(path), "%s/%s", dir, names[3]);
    put_shard(path, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    put_shard(outside, "{\"e.weight\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    snprintf(path, sizeof(path), "%s/%s", dir, names[4]);
    const char *slash = strrchr(outside, '/');
    char target[128];
    snprintf(target, sizeof(target), "..%s", slash);
    if (symlink(target, path) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        setup();
    char path[256];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    put_file(path, data, size);

    lq_ckpt *ck = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_ckpt_open(dir, NULL, &ck, &err);
    if (st != LQ_OK) {
        if (ck)
            fail("checkpoint object on failure", NULL);
        if ((st == LQ_ERR_CORRUPT || st == LQ_ERR_LIMIT) && err.rule[0] == '\0')
            fail("rejection without a rule", err.msg);
        if (err.file[0] == '\0')
            fail("error names no file", err.msg);
        return 0;
    }
    if (!lq_ckpt_has_index(ck))
        fail("index not seen", NULL);

    /* The accepted index, parsed again, drives the cross-check from the input's side. */
    cJSON *root = NULL;
    if (lq_json_parse((const char *)data, size, NULL, "index", &root, &err) != LQ_OK)
        fail("accepted index is not strict JSON", err.rule);
    const cJSON *wm = lq_json_get(root, "weight_map");
    size_t entries = 0;
    for (const cJSON *e = wm ? wm->child : NULL; e; e = e->next) {
        lq_ckpt_tensor t;
        if (!cJSON_IsString(e) || lq_ckpt_find(ck, e->string, &t) != 0)
            fail("indexed tensor not found", e->string);
        if (t.shard >= lq_ckpt_shard_count(ck) || t.file != lq_ckpt_shard(ck, t.shard) ||
            strcmp(lq_ckpt_shard_name(ck, t.shard), e->valuestring) != 0)
            fail("tensor in another shard than indexed", e->string);
        entries++;
    }
    if (entries != lq_ckpt_count(ck))
        fail("tensor count differs from weight_map", NULL);
    for (size_t i = 0; i < lq_ckpt_count(ck); i++) {
        lq_ckpt_tensor t = lq_ckpt_at(ck, i);
        if (!t.info || !t.info->name || (i > 0 && strcmp(lq_ckpt_at(ck, i - 1).info->name, t.info->name) >= 0))
            fail("tensor order", t.info ? t.info->name : NULL);
    }
    cJSON_Delete(root);
    lq_ckpt_close(ck);
    return 0;
}
