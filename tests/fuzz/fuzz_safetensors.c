/* libFuzzer target for the strict safetensors reader (libquant/safetensors.h).
 *
 * Build and run (from the repository root; clang 14 with compiler-rt, Debian package
 * libclang-rt-14-dev):
 *   mkdir -p build-fuzz/seeds build-fuzz/work
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_safetensors.c libquant/safetensors.c libquant/json.c libquant/dtype.c \
 *     libquant/status.c -lcjson -lm -o build-fuzz/fuzz_safetensors
 *   build/tests/io/gen_corpus build-fuzz/seeds      (gen_corpus from any meson build dir)
 *   build-fuzz/fuzz_safetensors -max_total_time=60 -max_len=65536 -artifact_prefix=build-fuzz/ \
 *     build-fuzz/work build-fuzz/seeds
 * tests/fuzz/replay.c runs the same function over the corpus in the ordinary (sanitizer) test
 * build, so every case found here can be added to the corpus and stays checked in CI.
 *
 * Whatever the input, the reader must not crash, leak or read outside the buffer, and every
 * rejection must carry a rule id. When it accepts, the result must hold the format's
 * invariants: each tensor's bytes lie inside the data section and number numel * bits / 8,
 * the tensors tile the data section exactly, names are strictly sorted and each is found by
 * lookup. Touching every byte lets ASan catch any pointer outside the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *name)
{
    fprintf(stderr, "fuzz_safetensors: invariant broken: %s (%s)\n", what, name ? name : "");
    abort();
}

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lq_st_file *f = NULL;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_st_open_memory(data, size, "fuzz", NULL, &f, &err);
    if (st != LQ_OK) {
        if (f)
            fail("file object on failure", NULL);
        if ((st == LQ_ERR_CORRUPT || st == LQ_ERR_LIMIT) && err.rule[0] == '\0')
            fail("rejection without a rule", err.msg);
        if (strcmp(err.file, "fuzz") != 0)
            fail("error does not name the input", err.file);
        return 0;
    }

    uint64_t header = lq_st_header_len(f);
    if (lq_st_file_size(f) != size || header == 0 || header > size - 8)
        fail("sizes", NULL);
    const uint8_t *data_start = data + 8 + header;
    uint64_t data_len = size - 8 - header, covered = 0;
    uint8_t acc = 0;
    for (size_t i = 0; i < lq_st_count(f); i++) {
        const lq_tensor_info *t = lq_st_tensor(f, i);
        if (!t || !t->name || !t->name[0])
            fail("tensor entry", NULL);
        if (t->end < t->begin || t->nbytes != t->end - t->begin)
            fail("nbytes != end - begin", t->name);
        if (t->end > data_len)
            fail("tensor beyond the data section", t->name);
        unsigned bits = lq_dtype_bits(t->dtype);
        if (bits == 0 || t->rank > LQ_MAX_RANK)
            fail("dtype or rank", t->name);
        uint64_t numel = 1;
        for (uint32_t r = 0; r < t->rank; r++)
            numel *= t->shape[r]; /* cannot wrap: the reader checked it */
        if (numel != t->numel || numel * bits % 8 != 0 || numel * bits / 8 != t->nbytes)
            fail("numel * bits / 8 != nbytes", t->name);
        const uint8_t *p = lq_st_data(f, t);
        if (p != data_start + t->begin)
            fail("data pointer", t->name);
        for (uint64_t k = 0; k < t->nbytes; k++)
            acc ^= p[k];
        if (lq_st_find(f, t->name) != t)
            fail("lookup", t->name);
        if (i > 0 && strcmp(lq_st_tensor(f, i - 1)->name, t->name) >= 0)
            fail("name order", t->name);
        covered += t->nbytes;
    }
    if (covered != data_len)
        fail("tensors do not tile the data section", NULL);
    const char *key = NULL, *value = NULL;
    for (size_t i = 0; i < lq_st_metadata_count(f); i++) {
        if (lq_st_metadata_at(f, i, &key, &value) != 0 || !key || !value)
            fail("metadata entry", NULL);
        if (lq_st_metadata(f, key) != value)
            fail("metadata lookup", key);
        acc ^= (uint8_t)strlen(value);
    }
    sink = acc;
    lq_st_close(f);
    return 0;
}
