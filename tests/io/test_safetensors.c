/* Strict safetensors reader (libquant/safetensors.h) on valid files.
 *
 * Files are assembled by tests/io/st_build.c, which lays tensors out back to back from its own
 * dtype bit table (reference/mxfp4_formats.md 3.2) and fills the data section with a known
 * pattern; every expected offset, size and byte below is computed by that helper or by hand
 * from the format description (reference 3.1), never taken from the reader's output. */
#include "../harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libquant/safetensors.h"
#include "st_build.h"

/* Checks every tensor of f against the specs the image was built from (list order = offset
 * order) and the data pattern. base is the start of the image. */
static void check_against_specs(const lq_st_file *f, const uint8_t *base, const stb_tensor *specs,
                                size_t n)
{
    CHECK_EQ_U64(lq_st_count(f), n);
    uint64_t data_start = 8 + lq_st_header_len(f);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const stb_tensor *s = &specs[i];
        const lq_tensor_info *t = lq_st_find(f, s->name);
        CHECK_MSG(t != NULL, "tensor %s not found", s->name);
        if (!t)
            continue;
        uint64_t nbytes = stb_tensor_bytes(s), numel = 1;
        for (unsigned r = 0; r < s->rank; r++)
            numel *= s->shape[r];
        CHECK_STR(t->name, s->name);
        CHECK_STR(lq_dtype_name(t->dtype), s->dtype);
        CHECK_EQ_U64(t->rank, s->rank);
        for (unsigned r = 0; r < s->rank; r++)
            CHECK_EQ_U64(t->shape[r], s->shape[r]);
        CHECK_EQ_U64(t->numel, numel);
        CHECK_EQ_U64(t->nbytes, nbytes);
        CHECK_EQ_U64(t->begin, off);
        CHECK_EQ_U64(t->end, off + nbytes);
        const uint8_t *d = lq_st_data(f, t);
        if (base)
            CHECK(d == base + data_start + off);
        int same = 1;
        for (uint64_t k = 0; k < nbytes; k++)
            if (d[k] != stb_pattern(off + k))
                same = 0;
        CHECK_MSG(same, "data of %s differ from the pattern", s->name);
        off += nbytes;
    }
    /* Name order, byte-wise. */
    for (size_t i = 1; i < lq_st_count(f); i++)
        CHECK(strcmp(lq_st_tensor(f, i - 1)->name, lq_st_tensor(f, i)->name) < 0);
    CHECK(lq_st_tensor(f, lq_st_count(f)) == NULL);
}

static const stb_tensor mixed[] = {
    {"model.embed_tokens.weight", "BF16", 2, {3, 4}},
    {"scale", "F8_E8M0", 1, {5}},            /* 5 bytes: everything after is unaligned */
    {"w.f32", "F32", 2, {2, 3}},
    {"w.fp8", "F8_E4M3", 2, {3, 3}},
    {"w.f4", "F4", 2, {2, 4}},               /* 8 elements in 4 bytes */
    {"w.f6", "F6_E2M3", 1, {4}},             /* 4 elements in 3 bytes */
    {"empty", "F16", 2, {0, 5}},             /* zero elements, zero bytes */
    {"step", "I64", 0, {0}},                 /* rank 0: a scalar of one element */
    {"flag", "BOOL", 1, {1}},
    {"Scale", "U8", 1, {2}},                 /* differs from "scale" only in case */
    {"c", "C64", 1, {1}},
    {"last.empty", "U64", 1, {0}},           /* zero-length at the very end */
};
#define NMIXED (sizeof(mixed) / sizeof(mixed[0]))

