/* Unit tests for libquant/stwriter.c: the safetensors layout rules, streaming, rejected
 * writes, shard planning, shard names and the index JSON. Every file written is read back
 * through the strict reader (lq_st_open) as well as checked byte by byte.
 *
 * Sources of expected values:
 *   - layout: reference/mxfp4_formats.md 3.1 and 3.5 (order, no gaps, padding, metadata
 *     first), with the exact JSON spelling (key order inside entries, no spaces, serde_json
 *     escapes, enum order of dtypes) observed from safetensors 0.8's `serialize`; the interop
 *     suite compares whole files with that library;
 *   - shard plan: huggingface_hub's split_state_dict_into_shards_factory, traced by hand;
 *   - index text: Python's json.dumps(index, indent=2, sort_keys=True) + "\n" (what
 *     transformers writes), spelled out by hand below and re-checked by the interop suite. */
#include <cjson/cJSON.h>

#include "libquant/json.h"
#include "libquant/outfile.h"
#include "libquant/safetensors.h"
#include "libquant/stwriter.h"
#include "tests/harness.h"
#include "tests/output/test_util.h"

static char *g_dir;

/* Deterministic test bytes. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 2654435761u + seed * 40503u) >> 7);
}

/* Writes every declared tensor of w in layout order from fill(seed = layout index). */
static lq_status write_all(lq_stw *w, lq_error *err)
{
    for (size_t i = 0; i < lq_stw_count(w); i++) {
        const lq_tensor_info *t = lq_stw_tensor(w, i);
        unsigned char *buf = malloc(t->nbytes ? (size_t)t->nbytes : 1);
        if (!buf)
            return LQ_ERR_NO_MEMORY;
        fill(buf, (size_t)t->nbytes, (unsigned)i);
        lq_status st = lq_stw_write_tensor(w, t->name, buf, (size_t)t->nbytes, err);
        free(buf);
        if (st != LQ_OK)
            return st;
    }
    return LQ_OK;
}

/* The exact file for two small tensors, built independently from the format description:
 * u64 LE header length, the header JSON padded with spaces, then the data. */
static void test_exact_bytes(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "exact.safetensors");
    lq_stw *w = NULL;
    uint64_t s2[1] = {2}, s3[1] = {3};
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "a", LQ_DTYPE_U8, 1, s3, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "b", LQ_DTYPE_F32, 1, s2, &err) == LQ_OK);
    CHECK(lq_stw_set_metadata(w, "format", "pt", &err) == LQ_OK); /* no-op */
    CHECK(lq_stw_begin(w, &err) == LQ_OK);
    /* F32 sorts before U8 although "a" < "b": dtype first. */
    CHECK_STR(lq_stw_next(w), "b");
    const float bv[2] = {1.0f, -2.5f};
    const unsigned char av[3] = {1, 2, 3};
    CHECK(lq_stw_write_tensor(w, "b", bv, 8, &err) == LQ_OK);
    CHECK(lq_stw_write_tensor(w, "a", av, 3, &err) == LQ_OK);
    CHECK(lq_stw_next(w) == NULL);
    CHECK_EQ_U64(lq_stw_total_size(w), 11);
    uint8_t sha[32];
    uint64_t fsize = 0;
    CHECK(lq_stw_finish(w, sha, &fsize, &err) == LQ_OK);

    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    size_t total = 8 + padded + 11;
    unsigned char *want = calloc(1, total);
    for (int i = 0; i < 8; i++)
        want[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(want + 8, json, jl);
    memset(want + 8 + jl, ' ', padded - jl);
    memcpy(want + 8 + padded, bv, 8); /* little-endian host, as the file requires */
    memcpy(want + 8 + padded + 8, av, 3);
    size_t len = 0;
    unsigned char *got = tu_read(path, &len);
    CHECK_EQ_U64(len, total);
    CHECK_EQ_U64(fsize, total);
    CHECK(got && len == total && memcmp(got, want, total) == 0);
    uint8_t d[32];
    lq_sha256(want, total, d);
    CHECK(memcmp(d, sha, 32) == 0);
    free(got);
    free(want);
    unlink(path);
    free(path);
}

/* lq_stw_reserve and lq_stw_borrow_names change how the writer holds its tensors, not the
 * file: 300 tensors (past the reserve, so the arrays still grow), written with both and
 * without, give the same bytes; the borrowed names come back as the caller's pointers. Both
 * calls are refused out of sequence (STW_STATE). Expected values: the plain writer's file. */
