/* libFuzzer target for the mask_embedding.pt reader (the PyTorch zip container of a DFlash
 * drafter; libquant/torchzip.h).
 *
 * Build and run (from the repository root; scripts/fuzz.sh does this for every target):
 *   clang -g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     tests/fuzz/fuzz_maskzip.c libquant/torchzip.c libquant/outfile.c libquant/fileio.c \
 *     libquant/status.c -lcrypto -lm -o build-fuzz/fuzz_maskzip
 *   build-fuzz/fuzz_maskzip -max_total_time=60 -max_len=16384 build-fuzz/work-maskzip \
 *     tests/fuzz/seeds/maskzip
 *
 * The input is the file. The reader opens a path, so each run writes the input to a private
 * temporary file (one per process, removed at exit). The reader never runs the pickle; it scans
 * it against a whitelist, so this is where a hostile file would try to get in.
 *
 * Whatever the input, the reader must not crash or leak, and a refusal must name the file and
 * carry a TZ_* rule. An accepted file gives 1 <= h <= 2^26 elements in a buffer of exactly 2h
 * bytes (every byte is read, so ASan sees a short buffer), and writing the same id and
 * embedding back with lq_torchzip_write_mask and reading that gives the same values: whatever
 * the reader accepts means the same thing as what the writer produces. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libquant/torchzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_maskzip: invariant broken: %s (%s)\n", what, detail ? detail : "");
    abort();
}

static char path[64], again[80];

static void cleanup(void)
{
    unlink(path);
    unlink(again);
}

static volatile uint16_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/lqfuzz-mask-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0)
            abort();
        close(fd);
        snprintf(again, sizeof(again), "%s.pt", path);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();

    int64_t id = 0;
    uint16_t *emb = NULL;
    uint64_t h = 0;
    lq_error err;
    lq_error_clear(&err);
    lq_status st = lq_torchzip_read_mask(path, &id, &emb, &h, &err);
    if (st != LQ_OK) {
        if (emb)
            fail("buffer on failure", NULL);
        if (st != LQ_ERR_NO_MEMORY && strncmp(err.rule, "TZ_", 3) != 0)
            fail("refusal without a TZ_ rule", err.rule);
        if (strcmp(err.file, path) != 0)
            fail("error does not name the file", err.file);
        return 0;
    }
    if (!emb || h < 1 || h > ((uint64_t)1 << 26))
        fail("element count", NULL);
    uint16_t acc = 0;
    for (uint64_t i = 0; i < h; i++)
        acc ^= emb[i];
    sink = acc;

    uint8_t digest[32];
    if (lq_torchzip_write_mask(again, "mask_embedding", id, emb, h, digest, &err) != LQ_OK)
        fail("accepted values cannot be written back", err.rule);
    int64_t id2 = 0;
    uint16_t *emb2 = NULL;
    uint64_t h2 = 0;
    if (lq_torchzip_read_mask(again, &id2, &emb2, &h2, &err) != LQ_OK)
        fail("written file refused", err.rule);
    if (id2 != id || h2 != h || memcmp(emb2, emb, (size_t)h * 2) != 0)
        fail("written file reads back different values", NULL);
    free(emb2);
    free(emb);
    return 0;
}