static void test_mixed_memory(void)
{
    size_t len = 0;
    char *header = NULL;
    uint8_t *img = stb_build(mixed, NMIXED, "{\"format\":\"pt\",\"note\":\"x\\\"y\"}", 0, &len,
                             &header);
    lq_st_file *f = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_st_open_memory(img, len, "mixed", NULL, &f, &err);
    CHECK_MSG(st == LQ_OK, "open: %s %s", err.rule, err.msg);
    if (st == LQ_OK) {
        check_against_specs(f, img, mixed, NMIXED);
        CHECK_EQ_U64(lq_st_file_size(f), len);
        CHECK_EQ_U64(lq_st_header_len(f), strlen(header));
        CHECK_STR(lq_st_path(f), "mixed");

        /* Rank 0: one element; zero-element tensors: zero bytes, begin == end. */
        const lq_tensor_info *t = lq_st_find(f, "step");
        CHECK(t && t->rank == 0 && t->numel == 1 && t->nbytes == 8);
        t = lq_st_find(f, "empty");
        CHECK(t && t->numel == 0 && t->nbytes == 0 && t->begin == t->end);
        /* "empty" (zero bytes) shares its offset, 69, with the scalar "step" that follows. */
        CHECK(t && t->begin == 69 && lq_st_find(f, "step") && lq_st_find(f, "step")->begin == 69);

        /* Unaligned: "w.f32" starts 24 + 5 = 29 bytes into the data section, and the header
         * length is not a multiple of 4 either way; reading through memcpy gives the bytes. */
        t = lq_st_find(f, "w.f32");
        CHECK(t && t->begin == 29);
        if (t) {
            const uint8_t *d = lq_st_data(f, t);
            uint64_t abs = 8 + lq_st_header_len(f) + t->begin;
            CHECK_EQ_U64((uint64_t)(d - img), abs);
            uint32_t v;
            memcpy(&v, d + 4, 4);
            uint32_t want = (uint32_t)stb_pattern(33) | (uint32_t)stb_pattern(34) << 8 |
                            (uint32_t)stb_pattern(35) << 16 | (uint32_t)stb_pattern(36) << 24;
            CHECK_EQ_U64(v, want);
        }

        /* Case-sensitive lookup: "Scale" and "scale" are two tensors; "SCALE" is neither. */
        CHECK(lq_st_find(f, "Scale") && lq_st_find(f, "Scale")->dtype == LQ_DTYPE_U8);
        CHECK(lq_st_find(f, "scale") && lq_st_find(f, "scale")->dtype == LQ_DTYPE_F8_E8M0);
        CHECK(lq_st_find(f, "SCALE") == NULL);
        CHECK(lq_st_find(f, "") == NULL);
        CHECK(lq_st_find(f, "__metadata__") == NULL);

        /* Metadata: lookup and key order; values unescaped. */
        CHECK_EQ_U64(lq_st_metadata_count(f), 2);
        CHECK_STR(lq_st_metadata(f, "format"), "pt");
        CHECK_STR(lq_st_metadata(f, "note"), "x\"y");
        CHECK(lq_st_metadata(f, "Format") == NULL);
        const char *k = NULL, *v = NULL;
        CHECK(lq_st_metadata_at(f, 0, &k, &v) == 0);
        CHECK_STR(k, "format");
        CHECK(lq_st_metadata_at(f, 1, &k, &v) == 0);
        CHECK_STR(k, "note");
        CHECK(lq_st_metadata_at(f, 2, &k, &v) == -1);
    }
    lq_st_close(f);
    free(header);
    free(img);
}