static void test_reserve_borrow(void)
{
    lq_error err;
    char names[300][24];
    uint64_t shape[2] = {3, 5};
    char *path[2] = {tu_path(g_dir, "plain.safetensors"), tu_path(g_dir, "borrow.safetensors")};
    for (int v = 0; v < 2; v++) {
        lq_stw *w = NULL;
        CHECK(lq_stw_create(path[v], &w, &err) == LQ_OK);
        if (v) {
            CHECK(lq_stw_reserve(w, 200, 300, &err) == LQ_OK);
            CHECK(lq_stw_borrow_names(w, &err) == LQ_OK);
        }
        for (int i = 0; i < 300; i++) {
            snprintf(names[i], sizeof(names[i]), "t.%d.w", (i * 7919) % 300);
            CHECK(lq_stw_add(w, names[i], i % 3 ? LQ_DTYPE_BF16 : LQ_DTYPE_U8, (uint32_t)(i % 3), shape, &err) ==
                  LQ_OK);
        }
        CHECK(lq_stw_add(w, "t.0.w", LQ_DTYPE_U8, 1, shape, &err) == LQ_ERR_INVALID_ARGUMENT);
        CHECK_STR(err.rule, "STW_DUP_NAME");
        CHECK(lq_stw_borrow_names(w, &err) == LQ_ERR_INVALID_ARGUMENT); /* after an add */
        CHECK_STR(err.rule, "STW_STATE");
        CHECK(lq_stw_begin(w, &err) == LQ_OK);
        CHECK(lq_stw_reserve(w, 1000, 1000, &err) == LQ_ERR_INVALID_ARGUMENT); /* after begin */
        CHECK_STR(err.rule, "STW_STATE");
        int own = 0;
        for (size_t i = 0; i < lq_stw_count(w); i++)
            for (int k = 0; k < 300; k++)
                own += lq_stw_tensor(w, i)->name == names[k];
        CHECK_EQ_U64((uint64_t)own, v ? 300 : 0);
        CHECK(write_all(w, &err) == LQ_OK);
        CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);
    }
    size_t l0 = 0, l1 = 0;
    unsigned char *a = tu_read(path[0], &l0), *b = tu_read(path[1], &l1);
    CHECK(a && b && l0 == l1 && l0 > 0 && memcmp(a, b, l0) == 0);
    free(a);
    free(b);
    for (int v = 0; v < 2; v++) {
        unlink(path[v]);
        free(path[v]);
    }
}

/* Mixed dtypes and names: checks the layout rules on the written file through the strict
 * reader, and the data bytes. */
static void test_layout_rules(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "mixed.safetensors");
    lq_stw *w = NULL;
    struct {
        const char *name;
        lq_dtype dt;
        uint32_t rank;
        uint64_t shape[3];
    } decl[] = {
        {"z.bias", LQ_DTYPE_BF16, 1, {5}},
        {"a.scale", LQ_DTYPE_F8_E8M0, 2, {3, 2}},
        {"m.weight", LQ_DTYPE_F32, 2, {3, 3}},
        {"b.weight", LQ_DTYPE_F32, 1, {7}},
        {"idx", LQ_DTYPE_I64, 1, {2}},
        {"f64", LQ_DTYPE_F64, 1, {1}},
        {"packed", LQ_DTYPE_F4, 2, {4, 6}}, /* shape counts elements: 24 -> 12 bytes */
        {"flags", LQ_DTYPE_BOOL, 1, {5}},
        {"empty", LQ_DTYPE_F16, 2, {0, 4}},
        {"scalar", LQ_DTYPE_I32, 0, {0}},
        {"q", LQ_DTYPE_U8, 1, {9}},
        {"e4", LQ_DTYPE_F8_E4M3, 1, {4}},
        {"e5", LQ_DTYPE_F8_E5M2, 1, {4}},
        {"i8", LQ_DTYPE_I8, 1, {4}},
        {"h", LQ_DTYPE_F16, 1, {3}},
    };
    size_t nd = sizeof(decl) / sizeof(decl[0]);
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    for (size_t i = 0; i < nd; i++)
        CHECK(lq_stw_add(w, decl[i].name, decl[i].dt, decl[i].rank, decl[i].shape, &err) ==
              LQ_OK);
    CHECK(lq_stw_set_metadata(w, "zz", "last", &err) == LQ_OK);
    CHECK(lq_stw_set_metadata(w, "author", "x", &err) == LQ_OK);
    CHECK(lq_stw_set_metadata(w, "author", "mimo-quant", &err) == LQ_OK); /* replaces */
    CHECK(lq_stw_begin(w, &err) == LQ_OK);
    CHECK_EQ_U64(lq_stw_count(w), nd);

    /* Layout order from the reference rule: dtype enum descending, then name. */
    const char *order[] = {"idx", "f64", "b.weight", "m.weight", "scalar", "z.bias", "empty",
                           "h", "a.scale", "e4", "e5", "i8", "q", "packed", "flags"};
    uint64_t expect_bytes[] = {16, 8, 28, 36, 4, 10, 0, 6, 6, 4, 4, 4, 9, 12, 5};
    uint64_t off = 0;
    for (size_t i = 0; i < nd; i++) {
        const lq_tensor_info *t = lq_stw_tensor(w, i);
        CHECK_STR(t->name, order[i]);
        CHECK_EQ_U64(t->nbytes, expect_bytes[i]);
        CHECK_EQ_U64(t->begin, off);
        off += expect_bytes[i];
        CHECK_EQ_U64(t->end, off);
    }
    CHECK_EQ_U64(lq_stw_total_size(w), off);
    CHECK_EQ_U64(lq_stw_header_len(w) % 8, 0);
    uint64_t hlen = lq_stw_header_len(w);
    CHECK(write_all(w, &err) == LQ_OK);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);

    size_t len = 0;
    unsigned char *buf = tu_read(path, &len);
    CHECK(buf != NULL);
    if (!buf)
        goto out;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)buf[i] << (8 * i);
    CHECK_EQ_U64(n, hlen);
    CHECK_EQ_U64(len, 8 + n + off);
    const char *meta = "{\"__metadata__\":{\"format\":\"pt\",\"author\":\"mimo-quant\","
                       "\"zz\":\"last\"},";
    CHECK(memcmp(buf + 8, meta, strlen(meta)) == 0);
    /* padding: the JSON ends with '}' followed only by spaces */
    size_t last = 8 + (size_t)n - 1;
    while (last > 8 && buf[last] == ' ')
        last--;
    CHECK(buf[last] == '}');
    CHECK(8 + n - 1 - last < 8);
    /* the F4 entry records the logical element shape */
    CHECK(strstr((char *)buf + 8, "\"packed\":{\"dtype\":\"F4\",\"shape\":[4,6],") != NULL);
    CHECK(strstr((char *)buf + 8, "\"scalar\":{\"dtype\":\"I32\",\"shape\":[],"
                                  "\"data_offsets\":[88,92]}") != NULL);

    lq_st_file *sf = NULL;
    lq_status st = lq_st_open(path, NULL, &sf, &err);
    CHECK_MSG(st == LQ_OK, "strict reader rejected our file: %s %s", err.rule, err.msg);
    if (st == LQ_OK) {
        CHECK_EQ_U64(lq_st_count(sf), nd);
        CHECK_STR(lq_st_metadata(sf, "format"), "pt");
        CHECK_STR(lq_st_metadata(sf, "author"), "mimo-quant");
        for (size_t i = 0; i < nd; i++) {
            const lq_tensor_info *t = lq_st_find(sf, order[i]);
            CHECK(t != NULL);
            if (!t)
                continue;
            CHECK_EQ_U64(t->nbytes, expect_bytes[i]);
            unsigned char *want = malloc(t->nbytes + 1);
            fill(want, (size_t)t->nbytes, (unsigned)i);
            CHECK(memcmp(lq_st_data(sf, t), want, (size_t)t->nbytes) == 0);
            free(want);
        }
        const lq_tensor_info *pk = lq_st_find(sf, "packed");
        CHECK(pk && pk->dtype == LQ_DTYPE_F4 && pk->rank == 2 && pk->shape[1] == 6);
        const lq_tensor_info *sc = lq_st_find(sf, "scalar");
        CHECK(sc && sc->rank == 0 && sc->numel == 1);
        lq_st_close(sf);
    }