/* A header padded with spaces to a multiple of 8, as the reference writer does (3.5). */
static void test_padded_and_empty(void)
{
    static const stb_tensor one[] = {{"x", "F32", 1, {3}}};
    size_t len = 0;
    uint8_t *img = stb_build(one, 1, NULL, 1, &len, NULL);
    lq_st_file *f = NULL;
    lq_error err;
    CHECK(lq_st_open_memory(img, len, "padded", NULL, &f, &err) == LQ_OK);
    CHECK(f && lq_st_header_len(f) % 8 == 0);
    if (f)
        check_against_specs(f, img, one, 1);
    CHECK_EQ_U64(lq_st_metadata_count(f), 0);
    CHECK(lq_st_metadata(f, "format") == NULL);
    lq_st_close(f);
    free(img);

    /* No tensors at all: "{}" and an empty data section. */
    img = stb_image("{}", 0, &len);
    f = NULL;
    CHECK(lq_st_open_memory(img, len, "empty", NULL, &f, &err) == LQ_OK);
    CHECK_EQ_U64(lq_st_count(f), 0);
    CHECK(lq_st_tensor(f, 0) == NULL);
    lq_st_close(f);
    free(img);

    /* Only metadata, and only zero-length tensors sharing offset 0. */
    img = stb_image("{\"__metadata__\":{},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[2,0,3],\"data_offsets\":[0,0]}}",
                    0, &len);
    f = NULL;
    CHECK(lq_st_open_memory(img, len, "zeros", NULL, &f, &err) == LQ_OK);
    CHECK_EQ_U64(lq_st_count(f), 2);
    CHECK_EQ_U64(lq_st_metadata_count(f), 0);
    lq_st_close(f);
    free(img);
}

/* 12,000 tensors: a large header (about 1 MB) still opens, sorts and finds. */
static void test_many_tensors(void)
{
    enum { N = 12000 };
    stb_tensor *specs = calloc(N, sizeof(*specs));
    char (*names)[40] = calloc(N, sizeof(*names));
    /* Built in reverse name order so the reader has to sort. */
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "model.layers.%05d.mlp.weight", N - 1 - i);
        specs[i].name = names[i];
        specs[i].dtype = i % 3 == 0 ? "BF16" : "U8";
        specs[i].rank = 2;
        specs[i].shape[0] = 1 + (uint64_t)(i % 5);
        specs[i].shape[1] = 3;
    }
    size_t len = 0;
    uint8_t *img = stb_build(specs, N, "{\"format\":\"pt\"}", 1, &len, NULL);
    lq_st_file *f = NULL;
    lq_error err;
    lq_status st = lq_st_open_memory(img, len, "many", NULL, &f, &err);
    CHECK_MSG(st == LQ_OK, "open: %s %s", err.rule, err.msg);
    CHECK(lq_st_header_len(f) > 800000);
    if (f) {
        check_against_specs(f, img, specs, N);
        CHECK_STR(lq_st_tensor(f, 0)->name, "model.layers.00000.mlp.weight");
        CHECK_STR(lq_st_tensor(f, N - 1)->name, "model.layers.11999.mlp.weight");
    }
    lq_st_close(f);

    /* The same file under a tensor limit just below and at its count. */
    lq_st_limits lim = {0};
    lim.max_tensors = N - 1;
    f = NULL;
    CHECK(lq_st_open_memory(img, len, "many", &lim, &f, &err) == LQ_ERR_LIMIT);
    CHECK_STR(err.rule, "ST_TENSOR_LIMIT");
    CHECK(f == NULL);
    lim.max_tensors = N;
    CHECK(lq_st_open_memory(img, len, "many", &lim, &f, &err) == LQ_OK);
    lq_st_close(f);
    free(img);
    free(names);
    free(specs);
}