out:
    free(buf);
    unlink(path);
    free(path);
}

/* Names are escaped as serde_json escapes them (observed with safetensors 0.8): quote and
 * backslash, short forms for \b \t \n \f \r, \u00xx for other control bytes, DEL and UTF-8
 * raw. */
static void test_escaping(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "esc.safetensors");
    lq_stw *w = NULL;
    const char *name = "a\"q\\\n\x01\x1f\x7f\xc3\xa9\xe2\x80\xa8/\b\t\f\r";
    uint64_t s1[1] = {1};
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    CHECK(lq_stw_add(w, name, LQ_DTYPE_U8, 1, s1, &err) == LQ_OK);
    CHECK(lq_stw_set_metadata(w, "k\"", "v\n\xc3\xa9", &err) == LQ_OK);
    CHECK(lq_stw_begin(w, &err) == LQ_OK);
    CHECK(lq_stw_write(w, "Z", 1, &err) == LQ_OK);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);
    size_t len = 0;
    unsigned char *buf = tu_read(path, &len);
    const char *want = "\"a\\\"q\\\\\\n\\u0001\\u001f\x7f\xc3\xa9\xe2\x80\xa8/\\b\\t\\f\\r\":"
                       "{\"dtype\":\"U8\"";
    CHECK(buf && strstr((char *)buf + 8, want) != NULL);
    CHECK(buf && strstr((char *)buf + 8, "\"k\\\"\":\"v\\n\xc3\xa9\"") != NULL);
    free(buf);
    lq_st_file *sf = NULL;
    CHECK(lq_st_open(path, NULL, &sf, &err) == LQ_OK);
    if (sf) {
        CHECK(lq_st_find(sf, name) != NULL);
        CHECK_STR(lq_st_metadata(sf, "k\""), "v\n\xc3\xa9");
        lq_st_close(sf);
    }
    unlink(path);
    free(path);
}