/* The same image through a real file (mmap) and from memory. */
static void test_file_path(void)
{
    char dir[] = "/tmp/lqst-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    char path[256], empty[256], missing[256];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    snprintf(empty, sizeof(empty), "%s/empty.safetensors", dir);
    snprintf(missing, sizeof(missing), "%s/missing.safetensors", dir);
    size_t len = 0;
    uint8_t *img = stb_build(mixed, NMIXED, "{\"format\":\"pt\"}", 1, &len, NULL);
    CHECK(stb_write_file(path, img, len) == 0);
    CHECK(stb_write_file(empty, "", 0) == 0);

    lq_st_file *f = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_st_open(path, NULL, &f, &err);
    CHECK_MSG(st == LQ_OK, "open: %s %s", err.rule, err.msg);
    if (f) {
        check_against_specs(f, NULL, mixed, NMIXED);
        CHECK_STR(lq_st_path(f), path);
        CHECK_EQ_U64(lq_st_file_size(f), len);
        CHECK_STR(lq_st_metadata(f, "format"), "pt");
    }
    lq_st_close(f);

    /* A zero-byte file cannot be mapped; it fails on its size, naming the file. */
    f = NULL;
    CHECK(lq_st_open(empty, NULL, &f, &err) == LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "ST_FILE_SMALL");
    CHECK_STR(err.file, empty);
    CHECK(f == NULL);
    CHECK(lq_st_open(missing, NULL, &f, &err) == LQ_ERR_NOT_FOUND);
    CHECK_STR(err.file, missing);
    CHECK(lq_st_open(dir, NULL, &f, &err) == LQ_ERR_IO);

    /* A corrupt file on disk: same rule as in memory, and the path in the error. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, img, len);
    longer[len] = 0;
    CHECK(stb_write_file(path, longer, len + 1) == 0);
    CHECK(lq_st_open(path, NULL, &f, &err) == LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "ST_TRAILING_BYTES");
    CHECK_STR(err.file, path);
    free(longer);

    /* Argument checks and NULL-tolerant accessors. */
    CHECK(lq_st_open(NULL, NULL, &f, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_st_open(path, NULL, NULL, &err) == LQ_ERR_INVALID_ARGUMENT);
    CHECK(lq_st_open_memory(NULL, 8, "x", NULL, &f, &err) == LQ_ERR_INVALID_ARGUMENT);
    lq_st_close(NULL);
    CHECK(lq_st_count(NULL) == 0 && lq_st_find(NULL, "a") == NULL && lq_st_path(NULL) == NULL);
    CHECK(lq_st_metadata(NULL, "a") == NULL && lq_st_metadata_at(NULL, 0, NULL, NULL) == -1);

    unlink(path);
    unlink(empty);
    rmdir(dir);
    free(img);
}

/* Limits that are not hit by default but can be lowered. */
static void test_limits(void)
{
    static const stb_tensor t[] = {{"abcdef", "F32", 3, {1, 1, 2}}};
    size_t len = 0;
    uint8_t *img = stb_build(t, 1, NULL, 0, &len, NULL);
    lq_st_file *f = NULL;
    lq_error err;
    lq_st_limits lim = {0};

    lim.max_name = 5;
    CHECK(lq_st_open_memory(img, len, "lim", &lim, &f, &err) == LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "ST_NAME");
    CHECK_STR(err.tensor, "abcdef");
    lim.max_name = 6;
    CHECK(lq_st_open_memory(img, len, "lim", &lim, &f, &err) == LQ_OK);
    lq_st_close(f);
    f = NULL;

    lim = (lq_st_limits){0};
    lim.max_rank = 2;
    CHECK(lq_st_open_memory(img, len, "lim", &lim, &f, &err) == LQ_ERR_CORRUPT);
    CHECK_STR(err.rule, "ST_RANK");
    lim.max_rank = 3;
    CHECK(lq_st_open_memory(img, len, "lim", &lim, &f, &err) == LQ_OK);
    lq_st_close(f);
    f = NULL;

    lim = (lq_st_limits){0};
    /* The header is what remains after the length field and 2 F32 values (8 bytes). */
    lim.max_header = len - 16 - 1;
    CHECK(lq_st_open_memory(img, len, "lim", &lim, &f, &err) == LQ_ERR_LIMIT);
    CHECK_STR(err.rule, "ST_HEADER_LIMIT");
    lim.max_header = len - 16;
    CHECK(lq_st_open_memory(img, len, "lim", &lim, &f, &err) == LQ_OK);
    lq_st_close(f);
    free(img);
}

int main(void)
{
    test_mixed_memory();
    test_padded_and_empty();
    test_many_tensors();
    test_file_path();
    test_limits();
    return th_finish("test_safetensors");
}