/* Streaming in odd-sized chunks gives the same file (same digest) as whole-tensor writes. */
static void test_chunked_equals_whole(void)
{
    lq_error err;
    char *p1 = tu_path(g_dir, "whole.safetensors"), *p2 = tu_path(g_dir, "chunks.safetensors");
    uint64_t sh_a[2] = {300, 129}, sh_b[1] = {1000}, sh_c[1] = {0}, sh_d[1] = {77};
    uint8_t d1[32], d2[32];
    for (int pass = 0; pass < 2; pass++) {
        lq_stw *w = NULL;
        CHECK(lq_stw_create(pass ? p2 : p1, &w, &err) == LQ_OK);
        CHECK(lq_stw_add(w, "a", LQ_DTYPE_BF16, 2, sh_a, &err) == LQ_OK);
        CHECK(lq_stw_add(w, "b", LQ_DTYPE_F32, 1, sh_b, &err) == LQ_OK);
        CHECK(lq_stw_add(w, "c", LQ_DTYPE_F32, 1, sh_c, &err) == LQ_OK);
        CHECK(lq_stw_add(w, "d", LQ_DTYPE_U8, 1, sh_d, &err) == LQ_OK);
        CHECK(lq_stw_begin(w, &err) == LQ_OK);
        if (pass == 0) {
            CHECK(write_all(w, &err) == LQ_OK);
        } else {
            /* same bytes as write_all, delivered 1, 2, 3, ... bytes at a time */
            for (size_t i = 0; i < lq_stw_count(w); i++) {
                const lq_tensor_info *t = lq_stw_tensor(w, i);
                if (t->nbytes == 0)
                    continue; /* zero-byte tensors need no call */
                CHECK_STR(lq_stw_next(w), t->name);
                unsigned char *buf = malloc((size_t)t->nbytes);
                fill(buf, (size_t)t->nbytes, (unsigned)i);
                size_t off = 0, step = 1;
                while (off < t->nbytes) {
                    size_t k = t->nbytes - off < step ? (size_t)(t->nbytes - off) : step;
                    CHECK(lq_stw_write(w, buf + off, k, &err) == LQ_OK);
                    off += k;
                    step++;
                }
                free(buf);
            }
        }
        CHECK(lq_stw_finish(w, pass ? d2 : d1, NULL, &err) == LQ_OK);
    }
    CHECK(memcmp(d1, d2, 32) == 0);
    size_t l1 = 0, l2 = 0;
    unsigned char *b1 = tu_read(p1, &l1), *b2 = tu_read(p2, &l2);
    CHECK(b1 && b2 && l1 == l2 && memcmp(b1, b2, l1) == 0);
    uint8_t d3[32];
    if (b1)
        lq_sha256(b1, l1, d3);
    CHECK(b1 && memcmp(d1, d3, 32) == 0); /* the digest describes the file's bytes */
    free(b1);
    free(b2);
    unlink(p1);
    unlink(p2);
    free(p1);
    free(p2);
}

/* lq_stw_measure: the header length and data size lq_stw_begin then gives, the file size
 * 8 + N + total, nothing created (not even in the directory of a path that does not exist);
 * the writer can be measured twice and begun afterwards, giving the same file. */
static void test_measure(void)
{
    lq_error err;
    char *missing = tu_path(g_dir, "no-such-dir/m.safetensors");
    char *path = tu_path(g_dir, "measured.safetensors");
    uint64_t sh_a[2] = {300, 129}, sh_b[1] = {1000}, sh_c[1] = {0}, sh_d[3] = {7, 11, 13};
    const char *names[4] = {"model.layers.0.mlp.experts.0.up_proj.weight", "b\"q", "c", "zz.\xc3\xa9"};
    for (int pass = 0; pass < 2; pass++) {
        lq_stw *w = NULL;
        CHECK(lq_stw_create(pass ? path : missing, &w, &err) == LQ_OK);
        CHECK(lq_stw_add(w, names[0], LQ_DTYPE_BF16, 2, sh_a, &err) == LQ_OK);
        CHECK(lq_stw_add(w, names[1], LQ_DTYPE_F32, 1, sh_b, &err) == LQ_OK);
        CHECK(lq_stw_add(w, names[2], LQ_DTYPE_F32, 1, sh_c, &err) == LQ_OK);
        CHECK(lq_stw_add(w, names[3], LQ_DTYPE_U8, 3, sh_d, &err) == LQ_OK);
        uint64_t n1 = 0, t1 = 0, n2 = 1, t2 = 1;
        CHECK(lq_stw_measure(w, &n1, &t1, &err) == LQ_OK);
        CHECK(lq_stw_measure(w, &n2, &t2, &err) == LQ_OK);
        CHECK_EQ_U64(n1, n2);
        CHECK_EQ_U64(t1, t2);
        CHECK_EQ_U64(n1 % 8, 0);
        CHECK_EQ_U64(t1, 300 * 129 * 2 + 1000 * 4 + 7 * 11 * 13);
        CHECK(!tu_exists(missing));
        if (!pass) {
            lq_stw_abort(w);
            continue;
        }
        CHECK_EQ_U64(tu_hidden_count(g_dir), 0); /* no temporary before lq_stw_begin */
        CHECK(lq_stw_begin(w, &err) == LQ_OK);
        CHECK_EQ_U64(lq_stw_header_len(w), n1);
        CHECK_EQ_U64(lq_stw_total_size(w), t1);
        CHECK(lq_stw_measure(w, NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT); /* after begin */
        CHECK_STR(err.rule, "STW_STATE");
        CHECK(write_all(w, &err) == LQ_OK);
        uint64_t fsize = 0;
        CHECK(lq_stw_finish(w, NULL, &fsize, &err) == LQ_OK);
        CHECK_EQ_U64(fsize, 8 + n1 + t1);
        size_t len = 0;
        unsigned char *buf = tu_read(path, &len);
        CHECK(buf && len == 8 + n1 + t1);
        free(buf);
    }
    unlink(path);
    free(path);
    free(missing);
}

/* Declaration errors: each rule id, and the writer stays usable for valid tensors. */
static void test_add_errors(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "adderr.safetensors");
    lq_stw *w = NULL;
    uint64_t s1[1] = {1}, big[2] = {UINT64_MAX / 2, 3}, odd[1] = {3}, s9[9] = {1, 1, 1, 1, 1,
                                                                              1, 1, 1, 1};
    char longname[1100];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "t", LQ_DTYPE_U8, 1, s1, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "t", LQ_DTYPE_F32, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_DUP_NAME");
    CHECK(lq_stw_add(w, "", LQ_DTYPE_U8, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_NAME");
    CHECK(lq_stw_add(w, "bad\xc3", LQ_DTYPE_U8, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_NAME");
    CHECK(lq_stw_add(w, "__metadata__", LQ_DTYPE_U8, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_NAME");
    CHECK(lq_stw_add(w, longname, LQ_DTYPE_U8, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_NAME");
    CHECK(lq_stw_add(w, "x", LQ_DTYPE_INVALID, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_DTYPE");
    CHECK(lq_stw_add(w, "x", LQ_DTYPE_COUNT, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_DTYPE");
    CHECK(lq_stw_add(w, "x", LQ_DTYPE_U8, 9, s9, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_RANK");
    CHECK(lq_stw_add(w, "x", LQ_DTYPE_U8, 2, big, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "ST_NUMEL_OVERFLOW");
    CHECK(lq_stw_add(w, "x", LQ_DTYPE_F4, 1, odd, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "ST_SUBBYTE");
    CHECK(lq_stw_set_metadata(w, "format", "tf", &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_METADATA");
    CHECK(lq_stw_write(w, "x", 1, &err) == LQ_ERR_INVALID_ARGUMENT); /* before begin */
    CHECK_STR(err.rule, "STW_STATE");
    CHECK(lq_stw_begin(w, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "late", LQ_DTYPE_U8, 1, s1, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_STATE");
    CHECK(lq_stw_write_tensor(w, "t", "A", 1, &err) == LQ_OK);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);
    lq_st_file *sf = NULL;
    CHECK(lq_st_open(path, NULL, &sf, &err) == LQ_OK);
    CHECK(sf && lq_st_count(sf) == 1);
    lq_st_close(sf);
    unlink(path);
    free(path);
}

/* Starts a writer with three tensors a(F32[4]=16 B), b(F32[2]=8 B), c(U8[3]). */
static lq_stw *three(const char *path)
{
    lq_error err;
    lq_stw *w = NULL;
    uint64_t s4[1] = {4}, s2[1] = {2}, s3[1] = {3};
    if (lq_stw_create(path, &w, &err) != LQ_OK)
        return NULL;
    lq_stw_add(w, "a", LQ_DTYPE_F32, 1, s4, &err);
    lq_stw_add(w, "b", LQ_DTYPE_F32, 1, s2, &err);
    lq_stw_add(w, "c", LQ_DTYPE_U8, 1, s3, &err);
    if (lq_stw_begin(w, &err) != LQ_OK) {
        lq_stw_abort(w);
        return NULL;
    }
    return w;
}

/* Wrong writes: each is rejected with its rule, the temporary disappears at once and nothing
 * is published; later calls report STW_FAILED. */
static void test_write_errors(void)
{
    lq_error err, ferr;
    unsigned char buf[64] = {0};
    char *path = tu_path(g_dir, "bad.safetensors");
    struct {
        const char *what;
        int kind;
        const char *rule;
    } cases[] = {
        {"out of order", 0, "STW_ORDER"},     {"unknown name", 1, "STW_ORDER"},
        {"oversize tensor", 2, "STW_SIZE"},   {"undersize tensor", 3, "STW_SIZE"},
        {"chunk past end", 4, "STW_ORDER"},   {"bytes after the end", 5, "STW_ORDER"},
        {"whole after partial", 6, "STW_ORDER"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        lq_stw *w = three(path);
        CHECK(w != NULL);
        if (!w)
            continue;
        lq_status st = LQ_OK;
        lq_error_clear(&err);
        switch (cases[k].kind) {
        case 0: st = lq_stw_write_tensor(w, "b", buf, 8, &err); break;
        case 1: st = lq_stw_write_tensor(w, "nope", buf, 8, &err); break;
        case 2: st = lq_stw_write_tensor(w, "a", buf, 17, &err); break;
        case 3: st = lq_stw_write_tensor(w, "a", buf, 15, &err); break;
        case 4:
            lq_stw_write(w, buf, 10, &err);
            st = lq_stw_write(w, buf, 7, &err); /* 6 bytes left in a */
            break;
        case 5:
            lq_stw_write(w, buf, 16, &err);
            lq_stw_write(w, buf, 8, &err);
            lq_stw_write(w, buf, 3, &err);
            st = lq_stw_write(w, buf, 1, &err);
            break;
        case 6:
            lq_stw_write(w, buf, 4, &err);
            st = lq_stw_write_tensor(w, "a", buf, 16, &err);
            break;
        }
        CHECK_MSG(st == LQ_ERR_INVALID_ARGUMENT, "%s: status %d", cases[k].what, (int)st);
        CHECK_MSG(strcmp(err.rule, cases[k].rule) == 0, "%s: rule %s, want %s", cases[k].what,
                  err.rule, cases[k].rule);
        CHECK_MSG(tu_hidden_count(g_dir) == 0, "%s: temporary left", cases[k].what);
        /* the writer is dead now */
        CHECK(lq_stw_write(w, buf, 1, &ferr) == LQ_ERR_INVALID_ARGUMENT);
        CHECK_STR(ferr.rule, "STW_FAILED");
        CHECK(lq_stw_next(w) == NULL);
        CHECK(lq_stw_finish(w, NULL, NULL, &ferr) != LQ_OK);
        CHECK_STR(ferr.rule, "STW_FAILED");
        CHECK_MSG(!tu_exists(path), "%s: file published", cases[k].what);
    }

    /* Incomplete: some bytes missing at finish. */
    lq_stw *w = three(path);
    CHECK(w && lq_stw_write_tensor(w, "a", buf, 16, &err) == LQ_OK);
    CHECK(w && lq_stw_write(w, buf, 5, &err) == LQ_OK);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_INCOMPLETE");
    CHECK_STR(err.tensor, "b");
    CHECK(!tu_exists(path));
    CHECK_EQ_U64(tu_hidden_count(g_dir), 0);

    /* Abort mid-stream, and finish before begin. */
    w = three(path);
    CHECK(w && lq_stw_write(w, buf, 3, &err) == LQ_OK);
    lq_stw_abort(w);
    lq_stw_abort(NULL);
    CHECK(!tu_exists(path));
    CHECK_EQ_U64(tu_hidden_count(g_dir), 0);
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "STW_STATE");
    CHECK(!tu_exists(path));

    /* An existing file at the final name survives a failed writer untouched. */
    CHECK(lq_write_file_atomic(path, "keep", 4, NULL, &err) == LQ_OK);
    w = three(path);
    CHECK(w && lq_stw_write_tensor(w, "c", buf, 3, &err) == LQ_ERR_INVALID_ARGUMENT);
    lq_stw_abort(w);
    size_t len = 0;
    unsigned char *got = tu_read(path, &len);
    CHECK(got && len == 4 && memcmp(got, "keep", 4) == 0);
    free(got);
    unlink(path);
    free(path);
}

/* Edge files: no tensors at all, and only zero-byte tensors. */
static void test_empty_files(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "empty.safetensors");
    lq_stw *w = NULL;
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    CHECK(lq_stw_begin(w, &err) == LQ_OK);
    CHECK(lq_stw_next(w) == NULL);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);
    size_t len = 0;
    unsigned char *buf = tu_read(path, &len);
    /* {"__metadata__":{"format":"pt"}} is 32 bytes: already a multiple of 8, no padding */
    CHECK(buf && len == 40 && buf[0] == 32 && memcmp(buf + 8, "{\"__metadata__\":{\"format\":"
                                                              "\"pt\"}}", 32) == 0);
    free(buf);
    lq_st_file *sf = NULL;
    CHECK(lq_st_open(path, NULL, &sf, &err) == LQ_OK);
    CHECK(sf && lq_st_count(sf) == 0);
    lq_st_close(sf);

    uint64_t z[2] = {0, 5};
    CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "z1", LQ_DTYPE_F32, 2, z, &err) == LQ_OK);
    CHECK(lq_stw_add(w, "z2", LQ_DTYPE_U8, 1, z, &err) == LQ_OK);
    CHECK(lq_stw_begin(w, &err) == LQ_OK);
    CHECK(lq_stw_next(w) == NULL);
    CHECK(lq_stw_write_tensor(w, "z2", NULL, 0, &err) == LQ_OK);
    CHECK(lq_stw_write_tensor(w, "z1", NULL, 0, &err) == LQ_OK);
    CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);
    CHECK(lq_st_open(path, NULL, &sf, &err) == LQ_OK);
    CHECK(sf && lq_st_count(sf) == 2);
    lq_st_close(sf);
    unlink(path);
    free(path);
}

static void test_shard_plan(void)
{
    uint32_t so[8];
    /* greedy fill: 3+3 fits 6, the third opens shard 1 */
    uint64_t a[] = {3, 3, 3};
    CHECK_EQ_U64(lq_shard_plan(a, 3, 6, so), 2);
    CHECK(so[0] == 0 && so[1] == 0 && so[2] == 1);
    /* an exact fill closes only when the next tensor would exceed the limit */
    uint64_t b[] = {5, 5};
    CHECK_EQ_U64(lq_shard_plan(b, 2, 5, so), 2);
    CHECK(so[0] == 0 && so[1] == 1);
    /* an oversize tensor takes a shard at once, numbered before the open shard */
    uint64_t c[] = {2, 10, 2, 4};
    CHECK_EQ_U64(lq_shard_plan(c, 4, 5, so), 3);
    CHECK(so[1] == 0 && so[0] == 1 && so[2] == 1 && so[3] == 2);
    /* oversize first and last, zero-size tensors ride along */
    uint64_t d[] = {9, 0, 1, 0, 9};
    CHECK_EQ_U64(lq_shard_plan(d, 5, 4, so), 3);
    CHECK(so[0] == 0 && so[4] == 1 && so[1] == 2 && so[2] == 2 && so[3] == 2);
    /* everything fits in one shard; nothing at all gives none */
    uint64_t e[] = {1, 2, 3};
    CHECK_EQ_U64(lq_shard_plan(e, 3, 5000000000ull, so), 1);
    CHECK(so[0] == 0 && so[1] == 0 && so[2] == 0);
    CHECK_EQ_U64(lq_shard_plan(e, 0, 10, so), 0);

    char name[64];
    lq_shard_name("model", 0, 3, 1, name, sizeof(name));
    CHECK_STR(name, "model-00001-of-00003.safetensors");
    lq_shard_name("model", 2, 3, 1, name, sizeof(name));
    CHECK_STR(name, "model-00003-of-00003.safetensors");
    lq_shard_name("model", 0, 1, 1, name, sizeof(name));
    CHECK_STR(name, "model.safetensors");
    lq_shard_name("model", 0, 1, 0, name, sizeof(name));
    CHECK_STR(name, "model-00001-of-00001.safetensors");
    lq_shard_name("dflash_draft_model", 1, 12, 1, name, sizeof(name));
    CHECK_STR(name, "dflash_draft_model-00002-of-00012.safetensors");
    lq_shard_name("model", 99999, 123456, 1, name, sizeof(name));
    CHECK_STR(name, "model-100000-of-123456.safetensors"); /* {:05d} widens, as Python */
}

static void test_index(void)
{
    lq_error err;
    char *path = tu_path(g_dir, "model.safetensors.index.json");
    const char *names[] = {"b.weight", "a.weight", "\xc3\xa9", "q\"\\\n\x7f\xf0\x9f\x98\x80"};
    const char *files[] = {"model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors",
                           "model-00001-of-00002.safetensors", "x"};
    cJSON *extra = cJSON_Parse("{\"tp_size\": 2, \"note\": {\"z\": 0.5, \"a\": [1, true, null]}}");
    CHECK(extra != NULL);
    uint8_t sha[32];
    CHECK(lq_index_write(path, names, files, 4, 123456789012345ull, extra, sha, &err) == LQ_OK);
    const char *want =
        "{\n"
        "  \"metadata\": {\n"
        "    \"note\": {\n"
        "      \"a\": [\n"
        "        1,\n"
        "        true,\n"
        "        null\n"
        "      ],\n"
        "      \"z\": 0.5\n"
        "    },\n"
        "    \"total_size\": 123456789012345,\n"
        "    \"tp_size\": 2\n"
        "  },\n"
        "  \"weight_map\": {\n"
        "    \"a.weight\": \"model-00001-of-00002.safetensors\",\n"
        "    \"b.weight\": \"model-00002-of-00002.safetensors\",\n"
        "    \"q\\\"\\\\\\n\\u007f\\ud83d\\ude00\": \"x\",\n"
        "    \"\\u00e9\": \"model-00001-of-00002.safetensors\"\n"
        "  }\n"
        "}\n";
    size_t len = 0;
    unsigned char *buf = tu_read(path, &len);
    CHECK_MSG(buf && len == strlen(want) && memcmp(buf, want, len) == 0, "index text:\n%s",
              buf ? (char *)buf : "(none)");
    uint8_t d[32];
    if (buf)
        lq_sha256(buf, len, d);
    CHECK(buf && memcmp(d, sha, 32) == 0);
    /* and it is strict JSON with the exact total */
    cJSON *root = NULL;
    CHECK(buf && lq_json_parse((const char *)buf, len, NULL, path, &root, &err) == LQ_OK);
    uint64_t ts = 0;
    CHECK(root && lq_json_u64(lq_json_get(lq_json_get(root, "metadata"), "total_size"), &ts) == 0 &&
          ts == 123456789012345ull);
    cJSON_Delete(root);
    free(buf);

    /* no extra metadata, no tensors */
    CHECK(lq_index_write(path, NULL, NULL, 0, 0, NULL, NULL, &err) == LQ_OK);
    buf = tu_read(path, &len);
    const char *want0 = "{\n  \"metadata\": {\n    \"total_size\": 0\n  },\n  \"weight_map\": {}\n}\n";
    CHECK(buf && strcmp((char *)buf, want0) == 0);
    free(buf);

    /* errors: nothing is written */
    unlink(path);
    const char *dup_names[] = {"a", "a"};
    const char *two_files[] = {"f1", "f2"};
    CHECK(lq_index_write(path, dup_names, two_files, 2, 0, NULL, NULL, &err) ==
          LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "IDX_DUP_NAME");
    const char *ok_names[] = {"a", "b"};
    const char *bad_files[] = {"f1", "../f2"};
    CHECK(lq_index_write(path, ok_names, bad_files, 2, 0, NULL, NULL, &err) ==
          LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "IDX_FILE");
    cJSON *bad = cJSON_Parse("{\"total_size\": 5}");
    CHECK(lq_index_write(path, ok_names, two_files, 2, 0, bad, NULL, &err) ==
          LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "IDX_METADATA");
    cJSON_Delete(bad);
    bad = cJSON_Parse("[1]");
    CHECK(lq_index_write(path, ok_names, two_files, 2, 0, bad, NULL, &err) ==
          LQ_ERR_INVALID_ARGUMENT);
    CHECK_STR(err.rule, "IDX_METADATA");
    cJSON_Delete(bad);
    CHECK(!tu_exists(path));
    cJSON_Delete(extra);
    free(path);
}

/* A sharded checkpoint end to end: plan, write each shard, write the index, and check every
 * tensor is in exactly the shard the index names, with total_size the sum of tensor bytes. */
static void test_sharded_roundtrip(void)
{
    lq_error err;
    enum { NT = 7 };
    const char *names[NT] = {"l0.w", "l0.b", "l1.w", "l1.b", "big", "l2.w", "norm"};
    uint64_t rows[NT] = {16, 1, 16, 1, 200, 16, 1};
    uint64_t nbytes[NT];
    for (int i = 0; i < NT; i++)
        nbytes[i] = rows[i] * 8 * 2; /* BF16 [rows, 8] */
    uint32_t shard_of[NT];
    uint32_t ns = lq_shard_plan(nbytes, NT, 600, shard_of);
    CHECK(ns >= 2);
    char files[NT][64];
    const char *fptr[NT];
    uint64_t total = 0;
    for (uint32_t s = 0; s < ns; s++) {
        char fname[64];
        lq_shard_name("model", s, ns, 1, fname, sizeof(fname));
        char *path = tu_path(g_dir, fname);
        lq_stw *w = NULL;
        CHECK(lq_stw_create(path, &w, &err) == LQ_OK);
        for (int i = 0; i < NT; i++) {
            if (shard_of[i] != s)
                continue;
            uint64_t shape[2] = {rows[i], 8};
            CHECK(lq_stw_add(w, names[i], LQ_DTYPE_BF16, 2, shape, &err) == LQ_OK);
            snprintf(files[i], sizeof(files[i]), "%s", fname);
            fptr[i] = files[i];
        }
        CHECK(lq_stw_begin(w, &err) == LQ_OK);
        total += lq_stw_total_size(w);
        CHECK(write_all(w, &err) == LQ_OK);
        CHECK(lq_stw_finish(w, NULL, NULL, &err) == LQ_OK);
        free(path);
    }
    uint64_t sum = 0;
    for (int i = 0; i < NT; i++)
        sum += nbytes[i];
    CHECK_EQ_U64(total, sum);
    char *ipath = tu_path(g_dir, "model.safetensors.index.json");
    CHECK(lq_index_write(ipath, names, fptr, NT, total, NULL, NULL, &err) == LQ_OK);
    cJSON *root = NULL;
    CHECK(lq_json_parse_file(ipath, 0, NULL, &root, &err) == LQ_OK);
    const cJSON *wm = lq_json_get(root, "weight_map");
    int seen = 0;
    for (const cJSON *e = wm ? wm->child : NULL; e; e = e->next) {
        char *spath = tu_path(g_dir, e->valuestring);
        lq_st_file *sf = NULL;
        CHECK(lq_st_open(spath, NULL, &sf, &err) == LQ_OK);
        CHECK(sf && lq_st_find(sf, e->string) != NULL);
        lq_st_close(sf);
        free(spath);
        seen++;
    }
    CHECK_EQ_U64(seen, NT);
    /* each tensor appears in one shard only */
    int total_in_shards = 0;
    for (uint32_t s = 0; s < ns; s++) {
        char fname[64];
        lq_shard_name("model", s, ns, 1, fname, sizeof(fname));
        char *spath = tu_path(g_dir, fname);
        lq_st_file *sf = NULL;
        if (lq_st_open(spath, NULL, &sf, &err) == LQ_OK)
            total_in_shards += (int)lq_st_count(sf);
        lq_st_close(sf);
        unlink(spath);
        free(spath);
    }
    CHECK_EQ_U64(total_in_shards, NT);
    cJSON_Delete(root);
    unlink(ipath);
    free(ipath);
}

int main(void)
{
    g_dir = tu_mkdtemp("lq-stwriter");
    if (!g_dir) {
        fprintf(stderr, "cannot create a scratch directory\n");
        return 1;
    }
    test_exact_bytes();
    test_layout_rules();
    test_reserve_borrow();
    test_escaping();
    test_chunked_equals_whole();
    test_measure();
    test_add_errors();
    test_write_errors();
    test_empty_files();
    test_shard_plan();
    test_index();
    test_sharded_roundtrip();
    CHECK_EQ_U64(tu_hidden_count(g_dir), 0);
    tu_rmtree(g_dir);
    free(g_dir);
    return th_finish("test_stwriter");
}
